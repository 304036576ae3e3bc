//! The kernel side of a network and of one attachment: the bridge with
//! its gateway address, the veth pair, the container's interface, address
//! and route; and the choice of the address.

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;

use crate::cidr::mac_for;
use crate::error::{Error, Result};
use crate::ifconfig;
use crate::rtnl::{Address, Netlink, VethPair};
use crate::spec::CONTAINER_IFNAME;
use crate::store::{Lease, NetworkConfig};

/// Make sure the bridge exists, carries the gateway address and is up,
/// with forwarding and `route_localnet` on (repairs a bridge lost to a
/// reboot or removed by hand). The two sysctls are written when something
/// was repaired (or made) here: a bridge found whole was set up by an
/// earlier call, which wrote them; writing them again on every attach
/// costs a thread in the host namespace. (Forwarding switched off by
/// hand afterwards is not repaired until the bridge is.) Returns the
/// bridge's index.
pub(crate) fn ensure_bridge(
    host_netns: BorrowedFd<'_>,
    nl: &mut Netlink,
    cfg: &NetworkConfig,
) -> Result<u32> {
    let mut repaired = false;
    let bridge = match nl.link(&cfg.bridge)? {
        Some(l) => l,
        None => {
            repaired = true;
            nl.add_bridge(&cfg.bridge)?;
            nl.require_link(&cfg.bridge)?
        }
    };
    if bridge.mtu != Some(cfg.mtu) {
        repaired = true;
        nl.set_mtu(bridge.index, cfg.mtu)?;
    }
    let gw = Address {
        link: bridge.index,
        address: cfg.gateway.into(),
        prefix_len: cfg.subnet.prefix_len(),
    };
    // Adding is cheaper than listing every address of the host (one
    // per container's veth); EEXIST says it is there.
    match nl.add_address(&gw) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        r => {
            repaired = true;
            r?
        }
    }
    if !bridge.up {
        repaired = true;
        nl.set_up(bridge.index, true)?;
    }
    if !repaired {
        return Ok(bridge.index);
    }
    let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", cfg.bridge);
    crate::netns::run_in(host_netns, move || {
        for path in ["/proc/sys/net/ipv4/ip_forward", localnet.as_str()] {
            std::fs::write(path, "1").map_err(Error::io("write sysctl", path))?;
        }
        Ok(())
    })?;
    Ok(bridge.index)
}

/// The lowest host address of the subnet that is neither the gateway nor
/// leased nor `held` (by a detached container's dying namespace).
pub(crate) fn free_address(
    cfg: &NetworkConfig,
    leases: &[Lease],
    held: &[Ipv4Addr],
) -> Result<Ipv4Addr> {
    let taken: std::collections::HashSet<Ipv4Addr> = leases
        .iter()
        .map(|l| l.address)
        .chain(held.iter().copied())
        .collect();
    (1..=cfg.subnet.host_count())
        .filter_map(|n| cfg.subnet.host(n))
        .find(|ip| *ip != cfg.gateway && !taken.contains(ip))
        .ok_or_else(|| Error::SubnetFull {
            network: cfg.name.clone(),
            subnet: cfg.subnet,
        })
}

/// Create the veth pair, put the host end on the bridge `bridge` (an
/// index) and the peer into the container as `eth0` with its MAC; then
/// bring it up with its address and default route. What can go in the
/// pair's creation request goes there, and nothing is looked up that the
/// kernel finds itself (a taken `eth0` makes the creation fail whole; only
/// then is it looked up, for the error).
///
/// No netlink socket is made in the container's namespace: the container's
/// side is set up with ioctls (see [`crate::ifconfig`]), so that nothing of
/// ours holds the namespace once the container's processes are gone and
/// the kernel deletes the pair with it.
pub(crate) fn plumb(
    host: &mut Netlink,
    cfg: &NetworkConfig,
    bridge: u32,
    lease: &Lease,
    container_netns: BorrowedFd<'_>,
) -> Result<()> {
    let created = host.add_veth_pair(&VethPair {
        name: &lease.host_veth,
        peer: CONTAINER_IFNAME,
        mtu: Some(cfg.mtu),
        controller: Some(bridge),
        up: true,
        peer_mac: Some(mac_for(lease.address)),
        peer_netns: Some(container_netns),
    });
    if let Err(e) = created {
        if e.raw_os_error() == Some(libc::EEXIST)
            && ifconfig::has_interface(container_netns, CONTAINER_IFNAME)?
        {
            return Err(Error::Netlink {
                op: "create the container's interface",
                target: CONTAINER_IFNAME.to_string(),
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            });
        }
        return Err(e);
    }
    // Docker does the same when it publishes ports without its proxy.
    host.set_hairpin_named(&lease.host_veth, true)?;
    ifconfig::configure(
        container_netns,
        &ifconfig::Config {
            ifname: CONTAINER_IFNAME.to_string(),
            address: lease.address,
            prefix_len: cfg.subnet.prefix_len(),
            gateway: cfg.gateway,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::NetworkSpec;

    #[test]
    fn addresses_are_leased_lowest_first_skipping_the_gateway() {
        let mut spec = NetworkSpec::new("n");
        spec.subnet("10.0.0.0/29".parse().unwrap());
        let cfg = spec.resolve().unwrap();
        let mut leases = Vec::new();
        for want in 2..=6 {
            let ip = free_address(&cfg, &leases, &[]).unwrap();
            assert_eq!(ip, Ipv4Addr::new(10, 0, 0, want));
            leases.push(Lease {
                container_id: format!("c{want}"),
                address: ip,
                mac: String::new(),
                host_veth: String::new(),
                ports: vec![],
            });
        }
        assert!(matches!(
            free_address(&cfg, &leases, &[]),
            Err(Error::SubnetFull { .. })
        ));
        leases.remove(1);
        // Held by a dying namespace: not handed out until it is gone.
        let held = [Ipv4Addr::new(10, 0, 0, 3)];
        assert!(matches!(
            free_address(&cfg, &leases, &held),
            Err(Error::SubnetFull { .. })
        ));
        assert_eq!(
            free_address(&cfg, &leases, &[]).unwrap(),
            Ipv4Addr::new(10, 0, 0, 3)
        );
    }
}
