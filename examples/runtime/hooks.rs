//! OCI hooks: each runs with the container's state JSON on stdin, its own
//! `args` (with `args[0]` as argv[0]) and `env`, killed after `timeout`
//! seconds.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Whether `hooks` (the config's `hooks` object) has a hook of any of
/// `kinds`: without one, the state JSON they would get need not be read.
pub fn any(hooks: &Value, kinds: &[&str]) -> bool {
    kinds.iter().any(|k| {
        hooks
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    })
}

/// Run every hook of `kind` in `hooks` (the config's `hooks` object) in
/// order; the first failure is the error, naming the hook.
pub fn run(hooks: &Value, kind: &str, state: &Value) -> Result<(), String> {
    let Some(list) = hooks.get(kind).and_then(Value::as_array) else {
        return Ok(());
    };
    let input = state.to_string();
    for (i, h) in list.iter().enumerate() {
        run_one(h, i, kind, &input)?;
    }
    Ok(())
}

/// Run every hook of `kind`, a failure being a warning only (poststart and
/// poststop: the runtime-spec says the lifecycle and the remaining hooks
/// go on).
pub fn run_warn(hooks: &Value, kind: &str, state: &Value) {
    let Some(list) = hooks.get(kind).and_then(Value::as_array) else {
        return;
    };
    let input = state.to_string();
    for (i, h) in list.iter().enumerate() {
        if let Err(e) = run_one(h, i, kind, &input) {
            crate::warn(&e);
        }
    }
}

fn run_one(h: &Value, i: usize, kind: &str, input: &str) -> Result<(), String> {
    {
        let path = h
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("hooks.{kind}[{i}].path: missing"))?;
        let strs = |key: &str| -> Vec<String> {
            h.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let args = strs("args");
        let mut cmd = Command::new(path);
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
        cmd.env_clear();
        for e in strs("env") {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{kind} hook {path}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its stdin is not an error.
            let _ = stdin.write_all(input.as_bytes());
        }
        let timeout = h.get("timeout").and_then(Value::as_u64);
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(format!("{kind} hook {path}: wait: {e}")),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{kind} hook {path}: timed out after {}s",
                    timeout.unwrap_or(0)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            return Err(format!("{kind} hook {path}: {status}"));
        }
    }
    Ok(())
}
