//! The container's process as a [`dunnage_namespaces::Command`]: the
//! resolved [`Spec`] turned into the child's setup (pivot_root, Docker's
//! mounts, /dev, masked and read-only paths, capabilities, seccomp, user),
//! with a start gate.

use std::path::Path;

use dunnage_namespaces::{Command, Kind, Kinds, Mount, ProcessKnobs, Rlimit, Stdio};

use crate::container::builder::StdioMode;
use crate::container::error::{Error, Result, io_err};
use crate::container::seccomp_cache;
use crate::container::spec::{MountSpec, Network, Seccomp, Spec};

fn stdio(mode: StdioMode) -> Stdio {
    match mode {
        StdioMode::Inherit => Stdio::inherit(),
        StdioMode::Null => Stdio::null(),
        StdioMode::Piped => Stdio::piped(),
    }
}

/// The seccomp program of the spec, `None` for no filter. `cache` is the
/// on-disk cache of compiled programs ([`seccomp_cache`]) to use.
pub(crate) fn seccomp_program(
    spec: &Spec,
    cache: Option<&Path>,
) -> Result<Option<dunnage_namespaces::BpfProgram>> {
    spec.seccomp.program_cached(cache)
}

impl Seccomp {
    /// The BPF program this choice installs, as a container made from a
    /// resolved [`Spec`] gets it: `None` for [`Seccomp::Unconfined`] and
    /// for [`Seccomp::Default`] (which the resolve step replaces by the
    /// security profile's policy; left in a resolved spec, the profile has
    /// none); a [`Seccomp::Profile`]'s JSON compiled with libseccomp.
    ///
    /// A profile that does not parse or compile is [`Error::Invalid`];
    /// without the crate's `seccomp` feature a profile is
    /// [`Error::Unsupported`].
    pub fn program(&self) -> Result<Option<dunnage_namespaces::BpfProgram>> {
        self.program_cached(None)
    }

    /// [`program`](Self::program) with the on-disk cache `cache`.
    fn program_cached(
        &self,
        cache: Option<&Path>,
    ) -> Result<Option<dunnage_namespaces::BpfProgram>> {
        let text = match self {
            // The resolve step replaced a profile's default policy by its
            // text: `Default` left means the profile has none.
            Seccomp::Unconfined | Seccomp::Default => return Ok(None),
            Seccomp::Profile(text) => text,
            // Future variants: refuse rather than run unconfined.
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::Unsupported {
                    op: "seccomp",
                    reason: "unknown seccomp choice",
                });
            }
        };
        compile(text, cache)
    }
}

/// The last policy compiled in this process and its program: containers
/// made one after another mostly share Docker's policy, and compiling it
/// with libseccomp costs more than the rest of the child's preparation.
#[cfg(feature = "seccomp")]
static LAST_COMPILED: std::sync::Mutex<Option<(String, dunnage_namespaces::BpfProgram)>> =
    std::sync::Mutex::new(None);

/// `text` compiled: the program kept in this process, else the one in the
/// on-disk `cache` (for processes that make one container each), else
/// compiled with libseccomp (and kept in both).
#[cfg(feature = "seccomp")]
fn compile(text: &str, cache: Option<&Path>) -> Result<Option<dunnage_namespaces::BpfProgram>> {
    if let Ok(last) = LAST_COMPILED.lock()
        && let Some((t, program)) = last.as_ref()
        && t == text
    {
        return Ok(Some(program.clone()));
    }
    // Without the library's version there is no safe key: compile.
    let key = cache.and_then(|dir| {
        dunnage_namespaces::seccomp::library_version()
            .ok()
            .map(|v| (dir, seccomp_cache::key(text, &v)))
    });
    let cached = key
        .as_ref()
        .and_then(|(dir, key)| seccomp_cache::load(dir, key));
    let program = match cached {
        Some(p) => p,
        None => {
            let p = compile_uncached(text)?;
            if let Some((dir, key)) = &key {
                seccomp_cache::store(dir, key, &p);
            }
            p
        }
    };
    if let Ok(mut last) = LAST_COMPILED.lock() {
        *last = Some((text.to_string(), program.clone()));
    }
    Ok(Some(program))
}

#[cfg(feature = "seccomp")]
fn compile_uncached(text: &str) -> Result<dunnage_namespaces::BpfProgram> {
    let profile: dunnage_namespaces::SeccompProfile =
        serde_json::from_str(text).map_err(|e| Error::Invalid {
            what: "seccomp profile",
            reason: e.to_string(),
        })?;
    let (program, _warnings) =
        dunnage_namespaces::seccomp::compile(&profile).map_err(|e| Error::Invalid {
            what: "seccomp profile",
            reason: e.to_string(),
        })?;
    Ok(program)
}

#[cfg(not(feature = "seccomp"))]
fn compile(_text: &str, _cache: Option<&Path>) -> Result<Option<dunnage_namespaces::BpfProgram>> {
    Err(Error::Unsupported {
        op: "seccomp",
        reason: "the crate is built without its `seccomp` feature (libseccomp): choose Seccomp::Unconfined or a profile without a seccomp policy",
    })
}

/// The process knobs of `spec` (shared by the container's init and exec);
/// `containers` is the store's containers directory (for the seccomp
/// cache).
pub(crate) fn knobs(spec: &Spec, containers: &Path) -> Result<ProcessKnobs> {
    let caps = spec.capabilities.to_kernel()?;
    let mut rlimits = Vec::new();
    for r in &spec.rlimits {
        rlimits.push(Rlimit::new(&r.name, r.soft, r.hard)?);
    }
    Ok(ProcessKnobs {
        capabilities: Some(caps),
        // The sets apply as given, also to a non-root user (the resolved
        // spec already has docker's empty effective and permitted sets).
        keep_capabilities: true,
        no_new_privileges: spec.no_new_privileges,
        rlimits,
        sysctls: spec.sysctls.clone(),
        additional_gids: Some(spec.additional_gids.clone()),
        seccomp: seccomp_program(spec, Some(&seccomp_cache::dir(containers)))?,
        umask: spec.umask,
        ..ProcessKnobs::default()
    })
}

/// The mounts of `spec`: the profile's (Docker's list), the network files
/// of the state directory `dir`, then the caller's binds and tmpfs.
pub(crate) fn mounts(spec: &Spec, dir: &Path) -> Vec<Mount> {
    let mut out: Vec<Mount> = spec
        .base_mounts
        .iter()
        .map(|m| Mount {
            destination: m.destination.clone().into(),
            fstype: m.kind.clone(),
            source: m.source.clone().into(),
            options: m.options.clone(),
        })
        .collect();
    for name in ["resolv.conf", "hostname", "hosts"] {
        if spec.no_network_files {
            break;
        }
        out.push(Mount::bind(
            dir.join(name),
            Path::new("/etc").join(name),
            &["rbind", "rprivate"],
        ));
    }
    for m in &spec.mounts {
        match m {
            MountSpec::Bind {
                source,
                destination,
                readonly,
            } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *readonly {
                    opts.push("ro");
                }
                out.push(Mount::bind(source, destination, &opts));
            }
            MountSpec::Tmpfs {
                destination,
                options,
            } => {
                let mut opts: Vec<&str> = vec!["nosuid", "nodev", "noexec"];
                opts.extend(options.iter().map(String::as_str));
                out.push(Mount::new("tmpfs", destination, &opts));
            }
            MountSpec::Oci {
                destination,
                kind,
                source,
                options,
            } => out.push(Mount {
                destination: destination.clone(),
                fstype: kind.clone(),
                source: source.clone(),
                options: options.clone(),
            }),
        }
    }
    out
}

/// A profile's device node as the child's setup makes it (`None` for
/// numbers out of range).
fn device(n: &crate::profile::DeviceNode) -> Option<dunnage_namespaces::Device> {
    use dunnage_namespaces::{Device, DeviceKind};
    let (Ok(major), Ok(minor)) = (u32::try_from(n.major), u32::try_from(n.minor)) else {
        return None;
    };
    let kind = match n.kind {
        crate::profile::DeviceType::Block => DeviceKind::Block,
        crate::profile::DeviceType::Fifo => DeviceKind::Fifo,
        _ => DeviceKind::Char,
    };
    Some(Device {
        path: n.path.clone().into(),
        kind,
        major,
        minor,
        mode: n.file_mode,
        uid: n.uid,
        gid: n.gid,
    })
}

/// The host's device nodes directly under /dev (`docker run
/// --privileged`), except those every container gets anyway.
fn host_devices() -> Result<Vec<dunnage_namespaces::Device>> {
    const OWN: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/console",
    ];
    let nodes = crate::profile::host_devices(Path::new("/dev")).map_err(io_err("read", "/dev"))?;
    Ok(nodes
        .iter()
        // Nodes in subdirectories (/dev/cpu/0/cpuid, /dev/net/tun) are left
        // out: the child's mknod step does not create parents.
        .filter(|n| !OWN.contains(&n.path.as_str()) && n.path.matches('/').count() <= 2)
        .filter_map(device)
        .collect())
}

/// The namespaces a container gets: mount, uts, ipc, pid, and net unless
/// it uses the host's or joins one.
pub(crate) fn kinds(spec: &Spec) -> Kinds {
    let mut k = Kind::Mount | Kind::Uts | Kind::Ipc | Kind::Pid;
    if spec.network.has_own_namespace() {
        k = k | Kind::Net;
    }
    if !spec.uid_map.is_empty() {
        k = k | Kind::User;
    }
    if spec.cgroup_namespace {
        k = k | Kind::Cgroup;
    }
    for (name, _) in &spec.join_namespaces {
        if let Some(kind) = joinable(name) {
            k = k.without(kind);
        }
    }
    k
}

/// Whether the container's rootfs is set up in a joined mount namespace
/// (or the caller's own) instead of a new one.
pub(crate) fn joins_mount_namespace(spec: &Spec) -> bool {
    spec.join_namespaces.iter().any(|(name, _)| name == "mnt")
}

/// Whether `path` names the caller's own mount namespace.
pub(crate) fn is_own_mount_namespace(path: &Path) -> bool {
    is_own_namespace(Kind::Mount, path)
}

/// Whether `path` names the caller's own namespace of `kind` (an OCI
/// config without that namespace shares the runtime's): nothing to join.
fn is_own_namespace(kind: Kind, path: &Path) -> bool {
    use dunnage_namespaces::NamespaceId;
    matches!(
        (NamespaceId::of_file(path), NamespaceId::of_self(kind)),
        (Ok(a), Ok(b)) if a == b
    )
}

/// The kinds of namespace a container can join by path besides network.
pub(crate) fn joinable(name: &str) -> Option<Kind> {
    match name {
        "ipc" => Some(Kind::Ipc),
        "uts" => Some(Kind::Uts),
        "pid" => Some(Kind::Pid),
        "mnt" => Some(Kind::Mount),
        _ => None,
    }
}

/// OCI's propagation names: `shared`, `rshared`, `slave`, ...
pub(crate) fn propagation(name: &str) -> Option<dunnage_namespaces::Propagation> {
    use dunnage_namespaces::Propagation;
    let (recursive, mode) = match name.strip_prefix('r') {
        Some(rest) if rest.parse::<dunnage_namespaces::PropagationMode>().is_ok() => (true, rest),
        _ => (false, name),
    };
    let mode = mode.parse().ok()?;
    Some(if recursive {
        Propagation::recursive(mode)
    } else {
        Propagation::single(mode)
    })
}

fn id_map(map: &[crate::container::IdMapping]) -> Vec<dunnage_namespaces::IdMap> {
    map.iter()
        .map(|m| dunnage_namespaces::IdMap::new(m.container_id, m.host_id, m.size))
        .collect()
}

/// The container's init, with the start gate, not yet spawned.
pub(crate) fn build(
    spec: &Spec,
    rootfs: &Path,
    dir: &Path,
    stdio_modes: [StdioMode; 3],
) -> Result<Command> {
    let (program, args) = spec.argv.split_first().ok_or(Error::NoCommand)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .current_dir(&spec.cwd)
        .namespaces(kinds(spec));
    if joins_mount_namespace(spec) {
        cmd.rootfs_in_current_mount_namespace(rootfs);
    } else {
        cmd.rootfs(rootfs);
    }
    cmd.readonly_rootfs(spec.readonly_rootfs)
        .mounts(mounts(spec, dir))
        .default_devices(true)
        .uid(spec.uid)
        .gid(spec.gid)
        .start_gate(true)
        .process_knobs(knobs(spec, dir.parent().unwrap_or(dir))?);
    if let Some(p) = spec.rootfs_propagation.as_deref().and_then(propagation) {
        cmd.rootfs_propagation(p);
    }
    if !spec.uid_map.is_empty() {
        cmd.uid_map(id_map(&spec.uid_map))
            .gid_map(id_map(&spec.gid_map));
    }
    for e in &spec.env {
        match e.split_once('=') {
            Some((k, v)) => cmd.env(k, v),
            None => cmd.env(e, ""),
        };
    }
    let own: Vec<std::path::PathBuf> = dunnage_namespaces::Device::defaults()
        .into_iter()
        .map(|d| d.path)
        .collect();
    for n in &spec.devices {
        if let Some(d) = device(n).filter(|d| !own.contains(&d.path)) {
            cmd.device(d);
        }
    }
    if spec.privileged {
        for d in host_devices()? {
            cmd.device(d);
        }
    }
    for p in &spec.masked_paths {
        cmd.masked_path(p);
    }
    for p in &spec.readonly_paths {
        cmd.readonly_path(p);
    }
    // A joined uts namespace keeps its own hostname.
    if !spec.join_namespaces.iter().any(|(name, _)| name == "uts") {
        cmd.hostname(&spec.hostname);
    }
    for (name, path) in &spec.join_namespaces {
        if let Some(kind) = joinable(name)
            && !is_own_namespace(kind, path)
        {
            let f = std::fs::File::open(path).map_err(io_err("open", path))?;
            cmd.join_namespace(kind, f.into());
        }
    }
    match &spec.network {
        Network::None | Network::Bridge { .. } => {
            cmd.loopback_up(true);
        }
        Network::Join(path) => {
            let f = std::fs::File::open(path).map_err(io_err("open", path))?;
            cmd.join_namespace(Kind::Net, f.into());
        }
        _ => {}
    }
    if spec.tty {
        cmd.terminal(true);
    } else {
        cmd.stdin(stdio(stdio_modes[0]))
            .stdout(stdio(stdio_modes[1]))
            .stderr(stdio(stdio_modes[2]));
    }
    Ok(cmd)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `Seccomp::program` on each choice, and on hostile profile text:
    /// typed errors, never a panic.
    #[test]
    fn seccomp_program_of_each_choice() {
        assert!(Seccomp::Unconfined.program().unwrap().is_none());
        assert!(Seccomp::Default.program().unwrap().is_none());
        for bad in ["", "{", "[]", "{\"defaultAction\":\"NOPE\"}", "\u{0}"] {
            let err = Seccomp::Profile(bad.to_string()).program().unwrap_err();
            if cfg!(feature = "seccomp") {
                assert!(matches!(err, Error::Invalid { .. }), "{bad:?}: {err}");
            } else {
                assert!(matches!(err, Error::Unsupported { .. }), "{bad:?}: {err}");
            }
        }
        let good = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
        let got = Seccomp::Profile(good.to_string()).program();
        if cfg!(feature = "seccomp") {
            assert!(got.unwrap().is_some_and(|p| p.len() > 1));
        } else {
            assert!(got.is_err());
        }
    }
}
