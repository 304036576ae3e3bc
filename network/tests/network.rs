//! Behaviour against the real kernel, only inside network namespaces the
//! tests create (see `common`). Needs root (skips otherwise, fails under
//! `DUNNAGE_REQUIRE_PRIVILEGED=1`), `ip`, `nsenter`, `nft` and busybox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::Netns;
use dunnage_network::rtnl::{Address, LinkKind, Route};
use dunnage_network::{Error, Netlink};
use dunnage_testsupport::require_root;

fn tools_present() -> bool {
    ["ip", "nsenter", "nft", "busybox"]
        .iter()
        .all(|t| dunnage_testsupport::require_command("network", t))
}

macro_rules! setup {
    () => {
        require_root!();
        if !tools_present() {
            return;
        }
    };
}

fn own_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

#[test]
fn netlink_manages_links_addresses_and_routes_in_a_namespace_given_by_fd() {
    setup!();
    let before = own_netns_inode();
    let a = Netns::new("nl-a");
    let b = Netns::new("nl-b");
    let mut nl = Netlink::open_in(a.fd()).unwrap();
    assert_eq!(own_netns_inode(), before, "the calling thread stays home");

    nl.add_bridge("br-t").unwrap();
    let err = nl.add_bridge("br-t").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    nl.add_veth("vt-host", "vt-peer").unwrap();
    let br = nl.require_link("br-t").unwrap();
    assert_eq!(br.kind, LinkKind::Bridge);
    let host = nl.require_link("vt-host").unwrap();
    assert_eq!(host.kind, LinkKind::Veth);
    nl.set_controller(host.index, Some(br.index)).unwrap();
    nl.set_mtu(host.index, 1400).unwrap();
    nl.set_up(host.index, true).unwrap();
    nl.set_up(br.index, true).unwrap();
    let host = nl.require_link("vt-host").unwrap();
    assert_eq!(host.controller, Some(br.index));
    assert_eq!(host.mtu, Some(1400));
    assert!(host.up);
    nl.set_controller(host.index, None).unwrap();
    assert_eq!(nl.require_link("vt-host").unwrap().controller, None);
    nl.set_up(host.index, false).unwrap();
    assert!(!nl.require_link("vt-host").unwrap().up);

    // Move the peer into b by fd, and configure it there.
    let peer = nl.require_link("vt-peer").unwrap();
    nl.move_to_netns(peer.index, b.fd()).unwrap();
    assert!(nl.link("vt-peer").unwrap().is_none());
    let mut nb = Netlink::open_in(b.fd()).unwrap();
    let p = nb.require_link("vt-peer").unwrap();
    nb.rename(p.index, "eth0").unwrap();
    nb.set_mac(p.index, [0x02, 0x42, 10, 1, 2, 3]).unwrap();
    nb.set_up(p.index, true).unwrap();
    let eth = nb.require_link("eth0").unwrap();
    assert_eq!(eth.mac.as_deref(), Some(&[0x02, 0x42, 10, 1, 2, 3][..]));
    let v4 = Address {
        link: eth.index,
        address: IpAddr::V4(Ipv4Addr::new(10, 204, 0, 2)),
        prefix_len: 24,
    };
    let v6 = Address {
        link: eth.index,
        address: IpAddr::V6("fd00:dead::2".parse::<Ipv6Addr>().unwrap()),
        prefix_len: 64,
    };
    nb.add_address(&v4).unwrap();
    nb.add_address(&v6).unwrap();
    let addrs = nb.addresses().unwrap();
    assert!(addrs.contains(&v4) && addrs.contains(&v6), "{addrs:?}");
    let r4 = Route {
        destination: None,
        gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 204, 0, 1))),
        link: Some(eth.index),
    };
    let r6 = Route {
        destination: Some(("fd00:beef::".parse().unwrap(), 48)),
        gateway: Some("fd00:dead::1".parse().unwrap()),
        link: Some(eth.index),
    };
    nb.add_route(&r4).unwrap();
    nb.add_route(&r6).unwrap();
    let routes = nb.routes().unwrap();
    assert!(routes.contains(&r4) && routes.contains(&r6), "{routes:?}");
    // What `ip` sees agrees.
    let shown = b.run(&["ip", "-o", "addr", "show", "dev", "eth0"]);
    assert!(
        shown.contains("10.204.0.2/24") && shown.contains("fd00:dead::2/64"),
        "{shown}"
    );
    nb.delete_route(&r4).unwrap();
    nb.delete_address(&v4).unwrap();
    assert!(!nb.addresses().unwrap().contains(&v4));
    // Deleting one end of the pair deletes the other.
    nb.delete_link(eth.index).unwrap();
    assert!(nl.link("vt-host").unwrap().is_none());
    assert_eq!(own_netns_inode(), before);
    // A bad fd or a missing link is a typed error, not a panic.
    assert_eq!(
        nl.delete_link(999_999).unwrap_err().raw_os_error(),
        Some(libc::ENODEV)
    );
    assert!(matches!(
        nl.link("bad/name"),
        Err(Error::InvalidName { .. })
    ));
}
