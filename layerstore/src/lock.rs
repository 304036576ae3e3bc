//! File locks shared by every process that opens a store (`flock(2)`).
//!
//! - The store lock `layerdb/dunnage/lock`: held shared while a layer is
//!   committed or referenced, exclusive while layers are removed or leftovers
//!   cleaned up.
//! - Per-layer and per-container locks `layerdb/dunnage/locks/<name>`: held
//!   exclusive around a read-modify-write of one reference count or mount.
//! - Mount locks `layerdb/dunnage/locks/mounted-<chainID hex>`: held shared
//!   by every process that has the chain mounted (`mount_chain`), so that no
//!   process removes a layer another one (or itself) has mounted. They die
//!   with their process.
//!
//! Every lock file is opened and locked under the store lock (shared or
//! exclusive), and lock files are unlinked only under the exclusive store
//! lock, once their layer or container is gone: so no process can be
//! holding or waiting on a lock file another process unlinks.
//!
//! A lock belongs to its open file description: threads of one process
//! exclude each other just as processes do.

use std::fs::File;
use std::path::Path;

pub(crate) use dunnage_base::lock::{FileLock, LockKind};

use crate::error::{Error, io_err};

/// Lock `path` (created 0600 if missing, never through a symlink), waiting
/// as long as needed.
pub(crate) fn lock(path: &Path, kind: LockKind) -> Result<FileLock, Error> {
    FileLock::lock(path, kind).map_err(io_err("flock", path))
}

/// Whether some open file description (of any process, this one included)
/// holds a lock on `path`. A missing file is not locked.
pub(crate) fn is_locked(path: &Path) -> Result<bool, Error> {
    dunnage_base::lock::is_locked(path).map_err(io_err("flock", path))
}

/// Try to lock an open file exclusively without waiting: `Ok(false)` when
/// another open file description holds a lock on it.
pub(crate) fn try_lock_exclusive(file: &File, path: &Path) -> Result<bool, Error> {
    dunnage_base::lock::try_lock_exclusive(file).map_err(io_err("flock", path))
}
