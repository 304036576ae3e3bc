//! Issue 11's spawn speed in the facade: a container with its cgroup
//! joined by the child itself (v1 `tasks`, v2 `CLONE_INTO_CGROUP`) is in
//! every hierarchy of its cgroup before its program runs, and one without
//! network files (an OCI bundle's) gets no hostname, hosts or resolv.conf
//! in its state directory. Needs root; everything made is removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Fixture;
use dunnage_testsupport::require_root;

#[test]
fn the_init_is_in_its_cgroup_in_every_hierarchy_from_the_start() {
    require_root!();
    let fx = Fixture::new();
    let mut c = fx.container();
    c.args(["true"]).name("joined");
    let mut h = c.create(&fx.store).unwrap();
    let want = format!("/{}", h.spec().cgroup.trim_start_matches('/'));
    // Seen from the host while the init waits at its start gate.
    let pid = h.pid().unwrap().unwrap();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    h.start().unwrap();
    assert_eq!(h.wait().unwrap().code, Some(0));
    h.remove(false).unwrap();
    // Every hierarchy with controllers (v1) and the v2 one ("0::").
    let joined: Vec<&str> = text
        .lines()
        .filter(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctls) = (p.next(), p.next().unwrap_or(""));
            !ctls.starts_with("name=")
        })
        .collect();
    assert!(!joined.is_empty(), "no hierarchies in:\n{text}");
    for l in joined {
        assert!(
            l.ends_with(&format!(":{want}")),
            "{l} is not in {want}:\n{text}"
        );
    }
    fx.assert_clean();
}

#[test]
fn without_network_files_the_state_directory_has_none() {
    require_root!();
    let fx = Fixture::new();
    for (on, name) in [(true, "files"), (false, "nofiles")] {
        let mut c = fx.container();
        c.args(["true"]).network_files(on).name(name);
        let mut h = c.create(&fx.store).unwrap();
        let dir = h.dir();
        for f in ["hostname", "hosts", "resolv.conf"] {
            assert_eq!(dir.join(f).exists(), on, "{f} with network_files({on})");
        }
        h.start().unwrap();
        assert_eq!(h.wait().unwrap().code, Some(0));
        h.remove(false).unwrap();
    }
    fx.assert_clean();
}

#[test]
fn an_exec_process_joins_the_container_cgroup_itself() {
    require_root!();
    let fx = Fixture::new();
    let mut c = fx.container();
    c.args(["sleep", "30"]).name("exec-joined");
    let mut h = c.create(&fx.store).unwrap();
    let want = format!("/{}", h.spec().cgroup.trim_start_matches('/'));
    h.start().unwrap();
    let opts = dunnage::container::ExecOptions::default();
    let mut child = h.exec(&["sleep", "30"], &opts).unwrap();
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    h.kill(libc::SIGKILL).unwrap();
    let _ = h.wait();
    h.remove(true).unwrap();
    for l in text.lines().filter(|l| !l.contains(":name=")) {
        assert!(
            l.ends_with(&format!(":{want}")),
            "{l} is not in {want}:\n{text}"
        );
    }
    fx.assert_clean();
}
