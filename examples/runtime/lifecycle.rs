//! The lifecycle verbs: create, start, run, state, list, kill, delete,
//! ps, pause, resume. A runc ID is the name of a facade container in the
//! store at `--root`; a label of the container's spec
//! ([`SIDECAR_LABEL`]) keeps the bundle, the annotations and the hooks
//! for later calls.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use dunnage::container::{ContainerHandle, ContainerInfo, ContainerStore, Status, StdioMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{console, hooks, keeper};

/// The label of the container's spec that holds its [`Sidecar`] as JSON
/// (saved with the spec: no file of its own to write per container).
pub const SIDECAR_LABEL: &str = "org.dunnage.runtime.sidecar";

/// What `create` keeps for the later calls.
#[derive(Serialize, Deserialize, Default)]
pub struct Sidecar {
    /// The bundle directory (absolute).
    pub bundle: PathBuf,
    /// The rootfs (absolute).
    pub rootfs: PathBuf,
    /// `annotations` of config.json.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `hooks` of config.json, as written.
    pub hooks: Value,
}

/// The runtime-spec state document, in runc's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    oci_version: &'static str,
    id: String,
    pid: i32,
    status: &'static str,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
    owner: String,
}

/// The runtime's store and the file of its ID locks.
pub struct Ctx {
    /// The store at `--root`.
    pub store: ContainerStore,
    /// `--root`.
    pub root: PathBuf,
}

/// A lock on one container ID, held until dropped: an open-file-description
/// (OFD) write lock on one byte of `--root`'s `ids.lock`, at an offset
/// hashed from the ID (FNV-1a). One file for every ID, never removed:
/// nothing is made or left per ID, and a lock cannot be taken on a file
/// another process is removing. Two IDs whose hashes collide (62 bits)
/// only wait for each other.
pub struct IdLock {
    _file: std::fs::File,
}

impl Ctx {
    /// Open (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Ctx, String> {
        let store = ContainerStore::open(root).map_err(|e| e.to_string())?;
        Ok(Ctx {
            store,
            root: root.to_path_buf(),
        })
    }

    /// Serialize calls on `id` from every process (see [`IdLock`]).
    pub fn lock(&self, id: &str) -> Result<IdLock, String> {
        check_id(id)?;
        let path = self.root.join("ids.lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("lock {id}: open {}: {e}", path.display()))?;
        // SAFETY: an all-zero flock is a valid value of the plain C struct.
        let mut range: libc::flock = unsafe { std::mem::zeroed() };
        range.l_type = libc::F_WRLCK as libc::c_short;
        range.l_whence = libc::SEEK_SET as libc::c_short;
        // Within off_t (62 bits on 64-bit targets).
        range.l_start = ((fnv1a(id.as_bytes()) >> 2) & libc::off_t::MAX as u64) as libc::off_t;
        range.l_len = 1;
        loop {
            // SAFETY: fcntl on an open descriptor with a valid flock.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &range) } == 0 {
                return Ok(IdLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("lock {id}: {e}"));
            }
        }
    }

    /// The container named `id`.
    pub fn find(&self, id: &str) -> Result<Option<ContainerInfo>, String> {
        let all = self.store.list().map_err(|e| e.to_string())?;
        Ok(all.into_iter().find(|c| c.spec.name == id))
    }

    /// [`Ctx::lock`] and [`Ctx::get`].
    pub fn get_locked(&self, id: &str) -> Result<(IdLock, ContainerInfo, ContainerHandle), String> {
        let lock = self.lock(id)?;
        let (info, h) = self.get(id)?;
        Ok((lock, info, h))
    }

    /// The container named `id`, or runc's error.
    pub fn get(&self, id: &str) -> Result<(ContainerInfo, ContainerHandle), String> {
        let info = self
            .find(id)?
            .ok_or_else(|| format!("container does not exist: {id}"))?;
        let h = self.store.get(&info.spec.id).map_err(|e| e.to_string())?;
        Ok((info, h))
    }
}

/// The 64-bit FNV-1a hash of `bytes`: the offset of an ID's lock (a fixed
/// function every version of the runtime agrees on; no CPU feature probe
/// as a SHA-256 implementation makes, a costly `cpuid` in a VM).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// runc's ID rule: letters, digits, `_ + - .`, not `.`/`..`.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid container id format: {id:?}"))
    }
}

/// The status word of the runtime spec.
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        _ => "stopped",
    }
}

/// The sidecar of a container: its label, or the `runtime.json` beside
/// its state that earlier versions wrote.
fn read_sidecar(info: &ContainerInfo, dir: &Path) -> Sidecar {
    match info.spec.labels.get(SIDECAR_LABEL) {
        Some(json) => serde_json::from_str(json).ok(),
        None => std::fs::read(dir.join("runtime.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
    }
    .unwrap_or_default()
}

/// The state document of a container.
pub fn oci_state(info: &ContainerInfo, dir: &Path) -> OciState {
    let side = read_sidecar(info, dir);
    let stopped = info.status == Status::Exited;
    OciState {
        oci_version: "1.0.2",
        id: info.spec.name.clone(),
        pid: if stopped { 0 } else { info.state.pid },
        status: status_word(info.status),
        bundle: side.bundle,
        rootfs: side.rootfs,
        created: info.spec.created.clone(),
        annotations: side.annotations,
        owner: String::new(),
    }
}

/// Options of `create` and `run`.
pub struct CreateOpts<'a> {
    /// The container's ID.
    pub id: &'a str,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the pty master.
    pub console_socket: Option<PathBuf>,
}

/// Make the container; returns its handle with the start gate still
/// held, for `run` to start or `create` to hand to a keeper, and the
/// config's `hooks` (what `runtime.json` keeps of them).
pub fn create_handle(ctx: &Ctx, o: &CreateOpts) -> Result<(ContainerHandle, Value), String> {
    if ctx.find(o.id)?.is_some() {
        return Err(format!("container with id exists: {}", o.id));
    }
    let bundle = std::fs::canonicalize(&o.bundle)
        .map_err(|e| format!("bundle {}: {e}", o.bundle.display()))?;
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Parsed once: the typed conversion and the raw fields read here
    // (hooks, terminal, root.path) come from the same document.
    let cfg = dunnage::oci::OciConfig::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let conv = cfg.to_container(&bundle).map_err(|e| e.to_string())?;
    let raw = cfg.raw();
    for w in &conv.warnings {
        crate::warn(&w.to_string());
    }
    let hooks_json = raw.get("hooks").cloned().unwrap_or(Value::Null);
    for kind in ["createContainer", "startContainer"] {
        if hooks_json
            .get(kind)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err(format!(
                "config.json field hooks.{kind} is not supported by this runtime yet (it runs in the container's namespaces)"
            ));
        }
    }
    let terminal = raw.pointer("/process/terminal").and_then(Value::as_bool) == Some(true);
    if terminal && o.console_socket.is_none() {
        return Err(
            "cannot allocate tty if runc will detach without setting console socket".into(),
        );
    }
    let rootfs_rel = raw
        .pointer("/root/path")
        .and_then(Value::as_str)
        .unwrap_or("rootfs");
    let mut c = conv.container;
    // The cgroup is linux.cgroupsPath exactly, as runc makes it (the
    // conversion only sets its parent); without one, runc's `/<id>`.
    let cgroup = conv
        .cgroups_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| o.id.to_string());
    c.cgroup_path(cgroup);
    let side = Sidecar {
        rootfs: bundle.join(rootfs_rel),
        bundle,
        annotations: conv.annotations,
        hooks: hooks_json,
    };
    let json = serde_json::to_string(&side).map_err(|e| format!("sidecar: {e}"))?;
    c.name(o.id)
        .label(SIDECAR_LABEL, json)
        .stdin(StdioMode::Inherit)
        .stdout(StdioMode::Inherit)
        .stderr(StdioMode::Inherit);
    let mut handle = c.create(&ctx.store).map_err(|e| e.to_string())?;
    let undo = |h: ContainerHandle, msg: String| -> String {
        let _ = h.remove(true);
        msg
    };
    // Read from the state only when something needs it.
    let pid = if conv.oom_score_adj.is_some() || o.pid_file.is_some() {
        match handle.pid() {
            Ok(Some(pid)) => pid,
            _ => return Err(undo(handle, "the container's process has gone".into())),
        }
    } else {
        0
    };
    if let Some(adj) = conv.oom_score_adj
        && let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
    {
        return Err(undo(handle, format!("write oom_score_adj: {e}")));
    }
    if let Some(sock) = &o.console_socket {
        let Some(master) = handle.take_terminal() else {
            return Err(undo(handle, "no terminal was made".into()));
        };
        if let Some((rows, cols)) = conv.console_size {
            console::set_size(&master, rows, cols);
        }
        if let Err(e) = console::send(sock, master.as_raw_fd()) {
            return Err(undo(handle, e));
        }
    }
    // The state (a listing of the store) only for hooks that get it.
    if hooks::any(&side.hooks, &["createRuntime", "prestart"]) {
        let state = match state_value(ctx, o.id) {
            Ok(s) => s,
            Err(e) => return Err(undo(handle, e)),
        };
        for kind in ["createRuntime", "prestart"] {
            if let Err(e) = hooks::run(&side.hooks, kind, &state) {
                return Err(undo(handle, e));
            }
        }
    }
    if let Some(f) = &o.pid_file
        // Atomic (a reader sees the whole pid or no file), not fsynced,
        // as runc writes it.
        && let Err(e) = dunnage_base::fs::write_replace(f, pid.to_string().as_bytes(), 0o644)
    {
        return Err(undo(handle, format!("write pid file {}: {e}", f.display())));
    }
    Ok((handle, side.hooks))
}

fn state_value(ctx: &Ctx, id: &str) -> Result<Value, String> {
    let (info, h) = ctx.get(id)?;
    serde_json::to_value(oci_state(&info, &h.dir())).map_err(|e| e.to_string())
}

/// `create`: the init is left waiting, its gate held by a keeper.
pub fn create(ctx: &Ctx, o: &CreateOpts) -> Result<i32, String> {
    let _l = ctx.lock(o.id)?;
    let (mut handle, _) = create_handle(ctx, o)?;
    let Some(gate) = handle.take_gate() else {
        let _ = handle.remove(true);
        return Err("the container has no start gate".into());
    };
    if let Err(e) = keeper::spawn(gate, &handle.dir()) {
        let _ = handle.remove(true);
        return Err(e);
    }
    Ok(0)
}

/// `start`.
pub fn start(ctx: &Ctx, id: &str) -> Result<i32, String> {
    let (_l, info, mut h) = ctx.get_locked(id)?;
    match info.status {
        Status::Created => {}
        Status::Exited => return Err("cannot start a container that has stopped".into()),
        _ => return Err("cannot start an already running container".into()),
    }
    h.start().map_err(|e| e.to_string())?;
    poststart(ctx, id, &read_sidecar(&info, &h.dir()).hooks)?;
    Ok(0)
}

/// The poststart hooks, with the state read only when there are some.
fn poststart(ctx: &Ctx, id: &str, hooks_json: &Value) -> Result<(), String> {
    if hooks::any(hooks_json, &["poststart"]) {
        hooks::run_warn(hooks_json, "poststart", &state_value(ctx, id)?);
    }
    Ok(())
}

/// `run`: create and start; in the foreground, wait and delete.
pub fn run(ctx: &Ctx, o: &CreateOpts, detach: bool) -> Result<i32, String> {
    if detach {
        create(ctx, o)?;
        return start(ctx, o.id);
    }
    let (mut h, hooks_json) = {
        let _l = ctx.lock(o.id)?;
        let (mut h, hooks_json) = create_handle(ctx, o)?;
        h.start().map_err(|e| e.to_string())?;
        (h, hooks_json)
    };
    poststart(ctx, o.id, &hooks_json)?;
    // Not recorded: the container is deleted next.
    let exit = h.wait_to_remove().map_err(|e| e.to_string())?;
    if hooks::any(&hooks_json, &["poststop"]) {
        // The poststop hooks get the state document: `delete` makes it.
        delete(ctx, o.id, true)?;
    } else {
        // Removed with the handle in hand: no listing of the store to
        // find it again. Another process's `delete` may have removed it
        // while it ran (then there is nothing left to do).
        let _l = ctx.lock(o.id)?;
        if h.dir().exists() {
            h.remove(true).map_err(|e| e.to_string())?;
        }
    }
    Ok(exit.code.unwrap_or(255))
}

/// `state`.
pub fn state(ctx: &Ctx, id: &str) -> Result<i32, String> {
    check_id(id)?;
    let (info, h) = ctx.get(id)?;
    let s = serde_json::to_string_pretty(&oci_state(&info, &h.dir())).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(0)
}

/// `list [--format table|json]`.
pub fn list(ctx: &Ctx, format: &str) -> Result<i32, String> {
    let mut states: Vec<OciState> = Vec::new();
    let mut all = ctx.store.list().map_err(|e| e.to_string())?;
    all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for info in &all {
        let dir = ctx.store.root().join("containers").join(&info.spec.id);
        let mut s = oci_state(info, &dir);
        s.owner = "root".into();
        states.push(s);
    }
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string(&states).map_err(|e| e.to_string())?
        ),
        "table" => {
            // runc's tabwriter: columns at least 12 wide, one space apart.
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            let mut width = [12usize; 6];
            for r in &rows {
                for (w, cell) in width.iter_mut().zip(r) {
                    *w = (*w).max(cell.len() + 1);
                }
            }
            for r in &rows {
                let mut line = String::new();
                for (i, cell) in r.iter().enumerate() {
                    if i + 1 == r.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$}", w = width[i]));
                    }
                }
                println!("{line}");
            }
        }
        other => return Err(format!("invalid format option {other:?}")),
    }
    Ok(0)
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("invalid signal: {s}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    dunnage::container::spec::signal_number(&name).map_err(|_| format!("unknown signal {s:?}"))
}

/// `kill [--all] ID [SIGNAL]`.
pub fn kill(ctx: &Ctx, id: &str, signal: &str, all: bool) -> Result<i32, String> {
    let sig = parse_signal(signal)?;
    let (_l, info, mut h) = ctx.get_locked(id)?;
    if info.status == Status::Exited {
        return Err("container not running".into());
    }
    if all {
        for p in h.top().map_err(|e| e.to_string())? {
            // SAFETY: kill takes a pid and a signal number.
            unsafe { libc::kill(p.pid as i32, sig) };
        }
        return Ok(0);
    }
    h.kill(sig).map_err(|e| e.to_string())?;
    Ok(0)
}

/// `delete [--force] ID`.
pub fn delete(ctx: &Ctx, id: &str, force: bool) -> Result<i32, String> {
    let _l = ctx.lock(id)?;
    let Some(info) = ctx.find(id)? else {
        if force {
            return Ok(0);
        }
        return Err(format!("container does not exist: {id}"));
    };
    if !force && matches!(info.status, Status::Running | Status::Paused) {
        return Err(format!(
            "cannot delete container {id} that is not stopped: {}",
            status_word(info.status)
        ));
    }
    let h = ctx.store.get(&info.spec.id).map_err(|e| e.to_string())?;
    let dir = h.dir();
    let side = read_sidecar(&info, &dir);
    let mut st = serde_json::to_value(oci_state(&info, &dir)).unwrap_or(Value::Null);
    st["status"] = Value::from("stopped");
    h.remove(true).map_err(|e| e.to_string())?;
    hooks::run_warn(&side.hooks, "poststop", &st);
    Ok(0)
}

/// `ps [--format table|json] ID`.
pub fn ps(ctx: &Ctx, id: &str, format: &str) -> Result<i32, String> {
    let (_, h) = ctx.get(id)?;
    let pids: Vec<u32> = h
        .top()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| p.pid)
        .collect();
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string(&pids).map_err(|e| e.to_string())?
        ),
        "table" => {
            // As runc: `ps -ef`, its header and the container's lines.
            let out = std::process::Command::new("ps")
                .arg("-ef")
                .output()
                .map_err(|e| format!("ps: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            if let Some(head) = lines.next() {
                println!("{head}");
            }
            for l in lines {
                let pid = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        other => return Err(format!("invalid format option {other:?}")),
    }
    Ok(0)
}

/// `pause` (`resume` with `pause == false`).
pub fn pause(ctx: &Ctx, id: &str, pause: bool) -> Result<i32, String> {
    let (_l, info, mut h) = ctx.get_locked(id)?;
    match (pause, info.status) {
        (true, Status::Running) => h.pause().map_err(|e| e.to_string())?,
        (false, Status::Paused) => h.resume().map_err(|e| e.to_string())?,
        (true, _) => return Err("container not running".into()),
        (false, _) => return Err("container not paused".into()),
    }
    Ok(0)
}
