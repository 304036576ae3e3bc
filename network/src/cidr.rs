//! IPv4 subnets in CIDR notation, and the MAC address docker derives from
//! a container's IPv4 address.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// An IPv4 subnet: a network address (host bits zero) and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// The subnet `network/prefix_len`; host bits must be zero and the
    /// prefix at most 30 (a usable subnet has a gateway and a host).
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Ipv4Net, Error> {
        let input = || format!("{network}/{prefix_len}");
        if prefix_len > 30 {
            return Err(Error::InvalidCidr {
                input: input(),
                reason: "the prefix must be at most /30 to hold a gateway and a host",
            });
        }
        let net = Ipv4Net {
            network,
            prefix_len,
        };
        if u32::from(network) & !net.mask() != 0 {
            return Err(Error::InvalidCidr {
                input: input(),
                reason: "host bits are set (write the network address)",
            });
        }
        Ok(net)
    }

    /// [`Ipv4Net::new`] for constants: `None` where `new` gives an error.
    pub const fn const_new(network: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Net> {
        if prefix_len > 30 {
            return None;
        }
        let mask = match u32::MAX.checked_shl(32 - prefix_len as u32) {
            Some(m) => m,
            None => 0,
        };
        if network.to_bits() & !mask != 0 {
            return None;
        }
        Some(Ipv4Net {
            network,
            prefix_len,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u32 {
        // A /0 shifts by 32, which `<<` refuses: its mask is empty.
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// Whether `ip` lies in the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The `n`th address of the subnet (`n = 1` is the gateway by
    /// convention), or `None` past the last host address.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        let size = !self.mask(); // number of addresses - 1
        if n == 0 || n >= size {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.network) + n))
    }

    /// Whether `ip` is a host address of the subnet (neither the network
    /// nor the broadcast address).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.broadcast()
    }

    /// The number of host addresses.
    pub fn host_count(&self) -> u32 {
        (!self.mask()) - 1
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ipv4Net, Error> {
        let bad = |reason| Error::InvalidCidr {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the prefix length must be a number from 0 to 30"));
        }
        let prefix_len: u8 = prefix
            .parse()
            .map_err(|_| bad("the prefix length must be a number from 0 to 30"))?;
        Ipv4Net::new(network, prefix_len).map_err(|e| match e {
            Error::InvalidCidr { reason, .. } => bad(reason),
            other => other,
        })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The MAC address docker gives a container: `02:42` followed by the four
/// bytes of its IPv4 address (`172.17.0.2` -> `02:42:ac:11:00:02`), a
/// locally administered unicast address unique on the bridge.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_subnets() {
        let n: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        assert_eq!(n.to_string(), "172.17.0.0/16");
        assert_eq!(n.host(1), Some(Ipv4Addr::new(172, 17, 0, 1)));
        assert_eq!(n.host(65534), Some(Ipv4Addr::new(172, 17, 255, 254)));
        assert_eq!(n.host(65535), None);
        assert_eq!(n.host(0), None);
        assert_eq!(n.broadcast(), Ipv4Addr::new(172, 17, 255, 255));
        assert_eq!(n.host_count(), 65534);
        let small: Ipv4Net = "10.0.0.0/30".parse().unwrap();
        assert_eq!(small.host_count(), 2);
        assert_eq!(small.host(2), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(small.host(3), None);
    }

    #[test]
    fn refuses_malformed_and_hostile_cidrs() {
        for bad in [
            "",
            "/",
            "172.17.0.0",
            "172.17.0.0/",
            "/16",
            "172.17.0.0/33",
            "172.17.0.0/31",
            "172.17.0.0/-1",
            "172.17.0.0/+8",
            "172.17.0.0/016",
            "172.17.0.1/16",
            "172.17.0/16",
            "256.0.0.0/8",
            "::1/128",
            "172.17.0.0/16/2",
            "172.17.0.0 /16",
            "172.17.0.0/1\u{0}6",
            "172.17.0.0/99999999999999999999",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Net>(), Err(Error::InvalidCidr { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let a: Ipv4Net = "10.1.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.1.2.0/24".parse().unwrap();
        let c: Ipv4Net = "10.2.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.overlaps(&c));
    }

    #[test]
    fn mac_is_derived_from_the_ip_as_docker_does() {
        let mac = mac_for(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(format_mac(&mac), "02:42:ac:11:00:02");
    }
}
