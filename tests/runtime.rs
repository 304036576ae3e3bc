//! `examples/runtime/`, the runc-compatible OCI runtime, against runc on
//! the same busybox bundle: the lifecycle verbs give the same outputs
//! (after normalising IDs, pids, times and paths), `create` leaves the
//! init alive and waiting after the runtime exits, hooks get the state on
//! stdin, errors go to the `--log` file as JSON lines. Needs root and
//! runc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{cgroup_guard, ok, runtime_binary, runtime_bundle, runtime_call};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dunnage_testsupport::{
    TempDir, mounts_below, require_command, require_privileged, unique_name,
};
use serde_json::Value;

/// One runtime (ours or runc) with its own root.
struct Rt {
    program: PathBuf,
    root: PathBuf,
    out: PathBuf,
}

impl Rt {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Run a verb that ends (no container output on our pipes).
    fn call(&self, args: &[&str]) -> Output {
        runtime_call(&self.program, &self.root, args)
    }

    /// `create`: the init inherits stdout and stderr, so they go to a file
    /// (a pipe would stay open as long as the container).
    fn create(&self, bundle: &Path, id: &str, pid_file: &Path) -> std::process::ExitStatus {
        let log = std::fs::File::create(&self.out).unwrap();
        self.cmd(&["create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap()
    }
}

/// The state JSON with the fields that differ between runs normalised.
fn norm_state(text: &str, id: &str, bundle: &Path) -> Value {
    let mut v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["id"], id, "{text}");
    assert_eq!(v["bundle"], bundle.to_str().unwrap(), "{text}");
    assert!(
        v["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{text}"
    );
    let pid = v["pid"].as_i64().unwrap();
    v["pid"] = Value::from(i64::from(pid > 0));
    for k in ["id", "bundle", "rootfs", "created", "ociVersion"] {
        v[k] = Value::Null;
    }
    v
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// The lifecycle on both runtimes: what each step prints, normalised.
fn lifecycle(rt: &Rt, bundle: &Path, id: &str, tmp: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    let pid_file = tmp.join(format!("{id}.pid"));
    assert!(
        rt.create(bundle, id, &pid_file).success(),
        "{}",
        std::fs::read_to_string(&rt.out).unwrap()
    );
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert!(!pid_text.ends_with('\n'), "{pid_text:?}");
    let pid: i32 = pid_text.parse().unwrap();
    // The runtime has exited; the init waits.
    assert!(alive(pid), "init {pid} gone after create");
    let st = |seen: &mut Vec<String>| {
        let v = norm_state(&ok(&rt.call(&["state", id])), id, bundle);
        seen.push(v.to_string());
    };
    st(&mut seen);
    // A second create of the same ID is refused.
    let again = rt.create(bundle, id, &tmp.join("again.pid"));
    seen.push(format!("create again: {}", again.success()));
    ok(&rt.call(&["start", id]));
    st(&mut seen);
    let ps: Vec<i32> =
        serde_json::from_str(&ok(&rt.call(&["ps", "--format", "json", id]))).unwrap();
    seen.push(format!("ps has init: {}", ps.contains(&pid)));
    ok(&rt.call(&["pause", id]));
    st(&mut seen);
    seen.push(format!(
        "pause twice: {}",
        rt.call(&["pause", id]).status.success()
    ));
    ok(&rt.call(&["resume", id]));
    st(&mut seen);
    let list: Value = serde_json::from_str(&ok(&rt.call(&["list", "--format", "json"]))).unwrap();
    seen.push(format!(
        "list: {} {}",
        list[0]["id"] == id,
        list[0]["status"]
    ));
    seen.push(format!(
        "delete running: {}",
        rt.call(&["delete", id]).status.success()
    ));
    ok(&rt.call(&["kill", id, "KILL"]));
    // The init is our child's child: wait for it to end (zombie or gone).
    while alive(pid) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    st(&mut seen);
    seen.push(format!(
        "kill stopped: {}",
        rt.call(&["kill", id, "9"]).status.success()
    ));
    ok(&rt.call(&["delete", id]));
    seen.push(format!(
        "state gone: {}",
        rt.call(&["state", id]).status.success()
    ));
    seen.push(format!(
        "delete gone: {}",
        rt.call(&["delete", id]).status.success()
    ));
    seen.push(format!(
        "delete -f gone: {}",
        rt.call(&["delete", "--force", id]).status.success()
    ));
    seen
}

#[test]
fn lifecycle_matches_runc() {
    let test = "lifecycle_matches_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("runtime").unwrap();
    let parent = unique_name("runtime");
    let _guard = cgroup_guard(&parent);
    let bundle = tmp.join("bundle");
    runtime_bundle(&bundle, &["sleep", "1000"], &parent, |_| {});
    let ours = Rt {
        program: runtime_binary(),
        root: tmp.join("ours"),
        out: tmp.join("ours.out"),
    };
    let runc = Rt {
        program: "runc".into(),
        root: tmp.join("runc"),
        out: tmp.join("runc.out"),
    };
    let id_ours = unique_name("ours");
    let id_runc = unique_name("runc");
    let a = lifecycle(&ours, &bundle, &id_ours, tmp.path());
    let b = lifecycle(&runc, &bundle, &id_runc, tmp.path());
    assert_eq!(a, b, "ours:\n{a:#?}\nrunc:\n{b:#?}");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn run_in_foreground_matches_runc() {
    let test = "run_in_foreground_matches_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("runtime-run").unwrap();
    let parent = unique_name("runtime-run");
    let _guard = cgroup_guard(&parent);
    let bundle = tmp.join("bundle");
    runtime_bundle(
        &bundle,
        &["sh", "-c", "echo hi; echo err >&2; exit 3"],
        &parent,
        |_| {},
    );
    let mut outs = Vec::new();
    for (program, root) in [(runtime_binary(), "ours"), ("runc".into(), "runc")] {
        let id = unique_name(root);
        let o = Command::new(&program)
            .arg("--root")
            .arg(tmp.join(root))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // `run` deletes the container at the end.
        let listed = Command::new(&program)
            .arg("--root")
            .arg(tmp.join(root))
            .args(["list", "--format", "json"])
            .output()
            .unwrap();
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap_or(Value::Null);
        outs.push((
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            listed.as_array().map_or(0, Vec::len),
        ));
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0].0, Some(3));
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn hooks_get_the_state_and_errors_are_json_lines() {
    let test = "hooks_get_the_state_and_errors_are_json_lines";
    if !require_privileged(test) {
        return;
    }
    let tmp = TempDir::new("runtime-hooks").unwrap();
    let parent = unique_name("runtime-hooks");
    let _guard = cgroup_guard(&parent);
    let bundle = tmp.join("bundle");
    runtime_bundle(&bundle, &["true"], &parent, |_| {});
    let path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let hook = |kind: &str| {
        let out = tmp.join(kind);
        serde_json::json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$HOOKENV\" >> {}", out.display(), out.display())],
            "env": ["HOOKENV=set"],
            "timeout": 10
        }])
    };
    cfg["hooks"] = serde_json::json!({
        "createRuntime": hook("createRuntime"),
        "prestart": hook("prestart"),
        "poststart": hook("poststart"),
        "poststop": hook("poststop"),
    });
    cfg["annotations"] = serde_json::json!({"org.example.key": "value"});
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let rt = Rt {
        program: runtime_binary(),
        root: tmp.join("ours"),
        out: tmp.join("ours.out"),
    };
    let id = unique_name("hooks");
    assert!(rt.create(&bundle, &id, &tmp.join("pid")).success());
    let state: Value = serde_json::from_str(&ok(&rt.call(&["state", &id]))).unwrap();
    assert_eq!(state["annotations"]["org.example.key"], "value");
    ok(&rt.call(&["start", &id]));
    ok(&rt.call(&["delete", "--force", &id]));
    for (kind, status) in [
        ("createRuntime", "created"),
        ("prestart", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = std::fs::read_to_string(tmp.join(kind)).unwrap();
        let (json, env) = text.rsplit_once('}').unwrap();
        let v: Value = serde_json::from_str(&format!("{json}}}")).unwrap();
        assert_eq!(v["id"], id.as_str(), "{kind}: {text}");
        // poststart may see the short-lived `true` already ended.
        if kind != "poststart" {
            assert_eq!(v["status"], status, "{kind}: {text}");
        }
        assert_eq!(v["annotations"]["org.example.key"], "value", "{kind}");
        assert_eq!(env.trim(), "set", "{kind}: {text}");
    }

    // A hook that fails undoes the create; a timed-out one is killed.
    cfg["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}]});
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let id = unique_name("hook-timeout");
    assert!(!rt.create(&bundle, &id, &tmp.join("pid2")).success());
    assert!(!rt.call(&["state", &id]).status.success());

    // Errors as JSON lines in --log with --log-format json.
    let log = tmp.join("log.json");
    let o = rt
        .cmd(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "no-such",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().unwrap().contains("does not exist"),
        "{line}"
    );
    assert!(line["time"].is_string());

    // A config.json that is not JSON is a clear error, nothing made.
    std::fs::write(&path, b"{not json").unwrap();
    let id = unique_name("bad");
    assert!(!rt.create(&bundle, &id, &tmp.join("pid3")).success());
    let out = std::fs::read_to_string(&rt.out).unwrap();
    assert!(out.contains("config.json"), "{out}");
    let list: Value = serde_json::from_str(&ok(&rt.call(&["list", "--format", "json"]))).unwrap();
    assert_eq!(list, serde_json::json!([]));
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn version_features_spec_and_usage_errors() {
    let tmp = TempDir::new("runtime-spec").unwrap();
    let rt = Rt {
        program: runtime_binary(),
        root: tmp.join("root"),
        out: PathBuf::new(),
    };
    let v = ok(&Command::new(&rt.program).arg("--version").output().unwrap());
    assert!(v.starts_with("runtime version "), "{v}");
    assert!(v.contains("\nspec: 1.0.2"), "{v}");
    let f: Value = serde_json::from_str(&ok(&Command::new(&rt.program)
        .arg("features")
        .output()
        .unwrap()))
    .unwrap();
    assert!(f["ociVersionMax"].is_string(), "{f}");
    ok(&Command::new(&rt.program)
        .args(["spec", "--bundle"])
        .arg(tmp.path())
        .output()
        .unwrap());
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(tmp.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
    // A second spec does not overwrite.
    assert!(
        !Command::new(&rt.program)
            .args(["spec", "--bundle"])
            .arg(tmp.path())
            .status()
            .unwrap()
            .success()
    );
    for bad in [
        &["--systemd-cgroup", "state", "x"][..],
        &["--log-format", "xml", "state", "x"],
        &["state"],
        &["state", "../x"],
        &["kill", "x", "NOSUCHSIG"],
        &["create", "--bundle"],
        &["no-such-verb"],
    ] {
        let o = rt.cmd(bad).output().unwrap();
        assert!(!o.status.success(), "{bad:?}");
        assert!(!o.stderr.is_empty(), "{bad:?}");
    }
}

/// `update` (flags and `--resources -`), then `events --stats`: the limits
/// seen are the same as runc's.
fn update_and_stats(rt: &Rt, bundle: &Path, id: &str, tmp: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    assert!(
        rt.create(bundle, id, &tmp.join(format!("{id}.pid")))
            .success()
    );
    ok(&rt.call(&["start", id]));
    ok(&rt.call(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "20",
        id,
    ]));
    let stats = |seen: &mut Vec<String>| {
        let ev: Value = serde_json::from_str(&ok(&rt.call(&["events", "--stats", id]))).unwrap();
        // Limits only: runc's count includes its init's Go threads for a
        // moment after start.
        assert!(
            ev["data"]["pids"]["current"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "{ev}"
        );
        seen.push(format!(
            "{} {} {}",
            ev["type"], ev["data"]["memory"]["usage"]["limit"], ev["data"]["pids"]["limit"]
        ));
    };
    stats(&mut seen);
    let mut c = rt.cmd(&["update", "--resources", "-", id]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        br#"{"memory":{"limit":100663296,"swap":201326592},"pids":{"limit":30}}"#,
    )
    .unwrap();
    drop(child.stdin.take());
    ok(&child.wait_with_output().unwrap());
    stats(&mut seen);
    seen.push(format!("bad json: {}", {
        let mut c = rt.cmd(&["update", "--resources", "/nonexistent", id]);
        c.output().unwrap().status.success()
    }));
    ok(&rt.call(&["delete", "--force", id]));
    seen
}

#[test]
fn update_and_events_match_runc() {
    let test = "update_and_events_match_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("runtime-update").unwrap();
    let parent = unique_name("runtime-update");
    let _guard = cgroup_guard(&parent);
    let bundle = tmp.join("bundle");
    runtime_bundle(&bundle, &["sleep", "1000"], &parent, |_| {});
    let ours = Rt {
        program: runtime_binary(),
        root: tmp.join("ours"),
        out: tmp.join("ours.out"),
    };
    let runc = Rt {
        program: "runc".into(),
        root: tmp.join("runc"),
        out: tmp.join("runc.out"),
    };
    let a = update_and_stats(&ours, &bundle, &unique_name("ours"), tmp.path());
    let b = update_and_stats(&runc, &bundle, &unique_name("runc"), tmp.path());
    assert_eq!(a, b, "ours {a:?} runc {b:?}");
    assert_eq!(a[0], "\"stats\" 67108864 20", "{a:?}");
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

/// The `Cap*` lines of a `/proc/self/status`.
fn cap_lines(status: &str) -> String {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The kernel's mask of capability names.
fn cap_mask(names: &[&str]) -> String {
    let mask = names.iter().fold(0u64, |m, n| {
        m | 1 << dunnage::namespaces::caps::capability_number(n).unwrap()
    });
    format!("{mask:016x}")
}

#[test]
fn capability_sets_match_runc() {
    let test = "capability_sets_match_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("runtime-caps").unwrap();
    let parent = unique_name("runtime-caps");
    let _guard = cgroup_guard(&parent);
    let bounding = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"];
    let permitted = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"];
    let effective = ["CAP_KILL"];
    let inheritable = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"];
    let ambient = ["CAP_CHOWN", "CAP_NET_RAW"];
    // As root the exec recomputes permitted and effective from bounding
    // and inheritable; as uid 1000 they become the ambient set.
    for uid in [0u32, 1000] {
        let bundle = tmp.join(format!("bundle-{uid}"));
        runtime_bundle(&bundle, &["cat", "/proc/self/status"], &parent, |_| {});
        let path = bundle.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["process"]["capabilities"] = serde_json::json!({
            "bounding": bounding,
            "effective": effective,
            "permitted": permitted,
            "inheritable": inheritable,
            "ambient": ambient,
        });
        v["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid});
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let mut outs = Vec::new();
        for (program, root) in [(runtime_binary(), "ours"), ("runc".into(), "runc")] {
            let id = unique_name(root);
            let o = Command::new(&program)
                .arg("--root")
                .arg(tmp.join(root))
                .args(["run", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            outs.push(cap_lines(&ok(&o)));
        }
        assert_eq!(outs[0], outs[1], "uid {uid}: ours, then runc's");
        let ours = &outs[0];
        assert!(
            ours.contains(&format!("CapBnd:\t{}", cap_mask(&bounding))),
            "{ours}"
        );
        assert!(
            ours.contains(&format!("CapInh:\t{}", cap_mask(&inheritable))),
            "{ours}"
        );
        assert!(
            ours.contains(&format!("CapAmb:\t{}", cap_mask(&ambient))),
            "{ours}"
        );
        if uid != 0 {
            assert!(
                ours.contains(&format!("CapPrm:\t{}", cap_mask(&ambient))),
                "{ours}"
            );
            assert!(
                ours.contains(&format!("CapEff:\t{}", cap_mask(&ambient))),
                "{ours}"
            );
        }
    }
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn user_namespace_matches_runc() {
    let test = "user_namespace_matches_runc";
    if !require_privileged(test) || !require_command(test, "runc") {
        return;
    }
    let tmp = TempDir::new("runtime-userns").unwrap();
    let parent = unique_name("runtime-userns");
    let _guard = cgroup_guard(&parent);
    let bundle = tmp.join("bundle");
    runtime_bundle(
        &bundle,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u",
        ],
        &parent,
        |_| {},
    );
    // The container's root is host uid 100000: the rootfs must be
    // reachable by it, as with runc.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    v["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    v["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // Docker's /sys/fs/cgroup mount and sysctls need host privileges.
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "cgroup");
    v["linux"].as_object_mut().unwrap().remove("sysctl");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let mut outs = Vec::new();
    for (program, root) in [(runtime_binary(), "ours"), ("runc".into(), "runc")] {
        let id = unique_name(root);
        let o = Command::new(&program)
            .arg("--root")
            .arg(tmp.join(root))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        outs.push(ok(&o));
    }
    assert_eq!(outs[0], outs[1], "ours, then runc's");
    let words: Vec<&str> = outs[0].split_whitespace().collect();
    assert_eq!(words, ["0", "100000", "65536", "0", "100000", "65536", "0"]);
    assert_eq!(mounts_below(tmp.path()), Vec::<PathBuf>::new());
}
