//! The handle of a spawned process, and how its stdio is wired.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};

use crate::container::Gate;
use crate::error::{Error, Result};
use crate::persist::PersistedNamespace;

/// How a child's stdin, stdout or stderr is set up, as in
/// [`std::process::Stdio`].
#[derive(Debug)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Debug)]
pub(crate) enum StdioKind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl Stdio {
    /// The child shares the parent's descriptor.
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// The child gets `/dev/null`.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// A pipe; the parent's end is in [`Child::stdin`], [`Child::stdout`] or
    /// [`Child::stderr`].
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio(StdioKind::Fd(file.into()))
    }
}

/// A process started by [`crate::Command::spawn`].
///
/// Like [`std::process::Child`], dropping it neither kills nor waits for the
/// process. The pid cannot be reused before [`wait`](Child::wait) reaps it,
/// and signals go through a pidfd.
#[derive(Debug)]
pub struct Child {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) persisted: Vec<PersistedNamespace>,
    /// The parent's end of the child's stdin, when [`Stdio::piped`].
    pub stdin: Option<File>,
    /// The parent's end of the child's stdout, when [`Stdio::piped`].
    pub stdout: Option<File>,
    /// The parent's end of the child's stderr, when [`Stdio::piped`].
    pub stderr: Option<File>,
    pub(crate) gate: Option<Gate>,
    pub(crate) terminal: Option<crate::terminal::TerminalEnd>,
}

impl Child {
    /// A handle of the process that `pidfd` refers to (from `pidfd_open`,
    /// `CLONE_PIDFD`, or handed over by another process).
    ///
    /// [`signal`](Child::signal) and [`kill`](Child::kill) work on any such
    /// process; [`wait`](Child::wait) and [`try_wait`](Child::try_wait)
    /// reap it, which the kernel allows only for a child of the calling
    /// process (otherwise they fail with ECHILD). The pid is read from
    /// `/proc/self/fdinfo`: a pidfd of a process that is already reaped, or
    /// in a pid namespace this one cannot see, is an error.
    pub fn from_pidfd(pidfd: OwnedFd) -> Result<Child> {
        let fd = pidfd.as_raw_fd();
        let path = format!("/proc/self/fdinfo/{fd}");
        let info = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse::<i32>().ok());
        match pid {
            Some(pid) if pid > 0 => Ok(Child {
                pid,
                pidfd,
                status: None,
                persisted: Vec::new(),
                stdin: None,
                stdout: None,
                stderr: None,
                gate: None,
                terminal: None,
            }),
            Some(_) => Err(Error::io(
                "pid of pidfd",
                path,
                io::Error::from_raw_os_error(libc::ESRCH),
            )),
            None => Err(Error::NotAPidfd { fd }),
        }
    }

    /// The start gate of a child spawned with
    /// [`crate::Command::start_gate`] (once; `None` afterwards or without
    /// a gate). Dropping it without [`Gate::release`] ends the child.
    pub fn take_gate(&mut self) -> Option<Gate> {
        self.gate.take()
    }

    /// The child's pid, as seen from the parent's pid namespace.
    pub fn id(&self) -> i32 {
        self.pid
    }

    /// A pidfd of the child (for `poll`, or [`crate::join_pidfd`]).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The namespaces persisted with [`crate::Command::persist`]; they
    /// outlive the child until released.
    pub fn persisted(&self) -> &[PersistedNamespace] {
        &self.persisted
    }

    /// Send `signal` to the child, unless it was already reaped
    /// (`pidfd_send_signal(2)`).
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_send_signal with a valid pidfd and a NULL siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc != 0 {
            return Err(self.proc_error("pidfd_send_signal", io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Kill the child with SIGKILL (it is not reaped: call
    /// [`wait`](Child::wait)).
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// Wait for the child to exit and reap it. Closes the child's stdin
    /// first, so a child reading it sees end of file.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        drop(self.stdin.take());
        match self.reap(0)? {
            Some(status) => Ok(status),
            None => Err(self.proc_error("waitpid", io::Error::from(io::ErrorKind::Other))),
        }
    }

    /// Reap the child if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    /// Wait for the child, collecting what it writes to piped stdout and
    /// stderr.
    pub fn wait_with_output(mut self) -> Result<Output> {
        drop(self.stdin.take());
        let stderr = self.stderr.take().map(|mut f| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map(|_| buf)
            })
        });
        let mut stdout = Vec::new();
        if let Some(mut f) = self.stdout.take() {
            f.read_to_end(&mut stdout)
                .map_err(|e| self.proc_error("read stdout of", e))?;
        }
        let stderr = match stderr.map(|t| t.join()) {
            None => Vec::new(),
            Some(Ok(Ok(buf))) => buf,
            Some(Ok(Err(e))) => return Err(self.proc_error("read stderr of", e)),
            Some(Err(_)) => {
                return Err(self.proc_error("read stderr of", io::Error::other("reader panicked")));
            }
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn reap(&mut self, flags: i32) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw = 0;
        loop {
            // SAFETY: waitpid on our own child with a valid out-pointer.
            let rc = unsafe { libc::waitpid(self.pid, &mut raw, flags) };
            if rc == self.pid {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                return Ok(Some(status));
            }
            if rc == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(self.proc_error("waitpid", e));
            }
        }
    }

    fn proc_error(&self, op: &'static str, e: io::Error) -> Error {
        Error::io(op, format!("/proc/{}", self.pid), e)
    }
}
