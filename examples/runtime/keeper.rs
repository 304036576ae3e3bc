//! The gate keeper: after `create` the container's init waits at its
//! start gate, a descriptor whose closing ends it. The runtime process
//! exits, so a small process (this binary, re-executed) holds the gate:
//! it speaks the facade's detached-start protocol (`start.fifo` in the
//! container's directory, its pid recorded as the monitor's in
//! `state.json`), so that `ContainerHandle::start` from a later `start`
//! call releases it. It is not the init's parent: the init stays the
//! child of the caller (a subreaper) once the runtime exits.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use dunnage::container::State;
use dunnage::container::state;
use dunnage::namespaces::Gate;
use dunnage_base::lock::{FileLock, LockKind};

/// The argument that makes this binary a keeper.
pub const KEEPER_ARG: &str = "--dunnage-gate-keeper";

/// Hand `gate` to a new keeper for the container in `dir`; returns once
/// the keeper listens.
pub fn spawn(gate: Gate, dir: &Path) -> Result<(), String> {
    let fd = gate.into_fd();
    let raw = fd.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(KEEPER_ARG)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only dup2 and fcntl (async-signal-safe) between fork and
    // exec.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: cleared by hand then.
            let rc = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("start the gate keeper: {e}"))?;
    drop(fd);
    let mut answer = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut answer);
    }
    // The keeper is left running; its exit is reaped by the caller (the
    // subreaper) once this process is gone.
    std::mem::forget(child);
    match answer.trim_end() {
        "ok" => Ok(()),
        other => Err(format!("gate keeper: {other}")),
    }
}

/// Run as the keeper when `argv[1]` is [`KEEPER_ARG`]; otherwise return.
pub fn run_if_keeper() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(KEEPER_ARG) {
        return;
    }
    let Some(dir) = args.get(2) else {
        std::process::exit(2)
    };
    // SAFETY: fd 3 was set up by `spawn` and is owned by nothing else.
    let gate = unsafe { OwnedFd::from_raw_fd(3) };
    let code = match keep(Path::new(dir), gate) {
        Ok(()) => 0,
        Err(e) => {
            answer(&format!("{e}\n"));
            1
        }
    };
    std::process::exit(code);
}

/// Tell the spawner `line`, then detach stdout.
fn answer(line: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 of valid descriptors onto stdout.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// The container's lock: its state directory itself, as the facade takes it.
fn lock(dir: &Path) -> Result<FileLock, String> {
    FileLock::lock_dir(dir, LockKind::Exclusive).map_err(|e| format!("lock: {e}"))
}

fn keep(dir: &Path, gate: OwnedFd) -> Result<(), String> {
    let st = State::read(dir).map_err(|e| e.to_string())?;
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) };
    if raw < 0 || !state::same_process(st.pid, st.pid_start) {
        return Err("the container's process has gone".into());
    }
    // SAFETY: a new descriptor owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let fifo = dir.join("start.fifo");
    let c = dunnage_base::cstr::cstring(&fifo).map_err(|e| e.to_string())?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!("mkfifo: {}", std::io::Error::last_os_error()));
    }
    // O_RDWR: never blocks, never sees EOF.
    let reader = File::options()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(|e| format!("open start fifo: {e}"))?;
    {
        let _l = lock(dir)?;
        let mut st = State::read(dir).map_err(|e| e.to_string())?;
        st.monitor_pid = std::process::id() as i32;
        st.monitor_start = state::pid_start_time(st.monitor_pid).unwrap_or(0);
        st.write(dir).map_err(|e| e.to_string())?;
    }
    answer("ok\n");
    let mut fds = [
        libc::pollfd {
            fd: reader.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: poll on two valid pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if rc > 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let _ = std::fs::remove_file(&fifo);
    if fds[0].revents & libc::POLLIN != 0 && fds[1].revents == 0 {
        let _l = lock(dir)?;
        let released = Gate::from_fd(gate).release();
        let mut st = State::read(dir).map_err(|e| e.to_string())?;
        if released.is_ok() {
            st.status = Some(dunnage::container::Status::Running);
            st.started_at = Some(state::now());
        } else {
            st.status = Some(dunnage::container::Status::Exited);
        }
        st.write(dir).map_err(|e| e.to_string())?;
    }
    // The answer to the starter: the fifo closes with this process.
    drop(reader);
    Ok(())
}
