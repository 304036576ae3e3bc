//! The child's path resolution inside the rootfs when it creates what is
//! missing: targets several levels below the nearest existing directory,
//! file binds with missing parents, device nodes in several directories in
//! turn (the parent directory kept between node steps), and parents that
//! are symlinks pointing out of the rootfs (resolved inside it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::Path;

use dunnage_namespaces::{Command, Device, Error, Kind, Mount};
use dunnage_testsupport::{TempDir, require_root};

/// busybox-static in /bin with the applets used here, empty /dev.
fn busybox_rootfs(tag: &str) -> Option<TempDir> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(busybox) = busybox else {
        dunnage_testsupport::skip(tag, "needs busybox-static");
        return None;
    };
    let dir = TempDir::new(tag).unwrap();
    for d in ["bin", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "stat", "cat", "find"] {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    Some(dir)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn missing_directories_files_and_node_parents_are_made_inside_the_rootfs() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("rootfs-paths") else {
        return;
    };
    let outside = TempDir::new("rootfs-paths-out").unwrap();
    let out = outside.path().to_str().unwrap().to_owned();
    // A parent that is an absolute symlink out of the rootfs (its target
    // exists inside the rootfs too), and a host file to bind.
    symlink(&out, rootfs.join("abs")).unwrap();
    std::fs::create_dir_all(rootfs.join(out.trim_start_matches('/'))).unwrap();
    // The file to bind lives in a directory of its own (removed even when
    // the test fails), not in `outside`, which must stay empty.
    let host = TempDir::new("rootfs-paths-host").unwrap();
    let host_file = host.path().join("file");
    std::fs::write(&host_file, "bound\n").unwrap();
    std::fs::create_dir(rootfs.join("dev/sub")).unwrap();
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount)
        .rootfs(rootfs.path())
        // Three missing levels below /tmp, and four below the root.
        .mount(Mount::new("tmpfs", "/tmp/a/b/c", &[]))
        .mount(Mount::new("tmpfs", "/w/x/y/z", &[]))
        // Missing parents below a symlink that points out: made inside.
        .mount(Mount::new("tmpfs", "/abs/p/q", &[]))
        // A file bind whose parents are missing.
        .mount(Mount::bind(&host_file, "/etc/sub/f", &[]))
        // Nodes in a subdirectory, then back in /dev, then in the
        // subdirectory again, then below the link: each lands in its own
        // directory.
        .device(Device::char("/dev/sub/null", 1, 3, 0o666))
        .device(Device::char("/dev/zero", 1, 5, 0o666))
        .device(Device::char("/dev/sub/zero", 1, 5, 0o666))
        .device(Device::char("/abs/null", 1, 3, 0o666))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg(format!(
            "stat -c '%n %F' /tmp/a/b/c /w/x/y/z {out}/p/q /dev/sub/null /dev/zero \
             /dev/sub/zero {out}/null; cat /etc/sub/f"
        )));
    let want = format!(
        "/tmp/a/b/c directory\n/w/x/y/z directory\n{out}/p/q directory\n\
         /dev/sub/null character special file\n/dev/zero character special file\n\
         /dev/sub/zero character special file\n{out}/null character special file\nbound\n"
    );
    assert_eq!(text, want);
    // Nothing was made on the host through the link.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // The rootfs got the directories (mount points) and the file.
    assert!(rootfs.join("w/x/y/z").is_dir());
    assert!(rootfs.join("etc/sub/f").is_file());
}

#[test]
fn a_regular_file_in_the_way_of_a_missing_target_is_an_error() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("rootfs-paths-file") else {
        return;
    };
    std::fs::write(rootfs.join("plain"), "").unwrap();
    let e = Command::new("/bin/true")
        .namespaces(Kind::Mount)
        .rootfs(rootfs.path())
        .mount(Mount::new("tmpfs", "/plain/a/b", &[]))
        .spawn()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Setup { name: "mount", source, .. } if source.raw_os_error() == Some(libc::ENOTDIR)),
        "{e}"
    );
}
