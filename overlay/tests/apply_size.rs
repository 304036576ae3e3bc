//! The size `apply_layer` counts while writing (`ApplyStats::size`) against
//! the walk of `diff_size` (Docker's rule).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{RawTar, populate, run};
use dunnage_overlay::{ApplyOptions, ApplyStats, apply_layer_buffered, diff_size};
use dunnage_testsupport::{TempDir, require_root};

fn apply_bytes(tar: &[u8], out: &Path) -> dunnage_overlay::Result<ApplyStats> {
    apply_layer_buffered(tar, out, &ApplyOptions::default())
}

/// Apply `tar` into a fresh directory below `t`; the counted size must be
/// the walked one when it is known.
fn counted(t: &TempDir, name: &str, tar: &[u8]) -> Option<u64> {
    let out = t.join(name);
    std::fs::create_dir(&out).unwrap();
    let stats = apply_bytes(tar, &out).unwrap();
    if let Some(size) = stats.size {
        assert_eq!(size, diff_size(&out).unwrap(), "{name}");
    }
    stats.size
}

#[test]
fn the_counted_size_is_the_walked_size_for_every_kind_of_entry() {
    require_root!();
    let t = TempDir::new("apply-size").unwrap();
    let src = t.join("src");
    std::fs::create_dir(&src).unwrap();
    populate(&src);
    // A sparse file too: its size is the expanded one.
    {
        let f = std::fs::File::create(src.join("sparse")).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"end", 999_997).unwrap();
    }
    let tarball = t.join("layer.tar");
    run(Command::new("tar")
        .args(["--sparse", "--format=pax", "--numeric-owner", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let size = counted(&t, "gnu", &std::fs::read(&tarball).unwrap());
    assert!(size.is_some_and(|s| s > 1_000_000), "{size:?}");

    // Hardlinks to hardlinks, a whiteout, symlinks with long and empty-ish
    // targets, an empty file, a directory entry after its files.
    let tar = RawTar::new()
        .file("a/f", b"12345")
        .hardlink("a/g", "a/f")
        .hardlink("b", "a/g")
        .symlink("s", "a/f")
        .symlink("long", &"x".repeat(99))
        .file("empty", b"")
        .file("a/.wh.gone", b"")
        .dir("a/")
        .finish();
    assert_eq!(counted(&t, "raw", &tar), Some(5 + 3 + 99));
    assert_eq!(counted(&t, "nothing", &RawTar::new().finish()), Some(0));
}

#[test]
fn the_size_is_unknown_when_something_was_there_or_was_replaced_or_hidden() {
    require_root!();
    let t = TempDir::new("apply-size-unknown").unwrap();
    let tar = RawTar::new().file("f", b"abc").finish();
    let out = t.join("existing");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("old"), b"old bytes").unwrap();
    assert_eq!(apply_bytes(&tar, &out).unwrap().size, None);
    assert_eq!(diff_size(&out).unwrap(), 3 + 9);

    // Whited out, then added again: the whiteout is replaced.
    let again = RawTar::new().file(".wh.f", b"").file("f", b"abc").finish();
    assert_eq!(counted(&t, "again", &again), None);
    // An opaque directory.
    let opaque = RawTar::new()
        .dir("d/")
        .file("d/.wh..wh..opq", b"")
        .file("d/x", b"xy")
        .finish();
    assert_eq!(counted(&t, "opaque", &opaque), None);
}
