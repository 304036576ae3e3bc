//! The hostile-tar corpus: every case either fails with an error or writes
//! only inside the root, and a canary directory beside the root never
//! changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use dunnage_overlay::{ApplyOptions, ApplyStats, Error, apply_layer};
use dunnage_testsupport::{TempDir, require_root};
use tar::EntryType;

mod common;
use common::{RawTar, read_xattr, snapshot};

/// A temp dir holding `root/` (the apply target) and `canary/`.
struct Scene {
    t: TempDir,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        let t = TempDir::new(tag).unwrap();
        std::fs::create_dir_all(t.join("root")).unwrap();
        std::fs::create_dir_all(t.join("canary/sub")).unwrap();
        std::fs::write(t.join("canary/file"), b"canary").unwrap();
        std::fs::write(t.join("canary/sub/deep"), b"deep").unwrap();
        Scene { t }
    }
    fn root(&self) -> PathBuf {
        self.t.join("root")
    }
    /// Absolute path of the canary as a tar-name string.
    fn canary(&self) -> String {
        self.t.join("canary").to_str().unwrap().to_string()
    }
}

enum Expect {
    /// The apply fails.
    Error,
    /// The apply succeeds; the check sees the root.
    Contained(fn(&Path, &ApplyStats)),
    /// Either outcome is acceptable as long as nothing escapes.
    Either,
}

fn check(tag: &str, build: impl Fn(&Scene) -> Vec<u8>, expect: Expect) {
    check_with(tag, |_| {}, build, expect);
}

fn check_with(
    tag: &str,
    prepare: impl Fn(&Scene),
    build: impl Fn(&Scene) -> Vec<u8>,
    expect: Expect,
) {
    let s = Scene::new(tag);
    prepare(&s);
    let before = snapshot(&s.t.join("canary"), true);
    let siblings_before: Vec<_> = std::fs::read_dir(s.t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let tar = build(&s);
    let result = apply_layer(&tar[..], &s.root(), &ApplyOptions::default());
    assert_eq!(
        snapshot(&s.t.join("canary"), true),
        before,
        "{tag}: the canary changed"
    );
    let siblings_after: Vec<_> = std::fs::read_dir(s.t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        siblings_before, siblings_after,
        "{tag}: something appeared beside the root"
    );
    match (expect, result) {
        (Expect::Error, Err(e)) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "{tag}: error message {msg:?}"
            );
        }
        (Expect::Error, Ok(st)) => panic!("{tag}: expected an error, got {st:?}"),
        (Expect::Contained(f), Ok(st)) => f(&s.root(), &st),
        (Expect::Contained(_), Err(e)) => panic!("{tag}: expected success, got {e}"),
        (Expect::Either, _) => {}
    }
}

fn is_bad_entry(tag: &str, tar: &[u8], root: &Path) {
    let err = apply_layer(tar, root, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, Error::BadEntry { .. }), "{tag}: {err}");
}

macro_rules! hostile {
    ($name:ident, $build:expr, $expect:expr) => {
        #[test]
        fn $name() {
            require_root!();
            check(stringify!($name), $build, $expect);
        }
    };
}

hostile!(
    dotdot_name_is_refused,
    |_| RawTar::new().file("../canary/pwned", b"x").finish(),
    Expect::Error
);
hostile!(
    dotdot_in_the_middle_is_refused,
    |_| RawTar::new().file("a/../../canary/pwned", b"x").finish(),
    Expect::Error
);
hostile!(
    absolute_name_lands_inside_the_root,
    |s| RawTar::new()
        .file(&format!("{}/pwned", s.canary()), b"x")
        .finish(),
    Expect::Contained(|root, _| {
        let inside: Vec<_> = walk(root);
        assert!(
            inside.iter().any(|p| p.ends_with("canary/pwned")),
            "{inside:?}"
        );
    })
);
hostile!(
    relative_symlink_then_write_through_it,
    |_| RawTar::new()
        .symlink("link", "../canary")
        .file("link/pwned", b"x")
        .finish(),
    Expect::Either
);
hostile!(
    absolute_symlink_then_write_through_it,
    |s| RawTar::new()
        .symlink("link", &s.canary())
        .file("link/pwned", b"x")
        .finish(),
    Expect::Either
);
hostile!(
    symlink_to_root_dir_then_write_through_it,
    |_| RawTar::new()
        .symlink("up", "/")
        .dir("up/etc/")
        .file("up/etc/pwned", b"x")
        .finish(),
    Expect::Contained(|root, _| assert!(root.join("etc/pwned").is_file()))
);
hostile!(
    symlink_chain_escaping_in_two_steps,
    |_| RawTar::new()
        .symlink("a", "..")
        .symlink("b", "a/..")
        .file("b/canary/pwned", b"x")
        .finish(),
    Expect::Either
);
hostile!(
    hardlink_to_dotdot_target_is_refused,
    |_| RawTar::new().hardlink("h", "../canary/file").finish(),
    Expect::Error
);
hostile!(
    hardlink_to_absolute_outside_path_stays_inside,
    |s| RawTar::new()
        .hardlink("h", &format!("{}/file", s.canary()))
        .finish(),
    Expect::Error
);
hostile!(
    hardlink_through_a_symlinked_dir_stays_inside,
    |s| RawTar::new()
        .symlink("d", &s.canary())
        .hardlink("h", "d/file")
        .finish(),
    Expect::Error
);
hostile!(
    hardlink_then_write_through_it_is_a_duplicate,
    |_| RawTar::new()
        .file("f", b"a")
        .hardlink("h", "f")
        .file("h", b"overwrite")
        .finish(),
    Expect::Error
);
hostile!(
    hardlink_to_itself_is_refused,
    |_| RawTar::new().hardlink("h", "h").finish(),
    Expect::Error
);
hostile!(
    hardlink_to_a_directory_is_refused,
    |_| RawTar::new().dir("d/").hardlink("h", "d").finish(),
    Expect::Error
);
hostile!(
    symlink_named_dot_is_skipped_as_docker_skips_it,
    |_| RawTar::new().symlink(".", "/").file("f", b"x").finish(),
    Expect::Contained(|root, _| {
        assert!(std::fs::symlink_metadata(root).unwrap().is_dir());
        assert_eq!(walk(root), [root.join("f")]);
    })
);
hostile!(
    symlink_named_dot_slash_is_skipped_as_docker_skips_it,
    |_| RawTar::new().symlink("./", "/").finish(),
    Expect::Contained(|root, _| {
        assert!(std::fs::symlink_metadata(root).unwrap().is_dir());
        assert!(walk(root).is_empty());
    })
);
hostile!(
    symlink_named_slash_is_refused,
    |_| RawTar::new().symlink("/", "/tmp").finish(),
    Expect::Error
);
hostile!(
    file_named_root_is_refused,
    |_| RawTar::new().file("/", b"x").finish(),
    Expect::Error
);
hostile!(
    whiteout_of_dotdot_is_refused,
    |_| RawTar::new().file(".wh..", b"").finish(),
    Expect::Error
);
hostile!(
    whiteout_of_dot_is_refused,
    |_| RawTar::new().file("a/.wh..", b"").finish(),
    Expect::Error
);
hostile!(
    bare_whiteout_prefix_is_refused,
    |_| RawTar::new().file(".wh.", b"").finish(),
    Expect::Error
);
hostile!(
    reserved_whiteout_names_are_refused,
    |_| RawTar::new().file("d/.wh..wh.plnk", b"").finish(),
    Expect::Error
);
hostile!(
    aufs_names_that_are_not_aufs_metadata_are_refused,
    |_| RawTar::new()
        .file(".wh..wh.plnk", b"not a directory")
        .finish(),
    Expect::Error
);
hostile!(
    whiteout_under_a_symlinked_parent_stays_inside,
    |s| RawTar::new()
        .symlink("link", &s.canary())
        .file("link/.wh.file", b"")
        .finish(),
    Expect::Either
);
hostile!(
    opaque_marker_under_a_symlinked_parent_stays_inside,
    |_| RawTar::new()
        .symlink("link", "../canary")
        .file("link/.wh..wh..opq", b"")
        .finish(),
    Expect::Either
);
hostile!(
    device_nodes_are_created_inside_the_root,
    |_| {
        let mut t = RawTar::new();
        t.raw_entry(b"dev/sda", EntryType::Block, 0o660, b"", b"");
        t.raw_entry(b"dev/null", EntryType::Char, 0o666, b"", b"");
        t.raw_entry(b"dev/fifo", EntryType::Fifo, 0o600, b"", b"");
        t.finish()
    },
    Expect::Contained(|root, _| {
        assert!(
            std::fs::symlink_metadata(root.join("dev/sda"))
                .unwrap()
                .file_type()
                .is_block_device()
        );
        assert!(
            std::fs::symlink_metadata(root.join("dev/null"))
                .unwrap()
                .file_type()
                .is_char_device()
        );
        assert!(
            std::fs::symlink_metadata(root.join("dev/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
    })
);
hostile!(
    huge_pax_header_is_refused,
    |_| RawTar::new()
        .pax(&[("comment", &vec![b'x'; 2 << 20])])
        .file("f", b"x")
        .finish(),
    Expect::Error
);
hostile!(
    pax_header_claiming_a_terabyte_is_refused_without_reading_it,
    |_| {
        let mut t = RawTar::new();
        t.raw_entry(b"PaxHeader", EntryType::XHeader, 0o644, b"", b"");
        // Patch the size field to 1 TiB (octal) and fix the checksum.
        let h = tar::Header::from_byte_slice(&t.0[..512]).clone();
        let mut h = h;
        h.set_size(1 << 40);
        h.set_cksum();
        t.0[..512].copy_from_slice(h.as_bytes());
        t.0.clone()
    },
    Expect::Error
);
hostile!(
    huge_gnu_long_name_is_refused,
    |_| {
        let mut t = RawTar::new();
        t.raw_entry(
            b"././@LongLink",
            EntryType::GNULongName,
            0o644,
            &vec![b'a'; 2 << 20],
            b"",
        );
        t.file("short", b"x");
        t.finish()
    },
    Expect::Error
);
hostile!(
    pax_path_with_dotdot_is_refused,
    |_| RawTar::new()
        .pax(&[("path", b"../canary/pwned")])
        .file("innocent", b"x")
        .finish(),
    Expect::Error
);
hostile!(
    gnu_long_name_with_dotdot_is_refused,
    |_| {
        let mut t = RawTar::new();
        t.raw_entry(
            b"././@LongLink",
            EntryType::GNULongName,
            0o644,
            b"../../canary/pwned\0",
            b"",
        );
        t.file("innocent", b"x");
        t.finish()
    },
    Expect::Error
);
hostile!(
    pax_linkpath_escape_for_a_hardlink_is_refused,
    |_| RawTar::new()
        .pax(&[("linkpath", b"../canary/file")])
        .hardlink("h", "ok")
        .finish(),
    Expect::Error
);
hostile!(
    truncated_file_content_is_refused,
    |_| {
        let full = RawTar::new().file("f", &[7u8; 3000]).finish();
        full[..512 + 1000].to_vec()
    },
    Expect::Error
);
hostile!(
    truncated_header_is_refused,
    |_| RawTar::new().file("f", b"x").finish()[..300].to_vec(),
    Expect::Error
);
hostile!(
    missing_end_of_archive_is_accepted_as_docker_accepts_it,
    |_| RawTar::new().file("f", b"x").0.clone(),
    Expect::Contained(|root, _| assert_eq!(std::fs::read(root.join("f")).unwrap(), b"x"))
);
hostile!(
    empty_input_is_an_empty_layer,
    |_| Vec::new(),
    Expect::Contained(|root, _| assert!(walk(root).is_empty()))
);
hostile!(
    stream_ending_inside_a_header_is_refused,
    |_| {
        let mut t = RawTar::new().file("f", b"x").0.clone();
        t.extend_from_slice(&[0u8; 100]);
        t
    },
    Expect::Error
);
hostile!(
    duplicate_entries_are_refused,
    |_| RawTar::new().file("f", b"one").file("f", b"two").finish(),
    Expect::Error
);
hostile!(
    duplicates_spelled_differently_are_refused,
    |_| RawTar::new()
        .file("a/b", b"one")
        .file("./a//b", b"two")
        .finish(),
    Expect::Error
);
hostile!(
    whiteout_of_a_file_of_the_same_layer_is_refused,
    |_| RawTar::new().file("f", b"x").file(".wh.f", b"").finish(),
    Expect::Error
);
hostile!(
    smuggled_trusted_overlay_opaque_is_dropped,
    |_| RawTar::new()
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("d/")
        .finish(),
    Expect::Contained(|root, st| {
        assert!(read_xattr(&root.join("d"), "trusted.overlay.opaque").is_empty());
        assert_eq!(st.dropped_xattrs, 1);
    })
);
hostile!(
    smuggled_user_overlay_xattrs_are_dropped,
    |_| RawTar::new()
        .pax(&[
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc")
        ])
        .dir("d/")
        .finish(),
    Expect::Contained(|root, st| {
        assert!(common::xattr_names(&root.join("d")).is_empty());
        assert_eq!(st.dropped_xattrs, 2);
    })
);
hostile!(
    bad_header_checksum_is_refused,
    |_| {
        let mut t = RawTar::new().file("f", b"x").finish();
        t[0] = b'g';
        t
    },
    Expect::Error
);
hostile!(
    sparse_entries_are_refused,
    |_| RawTar::new()
        .raw_entry(b"sparse", EntryType::GNUSparse, 0o644, b"", b"")
        .finish(),
    Expect::Error
);
hostile!(
    unknown_entry_types_are_refused,
    |_| RawTar::new()
        .raw_entry(b"volume", EntryType::new(b'V'), 0o644, b"", b"")
        .finish(),
    Expect::Error
);
hostile!(
    pax_size_beyond_the_end_of_the_stream_is_refused,
    |_| RawTar::new()
        .pax(&[("size", b"99999")])
        .file("f", b"x")
        .finish(),
    Expect::Error
);
hostile!(
    garbage_uid_is_refused,
    |_| RawTar::new()
        .pax(&[("uid", b"-1")])
        .file("f", b"x")
        .finish(),
    Expect::Error
);
hostile!(
    dangling_extension_header_is_refused,
    |_| RawTar::new().pax(&[("path", b"f")]).finish(),
    Expect::Error
);

#[test]
fn a_symlink_already_in_the_tree_is_replaced_not_followed() {
    require_root!();
    check_with(
        "existing-symlink",
        |s| std::os::unix::fs::symlink(s.t.join("canary/file"), s.root().join("link")).unwrap(),
        |_| RawTar::new().file("link", b"overwrite").finish(),
        Expect::Contained(|root, _| {
            assert!(
                std::fs::symlink_metadata(root.join("link"))
                    .unwrap()
                    .is_file()
            );
        }),
    );
}

#[test]
fn a_symlinked_directory_already_in_the_tree_is_not_a_way_out() {
    require_root!();
    check_with(
        "existing-symlinked-dir",
        |s| std::os::unix::fs::symlink(s.t.join("canary"), s.root().join("sub")).unwrap(),
        |_| {
            RawTar::new()
                .file("sub/pwned", b"x")
                .file("sub/.wh.file", b"")
                .finish()
        },
        Expect::Either,
    );
}

#[test]
fn errors_name_the_offending_entry() {
    require_root!();
    let s = Scene::new("hostile-msg");
    let tar = RawTar::new().file("../canary/pwned", b"x").finish();
    let err = apply_layer(&tar[..], &s.root(), &ApplyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("../canary/pwned"), "{err}");
    is_bad_entry(
        "dup",
        &RawTar::new().file("f", b"1").file("f", b"2").finish(),
        &s.t.join("root"),
    );
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn owners_and_modes_need_no_privilege_when_same_owner_is_off() {
    require_root!();
    let s = Scene::new("hostile-owner");
    let tar = RawTar::new().file("f", b"x").finish();
    let opts = ApplyOptions {
        same_owner: false,
        ..Default::default()
    };
    apply_layer(&tar[..], &s.root(), &opts).unwrap();
    assert_eq!(std::fs::metadata(s.root().join("f")).unwrap().uid(), 0);
}

/// 800 layers drawn at random from hostile pieces (symlinks out of the root
/// and back, writes through them, hardlinks, whiteouts and opaque markers
/// through symlinks, re-added paths, root entries): whatever each does, the
/// canary beside the root never changes and nothing appears beside it.
#[test]
fn random_hostile_layers_write_nothing_outside_the_root() {
    require_root!();
    let mut rng = dunnage_testsupport::Rng::new(0x7a11);
    for round in 0..800 {
        let mut picks = Vec::new();
        for _ in 0..1 + rng.below(8) {
            picks.push((rng.below(20), rng.below(1 << 20)));
        }
        check(
            &format!("random-{round}"),
            |s| {
                let canary = s.canary();
                let mut t = RawTar::new();
                let names = ["a", "b", "d", "d/e", "l", "l/x", "."];
                for (i, (p, r)) in picks.iter().enumerate() {
                    let n = names[i % names.len()];
                    match p {
                        0 => t.symlink(n, &canary),
                        1 => t.symlink(n, "../../../canary"),
                        2 => t.symlink(n, "/"),
                        3 => t.file(&format!("{n}/file"), b"pwned"),
                        4 => t.file("l/file", b"pwned"),
                        5 => t.hardlink(n, &format!("{canary}/file")),
                        6 => t.hardlink("h", "l/file"),
                        7 => t.file(&format!("{n}/.wh.file"), b""),
                        8 => t.file(&format!("{n}/.wh..wh..opq"), b""),
                        9 => t.dir(&format!("{n}/")),
                        10 => t.symlink("l", &canary),
                        11 => t.file(".wh.l", b""),
                        12 => t.file("l/sub/deep", b"pwned"),
                        13 => t.symlink("l", "d"),
                        14 => t.raw_entry(b"./", EntryType::Directory, 0o700, b"", b""),
                        // A sparse member with a random (often bad) map.
                        16 => {
                            let map = format!("1\n{}\n{}\n", r % 4096, r % 7);
                            let mut body = map.into_bytes();
                            body.resize(512, 0);
                            body.extend(std::iter::repeat_n(b's', (*r % 9) as usize));
                            t.pax(&[
                                ("GNU.sparse.major", b"1"),
                                ("GNU.sparse.minor", b"0"),
                                ("GNU.sparse.realsize", b"4096"),
                                ("GNU.sparse.name", format!("{n}/sparse").as_bytes()),
                            ])
                            .raw_entry(
                                b"GNUSparseFile/x",
                                EntryType::Regular,
                                0o644,
                                &body,
                                b"",
                            )
                        }
                        // A PAX size record over a zero header size.
                        17 => {
                            let size = (r % 2000).to_string();
                            t.pax(&[("size", size.as_bytes())]).raw_entry(
                                n.as_bytes(),
                                EntryType::Regular,
                                0o644,
                                b"",
                                b"",
                            );
                            t.0.extend(std::iter::repeat_n(b'p', (r % 2000) as usize));
                            let len = t.0.len().div_ceil(512) * 512;
                            t.0.resize(len, 0);
                            &mut t
                        }
                        18 => t
                            .file(".wh..wh.plnk/1.2", b"plnk")
                            .hardlink(n, ".wh..wh.plnk/1.2"),
                        19 => t.file(&format!(".wh.{n}"), b"").file(n, b"again"),
                        _ => t.file(n, b"x"),
                    };
                }
                t.finish()
            },
            Expect::Either,
        );
    }
}

#[test]
fn a_size_field_near_u64_max_is_an_error_not_a_panic() {
    require_root!();
    for size in [u64::MAX, u64::MAX - 511, 1 << 62] {
        let mut h = tar::Header::new_gnu();
        h.set_path("f").unwrap();
        h.set_size(size);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(&[0u8; 2048]);
        let t = TempDir::new("hostile-hugesize").unwrap();
        assert!(apply_layer(&tar[..], t.path(), &ApplyOptions::default()).is_err());
        // As a PAX size record too.
        let mut pax = RawTar::new();
        pax.pax(&[("size", size.to_string().as_bytes())])
            .file("g", b"");
        assert!(apply_layer(&pax.finish()[..], t.path(), &ApplyOptions::default()).is_err());
    }
}

/// Real archives (GNU and PAX formats, a sparse file, long names, links)
/// with random bytes changed or cut: apply returns a result and writes
/// nothing outside the root.
#[test]
fn mutated_archives_write_nothing_outside_the_root() {
    require_root!();
    let t = TempDir::new("hostile-mutate-src").unwrap();
    let long = "d".repeat(150);
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mkdir -p a/{long} && printf hello > a/f && truncate -s 70000 a/s && printf x >> a/s && \
             ln -s f a/l && ln -s / a/root && ln a/f a/h && tar --format=pax --sparse -cf pax.tar a && \
             tar --format=gnu -cf gnu.tar a"
        ))
        .current_dir(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    let mut rng = dunnage_testsupport::Rng::new(0xbad);
    for base in ["pax.tar", "gnu.tar"] {
        let good = std::fs::read(t.join(base)).unwrap();
        for round in 0..250 {
            let mut m = good.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len() as u64) as usize;
                m[at] = rng.below(256) as u8;
            }
            if rng.below(4) == 0 {
                m.truncate(rng.below(m.len() as u64) as usize);
            }
            check(
                &format!("mutated-{base}-{round}"),
                |_| m.clone(),
                Expect::Either,
            );
        }
    }
}
