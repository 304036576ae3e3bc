//! Image configs (Docker image spec v1.2 and the OCI image config).
//!
//! An [`ImageConfig`] keeps the bytes it was read from: the image ID is the
//! sha256 of exactly those bytes, and fields this crate does not model
//! (`container_config`, `docker_version`, ...) survive a load and a save
//! untouched. [`ConfigFile`] is the typed view; its `other` maps hold every
//! unknown field.

use std::collections::BTreeMap;
use std::fmt;

use dunnage_layerstore::{ChainId, DiffId, Digest, chain_id};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An image ID: the sha256 digest of the stored config bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub Digest);

impl ImageId {
    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.hex()
    }

    /// The 12-digit short form `docker images` shows.
    pub fn short(&self) -> String {
        self.0.hex()[..12].to_string()
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ImageId {
    type Err = Error;
    fn from_str(s: &str) -> Result<ImageId> {
        s.parse::<Digest>()
            .map(ImageId)
            .map_err(|_| Error::InvalidDigest(s.to_string()))
    }
}

/// The typed view of an image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// CPU architecture (`amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Operating system (`linux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Architecture variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The defaults for containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// How each layer (and each empty step) was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// The layers, by diffID, base first.
    pub rootfs: RootFs,
    /// Every other field, kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The `config` object: defaults for running a container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user[:group]` to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports as `"80/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<Map<String, Value>>,
    /// `KEY=value` environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The command (arguments to the entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes as `"/data": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Map<String, Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Health check, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    /// Every other field (`Hostname`, `OnBuild`, ...), kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One `history` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Every other field, kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The `rootfs` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The layers' diffIDs, base first.
    #[serde(default)]
    pub diff_ids: Vec<DiffId>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// An image config: the stored bytes, their ID and the typed view.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageConfig {
    raw: Vec<u8>,
    id: ImageId,
    file: ConfigFile,
}

impl ImageConfig {
    /// Parse and validate config bytes, keeping them as they are.
    pub fn from_bytes(raw: Vec<u8>) -> Result<ImageConfig> {
        let id = ImageId(Digest::sha256_of(&raw));
        let file: ConfigFile = serde_json::from_slice(&raw)
            .map_err(|e| Error::json(format!("image config {id}"), e))?;
        let invalid = |reason: String| Error::InvalidConfig {
            id: id.to_string(),
            reason,
        };
        if file.rootfs.kind != "layers" {
            return Err(invalid(format!(
                "rootfs type {:?} is not \"layers\"",
                file.rootfs.kind
            )));
        }
        let non_empty = file.history.iter().filter(|h| !h.empty_layer).count();
        if non_empty > file.rootfs.diff_ids.len() {
            return Err(invalid(format!(
                "{non_empty} non-empty history entries for {} layers",
                file.rootfs.diff_ids.len()
            )));
        }
        Ok(ImageConfig { raw, id, file })
    }

    /// Serialise a typed config (compact JSON, as Docker writes) and parse it back.
    pub fn from_file(file: &ConfigFile) -> Result<ImageConfig> {
        let raw = serde_json::to_vec(file).map_err(|e| Error::json("new image config", e))?;
        ImageConfig::from_bytes(raw)
    }

    /// The image ID.
    pub fn id(&self) -> &ImageId {
        &self.id
    }

    /// The bytes as stored.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The typed view.
    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    /// The layers' diffIDs, base first.
    pub fn diff_ids(&self) -> &[DiffId] {
        &self.file.rootfs.diff_ids
    }

    /// The chainID of the top layer (`None` for an image without layers).
    pub fn chain_id(&self) -> Option<ChainId> {
        chain_id(self.diff_ids())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r#"{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],"Image":"","OnBuild":null,"Labels":null},"container_config":{"Hostname":"x"},"created":"2024-01-02T03:04:05.123456789Z","docker_version":"20.10.24","history":[{"created":"2024-01-02T03:04:05Z","created_by":"/bin/sh -c #(nop) ADD file:1 in / "},{"created":"2024-01-02T03:04:06Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}"#;

    #[test]
    fn image_id_is_the_sha256_of_the_stored_bytes() {
        let c = ImageConfig::from_bytes(DOCKER_CONFIG.as_bytes().to_vec()).unwrap();
        assert_eq!(c.id().0, Digest::sha256_of(DOCKER_CONFIG.as_bytes()));
        assert_eq!(c.raw(), DOCKER_CONFIG.as_bytes());
        assert_eq!(c.file().history.len(), 2);
        assert!(c.file().history[1].empty_layer);
        let run = c.file().config.as_ref().unwrap();
        assert_eq!(run.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(run.other.contains_key("Hostname"));
    }

    #[test]
    fn unknown_fields_survive_a_typed_round_trip() {
        let c = ImageConfig::from_bytes(DOCKER_CONFIG.as_bytes().to_vec()).unwrap();
        let again = ImageConfig::from_file(c.file()).unwrap();
        assert_eq!(again.file(), c.file());
        let v: Value = serde_json::from_slice(again.raw()).unwrap();
        assert_eq!(v["container_config"]["Hostname"], "x");
        assert_eq!(v["docker_version"], "20.10.24");
    }

    #[test]
    fn more_non_empty_history_entries_than_layers_is_invalid() {
        let bad = DOCKER_CONFIG.replace(",\"empty_layer\":true", "");
        let err = ImageConfig::from_bytes(bad.into_bytes()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    }

    #[test]
    fn malformed_configs_are_typed_errors() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"rootfs":{"type":"layers","diff_ids":["sha256:zz"]}}"#,
            r#"{"rootfs":{"type":"other","diff_ids":[]}}"#,
            r#"{"os":"linux"}"#,
        ] {
            assert!(
                ImageConfig::from_bytes(bad.as_bytes().to_vec()).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
