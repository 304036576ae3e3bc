//! Typed statistics. A controller the cgroup has but whose files are
//! missing or malformed gives an error, never a silent zero; a controller
//! the cgroup does not have gives `None`.

use crate::cgroup::{Cgroup, CgroupDir};
use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::file;
use crate::hierarchy::Version;
use crate::resources::Limit;
use std::path::Path;
use std::time::Duration;

/// Statistics of one cgroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// CPU usage and throttling.
    pub cpu: Option<CpuStats>,
    /// Memory usage.
    pub memory: Option<MemoryStats>,
    /// Task counts.
    pub pids: Option<PidsStats>,
    /// Block I/O per device.
    pub io: Option<Vec<IoDeviceStats>>,
    /// Huge-page usage per page size.
    pub hugetlb: Vec<HugetlbStats>,
    /// v2 pressure stall information (`cpu.pressure`, ...).
    pub pressure: Option<PressureStats>,
}

/// CPU time used and throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Total CPU time.
    pub usage: Duration,
    /// User time.
    pub user: Duration,
    /// System time.
    pub system: Duration,
    /// v1: usage per CPU (empty on v2).
    pub per_cpu: Vec<Duration>,
    /// Throttling, when the cpu controller is in the cgroup.
    pub throttling: Option<Throttling>,
}

/// CFS bandwidth throttling counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled.
    pub throttled_time: Duration,
}

/// Memory usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current usage in bytes.
    pub usage: u64,
    /// Peak usage (v1 `max_usage_in_bytes`, v2 `memory.peak` where the
    /// kernel has it).
    pub max_usage: Option<u64>,
    /// The limit.
    pub limit: Limit,
    /// How often the limit was hit (v1 `failcnt`, v2 `memory.events` max).
    pub failcnt: u64,
    /// v2 `oom` events (v1 does not count them).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
    /// `memory.stat`, as the kernel lists it.
    pub stat: Vec<(String, u64)>,
}

/// Task counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidsStats {
    /// Tasks now.
    pub current: u64,
    /// The limit.
    pub max: Limit,
}

/// I/O of one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoDeviceStats {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// Huge-page usage for one page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugetlbStats {
    /// `2MB`, `1GB`...
    pub page_size: String,
    /// Bytes in use.
    pub usage: u64,
    /// Allocation failures at the limit.
    pub failcnt: u64,
}

/// v2 pressure stall information.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureStats {
    /// `cpu.pressure`.
    pub cpu: Pressure,
    /// `memory.pressure`.
    pub memory: Pressure,
    /// `io.pressure`.
    pub io: Pressure,
}

/// One pressure file: the `some` line and, except for cpu on old
/// kernels, the `full` line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: PressureLine,
    /// All tasks stalled.
    pub full: Option<PressureLine>,
}

/// `avg10=.. avg60=.. avg300=.. total=..`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureLine {
    /// Percent over 10 s.
    pub avg10: f64,
    /// Percent over 60 s.
    pub avg60: f64,
    /// Percent over 300 s.
    pub avg300: f64,
    /// Total stall time.
    pub total: Duration,
}

/// Parse v1 `cpuacct.usage_percpu`: nanoseconds per CPU, space-separated.
pub(crate) fn parse_per_cpu(path: &Path, text: &str) -> Result<Vec<Duration>> {
    text.split_whitespace()
        .map(|v| {
            v.parse()
                .map(Duration::from_nanos)
                .map_err(|_| Error::parse(path, 1, format!("not a number: {v:?}")))
        })
        .collect()
}

/// v1 reports "unlimited" as the largest page-aligned i64.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

fn v1_limit(v: u64) -> Limit {
    if v >= V1_UNLIMITED {
        Limit::Max
    } else {
        Limit::Value(v)
    }
}

fn max_limit(path: &Path) -> Result<Limit> {
    Ok(file::read_max(path)?.map_or(Limit::Max, Limit::Value))
}

impl Cgroup {
    /// Read the statistics of every controller the cgroup has.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats {
            cpu: self
                .dir_of(Controller::Cpuacct)
                .or(self.v2_dir())
                .map(|d| self.cpu_stats(d))
                .transpose()?,
            memory: self
                .dir_of(Controller::Memory)
                .map(memory_stats)
                .transpose()?,
            pids: self
                .dir_of(Controller::Pids)
                .map(|d| {
                    Ok::<_, Error>(PidsStats {
                        current: file::read_u64(&d.file("pids.current"))?,
                        max: max_limit(&d.file("pids.max"))?,
                    })
                })
                .transpose()?,
            io: self.dir_of(Controller::Io).map(io_stats).transpose()?,
            hugetlb: Vec::new(),
            pressure: self
                .v2_dir()
                .filter(|d| d.file("cpu.pressure").exists())
                .map(pressure_stats)
                .transpose()?,
        };
        if let Some(d) = self.dir_of(Controller::Hugetlb) {
            s.hugetlb = hugetlb_stats(d)?;
        }
        Ok(s)
    }

    fn cpu_stats(&self, d: &CgroupDir) -> Result<CpuStats> {
        match d.version {
            Version::V1 => {
                let ns = |name: &str| file::read_u64(&d.file(name)).map(Duration::from_nanos);
                let per_cpu_path = d.file("cpuacct.usage_percpu");
                let per_cpu = parse_per_cpu(&per_cpu_path, &file::read(&per_cpu_path)?)?;
                let throttling = match self.dir_of(Controller::Cpu) {
                    Some(c) if c.version == Version::V1 => {
                        let path = c.file("cpu.stat");
                        let kv = file::read_flat_keyed(&path)?;
                        Some(Throttling {
                            periods: file::key(&path, &kv, "nr_periods")?,
                            throttled_periods: file::key(&path, &kv, "nr_throttled")?,
                            throttled_time: Duration::from_nanos(file::key(
                                &path,
                                &kv,
                                "throttled_time",
                            )?),
                        })
                    }
                    _ => None,
                };
                Ok(CpuStats {
                    usage: ns("cpuacct.usage")?,
                    user: ns("cpuacct.usage_user")?,
                    system: ns("cpuacct.usage_sys")?,
                    per_cpu,
                    throttling,
                })
            }
            Version::V2 => {
                let path = d.file("cpu.stat");
                let kv = file::read_flat_keyed(&path)?;
                let us = |k: &str| file::key(&path, &kv, k).map(Duration::from_micros);
                let throttling = if kv.iter().any(|(k, _)| k == "nr_periods") {
                    Some(Throttling {
                        periods: file::key(&path, &kv, "nr_periods")?,
                        throttled_periods: file::key(&path, &kv, "nr_throttled")?,
                        throttled_time: us("throttled_usec")?,
                    })
                } else {
                    None
                };
                Ok(CpuStats {
                    usage: us("usage_usec")?,
                    user: us("user_usec")?,
                    system: us("system_usec")?,
                    per_cpu: Vec::new(),
                    throttling,
                })
            }
        }
    }
}

fn memory_stats(d: &CgroupDir) -> Result<MemoryStats> {
    let stat = file::read_flat_keyed(&d.file("memory.stat"))?;
    match d.version {
        Version::V1 => {
            let oc_path = d.file("memory.oom_control");
            let oc = file::read_flat_keyed(&oc_path)?;
            Ok(MemoryStats {
                usage: file::read_u64(&d.file("memory.usage_in_bytes"))?,
                max_usage: Some(file::read_u64(&d.file("memory.max_usage_in_bytes"))?),
                limit: v1_limit(file::read_u64(&d.file("memory.limit_in_bytes"))?),
                failcnt: file::read_u64(&d.file("memory.failcnt"))?,
                oom: None,
                oom_kill: file::key(&oc_path, &oc, "oom_kill")?,
                stat,
            })
        }
        Version::V2 => {
            let ev_path = d.file("memory.events");
            let ev = file::read_flat_keyed(&ev_path)?;
            let peak = d.file("memory.peak");
            Ok(MemoryStats {
                usage: file::read_u64(&d.file("memory.current"))?,
                max_usage: if peak.exists() {
                    Some(file::read_u64(&peak)?)
                } else {
                    None
                },
                limit: max_limit(&d.file("memory.max"))?,
                failcnt: file::key(&ev_path, &ev, "max")?,
                oom: Some(file::key(&ev_path, &ev, "oom")?),
                oom_kill: file::key(&ev_path, &ev, "oom_kill")?,
                stat,
            })
        }
    }
}

fn device(path: &Path, line: usize, s: &str) -> Result<(u32, u32)> {
    s.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| Error::parse(path, line, format!("bad device {s:?}")))
}

fn entry(list: &mut Vec<IoDeviceStats>, (major, minor): (u32, u32)) -> &mut IoDeviceStats {
    if let Some(i) = list
        .iter()
        .position(|e| (e.major, e.minor) == (major, minor))
    {
        return &mut list[i];
    }
    list.push(IoDeviceStats {
        major,
        minor,
        ..IoDeviceStats::default()
    });
    let last = list.len() - 1;
    &mut list[last]
}

/// Parse v1 `blkio.throttle.io_service_bytes` / `io_serviced` into `list`.
pub(crate) fn parse_blkio(
    path: &Path,
    text: &str,
    list: &mut Vec<IoDeviceStats>,
    bytes: bool,
) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[..] {
            [] | ["Total", _] => {}
            [dev, op, v] => {
                let v: u64 = v
                    .parse()
                    .map_err(|_| Error::parse(path, i + 1, format!("not a number: {v:?}")))?;
                let e = entry(list, device(path, i + 1, dev)?);
                match (op, bytes) {
                    ("Read", true) => e.read_bytes = v,
                    ("Write", true) => e.write_bytes = v,
                    ("Read", false) => e.read_ops = v,
                    ("Write", false) => e.write_ops = v,
                    _ => {}
                }
            }
            _ => {
                return Err(Error::parse(
                    path,
                    i + 1,
                    format!("unexpected line {line:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Parse v2 `io.stat` lines `maj:min rbytes=.. wbytes=.. rios=.. wios=..`.
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<Vec<IoDeviceStats>> {
    let mut list = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let Some(dev) = it.next() else { continue };
        let dev = device(path, i + 1, dev)?;
        let mut e = IoDeviceStats {
            major: dev.0,
            minor: dev.1,
            ..IoDeviceStats::default()
        };
        for kv in it {
            let (k, v) = kv
                .split_once('=')
                .and_then(|(k, v)| Some((k, v.parse::<u64>().ok()?)))
                .ok_or_else(|| Error::parse(path, i + 1, format!("bad field {kv:?}")))?;
            match k {
                "rbytes" => e.read_bytes = v,
                "wbytes" => e.write_bytes = v,
                "rios" => e.read_ops = v,
                "wios" => e.write_ops = v,
                _ => {}
            }
        }
        list.push(e);
    }
    Ok(list)
}

fn io_stats(d: &CgroupDir) -> Result<Vec<IoDeviceStats>> {
    match d.version {
        Version::V1 => {
            let mut list = Vec::new();
            for (name, bytes) in [
                ("blkio.throttle.io_service_bytes", true),
                ("blkio.throttle.io_serviced", false),
            ] {
                let p = d.file(name);
                parse_blkio(&p, &file::read(&p)?, &mut list, bytes)?;
            }
            Ok(list)
        }
        Version::V2 => {
            let p = d.file("io.stat");
            parse_io_stat(&p, &file::read(&p)?)
        }
    }
}

fn hugetlb_stats(d: &CgroupDir) -> Result<Vec<HugetlbStats>> {
    let (usage_suffix, v1) = match d.version {
        Version::V1 => (".usage_in_bytes", true),
        Version::V2 => (".current", false),
    };
    let rd = std::fs::read_dir(&d.path).map_err(|e| Error::io("readdir", &d.path, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("readdir", &d.path, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|s| s.strip_suffix(usage_suffix))
            .filter(|s| !s.contains('.'))
        else {
            continue;
        };
        let failcnt = if v1 {
            file::read_u64(&d.file(&format!("hugetlb.{size}.failcnt")))?
        } else {
            let p = d.file(&format!("hugetlb.{size}.events"));
            file::key(&p, &file::read_flat_keyed(&p)?, "max")?
        };
        out.push(HugetlbStats {
            page_size: size.to_owned(),
            usage: file::read_u64(&e.path())?,
            failcnt,
        });
    }
    out.sort_by(|a, b| a.page_size.cmp(&b.page_size));
    Ok(out)
}

/// Parse a PSI file.
pub(crate) fn parse_pressure(path: &Path, text: &str) -> Result<Pressure> {
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let kind = it.next();
        let mut l = PressureLine::default();
        for kv in it {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::parse(path, i + 1, format!("bad field {kv:?}")))?;
            let bad = || Error::parse(path, i + 1, format!("bad value {kv:?}"));
            match k {
                "avg10" => l.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => l.avg60 = v.parse().map_err(|_| bad())?,
                "avg300" => l.avg300 = v.parse().map_err(|_| bad())?,
                "total" => l.total = Duration::from_micros(v.parse().map_err(|_| bad())?),
                _ => {}
            }
        }
        match kind {
            Some("some") => some = Some(l),
            Some("full") => full = Some(l),
            None => {}
            Some(other) => {
                return Err(Error::parse(
                    path,
                    i + 1,
                    format!("unknown line kind {other:?}"),
                ));
            }
        }
    }
    Ok(Pressure {
        some: some.ok_or_else(|| Error::parse(path, 0, "no `some` line"))?,
        full,
    })
}

fn pressure_stats(d: &CgroupDir) -> Result<PressureStats> {
    let read = |name: &str| {
        let p = d.file(name);
        parse_pressure(&p, &file::read(&p)?)
    };
    Ok(PressureStats {
        cpu: read("cpu.pressure")?,
        memory: read("memory.pressure")?,
        io: read("io.pressure")?,
    })
}
