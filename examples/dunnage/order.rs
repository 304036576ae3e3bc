//! `docker inspect`'s key order. serde_json's maps sort their keys; the
//! docker CLI prints a container's and an image's fields in the order of
//! the Go structs. [`Ordered`] serialises a value with the keys of each
//! known object in docker's order (the others after them, sorted).

use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::Value;

/// The top-level keys of `docker image inspect`.
const IMAGE: &[&str] = &[
    "Id",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Container",
    "ContainerConfig",
    "DockerVersion",
    "Author",
    "Config",
    "Architecture",
    "Variant",
    "Os",
    "Size",
    "VirtualSize",
    "GraphDriver",
    "RootFS",
    "Metadata",
];

/// The top-level keys of `docker container inspect`.
const CONTAINER: &[&str] = &[
    "Id",
    "Created",
    "Path",
    "Args",
    "State",
    "Image",
    "ResolvConfPath",
    "HostnamePath",
    "HostsPath",
    "LogPath",
    "Name",
    "RestartCount",
    "Driver",
    "Platform",
    "MountLabel",
    "ProcessLabel",
    "AppArmorProfile",
    "ExecIDs",
    "HostConfig",
    "GraphDriver",
    "Mounts",
    "Config",
    "NetworkSettings",
];

const STATE: &[&str] = &[
    "Status",
    "Running",
    "Paused",
    "Restarting",
    "OOMKilled",
    "Dead",
    "Pid",
    "ExitCode",
    "Error",
    "StartedAt",
    "FinishedAt",
];

/// A container's (and an image's) Config.
const CONFIG: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

const HOST_CONFIG: &[&str] = &[
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "ConsoleSize",
    "Isolation",
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "MaskedPaths",
    "ReadonlyPaths",
];

const NETWORK_SETTINGS: &[&str] = &[
    "Bridge",
    "SandboxID",
    "HairpinMode",
    "LinkLocalIPv6Address",
    "LinkLocalIPv6PrefixLen",
    "Ports",
    "SandboxKey",
    "SecondaryIPAddresses",
    "SecondaryIPv6Addresses",
    "EndpointID",
    "Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "MacAddress",
    "Networks",
];

/// A network's endpoint under `NetworkSettings.Networks`.
const ENDPOINT: &[&str] = &[
    "IPAMConfig",
    "Links",
    "Aliases",
    "NetworkID",
    "EndpointID",
    "Gateway",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
    "MacAddress",
    "DriverOpts",
];

/// A mount of `Mounts`.
const MOUNT: &[&str] = &[
    "Type",
    "Name",
    "Source",
    "Destination",
    "Driver",
    "Mode",
    "RW",
    "Propagation",
];

/// Where a value sits, for choosing its key order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Top,
    State,
    Config,
    HostConfig,
    NetworkSettings,
    Networks,
    Endpoint,
    Mounts,
    RestartPolicy,
    LogConfig,
    Other,
}

/// A top-level inspect object (a container's when it has `State`, an
/// image's otherwise) serialised with docker's key order.
pub struct Ordered<'a>(pub &'a Value);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        In(self.0, At::Top).serialize(s)
    }
}

/// `v`, found at `path` in a top-level inspect object, as compact JSON
/// with docker's key order (`inspect -f '{{json .State}}'`).
pub fn to_json(v: &Value, path: &[&str]) -> String {
    let mut at = At::Top;
    for k in path {
        at = In(&Value::Null, at).child(k);
    }
    serde_json::to_string(&In(v, at)).unwrap_or_default()
}

struct In<'a>(&'a Value, At);

impl In<'_> {
    fn order(&self, map: &serde_json::Map<String, Value>) -> &'static [&'static str] {
        match self.1 {
            At::Top if map.contains_key("State") && map.contains_key("Id") => CONTAINER,
            At::Top if map.contains_key("Id") => IMAGE,
            // Anything else (ps --format's fields) as Go marshals a map:
            // sorted.
            At::Top => &[],
            At::State => STATE,
            At::Config => CONFIG,
            At::HostConfig => HOST_CONFIG,
            At::NetworkSettings => NETWORK_SETTINGS,
            At::Endpoint => ENDPOINT,
            At::Mounts => MOUNT,
            At::RestartPolicy => &["Name", "MaximumRetryCount"],
            At::LogConfig => &["Type", "Config"],
            At::Networks | At::Other => &[],
        }
    }

    fn child(&self, key: &str) -> At {
        match (self.1, key) {
            (At::Top, "State") => At::State,
            (At::Top, "Config" | "ContainerConfig") => At::Config,
            (At::Top, "HostConfig") => At::HostConfig,
            (At::Top, "NetworkSettings") => At::NetworkSettings,
            (At::Top, "Mounts") => At::Mounts,
            (At::NetworkSettings, "Networks") => At::Networks,
            (At::Networks, _) => At::Endpoint,
            (At::HostConfig, "RestartPolicy") => At::RestartPolicy,
            (At::HostConfig, "LogConfig") => At::LogConfig,
            _ => At::Other,
        }
    }
}

impl serde::Serialize for In<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let order = self.order(map);
                let mut out = s.serialize_map(Some(map.len()))?;
                let known = order.iter().filter_map(|k| map.get_key_value(*k));
                let rest = map.iter().filter(|(k, _)| !order.contains(&k.as_str()));
                for (k, v) in known.chain(rest) {
                    // docker leaves an image's null Variant out.
                    if self.1 == At::Top && k == "Variant" && v.is_null() {
                        continue;
                    }
                    out.serialize_entry(k, &In(v, self.child(k)))?;
                }
                out.end()
            }
            // The elements of Mounts are mounts; other arrays hold plain
            // values.
            Value::Array(items) => {
                let at = if self.1 == At::Mounts {
                    At::Mounts
                } else {
                    At::Other
                };
                let mut out = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&In(v, at))?;
                }
                out.end()
            }
            v => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_and_images_in_docker_order() {
        let c = serde_json::json!({
            "State": {"Pid": 1, "Status": "running"},
            "Id": "x",
            "Zzz": 1,
            "Config": {"Cmd": ["sh"], "Hostname": "h"},
            "Mounts": [{"RW": true, "Type": "bind"}],
        });
        assert_eq!(
            serde_json::to_string(&Ordered(&c)).unwrap(),
            r#"{"Id":"x","State":{"Status":"running","Pid":1},"Mounts":[{"Type":"bind","RW":true}],"Config":{"Hostname":"h","Cmd":["sh"]},"Zzz":1}"#
        );
        let i = serde_json::json!({"Size": 1, "Id": "y", "Variant": null, "Os": "linux"});
        assert_eq!(
            serde_json::to_string(&Ordered(&i)).unwrap(),
            r#"{"Id":"y","Os":"linux","Size":1}"#
        );
    }
}
