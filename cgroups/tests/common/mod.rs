//! Helpers shared by the integration tests: a self-removing test cgroup
//! and child processes that wait for a go-ahead once placed in it.
#![allow(dead_code)] // each test file uses a subset

use dunnage_cgroups::{Cgroup, CgroupPath, Controller, Hierarchies, Mode};
use dunnage_testsupport::{CgroupGuard, ChildGuard, unique_name};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// The host's hierarchies.
pub fn host() -> Hierarchies {
    Hierarchies::detect().unwrap()
}

/// A cgroup `dunnage-test-<tag>-...` at the hierarchies' roots, removed
/// (with everything inside killed) on drop.
pub struct TestCgroup {
    pub cg: Cgroup,
    _guard: CgroupGuard,
}

impl std::ops::Deref for TestCgroup {
    type Target = Cgroup;
    fn deref(&self) -> &Cgroup {
        &self.cg
    }
}

/// Create a test cgroup in `h` with `controllers`.
pub fn cgroup_in(h: &Hierarchies, tag: &str, controllers: &[Controller]) -> TestCgroup {
    let path = CgroupPath::new(&unique_name(tag)).unwrap();
    let mut guard = CgroupGuard::new();
    for hier in h.list() {
        guard.add(hier.mount_point.join(path.as_str()));
    }
    let cg = Cgroup::create(h, &path, controllers).unwrap();
    TestCgroup { cg, _guard: guard }
}

/// Create a test cgroup on this host with `controllers`.
pub fn cgroup(tag: &str, controllers: &[Controller]) -> TestCgroup {
    cgroup_in(&host(), tag, controllers)
}

/// A `sh -c script` child that blocks on a line of stdin before running
/// `script`, so that it can be put into a cgroup first.
pub struct Waiting {
    pub child: Child,
    stdin: Option<ChildStdin>,
    _guard: ChildGuard,
}

impl Waiting {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Let it run the script.
    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
}

/// Spawn `sh -c 'read _; <script>'`.
pub fn spawn_waiting(script: &str) -> Waiting {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("read _ ; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let guard = ChildGuard::new(child.id() as i32);
    Waiting {
        child,
        stdin,
        _guard: guard,
    }
}

/// A busy loop, already placed in `cg` and running.
pub fn busy_in(cg: &Cgroup) -> Waiting {
    let mut w = spawn_waiting("while : ; do : ; done");
    cg.add_process(w.pid()).unwrap();
    w.go();
    w
}

/// CPU time used by `cg` so far.
pub fn cpu_usage(cg: &Cgroup) -> Duration {
    cg.stats().unwrap().cpu.unwrap().usage
}

/// A block device `(major, minor)` of this machine (a disk with a size
/// if there is one, else a loop device).
pub fn block_device() -> (u32, u32) {
    let mut found: Vec<(bool, u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let dev = std::fs::read_to_string(e.path().join("dev")).unwrap_or_default();
        let size: u64 = std::fs::read_to_string(e.path().join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if let Some((a, b)) = dev.trim().split_once(':') {
            found.push((size > 0, a.parse().unwrap(), b.parse().unwrap()));
        }
    }
    found.sort_by_key(|&(sized, major, minor)| (!sized, major, minor));
    let &(_, major, minor) = found.first().expect("no block device in /sys/block");
    (major, minor)
}

/// Whether `mode` is unified (pure v2).
pub fn unified(h: &Hierarchies) -> bool {
    h.mode() == Mode::Unified
}

/// Read a control file of `cg`'s directory holding `c`.
pub fn read(cg: &Cgroup, c: Controller, name: &str) -> String {
    let p: PathBuf = cg.dir_of(c).unwrap().file(name);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// Call `done` every 10 ms until it returns true; panic naming `what`
/// after `timeout`. For conditions that need the kernel or a child to make
/// progress first: a poll with a generous deadline, not a fixed sleep.
pub fn poll_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        if std::time::Instant::now() >= deadline {
            panic!("{what}: not reached within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
