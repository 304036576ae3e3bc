//! The v2 device filter, enforced by the real kernel: a forked child in a
//! v2 cgroup opens and mknods real devices. Runs on this hybrid host's
//! `/sys/fs/cgroup/unified` (cgroup2 runs device programs even without
//! controllers) and in the pure-v2 VM (tests/vm/run.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::{
    Cgroup, DeviceFilter, DeviceRule, Error, Resources, detach_device_programs, device_programs,
};
use dunnage_testsupport::{ChildGuard, TempDir, require_root};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

fn rule(allow: bool, kind: char, major: Option<u32>, minor: Option<u32>, a: &str) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: a.into(),
    }
}

/// deny all; allow c 1:3 rwm (/dev/null); allow c 1:5 r (/dev/zero).
fn rules() -> Vec<DeviceRule> {
    vec![
        rule(false, 'a', None, None, "rwm"),
        rule(true, 'c', Some(1), Some(3), "rwm"),
        rule(true, 'c', Some(1), Some(5), "r"),
    ]
}

/// A test cgroup on the v2 hierarchy only.
fn v2_cgroup(tag: &str) -> TestCgroup {
    let v2 = host()
        .v2_only()
        .expect("no cgroup2 mount (this host has /sys/fs/cgroup/unified)");
    cgroup_in(&v2, tag, &[])
}

fn v2_dir(cg: &Cgroup) -> std::path::PathBuf {
    cg.v2_dir().unwrap().path.clone()
}

/// One access a child tries.
enum Try {
    Open(&'static str, libc::c_int),
    Mknod(&'static str, u32, u32),
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Fork a child, move it into `cg`, let it make each access and return
/// the errno of each (0: it worked). The child makes raw syscalls only.
fn accesses_in(cg: &Cgroup, dir: &TempDir, tries: &[Try]) -> Vec<i32> {
    let paths: Vec<CString> = tries
        .iter()
        .map(|t| match t {
            Try::Open(p, _) => CString::new(*p).unwrap(),
            Try::Mknod(name, _, _) => CString::new(dir.join(name).as_os_str().as_bytes()).unwrap(),
        })
        .collect();
    let (go_r, go_w) = pipe();
    let (res_r, res_w) = pipe();
    let mut results = vec![0i32; tries.len()];
    // SAFETY: the child only makes raw syscalls on data prepared above and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        use std::os::fd::AsRawFd;
        unsafe {
            let mut b = 0u8;
            if libc::read(go_r.as_raw_fd(), (&raw mut b).cast(), 1) != 1 {
                libc::_exit(2);
            }
            for (i, t) in tries.iter().enumerate() {
                let p = paths[i].as_ptr();
                let rc = match *t {
                    Try::Open(_, flags) => {
                        let fd = libc::open(p, flags | libc::O_CLOEXEC);
                        if fd >= 0 {
                            libc::close(fd);
                        }
                        fd
                    }
                    Try::Mknod(_, ma, mi) => {
                        libc::mknod(p, libc::S_IFCHR | 0o600, libc::makedev(ma, mi))
                    }
                };
                *results.as_mut_ptr().add(i) = if rc < 0 { *libc::__errno_location() } else { 0 };
            }
            let len = std::mem::size_of_val(results.as_slice());
            libc::write(res_w.as_raw_fd(), results.as_ptr().cast(), len);
            libc::_exit(0);
        }
    }
    let _guard = ChildGuard::new(pid);
    drop(go_r);
    drop(res_w);
    cg.add_process(pid as u32).unwrap();
    std::fs::File::from(go_w).write_all(b"g").unwrap();
    let mut buf = vec![0u8; std::mem::size_of_val(results.as_slice())];
    std::fs::File::from(res_r).read_exact(&mut buf).unwrap();
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    buf.chunks(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

const EPERM: i32 = libc::EPERM;

#[test]
fn the_filter_allows_and_denies_real_opens_and_mknods() {
    require_root!();
    let cg = v2_cgroup("devfilter");
    let dir = TempDir::new("devfilter").unwrap();
    cg.apply(&Resources {
        devices: rules(),
        ..Resources::default()
    })
    .unwrap();
    assert_eq!(device_programs(&v2_dir(&cg)).unwrap().len(), 1);
    let got = accesses_in(
        &cg,
        &dir,
        &[
            Try::Open("/dev/null", libc::O_RDWR),
            Try::Open("/dev/zero", libc::O_RDONLY),
            Try::Open("/dev/zero", libc::O_WRONLY),
            Try::Open("/dev/zero", libc::O_RDWR),
            Try::Open("/dev/full", libc::O_RDONLY),
            Try::Mknod("null", 1, 3),
            Try::Mknod("zero", 1, 5),
            Try::Mknod("full", 1, 7),
        ],
    );
    assert_eq!(got, [0, 0, EPERM, EPERM, EPERM, 0, EPERM, EPERM]);
    assert!(dir.join("null").exists());
    assert!(!dir.join("full").exists());
}

#[test]
fn applying_again_replaces_the_program_and_leaves_exactly_one() {
    require_root!();
    let cg = v2_cgroup("devreplace");
    let dir = TempDir::new("devreplace").unwrap();
    let mut r = Resources {
        devices: rules(),
        ..Resources::default()
    };
    cg.apply(&r).unwrap();
    let first = device_programs(&v2_dir(&cg)).unwrap();
    assert_eq!(first.len(), 1);
    // Now also /dev/full, and /dev/null read-only (a later rule narrows
    // the earlier grant for the same device).
    r.devices.push(rule(true, 'c', Some(1), Some(7), "rw"));
    r.devices.push(rule(false, 'c', Some(1), Some(3), "wm"));
    for _ in 0..3 {
        cg.apply(&r).unwrap();
    }
    let now = device_programs(&v2_dir(&cg)).unwrap();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, first, "the program was replaced");
    let got = accesses_in(
        &cg,
        &dir,
        &[
            Try::Open("/dev/full", libc::O_RDWR),
            Try::Open("/dev/null", libc::O_RDONLY),
            Try::Open("/dev/null", libc::O_WRONLY),
            Try::Mknod("null", 1, 3),
        ],
    );
    assert_eq!(got, [0, 0, EPERM, EPERM]);
    detach_device_programs(&v2_dir(&cg)).unwrap();
    assert!(device_programs(&v2_dir(&cg)).unwrap().is_empty());
    let got = accesses_in(&cg, &dir, &[Try::Open("/dev/null", libc::O_WRONLY)]);
    assert_eq!(got, [0], "no filter of its own: the host's rules apply");
}

#[test]
fn a_refused_rule_list_changes_nothing() {
    require_root!();
    let cg = v2_cgroup("devbad");
    cg.apply(&Resources {
        devices: rules(),
        ..Resources::default()
    })
    .unwrap();
    let before = device_programs(&v2_dir(&cg)).unwrap();
    let bad = Resources {
        devices: vec![rule(true, 'x', Some(1), Some(3), "rwm")],
        ..Resources::default()
    };
    assert!(matches!(cg.apply(&bad), Err(Error::InvalidValue { .. })));
    assert!(matches!(cg.plan(&bad), Err(Error::InvalidValue { .. })));
    assert_eq!(device_programs(&v2_dir(&cg)).unwrap(), before);
}

#[test]
fn dockers_rules_load_in_the_kernel() {
    require_root!();
    let mut rules = vec![rule(false, 'a', None, None, "rwm")];
    for (ma, mi) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
        rules.push(rule(true, 'c', Some(ma), Some(mi), "rwm"));
    }
    rules.push(rule(false, 'c', Some(10), Some(229), "rwm"));
    rules.push(rule(true, 'c', None, None, "m"));
    rules.push(rule(true, 'b', Some(8), None, "r"));
    let f = DeviceFilter::new(&rules).unwrap();
    f.load().unwrap();
}
