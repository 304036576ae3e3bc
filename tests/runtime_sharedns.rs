//! `examples/runtime/` with OCI configs without a mount namespace of their
//! own (the container shares the runtime's): a create that fails late
//! leaves nothing mounted on the host, the rootfs bind is private, delete
//! unmounts without a `/proc` mount, and an exec from another mount
//! namespace lands in the container's rootfs. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{cgroup_guard, ok, runtime_binary, runtime_call};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dunnage_testsupport::{TempDir, detach_unmount, mounts_below, require_privileged, unique_name};
use serde_json::{Value, json};

/// A busybox bundle at `dir` running `args` without namespaces (or
/// masked and read-only paths: they need a mount namespace of its own),
/// in cgroup `/parent/leaf`, changed by `edit`.
fn bundle(dir: &Path, args: &[&str], parent: &str, edit: impl FnOnce(&mut Value)) {
    common::runtime_bundle(dir, args, parent, |v| {
        v["linux"]["namespaces"] = json!([]);
        for key in ["sysctl", "maskedPaths", "readonlyPaths"] {
            v["linux"].as_object_mut().unwrap().remove(key);
        }
        v.as_object_mut().unwrap().remove("hostname");
        edit(v);
    });
}

/// Unmounts whatever is left below a directory when the test ends, so a
/// failing test leaves nothing mounted.
struct Unmounter(PathBuf);

impl Drop for Unmounter {
    fn drop(&mut self) {
        for _ in 0..4 {
            for m in mounts_below(&self.0).into_iter().rev() {
                let _ = detach_unmount(&m);
            }
        }
    }
}

/// A create that fails late (a cwd that does not exist, found after the
/// child mounted the rootfs, /proc, /dev and a bind in the host's mount
/// namespace) leaves nothing mounted, and the bind's source intact.
#[test]
fn failed_create_leaves_nothing_mounted() {
    let test = "failed_create_leaves_nothing_mounted";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("rt-sharedns-fail").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let parent = unique_name("rt-sharedns-fail");
    let _guard = cgroup_guard(&parent);
    let data = tmp.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me").unwrap();
    let b = tmp.join("bundle");
    bundle(&b, &["true"], &parent, |v| {
        v["process"]["cwd"] = json!("/does/not/exist");
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data",
            "type": "bind",
            "source": data,
            "options": ["rbind"],
        }));
    });
    let id = unique_name("fail");
    let out = runtime_call(
        &runtime_binary(),
        &tmp.join("root"),
        &["create", "--bundle", b.to_str().unwrap(), &id],
    );
    assert!(!out.status.success(), "create succeeded with a missing cwd");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read_to_string(data.join("precious")).unwrap(),
        "keep me"
    );
}

/// Created from one mount namespace (the runtime under `unshare -m`),
/// exec'd from another (this test's): the exec'd process is in the
/// container's rootfs, not at the root of the init's mount namespace.
#[test]
fn exec_from_another_mount_namespace_lands_in_the_rootfs() {
    let test = "exec_from_another_mount_namespace_lands_in_the_rootfs";
    if !require_privileged(test) || !dunnage_testsupport::require_command(test, "unshare") {
        return;
    }
    let tmp = TempDir::new("rt-sharedns-exec").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let parent = unique_name("rt-sharedns-exec");
    let _guard = cgroup_guard(&parent);
    let b = tmp.join("bundle");
    bundle(&b, &["sleep", "100"], &parent, |_| {});
    let root = tmp.join("root");
    let id = unique_name("exec");
    let log = std::fs::File::create(tmp.join("out")).unwrap();
    let st = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(runtime_binary())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(tmp.join("out")).unwrap()
    );
    let program = runtime_binary();
    ok(&runtime_call(&program, &root, &["start", &id]));
    let exec = runtime_call(&program, &root, &["exec", &id, "cat", "/marker"]);
    let ls = runtime_call(&program, &root, &["exec", &id, "ls", "/"]);
    ok(&runtime_call(&program, &root, &["delete", "--force", &id]));
    assert_eq!(ok(&exec), "in the rootfs\n");
    assert!(ok(&ls).lines().any(|l| l == "marker"), "ls /: {ls:?}");
    // The private namespace took the container's mounts with it.
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

/// Without a `/proc` mount in the config (nothing but the rootfs bind,
/// /dev and a bind), delete still unmounts everything the container made
/// in this mount namespace: the bind's mount ID was recorded at create.
#[test]
fn delete_without_a_proc_mount_leaves_nothing_mounted() {
    let test = "delete_without_a_proc_mount_leaves_nothing_mounted";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("rt-sharedns-noproc").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let parent = unique_name("rt-sharedns-noproc");
    let _guard = cgroup_guard(&parent);
    let data = tmp.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me").unwrap();
    let b = tmp.join("bundle");
    bundle(&b, &["cat", "/data/precious"], &parent, |v| {
        let mounts = v["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
        mounts.push(json!({
            "destination": "/data",
            "type": "bind",
            "source": data,
            "options": ["rbind"],
        }));
    });
    let id = unique_name("noproc");
    let out = runtime_call(
        &runtime_binary(),
        &tmp.join("root"),
        &["run", "--bundle", b.to_str().unwrap(), &id],
    );
    assert_eq!(ok(&out), "keep me");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read_to_string(data.join("precious")).unwrap(),
        "keep me"
    );
}

/// The state directory of the one container in the store at `root`.
fn container_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root.join("containers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .collect();
    assert_eq!(dirs.len(), 1, "containers: {dirs:?}");
    dirs.into_iter().next().unwrap()
}

/// SIGKILL `pid` if it is still the process started at `start` (the
/// gate keeper this test's create started), and reap nothing: it is not
/// our child.
fn kill_if_same(pid: i32, start: u64) {
    if pid > 0 && dunnage::container::state::same_process(pid, start) {
        // SAFETY: a signal to a process this test created, checked above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Create container `id` from bundle `b` in the store at `root` with
/// the runtime, its output to `log` (the gate keeper would hold a pipe
/// open).
fn create_logged(root: &Path, b: &Path, id: &str, log: &Path) {
    let out = std::fs::File::create(log).unwrap();
    let st = Command::new(runtime_binary())
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(b)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(log).unwrap()
    );
}

/// The gate keeper of the container in `dir`: (pid, start).
fn keeper_of(dir: &Path) -> (i32, u64) {
    let st: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    (
        st["monitor_pid"].as_i64().unwrap_or(0) as i32,
        st["monitor_start"].as_u64().unwrap_or(0),
    )
}

/// A remove finding `state.json` unreadable (damaged after the handle
/// was taken) still unmounts what the container mounted in this mount
/// namespace: from the record its create wrote before spawning.
#[test]
fn remove_with_a_damaged_state_leaves_nothing_mounted() {
    let test = "remove_with_a_damaged_state_leaves_nothing_mounted";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("rt-sharedns-damaged").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let parent = unique_name("rt-sharedns-damaged");
    let _guard = cgroup_guard(&parent);
    let b = tmp.join("bundle");
    bundle(&b, &["sleep", "100"], &parent, |_| {});
    let root = tmp.join("root");
    create_logged(&root, &b, &unique_name("damaged"), &tmp.join("out"));
    assert_ne!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    let dir = container_dir(&root);
    let keeper = keeper_of(&dir);
    let store = dunnage::container::ContainerStore::open(&root).unwrap();
    let handle = store
        .get(dir.file_name().unwrap().to_str().unwrap())
        .unwrap();
    std::fs::write(dir.join("state.json"), b"{not json").unwrap();
    let removed = handle.remove(true);
    let left = mounts_below(tmp.path());
    kill_if_same(keeper.0, keeper.1);
    removed.unwrap();
    assert_eq!(left, Vec::<PathBuf>::new());
    assert!(!dir.exists());
}

/// A create killed after its child set the rootfs up (in this mount
/// namespace) but before `state.json` was written: the directory is left
/// as that kill leaves it (state.json removed from a real create, whose
/// mounts are in place), and the store's check reports it; the repair
/// unmounts the rootfs bind and what is below it, from the record the
/// create wrote before spawning.
#[test]
fn repair_unmounts_what_a_killed_create_left() {
    let test = "repair_unmounts_what_a_killed_create_left";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("rt-sharedns-killed").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let parent = unique_name("rt-sharedns-killed");
    let _guard = cgroup_guard(&parent);
    let data = tmp.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("precious"), "keep me").unwrap();
    let b = tmp.join("bundle");
    bundle(&b, &["sleep", "100"], &parent, |v| {
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data",
            "type": "bind",
            "source": data,
            "options": ["rbind"],
        }));
    });
    let root = tmp.join("root");
    let id = unique_name("killed");
    // Output to a file: the gate keeper would hold a pipe open.
    let log = std::fs::File::create(tmp.join("out")).unwrap();
    let st = Command::new(runtime_binary())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(tmp.join("out")).unwrap()
    );
    assert_ne!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    let dir = container_dir(&root);
    assert!(dir.join("shared-rootfs").exists(), "no record in {dir:?}");
    let st: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let keeper = (
        st["monitor_pid"].as_i64().unwrap_or(0) as i32,
        st["monitor_start"].as_u64().unwrap_or(0),
    );
    // What the kill before `st.write` leaves: no state.json, a creator
    // that is gone (a successful create removed its file).
    std::fs::remove_file(dir.join("state.json")).unwrap();
    let store = dunnage::container::ContainerStore::open(&root).unwrap();
    let found = store.check().unwrap();
    let unfinished = found.problems.iter().any(|p| {
        matches!(
            p,
            dunnage::container::check::Problem::Unfinished {
                what: "state.json",
                ..
            }
        )
    });
    store.repair().unwrap();
    let left = mounts_below(tmp.path());
    let after = store.check().unwrap();
    kill_if_same(keeper.0, keeper.1);
    assert!(unfinished, "check found {found:?}");
    assert_eq!(left, Vec::<PathBuf>::new());
    assert!(after.is_clean(), "after repair: {after:?}");
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read_to_string(data.join("precious")).unwrap(),
        "keep me"
    );
}
