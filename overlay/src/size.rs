//! Docker's `size` rule for a layer directory.

use std::collections::HashSet;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use crate::error::{Result, errno};

/// Apparent size of `dir` by Docker's rule for overlay2 layers: the sum of
/// `st_size` over everything that is not a directory, each inode counted
/// once (hardlinks), symlinks by the length of their target. Whiteouts
/// (devices) count 0.
///
/// The walk works on directory fds (`getdents64`, then `fstatat` on the
/// parent's fd), and takes a directory's type from its entry, so a layer
/// of N files costs N `fstatat`s without a path lookup each.
pub fn diff_size(dir: &Path) -> Result<u64> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("open", dir))?;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    walk(fd.as_fd(), dir, &mut buf, &mut seen, &mut total)?;
    Ok(total)
}

fn walk(
    fd: BorrowedFd<'_>,
    path: &Path,
    buf: &mut [MaybeUninit<u8>],
    seen: &mut HashSet<(u64, u64)>,
    total: &mut u64,
) -> Result<()> {
    // Subdirectories are walked after this directory's listing, so that
    // one buffer serves every level.
    let mut subdirs: Vec<std::ffi::CString> = Vec::new();
    {
        let mut entries = RawDir::new(fd, buf);
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(errno("getdents64", path))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            if entry.file_type() == FileType::Directory {
                subdirs.push(name.to_owned());
                continue;
            }
            let st = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(errno("fstatat", &path.join(os(name))))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                // A file system without d_type (DT_UNKNOWN).
                subdirs.push(name.to_owned());
                continue;
            }
            let size = st.st_size as u64;
            if size == 0 || (st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino))) {
                continue;
            }
            *total += size;
        }
    }
    for name in subdirs {
        let sub_path = path.join(os(&name));
        let sub = rustix::fs::openat(
            fd,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("openat", &sub_path))?;
        walk(sub.as_fd(), &sub_path, buf, seen, total)?;
    }
    Ok(())
}

fn os(name: &CStr) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name.to_bytes())
}
