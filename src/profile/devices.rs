//! Device nodes and device cgroup rules.

use serde::{Deserialize, Serialize};

/// A device's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceType {
    /// A character device (`c`).
    #[serde(rename = "c")]
    Char,
    /// A block device (`b`).
    #[serde(rename = "b")]
    Block,
    /// Every type (`a`, in rules only).
    #[serde(rename = "a")]
    All,
}

impl DeviceType {
    /// The letter of the OCI spec and the v1 devices cgroup.
    pub fn letter(self) -> &'static str {
        match self {
            DeviceType::Char => "c",
            DeviceType::Block => "b",
            DeviceType::All => "a",
        }
    }
}

/// A device node created in the container's `/dev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceNode {
    /// Its path in the container (`/dev/null`).
    pub path: String,
    /// Character or block.
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits (`0o666`).
    pub file_mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl DeviceNode {
    /// A root-owned character device, mode 0666.
    pub fn char(path: &str, major: i64, minor: i64) -> DeviceNode {
        DeviceNode {
            path: path.to_string(),
            kind: DeviceType::Char,
            major,
            minor,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }
}

/// A device cgroup rule (`linux.resources.devices`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeviceRule {
    /// Allow (`true`) or deny.
    pub allow: bool,
    /// The type; `None` (or [`DeviceType::All`]) matches every type.
    #[serde(rename = "type")]
    pub kind: Option<DeviceType>,
    /// Major number; `None` matches every one.
    pub major: Option<i64>,
    /// Minor number; `None` matches every one.
    pub minor: Option<i64>,
    /// Access: some of `r`, `w`, `m`.
    pub access: String,
}

impl DeviceRule {
    /// Allow `rwm` on a character device.
    pub fn allow_char(major: i64, minor: i64) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: Some(DeviceType::Char),
            major: Some(major),
            minor: Some(minor),
            access: "rwm".to_string(),
        }
    }

    /// Every device, every access (privileged).
    pub fn allow_all() -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: None,
            major: None,
            minor: None,
            access: "rwm".to_string(),
        }
    }

    /// Deny every device, every access (the rule lists start with it).
    pub fn deny_all() -> DeviceRule {
        DeviceRule {
            allow: false,
            ..DeviceRule::allow_all()
        }
    }
}

/// The nodes every runtime creates for docker (RUNTIME.md): null, zero,
/// full, random, urandom, tty.
pub(super) fn docker_nodes() -> Vec<DeviceNode> {
    vec![
        DeviceNode::char("/dev/null", 1, 3),
        DeviceNode::char("/dev/zero", 1, 5),
        DeviceNode::char("/dev/full", 1, 7),
        DeviceNode::char("/dev/random", 1, 8),
        DeviceNode::char("/dev/urandom", 1, 9),
        DeviceNode::char("/dev/tty", 5, 0),
    ]
}

/// Docker's rules: deny all; allow c 1:5, 1:3, 1:9, 1:8, 5:0, 5:1 rwm;
/// deny c 10:229 (`/dev/net/tun`).
pub(super) fn docker_rules() -> Vec<DeviceRule> {
    let mut rules = vec![DeviceRule::deny_all()];
    for (major, minor) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
        rules.push(DeviceRule::allow_char(major, minor));
    }
    rules.push(DeviceRule {
        allow: false,
        ..DeviceRule::allow_char(10, 229)
    });
    rules
}
