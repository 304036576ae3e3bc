//! The single pass over a layer's bytes: detect the compression, decompress,
//! and tee the uncompressed stream into sha256 (the diffID) and the tar-split
//! recorder (on a second thread) while the overlay apply consumes it.

use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

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

/// What the hashing thread hands back: the hasher and the recorder, fed
/// with every byte sent, or the recorder's first error.
type Worked<W> = Result<(Sha256, Recorder<W>), Error>;

/// Chunks queued between the reading thread and the hashing thread: bounds
/// the memory a layer takes. A chunk is one read, and apply's 1 MiB reads of
/// file contents bypass the 128 KiB `BufReader` in front of the tar, so with
/// the chunk being hashed and the one being filled up to about 10 MiB are
/// in flight.
const IN_FLIGHT: usize = 8;

/// Passes bytes through while a second thread hashes them (the diffID) and
/// records their tar-split, so that sha256, CRC-64 and the JSON encoding
/// overlap with decompression and extraction. The recorder's first error is
/// kept, so the caller can report it rather than the error of whoever was
/// reading the same bytes.
pub(crate) struct Tee<R: Read, W: Write + Send + 'static> {
    inner: R,
    to_worker: Option<SyncSender<Vec<u8>>>,
    /// Buffers the worker is done with, reused for the next chunks.
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<Worked<W>>>,
    /// Set when the worker stopped with an error, or the input failed.
    failed: Option<Error>,
    /// The worker's result once joined.
    worked: Option<(Sha256, Recorder<W>)>,
}

impl<R: Read, W: Write + Send + 'static> Tee<R, W> {
    pub(crate) fn new(inner: R, tar_split: W) -> Result<Tee<R, W>, Error> {
        let (to_worker, chunks) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (give_back, spare) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
        let worker = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn(move || -> Worked<W> {
                let mut hasher = Sha256::new();
                let mut recorder = Recorder::new(tar_split);
                for chunk in chunks {
                    hasher.update(&chunk);
                    recorder.observe(&chunk)?;
                    let _ = give_back.try_send(chunk);
                }
                Ok((hasher, recorder))
            })
            .map_err(Error::Stream)?;
        Ok(Tee {
            inner,
            to_worker: Some(to_worker),
            spare,
            worker: Some(worker),
            failed: None,
            worked: None,
        })
    }

    /// Close the channel and wait for the worker; its error, if any, becomes
    /// the failure.
    fn join(&mut self) {
        self.to_worker = None;
        let Some(worker) = self.worker.take() else {
            return;
        };
        match worker.join() {
            Ok(Ok(done)) => self.worked = Some(done),
            Ok(Err(e)) => self.failed = Some(e),
            Err(_) => {
                self.failed = Some(Error::Stream(io::Error::other(
                    "the layer hashing thread panicked",
                )))
            }
        }
    }

    /// The error that stopped the stream, if any: the recorder's verdict on
    /// the bytes read so far comes first.
    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        let input = self.failed.take();
        self.join();
        self.failed.take().or(input)
    }

    /// Read the rest of the stream (bytes after the tar's end count in the
    /// diffID), then return the diffID and the tar-split writer.
    pub(crate) fn finish(mut self) -> Result<(DiffId, W), Error> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.take_failure().unwrap_or(Error::Stream(e))),
            }
        }
        self.join();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let Some((hasher, recorder)) = self.worked.take() else {
            return Err(Error::Stream(io::Error::other(
                "the layer hashing thread ended without a result",
            )));
        };
        let out = recorder.finish()?;
        let diff = DiffId(Digest::from_bytes(hasher.finalize().into()));
        Ok((diff, out))
    }
}

impl<R: Read, W: Write + Send + 'static> Read for Tee<R, W> {
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
        if n == 0 {
            return Ok(0);
        }
        let mut chunk = self.spare.try_recv().unwrap_or_default();
        chunk.clear();
        chunk.extend_from_slice(&buf[..n]);
        let sent = match &self.to_worker {
            Some(tx) => tx.send(chunk).is_ok(),
            None => false,
        };
        if !sent {
            // The worker stopped: the recorder refused these bytes.
            self.join();
            let msg = match &self.failed {
                Some(e) => e.to_string(),
                None => "the layer hashing thread stopped".to_owned(),
            };
            if self.failed.is_none() {
                self.failed = Some(Error::Stream(io::Error::other(msg.clone())));
            }
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}
