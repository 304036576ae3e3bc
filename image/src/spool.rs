//! Spooling streams into the store's scratch space, bounded: a byte limit,
//! and a reserve of free space the file system keeps (so that `load -i
//! /dev/zero` cannot fill the disk), plus a first look that refuses input
//! that is not an archive before anything is spooled.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::Compression;

use crate::error::{Error, Result};

/// How often (in bytes written) the free space is checked.
const CHECK_EVERY: u64 = 64 << 20;

/// Copy `r` into `file`: at most `limit` bytes ([`Error::TooLarge`]), and
/// never leaving less than `reserve` bytes free on the file system
/// ([`Error::NoSpace`]). `what` names the stream in errors. Returns the
/// bytes written.
pub(crate) fn spool(
    r: &mut dyn Read,
    file: &File,
    limit: u64,
    reserve: u64,
    what: &str,
) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut next_check = 0u64;
    let mut out = file;
    loop {
        if total >= next_check {
            check_free(file, reserve, what)?;
            next_check = total + CHECK_EVERY;
        }
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", what, e)),
        };
        total += n as u64;
        if total > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("write", what, e))?;
    }
}

fn check_free(file: &File, reserve: u64, what: &str) -> Result<()> {
    let st = rustix::fs::fstatvfs(file).map_err(|e| Error::io("statvfs", what, e.into()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < reserve.saturating_add(CHECK_EVERY) {
        return Err(Error::NoSpace {
            what: what.to_string(),
            reserve,
        });
    }
    Ok(())
}

/// Refuse a stream whose first bytes are neither a compression we know of
/// nor a tar header with a valid checksum (`/dev/zero`, a text file).
pub(crate) fn check_archive_head(head: &[u8], what: &str) -> Result<()> {
    if Compression::detect(head) != Compression::None {
        return Ok(());
    }
    let not = |reason: &str| Error::UnknownFormat {
        path: what.into(),
        reason: reason.to_string(),
    };
    let Some(block) = head.get(..512) else {
        return Err(not("not a tar archive (shorter than one tar block)"));
    };
    let stored = tar::Header::from_byte_slice(block).cksum().ok();
    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if block.iter().all(|b| *b == 0) || stored != Some(computed) {
        return Err(not(
            "not a tar archive (the first block is not a tar header)",
        ));
    }
    Ok(())
}

/// Fails the stream once more than `left` bytes came through, and notes
/// it in `exceeded` (the consumer's error then means "too large").
pub(crate) struct Limit<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
    pub(crate) exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(io::Error::other("layer exceeds the size limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_compressed_streams_and_tar_headers_pass_the_first_look() {
        assert!(check_archive_head(&[0u8; 512], "zero").is_err());
        assert!(check_archive_head(b"hello", "short").is_err());
        assert!(check_archive_head(&[b'x'; 600], "text").is_err());
        assert!(check_archive_head(&[0x1f, 0x8b, 8, 0, 0, 0], "gz").is_ok());
        let mut h = tar::Header::new_ustar();
        h.set_path("a").unwrap();
        h.set_size(0);
        h.set_cksum();
        assert!(check_archive_head(h.as_bytes(), "tar").is_ok());
        let mut bad = h.as_bytes().to_vec();
        bad[0] = b'b';
        assert!(check_archive_head(&bad, "bad").is_err());
    }
}
