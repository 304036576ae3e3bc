//! OCI seccomp profiles from arbitrary JSON, compiled with libseccomp, and
//! raw BPF programs from arbitrary bytes: typed errors, never a panic; a
//! compiled program is within the kernel's instruction bound.
#![no_main]

use dunnage_namespaces::seccomp::{self, BpfProgram, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = BpfProgram::from_bytes(data) {
        assert_eq!(
            BpfProgram::from_bytes(&p.to_bytes()).unwrap().len(),
            p.len()
        );
    }
    let Ok(profile) = serde_json::from_slice::<Profile>(data) else {
        return;
    };
    if let Ok((program, _warnings)) = seccomp::compile(&profile) {
        assert!(program.len() <= seccomp::MAX_INSTRUCTIONS);
    }
});
