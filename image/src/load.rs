//! `docker load`: docker-archive tars (Docker before 25 and from 25 on) and
//! OCI image layouts (a directory or a tar), read in place.
//!
//! The archive is first turned into a plan (configs read and verified,
//! layer members named with the digest they must have); then every layer
//! streams through [`LayerStore::register`](dunnage_layerstore::LayerStore::register)
//! once. When anything fails, the layers this load registered are released
//! and no config or tag is written: the store is left as it was.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::{ChainId, Digest, child_chain_id};
use sha2::{Digest as _, Sha256};

use crate::config::{ImageConfig, ImageId};
use crate::error::{Error, Result};
use crate::layout::{
    ArchiveManifest, CONTAINERD_NAME, DOCKER_MANIFEST_LIST, Descriptor, Index, Manifest, OCI_INDEX,
    REF_NAME,
};
use crate::progress::Counting;
use crate::reference::{Reference, is_hex64};
use crate::source::{Compression, Source, decompress};
use crate::store::ImageStore;

pub use crate::progress::Progress;

/// Options of [`ImageStore::load`].
///
/// Decompression is bounded twice: no layer expands beyond `max_layer`
/// bytes, and no compressed stream (a layer blob, or a whole compressed
/// archive) expands beyond `max_ratio` times its compressed size, with
/// `ratio_floor` bytes always allowed. Real layers compress 2-10x; a gzip
/// bomb expands about 1000x and a zstd one far more.
pub struct LoadOptions<'a> {
    /// Largest JSON document read (manifests, configs, indexes).
    pub max_json: u64,
    /// Largest uncompressed layer accepted, whatever its compression
    /// (default 64 GiB).
    pub max_layer: u64,
    /// Largest expansion of a compressed stream, as a multiple of its
    /// compressed size (default 100).
    pub max_ratio: u64,
    /// Expansion always allowed to a compressed stream, however small
    /// (default 64 MiB).
    pub ratio_floor: u64,
    /// Called as layer bytes are read.
    pub progress: Option<&'a mut dyn FnMut(&Progress)>,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        LoadOptions {
            max_json: 8 << 20,
            max_layer: 64 << 30,
            max_ratio: 100,
            ratio_floor: 64 << 20,
            progress: None,
        }
    }
}

impl LoadOptions<'_> {
    /// The most bytes a stream of `compressed` bytes may expand to.
    pub fn expansion_limit(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.max_ratio)
            .max(self.ratio_floor)
    }
}

/// An image a load stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Its ID.
    pub id: ImageId,
    /// The references set for it.
    pub tags: Vec<Reference>,
}

struct LayerPlan {
    member: String,
    digest: Option<Digest>,
}

struct ImagePlan {
    config: ImageConfig,
    layers: Vec<LayerPlan>,
    tags: Vec<Reference>,
}

impl ImageStore {
    /// Load every image of a docker-archive or OCI layout at `path` (a
    /// directory, a tar, or a gzip/zstd-compressed tar).
    ///
    /// Every layer of every image is registered first; only then are
    /// configs written and tags set. When a layer fails, the layers this
    /// load registered are released and nothing else was written.
    pub fn load(&self, path: &Path, opts: LoadOptions<'_>) -> Result<Vec<Loaded>> {
        let source = self.open_input(path, &opts)?;
        self.load_source(&source, opts)
    }

    /// [`load`](Self::load) from a stream (`docker load` reading stdin): a
    /// tar, or a gzip/zstd-compressed tar, spooled to an anonymous file in
    /// `<root>/tmp` first. `label` names the input in errors.
    pub fn load_reader(
        &self,
        mut input: impl Read,
        label: &Path,
        opts: LoadOptions<'_>,
    ) -> Result<Vec<Loaded>> {
        let spool = self.temp_file()?;
        let size = io::copy(&mut input, &mut &spool).map_err(|e| Error::io("read", label, e))?;
        let rewind = |f: &File| {
            (&*f)
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("seek", label, e))
        };
        rewind(&spool)?;
        let (kind, reader) = decompress(&spool)?;
        let source = if kind == Compression::None {
            drop(reader);
            rewind(&spool)?;
            Source::from_tar(spool, label)?
        } else {
            Source::from_tar(self.decompress_limited(reader, size, label, &opts)?, label)?
        };
        self.load_source(&source, opts)
    }

    fn load_source(&self, source: &Source, opts: LoadOptions<'_>) -> Result<Vec<Loaded>> {
        let plans = plan(source, opts.max_json)?;
        let mut opts = opts;
        let images = plans.len();
        let mut tops: Vec<Option<ChainId>> = Vec::with_capacity(images);
        for (i, p) in plans.iter().enumerate() {
            match self.register_layers(source, p, i, images, &mut opts) {
                Ok(top) => tops.push(top),
                Err(e) => {
                    for top in tops.iter().flatten() {
                        self.layers().release(top)?;
                    }
                    return Err(e);
                }
            }
        }
        let mut loaded = Vec::new();
        let mut tops = tops.into_iter();
        for (p, top) in plans.into_iter().zip(tops.by_ref()) {
            let stored = self.create(&p.config, top.as_ref(), None).and_then(|id| {
                p.tags.iter().try_for_each(|t| self.set_tag(t, &id))?;
                Ok(id)
            });
            match stored {
                Ok(id) => loaded.push(Loaded { id, tags: p.tags }),
                Err(e) => {
                    // `create` gave this image's reference back; give back
                    // those of the images not stored yet.
                    for top in tops.flatten() {
                        self.layers().release(&top)?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(loaded)
    }

    /// Open the input: a directory or an uncompressed tar in place, a
    /// compressed tar decompressed into an anonymous file first (at most
    /// [`LoadOptions::expansion_limit`] bytes).
    fn open_input(&self, path: &Path, opts: &LoadOptions<'_>) -> Result<Source> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        if meta.is_dir() {
            return Source::open(path);
        }
        let (kind, reader) = decompress(&file)?;
        if kind == Compression::None {
            return Source::open(path);
        }
        let tmp = self.decompress_limited(reader, meta.len(), path, opts)?;
        Source::from_tar(tmp, path)
    }

    /// Decompress a whole archive of `compressed` bytes into an anonymous
    /// file, at most [`LoadOptions::expansion_limit`] bytes.
    fn decompress_limited(
        &self,
        reader: impl Read,
        compressed: u64,
        path: &Path,
        opts: &LoadOptions<'_>,
    ) -> Result<File> {
        let limit = opts.expansion_limit(compressed);
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut limited = Limit {
            inner: reader,
            left: limit,
            exceeded: exceeded.clone(),
        };
        let tmp = self.temp_file()?;
        match io::copy(&mut limited, &mut &tmp).and_then(|_| (&tmp).seek(SeekFrom::Start(0))) {
            Ok(_) => Ok(tmp),
            Err(_) if exceeded.load(Ordering::Relaxed) => Err(Error::TooLarge {
                what: format!("{} decompressed", path.display()),
                limit,
            }),
            Err(e) => Err(Error::io("decompress", path, e)),
        }
    }

    /// Register an image's layers, base first; returns the top chainID
    /// holding one reference. On error every layer registered here is
    /// released.
    fn register_layers(
        &self,
        source: &Source,
        plan: &ImagePlan,
        image: usize,
        images: usize,
        opts: &mut LoadOptions<'_>,
    ) -> Result<Option<ChainId>> {
        let diff_ids = plan.config.diff_ids();
        let mut top: Option<ChainId> = None;
        for (i, layer) in plan.layers.iter().enumerate() {
            let result = self.register_one(
                source,
                layer,
                top.as_ref(),
                &diff_ids[i],
                opts,
                |bytes, total| Progress {
                    image,
                    images,
                    layer: i,
                    layers: plan.layers.len(),
                    bytes,
                    total,
                    done: false,
                },
            );
            let release_top =
                |top: Option<&ChainId>| top.map(|c| self.layers().release(c)).transpose();
            match result {
                Ok(chain) => {
                    release_top(top.as_ref())?;
                    top = Some(chain);
                }
                Err(e) => {
                    release_top(top.as_ref())?;
                    return Err(e);
                }
            }
        }
        Ok(top)
    }

    fn register_one(
        &self,
        source: &Source,
        layer: &LayerPlan,
        parent: Option<&ChainId>,
        diff_id: &dunnage_layerstore::DiffId,
        opts: &mut LoadOptions<'_>,
        progress: impl Fn(u64, u64) -> Progress,
    ) -> Result<ChainId> {
        let missing = || Error::MissingMember {
            archive: source.path().to_path_buf(),
            member: layer.member.clone(),
        };
        // A layer the store has already (by chainID) is not read again.
        let chain = child_chain_id(parent, diff_id);
        if self.layers().get(&chain).is_ok() {
            self.layers().acquire(&chain)?;
            return Ok(chain);
        }
        let (mut head, _) = source.open_member(&layer.member)?.ok_or_else(missing)?;
        let mut magic = [0u8; 4];
        let n =
            read_up_to(&mut head, &mut magic).map_err(|e| Error::io("read", &layer.member, e))?;
        let compressed = Compression::of(&magic[..n]) != Compression::None;
        // An uncompressed blob's digest is its diffID, which the layer store
        // verifies as it registers: hash the member bytes only when they
        // are compressed and named by digest.
        let hasher = match &layer.digest {
            Some(d) if !compressed && *d != diff_id.0 => {
                return Err(Error::DigestMismatch {
                    what: format!(
                        "{}:{} (uncompressed, so its diffID)",
                        source.path().display(),
                        layer.member
                    ),
                    expected: diff_id.to_string(),
                    actual: d.to_string(),
                });
            }
            Some(_) if compressed => Some(Sha256::new()),
            _ => None,
        };
        let (reader, total) = source.open_member(&layer.member)?.ok_or_else(missing)?;
        let compressed_limit = opts.max_layer.min(opts.expansion_limit(total));
        let counting = Counting {
            inner: reader,
            state: progress(0, total),
            report: opts.progress.as_deref_mut(),
        };
        let mut hashing = Hashing {
            inner: counting,
            hasher,
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut limit = opts.max_layer;
        let result = {
            let (kind, tar) = decompress(&mut hashing)?;
            if kind != Compression::None {
                limit = compressed_limit;
            }
            let limited = Limit {
                inner: tar,
                left: limit,
                exceeded: exceeded.clone(),
            };
            self.layers().register(limited, parent, Some(diff_id))
        };
        let what = format!("{}:{}", source.path().display(), layer.member);
        let registered = match result {
            Ok(l) => l.chain_id,
            Err(_) if exceeded.load(Ordering::Relaxed) => {
                return Err(Error::TooLarge { what, limit });
            }
            Err(e) => return Err(e.into()),
        };
        let drained =
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| Error::io("read", &what, e));
        let actual = hashing
            .hasher
            .map(|h| sha256_digest(h.finalize().into()))
            .transpose()?;
        let check = drained.and_then(|_| match (&layer.digest, actual) {
            (Some(expected), Some(actual)) if *expected != actual => Err(Error::DigestMismatch {
                what,
                expected: expected.to_string(),
                actual: actual.to_string(),
            }),
            _ => Ok(()),
        });
        if let Err(e) = check {
            self.layers().release(&registered)?;
            return Err(e);
        }
        Ok(registered)
    }
}

/// Read an archive's images: `manifest.json` when present, else `index.json`.
fn plan(source: &Source, max_json: u64) -> Result<Vec<ImagePlan>> {
    if let Some(raw) = source.read_member("manifest.json", max_json)? {
        let manifests: Vec<ArchiveManifest> =
            serde_json::from_slice(&raw).map_err(|e| Error::json("manifest.json", e))?;
        return manifests
            .into_iter()
            .map(|m| plan_docker(source, m, max_json))
            .collect();
    }
    if source.read_member("index.json", max_json)?.is_some() {
        let mut plans = Vec::new();
        let index = read_json::<Index>(source, "index.json", None, max_json)?;
        plan_index(source, &index, max_json, 0, &mut plans)?;
        if plans.is_empty() {
            return Err(Error::UnknownFormat {
                path: source.path().to_path_buf(),
                reason: format!(
                    "index.json lists no image for linux/{}",
                    host_architecture()
                ),
            });
        }
        return Ok(plans);
    }
    Err(Error::UnknownFormat {
        path: source.path().to_path_buf(),
        reason: "neither manifest.json nor index.json: not a docker archive or OCI layout"
            .to_string(),
    })
}

fn plan_docker(source: &Source, m: ArchiveManifest, max_json: u64) -> Result<ImagePlan> {
    let raw = read_bytes(source, &m.config, digest_in_name(&m.config), max_json)?;
    let config = ImageConfig::from_bytes(raw)?;
    check_layer_count(&config, m.layers.len())?;
    let layers = m
        .layers
        .into_iter()
        .map(|member| LayerPlan {
            digest: digest_in_name(&member),
            member,
        })
        .collect();
    let tags = m
        .repo_tags
        .unwrap_or_default()
        .iter()
        .map(|t| Reference::parse(t))
        .collect::<Result<_>>()?;
    Ok(ImagePlan {
        config,
        layers,
        tags,
    })
}

fn plan_index(
    source: &Source,
    index: &Index,
    max_json: u64,
    depth: u32,
    plans: &mut Vec<ImagePlan>,
) -> Result<()> {
    for d in &index.manifests {
        if let Some(p) = &d.platform
            && (p.os != "linux" || p.architecture != host_architecture())
        {
            continue;
        }
        if d.media_type == OCI_INDEX || d.media_type == DOCKER_MANIFEST_LIST {
            if depth >= 4 {
                return Err(Error::UnknownFormat {
                    path: source.path().to_path_buf(),
                    reason: "indexes nested too deep".into(),
                });
            }
            let nested = read_json::<Index>(source, &blob_path(&d.digest), Some(d), max_json)?;
            plan_index(source, &nested, max_json, depth + 1, plans)?;
            continue;
        }
        let manifest = read_json::<Manifest>(source, &blob_path(&d.digest), Some(d), max_json)?;
        let raw = read_bytes(
            source,
            &blob_path(&manifest.config.digest),
            Some(manifest.config.digest),
            max_json,
        )?;
        let config = ImageConfig::from_bytes(raw)?;
        check_layer_count(&config, manifest.layers.len())?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| LayerPlan {
                member: blob_path(&l.digest),
                digest: Some(l.digest),
            })
            .collect();
        let name = d
            .annotations
            .get(CONTAINERD_NAME)
            .or_else(|| d.annotations.get(REF_NAME));
        // A bare tag (`latest`) in ref.name names no repository: no tag is set.
        let tags = name
            .filter(|n| n.contains(['/', ':']) || n.contains('.'))
            .and_then(|n| Reference::parse(n).ok());
        plans.push(ImagePlan {
            config,
            layers,
            tags: tags.into_iter().collect(),
        });
    }
    Ok(())
}

fn check_layer_count(config: &ImageConfig, layers: usize) -> Result<()> {
    if config.diff_ids().len() != layers {
        return Err(Error::InvalidConfig {
            id: config.id().to_string(),
            reason: format!(
                "{} diff_ids but the manifest lists {layers} layers",
                config.diff_ids().len()
            ),
        });
    }
    Ok(())
}

fn read_bytes(
    source: &Source,
    member: &str,
    digest: Option<Digest>,
    max_json: u64,
) -> Result<Vec<u8>> {
    let missing = || Error::MissingMember {
        archive: source.path().to_path_buf(),
        member: member.to_string(),
    };
    let raw = source.read_member(member, max_json)?.ok_or_else(missing)?;
    if let Some(expected) = digest {
        let actual = Digest::sha256_of(&raw);
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: member.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(raw)
}

fn read_json<T: serde::de::DeserializeOwned>(
    source: &Source,
    member: &str,
    d: Option<&Descriptor>,
    max_json: u64,
) -> Result<T> {
    let raw = read_bytes(source, member, d.map(|d| d.digest), max_json)?;
    if let Some(d) = d
        && d.size != raw.len() as u64
    {
        {
            return Err(Error::DigestMismatch {
                what: format!("size of {member}"),
                expected: d.size.to_string(),
                actual: raw.len().to_string(),
            });
        }
    }
    serde_json::from_slice(&raw).map_err(|e| Error::json(member, e))
}

/// The digest of a finished sha256.
pub(crate) fn sha256_digest(sum: [u8; 32]) -> Result<Digest> {
    Ok(Digest::from_bytes(sum))
}

/// The blob member of a digest in an OCI layout.
fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// The digest a member's name promises: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(member: &str) -> Option<Digest> {
    let base = member.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    let by_name = member.ends_with(".json") || member.contains("blobs/sha256/");
    (by_name && is_hex64(hex))
        .then(|| format!("sha256:{hex}").parse().ok())
        .flatten()
}

/// The OCI name of this machine's architecture.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Hashes the raw member bytes (when it has a hasher).
struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Read until `buf` is full or the stream ends; the number of bytes read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Fails the stream once more than `left` bytes came through.
struct Limit<R> {
    inner: R,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(io::Error::other("layer exceeds the size limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_promise_digests() {
        let hex = "a".repeat(64);
        assert!(digest_in_name(&format!("{hex}.json")).is_some());
        assert!(digest_in_name(&format!("blobs/sha256/{hex}")).is_some());
        assert!(digest_in_name(&format!("{hex}/layer.tar")).is_none());
        assert!(digest_in_name("config.json").is_none());
    }
}
