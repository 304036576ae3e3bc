//! `flock(2)` locks. A lock belongs to its open file description: threads
//! of one process exclude each other just as processes do, and a lock dies
//! with the last descriptor of its file, so with its process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// Whether a lock is taken for reading (shared) or writing (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Many holders at once (`LOCK_SH`).
    Shared,
    /// One holder (`LOCK_EX`).
    Exclusive,
}

/// A held lock, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Lock `path` (created 0600 if missing), waiting as long as needed.
    pub fn lock(path: &Path, kind: LockKind) -> io::Result<FileLock> {
        let file = open_lock_file(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::LockShared,
            LockKind::Exclusive => FlockOperation::LockExclusive,
        };
        retry(|| flock(&file, op))?;
        Ok(FileLock { file })
    }

    /// Lock `path` (created 0600 if missing) without waiting: `None` when
    /// another open file description holds a conflicting lock.
    pub fn try_lock(path: &Path, kind: LockKind) -> io::Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::NonBlockingLockShared,
            LockKind::Exclusive => FlockOperation::NonBlockingLockExclusive,
        };
        match retry(|| flock(&file, op)) {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lock the existing directory `path` itself (`flock` on the
    /// directory, opened read-only without following a symlink), waiting
    /// as long as needed: a lock that needs no file of its own, for
    /// state kept in a directory of its own. Missing: `NotFound`.
    pub fn lock_dir(path: &Path, kind: LockKind) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits() as i32,
            )
            .open(path)?;
        let op = match kind {
            LockKind::Shared => FlockOperation::LockShared,
            LockKind::Exclusive => FlockOperation::LockExclusive,
        };
        retry(|| flock(&file, op))?;
        Ok(FileLock { file })
    }

    /// The locked file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Whether some open file description (of any process, this one included)
/// holds a lock on `path`: a non-blocking exclusive lock fails. A missing
/// file is not locked; the probe never creates the file.
pub fn is_locked(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(!try_lock_exclusive(&file)?)
}

/// Try to lock an open file exclusively without waiting: `Ok(false)` when
/// another open file description holds a lock on it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match retry(|| flock(file, FlockOperation::NonBlockingLockExclusive)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

fn retry(mut f: impl FnMut() -> rustix::io::Result<()>) -> io::Result<()> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares_within_one_process() {
        let dir = std::env::temp_dir().join(format!(
            "dunnage-base-lock-{}",
            crate::rand::random_hex(8).unwrap()
        ));
        std::fs::create_dir(&dir).unwrap();
        let p = dir.join("lock");
        assert!(!is_locked(&p).unwrap(), "a missing file is not locked");
        assert!(!p.exists(), "the probe creates nothing");
        let a = FileLock::lock(&p, LockKind::Shared).unwrap();
        let b = FileLock::try_lock(&p, LockKind::Shared).unwrap();
        assert!(b.is_some());
        assert!(
            FileLock::try_lock(&p, LockKind::Exclusive)
                .unwrap()
                .is_none()
        );
        assert!(is_locked(&p).unwrap());
        drop((a, b));
        assert!(!is_locked(&p).unwrap());
        let _x = FileLock::lock(&p, LockKind::Exclusive).unwrap();
        assert!(FileLock::try_lock(&p, LockKind::Shared).unwrap().is_none());
        drop(_x);
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        assert!(FileLock::lock(&dir.join("link"), LockKind::Shared).is_err());
        // A directory's own lock: no file made, the same exclusion.
        let d = dir.join("d");
        std::fs::create_dir(&d).unwrap();
        let x = FileLock::lock_dir(&d, LockKind::Exclusive).unwrap();
        assert!(is_locked(&d).unwrap());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        drop(x);
        assert!(!is_locked(&d).unwrap());
        std::os::unix::fs::symlink(&d, dir.join("dlink")).unwrap();
        assert!(FileLock::lock_dir(&dir.join("dlink"), LockKind::Shared).is_err());
        assert!(
            FileLock::lock_dir(&p, LockKind::Shared).is_err(),
            "not a directory"
        );
        let e = FileLock::lock_dir(&dir.join("missing"), LockKind::Shared).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
