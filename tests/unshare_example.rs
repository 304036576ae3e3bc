//! `examples/unshare.rs` against util-linux `unshare`: same exit status,
//! same output, same effects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dunnage::namespaces::{Kind, NamespaceId, release};
use dunnage_testsupport::{TempDir, example_binary, require_command, require_root, unique_name};

/// The example binary, built for this test's profile.
fn example() -> PathBuf {
    example_binary("unshare")
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

/// Run the same arguments through both and return (ours, util-linux's).
fn both(args: &[&str]) -> (Output, Output) {
    (run(&example(), args), run(Path::new("unshare"), args))
}

fn same(args: &[&str]) -> Output {
    let (ours, theirs) = both(args);
    assert_eq!(ours.status, theirs.status, "exit status of {args:?}");
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
        "stdout of {args:?}"
    );
    ours
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pid_namespace_with_fresh_proc_matches_util_linux() {
    require_root!();
    require_command!("unshare");
    let out = same(&[
        "--fork",
        "--pid",
        "--mount-proc",
        "sh",
        "-c",
        "echo $$; cat /proc/1/comm",
    ]);
    assert_eq!(stdout(&out), "1\nsh\n");
    // Without --fork the program is not PID 1, its first child is.
    let out = same(&["-p", "sh", "-c", "sh -c 'echo $$'"]);
    assert_eq!(stdout(&out), "1\n");
    let out = same(&[
        "-fp",
        "--mount-proc",
        "sh",
        "-c",
        "ps -e -o comm= | head -1",
    ]);
    assert_eq!(stdout(&out), "sh\n");
}

#[test]
fn the_readme_main_job_runs() {
    require_root!();
    let out = run(
        &example(),
        &[
            "--fork",
            "--pid",
            "--mount-proc",
            "--uts",
            "sh",
            "-c",
            "hostname dunnage-demo; hostname; ps -o pid,comm",
        ],
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with("dunnage-demo\n    PID COMMAND\n      1 sh\n"),
        "{text}"
    );
}

#[test]
fn uts_ipc_net_cgroup_and_time_match_util_linux() {
    require_root!();
    require_command!("unshare");
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let name = unique_name("example");
    let script = format!("hostname {name}; hostname");
    let out = same(&["--uts", "sh", "-c", &script]);
    assert_eq!(stdout(&out), format!("{name}\n"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
    let out = same(&[
        "--net",
        "sh",
        "-c",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    ]);
    assert_eq!(stdout(&out), "lo\n");
    same(&["--ipc", "sh", "-c", "ipcs -q | grep -c 0x || true"]);
    let out = same(&["--cgroup", "grep", "-c", ":/$", "/proc/self/cgroup"]);
    assert!(!stdout(&out).starts_with('0'));
    let out = same(&[
        "--time",
        "--boottime",
        "86400",
        "--fork",
        "sh",
        "-c",
        "test $(cut -d. -f1 /proc/uptime) -ge 86400 && echo shifted",
    ]);
    assert_eq!(stdout(&out), "shifted\n");
}

#[test]
fn exit_status_and_signals_match_util_linux() {
    require_command!("unshare");
    let out = same(&["--fork", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = same(&["--fork", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));
    let out = same(&["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn bad_options_exit_1_with_one_line_like_util_linux() {
    require_command!("unshare");
    for args in [
        &["--bogus"][..],
        &["-z"],
        &["--root"],
        &["-R"],
        &["--propagation", "sideways", "true"],
        &["--setgroups", "maybe", "true"],
        &["--map-user=dunnage-test-no-such-user", "true"],
        &["--fork=yes", "true"],
    ] {
        let (ours, theirs) = both(args);
        assert_eq!(ours.status.code(), Some(1), "{args:?}");
        assert_eq!(ours.status, theirs.status, "{args:?}");
        let ours = String::from_utf8_lossy(&ours.stderr).into_owned();
        let theirs = String::from_utf8_lossy(&theirs.stderr).into_owned();
        assert_eq!(ours.lines().count(), 1, "{ours}");
        assert!(ours.starts_with("unshare: "), "{ours}");
        if args[0].starts_with("--bogus")
            || args[0] == "-z"
            || args[0] == "--root"
            || args[0] == "-R"
        {
            assert_eq!(ours.lines().next(), theirs.lines().next(), "{args:?}");
        }
    }
}

#[test]
fn a_missing_program_exits_127_like_util_linux() {
    require_command!("unshare");
    for args in [
        &["dunnage-test-nosuch"][..],
        &["--fork", "/dunnage-test/nosuch"],
    ] {
        let (ours, theirs) = both(args);
        assert_eq!(ours.status.code(), Some(127), "{args:?}");
        assert_eq!(ours.stderr, theirs.stderr, "{args:?}");
    }
}

#[test]
fn malformed_or_overlapping_maps_exit_1_before_anything_starts() {
    require_root!();
    for args in [
        &["--map-users=100000,0", "true"][..],
        &["--map-users=100000,0,0", "--fork", "true"],
        &[
            "--map-users=100000,0,10",
            "--map-users=200000,5,10",
            "--fork",
            "true",
        ],
        &[
            "--map-users=100000,0,10",
            "--map-users=100005,50,10",
            "--fork",
            "true",
        ],
    ] {
        let out = run(&example(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("map"), "{args:?}: {err}");
    }
}

#[test]
fn map_root_user_matches_util_linux_as_root() {
    require_root!();
    require_command!("unshare");
    let out = same(&["-r", "sh", "-c", "id -u; id -g; cat /proc/self/setgroups"]);
    assert_eq!(stdout(&out), "0\n0\ndeny\n");
    let out = same(&[
        "--map-user=1000",
        "--map-group=1000",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(stdout(&out), "1000\n1000\n");
}

#[test]
fn as_an_unprivileged_user_map_root_user_matches_util_linux() {
    require_root!();
    require_command!("unshare");
    require_command!("setpriv");
    let dir = TempDir::new("example-unpriv").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("unshare");
    std::fs::copy(example(), &exe).unwrap();
    let drop = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    let script = "id -u; echo $$; hostname dunnage-test-u; hostname";
    let args = [
        "-r",
        "--fork",
        "--pid",
        "--uts",
        "--mount-proc",
        "sh",
        "-c",
        script,
    ];
    let mut ours = run_retrying_busy(Command::new("setpriv").args(drop).arg(&exe).args(args));
    let theirs = Command::new("setpriv")
        .args(drop)
        .arg("unshare")
        .args(args)
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert_eq!(stdout(&ours), stdout(&theirs));
    assert_eq!(stdout(&ours), "0\n1\ndunnage-test-u\n");
    // Without a user namespace both are refused; ours says why.
    ours = run_retrying_busy(
        Command::new("setpriv")
            .args(drop)
            .arg(&exe)
            .args(["--net", "true"]),
    );
    assert_eq!(ours.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&ours.stderr).contains("CAP_SYS_ADMIN"));
}

/// A copy just written may be "text busy" while a process forked by
/// another test thread still holds the writer's fd.
fn run_retrying_busy(cmd: &mut Command) -> Output {
    for _ in 0..50 {
        let out = cmd.output().unwrap();
        if !String::from_utf8_lossy(&out.stderr).contains("busy") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("still text busy");
}

#[test]
fn persisted_namespaces_outlive_the_program_with_and_without_fork() {
    require_root!();
    let dir = TempDir::new("example-persist").unwrap();
    for fork in [true, false] {
        let net = dir.join(format!("net-{fork}"));
        let uts = dir.join(format!("uts-{fork}"));
        let mut args = vec![
            format!("--net={}", net.display()),
            format!("--uts={}", uts.display()),
        ];
        if fork {
            args.push("--fork".into());
        }
        args.extend(["sh", "-c", "hostname dunnage-test-persisted"].map(String::from));
        let out = Command::new(example()).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(NamespaceId::of_file(&net).unwrap().kind, Kind::Net);
        assert_ne!(
            NamespaceId::of_file(&net).unwrap(),
            NamespaceId::of(std::process::id() as i32, Kind::Net).unwrap()
        );
        if Path::new("/usr/bin/nsenter").exists() {
            let out = Command::new("nsenter")
                .arg(format!("--uts={}", uts.display()))
                .arg("hostname")
                .output()
                .unwrap();
            assert_eq!(stdout(&out), "dunnage-test-persisted\n");
        }
        release(&net).unwrap();
        release(&uts).unwrap();
    }
    assert!(dunnage_testsupport::mounts_below(dir.path()).is_empty());
}

#[test]
fn kill_child_kills_the_program_when_unshare_dies() {
    require_root!();
    let mut ours = Command::new(example())
        .args(["--kill-child", "--pid", "--mount-proc", "sleep", "60"])
        .spawn()
        .unwrap();
    let children = format!("/proc/{}/task/{}/children", ours.id(), ours.id());
    let mut child = String::new();
    for _ in 0..200 {
        child = std::fs::read_to_string(&children).unwrap_or_default();
        if !child.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let child: i32 = child.trim().parse().unwrap();
    ours.kill().unwrap();
    ours.wait().unwrap();
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{child}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the child {child} survived");
}

#[test]
fn root_and_wd_work_like_util_linux() {
    require_root!();
    require_command!("unshare");
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        dunnage_testsupport::skip("root test", "needs busybox-static");
        return;
    };
    let dir = TempDir::new("example-root").unwrap();
    for d in ["bin", "proc", "work"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let root = dir.path().to_str().unwrap();
    let args = [
        "--root",
        root,
        "--wd",
        "/work",
        "-fp",
        "--mount-proc",
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox pwd; echo $$",
    ];
    let mut out = same(&args);
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        out = same(&args);
    }
    assert_eq!(stdout(&out), "/work\n1\n");
}
