//! Diffs of upper directories made with `redirect_dir=on,metacopy=on`
//! (issue 17 item 3): for each change a container can make after renaming
//! a lower directory, the diff applied over the lowers must equal the
//! mounted overlay view (the truth).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dunnage_overlay::{ApplyOptions, DiffOptions, Mount, MountOptions, apply_layer, write_diff};
use dunnage_testsupport::{MountGuard, TempDir, require_root};

mod common;
use common::{read_xattr, set_xattr, snapshot};

/// A file capability: cap_net_bind_service permitted and effective
/// (`struct vfs_cap_data`, revision 2).
fn capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&[0u8; 12]);
    v
}

fn remove_xattr(p: &Path, name: &str) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    assert_eq!(
        r,
        0,
        "removexattr {name}: {}",
        std::io::Error::last_os_error()
    );
}

/// The lower layer every case starts from.
fn lower(dir: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    };
    w("olddir/sub/f", b"inside");
    w("olddir/top", b"top");
    w("bin/ping", b"\x7fELF not really");
    w("etc/tagged", b"tagged");
    w("etc/plain", b"plain");
    w("data.txt", b"aaaa");
    w("linkme", b"link target");
    std::fs::create_dir(dir.join("tagdir")).unwrap();
    set_xattr(&dir.join("bin/ping"), "security.capability", &capability());
    set_xattr(&dir.join("etc/tagged"), "user.keep", b"1");
    set_xattr(&dir.join("tagdir"), "user.dirattr", b"d");
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dir.join("data.txt"),
        &old,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
}

fn mv(m: &Path) {
    std::fs::rename(m.join("olddir"), m.join("newdir")).unwrap();
}

fn drop_capability(m: &Path) {
    remove_xattr(&m.join("bin/ping"), "security.capability");
}

fn set_user_xattrs(m: &Path) {
    set_xattr(&m.join("etc/plain"), "user.new", b"v");
    set_xattr(&m.join("newdir/sub"), "user.dir", b"w");
}

fn remove_user_xattrs(m: &Path) {
    remove_xattr(&m.join("etc/tagged"), "user.keep");
    remove_xattr(&m.join("tagdir"), "user.dirattr");
}

fn same_size_edit(m: &Path) {
    let p = m.join("data.txt");
    let before = std::fs::metadata(&p).unwrap();
    std::fs::write(&p, b"bbbb").unwrap();
    let t = rustix::fs::Timespec {
        tv_sec: before.mtime(),
        tv_nsec: before.mtime_nsec(),
    };
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(rustix::fs::CWD, &p, &ts, rustix::fs::AtFlags::empty()).unwrap();
    let after = std::fs::metadata(&p).unwrap();
    assert_eq!((after.len(), after.mtime()), (before.len(), before.mtime()));
}

fn new_hardlinks(m: &Path) {
    std::fs::hard_link(m.join("linkme"), m.join("newlink")).unwrap();
    std::fs::hard_link(m.join("linkme"), m.join("newdir/alsolink")).unwrap();
}

type Case = (&'static str, &'static [fn(&Path)]);

const CASES: &[Case] = &[
    ("mv dir dir2", &[mv]),
    ("removed security.capability", &[mv, drop_capability]),
    ("set user.* xattrs", &[mv, set_user_xattrs]),
    ("removed user.* xattrs", &[mv, remove_user_xattrs]),
    ("same-size same-mtime edit", &[mv, same_size_edit]),
    ("new hardlinks to a lower file", &[mv, new_hardlinks]),
    (
        "everything at once",
        &[
            mv,
            drop_capability,
            set_user_xattrs,
            remove_user_xattrs,
            same_size_edit,
            new_hardlinks,
        ],
    ),
];

/// The truth and the diff's result compared: the snapshot with directory
/// mtimes left out (a layer does not carry unchanged parents' times).
fn comparable(root: &Path) -> BTreeMap<String, String> {
    let mut s = snapshot(root, true);
    for d in s.values_mut().filter(|d| d.starts_with("dir")) {
        if let Some(i) = d.find(" mtime=") {
            d.truncate(i);
        }
    }
    s
}

fn run_case(t: &TempDir, i: usize, (name, steps): &Case) {
    let base = t.join(format!("c{i}"));
    let lower_dir = base.join("lower");
    for d in ["lower", "upper", "work", "merged", "layer", "view"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    lower(&lower_dir);
    let merged = base.join("merged");
    let mut m = Mount::new(&merged)
        .lower(&lower_dir)
        .upper(base.join("upper"), base.join("work"));
    m.options = MountOptions::parse("redirect_dir=on,metacopy=on").unwrap();
    m.mount().unwrap();
    let guard = MountGuard::new(&merged);
    for step in *steps {
        step(&merged);
    }
    let truth = comparable(&merged);
    drop(guard);
    let upper = base.join("upper");
    assert!(
        !read_xattr(&upper.join("newdir"), "trusted.overlay.redirect").is_empty(),
        "{name}: the rename left no redirect"
    );
    let opts = DiffOptions {
        lowers: vec![lower_dir.clone()],
        ..Default::default()
    };
    let tar = write_diff(&upper, Vec::new(), &opts).unwrap();
    apply_layer(&tar[..], &base.join("layer"), &ApplyOptions::default()).unwrap();
    let view = base.join("view");
    let m = Mount::new(&view)
        .lower(base.join("layer"))
        .lower(&lower_dir);
    m.mount().unwrap();
    let _g = MountGuard::new(&view);
    let got = comparable(&view);
    let diffs: Vec<String> = truth
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| truth.get(*k) != got.get(*k))
        .map(|k| format!("{k}: mounted {:?} / applied {:?}", truth.get(k), got.get(k)))
        .collect();
    assert!(diffs.is_empty(), "{name}:\n{}", diffs.join("\n"));
    if steps.contains(&(new_hardlinks as fn(&Path))) {
        let ino = |p: &str| std::fs::metadata(view.join(p)).unwrap().ino();
        assert_eq!(ino("linkme"), ino("newlink"), "{name}: hardlink kept");
        assert_eq!(
            ino("linkme"),
            ino("newdir/alsolink"),
            "{name}: hardlink kept"
        );
    }
}

#[test]
fn redirect_and_metacopy_diffs_applied_over_the_lowers_equal_the_mounted_view() {
    require_root!();
    let t = TempDir::new("ovredirect").unwrap();
    let mut failed = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(&t, i, case))).is_err()
        {
            failed.push(case.0);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn names_a_layer_cannot_carry_fail_the_redirect_diff_naming_the_upper_path() {
    require_root!();
    let t = TempDir::new("ovredirect-names").unwrap();
    let base = t.path();
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    lower(&base.join("lower"));
    let merged = base.join("merged");
    let mut m = Mount::new(&merged)
        .lower(base.join("lower"))
        .upper(base.join("upper"), base.join("work"));
    m.options = MountOptions::parse("redirect_dir=on,metacopy=on").unwrap();
    m.mount().unwrap();
    let guard = MountGuard::new(&merged);
    mv(&merged);
    std::fs::write(merged.join("newdir/.wh.top"), b"").unwrap();
    drop(guard);
    let opts = DiffOptions {
        lowers: vec![base.join("lower")],
        ..Default::default()
    };
    match write_diff(&base.join("upper"), Vec::new(), &opts) {
        Err(dunnage_overlay::Error::UnrepresentableName { path }) => {
            assert_eq!(path, base.join("upper/newdir/.wh.top"));
        }
        other => panic!("expected UnrepresentableName, got {other:?}"),
    }
}
