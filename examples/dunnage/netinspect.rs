//! What `dunnage network ls` and `network inspect` print: docker's
//! listing (columns or `--format`), and docker's `NetworkResource`, its
//! fields in docker's order (serde keeps a struct's field order), for our
//! bridge networks and docker's pre-defined `host` and `none`.

use std::collections::BTreeMap;

use dunnage::container::ContainerStore;
use dunnage::container::network::{DEFAULT_NETWORK, NetworkInfo};
use dunnage::network::networks::endpoint_id;
use serde::Serialize;
use serde_json::{Value, json};

use crate::flags::Parsed;
use crate::verbs::Fail;

/// `dunnage network ls [-q] [--no-trunc] [--format F]`.
pub fn ls(store: &ContainerStore, p: &Parsed) -> Result<u8, Fail> {
    let nets = store
        .networks()?
        .list()
        .map_err(|e| Fail::from(dunnage::container::Error::from(e)))?;
    // (ID, name, driver) of ours and of docker's pre-defined two.
    let mut all: Vec<(String, String, &str)> = nets
        .iter()
        .map(|n| {
            let name = crate::network::shown_name(&n.config.name).to_string();
            (n.config.id.clone(), name, "bridge")
        })
        .chain(crate::network::PREDEFINED.iter().map(|(name, driver)| {
            (
                crate::network::predefined_id(name),
                name.to_string(),
                *driver,
            )
        }))
        .collect();
    all.sort_by(|a, b| a.1.cmp(&b.1));
    let filters = parse_filters(&p.all("filter"))?;
    all.retain(|(id, name, driver)| {
        filters.iter().all(|(key, values)| {
            values.iter().any(|v| match *key {
                "name" => text_matches(name, v),
                "id" => text_matches(id, v),
                "driver" => driver == v,
                "scope" => v == "local",
                // "type" is checked to be builtin or custom.
                _ => (v == "builtin") == crate::network::is_builtin(name),
            })
        })
    });
    let full = p.on("no-trunc");
    let id = |id: &str| {
        if full {
            id.to_string()
        } else {
            crate::network::short_id(id).to_string()
        }
    };
    // A format wins over -q, as docker's; `table` alone is the default.
    if let Some(format) = p.get("format").filter(|f| f.trim() != "table") {
        let objects: Vec<Value> = all
            .iter()
            .map(|(i, name, driver)| {
                let created = nets
                    .iter()
                    .find(|n| n.config.id == *i)
                    .map_or(0, |n| n.config.created_unix_nanos);
                json!({
                    "ID": id(i),
                    "Name": name,
                    "Driver": driver,
                    "Scope": "local",
                    "IPv6": "false",
                    "Internal": "false",
                    "Labels": "",
                    "CreatedAt": go_time(created),
                })
            })
            .collect();
        return print_formatted(format, &objects);
    }
    if p.on("quiet") {
        for n in &all {
            println!("{}", id(&n.0));
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|(i, name, driver)| vec![id(i), name.clone(), driver.to_string(), "local".into()])
        .collect();
    print!(
        "{}",
        crate::format::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
    );
    Ok(0)
}

/// `docker network inspect`'s object, its fields in docker's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: &'static str,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: ConfigFrom,
    config_only: bool,
    containers: BTreeMap<String, EndpointResource>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Ipam {
    driver: &'static str,
    options: Option<BTreeMap<String, String>>,
    config: Vec<IpamConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfig {
    subnet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigFrom {
    network: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointResource {
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

/// The time docker shows for a network: RFC 3339 with nanoseconds; Go's
/// zero time for one made before creation times were recorded.
pub fn created(nanos: u64) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    dunnage::image::time::format_rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos),
    )
}

/// docker's `network inspect` object for one network.
pub fn network_resource(store: &ContainerStore, n: &NetworkInfo) -> NetworkResource {
    let c = &n.config;
    let containers = n
        .containers
        .iter()
        .map(|l| {
            let name = store
                .get(&l.container_id)
                .map(|h| h.spec().name.clone())
                .unwrap_or_default();
            let e = EndpointResource {
                name,
                endpoint_id: endpoint_id(&c.id, &l.container_id),
                mac_address: l.mac.clone(),
                ipv4_address: format!("{}/{}", l.address, c.subnet.prefix_len()),
                ipv6_address: String::new(),
            };
            (l.container_id.clone(), e)
        })
        .collect();
    let default = c.name == DEFAULT_NETWORK;
    // docker's default bridge shows its driver options; a network made
    // by `network create` without `-o` shows none.
    let options = if default {
        [
            ("com.docker.network.bridge.default_bridge", "true".into()),
            ("com.docker.network.bridge.enable_icc", "true".into()),
            (
                "com.docker.network.bridge.enable_ip_masquerade",
                "true".into(),
            ),
            (
                "com.docker.network.bridge.host_binding_ipv4",
                "0.0.0.0".into(),
            ),
            ("com.docker.network.bridge.name", c.bridge.clone()),
            ("com.docker.network.driver.mtu", c.mtu.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    } else {
        BTreeMap::new()
    };
    NetworkResource {
        name: crate::network::shown_name(&c.name).to_string(),
        id: c.id.clone(),
        created: created(c.created_unix_nanos),
        scope: "local",
        driver: "bridge",
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default",
            options: (!default).then(BTreeMap::new),
            config: vec![IpamConfig {
                subnet: c.subnet.to_string(),
                // docker shows the gateway it chose itself, or the one
                // given; not the one implied by a given subnet.
                gateway: (!c.gateway_implied).then(|| c.gateway.to_string()),
            }],
        },
        internal: false,
        attachable: false,
        ingress: false,
        config_from: ConfigFrom {
            network: String::new(),
        },
        config_only: false,
        containers,
        options,
        labels: BTreeMap::new(),
    }
}

/// docker's `network inspect` object for `host` or `none`.
pub fn predefined_resource(name: &str, driver: &'static str) -> NetworkResource {
    NetworkResource {
        name: name.to_string(),
        id: crate::network::predefined_id(name),
        created: created(0),
        scope: "local",
        driver,
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default",
            options: None,
            config: Vec::new(),
        },
        internal: false,
        attachable: false,
        ingress: false,
        config_from: ConfigFrom {
            network: String::new(),
        },
        config_only: false,
        containers: BTreeMap::new(),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    }
}

/// A time as Go's `time.Time.String()` writes it in UTC, as `network ls`'s
/// `{{.CreatedAt}}` shows it: `2006-01-02 15:04:05.123 +0000 UTC`, the
/// fraction without trailing zeros.
pub fn go_time(nanos: u64) -> String {
    let rfc = created(nanos);
    let (date, rest) = rfc.split_once('T').unwrap_or((&rfc, ""));
    let clock = rest.trim_end_matches('Z');
    let clock = match clock.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => clock.to_string(),
    };
    format!("{date} {clock} +0000 UTC")
}

/// `network ls -f KEY=VALUE...`, grouped by key (values of one key: any
/// matches; keys: all must), refused in docker's words.
fn parse_filters(given: &[&str]) -> Result<Vec<(&'static str, Vec<String>)>, Fail> {
    const KEYS: [&str; 5] = ["driver", "id", "name", "scope", "type"];
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for f in given {
        let Some((key, value)) = f.split_once('=') else {
            return Err(Fail {
                code: 125,
                msg: format!(
                    "invalid argument {} for \"-f, --filter\" flag: bad format of filter (expected name=value)\nSee 'dunnage network ls --help'.",
                    crate::format::go_quote(f)
                ),
            });
        };
        let Some(key) = KEYS.iter().copied().find(|k| *k == key.to_lowercase()) else {
            return Err(Fail {
                code: 1,
                msg: format!("Error response from daemon: Invalid filter '{key}'"),
            });
        };
        if key == "type" && value != "custom" && value != "builtin" {
            return Err(Fail {
                code: 1,
                msg: format!("Error response from daemon: invalid filter: 'type'='{value}'"),
            });
        }
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(value.to_string()),
            None => out.push((key, vec![value.to_string()])),
        }
    }
    Ok(out)
}

/// Whether `text` matches a filter value as docker's (a regular
/// expression there): a substring, `^` and `$` anchoring it.
fn text_matches(text: &str, pattern: &str) -> bool {
    let (start, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let (end, core) = match rest.strip_suffix('$') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (start, end) {
        (true, true) => text == core,
        (true, false) => text.starts_with(core),
        (false, true) => text.ends_with(core),
        (false, false) => text.contains(core),
    }
}

/// The column titles of `network ls --format 'table ...'`.
const TITLES: [(&str, &str); 8] = [
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// `network ls --format`: one line per network, or (`table ...`) a
/// header and columns laid out at tabs, as docker prints them.
pub fn print_formatted(text: &str, objects: &[Value]) -> Result<u8, Fail> {
    let crate::ps::Format { table, template } = crate::ps::Format::parse(text)?;
    let render = |o: &Value| {
        template.render(o).map_err(|e| Fail {
            code: 1,
            msg: e.go_field_error("*network.networkContext").replacen(
                "failed to execute template:",
                "template parsing error:",
                1,
            ),
        })
    };
    if !table {
        for o in objects {
            println!("{}", render(o)?);
        }
        return Ok(0);
    }
    let titles: serde_json::Map<String, Value> = TITLES
        .iter()
        .map(|(k, t)| (k.to_string(), Value::from(*t)))
        .collect();
    let cells = |line: &str| -> Vec<String> { line.split('\t').map(str::to_string).collect() };
    let header = cells(&render(&Value::Object(titles))?);
    let mut rows = Vec::new();
    for o in objects {
        rows.push(cells(&render(o)?));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print!("{}", crate::format::table(&header, &rows));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match_as_dockers() {
        assert!(text_matches("web", "we"));
        assert!(text_matches("web", "^web$"));
        assert!(!text_matches("web2", "^web$"));
        assert!(text_matches("myweb", "web$"));
        assert!(!text_matches("web", "^eb"));
        let f = parse_filters(&["name=a", "name=b", "driver=bridge"]).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].1, ["a", "b"]);
        for bad in ["name", "nope=1", "type=other", "", "=x"] {
            assert!(parse_filters(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_times_are_written_as_go_writes_them() {
        assert_eq!(go_time(0), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time(1_700_000_000_120_000_000),
            "2023-11-14 22:13:20.12 +0000 UTC"
        );
        assert_eq!(
            go_time(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }
}
