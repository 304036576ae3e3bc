//! Image references from arbitrary text: typed errors, never a panic; a
//! reference that parses prints as a text that parses to the same.
#![no_main]

use dunnage_image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(text) {
        let printed = r.to_string();
        let again = Reference::parse(&printed).unwrap();
        assert_eq!(again, r, "{text:?} printed as {printed:?}");
        let _ = (
            r.familiar(),
            r.familiar_name(),
            r.name(),
            r.domain(),
            r.path(),
        );
        let _ = r.with_tag("latest");
    }
    let _ = Reference::parse_named(text);
    let _ = dunnage_image::time::parse_rfc3339(text);
});
