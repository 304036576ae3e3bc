//! What uses an image: container layers on its layers, and read-only
//! mounts of it. [`ImageStore::remove`] and [`ImageStore::prune`] refuse to
//! delete such an image the way dockerd does.
//!
//! The layer store records a container layer's parent chain, not an image
//! ID: every image whose top chain is that chain counts as used (two
//! images with the same layers and different configs are used together).
//! A container whose read-write layer is mounted counts as running (a
//! conflict even `--force` does not override), otherwise as stopped; an
//! image mount ([`ImageStore::mount`]) counts like a running container.

use std::fmt;
use std::path::PathBuf;

use crate::config::ImageId;
use crate::error::Result;
use crate::store::ImageStore;

/// Something that uses an image.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageUser {
    /// A container layer (layerdb `mounts/<id>`) on the image's layers.
    Container {
        /// The container id.
        id: String,
        /// Whether its read-write layer is mounted.
        running: bool,
    },
    /// A read-only mount of the image made by [`ImageStore::mount`].
    Mount {
        /// Where it is mounted.
        target: PathBuf,
    },
}

impl ImageUser {
    /// Whether `--force` cannot override this use (a running container or
    /// a mount), as docker's "cannot be forced" conflicts.
    pub fn is_hard(&self) -> bool {
        match self {
            ImageUser::Container { running, .. } => *running,
            ImageUser::Mount { .. } => true,
        }
    }

    /// Docker's words for the user in "image is being used by ...":
    /// `running container 1a2b3c4d5e6f`, `stopped container ...`, or
    /// `mount at /mnt/x`.
    pub fn describe(&self) -> String {
        match self {
            ImageUser::Container { id, running } => {
                let state = if *running { "running" } else { "stopped" };
                format!("{state} container {}", short_container(id))
            }
            ImageUser::Mount { target } => format!("mount at {}", target.display()),
        }
    }

    /// Docker's words in "... is using its referenced image":
    /// `container 1a2b3c4d5e6f` or `mount at /mnt/x`.
    pub fn subject(&self) -> String {
        match self {
            ImageUser::Container { id, .. } => format!("container {}", short_container(id)),
            ImageUser::Mount { target } => format!("mount at {}", target.display()),
        }
    }
}

impl fmt::Display for ImageUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A docker container ID (64 hex digits) shortened to 12 as the docker CLI
/// prints it; any other name as it is.
fn short_container(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

/// The first 12 hex digits of an image ID (docker's `TruncateID`).
pub(crate) fn short_image(id: &ImageId) -> String {
    id.hex().chars().take(12).collect()
}

impl ImageStore {
    /// What uses image `id`: container layers whose parent chain is the
    /// image's top chain, then read-only mounts of that chain. Reads only
    /// (no lock, no repair). Empty for an image without layers.
    pub fn users(&self, id: &ImageId) -> Result<Vec<ImageUser>> {
        let Some(top) = self.config(id)?.chain_id() else {
            return Ok(Vec::new());
        };
        let layers = self.layers();
        let mut out = Vec::new();
        for rw in layers.list_rw()? {
            if rw.parent == Some(top) {
                let running = layers.rw_mount_point(&rw.container_id)?.is_some();
                out.push(ImageUser::Container {
                    id: rw.container_id,
                    running,
                });
            }
        }
        for m in layers.chain_mounts()? {
            if m.chain == top {
                out.push(ImageUser::Mount { target: m.target });
            }
        }
        Ok(out)
    }
}
