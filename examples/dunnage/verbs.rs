//! The container verbs after `run`/`create`: `start ps exec logs stop
//! kill rm pause unpause stats top wait update commit export`, with
//! docker's flags, columns and exit codes. Each one works on a container
//! found in the store by name, ID or ID prefix, from any process.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use dunnage::container::spec::signal_number;
use dunnage::container::{ContainerStore, Error, ExecOptions, StdioMode};

use crate::flags::{self, Flag, Parsed, f, invalid, parse};
use crate::format;
use crate::messages;

/// A failed verb: what to print and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
}

impl From<Error> for Fail {
    /// A daemon-side error without a container name to word it by
    /// ([`messages::verb_error`] words those).
    fn from(e: Error) -> Fail {
        Fail {
            code: 1,
            msg: format!("Error response from daemon: {e}"),
        }
    }
}

impl From<flags::Usage> for Fail {
    fn from(u: flags::Usage) -> Fail {
        Fail {
            code: 125,
            msg: u.0,
        }
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail {
            code: 1,
            msg: format!("Error: {e}"),
        }
    }
}

type Out = Result<u8, Fail>;

/// At least `n` arguments (exactly one for `attach` and `export`, one or
/// two for `commit` and `port`), in docker's words otherwise.
fn need(p: &Parsed, n: usize, verb: &str) -> Result<(), Fail> {
    let got = p.rest.len();
    let words = match verb {
        "attach" | "export" if got != 1 => "exactly 1 argument".to_string(),
        "commit" | "port" if got == 0 || got > 2 => {
            "at least 1 and at most 2 arguments".to_string()
        }
        _ if got < n => format!("at least {n} argument{}", if n == 1 { "" } else { "s" }),
        _ => return Ok(()),
    };
    Err(messages::arg_count(
        verb,
        &format!("\"dunnage {verb}\" requires {words}"),
    ))
}

/// The container `key` for `verb`, or docker's words for its absence.
pub fn lookup(
    store: &ContainerStore,
    verb: &str,
    key: &str,
) -> Result<dunnage::container::ContainerHandle, Fail> {
    store
        .get(key)
        .map_err(|e| messages::verb_error(verb, key, e))
}

/// Exit status 0, or 1 with the `errors` printed one per line.
fn finish(errors: Vec<String>) -> Out {
    if errors.is_empty() {
        return Ok(0);
    }
    Err(Fail {
        code: 1,
        msg: errors.join("\n"),
    })
}

/// Do `act` on every container named in `p.rest`, as docker's verbs on
/// several containers do: each one done is echoed as given, each failure
/// is worded as docker words it and printed after the others; exit
/// status 1 when any failed.
fn each(
    store: &ContainerStore,
    p: &Parsed,
    verb: &str,
    mut act: impl FnMut(dunnage::container::ContainerHandle) -> Result<(), Error>,
) -> Out {
    need(p, 1, verb)?;
    let mut errors = Vec::new();
    for key in &p.rest {
        match store.get(key).and_then(&mut act) {
            Ok(()) => println!("{key}"),
            Err(e) => errors.push(messages::verb_error(verb, key, e).msg),
        }
    }
    finish(errors)
}

/// The container verbs [`dispatch`] runs.
pub const VERBS: [&str; 22] = [
    "run",
    "create",
    "start",
    "restart",
    "attach",
    "ps",
    "exec",
    "logs",
    "stop",
    "kill",
    "rm",
    "pause",
    "unpause",
    "wait",
    "stats",
    "top",
    "update",
    "commit",
    "export",
    "container",
    "network",
    "port",
];

/// Run container verb `verb`; `None` when it is not one.
pub fn dispatch(store: &ContainerStore, verb: &str, args: &[String]) -> Option<Out> {
    let p = |table: &[Flag], stop| {
        parse(args, table, stop).map_err(|u| messages::flag_error(verb, &u.0))
    };
    Some(match verb {
        "run" => p(crate::run::RUN_FLAGS, true).and_then(|p| crate::run::run(store, &p)),
        "create" => p(crate::run::RUN_FLAGS, true).and_then(|p| crate::run::create(store, &p)),
        "start" => p(
            &[f('a', "attach", false), f('i', "interactive", false)],
            false,
        )
        .and_then(|p| start(store, &p)),
        "attach" => p(&[f('\0', "no-stdin", false)], false).and_then(|p| attach(store, &p)),
        "ps" => p(
            &[
                f('a', "all", false),
                f('q', "quiet", false),
                f('\0', "no-trunc", false),
                f('n', "last", true),
                f('l', "latest", false),
                f('f', "filter", true),
                f('\0', "format", true),
            ],
            false,
        )
        .and_then(|p| crate::ps::ps(store, &p)),
        "exec" => p(
            &[
                f('d', "detach", false),
                f('i', "interactive", false),
                f('t', "tty", false),
                f('u', "user", true),
                f('w', "workdir", true),
                f('e', "env", true),
            ],
            true,
        )
        .and_then(|p| exec(store, &p)),
        "logs" => p(
            &[
                f('f', "follow", false),
                f('n', "tail", true),
                f('t', "timestamps", false),
            ],
            false,
        )
        .and_then(|p| crate::logs::logs(store, &p)),
        "stop" => p(&[f('t', "time", true)], false).and_then(|p| stop(store, &p)),
        "restart" => p(&[f('t', "time", true)], false).and_then(|p| restart(store, &p)),
        "kill" => p(&[f('s', "signal", true)], false).and_then(|p| kill(store, &p)),
        // -v removes anonymous volumes in docker; this CLI makes none.
        "rm" => p(&[f('f', "force", false), f('v', "volumes", false)], false)
            .and_then(|p| rm(store, &p)),
        "pause" | "unpause" => p(&[], false).and_then(|p| pause(store, &p, verb == "pause")),
        "wait" => p(&[], false).and_then(|p| wait(store, &p)),
        "stats" => p(&[f('\0', "no-stream", false)], false).and_then(|p| stats(store, &p)),
        "top" => p(&[], true).and_then(|p| top(store, &p)),
        "update" => p(&UPDATE_FLAGS, false).and_then(|p| update(store, &p)),
        "commit" => p(&[f('c', "change", true), f('m', "message", true)], false)
            .and_then(|p| commit(store, &p)),
        "export" => p(&[f('o', "output", true)], false).and_then(|p| export(store, &p)),
        "network" => crate::network::network(store, args),
        "port" => crate::network::port(store, args),
        "container" => {
            let (sub, rest) = args.split_first()?;
            return dispatch(store, sub, rest);
        }
        _ => return None,
    })
}

fn start(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "start")?;
    if p.on("attach") || p.on("interactive") {
        // Through its monitor, attached before the start: all the output,
        // and stdin with -i.
        let key = &p.rest[0];
        let attached = store.get(key).and_then(|mut h| {
            again(&mut h)?;
            let attach = h.attach_stdio()?;
            h.start()?;
            Ok(attach)
        });
        return relay(
            attached.map_err(|e| messages::verb_error("start", key, e))?,
            p.on("interactive"),
        );
    }
    let (mut errors, mut failed) = (Vec::new(), Vec::new());
    for key in &p.rest {
        // Like docker, starting a running container succeeds.
        let started = store.get(key).and_then(|mut h| {
            if h.status()? == dunnage::container::Status::Running {
                return Ok(());
            }
            again(&mut h)?;
            h.start()
        });
        match started {
            Ok(()) => println!("{key}"),
            Err(e) => {
                errors.push(messages::verb_error("start", key, e).msg);
                failed.push(key.as_str());
            }
        }
    }
    if !failed.is_empty() {
        errors.push(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        ));
    }
    finish(errors)
}

/// An exited container is made again before it starts, as docker's
/// `start` runs one again (same configuration and read-write layer).
fn again(h: &mut dunnage::container::ContainerHandle) -> Result<(), Error> {
    if h.status()? == dunnage::container::Status::Exited {
        h.recreate(None)?;
    }
    Ok(())
}

/// `dunnage restart [-t N]`: stop (the stop signal, SIGKILL after N
/// seconds, default 10), then start again.
fn restart(store: &ContainerStore, p: &Parsed) -> Out {
    let secs = seconds(p, "restart")?;
    each(store, p, "restart", |mut h| {
        h.stop(Duration::from_secs(secs))?;
        again(&mut h)?;
        h.start()
    })
}

/// `dunnage attach`: a running detached container's stdio.
fn attach(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "attach")?;
    let h = lookup(store, "attach", &p.rest[0])?;
    relay(h.attach_stdio()?, !p.on("no-stdin"))
}

/// Relay a detached container's output (and this process's stdin when
/// `input`) until it exits; its exit code, as docker's.
pub fn relay(attach: dunnage::container::Attach, input: bool) -> Out {
    if input {
        let mut to = attach.input()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
    let code = attach.relay(&mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
    Ok(code.clamp(0, 255) as u8)
}

fn exec(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 2, "exec")?;
    let h = lookup(store, "exec", &p.rest[0])?;
    let mut env = Vec::new();
    for e in p.all("env") {
        if let Some(kv) = flags::env(e).map_err(|w| invalid(e, "-e, --env", w))? {
            env.push(kv);
        }
    }
    let detach = p.on("detach");
    let io = if detach {
        StdioMode::Null
    } else {
        StdioMode::Inherit
    };
    let opts = ExecOptions {
        env,
        user: p.get("user").map(str::to_string),
        working_dir: p.get("workdir").map(str::to_string),
        tty: p.on("tty"),
        stdin: if p.on("interactive") && !detach {
            StdioMode::Inherit
        } else {
            StdioMode::Null
        },
        stdout: io,
        stderr: io,
        ..ExecOptions::default()
    };
    let mut child = match h.exec(&p.rest[1..], &opts) {
        Ok(c) => c,
        // docker's exec reports a process it could not start on the
        // output stream, with 126 (a missing program too).
        Err(e @ (Error::CommandNotFound(_) | Error::NotExecutable { .. })) => {
            // (docker's line ends with \r\n, as its stream writer leaves it.)
            print!(
                "OCI runtime exec failed: exec failed: unable to start container process: {}: unknown\r\n",
                messages::exec_words(&e)
            );
            return Ok(126);
        }
        Err(e @ (Error::UnknownUser(_) | Error::UnknownGroup(_))) => {
            print!("{e}\r\n");
            return Ok(126);
        }
        Err(e) => return Err(messages::verb_error("exec", &p.rest[0], e)),
    };
    if detach {
        return Ok(0);
    }
    if let Ok(Some(term)) = child.take_terminal() {
        crate::run::relay_terminal(term, p.on("interactive"));
    }
    let status = child.wait().map_err(Error::from)?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .map_or(255, |c| c.clamp(0, 255) as u8))
}

/// The `-t, --time` of `stop` and `restart`: seconds, default 10.
fn seconds(p: &Parsed, verb: &str) -> Result<u64, Fail> {
    Ok(match p.get("time") {
        None => 10,
        Some(t) => t.parse::<u64>().map_err(|_| {
            let u = invalid(
                t,
                "-t, --time",
                format!("strconv.ParseInt: parsing \"{t}\": invalid syntax"),
            );
            messages::flag_error(verb, &u.0)
        })?,
    })
}

fn stop(store: &ContainerStore, p: &Parsed) -> Out {
    let secs = seconds(p, "stop")?;
    // Like docker, stopping a container that is not running succeeds.
    each(store, p, "stop", |mut h| {
        h.stop(Duration::from_secs(secs)).map(drop)
    })
}

fn kill(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "kill")?;
    let name = p.get("signal").unwrap_or("KILL");
    let sig = signal_number(name).map_err(|_| Fail {
        code: 1,
        msg: format!("Error response from daemon: Invalid signal: {name}"),
    })?;
    each(store, p, "kill", |mut h| {
        // docker refuses to signal a container that was never started.
        if h.status()? == dunnage::container::Status::Created {
            return Err(Error::NotRunning(h.id().to_string()));
        }
        h.kill(sig)
    })
}

fn rm(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "rm")?;
    let force = p.on("force");
    let mut errors = Vec::new();
    let mut failed = false;
    for key in &p.rest {
        match store.get(key).and_then(|h| h.remove(force)) {
            Ok(()) => println!("{key}"),
            Err(e) => {
                // docker: with -f a missing container is said, not failed.
                failed |= !(force && matches!(e, Error::UnknownContainer(_)));
                errors.push(messages::verb_error("rm", key, e).msg);
            }
        }
    }
    if !failed {
        for e in &errors {
            eprintln!("{e}");
        }
        return Ok(0);
    }
    finish(errors)
}

fn pause(store: &ContainerStore, p: &Parsed, on: bool) -> Out {
    each(store, p, if on { "pause" } else { "unpause" }, |mut h| {
        if on { h.pause() } else { h.resume() }
    })
}

fn wait(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "wait")?;
    let mut errors = Vec::new();
    for key in &p.rest {
        match store.get(key).and_then(|mut h| h.wait()) {
            Ok(exit) => println!("{}", exit.code.unwrap_or(255)),
            Err(e) => errors.push(messages::verb_error("wait", key, e).msg),
        }
    }
    finish(errors)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn stats(store: &ContainerStore, p: &Parsed) -> Out {
    if !p.on("no-stream") {
        return Err(flags::Usage("only `stats --no-stream` is supported".into()).into());
    }
    let handles: Vec<_> = if p.rest.is_empty() {
        store
            .list()?
            .into_iter()
            .filter(|c| {
                // docker lists the paused ones too.
                matches!(
                    c.status,
                    dunnage::container::Status::Running | dunnage::container::Status::Paused
                )
            })
            .map(|c| store.get(&c.spec.id))
            .collect::<Result<_, _>>()?
    } else {
        p.rest
            .iter()
            .map(|k| store.get(k))
            .collect::<Result<_, _>>()?
    };
    // CPU % over a short interval, as docker computes it between two
    // samples (100% is one CPU).
    let cpu = |s: &dunnage::cgroups::Stats| s.cpu.as_ref().map_or(0, |c| c.usage.as_nanos());
    // A container that is not running shows zeros, as docker's.
    let live = |h: &dunnage::container::ContainerHandle| {
        matches!(
            h.status(),
            Ok(dunnage::container::Status::Running | dunnage::container::Status::Paused)
        )
    };
    let first: Vec<u128> = handles
        .iter()
        .map(|h| {
            if live(h) {
                h.stats().map(|s| cpu(&s))
            } else {
                Ok(0)
            }
        })
        .collect::<Result<_, _>>()?;
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let mut rows = Vec::new();
    for (h, before) in handles.iter().zip(first) {
        if !live(h) {
            rows.push(format::stats_cells(&format::StatsRow {
                id: h.spec().short_id(),
                name: h.name(),
                cpu_percent: 0.0,
                mem_usage: 0,
                mem_limit: 0,
                io_read: 0,
                io_write: 0,
                pids: 0,
            }));
            continue;
        }
        let s = h.stats()?;
        let elapsed = t0.elapsed().as_nanos().max(1);
        let mem = s.memory.as_ref();
        let inactive = mem
            .and_then(|m| m.stat.iter().find(|(k, _)| k == "inactive_file"))
            .map_or(0, |(_, v)| *v);
        let usage = mem.map_or(0, |m| m.usage.saturating_sub(inactive));
        let limit = match mem.map(|m| &m.limit) {
            Some(dunnage::cgroups::Limit::Value(v)) => *v,
            _ => host_memory(),
        };
        let io = s.io.as_deref().unwrap_or_default();
        let row = format::StatsRow {
            id: h.spec().short_id(),
            name: h.name(),
            cpu_percent: (cpu(&s).saturating_sub(before)) as f64 * 100.0 / elapsed as f64,
            mem_usage: usage,
            mem_limit: limit,
            io_read: io.iter().map(|d| d.read_bytes).sum(),
            io_write: io.iter().map(|d| d.write_bytes).sum(),
            pids: s.pids.as_ref().map_or(0, |p| p.current),
        };
        rows.push(format::stats_cells(&row));
    }
    print!("{}", format::table(&format::STATS_HEADER, &rows));
    Ok(0)
}

/// `docker top`: the host's `ps -ef` (or the given ps options), the rows
/// of the container's processes.
fn top(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "top")?;
    let h = lookup(store, "top", &p.rest[0])?;
    let pids: Vec<String> = h
        .top()
        .map_err(|e| messages::verb_error("top", &p.rest[0], e))?
        .iter()
        .map(|p| p.pid.to_string())
        .collect();
    let ps_args: Vec<&str> = if p.rest.len() > 1 {
        p.rest[1..].iter().map(String::as_str).collect()
    } else {
        vec!["-ef"]
    };
    let out = std::process::Command::new("ps").args(&ps_args).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| Fail {
            code: 1,
            msg: "Error response from daemon: Couldn't find PID field in ps output".into(),
        })?;
    let header_cells: Vec<&str> = header.split_whitespace().collect();
    let n = header_cells.len();
    let mut rows = Vec::new();
    for l in lines {
        let cells: Vec<&str> = l.split_whitespace().collect();
        if cells.get(col).is_some_and(|c| pids.iter().any(|p| p == c)) {
            // The last column (the command) keeps its spaces.
            let mut row: Vec<String> = cells.iter().take(n - 1).map(|s| s.to_string()).collect();
            row.push(cells.get(n - 1..).map(|c| c.join(" ")).unwrap_or_default());
            rows.push(row);
        }
    }
    print!("{}", format::table_min(&header_cells, &rows, 20));
    Ok(0)
}

const UPDATE_FLAGS: [Flag; 6] = [
    f('m', "memory", true),
    f('\0', "memory-swap", true),
    f('\0', "cpus", true),
    f('c', "cpu-shares", true),
    f('\0', "cpuset-cpus", true),
    f('\0', "pids-limit", true),
];

fn update(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "update")?;
    if p.flags.is_empty() {
        return Err(Fail {
            code: 1,
            msg: "you must provide one or more flags when using this command".into(),
        });
    }
    for key in &p.rest {
        let mut h = lookup(store, "update", key)?;
        let mut r = h.spec().resources.clone();
        if let Some(m) = p.get("memory") {
            r.memory = Some(flags::ram_in_bytes(m).map_err(|w| invalid(m, "-m, --memory", w))?);
        }
        if let Some(s) = p.get("memory-swap") {
            r.memory_swap =
                Some(flags::memory_swap(s).map_err(|w| invalid(s, "--memory-swap", w))?);
        }
        if let Some(s) = p.get("cpus") {
            let n = flags::cpus(s).map_err(|w| invalid(s, "--cpus", w))?;
            r.cpu_quota = Some((n * 100_000.0).round() as u64);
            r.cpu_period = Some(100_000);
        }
        if let Some(s) = p.get("cpu-shares") {
            r.cpu_shares = Some(
                s.parse()
                    .map_err(|_| invalid(s, "-c, --cpu-shares", "invalid syntax"))?,
            );
        }
        if let Some(s) = p.get("cpuset-cpus") {
            r.cpuset_cpus = Some(s.to_string());
        }
        if let Some(s) = p.get("pids-limit") {
            r.pids_limit = Some(
                s.parse()
                    .map_err(|_| invalid(s, "--pids-limit", "invalid syntax"))?,
            );
        }
        h.update(r)?;
        println!("{key}");
    }
    Ok(0)
}

fn commit(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "commit")?;
    let h = lookup(store, "commit", &p.rest[0])?;
    let mut changes = dunnage::image::ImageChanges {
        comment: p.get("message").map(str::to_string),
        ..Default::default()
    };
    if let Some(r) = p.rest.get(1) {
        changes.reference = Some(dunnage::image::Reference::parse(r).map_err(|e| Fail {
            code: 1,
            msg: e.to_string(),
        })?);
    }
    for c in p.all("change") {
        changes.add_instruction(c).map_err(|e| Fail {
            code: 1,
            msg: e.to_string(),
        })?;
    }
    println!("{}", h.commit(&changes)?);
    Ok(0)
}

fn export(store: &ContainerStore, p: &Parsed) -> Out {
    need(p, 1, "export")?;
    let h = lookup(store, "export", &p.rest[0])?;
    match p.get("output") {
        Some(file) => {
            let f = std::fs::File::create(file)?;
            h.export(std::io::BufWriter::new(f))?.flush()?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(Fail {
                    code: 1,
                    msg: "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        .into(),
                });
            }
            h.export(std::io::stdout().lock())?.flush()?;
        }
    }
    Ok(0)
}
