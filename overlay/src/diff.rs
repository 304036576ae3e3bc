//! Diff: an upper directory (overlay form) -> an OCI layer tar.
//!
//! Whiteouts become `.wh.NAME` (empty regular files, mode 0600), an opaque
//! directory is written as the directory then `DIR/.wh..wh..opq` (its
//! owner and permission bits, time 0, as Docker writes it), header modes
//! carry the file type bits as Go's archive/tar writes them, files
//! that share an inode become hardlinks (whiteouts excepted: the kernel may
//! share one whiteout inode), names are sorted bytewise and written depth
//! first, long names, xattrs and times ustar cannot hold (before 1970)
//! go into PAX records. Upper directories made incomplete by `redirect_dir`
//! or `metacopy` are diffed against their lowers instead (by comparing
//! merged views).
//!
//! # Names a layer cannot carry
//!
//! A layer spells whiteouts as names starting with `.wh.`, so a real file
//! or directory with such a name (a container may create `.wh.victim`)
//! cannot be represented: the diff fails with
//! [`Error::UnrepresentableName`] instead of writing a layer that would
//! delete `victim` when applied.
//!
//! # A directory that changes while it is read
//!
//! The upper directory of a running container changes under the diff. The
//! walk never follows a path twice: every entry is opened once relative to
//! its parent's fd with `O_PATH | O_NOFOLLOW`, its metadata is that fd's
//! `fstat`, and regular files and directories are read through a reopen
//! of the same fd (`/proc/self/fd/N`, `O_NONBLOCK`). A file swapped for a
//! symlink is archived as the symlink; special files are never opened; an
//! entry that vanishes is left out.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::{Error, Result, errno};
use crate::root::dir_names;
use crate::tarwrite::{EntryStat, TarWriter, whiteout_name};
use crate::whiteout::{OPAQUE_MARKER, WHITEOUT_PREFIX, XattrNamespace, is_overlay_xattr};

/// How [`write_diff`] reads an upper directory.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// The layers below the upper directory, nearest first. When given and
    /// the upper directory holds redirects or metacopy files, the diff is
    /// computed by comparing merged views instead (needs mount privilege).
    pub lowers: Vec<PathBuf>,
    /// Read opaque/redirect marks from `user.overlay.*` (overlays mounted
    /// with `userxattr`) instead of `trusted.overlay.*`.
    pub userxattr: bool,
}

/// Write the OCI layer tar of the upper directory `upper` to `out`, and
/// return `out` once the end-of-archive marker is written.
///
/// Fails with [`Error::UnrepresentableName`] for an entry named `.wh.*`
/// that is not an overlay whiteout, and with [`Error::NeedsLowers`] for
/// redirect or metacopy marks when no lowers are given.
pub fn write_diff<W: Write>(upper: &Path, out: W, opts: &DiffOptions) -> Result<W> {
    let ns = XattrNamespace::for_userxattr(opts.userxattr);
    if !opts.lowers.is_empty() && crate::naive::needs_lowers(upper, ns)? {
        return crate::naive::write_naive_diff(upper, &opts.lowers, out);
    }
    let root = open_dir_path(upper)?;
    let mut w = TarWriter::new(out);
    tree(&mut w, root, upper, ns)?;
    w.finish()
}

/// Open the directory `path` for reading its entries.
pub(crate) fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("open", path))
}

/// Walk the directory open as `root` (at `path`, for errors) depth first
/// in byte order, writing each entry. Only as many fds as the tree is deep
/// are open at once.
fn tree<W: Write>(
    w: &mut TarWriter<W>,
    root: OwnedFd,
    path: &Path,
    ns: XattrNamespace,
) -> Result<()> {
    struct Level {
        fd: OwnedFd,
        rel: Vec<u8>,
        names: std::vec::IntoIter<OsString>,
    }
    let level = |fd: OwnedFd, rel: Vec<u8>| -> Result<Level> {
        let mut names = dir_names(fd.as_fd()).map_err(errno("getdents", &display(path, &rel)))?;
        names.sort();
        Ok(Level {
            fd,
            rel,
            names: names.into_iter(),
        })
    };
    let mut stack = vec![level(root, Vec::new())?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            stack.pop();
            continue;
        };
        let rel = join(&top.rel, name.as_bytes());
        let ctx = Ctx { root: path, ns };
        if let Some(sub) = entry(w, top.fd.as_fd(), &name, &rel, &ctx)? {
            stack.push(level(sub, rel)?);
        }
    }
    Ok(())
}

/// Where the walk runs, for marks and error messages.
pub(crate) struct Ctx<'a> {
    /// The directory diffed.
    pub(crate) root: &'a Path,
    /// Where overlay keeps its marks.
    pub(crate) ns: XattrNamespace,
}

/// One entry, opened with `O_PATH | O_NOFOLLOW` below its parent's fd.
pub(crate) struct Opened {
    pub(crate) fd: OwnedFd,
    pub(crate) st: EntryStat,
}

/// Open `name` in `dir` without following it; `None` when it vanished.
pub(crate) fn open_entry(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Option<Opened>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(errno("openat", path)(e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(errno("fstat", path))?;
    Ok(Some(Opened {
        fd,
        st: EntryStat::from_stat(&st),
    }))
}

/// Reopen an `O_PATH` fd for reading, as the same inode (through
/// `/proc/self/fd`), and check it is still the inode examined.
pub(crate) fn reopen(o: &Opened, flags: OFlags, path: &Path) -> Result<OwnedFd> {
    let proc = format!("/proc/self/fd/{}", o.fd.as_raw_fd());
    let fd = rustix::fs::open(
        proc.as_str(),
        flags | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("open", path))?;
    let st = rustix::fs::fstat(&fd).map_err(errno("fstat", path))?;
    if (st.st_dev, st.st_ino) != (o.st.dev, o.st.ino) || st.st_mode & libc::S_IFMT != o.st.kind() {
        return Err(Error::ChangedDuringDiff {
            path: path.to_path_buf(),
            reason: "reopened a different inode",
        });
    }
    Ok(fd)
}

/// Write the entry `name` of `dir` (`rel` in the layer); the directory's
/// fd when it is one to descend into.
pub(crate) fn entry<W: Write>(
    w: &mut TarWriter<W>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    rel: &[u8],
    ctx: &Ctx<'_>,
) -> Result<Option<OwnedFd>> {
    let path = display(ctx.root, rel);
    let Some(o) = open_entry(dir, name, &path)? else {
        return Ok(None);
    };
    let st = o.st;
    if st.kind() == libc::S_IFCHR && st.rdev == 0 {
        w.marker(&whiteout_name(rel), &st, 0o600)?;
        return Ok(None);
    }
    if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
        return Err(Error::UnrepresentableName { path });
    }
    let all = fd_xattrs(&o, &path)?;
    if all
        .iter()
        .any(|(n, _)| n == ctx.ns.redirect().as_bytes() || n == ctx.ns.metacopy().as_bytes())
    {
        return Err(Error::NeedsLowers { path });
    }
    let opaque = all
        .iter()
        .any(|(n, v)| n == ctx.ns.opaque().as_bytes() && v == b"y");
    let xattrs: Vec<_> = all
        .into_iter()
        .filter(|(n, _)| !is_overlay_xattr(n) && n.as_slice() != b"security.selinux")
        .collect();
    match st.kind() {
        libc::S_IFDIR => {
            let sub = reopen(&o, OFlags::DIRECTORY, &path)?;
            w.header(
                &[rel, b"/"].concat(),
                &st,
                EntryType::Directory,
                0,
                None,
                &xattrs,
            )?;
            if opaque {
                let marker = [rel, b"/", OPAQUE_MARKER.as_bytes()].concat();
                w.opaque_marker(&marker, &st)?;
            }
            return Ok(Some(sub));
        }
        libc::S_IFSOCK => return Ok(None), // sockets are not archived
        _ => {}
    }
    if let Some(first) = w.link_target(&st, rel) {
        w.header(rel, &st, EntryType::Link, 0, Some(&first), &xattrs)?;
        return Ok(None);
    }
    match st.kind() {
        libc::S_IFREG => {
            let file = std::fs::File::from(reopen(&o, OFlags::empty(), &path)?);
            w.header(rel, &st, EntryType::Regular, st.size, None, &xattrs)?;
            w.content(&file, st.size, &path)?;
        }
        libc::S_IFLNK => {
            let target = rustix::fs::readlinkat(&o.fd, "", Vec::new())
                .map_err(errno("readlinkat", &path))?;
            let target = target.as_bytes();
            w.header(rel, &st, EntryType::Symlink, 0, Some(target), &xattrs)?;
        }
        kind => {
            let kind = match kind {
                libc::S_IFCHR => EntryType::Char,
                libc::S_IFBLK => EntryType::Block,
                _ => EntryType::Fifo,
            };
            w.header(rel, &st, kind, 0, None, &xattrs)?;
        }
    }
    Ok(None)
}

/// Write the entry at `path` (a merged view of ours) named `rel`; the
/// directory's fd when it is one. Errors name `shown/rel` (the upper
/// directory the view shows).
pub(crate) fn write_path_entry<W: Write>(
    w: &mut TarWriter<W>,
    path: &Path,
    rel: &[u8],
    shown: &Path,
) -> Result<Option<OwnedFd>> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or(OsStr::new("."));
    let dir = open_dir_path(parent)?;
    let ctx = Ctx {
        root: shown,
        ns: XattrNamespace::Trusted,
    };
    entry(w, dir.as_fd(), name, rel, &ctx)
}

/// The xattr names of an opened entry, read through `/proc/self/fd/N`: an
/// `O_PATH` fd has no xattr calls of its own.
pub(crate) fn fd_xattr_names(o: &Opened, path: &Path) -> Result<Vec<Vec<u8>>> {
    let proc = format!("/proc/self/fd/{}", o.fd.as_raw_fd());
    let proc = proc.as_str();
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::listxattr(proc, &mut buf[..]) {
            Ok(n) => break n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(Errno::RANGE) => {
                let n = rustix::fs::listxattr(proc, &mut [0u8; 0][..])
                    .map_err(errno("listxattr", path))?;
                buf.resize(n.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(errno("listxattr", path)(e)),
        }
    };
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The xattrs of an opened entry (names and values), sorted.
pub(crate) fn fd_xattrs(o: &Opened, path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let proc = format!("/proc/self/fd/{}", o.fd.as_raw_fd());
    let proc = proc.as_str();
    let mut out = Vec::new();
    for name in fd_xattr_names(o, path)? {
        let name = name.as_slice();
        let mut val = vec![0u8; 256];
        loop {
            match rustix::fs::getxattr(proc, OsStr::from_bytes(name), &mut val[..]) {
                Ok(n) => {
                    val.truncate(n);
                    out.push((name.to_vec(), val));
                    break;
                }
                // Removed since it was listed.
                Err(Errno::NODATA) => break,
                Err(Errno::RANGE) => {
                    let n = rustix::fs::getxattr(proc, OsStr::from_bytes(name), &mut [0u8; 0][..])
                        .map_err(errno("getxattr", path))?;
                    val.resize(n.max(val.len() * 2), 0);
                }
                Err(e) => return Err(errno("getxattr", path)(e)),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `root/rel`, for messages.
pub(crate) fn display(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// `rel/name`, or `name` at the top.
pub(crate) fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}
