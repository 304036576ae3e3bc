//! Descriptors with which a process about to be created joins a cgroup
//! without the parent writing its pid (see [`Cgroup::join_fds`]).

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::file;
use crate::hierarchy::Version;

/// What a new process needs to join a cgroup as it is created: the v1
/// `tasks` files it writes `0` to itself, and the v2 directory for
/// `clone3(CLONE_INTO_CGROUP)`. Made by [`Cgroup::join_fds`].
#[derive(Debug)]
pub struct JoinFds {
    /// Each v1 directory's `tasks` file, open for writing (close-on-exec).
    pub tasks: Vec<OwnedFd>,
    /// The v2 directory, open `O_PATH | O_DIRECTORY` (close-on-exec).
    pub v2_dir: Option<OwnedFd>,
}

impl Cgroup {
    /// Open what a process about to be created needs to join this cgroup
    /// itself: in v1 hierarchies a single-threaded process that writes `0`
    /// to `tasks` moves without the kernel's global threadgroup lock (a
    /// parent writing the pid to `cgroup.procs` takes it, and its write
    /// side waits for an RCU grace period); in v2 the process is created
    /// in the cgroup with `CLONE_INTO_CGROUP`. The result is the same as
    /// [`Cgroup::add_process`] right after the clone.
    ///
    /// The files are opened now, with the caller's credentials, which are
    /// the ones the kernel checks when the new process writes.
    pub fn join_fds(&self) -> Result<JoinFds> {
        let mut tasks = Vec::new();
        let mut v2_dir = None;
        for d in self.dirs() {
            match d.version {
                Version::V1 => tasks.push(OwnedFd::from(file::open_write(&d.file("tasks"))?)),
                Version::V2 => {
                    let dir = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                        .open(&d.path)
                        .map_err(|e| Error::io("open", &d.path, e))?;
                    v2_dir = Some(OwnedFd::from(dir));
                }
            }
        }
        Ok(JoinFds { tasks, v2_dir })
    }
}
