//! Changes of an upper directory, like `docker diff`.
//!
//! The changes are found by comparing two views of the tree: the lowers
//! alone (before) and the upper directory over them (after), entry by
//! entry, as Docker's tree comparison does:
//!
//! - a path only after is added (`A`), with everything below it;
//! - a path only before is deleted (`D`), itself only, not its children;
//!   so an opaque directory lists the lower children it hides as deleted;
//! - a path in both is changed (`C`) when its type, mode, owner or device
//!   differ, and for non-directories its size or mtime; a directory is
//!   also changed when anything below it is (a directory recreated below
//!   an opaque one is `C`, not `A`); a directory copied up with no net
//!   change is not listed.
//!
//! Where Docker misses changes we report them: a path whose xattrs changed
//! (Docker compares `security.capability` only), and a regular file edited
//! in place to the same size with its mtime set back (Docker compares size
//! and mtime only; we compare the content of files whose data the upper
//! directory holds). A symlink whose target changed is changed too.
//!
//! For an upper directory without `redirect_dir`/`metacopy` marks the views
//! are computed from the directories (whiteouts and opaque marks read as
//! overlayfs reads them) and only the subtrees the upper directory touches
//! are visited. With such marks, the views are read-only overlay mounts
//! (needs mount privilege) and the whole tree is compared, so a renamed
//! directory is listed as deleted under its old name and added, with all
//! its children, under its new one.
//!
//! Unlike [`write_diff`](crate::write_diff), this walk goes by path: list
//! the changes of a paused or stopped container. A writer swapping a
//! directory for a symlink while it runs can make names from outside the
//! upper directory appear in the list (never file contents: compared files
//! are opened with `O_NOFOLLOW | O_NONBLOCK`).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, io_err};
use crate::naive::{Views, differs, needs_lowers, upper_has_data};
use crate::whiteout::{XattrNamespace, is_opaque, is_whiteout};

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// New in the upper layer (`A`).
    Added,
    /// Present below and changed, or a directory whose contents changed (`C`).
    Modified,
    /// Present below and gone (`D`).
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints: `A`, `C` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, absolute in the container's view (`/etc/passwd`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The path, starting with `/`.
    pub path: PathBuf,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path.display())
    }
}

/// The changes an upper directory (overlay form) makes to its `lowers`
/// (nearest first), sorted by path (see the [module docs](self) for the
/// rules and where they differ from `docker diff`).
///
/// An upper directory holding `redirect_dir` or `metacopy` marks is
/// compared through overlay mounts, which needs mount privilege.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut cmp = Compare {
        upper,
        prune: true,
        out: Vec::new(),
    };
    if !lowers.is_empty() && needs_lowers(upper, XattrNamespace::Trusted)? {
        let views = Views::mount(upper, lowers)?;
        cmp.prune = false;
        cmp.dir(&Mounted(views.before()), &Mounted(views.after()), b"", true)?;
    } else {
        let layers: Vec<PathBuf> = std::iter::once(upper.to_path_buf())
            .chain(lowers.iter().cloned())
            .collect();
        cmp.dir(&Layered(lowers), &Layered(&layers), b"", true)?;
    }
    let mut out = cmp.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A merged tree, read by relative path.
trait View {
    /// The entry at `rel` and a path to read it at; `None` when absent.
    fn stat(&self, rel: &[u8]) -> Result<Option<(Metadata, PathBuf)>>;
    /// The names in the directory `rel`.
    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>>;
}

/// A mounted view.
struct Mounted(PathBuf);

impl View for Mounted {
    fn stat(&self, rel: &[u8]) -> Result<Option<(Metadata, PathBuf)>> {
        let p = at(&self.0, rel);
        Ok(lstat(&p)?.map(|m| (m, p)))
    }

    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>> {
        read_names(&at(&self.0, rel))
    }
}

/// Layer directories in overlay form, top first, merged as overlayfs
/// merges them (whiteouts hide, opaque directories hide what is below).
struct Layered<'a>(&'a [PathBuf]);

/// What one layer holds at a path.
enum Probe {
    /// Nothing; lower layers are hidden when an ancestor here is opaque.
    Absent { opaque_above: bool },
    /// A whiteout, or an ancestor that is a whiteout or not a directory:
    /// the path does not exist, in this layer or below.
    Hidden,
    /// An entry (lower layers hidden below it when an ancestor is opaque).
    Found(Metadata, PathBuf, bool),
}

impl Layered<'_> {
    fn probe(layer: &Path, rel: &[u8]) -> Result<Probe> {
        let mut opaque_above = false;
        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let mut p = layer.to_path_buf();
        for (i, c) in comps.iter().enumerate() {
            p.push(OsStr::from_bytes(c));
            let Some(m) = lstat(&p)? else {
                return Ok(Probe::Absent { opaque_above });
            };
            if is_whiteout(&m) {
                return Ok(Probe::Hidden);
            }
            if i + 1 == comps.len() {
                return Ok(Probe::Found(m, p, opaque_above));
            }
            if !m.is_dir() {
                return Ok(Probe::Hidden);
            }
            opaque_above |= is_opaque(&p, XattrNamespace::Trusted)?;
        }
        Ok(Probe::Absent { opaque_above })
    }
}

impl View for Layered<'_> {
    fn stat(&self, rel: &[u8]) -> Result<Option<(Metadata, PathBuf)>> {
        for layer in self.0 {
            match Self::probe(layer, rel)? {
                Probe::Hidden => return Ok(None),
                Probe::Found(m, p, _) => return Ok(Some((m, p))),
                Probe::Absent { opaque_above: true } => return Ok(None),
                Probe::Absent { .. } => {}
            }
        }
        Ok(None)
    }

    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>> {
        let mut names = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for layer in self.0 {
            let (dir, opaque_above) = if rel.is_empty() {
                (layer.to_path_buf(), false)
            } else {
                match Self::probe(layer, rel)? {
                    Probe::Hidden => break,
                    Probe::Absent { opaque_above } => {
                        if opaque_above {
                            break;
                        }
                        continue;
                    }
                    Probe::Found(m, _, _) if !m.is_dir() => break,
                    Probe::Found(_, p, opaque_above) => (p, opaque_above),
                }
            };
            for name in read_names(&dir)? {
                if hidden.contains(&name) || names.contains(&name) {
                    continue;
                }
                let p = dir.join(&name);
                if lstat(&p)?.is_some_and(|m| is_whiteout(&m)) {
                    hidden.insert(name);
                } else {
                    names.insert(name);
                }
            }
            if opaque_above || is_opaque(&dir, XattrNamespace::Trusted)? {
                break;
            }
        }
        Ok(names)
    }
}

struct Compare<'a> {
    upper: &'a Path,
    /// Skip entries the upper directory does not hold (they are the same
    /// in both views when there are no redirects).
    prune: bool,
    out: Vec<Change>,
}

impl Compare<'_> {
    /// Compare the directory `rel` after with before (`old_dir`: it is a
    /// directory before too).
    fn dir(&mut self, old: &dyn View, new: &dyn View, rel: &[u8], old_dir: bool) -> Result<()> {
        let new_names = new.names(rel)?;
        let old_names = if old_dir {
            old.names(rel)?
        } else {
            BTreeSet::new()
        };
        let all: BTreeSet<&OsString> = new_names.iter().chain(old_names.iter()).collect();
        for name in all {
            let child = join(rel, name.as_bytes());
            let in_old = old_names.contains(name);
            let in_new = new_names.contains(name);
            if in_old && in_new && self.prune && lstat(&at(self.upper, &child))?.is_none() {
                continue;
            }
            let after = if in_new { new.stat(&child)? } else { None };
            let before = if in_old { old.stat(&child)? } else { None };
            match (before, after) {
                (None, None) => {}
                (Some(_), None) => self.push(ChangeKind::Deleted, &child),
                (None, Some((nm, _))) => {
                    self.push(ChangeKind::Added, &child);
                    if nm.is_dir() {
                        self.dir(old, new, &child, false)?;
                    }
                }
                (Some((om, op)), Some((nm, np))) => {
                    let upper_data = nm.is_file() && upper_has_data(self.upper, &child)?;
                    let changed = differs(&om, &nm, &op, &np, upper_data, false)?;
                    let at = self.out.len();
                    if changed {
                        self.push(ChangeKind::Modified, &child);
                    }
                    if nm.is_dir() {
                        self.dir(old, new, &child, om.is_dir())?;
                        if !changed && self.out.len() > at {
                            self.out.insert(at, change(ChangeKind::Modified, &child));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, kind: ChangeKind, rel: &[u8]) {
        self.out.push(change(kind, rel));
    }
}

fn change(kind: ChangeKind, rel: &[u8]) -> Change {
    Change {
        kind,
        path: Path::new("/").join(OsStr::from_bytes(rel)),
    }
}

/// `root/rel`.
fn at(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// `lstat`, `None` when missing (also below a non-directory).
fn lstat(p: &Path) -> Result<Option<Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(io_err("lstat", p)(e)),
    }
}

fn read_names(dir: &Path) -> Result<BTreeSet<OsString>> {
    std::fs::read_dir(dir)
        .map_err(io_err("readdir", dir))?
        .map(|e| e.map(|e| e.file_name()).map_err(io_err("readdir", dir)))
        .collect()
}
