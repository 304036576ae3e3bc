//! Namespaced sysctls: which ones a container may set (runc's rules), and
//! their `/proc/sys` paths prepared by the parent.

use std::ffi::{CStr, CString};

use crate::confine_error::ConfineError;
use crate::kind::{Kind, Kinds};

/// The namespace that isolates sysctl `name`, or the typed error for one
/// that none does.
pub fn namespace_of(name: &str) -> Result<Kind, ConfineError> {
    let ipc_exact = ["kernel.sem"];
    let ipc_prefixes = ["kernel.shm", "kernel.msg", "fs.mqueue."];
    if ipc_exact.contains(&name) || ipc_prefixes.iter().any(|p| name.starts_with(p)) {
        return Ok(Kind::Ipc);
    }
    if name.starts_with("net.") {
        return Ok(Kind::Net);
    }
    if name == "kernel.hostname" || name == "kernel.domainname" {
        return Ok(Kind::Uts);
    }
    Err(ConfineError::SysctlNotNamespaced {
        name: name.to_owned(),
    })
}

/// A sysctl checked against the process's namespaces, ready for the child:
/// the `/proc/sys/...` path and the value to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl {
    /// `/proc/sys/net/ipv4/ip_forward` for `net.ipv4.ip_forward`.
    pub path: CString,
    /// The value, written as is.
    pub value: CString,
}

impl Sysctl {
    /// Check `name` (dotted, as in runc's `linux.sysctl`) against `own`, the
    /// namespaces the process does not share with the host (new or joined),
    /// and prepare its path.
    pub fn new(name: &str, value: &str, own: Kinds) -> Result<Sysctl, ConfineError> {
        let invalid = || ConfineError::InvalidSysctl {
            name: name.to_owned(),
        };
        if name.split('.').any(|c| c.is_empty() || c == "..")
            || name.contains('\0')
            || value.contains('\0')
            || name.starts_with('/')
        {
            return Err(invalid());
        }
        let kind = namespace_of(name)?;
        if !own.contains(kind) {
            return Err(ConfineError::SysctlNeedsNamespace {
                name: name.to_owned(),
                kind,
            });
        }
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        if path.split('/').any(|c| c == "..") {
            return Err(invalid());
        }
        Ok(Sysctl {
            path: CString::new(path).map_err(|_| invalid())?,
            value: CString::new(value).map_err(|_| invalid())?,
        })
    }

    /// Child side: open the file and write the value. Returns the errno on
    /// failure.
    pub fn apply(&self) -> Result<(), libc::c_int> {
        write_file(&self.path, self.value.as_bytes())
    }
}

/// Child side: open `path` for writing and write `bytes` in one call.
pub(crate) fn write_file(path: &CStr, bytes: &[u8]) -> Result<(), libc::c_int> {
    // SAFETY: open/write/close with a valid C string and buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(crate::caps::errno());
        }
        let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = crate::caps::errno();
        libc::close(fd);
        if n != bytes.len() as isize {
            return Err(if n < 0 { err } else { libc::EIO });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runcs_namespaced_sysctls() {
        let all = Kind::Ipc | Kind::Net | Kind::Uts;
        for (name, kind) in [
            ("net.ipv4.ip_unprivileged_port_start", Kind::Net),
            ("net.ipv4.ping_group_range", Kind::Net),
            ("kernel.shmmax", Kind::Ipc),
            ("kernel.shm_rmid_forced", Kind::Ipc),
            ("kernel.msgmnb", Kind::Ipc),
            ("kernel.sem", Kind::Ipc),
            ("fs.mqueue.queues_max", Kind::Ipc),
            ("kernel.hostname", Kind::Uts),
            ("kernel.domainname", Kind::Uts),
        ] {
            assert_eq!(namespace_of(name).unwrap(), kind, "{name}");
            assert!(Sysctl::new(name, "1", all).is_ok(), "{name}");
        }
        let s = Sysctl::new("net.ipv4.ip_forward", "1", all).unwrap();
        assert_eq!(s.path.to_str().unwrap(), "/proc/sys/net/ipv4/ip_forward");
    }

    #[test]
    fn host_sysctls_and_missing_namespaces_are_refused() {
        let all = Kind::Ipc | Kind::Net | Kind::Uts;
        for name in [
            "kernel.pid_max",
            "vm.swappiness",
            "fs.file-max",
            "kernel.semx",
            "kernel",
            "network.x",
        ] {
            assert!(
                matches!(
                    Sysctl::new(name, "1", all),
                    Err(ConfineError::SysctlNotNamespaced { .. })
                ),
                "{name}"
            );
        }
        let err = Sysctl::new("net.ipv4.ip_forward", "1", Kind::Ipc.into()).unwrap_err();
        assert!(
            matches!(
                err,
                ConfineError::SysctlNeedsNamespace {
                    kind: Kind::Net,
                    ..
                }
            ),
            "{err:?}"
        );
        for bad in [
            "net..ipv4",
            "net.ipv4.",
            ".net",
            "net.a\0b",
            "/net.x",
            "net/../../etc",
        ] {
            let err = Sysctl::new(bad, "1", all).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfineError::InvalidSysctl { .. } | ConfineError::SysctlNotNamespaced { .. }
                ),
                "{bad}: {err:?}"
            );
        }
        assert!(matches!(
            Sysctl::new("net.ipv4.ip_forward", "1\0", all),
            Err(ConfineError::InvalidSysctl { .. })
        ));
    }
}
