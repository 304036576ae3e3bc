//! Resource limits by name (`RLIMIT_NOFILE` or `nofile`), checked by the
//! parent and set by the child with `prlimit`.

use libc::c_int;

use crate::confine_error::ConfineError;

/// The value meaning "no limit" (`RLIM_INFINITY`).
pub const INFINITY: u64 = libc::RLIM_INFINITY;

const NAMES: [(&str, libc::__rlimit_resource_t); 16] = [
    ("AS", libc::RLIMIT_AS),
    ("CORE", libc::RLIMIT_CORE),
    ("CPU", libc::RLIMIT_CPU),
    ("DATA", libc::RLIMIT_DATA),
    ("FSIZE", libc::RLIMIT_FSIZE),
    ("LOCKS", libc::RLIMIT_LOCKS),
    ("MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("NICE", libc::RLIMIT_NICE),
    ("NOFILE", libc::RLIMIT_NOFILE),
    ("NPROC", libc::RLIMIT_NPROC),
    ("RSS", libc::RLIMIT_RSS),
    ("RTPRIO", libc::RLIMIT_RTPRIO),
    ("RTTIME", libc::RLIMIT_RTTIME),
    ("SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("STACK", libc::RLIMIT_STACK),
];

/// One resource limit, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rlimit {
    /// The resource (`RLIMIT_NOFILE`, ...).
    pub resource: libc::__rlimit_resource_t,
    /// The soft limit ([`INFINITY`] for none).
    pub soft: u64,
    /// The hard limit ([`INFINITY`] for none).
    pub hard: u64,
}

impl Rlimit {
    /// The limit named `name` (`RLIMIT_NOFILE`, `nofile`, any case); an
    /// unknown name or a soft limit above the hard one is a typed error.
    pub fn new(name: &str, soft: u64, hard: u64) -> Result<Rlimit, ConfineError> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("RLIMIT_").unwrap_or(&upper);
        let resource = NAMES
            .iter()
            .find(|(n, _)| *n == bare)
            .map(|(_, r)| *r)
            .ok_or_else(|| ConfineError::UnknownRlimit {
                name: name.to_owned(),
            })?;
        if soft > hard {
            return Err(ConfineError::RlimitSoftAboveHard {
                name: format!("RLIMIT_{bare}"),
                soft,
                hard,
            });
        }
        Ok(Rlimit {
            resource,
            soft,
            hard,
        })
    }

    /// The name, `RLIMIT_NOFILE` style.
    pub fn name(&self) -> String {
        let bare = NAMES
            .iter()
            .find(|(_, r)| *r == self.resource)
            .map_or("?", |(n, _)| n);
        format!("RLIMIT_{bare}")
    }

    /// Child side: `prlimit` on the calling process. Returns the errno on
    /// failure.
    pub fn apply(&self) -> Result<(), c_int> {
        let new = libc::rlimit {
            rlim_cur: self.soft,
            rlim_max: self.hard,
        };
        // SAFETY: prlimit on ourselves with a valid struct and no old value.
        let rc = unsafe { libc::prlimit(0, self.resource, &new, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(crate::caps::errno());
        }
        Ok(())
    }
}

/// Check a list of limits for duplicates.
pub fn check_unique(limits: &[Rlimit]) -> Result<(), ConfineError> {
    for (i, l) in limits.iter().enumerate() {
        if limits[..i].iter().any(|o| o.resource == l.resource) {
            return Err(ConfineError::DuplicateRlimit { name: l.name() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_both_forms_and_any_case() {
        for name in ["RLIMIT_NOFILE", "nofile", "Rlimit_NoFile"] {
            let l = Rlimit::new(name, 10, 20).unwrap();
            assert_eq!(l.resource, libc::RLIMIT_NOFILE);
            assert_eq!(l.name(), "RLIMIT_NOFILE");
        }
        assert_eq!(Rlimit::new("RLIMIT_RTTIME", 1, INFINITY).unwrap().soft, 1);
    }

    #[test]
    fn bad_limits_are_typed_errors() {
        for bad in ["RLIMIT_FLY", "", "RLIMIT_", "NOFILE2"] {
            assert!(
                matches!(
                    Rlimit::new(bad, 1, 1),
                    Err(ConfineError::UnknownRlimit { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Rlimit::new("nofile", 20, 10),
            Err(ConfineError::RlimitSoftAboveHard {
                soft: 20,
                hard: 10,
                ..
            })
        ));
        let a = Rlimit::new("nofile", 1, 2).unwrap();
        let b = Rlimit::new("RLIMIT_NOFILE", 1, 3).unwrap();
        assert!(matches!(
            check_unique(&[a, b]),
            Err(ConfineError::DuplicateRlimit { .. })
        ));
    }
}
