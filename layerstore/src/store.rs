//! [`LayerStore`]: the read-only layers of a Docker data-root: register,
//! look up, reference, release, reassemble and mount them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dunnage_overlay::Driver;
use flate2::read::MultiGzDecoder;

use crate::children::Child;
use crate::digest::{ChainId, DiffId};
use crate::error::{Error, io_err};
use crate::layerdb::{Layer, Layerdb, read_text, valid_id};
use crate::lock::{FileLock, LockKind};

pub(crate) const TAR_SPLIT: &str = "tar-split.json.gz";

/// A Docker-compatible layer store over a data-root (`<root>/image/overlay2/layerdb`
/// for the metadata, `<root>/overlay2` for the overlay2 driver's directories).
///
/// Several processes may open the same root at once (see the crate docs for
/// the locking and reference-count rules).
#[derive(Debug)]
pub struct LayerStore {
    root: PathBuf,
    pub(crate) db: Layerdb,
    pub(crate) driver: Driver,
    /// Chains this process mounted with `mount_chain`: how many times, and
    /// the shared mount lock that tells every process they are in use.
    mounted: Mutex<HashMap<ChainId, (usize, FileLock)>>,
}

impl LayerStore {
    /// Open (creating when missing) the store of `data_root`, and clean up what
    /// interrupted work left: `*-removing` layers, abandoned write-sets in
    /// `tmp/` and their driver directories, stale reference files, and layers
    /// left with no reference and unused (a removal cut short, or a layer
    /// released while a process that has since exited had it mounted).
    pub fn open(data_root: &Path) -> Result<LayerStore, Error> {
        let db = Layerdb::open(data_root.join("image/overlay2/layerdb"))?;
        // The driver repairs short links when it opens: no other process may
        // be creating or removing driver directories meanwhile (they do so
        // under the shared store lock).
        let lock = db.store_lock(LockKind::Exclusive)?;
        // Container layer records are staged here, one directory each:
        // spread them over the allocation groups (see
        // dunnage_base::fs::spread_subdirs; a hint, errors ignored).
        let _ = dunnage_base::fs::spread_subdirs(&db.root().join("tmp"));
        let driver = Driver::open(&data_root.join("overlay2"))?;
        let store = LayerStore {
            root: data_root.to_owned(),
            db,
            driver,
            mounted: Mutex::new(HashMap::new()),
        };
        store.clean_up()?;
        drop(lock);
        Ok(store)
    }

    /// Open the store of `data_root` for queries (listing, reading layers,
    /// [`rw_mount_point`](LayerStore::rw_mount_point), ...): no clean-up,
    /// no short-link repair, nothing unmounted. The layerdb's directories
    /// are created when missing. Writing through a store opened this way
    /// works but skips what [`open`](LayerStore::open) repairs first.
    pub fn open_read_only(data_root: &Path) -> Result<LayerStore, Error> {
        let db = Layerdb::open(data_root.join("image/overlay2/layerdb"))?;
        let driver = Driver::open_read_only(&data_root.join("overlay2"));
        Ok(LayerStore {
            root: data_root.to_owned(),
            db,
            driver,
            mounted: Mutex::new(HashMap::new()),
        })
    }

    /// Remove a driver directory after a failed or redundant registration,
    /// ignoring errors (a leftover is cleaned by the next open).
    pub(crate) fn discard_cache(&self, cache_id: &str) {
        if let Ok(_lock) = self.db.store_lock(LockKind::Shared) {
            let _ = self.driver.remove(cache_id);
        }
    }

    /// Call with the store lock held exclusively.
    fn clean_up(&self) -> Result<(), Error> {
        let leftovers = self.db.leftovers()?;
        let crashed = !leftovers.is_empty();
        'leftovers: for dir in leftovers {
            // Driver directories named by a write-set (cache-id), a
            // `-removing` layer (cache-id) or a staged container record.
            for name in ["cache-id", "init-id", "mount-id"] {
                // Not `driver.exists`: a removal cut short may have taken
                // `diff/` and left the rest of the directory.
                if let Ok(id) = read_text(&dir.join(name))
                    && valid_id(&id)
                    && self.driver.has_dir(&id)
                {
                    match self.driver.remove(&id) {
                        // Some process still holds a `get` of it: the
                        // leftover stays for a later open.
                        Err(dunnage_overlay::Error::Busy(_)) => continue 'leftovers,
                        r => r?,
                    }
                }
            }
            if dir.is_dir() {
                fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
            } else {
                fs::remove_file(&dir).map_err(io_err("unlink", &dir))?;
            }
        }
        // Reference files are written just before a layer is committed and
        // removed just after it is renamed to -removing: a crash in between
        // leaves a write-set or a -removing directory.
        for chain in self.db.stale_refs(crashed)? {
            self.db.remove_refs(&chain)?;
        }
        // A store of a version that kept no index of children gets one.
        // When a parent file cannot be read, no layer is collected (which
        // ones it protects is unknown); the calls that read it report it.
        if !self.db.children_index_built() {
            if self.db.rebuild_children().is_err() {
                return Ok(());
            }
        } else if crashed {
            // An entry indexed by a registration or container creation
            // killed before its commit.
            self.db.prune_children()?;
        }
        // Spares whose parent or driver directories went (a removal by
        // another program, a crash).
        self.drop_broken_spares();
        for chain in self.db.unreferenced()? {
            if self.db.exists(&chain) {
                // A layer whose child, or a parent file, cannot be read
                // stays; the calls that read that layer report it.
                match self.collect(chain) {
                    Err(Error::Corrupt { .. }) => {}
                    r => r?,
                }
            }
        }
        Ok(())
    }

    /// The data-root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The overlay2 driver holding the layers' directories.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Register a layer on top of `parent` from a tar stream (plain, gzip, or
    /// zstd with the `zstd` feature) in one pass, and take one reference to it.
    ///
    /// When a layer with the resulting chainID exists, the new copy is dropped
    /// and the existing layer gains the reference. With `expected`, a stream
    /// whose diffID differs is an error and nothing is registered.
    ///
    /// The same as [`stage`](LayerStore::stage) then
    /// [`StagedLayer::commit`](crate::StagedLayer::commit), except that a
    /// missing parent fails before the stream is read.
    pub fn register<R: Read>(
        &self,
        layer: R,
        parent: Option<&ChainId>,
        expected: Option<&DiffId>,
    ) -> Result<Layer, Error> {
        if let Some(p) = parent {
            self.get(p)?;
        }
        self.stage(layer, expected)?.commit(parent)
    }

    /// The layer `chain`, its files checked (digests parse, the chainID
    /// matches diff and parent, the parent exists).
    pub fn get(&self, chain: &ChainId) -> Result<Layer, Error> {
        self.db.read_layer(chain)
    }

    /// Every layer of the store, ordered by chainID.
    pub fn list(&self) -> Result<Vec<Layer>, Error> {
        self.db
            .layer_ids()?
            .iter()
            .map(|c| self.db.read_layer(c))
            .collect()
    }

    /// The layers of a chain, base first, ending with `chain` itself.
    pub fn chain(&self, chain: &ChainId) -> Result<Vec<Layer>, Error> {
        let mut out = Vec::new();
        let mut next = Some(*chain);
        while let Some(c) = next {
            let layer = self.get(&c)?;
            next = layer.parent;
            out.push(layer);
            if out.len() > 4096 {
                return Err(Error::Corrupt {
                    path: self.db.layer_dir(chain),
                    why: "parent chain does not end".into(),
                });
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The sum of the sizes of the chain's layers.
    pub fn chain_size(&self, chain: &ChainId) -> Result<u64, Error> {
        Ok(self.chain(chain)?.iter().map(|l| l.size).sum())
    }

    /// The number of references dunnage callers hold on a layer; `None` for a
    /// layer written by another owner (dockerd), which dunnage never removes.
    pub fn references(&self, chain: &ChainId) -> Result<Option<u64>, Error> {
        self.get(chain)?;
        self.db.refs(chain)
    }

    /// Take one more reference to a layer. [`Error::LayerNotFound`] when it
    /// is gone: a concurrent release may remove a layer between a look-up
    /// and this call.
    pub fn acquire(&self, chain: &ChainId) -> Result<(), Error> {
        let _lock = self.db.store_lock(LockKind::Shared)?;
        let _layer_lock = self.db.item_lock(&chain.hex())?;
        self.get(chain)?;
        if let Some(n) = self.db.refs(chain)? {
            self.db.set_refs(chain, n + 1)?;
        }
        Ok(())
    }

    /// Drop one reference. A layer left with no reference, no child layer, no
    /// container layer on it and not mounted by any process
    /// ([`mount_chain`](LayerStore::mount_chain)) is removed, and so are its
    /// parents that end up the same way. A layer still mounted is kept and
    /// removed by its last [`unmount_chain`](LayerStore::unmount_chain).
    pub fn release(&self, chain: &ChainId) -> Result<(), Error> {
        let _lock = self.db.store_lock(LockKind::Exclusive)?;
        self.get(chain)?;
        match self.db.refs(chain)? {
            None => return Ok(()),
            Some(0) => return Err(Error::NotReferenced(*chain)),
            Some(n) => self.db.set_refs(chain, n - 1)?,
        }
        self.collect(*chain)
    }

    /// Remove `chain` and then its parents while each is unreferenced and
    /// unused: no reference, nothing on it (from the index of children, see
    /// [`children`](crate::children)), not mounted. Reads only the files of
    /// the layers it looks at. Call with the store lock held exclusively.
    pub(crate) fn collect(&self, chain: ChainId) -> Result<(), Error> {
        if !self.db.children_index_built() {
            self.db.rebuild_children()?;
        }
        let mut next = Some(chain);
        while let Some(c) = next {
            if self.db.refs(&c)? != Some(0)
                || self.db.is_mounted(&c)?
                || self.has_chain_mount(&c)?
                || self.db.has_live_children(&c)?
            {
                return Ok(());
            }
            let layer = self.get(&c)?;
            if self.driver.is_busy(&layer.cache_id)? {
                // A `get` outside mount_chain: the layer stays marked
                // unreferenced, and a later release or open removes it.
                return Ok(());
            }
            // Its spares first: none is left naming a parent that is gone.
            self.drop_spares_on(Some(&c))?;
            let removing = self.db.begin_remove(&c)?;
            self.db.remove_refs(&c)?;
            if self.driver.has_dir(&layer.cache_id) {
                self.driver.remove(&layer.cache_id)?;
            }
            fs::remove_dir_all(&removing).map_err(io_err("remove", &removing))?;
            self.db
                .remove_locks(&crate::layerdb::Layerdb::layer_lock_names(&c))?;
            self.db.note_own_change();
            if let Some(p) = &layer.parent {
                self.db.remove_child(p, &Child::Layer(c))?;
            }
            next = layer.parent;
        }
        Ok(())
    }

    /// The layer's original tar, byte for byte, rebuilt from its tar-split and
    /// its diff directory. Reading fails (an `io::Error` wrapping
    /// [`Error::TarSplit`]; see [`Error::from_io`]) when a file does not match
    /// or the result does not hash to the diffID.
    pub fn tar_stream(&self, chain: &ChainId) -> Result<Box<dyn Read + Send>, Error> {
        let layer = self.get(chain)?;
        let path = self.db.layer_dir(chain).join(TAR_SPLIT);
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let json = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(BufReader::new(file)));
        let diff = self.driver.diff_dir(&layer.cache_id);
        let mut r = crate::tarsplit::reassemble(json, &diff, Some(layer.diff_id))?;
        r.set_layer_name(chain.to_string());
        Ok(Box::new(r))
    }

    /// Rebuild the layer's tar and check it against its diffID, discarding the bytes.
    pub fn verify(&self, chain: &ChainId) -> Result<(), Error> {
        let mut r = self.tar_stream(chain)?;
        io::copy(&mut r, &mut io::sink())
            .map(|_| ())
            .map_err(Error::from_io)
    }

    /// Mount the chain's contents (refcounted) and return the directory
    /// showing them. While mounted, the chain's layers are not removed, even
    /// when released by this or another process.
    pub fn mount_chain(&self, chain: &ChainId) -> Result<PathBuf, Error> {
        // Under the shared store lock: removal (exclusive) cannot run between
        // finding the layer and marking it mounted.
        let _lock = self.db.store_lock(LockKind::Shared)?;
        let layer = self.get(chain)?;
        let mut mounted = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
        if !mounted.contains_key(chain) {
            let lock = self.db.mount_lock(chain)?;
            mounted.insert(*chain, (0, lock));
        }
        match self.driver.get(&layer.cache_id) {
            Ok(path) => {
                if let Some((n, _)) = mounted.get_mut(chain) {
                    *n += 1;
                }
                Ok(path)
            }
            Err(e) => {
                if mounted.get(chain).is_some_and(|(n, _)| *n == 0) {
                    mounted.remove(chain);
                }
                Err(e.into())
            }
        }
    }

    /// Undo one [`mount_chain`](LayerStore::mount_chain). The last one removes
    /// the chain's layers that were released meanwhile. When unmounting
    /// fails, the chain stays mounted and counted (in this store and in the
    /// driver alike): a later call tries again.
    pub fn unmount_chain(&self, chain: &ChainId) -> Result<(), Error> {
        let layer = self.get(chain)?;
        // On error the driver keeps its count too: both still hold this mount.
        self.driver.put(&layer.cache_id)?;
        let last = {
            let mut mounted = self.mounted.lock().unwrap_or_else(|p| p.into_inner());
            match mounted.get_mut(chain) {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => mounted.remove(chain).is_some(),
                None => false,
            }
        };
        if last && self.db.refs(chain)? == Some(0) {
            let _lock = self.db.store_lock(LockKind::Exclusive)?;
            if self.db.exists(chain) {
                self.collect(*chain)?;
            }
        }
        Ok(())
    }
}
