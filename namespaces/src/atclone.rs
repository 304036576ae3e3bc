//! Namespaces the spawning thread enters around `clone3`, so that the
//! child is created in them: a joined pid namespace (its
//! `pid_for_children`), and with a new user namespace the joined net, uts,
//! ipc and cgroup namespaces (joined before the user namespace is made).

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::spawn::Command;

/// The namespaces this thread entered around the clone, left (in reverse
/// order) when dropped; with a joined mount namespace, also the working
/// directory and root to come back to (entering and leaving a mount
/// namespace moves the thread to that namespace's root).
#[derive(Default)]
pub(crate) struct Entered {
    ns: Vec<(OwnedFd, libc::c_int)>,
    fs: Option<(OwnedFd, OwnedFd)>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        for (own, nstype) in self.ns.drain(..).rev() {
            // SAFETY: setns on a namespace fd we opened of a namespace this
            // thread was in (for pid: its own active one, always allowed).
            unsafe { libc::setns(own.as_raw_fd(), nstype) };
        }
        if let Some((cwd, root)) = self.fs.take() {
            // SAFETY: fchdir/chroot on directories this thread had as its
            // root and working directory.
            unsafe {
                if libc::fchdir(root.as_raw_fd()) == 0 {
                    libc::chroot(c".".as_ptr());
                }
                libc::fchdir(cwd.as_raw_fd());
            }
        }
    }
}

/// A directory of this thread opened as a path (`O_PATH`).
fn open_dir(path: &std::ffi::CStr) -> Result<OwnedFd> {
    // SAFETY: open of a literal path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::io(
            "open",
            path.to_string_lossy().into_owned(),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

impl Command {
    /// Whether the joined `kind` is entered by the spawning thread around
    /// the clone instead of by the child: pid always (setns in the child
    /// would only move its children); net, uts, ipc, cgroup, mount and time
    /// when a new user namespace is made (joined before it, as runc does,
    /// while the caller still has the privilege: the child, in its new
    /// user namespace, has none over namespaces the caller's owns).
    pub(crate) fn joined_at_clone(&self, kind: Kind) -> bool {
        kind == Kind::Pid
            || (self.kinds.contains(Kind::User)
                && matches!(
                    kind,
                    Kind::Net | Kind::Uts | Kind::Ipc | Kind::Cgroup | Kind::Mount | Kind::Time
                ))
    }

    /// Enter the namespaces joined at the clone, saving this thread's own
    /// to come back to.
    pub(crate) fn enter_at_clone(&self) -> Result<Entered> {
        let mut entered = Entered::default();
        // An exec target's pid namespace is entered the same way.
        let exec_pid = self.exec_pid_namespace()?.map(|fd| (Kind::Pid, fd));
        let joins: Vec<(Kind, &OwnedFd)> = self
            .joins
            .iter()
            .filter(|(k, _)| self.joined_at_clone(*k))
            .map(|(k, fd)| (*k, fd))
            .collect();
        if joins.iter().any(|(k, _)| *k == Kind::Mount) {
            // Saved before this thread gets its own filesystem attributes
            // (setns into a mount namespace needs them unshared; the
            // thread keeps its own from then on).
            entered.fs = Some((open_dir(c".")?, open_dir(c"/")?));
            crate::setns::prepare_mount_join(Kind::Mount.into())?;
        }
        for (kind, fd) in joins.into_iter().chain(exec_pid) {
            let own_path = format!("/proc/thread-self/ns/{}", kind.proc_name());
            let own = match std::fs::File::open(&own_path) {
                Ok(f) => OwnedFd::from(f),
                Err(e) => return Err(Error::io("open", own_path, e)),
            };
            // SAFETY: setns on caller-owned namespace fds.
            if unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag()) } != 0 {
                let e = std::io::Error::last_os_error();
                if kind == Kind::Time && e.raw_os_error() == Some(libc::EUSERS) {
                    return Err(Error::Join {
                        kind,
                        why: "with a new user namespace, a time namespace is joined by the \
                              spawning process, which the kernel allows only when it is \
                              single-threaded",
                    });
                }
                return Err(Error::syscall("setns", kind.into(), e));
            }
            entered.ns.push((own, kind.clone_flag()));
        }
        Ok(entered)
    }
}
