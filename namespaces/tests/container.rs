//! A container's process against the real kernel: pivot_root into a
//! busybox rootfs built here, Docker's mounts, /dev, masked and read-only
//! paths, hostile rootfs layouts, bad input, the start gate, passed fds and
//! joined namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use dunnage_namespaces::{
    Command, Device, Error, IdMap, Kind, Kinds, Mount, MountError, Stdio, Step, pidfd_open,
};
use dunnage_testsupport::{TempDir, require_root};

const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "stat", "echo", "touch", "mkdir", "readlink", "hostname", "grep", "id",
    "sleep", "test", "true", "head", "wc",
];

/// A minimal rootfs: busybox-static and its applets in /bin, empty /proc,
/// /sys, /dev, /tmp.
fn busybox_rootfs(tag: &str) -> Option<TempDir> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(busybox) = busybox else {
        dunnage_testsupport::skip(tag, "needs busybox-static");
        return None;
    };
    let dir = TempDir::new(tag).unwrap();
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for a in APPLETS {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    Some(dir)
}

fn docker_like(cmd: &mut Command, rootfs: &Path) {
    cmd.namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
        .rootfs(rootfs)
        .mounts(Mount::docker_defaults())
        .default_devices(true)
        .env_clear()
        .env("PATH", "/bin");
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/acpi",
        "/sys/firmware",
        "/proc/scsi",
    ] {
        cmd.masked_path(p);
    }
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"] {
        cmd.readonly_path(p);
    }
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

/// Mount points of the host's mount table below `dir`.
fn host_mounts_below(dir: &Path) -> Vec<PathBuf> {
    dunnage_testsupport::mounts_below(dir)
}

#[test]
fn pivot_root_into_busybox_with_dockers_mounts_devices_and_masks() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("pivot") else {
        return;
    };
    let mut cmd = Command::new("/bin/sh");
    docker_like(&mut cmd, rootfs.path());
    cmd.arg("-c").arg(
        "cut() { while read -r a b c d e rest; do echo \"$e\"; done; }; \
         cut < /proc/self/mountinfo; echo ---; \
         stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
         for l in /dev/ptmx /dev/fd /dev/stdin; do readlink $l; done; echo ---; \
         wc -c < /proc/keys; ls /proc/acpi | wc -l; \
         (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo writable || echo readonly; \
         ls /..; echo $$",
    );
    let text = run(&mut cmd);
    let mut parts = text.split("---\n");
    let points: Vec<&str> = parts.next().unwrap().lines().collect();
    let cgroup_mounts = points.iter().filter(|p| **p == "/sys/fs/cgroup").count();
    assert_eq!(cgroup_mounts, 1, "{points:?}");
    for want in [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/proc/keys",
        "/proc/sys",
    ] {
        assert!(points.contains(&want), "{want} not in {points:?}");
    }
    let devs = parts.next().unwrap();
    assert!(
        devs.contains("/dev/null character special file 1:3 666"),
        "{devs}"
    );
    assert!(
        devs.contains("/dev/tty character special file 5:0 666"),
        "{devs}"
    );
    assert!(
        devs.contains("/dev/urandom character special file 1:9 666"),
        "{devs}"
    );
    assert!(
        devs.contains("pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n"),
        "{devs}"
    );
    let rest: Vec<&str> = parts.next().unwrap().lines().collect();
    assert_eq!(rest[0], "0", "masked /proc/keys reads empty: {rest:?}");
    assert_eq!(rest[1], "0", "masked /proc/acpi is an empty dir: {rest:?}");
    assert_eq!(rest[2], "readonly", "{rest:?}");
    // `/..` is the new root: the old root is gone.
    assert!(rest.contains(&"bin") && !rest.contains(&"home"), "{rest:?}");
    assert_eq!(rest.last(), Some(&"1"), "pid 1 in the new pid namespace");
    assert!(host_mounts_below(rootfs.path()).is_empty());
}

#[test]
fn a_readonly_root_and_binds_of_files_and_directories() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("ro") else {
        return;
    };
    let data = TempDir::new("ro-data").unwrap();
    std::fs::write(data.join("file"), "bound file\n").unwrap();
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount)
        .rootfs(rootfs.path())
        .readonly_rootfs(true)
        .mount(Mount::new("tmpfs", "/tmp", &["size=1m", "mode=1777"]))
        .mount(Mount::bind(data.join("file"), "/etc/deep/file", &["ro"]))
        .mount(Mount::bind(data.path(), "/mnt/data", &["rbind", "rro"]))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg(
            "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
             touch /tmp/x && echo tmp-rw; cat /etc/deep/file; \
             touch /mnt/data/y 2>/dev/null && echo data-rw || echo data-ro; \
             stat -c %a /tmp",
        ));
    assert_eq!(text, "root-ro\ntmp-rw\nbound file\ndata-ro\n1777\n");
    // The mount points were created inside the rootfs, on the host.
    assert!(rootfs.join("etc/deep/file").is_file());
    assert!(rootfs.join("mnt/data").is_dir());
    assert!(!data.join("y").exists());
}

#[test]
fn hostile_symlinks_never_make_anything_land_outside_the_rootfs() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("hostile") else {
        return;
    };
    let outside = TempDir::new("outside").unwrap();
    let out = outside.path().to_str().unwrap().to_owned();
    // Absolute and relative links pointing at a host directory.
    symlink(&out, rootfs.join("abs")).unwrap();
    symlink(format!("../../../../../../../..{out}"), rootfs.join("rel")).unwrap();
    std::fs::create_dir_all(rootfs.join(out.trim_start_matches('/'))).unwrap();
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount)
        .rootfs(rootfs.path())
        .mount(Mount::new("tmpfs", "/abs/a", &[]))
        .mount(Mount::new("tmpfs", "/rel/b", &[]))
        .device(Device::char("/rel/null", 1, 3, 0o666))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg(format!("ls {out}")));
    assert_eq!(text, "a\nb\nnull\n");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(host_mounts_below(outside.path()).is_empty());

    // /proc as a symlink to / and /dev as a symlink out: refused before
    // clone, as runc refuses them, nothing made outside.
    let Some(rootfs) = busybox_rootfs("hostile2") else {
        return;
    };
    let refused = |e: &Error| {
        matches!(
            e,
            Error::InvalidMount {
                reason: MountError::Symlink,
                ..
            }
        )
    };
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink("/", rootfs.join("proc")).unwrap();
    let e = Command::new("/bin/true")
        .namespaces(Kind::Mount | Kind::Pid)
        .rootfs(rootfs.path())
        .mount(Mount::new("proc", "/proc", &[]))
        .spawn()
        .unwrap_err();
    assert!(refused(&e), "{e}");
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    symlink(&out, rootfs.join("dev")).unwrap();
    let e = Command::new("/bin/true")
        .namespaces(Kind::Mount)
        .rootfs(rootfs.path())
        .mount(Mount::new("tmpfs", "/dev", &["mode=755"]))
        .default_devices(true)
        .spawn()
        .unwrap_err();
    assert!(refused(&e), "{e}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // The link swapped in after the checks (by the hook, while the child
    // waits): the child's own resolution refuses it (ELOOP).
    std::fs::remove_file(rootfs.join("proc")).unwrap();
    std::fs::create_dir(rootfs.join("proc")).unwrap();
    let proc_dir = rootfs.join("proc");
    let e = Command::new("/bin/true")
        .namespaces(Kind::Mount | Kind::Pid)
        .rootfs(rootfs.path())
        .mount(Mount::new("proc", "/proc", &[]))
        .before_start(move |_| {
            std::fs::remove_dir(&proc_dir)?;
            symlink("/", &proc_dir)
        })
        .spawn()
        .unwrap_err();
    assert!(
        matches!(&e, Error::Setup { name: "mount", source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
        "{e}"
    );
}

#[test]
fn bad_input_fails_before_clone_with_nothing_left_behind() {
    let rootfs = TempDir::new("bad").unwrap();
    type Case = (fn(&mut Command, &Path), &'static str);
    let cases: [Case; 6] = [
        (
            |c, _| {
                c.rootfs("/dunnage-test-no-such-rootfs");
            },
            "missing rootfs",
        ),
        (
            |c, r| {
                c.rootfs(r).mount(Mount::new("tmpfs", "tmp", &[]));
            },
            "relative destination",
        ),
        (
            |c, r| {
                c.rootfs(r).mount(Mount::new("tmpfs", "/proc/sys", &[]));
            },
            "under /proc",
        ),
        (
            |c, r| {
                c.rootfs(r)
                    .mount(Mount::bind("/dunnage-test-no-such-source", "/x", &[]));
            },
            "missing bind source",
        ),
        (
            |c, _| {
                c.mount(Mount::new("tmpfs", "/tmp", &[]));
            },
            "mounts without a rootfs",
        ),
        (
            |c, r| {
                c.rootfs(r).mount(Mount::new("ext4", "/x", &[]));
            },
            "unsupported type",
        ),
    ];
    for (setup, why) in cases {
        let mut cmd = Command::new("/bin/true");
        setup(&mut cmd, rootfs.path());
        let e = cmd.spawn().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Rootfs { .. } | Error::InvalidMount { .. } | Error::MountSource { .. }
            ),
            "{why}: {e}"
        );
        // plan() refuses the same input without spawning.
        assert!(cmd.plan().is_err(), "{why}");
    }
    let e = Command::new("/bin/true")
        .rootfs(rootfs.path())
        .mount(Mount::new("tmpfs", "/proc/x", &[]))
        .plan()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidMount {
                reason: MountError::UnderProc,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(rootfs.path()).unwrap().count(), 0);
}

#[test]
fn the_start_gate_holds_the_child_until_released() {
    let dir = TempDir::new("gate").unwrap();
    let marker = dir.join("ran");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("echo ran > {}", marker.display()))
        .start_gate(true);
    let mut child = cmd.spawn().unwrap();
    let gate = child.take_gate().expect("a gate");
    // The setup is done, the program not started.
    assert!(child.try_wait().unwrap().is_none());
    assert!(!marker.exists());
    gate.release().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");

    // Dropped without release: the child ends, the program never runs.
    let mut child = cmd.spawn().unwrap();
    drop(child.take_gate());
    assert_eq!(child.wait().unwrap().code(), Some(127));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    std::fs::remove_file(&marker).unwrap();

    // Released by another process that got the descriptor.
    let mut child = cmd.spawn().unwrap();
    let fd = child.take_gate().unwrap().into_fd();
    let status = std::process::Command::new("sh")
        .args(["-c", "printf x"])
        .stdout(std::process::Stdio::from(fd))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    assert!(marker.exists());
}

#[test]
fn only_stdio_and_passed_descriptors_reach_the_program() {
    let dir = TempDir::new("fds").unwrap();
    std::fs::write(dir.join("passed"), "passed content\n").unwrap();
    // A descriptor leaked into this process without close-on-exec.
    let leaked = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(leaked > 2);
    let passed: OwnedFd = std::fs::File::open(dir.join("passed")).unwrap().into();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("cat <&7; ls /proc/self/fd")
        .pass_fd(7, passed)
        .output();
    unsafe { libc::close(leaked) };
    let out = out.unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("passed content"));
    let fds: Vec<i32> = lines.map(|l| l.parse().unwrap()).collect();
    // 0, 1, 2, 7 and the directory ls reads (3).
    assert_eq!(fds, vec![0, 1, 2, 3, 7], "leaked fd was {leaked}");
    // Targets at the lowest free numbers, where the spawn's own pipes would
    // land: they must not be clobbered (an exec failure is still reported,
    // the gate still works).
    let sources = |n: usize| -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open(dir.join("passed")).unwrap().into())
            .collect()
    };
    let lowest_free = || {
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        unsafe { libc::close(fd) };
        fd
    };
    let fds = sources(10);
    let low = lowest_free();
    let mut cmd = Command::new("/dunnage-test-no-such-program");
    for (i, fd) in fds.into_iter().enumerate() {
        cmd.pass_fd(low + i as i32, fd);
    }
    let e = cmd.spawn().unwrap_err();
    assert!(matches!(e, Error::Exec { .. }), "{e}");
    drop(cmd);
    let fds = sources(10);
    let low = lowest_free();
    let mut cmd = Command::new("/bin/cat");
    cmd.arg(format!("/proc/self/fd/{}", low + 9))
        .stdout(Stdio::piped())
        .start_gate(true);
    for (i, fd) in fds.into_iter().enumerate() {
        cmd.pass_fd(low + i as i32, fd);
    }
    let mut child = cmd.spawn().unwrap();
    child.take_gate().unwrap().release().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(text, "passed content\n", "{status:?}");
    assert!(status.success());
    let e = Command::new("true")
        .pass_fd(1, std::fs::File::open("/dev/null").unwrap().into())
        .spawn()
        .unwrap_err();
    assert!(matches!(e, Error::BadFd { fd: 1 }), "{e}");
}

#[test]
fn joining_a_user_and_uts_namespace_of_a_running_process() {
    require_root!();
    let mut sleeper = Command::new("sleep");
    sleeper
        .arg("1000")
        .namespaces(Kind::User | Kind::Uts)
        .uid_map([IdMap::new(0, 0, 65536)])
        .gid_map([IdMap::new(0, 0, 65536)])
        .hostname("joined-host")
        .stdin(Stdio::null());
    let mut child = sleeper.spawn().unwrap();
    let pid = child.id();
    let open = |k: &str| -> OwnedFd {
        std::fs::File::open(format!("/proc/{pid}/ns/{k}"))
            .unwrap()
            .into()
    };
    let out = Command::new("sh")
        .args(["-c", "hostname; readlink /proc/self/ns/user"])
        .join_namespace(Kind::Uts, open("uts"))
        .join_namespace(Kind::User, open("user"))
        .output();
    let user = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = out.unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("joined-host\n{}\n", user.display())
    );
    // Joining a namespace while making a new one of the same kind is
    // refused before clone (joins.rs: mount and time namespaces).
    let e = Command::new("true")
        .namespaces(Kind::Uts)
        .join_namespace(
            Kind::Uts,
            std::fs::File::open("/proc/self/ns/uts").unwrap().into(),
        )
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Join {
                kind: Kind::Uts,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_new_user_namespace_with_a_joined_network_namespace() {
    require_root!();
    let mut holder = Command::new("sleep");
    holder
        .arg("1000")
        .namespaces(Kind::Net)
        .stdin(Stdio::null());
    let mut child = holder.spawn().unwrap();
    let pid = child.id();
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    let own_net = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let before = own_net();
    let out = Command::new("sh")
        .args([
            "-c",
            "id -u; readlink /proc/self/ns/net; readlink /proc/self/ns/user",
        ])
        .namespaces(Kind::User | Kind::Uts)
        .uid_map([IdMap::new(0, 100_000, 65536)])
        .gid_map([IdMap::new(0, 100_000, 65536)])
        .join_namespace(Kind::Net, pidfd_open(pid).unwrap())
        .output();
    let after = own_net();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = String::from_utf8(out.unwrap().stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "{text}");
    assert_eq!(lines[1], net.to_str().unwrap(), "{text}");
    assert_ne!(lines[2], host_user.to_str().unwrap(), "{text}");
    // The spawning thread is back in its own network namespace.
    assert_eq!(before, after);
}

#[test]
fn inside_a_user_namespace_devices_are_bound_from_the_host() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("userns") else {
        return;
    };
    // Host root mapped to root inside, and a range that leaves the host's
    // root out (the child is unmapped until it becomes the namespace's
    // root, before its setup: devpts with gid=5 needs that).
    for outside in [0, 100_000] {
        let mut cmd = Command::new("/bin/sh");
        docker_like(&mut cmd, rootfs.path());
        cmd.namespaces(Kind::User)
            .uid_map([IdMap::new(0, outside, 65536)])
            .gid_map([IdMap::new(0, outside, 65536)])
            .arg("-c")
            .arg("stat -c '%t:%T' /dev/null /dev/zero; echo x > /dev/null && echo ok; id -u");
        let text = run(&mut cmd);
        assert_eq!(text, "1:3\n1:5\nok\n0\n", "mapped to {outside}");
    }
}

#[test]
fn rootfs_and_per_mount_propagation() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("prop") else {
        return;
    };
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount | Kind::Pid)
        .rootfs(rootfs.path())
        .rootfs_propagation(dunnage_namespaces::Propagation {
            mode: dunnage_namespaces::PropagationMode::Shared,
            recursive: true,
        })
        .mount(Mount::new("proc", "/proc", &[]))
        .mount(Mount::new("tmpfs", "/tmp", &["private"]))
        .mount(Mount::new("tmpfs", "/mnt", &["unbindable"]))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg(
            "while read -r id parent dev root point opts rest; do \
               echo \"$point ${rest%% - *}\"; done < /proc/self/mountinfo",
        ));
    let line = |p: &str| {
        text.lines()
            .find(|l| l.split(' ').next() == Some(p))
            .unwrap_or_else(|| panic!("{p} in {text}"))
            .to_owned()
    };
    assert!(line("/").contains("shared:"), "{text}");
    assert!(!line("/tmp").contains("shared:"), "{text}");
    assert!(line("/mnt").contains("unbindable"), "{text}");
}

const HELPER_ENV: &str = "DUNNAGE_TEST_CONTAINER_HELPER";
const NOBODY: u32 = 65534;

/// As uid 65534 without capabilities: a user namespace mapping only that
/// uid to root, pivot_root into a rootfs the user owns, Docker's mounts
/// (devpts without gid=5, which is not mapped), devices bound from the host.
#[test]
fn an_unprivileged_user_starts_a_container() {
    require_root!();
    dunnage_testsupport::require_command!("setpriv");
    let Some(rootfs) = busybox_rootfs("unpriv") else {
        return;
    };
    let st = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(rootfs.path())
        .status()
        .unwrap();
    assert!(st.success());
    // The TempDir's parents must be searchable by nobody.
    let mut p = rootfs.path().parent();
    while let Some(dir) = p {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert!(mode & 0o001 != 0, "{} not searchable", dir.display());
        p = dir.parent();
    }
    let exe = rootfs.join("../").canonicalize().unwrap().join(format!(
        "{}-exe",
        rootfs.path().file_name().unwrap().to_str().unwrap()
    ));
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let _cleanup = Cleanup(exe.clone());
    let run_helper = || {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&exe)
            .args([
                "--exact",
                "unprivileged_container_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, rootfs.path())
            .output()
            .unwrap()
    };
    // The exec of a just-written file may meet "text busy" while a process
    // forked by another test thread still holds the writer's descriptor.
    let mut out = run_helper();
    for _ in 0..50 {
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        out = run_helper();
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HELPER-RAN"), "{text}");
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Does nothing unless run by the test above.
#[test]
fn unprivileged_container_helper() {
    let Some(rootfs) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    let mounts = Mount::docker_defaults().into_iter().map(|mut m| {
        m.options.retain(|o| o != "gid=5");
        m
    });
    let mut cmd = Command::new("/bin/sh");
    cmd.namespaces(Kind::User | Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
        .uid_map([IdMap::new(0, NOBODY, 1)])
        .gid_map([IdMap::new(0, NOBODY, 1)])
        .rootfs(&rootfs)
        .mounts(mounts)
        .default_devices(true)
        .masked_path("/proc/keys")
        .readonly_path("/proc/sys")
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg(
            "id -u; stat -c '%t:%T' /dev/null; wc -c < /proc/keys; \
             (echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo ro; echo $$",
        );
    let text = run(&mut cmd);
    assert_eq!(text, "0\n1:3\n0\nro\n1\n");
    println!("HELPER-RAN");
}

#[test]
fn joining_a_pid_namespace_by_pidfd_creates_the_child_in_it() {
    require_root!();
    let mut sleeper = Command::new("sleep");
    sleeper
        .arg("1000")
        .namespaces(Kind::Pid)
        .stdin(Stdio::null());
    let mut child = sleeper.spawn().unwrap();
    let pid = child.id();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let own_before = std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap();
    let out = Command::new("sh")
        .args(["-c", "readlink /proc/self/ns/pid"])
        .join_namespace(Kind::Pid, pidfd_open(pid).unwrap())
        .output();
    let own_after = std::fs::read_link("/proc/thread-self/ns/pid_for_children").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = out.unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", theirs.display())
    );
    // The spawning thread is back in its own pid namespace for children.
    assert_eq!(own_before, own_after);
}

#[test]
fn the_cgroup_mount_shows_the_cgroup_the_hook_moved_the_child_into() {
    require_root!();
    let pids = Path::new("/sys/fs/cgroup/pids");
    if !pids.join("cgroup.procs").exists() {
        // Not a test of this host's layout (the pure v2 case is below).
        eprintln!("cgroup v1 mount: no cgroup v1 pids hierarchy here");
        return;
    }
    let Some(rootfs) = busybox_rootfs("cgroupfs") else {
        return;
    };
    let dir = pids.join(dunnage_testsupport::unique_name("ctr"));
    let mut guard = dunnage_testsupport::CgroupGuard::new();
    std::fs::create_dir(&dir).unwrap();
    guard.add(&dir);
    std::fs::write(dir.join("pids.max"), "77").unwrap();
    let procs = dir.join("cgroup.procs");
    let procs2 = procs.clone();
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount | Kind::Pid)
        .rootfs(rootfs.path())
        .mount(Mount::new(
            "cgroup",
            "/sys/fs/cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ))
        .before_start(move |pid| std::fs::write(&procs, pid.to_string()))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg("cat /sys/fs/cgroup/pids/pids.max; (echo 5 > /sys/fs/cgroup/pids/pids.max) 2>/dev/null || echo ro"));
    assert_eq!(text, "77\nro\n");
    // With a new cgroup namespace, made after the hook: the child's cgroup
    // is the namespace's root, and a fresh cgroup mount shows it.
    let text = run(Command::new("/bin/sh")
        .namespaces(Kind::Mount | Kind::Pid | Kind::Cgroup)
        .rootfs(rootfs.path())
        .mount(Mount::new("proc", "/proc", &[]))
        .mount(Mount::new(
            "cgroup",
            "/sys/fs/cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ))
        .before_start(move |pid| std::fs::write(&procs2, pid.to_string()))
        .env_clear()
        .env("PATH", "/bin")
        .arg("-c")
        .arg("cat /sys/fs/cgroup/pids/pids.max; grep ':pids:' /proc/self/cgroup"));
    assert_eq!(text, "77\n8:pids:/\n".replace("8:", &pids_line_prefix()));
}

/// The `N:` prefix of the pids hierarchy's line in /proc/self/cgroup.
fn pids_line_prefix() -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let line = text.lines().find(|l| l.contains(":pids:")).unwrap();
    format!("{}:", line.split(':').next().unwrap())
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (a pure v2 host, such as the
/// VM of tests/vm).
fn pure_v2() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| {
        l.split(' ').nth(4) == Some("/sys/fs/cgroup")
            && l.split(" - ")
                .nth(1)
                .is_some_and(|r| r.starts_with("cgroup2 "))
    })
}

#[test]
fn on_pure_v2_the_cgroup_mount_is_the_childs_cgroup2() {
    require_root!();
    if !pure_v2() {
        // Not a test of this host's layout (the v1/hybrid case is above).
        eprintln!("cgroup2 mount: /sys/fs/cgroup is not cgroup2 here");
        return;
    }
    let Some(rootfs) = busybox_rootfs("cgroup2") else {
        return;
    };
    let dir = Path::new("/sys/fs/cgroup").join(dunnage_testsupport::unique_name("ctr"));
    let mut guard = dunnage_testsupport::CgroupGuard::new();
    std::fs::create_dir(&dir).unwrap();
    guard.add(&dir);
    for cgroupns in [false, true] {
        let procs = dir.join("cgroup.procs");
        let mut cmd = Command::new("/bin/sh");
        cmd.namespaces(Kind::Mount | Kind::Pid)
            .rootfs(rootfs.path())
            .mount(Mount::new("proc", "/proc", &[]))
            .mount(Mount::new(
                "cgroup",
                "/sys/fs/cgroup",
                &["ro", "nosuid", "noexec", "nodev"],
            ))
            .before_start(move |pid| std::fs::write(&procs, pid.to_string()))
            .env_clear()
            .env("PATH", "/bin")
            .arg("-c")
            .arg(
                "ls /sys/fs/cgroup | grep -c dunnage-test; \
                 (mkdir /sys/fs/cgroup/x) 2>/dev/null || echo ro; cat /proc/self/cgroup",
            );
        if cgroupns {
            cmd.namespaces(Kind::Cgroup);
        }
        let text = run(&mut cmd);
        let lines: Vec<&str> = text.lines().collect();
        // The child's own cgroup is what it sees, not the hierarchy's root
        // (which holds the test's cgroup directory).
        assert_eq!(lines[0], "0", "cgroupns {cgroupns}: {text}");
        assert_eq!(lines[1], "ro", "cgroupns {cgroupns}: {text}");
        let want = if cgroupns {
            "0::/".to_owned()
        } else {
            format!("0::/{}", dir.file_name().unwrap().to_str().unwrap())
        };
        assert_eq!(lines[2], want, "{text}");
    }
}

#[test]
fn a_leaked_descriptor_cannot_become_the_working_directory() {
    require_root!();
    let Some(rootfs) = busybox_rootfs("cwd") else {
        return;
    };
    let outside = TempDir::new("cwd-outside").unwrap();
    std::fs::write(outside.join("host-secret"), "x").unwrap();
    // A host directory leaked into this process without close-on-exec.
    let path = std::ffi::CString::new(outside.path().to_str().unwrap()).unwrap();
    let leaked = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(leaked > 2);
    let spawn = |cwd: &str| {
        Command::new("/bin/sh")
            .namespaces(Kind::Mount | Kind::Pid)
            .rootfs(rootfs.path())
            .mount(Mount::new("proc", "/proc", &[]))
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/bin")
            .args(["-c", "pwd; ls"])
            .output()
    };
    let escaped = spawn(&format!("/proc/self/fd/{leaked}"));
    let normal = spawn("/bin");
    unsafe { libc::close(leaked) };
    let e = escaped.unwrap_err();
    assert!(
        matches!(&e, Error::Setup { name: "chdir", source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
        "{e}"
    );
    let out = normal.unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("/bin\n"), "{text}");
    assert!(text.contains("busybox"), "{text}");
}

/// A rootfs in the current mount namespace: no new one, `chroot` instead
/// of `pivot_root` (which would move the root of every process sharing
/// it), and refused with a tmpfs root or a new user namespace.
#[test]
fn rootfs_in_current_mount_namespace_chroots() {
    let rootfs = TempDir::new("ns-shared-rootfs").unwrap();
    let names = |cmd: &Command| -> Vec<&'static str> {
        cmd.plan().unwrap().iter().map(Step::name).collect()
    };
    let mut own = Command::new("/bin/true");
    own.rootfs(rootfs.path());
    let own = names(&own);
    assert!(
        own.contains(&"pivot_root") && !own.contains(&"chroot"),
        "{own:?}"
    );
    let mut shared = Command::new("/bin/true");
    shared.rootfs_in_current_mount_namespace(rootfs.path());
    let shared = names(&shared);
    assert!(
        shared.contains(&"chroot") && !shared.contains(&"pivot_root"),
        "{shared:?}"
    );
    let mut userns = Command::new("/bin/true");
    userns
        .namespaces(Kinds::EMPTY.with(Kind::User))
        .rootfs_in_current_mount_namespace(rootfs.path());
    assert!(matches!(userns.plan(), Err(Error::Join { .. })));
}
