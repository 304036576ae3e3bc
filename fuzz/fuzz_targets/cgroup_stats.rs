//! The cgroup stat-file parsers on arbitrary text (`dunnage_cgroups::statfile`):
//! memory.stat / cpu.stat / memory.events (flat keyed), io.stat, the v1
//! blkio files, PSI files, pids.current / pids.max, cpuacct.usage_percpu.
//! Typed errors, never a panic; a flat-keyed parse keeps every line.
#![no_main]

use std::path::Path;

use dunnage_cgroups::statfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Path::new("fuzz");
    if let Ok(kv) = statfile::flat_keyed(p, text) {
        assert_eq!(kv.len(), text.lines().filter(|l| !l.trim().is_empty()).count());
    }
    let _ = statfile::number(p, text);
    let _ = statfile::number_or_max(p, text);
    let _ = statfile::io_stat(p, text);
    let _ = statfile::blkio(p, text, true);
    let _ = statfile::blkio(p, text, false);
    let _ = statfile::pressure(p, text);
    let _ = statfile::per_cpu(p, text);
});
