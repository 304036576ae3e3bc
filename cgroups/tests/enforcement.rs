//! Limits enforced for real by the kernel: memory OOM, pids, CPU quota,
//! freezer, kill. The same code runs on this hybrid host (v1 controllers)
//! and in the pure-v2 VM (tests/vm/run.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::{Controller, FreezerState, Limit, Resources};
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
    std::thread::sleep(Duration::from_millis(500));
    let stats = cg.stats().unwrap().pids.unwrap();
    assert!(stats.current <= 3, "{stats:?}");
    assert_eq!(stats.max, Limit::Value(3));
    let events = read(&cg, Controller::Pids, "pids.events");
    let refused: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 1, "pids.events: {events}");
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
    let _busy = busy_in(&cg);
    std::thread::sleep(Duration::from_millis(100));
    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    let u0 = cpu_usage(&cg);
    std::thread::sleep(Duration::from_millis(400));
    let frozen_use = cpu_usage(&cg) - u0;
    assert!(
        frozen_use < Duration::from_millis(20),
        "used {frozen_use:?} while frozen"
    );
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    let u1 = cpu_usage(&cg);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        cpu_usage(&cg) - u1 > Duration::from_millis(20),
        "no progress after thaw"
    );
    cg.kill().unwrap();
}

#[test]
fn kill_kills_a_forked_tree() {
    require_root!();
    let cg = cgroup("kill", &[Controller::Pids, Controller::Freezer]);
    let mut tree = spawn_waiting("sleep 60 & sleep 60 & sh -c 'sleep 60 & sleep 60' & wait");
    cg.add_process(tree.pid()).unwrap();
    tree.go();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.procs().unwrap().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cg.procs().unwrap().len() >= 5, "{:?}", cg.procs());
    cg.kill().unwrap();
    assert!(cg.procs().unwrap().is_empty());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(tree.child.wait().unwrap().signal(), Some(9));
    cg.delete().unwrap();
}
