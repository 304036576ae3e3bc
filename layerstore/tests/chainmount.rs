//! `mount_chain_at`: a chain mounted read-only at a caller's directory,
//! recorded in `layerdb/dunnage/chain-mounts/`; the record holds the
//! chain's layers; malformed and foreign entries in that directory are
//! ignored, bad input leaves no record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::tar_of;
use std::os::unix::ffi::OsStrExt;

use dunnage_layerstore::{ChainId, Digest, Error, LayerStore};
use dunnage_testsupport::{MountGuard, TempDir, require_root};

/// A store with a two-layer chain; returns the store and the top chain.
fn two_layers(dir: &TempDir) -> (LayerStore, ChainId) {
    let store = LayerStore::open(&dir.join("root")).unwrap();
    let base = store
        .register(&tar_of(&[("a", b"base")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"top")])[..], Some(&base.chain_id), None)
        .unwrap();
    store.release(&base.chain_id).unwrap(); // the top holds it
    (store, top.chain_id)
}

#[test]
fn a_recorded_mount_holds_its_chain_until_unmounted() {
    require_root!();
    let dir = TempDir::new("ls-chainmount").unwrap();
    let (store, top) = two_layers(&dir);
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    let _guard = MountGuard::new(&target);
    let canonical = store.mount_chain_at(&top, &target).unwrap();
    assert_eq!(std::fs::read(target.join("a")).unwrap(), b"base");
    assert_eq!(std::fs::read(target.join("b")).unwrap(), b"top");
    assert!(matches!(
        store.mount_chain_at(&top, &target),
        Err(Error::MountTargetBusy(p)) if p == canonical
    ));
    // The last reference goes; the layers stay while mounted, also across
    // a reopen (whose clean-up removes unreferenced layers).
    store.release(&top).unwrap();
    drop(store);
    let store = LayerStore::open(&dir.join("root")).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(std::fs::read(target.join("b")).unwrap(), b"top");
    assert_eq!(store.unmount_chain_at(&target).unwrap(), Some(top));
    assert!(!target.join("b").exists());
    assert!(store.list().unwrap().is_empty(), "released layers stayed");
    assert_eq!(store.unmount_chain_at(&target).unwrap(), None);
}

#[test]
fn foreign_entries_are_ignored_and_bad_input_leaves_no_record() {
    require_root!();
    let dir = TempDir::new("ls-chainmount-junk").unwrap();
    let (store, top) = two_layers(&dir);
    let records = dir.join("root/image/overlay2/layerdb/dunnage/chain-mounts");
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    // Bad input: a missing chain, a missing target, a file as target.
    let missing: ChainId = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    assert!(matches!(
        store.mount_chain_at(&missing, &target),
        Err(Error::LayerNotFound(_))
    ));
    assert!(matches!(
        store.mount_chain_at(&top, &dir.join("nowhere")),
        Err(Error::Io { op: "realpath", .. })
    ));
    std::fs::write(dir.join("file"), b"").unwrap();
    assert!(store.mount_chain_at(&top, &dir.join("file")).is_err());
    assert!(store.chain_mounts().unwrap().is_empty());

    // Junk: odd names, a directory named like a record, a temp file.
    std::fs::create_dir_all(&records).unwrap();
    let key = "0123456789abcdef0123456789abcdef";
    std::fs::write(records.join("garbage"), b"/x").unwrap();
    std::fs::write(records.join(format!("zz-{key}")), b"/x").unwrap();
    std::fs::write(records.join(format!("{}-short", top.hex())), b"/x").unwrap();
    std::fs::create_dir(records.join(format!("{}-{key}", top.hex()))).unwrap();
    std::fs::write(records.join(format!(".{}-{key}.tmp-1", top.hex())), b"/x").unwrap();
    assert!(store.chain_mounts().unwrap().is_empty());
    // A well-formed record whose mount is gone (unmounted by hand, a
    // reboot) still holds the chain, is listed as not mounted, and goes
    // with unmount_chain_at of its target.
    let gone = std::path::Path::new("/nonexistent-dunnage-target");
    let key = &Digest::sha256_of(gone.as_os_str().as_bytes()).hex()[..32];
    std::fs::write(
        records.join(format!("{}-{key}", top.hex())),
        gone.as_os_str().as_bytes(),
    )
    .unwrap();
    let listed = store.chain_mounts().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].chain, listed[0].target.as_path()), (top, gone));
    assert!(!listed[0].mounted);
    store.release(&top).unwrap();
    assert_eq!(store.list().unwrap().len(), 2, "a record holds the chain");
    assert_eq!(store.unmount_chain_at(gone).unwrap(), Some(top));
    assert!(store.list().unwrap().is_empty());
}
