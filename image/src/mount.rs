//! Mounting an image's root file system read-only (`docker image mount`
//! without a container): an overlay of the layers' diff directories, or a
//! read-only bind mount for a one-layer image.

use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags, mount, mount_bind, mount_remount, unmount};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::store::ImageStore;

impl ImageStore {
    /// Mount image `id`'s root file system read-only at `target`.
    pub fn mount(&self, id: &ImageId, target: &Path) -> Result<()> {
        let config = self.config(id)?;
        let top = config.chain_id().ok_or_else(|| Error::InvalidConfig {
            id: id.to_string(),
            reason: "an image without layers has no root file system".to_string(),
        })?;
        let layer = self.layers().get(&top)?;
        let driver = self.layers().driver();
        let mut dirs = vec![driver.diff_dir(&layer.cache_id)];
        dirs.extend(
            driver
                .lower_dirs(&layer.cache_id)
                .map_err(dunnage_layerstore::Error::from)?,
        );
        let sys = |call: &'static str, e: rustix::io::Errno| Error::io(call, target, e.into());
        if let [only] = dirs.as_slice() {
            mount_bind(only, target).map_err(|e| sys("mount(MS_BIND)", e))?;
            let ro = MountFlags::RDONLY | MountFlags::BIND;
            return mount_remount(target, ro, "").map_err(|e| {
                let _ = unmount(target, UnmountFlags::DETACH);
                sys("mount(MS_REMOUNT|MS_RDONLY)", e)
            });
        }
        let lower: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let data = std::ffi::CString::new(format!("lowerdir={}", lower.join(":")))
            .map_err(|e| Error::io("mount(overlay)", target, e.into()))?;
        mount(
            "overlay",
            target,
            "overlay",
            MountFlags::RDONLY,
            Some(data.as_c_str()),
        )
        .map_err(|e| sys("mount(overlay)", e))
    }

    /// Unmount what [`ImageStore::mount`] mounted at `target`.
    pub fn unmount(&self, target: &Path) -> Result<()> {
        unmount(target, UnmountFlags::empty()).map_err(|e| Error::io("umount", target, e.into()))
    }
}
