//! Each kind of namespace isolates what it should, on the real kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use dunnage_namespaces::{Clock, Command, Kind, Propagation, PropagationMode};
use dunnage_testsupport::{MountGuard, TempDir, require_root, unique_name};

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn hostname_set_inside_is_not_seen_outside() {
    require_root!();
    let name = unique_name("uts");
    let before = hostname();
    let inside = stdout_of(
        sh("hostname; domainname")
            .namespaces(Kind::Uts)
            .hostname(&name)
            .domainname("dunnage-test-domain"),
    );
    assert_eq!(inside, format!("{name}\ndunnage-test-domain\n"));
    assert_eq!(hostname(), before);
    // Set by the program itself, too.
    let inside = stdout_of(sh("hostname dunnage-test-other; hostname").namespaces(Kind::Uts));
    assert_eq!(inside, "dunnage-test-other\n");
    assert_eq!(hostname(), before);
}

#[test]
fn first_process_is_pid_1_and_ps_sees_only_the_inside() {
    require_root!();
    let out = stdout_of(
        sh("echo $$; ps -e -o pid= | wc -l; cat /proc/1/comm")
            .namespaces(Kind::Pid)
            .mount_proc("/proc"),
    );
    // sh is PID 1; ps sees sh and itself only (wc runs after ps exited? no:
    // it is a sibling, so three processes at most).
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    let n: usize = lines[1].trim().parse().unwrap();
    assert!((2..=3).contains(&n), "ps saw {n} processes");
    assert_eq!(lines[2], "sh");
    // Without a fresh /proc, ps still sees the host.
    let out = stdout_of(sh("ps -e -o pid= | wc -l").namespaces(Kind::Pid));
    assert!(out.trim().parse::<usize>().unwrap() > 3);
}

#[test]
fn ipc_queue_made_outside_is_not_seen_inside() {
    require_root!();
    let key = 0x0dd0_0000 + (std::process::id() as i32 & 0xffff);
    let id = unsafe { libc::msgget(key, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
    struct Queue(i32);
    impl Drop for Queue {
        fn drop(&mut self) {
            unsafe { libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    let _queue = Queue(id);
    let probe = move || {
        // Only a raw syscall here: the closure runs in a forked copy.
        if unsafe { libc::msgget(key, 0) } >= 0 {
            0
        } else {
            1
        }
    };
    let outside = Command::function(probe).status().unwrap();
    assert_eq!(
        outside.code(),
        Some(0),
        "the queue is visible without a new ipc ns"
    );
    let inside = Command::function(probe)
        .namespaces(Kind::Ipc)
        .status()
        .unwrap();
    assert_eq!(
        inside.code(),
        Some(1),
        "the queue leaked into the new ipc ns"
    );
}

#[test]
fn new_network_namespace_has_only_lo() {
    require_root!();
    let out =
        stdout_of(sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").namespaces(Kind::Net));
    assert_eq!(out, "lo\n");
    let down = stdout_of(sh("cat /proc/net/if_inet6 | wc -l").namespaces(Kind::Net));
    assert_eq!(down.trim(), "0", "lo is down: no address yet");
    let up = stdout_of(
        sh("grep -c ' lo$' /proc/net/if_inet6 || true")
            .namespaces(Kind::Net)
            .loopback_up(true),
    );
    assert_eq!(up.trim(), "1", "lo is up: ::1 assigned");
}

fn is_mount_point(p: &Path) -> bool {
    dunnage_testsupport::mounts_below(p).iter().any(|m| m == p)
}

fn mount_tmpfs_script(target: &Path) -> String {
    format!("mount -t tmpfs dunnage-test {}", target.display())
}

#[test]
fn mount_in_a_new_mount_namespace_is_invisible_outside() {
    require_root!();
    let dir = TempDir::new("mnt").unwrap();
    let target = dir.join("m");
    std::fs::create_dir(&target).unwrap();
    let script = format!(
        "{} && grep -c ' {} ' /proc/self/mountinfo",
        mount_tmpfs_script(&target),
        target.display()
    );
    let inside = stdout_of(sh(&script).namespaces(Kind::Mount));
    assert_eq!(inside.trim(), "1");
    assert!(!is_mount_point(&target));
}

/// The seed's experiment: /mntS is shared, /mntP private; a mount made under
/// each in a new mount namespace (propagation left unchanged) reaches the
/// parent namespace only from /mntS.
#[test]
fn mount_under_shared_propagates_and_under_private_does_not() {
    require_root!();
    let dir = TempDir::new("propagation").unwrap();
    let mut guards = Vec::new();
    for (name, mode) in [
        ("mntS", PropagationMode::Shared),
        ("mntP", PropagationMode::Private),
    ] {
        let p = dir.join(name);
        std::fs::create_dir_all(p.join("sub")).unwrap();
        let status = std::process::Command::new("mount")
            .args(["--bind"])
            .arg(&p)
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        guards.push(MountGuard::new(&p));
        dunnage_namespaces::set_propagation(&p, Propagation::single(mode)).unwrap();
    }
    let script = format!(
        "{} && {}",
        mount_tmpfs_script(&dir.join("mntS/sub")),
        mount_tmpfs_script(&dir.join("mntP/sub"))
    );
    let status = sh(&script)
        .namespaces(Kind::Mount)
        .propagation(None)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        is_mount_point(&dir.join("mntS/sub")),
        "shared mount did not propagate"
    );
    assert!(
        !is_mount_point(&dir.join("mntP/sub")),
        "private mount propagated"
    );
    // With the default (recursively private), nothing propagates.
    dunnage_testsupport::detach_unmount(&dir.join("mntS/sub")).unwrap();
    let status = sh(&mount_tmpfs_script(&dir.join("mntS/sub")))
        .namespaces(Kind::Mount)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!is_mount_point(&dir.join("mntS/sub")));
}

#[test]
fn cgroup_namespace_root_is_slash() {
    require_root!();
    let out = stdout_of(
        Command::new("cat")
            .arg("/proc/self/cgroup")
            .namespaces(Kind::Cgroup),
    );
    assert!(out.lines().any(|l| l == "0::/"), "{out}");
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");
}

fn uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn time_namespace_offset_shows_in_uptime() {
    require_root!();
    let day = 86_400;
    let outside = uptime();
    let inside = stdout_of(
        Command::new("cat")
            .arg("/proc/uptime")
            .namespaces(Kind::Time)
            .time_offset(Clock::Boottime, 10 * day)
            .time_offset(Clock::Monotonic, day),
    );
    let inside: f64 = inside.split_whitespace().next().unwrap().parse().unwrap();
    let shift = inside - outside;
    assert!(
        (shift - 10.0 * day as f64).abs() < 60.0,
        "uptime shifted by {shift}"
    );
}

#[test]
fn a_closure_runs_in_the_new_namespaces_and_its_return_is_the_exit_code() {
    require_root!();
    let status = Command::function(|| {
        let mut buf = [0u8; 64];
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if buf.starts_with(b"dunnage-test-fn\0") {
            42
        } else {
            1
        }
    })
    .namespaces(Kind::Uts)
    .hostname("dunnage-test-fn")
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(42));
}

#[test]
fn parent_death_signal_reaches_the_child() {
    require_root!();
    // The signal fires when the spawning *thread* exits.
    let pid = std::thread::spawn(|| {
        let child = Command::new("sleep")
            .arg("30")
            .parent_death_signal(libc::SIGKILL)
            .spawn()
            .unwrap();
        child.id()
    })
    .join()
    .unwrap();
    let mut raw = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut raw, 0) }, pid);
    assert_eq!(
        std::process::ExitStatus::from_raw(raw).signal(),
        Some(libc::SIGKILL)
    );
}
