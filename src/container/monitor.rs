//! The monitor of a detached container (the conmon / containerd-shim
//! role): a small process that creates the container, holds its stdio,
//! writes Docker's json-file log, starts it when asked, collects its exit
//! status and records it in the state after the caller has gone.
//!
//! # The mechanism
//! A library cannot assume its own binary, so the monitor is a program the
//! caller names ([`Container::monitor_program`]): either the crate's
//! `dunnage-monitor` binary (installed next to the host program, or found
//! by the caller), or the host program itself (the default,
//! `/proc/self/exe`), whose `main` must then call [`run_if_monitor`] first:
//!
//! ```no_run
//! dunnage::container::monitor::run_if_monitor();
//! // ... the program's own work.
//! ```
//!
//! The program is started with `std::process::Command` (no code runs in a
//! forked copy of the caller) as `PROGRAM --dunnage-monitor ROOT`, the
//! resolved [`Spec`] as JSON on its stdin. It forks once (it is still
//! single-threaded then) so that its first process exits at once and the
//! caller reaps it; the second one starts a new session, creates the
//! container (the process's stdout and stderr are pipes it holds, stdin is
//! `/dev/null` or a pipe it holds; with a terminal it holds the master,
//! logged as one `stdout` stream) — or, started with [`AGAIN_ARG`], makes
//! an exited container's process again ([`ContainerHandle::recreate`]) —
//! records its own pid and start time in `state.json`, makes
//! `containers/<id>/start.fifo`, and answers on its stdout with one line,
//! `ok` or `err MESSAGE`. It then waits until a byte arrives on the
//! fifo ([`ContainerHandle::start`] from any process) or the container's
//! process ends; releases the start gate, records the state and closes
//! the fifo (the answer a starter waits for on its write end); copies the
//! process's output to `<id>-json.log` (`{"log":"...\n","stream":
//! "stdout","time":"RFC 3339 nanoseconds"}` per line, lines split at
//! 16 KiB as docker does); waits
//! for the process; records the exit code, OOM kill and end time; exits.
//!
//! From the creation until the process has exited it also listens on
//! `containers/<id>/attach.sock` for attached clients
//! ([`ContainerHandle::attach_stdio`], the [attach](crate::container::attach)
//! module): they get the output and the exit code, and with an open stdin
//! (`-i`, the monitor then holds the process's stdin pipe) their input
//! goes to the process. Started with [`AUTO_REMOVE_ARG`] after the root
//! ([`Container::auto_remove`], `docker run -d --rm`), it removes the
//! container once the process has exited and the clients are told.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::container::attach::Clients;
use crate::container::builder::{Container, StdioMode};
use crate::container::create::create_spec;
use crate::container::error::{Error, Result, io_err};
use crate::container::handle::ContainerHandle;
use crate::container::jsonlog::JsonLog;
use crate::container::spec::{Spec, Status};
use crate::container::state::{self, State};
use crate::container::store::ContainerStore;

/// The argument that makes a program a monitor (see [`run_if_monitor`]).
pub const MONITOR_ARG: &str = "--dunnage-monitor";

/// The argument after the root that makes the monitor remove the
/// container once its process has exited (`docker run -d --rm`).
pub const AUTO_REMOVE_ARG: &str = "--rm";

/// The argument after the root that makes the monitor run an exited
/// container again ([`ContainerHandle::recreate`]) instead of creating
/// one.
pub const AGAIN_ARG: &str = "--again";

/// When this process was started as a monitor (`argv[1]` is
/// [`MONITOR_ARG`]), run the monitor and exit; otherwise return at once.
/// Call it first in `main`, before any thread starts.
pub fn run_if_monitor() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == MONITOR_ARG) {
        let flag = |f: &str| args.iter().skip(3).any(|a| a == f);
        let code = match args.get(2) {
            Some(root) => run_monitor(Path::new(root), flag(AUTO_REMOVE_ARG), flag(AGAIN_ARG)),
            None => 2,
        };
        std::process::exit(code);
    }
}

/// Report `line` to the caller on fd 1, then point fd 1 at /dev/null.
fn answer(line: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        // SAFETY: dup2 of valid descriptors onto stdout.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// The monitor's work (see the [module docs](self)); the exit code.
pub fn run(root: &Path) -> i32 {
    run_with(root, false)
}

/// [`run`], removing the container once its process has exited when
/// `auto_remove` (`docker run -d --rm`).
pub fn run_with(root: &Path, auto_remove: bool) -> i32 {
    run_monitor(root, auto_remove, false)
}

/// [`run_with`]; with `again`, the container of the configuration is an
/// exited one, made again ([`ContainerHandle::recreate`]).
fn run_monitor(root: &Path, auto_remove: bool, again: bool) -> i32 {
    let mut json = Vec::new();
    if std::io::stdin().read_to_end(&mut json).is_err() {
        answer("err cannot read the container's configuration\n");
        return 1;
    }
    // SAFETY: fork while single-threaded (nothing started a thread yet).
    match unsafe { libc::fork() } {
        -1 => {
            answer("err fork failed\n");
            return 1;
        }
        0 => {}
        _ => return 0,
    }
    // SAFETY: setsid has no preconditions; a failure leaves the session.
    unsafe { libc::setsid() };
    let (handle, fifo, clients, terminal, log) = match prepare(root, &json, again) {
        Ok(h) => h,
        Err(e) => {
            answer(&format!("err {}\n", e.to_string().replace('\n', " ")));
            return 1;
        }
    };
    answer("ok\n");
    match supervise(handle, fifo, clients, terminal, log, auto_remove) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Create the container, record the monitor, make the start fifo and the
/// attach socket.
/// What [`prepare`] made: the container, the start fifo, the attached
/// clients, the terminal's master (with a terminal).
type Prepared = (ContainerHandle, File, Arc<Clients>, Option<File>, JsonLog);

fn prepare(root: &Path, json: &[u8], again: bool) -> Result<Prepared> {
    let spec = Spec::from_json(PathBuf::from("<stdin>"), json)?;
    let store = ContainerStore::open(root)?;
    // With an open stdin (-i) the monitor holds its write end for the
    // attached clients.
    let open_stdin = spec.open_stdin;
    let stdin = if open_stdin {
        StdioMode::Piped
    } else {
        StdioMode::Null
    };
    let stdio = [stdin, StdioMode::Piped, StdioMode::Piped];
    let mut handle = if again {
        crate::container::again::recreate_spec(&store, spec, stdio)?
    } else {
        create_spec(&store, spec, stdio)?
    };
    let dir = handle.dir();
    // Opened before the answer, so that a log that cannot be written is
    // the caller's error, not a silent end of the container.
    let log = JsonLog::open(&handle.log_path())?;
    // With a terminal (-t) its master is the output (one stream, as
    // docker logs a terminal) and, with an open stdin, the input.
    let terminal = handle.take_terminal();
    let input = match &terminal {
        Some(t) if open_stdin => Some(t.try_clone().map_err(io_err("dup", "terminal"))?),
        Some(_) => None,
        None => handle.take_stdin(),
    };
    let clients = Clients::listen(&dir, input)?;
    let fifo = dir.join("start.fifo");
    let c = dunnage_base::cstr::cstring(&fifo).map_err(io_err("mkfifo", &fifo))?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io_err("mkfifo", &fifo)(std::io::Error::last_os_error()));
    }
    // O_RDWR: opening never blocks, the fifo never reports EOF, and a
    // starter's non-blocking open finds a reader from now on.
    let reader = File::options()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(io_err("open", &fifo))?;
    let _lock = handle.lock()?;
    let mut st = State::read(&dir)?;
    st.monitor_pid = std::process::id() as i32;
    st.monitor_start = state::pid_start_time(st.monitor_pid).unwrap_or(0);
    st.write(&dir)?;
    Ok((handle, reader, clients, terminal, log))
}

/// Copy `from` to the log as `stream` entries, and to the attached
/// clients.
fn pump(from: File, stream: &'static str, log: JsonLog, clients: Arc<Clients>) {
    let number = if stream == "stdout" { 1 } else { 2 };
    log.copy(from, stream, |buf| clients.send(number, buf));
}

/// Wait for the start request or the end of the process; start; log;
/// wait; record; tell the attached clients; remove when asked.
fn supervise(
    mut handle: ContainerHandle,
    fifo: File,
    clients: Arc<Clients>,
    terminal: Option<File>,
    log: JsonLog,
    auto_remove: bool,
) -> Result<()> {
    let fifo_path = handle.dir().join("start.fifo");
    let mut threads = Vec::new();
    let streams = match terminal {
        Some(t) => [(Some(t), "stdout"), (None, "stderr")],
        None => [
            (handle.take_stdout(), "stdout"),
            (handle.take_stderr(), "stderr"),
        ],
    };
    for (file, stream) in streams {
        if let Some(f) = file {
            let log = log.clone();
            let clients = Arc::clone(&clients);
            threads.push(std::thread::spawn(move || pump(f, stream, log, clients)));
        }
    }
    let pidfd = handle.owned_pidfd()?;
    let mut fds = [
        libc::pollfd {
            fd: fifo.as_raw_fd(),
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
    let _ = std::fs::remove_file(&fifo_path);
    if fds[0].revents & libc::POLLIN != 0 && fds[1].revents == 0 {
        // A start failure is recorded in the state by start itself.
        clients.mark_started();
        let _ = handle.start();
    } else {
        handle.close_gate();
    }
    // The answer to a waiting starter: the state is recorded.
    drop(fifo);
    let exit = handle.wait();
    drop(pidfd);
    for t in threads {
        let _ = t.join();
    }
    let code = exit.ok().and_then(|e| e.code).unwrap_or(255);
    clients.finish(code);
    if auto_remove {
        handle.remove(true)?;
    }
    Ok(())
}

impl Container {
    /// The program started as the monitor of detached containers (default
    /// `/proc/self/exe`, whose `main` must call [`run_if_monitor`]); see
    /// the [monitor module](crate::container::monitor).
    pub fn monitor_program(&mut self, program: impl AsRef<Path>) -> &mut Container {
        self.monitor = Some(program.as_ref().to_path_buf());
        self
    }

    /// Whether the monitor of a detached container removes it once its
    /// process has exited (`docker run -d --rm`); default no.
    pub fn auto_remove(&mut self, yes: bool) -> &mut Container {
        self.auto_remove = yes;
        self
    }

    /// Create a detached container (`docker create` / `run -d`): a
    /// monitor process makes it, holds its output (logged to
    /// `<id>-json.log`) and records its exit, so that it outlives this
    /// process. Start it with [`ContainerHandle::start`] from any
    /// process. The builder's stdio settings do not apply.
    pub fn create_detached(&self, store: &ContainerStore) -> Result<ContainerHandle> {
        let spec = self.resolve(store)?;
        if let Some(other) = store.list()?.into_iter().find(|c| c.spec.name == spec.name) {
            return Err(Error::NameInUse {
                name: spec.name,
                id: other.spec.id,
            });
        }
        let program = self
            .monitor
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        let extra: &[&str] = if self.auto_remove {
            &[AUTO_REMOVE_ARG]
        } else {
            &[]
        };
        start_monitor(store, &spec, &program, extra)?;
        let info = store.info(&spec.id)?;
        Ok(ContainerHandle::attach(store.clone(), info.spec))
    }
}

impl ContainerHandle {
    /// Make an exited container (or a created one whose process has gone)
    /// ready to run again, as `docker start` does with one: a new monitor
    /// (`monitor_program`, default `/proc/self/exe`, see
    /// [`Container::monitor_program`]) makes its process again, waiting
    /// at its start gate; the status is `created` until
    /// [`start`](ContainerHandle::start) (or
    /// [`attach_stdio`](ContainerHandle::attach_stdio) first, then start).
    ///
    /// Kept: the ID, name and configuration, the read-write layer (the
    /// files the earlier runs wrote), the log (appended to), the creation
    /// time. New: the process and its namespaces, the cgroup, the mounts
    /// inside, a bridge network's attachment, the monitor, the start time;
    /// the earlier exit code goes. A container that is not exited is
    /// [`Error::WrongState`]; a second `recreate` racing this one is
    /// refused the same way. The builder's stdio settings of the first
    /// run do not apply: like a detached container its output goes to the
    /// monitor and the log, stdin is open only when the container was made
    /// with an open stdin.
    pub fn recreate(&mut self, monitor_program: Option<&Path>) -> Result<()> {
        let status = self.status()?;
        if status != Status::Exited {
            return Err(Error::WrongState {
                op: "start",
                id: self.spec.id.clone(),
                status,
            });
        }
        // The process is gone: reap it when this handle made it (it has
        // ended: no wait), and let the earlier run's monitor finish first
        // (it records the exit and closes its clients, socket and fifo,
        // which the next run makes again under the same names).
        if let Some(mut o) = self.owned.take() {
            let _ = o.child.wait();
        }
        self.wait_monitor(&self.state()?);
        let program = monitor_program
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        start_monitor(&self.store, &self.spec, &program, &[AGAIN_ARG])
    }
}

/// Start `program` as the monitor of `spec` (`extra` after the root) and
/// read its answer.
fn start_monitor(
    store: &ContainerStore,
    spec: &Spec,
    program: &Path,
    extra: &[&str],
) -> Result<()> {
    let json = serde_json::to_vec(spec).map_err(|e| Error::CorruptState {
        path: PathBuf::from("<spec>"),
        reason: e.to_string(),
    })?;
    let mut monitor = std::process::Command::new(program);
    monitor.arg(MONITOR_ARG).arg(store.root()).args(extra);
    let mut child = monitor
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(io_err("spawn monitor", program))?;
    let written = child
        .stdin
        .take()
        .map(|mut s| s.write_all(&json))
        .unwrap_or(Ok(()));
    let mut answer = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut answer);
    }
    let _ = child.wait();
    written.map_err(io_err("write to monitor", program))?;
    match answer.trim_end().strip_prefix("err ") {
        None if answer.trim_end() == "ok" => Ok(()),
        Some(message) => Err(Error::Monitor {
            op: "create",
            message: message.to_string(),
        }),
        None => Err(Error::Monitor {
            op: "create",
            message: format!("no answer from {}", program.display()),
        }),
    }
}

/// Ask the monitor of the container in `dir` to start it; wait until the
/// state leaves `created`.
///
/// The request is a byte written to the fifo; the answer is the monitor
/// closing its end once the state is recorded (the write end then reports
/// `POLLERR`: no reader left), or its exit. Not inotify: closing an
/// inotify instance waits for an SRCU grace period, 10-20 ms. A monitor
/// that keeps the fifo open (one from before this protocol) is still
/// seen, by reading the state every 10 ms.
pub(crate) fn request_start(dir: &Path) -> Result<State> {
    let fifo = dir.join("start.fifo");
    let f = File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|_| Error::Unsupported {
            op: "start",
            reason: "the start gate is held by a process that has gone",
        })?;
    // EPIPE: the monitor has answered another starter meanwhile and closed
    // the fifo; the state says how it went.
    match (&f).write_all(&[1]) {
        Err(e) if e.raw_os_error() != Some(libc::EPIPE) => {
            return Err(io_err("write", &fifo)(e));
        }
        _ => {}
    }
    let st = State::read(dir)?;
    let monitor = crate::container::handle::pidfd_checked(st.monitor_pid, st.monitor_start);
    let mut answered = false;
    loop {
        let st = State::read(dir)?;
        let monitor_alive = state::same_process(st.monitor_pid, st.monitor_start);
        match (st.status, &monitor) {
            (Some(Status::Created), Some(pidfd)) if monitor_alive => {
                let mut fds = [
                    libc::pollfd {
                        // Once answered, only the timeout and the exit.
                        fd: if answered { -1 } else { f.as_raw_fd() },
                        events: 0,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: pidfd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: poll on two pollfds (a negative fd is skipped);
                // EINTR just loops.
                unsafe { libc::poll(fds.as_mut_ptr(), 2, 10) };
                answered |= fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0;
            }
            _ => return Ok(st),
        }
    }
}
