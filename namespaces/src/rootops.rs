//! A tmpfs as the container's root (bubblewrap's model: nothing of the
//! host is needed or left behind) and the filesystem operations that run in
//! order with the mount table: directories, symlinks, files written from a
//! descriptor, mode changes, read-only remounts.
//!
//! ```no_run
//! use dunnage_namespaces::{Command, Mount, RootOp};
//!
//! // An empty tmpfs root with /usr bound read-only and a /bin link.
//! let status = Command::new("/usr/bin/ls")
//!     .arg("/")
//!     .tmpfs_rootfs()
//!     .mount(Mount::bind("/usr", "/usr", &["ro"]))
//!     .root_op(RootOp::Symlink { target: "usr/bin".into(), link: "/bin".into() })
//!     .status()?;
//! # Ok::<(), dunnage_namespaces::Error>(())
//! ```

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libc::c_int;

use crate::error::{Error, Result};
use crate::inroot::{
    Fd, FdPath, StepResult, check, errno, locked_flags, open_in_root, remount, resolve,
};
use crate::mounts::{MountError, check_container_path};
use crate::rootfs::in_root;
use crate::spawn::Command;
use crate::step::{Create, InRoot, Step};

/// Where the child mounts the tmpfs that holds the new root (in its own
/// mount namespace; the host's `/tmp` is never touched).
pub(crate) const TMPFS_BASE: &std::ffi::CStr = c"/tmp";
/// The new root, inside the base tmpfs after the first `pivot_root`.
pub(crate) const NEW_ROOT: &str = "/newroot";
/// The host's root, inside the base tmpfs after the first `pivot_root`:
/// the prefix of every bind source.
pub(crate) const OLD_ROOT: &str = "/oldroot";

/// How many [`RootOp::LockFile`]s a command may hold.
pub const MAX_LOCK_FILES: usize = 16;

/// A filesystem operation inside the rootfs, run in order with the mount
/// table (after the mounts added before it, before those added after).
#[derive(Debug)]
#[non_exhaustive]
pub enum RootOp {
    /// A directory with this mode and missing parents (0755); an existing
    /// one is kept as it is.
    Dir {
        /// Where, inside the rootfs.
        path: PathBuf,
        /// Permission bits of a directory made here.
        mode: u32,
    },
    /// A symbolic link; an existing file at `link` is kept.
    Symlink {
        /// What the link points to.
        target: OsString,
        /// Where the link is made, inside the rootfs.
        link: PathBuf,
    },
    /// A regular file with this mode, its contents read from `source` to
    /// its end (bubblewrap's `--file FD DEST`) by the child. The child has
    /// a copy of every descriptor of the parent until it executes the
    /// program: a pipe's write end must be closed in the parent (or the
    /// data written elsewhere) before the spawn, or the read never ends.
    File {
        /// Where, inside the rootfs.
        path: PathBuf,
        /// The data (a pipe, a file, ...), read by the child.
        source: OwnedFd,
        /// Permission bits.
        mode: u32,
    },
    /// Change the permission bits of an existing path (`--chmod`).
    Chmod {
        /// The path, inside the rootfs (symlinks resolved inside it).
        path: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// Make the path a read-only mount (bound onto itself, remounted
    /// read-only with the mounts below it).
    ReadOnly(PathBuf),
    /// As [`RootOp::ReadOnly`], only when the path exists and is writable
    /// then (bubblewrap's treatment of `/proc/sys`, `/proc/irq`, ... below
    /// a new proc).
    ReadOnlyIfWritable(PathBuf),
    /// Remount the mount at the path read-only (that mount only, no new
    /// mount: bubblewrap's `--remount-ro`).
    RemountReadOnly(PathBuf),
    /// Bind the path onto itself, making it a mount point (bubblewrap's
    /// `--bind-data` after the file is written).
    SelfBind(PathBuf),
    /// Open the file and take a POSIX read lock on it (`F_SETLK`,
    /// `F_RDLCK`), held by the child until it executes the program, or as
    /// long as the sandbox runs with [`init_process`](Command::init_process):
    /// then the child stays as an init that holds the lock while the
    /// program runs, also without a new pid namespace (a parent process
    /// in the sandbox, as bubblewrap's `--lock-file`). The start gate
    /// keeps it. At most [`MAX_LOCK_FILES`] per command.
    LockFile(PathBuf),
    /// Data read from `source` to its end into a file on the tmpfs that
    /// holds the new root (outside it), bound at `path` (made as an empty
    /// file where nothing is), then unlinked: the sandbox sees a mount of a
    /// deleted file (link count 0) that nothing else can reach, as
    /// bubblewrap's `--bind-data` and `--ro-bind-data`. Needs
    /// [`tmpfs_rootfs`](Command::tmpfs_rootfs) (else
    /// [`MountError::NeedsTmpfsRoot`]).
    BindData {
        /// Where the data is bound, inside the rootfs.
        path: PathBuf,
        /// The data (a pipe, a file, ...), read by the child; see
        /// [`RootOp::File`] about pipes.
        source: OwnedFd,
        /// Permission bits of the data file.
        mode: u32,
        /// Bind it read-only.
        read_only: bool,
    },
}

impl Command {
    /// The new root is a fresh tmpfs (mode 0755) made in the child's mount
    /// namespace, as bubblewrap does: no host directory is needed and
    /// nothing is left to clean up. Bind sources are host paths. Replaces
    /// [`rootfs`](Command::rootfs); the mount table, devices, [`RootOp`]s,
    /// masked and read-only paths apply as with a rootfs directory.
    pub fn tmpfs_rootfs(&mut self) -> &mut Command {
        self.rootfs = Some(PathBuf::from(NEW_ROOT));
        self.tmpfs_root = true;
        self.kinds = self.kinds.with(crate::kind::Kind::Mount);
        self
    }

    /// With a new pid namespace, keep the child as the namespace's init
    /// (pid 1) and run the program as its child (pid 2), as bubblewrap does
    /// without `--as-pid-1`: the init reaps orphans and exits with the
    /// program's status (128 + the signal number when a signal killed it)
    /// as soon as the program exits, which ends the namespace's other
    /// processes. Signals sent to the init are not forwarded.
    pub fn init_process(&mut self, yes: bool) -> &mut Command {
        self.init = yes;
        self
    }

    /// Whether a [`RootOp::LockFile`] is among the operations.
    pub(crate) fn holds_lock(&self) -> bool {
        self.root_ops
            .iter()
            .any(|(_, op)| matches!(op, RootOp::LockFile(_)))
    }

    /// Refuse more lock files than the child can hold.
    pub(crate) fn check_locks(&self) -> Result<()> {
        let mut locks = self.root_ops.iter().filter_map(|(_, op)| match op {
            RootOp::LockFile(p) => Some(p),
            _ => None,
        });
        match locks.nth(MAX_LOCK_FILES) {
            Some(p) => Err(Error::InvalidMount {
                destination: p.clone(),
                reason: MountError::TooManyLockFiles(MAX_LOCK_FILES),
            }),
            None => Ok(()),
        }
    }

    /// Add a filesystem operation, run in order with the mount table.
    pub fn root_op(&mut self, op: RootOp) -> &mut Command {
        self.root_ops.push((self.mounts.len(), op));
        self
    }

    /// The prepared step of the operation, the `index`th of the list.
    pub(crate) fn root_op_step(&self, op: &RootOp, index: usize) -> Result<Step> {
        let checked = |p: &Path| -> Result<InRoot> {
            check_container_path(p).map_err(|reason| Error::InvalidMount {
                destination: p.to_owned(),
                reason,
            })?;
            in_root(p)
        };
        let mode_ok = |p: &Path, mode: u32| {
            if mode > 0o7777 {
                Err(Error::InvalidMount {
                    destination: p.to_owned(),
                    reason: MountError::BadMode(mode),
                })
            } else {
                Ok(mode)
            }
        };
        Ok(match op {
            RootOp::Dir { path, mode } => Step::MakeDir {
                target: checked(path)?,
                mode: mode_ok(path, *mode)?,
            },
            RootOp::Symlink { target, link } => Step::Symlink {
                target: checked(link)?,
                link: Error::cstring("symlink target", target)?,
            },
            RootOp::File { path, source, mode } => Step::WriteFile {
                target: checked(path)?,
                fd: source.as_raw_fd(),
                mode: mode_ok(path, *mode)?,
            },
            RootOp::Chmod { path, mode } => Step::Chmod {
                target: checked(path)?,
                mode: mode_ok(path, *mode)?,
            },
            RootOp::ReadOnly(path) => Step::ReadonlyPath(checked(path)?),
            RootOp::RemountReadOnly(path) => Step::RemountReadOnly(checked(path)?),
            RootOp::SelfBind(path) => Step::SelfBind(checked(path)?),
            RootOp::LockFile(path) => Step::LockFile(checked(path)?),
            RootOp::ReadOnlyIfWritable(path) => Step::ReadonlyIfWritable(checked(path)?),
            RootOp::BindData {
                path,
                source,
                mode,
                read_only,
            } => {
                if !self.tmpfs_root {
                    return Err(Error::InvalidMount {
                        destination: path.clone(),
                        reason: MountError::NeedsTmpfsRoot,
                    });
                }
                Step::BindData {
                    target: checked(path)?,
                    fd: source.as_raw_fd(),
                    mode: mode_ok(path, *mode)?,
                    read_only: *read_only,
                    temp: Error::cstring("bind data file", format!("/bindfile-{index}"))?,
                }
            }
        })
    }
}

/// The child's tmpfs root: a tmpfs on [`TMPFS_BASE`], `pivot_root` into it
/// with the host's root at `/oldroot`, the host's `/proc` and `/dev` bound
/// at `/proc` and `/dev` (for `/proc/self/fd/N` paths and `/dev/null`), and
/// `/newroot` bound onto itself for the final `pivot_root`.
pub(crate) fn tmpfs_root() -> StepResult {
    // SAFETY: mount/mkdir/chdir/pivot_root on literals.
    unsafe {
        // No options, as bubblewrap's (its superblock options show through
        // every mount of a file made there, such as --bind-data's).
        check(libc::mount(
            c"tmpfs".as_ptr(),
            TMPFS_BASE.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ))?;
        check(libc::chdir(TMPFS_BASE.as_ptr()))?;
        for dir in [c"newroot", c"oldroot", c"proc", c"dev"] {
            check(libc::mkdir(dir.as_ptr(), 0o755))?;
        }
        check(libc::syscall(
            libc::SYS_pivot_root,
            c".".as_ptr(),
            c"oldroot".as_ptr(),
        ))?;
        check(libc::chdir(c"/".as_ptr()))?;
        for (from, to) in [
            (c"/oldroot/proc", c"/proc"),
            (c"/oldroot/dev", c"/dev"),
            (c"/newroot", c"/newroot"),
        ] {
            check(libc::mount(
                from.as_ptr(),
                to.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        // The final root's own mode (mkdir applied the umask).
        check(libc::chmod(c"/newroot".as_ptr(), 0o755))
    }
}

/// A directory with `mode` where nothing is; an existing one is kept.
pub(crate) fn make_dir(root: c_int, target: &InRoot, mode: u32) -> StepResult {
    match open_in_root(root, &target.path, 0, false) {
        Ok(_) => return Ok(()),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let fd = resolve(root, target, Create::Dir, false)?;
    // SAFETY: chmod of a stack path naming the directory just made.
    check(unsafe { libc::chmod(FdPath::new(fd.0).ptr(), mode) })
}

/// Change the mode of an existing path.
pub(crate) fn chmod(root: c_int, target: &InRoot, mode: u32) -> StepResult {
    let fd = open_in_root(root, &target.path, 0, false)?;
    // SAFETY: chmod of a stack path.
    check(unsafe { libc::chmod(FdPath::new(fd.0).ptr(), mode) })
}

/// A file with `mode`, its contents copied from `source` to its end.
pub(crate) fn write_file(root: c_int, target: &InRoot, source: c_int, mode: u32) -> StepResult {
    let at = resolve(root, target, Create::File, false)?;
    // SAFETY: open/fchmod on a stack path.
    unsafe {
        let fd = libc::open(
            FdPath::new(at.0).ptr(),
            libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
        );
        check(fd)?;
        let out = Fd(fd);
        copy_fd(source, out.0)?;
        check(libc::fchmod(out.0, mode))
    }
}

/// Copy what `source` gives to its end into `out`.
fn copy_fd(source: c_int, out: c_int) -> StepResult {
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: read into a stack buffer of its length.
        let n = unsafe { libc::read(source, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        check(n as i64)?;
        if n == 0 {
            return Ok(());
        }
        let mut done = 0usize;
        while done < n as usize {
            // SAFETY: write from the part of the buffer just read.
            let w = unsafe { libc::write(out, buf[done..].as_ptr().cast(), n as usize - done) };
            if w < 0 && errno() == libc::EINTR {
                continue;
            }
            check(w as i64)?;
            done += w as usize;
        }
    }
}

/// bubblewrap's `--bind-data`: the data into `temp` on the base tmpfs (the
/// current root during the setup, outside the new root), bound at
/// `target`, read-only when asked, then `temp` unlinked (also on failure).
pub(crate) fn bind_data(
    root: c_int,
    target: &InRoot,
    source: c_int,
    mode: u32,
    read_only: bool,
    temp: &std::ffi::CStr,
) -> StepResult {
    // SAFETY: open/fchmod on a literal-derived path the parent prepared.
    let fd = unsafe {
        libc::open(
            temp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    check(fd)?;
    let out = Fd(fd);
    let result = (|| {
        copy_fd(source, out.0)?;
        // SAFETY: fchmod of the file just made.
        check(unsafe { libc::fchmod(out.0, mode) })?;
        let at = resolve(root, target, Create::File, false)?;
        // SAFETY: mount(2) of the temp file on a stack path.
        check(unsafe {
            libc::mount(
                temp.as_ptr(),
                FdPath::new(at.0).ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        })?;
        drop(at);
        if read_only {
            let mounted = open_in_root(root, &target.path, 0, false)?;
            let flags = libc::MS_RDONLY | locked_flags(mounted.0)?;
            remount(&FdPath::new(mounted.0), flags)?;
        }
        Ok(())
    })();
    // SAFETY: unlink of the temp file on the base tmpfs.
    unsafe { libc::unlink(temp.as_ptr()) };
    result
}

/// Make `target` read-only when it exists and is writable now.
pub(crate) fn readonly_if_writable(root: c_int, target: &InRoot) -> StepResult {
    let fd = match open_in_root(root, &target.path, 0, false) {
        Err(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    // SAFETY: access(2) on a stack path.
    if unsafe { libc::access(FdPath::new(fd.0).ptr(), libc::W_OK) } < 0 {
        return Ok(());
    }
    drop(fd);
    crate::rootsetup::readonly_path(root, target, true)
}

/// Remount the mount at `target` read-only, keeping the locked flags.
pub(crate) fn remount_readonly(root: c_int, target: &InRoot) -> StepResult {
    let fd = open_in_root(root, &target.path, 0, false)?;
    let flags = libc::MS_RDONLY | locked_flags(fd.0)?;
    remount(&FdPath::new(fd.0), flags)
}

/// Bind `target` onto itself.
pub(crate) fn self_bind(root: c_int, target: &InRoot) -> StepResult {
    let fd = open_in_root(root, &target.path, 0, false)?;
    let at = FdPath::new(fd.0);
    // SAFETY: mount(2) on a stack path.
    check(unsafe {
        libc::mount(
            at.ptr(),
            at.ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}

/// Open `target` and take a read lock on it; the descriptor stays open
/// (close-on-exec) for the life of this process and is returned. It is
/// numbered at least `min` (above every passed descriptor's target): a
/// later dup2 onto it would close it, and closing any descriptor of the
/// file drops the process's lock.
pub(crate) fn lock_file(root: c_int, target: &InRoot, min: c_int) -> Result<c_int, c_int> {
    let at = open_in_root(root, &target.path, 0, false)?;
    // SAFETY: open/fcntl on a stack path and a zeroed flock.
    unsafe {
        let low = libc::open(FdPath::new(at.0).ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        check(low)?;
        // Moved before the lock is taken: closing `low` later would drop it.
        let fd = libc::fcntl(low, libc::F_DUPFD_CLOEXEC, min);
        libc::close(low);
        check(fd)?;
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_RDLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        if libc::fcntl(fd, libc::F_SETLK, &raw const lock) < 0 {
            let e = errno();
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}
