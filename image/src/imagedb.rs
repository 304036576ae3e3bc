//! The imagedb: image configs stored under their ID, as Docker keeps them.
//!
//! ```text
//! <dir>/content/sha256/<id hex>              raw config bytes (0600)
//! <dir>/metadata/sha256/<id hex>/parent      sha256:<parent id>
//! <dir>/metadata/sha256/<id hex>/lastUpdated RFC 3339 time of the last tag
//! ```
//! Content is re-hashed on every read: a file that does not match its name
//! is an error, never an image.

use std::fs;
use std::path::{Path, PathBuf};

use crate::config::{ImageConfig, ImageId};
use crate::error::{Error, Result};
use crate::fsutil::{create_dirs, read_limited, read_optional, write_atomic};
use crate::reference::is_hex64;

/// Largest config the imagedb reads.
pub const MAX_CONFIG: u64 = 8 << 20;

/// An imagedb directory (`<data-root>/image/overlay2/imagedb`).
#[derive(Debug)]
pub struct ImageDb {
    dir: PathBuf,
}

impl ImageDb {
    /// Open (and create) the imagedb at `dir`.
    pub fn open(dir: &Path) -> Result<ImageDb> {
        create_dirs(&dir.join("content/sha256"), 0o700)?;
        create_dirs(&dir.join("metadata/sha256"), 0o700)?;
        Ok(ImageDb {
            dir: dir.to_path_buf(),
        })
    }

    fn content(&self, id: &ImageId) -> PathBuf {
        self.dir.join("content/sha256").join(id.hex())
    }

    fn metadata(&self, id: &ImageId) -> PathBuf {
        self.dir.join("metadata/sha256").join(id.hex())
    }

    /// Store a config under its ID (no-op when it is there already).
    pub fn put(&self, config: &ImageConfig) -> Result<()> {
        let path = self.content(config.id());
        if path.is_file() {
            return Ok(());
        }
        write_atomic(&path, config.raw(), 0o600)
    }

    /// Read and verify a config.
    pub fn get(&self, id: &ImageId) -> Result<ImageConfig> {
        let path = self.content(id);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSuchImage(id.to_string()));
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let raw = read_limited(file, MAX_CONFIG, &path.display().to_string())?;
        let config = ImageConfig::from_bytes(raw)?;
        if config.id() != id {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: id.to_string(),
                actual: config.id().to_string(),
            });
        }
        Ok(config)
    }

    /// Whether an image with this ID is stored.
    pub fn exists(&self, id: &ImageId) -> bool {
        self.content(id).is_file()
    }

    /// The IDs of all stored images (unverified; [`ImageDb::get`] verifies).
    pub fn list(&self) -> Result<Vec<ImageId>> {
        let dir = self.dir.join("content/sha256");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("readdir", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("readdir", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_hex64(&name) && file {
                ids.push(format!("sha256:{name}").parse()?);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Remove an image's config and metadata.
    pub fn delete(&self, id: &ImageId) -> Result<()> {
        let meta = self.metadata(id);
        match fs::remove_dir_all(&meta) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", meta, e));
            }
            _ => {}
        }
        let content = self.content(id);
        fs::remove_file(&content).map_err(|e| Error::io("remove", content, e))
    }

    fn set_meta(&self, id: &ImageId, key: &str, value: &str) -> Result<()> {
        let dir = self.metadata(id);
        create_dirs(&dir, 0o700)?;
        write_atomic(&dir.join(key), value.as_bytes(), 0o600)
    }

    fn meta(&self, id: &ImageId, key: &str) -> Result<Option<String>> {
        Ok(read_optional(&self.metadata(id).join(key))?.map(|s| s.trim().to_string()))
    }

    /// Record `parent` as the image's parent (images made by commit).
    pub fn set_parent(&self, id: &ImageId, parent: &ImageId) -> Result<()> {
        self.set_meta(id, "parent", &parent.to_string())
    }

    /// The image's parent, if it has one.
    pub fn parent(&self, id: &ImageId) -> Result<Option<ImageId>> {
        self.meta(id, "parent")?.map(|p| p.parse()).transpose()
    }

    /// Record when the image was last tagged.
    pub fn set_last_updated(&self, id: &ImageId, rfc3339: &str) -> Result<()> {
        self.set_meta(id, "lastUpdated", rfc3339)
    }

    /// Put `lastUpdated` back to `before` (removed when `None`).
    pub(crate) fn restore_last_updated(&self, id: &ImageId, before: Option<&str>) -> Result<()> {
        match before {
            Some(v) => self.set_last_updated(id, v),
            None => {
                let path = self.metadata(id).join("lastUpdated");
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(Error::io("remove", path, e))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// When the image was last tagged, RFC 3339.
    pub fn last_updated(&self, id: &ImageId) -> Result<Option<String>> {
        self.meta(id, "lastUpdated")
    }

    /// Images whose parent is `id`.
    pub fn children(&self, id: &ImageId) -> Result<Vec<ImageId>> {
        let mut out = Vec::new();
        for child in self.list()? {
            if self.parent(&child)?.as_ref() == Some(id) {
                out.push(child);
            }
        }
        Ok(out)
    }
}
