//! Bridge networks in the CLI: `network create|ls|inspect|rm`, `port`, the
//! `-p` and `--network` of `run`, and `inspect`'s `NetworkSettings`, with
//! docker's names and output. `bridge` names the default network
//! (`dunnage0`), as docker's `bridge` names `docker0`. Networks live in the
//! network namespace the CLI runs in.

use dunnage::container::network::{Attachment, DEFAULT_NETWORK, NetworkInfo, NetworkSpec};
use dunnage::container::{ContainerHandle, ContainerStore, Network};
use dunnage::network::{Ipv4Net, PortMapping};
use serde::Serialize;
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

/// Whether the default network exists in this data root (then `run`
/// without `--network` uses it, as docker uses `bridge`).
pub fn default_exists(store: &ContainerStore) -> bool {
    store
        .networks()
        .and_then(|n| Ok(n.inspect(DEFAULT_NETWORK)?))
        .is_ok()
}

/// `-p` values, parsed; refused in docker's words (`Invalid hostPort:
/// 99999.`) with its exit code 125 and its pointer to `VERB --help`.
pub fn publish(p: &Parsed, verb: &str) -> Result<Vec<PortMapping>, Fail> {
    use dunnage::network::PortSpecError as E;
    p.all("publish")
        .into_iter()
        .map(|s| {
            s.parse::<PortMapping>().map_err(|e| {
                let words = match &e {
                    E::Port {
                        which: "host",
                        value,
                        ..
                    } => format!("Invalid hostPort: {value}"),
                    E::Port { value, .. } => format!("Invalid containerPort: {value}"),
                    E::Protocol { value, .. } => format!("Invalid proto: {value}"),
                    E::HostIp { value, .. } => format!("Invalid ip address: {value}"),
                    e => format!("invalid argument {s:?} for \"-p, --publish\" flag: {e}"),
                };
                Fail {
                    code: 125,
                    msg: format!("dunnage: {words}.\nSee 'dunnage {verb} --help'."),
                }
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
                &[
                    f('\0', "subnet", true),
                    f('\0', "gateway", true),
                    f('d', "driver", true),
                ],
                false,
            )?;
            create(store, &p)
        }
        "ls" | "list" => {
            let p = parse(
                rest,
                &[
                    f('q', "quiet", false),
                    f('\0', "no-trunc", false),
                    f('\0', "format", true),
                    f('f', "filter", true),
                ],
                false,
            )?;
            crate::netinspect::ls(store, &p)
        }
        "inspect" => {
            let p = parse(rest, &[f('f', "format", true)], false)?;
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
    // Bridge networks only: another driver is a plugin docker would look
    // for and not find.
    if let Some(d) = p.get("driver").filter(|d| *d != "bridge") {
        return Err(Fail {
            code: 1,
            msg: format!("Error response from daemon: plugin {d:?} not found"),
        });
    }
    if predefined(name).is_some() || name == "bridge" {
        return Err(Fail {
            code: 1,
            msg: format!(
                "Error response from daemon: operation is not permitted on predefined {name} network"
            ),
        });
    }
    let mut spec = NetworkSpec::new(network_name(name));
    if let Some(s) = p.get("subnet") {
        let subnet = s.parse::<Ipv4Net>().map_err(|_| Fail {
            code: 1,
            msg: format!("invalid CIDR address: {s}"),
        })?;
        spec.subnet(subnet);
    }
    if let Some(g) = p.get("gateway") {
        let ip = g.parse().map_err(|_| Fail {
            code: 1,
            msg: format!("Error response from daemon: invalid gateway address {g:?}"),
        })?;
        spec.gateway(ip);
    }
    let cfg = store.networks()?.create(&spec).map_err(|e| Fail {
        code: 1,
        msg: network_error(name, &e),
    })?;
    println!("{}", cfg.id);
    Ok(0)
}

/// The name the CLI shows for a network: `bridge` for the default one,
/// as docker shows `bridge` for `docker0`'s network.
pub fn shown_name(name: &str) -> &str {
    if name == DEFAULT_NETWORK {
        "bridge"
    } else {
        name
    }
}

/// docker's pre-defined networks besides `bridge`, by name, with their
/// drivers: always listed, never created or removed.
pub const PREDEFINED: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// The ID shown for a pre-defined network: derived from its name, the
/// same in every data root (docker's are random per daemon).
pub fn predefined_id(name: &str) -> String {
    dunnage::network::store::legacy_id(&format!("pre-defined {name}"))
}

/// Whether docker counts the network `name` (as shown) as built in:
/// `bridge`, `host`, `none`.
pub fn is_builtin(name: &str) -> bool {
    name == "bridge" || predefined(name).is_some()
}

/// The pre-defined network `name` names (`host` or `none`), if any.
fn predefined(name: &str) -> Option<(&'static str, &'static str)> {
    PREDEFINED.iter().copied().find(|(n, _)| *n == name)
}

/// What a network reference on the command line means.
enum Found {
    /// One of ours.
    Ours(NetworkInfo),
    /// A pre-defined one: name and driver.
    Predefined(&'static str, &'static str),
}

/// Resolve `name` as docker does (full ID, name, unique ID prefix), over
/// ours and the pre-defined networks.
fn resolve(
    nets: &dunnage::network::Networks,
    name: &str,
) -> Result<Found, dunnage::network::Error> {
    let by_id = |exact: bool| {
        PREDEFINED
            .iter()
            .copied()
            .filter(|(n, _)| {
                let id = predefined_id(n);
                if exact {
                    id == name
                } else {
                    !name.is_empty() && id.starts_with(name)
                }
            })
            .collect::<Vec<_>>()
    };
    if let Some((n, d)) = by_id(true).first().copied().or_else(|| predefined(name)) {
        return Ok(Found::Predefined(n, d));
    }
    match nets.find(network_name(name)) {
        Err(dunnage::network::Error::NetworkNotFound(e)) => match by_id(false).as_slice() {
            [(n, d)] => Ok(Found::Predefined(n, d)),
            _ => Err(dunnage::network::Error::NetworkNotFound(e)),
        },
        r => r.map(Found::Ours),
    }
}

/// The first 12 digits of an ID, as docker shows IDs in lists.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// JSON as the docker CLI prints it: indented by four spaces.
fn print_json(v: &impl Serialize) -> Result<(), Fail> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Fail {
        code: 1,
        msg: format!("Error: {e}"),
    })?;
    for line in text.lines() {
        let body = line.trim_start_matches(' ');
        println!("{}{body}", " ".repeat(2 * (line.len() - body.len())));
    }
    Ok(())
}

fn inspect(store: &ContainerStore, p: &Parsed) -> Out {
    if p.rest.is_empty() {
        return Err(flags::Usage(
            "\"dunnage network inspect\" requires at least 1 argument".into(),
        )
        .into());
    }
    let template = match p.get("format") {
        Some(f) => Some(crate::template::Template::parse(f).map_err(|e| Fail {
            code: e.code,
            msg: e.msg,
        })?),
        None => None,
    };
    let nets = store.networks()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &p.rest {
        match resolve(&nets, name) {
            Ok(Found::Ours(n)) => out.push(crate::netinspect::network_resource(store, &n)),
            Ok(Found::Predefined(n, d)) => out.push(crate::netinspect::predefined_resource(n, d)),
            Err(e) => missing.push(network_error(name, &e)),
        }
    }
    if let Some(t) = template {
        for n in &out {
            let v = serde_json::to_value(n).unwrap_or(Value::Null);
            match t.render(&v) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    // docker ends the line it was writing.
                    println!();
                    return Err(Fail {
                        code: e.code,
                        msg: e.go_field_error("types.NetworkResource"),
                    });
                }
            }
        }
    } else {
        print_json(&out)?;
    }
    for m in &missing {
        eprintln!("{m}");
    }
    Ok(u8::from(!missing.is_empty()))
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
        match remove_one(&nets, name) {
            Ok(()) => println!("{name}"),
            Err(msg) => {
                eprintln!("{msg}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Remove the network `name` means; docker's words when it cannot be.
fn remove_one(nets: &dunnage::network::Networks, name: &str) -> Result<(), String> {
    // The default network is docker's pre-defined `bridge` (made or not).
    let predefined_bridge =
        "Error response from daemon: bridge is a pre-defined network and cannot be removed";
    if name == "bridge" {
        return Err(predefined_bridge.into());
    }
    let n = match resolve(nets, name).map_err(|e| network_error(name, &e))? {
        Found::Ours(n) if n.config.name == DEFAULT_NETWORK => {
            return Err(predefined_bridge.into());
        }
        Found::Ours(n) => n,
        Found::Predefined(n, _) => {
            return Err(format!(
                "Error response from daemon: {n} is a pre-defined network and cannot be removed"
            ));
        }
    };
    match nets.remove(&n.config.name) {
        Ok(()) => Ok(()),
        Err(dunnage::network::Error::NetworkInUse { .. }) => Err(format!(
            "Error response from daemon: error while removing network: network {} id {} has active endpoints",
            shown_name(&n.config.name),
            n.config.id
        )),
        Err(e) => Err(network_error(name, &e)),
    }
}

/// docker's words for a network verb's failure on `name`.
fn network_error(name: &str, e: &dunnage::network::Error) -> String {
    use dunnage::network::Error as E;
    match e {
        E::NetworkNotFound(_) => format!("Error: No such network: {name}"),
        E::NetworkExists(_) => {
            format!("Error response from daemon: network with name {name} already exists")
        }
        E::SubnetOverlap { .. } => {
            "Error response from daemon: Pool overlaps with other one on this address space".into()
        }
        E::AddressOutsideSubnet { address, .. } => {
            format!("Error response from daemon: no matching subnet for gateway {address}")
        }
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
    // docker parses the port number first, with Go's words for a bad one.
    let number = filter.split_once('/').map_or(filter, |(n, _)| n);
    if let Err(why) = go_parse_u16(number) {
        return Err(Fail {
            code: 1,
            msg: format!(
                "strconv.ParseUint: parsing {}: {why}",
                crate::format::go_quote(number)
            ),
        });
    }
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

/// Go's `strconv.ParseUint(s, 10, 16)`'s verdict on `s`: the reason it
/// refuses it, in Go's words.
fn go_parse_u16(s: &str) -> Result<u16, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    s.parse::<u16>().map_err(|_| "value out of range")
}

/// docker's `HostConfig.PortBindings`: the `-p` mappings asked for, by
/// `PORT/PROTO`, with the host address as given (`""` for all).
pub fn port_bindings(network: &Network) -> Value {
    let mut out = serde_json::Map::new();
    if let Network::Bridge { ports, .. } = network {
        for m in ports {
            let entry = out
                .entry(port_key(m))
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(v) = entry {
                v.push(json!({
                    "HostIp": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    "HostPort": m.host_port.to_string(),
                }));
            }
        }
    }
    Value::Object(out)
}

/// docker's `NetworkSettings` of a container: its address, gateway, MAC
/// and published ports (at the top level for the default network only,
/// as docker fills them for `bridge`), and its networks by the names
/// docker shows (`bridge` for the default one).
pub fn settings(h: &ContainerHandle) -> Value {
    let spec = h.spec();
    let (name, attachment): (String, Option<Attachment>) = match &spec.network {
        Network::Bridge { name, .. } => (
            shown_name(name).to_string(),
            h.network_attachment().ok().flatten(),
        ),
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
    let default = attachment
        .as_ref()
        .is_some_and(|a| a.network == DEFAULT_NETWORK);
    // docker gives a container on a network of its own its short ID as
    // an alias; none on the default bridge.
    let aliases = match &attachment {
        Some(a) if !default => json!([a.container_id.get(..12).unwrap_or(&a.container_id)]),
        _ => Value::Null,
    };
    let text = |f: fn(&Attachment) -> String| attachment.as_ref().map(f).unwrap_or_default();
    let endpoint = json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": aliases,
        // host and none: the pre-defined network's ID, as docker shows it.
        "NetworkID": match (&attachment, name.as_str()) {
            (None, "host" | "none") => predefined_id(&name),
            _ => text(|a| a.network_id.clone()),
        },
        "EndpointID": text(|a| a.endpoint_id.clone()),
        "Gateway": text(|a| a.gateway.to_string()),
        "IPAddress": text(|a| a.address.to_string()),
        "IPPrefixLen": attachment.as_ref().map_or(0, |a| a.prefix_len),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": text(|a| a.mac.clone()),
        "DriverOpts": null,
    });
    let top = |f: fn(&Attachment) -> String| if default { text(f) } else { String::new() };
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": top(|a| a.endpoint_id.clone()),
        "Gateway": top(|a| a.gateway.to_string()),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top(|a| a.address.to_string()),
        "IPPrefixLen": if default { attachment.as_ref().map_or(0, |a| a.prefix_len) } else { 0 },
        "IPv6Gateway": "",
        "MacAddress": top(|a| a.mac.clone()),
        "Networks": { name: endpoint },
    })
}
