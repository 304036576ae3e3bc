//! One cgroup's life on the host's v1 hierarchies, through dunnage-cgroups,
//! youki's `libcgroups` (v1 manager) and `cgroups-rs`, interleaved in one run.
//!
//! Per iteration: create `dunnage-test-bench-.../iter-N` (memory, cpu and
//! pids hierarchies), apply a 64 MiB memory limit, a 0.5 CPU quota and a
//! pids max of 32, move one long-lived child in, move it back out to the
//! parent cgroup, remove the cgroup. The child (`sleep`) is spawned once and
//! placed in the parent cgroup `dunnage-test-bench-...` (created in every
//! hierarchy) before the run, so that no library writes to the cgroup this
//! process runs in.
//!
//! ```text
//! cargo bench --bench cgroup_lifecycle
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 300). Needs root and
//! v1 memory, cpu and pids hierarchies (a legacy or hybrid host).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use dunnage::cgroups::{Cgroup, CgroupPath, Controller, Hierarchies, Limit, Resources, Version};
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
    if THREE
        .iter()
        .any(|&c| h.for_controller(c).is_none_or(|x| x.version != Version::V1))
    {
        eprintln!("cgroup_lifecycle: needs v1 memory, cpu and pids hierarchies, skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);

    // The parent cgroup in every hierarchy, holding the child.
    let parent_name = unique_name("bench");
    let parent_path = CgroupPath::new(&parent_name).unwrap();
    let mut guard = CgroupGuard::new();
    for hier in h.list() {
        guard.add(hier.mount_point.join(&parent_name));
    }
    let parent = Cgroup::create(&h, &parent_path, &[]).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100000")
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child_guard = ChildGuard::new(pid as i32);
    parent.add_process(pid).unwrap();

    // dunnage-cgroups: the host's hierarchies are discovered once.
    let dunnage = |controllers: &'static [Controller]| {
        let h = h.clone();
        let parent = Cgroup::open(&h, &parent_path, controllers).unwrap();
        let r = dunnage_resources();
        move |name: &str| {
            let path = CgroupPath::new(name).unwrap();
            let cg = Cgroup::create(&h, &path, controllers).unwrap();
            cg.apply(&r).unwrap();
            cg.add_process(pid).unwrap();
            parent.add_process(pid).unwrap();
            cg.delete().unwrap();
        }
    };
    // The same, discovering the hierarchies (mountinfo) every time.
    let dunnage_detect = {
        let r = dunnage_resources();
        let parent_path = parent_path.clone();
        move |name: &str| {
            let h = Hierarchies::detect().unwrap();
            let path = CgroupPath::new(name).unwrap();
            let cg = Cgroup::create(&h, &path, &THREE).unwrap();
            cg.apply(&r).unwrap();
            cg.add_process(pid).unwrap();
            Cgroup::open(&h, &parent_path, &THREE)
                .unwrap()
                .add_process(pid)
                .unwrap();
            cg.delete().unwrap();
        }
    };
    // cgroups-rs: its V1 hierarchy (parsed mountinfo) is built once.
    let cgroups_rs = {
        let v1 = cgroups_rs::fs::hierarchies::V1::new();
        let r = cgroups_rs_resources();
        let controllers: Vec<String> = ["memory", "cpu", "pids"].map(String::from).to_vec();
        let parent = cgroups_rs::fs::Cgroup::load_with_specified_controllers(
            Box::new(v1.clone()),
            &parent_name,
            controllers.clone(),
        );
        move |name: &str| {
            let cg = cgroups_rs::fs::Cgroup::new_with_specified_controllers(
                Box::new(v1.clone()),
                name,
                Some(controllers.clone()),
            )
            .unwrap();
            cg.apply(&r).unwrap();
            cg.add_task_by_tgid(cgroups_rs::CgroupPid::from(pid as u64))
                .unwrap();
            parent
                .add_task_by_tgid(cgroups_rs::CgroupPid::from(pid as u64))
                .unwrap();
            cg.delete().unwrap();
        }
    };
    // libcgroups: a v1 Manager per cgroup, as youki makes one per
    // container; it joins every v1 hierarchy (directories are made by
    // add_task), so it is run before apply.
    let libcgroups = {
        use libcgroups::common::{CgroupManager, ControllerOpt};
        let r = oci_resources();
        let parent = libcgroups::v1::manager::Manager::new(Path::new(&parent_name)).unwrap();
        move |name: &str| {
            let m = libcgroups::v1::manager::Manager::new(Path::new(name)).unwrap();
            let nixpid = nix_pid(pid);
            m.add_task(nixpid).unwrap();
            m.apply(&ControllerOpt {
                resources: &r,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .unwrap();
            parent.add_task(nixpid).unwrap();
            m.remove().unwrap();
        }
    };

    let all_v1: &'static [Controller] = Vec::leak(
        h.list()
            .iter()
            .filter(|x| x.version == Version::V1)
            .flat_map(|x| x.controllers())
            .collect(),
    );
    let mut cases: Vec<(&str, Case)> = vec![
        (
            "dunnage-cgroups (memory, cpu, pids)",
            Box::new(dunnage(&THREE)),
        ),
        (
            "dunnage-cgroups, Hierarchies::detect() each time",
            Box::new(dunnage_detect),
        ),
        ("cgroups-rs 0.5 (memory, cpu, pids)", Box::new(cgroups_rs)),
        (
            "dunnage-cgroups, every v1 hierarchy",
            Box::new(dunnage(all_v1)),
        ),
        (
            "libcgroups 0.7 v1 Manager (every v1 hierarchy)",
            Box::new(libcgroups),
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
        "create + apply (memory, cpu quota, pids) + add a process + move it out + remove, \
         {runs} runs each, interleaved"
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
            "ratio dunnage / libcgroups (every v1 hierarchy, medians): {:.2}",
            medians[3] / medians[4]
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(guard);
}

fn nix_pid(pid: u32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(pid as i32)
}
