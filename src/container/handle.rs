//! [`ContainerHandle`]: one container of a [`ContainerStore`], made by this
//! process ([`Container::create`](crate::container::Container::create)) or
//! found by another ([`ContainerStore::get`]); start, wait, kill, stop,
//! remove.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dunnage_base::lock::{FileLock, LockKind};
use dunnage_cgroups::{Cgroup, CgroupPath, Controller, Hierarchies};
use dunnage_namespaces::{Child, Gate};

use crate::container::error::{Error, Result, io_err};
use crate::container::spec::{Spec, Status, signal_number};
use crate::container::state::{self, State};
use crate::container::store::ContainerStore;

/// The two steps of releasing a container's layer.
enum LayerStep {
    Unmount,
    Remove,
}

/// How a container's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExitInfo {
    /// The exit code as docker reports it (128 + the signal when a signal
    /// ended it); `None` when no process that could see it recorded it.
    pub code: Option<i32>,
    /// Whether the memory cgroup's OOM killer killed a process of it.
    pub oom_killed: bool,
}

/// What a handle that made the container holds.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) child: Child,
    pub(crate) gate: Option<Gate>,
    pub(crate) stdin: Option<File>,
    pub(crate) stdout: Option<File>,
    pub(crate) stderr: Option<File>,
    pub(crate) terminal: Option<File>,
    /// The pid and exit code [`ContainerHandle::wait_to_remove`] did not
    /// record, written after all when the removal fails.
    pub(crate) unrecorded_exit: Option<(i32, Option<i32>)>,
}

/// A container of a store.
///
/// # Dropping a handle
/// Dropping a handle never stops or removes the container: its state,
/// rootfs mount and cgroup stay in the store until
/// [`remove`](ContainerHandle::remove), from this or another process. Two
/// cases differ for a handle that made the container:
/// - created and not started: the start gate closes and the process ends
///   before running its program; the container shows as exited (no exit
///   code);
/// - running: the process runs on; its exit code is recorded only by a
///   [`wait`](ContainerHandle::wait) in this process. When this process ends
///   first, the container shows as exited without an exit code.
#[derive(Debug)]
pub struct ContainerHandle {
    pub(crate) store: ContainerStore,
    pub(crate) spec: Spec,
    pub(crate) owned: Option<Owned>,
}

/// A pidfd of `pid`, when it is still the process that started at `start`.
pub(crate) fn pidfd_checked(pid: i32, start: u64) -> Option<OwnedFd> {
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Checked after opening: the pidfd now pins this very process.
    state::same_process(pid, start).then_some(fd)
}

/// Send `signal` through a pidfd.
fn pidfd_signal(fd: &OwnedFd, signal: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Wait until the process of `fd` has ended, at most `timeout`; whether it
/// did.
fn pidfd_wait(fd: &OwnedFd, timeout: Option<Duration>) -> bool {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_millis().min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: poll on one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc == 0 {
            return false;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
    }
}

/// Remove the container cgroup `path`: its processes killed, its
/// directories removed. One that exists in only some hierarchies (a create
/// or remove killed while making or removing the directories, before any
/// process joined or after all left) has its remaining directories removed.
pub(crate) fn remove_cgroup(h: &Hierarchies, path: &str) -> Result<()> {
    let path = CgroupPath::new(path)?;
    // Every directory the cgroup has or may have (one already gone is no
    // error). Empty once the init has been waited for, as a rule: removed
    // without reading or writing its files, or even looking first. Else
    // what is left is thawed and killed, then removed with the cgroups
    // made below it (a container with its own cgroup namespace may have
    // made some), deepest first.
    let cg = Cgroup::planned(h, &path, &[])?;
    if cg.delete_if_empty()? {
        return Ok(());
    }
    let _ = cg.thaw();
    let _ = cg.kill();
    Ok(cg.delete_recursive()?)
}

impl ContainerHandle {
    pub(crate) fn owned(store: ContainerStore, spec: Spec, owned: Owned) -> ContainerHandle {
        ContainerHandle {
            store,
            spec,
            owned: Some(owned),
        }
    }

    pub(crate) fn attach(store: ContainerStore, spec: Spec) -> ContainerHandle {
        ContainerHandle {
            store,
            spec,
            owned: None,
        }
    }

    /// Another handle of the same container, like the one
    /// [`ContainerStore::get`] returns in another process: it does not
    /// own the process (no stdio, no start gate; [`wait`](ContainerHandle::wait)
    /// waits for the end and returns what the store records), and it reads
    /// nothing from the store to be made. For a thread that signals or
    /// stops the container while this handle waits.
    pub fn share(&self) -> ContainerHandle {
        ContainerHandle::attach(self.store.clone(), self.spec.clone())
    }

    /// The container's ID.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The resolved configuration.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The container's state directory, `<root>/containers/<id>`.
    pub fn dir(&self) -> PathBuf {
        self.store.dir_of(&self.spec.id)
    }

    /// The recorded state.
    pub fn state(&self) -> Result<State> {
        State::read(&self.dir())
    }

    /// The status, with the process checked.
    pub fn status(&self) -> Result<Status> {
        Ok(self.state()?.live_status())
    }

    /// The init's pid while it runs.
    pub fn pid(&self) -> Result<Option<i32>> {
        let st = self.state()?;
        Ok((st.live_status() != Status::Exited).then_some(st.pid))
    }

    /// The parent's end of the process's stdin (with [`StdioMode::Piped`](crate::container::StdioMode::Piped)), once.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.owned.as_mut().and_then(|o| o.stdin.take())
    }

    /// The parent's end of the process's stdout, once.
    pub fn take_stdout(&mut self) -> Option<File> {
        self.owned.as_mut().and_then(|o| o.stdout.take())
    }

    /// The parent's end of the process's stderr, once.
    pub fn take_stderr(&mut self) -> Option<File> {
        self.owned.as_mut().and_then(|o| o.stderr.take())
    }

    /// The terminal's master (with [`tty`](crate::container::Container::tty)), once.
    pub fn take_terminal(&mut self) -> Option<File> {
        self.owned.as_mut().and_then(|o| o.terminal.take())
    }

    /// The start gate of a created container made by this process, once,
    /// for a program that hands it to another process (an OCI runtime's
    /// `create` returns with the process waiting; `start` comes from a
    /// later invocation). Dropping it without releasing ends the process.
    pub fn take_gate(&mut self) -> Option<dunnage_namespaces::container::Gate> {
        self.owned.as_mut().and_then(|o| o.gate.take())
    }

    /// The container's lock, held while its state changes.
    pub(crate) fn lock(&self) -> Result<FileLock> {
        // The directory itself: no lock file to make and remove.
        let path = self.dir();
        FileLock::lock_dir(&path, LockKind::Exclusive).map_err(io_err("lock", path))
    }

    /// The container's cgroup.
    pub(crate) fn cgroup(&self) -> Result<Cgroup> {
        let h = self.store.hierarchies()?;
        Ok(Cgroup::open(h, &CgroupPath::new(&self.spec.cgroup)?, &[])?)
    }

    /// Whether the kernel's OOM killer killed a process of the container's
    /// cgroup (read from its memory controller alone; false when there is
    /// none or it cannot be read).
    fn oom_killed(&self) -> bool {
        let Ok(h) = self.store.hierarchies() else {
            return false;
        };
        CgroupPath::new(&self.spec.cgroup)
            .and_then(|p| Cgroup::planned(h, &p, &[Controller::Memory]))
            .ok()
            .and_then(|cg| cg.oom_kills().ok().flatten())
            .is_some_and(|n| n > 0)
    }

    /// A pidfd of the live init, or [`Error::NotRunning`].
    pub(crate) fn live_pidfd(&self, st: &State) -> Result<OwnedFd> {
        // Exited, or being made again by a monitor (`recreate`: the pid is
        // the monitor's own until the process exists): nothing to signal.
        if st.status == Some(Status::Exited) || (st.pid != 0 && st.pid == st.monitor_pid) {
            return Err(Error::NotRunning(self.spec.id.clone()));
        }
        pidfd_checked(st.pid, st.pid_start).ok_or_else(|| Error::NotRunning(self.spec.id.clone()))
    }

    /// Run the program: release the start gate of a created container.
    ///
    /// A program that is not in the container (docker's exit code 127) is
    /// [`Error::CommandNotFound`]; one that cannot be executed (126)
    /// [`Error::NotExecutable`]; the container is then exited with that
    /// code.
    pub fn start(&mut self) -> Result<()> {
        let _lock = self.lock()?;
        let mut st = self.state()?;
        let status = st.live_status();
        if status != Status::Created {
            return Err(Error::WrongState {
                op: "start",
                id: self.spec.id.clone(),
                status,
            });
        }
        let Some(gate) = self.owned.as_mut().and_then(|o| o.gate.take()) else {
            if self.owned.is_some() {
                return Err(Error::Unsupported {
                    op: "start",
                    reason: "the start gate was closed",
                });
            }
            // A detached container: its monitor holds the gate.
            drop(_lock);
            let st = crate::container::monitor::request_start(&self.dir())?;
            let program = self.spec.argv[0].clone();
            return match st.exit_code {
                Some(127) if st.started_at.is_some() => Err(Error::CommandNotFound(program)),
                Some(126) if st.started_at.is_some() => Err(Error::NotExecutable { program }),
                _ => Ok(()),
            };
        };
        st.started_at = Some(state::now());
        let released = gate.release();
        if let Err(dunnage_namespaces::Error::Exec { source, .. }) = &released {
            let program = self.spec.argv[0].clone();
            let (code, err) = match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => (127, Error::CommandNotFound(program)),
                _ => (126, Error::NotExecutable { program }),
            };
            if let Some(o) = self.owned.as_mut() {
                let _ = o.child.wait();
            }
            st.status = Some(Status::Exited);
            st.exit_code = Some(code);
            st.finished_at = Some(state::now());
            st.write(&self.dir())?;
            return Err(err);
        }
        released?;
        st.status = Some(Status::Running);
        st.write(&self.dir())?;
        Ok(())
    }

    /// Record the end of the process (under the lock). With `pid` (the
    /// process waited for), nothing is recorded when the state already
    /// describes another process: the container was made again
    /// ([`recreate`](ContainerHandle::recreate)) after that one ended.
    fn record_exit(&self, code: Option<i32>, pid: Option<i32>) -> Result<ExitInfo> {
        let _lock = self.lock()?;
        let mut st = self.state()?;
        if pid.is_some_and(|p| p != st.pid) {
            return Ok(ExitInfo {
                code,
                oom_killed: false,
            });
        }
        let oom_killed = self.oom_killed();
        if st.status != Some(Status::Exited) || st.exit_code.is_none() {
            st.status = Some(Status::Exited);
            st.exit_code = st.exit_code.or(code);
            st.oom_killed = oom_killed;
            st.finished_at.get_or_insert_with(state::now);
            st.write(&self.dir())?;
        }
        Ok(ExitInfo {
            code: st.exit_code,
            oom_killed: st.oom_killed,
        })
    }

    /// Wait for the process to end; its exit code and whether the OOM
    /// killer ended it. In the process that made the container the exit
    /// code is collected and recorded; elsewhere this waits for the end
    /// and returns what the store records.
    pub fn wait(&mut self) -> Result<ExitInfo> {
        if let Some((pid, code)) = self.reap_owned()? {
            return self.record_exit(code, Some(pid));
        }
        self.wait_unowned()
    }

    /// Wait like [`wait`](ContainerHandle::wait), for a caller that
    /// [`remove`](ContainerHandle::remove)s the container next (`docker
    /// run --rm`, a runtime's foreground `run`): in the process that made
    /// the container the exit is not written to the store, where the
    /// removal would delete it at once. Until the removal, other processes
    /// see the container exited without an exit code; when the removal
    /// fails, the exit is recorded then.
    pub fn wait_to_remove(&mut self) -> Result<ExitInfo> {
        let Some((pid, code)) = self.reap_owned()? else {
            return self.wait_unowned();
        };
        if let Some(o) = self.owned.as_mut() {
            o.unrecorded_exit = Some((pid, code));
        }
        Ok(ExitInfo {
            code,
            oom_killed: self.oom_killed(),
        })
    }

    /// In the process that made the container: wait for its process, and
    /// return its pid and exit code (128 + the signal that ended it).
    /// `None` for a handle of another process's container.
    fn reap_owned(&mut self) -> Result<Option<(i32, Option<i32>)>> {
        let Some(o) = self.owned.as_mut() else {
            return Ok(None);
        };
        // Closing an unreleased gate ends a created process; waiting for
        // it would otherwise block forever.
        if o.gate.is_some() {
            return Err(Error::WrongState {
                op: "wait for",
                id: self.spec.id.clone(),
                status: Status::Created,
            });
        }
        let pid = o.child.id();
        let status = o.child.wait()?;
        let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
        Ok(Some((pid, code)))
    }

    /// [`wait`](ContainerHandle::wait) for another process's container:
    /// until its process and monitor end, then what the store records.
    fn wait_unowned(&self) -> Result<ExitInfo> {
        let st = self.state()?;
        if let Some(fd) = pidfd_checked(st.pid, st.pid_start) {
            pidfd_wait(&fd, None);
        }
        self.wait_monitor(&st);
        self.record_exit(None, Some(st.pid))
    }

    /// Wait until the monitor (if any) has recorded the exit and ended.
    pub(crate) fn wait_monitor(&self, st: &State) {
        // The monitor itself removes a container it was told to (`run -d
        // --rm`): it does not wait for itself.
        if st.monitor_pid == std::process::id() as i32 {
            return;
        }
        if let Some(fd) = pidfd_checked(st.monitor_pid, st.monitor_start) {
            pidfd_wait(&fd, None);
        }
    }

    /// A duplicate of the pidfd of the process this handle made.
    pub(crate) fn owned_pidfd(&self) -> Result<OwnedFd> {
        let o = self.owned.as_ref().ok_or(Error::Unsupported {
            op: "pidfd",
            reason: "the container was made by another process",
        })?;
        o.child
            .pidfd()
            .try_clone_to_owned()
            .map_err(io_err("dup", "pidfd"))
    }

    /// Close the start gate of a created container: its process ends.
    pub(crate) fn close_gate(&mut self) {
        if let Some(o) = self.owned.as_mut() {
            drop(o.gate.take());
        }
    }

    /// Send `signal` (a number) to the init.
    pub fn kill(&mut self, signal: i32) -> Result<()> {
        let _lock = self.lock()?;
        let st = self.state()?;
        let fd = self.live_pidfd(&st)?;
        pidfd_signal(&fd, signal).map_err(io_err("signal", format!("/proc/{}", st.pid)))
    }

    /// Send the stop signal, then SIGKILL after `timeout` when the process
    /// still runs; wait for the end. A paused container is thawed after
    /// the signal so that it can act on it.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitInfo> {
        let st = self.state()?;
        let Ok(fd) = self.live_pidfd(&st) else {
            return self.record_exit(None, None);
        };
        let sig = signal_number(&self.spec.stop_signal)?;
        {
            let _lock = self.lock()?;
            let _ = pidfd_signal(&fd, sig);
            if st.status == Some(Status::Paused) {
                self.cgroup()?.thaw()?;
            }
        }
        if !pidfd_wait(&fd, Some(timeout)) {
            let _ = pidfd_signal(&fd, libc::SIGKILL);
        }
        if self.owned.as_ref().is_some_and(|o| o.gate.is_some()) {
            // A created container: its process ends when the gate closes.
            if let Some(o) = self.owned.as_mut() {
                o.gate = None;
            }
        }
        self.wait()
    }

    /// Remove the container: unmount and release its layers, delete its
    /// cgroup and state. A running or paused container is refused unless
    /// `force`, which kills it first (SIGKILL); a created one goes.
    pub fn remove(mut self, force: bool) -> Result<()> {
        let unrecorded = self.owned.as_mut().and_then(|o| o.unrecorded_exit.take());
        let removed = self.remove_now(force);
        if removed.is_err()
            && let Some((pid, code)) = unrecorded
        {
            // What stays in the store says how the process ended.
            let _ = self.record_exit(code, Some(pid));
        }
        removed
    }

    fn remove_now(&mut self, force: bool) -> Result<()> {
        let st = self.state().unwrap_or_default();
        if let Some(fd) = pidfd_checked(st.pid, st.pid_start) {
            // A created container goes without force, as in docker.
            if !force && st.live_status() != Status::Created {
                return Err(Error::WrongState {
                    op: "remove",
                    id: self.spec.id.clone(),
                    status: st.live_status(),
                });
            }
            let _ = pidfd_signal(&fd, libc::SIGKILL);
            if let Ok(cg) = self.cgroup() {
                let _ = cg.thaw();
            }
            pidfd_wait(&fd, None);
        }
        if let Some(mut o) = self.owned.take() {
            drop(o.gate.take());
            let _ = o.child.wait();
        }
        self.wait_monitor(&st);
        let _all = self.store.lock_all()?;
        let _lock = self.lock()?;
        // Leftover processes (a fork of the init) go with it.
        remove_cgroup(self.store.hierarchies()?, &self.spec.cgroup)?;
        // What a container sharing our mount namespace mounted there: the
        // rootfs bind recorded at create, if it is still there (before a
        // layer mount below it goes). The state is read again under the
        // lock (the one read above may predate a writer's); when it cannot
        // be read, the record the create wrote before spawning says what
        // was at the rootfs before: what is stacked above it goes.
        match self.state() {
            Ok(st) => {
                if let (Some(rec), Some(rootfs)) = (&st.shared_rootfs, &self.spec.rootfs_dir) {
                    crate::container::shared_rootfs::unmount_recorded(rootfs, rec)?;
                }
            }
            Err(e) => {
                let recorded = crate::container::shared_rootfs::unmount_from_record(&self.dir())?;
                if !recorded && crate::container::shared_rootfs::shares_mount_namespace(&self.spec)
                {
                    return Err(e);
                }
            }
        }
        if self.spec.rootfs_dir.is_none() {
            let layers = self.store.images()?.layers();
            for step in [LayerStep::Unmount, LayerStep::Remove] {
                let done = match step {
                    LayerStep::Unmount => layers.unmount_rw(&self.spec.id),
                    LayerStep::Remove => layers.remove_rw(&self.spec.id),
                };
                match done {
                    Ok(()) | Err(dunnage_layerstore::Error::MountNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // The process is gone: its veth pair went with its namespace, or
        // goes now; then the lease and the rules. State stays until then,
        // so a failure here can be retried.
        crate::container::network::detach(&self.store, &self.spec)?;
        let dir = self.dir();
        std::fs::remove_dir_all(&dir).map_err(io_err("remove", dir))
    }
}
