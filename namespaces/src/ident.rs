//! Identity of namespaces: which namespace a process is in, and whether two
//! processes share one.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::kind::Kind;

/// `NS_GET_NSTYPE`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// One namespace, identified as the kernel does: the device and inode of its
/// nsfs file. Displayed like `readlink /proc/<pid>/ns/net`: `net:[4026531956]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NamespaceId {
    /// The kind.
    pub kind: Kind,
    /// Device of the nsfs file.
    pub dev: u64,
    /// Inode of the nsfs file (the number shown in brackets).
    pub ino: u64,
}

impl NamespaceId {
    /// The `kind` namespace of process `pid` (`stat /proc/<pid>/ns/<kind>`).
    pub fn of(pid: i32, kind: Kind) -> Result<NamespaceId> {
        let path = kind.proc_path(pid);
        let meta = std::fs::metadata(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound && !Path::new(&format!("/proc/{pid}")).exists() {
                Error::NoSuchProcess(pid)
            } else {
                Error::io("stat", &path, e)
            }
        })?;
        Ok(NamespaceId {
            kind,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The `kind` namespace of the calling thread.
    pub fn of_self(kind: Kind) -> Result<NamespaceId> {
        let path = format!("/proc/thread-self/ns/{}", kind.proc_name());
        let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        Ok(NamespaceId {
            kind,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The namespace a file refers to: a `/proc/<pid>/ns/*` file or a
    /// persisted bind mount of one. Anything else is
    /// [`Error::NotANamespace`].
    pub fn of_file(path: &Path) -> Result<NamespaceId> {
        let (file, kind) = open_namespace_file(path)?;
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        Ok(NamespaceId {
            kind,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether process `pid` is in this namespace.
    pub fn contains(&self, pid: i32) -> Result<bool> {
        Ok(NamespaceId::of(pid, self.kind)? == *self)
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:[{}]", self.kind, self.ino)
    }
}

/// All namespaces of process `pid`, one per kind this kernel has.
pub fn namespaces_of(pid: i32) -> Result<Vec<NamespaceId>> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.is_supported())
        .map(|k| NamespaceId::of(pid, k))
        .collect()
}

/// Whether processes `a` and `b` are in the same `kind` namespace.
pub fn same_namespace(a: i32, b: i32, kind: Kind) -> Result<bool> {
    Ok(NamespaceId::of(a, kind)? == NamespaceId::of(b, kind)?)
}

/// Open a namespace file and find its kind: the file must live on nsfs and
/// answer the `NS_GET_NSTYPE` ioctl.
pub(crate) fn open_namespace_file(path: &Path) -> Result<(File, Kind)> {
    let fd = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let not_ns = || Error::NotANamespace {
        path: path.to_path_buf(),
    };
    // SAFETY: statfs is plain data, filled by the kernel.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and sfs is a valid out-pointer.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sfs) } != 0 {
        return Err(Error::io("statfs", path, io::Error::last_os_error()));
    }
    // The field's type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    if sfs.f_type as i64 != libc::NSFS_MAGIC as i64 {
        return Err(not_ns());
    }
    // SAFETY: NS_GET_NSTYPE takes no argument.
    let nstype = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    let kind = Kind::from_clone_flag(nstype).ok_or_else(not_ns)?;
    Ok((fd, kind))
}
