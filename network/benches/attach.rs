//! Per-container network setup and teardown through the library: one
//! `Networks::attach` (lease, veth pair with the peer made in the
//! container's namespace, bridge port, MAC, address, default route,
//! nftables rule set) and one `Networks::detach`, timed separately (wall
//! and the process's CPU time), with and without a published port, in two
//! orders: the container's namespace alive at detach, and the facade's
//! (the namespace closed right before the detach, as `remove` kills the
//! container first).
//! Everything happens in namespaces made here (`dunnage-test-bench-*`),
//! deleted at the end.
//!
//! ```text
//! cargo bench -p dunnage-network --bench attach
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 200). Needs root
//! and `ip`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use dunnage_network::{NetworkSpec, Networks, PortMapping, netns};
use dunnage_testsupport::{TempDir, unique_name};

struct Ns {
    name: String,
    fd: OwnedFd,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = unique_name(tag);
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        let fd = netns::open(&PathBuf::from("/run/netns").join(&name)).unwrap();
        Ns { name, fd }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A new network namespace held only by the returned fd (closing it
/// destroys it).
fn fresh_netns() -> OwnedFd {
    netns::create().unwrap()
}

/// Whether the kernel already counts the container namespace behind the
/// host end `veth` as gone (or has deleted the pair): asked once, outside
/// the timed part, right after the namespace's last fd was closed.
fn dying_at_once(host: std::os::fd::BorrowedFd<'_>, veth: &str) -> bool {
    let mut nl = dunnage_network::Netlink::open_in(host).unwrap();
    match nl.link(veth).unwrap() {
        None => true,
        Some(l) => nl.peer_netns_gone(&l).unwrap(),
    }
}

/// The process's CPU time so far (user + system, every thread).
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is valid for writes.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    format!(
        "median {:.2} ms, mean {:.2} ms, p90 {:.2} ms",
        ms(samples[samples.len() / 2]),
        mean,
        ms(samples[samples.len() * 9 / 10])
    )
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !dunnage_testsupport::privileged() {
        eprintln!("attach bench: needs root, skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let host = Ns::new("bench-host");
    let container = Ns::new("bench-c");
    let state = TempDir::new("bench-netstate").unwrap();
    let nets = Networks::open(state.path(), host.fd.as_fd()).unwrap();
    let mut spec = NetworkSpec::new("bench0");
    spec.subnet("10.205.0.0/16".parse().unwrap());
    nets.create(&spec).unwrap();
    let published: Vec<PortMapping> = vec!["8080:80".parse().unwrap()];

    // Two orders: the container's namespace alive at detach (the same
    // one each run: detach deletes the pair itself), and the facade's:
    // `remove` kills the container before it detaches, so the container's
    // namespace (a fresh one per run, made outside the timed part, as
    // docker's `--network none` makes one too) is closed and the kernel
    // deletes the pair with it; detach comes right after the close (the
    // runs where the kernel did not count the namespace gone at once, and
    // detach deleted the pair itself, are counted).
    let names = [
        "namespace alive, no ports",
        "namespace alive, one published port",
        "facade's order (namespace gone), no ports",
        "facade's order (namespace gone), one published port",
    ];
    let mut alive_at_detach = 0usize;
    let mut one = |case: usize, timed: &mut [Vec<Duration>; 4]| {
        let ports: &[PortMapping] = if case % 2 == 1 { &published } else { &[] };
        let fresh = (case >= 2).then(fresh_netns);
        let ns = fresh.as_ref().map_or(container.fd.as_fd(), |f| f.as_fd());
        let (c0, t0) = (cpu(), Instant::now());
        let a = nets.attach("bench0", "c", ns, ports).unwrap();
        let (c1, t1) = (cpu(), Instant::now());
        if let Some(f) = fresh {
            drop(f);
            if !dying_at_once(host.fd.as_fd(), &a.host_veth) {
                alive_at_detach += 1;
            }
        }
        let (c2, t2) = (cpu(), Instant::now());
        nets.detach("bench0", "c").unwrap();
        let (c3, t3) = (cpu(), Instant::now());
        timed[0].push(t1 - t0);
        timed[1].push(t3 - t2);
        timed[2].push((t1 - t0) + (t3 - t2));
        timed[3].push((c1 - c0) + (c3 - c2));
    };
    let mut scratch: [Vec<Duration>; 4] = Default::default();
    for _ in 0..5 {
        for case in 0..4 {
            one(case, &mut scratch);
        }
    }
    let mut samples: Vec<[Vec<Duration>; 4]> = vec![Default::default(); 4];
    for _ in 0..runs {
        for (case, timed) in samples.iter_mut().enumerate() {
            one(case, timed);
        }
    }
    println!("{runs} runs per case, interleaved");
    for (name, timed) in names.iter().zip(samples.iter_mut()) {
        println!("{name}: attach {}", summary(&mut timed[0]));
        println!("{name}: detach {}", summary(&mut timed[1]));
        println!("{name}: attach+detach {}", summary(&mut timed[2]));
        println!(
            "{name}: attach+detach CPU (user+sys) {}",
            summary(&mut timed[3])
        );
    }
    println!(
        "facade's order: container namespace still alive right after its last fd closed: {alive_at_detach} of {} runs",
        2 * (runs + 5)
    );
    nets.remove("bench0").unwrap();
}
