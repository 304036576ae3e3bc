//! What one layer wrote, by inode, so that its whiteouts and opaque markers
//! never hide its own entries.
//!
//! Paths cannot tell: `alias -> d` then `alias/.wh..wh..opq` names `d`
//! through a symlink, and `d/sub/file` may arrive without a `d/sub/` entry.
//! Every inode the layer creates (or links, or merges a directory entry
//! into) is recorded; an opaque directory then hides exactly the inodes not
//! recorded, and an entry never silently replaces a recorded one.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::root::dir_names;

/// Inodes written by the layer being applied.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Files, directories, links and devices of the layer.
    entries: HashSet<(u64, u64)>,
    /// The layer's whiteouts (a later entry of the layer may replace them).
    whiteouts: HashSet<(u64, u64)>,
}

fn key(st: &Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl Written {
    /// Record the inode of `fd` as an entry of the layer; returns its
    /// status (the caller skips setting what already matches).
    pub(crate) fn add_fd(&mut self, fd: impl AsFd) -> rustix::io::Result<Stat> {
        let st = rustix::fs::fstat(fd)?;
        self.entries.insert(key(&st));
        Ok(st)
    }

    /// Record the inode `st` describes as an entry of the layer.
    pub(crate) fn add_stat(&mut self, st: &Stat) {
        self.entries.insert(key(st));
    }

    /// Record `name` in `dir` (not following a symlink) as an entry, or as
    /// a whiteout.
    pub(crate) fn add_at(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        whiteout: bool,
    ) -> rustix::io::Result<()> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if whiteout {
            self.whiteouts.insert(key(&st));
        } else {
            self.entries.insert(key(&st));
        }
        Ok(())
    }

    /// Whether `name` in `dir` is an entry (not a whiteout) of the layer.
    /// Missing is false.
    pub(crate) fn is_entry_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> rustix::io::Result<bool> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(self.entries.contains(&key(&st))),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remove below the directory `dir` whatever the layer did not write
    /// (what an opaque directory hides of the layers below, when the layer
    /// is applied onto an existing tree). A directory the layer did not
    /// write stays when something of the layer is inside it. Returns
    /// whether anything of the layer is below `dir`.
    pub(crate) fn hide_lower(&self, dir: BorrowedFd<'_>) -> rustix::io::Result<bool> {
        let mut kept = false;
        for name in dir_names(dir)? {
            let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            let ours = self.entries.contains(&key(&st)) || self.whiteouts.contains(&key(&st));
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let sub = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let inside = self.hide_lower(sub.as_fd())?;
                if ours || inside {
                    kept = true;
                } else {
                    rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR)?;
                }
            } else if ours {
                kept = true;
            } else {
                rustix::fs::unlinkat(dir, &name, AtFlags::empty())?;
            }
        }
        Ok(kept)
    }
}
