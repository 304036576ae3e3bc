//! Reading the members of a layer tar the way Go's `archive/tar` (Docker's
//! reader) delimits them.
//!
//! The `tar` crate's raw mode takes every member's size from its header
//! block, so a PAX `size` record (how Go writes files of 8 GiB and more, with
//! 0 in the header) and header-only types with a non-zero size field would
//! be read differently from Docker. Here the caller decides each member's
//! data size after reading its header and extensions:
//!
//! - link, symlink, character and block device, directory and FIFO members
//!   carry no data, whatever their size field says;
//! - otherwise a PAX `size` record overrides the header's size field;
//! - the archive ends at two zero blocks, at one zero block followed by the
//!   end of the stream, or at the end of the stream on a header boundary
//!   (a tar without its end-of-archive blocks); a zero block followed by a
//!   non-zero block, or a stream ending inside a block, is an error.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use tar::Header;

use crate::error::{Error, Result};

const BLOCK: u64 = 512;

/// The members of a tar stream, read sequentially.
pub(crate) struct Members<R> {
    inner: R,
    /// Data bytes of the current member not read yet.
    left: u64,
    /// Padding after the current member's data.
    pad: u64,
}

impl<R: BufRead> Members<R> {
    pub(crate) fn new(inner: R) -> Members<R> {
        Members {
            inner,
            left: 0,
            pad: 0,
        }
    }

    /// The next header block, after skipping what is left of the current
    /// member; `None` at the end of the archive.
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>> {
        let mut skip = self.left.saturating_add(self.pad);
        (self.left, self.pad) = (0, 0);
        while skip > 0 {
            let avail = match self.inner.fill_buf() {
                Ok([]) => return Err(truncated("inside a member's data")),
                Ok(b) => b.len(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Archive(e)),
            };
            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(avail);
            self.inner.consume(n);
            skip -= n as u64;
        }
        let mut header = Header::new_old();
        if !self.read_block(header.as_mut_bytes())? {
            return Ok(None);
        }
        if header.as_bytes().iter().all(|&b| b == 0) {
            let mut second = [0u8; BLOCK as usize];
            if self.read_block(&mut second)? && second.iter().any(|&b| b != 0) {
                return Err(Error::Archive(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a zero block followed by a non-zero block",
                )));
            }
            return Ok(None);
        }
        if !checksum_ok(header.as_bytes()) {
            return Err(Error::Archive(io::Error::new(
                io::ErrorKind::InvalidData,
                "archive header checksum mismatch",
            )));
        }
        Ok(Some(header))
    }

    /// The current member has `size` bytes of data (then padding to a block).
    pub(crate) fn begin_data(&mut self, size: u64) {
        self.left = size;
        self.pad = (BLOCK - size % BLOCK) % BLOCK;
    }

    /// Write the rest of the current member's data to `file` straight from
    /// the reader's buffer (no copy in between); returns the bytes written.
    /// A stream ending early is an archive error, a failed write an I/O
    /// error on `path()`.
    pub(crate) fn copy_data(
        &mut self,
        file: &mut std::fs::File,
        path: impl Fn() -> PathBuf,
    ) -> Result<u64> {
        let mut written = 0;
        while self.left > 0 {
            let chunk = match self.inner.fill_buf() {
                Ok([]) => return Err(truncated("inside a member's data")),
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Archive(e)),
            };
            let n = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            file.write_all(&chunk[..n]).map_err(|source| Error::Io {
                op: "write",
                path: path(),
                source,
            })?;
            self.inner.consume(n);
            self.left -= n as u64;
            written += n as u64;
        }
        Ok(written)
    }

    /// Read one block: false at a clean end of stream (no byte read).
    fn read_block(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) if n == 0 => return Ok(false),
                Ok(0) => return Err(truncated("inside a header block")),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Archive(e)),
            }
        }
        Ok(true)
    }
}

impl<R: BufRead> Read for Members<R> {
    /// The current member's data; a stream ending early is `UnexpectedEof`.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member's data",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn truncated(where_: &str) -> Error {
    Error::Archive(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("archive ends {where_}"),
    ))
}

/// Whether a member of type `kind` carries no data in Go's reader.
pub(crate) fn header_only(kind: u8, path: &[u8]) -> bool {
    matches!(kind, b'1'..=b'6') || (kind == 0 && path.ends_with(b"/"))
}

/// Whether the checksum field matches the block (unsigned or signed sum, as
/// Go accepts both).
fn checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let text: Vec<u8> = field
        .iter()
        .copied()
        .filter(|&b| b != 0 && b != b' ')
        .collect();
    let Some(want) = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| i64::from_str_radix(s, 8).ok())
    else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || want == signed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(name: &str, kind: u8, size: u64) -> Vec<u8> {
        let mut h = Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn an_archive_may_end_without_its_end_blocks_or_after_one() {
        for tail in [&[][..], &[0u8; 512][..], &[0u8; 1024][..]] {
            let mut data = block("f", b'0', 3);
            data.extend_from_slice(b"abc");
            data.resize(1024, 0);
            data.extend_from_slice(tail);
            let mut m = Members::new(&data[..]);
            assert!(m.next_header().unwrap().is_some());
            m.begin_data(3);
            assert!(m.next_header().unwrap().is_none());
        }
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors() {
        let data = block("f", b'0', 3);
        let mut m = Members::new(&data[..100]);
        assert!(m.next_header().is_err());
        let mut m = Members::new(&data[..]);
        m.next_header().unwrap();
        m.begin_data(3);
        assert!(m.next_header().is_err(), "data missing");
        let mut bad = data.clone();
        bad[0] ^= 1;
        assert!(Members::new(&bad[..]).next_header().is_err());
        let mut zero_then = vec![0u8; 512];
        zero_then.extend_from_slice(&data);
        assert!(Members::new(&zero_then[..]).next_header().is_err());
    }

    #[test]
    fn header_only_types_follow_go() {
        assert!(header_only(b'1', b"l") && header_only(b'5', b"d"));
        assert!(header_only(0, b"d/") && !header_only(b'0', b"f/"));
        assert!(!header_only(b'0', b"f") && !header_only(b'7', b"f"));
    }
}
