//! Move the calling thread or process into new namespaces.

use crate::error::{Error, Result};
use crate::kind::{Kind, Kinds};
use crate::propagation::{Propagation, set_propagation};

/// `unshare(2)` the given kinds, with util-linux's defaults: a new mount
/// namespace gets recursively private propagation, so mounts made in it stay
/// in it.
///
/// The kernel's semantics, made explicit:
/// - [`Kind::Pid`] and [`Kind::Time`] do not move the caller; they apply to
///   the children it creates afterwards (`/proc/self/ns/pid_for_children`).
///   The first child is PID 1 of the new pid namespace.
/// - [`Kind::User`] needs a single-threaded process (EINVAL otherwise).
/// - [`Kind::Mount`] also unshares the filesystem attributes (`CLONE_FS`),
///   so in a multithreaded program only the calling thread moves; the same
///   holds for uts, ipc, net and cgroup, which are per thread.
///
/// ```no_run
/// use dunnage_namespaces::{unshare, Kind};
/// unshare(Kind::Uts | Kind::Mount)?;
/// # Ok::<(), dunnage_namespaces::Error>(())
/// ```
pub fn unshare(kinds: impl Into<Kinds>) -> Result<()> {
    unshare_with(kinds, Some(Propagation::DEFAULT))
}

/// [`unshare`] with an explicit propagation for a new mount namespace, applied
/// to `/`; `None` leaves the copied mounts' propagation unchanged.
pub fn unshare_with(kinds: impl Into<Kinds>, propagation: Option<Propagation>) -> Result<()> {
    let kinds = kinds.into();
    // SAFETY: unshare has no memory preconditions.
    if unsafe { libc::unshare(kinds.clone_flags()) } != 0 {
        return Err(Error::last("unshare", kinds));
    }
    if let Some(p) = propagation.filter(|_| kinds.contains(Kind::Mount)) {
        set_propagation(std::path::Path::new("/"), p)?;
    }
    Ok(())
}
