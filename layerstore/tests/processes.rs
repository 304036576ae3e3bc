//! Several processes sharing one store: concurrent registration, and
//! registrations and releases killed with SIGKILL at random points.
//!
//! Child processes are this test binary re-executed selecting the
//! `child_role` test, with `DUNNAGE_LS_ROOT=<data-root>` and either
//! `DUNNAGE_LS_CHILD=<tar file>` (register it, on `DUNNAGE_LS_PARENT` when
//! set) or `DUNNAGE_LS_RELEASE=<chainID>` (release it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{big_tar, cache_dirs, gzip, names};
use dunnage_layerstore::{ChainId, LayerStore};
use dunnage_testsupport::{Rng, TempDir, require_root};

/// The child role: register one tar or release one layer, and exit. A no-op
/// in a normal test run.
#[test]
fn child_role() {
    let Ok(root) = std::env::var("DUNNAGE_LS_ROOT") else {
        return;
    };
    let store = LayerStore::open(Path::new(&root)).unwrap();
    if let Ok(chain) = std::env::var("DUNNAGE_LS_RELEASE") {
        store.release(&chain.parse().unwrap()).unwrap();
        return;
    }
    let tar = std::env::var("DUNNAGE_LS_CHILD").unwrap();
    let parent: Option<ChainId> = std::env::var("DUNNAGE_LS_PARENT")
        .ok()
        .map(|p| p.parse().unwrap());
    let file = std::fs::File::open(tar).unwrap();
    store
        .register(std::io::BufReader::new(file), parent.as_ref(), None)
        .unwrap();
}

fn child(envs: &[(&str, &str)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn spawn_register(root: &Path, tar: &Path) -> Child {
    spawn_register_on(root, tar, None)
}

fn spawn_register_on(root: &Path, tar: &Path, parent: Option<&ChainId>) -> Child {
    let parent = parent.map(|p| p.to_string());
    let mut envs = vec![
        ("DUNNAGE_LS_ROOT", root.to_str().unwrap()),
        ("DUNNAGE_LS_CHILD", tar.to_str().unwrap()),
    ];
    if let Some(p) = &parent {
        envs.push(("DUNNAGE_LS_PARENT", p));
    }
    child(&envs)
}

fn spawn_release(root: &Path, chain: &ChainId) -> Child {
    child(&[
        ("DUNNAGE_LS_ROOT", root.to_str().unwrap()),
        ("DUNNAGE_LS_RELEASE", &chain.to_string()),
    ])
}

fn kill(c: &Child) {
    // SAFETY: kill(2) on our own child's pid, not yet waited for.
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
}

/// Every layer verifies (its tar rebuilt from tar-split and its diff
/// directory hashes to its diffID), nothing is left in tmp/ or as
/// `-removing`, every driver directory belongs to a layer, every reference
/// file to a layer, and every layer is referenced or has a child. Returns
/// the number of layers.
fn check_store(root: &Path) -> usize {
    let store = LayerStore::open(root).unwrap();
    let layers = store.list().unwrap();
    for l in &layers {
        store.verify(&l.chain_id).unwrap();
    }
    let db = root.join("image/overlay2/layerdb");
    assert!(names(&db.join("tmp")).is_empty());
    let sha = names(&db.join("sha256"));
    assert!(
        !sha.iter().any(|n| n.ends_with("-removing")),
        "removal leftovers: {sha:?}"
    );
    let owned: BTreeSet<String> = layers.iter().map(|l| l.cache_id.clone()).collect();
    let found: BTreeSet<String> = cache_dirs(root).into_iter().collect();
    assert_eq!(
        owned, found,
        "driver directories without a layer, or layers without one"
    );
    let hexes: BTreeSet<String> = layers.iter().map(|l| l.chain_id.hex()).collect();
    let refs: BTreeSet<String> = names(&db.join("dunnage/refs")).into_iter().collect();
    assert_eq!(hexes, refs, "one reference file per layer");
    for l in &layers {
        let n = store.references(&l.chain_id).unwrap();
        let has_child = layers.iter().any(|c| c.parent == Some(l.chain_id));
        assert!(
            n.unwrap() > 0 || has_child,
            "{} is unreferenced and unused",
            l.chain_id
        );
    }
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

/// The time one child takes for `f`'s job, to spread kills over it.
fn probe(f: impl FnOnce() -> Child) -> u64 {
    let start = Instant::now();
    assert!(f().wait().unwrap().success());
    start.elapsed().as_micros() as u64 + 1
}

#[test]
fn concurrent_registrations_killed_at_random_points_leave_only_complete_layers() {
    require_root!();
    let dir = TempDir::new("ls-kill-conc").unwrap();
    let root = dir.path().join("root");
    let store = LayerStore::open(&root).unwrap();
    let base = store
        .register(&big_tar("base", 50, 4096, 1000)[..], None, None)
        .unwrap();
    let tar = |name: &str, seed: u64| {
        let path = dir.path().join(format!("{name}.tar"));
        std::fs::write(&path, big_tar(name, 200, 8 * 1024, seed)).unwrap();
        path
    };
    let probe_tar = tar("probe", 999);
    let full = probe(|| spawn_register_on(&root, &probe_tar, Some(&base.chain_id)));
    let mut rng = Rng::new(u64::from(std::process::id()) ^ full);
    for round in 0..8u64 {
        // Two processes register the same layer on the base, a third a
        // different one on it, a fourth a base layer of its own (gzip).
        let same = tar(&format!("same{round}"), 2 * round);
        let other = tar(&format!("other{round}"), 2 * round + 1);
        let own = dir.path().join(format!("own{round}.tar.gz"));
        std::fs::write(
            &own,
            gzip(&big_tar(&format!("own{round}"), 200, 8192, 77 + round)),
        )
        .unwrap();
        let mut children: Vec<(u64, Child)> = vec![
            spawn_register_on(&root, &same, Some(&base.chain_id)),
            spawn_register_on(&root, &same, Some(&base.chain_id)),
            spawn_register_on(&root, &other, Some(&base.chain_id)),
            spawn_register(&root, &own),
        ]
        .into_iter()
        .map(|c| (rng.below(full * 3 / 2), c))
        .collect();
        children.sort_by_key(|(at, _)| *at);
        let start = Instant::now();
        for (at, c) in &children {
            let at = Duration::from_micros(*at);
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            kill(c);
        }
        for (_, mut c) in children {
            c.wait().unwrap();
        }
        for f in [same, other, own] {
            std::fs::remove_file(f).unwrap();
        }
    }
    drop(store);
    let layers = check_store(&root);
    assert!(layers >= 2, "the base and the probe: {layers}");
    let store = LayerStore::open(&root).unwrap();
    assert_eq!(store.references(&base.chain_id).unwrap(), Some(1));
}

#[test]
fn releases_killed_at_random_points_remove_whole_layers_or_none() {
    require_root!();
    let dir = TempDir::new("ls-kill-rel").unwrap();
    let root = dir.path().join("root");
    let store = LayerStore::open(&root).unwrap();
    // A chain of three layers whose only reference is on the top: releasing
    // it removes all three, one after the other (the -removing protocol).
    let chain = |round: u64| -> ChainId {
        let mut parent: Option<ChainId> = None;
        for i in 0..3u64 {
            let tar = big_tar(&format!("r{round}l{i}"), 150, 4096, 10 * round + i);
            let l = store.register(&tar[..], parent.as_ref(), None).unwrap();
            if let Some(p) = &parent {
                store.release(p).unwrap();
            }
            parent = Some(l.chain_id);
        }
        parent.unwrap()
    };
    let top = chain(100);
    let full = probe(|| spawn_release(&root, &top));
    assert_eq!(store.list().unwrap().len(), 0);
    let mut rng = Rng::new(u64::from(std::process::id()) ^ full.rotate_left(17));
    let mut before = 0;
    for round in 0..10u64 {
        let top = chain(round);
        let mut c = spawn_release(&root, &top);
        std::thread::sleep(Duration::from_micros(rng.below(full)));
        kill(&c);
        c.wait().unwrap();
        // The next open finishes or rolls back nothing half-done: every layer
        // left verifies and the ones cut off are collected.
        let left = check_store(&root);
        assert!(
            left == 0 || left == 3,
            "a removal begun is finished by the next open: {left} layers left"
        );
        if left == 3 {
            before += 1;
        }
        // Whatever a cut release left, releasing the top again (when it is
        // still there) removes the rest.
        let store = LayerStore::open(&root).unwrap();
        if store.get(&top).is_ok() {
            store.release(&top).unwrap();
        }
        assert_eq!(store.list().unwrap().len(), 0, "round {round}");
        assert_eq!(check_store(&root), 0);
    }
    eprintln!("of 10 releases, {before} were killed before the removal began");
}
