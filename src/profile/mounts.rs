//! The mounts docker gives every container.

use serde::{Deserialize, Serialize};

/// One mount of the profile, as in an OCI config's `mounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProfileMount {
    /// Where it appears in the container.
    pub destination: String,
    /// The filesystem type (`proc`, `tmpfs`, `cgroup`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The source (for these, the filesystem's name).
    pub source: String,
    /// Mount options, in docker's order.
    pub options: Vec<String>,
}

impl ProfileMount {
    /// A mount from its parts.
    pub fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> ProfileMount {
        ProfileMount {
            destination: destination.to_string(),
            kind: kind.to_string(),
            source: source.to_string(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether the options make it read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Docker's mount list; `privileged` clears `ro` from `/sys` and
/// `/sys/fs/cgroup`, as dockerd does.
pub(super) fn docker(privileged: bool) -> Vec<ProfileMount> {
    let nsn = ["nosuid", "noexec", "nodev"];
    let mut mounts = vec![
        ProfileMount::new("/proc", "proc", "proc", &nsn),
        ProfileMount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        ProfileMount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        ProfileMount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        ProfileMount::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        ProfileMount::new("/dev/mqueue", "mqueue", "mqueue", &nsn),
        ProfileMount::new(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ];
    if privileged {
        for m in &mut mounts {
            if m.destination == "/sys" || m.kind == "cgroup" {
                m.options.retain(|o| o != "ro");
            }
        }
    }
    mounts
}
