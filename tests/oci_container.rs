//! One bundle, two runtimes: a config.json written from Docker's profile
//! runs under runc, and the same config.json converted by
//! `OciConfig::to_container` runs as a facade `Container`; the process
//! inside sees the same confinement. Needs root and runc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage::container::{ContainerStore, StdioMode};
use dunnage::oci::OciConfig;
use dunnage::oci::bundle::{BundleSpec, write_bundle};
use dunnage::profile::Profile;
use dunnage_testsupport::{
    CgroupGuard, TempDir, mounts_below, require_command, require_privileged, unique_name,
};

/// What the process reports about itself, one fact a line.
const PROBE: &str = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status; \
    echo keys=$(cat /proc/keys | wc -c); \
    echo keys_masked=$(grep -c ' /proc/keys ' /proc/self/mountinfo); \
    echo sys_ro=$(grep -c ' /proc/sys ro,' /proc/self/mountinfo); \
    echo firmware=$(ls /sys/firmware | wc -l); \
    echo ports=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
    echo ping=$(cat /proc/sys/net/ipv4/ping_group_range); \
    echo host=$(hostname); echo id=$(id -u):$(id -g); echo cwd=$(pwd); echo env=$GREETING; \
    for n in null zero full random urandom tty ptmx pts shm mqueue; do test -e /dev/$n && echo dev=$n; done; \
    exit 3";

fn busybox_bundle(dir: &Path) {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Hard linked where it can be: a copy can be "text busy" while a
    // parallel test's fork still holds the writer's fd.
    if std::fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    for applet in [
        "sh", "grep", "wc", "cat", "echo", "hostname", "ls", "id", "pwd", "test",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(dir.join("rootfs").join(d)).unwrap();
    }
    std::fs::write(dir.join("rootfs/etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    std::fs::write(dir.join("rootfs/etc/group"), "root:x:0:\n").unwrap();
}

fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.join(parent)];
    }
    std::fs::read_dir(base)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("cgroup.procs").exists())
        .map(|e| e.path().join(parent))
        .collect()
}

#[test]
fn converted_bundle_runs_like_runc() {
    let test = "converted_bundle_runs_like_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("oci-container").unwrap();
    let bundle = tmp.join("bundle");
    busybox_bundle(&bundle);
    let parent = unique_name("oci");
    let mut guard = CgroupGuard::new();
    for d in cgroup_dirs(&parent) {
        guard.add(d);
    }
    let mut profile = Profile::docker();
    if !cfg!(feature = "seccomp") {
        // Without libseccomp the Container refuses a seccomp profile.
        profile.seccomp = None;
    }
    let mut spec = BundleSpec::new(["sh", "-c", PROBE]);
    spec.hostname = "probe".into();
    spec.cwd = "/tmp".into();
    spec.env.push("GREETING=hello".into());
    spec.cgroups_path = Some(format!("/{parent}/runc"));
    write_bundle(&bundle, &profile, &spec).unwrap();

    let out = Command::new("runc")
        .arg("--root")
        .arg(tmp.join("runc"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(unique_name("runc"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let runc = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{runc}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = OciConfig::load(&bundle).unwrap();
    let converted = cfg.to_container(&bundle).unwrap();
    assert!(converted.warnings.is_empty(), "{:?}", converted.warnings);
    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let mut c = converted.container;
    c.stdout(StdioMode::Piped);
    let mut h = c.create(&store).unwrap();
    let mut stdout = h.take_stdout().unwrap();
    h.start().unwrap();
    let mut ours = String::new();
    stdout.read_to_string(&mut ours).unwrap();
    let exit = h.wait().unwrap();
    h.remove(false).unwrap();
    assert_eq!(exit.code, Some(3), "{ours}");
    assert_eq!(ours, runc, "ours:\n{ours}\nrunc:\n{runc}");
    assert!(runc.contains("CapEff:\t00000000a80425fb"), "{runc}");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}
