//! Real overlay mounts: the seeds' experiments and the lower-count limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use dunnage_overlay::mount::is_mount_point;
use dunnage_overlay::{Error, MAX_LOWERS, Mount, MountMethod, MountOptions, unmount};
use dunnage_testsupport::{MountGuard, TempDir, require_root};

mod common;
use common::read_xattr;

/// lower/, upper/, work/, merged/ under a fresh temp dir, with
/// lower/{a.txt, dir/{x,y}} and merged mounted.
fn seed_overlay(t: &TempDir) -> MountGuard {
    for d in ["lower/dir", "upper", "work", "merged"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("lower/a.txt"), b"from lower").unwrap();
    std::fs::write(t.join("lower/dir/x"), b"x").unwrap();
    std::fs::write(t.join("lower/dir/y"), b"y").unwrap();
    Mount::new(t.join("merged"))
        .lower(t.join("lower"))
        .upper(t.join("upper"), t.join("work"))
        .mount()
        .unwrap();
    MountGuard::new(t.join("merged"))
}

#[test]
fn reads_go_through_to_the_lower_layer() {
    require_root!();
    let t = TempDir::new("ovl-read").unwrap();
    let _g = seed_overlay(&t);
    assert_eq!(
        std::fs::read(t.join("merged/a.txt")).unwrap(),
        b"from lower"
    );
    assert_eq!(std::fs::read_dir(t.join("upper")).unwrap().count(), 0);
}

#[test]
fn writing_a_lower_file_copies_it_up() {
    require_root!();
    let t = TempDir::new("ovl-copyup").unwrap();
    let _g = seed_overlay(&t);
    std::fs::write(t.join("merged/a.txt"), b"changed").unwrap();
    assert_eq!(std::fs::read(t.join("upper/a.txt")).unwrap(), b"changed");
    assert_eq!(std::fs::read(t.join("lower/a.txt")).unwrap(), b"from lower");
}

#[test]
fn deleting_a_lower_file_leaves_a_whiteout() {
    require_root!();
    let t = TempDir::new("ovl-whiteout").unwrap();
    let _g = seed_overlay(&t);
    std::fs::remove_file(t.join("merged/a.txt")).unwrap();
    let m = std::fs::symlink_metadata(t.join("upper/a.txt")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert!(dunnage_overlay::whiteout::is_whiteout(&m));
    assert!(!t.join("merged/a.txt").exists());
}

#[test]
fn rm_rf_then_mkdir_makes_an_opaque_directory() {
    require_root!();
    let t = TempDir::new("ovl-opaque").unwrap();
    let _g = seed_overlay(&t);
    std::fs::remove_dir_all(t.join("merged/dir")).unwrap();
    std::fs::create_dir(t.join("merged/dir")).unwrap();
    assert_eq!(
        read_xattr(&t.join("upper/dir"), "trusted.overlay.opaque"),
        b"y"
    );
    assert!(
        dunnage_overlay::whiteout::is_opaque(&t.join("upper/dir"), Default::default()).unwrap()
    );
    assert_eq!(std::fs::read_dir(t.join("merged/dir")).unwrap().count(), 0);
}

fn many_lowers(n: usize, tag: &str) -> (TempDir, Mount) {
    let t = TempDir::new(tag).unwrap();
    let mut m = Mount::new(t.join("merged"));
    std::fs::create_dir(t.join("merged")).unwrap();
    for i in 0..n {
        let l = t.join(format!("layers/layer-with-a-longish-name-{i:04}"));
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join(format!("f{i}")), i.to_string()).unwrap();
        m.lowers.push(l);
    }
    (t, m)
}

fn mount_and_check(n: usize, upper: bool) {
    let (t, mut m) = many_lowers(n, &format!("ovl-lowers-{n}"));
    if upper {
        std::fs::create_dir(t.join("upper")).unwrap();
        std::fs::create_dir(t.join("work")).unwrap();
        m = m.upper(t.join("upper"), t.join("work"));
    }
    m.mount().unwrap();
    let _g = MountGuard::new(t.join("merged"));
    assert!(is_mount_point(&t.join("merged")).unwrap());
    let entries = std::fs::read_dir(t.join("merged")).unwrap().count();
    assert_eq!(entries, n);
    assert_eq!(
        std::fs::read_to_string(t.join(format!("merged/f{}", n - 1))).unwrap(),
        (n - 1).to_string()
    );
    unmount(&t.join("merged")).unwrap();
    assert!(!is_mount_point(&t.join("merged")).unwrap());
}

#[test]
fn one_lower_with_an_upper_mounts() {
    require_root!();
    mount_and_check(1, true);
}

#[test]
fn one_hundred_twenty_eight_lowers_mount() {
    require_root!();
    mount_and_check(128, false);
}

#[test]
fn five_hundred_lowers_mount() {
    require_root!();
    mount_and_check(MAX_LOWERS, true);
}

#[test]
fn five_hundred_one_lowers_is_a_typed_error() {
    let mut m = Mount::new("/nonexistent");
    m.lowers = (0..501).map(|i| PathBuf::from(format!("/l{i}"))).collect();
    let err = m.mount().unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyLowers {
                count: 501,
                max: 500
            }
        ),
        "{err}"
    );
}

#[test]
fn kernel_errors_carry_the_kernel_message() {
    require_root!();
    let t = TempDir::new("ovl-bad").unwrap();
    std::fs::create_dir(t.join("merged")).unwrap();
    let err = Mount::new(t.join("merged"))
        .lower(t.join("missing-a"))
        .lower(t.join("missing-b"))
        .mount()
        .unwrap_err();
    assert!(err.to_string().contains("missing-a"), "{err}");
}

#[test]
fn options_reach_the_kernel() {
    require_root!();
    let t = TempDir::new("ovl-opts").unwrap();
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let opts = MountOptions::parse("index=on,redirect_dir=on,metacopy=on,volatile").unwrap();
    Mount::new(t.join("merged"))
        .lower(t.join("lower"))
        .upper(t.join("upper"), t.join("work"))
        .options(opts)
        .mount()
        .unwrap();
    let _g = MountGuard::new(t.join("merged"));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(t.join("merged").to_str().unwrap()))
        .unwrap();
    for o in ["index=on", "redirect_dir=on", "metacopy=on", "volatile"] {
        assert!(line.contains(o), "{o} missing in {line}");
    }
}

/// `n` lowers `l/NNNN` beside `upper/` and `work/`: absolute options exceed
/// a page, relative ones fit.
fn legacy_mount(n: usize) {
    let t = TempDir::new(&format!("ovl-legacy-{n}")).unwrap();
    let mut m = Mount::new(t.join("merged"));
    for d in ["merged", "upper", "work"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    for i in 0..n {
        let l = t.join(format!("l/{i:04}"));
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join(format!("f{i}")), b"").unwrap();
        m.lowers.push(l);
    }
    m = m.upper(t.join("upper"), t.join("work"));
    assert!(
        m.data().len() > 4096,
        "the test needs options beyond a page"
    );
    m.mount_with(MountMethod::Legacy).unwrap();
    let _g = MountGuard::new(t.join("merged"));
    assert_eq!(std::fs::read_dir(t.join("merged")).unwrap().count(), n);
    // The calling thread's working directory did not move.
    assert_ne!(std::env::current_dir().unwrap(), t.path());
}

#[test]
fn mount2_with_relative_names_takes_128_lowers() {
    require_root!();
    legacy_mount(128);
}

#[test]
fn mount2_with_relative_names_takes_500_lowers() {
    require_root!();
    legacy_mount(MAX_LOWERS);
}

#[test]
fn new_api_mounts_a_short_stack() {
    require_root!();
    let (t, m) = many_lowers(2, "ovl-newapi");
    m.mount_with(MountMethod::NewApi).unwrap();
    let _g = MountGuard::new(t.join("merged"));
    assert!(is_mount_point(&t.join("merged")).unwrap());
}

#[test]
fn mount2_passes_paths_that_are_not_utf8_byte_for_byte() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    require_root!();
    let t = TempDir::new("ovl-nonutf8").unwrap();
    let odd = |name: &str| {
        let mut n = name.as_bytes().to_vec();
        n.extend_from_slice(b"\xff:,");
        t.join(OsString::from_vec(n))
    };
    let (lower, upper, work, merged) = (odd("lower"), odd("upper"), odd("work"), odd("merged"));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(lower.join("f"), b"below").unwrap();
    let m = Mount::new(&merged).lower(&lower).upper(&upper, &work);
    for method in [MountMethod::Legacy, MountMethod::NewApi] {
        m.mount_with(method).unwrap();
        let _g = MountGuard::new(&merged);
        assert_eq!(
            std::fs::read(merged.join("f")).unwrap(),
            b"below",
            "{method:?}"
        );
        std::fs::write(merged.join("up"), b"u").unwrap();
        assert!(upper.join("up").exists(), "{method:?}");
        unmount(&merged).unwrap();
        std::fs::remove_file(upper.join("up")).unwrap();
    }
}
