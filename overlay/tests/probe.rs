//! Backing filesystem checks on real loop-mounted images: xfs `ftype=1` is
//! accepted; filesystems without `d_type` (xfs `ftype=0`, ext4 without the
//! `filetype` feature) are refused with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_overlay::probe::check_backing_fs;
use dunnage_overlay::{Driver, Error};
use dunnage_testsupport::{TempDir, detach_unmount, require_command, require_root};

/// A filesystem image attached to a loop device and mounted; unmounted
/// and detached on drop.
struct ImageMount {
    dir: PathBuf,
    dev: String,
    mounted: bool,
}

impl Drop for ImageMount {
    fn drop(&mut self) {
        if self.mounted
            && !matches!(Command::new("umount").arg(&self.dir).status(), Ok(s) if s.success())
        {
            let _ = detach_unmount(&self.dir);
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Why [`mount_image`] gave no mount (the guard is dropped).
enum NoImage {
    /// No loop device could be attached (none left, or none in this
    /// container): the test cannot run here.
    Loop(String),
    /// The kernel would not mount the image.
    Mount(String),
}

/// Make `<t>/<name>.img` with `mkfs.<fstype> <mkfs_args>`, attach and mount
/// it.
fn mount_image(
    t: &TempDir,
    name: &str,
    fstype: &str,
    mkfs_args: &[&str],
) -> Result<ImageMount, NoImage> {
    let img = t.join(format!("{name}.img"));
    // 300 MiB: mkfs.xfs's smallest data section; the file stays sparse.
    std::fs::File::create(&img)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let out = Command::new(format!("mkfs.{fstype}"))
        .arg("-q")
        .args(mkfs_args)
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.{fstype} {mkfs_args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&img)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(NoImage::Loop(one_line(&out.stderr)));
    }
    let mut m = ImageMount {
        dir: t.join(name),
        dev: String::from_utf8(out.stdout).unwrap().trim().to_string(),
        mounted: false,
    };
    std::fs::create_dir(&m.dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", fstype])
        .arg(&m.dev)
        .arg(&m.dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(NoImage::Mount(one_line(&out.stderr)));
    }
    m.mounted = true;
    Ok(m)
}

fn one_line(stderr: &[u8]) -> String {
    let why = String::from_utf8_lossy(stderr);
    why.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The mount, or `None` after printing why `test` is skipped: loop devices
/// unavailable, or (for filesystems this kernel should mount) a mount
/// refused, which in a container usually means the same.
fn mount_or_skip(
    test: &str,
    t: &TempDir,
    name: &str,
    fstype: &str,
    mkfs_args: &[&str],
) -> Option<ImageMount> {
    match mount_image(t, name, fstype, mkfs_args) {
        Ok(m) => Some(m),
        Err(NoImage::Loop(why)) => {
            eprintln!("SKIPPED {test}: no loop device could be attached (losetup: {why})");
            None
        }
        Err(NoImage::Mount(why)) => {
            eprintln!(
                "SKIPPED {test}: the loop-mounted {fstype} image could not be mounted: {why}"
            );
            None
        }
    }
}

fn assert_refused(dir: &Path, e: Error, hint: &str) {
    match e {
        Error::UnsupportedBackingFs { path, reason } => {
            assert_eq!(path, dir);
            assert!(reason.contains(hint), "{reason}");
        }
        other => panic!("expected UnsupportedBackingFs, got {other}"),
    }
}

#[test]
fn xfs_with_ftype_1_is_accepted() {
    require_root!();
    require_command!("mkfs.xfs");
    require_command!("losetup");
    let t = TempDir::new("xfs-ftype1").unwrap();
    let Some(m) = mount_or_skip(
        "xfs_with_ftype_1_is_accepted",
        &t,
        "ftype1",
        "xfs",
        &["-f", "-n", "ftype=1"],
    ) else {
        return;
    };
    let fs = check_backing_fs(&m.dir).unwrap();
    assert_eq!((fs.name, fs.d_type), ("xfs", true));
    let d = Driver::open(&m.dir.join("overlay2")).unwrap();
    d.create("base", None).unwrap();
    assert!(d.exists("base"));
    // The probe leaves nothing behind.
    let mut names: Vec<_> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["overlay2"]);
}

#[test]
fn xfs_with_ftype_0_is_refused_with_a_clear_error() {
    require_root!();
    require_command!("mkfs.xfs");
    require_command!("losetup");
    let t = TempDir::new("xfs-ftype0").unwrap();
    // ftype=0 exists only in the V4 format (crc=0).
    let m = match mount_image(&t, "ftype0", "xfs", &["-f", "-m", "crc=0", "-n", "ftype=0"]) {
        Ok(m) => m,
        Err(NoImage::Loop(why)) => {
            eprintln!(
                "SKIPPED xfs_with_ftype_0_is_refused_with_a_clear_error: no loop device could \
                 be attached (losetup: {why})"
            );
            return;
        }
        Err(NoImage::Mount(why)) => {
            // Not a privilege problem: kernels built without
            // CONFIG_XFS_SUPPORT_V4 cannot mount any ftype=0 filesystem,
            // so overlay can never meet one there.
            eprintln!(
                "SKIPPED xfs_with_ftype_0_is_refused_with_a_clear_error: the kernel refuses to \
                 mount an xfs V4 (crc=0, ftype=0) image: {why}"
            );
            return;
        }
    };
    let e = check_backing_fs(&m.dir).unwrap_err();
    assert_refused(
        &m.dir,
        e,
        "xfs does not report d_type (xfs formatted with ftype=0",
    );
    let home = m.dir.join("overlay2");
    let e = Driver::open(&home).unwrap_err();
    let message = e.to_string();
    assert!(
        !message.contains('\n') && message.contains("d_type"),
        "{message}"
    );
    assert_refused(&home, e, "ftype=0");
}

#[test]
fn ext4_without_file_types_in_directories_is_refused() {
    require_root!();
    require_command!("mkfs.ext4");
    require_command!("losetup");
    // The same refusal as xfs ftype=0, on a filesystem this kernel mounts:
    // without the `filetype` feature readdir reports DT_UNKNOWN.
    let t = TempDir::new("ext4-nofiletype").unwrap();
    let Some(m) = mount_or_skip(
        "ext4_without_file_types_in_directories_is_refused",
        &t,
        "nofiletype",
        "ext4",
        &["-F", "-O", "^filetype"],
    ) else {
        return;
    };
    let e = check_backing_fs(&m.dir).unwrap_err();
    assert_refused(&m.dir, e, "ext4 does not report d_type");
    let home = m.dir.join("overlay2");
    assert_refused(&home, Driver::open(&home).unwrap_err(), "d_type");
    // The probe left nothing but the driver home (and mkfs's lost+found).
    let mut names: Vec<_> = std::fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["lost+found", "overlay2"]);
}

#[test]
fn threads_open_one_home_at_once() {
    require_root!();
    let t = TempDir::new("probe-threads").unwrap();
    let home = t.join("overlay2");
    std::thread::scope(|s| {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..20 {
                        Driver::open(&home).unwrap();
                    }
                })
            })
            .collect();
        for o in opens {
            o.join().unwrap();
        }
    });
}

#[test]
fn open_removes_probes_of_dead_processes_only() {
    require_root!();
    let t = TempDir::new("probe-stale").unwrap();
    let home = t.join("overlay2");
    Driver::open(&home).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = home.join(format!(".dunnage-dtype-probe-{dead}-0"));
    let old_style = home.join(".dunnage-dtype-probe-garbage");
    let live = home.join(format!(
        ".dunnage-dtype-probe-{}-999999",
        std::process::id()
    ));
    for d in [&stale, &old_style, &live] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("f"), b"").unwrap();
    }
    Driver::open(&home).unwrap();
    assert!(!stale.exists());
    assert!(!old_style.exists());
    assert!(live.exists(), "a live process may be probing");
}

/// A directory whose entries already report their types answers the
/// check by itself: nothing is created (here it could not be, the
/// directory being a read-only mount); an empty one is probed.
#[test]
fn a_typed_entry_answers_the_check_without_a_probe() {
    require_root!();
    let t = TempDir::new("dtype-entries").unwrap();
    let full = t.join("full");
    std::fs::create_dir_all(full.join("l")).unwrap();
    let empty = t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (dir, ok) in [(&full, true), (&empty, false)] {
        let ro = t.join(format!("ro-{}", dir.file_name().unwrap().to_str().unwrap()));
        std::fs::create_dir(&ro).unwrap();
        dunnage_overlay::mount::bind_read_only(dir, &ro).unwrap();
        let _g = dunnage_testsupport::MountGuard::new(&ro);
        let r = check_backing_fs(&ro);
        assert_eq!(r.is_ok(), ok, "{}: {r:?}", ro.display());
        if let Ok(fs) = r {
            assert!(fs.d_type);
        }
    }
    // Writable and empty: the probe runs and leaves nothing.
    assert!(check_backing_fs(&empty).unwrap().d_type);
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}
