//! The store check with the containers: [`ContainerStore::check`] runs the
//! image store's check ([`dunnage_image::ImageStore::check`]: layers,
//! overlay2 directories, mounts, images, tags) and adds what only the
//! containers' state can tell:
//!
//! - a container directory without `config.json` or `state.json` that no
//!   live process is creating: a `create` killed part-way, or a `remove`
//!   killed while deleting the directory ([`Problem::Unfinished`]);
//! - a container made from an image whose layer record
//!   (`layerdb/mounts/<id>`) is gone: a `remove` killed after releasing
//!   the layer ([`Problem::MissingLayer`]);
//! - a container layer record named by a container ID (64 hex digits)
//!   with no container directory ([`Problem::OrphanLayer`]).
//!
//! [`ContainerStore::repair`] finishes what the killed operation started
//! for the first two (the container goes, with its cgroup and the
//! processes in it, its layer and mount, its directory) and releases the
//! orphan layer and its mount; then it runs the image store's repair.
//!
//! Docker's own containers (a directory with `config.v2.json`, in a data
//! root shared with a stopped dockerd) are not judged. Both hold the
//! containers lock (so no `remove` runs meanwhile); a `create` in progress
//! names its process in the extended attribute `user.dunnage.creator` of
//! `containers/<id>` (or, where the file system has none, in
//! `containers/<id>/creator`) until its `state.json` exists, and is
//! skipped while that process lives.

use std::fmt;
use std::path::Path;

use crate::container::error::{Error, Result, io_err};
use crate::container::spec::Spec;
use crate::container::state::{self, containers_dir, valid_id};
use crate::container::store::ContainerStore;

/// The file a `create` in progress names its process in: `PID START`
/// (start time in clock ticks, as [`state::pid_start_time`]), where the
/// file system has no user extended attributes (see [`CREATOR_XATTR`]).
pub(crate) const CREATOR: &str = "creator";

/// The extended attribute of the container directory that names a
/// `create` in progress (as [`CREATOR`] does): no inode to make and free
/// per container. Removed once `state.json` exists.
pub(crate) const CREATOR_XATTR: &str = "user.dunnage.creator";

/// Name the process creating the container of `dir`: the directory's
/// [`CREATOR_XATTR`], or the file [`CREATOR`] where the file system
/// refuses the attribute. Returns whether the file was written.
pub(crate) fn record_creator(dir: &Path, text: &str) -> Result<bool> {
    if rustix::fs::setxattr(
        dir,
        CREATOR_XATTR,
        text.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok()
    {
        return Ok(false);
    }
    let path = dir.join(CREATOR);
    std::fs::write(&path, text).map_err(io_err("write", path))?;
    Ok(true)
}

/// Forget the creator [`record_creator`] named (`file`: its return).
pub(crate) fn clear_creator(dir: &Path, file: bool) {
    if file {
        let _ = std::fs::remove_file(dir.join(CREATOR));
    } else {
        let _ = rustix::fs::removexattr(dir, CREATOR_XATTR);
    }
}

/// One disagreement found by [`ContainerStore::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// What the image store's check found.
    Store(dunnage_image::Problem),
    /// A container directory lacking `what` (`config.json` or
    /// `state.json`) whose creator has gone: an interrupted create or
    /// remove.
    Unfinished {
        /// The container ID.
        id: String,
        /// The missing file.
        what: &'static str,
    },
    /// A container made from an image whose read-write layer record is
    /// gone (a remove interrupted after releasing it).
    MissingLayer {
        /// The container ID.
        id: String,
    },
    /// A container layer record whose container directory is gone.
    OrphanLayer {
        /// The container ID.
        id: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Store(p) => p.fmt(f),
            Problem::Unfinished { id, what } => {
                write!(f, "container {id} is unfinished: it has no {what}")
            }
            Problem::MissingLayer { id } => {
                write!(f, "container {id} has lost its read-write layer")
            }
            Problem::OrphanLayer { id } => {
                write!(f, "container layer {id} belongs to no container")
            }
        }
    }
}

/// What [`ContainerStore::check`] found; empty when the store is
/// consistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every problem, the containers' first.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Whether the process named in `dir/creator` is alive and not exiting.
///
/// A SIGKILLed creator is "exiting" (`PF_EXITING`) from the moment the
/// kernel starts its exit until it becomes a zombie; meanwhile it runs no
/// more of its own code, but its `/proc/PID/stat` still shows it running.
/// Counting it as alive made a check right after the kill skip the
/// unfinished create (and its mounted layer): the kill trials saw the
/// monitor's command line gone (its memory is released early in the
/// exit), checked, and found the mount left after the repair.
pub(crate) fn creator_alive(dir: &Path) -> bool {
    let mut buf = [0u8; 64];
    let text = match rustix::fs::getxattr(dir, CREATOR_XATTR, &mut buf[..]) {
        Ok(n) => String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned(),
        Err(_) => match std::fs::read_to_string(dir.join(CREATOR)) {
            Ok(text) => text,
            Err(_) => return false,
        },
    };
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(pid)), Some(Ok(start))) => i32::try_from(pid).is_ok_and(|pid| {
            state::same_process(pid, start)
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| is_exiting(&stat))
        }),
        _ => false,
    }
}

/// The kernel's `PF_EXITING` task flag.
const PF_EXITING: u64 = 0x4;

/// Whether a `/proc/PID/stat` line shows a process that has begun to exit
/// (`PF_EXITING` in its flags, field 9). An unreadable line is not.
fn is_exiting(stat: &str) -> bool {
    // The command name is in parentheses and may hold anything: the
    // fields after the last ')' start with field 3 (state).
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

impl ContainerStore {
    /// Check that the containers, their layers and the image store agree
    /// (see the [module docs](self)); changes nothing.
    pub fn check(&self) -> Result<CheckReport> {
        let _all = self.lock_all()?;
        self.survey()
    }

    /// Fix what [`check`](Self::check) finds that can be fixed (see the
    /// [module docs](self)); returns what it found before. Call
    /// [`check`](Self::check) afterwards for what is left.
    pub fn repair(&self) -> Result<CheckReport> {
        let _all = self.lock_all()?;
        let found = self.survey()?;
        for p in &found.problems {
            match p {
                Problem::Unfinished { id, .. } | Problem::MissingLayer { id } => {
                    self.discard(id)?;
                }
                Problem::OrphanLayer { id } => self.release_layer(id)?,
                _ => {}
            }
        }
        let images = self.images()?.repair()?;
        // What the image store found is reported as found.
        let mut problems: Vec<Problem> = found
            .problems
            .into_iter()
            .filter(|p| !matches!(p, Problem::Store(_)))
            .collect();
        problems.extend(images.problems.into_iter().map(Problem::Store));
        Ok(CheckReport { problems })
    }

    /// The containers' problems, then the image store's.
    fn survey(&self) -> Result<CheckReport> {
        let mut problems = Vec::new();
        let layers = self.images()?.layers();
        // Layer records first: a create makes its directory before its
        // layer, so a record seen here without a directory seen below is
        // an orphan (no remove runs: the caller holds the lock).
        // The names, not `list_rw`: a damaged record is the image check's
        // to report (BrokenContainerLayer), not a reason to fail.
        let mounts = layers.root().join("image/overlay2/layerdb/mounts");
        let mut records = Vec::new();
        match std::fs::read_dir(&mounts) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(io_err("read dir", &mounts))?;
                    if let Some(name) = e.file_name().to_str() {
                        records.push(name.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read dir", mounts)(e)),
        }
        let dir = containers_dir(self.root());
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let entry = entry.map_err(io_err("read dir", &dir))?;
            if let Some(id) = entry.file_name().to_str().filter(|n| valid_id(n)) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        for id in &ids {
            let d = self.dir_of(id);
            if d.join("config.v2.json").exists() {
                continue; // docker's
            }
            let missing = ["config.json", "state.json"]
                .into_iter()
                .find(|f| !d.join(f).exists());
            if let Some(what) = missing {
                if !creator_alive(&d) {
                    problems.push(Problem::Unfinished {
                        id: id.clone(),
                        what,
                    });
                }
                continue;
            }
            let spec = match self.info(id) {
                Ok(info) => info.spec,
                Err(Error::CorruptState { .. }) => {
                    problems.push(Problem::Unfinished {
                        id: id.clone(),
                        what: "readable config.json and state.json",
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            if spec.rootfs_dir.is_none() && !records.contains(id) {
                problems.push(Problem::MissingLayer { id: id.clone() });
            }
        }
        for id in records {
            // A damaged record is reported by the image check.
            if valid_id(&id) && !ids.contains(&id) && layers.get_rw(&id).is_ok() {
                problems.push(Problem::OrphanLayer { id });
            }
        }
        let images = self.images()?.check()?;
        problems.extend(images.problems.into_iter().map(Problem::Store));
        Ok(CheckReport { problems })
    }

    /// Remove what there is of container `id`: the processes in its
    /// cgroup and the cgroup, its network attachment (both when its
    /// configuration says where), the mounts its child made at the rootfs
    /// in our mount namespace (when its create recorded them), its layer
    /// and mount, its directory. The caller holds the lock.
    fn discard(&self, id: &str) -> Result<()> {
        let dir = self.dir_of(id);
        let path = dir.join("config.json");
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(spec) = Spec::from_json(path, &bytes)
        {
            crate::container::handle::remove_cgroup(self.hierarchies()?, &spec.cgroup)?;
            // A create killed after attaching, or a remove that failed
            // while detaching: the lease, the rules and the host ports.
            crate::container::network::detach(self, &spec)?;
        }
        // A create killed after its child, sharing our mount namespace,
        // set up the rootfs: the mounts stacked there since (before a
        // layer mount below them goes).
        crate::container::shared_rootfs::unmount_from_record(&dir)?;
        self.release_layer(id)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
            _ => Ok(()),
        }
    }

    /// Unmount and remove the container layer of `id`, if there is one.
    fn release_layer(&self, id: &str) -> Result<()> {
        let layers = self.images()?.layers();
        for step in 0..2 {
            let done = if step == 0 {
                layers.unmount_rw(id)
            } else {
                layers.remove_rw(id)
            };
            match done {
                Ok(()) | Err(dunnage_layerstore::Error::MountNotFound(_)) => {}
                Err(e) => return Err(Error::Layer(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{clear_creator, creator_alive, is_exiting, record_creator};

    #[test]
    fn creator_is_named_in_an_xattr_or_a_file_and_forgotten() {
        let dir = dunnage_testsupport::TempDir::new("creator").unwrap();
        let me = std::process::id() as i32;
        let start = crate::container::state::pid_start_time(me).unwrap();
        // This process: alive; recorded as an attribute where the file
        // system has user xattrs (no file then), as a file elsewhere.
        let file = record_creator(dir.path(), &format!("{me} {start}\n")).unwrap();
        assert_eq!(dir.path().join(super::CREATOR).exists(), file);
        assert!(creator_alive(dir.path()));
        clear_creator(dir.path(), file);
        assert!(!creator_alive(dir.path()));
        // A dead or malformed creator is not alive, in either form.
        for text in [
            "0 0\n",
            "junk",
            "",
            "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
        ] {
            let file = record_creator(dir.path(), text).unwrap();
            assert!(!creator_alive(dir.path()), "{text:?}");
            clear_creator(dir.path(), file);
            std::fs::write(dir.path().join(super::CREATOR), text).unwrap();
            assert!(!creator_alive(dir.path()), "file {text:?}");
            std::fs::remove_file(dir.path().join(super::CREATOR)).unwrap();
        }
        // The file an earlier version wrote is still read.
        std::fs::write(dir.path().join(super::CREATOR), format!("{me} {start}\n")).unwrap();
        assert!(creator_alive(dir.path()));
    }

    #[test]
    fn exiting_is_read_from_the_flags_field() {
        // Field 9 (flags) of a running process: 0x400040 (PF_FORKNOEXEC
        // and PF_RANDOMIZE); of one in its exit: 0x404044 adds PF_EXITING.
        let running = "4242 (dunnage) S 1 4242 4242 0 -1 4194368 120 0 0 0 1 2 0 0 20 0 1 0 555";
        let exiting = "4242 (dunnage) R 1 4242 4242 0 -1 4210756 120 0 0 0 1 2 0 0 20 0 1 0 555";
        assert!(!is_exiting(running));
        assert!(is_exiting(exiting));
        // A name holding ") R 1 2 3 4 5 6 7" does not shift the fields.
        let odd = "4242 (a) R 1 2 3 4 5 6 7) S 1 4242 4242 0 -1 4194368 1 0 0 0";
        assert!(!is_exiting(odd));
        // This live process is not exiting; garbage is not either.
        let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        assert!(!is_exiting(&me));
        assert!(!is_exiting(""));
        assert!(!is_exiting("1 (x) S"));
    }
}
