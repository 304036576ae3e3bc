//! A util-linux-compatible `unshare`, built on `dunnage::namespaces`.
//!
//! ```text
//! cargo run -q --example unshare -- --fork --pid --mount-proc --uts sh -c 'hostname demo; ps'
//! ```
//!
//! Options as util-linux 2.38: `-m/--mount -u/--uts -i/--ipc -n/--net
//! -p/--pid -U/--user -C/--cgroup -T/--time` (each `[=FILE]` to persist),
//! `-f/--fork`, `--mount-proc[=DIR]`, `-r/--map-root-user`,
//! `-c/--map-current-user`, `--map-user=UID|NAME`, `--map-group=GID|NAME`,
//! `--map-users=OUTER,INNER,COUNT`, `--map-groups=...`,
//! `--propagation slave|shared|private|unchanged`, `--setgroups allow|deny`,
//! `--kill-child[=SIGNAL]`, `-R/--root DIR`, `-w/--wd DIR`, `-S/--setuid`,
//! `-G/--setgid`, `--monotonic`/`--boottime SECONDS`. Without a program it runs
//! `$SHELL` (default `/bin/sh`). It exits with the program's status; a
//! program killed by a signal kills `unshare` with the same signal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![no_main]

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};

use dunnage::namespaces::{
    self as ns, Clock, Command, IdMap, Kind, Kinds, Propagation, PropagationMode, SetGroups,
};

/// A failure: the message (printed as `unshare: <message>`) and exit status.
struct Fail(i32, String);

fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(1, msg.into()))
}

#[derive(Default)]
struct Options {
    kinds: Kinds,
    persist: Vec<(Kind, PathBuf)>,
    fork: bool,
    mount_proc: Option<PathBuf>,
    map_user: Option<u32>,
    map_group: Option<u32>,
    uid_ranges: Vec<IdMap>,
    gid_ranges: Vec<IdMap>,
    propagation: Option<Option<Propagation>>,
    setgroups: Option<SetGroups>,
    kill_child: Option<i32>,
    root: Option<PathBuf>,
    wd: Option<PathBuf>,
    setuid: Option<u32>,
    setgid: Option<u32>,
    offsets: Vec<(Clock, i64)>,
    program: Vec<OsString>,
}

/// How an option takes its argument, as in getopt_long.
#[derive(PartialEq)]
enum Arg {
    None,
    Optional,
    Required,
}

const LONG: &[(&str, Arg)] = &[
    ("mount", Arg::Optional),
    ("uts", Arg::Optional),
    ("ipc", Arg::Optional),
    ("net", Arg::Optional),
    ("pid", Arg::Optional),
    ("user", Arg::Optional),
    ("cgroup", Arg::Optional),
    ("time", Arg::Optional),
    ("fork", Arg::None),
    ("help", Arg::None),
    ("version", Arg::None),
    ("map-user", Arg::Required),
    ("map-users", Arg::Required),
    ("map-group", Arg::Required),
    ("map-groups", Arg::Required),
    ("map-root-user", Arg::None),
    ("map-current-user", Arg::None),
    ("kill-child", Arg::Optional),
    ("mount-proc", Arg::Optional),
    ("propagation", Arg::Required),
    ("setgroups", Arg::Required),
    ("root", Arg::Required),
    ("wd", Arg::Required),
    ("setuid", Arg::Required),
    ("setgid", Arg::Required),
    ("monotonic", Arg::Required),
    ("boottime", Arg::Required),
];

/// Short options and their long names; `R w S G` take an argument.
const SHORT: &[(char, &str)] = &[
    ('f', "fork"),
    ('h', "help"),
    ('V', "version"),
    ('m', "mount"),
    ('u', "uts"),
    ('i', "ipc"),
    ('n', "net"),
    ('p', "pid"),
    ('C', "cgroup"),
    ('T', "time"),
    ('U', "user"),
    ('r', "map-root-user"),
    ('c', "map-current-user"),
    ('R', "root"),
    ('w', "wd"),
    ('S', "setuid"),
    ('G', "setgid"),
];

/// getopt_long with a leading `+`: options stop at the first non-option.
fn parse(args: Vec<OsString>) -> Result<Options, Fail> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            break;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            let (name, value) = match long.iter().position(|b| *b == b'=') {
                Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
                None => (long, None),
            };
            let name = String::from_utf8_lossy(name);
            let full = match_long(&name, arg)?;
            let kind = &LONG.iter().find(|(n, _)| *n == full).unwrap().1;
            let value = match (kind, value) {
                (Arg::None, Some(_)) => {
                    return fail(format!("option '--{full}' doesn't allow an argument"));
                }
                (Arg::Required, None) if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].as_os_str())
                }
                (Arg::Required, None) => {
                    return fail(format!("option '--{full}' requires an argument"));
                }
                (_, v) => v,
            };
            apply(&mut o, full, value)?;
        } else if arg.len() > 1 && arg[0] == b'-' {
            let mut j = 1;
            while j < arg.len() {
                let c = arg[j] as char;
                j += 1;
                let Some((_, full)) = SHORT.iter().find(|(s, _)| *s == c) else {
                    return fail(format!("invalid option -- '{c}'"));
                };
                let value = if LONG.iter().any(|(n, a)| n == full && *a == Arg::Required) {
                    let v = if j < arg.len() {
                        OsStr::from_bytes(&arg[j..])
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].as_os_str()
                    } else {
                        return fail(format!("option requires an argument -- '{c}'"));
                    };
                    j = arg.len();
                    Some(v)
                } else {
                    None
                };
                apply(&mut o, full, value)?;
            }
        } else {
            i -= 1;
            break;
        }
    }
    o.program = args[i..].to_vec();
    Ok(o)
}

/// An exact long name, or the one long name it abbreviates.
fn match_long(name: &str, arg: &[u8]) -> Result<&'static str, Fail> {
    if let Some((n, _)) = LONG.iter().find(|(n, _)| *n == name) {
        return Ok(n);
    }
    let found: Vec<&str> = LONG
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !name.is_empty() && n.starts_with(name))
        .collect();
    match found[..] {
        [one] => Ok(one),
        [] => fail(format!(
            "unrecognized option '{}'",
            String::from_utf8_lossy(arg)
        )),
        _ => fail(format!(
            "option '{}' is ambiguous",
            String::from_utf8_lossy(arg)
        )),
    }
}

fn text(value: Option<&OsStr>) -> String {
    value
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn apply(o: &mut Options, name: &str, value: Option<&OsStr>) -> Result<(), Fail> {
    let v = text(value);
    if let Ok(kind) = name.parse::<Kind>() {
        o.kinds = o.kinds.with(kind);
        if let Some(file) = value {
            o.persist.push((kind, PathBuf::from(file)));
        }
        return Ok(());
    }
    match name {
        "fork" => o.fork = true,
        "help" => {
            print!("{}", HELP);
            std::process::exit(0);
        }
        "version" => {
            println!("unshare (dunnage example) {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        "map-user" => o.map_user = Some(lookup_id(&v, "uid")?),
        "map-group" => o.map_group = Some(lookup_id(&v, "gid")?),
        "map-users" => o.uid_ranges.push(parse_range(&v)?),
        "map-groups" => o.gid_ranges.push(parse_range(&v)?),
        "map-root-user" => (o.map_user, o.map_group) = (Some(0), Some(0)),
        "map-current-user" => {
            // SAFETY: these getters have no preconditions.
            (o.map_user, o.map_group) = unsafe { (Some(libc::geteuid()), Some(libc::getegid())) }
        }
        "kill-child" => {
            o.fork = true;
            o.kill_child = Some(if value.is_some() {
                signal_number(&v)?
            } else {
                libc::SIGKILL
            });
        }
        "mount-proc" => {
            o.kinds = o.kinds.with(Kind::Mount);
            o.mount_proc = Some(value.map_or_else(|| PathBuf::from("/proc"), PathBuf::from));
        }
        "propagation" => {
            o.propagation = Some(match v.as_str() {
                "unchanged" => None,
                m => match m.parse::<PropagationMode>() {
                    Ok(PropagationMode::Unbindable) | Err(_) => {
                        return fail(format!("unsupported propagation mode: {m}"));
                    }
                    Ok(mode) => Some(Propagation::recursive(mode)),
                },
            })
        }
        "setgroups" => {
            o.setgroups = Some(match v.as_str() {
                "allow" => SetGroups::Allow,
                "deny" => SetGroups::Deny,
                _ => return fail(format!("unsupported --setgroups argument '{v}'")),
            })
        }
        "root" => o.root = Some(PathBuf::from(value.unwrap_or_default())),
        "wd" => o.wd = Some(PathBuf::from(value.unwrap_or_default())),
        "setuid" => o.setuid = Some(parse_num(&v, "uid")?),
        "setgid" => o.setgid = Some(parse_num(&v, "gid")?),
        "monotonic" | "boottime" => {
            let clock = if name == "monotonic" {
                Clock::Monotonic
            } else {
                Clock::Boottime
            };
            let secs = v
                .parse()
                .or_else(|_| fail(format!("failed to parse {name} offset: '{v}'")))?;
            o.offsets.push((clock, secs));
        }
        _ => unreachable!("every long option is handled"),
    }
    if name.starts_with("map-") {
        o.kinds = o.kinds.with(Kind::User);
    }
    Ok(())
}

fn parse_num(v: &str, what: &str) -> Result<u32, Fail> {
    v.parse()
        .or_else(|_| fail(format!("failed to parse {what}: '{v}'")))
}

/// A number, or a user or group name from /etc/passwd or /etc/group.
fn lookup_id(v: &str, what: &str) -> Result<u32, Fail> {
    if let Ok(n) = v.parse() {
        return Ok(n);
    }
    let file = if what == "uid" {
        "/etc/passwd"
    } else {
        "/etc/group"
    };
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == v)
        .and_then(|f| f[2].parse().ok())
        .map_or_else(|| fail(format!("failed to parse {what}: '{v}'")), Ok)
}

/// `OUTER,INNER,COUNT` (util-linux order) into an id map line.
fn parse_range(v: &str) -> Result<IdMap, Fail> {
    let n: Vec<u32> = v.split([',', ':']).filter_map(|f| f.parse().ok()).collect();
    match n[..] {
        [outer, inner, count] if v.split([',', ':']).count() == 3 => {
            Ok(IdMap::new(inner, outer, count))
        }
        _ => fail(format!("invalid map range: '{v}'")),
    }
}

fn signal_number(v: &str) -> Result<i32, Fail> {
    let name = v.trim_start_matches("SIG");
    let known = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("TERM", libc::SIGTERM),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
    ];
    if let Some((_, n)) = known.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    match v.parse() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => fail(format!("unknown signal: {v}")),
    }
}

const HELP: &str = "
Usage:
 unshare [options] [<program> [<argument>...]]

Run a program with some namespaces unshared from the parent.

Options:
 -m, --mount[=<file>]      unshare mounts namespace
 -u, --uts[=<file>]        unshare UTS namespace (hostname etc)
 -i, --ipc[=<file>]        unshare System V IPC namespace
 -n, --net[=<file>]        unshare network namespace
 -p, --pid[=<file>]        unshare pid namespace
 -U, --user[=<file>]       unshare user namespace
 -C, --cgroup[=<file>]     unshare cgroup namespace
 -T, --time[=<file>]       unshare time namespace

 -f, --fork                fork before launching <program>
 --map-user=<uid>|<name>   map current user to uid (implies --user)
 --map-group=<gid>|<name>  map current group to gid (implies --user)
 -r, --map-root-user       map current user to root (implies --user)
 -c, --map-current-user    map current user to itself (implies --user)
 --map-users=<outeruid>,<inneruid>,<count>
                           map count users from outeruid to inneruid (implies --user)
 --map-groups=<outergid>,<innergid>,<count>
                           map count groups from outergid to innergid (implies --user)

 --kill-child[=<signame>]  when dying, kill the forked child (implies --fork)
 --mount-proc[=<dir>]      mount proc filesystem first (implies --mount)
 --propagation slave|shared|private|unchanged
                           modify mount propagation in mount namespace
 --setgroups allow|deny    control the setgroups syscall in user namespaces

 -R, --root=<dir>          run the command with root directory set to <dir>
 -w, --wd=<dir>            change working directory to <dir>
 -S, --setuid <uid>        set uid in entered namespace
 -G, --setgid <gid>        set gid in entered namespace
 --monotonic <offset>      set clock monotonic offset (seconds) in time namespaces
 --boottime <offset>       set clock boottime offset (seconds) in time namespaces

 -h, --help                display this help
 -V, --version             display version
";

impl Options {
    /// The uid and gid maps: `--map-user`/`--map-group` map the caller's
    /// own ids, `--map-users`/`--map-groups` add ranges.
    fn maps(&self) -> (Vec<IdMap>, Vec<IdMap>) {
        // SAFETY: these getters have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut uids: Vec<IdMap> = self
            .map_user
            .map(|u| IdMap::new(u, euid, 1))
            .into_iter()
            .collect();
        let mut gids: Vec<IdMap> = self
            .map_group
            .map(|g| IdMap::new(g, egid, 1))
            .into_iter()
            .collect();
        uids.extend(&self.uid_ranges);
        gids.extend(&self.gid_ranges);
        (uids, gids)
    }

    /// util-linux: mapping one's own group requires `setgroups deny`.
    fn setgroups(&self) -> Result<Option<SetGroups>, Fail> {
        match (self.map_group, self.setgroups) {
            (Some(_), Some(SetGroups::Allow)) => {
                fail("options --setgroups=allow and --map-group are mutually exclusive")
            }
            (Some(_), _) => Ok(Some(SetGroups::Deny)),
            (None, s) => Ok(s),
        }
    }

    fn propagation(&self) -> Option<Propagation> {
        self.propagation.unwrap_or(Some(Propagation::DEFAULT))
    }

    /// The program and its argv[0]: a login-style `$SHELL` by default.
    fn program(&self) -> (OsString, OsString, Vec<OsString>) {
        match self.program.split_first() {
            Some((p, rest)) => (p.clone(), p.clone(), rest.to_vec()),
            None => {
                let shell = std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into());
                let base = Path::new(&shell).file_name().unwrap_or_default().to_owned();
                let mut arg0 = OsString::from("-");
                arg0.push(base);
                (shell, arg0, Vec::new())
            }
        }
    }
}

fn exec_failure(program: &OsStr, e: &std::io::Error) -> Fail {
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    Fail(
        code,
        format!(
            "failed to execute {}: {}",
            program.to_string_lossy(),
            strerror(e)
        ),
    )
}

/// The C library's text for an errno, as util-linux prints it.
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.split(" (os error").next().unwrap_or(&s).to_owned()
}

/// `--fork`: the library spawns the program in the new namespaces and this
/// process waits for it.
fn run_forked(o: &Options) -> Result<i32, Fail> {
    let (program, arg0, args) = o.program();
    let (uids, gids) = o.maps();
    let mut cmd = Command::new(&program);
    cmd.arg0(&arg0)
        .args(&args)
        .namespaces(o.kinds)
        .uid_map(uids)
        .gid_map(gids)
        .propagation(o.propagation());
    if let Some(s) = o.setgroups()? {
        cmd.setgroups(s);
    }
    for (kind, file) in &o.persist {
        cmd.persist(*kind, file);
    }
    for (clock, secs) in &o.offsets {
        cmd.time_offset(*clock, *secs);
    }
    if let Some(dir) = &o.mount_proc {
        cmd.mount_proc(dir);
    }
    if let Some(sig) = o.kill_child {
        cmd.parent_death_signal(sig);
    }
    if let Some(dir) = &o.root {
        cmd.root(dir);
    }
    if let Some(dir) = &o.wd {
        cmd.current_dir(dir);
    }
    if let Some(uid) = o.setuid {
        cmd.uid(uid);
    }
    if let Some(gid) = o.setgid {
        cmd.gid(gid);
    }
    // Like util-linux: SIGINT and SIGTERM are blocked in this process while
    // it waits (the child starts with an empty signal mask).
    // SAFETY: sigset operations on a local set; sigprocmask of this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    // `status` waits for the exit directly (no wake-up at the exec), and
    // still reports a failed setup or exec.
    let status = cmd.status().map_err(|e| match (e, &o.root, &o.wd) {
        (ns::Error::Exec { source, .. }, ..) => exec_failure(&program, &source),
        (
            ns::Error::Setup {
                name: "chroot",
                source,
                ..
            },
            Some(dir),
            _,
        ) => Fail(1, chroot_failure(dir, &source)),
        (
            ns::Error::Setup {
                name: "chdir",
                source,
                ..
            },
            _,
            Some(dir),
        ) => Fail(1, chdir_failure(dir, &source)),
        (e, ..) => Fail(1, e.to_string()),
    })?;
    if let Some(sig) = status.signal() {
        // Die the same way, so our parent sees the same status.
        // SAFETY: plain signal syscalls on ourselves.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::signal(sig, libc::SIG_DFL);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
        }
    }
    Ok(status.code().unwrap_or(1))
}

/// Without `--fork`: unshare this process and execute the program in it.
fn run_in_place(o: &Options) -> Result<i32, Fail> {
    let (program, arg0, args) = o.program();
    let (uids, gids) = o.maps();
    let setgroups = o.setgroups()?;
    precheck(o, &program, &uids, &gids)?;
    let persist = persist_helper(&o.persist)?;
    ns::unshare_with(o.kinds, o.propagation()).map_err(|e| Fail(1, e.to_string()))?;
    if o.kinds.contains(Kind::User) {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        ns::write_maps(me, &uids, &gids, setgroups).map_err(|e| Fail(1, e.to_string()))?;
    }
    if let Some(helper) = persist {
        helper.finish()?;
    }
    if o.kinds.contains(Kind::Time) && !o.offsets.is_empty() {
        let text: String = o
            .offsets
            .iter()
            .map(|(c, s)| {
                format!(
                    "{} {s} 0\n",
                    if *c == Clock::Monotonic {
                        "monotonic"
                    } else {
                        "boottime"
                    }
                )
            })
            .collect();
        std::fs::write("/proc/self/timens_offsets", text)
            .or_else(|e| fail(format!("failed to write timens offsets: {e}")))?;
    }
    if let Some(dir) = &o.root {
        std::os::unix::fs::chroot(dir)
            .and_then(|()| std::env::set_current_dir("/"))
            .or_else(|e| fail(chroot_failure(dir, &e)))?;
    }
    if let Some(dir) = &o.wd {
        std::env::set_current_dir(dir).or_else(|e| fail(chdir_failure(dir, &e)))?;
    }
    if let Some(dir) = &o.mount_proc {
        mount_proc(dir)?;
    }
    let mut cmd = std::process::Command::new(&program);
    cmd.arg0(&arg0).args(&args);
    if let Some(gid) = o.setgid {
        cmd.gid(gid);
    }
    if let Some(uid) = o.setuid {
        cmd.uid(uid);
    }
    let e = cmd.exec();
    Err(exec_failure(&program, &e))
}

fn chroot_failure(dir: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot change root directory to '{}': {}",
        dir.display(),
        strerror(e)
    )
}

fn chdir_failure(dir: &Path, e: &std::io::Error) -> String {
    format!("cannot chdir to '{}': {}", dir.display(), strerror(e))
}

/// Without `--fork`, the id maps, `--root`, `--wd` and the program are only
/// used after the namespaces were unshared and persisted. Check them first,
/// with the messages and exit statuses of the later steps, so that bad input
/// leaves no persisted namespace mounted behind (util-linux leaves it).
/// The program and `--wd` are looked up only without `--root`: inside
/// another root, absolute symlinks would be followed on the host.
fn precheck(o: &Options, program: &OsStr, uids: &[IdMap], gids: &[IdMap]) -> Result<(), Fail> {
    for (which, map) in [("uid", uids), ("gid", gids)] {
        if !map.is_empty() {
            ns::idmap::validate(map)
                .map_err(|source| Fail(1, ns::Error::IdMap { which, source }.to_string()))?;
        }
    }
    if let Some(dir) = &o.root {
        return match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail(chroot_failure(
                dir,
                &std::io::Error::from_raw_os_error(libc::ENOTDIR),
            )),
            Err(e) => fail(chroot_failure(dir, &e)),
        };
    }
    if let Some(dir) = &o.wd {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return fail(chdir_failure(
                    dir,
                    &std::io::Error::from_raw_os_error(libc::ENOTDIR),
                ));
            }
            Err(e) => return fail(chdir_failure(dir, &e)),
        }
    }
    // The error the later exec would meet, passed through as it is: a
    // permission error or a symlink loop gives 126, not "No such file".
    let path = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        let path = match &o.wd {
            Some(wd) if path.is_relative() => wd.join(path),
            _ => path.to_path_buf(),
        };
        return match std::fs::metadata(&path) {
            Ok(_) => Ok(()),
            Err(e) => Err(exec_failure(program, &e)),
        };
    }
    // A PATH search as execvp does it: missing entries are skipped, a
    // found file ends it, and otherwise the first other error (a directory
    // is EACCES to exec) is reported rather than ENOENT.
    let dirs = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut error = std::io::Error::from_raw_os_error(libc::ENOENT);
    for dir in std::env::split_paths(&dirs) {
        match std::fs::metadata(dir.join(path)) {
            Ok(m) if m.is_file() => return Ok(()),
            Ok(_) => {
                if error.raw_os_error() == Some(libc::ENOENT) {
                    error = std::io::Error::from_raw_os_error(libc::EACCES);
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
            Err(e) => {
                if error.raw_os_error() == Some(libc::ENOENT) {
                    error = e;
                }
            }
        }
    }
    Err(exec_failure(program, &error))
}

fn mount_proc(dir: &Path) -> Result<(), Fail> {
    let target = CString::new(dir.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: valid C strings; NULL data.
    let rc = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            target.as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return fail(format!(
            "mount {} failed: {}",
            dir.display(),
            strerror(&std::io::Error::last_os_error())
        ));
    }
    Ok(())
}

/// Persisting without `--fork`, as util-linux does it: a helper forked
/// before the unshare stays in the original mount namespace and binds the
/// new namespaces' files from there once told to.
struct PersistHelper {
    pid: libc::pid_t,
    go: std::fs::File,
}

fn persist_helper(files: &[(Kind, PathBuf)]) -> Result<Option<PersistHelper>, Fail> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds; fork in this single-threaded program.
    let (parent, pid) = unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return fail("pipe failed");
        }
        let parent = libc::getpid();
        (parent, libc::fork())
    };
    use std::os::fd::FromRawFd;
    // SAFETY: the fds are new and owned here.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    match pid {
        -1 => fail("fork failed"),
        0 => {
            drop(write);
            let mut byte = [0u8];
            let code = match std::io::Read::read(&mut &read, &mut byte) {
                Ok(1) => persist_all(parent, files),
                _ => 1,
            };
            // SAFETY: leave the helper without running the parent's exit code.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Some(PersistHelper { pid, go: write })),
    }
}

fn persist_all(parent: libc::pid_t, files: &[(Kind, PathBuf)]) -> i32 {
    for (kind, file) in files {
        // Pid and time namespaces are the ones for the children.
        let name = match kind {
            Kind::Pid => "pid_for_children".to_owned(),
            Kind::Time => "time_for_children".to_owned(),
            k => k.proc_name().to_owned(),
        };
        let source = PathBuf::from(format!("/proc/{parent}/ns/{name}"));
        if let Err(e) = ns::persist_file(&source, file) {
            eprintln!("unshare: {e}");
            return 1;
        }
    }
    0
}

impl PersistHelper {
    fn finish(self) -> Result<(), Fail> {
        let _ = std::io::Write::write_all(&mut &self.go, b"x");
        drop(self.go);
        let mut status = 0;
        // SAFETY: waiting for our own helper.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if std::process::ExitStatus::from_raw(status).success() {
            Ok(())
        } else {
            fail("failed to persist the namespaces")
        }
    }
}

/// The C `main`, without Rust's runtime set-up (`#![no_main]`): that set-up
/// reads `/proc/self/maps` to place a stack guard and installs signal
/// handlers, about 4% of this program's CPU time per spawn-to-exit, which
/// util-linux's `unshare` does not spend. The arguments are read from
/// `argc`/`argv` themselves: `std::env::args_os` relies on the C library
/// filling it before `main` (glibc does, musl does not).
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let count = if argv.is_null() {
        0
    } else {
        usize::try_from(argc).unwrap_or(0)
    };
    let args: Vec<OsString> = (1..count)
        .filter_map(|i| {
            // SAFETY: the C runtime passes `argc` valid entries in `argv`.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: a non-null entry is a NUL-terminated string.
            (!arg.is_null()).then(|| {
                OsStr::from_bytes(unsafe { CStr::from_ptr(arg) }.to_bytes()).to_os_string()
            })
        })
        .collect();
    let result = parse(args).and_then(|o| {
        if o.fork {
            run_forked(&o)
        } else {
            run_in_place(&o)
        }
    });
    match result {
        // Nothing is buffered on stdout on this path: leave without the
        // runtime's exit cleanup (flushing stdout, freeing the signal stack).
        // SAFETY: _exit ends the process; no destructor needs to run.
        Ok(code) => unsafe { libc::_exit(code) },
        Err(Fail(code, msg)) => {
            eprintln!("unshare: {msg}");
            std::process::exit(code);
        }
    }
}
