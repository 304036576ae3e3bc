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
fn the_readme_unshare_example_runs() {
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

/// A program that exists but cannot be executed (a symlink loop, a
/// directory) gives util-linux's message and 126, with and without
/// `--fork`, by path and by PATH search.
#[test]
fn an_unexecutable_program_exits_126_like_util_linux() {
    require_command!("unshare");
    let dir = TempDir::new("example-noexec").unwrap();
    let lp = dir.join("loop");
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    std::fs::create_dir(dir.join("adir")).unwrap();
    for program in [lp.clone(), dir.join("adir")] {
        for fork in [false, true] {
            let mut args = Vec::new();
            if fork {
                args.push("--fork");
            }
            args.push(program.to_str().unwrap());
            let (ours, theirs) = both(&args);
            assert_eq!(ours.status.code(), Some(126), "{args:?}");
            assert_eq!(ours.stderr, theirs.stderr, "{args:?}");
        }
    }
    for name in ["loop", "adir"] {
        let run_in_path = |program: &Path| {
            Command::new(program)
                .arg(name)
                .env("PATH", dir.path())
                .output()
                .unwrap()
        };
        let (ours, theirs) = (
            run_in_path(&example()),
            run_in_path(&dunnage_testsupport::find_in_path("unshare").unwrap()),
        );
        assert_eq!(ours.status.code(), Some(126), "{name}");
        assert_eq!(ours.stderr, theirs.stderr, "{name}");
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
    // Hard linked where it can be: a copy can be "text busy" while a
    // parallel test's fork still holds the writer's fd.
    if std::fs::hard_link(busybox, dir.join("bin/busybox")).is_err() {
        std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    }
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
    // Until both ran (a copied busybox may be "text busy" a moment).
    for _ in 0..50 {
        let (ours, theirs) = both(&args);
        if ours.status.success() && theirs.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = same(&args);
    assert_eq!(stdout(&out), "/work\n1\n");
}

/// `mount(2)` for the test's own mounts.
fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let source = CString::new(source).unwrap();
    let target_c = CString::new(target.as_os_str().as_bytes()).unwrap();
    let fstype = CString::new(fstype).unwrap();
    // SAFETY: valid C strings; NULL data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// The mounts below `dir` in a mountinfo text, as (name relative to `dir`,
/// propagation tags with peer group numbers kept).
fn propagation_below(mountinfo: &str, dir: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let rel = Path::new(fields.get(4)?).strip_prefix(dir).ok()?;
            let end = fields.iter().position(|f| *f == "-")?;
            let mut tags: Vec<&str> = fields[6..end].to_vec();
            tags.sort();
            Some((rel.display().to_string(), tags.join(" ")))
        })
        .collect();
    found.sort();
    found
}

/// Peer group numbers replaced by `N`: `shared:12 master:3` -> `shared:N master:N`.
fn without_numbers(tags: &[(String, String)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(m, t)| {
            let t: Vec<String> = t
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| match s.split_once(':') {
                    Some((tag, _)) => format!("{tag}:N"),
                    None => s.to_owned(),
                })
                .collect();
            (m.clone(), t.join(" "))
        })
        .collect()
}

#[test]
fn propagation_modes_match_util_linux_in_mountinfo() {
    require_root!();
    require_command!("unshare");
    // A shared tmpfs, a private one, and a slave bind of the shared one.
    let dir = TempDir::new("example-propagation").unwrap();
    let (shared, private, slave) = (dir.join("shared"), dir.join("private"), dir.join("slave"));
    for d in [&shared, &private, &slave] {
        std::fs::create_dir(d).unwrap();
    }
    let _guards = [&slave, &private, &shared].map(dunnage_testsupport::MountGuard::new);
    mount("dunnage-test", &shared, "tmpfs", 0);
    mount("", &shared, "", libc::MS_SHARED);
    mount("dunnage-test", &private, "tmpfs", 0);
    mount("", &private, "", libc::MS_PRIVATE);
    mount(shared.to_str().unwrap(), &slave, "", libc::MS_BIND);
    mount("", &slave, "", libc::MS_SLAVE);
    let outside = propagation_below(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        dir.path(),
    );
    let table = |s: &str, p: &str, v: &str| {
        vec![
            ("private".to_owned(), p.to_owned()),
            ("shared".to_owned(), s.to_owned()),
            ("slave".to_owned(), v.to_owned()),
        ]
    };
    assert_eq!(without_numbers(&outside), table("shared:N", "", "master:N"));
    let cases: [(&[&str], _); 5] = [
        (&[], table("", "", "")),
        (&["--propagation", "private"], table("", "", "")),
        (
            &["--propagation", "slave"],
            table("master:N", "", "master:N"),
        ),
        (
            &["--propagation", "shared"],
            table("shared:N", "shared:N", "master:N shared:N"),
        ),
        (
            &["--propagation", "unchanged"],
            table("shared:N", "", "master:N"),
        ),
    ];
    for (option, expected) in cases {
        let mut args = vec!["--mount"];
        args.extend(option);
        args.extend(["cat", "/proc/self/mountinfo"]);
        for fork in [false, true] {
            if fork {
                args.insert(0, "--fork");
            }
            let (ours, theirs) = both(&args);
            assert!(
                ours.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&ours.stderr)
            );
            assert!(theirs.status.success(), "{args:?}");
            let ours = propagation_below(&stdout(&ours), dir.path());
            let theirs = propagation_below(&stdout(&theirs), dir.path());
            assert_eq!(without_numbers(&ours), without_numbers(&theirs), "{args:?}");
            assert_eq!(without_numbers(&ours), expected, "{args:?}");
            if option.last() == Some(&"unchanged") {
                // The copies stay in the same peer groups as the originals.
                assert_eq!(ours, outside, "{args:?}");
            }
        }
    }
}

#[test]
fn setgroups_allow_and_deny_match_util_linux() {
    require_root!();
    require_command!("unshare");
    for fork in [&[][..], &["--fork"]] {
        for mode in ["allow", "deny"] {
            let mut args = fork.to_vec();
            args.extend(["--user", "--setgroups", mode, "cat", "/proc/self/setgroups"]);
            let out = same(&args);
            assert_eq!(stdout(&out), format!("{mode}\n"), "{args:?}");
        }
        // Root maps uid 0 and leaves the gid map unwritten, so that
        // setgroups may stay allowed.
        let mut args = fork.to_vec();
        args.extend([
            "--map-user=0",
            "--setgroups",
            "allow",
            "sh",
            "-c",
            "cat /proc/self/setgroups; id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ]);
        let out = same(&args);
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["allow", "0"], "{text}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["0", "0", "1"]
        );
        assert_eq!(lines.len(), 3, "empty gid map: {text}");
    }
    // allow with a mapped group is refused by both, before anything runs.
    let (ours, theirs) = both(&["--setgroups", "allow", "--map-group=0", "true"]);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(ours.status, theirs.status);
    assert_eq!(ours.stderr, theirs.stderr);
}

/// What a run of the example left behind: its output and the pids of any
/// process still alive after it exited (killed and reaped here).
struct Leftovers {
    status: i32,
    stderr: String,
    processes: Vec<i32>,
}

/// Run the example in a forked child of this test that is a child
/// subreaper: every process the example leaves behind is reparented to it
/// (not to init), so that it can be counted. The fork copies only this
/// thread; the child uses glibc's fork-safe malloc and raw syscalls.
fn run_counting_leftovers(args: &[String]) -> Leftovers {
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let exe = CString::new(example().as_os_str().as_bytes()).unwrap();
    let argv_c: Vec<CString> = std::iter::once(exe.clone())
        .chain(args.iter().map(|a| CString::new(a.as_str()).unwrap()))
        .collect();
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (mut report, mut errors) = ([0; 2], [0; 2]);
    // SAFETY: pipe2 fills two-element arrays.
    unsafe {
        assert_eq!(libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(errors.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    // SAFETY: fork; the child only runs the code below and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        dunnage_testsupport::close_fds_except(&mut [report[1], errors[1]]);
        // SAFETY: the forked child: plain syscalls on prepared data.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            let ex = libc::fork();
            if ex == 0 {
                libc::dup2(errors[1], 2);
                libc::execv(exe.as_ptr(), argv.as_ptr());
                libc::_exit(126);
            }
            libc::close(errors[1]);
            let mut status = 0;
            libc::waitpid(ex, &mut status, 0);
            // The kernel reparents the example's orphans to us before its
            // exit is reported: anything it left is our child by now.
            let me = libc::getpid();
            let children_file = format!("/proc/{me}/task/{me}/children");
            let children = || std::fs::read_to_string(&children_file).unwrap_or_default();
            let left = children();
            let text = format!("{} {}", libc::WEXITSTATUS(status), left.trim());
            libc::write(report[1], text.as_ptr().cast(), text.len());
            // Kill and reap until none remain: the children of a killed
            // child are reparented to us in turn.
            let mut left = left;
            while !left.trim().is_empty() {
                for child in left.split_whitespace().filter_map(|c| c.parse().ok()) {
                    libc::kill(child, libc::SIGKILL);
                    libc::waitpid(child, std::ptr::null_mut(), 0);
                }
                left = children();
            }
            libc::_exit(0);
        }
    }
    // SAFETY: the fds are ours; the write ends are closed in this process.
    let (mut report, mut errors) = unsafe {
        libc::close(report[1]);
        libc::close(errors[1]);
        (
            std::fs::File::from_raw_fd(report[0]),
            std::fs::File::from_raw_fd(errors[0]),
        )
    };
    let mut stderr = String::new();
    errors.read_to_string(&mut stderr).unwrap();
    let mut text = String::new();
    report.read_to_string(&mut text).unwrap();
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let mut fields = text.split_whitespace().map(|f| f.parse::<i32>().unwrap());
    Leftovers {
        status: fields.next().unwrap(),
        stderr,
        processes: fields.collect(),
    }
}

#[test]
fn bad_input_leaves_no_process_mount_or_file_behind() {
    require_root!();
    let dir = TempDir::new("example-bad").unwrap();
    let d = dir.path().display().to_string();
    let missing = format!("{d}/nonexistent");
    let cases: Vec<(i32, Vec<String>)> = [
        (1, vec!["--net=$/a", "--bogus", "true"]),
        (1, vec!["--net=$/b", "--fork", "-z", "true"]),
        (1, vec!["--net=$/c", "--map-users=1,2", "true"]),
        (
            1,
            vec![
                "--net=$/d",
                "--map-users=100000,0,10",
                "--map-users=200000,5,10",
                "true",
            ],
        ),
        (
            1,
            vec![
                "--net=$/e",
                "--fork",
                "--map-users=100000,0,10",
                "--map-users=200000,5,10",
                "true",
            ],
        ),
        (127, vec!["--net=$/f", "--uts=$/g", "dunnage-test-nosuch"]),
        (
            127,
            vec![
                "--net=$/h",
                "--fork",
                "--pid",
                "--mount-proc",
                "dunnage-test-nosuch",
            ],
        ),
        (1, vec!["--net=$/i", "--mount", "--root", "@", "true"]),
        (
            1,
            vec![
                "--net=$/j",
                "--fork",
                "--pid",
                "--mount-proc",
                "--root",
                "@",
                "true",
            ],
        ),
        (1, vec!["--net=$/k", "--wd", "@", "true"]),
    ]
    .into_iter()
    .map(|(code, args)| {
        let args = args
            .iter()
            .map(|a| a.replace('$', &d).replace('@', &missing))
            .collect();
        (code, args)
    })
    .collect();
    for (code, args) in cases {
        let left = run_counting_leftovers(&args);
        assert_eq!(left.status, code, "{args:?}: {}", left.stderr);
        assert_eq!(left.stderr.lines().count(), 1, "{args:?}: {}", left.stderr);
        assert!(
            left.stderr.starts_with("unshare: "),
            "{args:?}: {}",
            left.stderr
        );
        assert!(
            left.processes.is_empty(),
            "{args:?} left {:?}",
            left.processes
        );
        assert!(
            dunnage_testsupport::mounts_below(dir.path()).is_empty(),
            "{args:?}"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(files.is_empty(), "{args:?} left {files:?}");
    }
}
