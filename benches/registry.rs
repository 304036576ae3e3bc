//! `dunnage pull` / `dunnage push` (examples/dunnage) against `docker
//! pull` / `docker push` of a private dockerd, with a local
//! `docker-registry` on 127.0.0.1, interleaved in rounds (who goes first
//! alternates), the load average printed next to each figure, medians at
//! the end.
//!
//! ```text
//! cargo build --release --example dunnage && cargo bench -p dunnage-benches --bench registry
//! ```
//! The image: 3 layers of incompressible files, about 370 MB in all
//! (`DUNNAGE_BENCH_MB` sets the size), pushed to the registry by skopeo.
//! `pull` goes into an empty store (ours) or a fresh private dockerd, one
//! of each per round (`DUNNAGE_BENCH_ROUNDS`, default 3); `push (known
//! layers)` sends the pulled image to a new repository of the same
//! registry (blobs skipped or mounted), `push (new layers)` to a fresh
//! registry of its own (every layer compressed and uploaded). Each figure
//! also gives the CPU time (user + system) spent: by the command for
//! dunnage; by the `docker` CLI and the dockerd (with the children it
//! reaped, such as unpigz) for docker. Needs root, dockerd, skopeo and
//! docker-registry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dunnage::layerstore::Digest;
use dunnage_testsupport::{Dockerd, TempDir, example_binary};

/// xorshift64* noise: layers that do not compress.
fn noise(state: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A layer tar of about `bytes` bytes in files of 1 MiB.
fn layer(index: usize, bytes: usize, state: &mut u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::with_capacity(bytes + (1 << 20)));
    let mut data = vec![0u8; 1 << 20];
    for n in 0..bytes.div_ceil(data.len()) {
        noise(state, &mut data);
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("l{index}/f{n}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A docker-archive of a 3-layer image of `total` bytes.
fn make_archive(path: &Path, total: usize) {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut out = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut diff_ids = Vec::new();
    let mut names = Vec::new();
    for i in 0..3 {
        let l = layer(i, total / 3, &mut state);
        diff_ids.push(format!("\"{}\"", Digest::sha256_of(&l)));
        let name = format!("l{i}/layer.tar");
        append(&mut out, &name, &l);
        names.push(format!("\"{name}\""));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let cfg = format!("{}.json", Digest::sha256_of(config.as_bytes()).hex());
    append(&mut out, &cfg, config.as_bytes());
    let manifest = format!(
        r#"[{{"Config":"{cfg}","RepoTags":["bench/big:1"],"Layers":[{}]}}]"#,
        names.join(",")
    );
    append(&mut out, "manifest.json", manifest.as_bytes());
    out.into_inner().unwrap().flush().unwrap();
}

fn append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, name, data).unwrap();
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// A docker-registry on a free port of 127.0.0.1, storage in `dir`.
fn registry(dir: &Path) -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time (user + system) of this process's reaped children.
fn children_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system, its reaped children included) of process
/// `pid`, from `/proc/PID/stat`; zero when there is no such process.
fn process_cpu(pid: Option<u32>) -> Duration {
    let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, the 12th after ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Time `f`, printing the load average before and after next to it, and
/// the CPU time (user + system) it took: of the commands run (reaped
/// children) and of the daemon `daemon` (dockerd, with its reaped
/// children). Returns the wall-clock and the CPU time.
fn measure(what: &str, daemon: Option<u32>, f: impl FnOnce()) -> (Duration, Duration) {
    let before = loadavg();
    let cpu0 = children_cpu() + process_cpu(daemon);
    let t = time(f);
    let cpu = (children_cpu() + process_cpu(daemon)).saturating_sub(cpu0);
    println!(
        "  {what}: {:.2} s, cpu {:.2} s (load {before} -> {})",
        t.as_secs_f64(),
        cpu.as_secs_f64(),
        loadavg()
    );
    (t, cpu)
}

/// The pid of a private dockerd, from its pid file.
fn dockerd_pid(d: &Dockerd) -> Option<u32> {
    std::fs::read_to_string(d.dir().join("dockerd.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (cargo test) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !dunnage_testsupport::privileged() {
        eprintln!("registry bench: needs root");
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mb = env("DUNNAGE_BENCH_MB", 370);
    let rounds = env("DUNNAGE_BENCH_ROUNDS", 3).max(1);
    let dir = TempDir::new("bench-registry").unwrap();
    let archive = dir.join("big.tar");
    make_archive(&archive, mb << 20);
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    let (mut reg, addr) = registry(&dir.join("registry"));
    let image = format!("{addr}/bench/big:1");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--insecure-policy",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{image}")));
    std::fs::remove_file(&archive).unwrap();
    let dunnage = example_binary("dunnage");
    let ours = |root: &Path, args: &[&str]| {
        run(Command::new(&dunnage).arg("--root").arg(root).args(args));
    };
    // [pull, push known layers, push new layers] for dunnage, docker:
    // wall-clock and CPU time.
    let mut times: [[Vec<Duration>; 3]; 2] = Default::default();
    let mut cpus: [[Vec<Duration>; 3]; 2] = Default::default();
    println!("registry: {mb} MB, 3 layers, {rounds} rounds");
    for round in 0..rounds {
        println!("round {round}");
        let root = dir.join(format!("store{round}"));
        let d = Dockerd::start("bench-registry").unwrap();
        let dpid = dockerd_pid(&d);
        // Which goes first alternates from round to round.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let known = [
            format!("{addr}/bench/ours{round}:1"),
            format!("{addr}/bench/docker{round}:1"),
        ];
        for &who in &order {
            let (t, cpu) = if who == 0 {
                measure("dunnage pull", None, || {
                    ours(&root, &["pull", "-q", &image])
                })
            } else {
                measure("docker pull", dpid, || {
                    run(d.docker().args(["pull", "-q", &image]))
                })
            };
            times[who][0].push(t);
            cpus[who][0].push(cpu);
        }
        // Push to a new repository of the same registry: the layers are
        // there, mounted or skipped.
        for &who in &order {
            let (t, cpu) = if who == 0 {
                ours(&root, &["tag", &image, &known[0]]);
                measure("dunnage push (known layers)", None, || {
                    ours(&root, &["push", &known[0]])
                })
            } else {
                run(d.docker().args(["tag", &image, &known[1]]));
                measure("docker push (known layers)", dpid, || {
                    run(d.docker().args(["push", &known[1]]))
                })
            };
            times[who][1].push(t);
            cpus[who][1].push(cpu);
        }
        // Push to a fresh registry of each's own: every layer compressed
        // and uploaded.
        for &who in &order {
            let rdir = dir.join(format!("fresh{round}-{who}"));
            std::fs::create_dir_all(&rdir).unwrap();
            let (mut fresh, faddr) = registry(&rdir);
            let target = format!("{faddr}/bench/new:1");
            let (t, cpu) = if who == 0 {
                ours(&root, &["tag", &image, &target]);
                measure("dunnage push (new layers)", None, || {
                    ours(&root, &["push", &target])
                })
            } else {
                run(d.docker().args(["tag", &image, &target]));
                measure("docker push (new layers)", dpid, || {
                    run(d.docker().args(["push", &target]))
                })
            };
            times[who][2].push(t);
            cpus[who][2].push(cpu);
            let _ = fresh.kill();
            let _ = fresh.wait();
            std::fs::remove_dir_all(&rdir).unwrap();
        }
        drop(d);
        std::fs::remove_dir_all(&root).unwrap();
    }
    let _ = reg.kill();
    let _ = reg.wait();

    println!("medians of {rounds} rounds:");
    for (k, what) in ["pull", "push (known layers)", "push (new layers)"]
        .iter()
        .enumerate()
    {
        let ours = median(&mut times[0][k]);
        let theirs = median(&mut times[1][k]);
        let ours_cpu = median(&mut cpus[0][k]);
        let theirs_cpu = median(&mut cpus[1][k]);
        println!(
            "{what}: dunnage {:.2} s, docker {:.2} s, docker / dunnage {:.2}x; \
             cpu dunnage {:.2} s, docker {:.2} s, docker / dunnage {:.2}x",
            ours.as_secs_f64(),
            theirs.as_secs_f64(),
            theirs.as_secs_f64() / ours.as_secs_f64(),
            ours_cpu.as_secs_f64(),
            theirs_cpu.as_secs_f64(),
            theirs_cpu.as_secs_f64() / ours_cpu.as_secs_f64().max(1e-3)
        );
    }
}
