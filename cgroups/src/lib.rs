//! Linux cgroups v1, v2 and hybrid: one API that works the same whichever
//! way the host mounts them.
//!
//! ```no_run
//! use dunnage_cgroups::{Cgroup, CgroupPath, Hierarchies, Limit, Resources};
//!
//! # fn main() -> Result<(), dunnage_cgroups::Error> {
//! let host = Hierarchies::detect()?; // legacy, hybrid or unified
//! let cg = Cgroup::create(&host, &CgroupPath::new("demo/web")?, &[])?;
//! let mut r = Resources::default();
//! r.memory.limit = Some(Limit::Value(256 << 20));
//! r.cpu.cpus = Some(0.5);
//! r.pids_max = Some(Limit::Value(64));
//! cg.apply(&r)?; // checks everything first, then writes only what is set
//! cg.add_process(std::process::id())?;
//! println!("{:?}", cg.stats()?.memory);
//! # Ok(()) }
//! ```
//!
//! Contents:
//! - Discovery: [`Hierarchies`] (the mounted hierarchies and the host's
//!   [`Mode`]); the kernel's reports parsed in [`proc`].
//! - v1 hierarchies: [`mount_v1`], [`unmount`].
//! - The handle: [`Cgroup`] (create, open, delete, processes, threads,
//!   v1 release options, v2 subtree control and threaded cgroups) at a
//!   validated [`CgroupPath`].
//! - Limits: [`Resources`], convertible from the OCI shape in [`oci`];
//!   [`Cgroup::plan`] / [`Cgroup::apply`].
//! - Statistics: [`Cgroup::stats`] -> [`Stats`]; the stat files' parsers
//!   on their text in [`statfile`].
//! - Control: [`Cgroup::freeze`], [`Cgroup::thaw`], [`Cgroup::kill`];
//!   OOM notification: [`Cgroup::oom_events`] -> [`OomEvents`].
//!
//! - Devices: v1 writes `devices.allow`/`devices.deny`; on v2 the rules
//!   are compiled into a BPF program ([`DeviceFilter`]) that
//!   [`Cgroup::apply`] loads and attaches ([`attach_device_program`],
//!   [`device_programs`]).

mod apply;
mod bpf;
mod cgroup;
mod control;
mod controller;
mod devices;
mod error;
mod events;
mod file;
mod hierarchy;
mod join;
pub mod oci;
mod path;
pub mod proc;
mod resources;
pub mod statfile;
mod stats;
mod v1;
mod v2;

pub use apply::Write;
pub use bpf::{DeviceProgram, attach_device_program, detach_device_programs, device_programs};
pub use cgroup::{Cgroup, CgroupDir};
pub use control::FreezerState;
pub use controller::Controller;
pub use devices::{DeviceException, DeviceFilter, Insn};
pub use error::{Error, Result};
pub use events::OomEvents;
pub use hierarchy::{Hierarchies, Hierarchy, Mode, V1Binding, Version, mount_v1, unmount};
pub use join::JoinFds;
pub use path::CgroupPath;
pub use resources::{
    Cpu, Cpuset, DeviceRule, DeviceValue, HugetlbLimit, Io, Limit, Memory, Resources,
    blkio_weight_to_io, parse_list, shares_to_weight, weight_to_shares,
};
pub use stats::{
    CpuStats, HugetlbStats, IoDeviceStats, MemoryStats, PidsStats, Pressure, PressureLine,
    PressureStats, Stats, Throttling,
};

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
