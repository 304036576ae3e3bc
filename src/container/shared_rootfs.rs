//! The rootfs of a container that shares the caller's mount namespace (an
//! OCI config without a mount namespace of its own): the child binds the
//! rootfs onto itself there and mounts `/proc`, `/dev`, the binds below
//! it, all visible to the host. They are undone by detaching that one
//! bind, recognised by its mount ID.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::container::error::{Result, io_err};
use crate::container::state::SharedRootfs;

/// Whether the caller shares the mount namespace the container's rootfs
/// is set up in (its mounts are in the caller's table).
pub(crate) fn shares_mount_namespace(spec: &crate::container::spec::Spec) -> bool {
    spec.join_namespaces.iter().any(|(name, path)| {
        name == "mnt" && crate::container::command::is_own_mount_namespace(path)
    })
}

/// The mount ID of the top mount at `rootfs` in the caller's mount
/// namespace, `None` when nothing is mounted exactly there.
pub(crate) fn top_mount(rootfs: &Path) -> Result<Option<u32>> {
    let Ok(rootfs) = std::fs::canonicalize(rootfs) else {
        return Ok(None);
    };
    let table = dunnage_base::mountinfo::read_self()
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    Ok(table
        .iter()
        .rev()
        .find(|m| m.mount_point == rootfs)
        .map(|m| m.mount_id))
}

/// Detach the top mount at `rootfs` (with everything below it) when its
/// mount ID is `id`; anything else there is left alone.
pub(crate) fn unmount_if(rootfs: &Path, id: u32) -> Result<()> {
    if top_mount(rootfs)? != Some(id) {
        return Ok(());
    }
    detach(rootfs)
}

/// Detach the top mount at `rootfs` when it is not `before` (the mount
/// that was there before the container's child ran, if any): the undo
/// of a create that failed after the child bound the rootfs.
pub(crate) fn unmount_newer(rootfs: &Path, before: Option<u32>) -> Result<()> {
    match top_mount(rootfs)? {
        Some(id) if Some(id) != before => detach(rootfs),
        _ => Ok(()),
    }
}

fn detach(rootfs: &Path) -> Result<()> {
    let rootfs = std::fs::canonicalize(rootfs).map_err(io_err("resolve", rootfs))?;
    let c = dunnage_base::cstr::cstring(rootfs.as_os_str()).map_err(io_err("unmount", &rootfs))?;
    // SAFETY: umount2 of a C string we own.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io_err("unmount", &rootfs)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The identity (device, inode) of the caller's mount namespace.
fn own_namespace() -> Option<(u64, u64)> {
    let id = dunnage_namespaces::NamespaceId::of_self(dunnage_namespaces::Kind::Mount).ok()?;
    Some((id.dev, id.ino))
}

/// What a create records after its child set the rootfs up: the new top
/// mount at `rootfs` (not `before`) and the caller's mount namespace.
pub(crate) fn record(rootfs: &Path, before: Option<u32>) -> Result<Option<SharedRootfs>> {
    let (Some(mount_id), Some((ns_dev, ns_ino))) = (top_mount(rootfs)?, own_namespace()) else {
        return Ok(None);
    };
    if Some(mount_id) == before {
        return Ok(None);
    }
    Ok(Some(SharedRootfs {
        mount_id,
        ns_dev,
        ns_ino,
    }))
}

/// Undo what [`record`] recorded: detach the rootfs bind when the caller
/// is in the namespace it was made in and it is still the top mount at
/// `rootfs`. From another mount namespace nothing is done.
pub(crate) fn unmount_recorded(rootfs: &Path, rec: &SharedRootfs) -> Result<()> {
    if own_namespace() != Some((rec.ns_dev, rec.ns_ino)) {
        return Ok(());
    }
    unmount_if(rootfs, rec.mount_id)
}

/// The file in a container's state directory that a create writes before
/// it spawns a child sharing its mount namespace: the namespace, the
/// mount that was on top of the rootfs before the child ran, and the
/// rootfs. A creator killed before `state.json` exists leaves the child's
/// mounts behind; this is what lets the store's repair find them.
pub(crate) const RECORD: &str = "shared-rootfs";

/// What [`RECORD`] holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Before {
    ns_dev: u64,
    ns_ino: u64,
    before: Option<u32>,
    rootfs: PathBuf,
}

impl Before {
    /// `DEV INO BEFORE\nROOTFS`, `BEFORE` being `-` when nothing was
    /// mounted at the rootfs; the path's bytes as they are.
    fn to_bytes(&self) -> Vec<u8> {
        let before = self.before.map_or("-".to_string(), |b| b.to_string());
        let mut out = format!("{} {} {before}\n", self.ns_dev, self.ns_ino).into_bytes();
        out.extend_from_slice(self.rootfs.as_os_str().as_bytes());
        out
    }

    /// The inverse of [`to_bytes`](Self::to_bytes); `None` for anything
    /// else.
    fn parse(bytes: &[u8]) -> Option<Before> {
        let nl = bytes.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..nl]).ok()?;
        let path = &bytes[nl + 1..];
        let mut it = head.split(' ');
        let ns_dev = it.next()?.parse().ok()?;
        let ns_ino = it.next()?.parse().ok()?;
        let before = match it.next()? {
            "-" => None,
            b => Some(b.parse().ok()?),
        };
        if it.next().is_some() || path.first() != Some(&b'/') || path.contains(&0) {
            return None;
        }
        Some(Before {
            ns_dev,
            ns_ino,
            before,
            rootfs: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        })
    }
}

/// Record in `dir` (the container's state directory) what is at `rootfs`
/// before a child sharing the caller's mount namespace sets it up.
pub(crate) fn write_record(dir: &Path, rootfs: &Path, before: Option<u32>) -> Result<()> {
    let rootfs = std::fs::canonicalize(rootfs).map_err(io_err("resolve", rootfs))?;
    let Some((ns_dev, ns_ino)) = own_namespace() else {
        return Ok(());
    };
    let rec = Before {
        ns_dev,
        ns_ino,
        before,
        rootfs,
    };
    let path = dir.join(RECORD);
    dunnage_base::fs::write_replace(&path, &rec.to_bytes(), 0o600).map_err(io_err("write", path))
}

/// Undo what a child sharing the caller's mount namespace mounted, as
/// recorded in `dir` by [`write_record`]: detach the mounts stacked at
/// the rootfs above the one that was there before. Returns whether there
/// was a readable record; from another mount namespace nothing is done.
pub(crate) fn unmount_from_record(dir: &Path) -> Result<bool> {
    let path = dir.join(RECORD);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let Some(rec) = Before::parse(&bytes) else {
        return Ok(false);
    };
    if own_namespace() != Some((rec.ns_dev, rec.ns_ino)) {
        return Ok(true);
    }
    // Each detach takes the top mount with everything below it in the
    // tree; a bounded loop, in case something keeps mounting there.
    for _ in 0..MAX_STACK {
        match top_mount(&rec.rootfs)? {
            Some(id) if Some(id) != rec.before => detach(&rec.rootfs)?,
            _ => break,
        }
    }
    Ok(true)
}

/// How many mounts [`unmount_from_record`] detaches at most.
const MAX_STACK: usize = 64;

#[cfg(test)]
mod tests {
    use super::Before;
    use std::path::PathBuf;

    #[test]
    fn record_round_trips_and_refuses_garbage() {
        let rec = Before {
            ns_dev: 4,
            ns_ino: 4026531841,
            before: Some(77),
            rootfs: PathBuf::from("/var/lib/x y/\nrootfs"),
        };
        assert_eq!(Before::parse(&rec.to_bytes()), Some(rec));
        let none = Before {
            ns_dev: 1,
            ns_ino: 2,
            before: None,
            rootfs: PathBuf::from("/r"),
        };
        assert_eq!(Before::parse(&none.to_bytes()), Some(none));
        for bad in [
            &b""[..],
            b"1 2 3",
            b"1 2 3\n",
            b"1 2 3\nrelative",
            b"1 2\n/r",
            b"1 2 3 4\n/r",
            b"x 2 3\n/r",
            b"1 2 -5\n/r",
            b"1 2 3\n/r\0x",
            b"\xff 2 3\n/r",
            b"99999999999999999999999 2 3\n/r",
        ] {
            assert_eq!(Before::parse(bad), None, "{bad:?}");
        }
    }
}
