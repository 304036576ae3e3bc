//! `examples/bwrap.rs` against bubblewrap: same exit statuses, same view
//! from inside (ids, capabilities, no_new_privs, hostname, root and /dev
//! listings, which namespaces are new), as root and as an unprivileged
//! user with a user namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dunnage_testsupport::{TempDir, example_binary, require_command, require_root};

fn example() -> PathBuf {
    example_binary("bwrap")
}

/// The sandbox's filesystem: /usr read-only and the merged-/usr links.
const FS: &[&str] = &[
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
];

/// A shell line printing what the sandbox sees; the host's namespaces
/// come in as HOST_<kind> variables so that it can tell new from shared.
const VIEW: &str = "id; hostname; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; \
    ls /; ls /dev; pwd; \
    stat -c '%n %u %g %a' /dev /dev/pts /dev/pts/ptmx; cat /proc/self/uid_map /proc/self/gid_map; \
    for n in user mnt pid net uts ipc cgroup; do \
      eval h=\\$HOST_$n; \
      if [ \"$(readlink /proc/self/ns/$n)\" = \"$h\" ]; then echo $n shared; else echo $n new; fi; \
    done";

fn host_ns_env() -> Vec<String> {
    let mut v = Vec::new();
    for n in ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        v.extend([
            "--setenv".to_owned(),
            format!("HOST_{n}"),
            link.to_string_lossy().into_owned(),
        ]);
    }
    v
}

/// Run `prefix... PROGRAM args...` (prefix: setpriv for an unprivileged
/// run) for ours and bubblewrap's.
fn both(prefix: &[&str], args: &[String]) -> (Output, Output) {
    let run = |program: &str| {
        let (exe, rest): (&str, Vec<&str>) = match prefix.split_first() {
            Some((first, more)) => {
                let mut r = more.to_vec();
                r.push(program);
                (first, r)
            }
            None => (program, Vec::new()),
        };
        Command::new(exe)
            .args(rest)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    };
    let ours = example();
    (run(ours.to_str().unwrap()), run("bwrap"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_same(prefix: &[&str], args: &[String]) -> String {
    let (ours, theirs) = both(prefix, args);
    assert_eq!(
        text(&ours),
        text(&theirs),
        "output of {args:?}\nours:\n{}\nbwrap:\n{}",
        text(&ours),
        text(&theirs)
    );
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "status of {args:?}"
    );
    text(&ours)
}

fn args(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|s| s.to_string()))
        .collect()
}

#[test]
fn the_view_from_inside_matches_bubblewrap_as_root() {
    require_root!();
    require_command!("bwrap");
    let env = host_ns_env();
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    for ns in [
        &["--unshare-all", "--hostname", "box"][..],
        &["--unshare-net", "--unshare-ipc", "--unshare-uts"][..],
        &[
            "--unshare-all",
            "--share-net",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_KILL",
        ][..],
        &[
            "--unshare-user",
            "--uid",
            "0",
            "--gid",
            "0",
            "--chdir",
            "/usr",
        ][..],
        // With --dev and other ids: a second user namespace, as bwrap.
        &["--unshare-user", "--uid", "5", "--gid", "6"][..],
        &["--unshare-all", "--uid", "0", "--gid", "7"][..],
    ] {
        let out = assert_same(&[], &args(&[FS, &env, ns, &["sh", "-c", VIEW]]));
        assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    }
}

#[test]
fn the_view_from_inside_matches_bubblewrap_unprivileged() {
    require_root!();
    require_command!("bwrap");
    require_command!("setpriv");
    let env = host_ns_env();
    let env: Vec<&str> = env.iter().map(String::as_str).collect();
    let setpriv = [
        "setpriv",
        "--reuid",
        "1000",
        "--regid",
        "1000",
        "--clear-groups",
    ];
    for ns in [
        &["--unshare-user", "--unshare-pid", "--unshare-net"][..],
        &[
            "--unshare-all",
            "--uid",
            "0",
            "--gid",
            "0",
            "--hostname",
            "x",
        ][..],
        &["--unshare-user", "--uid", "123", "--gid", "456"][..],
        &["--unshare-user", "--uid", "0", "--gid", "7"][..],
        &["--unshare-user", "--uid", "7", "--gid", "0"][..],
        &["--unshare-user", "--cap-add", "CAP_NET_ADMIN"][..],
        &["--unshare-user", "--cap-add", "ALL"][..],
        &[
            "--unshare-user",
            "--uid",
            "0",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_KILL",
        ][..],
    ] {
        let out = assert_same(&setpriv, &args(&[FS, &env, ns, &["sh", "-c", VIEW]]));
        assert!(out.contains("user new"), "{out}");
    }
}

#[test]
fn exit_statuses_and_errors_match_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    for cmd in [
        &["sh", "-c", "exit 3"][..],
        &["false"][..],
        &["true"][..],
        &["/nonexistent/program"][..],
        &["sh", "-c", "kill -9 $$"][..],
    ] {
        assert_same(&[], &args(&[FS, cmd]));
    }
    // Without the filesystem: nothing to run.
    assert_same(&[], &args(&[&["true"]]));
    // Other ids need a user namespace, also for root.
    assert_same(&[], &args(&[FS, &["--uid", "5", "true"]]));
    assert_same(&[], &args(&[FS, &["--gid", "5", "true"]]));
    for bad in [
        &["--bogus", "true"][..],
        &["--uid"][..],
        &["--ro-bind", "/nonexistent", "/x", "true"][..],
    ] {
        let (ours, theirs) = both(&[], &args(&[bad]));
        assert_eq!(ours.status.code(), theirs.status.code(), "{bad:?}");
        assert_eq!(ours.status.code(), Some(1), "{bad:?}");
    }
    // The -try binds skip a missing source.
    assert_same(
        &[],
        &args(&[
            FS,
            &[
                "--ro-bind-try",
                "/nonexistent",
                "/x",
                "--bind-try",
                "/nope",
                "/y",
            ],
            &["ls", "/"],
        ]),
    );
}

#[test]
fn environment_and_args_fd_match_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    let dir = TempDir::new("bwrap-args").unwrap();
    let argfile = dir.join("args");
    std::fs::write(&argfile, b"--setenv\0FROM_FD\0yes\0--unsetenv\0HOME\0").unwrap();
    let line = format!(
        "exec {} {} --clearenv --setenv A 1 --setenv PATH /usr/bin --args 3 sh -c 'env | sort' 3< {}",
        "\"$0\"",
        FS.join(" "),
        argfile.display()
    );
    let run = |program: &str| {
        Command::new("sh")
            .args(["-c", &line, program])
            .output()
            .unwrap()
    };
    let ours = run(example().to_str().unwrap());
    let theirs = run("bwrap");
    assert_eq!(text(&ours), text(&theirs));
    assert!(text(&ours).contains("FROM_FD=yes"), "{}", text(&ours));
    assert_eq!(ours.status.code(), theirs.status.code());
}

/// A classic BPF program: `errno` for syscall `nr` on x86_64, allow the
/// rest.
fn deny_program(nr: u32, errno: u32) -> Vec<u8> {
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let insns: [(u16, u8, u8, u32); 7] = [
        (0x20, 0, 0, 4),                   // ld arch
        (0x15, 1, 0, AUDIT_ARCH_X86_64),   // jeq x86_64
        (0x06, 0, 0, 0x7fff_0000),         // ret allow (other arches)
        (0x20, 0, 0, 0),                   // ld nr
        (0x15, 0, 1, nr),                  // jeq nr
        (0x06, 0, 0, 0x0005_0000 | errno), // ret errno
        (0x06, 0, 0, 0x7fff_0000),         // ret allow
    ];
    let mut bytes = Vec::new();
    for (code, jt, jf, k) in insns {
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend([jt, jf]);
        bytes.extend_from_slice(&k.to_ne_bytes());
    }
    bytes
}

#[test]
fn a_seccomp_program_from_an_fd_is_loaded_like_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    let dir = TempDir::new("bwrap-seccomp").unwrap();
    let prog = dir.join("prog.bpf");
    // EPERM for uname(2).
    std::fs::write(&prog, deny_program(63, 1)).unwrap();
    let line = format!(
        "exec \"$0\" {} --seccomp 3 sh -c 'grep -E \"^Seccomp\" /proc/self/status; uname; echo $?' 3< {}",
        FS.join(" "),
        prog.display()
    );
    let run = |program: &str| {
        Command::new("sh")
            .args(["-c", &line, program])
            .output()
            .unwrap()
    };
    let ours = run(example().to_str().unwrap());
    let theirs = run("bwrap");
    assert_eq!(text(&ours), text(&theirs));
    assert!(text(&ours).contains("Seccomp:\t2"), "{}", text(&ours));
    assert!(
        text(&ours).contains("Operation not permitted"),
        "{}",
        text(&ours)
    );
}

/// `--add-seccomp-fd` twice: both filters stacked, in order, as root and
/// unprivileged; and refused with `--seccomp`.
#[test]
fn stacked_seccomp_programs_match_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    require_command!("setpriv");
    let dir = TempDir::new("bwrap-seccomp2").unwrap();
    // uname: EPERM from one, EACCES from the other; which errno the
    // sandbox sees depends on the order of loading.
    std::fs::write(dir.join("a.bpf"), deny_program(63, 1)).unwrap();
    std::fs::write(dir.join("b.bpf"), deny_program(63, 13)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let line = format!(
        "exec $PREFIX \"$0\" {} \"$@\" sh -c 'grep -E \"^Seccomp\" /proc/self/status; uname; echo $?' \
         3< {a} 4< {b} 5< {a}",
        FS.join(" "),
        a = dir.join("a.bpf").display(),
        b = dir.join("b.bpf").display(),
    );
    for prefix in ["", "setpriv --reuid 1000 --regid 1000 --clear-groups"] {
        for opts in [
            &["--add-seccomp-fd", "3", "--add-seccomp-fd", "4"][..],
            &["--add-seccomp-fd", "4", "--add-seccomp-fd", "3"][..],
            &["--seccomp", "3", "--add-seccomp-fd", "4"][..],
        ] {
            let run = |program: &str| {
                Command::new("sh")
                    .env("PREFIX", prefix)
                    .args(["-c", &line, program])
                    .args(opts)
                    .output()
                    .unwrap()
            };
            let ours = run(example().to_str().unwrap());
            let theirs = run("bwrap");
            assert_eq!(
                ours.status.code(),
                theirs.status.code(),
                "{prefix} {opts:?}"
            );
            if theirs.status.success() {
                assert_eq!(text(&ours), text(&theirs), "{prefix} {opts:?}");
                assert!(
                    text(&ours).contains("Seccomp_filters:\t2"),
                    "{}",
                    text(&ours)
                );
            }
        }
    }
}

#[test]
fn json_status_and_info_fds_have_bubblewraps_shape() {
    require_root!();
    require_command!("bwrap");
    let line = format!(
        "exec \"$0\" {} --json-status-fd 3 --info-fd 4 sh -c 'exit 5' 3> \"$1/status\" 4> \"$1/info\"",
        FS.join(" ")
    );
    let shape = |s: String| {
        s.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect::<String>()
            .replace("99999", "9")
            .replace("9999", "9")
            .replace("999", "9")
            .replace("99", "9")
    };
    let mut seen = Vec::new();
    for program in [example().to_string_lossy().into_owned(), "bwrap".to_owned()] {
        let dir = TempDir::new("bwrap-json").unwrap();
        let out = Command::new("sh")
            .args(["-c", &line, &program])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{program}: {out:?}");
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let info = std::fs::read_to_string(dir.join("info")).unwrap();
        seen.push((shape(status), shape(info)));
    }
    assert_eq!(seen[0], seen[1]);
}

/// The filesystem operations in command-line order on the tmpfs root:
/// `--dir`, `--symlink`, `--perms`, `--chmod`, `--file`, `--bind-data`,
/// `--ro-bind-data`, `--tmpfs` with a `--dir` inside it, `--remount-ro`,
/// `--dev` at another destination, the read-only parts of a new /proc:
/// same tree, modes and mount table as bubblewrap, as root and
/// unprivileged.
#[test]
fn filesystem_operations_in_order_match_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    require_command!("setpriv");
    let dir = TempDir::new("bwrap-ops").unwrap();
    std::fs::write(dir.join("data"), b"hello from fd\n").unwrap();
    let view = "ls -a / /d2 /t; \
        stat -c '%n %F %a %s %h' / /x /x/y /z /f /g /h /t /t/in /d2/shm /d2/null /d2/ptmx /d2/fd; \
        cat /f /g /h; touch /h 2>/dev/null || echo h read-only; \
        touch /t/in/w && echo t writable; touch /t/in/w 2>/dev/null; \
        cut -d' ' -f5,6 /proc/self/mountinfo";
    let line = format!(
        "exec $PREFIX \"$0\" {} --dev /d2 --dir /x/y --perms 0700 --dir /z --chmod 0711 /x \
         --file 3 /f --bind-data 4 /g --perms 0640 --ro-bind-data 5 /h \
         --tmpfs /t --dir /t/in --remount-ro /usr \"$@\" sh -c \"$VIEW\" \
         3< {data} 4< {data} 5< {data}",
        FS.join(" "),
        data = dir.join("data").display()
    );
    let setpriv = "setpriv --reuid 1000 --regid 1000 --clear-groups";
    for prefix in ["", setpriv] {
        for ns in [
            "--unshare-all",
            "--unshare-user --unshare-pid",
            "--unshare-net",
        ] {
            let run = |program: &str| {
                let mut c = Command::new("sh");
                c.env("VIEW", view)
                    .env("PREFIX", prefix)
                    .arg("-c")
                    .arg(&line)
                    .arg(program)
                    .args(ns.split(' '))
                    .current_dir("/");
                c.output().unwrap()
            };
            let ours = run(example().to_str().unwrap());
            let theirs = run("bwrap");
            let ours_text = text(&ours);
            let theirs_text = text(&theirs);
            assert_eq!(ours_text, theirs_text, "{prefix} {ns}");
            assert_eq!(ours.status.code(), theirs.status.code(), "{prefix} {ns}");
            assert!(ours_text.contains("h read-only"), "{ours_text}");
            assert!(ours_text.contains("hello from fd"), "{ours_text}");
            // --bind-data binds an unlinked file, as bubblewrap's.
            assert!(
                ours_text.contains("/g regular file 600 14 0\n"),
                "{ours_text}"
            );
        }
    }
}

/// In a new pid namespace the command is pid 2 under bubblewrap's init
/// (pid 1, named bwrap) unless `--as-pid-1`; exit statuses, deaths by
/// signal and exec failures come out the same, as root and unprivileged.
#[test]
fn the_init_process_matches_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    require_command!("setpriv");
    let setpriv = [
        "setpriv",
        "--reuid",
        "1000",
        "--regid",
        "1000",
        "--clear-groups",
    ];
    for prefix in [&[][..], &setpriv[..]] {
        for pid in [&["--unshare-pid"][..], &["--unshare-pid", "--as-pid-1"][..]] {
            for cmd in [
                &["sh", "-c", "echo $$; cat /proc/1/comm; exit 7"][..],
                &["sh", "-c", "kill -TERM $$"][..],
                &["sh", "-c", "kill -KILL $$"][..],
                &["sh", "-c", "sleep 1 & exit 4"][..],
                &["/nonexistent"][..],
            ] {
                assert_same(prefix, &args(&[FS, pid, cmd]));
            }
        }
    }
}

/// `--userns-block-fd` with `--info-fd`, unprivileged: the caller reads
/// the child's pid, writes its id maps, then lets it go; the sandbox runs
/// with those maps. Without `--info-fd` it is refused, as bubblewrap does.
#[test]
fn the_caller_maps_ids_with_userns_block_fd_like_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    require_command!("setpriv");
    let script = format!(
        "cd \"$1\" && mkfifo info block || exit 9; \
         \"$0\" {} --unshare-user --unshare-pid --info-fd 3 --userns-block-fd 4 \
            sh -c 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map' 4<block 3>info & \
         exec 5>block; \
         while read -r l; do case $l in *child-pid*) pid=${{l##*: }}; pid=${{pid%,}};; esac; \
           [ \"$l\" = '}}' ] && break; done < info; \
         echo '0 1000 1' > /proc/$pid/uid_map; echo deny > /proc/$pid/setgroups; \
         echo '0 1000 1' > /proc/$pid/gid_map; \
         echo go >&5; exec 5>&-; wait $!",
        FS.join(" ")
    );
    let mut seen = Vec::new();
    // Absolute: the script changes directory before running it.
    let ours = std::fs::canonicalize(example()).unwrap();
    for program in [ours.to_string_lossy().into_owned(), "bwrap".to_owned()] {
        let dir = TempDir::new("bwrap-userns-block").unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
            .args(["sh", "-c", &script, &program])
            .arg(dir.path())
            .output()
            .unwrap();
        seen.push((text(&out), out.status.code()));
    }
    assert_eq!(seen[0], seen[1]);
    assert!(seen[0].0.starts_with("0\n0\n"), "{:?}", seen[0]);
    let (ours, theirs) = both(
        &[],
        &args(&[FS, &["--unshare-user", "--userns-block-fd", "4", "true"]]),
    );
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(ours.status.code(), Some(1));
}

/// Whether another process holds a conflicting POSIX lock on `path`.
fn write_lock_conflicts(path: &std::path::Path) -> bool {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: F_GETLK on an open file with a zeroed flock.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETLK, &raw mut lock) };
    assert_eq!(rc, 0);
    lock.l_type != libc::F_UNLCK as libc::c_short
}

/// `--lock-file`: while the sandbox runs, its init holds a read lock on the
/// file, as bubblewrap's (also without a pid namespace, where the init is
/// the command's parent, and through the start gate of `--info-fd`);
/// after it exits the lock is gone. With `--as-pid-1` it is refused.
#[test]
fn lock_file_is_held_while_the_sandbox_runs_like_bubblewrap() {
    use std::io::{BufRead, Write};
    require_root!();
    require_command!("bwrap");
    let dir = TempDir::new("bwrap-lock").unwrap();
    let file = dir.join("lockme");
    std::fs::write(&file, b"").unwrap();
    let lock = [
        "--bind",
        file.to_str().unwrap(),
        "/lockme",
        "--lock-file",
        "/lockme",
    ];
    for pid in [
        &["--unshare-pid"][..],
        &[][..],
        &["--unshare-pid", "--info-fd", "2"][..],
    ] {
        for program in [example(), PathBuf::from("bwrap")] {
            let mut child = Command::new(&program)
                .args(FS)
                .args(pid)
                .args(lock)
                .args(["sh", "-c", "echo ready; cat /proc/$PPID/comm; read x"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, "ready\n", "{program:?} {pid:?}");
            line.clear();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, "bwrap\n", "{program:?} {pid:?}: the parent");
            assert!(
                write_lock_conflicts(&file),
                "{program:?} {pid:?}: no lock held"
            );
            child.stdin.take().unwrap().write_all(b"\n").unwrap();
            assert!(child.wait().unwrap().success(), "{program:?} {pid:?}");
            // Ours: the init is gone once the example has its status.
            // (bwrap's outer process may exit before its init does: not
            // checked.)
            if program != Path::new("bwrap") {
                assert!(!write_lock_conflicts(&file), "{program:?}: lock left");
            }
        }
    }
    let (ours, theirs) = both(
        &[],
        &args(&[FS, &["--unshare-pid", "--as-pid-1"], &lock, &["true"]]),
    );
    assert_eq!(text(&ours), text(&theirs));
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
    let (ours, theirs) = both(&[], &args(&[FS, &["--as-pid-1", "true"]]));
    assert_eq!(text(&ours), text(&theirs));
    assert_eq!(ours.status.code(), theirs.status.code());
}
