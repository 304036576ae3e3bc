//! Spawn-to-exit of `/bin/true` in new mnt+uts+ipc+pid+net namespaces:
//! through the library, and `examples/unshare` against util-linux `unshare`,
//! interleaved in one run.
//!
//! ```text
//! cargo build --release --example unshare && cargo bench -p dunnage-benches --bench namespace_spawn
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 200). Needs root.
//! `DUNNAGE_BENCH_OTHER_UNSHARE=PATH` adds another build of the example (of
//! an older commit, say) as a last case. Each case reports wall time and the
//! CPU time of this process and its children (`getrusage`), which a loaded
//! machine disturbs much less.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dunnage::namespaces::{Command, Kind, Kinds};

const ARGS: [&str; 7] = [
    "--fork",
    "--mount",
    "--uts",
    "--ipc",
    "--pid",
    "--net",
    "/bin/true",
];

fn kinds() -> Kinds {
    Kind::Mount | Kind::Uts | Kind::Ipc | Kind::Pid | Kind::Net
}

/// Median and mean of the samples, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    (ms(samples[samples.len() / 2]), mean)
}

/// CPU time used so far by this process and its reaped children.
fn cpu() -> Duration {
    let used = |who| {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    used(libc::RUSAGE_SELF) + used(libc::RUSAGE_CHILDREN)
}

/// Wall time and CPU time (this process and the children) of one run.
fn time(f: &mut dyn FnMut()) -> (Duration, Duration) {
    let (start, cpu_start) = (Instant::now(), cpu());
    f();
    (start.elapsed(), cpu() - cpu_start)
}

fn example() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples/unshare");
    path.exists().then_some(path)
}

fn run_tool(program: &Path) {
    let status = std::process::Command::new(program)
        .args(ARGS)
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", program.display());
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("namespace_spawn: needs root, skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let library = |ns: Kinds| {
        move || {
            let status = Command::new("/bin/true").namespaces(ns).status().unwrap();
            assert!(status.success());
        }
    };
    let mut cases: Vec<(String, Box<dyn FnMut()>)> = vec![
        (
            "std::process::Command (baseline)".into(),
            Box::new(|| {
                let status = std::process::Command::new("/bin/true").status().unwrap();
                assert!(status.success());
            }),
        ),
        (
            "library Command, no new namespaces".into(),
            Box::new(library(Kinds::EMPTY)),
        ),
        (
            "library Command, mnt+uts+ipc+pid".into(),
            Box::new(library(kinds().without(Kind::Net))),
        ),
        (
            "library Command, mnt+uts+ipc+pid+net".into(),
            Box::new(library(kinds())),
        ),
    ];
    // The indices of the two cases compared in the ratio, where present.
    let mut ours_case = None;
    let mut util_case = None;
    match example() {
        Some(ex) => {
            ours_case = Some(cases.len());
            cases.push((
                format!("examples/unshare {}", ARGS.join(" ")),
                Box::new(move || run_tool(&ex)),
            ));
        }
        None => eprintln!("examples/unshare not built: cargo build --release --example unshare"),
    }
    let util = PathBuf::from("/usr/bin/unshare");
    if util.exists() {
        util_case = Some(cases.len());
        cases.push((
            format!("util-linux unshare {}", ARGS.join(" ")),
            Box::new(move || run_tool(&util)),
        ));
    }
    // Another build of the example to compare with (say, of an older
    // commit), appended as a last case.
    if let Some(other) = std::env::var_os("DUNNAGE_BENCH_OTHER_UNSHARE").map(PathBuf::from) {
        cases.push((
            format!("{} {}", other.display(), ARGS.join(" ")),
            Box::new(move || run_tool(&other)),
        ));
    }
    // Warm up, then interleave the cases so that background noise and the
    // kernel's deferred network-namespace cleanup fall on all of them alike.
    for (_, f) in cases.iter_mut() {
        for _ in 0..10 {
            f();
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); cases.len()];
    let mut cpu_samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); cases.len()];
    for _ in 0..runs {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let (wall, cpu) = time(f);
            samples[i].push(wall);
            cpu_samples[i].push(cpu);
        }
    }
    println!("spawn-to-exit of /bin/true, {runs} runs each, interleaved");
    println!(
        "{:<70} {:>10} {:>10} {:>12}",
        "case", "median ms", "mean ms", "cpu med ms"
    );
    let (mut medians, mut cpu_medians) = (Vec::new(), Vec::new());
    for (((name, _), s), c) in cases
        .iter()
        .zip(samples.iter_mut())
        .zip(cpu_samples.iter_mut())
    {
        let (median, mean) = summary(s);
        let (cpu_median, _) = summary(c);
        medians.push(median);
        cpu_medians.push(cpu_median);
        println!("{name:<70} {median:>10.3} {mean:>10.3} {cpu_median:>12.3}");
    }
    if let (Some(a), Some(b)) = (ours_case, util_case) {
        println!(
            "examples/unshare / util-linux unshare: wall median {:.2}, cpu median {:.2}",
            medians[a] / medians[b],
            cpu_medians[a] / cpu_medians[b]
        );
    }
}
