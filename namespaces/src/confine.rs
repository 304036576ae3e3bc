//! A process's confinement: capabilities, `no_new_privs`, rlimits,
//! `oom_score_adj`, namespaced sysctls, umask, additional groups and a
//! seccomp filter.
//!
//! [`ProcessKnobs`] holds what the caller asked for (names, numbers); the
//! parent checks it (in [`crate::Command::spawn`], or [`ProcessKnobs::check`])
//! into plain data (bitmasks, C strings, a BPF program), so that every
//! mistake is a typed [`ConfineError`] before clone. The child then runs
//! [`ConfineStep`]s among its [`Step`]s, which only make raw syscalls on that
//! data, in runc's order:
//!
//! 1. sysctls (before the rootfs is set up), then after it
//!    `oom_score_adj`, rlimits, umask;
//! 2. the seccomp filter here when `no_new_privileges` is off: loading it
//!    then needs `CAP_SYS_ADMIN`, which the steps below may drop, so the
//!    filter must allow them (Docker's does);
//! 3. the bounding set, `PR_SET_KEEPCAPS` when capabilities are kept, the
//!    groups and ids, `capset`, the ambient set;
//! 4. `no_new_privs`, then the seccomp filter as the very last step before
//!    exec.

use std::ffi::CString;
use std::fmt;

use libc::c_int;

use crate::caps::{self, CapSet, Capabilities};
use crate::confine_error::ConfineError;
use crate::kind::Kinds;
use crate::rlimit::{self, Rlimit};
use crate::seccomp::BpfProgram;
use crate::step::Step;
use crate::sysctl::{self, Sysctl};

/// The confinement knobs as the caller gives them. All default to "leave
/// as inherited".
#[derive(Clone, Debug, Default)]
pub struct ProcessKnobs {
    /// The five capability sets; `None` leaves them as inherited.
    pub capabilities: Option<Capabilities>,
    /// Keep the permitted and effective capabilities across the switch to a
    /// non-root uid (`PR_SET_KEEPCAPS`, as runc always does). Without it a
    /// non-root uid ends with empty effective, permitted and ambient sets,
    /// the bounding set kept (what Docker gives `--user 1000`).
    pub keep_capabilities: bool,
    /// Set `no_new_privs`.
    pub no_new_privileges: bool,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// `/proc/self/oom_score_adj`, -1000 to 1000.
    pub oom_score_adj: Option<i32>,
    /// Namespaced sysctls, `("net.ipv4.ip_forward", "1")`.
    pub sysctls: Vec<(String, String)>,
    /// The umask, 0 to 0o777.
    pub umask: Option<u32>,
    /// The supplementary groups; `None` drops them when the gid changes (as
    /// before), `Some(vec![])` always drops them.
    pub additional_gids: Option<Vec<u32>>,
    /// The seccomp filter.
    pub seccomp: Option<BpfProgram>,
    /// Start a new session (`setsid`), so that the program has no
    /// controlling terminal (bubblewrap's `--new-session`).
    pub new_session: bool,
}

impl ProcessKnobs {
    /// Check everything, as a spawn does before clone. `own` are the
    /// namespaces the process does not share with the caller (new or
    /// joined): a sysctl is accepted only in its own namespace.
    pub fn check(&self, own: Kinds) -> Result<(), ConfineError> {
        self.prepare(own).map(drop)
    }

    /// Check everything and prepare the child's data.
    pub(crate) fn prepare(&self, own: Kinds) -> Result<Confinement, ConfineError> {
        if let Some(caps) = &self.capabilities {
            caps.validate()?;
        }
        rlimit::check_unique(&self.rlimits)?;
        let oom_score_adj = match self.oom_score_adj {
            Some(value) if !(-1000..=1000).contains(&value) => {
                return Err(ConfineError::OomScoreAdj { value });
            }
            Some(value) => Some(CString::new(value.to_string()).unwrap_or_default()),
            None => None,
        };
        if let Some(value) = self.umask.filter(|m| *m > 0o777) {
            return Err(ConfineError::Umask { value });
        }
        let sysctls = self
            .sysctls
            .iter()
            .map(|(name, value)| Sysctl::new(name, value, own))
            .collect::<Result<_, _>>()?;
        Ok(Confinement {
            capabilities: self.capabilities,
            last_cap: caps::last_cap(),
            keep_capabilities: self.keep_capabilities,
            no_new_privileges: self.no_new_privileges,
            rlimits: self.rlimits.clone(),
            oom_score_adj,
            sysctls,
            umask: self.umask,
            additional_gids: self.additional_gids.clone(),
            seccomp: self.seccomp.clone(),
            new_session: self.new_session,
        })
    }
}

/// A confinement step of the child (one kind of [`Step`]), made only of
/// prepared data; see the module docs for the order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfineStep {
    /// Write a namespaced sysctl under `/proc/sys`.
    Sysctl(Sysctl),
    /// Write `/proc/self/oom_score_adj` (the value as text).
    OomScoreAdj(CString),
    /// `prlimit` on the process.
    Rlimit(Rlimit),
    /// `umask`.
    Umask(u32),
    /// `prctl(PR_CAPBSET_DROP)` of every capability up to `last` not in
    /// `keep`.
    DropBounding {
        /// The bounding set to keep.
        keep: CapSet,
        /// The kernel's last capability (`cap_last_cap`).
        last: u8,
    },
    /// `prctl(PR_SET_KEEPCAPS)`.
    KeepCapabilities(bool),
    /// `capset` of the effective, permitted and inheritable sets.
    Capabilities {
        /// `CapEff`.
        effective: CapSet,
        /// `CapPrm`.
        permitted: CapSet,
        /// `CapInh`.
        inheritable: CapSet,
    },
    /// `PR_CAP_AMBIENT_CLEAR_ALL`, then raise each of these.
    Ambient(CapSet),
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    NoNewPrivileges,
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` of a prepared program.
    Seccomp(BpfProgram),
    /// `setsid`, unless the process already leads its session (as after a
    /// terminal step).
    NewSession,
}

impl ConfineStep {
    /// A short name of the step kind.
    pub fn name(&self) -> &'static str {
        match self {
            ConfineStep::Sysctl(_) => "sysctl",
            ConfineStep::OomScoreAdj(_) => "oom_score_adj",
            ConfineStep::Rlimit(_) => "prlimit",
            ConfineStep::Umask(_) => "umask",
            ConfineStep::DropBounding { .. } => "bounding set",
            ConfineStep::KeepCapabilities(_) => "keep capabilities",
            ConfineStep::Capabilities { .. } => "capset",
            ConfineStep::Ambient(_) => "ambient capabilities",
            ConfineStep::NoNewPrivileges => "no_new_privs",
            ConfineStep::Seccomp(_) => "seccomp",
            ConfineStep::NewSession => "setsid",
        }
    }

    /// Child side: run the step with raw syscalls on its prepared data (no
    /// allocation, no lock). Returns the errno on failure.
    pub fn apply(&self) -> Result<(), c_int> {
        match self {
            ConfineStep::Sysctl(s) => s.apply(),
            ConfineStep::OomScoreAdj(text) => {
                sysctl::write_file(c"/proc/self/oom_score_adj", text.as_bytes())
            }
            ConfineStep::Rlimit(l) => l.apply(),
            ConfineStep::Umask(mask) => {
                // SAFETY: umask cannot fail.
                unsafe { libc::umask(*mask as libc::mode_t) };
                Ok(())
            }
            ConfineStep::DropBounding { keep, last } => caps::drop_bounding(*keep, *last),
            ConfineStep::KeepCapabilities(on) => {
                // SAFETY: prctl with integer arguments.
                let rc = unsafe {
                    libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(*on), 0, 0, 0)
                };
                if rc != 0 { Err(caps::errno()) } else { Ok(()) }
            }
            ConfineStep::Capabilities {
                effective,
                permitted,
                inheritable,
            } => caps::set_capabilities(*effective, *permitted, *inheritable),
            ConfineStep::Ambient(set) => caps::set_ambient(*set),
            ConfineStep::NoNewPrivileges => {
                // SAFETY: prctl with integer arguments.
                let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                if rc != 0 { Err(caps::errno()) } else { Ok(()) }
            }
            ConfineStep::Seccomp(prog) => prog.load(),
            ConfineStep::NewSession => {
                // SAFETY: getpid/getsid/setsid take no pointers.
                unsafe {
                    if libc::getsid(0) == libc::getpid() || libc::setsid() >= 0 {
                        Ok(())
                    } else {
                        Err(caps::errno())
                    }
                }
            }
        }
    }
}

impl fmt::Display for ConfineStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |c: &CString| String::from_utf8_lossy(c.as_bytes()).into_owned();
        match self {
            ConfineStep::Sysctl(s) => write!(f, "write {:?} to {}", text(&s.value), text(&s.path)),
            ConfineStep::OomScoreAdj(v) => write!(f, "oom_score_adj {}", text(v)),
            ConfineStep::Rlimit(l) => write!(f, "prlimit {} {} {}", l.name(), l.soft, l.hard),
            ConfineStep::Umask(m) => write!(f, "umask {m:04o}"),
            ConfineStep::DropBounding { keep, .. } => {
                write!(f, "bounding set {:016x}", keep.0)
            }
            ConfineStep::KeepCapabilities(on) => {
                write!(f, "prctl(PR_SET_KEEPCAPS, {})", u8::from(*on))
            }
            ConfineStep::Capabilities {
                effective,
                permitted,
                inheritable,
            } => write!(
                f,
                "capset eff {:016x} prm {:016x} inh {:016x}",
                effective.0, permitted.0, inheritable.0
            ),
            ConfineStep::Ambient(set) => write!(f, "ambient {:016x}", set.0),
            ConfineStep::NoNewPrivileges => f.write_str("prctl(PR_SET_NO_NEW_PRIVS, 1)"),
            ConfineStep::NewSession => f.write_str("setsid"),
            ConfineStep::Seccomp(p) => write!(
                f,
                "seccomp filter of {} instructions, flags {:#x}",
                p.len(),
                p.flags()
            ),
        }
    }
}

/// The ids the child switches to, decided by the spawning code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ids {
    /// `setresuid` to this uid.
    pub uid: Option<u32>,
    /// `setresgid` to this gid.
    pub gid: Option<u32>,
    /// Drop the supplementary groups (when no additional gids are given).
    pub clear_groups: bool,
}

/// A checked confinement, ready to become the child's steps.
#[derive(Clone, Debug)]
pub(crate) struct Confinement {
    capabilities: Option<Capabilities>,
    last_cap: u8,
    keep_capabilities: bool,
    no_new_privileges: bool,
    rlimits: Vec<Rlimit>,
    oom_score_adj: Option<CString>,
    sysctls: Vec<Sysctl>,
    umask: Option<u32>,
    additional_gids: Option<Vec<u32>>,
    seccomp: Option<BpfProgram>,
    new_session: bool,
}

impl Confinement {
    /// The sysctl steps: before the rootfs is set up, through the `/proc`
    /// the child starts with (its `/proc/sys/net` and `/proc/sys/kernel`
    /// files show the writer's own namespaces), so that a read-only
    /// `/proc/sys` in the container, or none, does not stop them (runc
    /// also writes them before the read-only paths).
    pub(crate) fn sysctl_steps(&self) -> Vec<Step> {
        self.sysctls
            .iter()
            .map(|s| Step::Confine(ConfineStep::Sysctl(s.clone())))
            .collect()
    }

    /// The steps from the resources to `no_new_privs`, switching to `ids`
    /// on the way (they replace the plain id switch).
    pub(crate) fn steps_through_ids(&self, ids: Ids) -> Vec<Step> {
        let mut out = Vec::new();
        let mut push = |s: ConfineStep| out.push(Step::Confine(s));
        if self.new_session {
            push(ConfineStep::NewSession);
        }
        if let Some(v) = &self.oom_score_adj {
            push(ConfineStep::OomScoreAdj(v.clone()));
        }
        for l in &self.rlimits {
            push(ConfineStep::Rlimit(*l));
        }
        if let Some(m) = self.umask {
            push(ConfineStep::Umask(m));
        }
        if let Some(prog) = self.seccomp.as_ref().filter(|_| !self.no_new_privileges) {
            push(ConfineStep::Seccomp(prog.clone()));
        }
        if let Some(c) = &self.capabilities {
            push(ConfineStep::DropBounding {
                keep: c.bounding,
                last: self.last_cap,
            });
        }
        let to_user = ids.uid.is_some_and(|u| u != 0);
        let keep = self.keep_capabilities && to_user && self.capabilities.is_some();
        if keep {
            push(ConfineStep::KeepCapabilities(true));
        }
        match &self.additional_gids {
            Some(gids) => out.push(Step::SetGroups(gids.clone())),
            None if ids.clear_groups => out.push(Step::SetGroups(Vec::new())),
            None => {}
        }
        if let Some(gid) = ids.gid {
            out.push(Step::SetGid(gid));
        }
        if let Some(uid) = ids.uid {
            out.push(Step::SetUid(uid));
        }
        let mut push = |s: ConfineStep| out.push(Step::Confine(s));
        if keep {
            push(ConfineStep::KeepCapabilities(false));
        }
        if let Some(c) = &self.capabilities {
            let (effective, permitted) = if to_user && !keep {
                (CapSet::EMPTY, CapSet::EMPTY)
            } else {
                (c.effective, c.permitted)
            };
            push(ConfineStep::Capabilities {
                effective,
                permitted,
                inheritable: c.inheritable,
            });
            push(ConfineStep::Ambient(CapSet(c.ambient.0 & permitted.0)));
        }
        if self.no_new_privileges {
            push(ConfineStep::NoNewPrivileges);
        }
        out
    }

    /// The steps after everything else, just before exec: the seccomp
    /// filter when `no_new_privs` allows loading it without privilege.
    pub(crate) fn last_steps(&self) -> Vec<Step> {
        match &self.seccomp {
            Some(prog) if self.no_new_privileges => {
                vec![Step::Confine(ConfineStep::Seccomp(prog.clone()))]
            }
            _ => Vec::new(),
        }
    }
}

/// Parent side: write `value` to `/proc/<pid>/oom_score_adj`.
pub fn set_oom_score_adj(pid: i32, value: i32) -> Result<(), crate::Error> {
    if !(-1000..=1000).contains(&value) {
        return Err(ConfineError::OomScoreAdj { value }.into());
    }
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, value.to_string()).map_err(|e| crate::Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Kind;

    #[test]
    fn prepare_checks_everything_before_clone() {
        let ok = ProcessKnobs {
            capabilities: Some(Capabilities::uniform(CapSet(0xa80425fb))),
            rlimits: vec![Rlimit::new("nofile", 10, 20).unwrap()],
            oom_score_adj: Some(-5),
            sysctls: vec![("net.ipv4.ping_group_range".into(), "0 0".into())],
            umask: Some(0o027),
            ..ProcessKnobs::default()
        };
        let prepared = ok.prepare(Kind::Net.into()).unwrap();
        assert_eq!(prepared.oom_score_adj.as_deref(), Some(c"-5"));
        assert!(matches!(
            ok.prepare(Kinds::EMPTY),
            Err(ConfineError::SysctlNeedsNamespace { .. })
        ));
        let bad = [
            ProcessKnobs {
                oom_score_adj: Some(1001),
                ..ProcessKnobs::default()
            },
            ProcessKnobs {
                umask: Some(0o1000),
                ..ProcessKnobs::default()
            },
            ProcessKnobs {
                sysctls: vec![("kernel.pid_max".into(), "1".into())],
                ..ProcessKnobs::default()
            },
            ProcessKnobs {
                rlimits: vec![Rlimit::new("nofile", 1, 1).unwrap(); 2],
                ..ProcessKnobs::default()
            },
            ProcessKnobs {
                capabilities: Some(Capabilities {
                    ambient: CapSet(1),
                    ..Capabilities::default()
                }),
                ..ProcessKnobs::default()
            },
        ];
        for knobs in bad {
            assert!(knobs.prepare(Kind::Net | Kind::Ipc).is_err(), "{knobs:?}");
        }
    }
}
