//! A rootfs set up in the caller's own mount namespace
//! ([`Command::rootfs_in_current_mount_namespace`]) on a shared mount:
//! the rootfs bind and the mounts below it are private, and the shared
//! mount above keeps its propagation. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use dunnage_base::mountinfo::MountInfo;
use dunnage_namespaces::{Command, Mount};
use dunnage_testsupport::{TempDir, detach_unmount, mounts_below, require_root};

/// Detaches everything below a directory when dropped (a failing test
/// leaves nothing mounted).
struct Unmounter(PathBuf);

impl Drop for Unmounter {
    fn drop(&mut self) {
        for _ in 0..4 {
            for m in mounts_below(&self.0).into_iter().rev() {
                let _ = detach_unmount(&m);
            }
        }
    }
}

fn mount(source: &str, target: &Path, fstype: &str, flags: libc::c_ulong) {
    let s = std::ffi::CString::new(source).unwrap();
    let t = dunnage_base::cstr::cstring(target.as_os_str()).unwrap();
    let f = std::ffi::CString::new(fstype).unwrap();
    // SAFETY: C strings we own.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, std::ptr::null()) };
    assert_eq!(
        rc,
        0,
        "mount {target:?}: {}",
        std::io::Error::last_os_error()
    );
}

fn top(table: &[MountInfo], at: &Path) -> MountInfo {
    table
        .iter()
        .rev()
        .find(|m| m.mount_point == at)
        .unwrap_or_else(|| panic!("nothing mounted at {at:?}"))
        .clone()
}

fn shared(m: &MountInfo) -> bool {
    m.optional.iter().any(|o| o.starts_with("shared:"))
}

/// On a shared tmpfs (made here), the child's rootfs bind and its /proc
/// are private; the tmpfs is still shared.
#[test]
fn rootfs_bind_in_a_shared_namespace_is_private() {
    require_root!();
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        dunnage_testsupport::skip("sharedns", "needs busybox-static");
        return;
    };
    let tmp = TempDir::new("ns-sharedns-private").unwrap();
    let _unmount = Unmounter(tmp.path().to_owned());
    let base = tmp.join("shared");
    std::fs::create_dir(&base).unwrap();
    mount("tmpfs", &base, "tmpfs", 0);
    mount("none", &base, "", libc::MS_SHARED);
    let rootfs = base.join("rootfs");
    for d in ["bin", "proc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sleep")).unwrap();
    let mut child = Command::new("/bin/sleep")
        .arg("100")
        .rootfs_in_current_mount_namespace(&rootfs)
        .mount(Mount::new("proc", "/proc", &[]))
        .env_clear()
        .start_gate(true)
        .spawn()
        .unwrap();
    let table = dunnage_base::mountinfo::read_self().unwrap();
    let bind = top(&table, &rootfs);
    let proc = top(&table, &rootfs.join("proc"));
    let above = top(&table, &base);
    // Dropping the gate ends the child.
    drop(child.take_gate());
    let _ = child.kill();
    let _ = child.wait();
    assert!(!shared(&bind), "rootfs bind: {:?}", bind.optional);
    assert!(!shared(&proc), "its /proc: {:?}", proc.optional);
    assert!(shared(&above), "the tmpfs above: {:?}", above.optional);
}
