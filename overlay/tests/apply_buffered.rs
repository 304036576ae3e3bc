//! `apply_layer_buffered`, which writes file contents straight from the
//! reader's buffer, against `apply_layer`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{RawTar, populate, run, snapshot};
use dunnage_overlay::{ApplyOptions, Error, apply_layer, apply_layer_buffered};
use dunnage_testsupport::{TempDir, require_root};

#[test]
fn buffered_apply_writes_what_apply_writes_and_refuses_what_it_refuses() {
    require_root!();
    let t = TempDir::new("apply-buffered").unwrap();
    let src = t.join("src");
    std::fs::create_dir(&src).unwrap();
    populate(&src);
    let tarball = t.join("layer.tar");
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-cf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let bytes = std::fs::read(&tarball).unwrap();
    let (plain, buffered) = (t.join("plain"), t.join("buffered"));
    std::fs::create_dir(&plain).unwrap();
    std::fs::create_dir(&buffered).unwrap();
    let a = apply_layer(&bytes[..], &plain, &ApplyOptions::default()).unwrap();
    // A reader handing out a few bytes at a time: member data and headers
    // straddle its buffer's ends.
    let small = std::io::BufReader::with_capacity(7, &bytes[..]);
    let b = apply_layer_buffered(small, &buffered, &ApplyOptions::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(snapshot(&plain, true), snapshot(&buffered, true));

    // Truncated inside a member's data, inside a header, inside padding.
    let tar = RawTar::new().file("f", &[7u8; 1000]).finish();
    for cut in [700, 1200, 1530, 100] {
        let out = t.join(format!("cut-{cut}"));
        std::fs::create_dir(&out).unwrap();
        let small = std::io::BufReader::with_capacity(64, &tar[..cut]);
        let err = apply_layer_buffered(small, &out, &ApplyOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Archive(_)), "{cut}: {err:?}");
    }
}
