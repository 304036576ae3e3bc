//! Limits enforced for real by the kernel: memory OOM, pids, CPU quota,
//! freezer, kill. The same code runs on this hybrid host (v1 controllers)
//! and in the pure-v2 VM (tests/vm/run.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::{Cgroup, Controller, FreezerState, Limit, Resources, Version};
use dunnage_testsupport::require_root;
use std::time::{Duration, Instant};

#[test]
fn memory_limit_oom_kills_the_hog_and_reports_the_event() {
    require_root!();
    let cg = cgroup("oom", &[Controller::Memory]);
    let mut r = Resources::default();
    r.memory.limit = Some(Limit::Value(32 << 20));
    r.memory.swap = Some(Limit::Value(32 << 20)); // no swap to escape to
    cg.apply(&r).unwrap();
    let mut events = cg.oom_events().unwrap();
    // dd allocates a 256 MiB buffer and fills it from /dev/zero.
    let mut hog = spawn_waiting("exec dd if=/dev/zero of=/dev/null bs=256M count=1 2>/dev/null");
    cg.add_process(hog.pid()).unwrap();
    hog.go();
    let status = hog.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the hog must be OOM-killed, got {status:?}"
    );
    assert!(
        events.wait(Some(Duration::from_secs(5))).unwrap() >= 1,
        "no OOM event"
    );
    let mem = cg.stats().unwrap().memory.unwrap();
    assert!(mem.oom_kill >= 1, "{mem:?}");
    assert_eq!(mem.limit, Limit::Value(32 << 20));
}

#[test]
fn pids_max_makes_fork_fail() {
    require_root!();
    let cg = cgroup("pids", &[Controller::Pids]);
    let r = Resources {
        pids_max: Some(Limit::Value(3)),
        ..Resources::default()
    };
    cg.apply(&r).unwrap();
    // The shell plus at most two children fit; the other forks fail.
    let mut sh = spawn_waiting("for i in 1 2 3 4 5 6; do sleep 3 & done 2>/dev/null; sleep 3");
    cg.add_process(sh.pid()).unwrap();
    sh.go();
    let refused = || -> u64 {
        read(&cg, Controller::Pids, "pids.events")
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .unwrap()
            .parse()
            .unwrap()
    };
    poll_until(
        "a fork refused (pids.events max)",
        Duration::from_secs(10),
        || refused() >= 1,
    );
    let stats = cg.stats().unwrap().pids.unwrap();
    assert!(stats.current <= 3, "{stats:?}");
    assert_eq!(stats.max, Limit::Value(3));
    cg.kill().unwrap();
}

#[test]
fn half_a_cpu_quota_holds_a_busy_loop_near_half_a_cpu() {
    require_root!();
    let cg = cgroup("quota", &[Controller::Cpu, Controller::Cpuacct]);
    let mut r = Resources::default();
    r.cpu.cpus = Some(0.5);
    r.cpu.period = Some(20_000); // short periods: many samples in a second
    cg.apply(&r).unwrap();
    let _busy = busy_in(&cg);
    std::thread::sleep(Duration::from_millis(200));
    let (u0, t0) = (cpu_usage(&cg), Instant::now());
    std::thread::sleep(Duration::from_millis(1200));
    let (u1, t1) = (cpu_usage(&cg), Instant::now());
    let share = (u1 - u0).as_secs_f64() / (t1 - t0).as_secs_f64();
    // The machine is shared: the loop may get less than its quota, but
    // never clearly more.
    assert!(
        (0.05..0.65).contains(&share),
        "busy loop used {share:.2} CPU under a 0.5 quota"
    );
    let thr = cg.stats().unwrap().cpu.unwrap().throttling.unwrap();
    assert!(thr.throttled_periods > 0, "{thr:?}");
    cg.kill().unwrap();
}

#[test]
fn freezer_stops_progress_and_thaw_resumes_it() {
    require_root!();
    let cg = cgroup("freeze", &[Controller::Freezer, Controller::Cpuacct]);
    check_freeze_thaw(&cg);
}

#[test]
fn kill_kills_a_forked_tree() {
    require_root!();
    let cg = cgroup("kill", &[Controller::Pids, Controller::Freezer]);
    check_kill_tree(&cg);
}

#[test]
fn kill_reaches_the_cgroups_below() {
    require_root!();
    let cg = cgroup("killsub", &[Controller::Pids, Controller::Freezer]);
    check_kill_below(&host(), &cg);
}

/// `kill` of `cg` kills a process in a cgroup below it (one a container
/// with its own cgroup namespace made), and `delete_recursive` then
/// removes both.
fn check_kill_below(h: &dunnage_cgroups::Hierarchies, cg: &Cgroup) {
    let sub_path =
        dunnage_cgroups::CgroupPath::new(&format!("{}/sub", cg.path().as_str())).unwrap();
    let controllers: Vec<Controller> = cg
        .dirs()
        .iter()
        .flat_map(|d| d.controllers.clone())
        .collect();
    let sub = Cgroup::create(h, &sub_path, &controllers).unwrap();
    let mut p = spawn_waiting("sleep 60");
    sub.add_process(p.pid()).unwrap();
    p.go();
    cg.kill().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(p.child.wait().unwrap().signal(), Some(9));
    cg.delete_recursive().unwrap();
    for d in sub.dirs().iter().chain(cg.dirs()) {
        assert!(!d.path.exists(), "{} is left", d.path.display());
    }
}

/// Whether `cg` freezes (and kills) through v2 files: the freezer is a
/// v2 core feature, so no v1 freezer directory means v2.
fn freezes_on_v2(cg: &Cgroup) -> bool {
    cg.dir_of(Controller::Freezer)
        .is_none_or(|d| d.version == Version::V2)
}

/// A busy loop in `cg` makes no progress while frozen, and makes progress
/// again after thaw. `cg` must count CPU usage (cpuacct on v1; cpu.stat is
/// a core file on v2).
fn check_freeze_thaw(cg: &Cgroup) {
    let _busy = busy_in(cg);
    std::thread::sleep(Duration::from_millis(100));
    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    if freezes_on_v2(cg) {
        assert_eq!(read_v2(cg, "cgroup.freeze").trim(), "1");
    }
    // Let the usage counter settle (the last slice before the freeze may
    // be accounted late, notably in the TCG VM), then a window in which a
    // running loop would use several times more than 50 ms.
    std::thread::sleep(Duration::from_millis(100));
    let u0 = cpu_usage(cg);
    std::thread::sleep(Duration::from_millis(400));
    let frozen_use = cpu_usage(cg) - u0;
    assert!(
        frozen_use < Duration::from_millis(50),
        "used {frozen_use:?} while frozen"
    );
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    if freezes_on_v2(cg) {
        assert!(read_v2(cg, "cgroup.events").contains("frozen 0"));
    }
    let u1 = cpu_usage(cg);
    poll_until("progress after thaw", Duration::from_secs(10), || {
        cpu_usage(cg) - u1 > Duration::from_millis(20)
    });
    cg.kill().unwrap();
}

/// `kill` kills a forked tree of five processes in `cg`, grandchildren
/// included.
fn check_kill_tree(cg: &Cgroup) {
    let mut tree = spawn_waiting("sleep 60 & sleep 60 & sh -c 'sleep 60 & sleep 60' & wait");
    cg.add_process(tree.pid()).unwrap();
    tree.go();
    poll_until(
        "five processes in the cgroup",
        Duration::from_secs(10),
        || cg.procs().unwrap().len() >= 5,
    );
    cg.kill().unwrap();
    assert!(cg.procs().unwrap().is_empty());
    if freezes_on_v2(cg) {
        assert!(read_v2(cg, "cgroup.events").contains("populated 0"));
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(tree.child.wait().unwrap().signal(), Some(9));
    cg.delete().unwrap();
}

/// The v2 side alone: on this hybrid host /sys/fs/cgroup/unified (core
/// files and hugetlb), in the VM the whole host.
fn v2_host() -> dunnage_cgroups::Hierarchies {
    host().v2_only().expect("no cgroup2 mount")
}

#[test]
fn v2_freeze_stops_progress_and_thaw_resumes_it() {
    require_root!();
    let cg = cgroup_in(&v2_host(), "v2freeze", &[]);
    assert!(freezes_on_v2(&cg));
    check_freeze_thaw(&cg);
}

#[test]
fn v2_kill_reaches_the_cgroups_below() {
    require_root!();
    let h = v2_host();
    let cg = cgroup_in(&h, "v2killsub", &[]);
    check_kill_below(&h, &cg);
}

#[test]
fn v2_kill_kills_a_forked_tree() {
    require_root!();
    let cg = cgroup_in(&v2_host(), "v2kill", &[]);
    assert!(freezes_on_v2(&cg));
    check_kill_tree(&cg);
}

#[test]
fn v2_pressure_is_read_where_the_kernel_exposes_it() {
    require_root!();
    let cg = cgroup_in(&v2_host(), "psi", &[]);
    let d = cg.v2_dir().unwrap();
    let kernel_has_psi = std::path::Path::new("/proc/pressure/cpu").exists();
    if !d.file("cpu.pressure").exists() {
        // PSI compiled out or disabled (psi=0): no pressure, not zeros.
        assert!(!kernel_has_psi, "/proc/pressure exists, cpu.pressure not");
        assert!(cg.stats().unwrap().pressure.is_none());
        return;
    }
    // One busy loop more than there are CPUs: some of them always wait.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _busy: Vec<_> = (0..cpus + 1).map(|_| busy_in(&cg)).collect();
    poll_until("CPU pressure counted", Duration::from_secs(10), || {
        let p = cg.stats().unwrap().pressure.expect("cpu.pressure exists");
        p.cpu.some.total > Duration::ZERO
    });
    let p = cg.stats().unwrap().pressure.expect("cpu.pressure exists");
    for line in [&p.cpu.some, &p.memory.some, &p.io.some] {
        for avg in [line.avg10, line.avg60, line.avg300] {
            assert!((0.0..=100.0).contains(&avg), "{p:?}");
        }
    }
    assert!(p.memory.full.is_some() && p.io.full.is_some(), "{p:?}");
    // The figures are the kernel's: the file's total only grows.
    let again = cg.stats().unwrap().pressure.unwrap();
    assert!(again.cpu.some.total >= p.cpu.some.total);
    let raw = read_v2(&cg, "cpu.pressure");
    assert!(raw.starts_with("some avg10="), "{raw}");
    cg.kill().unwrap();
}

/// A core file of `cg`'s v2 directory.
fn read_v2(cg: &dunnage_cgroups::Cgroup, name: &str) -> String {
    std::fs::read_to_string(cg.v2_dir().unwrap().file(name)).unwrap()
}

/// `Cpus_allowed_list` of `pid`, from /proc/<pid>/status.
fn cpus_allowed(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn cpuset_cpus_0_pins_the_tasks_and_their_children_to_cpu_0() {
    require_root!();
    let cg = cgroup("cpuset", &[Controller::Cpuset]);
    let mut r = Resources::default();
    r.cpuset.cpus = Some("0".into());
    cg.apply(&r).unwrap();
    assert_eq!(read(&cg, Controller::Cpuset, "cpuset.cpus"), "0");
    // A task moved in, and a child it forks afterwards.
    let mut w = spawn_waiting("sleep 30 & wait");
    assert_ne!(cpus_allowed(w.pid()), "0", "the machine has one CPU");
    cg.add_process(w.pid()).unwrap();
    assert_eq!(cpus_allowed(w.pid()), "0");
    w.go();
    poll_until(
        "the forked child in the cgroup",
        Duration::from_secs(10),
        || cg.procs().unwrap().len() >= 2,
    );
    let procs = cg.procs().unwrap();
    assert_eq!(procs.len(), 2, "{procs:?}");
    for pid in procs {
        assert_eq!(cpus_allowed(pid), "0", "pid {pid}");
    }
    cg.kill().unwrap();
}
