//! The [`Command`] knobs of a container's process: rootfs and
//! `pivot_root`, the mount table, `/dev`, masked and read-only paths, the
//! start gate, passed descriptors and joined namespaces; and [`Gate`].
//!
//! ```no_run
//! use dunnage_namespaces::{Command, Kind, Mount};
//!
//! // A busybox rootfs with Docker's mounts, /dev and masked paths, held
//! // at the start gate until the caller has written its pid file.
//! let mut child = Command::new("/bin/sh")
//!     .args(["-c", "cat /proc/self/mountinfo"])
//!     .namespaces(Kind::Pid | Kind::Ipc | Kind::Uts | Kind::Net)
//!     .rootfs("/var/lib/example/rootfs")
//!     .mounts(Mount::docker_defaults())
//!     .default_devices(true)
//!     .masked_path("/proc/kcore")
//!     .readonly_path("/proc/sys")
//!     .start_gate(true)
//!     .spawn()?;
//! std::fs::write("/run/example.pid", child.id().to_string())?;
//! if let Some(gate) = child.take_gate() {
//!     gate.release()?;
//! }
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::launch::read_report;
use crate::mounts::{Device, Mount};
use crate::propagation::Propagation;
use crate::setup::READY_INDEX;
use crate::spawn::Command;

impl Command {
    /// `pivot_root` into `dir` (in a new mount namespace, implied): the
    /// rootfs is bound onto itself, the mount table, devices, masked and
    /// read-only paths are set up inside it, then it becomes `/` and the
    /// old root is detached (no `chroot` escape is left). Paths of
    /// [`current_dir`](Command::current_dir) and the program are then
    /// inside it.
    pub fn rootfs(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.rootfs = Some(dir.as_ref().to_owned());
        self.tmpfs_root = false;
        self.kinds = self.kinds.with(Kind::Mount);
        self
    }

    /// As [`rootfs`](Command::rootfs), but set up in the mount namespace
    /// the child is in already (the caller's, or one joined with
    /// [`join_namespace`](Command::join_namespace)) instead of a new one, as
    /// runc and crun do for an OCI config without a mount namespace (runc
    /// `pivot_root`s in a namespace joined by path instead).
    /// The mounts are made in that namespace and stay there after the
    /// process exits (the caller unmounts them), and the child `chroot`s
    /// into the rootfs instead of `pivot_root` (which would move the root
    /// of every process in that namespace). Calling
    /// [`namespaces`](Command::namespaces) with [`Kind::Mount`] afterwards
    /// makes it a new namespace again. The rootfs bind is made private
    /// (recursively) right after binding, so that nothing mounted below it
    /// propagates to peer namespaces; the propagation of `/` is left.
    ///
    /// Security: unlike `pivot_root`, `chroot` leaves the rest of the
    /// namespace reachable. A child holding `CAP_SYS_CHROOT` escapes it
    /// (`mkdir x; chroot x; cd ../../..; chroot .`): drop that capability,
    /// or use [`rootfs`](Command::rootfs), for code that is not trusted.
    pub fn rootfs_in_current_mount_namespace(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.rootfs = Some(dir.as_ref().to_owned());
        self.tmpfs_root = false;
        self.kinds = self.kinds.without(Kind::Mount);
        self
    }

    /// Remount the root read-only after `pivot_root`.
    pub fn readonly_rootfs(&mut self, readonly: bool) -> &mut Command {
        self.readonly_rootfs = readonly;
        self
    }

    /// Propagation of `/` after `pivot_root` (OCI `rootfsPropagation`;
    /// default: what [`propagation`](Command::propagation) made it, private).
    pub fn rootfs_propagation(&mut self, propagation: Propagation) -> &mut Command {
        self.rootfs_propagation = Some(propagation);
        self
    }

    /// Add an entry to the mount table, applied in order inside the rootfs.
    pub fn mount(&mut self, mount: Mount) -> &mut Command {
        self.mounts.push(mount);
        self
    }

    /// Add entries to the mount table.
    pub fn mounts(&mut self, mounts: impl IntoIterator<Item = Mount>) -> &mut Command {
        self.mounts.extend(mounts);
        self
    }

    /// Create the default nodes in `/dev` (null, zero, full, random,
    /// urandom, tty: `mknod`, or in a new user namespace bound from the
    /// host) and the links `/dev/fd`, `/dev/stdin`, `/dev/stdout`,
    /// `/dev/stderr`, `/dev/ptmx -> pts/ptmx`, `/dev/core`.
    pub fn default_devices(&mut self, yes: bool) -> &mut Command {
        self.default_devices = yes;
        self
    }

    /// Create a device node (after the default ones).
    pub fn device(&mut self, device: Device) -> &mut Command {
        self.devices.push(device);
        self
    }

    /// Mask a path: `/dev/null` over a file, an empty read-only tmpfs over
    /// a directory (missing paths are skipped).
    pub fn masked_path(&mut self, path: impl AsRef<Path>) -> &mut Command {
        self.masked_paths.push(path.as_ref().to_owned());
        self
    }

    /// Make a path read-only (missing paths are skipped).
    pub fn readonly_path(&mut self, path: impl AsRef<Path>) -> &mut Command {
        self.readonly_paths.push(path.as_ref().to_owned());
        self
    }

    /// Created but not started: [`spawn`](Command::spawn) returns once the
    /// child has done its whole setup, and the child waits before exec
    /// until its [`Gate`] ([`Child::take_gate`](crate::Child::take_gate))
    /// is released, also from another process that got the gate's
    /// descriptor. If every copy of the gate's descriptor is closed without
    /// a release, the child exits (status 127). `status` and `output` do
    /// not wait at the gate.
    pub fn start_gate(&mut self, yes: bool) -> &mut Command {
        self.start_gate = yes;
        self
    }

    /// Pass `fd` to the program as descriptor number `target` (3 or
    /// above), like OCI `preserve_fds`. The program gets its stdio and the
    /// descriptors passed this way, nothing else.
    pub fn pass_fd(&mut self, target: RawFd, fd: OwnedFd) -> &mut Command {
        self.fds.push((target, fd));
        self
    }

    /// Join an existing namespace (a namespace file such as
    /// `/proc/<pid>/ns/net`, or a pidfd) instead of creating it. A user
    /// namespace is joined first, then the others; a pid namespace is
    /// joined by creating the child in it (the spawning thread's
    /// `pid_for_children` points there during the clone). With a new user
    /// namespace, net, uts, ipc, cgroup, mount and time namespaces are
    /// joined before it is made, by the spawning thread around the clone
    /// (as runc joins before it unshares), and left again after it.
    ///
    /// What the kernel imposes then: the child has no capability over a
    /// joined mount namespace (it is owned by another user namespace), so
    /// no rootfs or proc mount is allowed with it
    /// ([`Error::Join`]); the spawning thread keeps its own filesystem
    /// attributes from then on (`unshare(CLONE_FS)`, which `setns` into a
    /// mount namespace needs), its working directory and root restored. A
    /// time namespace can be joined that way only by a single-threaded
    /// process (`setns` of a time namespace moves the whole process; the
    /// kernel refuses it with `EUSERS` otherwise, reported as
    /// [`Error::Join`]); coming back resets the process's
    /// `time_for_children` to its own time namespace. Without a new user
    /// namespace the child joins a time namespace itself.
    ///
    /// A joined mount namespace with
    /// [`rootfs_in_current_mount_namespace`](Command::rootfs_in_current_mount_namespace)
    /// enters the rootfs with `chroot`: a child holding `CAP_SYS_CHROOT`
    /// can leave it for the rest of that namespace (see there).
    pub fn join_namespace(&mut self, kind: Kind, fd: OwnedFd) -> &mut Command {
        self.joins.push((kind, fd));
        self
    }

    /// Refuse bad container settings before anything is made.
    pub(crate) fn check_container(&self) -> Result<()> {
        let needs_rootfs = !self.mounts.is_empty()
            || !self.root_ops.is_empty()
            || self.default_devices
            || !self.devices.is_empty()
            || !self.masked_paths.is_empty()
            || !self.readonly_paths.is_empty()
            || self.readonly_rootfs;
        if needs_rootfs && self.rootfs.is_none() {
            let dest = self
                .mounts
                .first()
                .map_or_else(|| PathBuf::from("/"), |m| m.destination.clone());
            return Err(Error::InvalidMount {
                destination: dest,
                reason: crate::mounts::MountError::NoRootfs,
            });
        }
        if self.rootfs.is_some() && !self.kinds.contains(Kind::Mount) {
            if self.tmpfs_root {
                return Err(Error::Join {
                    kind: Kind::Mount,
                    why: "a tmpfs root needs a new mount namespace",
                });
            }
            if self.kinds.contains(Kind::User) {
                return Err(Error::Join {
                    kind: Kind::Mount,
                    why: "a new user namespace has no privilege to set up a rootfs \
                          in a mount namespace it does not own",
                });
            }
        }
        if self.rootfs.is_some() && self.root.is_some() {
            return Err(Error::Join {
                kind: Kind::Mount,
                why: "rootfs (pivot_root) and root (chroot) exclude each other",
            });
        }
        let mut targets: Vec<RawFd> = self.fds.iter().map(|(t, _)| *t).collect();
        targets.sort_unstable();
        for w in targets.windows(2) {
            if w[0] == w[1] {
                return Err(Error::BadFd { fd: w[0] });
            }
        }
        if let Some(&t) = targets.iter().find(|t| **t < 3) {
            return Err(Error::BadFd { fd: t });
        }
        let new_user = self.kinds.contains(Kind::User);
        for (kind, _) in &self.joins {
            let why = match kind {
                k if self.kinds.contains(*k) => Some("a new one is asked for too"),
                Kind::User => None,
                k if new_user && !self.joined_at_clone(*k) => {
                    Some("a new user namespace would have no privilege over it")
                }
                // The child is in it, but in a new user namespace it holds
                // no capability over it (mount(2) needs CAP_SYS_ADMIN in
                // the user namespace that owns the mount namespace).
                Kind::Mount
                    if new_user && (self.rootfs.is_some() || self.proc_target.is_some()) =>
                {
                    Some(
                        "a new user namespace has no privilege to mount in it: \
                         no rootfs or proc mount there",
                    )
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(Error::Join { kind: *kind, why });
            }
        }
        Ok(())
    }
}

/// The start gate of a child created with [`Command::start_gate`]: the
/// child has done its setup and waits before exec.
///
/// [`release`](Gate::release) lets it go. Dropping the gate (every copy of
/// its descriptor) without releasing ends the child. The descriptor can be
/// handed to another process ([`Gate::into_fd`], [`Gate::from_fd`]), which
/// releases it by writing one byte.
#[derive(Debug)]
pub struct Gate {
    fd: OwnedFd,
    report: Option<OwnedFd>,
    pid: i32,
}

impl Gate {
    pub(crate) fn new(fd: OwnedFd, report: OwnedFd, pid: i32) -> Gate {
        Gate {
            fd,
            report: Some(report),
            pid,
        }
    }

    /// A gate from a descriptor another process handed over.
    pub fn from_fd(fd: OwnedFd) -> Gate {
        Gate {
            fd,
            report: None,
            pid: 0,
        }
    }

    /// The gate's descriptor, to hand to another process.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Let the child go. When this gate came from the spawn, waits until
    /// the child executed its program and returns the exec failure if it
    /// could not.
    pub fn release(self) -> Result<()> {
        // SAFETY: write of one byte from a valid buffer.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        if n != 1 {
            return Err(Error::io(
                "release start gate of",
                format!("/proc/{}", self.pid),
                io::Error::last_os_error(),
            ));
        }
        drop(self.fd);
        let Some(report) = self.report else {
            return Ok(());
        };
        match read_report(&report) {
            Ok(None) => Ok(()),
            Ok(Some((index, errno))) if index != READY_INDEX => Err(Error::Exec {
                program: format!("the program of /proc/{}", self.pid),
                source: io::Error::from_raw_os_error(errno),
            }),
            Ok(Some(_)) => Ok(()),
            Err(e) => Err(Error::io(
                "read error pipe of",
                format!("/proc/{}", self.pid),
                e,
            )),
        }
    }
}

impl AsFd for Gate {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
