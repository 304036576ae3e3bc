//! The facade's seccomp path on arbitrary text: `Seccomp::Profile(text)`
//! compiled as a container gets it (`Seccomp::program`: the JSON parsed,
//! compiled with libseccomp, the program cached). Typed errors, never a
//! panic; a program is within the kernel's instruction bound.
#![no_main]

use dunnage::container::Seccomp;
use dunnage::namespaces::seccomp::MAX_INSTRUCTIONS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(program)) = Seccomp::Profile(text.to_string()).program() {
        assert!(program.len() <= MAX_INSTRUCTIONS);
    }
});
