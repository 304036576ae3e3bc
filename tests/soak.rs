//! Issue 13's leak soak: many cycles of create, start, wait and remove of
//! a container, through the library in this one long-lived process and
//! through the CLI (`dunnage create|start|wait|rm`, a detached container
//! with its monitor). Afterwards nothing is left: no mounts below the store,
//! no cgroups below the test's parent, no processes in them, no container
//! state directories or container layers, no network namespace of ours
//! (nsfs mounts or namespace fds); and this process's fd count and RSS are
//! back where they were after warm-up.
//!
//! Cycles: `DUNNAGE_SOAK_CYCLES` (library, default 50) and
//! `DUNNAGE_SOAK_CLI_CYCLES` (CLI, default 10); `tests/soak/run.sh` runs the
//! full 1,000 and 200 and prints the figures for BENCHMARKS.md.
//!
//! Tolerances, after a warm-up of [`WARMUP`] cycles: the fd count exactly
//! the same; RSS at most [`RSS_SLACK_KIB`] above (the allocator keeps freed
//! pages; a leak of even 1 KiB a cycle over 1,000 cycles is 1,000 KiB, and
//! the figures show the growth per cycle).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use common::Fixture;
use dunnage_testsupport::{example_binary, require_root};

/// Cycles run before the baseline is taken: caches, lazily opened files,
/// the allocator's arenas.
const WARMUP: usize = 10;

/// How far RSS may end above the baseline, in KiB.
const RSS_SLACK_KIB: u64 = 2048;

/// The tests run one at a time: the library soak counts this process's
/// fds, which the CLI soak's pipes would disturb.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn env_cycles(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The number of open fds of this process.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The open fds with what they point to, for a failure message.
fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect();
    v.sort();
    v
}

/// This process's resident set size in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Child processes of this process (zombies included: a missed wait).
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        if fields.next() == Some(me.as_str()) {
            out.push(format!("{pid} ({state}) {}", &stat[..stat.len().min(60)]));
        }
    }
    out
}

/// Namespace fds of this process and nsfs mounts below `dir`: a network
/// (or other) namespace kept alive by us. (Other programs' nsfs mounts
/// propagate into this mount namespace: only ours are judged.)
fn namespaces_held(dir: &Path) -> Vec<String> {
    let mut held: Vec<String> = fd_list()
        .into_iter()
        .filter(|l| l.contains("net:[") || l.contains("mnt:[") || l.contains("pid:["))
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    held.extend(
        mountinfo
            .lines()
            .filter(|l| l.contains(" - nsfs "))
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| Path::new(m).starts_with(dir))
            })
            .map(str::to_string),
    );
    held
}

/// Everything the soak checks after its cycles, on top of
/// [`Fixture::assert_clean`].
fn assert_nothing_left(f: &Fixture) {
    f.assert_clean();
    let dir = f.store.root().join("containers");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        // `.lock`, `.seccomp/` (the compiled-policy cache): the store's.
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "state left in {}: {left:?}", dir.display());
    assert_eq!(children(), Vec::<String>::new(), "child processes left");
    assert_eq!(
        namespaces_held(f.tmp.path()),
        Vec::<String>::new(),
        "namespaces held"
    );
}

/// One library cycle: create, start, wait, remove.
fn library_cycle(f: &Fixture) {
    let mut c = f.container().arg("/bin/true").create(&f.store).unwrap();
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().code, Some(0));
    c.remove(false).unwrap();
}

#[test]
fn library_cycles_leak_nothing() {
    require_root!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cycles = env_cycles("DUNNAGE_SOAK_CYCLES", 50);
    let f = Fixture::new();
    for _ in 0..WARMUP {
        library_cycle(&f);
    }
    let (fds, rss) = (fd_count(), rss_kib());
    let fds_before = fd_list();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap();
    let t = Instant::now();
    let mut rss_max = rss;
    for i in 0..cycles {
        library_cycle(&f);
        if i % 50 == 49 {
            rss_max = rss_max.max(rss_kib());
        }
    }
    let elapsed = t.elapsed();
    let (fds_after, rss_after) = (fd_count(), rss_kib());
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap();
    eprintln!(
        "soak library: {cycles} cycles in {:.1} s ({:.1} ms/cycle); fds {fds} -> {fds_after}; \
         RSS {rss} -> {rss_after} KiB (max {rss_max}); loadavg {} -> {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / cycles.max(1) as f64,
        load_before.trim(),
        load_after.trim()
    );
    assert_eq!(
        fds_after,
        fds,
        "fds: before {fds_before:#?} after {:#?}",
        fd_list()
    );
    assert!(
        rss_after <= rss + RSS_SLACK_KIB,
        "RSS grew from {rss} to {rss_after} KiB over {cycles} cycles"
    );
    assert_nothing_left(&f);
}

/// Run the CLI with the fixture's store.
fn cli(f: &Fixture, args: &[&str]) -> Output {
    let out = Command::new(example_binary("dunnage"))
        .arg("--root")
        .arg(f.store.root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dunnage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One CLI cycle: `create`, `start`, `wait`, `rm`.
fn cli_cycle(f: &Fixture) {
    let out = cli(
        f,
        &[
            "create",
            "--cgroup-parent",
            &f.parent,
            common::IMAGE,
            "/bin/true",
        ],
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 64, "{id:?}");
    cli(f, &["start", &id]);
    let out = cli(f, &["wait", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    cli(f, &["rm", &id]);
}

#[test]
fn cli_cycles_leak_nothing() {
    require_root!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cycles = env_cycles("DUNNAGE_SOAK_CLI_CYCLES", 10);
    let f = Fixture::new();
    // Built (when stale) before the clock starts.
    example_binary("dunnage");
    cli_cycle(&f);
    let (fds, rss) = (fd_count(), rss_kib());
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap();
    let t = Instant::now();
    for _ in 0..cycles {
        cli_cycle(&f);
    }
    let elapsed = t.elapsed();
    let (fds_after, rss_after) = (fd_count(), rss_kib());
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap();
    eprintln!(
        "soak cli: {cycles} cycles in {:.1} s ({:.1} ms/cycle); test process fds {fds} -> \
         {fds_after}, RSS {rss} -> {rss_after} KiB; loadavg {} -> {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / cycles.max(1) as f64,
        load_before.trim(),
        load_after.trim()
    );
    assert_nothing_left(&f);
    // Monitors are not our children: none may be left anywhere holding
    // the store.
    let root = f.store.root().to_string_lossy().into_owned();
    let monitors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&root))
        .collect();
    assert_eq!(
        monitors,
        Vec::<String>::new(),
        "processes left on the store"
    );
}
