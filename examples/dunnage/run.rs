//! `run` and `create`: docker's flags turned into a [`Container`], every
//! value checked before anything is made; the exit codes docker gives
//! (the process's own, 125 when the container cannot be made, 126 and
//! 127 when its program cannot be run).

use std::io::{Read, Write};
use std::path::Path;

use dunnage::container::{
    Container, ContainerHandle, ContainerStore, Error, Network, Seccomp, StdioMode,
};

use crate::flags::{self, Flag, NetworkOpt, Parsed, SecurityOpt, Usage, f, invalid};
use crate::verbs::Fail;

/// The flags of `run` and `create`.
pub const RUN_FLAGS: &[Flag] = &[
    f('\0', "rm", false),
    f('d', "detach", false),
    f('i', "interactive", false),
    f('t', "tty", false),
    f('\0', "name", true),
    f('e', "env", true),
    f('\0', "env-file", true),
    f('w', "workdir", true),
    f('u', "user", true),
    f('h', "hostname", true),
    f('\0', "entrypoint", true),
    f('m', "memory", true),
    f('\0', "memory-swap", true),
    f('\0', "cpus", true),
    f('c', "cpu-shares", true),
    f('\0', "cpuset-cpus", true),
    f('\0', "pids-limit", true),
    f('\0', "ulimit", true),
    f('\0', "read-only", false),
    f('\0', "cap-add", true),
    f('\0', "cap-drop", true),
    f('\0', "privileged", false),
    f('\0', "security-opt", true),
    f('\0', "tmpfs", true),
    f('v', "volume", true),
    f('\0', "network", true),
    f('\0', "net", true),
    f('p', "publish", true),
    f('\0', "sysctl", true),
    f('\0', "stop-signal", true),
    f('l', "label", true),
    f('\0', "cgroup-parent", true),
];

/// The exit code docker gives for a container error at `run`/`create`.
pub fn exit_code_of(e: &Error) -> u8 {
    match e {
        Error::CommandNotFound(_) => 127,
        Error::NotExecutable { .. } => 126,
        _ => 125,
    }
}

/// The daemon's words for `e` (docker adds a sentence to a name conflict).
fn words(e: &Error) -> String {
    match e {
        Error::NameInUse { .. } => format!(
            "{e}. You have to remove (or rename) that container to be able to reuse that name."
        ),
        // runc's words for a path that is not there.
        Error::CommandNotFound(_) => crate::messages::exec_words(e),
        e => e.to_string(),
    }
}

/// A container error of `run`, as docker's CLI prints it:
/// `docker: Error response from daemon: MESSAGE.`, with a pointer to help
/// when the container could not even be made.
fn daemon(e: Error) -> Fail {
    let mut msg = words(&e);
    if !msg.ends_with('.') {
        msg.push('.');
    }
    let mut msg = format!("dunnage: Error response from daemon: {msg}");
    if matches!(
        e,
        Error::NameInUse { .. } | Error::InvalidName(_) | Error::UnknownImage(_)
    ) {
        msg.push_str("\nSee 'dunnage run --help'.");
    }
    Fail {
        code: exit_code_of(&e),
        msg,
    }
}

/// A container error of `create`: docker's CLI prints the daemon's words
/// and exits 1.
fn create_daemon(e: Error) -> Fail {
    Fail {
        code: 1,
        msg: format!("Error response from daemon: {}", words(&e)),
    }
}

/// A refused value of `run`/`create` (exit 125); `build` adds the
/// pointer to help.
fn usage(u: Usage) -> Fail {
    Fail {
        code: 125,
        msg: u.0,
    }
}

/// Build the container of `run`/`create` from parsed flags. Every value
/// is checked here; nothing is created.
pub fn build(p: &Parsed, store: &ContainerStore, verb: &str) -> Result<Container, Fail> {
    build_checked(p, store, verb).map_err(|mut fail| {
        // A refused value: docker's pointer to help after it.
        if fail.code == 125 && !fail.msg.contains('\n') && !fail.msg.starts_with("dunnage: ") {
            fail.msg
                .push_str(&format!("\nSee 'dunnage {verb} --help'."));
        }
        fail
    })
}

fn build_checked(p: &Parsed, store: &ContainerStore, verb: &str) -> Result<Container, Fail> {
    let Some((image, cmd)) = p.rest.split_first() else {
        return Err(usage(Usage(format!(
            "\"dunnage {verb}\" requires at least 1 argument"
        ))));
    };
    let mut c = Container::image(image.clone());
    if !cmd.is_empty() {
        c.args(cmd.iter());
    }
    if let Some(e) = p.get("entrypoint") {
        if e.is_empty() {
            c.entrypoint(Vec::<String>::new());
        } else {
            c.entrypoint([e]);
        }
    }
    if let Some(n) = p.get("name") {
        c.name(n);
    }
    // The files' variables first, then -e's, as docker orders them.
    for file in p.all("env-file") {
        for kv in flags::env_file(file).map_err(|w| Fail {
            code: 125,
            msg: format!("dunnage: {w}.\nSee 'dunnage {verb} --help'."),
        })? {
            let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
            c.env(k, v);
        }
    }
    for e in p.all("env") {
        if let Some(kv) = flags::env(e).map_err(|w| usage(invalid(e, "-e, --env", w)))? {
            let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
            c.env(k, v);
        }
    }
    if let Some(w) = p.get("workdir") {
        if !w.starts_with('/') {
            return Err(usage(Usage(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            ))));
        }
        c.current_dir(w);
    }
    if let Some(u) = p.get("user") {
        c.user(u);
    }
    if let Some(h) = p.get("hostname") {
        c.hostname(h);
    }
    if let Some(s) = p.get("stop-signal") {
        c.stop_signal(s);
    }
    if let Some(m) = p.get("memory") {
        let b = flags::ram_in_bytes(m).map_err(|w| usage(invalid(m, "-m, --memory", w)))?;
        if b < 6 << 20 {
            return Err(usage(Usage(
                "Minimum memory limit allowed is 6MB".to_string(),
            )));
        }
        c.memory(b);
    }
    if let Some(s) = p.get("memory-swap") {
        let b = flags::memory_swap(s).map_err(|w| usage(invalid(s, "--memory-swap", w)))?;
        if p.get("memory").is_none() && b != -1 {
            return Err(usage(Usage(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .to_string(),
            )));
        }
        c.memory_swap(b);
    }
    if let Some(s) = p.get("cpus") {
        let n = flags::cpus(s).map_err(|w| usage(invalid(s, "--cpus", w)))?;
        if n <= 0.0 {
            return Err(usage(Usage(format!(
                "Range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available",
                ncpus(),
                ncpus()
            ))));
        }
        c.cpus(n);
    }
    if let Some(s) = p.get("cpu-shares") {
        let n: u64 = s.parse().map_err(|_| {
            usage(invalid(
                s,
                "-c, --cpu-shares",
                "strconv.ParseInt: parsing \"".to_string() + s + "\": invalid syntax",
            ))
        })?;
        c.cpu_shares(n);
    }
    if let Some(s) = p.get("cpuset-cpus") {
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
        {
            return Err(usage(Usage(format!("Invalid value {s} for cpuset cpus"))));
        }
        c.cpuset_cpus(s);
    }
    if let Some(s) = p.get("pids-limit") {
        let n: i64 = s.parse().map_err(|_| {
            usage(invalid(
                s,
                "--pids-limit",
                format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"),
            ))
        })?;
        c.pids_limit(n);
    }
    for u in p.all("ulimit") {
        let (name, soft, hard) = flags::ulimit(u).map_err(|w| usage(invalid(u, "--ulimit", w)))?;
        c.rlimit(name, soft, hard);
    }
    c.readonly_rootfs(p.on("read-only"));
    c.privileged(p.on("privileged"));
    for cap in p.all("cap-add") {
        c.cap_add(cap);
    }
    for cap in p.all("cap-drop") {
        c.cap_drop(cap);
    }
    for s in p.all("security-opt") {
        match flags::security_opt(s).map_err(|w| usage(invalid(s, "--security-opt", w)))? {
            SecurityOpt::SeccompUnconfined => {
                c.seccomp(Seccomp::Unconfined);
            }
            SecurityOpt::SeccompFile(file) => {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    usage(Usage(format!(
                        "opening seccomp profile ({file}) failed: {e}"
                    )))
                })?;
                c.seccomp(Seccomp::Profile(text));
            }
            SecurityOpt::NoNewPrivileges(on) => {
                c.no_new_privileges(on);
            }
        }
    }
    for t in p.all("tmpfs") {
        let (dst, opts) = flags::tmpfs(t).map_err(|w| usage(invalid(t, "--tmpfs", w)))?;
        c.tmpfs(dst, &opts);
    }
    for v in p.all("volume") {
        let vol = flags::volume(v).map_err(|w| {
            if w.starts_with("invalid mode") {
                // docker's daemon, not its CLI, checks the mode.
                Fail {
                    code: 125,
                    msg: format!(
                        "dunnage: Error response from daemon: {w}.\nSee 'dunnage {verb} --help'."
                    ),
                }
            } else {
                usage(invalid(v, "-v, --volume", w))
            }
        })?;
        if !Path::new(&vol.source).exists() {
            return Err(usage(Usage(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                vol.source
            ))));
        }
        c.bind(&vol.source, &vol.destination, vol.readonly);
    }
    for s in p.all("sysctl") {
        let (k, v) = flags::sysctl(s).map_err(|w| usage(invalid(s, "--sysctl", w)))?;
        c.sysctl(k, v);
    }
    for l in p.all("label") {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        c.label(k, v);
    }
    if let Some(parent) = p.get("cgroup-parent") {
        c.cgroup_parent(parent);
    }
    // As docker: the default bridge network unless told otherwise (when
    // it exists here; none otherwise).
    let net = match p.get("network").or(p.get("net")) {
        Some(n) => n,
        None if crate::network::default_exists(store) => "bridge",
        None => "none",
    };
    let ports = crate::network::publish(p, verb)?;
    let opt = flags::network(net).map_err(|w| usage(Usage(w)))?;
    match &opt {
        NetworkOpt::Host if !ports.is_empty() => {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
        }
        NetworkOpt::None | NetworkOpt::Container(_) if !ports.is_empty() => {
            return Err(usage(Usage(
                "conflicting options: port publishing and the container type network mode".into(),
            )));
        }
        _ => {}
    }
    match opt {
        NetworkOpt::None => c.network(Network::None),
        NetworkOpt::Host => c.network(Network::Host),
        NetworkOpt::Bridge(name) => c.network(Network::Bridge { name, ports }),
        NetworkOpt::Container(other) => {
            let h = store.get(&other).map_err(daemon)?;
            let pid = h.pid().map_err(daemon)?.ok_or_else(|| Fail {
                code: 125,
                msg: format!("cannot join network of a non running container: {other}"),
            })?;
            c.network(Network::Join(format!("/proc/{pid}/ns/net").into()))
        }
    };
    if p.on("tty") {
        // The pty is the process's stdin, stdout and stderr.
        c.tty(true);
    } else {
        c.stdin(if p.on("interactive") {
            StdioMode::Inherit
        } else {
            StdioMode::Null
        });
        c.stdout(StdioMode::Inherit).stderr(StdioMode::Inherit);
    }
    Ok(c)
}

fn ncpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `dunnage create`: a detached container (its monitor holds it); prints
/// its ID.
pub fn create(store: &ContainerStore, p: &Parsed) -> Result<u8, Fail> {
    let mut c = build(p, store, "create")?;
    c.auto_remove(p.on("rm"));
    let h = c.create_detached(store).map_err(create_daemon)?;
    println!("{}", h.id());
    Ok(0)
}

/// `dunnage run`.
pub fn run(store: &ContainerStore, p: &Parsed) -> Result<u8, Fail> {
    let mut c = build(p, store, "run")?;
    if p.on("detach") {
        // With --rm its monitor removes it once it has exited.
        c.auto_remove(p.on("rm"));
        let mut h = c.create_detached(store).map_err(daemon)?;
        if let Err(e) = h.start() {
            return Err(daemon(e));
        }
        println!("{}", h.id());
        return Ok(0);
    }
    if !p.on("rm") {
        return through_monitor(store, c, p);
    }
    // --rm: made by this process, the container writes to its stdout and
    // stderr directly; no log (docker's would go with the container).
    let mut h = c.create(store).map_err(daemon)?;
    let result = foreground(&mut h, p.on("interactive"));
    let done = match result {
        Ok(code) => Ok(code),
        Err(e) => Err(daemon(e)),
    };
    if let Err(e) = h.remove(true) {
        eprintln!("dunnage: removing the container: {e}");
    }
    done
}

/// A foreground `run` without `--rm`, as docker's CLI runs one: the
/// container is made detached (its monitor holds its output, writes the
/// json-file log, records its exit, and keeps it running when this process
/// dies), then attached to (stdin with `-i`), started and waited for
/// through the attach socket, with the signals passed on.
fn through_monitor(store: &ContainerStore, mut c: Container, p: &Parsed) -> Result<u8, Fail> {
    let interactive = p.on("interactive");
    if interactive {
        // The monitor holds the process's stdin (or terminal) for the
        // attached clients.
        c.stdin(StdioMode::Piped);
    }
    let mut h = c.create_detached(store).map_err(daemon)?;
    let attach = h.attach_stdio().map_err(daemon)?;
    proxy_signals(&h);
    h.start().map_err(daemon)?;
    crate::verbs::relay(attach, interactive)
}

/// Start a container made by this process (`run --rm`), relay its
/// terminal when it has one, and wait: docker's exit code (the process's, 128 + a signal).
fn foreground(h: &mut ContainerHandle, interactive: bool) -> dunnage::container::Result<u8> {
    proxy_signals(h);
    h.start()?;
    if let Some(term) = h.take_terminal() {
        relay_terminal(term, interactive);
    }
    // Not recorded: the container is removed next (`--rm`).
    let exit = h.wait_to_remove()?;
    Ok(exit.code.map_or(255, |c| c.clamp(0, 255) as u8))
}

/// Copy a pty master's output to stdout until the other side closes (EIO
/// when its last holder ends), and stdin to it when `interactive`. A
/// closed stdout does not stop the copy: the container is not blocked.
pub fn relay_terminal(term: std::fs::File, interactive: bool) {
    if interactive && let Ok(mut to) = term.try_clone() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
        });
    }
    let mut from = term;
    let mut buf = [0u8; 8192];
    let mut out = std::io::stdout();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
    }
}

/// The signals `run` passes on to the container's process (docker's
/// sig-proxy): blocked in this process from here on, and sent on by a
/// thread. Called after the container's process exists, so that it does
/// not inherit the blocked mask.
const PROXIED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn proxy_signals(h: &ContainerHandle) {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset; the
    // mask calls take valid pointers.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in PROXIED {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    let mut target = h.share();
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: set is a valid signal set; sig is written.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                return;
            }
            if target.kill(sig).is_err() {
                return;
            }
        }
    });
}
