//! # dunnage-namespaces
//!
//! Linux namespaces as a library: the eight [kinds](Kind), the
//! [identity](NamespaceId) of a process's namespaces, [`unshare()`], joining
//! ([`join`], [`join_file`]), [persisting](persist()) a namespace in a file, and
//! a [`Command`] that spawns a program (or a closure) in new namespaces with
//! id maps, hostname, a fresh `/proc`, loopback, mount propagation, a
//! parent-death signal and time offsets.
//!
//! ```no_run
//! use dunnage_namespaces::{Command, Kind};
//!
//! // `hostname` in new pid, mount and UTS namespaces, with its own /proc.
//! let out = Command::new("sh")
//!     .args(["-c", "hostname; echo $$; cat /proc/1/comm"])
//!     .namespaces(Kind::Pid | Kind::Mount | Kind::Uts)
//!     .hostname("sandbox")
//!     .mount_proc("/proc")
//!     .output()?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox\n1\nsh\n");
//! # Ok::<(), dunnage_namespaces::Error>(())
//! ```
//!
//! ## Minimum kernel
//!
//! Linux 5.7: [`Command`] creates its child with `clone3` (5.3) and
//! `CLONE_PIDFD`, and [`Command::into_cgroup`] uses `CLONE_INTO_CGROUP`
//! (5.7); below these a spawn fails with [`Error::Unsupported`]. Marking the
//! child's descriptors close-on-exec uses `close_range(CLOSE_RANGE_CLOEXEC)`
//! (5.11) and falls back to `fcntl` on each descriptor on older kernels.
//! Time namespaces need 5.6.
//!
//! | module | what it holds |
//! |---|---|
//! | [`kind`] | [`Kind`], [`Kinds`]: flags, proc names, kernel support |
//! | [`ident`] | [`NamespaceId`] (`net:[4026531956]`), [`namespaces_of`], [`same_namespace`] |
//! | [`mod@unshare`] | [`unshare()`], [`unshare_with`] |
//! | [`setns`] | [`join`], [`join_pidfd`], [`join_each`], [`join_file`], [`pidfd_open`] |
//! | [`mod@persist`] | [`persist()`], [`persist_file`], [`release`], [`PersistedNamespace`] |
//! | [`propagation`] | [`Propagation`], [`PropagationMode`], [`set_propagation`] |
//! | [`idmap`] | [`IdMap`], validation, [`write_maps`], `/etc/subuid` ranges |
//! | [`spawn`] | [`Command`], [`Clock`] |
//! | [`child`] | [`Child`], [`Stdio`] |
//! | [`caps`] | [`CapSet`], [`Capabilities`]: capability names, the five sets |
//! | [`rlimit`] | [`Rlimit`] by name |
//! | [`sysctl`] | namespaced sysctls |
//! | [`seccomp`] | OCI profiles, [`BpfProgram`] (compiled with feature `seccomp`) |
//! | [`confine`] | [`ProcessKnobs`], [`ConfineStep`]: a process's confinement, as steps of the child |
//! | [`confine_error`] | [`ConfineError`] |
//! | [`step`] | [`Step`]: the child's setup between clone and exec, as data ([`Command::plan`]) |
//! | [`container`] | the container knobs of [`Command`] (rootfs, mounts, /dev, start gate, fds, joins), [`Gate`] |
//! | [`mounts`] | [`Mount`], [`Device`], [`MountError`]: the container's mount table and nodes |
//! | [`exec`] | [`Command::exec_in`]: a process in the namespaces and cgroup of a running one |
//! | [`terminal`] | [`Command::terminal`], [`Child::take_terminal`]: a pty for the program |
//! | [`error`] | [`Error`], [`Result`] |

mod atclone;
mod builder;
pub mod caps;
pub mod child;
pub mod confine;
pub mod confine_error;
pub mod container;
pub mod error;
pub mod exec;
pub mod ident;
pub mod idmap;
mod inneruser;
mod inroot;
pub mod kind;
mod knobs;
mod launch;
pub mod mounts;
pub mod persist;
mod plan;
pub mod propagation;
mod report;
pub mod rlimit;
mod rootfs;
pub mod rootops;
mod rootsetup;
pub mod seccomp;
pub mod setns;
mod setup;
pub mod spawn;
pub mod step;
pub mod sysctl;
pub mod terminal;
pub mod unshare;

pub use caps::{CapSet, Capabilities};
pub use child::{Child, Stdio};
pub use confine::{ConfineStep, ProcessKnobs};
pub use confine_error::ConfineError;
pub use container::Gate;
pub use error::{Error, Result};
pub use ident::{NamespaceId, namespaces_of, same_namespace};
pub use idmap::{IdMap, IdMapError, SetGroups, write_maps};
pub use kind::{Kind, Kinds};
pub use mounts::{Device, DeviceKind, Mount, MountError};
pub use persist::{PersistedNamespace, persist, persist_file, release};
pub use propagation::{Propagation, PropagationMode, set_propagation};
pub use rlimit::Rlimit;
pub use rootops::RootOp;
pub use seccomp::{BpfProgram, Profile as SeccompProfile, SeccompError, SeccompWarning};
pub use setns::{join, join_each, join_file, join_pidfd, pidfd_open};
pub use spawn::{Clock, Command, Meanwhile};
pub use step::Step;
pub use unshare::{unshare, unshare_with};

/// Whether the running kernel's release is at least `major.minor`
/// (`uname`); `false` when it cannot be read.
pub(crate) fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills a zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    let release: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let text = String::from_utf8_lossy(&release);
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}
