//! Join the namespaces of a running process, or a persisted namespace.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::ident::open_namespace_file;
use crate::kind::{Kind, Kinds};

/// `pidfd_open(2)`: a file descriptor referring to process `pid`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ESRCH) | Some(libc::EINVAL) => Error::NoSuchProcess(pid),
            _ => Error::io("pidfd_open", format!("/proc/{pid}"), e),
        });
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Join the `kinds` namespaces of process `pid`, all at once.
///
/// Opens a pidfd and calls [`join_pidfd`]. The calling thread moves (for
/// mnt, uts, ipc, net and cgroup) or its future children do (pid, time).
pub fn join(pid: i32, kinds: impl Into<Kinds>) -> Result<()> {
    join_pidfd(pidfd_open(pid)?.as_fd(), kinds)
}

/// `setns(pidfd, CLONE_NEW...)`: join several namespaces of the process
/// behind `pidfd` in one atomic step (Linux 5.8+). The kernel checks every
/// permission against the caller's credentials before changing anything, so
/// a user namespace among `kinds` needs no ordering.
///
/// Joining a mount namespace first unshares the calling thread's filesystem
/// attributes (`CLONE_FS`), so it works in a multithreaded program; joining a
/// user namespace needs a single-threaded process.
pub fn join_pidfd(pidfd: BorrowedFd<'_>, kinds: impl Into<Kinds>) -> Result<()> {
    let kinds = kinds.into();
    if kinds.is_empty() {
        return Ok(());
    }
    prepare_mount_join(kinds)?;
    // SAFETY: setns takes an fd and flags.
    if unsafe { libc::setns(pidfd.as_raw_fd(), kinds.clone_flags()) } != 0 {
        return Err(Error::last("setns", kinds));
    }
    Ok(())
}

/// Join the `kinds` namespaces of process `pid` one file at a time
/// (`/proc/<pid>/ns/<kind>`), for kernels without pidfd `setns`.
///
/// Every file is opened before the first `setns`. A user namespace is joined
/// first when the caller is not root (its capabilities there allow the other
/// joins), and last when it is root (root keeps its host capabilities for
/// namespaces the user namespace does not own).
pub fn join_each(pid: i32, kinds: impl Into<Kinds>) -> Result<()> {
    let kinds = kinds.into();
    let mut files = Vec::new();
    for kind in kinds.iter() {
        let path = kind.proc_path(pid);
        let (fd, _) = open_namespace_file(&path).map_err(|e| match e {
            Error::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Error::NoSuchProcess(pid)
            }
            e => e,
        })?;
        files.push((kind, fd));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        files.rotate_left(usize::from(kinds.contains(Kind::User)));
    }
    prepare_mount_join(kinds)?;
    for (kind, fd) in &files {
        // SAFETY: setns takes an fd and flags.
        if unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag()) } != 0 {
            return Err(Error::last("setns", (*kind).into()));
        }
    }
    Ok(())
}

/// Join the namespace a file refers to (a `/proc/<pid>/ns/*` file or a
/// persisted one). With `expected`, a file of another kind is refused with
/// [`Error::WrongKind`]. Returns the kind joined.
pub fn join_file(path: &Path, expected: Option<Kind>) -> Result<Kind> {
    let (fd, kind) = open_namespace_file(path)?;
    if let Some(expected) = expected.filter(|e| *e != kind) {
        return Err(Error::WrongKind {
            path: path.to_path_buf(),
            expected,
            found: kind,
        });
    }
    prepare_mount_join(kind.into())?;
    // SAFETY: setns takes an fd and flags.
    if unsafe { libc::setns(fd.as_raw_fd(), kind.clone_flag()) } != 0 {
        return Err(Error::last("setns", kind.into()));
    }
    Ok(kind)
}

/// `setns` into a mount namespace fails with EINVAL while the filesystem
/// attributes are shared with other threads; give this thread its own.
pub(crate) fn prepare_mount_join(kinds: Kinds) -> Result<()> {
    // SAFETY: unshare has no memory preconditions.
    if kinds.contains(Kind::Mount) && unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
        return Err(Error::last("unshare(CLONE_FS)", Kind::Mount.into()));
    }
    Ok(())
}
