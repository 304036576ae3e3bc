//! The rootfs of a container that shares the caller's mount namespace (an
//! OCI config without a mount namespace of its own): the child binds the
//! rootfs onto itself there and mounts `/proc`, `/dev`, the binds below
//! it, all visible to the host. They are undone by detaching that one
//! bind, recognised by its mount ID.

use std::path::Path;

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
