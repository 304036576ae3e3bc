//! Small file helpers: atomic writes (through `dunnage-base`) and bounded
//! reads.

use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::error::{Error, Result};

/// [`dunnage_base::fs::write_atomic`] (a random temporary name created
/// exclusively without following symlinks, fsync, rename, fsync of the
/// directory) with this crate's error.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    dunnage_base::fs::write_atomic(path, data, mode).map_err(|e| Error::io("write", path, e))
}

/// Create `dir` and its parents with `mode` for the ones created.
pub(crate) fn create_dirs(dir: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| Error::io("mkdir", dir, e))
}

/// Read at most `limit` bytes from `r`; more is [`Error::TooLarge`].
pub(crate) fn read_limited(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", what, e))?;
    if buf.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(buf)
}

/// Read a small file, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}
