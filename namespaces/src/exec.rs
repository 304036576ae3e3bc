//! Exec into a running container: [`Command::exec_in`] starts the program in
//! every namespace and the cgroup of a running process, like `runc exec` or
//! `nsenter --all`, with the same process knobs as a spawn (capabilities,
//! seccomp, ids, cwd, env, rlimits, `no_new_privs`, terminal) and no rootfs
//! setup.
//!
//! How each piece is joined:
//! - the namespaces that differ from the caller's, except pid, by the child
//!   with one `setns(pidfd, flags)` (Linux 5.8+), first of its steps after
//!   the sync: the child is single-threaded, so a user namespace among them
//!   is fine, and the kernel orders the joins itself;
//! - the pid namespace by the parent, as for a joined pid namespace:
//!   `setns(pidfd, CLONE_NEWPID)` on the spawning thread sets the namespace
//!   of its next child only, and the thread's own `pid_for_children` is put
//!   back right after `clone3`. This needs `CAP_SYS_ADMIN` in the caller's
//!   user namespace (root);
//! - the cgroup v2 of the process with `CLONE_INTO_CGROUP` (its directory
//!   under the cgroup2 mount, `/sys/fs/cgroup` or, on a hybrid host,
//!   `/sys/fs/cgroup/unified`), unless [`Command::into_cgroup`] chose one.
//!
//! A terminal is allocated in the container: `/dev/pts/ptmx` as its mount
//! namespace shows it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::ident::NamespaceId;
use crate::kind::{Kind, Kinds};
use crate::spawn::Command;

/// The running process to exec into.
#[derive(Debug)]
pub(crate) struct ExecTarget {
    pub pidfd: OwnedFd,
    /// The target's root (`/proc/PID/root`, `O_PATH`), opened by the
    /// parent when the plan is made.
    root: std::sync::OnceLock<OwnedFd>,
}

impl Command {
    /// The exec target's pidfd when its pid namespace is not the caller's:
    /// the spawn points `pid_for_children` there around `clone3`.
    pub(crate) fn exec_pid_namespace(&self) -> Result<Option<&OwnedFd>> {
        match &self.exec {
            Some(t) if t.differing()?.contains(Kind::Pid) => Ok(Some(&t.pidfd)),
            _ => Ok(None),
        }
    }

    /// Run the program inside the running process behind `pidfd` (from
    /// [`crate::pidfd_open`] or [`crate::Child::pidfd`]): all of its
    /// namespaces and its cgroup v2 (see the [module docs](crate::exec)).
    /// Not with [`namespaces`](Command::namespaces),
    /// [`join_namespace`](Command::join_namespace) or a rootfs: the spawn
    /// fails with [`Error::ExecTarget`] before clone. With
    /// [`root`](Command::root), the child `chroot`s there after joining
    /// the target's mount namespace (a target that `chroot`ed inside a
    /// mount namespace not its own). Otherwise the child always ends up
    /// in the target's root: the parent opens `/proc/PID/root` before the
    /// spawn, and the child, after joining the target's namespaces,
    /// `chroot`s there (a target that was `chroot`ed, as a container
    /// sharing or joining a mount namespace is, is not at its
    /// namespace's root, which is where `setns` puts the child), whichever
    /// mount namespace the caller is in.
    pub fn exec_in(&mut self, pidfd: OwnedFd) -> &mut Command {
        self.exec = Some(ExecTarget {
            pidfd,
            root: std::sync::OnceLock::new(),
        });
        self
    }

    /// Refuse what cannot go with an exec target.
    pub(crate) fn check_exec(&self) -> Result<()> {
        let Some(target) = &self.exec else {
            return Ok(());
        };
        let pid = target.pid()?;
        let why = if self.rootfs.is_some() {
            Some("a rootfs")
        } else if self.proc_target.is_some() {
            Some("a proc mount")
        } else if !self.kinds.is_empty() {
            Some("new namespaces")
        } else if !self.joins.is_empty() {
            Some("joined namespaces")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::ExecTarget { pid, why }),
            None => Ok(()),
        }
    }
}

impl ExecTarget {
    /// The target's pid, from the pidfd's fdinfo.
    pub(crate) fn pid(&self) -> Result<i32> {
        let path = format!("/proc/self/fdinfo/{}", self.pidfd.as_raw_fd());
        let info = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        match info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse::<i32>().ok())
        {
            Some(pid) if pid > 0 => Ok(pid),
            Some(pid) => Err(Error::NoSuchProcess(pid)),
            None => Err(Error::NotAPidfd {
                fd: self.pidfd.as_raw_fd(),
            }),
        }
    }

    /// The namespaces of the target that differ from the caller's.
    pub(crate) fn differing(&self) -> Result<Kinds> {
        let pid = self.pid()?;
        let mut kinds = Kinds::EMPTY;
        for kind in Kind::ALL {
            if !kind.is_supported() {
                continue;
            }
            if NamespaceId::of(pid, kind)? != NamespaceId::of_self(kind)? {
                kinds = kinds.with(kind);
            }
        }
        Ok(kinds)
    }

    /// The target's root, `/proc/PID/root` opened `O_PATH` (once, in the
    /// parent): the child `chroot`s there after joining the target's
    /// namespaces. Joining a mount namespace puts the child at that
    /// namespace's root, and a target that `chroot`ed (a container sharing
    /// or joining a mount namespace) is elsewhere; nor can the caller's
    /// own mount namespace tell, as it may not be the one the target was
    /// made from.
    pub(crate) fn root_fd(&self) -> Result<std::os::fd::RawFd> {
        if let Some(fd) = self.root.get() {
            return Ok(fd.as_raw_fd());
        }
        let pid = self.pid()?;
        let path = format!("/proc/{pid}/root");
        let c = Error::cstring("root", &path)?;
        // SAFETY: open of a prepared C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::io("open", path, io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The pid was still the target's after the open: not a reused one.
        self.pid()?;
        Ok(self.root.get_or_init(|| fd).as_raw_fd())
    }

    /// The namespaces the child joins itself (all but pid).
    pub(crate) fn child_kinds(&self) -> Result<Kinds> {
        Ok(self.differing()?.without(Kind::Pid))
    }

    /// The target's cgroup v2 directory, opened `O_PATH`, when it has one.
    pub(crate) fn cgroup_dir(&self) -> Result<Option<OwnedFd>> {
        let pid = self.pid()?;
        let path = format!("/proc/{pid}/cgroup");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let Some(rel) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
            return Ok(None);
        };
        let Some(mount) = cgroup2_mount() else {
            return Ok(None);
        };
        let dir = mount.join(rel.trim_start_matches('/'));
        let c = Error::cstring("cgroup directory", &dir)?;
        // SAFETY: open of a prepared C string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::io("open", dir, io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor owned by nothing else.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The pidfd, for the child's `setns`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one.
fn cgroup2_mount() -> Option<PathBuf> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            let Ok(c) = Error::cstring("cgroup mount", p) else {
                return false;
            };
            // SAFETY: statfs into a zeroed local struct.
            unsafe {
                let mut st: libc::statfs = std::mem::zeroed();
                libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
            }
        })
}
