//! Apply an arbitrary layer tar into `<temp root>/inner`: whatever the
//! outcome, nothing may be written beside `inner` (a `..`, symlink or
//! hardlink escape would show up there).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("dunnage-fuzz-apply-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let root = base().join("root");
    let inner = root.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let _ = dunnage_overlay::apply_layer(data, &inner, &dunnage_overlay::ApplyOptions::default());
    let beside: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("inner")],
        "written outside the target"
    );
    let outside: Vec<_> = std::fs::read_dir(base())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("root")],
        "written outside the temp root"
    );
    std::fs::remove_dir_all(&root).unwrap();
});
