//! Diff by comparing merged views, for upper directories that
//! `redirect_dir` or `metacopy` made incomplete (a renamed directory's
//! contents or a metacopy file's data live in the lowers).
//!
//! Both views are read-only overlay mounts in a private temporary
//! directory: the old one of the lowers alone, the new one with the upper
//! directory as its top-most lower. Entries that differ in type, mode,
//! owner, link count, xattrs, size, mtime, device or link target are
//! written, and so are regular files whose data the upper directory holds
//! (copied up whole, not metacopy) when their content differs although size
//! and mtime agree; entries only in the old view become whiteouts;
//! unchanged parents of changed entries are written before them. A new
//! hardlink to a lower file changes the link count of every name of the
//! inode, so all are written, the later ones as tar hardlinks.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::OFlags;

use crate::diff::{
    display, fd_xattr_names, join, open_dir_path, open_entry, reopen, write_path_entry,
};
use crate::error::{Result, errno, io_err};
use crate::mount::{Mount, MountOptions, unmount};
use crate::root::dir_names;
use crate::tarwrite::TarWriter;
use crate::whiteout::{XattrNamespace, is_metacopy, is_overlay_xattr, list_xattrs, read_xattr};

/// Whether any entry below `upper` carries a redirect or metacopy xattr.
/// Walks by directory fds without following symlinks, as the diff does.
pub(crate) fn needs_lowers(upper: &Path, ns: XattrNamespace) -> Result<bool> {
    let marks = [ns.redirect().as_bytes(), ns.metacopy().as_bytes()];
    let level =
        |fd: OwnedFd, rel: Vec<u8>| -> Result<(OwnedFd, Vec<u8>, std::vec::IntoIter<OsString>)> {
            let names = dir_names(fd.as_fd()).map_err(errno("getdents", &display(upper, &rel)))?;
            Ok((fd, rel, names.into_iter()))
        };
    let mut stack = vec![level(open_dir_path(upper)?, Vec::new())?];
    while let Some((dir, rel, names)) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            continue;
        };
        let child = join(rel, name.as_bytes());
        let path = display(upper, &child);
        let Some(o) = open_entry(dir.as_fd(), &name, &path)? else {
            continue;
        };
        if fd_xattr_names(&o, &path)?
            .iter()
            .any(|n| marks.contains(&n.as_slice()))
        {
            return Ok(true);
        }
        if o.st.kind() == libc::S_IFDIR {
            let sub = reopen(&o, OFlags::DIRECTORY, &path)?;
            stack.push(level(sub, child)?);
        }
    }
    Ok(false)
}

/// Write the diff of `upper` over `lowers` (nearest first) by comparing
/// merged views.
pub(crate) fn write_naive_diff<W: Write>(upper: &Path, lowers: &[PathBuf], out: W) -> Result<W> {
    let views = Views::mount(upper, lowers)?;
    let mut cmp = Compare {
        w: TarWriter::new(out),
        upper: upper.to_path_buf(),
        pending: Vec::new(),
    };
    cmp.dir(Some(&views.before()), &views.after(), b"")?;
    cmp.w.finish()
}

/// The two read-only views, unmounted and removed on drop.
pub(crate) struct Views {
    dir: PathBuf,
}

impl Views {
    pub(crate) fn mount(upper: &Path, lowers: &[PathBuf]) -> Result<Views> {
        use std::os::unix::fs::DirBuilderExt;
        // A fresh name, created exclusively (an existing name or a planted
        // symlink fails the mkdir), private to root.
        let name = dunnage_base::rand::random_hex(8)
            .map_err(io_err("getrandom", &std::env::temp_dir()))?;
        let dir = std::env::temp_dir().join(format!("dunnage-overlay-naive-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        let views = Views { dir };
        for d in ["old", "new", "empty"] {
            let p = views.dir.join(d);
            std::fs::create_dir(&p).map_err(io_err("mkdir", &p))?;
        }
        let options = MountOptions {
            metacopy: Some(true),
            ..Default::default()
        };
        let mut old = Mount::new(views.before());
        old.lowers = lowers.to_vec();
        old.lowers.push(views.dir.join("empty"));
        old.read_only = true;
        old.options = options.clone();
        old.mount()?;
        let mut new = Mount::new(views.after());
        new.lowers = std::iter::once(upper.to_path_buf())
            .chain(lowers.iter().cloned())
            .collect();
        new.read_only = true;
        new.options = options;
        new.mount()?;
        Ok(views)
    }

    pub(crate) fn before(&self) -> PathBuf {
        self.dir.join("old")
    }

    pub(crate) fn after(&self) -> PathBuf {
        self.dir.join("new")
    }
}

impl Drop for Views {
    fn drop(&mut self) {
        let _ = unmount(&self.after());
        let _ = unmount(&self.before());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Compare<W: Write> {
    w: TarWriter<W>,
    /// The upper directory diffed.
    upper: PathBuf,
    /// Directories on the current path not written yet.
    pending: Vec<(PathBuf, Vec<u8>)>,
}

impl<W: Write> Compare<W> {
    /// Compare the directory `new` with `old` (absent when added).
    fn dir(&mut self, old: Option<&Path>, new: &Path, rel: &[u8]) -> Result<()> {
        let mut names: BTreeSet<OsString> = names_of(new)?;
        let old_names = match old {
            Some(o) => names_of(o)?,
            None => BTreeSet::new(),
        };
        names.extend(old_names.iter().cloned());
        for name in names {
            let child_rel = join(rel, name.as_encoded_bytes());
            let n = new.join(&name);
            let o = old.map(|o| o.join(&name));
            let nm = lstat(&n)?;
            let om = match &o {
                Some(o) if old_names.contains(&name) => {
                    Some(std::fs::symlink_metadata(o).map_err(io_err("lstat", o))?)
                }
                _ => None,
            };
            match (om, nm) {
                (Some(_), None) => {
                    self.flush()?;
                    self.w.whiteout(&child_rel)?;
                }
                (None, Some(nm)) => {
                    self.flush()?;
                    write_path_entry(&mut self.w, &n, &child_rel, &self.upper)?;
                    if nm.is_dir() {
                        self.dir(None, &n, &child_rel)?;
                    }
                }
                (Some(om), Some(nm)) => {
                    let before = self.pending.len();
                    let old_path = o.as_deref().unwrap_or(&n);
                    let upper_data = nm.is_file() && upper_has_data(&self.upper, &child_rel)?;
                    if differs(&om, &nm, old_path, &n, upper_data, true)? {
                        self.flush()?;
                        write_path_entry(&mut self.w, &n, &child_rel, &self.upper)?;
                    } else if nm.is_dir() {
                        self.pending.push((n.clone(), child_rel.clone()));
                    }
                    if nm.is_dir() {
                        self.dir(
                            if om.is_dir() { o.as_deref() } else { None },
                            &n,
                            &child_rel,
                        )?;
                    }
                    // Still pending: nothing below changed.
                    self.pending.truncate(before.min(self.pending.len()));
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Write the pending parent directories.
    fn flush(&mut self) -> Result<()> {
        for (path, rel) in std::mem::take(&mut self.pending) {
            write_path_entry(&mut self.w, &path, &rel, &self.upper)?;
        }
        Ok(())
    }
}

/// Whether an entry changed between the views: type, mode, owner, link
/// count (a new hardlink to a lower file), xattrs; for non-directories
/// also size, mtime, device and link target; and the content of a regular
/// file whose data was copied up (`upper_data`) even when size and mtime
/// agree (a same-size edit with its mtime set back). Link counts are
/// compared only when `links`.
pub(crate) fn differs(
    om: &std::fs::Metadata,
    nm: &std::fs::Metadata,
    old: &Path,
    new: &Path,
    upper_data: bool,
    links: bool,
) -> Result<bool> {
    if om.mode() != nm.mode() || om.uid() != nm.uid() || om.gid() != nm.gid() {
        return Ok(true);
    }
    if content_xattrs(old)? != content_xattrs(new)? {
        return Ok(true);
    }
    if om.is_dir() {
        return Ok(false);
    }
    if (links && om.nlink() != nm.nlink())
        || om.size() != nm.size()
        || om.mtime() != nm.mtime()
        || om.mtime_nsec() != nm.mtime_nsec()
        || om.rdev() != nm.rdev()
    {
        return Ok(true);
    }
    if om.file_type().is_symlink() {
        let a = std::fs::read_link(old).map_err(io_err("readlink", old))?;
        let b = std::fs::read_link(new).map_err(io_err("readlink", new))?;
        return Ok(a != b);
    }
    if om.file_type().is_file() && upper_data {
        return Ok(!same_content(old, new)?);
    }
    Ok(false)
}

/// An xattr's name and value (`None`: removed since it was listed).
type Xattr = (Vec<u8>, Option<Vec<u8>>);

/// The xattrs a layer records (overlay's own and SELinux labels left out),
/// sorted.
fn content_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in list_xattrs(path)? {
        if is_overlay_xattr(&name) || name == b"security.selinux" {
            continue;
        }
        let value = read_xattr(path, &String::from_utf8_lossy(&name))?;
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

/// Whether two regular files of the same size hold the same bytes.
fn same_content(a: &Path, b: &Path) -> Result<bool> {
    // Never follow a symlink or block on a FIFO swapped in since the lstat.
    let open = |p: &Path| -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(p)
            .map_err(io_err("open", p))?;
        let m = f.metadata().map_err(io_err("fstat", p))?;
        if !m.is_file() {
            return Err(crate::error::Error::ChangedDuringDiff {
                path: p.to_path_buf(),
                reason: "no longer a regular file",
            });
        }
        Ok(f)
    };
    same_files(&mut open(a)?, &mut open(b)?, a, b)
}

/// Whether two open files (at `a` and `b`, for errors) hold the same bytes.
pub(crate) fn same_files(
    fa: &mut std::fs::File,
    fb: &mut std::fs::File,
    a: &Path,
    b: &Path,
) -> Result<bool> {
    use std::io::Read;
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let na = read_full(fa, &mut ba).map_err(io_err("read", a))?;
        let nb = read_full(fb, &mut bb).map_err(io_err("read", b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Whether the upper directory holds the data of the regular file `rel`
/// (it was copied up whole, not as a metacopy).
pub(crate) fn upper_has_data(upper: &Path, rel: &[u8]) -> Result<bool> {
    let p = upper.join(std::ffi::OsStr::from_bytes(rel));
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => Ok(!is_metacopy(&p, XattrNamespace::Trusted)?),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
        Err(e) => Err(io_err("lstat", &p)(e)),
    }
}

fn lstat(p: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("lstat", p)(e)),
    }
}

fn names_of(dir: &Path) -> Result<BTreeSet<OsString>> {
    std::fs::read_dir(dir)
        .map_err(io_err("readdir", dir))?
        .map(|e| e.map(|e| e.file_name()).map_err(io_err("readdir", dir)))
        .collect()
}
