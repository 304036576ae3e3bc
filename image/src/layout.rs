//! The JSON documents of archives: Docker's `manifest.json` and the OCI
//! image layout's `index.json`, manifests and descriptors.

use std::collections::BTreeMap;

use dunnage_layerstore::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation holding an image's tag (or full reference) in an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding the full image name, as containerd and Docker 25 write it.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveManifest {
    /// Member holding the config.
    pub config: String,
    /// Familiar references (`busybox:latest`); `null` when saved by ID.
    pub repo_tags: Option<Vec<String>>,
    /// Members holding the layer tars, base first.
    pub layers: Vec<String>,
}

/// An OCI content descriptor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target.
    pub media_type: String,
    /// Digest of the target's bytes.
    pub digest: Digest,
    /// Size of the target in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform (in indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Every other field.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An OCI image index (`index.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Manifests (or nested indexes).
    pub manifests: Vec<Descriptor>,
}

/// An OCI (or Docker schema 2) image manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}
