//! Compiled seccomp programs kept on disk, for processes that make one
//! container each (the CLI, an OCI runtime): compiling Docker's policy
//! with libseccomp costs more than the rest of the child's preparation.
//!
//! ```text
//! <root>/containers/.seccomp/<key>.bpf
//!     key     sha256 of the policy text, the architecture and the
//!             libseccomp version (a new library or policy: a new file)
//!     file    "DNBPF1\n\0", the filter flags (u32, little endian), the
//!             sha256 of key || flags || program, the program (raw
//!             `struct sock_filter`s)
//! ```
//!
//! A file is replaced atomically (rename) and not fsynced: it is a cache.
//! Every read is verified (magic, length, digest); anything else (torn,
//! truncated, edited, from another key) is ignored, compiled again and
//! replaced. Nothing here can make a container run with a program other
//! than the one its policy compiles to.

use std::path::{Path, PathBuf};

use dunnage_namespaces::BpfProgram;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"DNBPF1\n\0";
const HEADER: usize = 8 + 4 + 32;
/// Bigger files are not read (4096 instructions of 8 bytes, and the header).
const MAX_FILE: u64 = (HEADER + dunnage_namespaces::seccomp::MAX_INSTRUCTIONS * 8) as u64;

/// The cache below the containers directory `containers`.
pub(crate) fn dir(containers: &Path) -> PathBuf {
    containers.join(".seccomp")
}

/// The key of `policy` compiled by libseccomp `version` for this
/// architecture and the running kernel (libseccomp picks actions and
/// flags by the kernel's seccomp API level, so a kernel upgrade may
/// change the program).
pub(crate) fn key(policy: &str, version: &str) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"dunnage seccomp cache 1\0");
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(b"\0");
    h.update(kernel.trim().as_bytes());
    h.update(b"\0");
    h.update(version.as_bytes());
    h.update(b"\0");
    h.update(policy.as_bytes());
    hex::encode(h.finalize())
}

fn digest(key: &str, flags: u32, program: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(flags.to_le_bytes());
    h.update(program);
    h.finalize().into()
}

/// The file's bytes for `program` under `key`.
pub(crate) fn encode(key: &str, program: &BpfProgram) -> Vec<u8> {
    let bytes = program.to_bytes();
    let flags = program.flags();
    let mut out = Vec::with_capacity(HEADER + bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&digest(key, flags, &bytes));
    out.extend_from_slice(&bytes);
    out
}

/// The program in `file` if it is a whole, unmodified entry for `key`.
pub(crate) fn decode(key: &str, file: &[u8]) -> Option<BpfProgram> {
    let (magic, rest) = file.split_at_checked(MAGIC.len())?;
    if magic != MAGIC {
        return None;
    }
    let (flags, rest) = rest.split_at_checked(4)?;
    let flags = u32::from_le_bytes(flags.try_into().ok()?);
    let (sum, program) = rest.split_at_checked(32)?;
    if sum != digest(key, flags, program) {
        return None;
    }
    BpfProgram::from_bytes(program)
        .ok()
        .map(|p| p.with_flags(flags))
}

/// The cached program of `key` in `dir`, if there is a valid one.
pub(crate) fn load(dir: &Path, key: &str) -> Option<BpfProgram> {
    use std::io::Read;
    let f = std::fs::File::open(dir.join(format!("{key}.bpf"))).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut bytes).ok()?;
    decode(key, &bytes)
}

/// Keep `program` as the entry of `key` in `dir` (best effort: a cache
/// that cannot be written only costs the next process a compile).
pub(crate) fn store(dir: &Path, key: &str, program: &BpfProgram) {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let _ = dunnage_base::fs::write_replace(
        &dir.join(format!("{key}.bpf")),
        &encode(key, program),
        0o600,
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn program() -> BpfProgram {
        // ld [0]; ret ALLOW
        let mut b = vec![0x20, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]);
        BpfProgram::from_bytes(&b).unwrap().with_flags(2)
    }

    #[test]
    fn round_trip() {
        let k = key("{}", "2.5.4");
        let p = program();
        assert_eq!(decode(&k, &encode(&k, &p)), Some(p));
    }

    #[test]
    fn keys_differ_by_policy_and_version() {
        assert_ne!(key("{}", "2.5.4"), key("{ }", "2.5.4"));
        assert_ne!(key("{}", "2.5.4"), key("{}", "2.5.5"));
    }

    #[test]
    fn hostile_files_are_ignored() {
        let k = key("{}", "2.5.4");
        let good = encode(&k, &program());
        // Every truncation, every single-bit flip, another key, junk.
        for n in 0..good.len() {
            assert_eq!(decode(&k, &good[..n]), None, "truncated to {n}");
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(decode(&k, &bad), None, "byte {i} bit {bit}");
            }
        }
        assert_eq!(decode(&key("{ }", "2.5.4"), &good), None);
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&k, &longer), None);
        assert_eq!(decode(&k, b""), None);
        assert_eq!(decode(&k, &[0xff; 100]), None);
    }

    #[test]
    fn load_and_store() {
        let tmp = dunnage_testsupport::TempDir::new("seccomp-cache").unwrap();
        let d = dir(tmp.path());
        let k = key("{}", "2.5.4");
        assert_eq!(load(&d, &k), None);
        store(&d, &k, &program());
        assert_eq!(load(&d, &k), Some(program()));
        // A file cut short by hand is not used.
        let f = d.join(format!("{k}.bpf"));
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(load(&d, &k), None);
        // Not a file: ignored too.
        std::fs::remove_file(&f).unwrap();
        std::fs::create_dir(&f).unwrap();
        assert_eq!(load(&d, &k), None);
    }
}
