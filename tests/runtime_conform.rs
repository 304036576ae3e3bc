//! `examples/runtime/` on what the OCI conformance suite (runtime-tools)
//! checks beyond the lifecycle, each beside runc where runc does the same:
//! `memory.kernelTCP`, the order of the device rules, a config without
//! namespaces (the runtime's own are shared), a mount namespace joined by
//! path, and `exec --process` with `noNewPrivileges`, `rlimits` and
//! `user.additionalGids`. Also: a verb on an unknown ID leaves no lock
//! file. Needs root (and runc for the comparisons).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{cgroup_guard, ok, runtime_binary, runtime_bundle, runtime_call};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dunnage_testsupport::{
    ChildGuard, TempDir, detach_unmount, mounts_below, require_command, require_privileged, skip,
    unique_name,
};
use serde_json::json;

/// `run` of `bundle` in the foreground; its output.
fn run(program: &Path, root: &Path, bundle: &Path) -> String {
    let id = unique_name("run");
    ok(&runtime_call(
        program,
        root,
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
    ))
}

/// `create` of `bundle` (output to a file); the container's pid.
fn create(program: &Path, root: &Path, bundle: &Path, id: &str) -> i32 {
    let pid_file = bundle.join("pid");
    let log = std::fs::File::create(bundle.join("out")).unwrap();
    let st = Command::new(program)
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(bundle.join("out")).unwrap_or_default()
    );
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The cgroup v1 directory of `pid` in `controller`, if mounted.
fn v1_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls.split(',').any(|c| c == controller).then_some(path)
    })?;
    let dir = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// `memory.kernelTCP` lands in `memory.kmem.tcp.limit_in_bytes` (crun
/// sets it; runc 1.1 skips it), and the config's device rules come first
/// in `devices.list`, in their order (the suite reads them back so).
#[test]
fn kernel_tcp_and_device_rule_order() {
    let test = "kernel_tcp_and_device_rule_order";
    if !require_privileged(test) {
        return;
    }
    if !Path::new("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes").exists()
        || !Path::new("/sys/fs/cgroup/devices/devices.list").exists()
    {
        skip(
            test,
            "no cgroup v1 memory.kmem.tcp or devices controller here",
        );
        return;
    }
    let tmp = TempDir::new("rt-conform-cg").unwrap();
    let parent = unique_name("rt-conform-cg");
    let _guard = cgroup_guard(&parent);
    let b = tmp.join("bundle");
    runtime_bundle(&b, &["sleep", "100"], &parent, |v| {
        v["linux"]["resources"]["memory"]["kernelTCP"] = json!(4_194_304);
        v["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "minor": 20, "access": "rw"},
            {"allow": true, "type": "b", "major": 10, "minor": 200, "access": "r"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"},
        ]);
    });
    let root = tmp.join("root");
    let id = unique_name("cg");
    let pid = create(&runtime_binary(), &root, &b, &id);
    let mem = v1_dir(pid, "memory").unwrap();
    let tcp = std::fs::read_to_string(mem.join("memory.kmem.tcp.limit_in_bytes")).unwrap();
    let dev = v1_dir(pid, "devices").unwrap();
    let list = std::fs::read_to_string(dev.join("devices.list")).unwrap();
    // runc's update flag changes it.
    let updated = runtime_call(
        &runtime_binary(),
        &root,
        &["update", "--kernel-memory-tcp", "8m", &id],
    );
    let tcp2 = std::fs::read_to_string(mem.join("memory.kmem.tcp.limit_in_bytes")).unwrap();
    ok(&runtime_call(
        &runtime_binary(),
        &root,
        &["delete", "--force", &id],
    ));
    ok(&updated);
    assert_eq!(tcp.trim(), "4194304");
    assert_eq!(tcp2.trim(), "8388608");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[..3],
        ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"],
        "{list}"
    );
    // The deny after runc's default allowances still holds: /dev/null is
    // readable, not writable.
    assert!(lines.contains(&"c 1:3 rm"), "{list}");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

/// The namespace links of the process this prints them for.
const NS_LINKS: &str =
    "for n in mnt pid uts ipc net; do readlink /proc/self/ns/$n; done; cat /marker";

fn own_links() -> String {
    let mut out = String::new();
    for n in ["mnt", "pid", "uts", "ipc", "net"] {
        let l = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        out.push_str(&format!("{}\n", l.display()));
    }
    out.push_str("in the rootfs\n");
    out
}

/// Without namespaces in the config the container shares the runtime's
/// (runc's and crun's reading of the spec): same links as runc, its rootfs
/// entered with chroot, and nothing left mounted on the host by ours.
#[test]
fn no_namespaces_share_the_runtimes() {
    let test = "no_namespaces_share_the_runtimes";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("rt-conform-nons").unwrap();
    let parent = unique_name("rt-conform-nons");
    let _guard = cgroup_guard(&parent);
    let b = tmp.join("bundle");
    runtime_bundle(&b, &["sh", "-c", NS_LINKS], &parent, |v| {
        v["linux"]["namespaces"] = json!([]);
        // runc refuses masked and read-only paths without a mount
        // namespace of its own ("unable to restrict sys entries").
        for key in ["sysctl", "maskedPaths", "readonlyPaths"] {
            v["linux"].as_object_mut().unwrap().remove(key);
        }
        v.as_object_mut().unwrap().remove("hostname");
    });
    let ours = run(&runtime_binary(), &tmp.join("ours"), &b);
    // Ours unmounted what it made in this (the host's) mount namespace.
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
    let runc = run(Path::new("runc"), &tmp.join("runc"), &b);
    // runc leaves its mounts on the host: ours to clean up.
    for m in mounts_below(&b) {
        let _ = detach_unmount(&m);
    }
    assert_eq!(ours, runc, "ours, then runc's");
    assert_eq!(ours, own_links());
}

/// A mount namespace joined by path (`unshare -m`'s): the rootfs is set
/// up in it; the same links and files as with runc.
#[test]
fn mount_namespace_joined_by_path() {
    let test = "mount_namespace_joined_by_path";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("rt-conform-mntns").unwrap();
    let parent = unique_name("rt-conform-mntns");
    let _guard = cgroup_guard(&parent);
    let mut outs = Vec::new();
    for program in [runtime_binary(), PathBuf::from("runc")] {
        // Reaped (and killed first) by the ChildGuard.
        #[allow(clippy::zombie_processes)]
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let holder = ChildGuard::new(holder.id() as i32);
        let ns = format!("/proc/{}/ns/mnt", holder.pid());
        let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        // Until unshare has made the namespace private and become sleep:
        // the namespace link changes before the propagation does.
        let comm = format!("/proc/{}/comm", holder.pid());
        let mut tries = 0;
        while std::fs::read_to_string(&comm).unwrap() != "sleep\n" {
            tries += 1;
            assert!(tries < 1000, "unshare never ran sleep");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let theirs = std::fs::read_link(&ns).unwrap();
        assert_ne!(theirs, own, "unshare made no mount namespace");
        let b = tmp.join(unique_name("bundle"));
        runtime_bundle(
            &b,
            &["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker"],
            &parent,
            |v| {
                for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                    if n["type"] == "mount" {
                        n["path"] = json!(ns);
                    }
                }
            },
        );
        let root = tmp.join(unique_name("root"));
        let out = run(&program, &root, &b);
        assert_eq!(out, format!("{}\nin the rootfs\n", theirs.display()));
        outs.push(out.replace(&theirs.display().to_string(), "NS"));
        // runc pivot_roots in the joined namespace, leaving it no usable
        // root for another container: the exec check is ours only.
        if program != runtime_binary() {
            continue;
        }
        // An exec lands in the container's root too, not the namespace's.
        let id = unique_name("exec");
        std::fs::remove_file(b.join("config.json")).unwrap();
        let rootfs = b.join("rootfs");
        std::fs::remove_dir_all(&rootfs).unwrap();
        runtime_bundle(&b, &["sleep", "100"], &parent, |v| {
            for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "mount" {
                    n["path"] = json!(ns);
                }
            }
        });
        create(&program, &root, &b, &id);
        ok(&runtime_call(&program, &root, &["start", &id]));
        let exec = runtime_call(&program, &root, &["exec", &id, "cat", "/marker"]);
        ok(&runtime_call(&program, &root, &["delete", "--force", &id]));
        assert_eq!(ok(&exec), "in the rootfs\n");
        drop(holder);
    }
    assert_eq!(outs[0], outs[1], "ours, then runc's");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

/// `exec --process` honours `noNewPrivileges`, `rlimits` and
/// `user.additionalGids` as runc does.
#[test]
fn exec_process_json_knobs_match_runc() {
    let test = "exec_process_json_knobs_match_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("rt-conform-exec").unwrap();
    let parent = unique_name("rt-conform-exec");
    let _guard = cgroup_guard(&parent);
    let process = tmp.join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "grep -E '^(NoNewPrivs|Groups|Uid|Gid)' /proc/self/status; grep 'open files' /proc/self/limits"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]},
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}],
        }))
        .unwrap(),
    )
    .unwrap();
    let mut outs = Vec::new();
    for (program, name) in [(runtime_binary(), "ours"), (PathBuf::from("runc"), "runc")] {
        let b = tmp.join(format!("bundle-{name}"));
        runtime_bundle(&b, &["sleep", "100"], &parent, |v| {
            v["process"]["noNewPrivileges"] = json!(false);
        });
        let root = tmp.join(name);
        let id = unique_name(name);
        create(&program, &root, &b, &id);
        ok(&runtime_call(&program, &root, &["start", &id]));
        let out = runtime_call(
            &program,
            &root,
            &["exec", "--process", process.to_str().unwrap(), &id],
        );
        ok(&runtime_call(&program, &root, &["delete", "--force", &id]));
        outs.push(ok(&out));
    }
    // runc's soft RLIMIT_NOFILE in an exec is sometimes the hard limit
    // (its Go runtime raises its own soft limit and can carry that over
    // the exec): compared without it, checked on ours exactly.
    let status = |out: &str| -> String {
        out.lines()
            .filter(|l| !l.starts_with("Max open files"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(status(&outs[0]), status(&outs[1]), "ours, then runc's");
    let ours = &outs[0];
    assert!(ours.contains("NoNewPrivs:\t1"), "{ours}");
    assert!(ours.contains("Groups:\t5 6"), "{ours}");
    let nofile: Vec<&str> = ours
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(nofile[3..5], ["123", "456"], "{ours}");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

/// A verb on an ID that does not exist fails and leaves nothing named
/// after it.
#[test]
fn unknown_id_leaves_nothing() {
    let test = "unknown_id_leaves_nothing";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("rt-conform-locks").unwrap();
    let root = tmp.join("root");
    fn names(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                names(&e.path(), out);
            }
        }
    }
    for verb in [
        &["kill", "nosuch", "KILL"][..],
        &["start", "nosuch"],
        &["pause", "nosuch"],
        &["delete", "nosuch"],
        &["delete", "--force", "nosuch"],
        &["update", "--memory", "1m", "nosuch"],
    ] {
        let o = runtime_call(&runtime_binary(), &root, verb);
        let expect_ok = verb.contains(&"--force");
        assert_eq!(o.status.success(), expect_ok, "{verb:?}");
        let mut left = Vec::new();
        names(&root, &mut left);
        assert!(
            !left.iter().any(|n| n.contains("nosuch")),
            "{verb:?} left {left:?}"
        );
    }
}

/// The ID lock: a call on an ID waits while another process holds that
/// ID's lock; a call on another ID does not.
#[test]
fn calls_on_one_id_wait_for_each_other() {
    let test = "calls_on_one_id_wait_for_each_other";
    if !require_privileged(test) || !require_command(test, "python3") {
        return;
    }
    let tmp = TempDir::new("rt-conform-idlock").unwrap();
    let root = tmp.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // Hold the byte of ID "held" the way the runtime takes it, from a
    // python child (its own open file description).
    let script = r#"
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
h = 0xcbf29ce484222325
for b in b"held":
    h = ((h ^ b) * 0x100000001b3) % 2**64
off = h >> 2
F_OFD_SETLKW = 38
fcntl.fcntl(fd, F_OFD_SETLKW, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, off, 1, 0))
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"#;
    let mut holder = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(root.join("ids.lock"))
        .arg("60")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    // Another ID: done while the holder still holds its byte.
    let o = runtime_call(&runtime_binary(), &root, &["delete", "--force", "other"]);
    assert!(o.status.success());
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder ended before the call on another ID did"
    );
    // The held ID: still waiting a moment later, done once the holder
    // ends.
    let mut waiting = Command::new(runtime_binary())
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", "held"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the call on the held ID did not wait"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(waiting.wait().unwrap().success());
}

/// A host whose container cgroup is v1 only (here: the hybrid unified
/// hierarchy unmounted in a private mount namespace, as the benchmark
/// runs crun): the facade makes the cgroup while the child sets itself up
/// and the child joins it by path. The process is in the cgroup in every
/// hierarchy, with its limits, and the cgroup goes with the container.
#[test]
fn a_v1_only_cgroup_made_while_the_child_sets_up() {
    let test = "a_v1_only_cgroup_made_while_the_child_sets_up";
    if !require_privileged(test) || !require_command(test, "unshare") {
        return;
    }
    let tmp = TempDir::new("rt-conform-v1only").unwrap();
    let parent = unique_name("rt-conform-v1only");
    let _guard = cgroup_guard(&parent);
    let b = tmp.join("bundle");
    runtime_bundle(
        &b,
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max",
        ],
        &parent,
        |v| {
            v["linux"]["resources"]["pids"] = json!({"limit": 77});
        },
    );
    let root = tmp.join("root");
    let script = format!(
        "umount /sys/fs/cgroup/unified 2>/dev/null; exec {} --root {} run --bundle {} v1only",
        runtime_binary().display(),
        root.display(),
        b.display()
    );
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = ok(&o);
    let cgroups: Vec<&str> = out.lines().filter(|l| l.contains(':')).collect();
    // Every v1 hierarchy with a controller shows the container's cgroup.
    let mine = cgroups
        .iter()
        .filter(|l| !l.starts_with("0::") && !l.contains("name="))
        .collect::<Vec<_>>();
    assert!(!mine.is_empty(), "{out}");
    for l in &mine {
        assert!(l.contains(&format!("/{parent}/")), "{l} in\n{out}");
    }
    assert!(out.lines().any(|l| l == "77"), "{out}");
    // Gone with the container.
    for d in common::cgroup_dirs(&parent) {
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} still has {left:?}", d.display());
    }
}
