//! The image store of a data-root: configs, tags and their layers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use dunnage_base::lock::{FileLock, LockKind};
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
///
/// Several processes may use one store at once: every change of the
/// imagedb or of `repositories.json` happens under an exclusive `flock` of
/// `<root>/image/overlay2/dunnage/images.lock`, and `repositories.json` is
/// re-read under that lock before it is changed and rewritten atomically,
/// so no tag set by another process is lost or brought back.
pub struct ImageStore {
    root: PathBuf,
    layers: LayerStore,
    db: ImageDb,
    repos_path: PathBuf,
    locks: PathBuf,
}

/// Proof that the images lock is held (see [`ImageStore`]): the functions
/// that change the imagedb or the tags take it.
pub(crate) struct Locked {
    _lock: FileLock,
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
        ImageStore::open_on(root, LayerStore::open(root)?)
    }

    /// Open the store of `root` for queries (`images`, `history`,
    /// `inspect`, listing layers and containers): the layer store is opened
    /// with [`LayerStore::open_read_only`], so nothing is cleaned up,
    /// repaired or unmounted. Missing store directories are created.
    pub fn open_read_only(root: &Path) -> Result<ImageStore> {
        ImageStore::open_on(root, LayerStore::open_read_only(root)?)
    }

    /// The image store of `root` over `layers`.
    fn open_on(root: &Path, layers: LayerStore) -> Result<ImageStore> {
        let base = root.join("image/overlay2");
        let db = ImageDb::open(&base.join("imagedb"))?;
        let repos_path = base.join("repositories.json");
        // Read once, so that a damaged file is reported when the store opens.
        Repositories::open(&repos_path)?;
        let locks = base.join("dunnage");
        create_dirs(&locks, 0o700)?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            layers,
            db,
            repos_path,
            locks,
        })
    }

    /// The directory of the image store's lock files.
    pub(crate) fn locks_dir(&self) -> &Path {
        &self.locks
    }

    /// Take the images lock (exclusive), waiting for it.
    pub(crate) fn lock(&self) -> Result<Locked> {
        let path = self.locks.join("images.lock");
        let lock =
            FileLock::lock(&path, LockKind::Exclusive).map_err(|e| Error::io("flock", path, e))?;
        Ok(Locked { _lock: lock })
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

    /// The tags as they are on disk now.
    pub(crate) fn repos(&self) -> Result<Repositories> {
        Repositories::open(&self.repos_path)
    }

    /// Change the tags: re-read `repositories.json` under the images lock,
    /// apply `f` (whose changes are written atomically as it makes them).
    pub(crate) fn edit_repos<T>(
        &self,
        _locked: &Locked,
        f: impl FnOnce(&mut Repositories) -> Result<T>,
    ) -> Result<T> {
        f(&mut self.repos()?)
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
            && let Some(id) = self.repos()?.get(&r)
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

    /// The references naming `id` (read from `repositories.json` now).
    pub fn references(&self, id: &ImageId) -> Result<Vec<Reference>> {
        Ok(self.repos()?.references(id))
    }

    /// Store `config` as an image whose layers end at `top` (a chain the
    /// caller holds one reference on, under an
    /// [`Operation`](crate::reclaim::Operation), handed over to the image). An image
    /// that exists already keeps its own reference, and the caller's is
    /// given back: under the images lock, so that two processes creating
    /// the same image leave it exactly one.
    pub fn create(
        &self,
        config: &ImageConfig,
        top: Option<&ChainId>,
        parent: Option<&ImageId>,
    ) -> Result<ImageId> {
        let locked = self.lock()?;
        self.create_locked(&locked, config, top, parent)
    }

    /// [`create`](Self::create) with the images lock held.
    pub(crate) fn create_locked(
        &self,
        _locked: &Locked,
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
        let locked = self.lock()?;
        self.set_tag_locked(&locked, reference, id)
    }

    /// [`set_tag`](Self::set_tag) with the images lock held.
    pub(crate) fn set_tag_locked(
        &self,
        locked: &Locked,
        reference: &Reference,
        id: &ImageId,
    ) -> Result<()> {
        self.set_tags_locked(locked, std::slice::from_ref(reference), id)
    }

    /// Point every reference of `references` at `id` (one rewrite of
    /// `repositories.json`), with the images lock held.
    pub(crate) fn set_tags_locked(
        &self,
        locked: &Locked,
        references: &[Reference],
        id: &ImageId,
    ) -> Result<()> {
        if !self.db.exists(id) {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        self.edit_repos(locked, |r| r.add_all(references, id))?;
        self.db
            .set_last_updated(id, &format_rfc3339(SystemTime::now()))
    }

    /// `docker tag SRC DST`. Like docker, a `DST` with a digest
    /// (`name@sha256:...`) is refused: a digest names content, not a tag.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageId> {
        let reference = Reference::parse(target)?;
        if reference.digest().is_some() {
            return Err(Error::InvalidReference {
                reference: target.to_string(),
                reason: "refusing to create a tag with a digest reference",
            });
        }
        let id = self.resolve(source)?;
        self.set_tag(&reference, &id)?;
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
        let locked = self.lock()?;
        let id = self.resolve(text)?;
        let repos = self.repos()?;
        let by_reference = Reference::parse(text)
            .ok()
            .filter(|r| repos.get(r) == Some(&id));
        let mut done = Vec::new();
        let refs = repos.references(&id);
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
                self.edit_repos(&locked, |repos| repos.remove(&r))?;
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
        for r in self.references(&id)? {
            self.edit_repos(&locked, |repos| repos.remove(&r))?;
            done.push(Removed::Untagged(r));
        }
        self.delete(&locked, &id)?;
        done.push(Removed::Deleted(id));
        Ok(done)
    }

    /// Delete dangling images (no reference, no child, not used by a
    /// container or a mount); returns them.
    /// Then, when no load, import or commit is running, give back the
    /// layer references no image owns (see [`reclaim`](crate::reclaim);
    /// [`leaked_layers`](Self::leaked_layers) reports what stays).
    pub fn prune(&self) -> Result<Vec<ImageId>> {
        let deleted = self.prune_images()?;
        // Best effort: a layer that cannot be read is reported by
        // `leaked_layers` and by the calls that read it.
        let _ = self.reclaim_leaked_layers();
        Ok(deleted)
    }

    fn prune_images(&self) -> Result<Vec<ImageId>> {
        let locked = self.lock()?;
        let mut deleted = Vec::new();
        let repos = self.repos()?;
        for id in self.db.list()? {
            if repos.references(&id).is_empty()
                && self.db.children(&id)?.is_empty()
                && self.users(&id)?.is_empty()
            {
                self.delete(&locked, &id)?;
                deleted.push(id);
            }
        }
        Ok(deleted)
    }

    /// Delete an image's config and metadata and give back its layer
    /// reference.
    pub(crate) fn delete(&self, _locked: &Locked, id: &ImageId) -> Result<()> {
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
