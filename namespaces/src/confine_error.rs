//! Errors of the process-confinement knobs (capabilities, rlimits, sysctls,
//! seccomp, ...), all found by the parent before the child is cloned.

use crate::kind::Kind;

/// A process knob that cannot work, found before clone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfineError {
    /// A capability name this crate does not know.
    #[error("unknown capability {name:?}")]
    UnknownCapability {
        /// The name as given.
        name: String,
    },
    /// One capability set is not within another, which the kernel would
    /// refuse (effective or ambient outside permitted, ambient outside
    /// inheritable).
    #[error("{set} capabilities {extra:?} are not {within}")]
    CapabilitySets {
        /// The set that is too large.
        set: &'static str,
        /// The set it must be within.
        within: &'static str,
        /// The capabilities in excess.
        extra: Vec<String>,
    },
    /// An rlimit name this crate does not know.
    #[error("unknown rlimit {name:?}")]
    UnknownRlimit {
        /// The name as given.
        name: String,
    },
    /// The same rlimit given twice.
    #[error("rlimit {name} given twice")]
    DuplicateRlimit {
        /// The rlimit.
        name: String,
    },
    /// A soft limit above its hard limit.
    #[error("rlimit {name}: soft limit {soft} is above the hard limit {hard}")]
    RlimitSoftAboveHard {
        /// The rlimit.
        name: String,
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
    /// A sysctl that no namespace isolates: setting it would change the
    /// host.
    #[error("sysctl {name} is not namespaced: it would change the host")]
    SysctlNotNamespaced {
        /// The sysctl.
        name: String,
    },
    /// A namespaced sysctl whose namespace the process does not get (for
    /// example `net.*` in the host's network namespace).
    #[error("sysctl {name} needs a {kind} namespace of the container's own")]
    SysctlNeedsNamespace {
        /// The sysctl.
        name: String,
        /// The namespace kind it belongs to.
        kind: Kind,
    },
    /// A malformed sysctl name (empty component, `..`, NUL byte) or value
    /// (NUL byte).
    #[error("invalid sysctl {name:?}")]
    InvalidSysctl {
        /// The name as given.
        name: String,
    },
    /// An `oom_score_adj` outside -1000..=1000.
    #[error("oom_score_adj {value} is outside -1000..=1000")]
    OomScoreAdj {
        /// The value given.
        value: i32,
    },
    /// A umask with bits above 0o777.
    #[error("umask {value:#o} has bits above 0o777")]
    Umask {
        /// The value given.
        value: u32,
    },
    /// A seccomp profile that cannot be compiled.
    #[error("seccomp profile: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
}
