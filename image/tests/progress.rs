//! Progress reports of load, save, OCI export, import and commit, and
//! loading compressed archives from files and streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Cursor, Write};
use std::path::Path;

use common::{docker_archive, layer_tar};
use dunnage_image::{ImageChanges, ImageStore, LoadOptions, Progress, Reference};
use dunnage_testsupport::{TempDir, require_root};

/// A layer of `mb` MiB in a few files (so progress reports come every 4 MiB).
fn big_layer(tag: u8, mb: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 ^ tag).collect();
    let names: Vec<String> = (0..mb).map(|i| format!("f{tag}-{i}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &data[..])).collect();
    layer_tar(&files)
}

/// Every layer's reports end with exactly one `done`, bytes only grow.
fn check(reports: &[Progress], images: usize, layers: usize) {
    let done: Vec<&Progress> = reports.iter().filter(|p| p.done).collect();
    assert_eq!(done.len(), layers, "{reports:?}");
    for p in reports {
        assert_eq!(p.images, images);
        assert!(p.layer < p.layers && p.image < p.images, "{p:?}");
    }
    for w in reports.windows(2) {
        if (w[0].image, w[0].layer) == (w[1].image, w[1].layer) {
            assert!(w[1].bytes >= w[0].bytes && !w[0].done, "{reports:?}");
        }
    }
    assert!(
        reports.len() > layers,
        "no report before the end: {reports:?}"
    );
}

#[test]
fn load_save_export_import_and_commit_report_progress() {
    require_root!();
    let dir = TempDir::new("progress").unwrap();
    let (tar, _) = docker_archive(&[big_layer(1, 9), big_layer(2, 5)], "prog/big:1");
    std::fs::write(dir.join("big.tar"), &tar).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();

    let mut reports = Vec::new();
    let mut cb = |p: &Progress| reports.push(p.clone());
    let opts = LoadOptions {
        progress: Some(&mut cb),
        ..LoadOptions::default()
    };
    let id = store.load(&dir.join("big.tar"), opts).unwrap()[0]
        .id
        .clone();
    check(&reports, 1, 2);
    let last = reports.last().unwrap();
    assert_eq!((last.layer, last.layers, last.bytes), (1, 2, last.total));

    let mut reports = Vec::new();
    let mut cb = |p: &Progress| reports.push(p.clone());
    store
        .save_with_progress(&["prog/big:1"], Cursor::new(Vec::new()), Some(&mut cb))
        .unwrap();
    check(&reports, 1, 2);

    let mut reports = Vec::new();
    let mut cb = |p: &Progress| reports.push(p.clone());
    store
        .export_oci_with_progress(&["prog/big:1"], &dir.join("oci"), Some(&mut cb))
        .unwrap();
    check(&reports, 1, 2);

    let rootfs = dir.join("rootfs.tar");
    std::fs::write(&rootfs, big_layer(3, 6)).unwrap();
    let mut reports = Vec::new();
    let mut cb = |p: &Progress| reports.push(p.clone());
    store
        .import_with_progress(&rootfs, &ImageChanges::default(), Some(&mut cb))
        .unwrap();
    check(&reports, 1, 1);
    assert_eq!(
        reports.last().unwrap().bytes,
        std::fs::metadata(&rootfs).unwrap().len()
    );

    // Commit: a container on the image writes 5 MiB.
    let top = store.config(&id).unwrap().chain_id();
    let container = dunnage_testsupport::unique_name("progress");
    let layers = store.layers();
    layers.create_rw(&container, top.as_ref(), None).unwrap();
    let rootfs = layers.mount_rw(&container).unwrap();
    {
        let _guard = dunnage_testsupport::MountGuard::new(&rootfs);
        std::fs::write(rootfs.join("new"), vec![9u8; 5 << 20]).unwrap();
        layers.unmount_rw(&container).unwrap();
    }
    let mut reports = Vec::new();
    let mut cb = |p: &Progress| reports.push(p.clone());
    store
        .commit_with_progress(&container, &id, &ImageChanges::default(), Some(&mut cb))
        .unwrap();
    check(&reports, 1, 1);
    layers.remove_rw(&container).unwrap();
}

fn compress(data: &[u8], zstd: bool) -> Vec<u8> {
    if zstd {
        return zstd::encode_all(data, 3).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn compressed_archives_load_from_files_and_streams() {
    require_root!();
    let dir = TempDir::new("compressed-archive").unwrap();
    let (tar, config) = docker_archive(&[layer_tar(&[("x", b"x")])], "comp/x:1");
    let want = dunnage_layerstore::Digest::sha256_of(&config);
    for (i, zstd) in [false, true].into_iter().enumerate() {
        let packed = compress(&tar, zstd);
        let path = dir.join(format!("archive-{i}"));
        std::fs::write(&path, &packed).unwrap();
        let store = ImageStore::open(&dir.join(format!("file-{i}"))).unwrap();
        let loaded = store.load(&path, LoadOptions::default()).unwrap();
        assert_eq!(loaded[0].id.0, want);
        assert_eq!(loaded[0].tags, [Reference::parse("comp/x:1").unwrap()]);
        let store = ImageStore::open(&dir.join(format!("stream-{i}"))).unwrap();
        let loaded = store
            .load_reader(&packed[..], Path::new("<test>"), LoadOptions::default())
            .unwrap();
        assert_eq!(loaded[0].id.0, want);
    }
    // And an uncompressed stream.
    let store = ImageStore::open(&dir.join("plain-stream")).unwrap();
    let loaded = store
        .load_reader(&tar[..], Path::new("<test>"), LoadOptions::default())
        .unwrap();
    assert_eq!(loaded[0].id.0, want);
}
