//! What a container's bridge network costs: through this library (attach +
//! detach) against docker. Docker's share is measured two ways: `docker
//! network connect bridge C` + `disconnect` on a running container, less
//! two `docker inspect C` (the same two CLI round trips without the
//! network work); and what `--network bridge` (and `-p`) adds to `docker
//! run --rm` over `--network none` (whole runs: noisier). Interleaved run by
//! run, all inside namespaces made here: dockerd runs in its own "host"
//! network namespace (`dunnage-test-bench-dockerhost-*`) where it makes
//! its docker0 (10.206.0.1/24) and iptables rules; the library gets
//! another. Nothing is created in the machine's own network namespace.
//! The library is timed in two orders: the container's namespace alive at
//! detach (one namespace, attached again and again: detach deletes the
//! veth pair itself), and the facade's (a fresh namespace per run, closed
//! right before the detach: the kernel deletes the pair with it, as
//! nothing of the attach holds the namespace).
//!
//! ```text
//! cargo bench -p dunnage-network --bench docker_bridge
//! ```
//! `DUNNAGE_BENCH_RUNS` sets the runs per case (default 30). Needs root,
//! `ip`, `nsenter`, `tar`, busybox and docker.io's `dockerd`; skips
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dunnage_network::{NetworkSpec, Networks, PortMapping, netns};
use dunnage_testsupport::{DOCKER, DOCKERD, TempDir, unique_name};

/// A new network namespace held only by the returned fd (closing it
/// destroys it).
fn fresh_netns() -> OwnedFd {
    netns::create().unwrap()
}

struct Ns {
    name: String,
    fd: OwnedFd,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = unique_name(tag);
        run(Command::new("ip").args(["netns", "add", &name]));
        let fd = netns::open(&PathBuf::from("/run/netns").join(&name)).unwrap();
        let ns = Ns { name, fd };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dockerd in the network namespace `ns`, stopped on drop (with the
/// containerd it started, found by the pidfile under its exec-root).
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, ns: &Ns) -> Daemon {
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .arg(DOCKERD)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args([
                "--storage-driver=overlay2",
                "--bip=10.206.0.1/24",
                "--userland-proxy=false",
                "--ip6tables=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            dir: dir.to_path_buf(),
        };
        for _ in 0..600 {
            let ok = d
                .docker()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dockerd did not answer: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
    }

    fn docker(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()));
        c
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && pid > 1
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains(&self.dir.display().to_string()))
        {
            // SAFETY: the containerd our dockerd started (its command line
            // names our directory).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn busybox_image(dir: &Path, d: &Daemon) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "true", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(d
        .docker()
        .args(["import", "-c", "CMD [\"true\"]"])
        .arg(&tar)
        .arg("dunnage-bench/bb:1"));
}

/// Whether the kernel already counts the container namespace behind the
/// host end `veth` as gone (or has deleted the pair): asked once, outside
/// the timed part, right after the bench closed the namespace's last fd.
fn dying_at_once(host: std::os::fd::BorrowedFd<'_>, veth: &str) -> bool {
    let mut nl = dunnage_network::Netlink::open_in(host).unwrap();
    match nl.link(veth).unwrap() {
        None => true,
        Some(l) => nl.peer_netns_gone(&l).unwrap(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort();
    ms(samples[samples.len() / 2])
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !dunnage_testsupport::privileged() || !Path::new(DOCKERD).exists() {
        eprintln!("docker_bridge bench: needs root and {DOCKERD}, skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = TempDir::new("bench-docker-bridge").unwrap();
    let docker_host = Ns::new("bench-dockerhost");
    let daemon = Daemon::start(dir.path(), &docker_host);
    busybox_image(dir.path(), &daemon);

    let lib_host = Ns::new("bench-libhost");
    let container = Ns::new("bench-libc");
    let nets = Networks::open(&dir.join("netstate"), lib_host.fd.as_fd()).unwrap();
    let mut spec = NetworkSpec::new("bench0");
    spec.subnet("10.207.0.0/24".parse().unwrap());
    nets.create(&spec).unwrap();
    let port: Vec<PortMapping> = vec!["8080:80".parse().unwrap()];

    let docker_run = |net: &[&str]| {
        let t = Instant::now();
        run(daemon
            .docker()
            .args(["run", "--rm"])
            .args(net)
            .arg("dunnage-bench/bb:1"));
        t.elapsed()
    };
    let lib = |ports: &[PortMapping]| {
        let t = Instant::now();
        nets.attach("bench0", "c", container.fd.as_fd(), ports)
            .unwrap();
        nets.detach("bench0", "c").unwrap();
        t.elapsed()
    };
    // The facade's order: the container's namespace (fresh per run, made
    // outside the timed part) is gone before the detach, as `remove` kills
    // the container first; the kernel deletes the veth pair with it.
    // Detach comes right after the namespace's last fd is closed; the
    // runs where the kernel did not count it gone at once are counted.
    let alive_at_detach = std::cell::Cell::new(0usize);
    let lib_gone = |ports: &[PortMapping]| {
        let c = fresh_netns();
        let t0 = Instant::now();
        let a = nets.attach("bench0", "f", c.as_fd(), ports).unwrap();
        let attach = t0.elapsed();
        drop(c);
        if !dying_at_once(lib_host.fd.as_fd(), &a.host_veth) {
            alive_at_detach.set(alive_at_detach.get() + 1);
        }
        let t1 = Instant::now();
        nets.detach("bench0", "f").unwrap();
        attach + t1.elapsed()
    };
    let sleeper = run(daemon.docker().args([
        "run",
        "-d",
        "--network",
        "bridge",
        "dunnage-bench/bb:1",
        "sleep",
        "100000",
    ]))
    .trim()
    .to_string();
    let connect = || {
        let t = Instant::now();
        run(daemon
            .docker()
            .args(["network", "disconnect", "bridge", &sleeper]));
        run(daemon
            .docker()
            .args(["network", "connect", "bridge", &sleeper]));
        t.elapsed()
    };
    let inspect = || {
        let t = Instant::now();
        for _ in 0..2 {
            run(daemon.docker().args(["inspect", "-f", "{{.Id}}", &sleeper]));
        }
        t.elapsed()
    };
    // Warm-up: the first runs pay for image layers, the network's first
    // rules, caches.
    for _ in 0..3 {
        connect();
        inspect();
        docker_run(&["--network", "none"]);
        docker_run(&["--network", "bridge"]);
        docker_run(&["-p", "8080:80"]);
        lib(&[]);
        lib(&port);
        lib_gone(&[]);
        lib_gone(&port);
    }
    let names = [
        "docker network disconnect + connect bridge",
        "docker inspect x2 (CLI round trips)",
        "docker run --rm --network none",
        "docker run --rm --network bridge",
        "docker run --rm --network bridge -p 8080:80",
        "library attach+detach",
        "library attach+detach -p 8080:80",
        "library attach, namespace gone, detach (the facade's order)",
        "library attach -p 8080:80, namespace gone, detach (the facade's order)",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        samples[0].push(connect());
        samples[1].push(inspect());
        samples[2].push(docker_run(&["--network", "none"]));
        samples[3].push(docker_run(&["--network", "bridge"]));
        samples[4].push(docker_run(&["-p", "8080:80"]));
        samples[5].push(lib(&[]));
        samples[6].push(lib(&port));
        samples[7].push(lib_gone(&[]));
        samples[8].push(lib_gone(&port));
    }
    let m: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!("{runs} runs per case, interleaved; medians");
    println!(
        "facade's order: container namespace still alive right after its last fd closed: {} of {} runs",
        alive_at_detach.get(),
        2 * (runs + 3)
    );
    for (name, v) in names.iter().zip(&m) {
        println!("{name}: {v:.1} ms");
    }
    let connect = m[0] - m[1];
    println!(
        "docker's network detach+attach (connect case less CLI): {connect:.1} ms; library: {:.1} ms = {:.2}x",
        m[5],
        m[5] / connect
    );
    println!(
        "docker's network detach+attach: {connect:.1} ms; library in the facade's order: {:.1} ms = {:.2}x",
        m[7],
        m[7] / connect
    );
    let bridge = m[3] - m[2];
    let published = m[4] - m[2];
    println!(
        "docker run adds for --network bridge: {bridge:.1} ms; library: {:.1} ms = {:.2}x",
        m[5],
        m[5] / bridge
    );
    println!(
        "docker run adds for --network bridge: {bridge:.1} ms; library in the facade's order: {:.1} ms = {:.2}x",
        m[7],
        m[7] / bridge
    );
    println!(
        "docker run adds for --network bridge -p: {published:.1} ms; library: {:.1} ms = {:.2}x",
        m[6],
        m[6] / published
    );
    println!(
        "docker run adds for --network bridge -p: {published:.1} ms; library in the facade's order: {:.1} ms = {:.2}x",
        m[8],
        m[8] / published
    );
    let _ = daemon.docker().args(["rm", "-f", &sleeper]).output();
    nets.remove("bench0").unwrap();
}
