//! Seccomp: an OCI profile compiled with libseccomp (feature `seccomp`) and
//! loaded by a spawned child; which syscalls it denies and allows, checked
//! from inside.
#![cfg(feature = "seccomp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_namespaces::seccomp::{BpfProgram, Profile, SeccompError, SeccompWarning, compile};
use dunnage_namespaces::{Command, ProcessKnobs, Stdio};
use dunnage_testsupport::require_root;

/// What a child needs after the filter is loaded (the Rust runtime's exit
/// path, the rest of the setup, exec of cat).
const BASE: &[&str] = &[
    "read",
    "write",
    "close",
    "exit",
    "exit_group",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "prctl",
    "capget",
    "capset",
    "setgroups",
    "setresuid",
    "setresgid",
    "execve",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "openat",
    "open",
    "fstat",
    "newfstatat",
    "statx",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "access",
    "pread64",
    "lseek",
    "uname",
    "getpid",
    "close_range",
    "futex",
    "sigaltstack",
    "wait4",
    "fadvise64",
    "sched_getaffinity",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "poll",
    "ioctl",
    "dup2",
    "dup3",
    "fcntl",
    "madvise",
    "mremap",
    "readlink",
    "faccessat2",
    "sendfile",
    "copy_file_range",
    "splice",
];

/// A Docker-like profile: EPERM by default, three architectures, the clone
/// rule with MASKED_EQ, personality allowed for Docker's five values,
/// clone3 returning ENOSYS, and names libseccomp 2.5 does not know.
fn docker_like() -> Profile {
    let mut allowed: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
    allowed.extend(["mseal", "listmount", "dunnage_no_such_syscall"].map(String::from));
    let allowed = serde_json::to_string(&allowed).unwrap();
    let json = format!(
        r#"{{
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {{"names": {allowed}, "action": "SCMP_ACT_ALLOW"}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}}]}},
            {{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}}
        ]
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

/// A 32-bit syscall without arguments through `int 0x80` (the kernel here
/// runs them); returns the raw result (-errno on failure).
#[cfg(target_arch = "x86_64")]
fn int80(nr: i32) -> i32 {
    let ret: i32;
    // SAFETY: a syscall through the 32-bit entry with no argument registers
    // used; eax is the number in and the result out.
    unsafe { std::arch::asm!("int 0x80", inlateout("eax") nr => ret, options(nostack)) };
    ret
}

/// In the child, after the filter: each check writes `o` when the syscall
/// did what the profile says, else a letter naming the check.
fn probe() {
    let mut out = [b'o'; 10];
    // 8: a 32-bit getpid (i386 number 20) is allowed: the profile lists
    // SCMP_ARCH_X86 and getpid.
    #[cfg(target_arch = "x86_64")]
    if int80(20) <= 0 {
        out[8] = b'i';
    }
    // 9: a 32-bit keyctl (i386 number 288) is denied with EPERM.
    #[cfg(target_arch = "x86_64")]
    if int80(288) != -libc::EPERM {
        out[9] = b'j';
    }
    // SAFETY: raw syscalls with integer arguments; the forked grandchild
    // only exits.
    unsafe {
        // 0: unshare(CLONE_NEWUSER) is denied with EPERM.
        if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
            out[0] = b'a';
        }
        // 1: keyctl is denied.
        if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno() != libc::EPERM {
            out[1] = b'b';
        }
        // 2: mount is denied.
        let rc = libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        );
        if rc != -1 || errno() != libc::EPERM {
            out[2] = b'c';
        }
        // 3: personality(0xffffffff) (a query) is allowed.
        if libc::personality(0xffff_ffff) == -1 {
            out[3] = b'd';
        }
        // 4: personality(0x1234) is denied.
        if libc::personality(0x1234) != -1 || errno() != libc::EPERM {
            out[4] = b'e';
        }
        // 5: clone with CLONE_NEWUSER is denied.
        let rc = libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWUSER | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        );
        if rc == 0 {
            libc::_exit(0);
        }
        if rc != -1 || errno() != libc::EPERM {
            out[5] = b'f';
        }
        // 6: a plain fork-like clone is allowed.
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
        if pid == 0 {
            libc::_exit(0);
        }
        let mut st = 0;
        if pid <= 0 || libc::waitpid(pid as i32, &mut st, 0) != pid as i32 {
            out[6] = b'g';
        }
        // 7: clone3 returns ENOSYS, so that libc falls back to clone.
        if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
            out[7] = b'h';
        }
        libc::write(1, out.as_ptr().cast(), out.len());
    }
}

fn run_probe(knobs: ProcessKnobs) -> String {
    let mut cmd = Command::function(|| {
        probe();
        0
    });
    let out = cmd
        .process_knobs(knobs)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn docker_like_profile_compiles_with_warnings_for_unknown_names() {
    let (prog, warnings) = compile(&docker_like()).unwrap();
    assert!(prog.len() > 50, "{prog:?}");
    assert!(warnings.contains(&SeccompWarning::UnknownSyscall {
        name: "dunnage_no_such_syscall".into()
    }));
    assert!(
        !warnings
            .iter()
            .any(|w| matches!(w, SeccompWarning::UnknownSyscall { name } if name == "clone"))
    );
    // The exported bytes read back as the same program (bwrap's format).
    assert_eq!(
        BpfProgram::from_bytes(&prog.to_bytes()).unwrap().to_bytes(),
        prog.to_bytes()
    );
}

#[test]
fn docker_like_profile_denies_and_allows_from_inside() {
    require_root!();
    let (prog, _) = compile(&docker_like()).unwrap();
    let knobs = ProcessKnobs {
        seccomp: Some(prog.clone()),
        ..ProcessKnobs::default()
    };
    assert_eq!(run_probe(knobs), "oooooooooo");
    // Loaded last, after no_new_privs, the same.
    let knobs = ProcessKnobs {
        seccomp: Some(prog),
        no_new_privileges: true,
        ..ProcessKnobs::default()
    };
    assert_eq!(run_probe(knobs), "oooooooooo");
}

#[test]
fn the_status_shows_one_filter_in_filter_mode() {
    // With no_new_privs no privilege is needed.
    let (prog, _) = compile(&docker_like()).unwrap();
    let knobs = ProcessKnobs {
        seccomp: Some(prog),
        no_new_privileges: true,
        ..ProcessKnobs::default()
    };
    let mut cmd = Command::new("/bin/cat");
    cmd.arg("/proc/self/status").process_knobs(knobs);
    let out = cmd.stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let status = String::from_utf8(out.stdout).unwrap();
    let field = |f: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(f))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    let base = std::fs::read_to_string("/proc/self/status").unwrap();
    let own: u32 = base
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    assert_eq!(field("Seccomp_filters:"), (own + 1).to_string());
}

#[test]
fn bad_profiles_are_typed_errors() {
    let base = docker_like();
    type Check = fn(&SeccompError) -> bool;
    let cases: Vec<(Profile, Check)> = vec![
        (
            Profile {
                default_action: "SCMP_ACT_EXPLODE".into(),
                ..base.clone()
            },
            |e| matches!(e, SeccompError::UnknownAction { .. }),
        ),
        (
            Profile {
                architectures: vec!["SCMP_ARCH_Z80".into()],
                ..base.clone()
            },
            |e| matches!(e, SeccompError::UnknownArch { .. }),
        ),
        (
            Profile {
                flags: vec!["SECCOMP_FILTER_FLAG_BOGUS".into()],
                ..base.clone()
            },
            |e| matches!(e, SeccompError::UnknownFlag { .. }),
        ),
        (
            Profile {
                default_errno_ret: Some(70000),
                ..base.clone()
            },
            |e| matches!(e, SeccompError::Errno { errno: 70000 }),
        ),
        (
            Profile {
                default_action: "SCMP_ACT_NOTIFY".into(),
                ..base.clone()
            },
            |e| matches!(e, SeccompError::UnsupportedAction { .. }),
        ),
    ];
    for (profile, expected) in cases {
        let err = compile(&profile).unwrap_err();
        assert!(expected(&err), "{err:?}");
    }
    let mut p = base.clone();
    p.syscalls[1].args[0].op = "SCMP_CMP_ABOUT".into();
    assert!(matches!(
        compile(&p),
        Err(SeccompError::UnknownOperator { .. })
    ));
    let mut p = base.clone();
    p.syscalls[1].args[0].index = 6;
    assert!(matches!(
        compile(&p),
        Err(SeccompError::ArgIndex { index: 6 })
    ));
    let mut p = base.clone();
    p.syscalls[0].names.clear();
    assert!(matches!(
        compile(&p),
        Err(SeccompError::EmptyRule { index: 0 })
    ));
    let mut p = base;
    p.syscalls[0].action = "allow".into();
    assert!(matches!(
        compile(&p),
        Err(SeccompError::UnknownAction { .. })
    ));
}

#[test]
fn a_precompiled_program_is_loaded_as_given() {
    // ret ERRNO(EPERM) for everything but what BASE needs is complicated to
    // write by hand; use the compiled profile's bytes, as bwrap --seccomp
    // would read them from an fd.
    require_root!();
    let (prog, _) = compile(&docker_like()).unwrap();
    let bytes = prog.to_bytes();
    let raw = BpfProgram::read_from(&bytes[..]).unwrap();
    let knobs = ProcessKnobs {
        seccomp: Some(raw),
        ..ProcessKnobs::default()
    };
    assert_eq!(run_probe(knobs), "oooooooooo");
}

#[test]
fn podmans_real_profile_compiles_with_only_unknown_name_warnings() {
    // containers-common's profile (Docker's format: its archMap,
    // includes and excludes are not OCI fields and are ignored here; the
    // rules themselves are OCI rules).
    let path = "/usr/share/containers/seccomp.json";
    let Ok(text) = std::fs::read_to_string(path) else {
        dunnage_testsupport::skip("podman profile", "needs containers-common");
        return;
    };
    let profile: Profile = serde_json::from_str(&text).unwrap();
    assert_eq!(profile.default_errno_ret, Some(38));
    let (prog, warnings) = compile(&profile).unwrap();
    assert!(prog.len() > 100, "{prog:?}");
    for w in &warnings {
        let SeccompWarning::UnknownSyscall { name } = w else {
            panic!("{w:?}");
        };
        // Only names newer than libseccomp 2.5.4 may be unknown.
        assert!(
            !["read", "clone", "personality", "open"].contains(&name.as_str()),
            "{name}"
        );
    }
}

#[test]
fn a_bad_profile_on_a_command_fails_before_anything_runs() {
    let dir = dunnage_testsupport::TempDir::new("seccomp-bad").unwrap();
    let mut cmd = Command::new("/bin/touch");
    cmd.arg(dir.join("ran"));
    let mut bad = docker_like();
    bad.syscalls[1].args[0].op = "SCMP_CMP_SOMETIMES".into();
    let err = cmd.seccomp_profile(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            dunnage_namespaces::Error::Confine(dunnage_namespaces::ConfineError::Seccomp(
                SeccompError::UnknownOperator { .. }
            ))
        ),
        "{err:?}"
    );
    // The command is unchanged: no filter, and it still runs.
    assert!(cmd.knobs().seccomp.is_none());
    let warnings = cmd.seccomp_profile(&docker_like()).unwrap();
    assert!(!warnings.is_empty());
    assert!(!dir.join("ran").exists());
}

/// The loaded libseccomp's version, as a cache of compiled programs keys
/// on it: three numbers, at least 2.5 (Debian 12's).
#[test]
fn library_version_is_major_minor_micro() {
    let v = dunnage_namespaces::seccomp::library_version().unwrap();
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{v}");
    assert!((parts[0], parts[1]) >= (2, 5), "{v}");
}
