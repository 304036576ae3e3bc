//! Containers on bridge networks (`Network::Bridge`) through the facade
//! and the CLI, against the real kernel, only inside network namespaces
//! the tests make (`dunnage-test-*`): one stands in for the host (the
//! library, or the CLI under `nsenter --net`, runs there, so the bridge,
//! the veth pairs' host ends and the nftables rules live there) and one
//! for an "outside" machine on a veth link 10.203.0.1 <-> 10.203.0.2.
//! Nothing is created in, or sent from, the machine's own network
//! namespace. Needs root (skips otherwise, fails under
//! `DUNNAGE_REQUIRE_PRIVILEGED=1`), `ip`, `nsenter`, `nft` and busybox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../network/tests/common/mod.rs"]
mod netlab;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::Fixture;
use dunnage::container::network::{NetworkSpec, PortMapping};
use dunnage::container::{ContainerHandle, Error, Network, StdioMode};
use dunnage_network::netns;
use dunnage_testsupport::{example_binary, require_root};
use netlab::{HOST_UPLINK, Lab, Netns, OUTSIDE, retry};

fn tools_present() -> bool {
    ["ip", "nsenter", "nft", "busybox"]
        .iter()
        .all(|t| dunnage_testsupport::require_command("container_network", t))
}

macro_rules! setup {
    () => {
        require_root!();
        if !tools_present() {
            return;
        }
    };
}

/// Run `f` on a thread that has joined the network namespace `ns`: the
/// library's "host" namespace is the calling thread's.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let fd = ns.fd().as_raw_fd();
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            // SAFETY: fd is a valid network namespace fd for the scope.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

fn bridge(name: &str, ports: &[&str]) -> Network {
    Network::Bridge {
        name: name.into(),
        ports: ports
            .iter()
            .map(|p| p.parse::<PortMapping>().unwrap())
            .collect(),
    }
}

fn create_network(f: &Fixture, name: &str, subnet: &str) {
    let mut spec = NetworkSpec::new(name);
    spec.subnet(subnet.parse().unwrap());
    f.store.networks().unwrap().create(&spec).unwrap();
}

/// A shell loop that connects with busybox nc until it gets an answer.
fn nc_loop(ip: Ipv4Addr, port: u16) -> String {
    format!(
        "i=0; while [ $i -lt 200 ]; do out=$(busybox nc -w 5 {ip} {port} </dev/null) && \
         [ -n \"$out\" ] && echo \"$out\" && break; i=$((i+1)); sleep 0.1; done"
    )
}

/// Read lines from `out` until one is `want` (or EOF): the lines before.
fn read_until(out: std::fs::File, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if line == want {
            return seen;
        }
        seen.push(line);
    }
    panic!("no {want:?} in the output: {seen:?}");
}

fn container_netns(h: &ContainerHandle) -> std::os::fd::OwnedFd {
    let pid = h.pid().unwrap().expect("running");
    netns::open(Path::new(&format!("/proc/{pid}/ns/net"))).unwrap()
}

/// The host namespace's links once the kernel has finished deleting the
/// veth pairs of dead containers' namespaces: `remove` kills a container
/// before it detaches, and detach leaves a dying namespace's pair to the
/// kernel's clean-up, which may still run when remove returns.
fn settled_links(lab: &Lab, want: usize) -> Vec<String> {
    let mut links = lab.host.links();
    for _ in 0..200 {
        if links.len() <= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        links = lab.host.links();
    }
    links.sort();
    links
}

/// Nothing of the network's containers left in the host namespace: only
/// the links the test made (lo, the uplink) and the bridges, no lease, no
/// DNAT rule.
fn assert_no_container_left(f: &Fixture, lab: &Lab, bridges: &[&str]) {
    let mut want: Vec<String> = ["lo", "up0"]
        .iter()
        .chain(bridges)
        .map(|s| s.to_string())
        .collect();
    want.sort();
    assert_eq!(settled_links(lab, want.len()), want);
    for n in f.store.networks().unwrap().list().unwrap() {
        assert!(n.containers.is_empty(), "leases left: {:?}", n.containers);
    }
    let rules = lab.host.ruleset();
    assert!(!rules.contains("dnat to"), "{rules}");
}

#[test]
fn two_containers_on_one_bridge_reach_each_other_over_tcp_and_udp() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    in_ns(&lab.host, || {
        create_network(&f, "n1", "10.211.1.0/24");
        let mut s = f
            .container()
            .network(bridge("n1", &[]))
            .args([
                "sh",
                "-c",
                "busybox nc -l -p 7000 -e busybox echo tcp-from-c1; exec sleep 1000",
            ])
            .create(&f.store)
            .unwrap();
        s.start().unwrap();
        let a1 = s.network_attachment().unwrap().unwrap();
        assert_eq!(a1.address, Ipv4Addr::new(10, 211, 1, 2));
        assert_eq!(a1.mac, "02:42:0a:d3:01:02");
        assert_eq!(a1.gateway, Ipv4Addr::new(10, 211, 1, 1));
        assert_eq!(a1.interface, "eth0");

        let script = format!(
            "cat /etc/hosts /etc/resolv.conf /sys/class/net/eth0/address; \
             echo routes; cat /proc/net/route; {}; echo done; exec sleep 1000",
            nc_loop(a1.address, 7000)
        );
        let mut c = f
            .container()
            .network(bridge("n1", &[]))
            .hostname("client")
            .args(["sh", "-c", &script])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = c.take_stdout().unwrap();
        c.start().unwrap();
        let seen = read_until(out, "done");
        let text = seen.join("\n");
        assert!(text.contains("127.0.0.1\tlocalhost"), "{text}");
        assert!(text.contains("10.211.1.3\tclient"), "{text}");
        assert!(text.contains("nameserver"), "{text}");
        assert!(!text.contains("nameserver 127."), "{text}");
        assert!(text.contains("02:42:0a:d3:01:03"), "{text}");
        // The default route via the gateway (0x0101d30a is 10.211.1.1).
        assert!(
            text.lines()
                .any(|l| l.starts_with("eth0\t00000000\t0101D30A")),
            "{text}"
        );
        assert_eq!(
            seen.last().map(String::as_str),
            Some("tcp-from-c1"),
            "{text}"
        );

        // UDP (Debian's busybox nc has no -u): sockets opened in the two
        // containers' namespaces, the traffic crosses the bridge.
        let a2 = c.network_attachment().unwrap().unwrap();
        let server = netns::run_in(container_netns(&c).as_fd(), || {
            Ok(UdpSocket::bind("0.0.0.0:7001").unwrap())
        })
        .unwrap();
        let client = netns::run_in(container_netns(&s).as_fd(), || {
            Ok(UdpSocket::bind("0.0.0.0:0").unwrap())
        })
        .unwrap();
        for sock in [&server, &client] {
            sock.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
        }
        client
            .send_to(b"udp-from-c1", SocketAddr::from((a2.address, 7001)))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"udp-from-c1");
        assert_eq!(from.ip(), IpAddr::V4(a1.address), "no NAT on the bridge");
        server.send_to(b"udp-reply", from).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"udp-reply");
        drop((server, client));

        s.remove(true).unwrap();
        c.remove(true).unwrap();
        assert_no_container_left(&f, &lab, &["n1"]);
        f.store.networks().unwrap().remove("n1").unwrap();
    });
    f.assert_clean();
    assert_eq!(settled_links(&lab, 2).len(), 2);
}

/// A container that exits is removed right after: nothing of the attach
/// holds its network namespace (no netlink socket was made there, which
/// the kernel frees only a grace period after its close), so the
/// namespace dies with its last process, the kernel deletes the veth pair
/// with it, and `remove` (detach) does not wait for that deletion. "No
/// links left" holds once the kernel's clean-up has run (waited for,
/// bounded, by `settled_links`).
#[test]
fn a_short_container_s_namespace_dies_with_it_and_its_pair_goes_with_it() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    in_ns(&lab.host, || {
        create_network(&f, "n1", "10.211.4.0/24");
        for _ in 0..3 {
            let mut c = f
                .container()
                .network(bridge("n1", &["8081:80"]))
                .args(["true"])
                .create(&f.store)
                .unwrap();
            let a = c.network_attachment().unwrap().unwrap();
            c.start().unwrap();
            assert_eq!(c.wait().unwrap().code, Some(0));
            // The host end tells that its peer's namespace is gone (or the
            // kernel deleted the pair already): usually at once, the
            // retry is bounded and asserts no timing.
            let mut nl = dunnage_network::Netlink::open_in(lab.host.fd()).unwrap();
            retry(400, || match nl.link(&a.host_veth).unwrap() {
                None => Some(()),
                Some(l) => nl.peer_netns_gone(&l).unwrap().then_some(()),
            });
            c.remove(false).unwrap();
            assert_no_container_left(&f, &lab, &["n1"]);
        }
        f.store.networks().unwrap().remove("n1").unwrap();
    });
    f.assert_clean();
    assert_eq!(settled_links(&lab, 2).len(), 2);
}

#[test]
fn a_container_reaches_the_outside_masqueraded_as_the_host() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    let listener = netns::run_in(lab.outside.fd(), move || {
        Ok(TcpListener::bind((OUTSIDE, 9000)).unwrap())
    })
    .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"hello-outside\n").unwrap();
        peer
    });
    in_ns(&lab.host, || {
        // The default network, made on first use like docker's bridge.
        let mut c = f
            .container()
            .network(bridge("dunnage0", &[]))
            .args(["sh", "-c", &nc_loop(OUTSIDE, 9000)])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let a = c.network_attachment().unwrap().unwrap();
        assert_eq!(a.address, Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(a.mac, "02:42:ac:11:00:02");
        let out = c.take_stdout().unwrap();
        c.start().unwrap();
        assert_eq!(common::read_all(out).trim(), "hello-outside");
        assert_eq!(c.wait().unwrap().code, Some(0));
        c.remove(false).unwrap();
        assert_no_container_left(&f, &lab, &["dunnage0"]);
    });
    let peer = server.join().unwrap();
    assert_eq!(
        peer.ip(),
        IpAddr::V4(HOST_UPLINK),
        "masqueraded as the host"
    );
    f.assert_clean();
}

/// Connect from `ns` to `to:port` until something answers; its answer.
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
fn published_ports_reach_the_container_and_removal_after_a_crash_undoes_them() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    in_ns(&lab.host, || {
        create_network(&f, "n1", "10.211.3.0/24");
        let mut c = f
            .container()
            .network(bridge("n1", &["8080:80", "10.203.0.1:8081:81/tcp"]))
            .args([
                "sh",
                "-c",
                "busybox nc -ll -p 80 -e busybox echo port-80 & \
                 busybox nc -ll -p 81 -e busybox echo port-81 & wait",
            ])
            .create(&f.store)
            .unwrap();
        c.start().unwrap();
        let id = c.id().to_string();
        let a = c.network_attachment().unwrap().unwrap();
        assert_eq!(a.ports.len(), 2);
        assert_eq!(
            read_through(&lab.outside, HOST_UPLINK, 8080).trim(),
            "port-80"
        );
        assert_eq!(
            read_through(&lab.outside, HOST_UPLINK, 8081).trim(),
            "port-81"
        );
        assert_eq!(
            read_through(&lab.host, Ipv4Addr::LOCALHOST, 8080).trim(),
            "port-80"
        );
        assert_eq!(read_through(&lab.host, HOST_UPLINK, 8081).trim(), "port-81");

        // The port is taken: another container asking for it is refused
        // before anything of it is made.
        let err = f
            .container()
            .network(bridge("n1", &["8080:90"]))
            .arg("true")
            .create(&f.store)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Network(dunnage_network::Error::PortInUse { .. })
            ),
            "{err}"
        );
        assert_eq!(f.store.list().unwrap().len(), 1);

        // The creating process goes away without removing (the handle is
        // forgotten, as after a crash); another handle removes it all.
        std::mem::forget(c);
        f.store.get(&id).unwrap().remove(true).unwrap();
        assert_no_container_left(&f, &lab, &["n1"]);
        let rules = lab.host.ruleset();
        assert!(
            !rules.contains("8080") && !rules.contains("8081"),
            "{rules}"
        );
    });
    f.assert_clean();
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    in_ns(&lab.host, || {
        create_network(&f, "n1", "10.211.4.0/24");
        let nets = f.store.networks().unwrap();
        // Overlapping subnets: no second bridge.
        let mut spec = NetworkSpec::new("n2");
        spec.subnet("10.211.4.128/25".parse().unwrap());
        assert!(matches!(
            nets.create(&spec),
            Err(dunnage_network::Error::SubnetOverlap { .. })
        ));
        // An invalid CIDR does not even parse.
        for bad in [
            "10.211.5.0/33",
            "10.211.5.0",
            "300.1.1.0/24",
            "10.211.5.1/24",
        ] {
            assert!(bad.parse::<dunnage_network::Ipv4Net>().is_err(), "{bad}");
        }
        // An unknown network, and a port twice in one request.
        let cases = [bridge("nope", &[]), bridge("n1", &["8080:80", "8080:81"])];
        for net in cases {
            let err = f
                .container()
                .network(net)
                .arg("true")
                .create(&f.store)
                .unwrap_err();
            assert!(matches!(err, Error::Network(_)), "{err}");
        }
        assert!(f.store.list().unwrap().is_empty());
        assert_no_container_left(&f, &lab, &["n1"]);
    });
    f.assert_clean();
}

/// The CLI, run under `nsenter --net` in the host namespace.
fn cli(f: &Fixture, lab: &Lab, args: &[&str]) -> Output {
    let root = f.tmp.join("store");
    lab.host
        .cmd(&[example_binary("dunnage").to_str().unwrap()])
        .arg("--root")
        .arg(&root)
        .args(args)
        .output()
        .unwrap()
}

fn cli_ok(f: &Fixture, lab: &Lab, args: &[&str]) -> String {
    let out = cli(f, lab, args);
    assert!(
        out.status.success(),
        "dunnage {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_network_verbs_run_p_port_and_inspect() {
    setup!();
    let f = Fixture::new();
    let lab = Lab::new();
    let parent = f.parent.clone();
    let image = common::IMAGE;

    // Bad input: nothing made.
    for args in [
        &["network", "create", "--subnet", "10.211.6.0/33", "web"][..],
        &[
            "network",
            "create",
            "--subnet",
            "10.211.6.0/24",
            "--gateway",
            "10.211.7.1",
            "web",
        ],
        &["network", "rm", "nope"],
        &["network", "inspect", "nope"],
    ] {
        let out = cli(&f, &lab, args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
    let out = cli(
        &f,
        &lab,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            "--network",
            "nope",
            image,
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    let out = cli(
        &f,
        &lab,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            "-p",
            "99999:80",
            "--network",
            "bridge",
            image,
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(lab.host.links().len(), 2, "nothing made");

    // docker's answers: the new network's ID (64 hex digits), then a
    // list of IDs cut to 12, names, drivers, scopes.
    let web_id = cli_ok(
        &f,
        &lab,
        &["network", "create", "--subnet", "10.211.6.0/24", "web"],
    )
    .trim()
    .to_string();
    assert_eq!(web_id.len(), 64, "{web_id}");
    assert!(
        web_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let ls = cli_ok(&f, &lab, &["network", "ls"]);
    let mut lines = ls.lines();
    assert_eq!(
        lines.next(),
        Some("NETWORK ID     NAME      DRIVER    SCOPE"),
        "{ls}"
    );
    // docker's pre-defined host and none are listed too, by name.
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{ls}");
    assert!(rows[0].ends_with("   host      host      local"), "{ls}");
    assert!(rows[1].ends_with("   none      null      local"), "{ls}");
    assert_eq!(
        rows[2],
        format!("{}   web       bridge    local", &web_id[..12]),
        "{ls}"
    );
    let quiet = cli_ok(&f, &lab, &["network", "ls", "-q", "--no-trunc"]);
    assert_eq!(quiet.lines().nth(2), Some(web_id.as_str()), "{quiet}");
    // A network recorded before networks had IDs (no id, no created in
    // its config.json): listed and inspected with an ID derived from its
    // name, the same each time, found by it; Go's zero time.
    let old_dir = f.tmp.join("store/network/networks/old");
    std::fs::create_dir_all(old_dir.join("leases")).unwrap();
    std::fs::write(
        old_dir.join("config.json"),
        br#"{"name":"old","bridge":"old","subnet":"10.211.9.0/24","gateway":"10.211.9.1","mtu":1500}"#,
    )
    .unwrap();
    let old: serde_json::Value =
        serde_json::from_str(&cli_ok(&f, &lab, &["network", "inspect", "old"])).unwrap();
    let old_id = old[0]["Id"].as_str().unwrap().to_string();
    assert_eq!(old_id.len(), 64);
    assert_eq!(old[0]["Created"], "0001-01-01T00:00:00Z");
    assert_eq!(old[0]["IPAM"]["Config"][0]["Gateway"], "10.211.9.1");
    let again: serde_json::Value =
        serde_json::from_str(&cli_ok(&f, &lab, &["network", "inspect", &old_id[..12]])).unwrap();
    assert_eq!(again[0]["Name"], "old");
    let ls = cli_ok(&f, &lab, &["network", "ls"]);
    assert!(ls.contains(&format!("{}   old ", &old_id[..12])), "{ls}");
    std::fs::remove_dir_all(&old_dir).unwrap();

    // Pre-defined: not made again, not removed; inspected.
    for (args, msg) in [
        (
            &["network", "create", "host"][..],
            "Error response from daemon: operation is not permitted on predefined host network\n",
        ),
        (
            &["network", "rm", "none"],
            "Error response from daemon: none is a pre-defined network and cannot be removed\n",
        ),
    ] {
        let out = cli(&f, &lab, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), msg);
    }
    assert_eq!(
        cli_ok(
            &f,
            &lab,
            &["network", "inspect", "-f", "{{.Driver}}", "none", "host"]
        ),
        "null\nhost\n"
    );
    let out = cli(&f, &lab, &["network", "create", "web"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: network with name web already exists\n"
    );
    // inspect by ID or a unique prefix of it; docker's shape.
    for key in [&web_id[..], &web_id[..12], &web_id[..3], "web"] {
        let net: serde_json::Value =
            serde_json::from_str(&cli_ok(&f, &lab, &["network", "inspect", key])).unwrap();
        assert_eq!(net[0]["Id"], web_id.as_str(), "{key}");
        assert_eq!(net[0]["Name"], "web");
    }
    let text = cli_ok(&f, &lab, &["network", "inspect", "web"]);
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
        .filter_map(|l| l.trim().split('"').nth(1))
        .collect();
    assert_eq!(
        keys,
        [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels"
        ],
        "{text}"
    );
    assert_eq!(
        cli_ok(
            &f,
            &lab,
            &[
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}}",
                &web_id[..5]
            ]
        ),
        "web bridge\n"
    );
    let out = cli(
        &f,
        &lab,
        &["network", "create", "--subnet", "10.211.6.0/25", "web2"],
    );
    assert!(!out.status.success(), "overlapping subnet");

    let id = cli_ok(
        &f,
        &lab,
        &[
            "run",
            "-d",
            "--cgroup-parent",
            &parent,
            "--network",
            "web",
            "-p",
            "8080:80",
            "-p",
            "10.203.0.1:5353:53/udp",
            image,
            "sh",
            "-c",
            "exec busybox nc -ll -p 80 -e busybox echo cli-80",
        ],
    );
    let id = id.trim();
    assert_eq!(
        read_through(&lab.outside, HOST_UPLINK, 8080).trim(),
        "cli-80"
    );
    let ports = cli_ok(&f, &lab, &["port", id]);
    assert_eq!(ports, "80/tcp -> 0.0.0.0:8080\n53/udp -> 10.203.0.1:5353\n");
    assert_eq!(cli_ok(&f, &lab, &["port", id, "80"]), "0.0.0.0:8080\n");
    let ps = cli_ok(&f, &lab, &["ps"]);
    assert!(
        ps.contains("0.0.0.0:8080->80/tcp, 10.203.0.1:5353->53/udp"),
        "{ps}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&cli_ok(&f, &lab, &["inspect", id])).unwrap();
    let ns = &inspect[0]["NetworkSettings"];
    assert_eq!(ns["Networks"]["web"]["IPAddress"], "10.211.6.2", "{ns}");
    assert_eq!(ns["Networks"]["web"]["Gateway"], "10.211.6.1");
    assert_eq!(ns["Networks"]["web"]["MacAddress"], "02:42:0a:d3:06:02");
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], "8080");
    assert_eq!(ns["Ports"]["53/udp"][0]["HostIp"], "10.203.0.1");
    let net: serde_json::Value =
        serde_json::from_str(&cli_ok(&f, &lab, &["network", "inspect", "web"])).unwrap();
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "10.211.6.0/24");
    assert_eq!(
        net[0]["Containers"][id]["IPv4Address"], "10.211.6.2/24",
        "{net}"
    );
    assert_eq!(
        net[0]["Containers"][id]["EndpointID"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert_eq!(ns["Networks"]["web"]["NetworkID"], web_id.as_str());
    assert_eq!(
        inspect[0]["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"], "",
        "as given"
    );
    // In use: refused, in docker's words.
    let out = cli(&f, &lab, &["network", "rm", &web_id[..12]]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Error response from daemon: error while removing network: network web id {web_id} has active endpoints\n"
        )
    );

    // The default network: `bridge` makes it; then it is the default.
    let out = cli_ok(
        &f,
        &lab,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            "--network",
            "bridge",
            image,
            "cat",
            "/etc/hosts",
        ],
    );
    assert!(out.contains("172.17.0.2\t"), "{out}");
    let inspect = cli_ok(&f, &lab, &["network", "inspect", "bridge"]);
    assert!(inspect.contains("172.17.0.0/16"), "{inspect}");
    let bridge: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(bridge[0]["Name"], "bridge", "{inspect}");
    let ls = cli_ok(&f, &lab, &["network", "ls"]);
    let names: Vec<&str> = ls
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(names, ["bridge", "host", "none", "web"], "{ls}");
    let out = cli_ok(
        &f,
        &lab,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            image,
            "cat",
            "/sys/class/net/eth0/address",
        ],
    );
    assert_eq!(out.trim(), "02:42:ac:11:00:02");

    cli_ok(&f, &lab, &["rm", "-f", id]);
    assert_no_container_left(&f, &lab, &["web", "dunnage0"]);
    // The default network is docker's pre-defined `bridge`: kept, as
    // docker keeps docker0, and the rest of the list still goes.
    let out = cli(&f, &lab, &["network", "rm", "bridge", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error response from daemon: bridge is a pre-defined network and cannot be removed\n"
    );
    assert_eq!(settled_links(&lab, 3), ["dunnage0", "lo", "up0"]);
    f.assert_clean();
}
