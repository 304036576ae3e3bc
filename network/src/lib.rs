//! Container networking the way docker's default bridge network does it:
//! a veth pair per container with one end on a bridge, an address leased
//! from the bridge's subnet, outbound masquerade and published ports with
//! nftables. Blocking netlink, no async runtime; every operation acts in a
//! network namespace given by fd, without moving the calling thread.
//!
//! - [`networks`]: [`Networks`] creates, removes, inspects and lists
//!   networks and [`attach`](Networks::attach)es /
//!   [`detach`](Networks::detach)es containers: the API a runtime calls.
//! - [`spec`]: [`NetworkSpec`], a network's settings and docker0's defaults.
//! - [`rtnl`]: [`Netlink`], route netlink over a blocking socket bound to a
//!   namespace: links, veth pairs, bridges, addresses, routes.
//! - [`netns`]: run work inside a network namespace on a short-lived thread.
//! - [`cidr`], [`ports`]: subnets and `-p` port specifications, parsed with
//!   typed errors.
//! - [`nft`]: the `ip dunnage` nftables table, computed from the state and
//!   sent as nf_tables netlink messages.
//! - [`etc`]: the container's `/etc/hosts` and `/etc/resolv.conf`.
//! - [`store`]: the state directory's layout and locking.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use dunnage_network::{Networks, netns};
//!
//! # fn main() -> dunnage_network::Result<()> {
//! let host = netns::open("/run/netns/host".as_ref())?;
//! let nets = Networks::open("/var/lib/dunnage/network".as_ref(), host.as_fd())?;
//! nets.ensure_default()?;
//! let container = netns::open("/run/netns/c1".as_ref())?;
//! let ports = ["8080:80".parse()?];
//! let a = nets.attach("dunnage0", "c1", container.as_fd(), &ports)?;
//! println!("{} {} via {}", a.address, a.mac, a.gateway);
//! let hosts = dunnage_network::etc::hosts(a.address, &["c1"]);
//! # let _ = hosts;
//! nets.detach("dunnage0", "c1")?;
//! # Ok(())
//! # }
//! ```

pub mod cidr;
pub mod error;
pub mod etc;
mod ifconfig;
pub mod netns;
pub mod networks;
pub mod nft;
mod nftnl;
mod plumb;
pub mod ports;
pub mod rtnl;
pub mod spec;
pub mod store;

pub use cidr::Ipv4Net;
pub use error::{Error, Result};
pub use networks::{Attachment, NetworkInfo, Networks};
pub use ports::{PortMapping, PortSpecError, Protocol};
pub use rtnl::Netlink;
pub use spec::{CONTAINER_IFNAME, DEFAULT_MTU, DEFAULT_NETWORK, DEFAULT_SUBNET, NetworkSpec};
pub use store::{AppliedRules, Lease, NetworkConfig, Releasing};

/// The crate README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
