//! Mount propagation: how mount events travel between mount namespaces.

use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A propagation type (`mount --make-<type>`, see mount_namespaces(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PropagationMode {
    /// Events neither leave nor enter (`MS_PRIVATE`).
    Private,
    /// Events enter from the master but do not leave (`MS_SLAVE`).
    Slave,
    /// Events travel both ways within the peer group (`MS_SHARED`).
    Shared,
    /// Private, and cannot be bind mounted (`MS_UNBINDABLE`).
    Unbindable,
}

/// A propagation change: a mode applied to one mount or, recursively, to
/// every mount below it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Propagation {
    /// The mode.
    pub mode: PropagationMode,
    /// Whether the mounts below change too (`MS_REC`).
    pub recursive: bool,
}

impl Propagation {
    /// `mode` for the mount and every mount below it (`--make-r<mode>`).
    pub fn recursive(mode: PropagationMode) -> Propagation {
        Propagation {
            mode,
            recursive: true,
        }
    }

    /// `mode` for the one mount only (`--make-<mode>`).
    pub fn single(mode: PropagationMode) -> Propagation {
        Propagation {
            mode,
            recursive: false,
        }
    }

    /// What util-linux `unshare --mount` does by default: recursively private.
    pub const DEFAULT: Propagation = Propagation {
        mode: PropagationMode::Private,
        recursive: true,
    };

    /// The `mount(2)` flags.
    pub fn flags(self) -> libc::c_ulong {
        let mode = match self.mode {
            PropagationMode::Private => libc::MS_PRIVATE,
            PropagationMode::Slave => libc::MS_SLAVE,
            PropagationMode::Shared => libc::MS_SHARED,
            PropagationMode::Unbindable => libc::MS_UNBINDABLE,
        };
        if self.recursive {
            mode | libc::MS_REC
        } else {
            mode
        }
    }
}

impl fmt::Display for PropagationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PropagationMode::Private => "private",
            PropagationMode::Slave => "slave",
            PropagationMode::Shared => "shared",
            PropagationMode::Unbindable => "unbindable",
        })
    }
}

/// A name that is not a propagation mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown propagation {0:?} (expected private, slave, shared or unbindable)")]
pub struct UnknownPropagation(pub String);

impl FromStr for PropagationMode {
    type Err = UnknownPropagation;
    fn from_str(s: &str) -> Result<PropagationMode, UnknownPropagation> {
        match s {
            "private" => Ok(PropagationMode::Private),
            "slave" => Ok(PropagationMode::Slave),
            "shared" => Ok(PropagationMode::Shared),
            "unbindable" => Ok(PropagationMode::Unbindable),
            _ => Err(UnknownPropagation(s.to_owned())),
        }
    }
}

/// Change the propagation of the mount at `target`
/// (`mount(NULL, target, NULL, MS_<mode> [| MS_REC], NULL)`).
pub fn set_propagation(target: &Path, propagation: Propagation) -> Result<()> {
    let c = Error::cstring("path", target)?;
    // SAFETY: c is a valid C string; NULL source, type and data are allowed
    // for a propagation change.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            propagation.flags(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::io(
            "change propagation of",
            target,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_map_to_mount_flags() {
        assert_eq!("slave".parse(), Ok(PropagationMode::Slave));
        assert!("unchanged".parse::<PropagationMode>().is_err());
        assert_eq!(
            Propagation::DEFAULT.flags(),
            libc::MS_PRIVATE | libc::MS_REC
        );
        assert_eq!(
            Propagation::single(PropagationMode::Shared).flags(),
            libc::MS_SHARED
        );
    }
}
