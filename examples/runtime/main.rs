//! `runtime`: a runc-compatible OCI runtime on the dunnage facade, for
//! dockerd (`--add-runtime`), podman (`--runtime`) and containerd.
//!
//! The library does the work: a bundle's config.json becomes a
//! [`dunnage::Container`] (`dunnage::oci::convert_bytes`), made in the
//! store at `--root` under the runc ID as its name. What is here is
//! runc's command line, the hooks, the console socket and the gate
//! keeper (the process that holds a created container's start gate after
//! `create` returns; see `keeper.rs`).
//!
//! Verbs done: create, start, run, state, list, kill, delete, ps, pause,
//! resume, exec, update, events, spec, features. Not: checkpoint, restore (refused with a
//! clear error).

mod args;
mod console;
mod exec;
mod hooks;
mod keeper;
mod lifecycle;
mod update;

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use args::{Flag, parse, sw, val};

/// Where errors and warnings go besides stderr.
struct Log {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

static LOG: OnceLock<Log> = OnceLock::new();

fn log_line(level: &str, msg: &str) {
    let Some(log) = LOG.get() else { return };
    let Some(path) = &log.file else { return };
    let time = dunnage::container::state::now();
    let line = if log.json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// A warning: to the log, and to stderr with `--debug` (stderr may be
/// the container's own, as with `run`).
pub fn warn(msg: &str) {
    if LOG.get().is_some_and(|l| l.debug) {
        eprintln!("WARN: {msg}");
    }
    log_line("warning", msg);
}

const GLOBAL: &[Flag] = &[
    val("root", None),
    val("log", None),
    val("log-format", None),
    val("criu", None),
    sw("debug", None),
    sw("systemd-cgroup", None),
    sw("rootless", None),
    sw("help", Some('h')),
    sw("version", Some('v')),
];

const HELP: &str = "runtime: a runc-compatible OCI runtime on the dunnage library

USAGE: runtime [global options] COMMAND [options] [arguments]

COMMANDS: create, start, run, state, list, kill, delete, ps, pause,
resume, exec, update, events, spec, features

GLOBAL OPTIONS:
   --root DIR            state directory (default /run/dunnage-runtime)
   --log FILE            also write errors and warnings to FILE
   --log-format text|json
   --debug               accepted
   --systemd-cgroup      not supported on this host (no systemd)
   --version, -v         print the version
   --help, -h            show this help
";

fn version() -> String {
    format!(
        "runtime version {}\ncommit: dunnage\nspec: 1.0.2-dev\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn main() {
    keeper::run_if_keeper();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match real_main(&argv) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            log_line("error", &msg);
            1
        }
    };
    std::process::exit(code);
}

fn one_id(rest: &[String], verb: &str) -> Result<String, String> {
    match rest {
        [id] => Ok(id.clone()),
        [] => Err(format!("{verb}: missing container id")),
        _ => Err(format!("{verb}: expected one argument, the container id")),
    }
}

fn real_main(argv: &[String]) -> Result<i32, String> {
    let g = parse(argv, GLOBAL, true)?;
    let log_format = g.get("log-format").unwrap_or("text");
    if !matches!(log_format, "text" | "json") {
        return Err(format!("invalid log-format: {log_format}"));
    }
    let _ = LOG.set(Log {
        file: g.get("log").map(PathBuf::from),
        json: log_format == "json",
        debug: g.on("debug"),
    });
    if g.on("version") {
        print!("{}", version());
        return Ok(0);
    }
    let Some((verb, rest)) = g.rest.split_first() else {
        print!("{HELP}");
        return Ok(if g.on("help") { 0 } else { 1 });
    };
    if g.on("help") || verb == "help" {
        print!("{HELP}");
        return Ok(0);
    }
    if g.on("systemd-cgroup") {
        return Err(
            "--systemd-cgroup is not supported: this runtime drives cgroupfs only, and this host has no systemd"
                .into(),
        );
    }
    let root = PathBuf::from(g.get("root").unwrap_or("/run/dunnage-runtime"));
    let ctx = || lifecycle::Ctx::open(&root);
    let create_flags: &[Flag] = &[
        val("bundle", Some('b')),
        val("pid-file", None),
        val("console-socket", None),
        val("preserve-fds", None),
        sw("no-pivot", None),
        sw("no-new-keyring", None),
        sw("detach", Some('d')),
        sw("keep", None),
        sw("no-subreaper", None),
    ];
    match verb.as_str() {
        "create" | "run" => {
            let p = parse(rest, create_flags, false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::check_id(&id)?;
            if p.get("preserve-fds").is_some_and(|n| n != "0") {
                return Err("--preserve-fds is not supported yet".into());
            }
            let o = lifecycle::CreateOpts {
                id: &id,
                bundle: PathBuf::from(p.get("bundle").unwrap_or(".")),
                pid_file: p.get("pid-file").map(PathBuf::from),
                console_socket: p.get("console-socket").map(PathBuf::from),
            };
            if verb == "create" {
                lifecycle::create(&ctx()?, &o)
            } else {
                lifecycle::run(&ctx()?, &o, p.on("detach"))
            }
        }
        "start" | "state" | "pause" | "resume" => {
            let p = parse(rest, &[], false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::check_id(&id)?;
            let c = ctx()?;
            match verb.as_str() {
                "start" => lifecycle::start(&c, &id),
                "state" => lifecycle::state(&c, &id),
                "pause" => lifecycle::pause(&c, &id, true),
                _ => lifecycle::pause(&c, &id, false),
            }
        }
        "list" => {
            let p = parse(
                rest,
                &[val("format", Some('f')), sw("quiet", Some('q'))],
                false,
            )?;
            lifecycle::list(&ctx()?, p.get("format").unwrap_or("table"))
        }
        "ps" => {
            let p = parse(rest, &[val("format", Some('f'))], false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::ps(&ctx()?, &id, p.get("format").unwrap_or("table"))
        }
        "kill" => {
            let p = parse(rest, &[sw("all", Some('a'))], false)?;
            let (id, sig) = match p.rest.as_slice() {
                [id] => (id, "SIGTERM"),
                [id, sig] => (id, sig.as_str()),
                _ => return Err("kill: usage: kill [--all] ID [SIGNAL]".into()),
            };
            lifecycle::kill(&ctx()?, id, sig, p.on("all"))
        }
        "delete" => {
            let p = parse(rest, &[sw("force", Some('f'))], false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::check_id(&id)?;
            // No root, no container: nothing made to say so (podman as root
            // deletes with the default root after using another).
            if !root.exists() {
                return if p.on("force") {
                    Ok(0)
                } else {
                    Err(format!("container does not exist: {id}"))
                };
            }
            lifecycle::delete(&ctx()?, &id, p.on("force"))
        }
        "spec" => {
            let p = parse(
                rest,
                &[val("bundle", Some('b')), sw("rootless", None)],
                false,
            )?;
            if p.on("rootless") {
                return Err("spec --rootless: rootless containers are not supported".into());
            }
            let dir = PathBuf::from(p.get("bundle").unwrap_or("."));
            let path = dir.join("config.json");
            if path.exists() {
                return Err(format!("File {} exists. Remove it first", path.display()));
            }
            let mut b = dunnage::oci::bundle::BundleSpec::new(["sh"]);
            b.terminal = true;
            let json =
                dunnage::oci::bundle::config_json(&dunnage::profile::Profile::docker(), &b, &[]);
            let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(0)
        }
        "features" => {
            let text = serde_json::to_string_pretty(&dunnage::oci::features::features())
                .map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(0)
        }
        "exec" => {
            let flags = [
                val("process", Some('p')),
                sw("detach", Some('d')),
                val("pid-file", None),
                val("console-socket", None),
                val("preserve-fds", None),
                sw("tty", Some('t')),
                args::rep("env", Some('e')),
                val("user", Some('u')),
                val("cwd", None),
                args::rep("cap", Some('c')),
                sw("no-new-privs", None),
                args::rep("additional-gids", Some('g')),
                val("process-label", None),
                val("apparmor", None),
            ];
            let p = parse(rest, &flags, true)?;
            let Some((id, argv)) = p.rest.split_first() else {
                return Err("exec: missing container id".into());
            };
            lifecycle::check_id(id)?;
            if p.get("preserve-fds").is_some_and(|n| n != "0") {
                return Err("exec --preserve-fds is not supported yet".into());
            }
            for f in ["process-label", "apparmor"] {
                if p.flags.contains_key(f) {
                    return Err(format!(
                        "exec --{f} is not supported on this host (no SELinux or AppArmor)"
                    ));
                }
            }
            let a = exec::ExecArgs {
                id: id.clone(),
                process: p.get("process").map(PathBuf::from),
                argv: argv.to_vec(),
                env: p.all("env").to_vec(),
                user: p.get("user").map(str::to_string),
                cwd: p.get("cwd").map(str::to_string),
                tty: p.on("tty"),
                detach: p.on("detach"),
                pid_file: p.get("pid-file").map(PathBuf::from),
                console_socket: p.get("console-socket").map(PathBuf::from),
                caps: p.all("cap").to_vec(),
                capabilities: None,
                no_new_privileges: p.on("no-new-privs").then_some(true),
                rlimits: None,
                additional_gids: if p.all("additional-gids").is_empty() {
                    None
                } else {
                    Some(
                        p.all("additional-gids")
                            .iter()
                            .map(|g| {
                                g.parse::<u32>().map_err(|_| {
                                    format!("exec --additional-gids: {g:?} is not a gid")
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    )
                },
            };
            exec::exec(&ctx()?, a)
        }
        "update" => {
            let mut flags = vec![
                val("resources", Some('r')),
                val("kernel-memory", None),
                val("l3-cache-schema", None),
                val("mem-bw-schema", None),
            ];
            flags.extend(update::FLAGS.iter().map(|f| val(f, None)));
            let p = parse(rest, &flags, false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::check_id(&id)?;
            for f in ["kernel-memory", "l3-cache-schema", "mem-bw-schema"] {
                if p.flags.contains_key(f) {
                    return Err(format!("update --{f} is not supported"));
                }
            }
            update::update(&ctx()?, &id, &p)
        }
        "events" => {
            let p = parse(rest, &[sw("stats", None), val("interval", None)], false)?;
            let id = one_id(&p.rest, verb)?;
            lifecycle::check_id(&id)?;
            update::events(&ctx()?, &id, &p)
        }
        "checkpoint" | "restore" => Err(format!("{verb} is not supported by this runtime yet")),
        other => Err(format!("No help topic for '{other}'")),
    }
}
