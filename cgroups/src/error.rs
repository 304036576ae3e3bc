//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Each variant names the file, resource or pid involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on a cgroup file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`read`, `write`, `mkdir`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{op}({arg}): {source}")]
    Sys {
        /// The system call (`mount`, `kill`, `eventfd`, ...).
        op: &'static str,
        /// Its main argument (a path, a pid; empty when it has none).
        arg: String,
        /// The error number.
        source: std::io::Error,
    },
    /// A `bpf(2)` command for the v2 device filter failed.
    #[error("{op}{}: {source}", on(path))]
    Bpf {
        /// The command (`bpf(BPF_PROG_ATTACH)`, ...).
        op: &'static str,
        /// The cgroup directory (empty when none is involved).
        path: PathBuf,
        /// The error number (`EPERM`: no `CAP_BPF`/`CAP_SYS_ADMIN`, or an
        /// ancestor holds a program that cannot be overridden).
        source: std::io::Error,
    },
    /// The kernel's verifier refused the device filter program.
    #[error("the kernel refused the device filter program: {source}: {log}")]
    BpfVerifier {
        /// The verifier's log.
        log: String,
        /// The error number of `bpf(BPF_PROG_LOAD)`.
        source: std::io::Error,
    },
    /// A file had content we could not parse.
    #[error("malformed {path} line {line}: {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line number (0 when the whole file is meant).
        line: usize,
        /// What was wrong.
        what: String,
    },
    /// A cgroup path was rejected (absolute escape, `..`, NUL, ...).
    #[error("invalid cgroup path {path:?}: {why}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        why: &'static str,
    },
    /// A resource value was rejected before anything was written.
    #[error("invalid value for {resource}: {why}")]
    InvalidValue {
        /// The resource (`memory.limit`, `cpuset.cpus`, ...).
        resource: &'static str,
        /// What was wrong with it.
        why: String,
    },
    /// The host (or this cgroup) cannot honour a resource or operation.
    #[error("{resource} is not supported here: {why}")]
    Unsupported {
        /// The resource or operation.
        resource: &'static str,
        /// Why (controller not mounted, file absent, no v2 equivalent).
        why: String,
    },
    /// A cgroup still had processes when it was to be removed.
    #[error("cgroup {path} is not empty")]
    NotEmpty {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// No process or thread with this id exists.
    #[error("no such process: {pid}")]
    NoSuchProcess {
        /// The pid or tid.
        pid: u32,
    },
    /// A v1 subsystem is already bound to another hierarchy (mount EBUSY).
    #[error("cannot mount {options:?} at {target}: a subsystem is bound to another hierarchy")]
    SubsystemBusy {
        /// The mount options tried.
        options: String,
        /// The mount point.
        target: PathBuf,
    },
    /// v2: the no-internal-process rule forbids enabling controllers in
    /// this cgroup's `cgroup.subtree_control` while it holds processes.
    #[error("cannot enable {controllers} in {path}: it has processes of its own")]
    InternalProcesses {
        /// The cgroup directory.
        path: PathBuf,
        /// The controllers that were to be enabled.
        controllers: String,
    },
    /// Waiting for a state (frozen, thawed, empty) took too long.
    #[error("timed out waiting for {what} in {path}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The cgroup directory.
        path: PathBuf,
    },
    /// No cgroup file system is mounted where one was expected.
    #[error("no cgroup hierarchy found: {0}")]
    NotMounted(String),
}

/// ` on PATH`, or nothing for an empty path.
fn on(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!(" on {}", path.display())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, what: impl Into<String>) -> Error {
        Error::Parse {
            path: path.into(),
            line,
            what: what.into(),
        }
    }

    pub(crate) fn invalid(resource: &'static str, why: impl Into<String>) -> Error {
        Error::InvalidValue {
            resource,
            why: why.into(),
        }
    }

    pub(crate) fn unsupported(resource: &'static str, why: impl Into<String>) -> Error {
        Error::Unsupported {
            resource,
            why: why.into(),
        }
    }
}
