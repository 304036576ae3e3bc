//! Docker's `size` rule for a layer directory.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Result, io_err};

/// Apparent size of `dir` by Docker's rule for overlay2 layers: the sum of
/// `st_size` over everything that is not a directory, each inode counted
/// once (hardlinks), symlinks by the length of their target. Whiteouts
/// (devices) count 0.
pub fn diff_size(dir: &Path) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    walk(dir, &mut seen, &mut total)?;
    Ok(total)
}

fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("readdir", dir))? {
        let entry = entry.map_err(io_err("readdir", dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
        if meta.is_dir() {
            walk(&path, seen, total)?;
            continue;
        }
        let size = meta.size();
        if size == 0 || (meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino()))) {
            continue;
        }
        *total += size;
    }
    Ok(())
}
