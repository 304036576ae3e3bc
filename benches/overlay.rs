//! The overlay crate against its peers, interleaved in one run:
//!
//! - apply: [`apply_layer`] of a generated ~500 MB layer tar (~20,000
//!   entries: directories, files of mixed sizes, symlinks, hardlinks,
//!   whiteouts, opaque markers) vs GNU `tar -x` of the same file, each into
//!   a fresh directory on the same filesystem;
//! - mount: [`Mount::mount`] of 1, 128 and 500 lowers vs the bare syscalls
//!   (`fsopen`, one `fsconfig("lowerdir+")` per layer, `fsmount`,
//!   `move_mount`) on the same directories;
//! - diff: [`write_diff`] of the applied tree vs `tar -c` of it, both into
//!   a file on the same filesystem.
//!
//! ```text
//! cargo bench -p dunnage-benches --bench overlay
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs of the apply and diff cases (default
//! 5), `DUNNAGE_BENCH_MOUNT_RUNS` those of the mount cases (default 50);
//! `DUNNAGE_BENCH_ONLY=mount`, `apply` or `diff` (apply, then diff of its
//! result) runs a part.
//! Needs root. All data lives under a `dunnage-test-` temp dir that is
//! removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dunnage::overlay::{
    ApplyOptions, DiffOptions, Mount, MountMethod, apply_layer, unmount, write_diff,
};
use dunnage_testsupport::{Rng, TempDir};
use rustix::fs::CWD;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};

/// What the generated layer holds.
#[derive(Default)]
struct LayerShape {
    entries: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    hardlinks: u64,
    whiteouts: u64,
    opaque: u64,
    bytes: u64,
}

/// Write the benchmark layer to `path`: 40 x 25 directories, 18,600 files
/// (grouped by directory)
/// (70% under 4 KiB, 25% 4-16 KiB, 4.7% 64-256 KiB, 0.3% 2-8 MiB), 300
/// symlinks, 100 hardlinks, 50 whiteouts and 5 opaque markers.
fn generate_layer(path: &Path) -> LayerShape {
    let mut rng = Rng::new(0x00d0_0a9e_5eed_1234);
    let mut pool = vec![0u8; 9 << 20];
    for chunk in pool.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let mut b = tar::Builder::new(BufWriter::with_capacity(
        1 << 20,
        File::create(path).unwrap(),
    ));
    let mut shape = LayerShape::default();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    };
    let mut dirs = Vec::new();
    for top in 0..40 {
        let d = format!("d{top:02}/");
        b.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            &d,
            &[][..],
        )
        .unwrap();
        shape.dirs += 1;
        for sub in 0..25 {
            let s = format!("d{top:02}/s{sub:02}/");
            b.append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                &s,
                &[][..],
            )
            .unwrap();
            shape.dirs += 1;
            dirs.push(s);
        }
    }
    let mut files = Vec::new();
    // Files grouped by directory, as `tar -c` writes them.
    for i in 0..18_600u64 {
        let dir = &dirs[i as usize * dirs.len() / 18_600];
        let r = rng.below(1000);
        let size = if r < 707 {
            rng.below(4 << 10)
        } else if r < 957 {
            (4 << 10) + rng.below(12 << 10)
        } else if r < 997 {
            (64 << 10) + rng.below(192 << 10)
        } else {
            (2 << 20) + rng.below(6 << 20)
        };
        let off = rng.below((pool.len() as u64) - size) as usize;
        let mode = match i % 50 {
            0 => 0o755,
            1 => 0o4755,
            2 => 0o600,
            _ => 0o644,
        };
        let name = format!("{dir}f{i:05}.dat");
        b.append_data(
            &mut header(tar::EntryType::Regular, mode, size),
            &name,
            &pool[off..off + size as usize],
        )
        .unwrap();
        shape.files += 1;
        shape.bytes += size;
        files.push(name);
    }
    for i in 0..300 {
        let dir = &dirs[(i * 7) % dirs.len()];
        let target = if i % 10 == 0 {
            "/etc/os-release".to_string()
        } else {
            format!("../../{}", files[(i * 31) % files.len()])
        };
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("{dir}link{i:03}"), &target)
            .unwrap();
        shape.symlinks += 1;
    }
    for i in 0..100 {
        let dir = &dirs[(i * 13) % dirs.len()];
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        b.append_link(
            &mut h,
            format!("{dir}hard{i:03}"),
            &files[(i * 97) % files.len()],
        )
        .unwrap();
        shape.hardlinks += 1;
    }
    for i in 0..50 {
        let dir = &dirs[(i * 17) % dirs.len()];
        let mut h = header(tar::EntryType::Regular, 0o600, 0);
        b.append_data(&mut h, format!("{dir}.wh.gone{i:02}"), &[][..])
            .unwrap();
        shape.whiteouts += 1;
    }
    for i in 0..5 {
        let dir = &dirs[i * 100 + 3];
        let mut h = header(tar::EntryType::Regular, 0o600, 0);
        b.append_data(&mut h, format!("{dir}.wh..wh..opq"), &[][..])
            .unwrap();
        shape.opaque += 1;
    }
    b.into_inner().unwrap().flush().unwrap();
    shape.entries = shape.dirs
        + shape.files
        + shape.symlinks
        + shape.hardlinks
        + shape.whiteouts
        + shape.opaque;
    shape
}

/// Write back dirty pages so that one case's writeback does not land in
/// the next case's time.
fn syncfs(dir: &Path) {
    let fd = File::open(dir).unwrap();
    rustix::fs::syncfs(&fd).unwrap();
}

/// User + system CPU time of this process and its waited-for children.
fn cpu_time() -> Duration {
    let usage = |who| {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid, writable rusage.
        assert_eq!(unsafe { libc::getrusage(who, &mut ru) }, 0);
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

/// Wall-clock and CPU time of one timed call.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn time(f: impl FnOnce()) -> Sample {
    let cpu = cpu_time();
    let start = Instant::now();
    f();
    Sample {
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// The median of `tar_case / lib_case` wall-clock ratios taken round by
/// round (the two ran back to back, so slow phases of the shared machine
/// fall on both), with the per-round ratios.
fn round_ratios(samples: &[Vec<Sample>], lib: usize, peer: usize) -> (f64, Vec<f64>) {
    let per: Vec<f64> = samples[lib]
        .iter()
        .zip(&samples[peer])
        .map(|(l, p)| p.wall.as_secs_f64() / l.wall.as_secs_f64())
        .collect();
    let mut sorted = per.clone();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], per)
}

/// Median and minimum wall-clock time, median CPU time.
fn summary(samples: &[Sample]) -> (Duration, Duration, Duration) {
    let mut wall: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    let mut cpu: Vec<Duration> = samples.iter().map(|s| s.cpu).collect();
    wall.sort();
    cpu.sort();
    (wall[wall.len() / 2], wall[0], cpu[cpu.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn remove(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
}

/// Interleave `cases` for `runs` rounds (the order is reversed every other
/// round); `prepare(case, round)` runs untimed before each case, `f` is
/// timed. Returns the samples per case.
fn interleave(
    runs: usize,
    cases: usize,
    mut prepare: impl FnMut(usize, usize),
    mut f: impl FnMut(usize, usize),
    mut cleanup: impl FnMut(usize, usize),
) -> Vec<Vec<Sample>> {
    let mut samples = vec![Vec::with_capacity(runs); cases];
    for round in 0..runs {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..cases).collect()
        } else {
            (0..cases).rev().collect()
        };
        for c in order {
            prepare(c, round);
            samples[c].push(time(|| f(c, round)));
            cleanup(c, round);
        }
    }
    samples
}

fn bench_apply(t: &TempDir, runs: usize) -> PathBuf {
    let layer = t.join("layer.tar");
    let start = Instant::now();
    let shape = generate_layer(&layer);
    let size = std::fs::metadata(&layer).unwrap().len();
    println!(
        "layer: {} bytes ({:.0} MB) in {:.1} s: {} entries ({} files of {} bytes, {} dirs, {} symlinks, {} hardlinks, {} whiteouts, {} opaque markers)",
        size,
        size as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        shape.entries,
        shape.files,
        shape.bytes,
        shape.dirs,
        shape.symlinks,
        shape.hardlinks,
        shape.whiteouts,
        shape.opaque
    );
    // Read the layer once so both start from the page cache.
    std::io::copy(&mut File::open(&layer).unwrap(), &mut std::io::sink()).unwrap();
    let names = ["apply_layer", "tar -x"];
    let dir = |c: usize, round: usize| t.join(format!("apply-{c}-{round}"));
    let last = runs - 1;
    let samples = interleave(
        runs,
        2,
        |c, round| {
            std::fs::create_dir(dir(c, round)).unwrap();
            syncfs(t.path());
        },
        |c, round| {
            let out = dir(c, round);
            if c == 0 {
                let stats =
                    apply_layer(File::open(&layer).unwrap(), &out, &ApplyOptions::default())
                        .unwrap();
                assert_eq!(stats.entries, shape.entries);
                assert_eq!(stats.whiteouts, shape.whiteouts);
            } else {
                run(Command::new("tar")
                    .arg("-x")
                    .arg("-f")
                    .arg(&layer)
                    .arg("-C")
                    .arg(&out));
            }
        },
        |c, round| {
            if !(c == 0 && round == last) {
                syncfs(t.path());
                remove(&dir(c, round));
            }
        },
    );
    println!("\napply, {runs} runs each, interleaved");
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>12}",
        "case", "median ms", "min ms", "MB/s", "CPU ms (med)"
    );
    let mut medians = Vec::new();
    for (name, s) in names.iter().zip(samples.iter()) {
        let (m, min, cpu) = summary(s);
        medians.push((m, min, cpu));
        println!(
            "{name:<24} {:>10.0} {:>10.0} {:>10.0} {:>12.0}",
            ms(m),
            ms(min),
            size as f64 / 1e6 / m.as_secs_f64(),
            ms(cpu)
        );
    }
    println!(
        "apply_layer throughput / tar -x throughput: {:.2} (medians), {:.2} (minima), {:.2} (CPU time)",
        medians[1].0.as_secs_f64() / medians[0].0.as_secs_f64(),
        medians[1].1.as_secs_f64() / medians[0].1.as_secs_f64(),
        medians[1].2.as_secs_f64() / medians[0].2.as_secs_f64()
    );
    let (ratio, per) = round_ratios(&samples, 0, 1);
    println!(
        "  median of per-round ratios: {ratio:.2}; per round (tar time / apply_layer time): {}",
        per.iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::fs::remove_file(&layer).unwrap();
    dir(0, last)
}

fn bench_diff(t: &TempDir, upper: &Path, runs: usize) {
    let out = |c: usize| t.join(format!("diff-{c}.tar"));
    let names = [
        "write_diff",
        "tar -c --sort=name",
        "tar -c --sort=name --format=posix --xattrs",
    ];
    let mut sizes = [0u64; 3];
    let samples = interleave(
        runs,
        3,
        |_, _| syncfs(t.path()),
        |c, _| match c {
            0 => {
                let f = File::create(out(0)).unwrap();
                write_diff(upper, f, &DiffOptions::default()).unwrap();
            }
            1 => run(Command::new("tar")
                .args(["-c", "--sort=name", "-f"])
                .arg(out(1))
                .arg("-C")
                .arg(upper)
                .arg(".")),
            _ => run(Command::new("tar")
                .args(["-c", "--sort=name", "--format=posix", "--xattrs", "-f"])
                .arg(out(2))
                .arg("-C")
                .arg(upper)
                .arg(".")),
        },
        |c, _| {
            sizes[c] = std::fs::metadata(out(c)).unwrap().len();
            std::fs::remove_file(out(c)).unwrap();
        },
    );
    println!("\ndiff of the applied tree into a file, {runs} runs each, interleaved");
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>12}",
        "case", "median ms", "min ms", "CPU ms (med)", "tar bytes"
    );
    let mut medians = Vec::new();
    for ((name, s), size) in names.iter().zip(samples.iter()).zip(sizes) {
        let (m, min, cpu) = summary(s);
        medians.push((m, min, cpu));
        println!(
            "{name:<44} {:>10.0} {:>10.0} {:>12.0} {size:>12}",
            ms(m),
            ms(min),
            ms(cpu)
        );
    }
    for (i, name) in names.iter().enumerate().skip(1) {
        println!(
            "write_diff throughput / {name}: {:.2} (medians), {:.2} (minima), {:.2} (CPU time)",
            medians[i].0.as_secs_f64() / medians[0].0.as_secs_f64(),
            medians[i].1.as_secs_f64() / medians[0].1.as_secs_f64(),
            medians[i].2.as_secs_f64() / medians[0].2.as_secs_f64()
        );
        let (ratio, per) = round_ratios(&samples, 0, i);
        println!(
            "  median of per-round ratios: {ratio:.2}; per round: {}",
            per.iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// The bare new mount API, as the library uses it.
fn bare_mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).unwrap();
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l).unwrap();
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", upper).unwrap();
    rustix::mount::fsconfig_set_string(&fs, "workdir", work).unwrap();
    rustix::mount::fsconfig_create(&fs).unwrap();
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .unwrap();
    rustix::mount::move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .unwrap();
}

fn bench_mount(t: &TempDir, runs: usize) {
    let base = t.join("mount");
    let lowers: Vec<PathBuf> = (0..500).map(|i| base.join(format!("{i:03}"))).collect();
    for (i, l) in lowers.iter().enumerate() {
        std::fs::create_dir_all(l).unwrap();
        std::fs::write(l.join(format!("f{i}")), b"x").unwrap();
    }
    let target = base.join("merged");
    std::fs::create_dir(&target).unwrap();
    // Cases: (lowers, method); method None = bare syscalls.
    let cases: Vec<(usize, Option<MountMethod>)> = vec![
        (1, Some(MountMethod::Auto)),
        (1, None),
        (1, Some(MountMethod::Legacy)),
        (128, Some(MountMethod::Auto)),
        (128, None),
        (128, Some(MountMethod::Legacy)),
        (500, Some(MountMethod::Auto)),
        (500, None),
    ];
    // A fresh upper and work directory for every mount.
    let uw = |c: usize, round: usize| {
        (
            base.join(format!("upper-{c}-{round}")),
            base.join(format!("work-{c}-{round}")),
        )
    };
    let warm = 5;
    let mut samples = interleave(
        runs + warm,
        cases.len(),
        |c, round| {
            let (u, w) = uw(c, round);
            std::fs::create_dir(&u).unwrap();
            std::fs::create_dir(&w).unwrap();
        },
        |c, round| {
            let (n, method) = cases[c];
            let (u, w) = uw(c, round);
            match method {
                Some(method) => {
                    let mut m = Mount::new(&target).upper(&u, &w);
                    m.lowers = lowers[..n].to_vec();
                    m.mount_with(method).unwrap();
                }
                None => bare_mount(&lowers[..n], &u, &w, &target),
            }
        },
        |c, round| {
            assert!(target.join(format!("f{}", cases[c].0 - 1)).exists());
            unmount(&target).unwrap();
            let (u, w) = uw(c, round);
            remove(&u);
            remove(&w);
        },
    );
    println!(
        "\nmount of an overlay with an upper layer, {runs} runs each after {warm} warm-up, interleaved"
    );
    println!("{:<44} {:>10} {:>10}", "case", "median ms", "min ms");
    let mut medians = Vec::new();
    for (&(n, method), s) in cases.iter().zip(samples.iter_mut()) {
        s.drain(..warm);
        let (m, min, _) = summary(s);
        medians.push(m);
        let name = match method {
            Some(MountMethod::Legacy) => format!("{n} lowers, Mount::mount_with(Legacy)"),
            Some(_) => format!("{n} lowers, Mount::mount (new API)"),
            None => format!("{n} lowers, bare fsopen/fsconfig/fsmount"),
        };
        println!("{name:<44} {:>10.3} {:>10.3}", ms(m), ms(min));
    }
    for (lib, bare) in [(0, 1), (3, 4), (6, 7)] {
        println!(
            "{} lowers: library / bare syscalls (medians): {:.2}",
            cases[lib].0,
            medians[lib].as_secs_f64() / medians[bare].as_secs_f64()
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("overlay bench: needs root, skipped");
        return;
    }
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            .max(1)
    };
    let runs = env("DUNNAGE_BENCH_RUNS", 5);
    let mount_runs = env("DUNNAGE_BENCH_MOUNT_RUNS", 50);
    let only = std::env::var("DUNNAGE_BENCH_ONLY").unwrap_or_default();
    let t = TempDir::new("bench-overlay").unwrap();
    if only.is_empty() || only == "mount" {
        bench_mount(&t, mount_runs);
    }
    if only.is_empty() || only == "apply" || only == "diff" {
        let upper = bench_apply(&t, runs);
        if only != "apply" {
            bench_diff(&t, &upper, runs);
        }
    }
}
