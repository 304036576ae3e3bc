//! Identity, setns and persisted namespaces, on the real kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use dunnage_namespaces::{
    Child, Command, Error, Kind, NamespaceId, join, join_each, join_file, namespaces_of, persist,
    release, same_namespace,
};
use dunnage_testsupport::{TempDir, require_root, unique_name};

/// A child sleeping in new namespaces, killed and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn new(cmd: &mut Command) -> Sleeper {
        Sleeper(cmd.spawn().unwrap())
    }
    fn pid(&self) -> i32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    cmd
}

fn me() -> i32 {
    std::process::id() as i32
}

fn thread_hostname() -> String {
    let mut buf = [0u8; 65];
    assert_eq!(unsafe { libc::gethostname(buf.as_mut_ptr().cast(), 64) }, 0);
    let end = buf.iter().position(|b| *b == 0).unwrap();
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[test]
fn namespace_ids_display_like_the_proc_link() {
    for id in namespaces_of(me()).unwrap() {
        let link = std::fs::read_link(id.kind.proc_path(me())).unwrap();
        assert_eq!(link.to_str().unwrap(), id.to_string());
        assert_eq!(id, NamespaceId::of_file(&id.kind.proc_path(me())).unwrap());
    }
    let n = Kind::ALL.into_iter().filter(|k| k.is_supported()).count();
    assert_eq!(namespaces_of(me()).unwrap().len(), n);
}

#[test]
fn a_child_shares_exactly_the_namespaces_it_did_not_unshare() {
    require_root!();
    let child = Sleeper::new(sleeper().namespaces(Kind::Net | Kind::Uts));
    for kind in [Kind::Mount, Kind::Ipc, Kind::Pid, Kind::User, Kind::Cgroup] {
        assert!(same_namespace(me(), child.pid(), kind).unwrap(), "{kind}");
    }
    for kind in [Kind::Net, Kind::Uts] {
        assert!(!same_namespace(me(), child.pid(), kind).unwrap(), "{kind}");
        assert!(
            NamespaceId::of(child.pid(), kind)
                .unwrap()
                .contains(child.pid())
                .unwrap()
        );
    }
}

#[test]
fn setns_into_a_running_child_sees_its_hostname_and_network() {
    require_root!();
    let name = unique_name("join");
    let child = Sleeper::new(
        sleeper()
            .namespaces(Kind::Net | Kind::Uts | Kind::Mount)
            .hostname(&name),
    );
    let pid = child.pid();
    let want = NamespaceId::of(pid, Kind::Net).unwrap();
    // setns moves only the calling thread: use a thread of our own.
    std::thread::spawn(move || {
        join(pid, Kind::Uts | Kind::Net | Kind::Mount).unwrap();
        assert_eq!(thread_hostname(), name);
        assert_eq!(NamespaceId::of_self(Kind::Net).unwrap(), want);
        assert_eq!(
            NamespaceId::of_self(Kind::Mount).unwrap(),
            NamespaceId::of(pid, Kind::Mount).unwrap()
        );
    })
    .join()
    .unwrap();
    // The test's main thread stayed where it was.
    assert_ne!(NamespaceId::of_self(Kind::Net).unwrap(), want);
    let name2 = unique_name("join-each");
    let child = Sleeper::new(sleeper().namespaces(Kind::Uts).hostname(&name2));
    let pid = child.pid();
    std::thread::spawn(move || {
        join_each(pid, Kind::Uts).unwrap();
        assert_eq!(thread_hostname(), name2);
    })
    .join()
    .unwrap();
}

#[test]
fn a_persisted_namespace_outlives_its_process_until_released() {
    require_root!();
    let dir = TempDir::new("persist").unwrap();
    let net_file = dir.join("net");
    let uts_file = dir.join("uts");
    let name = unique_name("persisted");
    let mut cmd = Command::new("true");
    cmd.namespaces(Kind::Net | Kind::Uts)
        .hostname(&name)
        .persist(Kind::Net, &net_file)
        .persist(Kind::Uts, &uts_file);
    let mut child = cmd.spawn().unwrap();
    let persisted = child.persisted().to_vec();
    assert!(child.wait().unwrap().success());
    assert_eq!(persisted.len(), 2);
    assert_eq!(NamespaceId::of_file(&net_file).unwrap(), persisted[0].id());
    assert_ne!(persisted[0].id(), NamespaceId::of(me(), Kind::Net).unwrap());
    let uts = uts_file.clone();
    std::thread::spawn(move || {
        assert_eq!(join_file(&uts, Some(Kind::Uts)).unwrap(), Kind::Uts);
        assert_eq!(thread_hostname(), name);
    })
    .join()
    .unwrap();
    for p in persisted {
        let path = p.path().to_path_buf();
        p.release().unwrap();
        assert!(!path.exists());
    }
    assert!(dunnage_testsupport::mounts_below(dir.path()).is_empty());
}

#[test]
fn persist_of_a_running_process_and_of_a_mount_namespace() {
    require_root!();
    let dir = TempDir::new("persist-mnt").unwrap();
    // A mount namespace can only be bound on a mount that is not shared.
    let status = std::process::Command::new("mount")
        .args(["--bind", "--make-private"])
        .arg(dir.path())
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let child = Sleeper::new(sleeper().namespaces(Kind::Mount | Kind::Ipc));
    for kind in [Kind::Mount, Kind::Ipc] {
        let file = dir.join(kind.proc_name());
        let p = persist(child.pid(), kind, &file).unwrap();
        assert_eq!(p.id(), NamespaceId::of(child.pid(), kind).unwrap());
        p.release().unwrap();
        assert!(!file.exists());
    }
}

#[test]
fn a_pid_that_does_not_exist_is_a_clear_error() {
    let pid = i32::MAX - 7;
    assert!(matches!(NamespaceId::of(pid, Kind::Net), Err(Error::NoSuchProcess(p)) if p == pid));
    assert!(matches!(join(pid, Kind::Net), Err(Error::NoSuchProcess(_))));
    assert!(matches!(
        join_each(pid, Kind::Net),
        Err(Error::NoSuchProcess(_))
    ));
    let dir = TempDir::new("nopid").unwrap();
    let file = dir.join("net");
    assert!(matches!(
        persist(pid, Kind::Net, &file),
        Err(Error::NoSuchProcess(_))
    ));
    assert!(!file.exists(), "nothing left behind");
}

#[test]
fn a_file_that_is_not_a_namespace_is_refused_and_kept() {
    let dir = TempDir::new("notns").unwrap();
    let file = dir.join("plain");
    std::fs::write(&file, "not a namespace").unwrap();
    let is_not_ns = |r: Result<_, Error>| matches!(r, Err(Error::NotANamespace { .. }));
    assert!(is_not_ns(NamespaceId::of_file(&file).map(|_| ())));
    assert!(is_not_ns(join_file(&file, None).map(|_| ())));
    assert!(is_not_ns(release(&file)));
    assert!(is_not_ns(
        join_file(Path::new("/proc/self/status"), None).map(|_| ())
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a namespace");
    let target = dir.join("target");
    let e = dunnage_namespaces::persist_file(&file, &target).unwrap_err();
    assert!(matches!(e, Error::NotANamespace { .. }), "{e}");
    assert!(!target.exists());
    let missing =
        dunnage_namespaces::persist_file(&Kind::Net.proc_path(me()), &dir.join("no/such/dir/net"));
    assert!(matches!(missing, Err(Error::Io { .. })));
}

#[test]
fn joining_a_file_of_the_wrong_kind_is_refused() {
    let e = join_file(&Kind::Uts.proc_path(me()), Some(Kind::Net)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongKind {
                expected: Kind::Net,
                found: Kind::Uts,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_failed_persist_removes_the_file_it_created() {
    require_root!();
    // The kernel refuses to bind a mount namespace inside itself (a loop):
    // the file created for it goes again.
    let dir = TempDir::new("persist-fail").unwrap();
    let target = dir.join("mnt");
    let e = persist(me(), Kind::Mount, &target).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(!target.exists(), "the created file is removed");
    // An existing entry is kept.
    let existing = dir.join("d");
    std::fs::create_dir(&existing).unwrap();
    assert!(persist(me(), Kind::Net, &existing).is_err());
    assert!(existing.is_dir());
}
