//! The index of children: which layers and container layers sit directly
//! on each layer, so that removing a layer left without references reads
//! only what concerns it instead of every layer's `parent` file.
//!
//! `layerdb/dunnage/children/<parent chainID hex>/<child>`: an empty file
//! for each child, named `<chainID hex>` for a layer and
//! `mount-<container id>` for a container layer (`spare-<name>` for a
//! spare one, see [`crate::spare`]: not a child). `dunnage/children.built`
//! says the index is complete (it was rebuilt from the parent files since
//! the store was last written by a version that kept no index).
//!
//! Crash safety comes from ordering alone: an entry is written (and its
//! directory fsynced) before its child is committed, and removed only
//! after its child is gone. So a crash leaves at worst an entry whose
//! child does not exist; entries are counted only under the exclusive
//! store lock, when no commit is in flight, and such stale entries are
//! dropped then. An index that is missing (a store of an older version)
//! is rebuilt from the parent files under the exclusive store lock.
//! Writers that keep no index (an older dunnage, a dockerd sharing the
//! data-root while dunnage is not running) are noticed by time: each of
//! our own changes to `layerdb/sha256/` or `layerdb/mounts/` touches the
//! marker afterwards, so a directory changed later than the marker was
//! changed by someone else, and the index is rebuilt from the parent files
//! before the next removal. (Two writers in the same few milliseconds can
//! escape this; do not run a dockerd on a data-root while dunnage writes
//! to it.) [`LayerStore::check_children_index`] finds what an index misses
//! and [`LayerStore::rebuild_children_index`] repairs it.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::digest::{ChainId, Digest};
use crate::error::{Error, io_err};
use crate::layerdb::{Layerdb, fsync_dir, read_text, write_new};
use crate::lock::LockKind;
use crate::store::LayerStore;

const DIR: &str = "dunnage/children";
const BUILT: &str = "dunnage/children.built";
const MOUNT_PREFIX: &str = "mount-";

/// What sits on a layer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Child {
    /// A read-only layer.
    Layer(ChainId),
    /// A container layer (`layerdb/mounts/<container id>`).
    Mount(String),
}

impl Child {
    fn name(&self) -> String {
        match self {
            Child::Layer(c) => c.hex(),
            Child::Mount(id) => format!("{MOUNT_PREFIX}{id}"),
        }
    }

    fn parse(name: &str) -> Option<Child> {
        match name.strip_prefix(MOUNT_PREFIX) {
            Some(id) if crate::layerdb::valid_id(id) => Some(Child::Mount(id.to_owned())),
            Some(_) => None,
            None => Digest::from_hex(name)
                .ok()
                .map(|d| Child::Layer(ChainId(d))),
        }
    }
}

/// A disagreement between the index of children and the parent files,
/// found by [`LayerStore::check_children_index`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildrenIndexProblem {
    /// The index was never built (or its rebuild was cut short).
    NotBuilt,
    /// A child's parent file names `parent`, but the index lacks the entry:
    /// releasing `parent` could remove it under its child.
    Missing {
        /// The layer the child sits on.
        parent: ChainId,
        /// The child.
        child: Child,
    },
    /// An entry whose child exists but sits on another layer (harmless:
    /// it is dropped when `parent` is next considered for removal).
    /// Entries whose child does not exist, which a process killed around a
    /// commit or a removal leaves, are not reported.
    Stale {
        /// The layer the entry is filed under.
        parent: ChainId,
        /// The entry's child.
        child: Child,
    },
}

impl Layerdb {
    fn children_dir(&self, parent: &ChainId) -> PathBuf {
        self.root().join(DIR).join(parent.hex())
    }

    /// Whether the index is complete (see the [module docs](self)): built,
    /// and no layer or container layer directory changed after our own
    /// last change.
    pub(crate) fn children_index_built(&self) -> bool {
        let mtime = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(built) = mtime(self.root().join(BUILT)) else {
            return false;
        };
        ["sha256", "mounts"]
            .into_iter()
            .all(|d| mtime(self.root().join(d)).is_none_or(|t| t <= built))
    }

    /// Note a change of ours to `sha256/` or `mounts/` (after it is made):
    /// the marker's time moves past it. A failure only costs a rebuild.
    pub(crate) fn note_own_change(&self) {
        let built = self.root().join(BUILT);
        if let Ok(f) = OpenOptions::new().write(true).open(&built) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Record `child` as sitting on `parent` before the child is committed:
    /// durably (fsynced) for a layer; for a container layer without fsync,
    /// as its record is written (see [`crate::rw`]'s durability note: a
    /// machine crash can lose either, which the image store's check
    /// reports). Call with the store lock held (shared or exclusive).
    pub(crate) fn add_child(&self, parent: &ChainId, child: &Child) -> Result<(), Error> {
        let dir = self.children_dir(parent);
        let created = match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        };
        let path = dir.join(child.name());
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("create", &path))?;
        if matches!(child, Child::Layer(_)) {
            fsync_dir(&dir)?;
            if created {
                fsync_dir(&self.root().join(DIR))?;
            }
        }
        Ok(())
    }

    /// Forget `child` of `parent`, once the child is gone; the parent's
    /// directory goes with its last layer entry. After a container layer
    /// the directory stays (the next container on the same image reuses
    /// it; [`has_live_children`](Layerdb::has_live_children) removes it
    /// when `parent` itself is considered for removal). Call with the
    /// store lock held exclusively.
    pub(crate) fn remove_child(&self, parent: &ChainId, child: &Child) -> Result<(), Error> {
        let dir = self.children_dir(parent);
        let path = dir.join(child.name());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("unlink", &path)(e));
            }
            _ => {}
        }
        if matches!(child, Child::Mount(_)) {
            return Ok(());
        }
        match fs::remove_dir(&dir) {
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Err(io_err("rmdir", &dir)(e))
            }
            _ => Ok(()),
        }
    }

    /// The entry of `parent`'s index for the spare container layer `spare`
    /// (see [`crate::spare`]): `spare-<name>`, which no lookup counts as a
    /// child (the first removal of `parent` considered drops it).
    fn spare_entry(&self, parent: &ChainId, spare: &str) -> PathBuf {
        self.children_dir(parent).join(format!("spare-{spare}"))
    }

    /// The container layer `child` of `parent` became the spare `spare`
    /// (its record has left `mounts/`): its entry is renamed for the spare
    /// instead of being removed, so that taking the spare back makes no
    /// new one. An entry already gone is not an error.
    pub(crate) fn keep_child_as_spare(
        &self,
        parent: &ChainId,
        child: &Child,
        spare: &str,
    ) -> Result<(), Error> {
        let from = self.children_dir(parent).join(child.name());
        let to = self.spare_entry(parent, spare);
        match fs::rename(&from, &to) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rename", &from)(e)),
            _ => Ok(()),
        }
    }

    /// Index `child` on `parent` (before its record is committed) from the
    /// entry the spare `spare` kept, or anew when it is gone.
    pub(crate) fn add_child_from_spare(
        &self,
        parent: &ChainId,
        child: &Child,
        spare: &str,
    ) -> Result<(), Error> {
        let from = self.spare_entry(parent, spare);
        let to = self.children_dir(parent).join(child.name());
        match fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.add_child(parent, child),
            Err(e) => Err(io_err("rename", &from)(e)),
        }
    }

    /// Remove the entry the spare `spare` kept, if any.
    pub(crate) fn remove_spare_entry(&self, parent: &ChainId, spare: &str) -> Result<(), Error> {
        let path = self.spare_entry(parent, spare);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("unlink", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Whether any layer or container layer sits on `parent`, from the
    /// index: each entry's child is checked to exist, and entries whose
    /// child is gone are dropped. Call with the store lock held
    /// exclusively (no commit in flight) and the index built.
    pub(crate) fn has_live_children(&self, parent: &ChainId) -> Result<bool, Error> {
        let dir = self.children_dir(parent);
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("readdir", &dir)(e)),
        };
        let mut stale = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let live = match Child::parse(&name) {
                Some(Child::Layer(c)) => self.exists(&c),
                Some(Child::Mount(id)) => self.root().join("mounts").join(id).is_dir(),
                None => false,
            };
            if live {
                return Ok(true);
            }
            stale.push(entry.path());
        }
        for path in stale {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("unlink", &path)(e));
                }
                _ => {}
            }
        }
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(true),
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", &dir)(e)),
            _ => Ok(false),
        }
    }

    /// Every (parent, child) pair the parent files of the layers and
    /// container layers name.
    fn scan_parents(&self) -> Result<BTreeSet<(ChainId, Child)>, Error> {
        let mut out = BTreeSet::new();
        let read_parent = |path: PathBuf| -> Result<Option<ChainId>, Error> {
            if !path.exists() {
                return Ok(None);
            }
            let text = read_text(&path)?;
            text.parse().map(Some).map_err(|e: Error| Error::Corrupt {
                path: path.clone(),
                why: e.to_string(),
            })
        };
        for id in self.layer_ids()? {
            if let Some(p) = read_parent(self.layer_dir(&id).join("parent"))? {
                out.insert((p, Child::Layer(id)));
            }
        }
        let mounts = self.root().join("mounts");
        for entry in fs::read_dir(&mounts).map_err(io_err("readdir", &mounts))? {
            let entry = entry.map_err(io_err("readdir", &mounts))?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Some(p) = read_parent(entry.path().join("parent"))? {
                out.insert((p, Child::Mount(id)));
            }
        }
        Ok(out)
    }

    /// Every entry of the index.
    fn index_entries(&self) -> Result<BTreeSet<(ChainId, Child)>, Error> {
        let root = self.root().join(DIR);
        let mut out = BTreeSet::new();
        let dirs = match fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("readdir", &root)(e)),
        };
        for dir in dirs {
            let dir = dir.map_err(io_err("readdir", &root))?;
            let Ok(parent) = Digest::from_hex(&dir.file_name().to_string_lossy()) else {
                continue;
            };
            let path = dir.path();
            for entry in fs::read_dir(&path).map_err(io_err("readdir", &path))? {
                let entry = entry.map_err(io_err("readdir", &path))?;
                if let Some(child) = Child::parse(&entry.file_name().to_string_lossy()) {
                    out.insert((ChainId(parent), child));
                }
            }
        }
        Ok(out)
    }

    /// Drop the entries whose child does not exist (what a process killed
    /// between indexing a child and committing it leaves). Call with the
    /// store lock held exclusively.
    pub(crate) fn prune_children(&self) -> Result<(), Error> {
        for (parent, child) in self.index_entries()? {
            let live = match &child {
                Child::Layer(c) => self.exists(c),
                Child::Mount(id) => self.root().join("mounts").join(id).is_dir(),
            };
            if !live {
                self.remove_child(&parent, &child)?;
            }
        }
        Ok(())
    }

    /// Rebuild the index from the parent files. Call with the store lock
    /// held exclusively.
    pub(crate) fn rebuild_children(&self) -> Result<(), Error> {
        let built = self.root().join(BUILT);
        match fs::remove_file(&built) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("unlink", &built)(e));
            }
            _ => {}
        }
        let root = self.root().join(DIR);
        match fs::remove_dir_all(&root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &root)(e));
            }
            _ => {}
        }
        crate::layerdb::mkdir(&root, 0o700)?;
        for (parent, child) in self.scan_parents()? {
            self.add_child(&parent, &child)?;
        }
        fsync_dir(&root)?;
        write_new(&built, b"1", 0o600)?;
        fsync_dir(&self.root().join("dunnage"))
    }
}

impl LayerStore {
    /// Compare the index of children (see [`children`](crate::children))
    /// with the layers' and container layers' parent files. Reads every
    /// parent file; changes nothing. Takes the store lock shared (no layer
    /// is removed meanwhile).
    pub fn check_children_index(&self) -> Result<Vec<ChildrenIndexProblem>, Error> {
        let _lock = self.db.store_lock(LockKind::Shared)?;
        let mut out = Vec::new();
        // (An index older than a change by another writer is rebuilt
        // before the next removal; what it misses is reported below.)
        if !self.db.root().join(BUILT).exists() {
            out.push(ChildrenIndexProblem::NotBuilt);
        }
        let want = self.db.scan_parents()?;
        let have = self.db.index_entries()?;
        for (parent, child) in want.difference(&have) {
            out.push(ChildrenIndexProblem::Missing {
                parent: *parent,
                child: child.clone(),
            });
        }
        for (parent, child) in have.difference(&want) {
            // An entry whose child does not exist is what a process killed
            // around a commit or a removal leaves: harmless (dropped when
            // its parent is next considered for removal), not reported.
            let exists = match child {
                Child::Layer(c) => self.db.exists(c),
                Child::Mount(id) => self.db.root().join("mounts").join(id).is_dir(),
            };
            if exists {
                out.push(ChildrenIndexProblem::Stale {
                    parent: *parent,
                    child: child.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Rebuild the index of children from the parent files (what
    /// [`open`](LayerStore::open) does when it is missing).
    pub fn rebuild_children_index(&self) -> Result<(), Error> {
        let _lock = self.db.store_lock(LockKind::Exclusive)?;
        self.db.rebuild_children()
    }
}
