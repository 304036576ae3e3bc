//! `examples/runtime/` run by containerd's `ctr run --runc-binary`, beside
//! runc: a private containerd (its own root, state, sockets and config, no
//! CRI plugin), a busybox image imported with `ctr image import` from a
//! docker-save archive the test writes, the same probes with both
//! runtimes. Needs root, containerd and runc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::runtime_binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dunnage_testsupport::{
    CgroupGuard, ChildGuard, TempDir, detach_unmount, mounts_below, require_command,
    require_privileged, unique_name,
};

fn out(c: &mut Command) -> (Option<i32>, String, String) {
    let o = c.stdin(Stdio::null()).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(c: &mut Command) -> String {
    let (code, stdout, stderr) = out(c);
    assert_eq!(code, Some(0), "{c:?}: {stdout}{stderr}");
    stdout.trim().to_string()
}

fn sha256_hex(path: &Path) -> String {
    let line = ok(Command::new("sha256sum").arg(path));
    line.split_whitespace().next().unwrap().to_string()
}

/// A docker-save archive of a one-layer busybox-static image tagged `tag`.
fn busybox_archive(dir: &Path, tag: &str) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "id", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let image = dir.join("image");
    std::fs::create_dir_all(image.join("layer")).unwrap();
    let layer = image.join("layer/layer.tar");
    ok(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    let diff_id = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    let config_path = image.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let config_hex = sha256_hex(&config_path);
    std::fs::rename(&config_path, image.join(format!("{config_hex}.json"))).unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": ["layer/layer.tar"],
    }]);
    std::fs::write(
        image.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let archive = dir.join("busybox-save.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&archive)
        .arg("."));
    archive
}

/// A private containerd: root, state, sockets and config under `dir`.
struct Containerd {
    dir: PathBuf,
    namespace: String,
    guard: Option<ChildGuard>,
}

impl Containerd {
    fn start(dir: &Path, namespace: &str) -> Containerd {
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"{d}/debug.sock\"\n\
             [metrics]\n  address = \"\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // The guard kills and reaps it on drop; the handle is not needed.
        std::mem::forget(child);
        let c = Containerd {
            dir: dir.to_path_buf(),
            namespace: namespace.to_string(),
            guard: Some(ChildGuard::new(pid)),
        };
        for _ in 0..600 {
            if out(&mut c.ctr(&["version"])).0 == Some(0) {
                return c;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "containerd did not answer: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(["--namespace", &self.namespace])
            .args(args);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(g) = &self.guard {
            // SIGTERM first: containerd cleans up its own mounts.
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(g.pid(), libc::SIGTERM) };
            for _ in 0..100 {
                // SAFETY: waitpid on our own child, WNOHANG.
                let r = unsafe { libc::waitpid(g.pid(), std::ptr::null_mut(), libc::WNOHANG) };
                if r != 0 {
                    // Reaped (or gone): nothing left for the guard.
                    std::mem::forget(self.guard.take());
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.guard.take();
        for m in mounts_below(&self.dir).into_iter().rev() {
            let _ = detach_unmount(&m);
        }
    }
}

fn probes(c: &Containerd, runtime: &Path, image: &str, ids: &mut Vec<String>) -> Vec<String> {
    let binary = runtime.to_str().unwrap();
    let mut seen = Vec::new();
    let id = unique_name("ctr");
    ids.push(id.clone());
    let (code, stdout, stderr) = out(&mut c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        binary,
        image,
        &id,
        "sh",
        "-c",
        "echo hi; id -u; cat /proc/self/status | grep ^CapEff",
    ]));
    assert_eq!(code, Some(0), "{binary}: {stdout}{stderr}");
    seen.push(stdout);
    let id = unique_name("ctr");
    ids.push(id.clone());
    let (code, _, _) = out(&mut c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        binary,
        image,
        &id,
        "sh",
        "-c",
        "exit 3",
    ]));
    seen.push(format!("exit {code:?}"));
    seen
}

#[test]
fn ctr_runs_the_runtime_like_runc() {
    let test = "ctr_runs_the_runtime_like_runc";
    if !require_privileged(test)
        || !require_command(test, "containerd")
        || !require_command(test, "ctr")
        || !require_command(test, "containerd-shim-runc-v2")
        || !require_command(test, "runc")
    {
        return;
    }
    let tmp = TempDir::new("runtime-ctr").unwrap();
    let namespace = unique_name("ctr-ns");
    // ctr's cgroupsPath is /<namespace>/<id>; the shim may also leave a
    // /<id> cgroup: both in every hierarchy, removed on drop.
    let base = Path::new("/sys/fs/cgroup");
    let hierarchies: Vec<PathBuf> = if base.join("cgroup.procs").exists() {
        vec![base.to_path_buf()]
    } else {
        std::fs::read_dir(base)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("cgroup.procs").exists())
            .collect()
    };
    let mut cgroups = CgroupGuard::new();
    for h in &hierarchies {
        cgroups.add(h.join(&namespace));
    }
    let mut ids = Vec::new();
    let image = "localhost/dunnage-test-runtime:1";
    let archive = busybox_archive(tmp.path(), image);
    let ours = runtime_binary();
    let runc = dunnage_testsupport::find_in_path("runc").unwrap();
    let (a, b) = {
        let c = Containerd::start(tmp.path(), &namespace);
        ok(c.ctr(&["image", "import", "--snapshotter", "overlayfs"])
            .arg(&archive));
        let a = probes(&c, &ours, image, &mut ids);
        let b = probes(&c, &runc, image, &mut ids);
        let _ = out(&mut c.ctr(&["image", "rm", image]));
        (a, b)
    };
    for h in &hierarchies {
        for id in &ids {
            cgroups.add(h.join(id));
        }
    }
    // The shim's state for this namespace (the runtime's --root).
    let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&namespace));
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(a, b, "ours:\n{a:#?}\nrunc:\n{b:#?}");
    assert!(a[0].starts_with("hi\n0\nCapEff:"), "{}", a[0]);
    assert_eq!(a[1], "exit Some(3)");
}
