//! A process's confinement: capabilities, `no_new_privs`, rlimits,
//! `oom_score_adj`, namespaced sysctls, umask, additional groups and a
//! seccomp filter.
//!
//! [`ProcessKnobs`] holds what the caller asked for (names, numbers); the
//! parent checks it with [`ProcessKnobs::prepare`] into a [`Confinement`] of
//! plain data (bitmasks, C strings, a BPF program), so that every mistake is
//! a typed [`ConfineError`] before clone. The child then calls
//! [`Confinement::apply`], which only makes raw syscalls on that data, in
//! runc's order:
//!
//! 1. sysctls, `oom_score_adj`, rlimits, umask;
//! 2. the seccomp filter here when `no_new_privileges` is off: loading it
//!    then needs `CAP_SYS_ADMIN`, which the steps below may drop, so the
//!    filter must allow them (Docker's does);
//! 3. the bounding set, `PR_SET_KEEPCAPS` when capabilities are kept, the
//!    groups and ids, `capset`, the ambient set;
//! 4. `no_new_privs`, then the seccomp filter as the very last step before
//!    exec.

use std::ffi::CString;

use libc::c_int;

use crate::caps::{self, CapSet, Capabilities};
use crate::confine_error::ConfineError;
use crate::kind::Kinds;
use crate::rlimit::{self, Rlimit};
use crate::seccomp::BpfProgram;
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
}

impl ProcessKnobs {
    /// Check everything and prepare the child's data. `own` are the
    /// namespaces the process does not share with the caller (new or
    /// joined): a sysctl is accepted only in its own namespace.
    pub fn prepare(&self, own: Kinds) -> Result<Confinement, ConfineError> {
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
        })
    }
}

/// The ids the child switches to, decided by the spawning code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    /// `setresuid` to this uid.
    pub uid: Option<u32>,
    /// `setresgid` to this gid.
    pub gid: Option<u32>,
    /// Drop the supplementary groups (when no additional gids are given).
    pub clear_groups: bool,
}

/// A step of [`Confinement::apply`] that failed in the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfineStep {
    /// Writing a `/proc/sys` file.
    Sysctl,
    /// Writing `/proc/self/oom_score_adj`.
    OomScoreAdj,
    /// `prlimit`.
    Rlimit,
    /// `prctl(PR_CAPBSET_DROP)`.
    BoundingSet,
    /// `prctl(PR_SET_KEEPCAPS)`.
    KeepCapabilities,
    /// `setgroups`.
    Groups,
    /// `setresgid` / `setresuid`.
    Ids,
    /// `capset`.
    Capabilities,
    /// `prctl(PR_CAP_AMBIENT)`.
    Ambient,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivileges,
    /// `seccomp(SECCOMP_SET_MODE_FILTER)`.
    Seccomp,
}

/// The step that failed and the kernel's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfineFailure {
    /// The step.
    pub step: ConfineStep,
    /// The errno.
    pub errno: c_int,
}

/// A checked confinement, ready for the child (see the module docs).
#[derive(Clone, Debug)]
pub struct Confinement {
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
}

fn at(step: ConfineStep) -> impl Fn(c_int) -> ConfineFailure {
    move |errno| ConfineFailure { step, errno }
}

fn rc(step: ConfineStep, rc: c_int) -> Result<(), ConfineFailure> {
    if rc != 0 {
        return Err(ConfineFailure {
            step,
            errno: caps::errno(),
        });
    }
    Ok(())
}

fn raw(rc: libc::c_long) -> c_int {
    rc as c_int
}

impl Confinement {
    /// Whether the seccomp filter is loaded last (with `no_new_privs`) or
    /// before the capabilities and ids change.
    pub fn seccomp_last(&self) -> bool {
        self.no_new_privileges
    }

    /// Child side: apply everything, switching to `ids` on the way, in the
    /// order of the module docs. Only raw syscalls on prepared data: no
    /// allocation, no locks, so it is safe between clone and exec.
    pub fn apply(&self, ids: Ids) -> Result<(), ConfineFailure> {
        self.apply_resources()?;
        if !self.seccomp_last() {
            self.apply_seccomp()?;
        }
        self.apply_ids_and_capabilities(ids)?;
        if self.no_new_privileges {
            // SAFETY: prctl with integer arguments.
            rc(ConfineStep::NoNewPrivileges, unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            })?;
        }
        if self.seccomp_last() {
            self.apply_seccomp()?;
        }
        Ok(())
    }

    /// Child side, step 1: sysctls, `oom_score_adj`, rlimits, umask.
    pub fn apply_resources(&self) -> Result<(), ConfineFailure> {
        for s in &self.sysctls {
            s.apply().map_err(at(ConfineStep::Sysctl))?;
        }
        if let Some(text) = &self.oom_score_adj {
            sysctl::write_file(&CString::from(c"/proc/self/oom_score_adj"), text.as_bytes())
                .map_err(at(ConfineStep::OomScoreAdj))?;
        }
        for l in &self.rlimits {
            l.apply().map_err(at(ConfineStep::Rlimit))?;
        }
        if let Some(mask) = self.umask {
            // SAFETY: umask cannot fail.
            unsafe { libc::umask(mask as libc::mode_t) };
        }
        Ok(())
    }

    /// Child side: load the seccomp filter, if any.
    pub fn apply_seccomp(&self) -> Result<(), ConfineFailure> {
        match &self.seccomp {
            Some(prog) => prog.load().map_err(at(ConfineStep::Seccomp)),
            None => Ok(()),
        }
    }

    /// Child side, step 3: bounding set, groups and ids, capabilities.
    pub fn apply_ids_and_capabilities(&self, ids: Ids) -> Result<(), ConfineFailure> {
        if let Some(c) = &self.capabilities {
            caps::drop_bounding(c.bounding, self.last_cap).map_err(at(ConfineStep::BoundingSet))?;
        }
        let to_user = ids.uid.is_some_and(|u| u != 0);
        let keep = self.keep_capabilities && to_user && self.capabilities.is_some();
        // SAFETY (all of the block): raw syscalls with integer arguments or
        // prepared arrays. Not glibc's setgroups/setresuid: they signal the
        // threads glibc believes exist, which in a cloned child wait forever.
        unsafe {
            if keep {
                rc(
                    ConfineStep::KeepCapabilities,
                    libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
                )?;
            }
            match &self.additional_gids {
                Some(gids) => rc(
                    ConfineStep::Groups,
                    raw(libc::syscall(
                        libc::SYS_setgroups,
                        gids.len(),
                        gids.as_ptr(),
                    )),
                )?,
                None if ids.clear_groups => rc(
                    ConfineStep::Groups,
                    raw(libc::syscall(
                        libc::SYS_setgroups,
                        0,
                        std::ptr::null::<u32>(),
                    )),
                )?,
                None => {}
            }
            if let Some(gid) = ids.gid {
                rc(
                    ConfineStep::Ids,
                    raw(libc::syscall(libc::SYS_setresgid, gid, gid, gid)),
                )?;
            }
            if let Some(uid) = ids.uid {
                rc(
                    ConfineStep::Ids,
                    raw(libc::syscall(libc::SYS_setresuid, uid, uid, uid)),
                )?;
            }
            if keep {
                rc(
                    ConfineStep::KeepCapabilities,
                    libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
                )?;
            }
        }
        if let Some(c) = &self.capabilities {
            let (effective, permitted) = if to_user && !keep {
                (CapSet::EMPTY, CapSet::EMPTY)
            } else {
                (c.effective, c.permitted)
            };
            caps::set_capabilities(effective, permitted, c.inheritable)
                .map_err(at(ConfineStep::Capabilities))?;
            let ambient = CapSet(c.ambient.0 & permitted.0);
            caps::set_ambient(ambient).map_err(at(ConfineStep::Ambient))?;
        }
        Ok(())
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
