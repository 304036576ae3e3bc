//! Who owns a mount: a container layer mounted with `mount_rw` by a process
//! that then exits keeps its mount when other processes open the store,
//! until `unmount_rw`; `open_read_only` leaves every mount alone, and
//! `rw_mount_point` answers "is it mounted, and where" without side
//! effects.
//!
//! Child processes are this test binary re-executed selecting the
//! `child_role` test with `DUNNAGE_OWN_ROOT=<data-root>` and
//! `DUNNAGE_OWN_ACTION=mount-rw:<container>` or `get:<cache-id>` (a
//! `Driver::get` never put: a process-owned mount left behind).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::tar_of;
use dunnage_layerstore::{InitLayer, LayerStore};
use dunnage_testsupport::{TempDir, require_root};

/// The child role: do one thing and exit without cleaning up. A no-op in a
/// normal test run.
#[test]
fn child_role() {
    let (Ok(root), Ok(action)) = (
        std::env::var("DUNNAGE_OWN_ROOT"),
        std::env::var("DUNNAGE_OWN_ACTION"),
    ) else {
        return;
    };
    let store = LayerStore::open(Path::new(&root)).unwrap();
    match action.split_once(':').unwrap() {
        ("mount-rw", container) => {
            store.mount_rw(container).unwrap();
        }
        ("get", cache_id) => {
            store.driver().get(cache_id).unwrap();
        }
        (other, _) => panic!("unknown action {other}"),
    }
    // Exit without dropping anything: a process that just ends.
    std::process::exit(0);
}

/// Held by every test here. A mount's `get` holders are `flock`s on open
/// files; a child spawned by one test (fork, then exec) briefly holds a copy
/// of every fd of this process, the other tests' flock holders included, so
/// a concurrent test's last `put` could see a holder that is not there and
/// keep its mount. The library documents this; the tests here run one at a
/// time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_child(root: &Path, action: &str) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
        .env("DUNNAGE_OWN_ROOT", root)
        .env("DUNNAGE_OWN_ACTION", action)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "child {action} failed");
}

/// A store with one image layer and a container `c1` on it.
fn store_with_container(dir: &TempDir) -> LayerStore {
    let store = LayerStore::open(&dir.join("root")).unwrap();
    let tar = tar_of(&[("etc/os", b"dunnage")]);
    let base = store.register(&tar[..], None, None).unwrap();
    store
        .create_rw("c1", Some(&base.chain_id), Some(&InitLayer::default()))
        .unwrap();
    store
}

#[test]
fn a_container_mount_outlives_the_process_that_made_it_until_unmount_rw() {
    require_root!();
    let _serial = serial();
    let dir = TempDir::new("ls-own-rw").unwrap();
    let store = store_with_container(&dir);
    assert_eq!(store.rw_mount_point("c1").unwrap(), None);
    drop(store);
    run_child(&dir.join("root"), "mount-rw:c1");

    // Other processes (here: this one) open the store the ways queries
    // and writers do; the mount stays through all of them.
    let ro = LayerStore::open_read_only(&dir.join("root")).unwrap();
    let merged = ro.rw_mount_point("c1").unwrap().expect("mounted");
    assert_eq!(std::fs::read(merged.join("etc/os")).unwrap(), b"dunnage");
    drop(ro);
    let store = LayerStore::open(&dir.join("root")).unwrap();
    assert_eq!(store.rw_mount_point("c1").unwrap(), Some(merged.clone()));
    assert!(merged.join(".dockerenv").exists());
    let rw = store.get_rw("c1").unwrap();
    assert_eq!(
        store.driver().mount_owner(&rw.mount_id).unwrap().as_deref(),
        Some("c1")
    );
    // The owned layer cannot be removed from under the mount.
    assert!(store.remove_rw("c1").is_err());
    assert!(store.rw_mount_point("c1").unwrap().is_some());

    // A second mount_rw gives the same directory; one unmount_rw releases.
    assert_eq!(store.mount_rw("c1").unwrap(), merged);
    store.unmount_rw("c1").unwrap();
    assert_eq!(store.rw_mount_point("c1").unwrap(), None);
    assert!(!merged.exists());
    assert_eq!(store.driver().mount_owner(&rw.mount_id).unwrap(), None);
    store.unmount_rw("c1").unwrap(); // not mounted: not an error
    store.remove_rw("c1").unwrap();
}

#[test]
fn open_read_only_leaves_a_dead_process_mount_that_open_repairs() {
    require_root!();
    let _serial = serial();
    let dir = TempDir::new("ls-own-stale").unwrap();
    let store = store_with_container(&dir);
    let rw = store.get_rw("c1").unwrap();
    drop(store);
    // A `get` by a process that is gone: owned by nobody.
    run_child(&dir.join("root"), &format!("get:{}", rw.mount_id));
    let ro = LayerStore::open_read_only(&dir.join("root")).unwrap();
    assert!(
        ro.rw_mount_point("c1").unwrap().is_some(),
        "read-only open unmounted"
    );
    assert_eq!(ro.list_rw().unwrap().len(), 1);
    drop(ro);
    let store = LayerStore::open(&dir.join("root")).unwrap();
    assert_eq!(
        store.rw_mount_point("c1").unwrap(),
        None,
        "stale mount kept"
    );
    store.remove_rw("c1").unwrap();
}

#[test]
fn a_get_and_an_owned_mount_of_one_layer_release_in_either_order() {
    require_root!();
    let _serial = serial();
    let dir = TempDir::new("ls-own-mixed").unwrap();
    let store = store_with_container(&dir);
    let rw = store.get_rw("c1").unwrap();
    let merged = store.mount_rw("c1").unwrap();
    assert_eq!(store.driver().get(&rw.mount_id).unwrap(), merged);
    // The last put leaves the owned mount...
    store.driver().put(&rw.mount_id).unwrap();
    assert!(store.rw_mount_point("c1").unwrap().is_some());
    // ...and the owner's release leaves a held get's mount.
    store.driver().get(&rw.mount_id).unwrap();
    store.unmount_rw("c1").unwrap();
    assert!(store.rw_mount_point("c1").unwrap().is_some());
    store.driver().put(&rw.mount_id).unwrap();
    assert_eq!(store.rw_mount_point("c1").unwrap(), None);
    store.remove_rw("c1").unwrap();
}
