//! `update` (LinuxResources JSON from `--resources FILE|-`, or runc's
//! single-value flags; zero or absent leaves a value unchanged) and
//! `events` (`--stats`: one stats event; otherwise one every
//! `--interval` until the container stops).

use std::io::Read;
use std::time::Duration;

use dunnage::cgroups::{Limit, Stats};
use dunnage::container::{ResourceLimits, Status};
use serde_json::{Value, json};

use crate::args::Parsed;
use crate::lifecycle::Ctx;

/// The single-value flags of `runc update`.
pub const FLAGS: [&str; 11] = [
    "memory",
    "memory-swap",
    "memory-reservation",
    "kernel-memory-tcp",
    "cpu-period",
    "cpu-quota",
    "cpu-share",
    "cpuset-cpus",
    "cpuset-mems",
    "pids-limit",
    "blkio-weight",
];

fn num(v: Option<&Value>, what: &str) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_u64().map(|u| u.min(i64::MAX as u64) as i64))
            .map(|n| (n != 0).then_some(n))
            .ok_or_else(|| format!("resources {what}: not a number")),
    }
}

fn unsigned(n: Option<i64>, what: &str) -> Result<Option<u64>, String> {
    n.map(|n| u64::try_from(n).map_err(|_| format!("{what}: negative")))
        .transpose()
}

/// Apply a LinuxResources document over `r`.
fn merge_json(r: &mut ResourceLimits, v: &Value) -> Result<(), String> {
    if !v.is_object() {
        return Err("resources: not a JSON object".into());
    }
    let p = |ptr: &str| v.pointer(ptr);
    if let Some(m) = unsigned(num(p("/memory/limit"), "memory.limit")?, "memory.limit")? {
        r.memory = Some(m);
    }
    if let Some(s) = num(p("/memory/swap"), "memory.swap")? {
        r.memory_swap = Some(s);
    }
    if let Some(t) = num(p("/memory/kernelTCP"), "memory.kernelTCP")? {
        r.memory_kernel_tcp = Some(t);
    }
    if let Some(q) = num(p("/cpu/quota"), "cpu.quota")? {
        r.cpu_quota = u64::try_from(q).ok();
    }
    if let Some(n) = unsigned(num(p("/cpu/period"), "cpu.period")?, "cpu.period")? {
        r.cpu_period = Some(n);
    }
    if let Some(n) = unsigned(num(p("/cpu/shares"), "cpu.shares")?, "cpu.shares")? {
        r.cpu_shares = Some(n);
    }
    if let Some(s) = p("/cpu/cpus")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        r.cpuset_cpus = Some(s.to_string());
    }
    if let Some(s) = p("/cpu/mems")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        r.cpuset_mems = Some(s.to_string());
    }
    if let Some(n) = num(p("/pids/limit"), "pids.limit")? {
        r.pids_limit = Some(n);
    }
    if let Some(n) = num(p("/blockIO/weight"), "blockIO.weight")? {
        r.io_weight = Some(u16::try_from(n).map_err(|_| "blockIO.weight: out of range")?);
    }
    for (ptr, name) in [
        ("/memory/reservation", "memory.reservation"),
        ("/memory/kernel", "memory.kernel"),
        ("/cpu/realtimeRuntime", "cpu.realtimeRuntime"),
        ("/cpu/realtimePeriod", "cpu.realtimePeriod"),
    ] {
        if num(p(ptr), name)?.is_some() {
            return Err(format!("update: resources {name} is not supported"));
        }
    }
    Ok(())
}

/// A byte size as runc's flags take it: a number, or with k/m/g suffix.
fn size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}"))
}

/// `update`.
pub fn update(ctx: &Ctx, id: &str, p: &Parsed) -> Result<i32, String> {
    let (_l, info, mut h) = ctx.get_locked(id)?;
    if info.status == Status::Exited {
        return Err("container not running".into());
    }
    let mut r = h.spec().resources.clone();
    if let Some(src) = p.get("resources") {
        let bytes = if src == "-" {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| format!("read stdin: {e}"))?;
            b
        } else {
            std::fs::read(src).map_err(|e| format!("{src}: {e}"))?
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("resources: {e}"))?;
        merge_json(&mut r, &v)?;
    }
    let mut doc = json!({});
    for f in FLAGS {
        let Some(v) = p.get(f) else { continue };
        let n = || -> Result<Value, String> {
            match f {
                "memory" | "memory-swap" | "memory-reservation" | "kernel-memory-tcp" => {
                    Ok(json!(size(v)?))
                }
                "cpuset-cpus" | "cpuset-mems" => Ok(json!(v)),
                _ => v
                    .parse::<i64>()
                    .map(|n| json!(n))
                    .map_err(|_| format!("invalid value for --{f}: {v:?}")),
            }
        };
        let (a, b) = match f {
            "memory" => ("memory", "limit"),
            "memory-swap" => ("memory", "swap"),
            "memory-reservation" => ("memory", "reservation"),
            "kernel-memory-tcp" => ("memory", "kernelTCP"),
            "cpu-period" => ("cpu", "period"),
            "cpu-quota" => ("cpu", "quota"),
            "cpu-share" => ("cpu", "shares"),
            "cpuset-cpus" => ("cpu", "cpus"),
            "cpuset-mems" => ("cpu", "mems"),
            "pids-limit" => ("pids", "limit"),
            _ => ("blockIO", "weight"),
        };
        doc[a][b] = n()?;
    }
    merge_json(&mut r, &doc)?;
    h.update(r).map_err(|e| e.to_string())?;
    Ok(0)
}

fn limit(l: &Limit) -> Value {
    match l {
        Limit::Max => json!(u64::MAX),
        Limit::Value(v) => json!(v),
    }
}

/// runc's stats event data (the parts the facade measures).
fn stats_json(s: &Stats) -> Value {
    let mut d = json!({});
    if let Some(c) = &s.cpu {
        d["cpu"] = json!({
            "usage": {
                "total": c.usage.as_nanos() as u64,
                "percpu": c.per_cpu.iter().map(|d| d.as_nanos() as u64).collect::<Vec<_>>(),
                "kernel": c.system.as_nanos() as u64,
                "user": c.user.as_nanos() as u64,
            },
            "throttling": c.throttling.as_ref().map(|t| json!({
                "periods": t.periods,
                "throttledPeriods": t.throttled_periods,
                "throttledTime": t.throttled_time.as_nanos() as u64,
            })).unwrap_or(json!({})),
        });
    }
    if let Some(m) = &s.memory {
        let stats: serde_json::Map<String, Value> =
            m.stat.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        d["memory"] = json!({
            "usage": {
                "limit": limit(&m.limit),
                "usage": m.usage,
                "max": m.max_usage.unwrap_or(0),
                "failcnt": m.failcnt,
            },
            "raw": stats,
        });
    }
    if let Some(p) = &s.pids {
        let max = match p.max {
            Limit::Max => 0,
            Limit::Value(v) => v,
        };
        d["pids"] = json!({"current": p.current, "limit": max});
    }
    d
}

/// `events [--stats] [--interval D] ID`.
pub fn events(ctx: &Ctx, id: &str, p: &Parsed) -> Result<i32, String> {
    let interval = match p.get("interval") {
        None => Duration::from_secs(5),
        Some(s) => parse_duration(s)?,
    };
    loop {
        let (info, h) = ctx.get(id)?;
        if info.status == Status::Exited {
            return Err("container with id ".to_string() + id + " is not running");
        }
        let stats = h.stats().map_err(|e| e.to_string())?;
        let ev = json!({"type": "stats", "id": id, "data": stats_json(&stats)});
        println!("{ev}");
        if p.on("stats") {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// A Go duration: `5s`, `100ms`, `1m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid interval {s:?}");
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}
