//! `Command::join_cgroup_tasks`: the child moves itself into cgroup v1
//! hierarchies as its first step (issue 11's spawn speed), in the caller's
//! pid namespace and in a new one; a descriptor it cannot write fails the
//! spawn with a typed setup error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use dunnage_namespaces::{Command, Error, Kind, Step};
use dunnage_testsupport::{CgroupGuard, require_root, skip, unique_name};

/// The mount point of a v1 hierarchy (the first with a controller, from
/// /proc/self/mountinfo), and its controller's name as
/// /proc/self/cgroup shows it.
fn v1_hierarchy() -> Option<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in text.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let opts = r.nth(1).unwrap_or("");
        let Some(ctl) = opts
            .split(',')
            .find(|o| ["pids", "memory", "cpuacct", "blkio", "freezer", "devices"].contains(o))
        else {
            continue;
        };
        let mount = left.split_whitespace().nth(4)?;
        return Some((PathBuf::from(mount), ctl.to_string()));
    }
    None
}

/// A fresh cgroup `dunnage-test-*` in that hierarchy, guarded.
fn v1_cgroup(guard: &mut CgroupGuard) -> Option<(PathBuf, String, String)> {
    let (mount, ctl) = v1_hierarchy()?;
    let name = unique_name("join");
    let dir = mount.join(&name);
    std::fs::create_dir(&dir).unwrap();
    guard.add(&dir);
    Some((dir, ctl, name))
}

fn tasks_fd(dir: &std::path::Path) -> OwnedFd {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("tasks"))
        .unwrap()
        .into()
}

/// The cgroup of `controller` in the text of a /proc/PID/cgroup.
fn cgroup_of(text: &str, controller: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctls.split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

#[test]
fn the_child_joins_v1_cgroups_itself_before_its_program_runs() {
    require_root!();
    let mut guard = CgroupGuard::new();
    let Some((dir, ctl, name)) = v1_cgroup(&mut guard) else {
        skip(
            "join_cgroup_tasks",
            "no cgroup v1 hierarchy with a controller",
        );
        return;
    };
    for new_pid_ns in [false, true] {
        let mut cmd = Command::new("cat");
        cmd.arg("/proc/self/cgroup")
            .join_cgroup_tasks([tasks_fd(&dir)]);
        if new_pid_ns {
            cmd.namespaces(Kind::Pid);
        }
        // The step comes first, before the child waits or sets anything up.
        let plan = cmd.plan().unwrap();
        assert!(
            plan.iter()
                .position(|s| matches!(s, Step::JoinCgroups { .. }))
                .is_some_and(|i| i <= 1),
            "{plan:?}"
        );
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            cgroup_of(&text, &ctl).as_deref(),
            Some(format!("/{name}").as_str()),
            "new pid namespace: {new_pid_ns}; /proc/self/cgroup:\n{text}"
        );
    }
    // Every process left (cat exited): the cgroup is empty again.
    assert_eq!(std::fs::read_to_string(dir.join("tasks")).unwrap(), "");
}

#[test]
fn a_tasks_descriptor_the_child_cannot_write_fails_the_spawn_with_a_setup_error() {
    require_root!();
    let mut guard = CgroupGuard::new();
    let Some((dir, _, _)) = v1_cgroup(&mut guard) else {
        skip(
            "join_cgroup_tasks",
            "no cgroup v1 hierarchy with a controller",
        );
        return;
    };
    // Opened read-only: the child's write fails with EBADF.
    let read_only: OwnedFd = std::fs::File::open(dir.join("tasks")).unwrap().into();
    // Not a cgroup file at all: /dev/null takes the write, so use a pipe's
    // read end (EBADF too) as a second hostile descriptor.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    drop(w);
    for fd in [read_only, r] {
        let e = Command::new("sleep")
            .arg("1000")
            .join_cgroup_tasks([fd])
            .spawn()
            .unwrap_err();
        assert!(matches!(e, Error::Setup { .. }), "{e:?}");
        assert!(e.to_string().contains("join cgroups"), "{e}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("tasks")).unwrap(), "");
}

/// `join_cgroup_tasks_later`: the cgroup is made by the parent while the
/// child sets itself up; the child joins it by path once told, and fails
/// the spawn at that step (`ECANCELED`) when it is not told.
#[test]
fn cgroups_made_meanwhile_are_joined_by_path_once_made() {
    require_root!();
    let mut guard = CgroupGuard::new();
    let Some((mount, ctl)) = v1_hierarchy() else {
        skip(
            "join_cgroup_tasks_later",
            "no cgroup v1 hierarchy with a controller",
        );
        return;
    };
    let name = unique_name("join-later");
    let dir = mount.join(&name);
    guard.add(&dir);
    let out = std::env::temp_dir().join(unique_name("join-later-out"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("cat /proc/self/cgroup > {}", out.display()))
        .join_cgroup_tasks_later([dir.join("tasks")]);
    let plan = cmd.plan().unwrap();
    assert!(
        plan.iter()
            .any(|s| matches!(s, Step::JoinCgroupsLater { .. })),
        "{plan:?}"
    );
    let mut child = cmd
        .spawn_meanwhile(|m| {
            // Not there when the child was cloned.
            assert!(!dir.exists());
            std::fs::create_dir(&dir).unwrap();
            m.cgroups_made().unwrap();
        })
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(
        cgroup_of(&text, &ctl).as_deref(),
        Some(format!("/{name}").as_str()),
        "{text}"
    );
    // Not told: a typed setup error at that step, nothing left running.
    let e = Command::new("sleep")
        .arg("1000")
        .join_cgroup_tasks_later([dir.join("tasks")])
        .spawn_meanwhile(|_| {})
        .unwrap_err();
    assert!(matches!(e, Error::Setup { .. }), "{e:?}");
    assert!(e.to_string().contains("for the parent's cgroups"), "{e}");
    assert_eq!(std::fs::read_to_string(dir.join("tasks")).unwrap(), "");
}

/// What the child could not join by path from is refused before the clone.
#[test]
fn cgroups_later_with_a_user_namespace_or_without_a_closure_is_refused() {
    let tasks = std::env::temp_dir().join("dunnage-test-no-such-cgroup/tasks");
    let e = Command::new("true")
        .namespaces(Kind::User)
        .join_cgroup_tasks_later([&tasks])
        .spawn_meanwhile(|_| panic!("cloned"))
        .unwrap_err();
    assert!(matches!(e, Error::CgroupsLater { .. }), "{e:?}");
    let e = Command::new("true")
        .join_cgroup_tasks_later([&tasks])
        .status()
        .unwrap_err();
    assert!(matches!(e, Error::CgroupsLater { .. }), "{e:?}");
}
