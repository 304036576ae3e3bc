//! A Docker-like container (busybox rootfs, Docker's mounts, masks and
//! read-only paths, 14 capabilities, sysctls, a Docker-like seccomp
//! profile) started through `Command` and through `runc run` with the
//! equivalent config.json: what the process sees in /proc/self/status must
//! match.
#![cfg(feature = "seccomp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::Path;

use dunnage_namespaces::seccomp::{Profile, compile};
use dunnage_namespaces::{CapSet, Capabilities, Command, Kind, Mount};
use dunnage_testsupport::{TempDir, require_command, require_root};

const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: [&str; 5] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/acpi",
    "/sys/firmware",
    "/proc/scsi",
];
const READONLY: [&str; 3] = ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"];

const SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
];

/// What busybox's cat and runc's Go init need once the filter is loaded.
const ALLOWED: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "close",
    "exit",
    "exit_group",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "prctl",
    "capget",
    "capset",
    "setgroups",
    "setresuid",
    "setresgid",
    "setuid",
    "setgid",
    "execve",
    "execveat",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    "openat",
    "open",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrlimit",
    "getrandom",
    "access",
    "faccessat2",
    "lseek",
    "uname",
    "getpid",
    "getppid",
    "gettid",
    "tgkill",
    "tkill",
    "kill",
    "close_range",
    "futex",
    "wait4",
    "waitid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "ioctl",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "readlinkat",
    "readlink",
    "sendfile",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "sched_yield",
    "sched_getaffinity",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "pipe2",
    "getdents64",
    "fchdir",
    "chdir",
    "getcwd",
    "setsid",
    "socket",
    "connect",
    "sendmsg",
    "recvmsg",
    "mincore",
    "umask",
    "fchown",
    "fchmod",
    "unlinkat",
    "poll",
    "ppoll",
    "pselect6",
    "membarrier",
    "getpgrp",
    "setpgid",
    "sysinfo",
    "rt_sigsuspend",
    "fstatfs",
    "statfs",
    "openat2",
    "fchownat",
    "fchmodat",
    "pidfd_open",
    "pidfd_send_signal",
    "mkdirat",
    "symlinkat",
    "faccessat",
    "getsockopt",
    "setsockopt",
    "bind",
    "listen",
    "accept4",
];

/// A Docker-like profile (EPERM by default, Docker's clone and personality
/// rules, clone3 ENOSYS), as the OCI JSON both runtimes get.
fn profile_json() -> serde_json::Value {
    let personality: Vec<serde_json::Value> = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
        .into_iter()
        .map(|v| {
            serde_json::json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let mut rules = vec![serde_json::json!({"names": ALLOWED, "action": "SCMP_ACT_ALLOW"})];
    rules.extend(personality);
    rules.push(
        serde_json::json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}),
    );
    rules
        .push(serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

fn busybox_rootfs(tag: &str) -> TempDir {
    let dir = TempDir::new(tag).unwrap();
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in ["sh", "cat"] {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    dir
}

const FILES: [&str; 3] = [
    "/proc/self/status",
    "/proc/sys/net/ipv4/ping_group_range",
    "/proc/sys/net/ipv4/ip_unprivileged_port_start",
];

/// Through `Command`.
fn ours(rootfs: &Path, user: Option<u32>) -> String {
    let profile: Profile = serde_json::from_value(profile_json()).unwrap();
    let (prog, _warnings) = compile(&profile).unwrap();
    let mut cmd = Command::new("/bin/cat");
    cmd.args(FILES)
        .namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
        .rootfs(rootfs)
        .mounts(Mount::docker_defaults())
        .default_devices(true)
        .env_clear()
        .env("PATH", "/bin")
        .capabilities(Capabilities::uniform(CapSet::parse(DOCKER_CAPS).unwrap()))
        .seccomp(prog);
    for p in MASKED {
        cmd.masked_path(p);
    }
    for p in READONLY {
        cmd.readonly_path(p);
    }
    for (k, v) in SYSCTLS {
        cmd.sysctl(k, v);
    }
    if let Some(id) = user {
        cmd.uid(id).gid(id).keep_capabilities(true);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Through `runc run` of the equivalent bundle.
fn runc(rootfs: &Path, user: Option<u32>) -> String {
    let bundle = TempDir::new("runc-bundle").unwrap();
    let state = TempDir::new("runc-state").unwrap();
    let caps = serde_json::json!(DOCKER_CAPS);
    let masked: Vec<&str> = MASKED.to_vec();
    let readonly: Vec<&str> = READONLY.to_vec();
    let sysctl: serde_json::Map<String, serde_json::Value> = SYSCTLS
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let uid = user.unwrap_or(0);
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": uid},
            "args": ["/bin/cat", FILES[0], FILES[1], FILES[2]],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": []},
            "noNewPrivileges": false
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": masked,
            "readonlyPaths": readonly,
            "sysctl": sysctl,
            "seccomp": profile_json()
        }
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let id = dunnage_testsupport::unique_name("nssec");
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // `runc run` deletes the container when it exits; make sure anyway.
    let _ = std::process::Command::new("runc")
        .arg("--root")
        .arg(state.path())
        .args(["delete", "--force", &id])
        .output();
    assert!(
        out.status.success(),
        "runc: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const FIELDS: [&str; 9] = [
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "Uid",
];

/// The compared view: the status fields and the sysctl values.
fn view(out: &str) -> Vec<String> {
    let mut v: Vec<String> = FIELDS
        .iter()
        .map(|f| {
            let value = out
                .lines()
                .find_map(|l| l.strip_prefix(f).and_then(|r| r.strip_prefix(':')))
                .unwrap_or_else(|| panic!("no {f} in {out}"));
            format!("{f}: {}", value.trim())
        })
        .collect();
    v.extend(out.lines().filter(|l| !l.contains(':')).map(str::to_owned));
    v
}

#[test]
fn dockers_capabilities_sysctls_and_seccomp_match_runc() {
    require_root!();
    require_command!("runc");
    let rootfs = busybox_rootfs("nssec-runc");
    let ours_root = view(&ours(rootfs.path(), None));
    assert!(
        ours_root.contains(&"CapEff: 00000000a80425fb".to_owned()),
        "{ours_root:?}"
    );
    assert!(
        ours_root.contains(&"Seccomp: 2".to_owned()),
        "{ours_root:?}"
    );
    assert!(
        ours_root.contains(&"0\t2147483647".to_owned()),
        "{ours_root:?}"
    );
    assert_eq!(ours_root, view(&runc(rootfs.path(), None)));
    // A non-root user: after the exec of cat, effective and permitted are
    // empty in both (runc keeps the sets across setuid, as we do when
    // asked, but exec recomputes them for a non-root program).
    let ours_user = view(&ours(rootfs.path(), Some(1000)));
    assert!(
        ours_user.contains(&"CapEff: 0000000000000000".to_owned()),
        "{ours_user:?}"
    );
    assert!(
        ours_user.contains(&"CapBnd: 00000000a80425fb".to_owned()),
        "{ours_user:?}"
    );
    assert_eq!(ours_user, view(&runc(rootfs.path(), Some(1000))));
}
