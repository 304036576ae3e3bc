//! One blob of a pull as a stream: read straight from the HTTP response by
//! the layer store's register, hashed as it passes, resumed with `Range`
//! after a cut, and checked against its digest when its last byte is read.
//!
//! The bytes received are also appended to a named scratch file
//! (`<root>/tmp/pull-<hex>.partial`), so that a pull killed halfway is
//! resumed by the next one: that one replays the file, then asks the
//! registry for the rest. Nothing is trusted before the whole blob matches
//! its digest: a stream that ends wrong fails the read of its last byte,
//! and the register that read it registers nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::Digest;
use sha2::{Digest as _, Sha256};

use super::client::{Body, Client};
use super::manifest::Descriptor;
use crate::error::{Error, Result};

/// Requests tried for one blob: the first and resumptions after a cut.
const ATTEMPTS: u32 = 4;

/// Bytes gathered from the network before they are handed out (when the
/// reader asks for that many): the HTTP client returns at most 8 KiB a
/// read, and each hand-out costs a write to the scratch file.
const GATHER: usize = 256 << 10;

/// Progress is reported each time this many more bytes came, and at the end.
const TICK: u64 = 1 << 20;

/// The blob `desc` of a pull, read from its start (see the module docs).
pub(crate) struct BlobStream<'a> {
    client: &'a Client,
    url: String,
    desc: &'a Descriptor,
    cancel: &'a AtomicBool,
    tick: &'a dyn Fn(u64),
    /// The scratch file (locked by this stream) and its name; `None` when
    /// another pull holds it: then nothing is kept.
    partial: Option<(File, PathBuf)>,
    /// Bytes of the scratch file kept from before, replayed first.
    replay: u64,
    /// Bytes handed out (and hashed) so far.
    pos: u64,
    /// `pos` when progress was last reported.
    ticked: u64,
    /// Why the response was dropped while bytes read before were handed
    /// out: the next read resumes (a retry) for that reason.
    cut: Option<String>,
    hasher: Sha256,
    body: Option<Box<dyn Read + Send + Sync + 'static>>,
    /// Requests made, the first included.
    requests: u32,
    /// Bytes of the next response to skip: a registry that ignored `Range`
    /// sends the blob from its start.
    skip: u64,
    /// The registry refused a `Range` (416): ask for whole blobs.
    no_range: bool,
    verified: bool,
    failure: Option<Error>,
}

impl<'a> BlobStream<'a> {
    /// The stream of blob `desc`, its scratch file in `tmp`. `tick` is
    /// called with the bytes read so far; `cancel` stops it at its next
    /// read. With `fresh`, bytes kept by an earlier pull are thrown away.
    pub(crate) fn open(
        client: &'a Client,
        tmp: &Path,
        desc: &'a Descriptor,
        cancel: &'a AtomicBool,
        tick: &'a dyn Fn(u64),
        fresh: bool,
    ) -> Result<BlobStream<'a>> {
        let path = tmp.join(format!("pull-{}.partial", desc.digest.hex()));
        let io_err = |op, e| Error::io(op, &path, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(|e| io_err("open", e))?;
        let mut partial = None;
        let mut replay = 0;
        if let Ok(true) = dunnage_base::lock::try_lock_exclusive(&file) {
            replay = file.metadata().map_err(|e| io_err("stat", e))?.len();
            if fresh || replay > desc.size {
                file.set_len(0).map_err(|e| io_err("truncate", e))?;
                replay = 0;
            }
            partial = Some((file, path));
        }
        Ok(BlobStream {
            client,
            url: client.url(&format!("blobs/{}", desc.digest)),
            desc,
            cancel,
            tick,
            partial,
            replay,
            pos: 0,
            ticked: 0,
            cut: None,
            hasher: Sha256::new(),
            body: None,
            requests: 0,
            skip: 0,
            no_range: false,
            verified: false,
            failure: None,
        })
    }

    /// Whether bytes kept by an earlier pull were replayed: when the blob
    /// then fails, one more try from the start is worth it.
    pub(crate) fn reused(&self) -> bool {
        self.replay > 0
    }

    /// Read to the end: `Ok` once the whole blob matched its digest, else
    /// the first failure (a cut that could not be resumed, a digest that
    /// differs). Called after the register, whatever its outcome: a
    /// register that failed on a blob that is not what it should be failed
    /// because of that.
    pub(crate) fn finish(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(self.failure.take().unwrap_or_else(|| self.cut_error(e))),
            }
        }
    }

    /// The scratch file's name, to remove once the blob is registered.
    pub(crate) fn partial_path(&self) -> Option<PathBuf> {
        self.partial.as_ref().map(|(_, p)| p.clone())
    }

    /// Throw away the bytes kept: they made a blob that failed. The stream
    /// keeps nothing more.
    pub(crate) fn discard_partial(&mut self) {
        if let Some((file, path)) = self.partial.take() {
            let _ = file.set_len(0);
            let _ = std::fs::remove_file(path);
        }
    }

    fn cut_error(&self, e: io::Error) -> Error {
        Error::Transport {
            op: "get blob",
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn next(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            if self.pos == self.desc.size {
                self.verify()?;
                return Ok(0);
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(self.transport("cancelled".to_string()));
            }
            let want = buf
                .len()
                .min(usize::try_from(self.desc.size - self.pos).unwrap_or(usize::MAX));
            let buf = &mut buf[..want];
            if self.pos < self.replay {
                let n = self.replay_some(buf)?;
                if n > 0 {
                    return self.hand_out(buf, n, false);
                }
                // The file was shorter than it said: the rest from the network.
                self.replay = self.pos;
                continue;
            }
            if let Some(reason) = self.cut.take() {
                self.retry(reason)?;
            }
            if self.body.is_none() {
                self.body = Some(self.request()?);
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            let n = match body.read(buf) {
                Ok(0) => {
                    self.body = None;
                    let reason = format!(
                        "truncated blob: {} of {} bytes",
                        self.pos + self.skip,
                        self.desc.size
                    );
                    self.retry(reason)?;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.body = None;
                    self.retry(e.to_string())?;
                    continue;
                }
            };
            if self.skip > 0 {
                // Bytes before `pos` sent again by a registry that ignored
                // the range: dropped, the ones handed out already counted.
                let dropped = self.skip.min(n as u64);
                self.skip -= dropped;
                let rest = n - dropped as usize;
                if rest == 0 {
                    continue;
                }
                buf.copy_within(dropped as usize..n, 0);
                return self.hand_out(buf, rest, true);
            }
            let n = self.gather(buf, n);
            return self.hand_out(buf, n, true);
        }
    }

    /// Read more of the response after the `n` bytes in `buf`, up to
    /// [`GATHER`] bytes or the end of `buf`: the bytes in `buf` then. A
    /// response that ends or fails is dropped, and the next read resumes.
    fn gather(&mut self, buf: &mut [u8], mut n: usize) -> usize {
        let end = buf.len().min(GATHER);
        while n < end {
            let Some(body) = self.body.as_mut() else {
                break;
            };
            match body.read(&mut buf[n..end]) {
                Ok(0) => {
                    // The end of the response: the bytes so far are handed
                    // out, and the next read finds what to do (verify, or
                    // resume a truncated blob).
                    self.body = None;
                    self.cut = Some(format!(
                        "truncated blob: {} of {} bytes",
                        self.pos + n as u64,
                        self.desc.size
                    ));
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.body = None;
                    self.cut = Some(e.to_string());
                }
            }
        }
        n
    }

    fn replay_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        let Some((file, path)) = self.partial.as_mut() else {
            return Ok(0);
        };
        let left = usize::try_from(self.replay - self.pos).unwrap_or(usize::MAX);
        let len = buf.len().min(left);
        loop {
            match file.read(&mut buf[..len]) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &*path, e)),
            }
        }
    }

    /// Count, hash and (when they came from the network) keep `buf[..n]`.
    fn hand_out(&mut self, buf: &[u8], n: usize, keep: bool) -> Result<usize> {
        let bytes = &buf[..n];
        if keep && let Some((file, path)) = self.partial.as_mut() {
            file.write_all(bytes)
                .map_err(|e| Error::io("write", &*path, e))?;
        }
        self.hasher.update(bytes);
        self.pos += n as u64;
        if self.pos - self.ticked >= TICK || self.pos == self.desc.size {
            self.ticked = self.pos;
            (self.tick)(self.pos);
        }
        Ok(n)
    }

    /// A failed or cut request: another one, unless tries are used up.
    fn retry(&mut self, reason: String) -> Result<()> {
        if self.requests >= ATTEMPTS || self.cancel.load(Ordering::Relaxed) {
            return Err(self.transport(reason));
        }
        Ok(())
    }

    fn transport(&self, reason: String) -> Error {
        Error::Transport {
            op: "get blob",
            url: self.url.clone(),
            reason,
        }
    }

    /// GET the blob from `pos` on.
    fn request(&mut self) -> Result<Box<dyn Read + Send + Sync + 'static>> {
        loop {
            self.requests += 1;
            let range = format!("bytes={}-", self.pos);
            let headers: Vec<(&str, &str)> = if self.pos > 0 && !self.no_range {
                vec![("Range", &range)]
            } else {
                vec![]
            };
            let deadline = self.client.blob_deadline(if self.no_range {
                self.desc.size
            } else {
                self.desc.size - self.pos
            });
            let sent = self.client.send(
                "get blob",
                "GET",
                &self.url,
                &headers,
                Body::None,
                Some(deadline),
            );
            let resp = match sent {
                Ok(r) if r.status() == 416 && self.pos > 0 && !self.no_range => {
                    // The registry will not resume from there: the whole
                    // blob again, what was handed out skipped.
                    self.no_range = true;
                    Err(self.transport("range not satisfiable".to_string()))
                }
                Ok(r) => self.client.expect("get blob", &self.url, r, &[200, 206]),
                Err(e) => Err(e),
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e @ Error::Transport { .. }) => {
                    self.retry(e.to_string())?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let resumes = resp.status() == 206
                && resp
                    .header("Content-Range")
                    .is_some_and(|r| r.starts_with(&format!("bytes {}-", self.pos)));
            // A whole blob again: what was handed out is skipped.
            self.skip = if resumes { 0 } else { self.pos };
            if let Some((file, path)) = self.partial.as_mut() {
                file.seek(SeekFrom::Start(self.pos))
                    .map_err(|e| Error::io("seek", &*path, e))?;
            }
            return Ok(resp.into_reader());
        }
    }

    fn verify(&mut self) -> Result<()> {
        if self.verified {
            return Ok(());
        }
        self.body = None;
        let actual = Digest::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if actual != self.desc.digest {
            self.discard_partial();
            return Err(Error::DigestMismatch {
                what: self.url.clone(),
                expected: self.desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for BlobStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failure {
            return Err(io::Error::other(e.to_string()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.next(buf).map_err(|e| {
            let err = io::Error::other(e.to_string());
            self.failure = Some(e);
            err
        })
    }
}
