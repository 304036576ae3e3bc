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
//! Like [`write_diff`](crate::write_diff), the walk never follows a
//! symlink: every path is opened component by component below its root's
//! fd with `O_PATH | O_NOFOLLOW`, metadata, xattrs, link targets and
//! contents are read from those fds, so a writer swapping entries of a
//! running container's upper directory for symlinks or FIFOs cannot make
//! anything from outside appear in the list, nor hang it.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, OFlags};
use rustix::io::Errno;

use crate::diff::{
    Opened, display, fd_xattr_names, fd_xattrs, join, open_dir_path, open_entry, reopen,
};
use crate::error::{Result, errno};
use crate::naive::{Views, needs_lowers, same_files};
use crate::root::dir_names;
use crate::whiteout::{XattrNamespace, is_overlay_xattr};

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
        upper: Root::open(upper)?,
        prune: true,
        out: Vec::new(),
    };
    if !lowers.is_empty() && needs_lowers(upper, XattrNamespace::Trusted)? {
        let views = Views::mount(upper, lowers)?;
        cmp.prune = false;
        let before = Mounted(Root::open(&views.before())?);
        let after = Mounted(Root::open(&views.after())?);
        cmp.dir(&before, &after, b"", true)?;
    } else {
        let open_all = |dirs: &[PathBuf]| -> Result<Vec<Root>> {
            dirs.iter().map(|d| Root::open(d)).collect()
        };
        let before = open_all(lowers)?;
        let mut after = vec![Root::open(upper)?];
        after.extend(open_all(lowers)?);
        cmp.dir(&Layered(before), &Layered(after), b"", true)?;
    }
    let mut out = cmp.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A directory tree read below its root's fd.
struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// Where a path leads in one tree.
enum Walk {
    /// Nothing there; `true` when an ancestor is an opaque directory.
    Missing(bool),
    /// A whiteout, or below a whiteout or non-directory (layers only).
    Hidden,
    /// An entry, and whether an ancestor is an opaque directory.
    Found(Opened, bool),
}

impl Root {
    fn open(path: &Path) -> Result<Root> {
        Ok(Root {
            fd: open_dir_path(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Open `rel` (not empty) component by component with `O_PATH |
    /// O_NOFOLLOW`; with `layer`, whiteouts hide and opaque marks count.
    fn walk(&self, rel: &[u8], layer: bool) -> Result<Walk> {
        let mut parent: Option<Opened> = None;
        let mut opaque_above = false;
        let mut end = 0;
        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        for (i, comp) in comps.iter().enumerate() {
            end += comp.len() + usize::from(i > 0);
            let shown = display(&self.path, &rel[..end]);
            let dir = match &parent {
                Some(o) => o.fd.as_fd(),
                None => self.fd.as_fd(),
            };
            let Some(o) = open_entry(dir, OsStr::from_bytes(comp), &shown)? else {
                return Ok(Walk::Missing(opaque_above));
            };
            if layer && is_whiteout_st(&o) {
                return Ok(Walk::Hidden);
            }
            if i + 1 == comps.len() {
                return Ok(Walk::Found(o, opaque_above));
            }
            if o.st.kind() != libc::S_IFDIR {
                return Ok(Walk::Hidden);
            }
            if layer {
                opaque_above |= is_opaque_fd(&o, &shown)?;
            }
            parent = Some(o);
        }
        Ok(Walk::Missing(opaque_above))
    }

    /// The names in the directory `dir` (the root when `None`), each with
    /// whether it is a whiteout.
    fn names(&self, dir: Option<&Opened>, rel: &[u8]) -> Result<Vec<(OsString, bool)>> {
        let shown = display(&self.path, rel);
        let reopened;
        let fd = match dir {
            None => self.fd.as_fd(),
            Some(o) => {
                reopened = reopen(o, OFlags::DIRECTORY, &shown)?;
                reopened.as_fd()
            }
        };
        let mut out = Vec::new();
        for name in dir_names(fd).map_err(errno("getdents", &shown))? {
            let wh = match rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(errno("fstatat", &shown.join(&name))(e)),
            };
            out.push((name, wh));
        }
        Ok(out)
    }
}

fn is_whiteout_st(o: &Opened) -> bool {
    o.st.kind() == libc::S_IFCHR && o.st.rdev == 0
}

fn is_opaque_fd(o: &Opened, shown: &Path) -> Result<bool> {
    let opaque = XattrNamespace::Trusted.opaque().as_bytes();
    Ok(fd_xattrs(o, shown)?
        .iter()
        .any(|(n, v)| n == opaque && v == b"y"))
}

/// A merged tree, read by relative path.
trait View {
    /// The entry at `rel` and its path (for messages); `None` when absent.
    fn stat(&self, rel: &[u8]) -> Result<Option<(Opened, PathBuf)>>;
    /// The names in the directory `rel`.
    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>>;
}

/// A mounted view.
struct Mounted(Root);

impl View for Mounted {
    fn stat(&self, rel: &[u8]) -> Result<Option<(Opened, PathBuf)>> {
        Ok(match self.0.walk(rel, false)? {
            Walk::Found(o, _) => Some((o, display(&self.0.path, rel))),
            _ => None,
        })
    }

    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>> {
        let dir = if rel.is_empty() {
            None
        } else {
            match self.0.walk(rel, false)? {
                Walk::Found(o, _) if o.st.kind() == libc::S_IFDIR => Some(o),
                _ => return Ok(BTreeSet::new()),
            }
        };
        let names = self.0.names(dir.as_ref(), rel)?;
        Ok(names.into_iter().map(|(n, _)| n).collect())
    }
}

/// Layer directories in overlay form, top first, merged as overlayfs
/// merges them (whiteouts hide, opaque directories hide what is below).
struct Layered(Vec<Root>);

impl View for Layered {
    fn stat(&self, rel: &[u8]) -> Result<Option<(Opened, PathBuf)>> {
        for layer in &self.0 {
            match layer.walk(rel, true)? {
                Walk::Hidden | Walk::Missing(true) => return Ok(None),
                Walk::Found(o, _) => return Ok(Some((o, display(&layer.path, rel)))),
                Walk::Missing(false) => {}
            }
        }
        Ok(None)
    }

    fn names(&self, rel: &[u8]) -> Result<BTreeSet<OsString>> {
        let mut names = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for layer in &self.0 {
            let (dir, stop) = if rel.is_empty() {
                (None, false)
            } else {
                match layer.walk(rel, true)? {
                    Walk::Hidden | Walk::Missing(true) => break,
                    Walk::Missing(false) => continue,
                    Walk::Found(o, _) if o.st.kind() != libc::S_IFDIR => break,
                    Walk::Found(o, opaque_above) => {
                        let opaque = is_opaque_fd(&o, &display(&layer.path, rel))?;
                        (Some(o), opaque_above || opaque)
                    }
                }
            };
            for (name, wh) in layer.names(dir.as_ref(), rel)? {
                if hidden.contains(&name) || names.contains(&name) {
                    continue;
                }
                if wh {
                    hidden.insert(name);
                } else {
                    names.insert(name);
                }
            }
            if stop {
                break;
            }
        }
        Ok(names)
    }
}

struct Compare {
    upper: Root,
    /// Skip entries the upper directory does not hold (they are the same
    /// in both views when there are no redirects).
    prune: bool,
    out: Vec<Change>,
}

impl Compare {
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
            if in_old
                && in_new
                && self.prune
                && !matches!(self.upper.walk(&child, false)?, Walk::Found(..))
            {
                continue;
            }
            let after = if in_new { new.stat(&child)? } else { None };
            let before = if in_old { old.stat(&child)? } else { None };
            match (before, after) {
                (None, None) => {}
                (Some(_), None) => self.push(ChangeKind::Deleted, &child),
                (None, Some((n, _))) => {
                    self.push(ChangeKind::Added, &child);
                    if n.st.kind() == libc::S_IFDIR {
                        self.dir(old, new, &child, false)?;
                    }
                }
                (Some((o, op)), Some((n, np))) => {
                    let upper_data = n.st.kind() == libc::S_IFREG && self.upper_has_data(&child)?;
                    let changed = differs(&o, &n, &op, &np, upper_data)?;
                    let at = self.out.len();
                    if changed {
                        self.push(ChangeKind::Modified, &child);
                    }
                    if n.st.kind() == libc::S_IFDIR {
                        self.dir(old, new, &child, o.st.kind() == libc::S_IFDIR)?;
                        if !changed && self.out.len() > at {
                            self.out.insert(at, change(ChangeKind::Modified, &child));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the upper directory holds the data of the regular file `rel`
    /// (copied up whole, not as a metacopy).
    fn upper_has_data(&self, rel: &[u8]) -> Result<bool> {
        let Walk::Found(o, _) = self.upper.walk(rel, false)? else {
            return Ok(false);
        };
        if o.st.kind() != libc::S_IFREG {
            return Ok(false);
        }
        let metacopy = XattrNamespace::Trusted.metacopy().as_bytes();
        let shown = display(&self.upper.path, rel);
        Ok(!fd_xattr_names(&o, &shown)?.iter().any(|n| n == metacopy))
    }

    fn push(&mut self, kind: ChangeKind, rel: &[u8]) {
        self.out.push(change(kind, rel));
    }
}

/// Whether an entry changed between the views: type, mode, owner, xattrs
/// (overlay's own and SELinux labels aside); for non-directories also
/// size, mtime, device and link target; and the content of a regular file
/// whose data the upper directory holds even when size and mtime agree.
fn differs(o: &Opened, n: &Opened, op: &Path, np: &Path, upper_data: bool) -> Result<bool> {
    let (a, b) = (&o.st, &n.st);
    if a.mode != b.mode || a.uid != b.uid || a.gid != b.gid {
        return Ok(true);
    }
    if layer_xattrs(o, op)? != layer_xattrs(n, np)? {
        return Ok(true);
    }
    if a.kind() == libc::S_IFDIR {
        return Ok(false);
    }
    if a.size != b.size || a.mtime != b.mtime || a.mtime_nsec != b.mtime_nsec || a.rdev != b.rdev {
        return Ok(true);
    }
    if a.kind() == libc::S_IFLNK {
        let ta = rustix::fs::readlinkat(&o.fd, "", Vec::new()).map_err(errno("readlinkat", op))?;
        let tb = rustix::fs::readlinkat(&n.fd, "", Vec::new()).map_err(errno("readlinkat", np))?;
        return Ok(ta != tb);
    }
    if a.kind() == libc::S_IFREG && upper_data {
        let mut fa = std::fs::File::from(reopen(o, OFlags::empty(), op)?);
        let mut fb = std::fs::File::from(reopen(n, OFlags::empty(), np)?);
        return Ok(!same_files(&mut fa, &mut fb, op, np)?);
    }
    Ok(false)
}

/// The xattrs a layer records, sorted.
fn layer_xattrs(o: &Opened, shown: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut x = fd_xattrs(o, shown)?;
    x.retain(|(n, _)| !is_overlay_xattr(n) && n.as_slice() != b"security.selinux");
    Ok(x)
}

fn change(kind: ChangeKind, rel: &[u8]) -> Change {
    Change {
        kind,
        path: Path::new("/").join(OsStr::from_bytes(rel)),
    }
}
