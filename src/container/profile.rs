//! The security profile a container starts from: Docker's defaults
//! (RUNTIME.md), as a value a caller can inspect and change.
//!
//! This is the facade's interim copy; the full profile as data (mounts,
//! device rules and Docker's seccomp policy included) comes from the
//! crate's `profile` module when it lands, and replaces this one.

use serde::{Deserialize, Serialize};

/// Docker's 14 default capabilities.
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

/// Docker's masked paths.
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

/// The security settings a container starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecurityProfile {
    /// Capability names (`CAP_CHOWN`), the bounding, effective and
    /// permitted sets.
    pub capabilities: Vec<String>,
    /// Paths masked.
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
    /// Docker's default seccomp policy as OCI JSON, when one is built in;
    /// `None` means no filter by default.
    pub seccomp: Option<String>,
}

impl SecurityProfile {
    /// Docker's default profile.
    pub fn docker() -> SecurityProfile {
        SecurityProfile {
            capabilities: DOCKER_CAPABILITIES.iter().map(|s| s.to_string()).collect(),
            masked_paths: DOCKER_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DOCKER_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            seccomp: None,
        }
    }
}

impl Default for SecurityProfile {
    fn default() -> SecurityProfile {
        SecurityProfile::docker()
    }
}
