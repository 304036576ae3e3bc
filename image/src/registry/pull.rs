//! `docker pull`: manifest, config, then the layers (see `layers.rs`):
//! streamed from the registry into the layer store several at once,
//! verified as they pass, resumed with `Range`, committed in order.

use dunnage_layerstore::{ChainId, Digest, child_chain_id};

use super::RegistryConfig;
use super::client::Client;
use super::manifest::{self, Descriptor, Kind, Platform};
use crate::config::{ImageConfig, ImageId};
use crate::error::{Error, Result};
use crate::load::LoadOptions;
use crate::reference::Reference;
use crate::store::ImageStore;

/// Options of [`ImageStore::pull`].
pub struct PullOptions<'a> {
    /// How registries are reached.
    pub registry: RegistryConfig,
    /// The platform picked from an index (default: this machine's).
    pub platform: Option<Platform>,
    /// Layers streaming and extracting at once (default 3, as dockerd
    /// downloads).
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
    /// Bytes of the blob received (of `total`), extracted as they come.
    Downloading {
        /// Received so far.
        bytes: u64,
        /// The blob's size.
        total: u64,
    },
    /// The whole blob came, matched its digest and is extracted (staged).
    DownloadComplete,
    /// Being committed on the layer below it.
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

impl ImageStore {
    /// Pull `reference` from its registry (`docker pull`).
    ///
    /// Layers the store has are skipped; the others stream from the
    /// registry `opts.parallel` at a time, each straight through the
    /// layer store's one-pass stage (decompress, hash, tar-split, apply;
    /// [`LayerStore::stage`](dunnage_layerstore::LayerStore::stage)) and
    /// checked against its digest as it passes, and are committed in
    /// chain order once whole and verified. A cut download is resumed with
    /// `Range`; the bytes received are also kept in `<root>/tmp`, so a
    /// pull killed halfway is resumed by the next one. Memory stays
    /// bounded (a few MiB per stream). The config and tags are written
    /// last: on any error the store is as it was. Progress is reported
    /// through `opts.events` (`opts.load.progress` is not called).
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
