//! Docker's overlay2 driver directory (`<data-root>/overlay2`).
//!
//! ```text
//! <home>/l/<26-char link> -> ../<id>/diff
//! <home>/<id>/diff/        the layer's files (0755)
//! <home>/<id>/link         its short link name, no newline
//! <home>/<id>/lower        l/<link>:l/<link>... of its parents, nearest first
//! <home>/<id>/work/        overlay's work directory (0700; only with a parent)
//! <home>/<id>/merged/      where get() mounts it (0700)
//! <home>/<id>/committed    empty (0600): the layer is read-only
//! ```
//! Modes: home 0710, `l/` 0700, `<id>/` 0710.
//!
//! Mounts made by [`Driver::get`] are reference-counted across processes
//! without adding files to this layout: while a [`Driver`] holds `get`s of
//! a layer it keeps a shared `flock` on the directory `<home>/<id>`, and
//! `get`, `put`, `remove` and the stale-mount cleanup of [`Driver::open`]
//! serialise on an exclusive `flock` of `<home>/<id>/diff`. The last `put`
//! in any process (no shared lock left) unmounts; a process that dies drops
//! its locks with its fds, so its mounts count as stale. `get` marks the
//! layer with an empty file `<home>/<id>/mount-get` (removed by the last
//! `put`), and `open` detaches only stale mounts that carry it: a `merged`
//! mount without it was made by someone else (a dockerd sharing the
//! data-root) and is left alone. Docker ignores the file.
//!
//! A child forked by a process that holds a `get` shares that lock until it
//! execs or exits: a last `put` made in that window sees a holder and keeps
//! the mount, which the next [`Driver::open`] then detaches as stale.
//!
//! A mount that must outlive the process that made it (a container's root
//! file system) is made by [`Driver::get_owned`] instead: it is owned by a
//! file, `<home>/<id>/mount-owner`, until [`Driver::put_owned`]; see
//! [`owned`](crate::owned) for that protocol and its repair rules.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result, errno, io_err};
use crate::mount::{Mount, mounts_below, unmount};

/// Length of a short link name.
const LINK_LEN: usize = 26;
/// The directory of short links.
pub(crate) const LINK_DIR: &str = "l";

/// An overlay2 driver home. `Send + Sync`; mounts are reference-counted
/// within the process and, through `flock`s, across processes (see the
/// [module documentation](self)).
#[derive(Debug)]
pub struct Driver {
    home: PathBuf,
    pub(crate) refs: Mutex<HashMap<String, Held>>,
}

/// This driver's `get`s of one layer.
#[derive(Debug)]
pub(crate) struct Held {
    count: usize,
    /// `<home>/<id>` with a shared `flock` held: tells other processes the
    /// layer is in use.
    _holder: OwnedFd,
}

impl Driver {
    /// Open (creating if needed) the driver home `home`: checks the backing
    /// filesystem (removing probe directories left by processes killed while
    /// probing), creates `l/`, restores missing short links and detaches
    /// stale mounts left under `<home>/*/merged` by processes that are gone
    /// (mounts that a live driver holds, mounts owned by a `mount-owner`
    /// record, and mounts no dunnage `get` made, are left alone).
    pub fn open(home: &Path) -> Result<Driver> {
        mkdir_mode(home, 0o710, true)?;
        crate::probe::check_backing_fs(home)?;
        crate::probe::remove_stale_probes(home)?;
        mkdir_mode(&home.join(LINK_DIR), 0o700, false)?;
        // Layers are made and removed at a container's rate: spread them
        // over the file system's allocation groups (a hint; ignored where
        // unsupported or not permitted).
        let _ = dunnage_base::fs::spread_subdirs(home);
        let driver = Driver {
            home: home.to_path_buf(),
            refs: Mutex::new(HashMap::new()),
        };
        for m in mounts_below(home)? {
            if let Some(layer) = m.parent().filter(|_| m.ends_with("merged")) {
                let _mutex = lock_layer(layer)?;
                // Only a mount a dunnage `get` made (its marker file is
                // there) can be stale; any other mount belongs to someone
                // else, such as a dockerd sharing this data-root.
                if is_get_mount(layer) && !has_holders(layer)? && !crate::owned::is_owned(layer) {
                    if unmount(&m).is_ok() {
                        clear_volatile(layer);
                    }
                    let _ = std::fs::remove_file(layer.join(GET_MARKER));
                }
            }
        }
        // One listing of `l/` instead of an lstat per layer.
        let links = driver.link_names()?;
        for id in driver.list()? {
            driver.repair_link(&id, &links)?;
        }
        Ok(driver)
    }

    /// Open the driver home `home` for queries: nothing is created,
    /// repaired or unmounted (no probe, no short-link repair, no stale-mount
    /// cleanup). Calls that write (`create`, `get`, `remove`, ...) still
    /// work, but on a home that [`Driver::open`] has not checked.
    pub fn open_read_only(home: &Path) -> Driver {
        Driver {
            home: home.to_path_buf(),
            refs: Mutex::new(HashMap::new()),
        }
    }

    /// The driver home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Create the layer `id` on top of `parent` (none for a base layer).
    /// Its files are written durably (fsynced, with their directory).
    pub fn create(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.create_layer(id, parent, false)
    }

    /// Create the layer `id` like [`create`](Driver::create), but never
    /// synced: for a container's layers, which a crash makes stale anyway.
    /// Its files are not fsynced (Docker's overlay2 driver does not fsync
    /// them either), and it is marked (an empty `volatile` file) to be
    /// mounted with overlay's `volatile` option, so that neither writes
    /// nor the unmount sync the upper file system (an unmount otherwise
    /// syncs the whole file system the store is on). A process killed
    /// midway leaves what [`create`](Driver::create) would. After a crash
    /// of the machine, the layer's `link` or `lower` file may be empty or
    /// missing (a layer the store's check reports broken), and the kernel
    /// refuses to mount it again (its `work/work/incompat/volatile`
    /// directory says its contents may be incomplete); a clean unmount
    /// removes that directory, so the layer can be mounted again.
    pub fn create_ephemeral(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.create_layer(id, parent, true)
    }

    fn create_layer(&self, id: &str, parent: Option<&str>, ephemeral: bool) -> Result<()> {
        if ephemeral {
            return self.create_ephemeral_layer(id, parent, true);
        }
        let dir = self.layer_dir(id)?;
        let lower = parent.map(|p| self.lower_of_child(p)).transpose()?;
        match std::fs::DirBuilder::new().mode(0o710).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::LayerExists(id.into()));
            }
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        }
        let made = (|| {
            set_mode(&dir, 0o710)?;
            mkdir_mode(&dir.join("diff"), 0o755, false)?;
            let link = new_link()?;
            // The `link` file first: a process killed in between leaves a
            // layer whose link `open` restores or `remove` tries to unlink,
            // never a short link no layer names (which nothing removes).
            write_file(&dir.join("link"), link.as_bytes(), 0o644)?;
            std::os::unix::fs::symlink(
                format!("../{id}/diff"),
                self.home.join(LINK_DIR).join(&link),
            )
            .map_err(io_err("symlink", &self.home.join(LINK_DIR).join(&link)))?;
            if let Some(lower) = &lower {
                write_lower(&dir, lower)?;
            }
            Ok(())
        })();
        if made.is_err() {
            let _ = self.remove(id);
        }
        made
    }

    /// Create the layer `id` like [`create_ephemeral`](Driver::create_ephemeral)
    /// (never synced), for a layer that only ever sits below another one
    /// (a container's init layer): committed from the start (as after
    /// [`mark_committed_ephemeral`](Driver::mark_committed_ephemeral)), so
    /// without the `volatile` marker, which only an upper layer uses. Its
    /// diff directory is filled directly, before the layer above it is
    /// mounted.
    pub fn create_ephemeral_lower(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.create_ephemeral_layer(id, parent, false)
    }

    /// [`create_ephemeral`](Driver::create_ephemeral): the same files as
    /// [`create`](Driver::create) plus the `volatile` marker, each made
    /// once relative to the new directory's handle (no fsync, no
    /// re-checks of what was just made). `link` is still replaced
    /// atomically: [`Driver::open`] refuses a layer with an empty one.
    fn create_ephemeral_layer(&self, id: &str, parent: Option<&str>, upper: bool) -> Result<()> {
        let dir = self.layer_dir(id)?;
        let lower = parent.map(|p| self.lower_of_child(p)).transpose()?;
        let home = open_dir(&self.home)?;
        let made = match dunnage_base::fs::mkdir_at(&home, OsStr::new(id), 0o710) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::LayerExists(id.into()));
            }
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        };
        let filled = (|| {
            let at = |name: &str| dir.join(name);
            drop(
                dunnage_base::fs::mkdir_at(&made, OsStr::new("diff"), 0o755)
                    .map_err(io_err("mkdir", &at("diff")))?,
            );
            let link = new_link()?;
            // `link` first, as in `create`.
            dunnage_base::fs::write_replace_at(&made, OsStr::new("link"), link.as_bytes(), 0o644)
                .map_err(io_err("write", &at("link")))?;
            let l = self.home.join(LINK_DIR).join(&link);
            rustix::fs::symlinkat(format!("../{id}/diff"), &home, format!("{LINK_DIR}/{link}"))
                .map_err(errno("symlink", &l))?;
            // An upper layer is mounted `volatile`; a lower one is
            // committed from the start (never mounted writable).
            let marker = if upper { VOLATILE_MARKER } else { "committed" };
            dunnage_base::fs::create_new_at(&made, OsStr::new(marker), b"", 0o600)
                .map_err(io_err("write", &at(marker)))?;
            if let Some(lower) = &lower {
                drop(
                    dunnage_base::fs::mkdir_at(&made, OsStr::new("work"), 0o700)
                        .map_err(io_err("mkdir", &at("work")))?,
                );
                // Not atomic: a process killed before the write leaves a
                // short `lower` in a layer that its creator's caller
                // removes (an unfinished container layer).
                dunnage_base::fs::create_new_at(
                    &made,
                    OsStr::new("lower"),
                    lower.as_bytes(),
                    0o644,
                )
                .map_err(io_err("write", &at("lower")))?;
            }
            Ok(())
        })();
        if filled.is_err() {
            let _ = self.remove(id);
        }
        filled
    }

    /// Put the layer `id`, created as a base layer (`create(id, None)`) and
    /// possibly filled since, on top of `parent`: its `work/` directory and
    /// `lower` file are written, as `create(id, Some(parent))` would have.
    /// A layer's diff directory does not depend on its parent, so a layer
    /// can be extracted before its parent exists and placed on it later.
    /// Fails with [`Error::LayerExists`] when `id` already has a parent.
    pub fn set_parent(&self, id: &str, parent: &str) -> Result<()> {
        let dir = self.layer_dir(id)?;
        if !self.exists(id) {
            return Err(Error::NoSuchLayer(id.into()));
        }
        if dir.join("lower").exists() {
            return Err(Error::LayerExists(id.into()));
        }
        let lower = self.lower_of_child(parent)?;
        write_lower(&dir, &lower)
    }

    /// The `lower` file content of a child of `parent`: the parent's short
    /// link, then the parent's own lowers.
    fn lower_of_child(&self, parent: &str) -> Result<String> {
        let link = self.link(parent)?;
        let mut lower = format!("{LINK_DIR}/{link}");
        let path = self.layer_dir(parent)?.join("lower");
        match std::fs::read_to_string(&path) {
            Ok(pl) => {
                lower.push(':');
                lower.push_str(pl.trim());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        Ok(lower)
    }

    /// `<home>/<id>/diff`.
    pub fn diff_dir(&self, id: &str) -> PathBuf {
        self.home.join(id).join("diff")
    }

    /// The entries of the layer's `lower` file (`l/<link>`, nearest
    /// first), each checked to be a short link name; empty for a base layer.
    pub(crate) fn lower_entries(&self, id: &str) -> Result<Vec<String>> {
        let dir = self.layer_dir(id)?;
        let lower = match std::fs::read_to_string(dir.join("lower")) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if dir.is_dir() {
                    Ok(Vec::new())
                } else {
                    Err(Error::NoSuchLayer(id.into()))
                };
            }
            Err(e) => return Err(io_err("read", &dir.join("lower"))(e)),
        };
        lower
            .trim()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(|entry| match entry.split_once('/') {
                Some((LINK_DIR, link)) if valid_link(link) => Ok(entry.to_string()),
                _ => Err(Error::CorruptLayer {
                    id: id.into(),
                    file: "lower",
                    reason: format!("{entry:?} is not l/<26-character link>"),
                }),
            })
            .collect()
    }

    /// The parents' short links (`<home>/l/<link>`, absolute), nearest
    /// first, as Docker passes them to the kernel; empty for a base layer.
    pub fn lower_links(&self, id: &str) -> Result<Vec<PathBuf>> {
        Ok(self
            .lower_entries(id)?
            .iter()
            .map(|e| self.home.join(e))
            .collect())
    }

    /// The parents' diff directories (absolute), nearest first; empty for a
    /// base layer.
    pub fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>> {
        self.resolve_lowers(id, &self.lower_entries(id)?)
    }

    /// The diff directories the `lower` entries of layer `id` point to.
    pub(crate) fn resolve_lowers(&self, id: &str, entries: &[String]) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in entries {
            let link = self.home.join(entry);
            let target = std::fs::read_link(&link).map_err(io_err("readlink", &link))?;
            let resolved = link.parent().unwrap_or(&self.home).join(target);
            let layer =
                resolved
                    .parent()
                    .and_then(Path::file_name)
                    .ok_or_else(|| Error::CorruptLayer {
                        id: id.into(),
                        file: "lower",
                        reason: format!("{entry} points nowhere"),
                    })?;
            out.push(self.home.join(layer).join("diff"));
        }
        Ok(out)
    }

    /// The mount `get` would make for `id`, or `None` for a base layer
    /// (its diff directory is used as is). A committed layer is mounted
    /// read-only without an upper layer.
    ///
    /// As Docker does, the kernel is given the lowers as `<home>/l/<link>`
    /// short links ([`Mount::mount_lowers`]), which mount(2) can pass
    /// relative to the home when the options exceed a page (up to about
    /// 128 lowers); the description prints the layers' `diff` directories,
    /// like `docker inspect`.
    pub fn mount_description(&self, id: &str) -> Result<Option<Mount>> {
        let dir = self.layer_dir(id)?;
        if !dir.is_dir() {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let entries = self.lower_entries(id)?;
        if entries.is_empty() {
            return Ok(None);
        }
        let lowers = self.resolve_lowers(id, &entries)?;
        let links: Vec<PathBuf> = entries.iter().map(|e| self.home.join(e)).collect();
        let mut m = Mount::new(dir.join("merged"));
        if dir.join("committed").exists() {
            m.lowers.push(self.diff_dir(id));
            m.mount_lowers
                .push(self.home.join(LINK_DIR).join(self.link(id)?));
            m.read_only = true;
        } else {
            m = m.upper(self.diff_dir(id), dir.join("work"));
            m.options.volatile = dir.join(VOLATILE_MARKER).exists();
        }
        m.lowers.extend(lowers);
        m.mount_lowers.extend(links);
        Ok(Some(m))
    }

    /// Mount the layer (unless it is mounted already, by this or another
    /// process) and return its merged directory, or its diff directory for
    /// a base layer. Each `get` needs one `put`.
    pub fn get(&self, id: &str) -> Result<PathBuf> {
        let mut refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let m = self.mount_description(id)?;
        let path = match &m {
            Some(m) => m.target.clone(),
            None => self.diff_dir(id),
        };
        if let Some(held) = refs.get_mut(id) {
            held.count += 1;
            return Ok(path);
        }
        let dir = self.layer_dir(id)?;
        let _mutex = lock_layer(&dir)?;
        let holder = open_dir(&dir)?;
        flock(&holder, FlockOperation::LockShared, &dir)?;
        if let Some(m) = &m {
            mkdir_mode(&m.target, 0o700, true)?;
            let marker = dir.join(GET_MARKER);
            std::fs::write(&marker, b"").map_err(io_err("write", &marker))?;
            if !crate::mount::is_mount_point(&m.target)? {
                m.mount()?;
            }
        }
        refs.insert(
            id.to_string(),
            Held {
                count: 1,
                _holder: holder,
            },
        );
        Ok(path)
    }

    /// Release one `get`; the last one in any process unmounts and removes
    /// `merged/`. When that fails the `get` is still held (a later `put`
    /// tries again).
    pub fn put(&self, id: &str) -> Result<()> {
        let mut refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.layer_dir(id)?;
        if let Some(held) = refs.get_mut(id)
            && held.count > 1
        {
            held.count -= 1;
            return Ok(());
        }
        let _mutex = lock_layer(&dir)?;
        let held = refs.remove(id).is_some(); // drops this driver's shared lock
        let released = (|| {
            if has_holders(&dir)? || crate::owned::is_owned(&dir) {
                return Ok(());
            }
            let merged = dir.join("merged");
            if crate::mount::is_mount_point(&merged)? {
                unmount(&merged)?;
                clear_volatile(&dir);
            }
            let _ = std::fs::remove_file(dir.join(GET_MARKER));
            match std::fs::remove_dir(&merged) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("rmdir", &merged)(e)),
            }
        })();
        if released.is_err() && held {
            // Still held: take the shared lock again, so that the count
            // stays in step with the caller's (who may retry the put).
            if let Ok(holder) = open_dir(&dir)
                && flock(&holder, FlockOperation::LockShared, &dir).is_ok()
            {
                refs.insert(
                    id.to_string(),
                    Held {
                        count: 1,
                        _holder: holder,
                    },
                );
            }
        }
        released
    }

    /// Remove the layer and its short link. Fails while a driver in this or
    /// another process holds a `get` of it, or while a `mount-owner` record
    /// owns its mount ([`Driver::get_owned`]).
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.layer_dir(id)?;
        let refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        if refs.contains_key(id) {
            return Err(Error::Busy(id.into()));
        }
        let _mutex = lock_layer(&dir)?;
        if has_holders(&dir)? || crate::owned::is_owned(&dir) {
            return Err(Error::Busy(id.into()));
        }
        for m in mounts_below(&dir)? {
            unmount(&m)?;
        }
        if let Ok(link) = std::fs::read_to_string(dir.join("link")) {
            let link = link.trim();
            if valid_link(link) {
                let _ = std::fs::remove_file(self.home.join(LINK_DIR).join(link));
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }

    /// Write the layer's own changes as an OCI layer tar to `out` (see
    /// [`write_diff`](crate::write_diff)). Only when its diff directory holds
    /// `redirect_dir` or `metacopy` marks (it was mounted with those options)
    /// are the lower directories resolved, and the changes found by comparing
    /// the merged views with and without it; a plain diff never reads the
    /// lowers, so a broken short link does not stop it.
    pub fn write_diff<W: std::io::Write>(&self, id: &str, out: W) -> Result<W> {
        let upper = self.diff_dir(id);
        if !upper.is_dir() {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let ns = crate::whiteout::XattrNamespace::for_userxattr(false);
        if crate::naive::needs_lowers(&upper, ns)? {
            let lowers = self.lower_dirs(id)?;
            if !lowers.is_empty() {
                return crate::naive::write_naive_diff(&upper, &lowers, out);
            }
        }
        // Marks with no lowers get write_diff's error.
        crate::diff::write_diff(&upper, out, &crate::diff::DiffOptions::default())
    }

    /// Whether a driver in this or another process holds a `get` of the
    /// layer, or a `mount-owner` record owns its mount, so that [`remove`](Driver::remove) would fail with
    /// [`Error::Busy`]. Only a hint: another process may `get` it right after.
    pub fn is_busy(&self, id: &str) -> Result<bool> {
        let dir = self.layer_dir(id)?;
        let refs = self.refs.lock().unwrap_or_else(|p| p.into_inner());
        if refs.contains_key(id) || crate::owned::is_owned(&dir) {
            return Ok(true);
        }
        let _mutex = lock_layer(&dir)?;
        has_holders(&dir)
    }

    /// Whether anything is left of the layer's directory (unlike
    /// [`exists`](Driver::exists), true for a removal cut short that took
    /// `diff/` and left the rest).
    pub fn has_dir(&self, id: &str) -> bool {
        self.layer_dir(id).is_ok_and(|d| d.exists())
    }

    /// Whether the layer exists.
    pub fn exists(&self, id: &str) -> bool {
        self.layer_dir(id).is_ok_and(|d| d.join("diff").is_dir())
    }

    /// The ids of all layers, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.home).map_err(io_err("readdir", &self.home))? {
            let e = e.map_err(io_err("readdir", &self.home))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name != LINK_DIR
                && e.file_type().is_ok_and(|t| t.is_dir())
                && e.path().join("diff").is_dir()
            {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The layer's size by Docker's rule ([`crate::diff_size`] of its diff
    /// directory).
    pub fn diff_size(&self, id: &str) -> Result<u64> {
        if !self.exists(id) {
            return Err(Error::NoSuchLayer(id.into()));
        }
        crate::size::diff_size(&self.diff_dir(id))
    }

    /// Write the layer's `committed` file: from now on `get` mounts it
    /// read-only.
    pub fn mark_committed(&self, id: &str) -> Result<()> {
        if !self.exists(id) {
            return Err(Error::NoSuchLayer(id.into()));
        }
        write_file(&self.layer_dir(id)?.join("committed"), b"", 0o600)
    }

    /// [`mark_committed`](Driver::mark_committed) without fsyncs, for a
    /// layer made by [`create_ephemeral`](Driver::create_ephemeral).
    pub fn mark_committed_ephemeral(&self, id: &str) -> Result<()> {
        if !self.exists(id) {
            return Err(Error::NoSuchLayer(id.into()));
        }
        let path = self.layer_dir(id)?.join("committed");
        // An empty file: made or not, never half-written.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_err("chmod", &path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(io_err("write", &path)(e)),
        }
    }

    /// The layer's short link name (`link` file).
    pub fn link(&self, id: &str) -> Result<String> {
        let path = self.layer_dir(id)?.join("link");
        let link = match std::fs::read_to_string(&path) {
            Ok(l) => l.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.exists(id) => {
                return Err(Error::NoSuchLayer(id.into()));
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        if !valid_link(&link) {
            return Err(Error::CorruptLayer {
                id: id.into(),
                file: "link",
                reason: format!("{link:?} is not a 26-character base32 name"),
            });
        }
        Ok(link)
    }

    /// The names present in `l/`.
    fn link_names(&self) -> Result<HashSet<OsString>> {
        let dir = self.home.join(LINK_DIR);
        let mut names = HashSet::new();
        for e in std::fs::read_dir(&dir).map_err(io_err("readdir", &dir))? {
            names.insert(e.map_err(io_err("readdir", &dir))?.file_name());
        }
        Ok(names)
    }

    /// Restore `l/<link>` for `id` unless `links` (the names present in
    /// `l/`) has it, giving the layer a new link if its `link` file is
    /// missing.
    fn repair_link(&self, id: &str, links: &HashSet<OsString>) -> Result<()> {
        let dir = self.layer_dir(id)?;
        let link = match self.link(id) {
            Ok(l) => l,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let l = new_link()?;
                write_file(&dir.join("link"), l.as_bytes(), 0o644)?;
                l
            }
            Err(e) => return Err(e),
        };
        let path = self.home.join(LINK_DIR).join(&link);
        if !links.contains(OsStr::new(&link)) {
            std::os::unix::fs::symlink(format!("../{id}/diff"), &path)
                .map_err(io_err("symlink", &path))?;
        }
        Ok(())
    }

    /// `<home>/<id>` after checking that `id` is a plain name.
    pub(crate) fn layer_dir(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty()
            || id == "."
            || id == ".."
            || id == LINK_DIR
            || id.contains('/')
            || id.contains('\0')
        {
            return Err(Error::InvalidId(id.into()));
        }
        Ok(self.home.join(id))
    }
}

/// Open a directory to hold an `flock` on it.
fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("open", path))
}

/// `flock(fd, op)`, retried when a signal interrupts the wait.
fn flock(fd: &OwnedFd, op: FlockOperation, path: &Path) -> Result<()> {
    loop {
        match rustix::fs::flock(fd, op) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(errno("flock", path)),
        }
    }
}

/// Take the layer's cross-process mutex: an exclusive `flock` on
/// `<layer>/diff`, released when the returned fd is dropped. `None` when
/// the layer has no `diff` (nothing to serialise).
pub(crate) fn lock_layer(layer: &Path) -> Result<Option<OwnedFd>> {
    let diff = layer.join("diff");
    let fd = match open_dir(&diff) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    flock(&fd, FlockOperation::LockExclusive, &diff)?;
    Ok(Some(fd))
}

/// The marker file `<home>/<id>/mount-get`: present while a [`Driver::get`]
/// depends on the layer's `merged` mount, so that [`Driver::open`] detaches
/// only mounts that dunnage made and every holder of which is gone.
const GET_MARKER: &str = "mount-get";

/// The marker of a layer made by [`Driver::create_ephemeral`]: mounted
/// with overlay's `volatile` option.
const VOLATILE_MARKER: &str = "volatile";

/// After a clean unmount of a layer mounted `volatile`: remove the
/// directory by which overlay refuses a later mount
/// (`work/work/incompat/volatile`; the system did not crash, the upper
/// directory is whole). Nothing to do for other layers.
pub(crate) fn clear_volatile(layer: &Path) {
    if layer.join(VOLATILE_MARKER).exists() {
        // It holds one empty file, `dirty`.
        let _ = std::fs::remove_dir_all(layer.join("work/work/incompat/volatile"));
    }
}

fn is_get_mount(layer: &Path) -> bool {
    layer.join(GET_MARKER).symlink_metadata().is_ok()
}

/// Whether some driver (in any process) holds a shared lock on `layer`,
/// i.e. a `get` of it. Call with the layer's mutex held.
pub(crate) fn has_holders(layer: &Path) -> Result<bool> {
    let fd = match open_dir(layer) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(false), // released when fd is dropped
        Err(Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(errno("flock", layer)(e)),
    }
}

fn valid_link(l: &str) -> bool {
    l.len() == LINK_LEN
        && l.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// A fresh 26-character base32 (A-Z, 2-7) name from random bytes.
fn new_link() -> Result<String> {
    dunnage_base::rand::random_base32(LINK_LEN).map_err(io_err("getrandom", "l/"))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))
}

/// Create `path` with exactly `mode` (existing is fine; `parents` creates
/// missing parents).
pub(crate) fn mkdir_mode(path: &Path, mode: u32, parents: bool) -> Result<()> {
    match std::fs::DirBuilder::new()
        .mode(mode)
        .recursive(parents)
        .create(path)
    {
        Ok(()) => set_mode(path, mode),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(io_err("mkdir", path)(e)),
    }
}

/// A child layer's `work/` directory (0700) and `lower` file.
fn write_lower(dir: &Path, lower: &str) -> Result<()> {
    mkdir_mode(&dir.join("work"), 0o700, false)?;
    write_file(&dir.join("lower"), lower.as_bytes(), 0o644)
}

/// Write `data` to `path` with `mode` atomically ([`dunnage_base::fs::write_atomic`]:
/// a random exclusive temp name, fsync, rename, directory fsync).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    dunnage_base::fs::write_atomic(path, data, mode).map_err(io_err("write", path))
}

/// [`write_file`] without the fsyncs ([`dunnage_base::fs::write_replace`]).
pub(crate) fn write_file_unsynced(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    dunnage_base::fs::write_replace(path, data, mode).map_err(io_err("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_26_base32_chars() {
        let l = new_link().unwrap();
        assert!(valid_link(&l), "{l}");
        assert_ne!(l, new_link().unwrap());
    }
}
