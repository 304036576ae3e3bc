//! Parsers for the kernel's cgroup reports: `/proc/cgroups`,
//! `/proc/<pid>/cgroup` and the cgroup entries of `/proc/self/mountinfo`.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One line of `/proc/cgroups`: `subsys_name hierarchy num_cgroups enabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsystemInfo {
    /// The subsystem's name (`cpu`, `memory`, ...).
    pub name: String,
    /// The v1 hierarchy id it is bound to; 0 when unbound or on v2.
    pub hierarchy: u32,
    /// How many cgroups it is in.
    pub num_cgroups: u64,
    /// Whether it is enabled (not disabled with `cgroup_disable=`).
    pub enabled: bool,
}

/// Parse the text of `/proc/cgroups` (`path` names it in errors).
pub fn parse_proc_cgroups(path: &Path, text: &str) -> Result<Vec<SubsystemInfo>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, hier, num, enabled] = f[..] else {
            return Err(Error::parse(
                path,
                i + 1,
                format!("expected 4 fields, found {line:?}"),
            ));
        };
        let num_field = |s: &str, what: &str| -> Result<u64> {
            s.parse()
                .map_err(|_| Error::parse(path, i + 1, format!("{what} is not a number: {s:?}")))
        };
        let hierarchy = u32::try_from(num_field(hier, "hierarchy")?)
            .map_err(|_| Error::parse(path, i + 1, "hierarchy id out of range"))?;
        let enabled = match enabled {
            "0" => false,
            "1" => true,
            other => {
                return Err(Error::parse(
                    path,
                    i + 1,
                    format!("enabled must be 0 or 1, found {other:?}"),
                ));
            }
        };
        out.push(SubsystemInfo {
            name: name.to_owned(),
            hierarchy,
            num_cgroups: num_field(num, "num_cgroups")?,
            enabled,
        });
    }
    Ok(out)
}

/// Read `/proc/cgroups`.
pub fn read_proc_cgroups() -> Result<Vec<SubsystemInfo>> {
    let path = Path::new("/proc/cgroups");
    parse_proc_cgroups(path, &crate::file::read(path)?)
}

/// One line of `/proc/<pid>/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCgroup {
    /// The hierarchy id; 0 for the v2 line `0::/path`.
    pub hierarchy: u32,
    /// The controllers of a v1 hierarchy (empty for v2 and named ones).
    pub controllers: Vec<String>,
    /// The `name=` of a named v1 hierarchy (`systemd`).
    pub name: Option<String>,
    /// The cgroup's path relative to its hierarchy's root.
    pub path: String,
}

impl ProcessCgroup {
    /// Whether this is the v2 line (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty() && self.name.is_none()
    }
}

/// Parse the text of `/proc/<pid>/cgroup` (`path` names it in errors).
pub fn parse_process_cgroups(path: &Path, text: &str) -> Result<Vec<ProcessCgroup>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(list), Some(cg)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse(
                path,
                i + 1,
                format!("expected id:controllers:path, found {line:?}"),
            ));
        };
        let hierarchy = id.parse().map_err(|_| {
            Error::parse(path, i + 1, format!("hierarchy id is not a number: {id:?}"))
        })?;
        if !cg.starts_with('/') {
            return Err(Error::parse(
                path,
                i + 1,
                format!("path must be absolute: {cg:?}"),
            ));
        }
        let mut controllers = Vec::new();
        let mut name = None;
        for item in list.split(',').filter(|s| !s.is_empty()) {
            match item.strip_prefix("name=") {
                Some(n) => name = Some(n.to_owned()),
                None => controllers.push(item.to_owned()),
            }
        }
        out.push(ProcessCgroup {
            hierarchy,
            controllers,
            name,
            path: cg.to_owned(),
        });
    }
    Ok(out)
}

/// Read `/proc/<pid>/cgroup` (`None`: this process).
pub fn read_process_cgroups(pid: Option<u32>) -> Result<Vec<ProcessCgroup>> {
    let path = match pid {
        Some(p) => PathBuf::from(format!("/proc/{p}/cgroup")),
        None => PathBuf::from("/proc/self/cgroup"),
    };
    let text = dunnage_base::fs::read_unsized_string(&path).map_err(|e| match (e.kind(), pid) {
        (std::io::ErrorKind::NotFound, Some(pid)) => Error::NoSuchProcess { pid },
        _ => Error::io("read", &path, e),
    })?;
    parse_process_cgroups(&path, &text)
}

/// A cgroup file system mount found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that appears at the mount point (`/`
    /// unless a sub-tree is bind-mounted, as in a container).
    pub root: PathBuf,
    /// `true` for `cgroup2`, `false` for a v1 `cgroup` mount.
    pub unified: bool,
    /// v1: the controllers bound to the hierarchy.
    pub controllers: Vec<String>,
    /// v1: the `name=` option of a named hierarchy.
    pub name: Option<String>,
}

/// v1 super-block options that are not controllers.
const V1_NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Parse the bytes of a mountinfo file (`path` names it in errors),
/// keeping the cgroup mounts. Paths are kept as bytes: a mount point that
/// is not UTF-8 is found as it is.
pub fn parse_mountinfo<T: AsRef<[u8]> + ?Sized>(path: &Path, text: &T) -> Result<Vec<CgroupMount>> {
    let mounts = dunnage_base::mountinfo::parse(text.as_ref())
        .map_err(|e| Error::parse(path, 0, e.to_string()))?;
    let mut out = Vec::new();
    for m in mounts {
        let unified = match m.fs_type.as_str() {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let mut controllers = Vec::new();
        let mut name = None;
        if !unified {
            for opt in m.super_options.split(',') {
                if let Some(n) = opt.strip_prefix("name=") {
                    name = Some(n.to_owned());
                } else if !opt.contains('=') && !V1_NON_CONTROLLER_OPTIONS.contains(&opt) {
                    controllers.push(opt.to_owned());
                }
            }
        }
        out.push(CgroupMount {
            mount_point: m.mount_point,
            root: m.root,
            unified,
            controllers,
            name,
        });
    }
    Ok(out)
}

/// Read this process's cgroup mounts from `/proc/self/mountinfo`.
pub fn read_mountinfo() -> Result<Vec<CgroupMount>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = dunnage_base::fs::read_unsized(path).map_err(|e| Error::io("read", path, e))?;
    parse_mountinfo(path, &text)
}
