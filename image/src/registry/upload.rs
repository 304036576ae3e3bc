//! The upload of one new layer of a push, compressed as it is sent: the
//! layer's tar is read from the layer store, compressed, hashed and counted
//! on its way into the request body (`PATCH`, chunked transfer encoding,
//! or `Content-Range` chunks of a set size), and the upload is closed with
//! `PUT ?digest=` once the digest is known. Nothing is staged on disk, and
//! memory stays bounded (the compressor's window and one HTTP chunk, or one
//! upload chunk when a chunk size is set).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::{ChainId, Digest};
use sha2::{Digest as _, Sha256};

use super::client::{Body, Client};
use super::push::PushCompression;
use crate::error::{Error, Result};
use crate::store::ImageStore;

/// The largest upload chunk held in memory: a larger chunk size is sent in
/// chunks of this size (a registry takes chunks of any size).
const MAX_CHUNK: u64 = 16 << 20;

impl ImageStore {
    /// Compress layer `chain` and upload it as a new blob of `client`'s
    /// repository; returns the blob's digest and size. A `401` to the
    /// streamed body (a token that expired during the push) makes the
    /// client authenticate again and the layer start over, once.
    pub(super) fn upload_layer(
        &self,
        client: &Client,
        chain: &ChainId,
        compression: PushCompression,
        chunk: Option<u64>,
        cancel: &AtomicBool,
    ) -> Result<(Digest, u64)> {
        match self.try_upload_layer(client, chain, compression, chunk, cancel) {
            Err(Error::Auth { .. }) => {
                self.try_upload_layer(client, chain, compression, chunk, cancel)
            }
            r => r,
        }
    }

    fn try_upload_layer(
        &self,
        client: &Client,
        chain: &ChainId,
        compression: PushCompression,
        chunk: Option<u64>,
        cancel: &AtomicBool,
    ) -> Result<(Digest, u64)> {
        let what = format!("layer {chain}");
        let size = self.layers().get(chain)?.size;
        let tar = self.layers().tar_stream(chain)?;
        let compressor: Box<dyn Read + Send> = match compression {
            PushCompression::Gzip => Box::new(flate2::read::GzEncoder::new(
                tar,
                flate2::Compression::default(),
            )),
            PushCompression::Zstd => Box::new(
                zstd::stream::read::Encoder::new(tar, 3)
                    .map_err(|e| Error::io("compress", &what, e))?,
            ),
        };
        let mut blob = Compressed {
            inner: compressor,
            hasher: Sha256::new(),
            size: 0,
            failure: None,
            cancel,
        };
        let mut location = super::push::start_upload(client)?;
        let deadline = Some(client.blob_deadline(size));
        let sent = match chunk.filter(|n| *n > 0) {
            Some(n) => send_chunks(client, &mut location, &mut blob, n.min(MAX_CHUNK), deadline),
            None => {
                let resp = client.send(
                    "upload blob",
                    "PATCH",
                    &location,
                    &[("Content-Type", "application/octet-stream")],
                    Body::Stream(&mut blob),
                    deadline,
                );
                resp.and_then(|r| client.expect("upload blob", &location, r, &[202]))
                    .map(|r| {
                        if let Some(l) = r.header("Location") {
                            location = client.resolve(l);
                        }
                    })
            }
        };
        // A failure to read or compress the layer is the cause of a failed
        // request that carried it.
        if let Some(e) = blob.failure.take() {
            return Err(Error::io("compress", &what, e));
        }
        sent?;
        let digest = Digest::from_bytes(std::mem::take(&mut blob.hasher).finalize().into());
        super::push::finish_upload(client, &location, &digest, b"", None)?;
        Ok((digest, blob.size))
    }
}

/// Send `blob` in `PATCH` requests of `n` bytes (`Content-Range`), the
/// last one shorter.
fn send_chunks(
    client: &Client,
    location: &mut String,
    blob: &mut Compressed<'_>,
    n: u64,
    deadline: Option<std::time::Duration>,
) -> Result<()> {
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
    let mut offset = 0u64;
    loop {
        let len = read_full(blob, &mut buf).map_err(|e| Error::Transport {
            op: "upload chunk",
            url: location.clone(),
            reason: e.to_string(),
        })?;
        if len == 0 {
            return Ok(());
        }
        let range = format!("{}-{}", offset, offset + len as u64 - 1);
        let resp = client.send(
            "upload chunk",
            "PATCH",
            location,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            Body::Bytes(&buf[..len]),
            deadline,
        )?;
        let resp = client.expect("upload chunk", location, resp, &[202])?;
        if let Some(l) = resp.header("Location") {
            *location = client.resolve(l);
        }
        offset += len as u64;
        if len < buf.len() {
            return Ok(());
        }
    }
}

/// Read into `buf` until it is full or the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// The compressed layer as it is read: hashed and counted; a read error
/// is kept (the HTTP client only passes its text on), and the stream stops
/// when the push is cancelled.
struct Compressed<'a> {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
    size: u64,
    failure: Option<io::Error>,
    cancel: &'a AtomicBool,
}

impl Read for Compressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("cancelled: another layer failed"));
        }
        if self.failure.is_some() {
            return Err(io::Error::other("the layer could not be read"));
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.size += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failure = Some(e);
                Err(copy)
            }
        }
    }
}
