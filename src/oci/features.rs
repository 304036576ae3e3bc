//! The runtime-spec `features` document (what `runc features` prints):
//! what [`OciConfig::to_container`](super::OciConfig::to_container)
//! honours, derived from the same facts the conversion uses.

use serde_json::{Value, json};

use crate::profile::ALL_CAPABILITIES;

/// The namespaces a converted config may list (the Container always makes
/// mount, pid, uts and ipc; network is new, joined by path, or the host's).
pub const NAMESPACES: [&str; 5] = ["mount", "network", "uts", "pid", "ipc"];

/// The hook kinds kept as data for the runtime to run.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The options of a user bind mount the conversion honours (other
/// options are refused; tmpfs options are passed to the kernel).
pub const MOUNT_OPTIONS: [&str; 6] = ["bind", "rbind", "ro", "rw", "private", "rprivate"];

/// The seccomp actions the compiler takes (`SCMP_ACT_NOTIFY` is refused).
const SECCOMP_ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
];

const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const SECCOMP_FLAGS: [&str; 3] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/// The architectures libseccomp 2.5 knows on x86 and the usual others.
const SECCOMP_ARCHS: [&str; 9] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_MIPS64",
];

/// The features document. Seccomp is enabled when the crate is built
/// with feature `seccomp`.
pub fn features() -> Value {
    let seccomp = if cfg!(feature = "seccomp") {
        json!({
            "enabled": true,
            "actions": SECCOMP_ACTIONS,
            "operators": SECCOMP_OPERATORS,
            "archs": SECCOMP_ARCHS,
            "knownFlags": SECCOMP_FLAGS,
            "supportedFlags": SECCOMP_FLAGS,
        })
    } else {
        json!({"enabled": false})
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": &ALL_CAPABILITIES[..],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": seccomp,
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.version": "1.2.0",
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_the_spec_type() {
        let f: oci_spec::runtime::Features = serde_json::from_value(features()).unwrap();
        assert_eq!(f.oci_version_max(), "1.2.0");
        let linux = f.linux().as_ref().unwrap();
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), NAMESPACES.len());
    }

    #[test]
    fn agrees_with_the_conversion() {
        // Every hook kind is honoured by the field table, every other
        // namespace kind is refused by the conversion.
        for hook in HOOKS {
            let v = json!({"hooks": {hook: [{"path": "/bin/true"}]}});
            super::super::fields::refuse_unsupported(&v).unwrap();
        }
        for ns in ["user", "cgroup", "time"] {
            assert!(!NAMESPACES.contains(&ns));
        }
        for cap in ALL_CAPABILITIES {
            assert!(dunnage_namespaces::caps::capability_number(cap).is_some());
        }
    }
}
