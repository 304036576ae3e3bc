//! Running work inside another network namespace without moving the
//! calling thread.
//!
//! [`run_in`] spawns a short-lived thread, `setns(2)`s it into the target
//! namespace (`CLONE_NEWNET` only: the mount namespace, so `/proc` and
//! `/sys`, stay the caller's), runs the closure there and joins. Sockets
//! created on that thread (netlink, or anything else) stay bound to the
//! namespace they were created in and can be used from any thread after;
//! files under `/proc/sys/net` opened there show that namespace's settings.
//!
//! The thread goes back to the network namespace it started in before it
//! ends, so that it no longer holds the target when [`run_in`] returns: a
//! joined thread may not have dropped its namespaces yet (the kernel wakes
//! the joiner before it releases them), and a container's namespace that
//! nothing else holds is to die when its last process exits.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::error::{Error, Result};

/// Run `f` on a fresh thread that has joined the network namespace `netns`
/// (an fd of `/proc/PID/ns/net` or `/run/netns/NAME`), and return its value;
/// on the calling thread when that is in `netns` already.
///
/// The calling thread never changes namespace.
pub fn run_in<T, F>(netns: BorrowedFd<'_>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    // Already there (the facade's and the CLI's host namespace is the
    // caller's own): no thread, whose start can wait for a CPU for
    // milliseconds on a loaded machine.
    if is_current(netns) {
        return f();
    }
    let fd: OwnedFd = netns.try_clone_to_owned().map_err(|source| Error::Netns {
        op: "dup network namespace fd",
        source,
    })?;
    let handle = std::thread::Builder::new()
        .name("dunnage-netns".into())
        .spawn(move || -> Result<T> {
            let home = current()?;
            enter(fd.as_fd())?;
            drop(fd);
            let value = f();
            // Leave the namespace now rather than at the thread's exit.
            enter(home.as_fd())?;
            value
        })
        .map_err(|source| Error::Netns {
            op: "spawn namespace thread",
            source,
        })?;
    handle.join().unwrap_or_else(|_| {
        Err(Error::Netns {
            op: "namespace thread",
            source: io::Error::other("the thread panicked"),
        })
    })
}

/// Whether `netns` is the calling thread's network namespace (the same
/// namespace file: device and inode). `false` when either cannot be
/// looked at.
pub fn is_current(netns: BorrowedFd<'_>) -> bool {
    let Ok(here) = current() else {
        return false;
    };
    match (rustix::fs::fstat(netns), rustix::fs::fstat(&here)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// `setns(2)` the calling thread into the network namespace `netns`.
fn enter(netns: BorrowedFd<'_>) -> Result<()> {
    move_into_link_name_space(netns, Some(LinkNameSpaceType::Network)).map_err(|e| Error::Netns {
        op: "setns(CLONE_NEWNET)",
        source: e.into(),
    })
}

/// A new network namespace (with only a loopback link, down) held by
/// nothing but the returned fd: made on a short-lived thread that
/// `unshare(2)`s and goes back to where it was before it ends. Closing the
/// fd, when nothing else holds the namespace, destroys it.
pub fn create() -> Result<OwnedFd> {
    let handle = std::thread::Builder::new()
        .name("dunnage-netns".into())
        .spawn(|| -> Result<OwnedFd> {
            let home = current()?;
            // SAFETY: only the network namespace is unshared (no file
            // table), on this thread.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|e| Error::Netns {
                    op: "unshare(CLONE_NEWNET)",
                    source: e.into(),
                })?;
            let made = current()?;
            enter(home.as_fd())?;
            Ok(made)
        })
        .map_err(|source| Error::Netns {
            op: "spawn namespace thread",
            source,
        })?;
    handle.join().unwrap_or_else(|_| {
        Err(Error::Netns {
            op: "namespace thread",
            source: io::Error::other("the thread panicked"),
        })
    })
}

/// Open the network namespace file at `path` (`/run/netns/NAME`,
/// `/proc/PID/ns/net`) read-only, close-on-exec.
pub fn open(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(Error::io("open network namespace", path))
}

/// Write `value` to the sysctl `/proc/sys/net/...` file `rel` (relative to
/// `/proc/sys/net`) as seen from the network namespace `netns`.
pub fn write_sysctl(netns: BorrowedFd<'_>, rel: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys/net").join(rel);
    let value = value.to_string();
    run_in(netns, move || {
        std::fs::write(&path, value).map_err(Error::io("write sysctl", path))
    })
}

/// Read the sysctl `/proc/sys/net/...` file `rel` as seen from `netns`,
/// trimmed.
pub fn read_sysctl(netns: BorrowedFd<'_>, rel: &str) -> Result<String> {
    let path = Path::new("/proc/sys/net").join(rel);
    run_in(netns, move || {
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(Error::io("read sysctl", path))
    })
}

/// The calling thread's own network namespace, as an fd.
pub fn current() -> Result<OwnedFd> {
    open(Path::new("/proc/thread-self/ns/net"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn work_in_the_callers_own_namespace_runs_on_the_calling_thread() {
        let here = current().unwrap();
        assert!(is_current(here.as_fd()));
        let me = std::thread::current().id();
        let same = run_in(here.as_fd(), move || Ok(std::thread::current().id() == me)).unwrap();
        assert!(same);
        // Another namespace file (not a network one here) is not ours.
        let other = std::fs::File::open("/proc/self/ns/mnt").unwrap();
        assert!(!is_current(other.as_fd()));
    }
}
