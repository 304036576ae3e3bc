//! Joining namespaces by file while creating others, with a new user
//! namespace among them: mount and time namespaces, against util-linux's
//! `nsenter` + `unshare` doing the same in that order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::OwnedFd;
use std::process::Command as StdCommand;

use dunnage_namespaces::{Clock, Command, Error, IdMap, Kind, Stdio};
use dunnage_testsupport::{TempDir, require_command, require_root};

fn ns_file(pid: u32, kind: &str) -> OwnedFd {
    std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .into()
}

/// A process that holds its namespaces until killed.
struct Holder(std::process::Child);

impl Holder {
    fn new(cmd: &mut StdCommand) -> Holder {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // It prints a line once its namespaces are ready.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A mount namespace joined while a new user namespace is made: the child
/// sees the joined namespace's mounts, in its own user namespace, as
/// `nsenter --mount` followed by `unshare --user` does; the spawning
/// thread's working directory is back where it was.
#[test]
fn a_joined_mount_namespace_with_a_new_user_namespace() {
    require_root!();
    require_command!("nsenter");
    require_command!("unshare");
    let dir = TempDir::new("join-mnt").unwrap();
    let d = dir.path().display().to_string();
    // The holder's namespace has a tmpfs with a marker on the directory
    // (gone with the namespace).
    let holder = Holder::new(StdCommand::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &format!("mount -t tmpfs x {d} && touch {d}/marker && echo ready && exec sleep 1000"),
    ]));
    let pid = holder.0.id();
    let script = format!(
        "ls {d}; readlink /proc/self/ns/mnt; cat /proc/self/uid_map; \
         [ \"$(readlink /proc/self/ns/user)\" = \"$HOST_USER\" ] && echo user shared || echo user new"
    );
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    let cwd = std::env::current_dir().unwrap();
    let ours = Command::new("sh")
        .args(["-c", &script])
        .env("HOST_USER", &host_user)
        .namespaces(Kind::User)
        .uid_map([IdMap::new(0, 0, 1)])
        .gid_map([IdMap::new(0, 0, 1)])
        .join_namespace(Kind::Mount, ns_file(pid, "mnt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    let theirs = StdCommand::new("nsenter")
        .arg(format!("--mount=/proc/{pid}/ns/mnt"))
        .args(["unshare", "--user", "--map-root-user", "sh", "-c", &script])
        .env("HOST_USER", &host_user)
        .output()
        .unwrap();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(ours.status.success(), "{ours:?}");
    assert_eq!(text(&ours), text(&theirs));
    let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(
        text(&ours),
        format!(
            "marker\n{}\n         0          0          1\nuser new\n",
            mnt.display()
        )
    );
    // This process's own mount namespace does not have it.
    assert!(!dir.join("marker").exists());
}

/// The child of a new user namespace has no privilege over a joined mount
/// namespace: a rootfs or proc mount there is refused before clone.
#[test]
fn mounting_in_a_joined_mount_namespace_from_a_new_user_namespace_is_refused() {
    let dir = TempDir::new("join-mnt-rootfs").unwrap();
    let e = Command::new("true")
        .namespaces(Kind::User)
        .rootfs(dir.path())
        .join_namespace(Kind::Mount, ns_file(std::process::id(), "mnt"))
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Join {
                kind: Kind::Mount,
                ..
            }
        ),
        "{e}"
    );
}

/// A time namespace joined by the child (no new user namespace): the
/// program runs in it, as `nsenter --time` runs it.
#[test]
fn a_joined_time_namespace() {
    require_root!();
    require_command!("nsenter");
    let mut holder = Command::new("sh");
    holder
        .args(["-c", "echo ready; exec sleep 1000"])
        .namespaces(Kind::Time)
        .time_offset(Clock::Boottime, 86400 * 365)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = holder.spawn().unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let script = "readlink /proc/self/ns/time; cut -d. -f1 /proc/uptime";
    let ours = Command::new("sh")
        .args(["-c", script])
        .join_namespace(Kind::Time, ns_file(pid as u32, "time"))
        .stdin(Stdio::null())
        .output();
    let theirs = StdCommand::new("nsenter")
        .arg(format!("--time=/proc/{pid}/ns/time"))
        .args(["sh", "-c", script])
        .output();
    child.kill().unwrap();
    child.wait().unwrap();
    let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
    let lines = |o: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(o)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (ours, theirs) = (lines(&ours.stdout), lines(&theirs.stdout));
    let time = std::fs::read_link(format!("/proc/{pid}/ns/time"));
    assert_eq!(ours[0], theirs[0]);
    if let Ok(time) = time {
        assert_eq!(ours[0], time.display().to_string());
    }
    assert_ne!(
        ours[0],
        std::fs::read_link("/proc/self/ns/time")
            .unwrap()
            .display()
            .to_string()
    );
    // A year ahead, both (the seconds may differ by the run's length).
    let up = |s: &str| s.parse::<u64>().unwrap();
    assert!(up(&ours[1]) >= 86400 * 365, "{ours:?}");
    assert!(up(&theirs[1]) >= 86400 * 365, "{theirs:?}");
}

/// With a new user namespace a time namespace is joined by the spawning
/// process around the clone, which the kernel allows only when it is
/// single-threaded: a multithreaded caller gets a typed error (and
/// nothing is left changed).
#[test]
fn a_joined_time_namespace_with_a_new_user_namespace_needs_a_single_thread() {
    require_root!();
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _ = wait.recv();
    });
    let own = std::fs::read_link("/proc/self/ns/time").unwrap();
    let e = Command::new("true")
        .namespaces(Kind::User)
        .uid_map([IdMap::new(0, 0, 1)])
        .gid_map([IdMap::new(0, 0, 1)])
        .join_namespace(Kind::Time, ns_file(std::process::id(), "time"))
        .spawn()
        .unwrap_err();
    stop.send(()).unwrap();
    other.join().unwrap();
    assert!(
        matches!(
            e,
            Error::Join {
                kind: Kind::Time,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(std::fs::read_link("/proc/self/ns/time").unwrap(), own);
}
