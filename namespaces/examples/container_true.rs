//! Start `/bin/true` (or the given command) once as a container's process:
//! pivot_root into ROOTFS with Docker's mounts, /dev, masked and read-only
//! paths, in new mount, pid, ipc, uts and net namespaces; exit with its
//! status. For measuring spawn-to-exit against `runc run` / `crun run`:
//!
//! ```text
//! container_true ROOTFS [COMMAND ARGS...]
//! ```

use std::process::ExitCode;

use dunnage_namespaces::{Command, Kind, Mount};

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(rootfs) = args.next() else {
        eprintln!("usage: container_true ROOTFS [COMMAND ARGS...]");
        return ExitCode::from(2);
    };
    let rest: Vec<_> = args.collect();
    let (program, program_args) = match rest.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => ("/bin/true".into(), Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(program_args)
        .namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
        .hostname("bench")
        .rootfs(&rootfs)
        .mounts(Mount::docker_defaults())
        .default_devices(true)
        .env_clear()
        .env("PATH", "/bin:/usr/bin");
    for p in MASKED {
        cmd.masked_path(p);
    }
    for p in READONLY {
        cmd.readonly_path(p);
    }
    match cmd.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(128) as u8),
        Err(e) => {
            eprintln!("container_true: {e}");
            ExitCode::from(125)
        }
    }
}
