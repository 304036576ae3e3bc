//! Issue 14's namespaces items: id switches from many threads, the sync
//! pipe, stdin of a closure, `output` keeping settings, the step plan, the
//! cgroup and hook seams, `Child::from_pidfd`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dunnage_namespaces::{Child, Command, Error, IdMap, Kind, Stdio, Step, pidfd_open};
use dunnage_testsupport::{CgroupGuard, TempDir, require_root, unique_name};

/// Run `f` in a forked child of this (multithreaded) test process and
/// return what it returns (or "PANIC"). glibc's malloc is fork-safe.
fn in_forked_child(f: impl FnOnce() -> String) -> String {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        dunnage_testsupport::close_fds_except(&mut [fds[1]]);
        let text = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| "PANIC".to_owned());
        unsafe {
            libc::write(fds[1], text.as_ptr().cast(), text.len());
            libc::_exit(0);
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut text = String::new();
    unsafe { std::fs::File::from_raw_fd(fds[0]) }
        .read_to_string(&mut text)
        .unwrap();
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    text
}

/// Wait (at most a generous minute, so a regression fails instead of
/// hanging the suite) until process `pid`, not our child, has exited.
fn wait_gone(pid: i32) -> bool {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(Error::NoSuchProcess(_)) => return true,
        Err(e) => panic!("pidfd_open {pid}: {e}"),
    };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, 60_000) };
    n == 1
}

#[test]
fn threads_switching_ids_in_user_namespaces_complete() {
    // glibc's setgroups/setresgid/setresuid would wait in the child for the
    // parent's other threads; the child makes raw syscalls instead. As
    // root: a 65536-id range and a switch to 1000; unprivileged: the
    // caller's own ids mapped to 0 and a switch to 0.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let root = dunnage_testsupport::privileged();
    let spawners: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let mut cmd = Command::new("/bin/true");
                    cmd.namespaces(Kind::User | Kind::Pid | Kind::Mount);
                    if root {
                        cmd.uid_map([IdMap::new(0, 100_000, 65536)])
                            .gid_map([IdMap::new(0, 100_000, 65536)])
                            .uid(1000)
                            .gid(1000);
                    } else {
                        cmd.uid_map([IdMap::new(0, euid, 1)])
                            .gid_map([IdMap::new(0, egid, 1)])
                            .uid(0)
                            .gid(0);
                    }
                    let status = cmd.status().unwrap();
                    assert!(status.success(), "{status:?}");
                }
            })
        })
        .collect();
    for t in spawners {
        t.join().unwrap();
    }
}

#[test]
fn a_child_whose_parent_dies_before_the_go_byte_exits() {
    let dir = TempDir::new("sync").unwrap();
    let pidfile = dir.join("pid");
    let pidfile2 = pidfile.clone();
    let text = in_forked_child(move || {
        // The hook runs in this (forked) parent while the child waits for
        // its go byte; the parent dies there, without writing it.
        let r = Command::new("sleep")
            .arg("1000")
            .before_start(move |pid| {
                std::fs::write(&pidfile2, pid.to_string()).unwrap();
                unsafe { libc::_exit(0) }
            })
            .spawn();
        format!("spawn returned: {:?}", r.map(|c| c.id()))
    });
    assert_eq!(text, "", "the parent was to die in the hook");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(
        wait_gone(pid),
        "the child {pid} still waits for a parent that is gone"
    );
}

#[test]
fn a_closure_reading_piped_stdin_sees_end_of_file() {
    let mut child = Command::function(|| {
        let mut buf = [0u8; 64];
        let mut total = 0;
        loop {
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return if n == 0 { total } else { 100 };
            }
            total += n as i32;
        }
    })
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"abc").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn output_keeps_the_stdio_settings_when_it_fails() {
    let dir = TempDir::new("output").unwrap();
    std::fs::write(dir.join("in"), "hello\n").unwrap();
    let input = dir.join("in");
    let text = in_forked_child(move || {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read x && [ \"$x\" = hello ]"])
            .stdin(std::fs::File::open(&input).unwrap());
        // No descriptor can be duplicated: output fails early.
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
        let low = libc::rlimit {
            rlim_cur: 3,
            rlim_max: old.rlim_max,
        };
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
        let failed = cmd.output().is_err();
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
        // The file is still the command's stdin.
        let status = cmd.status().unwrap();
        format!("{failed} {}", status.success())
    });
    assert_eq!(text, "true true");
}

#[test]
fn the_plan_lists_the_steps_and_a_failure_names_its_index() {
    let mut cmd = Command::new("true");
    cmd.namespaces(Kind::Uts)
        .hostname("planned")
        .current_dir("/dunnage-test-no-such-dir");
    let plan = cmd.plan().unwrap();
    let names: Vec<&str> = plan.iter().map(Step::name).collect();
    let host = names.iter().position(|n| *n == "sethostname").unwrap();
    let chdir = names.iter().position(|n| *n == "chdir").unwrap();
    assert!(host < chdir, "{names:?}");
    assert!(
        plan.iter()
            .any(|s| s.to_string() == "chdir /dunnage-test-no-such-dir"),
        "{plan:?}"
    );
    assert!(
        matches!(plan.last(), Some(Step::CloseFrom { .. })),
        "{plan:?}"
    );
    // Bad input fails in plan() too, before anything is made.
    let e = Command::new("true").hostname("x").plan().unwrap_err();
    assert!(
        matches!(
            e,
            Error::NeedsNamespace {
                kind: Kind::Uts,
                ..
            }
        ),
        "{e}"
    );
    // An unprivileged run fails at sethostname; root at chdir. Either way
    // the index is that of the failing step in the plan.
    let e = cmd.spawn().unwrap_err();
    match e {
        Error::Setup {
            index,
            name,
            ref source,
            ..
        } => {
            assert_eq!(plan[index].name(), name);
            assert!(source.raw_os_error().is_some(), "{e}");
        }
        Error::Permission { .. } => {}
        e => panic!("{e}"),
    }
}

/// The cgroup2 mount of this host (`/sys/fs/cgroup` on pure v2,
/// `/sys/fs/cgroup/unified` on hybrid).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next() != Some("cgroup2") {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Our own cgroup in the v2 hierarchy (`0::/...`).
fn own_cgroup2() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
}

#[test]
fn into_cgroup_starts_the_child_in_that_cgroup() {
    require_root!();
    let Some(root) = cgroup2_root() else {
        dunnage_testsupport::skip("into_cgroup", "no cgroup2 mount");
        return;
    };
    // Next to our own cgroup, so that no "no internal processes" rule of a
    // domain with controllers gets in the way.
    let parent = own_cgroup2()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let name = unique_name("into");
    let dir = root.join(&parent).join(&name);
    let mut guard = CgroupGuard::new();
    std::fs::create_dir(&dir).unwrap();
    guard.add(&dir);
    let fd: OwnedFd = std::fs::File::open(&dir).unwrap().into();
    let out = Command::new("cat")
        .arg("/proc/self/cgroup")
        .into_cgroup(fd)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("0::/{}", Path::new(&parent).join(&name).display());
    let want = want.replace("0:://", "0::/");
    assert!(text.lines().any(|l| l == want), "want {want} in:\n{text}");
}

#[test]
fn before_start_runs_while_the_child_waits_and_its_error_fails_the_spawn() {
    let dir = TempDir::new("hook").unwrap();
    let file = dir.join("written-by-hook");
    let file2 = file.clone();
    let seen = Arc::new(Mutex::new(0));
    let seen2 = seen.clone();
    let out = Command::new("cat")
        .arg(&file)
        .before_start(move |pid| {
            *seen2.lock().unwrap() = pid;
            std::fs::write(&file2, "from the hook\n")
        })
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"from the hook\n");
    assert!(*seen.lock().unwrap() > 0);

    let pid = Arc::new(Mutex::new(0));
    let pid2 = pid.clone();
    let e = Command::new("sleep")
        .arg("1000")
        .before_start(move |p| {
            *pid2.lock().unwrap() = p;
            Err(std::io::Error::other("hook refuses"))
        })
        .spawn()
        .unwrap_err();
    assert!(e.to_string().contains("hook refuses"), "{e}");
    // The child was killed and reaped.
    let p = *pid.lock().unwrap();
    assert!(p > 0);
    assert!(!Path::new(&format!("/proc/{p}")).exists() || wait_gone(p));
}

#[test]
fn a_child_built_from_a_pidfd_can_be_signalled_and_reaped() {
    #[allow(clippy::zombie_processes)] // reaped through the pidfd handle
    let std_child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = std_child.id() as i32;
    let mut child = Child::from_pidfd(pidfd_open(pid).unwrap()).unwrap();
    assert_eq!(child.id(), pid);
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // A descriptor that is not a pidfd is a typed error.
    let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let e = Child::from_pidfd(file).unwrap_err();
    assert!(matches!(e, Error::NotAPidfd { .. }), "{e}");
}

/// Wait (at most a generous minute) until `path` exists.
fn wait_for_file(path: &Path) -> bool {
    for _ in 0..6000 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn the_creating_process_may_exit_while_another_holds_the_start_gate() {
    // runc's create/start: the creating process hands the gate to a holder
    // (here a `sleep` with the gate as its stdout), records the pids and
    // exits; a later process releases the gate through the holder's
    // descriptor. When the holder goes away instead, the child ends.
    let dir = TempDir::new("gate-handoff").unwrap();
    for release in [true, false] {
        let marker = dir.join(format!("started-{release}"));
        let pids = dir.join(format!("pids-{release}"));
        let (marker2, pids2) = (marker.clone(), pids.clone());
        let text = in_forked_child(move || {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("echo started > {}", marker2.display()))
                .start_gate(true)
                .spawn()
                .unwrap();
            let gate = child.take_gate().unwrap().into_fd();
            // Reaped by whoever inherits it once this process exits.
            #[allow(clippy::zombie_processes)]
            let holder = std::process::Command::new("sleep")
                .arg("1000")
                .stdout(std::process::Stdio::from(gate))
                .spawn()
                .unwrap();
            std::fs::write(&pids2, format!("{} {}", child.id(), holder.id())).unwrap();
            String::new()
        });
        assert_eq!(text, "");
        let pids = std::fs::read_to_string(&pids).unwrap();
        let (ctr, holder) = pids.split_once(' ').unwrap();
        let (ctr, holder): (i32, i32) = (ctr.parse().unwrap(), holder.parse().unwrap());
        // The creator is gone; the child waits at the gate.
        assert!(Path::new(&format!("/proc/{ctr}")).exists());
        assert!(!marker.exists());
        if release {
            let mut gate = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{holder}/fd/1"))
                .unwrap();
            gate.write_all(b"x").unwrap();
            assert!(wait_for_file(&marker), "the released child did not run");
        }
        // The holder is ours to end (it was started by our forked child,
        // now reparented): only this pid, by its pidfd.
        let holder_fd = pidfd_open(holder).unwrap();
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                holder_fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        assert_eq!(rc, 0);
        assert!(wait_gone(ctr), "the child {ctr} outlived its gate");
        assert_eq!(marker.exists(), release);
    }
}

#[test]
fn a_root_callers_child_is_not_dumpable_until_exec() {
    // Until exec a root caller's child in namespaces is not dumpable
    // (CVE-2019-5736: once capabilities are dropped to a container's set,
    // a container process could otherwise open /proc/<pid>/exe, this
    // binary). An unprivileged caller's child stays dumpable, so that the
    // caller can still open its namespaces. A closure shows the state (no
    // exec resets it).
    let dumpable = Command::function(|| unsafe { libc::prctl(libc::PR_GET_DUMPABLE) })
        .namespaces(Kind::Uts)
        .status();
    let want = if dunnage_testsupport::privileged() {
        0
    } else {
        match &dumpable {
            Err(Error::Permission { .. }) => return,
            _ => 1,
        }
    };
    assert_eq!(dumpable.unwrap().code(), Some(want));
}

#[test]
fn spawn_meanwhile_runs_with_the_pid_before_the_setup_is_reported() {
    let mut seen = None;
    let mut child = Command::new("/bin/true")
        .start_gate(true)
        .spawn_meanwhile(|m| {
            let pid = m.pid();
            seen = Some((pid, Path::new(&format!("/proc/{pid}")).exists()));
        })
        .unwrap();
    assert_eq!(seen, Some((child.id(), true)));
    // Then as after spawn: set up, waiting at its gate.
    child.take_gate().unwrap().release().unwrap();
    assert!(child.wait().unwrap().success());
}
