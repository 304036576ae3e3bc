//! Differential: the same busybox rootfs imported into a private dockerd
//! and into a dunnage store; for a list of probes, `docker run --rm
//! --network none` and a `Container` with the same settings print the same
//! thing and exit with the same code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use dunnage::container::{Container, ContainerStore, Seccomp, StdioMode};
use dunnage::image::ImageChanges;
use dunnage_testsupport::{
    CgroupGuard, Dockerd, TempDir, detach_unmount, mounts_below, require_command,
    require_privileged, unique_name,
};

const IMAGE: &str = "dunnage-test/diff:1";

fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "home/web"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in ["sh", "sleep"] {
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

/// One probe: docker flags, the same settings on the builder, a script.
struct Probe {
    flags: &'static [&'static str],
    set: fn(&mut Container),
    script: &'static str,
}

fn probes() -> Vec<Probe> {
    fn none(_: &mut Container) {}
    vec![
        Probe {
            flags: &[],
            set: none,
            script: "id; hostname; cat /etc/hostname; pwd",
        },
        Probe {
            flags: &[],
            set: none,
            script: "env | sort",
        },
        Probe {
            flags: &["-e", "FOO=bar", "-w", "/tmp", "-u", "web"],
            set: |c| {
                c.env("FOO", "bar").current_dir("/tmp").user("web");
            },
            script: "env | sort; pwd; id",
        },
        Probe {
            flags: &["-u", "1000:50"],
            set: |c| {
                c.user("1000:50");
            },
            script: "id",
        },
        Probe {
            flags: &[],
            set: none,
            script: "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
        },
        Probe {
            flags: &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
            set: |c| {
                c.cap_drop("ALL").cap_add("NET_ADMIN");
            },
            script: "grep -E '^Cap' /proc/self/status",
        },
        Probe {
            flags: &[
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "no-new-privileges",
            ],
            set: |c| {
                c.seccomp(Seccomp::Unconfined).no_new_privileges(true);
            },
            script: "grep -E '^(NoNewPrivs|Seccomp)' /proc/self/status",
        },
        Probe {
            flags: &[],
            set: none,
            script: "ulimit -a",
        },
        Probe {
            flags: &[],
            set: none,
            script: "for f in /dev/* /dev/pts/* /dev/shm /dev/mqueue; do stat -c '%n %F %a %t %T %u %g' $f; done",
        },
        Probe {
            flags: &[],
            set: none,
            // Mount points, types and options; the root's overlay options
            // name store paths and are left out.
            script: "awk '$2 == \"/\" {print $2, $3; next} {print $2, $3, $4}' /proc/self/mounts",
        },
        Probe {
            flags: &["--read-only"],
            set: |c| {
                c.readonly_rootfs(true);
            },
            script: "touch /x; echo $?; touch /tmp/x; echo $?",
        },
        Probe {
            flags: &[],
            set: none,
            script: "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/x; echo $?; exit 3",
        },
        Probe {
            flags: &["-m", "16m"],
            set: |c| {
                c.memory(16 << 20);
            },
            script: "a=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived",
        },
        Probe {
            flags: &[],
            set: none,
            script: "no-such-command",
        },
    ]
}

#[test]
fn docker_and_dunnage_agree() {
    let test = "docker_and_dunnage_agree";
    if !require_privileged(test) || !require_command(test, "dockerd") {
        return;
    }
    let tmp = TempDir::new("diff").unwrap();
    let tar = busybox_tar(tmp.path());
    let d = Dockerd::start("diff").unwrap();
    let out = d
        .docker()
        .args(["import", "-c", "ENV PATH=/bin"])
        .arg(&tar)
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = ContainerStore::open(tmp.join("store")).unwrap();
    let mut changes = ImageChanges {
        reference: Some(IMAGE.parse().unwrap()),
        ..ImageChanges::default()
    };
    changes.add_instruction("ENV PATH=/bin").unwrap();
    store.images().unwrap().import(&tar, &changes).unwrap();
    let parent = unique_name("diff");
    let mut guard = CgroupGuard::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(e.path().join(&parent));
    }
    guard.add(Path::new("/sys/fs/cgroup").join(&parent));

    let mut failures = Vec::new();
    for p in probes() {
        let out = d
            .docker()
            .args(["run", "--rm", "--network", "none", "-h", "box"])
            .args(p.flags)
            .args([IMAGE, "sh", "-c", p.script])
            .output()
            .unwrap();
        let docker = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        );
        let mut c = Container::image(IMAGE);
        c.cgroup_parent(&parent)
            .hostname("box")
            .args(["sh", "-c", p.script])
            .stdout(StdioMode::Piped)
            .stderr(StdioMode::Null);
        (p.set)(&mut c);
        let mut h = c.create(&store).unwrap();
        let mut stdout = h.take_stdout().unwrap();
        h.start().unwrap();
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        let code = h.wait().unwrap().code;
        h.remove(false).unwrap();
        // Known difference: on a hybrid host the child's setup (crate
        // dunnage-namespaces) also binds the cgroup2 `unified` hierarchy
        // under /sys/fs/cgroup; runc leaves it out.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("/sys/fs/cgroup/unified cgroup2 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let ours = (text, code);
        if ours != docker {
            failures.push(format!(
                "probe {:?} {:?}\n--- docker {:?}\n{}\n--- dunnage {:?}\n{}",
                p.flags, p.script, docker.1, docker.0, ours.1, ours.0
            ));
        }
    }
    // Commit in dunnage, save, docker load, docker run: the change is there.
    let mut c = Container::image(IMAGE);
    let mut h = c
        .cgroup_parent(&parent)
        .args(["sh", "-c", "echo committed > /etc/motd"])
        .create(&store)
        .unwrap();
    h.start().unwrap();
    assert_eq!(h.wait().unwrap().code, Some(0));
    let changes = ImageChanges {
        reference: Some("dunnage-test/committed:1".parse().unwrap()),
        ..ImageChanges::default()
    };
    h.commit(&changes).unwrap();
    h.remove(false).unwrap();
    let archive = tmp.join("committed.tar");
    let file = std::fs::File::create(&archive).unwrap();
    store
        .images()
        .unwrap()
        .save(&["dunnage-test/committed:1"], file)
        .unwrap();
    let out = d
        .docker()
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d
        .docker()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "dunnage-test/committed:1",
            "sh",
            "-c",
            "cat /etc/motd",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "committed\n");

    let ddir = d.stop().unwrap();
    for m in mounts_below(ddir.path()).into_iter().rev() {
        let _ = detach_unmount(&m);
    }
    drop(ddir);
    assert!(store.list().unwrap().is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
