//! The driver against an overlay2 directory written by a real dockerd
//! (Debian's docker.io 20.10), started privately by the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dunnage_overlay::{DiffOptions, Driver, changes, write_diff};
use dunnage_testsupport::{TempDir, require_root};

mod common;
use common::run;

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

/// A private dockerd under a temp dir, stopped (SIGTERM, then SIGKILL) on
/// drop.
struct Dockerd {
    child: Option<Child>,
    sock: String,
}

impl Dockerd {
    fn start(t: &TempDir) -> Dockerd {
        let sock = format!("unix://{}", t.join("docker.sock").display());
        let log = std::fs::File::create(t.join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(t.join("data"))
            .arg("--exec-root")
            .arg(t.join("exec"))
            .arg("--pidfile")
            .arg(t.join("docker.pid"))
            .args([
                "-H",
                &sock,
                "--storage-driver=overlay2",
                "--iptables=false",
                "--bridge=none",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd {
            child: Some(child),
            sock,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d
            .docker()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                std::fs::read_to_string(t.join("dockerd.log")).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn docker(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.args(["-H", &self.sock]);
        c
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A busybox rootfs tarball: /bin/busybox plus a few applet links.
fn busybox_tar(t: &TempDir) -> PathBuf {
    let root = t.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "rm", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/motd"), b"hello from busybox\n").unwrap();
    let tar = t.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg("."));
    tar
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_string()
}

#[test]
fn driver_reads_and_extends_a_real_dockerd_overlay2_directory() {
    require_root!();
    if !Path::new(DOCKERD).exists() || !Path::new("/bin/busybox").exists() {
        dunnage_testsupport::skip("docker", "needs /usr/sbin/dockerd and /bin/busybox");
        return;
    }
    let t = TempDir::new("docker").unwrap();
    let tar = busybox_tar(&t);
    let mut d = Dockerd::start(&t);
    let image = "dunnage-test-busybox:latest";
    run(d.docker().arg("import").arg(&tar).arg(image));
    run(d.docker().args([
        "run",
        "--network",
        "none",
        "--name",
        "dunnage-test-c",
        image,
        "/bin/sh",
        "-c",
        "rm /bin/ls && echo hi > /new && echo x >> /etc/motd",
    ]));
    let docker_diff = String::from_utf8(run(d.docker().args(["diff", "dunnage-test-c"]))).unwrap();
    let container_id = String::from_utf8(run(d.docker().args([
        "inspect",
        "-f",
        "{{.Id}}",
        "dunnage-test-c",
    ])))
    .unwrap();
    let merged_dir = String::from_utf8(run(d.docker().args([
        "inspect",
        "-f",
        "{{.GraphDriver.Data.MergedDir}}",
        "dunnage-test-c",
    ])))
    .unwrap();
    d.stop();

    let data = t.join("data");
    let layerdb = data.join("image/overlay2/layerdb");
    let chain_dir = std::fs::read_dir(layerdb.join("sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let image_layer = read_trim(&chain_dir.join("cache-id"));
    let docker_size: u64 = read_trim(&chain_dir.join("size")).parse().unwrap();
    let mount_id = read_trim(
        &layerdb
            .join("mounts")
            .join(container_id.trim())
            .join("mount-id"),
    );
    assert_eq!(
        merged_dir.trim(),
        data.join("overlay2")
            .join(&mount_id)
            .join("merged")
            .to_str()
            .unwrap()
    );

    let driver = Driver::open(&data.join("overlay2")).unwrap();
    let ids: BTreeSet<String> = driver.list().unwrap().into_iter().collect();
    let init = format!("{mount_id}-init");
    for id in [&image_layer, &mount_id, &init] {
        assert!(ids.contains(id), "{id} not in {ids:?}");
    }
    // Docker's size rule, as dockerd computed it.
    assert_eq!(driver.diff_size(&image_layer).unwrap(), docker_size);
    // The base layer is its diff directory.
    let base = driver.get(&image_layer).unwrap();
    assert_eq!(base, driver.diff_dir(&image_layer));
    assert!(base.join("bin/busybox").is_file());
    driver.put(&image_layer).unwrap();
    // The container layer: init, then the image, below its upper layer.
    assert_eq!(
        driver.lower_dirs(&mount_id).unwrap(),
        vec![driver.diff_dir(&init), driver.diff_dir(&image_layer)]
    );
    let merged = driver.get(&mount_id).unwrap();
    assert_eq!(std::fs::read(merged.join("new")).unwrap(), b"hi\n");
    assert!(!merged.join("bin/ls").exists() && merged.join("bin/sh").exists());
    assert!(merged.join(".dockerenv").exists());
    driver.put(&mount_id).unwrap();
    // `docker diff` and ours agree.
    let ours: BTreeSet<String> = changes(
        &driver.diff_dir(&mount_id),
        &driver.lower_dirs(&mount_id).unwrap(),
    )
    .unwrap()
    .iter()
    .map(|c| c.to_string())
    .collect();
    let theirs: BTreeSet<String> = docker_diff.lines().map(str::to_string).collect();
    assert_eq!(ours, theirs);
    let layer = write_diff(
        &driver.diff_dir(&mount_id),
        Vec::new(),
        &DiffOptions::default(),
    )
    .unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&layer[..]).entries().unwrap() {
        names.push(String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned());
    }
    assert!(
        names.contains(&"bin/.wh.ls".to_string()) && names.contains(&"new".to_string()),
        "{names:?}"
    );
    // A layer of our own on top of Docker's, mounted, written and removed.
    driver.create("dunnage-child", Some(&image_layer)).unwrap();
    let m = driver.get("dunnage-child").unwrap();
    assert_eq!(
        std::fs::read(m.join("etc/motd")).unwrap(),
        b"hello from busybox\n"
    );
    std::fs::write(m.join("ours"), b"1").unwrap();
    driver.put("dunnage-child").unwrap();
    assert_eq!(driver.diff_size("dunnage-child").unwrap(), 1);
    driver.remove("dunnage-child").unwrap();
    assert!(!driver.exists("dunnage-child"));
}
