//! Register an arbitrary (uncompressed) tar as a layer, recording its
//! tar-split, then reassemble it: the bytes must come back identical. Also
//! feeds the input to the tar-split reader and recorder directly.
#![no_main]

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use dunnage_layerstore::LayerStore;
use libfuzzer_sys::fuzz_target;

fn store() -> &'static LayerStore {
    static STORE: OnceLock<LayerStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let p: PathBuf =
            std::env::temp_dir().join(format!("dunnage-fuzz-tarsplit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        LayerStore::open(&p).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // The JSON-lines reader on arbitrary bytes, and the recorder alone.
    let _ = dunnage_layerstore::tarsplit::read_entries(data);
    let _ = dunnage_layerstore::tarsplit::record(data);
    // Compressed input is decompressed by `register`: the round trip then
    // gives back the decompressed stream, not `data`.
    if data.starts_with(&[0x1f, 0x8b]) || data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return;
    }
    let store = store();
    let Ok(layer) = store.register(data, None, None) else {
        return;
    };
    let mut back = Vec::new();
    store
        .tar_stream(&layer.chain_id)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(
        back == data,
        "reassembled {} bytes, input {}",
        back.len(),
        data.len()
    );
    store.release(&layer.chain_id).unwrap();
});
