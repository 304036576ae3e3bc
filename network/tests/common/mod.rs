//! Test network namespaces (`dunnage-test-*`) and the lab the tests build
//! from them: a "host" namespace and an "outside" machine joined by a veth
//! pair with addresses from 10.203.0.0/24. Nothing is created in, or sent
//! from, the machine's own network namespace.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use dunnage_network::{Networks, netns};
use dunnage_testsupport::{TempDir, unique_name};

/// A network namespace `dunnage-test-TAG-...` made with `ip netns add`
/// (loopback up), deleted on drop: its links go with it.
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
    fd: OwnedFd,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique_name(tag);
        run(Command::new("ip").args(["netns", "add", &name]));
        let path = PathBuf::from("/run/netns").join(&name);
        // Guard first, so a failure below still deletes the namespace.
        let fd = netns::open(&path).unwrap_or_else(|e| {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            panic!("open {}: {e}", path.display())
        });
        let ns = Netns { name, path, fd };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `nsenter --net=PATH ARGS...`: only the network namespace changes.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display())).args(args);
        c
    }

    /// Run `args` in the namespace; panics unless it succeeds. Its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run(&mut self.cmd(args)).stdout).into_owned()
    }

    /// Start `args` in the namespace, killed and reaped on drop.
    pub fn spawn(&self, args: &[&str]) -> Guarded {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Guarded(child)
    }

    /// The interface names in the namespace.
    pub fn links(&self) -> Vec<String> {
        let mut nl = dunnage_network::Netlink::open_in(self.fd()).unwrap();
        nl.links().unwrap().into_iter().map(|l| l.name).collect()
    }

    /// `nft list ruleset` in the namespace.
    pub fn ruleset(&self) -> String {
        self.run(&["nft", "list", "ruleset"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process killed and reaped on drop.
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The host's address on the link to the outside machine.
pub const HOST_UPLINK: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
/// The outside machine's address.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);

/// A host namespace, an outside namespace linked to it, and a state dir.
/// Declared field order is drop order: the networks handle, then the
/// namespaces, then the state.
pub struct Lab {
    pub nets: Networks,
    pub host: Netns,
    pub outside: Netns,
    pub state: TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let host = Netns::new("host");
        let outside = Netns::new("outside");
        host.run(&[
            "ip",
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "out0",
            "netns",
            &outside.name,
        ]);
        host.run(&["ip", "addr", "add", "10.203.0.1/24", "dev", "up0"]);
        host.run(&["ip", "link", "set", "up0", "up"]);
        outside.run(&["ip", "addr", "add", "10.203.0.2/24", "dev", "out0"]);
        outside.run(&["ip", "link", "set", "out0", "up"]);
        let state = TempDir::new("netstate").unwrap();
        let nets = Networks::open(state.path(), host.fd()).unwrap();
        Lab {
            nets,
            host,
            outside,
            state,
        }
    }
}

/// Retry `f` until it returns `Some`, at most `tries` times, 50 ms apart
/// (servers started in the background need a moment to listen).
pub fn retry<T>(tries: u32, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..tries {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up after {tries} tries");
}

/// Connect with busybox `nc` from `ns` to `ip:port` and return what the
/// server said. A refused connection (the server is not listening yet) is
/// retried; one that gets no answer within nc's 5 s connect timeout fails
/// the test at once (packets are being dropped: no point retrying).
pub fn nc_read(ns: &Netns, ip: Ipv4Addr, port: u16) -> String {
    retry(200, || {
        let started = std::time::Instant::now();
        let out = ns
            .cmd(&[
                "busybox",
                "nc",
                "-w",
                "5",
                &ip.to_string(),
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !s.is_empty() {
            return Some(s);
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "nc to {ip}:{port} got no answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        None
    })
}
