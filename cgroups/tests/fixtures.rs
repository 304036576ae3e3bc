//! Parsers and statistics on fixture files: the layouts this machine
//! cannot show (pure v2, legacy, a container's view, busy counters) and
//! malformed input, which must give typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_cgroups::proc::{parse_mountinfo, parse_proc_cgroups, parse_process_cgroups};
use dunnage_cgroups::{Cgroup, CgroupPath, Controller, Error, Hierarchies, Limit, Mode};
use dunnage_testsupport::TempDir;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn mountinfo_with(template: &str, root: &Path) -> Hierarchies {
    let t = text(template).replace("@ROOT@", root.to_str().unwrap());
    Hierarchies::from_mounts(&parse_mountinfo(Path::new(template), &t).unwrap()).unwrap()
}

/// A legacy host whose hierarchies are the fixture tree `root`.
fn v1_host(root: &Path) -> Hierarchies {
    let mut info = String::new();
    for (i, c) in ["cpu", "cpuacct", "memory", "pids", "blkio"]
        .iter()
        .enumerate()
    {
        info += &format!(
            "{i} 1 0:{i} / {}/{c} rw - cgroup cgroup rw,{c}\n",
            root.display()
        );
    }
    Hierarchies::from_mounts(&parse_mountinfo(Path::new("x"), &info).unwrap()).unwrap()
}

#[test]
fn proc_cgroups_of_hybrid_and_unified_hosts_parse() {
    let hybrid = parse_proc_cgroups(Path::new("h"), &text("proc-cgroups-hybrid.txt")).unwrap();
    assert!(
        hybrid
            .iter()
            .any(|s| s.name == "memory" && s.hierarchy > 0 && s.enabled)
    );
    let unified = parse_proc_cgroups(Path::new("u"), &text("proc-cgroups-unified.txt")).unwrap();
    assert_eq!(unified.len(), 6);
    assert!(unified.iter().all(|s| s.hierarchy == 0));
    assert!(!unified.iter().find(|s| s.name == "memory").unwrap().enabled);
}

#[test]
fn malformed_proc_cgroups_is_a_parse_error() {
    for bad in [
        "cpu 1 2\n",
        "cpu x 2 1\n",
        "cpu 1 2 7\n",
        "cpu 99999999999 1 1\n",
        "cpu 1 2 1 extra\n",
    ] {
        assert!(
            matches!(
                parse_proc_cgroups(Path::new("b"), bad),
                Err(Error::Parse { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn process_cgroups_parse_v1_named_and_unified_lines() {
    let l = parse_process_cgroups(Path::new("h"), &text("proc-pid-cgroup-hybrid.txt")).unwrap();
    assert!(
        l.iter()
            .any(|c| c.name.as_deref() == Some("systemd") && c.controllers.is_empty())
    );
    assert!(l.iter().any(|c| c.controllers == ["memory"]));
    assert!(l.iter().any(|c| c.is_unified()));
    let u = parse_process_cgroups(Path::new("u"), &text("proc-pid-cgroup-unified.txt")).unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].path, "/system.slice/docker-1234.scope");
    // Paths may contain ':'.
    let c = parse_process_cgroups(Path::new("c"), "3:cpu,cpuacct:/a:b\n").unwrap();
    assert_eq!((c[0].controllers.len(), c[0].path.as_str()), (2, "/a:b"));
    for bad in ["garbage\n", "x::/\n", "1:cpu\n", "1:cpu:relative\n"] {
        assert!(
            matches!(
                parse_process_cgroups(Path::new("b"), bad),
                Err(Error::Parse { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        dunnage_cgroups::proc::read_process_cgroups(Some(u32::MAX)),
        Err(Error::NoSuchProcess { .. })
    ));
}

#[test]
fn mountinfo_gives_hybrid_unified_and_container_views() {
    let m = parse_mountinfo(Path::new("h"), &text("mountinfo-hybrid.txt")).unwrap();
    assert_eq!(m.iter().filter(|m| m.unified).count(), 1);
    assert!(m.iter().any(|m| m.controllers == ["cpu"]));
    assert!(
        m.iter()
            .any(|m| m.name.as_deref() == Some("systemd") && m.controllers.is_empty())
    );

    let dir = TempDir::new("fixture-v2").unwrap();
    std::fs::copy(
        fixture("v2/cgroup.controllers"),
        dir.join("cgroup.controllers"),
    )
    .unwrap();
    let h = mountinfo_with("mountinfo-unified.txt", dir.path());
    assert_eq!(h.mode(), Mode::Unified);
    assert!(h.v2_controllers().contains(&Controller::Io));

    let c = parse_mountinfo(Path::new("c"), &text("mountinfo-container.txt")).unwrap();
    assert_eq!(c[0].root, Path::new("/docker/abc"));
    assert_eq!(c[0].controllers, ["cpu", "cpuacct"]);
    assert_eq!(c[1].mount_point, Path::new("/sys/fs/cgroup/my space"));
    assert!(c[1].controllers.is_empty(), "{:?}", c[1]);
    assert_eq!(c[2].controllers, ["net_cls", "net_prio"]);
    let h = Hierarchies::from_mounts(&c).unwrap();
    assert_eq!(h.mode(), Mode::Legacy);

    assert!(matches!(
        parse_mountinfo(Path::new("b"), &text("bad-mountinfo.txt")),
        Err(Error::Parse { .. })
    ));
    assert!(matches!(
        Hierarchies::from_mounts(&[]),
        Err(Error::NotMounted(_))
    ));
}

#[test]
fn v2_stats_from_a_fixture_tree() {
    let h = mountinfo_with("mountinfo-unified.txt", &fixture("v2"));
    let cg = Cgroup::open(&h, &CgroupPath::new("box").unwrap(), &[]).unwrap();
    let s = cg.stats().unwrap();
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage, Duration::from_micros(1500));
    assert_eq!(cpu.throttling.unwrap().throttled_periods, 4);
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.usage, mem.max_usage, mem.limit),
        (1 << 20, Some(2 << 20), Limit::Max)
    );
    assert_eq!((mem.failcnt, mem.oom, mem.oom_kill), (3, Some(2), 1));
    let pids = s.pids.unwrap();
    assert_eq!((pids.current, pids.max), (5, Limit::Value(100)));
    let io = s.io.unwrap();
    assert_eq!(
        (io[0].major, io[0].read_bytes, io[0].write_ops),
        (254, 4096, 2)
    );
    assert_eq!(s.hugetlb.len(), 2);
    assert_eq!(s.hugetlb[0].page_size, "1GB");
    let p = s.pressure.unwrap();
    assert_eq!(p.memory.some.avg10, 1.5);
    assert_eq!(p.io.some.total, Duration::from_micros(12345));
}

#[test]
fn v1_stats_from_a_fixture_tree() {
    let h = v1_host(&fixture("v1"));
    assert_eq!(h.mode(), Mode::Legacy);
    let cg = Cgroup::open(&h, &CgroupPath::new("box").unwrap(), &[]).unwrap();
    let s = cg.stats().unwrap();
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage, Duration::from_millis(3));
    assert_eq!(
        cpu.per_cpu,
        [Duration::from_millis(1), Duration::from_millis(2)]
    );
    assert_eq!(
        cpu.throttling.unwrap().throttled_time,
        Duration::from_millis(2)
    );
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.limit, mem.failcnt, mem.oom_kill, mem.oom),
        (Limit::Max, 7, 3, None)
    );
    assert_eq!(s.pids.unwrap().max, Limit::Max);
    let io = s.io.unwrap();
    assert_eq!(io.len(), 1);
    assert_eq!(
        (
            io[0].read_bytes,
            io[0].write_bytes,
            io[0].read_ops,
            io[0].write_ops
        ),
        (4096, 8192, 1, 2)
    );
    assert!(s.pressure.is_none());
}

/// Copy the fixture tree `name` into a temp dir.
fn copy_tree(name: &str) -> TempDir {
    let dir = TempDir::new("fixture").unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixture(name))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn malformed_stat_files_are_errors_not_zeros() {
    let cases: &[(&str, &str)] = &[
        ("box/cpu.stat", "usage_usec x\n"),
        ("box/cpu.stat", "user_usec 1\n"),
        ("box/memory.current", "-1\n"),
        ("box/memory.events", "oom\n"),
        ("box/pids.max", "lots\n"),
        ("box/io.stat", "254:0 rbytes=abc\n"),
        ("box/io.stat", "nodevice rbytes=1\n"),
        ("box/memory.pressure", "some avg10=x\n"),
        ("box/cpu.pressure", "sometimes avg10=1\n"),
        ("box/hugetlb.2MB.events", "nothing 1\n"),
    ];
    for (file, content) in cases {
        let dir = copy_tree("v2");
        std::fs::write(dir.join("v2").join(file), content).unwrap();
        let h = mountinfo_with("mountinfo-unified.txt", &dir.join("v2"));
        let cg = Cgroup::open(&h, &CgroupPath::new("box").unwrap(), &[]).unwrap();
        assert!(
            matches!(cg.stats(), Err(Error::Parse { .. })),
            "{file}: {content:?} gave {:?}",
            cg.stats()
        );
    }
    let v1_cases: &[(&str, &str)] = &[
        ("blkio/box/blkio.throttle.io_service_bytes", "254:0 Read\n"),
        ("blkio/box/blkio.throttle.io_serviced", "254:0 Read many\n"),
        ("cpuacct/box/cpuacct.usage_percpu", "1 two 3\n"),
        ("memory/box/memory.oom_control", "under_oom 0\n"),
    ];
    for (file, content) in v1_cases {
        let dir = copy_tree("v1");
        std::fs::write(dir.join("v1").join(file), content).unwrap();
        let cg = Cgroup::open(
            &v1_host(&dir.join("v1")),
            &CgroupPath::new("box").unwrap(),
            &[],
        )
        .unwrap();
        assert!(
            matches!(cg.stats(), Err(Error::Parse { .. })),
            "{file}: {content:?}"
        );
    }
    // A missing file of a controller the cgroup has is an I/O error.
    let dir = copy_tree("v1");
    std::fs::remove_file(dir.join("v1/memory/box/memory.failcnt")).unwrap();
    let cg = Cgroup::open(
        &v1_host(&dir.join("v1")),
        &CgroupPath::new("box").unwrap(),
        &[],
    )
    .unwrap();
    assert!(matches!(cg.stats(), Err(Error::Io { .. })));
}

#[test]
fn mountinfo_paths_stay_bytes_escapes_decode_and_hostile_lines_fail_typed() {
    use std::os::unix::ffi::OsStrExt;
    // A v1 hierarchy at a mount point with a space, a tab, a backslash and
    // a byte that is not UTF-8; a cgroup2 mount whose root is not UTF-8;
    // an overlay with a non-UTF-8 lowerdir that must not disturb anything.
    let info: &[u8] = b"22 1 254:1 / / rw - ext4 /dev/vda1 rw\n\
30 22 0:26 / /sys/fs/cgroup/a\\040b\\011\\134\xffc rw,nosuid - cgroup cgroup rw,memory\n\
31 22 0:27 /ctr\\377\xfe /sys/fs/cgroup/unified\\012 rw - cgroup2 cgroup2 rw\n\
32 22 0:28 / /merged rw - overlay overlay rw,lowerdir=/l\xff\\072x\n";
    let m = parse_mountinfo(Path::new("m"), info).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0].mount_point.as_os_str().as_bytes(),
        b"/sys/fs/cgroup/a b\t\\\xffc"
    );
    assert_eq!(m[0].controllers, ["memory"]);
    assert_eq!(m[1].root.as_os_str().as_bytes(), b"/ctr\xff\xfe");
    assert_eq!(
        m[1].mount_point.as_os_str().as_bytes(),
        b"/sys/fs/cgroup/unified\n"
    );
    for bad in [
        &b"30 22 0:26 / /x rw cgroup cgroup rw,memory\n"[..],
        b"30 22 0:26 / /x rw -\n",
        b"30 22 0:26\n",
        b"- - - - - - - - -\n",
        b"30 22 026 / /x rw - cgroup cgroup rw\n",
        b"99999999999 22 0:26 / /x rw - cgroup cgroup rw\n",
        b"\xff\xfe \\\\\\ - \n",
    ] {
        assert!(
            matches!(
                parse_mountinfo(Path::new("bad"), bad),
                Err(Error::Parse { .. })
            ),
            "{bad:?}"
        );
    }
}
