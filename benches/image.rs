//! `dunnage load` / `dunnage save` (examples/dunnage.rs) against `docker
//! load` / `docker save` of a private dockerd, on the same multi-layer
//! docker-archive (~500 MB, generated here), interleaved in one run.
//!
//! ```text
//! cargo build --release --example dunnage && cargo bench -p dunnage-benches --bench image
//! ```
//! Each `load` goes into a fresh store (ours) or a fresh private dockerd,
//! so both write every layer each time. Each `save` writes the whole
//! archive to a new file. Nothing is deleted until the end. `DUNNAGE_BENCH_RUNS` sets the
//! runs per case (default 5); `DUNNAGE_BENCH_MB` the archive size (default
//! 500); `DUNNAGE_BENCH_LAYERS` its layers (default 8). Prints the load
//! average before and after the timed runs, and the CPU time (user +
//! system) of each load: ours from `getrusage(RUSAGE_CHILDREN)` around
//! the CLI, docker's as the CLI's plus what the daemon and the children it
//! reaped (its untar processes) used meanwhile (`/proc/PID/stat`). Needs
//! root and dockerd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dunnage::layerstore::Digest;
use dunnage_testsupport::{Dockerd, TempDir, example_binary};

const TAG: &str = "dunnage-bench/big:1";

/// A deterministic pseudo-random byte stream (xorshift64*), so layers do
/// not compress or deduplicate into something unrealistically small.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// One layer tar of about `bytes` bytes: directories of files of 1 to
/// 128 KiB.
fn layer(index: usize, bytes: usize, noise: &mut Noise) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::with_capacity(bytes + (1 << 20)));
    let mut written = 0;
    let mut n = 0;
    let mut data = vec![0u8; 128 << 10];
    while written < bytes {
        if n % 100 == 0 {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_size(0);
            b.append_data(&mut h, format!("layer{index}/d{}/", n / 100), &[][..])
                .unwrap();
        }
        noise.fill(&mut data[..8]);
        let size = 1024 + (u64::from_le_bytes(data[..8].try_into().unwrap()) % (127 << 10));
        let size = size as usize;
        noise.fill(&mut data[..size]);
        let mut h = tar::Header::new_ustar();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(
            &mut h,
            format!("layer{index}/d{}/f{n}", n / 100),
            &data[..size],
        )
        .unwrap();
        written += size;
        n += 1;
    }
    b.into_inner().unwrap()
}

/// Write a pre-25 docker-archive of one image with `layers` layers of
/// `total / layers` bytes each to `path`.
fn make_archive(path: &Path, total: usize, layers: usize) {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = tar::Builder::new(BufWriter::with_capacity(
        1 << 20,
        File::create(path).unwrap(),
    ));
    let mut diff_ids = Vec::new();
    let mut members = Vec::new();
    for i in 0..layers {
        let tar = layer(i, total / layers, &mut noise);
        diff_ids.push(format!("\"{}\"", Digest::sha256_of(&tar)));
        let name = format!("{i:02}/layer.tar");
        let mut h = tar::Header::new_ustar();
        h.set_size(tar.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &name, &tar[..]).unwrap();
        members.push(format!("\"{name}\""));
    }
    let history = vec![r#"{"created":"2024-01-02T03:04:05Z","created_by":"bench"}"#; layers];
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{{"Cmd":["sh"]}},"history":[{}],"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        history.join(","),
        diff_ids.join(",")
    );
    let config_name = format!("{}.json", Digest::sha256_of(config.as_bytes()).hex());
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["{TAG}"],"Layers":[{}]}}]"#,
        members.join(",")
    );
    for (name, data) in [(config_name.as_str(), config), ("manifest.json", manifest)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    out.into_inner().unwrap().flush().unwrap();
}

fn run(cmd: &mut Command) {
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CPU seconds (user + system) of the reaped children of this process.
fn children_cpu() -> f64 {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// CPU seconds of process `pid` and of the children it reaped
/// (utime + stime + cutime + cstime of `/proc/PID/stat`).
fn proc_cpu(pid: Option<u32>) -> f64 {
    let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    // Fields after the name: state is field 3, utime field 14.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = (11..15)
        .filter_map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64()
}

fn list(samples: &[Duration]) -> String {
    let s: Vec<String> = samples
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect();
    s.join(" ")
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if unsafe { libc::geteuid() } != 0 || !Path::new(dunnage_testsupport::DOCKERD).exists() {
        eprintln!("image: needs root and dockerd, skipped");
        return;
    }
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = env("DUNNAGE_BENCH_RUNS", 5);
    let megabytes = env("DUNNAGE_BENCH_MB", 500);
    let layers = env("DUNNAGE_BENCH_LAYERS", 8).max(1);
    let dunnage = example_binary("dunnage");
    let dir = TempDir::new("bench-image").unwrap();
    let archive = dir.join("big.tar");
    make_archive(&archive, megabytes << 20, layers);
    let size = std::fs::metadata(&archive).unwrap().len();
    let ours = |root: &Path| {
        let mut c = Command::new(&dunnage);
        c.arg("--root").arg(root);
        c
    };
    // Nothing is deleted while timing: on this machine's journal-less ext4,
    // creating files soon after thousands were deleted is several times
    // slower (the inode allocator skips recently deleted inodes), which
    // would tax whichever tool runs after a deletion. So every load goes
    // into a fresh store or a fresh dockerd, every save into a new file,
    // and all of it is removed at the end.
    let mut daemons = Vec::new();
    let fresh_daemon = |i: usize| Dockerd::start(&format!("bench-image-{i}")).unwrap();
    // Warm-up: one load each (fills the page cache with the archive).
    run(ours(&dir.join("warm"))
        .args(["load", "-q", "-i"])
        .arg(&archive));
    let d = fresh_daemon(99);
    run(d.docker().args(["load", "-q", "-i"]).arg(&archive));
    daemons.push(d.stop().unwrap());

    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = loadavg();
    let (mut our_load, mut docker_load, mut our_save, mut docker_save) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut our_cpu, mut docker_cpu) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let store = dir.join(format!("store{i}"));
        let our_out = dir.join(format!("ours-saved-{i}.tar"));
        let docker_out = dir.join(format!("docker-saved-{i}.tar"));
        let d = fresh_daemon(i);
        let mut cases: Vec<Box<dyn FnMut()>> = vec![
            Box::new(|| {
                let cpu = children_cpu() + proc_cpu(d.pid());
                docker_load.push(time(|| {
                    run(d.docker().args(["load", "-q", "-i"]).arg(&archive))
                }));
                docker_cpu.push(children_cpu() + proc_cpu(d.pid()) - cpu);
                docker_save.push(time(|| {
                    run(d.docker().args(["save", "-o"]).arg(&docker_out).arg(TAG))
                }));
            }),
            Box::new(|| {
                let cpu = children_cpu();
                our_load.push(time(|| {
                    run(ours(&store).args(["load", "-q", "-i"]).arg(&archive))
                }));
                our_cpu.push(children_cpu() - cpu);
                our_save.push(time(|| {
                    run(ours(&store).args(["save", "-o"]).arg(&our_out).arg(TAG))
                }));
            }),
        ];
        // Alternate which tool goes first.
        if i % 2 == 1 {
            cases.reverse();
        }
        for case in &mut cases {
            case();
        }
        drop(cases);
        daemons.push(d.stop().unwrap());
    }
    let load_after = loadavg();
    let samples = [
        list(&our_load),
        list(&docker_load),
        list(&our_save),
        list(&docker_save),
    ];
    let (ol, dl, os, ds) = (
        median(&mut our_load),
        median(&mut docker_load),
        median(&mut our_save),
        median(&mut docker_save),
    );
    println!(
        "archive: {:.0} MB, {layers} layers; {runs} runs each, interleaved",
        size as f64 / 1e6
    );
    println!(
        "{:<16} {:>9} {:>7}   runs (s, in run order)",
        "case", "median s", "MB/s"
    );
    for ((name, s), runs) in [
        ("dunnage load", ol),
        ("docker load", dl),
        ("dunnage save", os),
        ("docker save", ds),
    ]
    .into_iter()
    .zip(samples)
    {
        println!(
            "{name:<16} {s:>9.2} {:>7.0}   {runs}",
            size as f64 / 1e6 / s
        );
    }
    println!(
        "loadavg before: {}; after: {}",
        load_before.trim(),
        load_after.trim()
    );
    let secs = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "load CPU s (user+sys): dunnage {}; docker {}",
        secs(&our_cpu),
        secs(&docker_cpu)
    );
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (oc, dc) = (med(&mut our_cpu), med(&mut docker_cpu));
    println!(
        "load CPU medians: dunnage {oc:.2} s, docker {dc:.2} s, docker / dunnage = {:.2}",
        dc / oc
    );
    println!("load: docker / dunnage = {:.2}", dl / ol);
    println!("save: docker / dunnage = {:.2}", ds / os);
}
