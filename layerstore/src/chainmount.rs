//! Read-only mounts of a layer chain at a directory the caller chooses
//! (what `dunnage mount IMAGE DIR` makes), owned by a record on disk rather
//! than by the process that mounted.
//!
//! # On-disk protocol: `layerdb/dunnage/chain-mounts/`
//! One file per mount, named `<chainID hex>-<key>`, where `<key>` is the
//! first 32 hex digits of the sha256 of the target's canonical path bytes,
//! holding those path bytes (mode 0600, written atomically).
//! - [`LayerStore::mount_chain_at`] writes the record under the shared
//!   store lock, then mounts; if mounting fails the record is removed.
//! - While a record names a chain, none of the chain's layers is removed:
//!   [`LayerStore::release`] and the clean-up of [`LayerStore::open`] keep
//!   them (as they keep a chain a process has mounted with
//!   [`mount_chain`](LayerStore::mount_chain)).
//! - [`LayerStore::unmount_chain_at`] unmounts, removes the record, and
//!   then removes the chain's layers that were released meanwhile.
//! - Entries that are not records (other names, temp files of the atomic
//!   write, anything but a regular file) are ignored.
//! - Nothing repairs records: a record whose target is no longer mounted
//!   (after a reboot, or an unmount by hand) keeps its layers until
//!   `unmount_chain_at` of its target removes it;
//!   [`chain_mounts`](LayerStore::chain_mounts) reports it as not mounted.

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::ChainId;
use crate::error::{Error, io_err};
use crate::lock::LockKind;
use crate::store::LayerStore;

const DIR: &str = "dunnage/chain-mounts";

/// A read-only mount of a chain made by [`LayerStore::mount_chain_at`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMount {
    /// The chain mounted (its top layer).
    pub chain: ChainId,
    /// Where (canonical path).
    pub target: PathBuf,
    /// Whether `target` is a mount point now (in this process's mount
    /// namespace); `false` for a record whose mount is gone.
    pub mounted: bool,
}

/// The record key of a canonical target path.
fn target_key(target: &Path) -> String {
    let digest = Sha256::digest(target.as_os_str().as_bytes());
    hex::encode(&digest[..16])
}

/// Whether `path` is a mount point in this process's mount namespace.
pub(crate) fn is_mount_point(path: &Path) -> Result<bool, Error> {
    let mounts =
        dunnage_base::mountinfo::read_self().map_err(io_err("read", "/proc/self/mountinfo"))?;
    Ok(mounts.iter().any(|m| m.mount_point == path))
}

impl LayerStore {
    fn chain_mount_dir(&self) -> PathBuf {
        self.db.root().join(DIR)
    }

    /// The records, as `(file name, chain, target)`.
    fn chain_mount_records(&self) -> Result<Vec<(String, ChainId, PathBuf)>, Error> {
        let dir = self.chain_mount_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("readdir", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            let name = entry.file_name();
            // Atomic-write temp names and anything else foreign are skipped.
            let Some((chain, key)) = name.to_str().and_then(|n| n.split_once('-')) else {
                continue;
            };
            let Ok(chain) = format!("sha256:{chain}").parse::<ChainId>() else {
                continue;
            };
            if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            // Only regular files are records (anything else was not
            // written by this protocol and must not break removals).
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let target = PathBuf::from(std::ffi::OsString::from_vec(
                fs::read(&path).map_err(io_err("read", &path))?,
            ));
            out.push((name.to_string_lossy().into_owned(), chain, target));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Whether a record names `chain` (its layers must stay).
    pub(crate) fn has_chain_mount(&self, chain: &ChainId) -> Result<bool, Error> {
        let prefix = format!("{}-", chain.hex());
        Ok(self
            .chain_mount_records()?
            .iter()
            .any(|(name, _, _)| name.starts_with(&prefix)))
    }

    /// Mount `chain` read-only at `target` (an existing directory) and record
    /// the mount on disk (see [the protocol](self)): the mount and the
    /// protection of the chain's layers outlive this process and this
    /// store, until [`unmount_chain_at`](LayerStore::unmount_chain_at).
    /// Goes through the overlay driver: one `lowerdir+` per layer, short
    /// links, so deep chains and data-roots with `:` or `,` in their path
    /// mount whole. Returns the canonical target.
    ///
    /// A target that already has such a mount is refused
    /// ([`Error::MountTargetBusy`]).
    pub fn mount_chain_at(&self, chain: &ChainId, target: &Path) -> Result<PathBuf, Error> {
        let target = fs::canonicalize(target).map_err(io_err("realpath", target))?;
        let key = target_key(&target);
        let _lock = self.db.store_lock(LockKind::Shared)?;
        let _target_lock = self.db.item_lock(&format!("target-{key}"))?;
        let layer = self.get(chain)?;
        if self
            .chain_mount_records()?
            .iter()
            .any(|(name, _, _)| name.ends_with(&key))
        {
            return Err(Error::MountTargetBusy(target));
        }
        let dir = self.chain_mount_dir();
        crate::layerdb::mkdir(&dir, 0o700)?;
        let record = dir.join(format!("{}-{key}", chain.hex()));
        dunnage_base::fs::write_atomic(&record, target.as_os_str().as_bytes(), 0o600)
            .map_err(io_err("write", &record))?;
        if let Err(e) = self.driver.mount_read_only(&layer.cache_id, &target) {
            let _ = fs::remove_file(&record);
            return Err(e.into());
        }
        Ok(target)
    }

    /// Undo [`mount_chain_at`](LayerStore::mount_chain_at) of `target`:
    /// detach the mount if it is still there, remove the record, and remove
    /// the chain's layers that were released while it was mounted. Returns
    /// the chain, or `None` when no record names `target` (nothing is done).
    pub fn unmount_chain_at(&self, target: &Path) -> Result<Option<ChainId>, Error> {
        let target = fs::canonicalize(target)
            .or_else(|_| std::path::absolute(target))
            .map_err(io_err("realpath", target))?;
        let key = target_key(&target);
        let Some((name, chain, _)) = self
            .chain_mount_records()?
            .into_iter()
            .find(|(name, _, t)| name.ends_with(&key) && *t == target)
        else {
            return Ok(None);
        };
        if is_mount_point(&target)? {
            dunnage_overlay::unmount(&target)?;
        }
        let record = self.chain_mount_dir().join(name);
        fs::remove_file(&record).map_err(io_err("unlink", &record))?;
        let _lock = self.db.store_lock(LockKind::Exclusive)?;
        self.db.remove_locks(&[format!("target-{key}")])?;
        if self.db.exists(&chain) {
            self.collect(chain)?;
        }
        Ok(Some(chain))
    }

    /// Every chain mounted by [`mount_chain_at`](LayerStore::mount_chain_at)
    /// and not unmounted yet, ordered by chain. Reads only.
    pub fn chain_mounts(&self) -> Result<Vec<ChainMount>, Error> {
        let mounts =
            dunnage_base::mountinfo::read_self().map_err(io_err("read", "/proc/self/mountinfo"))?;
        Ok(self
            .chain_mount_records()?
            .into_iter()
            .map(|(_, chain, target)| ChainMount {
                chain,
                mounted: mounts.iter().any(|m| m.mount_point == target),
                target,
            })
            .collect())
    }
}
