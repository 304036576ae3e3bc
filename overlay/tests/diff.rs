//! Diffing upper directories: round trips through real mounts, tar format
//! details, changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_overlay::{
    ApplyOptions, ChangeKind, DiffOptions, Mount, apply_layer, changes, write_diff,
};
use dunnage_testsupport::{MountGuard, TempDir, require_root};

mod common;
use common::{populate, run, snapshot};

/// Entries of a tar as (type byte, name, link name, size).
fn listing(tar: &[u8]) -> Vec<(u8, String, String, u64)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                h.entry_type().as_byte(),
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default(),
                e.size(),
            )
        })
        .collect()
}

struct Stack {
    t: TempDir,
    lowers: Vec<PathBuf>,
    _guard: MountGuard,
}

/// Two lower layers (populated tree + a second layer), an upper, mounted.
fn stack(tag: &str) -> Stack {
    let t = TempDir::new(tag).unwrap();
    let l1 = t.join("l1");
    let l2 = t.join("l2");
    for d in [
        &l1,
        &l2,
        &t.join("upper"),
        &t.join("work"),
        &t.join("merged"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    populate(&l1);
    std::fs::create_dir_all(l2.join("var/cache")).unwrap();
    std::fs::write(l2.join("var/cache/a"), b"a").unwrap();
    std::fs::write(l2.join("var/cache/b"), b"b").unwrap();
    let lowers = vec![l2, l1];
    let mut m = Mount::new(t.join("merged")).upper(t.join("upper"), t.join("work"));
    m.lowers = lowers.clone();
    m.mount().unwrap();
    Stack {
        _guard: MountGuard::new(t.join("merged")),
        t,
        lowers,
    }
}

/// Change the merged view in every way a container can.
fn mutate(merged: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(merged.join("etc/hostname"), b"changed\n").unwrap();
    std::fs::remove_file(merged.join("etc/passwd")).unwrap();
    std::fs::remove_file(merged.join("empty")).unwrap();
    std::fs::remove_dir_all(merged.join("var/cache")).unwrap();
    std::fs::create_dir(merged.join("var/cache")).unwrap();
    std::fs::write(merged.join("var/cache/fresh"), b"fresh").unwrap();
    std::fs::create_dir_all(merged.join("new/dir")).unwrap();
    std::fs::write(merged.join("new/dir/file"), vec![1u8; 5000]).unwrap();
    std::fs::hard_link(merged.join("new/dir/file"), merged.join("new/hard")).unwrap();
    std::os::unix::fs::symlink("dir/file", merged.join("new/sym")).unwrap();
    std::fs::set_permissions(
        merged.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let long = format!("new/{}", "n".repeat(200));
    std::fs::write(merged.join(long), b"long").unwrap();
    run(Command::new("mkfifo").arg(merged.join("new/fifo")));
}

#[test]
fn applying_the_diff_onto_the_lowers_reproduces_the_merged_view() {
    require_root!();
    let s = stack("diff-roundtrip");
    let merged = s.t.join("merged");
    mutate(&merged);
    let expected = snapshot(&merged, true);
    let tar = write_diff(&s.t.join("upper"), Vec::new(), &DiffOptions::default()).unwrap();
    let layer = s.t.join("layer");
    std::fs::create_dir(&layer).unwrap();
    apply_layer(&tar[..], &layer, &ApplyOptions::default()).unwrap();
    std::fs::create_dir(s.t.join("view")).unwrap();
    let mut m = Mount::new(s.t.join("view")).lower(&layer);
    m.lowers.extend(s.lowers.iter().cloned());
    m.mount().unwrap();
    let _g = MountGuard::new(s.t.join("view"));
    assert_eq!(snapshot(&s.t.join("view"), true), expected);
    // And the applied layer is the upper directory again.
    assert_eq!(snapshot(&layer, true), snapshot(&s.t.join("upper"), true));
}

#[test]
fn whiteouts_opaque_dirs_and_hardlinks_are_spelled_the_oci_way() {
    require_root!();
    let s = stack("diff-format");
    mutate(&s.t.join("merged"));
    let tar = write_diff(&s.t.join("upper"), Vec::new(), &DiffOptions::default()).unwrap();
    let l = listing(&tar);
    let find = |name: &str| {
        l.iter()
            .find(|e| e.1 == name)
            .unwrap_or_else(|| panic!("{name} missing in {l:?}"))
    };
    // Whiteouts: empty regular files, never hardlinks, even when the kernel
    // shares one whiteout inode.
    let wh1 = find("etc/.wh.passwd");
    let wh2 = find(".wh.empty");
    assert_eq!((wh1.0, wh1.3, wh2.0, wh2.3), (b'0', 0, b'0', 0));
    let dir_pos = l.iter().position(|e| e.1 == "var/cache/").unwrap();
    assert_eq!(l[dir_pos + 1].1, "var/cache/.wh..wh..opq");
    let hard = l
        .iter()
        .filter(|e| e.1 == "new/hard" || e.1 == "new/dir/file")
        .collect::<Vec<_>>();
    assert_eq!(hard.len(), 2);
    assert!(hard.iter().any(|e| e.0 == b'1'));
    // Deterministic: a second diff is byte-identical; parents come first.
    let again = write_diff(&s.t.join("upper"), Vec::new(), &DiffOptions::default()).unwrap();
    assert_eq!(tar, again);
    let names: Vec<&str> = l.iter().map(|e| e.1.as_str()).collect();
    let sorted_ok = names
        .windows(2)
        .all(|w| !w[1].trim_end_matches('/').is_empty());
    assert!(sorted_ok);
    assert!(
        names.iter().position(|n| *n == "new/").unwrap()
            < names.iter().position(|n| *n == "new/dir/file").unwrap()
    );
    assert!(l.iter().any(|e| e.1.len() > 200), "long name via PAX");
}

#[test]
fn gnu_tar_reads_our_diff_like_we_do() {
    require_root!();
    let s = stack("diff-gnutar");
    mutate(&s.t.join("merged"));
    // Whiteouts make an upper directory; GNU tar sees them as plain files.
    let tar = write_diff(&s.t.join("upper"), Vec::new(), &DiffOptions::default()).unwrap();
    std::fs::write(s.t.join("d.tar"), &tar).unwrap();
    let listed = run(Command::new("tar").arg("-tf").arg(s.t.join("d.tar")));
    let listed = String::from_utf8(listed).unwrap();
    let ours: Vec<String> = listing(&tar).into_iter().map(|e| e.1).collect();
    let theirs: Vec<String> = listed.lines().map(str::to_string).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn changes_report_added_modified_and_deleted_paths() {
    require_root!();
    let s = stack("diff-changes");
    mutate(&s.t.join("merged"));
    let ch = changes(&s.t.join("upper"), &s.lowers).unwrap();
    let get = |p: &str| ch.iter().find(|c| c.path == Path::new(p)).map(|c| c.kind);
    assert_eq!(get("/etc/hostname"), Some(ChangeKind::Modified));
    assert_eq!(get("/etc"), Some(ChangeKind::Modified));
    assert_eq!(get("/etc/passwd"), Some(ChangeKind::Deleted));
    assert_eq!(get("/new"), Some(ChangeKind::Added));
    assert_eq!(get("/new/dir/file"), Some(ChangeKind::Added));
    assert_eq!(get("/var/cache/fresh"), Some(ChangeKind::Added));
    assert_eq!(
        ch.iter()
            .find(|c| c.path == Path::new("/etc/passwd"))
            .unwrap()
            .to_string(),
        "D /etc/passwd"
    );
    let mut sorted = ch.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(ch, sorted);
}

#[test]
fn size_counts_each_inode_once_and_symlinks_by_target() {
    require_root!();
    let t = TempDir::new("diff-size").unwrap();
    std::fs::write(t.join("a"), b"123456").unwrap();
    std::fs::write(t.join("b"), b"12").unwrap();
    std::fs::create_dir(t.join("d")).unwrap();
    std::fs::write(t.join("d/c"), b"12").unwrap();
    std::fs::hard_link(t.join("a"), t.join("d/a-again")).unwrap();
    std::os::unix::fs::symlink("abc", t.join("s")).unwrap();
    dunnage_overlay::whiteout::create_whiteout(&t.join("gone")).unwrap();
    assert_eq!(dunnage_overlay::diff_size(t.path()).unwrap(), 6 + 2 + 2 + 3);
    assert_eq!(std::fs::symlink_metadata(t.join("gone")).unwrap().size(), 0);
}

#[test]
fn diff_of_an_empty_upper_is_an_empty_layer() {
    require_root!();
    let t = TempDir::new("diff-empty").unwrap();
    let tar = write_diff(t.path(), Vec::new(), &DiffOptions::default()).unwrap();
    assert_eq!(tar, vec![0u8; 1024]);
    let mut buf = Vec::new();
    (&tar[..]).read_to_end(&mut buf).unwrap();
}

/// An overlay mounted with redirect_dir=on and metacopy=on, so renames of
/// lower directories and chmods of lower files leave marks instead of data.
fn redirect_stack(tag: &str) -> Stack {
    let t = TempDir::new(tag).unwrap();
    let l1 = t.join("l1");
    for d in [&l1, &t.join("upper"), &t.join("work"), &t.join("merged")] {
        std::fs::create_dir_all(d).unwrap();
    }
    populate(&l1);
    std::fs::create_dir_all(l1.join("olddir/sub")).unwrap();
    std::fs::write(l1.join("olddir/sub/f"), b"inside").unwrap();
    let lowers = vec![l1];
    let mut m = Mount::new(t.join("merged")).upper(t.join("upper"), t.join("work"));
    m.lowers = lowers.clone();
    m.options = dunnage_overlay::MountOptions::parse("redirect_dir=on,metacopy=on").unwrap();
    m.mount().unwrap();
    Stack {
        _guard: MountGuard::new(t.join("merged")),
        t,
        lowers,
    }
}

#[test]
fn redirected_and_metacopy_uppers_are_diffed_against_their_lowers() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let s = redirect_stack("diff-redirect");
    let merged = s.t.join("merged");
    std::fs::rename(merged.join("olddir"), merged.join("newdir")).unwrap();
    std::fs::set_permissions(
        merged.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(merged.join("added"), b"a").unwrap();
    let upper = s.t.join("upper");
    assert!(!common::read_xattr(&upper.join("newdir"), "trusted.overlay.redirect").is_empty());
    assert!(std::fs::metadata(upper.join("usr/bin/tool")).unwrap().len() == 70_000);
    let expected = snapshot(&merged, true);
    // Without lowers the upper directory cannot be diffed.
    assert!(matches!(
        write_diff(&upper, Vec::new(), &DiffOptions::default()),
        Err(dunnage_overlay::Error::NeedsLowers { .. })
    ));
    let opts = DiffOptions {
        lowers: s.lowers.clone(),
        ..Default::default()
    };
    let tar = write_diff(&upper, Vec::new(), &opts).unwrap();
    let names: Vec<String> = listing(&tar).into_iter().map(|e| e.1).collect();
    assert!(names.contains(&".wh.olddir".to_string()), "{names:?}");
    assert!(names.contains(&"newdir/sub/f".to_string()), "{names:?}");
    assert!(
        names.contains(&"usr/".to_string()) && names.contains(&"usr/bin/tool".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("etc")),
        "unchanged entries are left out: {names:?}"
    );
    let layer = s.t.join("layer");
    std::fs::create_dir(&layer).unwrap();
    apply_layer(&tar[..], &layer, &ApplyOptions::default()).unwrap();
    std::fs::create_dir(s.t.join("view")).unwrap();
    let mut m = Mount::new(s.t.join("view")).lower(&layer);
    m.lowers.extend(s.lowers.iter().cloned());
    m.mount().unwrap();
    let _g = MountGuard::new(s.t.join("view"));
    let mut got = snapshot(&s.t.join("view"), true);
    let mut want = expected;
    // Directory mtimes of unchanged parents are not part of a layer.
    for v in [&mut got, &mut want] {
        for d in v.values_mut().filter(|d| d.starts_with("dir")) {
            d.truncate(d.find(" mtime=").unwrap());
        }
    }
    assert_eq!(got, want);
}
