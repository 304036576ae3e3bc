//! NAT and published ports as an nftables rule set, applied through
//! `nft -j -f -` (libnftables' JSON input).
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
//! Why the `nft` binary: of the Rust crates that speak nf_tables netlink,
//! `rustables` is GPL-3.0, which this MIT/Apache workspace cannot link, and
//! Mullvad's `nftnl` (MIT/Apache, kept up) binds the C libnftnl and libmnl
//! (a `-dev` package for everyone who builds the crate) and has no `fib`
//! expression, which "published on every local address" needs
//! (`fib daddr type local`, docker's `--dst-type LOCAL`). `nft`'s JSON
//! input is its documented machine interface. The price is one process
//! start per change of the rule set (see BENCHMARKS.md).

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::error::{Error, Result};
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

/// The `nft` binary: the first on `PATH`, else `/usr/sbin/nft`.
fn nft_binary() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nft"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nft"))
}

/// An `nft` run started by [`spawn`]: the kernel applies the rule set
/// while the caller does other work; [`Pending::wait`] collects the
/// outcome. Dropped without `wait`, it still reaps the child.
#[derive(Debug)]
pub struct Pending {
    child: Option<Child>,
}

/// Start `nft -j -f -` in the network namespace `netns` and feed it
/// `commands` (nft JSON). The child is forked from a thread that has
/// joined the namespace, so it starts there; the caller's thread does not
/// move.
pub fn spawn(netns: BorrowedFd<'_>, commands: &Value) -> Result<Pending> {
    let mut child = crate::netns::run_in(netns, || {
        let nft = nft_binary();
        Command::new(&nft)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Nft {
                op: "run",
                detail: format!("{}: {e} (install the nftables package)", nft.display()),
            })
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means nft exited early; its status says why.
        // Dropping stdin closes it: nft reads to the end, then commits.
        let _ = stdin.write_all(commands.to_string().as_bytes());
    }
    Ok(Pending { child: Some(child) })
}

impl Pending {
    /// Wait for `nft`: `Ok` when it committed the rule set.
    pub fn wait(mut self) -> Result<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child.wait_with_output().map_err(|e| Error::Nft {
            op: "wait",
            detail: e.to_string(),
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Nft {
                op: "apply rule set",
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// [`spawn`] and [`Pending::wait`]: apply `commands` in `netns`.
pub fn apply(netns: BorrowedFd<'_>, commands: &Value) -> Result<()> {
    spawn(netns, commands)?.wait()
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
