//! The file-system side of the store check ([`crate::check`]): driver
//! directories, the names the layerdb gives them, short links, leftovers
//! and mounts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dunnage_layerstore::{ChainId, Digest, LayerStore};

use crate::check::Problem;
use crate::error::{Error, Result};
use crate::reference::is_hex64;

/// The entries of a directory (empty when it does not exist).
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("readdir", dir, e)),
    };
    list.map(|e| e.map_err(|e| Error::io("readdir", dir, e)))
        .collect()
}

/// A small id file's text (`cache-id`, `mount-id`, `init-id`), if readable.
fn id_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let id = text.trim();
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

/// The names of the directories in `<root>/overlay2` (not `l`, not the
/// driver's probe directories).
pub(crate) fn driver_dirs(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in entries(&root.join("overlay2"))? {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name != "l" && !name.starts_with('.') && e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The driver directories the layerdb names: committed layers, container
/// layers, registrations in progress and leftovers (which `open` removes
/// with their directories). Reports broken layers and container layers.
///
/// Read after the driver directories were listed, write-sets before
/// layers: a registration creates its write-set's `cache-id` before its
/// directory and renames the write-set into `sha256/` when it commits, so
/// a directory listed is found named in one place or the other.
pub(crate) fn names_in_use(
    layers: &LayerStore,
    problems: &mut Vec<Problem>,
) -> Result<HashSet<String>> {
    let db = layers.root().join("image/overlay2/layerdb");
    let mut names = HashSet::new();
    let mut named_by = |dir: &Path| {
        for file in ["cache-id", "mount-id", "init-id"] {
            if let Some(id) = id_file(&dir.join(file)) {
                names.insert(id);
            }
        }
    };
    // Spare container layers (dunnage_layerstore::spare) are kept, not
    // orphans. Read first: a spare taken moves to tmp/, then to mounts/.
    for e in entries(&db.join("dunnage/spares"))? {
        named_by(&e.path());
    }
    for e in entries(&db.join("tmp"))? {
        named_by(&e.path());
    }
    for e in entries(&db.join("sha256"))? {
        named_by(&e.path());
    }
    for e in entries(&db.join("mounts"))? {
        named_by(&e.path());
    }

    let driver = layers.driver();
    for e in entries(&db.join("sha256"))? {
        let name = e.file_name();
        let Some(hex) = name.to_str().filter(|n| is_hex64(n)) else {
            continue;
        };
        let Ok(digest) = Digest::from_hex(hex) else {
            continue;
        };
        let chain_id = ChainId(digest);
        let why = match layers.get(&chain_id) {
            Err(e) => Some(e.to_string()),
            Ok(layer) if !driver.exists(&layer.cache_id) => {
                Some(format!("overlay2 directory {} is missing", layer.cache_id))
            }
            Ok(layer) => match layer.parent.as_ref().map(|p| layers.get(p)) {
                Some(Err(e)) => Some(format!("parent: {e}")),
                _ => driver
                    .lower_dirs(&layer.cache_id)
                    .err()
                    .map(|e| format!("lower: {e}")),
            },
        };
        if let Some(why) = why {
            problems.push(Problem::BrokenLayer { chain_id, why });
        }
    }
    for e in entries(&db.join("mounts"))? {
        let Some(container_id) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let why = match layers.get_rw(&container_id) {
            Err(e) => Some(e.to_string()),
            Ok(rw) => {
                let missing: Vec<&str> = std::iter::once(rw.mount_id.as_str())
                    .chain(rw.init_id.as_deref())
                    .filter(|id| !driver.exists(id))
                    .collect();
                if !missing.is_empty() {
                    Some(format!("overlay2 directories missing: {missing:?}"))
                } else {
                    rw.parent
                        .as_ref()
                        .and_then(|p| layers.get(p).err())
                        .map(|e| format!("parent: {e}"))
                }
            }
        };
        if let Some(why) = why {
            problems.push(Problem::BrokenContainerLayer { container_id, why });
        }
    }
    Ok(names)
}

/// Short links in `overlay2/l/` that lead to no directory.
pub(crate) fn check_links(root: &Path, problems: &mut Vec<Problem>) -> Result<()> {
    for e in entries(&root.join("overlay2/l"))? {
        if !e.path().is_dir() {
            problems.push(Problem::DanglingLink {
                link: e.file_name().to_string_lossy().into_owned(),
            });
        }
    }
    Ok(())
}

/// Write-sets no live process holds and `*-removing` layer directories.
/// Call with the layer store's lock held shared (no removal runs then, so
/// a `-removing` directory is abandoned).
pub(crate) fn check_leftovers(root: &Path, problems: &mut Vec<Problem>) -> Result<()> {
    let db = root.join("image/overlay2/layerdb");
    for e in entries(&db.join("sha256"))? {
        if e.file_name().to_string_lossy().ends_with("-removing") {
            problems.push(Problem::Leftover { path: e.path() });
        }
    }
    for e in entries(&db.join("tmp"))? {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with("write-set-")
            && !dunnage_base::lock::is_locked(&path).unwrap_or(true)
        {
            problems.push(Problem::Leftover { path });
        }
    }
    Ok(())
}

/// Mounts below the data-root: a driver layer's `merged` while some
/// process holds it (a `get`) is in use, and so is one owned by a
/// `mount-owner` record when a container layer record names the layer;
/// an owned one no record names is an orphan; anything else is stray.
pub(crate) fn check_mounts(layers: &LayerStore, problems: &mut Vec<Problem>) -> Result<()> {
    let root = layers.root();
    let mounts = dunnage_base::mountinfo::mounts_below(root)
        .map_err(|e| Error::io("read", "/proc/self/mountinfo", e))?;
    let home = root.join("overlay2");
    let mut recorded: Option<HashSet<String>> = None;
    for path in mounts {
        let layer = path.strip_prefix(&home).ok().and_then(|rel| {
            let mut c = rel.components();
            let id = c.next()?.as_os_str().to_str()?.to_string();
            (c.next()?.as_os_str() == "merged" && c.next().is_none()).then_some(id)
        });
        let Some(id) = layer else {
            problems.push(Problem::StrayMount { path });
            continue;
        };
        let driver = layers.driver();
        if matches!(driver.mount_owner(&id), Ok(Some(_))) {
            let recorded = match &mut recorded {
                Some(r) => r,
                None => recorded.insert(container_mount_ids(root)?),
            };
            if !recorded.contains(&id) {
                problems.push(Problem::OrphanMount { id, path });
            }
            continue;
        }
        if !driver.is_busy(&id).unwrap_or(true) {
            problems.push(Problem::StrayMount { path });
        }
    }
    Ok(())
}

/// The `mount-id`s of the container layer records in `layerdb/mounts/`.
fn container_mount_ids(root: &Path) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    for e in entries(&root.join("image/overlay2/layerdb/mounts"))? {
        if let Some(id) = id_file(&e.path().join("mount-id")) {
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// Detach a stray mount.
pub(crate) fn unmount(path: &PathBuf) -> Result<()> {
    rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| Error::io("umount2", path, e.into()))
}
