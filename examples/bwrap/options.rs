//! The command line of the bwrap example: options in order, as bubblewrap
//! parses them.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use dunnage::namespaces::{BpfProgram, Kind, Kinds};

pub const VERSION: &str = "bubblewrap 0.8.0 (dunnage example)";

/// A failure: printed as `bwrap: <message>`, exit status 1.
pub struct Fail(pub String);

pub fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(msg.into()))
}

/// A filesystem operation, in command-line order.
pub enum Op {
    Bind {
        src: PathBuf,
        dest: PathBuf,
        ro: bool,
        dev: bool,
        try_: bool,
    },
    Proc(PathBuf),
    Dev(PathBuf),
    Tmpfs {
        dest: PathBuf,
        perms: Option<u32>,
        size: Option<u64>,
    },
    Mqueue(PathBuf),
    RemountRo(PathBuf),
    Dir {
        dest: PathBuf,
        perms: Option<u32>,
    },
    Symlink {
        target: OsString,
        link: PathBuf,
    },
}

#[derive(Default)]
pub struct Options {
    pub kinds: Kinds,
    pub share_net: bool,
    pub user_try: bool,
    pub cgroup_try: bool,
    pub userns: Option<OwnedFd>,
    pub pidns: Option<OwnedFd>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hostname: Option<OsString>,
    pub chdir: Option<PathBuf>,
    pub clearenv: bool,
    pub env: Vec<(OsString, Option<OsString>)>,
    pub ops: Vec<Op>,
    pub seccomp: Option<BpfProgram>,
    pub new_session: bool,
    pub die_with_parent: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub block_fd: Option<RawFd>,
    pub sync_fd: Option<RawFd>,
    pub info_fd: Option<RawFd>,
    pub json_status_fd: Option<RawFd>,
    pub command: Vec<OsString>,
}

pub fn usage() -> String {
    format!(
        "usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]\n\n{}",
        "    --help                       Print this help\n\
         \x20   --version                    Print version\n\
         \x20   --args FD                    Parse NUL-separated args from FD\n\
         \x20   --unshare-all                Unshare every namespace we support by default\n\
         \x20   --share-net                  Retain the network namespace (with --unshare-all)\n\
         \x20   --unshare-user[-try] --unshare-ipc --unshare-pid --unshare-net\n\
         \x20   --unshare-uts --unshare-cgroup[-try]\n\
         \x20   --userns FD --pidns FD --uid UID --gid GID --hostname NAME\n\
         \x20   --chdir DIR --clearenv --setenv VAR VALUE --unsetenv VAR\n\
         \x20   --[ro-|dev-]bind[-try] SRC DEST --remount-ro DEST\n\
         \x20   --proc DEST --dev DEST --tmpfs DEST --mqueue DEST --dir DEST\n\
         \x20   --symlink SRC DEST --perms OCTAL --size BYTES --seccomp FD\n\
         \x20   --new-session --die-with-parent --as-pid-1\n\
         \x20   --cap-add CAP --cap-drop CAP --block-fd FD --sync-fd FD\n\
         \x20   --info-fd FD --json-status-fd FD\n"
    )
}

fn parse_fd(v: &OsStr) -> Result<RawFd, Fail> {
    match v.to_str().and_then(|s| s.parse::<RawFd>().ok()) {
        Some(fd) if fd >= 0 => Ok(fd),
        _ => fail(format!("Invalid fd: {}", v.to_string_lossy())),
    }
}

fn parse_u32(v: &OsStr, what: &str) -> Result<u32, Fail> {
    v.to_str().and_then(|s| s.parse().ok()).map_or_else(
        || fail(format!("Invalid {what}: {}", v.to_string_lossy())),
        Ok,
    )
}

/// Take ownership of an fd number given on the command line.
pub fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller handed this descriptor to us on the command line;
    // nothing else in this program owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// NUL-separated arguments read from `fd` (`--args`).
fn read_args(fd: RawFd) -> Result<Vec<OsString>, Fail> {
    let mut data = Vec::new();
    std::fs::File::from(own_fd(fd))
        .read_to_end(&mut data)
        .map_err(|e| Fail(format!("Can't read --args data: {e}")))?;
    Ok(data
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect())
}

pub fn parse(mut args: Vec<OsString>) -> Result<Options, Fail> {
    let mut o = Options::default();
    let mut perms: Option<u32> = None;
    let mut size: Option<u64> = None;
    args.reverse();
    let next = |args: &mut Vec<OsString>, opt: &str| {
        args.pop()
            .map_or_else(|| fail(format!("{opt} takes an argument")), Ok)
    };
    while let Some(arg) = args.pop() {
        let a = arg.to_string_lossy().into_owned();
        if !a.starts_with("--") {
            args.push(arg);
            break;
        }
        let path = |args: &mut Vec<OsString>| next(args, &a).map(PathBuf::from);
        match a.as_str() {
            "--" => break,
            "--help" => {
                print!("{}", usage());
                std::process::exit(0);
            }
            "--version" => {
                println!("{VERSION}");
                std::process::exit(0);
            }
            "--args" => {
                let fd = parse_fd(&next(&mut args, &a)?)?;
                let mut more = read_args(fd)?;
                more.reverse();
                args.extend(more);
            }
            "--unshare-all" => {
                o.kinds = o.kinds | Kind::Ipc | Kind::Pid | Kind::Net | Kind::Uts;
                o.user_try = true;
                o.cgroup_try = true;
            }
            "--share-net" => o.share_net = true,
            "--unshare-user" => o.kinds = o.kinds.with(Kind::User),
            "--unshare-user-try" => o.user_try = true,
            "--unshare-ipc" => o.kinds = o.kinds.with(Kind::Ipc),
            "--unshare-pid" => o.kinds = o.kinds.with(Kind::Pid),
            "--unshare-net" => o.kinds = o.kinds.with(Kind::Net),
            "--unshare-uts" => o.kinds = o.kinds.with(Kind::Uts),
            "--unshare-cgroup" => o.kinds = o.kinds.with(Kind::Cgroup),
            "--unshare-cgroup-try" => o.cgroup_try = true,
            "--userns" => o.userns = Some(own_fd(parse_fd(&next(&mut args, &a)?)?)),
            "--pidns" => o.pidns = Some(own_fd(parse_fd(&next(&mut args, &a)?)?)),
            "--uid" => o.uid = Some(parse_u32(&next(&mut args, &a)?, "uid")?),
            "--gid" => o.gid = Some(parse_u32(&next(&mut args, &a)?, "gid")?),
            "--hostname" => o.hostname = Some(next(&mut args, &a)?),
            "--chdir" => o.chdir = Some(path(&mut args)?),
            "--clearenv" => {
                o.clearenv = true;
                o.env.clear();
            }
            "--setenv" => {
                let k = next(&mut args, &a)?;
                let v = next(&mut args, &a)?;
                o.env.push((k, Some(v)));
            }
            "--unsetenv" => o.env.push((next(&mut args, &a)?, None)),
            "--bind" | "--bind-try" | "--ro-bind" | "--ro-bind-try" | "--dev-bind"
            | "--dev-bind-try" => {
                let src = path(&mut args)?;
                let dest = path(&mut args)?;
                o.ops.push(Op::Bind {
                    src,
                    dest,
                    ro: a.starts_with("--ro-"),
                    dev: a.starts_with("--dev-"),
                    try_: a.ends_with("-try"),
                });
            }
            "--remount-ro" => o.ops.push(Op::RemountRo(path(&mut args)?)),
            "--proc" => o.ops.push(Op::Proc(path(&mut args)?)),
            "--dev" => o.ops.push(Op::Dev(path(&mut args)?)),
            "--tmpfs" => o.ops.push(Op::Tmpfs {
                dest: path(&mut args)?,
                perms: perms.take(),
                size: size.take(),
            }),
            "--mqueue" => o.ops.push(Op::Mqueue(path(&mut args)?)),
            "--dir" => o.ops.push(Op::Dir {
                dest: path(&mut args)?,
                perms: perms.take(),
            }),
            "--symlink" => {
                let target = next(&mut args, &a)?;
                let link = path(&mut args)?;
                o.ops.push(Op::Symlink { target, link });
            }
            "--perms" => {
                let v = next(&mut args, &a)?;
                match v.to_str().and_then(|s| u32::from_str_radix(s, 8).ok()) {
                    Some(p) if p <= 0o7777 => perms = Some(p),
                    _ => return fail(format!("--perms takes an octal argument, not {v:?}")),
                }
            }
            "--size" => {
                let v = next(&mut args, &a)?;
                match v.to_str().and_then(|s| s.parse().ok()) {
                    Some(s) if s > 0 => size = Some(s),
                    _ => return fail(format!("Invalid size: {}", v.to_string_lossy())),
                }
            }
            "--seccomp" => {
                if o.seccomp.is_some() {
                    return fail("--seccomp cannot be repeated");
                }
                let fd = parse_fd(&next(&mut args, &a)?)?;
                let file = std::fs::File::from(own_fd(fd));
                o.seccomp = Some(
                    BpfProgram::read_from(file)
                        .map_err(|e| Fail(format!("Invalid seccomp data: {e}")))?,
                );
            }
            "--new-session" => o.new_session = true,
            "--die-with-parent" => o.die_with_parent = true,
            "--as-pid-1" => {}
            "--cap-add" => o
                .cap_add
                .push(next(&mut args, &a)?.to_string_lossy().into()),
            "--cap-drop" => o
                .cap_drop
                .push(next(&mut args, &a)?.to_string_lossy().into()),
            "--block-fd" => o.block_fd = Some(parse_fd(&next(&mut args, &a)?)?),
            "--sync-fd" => o.sync_fd = Some(parse_fd(&next(&mut args, &a)?)?),
            "--info-fd" => o.info_fd = Some(parse_fd(&next(&mut args, &a)?)?),
            "--json-status-fd" => o.json_status_fd = Some(parse_fd(&next(&mut args, &a)?)?),
            "--add-seccomp-fd"
            | "--file"
            | "--bind-data"
            | "--ro-bind-data"
            | "--chmod"
            | "--lock-file"
            | "--userns-block-fd"
            | "--userns2"
            | "--disable-userns"
            | "--assert-userns-disabled" => {
                return fail(format!("{a} is not supported by this example"));
            }
            _ => return fail(format!("Unknown option {a}")),
        }
    }
    if perms.is_some() || size.is_some() {
        return fail("--perms and --size must come before --tmpfs or --dir");
    }
    args.reverse();
    o.command = args;
    if o.command.is_empty() {
        return fail("No command specified");
    }
    Ok(o)
}
