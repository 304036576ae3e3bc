//! The child's setup as data: an ordered list of [`Step`]s that the parent
//! builds and validates, and the child runs with raw syscalls only.
//!
//! Every path, string, id list and flag word is prepared in the parent
//! (C strings, `Vec`s, resolved numbers); the child reads them and makes one
//! or a few syscalls per step, without allocating or taking a lock. A failed
//! step is reported to the parent as its index in the list and the errno,
//! and comes back from [`crate::Command::spawn`] as [`crate::Error::Setup`].
//!
//! Adding a step kind is one variant here (with its [`Step::name`] and
//! [`Display`](fmt::Display) text) and one function in the child's runner
//! (`setup.rs`).

use std::ffi::CString;
use std::fmt;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong, gid_t, pid_t, uid_t};

/// A path inside the rootfs, resolved by the child from the root it opened
/// ([`Step::OpenRoot`]) with `openat2(RESOLVE_IN_ROOT)`: `..` and symlinks
/// (absolute or relative) never leave the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRoot {
    /// The path relative to the root (`dev/shm`).
    pub path: CString,
    /// Each leading part of it (`dev`, `dev/shm`), to create what is
    /// missing one component at a time.
    pub prefixes: Vec<CString>,
    /// The last component of each prefix (`dev`, `shm`).
    pub names: Vec<CString>,
}

impl fmt::Display for InRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(self.path.as_bytes()))
    }
}

/// What to create at a missing mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nothing: a missing target is an error.
    Nothing,
    /// A directory (mode 0755), with missing parents.
    Dir,
    /// An empty file (mode 0644), with missing parent directories.
    File,
}

/// One prepared mount of the container's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedMount {
    /// Where, inside the rootfs.
    pub target: InRoot,
    /// What to create when the target is missing.
    pub create: Create,
    /// Refuse a symlink anywhere in the target (proc, sysfs, /dev).
    pub no_symlinks: bool,
    /// The source (a host path for binds).
    pub source: Option<CString>,
    /// The filesystem type (`None` for binds).
    pub fstype: Option<CString>,
    /// `MS_*` flags of the mount (for binds: those of the remount).
    pub flags: c_ulong,
    /// Filesystem data.
    pub data: Option<CString>,
    /// A bind mount (`MS_BIND`, then a remount with `flags` if any).
    pub bind: bool,
    /// A recursive bind (`MS_REC`).
    pub recursive: bool,
    /// On the remount of a bind, keep the flags the kernel locks in a
    /// user namespace (nosuid, nodev, noexec, atime) as the source has
    /// them.
    pub keep_locked: bool,
    /// Propagation flags applied afterwards (0: none).
    pub propagation: c_ulong,
    /// Recursively read-only (`mount_setattr(AT_RECURSIVE)`).
    pub recursive_ro: bool,
}

/// One prepared step of the child's setup, in the order the child runs them.
///
/// File descriptor numbers are those of one spawn; in
/// [`crate::Command::plan`] the descriptors that only exist during a spawn
/// are shown as -1.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// `close` these descriptors: the parent's ends of the child's pipes,
    /// which the child must not hold (a reader would never see end of file).
    Close {
        /// The descriptors.
        fds: Vec<RawFd>,
    },
    /// Join cgroup v1 hierarchies: write `0` (the calling thread) to each
    /// of these open `tasks` files, then close it. A single thread moving
    /// itself skips the kernel's global threadgroup lock, whose write side
    /// waits for an RCU grace period when the parent writes the child's pid
    /// to `cgroup.procs`.
    JoinCgroups {
        /// The `tasks` files, open for writing (the opener's credentials
        /// are the ones the kernel checks).
        fds: Vec<RawFd>,
    },
    /// Wait for the parent's byte on `fd` (the cgroups exist now; end of
    /// file: they will not, `ECANCELED`), then join them as
    /// [`Step::JoinCgroups`] does, opening each `tasks` file by path.
    JoinCgroupsLater {
        /// Read end of the pipe from the parent.
        fd: RawFd,
        /// The `tasks` files.
        tasks: Vec<CString>,
    },
    /// `prctl(PR_SET_PDEATHSIG)`, then exit quietly if the parent already
    /// died (its pid is no longer the child's parent).
    ParentDeathSignal {
        /// The signal.
        signal: c_int,
        /// The parent's pid as the child sees it (0: not checked, as in a
        /// new pid namespace).
        parent: pid_t,
    },
    /// Wait for the parent's go byte on the sync pipe (the parent writes id
    /// maps, persists namespaces and runs its hook meanwhile). End of file
    /// means the parent went away: the child exits quietly with status 127.
    WaitParent {
        /// Read end of the sync pipe.
        fd: RawFd,
    },
    /// `prctl(PR_SET_DUMPABLE, 0)`: until exec, no other process of the
    /// container (same uid) can open `/proc/<pid>/exe` (this binary, on
    /// the host: CVE-2019-5736), its memory or its descriptors. `execve`
    /// makes an ordinary program dumpable again.
    NotDumpable,
    /// `dup2(from, to)`: stdin, stdout or stderr from a prepared source.
    Dup2 {
        /// The source descriptor (3 or above).
        from: RawFd,
        /// 0, 1 or 2.
        to: RawFd,
    },
    /// `mount(NULL, target, NULL, flags, NULL)` changing propagation.
    Propagation {
        /// The mount point.
        target: CString,
        /// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED` or `MS_UNBINDABLE`, with
        /// `MS_REC` when recursive.
        flags: c_ulong,
    },
    /// `sethostname` in the new UTS namespace.
    Hostname(CString),
    /// `setdomainname` in the new UTS namespace.
    Domainname(CString),
    /// `ioctl(SIOCSIFFLAGS)` bringing `lo` up in the new network namespace.
    Loopback,
    /// `unshare(CLONE_NEWTIME)`, writing the offsets to
    /// `/proc/self/timens_offsets` and `setns` into `time_for_children`.
    TimeNamespace {
        /// The offsets in the kernel's format (`monotonic 5 0\n...`).
        offsets: CString,
    },
    /// `chroot` into a directory, then `chdir("/")`.
    Chroot(CString),
    /// `fchdir` to a directory descriptor opened by the parent, then
    /// `chroot(".")`: an exec target's root.
    ChrootFd(RawFd),
    /// `chdir` into a directory.
    Chdir(CString),
    /// `fchdir` into a directory resolved inside the root
    /// (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`).
    ChdirInRoot(InRoot),
    /// `mount(2)` with the classic API.
    Mount {
        /// The source (NULL when `None`).
        source: Option<CString>,
        /// The mount point.
        target: CString,
        /// The filesystem type (NULL when `None`).
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: c_ulong,
        /// Filesystem options (NULL when `None`).
        data: Option<CString>,
    },
    /// `setgroups(2)` as a raw syscall (glibc's wrapper would signal the
    /// parent's threads, which do not exist in the child).
    SetGroups(Vec<gid_t>),
    /// `setresgid(gid, gid, gid)` as a raw syscall.
    SetGid(gid_t),
    /// `setresuid(uid, uid, uid)` as a raw syscall.
    SetUid(uid_t),
    /// Default SIGPIPE (Rust ignores it) and an empty signal mask.
    ResetSignals,
    /// Bind the rootfs onto itself (recursively), so that it is a mount
    /// point that `pivot_root` accepts.
    BindRootfs(CString),
    /// Make the rootfs bind and everything below it private
    /// (`MS_PRIVATE|MS_REC`): in a shared mount namespace, so that the
    /// container's mounts do not propagate to peer namespaces (the
    /// propagation of `/` is left as it is).
    PrivateRootfs(CString),
    /// A tmpfs root (`Command::tmpfs_rootfs`): a tmpfs on `/tmp` of the
    /// child's mount namespace, `pivot_root` into it with the host's root
    /// at `/oldroot`, the host's `/proc` and `/dev` bound in, and
    /// `/newroot` bound onto itself for the final `pivot_root`.
    TmpfsRoot,
    /// A directory inside the rootfs with this mode where nothing is.
    MakeDir {
        /// Where.
        target: InRoot,
        /// Permission bits.
        mode: u32,
    },
    /// Change the mode of a path inside the rootfs.
    Chmod {
        /// The path.
        target: InRoot,
        /// Permission bits.
        mode: u32,
    },
    /// A file inside the rootfs with this mode, its contents read from a
    /// descriptor to its end.
    WriteFile {
        /// Where.
        target: InRoot,
        /// The data's descriptor.
        fd: RawFd,
        /// Permission bits.
        mode: u32,
    },
    /// Open the rootfs (`O_PATH`), the root that [`InRoot`] paths are
    /// resolved from.
    OpenRoot(CString),
    /// One entry of the mount table, inside the rootfs.
    MountInRoot(PreparedMount),
    /// Bind the child's own cgroup of one hierarchy (read from
    /// `/proc/self/cgroup` by the child, after the parent's hook may have
    /// moved it) below the container's `/sys/fs/cgroup`.
    CgroupBind {
        /// The hierarchy as `/proc/self/cgroup` names it (`cpu,cpuacct`,
        /// `name=systemd`; empty for cgroup2).
        key: CString,
        /// The host's mount point of the hierarchy.
        mount_point: CString,
        /// The root of that mount inside the hierarchy (`/` normally).
        mount_root: CString,
        /// The bind, with `source` unset (the child composes it).
        mount: PreparedMount,
    },
    /// `mknodat` + `fchownat` of a device node inside the rootfs (an
    /// existing file is left as it is).
    MakeNode {
        /// Where.
        target: InRoot,
        /// Type and permission bits (`S_IFCHR | 0o666`).
        mode: u32,
        /// `makedev(major, minor)`.
        dev: u64,
        /// Owner.
        uid: uid_t,
        /// Group.
        gid: gid_t,
    },
    /// `symlinkat(link, target)` inside the rootfs (an existing file is
    /// left as it is).
    Symlink {
        /// Where the link is made.
        target: InRoot,
        /// What it points to.
        link: CString,
    },
    /// Mask a path: `/dev/null` bound over a file, an empty read-only tmpfs
    /// over a directory. A missing path is skipped.
    Mask(InRoot),
    /// Make a path read-only (bind onto itself, remount read-only). A
    /// missing path is skipped.
    ReadonlyPath(InRoot),
    /// Remount the mount at a path read-only (no new mount).
    RemountReadOnly(InRoot),
    /// Bind a path onto itself.
    SelfBind(InRoot),
    /// Open a file and hold a POSIX read lock on it.
    LockFile(InRoot),
    /// Open the host's `/proc` for [`Step::InnerUserNamespace`].
    OpenProc,
    /// Unshare a user namespace nested in the new one and write its maps
    /// (`setgroups` denied) through the `/proc` opened by
    /// [`Step::OpenProc`].
    InnerUserNamespace {
        /// The inner uid map's text.
        uid_map: CString,
        /// The inner gid map's text.
        gid_map: CString,
    },
    /// Data from a descriptor into a temporary file on the base tmpfs,
    /// bound at the target, then unlinked.
    BindData {
        /// Where the data is bound.
        target: InRoot,
        /// The data's descriptor.
        fd: RawFd,
        /// Permission bits of the data file.
        mode: u32,
        /// Bind it read-only.
        read_only: bool,
        /// The temporary file's path on the base tmpfs.
        temp: CString,
    },
    /// As [`Step::ReadonlyPath`], only when the path is writable.
    ReadonlyIfWritable(InRoot),
    /// Make an existing mount and the mounts below it read-only
    /// (`mount_setattr(AT_RECURSIVE)`), as for the cgroup v1 tmpfs.
    ReadonlyMount(InRoot),
    /// `pivot_root` into the rootfs: `chdir(rootfs)`,
    /// `pivot_root(".", ".")`, the old root made a recursive slave and
    /// detached, `chdir("/")`.
    PivotRoot(CString),
    /// Remount `/` with these flags added (read-only root), keeping the
    /// flags the kernel locks.
    RemountRoot {
        /// `MS_RDONLY`, ...
        flags: c_ulong,
    },
    /// Change the propagation of `/` after `pivot_root`.
    RootPropagation {
        /// `MS_SHARED`, `MS_SLAVE`, ... with `MS_REC`.
        flags: c_ulong,
    },
    /// Change the propagation of the mount at a path inside the root (per
    /// mount propagation again after [`Step::RootPropagation`] changed the
    /// whole tree).
    SetPropagation {
        /// The mount.
        target: InRoot,
        /// `MS_SHARED`, `MS_SLAVE`, ... with `MS_REC` when recursive.
        flags: c_ulong,
    },
    /// `unshare` new namespaces in the child (a cgroup namespace after the
    /// parent placed the child in its cgroups).
    Unshare {
        /// `CLONE_NEW*` flags.
        flags: c_int,
    },
    /// `setns` into an existing namespace.
    Setns {
        /// The namespace file or pidfd.
        fd: RawFd,
        /// Its `CLONE_NEW*` flag (0: any).
        nstype: c_int,
    },
    /// The start gate: tell the parent the setup is done (it gets the
    /// child from `spawn`), then block until one byte arrives on `fd`. End
    /// of file (every holder of the write end closed it without
    /// releasing) ends the child with status 127.
    StartGate {
        /// Read end of the gate pipe.
        fd: RawFd,
        /// When the program is executed after the gate: close every
        /// descriptor from 3 up except these (sorted), the gate and the
        /// error pipe before waiting, so that a waiting child holds none of
        /// the parent's pipes (a reader of the caller's output would wait
        /// for it). `None` for a closure, which may use what it inherited.
        keep: Option<Vec<RawFd>>,
        /// The parent's `RLIMIT_NOFILE` soft limit (bound of the fallback
        /// loop before Linux 5.9).
        limit: c_int,
    },
    /// Mark every descriptor from `first` up close-on-exec, so that nothing
    /// leaked into the parent reaches the program (CVE-2024-21626):
    /// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11), or on older kernels
    /// `fcntl(F_SETFD)` on each number below `limit`.
    CloseFrom {
        /// The first descriptor.
        first: c_int,
        /// Descriptors kept open for the program (sorted).
        keep: Vec<c_int>,
        /// The parent's `RLIMIT_NOFILE` soft limit (bound of the fallback).
        limit: c_int,
    },
    /// A confinement step: capabilities, rlimits, sysctls, seccomp, ...
    Confine(crate::confine::ConfineStep),
    /// The program's terminal: a pty as controlling terminal and stdio.
    Terminal(crate::terminal::TerminalStep),
}

impl Step {
    /// A short name of the step kind (`"chdir"`, `"mount"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Close { .. } => "close",
            Step::JoinCgroups { .. } => "join cgroups",
            Step::JoinCgroupsLater { .. } => "join cgroups made meanwhile",
            Step::ParentDeathSignal { .. } => "parent death signal",
            Step::WaitParent { .. } => "wait for parent",
            Step::NotDumpable => "not dumpable",
            Step::Dup2 { .. } => "dup2",
            Step::Propagation { .. } => "propagation",
            Step::Hostname(_) => "sethostname",
            Step::Domainname(_) => "setdomainname",
            Step::Loopback => "loopback up",
            Step::TimeNamespace { .. } => "time namespace",
            Step::Chroot(_) => "chroot",
            Step::ChrootFd(_) => "chroot into the target's root",
            Step::Chdir(_) | Step::ChdirInRoot(_) => "chdir",
            Step::Mount { .. } => "mount",
            Step::SetGroups(_) => "setgroups",
            Step::SetGid(_) => "setresgid",
            Step::SetUid(_) => "setresuid",
            Step::ResetSignals => "reset signals",
            Step::CloseFrom { .. } => "close-on-exec fds",
            Step::BindRootfs(_) => "bind rootfs",
            Step::PrivateRootfs(_) => "make rootfs private",
            Step::OpenRoot(_) => "open rootfs",
            Step::TmpfsRoot => "tmpfs root",
            Step::MakeDir { .. } => "mkdir",
            Step::Chmod { .. } => "chmod",
            Step::WriteFile { .. } => "write file",
            Step::MountInRoot(_) => "mount",
            Step::CgroupBind { .. } => "cgroup bind",
            Step::MakeNode { .. } => "mknod",
            Step::Symlink { .. } => "symlink",
            Step::Mask(_) => "mask",
            Step::ReadonlyPath(_) => "read-only path",
            Step::ReadonlyIfWritable(_) => "read-only path",
            Step::RemountReadOnly(_) => "remount read-only",
            Step::SelfBind(_) => "bind onto itself",
            Step::LockFile(_) => "lock file",
            Step::OpenProc => "open /proc",
            Step::InnerUserNamespace { .. } => "inner user namespace",
            Step::BindData { .. } => "bind data",
            Step::ReadonlyMount(_) => "read-only mount",
            Step::PivotRoot(_) => "pivot_root",
            Step::RemountRoot { .. } => "remount root",
            Step::RootPropagation { .. } => "root propagation",
            Step::SetPropagation { .. } => "propagation",
            Step::Unshare { .. } => "unshare",
            Step::Setns { .. } => "setns",
            Step::StartGate { .. } => "start gate",
            Step::Confine(s) => s.name(),
            Step::Terminal(t) => t.name(),
        }
    }
}

fn show(c: &CString) -> String {
    String::from_utf8_lossy(c.as_bytes()).into_owned()
}

fn show_opt(c: &Option<CString>) -> String {
    c.as_ref().map_or_else(|| "none".to_owned(), show)
}

impl fmt::Display for Step {
    /// The step as one line, for `Command::plan` and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Close { fds } => write!(f, "close {fds:?}"),
            Step::JoinCgroups { fds } => {
                write!(f, "join cgroups: write 0 to the tasks files {fds:?}")
            }
            Step::JoinCgroupsLater { fd, tasks } => {
                write!(
                    f,
                    "wait on fd {fd} for the parent's cgroups, then write 0 to"
                )?;
                for t in tasks {
                    write!(f, " {}", show(t))?;
                }
                Ok(())
            }
            Step::ParentDeathSignal { signal, .. } => {
                write!(f, "prctl(PR_SET_PDEATHSIG, {signal})")
            }
            Step::WaitParent { fd } => write!(f, "wait for the parent on fd {fd}"),
            Step::NotDumpable => f.write_str("prctl(PR_SET_DUMPABLE, 0)"),
            Step::Dup2 { from, to } => write!(f, "dup2({from}, {to})"),
            Step::Propagation { target, flags } => {
                write!(f, "propagation {flags:#x} of {}", show(target))
            }
            Step::Hostname(name) => write!(f, "sethostname {}", show(name)),
            Step::Domainname(name) => write!(f, "setdomainname {}", show(name)),
            Step::Loopback => f.write_str("ioctl(SIOCSIFFLAGS) lo up"),
            Step::TimeNamespace { offsets } => {
                write!(f, "time namespace with offsets {:?}", show(offsets))
            }
            Step::Chroot(dir) => write!(f, "chroot {}", show(dir)),
            Step::ChrootFd(fd) => write!(f, "fchdir {fd}; chroot ."),
            Step::Chdir(dir) => write!(f, "chdir {}", show(dir)),
            Step::ChdirInRoot(dir) => write!(f, "chdir {dir} (inside the root)"),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount {} on {} type {} flags {flags:#x} data {}",
                show_opt(source),
                show(target),
                show_opt(fstype),
                show_opt(data)
            ),
            Step::SetGroups(groups) => write!(f, "setgroups {groups:?}"),
            Step::SetGid(gid) => write!(f, "setresgid {gid}"),
            Step::SetUid(uid) => write!(f, "setresuid {uid}"),
            Step::ResetSignals => f.write_str("reset SIGPIPE and the signal mask"),
            Step::CloseFrom { first, keep, .. } => {
                write!(f, "close-on-exec every fd from {first} except {keep:?}")
            }
            Step::BindRootfs(dir) => write!(f, "bind {} onto itself", show(dir)),
            Step::PrivateRootfs(dir) => write!(f, "make {} rprivate", show(dir)),
            Step::OpenRoot(dir) => write!(f, "open rootfs {}", show(dir)),
            Step::TmpfsRoot => f.write_str("tmpfs root at /newroot, host root at /oldroot"),
            Step::MakeDir { target, mode } => write!(f, "mkdir {target} mode {mode:#o}"),
            Step::Chmod { target, mode } => write!(f, "chmod {target} {mode:#o}"),
            Step::WriteFile { target, fd, mode } => {
                write!(f, "write {target} mode {mode:#o} from fd {fd}")
            }
            Step::MountInRoot(m) => write!(
                f,
                "mount {} on {} type {} flags {:#x} data {}{}",
                show_opt(&m.source),
                m.target,
                m.fstype.as_ref().map_or_else(|| "bind".to_owned(), show),
                m.flags,
                show_opt(&m.data),
                if m.recursive_ro { " rro" } else { "" }
            ),
            Step::CgroupBind {
                key,
                mount_point,
                mount,
                ..
            } => write!(
                f,
                "bind own cgroup {:?} under {} on {}",
                show(key),
                show(mount_point),
                mount.target
            ),
            Step::MakeNode {
                target,
                mode,
                dev,
                uid,
                gid,
            } => write!(
                f,
                "mknod {target} mode {mode:#o} dev {dev:#x} owner {uid}:{gid}"
            ),
            Step::Symlink { target, link } => write!(f, "symlink {target} -> {}", show(link)),
            Step::Mask(target) => write!(f, "mask {target}"),
            Step::ReadonlyPath(target) => write!(f, "read-only {target}"),
            Step::RemountReadOnly(target) => write!(f, "remount {target} read-only"),
            Step::SelfBind(target) => write!(f, "bind {target} onto itself"),
            Step::LockFile(target) => write!(f, "read lock on {target}"),
            Step::OpenProc => f.write_str("open /proc"),
            Step::InnerUserNamespace { uid_map, gid_map } => write!(
                f,
                "inner user namespace, uid map {}, gid map {}",
                show(uid_map).trim_end(),
                show(gid_map).trim_end()
            ),
            Step::BindData {
                target,
                fd,
                mode,
                read_only,
                temp,
            } => write!(
                f,
                "bind data from fd {fd} mode {mode:#o} at {target}{} (via {}, unlinked)",
                if *read_only { " read-only" } else { "" },
                show(temp)
            ),
            Step::ReadonlyIfWritable(target) => write!(f, "read-only {target} if writable"),
            Step::ReadonlyMount(target) => write!(f, "read-only mount {target} (recursive)"),
            Step::PivotRoot(dir) => write!(f, "pivot_root into {}", show(dir)),
            Step::RemountRoot { flags } => write!(f, "remount / with flags {flags:#x}"),
            Step::RootPropagation { flags } => {
                write!(f, "propagation {flags:#x} of / after pivot_root")
            }
            Step::SetPropagation { target, flags } => {
                write!(f, "propagation {flags:#x} of {target}")
            }
            Step::Unshare { flags } => write!(f, "unshare {flags:#x}"),
            Step::Setns { fd, nstype } => write!(f, "setns fd {fd} type {nstype:#x}"),
            Step::StartGate { fd, keep, .. } => match keep {
                Some(keep) => write!(
                    f,
                    "close fds from 3 except {keep:?}, wait at the start gate on fd {fd}"
                ),
                None => write!(f, "wait at the start gate on fd {fd}"),
            },
            Step::Confine(s) => s.fmt(f),
            Step::Terminal(t) => t.fmt(f),
        }
    }
}
