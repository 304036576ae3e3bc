//! Exec into a running container: a process spawned in new namespaces (and
//! a cgroup), then another one started in all of them with
//! `Command::exec_in`, with the process knobs of a container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use dunnage_namespaces::{CapSet, Capabilities, Command, Error, Kind, Mount, Stdio, pidfd_open};
use dunnage_testsupport::{CgroupGuard, ChildGuard, TempDir, require_root, unique_name};

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next() != Some("cgroup2") {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

fn own_cgroup2() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
}

/// Puts the host's busybox at `dst`: a hard link when the temp dir is on
/// the same file system, so no test thread's fork can hold a writer's fd on
/// it (a copy can be "text busy" for a moment), else a copy.
fn install_busybox(dst: &Path) {
    if std::fs::hard_link("/bin/busybox", dst).is_err() {
        std::fs::copy("/bin/busybox", dst).unwrap();
    }
}

fn busybox_rootfs() -> TempDir {
    let dir = TempDir::new("exec").unwrap();
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/marker"), "inside the container\n").unwrap();
    install_busybox(&dir.join("bin/busybox"));
    for a in [
        "sh", "cat", "sleep", "hostname", "readlink", "tty", "echo", "grep", "pwd",
    ] {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    dir
}

fn ns_link(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_a_running_container() {
    require_root!();
    let Some(root) = cgroup2_root() else {
        dunnage_testsupport::skip("exec", "no cgroup2 mount");
        return;
    };
    let parent = own_cgroup2()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let rel = parent.join(unique_name("exec"));
    let dir = root.join(&rel);
    let mut cgroups = CgroupGuard::new();
    std::fs::create_dir(&dir).unwrap();
    cgroups.add(&dir);
    let rootfs = busybox_rootfs();

    let cgroup_fd: OwnedFd = std::fs::File::open(&dir).unwrap().into();
    let mut target = Command::new("/bin/sleep")
        .arg("1000")
        .namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net | Kind::Cgroup)
        .hostname("target")
        .rootfs(rootfs.path())
        .mounts(Mount::docker_defaults())
        .default_devices(true)
        .env_clear()
        .env("PATH", "/bin")
        .into_cgroup(cgroup_fd)
        .spawn()
        .unwrap();
    let _target_guard = ChildGuard::new(target.id());
    let tpid = target.id();

    let docker = CapSet(0xa80425fb);
    let out = Command::new("sh")
        .args([
            "-c",
            "hostname; echo $$; cat /etc/marker; grep ^0:: /proc/self/cgroup; \
             for n in net mnt pid uts; do readlink /proc/self/ns/$n; done; \
             grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; pwd",
        ])
        .exec_in(pidfd_open(tpid).unwrap())
        .env_clear()
        .env("PATH", "/bin")
        .current_dir("/etc")
        .capabilities(Capabilities::uniform(docker))
        .no_new_privileges(true)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?} {text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "target", "{text}");
    // In the target's pid namespace, where the target is 1.
    let pid: i32 = lines[1].parse().unwrap();
    assert!(pid > 1 && pid < 100, "{text}");
    assert_eq!(lines[2], "inside the container", "{text}");
    // Its cgroup is the target's; in the target's cgroup namespace that
    // is the root.
    assert_eq!(lines[3], "0::/", "{text}");
    assert_eq!(
        lines[4..8],
        [
            ns_link(tpid, "net"),
            ns_link(tpid, "mnt"),
            ns_link(tpid, "pid"),
            ns_link(tpid, "uts")
        ],
        "{text}"
    );
    assert!(text.contains("CapEff:\t00000000a80425fb"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert_eq!(lines.last(), Some(&"/etc"), "{text}");
    // From the host: the exec'd process was in the target's cgroup.
    let procs = std::fs::read_to_string(dir.join("cgroup.events")).unwrap();
    assert!(procs.contains("populated 1"), "{procs}");
    // The caller's own pid namespace for children is put back.
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap(),
        std::fs::read_link("/proc/thread-self/ns/pid").unwrap()
    );

    // A terminal inside: the pty comes from the container's devpts.
    let mut child = Command::new("sh")
        .args(["-c", "tty"])
        .exec_in(pidfd_open(tpid).unwrap())
        .env_clear()
        .env("PATH", "/bin")
        .terminal(true)
        .spawn()
        .unwrap();
    let mut master = child.take_terminal().unwrap().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        match master.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(String::from_utf8_lossy(&buf), "/dev/pts/0\r\n");

    target.kill().unwrap();
    target.wait().unwrap();
}

#[test]
fn exec_with_namespaces_or_a_rootfs_is_refused_before_clone() {
    let mut target = Command::new("sleep").arg("1000").spawn().unwrap();
    let _guard = ChildGuard::new(target.id());
    let err = Command::new("true")
        .exec_in(pidfd_open(target.id()).unwrap())
        .namespaces(Kind::Uts)
        .status()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ExecTarget {
                why: "new namespaces",
                ..
            }
        ),
        "{err:?}"
    );
    let dir = TempDir::new("exec-bad").unwrap();
    let err = Command::new("true")
        .exec_in(pidfd_open(target.id()).unwrap())
        .rootfs(dir.path())
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ExecTarget {
                why: "a rootfs",
                ..
            }
        ),
        "{err:?}"
    );
    target.kill().unwrap();
    target.wait().unwrap();
}

/// A target `chroot`ed in the caller's own mount namespace (a container
/// without a mount namespace of its own): the exec'd process follows it
/// into its root.
#[test]
fn exec_follows_a_chrooted_target_into_its_root() {
    require_root!();
    let dir = TempDir::new("exec-chroot").unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    install_busybox(&bin.join("busybox"));
    for applet in ["sleep", "cat"] {
        symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(dir.join("marker"), "chrooted\n").unwrap();
    let mut target = Command::new("/bin/sleep")
        .arg("1000")
        .root(dir.path())
        .spawn()
        .unwrap();
    let _guard = ChildGuard::new(target.id());
    let out = Command::new("/bin/cat")
        .arg("/marker")
        .exec_in(pidfd_open(target.id()).unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "chrooted\n");
    target.kill().unwrap();
    target.wait().unwrap();
}

/// A target `chroot`ed inside a mount namespace other than the caller's
/// (`unshare -m` then `chroot`, as a container created from another mount
/// namespace is): joining its mount namespace puts the child at that
/// namespace's root, and it follows the target into its root from there.
#[test]
fn exec_from_another_mount_namespace_follows_a_chrooted_target() {
    require_root!();
    if !dunnage_testsupport::require_command("exec-other-mntns", "unshare") {
        return;
    }
    let dir = TempDir::new("exec-other-mntns").unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sleep", "cat"] {
        symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(dir.join("marker"), "chrooted elsewhere\n").unwrap();
    // Reaped (and killed first) by the ChildGuard.
    #[allow(clippy::zombie_processes)]
    let target = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--root"])
        .arg(dir.path())
        .args(["/bin/sleep", "1000"])
        .spawn()
        .unwrap();
    let pid = target.id() as i32;
    let _guard = ChildGuard::new(pid);
    // Until unshare has made its namespace and chrooted (it execs sleep
    // after both): its root is then the directory.
    let root_of = |p: i32| std::fs::metadata(format!("/proc/{p}/root/marker")).is_ok();
    let mut tries = 0;
    while !root_of(pid) {
        tries += 1;
        assert!(tries < 1000, "unshare never chrooted");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = Command::new("/bin/cat")
        .arg("/marker")
        .exec_in(pidfd_open(pid).unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "chrooted elsewhere\n");
}
