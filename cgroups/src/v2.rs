//! Planners for the v2 controllers' files, with runc's v1 -> v2
//! conversions.

use crate::apply::Plan;
use crate::cgroup::CgroupDir;
use crate::error::{Error, Result};
use crate::resources::{
    DeviceValue, Io, Limit, Memory, Resources, blkio_weight_to_io, shares_to_weight,
};

/// cpu: `cpu.weight` (from shares if given), `cpu.max`, `cpu.idle`.
/// Realtime group scheduling does not exist on v2.
pub(crate) fn cpu(d: &CgroupDir, r: &Resources, p: &mut Plan) -> Result<()> {
    let c = &r.cpu;
    if c.realtime_runtime.is_some() || c.realtime_period.is_some() {
        return Err(Error::unsupported(
            "cpu.realtime",
            "cgroup v2 has no realtime group scheduling",
        ));
    }
    if let Some(w) = c.weight.or(c.shares.map(shares_to_weight)) {
        p.set("cpu.weight", d, "cpu.weight", w.to_string())?;
    }
    if let Some((quota, period)) = r.cpu_max() {
        p.set(
            "cpu.quota",
            d,
            "cpu.max",
            format!("{} {period}", quota.v2()),
        )?;
    }
    if let Some(idle) = c.idle {
        p.set("cpu.idle", d, "cpu.idle", u8::from(idle).to_string())?;
    }
    Ok(())
}

/// memory: `memory.max`, `memory.swap.max` (OCI swap is memory+swap, v2
/// wants swap alone), `memory.low`. Swappiness and disabling the OOM
/// killer have no v2 file.
pub(crate) fn memory(d: &CgroupDir, m: &Memory, p: &mut Plan) -> Result<()> {
    if m.swappiness.is_some() {
        return Err(Error::unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer.is_some() {
        return Err(Error::unsupported(
            "memory.disable_oom_killer",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    if m.kernel_tcp.is_some() {
        return Err(Error::unsupported(
            "memory.kernel_tcp",
            "cgroup v2 has no TCP buffer memory limit",
        ));
    }
    let swap = match (m.swap, m.limit) {
        (None, _) => None,
        (Some(Limit::Max), _) => Some("max".to_owned()),
        (Some(Limit::Value(s)), Some(Limit::Value(l))) => Some((s - l).to_string()),
        (Some(Limit::Value(_)), _) => {
            return Err(Error::invalid(
                "memory.swap",
                "on v2 a memory+swap limit needs a memory limit",
            ));
        }
    };
    if let Some(l) = m.limit {
        p.set("memory.limit", d, "memory.max", l.v2())?;
    }
    if let Some(s) = swap {
        p.set("memory.swap", d, "memory.swap.max", s)?;
    }
    if let Some(r) = m.reservation {
        p.set("memory.reservation", d, "memory.low", r.v2())?;
    }
    Ok(())
}

/// io: `io.weight` (converted from the v1 scale; `io.bfq.weight` where
/// only BFQ offers one) and `io.max` throttles.
pub(crate) fn io(d: &CgroupDir, io: &Io, p: &mut Plan) -> Result<()> {
    let weight_file = if d.file("io.weight").exists() || !d.file("io.bfq.weight").exists() {
        "io.weight"
    } else {
        "io.bfq.weight"
    };
    if let Some(w) = io.weight {
        p.set(
            "blkio.weight",
            d,
            weight_file,
            format!("default {}", blkio_weight_to_io(u64::from(w))),
        )?;
    }
    for v in &io.weight_device {
        let w = blkio_weight_to_io(v.value);
        p.set(
            "blkio.weight_device",
            d,
            weight_file,
            format!("{}:{} {w}", v.major, v.minor),
        )?;
    }
    let throttle = |p: &mut Plan, resource: &'static str, key: &str, list: &[DeviceValue]| {
        list.iter().try_for_each(|v| {
            p.set(
                resource,
                d,
                "io.max",
                format!("{}:{} {key}={}", v.major, v.minor, v.value),
            )
        })
    };
    throttle(p, "blkio.read_bps", "rbps", &io.read_bps)?;
    throttle(p, "blkio.write_bps", "wbps", &io.write_bps)?;
    throttle(p, "blkio.read_iops", "riops", &io.read_iops)?;
    throttle(p, "blkio.write_iops", "wiops", &io.write_iops)
}
