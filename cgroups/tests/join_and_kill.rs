//! Issue 11's spawn speed in the cgroup crate: `Cgroup::join_fds` (what a
//! new process needs to join a cgroup itself) and `kill` of an empty
//! cgroup (no freeze and thaw).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::fd::AsRawFd;

use common::*;
use dunnage_cgroups::{Cgroup, Controller, Error, FreezerState, Version};
use dunnage_testsupport::require_root;

const SOME: &[Controller] = &[Controller::Memory, Controller::Pids];

/// Fork a child that writes `0` to each descriptor (as the namespaces
/// crate's child does), reports on a pipe, then waits on another; returns
/// its pid, whether every write succeeded, and the write end of the
/// second pipe (drop it to let the child exit).
fn fork_joining(fds: &[i32]) -> (libc::pid_t, bool, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut done, mut release) = ([0; 2], [0; 2]);
    assert_eq!(
        unsafe { libc::pipe2(done.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    assert_eq!(
        unsafe { libc::pipe2(release.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::close(release[1]);
            let mut ok = 1u8;
            for &fd in fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    ok = 0;
                }
            }
            libc::write(done[1], [ok].as_ptr().cast(), 1);
            let mut b = [0u8; 1];
            libc::read(release[0], b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    unsafe {
        libc::close(done[1]);
        libc::close(release[0]);
    }
    let mut ok = [0u8; 1];
    let n = unsafe { libc::read(done[0], ok.as_mut_ptr().cast(), 1) };
    unsafe { libc::close(done[0]) };
    (pid, n == 1 && ok[0] == 1, unsafe {
        std::os::fd::OwnedFd::from_raw_fd(release[1])
    })
}

#[test]
fn a_process_writing_zero_to_the_tasks_files_joins_every_v1_directory() {
    require_root!();
    let cg = cgroup("join", SOME);
    let join = cg.join_fds().unwrap();
    let v1 = cg
        .dirs()
        .iter()
        .filter(|d| d.version == Version::V1)
        .count();
    assert_eq!(join.tasks.len(), v1);
    assert_eq!(
        join.v2_dir.is_some(),
        cg.dirs().iter().any(|d| d.version == Version::V2)
    );
    if join.tasks.is_empty() {
        // cgroup v2 only: joining is clone3's CLONE_INTO_CGROUP, tested in
        // the namespaces crate.
        return;
    }
    let raw: Vec<i32> = join.tasks.iter().map(AsRawFd::as_raw_fd).collect();
    let (pid, wrote, release) = fork_joining(&raw);
    assert!(wrote, "a write of 0 to a tasks file failed");
    for d in cg.dirs().iter().filter(|d| d.version == Version::V1) {
        let tasks = std::fs::read_to_string(d.file("tasks")).unwrap();
        assert_eq!(tasks.trim(), pid.to_string(), "{}", d.path.display());
    }
    drop(release);
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "{status:#x}");
}

#[test]
fn join_fds_of_a_removed_cgroup_is_a_typed_error() {
    require_root!();
    let cg = cgroup("join-gone", SOME);
    let copy: Cgroup = cg.cg.clone();
    cg.delete().unwrap();
    match copy.join_fds() {
        Err(Error::Io { op, .. }) => assert_eq!(op, "open"),
        other => panic!("want an open error, got {other:?}"),
    }
}

#[test]
fn kill_of_an_empty_cgroup_returns_at_once_and_leaves_it_thawed() {
    require_root!();
    let cg = cgroup("kill-empty", &[Controller::Freezer, Controller::Pids]);
    cg.kill().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    // A cgroup with a process is still killed as before.
    let w = spawn_waiting("sleep 30");
    cg.add_process(w.pid()).unwrap();
    cg.kill().unwrap();
    assert!(cg.procs().unwrap().is_empty());
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
}

/// `delete_if_empty` stops at the first busy directory, after removing the
/// empty ones before it (a process moved out of some hierarchies); `kill`
/// then kills what is left and `delete` removes the rest.
#[test]
fn kill_and_delete_after_a_partial_delete_if_empty() {
    require_root!();
    let cg = cgroup("kill-partial", &[Controller::Freezer, Controller::Pids]);
    if cg.dirs().len() < 2 {
        eprintln!("skipped: one hierarchy (pure cgroup v2), no partial removal");
        return;
    }
    let mut w = spawn_waiting("sleep 30");
    cg.add_process(w.pid()).unwrap();
    // Out of the first directory's cgroup, into its hierarchy's root.
    let first = &cg.dirs()[0].path;
    let root = first.parent().unwrap();
    std::fs::write(root.join("cgroup.procs"), w.pid().to_string()).unwrap();
    assert!(!cg.delete_if_empty().unwrap());
    assert!(!first.exists(), "the empty one went");
    assert!(cg.dirs()[1..].iter().all(|d| d.path.exists()));
    cg.kill().unwrap();
    assert!(w.child.wait().unwrap().code().is_none(), "killed");
    cg.delete().unwrap();
    assert!(cg.dirs().iter().all(|d| !d.path.exists()));
}

#[test]
fn oom_kills_reads_one_counter_and_is_none_without_memory() {
    require_root!();
    let cg = cgroup("oom-kills", &[Controller::Memory]);
    assert_eq!(cg.oom_kills().unwrap(), Some(0));
    let pids = cgroup("oom-kills-pids", &[Controller::Pids]);
    if pids.dir_of(Controller::Memory).is_none() {
        assert_eq!(pids.oom_kills().unwrap(), None);
    }
    // A removed cgroup: a typed error naming the file.
    let copy: Cgroup = cg.cg.clone();
    cg.delete().unwrap();
    assert!(
        matches!(copy.oom_kills(), Err(Error::Io { .. })),
        "{:?}",
        copy.oom_kills()
    );
}

/// Removes a child cgroup directory made by a test (retrying while its
/// killed process exits).
struct SubCgroup(std::path::PathBuf);

impl Drop for SubCgroup {
    fn drop(&mut self) {
        for _ in 0..200 {
            match std::fs::remove_dir(&self.0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

/// On v2 `kill` writes `cgroup.kill` even when the cgroup lists no
/// process: what it does not list (a fork being created into it with
/// CLONE_INTO_CGROUP, or a process in a child cgroup, as here) is killed
/// too.
#[test]
fn kill_with_cgroup_kill_does_not_trust_an_empty_process_list() {
    require_root!();
    // No controllers: the v2 hierarchy too on a hybrid host.
    let cg = cgroup("kill-subtree", &[]);
    let Some(v2) = cg.v2_dir().filter(|d| d.file("cgroup.kill").exists()) else {
        eprintln!(
            "kill_with_cgroup_kill_does_not_trust_an_empty_process_list: no cgroup.kill here"
        );
        return;
    };
    let sub = SubCgroup(v2.path.join("sub"));
    std::fs::create_dir(&sub.0).unwrap();
    let mut w = spawn_waiting("sleep 30");
    std::fs::write(sub.0.join("cgroup.procs"), w.pid().to_string()).unwrap();
    assert!(cg.procs().unwrap().is_empty());
    cg.kill().unwrap();
    // Killed: it never reads its line. (A bound on waiting, not a timing
    // assertion: without the kill it would block for ever.)
    let mut status = None;
    for _ in 0..3000 {
        status = w.child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL));
}
