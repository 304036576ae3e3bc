//! `exec`: a new process in a running container, from `--process P.json`
//! (what the engines send) or from the command line (`-e -u --cwd -t`).

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use dunnage::container::{CapabilitySets, ExecOptions, RlimitSpec, Status, StdioMode};
use serde_json::Value;

use crate::console;
use crate::lifecycle::Ctx;

/// What to run.
pub struct ExecArgs {
    /// The container's ID.
    pub id: String,
    /// `--process`: a runtime-spec `process` object.
    pub process: Option<PathBuf>,
    /// The command (without `--process`).
    pub argv: Vec<String>,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u uid[:gid]`.
    pub user: Option<String>,
    /// `--cwd`.
    pub cwd: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `--detach`.
    pub detach: bool,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--cap`: added to bounding, effective and permitted, as runc does.
    pub caps: Vec<String>,
    /// The process.json's capability sets (default: the container's).
    pub capabilities: Option<CapabilitySets>,
    /// `--no-new-privs`, or the process.json's `noNewPrivileges`
    /// (default: the container's).
    pub no_new_privileges: Option<bool>,
    /// The process.json's `rlimits` (default: the container's).
    pub rlimits: Option<Vec<RlimitSpec>>,
    /// `--additional-gids`, or the process.json's `user.additionalGids`.
    pub additional_gids: Option<Vec<u32>>,
}

/// A process.json's `rlimits`: `[{"type": "RLIMIT_NOFILE", "soft": N,
/// "hard": N}]`.
fn parse_rlimits(v: &Value) -> Result<Vec<RlimitSpec>, String> {
    let list = v.as_array().ok_or("process.json rlimits: not an array")?;
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |k: &str| format!("process.json rlimits[{i}].{k}");
            let kind = r
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{}: not a string", field("type")))?;
            let name = kind
                .strip_prefix("RLIMIT_")
                .ok_or_else(|| format!("{}: {kind:?} is not RLIMIT_*", field("type")))?;
            let num = |k: &str| {
                r.get(k)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("{}: not a number", field(k)))
            };
            Ok(RlimitSpec {
                name: name.to_ascii_lowercase(),
                soft: num("soft")?,
                hard: num("hard")?,
            })
        })
        .collect()
}

/// Read a process.json into `a` (its fields replace the flags').
fn load_process(a: &mut ExecArgs, path: &PathBuf) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let p: Value = serde_json::from_slice(&bytes).map_err(|e| format!("process.json: {e}"))?;
    let strs = |key: &str| -> Result<Vec<String>, String> {
        match p.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("process.json {key}: not a string"))
                })
                .collect(),
            Some(_) => Err(format!("process.json {key}: not an array")),
        }
    };
    a.argv = strs("args")?;
    a.env = strs("env")?;
    if let Some(cwd) = p.get("cwd").and_then(Value::as_str) {
        a.cwd = Some(cwd.to_string());
    }
    if let Some(u) = p.get("user") {
        let uid = u.get("uid").and_then(Value::as_u64).unwrap_or(0);
        let gid = u.get("gid").and_then(Value::as_u64).unwrap_or(0);
        a.user = Some(format!("{uid}:{gid}"));
        // runc sets exactly these (none when absent).
        let gids = match u.get("additionalGids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|g| {
                    g.as_u64()
                        .and_then(|g| u32::try_from(g).ok())
                        .ok_or("process.json user.additionalGids: not a list of gids")
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("process.json user.additionalGids: not an array".into()),
        };
        a.additional_gids = Some(gids);
    }
    if let Some(n) = p.get("noNewPrivileges").filter(|v| !v.is_null()) {
        a.no_new_privileges = Some(
            n.as_bool()
                .ok_or("process.json noNewPrivileges: not a boolean")?,
        );
    }
    if let Some(r) = p.get("rlimits").filter(|v| !v.is_null()) {
        a.rlimits = Some(parse_rlimits(r)?);
    }
    a.tty = p.get("terminal").and_then(Value::as_bool).unwrap_or(false);
    if let Some((sets, warnings)) =
        dunnage::oci::process_capabilities(&p).map_err(|e| format!("process.json: {e}"))?
    {
        for w in warnings {
            eprintln!("warning: process.json: {w}");
        }
        a.capabilities = Some(sets);
    }
    for field in ["apparmorProfile", "selinuxLabel"] {
        if p.get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(format!(
                "process.json field {field} is not supported on this host"
            ));
        }
    }
    Ok(())
}

/// Run the exec; the exit code (or 0 when detached).
pub fn exec(ctx: &Ctx, mut a: ExecArgs) -> Result<i32, String> {
    if let Some(p) = a.process.clone() {
        load_process(&mut a, &p)?;
    }
    if a.argv.is_empty() {
        return Err("exec: no command".into());
    }
    if a.tty && a.console_socket.is_none() && a.detach {
        return Err(
            "cannot allocate tty if runc will detach without setting console socket".into(),
        );
    }
    let (info, h) = ctx.get(&a.id)?;
    if info.status != Status::Running {
        return Err(format!(
            "cannot exec in a {} container",
            match info.status {
                Status::Created => "created",
                Status::Paused => "paused",
                _ => "stopped",
            }
        ));
    }
    let mut capabilities = a.capabilities.clone();
    if !a.caps.is_empty() {
        let mut sets = capabilities
            .take()
            .unwrap_or_else(|| h.spec().capabilities.clone());
        for cap in &a.caps {
            let upper = cap.to_ascii_uppercase();
            let name = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if dunnage::namespaces::caps::capability_number(&name).is_none() {
                eprintln!("warning: exec --cap: unknown capability {cap:?}: ignored");
                continue;
            }
            for set in [&mut sets.bounding, &mut sets.effective, &mut sets.permitted] {
                if !set.contains(&name) {
                    set.push(name.clone());
                }
            }
        }
        capabilities = Some(sets);
    }
    let opts = ExecOptions {
        env: a.env.clone(),
        user: a.user.clone(),
        working_dir: a.cwd.clone(),
        tty: a.tty,
        stdin: StdioMode::Inherit,
        stdout: StdioMode::Inherit,
        stderr: StdioMode::Inherit,
        capabilities,
        no_new_privileges: a.no_new_privileges,
        rlimits: a.rlimits.clone(),
        additional_gids: a.additional_gids.clone(),
    };
    let mut child = h.exec(&a.argv, &opts).map_err(|e| e.to_string())?;
    if a.tty {
        let master = child
            .take_terminal()
            .map_err(|e| e.to_string())?
            .ok_or("no terminal was made")?;
        match &a.console_socket {
            Some(sock) => console::send(sock, master.as_raw_fd())?,
            None => return Err("exec -t without --console-socket is not supported".into()),
        }
    }
    if let Some(f) = &a.pid_file {
        dunnage_base::fs::write_replace(f, child.id().to_string().as_bytes(), 0o644)
            .map_err(|e| format!("write pid file {}: {e}", f.display()))?;
    }
    if a.detach {
        // The process is left to the caller (a subreaper) once we exit.
        std::mem::forget(child);
        return Ok(0);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255))
}
