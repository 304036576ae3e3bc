#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::container::{MountSpec, Network, Seccomp};

/// Captured from a private dockerd (docker.io 20.10.24):
/// `docker run -d --network none IMG sleep 1000`.
const DOCKER: &str = include_str!("../../tests/fixtures/oci/docker-run.json");
/// Captured from podman 4.3.1 through a logging wrapper runtime:
/// `podman run --rm --network none IMG true`.
const PODMAN: &str = include_str!("../../tests/fixtures/oci/podman-run.json");

fn docker_value() -> Value {
    serde_json::from_str(DOCKER).unwrap()
}

fn convert(v: &Value) -> Result<Converted> {
    OciConfig::from_bytes(&serde_json::to_vec(v).unwrap())?.to_container(Path::new("/b"))
}

fn refused_field(v: &Value) -> String {
    match convert(v) {
        Err(Error::Unsupported { field, .. }) => field,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn invalid_field(v: &Value) -> String {
    match convert(v) {
        Err(Error::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn docker_config_converts() {
    let cfg = OciConfig::from_bytes(DOCKER.as_bytes()).unwrap();
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    let out = cfg.to_container(Path::new("/bundle")).unwrap();
    let c = &out.container;
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["sleep".to_string(), "1000".into()][..])
    );
    assert_eq!(c.profile.capabilities, crate::profile::DOCKER_CAPABILITIES);
    assert_eq!(c.profile.masked_paths, crate::profile::DOCKER_MASKED_PATHS);
    assert_eq!(
        c.profile.readonly_paths,
        crate::profile::DOCKER_READONLY_PATHS
    );
    assert_eq!(c.network, Network::None);
    assert_eq!(c.user.as_deref(), Some("0:0"));
    assert_eq!(c.hostname.as_deref(), Some("88778d8cdd47"));
    assert_eq!(c.cgroup_parent, "docker");
    assert_eq!(c.sysctls.len(), 2);
    let Seccomp::Profile(text) = &c.seccomp else {
        panic!("{:?}", c.seccomp)
    };
    let s: Value = serde_json::from_str(text).unwrap();
    assert_eq!(Some(s), crate::profile::Profile::docker().seccomp);
    // Every mount of the config, in order, with its options as given (as
    // runc mounts them); the profile's list is not used.
    let v = docker_value();
    assert_eq!(c.mounts.len(), v["mounts"].as_array().unwrap().len());
    assert!(c.profile.mounts.is_empty());
    assert!(
        matches!(&c.mounts[0], MountSpec::Oci { destination, kind, .. }
        if destination == Path::new("/proc") && kind == "proc")
    );
    let resolv = c.mounts.iter().find_map(|m| match m {
        MountSpec::Oci {
            destination,
            source,
            options,
            ..
        } if destination == Path::new("/etc/resolv.conf") => Some((source, options)),
        _ => None,
    });
    let (source, options) = resolv.unwrap();
    assert!(source.is_absolute());
    assert!(options.contains(&"rbind".to_string()));
    assert_eq!(out.hooks.prestart().as_ref().map(Vec::len), Some(1));
    assert_eq!(out.oom_score_adj, Some(0));
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn podman_config_converts_with_its_bind_flags() {
    let cfg = OciConfig::from_bytes(PODMAN.as_bytes()).unwrap();
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    assert!(cfg.spec().linux().as_ref().unwrap().seccomp().is_some());
    // Podman binds /dev/shm with nosuid,noexec,nodev: kept as given.
    let v: Value = serde_json::from_str(PODMAN).unwrap();
    assert_eq!(v["mounts"][6]["destination"], "/dev/shm");
    let out = convert(&v).unwrap();
    let shm = out.container.mounts.iter().find_map(|m| match m {
        MountSpec::Oci {
            destination,
            options,
            ..
        } if destination == Path::new("/dev/shm") => Some(options.clone()),
        _ => None,
    });
    assert!(shm.unwrap().contains(&"nosuid".to_string()));
    // umask 0022, pids limit, deny-all device rule.
    assert_eq!(out.container.umask, Some(0o022));
    assert_eq!(out.container.resources.pids_limit, Some(2048));
    assert_eq!(out.container.cgroup_parent, "libpod_parent");
    assert_eq!(out.annotations["io.container.manager"], "libpod");
}

#[test]
fn round_trip_keeps_unknown_fields() {
    let mut v = docker_value();
    v["x-vendor"] = json!({"deep": [1, 2, {"k": null}]});
    v["linux"]["fancyNewKnob"] = json!(true);
    v["process"]["user"]["extra"] = json!("x");
    let cfg = OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
    let back: Value = serde_json::from_slice(&cfg.to_vec()).unwrap();
    assert_eq!(back, v);
    let unknown: Vec<&str> = cfg
        .warnings()
        .iter()
        .filter_map(|w| match w {
            Warning::UnknownField { field } => Some(field.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(unknown.len(), 3, "{unknown:?}");
    assert!(unknown.contains(&"linux.fancyNewKnob"));
    // Unknown fields do not stop the conversion.
    convert(&v).unwrap();
}

#[test]
fn unknown_capability_is_a_warning() {
    let mut v = docker_value();
    for set in ["bounding", "effective", "permitted"] {
        v["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FROM_THE_FUTURE"));
    }
    let cfg = OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
    let warned = cfg
        .warnings()
        .iter()
        .filter(|w| matches!(w, Warning::UnknownCapability { name, .. } if name == "CAP_FROM_THE_FUTURE"))
        .count();
    assert_eq!(warned, 3);
    // The raw document keeps the name; the container does not get it.
    assert_eq!(serde_json::from_slice::<Value>(&cfg.to_vec()).unwrap(), v);
    let out = cfg.to_container(Path::new("/b")).unwrap();
    assert_eq!(out.container.profile.capabilities.len(), 14);
    // A non-string capability is still a type error.
    v["process"]["capabilities"]["bounding"] = json!([5]);
    assert!(matches!(
        OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()),
        Err(Error::Json { .. })
    ));
}

#[test]
fn each_capability_set_is_kept() {
    let mut v = docker_value();
    let caps = json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL"],
        "ambient": ["CAP_CHOWN", "CAP_NOT_YET", "CAP_NET_RAW"]
    });
    v["process"]["capabilities"] = caps.clone();
    v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let cfg = OciConfig::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(cfg.warnings().contains(&Warning::UnknownCapability {
        set: "ambient",
        name: "CAP_NOT_YET".into()
    }));
    let out = cfg.to_container(Path::new("/b")).unwrap();
    let sets = out.container.capability_sets.clone().unwrap();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        sets.bounding,
        names(&["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"])
    );
    assert_eq!(sets.effective, names(&["CAP_KILL"]));
    assert_eq!(sets.permitted, names(&["CAP_KILL", "CAP_CHOWN"]));
    assert_eq!(sets.inheritable, names(&["CAP_CHOWN", "CAP_KILL"]));
    assert_eq!(sets.ambient, names(&["CAP_CHOWN"]));
    // A missing set is empty; no capabilities at all: none.
    v["process"]["capabilities"] = json!({"bounding": ["CAP_KILL"]});
    let sets = convert(&v).unwrap().container.capability_sets.unwrap();
    assert!(sets.effective.is_empty() && sets.ambient.is_empty());
    v["process"].as_object_mut().unwrap().remove("capabilities");
    let sets = convert(&v).unwrap().container.capability_sets.unwrap();
    assert_eq!(sets, crate::container::CapabilitySets::default());
    // An exec's process.json: the same reading, type errors named.
    let p = json!({"capabilities": caps});
    let (sets, warnings) = crate::oci::process_capabilities(&p).unwrap().unwrap();
    assert_eq!(sets.ambient, names(&["CAP_CHOWN"]));
    assert_eq!(warnings.len(), 2);
    assert!(warnings.contains(&Warning::AmbientNotRaised {
        name: "CAP_NET_RAW".into(),
        missing_from: "permitted"
    }));
    assert!(
        crate::oci::process_capabilities(&json!({}))
            .unwrap()
            .is_none()
    );
    for (bad, field) in [
        (json!({"capabilities": 5}), "process.capabilities"),
        (
            json!({"capabilities": {"ambient": "CAP_KILL"}}),
            "process.capabilities.ambient",
        ),
        (
            json!({"capabilities": {"bounding": [5]}}),
            "process.capabilities.bounding[0]",
        ),
    ] {
        match crate::oci::process_capabilities(&bad) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn every_hook_kind_is_kept_as_data() {
    let mut v = docker_value();
    let hook = json!([{"path": "/bin/true", "args": ["true"], "env": ["A=B"], "timeout": 5}]);
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        v["hooks"][kind] = hook.clone();
    }
    let h = convert(&v).unwrap().hooks;
    for list in [
        h.prestart(),
        h.create_runtime(),
        h.create_container(),
        h.start_container(),
        h.poststart(),
        h.poststop(),
    ] {
        let list = list.as_ref().unwrap();
        assert_eq!(list[0].path(), Path::new("/bin/true"));
        assert_eq!(list[0].timeout(), Some(5));
    }
}

#[test]
fn honoured_process_fields() {
    let mut v = docker_value();
    v["process"]["terminal"] = json!(true);
    v["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    v["process"]["noNewPrivileges"] = json!(true);
    v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]);
    v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    for set in ["effective", "permitted"] {
        v["process"]["capabilities"][set] = json!([]);
    }
    v["root"]["readonly"] = json!(true);
    v["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 67108864});
    v["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    v["linux"]["resources"]["pids"] = json!({"limit": 10});
    v["linux"]["namespaces"][1] = json!({"type": "network", "path": "/proc/1/ns/net"});
    v["linux"].as_object_mut().unwrap().remove("seccomp");
    let out = convert(&v).unwrap();
    let c = &out.container;
    assert!(c.tty && c.no_new_privileges && c.readonly_rootfs);
    assert_eq!(out.console_size, Some((24, 80)));
    assert_eq!(c.rlimits[0].name, "nofile");
    assert_eq!((c.rlimits[0].soft, c.rlimits[0].hard), (1024, 2048));
    assert_eq!(c.user.as_deref(), Some("1000:1000"));
    assert_eq!(c.resources.memory, Some(33554432));
    assert_eq!(c.resources.memory_swap, Some(67108864));
    assert_eq!(c.resources.cpu_quota, Some(50000));
    assert_eq!(c.resources.pids_limit, Some(10));
    assert_eq!(c.network, Network::Join("/proc/1/ns/net".into()));
    assert_eq!(c.seccomp, Seccomp::Unconfined);
    // Without a network namespace: the host's.
    let mut v = docker_value();
    v["linux"]["namespaces"].as_array_mut().unwrap().remove(1);
    assert_eq!(convert(&v).unwrap().container.network, Network::Host);
}

#[test]
fn every_refused_field_is_named() {
    for (path, status) in fields::FIELDS {
        if !matches!(status, fields::Status::Refused(_)) {
            continue;
        }
        let mut doc = json!({});
        let mut cur = &mut doc;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            cur[*part] = if last { json!({"x": 1}) } else { json!({}) };
            cur = &mut cur[*part];
        }
        match fields::refuse_unsupported(&doc) {
            Err(Error::Unsupported { field, .. }) => assert_eq!(field, *path),
            other => panic!("{path}: {other:?}"),
        }
        // Empty values are "not set".
        let mut empty = doc.clone();
        *empty.pointer_mut(&format!("/{}", parts.join("/"))).unwrap() = json!(null);
        fields::refuse_unsupported(&empty).unwrap();
    }
}

#[test]
fn refused_end_to_end() {
    let cases: Vec<(&str, Value)> = vec![
        ("linux.intelRdt", json!({"closID": "x"})),
        ("linux.personality", json!({"domain": "LINUX32"})),
    ];
    for (field, value) in cases {
        let mut v = docker_value();
        let key = field.strip_prefix("linux.").unwrap();
        v["linux"][key] = value;
        assert_eq!(refused_field(&v), field);
    }
    // A mount label without SELinux has no effect (crun's reading).
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        let mut v = docker_value();
        v["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
        let w = convert(&v).unwrap().warnings;
        assert!(w.iter().any(|w| matches!(
            w,
            Warning::NoEffect {
                field: "linux.mountLabel",
                ..
            }
        )));
    }
    let mut v = docker_value();
    v["process"]["apparmorProfile"] = json!("docker-default");
    assert_eq!(refused_field(&v), "process.apparmorProfile");
    let mut v = docker_value();
    v["process"]["selinuxLabel"] = json!("x");
    assert_eq!(refused_field(&v), "process.selinuxLabel");
    let mut v = docker_value();
    v["domainname"] = json!("example.org");
    assert_eq!(refused_field(&v), "domainname");
    let mut v = docker_value();
    // A user namespace takes both maps; maps need the namespace.
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}, {"type": "user"}]);
    assert_eq!(invalid_field(&v), "linux.uidMappings");
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 2000}]);
    assert_eq!(invalid_field(&v), "linux.gidMappings");
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": -1}]);
    assert!(convert(&v).is_err());
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 3000}]);
    let c = convert(&v).unwrap().container;
    let (uids, gids) = c.id_maps.clone().unwrap();
    assert_eq!(
        (uids[0].host_id, uids[0].size, gids[0].size),
        (1000, 2000, 3000)
    );
    v["linux"]["namespaces"].as_array_mut().unwrap().pop();
    assert_eq!(invalid_field(&v), "linux.uidMappings");
    // A cgroup namespace of its own.
    let mut v = docker_value();
    assert!(!convert(&v).unwrap().container.cgroup_namespace);
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    assert!(convert(&v).unwrap().container.cgroup_namespace);
    let mut v = docker_value();
    // A namespace not listed is the runtime's own: shared.
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}]);
    let joined = convert(&v).unwrap().container.join_namespaces;
    assert_eq!(
        joined,
        vec![("ipc".to_string(), PathBuf::from("/proc/self/ns/ipc"))]
    );
    v["linux"]["namespaces"] = json!([]);
    let joined = convert(&v).unwrap().container.join_namespaces;
    let kinds: Vec<&str> = joined.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["mnt", "pid", "uts", "ipc"]);
    let mut v = docker_value();
    // ipc, uts, pid and mount are joined by path; cgroup is not.
    v["linux"]["namespaces"][3] = json!({"type": "pid", "path": "/proc/1/ns/pid"});
    v["linux"]["namespaces"][2] = json!({"type": "uts", "path": "/proc/1/ns/uts"});
    let out = convert(&v).unwrap();
    assert_eq!(out.container.join_namespaces.len(), 2);
    assert!(out.warnings.iter().any(|w| matches!(
        w,
        Warning::NoEffect {
            field: "hostname",
            ..
        }
    )));
    v["linux"]["namespaces"][0] = json!({"type": "mount", "path": "/proc/1/ns/mnt"});
    let out = convert(&v).unwrap();
    assert!(
        out.container
            .join_namespaces
            .contains(&("mnt".to_string(), PathBuf::from("/proc/1/ns/mnt")))
    );
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup", "path": "/proc/1/ns/cgroup"}));
    assert!(refused_field(&v).ends_with(".path"));
    let mut v = docker_value();
    v["process"]["user"]["umask"] = json!(0o077);
    v["process"]["user"]["additionalGids"] = json!([0, 10]);
    let c = convert(&v).unwrap().container;
    assert_eq!((c.umask, c.extra_gids), (Some(0o077), vec![0, 10]));
    v["process"]["user"]["umask"] = json!(0o1777);
    assert_eq!(invalid_field(&v), "process.user.umask");
    let mut v = docker_value();
    v["linux"]["rootfsPropagation"] = json!("rshared");
    let c = convert(&v).unwrap().container;
    assert_eq!(c.rootfs_propagation.as_deref(), Some("rshared"));
    v["linux"]["rootfsPropagation"] = json!("rbogus");
    assert_eq!(invalid_field(&v), "linux.rootfsPropagation");
    // Device nodes and rules are the config's (runc's reading).
    let mut v = docker_value();
    v["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]);
    v["linux"]["resources"]["devices"][0]["allow"] = json!(true);
    let c = convert(&v).unwrap().container;
    assert!(c.profile.devices.iter().any(|n| n.path == "/dev/fuse"));
    assert!(c.profile.device_rules[0].allow);
    // Any mount type goes to the kernel; a missing one is an error.
    let mut v = docker_value();
    v["mounts"][0]["destination"] = json!("/somewhere");
    convert(&v).unwrap();
    v["mounts"][0].as_object_mut().unwrap().remove("type");
    assert_eq!(invalid_field(&v), "mounts[0].type");
    let mut v = docker_value();
    v["ociVersion"] = json!("2.0.0");
    assert_eq!(refused_field(&v), "ociVersion");
}

#[test]
fn invalid_values_are_typed() {
    let mut v = docker_value();
    v["process"]["env"] = json!(["NOEQUALS"]);
    assert_eq!(invalid_field(&v), "process.env[0]");
    let mut v = docker_value();
    v["process"]["cwd"] = json!("relative");
    assert_eq!(invalid_field(&v), "process.cwd");
    let mut v = docker_value();
    v["process"]["args"] = json!([]);
    assert_eq!(invalid_field(&v), "process.args");
    let mut v = docker_value();
    v.as_object_mut().unwrap().remove("process");
    assert_eq!(invalid_field(&v), "process");
    let mut v = docker_value();
    v.as_object_mut().unwrap().remove("root");
    assert_eq!(invalid_field(&v), "root");
    let mut v = docker_value();
    v["linux"]["resources"]["memory"]["swap"] = json!(-7);
    assert_eq!(invalid_field(&v), "linux.resources");
    let mut v = docker_value();
    v["linux"]["cgroupsPath"] = json!("/../../x");
    assert_eq!(invalid_field(&v), "linux.cgroupsPath");
}

#[test]
fn malformed_and_hostile_bytes() {
    let deep = "[".repeat(100_000);
    let huge_string = format!("{{\"hostname\": \"{}\"", "a".repeat(1 << 20));
    let cases: Vec<&[u8]> = vec![
        b"",
        b"null",
        b"[]",
        b"\"x\"",
        b"{",
        b"{\"ociVersion\": 1}",
        b"{\"process\": 5}",
        b"{\"ociVersion\":\"1.0.2\",\"process\":{\"cwd\":\"/\",\"user\":{\"uid\":-1,\"gid\":0}}}",
        b"{\"ociVersion\":\"1.0.2\",\"linux\":{\"namespaces\":[{\"type\":\"bogus\"}]}}",
        b"{\"ociVersion\":\"1.0.2\",\"process\":{\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0},\"rlimits\":[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]}}",
        b"\xff\xfe{}",
        b"{\"a\":1}garbage",
        deep.as_bytes(),
        huge_string.as_bytes(),
    ];
    for bytes in cases {
        match OciConfig::from_bytes(bytes) {
            Err(Error::Json { .. } | Error::Invalid { .. }) => {}
            other => panic!(
                "{:?}: {other:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            ),
        }
    }
    // Truncations of a real config never panic.
    for n in (0..DOCKER.len()).step_by(97) {
        let _ = OciConfig::from_bytes(&DOCKER.as_bytes()[..n]);
    }
    // An empty object parses (ociVersion defaults) but does not convert.
    let cfg = OciConfig::from_bytes(b"{}").unwrap();
    assert!(cfg.to_container(Path::new("/b")).is_err());
}

#[test]
fn privileged_config_is_privileged_mode() {
    use crate::oci::bundle::{BundleSpec, config_json};
    let v = config_json(
        &crate::profile::Profile::privileged(),
        &BundleSpec::new(["true"]),
        &[],
    );
    // No privileged mode: every capability, no seccomp, nothing masked,
    // allow-all device rules, as the config says (runc's reading).
    let out = convert(&v).unwrap();
    let c = &out.container;
    assert!(!c.privileged);
    assert_eq!(c.seccomp, Seccomp::Unconfined);
    assert!(c.profile.masked_paths.is_empty());
    assert_eq!(
        c.capability_sets.as_ref().unwrap().bounding.len(),
        crate::profile::ALL_CAPABILITIES.len()
    );
    assert!(
        c.profile
            .device_rules
            .iter()
            .any(|r| r.allow && r.kind.is_none() && r.major.is_none())
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    // The host's device list docker --privileged writes: made as listed.
    let devs = crate::profile::host_devices(Path::new("/dev")).unwrap();
    let v = config_json(
        &crate::profile::Profile::privileged(),
        &BundleSpec::new(["true"]),
        &devs,
    );
    let c = convert(&v).unwrap().container;
    for d in &devs {
        assert!(
            c.profile.devices.iter().any(|n| n.path == d.path),
            "{}",
            d.path
        );
    }
    // Bad device entries are typed errors naming the field.
    let mut v = docker_value();
    v["linux"]["devices"] = json!([{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}]);
    assert!(convert(&v).is_err());
    v["linux"]["devices"] = json!([{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]);
    assert_eq!(invalid_field(&v), "linux.devices[0].path");
    v["linux"]["devices"] = json!([{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}]);
    assert_eq!(invalid_field(&v), "linux.devices[0].major");
    v["linux"]["devices"] =
        json!([{"path": "/dev/x", "type": "c", "major": 1, "minor": 1, "fileMode": 99999}]);
    assert_eq!(invalid_field(&v), "linux.devices[0].fileMode");
    v["linux"]["devices"] = json!([{"path": "/dev/p", "type": "p", "fileMode": 0o600, "uid": 7}]);
    let c = convert(&v).unwrap().container;
    let p = c
        .profile
        .devices
        .iter()
        .find(|n| n.path == "/dev/p")
        .unwrap();
    assert_eq!(
        (p.kind, p.file_mode, p.uid),
        (crate::profile::DeviceType::Fifo, 0o600, 7)
    );
    let mut v = docker_value();
    v["linux"]["resources"]["devices"] = json!([{"allow": true, "type": "p", "access": "rwm"}]);
    assert!(convert(&v).is_err());
    v["linux"]["resources"]["devices"] = json!([{"allow": true, "type": "c", "access": "rwx"}]);
    assert_eq!(invalid_field(&v), "linux.resources.devices[0].access");
}

#[test]
fn convert_bytes_is_the_one_call_entry() {
    let out = convert_bytes(DOCKER.as_bytes(), Path::new("/b")).unwrap();
    assert_eq!(out.container.network, Network::None);
    assert!(convert_bytes(b"{]", Path::new("/b")).is_err());
}

#[test]
fn container_defaults_are_warned_about() {
    let mut v = docker_value();
    v["linux"].as_object_mut().unwrap().remove("sysctl");
    v["linux"]["resources"]["memory"] = json!({"limit": 1048576});
    let w = convert(&v).unwrap().warnings;
    let fields: Vec<&str> = w
        .iter()
        .filter_map(|w| match w {
            Warning::ContainerDefault { field, .. } => Some(*field),
            _ => None,
        })
        .collect();
    // The config's sysctls only (none here, as runc); swap as docker.
    assert_eq!(fields, ["linux.resources.memory.swap"]);
}

/// `memory.kernelTCP` is set where the memory controller is on cgroup v1
/// (`memory.kmem.tcp.limit_in_bytes`), a warning on v2; `kernel` is
/// always a warning (no kernel memory limits on Linux 6.x).
#[test]
fn kernel_tcp_set_on_v1_warned_on_v2() {
    let mut v = docker_value();
    v["linux"]["resources"]["memory"] = json!({"kernel": 1048576, "kernelTCP": 2097152});
    let out = convert(&v).unwrap();
    let warned: Vec<&str> = out
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::NoEffect { field, .. } => Some(*field),
            _ => None,
        })
        .collect();
    assert!(warned.contains(&"linux.resources.memory.kernel"));
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes").exists();
    if v1 {
        assert_eq!(out.container.resources.memory_kernel_tcp, Some(2097152));
        assert!(!warned.contains(&"linux.resources.memory.kernelTCP"));
    } else {
        assert_eq!(out.container.resources.memory_kernel_tcp, None);
        assert!(warned.contains(&"linux.resources.memory.kernelTCP"));
    }
    v["linux"]["resources"]["memory"]["kernelTCP"] = json!(-2);
    if v1 {
        assert_eq!(invalid_field(&v), "linux.resources");
    }
}

/// Mutate the docker config at random (values replaced by other JSON
/// kinds, members deleted, arrays emptied or grown) and convert: typed
/// results, never a panic.
#[test]
fn random_mutations_never_panic() {
    fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
        out.push(path.clone());
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    leaves(x, format!("{path}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    leaves(x, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let base = docker_value();
    let mut paths = Vec::new();
    leaves(&base, String::new(), &mut paths);
    let replacements = [
        json!(null),
        json!(-1),
        json!(u64::MAX),
        json!(1.5),
        json!(""),
        json!("../../etc"),
        json!([]),
        json!({}),
        json!(true),
        json!(["CAP_SYS_ADMIN", 7]),
        json!({"type": "user", "path": "/proc/1/ns/user"}),
    ];
    let mut rng = dunnage_testsupport::Rng::new(10);
    for _ in 0..1000 {
        let mut v = base.clone();
        for _ in 0..=rng.below(3) {
            let p = &paths[rng.below(paths.len() as u64) as usize];
            if p.is_empty() {
                continue;
            }
            let r = replacements[rng.below(replacements.len() as u64) as usize].clone();
            if let Some(slot) = v.pointer_mut(p) {
                *slot = r;
            }
        }
        let bytes = serde_json::to_vec(&v).unwrap();
        if let Ok(cfg) = OciConfig::from_bytes(&bytes) {
            // Whatever parses round-trips.
            assert_eq!(serde_json::from_slice::<Value>(&cfg.to_vec()).unwrap(), v);
            let _ = cfg.to_container(Path::new("/b"));
        }
    }
}

/// `runc spec` (1.1.5) and `crun spec` (1.8.1) templates, as printed here.
#[test]
fn runc_and_crun_spec_templates() {
    for (name, text) in [
        (
            "runc",
            include_str!("../../tests/fixtures/oci/runc-spec.json"),
        ),
        (
            "crun",
            include_str!("../../tests/fixtures/oci/crun-spec.json"),
        ),
    ] {
        let cfg = OciConfig::from_bytes(text.as_bytes()).unwrap();
        assert!(cfg.warnings().is_empty(), "{name}: {:?}", cfg.warnings());
        // Their root process has inheritable and ambient sets: kept.
        let v: Value = serde_json::from_str(text).unwrap();
        let out = convert(&v).unwrap();
        let c = &out.container;
        assert!(c.tty, "{name}");
        assert_eq!(c.rlimits[0].name, "nofile");
        assert_eq!(c.profile.capabilities.len(), 3, "{name}");
        let sets = c.capability_sets.as_ref().unwrap();
        // Ambient without inheritable: not raised, with a warning each (runc's warning).
        assert!(sets.ambient.is_empty(), "{name}");
        assert!(sets.inheritable.is_empty(), "{name}");
        let ambient_warnings = out
            .warnings
            .iter()
            .filter(|w| {
                matches!(
                    w,
                    Warning::AmbientNotRaised {
                        missing_from: "inheritable",
                        ..
                    }
                )
            })
            .count();
        assert_eq!(ambient_warnings, 3, "{name}");
        assert!(c.readonly_rootfs, "{name}");
        assert_eq!(c.network, Network::None);
        assert_eq!(c.seccomp, Seccomp::Unconfined);
    }
}

/// A config without a mount namespace of its own (none listed, or one
/// joined by path) is warned about: its rootfs is entered with chroot; a
/// config with one is not.
#[test]
fn shared_mount_namespace_is_warned_about() {
    let shared = |w: &[Warning]| -> Vec<PathBuf> {
        w.iter()
            .filter_map(|w| match w {
                Warning::SharedMountNamespace { path } => Some(path.clone()),
                _ => None,
            })
            .collect()
    };
    let own = convert(&docker_value()).unwrap().warnings;
    assert_eq!(shared(&own), Vec::<PathBuf>::new());
    let mut v = docker_value();
    v["linux"]["namespaces"] = json!([]);
    let w = convert(&v).unwrap().warnings;
    assert_eq!(shared(&w), [PathBuf::from("/proc/self/ns/mnt")]);
    assert!(w.iter().any(|w| w.to_string().contains("CAP_SYS_CHROOT")));
    let mut v = docker_value();
    v["linux"]["namespaces"] = json!([{"type": "mount", "path": "/run/ns/mnt"}]);
    let w = convert(&v).unwrap().warnings;
    assert_eq!(shared(&w), [PathBuf::from("/run/ns/mnt")]);
}
