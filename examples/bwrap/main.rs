//! A bubblewrap-compatible sandbox, built on `dunnage::namespaces`.
//!
//! ```text
//! cargo run -q --example bwrap -- --ro-bind /usr /usr --symlink usr/bin /bin \
//!     --proc /proc --dev /dev --unshare-all --hostname box sh -c 'hostname; ls /'
//! ```
//!
//! Options as bubblewrap 0.8, in their order on the command line:
//! `--unshare-all|user|user-try|ipc|pid|net|uts|cgroup|cgroup-try`,
//! `--share-net`, `--userns FD`, `--pidns FD`, `--uid`, `--gid`,
//! `--hostname`, `--chdir`, `--clearenv`, `--setenv`, `--unsetenv`,
//! `--bind|--bind-try|--ro-bind|--ro-bind-try|--dev-bind|--dev-bind-try SRC
//! DEST`, `--remount-ro`, `--proc`, `--dev` (at /dev), `--tmpfs` (with
//! `--perms` and `--size`), `--mqueue`, `--dir` (with `--perms`),
//! `--symlink`, `--seccomp FD` (one program), `--new-session`,
//! `--die-with-parent`, `--cap-add`, `--cap-drop`, `--block-fd`,
//! `--sync-fd`, `--info-fd`, `--json-status-fd`, `--args FD`, `--help`,
//! `--version`, then the command.
//!
//! Differences from bubblewrap: the new root is an empty directory of the
//! host (removed at exit) instead of a tmpfs, so `--dir` and `--symlink`
//! are made there before the mounts (not inside a mount made earlier on
//! the command line); in a new pid namespace the command itself is pid 1
//! (bubblewrap's `--as-pid-1`, accepted; bubblewrap's own init is not
//! there); `--dev` works at `/dev` only and makes no `/dev/shm` directory
//! (nor `/dev/core` where the kernel has no `/proc/kcore`);
//! `--add-seccomp-fd`, `--file`, `--bind-data`, `--ro-bind-data`,
//! `--chmod`, `--lock-file`, `--userns-block-fd` are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod options;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use dunnage::namespaces::{CapSet, Capabilities, Command, IdMap, Kind, Mount};

use options::{Fail, Op, Options, fail, own_fd, parse};

/// Capability names of bwrap's `--cap-add`/`--cap-drop` (or `ALL`).
fn cap_set(names: &[String], all: CapSet) -> Result<CapSet, Fail> {
    let mut set = CapSet::EMPTY;
    for n in names {
        if n.eq_ignore_ascii_case("ALL") {
            set = all;
        } else {
            let one = CapSet::parse([n]).map_err(|e| Fail(e.to_string()))?;
            set = CapSet(set.0 | one.0);
        }
    }
    Ok(set)
}

/// The sandbox's mounts and its pre-made directories and symlinks.
fn apply_ops(cmd: &mut Command, ops: &[Op], root: &Path, own_pid: bool) -> Result<(), Fail> {
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    for op in ops {
        match op {
            Op::Bind {
                src,
                dest,
                ro,
                dev,
                try_,
            } => {
                if !src.exists() {
                    if *try_ {
                        continue;
                    }
                    return fail(format!(
                        "Can't find source path {}: No such file or directory",
                        src.display()
                    ));
                }
                let mut options = vec!["rbind", "nosuid"];
                if *ro {
                    options.push("ro");
                }
                if !dev {
                    options.push("nodev");
                }
                cmd.mount(Mount {
                    destination: dest.clone(),
                    fstype: "bind".into(),
                    source: src.clone(),
                    options: options.iter().map(|s| s.to_string()).collect(),
                });
            }
            Op::Proc(dest) if own_pid => {
                cmd.mount(Mount::new("proc", dest, &["nosuid", "nodev", "noexec"]));
            }
            Op::Proc(dest) => {
                cmd.mount(Mount {
                    destination: dest.clone(),
                    fstype: "bind".into(),
                    source: "/proc".into(),
                    options: ["bind", "nosuid", "nodev", "noexec"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                });
            }
            Op::Dev(dest) => {
                if dest != Path::new("/dev") {
                    return fail("--dev is supported at /dev only");
                }
                cmd.mount(Mount::new(
                    "tmpfs",
                    "/dev",
                    &["nosuid", "nodev", "mode=755"],
                ));
                cmd.mount(Mount::new(
                    "devpts",
                    "/dev/pts",
                    &[
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=620",
                    ],
                ));
                cmd.default_devices(true);
            }
            Op::Tmpfs { dest, perms, size } => {
                let mut options = vec![
                    "nosuid".to_owned(),
                    "nodev".to_owned(),
                    format!("mode={:o}", perms.unwrap_or(0o755)),
                ];
                if let Some(s) = size {
                    options.push(format!("size={s}"));
                }
                let refs: Vec<&str> = options.iter().map(String::as_str).collect();
                cmd.mount(Mount::new("tmpfs", dest, &refs));
            }
            Op::Mqueue(dest) => {
                cmd.mount(Mount::new("mqueue", dest, &[]));
            }
            Op::RemountRo(dest) => {
                cmd.readonly_path(dest);
            }
            Op::Dir { dest, perms } => {
                let dir = inside(dest);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Fail(format!("Can't mkdir {}: {e}", dest.display())))?;
                let mode = perms.unwrap_or(0o755);
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(|e| Fail(format!("Can't chmod {}: {e}", dest.display())))?;
            }
            Op::Symlink { target, link } => {
                let at = inside(link);
                if let Some(parent) = at.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::os::unix::fs::symlink(target, &at)
                    .map_err(|e| Fail(format!("Can't make symlink at {}: {e}", link.display())))?;
            }
        }
    }
    Ok(())
}

/// The new root: an empty directory of the host, removed at exit.
fn make_root() -> Result<PathBuf, Fail> {
    let mut rnd = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut rnd);
    }
    let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!(".bwrap-{}-{name}", std::process::id());
    // $XDG_RUNTIME_DIR when this user may write there (an inherited one
    // may be another user's), else the temporary directory.
    let bases = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([std::env::temp_dir()]);
    let mut last = None;
    for base in bases {
        let dir = base.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(format!("Can't make {}: {e}", dir.display())),
        }
    }
    fail(last.unwrap_or_default())
}

fn write_fd(fd: RawFd, text: &str) {
    let mut f = std::fs::File::from(own_fd(fd));
    let _ = f.write_all(text.as_bytes());
    std::mem::forget(f);
}

fn run(o: Options, root: &Path) -> Result<i32, Fail> {
    // SAFETY: getuid/getgid have no preconditions.
    let (ruid, rgid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut kinds = o.kinds.with(Kind::Mount);
    if o.user_try && o.userns.is_none() && Kind::User.is_supported() {
        kinds = kinds.with(Kind::User);
    }
    if o.cgroup_try && Kind::Cgroup.is_supported() {
        kinds = kinds.with(Kind::Cgroup);
    }
    if o.share_net {
        kinds = kinds.without(Kind::Net);
    }
    let userns = kinds.contains(Kind::User);
    let uid = o.uid.unwrap_or(ruid);
    let gid = o.gid.unwrap_or(rgid);
    if !userns && o.userns.is_none() && (uid != ruid || gid != rgid) && ruid != 0 {
        return fail("Setting uid or gid requires --unshare-user or --userns");
    }
    let mut cmd = Command::new(&o.command[0]);
    cmd.args(&o.command[1..])
        .namespaces(kinds)
        .rootfs(root)
        .no_new_privileges(true)
        .new_session(o.new_session)
        .loopback_up(kinds.contains(Kind::Net))
        .uid(uid)
        .gid(gid);
    if userns {
        cmd.uid_map(vec![IdMap {
            inside: uid,
            outside: ruid,
            count: 1,
        }])
        .gid_map(vec![IdMap {
            inside: gid,
            outside: rgid,
            count: 1,
        }]);
    }
    // Without a pid namespace of its own, /proc is the host's, bound.
    let own_pid = kinds.contains(Kind::Pid) || o.pidns.is_some();
    if let Some(fd) = o.userns {
        cmd.join_namespace(Kind::User, fd);
    }
    if let Some(fd) = o.pidns {
        cmd.join_namespace(Kind::Pid, fd);
    }
    if let Some(h) = &o.hostname {
        if !kinds.contains(Kind::Uts) {
            return fail("Specifying --hostname requires --unshare-uts");
        }
        cmd.hostname(h);
    }
    if o.clearenv {
        cmd.env_clear();
    }
    for (k, v) in &o.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    apply_ops(&mut cmd, &o.ops, root, own_pid)?;
    match &o.chdir {
        Some(dir) => {
            cmd.current_dir(dir);
        }
        None => {
            // bwrap keeps the working directory when the sandbox has it.
            if let Ok(cwd) = std::env::current_dir() {
                let shown = o.ops.iter().any(|op| {
                    matches!(op, Op::Bind { src, dest, .. } if src == dest && cwd.starts_with(dest))
                });
                if shown {
                    cmd.current_dir(cwd);
                }
            }
        }
    }
    // Capabilities: for a root caller and uid 0 in the sandbox, all (the
    // bounding set kept), adjusted by --cap-add/--cap-drop, which also set
    // inheritable and ambient, and in a user namespace the bounding set;
    // none at all for anyone else.
    // "All" is what this process has: a capability it lacks cannot be
    // given.
    // In a new user namespace its root has every capability the bounding
    // set allows.
    let all = if userns {
        own_caps("CapBnd")
    } else {
        own_caps("CapPrm")
    };
    if uid == 0 && ruid == 0 {
        let mut set = all;
        set.0 &= !cap_set(&o.cap_drop, all)?.0;
        set.0 |= cap_set(&o.cap_add, all)?.0;
        let explicit = !o.cap_add.is_empty() || !o.cap_drop.is_empty();
        let inh = if explicit { set } else { CapSet::EMPTY };
        cmd.capabilities(Capabilities {
            bounding: if userns && explicit {
                set
            } else {
                own_caps("CapBnd")
            },
            effective: set,
            permitted: set,
            inheritable: inh,
            ambient: inh,
        });
    } else {
        if !o.cap_add.is_empty() {
            return fail("--cap-add needs a root caller and the sandbox's uid 0");
        }
        cmd.capabilities(Capabilities::default());
    }
    if let Some(p) = o.seccomp {
        cmd.seccomp(p);
    }
    if o.die_with_parent {
        cmd.parent_death_signal(libc::SIGKILL);
    }
    if let Some(fd) = o.sync_fd {
        let dup = dunnage_dup(fd)?;
        cmd.pass_fd(fd.max(3), dup);
    }
    // The child waits at the start gate while the parent reads its
    // namespaces for --info-fd/--json-status-fd and waits for --block-fd.
    cmd.start_gate(o.block_fd.is_some() || o.info_fd.is_some() || o.json_status_fd.is_some());
    let exec_error = |e: dunnage::namespaces::Error| match e {
        dunnage::namespaces::Error::Exec { source, .. } => Fail(format!(
            "execvp {}: {}",
            o.command[0].to_string_lossy(),
            strip_os_error(&source)
        )),
        e => Fail(e.to_string()),
    };
    let mut child = cmd.spawn().map_err(exec_error)?;
    let pid = child.id();
    // The ids of the namespaces made for the sandbox, as bwrap lists them.
    let made: Vec<(String, String)> = [
        (Kind::Cgroup, "cgroup"),
        (Kind::Ipc, "ipc"),
        (Kind::Mount, "mnt"),
        (Kind::Net, "net"),
        (Kind::Pid, "pid"),
        (Kind::Uts, "uts"),
    ]
    .into_iter()
    .filter(|(k, _)| kinds.contains(*k))
    .filter_map(|(k, name)| {
        let id = dunnage::namespaces::NamespaceId::of(pid, k).ok()?;
        Some((format!("{name}-namespace"), id.ino.to_string()))
    })
    .collect();
    if let Some(fd) = o.info_fd {
        let mut text = format!("{{\n    \"child-pid\": {pid}");
        for (k, v) in &made {
            text.push_str(&format!(",\n    \"{k}\": {v}"));
        }
        text.push_str("\n}\n");
        write_fd(fd, &text);
    }
    if let Some(fd) = o.json_status_fd {
        let mut text = format!("{{ \"child-pid\": {pid}");
        for (k, v) in &made {
            text.push_str(&format!(", \"{k}\": {v}"));
        }
        text.push_str(" }\n");
        write_fd(fd, &text);
    }
    if let Some(gate) = child.take_gate() {
        if let Some(fd) = o.block_fd {
            let mut byte = [0u8; 1];
            let _ = std::fs::File::from(own_fd(fd)).read(&mut byte);
        }
        gate.release().map_err(exec_error)?;
    }
    let status = child.wait().map_err(|e| Fail(e.to_string()))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if let Some(fd) = o.json_status_fd {
        write_fd(fd, &format!("{{ \"exit-code\": {code} }}\n"));
    }
    Ok(code)
}

/// A capability set of this process from `/proc/self/status`.
fn own_caps(field: &str) -> CapSet {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CapSet(mask)
}

fn dunnage_dup(fd: RawFd) -> Result<OwnedFd, Fail> {
    // SAFETY: fcntl on a descriptor the caller named.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return fail(format!("Invalid fd {fd}"));
    }
    Ok(own_fd(new))
}

/// `No such file or directory`, without Rust's ` (os error 2)`.
fn strip_os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match parse(args) {
        Err(Fail(msg)) => {
            eprintln!("bwrap: {msg}");
            1
        }
        Ok(o) => match make_root() {
            Err(Fail(msg)) => {
                eprintln!("bwrap: {msg}");
                1
            }
            Ok(root) => {
                let code = run(o, &root).unwrap_or_else(|Fail(msg)| {
                    eprintln!("bwrap: {msg}");
                    1
                });
                // The mount points and links made in the root, never the
                // mounts (they lived in the sandbox's mount namespace).
                let _ = std::fs::remove_dir_all(&root);
                code
            }
        },
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
