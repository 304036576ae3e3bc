//! Image configs, `manifest.json`, OCI indexes and manifests from
//! arbitrary bytes: typed errors, never a panic; a config that parses keeps
//! its bytes and its ID is their sha256.
#![no_main]

use dunnage_image::ImageConfig;
use dunnage_image::layout::{ArchiveManifest, Index, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ImageConfig::from_bytes(data.to_vec()) {
        assert_eq!(config.raw(), data);
        let _ = config.chain_id();
        let _ = ImageConfig::from_file(config.file());
        let again = ImageConfig::from_bytes(config.raw().to_vec()).unwrap();
        assert_eq!(again.id(), config.id());
    }
    let _ = serde_json::from_slice::<Vec<ArchiveManifest>>(data);
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let _ = serde_json::to_vec(&index).unwrap();
    }
    let _ = serde_json::from_slice::<Manifest>(data);
});
