//! Hostile input to the confinement parsers and loaders: random bytes as a
//! BPF program, mangled seccomp profiles and capability, rlimit and sysctl
//! names. Nothing panics; what the kernel refuses is a typed error of the
//! spawn, with nothing run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dunnage_namespaces::seccomp::{BpfProgram, Profile, SeccompError};
use dunnage_namespaces::{CapSet, Command, Error, Kind, Rlimit, Stdio, sysctl::Sysctl};
use dunnage_testsupport::{Rng, TempDir};

#[test]
fn random_bytes_are_a_typed_error_or_a_program() {
    let mut rng = Rng::new(9);
    for _ in 0..2000 {
        let len = rng.below(64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        match BpfProgram::from_bytes(&bytes) {
            Ok(p) => assert_eq!(p.to_bytes(), bytes),
            Err(SeccompError::ProgramSize { len: l }) => assert_eq!(l, len),
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[test]
fn a_garbage_program_fails_the_spawn_at_the_seccomp_step() {
    // Random instructions: the kernel's checker refuses them (EINVAL), and
    // with no_new_privs no privilege is needed to get that far.
    let dir = TempDir::new("hostile-bpf").unwrap();
    let mut rng = Rng::new(3);
    let bytes: Vec<u8> = (0..8 * 16).map(|_| rng.below(256) as u8).collect();
    let prog = BpfProgram::from_bytes(&bytes).unwrap();
    let mut cmd = Command::new("/bin/touch");
    cmd.arg(dir.join("ran"))
        .no_new_privileges(true)
        .seccomp(prog)
        .stdout(Stdio::null());
    let err = cmd.status().unwrap_err();
    assert!(
        matches!(err, Error::Setup { name: "seccomp", ref source, .. } if source.raw_os_error() == Some(libc::EINVAL)),
        "{err:?}"
    );
    assert!(!dir.join("ran").exists());
}

#[test]
fn mangled_profiles_never_panic() {
    let base = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":2,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#;
    let mut rng = Rng::new(17);
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[i] = rng.below(128) as u8,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, b"{}[]\",:0x"[rng.below(9) as usize]),
            }
        }
        if let Ok(profile) = serde_json::from_slice::<Profile>(&bytes) {
            parsed += 1;
            #[cfg(feature = "seccomp")]
            let _ = dunnage_namespaces::seccomp::compile(&profile);
            #[cfg(not(feature = "seccomp"))]
            let _ = profile;
        }
    }
    assert!(parsed > 0);
}

#[test]
fn hostile_names_are_typed_errors() {
    let names = [
        "",
        " ",
        "CAP_",
        "CAP_\u{0}",
        "../CAP_KILL",
        "CAP_KILL CAP_CHOWN",
        "ＣＡＰ_KILL",
        "cap_sys_admin\n",
        "64",
        "-1",
    ];
    for n in names {
        // Surrounding white space is trimmed; nothing else is forgiven.
        let r = CapSet::parse([n]);
        if n.trim() == "cap_sys_admin" {
            assert!(r.is_ok(), "{n:?}");
        } else {
            assert!(r.is_err(), "{n:?}");
        }
        assert!(Rlimit::new(n, 1, 1).is_err(), "{n:?}");
        assert!(
            Sysctl::new(n, "1", Kind::Net | Kind::Ipc | Kind::Uts).is_err(),
            "{n:?}"
        );
    }
    for n in [
        "net.ipv4.\u{0}x",
        "net/../../etc/passwd",
        "net.ipv4..x",
        "fs.mqueue..",
    ] {
        assert!(Sysctl::new(n, "1", Kind::Net | Kind::Ipc).is_err(), "{n:?}");
    }
}
