//! The facade's `Container` against the real kernel: a busybox image
//! imported into a private store, containers created, started, waited
//! for, stopped and removed; after each test nothing is left (mounts,
//! cgroups, processes, state).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Fixture, read_all};
use dunnage::container::{
    CapabilitySets, Container, ContainerStore, Error, ExecOptions, IdMapping, Network, Seccomp,
    Status, StdioMode,
};
use dunnage::image::ImageChanges;
use dunnage_testsupport::{TempDir, require_root};

#[test]
fn resolve_without_privilege_from_a_rootfs_dir() {
    let tmp = TempDir::new("resolve").unwrap();
    let root = tmp.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "web:x:1000:1000::/home/web:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "staff:x:50:web\n").unwrap();
    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let spec = Container::rootfs(&root)
        .args(["sh", "-c", "true"])
        .env("A", "1")
        .user("web")
        .current_dir("/tmp")
        .cap_drop("ALL")
        .cap_add("net_admin")
        .resolve(&store)
        .unwrap();
    assert_eq!(spec.argv, ["sh", "-c", "true"]);
    assert_eq!((spec.uid, spec.gid), (1000, 1000));
    assert_eq!(spec.additional_gids, [50, 1000]);
    assert_eq!(spec.cwd, "/tmp");
    assert_eq!(spec.hostname, spec.short_id());
    // Docker's arithmetic on bounding; a non-root user gets empty
    // effective and permitted sets, as with docker.
    assert_eq!(spec.capabilities.bounding, ["CAP_NET_ADMIN"]);
    assert!(spec.capabilities.effective.is_empty());
    assert!(spec.capabilities.permitted.is_empty());
    assert!(spec.capabilities.inheritable.is_empty() && spec.capabilities.ambient.is_empty());
    assert_eq!(spec.stop_signal, "SIGTERM");
    assert!(spec.env.contains(&"A=1".to_string()));
    assert!(spec.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(spec.env.contains(&"HOME=/home/web".to_string()));
    assert_eq!(spec.masked_paths.len(), 10);
    // Resources in docker's units, with docker's swap default.
    let spec = Container::rootfs(&root)
        .arg("x")
        .memory(32 << 20)
        .cpus(0.5)
        .pids_limit(10)
        .cpu_shares(512)
        .cpuset_cpus("0")
        .io_weight(300)
        .hugetlb("2MB", 4 << 20)
        .resolve(&store)
        .unwrap();
    assert_eq!(spec.resources.memory_swap, Some(64 << 20));
    assert_eq!(
        (spec.resources.cpu_quota, spec.resources.cpu_period),
        (Some(50_000), Some(100_000))
    );
    assert_eq!(spec.resources.hugetlb, [("2MB".to_string(), 4 << 20)]);
    // Docker's 14 capabilities by default.
    let spec = Container::rootfs(&root).arg("x").resolve(&store).unwrap();
    assert_eq!(spec.capabilities.bounding.len(), 14);
    assert_eq!(spec.capabilities.effective, spec.capabilities.bounding);
    assert_eq!(spec.capabilities.permitted, spec.capabilities.bounding);
    // Exact sets (an OCI config's), edited by cap_drop on the first three.
    let mut sets = CapabilitySets::uniform(vec!["CAP_KILL".into(), "CAP_CHOWN".into()]);
    sets.inheritable = vec!["CAP_KILL".into()];
    sets.ambient = vec!["CAP_KILL".into()];
    let spec = Container::rootfs(&root)
        .arg("x")
        .user("web")
        .capability_sets(sets)
        .cap_drop("chown")
        .resolve(&store)
        .unwrap();
    assert_eq!(spec.capabilities.bounding, ["CAP_KILL"]);
    assert_eq!(spec.capabilities.effective, ["CAP_KILL"]);
    assert_eq!(spec.capabilities.ambient, ["CAP_KILL"]);
    assert_eq!(spec.capabilities.inheritable, ["CAP_KILL"]);
    // Only ipc, uts, pid and mnt namespaces are joined, by absolute path.
    assert!(
        Container::rootfs(&root)
            .arg("x")
            .join_namespace("mnt", "/proc/1/ns/mnt")
            .resolve(&store)
            .is_ok()
    );
    for (kind, path) in [("cgroup", "/proc/1/ns/cgroup"), ("ipc", "proc/1/ns/ipc")] {
        assert!(matches!(
            Container::rootfs(&root)
                .arg("x")
                .join_namespace(kind, path)
                .resolve(&store),
            Err(Error::Invalid { .. })
        ));
    }
    // A user namespace needs both maps, each valid.
    let map = |size| {
        vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size,
        }]
    };
    let spec = Container::rootfs(&root)
        .arg("x")
        .user_namespace(map(65536), map(65536))
        .resolve(&store)
        .unwrap();
    assert_eq!(spec.uid_map, map(65536));
    for (uids, gids) in [(map(65536), vec![]), (map(0), map(1))] {
        assert!(matches!(
            Container::rootfs(&root)
                .arg("x")
                .user_namespace(uids, gids)
                .resolve(&store),
            Err(Error::Invalid { .. })
        ));
    }
    // Errors a user can act on, before anything is made.
    let err = |c: &mut Container| c.resolve(&store).unwrap_err();
    assert!(matches!(
        err(&mut Container::rootfs(&root)),
        Error::NoCommand
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").user("nobody")),
        Error::UnknownUser(_)
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").name("/bad")),
        Error::InvalidName(_)
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").cap_add("CAP_NOPE")),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").stop_signal("SIGNOPE")),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").current_dir("rel")),
        Error::Invalid { .. }
    ));
    assert!(matches!(
        err(Container::rootfs(&root).arg("x").rlimit("nope", 1, 1)),
        Error::Confine(_)
    ));
    assert!(matches!(
        Container::image("no/such:image")
            .resolve(&store)
            .unwrap_err(),
        Error::UnknownImage(_)
    ));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn image_config_applies_as_docker() {
    require_root!();
    let f = Fixture::new();
    let spec = f.container().resolve(&f.store).unwrap();
    assert_eq!(spec.argv, ["/bin/sh"]);
    // A joined mount namespace needs a rootfs directory, not an image.
    assert!(matches!(
        f.container()
            .join_namespace("mnt", "/proc/1/ns/mnt")
            .resolve(&f.store),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(spec.env[0], format!("HOSTNAME={}", spec.hostname));
    assert!(spec.env.contains(&"PATH=/bin".to_string()));
    assert!(spec.env.contains(&"FROM_IMAGE=yes".to_string()));
    let spec = f
        .container()
        .entrypoint(["echo"])
        .arg("hi")
        .user("web:staff")
        .resolve(&f.store)
        .unwrap();
    assert_eq!(spec.argv, ["echo", "hi"]);
    assert_eq!((spec.uid, spec.gid), (1000, 50));
    f.assert_clean();
}

#[test]
fn true_and_exit_codes() {
    require_root!();
    let f = Fixture::new();
    for (args, code) in [(vec!["/bin/true"], 0), (vec!["sh", "-c", "exit 7"], 7)] {
        let mut c = f.container().args(args).create(&f.store).unwrap();
        assert_eq!(c.status().unwrap(), Status::Created);
        let layer = c.layer().unwrap().unwrap();
        assert_eq!(layer.init_id, Some(format!("{}-init", layer.mount_id)));
        let rootfs = c.rootfs_path().unwrap().unwrap();
        assert!(rootfs.join(".dockerenv").exists());
        c.start().unwrap();
        let exit = c.wait().unwrap();
        assert_eq!(exit.code, Some(code));
        assert!(!exit.oom_killed);
        assert_eq!(c.status().unwrap(), Status::Exited);
        assert_eq!(c.state().unwrap().exit_code, Some(code));
        c.remove(false).unwrap();
    }
    f.assert_clean();
}

#[test]
fn wait_to_remove_returns_the_exit_without_recording_it() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .args(["sh", "-c", "exit 3"])
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    let exit = c.wait_to_remove().unwrap();
    assert_eq!(exit.code, Some(3));
    assert!(!exit.oom_killed);
    // Exited for everyone, with no code on record until the removal.
    assert_eq!(c.status().unwrap(), Status::Exited);
    assert_eq!(c.state().unwrap().exit_code, None);
    assert_eq!(
        f.store.get(c.id()).unwrap().status().unwrap(),
        Status::Exited
    );
    c.remove(false).unwrap();

    // A removal that fails records the exit after all: an immutable file
    // in the state directory stops it.
    let mut c = f
        .container()
        .args(["sh", "-c", "exit 4"])
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    assert_eq!(c.wait_to_remove().unwrap().code, Some(4));
    let blocker = c.dir().join("dunnage-test-blocker");
    std::fs::write(&blocker, "").unwrap();
    let chattr = |flag: &str| {
        let ok = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&blocker)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chattr {flag}");
    };
    chattr("+i");
    let id = c.id().to_string();
    let failed = c.remove(false);
    chattr("-i");
    assert!(failed.is_err());
    let again = f.store.get(&id).unwrap();
    assert_eq!(again.state().unwrap().exit_code, Some(4));
    again.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn not_found_not_executable_name_in_use() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .arg("no-such-program")
        .create(&f.store)
        .unwrap();
    assert!(matches!(c.start().unwrap_err(), Error::CommandNotFound(_)));
    assert_eq!(c.state().unwrap().exit_code, Some(127));
    c.remove(false).unwrap();
    let mut c = f.container().arg("/bin/noexec").create(&f.store).unwrap();
    assert!(matches!(
        c.start().unwrap_err(),
        Error::NotExecutable { .. }
    ));
    assert_eq!(c.state().unwrap().exit_code, Some(126));
    c.remove(false).unwrap();

    let a = f
        .container()
        .arg("true")
        .name("web-1")
        .create(&f.store)
        .unwrap();
    let err = f
        .container()
        .arg("true")
        .name("web-1")
        .create(&f.store)
        .unwrap_err();
    assert!(matches!(err, Error::NameInUse { .. }), "{err}");
    assert_eq!(f.store.lookup("web-1").unwrap(), a.id());
    assert_eq!(f.store.lookup(&a.id()[..10]).unwrap(), a.id());
    assert!(matches!(
        f.store.lookup("web-2"),
        Err(Error::UnknownContainer(_))
    ));
    // A create of "web-2" in progress (config.json, no state.json yet)
    // holds the name while its creator (this process) lives; once the
    // creator is gone the unfinished directory does not.
    let pending = f.store.root().join("containers").join("d".repeat(64));
    std::fs::create_dir(&pending).unwrap();
    let pending_config = format!(r#"{{"id":"{}","name":"web-2"}}"#, "d".repeat(64));
    std::fs::write(pending.join("config.json"), pending_config).unwrap();
    let me = std::process::id() as i32;
    let start = dunnage::container::state::pid_start_time(me).unwrap();
    std::fs::write(pending.join("creator"), format!("{me} {start}\n")).unwrap();
    let err = f
        .container()
        .arg("true")
        .name("web-2")
        .create(&f.store)
        .unwrap_err();
    assert!(matches!(err, Error::NameInUse { .. }), "{err}");
    std::fs::write(pending.join("creator"), "0 0\n").unwrap();
    let b = f
        .container()
        .arg("true")
        .name("web-2")
        .create(&f.store)
        .unwrap();
    std::fs::remove_dir_all(&pending).unwrap();
    b.remove(true).unwrap();
    // Dropping a created container's handle ends its process.
    drop(a);
    let a = f.store.get("web-1").unwrap();
    assert!(matches!(a.top(), Err(Error::NotRunning(_)) | Ok(_)));
    a.remove(true).unwrap();
    f.assert_clean();
}

#[test]
fn env_cwd_user_hostname_seen_inside() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .args([
            "sh",
            "-c",
            "echo $FOO $FROM_IMAGE; pwd; id -u; id -g; id -G; hostname; cat /etc/hostname",
        ])
        .env("FOO", "bar")
        .current_dir("/tmp")
        .user("web")
        .hostname("box")
        .stdout(StdioMode::Piped)
        .create(&f.store)
        .unwrap();
    let out = c.take_stdout().unwrap();
    c.start().unwrap();
    let text = read_all(out);
    assert_eq!(c.wait().unwrap().code, Some(0));
    assert_eq!(text, "bar yes\n/tmp\n1000\n1000\n1000 50\nbox\nbox\n");
    c.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn memory_limit_ooms() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .args([
            "sh",
            "-c",
            "a=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived",
        ])
        .memory(16 << 20)
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    let exit = c.wait().unwrap();
    assert!(exit.oom_killed, "{exit:?}");
    assert!(c.state().unwrap().oom_killed);
    c.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn pause_stats_top_exec_stop() {
    require_root!();
    let f = Fixture::new();
    // The init ignores SIGTERM (pid 1 without a handler): stop needs SIGKILL.
    let mut c = f
        .container()
        .args(["sh", "-c", "while :; do sleep 1; done"])
        .network(Network::None)
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    assert_eq!(c.status().unwrap(), Status::Running);

    let mut child = c
        .exec(
            &["sh", "-c", "echo $HOSTNAME; id -u"],
            &ExecOptions {
                stdout: StdioMode::Piped,
                ..ExecOptions::default()
            },
        )
        .unwrap();
    let out = read_all(child.stdout.take().unwrap());
    assert!(child.wait().unwrap().success());
    assert_eq!(out, format!("{}\n0\n", c.spec().hostname));
    assert!(matches!(
        c.exec(&["no-such"], &ExecOptions::default()),
        Err(Error::CommandNotFound(_))
    ));

    let stats = c.stats().unwrap();
    assert!(stats.pids.unwrap().current >= 1);
    assert!(stats.memory.unwrap().usage > 0);
    let top = c.top().unwrap();
    assert!(
        top.iter().any(|p| p.command.starts_with("sh -c while")),
        "{top:?}"
    );

    c.pause().unwrap();
    assert_eq!(c.status().unwrap(), Status::Paused);
    // The kernel says the cgroup is frozen (v1 freezer or v2 events).
    let v1 = Path::new("/sys/fs/cgroup/freezer")
        .join(&c.spec().cgroup)
        .join("freezer.state");
    if v1.exists() {
        assert_eq!(std::fs::read_to_string(&v1).unwrap().trim(), "FROZEN");
    } else {
        let events = Path::new("/sys/fs/cgroup")
            .join(&c.spec().cgroup)
            .join("cgroup.events");
        assert!(
            std::fs::read_to_string(events)
                .unwrap()
                .contains("frozen 1")
        );
    }
    assert!(matches!(c.pause(), Err(Error::WrongState { .. })));
    c.resume().unwrap();
    assert_eq!(c.status().unwrap(), Status::Running);

    let exit = c.stop(Duration::from_millis(300)).unwrap();
    assert_eq!(exit.code, Some(137));
    assert!(matches!(c.kill(9), Err(Error::NotRunning(_))));
    c.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn remove_refuses_a_running_container_unless_forced() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .args(["sleep", "1000"])
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    let id = c.id().to_string();
    let c2 = f.store.get(&id).unwrap();
    assert!(matches!(c2.remove(false), Err(Error::WrongState { .. })));
    // Cgroups below the container's (as one with its own cgroup namespace
    // may make) go with it.
    let pid = c.pid().unwrap().unwrap();
    let mut made = Vec::new();
    for line in std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
    {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        if ["freezer", "memory", "pids"].contains(&ctl) {
            let sub = Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join(path.trim_start_matches('/'))
                .join("dunnage-test-sub");
            std::fs::create_dir(&sub).unwrap();
            made.push(sub);
        }
    }
    c.remove(true).unwrap();
    for sub in made {
        assert!(!sub.exists(), "{} is left", sub.display());
    }
    f.assert_clean();
}

#[test]
fn commit_and_export() {
    require_root!();
    let f = Fixture::new();
    let mut c = f
        .container()
        .args(["sh", "-c", "echo changed > /tmp/new"])
        .create(&f.store)
        .unwrap();
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().code, Some(0));
    let mut tar = tar::Archive::new(std::io::Cursor::new(c.export(Vec::new()).unwrap()));
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("tmp/new")), "{names:?}");
    let changes = ImageChanges {
        reference: Some("test/committed:1".parse().unwrap()),
        ..ImageChanges::default()
    };
    let id = c.commit(&changes).unwrap();
    c.remove(false).unwrap();
    let mut d = Container::image("test/committed:1");
    let mut d = d
        .cgroup_parent(&f.parent)
        .args(["cat", "/tmp/new"])
        .stdout(StdioMode::Piped)
        .create(&f.store)
        .unwrap();
    assert_eq!(d.spec().image.as_deref(), Some(id.to_string().as_str()));
    let out = d.take_stdout().unwrap();
    d.start().unwrap();
    assert_eq!(read_all(out), "changed\n");
    d.wait().unwrap();
    d.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn seccomp_profile_without_the_feature_is_refused_before_anything_is_made() {
    require_root!();
    let f = Fixture::new();
    let r = f
        .container()
        .arg("true")
        .seccomp(Seccomp::Profile(
            "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into(),
        ))
        .create(&f.store);
    if cfg!(feature = "seccomp") {
        let mut c = r.unwrap();
        c.start().unwrap();
        c.wait().unwrap();
        c.remove(false).unwrap();
    } else {
        assert!(matches!(r, Err(Error::Unsupported { .. })));
    }
    f.assert_clean();
}
