//! `examples/cgtools.rs` against cgroup-tools on the same machine:
//! `lscgroup`, `cgget` and `cgset` must behave and print alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_testsupport::{
    CgroupGuard, example_binary, require_command, require_root, unique_name,
};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The built example, for this test's profile.
fn cgtools() -> PathBuf {
    example_binary("cgtools")
}

fn run(program: &str, args: &[&str]) -> Output {
    let mut cmd = if program == "cgtools" {
        let mut c = Command::new(cgtools());
        c.arg(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    cmd.output().unwrap()
}

/// Run `args` with cgroup-tools and with cgtools; same stdout and status.
fn same(args: &[&str]) -> String {
    let theirs = run("cgroup-tools", args);
    let ours = run("cgtools", args);
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(text(&ours), text(&theirs), "stdout of {args:?}");
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "status of {args:?}"
    );
    text(&ours)
}

fn only_v1_memory() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup cgroup ") && l.ends_with(",memory"))
}

#[test]
fn lscgroup_cgget_and_cgset_match_cgroup_tools() {
    require_root!();
    require_command!("lscgroup");
    if !only_v1_memory() {
        // The comparisons below use v1 memory files (this machine's layout).
        return;
    }
    let top = unique_name("cgtools");
    let mut guard = CgroupGuard::new();
    guard.add(format!("/sys/fs/cgroup/memory/{top}"));
    guard.add(format!("/sys/fs/cgroup/pids/{top}"));
    let ok = run(
        "cgtools",
        &[
            "cgcreate",
            "-g",
            &format!("memory,pids:/{top}/a/b"),
            "-g",
            &format!("memory:{top}/c"),
        ],
    );
    assert!(ok.status.success(), "{ok:?}");

    // The whole tree (other programs may create cgroups meanwhile: retry).
    let mut tries = 0;
    while run("cgtools", &["lscgroup"]).stdout != run("cgroup-tools", &["lscgroup"]).stdout {
        tries += 1;
        assert!(tries < 5, "lscgroup differs");
    }
    let sub = same(&["lscgroup", &format!("memory:/{top}")]);
    assert_eq!(sub.lines().count(), 4, "{sub}");
    same(&["lscgroup", &format!("pids:{top}/a")]);

    let a = format!("{top}/a");
    // cgset by one, cgget by both.
    assert!(
        run(
            "cgtools",
            &[
                "cgset",
                "-r",
                "memory.limit_in_bytes=64M",
                "-r",
                "pids.max=9",
                &a
            ]
        )
        .status
        .success()
    );
    let out = same(&["cgget", "-r", "memory.limit_in_bytes", "-r", "pids.max", &a]);
    assert_eq!(
        out,
        format!("{a}:\nmemory.limit_in_bytes: 67108864\npids.max: 9\n\n")
    );
    assert!(
        run("cgroup-tools", &["cgset", "-r", "pids.max=11", &a])
            .status
            .success()
    );
    same(&["cgget", "-n", "-r", "pids.max", &a, &format!("/{top}")]);
    same(&["cgget", "-v", "-r", "pids.max", &a]);
    same(&[
        "cgget",
        "-n",
        "-v",
        "-r",
        "pids.max",
        "-r",
        "memory.limit_in_bytes",
        &a,
    ]);
    same(&["cgget", "-r", "memory.stat", &a]); // a multi-line value
    // Failures: an unknown file, a cgroup that does not exist, a bad value.
    same(&["cgget", "-r", "pids.nonexistent", &a]);
    same(&["cgget", "-r", "pids.max", &format!("{top}/missing")]);
    let bad_theirs = run("cgroup-tools", &["cgset", "-r", "pids.max=abc", &a]);
    let bad_ours = run("cgtools", &["cgset", "-r", "pids.max=abc", &a]);
    assert_eq!(bad_ours.status.code(), bad_theirs.status.code());
    assert_eq!(bad_ours.stderr, bad_theirs.stderr);
    let missing = run("cgtools", &["cgset", "-r", "pids.nonexistent=1", &a]);
    assert_eq!(
        missing.status.code(),
        run("cgroup-tools", &["cgset", "-r", "pids.nonexistent=1", &a])
            .status
            .code()
    );
    assert!(
        run(
            "cgtools",
            &["cgdelete", "-r", "-g", &format!("memory,pids:{top}")]
        )
        .status
        .success()
    );
    assert!(!PathBuf::from(format!("/sys/fs/cgroup/memory/{top}")).exists());
}

#[test]
fn lssubsys_lists_every_subsystem_with_its_mount_point() {
    require_root!();
    let out = run("cgtools", &["lssubsys", "-am"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let procs = std::fs::read_to_string("/proc/cgroups").unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for name in procs
        .lines()
        .skip(1)
        .filter(|l| l.ends_with('1'))
        .filter_map(|l| l.split('\t').next())
    {
        let line = text
            .lines()
            .find(|l| l.split(' ').next().unwrap().split(',').any(|n| n == name))
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        if let Some(mount) = line.split(' ').nth(1) {
            assert!(mountinfo.contains(&format!(" {mount} ")), "{line}");
        }
    }
}

#[test]
fn cgexec_and_cgclassify_place_processes() {
    require_root!();
    let top = unique_name("cgexec");
    let mut guard = CgroupGuard::new();
    for d in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(d.path().join(&top));
    }
    assert!(
        run("cgtools", &["cgcreate", "-g", &format!("pids:{top}")])
            .status
            .success()
    );
    let out = run(
        "cgtools",
        &[
            "cgexec",
            "-g",
            &format!("pids:{top}"),
            "cat",
            "/proc/self/cgroup",
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("pids") && l.ends_with(&format!("/{top}"))
                || l.starts_with("0::") && l.ends_with(&format!("/{top}"))),
        "{text}"
    );
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id().to_string();
    let ok = run(
        "cgtools",
        &["cgclassify", "-g", &format!("pids:{top}"), &pid],
    );
    assert!(ok.status.success(), "{ok:?}");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("/{top}\n")), "{own}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `lssubsys` on a legacy (v1-only) host, from fixture files: what
/// cgroup-tools prints there.
#[test]
fn lssubsys_prints_a_legacy_host_as_cgroup_tools_does() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cgroups/tests/fixtures");
    let lssubsys = |flags: &str| {
        let out = Command::new(cgtools())
            .args(["lssubsys", flags])
            .env("CGTOOLS_MOUNTINFO", fixtures.join("mountinfo-legacy.txt"))
            .env(
                "CGTOOLS_PROC_CGROUPS",
                fixtures.join("proc-cgroups-legacy.txt"),
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // Unmounted subsystems first (by name, only with -a); then each
    // hierarchy, co-mounted subsystems joined by commas, in /proc/cgroups
    // order, with the first mount point.
    let mounted = "\
cpuset /sys/fs/cgroup/cpuset
cpu,cpuacct /sys/fs/cgroup/cpu,cpuacct
blkio /sys/fs/cgroup/blkio
memory /sys/fs/cgroup/memory
devices /sys/fs/cgroup/devices
freezer /sys/fs/cgroup/freezer
net_cls,net_prio /sys/fs/cgroup/net_cls,net_prio
perf_event /sys/fs/cgroup/perf_event
pids /sys/fs/cgroup/pids
";
    assert_eq!(lssubsys("-am"), format!("hugetlb\nrdma\n{mounted}"));
    assert_eq!(lssubsys("-m"), mounted);
    assert_eq!(
        lssubsys("-i"),
        "cpuset 4\ncpu,cpuacct 3\nblkio 2\nmemory 7\ndevices 5\nfreezer 6\n\
         net_cls,net_prio 8\nperf_event 9\npids 10\n"
    );
    assert!(lssubsys("-a").starts_with("hugetlb\nrdma\ncpuset\ncpu,cpuacct\n"));
}
