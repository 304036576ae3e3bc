//! Process confinement (capabilities, no_new_privs, rlimits, umask, groups,
//! oom_score_adj, sysctls) applied by a spawned child, checked from inside
//! through `/proc/self/status` and friends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;

use dunnage_namespaces::confine::{ConfineFailure, Ids};
use dunnage_namespaces::{
    CapSet, Capabilities, Command, ConfineError, Confinement, Error, Kind, Kinds, ProcessKnobs,
    Rlimit, Stdio,
};
use dunnage_testsupport::require_root;

/// Docker's 14 capabilities.
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

/// Run `cat FILES...` in a child that first applies `conf` with `ids`
/// (in new `kinds` namespaces); returns its stdout. A failed step exits
/// with 100 + errno.
fn cat_confined(conf: Confinement, ids: Ids, kinds: Kinds, files: &[&str]) -> String {
    let args: Vec<CString> = std::iter::once("/bin/cat")
        .chain(files.iter().copied())
        .map(|s| CString::new(s).unwrap())
        .collect();
    assert!(args.len() <= 4);
    let mut cmd = Command::function(move || {
        if let Err(ConfineFailure { errno, .. }) = conf.apply(ids) {
            return 100 + errno;
        }
        let mut argv = [std::ptr::null(); 5];
        for (slot, a) in argv.iter_mut().zip(&args) {
            *slot = a.as_ptr();
        }
        // SAFETY: NUL-terminated argv of prepared C strings.
        unsafe { libc::execv(argv[0], argv.as_ptr()) };
        99
    });
    cmd.namespaces(kinds).stdout(Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

fn docker_knobs() -> ProcessKnobs {
    ProcessKnobs {
        capabilities: Some(Capabilities::uniform(CapSet::parse(DOCKER_CAPS).unwrap())),
        ..ProcessKnobs::default()
    }
}

#[test]
fn dockers_capabilities_as_root() {
    require_root!();
    let conf = docker_knobs().prepare(Kinds::EMPTY).unwrap();
    let status = cat_confined(conf, Ids::default(), Kinds::EMPTY, &["/proc/self/status"]);
    assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapPrm"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
}

#[test]
fn a_non_root_uid_empties_effective_and_permitted_unless_kept() {
    require_root!();
    let ids = Ids {
        uid: Some(1000),
        gid: Some(1000),
        clear_groups: true,
    };
    let conf = docker_knobs().prepare(Kinds::EMPTY).unwrap();
    let status = cat_confined(conf, ids, Kinds::EMPTY, &["/proc/self/status"]);
    assert_eq!(status_field(&status, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "Groups"), "");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");

    // Kept (runc's way), with one capability ambient so that it survives
    // the exec of cat as a non-root user.
    let kill = CapSet::parse(["kill"]).unwrap();
    let mut knobs = docker_knobs();
    knobs.keep_capabilities = true;
    let caps = knobs.capabilities.as_mut().unwrap();
    caps.inheritable = kill;
    caps.ambient = kill;
    let conf = knobs.prepare(Kinds::EMPTY).unwrap();
    let status = cat_confined(conf, ids, Kinds::EMPTY, &["/proc/self/status"]);
    assert_eq!(status_field(&status, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000020");
    assert_eq!(status_field(&status, "CapInh"), "0000000000000020");
    // After exec a non-root program keeps only the ambient set.
    assert_eq!(status_field(&status, "CapEff"), "0000000000000020");
    assert_eq!(status_field(&status, "CapPrm"), "0000000000000020");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
}

#[test]
fn no_new_privs_rlimits_umask_groups_and_oom_score_adj() {
    require_root!();
    let knobs = ProcessKnobs {
        no_new_privileges: true,
        rlimits: vec![
            Rlimit::new("RLIMIT_NOFILE", 123, 456).unwrap(),
            Rlimit::new("core", 0, dunnage_namespaces::rlimit::INFINITY).unwrap(),
        ],
        umask: Some(0o027),
        additional_gids: Some(vec![10, 20, 30]),
        oom_score_adj: Some(333),
        ..ProcessKnobs::default()
    };
    let conf = knobs.prepare(Kinds::EMPTY).unwrap();
    let ids = Ids {
        uid: Some(0),
        gid: Some(0),
        clear_groups: true,
    };
    let out = cat_confined(
        conf,
        ids,
        Kinds::EMPTY,
        &[
            "/proc/self/status",
            "/proc/self/limits",
            "/proc/self/oom_score_adj",
        ],
    );
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out, "Umask"), "0027");
    assert_eq!(status_field(&out, "Groups"), "10 20 30");
    let nofile = out
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..6],
        ["123", "456", "files"]
    );
    let core = out
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.contains(" 0 ") && core.contains("unlimited"), "{core}");
    assert_eq!(out.lines().last(), Some("333"));
}

#[test]
fn namespaced_sysctls_are_written_inside_the_new_namespaces() {
    require_root!();
    let host_ping = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let kinds = Kind::Net | Kind::Ipc;
    let knobs = ProcessKnobs {
        sysctls: vec![
            ("net.ipv4.ping_group_range".into(), "0 2147483647".into()),
            ("kernel.shmmni".into(), "1234".into()),
        ],
        ..ProcessKnobs::default()
    };
    let conf = knobs.prepare(kinds).unwrap();
    let out = cat_confined(
        conf,
        Ids::default(),
        kinds,
        &[
            "/proc/sys/net/ipv4/ping_group_range",
            "/proc/sys/kernel/shmmni",
        ],
    );
    assert_eq!(out, "0\t2147483647\n1234\n");
    // The host's values are untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
        host_ping
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shm
    );
}

#[test]
fn bad_knobs_fail_before_anything_is_spawned() {
    // No root needed: nothing reaches the kernel.
    let err = CapSet::parse(["CAP_CHOWN", "CAP_TELEPORT"]).unwrap_err();
    assert!(matches!(err, ConfineError::UnknownCapability { ref name } if name == "CAP_TELEPORT"));
    let knobs = ProcessKnobs {
        sysctls: vec![("kernel.pid_max".into(), "100".into())],
        ..ProcessKnobs::default()
    };
    let err: Error = knobs
        .prepare(Kind::Net | Kind::Ipc | Kind::Uts)
        .unwrap_err()
        .into();
    assert!(
        matches!(
            err,
            Error::Confine(ConfineError::SysctlNotNamespaced { .. })
        ),
        "{err:?}"
    );
    let knobs = ProcessKnobs {
        sysctls: vec![("net.ipv4.ip_forward".into(), "1".into())],
        ..ProcessKnobs::default()
    };
    assert!(matches!(
        knobs.prepare(Kinds::EMPTY),
        Err(ConfineError::SysctlNeedsNamespace {
            kind: Kind::Net,
            ..
        })
    ));
}
