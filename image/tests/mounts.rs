//! `ImageStore::mount`: deep images mount whole, through the overlay
//! driver (short links, `lowerdir+`), on data-roots whose path has `:` and
//! `,`, and the mount holds the image's layers until it is unmounted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{docker_archive, layer_tar, run};
use dunnage_image::{ImageStore, LoadOptions};
use dunnage_testsupport::{Dockerd, MountGuard, TempDir, require_command, require_root};

/// A docker-save archive of an image of `n` layers, layer `i` holding the
/// file `f<i>` with content `layer <i>`, written to `dir`.
fn deep_archive(dir: &Path, n: usize, tag: &str) -> PathBuf {
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let name = format!("f{i}");
            let data = format!("layer {i}");
            layer_tar(&[(name.as_str(), data.as_bytes())])
        })
        .collect();
    let (tar, _) = docker_archive(&layers, tag);
    let path = dir.join("deep.tar");
    std::fs::write(&path, tar).unwrap();
    path
}

/// Assert that `target` shows `f0`..`f<n-1>` with their contents.
fn assert_every_layer_shows(target: &Path, n: usize) {
    for i in 0..n {
        let got = std::fs::read_to_string(target.join(format!("f{i}")))
            .unwrap_or_else(|e| panic!("f{i} of {n} layers: {e}"));
        assert_eq!(got, format!("layer {i}"));
    }
}

#[test]
fn a_100_layer_image_mounts_whole_on_a_root_with_colon_and_comma() {
    require_root!();
    let dir = TempDir::new("image-deep-mount").unwrap();
    let archive = deep_archive(dir.path(), 100, "deep:100");
    // The kernel's mount(2) options would need escaping for both.
    let root = dir.join("data:root,with=odd");
    let store = ImageStore::open(&root).unwrap();
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let target = dir.join("mnt:x,y");
    std::fs::create_dir(&target).unwrap();
    store.mount(&id, &target).unwrap();
    let _guard = MountGuard::new(&target);
    assert_every_layer_shows(&target, 100);
    assert!(
        std::fs::write(target.join("new"), b"x").is_err(),
        "read-only"
    );
    // The mount is recorded in the layer store.
    let mounts = store.layers().chain_mounts().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].target, std::fs::canonicalize(&target).unwrap());
    assert!(mounts[0].mounted);
    // A second mount at the same place is refused, the first stays.
    assert!(store.mount(&id, &target).is_err());
    assert_every_layer_shows(&target, 100);
    store.unmount(&target).unwrap();
    assert!(!target.join("f0").exists());
    assert!(store.layers().chain_mounts().unwrap().is_empty());
}

#[test]
fn one_and_two_layer_images_mount_read_only() {
    require_root!();
    let dir = TempDir::new("image-small-mount").unwrap();
    for n in [1, 2] {
        let sub = dir.join(format!("n{n}"));
        std::fs::create_dir(&sub).unwrap();
        let archive = deep_archive(&sub, n, "small:1");
        let store = ImageStore::open(&sub.join("root")).unwrap();
        let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
            .id
            .clone();
        let target = sub.join("mnt");
        std::fs::create_dir(&target).unwrap();
        store.mount(&id, &target).unwrap();
        let _guard = MountGuard::new(&target);
        assert_every_layer_shows(&target, n);
        assert!(std::fs::write(target.join("new"), b"x").is_err(), "n={n}");
        store.unmount(&target).unwrap();
        assert!(!target.join("f0").exists());
    }
}

#[test]
fn the_layers_of_a_mounted_image_outlive_its_deletion_until_unmount() {
    require_root!();
    let dir = TempDir::new("image-mount-holds").unwrap();
    let archive = deep_archive(dir.path(), 3, "held:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    store.mount(&id, &target).unwrap();
    let _guard = MountGuard::new(&target);
    // A release of the layers (what deleting the image does underneath)
    // keeps them while the mount record names the chain, in this store
    // and in another one opened afterwards.
    let top = store.config(&id).unwrap().chain_id().unwrap();
    store.layers().acquire(&top).unwrap();
    store.layers().release(&top).unwrap();
    drop(store);
    let store = ImageStore::open(&dir.join("root")).unwrap();
    assert_every_layer_shows(&target, 3);
    assert_eq!(store.layers().list().unwrap().len(), 3);
    store.unmount(&target).unwrap();
    assert_eq!(
        store.layers().list().unwrap().len(),
        3,
        "the image still holds them"
    );
}

#[test]
fn a_100_layer_image_built_by_docker_mounts_whole() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("image-docker-deep").unwrap();
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 0..100 {
        std::fs::write(ctx.join(format!("f{i}")), format!("layer {i}")).unwrap();
        dockerfile += &format!("COPY f{i} /f{i}\n");
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let d = Dockerd::start("deep").unwrap();
    run(d
        .docker()
        .args([
            "build",
            "--network=none",
            "-q",
            "-t",
            "dunnage-test/deep:100",
        ])
        .arg(&ctx));
    let saved = dir.join("deep.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("dunnage-test/deep:100"));
    drop(d);
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&saved, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(store.config(&id).unwrap().diff_ids().len(), 100);
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    store.mount(&id, &target).unwrap();
    let _guard = MountGuard::new(&target);
    assert_every_layer_shows(&target, 100);
    store.unmount(&target).unwrap();
}
