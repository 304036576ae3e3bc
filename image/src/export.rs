//! Export images as an OCI image layout directory that `skopeo` and
//! `umoci` read: uncompressed layer blobs (digest = diffID), the config
//! blob (digest = image ID), one manifest per image, and `index.json`
//! entries annotated with the tag and the full name.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

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
    /// (created if needed; blobs already there are kept, `index.json` is
    /// replaced).
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
        let blobs = dir.join("blobs/sha256");
        create_dirs(&blobs, 0o755)?;
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
                    let path = blobs.join(digest.hex());
                    let size = match fs::metadata(&path) {
                        Ok(m) => m.len(),
                        Err(_) => write_blob(
                            &path,
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
            write_atomic(&blobs.join(id.hex()), config.raw(), 0o644)?;
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
            let digest = dunnage_layerstore::Digest::sha256_of(&raw);
            write_atomic(&blobs.join(digest.hex()), &raw, 0o644)?;
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

/// Stream `r` into `path` through a temporary name, checking its digest.
fn write_blob(path: &Path, r: &mut dyn Read, expected: &dunnage_layerstore::Digest) -> Result<u64> {
    let tmp = path.with_extension("tmp");
    let mut copy = || -> io::Result<([u8; 32], u64)> {
        let mut f = File::create(&tmp)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            f.write_all(&buf[..k])?;
            n += k as u64;
        }
        f.sync_all()?;
        Ok((h.finalize().into(), n))
    };
    let result = copy()
        .map_err(|e| Error::io("write", &tmp, e))
        .and_then(|(sum, n)| {
            let actual = dunnage_layerstore::Digest::from_bytes(sum);
            if actual != *expected {
                return Err(Error::DigestMismatch {
                    what: path.display().to_string(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
            Ok(n)
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
