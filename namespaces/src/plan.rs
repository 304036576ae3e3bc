//! The parent's side of the child's setup: turn a [`Command`] into the
//! ordered [`Step`]s the child runs, with every string and number prepared.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::child::{Stdio, StdioKind};
use crate::confine::Ids;
use crate::error::{Error, Result};
use crate::idmap::{IdMap, SetGroups};
use crate::kind::{Kind, Kinds};
use crate::launch::{dup_cloexec, pipe};
use crate::spawn::{Clock, Command};
use crate::step::Step;

/// The descriptors of one spawn that steps refer to (by number).
pub(crate) struct SpawnFds {
    /// The parent's descriptors the child closes first.
    pub close: Vec<RawFd>,
    /// Read end of the sync pipe, when the child waits for the parent.
    pub sync_read: Option<RawFd>,
    /// Sources of stdin, stdout, stderr (`None`: inherit).
    pub stdio: [Option<RawFd>; 3],
    /// Read end of the start gate.
    pub gate_read: Option<RawFd>,
    /// Read end of the pipe on which the parent says that the cgroups to
    /// join later exist.
    pub cgroups_later: Option<RawFd>,
    /// Descriptors passed to the program: (source, number in the program).
    pub passed: Vec<(RawFd, RawFd)>,
    /// The terminal step, when the program gets a terminal.
    pub terminal: Option<crate::terminal::TerminalStep>,
}

/// A borrowed view of a stdio setting.
#[derive(Clone, Copy)]
pub(crate) enum StdioRef<'a> {
    Inherit,
    Null,
    Piped,
    Fd(&'a OwnedFd),
}

impl<'a> StdioRef<'a> {
    pub(crate) fn of(s: &'a Stdio) -> StdioRef<'a> {
        match &s.0 {
            StdioKind::Inherit => StdioRef::Inherit,
            StdioKind::Null => StdioRef::Null,
            StdioKind::Piped => StdioRef::Piped,
            StdioKind::Fd(fd) => StdioRef::Fd(fd),
        }
    }
}

/// The child's stdio sources (fds above 2, close-on-exec) and the parent's
/// pipe ends.
#[allow(clippy::type_complexity)]
pub(crate) fn stdio_fds(
    cfg: [StdioRef<'_>; 3],
) -> Result<([Option<OwnedFd>; 3], [Option<OwnedFd>; 3])> {
    let mut child: [Option<OwnedFd>; 3] = [None, None, None];
    let mut parent: [Option<OwnedFd>; 3] = [None, None, None];
    for (i, cfg) in cfg.into_iter().enumerate() {
        match cfg {
            StdioRef::Inherit => {}
            StdioRef::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| Error::io("open", "/dev/null", e))?;
                child[i] = Some(dup_cloexec(f.as_raw_fd())?);
            }
            StdioRef::Piped => {
                let (r, w) = pipe()?;
                let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                child[i] = Some(dup_cloexec(theirs.as_raw_fd())?);
                parent[i] = Some(mine);
            }
            StdioRef::Fd(fd) => child[i] = Some(dup_cloexec(fd.as_raw_fd())?),
        }
    }
    Ok((child, parent))
}

/// The error of a failed `clone3`, with the minimum kernel named where the
/// kernel lacks what was asked for.
pub(crate) fn clone_error(kinds: Kinds, into_cgroup: bool, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => Error::Unsupported {
            feature: "clone3",
            min_kernel: "5.3",
        },
        Some(libc::E2BIG | libc::EINVAL) if into_cgroup && !crate::kernel_at_least(5, 7) => {
            Error::Unsupported {
                feature: "CLONE_INTO_CGROUP",
                min_kernel: "5.7",
            }
        }
        _ => Error::syscall("clone3", kinds, e),
    }
}

impl Command {
    /// Whether the new cgroup namespace is made by the child after the
    /// parent's hook (so that the cgroup the hook moved it into is the
    /// namespace's root, as runc does), not at the clone. Not when it is
    /// persisted, which happens before the hook.
    pub(crate) fn defer_cgroup_namespace(&self) -> bool {
        self.kinds.contains(Kind::Cgroup) && !self.persist.iter().any(|(k, _)| *k == Kind::Cgroup)
    }

    /// Build the child's steps for one spawn, in the order it runs them.
    pub(crate) fn steps(&self, fds: &SpawnFds) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let inner_user = self.inner_user_steps()?;
        if let Some((open, _)) = &inner_user {
            steps.push(open.clone());
        }
        if !fds.close.is_empty() {
            steps.push(Step::Close {
                fds: fds.close.clone(),
            });
        }
        // Before anything else: what the child does from here on is
        // accounted to the container's cgroups.
        if !self.cgroup_tasks.is_empty() {
            steps.push(Step::JoinCgroups {
                fds: self.cgroup_tasks.iter().map(AsRawFd::as_raw_fd).collect(),
            });
        }
        if self.pdeathsig != 0 {
            steps.push(Step::ParentDeathSignal {
                signal: self.pdeathsig,
                // SAFETY: getpid has no preconditions.
                parent: if self.kinds.contains(Kind::Pid) {
                    0
                } else {
                    unsafe { libc::getpid() }
                },
            });
        }
        if let Some(fd) = fds.sync_read {
            steps.push(Step::WaitParent { fd });
        }
        // After the parent's writes to /proc/<pid> (id maps, persisting):
        // a non-dumpable process's files there belong to root. Only for a
        // root caller, which keeps access to them (CAP_SYS_PTRACE); an
        // unprivileged caller could no longer open the namespaces of its
        // own child waiting at the gate.
        // SAFETY: geteuid has no preconditions.
        let root_caller = unsafe { libc::geteuid() } == 0;
        if root_caller && (!self.kinds.is_empty() || !self.joins.is_empty()) {
            steps.push(Step::NotDumpable);
        }

        // A joined user namespace first: the others are owned by it.
        // (Some are joined at the clone itself: see `joined_at_clone`.)
        let mut joins: Vec<&(Kind, OwnedFd)> = self
            .joins
            .iter()
            .filter(|(k, _)| !self.joined_at_clone(*k))
            .collect();
        joins.sort_by_key(|(k, _)| *k != Kind::User);
        for (kind, fd) in joins {
            steps.push(Step::Setns {
                fd: fd.as_raw_fd(),
                nstype: kind.clone_flag(),
            });
        }
        if let Some(target) = &self.exec {
            let kinds = target.child_kinds()?;
            if !kinds.is_empty() {
                steps.push(Step::Setns {
                    fd: target.fd().as_raw_fd(),
                    nstype: kinds.clone_flags(),
                });
            }
        }
        // In a new user namespace, become its root first (as runc does):
        // until then the child's ids are unmapped, and the kernel refuses
        // to make files or a devpts instance owned by them (EOVERFLOW).
        if self.kinds.contains(Kind::User) {
            if self.gid_map.iter().any(|m| m.inside == 0) {
                steps.push(Step::SetGid(0));
            }
            if self.uid_map.iter().any(|m| m.inside == 0) {
                steps.push(Step::SetUid(0));
            }
        }
        // After the joins: owned by a joined user namespace; in the cgroups
        // it is rooted at.
        if self.defer_cgroup_namespace() {
            self.join_cgroups_later_here(&mut steps)?;
            steps.push(Step::Unshare {
                flags: libc::CLONE_NEWCGROUP,
            });
        }
        let sources: Vec<RawFd> = fds.stdio.iter().flatten().copied().collect();
        for (to, from) in fds.stdio.iter().enumerate() {
            if let Some(from) = *from {
                steps.push(Step::Dup2 {
                    from,
                    to: to as RawFd,
                });
            }
        }
        if !sources.is_empty() {
            steps.push(Step::Close { fds: sources });
        }
        if let Some(p) = self.propagation
            && self.kinds.contains(Kind::Mount)
        {
            steps.push(Step::Propagation {
                target: CString::from(c"/"),
                flags: p.flags(),
            });
        }
        if let Some(name) = &self.hostname {
            steps.push(Step::Hostname(Error::cstring("hostname", name)?));
        }
        if let Some(name) = &self.domainname {
            steps.push(Step::Domainname(Error::cstring("domain name", name)?));
        }
        if self.loopback {
            steps.push(Step::Loopback);
        }
        if self.kinds.contains(Kind::Time) {
            steps.push(Step::TimeNamespace {
                offsets: self.time_offsets_text()?,
            });
        }
        // Sysctls are allowed in namespaces the process does not share
        // with the caller: new, joined, or those of an exec target.
        let mut own = self.kinds;
        for (kind, _) in &self.joins {
            own = own.with(*kind);
        }
        if let Some(target) = &self.exec {
            own = own | target.differing()?;
        }
        let confinement = self.knobs.prepare(own)?;
        steps.extend(confinement.sysctl_steps());
        // The cgroups made meanwhile are joined before the cgroup mounts
        // that show them (see `cgroup_steps`), else here, before the rootfs
        // steps: by their host paths, in view until the pivot (the joins
        // that would hide them are refused in `check_cgroups_later`).
        if !self
            .mounts
            .iter()
            .any(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        {
            self.join_cgroups_later_here(&mut steps)?;
        }
        if let Some(rootfs) = &self.rootfs {
            self.rootfs_steps(rootfs, &mut steps)?;
        }
        if let Some(root) = &self.root {
            steps.push(Step::Chroot(Error::cstring("root", root)?));
        }
        if let Some(target) = &self.exec
            && self.root.is_none()
        {
            steps.push(Step::ChrootFd(target.root_fd()?));
        }
        if let Some(cwd) = &self.cwd {
            if self.rootfs.is_some() {
                // Resolved in the new root without magic links: a leaked
                // descriptor named as /proc/self/fd/N cannot make the
                // working directory one outside the container
                // (CVE-2024-21626).
                steps.push(Step::ChdirInRoot(crate::rootfs::in_root(
                    &std::path::Path::new("/").join(cwd),
                )?));
            } else {
                steps.push(Step::Chdir(Error::cstring("working directory", cwd)?));
            }
        }
        if let Some(target) = &self.proc_target {
            steps.push(Step::Mount {
                source: Some(CString::from(c"proc")),
                target: Error::cstring("proc mount point", target)?,
                fstype: Some(CString::from(c"proc")),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
            });
        }
        if let Some(t) = &fds.terminal {
            steps.push(Step::Terminal(t.clone()));
        }
        if let Some((_, enter)) = inner_user {
            steps.push(enter);
        }
        let (uid, gid) = self.ids();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let ids = Ids {
            uid,
            gid,
            // (Denied in an inner user namespace.)
            clear_groups: gid.is_some()
                && self.setgroups != Some(SetGroups::Deny)
                && root
                && self.inner_user.is_none(),
        };
        // Capabilities, rlimits, ... around the id switch.
        steps.extend(confinement.steps_through_ids(ids));
        // Passed descriptors move into place late: by now the child holds
        // only the error pipe and the gate, numbered above every target.
        for &(from, to) in &fds.passed {
            steps.push(Step::Dup2 { from, to });
        }
        steps.push(Step::ResetSignals);
        if self.function.is_none() {
            let mut keep: Vec<RawFd> = fds.passed.iter().map(|(_, to)| *to).collect();
            keep.sort_unstable();
            steps.push(Step::CloseFrom {
                first: 3,
                keep,
                limit: nofile_limit(),
            });
        }
        if let Some(fd) = fds.gate_read {
            let keep = self.function.is_none().then(|| {
                let mut keep: Vec<RawFd> = fds.passed.iter().map(|(_, to)| *to).collect();
                keep.sort_unstable();
                keep
            });
            steps.push(Step::StartGate {
                fd,
                keep,
                limit: nofile_limit(),
            });
        }
        steps.extend(confinement.last_steps());
        for prog in &self.stacked_seccomp {
            steps.push(Step::Confine(crate::confine::ConfineStep::Seccomp(
                prog.clone(),
            )));
        }
        for step in &mut steps {
            if let Step::JoinCgroupsLater { fd, .. } = step {
                *fd = fds.cgroups_later.unwrap_or(-1);
            }
        }
        Ok(steps)
    }

    /// The step joining the cgroups of `join_cgroup_tasks_later`, unless
    /// there are none or an earlier step joins them (its descriptor is
    /// filled in at the end of `steps`).
    pub(crate) fn join_cgroups_later_here(&self, steps: &mut Vec<Step>) -> Result<()> {
        if self.cgroup_tasks_later.is_empty()
            || steps
                .iter()
                .any(|s| matches!(s, Step::JoinCgroupsLater { .. }))
        {
            return Ok(());
        }
        let tasks = self
            .cgroup_tasks_later
            .iter()
            .map(|p| Error::cstring("cgroup tasks file", p))
            .collect::<Result<Vec<_>>>()?;
        steps.push(Step::JoinCgroupsLater { fd: -1, tasks });
        Ok(())
    }

    fn time_offsets_text(&self) -> Result<CString> {
        let text: String = self
            .time_offsets
            .iter()
            .map(|(clock, secs)| {
                let name = match clock {
                    Clock::Monotonic => "monotonic",
                    Clock::Boottime => "boottime",
                };
                format!("{name} {secs} 0\n")
            })
            .collect();
        Error::cstring("time offsets", text)
    }

    /// The ids to switch to: explicit, or root of a new user namespace whose
    /// map leaves the caller's own id out.
    pub(crate) fn ids(&self) -> (Option<u32>, Option<u32>) {
        let default = |map: &[IdMap], own: u32| {
            let own_mapped = map.iter().any(|m| {
                m.outside <= own && u64::from(own) < u64::from(m.outside) + u64::from(m.count)
            });
            let zero_mapped = map.iter().any(|m| m.inside == 0);
            (self.kinds.contains(Kind::User) && zero_mapped && !own_mapped).then_some(0)
        };
        // SAFETY: these getters have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        (
            self.uid.or_else(|| default(&self.uid_map, euid)),
            self.gid.or_else(|| default(&self.gid_map, egid)),
        )
    }

    pub(crate) fn final_env(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            match v {
                Some(v) => env.insert(k.clone(), v.clone()),
                None => env.remove(k),
            };
        }
        env
    }
}

/// The soft `RLIMIT_NOFILE` (bound of the close-on-exec fallback loop),
/// capped so that the loop stays short.
fn nofile_limit() -> libc::c_int {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1 << 20;
    }
    libc::c_int::try_from(lim.rlim_cur.min(1 << 20)).unwrap_or(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_clone3_is_a_typed_error_naming_the_minimum() {
        let e = clone_error(
            Kind::Net.into(),
            false,
            io::Error::from_raw_os_error(libc::ENOSYS),
        );
        assert!(
            matches!(
                e,
                Error::Unsupported {
                    feature: "clone3",
                    min_kernel: "5.3"
                }
            ),
            "{e}"
        );
        // On this (newer) kernel EINVAL stays the kernel's error.
        let e = clone_error(
            Kind::Net.into(),
            true,
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(e, Error::Syscall { op: "clone3", .. }), "{e}");
    }
}
