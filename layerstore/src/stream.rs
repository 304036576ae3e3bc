//! The single pass over a layer's bytes: detect the compression, decompress,
//! and tee the uncompressed stream into sha256 (the diffID) and the tar-split
//! recorder while the overlay apply consumes it.

use std::io::{self, BufReader, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::{DiffId, Digest};
use crate::error::Error;
use crate::tarsplit::Recorder;

const BUF: usize = 256 * 1024;

/// The compression a layer stream uses, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`); readable with the `zstd` cargo feature.
    Zstd,
    /// bzip2 (`BZh`): recognised, not supported.
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`): recognised, not supported.
    Xz,
}

impl Compression {
    /// Recognise the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// The uncompressed stream of `input`, whatever its (supported) compression.
pub(crate) fn decompressed<'a, R: Read + 'a>(mut input: R) -> Result<Box<dyn Read + 'a>, Error> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Stream(e)),
        }
    }
    let whole = BufReader::with_capacity(BUF, io::Cursor::new(head[..n].to_vec()).chain(input));
    Ok(match Compression::detect(&head[..n]) {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUF,
            flate2::bufread::MultiGzDecoder::new(whole),
        )),
        #[cfg(feature = "zstd")]
        Compression::Zstd => Box::new(BufReader::with_capacity(
            BUF,
            zstd::stream::read::Decoder::with_buffer(whole).map_err(Error::Stream)?,
        )),
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => {
            return Err(Error::UnsupportedCompression(
                "zstd (build with the `zstd` feature)",
            ));
        }
        Compression::Bzip2 => return Err(Error::UnsupportedCompression("bzip2")),
        Compression::Xz => return Err(Error::UnsupportedCompression("xz")),
    })
}

/// Passes bytes through while hashing them and recording their tar-split.
/// The first failure (of the input or the recorder) is kept, so the caller
/// can report it rather than the error of whoever was reading.
pub(crate) struct Tee<R: Read, W: Write> {
    inner: R,
    hasher: Sha256,
    recorder: Recorder<W>,
    failed: Option<Error>,
    bytes: u64,
}

impl<R: Read, W: Write> Tee<R, W> {
    pub(crate) fn new(inner: R, tar_split: W) -> Tee<R, W> {
        Tee {
            inner,
            hasher: Sha256::new(),
            recorder: Recorder::new(tar_split),
            failed: None,
            bytes: 0,
        }
    }

    /// The error that stopped the stream, if any.
    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        self.failed.take()
    }

    /// Read the rest of the stream (bytes after the tar's end count in the
    /// diffID), then return the diffID, the byte count and the tar-split writer.
    pub(crate) fn finish(mut self) -> Result<(DiffId, u64, W), Error> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed.take().unwrap_or(Error::Stream(e))),
            }
        }
        let out = self.recorder.finish()?;
        let diff = DiffId(Digest::from_bytes(self.hasher.finalize().into()));
        Ok((diff, self.bytes, out))
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Err(io::Error::other("layer stream already failed"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failed = Some(Error::Stream(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if let Err(e) = self.recorder.observe(&buf[..n]) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}
