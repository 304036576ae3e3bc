//! Manifests, image indexes and platforms, as registries serve them.

use std::fmt;
use std::str::FromStr;

use dunnage_layerstore::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The `Accept` header of a manifest request: every kind we read.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// A content descriptor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Foreign layer URLs (not followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// A manifest or index, as far as pull needs it.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// 2 for every kind read.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The media type the document claims.
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    /// The config of an image manifest.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// The layers of an image manifest.
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    /// The entries of an index.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

/// An OS and architecture (and variant), as `linux/arm64/v8`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Platform {
        Platform {
            os: "linux".to_string(),
            architecture: crate::load::host_architecture().to_string(),
            variant: None,
        }
    }

    /// Whether an index entry of `other` serves this platform: same OS and
    /// architecture, and same variant when both name one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Platform> {
        let bad = || Error::InvalidReference {
            reference: s.to_string(),
            reason: "platform must be os/arch[/variant]",
        };
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

/// What a fetched manifest document is.
#[derive(Debug)]
pub enum Kind {
    /// An image manifest: config and layers.
    Image {
        /// The config descriptor.
        config: Descriptor,
        /// The layer descriptors, base first.
        layers: Vec<Descriptor>,
    },
    /// An index: its entries.
    Index(Vec<Descriptor>),
}

/// Parse a manifest document, with `content_type` from the response.
pub fn parse(raw: &[u8], content_type: Option<&str>, what: &str) -> Result<Kind> {
    let bad = |reason: String| Error::InvalidManifest {
        what: what.to_string(),
        reason,
    };
    let m: Manifest = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    if m.schema_version != 2 {
        return Err(bad(format!(
            "schemaVersion {} (only 2 is read)",
            m.schema_version
        )));
    }
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json");
    let media = m.media_type.as_deref().or(content_type).unwrap_or("");
    let is_index = media == DOCKER_LIST
        || media == OCI_INDEX
        || (media.is_empty() && m.manifests.is_some() && m.config.is_none());
    if is_index {
        let entries = m
            .manifests
            .ok_or_else(|| bad("an index without manifests".to_string()))?;
        return Ok(Kind::Index(entries));
    }
    if !(media == DOCKER_MANIFEST || media == OCI_MANIFEST || media.is_empty()) {
        return Err(bad(format!("unsupported media type {media:?}")));
    }
    let config = m.config.ok_or_else(|| bad("no config".to_string()))?;
    let layers = m.layers.unwrap_or_default();
    for l in &layers {
        if l.urls.as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(bad(format!("foreign layer {} is not pulled", l.digest)));
        }
        let known = [
            DOCKER_LAYER_GZIP,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            OCI_LAYER,
            "",
        ];
        if !known.contains(&l.media_type.as_str())
            && !l
                .media_type
                .starts_with("application/vnd.docker.image.rootfs.diff.tar")
        {
            return Err(bad(format!("layer media type {:?}", l.media_type)));
        }
    }
    Ok(Kind::Image { config, layers })
}

/// The entry of an index for `platform`: the first whose platform matches,
/// preferring one whose variant matches too.
pub fn pick<'a>(entries: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    let matching = || {
        entries
            .iter()
            .filter(|e| e.platform.as_ref().is_some_and(|p| platform.matches(p)))
    };
    matching()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.variant == platform.variant)
        })
        .or_else(|| matching().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn platforms_parse_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches(&"linux/arm64".parse().unwrap()));
        assert!(!p.matches(&"linux/arm64/v9".parse().unwrap()));
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "Linux/amd64",
            "linux/amd64\n",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn index_picks_the_platform() {
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('a'),
            d('b')
        );
        let Kind::Index(entries) = parse(raw.as_bytes(), None, "x").unwrap() else {
            panic!("not an index")
        };
        let amd = pick(&entries, &"linux/amd64".parse().unwrap()).unwrap();
        assert_eq!(amd.digest.to_string(), d('b'));
        assert!(pick(&entries, &"linux/arm/v6".parse().unwrap()).is_none());
        assert!(pick(&entries, &"linux/s390x".parse().unwrap()).is_none());
    }

    #[test]
    fn malformed_manifests_are_typed_errors() {
        let cases = [
            "".to_string(),
            "null".to_string(),
            "[]".to_string(),
            r#"{"schemaVersion":1}"#.to_string(),
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}"}}"#),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"text/html","config":{{"digest":"{}","size":1}}}}"#,
                d('a')
            ),
            r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1}}"#.to_string(),
            format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":-1}}}}"#,
                d('a')
            ),
            format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}},"layers":[{{"mediaType":"x/y","digest":"{}","size":1}}]}}"#,
                d('a'),
                d('b')
            ),
            format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}},"layers":[{{"digest":"{}","size":1,"urls":["http://x"]}}]}}"#,
                d('a'),
                d('b')
            ),
        ];
        for c in &cases {
            assert!(
                matches!(
                    parse(c.as_bytes(), None, "m"),
                    Err(Error::InvalidManifest { .. })
                ),
                "{c}"
            );
        }
        let ok = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}}}}"#,
            d('a')
        );
        assert!(matches!(
            parse(ok.as_bytes(), Some(OCI_MANIFEST), "m"),
            Ok(Kind::Image { .. })
        ));
    }
}
