//! The plan of a load: an archive's `manifest.json` or `index.json` read
//! into images (configs read and verified, layer members named with the
//! digest they must have), before any layer is registered.
//!
//! The plan is bounded, so that a small archive cannot expand into an
//! unbounded one: at most [`LoadOptions::max_images`] entries (manifest
//! entries and index entries walked), at most [`LoadOptions::max_plan_bytes`]
//! of JSON read in all, at most 125 layers per image (docker's limit). A config named again is read once and shared;
//! entries naming the same config and layers become one image with the
//! tags of all; a manifest listed again adds its tags; an index reached a
//! second time (repeated fan-out) is refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use dunnage_layerstore::Digest;
use serde::Deserialize;

use crate::config::ImageConfig;
use crate::error::{Error, Result};
use crate::layout::{
    ArchiveManifest, CONTAINERD_NAME, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    Manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform, REF_NAME,
};
use crate::load::{LoadOptions, host_architecture};
use crate::reference::{Reference, is_hex64};
use crate::source::Source;
use crate::time::parse_rfc3339;

/// One layer to register: the member holding it and the digest its name
/// or descriptor promises.
#[derive(PartialEq, Eq, Hash, Clone)]
pub(crate) struct LayerPlan {
    pub(crate) member: String,
    pub(crate) digest: Option<Digest>,
}

/// One image to store: its verified config (shared between entries that
/// name it), its layers, its tags.
pub(crate) struct ImagePlan {
    pub(crate) config: Rc<ImageConfig>,
    pub(crate) layers: Vec<LayerPlan>,
    pub(crate) tags: Vec<Reference>,
}

/// Read an archive's images: `manifest.json` when present, else `index.json`.
pub(crate) fn plan(source: &Source, opts: &LoadOptions<'_>) -> Result<Vec<ImagePlan>> {
    let mut p = Planner {
        source,
        max_json: opts.max_json,
        max_entries: opts.max_images,
        bytes_left: opts.max_plan_bytes,
        entries: 0,
        configs: HashMap::new(),
        by_id: HashMap::new(),
        indexes: HashSet::new(),
        manifests: HashMap::new(),
        images: HashMap::new(),
        plans: Vec::new(),
    };
    if let Some(raw) = p.read_bytes("manifest.json", None, false)? {
        let manifests: Vec<ArchiveManifest> =
            serde_json::from_slice(&raw).map_err(|e| Error::json("manifest.json", e))?;
        drop(raw);
        for m in manifests {
            p.count_entry()?;
            p.plan_docker(m)?;
        }
        return Ok(p.plans);
    }
    if let Some(raw) = p.read_bytes("index.json", None, false)? {
        let index: RawIndex =
            serde_json::from_slice(&raw).map_err(|e| Error::json("index.json", e))?;
        drop(raw);
        p.plan_index(&index, 0)?;
        if p.plans.is_empty() {
            return Err(Error::UnknownFormat {
                path: source.path().to_path_buf(),
                reason: format!(
                    "index.json lists no image for linux/{}",
                    host_architecture()
                ),
            });
        }
        return Ok(p.plans);
    }
    Err(Error::UnknownFormat {
        path: source.path().to_path_buf(),
        reason: "neither manifest.json nor index.json: not a docker archive or OCI layout"
            .to_string(),
    })
}

/// An index as read for a load: entries keep their digest as text, so an
/// entry this load skips (another platform, an artifact) may use a digest
/// algorithm we do not read.
#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

/// Config media types of images (anything else is an artifact).
const IMAGE_CONFIGS: [&str; 2] = [OCI_CONFIG, DOCKER_CONFIG];

/// Deepest nesting of indexes below `index.json`.
const MAX_DEPTH: u32 = 4;

/// Most layers of one image: docker's layer store refuses a deeper chain
/// (`maxLayerDepth`), so a longer list only makes work.
pub(crate) const MAX_LAYERS: usize = 125;

struct Planner<'a> {
    source: &'a Source,
    max_json: u64,
    max_entries: usize,
    bytes_left: u64,
    entries: usize,
    /// Configs by the member they were read from.
    configs: HashMap<String, Rc<ImageConfig>>,
    /// Configs by ID (one copy, however many members hold it).
    by_id: HashMap<crate::config::ImageId, Rc<ImageConfig>>,
    /// Indexes walked.
    indexes: HashSet<Digest>,
    /// Manifests planned: the plan they became.
    manifests: HashMap<Digest, usize>,
    /// Images planned, by config and layers.
    images: HashMap<(crate::config::ImageId, Vec<LayerPlan>), usize>,
    plans: Vec<ImagePlan>,
}

impl Planner<'_> {
    fn too_many(&self, what: &str, limit: u64) -> Error {
        Error::PlanTooLarge {
            archive: self.source.path().to_path_buf(),
            what: what.to_string(),
            limit,
        }
    }

    fn count_entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(self.too_many("image entries", self.max_entries as u64));
        }
        Ok(())
    }

    /// Read a JSON member (counted against the plan's bytes), checking the
    /// digest it must have; `required` makes a missing member an error.
    fn read_bytes(
        &mut self,
        member: &str,
        digest: Option<Digest>,
        required: bool,
    ) -> Result<Option<Vec<u8>>> {
        let limit = self.max_json.min(self.bytes_left);
        let raw = match self.source.read_member(member, limit) {
            Ok(r) => r,
            Err(Error::TooLarge { .. }) if limit < self.max_json => {
                return Err(self.too_many("bytes of JSON", self.bytes_left));
            }
            Err(e) => return Err(e),
        };
        let Some(raw) = raw else {
            if required {
                return Err(Error::MissingMember {
                    archive: self.source.path().to_path_buf(),
                    member: member.to_string(),
                });
            }
            return Ok(None);
        };
        self.bytes_left -= raw.len() as u64;
        if let Some(expected) = digest {
            let actual = Digest::sha256_of(&raw);
            if actual != expected {
                return Err(Error::DigestMismatch {
                    what: member.to_string(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(Some(raw))
    }

    /// Read a JSON member whose descriptor gives its digest and size.
    fn read_json<T: serde::de::DeserializeOwned>(
        &mut self,
        member: &str,
        digest: Digest,
        size: u64,
    ) -> Result<T> {
        let raw = self
            .read_bytes(member, Some(digest), true)?
            .unwrap_or_default();
        if size != raw.len() as u64 {
            return Err(Error::DigestMismatch {
                what: format!("size of {member}"),
                expected: size.to_string(),
                actual: raw.len().to_string(),
            });
        }
        serde_json::from_slice(&raw).map_err(|e| Error::json(member, e))
    }

    /// The config in `member`, read and checked once however many entries
    /// name it.
    fn config(&mut self, member: &str, digest: Option<Digest>) -> Result<Rc<ImageConfig>> {
        if let Some(c) = self.configs.get(member) {
            return Ok(c.clone());
        }
        let raw = self.read_bytes(member, digest, true)?.unwrap_or_default();
        let id = crate::config::ImageId(Digest::sha256_of(&raw));
        let config = match self.by_id.get(&id) {
            Some(c) => c.clone(),
            None => {
                let c = ImageConfig::from_bytes(raw)?;
                check_times(&c)?;
                let c = Rc::new(c);
                self.by_id.insert(id, c.clone());
                c
            }
        };
        self.configs.insert(member.to_string(), config.clone());
        Ok(config)
    }

    /// Add an image to the plan, or its tags to the same image planned
    /// before; returns its index in the plan.
    fn add(
        &mut self,
        config: Rc<ImageConfig>,
        layers: Vec<LayerPlan>,
        tags: Vec<Reference>,
    ) -> Result<usize> {
        if layers.len() > MAX_LAYERS {
            return Err(self.too_many("layers in one image", MAX_LAYERS as u64));
        }
        check_layer_count(&config, layers.len())?;
        let key = (config.id().clone(), layers);
        if let Some(&i) = self.images.get(&key) {
            self.add_tags(i, tags);
            return Ok(i);
        }
        let i = self.plans.len();
        self.plans.push(ImagePlan {
            config,
            layers: key.1.clone(),
            tags: Vec::new(),
        });
        self.add_tags(i, tags);
        self.images.insert(key, i);
        Ok(i)
    }

    fn add_tags(&mut self, i: usize, tags: Vec<Reference>) {
        let have = &mut self.plans[i].tags;
        for t in tags {
            if !have.contains(&t) {
                have.push(t);
            }
        }
    }

    fn plan_docker(&mut self, m: ArchiveManifest) -> Result<()> {
        let config = self.config(&m.config, digest_in_name(&m.config))?;
        let layers = m
            .layers
            .into_iter()
            .map(|member| LayerPlan {
                digest: digest_in_name(&member),
                member,
            })
            .collect();
        let tags = m
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<_>>()?;
        self.add(config, layers, tags).map(drop)
    }

    fn plan_index(&mut self, index: &RawIndex, depth: u32) -> Result<()> {
        for d in &index.manifests {
            self.count_entry()?;
            if let Some(p) = &d.platform
                && (p.os != "linux" || p.architecture != host_architecture())
            {
                continue;
            }
            let is_index = d.media_type == OCI_INDEX || d.media_type == DOCKER_MANIFEST_LIST;
            if !is_index && d.media_type != OCI_MANIFEST && d.media_type != DOCKER_MANIFEST {
                // An artifact manifest or another kind of blob: not an image.
                continue;
            }
            let digest: Digest = d
                .digest
                .parse()
                .map_err(|_| Error::InvalidDigest(d.digest.clone()))?;
            let name = d
                .annotations
                .get(CONTAINERD_NAME)
                .or_else(|| d.annotations.get(REF_NAME));
            let tags: Vec<Reference> = name.and_then(|n| name_reference(n)).into_iter().collect();
            if is_index {
                if depth >= MAX_DEPTH {
                    return Err(self.too_many("levels of nested indexes", MAX_DEPTH.into()));
                }
                if !self.indexes.insert(digest) {
                    return Err(Error::UnknownFormat {
                        path: self.source.path().to_path_buf(),
                        reason: format!(
                            "index {digest} is listed more than once (repeated fan-out)"
                        ),
                    });
                }
                let nested: RawIndex = self.read_json(&blob_path(&digest), digest, d.size)?;
                self.plan_index(&nested, depth + 1)?;
                continue;
            }
            if let Some(&i) = self.manifests.get(&digest) {
                // The same image listed again (another name for it).
                self.add_tags(i, tags);
                continue;
            }
            let manifest: Manifest = self.read_json(&blob_path(&digest), digest, d.size)?;
            if !IMAGE_CONFIGS.contains(&manifest.config.media_type.as_str()) {
                // An OCI 1.1 artifact (its config is not an image config).
                continue;
            }
            let config = self.config(
                &blob_path(&manifest.config.digest),
                Some(manifest.config.digest),
            )?;
            let layers = manifest
                .layers
                .iter()
                .map(|l| LayerPlan {
                    member: blob_path(&l.digest),
                    digest: Some(l.digest),
                })
                .collect();
            let i = self.add(config, layers, tags)?;
            self.manifests.insert(digest, i);
        }
        Ok(())
    }
}

/// The reference an index annotation names. A bare tag in ref.name
/// (`latest`, `1.36`, `v1.2.3`) names no repository: no tag is set. A name
/// with a repository has a `/` (`docker.io/library/busybox:1.36`) or a tag
/// (`busybox:1.36`).
fn name_reference(name: &str) -> Option<Reference> {
    name.contains(['/', ':'])
        .then(|| Reference::parse(name).ok())
        .flatten()
}

/// Docker reads `created` (of the config and of each history entry) as a
/// time and refuses the config when it is not RFC 3339: so do we, at load.
fn check_times(config: &ImageConfig) -> Result<()> {
    let f = config.file();
    let times = f
        .created
        .iter()
        .chain(f.history.iter().filter_map(|h| h.created.as_ref()));
    for t in times {
        if parse_rfc3339(t).is_none() {
            return Err(Error::InvalidConfig {
                id: config.id().to_string(),
                reason: format!("created time {t:?} is not RFC 3339"),
            });
        }
    }
    Ok(())
}

fn check_layer_count(config: &ImageConfig, layers: usize) -> Result<()> {
    if config.diff_ids().len() != layers {
        return Err(Error::InvalidConfig {
            id: config.id().to_string(),
            reason: format!(
                "{} diff_ids but the manifest lists {layers} layers",
                config.diff_ids().len()
            ),
        });
    }
    Ok(())
}

/// The blob member of a digest in an OCI layout.
fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// The digest a member's name promises: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(member: &str) -> Option<Digest> {
    let base = member.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    let by_name = member.ends_with(".json") || member.contains("blobs/sha256/");
    (by_name && is_hex64(hex))
        .then(|| format!("sha256:{hex}").parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ref_name_tags_name_no_repository() {
        for tag in ["latest", "1.36", "v1.2.3", "1.36.1-musl"] {
            assert_eq!(name_reference(tag), None, "{tag}");
        }
        let full = |n: &str| name_reference(n).map(|r| r.to_string());
        assert_eq!(
            full("busybox:1.36").as_deref(),
            Some("docker.io/library/busybox:1.36")
        );
        assert_eq!(
            full("registry.example.com/app").as_deref(),
            Some("registry.example.com/app:latest")
        );
    }

    #[test]
    fn member_names_promise_digests() {
        let hex = "a".repeat(64);
        assert!(digest_in_name(&format!("{hex}.json")).is_some());
        assert!(digest_in_name(&format!("blobs/sha256/{hex}")).is_some());
        assert!(digest_in_name(&format!("{hex}/layer.tar")).is_none());
        assert!(digest_in_name("config.json").is_none());
    }
}
