//! The overlay2 driver directory: Docker's format, refcounted mounts,
//! repairs, and a directory written by a real dockerd.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use dunnage_overlay::mount::is_mount_point;
use dunnage_overlay::{ApplyOptions, Driver, Error, MountMethod, apply_layer};
use dunnage_testsupport::{MountGuard, TempDir, require_command, require_root};

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

#[test]
fn open_leaves_a_merged_mount_it_did_not_make_alone() {
    // A dockerd sharing the data-root mounts `<id>/merged` for a running
    // container: no dunnage process holds it, yet it is not stale.
    require_root!();
    let t = TempDir::new("drv-foreign").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    d.create("rw", Some("base")).unwrap();
    let m = d.mount_description("rw").unwrap().unwrap();
    std::fs::create_dir_all(&m.target).unwrap();
    m.mount().unwrap();
    drop(d);
    let _d = Driver::open(&home).unwrap();
    assert!(is_mount_point(&home.join("rw/merged")).unwrap());
    dunnage_overlay::unmount(&home.join("rw/merged")).unwrap();
}

#[test]
fn a_chain_of_128_layers_mounts_with_mount2_through_the_short_links() {
    require_root!();
    let t = TempDir::new("drv-chain128").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    // 64-hex-digit ids, as Docker's, so that absolute names cannot fit.
    let ids: Vec<String> = (0..=128u32)
        .map(|i| format!("{:064x}", 0xd0_0000 + i))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        d.create(id, i.checked_sub(1).map(|p| ids[p].as_str()))
            .unwrap();
        std::fs::write(d.diff_dir(id).join(format!("f{i:03}")), b"").unwrap();
    }
    let top = &ids[128];
    let m = d.mount_description(top).unwrap().unwrap();
    assert_eq!(m.lowers.len(), 128);
    // Printed like `docker inspect`: the layers' diff directories...
    assert_eq!(m.lowers[0], d.diff_dir(&ids[127]));
    assert!(m.to_string().contains(&format!(
        "\"LowerDir\":\"{}:",
        d.diff_dir(&ids[127]).display()
    )));
    // ...given to the kernel as Docker's l/ links.
    assert_eq!(
        m.mount_lowers[0],
        home.join("l").join(d.link(&ids[127]).unwrap())
    );
    assert_eq!(
        m.mount_lowers[127],
        home.join("l").join(d.link(&ids[0]).unwrap())
    );
    assert!(m.data().len() > 4096, "absolute names exceed a page");
    // Without the short links the relative names do not fit either.
    let mut long = m.clone();
    long.mount_lowers.clear();
    assert!(matches!(
        long.mount_with(MountMethod::Legacy),
        Err(Error::InvalidMount(_))
    ));
    std::fs::create_dir(&m.target).unwrap();
    m.mount_with(MountMethod::Legacy).unwrap();
    let guard = MountGuard::new(&m.target);
    let mut names: Vec<String> = std::fs::read_dir(&m.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = (0..=128).map(|i| format!("f{i:03}")).collect();
    assert_eq!(names, want);
    std::fs::write(m.target.join("new"), b"n").unwrap();
    assert_eq!(std::fs::read(d.diff_dir(top).join("new")).unwrap(), b"n");
    drop(guard);
    // get() mounts the same chain (new mount API where the kernel has it).
    let merged = d.get(top).unwrap();
    assert!(merged.join("f000").exists() && merged.join("new").exists());
    d.put(top).unwrap();
}

#[test]
fn drivers_of_one_home_share_mount_refcounts() {
    require_root!();
    let t = TempDir::new("drv-shared").unwrap();
    let home = t.join("overlay2");
    // flock locks belong to open files, so two drivers in one process
    // behave like drivers in two processes.
    let a = Driver::open(&home).unwrap();
    a.create("base", None).unwrap();
    a.create("rw", Some("base")).unwrap();
    let b = Driver::open(&home).unwrap();
    let merged = a.get("rw").unwrap();
    assert_eq!(b.get("rw").unwrap(), merged);
    // A driver opened now leaves the live mount alone and cannot remove it.
    let c = Driver::open(&home).unwrap();
    assert!(is_mount_point(&merged).unwrap());
    assert!(matches!(c.remove("rw"), Err(Error::Busy(_))));
    a.put("rw").unwrap();
    assert!(is_mount_point(&merged).unwrap(), "b still holds it");
    std::fs::write(merged.join("x"), b"x").unwrap();
    b.put("rw").unwrap();
    assert!(!is_mount_point(&merged).unwrap());
    assert!(!merged.exists());
    // A holder that goes away without put (a process that died) leaves a
    // mount that nobody holds: the next get reuses it, its put unmounts.
    b.get("rw").unwrap();
    drop(b);
    assert!(is_mount_point(&merged).unwrap());
    c.get("rw").unwrap();
    c.put("rw").unwrap();
    assert!(!is_mount_point(&merged).unwrap());
    c.remove("rw").unwrap();
}

#[test]
fn a_layer_held_by_another_process_stays_mounted() {
    require_root!();
    require_command!("flock");
    let t = TempDir::new("drv-other-proc").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    d.create("rw", Some("base")).unwrap();
    let merged = d.get("rw").unwrap();
    // Another process takes the shared lock a driver's get holds.
    let mut child = KillOnDrop(
        std::process::Command::new("flock")
            .args(["--shared", "--no-fork"])
            .arg(home.join("rw"))
            .args(["sh", "-c", "echo locked; exec sleep 600"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    d.put("rw").unwrap();
    assert!(
        is_mount_point(&merged).unwrap(),
        "the other process holds it"
    );
    // Reopening (as a restarted daemon would) keeps it too.
    drop(d);
    let d = Driver::open(&home).unwrap();
    assert!(is_mount_point(&merged).unwrap());
    assert!(matches!(d.remove("rw"), Err(Error::Busy(_))));
    // Once that process is gone the mount is stale: open detaches it.
    drop(child);
    let d = Driver::open(&home).unwrap();
    assert!(!is_mount_point(&merged).unwrap());
    d.remove("rw").unwrap();
}

/// A child process killed and reaped on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_owned_mount_survives_open_and_remove_until_put_owned() {
    require_root!();
    let t = TempDir::new("drv-owned").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    std::fs::write(d.diff_dir("base").join("f"), b"base").unwrap();
    d.mark_committed("base").unwrap();
    d.create("rw", Some("base")).unwrap();
    assert_eq!(d.mount_point("rw").unwrap(), None);
    let merged = d.get_owned("rw", "container-1").unwrap();
    let _g = MountGuard::new(&merged);
    assert_eq!(d.mount_point("rw").unwrap(), Some(merged.clone()));
    assert_eq!(d.mount_owner("rw").unwrap().as_deref(), Some("container-1"));
    assert_eq!(
        std::fs::read_to_string(home.join("rw/mount-owner")).unwrap(),
        "container-1"
    );
    // No process holds it, yet a fresh open leaves it mounted; remove
    // and is_busy see the owner.
    drop(d);
    let d = Driver::open(&home).unwrap();
    assert!(is_mount_point(&merged).unwrap());
    assert_eq!(std::fs::read(merged.join("f")).unwrap(), b"base");
    assert!(d.is_busy("rw").unwrap());
    assert!(matches!(d.remove("rw"), Err(Error::Busy(_))));
    // get_owned again: the same mount, no second one.
    assert_eq!(d.get_owned("rw", "container-1").unwrap(), merged);
    d.put_owned("rw").unwrap();
    assert_eq!(d.mount_point("rw").unwrap(), None);
    assert!(!merged.exists());
    assert_eq!(d.mount_owner("rw").unwrap(), None);
    d.put_owned("rw").unwrap(); // not owned: nothing to do
    d.remove("rw").unwrap();
    assert!(matches!(d.mount_owner("rw"), Err(Error::NoSuchLayer(_))));
    // An invalid id is refused before anything is written.
    assert!(matches!(d.get_owned("../x", "c"), Err(Error::InvalidId(_))));
}

/// The mount options of `target` from /proc/self/mountinfo (the
/// superblock options, last field).
fn super_options(target: &std::path::Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(t))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn an_ephemeral_layer_mounts_volatile_and_mounts_again_after_a_clean_unmount() {
    require_root!();
    let t = TempDir::new("drv-ephemeral").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    std::fs::write(d.diff_dir("base").join("f"), b"base").unwrap();
    d.mark_committed("base").unwrap();
    d.create_ephemeral("init", Some("base")).unwrap();
    d.mark_committed_ephemeral("init").unwrap();
    d.create_ephemeral("rw", Some("init")).unwrap();
    d.create("durable", Some("base")).unwrap();
    // Docker's layout all the same, plus the marker.
    assert_eq!(mode(&home.join("rw")), 0o710);
    assert_eq!(mode(&home.join("rw/work")), 0o700);
    assert!(home.join("rw/volatile").is_file());
    assert!(home.join("init/committed").is_file());
    assert!(!home.join("durable/volatile").exists());
    let m = d.mount_description("rw").unwrap().unwrap();
    assert!(m.options.volatile);
    assert!(
        !d.mount_description("durable")
            .unwrap()
            .unwrap()
            .options
            .volatile
    );
    // Mounted volatile; both ways of mounting and unmounting leave it
    // mountable again (the kernel refuses a volatile upper whose
    // work/work/incompat/volatile is left).
    for round in 0..2 {
        let merged = if round == 0 {
            d.get_owned("rw", "c").unwrap()
        } else {
            d.get("rw").unwrap()
        };
        let _g = MountGuard::new(&merged);
        assert!(super_options(&merged).contains("volatile"), "round {round}");
        std::fs::write(merged.join("new"), b"x").unwrap();
        assert_eq!(std::fs::read(merged.join("f")).unwrap(), b"base");
        assert!(home.join("rw/work/work/incompat/volatile").is_dir());
        if round == 0 {
            d.put_owned("rw").unwrap();
        } else {
            d.put("rw").unwrap();
        }
        assert!(!is_mount_point(&merged).unwrap());
        assert!(!home.join("rw/work/work/incompat/volatile").exists());
    }
    assert_eq!(std::fs::read(d.diff_dir("rw").join("new")).unwrap(), b"x");
    d.remove("rw").unwrap();
    d.remove("init").unwrap();
    assert!(!home.join("rw").exists());
}

#[test]
fn open_read_only_changes_nothing() {
    require_root!();
    let t = TempDir::new("drv-readonly").unwrap();
    let home = t.join("overlay2");
    let d = Driver::open(&home).unwrap();
    d.create("base", None).unwrap();
    d.create("child", Some("base")).unwrap();
    let link = d.link("base").unwrap();
    std::fs::remove_file(home.join("l").join(&link)).unwrap();
    drop(d);
    let ro = Driver::open_read_only(&home);
    assert_eq!(ro.list().unwrap(), ["base", "child"]);
    assert!(
        !home.join("l").join(&link).exists(),
        "read-only open repaired"
    );
    drop(ro);
    Driver::open(&home).unwrap();
    assert!(home.join("l").join(&link).exists(), "open repairs");
    assert!(!t.join("missing").exists());
    let _ = Driver::open_read_only(&t.join("missing"));
    assert!(
        !t.join("missing").exists(),
        "read-only open created the home"
    );
}

#[test]
fn mount_read_only_stacks_a_300_layer_chain_at_any_target() {
    require_root!();
    let t = TempDir::new("drv-ro-deep").unwrap();
    let home = t.join("over:lay2,x");
    let d = Driver::open(&home).unwrap();
    let mut parent: Option<String> = None;
    for i in 0..300 {
        let id = format!("layer{i}");
        d.create(&id, parent.as_deref()).unwrap();
        std::fs::write(d.diff_dir(&id).join(format!("f{i}")), i.to_string()).unwrap();
        d.mark_committed(&id).unwrap();
        parent = Some(id);
    }
    let target = t.join("target");
    std::fs::create_dir(&target).unwrap();
    let m = d.read_only_mount("layer299", &target).unwrap().unwrap();
    assert_eq!(m.lowers.len(), 300);
    assert!(m.mount_lowers.iter().all(|l| l.starts_with(home.join("l"))));
    d.mount_read_only("layer299", &target).unwrap();
    let _g = MountGuard::new(&target);
    for i in 0..300 {
        assert_eq!(
            std::fs::read_to_string(target.join(format!("f{i}"))).unwrap(),
            i.to_string()
        );
    }
    assert!(std::fs::write(target.join("new"), b"x").is_err());
    dunnage_overlay::unmount(&target).unwrap();
    // A base layer: a read-only bind mount of its diff.
    assert!(d.read_only_mount("layer0", &target).unwrap().is_none());
    d.mount_read_only("layer0", &target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("f0")).unwrap(), "0");
    assert!(std::fs::write(target.join("new"), b"x").is_err());
    dunnage_overlay::unmount(&target).unwrap();
    assert!(matches!(
        d.mount_read_only("nosuch", &target),
        Err(Error::NoSuchLayer(_))
    ));
}
