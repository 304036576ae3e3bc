//! The facade's `Container` against the real kernel, continued: detached
//! containers and their monitor, what the process sees under Docker's
//! profile, privileged mode, a changed profile, terminals, networks,
//! update, rootfs directories; after each test nothing is left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::process::Command as StdCommand;
use std::time::Duration;

use common::{Fixture, IMAGE, read_all};
use dunnage::container::{Container, ContainerStore, Error, Network, Seccomp, Status, StdioMode};
use dunnage::image::ImageChanges;
use dunnage_testsupport::{TempDir, require_root};

const HELPER_ENV: &str = "DUNNAGE_TEST_DETACH";

/// Run in a child process by `detached_container_outlives_its_creator`:
/// creates and starts a detached container, then exits.
#[test]
fn detached_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return; // only as the helper
    };
    let (root, parent) = spec.split_once('\n').unwrap();
    let store = ContainerStore::open(root).unwrap();
    let mut c = Container::image(IMAGE);
    let mut c = c
        .cgroup_parent(parent)
        .name("detached-1")
        .args([
            "sh",
            "-c",
            "echo out; echo err >&2; trap 'echo bye; exit 3' TERM; while :; do sleep 1; done",
        ])
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&store)
        .unwrap();
    c.start().unwrap();
    println!("HELPER-ID {}", c.id());
}

#[test]
fn detached_container_outlives_its_creator() {
    require_root!();
    let f = Fixture::new();
    let out = StdCommand::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "detached_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{}\n{}", f.store.root().display(), f.parent),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text
        .lines()
        .find_map(|l| l.split_once("HELPER-ID ").map(|(_, id)| id))
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        .to_string();
    // Another process (this one) finds it running, by name.
    let mut c = f.store.get("detached-1").unwrap();
    assert_eq!(c.id(), id);
    assert_eq!(c.status().unwrap(), Status::Running);
    assert!(c.state().unwrap().monitor_pid > 0);
    assert_eq!(f.store.list().unwrap().len(), 1);
    // Its output reaches the json-file log (written by the monitor).
    let mut logs = Vec::new();
    for _ in 0..500 {
        logs = c.logs().unwrap();
        if logs.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    logs.sort();
    assert_eq!(
        logs,
        [
            ("stderr".to_string(), "err\n".to_string()),
            ("stdout".to_string(), "out\n".to_string())
        ]
    );
    let raw = std::fs::read_to_string(c.log_path()).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    // Stop: the trap answers SIGTERM with exit 3, recorded by the monitor.
    let exit = c.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(exit.code, Some(3));
    assert!(c.logs().unwrap().iter().any(|(_, l)| l == "bye\n"));
    c.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn detached_created_then_started_elsewhere() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container();
    let c = c
        .args(["sh", "-c", "exit 5"])
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    assert_eq!(c.status().unwrap(), Status::Created);
    let mut other = f.store.get(c.id()).unwrap();
    other.start().unwrap();
    assert_eq!(other.wait().unwrap().code, Some(5));
    // A command that is not there: 127, as docker.
    let mut c2 = f.container();
    let mut c2 = c2
        .arg("no-such-program")
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    assert!(matches!(c2.start(), Err(Error::CommandNotFound(_))));
    assert_eq!(c2.wait().unwrap().code, Some(127));
    // A created detached container is removed without force.
    let mut c3 = f.container();
    let c3 = c3
        .arg("true")
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    c3.remove(false).unwrap();
    other.remove(false).unwrap();
    c2.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn an_exited_container_is_made_again_on_its_layer() {
    require_root!();
    let f = Fixture::new();
    let monitor = std::path::Path::new(env!("CARGO_BIN_EXE_dunnage-monitor"));
    // Made in this process (no monitor), run, exited.
    let mut c = f.container();
    let mut h = c
        .args([
            "sh",
            "-c",
            "echo run $(cat /n 2>/dev/null); echo x >> /n; exit 4",
        ])
        .create(&f.store)
        .unwrap();
    h.start().unwrap();
    assert_eq!(h.wait().unwrap().code, Some(4));
    let first = h.state().unwrap();
    // Running or created: refused.
    let mut other = f.container();
    let mut busy = other
        .args(["sleep", "1000"])
        .monitor_program(monitor)
        .create_detached(&f.store)
        .unwrap();
    assert!(matches!(
        busy.recreate(Some(monitor)),
        Err(Error::WrongState { .. })
    ));
    busy.remove(true).unwrap();
    // Again, twice, from another handle: the file of the earlier runs is
    // there, the log holds the runs made under a monitor.
    let mut again = f.store.get(h.id()).unwrap();
    for _ in 0..2 {
        again.recreate(Some(monitor)).unwrap();
        assert_eq!(again.status().unwrap(), Status::Created);
        again.start().unwrap();
        assert_eq!(again.wait().unwrap().code, Some(4));
    }
    let st = again.state().unwrap();
    assert_eq!(st.created_at, first.created_at);
    assert_ne!(st.pid, first.pid);
    assert_ne!(st.started_at, first.started_at);
    let text: Vec<String> = again.logs().unwrap().into_iter().map(|(_, t)| t).collect();
    assert_eq!(text, ["run x\n", "run x x\n"]);
    drop(h);
    again.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn docker_profile_seen_inside() {
    require_root!();
    let f = Fixture::new();
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp)' /proc/self/status; \
                  cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
                  head -c 1 /dev/zero | wc -c; \
                  mknod /tmp/sda b 8 0 && (head -c 1 /tmp/sda >/dev/null 2>&1 && echo read || echo denied); \
                  cat /proc/kcore 2>/dev/null | wc -c; \
                  touch /proc/sys/x 2>/dev/null || echo ro; \
                  touch /newfile 2>/dev/null && echo rw-root";
    let run = |c: &mut Container| {
        let mut h = c
            .args(["sh", "-c", script])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        h.remove(false).unwrap();
        text
    };
    assert_eq!(
        run(&mut f.container()),
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n0\n1\ndenied\n0\nro\nrw-root\n"
    );
    let text = run(f
        .container()
        .cap_drop("ALL")
        .no_new_privileges(true)
        .readonly_rootfs(true)
        .seccomp(Seccomp::Unconfined));
    assert!(
        text.starts_with(
            "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n"
        ),
        "{text}"
    );
    assert!(!text.contains("rw-root"), "{text}");
    f.assert_clean();
}

#[test]
fn tty_network_join_host_and_update() {
    require_root!();
    let f = Fixture::new();
    // A terminal: the process's stdio is a pty in the container.
    let mut c = f
        .container()
        .args(["sh", "-c", "tty; echo $TERM"])
        .tty(true)
        .create(&f.store)
        .unwrap();
    let mut master = c.take_terminal().unwrap();
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().code, Some(0));
    // All of it: one read may return part (EIO once the process and
    // its output are gone).
    let mut all = Vec::new();
    let mut buf = vec![0; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&all).replace('\r', "");
    assert!(text.starts_with("/dev/pts/0\nxterm\n"), "{text:?}");
    drop(master);
    c.remove(false).unwrap();

    // A running container to join, and whose limits change.
    let mut a = f
        .container()
        .args(["sleep", "1000"])
        .create(&f.store)
        .unwrap();
    a.start().unwrap();
    let pid = a.pid().unwrap().unwrap();
    let ns = |p: &str| std::fs::read_link(p).unwrap().display().to_string();
    let a_net = ns(&format!("/proc/{pid}/ns/net"));
    let probe = |network: Network| {
        let mut c = f.container();
        let mut h = c
            .args(["sh", "-c", "readlink /proc/self/ns/net"])
            .network(network)
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        let hostname = h.spec().hostname.clone();
        h.remove(false).unwrap();
        (text.trim().to_string(), hostname)
    };
    let (joined, _) = probe(Network::Join(format!("/proc/{pid}/ns/net").into()));
    assert_eq!(joined, a_net);
    let (host, hostname) = probe(Network::Host);
    assert_eq!(host, ns("/proc/self/ns/net"));
    assert_eq!(
        hostname,
        rustix::system::uname().nodename().to_string_lossy()
    );
    let (own, _) = probe(Network::None);
    assert_ne!(own, a_net);
    assert_ne!(own, ns("/proc/self/ns/net"));

    a.update(dunnage::container::ResourceLimits {
        memory: Some(48 << 20),
        memory_swap: Some(96 << 20),
        pids_limit: Some(20),
        ..Default::default()
    })
    .unwrap();
    let stats = a.stats().unwrap();
    assert_eq!(stats.pids.unwrap().max, dunnage::cgroups::Limit::Value(20));
    assert_eq!(
        stats.memory.unwrap().limit,
        dunnage::cgroups::Limit::Value(48 << 20)
    );
    assert_eq!(
        f.store.get(a.id()).unwrap().spec().resources.memory,
        Some(48 << 20)
    );
    a.remove(true).unwrap();
    f.assert_clean();
}

#[test]
fn privileged_as_docker() {
    require_root!();
    let f = Fixture::new();
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
                  ls /dev/kmsg 2>/dev/null; head -c 1 /dev/kmsg >/dev/null 2>&1 && echo kmsg-read; \
                  grep -c ' /proc/kcore ' /proc/self/mounts; \
                  grep -E ' /sys sysfs ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1";
    let run = |c: &mut Container| {
        let mut h = c
            .args(["sh", "-c", script])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        h.remove(false).unwrap();
        text
    };
    // Every capability this process has (its effective set).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .unwrap()
        .to_string();
    assert_eq!(
        run(f.container().privileged(true)),
        format!("CapEff:\t{all}\nSeccomp:\t0\n/dev/kmsg\nkmsg-read\n0\nrw\n")
    );
    assert_eq!(
        run(&mut f.container()),
        "CapEff:\t00000000a80425fb\nSeccomp:\t2\n0\nro\n"
    );
    f.assert_clean();
}

#[test]
fn profile_is_a_value_the_caller_changes() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container();
    let p = c.security_profile_mut();
    p.capabilities.retain(|cap| cap != "CAP_CHOWN");
    p.masked_paths.push("/etc/motd-masked".into());
    p.mounts.retain(|m| m.destination != "/dev/mqueue");
    p.devices
        .push(dunnage::profile::DeviceNode::char("/dev/kmsg", 1, 11));
    p.device_rules
        .push(dunnage::profile::DeviceRule::allow_char(1, 11));
    let mut h = c
        .args([
            "sh",
            "-c",
            "grep CapEff /proc/self/status; grep -c mqueue /proc/self/mounts; \
             test -c /dev/kmsg && echo kmsg",
        ])
        .stdout(StdioMode::Piped)
        .create(&f.store)
        .unwrap();
    let out = h.take_stdout().unwrap();
    h.start().unwrap();
    assert_eq!(read_all(out), "CapEff:\t00000000a80425fa\n0\nkmsg\n");
    h.wait().unwrap();
    h.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn from_a_rootfs_directory() {
    require_root!();
    let f = Fixture::new();
    let root = f.tmp.join("plain-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let mut c = Container::rootfs(&root);
    let mut h = c
        .cgroup_parent(&f.parent)
        .args(["/bin/sh", "-c", "echo hi > /made-here; exit 4"])
        .create(&f.store)
        .unwrap();
    h.start().unwrap();
    assert_eq!(h.wait().unwrap().code, Some(4));
    assert!(matches!(
        h.commit(&ImageChanges::default()),
        Err(Error::Unsupported { .. })
    ));
    h.remove(false).unwrap();
    // Used in place: the change is in the directory, which remove keeps.
    assert_eq!(
        std::fs::read_to_string(root.join("made-here")).unwrap(),
        "hi\n"
    );
    f.assert_clean();
}

#[test]
fn monitor_refuses_bad_input() {
    let tmp = TempDir::new("monitor-input").unwrap();
    for junk in [
        &b""[..],
        b"{",
        b"null",
        b"{\"id\":\"../../x\"}",
        b"\xff\xfe\x00",
    ] {
        let mut child = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
            .arg(dunnage::container::monitor::MONITOR_ARG)
            .arg(tmp.join("store"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(junk).unwrap();
        let mut answer = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut answer)
            .unwrap();
        child.wait().unwrap();
        assert!(answer.starts_with("err "), "{answer:?}");
    }
    // A well-formed spec naming a path outside the store is refused too.
    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let root = tmp.join("r");
    std::fs::create_dir_all(&root).unwrap();
    let mut spec = Container::rootfs(&root)
        .arg("true")
        .resolve(&store)
        .unwrap();
    spec.id = "../../../../tmp/x".into();
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .arg(dunnage::container::monitor::MONITOR_ARG)
        .arg(tmp.join("store"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let json = serde_json::to_vec(&spec).unwrap();
        child.stdin.take().unwrap().write_all(&json).unwrap();
    }
    let mut answer = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("err invalid container ID"), "{answer:?}");
    // Without the marker the binary says how it is meant to be started.
    let out = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A client attached before the start (as `run` and `start -a` attach)
/// that reads nothing for longer than the monitor's write timeout loses
/// none of the output: the output waits for it, as for a docker attach.
#[test]
fn a_client_attached_before_the_start_loses_nothing_when_it_reads_late() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container();
    // About 500 KB: more than the pipe and the socket hold.
    let mut c = c
        .args([
            "sh",
            "-c",
            "i=0; while [ $i -lt 40000 ]; do echo line-$i; i=$((i+1)); done",
        ])
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    let attach = c.attach_stdio().unwrap();
    c.start().unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(attach.relay(&mut out, &mut err).unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 40000);
    assert_eq!(text.lines().last(), Some("line-39999"));
    assert_eq!(c.wait().unwrap().code, Some(0));
    c.remove(false).unwrap();
    f.assert_clean();
}
