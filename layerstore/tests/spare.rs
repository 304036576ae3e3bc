//! Spare container layers (`dunnage_layerstore::spare`): a removed
//! container's untouched layer is kept and taken back by the next
//! container on the same image; anything else is deleted as before, and
//! broken or hostile spares are dropped by `open`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{assert_no_cache_dirs, cache_dirs, names, tar_of};
use dunnage_layerstore::spare::MAX_PER_PARENT;
use dunnage_layerstore::{ChainId, InitEntry, InitLayer, LayerStore};
use dunnage_testsupport::{TempDir, require_root};

fn store_with_image() -> (TempDir, LayerStore, ChainId) {
    let dir = TempDir::new("ls-spare").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    let image = store
        .register(
            &tar_of(&[("etc/", b""), ("etc/os", b"dunnage")])[..],
            None,
            None,
        )
        .unwrap();
    (dir, store, image.chain_id)
}

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("image/overlay2/layerdb")
}

fn children(dir: &TempDir, chain: &ChainId) -> Vec<String> {
    let d = db(dir).join("dunnage/children").join(chain.hex());
    if d.exists() { names(&d) } else { Vec::new() }
}

/// Create, mount, run `touch` on the merged root, unmount.
fn use_layer(store: &LayerStore, id: &str, chain: &ChainId, touch: impl FnOnce(&Path)) {
    store
        .create_rw(id, Some(chain), Some(&InitLayer::default()))
        .unwrap();
    let merged = store.mount_rw(id).unwrap();
    assert_eq!(std::fs::read(merged.join("etc/os")).unwrap(), b"dunnage");
    touch(&merged);
    store.unmount_rw(id).unwrap();
}

#[test]
fn untouched_layer_is_kept_and_taken_back_with_dockers_layout() {
    require_root!();
    let (dir, store, chain) = store_with_image();
    use_layer(&store, "c1", &chain, |_| {});
    let first = store.get_rw("c1").unwrap();
    let before = cache_dirs(dir.path());
    store.remove_rw("c1").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    assert!(store.list_rw().unwrap().is_empty());
    assert_eq!(
        children(&dir, &chain),
        [format!(
            "spare-{}",
            names(&db(&dir).join("dunnage/spares"))[0]
        )],
        "the entry is kept for the spare, under a name that is no child"
    );
    assert!(store.check_children_index().unwrap().is_empty());
    assert_eq!(cache_dirs(dir.path()), before, "driver directories kept");
    assert!(store.broken_spares().unwrap().is_empty());

    // The next container on the image takes it: same directories, the
    // record Docker's, the init layer whole, mountable again.
    use_layer(&store, "c2", &chain, |m| {
        assert!(m.join(".dockerenv").exists());
        assert!(m.join("dev/console").exists());
    });
    let second = store.get_rw("c2").unwrap();
    assert_eq!(second.mount_id, first.mount_id);
    assert_eq!(second.init_id, first.init_id);
    assert_eq!(second.parent, Some(chain));
    assert_eq!(store.spare_count().unwrap(), 0);
    assert_eq!(
        names(&db(&dir).join("mounts/c2")),
        ["init-id", "mount-id", "parent"]
    );
    assert_eq!(children(&dir, &chain), ["mount-c2"]);
    assert!(names(&db(&dir).join("tmp")).is_empty());

    // Removing it makes it a spare again; the image's last release drops
    // the spare with the layer.
    store.remove_rw("c2").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    store.release(&chain).unwrap();
    assert_eq!(store.spare_count().unwrap(), 0);
    assert_no_cache_dirs(dir.path());
    assert!(names(&db(&dir).join("tmp")).is_empty());
    assert!(children(&dir, &chain).is_empty());
}

#[test]
fn used_layers_are_deleted_not_kept() {
    require_root!();
    let (dir, store, chain) = store_with_image();
    let image_dirs = cache_dirs(dir.path());
    type Touch = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Touch)> = vec![
        (
            "wrote",
            Box::new(|m: &Path| std::fs::write(m.join("new"), b"x").unwrap()),
        ),
        (
            "deleted",
            Box::new(|m: &Path| std::fs::remove_file(m.join("etc/os")).unwrap()),
        ),
    ];
    for (id, touch) in cases {
        use_layer(&store, id, &chain, touch);
        store.remove_rw(id).unwrap();
        assert_eq!(store.spare_count().unwrap(), 0, "{id}");
        assert_eq!(cache_dirs(dir.path()), image_dirs, "{id}");
    }
    // No init layer, or another one: not kept, and a spare is not taken
    // for another init layer.
    store.create_rw("plain", Some(&chain), None).unwrap();
    store.remove_rw("plain").unwrap();
    assert_eq!(store.spare_count().unwrap(), 0);
    use_layer(&store, "kept", &chain, |_| {});
    store.remove_rw("kept").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    let other = InitLayer {
        entries: vec![InitEntry::File(PathBuf::from("other"))],
    };
    store
        .create_rw("other", Some(&chain), Some(&other))
        .unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    store.remove_rw("other").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    // An init layer changed on disk is not kept either.
    store.drop_spares().unwrap();
    use_layer(&store, "init-changed", &chain, |_| {});
    let rw = store.get_rw("init-changed").unwrap();
    let init_diff = store.driver().diff_dir(rw.init_id.as_deref().unwrap());
    std::fs::write(init_diff.join("etc/hosts"), b"changed").unwrap();
    store.remove_rw("init-changed").unwrap();
    assert_eq!(store.spare_count().unwrap(), 0);
    assert_eq!(cache_dirs(dir.path()), image_dirs);
}

/// What a container did to its root directory itself (mode, an extended
/// attribute, inode flags, times), and what it writes through a directory
/// it kept open past the (lazy) unmount, do not reach the next container
/// that takes its layer: a spare gets a new `diff` and `work`.
#[test]
fn a_spare_gets_a_new_root_and_late_writes_stay_behind() {
    require_root!();
    let (_dir, store, chain) = store_with_image();
    store
        .create_rw("a", Some(&chain), Some(&InitLayer::default()))
        .unwrap();
    let merged = store.mount_rw("a").unwrap();
    std::fs::set_permissions(&merged, std::fs::Permissions::from_mode(0o700)).unwrap();
    rustix::fs::setxattr(&merged, "user.x", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    let chattr = std::process::Command::new("chattr")
        .arg("+A")
        .arg(&merged)
        .status()
        .is_ok_and(|s| s.success());
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &merged, &old, rustix::fs::AtFlags::empty()).unwrap();
    let kept = std::fs::File::open(&merged).unwrap();
    store.unmount_rw("a").unwrap();
    let first = store.get_rw("a").unwrap();
    store.remove_rw("a").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);

    store
        .create_rw("b", Some(&chain), Some(&InitLayer::default()))
        .unwrap();
    assert_eq!(store.get_rw("b").unwrap().mount_id, first.mount_id);
    let merged = store.mount_rw("b").unwrap();
    // The first container's overlay still lives (its directory is open):
    // a write through it fails (its upper directory is unlinked) and in no
    // case lands in the second container's.
    use std::os::fd::AsRawFd;
    let late = PathBuf::from(format!("/proc/self/fd/{}/late", kept.as_raw_fd()));
    let _ = std::fs::write(&late, b"from a");
    assert!(!merged.join("late").exists(), "a late write reached b");
    let meta = std::fs::metadata(&merged).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    use std::os::unix::fs::MetadataExt;
    assert_ne!(meta.mtime(), 1_000_000_000);
    let mut buf = [0u8; 256];
    let n = rustix::fs::listxattr(&merged, &mut buf).unwrap();
    assert!(
        !buf[..n].split(|b| *b == 0).any(|x| x == b"user.x"),
        "the xattr came along"
    );
    if chattr {
        let flags = std::process::Command::new("lsattr")
            .arg("-d")
            .arg(&merged)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&flags.stdout);
        let attrs = text.split_whitespace().next().unwrap_or_default();
        assert!(!attrs.contains('A'), "noatime came along: {text}");
    }
    drop(kept);
    store.unmount_rw("b").unwrap();
    store.remove_rw("b").unwrap();
    store.drop_spares().unwrap();
}

#[test]
fn spares_are_bounded_and_an_unreferenced_parent_keeps_none() {
    require_root!();
    let (dir, store, chain) = store_with_image();
    let ids = ["b1", "b2", "b3", "b4"];
    for id in ids {
        store
            .create_rw(id, Some(&chain), Some(&InitLayer::default()))
            .unwrap();
    }
    for id in ids {
        store.remove_rw(id).unwrap();
    }
    assert_eq!(store.spare_count().unwrap(), MAX_PER_PARENT);
    // The image layer plus two driver directories per spare.
    assert_eq!(cache_dirs(dir.path()).len(), 1 + 2 * MAX_PER_PARENT);
    store.drop_spares().unwrap();
    assert_eq!(cache_dirs(dir.path()).len(), 1);

    // Released while a container sits on it: the container's removal
    // keeps no spare and the layer goes.
    store
        .create_rw("last", Some(&chain), Some(&InitLayer::default()))
        .unwrap();
    store.release(&chain).unwrap();
    store.remove_rw("last").unwrap();
    assert_eq!(store.spare_count().unwrap(), 0);
    assert_no_cache_dirs(dir.path());
}

#[test]
fn open_drops_broken_and_hostile_spares_and_half_taken_ones() {
    require_root!();
    let (dir, store, chain) = store_with_image();
    for id in ["s1", "s2"] {
        store
            .create_rw(id, Some(&chain), Some(&InitLayer::default()))
            .unwrap();
    }
    let s1 = store.get_rw("s1").unwrap();
    let s2 = store.get_rw("s2").unwrap();
    store.remove_rw("s1").unwrap();
    store.remove_rw("s2").unwrap();
    assert_eq!(store.spare_count().unwrap(), 2);
    let spares = db(&dir).join("dunnage/spares");
    // s1: its init layer's directory went (another program).
    std::fs::remove_dir_all(
        dir.path()
            .join("overlay2")
            .join(s1.init_id.as_deref().unwrap()),
    )
    .unwrap();
    // s2: taken by a process killed before the record reached mounts/
    // (staged in tmp/).
    let s2_spare = names(&spares)
        .into_iter()
        .map(|n| spares.join(n))
        .find(|p| std::fs::read_to_string(p.join("mount-id")).unwrap() == s2.mount_id)
        .unwrap();
    std::fs::rename(&s2_spare, db(&dir).join("tmp/mount-0123456789abcdef")).unwrap();
    // Hostile entries: a file, a name that is no parent, a record naming
    // a path outside the driver home, a parent that does not exist.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("diff")).unwrap();
    std::fs::write(spares.join("junk"), b"x").unwrap();
    for (name, mount_id) in [
        ("nodash", "x"),
        (&*format!("{}-1", "ab".repeat(32)), "z"),
        (&*format!("{}-2", chain.hex()), "../../outside"),
    ] {
        let d = spares.join(name);
        if std::fs::create_dir_all(&d).is_ok() {
            std::fs::write(d.join("mount-id"), mount_id).unwrap();
            std::fs::write(d.join("init-id"), format!("{mount_id}-init")).unwrap();
        }
    }
    assert!(store.broken_spares().unwrap().len() >= 5);
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert_eq!(store.spare_count().unwrap(), 0);
    assert!(names(&db(&dir).join("tmp")).is_empty());
    assert!(outside.join("diff").is_dir(), "nothing outside touched");
    assert_eq!(cache_dirs(dir.path()).len(), 1, "only the image layer");
    // The store still works, and keeps spares again.
    use_layer(&store, "after", &chain, |_| {});
    store.remove_rw("after").unwrap();
    assert_eq!(store.spare_count().unwrap(), 1);
    store.release(&chain).unwrap();
    assert_no_cache_dirs(dir.path());
}

#[test]
fn concurrent_creates_take_each_spare_once() {
    require_root!();
    let (dir, store, chain) = store_with_image();
    for id in ["p1", "p2"] {
        store
            .create_rw(id, Some(&chain), Some(&InitLayer::default()))
            .unwrap();
    }
    for id in ["p1", "p2"] {
        store.remove_rw(id).unwrap();
    }
    let store = std::sync::Arc::new(store);
    let made: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    let id = format!("t{i}");
                    store
                        .create_rw(&id, Some(&chain), Some(&InitLayer::default()))
                        .unwrap()
                        .mount_id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = made.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{made:?}");
    assert_eq!(store.spare_count().unwrap(), 0);
    for i in 0..4 {
        store.remove_rw(&format!("t{i}")).unwrap();
    }
    store.release(&chain).unwrap();
    assert_no_cache_dirs(dir.path());
}
