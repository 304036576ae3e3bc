//! Mounted (container) layers: `layerdb/mounts/<container id>/{mount-id,init-id,parent}`
//! and the driver directories `<mount-id>-init` (the init layer) and
//! `<mount-id>` (the container's read-write layer) on top of an image chain.
//!
//! Durability: none of a container layer's files and directories are
//! fsynced (the record, the driver directories, the init layer), as
//! Docker's overlay2 driver does not fsync them: a container's layer is
//! recreated with the container, and fsyncs cost more than the rest of its
//! creation on a busy disk. The order of the steps is what makes a killed
//! process safe (a staged record in `tmp/`, renamed into `mounts/` last;
//! removal renames it out first): a process killed at any point leaves
//! what `open` cleans. Only a crash of the machine can leave a record or a
//! driver file empty or missing, which the image store's check reports
//! (`BrokenContainerLayer`), as it does for Docker's.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::children::Child;
use crate::digest::ChainId;
use crate::error::{Error, io_err};
use crate::layerdb::{random_hex, read_text, valid_id};
use crate::lock::LockKind;
use crate::store::LayerStore;

/// A container's layer as recorded under `layerdb/mounts/<container id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RwLayer {
    /// The container id (the directory name under `mounts/`).
    pub container_id: String,
    /// The driver directory of the read-write layer.
    pub mount_id: String,
    /// The driver directory of the init layer (`<mount-id>-init`), if any.
    pub init_id: Option<String>,
    /// The image chain the container's layer sits on.
    pub parent: Option<ChainId>,
}

/// One thing an init layer creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitEntry {
    /// A directory (0755).
    Dir(PathBuf),
    /// An empty regular file (0755, as Docker makes them); parents are created.
    File(PathBuf),
    /// A symbolic link `path -> target`; parents are created.
    Symlink(PathBuf, PathBuf),
}

/// The contents of a container's init layer. [`InitLayer::default`] is
/// Docker's: `/.dockerenv`, `/dev/{console,pts,shm}`, `/etc/{hostname,hosts,resolv.conf}`,
/// `/etc/mtab -> /proc/mounts`, `/proc`, `/sys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitLayer {
    /// What to create, in order; paths are relative to the layer's root.
    pub entries: Vec<InitEntry>,
}

impl Default for InitLayer {
    fn default() -> InitLayer {
        use InitEntry::{Dir, File, Symlink};
        let p = PathBuf::from;
        InitLayer {
            entries: vec![
                Dir(p("dev/pts")),
                Dir(p("dev/shm")),
                Dir(p("proc")),
                Dir(p("sys")),
                File(p(".dockerenv")),
                File(p("etc/resolv.conf")),
                File(p("etc/hosts")),
                File(p("etc/hostname")),
                File(p("dev/console")),
                Symlink(p("etc/mtab"), p("/proc/mounts")),
            ],
        }
    }
}

impl InitLayer {
    /// An init layer that creates nothing.
    pub fn empty() -> InitLayer {
        InitLayer {
            entries: Vec::new(),
        }
    }

    /// Whether the directory `root` holds exactly what
    /// [`write`](InitLayer::write) makes: the entries and their parent
    /// directories, files empty, symlinks to their targets, nothing else.
    /// Anything unreadable is a mismatch.
    pub(crate) fn matches(&self, root: &Path) -> bool {
        use std::collections::BTreeMap;
        #[derive(PartialEq, Eq)]
        enum Kind {
            Dir,
            File,
            Symlink(PathBuf),
        }
        let mut want: BTreeMap<PathBuf, Kind> = BTreeMap::new();
        for entry in &self.entries {
            let (rel, kind) = match entry {
                InitEntry::Dir(p) => (p, Kind::Dir),
                InitEntry::File(p) => (p, Kind::File),
                InitEntry::Symlink(p, t) => (p, Kind::Symlink(t.clone())),
            };
            let mut up = rel.parent();
            while let Some(dir) = up.filter(|d| !d.as_os_str().is_empty()) {
                want.entry(dir.to_path_buf()).or_insert(Kind::Dir);
                up = dir.parent();
            }
            want.insert(rel.clone(), kind);
        }
        fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Kind>) -> Option<()> {
            for entry in fs::read_dir(root.join(rel)).ok()? {
                let entry = entry.ok()?;
                let path = rel.join(entry.file_name());
                let meta = entry.metadata().ok()?;
                let kind = if meta.is_dir() {
                    walk(root, &path, out)?;
                    Kind::Dir
                } else if meta.is_file() && meta.len() == 0 {
                    Kind::File
                } else if meta.file_type().is_symlink() {
                    Kind::Symlink(fs::read_link(root.join(&path)).ok()?)
                } else {
                    return None;
                };
                out.insert(path, kind);
            }
            Some(())
        }
        let mut have = BTreeMap::new();
        walk(root, Path::new(""), &mut have).is_some() && have == want
    }

    /// Create the entries below `root`, a fresh empty directory: each one
    /// made once, relative to its directory's handle (missing parents are
    /// made 0755 on the way), nothing re-checked.
    fn write(&self, root: &Path) -> Result<(), Error> {
        use std::collections::HashMap;
        use std::os::fd::OwnedFd;
        let open_root = rustix::fs::open(
            root,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| io_err("open", root)(e.into()))?;
        // The directories made or opened so far, by relative path.
        let mut dirs: HashMap<PathBuf, OwnedFd> = HashMap::new();
        dirs.insert(PathBuf::new(), open_root);
        // The handle of `rel` (a directory), made when missing.
        fn dir_of<'a>(
            dirs: &'a mut HashMap<PathBuf, OwnedFd>,
            root: &Path,
            rel: &Path,
        ) -> Result<&'a OwnedFd, Error> {
            if !dirs.contains_key(rel) {
                let (parent, name) = match (rel.parent(), rel.file_name()) {
                    (Some(p), Some(n)) => (p, n),
                    _ => {
                        return Err(io_err("mkdir", root.join(rel))(
                            std::io::ErrorKind::InvalidInput.into(),
                        ));
                    }
                };
                dir_of(dirs, root, parent)?;
                let pfd = &dirs[parent];
                let fd = match dunnage_base::fs::mkdir_at(pfd, name, 0o755) {
                    Ok(fd) => fd,
                    // Made by an earlier entry (`Dir` then a file in it):
                    // opened without following a symlink.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => rustix::fs::openat(
                        pfd,
                        name,
                        rustix::fs::OFlags::RDONLY
                            | rustix::fs::OFlags::DIRECTORY
                            | rustix::fs::OFlags::NOFOLLOW
                            | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map_err(|e| io_err("open", root.join(rel))(e.into()))?,
                    Err(e) => return Err(io_err("mkdir", root.join(rel))(e)),
                };
                dirs.insert(rel.to_path_buf(), fd);
            }
            Ok(&dirs[rel])
        }
        for entry in &self.entries {
            let rel = match entry {
                InitEntry::Dir(p) | InitEntry::File(p) | InitEntry::Symlink(p, _) => p,
            };
            if rel.as_os_str().is_empty()
                || !rel.components().all(|c| matches!(c, Component::Normal(_)))
            {
                return Err(Error::Corrupt {
                    path: rel.clone(),
                    why: "init layer paths must be relative, without `.` or `..`".into(),
                });
            }
            let path = root.join(rel);
            let (parent, name) = match (rel.parent(), rel.file_name()) {
                (Some(p), Some(n)) => (p, n),
                _ => continue, // not reached: checked above
            };
            match entry {
                InitEntry::Dir(_) => {
                    dir_of(&mut dirs, root, rel)?;
                }
                InitEntry::File(_) => {
                    let pfd = dir_of(&mut dirs, root, parent)?;
                    // 0755, as Docker makes them; exactly (umask aside).
                    dunnage_base::fs::create_new_at(pfd, name, b"", 0o755)
                        .map_err(io_err("create", &path))?;
                }
                InitEntry::Symlink(_, target) => {
                    let pfd = dir_of(&mut dirs, root, parent)?;
                    rustix::fs::symlinkat(target.as_path(), pfd, name)
                        .map_err(|e| io_err("symlink", &path)(e.into()))?;
                }
            }
        }
        Ok(())
    }
}

fn check_container_id(id: &str) -> Result<(), Error> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.to_owned()))
    }
}

impl LayerStore {
    fn mount_dir(&self, container_id: &str) -> PathBuf {
        self.db.root().join("mounts").join(container_id)
    }

    /// Create a container's layer on top of the image chain `parent`: the init
    /// layer (`init`, or none) and the read-write layer above it, recorded in
    /// `mounts/<container_id>`.
    pub fn create_rw(
        &self,
        container_id: &str,
        parent: Option<&ChainId>,
        init: Option<&InitLayer>,
    ) -> Result<RwLayer, Error> {
        check_container_id(container_id)?;
        // No lock of its own: two creates of one container ID race to the
        // final rename, which only one wins (the other cleans up after
        // itself); a removal takes the store lock exclusively.
        let _lock = self.db.store_lock(LockKind::Shared)?;
        let dir = self.mount_dir(container_id);
        if dir.exists() {
            return Err(Error::MountExists(container_id.to_owned()));
        }
        let parent_cache = parent.map(|p| self.get(p)).transpose()?.map(|l| l.cache_id);
        // A spare (see crate::spare) is the same, file for file, as the
        // layer made below: taken by renames, no inode made.
        if init.is_some_and(|i| *i == InitLayer::default())
            && let Some(rw) = self.take_spare(container_id, parent)?
        {
            self.db.note_own_change();
            return Ok(rw);
        }
        let mount_id = random_hex(32)?;
        let init_id = init.map(|_| format!("{mount_id}-init"));
        // The record is staged in tmp/ first (so that a crash leaves the names
        // of the driver directories to clean up) and renamed into place last.
        let stage = self
            .db
            .root()
            .join("tmp")
            .join(format!("mount-{}", random_hex(8)?));
        let built = (|| {
            let tmp = stage.parent().unwrap_or(&stage);
            let tmp_fd = rustix::fs::open(
                tmp,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| io_err("open", tmp)(e.into()))?;
            let name = stage.file_name().unwrap_or_default();
            let staged = dunnage_base::fs::mkdir_at(&tmp_fd, name, 0o755)
                .map_err(io_err("mkdir", &stage))?;
            let record = |file: &str, data: &[u8]| {
                dunnage_base::fs::create_new_at(&staged, file.as_ref(), data, 0o644)
                    .map_err(io_err("write", stage.join(file)))
            };
            record("mount-id", mount_id.as_bytes())?;
            if let Some(init_id) = &init_id {
                record("init-id", init_id.as_bytes())?;
            }
            if let Some(p) = parent {
                record("parent", p.to_string().as_bytes())?;
                // Indexed before the record exists (see crate::children);
                // not fsynced, like the record itself.
                self.db
                    .add_child(p, &Child::Mount(container_id.to_owned()))?;
            }
            let mut below = parent_cache.clone();
            if let (Some(init), Some(init_id)) = (init, &init_id) {
                self.driver
                    .create_ephemeral_lower(init_id, below.as_deref())?;
                init.write(&self.driver.diff_dir(init_id))?;
                below = Some(init_id.clone());
            }
            self.driver.create_ephemeral(&mount_id, below.as_deref())?;
            fs::rename(&stage, &dir).map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
                ) {
                    Error::MountExists(container_id.to_owned())
                } else {
                    io_err("rename", &dir)(e)
                }
            })
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&stage);
            let _ = self.driver.remove(&mount_id);
            if let Some(init_id) = &init_id {
                let _ = self.driver.remove(init_id);
            }
            return Err(e);
        }
        self.db.note_own_change();
        Ok(RwLayer {
            container_id: container_id.to_owned(),
            mount_id,
            init_id,
            parent: parent.copied(),
        })
    }

    /// The container layer recorded for `container_id`.
    pub fn get_rw(&self, container_id: &str) -> Result<RwLayer, Error> {
        check_container_id(container_id)?;
        let dir = self.mount_dir(container_id);
        if !dir.is_dir() {
            return Err(Error::MountNotFound(container_id.to_owned()));
        }
        let id_file = |name: &str| -> Result<Option<String>, Error> {
            let path = dir.join(name);
            if !path.exists() {
                return Ok(None);
            }
            let id = read_text(&path)?;
            if !valid_id(&id) {
                return Err(Error::Corrupt {
                    path,
                    why: format!("invalid id {id:?}"),
                });
            }
            Ok(Some(id))
        };
        let mount_id = id_file("mount-id")?.ok_or_else(|| Error::Corrupt {
            path: dir.join("mount-id"),
            why: "missing".into(),
        })?;
        let init_id = id_file("init-id")?;
        let parent_path = dir.join("parent");
        let parent = if parent_path.exists() {
            let text = read_text(&parent_path)?;
            Some(text.parse().map_err(|e: Error| Error::Corrupt {
                path: parent_path.clone(),
                why: e.to_string(),
            })?)
        } else {
            None
        };
        Ok(RwLayer {
            container_id: container_id.to_owned(),
            mount_id,
            init_id,
            parent,
        })
    }

    /// Every container layer, ordered by container id.
    pub fn list_rw(&self) -> Result<Vec<RwLayer>, Error> {
        let dir = self.db.root().join("mounts");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            if let Some(name) = entry.file_name().to_str() {
                ids.push(name.to_owned());
            }
        }
        ids.sort();
        ids.iter().map(|id| self.get_rw(id)).collect()
    }

    /// Mount the container's layer and return the merged directory. The
    /// mount is owned by a record on disk (the driver's `mount-owner`, see
    /// [`dunnage_overlay::owned`]), not by this process: it stays when the
    /// process exits and when other processes open the store, until
    /// [`unmount_rw`](LayerStore::unmount_rw). Mounting an already mounted
    /// container's layer returns the same directory (one record, not a
    /// count).
    pub fn mount_rw(&self, container_id: &str) -> Result<PathBuf, Error> {
        let rw = self.get_rw(container_id)?;
        Ok(self.driver.get_owned(&rw.mount_id, container_id)?)
    }

    /// Release the container layer's mount made by
    /// [`mount_rw`](LayerStore::mount_rw), from this or any other process:
    /// the record goes and the layer is unmounted (unless a
    /// [`Driver::get`](dunnage_overlay::Driver::get) still holds it). A
    /// layer that is not mounted is not an error.
    pub fn unmount_rw(&self, container_id: &str) -> Result<(), Error> {
        let rw = self.get_rw(container_id)?;
        Ok(self.driver.put_owned(&rw.mount_id)?)
    }

    /// Where the container's layer is mounted (its merged directory, read
    /// from `/proc/self/mountinfo`), or `None` when it is not mounted.
    /// Reads only: no lock is taken and nothing is repaired, so it works on
    /// a store opened with [`open_read_only`](LayerStore::open_read_only).
    pub fn rw_mount_point(&self, container_id: &str) -> Result<Option<PathBuf>, Error> {
        let rw = self.get_rw(container_id)?;
        Ok(self.driver.mount_point(&rw.mount_id)?)
    }

    /// The container's changes like `docker diff` (A/C/D), init layer excluded.
    pub fn rw_changes(&self, container_id: &str) -> Result<Vec<dunnage_overlay::Change>, Error> {
        let rw = self.get_rw(container_id)?;
        let lowers = self.driver.lower_dirs(&rw.mount_id)?;
        Ok(dunnage_overlay::changes(
            &self.driver.diff_dir(&rw.mount_id),
            &lowers,
        )?)
    }

    /// Write the container's changes as a layer tar (init layer excluded) to `out`.
    ///
    /// When the read-write directory holds `redirect_dir` or `metacopy` marks
    /// (an overlay mounted with those options), the changes are found by
    /// comparing the container's view with the layers below it (the init
    /// layer among them, so its contents stay out of the diff).
    pub fn rw_diff<W: Write>(&self, container_id: &str, out: W) -> Result<W, Error> {
        let rw = self.get_rw(container_id)?;
        // The lowers are resolved only when the upper directory needs them.
        Ok(self.driver.write_diff(&rw.mount_id, out)?)
    }

    /// Remove the container's layer (its driver directories and its record);
    /// an image chain left unreferenced and unused is removed with it. A
    /// layer its container left as new (Docker's init layer, nothing
    /// written) is kept as a spare for the next [`create_rw`] on the same
    /// image instead (see [`spare_count`](LayerStore::spare_count),
    /// [`drop_spares`](LayerStore::drop_spares)); its record leaves
    /// `mounts/` all the same.
    ///
    /// [`create_rw`]: LayerStore::create_rw
    /// Refused ([`dunnage_overlay::Error::Busy`]) while the layer is mounted
    /// by [`mount_rw`](LayerStore::mount_rw).
    pub fn remove_rw(&self, container_id: &str) -> Result<(), Error> {
        let rw = self.get_rw(container_id)?;
        let _lock = self.db.store_lock(LockKind::Exclusive)?;
        // The record leaves `mounts/` first, in one rename, for a staged
        // record in `tmp/`: a process killed from here on leaves no
        // half-removed record (one without its `mount-id`, or naming
        // directories already gone), but a leftover that the next `open`
        // removes with the driver directories it names.
        let dir = self.mount_dir(container_id);
        // A layer as new becomes a spare for the next container on the
        // same image (see crate::spare): its record renamed, nothing freed.
        if self.keep_spare(&rw, &dir)? {
            self.db.note_own_change();
            self.db.remove_locks(&[format!("mount-{container_id}")])?;
            if let Some(p) = &rw.parent {
                self.db
                    .remove_child(p, &Child::Mount(container_id.to_owned()))?;
            }
            return Ok(());
        }
        let staged = self
            .db
            .root()
            .join("tmp")
            .join(format!("mount-removing-{container_id}-{}", random_hex(8)?));
        fs::rename(&dir, &staged).map_err(io_err("rename", &dir))?;
        if let Err(e) = self.driver.remove(&rw.mount_id) {
            // Mounted (busy): the container layer stays as it was.
            let _ = fs::rename(&staged, &dir);
            return Err(e.into());
        }
        if let Some(init_id) = &rw.init_id {
            self.driver.remove(init_id)?;
        }
        self.db.note_own_change();
        fs::remove_dir_all(&staged).map_err(io_err("remove", &staged))?;
        // The lock file that earlier versions kept per container layer.
        self.db.remove_locks(&[format!("mount-{container_id}")])?;
        if let Some(p) = &rw.parent {
            self.db
                .remove_child(p, &Child::Mount(container_id.to_owned()))?;
        }
        match rw.parent {
            Some(p) if self.db.exists(&p) => self.collect(p),
            _ => Ok(()),
        }
    }
}
