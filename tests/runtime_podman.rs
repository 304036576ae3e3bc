//! `examples/runtime/` run by podman (`--runtime`, private `--root` and
//! `--runroot`, a containers.conf with ulimits this host allows) beside
//! runc: the same probes give the same outputs. Needs root and podman.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::runtime_binary;

use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_testsupport::{
    TempDir, detach_unmount, mounts_below, require_command, require_privileged,
};

fn out(c: &mut Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
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

/// A private podman: its storage, run root and configuration under `dir`.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn cmd(&self, runtime: &Path) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--runtime")
            .arg(runtime)
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "overlay",
            ]);
        c
    }
}

fn probes(p: &Podman, runtime: &Path, image: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let run = |args: &[&str]| {
        let mut c = p.cmd(runtime);
        c.args(["run", "--rm", "--network", "none"]).args(args);
        c
    };
    seen.push(ok(&mut run(&[image, "echo", "hi"])));
    let (code, _, _) = out(&mut run(&[image, "sh", "-c", "exit 7"]));
    seen.push(format!("exit {code:?}"));
    let id = ok(p
        .cmd(runtime)
        .args(["run", "-d", "--network", "none", image, "sleep", "1000"]));
    seen.push(ok(p.cmd(runtime).args(["exec", &id, "echo", "from exec"])));
    ok(p.cmd(runtime).args(["pause", &id]));
    seen.push(ok(p.cmd(runtime).args([
        "inspect",
        "-f",
        "{{.State.Status}}",
        &id,
    ])));
    ok(p.cmd(runtime).args(["unpause", &id]));
    ok(p.cmd(runtime).args(["stop", "-t", "1", &id]));
    seen.push(ok(p.cmd(runtime).args([
        "inspect",
        "-f",
        "{{.State.Status}}",
        &id,
    ])));
    ok(p.cmd(runtime).args(["rm", "-f", &id]));
    // `-t` needs a terminal: run podman under script(1), every word
    // single-quoted for its shell.
    let c = p.cmd(runtime);
    let quote = |w: &std::ffi::OsStr| format!("'{}'", w.to_string_lossy().replace('\'', "'\\''"));
    let mut words: Vec<String> = c
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), quote(v?))))
        .collect();
    words.push(quote(c.get_program()));
    words.extend(c.get_args().map(quote));
    for w in [
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "test -t 1 && echo tty",
    ] {
        words.push(quote(std::ffi::OsStr::new(w)));
    }
    let line = words.join(" ");
    let tty = ok(Command::new("script").args(["-qec", &line, "/dev/null"]));
    seen.push(tty.trim().to_string());
    seen
}

/// The runtime example's default `--root`.
const DEFAULT_ROOT: &str = "/run/dunnage-runtime";

/// Removes [`DEFAULT_ROOT`] on drop unless it was there before.
struct DefaultRoot(bool);

impl Drop for DefaultRoot {
    fn drop(&mut self) {
        if !self.0 {
            let _ = std::fs::remove_dir_all(DEFAULT_ROOT);
        }
    }
}

#[test]
fn podman_runs_the_runtime_like_runc() {
    let test = "podman_runs_the_runtime_like_runc";
    if !require_privileged(test)
        || !require_command(test, "podman")
        || !require_command(test, "runc")
    {
        return;
    }
    // Podman as root runs the runtime without --root (its cleanup after a
    // `run --rm` would not pass one anyway): our state goes to the
    // runtime's default root, removed afterwards when this test made it.
    let _default_root = DefaultRoot(Path::new(DEFAULT_ROOT).exists());
    let tmp = TempDir::new("runtime-podman").unwrap();
    for d in ["root", "runroot", "tmp", "rootfs/bin", "rootfs/tmp", "bin"] {
        std::fs::create_dir_all(tmp.join(d)).unwrap();
    }
    std::fs::write(
        tmp.join("containers.conf"),
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )
    .unwrap();
    std::fs::write(
        tmp.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            tmp.join("runroot").display(),
            tmp.join("root").display()
        ),
    )
    .unwrap();
    let root = tmp.join("rootfs");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "test"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = tmp.join("busybox.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    // conmon adds --log-format json only for a runtime named like runc.
    let ours = tmp.join("bin/runc");
    std::os::unix::fs::symlink(runtime_binary(), &ours).unwrap();
    let runc = dunnage_testsupport::find_in_path("runc").unwrap();
    let p = Podman {
        dir: tmp.path().to_path_buf(),
    };
    let image = "localhost/dunnage-test-runtime:1";
    ok(p.cmd(&runc).arg("import").arg(&tar).arg(image));
    let a = probes(&p, &ours, image);
    let b = probes(&p, &runc, image);
    let _ = p.cmd(&runc).args(["rm", "-af"]).output();
    let _ = p.cmd(&runc).args(["system", "reset", "-f"]).output();
    for m in mounts_below(tmp.path()).into_iter().rev() {
        let _ = detach_unmount(&m);
    }
    assert_eq!(a, b, "ours:\n{a:#?}\nrunc:\n{b:#?}");
    assert_eq!(a[0], "hi");
}
