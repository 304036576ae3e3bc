//! The cgroup v2 device filter: device rules compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! cgroup v1 has a `devices` controller with an allow/deny list; cgroup v2
//! instead runs an eBPF program for every device access (open, mknod) of a
//! task in the cgroup. [`DeviceFilter::new`] gives the same answers as the
//! v1 controller would after the same rules were written to a fresh
//! cgroup's `devices.allow` / `devices.deny`, as runc does:
//!
//! - The state is a default verdict plus a list of exceptions, and starts
//!   as "deny everything" (runc's starting point on v2).
//! - A rule of type `a` resets the state: `allow a` allows everything,
//!   `deny a` denies everything; exceptions are dropped (the kernel ignores
//!   the numbers and access of an `a` rule).
//! - A rule whose verdict differs from the default adds its access to the
//!   exception with the same type, major and minor (or adds one); a rule
//!   with the default's verdict takes its access away from that exact
//!   exception. So a later rule overrides an earlier one for the same
//!   device; a rule for `c 1:3` does not carve a hole in an exception
//!   `c 1:*` (v1 does not either).
//! - An access (a set of `r`, `w`, `m`) to a device is checked like the
//!   kernel checks v1: with a default of deny it is allowed when one
//!   matching exception grants all of it; with a default of allow it is
//!   denied when one matching exception names any of it.
//!
//! The program (runc and crun emit the same layout): a 6-instruction
//! prologue loads the device type into r2, the requested access into r3,
//! major into r4 and minor into r5; each exception is a block of 3 to 8
//! instructions that jumps to the next block on a mismatch and otherwise
//! returns the exception's verdict; a 2-instruction epilogue returns the
//! default verdict. [`DeviceFilter::instructions`] shows it without
//! loading anything; `crate::bpf` loads and attaches it.

use crate::error::{Error, Result};
use crate::resources::DeviceRule;

/// `BPF_DEVCG_ACC_MKNOD`, `_READ`, `_WRITE`: the access bits of
/// `struct bpf_cgroup_dev_ctx`'s `access_type >> 16`.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
/// `BPF_DEVCG_DEV_BLOCK`, `_CHAR`: the low 16 bits of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// The opcode: class, operation and source bits.
    pub code: u8,
    /// The destination register (0..=10).
    pub dst: u8,
    /// The source register (0..=10).
    pub src: u8,
    /// The offset: of a memory load, or of a jump (in instructions, from
    /// the next one).
    pub off: i16,
    /// The immediate operand.
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | op | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const ALU_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K: u8 = 0x04 | 0xb0; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JEQ_K: u8 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x05 | 0x50 | 0x08; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel reads: code, registers (dst in the low
    /// nibble), offset and immediate in native (little-endian) order.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// One exception of the emulated v1 list: a device pattern and its
/// access; its verdict is the opposite of the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceException {
    /// `b` or `c`.
    pub kind: char,
    /// Major number; `None` is `*`.
    pub major: Option<u32>,
    /// Minor number; `None` is `*`.
    pub minor: Option<u32>,
    /// `ACC_*` bits: 1 mknod, 2 read, 4 write.
    access: i32,
}

impl DeviceException {
    /// The access as the v1 files spell it (`rwm`, `r`, `m`).
    pub fn access(&self) -> String {
        let mut s = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                s.push(c);
            }
        }
        s
    }
}

/// Device rules compiled for a v2 cgroup: the effective v1-style state
/// and the eBPF program that enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    default_allow: bool,
    exceptions: Vec<DeviceException>,
    insns: Vec<Insn>,
}

impl DeviceFilter {
    /// Compile `rules`, applied in order (see the module docs).
    ///
    /// Fails with [`Error::InvalidValue`] on a rule with an unknown type
    /// or an access that is empty or has letters other than `r`, `w`, `m`.
    pub fn new(rules: &[DeviceRule]) -> Result<DeviceFilter> {
        let mut default_allow = false;
        let mut exceptions: Vec<DeviceException> = Vec::new();
        for r in rules {
            let access = parse_access(r)?;
            let kind = match r.kind {
                'a' => {
                    default_allow = r.allow;
                    exceptions.clear();
                    continue;
                }
                'b' | 'c' => r.kind,
                _ => return Err(bad_rule(r)),
            };
            let key =
                |e: &DeviceException| e.kind == kind && e.major == r.major && e.minor == r.minor;
            let pos = exceptions.iter().position(key);
            if r.allow != default_allow {
                match pos {
                    Some(i) => exceptions[i].access |= access,
                    None => exceptions.push(DeviceException {
                        kind,
                        major: r.major,
                        minor: r.minor,
                        access,
                    }),
                }
            } else if let Some(i) = pos {
                exceptions[i].access &= !access;
                if exceptions[i].access == 0 {
                    exceptions.remove(i);
                }
            }
        }
        let insns = program(default_allow, &exceptions);
        Ok(DeviceFilter {
            default_allow,
            exceptions,
            insns,
        })
    }

    /// Whether a device no exception names is allowed.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The exceptions to the default, in the order they are checked.
    pub fn exceptions(&self) -> &[DeviceException] {
        &self.exceptions
    }

    /// The program's instructions.
    pub fn instructions(&self) -> &[Insn] {
        &self.insns
    }

    /// The program as the bytes `bpf(BPF_PROG_LOAD)` takes.
    pub fn bytes(&self) -> Vec<u8> {
        self.insns.iter().flat_map(|i| i.to_bytes()).collect()
    }
}

fn bad_rule(r: &DeviceRule) -> Error {
    Error::invalid("devices", format!("bad rule {:?}", r.v1_line()))
}

fn parse_access(r: &DeviceRule) -> Result<i32> {
    if r.access.is_empty() {
        return Err(bad_rule(r));
    }
    r.access.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | ACC_READ),
        'w' => Ok(acc | ACC_WRITE),
        'm' => Ok(acc | ACC_MKNOD),
        _ => Err(bad_rule(r)),
    })
}

/// The registers the prologue fills.
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

fn program(default_allow: bool, exceptions: &[DeviceException]) -> Vec<Insn> {
    let mut p = vec![
        // r1 points at struct bpf_cgroup_dev_ctx { access_type, major, minor }.
        Insn::new(LDX_MEM_W, R_TYPE, 1, 0, 0),
        Insn::new(ALU_AND_K, R_TYPE, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, R_ACCESS, 1, 0, 0),
        Insn::new(ALU_RSH_K, R_ACCESS, 0, 0, 16),
        Insn::new(LDX_MEM_W, R_MAJOR, 1, 4, 0),
        Insn::new(LDX_MEM_W, R_MINOR, 1, 8, 0),
    ];
    for e in exceptions {
        p.extend(block(e, !default_allow));
    }
    p.push(Insn::new(ALU_MOV_K, 0, 0, 0, i32::from(default_allow)));
    p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// One exception's block: every test jumps past the block when it fails;
/// passing them all returns `allow`.
fn block(e: &DeviceException, allow: bool) -> Vec<Insn> {
    // Jumps are written with off = 0 and patched once the length is known.
    let mut b = Vec::with_capacity(8);
    let kind = if e.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
    b.push(Insn::new(JMP_JNE_K, R_TYPE, 0, 0, kind));
    if e.access != ACC_ALL {
        // r1 = requested & granted
        b.push(Insn::new(ALU_MOV_X, 1, R_ACCESS, 0, 0));
        b.push(Insn::new(ALU_AND_K, 1, 0, 0, e.access));
        if allow {
            // An allow exception must grant everything requested.
            b.push(Insn::new(JMP_JNE_X, 1, R_ACCESS, 0, 0));
        } else {
            // A deny exception applies when it names any of it.
            b.push(Insn::new(JMP_JEQ_K, 1, 0, 0, 0));
        }
    }
    // Device numbers are below 2^32; the kernel's are below 2^20, so a
    // number the sign-extended immediate cannot hold matches no device.
    for (reg, num) in [(R_MAJOR, e.major), (R_MINOR, e.minor)] {
        if let Some(n) = num {
            let imm = i32::try_from(n).unwrap_or(-1);
            b.push(Insn::new(JMP_JNE_K, reg, 0, 0, imm));
        }
    }
    b.push(Insn::new(ALU_MOV_K, 0, 0, 0, i32::from(allow)));
    b.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if matches!(insn.code, JMP_JNE_K | JMP_JNE_X | JMP_JEQ_K) {
            // From the instruction after the jump to the end of the block.
            insn.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the program on one access, as the kernel would.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            pc += 1;
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let imm64 = i64::from(i.imm) as u64;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i64::from(i.off)) as usize;
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1);
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU_AND_K => r[d] = u64::from((r[d] as u32) & (i.imm as u32)),
                ALU_RSH_K => r[d] = u64::from((r[d] as u32) >> i.imm),
                ALU_MOV_K => r[d] = u64::from(i.imm as u32),
                ALU_MOV_X => r[d] = u64::from(r[s] as u32),
                JMP_JEQ_K => jump(r[d] == imm64, &mut pc),
                JMP_JNE_K => jump(r[d] != imm64, &mut pc),
                JMP_JNE_X => jump(r[d] != r[s], &mut pc),
                JMP_EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    const R: i32 = ACC_READ;
    const W: i32 = ACC_WRITE;
    const M: i32 = ACC_MKNOD;
    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;

    /// Docker's rules for `docker run` (RUNTIME.md).
    fn docker() -> Vec<DeviceRule> {
        let mut v = vec![DeviceRule::new(false, 'a', None, None, "rwm")];
        for (ma, mi) in [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)] {
            v.push(DeviceRule::new(true, 'c', Some(ma), Some(mi), "rwm"));
        }
        v.push(DeviceRule::new(false, 'c', Some(10), Some(229), "rwm"));
        v
    }

    #[test]
    fn dockers_rules_compile_to_runcs_layout() {
        let f = DeviceFilter::new(&docker()).unwrap();
        assert!(!f.default_allow());
        assert_eq!(f.exceptions().len(), 6, "deny c 10:229 removes nothing");
        // 6 prologue + 6 blocks of 5 (type, major, minor, mov, exit) + 2.
        let p = f.instructions();
        assert_eq!(p.len(), 6 + 6 * 5 + 2);
        assert_eq!(
            p[..6],
            [
                Insn::new(0x61, 2, 1, 0, 0),
                Insn::new(0x54, 2, 0, 0, 0xffff),
                Insn::new(0x61, 3, 1, 0, 0),
                Insn::new(0x74, 3, 0, 0, 16),
                Insn::new(0x61, 4, 1, 4, 0),
                Insn::new(0x61, 5, 1, 8, 0),
            ]
        );
        // The first block: c 1:5 rwm.
        assert_eq!(
            p[6..11],
            [
                Insn::new(0x55, 2, 0, 4, 2),
                Insn::new(0x55, 4, 0, 3, 1),
                Insn::new(0x55, 5, 0, 2, 5),
                Insn::new(0xb4, 0, 0, 0, 1),
                Insn::new(0x95, 0, 0, 0, 0),
            ]
        );
        assert_eq!(
            p[36..],
            [Insn::new(0xb4, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)]
        );
        assert_eq!(&f.bytes()[..8], &[0x61, 0x12, 0, 0, 0, 0, 0, 0]);
        assert_eq!(run(p, C, R | W, 1, 3), 1);
        assert_eq!(run(p, C, M, 5, 1), 1);
        assert_eq!(run(p, C, R, 10, 229), 0);
        assert_eq!(run(p, B, R, 1, 3), 0, "a block device 1:3 is not /dev/null");
        assert_eq!(run(p, C, R, 1, 7), 0);
    }

    #[test]
    fn partial_access_is_granted_only_when_covered() {
        let f = DeviceFilter::new(&[
            DeviceRule::new(false, 'a', None, None, "rwm"),
            DeviceRule::new(true, 'c', Some(1), Some(3), "rwm"),
            DeviceRule::new(true, 'c', Some(1), Some(5), "r"),
        ])
        .unwrap();
        let p = f.instructions();
        // Block of c 1:5 r: type, 3 for the access, major, minor, mov, exit.
        assert_eq!(p.len(), 6 + 5 + 8 + 2);
        assert_eq!(run(p, C, R, 1, 5), 1);
        assert_eq!(run(p, C, W, 1, 5), 0);
        assert_eq!(run(p, C, R | W, 1, 5), 0);
        assert_eq!(run(p, C, M, 1, 5), 0);
        assert_eq!(run(p, C, R | W | M, 1, 3), 1);
    }

    #[test]
    fn later_rules_override_earlier_ones_for_the_same_device() {
        let f = DeviceFilter::new(&[
            DeviceRule::new(false, 'a', None, None, "rwm"),
            DeviceRule::new(true, 'c', Some(1), Some(5), "rwm"),
            DeviceRule::new(false, 'c', Some(1), Some(5), "w"),
            DeviceRule::new(true, 'c', Some(1), Some(5), "r"), // merges, no effect
            DeviceRule::new(true, 'c', None, None, "m"),
            DeviceRule::new(true, 'b', Some(8), None, "r"),
            DeviceRule::new(true, 'b', Some(8), None, "w"),
        ])
        .unwrap();
        let p = f.instructions();
        assert_eq!(run(p, C, R | M, 1, 5), 1);
        assert_eq!(run(p, C, W, 1, 5), 0);
        assert_eq!(run(p, C, R | W, 1, 5), 0);
        assert_eq!(run(p, C, M, 4, 64), 1, "c *:* m");
        assert_eq!(run(p, B, M, 8, 0), 0);
        assert_eq!(run(p, B, R | W, 8, 17), 1, "b 8:* r and w merged");
        // All exceptions dropped by a final reset.
        let mut rules = vec![DeviceRule::new(true, 'c', Some(1), Some(5), "rwm")];
        rules.push(DeviceRule::new(false, 'a', Some(1), None, "r"));
        let f = DeviceFilter::new(&rules).unwrap();
        assert!(f.exceptions().is_empty());
        assert_eq!(f.instructions().len(), 8);
        assert_eq!(run(f.instructions(), C, R, 1, 5), 0);
    }

    #[test]
    fn allow_all_with_deny_exceptions_denies_any_named_access() {
        let f = DeviceFilter::new(&[
            DeviceRule::new(true, 'a', None, None, "rwm"),
            DeviceRule::new(false, 'c', Some(1), Some(5), "w"),
            DeviceRule::new(false, 'b', None, None, "m"),
            DeviceRule::new(false, 'c', Some(10), Some(229), "rwm"),
            DeviceRule::new(true, 'c', Some(10), Some(229), "rwm"), // removes it again
        ])
        .unwrap();
        assert!(f.default_allow());
        assert_eq!(f.exceptions().len(), 2);
        assert_eq!(f.exceptions()[0].access(), "w");
        let p = f.instructions();
        assert_eq!(run(p, C, R, 1, 5), 1);
        assert_eq!(run(p, C, R | W, 1, 5), 0);
        assert_eq!(run(p, B, M, 7, 0), 0);
        assert_eq!(run(p, B, R, 7, 0), 1);
        assert_eq!(run(p, C, R | W, 10, 229), 1);
    }

    #[test]
    fn no_rules_deny_everything_and_huge_numbers_match_nothing() {
        let f = DeviceFilter::new(&[]).unwrap();
        assert_eq!(f.instructions().len(), 8);
        assert_eq!(run(f.instructions(), C, R, 1, 3), 0);
        let f =
            DeviceFilter::new(&[DeviceRule::new(true, 'c', Some(u32::MAX), None, "rwm")]).unwrap();
        assert_eq!(run(f.instructions(), C, R, u32::MAX, 0), 0);
        assert_eq!(run(f.instructions(), C, R, 1, 0), 0);
    }

    #[test]
    fn malformed_rules_are_refused() {
        for r in [
            DeviceRule::new(true, 'x', None, None, "rwm"),
            DeviceRule::new(true, 'c', None, None, ""),
            DeviceRule::new(true, 'c', None, None, "rwx"),
            DeviceRule::new(true, 'a', None, None, "q"),
            DeviceRule::new(true, 'c', Some(1), Some(3), "r\0"),
        ] {
            assert!(
                matches!(
                    DeviceFilter::new(std::slice::from_ref(&r)),
                    Err(Error::InvalidValue { .. })
                ),
                "{r:?}"
            );
        }
    }
}
