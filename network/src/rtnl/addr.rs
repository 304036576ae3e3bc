//! Addresses (`RTM_*ADDR`) and routes (`RTM_*ROUTE`), IPv4 and IPv6.

use std::fmt;
use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use crate::error::{Error, Result};

/// An address assigned to a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The link's index.
    pub link: u32,
    /// The address.
    pub address: IpAddr,
    /// The prefix length of its subnet.
    pub prefix_len: u8,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on link {}",
            self.address, self.prefix_len, self.link
        )
    }
}

/// A route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination and its prefix length; `None` for the default route.
    pub destination: Option<(IpAddr, u8)>,
    /// The next hop, if the route goes through a gateway.
    pub gateway: Option<IpAddr>,
    /// The output link's index.
    pub link: Option<u32>,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.destination {
            Some((a, p)) => write!(f, "{a}/{p}")?,
            None => write!(f, "default")?,
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(l) = self.link {
            write!(f, " dev {l}")?;
        }
        Ok(())
    }
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn max_prefix(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn address_message(a: &Address) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&a.address);
    m.header.prefix_len = a.prefix_len;
    m.header.index = a.link;
    m.attributes.push(AddressAttribute::Local(a.address));
    m.attributes.push(AddressAttribute::Address(a.address));
    m
}

impl Netlink {
    /// Assign `address` to its link (`ip addr add`).
    pub fn add_address(&mut self, address: &Address) -> Result<()> {
        check_prefix(address.address, address.prefix_len, address)?;
        self.request(
            "add address",
            address,
            RouteNetlinkMessage::NewAddress(address_message(address)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Remove `address` from its link (`ip addr del`).
    pub fn delete_address(&mut self, address: &Address) -> Result<()> {
        self.request(
            "delete address",
            address,
            RouteNetlinkMessage::DelAddress(address_message(address)),
            0,
        )
        .map(drop)
    }

    /// Every address of the namespace, IPv4 and IPv6.
    pub fn addresses(&mut self) -> Result<Vec<Address>> {
        let answers = self.dump(
            "list addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        let mut out = Vec::new();
        for m in answers {
            let RouteNetlinkMessage::NewAddress(m) = m else {
                continue;
            };
            // IFA_LOCAL is the interface's own address on point-to-point
            // links; IFA_ADDRESS elsewhere. Prefer LOCAL when present.
            let mut local = None;
            let mut addr = None;
            for a in &m.attributes {
                match a {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => addr = Some(*ip),
                    _ => {}
                }
            }
            if let Some(address) = local.or(addr) {
                out.push(Address {
                    link: m.header.index,
                    address,
                    prefix_len: m.header.prefix_len,
                });
            }
        }
        Ok(out)
    }

    /// Add `route` to the main table (`ip route add`).
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let m = route_message(route)?;
        self.request(
            "add route",
            route,
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Remove `route` from the main table (`ip route del`).
    pub fn delete_route(&mut self, route: &Route) -> Result<()> {
        let m = route_message(route)?;
        self.request("delete route", route, RouteNetlinkMessage::DelRoute(m), 0)
            .map(drop)
    }

    /// The unicast routes of the main table, IPv4 and IPv6.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut q = RouteMessage::default();
            q.header.address_family = fam;
            for m in self.dump("list routes", RouteNetlinkMessage::GetRoute(q))? {
                let RouteNetlinkMessage::NewRoute(m) = m else {
                    continue;
                };
                if m.header.table != RouteHeader::RT_TABLE_MAIN
                    || m.header.kind != RouteType::Unicast
                {
                    continue;
                }
                let mut r = Route {
                    destination: None,
                    gateway: None,
                    link: None,
                };
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(d) => {
                            r.destination =
                                ip_of(d).map(|ip| (ip, m.header.destination_prefix_length))
                        }
                        RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
                        RouteAttribute::Oif(i) => r.link = Some(*i),
                        _ => {}
                    }
                }
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn check_prefix(ip: IpAddr, prefix: u8, what: &dyn fmt::Display) -> Result<()> {
    if prefix > max_prefix(&ip) {
        return Err(Error::Netlink {
            op: "check prefix length",
            target: what.to_string(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    Ok(())
}

fn route_message(route: &Route) -> Result<RouteMessage> {
    let fam_ip = route
        .destination
        .map(|(ip, _)| ip)
        .or(route.gateway)
        .ok_or_else(|| Error::Netlink {
            op: "build route",
            target: route.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a route needs a destination or a gateway",
            ),
        })?;
    if let (Some(g), Some((d, _))) = (route.gateway, route.destination)
        && family(&g) != family(&d)
    {
        return Err(Error::Netlink {
            op: "build route",
            target: route.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "destination and gateway are of different families",
            ),
        });
    }
    let mut m = RouteMessage::default();
    m.header.address_family = family(&fam_ip);
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.kind = RouteType::Unicast;
    m.header.scope = if route.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if let Some((d, p)) = route.destination {
        check_prefix(d, p, route)?;
        m.header.destination_prefix_length = p;
        m.attributes.push(RouteAttribute::Destination(d.into()));
    }
    if let Some(g) = route.gateway {
        m.attributes.push(RouteAttribute::Gateway(g.into()));
    }
    if let Some(l) = route.link {
        m.attributes.push(RouteAttribute::Oif(l));
    }
    Ok(m)
}
