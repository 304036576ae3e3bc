//! Applying [`Resources`]: first a plan of file writes is made (values
//! validated, every controller and file checked), then the plan is
//! executed. A resource the cgroup cannot honour fails the planning, so
//! nothing is written.

use crate::cgroup::{Cgroup, CgroupDir};
use crate::controller::Controller;
use crate::devices::DeviceFilter;
use crate::error::{Error, Result};
use crate::hierarchy::Version;
use crate::resources::{Cpu, Cpuset, Io, Memory, Resources};
use crate::{file, v1, v2};
use std::path::PathBuf;

/// One write of a plan: `value` into the control file `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The resource it implements (`memory.limit`, `cpu.quota`, ...).
    pub resource: &'static str,
    /// The control file.
    pub path: PathBuf,
    /// What is written.
    pub value: String,
}

/// The writes of a plan, built by the v1 and v2 planners.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) writes: Vec<Write>,
    /// v2: the device filter and the directory it is attached to.
    devices: Option<(PathBuf, DeviceFilter)>,
    /// Whether `set` checks that each file exists ([`Cgroup::plan`]);
    /// [`Cgroup::apply`] instead opens every file before writing any.
    check_files: bool,
}

/// The error for a control file the cgroup does not have.
fn missing(resource: &'static str, path: &std::path::Path) -> Error {
    Error::unsupported(resource, format!("{} does not exist", path.display()))
}

impl Plan {
    /// Plan writing `value` to `dir/name`; the file must exist.
    pub(crate) fn set(
        &mut self,
        resource: &'static str,
        dir: &CgroupDir,
        name: &str,
        value: String,
    ) -> Result<()> {
        let path = dir.file(name);
        if self.check_files && !path.exists() {
            return Err(missing(resource, &path));
        }
        self.writes.push(Write {
            resource,
            path,
            value,
        });
        Ok(())
    }
}

/// The directory holding `c`; for what v2 provides without a controller
/// (device filters), the v2 directory when no v1 one holds it.
fn dir_for<'a>(cg: &'a Cgroup, c: Controller, resource: &'static str) -> Result<&'a CgroupDir> {
    cg.dir_of(c)
        .or_else(|| cg.v2_dir().filter(|_| c == Controller::Devices))
        .ok_or_else(|| {
            Error::unsupported(
                resource,
                format!("the {c} controller is not in this cgroup's hierarchies"),
            )
        })
}

impl Cgroup {
    /// The writes that [`Cgroup::apply`] would make for `r`, in order.
    ///
    /// Fails, without writing anything, on an invalid value or on a
    /// resource that no directory of this cgroup can take.
    ///
    /// Device rules on a v2 cgroup are no file write: they become a BPF
    /// program ([`DeviceFilter`]) that `apply` attaches; the plan checks
    /// that they compile.
    pub fn plan(&self, r: &Resources) -> Result<Vec<Write>> {
        Ok(self.make_plan(r, true)?.writes)
    }

    fn make_plan(&self, r: &Resources, check_files: bool) -> Result<Plan> {
        r.validate()?;
        let mut p = Plan {
            writes: Vec::new(),
            devices: None,
            check_files,
        };
        if r.cpu != Cpu::default() {
            let d = dir_for(self, Controller::Cpu, "cpu")?;
            match d.version {
                Version::V1 => v1::cpu(d, r, &mut p)?,
                Version::V2 => v2::cpu(d, r, &mut p)?,
            }
        }
        if r.cpuset != Cpuset::default() {
            let d = dir_for(self, Controller::Cpuset, "cpuset")?;
            if let Some(c) = &r.cpuset.cpus {
                p.set("cpuset.cpus", d, "cpuset.cpus", c.clone())?;
            }
            if let Some(m) = &r.cpuset.mems {
                p.set("cpuset.mems", d, "cpuset.mems", m.clone())?;
            }
        }
        if r.memory != Memory::default() {
            let d = dir_for(self, Controller::Memory, "memory")?;
            match d.version {
                Version::V1 => v1::memory(d, &r.memory, &mut p)?,
                Version::V2 => v2::memory(d, &r.memory, &mut p)?,
            }
        }
        if let Some(max) = r.pids_max {
            let d = dir_for(self, Controller::Pids, "pids.max")?;
            p.set("pids.max", d, "pids.max", max.v2())?;
        }
        if r.io != Io::default() {
            let d = dir_for(self, Controller::Io, "io")?;
            match d.version {
                Version::V1 => v1::io(d, &r.io, &mut p)?,
                Version::V2 => v2::io(d, &r.io, &mut p)?,
            }
        }
        for h in &r.hugetlb {
            let d = dir_for(self, Controller::Hugetlb, "hugetlb")?;
            let name = match d.version {
                Version::V1 => format!("hugetlb.{}.limit_in_bytes", h.page_size),
                Version::V2 => format!("hugetlb.{}.max", h.page_size),
            };
            p.set("hugetlb", d, &name, h.limit.to_string())?;
        }
        if !r.devices.is_empty() {
            let d = dir_for(self, Controller::Devices, "devices")?;
            match d.version {
                Version::V1 => v1::devices(d, &r.devices, &mut p)?,
                Version::V2 => p.devices = Some((d.path.clone(), DeviceFilter::new(&r.devices)?)),
            }
        }
        if let Some(id) = r.net_cls_classid {
            let d = dir_for(self, Controller::NetCls, "net_cls.classid")?;
            p.set("net_cls.classid", d, "net_cls.classid", id.to_string())?;
        }
        for (ifname, prio) in &r.net_prio_ifpriomap {
            let d = dir_for(self, Controller::NetPrio, "net_prio.ifpriomap")?;
            p.set(
                "net_prio.ifpriomap",
                d,
                "net_prio.ifpriomap",
                format!("{ifname} {prio}"),
            )?;
        }
        Ok(p)
    }

    /// Apply `r`: write only what is set, in an order the kernel accepts.
    ///
    /// Everything is checked first ([`Cgroup::plan`]); an error there
    /// leaves the cgroup untouched. A write the kernel then refuses (a
    /// memory limit below current usage, say) stops the apply with an
    /// [`Error::Io`] naming the file.
    ///
    /// v2 device rules: the program is loaded before anything is written
    /// (a refusal by the kernel changes nothing) and attached after the
    /// writes, replacing the cgroup's previous device programs.
    pub fn apply(&self, r: &Resources) -> Result<()> {
        let Plan {
            writes, devices, ..
        } = self.make_plan(r, false)?;
        let devices = devices
            .map(|(dir, filter)| filter.load().map(|prog| (dir, prog)))
            .transpose()?;
        // Every file is opened before anything is written: a missing one
        // fails the apply as it fails the plan, and costs no extra stat.
        // A file written several times (v1 `devices.allow`, one rule per
        // write) is opened once; each value is still its own write(2).
        let mut files: Vec<(&std::path::Path, std::fs::File)> = Vec::new();
        let mut slots = Vec::with_capacity(writes.len());
        for w in &writes {
            let slot = match files.iter().position(|(p, _)| *p == w.path.as_path()) {
                Some(i) => i,
                None => {
                    let f = file::open_write(&w.path).map_err(|e| match e {
                        Error::Io { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            missing(w.resource, &w.path)
                        }
                        e => e,
                    })?;
                    files.push((&w.path, f));
                    files.len() - 1
                }
            };
            slots.push(slot);
        }
        for (w, slot) in writes.iter().zip(slots) {
            file::write_to(&files[slot].1, &w.path, &w.value)?;
        }
        if let Some((dir, prog)) = devices {
            crate::bpf::attach_device_program(&dir, &prog)?;
        }
        Ok(())
    }
}
