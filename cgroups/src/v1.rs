//! Planners for the v1 controllers' files.

use crate::apply::Plan;
use crate::cgroup::CgroupDir;
use crate::error::Result;
use crate::file;
use crate::resources::{DeviceRule, DeviceValue, Io, Limit, Memory, Resources, weight_to_shares};

/// cpu: `cpu.shares`, `cpu.cfs_period_us` then `cpu.cfs_quota_us`,
/// realtime period then runtime, `cpu.idle`.
pub(crate) fn cpu(d: &CgroupDir, r: &Resources, p: &mut Plan) -> Result<()> {
    let c = &r.cpu;
    if let Some(shares) = c.shares.or(c.weight.map(weight_to_shares)) {
        p.set("cpu.shares", d, "cpu.shares", shares.to_string())?;
    }
    if let Some((quota, period)) = r.cpu_max() {
        p.set("cpu.period", d, "cpu.cfs_period_us", period.to_string())?;
        p.set("cpu.quota", d, "cpu.cfs_quota_us", quota.v1())?;
    }
    if let Some(period) = c.realtime_period {
        p.set(
            "cpu.realtime_period",
            d,
            "cpu.rt_period_us",
            period.to_string(),
        )?;
    }
    if let Some(rt) = c.realtime_runtime {
        p.set(
            "cpu.realtime_runtime",
            d,
            "cpu.rt_runtime_us",
            rt.to_string(),
        )?;
    }
    if let Some(idle) = c.idle {
        p.set("cpu.idle", d, "cpu.idle", u8::from(idle).to_string())?;
    }
    Ok(())
}

/// memory: the limit and memory+swap limit in the order the kernel accepts
/// (memsw must never fall below the limit), then the rest.
pub(crate) fn memory(d: &CgroupDir, m: &Memory, p: &mut Plan) -> Result<()> {
    let swap_first = match (m.limit, m.swap) {
        (Some(Limit::Value(l)), Some(_)) => {
            let memsw = d.file("memory.memsw.limit_in_bytes");
            memsw.exists() && l > file::read_u64(&memsw)?
        }
        _ => false,
    };
    let swap = |p: &mut Plan| match m.swap {
        Some(s) => p.set("memory.swap", d, "memory.memsw.limit_in_bytes", s.v1()),
        None => Ok(()),
    };
    if swap_first {
        swap(p)?;
    }
    if let Some(l) = m.limit {
        p.set("memory.limit", d, "memory.limit_in_bytes", l.v1())?;
    }
    if !swap_first {
        swap(p)?;
    }
    if let Some(r) = m.reservation {
        p.set(
            "memory.reservation",
            d,
            "memory.soft_limit_in_bytes",
            r.v1(),
        )?;
    }
    if let Some(s) = m.swappiness {
        p.set("memory.swappiness", d, "memory.swappiness", s.to_string())?;
    }
    if let Some(off) = m.disable_oom_killer {
        p.set(
            "memory.disable_oom_killer",
            d,
            "memory.oom_control",
            u8::from(off).to_string(),
        )?;
    }
    if let Some(t) = m.kernel_tcp {
        p.set(
            "memory.kernel_tcp",
            d,
            "memory.kmem.tcp.limit_in_bytes",
            t.v1(),
        )?;
    }
    Ok(())
}

/// blkio: weight (CFQ `blkio.weight` or BFQ `blkio.bfq.weight`), per-device
/// weights and throttles.
pub(crate) fn io(d: &CgroupDir, io: &Io, p: &mut Plan) -> Result<()> {
    let weight_file = |base: &str| {
        let bfq = base.replacen("blkio.", "blkio.bfq.", 1);
        if d.file(base).exists() || !d.file(&bfq).exists() {
            base.to_owned()
        } else {
            bfq
        }
    };
    if let Some(w) = io.weight {
        p.set(
            "blkio.weight",
            d,
            &weight_file("blkio.weight"),
            w.to_string(),
        )?;
    }
    let per_device = |p: &mut Plan, resource: &'static str, name: &str, list: &[DeviceValue]| {
        list.iter().try_for_each(|v| {
            p.set(
                resource,
                d,
                name,
                format!("{}:{} {}", v.major, v.minor, v.value),
            )
        })
    };
    per_device(
        p,
        "blkio.weight_device",
        &weight_file("blkio.weight_device"),
        &io.weight_device,
    )?;
    per_device(
        p,
        "blkio.read_bps",
        "blkio.throttle.read_bps_device",
        &io.read_bps,
    )?;
    per_device(
        p,
        "blkio.write_bps",
        "blkio.throttle.write_bps_device",
        &io.write_bps,
    )?;
    per_device(
        p,
        "blkio.read_iops",
        "blkio.throttle.read_iops_device",
        &io.read_iops,
    )?;
    per_device(
        p,
        "blkio.write_iops",
        "blkio.throttle.write_iops_device",
        &io.write_iops,
    )
}

/// devices: one write per rule to `devices.allow` or `devices.deny` (v2
/// uses a BPF program instead, see [`crate::DeviceFilter`]).
pub(crate) fn devices(d: &CgroupDir, rules: &[DeviceRule], p: &mut Plan) -> Result<()> {
    rules.iter().try_for_each(|r| {
        let name = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        p.set("devices", d, name, r.v1_line())
    })
}
