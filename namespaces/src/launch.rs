//! The parent's low-level pieces of a spawn: C strings for exec, pipes,
//! `clone3` arguments and the child's failure report.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::child::Child;
use crate::error::{Error, Result};
use crate::persist::PersistedNamespace;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// argv, envp and the exec candidates as C strings.
pub(crate) struct ExecParts {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub candidates: Vec<CString>,
}

impl ExecParts {
    pub(crate) fn new(
        program: &OsStr,
        arg0: Option<&OsStr>,
        args: &[OsString],
        env: &BTreeMap<OsString, OsString>,
    ) -> Result<ExecParts> {
        let argv = std::iter::once(arg0.unwrap_or(program))
            .chain(args.iter().map(OsString::as_os_str))
            .map(|a| Error::cstring("argument", a))
            .collect::<Result<_>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                Error::cstring("environment variable", OsStr::from_bytes(&kv))
            })
            .collect::<Result<_>>()?;
        let prog = program.as_bytes();
        let candidates = if prog.contains(&b'/') {
            vec![Error::cstring("program", program)?]
        } else {
            let path = env
                .get(OsStr::new("PATH"))
                .cloned()
                .unwrap_or_else(|| DEFAULT_PATH.into());
            std::env::split_paths(&path)
                .map(|dir| Error::cstring("program path", dir.join(program)))
                .collect::<Result<_>>()?
        };
        Ok(ExecParts {
            argv,
            envp,
            candidates,
        })
    }
}

pub(crate) fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe2", "", io::Error::last_os_error()));
    }
    // SAFETY: both fds are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec stream socket pair: a channel written with
/// `send(MSG_NOSIGNAL)` (no SIGPIPE when the reader is gone, unlike a pipe).
pub(crate) fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills a two-element array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(Error::io("socketpair", "", io::Error::last_os_error()));
    }
    // SAFETY: both fds are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec duplicate numbered 3 or above, so that `dup2` onto
/// 0, 1, 2 in the child never clobbers another source.
pub(crate) fn dup_cloexec(fd: RawFd) -> Result<OwnedFd> {
    dup_cloexec_from(fd, 3)
}

/// A close-on-exec duplicate numbered `min` or above.
pub(crate) fn dup_cloexec_from(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: fcntl on a caller-owned fd.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(Error::io(
            "dup",
            format!("fd {fd}"),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a new fd owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Read the child's report: `None` when exec succeeded (end of file).
pub(crate) fn read_report(fd: &OwnedFd) -> io::Result<Option<(u32, i32)>> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: read into the unfilled part of buf.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            n if n > 0 => got += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    let code = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Ok(Some((code, errno)))
}

/// Kill and reap a child whose spawn failed; release what it persisted.
pub(crate) fn abandon(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    for p in child.persisted.drain(..) {
        let _ = PersistedNamespace::release(p);
    }
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` with `CLONE_PIDFD`, the namespace `flags` (64 bits, as the
/// kernel's `clone_args` has them) and optionally
/// `CLONE_INTO_CGROUP`, fork-like (no new stack). Returns the child's pid and
/// a pidfd in the parent, and `Ok(0)` with no pidfd in the child.
///
/// # Safety
/// As for `fork`: in a multithreaded program the child may only make
/// async-signal-safe calls until it executes or exits.
pub(crate) unsafe fn clone3(
    flags: u64,
    cgroup: Option<RawFd>,
) -> (io::Result<i32>, Option<OwnedFd>) {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: (&raw mut pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size given.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        0 => (Ok(0), None),
        // SAFETY: CLONE_PIDFD stored a new fd that nothing else owns.
        p if p > 0 => (Ok(p as i32), Some(unsafe { OwnedFd::from_raw_fd(pidfd) })),
        _ => (Err(io::Error::last_os_error()), None),
    }
}

/// `fd`, or a close-on-exec copy numbered `min` or above when it is lower.
pub(crate) fn raise(fd: OwnedFd, min: RawFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    dup_cloexec_from(fd.as_raw_fd(), min)
}
