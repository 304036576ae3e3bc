//! `docker load`: docker-archive tars (Docker before 25 and from 25 on) and
//! OCI image layouts (a directory or a tar), read in place.
//!
//! The archive is first turned into a plan (configs read and verified,
//! layer members named with the digest they must have); then every layer
//! streams once, staged by a few threads at a time (a layer's contents do
//! not depend on its parent) and committed in chain order by the calling
//! thread. When a layer fails, the layers staged are removed, those this
//! load registered released, and no config or tag is written. When storing a config or setting a tag
//! fails afterwards, what the load stored is undone (images it created
//! deleted, tags pointed back, `lastUpdated` restored) as far as the file
//! system lets: the store is left as it was.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::{ChainId, Compression, Digest, StagedLayer, child_chain_id};
use sha2::{Digest as _, Sha256};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::plan::{ImagePlan, LayerPlan, plan};
use crate::progress::Counting;
use crate::reference::Reference;
use crate::source::{Source, decompress, read_up_to};
use crate::spool::{Limit, check_archive_head, spool};
use crate::store::{ImageStore, Locked};

pub use crate::progress::Progress;

/// Options of [`ImageStore::load`].
///
/// Decompression is bounded twice: no layer expands beyond `max_layer`
/// bytes, and no compressed stream (a layer blob, or a whole compressed
/// archive) expands beyond `max_ratio` times its compressed size, with
/// `ratio_floor` bytes always allowed. gzip cannot expand more than about
/// 1032 times, and a legitimate layer (a big file of zeros) gets close, so
/// the default ratio (1100) never refuses gzip: `max_layer` bounds it. The
/// ratio stops zstd streams, which expand many thousand times.
pub struct LoadOptions<'a> {
    /// Largest JSON document read (manifests, configs, indexes).
    pub max_json: u64,
    /// Largest stream spooled to the store's scratch space: an archive
    /// read from stdin or a pipe, or a compressed archive decompressed
    /// (default 256 GiB).
    pub max_spool: u64,
    /// Free space spooling leaves on the store's file system (default
    /// 1 GiB): a stream that would take more fails with
    /// [`Error::NoSpace`] instead of filling the disk.
    pub min_free: u64,
    /// Most image entries an archive may list: `manifest.json` entries, or
    /// index entries walked, nested indexes included (default 4096).
    pub max_images: usize,
    /// Most bytes of JSON read to plan a load, all documents together
    /// (default 256 MiB). A config or manifest named again is read once.
    pub max_plan_bytes: u64,
    /// Largest uncompressed layer accepted, whatever its compression
    /// (default 64 GiB).
    pub max_layer: u64,
    /// Largest expansion of a compressed stream, as a multiple of its
    /// compressed size (default 1100, above gzip's maximum of about 1032).
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
            max_spool: 256 << 30,
            min_free: 1 << 30,
            max_images: 4096,
            max_plan_bytes: 256 << 20,
            max_layer: 64 << 30,
            max_ratio: 1100,
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

impl ImageStore {
    /// Load every image of a docker-archive or OCI layout at `path` (a
    /// directory, a tar, or a gzip/zstd-compressed tar).
    ///
    /// Every layer of every image is registered first; only then are
    /// configs written and tags set. When a layer fails, the layers this
    /// load registered are released and nothing else was written; when a
    /// config or tag fails, the images this load created are deleted and
    /// the tags it moved pointed back (best effort: an undo step the file
    /// system refuses too is skipped).
    ///
    /// A `path` that is neither a directory nor a regular file (a FIFO,
    /// `/dev/stdin`, `<(...)`) is read once as a stream, as by
    /// [`load_reader`](Self::load_reader).
    pub fn load(&self, path: &Path, opts: LoadOptions<'_>) -> Result<Vec<Loaded>> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        if !meta.is_dir() && !meta.is_file() {
            return self.load_reader(file, path, opts);
        }
        let source = self.open_input(file, &meta, path, &opts)?;
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
        // A first look: input that is not an archive (`/dev/zero`) fails
        // here, before anything is spooled.
        let what = label.display().to_string();
        let mut head = [0u8; 512];
        let n = read_up_to(&mut input, &mut head).map_err(|e| Error::io("read", label, e))?;
        check_archive_head(&head[..n], &what)?;
        let file = self.temp_file()?;
        let mut whole = io::Cursor::new(&head[..n]).chain(input);
        let size = spool(&mut whole, &file, opts.max_spool, opts.min_free, &what)?;
        let rewind = |f: &File| {
            (&*f)
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("seek", label, e))
        };
        rewind(&file)?;
        let (kind, reader) = decompress(&file, &what)?;
        let source = if kind == Compression::None {
            drop(reader);
            rewind(&file)?;
            Source::from_tar(file, label)?
        } else {
            Source::from_tar(self.decompress_limited(reader, size, label, &opts)?, label)?
        };
        self.load_source(&source, opts)
    }

    fn load_source(&self, source: &Source, opts: LoadOptions<'_>) -> Result<Vec<Loaded>> {
        let plans = plan(source, &opts)?;
        // What an earlier load killed halfway left is given back first
        // (best effort: only when no other operation runs).
        let _ = self.reclaim_leaked_layers();
        let _operation = self.begin_operation()?;
        let mut opts = opts;
        let tops = self.register_all(source, &plans, &mut opts)?;
        // Configs and tags are written under the images lock, held until
        // every image is stored (or undone): another process never sees
        // half of a load, and never interleaves its own tag changes.
        let locked = match self.lock() {
            Ok(l) => l,
            Err(e) => {
                self.release_all(tops.iter().flatten());
                return Err(e);
            }
        };
        let mut loaded = Vec::new();
        let mut undo = Undo::default();
        let mut tops = tops.into_iter();
        for (p, top) in plans.into_iter().zip(tops.by_ref()) {
            match self.store_one(&locked, &p, top.as_ref(), &mut undo) {
                Ok(id) => loaded.push(Loaded { id, tags: p.tags }),
                Err(e) => {
                    // `create` handed this image's reference to the image, or
                    // gave it back when it failed or the image existed
                    // already; undoing deletes the images this load created
                    // (and their references). The images not reached yet
                    // still hold theirs.
                    self.undo(&locked, undo);
                    let rest: Vec<ChainId> = tops.flatten().collect();
                    self.release_all(&rest);
                    return Err(e);
                }
            }
        }
        Ok(loaded)
    }

    /// Store one planned image and set its tags, noting in `undo` what was
    /// there before.
    fn store_one(
        &self,
        locked: &Locked,
        p: &ImagePlan,
        top: Option<&ChainId>,
        undo: &mut Undo,
    ) -> Result<ImageId> {
        let existed = self.imagedb().exists(p.config.id());
        let updated = if existed {
            self.imagedb().last_updated(p.config.id())?
        } else {
            None
        };
        let id = self.create_locked(locked, &p.config, top, None)?;
        if existed {
            undo.updated.push((id.clone(), updated));
        } else {
            undo.created.push(id.clone());
        }
        if !p.tags.is_empty() {
            // All of the image's tags in one rewrite of repositories.json.
            let repos = self.repos()?;
            for t in &p.tags {
                undo.tags.push((t.clone(), repos.get(t).cloned()));
            }
            self.set_tags_locked(locked, &p.tags, &id)?;
        }
        Ok(id)
    }

    /// Put tags back where they pointed, restore `lastUpdated` of images
    /// that existed, and delete the images created: best effort, on the
    /// error path of a load.
    fn undo(&self, locked: &Locked, undo: Undo) {
        for (t, before) in undo.tags.into_iter().rev() {
            let _ = self.edit_repos(locked, |r| match before {
                Some(id) => r.add(&t, &id).map(drop),
                None => r.remove(&t).map(drop),
            });
        }
        for (id, before) in undo.updated {
            let _ = self.imagedb().restore_last_updated(&id, before.as_deref());
        }
        for id in undo.created.into_iter().rev() {
            let _ = self.delete(locked, &id);
        }
    }

    /// Give back one reference on each chain, on an error path: every
    /// release is tried, and their failures are dropped so that the error
    /// that made us clean up is the one reported.
    pub(crate) fn release_all<'c>(&self, chains: impl IntoIterator<Item = &'c ChainId>) {
        for chain in chains {
            let _ = self.layers().release(chain);
        }
    }

    /// Open the input (a directory or regular file): a directory or an uncompressed tar in place, a
    /// compressed tar decompressed into an anonymous file first (at most
    /// [`LoadOptions::expansion_limit`] bytes).
    fn open_input(
        &self,
        file: File,
        meta: &std::fs::Metadata,
        path: &Path,
        opts: &LoadOptions<'_>,
    ) -> Result<Source> {
        if meta.is_dir() {
            return Source::open(path);
        }
        let (kind, reader) = decompress(&file, &path.display().to_string())?;
        if kind == Compression::None {
            drop(reader);
            (&file)
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("seek", path, e))?;
            return Source::from_tar(file, path);
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
        let limit = opts.expansion_limit(compressed).min(opts.max_spool);
        let tmp = self.temp_file()?;
        let what = format!("{} decompressed", path.display());
        let mut reader = reader;
        spool(&mut reader, &tmp, limit, opts.min_free, &what)?;
        (&tmp)
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("seek", path, e))?;
        Ok(tmp)
    }

    pub(crate) fn register_one(
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
            match self.layers().acquire(&chain) {
                Ok(()) => return Ok(chain),
                // Released and removed by a concurrent rmi since the look-up:
                // register it again from the archive.
                Err(dunnage_layerstore::Error::LayerNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let what = format!("{}:{}", source.path().display(), layer.member);
        let (member, total) = source.open_member(&layer.member)?.ok_or_else(missing)?;
        self.register_stream(
            member,
            total,
            what,
            layer.digest.as_ref(),
            parent,
            diff_id,
            opts,
            progress(0, total),
        )
    }

    /// The one-pass register of a layer blob of `total` bytes read from
    /// `member` (compressed or not): decompressed within the limits of
    /// `opts`, hashed against `expected` (the blob's digest) when it is
    /// compressed, and registered on `parent` with `diff_id`. Used by load
    /// and by pull. On error nothing stays registered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register_stream(
        &self,
        member: impl Read,
        total: u64,
        what: String,
        expected: Option<&Digest>,
        parent: Option<&ChainId>,
        diff_id: &dunnage_layerstore::DiffId,
        opts: &mut LoadOptions<'_>,
        state: Progress,
    ) -> Result<ChainId> {
        let limits = Limits::of(opts);
        let staged = self.stage_stream(
            member,
            total,
            what,
            expected,
            diff_id,
            limits,
            state,
            opts.progress.as_deref_mut(),
        )?;
        Ok(staged.commit(parent)?.chain_id)
    }

    /// [`register_stream`](Self::register_stream) without the commit: the
    /// layer is staged ([`LayerStore::stage`](dunnage_layerstore::LayerStore::stage)),
    /// its blob digest checked, and left for the caller to commit on its
    /// parent. On error nothing is left behind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stage_stream(
        &self,
        mut member: impl Read,
        total: u64,
        what: String,
        expected: Option<&Digest>,
        diff_id: &dunnage_layerstore::DiffId,
        limits: Limits,
        state: Progress,
        report: Option<&mut (dyn FnMut(&Progress) + '_)>,
    ) -> Result<StagedLayer<'_>> {
        let mut magic = [0u8; 6];
        let n = read_up_to(&mut member, &mut magic).map_err(|e| Error::io("read", &what, e))?;
        let compressed = Compression::detect(&magic[..n]) != Compression::None;
        // An uncompressed blob's digest is its diffID, which the layer store
        // verifies as it registers: hash the member bytes only when they
        // are compressed and named by digest.
        let hasher = match expected {
            Some(d) if !compressed && *d != diff_id.0 => {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (uncompressed, so its diffID)"),
                    expected: diff_id.to_string(),
                    actual: d.to_string(),
                });
            }
            Some(_) if compressed => Some(Sha256::new()),
            _ => None,
        };
        let reader = io::Cursor::new(magic[..n].to_vec()).chain(member);
        let counting = Counting {
            inner: reader,
            state,
            report,
        };
        let mut hashing = Hashing {
            inner: counting,
            hasher,
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut limit = limits.max_layer;
        let result = {
            let (kind, tar) = decompress(&mut hashing, &what)?;
            if kind != Compression::None {
                limit = limits.compressed(total);
            }
            let limited = Limit {
                inner: tar,
                left: limit,
                exceeded: exceeded.clone(),
            };
            self.layers().stage(limited, Some(diff_id))
        };
        let staged = match result {
            Ok(l) => l,
            Err(_) if exceeded.load(Ordering::Relaxed) => {
                return Err(Error::TooLarge { what, limit });
            }
            Err(e) => return Err(e.into()),
        };
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| Error::io("read", &what, e))?;
        let actual = hashing
            .hasher
            .map(|h| Digest::from_bytes(h.finalize().into()));
        if let (Some(expected), Some(actual)) = (expected, actual)
            && *expected != actual
        {
            // Dropping the staged layer removes it.
            return Err(Error::DigestMismatch {
                what,
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(staged)
    }
}

/// The decompression bounds of [`LoadOptions`], without its callback (so
/// that staging threads can share them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    max_layer: u64,
    max_ratio: u64,
    ratio_floor: u64,
}

impl Limits {
    pub(crate) fn of(opts: &LoadOptions<'_>) -> Limits {
        Limits {
            max_layer: opts.max_layer,
            max_ratio: opts.max_ratio,
            ratio_floor: opts.ratio_floor,
        }
    }

    /// The most a compressed blob of `total` bytes may expand to.
    fn compressed(&self, total: u64) -> u64 {
        self.max_layer
            .min(total.saturating_mul(self.max_ratio).max(self.ratio_floor))
    }
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

/// What a load changed after its layers were registered, to put back when
/// a later image fails.
#[derive(Default)]
struct Undo {
    /// Images created by this load.
    created: Vec<ImageId>,
    /// Tags set, with the image each named before.
    tags: Vec<(Reference, Option<ImageId>)>,
    /// Images that existed, with their `lastUpdated` before.
    updated: Vec<(ImageId, Option<String>)>,
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
