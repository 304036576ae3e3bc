//! Every example takes paths that are not UTF-8 (`\xff` in a name): no
//! panic (exit 101), and the path reaches the file system byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dunnage_testsupport::{
    CgroupGuard, MountGuard, TempDir, example_binary, require_root, unique_name,
};

/// `dir/<name>\xff`.
fn odd(dir: &Path, name: &str) -> PathBuf {
    let mut n = name.as_bytes().to_vec();
    n.push(0xff);
    dir.join(OsString::from_vec(n))
}

fn run(example: &str, args: &[&OsStr]) -> Output {
    Command::new(example_binary(example))
        .args(args)
        .output()
        .unwrap()
}

/// Assert success and no panic; returns stdout.
fn ok(example: &str, args: &[&OsStr]) -> Vec<u8> {
    let out = run(example, args);
    assert!(
        out.status.success(),
        "{example} {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A layer tar with one file `name` holding `data`, at `path`.
fn layer_tar(path: &Path, name: &str, data: &[u8]) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, name, data).unwrap();
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[test]
fn overlay_example_changes_and_mounts_odd_paths() {
    let dir = TempDir::new("nonutf8-overlay").unwrap();
    let upper = odd(dir.path(), "upper");
    std::fs::create_dir(&upper).unwrap();
    std::fs::write(upper.join("new"), b"x").unwrap();
    let out = ok("overlay", &["changes".as_ref(), upper.as_os_str()]);
    assert_eq!(String::from_utf8_lossy(&out).trim(), "A /new");
    // A text option that is not UTF-8 is an error, not a panic.
    let out = run(
        "overlay",
        &[
            "mount".as_ref(),
            upper.as_os_str(),
            "-o".as_ref(),
            upper.as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    if !dunnage_testsupport::require_privileged("overlay_example_mounts_odd_paths") {
        return;
    }
    let lower = odd(dir.path(), "lower");
    std::fs::create_dir(&lower).unwrap();
    std::fs::write(lower.join("old"), b"y").unwrap();
    let target = odd(dir.path(), "mnt");
    std::fs::create_dir(&target).unwrap();
    let _guard = MountGuard::new(&target);
    ok(
        "overlay",
        &[
            "mount".as_ref(),
            target.as_os_str(),
            "--lower".as_ref(),
            upper.as_os_str(),
            "--lower".as_ref(),
            lower.as_os_str(),
            "--ro".as_ref(),
        ],
    );
    assert_eq!(std::fs::read(target.join("new")).unwrap(), b"x");
    assert_eq!(std::fs::read(target.join("old")).unwrap(), b"y");
    ok("overlay", &["umount".as_ref(), target.as_os_str()]);
    assert!(!target.join("new").exists());
}

#[test]
fn layerstore_example_takes_an_odd_root_and_tar() {
    require_root!();
    let dir = TempDir::new("nonutf8-layerstore").unwrap();
    let root = odd(dir.path(), "root");
    let tar = odd(dir.path(), "layer.tar");
    layer_tar(&tar, "f", b"data");
    let out = ok(
        "layerstore",
        &[root.as_os_str(), "register".as_ref(), tar.as_os_str()],
    );
    let chain = String::from_utf8(out).unwrap();
    let chain = chain.split(' ').next().unwrap().to_string();
    let out = ok("layerstore", &[root.as_os_str(), "list".as_ref()]);
    assert!(String::from_utf8(out).unwrap().starts_with(&chain));
    let out = ok(
        "layerstore",
        &[root.as_os_str(), "tar".as_ref(), chain.as_ref()],
    );
    assert_eq!(out, std::fs::read(&tar).unwrap());
    // A chainID that is not UTF-8: a usage error.
    let out = run(
        "layerstore",
        &[root.as_os_str(), "chain".as_ref(), tar.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn dunnage_example_takes_odd_roots_archives_and_mount_points() {
    require_root!();
    let dir = TempDir::new("nonutf8-dunnage").unwrap();
    let root = odd(dir.path(), "root");
    let rootfs = odd(dir.path(), "rootfs.tar");
    layer_tar(&rootfs, "hello", b"world");
    let cli = |args: &[&OsStr]| {
        let mut all: Vec<&OsStr> = vec!["--root".as_ref(), root.as_os_str()];
        all.extend_from_slice(args);
        ok("dunnage", &all)
    };
    let id = cli(&["import".as_ref(), rootfs.as_os_str(), "odd:1".as_ref()]);
    let id = String::from_utf8(id).unwrap().trim().to_string();
    let images = String::from_utf8(cli(&["images".as_ref()])).unwrap();
    assert!(images.contains("odd "), "{images}");
    let archive = odd(dir.path(), "saved.tar");
    cli(&[
        "save".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        "odd:1".as_ref(),
    ]);
    assert!(archive.is_file());
    let root2 = odd(dir.path(), "root2");
    let mut load: Vec<&OsStr> = vec!["--root".as_ref(), root2.as_os_str()];
    load.extend(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    assert_eq!(
        String::from_utf8(ok("dunnage", &load)).unwrap(),
        "Loaded image: odd:1\n"
    );
    let mnt = odd(dir.path(), "mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = MountGuard::new(&mnt);
    cli(&["mount".as_ref(), id.as_ref(), mnt.as_os_str()]);
    assert_eq!(std::fs::read(mnt.join("hello")).unwrap(), b"world");
    cli(&["umount".as_ref(), mnt.as_os_str()]);
    assert!(!mnt.join("hello").exists());
    // An image name that is not UTF-8: one error line, exit 1.
    let mut args: Vec<&OsStr> = vec!["--root".as_ref(), root.as_os_str()];
    args.extend(["rmi".as_ref(), archive.as_os_str()]);
    let out = run("dunnage", &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));
}

#[test]
fn cgtools_example_passes_odd_arguments_to_the_command_and_refuses_odd_cgroups() {
    let dir = TempDir::new("nonutf8-cgtools").unwrap();
    let spec = odd(Path::new("pids:"), "x");
    let out = run("cgtools", &["lscgroup".as_ref(), spec.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));

    if !dunnage_testsupport::require_privileged("cgtools_example_cgexec_odd_arguments") {
        return;
    }
    let top = unique_name("nonutf8-cgexec");
    let mut guard = CgroupGuard::new();
    for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(d.path().join(&top));
    }
    let group = format!("pids:{top}");
    ok(
        "cgtools",
        &["cgcreate".as_ref(), "-g".as_ref(), group.as_ref()],
    );
    let file = odd(dir.path(), "file");
    std::fs::write(&file, b"through cgexec").unwrap();
    let out = ok(
        "cgtools",
        &[
            "cgexec".as_ref(),
            "-g".as_ref(),
            group.as_ref(),
            "cat".as_ref(),
            file.as_os_str(),
        ],
    );
    assert_eq!(out, b"through cgexec");
}

#[test]
fn unshare_example_takes_an_odd_working_directory() {
    let dir = TempDir::new("nonutf8-unshare").unwrap();
    let wd = odd(dir.path(), "wd");
    std::fs::create_dir(&wd).unwrap();
    let mut wd_arg = OsString::from("--wd=");
    wd_arg.push(&wd);
    let out = ok("unshare", &[wd_arg.as_os_str(), "pwd".as_ref()]);
    let mut want = wd.as_os_str().as_bytes().to_vec();
    want.push(b'\n');
    assert_eq!(out, want);
}
