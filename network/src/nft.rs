//! NAT and published ports as an nftables rule set, sent to the kernel as
//! nf_tables netlink messages (module `nftnl`).
//!
//! The whole table `ip dunnage` is computed from the state directory (all
//! networks and their leases) and replaced in one nft transaction on every
//! change that alters it: `add table` + `flush table` + the chains and
//! rules commit together or not at all, so the kernel never holds half a
//! rule set and no rule handle has to be remembered; with no network left
//! the table is deleted. Nothing outside the table is touched.
//!
//! ```text
//! table ip dunnage
//!   chain prerouting  nat hook prerouting priority dstnat:  fib daddr type local jump ports
//!   chain output      nat hook output priority dstnat:      fib daddr type local jump ports
//!   chain ports:      [ip daddr HOSTIP] tcp|udp dport HOSTPORT dnat to CONTAINER:PORT   (one per published port)
//!   chain postrouting nat hook postrouting priority srcnat:
//!     ip saddr SUBNET oifname != BRIDGE masquerade                 outbound NAT
//!     ip saddr 127.0.0.0/8 oifname BRIDGE masquerade               host -> 127.0.0.1:PORT
//!     ip saddr SUBNET oifname BRIDGE ct status dnat masquerade     hairpin: container -> published port
//! ```
//!
//! Reaching a published port from the host itself: the `output` chain
//! applies the same DNAT to locally generated packets; for `127.0.0.1` the
//! bridge needs `net.ipv4.conf.BRIDGE.route_localnet=1` (set by the
//! network code) so that a packet with a loopback source may leave through
//! it, and the second postrouting rule rewrites that source to the bridge's
//! address so that the container's answer can come back.
//!
//! The rule set has two forms made from the same state: [`ruleset`], nft's
//! JSON, which names the applied rule set in the state directory's record
//! and which `nft -j -f -` accepts (a test applies both forms and compares
//! `nft list` of the two); and [`apply`]'s netlink batch, what the kernel
//! gets. Why our own messages: of the Rust crates that speak nf_tables
//! netlink, `rustables` is GPL-3.0, which this MIT/Apache workspace cannot
//! link, and Mullvad's `nftnl` binds the C libnftnl and libmnl (a `-dev`
//! package for everyone who builds the crate) and has no `fib` expression,
//! which "published on every local address" needs (`fib daddr type
//! local`, docker's `--dst-type LOCAL`). Our rules need ten expressions;
//! their messages are a few hundred lines over `netlink-sys`, which the
//! crate uses already. Running the `nft` binary instead cost a process
//! start and a parse per change, 8 ms on a quiet machine and 15-25 ms on a
//! loaded one, most of an attach with a published port (BENCHMARKS.md).
//! The kernel needs no `nft` binary now; the tests use it to read the rules.

use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;

use serde_json::{Value, json};

use crate::error::Result;
use crate::nftnl::{Change, Expr, Hook, Nftnl, REG1, REG2};
use crate::ports::Protocol;
use crate::store::{Lease, NetworkConfig};

/// The nftables table every rule of this crate lives in (family `ip`).
pub const TABLE: &str = "dunnage";

const FAMILY: &str = "ip";

fn table() -> Value {
    json!({"family": FAMILY, "name": TABLE})
}

fn chain(name: &str, hook: Option<(&str, i32)>) -> Value {
    let mut c = json!({"family": FAMILY, "table": TABLE, "name": name});
    if let (Some((hook, prio)), Some(obj)) = (hook, c.as_object_mut()) {
        obj.insert("type".into(), json!("nat"));
        obj.insert("hook".into(), json!(hook));
        obj.insert("prio".into(), json!(prio));
        obj.insert("policy".into(), json!("accept"));
    }
    json!({"add": {"chain": c}})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}}})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn prefix(addr: impl ToString, len: u8) -> Value {
    json!({"prefix": {"addr": addr.to_string(), "len": len}})
}

fn oifname() -> Value {
    json!({"meta": {"key": "oifname"}})
}

fn local_daddr() -> Value {
    matches(
        "==",
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    )
}

/// The nft JSON commands that replace table `ip dunnage` with the rules
/// for `networks` (each with its leases). With no network at all the table
/// is only deleted.
pub fn ruleset(networks: &[(NetworkConfig, Vec<Lease>)]) -> Value {
    // "add" first so that "delete" or "flush" cannot fail on a missing
    // table.
    let mut cmds = vec![json!({"add": {"table": table()}})];
    if networks.is_empty() {
        cmds.push(json!({"delete": {"table": table()}}));
        return json!({"nftables": cmds});
    }
    // Flush the rules but keep the chains: re-adding an existing base
    // chain is a no-op, while deleting it would unregister its hook and
    // wait for an RCU grace period (tens of ms on a busy machine).
    cmds.push(json!({"flush": {"table": table()}}));
    cmds.push(chain("prerouting", Some(("prerouting", -100))));
    cmds.push(chain("output", Some(("output", -100))));
    cmds.push(chain("postrouting", Some(("postrouting", 100))));
    cmds.push(chain("ports", None));
    for hooked in ["prerouting", "output"] {
        cmds.push(rule(
            hooked,
            vec![local_daddr(), json!({"jump": {"target": "ports"}})],
        ));
    }
    for (net, leases) in networks {
        let subnet = || {
            matches(
                "==",
                payload("ip", "saddr"),
                prefix(net.subnet.network(), net.subnet.prefix_len()),
            )
        };
        cmds.push(rule(
            "postrouting",
            vec![
                subnet(),
                matches("!=", oifname(), json!(net.bridge)),
                json!({"masquerade": null}),
            ],
        ));
        cmds.push(rule(
            "postrouting",
            vec![
                matches("==", payload("ip", "saddr"), prefix("127.0.0.0", 8)),
                matches("==", oifname(), json!(net.bridge)),
                json!({"masquerade": null}),
            ],
        ));
        cmds.push(rule(
            "postrouting",
            vec![
                subnet(),
                matches("==", oifname(), json!(net.bridge)),
                matches("in", json!({"ct": {"key": "status"}}), json!("dnat")),
                json!({"masquerade": null}),
            ],
        ));
        for lease in leases {
            for p in &lease.ports {
                let mut expr = Vec::new();
                if let Some(ip) = p.host_ip {
                    expr.push(matches("==", payload("ip", "daddr"), json!(ip.to_string())));
                }
                expr.push(matches(
                    "==",
                    payload(p.protocol.as_str(), "dport"),
                    json!(p.host_port),
                ));
                expr.push(
                    json!({"dnat": {"addr": lease.address.to_string(), "port": p.container_port}}),
                );
                cmds.push(rule("ports", expr));
            }
        }
    }
    json!({"nftables": cmds})
}

/// The same rules as [`ruleset`], as the nf_tables messages that make
/// them (see module `nftnl`).
pub(crate) fn change(networks: &[(NetworkConfig, Vec<Lease>)]) -> Change {
    if networks.is_empty() {
        return Change::Delete;
    }
    let hook = |num, priority| Some(Hook { num, priority });
    let chains = vec![
        ("prerouting".to_string(), hook(NF_INET_PRE_ROUTING, -100)),
        ("output".to_string(), hook(NF_INET_LOCAL_OUT, -100)),
        ("postrouting".to_string(), hook(NF_INET_POST_ROUTING, 100)),
        ("ports".to_string(), None),
    ];
    let mut rules = Vec::new();
    for hooked in ["prerouting", "output"] {
        let mut r = vec![
            Expr::Fib {
                result: NFT_FIB_RESULT_ADDRTYPE,
                flags: NFTA_FIB_F_DADDR,
            },
            eq(&RTN_LOCAL.to_ne_bytes()),
        ];
        r.push(Expr::Jump("ports".into()));
        rules.push((hooked.to_string(), r));
    }
    for (net, leases) in networks {
        let subnet = || ip_prefix(IP_SADDR, net.subnet.network(), net.subnet.prefix_len());
        let oif = || {
            vec![
                Expr::Meta {
                    key: NFT_META_OIFNAME,
                },
                Expr::Cmp {
                    op: NFT_CMP_EQ,
                    data: ifname(&net.bridge),
                },
            ]
        };
        let mut outbound = subnet();
        outbound.push(Expr::Meta {
            key: NFT_META_OIFNAME,
        });
        outbound.push(Expr::Cmp {
            op: NFT_CMP_NEQ,
            data: ifname(&net.bridge),
        });
        outbound.push(Expr::Masquerade);
        rules.push(("postrouting".into(), outbound));
        let mut localnet = ip_prefix(IP_SADDR, Ipv4Addr::new(127, 0, 0, 0), 8);
        localnet.extend(oif());
        localnet.push(Expr::Masquerade);
        rules.push(("postrouting".into(), localnet));
        let mut hairpin = subnet();
        hairpin.extend(oif());
        hairpin.extend([
            Expr::Ct { key: NFT_CT_STATUS },
            Expr::Mask {
                mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
            },
            Expr::Cmp {
                op: NFT_CMP_NEQ,
                data: vec![0; 4],
            },
            Expr::Masquerade,
        ]);
        rules.push(("postrouting".into(), hairpin));
        for lease in leases {
            for p in &lease.ports {
                let mut r = Vec::new();
                if let Some(ip) = p.host_ip {
                    r.extend(ip_prefix(IP_DADDR, ip, 32));
                }
                let proto = match p.protocol {
                    Protocol::Tcp => libc::IPPROTO_TCP as u8,
                    Protocol::Udp => libc::IPPROTO_UDP as u8,
                };
                r.extend([
                    Expr::Meta {
                        key: NFT_META_L4PROTO,
                    },
                    eq(&[proto]),
                    Expr::Payload {
                        base: NFT_PAYLOAD_TRANSPORT_HEADER,
                        offset: 2,
                        len: 2,
                    },
                    eq(&p.host_port.to_be_bytes()),
                    Expr::Immediate {
                        reg: REG1,
                        data: lease.address.octets().to_vec(),
                    },
                    Expr::Immediate {
                        reg: REG2,
                        data: p.container_port.to_be_bytes().to_vec(),
                    },
                    Expr::Dnat,
                ]);
                rules.push(("ports".into(), r));
            }
        }
    }
    Change::Replace { chains, rules }
}

const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATUS: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// `RTN_LOCAL`: what `fib daddr type` gives for a local address.
const RTN_LOCAL: u32 = 2;
/// `IPS_DST_NAT`: conntrack status bit of a DNATed connection.
const IPS_DST_NAT: u32 = 0x20;
/// Offsets of the source and destination addresses in the IPv4 header.
const IP_SADDR: u32 = 12;
const IP_DADDR: u32 = 16;

fn eq(data: &[u8]) -> Expr {
    Expr::Cmp {
        op: NFT_CMP_EQ,
        data: data.to_vec(),
    }
}

/// `ip saddr|daddr ADDR/LEN` as nft encodes it: the prefix's bytes when it
/// ends on a byte, else the whole address masked; nothing for `/0`.
fn ip_prefix(offset: u32, addr: Ipv4Addr, len: u8) -> Vec<Expr> {
    let len = len.min(32);
    if len == 0 {
        return Vec::new();
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let net = (u32::from(addr) & mask).to_be_bytes();
    let bytes = if len.is_multiple_of(8) {
        usize::from(len / 8)
    } else {
        4
    };
    let mut out = vec![Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len: bytes as u32,
    }];
    if !len.is_multiple_of(8) {
        out.push(Expr::Mask {
            mask: mask.to_be_bytes().to_vec(),
        });
    }
    out.push(eq(&net[..bytes]));
    out
}

/// An interface name as `meta oifname` compares it: `IFNAMSIZ` bytes,
/// zero-padded.
fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

/// Bring table `ip dunnage` in the network namespace `netns` to the rules
/// for `networks` (each with its leases), in one nf_tables transaction
/// sent over netlink; with no network the table is deleted.
pub fn apply(netns: BorrowedFd<'_>, networks: &[(NetworkConfig, Vec<Lease>)]) -> Result<()> {
    Nftnl::open_in(netns)?.apply(TABLE, &change(networks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortMapping;

    #[test]
    fn an_empty_state_only_deletes_our_table() {
        let v = ruleset(&[]);
        let cmds = v["nftables"].as_array().unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[1]["delete"]["table"]["name"], "dunnage");
        assert_eq!(cmds[1]["delete"]["table"]["family"], "ip");
    }

    #[test]
    fn every_command_names_our_table_only() {
        let net = NetworkConfig {
            name: "n".into(),
            bridge: "br0".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: "10.1.0.1".parse().unwrap(),
            mtu: 1500,
            id: "ab".repeat(32),
            created_unix_nanos: 0,
            gateway_implied: false,
        };
        let lease = Lease {
            container_id: "c".into(),
            address: "10.1.0.2".parse().unwrap(),
            mac: "02:42:0a:01:00:02".into(),
            host_veth: "veth0".into(),
            ports: vec![
                "8080:80".parse::<PortMapping>().unwrap(),
                "10.9.0.1:53:53/udp".parse().unwrap(),
            ],
        };
        let v = ruleset(&[(net, vec![lease])]);
        let text = v.to_string();
        let cmds = v["nftables"].as_array().unwrap();
        assert_eq!(cmds[1]["flush"]["table"]["name"], "dunnage", "{text}");
        assert!(!text.contains("delete"), "{text}");
        for cmd in cmds {
            let obj = cmd["add"].as_object().or(cmd["flush"].as_object()).unwrap();
            let inner = obj.values().next().unwrap();
            let t = inner.get("table").or(inner.get("name")).unwrap();
            assert_eq!(t, "dunnage", "{cmd}");
            assert_eq!(inner["family"], "ip");
        }
        assert!(
            text.contains(r#"{"dnat":{"addr":"10.1.0.2","port":80}}"#),
            "{text}"
        );
        assert!(text.contains(r#""right":"10.9.0.1""#), "{text}");
    }
}
