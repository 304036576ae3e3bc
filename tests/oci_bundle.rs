//! A bundle written from Docker's profile (`dunnage::oci::bundle`) runs
//! unchanged under runc and crun, and the container sees Docker's
//! confinement: capabilities, seccomp, masked and read-only paths, sysctls.
//! Needs root; crun runs in a private mount namespace with
//! `/sys/fs/cgroup/unified` unmounted (crun 1.8 refuses this host's hybrid
//! layout otherwise, RUNTIME.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use dunnage::oci::OciConfig;
use dunnage::oci::bundle::{BundleSpec, write_bundle};
use dunnage::profile::Profile;
use dunnage_testsupport::{CgroupGuard, TempDir, require_command, require_privileged, unique_name};

/// The probe run in the container: one `key=value` per line.
const PROBE: &str = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; \
    echo keys=$(cat /proc/keys | wc -c); \
    echo keys_masked=$(grep -c ' /proc/keys ' /proc/self/mountinfo); \
    echo sys_ro=$(grep -c ' /proc/sys ro,' /proc/self/mountinfo); \
    echo firmware=$(ls /sys/firmware | wc -l); \
    echo ports=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
    echo host=$(hostname); \
    ls /dev | tr '\\n' ' '; echo; \
    exit 7";

/// A busybox rootfs (busybox-static) in `<bundle>/rootfs`.
fn busybox_bundle(dir: &Path) {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Hard linked where it can be: a copy can be "text busy" while a
    // parallel test's fork still holds the writer's fd.
    if std::fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    for applet in ["sh", "grep", "wc", "cat", "echo", "hostname", "ls", "tr"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(dir.join("rootfs").join(d)).unwrap();
    }
}

/// Guard the cgroup `name` in every hierarchy (the runtimes remove it
/// themselves; this is for a failure half-way).
fn cgroup_guard(name: &str) -> CgroupGuard {
    let mut g = CgroupGuard::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = e.path().join(name);
        g.add(p);
    }
    g
}

fn run_in(runtime: &str, dir: &TempDir, id: &str) -> Output {
    let root = dir.join("state");
    let bundle = dir.join("bundle");
    let cmd = format!(
        "{} {runtime} --root {} run --bundle {} {id}",
        if runtime == "crun" {
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec"
        } else {
            "exec"
        },
        root.display(),
        bundle.display()
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &cmd])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn check(runtime: &str) {
    let test = format!("bundle_runs_under_{runtime}");
    if !require_privileged(&test) || !require_command(&test, runtime) {
        return;
    }
    let dir = TempDir::new(&format!("oci-{runtime}")).unwrap();
    let bundle = dir.join("bundle");
    busybox_bundle(&bundle);
    let name = unique_name(runtime);
    let _cg = cgroup_guard(&name);
    let mut spec = BundleSpec::new(["sh", "-c", PROBE]);
    spec.hostname = "probe".into();
    spec.cgroups_path = Some(format!("/{name}"));
    let profile = Profile::docker();
    write_bundle(&bundle, &profile, &spec).unwrap();
    // What we wrote reads back and converts (the runtime example's path).
    OciConfig::load(&bundle)
        .unwrap()
        .to_container(&bundle)
        .unwrap();
    let out = run_in(runtime, &dir, &name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{runtime}: {stdout}\n{stderr}");
    let has = |s: &str| {
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == s)
    };
    // Docker's 14 capabilities (RUNTIME.md: CapEff 00000000a80425fb).
    assert!(has("CapEff: 00000000a80425fb"), "{runtime}: {stdout}");
    assert!(has("CapBnd: 00000000a80425fb"), "{runtime}: {stdout}");
    assert!(has("Seccomp: 2"), "{runtime}: {stdout}");
    assert!(has("NoNewPrivs: 0"), "{runtime}: {stdout}");
    // (This kernel has no /proc/kcore or /proc/sysrq-trigger: check
    // another masked file and read-only directory of the lists.)
    assert!(has("keys=0"), "{runtime}: masked /proc/keys: {stdout}");
    assert!(has("keys_masked=1"), "{runtime}: {stdout}");
    assert!(has("sys_ro=1"), "{runtime}: read-only /proc/sys: {stdout}");
    assert!(
        has("firmware=0"),
        "{runtime}: masked /sys/firmware: {stdout}"
    );
    assert!(has("ports=0"), "{runtime}: docker's sysctl: {stdout}");
    assert!(has("host=probe"), "{runtime}: {stdout}");
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(
            stdout.split_whitespace().any(|w| w == node),
            "{runtime}: /dev/{node} missing: {stdout}"
        );
    }
}

#[test]
fn bundle_runs_under_runc() {
    check("runc");
}

#[test]
fn bundle_runs_under_crun() {
    check("crun");
}
