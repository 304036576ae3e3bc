//! `examples/runtime/` run by a real dockerd (`--add-runtime`), beside
//! runc on the same daemon: the same probes give the same outputs. Needs
//! root and dockerd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::runtime_binary;

use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_testsupport::{
    Dockerd, TempDir, detach_unmount, mounts_below, require_command, require_privileged,
};

/// Run `c`; (exit code, stdout, stderr).
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

/// A tar of a busybox-static rootfs.
fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "id", "pwd", "true", "grep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("busybox.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// The probes, on one runtime; what each printed.
fn probes(d: &Dockerd, runtime: &str, image: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let run = |args: &[&str]| {
        let mut c = d.docker();
        c.args(["run", "--rm", "--network", "none", "--runtime", runtime])
            .args(args);
        c
    };
    seen.push(ok(&mut run(&[image, "echo", "hi"])));
    let (code, _, _) = out(&mut run(&[image, "sh", "-c", "exit 7"]));
    seen.push(format!("exit {code:?}"));
    seen.push(ok(&mut run(&[
        "--user",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "A=B",
        image,
        "sh",
        "-c",
        "echo $(id -u):$(id -g) $(pwd) $A; grep CapEff /proc/self/status",
    ])));
    seen.push(ok(&mut run(&[
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        image,
        "grep",
        "Cap",
        "/proc/self/status",
    ])));
    seen.push(ok(&mut run(&[
        "--read-only",
        image,
        "sh",
        "-c",
        "echo x > /f 2>/dev/null || echo ro",
    ])));
    seen.push(ok(&mut run(&[
        "-m", "32m", "--pids-limit", "10", "--cpus", "0.5", image, "sh", "-c",
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>&1",
    ])));
    {
        let mut c = d.docker();
        c.args([
            "run",
            "--rm",
            "--network",
            "host",
            "--runtime",
            runtime,
            image,
            "echo",
            "host net",
        ]);
        seen.push(ok(&mut c));
    }
    // -t under `script`, which gives docker its terminal.
    let tty = |docker_args: &str| {
        let line = format!(
            "{} -H {} {docker_args}",
            dunnage_testsupport::DOCKER,
            d.host()
        );
        ok(Command::new("script").args(["-qec", &line, "/dev/null"]))
    };
    seen.push(tty(&format!(
        "run --rm -t --network none --runtime {runtime} {image} sh -c 'test -t 0 && echo tty'"
    )));
    let id = ok(d.docker().args([
        "run",
        "-d",
        "--network",
        "none",
        "--runtime",
        runtime,
        image,
        "sleep",
        "1000",
    ]));
    let insp = ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", &id]));
    seen.push(format!("inspect {insp}"));
    seen.push(ok(d.docker().args(["exec", &id, "echo", "from exec"])));
    seen.push(ok(d.docker().args([
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        &id,
        "sh",
        "-c",
        "echo $(id -u) $(pwd) $X",
    ])));
    let (code, _, _) = out(d.docker().args(["exec", &id, "sh", "-c", "exit 5"]));
    seen.push(format!("exec exit {code:?}"));
    seen.push(tty(&format!(
        "exec -t {id} sh -c 'test -t 1 && echo exec tty'"
    )));
    ok(d.docker()
        .args(["update", "-m", "64m", "--memory-swap", "128m", &id]));
    seen.push(ok(d.docker().args([
        "exec",
        &id,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ])));
    // A live count (an exec's process may linger a moment): at least the
    // init. The CLI prints `--` when the daemon took over two seconds:
    // asked again then.
    let stats = || {
        ok(d.docker()
            .args(["stats", "--no-stream", "--format", "{{.PIDs}}", &id]))
    };
    let mut pids = stats();
    for _ in 0..5 {
        if pids != "--" {
            break;
        }
        pids = stats();
    }
    seen.push(format!(
        "stats pids: {}",
        pids.parse::<u64>().is_ok_and(|n| n >= 1)
    ));
    ok(d.docker().args(["pause", &id]));
    seen.push(ok(d.docker().args([
        "inspect",
        "-f",
        "{{.State.Status}}",
        &id,
    ])));
    ok(d.docker().args(["unpause", &id]));
    let top = ok(d.docker().args(["top", &id]));
    seen.push(format!("top has sleep: {}", top.contains("sleep 1000")));
    ok(d.docker().args(["stop", "-t", "1", &id]));
    seen.push(ok(d.docker().args([
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &id,
    ])));
    ok(d.docker().args(["rm", "-f", &id]));
    seen
}

#[test]
fn dockerd_runs_the_runtime_like_runc() {
    let test = "dockerd_runs_the_runtime_like_runc";
    if !require_privileged(test) || !require_command(test, "dockerd") {
        return;
    }
    let tmp = TempDir::new("runtime-docker").unwrap();
    let tar = busybox_tar(tmp.path());
    let bin = runtime_binary();
    let d = Dockerd::start_with(
        "runtime",
        &[format!("--add-runtime=dunnage={}", bin.display())],
    )
    .unwrap();
    let image = "dunnage-test/runtime:1";
    ok(d.docker().arg("import").arg(&tar).arg(image));
    let ours = probes(&d, "dunnage", image);
    let runc = probes(&d, "runc", image);
    let log = d.log();
    let ddir = d.stop().unwrap();
    for m in mounts_below(ddir.path()).into_iter().rev() {
        let _ = detach_unmount(&m);
    }
    assert_eq!(
        ours, runc,
        "ours:\n{ours:#?}\nrunc:\n{runc:#?}\ndockerd log:\n{log}"
    );
}
