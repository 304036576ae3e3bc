//! Issue 9's benchmark: spawn to exit of `/bin/true` with a container's
//! full setup through `namespaces::Command` (pivot_root into a busybox
//! rootfs, Docker's mount list, masked and read-only paths, Docker's 14
//! capabilities, Docker's seccomp profile, 5 namespaces: mount, uts, ipc,
//! pid, net; a cgroup created before and removed after each run), against
//! `crun run` and `runc run` of the equivalent bundle (written by
//! `dunnage::oci::bundle` from the same `Profile::docker()`). The three
//! cases run interleaved, in one process.
//!
//! The seccomp policy is compiled once, before timing (a runtime built on
//! the library compiles it once per policy), and, as a fourth interleaved
//! case, compiled for each spawn inside the timing; its one-off compile
//! time is printed separately.
//!
//! crun 1.8 refuses this host's hybrid cgroup layout, so the benchmark
//! runs in a private mount namespace with `/sys/fs/cgroup/unified`
//! unmounted (RUNTIME.md), for all three cases.
//!
//! ```sh
//! DUNNAGE_BENCH_RUNS=100 cargo bench -p dunnage-benches --bench container_spawn
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use dunnage::cgroups::{Cgroup, CgroupPath, Hierarchies};
use dunnage::namespaces::{
    CapSet, Capabilities, Command, Kind, Mount, ProcessKnobs, SeccompProfile, Stdio,
};
use dunnage::oci::bundle::{BundleSpec, write_bundle};
use dunnage::profile::Profile;
use dunnage_testsupport::{CgroupGuard, TempDir, find_in_path, privileged, unique_name};

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// A busybox rootfs in `<bundle>/rootfs`.
fn busybox_rootfs(bundle: &Path) {
    let root = bundle.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in ["sh", "true", "grep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

/// crun's workaround (RUNTIME.md): a private mount namespace for this
/// process without the hybrid layout's v2 mount.
fn private_mount_namespace() {
    // SAFETY: single-threaded here; plain syscalls on constant strings.
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
}

fn main() {
    // `cargo test --all-targets` builds and runs bench targets too.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ok = privileged()
        && find_in_path("crun").is_some()
        && find_in_path("runc").is_some()
        && Path::new("/bin/busybox").exists();
    if !ok {
        eprintln!("bench container_spawn: needs root, crun, runc and /bin/busybox; skipped");
        return;
    }
    let runs: usize = std::env::var("DUNNAGE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    private_mount_namespace();

    let tmp = TempDir::new("bench-container-spawn").unwrap();
    let bundle = tmp.join("bundle");
    busybox_rootfs(&bundle);
    let parent = unique_name("bench-spawn");
    let mut guard = CgroupGuard::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(e.path().join(&parent));
        guard.add(e.path().join(format!("{parent}-lib")));
    }
    let profile = Profile::docker();
    let mut spec = BundleSpec::new(["/bin/true"]);
    spec.cgroups_path = Some(format!("/{parent}"));
    write_bundle(&bundle, &profile, &spec).unwrap();

    // The library's side of the same container.
    let t = Instant::now();
    let policy: SeccompProfile = serde_json::from_value(profile.seccomp.clone().unwrap()).unwrap();
    let (program, _warnings) = dunnage::namespaces::seccomp::compile(&policy).unwrap();
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mounts: Vec<Mount> = profile
        .mounts
        .iter()
        .map(|m| Mount {
            destination: m.destination.clone().into(),
            fstype: m.kind.clone(),
            source: m.source.clone().into(),
            options: m.options.clone(),
        })
        .collect();
    let caps = CapSet::parse(&profile.capabilities).unwrap();
    let sysctls: Vec<(String, String)> = profile
        .network_sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let hier = Hierarchies::detect().unwrap();
    let cg_path = CgroupPath::new(&format!("{parent}-lib")).unwrap();
    let rootfs = bundle.join("rootfs");

    let command = |argv: &[&str], program: &dunnage::namespaces::seccomp::BpfProgram| {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .current_dir("/")
            .namespaces(Kind::Mount | Kind::Uts | Kind::Ipc | Kind::Pid | Kind::Net)
            .hostname("dunnage")
            .rootfs(&rootfs)
            .mounts(mounts.clone())
            .default_devices(true)
            .uid(0)
            .gid(0)
            .stdin(Stdio::null())
            .process_knobs(ProcessKnobs {
                capabilities: Some(Capabilities::uniform(caps)),
                sysctls: sysctls.clone(),
                additional_gids: Some(Vec::new()),
                seccomp: Some(program.clone()),
                ..ProcessKnobs::default()
            });
        for p in &profile.masked_paths {
            cmd.masked_path(p);
        }
        for p in &profile.readonly_paths {
            cmd.readonly_path(p);
        }
        cmd
    };
    // The setup is really applied: Docker's capabilities, the seccomp
    // filter, a masked path.
    let probe = command(
        &[
            "/bin/sh",
            "-c",
            "grep -E '^(CapEff|Seccomp):' /proc/self/status; grep -c ' /proc/keys ' /proc/self/mountinfo",
        ],
        &program,
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        ["CapEff:", "00000000a80425fb", "Seccomp:", "2", "1"],
        "probe: {text}"
    );
    // `per_spawn`: the policy compiled for this spawn, inside the timing.
    let lib = |per_spawn: bool| {
        let compiled;
        let prog = if per_spawn {
            compiled = dunnage::namespaces::seccomp::compile(&policy).unwrap().0;
            &compiled
        } else {
            &program
        };
        let cg = Cgroup::create(&hier, &cg_path, &[]).unwrap();
        let mut cmd = command(&["/bin/true"], prog);
        let hook_cg = cg.clone();
        cmd.before_start(move |pid| {
            hook_cg
                .add_process(pid as u32)
                .map_err(std::io::Error::other)
        });
        let st = cmd.status().unwrap();
        assert!(st.success(), "{st:?}");
        cg.delete().unwrap();
    };
    let runtime = |rt: &str, n: usize| {
        let st = StdCommand::new(rt)
            .arg("--root")
            .arg(tmp.join(format!("{rt}-state")))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("{parent}-{n}"))
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{rt}: {st:?}");
    };
    for n in 0..5 {
        lib(false);
        lib(true);
        runtime("crun", n);
        runtime("runc", n);
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 0..runs {
        let t = Instant::now();
        lib(false);
        a.push(t.elapsed());
        let t = Instant::now();
        lib(true);
        d.push(t.elapsed());
        let t = Instant::now();
        runtime("crun", 1000 + n);
        b.push(t.elapsed());
        let t = Instant::now();
        runtime("runc", 1000 + n);
        c.push(t.elapsed());
    }
    let (ma, mb, mc, md) = (
        median(&mut a),
        median(&mut b),
        median(&mut c),
        median(&mut d),
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("runs: {runs} each, interleaved (medians, wall ms)");
    println!("load average before the run: {}", load_before.trim());
    println!("seccomp policy compiled once before timing: {compile_ms:.2}");
    println!("namespaces::Command spawn..exit /bin/true (cgroup incl.): {ma:.2}");
    println!("  the same, the policy compiled per spawn (timed):         {md:.2}");
    println!("crun run (Profile::docker() bundle, /bin/true):          {mb:.2}");
    println!("runc run (Profile::docker() bundle, /bin/true):          {mc:.2}");
    println!(
        "ratio Command / crun: {:.2}; Command / runc: {:.2}",
        ma / mb,
        ma / mc
    );
    println!(
        "ratio per-spawn compile / crun: {:.2}; / runc: {:.2}",
        md / mb,
        md / mc
    );
    println!("load average after the run: {}", load.trim());
}
