//! Helpers shared by the layerstore integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;

use dunnage_layerstore::{DiffId, Digest, LayerStore};

/// A tar (tar crate, GNU headers) of `files` (`name`, content); names ending
/// in `/` become directories.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
        }
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The diffID of an uncompressed tar.
pub fn diff_id(tar: &[u8]) -> DiffId {
    DiffId(Digest::sha256_of(tar))
}

/// A layer of `n` files of `size` pseudo-random bytes each, under `dir/`.
pub fn big_tar(dir: &str, n: usize, size: usize, seed: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut data = vec![0u8; size];
    for i in 0..n {
        for chunk in data.chunks_mut(8) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bytes = x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("{dir}/f{i}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Names of the entries of a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Driver directories (cache ids) other than `l`.
pub fn cache_dirs(root: &Path) -> Vec<String> {
    names(&root.join("overlay2"))
        .into_iter()
        .filter(|n| n != "l")
        .collect()
}

/// Assert that the driver home under `root` holds no layer directory.
#[track_caller]
pub fn assert_no_cache_dirs(root: &Path) {
    let left = cache_dirs(root);
    assert!(left.is_empty(), "driver directories left: {left:?}");
}

/// Assert that nothing of a failed registration remains in the store kept
/// in `dir`: no layer, write-set, reference file or driver directory.
#[track_caller]
pub fn assert_nothing_registered(dir: &dunnage_testsupport::TempDir, store: &LayerStore) {
    assert!(store.list().unwrap().is_empty());
    assert!(names(&dir.path().join("image/overlay2/layerdb/tmp")).is_empty());
    assert!(names(&dir.path().join("image/overlay2/layerdb/dunnage/refs")).is_empty());
    assert_no_cache_dirs(dir.path());
}
