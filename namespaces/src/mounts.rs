//! A container's mount table with OCI `mounts` semantics, device nodes, and
//! the errors of bad entries. The parent turns these into prepared
//! [`Step`](crate::Step)s (see `rootfs.rs`); destinations are resolved
//! inside the rootfs by the child (`openat2(RESOLVE_IN_ROOT)`).

use std::path::{Component, Path, PathBuf};

/// One entry of a mount table, as in the OCI runtime spec's `mounts`.
///
/// `options` are OCI's: the flags `ro`/`rw`, `nosuid`/`suid`,
/// `nodev`/`dev`, `noexec`/`exec`, `sync`, `dirsync`, `relatime`,
/// `norelatime`, `strictatime`, `noatime`, `nodiratime`, `bind`, `rbind`,
/// the propagation `private`, `rprivate`, `slave`, `rslave`, `shared`,
/// `rshared`, `unbindable`, `runbindable`, and `rro` (recursively read-only,
/// `mount_setattr`); anything else (`size=64m`, `mode=755`, `newinstance`,
/// `ptmxmode=0666`, `gid=5`) is filesystem data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, ...; `bind` or `none` for binds).
    pub fstype: String,
    /// Source: a host path for binds, else the device name shown in the
    /// mount table.
    pub source: PathBuf,
    /// OCI mount options.
    pub options: Vec<String>,
}

impl Mount {
    /// A mount of a fresh filesystem of type `fstype` at `destination`.
    pub fn new(fstype: &str, destination: impl Into<PathBuf>, options: &[&str]) -> Mount {
        Mount {
            destination: destination.into(),
            fstype: fstype.to_owned(),
            source: PathBuf::from(fstype),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    /// A bind mount of the host path `source` (a directory or a file) at
    /// `destination`; add `rbind` to `options` for a recursive bind.
    pub fn bind(
        source: impl Into<PathBuf>,
        destination: impl Into<PathBuf>,
        options: &[&str],
    ) -> Mount {
        let mut options: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
        if !options.iter().any(|o| o == "bind" || o == "rbind") {
            options.push("bind".into());
        }
        Mount {
            destination: destination.into(),
            fstype: "bind".into(),
            source: source.into(),
            options,
        }
    }

    /// Docker's default mounts (moby's `oci/defaults.go`): proc, /dev
    /// tmpfs, devpts, /dev/shm, mqueue, sysfs and cgroup.
    pub fn docker_defaults() -> Vec<Mount> {
        vec![
            Mount::new("proc", "/proc", &["nosuid", "noexec", "nodev"]),
            Mount::new(
                "tmpfs",
                "/dev",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            Mount {
                source: "devpts".into(),
                ..Mount::new(
                    "devpts",
                    "/dev/pts",
                    &[
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=0620",
                        "gid=5",
                    ],
                )
            },
            Mount {
                source: "shm".into(),
                ..Mount::new(
                    "tmpfs",
                    "/dev/shm",
                    &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
                )
            },
            Mount::new("mqueue", "/dev/mqueue", &["nosuid", "noexec", "nodev"]),
            Mount::new("sysfs", "/sys", &["nosuid", "noexec", "nodev", "ro"]),
            Mount::new(
                "cgroup",
                "/sys/fs/cgroup",
                &["ro", "nosuid", "noexec", "nodev"],
            ),
        ]
    }
}

/// The options of a mount entry, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `MS_*` flags (without bind, remount or propagation).
    pub flags: libc::c_ulong,
    /// Whether this is a bind (`bind` or `rbind`, or fstype `bind`).
    pub bind: bool,
    /// `rbind`.
    pub recursive: bool,
    /// Propagation flags applied after the mount (0: none).
    pub propagation: libc::c_ulong,
    /// `rro`: recursively read-only with `mount_setattr`.
    pub recursive_ro: bool,
    /// Filesystem data (comma-joined).
    pub data: String,
}

/// Parse OCI mount options (unknown ones are filesystem data).
pub(crate) fn parse_options(fstype: &str, options: &[String]) -> Options {
    let mut o = Options {
        bind: fstype == "bind",
        ..Options::default()
    };
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "defaults" => (0, 0),
            "bind" => {
                o.bind = true;
                (0, 0)
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                (0, 0)
            }
            "rro" => {
                o.recursive_ro = true;
                (0, 0)
            }
            "rrw" => (0, 0),
            p => {
                if let Some(flags) = propagation_flags(p) {
                    o.propagation = flags;
                } else {
                    data.push(p);
                }
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o.data = data.join(",");
    o
}

fn propagation_flags(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// The type of a device node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A character device (`c`).
    Char,
    /// A block device (`b`).
    Block,
    /// A FIFO (`p`).
    Fifo,
}

/// A device node to create in the container's `/dev` (OCI
/// `linux.devices`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Absolute path inside the container (normally under `/dev`).
    pub path: PathBuf,
    /// Character, block or FIFO.
    pub kind: DeviceKind,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits (`0o666`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Device {
    /// A character device owned by root.
    pub fn char(path: impl Into<PathBuf>, major: u32, minor: u32, mode: u32) -> Device {
        Device {
            path: path.into(),
            kind: DeviceKind::Char,
            major,
            minor,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// The nodes every container gets: null, zero, full, random, urandom,
    /// tty (mode 0666).
    pub fn defaults() -> Vec<Device> {
        [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ]
        .into_iter()
        .map(|(name, major, minor)| Device::char(Path::new("/dev").join(name), major, minor, 0o666))
        .collect()
    }
}

/// What is wrong with a container path, mount entry or rootfs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// Paths inside the container must be absolute.
    #[error("not an absolute path")]
    Relative,
    /// `/` itself cannot be a mount destination, masked or read-only path.
    #[error("the root itself")]
    Root,
    /// Only `/proc` itself may be mounted under `/proc` (as runc: a mount
    /// over `/proc/...` could hide what masked paths hide).
    #[error("a mount destination under /proc")]
    UnderProc,
    /// proc, sysfs and `/dev` are never mounted through a symlink in the
    /// rootfs (runc refuses these too).
    #[error("a symlink in the rootfs on the way to a proc, sysfs or /dev mount")]
    Symlink,
    /// A mount table, device or masked path needs a rootfs.
    #[error("needs a rootfs (Command::rootfs)")]
    NoRootfs,
    /// A filesystem type this crate does not mount.
    #[error("unsupported filesystem type {0:?}")]
    UnsupportedType(String),
    /// `..` in a container path.
    #[error("`..` in a container path")]
    DotDot,
    /// A device node's permission bits are more than 0o7777.
    #[error("mode {0:#o} has more than permission bits")]
    BadMode(u32),
    /// The operation (data bound from an unlinked file) needs a tmpfs
    /// root (`Command::tmpfs_rootfs`), which holds the file outside the
    /// new root.
    #[error("needs a tmpfs root (Command::tmpfs_rootfs)")]
    NeedsTmpfsRoot,
    /// More lock files than [`crate::rootops::MAX_LOCK_FILES`].
    #[error("more than {0} lock files")]
    TooManyLockFiles(usize),
}

/// Check a container path: absolute, not `/`, no `..`.
pub(crate) fn check_container_path(p: &Path) -> Result<(), MountError> {
    if !p.is_absolute() {
        return Err(MountError::Relative);
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(MountError::DotDot);
    }
    if p.components().all(|c| c == Component::RootDir) {
        return Err(MountError::Root);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn oci_options_split_into_flags_propagation_and_data() {
        let o = parse_options(
            "tmpfs",
            &opts(&[
                "nosuid", "ro", "rw", "noexec", "mode=755", "size=1m", "rslave", "rro",
            ]),
        );
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        assert_eq!(o.propagation, libc::MS_SLAVE | libc::MS_REC);
        assert!(o.recursive_ro && !o.bind);
        assert_eq!(o.data, "mode=755,size=1m");
        let o = parse_options("none", &opts(&["rbind", "ro"]));
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, libc::MS_RDONLY);
        assert!(parse_options("bind", &[]).bind);
    }

    #[test]
    fn container_paths_must_be_absolute_below_the_root_without_dotdot() {
        assert_eq!(
            check_container_path(Path::new("proc")),
            Err(MountError::Relative)
        );
        assert_eq!(check_container_path(Path::new("/")), Err(MountError::Root));
        assert_eq!(check_container_path(Path::new("//")), Err(MountError::Root));
        assert_eq!(
            check_container_path(Path::new("/a/../b")),
            Err(MountError::DotDot)
        );
        assert_eq!(check_container_path(Path::new("/dev/shm")), Ok(()));
    }
}
