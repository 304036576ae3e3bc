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
//! | [`setup`] | [`Stage`]: the child's steps between clone and exec |
//! | [`caps`] | [`CapSet`], [`Capabilities`]: capability names, the five sets |
//! | [`rlimit`] | [`Rlimit`] by name |
//! | [`sysctl`] | namespaced sysctls |
//! | [`seccomp`] | OCI profiles, [`BpfProgram`] (compiled with feature `seccomp`) |
//! | [`confine`] | [`ProcessKnobs`] → [`Confinement`]: a process's confinement, applied by the child |
//! | [`confine_error`] | [`ConfineError`] |
//! | [`error`] | [`Error`], [`Result`] |

pub mod caps;
pub mod child;
pub mod confine;
pub mod confine_error;
pub mod error;
pub mod ident;
pub mod idmap;
pub mod kind;
mod launch;
pub mod persist;
pub mod propagation;
pub mod rlimit;
pub mod seccomp;
pub mod setns;
pub mod setup;
pub mod spawn;
pub mod sysctl;
pub mod unshare;

pub use caps::{CapSet, Capabilities};
pub use child::{Child, Stdio};
pub use confine::{Confinement, ProcessKnobs};
pub use confine_error::ConfineError;
pub use error::{Error, Result};
pub use ident::{NamespaceId, namespaces_of, same_namespace};
pub use idmap::{IdMap, IdMapError, SetGroups, write_maps};
pub use kind::{Kind, Kinds};
pub use persist::{PersistedNamespace, persist, persist_file, release};
pub use propagation::{Propagation, PropagationMode, set_propagation};
pub use rlimit::Rlimit;
pub use seccomp::{BpfProgram, Profile as SeccompProfile, SeccompError, SeccompWarning};
pub use setns::{join, join_each, join_file, join_pidfd, pidfd_open};
pub use setup::Stage;
pub use spawn::{Clock, Command};
pub use unshare::{unshare, unshare_with};
