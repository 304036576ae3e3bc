//! `docker load` of arbitrary bytes (a docker-archive or OCI layout tar,
//! or compressed) into a store: an error or images; afterwards no layer
//! holds a reference no image owns, and what loaded removes cleanly.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dunnage_image::{ImageStore, LoadOptions};
use libfuzzer_sys::fuzz_target;

fn store() -> &'static ImageStore {
    static STORE: OnceLock<ImageStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let p: PathBuf =
            std::env::temp_dir().join(format!("dunnage-fuzz-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        ImageStore::open(&p).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let store = store();
    let opts = LoadOptions {
        max_json: 1 << 20,
        ..LoadOptions::default()
    };
    if let Ok(loaded) = store.load_reader(data, Path::new("fuzz-input"), opts) {
        for image in loaded {
            store.remove(&image.id.to_string(), true).unwrap();
        }
    }
    assert_eq!(store.leaked_layers().unwrap(), Some(vec![]));
    assert!(store.list().unwrap().is_empty());
});
