//! Probing the kernel and the backing filesystem before using overlay.

use std::mem::MaybeUninit;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, RawDir};
use rustix::mount::FsOpenFlags;

use crate::error::{Error, Result, errno, io_err};

/// What the kernel's overlay filesystem offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `overlay` is listed in `/proc/filesystems` (or loads on demand).
    pub available: bool,
    /// The new mount API accepts `lowerdir+` (no page limit on lowers).
    pub lowerdir_append: bool,
    /// Module defaults from `/sys/module/overlay/parameters/*`
    /// (`redirect_dir`, `index`, `metacopy`, `xino_auto`, `nfs_export`),
    /// as `(name, value)`.
    pub defaults: Vec<(String, String)>,
}

/// Probe overlay's availability and features.
pub fn features() -> Features {
    let listed = std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| {
        s.lines()
            .any(|l| l.split_whitespace().last() == Some("overlay"))
    });
    // fsopen loads the module when it is not loaded yet.
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).ok();
    let lowerdir_append = fs
        .as_ref()
        .is_some_and(|fs| rustix::mount::fsconfig_set_string(fs, "lowerdir+", "/").is_ok());
    let mut defaults = Vec::new();
    for name in [
        "redirect_dir",
        "index",
        "metacopy",
        "xino_auto",
        "nfs_export",
    ] {
        if let Ok(v) = std::fs::read_to_string(format!("/sys/module/overlay/parameters/{name}")) {
            defaults.push((name.to_string(), v.trim().to_string()));
        }
    }
    Features {
        available: listed || fs.is_some(),
        lowerdir_append,
        defaults,
    }
}

/// Fail unless the kernel has overlay.
pub fn require_overlay() -> Result<Features> {
    let f = features();
    if f.available {
        Ok(f)
    } else {
        Err(Error::OverlayUnavailable(
            "no `overlay` in /proc/filesystems and fsopen(\"overlay\") failed".into(),
        ))
    }
}

/// The filesystem a directory lives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackingFs {
    /// `statfs` magic number.
    pub magic: u64,
    /// A name for well-known magics (`ext4`, `xfs`, `btrfs`, `tmpfs`, ...).
    pub name: &'static str,
    /// Whether `readdir` reports file types (`d_type`).
    pub d_type: bool,
}

/// Check that `dir` can hold overlay layers: its filesystem must report
/// `d_type` (xfs formatted with `ftype=0` does not) and must not itself be
/// overlayfs.
pub fn check_backing_fs(dir: &Path) -> Result<BackingFs> {
    let st = rustix::fs::statfs(dir).map_err(errno("statfs", dir))?;
    let magic = st.f_type as u64;
    let name = fs_name(magic);
    let d_type = supports_d_type(dir)?;
    if !d_type {
        let hint = if name == "xfs" {
            " (xfs formatted with ftype=0; reformat with ftype=1)"
        } else {
            ""
        };
        return Err(Error::UnsupportedBackingFs {
            path: dir.to_path_buf(),
            reason: format!("{name} does not report d_type{hint}"),
        });
    }
    if name == "overlay" {
        return Err(Error::UnsupportedBackingFs {
            path: dir.to_path_buf(),
            reason: "overlay cannot use an overlay directory as its upper layer".into(),
        });
    }
    Ok(BackingFs {
        magic,
        name,
        d_type,
    })
}

const PROBE_PREFIX: &str = ".dunnage-dtype-probe-";

/// Remove the d_type probe directories in `dir` left by processes that are
/// gone (killed while probing). Probes of live processes are left alone:
/// they may be probing right now.
pub(crate) fn remove_stale_probes(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("readdir", dir))? {
        let entry = entry.map_err(io_err("readdir", dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PROBE_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new("/proc").join(p.to_string()).exists());
        if !alive {
            let path = entry.path();
            match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &path)(e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether readdir in `dir` reports file types: an entry already there
/// with a type answers it (the usual case, a driver home with `l/` and
/// layers: nothing is created, as creating inodes is what costs most on a
/// busy file system); else a probe file is created and read back.
fn supports_d_type(dir: &Path) -> Result<bool> {
    if has_typed_entry(dir)? {
        return Ok(true);
    }
    probe_d_type(dir)
}

/// Whether one of the first entries of `dir` (not `.` or `..`) has a
/// known type.
fn has_typed_entry(dir: &Path) -> Result<bool> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("open", dir))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let mut it = RawDir::new(&fd, &mut buf);
    while let Some(e) = it.next() {
        let e = e.map_err(errno("getdents64", dir))?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." && e.file_type() != FileType::Unknown {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Create a probe file in `dir` and see whether readdir types it.
fn probe_d_type(dir: &Path) -> Result<bool> {
    // pid (for remove_stale_probes) and a per-process count: threads of one
    // process may probe the same directory at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!("{PROBE_PREFIX}{}-{n}", std::process::id()));
    std::fs::create_dir(&probe).map_err(io_err("mkdir", &probe))?;
    let result = (|| {
        std::fs::write(probe.join("f"), b"").map_err(io_err("create", &probe))?;
        let fd = rustix::fs::open(
            &probe,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("open", &probe))?;
        let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
        let mut it = RawDir::new(&fd, &mut buf);
        while let Some(e) = it.next() {
            let e = e.map_err(errno("getdents64", &probe))?;
            if e.file_name().to_bytes() == b"f" {
                return Ok(e.file_type() != FileType::Unknown);
            }
        }
        Ok(false)
    })();
    let _ = std::fs::remove_dir_all(&probe);
    result
}

fn fs_name(magic: u64) -> &'static str {
    match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlay",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_dir_supports_d_type() {
        let fs = check_backing_fs(&std::env::temp_dir()).unwrap();
        assert!(fs.d_type);
    }
}
