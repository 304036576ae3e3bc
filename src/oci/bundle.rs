//! A [`Profile`] and a process written out as an OCI bundle's
//! config.json, in the shape dockerd writes, that runc and crun run
//! unchanged.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::error::{Error, Result};
use crate::profile::{DeviceNode, DeviceRule, Profile};

/// What the bundle runs, besides the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BundleSpec {
    /// The program and its arguments.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// The working directory (absolute).
    pub cwd: String,
    /// The user's uid.
    pub uid: u32,
    /// The user's gid.
    pub gid: u32,
    /// The hostname.
    pub hostname: String,
    /// The rootfs, relative to the bundle (`rootfs`) or absolute.
    pub rootfs: PathBuf,
    /// A read-only rootfs.
    pub readonly_rootfs: bool,
    /// Allocate a terminal.
    pub terminal: bool,
    /// A new network namespace (docker's `--network none`); `false`: the
    /// host's.
    pub own_network: bool,
    /// `linux.cgroupsPath`, if any (`/dunnage/<id>`).
    pub cgroups_path: Option<String>,
}

impl BundleSpec {
    /// `args` as root in `/`, rootfs `rootfs`, hostname `dunnage`, a new
    /// network namespace, docker's default `PATH`.
    pub fn new<I, S>(args: I) -> BundleSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BundleSpec {
            args: args.into_iter().map(Into::into).collect(),
            env: vec![format!("PATH={}", crate::container::DEFAULT_PATH)],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            hostname: "dunnage".into(),
            rootfs: "rootfs".into(),
            readonly_rootfs: false,
            terminal: false,
            own_network: true,
            cgroups_path: None,
        }
    }
}

fn rule_json(r: &DeviceRule) -> Value {
    let mut m = Map::new();
    m.insert("allow".into(), json!(r.allow));
    if let Some(k) = r.kind {
        m.insert("type".into(), json!(k.letter()));
    }
    if let Some(major) = r.major {
        m.insert("major".into(), json!(major));
    }
    if let Some(minor) = r.minor {
        m.insert("minor".into(), json!(minor));
    }
    m.insert("access".into(), json!(r.access));
    Value::Object(m)
}

/// The config.json of `profile` running `spec`, as a JSON value, with
/// `devices` as `linux.devices` (dockerd lists none normally, and every
/// node of the host's `/dev` when privileged: [`write_bundle`] passes
/// [`crate::profile::host_devices`] when [`Profile::host_devices`] is set).
pub fn config_json(profile: &Profile, spec: &BundleSpec, devices: &[DeviceNode]) -> Value {
    let caps = &profile.capabilities;
    let (effective, permitted) = if spec.uid == 0 {
        (caps.clone(), caps.clone())
    } else {
        (Vec::new(), Vec::new())
    };
    let mut namespaces = vec![json!({"type": "mount"})];
    if spec.own_network {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "uts"}),
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
    ]);
    let mut linux = Map::new();
    if spec.own_network && !profile.network_sysctls.is_empty() {
        linux.insert("sysctl".into(), json!(profile.network_sysctls));
    }
    linux.insert(
        "resources".into(),
        json!({"devices": profile.device_rules.iter().map(rule_json).collect::<Vec<_>>()}),
    );
    if let Some(path) = &spec.cgroups_path {
        linux.insert("cgroupsPath".into(), json!(path));
    }
    linux.insert("namespaces".into(), Value::Array(namespaces));
    if !devices.is_empty() {
        let list: Vec<Value> = devices
            .iter()
            .map(|d| {
                json!({
                    "type": d.kind.letter(),
                    "path": d.path,
                    "major": d.major,
                    "minor": d.minor,
                    "fileMode": d.file_mode,
                    "uid": d.uid,
                    "gid": d.gid,
                })
            })
            .collect();
        linux.insert("devices".into(), Value::Array(list));
    }
    if let Some(s) = &profile.seccomp {
        linux.insert("seccomp".into(), s.clone());
    }
    if !profile.masked_paths.is_empty() {
        linux.insert("maskedPaths".into(), json!(profile.masked_paths));
    }
    if !profile.readonly_paths.is_empty() {
        linux.insert("readonlyPaths".into(), json!(profile.readonly_paths));
    }
    let mut root = Map::new();
    root.insert("path".into(), json!(spec.rootfs));
    if spec.readonly_rootfs {
        root.insert("readonly".into(), json!(true));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.terminal,
            "user": {"uid": spec.uid, "gid": spec.gid},
            "args": spec.args,
            "env": spec.env,
            "cwd": spec.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": effective,
                "permitted": permitted,
            },
            "noNewPrivileges": false,
        },
        "root": root,
        "hostname": spec.hostname,
        "mounts": profile.mounts,
        "linux": linux,
    })
}

/// Write `<dir>/config.json` (atomically) for `profile` running `spec`.
/// The rootfs is not touched.
pub fn write_bundle(dir: &Path, profile: &Profile, spec: &BundleSpec) -> Result<()> {
    let devices = if profile.host_devices {
        crate::profile::host_devices(Path::new("/dev")).map_err(|source| Error::Io {
            op: "list devices",
            path: "/dev".into(),
            source,
        })?
    } else {
        Vec::new()
    };
    let path = dir.join("config.json");
    let mut bytes =
        serde_json::to_vec_pretty(&config_json(profile, spec, &devices)).map_err(|e| {
            Error::Json {
                op: "serialize config.json",
                reason: e.to_string(),
            }
        })?;
    bytes.push(b'\n');
    dunnage_base::fs::write_atomic(&path, &bytes, 0o644).map_err(|source| Error::Io {
        op: "write",
        path,
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::oci::OciConfig;

    #[test]
    fn written_config_parses_and_converts_back() {
        let p = Profile::docker();
        let v = config_json(&p, &BundleSpec::new(["/bin/true"]), &[]);
        let cfg = OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
        let out = cfg.to_container(Path::new("/b")).unwrap();
        assert_eq!(out.container.profile.capabilities, p.capabilities);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        // The same shape as dockerd's for the parts the profile owns.
        let docker: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/oci/docker-run.json")).unwrap();
        for ptr in [
            "/linux/seccomp",
            "/linux/maskedPaths",
            "/linux/readonlyPaths",
            "/linux/sysctl",
            "/linux/resources/devices",
            "/process/capabilities",
        ] {
            assert_eq!(v.pointer(ptr), docker.pointer(ptr), "{ptr}");
        }
        assert_eq!(
            v["mounts"].as_array().unwrap()[..],
            docker["mounts"].as_array().unwrap()[..7]
        );
    }

    #[test]
    fn privileged_and_non_root() {
        let mut s = BundleSpec::new(["/bin/true"]);
        s.uid = 1000;
        s.own_network = false;
        let devs = crate::profile::host_devices(Path::new("/dev")).unwrap();
        let v = config_json(&Profile::privileged(), &s, &devs);
        let null = v["linux"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == "/dev/null")
            .unwrap();
        assert_eq!(
            (&null["type"], &null["major"], &null["minor"]),
            (&json!("c"), &json!(1), &json!(3))
        );
        // It parses as the spec's devices.
        OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("maskedPaths").is_none());
        assert!(v["linux"].get("sysctl").is_none());
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
        assert_eq!(v["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
    }
}
