//! Process confinement (capabilities, no_new_privs, rlimits, umask, groups,
//! oom_score_adj, sysctls) applied by a spawned child, checked from inside
//! through `/proc/self/status` and friends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_namespaces::{
    CapSet, Capabilities, Command, ConfineError, Error, Kind, Kinds, ProcessKnobs, Rlimit, Step,
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

/// Run `cat FILES...` with the confinement `knobs`, `ids` and new `kinds`
/// namespaces; returns its stdout.
fn cat_confined(
    knobs: ProcessKnobs,
    ids: Option<(u32, u32)>,
    kinds: Kinds,
    files: &[&str],
) -> String {
    let mut cmd = Command::new("/bin/cat");
    cmd.args(files).namespaces(kinds).process_knobs(knobs);
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
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
    let status = cat_confined(docker_knobs(), None, Kinds::EMPTY, &["/proc/self/status"]);
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
    let ids = Some((1000, 1000));
    let status = cat_confined(docker_knobs(), ids, Kinds::EMPTY, &["/proc/self/status"]);
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
    let status = cat_confined(knobs, ids, Kinds::EMPTY, &["/proc/self/status"]);
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
    let out = cat_confined(
        knobs,
        Some((0, 0)),
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
    let out = cat_confined(
        knobs,
        None,
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
        .check(Kind::Net | Kind::Ipc | Kind::Uts)
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
        knobs.check(Kinds::EMPTY),
        Err(ConfineError::SysctlNeedsNamespace {
            kind: Kind::Net,
            ..
        })
    ));
}

/// A command that would leave a trace if it ran: a file it creates.
fn tracing_command(dir: &dunnage_testsupport::TempDir) -> Command {
    let mut cmd = Command::new("/bin/touch");
    cmd.arg(dir.join("ran"));
    cmd
}

#[test]
fn spawn_refuses_bad_knobs_before_clone_with_nothing_left_behind() {
    let dir = dunnage_testsupport::TempDir::new("confine-bad").unwrap();
    let mut cmd = tracing_command(&dir);
    cmd.sysctl("kernel.pid_max", "100");
    let err = cmd.spawn().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Confine(ConfineError::SysctlNotNamespaced { .. })
        ),
        "{err:?}"
    );
    let mut cmd = tracing_command(&dir);
    cmd.sysctl("net.ipv4.ip_forward", "1");
    let err = cmd.status().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Confine(ConfineError::SysctlNeedsNamespace {
                kind: Kind::Net,
                ..
            })
        ),
        "{err:?}"
    );
    let mut cmd = tracing_command(&dir);
    cmd.capabilities(Capabilities {
        effective: CapSet(1),
        ..Capabilities::default()
    });
    assert!(matches!(
        cmd.output().unwrap_err(),
        Error::Confine(ConfineError::CapabilitySets { .. })
    ));
    let mut cmd = tracing_command(&dir);
    cmd.oom_score_adj(-1001);
    assert!(matches!(
        cmd.spawn().unwrap_err(),
        Error::Confine(ConfineError::OomScoreAdj { .. })
    ));
    let mut cmd = tracing_command(&dir);
    cmd.umask(0o7777);
    assert!(matches!(
        cmd.plan().unwrap_err(),
        Error::Confine(ConfineError::Umask { .. })
    ));
    assert!(!dir.join("ran").exists(), "the command ran");
}

#[test]
fn the_plan_shows_runcs_order() {
    let mut knobs = docker_knobs();
    knobs.keep_capabilities = true;
    knobs.no_new_privileges = true;
    knobs.rlimits = vec![Rlimit::new("nofile", 10, 10).unwrap()];
    knobs.additional_gids = Some(vec![5]);
    let mut cmd = Command::new("/bin/true");
    cmd.process_knobs(knobs).uid(1000).gid(1000);
    let names: Vec<&str> = cmd.plan().unwrap().iter().map(Step::name).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    let order = [
        "prlimit",
        "bounding set",
        "keep capabilities",
        "setgroups",
        "setresgid",
        "setresuid",
        "capset",
        "ambient capabilities",
        "no_new_privs",
    ];
    for pair in order.windows(2) {
        assert!(pos(pair[0]) < pos(pair[1]), "{pair:?} in {names:?}");
    }
}

#[test]
fn the_parent_can_set_oom_score_adj_of_a_child() {
    // Raising it needs no privilege.
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    let _guard = dunnage_testsupport::ChildGuard::new(child.id());
    dunnage_namespaces::confine::set_oom_score_adj(child.id(), 567).unwrap();
    let text = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", child.id())).unwrap();
    assert_eq!(text.trim(), "567");
    let err = dunnage_namespaces::confine::set_oom_score_adj(child.id(), 2000).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Confine(ConfineError::OomScoreAdj { value: 2000 })
        ),
        "{err:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn new_session_makes_the_program_a_session_leader() {
    let out = Command::new("cat")
        .arg("/proc/self/stat")
        .new_session(true)
        .output()
        .unwrap();
    let stat = String::from_utf8(out.stdout).unwrap();
    let (pid, rest) = stat.split_once(" (").unwrap();
    let fields: Vec<&str> = rest.rsplit_once(") ").unwrap().1.split(' ').collect();
    // state, ppid, pgrp, session
    assert_eq!(fields[3], pid, "{stat}");
    assert_eq!(fields[2], pid, "{stat}");
}
