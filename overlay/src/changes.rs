//! Changes of an upper directory, like `docker diff`.

use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};
use crate::whiteout::{XattrNamespace, is_whiteout};

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// New in the upper layer (`A`).
    Added,
    /// Present below and changed, or a directory whose contents changed (`C`).
    Modified,
    /// Removed by a whiteout (`D`).
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints: `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, absolute in the container's view (`/etc/passwd`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The path, starting with `/`.
    pub path: PathBuf,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path.display())
    }
}

/// The changes an upper directory (overlay form) makes to its `lowers`
/// (nearest first), sorted by path: whiteouts are `Deleted`, paths that
/// exist in a lower layer `Modified`, others `Added`. Opaque directories
/// and their contents count as changed, not their hidden lower children.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, Path::new("/"), lowers, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err("readdir", dir))? {
        let entry = entry.map_err(io_err("readdir", dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
        let rel = rel.join(entry.file_name());
        if is_whiteout(&meta) {
            out.push(Change {
                kind: ChangeKind::Deleted,
                path: rel,
            });
            continue;
        }
        let kind = if in_lowers(&rel, lowers)? {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change {
            kind,
            path: rel.clone(),
        });
        if meta.is_dir() {
            // Below an opaque or new directory nothing of the lowers shows.
            let hidden = kind == ChangeKind::Added
                || crate::whiteout::is_opaque(&path, XattrNamespace::Trusted)?;
            walk(&path, &rel, if hidden { &[] } else { lowers }, out)?;
        }
    }
    Ok(())
}

/// Whether `rel` is visible in the merged view of `lowers` (nearest first).
fn in_lowers(rel: &Path, lowers: &[PathBuf]) -> Result<bool> {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    for lower in lowers {
        let p = lower.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) => return Ok(!is_whiteout(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(false),
            Err(e) => return Err(io_err("lstat", &p)(e)),
        }
        if let Some(parent) = p.parent()
            && parent.is_dir()
            && crate::whiteout::is_opaque(parent, XattrNamespace::Trusted)?
        {
            return Ok(false);
        }
    }
    Ok(false)
}
