//! The facade's `Container` against the real kernel: a busybox image
//! imported into a private store, containers created, started, waited
//! for, stopped and removed; after each test nothing is left (mounts,
//! cgroups, processes, state).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use dunnage::container::{
    Container, ContainerStore, Error, ExecOptions, Network, Seccomp, Status, StdioMode,
};
use dunnage::image::ImageChanges;
use dunnage_testsupport::{CgroupGuard, TempDir, mounts_below, require_root, unique_name};

const IMAGE: &str = "test/busybox:1";

/// A private store holding a busybox image, a cgroup parent for its
/// containers, and the checks that nothing is left.
struct Fixture {
    tmp: TempDir,
    store: ContainerStore,
    parent: String,
    _cgroups: CgroupGuard,
}

/// The cgroup directories of `parent` in every hierarchy of this host.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.join(parent)]; // pure v2
    }
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(base).unwrap().flatten() {
        if e.path().join("cgroup.procs").exists() {
            dirs.push(e.path().join(parent));
        }
    }
    assert!(!dirs.is_empty());
    dirs
}

/// A rootfs tar of the host's static busybox, with users.
fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "home/web"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in [
        "sh", "true", "false", "cat", "echo", "id", "hostname", "pwd", "sleep", "head", "tr", "ls",
        "env", "touch",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nweb:x:1000:\nstaff:x:50:web\n",
    )
    .unwrap();
    std::fs::write(root.join("bin/noexec"), "not a program\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let st = StdCommand::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new("container").unwrap();
        let tar = busybox_tar(tmp.path());
        let store = ContainerStore::open(tmp.join("store")).unwrap();
        let mut changes = ImageChanges::default();
        for c in ["CMD [\"/bin/sh\"]", "ENV PATH=/bin", "ENV FROM_IMAGE=yes"] {
            changes.add_instruction(c).unwrap();
        }
        changes.reference = Some(IMAGE.parse().unwrap());
        store.images().import(&tar, &changes).unwrap();
        let parent = unique_name("ctr");
        let mut guard = CgroupGuard::new();
        for d in cgroup_dirs(&parent) {
            guard.add(d);
        }
        Fixture {
            tmp,
            store,
            parent,
            _cgroups: guard,
        }
    }

    fn container(&self) -> Container {
        let mut c = Container::image(IMAGE);
        c.cgroup_parent(&self.parent);
        c
    }

    /// Nothing of any container left: no mounts, no container cgroups, no
    /// state, no container layers.
    fn assert_clean(&self) {
        assert_eq!(mounts_below(self.tmp.path()), Vec::<PathBuf>::new());
        for d in cgroup_dirs(&self.parent) {
            if d.is_dir() {
                assert_eq!(std::fs::read_to_string(d.join("cgroup.procs")).unwrap(), "");
            }
            if let Ok(entries) = std::fs::read_dir(&d) {
                let subs: Vec<_> = entries.flatten().filter(|e| e.path().is_dir()).collect();
                assert!(subs.is_empty(), "cgroups left in {}: {subs:?}", d.display());
            }
        }
        assert!(self.store.list().unwrap().is_empty());
        assert!(self.store.images().layers().list_rw().unwrap().is_empty());
    }
}

fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

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
    assert_eq!(spec.capabilities, ["CAP_NET_ADMIN"]);
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
    assert_eq!(spec.capabilities.len(), 14);
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
    c.remove(true).unwrap();
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

const HELPER_ENV: &str = "DUNNAGE_TEST_DETACH";

/// Run in a child process by `detached_container_outlives_its_creator`:
/// creates and starts a detached container, then exits.
#[test]
fn detached_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return; // only as the helper
    };
    let (root, parent) = spec.split_once('\n').unwrap();
    let store = ContainerStore::open(root).unwrap();
    let mut c = Container::image(IMAGE);
    let mut c = c
        .cgroup_parent(parent)
        .name("detached-1")
        .args([
            "sh",
            "-c",
            "echo out; echo err >&2; trap 'echo bye; exit 3' TERM; while :; do sleep 1; done",
        ])
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&store)
        .unwrap();
    c.start().unwrap();
    println!("HELPER-ID {}", c.id());
}

#[test]
fn detached_container_outlives_its_creator() {
    require_root!();
    let f = Fixture::new();
    let out = StdCommand::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "detached_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{}\n{}", f.store.root().display(), f.parent),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text
        .lines()
        .find_map(|l| l.split_once("HELPER-ID ").map(|(_, id)| id))
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        .to_string();
    // Another process (this one) finds it running, by name.
    let mut c = f.store.get("detached-1").unwrap();
    assert_eq!(c.id(), id);
    assert_eq!(c.status().unwrap(), Status::Running);
    assert!(c.state().unwrap().monitor_pid > 0);
    assert_eq!(f.store.list().unwrap().len(), 1);
    // Its output reaches the json-file log (written by the monitor).
    let mut logs = Vec::new();
    for _ in 0..500 {
        logs = c.logs().unwrap();
        if logs.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    logs.sort();
    assert_eq!(
        logs,
        [
            ("stderr".to_string(), "err\n".to_string()),
            ("stdout".to_string(), "out\n".to_string())
        ]
    );
    let raw = std::fs::read_to_string(c.log_path()).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    // Stop: the trap answers SIGTERM with exit 3, recorded by the monitor.
    let exit = c.stop(Duration::from_secs(20)).unwrap();
    assert_eq!(exit.code, Some(3));
    assert!(c.logs().unwrap().iter().any(|(_, l)| l == "bye\n"));
    c.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn detached_created_then_started_elsewhere() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container();
    let c = c
        .args(["sh", "-c", "exit 5"])
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    assert_eq!(c.status().unwrap(), Status::Created);
    let mut other = f.store.get(c.id()).unwrap();
    other.start().unwrap();
    assert_eq!(other.wait().unwrap().code, Some(5));
    // A command that is not there: 127, as docker.
    let mut c2 = f.container();
    let mut c2 = c2
        .arg("no-such-program")
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    assert!(matches!(c2.start(), Err(Error::CommandNotFound(_))));
    assert_eq!(c2.wait().unwrap().code, Some(127));
    // A created detached container is removed without force.
    let mut c3 = f.container();
    let c3 = c3
        .arg("true")
        .monitor_program(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .create_detached(&f.store)
        .unwrap();
    c3.remove(false).unwrap();
    other.remove(false).unwrap();
    c2.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn docker_profile_seen_inside() {
    require_root!();
    let f = Fixture::new();
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp)' /proc/self/status; \
                  cat /proc/sys/net/ipv4/ip_unprivileged_port_start; \
                  head -c 1 /dev/zero | wc -c; \
                  mknod /tmp/sda b 8 0 && (head -c 1 /tmp/sda >/dev/null 2>&1 && echo read || echo denied); \
                  cat /proc/kcore 2>/dev/null | wc -c; \
                  touch /proc/sys/x 2>/dev/null || echo ro; \
                  touch /newfile 2>/dev/null && echo rw-root";
    let run = |c: &mut Container| {
        let mut h = c
            .args(["sh", "-c", script])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        h.remove(false).unwrap();
        text
    };
    assert_eq!(
        run(&mut f.container()),
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n0\n1\ndenied\n0\nro\nrw-root\n"
    );
    let text = run(f
        .container()
        .cap_drop("ALL")
        .no_new_privileges(true)
        .readonly_rootfs(true)
        .seccomp(Seccomp::Unconfined));
    assert!(
        text.starts_with(
            "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n"
        ),
        "{text}"
    );
    assert!(!text.contains("rw-root"), "{text}");
    f.assert_clean();
}

#[test]
fn tty_network_join_host_and_update() {
    require_root!();
    let f = Fixture::new();
    // A terminal: the process's stdio is a pty in the container.
    let mut c = f
        .container()
        .args(["sh", "-c", "tty; echo $TERM"])
        .tty(true)
        .create(&f.store)
        .unwrap();
    let mut master = c.take_terminal().unwrap();
    c.start().unwrap();
    assert_eq!(c.wait().unwrap().code, Some(0));
    let mut buf = vec![0; 4096];
    let n = master.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
    assert!(text.starts_with("/dev/pts/0\nxterm\n"), "{text:?}");
    drop(master);
    c.remove(false).unwrap();

    // A running container to join, and whose limits change.
    let mut a = f
        .container()
        .args(["sleep", "1000"])
        .create(&f.store)
        .unwrap();
    a.start().unwrap();
    let pid = a.pid().unwrap().unwrap();
    let ns = |p: &str| std::fs::read_link(p).unwrap().display().to_string();
    let a_net = ns(&format!("/proc/{pid}/ns/net"));
    let probe = |network: Network| {
        let mut c = f.container();
        let mut h = c
            .args(["sh", "-c", "readlink /proc/self/ns/net"])
            .network(network)
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        let hostname = h.spec().hostname.clone();
        h.remove(false).unwrap();
        (text.trim().to_string(), hostname)
    };
    let (joined, _) = probe(Network::Join(format!("/proc/{pid}/ns/net").into()));
    assert_eq!(joined, a_net);
    let (host, hostname) = probe(Network::Host);
    assert_eq!(host, ns("/proc/self/ns/net"));
    assert_eq!(
        hostname,
        rustix::system::uname().nodename().to_string_lossy()
    );
    let (own, _) = probe(Network::None);
    assert_ne!(own, a_net);
    assert_ne!(own, ns("/proc/self/ns/net"));

    a.update(dunnage::container::ResourceLimits {
        memory: Some(48 << 20),
        memory_swap: Some(96 << 20),
        pids_limit: Some(20),
        ..Default::default()
    })
    .unwrap();
    let stats = a.stats().unwrap();
    assert_eq!(stats.pids.unwrap().max, dunnage::cgroups::Limit::Value(20));
    assert_eq!(
        stats.memory.unwrap().limit,
        dunnage::cgroups::Limit::Value(48 << 20)
    );
    assert_eq!(
        f.store.get(a.id()).unwrap().spec().resources.memory,
        Some(48 << 20)
    );
    a.remove(true).unwrap();
    f.assert_clean();
}

#[test]
fn privileged_as_docker() {
    require_root!();
    let f = Fixture::new();
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
                  ls /dev/kmsg 2>/dev/null; head -c 1 /dev/kmsg >/dev/null 2>&1 && echo kmsg-read; \
                  grep -c ' /proc/kcore ' /proc/self/mounts; \
                  grep -E ' /sys sysfs ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1";
    let run = |c: &mut Container| {
        let mut h = c
            .args(["sh", "-c", script])
            .stdout(StdioMode::Piped)
            .create(&f.store)
            .unwrap();
        let out = h.take_stdout().unwrap();
        h.start().unwrap();
        let text = read_all(out);
        h.wait().unwrap();
        h.remove(false).unwrap();
        text
    };
    // Every capability this process has (its effective set).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .unwrap()
        .to_string();
    assert_eq!(
        run(f.container().privileged(true)),
        format!("CapEff:\t{all}\nSeccomp:\t0\n/dev/kmsg\nkmsg-read\n0\nrw\n")
    );
    assert_eq!(
        run(&mut f.container()),
        "CapEff:\t00000000a80425fb\nSeccomp:\t2\n0\nro\n"
    );
    f.assert_clean();
}

#[test]
fn profile_is_a_value_the_caller_changes() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container();
    let p = c.security_profile_mut();
    p.capabilities.retain(|cap| cap != "CAP_CHOWN");
    p.masked_paths.push("/etc/motd-masked".into());
    p.mounts.retain(|m| m.destination != "/dev/mqueue");
    p.devices
        .push(dunnage::profile::DeviceNode::char("/dev/kmsg", 1, 11));
    p.device_rules
        .push(dunnage::profile::DeviceRule::allow_char(1, 11));
    let mut h = c
        .args([
            "sh",
            "-c",
            "grep CapEff /proc/self/status; grep -c mqueue /proc/self/mounts; \
             test -c /dev/kmsg && echo kmsg",
        ])
        .stdout(StdioMode::Piped)
        .create(&f.store)
        .unwrap();
    let out = h.take_stdout().unwrap();
    h.start().unwrap();
    assert_eq!(read_all(out), "CapEff:\t00000000a80425fa\n0\nkmsg\n");
    h.wait().unwrap();
    h.remove(false).unwrap();
    f.assert_clean();
}

#[test]
fn from_a_rootfs_directory() {
    require_root!();
    let f = Fixture::new();
    let root = f.tmp.join("plain-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let mut c = Container::rootfs(&root);
    let mut h = c
        .cgroup_parent(&f.parent)
        .args(["/bin/sh", "-c", "echo hi > /made-here; exit 4"])
        .create(&f.store)
        .unwrap();
    h.start().unwrap();
    assert_eq!(h.wait().unwrap().code, Some(4));
    assert!(matches!(
        h.commit(&ImageChanges::default()),
        Err(Error::Unsupported { .. })
    ));
    h.remove(false).unwrap();
    // Used in place: the change is in the directory, which remove keeps.
    assert_eq!(
        std::fs::read_to_string(root.join("made-here")).unwrap(),
        "hi\n"
    );
    f.assert_clean();
}

#[test]
fn monitor_refuses_bad_input() {
    let tmp = TempDir::new("monitor-input").unwrap();
    for junk in [
        &b""[..],
        b"{",
        b"null",
        b"{\"id\":\"../../x\"}",
        b"\xff\xfe\x00",
    ] {
        let mut child = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
            .arg(dunnage::container::monitor::MONITOR_ARG)
            .arg(tmp.join("store"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(junk).unwrap();
        let mut answer = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut answer)
            .unwrap();
        child.wait().unwrap();
        assert!(answer.starts_with("err "), "{answer:?}");
    }
    // A well-formed spec naming a path outside the store is refused too.
    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let root = tmp.join("r");
    std::fs::create_dir_all(&root).unwrap();
    let mut spec = Container::rootfs(&root)
        .arg("true")
        .resolve(&store)
        .unwrap();
    spec.id = "../../../../tmp/x".into();
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .arg(dunnage::container::monitor::MONITOR_ARG)
        .arg(tmp.join("store"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let json = serde_json::to_vec(&spec).unwrap();
        child.stdin.take().unwrap().write_all(&json).unwrap();
    }
    let mut answer = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("err invalid container ID"), "{answer:?}");
    // Without the marker the binary says how it is meant to be started.
    let out = StdCommand::new(env!("CARGO_BIN_EXE_dunnage-monitor"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
