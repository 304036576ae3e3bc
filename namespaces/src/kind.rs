//! The eight kinds of namespace and sets of them.

use std::fmt;
use std::ops::BitOr;
use std::path::PathBuf;
use std::str::FromStr;

/// A kind of Linux namespace.
///
/// Each kind has a `CLONE_NEW*` flag (used by clone, unshare and setns) and a
/// file `/proc/<pid>/ns/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Mount points (`CLONE_NEWNS`, `mnt`).
    Mount,
    /// Hostname and NIS domain name (`CLONE_NEWUTS`, `uts`).
    Uts,
    /// System V IPC and POSIX message queues (`CLONE_NEWIPC`, `ipc`).
    Ipc,
    /// Process IDs (`CLONE_NEWPID`, `pid`); applies to children.
    Pid,
    /// Network devices, stacks and ports (`CLONE_NEWNET`, `net`).
    Net,
    /// User and group IDs and capabilities (`CLONE_NEWUSER`, `user`).
    User,
    /// The cgroup root directory (`CLONE_NEWCGROUP`, `cgroup`).
    Cgroup,
    /// Boot-time and monotonic clocks (`CLONE_NEWTIME`, `time`); applies to
    /// children.
    Time,
}

impl Kind {
    /// All kinds, in the order used to join them (user first).
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::Mount,
        Kind::Uts,
        Kind::Ipc,
        Kind::Pid,
        Kind::Net,
        Kind::Cgroup,
        Kind::Time,
    ];

    /// The kind's `CLONE_NEW*` flag.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Net => libc::CLONE_NEWNET,
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Cgroup => libc::CLONE_NEWCGROUP,
            Kind::Time => libc::CLONE_NEWTIME,
        }
    }

    /// The kind whose `CLONE_NEW*` flag is `flag`, as returned by the
    /// `NS_GET_NSTYPE` ioctl.
    pub fn from_clone_flag(flag: libc::c_int) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.clone_flag() == flag)
    }

    /// The kind's name in `/proc/<pid>/ns/` (`mnt`, `uts`, `ipc`, `pid`,
    /// `net`, `user`, `cgroup`, `time`).
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Mount => "mnt",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Pid => "pid",
            Kind::Net => "net",
            Kind::User => "user",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    /// `/proc/<pid>/ns/<name>`.
    pub fn proc_path(self, pid: i32) -> PathBuf {
        PathBuf::from(format!("/proc/{pid}/ns/{}", self.proc_name()))
    }

    /// Whether this kernel has the kind (its file exists in `/proc/self/ns`).
    pub fn is_supported(self) -> bool {
        std::path::Path::new("/proc/self/ns")
            .join(self.proc_name())
            .exists()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// A name that is not one of the eight kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown namespace kind {0:?} (expected mnt, uts, ipc, pid, net, user, cgroup or time)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Parse a proc name (`net`) or a util-linux long option name (`mount`).
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        match s {
            "mount" => Ok(Kind::Mount),
            _ => Kind::ALL
                .into_iter()
                .find(|k| k.proc_name() == s)
                .ok_or_else(|| UnknownKind(s.to_owned())),
        }
    }
}

/// A set of namespace kinds, built with `|`: `Kind::Pid | Kind::Mount`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kinds(u8);

impl Kinds {
    /// The empty set.
    pub const EMPTY: Kinds = Kinds(0);

    fn bit(kind: Kind) -> u8 {
        1 << (kind as u8)
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }

    /// The set with `kind` added.
    pub fn with(self, kind: Kind) -> Kinds {
        Kinds(self.0 | Kinds::bit(kind))
    }

    /// The set with `kind` removed.
    pub fn without(self, kind: Kind) -> Kinds {
        Kinds(self.0 & !Kinds::bit(kind))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, user first (the order for joining).
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// The `CLONE_NEW*` flags of all kinds in the set, or-ed.
    pub fn clone_flags(self) -> libc::c_int {
        self.iter().fold(0, |acc, k| acc | k.clone_flag())
    }

    /// The `CLONE_NEW*` flags as the 64-bit flag word of `clone3(2)`.
    pub fn clone_flags64(self) -> u64 {
        self.iter().fold(0u64, |acc, k| {
            acc | u64::from(k.clone_flag().cast_unsigned())
        })
    }
}

impl From<Kind> for Kinds {
    fn from(kind: Kind) -> Kinds {
        Kinds::EMPTY.with(kind)
    }
}

impl<const N: usize> From<[Kind; N]> for Kinds {
    fn from(kinds: [Kind; N]) -> Kinds {
        kinds.into_iter().collect()
    }
}

impl FromIterator<Kind> for Kinds {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Kinds {
        iter.into_iter().fold(Kinds::EMPTY, Kinds::with)
    }
}

impl BitOr for Kind {
    type Output = Kinds;
    fn bitor(self, rhs: Kind) -> Kinds {
        Kinds::from(self).with(rhs)
    }
}

impl BitOr<Kind> for Kinds {
    type Output = Kinds;
    fn bitor(self, rhs: Kind) -> Kinds {
        self.with(rhs)
    }
}

impl BitOr for Kinds {
    type Output = Kinds;
    fn bitor(self, rhs: Kinds) -> Kinds {
        Kinds(self.0 | rhs.0)
    }
}

impl fmt::Display for Kinds {
    /// `user+mnt+pid`, or `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, k) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(k.proc_name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_clone_flag(k.clone_flag()), Some(k));
            assert_eq!(k.proc_name().parse::<Kind>(), Ok(k));
        }
        assert_eq!("mount".parse::<Kind>(), Ok(Kind::Mount));
        assert!("bogus".parse::<Kind>().is_err());
        assert_eq!(Kind::from_clone_flag(0), None);
    }

    #[test]
    fn sets_combine_and_display_user_first() {
        let s = Kind::Pid | Kind::User | Kind::Mount;
        assert_eq!(s.to_string(), "user+mnt+pid");
        assert!(s.contains(Kind::Pid) && !s.contains(Kind::Net));
        assert_eq!(
            s.clone_flags(),
            libc::CLONE_NEWPID | libc::CLONE_NEWUSER | libc::CLONE_NEWNS
        );
        assert_eq!(s.without(Kind::User).to_string(), "mnt+pid");
        assert_eq!(Kinds::EMPTY.to_string(), "none");
        assert_eq!(Kinds::from([Kind::Net, Kind::Net]), Kinds::from(Kind::Net));
    }

    #[test]
    fn this_kernel_has_the_common_kinds() {
        for k in [Kind::Mount, Kind::Uts, Kind::Ipc, Kind::Pid, Kind::Net] {
            assert!(k.is_supported(), "{k}");
        }
    }
}
