//! The `Command` side: stdio, waiting, killing, reported failures, fds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use dunnage_namespaces::{Command, Error, Kind, Stdio};
use dunnage_testsupport::{TempDir, require_root};

#[test]
fn piped_stdin_and_stdout_work_like_std() {
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "HELLO\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn output_collects_stdout_stderr_and_the_exit_code() {
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn env_cwd_and_a_file_as_stdout() {
    let dir = TempDir::new("env").unwrap();
    let file = std::fs::File::create(dir.join("out")).unwrap();
    let status = Command::new("/bin/sh")
        .args(["-c", "echo \"$A $B\"; pwd; echo \"${HOME-unset}\""])
        .env_clear()
        .env("A", "x")
        .envs([("B", "y"), ("HOME", "/h")])
        .env_remove("HOME")
        .current_dir(dir.path())
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(text, format!("x y\n{}\nunset\n", dir.path().display()));
}

#[test]
fn try_wait_then_kill_then_wait() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(child.try_wait().unwrap(), Some(status));
    child.kill().unwrap(); // already reaped: nothing to do
}

#[test]
fn a_missing_or_unexecutable_program_is_an_exec_error() {
    let e = Command::new("dunnage-test-no-such-program")
        .spawn()
        .unwrap_err();
    match e {
        Error::Exec { program, source } => {
            assert_eq!(program, "dunnage-test-no-such-program");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        e => panic!("{e}"),
    }
    let dir = TempDir::new("noexec").unwrap();
    let script = dir.join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Command::new(&script).spawn().unwrap_err();
    assert!(
        matches!(&e, Error::Exec { source, .. } if source.raw_os_error() == Some(libc::EACCES)),
        "{e}"
    );
}

#[test]
fn a_failing_setup_step_is_reported_with_its_index_and_errno() {
    let e = Command::new("true")
        .current_dir("/dunnage-test-no-such-dir")
        .spawn()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Setup { name: "chdir", source, .. } if source.raw_os_error() == Some(libc::ENOENT)),
        "{e}"
    );
    assert!(e.to_string().contains("chdir"), "{e}");
}

#[test]
fn status_reports_exec_and_setup_failures_after_the_exit() {
    // status() reads the child's report only after reaping it.
    let e = Command::new("dunnage-test-no-such-program")
        .status()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT)),
        "{e}"
    );
    let e = Command::new("true")
        .current_dir("/dunnage-test-no-such-dir")
        .status()
        .unwrap_err();
    assert!(matches!(&e, Error::Setup { name: "chdir", .. }), "{e}");
    // A program that itself exits 127 is a status, not an error.
    let status = Command::new("sh")
        .args(["-c", "exit 127"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(127));
}

#[test]
fn requests_that_cannot_work_are_refused_before_clone() {
    type Setup = fn(&mut Command) -> &mut Command;
    let cases: [(Setup, &str); 4] = [
        (|c| c.hostname("x"), "hostname without uts"),
        (|c| c.loopback_up(true), "loopback without net"),
        (
            |c| c.time_offset(dunnage_namespaces::Clock::Boottime, 1),
            "time offsets without time",
        ),
        (|c| c.arg("a\0b"), "NUL in an argument"),
    ];
    for (setup, why) in cases {
        let e = setup(&mut Command::new("true")).spawn().unwrap_err();
        assert!(
            matches!(e, Error::NeedsNamespace { .. } | Error::NulByte { .. }),
            "{why}: {e}"
        );
    }
}

#[test]
fn no_parent_fd_leaks_into_the_program() {
    let dir = TempDir::new("fdleak").unwrap();
    let secret = dir.join("dunnage-secret");
    let file = std::fs::File::create(&secret).unwrap();
    // An inheritable fd, as a careless host program might hold.
    let leaky = unsafe { libc::dup(file.as_raw_fd()) };
    assert!(leaky > 2);
    let out = Command::new("sh")
        .args(["-c", "ls -l /proc/self/fd/"])
        .output()
        .unwrap();
    unsafe { libc::close(leaky) };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("dunnage-secret"), "{text}");
}

#[test]
fn spawning_from_many_threads_while_others_allocate_does_not_deadlock() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
                    std::hint::black_box(v);
                }
            })
        })
        .collect();
    let spawners: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..15 {
                    assert!(Command::new("true").status().unwrap().success());
                }
            })
        })
        .collect();
    for t in spawners {
        t.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in churn {
        t.join().unwrap();
    }
}

#[test]
fn root_changes_the_filesystem_root_and_proc_is_mounted_inside_it() {
    require_root!();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(busybox) = busybox else {
        dunnage_testsupport::skip("root test", "needs busybox-static");
        return;
    };
    let dir = TempDir::new("root").unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    std::fs::create_dir_all(dir.join("work")).unwrap();
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let mut cmd = Command::new("/bin/busybox");
    cmd.args([
        "sh",
        "-c",
        "/bin/busybox pwd; /bin/busybox ls /; /bin/busybox cat /proc/1/cmdline",
    ])
    .namespaces(Kind::Pid | Kind::Mount)
    .root(dir.path())
    .current_dir("/work")
    .mount_proc("/proc");
    let out = retry_text_busy(|| cmd.output());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("/work\nbin\nproc\nwork\n/bin/busybox"),
        "{text}"
    );
    assert!(dunnage_testsupport::mounts_below(dir.path()).is_empty());
}

#[test]
fn the_crate_example_prints_what_it_promises() {
    require_root!();
    let out = Command::new("sh")
        .args(["-c", "hostname; echo $$; cat /proc/1/comm"])
        .namespaces(Kind::Pid | Kind::Mount | Kind::Uts)
        .hostname("sandbox")
        .mount_proc("/proc")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox\n1\nsh\n");
}

/// A file just written may be "text busy" for a moment: a process forked by
/// another test thread can still hold the writer's fd until it executes.
fn retry_text_busy<T>(mut f: impl FnMut() -> Result<T, Error>) -> T {
    for _ in 0..100 {
        match f() {
            Err(Error::Exec { source, .. }) if source.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r.unwrap(),
        }
    }
    panic!("still text busy");
}
