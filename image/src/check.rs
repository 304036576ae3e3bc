//! The store check: do the layerdb, the overlay2 directories, the mounts,
//! the imagedb, `repositories.json` and the container layers agree?
//!
//! [`ImageStore::check`] lists every [`Problem`] it finds and changes
//! nothing; [`ImageStore::repair`] fixes what can be fixed without a
//! person's decision and returns what it found.
//!
//! # What opening a store repairs by itself
//! [`ImageStore::open`] (through
//! [`LayerStore::open`](dunnage_layerstore::LayerStore::open) and the
//! overlay2 driver's open) already removes what a killed process leaves:
//! write-sets in `layerdb/tmp/` no live process holds and their driver
//! directories, `*-removing` layer directories, staged container records,
//! stale reference files, layers left with no reference and unused, mounts
//! under `overlay2/*/merged` no live process holds, and missing short
//! links in `overlay2/l/`. The check reports those only when they appear
//! after the store was opened (a process killed since).
//!
//! # What only [`repair`](ImageStore::repair) fixes
//! Layer references no image owns (a load, import or commit killed between
//! registering layers and writing the image: [`crate::reclaim`]), tags of
//! missing images, images whose config is unreadable or whose layers are
//! gone (deleted, with their tags), overlay2 directories no layer or
//! container names, and short links that lead nowhere. Broken layers (a
//! layerdb entry whose files or driver directory are damaged) are reported,
//! not removed: what they hold cannot be rebuilt and may be wanted.
//!
//! Both wait for running loads, imports and commits to finish (they take
//! the operations lock of [`crate::reclaim`] exclusively, then the images
//! lock), so that their layers in flight are not mistaken for leaks. A
//! container layer being created by another process while the check runs
//! can be reported as an orphan directory: do not `repair` while
//! containers are being created.
//!
//! Containers' own state (`containers/<id>/`: unfinished creates and
//! removes, container layer records without a container) is the facade's
//! to judge: `dunnage::container::ContainerStore::check` runs this check
//! and adds those; `dunnage system check` uses it.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use dunnage_base::lock::{FileLock, LockKind};
use dunnage_layerstore::{ChainId, ChildrenIndexProblem, LayerStore};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::reclaim::LeakedLayer;
use crate::reference::Reference;
use crate::store::{ImageStore, Locked};

/// One disagreement found by [`ImageStore::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A tag in `repositories.json` names an image the imagedb lacks.
    DanglingTag {
        /// The tag.
        reference: Reference,
        /// The missing image.
        id: ImageId,
    },
    /// An imagedb entry that cannot be read or whose content does not hash
    /// to its ID.
    BrokenImage {
        /// The image.
        id: ImageId,
        /// Why, as the error reads.
        why: String,
    },
    /// An image whose layer chain is missing or unreadable.
    MissingLayers {
        /// The image.
        id: ImageId,
        /// Its top layer.
        chain_id: ChainId,
        /// Why, as the error reads.
        why: String,
    },
    /// A layer holding references no image owns (see [`crate::reclaim`]).
    LeakedReferences(LeakedLayer),
    /// A layerdb entry that cannot be read, whose parent is missing or
    /// whose overlay2 directory (or its `lower` chain) is damaged.
    BrokenLayer {
        /// The layer.
        chain_id: ChainId,
        /// Why.
        why: String,
    },
    /// A container layer record (`layerdb/mounts/<id>`) that cannot be
    /// read, or whose directories or parent layer are gone.
    BrokenContainerLayer {
        /// The container id.
        container_id: String,
        /// Why.
        why: String,
    },
    /// An `overlay2/<id>` directory that no layer, container layer or
    /// registration in progress names.
    OrphanDriverDir {
        /// The directory's name.
        id: String,
    },
    /// An `overlay2/l/<link>` that leads to no directory.
    DanglingLink {
        /// The link's name.
        link: String,
    },
    /// Something an interrupted operation left in the layerdb after the
    /// store was opened: a write-set no live process holds, a
    /// `*-removing` layer directory, a staged record.
    Leftover {
        /// The path.
        path: PathBuf,
    },
    /// A mount below the data-root that is not a driver layer's `merged`
    /// directory.
    StrayMount {
        /// The mount point.
        path: PathBuf,
    },
    /// A container layer's mount (`overlay2/<id>/merged`, owned by its
    /// `mount-owner` record) that no container layer record in
    /// `layerdb/mounts/` names: the record went while the layer was
    /// still mounted, so no container will ever unmount it. `repair`
    /// gives up the ownership and unmounts it (its directory then goes as
    /// an orphan).
    OrphanMount {
        /// The driver layer's id.
        id: String,
        /// The mount point.
        path: PathBuf,
    },
    /// The layer store's index of children disagrees with the parent files
    /// (see [`dunnage_layerstore::children`]); `repair` rebuilds it.
    ChildrenIndex(ChildrenIndexProblem),
    /// A spare container layer (see [`dunnage_layerstore::spare`]) that
    /// cannot be taken: its parent layer or its driver directories are
    /// gone, or its record is unreadable. `repair` drops it (opening the
    /// layer store does).
    BrokenSpare {
        /// The spare's record.
        path: PathBuf,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DanglingTag { reference, id } => {
                write!(f, "tag {reference} names missing image {id}")
            }
            Problem::BrokenImage { id, why } => write!(f, "image {id} is broken: {why}"),
            Problem::MissingLayers { id, chain_id, why } => {
                write!(f, "image {id} lacks its layers (top {chain_id}): {why}")
            }
            Problem::LeakedReferences(l) => write!(
                f,
                "layer {} holds {} references, its images own {}",
                l.chain_id, l.references, l.images
            ),
            Problem::BrokenLayer { chain_id, why } => {
                write!(f, "layer {chain_id} is broken: {why}")
            }
            Problem::BrokenContainerLayer { container_id, why } => {
                write!(f, "container layer {container_id} is broken: {why}")
            }
            Problem::OrphanDriverDir { id } => {
                write!(f, "overlay2 directory {id} belongs to no layer")
            }
            Problem::DanglingLink { link } => write!(f, "overlay2 link l/{link} leads nowhere"),
            Problem::Leftover { path } => {
                write!(
                    f,
                    "leftover of an interrupted operation: {}",
                    path.display()
                )
            }
            Problem::StrayMount { path } => write!(f, "stray mount: {}", path.display()),
            Problem::OrphanMount { id, path } => write!(
                f,
                "orphan mount: {} (overlay2 layer {id} is owned, no container layer names it)",
                path.display()
            ),
            Problem::BrokenSpare { path } => {
                write!(f, "spare container layer {} is broken", path.display())
            }
            Problem::ChildrenIndex(p) => match p {
                ChildrenIndexProblem::NotBuilt => write!(f, "the index of children is missing"),
                ChildrenIndexProblem::Missing { parent, child } => {
                    write!(f, "the index of children lacks {child:?} on layer {parent}")
                }
                ChildrenIndexProblem::Stale { parent, child } => write!(
                    f,
                    "the index of children lists {child:?} on layer {parent}, which is not there"
                ),
                other => write!(f, "the index of children disagrees: {other:?}"),
            },
        }
    }
}

/// What [`ImageStore::check`] found; empty when the store is consistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The locks a check holds: no load, import or commit runs (operations
/// lock, exclusive) and no image or tag changes (images lock).
struct Quiet {
    _operations: FileLock,
    locked: Locked,
}

impl ImageStore {
    fn quiet(&self) -> Result<Quiet> {
        let path = self.locks_dir().join("operations.lock");
        let operations =
            FileLock::lock(&path, LockKind::Exclusive).map_err(|e| Error::io("flock", path, e))?;
        Ok(Quiet {
            _operations: operations,
            locked: self.lock()?,
        })
    }

    /// Check that the store's parts agree (see the [module docs](self));
    /// changes nothing. Waits for running loads, imports and commits.
    pub fn check(&self) -> Result<CheckReport> {
        let quiet = self.quiet()?;
        self.survey_all(&quiet.locked)
    }

    /// Fix what [`check`](Self::check) finds that can be fixed (see the
    /// [module docs](self)); returns what it found before. Call
    /// [`check`](Self::check) afterwards for what is left.
    pub fn repair(&self) -> Result<CheckReport> {
        let quiet = self.quiet()?;
        let found = self.survey_all(&quiet.locked)?;
        // An orphan mount's ownership goes first: then it is a plain
        // layer directory, which the reopen below removes when a staged
        // record in `tmp/` names it, and the orphan pass otherwise.
        for p in &found.problems {
            if let Problem::OrphanMount { id, .. } = p {
                self.layers()
                    .driver()
                    .put_owned(id)
                    .map_err(|e| Error::Layer(e.into()))?;
            }
        }
        if found.problems.iter().any(|p| {
            matches!(
                p,
                Problem::Leftover { .. }
                    | Problem::StrayMount { .. }
                    | Problem::OrphanMount { .. }
                    | Problem::BrokenSpare { .. }
            )
        }) {
            // Opening the layer store again clears leftovers and stale
            // mounts under its exclusive store lock.
            drop(LayerStore::open(self.root())?);
        }
        if found
            .problems
            .iter()
            .any(|p| matches!(p, Problem::ChildrenIndex(_)))
        {
            self.layers().rebuild_children_index()?;
        }
        for p in &found.problems {
            match p {
                Problem::DanglingTag { reference, .. } => {
                    self.edit_repos(&quiet.locked, |r| r.remove(reference))?;
                }
                Problem::BrokenImage { id, .. } | Problem::MissingLayers { id, .. } => {
                    self.drop_image(&quiet.locked, id)?;
                }
                _ => {}
            }
        }
        // Images dropped above leave their references leaked: survey again.
        // A layer that cannot be released (damaged) stays, reported by the
        // next check.
        if let Some(leaked) = self.survey(&quiet.locked)? {
            for l in leaked {
                for _ in l.images..l.references {
                    if self.layers().release(&l.chain_id).is_err() {
                        break;
                    }
                }
            }
        }
        // Directories and links last: a released layer may have gone.
        let after = self.survey_all(&quiet.locked)?;
        for p in &after.problems {
            match p {
                Problem::OrphanDriverDir { id } => {
                    let driver = self.layers().driver();
                    // Owned by a `mount-owner` record no container layer
                    // names (the record is all that is left of a mount):
                    // the ownership goes first.
                    if matches!(driver.mount_owner(id), Ok(Some(_))) {
                        driver.put_owned(id).map_err(|e| Error::Layer(e.into()))?;
                    }
                    match driver.remove(id) {
                        Err(dunnage_overlay::Error::Busy(_)) => {}
                        r => r.map_err(|e| Error::Layer(e.into()))?,
                    }
                }
                // Not a driver layer's (the reopen above detached those).
                Problem::StrayMount { path } => crate::check_fs::unmount(path)?,
                Problem::DanglingLink { link } => {
                    let path = self.root().join("overlay2/l").join(link);
                    std::fs::remove_file(&path).map_err(|e| Error::io("unlink", path, e))?;
                }
                _ => {}
            }
        }
        Ok(found)
    }

    /// Delete an image and its tags. Its layer reference, when the layer
    /// exists, is left to the leaked-reference pass, which counts exactly.
    fn drop_image(&self, locked: &Locked, id: &ImageId) -> Result<()> {
        for r in self.repos()?.references(id) {
            self.edit_repos(locked, |repos| repos.remove(&r))?;
        }
        self.imagedb().delete(id)
    }

    fn survey_all(&self, locked: &Locked) -> Result<CheckReport> {
        // The layer store's lock, shared: no layer is removed meanwhile
        // (see `dunnage_layerstore`'s lock docs), so the layer set only
        // grows and a `-removing` directory is abandoned.
        let path = self.root().join("image/overlay2/layerdb/dunnage/lock");
        let _layers =
            FileLock::lock(&path, LockKind::Shared).map_err(|e| Error::io("flock", path, e))?;
        let mut problems = Vec::new();
        // Order matters against a concurrent registration (see
        // `check_fs::names_in_use`): driver directories first.
        let driver_dirs = crate::check_fs::driver_dirs(self.root())?;
        let in_use = crate::check_fs::names_in_use(self.layers(), &mut problems)?;
        self.check_images(locked, &mut problems)?;
        for id in driver_dirs {
            if !in_use.contains(&id) {
                problems.push(Problem::OrphanDriverDir { id });
            }
        }
        crate::check_fs::check_links(self.root(), &mut problems)?;
        crate::check_fs::check_leftovers(self.root(), &mut problems)?;
        crate::check_fs::check_mounts(self.layers(), &mut problems)?;
        problems.extend(
            self.layers()
                .check_children_index()?
                .into_iter()
                .map(Problem::ChildrenIndex),
        );
        problems.extend(
            self.layers()
                .broken_spares()?
                .into_iter()
                .map(|path| Problem::BrokenSpare { path }),
        );
        Ok(CheckReport { problems })
    }

    /// Tags, image configs, their layers and the layer references.
    fn check_images(&self, locked: &Locked, problems: &mut Vec<Problem>) -> Result<()> {
        let ids = self.imagedb().list()?;
        let present: HashSet<&ImageId> = ids.iter().collect();
        for (reference, id) in self.repos()?.all() {
            if !present.contains(id) {
                problems.push(Problem::DanglingTag {
                    reference: reference.clone(),
                    id: id.clone(),
                });
            }
        }
        for id in &ids {
            let config = match self.imagedb().get(id) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(Problem::BrokenImage {
                        id: id.clone(),
                        why: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(top) = config.chain_id()
                && let Err(e) = self.layers().chain(&top)
            {
                problems.push(Problem::MissingLayers {
                    id: id.clone(),
                    chain_id: top,
                    why: e.to_string(),
                });
            }
        }
        // `None` when a config is unreadable: reported above.
        if let Some(leaked) = self.survey(locked)? {
            problems.extend(leaked.into_iter().map(Problem::LeakedReferences));
        }
        Ok(())
    }
}
