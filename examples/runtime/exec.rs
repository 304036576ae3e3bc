//! `exec`: a new process in a running container, from `--process P.json`
//! (what the engines send) or from the command line (`-e -u --cwd -t`).

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use dunnage::container::{ExecOptions, Status, StdioMode};
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
    }
    a.tty = p.get("terminal").and_then(Value::as_bool).unwrap_or(false);
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
    let opts = ExecOptions {
        env: a.env.clone(),
        user: a.user.clone(),
        working_dir: a.cwd.clone(),
        tty: a.tty,
        stdin: StdioMode::Inherit,
        stdout: StdioMode::Inherit,
        stderr: StdioMode::Inherit,
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
