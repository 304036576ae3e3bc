//! One typed description of the limits a cgroup can carry, validated before
//! anything is written. Build it by hand or convert it from the OCI
//! runtime-spec shape ([`crate::oci::LinuxResources`]).

use crate::error::{Error, Result};

/// A limit that may be unlimited (`max` on v2, `-1` on v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit.
    Max,
    /// This many bytes, pids, microseconds...
    Value(u64),
}

impl Limit {
    /// From an OCI-style signed value: `-1` is unlimited, other negatives
    /// are an error naming `resource`.
    pub fn from_i64(resource: &'static str, v: i64) -> Result<Limit> {
        match v {
            -1 => Ok(Limit::Max),
            v if v < 0 => Err(Error::invalid(
                resource,
                format!("{v} is negative (only -1, unlimited, is allowed)"),
            )),
            v => Ok(Limit::Value(v.unsigned_abs())),
        }
    }

    /// The v2 spelling: `max` or the number.
    pub fn v2(self) -> String {
        match self {
            Limit::Max => "max".into(),
            Limit::Value(v) => v.to_string(),
        }
    }

    /// The v1 spelling: `-1` or the number.
    pub fn v1(self) -> String {
        match self {
            Limit::Max => "-1".into(),
            Limit::Value(v) => v.to_string(),
        }
    }
}

/// Everything [`crate::Cgroup::apply`] can set. `None` / empty means "leave
/// as it is": only what is set is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// CPU bandwidth and weight.
    pub cpu: Cpu,
    /// CPU and memory-node placement.
    pub cpuset: Cpuset,
    /// Memory limits.
    pub memory: Memory,
    /// `pids.max`.
    pub pids_max: Option<Limit>,
    /// Block I/O weight and throttles.
    pub io: Io,
    /// Huge-page limits per page size.
    pub hugetlb: Vec<HugetlbLimit>,
    /// Device access rules, applied in order (v1 `devices` controller; on
    /// v2 a BPF program, see [`crate::DeviceFilter`]).
    pub devices: Vec<DeviceRule>,
    /// v1 `net_cls.classid`.
    pub net_cls_classid: Option<u32>,
    /// v1 `net_prio.ifpriomap`: interface name and priority.
    pub net_prio_ifpriomap: Vec<(String, u32)>,
}

/// CPU settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpu {
    /// v1 `cpu.shares` (2..=262144); converted to `cpu.weight` on v2.
    pub shares: Option<u64>,
    /// v2 `cpu.weight` (1..=10000); converted to `cpu.shares` on v1.
    pub weight: Option<u64>,
    /// Quota in microseconds per period.
    pub quota: Option<Limit>,
    /// Period in microseconds (1000..=1000000); 100000 when a quota or
    /// `cpus` is given without one.
    pub period: Option<u64>,
    /// A number of CPUs (`docker --cpus`): quota = cpus * period.
    pub cpus: Option<f64>,
    /// v1 realtime runtime in microseconds (`-1`: unlimited).
    pub realtime_runtime: Option<i64>,
    /// v1 realtime period in microseconds.
    pub realtime_period: Option<u64>,
    /// `cpu.idle`: schedule as SCHED_IDLE.
    pub idle: Option<bool>,
}

/// cpuset settings, in the kernel's list syntax (`0-3,6`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpuset {
    /// CPUs.
    pub cpus: Option<String>,
    /// Memory nodes.
    pub mems: Option<String>,
}

/// Memory settings, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Hard limit (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub limit: Option<Limit>,
    /// Soft limit / protection (v1 `memory.soft_limit_in_bytes`, v2
    /// `memory.low`).
    pub reservation: Option<Limit>,
    /// Memory plus swap, as in OCI (v1 `memory.memsw.limit_in_bytes`; v2
    /// `memory.swap.max` = swap - limit).
    pub swap: Option<Limit>,
    /// v1 `memory.swappiness` (0..=100).
    pub swappiness: Option<u64>,
    /// v1 `memory.oom_control`: do not OOM-kill, pause instead.
    pub disable_oom_killer: Option<bool>,
    /// v1 `memory.kmem.tcp.limit_in_bytes`: the limit on TCP buffer memory
    /// (OCI `kernelTCP`; deprecated by the kernel but still there in 6.x
    /// v1 hierarchies). cgroup v2 has no such limit.
    pub kernel_tcp: Option<Limit>,
}

/// Block I/O settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Io {
    /// v1 `blkio.weight` (10..=1000); converted to `io.weight` on v2.
    pub weight: Option<u16>,
    /// Per-device weights (v1 scale, 10..=1000).
    pub weight_device: Vec<DeviceValue>,
    /// Read bytes per second per device.
    pub read_bps: Vec<DeviceValue>,
    /// Write bytes per second per device.
    pub write_bps: Vec<DeviceValue>,
    /// Read operations per second per device.
    pub read_iops: Vec<DeviceValue>,
    /// Write operations per second per device.
    pub write_iops: Vec<DeviceValue>,
}

/// A value for one block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceValue {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// The weight or rate.
    pub value: u64,
}

/// A huge-page limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugetlbLimit {
    /// The page size as the kernel names it in file names: `2MB`, `1GB`.
    pub page_size: String,
    /// Limit in bytes.
    pub limit: u64,
}

/// One device access rule (v1 `devices.allow` / `devices.deny`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (`true`) or deny.
    pub allow: bool,
    /// `a` (all), `b` (block) or `c` (char).
    pub kind: char,
    /// Major number; `None` is `*`.
    pub major: Option<u32>,
    /// Minor number; `None` is `*`.
    pub minor: Option<u32>,
    /// Some of `r`, `w`, `m`.
    pub access: String,
}

impl DeviceRule {
    /// A rule: `allow` or deny `access` (some of `r`, `w`, `m`) to devices
    /// of `kind` (`a`, `b` or `c`), `major`:`minor` (`None` is `*`).
    ///
    /// ```
    /// let tty = dunnage_cgroups::DeviceRule::new(true, 'c', Some(5), Some(0), "rwm");
    /// assert_eq!(tty.v1_line(), "c 5:0 rwm");
    /// ```
    pub fn new(
        allow: bool,
        kind: char,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.to_owned(),
        }
    }

    /// The rule as v1 writes it: `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<u32>| v.map_or("*".to_owned(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The largest `pids.max` the kernel accepts (`PID_MAX_LIMIT`).
pub const PID_MAX_LIMIT: u64 = 4_194_304;

/// Default CFS period, microseconds.
pub const DEFAULT_PERIOD_US: u64 = 100_000;

impl Resources {
    /// Check every value; nothing is written before this passes.
    pub fn validate(&self) -> Result<()> {
        let c = &self.cpu;
        range("cpu.shares", c.shares, 2, 262_144)?;
        range("cpu.weight", c.weight, 1, 10_000)?;
        range("cpu.period", c.period, 1_000, 1_000_000)?;
        if c.shares.is_some() && c.weight.is_some() {
            return Err(Error::invalid(
                "cpu.shares",
                "give shares or weight, not both",
            ));
        }
        if let Some(cpus) = c.cpus {
            if c.quota.is_some() {
                return Err(Error::invalid("cpu.cpus", "give cpus or quota, not both"));
            }
            if !cpus.is_finite() || cpus <= 0.0 || cpus > 65_536.0 {
                return Err(Error::invalid(
                    "cpu.cpus",
                    format!("{cpus} is not a positive number of CPUs"),
                ));
            }
        }
        if let Some(Limit::Value(q)) = c.quota
            && !(1_000..=i64::MAX as u64 / 1000).contains(&q)
        {
            return Err(Error::invalid(
                "cpu.quota",
                format!("{q} us is out of range (>= 1000)"),
            ));
        }
        if let Some(rt) = c.realtime_runtime
            && rt < -1
        {
            return Err(Error::invalid(
                "cpu.realtime_runtime",
                format!("{rt} is negative"),
            ));
        }
        if let Some(cpus) = &self.cpuset.cpus {
            parse_list("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &self.cpuset.mems {
            parse_list("cpuset.mems", mems)?;
        }
        let m = &self.memory;
        range("memory.swappiness", m.swappiness, 0, 100)?;
        if let (Some(Limit::Value(l)), Some(Limit::Value(s))) = (m.limit, m.swap)
            && s < l
        {
            return Err(Error::invalid(
                "memory.swap",
                format!("memory+swap {s} is below the memory limit {l}"),
            ));
        }
        for (name, v) in [
            ("memory.limit", m.limit),
            ("memory.reservation", m.reservation),
            ("memory.swap", m.swap),
        ] {
            if let Some(Limit::Value(v)) = v
                && v > i64::MAX as u64
            {
                return Err(Error::invalid(
                    name,
                    format!("{v} overflows the kernel's signed 64-bit counter"),
                ));
            }
        }
        if let Some(Limit::Value(p)) = self.pids_max
            && p > PID_MAX_LIMIT
        {
            return Err(Error::invalid(
                "pids.max",
                format!("{p} is above the kernel's limit {PID_MAX_LIMIT}"),
            ));
        }
        range("blkio.weight", self.io.weight.map(u64::from), 10, 1000)?;
        for d in &self.io.weight_device {
            range("blkio.weight_device", Some(d.value), 10, 1000)?;
        }
        for h in &self.hugetlb {
            let ok = h.page_size.len() > 2
                && h.page_size.ends_with('B')
                && h.page_size[..h.page_size.len() - 2]
                    .chars()
                    .all(|c| c.is_ascii_digit())
                && matches!(
                    h.page_size.as_bytes()[h.page_size.len() - 2],
                    b'K' | b'M' | b'G'
                );
            if !ok {
                return Err(Error::invalid(
                    "hugetlb.page_size",
                    format!("{:?} is not like 2MB or 1GB", h.page_size),
                ));
            }
        }
        for d in &self.devices {
            if !matches!(d.kind, 'a' | 'b' | 'c')
                || d.access.is_empty()
                || !d.access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
            {
                return Err(Error::invalid(
                    "devices",
                    format!("bad rule {:?}", d.v1_line()),
                ));
            }
        }
        for (ifname, _) in &self.net_prio_ifpriomap {
            if ifname.is_empty()
                || ifname.len() > 15
                || ifname.contains(|c: char| c.is_whitespace() || c == '/')
            {
                return Err(Error::invalid(
                    "net_prio.ifpriomap",
                    format!("bad interface name {ifname:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The quota in microseconds implied by `quota` or `cpus`, and the
    /// period, or `None` when neither is set.
    pub(crate) fn cpu_max(&self) -> Option<(Limit, u64)> {
        let c = &self.cpu;
        let period = c.period.unwrap_or(DEFAULT_PERIOD_US);
        match (c.quota, c.cpus) {
            (Some(q), _) => Some((q, period)),
            // Rounded like runc; validate() bounded cpus, so this fits.
            (None, Some(cpus)) => {
                Some((Limit::Value((cpus * period as f64).round() as u64), period))
            }
            (None, None) => c.period.map(|p| (Limit::Max, p)),
        }
    }
}

fn range(resource: &'static str, v: Option<u64>, lo: u64, hi: u64) -> Result<()> {
    match v {
        Some(v) if !(lo..=hi).contains(&v) => Err(Error::invalid(
            resource,
            format!("{v} is out of range {lo}..={hi}"),
        )),
        _ => Ok(()),
    }
}

/// Parse the kernel's list syntax (`0-3,6,8-9`) into its members.
///
/// Ranges must ascend; members are below 65536.
pub fn parse_list(resource: &'static str, s: &str) -> Result<Vec<u32>> {
    let bad = |why: &str| Error::invalid(resource, format!("{s:?}: {why}"));
    let s = s.trim();
    if s.is_empty() {
        return Err(bad("empty list"));
    }
    let num = |t: &str| -> Result<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a number"));
        }
        t.parse::<u32>()
            .ok()
            .filter(|&n| n < 65_536)
            .ok_or_else(|| bad("number too large"))
    };
    let mut out = Vec::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(item)?, num(item)?),
        };
        if lo > hi {
            return Err(bad("descending range"));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// v1 `cpu.shares` -> v2 `cpu.weight`, as runc converts it.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// v2 `cpu.weight` -> v1 `cpu.shares` (the inverse of [`shares_to_weight`]).
pub fn weight_to_shares(weight: u64) -> u64 {
    let w = weight.clamp(1, 10_000);
    2 + ((w - 1) * 262_142).div_ceil(9999)
}

/// v1 `blkio.weight` (10..=1000) -> v2 `io.weight` (1..=10000), as runc.
pub fn blkio_weight_to_io(weight: u64) -> u64 {
    1 + (weight.clamp(10, 1000) - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_lists_parse_and_reject_garbage() {
        assert_eq!(parse_list("x", "0-2,5").unwrap(), [0, 1, 2, 5]);
        for bad in [
            "",
            "a",
            "1-",
            "-1",
            "3-1",
            "1,,2",
            "99999999999",
            "1 2",
            "0x1",
        ] {
            assert!(parse_list("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(weight_to_shares(shares_to_weight(262_144)), 262_144);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
    }

    #[test]
    fn bad_values_are_rejected() {
        let mut r = Resources::default();
        r.cpu.cpus = Some(f64::NAN);
        assert!(r.validate().is_err());
        let mut r = Resources::default();
        r.memory.limit = Some(Limit::Value(u64::MAX));
        assert!(r.validate().is_err());
        assert!(Limit::from_i64("memory.limit", -2).is_err());
        let r = Resources {
            pids_max: Some(Limit::Value(PID_MAX_LIMIT + 1)),
            ..Resources::default()
        };
        assert!(r.validate().is_err());
    }

    #[test]
    fn cpus_become_a_quota() {
        let mut r = Resources::default();
        r.cpu.cpus = Some(0.5);
        assert_eq!(r.cpu_max(), Some((Limit::Value(50_000), 100_000)));
    }
}
