//! Creating one entry below a directory fd for [`apply_layer`]: create, or
//! replace what is there unless this layer wrote it; map errors.
//!
//! [`apply_layer`]: crate::apply_layer

use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::io::Errno;

use crate::error::{Error, errno_at};
use crate::root::{bad_entry, remove_all_at};
use crate::written::Written;

/// Run `make`; if the name exists, remove what is there and run it again.
/// Returns whether something was replaced.
/// What is there is never an entry this layer wrote (reached again
/// through a symlink): that fails with `EEXIST`.
pub(crate) fn create_or_replace(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mut make: impl FnMut() -> rustix::io::Result<()>,
    written: &Written,
) -> rustix::io::Result<bool> {
    create_or_replace_with(dir, name, &mut make, written).map(|((), replaced)| replaced)
}

pub(crate) fn create_or_replace_with<T>(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mut make: impl FnMut() -> rustix::io::Result<T>,
    written: &Written,
) -> rustix::io::Result<(T, bool)> {
    match make() {
        Ok(t) => Ok((t, false)),
        Err(Errno::EXIST) => {
            if written.is_entry_at(dir, name)? {
                return Err(Errno::EXIST);
            }
            remove_all_at(dir, name)?;
            Ok((make()?, true))
        }
        Err(e) => Err(e),
    }
}

/// Map a creation error: `EEXIST` (an entry of this layer is in the way,
/// reached through a symlink) is a bad entry, anything else an I/O error.
pub(crate) fn refused<'a>(
    op: &'static str,
    root: &'a Path,
    norm: &'a [u8],
    raw_path: &'a [u8],
) -> impl Fn(Errno) -> Error + 'a {
    move |e| {
        if e == Errno::EXIST {
            bad_entry(raw_path, "path of an earlier entry of the same layer")
        } else {
            errno_at(op, root, norm)(e)
        }
    }
}

/// Whether `norm` is top-level aufs metadata: the empty `.wh..wh.aufs`
/// marker file or the `.wh..wh.orph` / `.wh..wh.plnk` directory entries.
pub(crate) fn is_aufs_metadata(norm: &[u8], is_dir: bool, empty_file: bool) -> bool {
    match norm {
        b".wh..wh.aufs" => empty_file,
        b".wh..wh.orph" | b".wh..wh.plnk" => is_dir,
        _ => false,
    }
}

/// The process umask, read from `/proc/self/status` (umask(2) would change
/// it for other threads); 0o022 when unknown.
pub(crate) fn process_umask() -> u32 {
    dunnage_base::fs::read_unsized_string(std::path::Path::new("/proc/self/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
