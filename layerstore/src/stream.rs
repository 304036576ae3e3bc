//! The start of the single pass over a layer's bytes: detect the
//! compression and decompress; [`crate::tee`] then shares the uncompressed
//! stream between the overlay apply and the hashing thread.

use std::io::{self, BufReader, Read};

use crate::error::Error;

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
