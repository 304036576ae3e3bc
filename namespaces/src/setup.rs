//! What the new process does between clone and exec: run the prepared
//! [`Step`]s in order, then execute the program (or call the closure).
//!
//! The child only reads the plan and makes raw syscalls: no allocation, no
//! locks, no glibc wrapper that talks to other threads (the parent may have
//! had threads holding the allocator's lock, or glibc's `setxid` machinery
//! would wait for threads that do not exist in the child). A failing step
//! writes its index and errno to the error pipe (close-on-exec, so a
//! successful exec reads as end of file) and exits with status 127.
//!
//! Each step kind has one function here, called from [`apply`].

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::{c_char, c_int};

use crate::inroot::{OwnCgroups, ParentCache};
use crate::rootsetup;
use crate::step::Step;

/// The index reported for a failed exec (after every step).
pub(crate) const EXEC_INDEX: u32 = u32::MAX;

/// The index reported when the setup is done and the child waits at its
/// start gate (errno 0).
pub(crate) const READY_INDEX: u32 = u32::MAX - 1;

/// What earlier steps leave for later ones.
struct State<'a> {
    /// The rootfs opened by [`Step::OpenRoot`] (-1 before).
    root: c_int,
    /// The host's `/proc` opened by [`Step::OpenProc`] (-1 before).
    proc: c_int,
    /// Descriptors holding the locks of [`Step::LockFile`] (-1: free).
    locks: [c_int; crate::rootops::MAX_LOCK_FILES],
    /// Write end of the error pipe.
    err_write: RawFd,
    /// The parent directory of consecutive node and link steps.
    parent: ParentCache<'a>,
    /// `/proc/self/cgroup`, for the cgroup binds.
    own_cgroups: OwnCgroups,
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
    /// The steps, in order.
    pub steps: &'a [Step],
    /// Write end of the error pipe (close-on-exec).
    pub err_write: RawFd,
    /// The end of the setup.
    pub program: Program<'a>,
    /// Fork first: this process stays as the pid namespace's init
    /// ([`init`]), the program runs as its child.
    pub init: bool,
}

/// The outcome of one step: `Err(errno)` fails the spawn.
type StepResult = Result<(), c_int>;

fn errno() -> c_int {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// `Err(errno)` when a syscall returned a negative value.
fn check(rc: impl Into<i64>) -> StepResult {
    if rc.into() < 0 { Err(errno()) } else { Ok(()) }
}

/// Report step `index` failed with `err`, and exit.
fn fail(err_write: RawFd, index: u32, err: c_int) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&index.to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe; msg is a valid buffer.
    unsafe {
        libc::write(err_write, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn opt_ptr(c: &Option<CString>) -> *const c_char {
    c.as_deref().map_or(std::ptr::null(), CStr::as_ptr)
}

/// Run the child's side. Never returns.
///
/// # Safety
/// Must be called only in the freshly cloned child, with `plan` prepared by
/// the parent (all fds open, all pointers valid in the copied memory).
pub(crate) unsafe fn run(plan: &mut Plan<'_>) -> ! {
    let mut state = State {
        root: -1,
        proc: -1,
        locks: [-1; crate::rootops::MAX_LOCK_FILES],
        err_write: plan.err_write,
        parent: ParentCache::default(),
        own_cgroups: OwnCgroups::new(),
    };
    for (index, step) in plan.steps.iter().enumerate() {
        if !matches!(step, Step::MakeNode { .. } | Step::Symlink { .. }) {
            state.parent.clear();
        }
        if let Err(err) = apply(step, &mut state) {
            fail(plan.err_write, index as u32, err);
        }
    }
    let err_write = plan.err_write;
    if plan.init {
        // SAFETY: a raw fork (clone with SIGCHLD only); the child goes on
        // with the program below, this process becomes the init.
        let pid =
            unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
        if pid < 0 {
            fail(err_write, EXEC_INDEX, errno());
        }
        if pid > 0 {
            init(pid as libc::pid_t, err_write);
        }
    }
    // SAFETY: only async-signal-safe syscalls on memory the parent
    // prepared; the closure is the caller's responsibility (documented on
    // `Command::function`).
    unsafe {
        match &mut plan.program {
            Program::Function(f) => {
                libc::close(err_write);
                libc::_exit(f())
            }
            Program::Exec {
                candidates,
                argv,
                envp,
            } => {
                let mut err = libc::ENOENT;
                for c in candidates.iter() {
                    libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    // Like execvp: keep searching past missing files, but
                    // report EACCES if any candidate had it.
                    match errno() {
                        libc::ENOENT | libc::ENOTDIR => {}
                        libc::EACCES => err = libc::EACCES,
                        e => fail(err_write, EXEC_INDEX, e),
                    }
                }
                fail(err_write, EXEC_INDEX, err)
            }
        }
    }
}

/// The init of a new pid namespace (bubblewrap's): give up the error pipe
/// (the program reports on it), reap every child, and when the program
/// exits, exit with its status (128 + the signal that killed it). Signals
/// sent to it are not forwarded: as pid 1 without handlers it ignores all
/// but SIGKILL, as bubblewrap's init does.
fn init(program: libc::pid_t, err_write: RawFd) -> ! {
    // SAFETY: close, wait4 and _exit on our own state.
    unsafe {
        libc::close(err_write);
        loop {
            let mut status: c_int = 0;
            let pid = libc::wait4(-1, &mut status, 0, std::ptr::null_mut());
            if pid < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                libc::_exit(1);
            }
            if pid != program {
                continue;
            }
            if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                libc::_exit(128 + libc::WTERMSIG(status));
            }
        }
    }
}

/// Run one step in the child.
fn apply<'a>(step: &'a Step, state: &mut State<'a>) -> StepResult {
    // SAFETY (every arm): raw syscalls on strings and buffers the parent
    // prepared, valid in the child's copy of its memory.
    unsafe {
        match step {
            Step::Close { fds } => {
                for &fd in fds {
                    libc::close(fd);
                }
                Ok(())
            }
            Step::JoinCgroups { fds } => {
                for &fd in fds {
                    match libc::write(fd, b"0".as_ptr().cast(), 1) {
                        1 => {}
                        n if n < 0 => return Err(errno()),
                        _ => return Err(libc::EIO),
                    }
                    libc::close(fd);
                }
                Ok(())
            }
            Step::JoinCgroupsLater { fd, tasks } => {
                // 1: made; 0 or end of file (the parent is gone): not.
                let mut byte = 0u8;
                loop {
                    match libc::read(*fd, (&raw mut byte).cast(), 1) {
                        1 | 0 => break,
                        _ if errno() == libc::EINTR => {}
                        _ => return Err(errno()),
                    }
                }
                libc::close(*fd);
                if byte != 1 {
                    return Err(libc::ECANCELED);
                }
                for path in tasks {
                    let t = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    check(t)?;
                    let n = libc::write(t, b"0".as_ptr().cast(), 1);
                    let e = errno();
                    libc::close(t);
                    match n {
                        1 => {}
                        n if n < 0 => return Err(e),
                        _ => return Err(libc::EIO),
                    }
                }
                Ok(())
            }
            Step::ParentDeathSignal { signal, parent } => {
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    *signal as libc::c_ulong,
                ))?;
                if *parent != 0 && libc::getppid() != *parent {
                    libc::_exit(127);
                }
                Ok(())
            }
            Step::WaitParent { fd } => wait_parent(*fd),
            Step::NotDumpable => check(libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong)),
            Step::Dup2 { from, to } => check(libc::dup2(*from, *to)),
            Step::Propagation { target, flags } => check(libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                *flags,
                std::ptr::null(),
            )),
            Step::Hostname(name) => check(libc::sethostname(name.as_ptr(), name.as_bytes().len())),
            Step::Domainname(name) => {
                check(libc::setdomainname(name.as_ptr(), name.as_bytes().len()))
            }
            Step::Loopback => loopback_up(),
            Step::TimeNamespace { offsets } => enter_time_namespace(offsets),
            Step::Chroot(dir) => {
                check(libc::chroot(dir.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))
            }
            Step::ChrootFd(fd) => {
                check(libc::fchdir(*fd))?;
                check(libc::chroot(c".".as_ptr()))
            }
            Step::Chdir(dir) => check(libc::chdir(dir.as_ptr())),
            Step::ChdirInRoot(dir) => rootsetup::chdir_in_root(state.root, dir),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => check(libc::mount(
                opt_ptr(source),
                target.as_ptr(),
                opt_ptr(fstype),
                *flags,
                opt_ptr(data).cast(),
            )),
            Step::SetGroups(groups) => check(libc::syscall(
                libc::SYS_setgroups,
                groups.len(),
                groups.as_ptr(),
            )),
            Step::SetGid(gid) => check(libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid)),
            Step::SetUid(uid) => check(libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid)),
            Step::ResetSignals => reset_signals(),
            Step::CloseFrom { first, keep, limit } => cloexec_from(*first, keep, *limit),
            Step::BindRootfs(dir) => check(libc::mount(
                dir.as_ptr(),
                dir.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )),
            Step::PrivateRootfs(dir) => check(libc::mount(
                std::ptr::null(),
                dir.as_ptr(),
                std::ptr::null(),
                libc::MS_PRIVATE | libc::MS_REC,
                std::ptr::null(),
            )),
            Step::OpenRoot(dir) => {
                let fd = libc::open(
                    dir.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                check(fd)?;
                state.root = fd;
                Ok(())
            }
            Step::TmpfsRoot => crate::rootops::tmpfs_root(),
            Step::MakeDir { target, mode } => crate::rootops::make_dir(state.root, target, *mode),
            Step::Chmod { target, mode } => crate::rootops::chmod(state.root, target, *mode),
            Step::WriteFile { target, fd, mode } => {
                crate::rootops::write_file(state.root, target, *fd, *mode)
            }
            Step::RemountReadOnly(target) => crate::rootops::remount_readonly(state.root, target),
            Step::SelfBind(target) => crate::rootops::self_bind(state.root, target),
            Step::LockFile(target) => {
                let slot = state
                    .locks
                    .iter_mut()
                    .find(|l| **l < 0)
                    .ok_or(libc::EMFILE)?;
                // Above the error pipe, which is above every passed
                // descriptor's target.
                *slot = crate::rootops::lock_file(state.root, target, state.err_write + 1)?;
                Ok(())
            }
            Step::OpenProc => {
                state.proc = crate::inneruser::open_proc()?;
                Ok(())
            }
            Step::InnerUserNamespace { uid_map, gid_map } => {
                let fd = std::mem::replace(&mut state.proc, -1);
                crate::inneruser::inner_user_namespace(fd, uid_map, gid_map)
            }
            Step::BindData {
                target,
                fd,
                mode,
                read_only,
                temp,
            } => crate::rootops::bind_data(state.root, target, *fd, *mode, *read_only, temp),
            Step::ReadonlyIfWritable(target) => {
                crate::rootops::readonly_if_writable(state.root, target)
            }
            Step::MountInRoot(m) => rootsetup::mount_in_root(state.root, m),
            Step::CgroupBind {
                key,
                mount_point,
                mount_root,
                mount,
            } => {
                let own = state.own_cgroups.text()?;
                rootsetup::cgroup_bind(state.root, own, key, mount_point, mount_root, mount)
            }
            Step::MakeNode {
                target,
                mode,
                dev,
                uid,
                gid,
            } => {
                let (dir, name) = state.parent.get(state.root, target)?;
                rootsetup::make_node(dir, name, *mode, *dev, *uid, *gid)
            }
            Step::Symlink { target, link } => {
                let (dir, name) = state.parent.get(state.root, target)?;
                rootsetup::symlink(dir, name, link)
            }
            Step::Mask(target) => rootsetup::mask(state.root, target),
            Step::ReadonlyPath(target) => rootsetup::readonly_path(state.root, target, true),
            Step::ReadonlyMount(target) => rootsetup::readonly_mount(state.root, target),
            Step::PivotRoot(dir) => {
                libc::close(state.root);
                state.root = -1;
                rootsetup::pivot_root(dir)
            }
            Step::RemountRoot { flags } => rootsetup::remount_root(*flags),
            Step::RootPropagation { flags } => check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                *flags,
                std::ptr::null(),
            )),
            Step::SetPropagation { target, flags } => {
                rootsetup::set_propagation(state.root, target, *flags)
            }
            Step::Unshare { flags } => check(libc::unshare(*flags)),
            Step::Setns { fd, nstype } => {
                check(libc::setns(*fd, *nstype))?;
                libc::close(*fd);
                Ok(())
            }
            Step::StartGate { fd, keep, limit } => {
                if let Some(keep) = keep {
                    // The gate, the error pipe and the held locks (-1 for
                    // none sorts first and keeps nothing).
                    let mut own = [-1; crate::rootops::MAX_LOCK_FILES + 2];
                    own[0] = *fd;
                    own[1] = state.err_write;
                    own[2..].copy_from_slice(&state.locks);
                    own.sort_unstable();
                    close_except(3, keep, &own, *limit)?;
                }
                start_gate(*fd, state.err_write)
            }
            Step::Confine(s) => s.apply(),
            Step::Terminal(t) => t.apply(),
        }
    }
}

/// Block until the parent writes its go byte. End of file: the parent is
/// gone (the child closed its own copy of the write end in an earlier
/// [`Step::Close`]), so exit quietly.
fn wait_parent(fd: RawFd) -> StepResult {
    let mut byte = 0u8;
    loop {
        // SAFETY: read of one byte into a local.
        let n = unsafe { libc::read(fd, (&raw mut byte).cast(), 1) };
        if n == 1 {
            break;
        }
        if n == 0 {
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(127) }
        }
        if errno() != libc::EINTR {
            return Err(errno());
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Report "ready" on the error pipe, then wait for the go byte on `fd`;
/// end of file ends the child.
fn start_gate(fd: RawFd, err_write: RawFd) -> StepResult {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&READY_INDEX.to_ne_bytes());
    // SAFETY: write of a stack buffer.
    if unsafe { libc::write(err_write, msg.as_ptr().cast(), msg.len()) } != msg.len() as isize {
        return Err(errno());
    }
    wait_parent(fd)
}

/// Close every descriptor from `first` up except those in `keep` and
/// `own` (both sorted): `close_range` on the gaps, or `close` on each number
/// below `limit` before Linux 5.9.
fn close_except(first: c_int, keep: &[c_int], own: &[c_int], limit: c_int) -> StepResult {
    let (mut i, mut j) = (0, 0);
    let mut from = first;
    loop {
        // The next kept number, merging the two sorted lists.
        let next = match (keep.get(i), own.get(j)) {
            (Some(&a), Some(&b)) if a <= b => {
                i += 1;
                a
            }
            (_, Some(&b)) => {
                j += 1;
                b
            }
            (Some(&a), None) => {
                i += 1;
                a
            }
            (None, None) => c_int::MAX,
        };
        if next > from {
            close_range(from, next - 1, limit)?;
        }
        if next == c_int::MAX {
            return Ok(());
        }
        from = from.max(next.saturating_add(1));
    }
}

fn close_range(first: c_int, last: c_int, limit: c_int) -> StepResult {
    // SAFETY: close_range and close only close descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            if last == c_int::MAX - 1 {
                libc::c_uint::MAX
            } else {
                last as libc::c_uint
            },
            0,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = errno();
    // EPERM: a seccomp profile older than close_range denies it.
    if e != libc::ENOSYS && e != libc::EINVAL && e != libc::EPERM {
        return Err(e);
    }
    for fd in first..limit.min(last.saturating_add(1)) {
        // SAFETY: closing a number that may not be open (EBADF ignored).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// SIGPIPE back to its default (Rust ignores it; programs expect the
/// default) and an empty signal mask, with raw `rt_sigaction` /
/// `rt_sigprocmask`.
fn reset_signals() -> StepResult {
    // SAFETY: a zeroed sigaction is SIG_DFL with no flags; the kernel's
    // sigset is 8 bytes on Linux.
    unsafe {
        let act: libc::sigaction = std::mem::zeroed();
        check(libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGPIPE,
            &raw const act,
            std::ptr::null_mut::<libc::sigaction>(),
            8usize,
        ))?;
        let empty = 0u64;
        check(libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const empty,
            std::ptr::null_mut::<u64>(),
            8usize,
        ))
    }
}

/// Mark every fd from `first` close-on-exec except those in `keep`
/// (sorted): `close_range` calls on Linux 5.11+, else `fcntl` on each
/// number below `limit`.
fn cloexec_from(first: c_int, keep: &[c_int], limit: c_int) -> StepResult {
    let mut from = first;
    for &k in keep.iter().chain(std::iter::once(&c_int::MAX)) {
        if k > from {
            cloexec_range(from, k - 1, limit)?;
        }
        from = from.max(k.saturating_add(1));
    }
    Ok(())
}

fn cloexec_range(first: c_int, last: c_int, limit: c_int) -> StepResult {
    // SAFETY: close_range and fcntl only change descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            if last == c_int::MAX - 1 {
                libc::c_uint::MAX
            } else {
                last as libc::c_uint
            },
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = errno();
    // EPERM: a seccomp profile older than close_range (runtime-tools'
    // default, Docker's before 20.10) denies it; fcntl is allowed.
    if e != libc::ENOSYS && e != libc::EINVAL && e != libc::EPERM {
        return Err(e);
    }
    cloexec_loop(first, limit.min(last.saturating_add(1)))
}

/// The fallback of [`cloexec_from`] for kernels before 5.11.
pub(crate) fn cloexec_loop(first: c_int, limit: c_int) -> StepResult {
    for fd in first..limit {
        // SAFETY: fcntl on a number that may not be open (EBADF ignored).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                check(libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
            }
        }
    }
    Ok(())
}

/// `ip link set lo up`, with the ioctl interface.
fn loopback_up() -> StepResult {
    // SAFETY: socket/ioctl/close on a zeroed ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        check(s)?;
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo") {
            *dst = *src as c_char;
        }
        check(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr))?;
        libc::close(s);
        Ok(())
    }
}

/// A new time namespace applies to children only; its offsets must be
/// written before any process is in it; then `setns` moves the child itself.
fn enter_time_namespace(offsets: &CString) -> StepResult {
    // SAFETY: plain syscalls on C string literals and a prepared buffer.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWTIME))?;
        let bytes = offsets.as_bytes();
        if !bytes.is_empty() {
            let fd = libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            check(fd)?;
            if libc::write(fd, bytes.as_ptr().cast(), bytes.len()) != bytes.len() as isize {
                return Err(errno());
            }
            libc::close(fd);
        }
        let fd = libc::open(
            c"/proc/self/ns/time_for_children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        check(fd)?;
        check(libc::setns(fd, libc::CLONE_NEWTIME))?;
        libc::close(fd);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_on_exec_fallback_marks_inherited_descriptors() {
        // What kernels before 5.11 get instead of close_range: a descriptor
        // opened without O_CLOEXEC ends up marked.
        // SAFETY: open/fcntl/close of our own descriptor.
        unsafe {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            assert!(fd > 2);
            assert_eq!(libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
            assert_eq!(cloexec_loop(fd, fd + 1), Ok(()));
            assert_ne!(libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
            libc::close(fd);
        }
    }
}
