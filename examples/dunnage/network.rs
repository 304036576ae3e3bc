//! Bridge networks in the CLI: `network create|ls|inspect|rm`, `port`, the
//! `-p` and `--network` of `run`, and `inspect`'s `NetworkSettings`, with
//! docker's names and output. `bridge` names the default network
//! (`dunnage0`), as docker's `bridge` names `docker0`. Networks live in the
//! network namespace the CLI runs in.

use std::collections::BTreeMap;

use dunnage::container::network::{Attachment, DEFAULT_NETWORK, NetworkInfo, NetworkSpec};
use dunnage::container::{ContainerHandle, ContainerStore, Network};
use dunnage::network::{Ipv4Net, PortMapping};
use serde_json::{Value, json};

use crate::flags::{self, Parsed, f, parse};
use crate::verbs::Fail;

type Out = Result<u8, Fail>;

/// The network a name on the command line means (`bridge`: `dunnage0`).
pub fn network_name(name: &str) -> &str {
    if name == "bridge" {
        DEFAULT_NETWORK
    } else {
        name
    }
}

fn fail(e: dunnage::network::Error) -> Fail {
    Fail::from(dunnage::container::Error::from(e))
}

/// Whether the default network exists in this data root (then `run`
/// without `--network` uses it, as docker uses `bridge`).
pub fn default_exists(store: &ContainerStore) -> bool {
    store
        .networks()
        .and_then(|n| Ok(n.inspect(DEFAULT_NETWORK)?))
        .is_ok()
}

/// `-p` values, parsed; refused with docker's exit code 125.
pub fn publish(p: &Parsed) -> Result<Vec<PortMapping>, Fail> {
    p.all("publish")
        .into_iter()
        .map(|s| {
            s.parse::<PortMapping>().map_err(|e| Fail {
                code: 125,
                msg: format!("invalid argument {s:?} for \"-p, --publish\" flag: {e}"),
            })
        })
        .collect()
}

/// `dunnage network create|ls|inspect|rm ...`.
pub fn network(store: &ContainerStore, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(flags::Usage(
            "usage: dunnage network create [--subnet CIDR] [--gateway IP] NAME | ls [-q] | inspect NAME... | rm NAME..."
                .into(),
        )
        .into());
    };
    match sub.as_str() {
        "create" => {
            let p = parse(
                rest,
                &[f('\0', "subnet", true), f('\0', "gateway", true)],
                false,
            )?;
            create(store, &p)
        }
        "ls" | "list" => {
            let p = parse(rest, &[f('q', "quiet", false)], false)?;
            ls(store, &p)
        }
        "inspect" => {
            let p = parse(rest, &[], false)?;
            inspect(store, &p)
        }
        "rm" | "remove" => {
            let p = parse(rest, &[], false)?;
            rm(store, &p)
        }
        other => Err(flags::Usage(format!("unknown network command: {other}")).into()),
    }
}

fn create(store: &ContainerStore, p: &Parsed) -> Out {
    let [name] = p.rest.as_slice() else {
        return Err(
            flags::Usage("\"dunnage network create\" requires exactly 1 argument".into()).into(),
        );
    };
    let mut spec = NetworkSpec::new(network_name(name));
    if let Some(s) = p.get("subnet") {
        spec.subnet(s.parse::<Ipv4Net>().map_err(fail)?);
    }
    if let Some(g) = p.get("gateway") {
        let ip = g.parse().map_err(|_| Fail {
            code: 1,
            msg: format!("Error response from daemon: invalid gateway address {g:?}"),
        })?;
        spec.gateway(ip);
    }
    store.networks()?.create(&spec).map_err(fail)?;
    println!("{name}");
    Ok(0)
}

fn ls(store: &ContainerStore, p: &Parsed) -> Out {
    let nets = store.networks()?.list().map_err(fail)?;
    if p.on("quiet") {
        for n in &nets {
            println!("{}", n.config.name);
        }
        return Ok(0);
    }
    println!(
        "{:<20}{:<10}{:<8}{:<20}CONTAINERS",
        "NAME", "DRIVER", "SCOPE", "SUBNET"
    );
    for n in &nets {
        println!(
            "{:<20}{:<10}{:<8}{:<20}{}",
            n.config.name,
            "bridge",
            "local",
            n.config.subnet.to_string(),
            n.containers.len()
        );
    }
    Ok(0)
}

/// docker's `network inspect` object for one network.
fn network_json(store: &ContainerStore, n: &NetworkInfo) -> Value {
    let containers: BTreeMap<String, Value> = n
        .containers
        .iter()
        .map(|l| {
            let name = store
                .get(&l.container_id)
                .map(|h| h.spec().name.clone())
                .unwrap_or_default();
            let v = json!({
                "Name": name,
                "MacAddress": l.mac,
                "IPv4Address": format!("{}/{}", l.address, n.config.subnet.prefix_len()),
                "IPv6Address": "",
            });
            (l.container_id.clone(), v)
        })
        .collect();
    json!({
        "Name": n.config.name,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{
                "Subnet": n.config.subnet.to_string(),
                "Gateway": n.config.gateway.to_string(),
            }],
        },
        "Internal": false,
        "Containers": containers,
        "Options": {
            "com.docker.network.bridge.name": n.config.bridge,
            "com.docker.network.driver.mtu": n.config.mtu.to_string(),
        },
    })
}

fn inspect(store: &ContainerStore, p: &Parsed) -> Out {
    if p.rest.is_empty() {
        return Err(flags::Usage(
            "\"dunnage network inspect\" requires at least 1 argument".into(),
        )
        .into());
    }
    let nets = store.networks()?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &p.rest {
        match nets.inspect(network_name(name)) {
            Ok(n) => out.push(network_json(store, &n)),
            Err(e) => {
                eprintln!("{}", network_error(name, &e));
                code = 1;
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| "[]".into())
    );
    Ok(code)
}

fn rm(store: &ContainerStore, p: &Parsed) -> Out {
    if p.rest.is_empty() {
        return Err(
            flags::Usage("\"dunnage network rm\" requires at least 1 argument".into()).into(),
        );
    }
    let nets = store.networks()?;
    let mut code = 0;
    for name in &p.rest {
        match nets.remove(network_name(name)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", network_error(name, &e));
                code = 1;
            }
        }
    }
    Ok(code)
}

/// docker's words for a network verb's failure on `name`.
fn network_error(name: &str, e: &dunnage::network::Error) -> String {
    match e {
        dunnage::network::Error::NetworkNotFound(_) => format!("Error: No such network: {name}"),
        e => format!("Error response from daemon: {e}"),
    }
}

/// `PORT/PROTO` as docker keys published ports.
fn port_key(m: &PortMapping) -> String {
    format!("{}/{}", m.container_port, m.protocol.as_str())
}

fn host_ip(m: &PortMapping) -> String {
    m.host_ip
        .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string())
}

/// `docker ps`'s PORTS cell: `0.0.0.0:8080->80/tcp, ...`.
pub fn ps_ports(network: &Network) -> String {
    let Network::Bridge { ports, .. } = network else {
        return String::new();
    };
    ports
        .iter()
        .map(|m| format!("{}:{}->{}", host_ip(m), m.host_port, port_key(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `dunnage port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports,
/// `80/tcp -> 0.0.0.0:8080` (just `0.0.0.0:8080` for one asked for).
pub fn port(store: &ContainerStore, args: &[String]) -> Out {
    let p = parse(args, &[], false)?;
    let (name, filter) = match p.rest.as_slice() {
        [name] => (name, None),
        [name, f] => (name, Some(f.as_str())),
        _ => {
            return Err(crate::messages::arg_count(
                "port",
                "\"dunnage port\" requires at least 1 and at most 2 arguments",
            ));
        }
    };
    let h = store
        .get(name)
        .map_err(|e| crate::messages::verb_error("port", name, e))?;
    let ports = h.network_attachment()?.map(|a| a.ports).unwrap_or_default();
    let Some(filter) = filter else {
        for m in &ports {
            println!("{} -> {}:{}", port_key(m), host_ip(m), m.host_port);
        }
        return Ok(0);
    };
    let want = if filter.contains('/') {
        filter.to_string()
    } else {
        format!("{filter}/tcp")
    };
    let found: Vec<&PortMapping> = ports.iter().filter(|m| port_key(m) == want).collect();
    if found.is_empty() {
        return Err(Fail {
            code: 1,
            msg: format!("Error: No public port '{want}' published for {name}"),
        });
    }
    for m in found {
        println!("{}:{}", host_ip(m), m.host_port);
    }
    Ok(0)
}

/// docker's `NetworkSettings` of a container: its address, gateway, MAC
/// and published ports (at the top level for the default network only,
/// as docker fills them for `bridge`), and its networks.
pub fn settings(h: &ContainerHandle) -> Value {
    let spec = h.spec();
    let (name, attachment): (String, Option<Attachment>) = match &spec.network {
        Network::Bridge { name, .. } => (name.clone(), h.network_attachment().ok().flatten()),
        Network::Host => ("host".into(), None),
        Network::None => ("none".into(), None),
        _ => ("container".into(), None),
    };
    let mut ports = serde_json::Map::new();
    if let Some(a) = &attachment {
        for m in &a.ports {
            let entry = ports
                .entry(port_key(m))
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(v) = entry {
                v.push(json!({ "HostIp": host_ip(m), "HostPort": m.host_port.to_string() }));
            }
        }
    }
    let endpoint = |a: Option<&Attachment>| {
        json!({
            "IPAMConfig": null,
            "Links": null,
            "Aliases": null,
            "NetworkID": name,
            "Gateway": a.map(|a| a.gateway.to_string()).unwrap_or_default(),
            "IPAddress": a.map(|a| a.address.to_string()).unwrap_or_default(),
            "IPPrefixLen": a.map_or(0, |a| a.prefix_len),
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": a.map(|a| a.mac.clone()).unwrap_or_default(),
        })
    };
    let top = attachment.as_ref().filter(|a| a.network == DEFAULT_NETWORK);
    json!({
        "Bridge": "",
        "Ports": ports,
        "Gateway": top.map(|a| a.gateway.to_string()).unwrap_or_default(),
        "IPAddress": top.map(|a| a.address.to_string()).unwrap_or_default(),
        "IPPrefixLen": top.map_or(0, |a| a.prefix_len),
        "MacAddress": top.map(|a| a.mac.clone()).unwrap_or_default(),
        "Networks": { name.clone(): endpoint(attachment.as_ref()) },
    })
}
