//! Published ports: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, as
//! `docker run -p` takes them.
//!
//! Only explicit host ports are accepted: docker's `-p CONTAINERPORT`
//! (a random host port) and port ranges are refused with
//! [`PortSpecError::Shape`]. The host IP, when given, must be IPv4: the
//! NAT rules live in an `ip` family table.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port: traffic to `host_ip:host_port` (any local address
/// when `host_ip` is `None`) goes to the container's `container_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address the port is published on; `None` for all.
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether the two mappings claim the same host port: same protocol and
    /// port, and host addresses that are equal or one of them unspecified.
    pub fn collides_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

/// Why a port specification was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecError {
    /// Not `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`.
    #[error("port spec {spec:?}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")]
    Shape {
        /// The text given.
        spec: String,
    },
    /// A port is not a number from 1 to 65535.
    #[error("port spec {spec:?}: {which} port {value:?} is not a number from 1 to 65535")]
    Port {
        /// The text given.
        spec: String,
        /// `"host"` or `"container"`.
        which: &'static str,
        /// The offending part.
        value: String,
    },
    /// The host address is not an IPv4 address.
    #[error("port spec {spec:?}: host address {value:?} is not an IPv4 address")]
    HostIp {
        /// The text given.
        spec: String,
        /// The offending part.
        value: String,
    },
    /// The protocol is neither `tcp` nor `udp`.
    #[error("port spec {spec:?}: protocol {value:?} is not tcp or udp")]
    Protocol {
        /// The text given.
        spec: String,
        /// The offending part.
        value: String,
    },
}

fn parse_port(spec: &str, which: &'static str, value: &str) -> Result<u16, PortSpecError> {
    let bad = || PortSpecError::Port {
        spec: spec.to_string(),
        which,
        value: value.to_string(),
    };
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(p) => Ok(p),
    }
}

impl FromStr for PortMapping {
    type Err = PortSpecError;

    fn from_str(spec: &str) -> Result<PortMapping, PortSpecError> {
        let (ports, protocol) = match spec.split_once('/') {
            Some((p, proto)) => {
                let protocol = match proto {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => {
                        return Err(PortSpecError::Protocol {
                            spec: spec.to_string(),
                            value: proto.to_string(),
                        });
                    }
                };
                (p, protocol)
            }
            None => (spec, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [h, c] => (None, *h, *c),
            [ip, h, c] => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| PortSpecError::HostIp {
                    spec: spec.to_string(),
                    value: ip.to_string(),
                })?;
                (Some(parsed), *h, *c)
            }
            _ => {
                return Err(PortSpecError::Shape {
                    spec: spec.to_string(),
                });
            }
        };
        Ok(PortMapping {
            host_ip,
            host_port: parse_port(spec, "host", host_port)?,
            container_port: parse_port(spec, "container", container_port)?,
            protocol,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_docker_syntax() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PortMapping = "127.0.0.1:5353:53/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:5353:53/udp");
        assert_eq!(
            "1:65535/tcp".parse::<PortMapping>().unwrap().container_port,
            65535
        );
    }

    #[test]
    fn refuses_malformed_and_hostile_specs_with_typed_errors() {
        let shape = ["", "80", "/tcp", "1:2:3:4", "::80", "[::1]:80:80"];
        for s in shape {
            assert!(
                matches!(
                    s.parse::<PortMapping>(),
                    Err(PortSpecError::Shape { .. } | PortSpecError::HostIp { .. })
                ),
                "{s:?}: {:?}",
                s.parse::<PortMapping>()
            );
        }
        let ports = [
            "0:80",
            "80:0",
            "65536:80",
            "80:65536",
            "-1:80",
            "+80:80",
            "8o:80",
            ":80",
            "80:",
            "99999999999999999999:80",
            " 80:80",
            "80:80 ",
        ];
        for s in ports {
            assert!(
                matches!(s.parse::<PortMapping>(), Err(PortSpecError::Port { .. })),
                "{s:?}: {:?}",
                s.parse::<PortMapping>()
            );
        }
        for s in ["80:80/sctp", "80:80/TCP", "80:80/", "80:80/tcp/udp"] {
            assert!(
                matches!(
                    s.parse::<PortMapping>(),
                    Err(PortSpecError::Protocol { .. })
                ),
                "{s:?}"
            );
        }
        for s in [
            "localhost:80:80",
            "1.2.3:80:80",
            "1.2.3.4.5:80:80",
            ":80:80",
        ] {
            assert!(
                matches!(s.parse::<PortMapping>(), Err(PortSpecError::HostIp { .. })),
                "{s:?}"
            );
        }
    }

    #[test]
    fn collisions_follow_protocol_port_and_address() {
        let p = |s: &str| s.parse::<PortMapping>().unwrap();
        assert!(p("80:1").collides_with(&p("80:2")));
        assert!(p("10.0.0.1:80:1").collides_with(&p("80:2")));
        assert!(!p("10.0.0.1:80:1").collides_with(&p("10.0.0.2:80:2")));
        assert!(!p("80:1/tcp").collides_with(&p("80:1/udp")));
        assert!(!p("80:1").collides_with(&p("81:1")));
    }
}
