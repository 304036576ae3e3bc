//! The child's primitives for paths inside the rootfs: `openat2`
//! (`RESOLVE_IN_ROOT`) resolution creating what is missing, `/proc/self/fd/N`
//! paths on the stack, mount flags from a raw `fstatfs`, `statx` mount
//! checks. Only raw syscalls on prepared data and stack buffers.

use std::ffi::CStr;

use libc::{c_int, c_ulong};

use crate::step::{Create, InRoot};

pub(crate) type StepResult = Result<(), c_int>;

const AT_RECURSIVE: libc::c_uint = 0x8000;

pub(crate) fn errno() -> c_int {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

pub(crate) fn check(rc: impl Into<i64>) -> StepResult {
    if rc.into() < 0 { Err(errno()) } else { Ok(()) }
}

/// A descriptor closed on drop (the child's own, short-lived ones).
pub(crate) struct Fd(pub(crate) c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor this child opened.
        unsafe { libc::close(self.0) };
    }
}

/// `/proc/self/fd/N` as a NUL-terminated string on the stack.
pub(crate) struct FdPath([u8; 32]);

impl FdPath {
    pub(crate) fn new(fd: c_int) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            buf[prefix.len() + i] = digits[len - 1 - i];
        }
        FdPath(buf)
    }

    pub(crate) fn ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

/// `openat2(root, path, O_PATH | O_CLOEXEC | extra, RESOLVE_IN_ROOT | ...)`.
pub(crate) fn open_in_root(
    root: c_int,
    path: &CStr,
    extra: c_int,
    no_symlinks: bool,
) -> Result<Fd, c_int> {
    let mut resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    if no_symlinks {
        resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    // SAFETY: open_how is plain data; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC | extra) as u64;
    how.resolve = resolve;
    loop {
        // SAFETY: openat2 with a valid open_how of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            return Ok(Fd(fd as c_int));
        }
        // EAGAIN: a concurrent rename; try again.
        if errno() != libc::EAGAIN {
            return Err(errno());
        }
    }
}

/// Resolve `target` inside the root, creating what is missing. The
/// deepest existing parent is found from the target upwards (usually the
/// direct parent: one lookup), and each missing component is made in its
/// parent resolved inside the root again.
pub(crate) fn resolve(
    root: c_int,
    target: &InRoot,
    create: Create,
    no_symlinks: bool,
) -> Result<Fd, c_int> {
    match open_in_root(root, &target.path, 0, no_symlinks) {
        Err(libc::ENOENT) if create != Create::Nothing => {}
        other => return other,
    }
    let n = target.prefixes.len().min(target.names.len());
    // The first missing component, with its parent open (`None`: the
    // root). The target itself is missing (checked above).
    let mut first = n.saturating_sub(1);
    let mut parent = None;
    while first > 0 {
        match open_in_root(
            root,
            &target.prefixes[first - 1],
            libc::O_DIRECTORY,
            no_symlinks,
        ) {
            Ok(fd) => {
                parent = Some(fd);
                break;
            }
            Err(libc::ENOENT) => first -= 1,
            Err(e) => return Err(e),
        }
    }
    for i in first..n {
        if i > first {
            parent = Some(open_in_root(
                root,
                &target.prefixes[i - 1],
                libc::O_DIRECTORY,
                no_symlinks,
            )?);
        }
        let dir = parent.as_ref().map_or(root, |p| p.0);
        make_entry(dir, &target.names[i], i + 1 < n || create == Create::Dir)?;
    }
    drop(parent);
    // The target is looked up again inside the root, not taken from the
    // parent just used: a parent renamed out of the root meanwhile (a
    // racing process on a shared file system) cannot hand out a directory
    // outside it.
    open_in_root(root, &target.path, 0, no_symlinks)
}

/// Make a directory (`dir == true`) or an empty file named `name` in the
/// directory `parent`; one that exists already is fine.
fn make_entry(parent: c_int, name: &CStr, dir: bool) -> StepResult {
    // SAFETY: mkdirat/openat in a directory fd with a prepared name;
    // neither follows a final symlink (O_EXCL | O_NOFOLLOW).
    let rc = unsafe {
        if dir {
            libc::mkdirat(parent, name.as_ptr(), 0o755)
        } else {
            let fd = libc::openat(
                parent,
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        }
    };
    if rc < 0 && errno() != libc::EEXIST {
        return Err(errno());
    }
    Ok(())
}

const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;

/// Whether `fd` is the root of a mount (`statx`; true when the kernel
/// does not say).
pub(crate) fn is_mount_root(fd: c_int) -> Result<bool, c_int> {
    // SAFETY: a raw statx filling a zeroed struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            0u32,
            &raw mut st,
        )
    })?;
    if st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT == 0 {
        return Ok(true);
    }
    Ok(st.stx_attributes & STATX_ATTR_MOUNT_ROOT != 0)
}

/// `MS_REMOUNT | MS_BIND | flags` of the mount at `at`.
pub(crate) fn remount(at: &FdPath, flags: c_ulong) -> StepResult {
    // SAFETY: mount(2) on a stack path.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            at.ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        )
    })
}

/// The kernel's `struct statfs` on 64-bit Linux (libc's hides `f_flags`).
#[repr(C)]
struct KernelStatfs {
    f_type: i64,
    f_bsize: i64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [i32; 2],
    f_namelen: i64,
    f_frsize: i64,
    f_flags: i64,
    f_spare: [i64; 4],
}

/// The flags of the mount `fd` is on that a user namespace cannot clear,
/// from a raw `fstatfs` (glibc's `fstatvfs` may read /proc/mounts).
pub(crate) fn locked_flags(fd: c_int) -> Result<c_ulong, c_int> {
    // SAFETY: fstatfs fills a zeroed struct of the kernel's layout.
    let mut st: KernelStatfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::syscall(libc::SYS_fstatfs, fd, &raw mut st) })?;
    let have = st.f_flags as c_ulong;
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_RDONLY, libc::MS_RDONLY),
    ];
    Ok(pairs
        .into_iter()
        .filter(|(st_flag, _)| have & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms))
}

/// The parent directory of a node or link target, kept from one step to
/// the next: the device nodes and `/dev` links of a container share their
/// parent, which is resolved inside the root once instead of per entry.
/// The child drops it before any other kind of step (a mount could cover
/// the directory).
#[derive(Default)]
pub(crate) struct ParentCache<'a> {
    open: Option<(&'a CStr, Fd)>,
}

impl<'a> ParentCache<'a> {
    /// The directory `target` is made in (the root itself for a top-level
    /// name) and the name to make there.
    pub(crate) fn get(
        &mut self,
        root: c_int,
        target: &'a InRoot,
    ) -> Result<(c_int, &'a CStr), c_int> {
        let n = target.prefixes.len();
        let name = target.names.last().ok_or(libc::EINVAL)?;
        if n < 2 {
            return Ok((root, name));
        }
        let prefix = &target.prefixes[n - 2];
        if let Some((held, fd)) = &self.open
            && held.to_bytes() == prefix.to_bytes()
        {
            return Ok((fd.0, name));
        }
        self.open = None;
        let fd = open_in_root(root, prefix, libc::O_DIRECTORY, false)?;
        let raw = fd.0;
        self.open = Some((prefix.as_c_str(), fd));
        Ok((raw, name))
    }

    /// Close the held directory.
    pub(crate) fn clear(&mut self) {
        self.open = None;
    }
}

/// The child's own `/proc/self/cgroup`, read once for every cgroup bind
/// (the child's cgroups do not change during its setup).
pub(crate) struct OwnCgroups {
    buf: [u8; 16384],
    len: Option<usize>,
}

impl OwnCgroups {
    pub(crate) fn new() -> OwnCgroups {
        OwnCgroups {
            buf: [0; 16384],
            len: None,
        }
    }

    /// The file's text, read on the first call.
    pub(crate) fn text(&mut self) -> Result<&[u8], c_int> {
        if self.len.is_none() {
            self.len = Some(read_small(c"/proc/self/cgroup", &mut self.buf)?);
        }
        Ok(&self.buf[..self.len.unwrap_or(0)])
    }
}

/// Read a small file into `buf` (at most its size); the length read.
fn read_small(path: &CStr, buf: &mut [u8]) -> Result<usize, c_int> {
    // SAFETY: open/read/close into the caller's buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        check(fd)?;
        let fd = Fd(fd);
        let mut len = 0;
        while len < buf.len() {
            let n = libc::read(fd.0, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            check(n as i64)?;
            if n == 0 {
                break;
            }
            len += n as usize;
        }
        Ok(len)
    }
}

pub(crate) fn setattr_readonly(fd: c_int) -> StepResult {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our fd with a valid mount_attr.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &raw const attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_formatted_on_the_stack() {
        let p = FdPath::new(1234);
        let s = unsafe { CStr::from_ptr(p.ptr()) };
        assert_eq!(s.to_bytes(), b"/proc/self/fd/1234");
        let p = FdPath::new(0);
        assert_eq!(
            unsafe { CStr::from_ptr(p.ptr()) }.to_bytes(),
            b"/proc/self/fd/0"
        );
    }
}

#[cfg(test)]
mod statfs_tests {
    use super::*;

    #[test]
    fn locked_flags_read_the_mount_flags_of_a_descriptor() {
        // What /proc/self/mountinfo says of /proc.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/proc"))
            .unwrap();
        let opts: Vec<&str> = line.split(' ').nth(5).unwrap().split(',').collect();
        let want = [
            ("nosuid", libc::MS_NOSUID),
            ("nodev", libc::MS_NODEV),
            ("noexec", libc::MS_NOEXEC),
            ("relatime", libc::MS_RELATIME),
            ("noatime", libc::MS_NOATIME),
            ("ro", libc::MS_RDONLY),
        ]
        .into_iter()
        .filter(|(o, _)| opts.contains(o))
        .fold(0, |acc, (_, f)| acc | f);
        let fd = unsafe { libc::open(c"/proc".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        assert!(fd >= 0);
        let flags = locked_flags(fd).unwrap();
        unsafe { libc::close(fd) };
        assert_eq!(flags, want, "{flags:#x} for {line}");
    }
}
