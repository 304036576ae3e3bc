//! Validated cgroup paths: relative to a hierarchy's root, never escaping it.

use crate::error::{Error, Result};
use std::fmt;

/// A cgroup's path below a hierarchy's root, e.g. `dunnage/web`.
///
/// A leading `/` is accepted (cgroup-tools writes paths that way) and means
/// the hierarchy's root, not the file system's. Empty components, `.`,
/// `..`, NUL and names the kernel reserves for control files are rejected,
/// so a `CgroupPath` joined to a mount point stays inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// Validate `path`.
    pub fn new(path: &str) -> Result<CgroupPath> {
        let bad = |why| Error::InvalidPath {
            path: path.to_owned(),
            why,
        };
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(CgroupPath(String::new()));
        }
        for comp in trimmed.split('/') {
            match comp {
                "" => return Err(bad("empty component")),
                "." | ".." => return Err(bad("`.` and `..` are not allowed")),
                c if c.contains('\0') => return Err(bad("NUL byte")),
                c if c.len() > 255 => return Err(bad("component longer than 255 bytes")),
                c if c.starts_with("cgroup.") => {
                    return Err(bad("`cgroup.` names are control files"));
                }
                _ => {}
            }
        }
        Ok(CgroupPath(trimmed.to_owned()))
    }

    /// The root of the hierarchy.
    pub fn root() -> CgroupPath {
        CgroupPath(String::new())
    }

    /// Whether this is the hierarchy's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without a leading `/` (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path below this one named `child` (validated).
    pub fn join(&self, child: &str) -> Result<CgroupPath> {
        CgroupPath::new(&format!("{}/{child}", self.0))
    }

    /// The ancestors from the first component down to this path itself.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(|(i, _)| &self.0[..i])
            .chain((!self.0.is_empty()).then_some(self.0.as_str()))
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_rejected() {
        for p in [
            "..",
            "a/../b",
            "a/./b",
            "a//b",
            "a/\0",
            "a/cgroup.procs",
            "../../etc",
        ] {
            assert!(CgroupPath::new(p).is_err(), "{p:?}");
        }
        assert_eq!(CgroupPath::new("/a/b/").unwrap().as_str(), "a/b");
        assert!(CgroupPath::new("/").unwrap().is_root());
    }

    #[test]
    fn prefixes_go_top_down() {
        let p = CgroupPath::new("a/b/c").unwrap();
        assert_eq!(p.prefixes().collect::<Vec<_>>(), ["a", "a/b", "a/b/c"]);
        assert_eq!(CgroupPath::root().prefixes().count(), 0);
    }
}
