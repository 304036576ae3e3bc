//! Behaviour against the real kernel, only inside network namespaces the
//! tests create (see `common`). Needs root (skips otherwise, fails under
//! `DUNNAGE_REQUIRE_PRIVILEGED=1`), `ip`, `nsenter`, `nft` and busybox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{HOST_UPLINK, Lab, Netns, OUTSIDE, nc_read, retry};
use dunnage_network::rtnl::{Address, LinkKind, Route, VethPair};
use dunnage_network::{Error, Netlink, NetworkSpec, Networks, PortMapping, netns};
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

fn spec(name: &str, subnet: &str) -> NetworkSpec {
    let mut s = NetworkSpec::new(name);
    s.subnet(subnet.parse().unwrap());
    s
}

fn ports(specs: &[&str]) -> Vec<PortMapping> {
    specs.iter().map(|s| s.parse().unwrap()).collect()
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

    // A pair made in one request: this end on the bridge and up, the peer
    // created in b with its name, MAC and MTU.
    nl.add_veth_pair(&VethPair {
        name: "vt-one",
        peer: "eth1",
        mtu: Some(1280),
        controller: Some(br.index),
        up: true,
        peer_mac: Some([0x02, 0x42, 10, 9, 9, 9]),
        peer_netns: Some(b.fd()),
    })
    .unwrap();
    let one = nl.require_link("vt-one").unwrap();
    assert_eq!(
        (one.controller, one.mtu, one.up),
        (Some(br.index), Some(1280), true)
    );
    let eth1 = nb.require_link("eth1").unwrap();
    assert_eq!(eth1.mac.as_deref(), Some(&[0x02, 0x42, 10, 9, 9, 9][..]));
    assert_eq!(eth1.mtu, Some(1280));
    assert!(nl.link("eth1").unwrap().is_none());
    let e = nl
        .add_veth_pair(&VethPair {
            peer_netns: Some(b.fd()),
            ..VethPair::new("vt-two", "eth1")
        })
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    assert!(nl.link("vt-two").unwrap().is_none(), "nothing half-made");
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

#[test]
fn two_containers_on_one_bridge_reach_each_other_over_tcp_and_udp() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.1.0/24")).unwrap();
    let c1 = Netns::new("c1");
    let c2 = Netns::new("c2");
    let a1 = lab.nets.attach("n1", "c1", c1.fd(), &[]).unwrap();
    let a2 = lab.nets.attach("n1", "c2", c2.fd(), &[]).unwrap();
    assert_eq!(a1.address, Ipv4Addr::new(10, 201, 1, 2));
    assert_eq!(a2.address, Ipv4Addr::new(10, 201, 1, 3));
    assert_eq!(a1.mac, "02:42:0a:c9:01:02");
    assert_eq!(a1.gateway, Ipv4Addr::new(10, 201, 1, 1));
    let shown = c1.run(&["ip", "-o", "link", "show", "eth0"]);
    assert!(shown.contains("02:42:0a:c9:01:02"), "{shown}");
    let route = c1.run(&["ip", "route", "show", "default"]);
    assert!(route.contains("via 10.201.1.1 dev eth0"), "{route}");

    // TCP: busybox nc server in c1, client in c2.
    let _server = c1.spawn(&[
        "busybox",
        "nc",
        "-l",
        "-p",
        "7000",
        "-e",
        "busybox",
        "echo",
        "tcp-from-c1",
    ]);
    assert_eq!(nc_read(&c2, a1.address, 7000).trim(), "tcp-from-c1");

    // UDP (Debian's busybox nc has no -u): sockets opened inside the
    // namespaces from threads that setns, the traffic is the same.
    let server = netns::run_in(c2.fd(), || Ok(UdpSocket::bind("0.0.0.0:7001").unwrap())).unwrap();
    let echo = std::thread::spawn(move || {
        server
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&buf[..n], from).unwrap();
        from
    });
    let client = netns::run_in(c1.fd(), || Ok(UdpSocket::bind("0.0.0.0:0").unwrap())).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    client
        .send_to(b"udp-from-c1", SocketAddr::from((a2.address, 7001)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"udp-from-c1");
    let from = echo.join().unwrap();
    assert_eq!(
        from.ip(),
        IpAddr::V4(a1.address),
        "no NAT between containers"
    );

    lab.nets.detach("n1", "c1").unwrap();
    lab.nets.detach("n1", "c2").unwrap();
}

#[test]
fn a_container_reaches_the_outside_masqueraded_as_the_host() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.2.0/24")).unwrap();
    let c = Netns::new("c");
    lab.nets.attach("n1", "c", c.fd(), &[]).unwrap();
    let listener = netns::run_in(lab.outside.fd(), move || {
        Ok(TcpListener::bind((OUTSIDE, 9000)).unwrap())
    })
    .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"hello-outside\n").unwrap();
        peer
    });
    assert_eq!(nc_read(&c, OUTSIDE, 9000).trim(), "hello-outside");
    let peer = server.join().unwrap();
    assert_eq!(
        peer.ip(),
        IpAddr::V4(HOST_UPLINK),
        "the source was masqueraded"
    );
    lab.nets.detach("n1", "c").unwrap();
}

fn read_through(ns: &Netns, to: Ipv4Addr, port: u16) -> String {
    retry(200, || {
        let stream = netns::run_in(ns.fd(), move || {
            Ok(TcpStream::connect_timeout(
                &SocketAddr::from((to, port)),
                Duration::from_secs(10),
            ))
        })
        .unwrap();
        let mut s = match stream {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return None,
            Err(e) => panic!("connecting to {to}:{port} from {}: {e}", ns.name),
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        (!out.is_empty()).then_some(out)
    })
}

#[test]
fn a_published_port_reaches_the_container_from_the_host_and_from_outside() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.3.0/24")).unwrap();
    let c = Netns::new("c");
    let a = lab
        .nets
        .attach(
            "n1",
            "c",
            c.fd(),
            &ports(&["8080:80", "10.203.0.1:8081:81"]),
        )
        .unwrap();
    assert_eq!(a.ports.len(), 2);
    let _s80 = c.spawn(&[
        "busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "echo", "port-80",
    ]);
    let _s81 = c.spawn(&[
        "busybox", "nc", "-ll", "-p", "81", "-e", "busybox", "echo", "port-81",
    ]);
    assert_eq!(
        read_through(&lab.outside, HOST_UPLINK, 8080).trim(),
        "port-80"
    );
    assert_eq!(
        read_through(&lab.outside, HOST_UPLINK, 8081).trim(),
        "port-81"
    );
    assert_eq!(read_through(&lab.host, HOST_UPLINK, 8080).trim(), "port-80");
    assert_eq!(
        read_through(&lab.host, Ipv4Addr::LOCALHOST, 8080).trim(),
        "port-80"
    );
    assert_eq!(
        read_through(&lab.host, Ipv4Addr::new(10, 201, 3, 1), 8080).trim(),
        "port-80"
    );
    // The container reaches its own published port through the host
    // (hairpin), and so does another container on the bridge.
    assert_eq!(nc_read(&c, HOST_UPLINK, 8080).trim(), "port-80");
    let other = Netns::new("c-other");
    lab.nets.attach("n1", "other", other.fd(), &[]).unwrap();
    assert_eq!(nc_read(&other, HOST_UPLINK, 8080).trim(), "port-80");
    lab.nets.detach("n1", "other").unwrap();
    lab.nets.detach("n1", "c").unwrap();
    assert!(!lab.host.ruleset().contains("dport 8080"));
}

fn helper_env() -> Option<(String, String, String, String, String)> {
    let v = std::env::var("DUNNAGE_NET_HELPER").ok()?;
    let mut parts = v.split('|').map(str::to_string);
    Some((
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ))
}

/// Run by the tests below as a separate process: attach one container.
#[test]
#[ignore = "a helper the lease tests run in a child process"]
fn helper_attach_one_container() {
    let Some((state, host, network, id, cns)) = helper_env() else {
        return;
    };
    let host = netns::open(Path::new(&host)).unwrap();
    let cns = netns::open(Path::new(&cns)).unwrap();
    let nets = Networks::open(Path::new(&state), host.as_fd()).unwrap();
    let a = nets.attach(&network, &id, cns.as_fd(), &[]).unwrap();
    println!("\nADDRESS={}", a.address);
}

fn attach_in_child(lab: &Lab, network: &str, id: &str, c: &Netns) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_attach_one_container",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "DUNNAGE_NET_HELPER",
            format!(
                "{}|{}|{network}|{id}|{}",
                lab.state.path().display(),
                lab.host.path.display(),
                c.path.display()
            ),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn child_address(child: std::process::Child) -> Ipv4Addr {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.split("ADDRESS=").nth(1))
        .unwrap_or_else(|| panic!("no address in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn leases_survive_a_restart_and_are_unique_under_concurrent_creation() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.4.0/24")).unwrap();
    // One process attaches and exits; a new handle (as after a restart)
    // sees the lease and does not hand its address out again.
    let first = Netns::new("c-first");
    let addr = child_address(attach_in_child(&lab, "n1", "first", &first));
    let reopened = Networks::open(lab.state.path(), lab.host.fd()).unwrap();
    let a = reopened.attachment("n1", "first").unwrap();
    assert_eq!(a.address, addr);
    assert!(
        first
            .run(&["ip", "-o", "addr", "show", "eth0"])
            .contains(&format!("{addr}/24"))
    );

    // Six processes at once.
    let cs: Vec<Netns> = (0..6).map(|i| Netns::new(&format!("c{i}"))).collect();
    let children: Vec<_> = cs
        .iter()
        .enumerate()
        .map(|(i, c)| attach_in_child(&lab, "n1", &format!("c{i}"), c))
        .collect();
    let mut addrs: Vec<Ipv4Addr> = children.into_iter().map(child_address).collect();
    addrs.push(addr);
    let mut unique = addrs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7, "{addrs:?}");
    let info = reopened.inspect("n1").unwrap();
    assert_eq!(info.containers.len(), 7);
    for l in &info.containers {
        assert!(addrs.contains(&l.address));
    }
    for i in 0..6 {
        reopened.detach("n1", &format!("c{i}")).unwrap();
    }
    reopened.detach("n1", "first").unwrap();
}

#[test]
fn removal_leaves_no_links_leases_or_rules() {
    setup!();
    let lab = Lab::new();
    let before = lab.host.links();
    lab.nets.create(&spec("n1", "10.201.5.0/24")).unwrap();
    let c = Netns::new("c");
    lab.nets
        .attach("n1", "c", c.fd(), &ports(&["8080:80/udp"]))
        .unwrap();
    let rules = lab.host.ruleset();
    assert!(
        rules.contains("table ip dunnage") && rules.contains("udp dport 8080"),
        "{rules}"
    );
    assert!(c.links().contains(&"eth0".to_string()));
    // Refused while attached.
    assert!(matches!(
        lab.nets.remove("n1"),
        Err(Error::NetworkInUse { .. })
    ));
    lab.nets.detach("n1", "c").unwrap();
    assert!(
        !c.links().contains(&"eth0".to_string()),
        "eth0 went with its pair"
    );
    assert!(lab.nets.inspect("n1").unwrap().containers.is_empty());
    lab.nets.remove("n1").unwrap();
    assert_eq!(lab.host.links(), before);
    assert!(
        !lab.host.ruleset().contains("dunnage"),
        "{}",
        lab.host.ruleset()
    );
    assert!(lab.nets.list().unwrap().is_empty());
    let left: Vec<_> = std::fs::read_dir(lab.state.join("networks"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        lab.nets.detach("n1", "c"),
        Err(Error::NotAttached { .. })
    ));
}

#[test]
fn a_full_subnet_gives_a_clear_error_and_creates_nothing() {
    setup!();
    let lab = Lab::new();
    // A /30 holds the gateway and one container.
    lab.nets.create(&spec("tiny", "10.201.6.0/30")).unwrap();
    let c1 = Netns::new("c1");
    let c2 = Netns::new("c2");
    lab.nets.attach("tiny", "c1", c1.fd(), &[]).unwrap();
    let links = lab.host.links();
    let err = lab.nets.attach("tiny", "c2", c2.fd(), &[]).unwrap_err();
    assert!(matches!(err, Error::SubnetFull { .. }), "{err}");
    assert!(err.to_string().contains("no free address"), "{err}");
    assert_eq!(lab.host.links(), links);
    assert!(!c2.links().contains(&"eth0".to_string()));
    assert_eq!(lab.nets.inspect("tiny").unwrap().containers.len(), 1);
    lab.nets.detach("tiny", "c1").unwrap();
    lab.nets.attach("tiny", "c2", c2.fd(), &[]).unwrap();
    lab.nets.detach("tiny", "c2").unwrap();
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.7.0/24")).unwrap();
    let links = lab.host.links();
    let rules = lab.host.ruleset();
    let check_unchanged = || {
        assert_eq!(lab.host.links(), links);
        assert_eq!(lab.host.ruleset(), rules);
    };
    assert!(matches!(
        "10.201.7.0/33".parse::<dunnage_network::Ipv4Net>(),
        Err(Error::InvalidCidr { .. })
    ));
    let e = lab.nets.create(&spec("n2", "10.201.7.128/25")).unwrap_err();
    assert!(matches!(e, Error::SubnetOverlap { .. }), "{e}");
    let e = lab.nets.create(&spec("n2", "10.201.0.0/16")).unwrap_err();
    assert!(matches!(e, Error::SubnetOverlap { .. }), "{e}");
    let e = lab.nets.create(&spec("n1", "10.202.0.0/24")).unwrap_err();
    assert!(matches!(e, Error::NetworkExists(_)), "{e}");
    let mut same_bridge = spec("n3", "10.202.0.0/24");
    same_bridge.bridge("n1");
    assert!(matches!(
        lab.nets.create(&same_bridge),
        Err(Error::BridgeInUse { .. })
    ));
    // A link of that name that is not ours: refused, left alone.
    let mut taken = spec("n4", "10.202.1.0/24");
    taken.bridge("up0");
    assert_eq!(
        lab.nets.create(&taken).unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );
    check_unchanged();

    let c1 = Netns::new("c1");
    let c2 = Netns::new("c2");
    lab.nets
        .attach("n1", "c1", c1.fd(), &ports(&["8080:80"]))
        .unwrap();
    let links = lab.host.links();
    let rules = lab.host.ruleset();
    let leases = lab.nets.inspect("n1").unwrap().containers;
    for bad in [
        ports(&["8080:81"]),
        ports(&["10.203.0.1:8080:80"]),
        ports(&["9090:80", "9090:81"]),
    ] {
        let e = lab.nets.attach("n1", "c2", c2.fd(), &bad).unwrap_err();
        assert!(matches!(e, Error::PortInUse { .. }), "{e}");
    }
    let e = lab.nets.attach("n1", "c1", c1.fd(), &[]).unwrap_err();
    assert!(matches!(e, Error::AlreadyAttached { .. }), "{e}");
    let e = lab.nets.attach("nope", "c2", c2.fd(), &[]).unwrap_err();
    assert!(matches!(e, Error::NetworkNotFound(_)), "{e}");
    let e = lab
        .nets
        .attach("n1", "../../etc", c2.fd(), &[])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    assert_eq!(lab.host.links(), links);
    assert_eq!(lab.host.ruleset(), rules);
    assert_eq!(lab.nets.inspect("n1").unwrap().containers, leases);
    assert!(!c2.links().contains(&"eth0".to_string()));
    // The other protocol, or another address, is free.
    lab.nets
        .attach("n1", "c2", c2.fd(), &ports(&["8080:80/udp"]))
        .unwrap();
    lab.nets.detach("n1", "c2").unwrap();
    lab.nets.detach("n1", "c1").unwrap();
}

#[test]
fn the_default_network_is_dunnage0_on_docker0s_subnet() {
    setup!();
    let lab = Lab::new();
    let cfg = lab.nets.ensure_default().unwrap();
    assert_eq!(cfg.name, "dunnage0");
    assert_eq!(cfg.subnet.to_string(), "172.17.0.0/16");
    assert_eq!(lab.nets.ensure_default().unwrap(), cfg);
    let shown = lab.host.run(&["ip", "-o", "addr", "show", "dunnage0"]);
    assert!(shown.contains("172.17.0.1/16"), "{shown}");
    assert_eq!(
        netns::read_sysctl(lab.host.fd(), "ipv4/conf/dunnage0/route_localnet").unwrap(),
        "1"
    );
    let c = Netns::new("c");
    let a = lab.nets.attach("dunnage0", "c", c.fd(), &[]).unwrap();
    assert_eq!(a.address, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(a.mac, "02:42:ac:11:00:02");
    lab.nets.detach("dunnage0", "c").unwrap();
    lab.nets.remove("dunnage0").unwrap();
}

#[test]
fn rules_come_back_in_a_new_host_namespace_and_after_a_flush() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.8.0/24")).unwrap();
    let c = Netns::new("c");
    lab.nets
        .attach("n1", "c", c.fd(), &ports(&["8080:80"]))
        .unwrap();
    // Something else flushes every table: reapply_rules restores ours.
    lab.host.run(&["nft", "flush", "ruleset"]);
    assert!(!lab.host.ruleset().contains("dunnage"));
    lab.nets.reapply_rules().unwrap();
    assert!(
        lab.host
            .ruleset()
            .contains("tcp dport 8080 dnat to 10.201.8.2:80")
    );
    lab.nets.detach("n1", "c").unwrap();

    // The same state in a new host namespace (as after a reboot): the
    // record names another namespace, so the next change applies the rules
    // there even though they did not change, and the bridge is repaired.
    let host2 = Netns::new("host2");
    let nets2 = Networks::open(lab.state.path(), host2.fd()).unwrap();
    let c2 = Netns::new("c2");
    nets2.attach("n1", "c2", c2.fd(), &[]).unwrap();
    let rules = host2.ruleset();
    assert!(
        rules.contains("table ip dunnage") && rules.contains("masquerade"),
        "{rules}"
    );
    assert!(host2.links().contains(&"n1".to_string()));
    nets2.detach("n1", "c2").unwrap();
}

#[test]
fn detach_after_the_container_namespace_is_gone_releases_everything() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.9.0/24")).unwrap();
    let before = lab.host.links();
    let c = Netns::new("c");
    let a = lab
        .nets
        .attach("n1", "c", c.fd(), &ports(&["8080:80"]))
        .unwrap();
    assert!(lab.host.links().contains(&a.host_veth));
    drop(c); // ip netns del: the kernel deletes the pair in the background
    lab.nets.detach("n1", "c").unwrap();
    // The kernel's clean-up of the namespace may still be running.
    retry(200, || (lab.host.links() == before).then_some(()));
    assert!(lab.nets.inspect("n1").unwrap().containers.is_empty());
    assert!(!lab.host.ruleset().contains("8080"));
    // The address is free again.
    let c2 = Netns::new("c2");
    assert_eq!(
        lab.nets.attach("n1", "c2", c2.fd(), &[]).unwrap().address,
        a.address
    );
    lab.nets.detach("n1", "c2").unwrap();
}

#[test]
fn a_failed_attach_undoes_its_lease_links_and_rules() {
    setup!();
    let lab = Lab::new();
    lab.nets.create(&spec("n1", "10.201.10.0/24")).unwrap();
    let c = Netns::new("c");
    // The container has an eth0 already: found after the lease is written
    // and while nft applies the new port's rules.
    c.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    let links = lab.host.links();
    let rules = lab.host.ruleset();
    let e = lab
        .nets
        .attach("n1", "c", c.fd(), &ports(&["8080:80"]))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    assert!(e.to_string().contains("eth0"), "{e}");
    assert_eq!(lab.host.links(), links);
    assert_eq!(lab.host.ruleset(), rules);
    assert!(lab.nets.inspect("n1").unwrap().containers.is_empty());
    // The port and the address are free for the next one.
    let c2 = Netns::new("c2");
    let a = lab
        .nets
        .attach("n1", "c2", c2.fd(), &ports(&["8080:80"]))
        .unwrap();
    assert_eq!(a.address, Ipv4Addr::new(10, 201, 10, 2));
    lab.nets.detach("n1", "c2").unwrap();
}

#[test]
fn networks_get_docker_style_ids_found_by_id_name_or_unique_prefix() {
    setup!();
    let lab = Lab::new();
    let a = lab.nets.create(&spec("ida", "10.212.1.0/24")).unwrap();
    let b = lab.nets.create(&spec("idb", "10.212.2.0/24")).unwrap();
    for cfg in [&a, &b] {
        assert_eq!(cfg.id.len(), 64, "{}", cfg.id);
        assert!(
            cfg.id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(cfg.created_unix_nanos > 0);
    }
    assert_ne!(a.id, b.id, "random at creation");
    // Persisted: the same after a reopen.
    let reopened = Networks::open(lab.state.path(), lab.host.fd()).unwrap();
    assert_eq!(reopened.inspect("ida").unwrap().config, a);
    // By full ID, name, unique prefix.
    assert_eq!(lab.nets.find(&a.id).unwrap().config.name, "ida");
    assert_eq!(lab.nets.find("idb").unwrap().config.id, b.id);
    assert_eq!(lab.nets.find(&a.id[..12]).unwrap().config.name, "ida");
    // Two recorded networks whose IDs share a prefix (written as files:
    // find reads the records only): the prefix is ambiguous.
    for (name, id, net) in [("pa", "abcdef0123", 1), ("pb", "abcdef0124", 2)] {
        let dir = lab.state.path().join("networks").join(name);
        std::fs::create_dir_all(dir.join("leases")).unwrap();
        let cfg = format!(
            r#"{{"name":"{name}","bridge":"{name}","subnet":"10.213.{net}.0/24","gateway":"10.213.{net}.1","mtu":1500,"id":"{id}{}"}}"#,
            "0".repeat(54)
        );
        std::fs::write(dir.join("config.json"), cfg).unwrap();
    }
    assert!(matches!(
        lab.nets.find("abcdef012"),
        Err(Error::AmbiguousNetwork { matches: 2, .. })
    ));
    assert_eq!(lab.nets.find("abcdef0124").unwrap().config.name, "pb");
    for name in ["pa", "pb"] {
        std::fs::remove_dir_all(lab.state.path().join("networks").join(name)).unwrap();
    }
    for bad in [
        "",
        "zz",
        "../ida",
        "IDA",
        &a.id.to_uppercase(),
        &format!("{}0", a.id),
    ] {
        assert!(
            matches!(lab.nets.find(bad), Err(Error::NetworkNotFound(_))),
            "{bad:?}"
        );
    }
    lab.nets.remove("ida").unwrap();
    lab.nets.remove("idb").unwrap();
    assert!(matches!(
        lab.nets.find(&a.id),
        Err(Error::NetworkNotFound(_))
    ));
}
