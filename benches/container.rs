//! Library container lifecycle against crun: from a busybox image already
//! in the store, `Container` create + start + wait + remove of `/bin/true`
//! (overlay with an init layer, a cgroup with Docker's device rules, 5
//! namespaces, Docker's mounts, masked/read-only paths and capabilities),
//! against `crun run` of a plain bundle of the same rootfs (`crun spec`'s
//! defaults, `/bin/true`). Runs interleaved, in one process.
//!
//! crun 1.8 refuses this host's hybrid cgroup layout, so the benchmark
//! runs in a private mount namespace with `/sys/fs/cgroup/unified`
//! unmounted (RUNTIME.md), for both.
//!
//! ```sh
//! DUNNAGE_BENCH_RUNS=100 cargo bench -p dunnage-benches --bench container
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use dunnage::container::{Container, ContainerStore, StdioMode};
use dunnage::image::ImageChanges;
use dunnage_testsupport::{CgroupGuard, TempDir, find_in_path, privileged, unique_name};

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !privileged() || find_in_path("crun").is_none() || !Path::new("/bin/busybox").exists() {
        eprintln!("bench container: needs root, crun and /bin/busybox; skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // SAFETY: single-threaded here; a private mount namespace for this
    // process, then crun's workaround.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
        assert_eq!(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0
        );
        libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH);
    }
    let tmp = TempDir::new("bench-container").unwrap();
    let rootfs = tmp.join("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for app in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    let tar = tmp.join("rootfs.tar");
    assert!(
        StdCommand::new("tar")
            .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    // The bundle: crun's default spec, running /bin/true.
    let bundle = tmp.join("bundle");
    assert!(
        StdCommand::new("crun")
            .arg("spec")
            .current_dir(&bundle)
            .status()
            .unwrap()
            .success()
    );
    let path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();

    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let changes = ImageChanges {
        reference: Some("bench/busybox:1".parse().unwrap()),
        ..ImageChanges::default()
    };
    store.images().unwrap().import(&tar, &changes).unwrap();
    let parent = unique_name("bench-ctr");
    let mut guard = CgroupGuard::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(e.path().join(&parent));
    }
    let crun_root = tmp.join("crun-state");

    let lib = || {
        let mut c = Container::image("bench/busybox:1");
        let mut h = c
            .cgroup_parent(&parent)
            .arg("/bin/true")
            .stdout(StdioMode::Null)
            .stderr(StdioMode::Null)
            .create(&store)
            .unwrap();
        h.start().unwrap();
        assert_eq!(h.wait().unwrap().code, Some(0));
        h.remove(false).unwrap();
    };
    let crun = |n: usize| {
        let st = StdCommand::new("crun")
            .arg("--root")
            .arg(&crun_root)
            .args(["run", "-b"])
            .arg(&bundle)
            .arg(format!("{parent}-{n}"))
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    for n in 0..5 {
        lib();
        crun(n);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // CPU time (user + system) of this process and its waited-for
    // children: the library's work and its container's, crun's and its
    // container's.
    let (mut cpu_a, mut cpu_b) = (Duration::ZERO, Duration::ZERO);
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load().trim());
    for n in 0..runs {
        let (c, t) = (cpu(), Instant::now());
        lib();
        a.push(t.elapsed());
        cpu_a += cpu() - c;
        let (c, t) = (cpu(), Instant::now());
        crun(1000 + n);
        b.push(t.elapsed());
        cpu_b += cpu() - c;
    }
    println!("load average after: {}", load().trim());
    let (ma, mb) = (median(&mut a), median(&mut b));
    let per_run = |d: Duration| d.as_secs_f64() * 1e3 / runs as f64;
    println!("runs: {runs} each, interleaved (medians, wall ms; mean CPU ms user+sys)");
    println!(
        "library Container create+start+wait+remove /bin/true: {ma:.2} (CPU {:.2})",
        per_run(cpu_a)
    );
    println!(
        "crun run (plain bundle, /bin/true):                   {mb:.2} (CPU {:.2})",
        per_run(cpu_b)
    );
    println!("ratio library / crun: {:.2}", ma / mb);
    println!(
        "CPU ratio library / crun: {:.2}",
        per_run(cpu_a) / per_run(cpu_b)
    );
}

/// User + system CPU time of this process and of its waited-for children.
fn cpu() -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills a zeroed rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a rusage.
        unsafe { libc::getrusage(who, &mut ru) };
        total += tv(ru.ru_utime) + tv(ru.ru_stime);
    }
    total
}
