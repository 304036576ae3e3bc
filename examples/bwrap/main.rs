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
//! DEST`, `--remount-ro`, `--proc`, `--dev DEST`, `--tmpfs` (with
//! `--perms` and `--size`), `--mqueue`, `--dir`, `--symlink`, `--file FD
//! DEST`, `--bind-data|--ro-bind-data FD DEST`, `--chmod`, `--seccomp FD`,
//! `--add-seccomp-fd FD` (repeated, stacked), `--new-session`,
//! `--die-with-parent`, `--as-pid-1`, `--cap-add`, `--cap-drop` (also
//! unprivileged with a user namespace), `--block-fd`, `--sync-fd`,
//! `--info-fd`, `--userns-block-fd` (with `--info-fd`),
//! `--json-status-fd`, `--args FD`, `--help`, `--version`, then the
//! command.
//!
//! The root is a tmpfs made in the sandbox's mount namespace (nothing of
//! the host is used or left behind); the filesystem operations run there
//! in command-line order. In a new pid namespace the command runs as pid 2
//! under a small init, as bubblewrap's (unless `--as-pid-1`).
//!
//! Differences from bubblewrap: with `--userns-block-fd` a root
//! caller's sandbox starts (bubblewrap fails with EOVERFLOW making its
//! root); `--lock-file`'s lock is taken during the setup (bubblewrap's
//! init takes it after the setup), then held by the init, as bubblewrap's,
//! for the sandbox's life (also without a pid namespace, where the init is
//! the command's parent); `--sync-fd` stays open in the command too
//! (bubblewrap keeps it only in its init); and a root caller's
//! `--unshare-user --uid N --cap-add CAP` (N not 0) gets the capabilities
//! asked for, where bubblewrap 0.8 gives every capability in all five sets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod options;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use std::os::unix::ffi::OsStrExt;

use dunnage::namespaces::{CapSet, Capabilities, Command, IdMap, Kind, Mount, RootOp};

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

/// bwrap's `--dev DEST`: a tmpfs with the host's basic nodes bound in,
/// the stdio and fd links, `shm`, a private devpts with `ptmx`, and the
/// terminal as `console` when stdout is one.
fn dev_ops(cmd: &mut Command, dest: &Path) {
    cmd.mount(Mount::new("tmpfs", dest, &["nosuid", "nodev", "mode=0755"]));
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        cmd.mount(Mount::bind(
            Path::new("/dev").join(node),
            dest.join(node),
            &["nosuid"],
        ));
    }
    for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
        cmd.root_op(RootOp::Symlink {
            target: format!("/proc/self/fd/{i}").into(),
            link: dest.join(name),
        });
    }
    for (name, target) in [("fd", "/proc/self/fd"), ("core", "/proc/kcore")] {
        cmd.root_op(RootOp::Symlink {
            target: target.into(),
            link: dest.join(name),
        });
    }
    cmd.root_op(RootOp::Dir {
        path: dest.join("shm"),
        mode: 0o755,
    });
    cmd.mount(Mount::new(
        "devpts",
        dest.join("pts"),
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=620",
        ],
    ));
    cmd.root_op(RootOp::Symlink {
        target: "pts/ptmx".into(),
        link: dest.join("ptmx"),
    });
    // SAFETY: isatty/ttyname on stdout; the name is copied at once.
    let tty = unsafe {
        if libc::isatty(1) == 1 {
            let p = libc::ttyname(1);
            (!p.is_null()).then(|| {
                PathBuf::from(std::ffi::OsStr::from_bytes(
                    std::ffi::CStr::from_ptr(p).to_bytes(),
                ))
            })
        } else {
            None
        }
    };
    if let Some(tty) = tty {
        cmd.mount(Mount::bind(
            tty,
            dest.join("console"),
            &["nosuid", "noexec"],
        ));
    }
}

/// The sandbox's filesystem, in command-line order, on a tmpfs root.
fn apply_ops(cmd: &mut Command, ops: Vec<Op>, own_pid: bool) -> Result<(), Fail> {
    cmd.tmpfs_rootfs();
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
                    if try_ {
                        continue;
                    }
                    return fail(format!(
                        "Can't find source path {}: No such file or directory",
                        src.display()
                    ));
                }
                let mut options = vec!["rbind", "nosuid"];
                if ro {
                    options.push("ro");
                }
                if !dev {
                    options.push("nodev");
                }
                cmd.mount(Mount::bind(src, dest, &options));
            }
            Op::Proc(dest) => {
                if own_pid {
                    cmd.mount(Mount::new("proc", &dest, &["nosuid", "nodev", "noexec"]));
                } else {
                    // The host's, as bwrap binds it without a pid namespace.
                    cmd.mount(Mount::bind("/proc", &dest, &["rbind", "nosuid", "nodev"]));
                }
                // As bwrap: what the sandbox could write there, read-only.
                for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
                    cmd.root_op(RootOp::ReadOnlyIfWritable(dest.join(sub)));
                }
            }
            Op::Dev(dest) => dev_ops(cmd, &dest),
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
                cmd.root_op(RootOp::RemountReadOnly(dest));
            }
            Op::Dir { dest, perms } => {
                cmd.root_op(RootOp::Dir {
                    path: dest,
                    mode: perms.unwrap_or(0o755),
                });
            }
            Op::Symlink { target, link } => {
                cmd.root_op(RootOp::Symlink { target, link });
            }
            Op::File {
                fd,
                dest,
                perms,
                bind,
            } => match bind {
                // As bwrap: the data on a file outside the root, bound
                // and unlinked (link count 0).
                Some(read_only) => {
                    cmd.root_op(RootOp::BindData {
                        path: dest,
                        source: fd,
                        mode: perms.unwrap_or(0o600),
                        read_only,
                    });
                }
                None => {
                    cmd.root_op(RootOp::File {
                        path: dest,
                        source: fd,
                        mode: perms.unwrap_or(0o666),
                    });
                }
            },
            Op::LockFile(path) => {
                cmd.root_op(RootOp::LockFile(path));
            }
            Op::Chmod { path, mode } => {
                cmd.root_op(RootOp::Chmod { path, mode });
            }
        }
    }
    Ok(())
}

fn write_fd(fd: RawFd, text: &str) {
    let mut f = std::fs::File::from(own_fd(fd));
    let _ = f.write_all(text.as_bytes());
    std::mem::forget(f);
}

fn run(mut o: Options) -> Result<i32, Fail> {
    // SAFETY: getuid/getgid have no preconditions.
    let (ruid, rgid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut kinds = o.kinds.with(Kind::Mount);
    if o.user_try && o.userns.is_none() && Kind::User.is_supported() {
        kinds = kinds.with(Kind::User);
    }
    // As bwrap when not setuid: an unprivileged caller gets a user
    // namespace for its privileges.
    if ruid != 0 && o.userns.is_none() {
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
    // As bwrap, also for a root caller.
    if !userns && o.userns.is_none() && uid != ruid {
        return fail("Specifying --uid requires --unshare-user or --userns");
    }
    if !userns && o.userns.is_none() && gid != rgid {
        return fail("Specifying --gid requires --unshare-user or --userns");
    }
    if o.as_pid_1 && !kinds.contains(Kind::Pid) {
        return fail("Specifying --as-pid-1 requires --unshare-pid");
    }
    let locks = o.ops.iter().any(|op| matches!(op, Op::LockFile(_)));
    if o.as_pid_1 && locks {
        return fail("Specifying --as-pid-1 and --lock-file is not permitted");
    }
    let mut cmd = Command::new(&o.command[0]);
    cmd.args(&o.command[1..])
        .namespaces(kinds)
        .no_new_privileges(true)
        .new_session(o.new_session)
        .init_process(!o.as_pid_1)
        .loopback_up(kinds.contains(Kind::Net));
    // With --userns-block-fd the caller's maps decide; the ids stay those
    // of the namespace's setup (its root) unless --uid/--gid say otherwise.
    if o.userns_block_fd.is_none() || o.uid.is_some() {
        cmd.uid(uid);
    }
    if o.userns_block_fd.is_none() || o.gid.is_some() {
        cmd.gid(gid);
    }
    if o.userns_block_fd.is_some() && !(userns && o.info_fd.is_some()) {
        return fail("--userns-block-fd requires --unshare-user and --info-fd");
    }
    // As bwrap: with --dev, the setup runs as root of the new user
    // namespace (the kernel owns a new devpts by that root, which must be
    // mapped) and the command in a second one nested in it, where its ids
    // map onto that root (so /dev/pts shows as theirs).
    let needs_devpts = o.ops.iter().any(|op| matches!(op, Op::Dev(_)));
    let nested = userns && o.userns_block_fd.is_none() && needs_devpts && (uid, gid) != (0, 0);
    if userns && o.userns_block_fd.is_none() {
        let (first_uid, first_gid) = if nested { (0, 0) } else { (uid, gid) };
        cmd.uid_map(vec![IdMap {
            inside: first_uid,
            outside: ruid,
            count: 1,
        }])
        .gid_map(vec![IdMap {
            inside: first_gid,
            outside: rgid,
            count: 1,
        }]);
    }
    if nested {
        cmd.inner_user_namespace(uid, gid);
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
    let ops = std::mem::take(&mut o.ops);
    let shown_cwd = |cwd: &Path| {
        ops.iter().any(
            |op| matches!(op, Op::Bind { src, dest, .. } if src == dest && cwd.starts_with(dest)),
        )
    };
    let keep_cwd = std::env::current_dir().ok().filter(|c| shown_cwd(c));
    apply_ops(&mut cmd, ops, own_pid)?;
    match &o.chdir {
        Some(dir) => {
            cmd.current_dir(dir);
        }
        None => {
            // bwrap keeps the working directory when the sandbox has it.
            if let Some(cwd) = keep_cwd {
                cmd.current_dir(cwd);
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
    } else if userns && !o.cap_add.is_empty() {
        // In its own user namespace the sandbox may hold what it asks
        // for, in all five sets, whatever its uid (as bwrap).
        // (It starts with none: --cap-drop only checks its names.)
        // A new user namespace starts with a full bounding set (the
        // kernel's set_cred_user_ns), whatever the caller's: ALL is every
        // capability this kernel has.
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
            .min(63);
        let full = CapSet(u64::MAX >> (63 - last));
        cap_set(&o.cap_drop, full)?;
        let set = cap_set(&o.cap_add, full)?;
        cmd.capabilities(Capabilities {
            bounding: set,
            effective: set,
            permitted: set,
            inheritable: set,
            ambient: set,
        })
        .keep_capabilities(uid != 0);
    } else {
        if !o.cap_add.is_empty() {
            return fail("--cap-add needs a root caller or --unshare-user");
        }
        // A root caller's sandbox keeps its bounding set (bwrap drops it
        // only when unprivileged).
        let bounding = if ruid == 0 {
            own_caps("CapBnd")
        } else {
            CapSet::EMPTY
        };
        cmd.capabilities(Capabilities {
            bounding,
            ..Capabilities::default()
        });
    }
    if let Some(p) = o.seccomp {
        cmd.seccomp(p);
    }
    for p in std::mem::take(&mut o.add_seccomp) {
        cmd.add_seccomp(p);
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
    let (info_fd, json_fd) = (o.info_fd, o.json_status_fd);
    if let Some(block) = o.userns_block_fd {
        // bwrap's --userns-block-fd: the caller writes the id maps; the
        // child waits while the pid and namespaces are reported and until
        // the caller writes a byte.
        cmd.before_start(move |pid| {
            report(pid, kinds, info_fd, json_fd);
            let mut byte = [0u8; 1];
            let _ = std::fs::File::from(own_fd(block)).read(&mut byte);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(exec_error)?;
    if o.userns_block_fd.is_none() {
        report(child.id(), kinds, info_fd, json_fd);
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

/// The child's pid and namespaces on --info-fd and --json-status-fd, as
/// bwrap writes them.
fn report(
    pid: i32,
    kinds: dunnage::namespaces::Kinds,
    info_fd: Option<RawFd>,
    json_fd: Option<RawFd>,
) {
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
    if let Some(fd) = info_fd {
        let mut text = format!("{{\n    \"child-pid\": {pid}");
        for (k, v) in &made {
            text.push_str(&format!(",\n    \"{k}\": {v}"));
        }
        text.push_str("\n}\n");
        write_fd(fd, &text);
    }
    if let Some(fd) = json_fd {
        let mut text = format!("{{ \"child-pid\": {pid}");
        for (k, v) in &made {
            text.push_str(&format!(", \"{k}\": {v}"));
        }
        text.push_str(" }\n");
        write_fd(fd, &text);
    }
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
        Ok(o) => run(o).unwrap_or_else(|Fail(msg)| {
            eprintln!("bwrap: {msg}");
            1
        }),
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
