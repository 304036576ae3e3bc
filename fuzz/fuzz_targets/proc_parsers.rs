//! The /proc and cgroup file parsers on arbitrary bytes: mountinfo (base's
//! and the cgroup mount finder), /proc/<pid>/cgroup, /proc/cgroups and the
//! cpuset list syntax. Typed errors, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dunnage_base::mountinfo::parse(data);
    let _ = dunnage_base::mountinfo::unescape(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = Path::new("fuzz");
    let _ = dunnage_cgroups::proc::parse_mountinfo(p, text);
    let _ = dunnage_cgroups::proc::parse_process_cgroups(p, text);
    let _ = dunnage_cgroups::proc::parse_proc_cgroups(p, text);
    let _ = dunnage_cgroups::parse_list("cpuset.cpus", text);
});
