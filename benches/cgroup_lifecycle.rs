//! One cgroup's life through dunnage-cgroups, youki's `libcgroups` and
//! `cgroups-rs`, interleaved in one run: on the host's v1 hierarchies (a
//! legacy or hybrid host), or on v2 on a pure v2 host (the VM:
//! `VM_BENCH=1 tests/vm/run.sh`).
//!
//! Per iteration: create `dunnage-test-bench-.../iter-N` (memory, cpu and
//! pids), apply a 64 MiB memory limit, a 0.5 CPU quota and a pids max of
//! 32, move one long-lived child in, move it back out to
//! `dunnage-test-bench-.../home`, remove the cgroup. The child (`sleep`) is
//! spawned once and placed in `home` (made in every hierarchy) before the
//! run, so that no library writes to the cgroup this process runs in.
//!
//! ```text
//! cargo bench -p dunnage-benches --bench cgroup_lifecycle
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 300);
//! `DUNNAGE_BENCH_ONLY=text` keeps the cases whose name contains `text`.
//! Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dunnage::cgroups::{
    Cgroup, CgroupPath, Controller, Hierarchies, Limit, Mode, Resources, Version,
};
use dunnage_testsupport::{CgroupGuard, ChildGuard, unique_name};

const MEMORY: i64 = 64 << 20;
const QUOTA: i64 = 50_000;
const PERIOD: u64 = 100_000;
const PIDS: i64 = 32;
const THREE: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

/// One iteration of a case, given the new cgroup's path.
type Case = Box<dyn FnMut(&str)>;

/// Median and mean of the samples, in microseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    (us(samples[samples.len() / 2]), mean)
}

fn time(f: &mut dyn FnMut(&str), name: &str) -> Duration {
    let start = Instant::now();
    f(name);
    start.elapsed()
}

fn dunnage_resources() -> Resources {
    let mut r = Resources::default();
    r.memory.limit = Some(Limit::Value(MEMORY as u64));
    r.cpu.quota = Some(Limit::Value(QUOTA as u64));
    r.cpu.period = Some(PERIOD);
    r.pids_max = Some(Limit::Value(PIDS as u64));
    r
}

fn cgroups_rs_resources() -> cgroups_rs::fs::Resources {
    let mut r = cgroups_rs::fs::Resources::default();
    r.memory.memory_hard_limit = Some(MEMORY);
    r.cpu.quota = Some(QUOTA);
    r.cpu.period = Some(PERIOD);
    r.pid.maximum_number_of_processes = Some(cgroups_rs::fs::MaxValue::Value(PIDS));
    r
}

fn oci_resources() -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(MEMORY).build().unwrap())
        .cpu(
            LinuxCpuBuilder::default()
                .quota(QUOTA)
                .period(PERIOD)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(PIDS).build().unwrap())
        .build()
        .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("cgroup_lifecycle: needs root, skipped");
        return;
    }
    let h = Hierarchies::detect().unwrap();
    // v1 on a legacy or hybrid host, v2 on a pure v2 host (the VM).
    let v2 = h.mode() == Mode::Unified;
    let want = if v2 { Version::V2 } else { Version::V1 };
    if THREE
        .iter()
        .any(|&c| h.for_controller(c).is_none_or(|x| x.version != want))
    {
        eprintln!("cgroup_lifecycle: needs memory, cpu and pids on {want:?}, skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);

    // The parent cgroup in every hierarchy; the child rests in parent/home
    // (v2 allows no process in a cgroup whose children have controllers).
    let parent_name = unique_name("bench");
    let home_name = format!("{parent_name}/home");
    let parent_path = CgroupPath::new(&parent_name).unwrap();
    let home_path = CgroupPath::new(&home_name).unwrap();
    let mut guard = CgroupGuard::new();
    for hier in h.list() {
        guard.add(hier.mount_point.join(&parent_name));
    }
    Cgroup::create(&h, &parent_path, &[]).unwrap();
    let home = Cgroup::create(&h, &home_path, &[]).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100000")
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child_guard = ChildGuard::new(pid as i32);
    home.add_process(pid).unwrap();

    // dunnage-cgroups: the host's hierarchies are discovered once.
    let dunnage = |controllers: &'static [Controller]| {
        let h = h.clone();
        let home = Cgroup::open(&h, &home_path, controllers).unwrap();
        let r = dunnage_resources();
        move |name: &str| {
            let path = CgroupPath::new(name).unwrap();
            let cg = Cgroup::create(&h, &path, controllers).unwrap();
            cg.apply(&r).unwrap();
            cg.add_process(pid).unwrap();
            home.add_process(pid).unwrap();
            cg.delete().unwrap();
        }
    };
    // The same, discovering the hierarchies (mountinfo) every time.
    let dunnage_detect = {
        let r = dunnage_resources();
        let home_path = home_path.clone();
        move |name: &str| {
            let h = Hierarchies::detect().unwrap();
            let path = CgroupPath::new(name).unwrap();
            let cg = Cgroup::create(&h, &path, &THREE).unwrap();
            cg.apply(&r).unwrap();
            cg.add_process(pid).unwrap();
            Cgroup::open(&h, &home_path, &THREE)
                .unwrap()
                .add_process(pid)
                .unwrap();
            cg.delete().unwrap();
        }
    };
    // cgroups-rs: its V1 hierarchy (parsed mountinfo) is built once.
    let cgroups_rs = {
        use cgroups_rs::fs::hierarchies::{V1, V2};
        let v1 = (!v2).then(V1::new);
        let hier = move || -> Box<dyn cgroups_rs::fs::Hierarchy> {
            match &v1 {
                Some(v1) => Box::new(v1.clone()),
                None => Box::new(V2::new()),
            }
        };
        let r = cgroups_rs_resources();
        let controllers: Vec<String> = ["memory", "cpu", "pids"].map(String::from).to_vec();
        let home = cgroups_rs::fs::Cgroup::load_with_specified_controllers(
            hier(),
            &home_name,
            controllers.clone(),
        );
        move |name: &str| {
            let cg = cgroups_rs::fs::Cgroup::new_with_specified_controllers(
                hier(),
                name,
                Some(controllers.clone()),
            )
            .unwrap();
            cg.apply(&r).unwrap();
            cg.add_task_by_tgid(cgroups_rs::CgroupPid::from(pid as u64))
                .unwrap();
            home.add_task_by_tgid(cgroups_rs::CgroupPid::from(pid as u64))
                .unwrap();
            cg.delete().unwrap();
        }
    };
    // libcgroups: a Manager per cgroup, as youki makes one per container.
    // v1: it joins every v1 hierarchy; v2: it enables every available
    // controller. Its add_task makes the directories, so it runs first.
    let opt = oci_resources();
    let libcgroups: Case = if v2 {
        use libcgroups::v2::manager::Manager;
        let root = PathBuf::from("/sys/fs/cgroup");
        let home = Manager::new(root.clone(), PathBuf::from(&home_name)).unwrap();
        Box::new(move |name: &str| {
            let m = Manager::new(root.clone(), PathBuf::from(name)).unwrap();
            libcgroups_iteration(&m, &home, &opt, pid);
        })
    } else {
        use libcgroups::v1::manager::Manager;
        let home = Manager::new(Path::new(&home_name)).unwrap();
        Box::new(move |name: &str| {
            let m = Manager::new(Path::new(name)).unwrap();
            libcgroups_iteration(&m, &home, &opt, pid);
        })
    };

    // Every hierarchy (v1) or every controller (v2), as libcgroups does.
    let all: &'static [Controller] = Vec::leak(
        h.list()
            .iter()
            .filter(|x| x.version == want)
            .flat_map(|x| x.controllers())
            .collect(),
    );
    let every = if v2 {
        "every v2 controller"
    } else {
        "every v1 hierarchy"
    };
    let mut cases: Vec<(String, Case)> = vec![
        (
            "dunnage-cgroups (memory, cpu, pids)".into(),
            Box::new(dunnage(&THREE)),
        ),
        (
            "dunnage-cgroups, Hierarchies::detect() each time".into(),
            Box::new(dunnage_detect),
        ),
        (
            "cgroups-rs 0.5 (memory, cpu, pids)".into(),
            Box::new(cgroups_rs),
        ),
        (format!("dunnage-cgroups, {every}"), Box::new(dunnage(all))),
        (
            format!("libcgroups 0.7 {want:?} Manager ({every})"),
            libcgroups,
        ),
    ];

    // DUNNAGE_BENCH_ONLY=text keeps the cases whose name contains it (to
    // profile one library).
    if let Ok(only) = std::env::var("DUNNAGE_BENCH_ONLY") {
        cases.retain(|(name, _)| name.contains(&only));
    }
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        format!("{parent_name}/iter-{n}")
    };
    // Warm up, then interleave the cases so that background load falls on
    // all of them alike.
    for (_, f) in cases.iter_mut() {
        for _ in 0..10 {
            f(&next());
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); cases.len()];
    for _ in 0..runs {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            samples[i].push(time(f, &next()));
        }
    }
    println!(
        "cgroup {want:?}: create + apply (memory, cpu quota, pids) + add a process + move it \
         out + remove, {runs} runs each, interleaved"
    );
    println!("{:<52} {:>10} {:>10}", "case", "median us", "mean us");
    let mut medians = Vec::new();
    for ((name, _), s) in cases.iter().zip(samples.iter_mut()) {
        let (median, mean) = summary(s);
        medians.push(median);
        println!("{name:<52} {median:>10.1} {mean:>10.1}");
    }
    if medians.len() == 5 {
        println!(
            "ratio dunnage / cgroups-rs (memory, cpu, pids, medians): {:.2}",
            medians[0] / medians[2]
        );
        println!(
            "ratio dunnage / libcgroups ({every}, medians): {:.2}",
            medians[3] / medians[4]
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(guard);
}

/// libcgroups' iteration: join (making the directories), apply, move the
/// child back home, remove.
fn libcgroups_iteration<M, H>(
    m: &M,
    home: &H,
    resources: &oci_spec::runtime::LinuxResources,
    pid: u32,
) where
    M: libcgroups::common::CgroupManager,
    M::Error: std::fmt::Debug,
    H: libcgroups::common::CgroupManager,
    H::Error: std::fmt::Debug,
{
    let nixpid = nix_pid(pid);
    m.add_task(nixpid).unwrap();
    m.apply(&libcgroups::common::ControllerOpt {
        resources,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    })
    .unwrap();
    home.add_task(nixpid).unwrap();
    m.remove().unwrap();
}

fn nix_pid(pid: u32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(pid as i32)
}
