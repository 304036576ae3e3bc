//! `docker pull`: manifest, config, and the layers downloaded in parallel,
//! verified as they stream, resumed with `Range`, registered in order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use dunnage_layerstore::{ChainId, Digest, child_chain_id};

use super::RegistryConfig;
use super::client::Client;
use super::download::BlobStream;
use super::manifest::{self, Descriptor, Kind, Platform};
use crate::config::{ImageConfig, ImageId};
use crate::error::{Error, Result};
use crate::load::LoadOptions;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::store::ImageStore;

/// Options of [`ImageStore::pull`].
pub struct PullOptions<'a> {
    /// How registries are reached.
    pub registry: RegistryConfig,
    /// The platform picked from an index (default: this machine's).
    pub platform: Option<Platform>,
    /// Layers downloading at once (default 3, as dockerd).
    pub parallel: usize,
    /// Limits of decompression and JSON, as for `load`.
    pub load: LoadOptions<'a>,
    /// Called with docker's per-layer states as the pull goes on.
    pub events: Option<&'a mut dyn FnMut(&PullEvent)>,
}

impl Default for PullOptions<'_> {
    fn default() -> Self {
        PullOptions {
            registry: RegistryConfig::default(),
            platform: None,
            parallel: 3,
            load: LoadOptions::default(),
            events: None,
        }
    }
}

/// The state of one layer of a pull, as docker's progress lines show it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullStatus {
    /// The store has this layer (and those below it).
    AlreadyExists,
    /// Queued for download.
    Waiting,
    /// Bytes of the blob received (of `total`).
    Downloading {
        /// Received so far.
        bytes: u64,
        /// The blob's size.
        total: u64,
    },
    /// The whole blob came and matched its digest.
    DownloadComplete,
    /// Being registered (decompressed and applied).
    Extracting,
    /// Registered.
    PullComplete,
}

/// One layer's state change during a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullEvent {
    /// Index of the layer, base first.
    pub layer: usize,
    /// Number of layers.
    pub layers: usize,
    /// The layer blob's digest.
    pub digest: Digest,
    /// Its new state.
    pub status: PullStatus,
}

/// What a pull stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The image ID.
    pub id: ImageId,
    /// The digest of the (platform's) manifest: the RepoDigest.
    pub digest: Digest,
    /// References set: the tag pulled (if any) and the RepoDigest.
    pub references: Vec<Reference>,
    /// Layers downloaded.
    pub downloaded: usize,
    /// Whether the image was new to the store.
    pub new: bool,
}

/// A resolved image: manifest digest, config and layer descriptors.
pub(crate) struct Resolved {
    pub(crate) digest: Digest,
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<Descriptor>,
}

enum Event {
    Bytes(usize, u64),
    Done(usize, Result<()>),
}

impl ImageStore {
    /// Pull `reference` from its registry (`docker pull`).
    ///
    /// Layers the store has are skipped; the others download
    /// `opts.parallel` at a time into scratch files under `<root>/tmp`,
    /// each checked against its digest as it arrives (a cut download is
    /// resumed with `Range`, also by a later pull after the process was
    /// killed), and are registered in order through the one-pass register
    /// of [`load`](Self::load). The config and tags are written last: on
    /// any error the store is as it was.
    pub fn pull(&self, reference: &Reference, opts: PullOptions<'_>) -> Result<Pulled> {
        let mut opts = opts;
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let (client, resolved) =
            self.resolve_remote(reference, &opts.registry, &platform, &opts.load)?;
        let diff_ids = resolved.config.diff_ids().to_vec();
        let layers = &resolved.layers;
        // The chainIDs, and how many of the base layers the store has.
        let mut chains: Vec<ChainId> = Vec::with_capacity(layers.len());
        for d in &diff_ids {
            chains.push(child_chain_id(chains.last(), d));
        }
        let mut emit =
            |layer: usize, status: PullStatus, events: &mut Option<&mut dyn FnMut(&PullEvent)>| {
                if let Some(f) = events.as_deref_mut() {
                    f(&PullEvent {
                        layer,
                        layers: layers.len(),
                        digest: layers[layer].digest,
                        status,
                    });
                }
            };
        let _ = self.reclaim_leaked_layers();
        let _operation = self.begin_operation()?;
        let (present, mut top) = self.hold_present(&chains)?;
        for i in 0..layers.len() {
            let s = if i < present {
                PullStatus::AlreadyExists
            } else {
                PullStatus::Waiting
            };
            emit(i, s, &mut opts.events);
        }
        let registered = self.download_and_register(
            &client, &resolved, &chains, present, &mut top, &mut opts, &mut emit,
        );
        if let Err(e) = registered {
            if let Some(t) = &top {
                let _ = self.layers().release(t);
            }
            return Err(e);
        }
        // Config and references under the images lock.
        let mut references = Vec::new();
        if reference.tag().is_some() {
            references.push(reference.clone());
        }
        references.push(reference.with_digest(&resolved.digest));
        let locked = match self.lock() {
            Ok(l) => l,
            Err(e) => {
                if let Some(t) = &top {
                    let _ = self.layers().release(t);
                }
                return Err(e);
            }
        };
        let existed = self.imagedb().exists(resolved.config.id());
        let id = self.create_locked(&locked, &resolved.config, top.as_ref(), None)?;
        if let Err(e) = self.set_tags_locked(&locked, &references, &id) {
            if !existed {
                let _ = self.delete(&locked, &id);
            }
            return Err(e);
        }
        Ok(Pulled {
            id,
            digest: resolved.digest,
            references,
            downloaded: layers.len() - present,
            new: !existed,
        })
    }

    /// Resolve `reference` on its registry (or a mirror) to a manifest of
    /// `platform` and its verified config.
    pub(crate) fn resolve_remote(
        &self,
        reference: &Reference,
        cfg: &RegistryConfig,
        platform: &Platform,
        load: &LoadOptions<'_>,
    ) -> Result<(Client, Resolved)> {
        let mut hosts: Vec<String> = Vec::new();
        if reference.domain() == crate::reference::DEFAULT_DOMAIN {
            hosts.extend(cfg.mirrors.iter().cloned());
        }
        hosts.push(reference.registry_host().to_string());
        let mut last = None;
        for host in &hosts {
            let attempt = Client::connect(cfg, reference.domain(), host, reference.path(), "pull")
                .and_then(|c| {
                    let r = resolve_manifest(&c, reference, platform, load)?;
                    Ok((c, r))
                });
            match attempt {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NoSuchImage(reference.to_string())))
    }

    /// How many of the base layers of `chains` the store has, with a
    /// reference taken to the top one of them. A layer found by the
    /// look-up may be released and removed by a concurrent rmi before it
    /// is acquired: then the store is looked at again, and what is gone is
    /// downloaded and registered again like a layer it never had.
    fn hold_present(&self, chains: &[ChainId]) -> Result<(usize, Option<ChainId>)> {
        // Each retry follows a removal; a pull racing endless rmis and
        // re-pulls of the same layers gives up holding and downloads all.
        for _ in 0..=chains.len() {
            let present = chains
                .iter()
                .take_while(|c| self.layers().get(c).is_ok())
                .count();
            let Some(top) = present.checked_sub(1).map(|i| chains[i]) else {
                return Ok((0, None));
            };
            match self.layers().acquire(&top) {
                Ok(()) => return Ok((present, Some(top))),
                Err(dunnage_layerstore::Error::LayerNotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((0, None))
    }

    /// Download the missing layers, `opts.parallel` at a time, each
    /// verified as it streams into its scratch file, and register them in
    /// order, each replayed from its file (checked again as it passes).
    #[allow(clippy::too_many_arguments)]
    fn download_and_register(
        &self,
        client: &Client,
        resolved: &Resolved,
        chains: &[ChainId],
        present: usize,
        top: &mut Option<ChainId>,
        opts: &mut PullOptions<'_>,
        emit: &mut impl FnMut(usize, PullStatus, &mut Option<&mut dyn FnMut(&PullEvent)>),
    ) -> Result<()> {
        let layers = &resolved.layers;
        let queue: Mutex<Vec<usize>> = Mutex::new((present..layers.len()).rev().collect());
        let cancel = AtomicBool::new(false);
        let tmp = self.root().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("mkdir", &tmp, e))?;
        let workers = opts.parallel.clamp(1, 16).min(layers.len() - present);
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<Event>();
            for _ in 0..workers {
                let tx = tx.clone();
                let (queue, cancel, tmp) = (&queue, &cancel, &tmp);
                scope.spawn(move || {
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(i) = next else { return };
                        let tick = |n| {
                            let _ = tx.send(Event::Bytes(i, n));
                        };
                        let r = fetch(client, tmp, &layers[i], cancel, &tick);
                        if r.is_err() {
                            cancel.store(true, Ordering::Relaxed);
                        }
                        if tx.send(Event::Done(i, r)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut ready = vec![false; layers.len()];
            let result = (|| {
                for i in present..layers.len() {
                    while !ready[i] {
                        match rx.recv() {
                            Ok(Event::Bytes(j, bytes)) => emit(
                                j,
                                PullStatus::Downloading {
                                    bytes,
                                    total: layers[j].size,
                                },
                                &mut opts.events,
                            ),
                            // The first failure is the cause: the other
                            // downloads stop ("cancelled") because of it.
                            Ok(Event::Done(_, Err(e))) => return Err(e),
                            Ok(Event::Done(j, Ok(()))) => {
                                emit(j, PullStatus::DownloadComplete, &mut opts.events);
                                ready[j] = true;
                            }
                            Err(_) => {
                                return Err(Error::Transport {
                                    op: "get blob",
                                    url: client.url(&format!("blobs/{}", layers[i].digest)),
                                    reason: "the download stopped".to_string(),
                                });
                            }
                        }
                    }
                    emit(i, PullStatus::Extracting, &mut opts.events);
                    let chain =
                        self.register_layer(client, &tmp, resolved, i, top, opts, &cancel)?;
                    debug_assert_eq!(chain, chains[i]);
                    // The new layer holds its parent: give back ours.
                    if let Some(t) = top.take()
                        && let Err(e) = self.layers().release(&t)
                    {
                        let _ = self.layers().release(&chain);
                        return Err(e.into());
                    }
                    *top = Some(chain);
                    super::distribution::record(
                        self.root(),
                        &layers[i].digest,
                        &resolved.config.diff_ids()[i],
                        &format!("{}/{}", client.domain, client.repo),
                    );
                    emit(i, PullStatus::PullComplete, &mut opts.events);
                }
                Ok(())
            })();
            if result.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            drop(rx);
            result
        })
    }

    /// Register layer `i` on `top` from its blob stream; its scratch file
    /// is removed once it is registered. Bytes kept by an earlier pull
    /// that make a blob fail are thrown away and the blob is fetched once
    /// more from the start.
    #[allow(clippy::too_many_arguments)]
    fn register_layer(
        &self,
        client: &Client,
        tmp: &std::path::Path,
        resolved: &Resolved,
        i: usize,
        top: &Option<ChainId>,
        opts: &mut PullOptions<'_>,
        cancel: &AtomicBool,
    ) -> Result<ChainId> {
        let layer = &resolved.layers[i];
        let mut fresh = false;
        loop {
            let mut stream = BlobStream::open(client, tmp, layer, cancel, &|_| {}, fresh)?;
            let state = Progress {
                image: 0,
                images: 1,
                layer: i,
                layers: resolved.layers.len(),
                bytes: 0,
                total: layer.size,
                done: false,
            };
            let registered = self.register_stream(
                &mut stream,
                layer.size,
                format!("{}@{}", client.repo, layer.digest),
                None,
                top.as_ref(),
                &resolved.config.diff_ids()[i],
                &mut opts.load,
                state,
            );
            // A blob that is not what it should be is the cause of any
            // failure of its register.
            let result = match (registered, stream.finish()) {
                (Ok(chain), Ok(())) => {
                    stream.remove_partial();
                    return Ok(chain);
                }
                (Ok(chain), Err(e)) => {
                    let _ = self.layers().release(&chain);
                    e
                }
                (Err(_), Err(e)) => e,
                (Err(e), Ok(())) => e,
            };
            if fresh || !stream.reused() {
                return Err(result);
            }
            stream.discard_partial();
            fresh = true;
        }
    }
}

/// Download blob `d` into its scratch file and verify it; bytes kept by an
/// earlier pull that make it fail are thrown away and it is fetched once
/// more from the start.
fn fetch(
    client: &Client,
    tmp: &std::path::Path,
    d: &Descriptor,
    cancel: &AtomicBool,
    tick: &dyn Fn(u64),
) -> Result<()> {
    let mut stream = BlobStream::open(client, tmp, d, cancel, tick, false)?;
    match stream.finish() {
        Err(Error::DigestMismatch { .. }) if stream.reused() => {
            drop(stream);
            BlobStream::open(client, tmp, d, cancel, tick, true)?.finish()
        }
        r => r,
    }
}

/// Fetch the manifest of `reference` (through an index to `platform`'s)
/// and its config, every document checked against its digest.
fn resolve_manifest(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    load: &LoadOptions<'_>,
) -> Result<Resolved> {
    let mut target = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => crate::reference::DEFAULT_TAG.to_string(),
    };
    let mut expected = reference.digest().cloned();
    let limit = client.cfg.max_manifest;
    // One index, then the image manifest it names: two documents at most.
    for depth in 0..2 {
        let what = format!("{}:{target}", reference.name());
        let (raw, content_type, header) = client.get_small(
            "get manifest",
            &format!("manifests/{target}"),
            Some(manifest::ACCEPT),
            limit,
        )?;
        let digest = Digest::sha256_of(&raw);
        let claimed = match &expected {
            Some(d) => Some(d.to_string()),
            None => header.clone(),
        };
        if let Some(c) = claimed
            && c != digest.to_string()
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest {what}"),
                expected: c,
                actual: digest.to_string(),
            });
        }
        match manifest::parse(&raw, content_type.as_deref(), &what)? {
            Kind::Index(entries) => {
                if depth > 0 {
                    return Err(Error::InvalidManifest {
                        what,
                        reason: "an index names another index".to_string(),
                    });
                }
                let entry = manifest::pick(&entries, platform).ok_or_else(|| {
                    Error::NoMatchingPlatform {
                        reference: reference.to_string(),
                        platform: platform.to_string(),
                    }
                })?;
                if entry.digest == digest {
                    return Err(Error::InvalidManifest {
                        what,
                        reason: "the index names itself".to_string(),
                    });
                }
                target = entry.digest.to_string();
                expected = Some(entry.digest);
            }
            Kind::Image { config, layers } => {
                let config = fetch_config(client, &config, load)?;
                if config.diff_ids().len() != layers.len() {
                    return Err(Error::InvalidManifest {
                        what,
                        reason: format!(
                            "{} layers for {} diff_ids in the config",
                            layers.len(),
                            config.diff_ids().len()
                        ),
                    });
                }
                return Ok(Resolved {
                    digest,
                    config,
                    layers,
                });
            }
        }
    }
    Err(Error::InvalidManifest {
        what: reference.to_string(),
        reason: "too deep".to_string(),
    })
}

fn fetch_config(client: &Client, d: &Descriptor, load: &LoadOptions<'_>) -> Result<ImageConfig> {
    let limit = load.max_json.min(d.size.max(1));
    let (raw, _, _) =
        client.get_small("get config", &format!("blobs/{}", d.digest), None, limit)?;
    let actual = Digest::sha256_of(&raw);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: format!("config {}", client.url(&format!("blobs/{}", d.digest))),
            expected: d.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    ImageConfig::from_bytes(raw)
}
