//! Discovery on the real host, and mounting v1 hierarchies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::proc::{read_mountinfo, read_proc_cgroups, read_process_cgroups};
use dunnage_cgroups::{
    Cgroup, CgroupPath, Controller, Error, Hierarchies, Limit, Mode, Resources, V1Binding, Version,
    mount_v1, unmount,
};
use dunnage_testsupport::{MountGuard, TempDir, require_root, unique_name};

#[test]
fn the_mode_and_usable_v2_controllers_match_the_kernel() {
    let h = host();
    let procs = read_proc_cgroups().unwrap();
    let own = read_process_cgroups(None).unwrap();
    match h.mode() {
        Mode::Unified => {
            assert!(own.iter().any(|c| c.is_unified()));
            assert!(h.v2_controllers().contains(&Controller::Memory));
        }
        Mode::Hybrid | Mode::Legacy => {
            // A controller bound to a v1 hierarchy is never usable on v2.
            for c in h.v2_controllers() {
                let bound = procs
                    .iter()
                    .any(|s| Controller::from_name(&s.name) == Some(c) && s.hierarchy != 0);
                assert!(!bound, "{c} is bound to v1 yet listed on v2");
            }
            // The v1 hierarchies this process is in are mounted (only the
            // memory one is checked: other tests mount hierarchies meanwhile).
            if own.iter().any(|l| l.controllers == ["memory"]) {
                assert_eq!(
                    h.for_controller(Controller::Memory).unwrap().version,
                    Version::V1
                );
            }
        }
    }
    assert!(!read_mountinfo().unwrap().is_empty());
}

#[test]
fn walk_lists_a_created_tree_parents_first() {
    require_root!();
    let cg = cgroup("walk", &[Controller::Pids]);
    let h = host();
    Cgroup::create(&h, &cg.path().join("a/b").unwrap(), &[Controller::Pids]).unwrap();
    Cgroup::create(&h, &cg.path().join("c").unwrap(), &[Controller::Pids]).unwrap();
    let hier = h.for_controller(Controller::Pids).unwrap();
    let all: Vec<String> = hier
        .walk(cg.path())
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let top = cg.path().to_string();
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[0], top);
    let pos = |s: &str| all.iter().position(|p| *p == format!("{top}/{s}")).unwrap();
    assert!(pos("a") < pos("a/b"));
}

#[test]
fn named_hierarchies_mount_and_unmount() {
    require_root!();
    let dir = TempDir::new("named").unwrap();
    let name = unique_name("h").replace("dunnage-test-", "dt-");
    mount_v1(dir.path(), &V1Binding::Named(name.clone())).unwrap();
    let guard = MountGuard::new(dir.path());
    let h = Hierarchies::detect().unwrap();
    let ours = h
        .list()
        .iter()
        .find(|x| x.name.as_deref() == Some(name.as_str()))
        .unwrap();
    assert!(ours.subsystems.is_empty());
    assert!(dir.join("cgroup.procs").is_file());
    unmount(dir.path()).unwrap();
    drop(guard);
    assert!(matches!(
        mount_v1(dir.path(), &V1Binding::Named("a,b".into())),
        Err(Error::InvalidValue { .. })
    ));
}

#[test]
fn a_subsystem_bound_elsewhere_is_a_typed_error_and_free_ones_mount() {
    require_root!();
    let h = host();
    let dir = TempDir::new("v1mount").unwrap();
    if h.mode() == Mode::Unified {
        // cgroup_no_v1=all: the controllers are v2's; v1 refuses them.
        assert!(mount_v1(dir.path(), &V1Binding::Subsystems(vec![Controller::Cpu])).is_err());
        return;
    }
    let bound = [Controller::Cpu, Controller::Memory];
    assert!(matches!(
        mount_v1(dir.path(), &V1Binding::Subsystems(bound.to_vec())),
        Err(Error::SubsystemBusy { .. })
    ));
    // Subsystems no hierarchy holds (net_cls, net_prio on this host) mount
    // together as a new hierarchy, used through a handle, then unmounted.
    let procs = read_proc_cgroups().unwrap();
    let free: Vec<Controller> = [Controller::NetCls, Controller::NetPrio]
        .into_iter()
        .filter(|c| {
            procs
                .iter()
                .any(|s| s.name == c.v1_name() && s.hierarchy == 0 && s.enabled)
        })
        .collect();
    if free.is_empty() {
        return;
    }
    mount_v1(dir.path(), &V1Binding::Subsystems(free.clone())).unwrap();
    let _guard = MountGuard::new(dir.path());
    let mounts = read_mountinfo().unwrap();
    let ours = Hierarchies::from_mounts(
        &mounts
            .into_iter()
            .filter(|m| m.mount_point == dir.path())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let path = CgroupPath::new(&unique_name("netcls")).unwrap();
    let cg = Cgroup::create(&ours, &path, &free).unwrap();
    let r = Resources {
        net_cls_classid: free.contains(&Controller::NetCls).then_some(0x0010_0001),
        net_prio_ifpriomap: if free.contains(&Controller::NetPrio) {
            vec![("lo".into(), 5)]
        } else {
            vec![]
        },
        pids_max: None::<Limit>,
        ..Resources::default()
    };
    cg.apply(&r).unwrap();
    if free.contains(&Controller::NetCls) {
        assert_eq!(read(&cg, Controller::NetCls, "net_cls.classid"), "1048577");
    }
    if free.contains(&Controller::NetPrio) {
        assert!(read(&cg, Controller::NetPrio, "net_prio.ifpriomap").contains("lo 5"));
    }
    cg.delete().unwrap();
    unmount_until_released(dir.path(), &free);
}

/// Unmount, and make sure the kernel released the hierarchy: when the
/// unmount comes while a removed child cgroup is still dying, the kernel
/// keeps the hierarchy (its subsystems stay bound) until a later unmount.
fn unmount_until_released(dir: &std::path::Path, subsystems: &[Controller]) {
    unmount_until(dir, &V1Binding::Subsystems(subsystems.to_vec()), || {
        read_proc_cgroups()
            .unwrap()
            .iter()
            .all(|s| s.hierarchy == 0 || !subsystems.iter().any(|c| c.v1_name() == s.name))
    });
}

/// Unmount `dir` (mounted with `binding`) until `released` says the kernel
/// destroyed the hierarchy (it does so asynchronously), mounting it again
/// between tries.
fn unmount_until(dir: &std::path::Path, binding: &V1Binding, released: impl Fn() -> bool) {
    for _ in 0..5 {
        unmount(dir).unwrap();
        for _ in 0..100 {
            if released() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        mount_v1(dir, binding).unwrap();
    }
    panic!(
        "the hierarchy mounted at {} stays after unmount",
        dir.display()
    );
}

#[test]
fn the_release_agent_runs_with_the_path_of_an_emptied_cgroup() {
    require_root!();
    // The kernel runs the agent in the init namespaces: from another mount
    // namespace it would not find our agent or our output file. This is a
    // fact of the environment, not a missing privilege, so no CI failure.
    let own = std::fs::read_link("/proc/self/ns/mnt");
    let init = std::fs::read_link("/proc/1/ns/mnt");
    if let (Ok(own), Ok(init)) = (own, init)
        && own != init
    {
        eprintln!(
            "SKIPPED {}: not in the host's mount namespace ({own:?} vs {init:?} of pid 1), \
             where the kernel runs release agents",
            module_path!()
        );
        return;
    }
    // Named v1 hierarchies mount on every host, cgroup_no_v1=all too.
    // Dropped in reverse: the cgroup, then the mount, then the directory.
    let dir = TempDir::new("release").unwrap();
    let mnt = dir.join("h");
    std::fs::create_dir(&mnt).unwrap();
    let name = unique_name("ra");
    mount_v1(&mnt, &V1Binding::Named(name.clone())).unwrap();
    let _mount = MountGuard::new(&mnt);
    let ours = Hierarchies::from_mounts(
        &read_mountinfo()
            .unwrap()
            .into_iter()
            .filter(|m| m.mount_point == mnt)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let hier = &ours.list()[0];
    assert_eq!(hier.name.as_deref(), Some(name.as_str()));

    // The agent records its argument, the released cgroup's path: written
    // to a temporary file and renamed, so `out` appears complete.
    let out = dir.join("released");
    let agent = dir.join("agent.sh");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\necho \"$1\" > {out}.tmp && mv {out}.tmp {out}\n",
            out = out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    hier.set_release_agent(&agent).unwrap();
    assert_eq!(
        std::fs::read_to_string(mnt.join("release_agent"))
            .unwrap()
            .trim(),
        agent.to_str().unwrap()
    );

    let path = CgroupPath::new(&unique_name("released")).unwrap();
    let mut guard = dunnage_testsupport::CgroupGuard::new();
    guard.add(mnt.join(path.as_str()));
    let cg = Cgroup::create(&ours, &path, &[]).unwrap();
    assert_eq!(cg.dirs().len(), 1);
    cg.set_notify_on_release(true).unwrap();
    assert_eq!(
        std::fs::read_to_string(mnt.join(path.as_str()).join("notify_on_release"))
            .unwrap()
            .trim(),
        "1"
    );
    let mut w = spawn_waiting("exit 0");
    cg.add_process(w.pid()).unwrap();
    assert_eq!(cg.procs().unwrap(), [w.pid()]);
    assert!(!out.exists(), "released while still populated");
    // The last task exits: the kernel runs the agent.
    w.go();
    w.child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !out.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let released = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("the release agent did not run ({e})"));
    assert_eq!(released, format!("{path}\n"));
    cg.delete().unwrap();
    drop(guard);
    unmount_named_until_released(&mnt, &name);
}

/// Unmount a named hierarchy and make sure the kernel destroyed it: when
/// the unmount comes while the removed child cgroup is still dying, the
/// hierarchy outlives its last mount (every process keeps a
/// `name=...:/` line in /proc/self/cgroup) until a later unmount.
fn unmount_named_until_released(dir: &std::path::Path, name: &str) {
    let line = format!(":name={name}:");
    unmount_until(dir, &V1Binding::Named(name.to_string()), || {
        !std::fs::read_to_string("/proc/self/cgroup")
            .unwrap()
            .contains(&line)
    });
}
