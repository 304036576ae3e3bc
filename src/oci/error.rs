//! The errors and warnings of [`crate::oci`].

use std::io;
use std::path::PathBuf;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a config.json could not be read, converted or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (`read`, `write`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Not JSON, or not the shape of the OCI runtime spec.
    #[error("{op}: {reason}")]
    Json {
        /// What was being done.
        op: &'static str,
        /// serde's message (with line and column).
        reason: String,
    },
    /// A field this runtime does not honour is set: refused rather than
    /// ignored.
    #[error("config.json field {field} is not supported: {reason}")]
    Unsupported {
        /// The field, as a JSON path (`linux.uidMappings`,
        /// `mounts[3].options`).
        field: String,
        /// Why, or what would be accepted.
        reason: String,
    },
    /// A field's value is wrong (a relative cwd, an env entry without
    /// `=`, ...).
    #[error("config.json field {field}: {reason}")]
    Invalid {
        /// The field, as a JSON path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Something noticed that does not stop the conversion (runc prints these
/// as warnings too).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A capability name this runtime does not know: left out.
    UnknownCapability {
        /// The set (`bounding`, ...).
        set: &'static str,
        /// The name as written.
        name: String,
    },
    /// An ambient capability outside the permitted or inheritable set: the
    /// kernel cannot raise it, so it is left out (runc warns too).
    AmbientNotRaised {
        /// The name.
        name: String,
        /// The set it is missing from (`permitted` or `inheritable`).
        missing_from: &'static str,
    },
    /// A field that has no effect on this host (an SELinux label where
    /// SELinux is off, as crun treats it).
    NoEffect {
        /// Its JSON path.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A field the OCI runtime spec (1.2) does not define: kept in the
    /// document, not used.
    UnknownField {
        /// Its JSON path.
        field: String,
    },
    /// A standard mount (`/proc`, `/dev`, ...) whose options differ from
    /// the profile's: the container gets the profile's mount.
    MountOptions {
        /// Its JSON path (`mounts[0]`).
        field: String,
        /// The options the profile uses.
        used: Vec<String>,
    },
    /// The Container adds one of Docker's defaults the config does not
    /// have (Docker's network sysctls in a new network namespace; swap as
    /// much again as a memory limit without `swap`).
    ContainerDefault {
        /// The field the default lands in (`linux.sysctl`).
        field: &'static str,
        /// What is added.
        added: String,
    },
    /// No mount namespace of the container's own (`linux.namespaces`
    /// lists none, or joins one by path): its rootfs is entered with
    /// `chroot`, which a process holding `CAP_SYS_CHROOT` (in Docker's
    /// default set) can leave, and its mounts are made in that shared
    /// namespace.
    SharedMountNamespace {
        /// The namespace path shared (`/proc/self/ns/mnt`: the runtime's).
        path: PathBuf,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::UnknownCapability { set, name } => {
                write!(f, "unknown capability {name:?} in {set}: ignored")
            }
            Warning::AmbientNotRaised { name, missing_from } => {
                write!(
                    f,
                    "ambient capability {name} is not {missing_from}: not raised"
                )
            }
            Warning::NoEffect { field, reason } => write!(f, "{field}: no effect: {reason}"),
            Warning::UnknownField { field } => {
                write!(f, "unknown field {field}: kept, not used")
            }
            Warning::MountOptions { field, used } => {
                write!(f, "{field}: mounted with the profile's options {used:?}")
            }
            Warning::ContainerDefault { field, added } => {
                write!(f, "{field}: the container adds Docker's default {added}")
            }
            Warning::SharedMountNamespace { path } => write!(
                f,
                "linux.namespaces: no mount namespace of the container's own (shares {}): \
                 the rootfs is entered with chroot, which CAP_SYS_CHROOT can escape",
                path.display()
            ),
        }
    }
}
