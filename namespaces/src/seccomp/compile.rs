//! Compile an OCI profile to BPF with libseccomp (feature `seccomp`).

use std::io::{Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use super::{
    BpfProgram, FLAG_LOG, FLAG_SPEC_ALLOW, FLAG_TSYNC, Profile, SeccompError, SeccompWarning,
};

fn library(op: &'static str) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    move |e| SeccompError::Library {
        op,
        message: e.to_string(),
    }
}

fn action(
    name: &str,
    errno: Option<u32>,
    default_errno: Option<u32>,
) -> Result<ScmpAction, SeccompError> {
    let errno = errno.or(default_errno).unwrap_or(libc::EPERM as u32);
    if errno > u32::from(u16::MAX) {
        return Err(SeccompError::Errno { errno });
    }
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno as i32),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno as u16),
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(SeccompError::UnsupportedAction {
                action: name.to_owned(),
            });
        }
        _ => {
            return Err(SeccompError::UnknownAction {
                action: name.to_owned(),
            });
        }
    })
}

fn flag(name: &str) -> Result<u32, SeccompError> {
    match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => Ok(FLAG_TSYNC),
        "SECCOMP_FILTER_FLAG_LOG" => Ok(FLAG_LOG),
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => Ok(FLAG_SPEC_ALLOW),
        _ => Err(SeccompError::UnknownFlag {
            flag: name.to_owned(),
        }),
    }
}

fn condition(arg: &super::Arg) -> Result<ScmpArgCompare, SeccompError> {
    if arg.index > 5 {
        return Err(SeccompError::ArgIndex { index: arg.index });
    }
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // runc's reading: `value` is the mask, `valueTwo` what the masked
        // argument must equal.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                arg.index,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            ));
        }
        _ => {
            return Err(SeccompError::UnknownOperator { op: arg.op.clone() });
        }
    };
    Ok(ScmpArgCompare::new(arg.index, op, arg.value))
}

/// The version of the libseccomp library loaded at run time, as
/// `major.minor.micro` (what compiled programs depend on, besides the
/// profile and the architecture: a cache of compiled programs keys on it).
pub fn library_version() -> Result<String, SeccompError> {
    let v = libseccomp::ScmpVersion::current().map_err(library("read the library version"))?;
    Ok(format!("{}.{}.{}", v.major, v.minor, v.micro))
}

/// Compile `profile` to a BPF program (with its filter flags), and the
/// warnings for what was left out: syscall names this libseccomp does not
/// know are skipped, as runc does. Everything else that is wrong is a typed
/// error.
pub fn compile(profile: &Profile) -> Result<(BpfProgram, Vec<SeccompWarning>), SeccompError> {
    let default = action(&profile.default_action, None, profile.default_errno_ret)?;
    let mut flags = 0;
    for f in &profile.flags {
        flags |= flag(f)?;
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(library("create filter"))?;
    for name in &profile.architectures {
        let arch: ScmpArch = name
            .parse()
            .map_err(|_| SeccompError::UnknownArch { arch: name.clone() })?;
        ctx.add_arch(arch).map_err(library("add architecture"))?;
    }
    let mut warnings = Vec::new();
    for (index, rule) in profile.syscalls.iter().enumerate() {
        if rule.names.is_empty() {
            return Err(SeccompError::EmptyRule { index });
        }
        let act = action(&rule.action, rule.errno_ret, profile.default_errno_ret)?;
        let conditions = rule
            .args
            .iter()
            .map(condition)
            .collect::<Result<Vec<_>, _>>()?;
        if act == default {
            // libseccomp refuses a rule that does what the default does.
            continue;
        }
        // Conditions on one argument index more than once are alternatives:
        // one rule each (libseccomp ANDs the conditions of one rule).
        let repeated = rule
            .args
            .iter()
            .enumerate()
            .any(|(i, a)| rule.args[..i].iter().any(|b| b.index == a.index));
        for name in &rule.names {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                warnings.push(SeccompWarning::UnknownSyscall { name: name.clone() });
                continue;
            };
            if conditions.is_empty() {
                ctx.add_rule(act, syscall).map_err(library("add rule"))?;
            } else if repeated {
                for c in &conditions {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                        .map_err(library("add rule"))?;
                }
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions)
                    .map_err(library("add rule"))?;
            }
        }
    }
    let program = export(&ctx)?.with_flags(flags);
    Ok((program, warnings))
}

/// `seccomp_export_bpf` into a memfd, read back.
fn export(ctx: &ScmpFilterContext) -> Result<BpfProgram, SeccompError> {
    // SAFETY: memfd_create with a C string literal.
    let fd = unsafe { libc::memfd_create(c"dunnage-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::Io {
            op: "memfd_create",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: a new fd that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(library("export BPF"))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| SeccompError::Io {
            op: "seek BPF memfd",
            source,
        })?;
    BpfProgram::read_from(file)
}
