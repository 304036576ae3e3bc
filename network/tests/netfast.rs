//! The fast paths of setup and teardown against the real kernel, only in
//! network namespaces the tests create (`dunnage-test-*`): the rule set
//! sent as nf_tables netlink messages is the one `nft` makes of its JSON
//! form, a refused batch is a typed error that changes nothing, and a
//! detach deletes the veth pair itself only while the container's
//! namespace lives. Needs root (skips otherwise, fails under
//! `DUNNAGE_REQUIRE_PRIVILEGED=1`), `ip`, `nsenter`, `nft` and busybox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Stdio;

use common::{Lab, Netns, retry};
use dunnage_network::{Error, Lease, Netlink, NetworkConfig, NetworkSpec, netns, nft};
use dunnage_testsupport::require_root;

macro_rules! setup {
    () => {
        require_root!();
        if !["ip", "nsenter", "nft", "busybox"]
            .iter()
            .all(|t| dunnage_testsupport::require_command("network", t))
        {
            return;
        }
    };
}

fn network(name: &str, subnet: &str, gateway: &str) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        bridge: format!("br-{name}"),
        subnet: subnet.parse().unwrap(),
        gateway: gateway.parse().unwrap(),
        mtu: 1500,
        id: "ab".repeat(32),
        created_unix_nanos: 0,
        gateway_implied: false,
    }
}

fn lease(id: &str, address: &str, ports: &[&str]) -> Lease {
    Lease {
        container_id: id.into(),
        address: address.parse().unwrap(),
        mac: String::new(),
        host_veth: format!("veth-{id}"),
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

/// `nft list table ip dunnage` in `ns`.
fn table(ns: &Netns) -> String {
    ns.run(&["nft", "list", "table", "ip", "dunnage"])
}

/// Apply nft's JSON form of `state` with `nft -j -f -` in `ns`.
fn apply_json(ns: &Netns, state: &[(NetworkConfig, Vec<Lease>)]) {
    let mut child = ns
        .cmd(&["nft", "-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let json = nft::ruleset(state).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft -j: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_netlink_rule_set_is_the_one_nft_makes_of_the_json() {
    setup!();
    let by_nft = Netns::new("nft-json");
    let by_netlink = Netns::new("nft-netlink");
    let full = vec![
        (
            // A prefix that ends inside a byte, and one that does not.
            network("a", "10.210.0.0/20", "10.210.0.1"),
            vec![
                lease("c1", "10.210.0.2", &["8080:80", "10.9.0.1:5353:53/udp"]),
                lease("c2", "10.210.0.3", &["127.0.0.1:9090:90/tcp"]),
            ],
        ),
        (
            network("b", "10.211.1.0/24", "10.211.1.1"),
            vec![lease("c3", "10.211.1.2", &[])],
        ),
    ];
    let smaller = vec![(
        network("a", "10.210.0.0/20", "10.210.0.1"),
        vec![lease("c2", "10.210.0.3", &["7070:70/udp"])],
    )];
    for state in [&full, &smaller, &full] {
        apply_json(&by_nft, state);
        nft::apply(by_netlink.fd(), state).unwrap();
        let want = table(&by_nft);
        assert!(want.contains("dnat to"), "{want}");
        assert_eq!(table(&by_netlink), want);
    }
    // No network: the table goes, and going again is no error.
    for _ in 0..2 {
        nft::apply(by_netlink.fd(), &[]).unwrap();
        assert!(!by_netlink.ruleset().contains("dunnage"));
    }
    // Other tables are left alone.
    by_netlink.run(&["nft", "add", "table", "ip", "other"]);
    nft::apply(by_netlink.fd(), &full).unwrap();
    nft::apply(by_netlink.fd(), &[]).unwrap();
    assert!(by_netlink.ruleset().contains("table ip other"));
}

#[test]
fn a_rule_set_larger_than_a_default_socket_buffer_is_applied() {
    setup!();
    let ns = Netns::new("nft-large");
    // 3,000 published ports: a batch of about 700 KiB.
    let leases: Vec<Lease> = (0..30u16)
        .map(|c| {
            let ports: Vec<String> = (0..100u16)
                .map(|p| format!("{}:80", 10_000 + c * 100 + p))
                .collect();
            let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
            lease(&format!("c{c}"), &format!("10.214.0.{}", c + 2), &ports)
        })
        .collect();
    let state = vec![(network("a", "10.214.0.0/24", "10.214.0.1"), leases)];
    nft::apply(ns.fd(), &state).unwrap();
    let listed = table(&ns);
    assert_eq!(listed.matches("dnat to").count(), 3000);
    assert!(listed.contains("tcp dport 12999 dnat to 10.214.0.31:80"));
}

#[test]
fn a_refused_rule_set_is_a_typed_error_and_changes_nothing() {
    setup!();
    let ns = Netns::new("nft-refused");
    let state = vec![(
        network("a", "10.212.0.0/24", "10.212.0.1"),
        vec![lease("c1", "10.212.0.2", &["8080:80"])],
    )];
    nft::apply(ns.fd(), &state).unwrap();
    // Someone else made a regular chain named like our base chain: the
    // kernel refuses to turn it into a base chain; the whole batch (flush
    // included) is undone.
    ns.run(&["nft", "delete", "table", "ip", "dunnage"]);
    ns.run(&["nft", "add", "table", "ip", "dunnage"]);
    ns.run(&["nft", "add", "chain", "ip", "dunnage", "output"]);
    ns.run(&["nft", "add", "rule", "ip", "dunnage", "output", "counter"]);
    let before = ns.ruleset();
    let e = nft::apply(ns.fd(), &state).unwrap_err();
    assert!(matches!(e, Error::Netlink { .. }), "{e:?}");
    assert!(e.raw_os_error().is_some(), "{e:?}");
    assert!(e.to_string().contains("chain output"), "{e}");
    assert_eq!(ns.ruleset(), before);
}

/// The host end of the container's pair, in `lab`'s host namespace.
fn host_end(lab: &Lab, name: &str) -> Option<dunnage_network::rtnl::Link> {
    Netlink::open_in(lab.host.fd()).unwrap().link(name).unwrap()
}

#[test]
fn detach_deletes_the_pair_itself_while_the_container_namespace_lives() {
    setup!();
    let lab = Lab::new();
    let mut spec = NetworkSpec::new("n1");
    spec.subnet("10.213.0.0/24".parse().unwrap());
    lab.nets.create(&spec).unwrap();
    let c = Netns::new("c");
    let a = lab.nets.attach("n1", "c", c.fd(), &[]).unwrap();
    // What attach sets without looking links up first: hairpin mode on the
    // host end (by name); the container's end is up.
    let shown = lab.host.run(&["ip", "-d", "link", "show", &a.host_veth]);
    assert!(shown.contains("hairpin on"), "{shown}");
    let eth0 = c.run(&["ip", "link", "show", "eth0"]);
    assert!(
        eth0.contains(",UP") && eth0.contains("02:42:0a:d5:00:02"),
        "{eth0}"
    );
    let link = host_end(&lab, &a.host_veth).unwrap();
    let mut nl = Netlink::open_in(lab.host.fd()).unwrap();
    assert!(link.link_netnsid.is_some_and(|id| id >= 0), "{link:?}");
    assert!(!nl.peer_netns_gone(&link).unwrap());
    lab.nets.detach("n1", "c").unwrap();
    // Gone when detach returns: the namespace may be attached again.
    assert!(host_end(&lab, &a.host_veth).is_none());
    assert!(!c.links().contains(&"eth0".to_string()));
    lab.nets.attach("n1", "c", c.fd(), &[]).unwrap();
    lab.nets.detach("n1", "c").unwrap();
}

#[test]
fn detach_leaves_the_pair_of_a_dying_namespace_to_the_kernel() {
    setup!();
    let lab = Lab::new();
    let mut spec = NetworkSpec::new("n1");
    spec.subnet("10.213.1.0/24".parse().unwrap());
    lab.nets.create(&spec).unwrap();
    let before = lab.host.links();
    // A namespace held only by this fd, as a container's is by its
    // processes: closing it starts the kernel's clean-up.
    let c = netns::create().unwrap();
    let a = lab
        .nets
        .attach("n1", "c", c.as_fd(), &["8080:80".parse().unwrap()])
        .unwrap();
    // The container's side is set up (without netlink there; busybox
    // `ifconfig` and `route` read it with ioctls and /proc: an `ip` run
    // there would hold the namespace as long as the attach's netlink
    // socket used to).
    let ns = format!("--net=/proc/{}/fd/{}", std::process::id(), c.as_raw_fd());
    let eth0 = lab
        .host
        .run(&["nsenter", &ns, "busybox", "ifconfig", "eth0"]);
    assert!(
        eth0.contains("inet addr:10.213.1.2")
            && eth0.contains("Bcast:10.213.1.255")
            && eth0.contains("Mask:255.255.255.0")
            && eth0.contains(" UP "),
        "{eth0}"
    );
    let lo = lab.host.run(&["nsenter", &ns, "busybox", "ifconfig", "lo"]);
    assert!(lo.contains(" UP "), "{lo}");
    let routes = lab.host.run(&["nsenter", &ns, "busybox", "route", "-n"]);
    assert!(
        routes
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "0.0.0.0",
                    "10.213.1.1",
                    "0.0.0.0",
                    "UG",
                    "0",
                    "0",
                    "0",
                    "eth0"
                ]),
        "{routes}"
    );
    drop(c);
    // Nothing of the attach holds the namespace: with its last fd closed
    // the kernel counts it gone, so the host end says its peer's
    // namespace is dying (until the kernel deletes it). Usually at once;
    // right after an attach the kernel itself may hold the namespace for
    // a few ms (seen in the benches when the fd is closed within ~1 ms of
    // the attach), hence the bounded retry (no timing is asserted).
    let mut nl = Netlink::open_in(lab.host.fd()).unwrap();
    retry(400, || match host_end(&lab, &a.host_veth) {
        None => Some(()),
        Some(l) => nl.peer_netns_gone(&l).unwrap().then_some(()),
    });
    lab.nets.detach("n1", "c").unwrap();
    // Lease and rules are released when detach returns; the pair goes with
    // the namespace, in the kernel's own time: "removal leaves no links"
    // means no links once that clean-up has run (waited for here, bounded:
    // 400 tries 50 ms apart).
    assert!(lab.nets.inspect("n1").unwrap().containers.is_empty());
    assert!(!lab.host.ruleset().contains("8080"));
    retry(400, || host_end(&lab, &a.host_veth).is_none().then_some(()));
    assert_eq!(lab.host.links(), before);
    // With the old host end gone, the address is handed out again (and a
    // record of it held, if detach wrote one, is gone).
    let c2 = netns::create().unwrap();
    let again = lab.nets.attach("n1", "c2", c2.as_fd(), &[]).unwrap();
    assert_eq!(again.address, a.address);
    let records = lab.nets.state_dir().join("networks/n1/releasing");
    assert!(
        std::fs::read_dir(&records).map_or(true, |mut d| d.next().is_none()),
        "{records:?}"
    );
    drop(c2);
    lab.nets.detach("n1", "c2").unwrap();
}

#[test]
fn an_address_is_not_handed_out_while_the_old_host_end_exists() {
    setup!();
    let lab = Lab::new();
    let mut spec = NetworkSpec::new("n1");
    spec.subnet("10.213.3.0/24".parse().unwrap());
    lab.nets.create(&spec).unwrap();
    // What detach records when it leaves a pair to the kernel: .2 held by
    // the host end `vethheld0` (a veth pair of the test's stands for it).
    lab.host.run(&[
        "ip",
        "link",
        "add",
        "vethheld0",
        "type",
        "veth",
        "peer",
        "name",
        "vethheld1",
    ]);
    let dir = lab.nets.state_dir().join("networks/n1/releasing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10.213.3.2.json"),
        r#"{"address":"10.213.3.2","host_veth":"vethheld0"}"#,
    )
    .unwrap();
    let c = Netns::new("c");
    let a = lab.nets.attach("n1", "c", c.fd(), &[]).unwrap();
    assert_eq!(a.address.to_string(), "10.213.3.3");
    lab.nets.detach("n1", "c").unwrap();
    assert!(dir.join("10.213.3.2.json").exists());
    // Once it is gone, the next attach reclaims the address.
    lab.host.run(&["ip", "link", "del", "vethheld0"]);
    let a = lab.nets.attach("n1", "c", c.fd(), &[]).unwrap();
    assert_eq!(a.address.to_string(), "10.213.3.2");
    assert!(!dir.join("10.213.3.2.json").exists());
    lab.nets.detach("n1", "c").unwrap();
    // A damaged record is a typed error, and the attach creates nothing.
    std::fs::write(dir.join("10.213.3.9.json"), "{not json").unwrap();
    let before = lab.host.links();
    let e = lab.nets.attach("n1", "c", c.fd(), &[]).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(lab.host.links(), before);
    assert!(lab.nets.inspect("n1").unwrap().containers.is_empty());
    std::fs::remove_file(dir.join("10.213.3.9.json")).unwrap();
    lab.nets.remove("n1").unwrap();
}
