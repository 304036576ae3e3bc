//! Running an exited container again (`docker start` of an exited or
//! created-then-exited container; `docker restart` is a stop, then this).
//!
//! What is kept: the ID, name and configuration (`config.json`, the
//! [`Spec`]), the read-write layer with everything the earlier runs
//! wrote, the `hostname`/`hosts`/`resolv.conf` files, the json-file log
//! (appended to), the creation time. What is new: the process (a new pid,
//! in new namespaces), the container's cgroup (made again, empty), the
//! rootfs mounts inside the container, the network attachment of a bridge
//! network, the monitor, the start time; the exit code, OOM flag of the
//! earlier run are cleared once it is made again. The restart count stays
//! (docker's `start` does not count restarts either).

use std::path::{Path, PathBuf};

use crate::container::builder::StdioMode;
use crate::container::create::{Undo, spawn};
use crate::container::error::{Error, Result};
use crate::container::handle::{ContainerHandle, remove_cgroup};
use crate::container::spec::{Spec, Status};
use crate::container::state::{self, State};
use crate::container::store::ContainerStore;
use crate::container::{attach, network, shared_rootfs};

/// Make the process of the exited container `spec` again, waiting at its
/// start gate, in this process (a monitor: see
/// [`ContainerHandle::recreate`]).
pub(crate) fn recreate_spec(
    store: &ContainerStore,
    spec: Spec,
    stdio: [StdioMode; 3],
) -> Result<ContainerHandle> {
    state::check_id(&spec.id)?;
    let dir = store.dir_of(&spec.id);
    let shared = ContainerHandle::attach(store.clone(), spec.clone());
    // Checked and claimed under the container's lock: this process is
    // recorded as the one being made (created while it lives), so that a
    // second start at the same time is refused instead of running it
    // twice.
    let old = {
        let _lock = shared.lock()?;
        let old = State::read(&dir)?;
        let status = old.live_status();
        if status != Status::Exited {
            return Err(Error::WrongState {
                op: "start",
                id: spec.id.clone(),
                status,
            });
        }
        let me = std::process::id() as i32;
        // The earlier run's monitor must have finished (it removes the
        // attach socket and fifo this run makes again).
        if old.monitor_pid != me
            && crate::container::handle::pidfd_checked(old.monitor_pid, old.monitor_start).is_some()
        {
            return Err(Error::Monitor {
                op: "start",
                message: "the monitor of the previous run has not finished yet".to_owned(),
            });
        }
        // The claim names this process as the container's process and as
        // its monitor: `kill` and `stop` see a container being made, not
        // a process to signal (see `ContainerHandle::live_pidfd`).
        let me_start = state::pid_start_time(me).ok_or_else(|| Error::Monitor {
            op: "start",
            message: "the monitor cannot read its own start time".to_owned(),
        })?;
        let claim = State {
            status: Some(Status::Created),
            pid: me,
            pid_start: me_start,
            monitor_pid: me,
            monitor_start: me_start,
            ..old.clone()
        };
        claim.write(&dir)?;
        old
    };
    let mut undo = Undo::default();
    {
        let (d, o) = (dir.clone(), old.clone());
        undo.push(move || {
            let _ = o.write(&d);
        });
    }
    // What the earlier run left: its (empty) cgroup, a shared rootfs
    // bind, a bridge attachment, the start fifo and attach socket.
    remove_cgroup(store.hierarchies()?, &spec.cgroup)?;
    if let (Some(rec), Some(rootfs)) = (&old.shared_rootfs, &spec.rootfs_dir) {
        shared_rootfs::unmount_recorded(rootfs, rec)?;
    }
    network::detach(store, &spec)?;
    for name in ["start.fifo", attach::SOCKET] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    // The layer is mounted again when something unmounted it (mounting a
    // mounted one returns its directory).
    let rootfs: PathBuf = match &spec.rootfs_dir {
        Some(d) => d.clone(),
        None => store.images()?.layers().mount_rw(&spec.id)?,
    };
    let st = State {
        status: Some(Status::Created),
        created_at: old.created_at.clone(),
        started_at: old.started_at.clone(),
        finished_at: old.finished_at.clone(),
        ..State::default()
    };
    let handle = spawn(store, spec, &dir, Path::new(&rootfs), stdio, &mut undo, st)?;
    undo.commit();
    Ok(handle)
}
