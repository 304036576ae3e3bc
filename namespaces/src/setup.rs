//! What the new process does between clone and exec.
//!
//! The parent prepares a plan (C strings, argv and envp arrays, file
//! descriptors); the child only reads it and makes raw syscalls: no
//! allocation, no locks, nothing that is not async-signal-safe, because the
//! parent may have had other threads holding the allocator's lock at the
//! moment of the clone. A failing step writes its [`Stage`] and errno to the
//! error pipe (close-on-exec, so a successful exec reads as end of file) and
//! exits with status 127.

use std::ffi::{CStr, CString};
use std::fmt;

use libc::{c_char, c_int};

/// A step of the child's setup, named with its syscall and namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Waiting for the parent to write the id maps (`read` of the sync pipe).
    Sync,
    /// `prctl(PR_SET_PDEATHSIG)`.
    ParentDeathSignal,
    /// `dup2` of stdin, stdout or stderr.
    Stdio,
    /// `mount(MS_PRIVATE | ...)` of `/` in the new mount namespace.
    Propagation,
    /// `sethostname` in the new UTS namespace.
    Hostname,
    /// `setdomainname` in the new UTS namespace.
    Domainname,
    /// `ioctl(SIOCSIFFLAGS)` bringing `lo` up in the new network namespace.
    Loopback,
    /// `unshare(CLONE_NEWTIME)`, writing `/proc/self/timens_offsets` and
    /// `setns` into `time_for_children`.
    TimeNamespace,
    /// `chroot` into the new root.
    Chroot,
    /// `chdir` into the working directory.
    Chdir,
    /// `setgroups`, `setresgid` or `setresuid` to the requested ids.
    SetIds,
    /// `mount("proc")` in the new pid and mount namespaces.
    MountProc,
    /// `close_range(CLOSE_RANGE_CLOEXEC)` of every fd above 2.
    CloseFds,
    /// `execve` of the program.
    Exec,
}

impl Stage {
    const ALL: [Stage; 14] = [
        Stage::Sync,
        Stage::ParentDeathSignal,
        Stage::Stdio,
        Stage::Propagation,
        Stage::Hostname,
        Stage::Domainname,
        Stage::Loopback,
        Stage::TimeNamespace,
        Stage::Chroot,
        Stage::Chdir,
        Stage::SetIds,
        Stage::MountProc,
        Stage::CloseFds,
        Stage::Exec,
    ];

    fn code(self) -> u32 {
        self as u32
    }

    pub(crate) fn from_code(code: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Sync => "read of the sync pipe (parent gone?)",
            Stage::ParentDeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Stage::Stdio => "dup2 of stdio",
            Stage::Propagation => "mount propagation of / (mnt)",
            Stage::Hostname => "sethostname (uts)",
            Stage::Domainname => "setdomainname (uts)",
            Stage::Loopback => "ioctl(SIOCSIFFLAGS) lo up (net)",
            Stage::TimeNamespace => "unshare/timens_offsets/setns (time)",
            Stage::Chroot => "chroot",
            Stage::Chdir => "chdir",
            Stage::SetIds => "setgroups/setresgid/setresuid",
            Stage::MountProc => "mount proc (mnt+pid)",
            Stage::CloseFds => "close_range",
            Stage::Exec => "execve",
        })
    }
}

/// What the child runs at the end of its setup.
pub(crate) enum Program<'a> {
    /// `execve` each candidate path in turn (a PATH search done in the
    /// parent), with NULL-terminated argv and envp arrays.
    Exec {
        candidates: Vec<CString>,
        argv: Vec<*const c_char>,
        envp: Vec<*const c_char>,
    },
    /// Call the closure and exit with its return value.
    Function(&'a mut (dyn FnMut() -> i32 + Send)),
}

/// Everything the child needs, prepared by the parent.
pub(crate) struct Plan<'a> {
    /// Read end of the sync pipe, or -1 when the child need not wait.
    pub sync_read: c_int,
    /// Write end of the error pipe (close-on-exec).
    pub err_write: c_int,
    /// Signal for `PR_SET_PDEATHSIG`, or 0.
    pub pdeathsig: c_int,
    /// The parent's pid as the child sees it (0 in a new pid namespace,
    /// where the check is skipped).
    pub parent: libc::pid_t,
    /// Source fds for stdin, stdout and stderr (-1: inherit).
    pub stdio: [c_int; 3],
    /// `mount` flags for `/`, or 0 to leave propagation unchanged.
    pub propagation: libc::c_ulong,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub loopback: bool,
    /// Whether to create a time namespace, and the offsets to write.
    pub time: Option<CString>,
    pub root: Option<CString>,
    pub cwd: Option<CString>,
    pub proc_target: Option<CString>,
    /// Ids to switch to just before exec, and whether to drop the
    /// supplementary groups then.
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
    pub clear_groups: bool,
    pub program: Program<'a>,
}

fn errno() -> c_int {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// Report `stage` with the current errno and exit.
fn fail(plan: &Plan<'_>, stage: Stage) -> ! {
    fail_with(plan, stage, errno())
}

fn fail_with(plan: &Plan<'_>, stage: Stage, err: c_int) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&stage.code().to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; msg is a valid buffer.
    unsafe {
        libc::write(plan.err_write, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn check(plan: &Plan<'_>, stage: Stage, rc: c_int) {
    if rc < 0 {
        fail(plan, stage);
    }
}

fn ptr(c: &Option<CString>) -> Option<*const c_char> {
    c.as_deref().map(CStr::as_ptr)
}

/// Run the child's side. Never returns.
///
/// # Safety
/// Must be called only in the freshly cloned child, with `plan` prepared by
/// the parent (all fds open, all pointers valid in the copied memory).
pub(crate) unsafe fn run(plan: &mut Plan<'_>) -> ! {
    // SAFETY (whole function): only async-signal-safe syscalls on memory the
    // parent prepared; see the module docs.
    unsafe {
        if plan.pdeathsig != 0 {
            check(
                plan,
                Stage::ParentDeathSignal,
                libc::prctl(libc::PR_SET_PDEATHSIG, plan.pdeathsig as libc::c_ulong),
            );
            if plan.parent != 0 && libc::getppid() != plan.parent {
                libc::_exit(127);
            }
        }
        if plan.sync_read >= 0 {
            let mut byte = 0u8;
            loop {
                let n = libc::read(plan.sync_read, (&raw mut byte).cast(), 1);
                if n == 1 {
                    break;
                }
                if n == 0 || errno() != libc::EINTR {
                    // The parent gave up (it reports its own error).
                    libc::_exit(127);
                }
            }
            libc::close(plan.sync_read);
        }
        for (target, &source) in plan.stdio.iter().enumerate() {
            if source >= 0 {
                check(plan, Stage::Stdio, libc::dup2(source, target as c_int));
            }
        }
        if plan.propagation != 0 {
            let rc = libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                plan.propagation,
                std::ptr::null(),
            );
            check(plan, Stage::Propagation, rc);
        }
        if let Some(name) = &plan.hostname {
            let rc = libc::sethostname(name.as_ptr(), name.as_bytes().len());
            check(plan, Stage::Hostname, rc);
        }
        if let Some(name) = &plan.domainname {
            let rc = libc::setdomainname(name.as_ptr(), name.as_bytes().len());
            check(plan, Stage::Domainname, rc);
        }
        if plan.loopback {
            loopback_up(plan);
        }
        if let Some(offsets) = &plan.time {
            enter_time_namespace(plan, offsets);
        }
        if let Some(root) = ptr(&plan.root) {
            check(plan, Stage::Chroot, libc::chroot(root));
            check(plan, Stage::Chdir, libc::chdir(c"/".as_ptr()));
        }
        if let Some(cwd) = ptr(&plan.cwd) {
            check(plan, Stage::Chdir, libc::chdir(cwd));
        }
        if let Some(target) = ptr(&plan.proc_target) {
            let rc = libc::mount(
                c"proc".as_ptr(),
                target,
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
            check(plan, Stage::MountProc, rc);
        }
        if plan.clear_groups {
            check(plan, Stage::SetIds, libc::setgroups(0, std::ptr::null()));
        }
        if let Some(gid) = plan.gid {
            check(plan, Stage::SetIds, libc::setresgid(gid, gid, gid));
        }
        if let Some(uid) = plan.uid {
            check(plan, Stage::SetIds, libc::setresuid(uid, uid, uid));
        }
        // Rust ignores SIGPIPE; programs expect the default. Unblock all.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        let err_write = plan.err_write;
        if let Program::Function(f) = &mut plan.program {
            libc::close(err_write);
            libc::_exit(f())
        }
        // No host fd may leak into the program (CVE-2024-21626).
        let rc = libc::syscall(
            libc::SYS_close_range,
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        check(plan, Stage::CloseFds, rc as c_int);
        let mut err = libc::ENOENT;
        if let Program::Exec {
            candidates,
            argv,
            envp,
        } = &plan.program
        {
            for c in candidates {
                libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr());
                // Like execvp: keep searching past missing files, but
                // report EACCES if any candidate had it.
                match errno() {
                    libc::ENOENT | libc::ENOTDIR => {}
                    libc::EACCES => err = libc::EACCES,
                    e => fail_with(plan, Stage::Exec, e),
                }
            }
        }
        fail_with(plan, Stage::Exec, err)
    }
}

/// `ip link set lo up`, with the ioctl interface.
fn loopback_up(plan: &Plan<'_>) {
    // SAFETY: socket/ioctl/close on a zeroed ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(plan, Stage::Loopback, s);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo") {
            *dst = *src as c_char;
        }
        check(
            plan,
            Stage::Loopback,
            libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr),
        );
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(
            plan,
            Stage::Loopback,
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr),
        );
        libc::close(s);
    }
}

/// A new time namespace applies to children only; its offsets must be
/// written before any process is in it; then `setns` moves the child itself.
fn enter_time_namespace(plan: &Plan<'_>, offsets: &CString) {
    // SAFETY: plain syscalls on C string literals and a prepared buffer.
    unsafe {
        check(
            plan,
            Stage::TimeNamespace,
            libc::unshare(libc::CLONE_NEWTIME),
        );
        if !offsets.as_bytes().is_empty() {
            let fd = libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            check(plan, Stage::TimeNamespace, fd);
            let bytes = offsets.as_bytes();
            if libc::write(fd, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
                fail(plan, Stage::TimeNamespace);
            }
            libc::close(fd);
        }
        let fd = libc::open(
            c"/proc/self/ns/time_for_children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        check(plan, Stage::TimeNamespace, fd);
        check(
            plan,
            Stage::TimeNamespace,
            libc::setns(fd, libc::CLONE_NEWTIME),
        );
        libc::close(fd);
    }
}
