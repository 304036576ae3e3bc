//! The overlay2 driver directory: Docker's format, refcounted mounts,
//! repairs, and a directory written by a real dockerd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use dunnage_overlay::mount::is_mount_point;
use dunnage_overlay::{ApplyOptions, Driver, Error, apply_layer};
use dunnage_testsupport::{TempDir, require_root};

mod common;
use common::RawTar;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn create_writes_dockers_layout_and_modes() {
    require_root!();
    let t = TempDir::new("drv-layout").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    d.create("child", Some("base")).unwrap();
    d.create("grandchild", Some("child")).unwrap();
    assert_eq!(mode(&home), 0o710);
    assert_eq!(mode(&home.join("l")), 0o700);
    assert_eq!(mode(&home.join("base")), 0o710);
    assert_eq!(mode(&home.join("base/diff")), 0o755);
    assert_eq!(mode(&home.join("child/work")), 0o700);
    assert!(!home.join("base/work").exists());
    assert!(!home.join("base/lower").exists());
    let link = std::fs::read_to_string(home.join("base/link")).unwrap();
    assert_eq!(link.len(), 26);
    assert!(
        link.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(
        std::fs::read_link(home.join("l").join(&link))
            .unwrap()
            .to_str()
            .unwrap(),
        "../base/diff"
    );
    let child_link = std::fs::read_to_string(home.join("child/link")).unwrap();
    assert_eq!(
        std::fs::read_to_string(home.join("child/lower")).unwrap(),
        format!("l/{link}")
    );
    assert_eq!(
        std::fs::read_to_string(home.join("grandchild/lower")).unwrap(),
        format!("l/{child_link}:l/{link}")
    );
    assert_eq!(
        d.lower_dirs("grandchild").unwrap(),
        vec![home.join("child/diff"), home.join("base/diff")]
    );
    assert_eq!(d.list().unwrap(), vec!["base", "child", "grandchild"]);
    assert!(d.exists("child") && !d.exists("nope"));
    assert!(matches!(d.create("base", None), Err(Error::LayerExists(_))));
    assert!(matches!(d.create("../x", None), Err(Error::InvalidId(_))));
    d.mark_committed("base").unwrap();
    assert_eq!(mode(&home.join("base/committed")), 0o600);
    assert_eq!(
        std::fs::metadata(home.join("base/committed"))
            .unwrap()
            .size(),
        0
    );
}

#[test]
fn get_mounts_once_per_refcount_and_put_unmounts() {
    require_root!();
    let t = TempDir::new("drv-get").unwrap();
    let d = Driver::open(&t.join("overlay2")).unwrap();
    d.create("base", None).unwrap();
    let tar = RawTar::new().file("hello", b"from base").finish();
    apply_layer(&tar[..], &d.diff_dir("base"), &ApplyOptions::default()).unwrap();
    d.mark_committed("base").unwrap();
    // A base layer is its diff directory.
    assert_eq!(d.get("base").unwrap(), d.diff_dir("base"));
    d.put("base").unwrap();
    d.create("rw", Some("base")).unwrap();
    let merged = d.get("rw").unwrap();
    assert_eq!(merged, t.join("overlay2/rw/merged"));
    assert_eq!(d.get("rw").unwrap(), merged);
    assert_eq!(std::fs::read(merged.join("hello")).unwrap(), b"from base");
    std::fs::write(merged.join("new"), b"n").unwrap();
    assert_eq!(std::fs::read(d.diff_dir("rw").join("new")).unwrap(), b"n");
    assert!(matches!(d.remove("rw"), Err(Error::Busy(_))));
    d.put("rw").unwrap();
    assert!(is_mount_point(&merged).unwrap());
    d.put("rw").unwrap();
    assert!(!merged.exists());
    // A committed child mounts read-only, without an upper layer.
    d.mark_committed("rw").unwrap();
    let ro = d.get("rw").unwrap();
    assert_eq!(std::fs::read(ro.join("new")).unwrap(), b"n");
    assert!(std::fs::write(ro.join("other"), b"x").is_err());
    d.put("rw").unwrap();
    assert_eq!(d.diff_size("rw").unwrap(), 1);
    d.remove("rw").unwrap();
    assert!(!d.exists("rw"));
}

#[test]
fn open_repairs_links_and_detaches_stale_mounts() {
    require_root!();
    let t = TempDir::new("drv-repair").unwrap();
    let home = t.join("overlay2");
    let link;
    {
        let d = Driver::open(&home).unwrap();
        d.create("base", None).unwrap();
        d.create("rw", Some("base")).unwrap();
        d.get("rw").unwrap(); // never put: stale after the driver is gone
        link = d.link("base").unwrap();
    }
    std::fs::remove_file(home.join("l").join(&link)).unwrap();
    assert!(is_mount_point(&home.join("rw/merged")).unwrap());
    let d = Driver::open(&home).unwrap();
    assert!(!is_mount_point(&home.join("rw/merged")).unwrap());
    assert_eq!(
        std::fs::read_link(home.join("l").join(&link))
            .unwrap()
            .to_str()
            .unwrap(),
        "../base/diff"
    );
    assert_eq!(d.lower_dirs("rw").unwrap(), vec![home.join("base/diff")]);
}
