//! Differential test: the same busybox rootfs started through `Command` and
//! through `runc run` with an equivalent config.json (Docker's mounts,
//! masked and read-only paths, five namespaces): the process must see the
//! same mount table (points, types, flags) and the same /dev.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::symlink;
use std::path::Path;

use dunnage_namespaces::{Command, IdMap, Kind, Mount};
use dunnage_testsupport::{TempDir, require_command, require_root, unique_name};

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

/// What the process reports: per mount "point per-mount-options type
/// source super-options",
/// then /dev as "name type major:minor mode".
const SCRIPT: &str = "while read -r id parent dev root point opts rest; do \
       echo \"$point $opts ${rest#*- }\"; \
     done < /proc/self/mountinfo; echo ---; \
     for f in /dev/* /dev/pts/* /dev/shm /dev/mqueue; do \
       stat -c '%n %F %t:%T %a' $f; done; \
     for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/ptmx; do \
       echo \"$l -> $(readlink $l)\"; done";

fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    // Hard linked where it can be: a copy can be "text busy" while a
    // parallel test's fork still holds the writer's fd.
    if std::fs::hard_link("/bin/busybox", dir.join("bin/busybox")).is_err() {
        std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    }
    for a in ["sh", "cat", "ls", "stat", "echo", "readlink"] {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
}

fn json_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

fn config(script: &str, extra: &[Mount], readonly: bool, userns: bool) -> String {
    let mounts: Vec<String> = Mount::docker_defaults()
        .iter()
        .chain(extra)
        .map(|m| {
            let opts: Vec<&str> = m.options.iter().map(String::as_str).collect();
            format!(
                r#"{{"destination":{:?},"type":{:?},"source":{:?},"options":{}}}"#,
                m.destination.to_str().unwrap(),
                m.fstype,
                m.source.to_str().unwrap(),
                json_list(&opts)
            )
        })
        .collect();
    format!(
        r#"{{"ociVersion":"1.0.2","process":{{"terminal":false,"user":{{"uid":0,"gid":0}},
        "args":["/bin/sh","-c",{script:?}],"env":["PATH=/bin"],"cwd":"/",
        "capabilities":{{"bounding":["CAP_SYS_ADMIN"],"effective":["CAP_SYS_ADMIN"],"permitted":["CAP_SYS_ADMIN"]}}}},
        "root":{{"path":"rootfs","readonly":{readonly}}},"hostname":"diff",
        "mounts":[{}],
        "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"network"}},{{"type":"ipc"}},{{"type":"uts"}},{{"type":"mount"}}{}],
        {}"maskedPaths":{},"readonlyPaths":{}}}}}"#,
        mounts.join(","),
        if userns { r#",{"type":"user"}"# } else { "" },
        if userns {
            r#""uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"#
        } else {
            ""
        },
        json_list(MASKED),
        json_list(READONLY)
    )
}

/// The lines of one section.
fn lines(section: &str) -> Vec<String> {
    section.lines().map(str::to_owned).collect()
}

/// Run SCRIPT in the busybox rootfs through runc and through Command with
/// Docker's settings plus `extra` mounts; return (ours, runc's) output.
fn run_both(tag: &str, extra: &[Mount], readonly: bool, userns: bool) -> (String, String) {
    let bundle = TempDir::new(tag).unwrap();
    busybox_rootfs(&bundle.join("rootfs"));
    std::fs::write(
        bundle.join("config.json"),
        config(SCRIPT, extra, readonly, userns),
    )
    .unwrap();
    let state = TempDir::new("runc-state").unwrap();
    let id = unique_name("diff");
    let runc = std::process::Command::new("runc")
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        runc.status.success(),
        "runc: {}",
        String::from_utf8_lossy(&runc.stderr)
    );
    let theirs = String::from_utf8(runc.stdout).unwrap();

    let mut cmd = Command::new("/bin/sh");
    cmd.namespaces(Kind::Mount | Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
        .hostname("diff")
        .rootfs(bundle.join("rootfs"))
        .readonly_rootfs(readonly)
        .mounts(Mount::docker_defaults())
        .mounts(extra.iter().cloned())
        .default_devices(true)
        .env_clear()
        .env("PATH", "/bin")
        .args(["-c", SCRIPT]);
    if userns {
        cmd.namespaces(Kind::User)
            .uid_map([IdMap::new(0, 100_000, 65536)])
            .gid_map([IdMap::new(0, 100_000, 65536)]);
    }
    for p in MASKED {
        cmd.masked_path(p);
    }
    for p in READONLY {
        cmd.readonly_path(p);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), theirs)
}

fn compare(ours: &str, theirs: &str) {
    let (our_mounts, our_dev) = ours.split_once("---\n").unwrap();
    let (their_mounts, their_dev) = theirs.split_once("---\n").unwrap();
    // Deliberate difference: on a hybrid host we also bind the cgroup2
    // `unified` hierarchy, which runc 1.1 leaves out.
    let our_mounts: String = our_mounts
        .lines()
        .filter(|l| !l.starts_with("/sys/fs/cgroup/unified "))
        .map(|l| format!("{l}\n"))
        .collect();
    // The same mounts, in the same order except among the device binds of
    // a user namespace (independent of each other; runc binds them in its
    // own list's order).
    let device_bind = |l: &String| {
        ["null", "zero", "full", "random", "urandom", "tty"]
            .iter()
            .any(|d| l.starts_with(&format!("/dev/{d} ")))
    };
    let ordered = |text: &str| -> Vec<String> {
        lines(text)
            .into_iter()
            .filter(|l| !device_bind(l))
            .collect()
    };
    let sorted = |text: &str| -> Vec<String> {
        let mut v = lines(text);
        v.sort();
        v
    };
    assert_eq!(
        ordered(&our_mounts),
        ordered(their_mounts),
        "mount tables differ\nours:\n{our_mounts}\nrunc:\n{their_mounts}"
    );
    assert_eq!(
        sorted(&our_mounts),
        sorted(their_mounts),
        "mount tables differ\nours:\n{our_mounts}\nrunc:\n{their_mounts}"
    );
    assert_eq!(
        lines(our_dev),
        lines(their_dev),
        "/dev differs\nours:\n{our_dev}\nrunc:\n{their_dev}"
    );
}

fn runc_available() -> bool {
    if !Path::new("/bin/busybox").exists() {
        return dunnage_testsupport::skip("runc diff", "needs busybox-static");
    }
    true
}

#[test]
fn the_process_sees_the_same_mounts_and_dev_as_under_runc() {
    require_root!();
    require_command!("runc");
    if !runc_available() {
        return;
    }
    let (ours, theirs) = run_both("runc-bundle", &[], false, false);
    compare(&ours, &theirs);
}

#[test]
fn a_readonly_root_with_binds_and_tmpfs_options_matches_runc() {
    require_root!();
    require_command!("runc");
    if !runc_available() {
        return;
    }
    let data = TempDir::new("runc-data").unwrap();
    std::fs::create_dir(data.join("dir")).unwrap();
    std::fs::write(data.join("file"), "x").unwrap();
    let extra = [
        Mount::new(
            "tmpfs",
            "/tmp",
            &["nosuid", "nodev", "size=1m", "mode=1777"],
        ),
        Mount::bind(data.join("dir"), "/data", &["rbind", "ro"]),
        Mount::bind(data.join("file"), "/etc/file", &["ro", "nosuid", "noexec"]),
        Mount::bind(data.join("dir"), "/rro", &["rbind", "rro"]),
        Mount::bind(data.join("dir"), "/slave", &["rbind", "rslave", "noatime"]),
    ];
    let (ours, theirs) = run_both("runc-bundle-ro", &extra, true, false);
    compare(&ours, &theirs);
}

#[test]
fn in_a_user_namespace_the_mounts_and_dev_match_runc() {
    require_root!();
    require_command!("runc");
    if !runc_available() {
        return;
    }
    let (ours, theirs) = run_both("runc-bundle-userns", &[], false, true);
    compare(&ours, &theirs);
}
