//! The cgroup handle against the real kernel: create, open, delete,
//! processes and threads, moving, v1 release options, v2 subtree control
//! and threaded cgroups, and the typed errors of bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::{Cgroup, CgroupPath, Controller, Error, Mode, Version};
use dunnage_testsupport::{require_root, unique_name};

const SOME: &[Controller] = &[Controller::Memory, Controller::Pids, Controller::Cpu];

#[test]
fn create_is_nested_and_idempotent_and_open_finds_it() {
    require_root!();
    let h = host();
    let top = cgroup("nest", SOME);
    let child = top.path().join("a/b").unwrap();
    let cg = Cgroup::create(&h, &child, SOME).unwrap();
    let again = Cgroup::create(&h, &child, SOME).unwrap();
    assert_eq!(cg, again);
    for d in cg.dirs() {
        assert!(
            d.path.join("cgroup.procs").is_file(),
            "{}",
            d.path.display()
        );
    }
    assert_eq!(Cgroup::open(&h, &child, SOME).unwrap(), cg);
    // A non-empty parent (it has children) is refused, recursive works.
    assert!(matches!(top.delete(), Err(Error::NotEmpty { .. })));
    assert!(!top.delete_if_empty().unwrap());
    top.delete_recursive().unwrap();
    // Gone already: nothing to do, no error.
    assert!(cg.delete_if_empty().unwrap());
    assert!(cg.dirs().iter().all(|d| !d.path.exists()));
    assert!(Cgroup::open(&h, &child, SOME).is_err());
}

#[test]
fn processes_and_threads_are_added_listed_and_moved() {
    require_root!();
    let a = cgroup("procs-a", SOME);
    let b = cgroup("procs-b", SOME);
    let w1 = spawn_waiting("sleep 30");
    let w2 = spawn_waiting("sleep 30");
    a.add_process(w1.pid()).unwrap();
    a.add_thread(w2.pid()).unwrap_or_else(|e| {
        // v2: a thread joins a domain cgroup only as its whole process.
        assert!(unified(&host()), "{e}");
        a.add_process(w2.pid()).unwrap();
    });
    let mut want = vec![w1.pid(), w2.pid()];
    want.sort_unstable();
    assert_eq!(a.procs().unwrap(), want);
    assert_eq!(a.threads().unwrap(), want);
    a.move_all(&b).unwrap();
    assert!(a.procs().unwrap().is_empty());
    assert_eq!(b.procs().unwrap(), want);
    // A busy cgroup cannot be deleted: a typed error, after a bounded wait.
    assert!(matches!(b.delete(), Err(Error::NotEmpty { .. })));
    assert!(!b.delete_if_empty().unwrap(), "busy: left at once");
    assert!(b.dirs().iter().all(|d| d.path.exists()));
    // Emptied, it goes.
    assert!(a.delete_if_empty().unwrap());
    assert!(a.dirs().iter().all(|d| !d.path.exists()));
}

#[test]
fn dead_pids_and_bad_paths_are_typed_errors_and_create_nothing() {
    require_root!();
    let h = host();
    let cg = cgroup("bad", SOME);
    assert!(matches!(
        cg.add_process(0),
        Err(Error::NoSuchProcess { pid: 0 })
    ));
    assert!(matches!(
        cg.add_process(u32::MAX),
        Err(Error::NoSuchProcess { .. })
    ));
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(matches!(
        cg.add_process(pid),
        Err(Error::NoSuchProcess { .. })
    ));
    for bad in ["../escape", "a/../../b", "x/./y", "cgroup.procs"] {
        assert!(
            matches!(CgroupPath::new(bad), Err(Error::InvalidPath { .. })),
            "{bad}"
        );
    }
    // A failure half-way removes what this call created.
    let name = unique_name("half");
    let path = CgroupPath::new(&format!("{name}/x")).unwrap();
    let err = Cgroup::create(&h, &path, &[Controller::Memory, Controller::Rdma]);
    if err.is_err() {
        for hier in h.list() {
            assert!(
                !hier.mount_point.join(&name).exists(),
                "{name} left in {}",
                hier.mount_point.display()
            );
        }
    } else {
        Cgroup::open(&h, &CgroupPath::new(&name).unwrap(), &[]).ok();
        dunnage_testsupport::remove_cgroup_tree(
            &h.for_controller(Controller::Memory)
                .unwrap()
                .mount_point
                .join(&name),
        );
    }
}

#[test]
fn v1_release_options_are_written() {
    require_root!();
    let h = host();
    if h.mode() == Mode::Unified {
        let cg = cgroup("release", &[Controller::Pids]);
        assert!(matches!(
            cg.set_notify_on_release(true),
            Err(Error::Unsupported { .. })
        ));
        return;
    }
    let cg = cgroup("release", &[Controller::Pids, Controller::Cpuset]);
    cg.set_notify_on_release(true).unwrap();
    cg.set_clone_children(true).unwrap();
    assert_eq!(read(&cg, Controller::Pids, "notify_on_release"), "1");
    assert_eq!(read(&cg, Controller::Cpuset, "cgroup.clone_children"), "1");
    // The new cpuset child inherited CPUs and memory nodes, so tasks can join.
    assert!(!read(&cg, Controller::Cpuset, "cpuset.cpus").is_empty());
    let w = spawn_waiting("sleep 30");
    cg.add_process(w.pid()).unwrap();
}

/// The v2 side: the unified hierarchy alone (hybrid: /sys/fs/cgroup/unified).
fn v2_host() -> dunnage_cgroups::Hierarchies {
    host().v2_only().expect("no cgroup2 mount")
}

#[test]
fn v2_core_files_subtree_control_and_threaded_cgroups() {
    require_root!();
    let h = v2_host();
    let parent = cgroup_in(&h, "v2core", &[]);
    let d = parent.v2_dir().unwrap();
    for f in [
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.type",
        "cgroup.events",
        "cgroup.freeze",
        "cgroup.kill",
        "cgroup.stat",
        "cgroup.max.depth",
        "cgroup.max.descendants",
        "cgroup.controllers",
        "cgroup.subtree_control",
    ] {
        assert!(d.file(f).is_file(), "{f}");
    }
    assert_eq!(parent.cgroup_type().unwrap(), "domain");
    // Enabling a domain controller: top-down, and refused while the
    // cgroup has processes of its own (the no-internal-process rule).
    let v2 = h.v2_controllers();
    let domain = [Controller::Memory, Controller::Hugetlb]
        .into_iter()
        .find(|c| v2.contains(c))
        .unwrap();
    let w = spawn_waiting("sleep 30");
    parent.add_process(w.pid()).unwrap();
    assert!(matches!(
        parent.enable_subtree(&[domain]),
        Err(Error::InternalProcesses { .. })
    ));
    parent.kill().unwrap();
    parent.enable_subtree(&[domain]).unwrap();
    assert!(
        parent
            .subtree_control()
            .unwrap()
            .contains(&domain.v2_name().to_owned())
    );
    // A threaded child turns its parent (with no domain controller
    // enabled) into a threaded domain; threads then join it one by one.
    let core = [Controller::Freezer]; // v2 built-in: no controller to enable
    let domain_parent = cgroup_in(&h, "v2thr", &core);
    let leaf = Cgroup::create(&h, &domain_parent.path().join("t").unwrap(), &core).unwrap();
    leaf.set_threaded().unwrap();
    assert_eq!(leaf.cgroup_type().unwrap(), "threaded");
    assert_eq!(domain_parent.cgroup_type().unwrap(), "domain threaded");
    let w = spawn_waiting("sleep 30");
    domain_parent.add_process(w.pid()).unwrap();
    leaf.add_thread(w.pid()).unwrap();
    assert_eq!(leaf.threads().unwrap(), [w.pid()]);
    assert_eq!(leaf.dirs()[0].version, Version::V2);
}
