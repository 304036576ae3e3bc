//! `examples/bwrap.rs` against bubblewrap: same exit statuses, same view
//! from inside (ids, capabilities, no_new_privs, hostname, root and /dev
//! listings, which namespaces are new), as root and as an unprivileged
//! user with a user namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
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
    ls /; ls /dev | grep -v -e '^core$' -e '^shm$'; pwd; \
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

#[test]
fn a_seccomp_program_from_an_fd_is_loaded_like_bubblewrap() {
    require_root!();
    require_command!("bwrap");
    // A classic BPF program: EPERM for uname(2) on x86_64, allow the rest.
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let insns: [(u16, u8, u8, u32); 7] = [
        (0x20, 0, 0, 4),                 // ld arch
        (0x15, 1, 0, AUDIT_ARCH_X86_64), // jeq x86_64
        (0x06, 0, 0, 0x7fff_0000),       // ret allow (other arches)
        (0x20, 0, 0, 0),                 // ld nr
        (0x15, 0, 1, 63),                // jeq uname
        (0x06, 0, 0, 0x0005_0001),       // ret errno(EPERM)
        (0x06, 0, 0, 0x7fff_0000),       // ret allow
    ];
    let mut bytes = Vec::new();
    for (code, jt, jf, k) in insns {
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend([jt, jf]);
        bytes.extend_from_slice(&k.to_ne_bytes());
    }
    let dir = TempDir::new("bwrap-seccomp").unwrap();
    let prog = dir.join("prog.bpf");
    std::fs::write(&prog, &bytes).unwrap();
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
