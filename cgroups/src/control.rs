//! Freezing, thawing and killing everything in a cgroup.

use crate::cgroup::{Cgroup, CgroupDir};
use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::file;
use crate::hierarchy::Version;
use std::time::{Duration, Instant};

/// How long freeze, thaw and kill wait for the kernel to get there.
const WAIT: Duration = Duration::from_secs(5);

/// Whether a cgroup is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    /// Running.
    Thawed,
    /// v1: being frozen (some tasks not yet stopped).
    Freezing,
    /// Every task stopped.
    Frozen,
}

impl Cgroup {
    /// The directory that freezes: the v1 freezer's, else the v2 one.
    fn freezer(&self) -> Result<&CgroupDir> {
        self.dir_of(Controller::Freezer)
            .or(self.v2_dir())
            .ok_or_else(|| {
                Error::unsupported(
                    "freezer",
                    "no v1 freezer and no v2 directory in this cgroup",
                )
            })
    }

    /// The freezer state.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        let d = self.freezer()?;
        match d.version {
            Version::V1 => {
                let p = d.file("freezer.state");
                match file::read_trimmed(&p)?.as_str() {
                    "THAWED" => Ok(FreezerState::Thawed),
                    "FREEZING" => Ok(FreezerState::Freezing),
                    "FROZEN" => Ok(FreezerState::Frozen),
                    other => Err(Error::parse(&p, 1, format!("unknown state {other:?}"))),
                }
            }
            Version::V2 => {
                let p = d.file("cgroup.events");
                let ev = file::read_flat_keyed(&p)?;
                let want = file::read_trimmed(&d.file("cgroup.freeze"))? == "1";
                Ok(match (want, file::key(&p, &ev, "frozen")? == 1) {
                    (_, true) => FreezerState::Frozen,
                    (true, false) => FreezerState::Freezing,
                    (false, false) => FreezerState::Thawed,
                })
            }
        }
    }

    /// Freeze every task and wait until all are stopped (v1
    /// `freezer.state`, v2 `cgroup.freeze` + `cgroup.events`).
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaw, and wait until the kernel reports it.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let d = self.freezer()?;
        let (name, value) = match (d.version, frozen) {
            (Version::V1, true) => ("freezer.state", "FROZEN"),
            (Version::V1, false) => ("freezer.state", "THAWED"),
            (Version::V2, true) => ("cgroup.freeze", "1"),
            (Version::V2, false) => ("cgroup.freeze", "0"),
        };
        let want = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        let deadline = Instant::now() + WAIT;
        let mut pause = Duration::from_micros(100);
        loop {
            // v1 may stay FREEZING when a task is in an uninterruptible
            // sleep; writing FROZEN again retries the freeze.
            file::write(&d.file(name), value)?;
            if self.freezer_state()? == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: if frozen {
                        "frozen state"
                    } else {
                        "thawed state"
                    },
                    path: d.path.clone(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// SIGKILL every process in the cgroup and in the cgroups below it,
    /// and wait until they are empty.
    ///
    /// v2 writes `cgroup.kill`. v1 has no such file: the cgroup is frozen
    /// (so nothing forks meanwhile), each pid gets SIGKILL, then it is
    /// thawed so the signals are delivered; without a freezer, killing
    /// repeats until the cgroup is empty.
    pub fn kill(&self) -> Result<()> {
        if let Some(d) = self.v2_dir().filter(|d| d.file("cgroup.kill").exists()) {
            // Always written, even when no process is listed: the kernel
            // also kills what the list cannot show yet (a fork being
            // created into the cgroup with CLONE_INTO_CGROUP) and the
            // processes of child cgroups.
            file::write(&d.file("cgroup.kill"), "1")?;
        } else {
            // Nothing to kill (the usual case once a container's init has
            // exited): no freeze and thaw, whose first freeze of the
            // machine flips a kernel static key (a text patch on every
            // CPU). The freezer stops forks only once frozen, so an empty
            // list here is no worse than the signal round below.
            if self.procs_left()?.is_empty() {
                return Ok(());
            }
            // A directory removed meanwhile (`delete_if_empty` stops at the
            // first busy one) holds nothing and needs no freezing.
            let frozen = self
                .dir_of(Controller::Freezer)
                .is_some_and(|d| d.path.exists());
            if frozen {
                self.freeze()?;
            }
            // Read again once frozen: nothing forks after this list.
            let result = self.procs_left().and_then(|pids| signal(&pids));
            if frozen {
                self.thaw()?;
            }
            result?;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = self.procs_left()?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the cgroup to empty after SIGKILL",
                    path: self.dirs()[0].path.clone(),
                });
            }
            // Without a v1 freezer a fork may have escaped the first round.
            signal(&left)?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// SIGKILL each of `pids` (one already gone is no error).
fn signal(pids: &[u32]) -> Result<()> {
    for &pid in pids {
        let Some(p) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        match rustix::process::kill_process(p, rustix::process::Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => {
                return Err(Error::Sys {
                    op: "kill",
                    arg: format!("{pid}, SIGKILL"),
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}
