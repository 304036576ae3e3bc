//! Loading a [`DeviceFilter`] with `bpf(2)` and attaching it to a v2
//! cgroup as its only device program.
//!
//! The syscall is made raw through `libc::syscall(SYS_bpf, ...)` with the
//! parts of `union bpf_attr` each command reads, zero-filled beyond them
//! (the kernel requires unused bytes to be zero).

use crate::devices::DeviceFilter;
use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The license the program declares. It calls no helper, so the kernel
/// does not require a GPL-compatible one.
const LICENSE: &[u8] = b"MIT OR Apache-2.0\0";
/// The program's name as `bpftool prog` shows it (at most 15 bytes).
const PROG_NAME: &[u8] = b"dunnage_devices";

/// `bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `bpf_attr` for BPF_PROG_QUERY, up to `prog_cnt`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof attr)`: the return value or the errno.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised repr(C) prefix of bpf_attr of
    // exactly the size passed; the pointers inside it point at buffers
    // that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An fd the kernel returned.
fn owned_fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: r is a fresh fd from a successful bpf() call, owned by us.
    unsafe { OwnedFd::from_raw_fd(r as libc::c_int) }
}

fn sys(op: &'static str, path: Option<&Path>, source: io::Error) -> Error {
    Error::Bpf {
        op,
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        source,
    }
}

/// A loaded device program (the kernel frees it when its last fd closes
/// and no cgroup holds it).
#[derive(Debug)]
pub struct DeviceProgram {
    fd: OwnedFd,
}

impl AsFd for DeviceProgram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl DeviceFilter {
    /// Load the program (`bpf(BPF_PROG_LOAD)`, type
    /// `BPF_PROG_TYPE_CGROUP_DEVICE`).
    ///
    /// Needs `CAP_BPF` or `CAP_SYS_ADMIN`. When the verifier refuses the
    /// program, the call is repeated with a log and the error is
    /// [`Error::BpfVerifier`] carrying it.
    pub fn load(&self) -> Result<DeviceProgram> {
        let code = self.bytes();
        let insn_cnt = u32::try_from(self.instructions().len())
            .map_err(|_| Error::invalid("devices", "too many rules"))?;
        let mut attr = LoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt,
            insns: code.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            ..LoadAttr::default()
        };
        attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(DeviceProgram { fd: owned_fd(fd) }),
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    || e.raw_os_error() == Some(libc::EACCES) =>
            {
                let mut log = vec![0u8; 64 * 1024];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let again = bpf(BPF_PROG_LOAD, &mut attr);
                if let Ok(fd) = again {
                    return Ok(DeviceProgram { fd: owned_fd(fd) });
                }
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                Err(Error::BpfVerifier {
                    log: String::from_utf8_lossy(&log[..end]).trim_end().to_owned(),
                    source: e,
                })
            }
            Err(e) => Err(sys("bpf(BPF_PROG_LOAD)", None, e)),
        }
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", dir, e.into()))
}

/// The ids of the device programs attached to the v2 cgroup `dir` itself
/// (not those inherited from its ancestors), and the attach flags.
fn query(dir: &Path, cg: BorrowedFd<'_>) -> Result<(Vec<u32>, u32)> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut attr = QueryAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..QueryAttr::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok((ids, attr.attach_flags));
            }
            // More programs than room: the kernel said how many.
            Err(e)
                if e.raw_os_error() == Some(libc::ENOSPC) && attr.prog_cnt as usize > ids.len() =>
            {
                ids = vec![0; attr.prog_cnt as usize];
            }
            Err(e) => return Err(sys("bpf(BPF_PROG_QUERY)", Some(dir), e)),
        }
    }
}

/// The ids of the device programs attached to the v2 cgroup directory
/// `dir` itself (`bpf(BPF_PROG_QUERY)`; `bpftool cgroup show DIR` lists
/// the same).
pub fn device_programs(dir: &Path) -> Result<Vec<u32>> {
    let cg = open_dir(dir)?;
    Ok(query(dir, cg.as_fd())?.0)
}

/// Make `prog` the only device program of the v2 cgroup directory `dir`.
///
/// The new program is attached with `BPF_F_ALLOW_MULTI` first, then the
/// programs attached before are detached (by fds from
/// `BPF_PROG_GET_FD_BY_ID`), so the cgroup is never without a filter. When
/// someone else attached a single program without `BPF_F_ALLOW_MULTI`,
/// attaching with the same flags replaces it in place.
pub fn attach_device_program(dir: &Path, prog: &DeviceProgram) -> Result<()> {
    let cg = open_dir(dir)?;
    let (old, flags) = query(dir, cg.as_fd())?;
    let multi = old.is_empty() || flags & BPF_F_ALLOW_MULTI != 0;
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: if multi { BPF_F_ALLOW_MULTI } else { flags },
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| sys("bpf(BPF_PROG_ATTACH)", Some(dir), e))?;
    if multi {
        detach(dir, cg.as_fd(), &old)?;
    }
    Ok(())
}

/// Detach the programs `ids` from the cgroup `cg` (at `dir`); a program
/// that is gone meanwhile is skipped.
fn detach(dir: &Path, cg: BorrowedFd<'_>, ids: &[u32]) -> Result<()> {
    for &id in ids {
        let mut get = GetFdAttr {
            prog_id: id,
            ..GetFdAttr::default()
        };
        let old = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => owned_fd(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys("bpf(BPF_PROG_GET_FD_BY_ID)", Some(dir), e)),
        };
        let mut attr = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..AttachAttr::default()
        };
        match bpf(BPF_PROG_DETACH, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(sys("bpf(BPF_PROG_DETACH)", Some(dir), e)),
        }
    }
    Ok(())
}

/// Detach every device program attached to the v2 cgroup directory `dir`
/// itself; its accesses are then checked only by its ancestors' programs.
pub fn detach_device_programs(dir: &Path) -> Result<()> {
    let cg = open_dir(dir)?;
    let (old, _) = query(dir, cg.as_fd())?;
    detach(dir, cg.as_fd(), &old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernels_bpf_attr() {
        use std::mem::size_of;
        assert_eq!(size_of::<LoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(LoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(LoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<AttachAttr>(), 20);
        assert_eq!(size_of::<QueryAttr>(), 32);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(size_of::<GetFdAttr>(), 12);
    }

    #[test]
    fn errors_name_the_command_and_the_cgroup() {
        let eperm = || io::Error::from_raw_os_error(libc::EPERM);
        let e = sys("bpf(BPF_PROG_LOAD)", None, eperm()).to_string();
        assert!(e.starts_with("bpf(BPF_PROG_LOAD): "), "{e}");
        let e = sys("bpf(BPF_PROG_ATTACH)", Some(Path::new("/cg")), eperm()).to_string();
        assert!(e.starts_with("bpf(BPF_PROG_ATTACH) on /cg: "), "{e}");
    }
}
