//! Export images as an OCI image layout directory that `skopeo` and
//! `umoci` read: uncompressed layer blobs (digest = diffID), the config
//! blob (digest = image ID), one manifest per image, and `index.json`
//! entries annotated with the tag and the full name.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use dunnage_base::fs::TempFile;
use dunnage_layerstore::Digest;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::{create_dirs, write_atomic};
use crate::layout::{
    CONTAINERD_NAME, Descriptor, Index, Manifest, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
    REF_NAME,
};
use crate::progress::{Counting, Progress, ProgressFn};
use crate::store::ImageStore;

impl ImageStore {
    /// Write the images `names` select into the OCI layout at `dir`
    /// (created if needed; a blob already there is kept when it hashes to
    /// its name and is replaced otherwise, `index.json` is replaced).
    ///
    /// Every file is written under a random temporary name created
    /// exclusively without following symlinks, then renamed into place:
    /// symlinks planted in `dir` by someone else redirect no write.
    pub fn export_oci(&self, names: &[&str], dir: &Path) -> Result<()> {
        self.export_oci_with_progress(names, dir, None)
    }

    /// [`export_oci`](Self::export_oci), reporting each layer blob written
    /// to `progress`.
    pub fn export_oci_with_progress(
        &self,
        names: &[&str],
        dir: &Path,
        mut progress: Option<ProgressFn<'_>>,
    ) -> Result<()> {
        let blobs = BlobDir::open(dir)?;
        write_atomic(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        )?;
        let mut entries = Vec::new();
        let selected = self.select(names)?;
        let images = selected.len();
        for (image, (id, tags)) in selected.into_iter().enumerate() {
            let config = self.config(&id)?;
            let mut layers = Vec::new();
            if let Some(top) = config.chain_id() {
                let chain = self.layers().chain(&top)?;
                let count = chain.len();
                for (index, layer) in chain.into_iter().enumerate() {
                    let digest = layer.diff_id.0;
                    let size = match blobs.verified(&digest)? {
                        Some(n) => n,
                        None => blobs.write(
                            &mut Counting {
                                inner: self.layers().tar_stream(&layer.chain_id)?,
                                state: Progress {
                                    image,
                                    images,
                                    layer: index,
                                    layers: count,
                                    total: layer.size,
                                    ..Progress::default()
                                },
                                report: progress.as_deref_mut(),
                            },
                            &digest,
                        )?,
                    };
                    layers.push(Descriptor {
                        media_type: OCI_LAYER.into(),
                        digest,
                        size,
                        annotations: BTreeMap::new(),
                        platform: None,
                    });
                }
            }
            blobs.put(config.raw())?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: OCI_CONFIG.into(),
                    digest: id.0,
                    size: config.raw().len() as u64,
                    annotations: BTreeMap::new(),
                    platform: None,
                },
                layers,
            };
            let raw = serde_json::to_vec(&manifest).map_err(|e| Error::json("manifest", e))?;
            let digest = blobs.put(&raw)?;
            let entry = |annotations| Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest,
                size: raw.len() as u64,
                annotations,
                platform: None,
            };
            if tags.is_empty() {
                entries.push(entry(BTreeMap::new()));
            }
            for t in tags {
                let mut a = BTreeMap::new();
                a.insert(CONTAINERD_NAME.to_string(), t.to_string());
                a.insert(
                    REF_NAME.to_string(),
                    t.tag().unwrap_or("latest").to_string(),
                );
                entries.push(entry(a));
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: entries,
        };
        let raw = serde_json::to_vec(&index).map_err(|e| Error::json("index.json", e))?;
        write_atomic(&dir.join("index.json"), &raw, 0o644)
    }
}

/// The `blobs/sha256` directory of a layout, opened without following
/// symlinks: every blob is created and renamed inside this directory
/// handle, so a symlink planted in place of `blobs` or `blobs/sha256`
/// redirects nothing.
struct BlobDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl BlobDir {
    fn open(layout: &Path) -> Result<BlobDir> {
        let path = layout.join("blobs/sha256");
        create_dirs(layout, 0o755)?;
        let mut dir = rustix::fs::open(
            layout,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", layout, e.into()))?;
        for (name, at) in [("blobs", layout.join("blobs")), ("sha256", path.clone())] {
            match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(Error::io("mkdir", at, e.into())),
            }
            dir = rustix::fs::openat2(
                &dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
            )
            .map_err(|e| Error::io("open", at, e.into()))?;
        }
        Ok(BlobDir { fd: dir, path })
    }

    /// The directory as a path that names the open handle (for
    /// [`TempFile::new_in`], which opens it again).
    fn handle_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    fn new_temp(&self) -> Result<TempFile> {
        TempFile::new_in(&self.handle_path(), "blob", 0o644)
            .map_err(|e| Error::io("create", &self.path, e))
    }

    /// Whether the blob `digest` is here as a regular file with that
    /// digest (re-hashed); its size when it is. A planted symlink, FIFO or
    /// wrong content is `None`, and will be replaced.
    fn verified(&self, digest: &Digest) -> Result<Option<u64>> {
        let fd = match rustix::fs::openat(
            &self.fd,
            digest.hex(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(None),
            Err(e) => return Err(Error::io("open", self.path.join(digest.hex()), e.into())),
        };
        let mut file = File::from(fd);
        let path = || self.path.join(digest.hex());
        let meta = file.metadata().map_err(|e| Error::io("stat", path(), e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let (sum, n) =
            hash_copy(&mut file, &mut io::sink()).map_err(|e| Error::io("read", path(), e))?;
        Ok((Digest::from_bytes(sum) == *digest).then_some(n))
    }

    /// Stream `r` into the blob `expected` through a temporary file,
    /// checking its digest before it gets its name.
    fn write(&self, r: &mut dyn Read, expected: &Digest) -> Result<u64> {
        let mut tmp = self.new_temp()?;
        let (sum, n) = hash_copy(r, &mut tmp).map_err(|e| Error::io("write", tmp.path(), e))?;
        let actual = Digest::from_bytes(sum);
        if actual != *expected {
            return Err(Error::DigestMismatch {
                what: self.path.join(expected.hex()).display().to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        tmp.persist(expected.hex())
            .map_err(|e| Error::io("rename", self.path.join(expected.hex()), e))?;
        Ok(n)
    }

    /// Write a small blob (config, manifest) whole, unless it is there
    /// already with the right content.
    fn put(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(data);
        if self.verified(&digest)?.is_none() {
            self.write(&mut &data[..], &digest)?;
        }
        Ok(digest)
    }
}

/// Copy `r` to `w`, hashing; the digest and the byte count.
fn hash_copy(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}
