//! Docker's distribution metadata: which compressed blob each layer came
//! from, and from which repository (`image/overlay2/distribution/`), kept
//! in dockerd's own format so that a push can skip or mount a blob the
//! registry has instead of compressing and uploading the layer again.

use std::path::{Path, PathBuf};

use dunnage_layerstore::{DiffId, Digest};
use serde::{Deserialize, Serialize};

/// One `v2metadata-by-diffid` entry, as dockerd writes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Source {
    #[serde(rename = "Digest")]
    pub(crate) digest: Digest,
    #[serde(rename = "SourceRepository")]
    pub(crate) repository: String,
    #[serde(rename = "HMAC", default)]
    pub(crate) hmac: String,
}

fn dir(root: &Path) -> PathBuf {
    root.join("image/overlay2/distribution")
}

/// Note that `blob`, pulled from `repository` (`host/path`), is the layer
/// `diff_id`. A cache: failures are ignored, and it is written without
/// fsyncs (they were a fifth of the fsync time a pull spends after its
/// downloads): after a crash an entry may be missing or unreadable, and a
/// push then compresses and sends the layer again.
pub(crate) fn record(root: &Path, blob: &Digest, diff_id: &DiffId, repository: &str) {
    let by_digest = dir(root).join("diffid-by-digest/sha256");
    let by_diff = dir(root).join("v2metadata-by-diffid/sha256");
    if std::fs::create_dir_all(&by_digest).is_err() || std::fs::create_dir_all(&by_diff).is_err() {
        return;
    }
    let _ = dunnage_base::fs::write_replace(
        &by_digest.join(blob.hex()),
        diff_id.to_string().as_bytes(),
        0o644,
    );
    let mut sources = sources(root, diff_id);
    let entry = Source {
        digest: *blob,
        repository: repository.to_string(),
        hmac: String::new(),
    };
    if sources.contains(&entry) {
        return;
    }
    sources.push(entry);
    if let Ok(json) = serde_json::to_vec(&sources) {
        let _ = dunnage_base::fs::write_replace(&by_diff.join(diff_id.hex()), &json, 0o644);
    }
}

/// The blobs `diff_id` is known to have come as (none when unknown or
/// unreadable).
pub(crate) fn sources(root: &Path, diff_id: &DiffId) -> Vec<Source> {
    let path = dir(root)
        .join("v2metadata-by-diffid/sha256")
        .join(diff_id.hex());
    std::fs::read(path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or_default()
}
