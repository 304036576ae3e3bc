//! The index of children: release reads only what concerns the layers it
//! frees, the index is rebuilt when missing, and the check finds entries
//! missing or stale.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{assert_nothing_registered, tar_of};
use dunnage_layerstore::{ChainId, Child, ChildrenIndexProblem, LayerStore};
use dunnage_testsupport::{TempDir, require_root};

fn store(name: &str) -> (TempDir, LayerStore) {
    let dir = TempDir::new(name).unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    (dir, store)
}

fn layerdb(dir: &TempDir) -> PathBuf {
    dir.path().join("image/overlay2/layerdb")
}

/// A chain of `n` layers; only the top keeps a reference.
fn chain(store: &LayerStore, tag: &str, n: usize) -> Vec<ChainId> {
    let mut out: Vec<ChainId> = Vec::new();
    for i in 0..n {
        let name = format!("{tag}{i}");
        let l = store
            .register(&tar_of(&[(&name, name.as_bytes())])[..], out.last(), None)
            .unwrap();
        if let Some(below) = out.last() {
            store.release(below).unwrap();
        }
        out.push(l.chain_id);
    }
    out
}

fn entries(db: &Path, parent: &ChainId) -> Vec<String> {
    common::names(&db.join("dunnage/children").join(parent.hex()))
}

#[test]
fn release_reads_no_parent_file_of_other_layers() {
    require_root!();
    let (dir, store) = store("ls-children-release");
    let db = layerdb(&dir);
    let others = chain(&store, "other", 4);
    let mine = chain(&store, "mine", 3);
    assert_eq!(entries(&db, &mine[0]), vec![mine[1].hex()]);
    assert_eq!(entries(&db, &mine[1]), vec![mine[2].hex()]);
    // Every other layer's parent file is garbage: a release that read
    // them (the scan this index replaced) would fail.
    for c in &others[1..] {
        std::fs::write(db.join("sha256").join(c.hex()).join("parent"), b"garbage").unwrap();
    }
    store.release(&mine[2]).unwrap();
    // (Not `list`: it reads every layer.)
    let left = common::names(&db.join("sha256"));
    assert!(mine.iter().all(|c| !left.contains(&c.hex())), "{left:?}");
    assert_eq!(left.len(), others.len());
    assert!(!db.join("dunnage/children").join(mine[0].hex()).exists());
    assert!(!db.join("dunnage/children").join(mine[1].hex()).exists());
    // Put the parent files back and free the rest.
    for (below, c) in others.iter().zip(&others[1..]) {
        std::fs::write(
            db.join("sha256").join(c.hex()).join("parent"),
            below.to_string(),
        )
        .unwrap();
    }
    assert!(store.check_children_index().unwrap().is_empty());
    store.release(others.last().unwrap()).unwrap();
    assert_nothing_registered(&dir, &store);
    assert!(common::names(&db.join("dunnage/children")).is_empty());
}

#[test]
fn a_layer_added_by_a_writer_that_keeps_no_index_keeps_its_parent() {
    require_root!();
    let (dir, store) = store("ls-children-foreign");
    let db = layerdb(&dir);
    let mine = chain(&store, "mine", 2);
    // A child of mine[0] the index does not know, as a dockerd sharing
    // the data-root would add it: its entry gone, written after our last
    // change (the sha256 directory changes later than the marker).
    let foreign = store
        .register(&tar_of(&[("foreign", b"x")])[..], Some(&mine[0]), None)
        .unwrap();
    std::fs::remove_file(
        db.join("dunnage/children")
            .join(mine[0].hex())
            .join(foreign.chain_id.hex()),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let probe = db.join("sha256").join("dunnage-test-foreign-write");
    std::fs::create_dir(&probe).unwrap();
    std::fs::remove_dir(&probe).unwrap();
    store.release(&mine[1]).unwrap();
    let left = common::names(&db.join("sha256"));
    assert!(
        left.contains(&mine[0].hex()),
        "the parent was removed: {left:?}"
    );
    assert!(store.check_children_index().unwrap().is_empty());
    store.release(&foreign.chain_id).unwrap();
    assert_nothing_registered(&dir, &store);
}

#[test]
fn a_container_layer_keeps_its_parent_through_the_index() {
    require_root!();
    let (dir, store) = store("ls-children-rw");
    let db = layerdb(&dir);
    let c = chain(&store, "c", 2);
    store.create_rw("ctr-children", Some(&c[1]), None).unwrap();
    assert_eq!(entries(&db, &c[1]), vec!["mount-ctr-children".to_owned()]);
    store.release(&c[1]).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    store.remove_rw("ctr-children").unwrap();
    assert_nothing_registered(&dir, &store);
    assert!(common::names(&db.join("dunnage/children")).is_empty());
}

#[test]
fn open_rebuilds_a_missing_index_and_check_finds_what_disagrees() {
    require_root!();
    let (dir, store) = store("ls-children-rebuild");
    let db = layerdb(&dir);
    let c = chain(&store, "r", 3);
    store.create_rw("ctr-rebuild", Some(&c[0]), None).unwrap();
    assert!(store.check_children_index().unwrap().is_empty());
    let before: Vec<Vec<String>> = c.iter().map(|p| entries(&db, p)).collect();

    // A store of a version without the index.
    std::fs::remove_dir_all(db.join("dunnage/children")).unwrap();
    std::fs::remove_file(db.join("dunnage/children.built")).unwrap();
    let problems = store.check_children_index().unwrap();
    assert_eq!(problems[0], ChildrenIndexProblem::NotBuilt);
    assert_eq!(problems.len(), 4, "{problems:?}");
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(store.check_children_index().unwrap().is_empty());
    assert_eq!(
        c.iter().map(|p| entries(&db, p)).collect::<Vec<_>>(),
        before
    );

    // An entry lost (a writer that keeps no index) and one stale.
    std::fs::remove_file(
        db.join("dunnage/children")
            .join(c[1].hex())
            .join(c[2].hex()),
    )
    .unwrap();
    let ghost = ChainId(common::diff_id(b"ghost").0);
    std::fs::create_dir_all(db.join("dunnage/children").join(c[2].hex())).unwrap();
    std::fs::write(
        db.join("dunnage/children")
            .join(c[2].hex())
            .join(ghost.hex()),
        b"",
    )
    .unwrap();
    let problems = store.check_children_index().unwrap();
    assert!(problems.contains(&ChildrenIndexProblem::Missing {
        parent: c[1],
        child: Child::Layer(c[2]),
    }));
    // The ghost's entry (a child that does not exist) is harmless, not
    // reported; one naming an existing layer on the wrong parent is.
    assert_eq!(problems.len(), 1, "{problems:?}");
    std::fs::write(
        db.join("dunnage/children")
            .join(c[2].hex())
            .join(c[1].hex()),
        b"",
    )
    .unwrap();
    let problems = store.check_children_index().unwrap();
    assert!(problems.contains(&ChildrenIndexProblem::Stale {
        parent: c[2],
        child: Child::Layer(c[1]),
    }));
    assert_eq!(problems.len(), 2, "{problems:?}");
    store.rebuild_children_index().unwrap();
    assert!(store.check_children_index().unwrap().is_empty());

    // A stale entry does not keep its layer: the release drops it.
    std::fs::create_dir_all(db.join("dunnage/children").join(c[2].hex())).unwrap();
    std::fs::write(
        db.join("dunnage/children")
            .join(c[2].hex())
            .join(ghost.hex()),
        b"",
    )
    .unwrap();
    store.release(&c[2]).unwrap();
    assert_eq!(store.list().unwrap().len(), 1); // the container's parent
    store.remove_rw("ctr-rebuild").unwrap();
    assert_nothing_registered(&dir, &store);
}

#[test]
fn open_after_a_crash_drops_entries_of_children_never_committed() {
    require_root!();
    let (dir, store) = store("ls-children-crash");
    let db = layerdb(&dir);
    let c = chain(&store, "k", 1);
    // What a registration killed between indexing and committing leaves:
    // an entry, and an abandoned write-set.
    let ghost = ChainId(common::diff_id(b"never committed").0);
    std::fs::create_dir_all(db.join("dunnage/children").join(c[0].hex())).unwrap();
    std::fs::write(
        db.join("dunnage/children")
            .join(c[0].hex())
            .join(ghost.hex()),
        b"",
    )
    .unwrap();
    std::fs::create_dir(db.join("tmp/write-set-0123456789abcdef")).unwrap();
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(store.check_children_index().unwrap().is_empty());
    assert!(entries(&db, &c[0]).is_empty());
    store.release(&c[0]).unwrap();
    assert_nothing_registered(&dir, &store);
}
