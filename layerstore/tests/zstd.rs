//! zstd layers: registered and verified with the `zstd` feature
//! (`cargo test -p dunnage-layerstore --features zstd`, run by `.ci/test`),
//! a typed error without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{assert_nothing_registered, tar_of};
#[cfg(feature = "zstd")]
use common::{big_tar, diff_id};
use dunnage_layerstore::{Compression, Error, LayerStore};
use dunnage_testsupport::{TempDir, require_command, require_root};

/// `data` compressed by the zstd command-line tool (a real frame, made by
/// something other than the code under test).
fn zstd_cli(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .args(["-q", "-c", "-3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(Compression::detect(&out.stdout), Compression::Zstd);
    out.stdout
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_layer_registers_reassembles_and_verifies() {
    require_root!();
    require_command!("zstd");
    let dir = TempDir::new("ls-zstd").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    let base_tar = tar_of(&[("etc/", b""), ("etc/os", b"dunnage"), ("bin/", b"")]);
    let big = big_tar("data", 50, 20_000, 7);
    let base = store
        .register(&zstd_cli(&base_tar)[..], None, Some(&diff_id(&base_tar)))
        .unwrap();
    let top = store
        .register(&zstd_cli(&big)[..], Some(&base.chain_id), None)
        .unwrap();
    assert_eq!(top.diff_id, diff_id(&big));
    for (layer, tar) in [(&base, &base_tar), (&top, &big)] {
        let mut out = Vec::new();
        std::io::copy(&mut store.tar_stream(&layer.chain_id).unwrap(), &mut out).unwrap();
        assert!(out == *tar, "the original tar, byte for byte");
        store.verify(&layer.chain_id).unwrap();
    }
    let merged = store.mount_chain(&top.chain_id).unwrap();
    assert_eq!(std::fs::read(merged.join("etc/os")).unwrap(), b"dunnage");
    assert_eq!(
        std::fs::read(merged.join("data/f49")).unwrap().len(),
        20_000
    );
    store.unmount_chain(&top.chain_id).unwrap();

    // A zstd stream that is cut or corrupt registers nothing.
    store.release(&top.chain_id).unwrap();
    store.release(&base.chain_id).unwrap();
    assert_nothing_registered(&dir, &store);
    let z = zstd_cli(&big);
    let mut flipped = z.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    for (what, bytes) in [("cut", z[..z.len() / 2].to_vec()), ("corrupt", flipped)] {
        let err = store.register(&bytes[..], None, None);
        assert!(err.is_err(), "{what} zstd accepted");
        assert_nothing_registered(&dir, &store);
    }
    // And a diffID mismatch is still caught after decompression.
    let err = store
        .register(&zstd_cli(&base_tar)[..], None, Some(&diff_id(b"other")))
        .unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err:?}");
    assert_nothing_registered(&dir, &store);
}

#[cfg(not(feature = "zstd"))]
#[test]
fn zstd_layer_without_the_feature_is_a_typed_error() {
    require_root!();
    require_command!("zstd");
    let dir = TempDir::new("ls-nozstd").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    let tar = tar_of(&[("f", b"x")]);
    let err = store.register(&zstd_cli(&tar)[..], None, None).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedCompression(what) if what.starts_with("zstd")),
        "{err:?}"
    );
    assert!(err.to_string().contains("zstd"), "{err}");
    assert_nothing_registered(&dir, &store);
}
