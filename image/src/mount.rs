//! Mounting an image's root file system read-only (`docker image mount`
//! without a container), through the layer store: see
//! [`LayerStore::mount_chain_at`](dunnage_layerstore::LayerStore::mount_chain_at).

use std::path::Path;

use rustix::mount::{UnmountFlags, unmount};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::store::ImageStore;

impl ImageStore {
    /// Mount image `id`'s root file system read-only at `target`, an
    /// existing directory. The layers are stacked by the overlay driver
    /// (one `lowerdir+` per layer, short links: every layer of a deep image
    /// shows, whatever the data-root's path), and the mount is recorded in
    /// the layer store: it stays after this process exits, and neither
    /// [`remove`](ImageStore::remove) nor [`prune`](ImageStore::prune) can
    /// delete the image's layers until [`unmount`](ImageStore::unmount).
    pub fn mount(&self, id: &ImageId, target: &Path) -> Result<()> {
        let config = self.config(id)?;
        let top = config.chain_id().ok_or_else(|| Error::InvalidConfig {
            id: id.to_string(),
            reason: "an image without layers has no root file system".to_string(),
        })?;
        self.layers().mount_chain_at(&top, target)?;
        Ok(())
    }

    /// Unmount what [`ImageStore::mount`] mounted at `target` and release
    /// its hold on the layers. A target with no recorded image mount (one
    /// made by an older version) is simply unmounted.
    pub fn unmount(&self, target: &Path) -> Result<()> {
        if self.layers().unmount_chain_at(target)?.is_some() {
            return Ok(());
        }
        unmount(target, UnmountFlags::empty()).map_err(|e| Error::io("umount", target, e.into()))
    }
}
