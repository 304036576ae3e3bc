//! `dunnage network inspect`'s objects: docker's `NetworkResource`, its
//! fields in docker's order (serde keeps a struct's field order), for our
//! bridge networks and docker's pre-defined `host` and `none`.

use std::collections::BTreeMap;

use dunnage::container::ContainerStore;
use dunnage::container::network::{DEFAULT_NETWORK, NetworkInfo};
use dunnage::network::networks::endpoint_id;
use serde::Serialize;

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
