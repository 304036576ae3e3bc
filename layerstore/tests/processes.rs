//! Several processes sharing one store: concurrent registration, and
//! registrations killed with SIGKILL at random points.
//!
//! Child processes are this test binary re-executed with
//! `DUNNAGE_LS_CHILD=<tar file>` selecting the `child_role` test, which
//! registers the tar into the store at `DUNNAGE_LS_ROOT`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{big_tar, cache_dirs, gzip, names};
use dunnage_layerstore::LayerStore;
use dunnage_testsupport::{TempDir, require_root};

/// The child role: register one tar and exit. A no-op in a normal test run.
#[test]
fn child_role() {
    let (Ok(tar), Ok(root)) = (
        std::env::var("DUNNAGE_LS_CHILD"),
        std::env::var("DUNNAGE_LS_ROOT"),
    ) else {
        return;
    };
    let store = LayerStore::open(Path::new(&root)).unwrap();
    let file = std::fs::File::open(tar).unwrap();
    store
        .register(std::io::BufReader::new(file), None, None)
        .unwrap();
}

fn spawn_register(root: &Path, tar: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
        .env("DUNNAGE_LS_CHILD", tar)
        .env("DUNNAGE_LS_ROOT", root)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Every layer verifies, nothing is left in tmp/, every driver directory
/// belongs to a layer. Returns the number of layers.
fn check_store(root: &Path) -> usize {
    let store = LayerStore::open(root).unwrap();
    let layers = store.list().unwrap();
    for l in &layers {
        store.verify(&l.chain_id).unwrap();
    }
    assert!(names(&root.join("image/overlay2/layerdb/tmp")).is_empty());
    let owned: BTreeSet<String> = layers.iter().map(|l| l.cache_id.clone()).collect();
    let found: BTreeSet<String> = cache_dirs(root).into_iter().collect();
    assert_eq!(
        owned, found,
        "driver directories without a layer, or layers without one"
    );
    layers.len()
}

#[test]
fn two_processes_registering_the_same_layer_end_with_one_layer_and_two_references() {
    require_root!();
    let dir = TempDir::new("ls-procs").unwrap();
    let root = dir.path().join("root");
    let same = dir.path().join("same.tar.gz");
    std::fs::write(&same, gzip(&big_tar("same", 400, 16 * 1024, 1))).unwrap();
    let other = dir.path().join("other.tar");
    std::fs::write(&other, big_tar("other", 400, 16 * 1024, 2)).unwrap();
    LayerStore::open(&root).unwrap();
    let children = [
        spawn_register(&root, &same),
        spawn_register(&root, &same),
        spawn_register(&root, &other),
    ];
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(check_store(&root), 2);
    let store = LayerStore::open(&root).unwrap();
    let mut refs: Vec<Option<u64>> = store
        .list()
        .unwrap()
        .iter()
        .map(|l| store.references(&l.chain_id).unwrap())
        .collect();
    refs.sort();
    assert_eq!(refs, vec![Some(1), Some(2)]);
}

#[test]
fn registrations_killed_at_random_points_leave_only_complete_layers() {
    require_root!();
    let dir = TempDir::new("ls-kill").unwrap();
    let root = dir.path().join("root");
    LayerStore::open(&root).unwrap();
    // Time one registration to spread the kills over its whole length.
    let probe = dir.path().join("probe.tar");
    std::fs::write(&probe, big_tar("probe", 300, 16 * 1024, 99)).unwrap();
    let start = Instant::now();
    assert!(spawn_register(&root, &probe).wait().unwrap().success());
    let full = start.elapsed().as_micros() as u64 + 1;
    let mut seed = u64::from(std::process::id()) ^ full;
    let mut completed = 0;
    for i in 0..12u64 {
        let tar = dir.path().join(format!("l{i}.tar"));
        std::fs::write(&tar, big_tar(&format!("l{i}"), 300, 16 * 1024, i)).unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % full);
        let mut child = spawn_register(&root, &tar);
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        if child.wait().unwrap().success() {
            completed += 1;
        }
    }
    let layers = check_store(&root);
    assert!(
        layers > completed,
        "the probe plus at least every completed registration: {layers}, {completed}"
    );
}
