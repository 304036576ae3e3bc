//! Staging: a layer stream applied, hashed and tar-split into a fresh driver
//! directory before its parent is known or registered, then committed on
//! its parent.
//!
//! An overlay2 layer's `diff/` directory, its `size`, its diffID and its
//! tar-split do not depend on the layer below it: only the driver's
//! `lower` file and `work/` directory and the layerdb's `parent` file do,
//! and [`StagedLayer::commit`] writes those. So the layers of one image can
//! be staged concurrently and committed in chain order.
//!
//! A staged layer is a write-set in `layerdb/tmp/` (locked by the staging
//! process while it lives, holding `cache-id`, `diff`, `size` and
//! `tar-split.json.gz`) and its driver directory: exactly what a
//! registration in progress is. Dropping it uncommitted removes both; a
//! process killed meanwhile leaves them to the next
//! [`LayerStore::open`] (and `dunnage system check --repair`), which
//! removes unlocked write-sets and the driver directories they name.

use std::fs::File;
use std::io::{BufWriter, Read};

use dunnage_overlay::ApplyOptions;
use flate2::Compression as GzLevel;
use flate2::write::GzEncoder;

use crate::children::Child;
use crate::digest::{ChainId, DiffId, child_chain_id};
use crate::error::{Error, io_err};
use crate::layerdb::{Layer, WriteSet};
use crate::lock::LockKind;
use crate::store::{LayerStore, TAR_SPLIT};
use crate::stream::decompressed;
use crate::tee::Tee;

/// A layer extracted into the store but not registered yet: see
/// [`LayerStore::stage`]. [`commit`](StagedLayer::commit) registers it on
/// a parent; dropping it uncommitted removes what it wrote.
#[derive(Debug)]
#[must_use = "a staged layer is removed when dropped: commit it"]
pub struct StagedLayer<'s> {
    store: &'s LayerStore,
    /// `None` once committed (or handed over to an existing layer).
    ws: Option<WriteSet>,
    cache_id: String,
    diff_id: DiffId,
    size: u64,
}

impl LayerStore {
    /// Apply a layer stream (plain, gzip, or zstd with the `zstd` feature)
    /// into a fresh driver directory in one pass, hashing it (the diffID)
    /// and recording its tar-split, without a parent: the result is
    /// registered by [`StagedLayer::commit`] on a parent that must be
    /// registered by then. With `expected`, a stream whose diffID differs is
    /// an error. On any error nothing is left behind.
    ///
    /// Stages run concurrently (in threads or processes) with each other
    /// and with every other store operation; each takes a thread for
    /// hashing besides the caller's, and a bounded amount of memory (about
    /// 8 MiB of buffers in flight, plus the apply's set of names).
    pub fn stage<R: Read>(
        &self,
        layer: R,
        expected: Option<&DiffId>,
    ) -> Result<StagedLayer<'_>, Error> {
        let cache_id = crate::layerdb::random_hex(32)?;
        let ws = {
            // Under the shared store lock, so a concurrent open cannot take the
            // fresh write-set for a leftover before this process locks it.
            let _lock = self.db.store_lock(LockKind::Shared)?;
            let ws = self.db.write_set()?;
            ws.write("cache-id", cache_id.as_bytes())?;
            self.driver.create(&cache_id, None)?;
            ws
        };
        match self.fill(&ws, layer, &cache_id, expected) {
            Ok((diff_id, size)) => Ok(StagedLayer {
                store: self,
                ws: Some(ws),
                cache_id,
                diff_id,
                size,
            }),
            Err(e) => {
                // The driver directory first, while the write-set naming it
                // is still locked.
                self.discard_cache(&cache_id);
                drop(ws);
                Err(e)
            }
        }
    }

    /// Stream the layer into the driver directory `cache_id` and write the
    /// write-set's files but `parent`. Returns the diffID and the size.
    fn fill<R: Read>(
        &self,
        ws: &WriteSet,
        layer: R,
        cache_id: &str,
        expected: Option<&DiffId>,
    ) -> Result<(DiffId, u64), Error> {
        let split_path = ws.path().join(TAR_SPLIT);
        let split_file = File::options()
            .write(true)
            .create_new(true)
            .open(&split_path)
            .map_err(io_err("create", &split_path))?;
        // The JSON is what must match Go's tar-split byte for byte; its gzip
        // bytes differ between deflate implementations anyway. Level 1: the
        // default level took about a seventh of the hashing thread's time
        // on a plain layer of small files.
        let gz = GzEncoder::new(
            BufWriter::with_capacity(64 * 1024, split_file),
            GzLevel::fast(),
        );
        let mut tee = Tee::new(decompressed(layer)?, gz)?;
        let applied = dunnage_overlay::apply_layer_buffered(
            &mut tee,
            &self.driver.diff_dir(cache_id),
            &ApplyOptions::default(),
        );
        let applied = match applied {
            Ok(stats) => stats,
            Err(e) => return Err(tee.take_failure().unwrap_or(Error::Overlay(e))),
        };
        let (diff_id, gz) = tee.finish()?;
        let file = gz
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(io_err("write", &split_path))?;
        file.sync_all().map_err(io_err("fsync", &split_path))?;
        if let Some(want) = expected
            && *want != diff_id
        {
            return Err(Error::DiffIdMismatch {
                expected: *want,
                actual: diff_id,
            });
        }
        // The apply counts Docker's size as it writes into the fresh
        // directory; a walk only when it could not tell.
        let size = match applied.size {
            Some(size) => size,
            None => self.driver.diff_size(cache_id)?,
        };
        ws.write("diff", diff_id.to_string().as_bytes())?;
        ws.write("size", size.to_string().as_bytes())?;
        self.driver.mark_committed(cache_id)?;
        Ok((diff_id, size))
    }
}

impl StagedLayer<'_> {
    /// The sha256 of the layer's uncompressed tar.
    pub fn diff_id(&self) -> &DiffId {
        &self.diff_id
    }

    /// The apparent size of the layer's files (Docker's `size`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chainID this layer gets on `parent`.
    pub fn chain_id(&self, parent: Option<&ChainId>) -> ChainId {
        child_chain_id(parent, &self.diff_id)
    }

    /// Register the layer on top of `parent` (which must be registered) and
    /// take one reference to it, as [`LayerStore::register`] does: the
    /// layerdb entry is committed in one rename, with the files
    /// `register` writes. When a layer with the resulting chainID exists,
    /// it gains the reference and the staged copy is removed. On error
    /// nothing is registered and the staged copy is removed.
    pub fn commit(mut self, parent: Option<&ChainId>) -> Result<Layer, Error> {
        let store = self.store;
        let chain = self.chain_id(parent);
        let _lock = store.db.store_lock(LockKind::Shared)?;
        let _layer_lock = store.db.item_lock(&chain.hex())?;
        if store.db.exists(&chain) {
            // The shared store lock is held: the driver may remove.
            let _ = store.driver.remove(&self.cache_id);
            self.ws = None;
            if let Some(n) = store.db.refs(&chain)? {
                store.db.set_refs(&chain, n + 1)?;
            }
            return store.db.read_layer(&chain);
        }
        let Some(ws) = self.ws.as_ref() else {
            return Err(Error::Stream(std::io::Error::other(
                "staged layer already committed",
            )));
        };
        // Under the shared store lock: the parent cannot be removed
        // (removal takes it exclusively) until this layer names it.
        if let Some(p) = parent {
            let parent_layer = store.db.read_layer(p)?;
            ws.write("parent", p.to_string().as_bytes())?;
            store
                .driver
                .set_parent(&self.cache_id, &parent_layer.cache_id)?;
            // Indexed before the layer exists (see crate::children).
            store.db.add_child(p, &Child::Layer(chain))?;
        }
        store.db.set_refs(&chain, 1)?;
        let Some(ws) = self.ws.take() else {
            return Err(Error::Stream(std::io::Error::other(
                "staged layer already committed",
            )));
        };
        if let Err(e) = ws.commit(&store.db.layer_dir(&chain)) {
            let _ = store.db.remove_refs(&chain);
            // The index entry stays: a stale entry is harmless, and
            // removing entries needs the exclusive lock (see crate::children).
            // The write-set is gone (dropped by its failed commit): remove
            // its driver directory now. The shared store lock is held.
            let _ = store.driver.remove(&self.cache_id);
            return Err(e);
        }
        store.db.note_own_change();
        Ok(Layer {
            chain_id: chain,
            diff_id: self.diff_id,
            parent: parent.copied(),
            cache_id: std::mem::take(&mut self.cache_id),
            size: self.size,
        })
    }
}

impl Drop for StagedLayer<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            // The driver directory first, while the write-set naming it is
            // still locked; a failure leaves both to the next open.
            self.store.discard_cache(&self.cache_id);
            drop(ws);
        }
    }
}
