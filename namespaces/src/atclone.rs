//! Namespaces the spawning thread enters around `clone3`, so that the
//! child is created in them: a joined pid namespace (its
//! `pid_for_children`), and with a new user namespace the joined net, uts,
//! ipc and cgroup namespaces (joined before the user namespace is made).

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::spawn::Command;

/// Move this thread back into the namespaces it left (in reverse order).
pub(crate) fn leave(entered: Vec<(OwnedFd, libc::c_int)>) {
    for (own, nstype) in entered.into_iter().rev() {
        // SAFETY: setns on a namespace fd we opened of a namespace this
        // thread was in (for pid: its own active one, always allowed).
        unsafe { libc::setns(own.as_raw_fd(), nstype) };
    }
}

impl Command {
    /// Whether the joined `kind` is entered by the spawning thread around
    /// the clone instead of by the child: pid always (setns in the child
    /// would only move its children); net, uts, ipc and cgroup when a new
    /// user namespace is made (joined before it, as runc does, while the
    /// caller still has the privilege).
    pub(crate) fn joined_at_clone(&self, kind: Kind) -> bool {
        kind == Kind::Pid
            || (self.kinds.contains(Kind::User)
                && matches!(kind, Kind::Net | Kind::Uts | Kind::Ipc | Kind::Cgroup))
    }

    /// Enter the namespaces joined at the clone, saving this thread's own
    /// to come back to.
    pub(crate) fn enter_at_clone(&self) -> Result<Vec<(OwnedFd, libc::c_int)>> {
        let mut entered = Vec::new();
        // An exec target's pid namespace is entered the same way.
        let exec_pid = self.exec_pid_namespace()?.map(|fd| (Kind::Pid, fd));
        let joins = self
            .joins
            .iter()
            .filter(|(k, _)| self.joined_at_clone(*k))
            .map(|(k, fd)| (*k, fd));
        for (kind, fd) in joins.chain(exec_pid) {
            let own_path = format!("/proc/thread-self/ns/{}", kind.proc_name());
            let own = match std::fs::File::open(&own_path) {
                Ok(f) => OwnedFd::from(f),
                Err(e) => {
                    leave(entered);
                    return Err(Error::io("open", own_path, e));
                }
            };
            // SAFETY: setns on caller-owned namespace fds.
            if unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag()) } != 0 {
                let e = Error::last("setns", kind.into());
                leave(entered);
                return Err(e);
            }
            entered.push((own, kind.clone_flag()));
        }
        Ok(entered)
    }
}
