//! Shared by the facade's container tests: a private store holding a
//! busybox image, a cgroup parent, and the check that nothing is left; and
//! by the runtime example's tests: the example's binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};

use dunnage::container::{Container, ContainerStore};
use dunnage::image::ImageChanges;
use dunnage::oci::bundle::{BundleSpec, write_bundle};
use dunnage::profile::Profile;
use dunnage_testsupport::{CgroupGuard, TempDir, mounts_below, unique_name};
use serde_json::Value;

pub const IMAGE: &str = "test/busybox:1";

/// A private store holding a busybox image, a cgroup parent for its
/// containers, and the checks that nothing is left.
pub struct Fixture {
    pub tmp: TempDir,
    pub store: ContainerStore,
    pub parent: String,
    _cgroups: CgroupGuard,
}

/// The cgroup directories of `parent` in every hierarchy of this host.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.join(parent)]; // pure v2
    }
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(base).unwrap().flatten() {
        if e.path().join("cgroup.procs").exists() {
            dirs.push(e.path().join(parent));
        }
    }
    assert!(!dirs.is_empty());
    dirs
}

/// A rootfs tar of the host's static busybox, with users.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "home/web"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in [
        "sh", "true", "false", "cat", "echo", "id", "hostname", "pwd", "sleep", "head", "tr", "ls",
        "env", "touch",
    ] {
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
    std::fs::write(root.join("bin/noexec"), "not a program\n").unwrap();
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

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = TempDir::new("container").unwrap();
        let tar = busybox_tar(tmp.path());
        let store = ContainerStore::open(tmp.join("store")).unwrap();
        let mut changes = ImageChanges::default();
        for c in ["CMD [\"/bin/sh\"]", "ENV PATH=/bin", "ENV FROM_IMAGE=yes"] {
            changes.add_instruction(c).unwrap();
        }
        changes.reference = Some(IMAGE.parse().unwrap());
        store.images().unwrap().import(&tar, &changes).unwrap();
        let parent = unique_name("ctr");
        let mut guard = CgroupGuard::new();
        for d in cgroup_dirs(&parent) {
            guard.add(d);
        }
        Fixture {
            tmp,
            store,
            parent,
            _cgroups: guard,
        }
    }

    pub fn container(&self) -> Container {
        let mut c = Container::image(IMAGE);
        c.cgroup_parent(&self.parent);
        c
    }

    /// Nothing of any container left: no mounts, no container cgroups, no
    /// state, no container layers.
    pub fn assert_clean(&self) {
        assert_eq!(mounts_below(self.tmp.path()), Vec::<PathBuf>::new());
        for d in cgroup_dirs(&self.parent) {
            if d.is_dir() {
                assert_eq!(std::fs::read_to_string(d.join("cgroup.procs")).unwrap(), "");
            }
            if let Ok(entries) = std::fs::read_dir(&d) {
                let subs: Vec<_> = entries.flatten().filter(|e| e.path().is_dir()).collect();
                assert!(subs.is_empty(), "cgroups left in {}: {subs:?}", d.display());
            }
        }
        assert!(self.store.list().unwrap().is_empty());
        assert!(
            self.store
                .images()
                .unwrap()
                .layers()
                .list_rw()
                .unwrap()
                .is_empty()
        );
    }
}

pub fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

/// The runtime example (`examples/runtime/`), built once per test binary
/// with this test's features.
pub fn runtime_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = StdCommand::new(cargo);
            cmd.args(["build", "-q", "--example", "runtime", "--manifest-path"])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
            if cfg!(feature = "seccomp") {
                cmd.args(["--features", "seccomp"]);
            }
            assert!(
                cmd.status().unwrap().success(),
                "building the runtime example"
            );
            profile_dir.join("examples/runtime")
        })
        .clone()
}

/// A busybox bundle at `dir` for the runtime example: Docker's profile
/// (without seccomp unless the feature is on) running `args` in cgroup
/// `/parent/<unique>`, its config.json changed by `edit`. busybox is hard
/// linked where the file system allows (a copy can be "text busy" while a
/// parallel test's fork still holds the writer's fd).
pub fn runtime_bundle(dir: &Path, args: &[&str], parent: &str, edit: impl FnOnce(&mut Value)) {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    if std::fs::hard_link("/bin/busybox", bin.join("busybox")).is_err() {
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    }
    for applet in ["sh", "cat", "sleep", "ls", "grep", "readlink", "id", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp", "data"] {
        std::fs::create_dir_all(dir.join("rootfs").join(d)).unwrap();
    }
    std::fs::write(dir.join("rootfs/marker"), "in the rootfs\n").unwrap();
    let mut profile = Profile::docker();
    if !cfg!(feature = "seccomp") {
        profile.seccomp = None;
    }
    let mut spec = BundleSpec::new(args.iter().copied());
    spec.cgroups_path = Some(format!("/{parent}/{}", unique_name("c")));
    write_bundle(dir, &profile, &spec).unwrap();
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// The cgroup directories of `parent` in every hierarchy, guarded.
pub fn cgroup_guard(parent: &str) -> CgroupGuard {
    let mut guard = CgroupGuard::new();
    for d in cgroup_dirs(parent) {
        guard.add(d);
    }
    guard
}

/// `program --root root args...` with stdin from /dev/null; its output.
pub fn runtime_call(program: &Path, root: &Path, args: &[&str]) -> Output {
    StdCommand::new(program)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The stdout of a command that must have succeeded (its output in the
/// panic message otherwise).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
