//! Whiteouts, opaque directories and redirects: overlayfs's on-disk marks,
//! and their names in OCI layer tars.
//!
//! In an upper directory a deleted lower file is a *whiteout*: a character
//! device 0:0. A directory whose lower contents are hidden is *opaque*: it
//! carries the xattr `trusted.overlay.opaque` = `y` (`user.overlay.opaque`
//! when the mount uses `userxattr`). In a layer tar the same facts are
//! spelled `.wh.NAME` and `DIR/.wh..wh..opq`.

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags};
use rustix::io::Errno;

use crate::error::{Result, errno};

/// Prefix of a whiteout's name in a layer tar: `.wh.NAME` hides `NAME`.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque marker in a layer tar: `DIR/.wh..wh..opq`.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of names reserved for markers: `.wh..wh.*` other than
/// [`OPAQUE_MARKER`] are invalid in a layer.
pub const RESERVED_PREFIX: &str = ".wh..wh.";

/// The xattr namespace overlayfs keeps its marks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XattrNamespace {
    /// `trusted.overlay.*` (the default; needs `CAP_SYS_ADMIN`).
    #[default]
    Trusted,
    /// `user.overlay.*` (the `userxattr` mount option, for user namespaces).
    User,
}

impl XattrNamespace {
    /// The namespace for a mount with (`true`) or without `userxattr`.
    pub fn for_userxattr(userxattr: bool) -> XattrNamespace {
        if userxattr {
            XattrNamespace::User
        } else {
            XattrNamespace::Trusted
        }
    }

    /// The opaque-directory xattr: `trusted.overlay.opaque` or
    /// `user.overlay.opaque`.
    pub fn opaque(self) -> &'static str {
        match self {
            XattrNamespace::Trusted => "trusted.overlay.opaque",
            XattrNamespace::User => "user.overlay.opaque",
        }
    }

    /// The redirect xattr: `trusted.overlay.redirect` or
    /// `user.overlay.redirect`.
    pub fn redirect(self) -> &'static str {
        match self {
            XattrNamespace::Trusted => "trusted.overlay.redirect",
            XattrNamespace::User => "user.overlay.redirect",
        }
    }

    /// The metacopy xattr: `trusted.overlay.metacopy` or
    /// `user.overlay.metacopy`.
    pub fn metacopy(self) -> &'static str {
        match self {
            XattrNamespace::Trusted => "trusted.overlay.metacopy",
            XattrNamespace::User => "user.overlay.metacopy",
        }
    }
}

/// Whether an xattr name belongs to overlayfs (`trusted.overlay.*` or
/// `user.overlay.*`): such names in a layer tar could forge whiteouts and are
/// never applied.
pub fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Whether file metadata describes a whiteout (character device 0:0).
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Create a whiteout (character device 0:0, mode 0) at `path`.
///
/// Needs `CAP_MKNOD` (or a kernel that allows 0:0 devices in user
/// namespaces).
pub fn create_whiteout(path: &Path) -> Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .map_err(errno("mknod", path))
}

/// Mark the directory `dir` opaque (xattr `opaque` = `y` in `ns`).
pub fn set_opaque(dir: &Path, ns: XattrNamespace) -> Result<()> {
    rustix::fs::lsetxattr(dir, ns.opaque(), b"y", XattrFlags::empty())
        .map_err(errno("lsetxattr", dir))
}

/// Mark the open directory `fd` opaque.
pub(crate) fn set_opaque_fd(fd: impl AsFd, ns: XattrNamespace, path: &Path) -> Result<()> {
    rustix::fs::fsetxattr(fd, ns.opaque(), b"y", XattrFlags::empty())
        .map_err(errno("fsetxattr", path))
}

/// Whether the directory `dir` is opaque (its `opaque` xattr in `ns` is `y`).
pub fn is_opaque(dir: &Path, ns: XattrNamespace) -> Result<bool> {
    Ok(read_xattr(dir, ns.opaque())?.is_some_and(|v| v == b"y"))
}

/// The redirect target of a directory renamed on an overlay mounted with
/// `redirect_dir=on` (its `redirect` xattr in `ns`), if any.
pub fn redirect(dir: &Path, ns: XattrNamespace) -> Result<Option<Vec<u8>>> {
    read_xattr(dir, ns.redirect())
}

/// Whether `path` is a metacopy-only copy-up (its data lives in a lower
/// layer; `metacopy=on`).
pub fn is_metacopy(path: &Path, ns: XattrNamespace) -> Result<bool> {
    Ok(read_xattr(path, ns.metacopy())?.is_some())
}

/// Read the xattr `name` of `path` (not following a final symlink);
/// `None` when it is absent or the filesystem has no xattrs.
pub(crate) fn read_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(Errno::RANGE) => {
                let n = rustix::fs::lgetxattr(path, name, &mut [0u8; 0][..])
                    .map_err(errno("lgetxattr", path))?;
                buf.resize(n.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(errno("lgetxattr", path)(e)),
        }
    }
}

/// All xattr names of `path` (not following a final symlink).
pub(crate) fn list_xattrs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => break n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(Errno::RANGE) => {
                let n = rustix::fs::llistxattr(path, &mut [0u8; 0][..])
                    .map_err(errno("llistxattr", path))?;
                buf.resize(n.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(errno("llistxattr", path)(e)),
        }
    };
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Classify a name from a layer tar.
#[derive(Debug, PartialEq, Eq)]
pub enum TarName<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh.NAME`: hides `NAME` (the slice) of the layers below.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the containing directory is opaque.
    Opaque,
    /// A reserved `.wh.` name that is not valid in a layer.
    Invalid,
}

/// Classify the final component `name` of a layer tar path.
pub fn classify(name: &[u8]) -> TarName<'_> {
    let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else {
        return TarName::Plain;
    };
    if name == OPAQUE_MARKER.as_bytes() {
        TarName::Opaque
    } else if name.starts_with(RESERVED_PREFIX.as_bytes())
        || rest.is_empty()
        || rest == b"."
        || rest == b".."
        || rest.contains(&b'/')
    {
        TarName::Invalid
    } else {
        TarName::Whiteout(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_are_classified() {
        assert_eq!(classify(b"etc"), TarName::Plain);
        assert_eq!(classify(b".wh.etc"), TarName::Whiteout(b"etc"));
        assert_eq!(classify(b".wh..wh..opq"), TarName::Opaque);
        assert_eq!(classify(b".wh."), TarName::Invalid);
        assert_eq!(classify(b".wh.."), TarName::Invalid);
        assert_eq!(classify(b".wh..."), TarName::Invalid);
        assert_eq!(classify(b".wh..wh.plnk"), TarName::Invalid);
        assert_eq!(classify(b".whx"), TarName::Plain);
    }

    #[test]
    fn overlay_xattrs_are_recognised() {
        assert!(is_overlay_xattr(b"trusted.overlay.opaque"));
        assert!(is_overlay_xattr(b"user.overlay.redirect"));
        assert!(!is_overlay_xattr(b"security.capability"));
        assert!(!is_overlay_xattr(b"user.mime_type"));
    }
}
