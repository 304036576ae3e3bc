//! The crate's error type.

use std::path::PathBuf;

use crate::digest::{ChainId, DiffId};

/// Everything that can go wrong in the layer store. Variants carry the path,
/// digest or entry involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call failed on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted (`open`, `rename`, `flock`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or decompressing the layer stream failed (truncated or corrupt gzip, ...).
    #[error("reading the layer stream: {0}")]
    Stream(#[source] std::io::Error),
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {text:?}: {why}")]
    InvalidDigest {
        /// The text that was parsed.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The layer tar is malformed.
    #[error("malformed layer tar at byte {offset}: {why}")]
    Tar {
        /// Offset in the uncompressed stream where the problem was found.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// The layer holds the same path twice; tar-split could not reassemble it.
    #[error("duplicate path {0:?} in layer")]
    DuplicatePath(String),
    /// The layer's diffID is not the one the caller expected.
    #[error("layer diffID mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// The diffID the caller asked for.
        expected: DiffId,
        /// The sha256 of the stream.
        actual: DiffId,
    },
    /// The layer stream is compressed with a format this build cannot read.
    #[error("unsupported layer compression: {0}")]
    UnsupportedCompression(&'static str),
    /// No layer with this chainID exists.
    #[error("layer {0} not found")]
    LayerNotFound(ChainId),
    /// No mounted (container) layer with this id exists.
    #[error("mounted layer {0:?} not found")]
    MountNotFound(String),
    /// A mounted layer with this container id already exists.
    #[error("mounted layer {0:?} already exists")]
    MountExists(String),
    /// A directory already has a chain mounted on it by
    /// [`mount_chain_at`](crate::LayerStore::mount_chain_at).
    #[error("{0} already has a layer chain mounted")]
    MountTargetBusy(PathBuf),
    /// A container id is empty or not a single path component.
    #[error("invalid container id {0:?}")]
    InvalidContainerId(String),
    /// A layerdb file holds something invalid.
    #[error("corrupt layerdb file {path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The layer cannot be released: it holds no reference.
    #[error("layer {0} holds no reference to release")]
    NotReferenced(ChainId),
    /// The tar-split metadata is malformed or names a file that does not match
    /// the diff directory.
    #[error("tar-split of layer {layer}: {why}")]
    TarSplit {
        /// The layer's chainID (or `-` when not known).
        layer: String,
        /// What is wrong.
        why: String,
    },
    /// The overlay driver or layer apply failed.
    #[error(transparent)]
    Overlay(#[from] dunnage_overlay::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Recover the crate's error from an `io::Error` returned by one of its
    /// readers (such as [`tarsplit::Reassembler`](crate::tarsplit::Reassembler));
    /// other I/O errors become [`Error::Stream`].
    pub fn from_io(e: std::io::Error) -> Error {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Stream(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(err)) => *err,
            _ => Error::Stream(std::io::Error::other("unrecoverable wrapped error")),
        }
    }
}

/// Attach an operation and a path to an `io::Error`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
