//! cgroup-tools, rebuilt on `dunnage-cgroups`: one binary whose
//! subcommands take the same arguments and print what cgroup-tools prints.
//!
//! ```text
//! cgtools lssubsys [-a] [-m] [-i]
//! cgtools lscgroup [controllers:path ...]
//! cgtools cgcreate -g controllers:path ...
//! cgtools cgdelete [-r] [-g] controllers:path ...
//! cgtools cgset -r name=value ... path ...
//! cgtools cgget [-n] [-v] -r name ... path ...
//! cgtools cgexec -g controllers:path command [args...]
//! cgtools cgclassify -g controllers:path pid ...
//! ```
//!
//! `controllers` is a comma-separated list (`cpu,memory`) or `*` for all.
//! For tests, `lssubsys` reads the files named by `CGTOOLS_MOUNTINFO` and
//! `CGTOOLS_PROC_CGROUPS` instead of /proc/self/mountinfo and /proc/cgroups.
//! Unlike cgroup-tools 2.0.2, `lssubsys -am` reads a hybrid host right:
//! every subsystem with the mount point of its hierarchy, the ones on the
//! v2 side with the v2 mount point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_cgroups::proc::{
    SubsystemInfo, parse_mountinfo, parse_proc_cgroups, read_proc_cgroups,
};
use dunnage_cgroups::{Cgroup, CgroupPath, Controller, Error, Hierarchies, Hierarchy, Version};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

/// cgroup-tools' exit status for a failed read or write (ECGOTHER).
const ECGOTHER: u8 = 96;
/// cgroup-tools' exit status for a missing group or parameter.
const ECGROUPVALUENOTEXIST: u8 = 95;

fn main() -> ExitCode {
    // Arguments are read as bytes (`args_os`): cgexec's command and its
    // arguments are passed on untouched; cgroup paths, controllers and
    // values are text, and one that is not UTF-8 is a usage error.
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // Called through a symlink named after a tool, or as `cgtools <tool>`.
    let argv0 = if args.is_empty() {
        OsString::new()
    } else {
        args.remove(0)
    };
    let base = Path::new(&argv0)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tool = if base == "cgtools" || base.starts_with("cgtools-") {
        if args.is_empty() {
            eprintln!(
                "usage: cgtools <lssubsys|lscgroup|cgcreate|cgdelete|cgset|cgget|cgexec|cgclassify> args..."
            );
            return ExitCode::from(2);
        }
        args.remove(0).to_string_lossy().into_owned()
    } else {
        base
    };
    let result = if tool == "cgexec" {
        cgexec(&args)
    } else {
        texts(&args).and_then(|args| match tool.as_str() {
            "lssubsys" => lssubsys(&args),
            "lscgroup" => lscgroup(&args),
            "cgcreate" => cgcreate(&args),
            "cgdelete" => cgdelete(&args),
            "cgset" => cgset(&args),
            "cgget" => cgget(&args),
            "cgclassify" => cgclassify(&args),
            other => Err(Failure::usage(format!("unknown tool {other}"))),
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Arguments that must be text (cgroup paths, controllers, values, pids).
fn texts(args: &[OsString]) -> Result<Vec<String>> {
    args.iter()
        .map(|a| {
            a.to_str()
                .map(str::to_owned)
                .ok_or_else(|| Failure::usage(format!("{}: not valid UTF-8", a.to_string_lossy())))
        })
        .collect()
}

/// An error message and the exit status cgroup-tools would give.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn usage(message: String) -> Failure {
        Failure { message, code: 2 }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            message: e.to_string(),
            code: ECGOTHER,
        }
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// A `controllers:path` argument: the controllers (empty for `*`) and the path.
type Group = (Vec<Controller>, CgroupPath);

/// A path argument as given, and validated.
type PathArg = (String, CgroupPath);

/// `controllers:path` -> the controllers (empty for `*`) and the path.
fn group(spec: &str) -> Result<Group> {
    let (list, path) = spec
        .split_once(':')
        .ok_or_else(|| Failure::usage(format!("{spec}: expected controllers:path")))?;
    let mut controllers = Vec::new();
    if list != "*" {
        for name in list.split(',') {
            controllers.push(
                Controller::from_name(name)
                    .ok_or_else(|| Failure::usage(format!("unknown controller {name}")))?,
            );
        }
    }
    Ok((controllers, CgroupPath::new(path)?))
}

/// The `-g` groups and the remaining arguments; `-g` may also be left out
/// before a `controllers:path` when `bare` is set (cgdelete).
fn groups(args: &[String], flags: &mut Vec<char>, bare: bool) -> Result<(Vec<Group>, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-g" {
            let spec = it
                .next()
                .ok_or_else(|| Failure::usage("-g needs controllers:path".into()))?;
            out.push(group(spec)?);
        } else if let Some(spec) = a.strip_prefix("-g") {
            out.push(group(spec)?);
        } else if a.starts_with('-') && a.len() > 1 && rest.is_empty() {
            flags.extend(a[1..].chars());
        } else if bare && rest.is_empty() && a.contains(':') {
            out.push(group(a)?);
        } else {
            // The command (cgexec) or the pids (cgclassify) start here.
            rest.push(a.clone());
            rest.extend(it.by_ref().cloned());
        }
    }
    if out.is_empty() {
        return Err(Failure::usage("no -g controllers:path given".into()));
    }
    Ok((out, rest))
}

/// The hierarchies listed by the tools: every one with controllers (the
/// v2 one always), not the named ones.
fn hierarchies(h: &Hierarchies) -> impl Iterator<Item = &Hierarchy> {
    h.list()
        .iter()
        .filter(|x| x.version == Version::V2 || !x.subsystems.is_empty())
}

fn lssubsys(args: &[String]) -> Result<()> {
    let mut all = false;
    let mut mounts = false;
    let mut ids = false;
    for a in args {
        for c in a.strip_prefix('-').unwrap_or_default().chars() {
            match c {
                'a' => all = true,
                'm' => mounts = true,
                'i' => ids = true,
                _ => return Err(Failure::usage(format!("lssubsys: unknown option -{c}"))),
            }
        }
    }
    // The kernel's reports, or (for tests) fixture files standing in for them.
    let h = match std::env::var_os("CGTOOLS_MOUNTINFO") {
        Some(p) => {
            let p = std::path::PathBuf::from(p);
            Hierarchies::from_mounts(&parse_mountinfo(&p, &read_text(&p)?)?)?
        }
        None => Hierarchies::detect()?,
    };
    let procs = match std::env::var_os("CGTOOLS_PROC_CGROUPS") {
        Some(p) => {
            let p = std::path::PathBuf::from(p);
            parse_proc_cgroups(&p, &read_text(&p)?)?
        }
        None => read_proc_cgroups()?,
    };
    for line in lssubsys_lines(&h, &procs, all, mounts, ids) {
        println!("{line}");
    }
    Ok(())
}

fn read_text(p: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| Failure {
        message: format!("{}: {e}", p.display()),
        code: ECGOTHER,
    })
}

/// What `lssubsys` prints, in cgroup-tools' order: with `-a`, first the
/// subsystems no hierarchy holds (by name alone), then each hierarchy in
/// the order its first subsystem has in /proc/cgroups, its subsystems
/// joined by commas, followed by its mount point (`-m`) or else its id
/// (`-i`). A subsystem on the v2 side of a hybrid host (hierarchy 0 in
/// /proc/cgroups, yet usable) is listed as mounted, at the v2 mount point.
fn lssubsys_lines(
    h: &Hierarchies,
    procs: &[SubsystemInfo],
    all: bool,
    mounts: bool,
    ids: bool,
) -> Vec<String> {
    let procs: Vec<&SubsystemInfo> = procs.iter().filter(|s| s.enabled).collect();
    let v1_of = |name: &str| {
        h.list()
            .iter()
            .find(|x| x.version == Version::V1 && x.subsystems.iter().any(|n| n == name))
    };
    let v2_of = |s: &SubsystemInfo| {
        h.unified()
            .filter(|x| s.hierarchy == 0 && x.subsystems.contains(&s.name))
    };
    let mut unmounted = Vec::new();
    let mut mounted: Vec<(Vec<String>, u32, &Hierarchy)> = Vec::new();
    for s in &procs {
        let hier = match (v1_of(&s.name), v2_of(s)) {
            (Some(x), _) | (None, Some(x)) => x,
            (None, None) => {
                unmounted.push(s.name.clone());
                continue;
            }
        };
        if hier.version == Version::V1
            && let Some(entry) = mounted.iter_mut().find(|(_, _, x)| std::ptr::eq(*x, hier))
        {
            entry.0.push(s.name.clone());
            continue;
        }
        mounted.push((vec![s.name.clone()], s.hierarchy, hier));
    }
    let mut out = if all { unmounted } else { Vec::new() };
    for (names, id, hier) in mounted {
        let names = names.join(",");
        out.push(if mounts {
            format!("{names} {}", hier.mount_point.display())
        } else if ids {
            format!("{names} {id}")
        } else {
            names
        });
    }
    out
}

fn label(x: &Hierarchy) -> String {
    x.subsystems.join(",")
}

fn lscgroup(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    if args.is_empty() {
        for x in hierarchies(&h) {
            for p in x.walk(&CgroupPath::root())? {
                println!("{}:{p}", label(x));
            }
        }
        return Ok(());
    }
    for spec in args {
        let (controllers, path) = group(spec.strip_prefix("-g").unwrap_or(spec))?;
        let mut seen: Vec<&Hierarchy> = Vec::new();
        for c in &controllers {
            let x = h
                .for_controller(*c)
                .ok_or_else(|| Failure::usage(format!("controller {c} is not mounted")))?;
            if seen.contains(&x) {
                continue;
            }
            seen.push(x);
            for (i, p) in x.walk(&path)?.iter().enumerate() {
                // cgroup-tools ends the first (given) path with a slash.
                let slash = if i == 0 && !p.is_root() { "/" } else { "" };
                println!("{}:{p}{slash}", c.v1_name());
            }
        }
    }
    Ok(())
}

fn cgcreate(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    let (groups, _) = groups(args, &mut Vec::new(), false)?;
    for (controllers, path) in groups {
        Cgroup::create(&h, &path, &controllers)?;
    }
    Ok(())
}

fn cgdelete(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    let mut flags = Vec::new();
    let (groups, _) = groups(args, &mut flags, true)?;
    for (controllers, path) in groups {
        let cg = Cgroup::open(&h, &path, &controllers)?;
        if flags.contains(&'r') {
            cg.delete_recursive()?;
        } else {
            cg.delete()?;
        }
    }
    Ok(())
}

/// `-r` values and the paths after them.
fn vars_and_paths(args: &[String], flags: &mut Vec<char>) -> Result<(Vec<String>, Vec<PathArg>)> {
    let mut vars = Vec::new();
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-r" {
            vars.push(
                it.next()
                    .ok_or_else(|| Failure::usage("-r needs a value".into()))?
                    .clone(),
            );
        } else if let Some(v) = a.strip_prefix("-r") {
            vars.push(v.to_owned());
        } else if a.starts_with('-') && a.len() > 1 {
            flags.extend(a[1..].chars());
        } else {
            paths.push((a.clone(), CgroupPath::new(a)?));
        }
    }
    if vars.is_empty() || paths.is_empty() {
        return Err(Failure::usage("expected -r name ... path ...".into()));
    }
    Ok((vars, paths))
}

/// The cgroup `path` in the hierarchy of the file `name`'s controller,
/// if it exists and has that file.
fn cgroup_for(h: &Hierarchies, path: &CgroupPath, name: &str) -> Option<Cgroup> {
    let prefix = name.split('.').next().unwrap_or_default();
    let controllers: Vec<Controller> = Controller::from_name(prefix).into_iter().collect();
    let cg = Cgroup::open(h, path, &controllers).ok()?;
    cg.dir_for_file(name)
        .ok()?
        .file(name)
        .exists()
        .then_some(cg)
}

fn cgset(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    let (vars, paths) = vars_and_paths(args, &mut Vec::new())?;
    for (_, path) in &paths {
        for var in &vars {
            let (name, value) = var
                .split_once('=')
                .ok_or_else(|| Failure::usage(format!("{var}: expected name=value")))?;
            let cg = cgroup_for(&h, path, name).ok_or_else(|| Failure {
                message:
                    "cgset: cgroup modify error: Cgroup, requested group parameter does not exist "
                        .into(),
                code: ECGROUPVALUENOTEXIST,
            })?;
            cg.write_file(name, value).map_err(|e| {
                let why = match &e {
                    Error::Io { source, .. } => {
                        std::io::Error::from_raw_os_error(source.raw_os_error().unwrap_or(0))
                            .to_string()
                            .split(" (os error")
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    }
                    other => other.to_string(),
                };
                Failure {
                    message: format!("cgset: cgroup modify error: {why} "),
                    code: ECGOTHER,
                }
            })?;
        }
    }
    Ok(())
}

fn cgget(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    let mut flags = Vec::new();
    let (vars, paths) = vars_and_paths(args, &mut flags)?;
    let (no_name, values_only) = (flags.contains(&'n'), flags.contains(&'v'));
    let mut out = String::new();
    for (arg, path) in &paths {
        let mut group = String::new();
        if !no_name {
            group += &format!("{arg}:\n");
        }
        for name in &vars {
            let read_failed = || Failure {
                message: "variable file read failed No such file or directory".into(),
                code: ECGOTHER,
            };
            let cg = cgroup_for(&h, path, name).ok_or_else(read_failed)?;
            let value = cg.read_file(name).map_err(|_| read_failed())?;
            let mut lines = value.lines();
            let first = lines.next().unwrap_or_default();
            if values_only {
                group += &format!("{first}\n");
            } else {
                group += &format!("{name}: {first}\n");
            }
            for l in lines {
                group += &format!("\t{l}\n");
            }
        }
        if !no_name {
            group.push('\n');
        }
        out += &group;
    }
    print!("{out}");
    Ok(())
}

fn cgexec(args: &[OsString]) -> Result<()> {
    // The options end where the command starts (as `groups` splits them);
    // the command and its arguments stay bytes.
    let mut start = 0;
    while let Some(a) = args.get(start).map(|a| a.as_bytes()) {
        if a == b"-g" {
            start += 2;
        } else if a.starts_with(b"-") && a.len() > 1 {
            start += 1;
        } else {
            break;
        }
    }
    let start = start.min(args.len());
    let h = Hierarchies::detect()?;
    let (groups, _) = groups(&texts(&args[..start])?, &mut Vec::new(), false)?;
    let (program, rest) = args[start..]
        .split_first()
        .ok_or_else(|| Failure::usage("cgexec: no command given".into()))?;
    for (controllers, path) in groups {
        Cgroup::open(&h, &path, &controllers)?.add_process(std::process::id())?;
    }
    let e = std::process::Command::new(program).args(rest).exec();
    Err(Failure {
        message: format!("cgexec: {}: {e}", Path::new(program).display()),
        code: 127,
    })
}

fn cgclassify(args: &[String]) -> Result<()> {
    let h = Hierarchies::detect()?;
    let (groups, pids) = groups(args, &mut Vec::new(), false)?;
    for (controllers, path) in groups {
        let cg = Cgroup::open(&h, &path, &controllers)?;
        for pid in &pids {
            let pid: u32 = pid
                .parse()
                .map_err(|_| Failure::usage(format!("{pid}: not a pid")))?;
            cg.add_process(pid)?;
        }
    }
    Ok(())
}
