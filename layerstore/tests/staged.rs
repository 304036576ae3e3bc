//! Staging layers without their parent, concurrently, and committing them
//! in chain order: the same layerdb, byte for byte, as serial `register`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::Path;

use common::{assert_nothing_registered, big_tar, cache_dirs, diff_id, gzip, names, tar_of};
use dunnage_layerstore::{ChainId, Error, LayerStore};
use dunnage_testsupport::{TempDir, require_root};

fn store(name: &str) -> (TempDir, LayerStore) {
    let dir = TempDir::new(name).unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    (dir, store)
}

/// Three layers, each overriding or deleting something of the one below.
fn layers() -> Vec<Vec<u8>> {
    let mut base = big_tar("base", 40, 3000, 1);
    // Drop the end-of-archive blocks of big_tar and append more entries.
    let more = tar_of(&[("etc/", b""), ("etc/os", b"one")]);
    base.truncate(base.len() - 1024);
    base.extend_from_slice(&more);
    vec![
        base,
        tar_of(&[("etc/", b""), ("etc/os", b"two"), ("etc/.wh.gone", b"")]),
        gzip(&big_tar("top", 20, 5000, 3)),
    ]
}

/// The layerdb files of a layer that Docker compares (all but `cache-id`).
fn layer_files(root: &Path, chain: &ChainId) -> Vec<(String, Vec<u8>)> {
    let dir = root.join("image/overlay2/layerdb/sha256").join(chain.hex());
    names(&dir)
        .into_iter()
        .filter(|n| n != "cache-id")
        .map(|n| {
            let data = std::fs::read(dir.join(&n)).unwrap();
            (n, data)
        })
        .collect()
}

fn read_tar(store: &LayerStore, chain: &ChainId) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .tar_stream(chain)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn concurrent_stages_committed_in_order_match_serial_register() {
    require_root!();
    let tars = layers();
    let (serial_dir, serial) = store("ls-staged-serial");
    let mut serial_chains: Vec<ChainId> = Vec::new();
    for t in &tars {
        let l = serial.register(&t[..], serial_chains.last(), None).unwrap();
        serial_chains.push(l.chain_id);
    }

    let (dir, staged_store) = store("ls-staged-conc");
    // Stage the layers top first, all at once, then commit base first.
    let staged = std::thread::scope(|s| {
        let handles: Vec<_> = tars
            .iter()
            .rev()
            .map(|t| s.spawn(|| staged_store.stage(&t[..], None).unwrap()))
            .collect();
        let mut v: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        v.reverse();
        v
    });
    let mut chains: Vec<ChainId> = Vec::new();
    for s in staged {
        let expected = s.chain_id(chains.last());
        let size = s.size();
        let l = s.commit(chains.last()).unwrap();
        assert_eq!(l.chain_id, expected);
        assert_eq!(l.size, size);
        chains.push(l.chain_id);
    }
    assert_eq!(chains, serial_chains);
    for (i, c) in chains.iter().enumerate() {
        assert_eq!(
            layer_files(dir.path(), c),
            layer_files(serial_dir.path(), c),
            "layer {i}"
        );
        assert_eq!(read_tar(&staged_store, c), read_tar(&serial, c));
        assert_eq!(staged_store.references(c).unwrap(), Some(1));
        // The driver directory is a child's: `lower` names as many
        // layers as the serial one's, and `work/` exists on children only.
        let cache = staged_store.get(c).unwrap().cache_id;
        let serial_cache = serial.get(c).unwrap().cache_id;
        assert_eq!(
            staged_store.driver().lower_dirs(&cache).unwrap().len(),
            serial.driver().lower_dirs(&serial_cache).unwrap().len()
        );
        assert_eq!(
            names(&dir.path().join("overlay2").join(&cache)),
            names(&serial_dir.path().join("overlay2").join(&serial_cache))
        );
    }
    // The merged view is the same: the top's lowers resolve to the
    // staged store's own layers.
    let top = chains.last().unwrap();
    let merged = staged_store.mount_chain(top).unwrap();
    assert_eq!(std::fs::read(merged.join("etc/os")).unwrap(), b"two");
    assert!(merged.join("base/f0").exists() && merged.join("top/f19").exists());
    staged_store.unmount_chain(top).unwrap();
    assert!(names(&dir.path().join("image/overlay2/layerdb/tmp")).is_empty());
    for c in chains.iter().rev() {
        staged_store.release(c).unwrap();
    }
    assert_nothing_registered(&dir, &staged_store);
}

#[test]
fn failing_stages_leave_nothing() {
    require_root!();
    let (dir, store) = store("ls-staged-fail");
    let tar = tar_of(&[("a", b"1"), ("b/", b""), ("b/c", b"2")]);
    let wrong = diff_id(b"something else");
    match store.stage(&tar[..], Some(&wrong)) {
        Err(Error::DiffIdMismatch { expected, .. }) => assert_eq!(expected, wrong),
        other => panic!("expected a diffID mismatch, got {other:?}"),
    }
    assert_nothing_registered(&dir, &store);
    let gz = gzip(&tar);
    let hostile: Vec<Vec<u8>> = vec![
        tar[..700].to_vec(),         // truncated in a file
        gz[..gz.len() / 2].to_vec(), // truncated gzip
        hardlink_to_nowhere(),
        vec![0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2], // xz
        {
            let mut t = tar.clone();
            t[148] ^= 0x55; // header checksum
            t
        },
    ];
    for (i, bytes) in hostile.iter().enumerate() {
        assert!(store.stage(&bytes[..], None).is_err(), "input {i} staged");
        assert_nothing_registered(&dir, &store);
    }
}

/// A tar whose only entry is a hard link to a file it does not hold.
fn hardlink_to_nowhere() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "link", "missing").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn dropping_a_staged_layer_removes_it() {
    require_root!();
    let (dir, store) = store("ls-staged-drop");
    let staged = store.stage(&tar_of(&[("a", b"1")])[..], None).unwrap();
    assert_eq!(cache_dirs(dir.path()).len(), 1);
    assert_eq!(
        names(&dir.path().join("image/overlay2/layerdb/tmp")).len(),
        1
    );
    drop(staged);
    assert_nothing_registered(&dir, &store);
    assert!(names(&dir.path().join("overlay2/l")).is_empty());
}

#[test]
fn commit_on_a_missing_parent_registers_nothing() {
    require_root!();
    let (dir, store) = store("ls-staged-orphan");
    let staged = store.stage(&tar_of(&[("a", b"1")])[..], None).unwrap();
    let ghost = ChainId(diff_id(b"no such layer").0);
    match staged.commit(Some(&ghost)) {
        Err(Error::LayerNotFound(c)) => assert_eq!(c, ghost),
        other => panic!("expected LayerNotFound, got {other:?}"),
    }
    assert_nothing_registered(&dir, &store);
}

#[test]
fn committing_an_existing_chain_adds_a_reference_and_drops_the_copy() {
    require_root!();
    let (dir, store) = store("ls-staged-dup");
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let tar = tar_of(&[("b", b"2")]);
    let first = store.stage(&tar[..], None).unwrap();
    let second = store.stage(&gzip(&tar)[..], None).unwrap();
    assert_eq!(cache_dirs(dir.path()).len(), 3);
    let one = first.commit(Some(&base.chain_id)).unwrap();
    let two = second.commit(Some(&base.chain_id)).unwrap();
    assert_eq!(one, two);
    assert_eq!(store.references(&one.chain_id).unwrap(), Some(2));
    assert_eq!(cache_dirs(dir.path()).len(), 2);
    assert!(names(&dir.path().join("image/overlay2/layerdb/tmp")).is_empty());
    // The same diff as a base layer is another chain.
    let alone = store.stage(&tar[..], None).unwrap().commit(None).unwrap();
    assert_ne!(alone.chain_id, one.chain_id);
    assert_eq!(alone.parent, None);
    for c in [
        &alone.chain_id,
        &one.chain_id,
        &one.chain_id,
        &base.chain_id,
    ] {
        store.release(c).unwrap();
    }
    assert_nothing_registered(&dir, &store);
}

#[test]
fn a_live_staged_layer_survives_another_open() {
    require_root!();
    let (dir, store) = store("ls-staged-open");
    let staged = store.stage(&tar_of(&[("a", b"1")])[..], None).unwrap();
    // Another store opened meanwhile (another process would do the same):
    // the live stage's write-set is locked, so it is not a leftover.
    let other = LayerStore::open(dir.path()).unwrap();
    assert_eq!(cache_dirs(dir.path()).len(), 1);
    let l = staged.commit(None).unwrap();
    assert_eq!(other.get(&l.chain_id).unwrap(), l);
    other.release(&l.chain_id).unwrap();
    assert_nothing_registered(&dir, &store);
}
