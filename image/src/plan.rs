//! The plan of a load: an archive's `manifest.json` or `index.json` read
//! into images (configs read and verified, layer members named with the
//! digest they must have), before any layer is registered.

use dunnage_layerstore::Digest;

use crate::config::ImageConfig;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::layout::{
    ArchiveManifest, CONTAINERD_NAME, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    Manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform, REF_NAME,
};
use crate::load::host_architecture;
use crate::reference::{Reference, is_hex64};
use crate::source::Source;
use crate::time::parse_rfc3339;

/// One layer to register: the member holding it and the digest its name
/// or descriptor promises.
pub(crate) struct LayerPlan {
    pub(crate) member: String,
    pub(crate) digest: Option<Digest>,
}

/// One image to store: its verified config, its layers, its tags.
pub(crate) struct ImagePlan {
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<LayerPlan>,
    pub(crate) tags: Vec<Reference>,
}

/// Read an archive's images: `manifest.json` when present, else `index.json`.
pub(crate) fn plan(source: &Source, max_json: u64) -> Result<Vec<ImagePlan>> {
    if let Some(raw) = source.read_member("manifest.json", max_json)? {
        let manifests: Vec<ArchiveManifest> =
            serde_json::from_slice(&raw).map_err(|e| Error::json("manifest.json", e))?;
        return manifests
            .into_iter()
            .map(|m| plan_docker(source, m, max_json))
            .collect();
    }
    if source.read_member("index.json", max_json)?.is_some() {
        let mut plans = Vec::new();
        let index = read_json::<RawIndex>(source, "index.json", None, max_json)?;
        plan_index(source, &index, max_json, 0, &mut plans)?;
        if plans.is_empty() {
            return Err(Error::UnknownFormat {
                path: source.path().to_path_buf(),
                reason: format!(
                    "index.json lists no image for linux/{}",
                    host_architecture()
                ),
            });
        }
        return Ok(plans);
    }
    Err(Error::UnknownFormat {
        path: source.path().to_path_buf(),
        reason: "neither manifest.json nor index.json: not a docker archive or OCI layout"
            .to_string(),
    })
}

fn plan_docker(source: &Source, m: ArchiveManifest, max_json: u64) -> Result<ImagePlan> {
    let raw = read_bytes(source, &m.config, digest_in_name(&m.config), max_json)?;
    let config = ImageConfig::from_bytes(raw)?;
    check_times(&config)?;
    check_layer_count(&config, m.layers.len())?;
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
    Ok(ImagePlan {
        config,
        layers,
        tags,
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

fn plan_index(
    source: &Source,
    index: &RawIndex,
    max_json: u64,
    depth: u32,
    plans: &mut Vec<ImagePlan>,
) -> Result<()> {
    for d in &index.manifests {
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
        let found = Some((digest, d.size));
        if is_index {
            if depth >= 4 {
                return Err(Error::UnknownFormat {
                    path: source.path().to_path_buf(),
                    reason: "indexes nested too deep".into(),
                });
            }
            let nested = read_json::<RawIndex>(source, &blob_path(&digest), found, max_json)?;
            plan_index(source, &nested, max_json, depth + 1, plans)?;
            continue;
        }
        let manifest = read_json::<Manifest>(source, &blob_path(&digest), found, max_json)?;
        if !IMAGE_CONFIGS.contains(&manifest.config.media_type.as_str()) {
            // An OCI 1.1 artifact (its config is not an image config).
            continue;
        }
        let raw = read_bytes(
            source,
            &blob_path(&manifest.config.digest),
            Some(manifest.config.digest),
            max_json,
        )?;
        let config = ImageConfig::from_bytes(raw)?;
        check_times(&config)?;
        check_layer_count(&config, manifest.layers.len())?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| LayerPlan {
                member: blob_path(&l.digest),
                digest: Some(l.digest),
            })
            .collect();
        let name = d
            .annotations
            .get(CONTAINERD_NAME)
            .or_else(|| d.annotations.get(REF_NAME));
        let tags = name.and_then(|n| name_reference(n));
        plans.push(ImagePlan {
            config,
            layers,
            tags: tags.into_iter().collect(),
        });
    }
    Ok(())
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

fn read_bytes(
    source: &Source,
    member: &str,
    digest: Option<Digest>,
    max_json: u64,
) -> Result<Vec<u8>> {
    let missing = || Error::MissingMember {
        archive: source.path().to_path_buf(),
        member: member.to_string(),
    };
    let raw = source.read_member(member, max_json)?.ok_or_else(missing)?;
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
    Ok(raw)
}

/// Read a JSON member; `d` is the digest and size its descriptor gives.
fn read_json<T: serde::de::DeserializeOwned>(
    source: &Source,
    member: &str,
    d: Option<(Digest, u64)>,
    max_json: u64,
) -> Result<T> {
    let raw = read_bytes(source, member, d.map(|d| d.0), max_json)?;
    if let Some((_, size)) = d
        && size != raw.len() as u64
    {
        return Err(Error::DigestMismatch {
            what: format!("size of {member}"),
            expected: size.to_string(),
            actual: raw.len().to_string(),
        });
    }
    serde_json::from_slice(&raw).map_err(|e| Error::json(member, e))
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
