//! The image store of a data-root: configs, tags and their layers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use dunnage_layerstore::{ChainId, LayerStore};

use crate::config::{ImageConfig, ImageId};
use crate::error::{Error, Result};
use crate::fsutil::create_dirs;
use crate::imagedb::ImageDb;
use crate::reference::Reference;
use crate::repositories::Repositories;
use crate::time::format_rfc3339;

/// Images of a Docker-compatible data-root (`<root>/image/overlay2/...`),
/// over the root's [`LayerStore`].
///
/// Every image holds one (persisted) reference on its top layer, taken
/// when its layers were registered and given back when it is deleted.
pub struct ImageStore {
    root: PathBuf,
    layers: LayerStore,
    db: ImageDb,
    repos: Mutex<Repositories>,
}

/// What [`ImageStore::remove`] did, in order (like `docker rmi`'s output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// A reference was removed.
    Untagged(Reference),
    /// An image was deleted.
    Deleted(ImageId),
}

impl ImageStore {
    /// Open (and create) the store of `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let layers = LayerStore::open(root)?;
        let base = root.join("image/overlay2");
        let db = ImageDb::open(&base.join("imagedb"))?;
        let repos = Repositories::open(&base.join("repositories.json"))?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            layers,
            db,
            repos: Mutex::new(repos),
        })
    }

    /// Open the store of `root` for queries (`images`, `history`,
    /// `inspect`, listing layers and containers): the layer store is opened
    /// with [`LayerStore::open_read_only`], so nothing is cleaned up,
    /// repaired or unmounted. Missing store directories are created.
    pub fn open_read_only(root: &Path) -> Result<ImageStore> {
        let layers = LayerStore::open_read_only(root)?;
        let base = root.join("image/overlay2");
        let db = ImageDb::open(&base.join("imagedb"))?;
        let repos = Repositories::open(&base.join("repositories.json"))?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            layers,
            db,
            repos: Mutex::new(repos),
        })
    }

    /// The data-root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layer store underneath.
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The imagedb.
    pub fn imagedb(&self) -> &ImageDb {
        &self.db
    }

    pub(crate) fn repos(&self) -> MutexGuard<'_, Repositories> {
        self.repos.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An anonymous scratch file in `<root>/tmp` (opened read-write with
    /// `O_TMPFILE`, mode 0600): it has no name, so it is gone when closed,
    /// also when the process dies. For spooling a stream that must be
    /// seekable (`docker save` to stdout, `docker load` from stdin).
    pub fn temp_file(&self) -> Result<File> {
        let dir = self.root.join("tmp");
        create_dirs(&dir, 0o700)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc_o_tmpfile())
            .mode(0o600)
            .open(&dir)
            .map_err(|e| Error::io("open O_TMPFILE", dir, e))
    }

    /// Find an image by reference (`busybox`, `me/app:1`, `x@sha256:...`),
    /// full ID (`sha256:<hex>` or `<hex>`) or unique ID prefix.
    pub fn resolve(&self, text: &str) -> Result<ImageId> {
        if let Ok(id) = text.parse::<ImageId>() {
            return if self.db.exists(&id) {
                Ok(id)
            } else {
                Err(Error::NoSuchImage(text.to_string()))
            };
        }
        if let Ok(r) = Reference::parse(text)
            && let Some(id) = self.repos().get(&r)
        {
            return Ok(id.clone());
        }
        let prefix = text.strip_prefix("sha256:").unwrap_or(text);
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(Error::NoSuchImage(text.to_string()));
        }
        let mut found = self
            .db
            .list()?
            .into_iter()
            .filter(|id| id.hex().starts_with(prefix));
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(Error::Ambiguous(text.to_string())),
            _ => Err(Error::NoSuchImage(text.to_string())),
        }
    }

    /// Read and verify an image's config.
    pub fn config(&self, id: &ImageId) -> Result<ImageConfig> {
        self.db.get(id)
    }

    /// Every stored image ID.
    pub fn list(&self) -> Result<Vec<ImageId>> {
        self.db.list()
    }

    /// The references naming `id`.
    pub fn references(&self, id: &ImageId) -> Vec<Reference> {
        self.repos().references(id)
    }

    /// Store `config` as an image whose layers end at `top` (a chain the
    /// caller holds one reference on, handed over to the image). An image
    /// that exists already keeps its own reference.
    pub fn create(
        &self,
        config: &ImageConfig,
        top: Option<&ChainId>,
        parent: Option<&ImageId>,
    ) -> Result<ImageId> {
        let id = config.id().clone();
        let stored = if config.chain_id().as_ref() != top {
            Err(Error::InvalidConfig {
                id: id.to_string(),
                reason: "the config's diff_ids do not match its layers".to_string(),
            })
        } else if self.db.exists(&id) {
            Ok(false)
        } else {
            self.db
                .put(config)
                .and_then(|()| parent.map_or(Ok(()), |p| self.db.set_parent(&id, p)))
                .map(|()| true)
        };
        if !matches!(stored, Ok(true))
            && let Some(top) = top
        {
            // On an error the release is best effort: the error reported is
            // the one that stopped the store.
            let released = self.layers.release(top);
            if stored.is_ok() {
                released?;
            }
        }
        stored.map(|_| id)
    }

    /// Point `reference` at `id` and record the time as the image's
    /// `lastUpdated`.
    pub fn set_tag(&self, reference: &Reference, id: &ImageId) -> Result<()> {
        if !self.db.exists(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        self.repos().add(reference, id)?;
        self.db
            .set_last_updated(id, &format_rfc3339(SystemTime::now()))
    }

    /// `docker tag SRC DST`.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageId> {
        let id = self.resolve(source)?;
        self.set_tag(&Reference::parse(target)?, &id)?;
        Ok(id)
    }

    /// `docker rmi`: a reference is untagged and its image deleted when no
    /// reference is left; an ID deletes the image (with `force` also when
    /// several references name it). Images with child images are kept.
    ///
    /// An image used by a container layer or a mount ([`ImageStore::users`])
    /// is kept as dockerd keeps it: its only reference is not removed
    /// without `force` ([`Error::ReferenceInUse`]); deleting it by ID is
    /// refused ([`Error::ImageUsed`]), and `force` overrides only a stopped
    /// container (the container keeps the layers). With `force`, a
    /// reference of an image in hard use is untagged and the image kept.
    pub fn remove(&self, text: &str, force: bool) -> Result<Vec<Removed>> {
        let id = self.resolve(text)?;
        let by_reference = Reference::parse(text)
            .ok()
            .filter(|r| self.repos().get(r) == Some(&id));
        let mut done = Vec::new();
        let refs = self.references(&id);
        let users = self.users(&id)?;
        match by_reference {
            Some(r) => {
                if !force
                    && refs.len() == 1
                    && let Some(user) = users.first()
                {
                    return Err(Error::ReferenceInUse {
                        reference: text.to_string(),
                        image: id,
                        user: user.clone(),
                    });
                }
                self.repos().remove(&r)?;
                done.push(Removed::Untagged(r));
                if refs.len() > 1 {
                    return Ok(done);
                }
            }
            None if refs.len() > 1 && !force => {
                return Err(Error::InUse {
                    image: id.to_string(),
                    why: "referenced in multiple repositories (must be forced)".to_string(),
                });
            }
            None => {}
        }
        if !self.db.children(&id)?.is_empty() {
            if done.is_empty() {
                return Err(Error::InUse {
                    image: id.to_string(),
                    why: "image has dependent child images".to_string(),
                });
            }
            return Ok(done);
        }
        if let Some(user) = users.iter().find(|u| u.is_hard() || !force) {
            if done.is_empty() {
                return Err(Error::ImageUsed {
                    image: id,
                    user: user.clone(),
                });
            }
            // Untagged, and kept while used (docker says nothing more).
            return Ok(done);
        }
        for r in self.references(&id) {
            self.repos().remove(&r)?;
            done.push(Removed::Untagged(r));
        }
        self.delete(&id)?;
        done.push(Removed::Deleted(id));
        Ok(done)
    }

    /// Delete dangling images (no reference, no child, not used by a
    /// container or a mount); returns them.
    pub fn prune(&self) -> Result<Vec<ImageId>> {
        let mut deleted = Vec::new();
        for id in self.db.list()? {
            if self.references(&id).is_empty()
                && self.db.children(&id)?.is_empty()
                && self.users(&id)?.is_empty()
            {
                self.delete(&id)?;
                deleted.push(id);
            }
        }
        Ok(deleted)
    }

    /// Delete an image's config and metadata and give back its layer
    /// reference.
    pub(crate) fn delete(&self, id: &ImageId) -> Result<()> {
        let top = self.db.get(id).ok().and_then(|c| c.chain_id());
        self.db.delete(id)?;
        if let Some(top) = top {
            self.layers.release(&top)?;
        }
        Ok(())
    }
}

fn libc_o_tmpfile() -> i32 {
    rustix::fs::OFlags::TMPFILE.bits() as i32
}
