//! The confinement setters of [`Command`]: capabilities, `no_new_privs`,
//! rlimits, `oom_score_adj`, sysctls, umask, additional groups, seccomp.
//! Everything is checked when the command spawns, before clone.

use crate::caps::Capabilities;
use crate::confine::ProcessKnobs;
use crate::rlimit::Rlimit;
use crate::seccomp::BpfProgram;
use crate::spawn::Command;

impl Command {
    /// Set every confinement knob at once (an OCI runtime's `process`).
    pub fn process_knobs(&mut self, knobs: ProcessKnobs) -> &mut Command {
        self.knobs = knobs;
        self
    }

    /// The confinement knobs set so far.
    pub fn knobs(&self) -> &ProcessKnobs {
        &self.knobs
    }

    /// The five capability sets of the program (see
    /// [`Capabilities::uniform`] for Docker's way). Without it they are
    /// inherited.
    pub fn capabilities(&mut self, caps: Capabilities) -> &mut Command {
        self.knobs.capabilities = Some(caps);
        self
    }

    /// Keep the effective and permitted capabilities across the switch to
    /// a non-root [`uid`](Command::uid) (`PR_SET_KEEPCAPS`, as runc). By
    /// default a non-root uid gets empty effective, permitted and ambient
    /// sets, as Docker gives `--user 1000`.
    pub fn keep_capabilities(&mut self, keep: bool) -> &mut Command {
        self.knobs.keep_capabilities = keep;
        self
    }

    /// Set `no_new_privs`; the seccomp filter is then loaded as the very
    /// last step.
    pub fn no_new_privileges(&mut self, on: bool) -> &mut Command {
        self.knobs.no_new_privileges = on;
        self
    }

    /// Add a resource limit.
    pub fn rlimit(&mut self, limit: Rlimit) -> &mut Command {
        self.knobs.rlimits.push(limit);
        self
    }

    /// The child writes `/proc/self/oom_score_adj` (-1000 to 1000; lowering
    /// it needs `CAP_SYS_RESOURCE`, held until the capabilities are set).
    pub fn oom_score_adj(&mut self, value: i32) -> &mut Command {
        self.knobs.oom_score_adj = Some(value);
        self
    }

    /// Set a namespaced sysctl (`net.*` with a new network namespace,
    /// `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*` with a new
    /// IPC namespace, `kernel.hostname|domainname` with a new UTS
    /// namespace); any other is refused before clone.
    pub fn sysctl(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Command {
        self.knobs.sysctls.push((name.into(), value.into()));
        self
    }

    /// The program's umask.
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.knobs.umask = Some(mask);
        self
    }

    /// The supplementary groups (`setgroups`), set with the ids.
    pub fn additional_gids(&mut self, gids: impl Into<Vec<u32>>) -> &mut Command {
        self.knobs.additional_gids = Some(gids.into());
        self
    }

    /// Start the program in a new session (`setsid`): no controlling
    /// terminal, so it cannot push input into the caller's (bubblewrap's
    /// `--new-session`).
    pub fn new_session(&mut self, on: bool) -> &mut Command {
        self.knobs.new_session = on;
        self
    }

    /// Compile an OCI seccomp profile (feature `seccomp`) and load it as
    /// [`seccomp`](Command::seccomp) does. A bad profile is
    /// [`crate::ConfineError::Seccomp`] here, before anything is spawned; the
    /// warnings (syscall names this libseccomp does not know, skipped) are
    /// returned for the caller to report.
    #[cfg(feature = "seccomp")]
    pub fn seccomp_profile(
        &mut self,
        profile: &crate::seccomp::Profile,
    ) -> crate::Result<Vec<crate::seccomp::SeccompWarning>> {
        let (program, warnings) =
            crate::seccomp::compile(profile).map_err(|e| crate::Error::Confine(e.into()))?;
        self.knobs.seccomp = Some(program);
        Ok(warnings)
    }

    /// Load this seccomp filter in the child: before the capabilities and
    /// ids change when `no_new_privs` is off (loading needs
    /// `CAP_SYS_ADMIN` then, and the filter must allow the rest of the
    /// setup: `capset`, `prctl`, `setresuid`, `rt_sigaction`,
    /// `close_range`, `execve`), else as the last step before exec.
    pub fn seccomp(&mut self, program: BpfProgram) -> &mut Command {
        self.knobs.seccomp = Some(program);
        self
    }
}
