//! Layer references no image owns: found and given back.
//!
//! An image owns one reference on its top layer. While a load, import or
//! commit runs, it holds references of its own on the layers it registered,
//! until it hands them to the images it creates. A process killed in
//! between (SIGKILL or SIGTERM during the second image of an archive) leaves
//! those references with no owner, and the layers would stay forever.
//!
//! Such operations hold an [`Operation`] (a shared `flock` of
//! `<root>/image/overlay2/dunnage/operations.lock`). When no process holds
//! one, every dunnage reference on a layer must belong to an image: a
//! reference beyond that count is leaked. [`ImageStore::leaked_layers`]
//! reports them; [`ImageStore::reclaim_leaked_layers`] gives them back (a
//! layer left with no reference, no child and no mount is then removed).
//! [`ImageStore::prune`] and [`ImageStore::load`] reclaim first, when no
//! other operation is running.
//!
//! A library caller that takes references itself
//! ([`LayerStore::register`](dunnage_layerstore::LayerStore::register) or
//! [`acquire`](dunnage_layerstore::LayerStore::acquire)) on the store's
//! layers must hold an [`Operation`] until it hands them to an image or
//! gives them back. Layers written by dockerd (no dunnage reference count)
//! are never touched.

use std::collections::HashMap;

use dunnage_base::lock::{FileLock, LockKind};
use dunnage_layerstore::{ChainId, Digest};

use crate::error::{Error, Result};
use crate::reference::is_hex64;
use crate::store::{ImageStore, Locked};

/// A layer holding more references than the images on it account for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakedLayer {
    /// The layer.
    pub chain_id: ChainId,
    /// The references it holds.
    pub references: u64,
    /// The images that have it as their top layer (each owns one).
    pub images: u64,
}

/// An operation in progress that holds layer references no image owns yet
/// (see the [module docs](self)); it ends when dropped.
#[derive(Debug)]
pub struct Operation {
    _lock: FileLock,
}

impl ImageStore {
    /// Begin an operation that holds layer references of its own: while it
    /// lives, no process reclaims references as leaked.
    pub fn begin_operation(&self) -> Result<Operation> {
        let path = self.locks_dir().join("operations.lock");
        let lock =
            FileLock::lock(&path, LockKind::Shared).map_err(|e| Error::io("flock", path, e))?;
        Ok(Operation { _lock: lock })
    }

    /// The exclusive operations lock, when no operation is in progress.
    fn quiescent(&self) -> Result<Option<FileLock>> {
        let path = self.locks_dir().join("operations.lock");
        FileLock::try_lock(&path, LockKind::Exclusive).map_err(|e| Error::io("flock", path, e))
    }

    /// The layers holding references no image owns. `None` when that cannot
    /// be told now: an operation is in progress in some process, or an
    /// image config cannot be read (its layers are unknown).
    pub fn leaked_layers(&self) -> Result<Option<Vec<LeakedLayer>>> {
        let Some(_quiet) = self.quiescent()? else {
            return Ok(None);
        };
        let locked = self.lock()?;
        self.survey(&locked)
    }

    /// Give back the references [`leaked_layers`](Self::leaked_layers)
    /// finds (removing the layers nothing else uses); returns what was
    /// reclaimed, `None` when it cannot be told now.
    pub fn reclaim_leaked_layers(&self) -> Result<Option<Vec<LeakedLayer>>> {
        let Some(_quiet) = self.quiescent()? else {
            return Ok(None);
        };
        let locked = self.lock()?;
        let Some(leaked) = self.survey(&locked)? else {
            return Ok(None);
        };
        for l in &leaked {
            for _ in l.images..l.references {
                self.layers().release(&l.chain_id)?;
            }
        }
        Ok(Some(leaked))
    }

    /// Count the images on each layer and compare with its references.
    pub(crate) fn survey(&self, _locked: &Locked) -> Result<Option<Vec<LeakedLayer>>> {
        let mut owners: HashMap<ChainId, u64> = HashMap::new();
        for id in self.imagedb().list()? {
            match self.imagedb().get(&id) {
                Ok(config) => {
                    if let Some(top) = config.chain_id() {
                        *owners.entry(top).or_default() += 1;
                    }
                }
                // Deleted meanwhile is impossible under the lock; anything
                // else leaves this image's layers unknown.
                Err(_) => return Ok(None),
            }
        }
        let mut leaked = Vec::new();
        for chain_id in self.layer_ids()? {
            let images = owners.get(&chain_id).copied().unwrap_or(0);
            // A damaged layer is skipped (the calls that read it report
            // it): it must not keep the others from being reclaimed.
            if let Ok(Some(references)) = self.layers().references(&chain_id)
                && references > images
            {
                leaked.push(LeakedLayer {
                    chain_id,
                    references,
                    images,
                });
            }
        }
        Ok(Some(leaked))
    }

    /// The chainIDs of the layerdb (`layerdb/sha256/<hex>`), unread.
    fn layer_ids(&self) -> Result<Vec<ChainId>> {
        let dir = self.root().join("image/overlay2/layerdb/sha256");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("readdir", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("readdir", &dir, e))?;
            if let Some(name) = entry.file_name().to_str()
                && is_hex64(name)
                && let Ok(d) = Digest::from_hex(name)
            {
                out.push(ChainId(d));
            }
        }
        Ok(out)
    }
}
