//! Docker's security profile as a value: what `docker run` puts in a
//! container's config.json besides the user's own settings (capabilities,
//! masked and read-only paths, the mount list, device nodes and device
//! cgroup rules, the seccomp policy, sysctls), inspectable and changeable.
//!
//! - [`Profile::docker`]: `docker run`'s defaults (docker 20.10.24, as
//!   captured from a private dockerd on this machine; the seccomp policy
//!   is docker's `default.json` as dockerd writes it into config.json).
//! - [`Profile::privileged`]: `docker run --privileged`: every capability,
//!   no seccomp filter, no masked or read-only paths, every host device
//!   allowed and created, `/sys` and `/sys/fs/cgroup` read-write.
//! - [`Profile::unconfined`]: Docker's mounts and devices with no seccomp
//!   filter, every capability and no masked or read-only paths (`--cap-add
//!   ALL --security-opt seccomp=unconfined --security-opt
//!   systempaths=unconfined`), but no extra devices.
//!
//! ```
//! let mut p = dunnage::profile::Profile::docker();
//! assert_eq!(p.capabilities.len(), 14);
//! p.capabilities.retain(|c| c != "CAP_NET_RAW");
//! assert!(p.seccomp.is_some());
//! ```

mod devices;
mod mounts;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use devices::{DeviceNode, DeviceRule, DeviceType, host_devices};
pub use mounts::ProfileMount;

/// Docker 20.10's default seccomp policy (`linux.seccomp` of the
/// config.json dockerd writes), as JSON text.
pub const DOCKER_SECCOMP_JSON: &str = include_str!("docker-seccomp.json");

/// Docker's 14 default capabilities, in docker's order.
pub const DOCKER_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux 6.x defines, by number (`CAP_CHOWN` is 0).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's masked paths (files get `/dev/null` bound over them,
/// directories an empty read-only tmpfs).
pub const DOCKER_MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Docker's read-only paths.
pub const DOCKER_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The sysctls docker sets in a container with its own network namespace
/// (not with `--network host`).
pub const DOCKER_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

/// The security settings a container starts from; every field public, to
/// inspect and change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Profile {
    /// Capability names (`CAP_CHOWN`): the bounding, effective and
    /// permitted sets (no inheritable, no ambient, as in docker).
    pub capabilities: Vec<String>,
    /// Paths masked.
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
    /// The mounts every container gets, in order, before the user's.
    pub mounts: Vec<ProfileMount>,
    /// The device nodes created in the container's `/dev` (besides
    /// `/dev/ptmx`, `/dev/fd` and the stdio links, which every runtime
    /// makes).
    pub devices: Vec<DeviceNode>,
    /// Create every device node of the host's `/dev` too (privileged).
    pub host_devices: bool,
    /// The device cgroup rules, in order (the last match wins).
    pub device_rules: Vec<DeviceRule>,
    /// The seccomp policy (an OCI `linux.seccomp` object); `None`: no
    /// filter.
    pub seccomp: Option<serde_json::Value>,
    /// Sysctls set when the container has its own network namespace.
    pub network_sysctls: BTreeMap<String, String>,
}

impl Profile {
    /// `docker run`'s defaults.
    pub fn docker() -> Profile {
        Profile {
            capabilities: strings(&DOCKER_CAPABILITIES),
            masked_paths: strings(&DOCKER_MASKED_PATHS),
            readonly_paths: strings(&DOCKER_READONLY_PATHS),
            mounts: mounts::docker(false),
            devices: devices::docker_nodes(),
            host_devices: false,
            device_rules: devices::docker_rules(),
            seccomp: Some(docker_seccomp()),
            network_sysctls: DOCKER_SYSCTLS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// `docker run --privileged`.
    pub fn privileged() -> Profile {
        Profile {
            capabilities: strings(&ALL_CAPABILITIES),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            mounts: mounts::docker(true),
            host_devices: true,
            device_rules: vec![DeviceRule::allow_all()],
            seccomp: None,
            ..Profile::docker()
        }
    }

    /// Docker's mounts, devices and device rules, without the confinement:
    /// every capability, no seccomp filter, nothing masked or read-only.
    pub fn unconfined() -> Profile {
        Profile {
            capabilities: strings(&ALL_CAPABILITIES),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            seccomp: None,
            ..Profile::docker()
        }
    }

    /// Whether this is exactly [`Profile::privileged`].
    pub fn is_privileged(&self) -> bool {
        *self == Profile::privileged()
    }
}

impl Default for Profile {
    fn default() -> Profile {
        Profile::docker()
    }
}

/// Docker's default seccomp policy, parsed.
pub fn docker_seccomp() -> serde_json::Value {
    // The embedded text is checked by the tests; a failure here cannot come
    // from input, but it still degrades to "no policy text" rather than a
    // panic: an empty object, which the seccomp compiler refuses loudly.
    serde_json::from_str(DOCKER_SECCOMP_JSON).unwrap_or_else(|_| serde_json::json!({}))
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests;
