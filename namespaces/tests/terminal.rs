//! The program's terminal: a pty as controlling terminal and stdio, read
//! through the master; in a container, allocated in its own devpts and
//! bound as /dev/console.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::fs::symlink;

use dunnage_namespaces::{Command, Kind, Mount};
use dunnage_testsupport::{TempDir, require_root};

/// Everything the program writes to the terminal, until it is gone (EIO).
fn read_all(mut master: std::fs::File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("read master: {e}"),
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn a_host_pty_is_the_controlling_terminal_and_stdio() {
    // No privilege needed: the parent allocates from /dev/ptmx.
    let mut child = Command::new("sh")
        .args(["-c", "tty; echo hi; echo ctty > /dev/tty"])
        .terminal(true)
        .spawn()
        .unwrap();
    let master = child.take_terminal().unwrap().unwrap();
    assert!(child.take_terminal().unwrap().is_none());
    let out = read_all(master);
    assert!(child.wait().unwrap().success(), "{out}");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(lines[1..], ["hi", "ctty", ""], "{out:?}");
}

#[test]
fn the_plan_shows_the_terminal_step() {
    let mut cmd = Command::new("true");
    cmd.terminal(true);
    let plan = cmd.plan().unwrap();
    assert!(
        plan.iter().any(|s| s.name() == "attach terminal"),
        "{plan:?}"
    );
}

#[test]
fn in_a_container_the_pty_is_in_its_own_devpts_and_is_the_console() {
    require_root!();
    let rootfs = TempDir::new("terminal").unwrap();
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in ["sh", "tty", "stat", "ls"] {
        symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "tty; stat -c '%t:%T' /dev/console /dev/pts/0; ls -1 /dev/pts; echo ctty > /dev/tty",
    ])
    .namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts)
    .rootfs(rootfs.path())
    .mounts(Mount::docker_defaults())
    .default_devices(true)
    .env_clear()
    .env("PATH", "/bin")
    .terminal(true);
    let plan = cmd.plan().unwrap();
    assert!(
        plan.iter().any(|s| s.name() == "allocate terminal"),
        "{plan:?}"
    );
    let mut child = cmd.spawn().unwrap();
    let master = child.take_terminal().unwrap().unwrap();
    let out = read_all(master);
    assert!(child.wait().unwrap().success(), "{out}");
    let lines: Vec<&str> = out.split("\r\n").collect();
    // The container's devpts is a new instance: its first pty is 0, the
    // console is that pty (major 136 = 0x88), and nothing else is there.
    assert_eq!(
        lines,
        ["/dev/pts/0", "88:0", "88:0", "0", "ptmx", "ctty", ""],
        "{out:?}"
    );
}
