//! The files of the layerdb (`<root>/image/overlay2/layerdb`), as Docker
//! writes them: `sha256/<chainID hex>/{diff,parent,cache-id,size,tar-split.json.gz}`
//! committed from a write-set in `tmp/`, `mounts/<container id>/…`, and the
//! `-removing` protocol for deletion.
//!
//! dunnage keeps its own state beside Docker's files, in `dunnage/`:
//! `lock` and `locks/` (see [`crate::lock`]), `refs/<chainID hex>`, the
//! number of references dunnage callers hold on a layer (decimal, no newline),
//! `unreferenced/<chainID hex>`, an empty file for each layer whose count
//! is 0, and `children/` with `children.built`, the index of children (see
//! [`crate::children`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::digest::{ChainId, DiffId, child_chain_id};
use crate::error::{Error, io_err};
use crate::lock;

/// A read-only layer as recorded in the layerdb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The layer's identity with all its parents.
    pub chain_id: ChainId,
    /// The sha256 of the layer's own uncompressed tar.
    pub diff_id: DiffId,
    /// The chainID of the layer below, `None` for a base layer.
    pub parent: Option<ChainId>,
    /// The name of the layer's directory in the overlay2 driver.
    pub cache_id: String,
    /// The apparent size of the layer's own files (Docker's `size`).
    pub size: u64,
}

/// The layerdb directory.
#[derive(Debug)]
pub(crate) struct Layerdb {
    root: PathBuf,
}

pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), Error> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err("mkdir", path)(e)),
        _ => Ok(()),
    }
}

/// Write `data` to a new file `path` with `mode` and fsync it.
pub(crate) fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("create", path))?;
    f.write_all(data).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

/// fsync a directory ([`dunnage_base::fs::fsync_dir`]).
pub(crate) fn fsync_dir(path: &Path) -> Result<(), Error> {
    dunnage_base::fs::fsync_dir(path).map_err(io_err("fsync", path))
}

/// `n` random bytes as lowercase hex ([`dunnage_base::rand::random_hex`]).
pub(crate) fn random_hex(n: usize) -> Result<String, Error> {
    dunnage_base::rand::random_hex(n).map_err(io_err("getrandom", "getrandom(2)"))
}

/// Read a small metadata file, trimming surrounding whitespace.
pub(crate) fn read_text(path: &Path) -> Result<String, Error> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => Error::Corrupt {
            path: path.to_owned(),
            why: "not UTF-8".into(),
        },
        _ => io_err("read", path)(e),
    })?;
    Ok(text.trim().to_owned())
}

fn corrupt(path: &Path, why: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// A cache or mount id: non-empty, one path component, no surprises.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Layerdb {
    /// Open (creating when missing) the layerdb at `root`.
    pub(crate) fn open(root: PathBuf) -> Result<Layerdb, Error> {
        if let Some(parent) = root.parent() {
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
        }
        mkdir(&root, 0o700)?;
        for (sub, mode) in [
            ("sha256", 0o755),
            ("mounts", 0o755),
            ("tmp", 0o755),
            ("dunnage", 0o700),
        ] {
            mkdir(&root.join(sub), mode)?;
        }
        mkdir(&root.join("dunnage/refs"), 0o700)?;
        mkdir(&root.join("dunnage/unreferenced"), 0o700)?;
        mkdir(&root.join("dunnage/locks"), 0o700)?;
        mkdir(&root.join("dunnage/children"), 0o700)?;
        Ok(Layerdb { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn layer_dir(&self, chain: &ChainId) -> PathBuf {
        self.root.join("sha256").join(chain.hex())
    }

    pub(crate) fn exists(&self, chain: &ChainId) -> bool {
        self.layer_dir(chain).is_dir()
    }

    pub(crate) fn store_lock(&self, kind: lock::LockKind) -> Result<lock::FileLock, Error> {
        lock::lock(&self.root.join("dunnage/lock"), kind)
    }

    /// The exclusive lock of one layer or container (`name` is a hex id or
    /// `mount-<container id>`).
    pub(crate) fn item_lock(&self, name: &str) -> Result<lock::FileLock, Error> {
        lock::lock(
            &self.root.join("dunnage/locks").join(name),
            lock::LockKind::Exclusive,
        )
    }

    /// Hold `chain` as mounted by this process (a shared lock, see [`crate::lock`]).
    pub(crate) fn mount_lock(&self, chain: &ChainId) -> Result<lock::FileLock, Error> {
        lock::lock(&self.mount_lock_path(chain), lock::LockKind::Shared)
    }

    /// Whether any process (this one included) has `chain` mounted.
    pub(crate) fn is_mounted(&self, chain: &ChainId) -> Result<bool, Error> {
        lock::is_locked(&self.mount_lock_path(chain))
    }

    /// Unlink the lock files of a layer being removed, or of a container
    /// (`name` as for [`item_lock`](Layerdb::item_lock)). Call with the store
    /// lock held exclusively: every lock file is opened and locked under the
    /// store lock, so no process is waiting on these.
    pub(crate) fn remove_locks(&self, names: &[String]) -> Result<(), Error> {
        for name in names {
            remove_if_exists(&self.root.join("dunnage/locks").join(name))?;
        }
        Ok(())
    }

    /// The names of a layer's lock files, for [`remove_locks`](Layerdb::remove_locks).
    pub(crate) fn layer_lock_names(chain: &ChainId) -> [String; 2] {
        [chain.hex(), format!("mounted-{}", chain.hex())]
    }

    fn mount_lock_path(&self, chain: &ChainId) -> PathBuf {
        self.root
            .join("dunnage/locks")
            .join(format!("mounted-{}", chain.hex()))
    }

    /// Read and check one layer's files.
    pub(crate) fn read_layer(&self, chain: &ChainId) -> Result<Layer, Error> {
        let dir = self.layer_dir(chain);
        if !dir.is_dir() {
            return Err(Error::LayerNotFound(*chain));
        }
        let digest_file = |name: &str| -> Result<Option<ChainId>, Error> {
            let path = dir.join(name);
            if !path.exists() {
                return Ok(None);
            }
            let text = read_text(&path)?;
            text.parse()
                .map(Some)
                .map_err(|e: Error| corrupt(&path, e.to_string()))
        };
        let diff_id = DiffId(
            digest_file("diff")?
                .ok_or_else(|| corrupt(&dir.join("diff"), "missing"))?
                .0,
        );
        let parent = digest_file("parent")?;
        let cache_path = dir.join("cache-id");
        if !cache_path.exists() {
            return Err(corrupt(&cache_path, "missing"));
        }
        let cache_id = read_text(&cache_path)?;
        if !valid_id(&cache_id) {
            return Err(corrupt(
                &cache_path,
                format!("invalid cache id {cache_id:?}"),
            ));
        }
        let size_path = dir.join("size");
        let size = if size_path.exists() {
            let text = read_text(&size_path)?;
            text.parse()
                .map_err(|_| corrupt(&size_path, format!("invalid size {text:?}")))?
        } else {
            0 // Docker treats a missing size as unknown; 0 keeps the layer usable
        };
        if child_chain_id(parent.as_ref(), &diff_id) != *chain {
            return Err(corrupt(
                &dir,
                "chainID does not match its diff and parent files",
            ));
        }
        if let Some(p) = &parent
            && !self.exists(p)
        {
            return Err(corrupt(
                &dir.join("parent"),
                format!("parent layer {p} does not exist"),
            ));
        }
        Ok(Layer {
            chain_id: *chain,
            diff_id,
            parent,
            cache_id,
            size,
        })
    }

    /// The chainIDs of all committed layers (names that are not 64 hex are skipped).
    pub(crate) fn layer_ids(&self) -> Result<Vec<ChainId>, Error> {
        let dir = self.root.join("sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            if let Some(name) = entry.file_name().to_str()
                && let Ok(d) = crate::digest::Digest::from_hex(name)
            {
                out.push(ChainId(d));
            }
        }
        out.sort();
        Ok(out)
    }

    /// A fresh write-set in `tmp/`, locked by this process while it lives.
    pub(crate) fn write_set(&self) -> Result<WriteSet, Error> {
        let dir = self
            .root
            .join("tmp")
            .join(format!("write-set-{}", random_hex(8)?));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        let handle = File::open(&dir).map_err(io_err("open", &dir))?;
        lock::try_lock_exclusive(&handle, &dir)?;
        Ok(WriteSet {
            dir,
            _handle: handle,
            committed: false,
        })
    }

    /// Rename a layer's directory to `<hex>-<random>-removing` (the first
    /// step of Docker's deletion); returns the new path.
    pub(crate) fn begin_remove(&self, chain: &ChainId) -> Result<PathBuf, Error> {
        let from = self.layer_dir(chain);
        let to =
            self.root
                .join("sha256")
                .join(format!("{}-{}-removing", chain.hex(), random_hex(32)?));
        fs::rename(&from, &to).map_err(io_err("rename", &from))?;
        fsync_dir(&self.root.join("sha256"))?;
        Ok(to)
    }

    /// Leftovers of interrupted work: `*-removing` layer directories,
    /// write-sets no live process holds, staged container records and
    /// reference counts. Call with the store lock held exclusively.
    pub(crate) fn leftovers(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out = Vec::new();
        let sha = self.root.join("sha256");
        for entry in fs::read_dir(&sha).map_err(io_err("readdir", &sha))? {
            let entry = entry.map_err(io_err("readdir", &sha))?;
            if entry.file_name().to_string_lossy().ends_with("-removing") {
                out.push(entry.path());
            }
        }
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io_err("readdir", &tmp))? {
            let entry = entry.map_err(io_err("readdir", &tmp))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("mount-") || name.starts_with("count-") {
                // Container records and reference counts are staged under
                // the store lock, so with the lock held exclusively any stage
                // is abandoned.
                out.push(path);
                continue;
            }
            if !name.starts_with("write-set-") {
                continue;
            }
            let Ok(handle) = File::open(&path) else {
                continue;
            };
            if lock::try_lock_exclusive(&handle, &path)? {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The reference count dunnage keeps for a layer; `None` when the layer
    /// has no count file (a layer written by dockerd, owned by it).
    pub(crate) fn refs(&self, chain: &ChainId) -> Result<Option<u64>, Error> {
        let path = self.refs_path(chain);
        if !path.exists() {
            return Ok(None);
        }
        let text = read_text(&path)?;
        text.parse()
            .map(Some)
            .map_err(|_| corrupt(&path, format!("invalid reference count {text:?}")))
    }

    /// Write a layer's reference count. A count of 0 is also recorded in
    /// `dunnage/unreferenced/` (before the count, so that a crash leaves at
    /// worst an entry too many): `open` collects those layers that are still
    /// unreferenced and unused without reading every count.
    pub(crate) fn set_refs(&self, chain: &ChainId, n: u64) -> Result<(), Error> {
        let mark = self.unreferenced_path(chain);
        if n == 0 {
            File::create(&mark).map_err(io_err("create", &mark))?;
        }
        // Staged in tmp/ (always under the store lock), where the next open
        // finds what a crash left.
        let staged =
            self.root
                .join("tmp")
                .join(format!("count-{}-{}", chain.hex(), random_hex(8)?));
        write_new(&staged, n.to_string().as_bytes(), 0o600)?;
        let path = self.refs_path(chain);
        fs::rename(&staged, &path).map_err(|e| {
            let _ = fs::remove_file(&staged);
            io_err("rename", &path)(e)
        })?;
        if n > 0 {
            remove_if_exists(&mark)?;
        }
        Ok(())
    }

    pub(crate) fn remove_refs(&self, chain: &ChainId) -> Result<(), Error> {
        remove_if_exists(&self.refs_path(chain))?;
        remove_if_exists(&self.unreferenced_path(chain))
    }

    fn refs_path(&self, chain: &ChainId) -> PathBuf {
        self.root.join("dunnage/refs").join(chain.hex())
    }

    fn unreferenced_path(&self, chain: &ChainId) -> PathBuf {
        self.root.join("dunnage/unreferenced").join(chain.hex())
    }

    /// Reference files whose layer is gone (a crash between writing one and
    /// committing the layer, or in the middle of a removal), looked for only
    /// with `crashed` (when such a crash left leftovers behind: it stats
    /// every reference file's layer). Names that are not a chainID hex, such
    /// as the `<hex>.tmp-*` files an interrupted write of older versions
    /// left, are deleted on every call (that needs only the directory
    /// listing). Call with the store lock held exclusively.
    pub(crate) fn stale_refs(&self, crashed: bool) -> Result<Vec<ChainId>, Error> {
        let dir = self.root.join("dunnage/refs");
        let mut stale = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match crate::digest::Digest::from_hex(&name) {
                Ok(d) if crashed && !self.exists(&ChainId(d)) => stale.push(ChainId(d)),
                Ok(_) => {}
                Err(_) => remove_if_exists(&entry.path())?,
            }
        }
        Ok(stale)
    }

    /// The layers recorded with a count of 0 (kept because something sat on
    /// them or had them mounted, or cut off by a crash in the middle of
    /// removing a chain). Entries whose layer is gone or referenced again are
    /// dropped.
    pub(crate) fn unreferenced(&self) -> Result<Vec<ChainId>, Error> {
        let dir = self.root.join("dunnage/unreferenced");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            let entry = entry.map_err(io_err("readdir", &dir))?;
            let name = entry.file_name();
            let Ok(d) = crate::digest::Digest::from_hex(&name.to_string_lossy()) else {
                remove_if_exists(&entry.path())?;
                continue;
            };
            let chain = ChainId(d);
            if !self.exists(&chain) {
                remove_if_exists(&entry.path())?;
                continue;
            }
            match self.refs(&chain) {
                Ok(Some(0)) => out.push(chain),
                // A count that does not parse is reported by the calls that
                // use it, not by open.
                Err(_) => {}
                Ok(_) => remove_if_exists(&entry.path())?,
            }
        }
        Ok(out)
    }
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("unlink", path)(e)),
        _ => Ok(()),
    }
}

/// A layer directory being written in `tmp/`; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct WriteSet {
    dir: PathBuf,
    _handle: File,
    committed: bool,
}

impl WriteSet {
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Write one file (0644, fsynced).
    pub(crate) fn write(&self, name: &str, data: &[u8]) -> Result<(), Error> {
        write_new(&self.dir.join(name), data, 0o644)
    }

    /// Move the write-set into place at `dest` in one rename.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<(), Error> {
        fsync_dir(&self.dir)?;
        fs::rename(&self.dir, dest).map_err(io_err("rename", dest))?;
        self.committed = true;
        if let Some(parent) = dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for WriteSet {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
