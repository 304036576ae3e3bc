//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `dunnage-image`.
///
/// Variants name the path, member, reference or digest involved, so one line
/// of `Display` says what failed and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system call failed on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `read`, `rename`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The layer store refused or failed.
    #[error(transparent)]
    Layer(#[from] dunnage_layerstore::Error),
    /// A string is not a valid image reference.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A string is not a `sha256:<64 hex>` digest.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// A JSON document could not be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which document (member name, file path).
        what: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// An image config breaks a rule of the format.
    #[error("invalid image config {id}: {reason}")]
    InvalidConfig {
        /// The config's digest.
        id: String,
        /// The rule it breaks.
        reason: String,
    },
    /// Content does not hash to the digest it was named by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was hashed (member, blob, stored config).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A member name or a path in a manifest leaves the archive.
    #[error("unsafe path {member:?} in {archive}")]
    UnsafePath {
        /// The archive or layout read.
        archive: PathBuf,
        /// The offending name.
        member: String,
    },
    /// An archive lacks a member its manifest names.
    #[error("{archive}: missing {member:?}")]
    MissingMember {
        /// The archive or layout read.
        archive: PathBuf,
        /// The member that is not there.
        member: String,
    },
    /// Something exceeds a size limit (JSON documents, uncompressed layers).
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Spooling a stream would leave less free space than the reserve
    /// ([`LoadOptions::min_free`](crate::LoadOptions::min_free)).
    #[error("{what}: spooling stopped, the file system would keep less than {reserve} bytes free")]
    NoSpace {
        /// The stream spooled.
        what: String,
        /// The free space kept.
        reserve: u64,
    },
    /// An archive's plan exceeds a bound of [`LoadOptions`](crate::LoadOptions)
    /// (image entries, bytes of JSON, nesting of indexes).
    #[error("{archive}: more than {limit} {what}")]
    PlanTooLarge {
        /// The archive or layout read.
        archive: PathBuf,
        /// What there is too much of.
        what: String,
        /// The bound.
        limit: u64,
    },
    /// The input is neither a docker archive, an OCI layout nor a tarball we know.
    #[error("{path}: {reason}")]
    UnknownFormat {
        /// The input.
        path: PathBuf,
        /// What was missing or unsupported.
        reason: String,
    },
    /// A stream is compressed with something we do not read (bzip2, xz).
    #[error("{what}: unsupported compression {compression} (only gzip and zstd are read)")]
    UnsupportedCompression {
        /// The stream (archive, or archive and member).
        what: String,
        /// The compression found.
        compression: &'static str,
    },
    /// A stream decompresses to another compressed stream (a layer bomb
    /// would pass the expansion limits counted on the outer one).
    #[error("{what}: {inner} compressed inside {outer}; one level of compression is read")]
    NestedCompression {
        /// The stream (archive, or archive and member).
        what: String,
        /// The outer compression.
        outer: &'static str,
        /// The compression found inside it.
        inner: &'static str,
    },
    /// A `docker import -c` / `commit -c` instruction cannot be applied.
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange {
        /// The instruction as given.
        change: String,
        /// Why it was refused (docker's words where it has some).
        reason: String,
    },
    /// No image matches the reference or ID.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// An ID prefix matches more than one image.
    #[error("ambiguous image ID prefix {0:?}")]
    Ambiguous(String),
    /// `rmi REF` without force, REF the image's only reference, while
    /// something uses the image: docker refuses to leave it dangling, and
    /// so the reference is kept.
    #[error(
        "conflict: unable to remove repository reference {reference:?} (must force) - {} is using its referenced image {}",
        .user.subject(),
        crate::inuse::short_image(.image)
    )]
    ReferenceInUse {
        /// The reference as given.
        reference: String,
        /// The image it names.
        image: crate::config::ImageId,
        /// What uses the image (the first found).
        user: crate::inuse::ImageUser,
    },
    /// The image cannot be deleted while a container or a mount uses it
    /// (docker's `conflict: unable to delete`); `--force` overrides a
    /// stopped container only.
    #[error(
        "conflict: unable to delete {} ({}) - image is being used by {user}",
        crate::inuse::short_image(.image),
        if .user.is_hard() { "cannot be forced" } else { "must be forced" }
    )]
    ImageUsed {
        /// The image.
        image: crate::config::ImageId,
        /// What uses it (the first found).
        user: crate::inuse::ImageUser,
    },
    /// The image cannot be removed while it is used.
    #[error("image {image} is in use: {why}")]
    InUse {
        /// The image.
        image: String,
        /// What uses it.
        why: String,
    },
    /// A registry could not be reached or the exchange broke off
    /// (connection, TLS, timeout, too many redirects, a body cut short).
    #[error("{op} {url}: {reason}")]
    Transport {
        /// What was being done (`ping`, `get manifest`, `get blob`, ...).
        op: &'static str,
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A registry answered with an HTTP status we cannot go on from.
    #[error("{op} {url}: HTTP {status}: {message}")]
    Status {
        /// What was being done.
        op: &'static str,
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message (first bytes of its body).
        message: String,
    },
    /// A registry refused our credentials, or its auth challenge cannot be
    /// met (no credentials for basic auth, a 401 after a fresh token).
    #[error("authentication with {registry} failed: {reason}")]
    Auth {
        /// The registry host.
        registry: String,
        /// Why.
        reason: String,
    },
    /// A manifest or index from a registry breaks the format, or names
    /// something we do not follow (an index inside an index, a foreign
    /// media type).
    #[error("invalid manifest {what}: {reason}")]
    InvalidManifest {
        /// The reference or digest of the manifest.
        what: String,
        /// The rule it breaks.
        reason: String,
    },
    /// An image index has no manifest for the platform asked.
    #[error("no matching manifest for {platform} in the manifest list entries of {reference}")]
    NoMatchingPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform asked (`linux/amd64`).
        platform: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}
