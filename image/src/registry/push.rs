//! `docker push`: layers the registry has (by docker's distribution
//! metadata) skipped or mounted, the others compressed and uploaded as
//! they are read, several at once (see `upload.rs`), then the config and
//! the manifest.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::{ChainId, Digest, child_chain_id};
use serde_json::json;

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
    /// Upload layers in `PATCH` chunks of this many bytes (at most 16 MiB,
    /// held in memory); `None` streams each layer in one `PATCH` (chunked
    /// transfer encoding) as it is compressed.
    pub chunk_size: Option<u64>,
    /// Repositories of the same registry to try mounting known blobs from
    /// (those a layer was pulled or pushed as), besides the repositories
    /// they came from and those the image has references in.
    pub mount_from: Vec<String>,
    /// Layers compressed and uploaded at once (default 3).
    pub parallel: usize,
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
            parallel: 3,
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

/// An uploaded blob's digest and size.
type Blob = (Digest, u64);

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
                reuse_known(&client, self.root(), diff, opts.compression, &mount_from)?,
            ));
            chain = Some(c);
        }
        let todo: Vec<ChainId> = plan
            .iter()
            .filter(|(_, known)| known.is_none())
            .map(|(c, _)| *c)
            .collect();
        let mut fresh = self
            .upload_layers(
                &client,
                &todo,
                opts.compression,
                opts.chunk_size,
                opts.parallel,
            )?
            .into_iter();
        let repository = format!("{}/{}", client.domain, client.repo);
        for ((_, known), diff) in plan.into_iter().zip(config.diff_ids()) {
            let (digest, size, sent) = match known {
                Some(k) => k,
                None => {
                    // One for each layer without a known blob, in order.
                    let (digest, size) = fresh.next().ok_or_else(|| Error::Transport {
                        op: "upload blob",
                        url: client.url("blobs/uploads/"),
                        reason: "a layer was not uploaded".to_string(),
                    })?;
                    // As dockerd does: the next push to this registry skips
                    // or mounts the blob.
                    super::distribution::record(self.root(), &digest, diff, &repository);
                    (digest, size, Sent::Uploaded)
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
        send_blob(&client, raw, &config_digest)?;
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

    /// Compress and upload the layers `chains`, `parallel` at a time
    /// (each streamed: see `upload.rs`): for each, in order, the blob's
    /// digest and size. The first failure stops the others.
    fn upload_layers(
        &self,
        client: &Client,
        chains: &[ChainId],
        compression: PushCompression,
        chunk: Option<u64>,
        parallel: usize,
    ) -> Result<Vec<Blob>> {
        let queue: Mutex<Vec<usize>> = Mutex::new((0..chains.len()).rev().collect());
        let results: Mutex<Vec<Option<Result<Blob>>>> =
            Mutex::new((0..chains.len()).map(|_| None).collect());
        let cancel = AtomicBool::new(false);
        let workers = parallel.clamp(1, 16).min(chains.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !cancel.load(Ordering::Relaxed) {
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(i) = next else { return };
                        let r = self.upload_layer(client, &chains[i], compression, chunk, &cancel);
                        let failed = r.is_err();
                        // The first failure is the cause: the "cancelled"
                        // errors of the others that it stops are dropped.
                        if let Ok(mut rs) = results.lock()
                            && (!failed || !rs.iter().any(|r| matches!(r, Some(Err(_)))))
                        {
                            rs[i] = Some(r);
                        }
                        if failed {
                            cancel.store(true, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        if let Some(Some(Err(e))) = results
            .iter_mut()
            .find(|r| matches!(r, Some(Err(_))))
            .map(Option::take)
        {
            return Err(e);
        }
        results
            .into_iter()
            .zip(chains)
            .map(|(r, chain)| {
                r.unwrap_or_else(|| {
                    Err(Error::Transport {
                        op: "upload blob",
                        url: client.url("blobs/uploads/"),
                        reason: format!("layer {chain} was not uploaded"),
                    })
                })
            })
            .collect()
    }
}

/// A blob this layer was pulled or pushed as (docker's distribution
/// metadata) that the registry has in this repository, or mounts into it
/// from the one it came from or one of `mount_from`, compressed as asked:
/// its digest and size, and how it got there. `None` when there is none:
/// the layer is then compressed and sent.
fn reuse_known(
    client: &Client,
    root: &std::path::Path,
    diff: &dunnage_layerstore::DiffId,
    compression: PushCompression,
    mount_from: &[String],
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
        } else {
            // From the repository it came from, then the others named.
            let from: Vec<String> = std::iter::once(path)
                .chain(mount_from.iter().map(String::as_str))
                .filter(|p| *p != client.repo)
                .map(str::to_string)
                .collect();
            match mount(client, &source.digest, &from)? {
                Some(repo) => Sent::Mounted(repo),
                None => continue,
            }
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

/// Get the small blob `bytes` (the config) to the registry: skipped when
/// it has it, else uploaded in one `PUT`.
fn send_blob(client: &Client, bytes: &[u8], digest: &Digest) -> Result<()> {
    if client.has_blob(digest)? {
        return Ok(());
    }
    let location = start_upload(client)?;
    let deadline = Some(client.blob_deadline(bytes.len() as u64));
    finish_upload(client, &location, digest, bytes, deadline)
}

/// Close the upload at `location` with `PUT ?digest=digest`, its body
/// `bytes`: the whole blob of a one-request upload, nothing after `PATCH`es.
pub(super) fn finish_upload(
    client: &Client,
    location: &str,
    digest: &Digest,
    bytes: &[u8],
    deadline: Option<std::time::Duration>,
) -> Result<()> {
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{sep}digest={digest}");
    let resp = client.send(
        "upload blob",
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream")],
        Body::Bytes(bytes),
        deadline,
    )?;
    client.expect("upload blob", &url, resp, &[201, 204])?;
    Ok(())
}

/// Ask the registry to mount blob `digest` from each of the repositories
/// `from` in turn: the one it was mounted from, `None` when none did.
fn mount(client: &Client, digest: &Digest, from: &[String]) -> Result<Option<String>> {
    let start = client.url("blobs/uploads/");
    for repo in from {
        let url = format!("{start}?mount={digest}&from={repo}");
        let resp = client.send("mount blob", "POST", &url, &[], Body::Bytes(b""), None)?;
        // 202: the registry started an upload instead; it is left to expire.
        if resp.status() == 201 {
            return Ok(Some(repo.clone()));
        }
    }
    Ok(None)
}

/// Start an upload (`POST blobs/uploads/`): its location.
pub(super) fn start_upload(client: &Client) -> Result<String> {
    let start = client.url("blobs/uploads/");
    let resp = client.send("start upload", "POST", &start, &[], Body::Bytes(b""), None)?;
    let resp = client.expect("start upload", &start, resp, &[202])?;
    let l = resp.header("Location").ok_or_else(|| Error::Status {
        op: "start upload",
        url: start.clone(),
        status: 202,
        message: "no Location".to_string(),
    })?;
    Ok(client.resolve(l))
}
