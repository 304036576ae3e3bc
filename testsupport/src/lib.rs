//! Test support shared by the dunnage crates.
//!
//! - [`require_privileged`] / [`require_root!`]: a test that needs root skips
//!   with a clear message when run unprivileged, and fails instead when
//!   `DUNNAGE_REQUIRE_PRIVILEGED=1` (CI sets it).
//! - [`require_command()`]: the same for tests that need a peer tool
//!   (`docker`, `skopeo`, ...).
//! - Guards that name what they create `dunnage-test-...` and remove it on
//!   drop, also when the test panics: [`TempDir`], [`MountGuard`],
//!   [`CgroupGuard`], [`ChildGuard`].
//! - [`Dockerd`]: a private dockerd (own data-root, exec-root and socket)
//!   for tests that compare with Docker.
//!
//! ```
//! use dunnage_testsupport::{require_root, TempDir};
//! fn a_test() {
//!     require_root!();
//!     let dir = TempDir::new("example").unwrap();
//!     assert!(dir.path().is_dir());
//! }
//! ```

mod dockerd;

pub use dockerd::{DOCKER, DOCKERD, Dockerd};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Prefix of every resource a test creates.
pub const PREFIX: &str = "dunnage-test-";

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "DUNNAGE_REQUIRE_PRIVILEGED";

/// Whether skips are forbidden (`DUNNAGE_REQUIRE_PRIVILEGED=1`).
pub fn skips_forbidden() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Whether this process runs as root with `CAP_SYS_ADMIN` in its effective set.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 && has_effective_cap(21)
}

/// Whether capability number `cap` is in this process's effective set.
pub fn has_effective_cap(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// Decide whether a privileged test may run.
///
/// Returns `true` when the process is privileged. Otherwise prints a skip
/// message naming `test` and returns `false`, or panics when
/// `DUNNAGE_REQUIRE_PRIVILEGED=1`.
pub fn require_privileged(test: &str) -> bool {
    if privileged() {
        return true;
    }
    skip(test, "needs root with CAP_SYS_ADMIN")
}

/// Decide whether a test that runs `program` may run: like
/// [`require_privileged`], for a program that must be on `PATH`.
pub fn require_command(test: &str, program: &str) -> bool {
    if find_in_path(program).is_some() {
        return true;
    }
    skip(test, &format!("needs `{program}` on PATH"))
}

/// Print a skip message, or panic when skips are forbidden. Returns `false`.
#[allow(clippy::panic)] // failing the test is the point
pub fn skip(test: &str, why: &str) -> bool {
    if skips_forbidden() {
        panic!("{test}: {why}, and {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why} (set {REQUIRE_ENV}=1 to fail instead)");
    false
}

/// Skip the calling test (return early) unless the process is privileged.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::require_privileged(module_path!()) {
            return;
        }
    };
}

/// Skip the calling test (return early) unless `program` is on `PATH`.
#[macro_export]
macro_rules! require_command {
    ($program:expr) => {
        if !$crate::require_command(module_path!(), $program) {
            return;
        }
    };
}

/// The full path of `program` found on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The path of the workspace example `name`, built for the profile of the
/// running test.
///
/// `cargo test --all-targets` compiles examples as test harnesses, so the
/// plain binary under `target/<profile>/examples/` may be missing or stale;
/// this runs `cargo build --example NAME` once per process and name, then
/// returns the uplifted binary. Panics when the build fails.
#[allow(clippy::panic)] // failing the test is the point
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no target directory", exe.display()))
        .to_path_buf();
    let bin = profile_dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|n| n == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "--example", name, "--manifest-path"])
            .arg(&manifest);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("running cargo build --example {name}: {e}"));
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_string());
    }
    assert!(bin.is_file(), "{} missing after cargo build", bin.display());
    bin
}

/// A unique name `dunnage-test-<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{tag}-{}-{n}", std::process::id())
}

/// Detach-unmount `path`; errors are ignored (used in drops).
pub fn detach_unmount(path: &Path) -> io::Result<()> {
    let c = dunnage_base::cstr::cstring(path)?;
    // SAFETY: c is a valid NUL-terminated string.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Mount points at or below `dir`, deepest first, read from
/// `/proc/self/mountinfo` (paths as bytes: a mount point that is not UTF-8
/// is found too). Empty when mountinfo cannot be read.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    dunnage_base::mountinfo::mounts_below(dir).unwrap_or_default()
}

/// A directory `dunnage-test-<tag>-...` under the system temp dir.
///
/// On drop, every mount at or below it is detach-unmounted, then the tree is
/// removed.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create a fresh directory named after `tag`.
    pub fn new(tag: &str) -> io::Result<TempDir> {
        Self::new_in(&std::env::temp_dir(), tag)
    }

    /// Create a fresh directory named after `tag` inside `parent`.
    pub fn new_in(parent: &Path, tag: &str) -> io::Result<TempDir> {
        let path = parent.join(unique_name(tag));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(rel)`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        for m in mounts_below(&self.path) {
            let _ = detach_unmount(&m);
        }
        let _ = make_removable(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Give owner write permission to every directory below `dir` so that a
/// tree with read-only directories can be removed.
fn make_removable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mut perms = meta.permissions();
    perms.set_mode(perms.mode() | 0o700);
    let _ = std::fs::set_permissions(dir, perms);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let _ = make_removable(&entry.path());
        }
    }
    Ok(())
}

/// A mount point that is detach-unmounted on drop.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
}

impl MountGuard {
    /// Guard the mount at `target` (mounted by the caller).
    pub fn new(target: impl Into<PathBuf>) -> MountGuard {
        MountGuard {
            target: target.into(),
        }
    }

    /// The guarded mount point.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        for m in mounts_below(&self.target) {
            let _ = detach_unmount(&m);
        }
    }
}

/// Cgroup directories removed on drop, deepest first.
///
/// Processes still inside are SIGKILLed first (tests only put their own
/// processes there), then each directory is removed with a bounded retry.
#[derive(Debug, Default)]
pub struct CgroupGuard {
    dirs: Vec<PathBuf>,
}

impl CgroupGuard {
    /// An empty guard.
    pub fn new() -> CgroupGuard {
        CgroupGuard::default()
    }

    /// Guard `dir` (and everything below it).
    pub fn add(&mut self, dir: impl Into<PathBuf>) {
        self.dirs.push(dir.into());
    }
}

/// Remove the cgroup directory `dir` and every cgroup below it, killing
/// the processes inside first. Only for cgroups a test created.
pub fn remove_cgroup_tree(dir: &Path) {
    let mut all = Vec::new();
    collect_dirs(dir, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in &all {
        // Thaw first so that killed tasks can exit.
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for d in &all {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            remove_cgroup_tree(d);
        }
    }
}

/// A child process that is SIGKILLed and reaped on drop, unless it is no
/// longer an unreaped child of this process (then nothing is signalled).
#[derive(Debug)]
pub struct ChildGuard {
    pid: i32,
}

impl ChildGuard {
    /// Guard the child `pid` (a child of this process).
    pub fn new(pid: i32) -> ChildGuard {
        ChildGuard { pid }
    }

    /// The guarded pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// Whether `pid` is still a child of this process that nobody has reaped
/// (running or a zombie). Such a pid cannot be recycled, so signalling it
/// afterwards reaches our child and no other process.
fn is_unreaped_child(pid: i32) -> bool {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return false;
    };
    if id == 0 {
        return false;
    }
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: WNOWAIT leaves the child as it is; ECHILD means it is not
    // (or no longer) our child.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r == 0
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // A test that already reaped the child leaves a pid number that may
        // belong to another process by now: leave it alone.
        if !is_unreaped_child(self.pid) {
            return;
        }
        // SAFETY: plain syscalls on our own unreaped child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

/// In a forked child: close every fd above 2 except those in `keep`, so the
/// child does not hold other test threads' pipes or just-written files
/// (which would delay their readers or make an exec of them "text busy").
/// Sorts `keep`. Only raw `close_range(2)` calls: safe between fork and exec.
pub fn close_fds_except(keep: &mut [libc::c_int]) {
    keep.sort_unstable();
    let mut from: libc::c_uint = 3;
    for &fd in keep.iter() {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd > from {
            // SAFETY: close_range only closes descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = from.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

/// A small, fast, deterministic pseudo-random generator (xorshift*), for
/// tests and benchmarks that want varied but reproducible data. Not for
/// anything that must be unpredictable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (0, which xorshift cannot leave, is
    /// taken as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::zombie_processes)] // the guard reaps it
    fn child_guard_kills_an_unreaped_child_and_skips_a_reaped_one() {
        // Killed and reaped on drop.
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(is_unreaped_child(pid));
        drop(ChildGuard::new(pid));
        assert!(!is_unreaped_child(pid), "reaped by the guard");
        // Already reaped by the test: the guard must not signal the number.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        assert!(!is_unreaped_child(pid));
        drop(ChildGuard::new(pid));
        // Not our child at all (our parent).
        assert!(!is_unreaped_child(
            i32::try_from(std::os::unix::process::parent_id()).unwrap()
        ));
    }

    #[test]
    fn unique_names_carry_the_prefix_and_differ() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert!(a.starts_with(PREFIX));
        assert_ne!(a, b);
    }

    #[test]
    fn temp_dir_is_removed_on_drop() {
        let dir = TempDir::new("tempdir").unwrap();
        let p = dir.path().to_path_buf();
        std::fs::create_dir_all(p.join("a/b")).unwrap();
        drop(dir);
        assert!(!p.exists());
    }

    #[test]
    fn a_mount_at_a_non_utf8_escaped_path_is_found_and_cleaned_up() {
        use std::os::unix::ffi::OsStrExt;
        if !require_privileged("a_mount_at_a_non_utf8_escaped_path_is_found_and_cleaned_up") {
            return;
        }
        let dir = TempDir::new("mountinfo").unwrap();
        let root = dir.path().to_path_buf();
        let target = dir.join(std::ffi::OsStr::from_bytes(b"a b\\c\t\xff\xfe"));
        std::fs::create_dir(&target).unwrap();
        let src = dunnage_base::cstr::cstring("tmpfs").unwrap();
        let t = dunnage_base::cstr::cstring(&target).unwrap();
        // SAFETY: valid C strings; a tmpfs below our own temp dir.
        let rc =
            unsafe { libc::mount(src.as_ptr(), t.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
        assert_eq!(rc, 0, "mount: {}", io::Error::last_os_error());
        assert_eq!(mounts_below(&root), std::slice::from_ref(&target));
        drop(dir);
        assert!(mounts_below(&root).is_empty(), "the guard unmounted it");
        assert!(!root.exists(), "and removed the tree");
    }
}
