//! Container networking the way docker's default bridge network does it:
//! a veth pair per container with one end on a bridge, an address leased
//! from the bridge's subnet, outbound masquerade and published ports with
//! nftables. Blocking netlink, no async runtime; every operation acts in a
//! network namespace given by fd, without moving the calling thread.
//!
//! - [`rtnl`]: [`Netlink`], route netlink over a blocking socket bound to a
//!   namespace: links, veth pairs, bridges, addresses, routes.
//! - [`netns`]: run work inside a network namespace on a short-lived thread.
//! - [`cidr`], [`ports`]: subnets and `-p` port specifications, parsed with
//!   typed errors.
//! - [`etc`]: the container's `/etc/hosts` and `/etc/resolv.conf`.

pub mod cidr;
pub mod error;
pub mod etc;
pub mod netns;
pub mod ports;
pub mod rtnl;

pub use cidr::Ipv4Net;
pub use error::{Error, Result};
pub use ports::{PortMapping, PortSpecError, Protocol};
pub use rtnl::Netlink;
