//! Diff: an upper directory (overlay form) -> an OCI layer tar.
//!
//! Whiteouts become `.wh.NAME` (empty regular files, mode 0600), an opaque
//! directory is written as the directory then `DIR/.wh..wh..opq`, files
//! that share an inode become hardlinks (whiteouts excepted: the kernel may
//! share one whiteout inode), names are sorted bytewise, long names and
//! xattrs go into PAX records. Upper directories made incomplete by
//! `redirect_dir` or `metacopy` are diffed against their lowers instead
//! (by comparing merged views).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::error::{Error, Result, io_err};
use crate::whiteout::{
    OPAQUE_MARKER, WHITEOUT_PREFIX, XattrNamespace, is_overlay_xattr, is_whiteout, list_xattrs,
    read_xattr,
};

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
pub fn write_diff<W: Write>(upper: &Path, out: W, opts: &DiffOptions) -> Result<W> {
    let ns = XattrNamespace::for_userxattr(opts.userxattr);
    if !opts.lowers.is_empty() && crate::naive::needs_lowers(upper, ns)? {
        return crate::naive::write_naive_diff(upper, &opts.lowers, out);
    }
    let mut w = TarWriter::new(out);
    w.tree(upper, ns)?;
    w.finish()
}

/// Writes tar entries with a reused copy buffer.
pub(crate) struct TarWriter<W: Write> {
    out: BufWriter<W>,
    buf: Vec<u8>,
    /// First path seen of each inode with several links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        TarWriter {
            out: BufWriter::with_capacity(64 << 10, out),
            buf: vec![0; 1 << 20],
            links: HashMap::new(),
        }
    }

    /// Walk `root` depth-first in byte order, writing each entry.
    fn tree(&mut self, root: &Path, ns: XattrNamespace) -> Result<()> {
        let mut stack = vec![(root.to_path_buf(), Vec::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut names: Vec<OsString> = std::fs::read_dir(&dir)
                .map_err(io_err("readdir", &dir))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(io_err("readdir", &dir))?;
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let path = dir.join(&name);
                let mut name_rel = rel.clone();
                if !name_rel.is_empty() {
                    name_rel.push(b'/');
                }
                name_rel.extend_from_slice(name.as_bytes());
                if self.entry(&path, &name_rel, ns)? {
                    subdirs.push((path, name_rel));
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Write the entry for `path` named `rel`; true if it is a directory to
    /// descend into.
    fn entry(&mut self, path: &Path, rel: &[u8], ns: XattrNamespace) -> Result<bool> {
        let meta = std::fs::symlink_metadata(path).map_err(io_err("lstat", path))?;
        if is_whiteout(&meta) {
            let (parent, name) = split(rel);
            let wh = [parent, WHITEOUT_PREFIX.as_bytes(), name].concat();
            self.marker(&wh, &meta, 0o600)?;
            return Ok(false);
        }
        let names = list_xattrs(path)?;
        if names
            .iter()
            .any(|n| n == ns.redirect().as_bytes() || n == ns.metacopy().as_bytes())
        {
            return Err(Error::InvalidMount(format!(
                "{} holds a redirect or metacopy xattr; pass DiffOptions::lowers to diff it",
                path.display()
            )));
        }
        let mut xattrs = Vec::new();
        for n in names
            .iter()
            .filter(|n| !is_overlay_xattr(n) && n.as_slice() != b"security.selinux")
        {
            if let Some(v) = read_xattr(path, &String::from_utf8_lossy(n))? {
                xattrs.push((n.clone(), v));
            }
        }
        let ft = meta.file_type();
        if meta.is_dir() {
            let mut name = rel.to_vec();
            name.push(b'/');
            self.header(&name, &meta, EntryType::Directory, 0, None, &xattrs)?;
            if names.iter().any(|n| n == ns.opaque().as_bytes())
                && read_xattr(path, ns.opaque())?.is_some_and(|v| v == b"y")
            {
                let marker = [rel, b"/", OPAQUE_MARKER.as_bytes()].concat();
                self.marker(&marker, &meta, meta.mode() & 0o7777)?;
            }
            return Ok(true);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                self.header(rel, &meta, EntryType::Link, 0, Some(&first), &xattrs)?;
                return Ok(false);
            }
            self.links.insert(key, rel.to_vec());
        }
        if ft.is_file() {
            self.header(rel, &meta, EntryType::Regular, meta.size(), None, &xattrs)?;
            self.content(path, meta.size())?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(io_err("readlink", path))?;
            self.header(
                rel,
                &meta,
                EntryType::Symlink,
                0,
                Some(target.as_os_str().as_bytes()),
                &xattrs,
            )?;
        } else {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else if ft.is_fifo() {
                EntryType::Fifo
            } else {
                return Ok(false); // sockets are not archived
            };
            self.header(rel, &meta, kind, 0, None, &xattrs)?;
        }
        Ok(false)
    }

    /// A whiteout or opaque marker: an empty regular file.
    fn marker(&mut self, name: &[u8], meta: &std::fs::Metadata, mode: u32) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_mode(mode);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        self.write_header(h, name, None, &[])
    }

    fn header(
        &mut self,
        name: &[u8],
        meta: &std::fs::Metadata,
        kind: EntryType,
        size: u64,
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_entry_type(kind);
        h.set_size(size);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            let rdev = meta.rdev();
            h.set_device_major(rustix::fs::major(rdev))
                .map_err(Error::Write)?;
            h.set_device_minor(rustix::fs::minor(rdev))
                .map_err(Error::Write)?;
        }
        self.write_header(h, name, link, xattrs)
    }

    /// Fill in name and link (PAX records when they do not fit), write the
    /// PAX header if any, then the entry's header.
    fn write_header(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let mut pax: Vec<(Vec<u8>, &[u8])> = Vec::new();
        if !set_name(&mut h, name) {
            pax.push((b"path".to_vec(), name));
        }
        if let Some(link) = link {
            if link.len() <= 100 {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                pax.push((b"linkpath".to_vec(), link));
                h.as_old_mut().linkname[..100].copy_from_slice(&link[..100]);
            }
        }
        for (k, v) in xattrs {
            pax.push(([b"SCHILY.xattr.", k.as_slice()].concat(), v));
        }
        if !pax.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_mode(0o644);
            ph.set_cksum();
            self.out.write_all(ph.as_bytes()).map_err(Error::Write)?;
            self.out.write_all(&data).map_err(Error::Write)?;
            self.pad(data.len() as u64)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(Error::Write)
    }

    /// Copy exactly `size` bytes of `path`, then pad to a block.
    fn content(&mut self, path: &Path, size: u64) -> Result<()> {
        let file = std::fs::File::open(path).map_err(io_err("open", path))?;
        let mut src = file.take(size);
        let mut copied = 0u64;
        loop {
            let n = src.read(&mut self.buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            self.out.write_all(&self.buf[..n]).map_err(Error::Write)?;
            copied += n as u64;
        }
        if copied != size {
            return Err(io_err("read", path)(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            )));
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(Error::Write)?;
        }
        Ok(())
    }

    /// Write the end-of-archive marker and return the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 1024]).map_err(Error::Write)?;
        self.out
            .into_inner()
            .map_err(|e| Error::Write(e.into_error()))
    }
}

/// Store `name` in the ustar name (and prefix) fields, bytes as they are;
/// false (and a truncated name) when it needs a PAX `path` record.
fn set_name(h: &mut Header, name: &[u8]) -> bool {
    if name.len() <= 100 {
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        return true;
    }
    let split = name[..name.len().min(156)]
        .iter()
        .rposition(|&b| b == b'/')
        .filter(|&i| i > 0 && name.len() - i - 1 <= 100);
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    match split {
        Some(i) => {
            ustar.prefix[..i].copy_from_slice(&name[..i]);
            ustar.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            true
        }
        None => {
            ustar.name.copy_from_slice(&name[..100]);
            false
        }
    }
}

/// One PAX record: `<len> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&b""[..], rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"a");
        assert_eq!(v, b"9 path=a\n");
        let mut v = Vec::new();
        pax_record(&mut v, b"path", &[b'x'; 92]);
        assert_eq!(&v[..4], b"102 ");
        assert_eq!(v.len(), 102);
    }
}
