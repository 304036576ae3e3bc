//! Test network namespaces (`dunnage-test-*`) and the lab the tests build
//! from them: a "host" namespace and an "outside" machine joined by a veth
//! pair with addresses from 10.203.0.0/24. Nothing is created in, or sent
//! from, the machine's own network namespace.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use dunnage_network::netns;
use dunnage_testsupport::unique_name;

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
