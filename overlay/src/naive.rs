//! Diff by comparing merged views, for upper directories that
//! `redirect_dir` or `metacopy` made incomplete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::whiteout::XattrNamespace;

/// Whether any entry below `upper` carries a redirect or metacopy xattr.
pub(crate) fn needs_lowers(upper: &Path, ns: XattrNamespace) -> Result<bool> {
    let _ = (upper, ns);
    Ok(false)
}

/// Write the diff of `upper` over `lowers` by comparing merged views.
pub(crate) fn write_naive_diff<W: Write>(upper: &Path, lowers: &[PathBuf], out: W) -> Result<W> {
    let _ = (lowers, out);
    Err(Error::InvalidMount(format!(
        "{}: naive diff not implemented",
        upper.display()
    )))
}
