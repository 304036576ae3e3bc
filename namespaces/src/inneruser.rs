//! A second user namespace nested in the child's new one, entered after
//! the setup (bubblewrap's second level): the setup runs as the first
//! namespace's root, so that the kernel lets it mount a devpts instance,
//! and the program runs with its own ids mapped onto that root, so that
//! what the setup made shows as owned by them.

use std::ffi::CString;

use libc::c_int;

use crate::error::{Error, Result};
use crate::inroot::{StepResult, check, errno};
use crate::kind::Kind;
use crate::spawn::Command;
use crate::step::Step;

impl Command {
    /// After the root is set up (mounts, `pivot_root`, read-only root),
    /// move the child into a user namespace nested in its new one, where
    /// `uid` and `gid` map onto the first namespace's root, with
    /// `setgroups` denied; then switch to `uid` and `gid` there.
    ///
    /// This is bubblewrap's way of giving the sandbox a devpts instance
    /// owned by its user: the kernel makes a new devpts owned by the root
    /// of the mounting user namespace, which must be mapped, so the setup
    /// runs as that root and the program's ids are mapped onto it one level
    /// down. Needs a new user namespace whose maps have 0 inside (the
    /// setup's ids); [`uid`](Command::uid) and [`gid`](Command::gid) are
    /// set to `uid` and `gid`. Capabilities, seccomp and the other process
    /// knobs apply in the inner namespace. Additional groups cannot be set
    /// (`setgroups` is denied there).
    pub fn inner_user_namespace(&mut self, uid: u32, gid: u32) -> &mut Command {
        self.inner_user = Some((uid, gid));
        self.uid(uid).gid(gid)
    }

    /// Refuse an inner user namespace without a new one mapping 0.
    pub(crate) fn check_inner_user(&self) -> Result<()> {
        if self.inner_user.is_none() {
            return Ok(());
        }
        if !self.kinds.contains(Kind::User) {
            return Err(Error::NeedsNamespace {
                what: "an inner user namespace",
                kind: Kind::User,
            });
        }
        let root_mapped = |map: &[crate::idmap::IdMap]| map.iter().any(|m| m.inside == 0);
        if !root_mapped(&self.uid_map) || !root_mapped(&self.gid_map) {
            return Err(Error::NeedsNamespace {
                what: "an inner user namespace (maps with 0 inside)",
                kind: Kind::User,
            });
        }
        Ok(())
    }

    /// The child's steps: open the host's `/proc` early (the sandbox may
    /// have none), and the move itself late.
    pub(crate) fn inner_user_steps(&self) -> Result<Option<(Step, Step)>> {
        let Some((uid, gid)) = self.inner_user else {
            return Ok(None);
        };
        Ok(Some((
            Step::OpenProc,
            Step::InnerUserNamespace {
                uid_map: Error::cstring("uid map", format!("{uid} 0 1\n"))?,
                gid_map: Error::cstring("gid map", format!("{gid} 0 1\n"))?,
            },
        )))
    }
}

/// `open("/proc")`, kept for [`inner_user_namespace`].
pub(crate) fn open_proc() -> std::result::Result<c_int, c_int> {
    // SAFETY: open of a literal.
    let fd = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check(fd)?;
    Ok(fd)
}

/// Write `text` to `/proc/self/<name>` through the `/proc` descriptor.
fn write_proc_self(proc_fd: c_int, name: &std::ffi::CStr, text: &[u8]) -> StepResult {
    // SAFETY: openat/write/close on a descriptor this child owns and
    // buffers of their length.
    unsafe {
        let fd = libc::openat(proc_fd, name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        check(fd)?;
        let n = libc::write(fd, text.as_ptr().cast(), text.len());
        let e = errno();
        libc::close(fd);
        if n < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Unshare the inner user namespace and write its maps (after denying
/// `setgroups`, which lets a process map its own gid), then close `/proc`.
pub(crate) fn inner_user_namespace(
    proc_fd: c_int,
    uid_map: &CString,
    gid_map: &CString,
) -> StepResult {
    // SAFETY: unshare has no memory preconditions.
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
    write_proc_self(proc_fd, c"self/setgroups", b"deny")?;
    write_proc_self(proc_fd, c"self/uid_map", uid_map.as_bytes())?;
    write_proc_self(proc_fd, c"self/gid_map", gid_map.as_bytes())?;
    // SAFETY: close of the descriptor opened by `open_proc`.
    unsafe { libc::close(proc_fd) };
    Ok(())
}
