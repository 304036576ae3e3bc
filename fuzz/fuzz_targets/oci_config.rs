//! OCI runtime config conversion on arbitrary bytes: `OciConfig::from_bytes`
//! (parse, warnings for unknown capabilities), `to_container` (every field
//! honoured or refused by name) and the builder's resolve step on the
//! result, in a store opened once. Typed errors, never a panic; a parsed
//! config serialises to bytes that parse to the same document.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use dunnage::container::ContainerStore;
use dunnage::oci::OciConfig;
use libfuzzer_sys::fuzz_target;

/// One store for the whole run (resolve reads nothing of it for a rootfs
/// container but needs one), in a directory removed by nobody: it holds
/// only empty directories.
fn store() -> &'static ContainerStore {
    static STORE: OnceLock<ContainerStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dunnage-fuzz-oci-{}", std::process::id()));
        ContainerStore::open(dir).expect("open a store in the temp dir")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(config) = OciConfig::from_bytes(data) else {
        return;
    };
    let again = OciConfig::from_bytes(&config.to_vec()).expect("a parsed config parses again");
    assert_eq!(again.raw(), config.raw());
    // A bundle that does not exist: resolving a rootfs container reads its
    // /etc/passwd and /etc/group when a user is named, and finds none.
    let Ok(converted) = config.to_container(Path::new("/nonexistent-dunnage-fuzz-bundle")) else {
        return;
    };
    if let Ok(spec) = converted.container.resolve(store()) {
        let _ = spec.seccomp.program();
    }
});
