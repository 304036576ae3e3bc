//! What a container's `/etc/hosts` and `/etc/resolv.conf` should say.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// The nameservers docker falls back to when the host has none left after
/// filtering.
pub const FALLBACK_NAMESERVERS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

/// docker's IPv6 fallbacks, for a network with IPv6.
pub const FALLBACK_NAMESERVERS_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844),
];

/// The file systemd-resolved keeps with the real upstream servers.
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// The container's `/etc/resolv.conf` from the host's, as docker writes
/// it: every line is kept except `nameserver` lines whose address is a
/// loopback one (`127.0.0.0/8`, `::1`: a resolver on the host's loopback is
/// unreachable from the container's namespace), IPv6 ones when the network
/// has no IPv6 (`ipv6` false; every network of this crate today), and
/// malformed ones. When no nameserver is left, docker's fallbacks
/// (`8.8.8.8`, `8.8.4.4`, and Google's IPv6 pair with `ipv6`) are appended.
pub fn resolv_conf(host: &str, ipv6: bool) -> String {
    let mut out = String::new();
    let mut nameservers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            // An IPv6 address may carry a zone (`fe80::1%eth0`).
            let bare = addr.split('%').next().unwrap_or(addr);
            match bare.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => continue,
                Ok(IpAddr::V6(_)) if !ipv6 => continue,
                Ok(_) => nameservers += 1,
                Err(_) => continue, // a malformed line resolves nothing
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if nameservers == 0 {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if ipv6 {
            for ns in FALLBACK_NAMESERVERS_V6 {
                out.push_str(&format!("nameserver {ns}\n"));
            }
        }
    }
    out
}

/// Which host file to start from, as docker chooses: `/etc/resolv.conf`,
/// unless its only nameserver is systemd-resolved's stub `127.0.0.53`
/// and systemd-resolved's own file (`systemd`) is there, which lists the
/// upstream servers.
pub fn choose_host_resolv_conf(etc: String, systemd: Option<String>) -> String {
    let mut servers = etc.lines().filter_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next().unwrap_or(""))
    });
    let stub_only = servers.next() == Some("127.0.0.53") && servers.next().is_none();
    match systemd {
        Some(s) if stub_only => s,
        _ => etc,
    }
}

/// The host's resolv.conf as [`choose_host_resolv_conf`] picks it, read
/// from `/etc/resolv.conf` and [`SYSTEMD_RESOLV_CONF`]; a missing file
/// reads as empty (which [`resolv_conf`] turns into docker's fallbacks).
pub fn read_host_resolv_conf() -> String {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    choose_host_resolv_conf(
        read("/etc/resolv.conf").unwrap_or_default(),
        read(SYSTEMD_RESOLV_CONF),
    )
}

/// The container's `/etc/hosts`: docker's default entries, then the
/// container's address with its host name (and aliases). Names with
/// whitespace or `#` (which would change the file's meaning) are left out.
pub fn hosts(address: Ipv4Addr, names: &[&str]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c == '#'))
        .collect();
    if !names.is_empty() {
        out.push_str(&format!("{address}\t{}\n", names.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_ipv6_nameservers_are_filtered_out_and_the_rest_kept() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n\
                    nameserver fe80::1%eth0\nsearch example.org\noptions edns0 trust-ad\n";
        assert_eq!(
            resolv_conf(host, false),
            "# generated\nnameserver 10.0.0.2\nsearch example.org\noptions edns0 trust-ad\n"
        );
        assert_eq!(
            resolv_conf(host, true),
            "# generated\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch example.org\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn only_loopback_nameservers_fall_back_to_dockers_defaults() {
        let got = resolv_conf("nameserver 127.0.0.53\noptions edns0\n", false);
        assert_eq!(
            got,
            "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(
            resolv_conf("", false),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert!(resolv_conf("nameserver 2001:db8::1\n", false).contains("8.8.8.8"));
        assert!(resolv_conf("", true).ends_with("nameserver 2001:4860:4860::8844\n"));
        // Garbage and hostile input: no panic, no garbage nameserver kept.
        let got = resolv_conf(
            "nameserver\nnameserver bogus\n\u{0}\nnameserver 1.1.1.1 extra\n",
            false,
        );
        assert!(got.contains("nameserver 1.1.1.1"));
        assert!(!got.contains("bogus"));
    }

    #[test]
    fn systemd_resolveds_stub_is_replaced_by_its_upstream_file() {
        let stub = "nameserver 127.0.0.53\noptions edns0\n".to_string();
        let upstream = "nameserver 10.1.1.1\n".to_string();
        assert_eq!(
            choose_host_resolv_conf(stub.clone(), Some(upstream.clone())),
            upstream
        );
        assert_eq!(choose_host_resolv_conf(stub.clone(), None), stub);
        let mixed = "nameserver 127.0.0.53\nnameserver 10.0.0.9\n".to_string();
        assert_eq!(
            choose_host_resolv_conf(mixed.clone(), Some(upstream.clone())),
            mixed
        );
        let plain = "nameserver 10.0.0.9\n".to_string();
        assert_eq!(
            choose_host_resolv_conf(plain.clone(), Some(upstream)),
            plain
        );
    }

    #[test]
    fn hosts_lists_the_container_after_dockers_defaults() {
        let h = hosts(
            Ipv4Addr::new(172, 17, 0, 2),
            &["abc123", "web", "bad name", "", "x#y"],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("172.17.0.2\tabc123 web\n"), "{h}");
        assert!(!hosts(Ipv4Addr::new(10, 0, 0, 2), &[]).contains("10.0.0.2"));
    }
}
