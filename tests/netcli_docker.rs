//! The CLI's network verbs against a real docker with a bridge: the same
//! commands to both, outputs compared after normalising IDs and times.
//!
//! Everything runs inside network namespaces made here (`dunnage-test-*`):
//! a private dockerd (own data and exec roots, its docker0 on
//! 172.17.0.1/16 as ours, its iptables rules) in one, our CLI in another (the
//! lab's "host"). Nothing is created in the machine's own network
//! namespace. Needs root, `ip`, `nsenter`, `nft`, busybox and docker.io;
//! skips otherwise (fails under `DUNNAGE_REQUIRE_PRIVILEGED=1`).
//!
//! The installed docker may be newer than 20.10, whose forms the CLI
//! follows: where they differ (an IPv6 binding `:::PORT` docker adds for
//! each published port, keys newer daemons added such as `EnableIPv4`),
//! docker's extra is left out before comparing, and said so below.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../network/tests/common/mod.rs"]
mod netlab;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::Fixture;
use dunnage_testsupport::{DOCKER, DOCKERD, TempDir, example_binary, require_root};
use netlab::{Lab, Netns};
use serde_json::Value;

fn tools_present() -> bool {
    ["ip", "nsenter", "nft", "busybox", "tar", DOCKER, DOCKERD]
        .iter()
        .all(|t| dunnage_testsupport::require_command("netcli_docker", t))
}

/// A private dockerd in the namespace `ns`, stopped on drop with the
/// containerd it started (found by the pidfile under its exec root, and
/// only if its command line names our directory).
struct Daemon {
    child: Child,
    dir: TempDir,
}

impl Daemon {
    fn start(ns: &Netns) -> Daemon {
        let dir = TempDir::new("netcli-dockerd").unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = ns
            .cmd(&[DOCKERD])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args([
                "--storage-driver=overlay2",
                "--bip=172.17.0.1/16",
                "--userland-proxy=false",
                "--ip6tables=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child, dir };
        for _ in 0..600 {
            let ok = d
                .docker(&["version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dockerd did not answer: {}",
            std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
        );
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.docker(args).output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Its containers first, so that no shim outlives the daemon.
        let _ = self
            .docker(&["rm", "-f", "netcli-a", "netcli-b"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && pid > 1
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains(&self.dir.path().display().to_string()))
        {
            // SAFETY: the containerd our dockerd started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Mounts docker left under its roots would keep the directory.
        for m in dunnage_base::mountinfo::mounts_below(self.dir.path())
            .unwrap_or_default()
            .iter()
            .rev()
        {
            let _ = rustix::mount::unmount(m.as_path(), rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// The CLI, run under `nsenter --net` in the lab's host namespace.
fn ours(f: &Fixture, lab: &Lab, args: &[&str]) -> Output {
    lab.host
        .cmd(&[example_binary("dunnage").to_str().unwrap()])
        .arg("--root")
        .arg(f.tmp.join("store"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every 64- and 12-digit hex word replaced by `<ID>`, RFC 3339 times
/// by `<TIME>`.
fn normalise(s: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex = word
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex && (word.len() == 64 || word.len() == 12) {
            out.push_str("<ID>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Both outputs of a command: exit code, normalised stdout and stderr.
fn both(
    d: &Daemon,
    f: &Fixture,
    lab: &Lab,
    docker_args: &[&str],
    our_args: &[&str],
) -> [(Option<i32>, String, String); 2] {
    let a = d.run(docker_args);
    let b = ours(f, lab, our_args);
    // docker's pointer to help names docker.
    [a, b].map(|o| {
        (
            o.status.code(),
            normalise(&text(&o.stdout)),
            normalise(&text(&o.stderr)).replace("See 'docker ", "See 'dunnage "),
        )
    })
}

fn same(d: &Daemon, f: &Fixture, lab: &Lab, args: &[&str]) {
    let [theirs, mine] = both(d, f, lab, args, args);
    assert_eq!(mine, theirs, "dunnage {args:?} (left) vs docker (right)");
}

/// The keys of a JSON object in the order the text shows them, leaving
/// out those docker 20.10 did not have.
fn keys_in_order(json_text: &str, indent: usize) -> Vec<String> {
    let prefix = " ".repeat(indent);
    json_text
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}\"")))
        .filter_map(|l| l.trim().split('"').nth(1).map(str::to_string))
        .filter(|k| k != "EnableIPv4")
        .collect()
}

/// docker's `network inspect` value with IDs and times normalised and
/// the keys docker 20.10 did not have left out.
fn net_value(json_text: &str) -> Value {
    let mut v: Value = serde_json::from_str(&normalise(json_text)).unwrap();
    if let Some(o) = v[0].as_object_mut() {
        o.remove("EnableIPv4");
        o.insert("Created".into(), "<TIME>".into());
    }
    v
}

fn busybox_into_docker(d: &Daemon, dir: &Path) -> PathBuf {
    let tar = common::busybox_tar(dir);
    let out = d.run(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        tar.to_str().unwrap(),
        common::IMAGE,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tar
}

#[test]
fn network_verbs_port_ps_and_inspect_answer_as_dockers() {
    require_root!();
    if !tools_present() {
        return;
    }
    let f = Fixture::new();
    let lab = Lab::new();
    let docker_ns = Netns::new("netcli-docker");
    let d = Daemon::start(&docker_ns);
    let scratch = TempDir::new("netcli-docker-image").unwrap();
    busybox_into_docker(&d, scratch.path());
    let image = common::IMAGE;

    // create: the ID; the same name again: docker's error.
    let create = [
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.215.1.0/24",
        "web",
    ];
    same(&d, &f, &lab, &create);
    same(&d, &f, &lab, &create);
    // ls: the header, and the new network's row laid out the same.
    let [theirs, mine] = both(&d, &f, &lab, &["network", "ls"], &["network", "ls"]);
    let pick = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.contains(" bridge    bridge "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(pick(&mine.1), pick(&theirs.1), "{}\n{}", mine.1, theirs.1);
    // inspect: docker's shape and key order; by a unique prefix too.
    let a = d.run(&["network", "inspect", "web"]);
    let b = ours(&f, &lab, &["network", "inspect", "web"]);
    let (a, b) = (text(&a.stdout), text(&b.stdout));
    assert_eq!(keys_in_order(&b, 8), keys_in_order(&a, 8), "{b}\n{a}");
    assert_eq!(net_value(&b), net_value(&a), "{b}\n{a}");
    let id = serde_json::from_str::<Value>(&b).unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let docker_id = serde_json::from_str::<Value>(&a).unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let [theirs, mine] = both(
        &d,
        &f,
        &lab,
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            &docker_id[..6],
        ],
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            &id[..6],
        ],
    );
    assert_eq!(mine, theirs);
    // A network that does not exist; the pre-defined ones.
    same(&d, &f, &lab, &["network", "inspect", "nope"]);
    same(&d, &f, &lab, &["network", "create", "host"]);
    same(
        &d,
        &f,
        &lab,
        &["network", "create", "-d", "nosuchdriver", "x"],
    );
    same(&d, &f, &lab, &["network", "rm", "none"]);
    for name in ["host", "none"] {
        let a = text(&d.run(&["network", "inspect", name]).stdout);
        let b = text(&ours(&f, &lab, &["network", "inspect", name]).stdout);
        assert_eq!(keys_in_order(&b, 8), keys_in_order(&a, 8), "{b}\n{a}");
        assert_eq!(net_value(&b), net_value(&a), "{b}\n{a}");
    }
    same(&d, &f, &lab, &["network", "rm", "nope"]);

    // A container with a published port on it.
    let run = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["run", "-d", "--name", "netcli-a", "--network", "web"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["-p", "8080:80", image, "sleep", "100"].map(String::from));
        v
    };
    let dr = run(&[]);
    let out = d.run(&dr.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let or = run(&["--cgroup-parent", &f.parent]);
    let out = ours(&f, &lab, &or.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));

    // run -p refusals.
    let mut bad = Vec::new();
    let runs: Vec<Vec<&str>> = ["99999:80", "80:abc", "8080:80/sctpx", "1.2.3:80:80"]
        .iter()
        .map(|p| vec!["run", "--rm", "--network", "web", "-p", p, image, "true"])
        .chain([vec!["run", "--rm", "--network", "nope", image, "true"]])
        .collect();
    for args in &runs {
        let p = args.join(" ");
        let [mut theirs, mine] = both(&d, &f, &lab, args, args);
        // docker newer than 20.10 logs a cancelled wait after the error.
        theirs.2 = theirs
            .2
            .replace("docker", "dunnage")
            .lines()
            .filter(|l| !l.starts_with("time="))
            .map(|l| format!("{l}\n"))
            .collect();
        if mine != theirs {
            bad.push(format!("{p}: ours {mine:?}\n docker {theirs:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // port: docker (newer than 20.10) adds `:::8080` for IPv6.
    let v4 = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.contains(":::") && !l.starts_with("[::]"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for args in [
        &["port", "netcli-a"][..],
        &["port", "netcli-a", "80"],
        &["port", "netcli-a", "80/tcp"],
    ] {
        let [theirs, mine] = both(&d, &f, &lab, args, args);
        assert_eq!(mine.0, theirs.0, "{args:?}");
        assert_eq!(v4(&mine.1), v4(&theirs.1), "{args:?}");
    }
    same(&d, &f, &lab, &["port", "netcli-a", "81"]);
    same(&d, &f, &lab, &["port", "netcli-a", "80/udp"]);
    same(&d, &f, &lab, &["port", "netcli-a", "abc"]);
    same(&d, &f, &lab, &["port", "netcli-a", "99999/tcp"]);
    same(&d, &f, &lab, &["port", "nope"]);
    // ps's PORTS cell.
    let args = ["ps", "--format", "{{.Ports}}"];
    let [theirs, mine] = both(&d, &f, &lab, &args, &args);
    let cut = |s: &str| {
        s.replace(", :::8080->80/tcp", "")
            .replace(", [::]:8080->80/tcp", "")
    };
    assert_eq!(cut(&mine.1), cut(&theirs.1));
    // inspect: NetworkMode, PortBindings, the network's endpoint.
    let a: Value = serde_json::from_slice(&d.run(&["inspect", "netcli-a"]).stdout).unwrap();
    let b: Value =
        serde_json::from_slice(&ours(&f, &lab, &["inspect", "netcli-a"]).stdout).unwrap();
    for path in [
        &["HostConfig", "NetworkMode"][..],
        &["HostConfig", "PortBindings"],
        &["NetworkSettings", "Networks", "web", "IPAddress"],
        &["NetworkSettings", "Networks", "web", "IPPrefixLen"],
        &["NetworkSettings", "Networks", "web", "MacAddress"],
        &["NetworkSettings", "IPAddress"],
    ] {
        let get = |v: &Value| path.iter().fold(v[0].clone(), |v, k| v[*k].clone());
        // Addresses differ only by the subnet's host part: both first.
        assert_eq!(get(&b), get(&a), "{path:?}");
    }
    let ports = |v: &Value| {
        let mut p = v[0]["NetworkSettings"]["Ports"]["80/tcp"].clone();
        if let Some(a) = p.as_array_mut() {
            a.retain(|e| e["HostIp"] != "::");
        }
        p
    };
    assert_eq!(ports(&b), ports(&a));
    // The default network: `bridge` on both sides.
    let bridge_run = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["run", "-d", "--name", "netcli-b", "--network", "bridge"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["-p", "8081:81", image, "sleep", "100"].map(String::from));
        v
    };
    let dr = bridge_run(&[]);
    let out = d.run(&dr.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let or = bridge_run(&["--cgroup-parent", &f.parent]);
    let out = ours(&f, &lab, &or.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = text(&d.run(&["network", "inspect", "bridge"]).stdout).replace("docker0", "dunnage0");
    let b = text(&ours(&f, &lab, &["network", "inspect", "bridge"]).stdout);
    assert_eq!(keys_in_order(&b, 8), keys_in_order(&a, 8), "{b}\n{a}");
    let (mut va, mut vb) = (net_value(&a), net_value(&b));
    // Containers are keyed by their IDs, which differ: compare the one
    // endpoint each has.
    for v in [&mut va, &mut vb] {
        let c = v[0]["Containers"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        v[0]["Containers"] = Value::Array(c);
    }
    assert_eq!(vb, va, "{b}\n{a}");
    let a: Value = serde_json::from_slice(&d.run(&["inspect", "netcli-b"]).stdout).unwrap();
    let b: Value =
        serde_json::from_slice(&ours(&f, &lab, &["inspect", "netcli-b"]).stdout).unwrap();
    for path in [
        &["HostConfig", "NetworkMode"][..],
        &["HostConfig", "PortBindings"],
        &["NetworkSettings", "IPAddress"],
        &["NetworkSettings", "Gateway"],
        &["NetworkSettings", "MacAddress"],
        &["NetworkSettings", "IPPrefixLen"],
        &["NetworkSettings", "Networks", "bridge", "IPAddress"],
        &["NetworkSettings", "Networks", "bridge", "Aliases"],
    ] {
        let get = |v: &Value| path.iter().fold(v[0].clone(), |v, k| v[*k].clone());
        assert_eq!(get(&b), get(&a), "{path:?}");
    }
    // Now both have bridge, host, none and web: ls in its forms.
    for format in [
        "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.IPv6}} {{.Internal}} {{.Labels}}",
        "table {{.Name}}\t{{.Driver}}",
        "table {{.ID}}\t{{.Name}}\t{{.IPv6}}\t{{.Internal}}",
        "{{.Nope}}",
    ] {
        same(&d, &f, &lab, &["network", "ls", "--format", format]);
    }
    same(&d, &f, &lab, &["network", "ls"]);
    for filter in [
        &["-f", "name=we"][..],
        &["-f", "name=^web$"],
        &["-f", "driver=bridge"],
        &["-f", "type=custom"],
        &["-f", "type=builtin", "-f", "name=o"],
        &["-f", "name=host", "-f", "name=none"],
        &["-f", "scope=local", "-q"],
        &["-f", "nope=1"],
        &["-f", "type=x"],
        &["-f", "name"],
    ] {
        let mut args = vec!["network", "ls"];
        args.extend_from_slice(filter);
        same(&d, &f, &lab, &args);
    }
    same(&d, &f, &lab, &["network", "ls", "-q", "--no-trunc"]);
    same(&d, &f, &lab, &["rm", "-f", "netcli-b"]);

    // Removal while the container is attached, in docker's words.
    same(&d, &f, &lab, &["network", "rm", "web"]);

    same(&d, &f, &lab, &["rm", "-f", "netcli-a"]);
    same(&d, &f, &lab, &["network", "rm", "web"]);
    drop(d);
    f.assert_clean();
}
