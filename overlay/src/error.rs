//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Variants carry the path, operation or archive entry involved, so that a
/// one-line message tells a person what failed where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on a path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (a system call's name, mostly).
        op: &'static str,
        /// The path it acted on.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Reading or parsing the layer tar stream failed.
    #[error("layer tar: {0}")]
    Archive(#[source] std::io::Error),
    /// Writing the layer tar stream failed.
    #[error("writing layer tar: {0}")]
    Write(#[source] std::io::Error),
    /// A layer entry is malformed or hostile (bad name, escape attempt,
    /// duplicate, oversized header, unsupported type).
    #[error("layer entry {path:?}: {reason}")]
    BadEntry {
        /// The entry's name as written in the tar (lossy UTF-8).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An overlay mount asks for more lower layers than the kernel allows.
    #[error("{count} lower layers requested; the kernel allows at most {max}")]
    TooManyLowers {
        /// Lowers requested.
        count: usize,
        /// The kernel's limit (`OVL_MAX_STACK`).
        max: usize,
    },
    /// A mount description is incomplete or contradictory.
    #[error("invalid overlay mount: {0}")]
    InvalidMount(String),
    /// The backing filesystem cannot hold overlay layers.
    #[error("{path}: unsupported backing filesystem: {reason}")]
    UnsupportedBackingFs {
        /// The directory probed.
        path: PathBuf,
        /// Why it cannot be used (e.g. xfs formatted with `ftype=0`).
        reason: String,
    },
    /// The kernel has no overlay filesystem.
    #[error("overlay filesystem not available: {0}")]
    OverlayUnavailable(String),
    /// An overlay2 layer id is not a plain directory name.
    #[error("invalid layer id {0:?}")]
    InvalidId(String),
    /// An overlay2 layer does not exist.
    #[error("layer {0} does not exist")]
    NoSuchLayer(String),
    /// An overlay2 layer already exists.
    #[error("layer {0} already exists")]
    LayerExists(String),
    /// An overlay2 layer's metadata (`link`, `lower`) is malformed.
    #[error("layer {id}: corrupt {file}: {reason}")]
    CorruptLayer {
        /// The layer id.
        id: String,
        /// The metadata file.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An upper directory holds a name a layer cannot carry: a file or
    /// directory named `.wh.*` that is not an overlay whiteout would be
    /// read as a whiteout (or opaque marker) when the layer is applied.
    #[error(
        "{path}: a layer cannot hold a name starting with .wh. (it would be read as a whiteout)"
    )]
    UnrepresentableName {
        /// The entry, below the directory diffed.
        path: PathBuf,
    },
    /// An upper directory holds `redirect_dir` or `metacopy` marks (its
    /// content lives partly in the lowers) and no lowers were given to diff
    /// it against ([`DiffOptions::lowers`](crate::DiffOptions::lowers)).
    #[error("{path} holds a redirect or metacopy xattr; pass DiffOptions::lowers to diff it")]
    NeedsLowers {
        /// The entry with the mark.
        path: PathBuf,
    },
    /// An entry changed while it was being archived (a file shrank, or a
    /// reopened entry is no longer the inode examined).
    #[error("{path} changed while it was archived: {reason}")]
    ChangedDuringDiff {
        /// The entry.
        path: PathBuf,
        /// What changed.
        reason: &'static str,
    },
    /// An overlay2 layer is still mounted or used.
    #[error("layer {0} is in use")]
    Busy(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach an operation name and a path to an I/O error (the path is copied
/// only when there is an error).
pub(crate) fn io_err<'a, P: AsRef<std::path::Path> + ?Sized>(
    op: &'static str,
    path: &'a P,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.as_ref().to_path_buf(),
        source,
    }
}

/// Attach an operation name and a path to a rustix errno.
pub(crate) fn errno<'a, P: AsRef<std::path::Path> + ?Sized>(
    op: &'static str,
    path: &'a P,
) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    move |e| Error::Io {
        op,
        path: path.as_ref().to_path_buf(),
        source: e.into(),
    }
}

/// Attach an operation name and `root/rel` to a rustix errno.
pub(crate) fn errno_at<'a>(
    op: &'static str,
    root: &'a std::path::Path,
    rel: &'a [u8],
) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    use std::os::unix::ffi::OsStrExt;
    move |e| Error::Io {
        op,
        path: root.join(std::ffi::OsStr::from_bytes(rel)),
        source: e.into(),
    }
}
