//! The parent's side of a container's root: validate the rootfs, mount
//! table, devices, masked and read-only paths, and turn them into prepared
//! [`Step`]s (see `rootsetup.rs` for the child's side).

use std::ffi::{CString, OsStr};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::mounts::{Device, DeviceKind, Mount, MountError, check_container_path, parse_options};
use crate::spawn::Command;
use crate::step::{Create, InRoot, PreparedMount, Step};

/// A container path (absolute) as an [`InRoot`].
pub(crate) fn in_root(p: &Path) -> Result<InRoot> {
    let names: Vec<&OsStr> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut prefixes = Vec::with_capacity(names.len());
    let mut acc = PathBuf::new();
    for n in &names {
        acc.push(n);
        prefixes.push(Error::cstring("container path", &acc)?);
    }
    Ok(InRoot {
        path: Error::cstring("container path", &acc)?,
        prefixes,
        names: names
            .iter()
            .map(|n| Error::cstring("container path", n))
            .collect::<Result<_>>()?,
    })
}

fn mount_error(destination: &Path, reason: MountError) -> Error {
    Error::InvalidMount {
        destination: destination.to_owned(),
        reason,
    }
}

fn c(s: &str) -> Result<CString> {
    Error::cstring("mount option", s)
}

/// Whether the host's `/sys/fs/cgroup` is a cgroup2 mount (pure v2).
fn host_is_pure_v2() -> bool {
    // SAFETY: statfs fills a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c"/sys/fs/cgroup".as_ptr(), &mut st) };
    rc == 0 && st.f_type == libc::CGROUP2_SUPER_MAGIC
}

impl Command {
    /// The steps that set up the rootfs, from `BindRootfs` to `pivot_root`
    /// (`chroot` without a new mount namespace) and the read-only remount.
    pub(crate) fn rootfs_steps(&self, rootfs: &Path, steps: &mut Vec<Step>) -> Result<()> {
        let (rootfs, root_c) = if self.tmpfs_root {
            steps.push(Step::TmpfsRoot);
            (rootfs.to_owned(), Error::cstring("rootfs", rootfs)?)
        } else {
            let meta = std::fs::metadata(rootfs).map_err(|e| Error::Rootfs {
                path: rootfs.to_owned(),
                source: e,
            })?;
            if !meta.is_dir() {
                return Err(Error::Rootfs {
                    path: rootfs.to_owned(),
                    source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
                });
            }
            let rootfs = std::fs::canonicalize(rootfs).map_err(|e| Error::Rootfs {
                path: rootfs.to_owned(),
                source: e,
            })?;
            let root_c = Error::cstring("rootfs", &rootfs)?;
            steps.push(Step::BindRootfs(root_c.clone()));
            if !self.kinds.contains(Kind::Mount) {
                // A shared namespace (the caller's or a joined one): on a
                // shared `/` every mount below the bind would show up in
                // the peer namespaces too.
                steps.push(Step::PrivateRootfs(root_c.clone()));
            }
            (rootfs, root_c)
        };
        steps.push(Step::OpenRoot(root_c.clone()));
        let userns = self.kinds.contains(Kind::User);
        // The mount table with the filesystem operations in their places.
        let mut ops = self.root_ops.iter().enumerate().peekable();
        for (i, m) in self.mounts.iter().enumerate() {
            while let Some((n, (_, op))) = ops.next_if(|(_, (at, _))| *at <= i) {
                steps.push(self.root_op_step(op, n)?);
            }
            self.mount_steps(&rootfs, m, userns, steps)?;
        }
        for (n, (_, op)) in ops {
            steps.push(self.root_op_step(op, n)?);
        }
        if self.default_devices {
            for d in Device::defaults() {
                steps.push(device_step(&d, userns)?);
            }
            for (link, to) in [
                ("/dev/fd", "/proc/self/fd"),
                ("/dev/stdin", "/proc/self/fd/0"),
                ("/dev/stdout", "/proc/self/fd/1"),
                ("/dev/stderr", "/proc/self/fd/2"),
                ("/dev/ptmx", "pts/ptmx"),
                ("/dev/core", "/proc/kcore"),
            ] {
                // Like runc: /dev/core only where the kernel has a kcore.
                if link == "/dev/core" && !Path::new("/proc/kcore").exists() {
                    continue;
                }
                steps.push(Step::Symlink {
                    target: in_root(Path::new(link))?,
                    link: c(to)?,
                });
            }
        }
        for d in &self.devices {
            check_container_path(&d.path).map_err(|r| mount_error(&d.path, r))?;
            if d.mode > 0o7777 {
                return Err(mount_error(&d.path, MountError::BadMode(d.mode)));
            }
            steps.push(device_step(d, userns)?);
        }
        // Read-only paths first, then masks (runc's order).
        for p in &self.readonly_paths {
            check_container_path(p).map_err(|r| mount_error(p, r))?;
            steps.push(Step::ReadonlyPath(in_root(p)?));
        }
        for p in &self.masked_paths {
            check_container_path(p).map_err(|r| mount_error(p, r))?;
            steps.push(Step::Mask(in_root(p)?));
        }
        if self.kinds.contains(Kind::Mount) {
            steps.push(Step::PivotRoot(root_c));
        } else {
            // Not a mount namespace of its own: pivot_root would move the
            // root of every process sharing it.
            steps.push(Step::Chroot(root_c));
        }
        // The new root, for the steps that resolve paths in it afterwards.
        steps.push(Step::OpenRoot(CString::from(c"/")));
        if let Some(p) = self.rootfs_propagation {
            steps.push(Step::RootPropagation { flags: p.flags() });
            // The mounts that asked for their own propagation get it back.
            let own: Vec<&Mount> = self
                .mounts
                .iter()
                .filter(|m| parse_options(&m.fstype, &m.options).propagation != 0)
                .collect();
            for m in own {
                steps.push(Step::SetPropagation {
                    target: in_root(&m.destination)?,
                    flags: parse_options(&m.fstype, &m.options).propagation,
                });
            }
        }
        if self.readonly_rootfs {
            steps.push(Step::RemountRoot {
                flags: libc::MS_RDONLY,
            });
        }
        Ok(())
    }

    /// A bind source as the child sees it: below the host's root at
    /// `/oldroot` with a tmpfs root.
    fn bind_source(&self, source: &Path) -> Result<CString> {
        if self.tmpfs_root && source.is_absolute() {
            let mut p = std::ffi::OsString::from(crate::rootops::OLD_ROOT);
            p.push(source.as_os_str());
            Error::cstring("mount source", &p)
        } else {
            Error::cstring("mount source", source)
        }
    }

    fn mount_steps(
        &self,
        rootfs: &Path,
        m: &Mount,
        userns: bool,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        let dest = &m.destination;
        check_container_path(dest).map_err(|r| mount_error(dest, r))?;
        if dest.starts_with("/proc") && dest != Path::new("/proc") {
            return Err(mount_error(dest, MountError::UnderProc));
        }
        let o = parse_options(&m.fstype, &m.options);
        if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            return self.cgroup_steps(m, o.flags, userns, steps);
        }
        let target = in_root(dest)?;
        let prepared = if o.bind {
            let meta = std::fs::metadata(&m.source).map_err(|e| Error::MountSource {
                destination: dest.clone(),
                source_path: m.source.clone(),
                source: e,
            })?;
            PreparedMount {
                target,
                create: if meta.is_dir() {
                    Create::Dir
                } else {
                    Create::File
                },
                no_symlinks: false,
                source: Some(self.bind_source(&m.source)?),
                fstype: None,
                flags: o.flags,
                data: None,
                bind: true,
                recursive: o.recursive,
                keep_locked: userns,
                propagation: o.propagation,
                recursive_ro: o.recursive_ro,
            }
        } else {
            if !matches!(
                m.fstype.as_str(),
                "proc" | "sysfs" | "tmpfs" | "devpts" | "mqueue"
            ) {
                return Err(mount_error(
                    dest,
                    MountError::UnsupportedType(m.fstype.clone()),
                ));
            }
            // A fresh proc, sysfs or /dev never goes through a symlink
            // (runc refuses these too).
            let strict = matches!(m.fstype.as_str(), "proc" | "sysfs") || dest == Path::new("/dev");
            // (A tmpfs root has nothing before the child makes it.)
            if strict && !self.tmpfs_root {
                refuse_symlinks(rootfs, dest)?;
            }
            PreparedMount {
                target,
                create: Create::Dir,
                no_symlinks: strict,
                source: Some(Error::cstring("mount source", &m.source)?),
                fstype: Some(c(&m.fstype)?),
                flags: o.flags,
                data: (!o.data.is_empty()).then(|| c(&o.data)).transpose()?,
                bind: false,
                recursive: false,
                keep_locked: userns,
                propagation: o.propagation,
                recursive_ro: o.recursive_ro,
            }
        };
        steps.push(Step::MountInRoot(prepared));
        Ok(())
    }

    /// `/sys/fs/cgroup` for the container: cgroup2 on a pure v2 host (in a
    /// new cgroup namespace; else the child's own cgroup bound), on v1 or
    /// hybrid a tmpfs with each hierarchy's cgroup of the child (as it is
    /// after the parent's hook) bound read-only below it, as runc does (the tmpfs itself stays writable,
    /// as under runc). On hybrid the cgroup2 `unified` hierarchy is bound
    /// too (runc 1.1 leaves it out).
    fn cgroup_steps(
        &self,
        m: &Mount,
        flags: libc::c_ulong,
        userns: bool,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        let dest = &m.destination;
        // The child's cgroups, bound below, are the ones it is in.
        self.join_cgroups_later_here(steps)?;
        if host_is_pure_v2() {
            if self.kinds.contains(Kind::Cgroup) {
                steps.push(Step::MountInRoot(PreparedMount {
                    target: in_root(dest)?,
                    create: Create::Dir,
                    no_symlinks: false,
                    source: Some(c("cgroup")?),
                    fstype: Some(c("cgroup2")?),
                    flags,
                    data: None,
                    bind: false,
                    recursive: false,
                    keep_locked: userns,
                    propagation: 0,
                    recursive_ro: false,
                }));
            } else {
                steps.push(cgroup_bind("", "/sys/fs/cgroup", "/", dest, flags, userns)?);
            }
            return Ok(());
        }
        steps.push(Step::MountInRoot(PreparedMount {
            target: in_root(dest)?,
            create: Create::Dir,
            no_symlinks: false,
            source: Some(c("tmpfs")?),
            fstype: Some(c("tmpfs")?),
            flags: flags & !libc::MS_RDONLY,
            data: Some(c("mode=755")?),
            bind: false,
            recursive: false,
            keep_locked: userns,
            propagation: 0,
            recursive_ro: false,
        }));
        let mounts = dunnage_base::mountinfo::read_self()
            .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
        let base = Path::new("/sys/fs/cgroup");
        for mi in &mounts {
            let Ok(sub) = mi.mount_point.strip_prefix(base) else {
                continue;
            };
            if sub.as_os_str().is_empty() || sub.components().count() != 1 {
                continue;
            }
            let key = match mi.fs_type.as_str() {
                "cgroup2" => String::new(),
                "cgroup" => {
                    let opts: Vec<&str> = mi.super_options.split(',').collect();
                    match opts.iter().find(|o| o.starts_with("name=")) {
                        Some(name) => (*name).to_owned(),
                        None => opts
                            .iter()
                            .filter(|o| !matches!(**o, "rw" | "ro") && !o.contains('='))
                            .copied()
                            .collect::<Vec<_>>()
                            .join(","),
                    }
                }
                _ => continue,
            };
            if self.kinds.contains(Kind::Cgroup) {
                // In a cgroup namespace a fresh mount of the hierarchy
                // shows the namespace's root: the child's cgroup.
                let (fstype, data) = match mi.fs_type.as_str() {
                    "cgroup2" => ("cgroup2", None),
                    _ if key.starts_with("name=") => ("cgroup", Some(format!("none,{key}"))),
                    _ => ("cgroup", Some(key.clone())),
                };
                steps.push(Step::MountInRoot(PreparedMount {
                    target: in_root(&dest.join(sub))?,
                    create: Create::Dir,
                    no_symlinks: false,
                    source: Some(c("cgroup")?),
                    fstype: Some(c(fstype)?),
                    flags: flags | libc::MS_RDONLY,
                    data: data.map(|d| c(&d)).transpose()?,
                    bind: false,
                    recursive: false,
                    keep_locked: userns,
                    propagation: 0,
                    recursive_ro: false,
                }));
                continue;
            }
            steps.push(cgroup_bind(
                &key,
                &mi.mount_point,
                &mi.root,
                &dest.join(sub),
                flags | libc::MS_RDONLY,
                userns,
            )?);
        }
        // The symlinks of combined hierarchies (cpu -> cpu,cpuacct).
        if let Ok(entries) = std::fs::read_dir(base) {
            for e in entries.flatten() {
                if let Ok(to) = std::fs::read_link(e.path())
                    && to.components().count() == 1
                {
                    steps.push(Step::Symlink {
                        target: in_root(&dest.join(e.file_name()))?,
                        link: Error::cstring("link", &to)?,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Refuse `dest` when a component of it is a symlink in the rootfs as it is
/// now (a clear error before clone; the child refuses with ELOOP if one
/// appears later).
fn refuse_symlinks(rootfs: &Path, dest: &Path) -> Result<()> {
    let mut p = rootfs.to_path_buf();
    for c in dest.components() {
        if let Component::Normal(n) = c {
            p.push(n);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(mount_error(dest, MountError::Symlink));
                }
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// The bind of the child's own cgroup of one hierarchy at `dest`.
fn cgroup_bind(
    key: &str,
    mount_point: impl AsRef<OsStr>,
    mount_root: impl AsRef<OsStr>,
    dest: &Path,
    flags: libc::c_ulong,
    userns: bool,
) -> Result<Step> {
    Ok(Step::CgroupBind {
        key: Error::cstring("cgroup hierarchy", key)?,
        mount_point: Error::cstring("cgroup mount point", mount_point)?,
        mount_root: Error::cstring("cgroup mount root", mount_root)?,
        mount: PreparedMount {
            target: in_root(dest)?,
            create: Create::Dir,
            no_symlinks: false,
            source: None,
            fstype: None,
            flags,
            data: None,
            bind: true,
            recursive: false,
            keep_locked: userns,
            propagation: 0,
            recursive_ro: false,
        },
    })
}

/// A device node: `mknod`, or in a user namespace a bind of the host's node
/// onto an empty file.
fn device_step(d: &Device, userns: bool) -> Result<Step> {
    let target = in_root(&d.path)?;
    if userns {
        return Ok(Step::MountInRoot(PreparedMount {
            target,
            create: Create::File,
            no_symlinks: true,
            source: Some(Error::cstring("device", &d.path)?),
            fstype: None,
            flags: 0,
            data: None,
            bind: true,
            recursive: false,
            keep_locked: true,
            propagation: 0,
            recursive_ro: false,
        }));
    }
    let kind = match d.kind {
        DeviceKind::Char => libc::S_IFCHR,
        DeviceKind::Block => libc::S_IFBLK,
        DeviceKind::Fifo => libc::S_IFIFO,
    };
    Ok(Step::MakeNode {
        target,
        mode: kind | d.mode,
        dev: libc::makedev(d.major, d.minor),
        uid: d.uid,
        gid: d.gid,
    })
}
