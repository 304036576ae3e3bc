//! Links: list, create (veth pairs, bridges), delete, and change (controller,
//! namespace, name, MTU, MAC, up/down). Each call is one `RTM_*LINK`
//! request answered by an acknowledgement.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};

use super::Netlink;
use crate::error::{Error, Result};

/// The longest interface name the kernel takes (`IFNAMSIZ - 1`).
pub const IFNAMSIZ_MAX: usize = 15;

/// What kind of device a link is (`IFLA_INFO_KIND`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// Anything else, by the kernel's name (`"dummy"`, `"vxlan"`, ...).
    Other(String),
    /// A device without a kind, such as `lo` or a physical NIC.
    None,
}

/// A network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The device kind.
    pub kind: LinkKind,
    /// The MTU.
    pub mtu: Option<u32>,
    /// The hardware address (6 bytes for Ethernet).
    pub mac: Option<Vec<u8>>,
    /// Whether the link is administratively up (`IFF_UP`).
    pub up: bool,
    /// The index of the bridge (controller) the link is attached to.
    pub controller: Option<u32>,
    /// For a link whose other end lives in another network namespace (a
    /// veth pair's), this namespace's id for that one
    /// (`IFLA_LINK_NETNSID`); `Some(-1)` when that namespace is being
    /// destroyed and has no id any more.
    pub link_netnsid: Option<i32>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Link {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            kind: LinkKind::None,
            mtu: None,
            mac: None,
            up: m.header.flags.contains(LinkFlags::Up),
            controller: None,
            link_netnsid: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Mtu(v) => link.mtu = Some(*v),
                LinkAttribute::Address(v) => link.mac = Some(v.clone()),
                LinkAttribute::Controller(v) if *v != 0 => link.controller = Some(*v),
                LinkAttribute::LinkNetNsId(v) => link.link_netnsid = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.kind = match k {
                                InfoKind::Bridge => LinkKind::Bridge,
                                InfoKind::Veth => LinkKind::Veth,
                                other => LinkKind::Other(other.to_string()),
                            };
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A veth pair for [`Netlink::add_veth_pair`].
#[derive(Clone, Copy, Debug)]
pub struct VethPair<'a> {
    /// The name of the end created in this namespace.
    pub name: &'a str,
    /// The name of the other end.
    pub peer: &'a str,
    /// The MTU of both ends.
    pub mtu: Option<u32>,
    /// The bridge (by index) this end is attached to.
    pub controller: Option<u32>,
    /// Whether this end is brought up.
    pub up: bool,
    /// The peer's hardware address.
    pub peer_mac: Option<[u8; 6]>,
    /// The network namespace the peer is created in (default: this one).
    pub peer_netns: Option<BorrowedFd<'a>>,
}

impl<'a> VethPair<'a> {
    /// A pair `name` <-> `peer`, both in this namespace, down, defaults
    /// elsewhere.
    pub fn new(name: &'a str, peer: &'a str) -> VethPair<'a> {
        VethPair {
            name,
            peer,
            mtu: None,
            controller: None,
            up: false,
            peer_mac: None,
            peer_netns: None,
        }
    }
}

fn message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    m
}

/// Refuse names the kernel would refuse, before asking it.
pub fn check_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > IFNAMSIZ_MAX {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0 || !b.is_ascii())
    {
        Some("contains '/', ':', whitespace or a non-ASCII byte")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            kind: "interface",
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Netlink {
    /// Every link of the namespace (`RTM_GETLINK` dump).
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let answers = self.dump(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        check_ifname(name)?;
        let m = message(0, vec![LinkAttribute::IfName(name.to_string())]);
        match self.request("get link", &name, RouteNetlinkMessage::GetLink(m), 0) {
            Ok(answers) => Ok(answers.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link named `name`, or [`Error::Netlink`] with `ENODEV`.
    pub fn require_link(&mut self, name: &str) -> Result<Link> {
        self.link(name)?.ok_or_else(|| Error::Netlink {
            op: "get link",
            target: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    fn new_link(
        &mut self,
        op: &'static str,
        name: &str,
        attributes: Vec<LinkAttribute>,
    ) -> Result<()> {
        self.request(
            op,
            &name,
            RouteNetlinkMessage::NewLink(message(0, attributes)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Create a bridge `name` (down, like `ip link add NAME type bridge`).
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        check_ifname(name)?;
        self.new_link(
            "create bridge",
            name,
            vec![
                LinkAttribute::IfName(name.to_string()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
        )
    }

    /// Create a veth pair `name` <-> `peer` in this namespace, both down.
    pub fn add_veth(&mut self, name: &str, peer: &str) -> Result<()> {
        self.add_veth_pair(&VethPair::new(name, peer))
    }

    /// Create a veth pair configured in the same request: MTU, bridge and
    /// state of this end; name, MAC, MTU and namespace of the peer. A peer
    /// created straight in its namespace saves the move (and the RCU grace
    /// period a move waits for).
    pub fn add_veth_pair(&mut self, pair: &VethPair<'_>) -> Result<()> {
        check_ifname(pair.name)?;
        check_ifname(pair.peer)?;
        let mut peer_attrs = vec![LinkAttribute::IfName(pair.peer.to_string())];
        if let Some(mac) = pair.peer_mac {
            peer_attrs.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = pair.mtu {
            peer_attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = pair.peer_netns {
            peer_attrs.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        // (The peer cannot be brought up in this request: veth refuses to
        // open an end before both are registered, ENOTCONN.)
        let peer = message(0, peer_attrs);
        let mut attrs = vec![LinkAttribute::IfName(pair.name.to_string())];
        if let Some(mtu) = pair.mtu {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(bridge) = pair.controller {
            attrs.push(LinkAttribute::Controller(bridge));
        }
        attrs.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let mut m = message(0, attrs);
        if pair.up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        self.request(
            "create veth",
            &pair.name,
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Delete the link `index` (deleting one end of a veth pair deletes both).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.request(
            "delete link",
            &index,
            RouteNetlinkMessage::DelLink(message(index, vec![])),
            0,
        )
        .map(drop)
    }

    /// Delete the link named `name`; `Ok(false)` when there is none.
    pub fn delete_link_named(&mut self, name: &str) -> Result<bool> {
        match self.link(name)? {
            Some(l) => match self.delete_link(l.index) {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }

    /// Whether the other end of `link` (a veth pair's) lives in a network
    /// namespace that is being destroyed: no process or file holds it any
    /// more, and the kernel's clean-up of it deletes the pair in the
    /// background (`link_netnsid` is -1, or the id no longer leads to a
    /// live namespace, `RTM_GETNSID` answering `ENOENT`). `false` for a
    /// link without an end elsewhere.
    pub fn peer_netns_gone(&mut self, link: &Link) -> Result<bool> {
        let id = match link.link_netnsid {
            None => return Ok(false),
            Some(id) if id < 0 => return Ok(true),
            Some(id) => id,
        };
        let mut m = NsidMessage::default();
        m.attributes.push(NsidAttribute::Id(id));
        match self.request("get netns id", &id, RouteNetlinkMessage::GetNsId(m), 0) {
            Ok(_) => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn set(&mut self, op: &'static str, index: u32, m: LinkMessage) -> Result<()> {
        self.request(op, &index, RouteNetlinkMessage::SetLink(m), 0)
            .map(drop)
    }

    /// Attach link `index` to the bridge `bridge`, or detach it with `None`
    /// (`IFLA_MASTER`).
    pub fn set_controller(&mut self, index: u32, bridge: Option<u32>) -> Result<()> {
        let m = message(index, vec![LinkAttribute::Controller(bridge.unwrap_or(0))]);
        self.set("set controller", index, m)
    }

    /// Move link `index` into the network namespace `netns`
    /// (`IFLA_NET_NS_FD`). The link keeps its name there unless it clashes.
    pub fn move_to_netns(&mut self, index: u32, netns: BorrowedFd<'_>) -> Result<()> {
        let m = message(index, vec![LinkAttribute::NetNsFd(netns.as_raw_fd())]);
        self.set("move link to namespace", index, m)
    }

    /// Rename link `index` (it must be down).
    pub fn rename(&mut self, index: u32, name: &str) -> Result<()> {
        check_ifname(name)?;
        let m = message(index, vec![LinkAttribute::IfName(name.to_string())]);
        self.set("rename link", index, m)
    }

    /// Set the MTU of link `index`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set(
            "set mtu",
            index,
            message(index, vec![LinkAttribute::Mtu(mtu)]),
        )
    }

    /// Set the hardware address of link `index`.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let m = message(index, vec![LinkAttribute::Address(mac.to_vec())]);
        self.set("set mac", index, m)
    }

    /// Turn hairpin mode of the bridge port `index` on or off
    /// (`IFLA_BRPORT_MODE`, `ip link set dev X type bridge_slave hairpin on`):
    /// frames may then leave through the port they came in by, so that a
    /// container reaches its own published port through the host.
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        self.hairpin(&index, index, vec![], on)
    }

    /// [`set_hairpin`](Self::set_hairpin) of the bridge port named `name`
    /// (found by the kernel: no lookup first).
    pub fn set_hairpin_named(&mut self, name: &str, on: bool) -> Result<()> {
        check_ifname(name)?;
        let attrs = vec![LinkAttribute::IfName(name.to_string())];
        self.hairpin(&name, 0, attrs, on)
    }

    fn hairpin(
        &mut self,
        target: &dyn std::fmt::Display,
        index: u32,
        mut attrs: Vec<LinkAttribute>,
        on: bool,
    ) -> Result<()> {
        attrs.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        let m = message(index, attrs);
        self.request("set hairpin", target, RouteNetlinkMessage::NewLink(m), 0)
            .map(drop)
    }

    /// Bring link `index` up or down (`IFF_UP`).
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut m = message(index, vec![]);
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        self.set(if up { "set link up" } else { "set link down" }, index, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_the_kernel_refuses_are_refused_first() {
        for bad in ["", "a/b", "a:b", "a b", "0123456789abcdef", ".", "..", "é"] {
            assert!(
                matches!(check_ifname(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["eth0", "dunnage0", "veth1234567", "0123456789abcde"] {
            check_ifname(good).unwrap();
        }
    }
}
