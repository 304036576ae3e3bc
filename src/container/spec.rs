//! The resolved container: what the builder, the image's config and the
//! security profile add up to, as one serializable value. It is stored as
//! `containers/<id>/config.json` and can be inspected without privilege
//! before anything is created ([`crate::container::Container::resolve`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::error::{Error, Result};

/// A container's status, as `docker ps` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// The process is set up and waits at its start gate.
    Created,
    /// The process runs.
    Running,
    /// The process is frozen.
    Paused,
    /// The process has ended (its exit code is recorded when known).
    Exited,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
        })
    }
}

/// The container's network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Network {
    /// A new network namespace with only a loopback interface (up).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// The network namespace at this path (`/proc/PID/ns/net`, a file
    /// persisted by `ip netns`).
    Join(PathBuf),
    /// A new network namespace attached to a `dunnage-network` bridge
    /// network (docker's `--network bridge|NAME -p ...`): a veth pair with
    /// the container's end as `eth0`, an address leased from the network's
    /// subnet, a default route via its gateway, and the published ports.
    /// The network lives in the network namespace the library runs in
    /// (see [`crate::container::network`]).
    Bridge {
        /// The network's name (`dunnage0` is the default network).
        name: String,
        /// The published ports (`-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`).
        #[serde(default)]
        ports: Vec<dunnage_network::PortMapping>,
    },
}

impl Network {
    /// Whether the container gets a network namespace of its own (none or
    /// bridge), as opposed to the host's or a joined one.
    pub fn has_own_namespace(&self) -> bool {
        matches!(self, Network::None | Network::Bridge { .. })
    }
}

/// Which seccomp filter the process gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Seccomp {
    /// The security profile's (Docker's default policy).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// An OCI seccomp profile, as JSON text.
    Profile(String),
}

/// One extra mount of the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MountSpec {
    /// `-v SRC:DST[:ro]`: a recursive bind of a host path.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Where it appears in the container.
        destination: PathBuf,
        /// Read-only.
        readonly: bool,
    },
    /// `--tmpfs DST[:OPTIONS]`.
    Tmpfs {
        /// Where it appears in the container.
        destination: PathBuf,
        /// Mount options (`size=64m`, `mode=1777`, ...).
        options: Vec<String>,
    },
    /// Any mount with OCI options, applied as given (an OCI config's
    /// `mounts` entry: a bind with `nosuid`, a `proc`, ...).
    Oci {
        /// Where it appears in the container.
        destination: PathBuf,
        /// The filesystem type (`bind` or `none` for binds).
        kind: String,
        /// A host path for binds, else the name shown in the mount table.
        source: PathBuf,
        /// OCI mount options (`rbind`, `nosuid`, `ro`, `size=1m`, ...).
        options: Vec<String>,
    },
}

/// One line of a user namespace's uid or gid map: `size` ids from
/// `container_id` in the container are ids from `host_id` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id in the container.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// Number of ids.
    pub size: u32,
}

/// A resource limit (`--ulimit nofile=1024:2048`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSpec {
    /// The name without `RLIMIT_`, lower case (`nofile`).
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The cgroup limits, in docker's units. `None` leaves the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// `-m`: bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap in bytes; -1 unlimited.
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`: the soft limit in bytes.
    #[serde(default)]
    pub memory_reservation: Option<u64>,
    /// `--memory-swappiness` (0..=100; cgroup v1).
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable`.
    #[serde(default)]
    pub oom_kill_disable: Option<bool>,
    /// `--kernel-memory-tcp`: the TCP buffer memory limit in bytes; -1
    /// unlimited (cgroup v1 only).
    #[serde(default)]
    pub memory_kernel_tcp: Option<i64>,
    /// CPU quota in microseconds per `cpu_period` (`--cpus 1.5`: 150000
    /// per 100000).
    pub cpu_quota: Option<u64>,
    /// CPU period in microseconds (100000 when only a quota is given).
    pub cpu_period: Option<u64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`; -1 or 0 unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (10..=1000).
    pub io_weight: Option<u16>,
    /// Huge-page limits: page size (`2MB`) and bytes.
    pub hugetlb: Vec<(String, u64)>,
}

impl ResourceLimits {
    /// The cgroup resources to apply.
    pub fn to_cgroup(&self) -> Result<dunnage_cgroups::Resources> {
        use dunnage_cgroups::{HugetlbLimit, Limit, Resources};
        let mut r = Resources::default();
        r.memory.limit = self.memory.map(Limit::Value);
        if let Some(swap) = self.memory_swap {
            r.memory.swap = Some(Limit::from_i64("memory-swap", swap)?);
        }
        r.memory.reservation = self.memory_reservation.map(Limit::Value);
        r.memory.swappiness = self.memory_swappiness;
        r.memory.disable_oom_killer = self.oom_kill_disable;
        if let Some(t) = self.memory_kernel_tcp {
            r.memory.kernel_tcp = Some(Limit::from_i64("memory-kernel-tcp", t)?);
        }
        if let Some(q) = self.cpu_quota {
            r.cpu.quota = Some(Limit::Value(q));
            r.cpu.period = Some(self.cpu_period.unwrap_or(100_000));
        } else {
            r.cpu.period = self.cpu_period;
        }
        r.cpu.shares = self.cpu_shares;
        r.cpuset.cpus = self.cpuset_cpus.clone();
        r.cpuset.mems = self.cpuset_mems.clone();
        r.pids_max = match self.pids_limit {
            None => None,
            Some(n) if n <= 0 => Some(Limit::Max),
            Some(n) => Some(Limit::Value(n.unsigned_abs())),
        };
        r.io.weight = self.io_weight;
        r.hugetlb = self
            .hugetlb
            .iter()
            .map(|(page_size, limit)| HugetlbLimit {
                page_size: page_size.clone(),
                limit: *limit,
            })
            .collect();
        r.validate()?;
        Ok(r)
    }
}

/// The process settings as configured, before the runtime fills them in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// `KEY=value` entries of the image and the caller.
    pub env: Vec<String>,
    /// The working directory of the image or the caller (empty: none).
    pub working_dir: String,
}

/// The resolved container, as stored in `containers/<id>/config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Spec {
    /// The container's ID: 64 lower-case hex digits.
    pub id: String,
    /// Its name (docker makes one up when none is given; we use the first
    /// 12 digits of the ID).
    pub name: String,
    /// The image ID (`sha256:...`), when made from an image.
    pub image: Option<String>,
    /// The image as the caller named it.
    pub image_name: Option<String>,
    /// The top layer chain of the image (`sha256:...`), if it has layers.
    pub chain: Option<String>,
    /// The rootfs directory, when made from one instead of an image.
    pub rootfs_dir: Option<PathBuf>,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// The working directory (absolute).
    pub cwd: String,
    /// The configured environment (the image's with the caller's changes)
    /// and working directory, before the runtime's additions (`HOSTNAME`,
    /// `HOME`, `/`): what docker's inspect shows as `Config.Env` and
    /// `Config.WorkingDir`. `None` in the state of older versions.
    #[serde(default)]
    pub config: Option<ConfigView>,
    /// The user as given (`name`, `uid`, `uid:gid`; empty: root).
    pub user: String,
    /// The resolved uid.
    pub uid: u32,
    /// The resolved gid.
    pub gid: u32,
    /// The resolved supplementary groups (from /etc/group).
    pub additional_gids: Vec<u32>,
    /// The hostname (docker: the short ID).
    pub hostname: String,
    /// The signal `stop` sends first (`SIGTERM`).
    pub stop_signal: String,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// The five capability sets of the process, applied as given whatever
    /// the user (a stored spec's old single list reads as bounding =
    /// effective = permitted).
    pub capabilities: crate::container::CapabilitySets,
    /// Privileged (all capabilities, no masked or read-only paths, no
    /// seccomp, host devices).
    pub privileged: bool,
    /// Paths masked (`/dev/null` or an empty tmpfs over them).
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
    /// A read-only root.
    pub readonly_rootfs: bool,
    /// The profile's mounts (Docker's list), applied first.
    #[serde(default)]
    pub base_mounts: Vec<crate::profile::ProfileMount>,
    /// The profile's device nodes (the runtime's defaults, null, zero,
    /// full, random, urandom, tty, are always made).
    #[serde(default)]
    pub devices: Vec<crate::profile::DeviceNode>,
    /// Extra mounts, in order after the profile's.
    pub mounts: Vec<MountSpec>,
    /// The seccomp choice.
    pub seccomp: Seccomp,
    /// `no_new_privs`.
    pub no_new_privileges: bool,
    /// Do not bind the state directory's resolv.conf, hostname and hosts
    /// over the rootfs's /etc (an OCI config's own mounts say what to bind).
    #[serde(default)]
    pub no_network_files: bool,
    /// The propagation of the container's `/` after the pivot, as OCI's
    /// `rootfsPropagation` names it (`shared`, `rslave`, ...; `None`:
    /// private).
    #[serde(default)]
    pub rootfs_propagation: Option<String>,
    /// Namespaces joined instead of made: `ipc`, `uts` or `pid`, and the
    /// path of the namespace file (`/proc/PID/ns/ipc`).
    #[serde(default)]
    pub join_namespaces: Vec<(String, PathBuf)>,
    /// A cgroup namespace of its own (rooted at the container's cgroup).
    #[serde(default)]
    pub cgroup_namespace: bool,
    /// The uid map of the container's own user namespace (empty: no user
    /// namespace).
    #[serde(default)]
    pub uid_map: Vec<IdMapping>,
    /// Its gid map.
    #[serde(default)]
    pub gid_map: Vec<IdMapping>,
    /// The process's umask (`None`: inherited, 022 in practice).
    #[serde(default)]
    pub umask: Option<u32>,
    /// Resource limits of the process.
    pub rlimits: Vec<RlimitSpec>,
    /// Namespaced sysctls.
    pub sysctls: Vec<(String, String)>,
    /// The device cgroup rules of the profile, in order (runc's own
    /// allowances are added at create).
    #[serde(default)]
    pub device_rules: Vec<crate::profile::DeviceRule>,
    /// The network.
    pub network: Network,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The cgroup limits.
    pub resources: ResourceLimits,
    /// The cgroup, relative to each hierarchy's root (`dunnage/<id>`).
    pub cgroup: String,
    /// When the container was made (RFC 3339, UTC).
    pub created: String,
}

impl Spec {
    /// The first 12 digits of the ID, as docker shows it.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// Parse a stored spec.
    pub fn from_json(path: PathBuf, bytes: &[u8]) -> Result<Spec> {
        serde_json::from_slice(bytes).map_err(|e| Error::CorruptState {
            path,
            reason: e.to_string(),
        })
    }
}

/// Whether `name` is a name docker accepts: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A signal's number from its name (`SIGTERM`, `TERM`) or number (`15`).
pub fn signal_number(name: &str) -> Result<i32> {
    let bad = || Error::Invalid {
        what: "signal",
        reason: format!("{name:?} is not a signal"),
    };
    if let Ok(n) = name.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = name.to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match short {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = short
                .strip_prefix("RTMIN+")
                .and_then(|n| n.parse::<i32>().ok())
                .map(|n| libc::SIGRTMIN() + n);
            return rt.filter(|n| *n <= libc::SIGRTMAX()).ok_or_else(bad);
        }
    };
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-ab"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
        assert!(!valid_name("ab c"));
    }

    #[test]
    fn signals() {
        assert_eq!(signal_number("SIGTERM").unwrap(), 15);
        assert_eq!(signal_number("kill").unwrap(), 9);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert_eq!(signal_number("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        for bad in ["", "0", "65", "SIGNOPE", "RTMIN+99", "-1", "SIG"] {
            assert!(signal_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_convert() {
        let r = ResourceLimits {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            pids_limit: Some(0),
            ..ResourceLimits::default()
        }
        .to_cgroup()
        .unwrap();
        assert_eq!(r.cpu.period, Some(100_000));
        assert_eq!(r.pids_max, Some(dunnage_cgroups::Limit::Max));
        assert_eq!(r.memory.kernel_tcp, None);
        let tcp = ResourceLimits {
            memory_kernel_tcp: Some(-1),
            ..ResourceLimits::default()
        };
        let r = tcp.to_cgroup().unwrap();
        assert_eq!(r.memory.kernel_tcp, Some(dunnage_cgroups::Limit::Max));
        for bad in [
            ResourceLimits {
                memory_swap: Some(-7),
                ..ResourceLimits::default()
            },
            ResourceLimits {
                memory_kernel_tcp: Some(-2),
                ..ResourceLimits::default()
            },
        ] {
            assert!(bad.to_cgroup().is_err());
        }
    }
}
