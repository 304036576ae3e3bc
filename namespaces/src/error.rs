//! The crate's error type.

use std::io;
use std::path::PathBuf;

use crate::idmap::IdMapError;
use crate::kind::{Kind, Kinds};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace syscall (`unshare`, `setns`, `clone3`, ...) failed.
    #[error("{op} ({kinds}) failed: {source}")]
    Syscall {
        /// The syscall.
        op: &'static str,
        /// The namespace kinds involved.
        kinds: Kinds,
        /// The kernel's error.
        source: io::Error,
    },
    /// A namespace syscall was refused for lack of privilege.
    #[error("{op} ({kinds}) not permitted: {reason}")]
    Permission {
        /// The syscall.
        op: &'static str,
        /// The namespace kinds involved.
        kinds: Kinds,
        /// What privilege is missing.
        reason: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done (`open`, `write`, `mount --bind`, ...).
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The kernel's error.
        source: io::Error,
    },
    /// No process has this pid.
    #[error("no process with pid {0}")]
    NoSuchProcess(i32),
    /// The file is not a namespace file (`/proc/<pid>/ns/*` or a bind mount
    /// of one).
    #[error("{path} is not a namespace file")]
    NotANamespace {
        /// The file.
        path: PathBuf,
    },
    /// The namespace file is of another kind than expected.
    #[error("{path} is a {found} namespace, expected {expected}")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// The kind asked for.
        expected: Kind,
        /// The kind the file is.
        found: Kind,
    },
    /// A uid or gid map is malformed.
    #[error("invalid {which} map: {source}")]
    IdMap {
        /// `uid` or `gid`.
        which: &'static str,
        /// What is wrong.
        source: IdMapError,
    },
    /// `newuidmap` / `newgidmap` failed.
    #[error("{program} failed ({status}): {stderr}")]
    IdMapHelper {
        /// The helper.
        program: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        stderr: String,
    },
    /// The new process failed while setting itself up, before exec: step
    /// `index` of [`crate::Command::plan`].
    #[error("child setup failed at step {index} ({step}): {source}")]
    Setup {
        /// The step's index in the plan.
        index: usize,
        /// The step kind ([`crate::Step::name`]: `"chdir"`, `"mount"`, ...).
        name: &'static str,
        /// The step as shown by [`crate::Step`]'s `Display`.
        step: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// The program could not be executed.
    #[error("cannot execute {program}: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The kernel's error (ENOENT, EACCES, ...).
        source: io::Error,
    },
    /// The rootfs is missing or not a directory.
    #[error("rootfs {path}: {source}")]
    Rootfs {
        /// The rootfs.
        path: PathBuf,
        /// Why it cannot be used.
        source: io::Error,
    },
    /// A mount table entry, device, masked or read-only path is refused.
    #[error("mount {destination}: {reason}")]
    InvalidMount {
        /// The path inside the container.
        destination: PathBuf,
        /// What is wrong.
        reason: crate::mounts::MountError,
    },
    /// The source of a bind mount cannot be used.
    #[error("mount {destination}: source {source_path}: {source}")]
    MountSource {
        /// The path inside the container.
        destination: PathBuf,
        /// The host path.
        source_path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Joining an existing namespace cannot be combined with this request
    /// (a namespace both new and joined; a joined mount namespace with a
    /// new user namespace and a rootfs or proc mount: the new user
    /// namespace has no privilege to mount there; a time namespace with a
    /// new user namespace from a multithreaded process, which the kernel
    /// refuses with `EUSERS`).
    #[error("cannot join a {kind} namespace here: {why}")]
    Join {
        /// The namespace kind to join.
        kind: Kind,
        /// Why not.
        why: &'static str,
    },
    /// A descriptor to pass to the program has a number below 3 or is
    /// given twice.
    #[error("cannot pass a descriptor as fd {fd}")]
    BadFd {
        /// The number in the program.
        fd: i32,
    },
    /// The descriptor is not a pidfd.
    #[error("fd {fd} is not a pidfd")]
    NotAPidfd {
        /// The descriptor.
        fd: i32,
    },
    /// A string handed to the kernel contains a NUL byte.
    #[error("{what} contains a NUL byte: {value:?}")]
    NulByte {
        /// What the string is (`argument`, `path`, `hostname`, ...).
        what: &'static str,
        /// The string.
        value: std::ffi::OsString,
    },
    /// A setting needs a new namespace that was not asked for (a hostname
    /// without a new UTS namespace, ...).
    #[error("{what} needs a new {kind} namespace")]
    NeedsNamespace {
        /// The setting.
        what: &'static str,
        /// The namespace it needs.
        kind: Kind,
    },
    /// A new time namespace is made after the child starts: it cannot be
    /// persisted by [`crate::Command::persist`] (persist
    /// `/proc/<pid>/ns/time` instead).
    #[error(
        "a new time namespace cannot be persisted at spawn; persist /proc/<pid>/ns/time instead"
    )]
    CannotPersistTime,
    /// The running kernel lacks a feature (see the crate docs for the
    /// minimum kernel).
    #[error("{feature} needs Linux {min_kernel} or later")]
    Unsupported {
        /// The feature.
        feature: &'static str,
        /// The first kernel that has it.
        min_kernel: &'static str,
    },
    /// [`crate::Command::exec_in`] together with something it cannot go
    /// with (new namespaces, a rootfs, ...).
    #[error("exec into process {pid} cannot have {why}")]
    ExecTarget {
        /// The target process.
        pid: i32,
        /// What was asked besides.
        why: &'static str,
    },
    /// [`crate::Command::join_cgroup_tasks_later`] together with something
    /// the child could not join them by path from.
    #[error("cgroups joined later by path cannot go with {why}")]
    CgroupsLater {
        /// What was asked besides.
        why: &'static str,
    },
    /// A process-confinement knob (capability, rlimit, sysctl, seccomp,
    /// ...) that cannot work, found before clone.
    #[error(transparent)]
    Confine(#[from] crate::confine_error::ConfineError),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error for a failed namespace syscall: [`Error::Permission`] with
    /// an explanation for EPERM (and ENOSPC on user namespaces), otherwise
    /// [`Error::Syscall`].
    pub(crate) fn syscall(op: &'static str, kinds: Kinds, source: io::Error) -> Error {
        let user = kinds.contains(Kind::User);
        match source.raw_os_error() {
            Some(libc::EPERM) => Error::Permission {
                op,
                kinds,
                reason: permission_reason(user),
            },
            Some(libc::ENOSPC) if user => Error::Permission {
                op,
                kinds,
                reason: user_ns_limit_reason(),
            },
            _ => Error::Syscall { op, kinds, source },
        }
    }

    /// The last OS error as a failed namespace syscall.
    pub(crate) fn last(op: &'static str, kinds: Kinds) -> Error {
        Error::syscall(op, kinds, io::Error::last_os_error())
    }

    /// A string with a NUL byte, as [`Error::NulByte`].
    pub(crate) fn cstring(
        what: &'static str,
        s: impl AsRef<std::ffi::OsStr>,
    ) -> Result<std::ffi::CString> {
        let s = s.as_ref();
        dunnage_base::cstr::cstring(s).map_err(|_| Error::NulByte {
            what,
            value: s.to_owned(),
        })
    }

    /// A failed file operation.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn read_sysctl(path: &str) -> Option<i64> {
    dunnage_base::fs::read_unsized_string(std::path::Path::new(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn user_ns_limit_reason() -> String {
    match read_sysctl("/proc/sys/user/max_user_namespaces") {
        Some(0) => "user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)".into(),
        Some(n) => format!(
            "the limit of {n} user namespaces (/proc/sys/user/max_user_namespaces) is reached"
        ),
        None => "the user namespace limit is reached".into(),
    }
}

/// Why EPERM: user namespaces disabled by a sysctl, or a missing capability.
fn permission_reason(user: bool) -> String {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if user {
        if read_sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
            return user_ns_limit_reason();
        }
        if !root && read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
            return "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone = 0)".into();
        }
        if !root && read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1)
        {
            return "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns = 1)".into();
        }
        return "the kernel refused a user namespace (in a chroot, or a multithreaded caller?)"
            .into();
    }
    "CAP_SYS_ADMIN is missing: run as root, or create a user namespace along with the others".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_becomes_an_explained_permission_error() {
        let e = Error::syscall(
            "unshare",
            Kind::Net.into(),
            io::Error::from_raw_os_error(libc::EPERM),
        );
        let text = e.to_string();
        assert!(matches!(e, Error::Permission { .. }), "{e:?}");
        assert!(text.contains("unshare (net) not permitted"), "{text}");
        assert!(text.contains("CAP_SYS_ADMIN"), "{text}");
    }

    #[test]
    fn other_errors_keep_the_syscall_and_kinds() {
        let e = Error::syscall(
            "setns",
            Kind::Mount | Kind::Uts,
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(e.to_string().starts_with("setns (mnt+uts) failed"), "{e}");
    }
}
