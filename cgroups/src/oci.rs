//! The OCI runtime-spec `LinuxResources` shape (`config.json`
//! `linux.resources`), for serde, and its conversion into [`Resources`].
//!
//! Only the fields this crate honours are modelled; unknown fields are
//! ignored by serde.

use crate::error::{Error, Result};
use crate::resources::{
    Cpu, Cpuset, DeviceRule, DeviceValue, HugetlbLimit, Io, Limit, Memory, Resources,
};
use serde::{Deserialize, Serialize};

/// `linux.resources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxResources {
    /// Device rules.
    pub devices: Vec<LinuxDeviceCgroup>,
    /// Memory.
    pub memory: Option<LinuxMemory>,
    /// CPU and cpuset.
    pub cpu: Option<LinuxCpu>,
    /// Pids.
    pub pids: Option<LinuxPids>,
    /// Block I/O.
    #[serde(rename = "blockIO")]
    pub block_io: Option<LinuxBlockIo>,
    /// Huge pages.
    pub hugepage_limits: Vec<LinuxHugepageLimit>,
    /// Network class and priorities.
    pub network: Option<LinuxNetwork>,
}

/// `linux.resources.devices[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxDeviceCgroup {
    /// Allow or deny.
    pub allow: bool,
    /// `a`, `b` or `c` (default `a`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Major number (absent: all).
    pub major: Option<i64>,
    /// Minor number (absent: all).
    pub minor: Option<i64>,
    /// `rwm` subset (default `rwm`).
    pub access: Option<String>,
}

/// `linux.resources.memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxMemory {
    /// Limit in bytes.
    pub limit: Option<i64>,
    /// Soft limit in bytes.
    pub reservation: Option<i64>,
    /// Memory plus swap in bytes.
    pub swap: Option<i64>,
    /// Swappiness 0..=100.
    pub swappiness: Option<u64>,
    /// Disable the OOM killer.
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
    /// TCP buffer memory limit in bytes (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
}

/// `linux.resources.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxCpu {
    /// Relative share.
    pub shares: Option<u64>,
    /// Quota in microseconds (-1: unlimited).
    pub quota: Option<i64>,
    /// Period in microseconds.
    pub period: Option<u64>,
    /// Realtime runtime in microseconds.
    pub realtime_runtime: Option<i64>,
    /// Realtime period in microseconds.
    pub realtime_period: Option<u64>,
    /// cpuset CPUs.
    pub cpus: Option<String>,
    /// cpuset memory nodes.
    pub mems: Option<String>,
    /// SCHED_IDLE (1) or not (0).
    pub idle: Option<i64>,
}

/// `linux.resources.pids`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxPids {
    /// Maximum number of tasks; 0 or -1: unlimited.
    pub limit: i64,
}

/// `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxBlockIo {
    /// Weight 10..=1000.
    pub weight: Option<u16>,
    /// Per-device weights.
    pub weight_device: Vec<LinuxWeightDevice>,
    /// Read bytes per second.
    pub throttle_read_bps_device: Vec<LinuxThrottleDevice>,
    /// Write bytes per second.
    pub throttle_write_bps_device: Vec<LinuxThrottleDevice>,
    /// Read operations per second.
    #[serde(rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Vec<LinuxThrottleDevice>,
    /// Write operations per second.
    #[serde(rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Vec<LinuxThrottleDevice>,
}

/// A device weight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxWeightDevice {
    /// Major.
    pub major: i64,
    /// Minor.
    pub minor: i64,
    /// Weight.
    pub weight: Option<u16>,
}

/// A device throttle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxThrottleDevice {
    /// Major.
    pub major: i64,
    /// Minor.
    pub minor: i64,
    /// Rate.
    pub rate: u64,
}

/// A huge-page limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxHugepageLimit {
    /// `2MB`, `1GB`...
    pub page_size: String,
    /// Bytes.
    pub limit: u64,
}

/// `linux.resources.network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinuxNetwork {
    /// net_cls class id.
    #[serde(rename = "classID")]
    pub class_id: Option<u32>,
    /// net_prio priorities.
    pub priorities: Vec<LinuxInterfacePriority>,
}

/// One interface priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinuxInterfacePriority {
    /// Interface name.
    pub name: String,
    /// Priority.
    pub priority: u32,
}

fn device_number(resource: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::invalid(resource, format!("device number {v} out of range")))
}

fn devices(resource: &'static str, list: &[LinuxThrottleDevice]) -> Result<Vec<DeviceValue>> {
    list.iter()
        .map(|d| {
            Ok(DeviceValue {
                major: device_number(resource, d.major)?,
                minor: device_number(resource, d.minor)?,
                value: d.rate,
            })
        })
        .collect()
}

impl TryFrom<&LinuxResources> for Resources {
    type Error = Error;

    /// Convert, rejecting negative values other than `-1` and numbers out
    /// of range; the result is also [`Resources::validate`]d.
    fn try_from(o: &LinuxResources) -> Result<Resources> {
        let opt = |name, v: Option<i64>| v.map(|v| Limit::from_i64(name, v)).transpose();
        let mem = o.memory.clone().unwrap_or_default();
        let cpu = o.cpu.clone().unwrap_or_default();
        let bio = o.block_io.clone().unwrap_or_default();
        let net = o.network.clone().unwrap_or_default();
        let r = Resources {
            cpu: Cpu {
                shares: cpu.shares,
                weight: None,
                quota: opt("cpu.quota", cpu.quota)?,
                period: cpu.period,
                cpus: None,
                realtime_runtime: cpu.realtime_runtime,
                realtime_period: cpu.realtime_period,
                idle: cpu.idle.map(|i| i != 0),
            },
            cpuset: Cpuset {
                cpus: cpu.cpus.filter(|s| !s.is_empty()),
                mems: cpu.mems.filter(|s| !s.is_empty()),
            },
            memory: Memory {
                limit: opt("memory.limit", mem.limit)?,
                reservation: opt("memory.reservation", mem.reservation)?,
                swap: opt("memory.swap", mem.swap)?,
                swappiness: mem.swappiness,
                disable_oom_killer: mem.disable_oom_killer,
                kernel_tcp: opt("memory.kernel_tcp", mem.kernel_tcp)?,
            },
            pids_max: match o.pids.as_ref().map(|p| p.limit) {
                None => None,
                Some(-1 | 0) => Some(Limit::Max),
                Some(v) => Some(Limit::from_i64("pids.max", v)?),
            },
            io: Io {
                weight: bio.weight,
                weight_device: bio
                    .weight_device
                    .iter()
                    .filter_map(|d| d.weight.map(|w| (d, w)))
                    .map(|(d, w)| {
                        Ok(DeviceValue {
                            major: device_number("blkio.weight_device", d.major)?,
                            minor: device_number("blkio.weight_device", d.minor)?,
                            value: u64::from(w),
                        })
                    })
                    .collect::<Result<_>>()?,
                read_bps: devices(
                    "blkio.throttle.read_bps_device",
                    &bio.throttle_read_bps_device,
                )?,
                write_bps: devices(
                    "blkio.throttle.write_bps_device",
                    &bio.throttle_write_bps_device,
                )?,
                read_iops: devices(
                    "blkio.throttle.read_iops_device",
                    &bio.throttle_read_iops_device,
                )?,
                write_iops: devices(
                    "blkio.throttle.write_iops_device",
                    &bio.throttle_write_iops_device,
                )?,
            },
            hugetlb: o
                .hugepage_limits
                .iter()
                .map(|h| HugetlbLimit {
                    page_size: h.page_size.clone(),
                    limit: h.limit,
                })
                .collect(),
            devices: o
                .devices
                .iter()
                .map(|d| {
                    let num = |v: Option<i64>| match v {
                        None | Some(-1) => Ok(None),
                        Some(v) => device_number("devices", v).map(Some),
                    };
                    let kind = d.kind.as_deref().unwrap_or("a");
                    let mut chars = kind.chars();
                    let (Some(k), None) = (chars.next(), chars.next()) else {
                        return Err(Error::invalid("devices", format!("bad type {kind:?}")));
                    };
                    Ok(DeviceRule {
                        allow: d.allow,
                        kind: k,
                        major: num(d.major)?,
                        minor: num(d.minor)?,
                        access: d.access.clone().unwrap_or_else(|| "rwm".into()),
                    })
                })
                .collect::<Result<_>>()?,
            net_cls_classid: net.class_id,
            net_prio_ifpriomap: net
                .priorities
                .iter()
                .map(|p| (p.name.clone(), p.priority))
                .collect(),
        };
        r.validate()?;
        Ok(r)
    }
}
