//! Reading members of an input archive: a directory or an uncompressed tar
//! indexed in place (members are read with `pread`, nothing is copied).
//!
//! Every member name is resolved inside the archive: a name whose `..`
//! would leave it, or an absolute name, is [`Error::UnsafePath`]. Symlink
//! and hardlink members are followed as `docker load` follows them (it
//! extracts the archive in a chroot): an absolute target starts at the
//! archive root and `..` stops at the root, so nothing outside is reached.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dunnage_layerstore::Compression;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};
use crate::fsutil::read_limited;

const MAX_LINKS: usize = 40;

enum Member {
    File {
        offset: u64,
        size: u64,
    },
    Symlink(String),
    /// A hardlink to another member (its name, resolved in the root).
    Hardlink(Vec<String>),
    Other,
}

enum Kind {
    Dir(File),
    Tar {
        file: File,
        members: HashMap<String, Member>,
    },
}

/// An opened input archive.
pub(crate) struct Source {
    path: PathBuf,
    kind: Kind,
}

impl Source {
    /// Open a directory, or index an uncompressed tar file.
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
        if meta.is_dir() {
            return Ok(Source {
                path: path.to_path_buf(),
                kind: Kind::Dir(file),
            });
        }
        Source::from_tar(file, path)
    }

    /// Index an uncompressed tar; `label` names it in errors.
    pub(crate) fn from_tar(file: File, label: &Path) -> Result<Source> {
        let mut members = HashMap::new();
        let bad_tar = |e: io::Error| Error::UnknownFormat {
            path: label.to_path_buf(),
            reason: format!("not a tar archive: {e}"),
        };
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries_with_seek().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let raw_name = entry.path().map_err(bad_tar)?;
            let Some(text) = raw_name.to_str() else {
                continue;
            };
            let name = clean(label, &[], text)?.join("/");
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => match entry.link_name().map_err(bad_tar)? {
                    Some(t) => Member::Symlink(t.to_string_lossy().into_owned()),
                    None => Member::Other,
                },
                tar::EntryType::Link => match entry.link_name().map_err(bad_tar)? {
                    Some(t) => Member::Hardlink(in_root(&[], &t.to_string_lossy())),
                    None => Member::Other,
                },
                _ => Member::Other,
            };
            if !name.is_empty() {
                members.insert(name, member);
            }
        }
        Ok(Source {
            path: label.to_path_buf(),
            kind: Kind::Tar { file, members },
        })
    }

    /// The archive's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Open member `name`; `None` when it does not exist.
    pub(crate) fn open_member(
        &self,
        name: &str,
    ) -> Result<Option<(Box<dyn Read + Send + '_>, u64)>> {
        match &self.kind {
            Kind::Dir(root) => {
                let rel = clean(&self.path, &[], name)?.join("/");
                if rel.is_empty() {
                    return Ok(None);
                }
                let how = rustix::fs::openat2(
                    root,
                    rel.as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                );
                let fd = match how {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(Error::io("openat2", self.path.join(&rel), e.into())),
                };
                let file = File::from(fd);
                let meta = file
                    .metadata()
                    .map_err(|e| Error::io("stat", self.path.join(&rel), e))?;
                if !meta.is_file() {
                    return Ok(None);
                }
                Ok(Some((Box::new(file), meta.len())))
            }
            Kind::Tar { file, members } => {
                let mut comps = clean(&self.path, &[], name)?;
                for _ in 0..MAX_LINKS {
                    let link =
                        (1..=comps.len()).find_map(|i| match members.get(&comps[..i].join("/")) {
                            Some(Member::Symlink(t)) => Some((i, t)),
                            _ => None,
                        });
                    let Some((i, target)) = link else {
                        match members.get(&comps.join("/")) {
                            Some(&Member::File { offset, size }) => {
                                let slice = Slice {
                                    file,
                                    pos: offset,
                                    end: offset + size,
                                };
                                return Ok(Some((Box::new(slice), size)));
                            }
                            Some(Member::Hardlink(target)) => {
                                comps = target.clone();
                                continue;
                            }
                            _ => return Ok(None),
                        }
                    };
                    let mut next = in_root(&comps[..i - 1], target);
                    next.extend_from_slice(&comps[i..]);
                    comps = next;
                }
                Err(Error::UnsafePath {
                    archive: self.path.clone(),
                    member: name.to_string(),
                })
            }
        }
    }

    /// Read a JSON member of at most `limit` bytes; `None` when absent.
    pub(crate) fn read_member(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((r, size)) = self.open_member(name)? else {
            return Ok(None);
        };
        let what = format!("{}:{name}", self.path.display());
        if size > limit {
            return Err(Error::TooLarge { what, limit });
        }
        read_limited(r, limit, &what).map(Some)
    }
}

/// A byte range of the tar file, read with `pread`.
struct Slice<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar member truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Resolve `name` lexically below `base` (components): `.` and empty parts
/// dropped, `..` pops; leaving the root or an absolute name below a base is
/// unsafe. An absolute `name` starts from the archive root.
fn clean(archive: &Path, base: &[String], name: &str) -> Result<Vec<String>> {
    let unsafe_path = || Error::UnsafePath {
        archive: archive.to_path_buf(),
        member: name.to_string(),
    };
    let mut out: Vec<String> = if name.starts_with('/') {
        Vec::new()
    } else {
        base.to_vec()
    };
    if name.starts_with('/') && base.is_empty() {
        return Err(unsafe_path());
    }
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop().ok_or_else(unsafe_path)?;
            }
            p => out.push(p.to_string()),
        }
    }
    Ok(out)
}

/// Resolve a link target found in directory `base` (components) the way
/// a chroot does: an absolute target starts at the root, `..` at the root
/// stays there.
fn in_root(base: &[String], target: &str) -> Vec<String> {
    let mut out: Vec<String> = if target.starts_with('/') {
        Vec::new()
    } else {
        base.to_vec()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out
}

/// The name of a compression, for messages.
pub(crate) fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Bzip2 => "bzip2",
        Compression::Xz => "xz",
    }
}

/// The first bytes of `r` (enough to tell any compression), and a reader of
/// the whole stream again.
fn sniff<'a, R: Read + 'a>(mut r: R, what: &str) -> Result<(Compression, impl Read + 'a)> {
    let mut head = [0u8; 6];
    let n = read_up_to(&mut r, &mut head).map_err(|e| Error::io("read", what, e))?;
    let kind = Compression::detect(&head[..n]);
    Ok((kind, io::Cursor::new(head[..n].to_vec()).chain(r)))
}

/// Peek at `r` and return a reader of its decompressed bytes; `what` names
/// the stream in errors.
///
/// Only gzip and zstd are read; bzip2 and xz are
/// [`Error::UnsupportedCompression`]. A stream whose decompressed bytes
/// start with a compression magic again is [`Error::NestedCompression`]: a
/// second layer would escape the expansion limits counted on the first.
pub(crate) fn decompress<'a, R: Read + 'a>(
    r: R,
    what: &str,
) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let (outer, whole) = sniff(r, what)?;
    let whole = BufReader::with_capacity(256 << 10, whole);
    let decoded: Box<dyn Read + 'a> = match outer {
        Compression::None => return Ok((outer, Box::new(whole))),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(whole)
                .map_err(|e| Error::io("zstd", what, e))?,
        ),
        Compression::Bzip2 | Compression::Xz => {
            return Err(Error::UnsupportedCompression {
                what: what.to_string(),
                compression: compression_name(outer),
            });
        }
    };
    let (inner, decoded) = sniff(decoded, what)?;
    if inner != Compression::None {
        return Err(Error::NestedCompression {
            what: what.to_string(),
            outer: compression_name(outer),
            inner: compression_name(inner),
        });
    }
    Ok((outer, Box::new(decoded)))
}

/// Read until `buf` is full or the stream ends; the number of bytes read.
pub(crate) fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_stays_inside_the_archive() {
        let a = Path::new("a.tar");
        assert_eq!(clean(a, &[], "./x//y/./z").unwrap(), ["x", "y", "z"]);
        assert_eq!(clean(a, &[], "x/../y").unwrap(), ["y"]);
        assert!(clean(a, &[], "../etc/passwd").is_err());
        assert!(clean(a, &[], "x/../../y").is_err());
        assert!(clean(a, &[], "/etc/passwd").is_err());
        let base = ["d".to_string()];
        assert_eq!(clean(a, &base, "/blobs/x").unwrap(), ["blobs", "x"]);
        assert_eq!(clean(a, &base, "../blobs/x").unwrap(), ["blobs", "x"]);
        assert!(clean(a, &base, "../../x").is_err());
        assert_eq!(in_root(&base, "../../../x"), ["x"]);
        assert_eq!(in_root(&base, "/etc/../blobs"), ["blobs"]);
        assert_eq!(in_root(&base, "y"), ["d", "y"]);
    }
}
