//! What a container's `/etc/hosts` and `/etc/resolv.conf` should say.

use std::net::{IpAddr, Ipv4Addr};

/// The nameservers docker falls back to when the host has none left after
/// filtering out loopback ones.
pub const FALLBACK_NAMESERVERS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];

/// The container's `/etc/resolv.conf` from the host's: every line is kept
/// except `nameserver` lines whose address is a loopback one (`127.0.0.0/8`,
/// `::1`: a resolver on the host's loopback, such as systemd-resolved's
/// `127.0.0.53`, is unreachable from the container's namespace). When no
/// nameserver is left, docker's fallbacks (`8.8.8.8`, `8.8.4.4`) are
/// appended, as docker does.
pub fn resolv_conf(host: &str) -> String {
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
    }
    out
}

/// The container's `/etc/hosts`: docker's default entries, then the
/// container's address with its host name (and aliases).
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
    fn loopback_nameservers_are_filtered_out_and_the_rest_kept() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n\
                    nameserver fe80::1%eth0\nsearch example.org\noptions edns0 trust-ad\n";
        let got = resolv_conf(host);
        assert_eq!(
            got,
            "# generated\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch example.org\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn only_loopback_nameservers_fall_back_to_dockers_defaults() {
        let got = resolv_conf("nameserver 127.0.0.53\noptions edns0\n");
        assert_eq!(
            got,
            "options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let got = resolv_conf("");
        assert_eq!(got, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        // Garbage and hostile input: no panic, no garbage nameserver kept.
        let got = resolv_conf("nameserver\nnameserver bogus\n\u{0}\nnameserver 1.1.1.1 extra\n");
        assert!(got.contains("nameserver 1.1.1.1"));
        assert!(!got.contains("bogus"));
    }

    #[test]
    fn hosts_lists_the_container_after_dockers_defaults() {
        let h = hosts(
            Ipv4Addr::new(172, 17, 0, 2),
            &["abc123", "web", "bad name", ""],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("172.17.0.2\tabc123 web\n"), "{h}");
    }
}
