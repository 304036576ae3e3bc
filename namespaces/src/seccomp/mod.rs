//! Seccomp: OCI profiles ([`Profile`]), compiled in the parent to a
//! classic BPF program ([`BpfProgram`]) with libseccomp (cargo feature
//! `seccomp`), and loaded by the child with a raw `seccomp(2)` as the last
//! step before exec.
//!
//! Without the feature an already compiled program is still accepted
//! ([`BpfProgram::from_bytes`], the raw `struct sock_filter` array that
//! bubblewrap's `--seccomp FD` reads).

#[cfg(feature = "seccomp")]
mod compile;
mod profile;

use std::io::Read;

#[cfg(feature = "seccomp")]
pub use compile::{compile, library_version};
pub use profile::{Arg, Profile, Rule};

/// The most instructions a classic BPF program may have (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// `SECCOMP_FILTER_FLAG_TSYNC`.
pub const FLAG_TSYNC: u32 = 1;
/// `SECCOMP_FILTER_FLAG_LOG`.
pub const FLAG_LOG: u32 = 2;
/// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
pub const FLAG_SPEC_ALLOW: u32 = 4;

/// A profile or program that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// An action name that is not an OCI seccomp action.
    #[error("unknown action {action:?}")]
    UnknownAction {
        /// The name as given.
        action: String,
    },
    /// `SCMP_ACT_NOTIFY` needs a listener socket, which this crate does not
    /// provide.
    #[error("action {action} is not supported")]
    UnsupportedAction {
        /// The action.
        action: String,
    },
    /// An architecture libseccomp does not know.
    #[error("unknown architecture {arch:?}")]
    UnknownArch {
        /// The name as given.
        arch: String,
    },
    /// A comparison operator that is not an OCI one.
    #[error("unknown operator {op:?}")]
    UnknownOperator {
        /// The name as given.
        op: String,
    },
    /// An argument index above 5.
    #[error("argument index {index} is not 0 to 5")]
    ArgIndex {
        /// The index given.
        index: u32,
    },
    /// An unknown or unsupported filter flag.
    #[error("unknown or unsupported flag {flag:?}")]
    UnknownFlag {
        /// The name as given.
        flag: String,
    },
    /// An errno that does not fit the 16 bits of a seccomp return value.
    #[error("errno {errno} does not fit in 16 bits")]
    Errno {
        /// The value given.
        errno: u32,
    },
    /// A rule without syscall names.
    #[error("rule {index} names no syscall")]
    EmptyRule {
        /// The rule's position in the profile.
        index: usize,
    },
    /// libseccomp refused something.
    #[error("libseccomp: {op}: {message}")]
    Library {
        /// What was being done.
        op: &'static str,
        /// libseccomp's message.
        message: String,
    },
    /// A compiled program whose size is not a whole number of 8-byte
    /// instructions, empty, or longer than [`MAX_INSTRUCTIONS`].
    #[error("a BPF program of {len} bytes is not 1 to {MAX_INSTRUCTIONS} instructions of 8 bytes")]
    ProgramSize {
        /// Its length in bytes.
        len: usize,
    },
    /// Reading a compiled program failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// Something the compilation left out, returned to the caller to report.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeccompWarning {
    /// A syscall name this libseccomp does not know (newer than it, or
    /// misspelled); its rule is skipped for this name.
    UnknownSyscall {
        /// The name.
        name: String,
    },
}

/// A classic BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`, and the
/// filter flags to load it with.
#[derive(Clone)]
pub struct BpfProgram {
    instructions: Vec<libc::sock_filter>,
    flags: u32,
}

impl std::fmt::Debug for BpfProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfProgram")
            .field("instructions", &self.instructions.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl PartialEq for BpfProgram {
    fn eq(&self, other: &BpfProgram) -> bool {
        self.flags == other.flags && self.to_bytes() == other.to_bytes()
    }
}

impl Eq for BpfProgram {}

impl BpfProgram {
    /// A program from raw `struct sock_filter` bytes in native byte order
    /// (what `seccomp_export_bpf` writes and bubblewrap's `--seccomp`
    /// reads).
    pub fn from_bytes(bytes: &[u8]) -> Result<BpfProgram, SeccompError> {
        let len = bytes.len();
        if len == 0 || !len.is_multiple_of(8) || len / 8 > MAX_INSTRUCTIONS {
            return Err(SeccompError::ProgramSize { len });
        }
        let instructions = bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(BpfProgram {
            instructions,
            flags: 0,
        })
    }

    /// A program read to its end from `reader` (a file descriptor passed
    /// as bubblewrap's `--seccomp FD`).
    pub fn read_from(mut reader: impl Read) -> Result<BpfProgram, SeccompError> {
        let mut bytes = Vec::new();
        reader
            .by_ref()
            .take((MAX_INSTRUCTIONS * 8 + 1) as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| SeccompError::Io {
                op: "read BPF program",
                source,
            })?;
        BpfProgram::from_bytes(&bytes)
    }

    /// The program as raw bytes (the inverse of [`from_bytes`](Self::from_bytes)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.instructions.len() * 8);
        for i in &self.instructions {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }

    /// The same program loaded with these `SECCOMP_FILTER_FLAG_*` flags.
    pub fn with_flags(mut self, flags: u32) -> BpfProgram {
        self.flags = flags;
        self
    }

    /// The filter flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The number of instructions.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    /// Whether the program is empty (never, for one built here).
    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// Child side: `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` on the
    /// calling thread. Needs `no_new_privs` or `CAP_SYS_ADMIN`. Returns the
    /// errno on failure. No allocation.
    pub fn load(&self) -> Result<(), libc::c_int> {
        let prog = libc::sock_fprog {
            len: self.instructions.len() as libc::c_ushort,
            filter: self.instructions.as_ptr().cast_mut(),
        };
        // SAFETY: the kernel copies the program from a valid sock_fprog.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &raw const prog,
            )
        };
        if rc != 0 {
            return Err(crate::caps::errno());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_programs_round_trip_and_bad_sizes_are_refused() {
        // ld [0]; ret ALLOW
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0x20u16.to_ne_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&0x06u16.to_ne_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&0x7fff_0000u32.to_ne_bytes());
        let prog = BpfProgram::from_bytes(&bytes).unwrap();
        assert_eq!(prog.len(), 2);
        assert_eq!(prog.to_bytes(), bytes);
        assert_eq!(BpfProgram::read_from(&bytes[..]).unwrap().to_bytes(), bytes);
        for len in [0, 7, 9, 8 * (MAX_INSTRUCTIONS + 1)] {
            let err = BpfProgram::from_bytes(&vec![0; len]).unwrap_err();
            assert!(
                matches!(err, SeccompError::ProgramSize { len: l } if l == len),
                "{err:?}"
            );
        }
        let err = BpfProgram::read_from(&vec![0u8; 8 * MAX_INSTRUCTIONS + 100][..]).unwrap_err();
        assert!(matches!(err, SeccompError::ProgramSize { .. }), "{err:?}");
    }

    #[test]
    fn profiles_deserialize_from_oci_json() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/ignored",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }"#;
        let p: Profile = serde_json::from_str(json).unwrap();
        assert_eq!(p.default_errno_ret, Some(38));
        assert_eq!(p.syscalls[1].args[0].value, 2114060288);
        assert_eq!(p.syscalls[1].args[0].value_two, 0);
        assert_eq!(p.syscalls[2].errno_ret, Some(38));
        // Go writes empty slices as null.
        let go = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": null, "flags": null,
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": null}]}"#;
        let p: Profile = serde_json::from_str(go).unwrap();
        assert!(p.architectures.is_empty() && p.syscalls[0].args.is_empty());
        for bad in [
            r#"{}"#,
            r#"{"defaultAction": 3}"#,
            r#"{"defaultAction": "A", "syscalls": [{"names": "read"}]}"#,
        ] {
            assert!(serde_json::from_str::<Profile>(bad).is_err(), "{bad}");
        }
    }
}
