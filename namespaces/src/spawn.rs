//! Start a program, or a closure, in new namespaces: a builder that works
//! like [`std::process::Command`] with namespace knobs.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};

use crate::child::{Child, Stdio, StdioKind};
use crate::container::Gate;
use crate::error::{Error, Result};
use crate::idmap::{IdMap, SetGroups};
use crate::kind::{Kind, Kinds};
use crate::launch::{ExecParts, abandon, clone3, dup_cloexec, pipe, pointers, raise};
use crate::mounts::{Device, Mount};
use crate::plan::{SpawnFds, StdioRef, clone_error, stdio_fds};
use crate::propagation::Propagation;
use crate::setup::{self, Plan, Program};
use crate::step::Step;

/// A clock of a time namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_MONOTONIC`.
    Monotonic,
    /// `CLOCK_BOOTTIME` (what `/proc/uptime` shows).
    Boottime,
}

/// The parent's code run while the child waits; see
/// [`Command::before_start`].
pub(crate) type Hook = Box<dyn FnMut(i32) -> io::Result<()> + Send>;

/// A process to start in new namespaces.
///
/// Setters take `&mut self`, as in [`std::process::Command`]. The child is
/// created with `clone3`; between clone and exec it only makes
/// async-signal-safe syscalls on data prepared here, so spawning from a
/// multithreaded program is safe. Setup or exec failures come back from
/// [`spawn`](Command::spawn) as [`Error::Setup`] / [`Error::Exec`].
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) arg0: Option<OsString>,
    pub(crate) args: Vec<OsString>,
    pub(crate) function: Option<Box<dyn FnMut() -> i32 + Send>>,
    pub(crate) env_clear: bool,
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdio: [Option<Stdio>; 3],
    pub(crate) kinds: Kinds,
    pub(crate) uid_map: Vec<IdMap>,
    pub(crate) gid_map: Vec<IdMap>,
    pub(crate) setgroups: Option<SetGroups>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) hostname: Option<OsString>,
    pub(crate) domainname: Option<OsString>,
    pub(crate) proc_target: Option<PathBuf>,
    pub(crate) loopback: bool,
    pub(crate) propagation: Option<Propagation>,
    pub(crate) pdeathsig: i32,
    pub(crate) time_offsets: Vec<(Clock, i64)>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) persist: Vec<(Kind, PathBuf)>,
    pub(crate) cgroup: Option<OwnedFd>,
    pub(crate) cgroup_tasks: Vec<OwnedFd>,
    pub(crate) cgroup_tasks_later: Vec<PathBuf>,
    /// The write end of the pipe on which the parent tells the child of
    /// the last `start` that its later cgroups exist.
    pub(crate) cgroups_go: Option<OwnedFd>,
    pub(crate) hook: Option<Hook>,
    pub(crate) rootfs: Option<PathBuf>,
    pub(crate) tmpfs_root: bool,
    pub(crate) inner_user: Option<(u32, u32)>,
    pub(crate) init: bool,
    pub(crate) stacked_seccomp: Vec<crate::seccomp::BpfProgram>,
    pub(crate) root_ops: Vec<(usize, crate::rootops::RootOp)>,
    pub(crate) readonly_rootfs: bool,
    pub(crate) rootfs_propagation: Option<Propagation>,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) default_devices: bool,
    pub(crate) devices: Vec<Device>,
    pub(crate) masked_paths: Vec<PathBuf>,
    pub(crate) readonly_paths: Vec<PathBuf>,
    pub(crate) start_gate: bool,
    pub(crate) fds: Vec<(RawFd, OwnedFd)>,
    pub(crate) joins: Vec<(Kind, OwnedFd)>,
    pub(crate) knobs: crate::confine::ProcessKnobs,
    pub(crate) terminal: bool,
    pub(crate) exec: Option<crate::exec::ExecTarget>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// A command running `program` (searched in the child's `PATH` when it
    /// has no `/`), in the caller's namespaces until
    /// [`namespaces`](Command::namespaces) adds some.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            function: None,
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdio: [None, None, None],
            kinds: Kinds::EMPTY,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            setgroups: None,
            uid: None,
            gid: None,
            hostname: None,
            domainname: None,
            proc_target: None,
            loopback: false,
            propagation: Some(Propagation::DEFAULT),
            pdeathsig: 0,
            time_offsets: Vec::new(),
            root: None,
            persist: Vec::new(),
            cgroup: None,
            cgroup_tasks: Vec::new(),
            cgroup_tasks_later: Vec::new(),
            cgroups_go: None,
            hook: None,
            rootfs: None,
            tmpfs_root: false,
            inner_user: None,
            init: false,
            stacked_seccomp: Vec::new(),
            root_ops: Vec::new(),
            readonly_rootfs: false,
            rootfs_propagation: None,
            mounts: Vec::new(),
            default_devices: false,
            devices: Vec::new(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            start_gate: false,
            fds: Vec::new(),
            joins: Vec::new(),
            knobs: crate::confine::ProcessKnobs::default(),
            terminal: false,
            exec: None,
        }
    }

    /// A command that runs `f` in the child instead of executing a program;
    /// the child exits with its return value. `f` runs after the setup, in a
    /// copy of the parent's memory where other threads no longer exist: it
    /// must not take locks (allocation included) that such a thread might
    /// have held, unless the parent is single-threaded. Spawned by root with
    /// namespaces, the child is not dumpable (there is no exec to reset
    /// it); it keeps the descriptors it inherited (no close-on-exec sweep
    /// applies).
    pub fn function(f: impl FnMut() -> i32 + Send + 'static) -> Command {
        let mut cmd = Command::new("<function>");
        cmd.function = Some(Box::new(f));
        cmd
    }

    /// Create new namespaces of these kinds for the child (added to any
    /// given before).
    pub fn namespaces(&mut self, kinds: impl Into<Kinds>) -> &mut Command {
        self.kinds = self.kinds | kinds.into();
        self
    }

    /// The uid map of the new user namespace, written by the parent before
    /// the child continues (see [`crate::write_maps`]).
    pub fn uid_map(&mut self, map: impl Into<Vec<IdMap>>) -> &mut Command {
        self.uid_map = map.into();
        self
    }

    /// The gid map of the new user namespace.
    pub fn gid_map(&mut self, map: impl Into<Vec<IdMap>>) -> &mut Command {
        self.gid_map = map.into();
        self
    }

    /// What to write to `/proc/<pid>/setgroups` (default: `deny` where an
    /// unprivileged gid map requires it, else unchanged).
    pub fn setgroups(&mut self, setgroups: SetGroups) -> &mut Command {
        self.setgroups = Some(setgroups);
        self
    }

    /// The uid the child switches to just before exec (`setresuid`).
    ///
    /// Default with a new user namespace: 0 when the uid map maps 0 but not
    /// the caller's own uid (root mapping `0 100000 65536`, say), so the
    /// program runs as root of the namespace; otherwise unchanged.
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// The gid the child switches to just before exec (`setresgid`), with
    /// the same default as [`uid`](Command::uid). When the gid changes and
    /// `setgroups` is allowed, supplementary groups are dropped.
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// The hostname in the new UTS namespace.
    pub fn hostname(&mut self, name: impl AsRef<OsStr>) -> &mut Command {
        self.hostname = Some(name.as_ref().to_owned());
        self
    }

    /// The NIS domain name in the new UTS namespace.
    pub fn domainname(&mut self, name: impl AsRef<OsStr>) -> &mut Command {
        self.domainname = Some(name.as_ref().to_owned());
        self
    }

    /// Mount a fresh proc at `target` (normally `/proc`, inside
    /// [`root`](Command::root)) so that it shows the new pid namespace.
    /// Implies a new mount namespace, as util-linux `--mount-proc` does.
    pub fn mount_proc(&mut self, target: impl AsRef<Path>) -> &mut Command {
        self.proc_target = Some(target.as_ref().to_owned());
        self.kinds = self.kinds.with(Kind::Mount);
        self
    }

    /// Bring `lo` up in the new network namespace.
    pub fn loopback_up(&mut self, up: bool) -> &mut Command {
        self.loopback = up;
        self
    }

    /// Propagation applied to `/` in the new mount namespace (default:
    /// recursively private, as util-linux; `None`: unchanged).
    pub fn propagation(&mut self, propagation: Option<Propagation>) -> &mut Command {
        self.propagation = propagation;
        self
    }

    /// Signal the child receives when the parent *thread* that spawned it
    /// exits (`PR_SET_PDEATHSIG`; 0 for none).
    pub fn parent_death_signal(&mut self, signal: i32) -> &mut Command {
        self.pdeathsig = signal;
        self
    }

    /// Offset `clock` by `seconds` in the new time namespace.
    pub fn time_offset(&mut self, clock: Clock, seconds: i64) -> &mut Command {
        self.time_offsets.push((clock, seconds));
        self
    }

    /// `chroot` into `dir` before changing directory and mounting proc.
    pub fn root(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.root = Some(dir.as_ref().to_owned());
        self
    }

    /// Persist the child's `kind` namespace at `file` (see [`crate::persist()`]),
    /// done by the parent before the child continues; the result is in
    /// [`Child::persisted`].
    pub fn persist(&mut self, kind: Kind, file: impl AsRef<Path>) -> &mut Command {
        self.persist.push((kind, file.as_ref().to_owned()));
        self
    }

    /// Start the child in the cgroup v2 directory `dir` (an `O_PATH` or
    /// directory fd), with `CLONE_INTO_CGROUP`.
    pub fn into_cgroup(&mut self, dir: OwnedFd) -> &mut Command {
        self.cgroup = Some(dir);
        self
    }

    /// Have the child join cgroup v1 hierarchies itself, as its first step:
    /// it writes `0` to each of these `tasks` files (opened for writing by
    /// the caller, whose credentials the kernel checks), then closes it.
    ///
    /// The child is one thread at that point, so this moves the whole
    /// process, like writing its pid to `cgroup.procs`; but a thread that
    /// moves itself does not take the kernel's global threadgroup lock,
    /// whose write side waits for an RCU grace period (several
    /// milliseconds). For a v2 cgroup use
    /// [`into_cgroup`](Command::into_cgroup) (v2 refuses a lone thread
    /// moving to another domain).
    pub fn join_cgroup_tasks(&mut self, tasks: impl IntoIterator<Item = OwnedFd>) -> &mut Command {
        self.cgroup_tasks.extend(tasks);
        self
    }

    /// [`join_cgroup_tasks`](Command::join_cgroup_tasks) by path, for
    /// cgroup v1 directories the parent makes while the child sets itself
    /// up: the child waits for [`Meanwhile::cgroups_made`] (from the
    /// closure of [`spawn_meanwhile`](Command::spawn_meanwhile)) at its
    /// first step that needs them (its new cgroup namespace, its cgroup
    /// mounts; else before its rootfs steps), then opens and writes `0` to
    /// each of these `tasks` files itself. The cgroups' creation then
    /// overlaps the clone's aftermath and the first mounts instead of
    /// preceding the clone. When the closure does not call it, the spawn
    /// fails at that step (`ECANCELED`).
    ///
    /// The child opens the files with the paths and credentials it has at
    /// that step: refused (before the clone) with a new or joined user
    /// namespace (the host's files are not its own), a joined mount
    /// namespace (the paths name another tree), [`exec_in`](Command::exec_in),
    /// a tmpfs root, and by [`status`](Command::status) and
    /// [`output`](Command::output), which have no closure.
    pub fn join_cgroup_tasks_later(
        &mut self,
        tasks: impl IntoIterator<Item = impl AsRef<Path>>,
    ) -> &mut Command {
        self.cgroup_tasks_later
            .extend(tasks.into_iter().map(|p| p.as_ref().to_path_buf()));
        self
    }

    /// Run `hook(pid)` in the parent after the child is created and its id
    /// maps written, before it continues (for example to move it into a
    /// cgroup v1). An error kills the child and fails the spawn.
    pub fn before_start(
        &mut self,
        hook: impl FnMut(i32) -> io::Result<()> + Send + 'static,
    ) -> &mut Command {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Spawn and wait for the exit status.
    ///
    /// Unlike [`spawn`](Command::spawn) this does not wait for the exec
    /// before waiting for the exit: the child's setup or exec failure report
    /// is read once it has exited, which saves the parent a wake-up.
    pub fn status(&mut self) -> Result<ExitStatus> {
        self.refuse_cgroups_later("status")?;
        let (mut child, err_read, steps, _) = self.start(None, false)?;
        let status = match child.wait() {
            Ok(status) => status,
            Err(e) => {
                abandon(&mut child);
                return Err(e);
            }
        };
        // The child has exited: its end of the error pipe is closed, so
        // this read does not block.
        self.check_report(&mut child, &err_read, &steps)?;
        Ok(status)
    }

    /// Spawn with stdout and stderr piped (stdin `/dev/null` unless set)
    /// and collect them. The command's own stdio settings are left as they
    /// are, also when this fails.
    pub fn output(&mut self) -> Result<Output> {
        // Nothing of `self` is changed: an early error loses no setting.
        let stdin = match self.stdio[0].as_ref().map(|s| &s.0) {
            Some(StdioKind::Fd(fd)) => Stdio::from(dup_cloexec(fd.as_raw_fd())?),
            Some(StdioKind::Inherit) => Stdio::inherit(),
            Some(StdioKind::Piped) => Stdio::piped(),
            Some(StdioKind::Null) | None => Stdio::null(),
        };
        let over = [stdin, Stdio::piped(), Stdio::piped()];
        self.refuse_cgroups_later("output")?;
        let (mut child, err_read, steps, _) = self.start(Some(&over), false)?;
        self.check_report(&mut child, &err_read, &steps)?;
        child.wait_with_output()
    }

    /// `status` and `output` have no closure to make the cgroups of
    /// `join_cgroup_tasks_later` in.
    fn refuse_cgroups_later(&self, how: &'static str) -> Result<()> {
        if self.cgroup_tasks_later.is_empty() {
            return Ok(());
        }
        Err(Error::CgroupsLater {
            why: match how {
                "status" => "status (only spawn_meanwhile can make them)",
                _ => "output (only spawn_meanwhile can make them)",
            },
        })
    }

    /// What `join_cgroup_tasks_later` cannot go with.
    fn check_cgroups_later(&self) -> Result<()> {
        if self.cgroup_tasks_later.is_empty() {
            return Ok(());
        }
        let joins = |kind: Kind| self.joins.iter().any(|(k, _)| *k == kind);
        let why = if self.kinds.contains(Kind::User) || joins(Kind::User) {
            "a user namespace (the host's tasks files are not the child's to write)"
        } else if joins(Kind::Mount) {
            "a joined mount namespace (the host's cgroup paths are not in it)"
        } else if self.exec.is_some() {
            "exec into a process"
        } else if self.tmpfs_root {
            "a tmpfs root"
        } else {
            return Ok(());
        };
        Err(Error::CgroupsLater { why })
    }

    fn check(&self) -> Result<()> {
        let needs = [
            (
                self.hostname.is_some() || self.domainname.is_some(),
                Kind::Uts,
                "a hostname",
            ),
            (self.loopback, Kind::Net, "loopback up"),
            (!self.time_offsets.is_empty(), Kind::Time, "time offsets"),
            (
                !self.uid_map.is_empty() || !self.gid_map.is_empty(),
                Kind::User,
                "id maps",
            ),
        ];
        for (asked, kind, what) in needs {
            if asked && !self.kinds.contains(kind) {
                return Err(Error::NeedsNamespace { what, kind });
            }
        }
        if self.persist.iter().any(|(k, _)| *k == Kind::Time) {
            return Err(Error::CannotPersistTime);
        }
        self.check_exec()?;
        self.check_cgroups_later()?;
        self.check_inner_user()?;
        self.check_locks()?;
        self.check_container()
    }

    /// The steps the child would run, in order, as prepared and validated
    /// for a spawn (descriptors that exist only during a spawn show as -1).
    /// Nothing is created: no process, pipe or file.
    pub fn plan(&self) -> Result<Vec<Step>> {
        self.check()?;
        let stdio = self.stdio_refs(None);
        let fds = SpawnFds {
            // A spawn always closes at least the error pipe's read end.
            close: vec![-1],
            sync_read: self.needs_sync().then_some(-1),
            stdio: stdio.map(|s| (!matches!(s, StdioRef::Inherit)).then_some(-1)),
            gate_read: self.start_gate.then_some(-1),
            cgroups_later: (!self.cgroup_tasks_later.is_empty()).then_some(-1),
            passed: self.fds.iter().map(|(t, _)| (-1, *t)).collect(),
            terminal: self.terminal.then(|| self.terminal_placeholder()),
        };
        self.steps(&fds)
    }

    /// Start the child. Returns once it has executed the program (or
    /// entered the closure), or with the error that stopped it; on error no
    /// process, persisted file or mount is left behind.
    ///
    /// With [`start_gate`](Command::start_gate), returns once the child
    /// has done its setup and waits at the gate ([`Child::take_gate`]).
    pub fn spawn(&mut self) -> Result<Child> {
        self.spawn_meanwhile(|_| {})
    }

    /// [`spawn`](Command::spawn), calling `meanwhile` in this process while
    /// the child sets itself up: the child has been cloned and let go, and
    /// its report is read once `meanwhile` returns. For parent work that
    /// does not need the child's setup done (writing down its pid, making
    /// the cgroups of [`join_cgroup_tasks_later`](Command::join_cgroup_tasks_later)),
    /// overlapped with it instead of after it.
    pub fn spawn_meanwhile(&mut self, meanwhile: impl FnOnce(&mut Meanwhile)) -> Result<Child> {
        let (mut child, err_read, steps, gate) = self.start(None, true)?;
        let mut m = Meanwhile {
            pid: child.pid,
            cgroups_go: self.cgroups_go.take(),
        };
        meanwhile(&mut m);
        // Not told: the child's wait for its cgroups ends (ECANCELED).
        drop(m);
        if self.check_report(&mut child, &err_read, &steps)?
            && let Some(gate) = gate
        {
            child.gate = Some(Gate::new(gate, err_read, child.pid));
        }
        Ok(child)
    }

    /// Clone the child and let it go; returns it with the read end of the
    /// error pipe, on which it reports a failed setup or exec, and the
    /// steps it ran.
    #[allow(clippy::type_complexity)]
    fn start(
        &mut self,
        stdio: Option<&[Stdio; 3]>,
        gate: bool,
    ) -> Result<(Child, OwnedFd, Vec<Step>, Option<OwnedFd>)> {
        self.check()?;
        let env = self.final_env();
        let exec = ExecParts::new(&self.program, self.arg0.as_deref(), &self.args, &env)?;
        let (stdio_child, [stdin, stdout, stderr]) = stdio_fds(self.stdio_refs(stdio))?;
        // The descriptors the child still uses when it moves the passed
        // ones into place are numbered above every target.
        let above = self.fds.iter().map(|(t, _)| *t).max().unwrap_or(2) + 1;
        let (err_read, err_write) = pipe()?;
        let err_write = raise(err_write, above)?;
        let (sync_read, sync_write) = if self.needs_sync() {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let (gate_read, gate_write) = if gate && self.start_gate {
            let (r, w) = pipe()?;
            (Some(raise(r, above)?), Some(w))
        } else {
            (None, None)
        };
        let (later_read, later_write) = if self.cgroup_tasks_later.is_empty() {
            (None, None)
        } else {
            let (r, w) = crate::launch::socketpair()?;
            (Some(raise(r, above)?), Some(w))
        };
        let passed = self.passed_fds()?;
        let terminal = self.prepare_terminal()?;
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(|f| f.as_raw_fd());
        // The child closes every descriptor that is the parent's: the
        // parent's pipe ends, the read end of the error pipe and the write
        // ends of the sync pipe and the gate (else it would never see end
        // of file).
        let close = [
            &stdin,
            &stdout,
            &stderr,
            &sync_write,
            &gate_write,
            &later_write,
        ]
        .into_iter()
        .filter_map(raw)
        .chain([err_read.as_raw_fd()])
        .chain(terminal.as_ref().map(|t| t.parent_raw()))
        .collect();
        let fds = SpawnFds {
            close,
            sync_read: raw(&sync_read),
            stdio: [
                raw(&stdio_child[0]),
                raw(&stdio_child[1]),
                raw(&stdio_child[2]),
            ],
            gate_read: raw(&gate_read),
            cgroups_later: raw(&later_read),
            passed: passed.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect(),
            terminal: terminal.as_ref().map(|t| t.step.clone()),
        };
        let steps = self.steps(&fds)?;
        let mut function = self.function.take();
        let mut plan = Plan {
            steps: &steps,
            err_write: err_write.as_raw_fd(),
            init: self.init && (self.kinds.contains(Kind::Pid) || self.holds_lock()),
            program: match function.as_deref_mut() {
                Some(f) => Program::Function(f),
                None => Program::Exec {
                    candidates: exec.candidates,
                    argv: pointers(&exec.argv),
                    envp: pointers(&exec.envp),
                },
            },
        };
        let mut clone_kinds = self.kinds.without(Kind::Time);
        if self.defer_cgroup_namespace() {
            clone_kinds = clone_kinds.without(Kind::Cgroup);
        }
        // Namespaces joined by the child's creation: this thread is in them
        // (pid: its pid_for_children points there) during the clone.
        let entered = self.enter_at_clone()?;
        // Exec into a running process: its cgroup (see exec.rs).
        let exec_cgroup = match (&self.exec, &self.cgroup) {
            (Some(t), None) => t.cgroup_dir()?,
            _ => None,
        };
        let cgroup = self.cgroup.as_ref().or(exec_cgroup.as_ref());
        // SAFETY: without CLONE_VM the child gets a copy of this memory and
        // runs only `setup::run` on the prepared plan.
        let (pid, pidfd) =
            unsafe { clone3(clone_kinds.clone_flags64(), cgroup.map(|d| d.as_raw_fd())) };
        if matches!(pid, Ok(0)) {
            // SAFETY: we are the new child; see above.
            unsafe { setup::run(&mut plan) }
        }
        drop(entered);
        drop(plan);
        drop(exec_cgroup);
        self.function = function;
        let (pid, pidfd) = match (pid, pidfd) {
            (Ok(pid), Some(pidfd)) => (pid, pidfd),
            (Err(e), _) => return Err(clone_error(clone_kinds, self.cgroup.is_some(), e)),
            (Ok(_), None) => {
                return Err(Error::io(
                    "clone3",
                    "",
                    io::Error::other("no pidfd returned"),
                ));
            }
        };
        drop((
            stdio_child,
            err_write,
            sync_read,
            gate_read,
            later_read,
            passed,
        ));
        // The child has its copy of the slave or socket end now.
        let terminal = terminal.map(|t| {
            drop(t.child);
            t.parent
        });
        let mut child = Child {
            pid,
            pidfd,
            status: None,
            persisted: Vec::new(),
            stdin: stdin.map(Into::into),
            stdout: stdout.map(Into::into),
            stderr: stderr.map(Into::into),
            gate: None,
            terminal,
        };
        if let Err(e) = self.release_child(&mut child, sync_write) {
            abandon(&mut child);
            return Err(e);
        }
        self.cgroups_go = later_write;
        Ok((child, err_read, steps, gate_write))
    }
}

/// What [`Command::spawn_meanwhile`]'s closure gets: the child being set up.
#[derive(Debug)]
pub struct Meanwhile {
    pid: i32,
    cgroups_go: Option<OwnedFd>,
}

impl Meanwhile {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Tell the child that the cgroups of
    /// [`Command::join_cgroup_tasks_later`] exist: it joins them at its
    /// step that waits for this. Nothing to tell without such cgroups (or
    /// after the first call).
    pub fn cgroups_made(&mut self) -> Result<()> {
        match self.cgroups_go.take() {
            Some(fd) => send_byte(&fd, 1)
                .map_err(|e| Error::io("tell the cgroups to", format!("/proc/{}", self.pid), e)),
            None => Ok(()),
        }
    }
}

impl Drop for Meanwhile {
    /// Not told that the cgroups exist: told that they will not (the
    /// child fails that step with `ECANCELED`), without waiting for every
    /// copy of this end to close (a child another thread is cloning holds
    /// one until its own setup closes it).
    fn drop(&mut self) {
        if let Some(fd) = self.cgroups_go.take() {
            let _ = send_byte(&fd, 0);
        }
    }
}

/// Send one byte without SIGPIPE. A child already gone (`EPIPE`, it
/// failed before this step) is not an error here: its report says why.
fn send_byte(fd: &OwnedFd, byte: u8) -> io::Result<()> {
    loop {
        // SAFETY: send of one byte from a valid buffer.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                [byte].as_ptr().cast(),
                1,
                libc::MSG_NOSIGNAL,
            )
        };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => return Ok(()),
            _ => return Err(e),
        }
    }
}
