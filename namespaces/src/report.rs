//! The parent's side of a spawn around the clone: the child's report,
//! descriptors passed to it, releasing it after the id maps and hook.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::child::{Child, Stdio};
use crate::error::{Error, Result};
use crate::idmap::write_maps;
use crate::kind::Kind;
use crate::launch::{abandon, dup_cloexec_from, read_report};
use crate::persist::persist;
use crate::plan::StdioRef;
use crate::setup::READY_INDEX;
use crate::spawn::Command;
use crate::step::Step;

impl Command {
    /// Read the child's report from the error pipe: `Ok(false)` once it
    /// executed the program (end of file), `Ok(true)` when it waits at its
    /// start gate; otherwise the child is reaped, what it persisted
    /// released, and the error returned.
    pub(crate) fn check_report(
        &self,
        child: &mut Child,
        err_read: &OwnedFd,
        steps: &[Step],
    ) -> Result<bool> {
        match read_report(err_read) {
            Ok(None) => Ok(false),
            Ok(Some((READY_INDEX, _))) => Ok(true),
            Ok(Some((index, errno))) => {
                abandon(child);
                let source = io::Error::from_raw_os_error(errno);
                Err(match steps.get(index as usize) {
                    Some(step) => Error::Setup {
                        index: index as usize,
                        name: step.name(),
                        step: step.to_string(),
                        source,
                    },
                    None => Error::Exec {
                        program: self.program.to_string_lossy().into_owned(),
                        source,
                    },
                })
            }
            Err(e) => {
                abandon(child);
                Err(Error::io(
                    "read error pipe of",
                    format!("/proc/{}", child.pid),
                    e,
                ))
            }
        }
    }

    /// Close-on-exec copies of the descriptors to pass, numbered above
    /// every target so that the child's `dup2`s never clobber a source.
    pub(crate) fn passed_fds(&self) -> Result<Vec<(OwnedFd, RawFd)>> {
        let above = self.fds.iter().map(|(t, _)| *t).max().unwrap_or(2) + 1;
        self.fds
            .iter()
            .map(|(t, fd)| Ok((dup_cloexec_from(fd.as_raw_fd(), above)?, *t)))
            .collect()
    }

    pub(crate) fn needs_sync(&self) -> bool {
        self.kinds.contains(Kind::User) || !self.persist.is_empty() || self.hook.is_some()
    }

    pub(crate) fn stdio_refs<'a>(&'a self, over: Option<&'a [Stdio; 3]>) -> [StdioRef<'a>; 3] {
        match over {
            Some(over) => [0, 1, 2].map(|i| StdioRef::of(&over[i])),
            None => [0, 1, 2].map(|i| {
                self.stdio[i]
                    .as_ref()
                    .map_or(StdioRef::Inherit, StdioRef::of)
            }),
        }
    }

    /// The parent's part while the child waits: id maps, persisting, the
    /// hook; then let the child go.
    pub(crate) fn release_child(
        &mut self,
        child: &mut Child,
        sync_write: Option<OwnedFd>,
    ) -> Result<()> {
        let Some(sync_write) = sync_write else {
            return Ok(());
        };
        if self.kinds.contains(Kind::User) {
            write_maps(child.pid, &self.uid_map, &self.gid_map, self.setgroups)?;
        }
        for (kind, path) in &self.persist {
            child.persisted.push(persist(child.pid, *kind, path)?);
        }
        if let Some(hook) = &mut self.hook {
            hook(child.pid).map_err(|e| {
                Error::io("before_start hook for", format!("/proc/{}", child.pid), e)
            })?;
        }
        // SAFETY: write of one byte from a valid buffer.
        let n = unsafe { libc::write(sync_write.as_raw_fd(), [0u8].as_ptr().cast(), 1) };
        if n != 1 {
            return Err(Error::io(
                "write sync pipe of",
                format!("/proc/{}", child.pid),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}
