//! Discovery of the mounted hierarchies and the host's mode, and mounting
//! new v1 hierarchies.

use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::path::CgroupPath;
use crate::proc::{self, CgroupMount};
use std::path::{Path, PathBuf};

/// Which cgroup version a hierarchy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// A v1 `cgroup` hierarchy.
    V1,
    /// The v2 `cgroup2` unified hierarchy.
    V2,
}

/// How the host's cgroups are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// v1 hierarchies only (or only named v1 hierarchies, without
    /// controllers).
    Legacy,
    /// v1 hierarchies with controllers and a v2 mount beside them
    /// (`/sys/fs/cgroup/unified`); v2 has only the controllers no v1
    /// hierarchy holds.
    Hybrid,
    /// Only the v2 unified hierarchy (a named v1 hierarchy may exist).
    Unified,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The cgroup that appears at the mount point (`/` unless a sub-tree
    /// is mounted, as inside a container).
    pub root: PathBuf,
    /// The subsystem names as the kernel spells them: v1 the mount's
    /// controllers, v2 the root's `cgroup.controllers`.
    pub subsystems: Vec<String>,
    /// v1: the `name=` of a named hierarchy.
    pub name: Option<String>,
}

impl Hierarchy {
    /// The known controllers among [`Hierarchy::subsystems`].
    pub fn controllers(&self) -> Vec<Controller> {
        self.subsystems
            .iter()
            .filter_map(|s| Controller::from_name(s))
            .collect()
    }

    /// Whether `c` is available in this hierarchy.
    pub fn has(&self, c: Controller) -> bool {
        self.controllers().contains(&c) || (self.version == Version::V2 && c.v2_builtin())
    }

    /// Every cgroup at or below `from`, parents before children, children
    /// in directory order (as `lscgroup` walks).
    pub fn walk(&self, from: &CgroupPath) -> Result<Vec<CgroupPath>> {
        let mut out = Vec::new();
        walk_dir(&self.mount_point.join(from.as_str()), from, &mut out)?;
        Ok(out)
    }

    /// v1: set the hierarchy's `release_agent` (only its root has one).
    pub fn set_release_agent(&self, agent: &Path) -> Result<()> {
        if self.version != Version::V1 {
            return Err(Error::unsupported(
                "release_agent",
                "v2 has no release agent; watch cgroup.events",
            ));
        }
        let agent = agent
            .to_str()
            .ok_or_else(|| Error::invalid("release_agent", "not UTF-8"))?;
        crate::file::write(&self.mount_point.join("release_agent"), agent)
    }
}

fn walk_dir(dir: &Path, path: &CgroupPath, out: &mut Vec<CgroupPath>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("readdir", dir, e))?;
    out.push(path.clone());
    for e in rd {
        let e = e.map_err(|e| Error::io("readdir", dir, e))?;
        // A cgroup removed meanwhile is skipped, not an error.
        if e.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = e.file_name().to_str()
            && let Ok(child) = path.join(name)
        {
            match walk_dir(&e.path(), &child, out) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// The mounted hierarchies of this host and its [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    mode: Mode,
    list: Vec<Hierarchy>,
}

impl Hierarchies {
    /// Discover the hierarchies from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Hierarchies> {
        Hierarchies::from_mounts(&proc::read_mountinfo()?)
    }

    /// Build from parsed mounts: the first mount of each hierarchy is kept,
    /// v2 controllers are read from the mount's `cgroup.controllers`.
    pub fn from_mounts(mounts: &[CgroupMount]) -> Result<Hierarchies> {
        let mut list: Vec<Hierarchy> = Vec::new();
        for m in mounts {
            let subsystems = if m.unified {
                let path = m.mount_point.join("cgroup.controllers");
                crate::file::read(&path)?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            } else {
                m.controllers.clone()
            };
            let version = if m.unified { Version::V2 } else { Version::V1 };
            let seen = list
                .iter()
                .any(|h| h.version == version && h.subsystems == subsystems && h.name == m.name);
            if !seen {
                list.push(Hierarchy {
                    version,
                    mount_point: m.mount_point.clone(),
                    root: m.root.clone(),
                    subsystems,
                    name: m.name.clone(),
                });
            }
        }
        let v1 = list
            .iter()
            .any(|h| h.version == Version::V1 && !h.subsystems.is_empty());
        let v2 = list.iter().any(|h| h.version == Version::V2);
        let mode = match (v1, v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Legacy,
            (false, true) => Mode::Unified,
            // Only named hierarchies (`none,name=...`): v1 without controllers.
            (false, false) if !list.is_empty() => Mode::Legacy,
            (false, false) => {
                return Err(Error::NotMounted(
                    "no cgroup or cgroup2 mount in mountinfo".into(),
                ));
            }
        };
        Ok(Hierarchies { mode, list })
    }

    /// The host's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// All hierarchies, in mount order.
    pub fn list(&self) -> &[Hierarchy] {
        &self.list
    }

    /// The v2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        self.list.iter().find(|h| h.version == Version::V2)
    }

    /// The controllers usable on v2: those in the v2 root's
    /// `cgroup.controllers` (in hybrid mode, the ones no v1 hierarchy holds).
    pub fn v2_controllers(&self) -> Vec<Controller> {
        self.unified()
            .map(Hierarchy::controllers)
            .unwrap_or_default()
    }

    /// The hierarchy that serves `c`: a v1 hierarchy that has it, else the
    /// v2 one when it offers it.
    pub fn for_controller(&self, c: Controller) -> Option<&Hierarchy> {
        self.list
            .iter()
            .find(|h| h.version == Version::V1 && h.has(c))
            .or_else(|| self.unified().filter(|h| h.has(c)))
    }

    /// Only the v2 hierarchy (in hybrid mode: to use the v2 side alone).
    pub fn v2_only(&self) -> Option<Hierarchies> {
        self.unified().map(|h| Hierarchies {
            mode: Mode::Unified,
            list: vec![h.clone()],
        })
    }
}

/// What a new v1 hierarchy binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V1Binding {
    /// These subsystems (`mount -t cgroup -o cpu,cpuacct`).
    Subsystems(Vec<Controller>),
    /// No subsystem, only a name (`mount -t cgroup -o none,name=NAME`).
    Named(String),
}

/// Mount a v1 hierarchy at `target` (an existing directory).
///
/// Mounting subsystems that are all already bound to one hierarchy with
/// exactly that set mounts that hierarchy again; any other overlap gives
/// [`Error::SubsystemBusy`].
pub fn mount_v1(target: &Path, binding: &V1Binding) -> Result<()> {
    let options = match binding {
        V1Binding::Subsystems(list) if list.is_empty() => {
            return Err(Error::invalid(
                "mount options",
                "no subsystem given; use a name",
            ));
        }
        V1Binding::Subsystems(list) => list
            .iter()
            .map(|c| c.v1_name())
            .collect::<Vec<_>>()
            .join(","),
        V1Binding::Named(name) => {
            if name.is_empty() || name.contains([',', '/', '=', '\0']) || name.len() > 64 {
                return Err(Error::invalid("hierarchy name", format!("{name:?}")));
            }
            format!("none,name={name}")
        }
    };
    let data = dunnage_base::cstr::cstring(&options)
        .map_err(|e| Error::invalid("mount options", e.to_string()))?;
    rustix::mount::mount(
        "cgroup",
        target,
        "cgroup",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::BUSY => Error::SubsystemBusy {
            options: options.clone(),
            target: target.to_owned(),
        },
        e => Error::Sys {
            op: "mount",
            arg: format!("cgroup, {}, {options}", target.display()),
            source: e.into(),
        },
    })
}

/// Unmount the hierarchy mounted at `target`.
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty()).map_err(|e| Error::Sys {
        op: "umount",
        arg: target.display().to_string(),
        source: e.into(),
    })
}
