//! Keep a namespace alive without a process in it, by bind-mounting its
//! namespace file onto a regular file (what `ip netns add` and
//! `unshare --net=FILE` do), and release it again.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ident::{NamespaceId, open_namespace_file};
use crate::kind::Kind;

/// A namespace kept alive by a bind mount at [`path`](Self::path).
///
/// Dropping the value keeps the namespace (that is the point of
/// persisting); [`release`](Self::release) ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the namespace stays persisted until released"]
pub struct PersistedNamespace {
    path: PathBuf,
    id: NamespaceId,
}

impl PersistedNamespace {
    /// The file the namespace is bound to; [`crate::join_file`] joins it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's identity.
    pub fn id(&self) -> NamespaceId {
        self.id
    }

    /// Unmount the file and remove it. The namespace ends when no process and
    /// no other file holds it.
    pub fn release(self) -> Result<()> {
        release(&self.path)
    }
}

/// Persist the `kind` namespace of process `pid` at `target`
/// (`/proc/<pid>/ns/<kind>` bind-mounted onto it).
///
/// A mount namespace can only be persisted on a mount that is not shared
/// (the kernel refuses with EINVAL, as for util-linux `unshare --mount=FILE`).
pub fn persist(pid: i32, kind: Kind, target: &Path) -> Result<PersistedNamespace> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(Error::NoSuchProcess(pid));
    }
    persist_file(&kind.proc_path(pid), target)
}

/// Persist the namespace that the namespace file `source` refers to (for
/// example `/proc/self/ns/pid_for_children`) at `target`.
///
/// `target` is created as an empty file when missing; if the bind mount
/// fails, a file created here is removed again.
pub fn persist_file(source: &Path, target: &Path) -> Result<PersistedNamespace> {
    let (fd, kind) = open_namespace_file(source)?;
    let created = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(target)
    {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("create", target, e)),
    };
    let result = bind(&format!("/proc/self/fd/{}", fd.as_raw_fd()), target);
    if let Err(e) = result {
        if created {
            let _ = std::fs::remove_file(target);
        }
        return Err(e);
    }
    let id = NamespaceId::of_file(target)?;
    debug_assert_eq!(id.kind, kind);
    Ok(PersistedNamespace {
        path: target.to_path_buf(),
        id,
    })
}

/// Release a persisted namespace file: check that it is one, detach-unmount
/// it and remove the file.
pub fn release(path: &Path) -> Result<()> {
    open_namespace_file(path)?;
    let c = Error::cstring("path", path)?;
    // SAFETY: c is a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(Error::io("umount", path, io::Error::last_os_error()));
    }
    std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
}

fn bind(source: &str, target: &Path) -> Result<()> {
    let src = Error::cstring("path", source)?;
    let dst = Error::cstring("path", target)?;
    // SAFETY: both are valid C strings; NULL type and data are allowed for a
    // bind mount.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            "mount --bind",
            target,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
