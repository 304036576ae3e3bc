//! Mounts owned by a record on disk instead of by a process, and the
//! side-effect-free "is it mounted, and where" query.
//!
//! # On-disk protocol: `<home>/<id>/mount-owner`
//! [`Driver::get_owned`] writes the file `<home>/<id>/mount-owner` (mode
//! 0600, the owner's name as its content, written atomically but not
//! fsynced: a crash of the machine ends the mount anyway) and then
//! mounts the layer at `<home>/<id>/merged`. The file, not a process, owns
//! that mount from then on, so the mount outlives the process that made it
//! (an OCI runtime's `create`, a detached run). [`Driver::put_owned`]
//! removes the file and then unmounts, unless some process still holds a
//! [`Driver::get`] of the layer.
//!
//! Repair rules, applied by every writer under the layer's mutex (the
//! exclusive `flock` on `<home>/<id>/diff`):
//! - [`Driver::open`] never unmounts an owned `merged` mount; it detaches
//!   only mounts that no live process holds and no record owns.
//! - The last [`Driver::put`] leaves an owned mount in place.
//! - [`Driver::remove`] refuses an owned layer ([`Error::Busy`]).
//! - A record whose mount is gone (after a reboot, or someone unmounted it
//!   by hand) stays: the layer is still owned, the next `get_owned` mounts
//!   it again, and `put_owned` removes the record.
//! - A crash between writing the record and mounting leaves an owned layer
//!   without a mount: the same case as above.
//!
//! Docker ignores the file (its overlay2 driver reads only `diff`, `link`,
//! `lower`, `work` and `merged`) and removes it with the layer.

use std::path::{Path, PathBuf};

use crate::driver::{Driver, lock_layer, mkdir_mode};
use crate::error::{Error, Result, io_err};

/// The owner record's name in a layer directory.
const OWNER_FILE: &str = "mount-owner";

/// Whether the layer directory `layer` has an owner record.
pub(crate) fn is_owned(layer: &Path) -> bool {
    layer.join(OWNER_FILE).symlink_metadata().is_ok()
}

impl Driver {
    /// Mount the layer like [`get`](Driver::get), but owned by the record
    /// `<home>/<id>/mount-owner` (holding `owner`, for people reading the
    /// directory) instead of by this process: the mount stays when the
    /// process exits, until [`put_owned`](Driver::put_owned). Calling it
    /// again while owned replaces the owner's name and mounts again only if
    /// the mount is gone. Returns the merged directory, or the diff
    /// directory of a base layer (recorded as owned all the same).
    pub fn get_owned(&self, id: &str, owner: &str) -> Result<PathBuf> {
        let _refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let m = self.mount_description(id)?;
        let dir = self.layer_dir(id)?;
        let _mutex = lock_layer(&dir)?;
        let record = dir.join(OWNER_FILE);
        let fresh = !is_owned(&dir);
        // Not fsynced: a crash of the machine ends the mount it records.
        // A new record is created in place (a process killed midway leaves
        // it empty: owned all the same, which is what counts); an existing
        // one is replaced atomically.
        if fresh {
            let dirfd = rustix::fs::open(
                &dir,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(crate::error::errno("open", &dir))?;
            dunnage_base::fs::create_new_at(&dirfd, OWNER_FILE.as_ref(), owner.as_bytes(), 0o600)
                .map_err(io_err("write", &record))?;
        } else {
            crate::driver::write_file_unsynced(&record, owner.as_bytes(), 0o600)?;
        }
        let Some(m) = m else {
            return Ok(self.diff_dir(id));
        };
        let mounted = (|| {
            mkdir_mode(&m.target, 0o700, true)?;
            if !crate::mount::is_mount_point(&m.target)? {
                m.mount()?;
            }
            Ok(())
        })();
        if let Err(e) = mounted {
            if fresh {
                let _ = std::fs::remove_file(&record);
            }
            return Err(e);
        }
        Ok(m.target)
    }

    /// Release the ownership [`get_owned`](Driver::get_owned) recorded:
    /// remove the record, then unmount `merged/` and remove it unless a
    /// [`get`](Driver::get) of this or another process still holds the
    /// layer. When unmounting fails the record is written back (the layer
    /// stays owned; call again). A layer that is not owned is not an error.
    pub fn put_owned(&self, id: &str) -> Result<()> {
        let refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.layer_dir(id)?;
        let _mutex = lock_layer(&dir)?;
        let record = dir.join(OWNER_FILE);
        let owner = match std::fs::read(&record) {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", &record)(e)),
        };
        std::fs::remove_file(&record).map_err(io_err("unlink", &record))?;
        if refs.contains_key(id) || crate::driver::has_holders(&dir)? {
            return Ok(());
        }
        let merged = dir.join("merged");
        let released = (|| {
            if crate::mount::is_mount_point(&merged)? {
                crate::mount::unmount(&merged)?;
                crate::driver::clear_volatile(&dir);
            }
            match std::fs::remove_dir(&merged) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("rmdir", &merged)(e)),
            }
        })();
        if released.is_err() {
            let _ = crate::driver::write_file_unsynced(&record, &owner, 0o600);
        }
        released
    }

    /// The owner name recorded by [`get_owned`](Driver::get_owned), or
    /// `None` when the layer's mount is not owned by a record. Reads only.
    pub fn mount_owner(&self, id: &str) -> Result<Option<String>> {
        let dir = self.layer_dir(id)?;
        if !dir.is_dir() {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let record = dir.join(OWNER_FILE);
        match std::fs::read(&record) {
            Ok(o) => Ok(Some(String::from_utf8_lossy(&o).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &record)(e)),
        }
    }

    /// Where the layer is mounted: `Some(<home>/<id>/merged)` when that
    /// directory is a mount point in this process's mount namespace (read
    /// from `/proc/self/mountinfo`), else `None`. Reads only: no lock, no
    /// repair.
    pub fn mount_point(&self, id: &str) -> Result<Option<PathBuf>> {
        let dir = self.layer_dir(id)?;
        if !dir.is_dir() {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let merged = dir.join("merged");
        let mounts =
            dunnage_base::mountinfo::read_self().map_err(io_err("read", "/proc/self/mountinfo"))?;
        Ok(mounts
            .iter()
            .any(|m| m.mount_point == merged)
            .then_some(merged))
    }

    /// The read-only mount of the layer and all its parents at `target`,
    /// lowers given to the kernel as short links (see
    /// [`mount_description`](Driver::mount_description)); `None` for a base
    /// layer, which has nothing to stack.
    pub fn read_only_mount(&self, id: &str, target: &Path) -> Result<Option<crate::Mount>> {
        if !self.exists(id) {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let entries = self.lower_entries(id)?;
        if entries.is_empty() {
            return Ok(None);
        }
        let mut m = crate::Mount::new(target);
        m.read_only = true;
        m.lowers.push(self.diff_dir(id));
        m.mount_lowers.push(
            self.home()
                .join(crate::driver::LINK_DIR)
                .join(self.link(id)?),
        );
        m.lowers.extend(self.resolve_lowers(id, &entries)?);
        m.mount_lowers
            .extend(entries.iter().map(|e| self.home().join(e)));
        Ok(Some(m))
    }

    /// Mount the layer and its parents read-only at `target`, a directory
    /// of the caller's: an overlay of [`read_only_mount`](Driver::read_only_mount)
    /// (new mount API, one `lowerdir+` per layer, so neither the number of
    /// layers nor `:` or `,` in the home's path matter), or a read-only
    /// bind mount of the diff directory for a base layer. The driver keeps
    /// no record of it: the caller owns it and unmounts it.
    pub fn mount_read_only(&self, id: &str, target: &Path) -> Result<()> {
        match self.read_only_mount(id, target)? {
            Some(m) => m.mount(),
            None => crate::mount::bind_read_only(&self.diff_dir(id), target),
        }
    }
}
