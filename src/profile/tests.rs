#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// The config.json a private dockerd (docker.io 20.10.24) wrote for
/// `docker run -d --network none IMG sleep 1000` on this machine.
const DOCKER_RUN: &str = include_str!("../../tests/fixtures/oci/docker-run.json");

fn docker_config() -> serde_json::Value {
    serde_json::from_str(DOCKER_RUN).unwrap()
}

#[test]
fn capabilities_match_dockerd() {
    let c = docker_config();
    let caps = &c["process"]["capabilities"];
    let p = Profile::docker();
    for set in ["bounding", "effective", "permitted"] {
        let got: Vec<String> = serde_json::from_value(caps[set].clone()).unwrap();
        assert_eq!(got, p.capabilities, "{set}");
    }
    assert!(caps.get("inheritable").is_none() && caps.get("ambient").is_none());
}

#[test]
fn paths_match_dockerd() {
    let c = docker_config();
    let p = Profile::docker();
    let masked: Vec<String> = serde_json::from_value(c["linux"]["maskedPaths"].clone()).unwrap();
    let ro: Vec<String> = serde_json::from_value(c["linux"]["readonlyPaths"].clone()).unwrap();
    assert_eq!(masked, p.masked_paths);
    assert_eq!(ro, p.readonly_paths);
}

#[test]
fn mounts_match_dockerd() {
    let c = docker_config();
    let mounts: Vec<ProfileMount> = serde_json::from_value(c["mounts"].clone()).unwrap();
    let p = Profile::docker();
    // After the profile's mounts come docker's per-container binds
    // (resolv.conf, hostname, hosts), which are not part of the profile.
    assert_eq!(mounts[..p.mounts.len()], p.mounts[..]);
    assert!(mounts[p.mounts.len()..].iter().all(|m| m.kind == "bind"));
}

#[test]
fn device_rules_match_dockerd() {
    let c = docker_config();
    let rules: Vec<DeviceRule> =
        serde_json::from_value(c["linux"]["resources"]["devices"].clone()).unwrap();
    assert_eq!(rules, Profile::docker().device_rules);
    // Docker lists no devices: the runtime makes the default nodes and
    // allows them itself (runc adds rules for them, /dev/full's 1:7 among
    // them, which docker's list lacks).
    assert!(c["linux"].get("devices").is_none());
}

#[test]
fn seccomp_matches_dockerd() {
    let c = docker_config();
    let p = Profile::docker();
    assert_eq!(p.seccomp.as_ref(), Some(&c["linux"]["seccomp"]));
    let s = p.seccomp.unwrap();
    assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
    let rules = s["syscalls"].as_array().unwrap();
    assert_eq!(rules.len(), 12);
    let names: usize = rules
        .iter()
        .map(|r| r["names"].as_array().unwrap().len())
        .sum();
    assert_eq!(names, 357);
    let clone = rules
        .iter()
        .find(|r| r["names"].as_array().unwrap().iter().any(|n| n == "clone"))
        .unwrap();
    assert_eq!(clone["args"][0]["value"], 2114060288u64);
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
}

#[test]
fn seccomp_parses_as_namespaces_profile() {
    let s: dunnage_namespaces::SeccompProfile = serde_json::from_str(DOCKER_SECCOMP_JSON).unwrap();
    assert_eq!(s.syscalls.len(), 12);
    assert_eq!(s.architectures.len(), 3);
}

#[test]
fn sysctls_match_dockerd() {
    let c = docker_config();
    let got: BTreeMap<String, String> =
        serde_json::from_value(c["linux"]["sysctl"].clone()).unwrap();
    assert_eq!(got, Profile::docker().network_sysctls);
}

#[test]
fn privileged_as_docker_defines_it() {
    let p = Profile::privileged();
    assert!(p.is_privileged());
    assert!(!Profile::docker().is_privileged());
    assert_eq!(p.capabilities.len(), 41);
    for c in DOCKER_CAPABILITIES {
        assert!(p.capabilities.iter().any(|x| x == c), "{c}");
    }
    assert!(p.seccomp.is_none() && p.masked_paths.is_empty() && p.readonly_paths.is_empty());
    assert!(p.host_devices);
    assert_eq!(p.device_rules, vec![DeviceRule::allow_all()]);
    let sys = p.mounts.iter().find(|m| m.destination == "/sys").unwrap();
    assert!(!sys.is_readonly());
    let cg = p.mounts.iter().find(|m| m.kind == "cgroup").unwrap();
    assert!(!cg.is_readonly());
    // Everything else as docker's.
    assert_eq!(p.mounts.len(), Profile::docker().mounts.len());
}

#[test]
fn unconfined_keeps_mounts_and_devices() {
    let p = Profile::unconfined();
    let d = Profile::docker();
    assert!(p.seccomp.is_none());
    assert_eq!(p.mounts, d.mounts);
    assert_eq!(p.device_rules, d.device_rules);
    assert!(!p.host_devices);
    assert_eq!(Profile::default(), d);
}

#[test]
fn capability_names_known_to_namespaces() {
    for (i, c) in ALL_CAPABILITIES.iter().enumerate() {
        assert_eq!(
            dunnage_namespaces::caps::capability_number(c),
            Some(i as u8),
            "{c}"
        );
    }
}

#[test]
fn serde_round_trip() {
    let p = Profile::docker();
    let json = serde_json::to_string(&p).unwrap();
    let back: Profile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    assert!(p.seccomp.is_some());
}

/// Docker's policy compiles with libseccomp (names this libseccomp does
/// not know are warnings, not errors).
#[cfg(feature = "seccomp")]
#[test]
fn docker_seccomp_compiles() {
    let s: dunnage_namespaces::SeccompProfile = serde_json::from_str(DOCKER_SECCOMP_JSON).unwrap();
    let (prog, _warnings) = dunnage_namespaces::seccomp::compile(&s).unwrap();
    assert!(prog.len() > 500, "{}", prog.len());
}

#[test]
fn host_devices_as_docker_lists_them() {
    let nodes = host_devices(std::path::Path::new("/dev")).unwrap();
    let null = nodes.iter().find(|n| n.path == "/dev/null").unwrap();
    assert_eq!(
        (null.kind, null.major, null.minor),
        (DeviceType::Char, 1, 3)
    );
    assert!(nodes.iter().all(|n| !n.path.starts_with("/dev/pts/")
        && !n.path.starts_with("/dev/shm/")
        && n.path != "/dev/console"));
    // A directory that is not there is an error; one made of plain files
    // lists nothing.
    assert!(host_devices(std::path::Path::new("/nonexistent-dunnage")).is_err());
    let tmp = std::env::temp_dir().join(format!("dunnage-test-devs-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("pts")).unwrap();
    std::fs::write(tmp.join("file"), "").unwrap();
    std::os::unix::fs::symlink("/dev/null", tmp.join("link")).unwrap();
    let listed = host_devices(&tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(listed.unwrap().is_empty());
}
