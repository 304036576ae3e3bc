//! Path resolution inside a directory handle.
//!
//! Everything the crate writes below a root (layer extraction) goes through
//! [`RootDir`]: parents are opened with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so `..`, absolute symlinks and magic links
//! resolve inside the root, and final components are acted on relative to
//! the parent's fd, never by joining strings.

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RawDir, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result, errno};

/// Resolve flags used for every lookup below the root.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// An open directory that all lookups stay inside.
#[derive(Debug)]
pub(crate) struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
    /// The last parent directory opened, by its path relative to the root.
    cached: Option<(Vec<u8>, OwnedFd)>,
}

impl RootDir {
    /// Open `path` as the root.
    pub(crate) fn open(path: &Path) -> Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("open", path))?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
            cached: None,
        })
    }

    /// `root/rel` for error messages.
    pub(crate) fn display(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    /// Forget the cached parent (call after removing anything).
    pub(crate) fn invalidate(&mut self) {
        self.cached = None;
    }

    /// The directory `rel` (slash-separated, no `.`/`..` components; empty
    /// for the root itself), created with mode 0755 where missing.
    pub(crate) fn dir(&mut self, rel: &[u8]) -> Result<BorrowedFd<'_>> {
        if rel.is_empty() {
            return Ok(self.fd.as_fd());
        }
        let hit = matches!(&self.cached, Some((p, _)) if p.as_slice() == rel);
        if !hit {
            let fd = match self.open_dir(rel, OFlags::PATH) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => self.create_dirs(rel)?,
                Err(e) => return Err(errno("openat2", &self.display(rel))(e)),
            };
            self.cached = Some((rel.to_vec(), fd));
        }
        match &self.cached {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(errno("openat2", &self.display(rel))(Errno::NOENT)),
        }
    }

    /// Open the existing directory `rel` inside the root (`flags` adds e.g.
    /// `O_PATH` or `O_RDONLY`). The last component is not followed.
    pub(crate) fn open_dir(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if rel.is_empty() { &b"."[..] } else { rel };
        rustix::fs::openat2(
            &self.fd,
            OsStr::from_bytes(path),
            flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
    }

    /// Walk `rel` one component at a time, creating missing directories.
    /// Symlinks met on the way are refused: a symlink whose target is
    /// missing cannot be created through.
    fn create_dirs(&self, rel: &[u8]) -> Result<OwnedFd> {
        let mut cur = self
            .open_dir(b"", OFlags::PATH)
            .map_err(errno("openat2", &self.path))?;
        let mut end = 0;
        for comp in rel.split(|&b| b == b'/') {
            end += comp.len();
            let name = OsStr::from_bytes(comp);
            match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno("mkdirat", &self.display(&rel[..end]))(e)),
            }
            cur = rustix::fs::openat2(
                &cur,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )
            .map_err(errno("openat2", &self.display(&rel[..end])))?;
            end += 1;
        }
        Ok(cur)
    }
}

/// Remove `name` in `dir`, whatever it is (a directory with all its
/// contents). Missing is not an error.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in dir_names(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// The names in the directory `dir` (without `.` and `..`).
pub(crate) fn dir_names(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<std::ffi::OsString>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut names = Vec::new();
    // RawDir reads from the fd's current offset; a fresh fd starts at 0.
    let dup = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut iter = RawDir::new(&dup, &mut buf);
    while let Some(entry) = iter.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// `Error` for a bad layer entry.
pub(crate) fn bad_entry(path: &[u8], reason: impl Into<String>) -> Error {
    Error::BadEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
    }
}
