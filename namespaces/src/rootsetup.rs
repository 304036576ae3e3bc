//! The child's side of the rootfs steps: mounts, nodes and links inside the
//! rootfs, masked and read-only paths, `pivot_root`.
//!
//! Every target is resolved with `openat2(RESOLVE_IN_ROOT)` from the root
//! the child opened, and mounted onto `/proc/self/fd/N` of the resolved
//! descriptor (the host's `/proc`, before `pivot_root`), so that a symlink in
//! the image never makes a mount, a directory or a node land outside the
//! rootfs. Only raw syscalls on prepared data and stack buffers.

use std::ffi::CStr;

use libc::{c_int, c_ulong};

use crate::inroot::{
    Fd, FdPath, StepResult, check, errno, is_mount_root, locked_flags, open_in_root, remount,
    resolve, setattr_readonly,
};
use crate::step::{Create, InRoot, PreparedMount};

/// One mount of the table.
pub(crate) fn mount_in_root(root: c_int, m: &PreparedMount) -> StepResult {
    let source = m.source.as_deref().map_or(std::ptr::null(), CStr::as_ptr);
    mount_from(root, m, source)
}

/// The child's own cgroup in one hierarchy, bound read-only: the path from
/// `own` (the text of `/proc/self/cgroup`), below `mount_point`.
pub(crate) fn cgroup_bind(
    root: c_int,
    own: &[u8],
    key: &CStr,
    mount_point: &CStr,
    mount_root: &CStr,
    m: &PreparedMount,
) -> StepResult {
    let key = key.to_bytes();
    let path = own
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let mut parts = line.splitn(3, |&b| b == b':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            (ctrl == key).then_some(path)
        })
        .ok_or(libc::ENOENT)?;
    let mount_root = mount_root.to_bytes();
    let path = if mount_root != b"/" && path.starts_with(mount_root) {
        &path[mount_root.len()..]
    } else {
        path
    };
    let mut source = [0u8; 4096];
    let base = mount_point.to_bytes();
    let total = base.len() + path.len();
    if total + 1 > source.len() {
        return Err(libc::ENAMETOOLONG);
    }
    source[..base.len()].copy_from_slice(base);
    source[base.len()..total].copy_from_slice(path);
    mount_from(root, m, source.as_ptr().cast())
}

/// A mount of the table with `source` given (NULL for none).
fn mount_from(root: c_int, m: &PreparedMount, source: *const libc::c_char) -> StepResult {
    let target = resolve(root, &m.target, m.create, m.no_symlinks)?;
    let at = FdPath::new(target.0);
    let opt = |c: &Option<std::ffi::CString>| c.as_deref().map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: mount(2) on prepared strings and a stack path.
    unsafe {
        if m.bind {
            let rec = if m.recursive { libc::MS_REC } else { 0 };
            check(libc::mount(
                source,
                at.ptr(),
                std::ptr::null(),
                libc::MS_BIND | rec,
                std::ptr::null(),
            ))?;
        } else {
            check(libc::mount(
                source,
                at.ptr(),
                opt(&m.fstype),
                m.flags,
                opt(&m.data).cast(),
            ))?;
        }
    }
    drop(target);
    // The new mount's root: the same path resolves to it now. Check that
    // it does (a rename racing with us could have moved the target).
    let mounted = resolve(root, &m.target, Create::Nothing, m.no_symlinks)?;
    if !is_mount_root(mounted.0)? {
        return Err(libc::EXDEV);
    }
    let at = FdPath::new(mounted.0);
    if m.bind && m.flags != 0 {
        let mut flags = m.flags;
        if m.keep_locked {
            flags |= locked_flags(mounted.0)?;
        }
        remount(&at, flags)?;
    }
    if m.propagation != 0 {
        // SAFETY: a propagation change on a stack path.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                at.ptr(),
                std::ptr::null(),
                m.propagation,
                std::ptr::null(),
            )
        })?;
    }
    if m.recursive_ro {
        setattr_readonly(mounted.0)?;
    }
    Ok(())
}

/// `mknodat` and `fchownat` of a device node `name` in the directory `dir`
/// (resolved inside the root); an existing file is kept.
pub(crate) fn make_node(
    dir: c_int,
    name: &CStr,
    mode: u32,
    dev: u64,
    uid: u32,
    gid: u32,
) -> StepResult {
    // SAFETY: mknodat/fchownat in a directory fd with a prepared name,
    // never following a symlink.
    unsafe {
        if libc::mknodat(dir, name.as_ptr(), mode, dev) < 0 {
            return if errno() == libc::EEXIST {
                Ok(())
            } else {
                Err(errno())
            };
        }
        // The umask applied to mknod; the node just made is no symlink.
        check(libc::fchmodat(dir, name.as_ptr(), mode & 0o7777, 0))?;
        check(libc::fchownat(
            dir,
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ))
    }
}

/// `symlinkat` of `name` in the directory `dir` (resolved inside the
/// root); an existing file is kept.
pub(crate) fn symlink(dir: c_int, name: &CStr, link: &CStr) -> StepResult {
    // SAFETY: symlinkat in a directory fd with prepared strings.
    if unsafe { libc::symlinkat(link.as_ptr(), dir, name.as_ptr()) } < 0 && errno() != libc::EEXIST
    {
        return Err(errno());
    }
    Ok(())
}

/// Mask `target`: `/dev/null` over a file, a read-only empty tmpfs over a
/// directory; missing is fine.
pub(crate) fn mask(root: c_int, target: &InRoot) -> StepResult {
    let fd = match open_in_root(root, &target.path, 0, false) {
        Err(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    // SAFETY: a raw fstat filling a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::syscall(libc::SYS_fstat, fd.0, &raw mut st) })?;
    let at = FdPath::new(fd.0);
    // The container's own /dev/null when it has one (as runc), else the
    // host's.
    let null = open_in_root(root, c"dev/null", 0, true).ok();
    let null_path = null.as_ref().map(|n| FdPath::new(n.0));
    let null_ptr = null_path
        .as_ref()
        .map_or(c"/dev/null".as_ptr(), FdPath::ptr);
    // SAFETY: mount(2) on literals and stack paths.
    check(unsafe {
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            libc::mount(
                c"tmpfs".as_ptr(),
                at.ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_RDONLY,
                std::ptr::null(),
            )
        } else {
            libc::mount(
                null_ptr,
                at.ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        }
    })
}

/// Make the mount at `target` and every mount below it read-only
/// (`mount_setattr(AT_RECURSIVE)`), without adding a mount.
pub(crate) fn readonly_mount(root: c_int, target: &InRoot) -> StepResult {
    let fd = open_in_root(root, &target.path, 0, false)?;
    setattr_readonly(fd.0)
}

/// Make `target` read-only (recursively, as runc); missing is fine.
pub(crate) fn readonly_path(root: c_int, target: &InRoot, keep_locked: bool) -> StepResult {
    let fd = match open_in_root(root, &target.path, 0, false) {
        Err(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    let at = FdPath::new(fd.0);
    // SAFETY: mount(2) on a stack path.
    check(unsafe {
        libc::mount(
            at.ptr(),
            at.ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })?;
    drop(fd);
    let mounted = open_in_root(root, &target.path, 0, false)?;
    let mut flags = libc::MS_RDONLY | libc::MS_REC;
    if keep_locked {
        flags |= locked_flags(mounted.0)?;
    }
    remount(&FdPath::new(mounted.0), flags)
}

/// Change the propagation of the mount at `target`.
pub(crate) fn set_propagation(root: c_int, target: &InRoot, flags: c_ulong) -> StepResult {
    let fd = open_in_root(root, &target.path, 0, false)?;
    let at = FdPath::new(fd.0);
    // SAFETY: a propagation change on a stack path.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            at.ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    })
}

/// `fchdir` into `target`, resolved inside the root.
pub(crate) fn chdir_in_root(root: c_int, target: &InRoot) -> StepResult {
    if target.prefixes.is_empty() {
        // SAFETY: fchdir on the root we opened.
        return check(unsafe { libc::fchdir(root) });
    }
    let fd = open_in_root(root, &target.path, libc::O_DIRECTORY, false)?;
    // SAFETY: fchdir on a directory descriptor we opened.
    check(unsafe { libc::fchdir(fd.0) })
}

/// `pivot_root` into `rootfs` and detach the old root.
pub(crate) fn pivot_root(rootfs: &CStr) -> StepResult {
    // SAFETY: plain syscalls on a prepared path and literals.
    unsafe {
        check(libc::chdir(rootfs.as_ptr()))?;
        check(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c".".as_ptr(),
        ))?;
        // The old root is now on top of "."; keep its unmount from
        // propagating to the host, then detach it.
        check(libc::mount(
            std::ptr::null(),
            c".".as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ))?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
        check(libc::chdir(c"/".as_ptr()))
    }
}

/// Remount `/` adding `flags`, keeping the locked ones.
pub(crate) fn remount_root(flags: c_ulong) -> StepResult {
    // SAFETY: open/fstatfs/mount on literals.
    let fd = unsafe { libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    check(fd)?;
    let fd = Fd(fd);
    let flags = flags | locked_flags(fd.0)?;
    // SAFETY: mount(2) on a literal.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            std::ptr::null(),
        )
    })
}
