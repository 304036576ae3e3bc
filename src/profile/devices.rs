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
    /// A FIFO (`p`, in device nodes only).
    #[serde(rename = "p")]
    Fifo,
}

impl DeviceType {
    /// The letter of the OCI spec and the v1 devices cgroup.
    pub fn letter(self) -> &'static str {
        match self {
            DeviceType::Char => "c",
            DeviceType::Block => "b",
            DeviceType::All => "a",
            DeviceType::Fifo => "p",
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

/// The device nodes under `dev` (the host's `/dev`), as `docker run
/// --privileged` lists them: character and block devices, symlinks not
/// followed, skipping `pts`, `shm`, `fd`, `mqueue` and the
/// `.lxc`/`.lxd-mounts`/`.udev` directories, and `/dev/console`. Paths are
/// given as under `/dev`; entries that vanish while walking are skipped.
pub fn host_devices(dev: &std::path::Path) -> std::io::Result<Vec<DeviceNode>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    const SKIP: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let mut out = Vec::new();
    let mut stack = vec![(dev.to_path_buf(), std::path::PathBuf::from("/dev"))];
    while let Some((dir, shown)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != dev => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let path = entry.path();
            let shown_path = shown.join(&name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !SKIP.iter().any(|s| name == *s) {
                    stack.push((path, shown_path));
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                DeviceType::Char
            } else if ft.is_block_device() {
                DeviceType::Block
            } else {
                continue;
            };
            if shown_path == std::path::Path::new("/dev/console") {
                continue;
            }
            let rdev = meta.rdev();
            out.push(DeviceNode {
                path: shown_path.to_string_lossy().into_owned(),
                kind,
                major: i64::from(libc::major(rdev)),
                minor: i64::from(libc::minor(rdev)),
                file_mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
