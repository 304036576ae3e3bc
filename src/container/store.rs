//! [`ContainerStore`]: the containers of a data root, beside its images
//! and layers. Finding containers by name, ID or ID prefix, listing them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dunnage_base::lock::{FileLock, LockKind};
use dunnage_cgroups::Hierarchies;
use dunnage_image::ImageStore;

use crate::container::error::{Error, Result, io_err};
use crate::container::handle::ContainerHandle;
use crate::container::resolve::ImageSource;
use crate::container::spec::{Spec, Status};
use crate::container::state::{State, containers_dir, valid_id};

/// The containers (and images) of one data root. Cheap to clone: clones
/// share the open stores.
#[derive(Clone, Debug)]
pub struct ContainerStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// The image store, opened at the first operation that needs it (a
    /// container made from a rootfs directory never does).
    images: std::sync::OnceLock<ImageStore>,
    /// The cgroup hierarchies, read from `/proc/self/mountinfo` once, at
    /// the first container operation that needs them.
    hierarchies: std::sync::OnceLock<Hierarchies>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerStore")
            .field("root", &self.root)
            .finish()
    }
}

/// A container as `docker ps -a` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// The resolved configuration.
    pub spec: Spec,
    /// The recorded state.
    pub state: State,
    /// The status with the process checked.
    pub status: Status,
}

impl ContainerStore {
    /// Open the data root `root` (the image store's root), creating
    /// `containers/` when missing. The image store of the root is opened
    /// (and made, on a new root) at the first call of
    /// [`images`](Self::images), by this or an operation that needs it.
    pub fn open(root: impl AsRef<Path>) -> Result<ContainerStore> {
        let root = root.as_ref().to_path_buf();
        let dir = containers_dir(&root);
        std::fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        // Not spread over the allocation groups (`spread_subdirs`, as the
        // layer directories are): a container's few state files churn
        // little, and on a large ext4 the spreading allocator's scan of
        // every group made each container's `mkdir` cost 0.2 ms. (A root
        // made by an earlier version keeps the flag: harmless, only slower.)
        Ok(ContainerStore {
            inner: Arc::new(Inner {
                root,
                images: std::sync::OnceLock::new(),
                hierarchies: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The image store of the same root, opened at the first call (the
    /// errors of [`ImageStore::open`] come from here).
    pub fn images(&self) -> Result<&ImageStore> {
        if let Some(images) = self.inner.images.get() {
            return Ok(images);
        }
        let images = ImageStore::open(&self.inner.root)?;
        Ok(self.inner.images.get_or_init(|| images))
    }

    /// The host's cgroup hierarchies, detected once per store (a store
    /// outlives no remount of the cgroup file systems: open the store
    /// again after one).
    pub(crate) fn hierarchies(&self) -> Result<&Hierarchies> {
        if let Some(h) = self.inner.hierarchies.get() {
            return Ok(h);
        }
        let h = Hierarchies::detect()?;
        Ok(self.inner.hierarchies.get_or_init(|| h))
    }

    /// `containers/<id>`.
    pub(crate) fn dir_of(&self, id: &str) -> PathBuf {
        containers_dir(&self.inner.root).join(id)
    }

    /// The store-wide lock held while containers are added or removed.
    pub(crate) fn lock_all(&self) -> Result<FileLock> {
        let path = containers_dir(&self.inner.root).join(".lock");
        FileLock::lock(&path, LockKind::Exclusive).map_err(io_err("lock", path))
    }

    /// The image `reference` (name or ID) with its layer directories.
    pub(crate) fn image_source(&self, reference: &str) -> Result<ImageSource> {
        let images = self.images()?;
        let id = images.resolve(reference).map_err(|e| match e {
            dunnage_image::Error::NoSuchImage(_) => Error::UnknownImage(reference.to_string()),
            other => Error::Image(other),
        })?;
        let config = images.config(&id)?;
        let mut layer_dirs = Vec::new();
        if let Some(chain) = config.chain_id() {
            let layers = images.layers();
            for layer in layers.chain(&chain)?.iter().rev() {
                layer_dirs.push(layers.driver().diff_dir(&layer.cache_id));
            }
        }
        Ok(ImageSource { config, layer_dirs })
    }

    /// Every finished container (a directory without `config.json` or
    /// `state.json` is a create in progress or a crashed one, skipped).
    pub fn list(&self) -> Result<Vec<ContainerInfo>> {
        let dir = containers_dir(&self.inner.root);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let entry = entry.map_err(io_err("read dir", &dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| valid_id(n)) else {
                continue;
            };
            match self.info(id) {
                Ok(info) => out.push(info),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| b.spec.created.cmp(&a.spec.created));
        Ok(out)
    }

    /// The ID of the container already named `name`, if any: a finished
    /// container, or a create in progress (its `config.json` written, its
    /// `state.json` not yet) whose creator lives, so that two creates of
    /// one name cannot both pass. Reads only the `id` and `name` of each
    /// `config.json` (no state, no process lookups but for a create in
    /// progress of that name). Call with [`lock_all`](Self::lock_all) held.
    pub(crate) fn named(&self, name: &str) -> Result<Option<String>> {
        #[derive(serde::Deserialize)]
        struct Named {
            id: String,
            name: String,
        }
        let dir = containers_dir(&self.inner.root);
        for entry in std::fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let entry = entry.map_err(io_err("read dir", &dir))?;
            let file_name = entry.file_name();
            let Some(id) = file_name.to_str().filter(|n| valid_id(n)) else {
                continue;
            };
            let cdir = dir.join(id);
            let path = cdir.join("config.json");
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            };
            let named: Named = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if named.name == name
                && (cdir.join("state.json").exists()
                    || crate::container::check::creator_alive(&cdir))
            {
                return Ok(Some(named.id));
            }
        }
        Ok(None)
    }

    /// The configuration and state of container `id` (a full ID).
    pub(crate) fn info(&self, id: &str) -> Result<ContainerInfo> {
        let dir = self.dir_of(id);
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
        let spec = Spec::from_json(path, &bytes)?;
        let state = State::read(&dir)?;
        let status = state.live_status();
        Ok(ContainerInfo {
            spec,
            state,
            status,
        })
    }

    /// The full ID of the container named `key`: a full ID, a name, or a
    /// unique ID prefix (docker's order).
    pub fn lookup(&self, key: &str) -> Result<String> {
        let unknown = || Error::UnknownContainer(key.to_string());
        if key.is_empty() {
            return Err(unknown());
        }
        if valid_id(key) && self.dir_of(key).join("config.json").exists() {
            return Ok(key.to_string());
        }
        let all = self.list()?;
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(c) = all.iter().find(|c| c.spec.name == key) {
            return Ok(c.spec.id.clone());
        }
        let mut prefixed = all.iter().filter(|c| c.spec.id.starts_with(key));
        match (prefixed.next(), prefixed.next()) {
            (Some(c), None) => Ok(c.spec.id.clone()),
            (Some(_), Some(_)) => Err(Error::Invalid {
                what: "container ID prefix",
                reason: format!("multiple IDs found with provided prefix: {key}"),
            }),
            _ => Err(unknown()),
        }
    }

    /// A handle of the container `key` (name, ID or unique prefix), for a
    /// container made by this or another process.
    pub fn get(&self, key: &str) -> Result<ContainerHandle> {
        let id = self.lookup(key)?;
        let info = self.info(&id)?;
        Ok(ContainerHandle::attach(self.clone(), info.spec))
    }
}
