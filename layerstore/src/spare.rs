//! Spare container layers: a removed container's layer kept for the next
//! container on the same image instead of being deleted.
//!
//! A container layer is about 30 inodes (the init layer's entries, two
//! driver directories with `diff`, `work`, `link`, `lower`, their `l/`
//! links, the record). On an ext4 without a journal every inode allocation
//! scans the inodes freed in the last seconds, so making and freeing them
//! per container is most of what a container's layer costs. A layer whose
//! container wrote nothing (its `diff` is empty) and whose init layer is
//! Docker's ([`InitLayer::default`]) is the same, file for file, as the
//! next container on the same image would get: [`LayerStore::remove_rw`]
//! keeps it, with a new empty `diff` and `work` (so that neither what the
//! container set on its root directory, such as its mode, attributes or
//! inode flags, nor an overlay instance that outlived its unmount reaches
//! the next container: two inodes made instead of about thirty), and
//! [`LayerStore::create_rw`] takes it back by renames alone.
//!
//! On disk: `layerdb/dunnage/spares/<parent chainID hex, or "none">-<random>/`
//! holds the record exactly as `mounts/<container id>/` held it
//! (`mount-id`, `init-id`, `parent`); the driver directories keep their
//! names. A spare is never mounted and has no entry in the index of
//! children: it does not keep its parent. Bounds: [`MAX_PER_PARENT`] per
//! parent, [`MAX_TOTAL`] in all.
//!
//! Crash safety, by renames: a spare is made by renaming a container's
//! record from `mounts/` (one step: the container's layer is gone and the
//! spare is whole); it is taken or dropped by renaming it into `tmp/` as a
//! staged container record, which `open` cleans up (driver directories
//! included) when the process dies before the record reaches `mounts/`.
//! Spares whose parent or driver directories are gone are dropped by
//! `open`; spares of a layer are dropped before the layer is removed.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::children::Child;
use crate::digest::ChainId;
use crate::error::{Error, io_err};
use crate::layerdb::{random_hex, read_text, valid_id};
use crate::rw::{InitLayer, RwLayer};
use crate::store::LayerStore;

/// Where spares live, below the layerdb.
const DIR: &str = "dunnage/spares";
/// At most this many spares on one parent.
pub const MAX_PER_PARENT: usize = 2;
/// At most this many spares in the store.
pub const MAX_TOTAL: usize = 8;

/// The name prefix of a spare on `parent`.
fn key(parent: Option<&ChainId>) -> String {
    match parent {
        Some(p) => format!("{}-", p.hex()),
        None => "none-".to_owned(),
    }
}

impl LayerStore {
    fn spares_dir(&self) -> PathBuf {
        self.db.root().join(DIR)
    }

    /// The names of the spares, unsorted (none when the directory is
    /// missing: a store of an earlier version).
    fn spare_names(&self) -> Result<Vec<String>, Error> {
        let dir = self.spares_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("readdir", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// How many spares the store keeps (see [`crate::spare`]).
    pub fn spare_count(&self) -> Result<usize, Error> {
        Ok(self.spare_names()?.len())
    }

    /// The driver directories the spares name (`mount-id` and `init-id`
    /// of each), for a check that looks for driver directories no record
    /// names. Unreadable records are skipped (`open` drops them).
    pub fn spare_driver_ids(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for name in self.spare_names()? {
            let dir = self.spares_dir().join(&name);
            for file in ["mount-id", "init-id"] {
                if let Ok(id) = read_text(&dir.join(file))
                    && valid_id(&id)
                {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Keep the container layer `rw` (its record at `record`) as a spare
    /// when it is as new (see [`crate::spare`]); `Ok(false)` when it is not
    /// or cannot be made one (the caller removes it). Call with the store
    /// lock held exclusively.
    pub(crate) fn keep_spare(&self, rw: &RwLayer, record: &Path) -> Result<bool, Error> {
        // A spare only saves work: any error up to here leaves the layer
        // to be removed as before.
        if !self.prepare_spare(rw).unwrap_or(false) {
            return Ok(false);
        }
        let name = format!("{}{}", key(rw.parent.as_ref()), random_hex(8)?);
        let dir = self.spares_dir();
        fs::rename(record, dir.join(&name)).map_err(io_err("rename", record))?;
        if let Some(p) = &rw.parent {
            self.db
                .keep_child_as_spare(p, &Child::Mount(rw.container_id.clone()), &name)?;
        }
        Ok(true)
    }

    /// Whether `rw` may become a spare, its upper directories renewed
    /// (see [`renew_upper`](Self::renew_upper)) when it may.
    fn prepare_spare(&self, rw: &RwLayer) -> Result<bool, Error> {
        let Some(init_id) = &rw.init_id else {
            return Ok(false);
        };
        // A parent without a reference of ours goes with this layer.
        if let Some(p) = &rw.parent
            && !matches!(self.db.refs(p)?, Some(n) if n > 0)
        {
            return Ok(false);
        }
        let names = self.spare_names()?;
        let key = key(rw.parent.as_ref());
        if names.len() >= MAX_TOTAL
            || names.iter().filter(|n| n.starts_with(&key)).count() >= MAX_PER_PARENT
        {
            return Ok(false);
        }
        if self.driver.is_busy(&rw.mount_id)? || !self.is_unused(&rw.mount_id, init_id)? {
            return Ok(false);
        }
        let dir = self.spares_dir();
        match fs::DirBuilder::new().create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_err("mkdir", &dir)(e));
            }
            _ => {}
        }
        self.renew_upper(&rw.mount_id)
    }

    /// Whether the read-write layer `mount_id` was left as [`create_rw`]
    /// made it: not mounted, no `volatile` mark left, and `init_id` holding
    /// exactly Docker's init layer. (Its `diff` is checked empty by
    /// [`renew_upper`](Self::renew_upper).)
    ///
    /// [`create_rw`]: LayerStore::create_rw
    fn is_unused(&self, mount_id: &str, init_id: &str) -> Result<bool, Error> {
        let diff = self.driver.diff_dir(mount_id);
        let Some(layer) = diff.parent() else {
            return Ok(false);
        };
        for leftover in ["merged", "work/work/incompat/volatile"] {
            if layer.join(leftover).symlink_metadata().is_ok() {
                return Ok(false);
            }
        }
        Ok(InitLayer::default().matches(&self.driver.diff_dir(init_id)))
    }

    /// Give the read-write layer `mount_id` a new, empty `diff` and `work`
    /// in place of the old ones; `Ok(false)` when `diff` is not empty (the
    /// container wrote something). An overlay instance that outlived the
    /// container's unmount (a file descriptor or working directory kept in
    /// `merged`, a copy of the mount in another mount namespace) goes on
    /// writing to the old, now unlinked, directories: nothing of it reaches
    /// the next container, nor inode flags, times or extended attributes
    /// the container set on its root directory.
    fn renew_upper(&self, mount_id: &str) -> Result<bool, Error> {
        let diff = self.driver.diff_dir(mount_id);
        let Some(layer) = diff.parent() else {
            return Ok(false);
        };
        let empty = fs::read_dir(&diff).is_ok_and(|mut rd| rd.next().is_none());
        if !empty {
            return Ok(false);
        }
        // Each directory is swapped with a new one in one step (a process
        // killed anywhere here leaves a whole layer: `diff` and `work`
        // always exist; a `-renew` leftover goes with the layer or at the
        // next renewal), then the old one is removed.
        for (name, mode) in [("diff", 0o755), ("work", 0o700)] {
            let old = layer.join(name);
            let new = layer.join(format!("{name}-renew"));
            match fs::remove_dir_all(&new) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &new)(e));
                }
                _ => {}
            }
            fs::DirBuilder::new()
                .mode(mode)
                .create(&new)
                .map_err(io_err("mkdir", &new))?;
            // The mode exactly, whatever the umask.
            fs::set_permissions(&new, fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", &new))?;
            exchange(&new, &old)?;
            // `new` names the old directory now.
            let removed = if name == "diff" {
                fs::remove_dir(&new)
            } else {
                fs::remove_dir_all(&new)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                    // Written meanwhile: put it back; the caller removes the
                    // layer as before.
                    exchange(&new, &old)?;
                    let _ = fs::remove_dir(&new);
                    return Ok(false);
                }
                Err(e) => return Err(io_err("remove", &new)(e)),
            }
        }
        Ok(true)
    }

    /// Take a spare on `parent` for `container_id`: its record renamed
    /// into `mounts/<container_id>` (through `tmp/`). `None` when there is
    /// none (or none whole). Call with the store lock held (shared).
    pub(crate) fn take_spare(
        &self,
        container_id: &str,
        parent: Option<&ChainId>,
    ) -> Result<Option<RwLayer>, Error> {
        let key = key(parent);
        for name in self.spare_names()? {
            if !name.starts_with(&key) {
                continue;
            }
            let spare = self.spares_dir().join(&name);
            let stage = self
                .db
                .root()
                .join("tmp")
                .join(format!("mount-{}", random_hex(8)?));
            match fs::rename(&spare, &stage) {
                Ok(()) => {}
                // Taken by another process meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("rename", &spare)(e)),
            }
            let ids = (|| {
                let mount_id = read_text(&stage.join("mount-id")).ok()?;
                let init_id = read_text(&stage.join("init-id")).ok()?;
                (valid_id(&mount_id)
                    && valid_id(&init_id)
                    && self.driver.exists(&mount_id)
                    && self.driver.exists(&init_id))
                .then_some((mount_id, init_id))
            })();
            let Some((mount_id, init_id)) = ids else {
                self.discard_stage(&stage);
                continue;
            };
            let placed = (|| {
                if let Some(p) = parent {
                    self.db.add_child_from_spare(
                        p,
                        &Child::Mount(container_id.to_owned()),
                        &name,
                    )?;
                }
                let dir = self.db.root().join("mounts").join(container_id);
                fs::rename(&stage, &dir).map_err(|e| {
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                    ) {
                        Error::MountExists(container_id.to_owned())
                    } else {
                        io_err("rename", &dir)(e)
                    }
                })
            })();
            if let Err(e) = placed {
                self.discard_stage(&stage);
                return Err(e);
            }
            return Ok(Some(RwLayer {
                container_id: container_id.to_owned(),
                mount_id,
                init_id: Some(init_id),
                parent: parent.copied(),
            }));
        }
        Ok(None)
    }

    /// Remove a staged record and the driver directories it names
    /// (errors ignored: `open` cleans what is left in `tmp/`).
    fn discard_stage(&self, stage: &Path) {
        for file in ["mount-id", "init-id"] {
            if let Ok(id) = read_text(&stage.join(file))
                && valid_id(&id)
                && self.driver.has_dir(&id)
                && self.driver.remove(&id).is_err()
            {
                return;
            }
        }
        let _ = fs::remove_dir_all(stage);
    }

    /// Drop the spares on `parent` (`None`: every spare). Call with the
    /// store lock held exclusively.
    pub(crate) fn drop_spares_on(&self, parent: Option<&ChainId>) -> Result<(), Error> {
        let key = parent.map(|p| key(Some(p)));
        for name in self.spare_names()? {
            if key.as_ref().is_some_and(|k| !name.starts_with(k)) {
                continue;
            }
            self.drop_spare(&name)?;
        }
        Ok(())
    }

    /// Drop one spare: staged into `tmp/` first, so that a process killed
    /// midway leaves what `open` cleans.
    fn drop_spare(&self, name: &str) -> Result<(), Error> {
        let spare = self.spares_dir().join(name);
        let stage = self
            .db
            .root()
            .join("tmp")
            .join(format!("mount-spare-{}", random_hex(8)?));
        match fs::rename(&spare, &stage) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("rename", &spare)(e)),
        }
        if let Some(parent) = name
            .split_once('-')
            .and_then(|(hex, _)| format!("sha256:{hex}").parse::<ChainId>().ok())
        {
            self.db.remove_spare_entry(&parent, name)?;
        }
        // Only the two directories of a record as `remove_rw` leaves it
        // (`<id>` and `<id>-init`): a damaged record naming another
        // layer's directory removes nothing but itself.
        let mount_id = read_text(&stage.join("mount-id")).ok();
        let init_id = read_text(&stage.join("init-id")).ok();
        if let (Some(m), Some(i)) = (mount_id, init_id)
            && valid_id(&m)
            && i == format!("{m}-init")
        {
            for id in [m, i] {
                if self.driver.has_dir(&id) {
                    self.driver.remove(&id)?;
                }
            }
        }
        fs::remove_dir_all(&stage).map_err(io_err("remove", &stage))
    }

    /// Drop every spare (they are remade as containers are removed).
    pub fn drop_spares(&self) -> Result<(), Error> {
        let _lock = self.db.store_lock(crate::lock::LockKind::Exclusive)?;
        self.drop_spares_on(None)
    }

    /// The spares that cannot be taken: a name that is not
    /// `<parent>-<random>`, a parent layer that is gone, a record that
    /// does not name two existing driver directories. Reads only.
    pub fn broken_spares(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out = Vec::new();
        for name in self.spare_names()? {
            let dir = self.spares_dir().join(&name);
            let parent_ok = match name.split_once('-') {
                Some(("none", _)) => true,
                Some((hex, _)) => format!("sha256:{hex}")
                    .parse::<ChainId>()
                    .is_ok_and(|c| self.db.exists(&c)),
                None => false,
            };
            let ids_ok = ["mount-id", "init-id"].iter().all(|f| {
                read_text(&dir.join(f)).is_ok_and(|id| valid_id(&id) && self.driver.exists(&id))
            });
            // Gone meanwhile: taken by a create (which holds the store
            // lock shared, as a check does), not broken.
            if dir.symlink_metadata().is_err() {
                continue;
            }
            if !parent_ok || !ids_ok || !dir.is_dir() {
                out.push(dir);
            }
        }
        Ok(out)
    }

    /// Drop the spares [`broken_spares`](LayerStore::broken_spares)
    /// reports. Errors are not the caller's (`open`): a spare that cannot
    /// be dropped now (a directory busy, an I/O error) stays, or stays
    /// staged in `tmp/`, for a later open, and the store's check reports
    /// it. Call with the store lock held exclusively.
    pub(crate) fn drop_broken_spares(&self) {
        for dir in self.broken_spares().unwrap_or_default() {
            if dir.is_dir() {
                if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
                    let _ = self.drop_spare(name);
                }
            } else {
                let _ = fs::remove_file(&dir);
            }
        }
    }
}

/// Swap the directories `a` and `b` in one step (`RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> Result<(), Error> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| io_err("rename", a)(io::Error::from(e)))
}
