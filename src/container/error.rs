//! The errors of [`crate::container`]: typed, with the failing operation
//! named `op`, so that a caller (the CLI) can act on them.

use std::io;
use std::path::PathBuf;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong with a container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation on the store or the rootfs failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (`read`, `mkdir`, `open`, ...).
        op: &'static str,
        /// The file it was done on.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The image reference or ID names no image in the store (docker:
    /// "Unable to find image").
    #[error("No such image: {0}")]
    UnknownImage(String),
    /// No container has this name or ID (docker: "No such container").
    #[error("No such container: {0}")]
    UnknownContainer(String),
    /// A container with this name exists already.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\"")]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// A name that docker would refuse (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// Neither the image nor the caller gives a command.
    #[error("no command specified")]
    NoCommand,
    /// The command is not in the container's PATH (exit code 127 in docker).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    CommandNotFound(String),
    /// The command exists but cannot be executed (exit code 126 in docker).
    #[error("exec: {program:?}: permission denied")]
    NotExecutable {
        /// The program.
        program: String,
    },
    /// The user named by `--user` is not in the container's /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// The group named by `--user u:g` is not in the container's /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// The container is not in a state that allows `op`.
    #[error("cannot {op} container {id}: it is {status}")]
    WrongState {
        /// The operation refused.
        op: &'static str,
        /// The container.
        id: String,
        /// Its status now.
        status: crate::container::Status,
    },
    /// The container is not running (docker: "Container ... is not running").
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// A setting the builder refuses (a bad signal name, a bad mount, ...).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The container's state files are damaged.
    #[error("corrupt container state {path}: {reason}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// This is not built yet, or not possible in this situation.
    #[error("{op}: not supported: {reason}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The monitor of a detached container failed.
    #[error("{op}: the container's monitor failed: {message}")]
    Monitor {
        /// The operation.
        op: &'static str,
        /// What the monitor said.
        message: String,
    },
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] dunnage_image::Error),
    /// The layer store failed.
    #[error(transparent)]
    Layer(#[from] dunnage_layerstore::Error),
    /// The cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] dunnage_cgroups::Error),
    /// Setting up or starting the process failed.
    #[error(transparent)]
    Process(#[from] dunnage_namespaces::Error),
    /// The container's bridge network failed or refused (unknown network,
    /// a port already published, ...).
    #[error(transparent)]
    Network(#[from] dunnage_network::Error),
    /// A confinement setting (capability, rlimit, sysctl) is refused.
    #[error(transparent)]
    Confine(#[from] dunnage_namespaces::ConfineError),
}

/// `map_err` helper: an [`Error::Io`] for `op` on `path`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
