//! The `dunnage` example's registry verbs as a program: pull (killed with
//! SIGKILL halfway and pulled again: resumed, consistent), push, login,
//! logout, info, against a real `docker-registry` on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod regsupport;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::run;
use dunnage_image::{ImageStore, LoadOptions};
use dunnage_testsupport::{
    ChildGuard, Rng, TempDir, example_binary, require_command, require_root,
};
use regsupport::http::Proxy;
use regsupport::{Auth, Registry, skopeo_copy};

fn dunnage(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(example_binary("dunnage"));
    cmd.arg("--root").arg(root).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> String {
    let out = dunnage(root, args, env);
    assert!(
        out.status.success(),
        "dunnage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A docker-archive with a 16 MiB incompressible layer and a small one.
fn big_archive(dir: &Path) -> std::path::PathBuf {
    let mut rng = Rng::new(16);
    let mut data = vec![0u8; 16 << 20];
    for chunk in data.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let big = common::layer_tar(&[("big", &data)]);
    let small = common::layer_tar(&[("small", b"small\n")]);
    let (tar, _) = common::docker_archive(&[big, small], "dunnage-test/big:1");
    let path = dir.join("big.tar");
    std::fs::write(&path, tar).unwrap();
    path
}

fn partial_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_pull_killed_halfway_resumes_and_ends_consistent() {
    require_root!();
    require_command!("docker-registry");
    require_command!("skopeo");
    let dir = TempDir::new("reg-kill").unwrap();
    let reg = Registry::start("kill", Auth::None);
    let tar = big_archive(dir.path());
    skopeo_copy(
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{}/dunnage/big:1", reg.addr),
        &[],
    );
    // Through a slow proxy (about 6 MB/s), so the kill lands mid-blob.
    let proxy = Proxy::start(&reg.addr, 64 << 10);
    let reference = format!("{}/dunnage/big:1", proxy.addr);
    let root = dir.join("store");
    let child = Command::new(example_binary("dunnage"))
        .arg("--root")
        .arg(&root)
        .args(["pull", "-q", &reference])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard::new(child.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(60);
    while partial_bytes(&root) < 2 << 20 {
        assert!(Instant::now() < deadline, "no partial download appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child we spawned and still hold.
    unsafe { libc::kill(guard.pid(), libc::SIGKILL) };
    let mut child = child;
    child.wait().unwrap();
    let kept = partial_bytes(&root);
    assert!((2 << 20..16 << 20).contains(&kept), "kept {kept}");

    // Pulled again: only the rest of the big blob comes (Range from
    // where it stopped), not all 16 MiB.
    let before = proxy.sent.load(std::sync::atomic::Ordering::Relaxed);
    let out = ok(&root, &["pull", &reference], &[]);
    let moved = proxy.sent.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        moved < (16 << 20) - kept + (1 << 20),
        "moved {moved}, kept {kept}"
    );
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert_eq!(partial_bytes(&root), 0);
    let store = ImageStore::open(&root).unwrap();
    let loaded = ImageStore::open(&dir.join("loaded")).unwrap();
    let id = loaded.load(&tar, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(store.resolve(&reference).unwrap(), id);
    assert!(
        store
            .leaked_layers()
            .unwrap()
            .unwrap_or_default()
            .is_empty()
    );
    store.inspect(&id).unwrap();
    let again = ok(&root, &["pull", &reference], &[]);
    assert!(again.contains("Already exists"), "{again}");
    assert!(again.contains("Image is up to date"), "{again}");
}

#[test]
fn pull_push_login_logout_and_info_as_a_program() {
    require_root!();
    require_command!("docker-registry");
    require_command!("skopeo");
    require_command!("htpasswd");
    let dir = TempDir::new("reg-cli").unwrap();
    let htpasswd = run(Command::new("htpasswd").args(["-Bbn", "carol", "pw"]));
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    let reg = Registry::start("cli", Auth::Htpasswd(dir.join("htpasswd")));
    let tar = big_archive(dir.path());
    let image = format!("{}/dunnage/cli:1", reg.addr);
    skopeo_copy(
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{image}"),
        &["--dest-creds", "carol:pw"],
    );
    let root = dir.join("store");
    let conf = dir.join("docker");
    let env = [("DOCKER_CONFIG", conf.as_path())];
    let out = dunnage(&root, &["pull", &image], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication"));
    // login reads the password from stdin.
    let mut login = Command::new(example_binary("dunnage"))
        .args(["login", "-u", "carol", "--password-stdin", &reg.addr])
        .env("DOCKER_CONFIG", &conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    login.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");

    let quiet = ok(&root, &["pull", "-q", &image], &env);
    assert_eq!(quiet, format!("{image}\n"));
    let pushed = format!("{}/dunnage/cli:pushed", reg.addr);
    ok(&root, &["tag", &image, &pushed], &env);
    let out = ok(
        &root,
        &["push", "--zstd", "--chunk", "1000000", &pushed],
        &env,
    );
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/dunnage/cli]\n",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains("pushed: digest: sha256:"), "{out}");
    let info = ok(&root, &["info"], &env);
    for want in [
        "Images: 1",
        "Layers: 2",
        "Storage Driver: overlay2",
        "Kernel Version: ",
        "Cgroup Version: ",
    ] {
        assert!(info.contains(want), "{want}: {info}");
    }
    let out = ok(&root, &["logout", &reg.addr], &env);
    assert!(out.starts_with("Removing login credentials"), "{out}");
    let fresh = dir.join("fresh");
    let out = dunnage(&fresh, &["pull", &pushed], &env);
    assert_eq!(out.status.code(), Some(1));
    // Bad input: a bad reference, a bad platform.
    for args in [
        &["pull", "UPPER/case"][..],
        &["pull", "--platform", "linux", &image],
    ] {
        let out = dunnage(&fresh, args, &env);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}
