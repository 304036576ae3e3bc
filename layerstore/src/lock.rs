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

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::error::{Error, io_err};

/// A held lock, released when dropped.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Whether a lock is taken for reading (shared) or writing (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    Shared,
    Exclusive,
}

/// Lock `path` (created if missing), waiting as long as needed.
pub(crate) fn lock(path: &Path, kind: LockKind) -> Result<FileLock, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open", path))?;
    let op = match kind {
        LockKind::Shared => FlockOperation::LockShared,
        LockKind::Exclusive => FlockOperation::LockExclusive,
    };
    loop {
        match rustix::fs::flock(&file, op) {
            Ok(()) => return Ok(FileLock { _file: file }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_err("flock", path)(e.into())),
        }
    }
}

/// Whether some open file description (of any process, this one included)
/// holds a lock on `path`: a non-blocking exclusive lock fails. A missing
/// file is not locked.
pub(crate) fn is_locked(path: &Path) -> Result<bool, Error> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    Ok(!try_lock_exclusive(&file, path)?)
}

/// Try to lock an open file exclusively without waiting: `Ok(false)` when
/// another open file description holds a lock on it.
pub(crate) fn try_lock_exclusive(file: &File, path: &Path) -> Result<bool, Error> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(io_err("flock", path)(e.into())),
    }
}
