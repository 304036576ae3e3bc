//! The child's setup as data: an ordered list of [`Step`]s that the parent
//! builds and validates, and the child runs with raw syscalls only.
//!
//! Every path, string, id list and flag word is prepared in the parent
//! (C strings, `Vec`s, resolved numbers); the child reads them and makes one
//! or a few syscalls per step, without allocating or taking a lock. A failed
//! step is reported to the parent as its index in the list and the errno,
//! and comes back from [`crate::Command::spawn`] as [`crate::Error::Setup`].
//!
//! Adding a step kind is one variant here (with its [`Step::name`] and
//! [`Display`](fmt::Display) text) and one function in the child's runner
//! (`setup.rs`).

use std::ffi::CString;
use std::fmt;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, gid_t, pid_t, uid_t};

/// One prepared step of the child's setup, in the order the child runs them.
///
/// File descriptor numbers are those of one spawn; in
/// [`crate::Command::plan`] the descriptors that only exist during a spawn
/// are shown as -1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// `close` these descriptors: the parent's ends of the child's pipes,
    /// which the child must not hold (a reader would never see end of file).
    Close {
        /// The descriptors.
        fds: Vec<RawFd>,
    },
    /// `prctl(PR_SET_PDEATHSIG)`, then exit quietly if the parent already
    /// died (its pid is no longer the child's parent).
    ParentDeathSignal {
        /// The signal.
        signal: c_int,
        /// The parent's pid as the child sees it (0: not checked, as in a
        /// new pid namespace).
        parent: pid_t,
    },
    /// Wait for the parent's go byte on the sync pipe (the parent writes id
    /// maps, persists namespaces and runs its hook meanwhile). End of file
    /// means the parent went away: the child exits quietly with status 127.
    WaitParent {
        /// Read end of the sync pipe.
        fd: RawFd,
    },
    /// `dup2(from, to)`: stdin, stdout or stderr from a prepared source.
    Dup2 {
        /// The source descriptor (3 or above).
        from: RawFd,
        /// 0, 1 or 2.
        to: RawFd,
    },
    /// `mount(NULL, target, NULL, flags, NULL)` changing propagation.
    Propagation {
        /// The mount point.
        target: CString,
        /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`, with
        /// `MS_REC` when recursive.
        flags: c_ulong,
    },
    /// `sethostname` in the new UTS namespace.
    Hostname(CString),
    /// `setdomainname` in the new UTS namespace.
    Domainname(CString),
    /// `ioctl(SIOCSIFFLAGS)` bringing `lo` up in the new network namespace.
    Loopback,
    /// `unshare(CLONE_NEWTIME)`, writing the offsets to
    /// `/proc/self/timens_offsets` and `setns` into `time_for_children`.
    TimeNamespace {
        /// The offsets in the kernel's format (`monotonic 5 0\n...`).
        offsets: CString,
    },
    /// `chroot` into a directory, then `chdir("/")`.
    Chroot(CString),
    /// `chdir` into a directory.
    Chdir(CString),
    /// `mount(2)` with the classic API.
    Mount {
        /// The source (NULL when `None`).
        source: Option<CString>,
        /// The mount point.
        target: CString,
        /// The filesystem type (NULL when `None`).
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: c_ulong,
        /// Filesystem options (NULL when `None`).
        data: Option<CString>,
    },
    /// `setgroups(2)` as a raw syscall (glibc's wrapper would signal the
    /// parent's threads, which do not exist in the child).
    SetGroups(Vec<gid_t>),
    /// `setresgid(gid, gid, gid)` as a raw syscall.
    SetGid(gid_t),
    /// `setresuid(uid, uid, uid)` as a raw syscall.
    SetUid(uid_t),
    /// Default SIGPIPE (Rust ignores it) and an empty signal mask.
    ResetSignals,
    /// Mark every descriptor from `first` up close-on-exec, so that nothing
    /// leaked into the parent reaches the program (CVE-2024-21626):
    /// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11), or on older kernels
    /// `fcntl(F_SETFD)` on each number below `limit`.
    CloseFrom {
        /// The first descriptor.
        first: c_int,
        /// The parent's `RLIMIT_NOFILE` soft limit (bound of the fallback).
        limit: c_int,
    },
    /// A confinement step: capabilities, rlimits, sysctls, seccomp, ...
    Confine(crate::confine::ConfineStep),
}

impl Step {
    /// A short name of the step kind (`"chdir"`, `"mount"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Close { .. } => "close",
            Step::ParentDeathSignal { .. } => "parent death signal",
            Step::WaitParent { .. } => "wait for parent",
            Step::Dup2 { .. } => "dup2",
            Step::Propagation { .. } => "propagation",
            Step::Hostname(_) => "sethostname",
            Step::Domainname(_) => "setdomainname",
            Step::Loopback => "loopback up",
            Step::TimeNamespace { .. } => "time namespace",
            Step::Chroot(_) => "chroot",
            Step::Chdir(_) => "chdir",
            Step::Mount { .. } => "mount",
            Step::SetGroups(_) => "setgroups",
            Step::SetGid(_) => "setresgid",
            Step::SetUid(_) => "setresuid",
            Step::ResetSignals => "reset signals",
            Step::CloseFrom { .. } => "close-on-exec fds",
            Step::Confine(s) => s.name(),
        }
    }
}

fn show(c: &CString) -> String {
    String::from_utf8_lossy(c.as_bytes()).into_owned()
}

fn show_opt(c: &Option<CString>) -> String {
    c.as_ref().map_or_else(|| "none".to_owned(), show)
}

impl fmt::Display for Step {
    /// The step as one line, for `Command::plan` and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Close { fds } => write!(f, "close {fds:?}"),
            Step::ParentDeathSignal { signal, .. } => {
                write!(f, "prctl(PR_SET_PDEATHSIG, {signal})")
            }
            Step::WaitParent { fd } => write!(f, "wait for the parent on fd {fd}"),
            Step::Dup2 { from, to } => write!(f, "dup2({from}, {to})"),
            Step::Propagation { target, flags } => {
                write!(f, "propagation {flags:#x} of {}", show(target))
            }
            Step::Hostname(name) => write!(f, "sethostname {}", show(name)),
            Step::Domainname(name) => write!(f, "setdomainname {}", show(name)),
            Step::Loopback => f.write_str("ioctl(SIOCSIFFLAGS) lo up"),
            Step::TimeNamespace { offsets } => {
                write!(f, "time namespace with offsets {:?}", show(offsets))
            }
            Step::Chroot(dir) => write!(f, "chroot {}", show(dir)),
            Step::Chdir(dir) => write!(f, "chdir {}", show(dir)),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount {} on {} type {} flags {flags:#x} data {}",
                show_opt(source),
                show(target),
                show_opt(fstype),
                show_opt(data)
            ),
            Step::SetGroups(groups) => write!(f, "setgroups {groups:?}"),
            Step::SetGid(gid) => write!(f, "setresgid {gid}"),
            Step::SetUid(uid) => write!(f, "setresuid {uid}"),
            Step::ResetSignals => f.write_str("reset SIGPIPE and the signal mask"),
            Step::CloseFrom { first, .. } => write!(f, "close-on-exec every fd from {first}"),
            Step::Confine(s) => s.fmt(f),
        }
    }
}
