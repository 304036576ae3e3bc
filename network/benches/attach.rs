//! Per-container network setup and teardown through the library: one
//! `Networks::attach` (lease, veth pair, bridge, move into the container's
//! namespace, rename, MAC, address, default route, nftables rule set) and
//! one `Networks::detach`, timed separately, with and without a published
//! port, and a third case in the facade's order (the container's namespace
//! destroyed before the detach, as `remove` kills the container first).
//! Everything happens in namespaces made here (`dunnage-test-bench-*`),
//! deleted at the end.
//!
//! ```text
//! cargo bench -p dunnage-network --bench attach
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 200). Needs root,
//! `ip` and `nft`.
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

/// A new network namespace held only by the returned fd: made by a thread
/// that unshares and exits, so closing the fd destroys it.
fn fresh_netns() -> OwnedFd {
    std::thread::spawn(|| {
        // SAFETY: unshare on this short-lived thread only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        netns::current().unwrap()
    })
    .join()
    .unwrap()
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
    let cases: [(&str, &[PortMapping]); 2] =
        [("no ports", &[]), ("one published port", &published)];

    // Warm up, then interleave the cases run by run.
    for (_, ports) in cases {
        for _ in 0..5 {
            nets.attach("bench0", "c", container.fd.as_fd(), ports)
                .unwrap();
            nets.detach("bench0", "c").unwrap();
        }
    }
    let mut attach = [Vec::new(), Vec::new()];
    let mut detach = [Vec::new(), Vec::new()];
    let mut total = [Vec::new(), Vec::new()];
    let mut gone = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, (_, ports)) in cases.iter().enumerate() {
            let t0 = Instant::now();
            nets.attach("bench0", "c", container.fd.as_fd(), ports)
                .unwrap();
            let t1 = Instant::now();
            nets.detach("bench0", "c").unwrap();
            let t2 = Instant::now();
            attach[i].push(t1 - t0);
            detach[i].push(t2 - t1);
            total[i].push(t2 - t0);
        }
        // The facade's order: `remove` kills the container before it
        // detaches, so the container's namespace (a fresh one per run, made
        // outside the timed part, as docker's `--network none` makes one
        // too) is gone and the kernel deletes the veth pair with it.
        let c = fresh_netns();
        let t0 = Instant::now();
        nets.attach("bench0", "f", c.as_fd(), &[]).unwrap();
        let t1 = Instant::now();
        drop(c);
        let t2 = Instant::now();
        nets.detach("bench0", "f").unwrap();
        let t3 = Instant::now();
        gone[0].push(t1 - t0);
        gone[1].push(t3 - t2);
        gone[2].push((t1 - t0) + (t3 - t2));
    }
    println!("{runs} runs per case, interleaved");
    for (i, (name, _)) in cases.iter().enumerate() {
        println!("{name}: attach {}", summary(&mut attach[i]));
        println!("{name}: detach {}", summary(&mut detach[i]));
        println!("{name}: attach+detach {}", summary(&mut total[i]));
    }
    let name = "no ports, namespace gone before detach (the facade's order)";
    println!("{name}: attach {}", summary(&mut gone[0]));
    println!("{name}: detach {}", summary(&mut gone[1]));
    println!("{name}: attach+detach {}", summary(&mut gone[2]));
    nets.remove("bench0").unwrap();
}
