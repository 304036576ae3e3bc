//! `docker push`: layers compressed, blobs skipped, mounted or uploaded
//! (monolithic or chunked), then the config and the manifest.

use std::fs::File;
use std::io::{self, Write};

use dunnage_layerstore::{ChainId, Digest, child_chain_id};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::RegistryConfig;
use super::client::{Body, Client};
use super::manifest;
use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::ImageStore;

/// How pushed layers are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushCompression {
    /// gzip, in a Docker schema 2 manifest (what `docker push` sends).
    #[default]
    Gzip,
    /// zstd, in an OCI image manifest.
    Zstd,
}

/// Options of [`ImageStore::push`].
pub struct PushOptions<'a> {
    /// How registries are reached.
    pub registry: RegistryConfig,
    /// Layer compression.
    pub compression: PushCompression,
    /// Upload blobs in `PATCH` chunks of this many bytes; `None` sends each
    /// blob in one `PUT`.
    pub chunk_size: Option<u64>,
    /// Repositories of the same registry to try mounting blobs from,
    /// besides those the image has references in.
    pub mount_from: Vec<String>,
    /// Called with one line per layer as docker prints them
    /// (`<id>: Pushed`, `<id>: Layer already exists`, `<id>: Mounted from x`).
    pub events: Option<&'a mut dyn FnMut(&str)>,
}

impl Default for PushOptions<'_> {
    fn default() -> Self {
        PushOptions {
            registry: RegistryConfig::default(),
            compression: PushCompression::Gzip,
            chunk_size: None,
            mount_from: Vec::new(),
            events: None,
        }
    }
}

/// What a push sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The image pushed.
    pub id: ImageId,
    /// The manifest's digest (recorded as a RepoDigest).
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Layer blobs uploaded (not skipped or mounted).
    pub uploaded: usize,
}

/// How a blob got to the registry.
enum Sent {
    Existed,
    Mounted(String),
    Uploaded,
}

impl ImageStore {
    /// Push the image `reference` names to `reference`'s repository
    /// (`docker push`). The manifest goes under the reference's tag
    /// (`latest` when it names only a digest is refused).
    pub fn push(&self, reference: &Reference, opts: PushOptions<'_>) -> Result<Pushed> {
        let mut opts = opts;
        let Some(tag) = reference.tag() else {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "push needs a tag",
            });
        };
        let id = self.resolve(&reference.to_string())?;
        let config = self.config(&id)?;
        let client = Client::connect(
            &opts.registry,
            reference.domain(),
            reference.registry_host(),
            reference.path(),
            "pull,push",
        )?;
        let mut mount_from = opts.mount_from.clone();
        for r in self.references(&id)? {
            if r.domain() == reference.domain()
                && r.path() != reference.path()
                && !mount_from.iter().any(|m| m == r.path())
            {
                mount_from.push(r.path().to_string());
            }
        }
        let (layer_type, config_type, manifest_type) = match opts.compression {
            PushCompression::Gzip => (
                manifest::DOCKER_LAYER_GZIP,
                manifest::DOCKER_CONFIG,
                manifest::DOCKER_MANIFEST,
            ),
            PushCompression::Zstd => (
                manifest::OCI_LAYER_ZSTD,
                manifest::OCI_CONFIG,
                manifest::OCI_MANIFEST,
            ),
        };
        let mut layers = Vec::new();
        let mut uploaded = 0;
        // Each layer: its chainID and the blob the registry has for it.
        let mut plan = Vec::new();
        let mut chain: Option<ChainId> = None;
        for diff in config.diff_ids() {
            let c = child_chain_id(chain.as_ref(), diff);
            plan.push((
                c,
                reuse_known(&client, self.root(), diff, opts.compression)?,
            ));
            chain = Some(c);
        }
        let todo: Vec<ChainId> = plan
            .iter()
            .filter(|(_, known)| known.is_none())
            .map(|(c, _)| *c)
            .collect();
        let mut compressed = self.compress_layers(&todo, opts.compression)?.into_iter();
        for ((c, known), diff) in plan.into_iter().zip(config.diff_ids()) {
            let (digest, size, sent) = match known {
                Some(k) => k,
                None => {
                    // One for each layer without a known blob, in order.
                    let (file, digest, size) = compressed.next().ok_or_else(|| {
                        Error::io(
                            "compress",
                            format!("layer {c}"),
                            io::Error::other("not compressed"),
                        )
                    })?;
                    let body = Body::File(&file, 0, size);
                    let sent =
                        send_blob(&client, body, &digest, size, opts.chunk_size, &mount_from)?;
                    (digest, size, sent)
                }
            };
            let short = &diff.hex()[..12];
            let line = match sent {
                Sent::Existed => format!("{short}: Layer already exists"),
                Sent::Mounted(from) => format!("{short}: Mounted from {from}"),
                Sent::Uploaded => {
                    uploaded += 1;
                    format!("{short}: Pushed")
                }
            };
            if let Some(f) = opts.events.as_deref_mut() {
                f(&line);
            }
            layers.push(json!({"mediaType": layer_type, "size": size, "digest": digest}));
        }
        let raw = config.raw();
        let config_digest = Digest::sha256_of(raw);
        send_blob(
            &client,
            Body::Bytes(raw),
            &config_digest,
            raw.len() as u64,
            None,
            &[],
        )?;
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": raw.len(), "digest": config_digest},
            "layers": layers,
        });
        let body = serde_json::to_vec_pretty(&doc).map_err(|e| Error::json("manifest", e))?;
        let digest = Digest::sha256_of(&body);
        let url = client.url(&format!("manifests/{tag}"));
        let resp = client.send(
            "put manifest",
            "PUT",
            &url,
            &[("Content-Type", manifest_type)],
            Body::Bytes(&body),
            None,
        )?;
        client.expect("put manifest", &url, resp, &[200, 201])?;
        let locked = self.lock()?;
        self.set_tags_locked(&locked, &[reference.with_digest(&digest)], &id)?;
        Ok(Pushed {
            id,
            digest,
            size: body.len() as u64,
            uploaded,
        })
    }

    /// The layers `chains` compressed into scratch files, up to three at
    /// once (compression is the bulk of a push of new layers): for each,
    /// in order, the file, its digest and size.
    fn compress_layers(
        &self,
        chains: &[ChainId],
        c: PushCompression,
    ) -> Result<Vec<(File, Digest, u64)>> {
        let mut out = Vec::with_capacity(chains.len());
        for batch in chains.chunks(3) {
            let results: Vec<Result<(File, Digest, u64)>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|chain| s.spawn(move || self.compress_layer(chain, c)))
                    .collect();
                handles
                    .into_iter()
                    .zip(batch)
                    .map(|(h, chain)| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::io(
                                "compress",
                                format!("layer {chain}"),
                                io::Error::other("the compressing thread panicked"),
                            ))
                        })
                    })
                    .collect()
            });
            for r in results {
                out.push(r?);
            }
        }
        Ok(out)
    }

    /// The layer `chain` as a compressed blob in a scratch file: the file,
    /// its digest and size.
    fn compress_layer(&self, chain: &ChainId, c: PushCompression) -> Result<(File, Digest, u64)> {
        let what = format!("layer {chain}");
        let file = self.temp_file()?;
        let mut tar = self.layers().tar_stream(chain)?;
        let mut out = Hashing {
            inner: &file,
            hasher: Sha256::new(),
            size: 0,
        };
        let io_err = |e: io::Error| Error::io("compress", &what, e);
        match c {
            PushCompression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
                io::copy(&mut tar, &mut enc).map_err(io_err)?;
                enc.finish().map_err(io_err)?;
            }
            PushCompression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(&mut out, 3).map_err(io_err)?;
                io::copy(&mut tar, &mut enc).map_err(io_err)?;
                enc.finish().map_err(io_err)?;
            }
        }
        let size = out.size;
        let digest = Digest::from_bytes(out.hasher.finalize().into());
        Ok((file, digest, size))
    }
}

/// A blob this layer was pulled as (docker's distribution metadata) that
/// the registry has in this repository, or mounts into it from the one it
/// came from, compressed as asked: its digest and size, and how it got
/// there. `None` when there is none: the layer is then compressed and sent.
fn reuse_known(
    client: &Client,
    root: &std::path::Path,
    diff: &dunnage_layerstore::DiffId,
    compression: PushCompression,
) -> Result<Option<(Digest, u64, Sent)>> {
    let magic: &[u8] = match compression {
        PushCompression::Gzip => &[0x1f, 0x8b],
        PushCompression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
    };
    for source in super::distribution::sources(root, diff) {
        let Some((domain, path)) = source.repository.split_once('/') else {
            continue;
        };
        if domain != client.domain {
            continue;
        }
        let sent = if client.has_blob(&source.digest)? {
            Sent::Existed
        } else if path != client.repo {
            let url = format!(
                "{}?mount={}&from={path}",
                client.url("blobs/uploads/"),
                source.digest
            );
            let resp = client.send("mount blob", "POST", &url, &[], Body::Bytes(b""), None)?;
            if resp.status() != 201 {
                continue;
            }
            Sent::Mounted(path.to_string())
        } else {
            continue;
        };
        match client.blob_start(&source.digest)? {
            Some((size, head)) if head.starts_with(magic) => {
                return Ok(Some((source.digest, size, sent)));
            }
            _ => continue,
        }
    }
    Ok(None)
}

/// Get blob `digest` to the registry: skipped when it has it, mounted from
/// one of `mount_from`, else uploaded.
fn send_blob(
    client: &Client,
    body: Body<'_>,
    digest: &Digest,
    size: u64,
    chunk: Option<u64>,
    mount_from: &[String],
) -> Result<Sent> {
    if client.has_blob(digest)? {
        return Ok(Sent::Existed);
    }
    let start = client.url("blobs/uploads/");
    let mut location = None;
    for from in mount_from {
        let url = format!("{start}?mount={digest}&from={from}");
        let resp = client.send("mount blob", "POST", &url, &[], Body::Bytes(b""), None)?;
        match resp.status() {
            201 => return Ok(Sent::Mounted(from.clone())),
            202 => {
                location = resp.header("Location").map(str::to_string);
                break;
            }
            _ => {}
        }
    }
    let mut location = match location {
        Some(l) => client.resolve(&l),
        None => {
            let resp = client.send("start upload", "POST", &start, &[], Body::Bytes(b""), None)?;
            let resp = client.expect("start upload", &start, resp, &[202])?;
            let l = resp.header("Location").ok_or_else(|| Error::Status {
                op: "start upload",
                url: start.clone(),
                status: 202,
                message: "no Location".to_string(),
            })?;
            client.resolve(l)
        }
    };
    let deadline = Some(client.blob_deadline(size));
    let sep = |l: &str| if l.contains('?') { '&' } else { '?' };
    let final_body = match (chunk, body) {
        (Some(n), Body::File(f, 0, len)) if n > 0 => {
            let mut offset = 0;
            while offset < len {
                let part = n.min(len - offset);
                let range = format!("{}-{}", offset, offset + part - 1);
                let resp = client.send(
                    "upload chunk",
                    "PATCH",
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                    ],
                    Body::File(f, offset, part),
                    deadline,
                )?;
                let resp = client.expect("upload chunk", &location, resp, &[202])?;
                if let Some(l) = resp.header("Location") {
                    location = client.resolve(l);
                }
                offset += part;
            }
            Body::Bytes(b"")
        }
        (_, body) => body,
    };
    let url = format!("{location}{}digest={digest}", sep(&location));
    let resp = client.send(
        "upload blob",
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream")],
        final_body,
        deadline,
    )?;
    client.expect("upload blob", &url, resp, &[201, 204])?;
    Ok(Sent::Uploaded)
}

/// Hashes and counts what it writes on.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
