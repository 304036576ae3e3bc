//! A terminal for the program: a pty whose slave is its controlling
//! terminal (`setsid`, `TIOCSCTTY`), stdin, stdout and stderr, and, in a
//! container, `/dev/console`; the master comes back to the parent
//! ([`Child::take_terminal`]).
//!
//! With a rootfs whose mount table has a devpts at `/dev/pts` (a new
//! instance), the child opens `/dev/pts/ptmx` of that instance after
//! `pivot_root`, so the pty belongs to the container, and sends the master
//! to the parent over a socketpair (`SCM_RIGHTS`). Otherwise the parent
//! allocates the pty from `/dev/ptmx` and the child only attaches the
//! slave.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::c_int;

use crate::caps::errno;
use std::path::Path;

use crate::child::Child;
use crate::error::{Error, Result};
use crate::spawn::Command;

/// The child's terminal step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminalStep {
    /// The parent allocated the pty: make `slave` the controlling terminal
    /// and stdio.
    Attach {
        /// The slave's descriptor in the child.
        slave: RawFd,
        /// Where to bind the slave as the console (`/dev/console`), if any.
        console: Option<CString>,
    },
    /// Open `ptmx` (the container's `/dev/pts/ptmx`), unlock it, open its
    /// peer, send the master over `socket`, then attach the peer as above.
    Allocate {
        /// The multiplexer to open.
        ptmx: CString,
        /// The child's end of the socketpair to the parent.
        socket: RawFd,
        /// Where to bind the slave as the console, if any.
        console: Option<CString>,
    },
}

impl TerminalStep {
    /// A short name of the step kind.
    pub fn name(&self) -> &'static str {
        match self {
            TerminalStep::Attach { .. } => "attach terminal",
            TerminalStep::Allocate { .. } => "allocate terminal",
        }
    }

    /// Child side: run the step with raw syscalls on prepared data.
    /// Returns the errno on failure.
    pub fn apply(&self) -> std::result::Result<(), c_int> {
        match self {
            TerminalStep::Attach { slave, console } => attach(*slave, console.as_ref()),
            TerminalStep::Allocate {
                ptmx,
                socket,
                console,
            } => {
                // SAFETY: open/ioctl/close on prepared C strings and our own
                // descriptors.
                let slave = unsafe {
                    let master = libc::open(
                        ptmx.as_ptr(),
                        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
                    );
                    if master < 0 {
                        return Err(errno());
                    }
                    let unlock: c_int = 0;
                    if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
                        return Err(errno());
                    }
                    let slave =
                        libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
                    if slave < 0 {
                        return Err(errno());
                    }
                    send_fd(*socket, master)?;
                    libc::close(master);
                    libc::close(*socket);
                    slave
                };
                attach(slave, console.as_ref())
            }
        }
    }
}

impl fmt::Display for TerminalStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let console = |c: &Option<CString>| {
            c.as_ref()
                .map(|c| format!(", bound on {}", c.to_string_lossy()))
                .unwrap_or_default()
        };
        match self {
            TerminalStep::Attach { slave, console: c } => {
                write!(
                    f,
                    "setsid, TIOCSCTTY and stdio on pty fd {slave}{}",
                    console(c)
                )
            }
            TerminalStep::Allocate {
                ptmx, console: c, ..
            } => write!(
                f,
                "open {}, send the master, setsid, TIOCSCTTY and stdio on its peer{}",
                ptmx.to_string_lossy(),
                console(c)
            ),
        }
    }
}

/// `setsid`, `TIOCSCTTY`, the slave on 0, 1, 2, and the console bind.
fn attach(slave: RawFd, console: Option<&CString>) -> std::result::Result<(), c_int> {
    // SAFETY: raw syscalls on our own descriptors and prepared C strings.
    unsafe {
        if libc::setsid() < 0 {
            return Err(errno());
        }
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(errno());
        }
        for target in 0..3 {
            if slave != target && libc::dup2(slave, target) < 0 {
                return Err(errno());
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
        if let Some(console) = console {
            let fd = libc::open(
                console.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666,
            );
            if fd < 0 {
                return Err(errno());
            }
            libc::close(fd);
            let rc = libc::mount(
                c"/proc/self/fd/0".as_ptr(),
                console.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            );
            if rc != 0 {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// A control message carrying one descriptor.
#[repr(C)]
struct FdMessage {
    header: libc::cmsghdr,
    fd: c_int,
    pad: c_int,
}

/// Send `fd` over the unix socket `socket` (`SCM_RIGHTS`), without
/// allocating.
fn send_fd(socket: RawFd, fd: RawFd) -> std::result::Result<(), c_int> {
    // SAFETY: a zeroed control message filled in below; sendmsg reads
    // valid buffers.
    unsafe {
        let mut cmsg: FdMessage = std::mem::zeroed();
        cmsg.header.cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
        cmsg.header.cmsg_level = libc::SOL_SOCKET;
        cmsg.header.cmsg_type = libc::SCM_RIGHTS;
        cmsg.fd = fd;
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&raw mut cmsg).cast();
        msg.msg_controllen = std::mem::size_of::<FdMessage>();
        if libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Receive one descriptor sent with [`send_fd`], without waiting.
fn receive_fd(socket: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: recvmsg into zeroed local buffers; the descriptor it returns
    // is new and ours.
    unsafe {
        let mut cmsg: FdMessage = std::mem::zeroed();
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&raw mut cmsg).cast();
        msg.msg_controllen = std::mem::size_of::<FdMessage>();
        let n = libc::recvmsg(
            socket.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n != 1
            || msg.msg_controllen < std::mem::size_of::<libc::cmsghdr>()
            || cmsg.header.cmsg_level != libc::SOL_SOCKET
            || cmsg.header.cmsg_type != libc::SCM_RIGHTS
            || cmsg.fd < 0
        {
            return Err(io::Error::other("no descriptor in the terminal message"));
        }
        Ok(OwnedFd::from_raw_fd(cmsg.fd))
    }
}

/// The parent's end of a terminal: the master itself, or the socket on
/// which the child sends it.
#[derive(Debug)]
pub(crate) enum TerminalEnd {
    Master(OwnedFd),
    Socket(OwnedFd),
}

/// The descriptors of one spawn's terminal: the parent's end and the
/// child's (the slave, or the socket), and the step.
pub(crate) struct TerminalFds {
    pub parent: TerminalEnd,
    pub child: OwnedFd,
    pub step: TerminalStep,
}

impl TerminalFds {
    /// The parent's end, which the child closes.
    pub(crate) fn parent_raw(&self) -> RawFd {
        match &self.parent {
            TerminalEnd::Master(fd) | TerminalEnd::Socket(fd) => fd.as_raw_fd(),
        }
    }
}

impl Command {
    /// Give the program a terminal (see the [module docs](crate::terminal)):
    /// its stdin, stdout and stderr are the pty's slave, whatever
    /// [`stdin`](Command::stdin) and friends say; the master is
    /// [`Child::take_terminal`].
    pub fn terminal(&mut self, on: bool) -> &mut Command {
        self.terminal = on;
        self
    }

    /// Whether the child allocates the pty in the container's own devpts.
    fn terminal_inside(&self) -> bool {
        self.exec.is_some()
            || self.rootfs.is_some()
                && self
                    .mounts
                    .iter()
                    .any(|m| m.fstype == "devpts" && m.destination == Path::new("/dev/pts"))
    }

    /// The terminal of one spawn, if asked for.
    pub(crate) fn prepare_terminal(&self) -> Result<Option<TerminalFds>> {
        if !self.terminal {
            return Ok(None);
        }
        prepare(self.terminal_inside(), self.rootfs.is_some()).map(Some)
    }

    /// The terminal step as [`Command::plan`] shows it (descriptors -1).
    pub(crate) fn terminal_placeholder(&self) -> TerminalStep {
        let console = self
            .rootfs
            .is_some()
            .then(|| CString::from(c"/dev/console"));
        if self.terminal_inside() {
            TerminalStep::Allocate {
                ptmx: CString::from(c"/dev/pts/ptmx"),
                socket: -1,
                console,
            }
        } else {
            TerminalStep::Attach { slave: -1, console }
        }
    }
}

/// Prepare a terminal: a socketpair when the child allocates inside
/// (`inside`), else a pty from the host's `/dev/ptmx`.
pub(crate) fn prepare(inside: bool, console: bool) -> Result<TerminalFds> {
    let console = console.then(|| CString::from(c"/dev/console"));
    if inside {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills a two-element array.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(Error::io("socketpair", "", io::Error::last_os_error()));
        }
        // SAFETY: two new descriptors owned by nothing else.
        let (parent, child) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let step = TerminalStep::Allocate {
            ptmx: CString::from(c"/dev/pts/ptmx"),
            socket: child.as_raw_fd(),
            console,
        };
        return Ok(TerminalFds {
            parent: TerminalEnd::Socket(parent),
            child,
            step,
        });
    }
    let ptmx = "/dev/ptmx";
    // SAFETY: open/ioctl on a literal path and our own descriptor.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(Error::io("open", ptmx, io::Error::last_os_error()));
        }
        let master = OwnedFd::from_raw_fd(master);
        let unlock: c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(Error::io("unlock", ptmx, io::Error::last_os_error()));
        }
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(Error::io(
                "open the peer of",
                ptmx,
                io::Error::last_os_error(),
            ));
        }
        let slave = OwnedFd::from_raw_fd(slave);
        let step = TerminalStep::Attach {
            slave: slave.as_raw_fd(),
            console,
        };
        Ok(TerminalFds {
            parent: TerminalEnd::Master(master),
            child: slave,
            step,
        })
    }
}

impl Child {
    /// The master side of the child's terminal, once, for a command spawned
    /// with [`crate::Command::terminal`]. Reading it gives what the program
    /// writes (with the terminal's `\r\n` line ends); reading fails with
    /// EIO once the program and every other holder of the slave are gone.
    pub fn take_terminal(&mut self) -> Result<Option<File>> {
        match self.terminal.take() {
            None => Ok(None),
            Some(TerminalEnd::Master(fd)) => Ok(Some(fd.into())),
            Some(TerminalEnd::Socket(socket)) => {
                receive_fd(&socket).map(|fd| Some(fd.into())).map_err(|e| {
                    Error::io("receive the terminal of", format!("/proc/{}", self.pid), e)
                })
            }
        }
    }
}
