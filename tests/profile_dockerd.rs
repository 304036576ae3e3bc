//! Our Docker profile against what a private dockerd (docker.io 20.10)
//! writes into a container's config.json on this machine, live (the unit
//! tests compare with a captured copy). Needs root and dockerd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage::oci::OciConfig;
use dunnage::profile::{DeviceRule, Profile, ProfileMount};
use dunnage_testsupport::{
    Dockerd, TempDir, detach_unmount, mounts_below, require_command, require_privileged,
};
use serde_json::Value;

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A tar of a busybox-static rootfs.
fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("busybox.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// The config.json dockerd wrote for `docker run -d --network none`.
fn dockerd_config(dir: &Path) -> Value {
    let tar = busybox_tar(dir);
    let d = Dockerd::start("profile").unwrap();
    let image = "dunnage-test/profile:1";
    run(d.docker().arg("import").arg(&tar).arg(image));
    let id = run(d
        .docker()
        .args(["run", "-d", "--network", "none", image, "sleep", "1000"]));
    let path = d
        .dir()
        .join("exec/containerd/daemon/io.containerd.runtime.v2.task/moby")
        .join(&id)
        .join("config.json");
    let bytes = std::fs::read(&path);
    run(d.docker().args(["rm", "-f", &id]));
    let ddir = d.stop().unwrap();
    for m in mounts_below(ddir.path()).into_iter().rev() {
        let _ = detach_unmount(&m);
    }
    drop(ddir);
    serde_json::from_slice(&bytes.unwrap()).unwrap()
}

#[test]
fn docker_profile_matches_dockerd() {
    let test = "docker_profile_matches_dockerd";
    if !require_privileged(test) || !require_command(test, "dockerd") {
        return;
    }
    let dir = TempDir::new("profile-dockerd").unwrap();
    let c = dockerd_config(dir.path());
    let p = Profile::docker();
    for set in ["bounding", "effective", "permitted"] {
        let got: Vec<String> =
            serde_json::from_value(c["process"]["capabilities"][set].clone()).unwrap();
        assert_eq!(got, p.capabilities, "{set}");
    }
    let masked: Vec<String> = serde_json::from_value(c["linux"]["maskedPaths"].clone()).unwrap();
    assert_eq!(masked, p.masked_paths);
    let ro: Vec<String> = serde_json::from_value(c["linux"]["readonlyPaths"].clone()).unwrap();
    assert_eq!(ro, p.readonly_paths);
    let mounts: Vec<ProfileMount> = serde_json::from_value(c["mounts"].clone()).unwrap();
    assert_eq!(mounts[..p.mounts.len()], p.mounts[..]);
    let rules: Vec<DeviceRule> =
        serde_json::from_value(c["linux"]["resources"]["devices"].clone()).unwrap();
    assert_eq!(rules, p.device_rules);
    assert_eq!(Some(&c["linux"]["seccomp"]), p.seccomp.as_ref());
    let sysctls: std::collections::BTreeMap<String, String> =
        serde_json::from_value(c["linux"]["sysctl"].clone()).unwrap();
    assert_eq!(sysctls, p.network_sysctls);
    // And the config converts to a Container.
    let cfg = OciConfig::from_bytes(&serde_json::to_vec(&c).unwrap()).unwrap();
    cfg.to_container(Path::new("/bundle")).unwrap();
}
