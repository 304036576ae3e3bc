//! What a network is made of before it exists: [`NetworkSpec`] and its
//! defaults (docker0's), resolved and checked without touching the system.

use std::net::Ipv4Addr;

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::store::NetworkConfig;

/// The name (and bridge name) of the default network.
pub const DEFAULT_NETWORK: &str = "dunnage0";

/// The default network's subnet, the one docker0 uses.
pub const DEFAULT_SUBNET: Ipv4Net = match Ipv4Net::const_new(Ipv4Addr::new(172, 17, 0, 0), 16) {
    Some(n) => n,
    None => unreachable!(),
};

/// The name of the container's end of its veth pair.
pub const CONTAINER_IFNAME: &str = "eth0";

/// The MTU used unless a network asks for another.
pub const DEFAULT_MTU: u32 = 1500;

/// What to create: a network's name and optional settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    name: String,
    subnet: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
    bridge: Option<String>,
    mtu: Option<u32>,
}

impl NetworkSpec {
    /// A network called `name`, with the default subnet (`172.17.0.0/16`),
    /// gateway (the subnet's first address), bridge name (the network's
    /// name) and MTU (1500).
    pub fn new(name: impl Into<String>) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            subnet: None,
            gateway: None,
            bridge: None,
            mtu: None,
        }
    }

    /// Use `subnet`.
    pub fn subnet(&mut self, subnet: Ipv4Net) -> &mut NetworkSpec {
        self.subnet = Some(subnet);
        self
    }

    /// Use `gateway` as the bridge's address (a host address of the subnet).
    pub fn gateway(&mut self, gateway: Ipv4Addr) -> &mut NetworkSpec {
        self.gateway = Some(gateway);
        self
    }

    /// Name the bridge `bridge` (at most 15 bytes).
    pub fn bridge(&mut self, bridge: impl Into<String>) -> &mut NetworkSpec {
        self.bridge = Some(bridge.into());
        self
    }

    /// Use `mtu` on the bridge and the veth pairs.
    pub fn mtu(&mut self, mtu: u32) -> &mut NetworkSpec {
        self.mtu = Some(mtu);
        self
    }

    /// Check every setting and fill in the defaults, without touching the
    /// system: what [`Networks::create`](crate::Networks::create) will create.
    pub fn resolve(&self) -> Result<NetworkConfig> {
        check_name("network", &self.name, 64)?;
        let bridge = self.bridge.clone().unwrap_or_else(|| self.name.clone());
        crate::rtnl::link::check_ifname(&bridge)?;
        let subnet = self.subnet.unwrap_or(DEFAULT_SUBNET);
        let gateway = match self.gateway {
            Some(g) => g,
            None => subnet.host(1).ok_or_else(|| Error::InvalidCidr {
                input: subnet.to_string(),
                reason: "the subnet has no host address",
            })?,
        };
        if !subnet.is_host(gateway) {
            return Err(Error::AddressOutsideSubnet {
                address: gateway,
                subnet,
            });
        }
        let mtu = self.mtu.unwrap_or(DEFAULT_MTU);
        if !(68..=65535).contains(&mtu) {
            return Err(Error::InvalidMtu(mtu));
        }
        let id = dunnage_base::rand::random_hex(32).map_err(Error::io("random", "/dev/urandom"))?;
        let created_unix_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Ok(NetworkConfig {
            name: self.name.clone(),
            bridge,
            subnet,
            gateway,
            mtu,
            id,
            created_unix_nanos,
            gateway_implied: self.subnet.is_some() && self.gateway.is_none(),
        })
    }
}

pub(crate) fn check_name(kind: &'static str, name: &str, max: usize) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    let Some(first) = name.bytes().next() else {
        return bad("empty");
    };
    if name.len() > max {
        return bad("too long");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_resolve_to_docker_like_defaults() {
        let cfg = NetworkSpec::new("dunnage0").resolve().unwrap();
        assert_eq!(cfg.subnet.to_string(), "172.17.0.0/16");
        assert_eq!(cfg.gateway, Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(cfg.bridge, "dunnage0");
        assert_eq!(cfg.mtu, 1500);
        assert!(!cfg.gateway_implied);
        assert_eq!(cfg.id.len(), 64);
        assert_ne!(NetworkSpec::new("dunnage0").resolve().unwrap().id, cfg.id);
        let mut spec = NetworkSpec::new("n");
        spec.subnet("10.1.0.0/24".parse().unwrap());
        assert!(
            spec.resolve().unwrap().gateway_implied,
            "derived from the subnet"
        );
        spec.gateway("10.1.0.9".parse().unwrap());
        assert!(!spec.resolve().unwrap().gateway_implied, "given");
    }

    #[test]
    fn bad_specs_are_refused_with_typed_errors() {
        let bad = |s: &NetworkSpec| s.resolve().unwrap_err();
        assert!(matches!(
            bad(&NetworkSpec::new("")),
            Error::InvalidName { .. }
        ));
        assert!(matches!(
            bad(&NetworkSpec::new("../x")),
            Error::InvalidName { .. }
        ));
        assert!(matches!(
            bad(&NetworkSpec::new("a-network-name-too-long-for-a-bridge")),
            Error::InvalidName { .. }
        ));
        let mut s = NetworkSpec::new("n");
        s.subnet("10.0.0.0/24".parse().unwrap())
            .gateway(Ipv4Addr::new(10, 0, 0, 255));
        assert!(matches!(bad(&s), Error::AddressOutsideSubnet { .. }));
        let mut s = NetworkSpec::new("n");
        s.mtu(10);
        assert!(matches!(bad(&s), Error::InvalidMtu(10)));
    }
}
