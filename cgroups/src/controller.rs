//! Controllers (v1 "subsystems") by name.

use std::fmt;

/// A cgroup controller. v1 calls them subsystems; `blkio` (v1) and `io`
/// (v2) are one controller here, and so are `cpuacct` and v2's `cpu`
/// accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Controller {
    /// CPU shares/weight, quota, realtime.
    Cpu,
    /// v1 CPU accounting (part of `cpu` on v2).
    Cpuacct,
    /// CPU and memory-node placement.
    Cpuset,
    /// Memory limits and accounting.
    Memory,
    /// Block I/O: v1 `blkio`, v2 `io`.
    Io,
    /// Process-number limit.
    Pids,
    /// Huge-page limits.
    Hugetlb,
    /// v1 device access lists (v2: a BPF program, see [`crate::DeviceFilter`]).
    Devices,
    /// v1 freezer (v2 freezes with core files).
    Freezer,
    /// v1 network class id.
    NetCls,
    /// v1 network priority map.
    NetPrio,
    /// perf events grouping.
    PerfEvent,
    /// RDMA resources.
    Rdma,
    /// Miscellaneous scalar resources.
    Misc,
}

impl Controller {
    /// Every controller, in `/proc/cgroups` order where it has one.
    pub const ALL: [Controller; 14] = [
        Controller::Cpuset,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Io,
        Controller::Memory,
        Controller::Devices,
        Controller::Freezer,
        Controller::NetCls,
        Controller::PerfEvent,
        Controller::NetPrio,
        Controller::Hugetlb,
        Controller::Pids,
        Controller::Rdma,
        Controller::Misc,
    ];

    /// The controller named `name` (v1 or v2 spelling).
    pub fn from_name(name: &str) -> Option<Controller> {
        Some(match name {
            "cpu" => Controller::Cpu,
            "cpuacct" => Controller::Cpuacct,
            "cpuset" => Controller::Cpuset,
            "memory" => Controller::Memory,
            "blkio" | "io" => Controller::Io,
            "pids" => Controller::Pids,
            "hugetlb" => Controller::Hugetlb,
            "devices" => Controller::Devices,
            "freezer" => Controller::Freezer,
            "net_cls" => Controller::NetCls,
            "net_prio" => Controller::NetPrio,
            "perf_event" => Controller::PerfEvent,
            "rdma" => Controller::Rdma,
            "misc" => Controller::Misc,
            _ => return None,
        })
    }

    /// Whether v2 provides this without a controller of that name: CPU
    /// accounting (`cpu.stat`), freezing (`cgroup.freeze`) and device
    /// control (a BPF program).
    pub fn v2_builtin(self) -> bool {
        matches!(
            self,
            Controller::Cpuacct | Controller::Freezer | Controller::Devices
        )
    }

    /// The v1 subsystem name (`blkio` for [`Controller::Io`]).
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Io => "blkio",
            other => other.v2_name(),
        }
    }

    /// The v2 controller name (`io` for [`Controller::Io`]).
    pub fn v2_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Io => "io",
            Controller::Pids => "pids",
            Controller::Hugetlb => "hugetlb",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::PerfEvent => "perf_event",
            Controller::Rdma => "rdma",
            Controller::Misc => "misc",
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v1_name())
    }
}
