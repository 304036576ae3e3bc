//! The crate's error type.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::cidr::Ipv4Net;
use crate::ports::{PortMapping, PortSpecError};

/// `Result` with this crate's [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system call on the state directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The path it worked on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A netlink request was refused by the kernel or could not be made.
    #[error("netlink {op} {target}: {source}")]
    Netlink {
        /// The operation that failed (`"create veth"`, `"add address"`, ...).
        op: &'static str,
        /// The link, address or route it was about.
        target: String,
        /// The kernel's answer (an errno) or the socket error.
        source: io::Error,
    },
    /// The kernel answered with a message this crate could not decode.
    #[error("netlink {op}: undecodable answer: {reason}")]
    NetlinkDecode {
        /// The operation whose answer was bad.
        op: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// Entering a network namespace failed.
    #[error("{op}: {source}")]
    Netns {
        /// The operation that failed.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A subnet in CIDR notation could not be parsed or is unusable.
    #[error("invalid subnet {input:?}: {reason}")]
    InvalidCidr {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A published port specification could not be parsed.
    #[error(transparent)]
    InvalidPort(#[from] PortSpecError),
    /// A network, bridge or container name is not acceptable.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name (`"network"`, `"bridge"`, `"container id"`).
        kind: &'static str,
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An MTU outside 68..=65535.
    #[error("invalid mtu {0}: must be from 68 to 65535")]
    InvalidMtu(u32),
    /// The network already exists.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// No network of this name.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// An ID prefix names more than one network.
    #[error("network {prefix} is ambiguous ({matches} matches found based on ID prefix)")]
    AmbiguousNetwork {
        /// The prefix given.
        prefix: String,
        /// How many networks' IDs start with it.
        matches: usize,
    },
    /// The network still has containers attached.
    #[error("network {network:?} has containers attached: {}", containers.join(", "))]
    NetworkInUse {
        /// The network.
        network: String,
        /// The attached containers.
        containers: Vec<String>,
    },
    /// Another network already uses this bridge name.
    #[error("bridge {bridge:?} is already used by network {network:?}")]
    BridgeInUse {
        /// The bridge name.
        bridge: String,
        /// The network using it.
        network: String,
    },
    /// The subnet overlaps another network's subnet.
    #[error("subnet {subnet} overlaps {other_subnet} of network {other_network:?}")]
    SubnetOverlap {
        /// The subnet asked for.
        subnet: Ipv4Net,
        /// The network it collides with.
        other_network: String,
        /// That network's subnet.
        other_subnet: Ipv4Net,
    },
    /// Every address of the subnet is leased.
    #[error("network {network:?}: subnet {subnet} has no free address left")]
    SubnetFull {
        /// The network.
        network: String,
        /// Its subnet.
        subnet: Ipv4Net,
    },
    /// The container is already attached to the network.
    #[error("container {container_id:?} is already attached to network {network:?}")]
    AlreadyAttached {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
    },
    /// The container is not attached to the network.
    #[error("container {container_id:?} is not attached to network {network:?}")]
    NotAttached {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
    },
    /// A host port is already published (by this request or another container).
    #[error("port {port} is already published by container {container_id:?}")]
    PortInUse {
        /// The mapping that collides.
        port: PortMapping,
        /// The container that publishes it (maybe the same request).
        container_id: String,
    },
    /// The address asked for is not a usable host address of the subnet.
    #[error("address {address} is not a usable host address of {subnet}")]
    AddressOutsideSubnet {
        /// The address.
        address: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Net,
    },
    /// A state file is unreadable or inconsistent.
    #[error("corrupt state file {}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn netlink(
        op: &'static str,
        target: impl std::fmt::Display,
    ) -> impl FnOnce(io::Error) -> Error {
        let target = target.to_string();
        move |source| Error::Netlink { op, target, source }
    }

    /// The errno behind a netlink, namespace or I/O error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. }
            | Error::Netlink { source, .. }
            | Error::Netns { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
