//! Applying layer tars: agreement with GNU tar, whiteout conversion,
//! applying onto existing trees.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use common::{RawTar, populate, read_xattr, run, snapshot};
use dunnage_overlay::{ApplyOptions, Error, apply_layer};
use dunnage_testsupport::{TempDir, require_root};

#[test]
fn apply_matches_gnu_tar_extraction() {
    require_root!();
    let t = TempDir::new("apply-gnu").unwrap();
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
    let by_tar = t.join("by-tar");
    let by_us = t.join("by-us");
    std::fs::create_dir(&by_tar).unwrap();
    std::fs::create_dir(&by_us).unwrap();
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--same-owner",
            "--numeric-owner",
            "-xpf",
        ])
        .arg(&tarball)
        .arg("-C")
        .arg(&by_tar));
    let stats = apply_layer(
        std::fs::File::open(&tarball).unwrap(),
        &by_us,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(snapshot(&by_tar, true), snapshot(&by_us, true));
    assert_eq!(snapshot(&src, true), snapshot(&by_us, true));
    assert!(stats.entries >= 15, "{stats:?}");
    assert_eq!(stats.bytes, 8 + 30 + 70_000 + 9);
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_marks() {
    require_root!();
    let t = TempDir::new("apply-wh").unwrap();
    let tar = RawTar::new()
        .dir("etc/")
        .raw_entry(b"etc/.wh.passwd", tar::EntryType::Regular, 0o600, b"", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .finish();
    let stats = apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let wh = std::fs::symlink_metadata(t.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(read_xattr(&t.join("var"), "trusted.overlay.opaque"), b"y");
    assert!(!t.join("var/.wh..wh..opq").exists());
    assert_eq!(std::fs::read(t.join("var/new")).unwrap(), b"n");
    assert_eq!(
        (stats.whiteouts, stats.opaque_dirs, stats.entries),
        (1, 1, 5)
    );
}

#[test]
fn userxattr_marks_opaque_dirs_in_the_user_namespace() {
    require_root!();
    let t = TempDir::new("apply-userxattr").unwrap();
    let tar = RawTar::new().dir("d/").file("d/.wh..wh..opq", b"").finish();
    let opts = ApplyOptions {
        userxattr: true,
        ..Default::default()
    };
    apply_layer(&tar[..], t.path(), &opts).unwrap();
    assert_eq!(read_xattr(&t.join("d"), "user.overlay.opaque"), b"y");
    assert!(read_xattr(&t.join("d"), "trusted.overlay.opaque").is_empty());
}

#[test]
fn applying_onto_an_existing_tree_replaces_entries() {
    require_root!();
    let t = TempDir::new("apply-existing").unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("a/keep")).unwrap();
    std::fs::write(root.join("file-then-dir"), b"x").unwrap();
    std::fs::create_dir_all(root.join("dir-then-file/sub")).unwrap();
    std::fs::write(root.join("replace-me"), b"old").unwrap();
    std::fs::create_dir_all(root.join("opq/old-child")).unwrap();
    std::fs::write(root.join("gone"), b"x").unwrap();
    let tar = RawTar::new()
        .dir("file-then-dir/")
        .file("file-then-dir/inner", b"i")
        .file("dir-then-file", b"f")
        .file("replace-me", b"new")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/fresh", b"f")
        .file(".wh.gone", b"")
        .finish();
    apply_layer(&tar[..], root, &ApplyOptions::default()).unwrap();
    assert!(root.join("a/keep").is_dir());
    assert_eq!(
        std::fs::read(root.join("file-then-dir/inner")).unwrap(),
        b"i"
    );
    assert_eq!(std::fs::read(root.join("dir-then-file")).unwrap(), b"f");
    assert_eq!(std::fs::read(root.join("replace-me")).unwrap(), b"new");
    assert!(!root.join("opq/old-child").exists());
    assert!(root.join("opq/fresh").exists());
    assert!(
        std::fs::symlink_metadata(root.join("gone"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn missing_parents_are_created_and_directory_times_set_last() {
    require_root!();
    let t = TempDir::new("apply-parents").unwrap();
    let tar = RawTar::new().dir("a/").file("a/b/c/file", b"data").finish();
    apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.join("a/b/c/file")).unwrap(), b"data");
    assert_eq!(
        std::fs::metadata(t.join("a")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        std::fs::metadata(t.join("a/b")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn an_empty_layer_applies_nothing_and_bytes_after_it_stay_unread() {
    require_root!();
    let t = TempDir::new("apply-empty").unwrap();
    let mut data = vec![0u8; 1024];
    data.extend_from_slice(&[0u8; 4096]);
    let stats = apply_layer(&data[..], t.path(), &ApplyOptions::default()).unwrap();
    let nothing = dunnage_overlay::ApplyStats {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(stats, nothing);
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn pax_records_set_long_names_owners_times_and_xattrs() {
    require_root!();
    let t = TempDir::new("apply-pax").unwrap();
    let long = format!("{}/{}", "p".repeat(150), "q".repeat(200));
    let tar = RawTar::new()
        .pax(&[
            ("path", long.as_bytes()),
            ("uid", b"100000"),
            ("gid", b"100001"),
            ("mtime", b"1500000000.25"),
            ("SCHILY.xattr.user.k", b"v"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .file("short", b"content")
        .finish();
    let stats = apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let p = t.join(&long);
    let m = std::fs::symlink_metadata(&p).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mtime(), m.mtime_nsec()),
        (100_000, 100_001, 1_500_000_000, 250_000_000)
    );
    assert_eq!(read_xattr(&p, "user.k"), b"v");
    assert!(read_xattr(&p, "trusted.overlay.opaque").is_empty());
    assert_eq!(stats.dropped_xattrs, 1);
}

#[test]
fn a_missing_root_is_an_io_error() {
    let err = apply_layer(
        &[0u8; 1024][..],
        std::path::Path::new("/nonexistent/dunnage"),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn the_root_dot_entry_is_skipped_and_a_slash_entry_applies_as_docker_does() {
    require_root!();
    let t = TempDir::new("apply-rootdot").unwrap();
    for (i, name) in [&b"./"[..], b".", b""].iter().enumerate() {
        let root = t.join(format!("r{i}"));
        std::fs::create_dir(&root).unwrap();
        let tar = RawTar::new()
            .raw_entry(name, tar::EntryType::Directory, 0o700, b"", b"")
            .file("./f", b"x")
            .finish();
        apply_layer(&tar[..], &root, &ApplyOptions::default()).unwrap();
        let m = std::fs::metadata(&root).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o755, "{name:?}");
    }
    // Docker applies an absolute `/` directory entry to the root.
    let root = t.join("slash");
    std::fs::create_dir(&root).unwrap();
    let tar = RawTar::new()
        .raw_entry(b"/", tar::EntryType::Directory, 0o700, b"", b"")
        .finish();
    apply_layer(&tar[..], &root, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn a_pax_size_record_gives_the_size_when_the_header_says_zero() {
    require_root!();
    let t = TempDir::new("apply-paxsize").unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut tar = RawTar::new();
    tar.pax(&[("size", b"5000")])
        .raw_entry(b"big", tar::EntryType::Regular, 0o644, b"", b"");
    tar.0.extend_from_slice(&data);
    tar.0.resize(tar.0.len().div_ceil(512) * 512, 0);
    tar.file("after", b"a");
    let stats = apply_layer(&tar.finish()[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.join("big")).unwrap(), data);
    assert_eq!(std::fs::read(t.join("after")).unwrap(), b"a");
    assert_eq!(stats.bytes, 5001);
}

#[test]
fn a_regular_file_named_with_a_slash_is_a_file_and_an_old_style_one_a_directory() {
    require_root!();
    let t = TempDir::new("apply-slashfile").unwrap();
    let mut tar = RawTar::new();
    tar.raw_entry(b"x/", tar::EntryType::Regular, 0o644, b"", b"")
        .raw_entry(b"y/", tar::EntryType::Regular, 0o644, b"abc", b"");
    let at = tar.0.len();
    tar.raw_entry(b"z/", tar::EntryType::Regular, 0o755, b"", b"");
    // Type NUL (pre-POSIX regular file), checksum recomputed.
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar.0[at..at + 512]);
    h.as_mut_bytes()[156] = 0;
    h.set_cksum();
    tar.0[at..at + 512].copy_from_slice(h.as_bytes());
    let tar = tar.finish();
    apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert!(std::fs::symlink_metadata(t.join("x")).unwrap().is_file());
    assert_eq!(std::fs::read(t.join("y")).unwrap(), b"abc");
    assert!(std::fs::symlink_metadata(t.join("z")).unwrap().is_dir());
}

fn is_whiteout(p: &std::path::Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

#[test]
fn opaque_markers_never_hide_entries_of_their_own_layer() {
    require_root!();
    let t = TempDir::new("apply-opq-own").unwrap();
    // No `d/sub/` entry: OCI layers need not carry parents.
    let one = t.join("one");
    std::fs::create_dir(&one).unwrap();
    let tar = RawTar::new()
        .file("d/.wh..wh..opq", b"")
        .file("d/sub/file", b"keep")
        .finish();
    apply_layer(&tar[..], &one, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(one.join("d/sub/file")).unwrap(), b"keep");
    assert_eq!(read_xattr(&one.join("d"), "trusted.overlay.opaque"), b"y");
    // The marker reached through a symlink to a directory of the layer.
    let two = t.join("two");
    std::fs::create_dir(&two).unwrap();
    let tar = RawTar::new()
        .dir("d/")
        .file("d/file", b"keep")
        .symlink("alias", "d")
        .file("alias/.wh..wh..opq", b"")
        .finish();
    apply_layer(&tar[..], &two, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(two.join("d/file")).unwrap(), b"keep");
    assert_eq!(read_xattr(&two.join("d"), "trusted.overlay.opaque"), b"y");
    assert!(
        std::fs::symlink_metadata(two.join("alias"))
            .unwrap()
            .is_symlink()
    );
    // Onto an existing tree: lower entries go, the layer's stay, also in a
    // lower directory the layer wrote into.
    let three = t.join("three");
    std::fs::create_dir_all(three.join("d/sub")).unwrap();
    std::fs::write(three.join("d/lower"), b"l").unwrap();
    std::fs::write(three.join("d/sub/lower"), b"l").unwrap();
    std::fs::create_dir_all(three.join("d/gone/deeper")).unwrap();
    let tar = RawTar::new()
        .file("d/.wh..wh..opq", b"")
        .file("d/sub/file", b"keep")
        .file("d/.wh.ghost", b"")
        .finish();
    apply_layer(&tar[..], &three, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(three.join("d/sub/file")).unwrap(), b"keep");
    assert!(is_whiteout(&three.join("d/ghost")));
    for gone in ["d/lower", "d/sub/lower", "d/gone"] {
        assert!(!three.join(gone).exists(), "{gone}");
    }
}

#[test]
fn a_whiteout_never_replaces_an_entry_of_its_own_layer() {
    require_root!();
    let t = TempDir::new("apply-wh-own").unwrap();
    for (i, tar) in [
        RawTar::new().file("x", b"x").file(".wh.x", b"").finish(),
        RawTar::new()
            .dir("d/")
            .file("d/file", b"x")
            .symlink("alias", "d")
            .file("alias/.wh.file", b"")
            .finish(),
        RawTar::new()
            .file("d/file", b"x")
            .symlink("alias", "d")
            .file("alias/file", b"y")
            .finish(),
    ]
    .iter()
    .enumerate()
    {
        let root = t.join(format!("r{i}"));
        std::fs::create_dir(&root).unwrap();
        let err = apply_layer(&tar[..], &root, &ApplyOptions::default()).unwrap_err();
        assert!(matches!(err, Error::BadEntry { .. }), "{i}: {err}");
    }
}

#[test]
fn a_path_whited_out_then_added_again_in_one_layer_is_the_new_entry() {
    require_root!();
    let t = TempDir::new("apply-wh-readd").unwrap();
    std::fs::create_dir_all(t.join("d/lower-child")).unwrap();
    std::fs::write(t.join("x"), b"lower").unwrap();
    let tar = RawTar::new()
        .file(".wh.x", b"")
        .file("x", b"new")
        .file(".wh.d", b"")
        .dir("d/")
        .file("d/f", b"f")
        .finish();
    let stats = apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.join("x")).unwrap(), b"new");
    // Docker's tree: the directory is recreated plain (not opaque).
    assert!(t.join("d").is_dir() && !t.join("d/lower-child").exists());
    assert_eq!(std::fs::read(t.join("d/f")).unwrap(), b"f");
    assert!(read_xattr(&t.join("d"), "trusted.overlay.opaque").is_empty());
    assert_eq!(stats.whiteouts, 2);
    // A whiteout twice is still an error.
    let root = t.join("twice");
    std::fs::create_dir(&root).unwrap();
    let tar = RawTar::new().file(".wh.x", b"").file(".wh.x", b"").finish();
    assert!(apply_layer(&tar[..], &root, &ApplyOptions::default()).is_err());
}

#[test]
fn top_level_aufs_metadata_is_skipped_and_plnk_hardlinks_resolve() {
    require_root!();
    let t = TempDir::new("apply-aufs").unwrap();
    let tar = RawTar::new()
        .file(".wh..wh.aufs", b"")
        .dir(".wh..wh.orph/")
        .dir(".wh..wh.plnk/")
        .file(".wh..wh.plnk/123.456", b"plnk")
        .hardlink("x", ".wh..wh.plnk/123.456")
        .file("y", b"y")
        .finish();
    apply_layer(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".wh..wh.plnk", "x", "y"]);
    assert_eq!(std::fs::read(t.join("x")).unwrap(), b"plnk");
}

#[test]
fn a_hardlink_entry_applies_its_owner_and_mode_to_the_inode_as_docker_does() {
    require_root!();
    let t = TempDir::new("apply-hardlink-meta").unwrap();
    let mut tar = RawTar::new();
    tar.file("f", b"data");
    let at = tar.0.len();
    tar.hardlink("h", "f");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar.0[at..at + 512]);
    h.set_mode(0o600);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_234_567_890);
    h.set_cksum();
    tar.0[at..at + 512].copy_from_slice(h.as_bytes());
    apply_layer(&tar.finish()[..], t.path(), &ApplyOptions::default()).unwrap();
    for name in ["f", "h"] {
        let m = std::fs::symlink_metadata(t.join(name)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime(), m.nlink()),
            (0o600, 1234, 5678, 1_234_567_890, 2),
            "{name}"
        );
    }
}

#[test]
fn gnu_sparse_files_in_every_pax_version_are_expanded() {
    require_root!();
    let t = TempDir::new("apply-sparse").unwrap();
    let src = t.join("src");
    std::fs::create_dir(&src).unwrap();
    let mut content = vec![0u8; 300_000];
    content[100_000..100_005].copy_from_slice(b"hello");
    content[299_990..299_994].copy_from_slice(b"tail");
    content[5..10].copy_from_slice(b"start");
    // Written with holes, so GNU tar finds them.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(src.join("s")).unwrap();
        for (off, data) in [
            (5u64, &b"start"[..]),
            (100_000, b"hello"),
            (299_990, b"tail"),
        ] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(data).unwrap();
        }
        f.set_len(300_000).unwrap();
    }
    std::fs::write(src.join("after"), b"after").unwrap();
    for version in ["1.0", "0.1", "0.0"] {
        let tarball = t.join(format!("{version}.tar"));
        run(Command::new("tar")
            .args([
                "--sparse",
                "--format=pax",
                "--sparse-version",
                version,
                "-cf",
            ])
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .args(["s", "after"]));
        let out = t.join(format!("out-{version}"));
        std::fs::create_dir(&out).unwrap();
        let stats = apply_layer(
            std::fs::File::open(&tarball).unwrap(),
            &out,
            &ApplyOptions::default(),
        )
        .unwrap();
        assert!(
            std::fs::read(out.join("s")).unwrap() == content,
            "{version}"
        );
        assert_eq!(std::fs::read(out.join("after")).unwrap(), b"after");
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert_eq!(names.len(), 2, "{version}: {names:?}");
        assert!(stats.bytes < 300_000, "{version}: {stats:?}");
    }
}

#[test]
fn malformed_sparse_maps_are_refused() {
    require_root!();
    let t = TempDir::new("apply-sparse-bad").unwrap();
    let sparse = |map: &[u8], data: &[u8]| {
        let mut tar = RawTar::new();
        tar.pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"100"),
            ("GNU.sparse.name", b"s"),
        ]);
        let mut body = map.to_vec();
        body.resize(512, 0);
        body.extend_from_slice(data);
        tar.raw_entry(
            b"GNUSparseFile/s",
            tar::EntryType::Regular,
            0o644,
            &body,
            b"",
        );
        tar.finish()
    };
    // The good one first, then hostile variants.
    let good = t.join("good");
    std::fs::create_dir(&good).unwrap();
    apply_layer(
        &sparse(b"1\n10\n3\n", b"abc")[..],
        &good,
        &ApplyOptions::default(),
    )
    .unwrap();
    let mut want = vec![0u8; 100];
    want[10..13].copy_from_slice(b"abc");
    assert_eq!(std::fs::read(good.join("s")).unwrap(), want);
    for (i, (map, data)) in [
        (&b"1\n10\n3\n"[..], &b"abcd"[..]), // more data than fragments
        (b"1\n10\n4\n", b"abc"),            // less
        (b"1\n99\n3\n", b"abc"),            // beyond the size
        (b"2\n10\n3\n5\n1\n", b"abcd"),     // unsorted
        (b"x\n", b""),                      // not a number
        (b"99999999999999\n", b""),         // a count the data cannot hold
        (b"1\n-1\n3\n", b"abc"),            // negative
    ]
    .iter()
    .enumerate()
    {
        let root = t.join(format!("bad{i}"));
        std::fs::create_dir(&root).unwrap();
        let err = apply_layer(&sparse(map, data)[..], &root, &ApplyOptions::default());
        assert!(
            matches!(err, Err(Error::BadEntry { .. }) | Err(Error::Archive(_))),
            "{i}: {err:?}"
        );
    }
}

#[test]
fn symlinks_get_their_times_and_owner() {
    require_root!();
    let t = TempDir::new("apply-symlink-times").unwrap();
    let mut tar = RawTar::new();
    let at = tar.0.len();
    tar.symlink("l", "target");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar.0[at..at + 512]);
    h.set_uid(4321);
    h.set_gid(8765);
    h.set_mtime(1_234_567_890);
    h.set_cksum();
    tar.0[at..at + 512].copy_from_slice(h.as_bytes());
    apply_layer(&tar.finish()[..], t.path(), &ApplyOptions::default()).unwrap();
    let m = std::fs::symlink_metadata(t.join("l")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!((m.mtime(), m.uid(), m.gid()), (1_234_567_890, 4321, 8765));
}
