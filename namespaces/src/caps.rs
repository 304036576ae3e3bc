//! Capabilities by name, the five sets of a process as bitmasks, and the
//! child's raw syscalls that apply them (`capset`, `PR_CAPBSET_DROP`,
//! `PR_CAP_AMBIENT`).
//!
//! Names are accepted as `CAP_NET_ADMIN` or `NET_ADMIN`, in any case, as runc
//! and Docker do. An unknown name is [`ConfineError::UnknownCapability`];
//! [`CapSet::parse_lenient`] instead returns the unknown names so that an OCI
//! runtime can warn and go on, as runc does.

use std::fmt;

use libc::c_int;

use crate::confine_error::ConfineError;

/// The capability names, indexed by number (`capability.h`, Linux 5.9+).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of the capability called `name` (`CAP_NET_ADMIN`,
/// `NET_ADMIN`, `cap_net_admin`, ...).
pub fn capability_number(name: &str) -> Option<u8> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u8)
}

/// The name (`CAP_NET_ADMIN`) of capability number `cap`, if known.
pub fn capability_name(cap: u8) -> Option<String> {
    NAMES.get(usize::from(cap)).map(|n| format!("CAP_{n}"))
}

/// A set of capabilities as the kernel's 64-bit mask (bit `n` is
/// capability `n`; `/proc/<pid>/status` prints it in hex).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(pub u64);

impl CapSet {
    /// The empty set.
    pub const EMPTY: CapSet = CapSet(0);

    /// The set of the named capabilities; an unknown name is
    /// [`ConfineError::UnknownCapability`].
    pub fn parse<I, S>(names: I) -> Result<CapSet, ConfineError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (set, unknown) = CapSet::parse_lenient(names);
        match unknown.into_iter().next() {
            Some(name) => Err(ConfineError::UnknownCapability { name }),
            None => Ok(set),
        }
    }

    /// The set of the known names, and the unknown names left out (for a
    /// caller that warns about them, as runc does).
    pub fn parse_lenient<I, S>(names: I) -> (CapSet, Vec<String>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = CapSet::EMPTY;
        let mut unknown = Vec::new();
        for name in names {
            match capability_number(name.as_ref()) {
                Some(n) => set.0 |= 1 << n,
                None => unknown.push(name.as_ref().to_owned()),
            }
        }
        (set, unknown)
    }

    /// Whether capability number `cap` is in the set.
    pub fn contains(self, cap: u8) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// Whether every capability of `self` is in `other`.
    pub fn is_subset(self, other: CapSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The names of the capabilities in the set, in number order.
    pub fn names(self) -> Vec<String> {
        (0..64u8)
            .filter(|&c| self.contains(c))
            .map(|c| capability_name(c).unwrap_or_else(|| format!("CAP_{c}")))
            .collect()
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapSet({:016x} {:?})", self.0, self.names())
    }
}

/// The five capability sets of a process, as a container's
/// `process.capabilities` gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Capabilities the process and its children can ever get
    /// (`CapBnd`); the others are dropped with `PR_CAPBSET_DROP`.
    pub bounding: CapSet,
    /// `CapEff`: must be within `permitted`.
    pub effective: CapSet,
    /// `CapPrm`.
    pub permitted: CapSet,
    /// `CapInh`.
    pub inheritable: CapSet,
    /// `CapAmb`: must be within both `permitted` and `inheritable`.
    pub ambient: CapSet,
}

impl Capabilities {
    /// The same set in bounding, effective and permitted, nothing
    /// inheritable or ambient: what Docker gives a container.
    pub fn uniform(set: CapSet) -> Capabilities {
        Capabilities {
            bounding: set,
            effective: set,
            permitted: set,
            ..Capabilities::default()
        }
    }

    /// Check what the kernel would refuse later: effective and ambient
    /// outside permitted, ambient outside inheritable.
    pub fn validate(&self) -> Result<(), ConfineError> {
        let checks = [
            (self.effective, self.permitted, "effective", "permitted"),
            (self.ambient, self.permitted, "ambient", "permitted"),
            (self.ambient, self.inheritable, "ambient", "inheritable"),
        ];
        for (set, within, name, within_name) in checks {
            if !set.is_subset(within) {
                return Err(ConfineError::CapabilitySets {
                    set: name,
                    within: within_name,
                    extra: CapSet(set.0 & !within.0).names(),
                });
            }
        }
        Ok(())
    }
}

/// The highest capability number this kernel knows
/// (`/proc/sys/kernel/cap_last_cap`), read by the parent once per process.
pub fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        dunnage_base::fs::read_unsized_string(std::path::Path::new("/proc/sys/kernel/cap_last_cap"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NAMES.len() as u8 - 1)
    })
}

/// The calling thread's effective set (`capget`), as `CapEff` in
/// `/proc/thread-self/status` shows it (the thread that will clone a
/// container); `None` if the kernel refuses.
pub fn own_effective() -> Option<CapSet> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a valid header and room for two data structs
    // (version 3).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    (rc == 0).then(|| CapSet(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32)))
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Child side: drop every capability up to `last` that is not in
/// `bounding` from the bounding set. Needs `CAP_SETPCAP`. Returns the errno
/// on failure. Makes only raw syscalls.
pub fn drop_bounding(bounding: CapSet, last: u8) -> Result<(), c_int> {
    for cap in 0..=last.min(63) {
        if !bounding.contains(cap) {
            // SAFETY: prctl with integer arguments.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            // EINVAL: a capability this kernel does not have.
            if rc != 0 && errno() != libc::EINVAL {
                return Err(errno());
            }
        }
    }
    Ok(())
}

/// Child side: `capset` of effective, permitted and inheritable for the
/// calling thread. Returns the errno on failure.
pub fn set_capabilities(
    effective: CapSet,
    permitted: CapSet,
    inheritable: CapSet,
) -> Result<(), c_int> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |s: CapSet| [s.0 as u32, (s.0 >> 32) as u32];
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        CapData {
            effective: e[0],
            permitted: p[0],
            inheritable: i[0],
        },
        CapData {
            effective: e[1],
            permitted: p[1],
            inheritable: i[1],
        },
    ];
    // SAFETY: capset with a valid header and two data structs (version 3).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

/// Child side: clear the ambient set, then raise each capability of
/// `ambient` (each must be permitted and inheritable by then). Returns the
/// errno on failure.
pub fn set_ambient(ambient: CapSet) -> Result<(), c_int> {
    // SAFETY (both prctl calls): integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        // EINVAL: a kernel without ambient capabilities; nothing to clear.
        return if errno() == libc::EINVAL && ambient == CapSet::EMPTY {
            Ok(())
        } else {
            Err(errno())
        };
    }
    for cap in 0..64u8 {
        if ambient.contains(cap) {
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                )
            };
            if rc != 0 {
                return Err(errno());
            }
        }
    }
    Ok(())
}

pub(crate) fn errno() -> c_int {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: [&str; 14] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ];

    #[test]
    fn docker_defaults_give_dockers_mask() {
        let set = CapSet::parse(DOCKER.iter().map(|n| format!("CAP_{n}"))).unwrap();
        assert_eq!(set.0, 0xa80425fb);
        assert_eq!(CapSet::parse(DOCKER).unwrap(), set);
    }

    #[test]
    fn names_are_case_insensitive_with_or_without_prefix() {
        for name in [
            "CAP_NET_ADMIN",
            "NET_ADMIN",
            "cap_net_admin",
            "net_admin",
            " Cap_Net_Admin ",
        ] {
            assert_eq!(capability_number(name), Some(12), "{name}");
        }
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_name(21).as_deref(), Some("CAP_SYS_ADMIN"));
        assert_eq!(capability_name(41), None);
    }

    #[test]
    fn unknown_names_are_typed_errors_or_returned() {
        for bad in ["CAP_FLY", "", "CAP_", "CAP_CAP_CHOWN", "41", "CHOWN\0"] {
            let err = CapSet::parse(["CHOWN", bad]).unwrap_err();
            assert!(
                matches!(err, ConfineError::UnknownCapability { ref name } if name == bad),
                "{err:?}"
            );
        }
        let (set, unknown) = CapSet::parse_lenient(["CAP_CHOWN", "CAP_FLY", "CAP_KILL", "NOPE"]);
        assert_eq!(set, CapSet((1 << 0) | (1 << 5)));
        assert_eq!(unknown, ["CAP_FLY", "NOPE"]);
    }

    #[test]
    fn inconsistent_sets_are_refused() {
        let kill = CapSet::parse(["KILL"]).unwrap();
        let caps = Capabilities {
            effective: kill,
            ..Capabilities::default()
        };
        let err = caps.validate().unwrap_err();
        assert!(
            matches!(err, ConfineError::CapabilitySets { set: "effective", within: "permitted", ref extra } if extra == &["CAP_KILL"]),
            "{err:?}"
        );
        let caps = Capabilities {
            permitted: kill,
            ambient: kill,
            ..Capabilities::default()
        };
        assert!(caps.validate().is_err());
        assert!(Capabilities::uniform(kill).validate().is_ok());
    }

    #[test]
    fn names_round_trip() {
        let set = CapSet(0xa80425fb);
        assert_eq!(CapSet::parse(set.names()).unwrap(), set);
        assert!(last_cap() >= 37);
        // The same set /proc/thread-self/status shows.
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(own_effective().map(|s| s.0), Some(eff));
    }
}
