//! Containers: an image (or a rootfs directory) made into a running,
//! confined process, with its state in the store.
//!
//! - [`Container`]: the builder, in the manner of `std::process::Command`,
//!   with container knobs; [`Container::resolve`] shows what would be
//!   made ([`Spec`]) without making anything; [`Container::create`] makes
//!   it.
//! - [`ContainerStore`]: the containers of a data root (beside its images
//!   and layers); [`ContainerStore::get`] finds one by name, ID or ID
//!   prefix from any process.
//! - [`ContainerHandle`]: start, wait, kill, stop, pause, resume, stats,
//!   top, exec, update, commit, export, logs, remove;
//!   [`ContainerHandle::recreate`] makes an exited container ready to run
//!   again (docker's `start` of an exited container; what is kept and
//!   what is new is listed there).
//! - [`ContainerStore::check`] and [`ContainerStore::repair`]: the store
//!   check with the containers' state (module [`check`]).
//!
//! What `create` makes, in order, each undone if a later one fails:
//! 1. `containers/<id>/` with `config.json` (the [`Spec`]) and the
//!    `hostname`, `hosts` and `resolv.conf` files bound into the container
//!    (the on-disk protocol is in [`state`]);
//! 2. the rootfs: the layer store's container layer on the image
//!    (Docker's `-init` layer and a read-write layer), mounted with overlay;
//! 3. the cgroup `<parent>/<id>` with the resources;
//! 4. the process in new mount, uts, ipc, pid and (unless the host's or a
//!    joined one) network namespaces, pivoted into the rootfs with
//!    Docker's mounts, devices, masked and read-only paths, capabilities
//!    and seccomp, waiting at its start gate;
//!    With a bridge network ([`Network::Bridge`], see [`network`]), the
//!    network is checked before step 1 and the container attached here,
//!    with `hosts` and `resolv.conf` rewritten for its address;
//! 5. `state.json`: created, with the init's pid and start time.

mod again;
pub mod attach;
mod builder;
mod capsets;
pub mod check;
pub(crate) mod command;
mod create;
pub mod error;
mod handle;
pub mod jsonlog;
pub mod monitor;
pub mod network;
mod ops;
mod resolve;
mod seccomp_cache;
mod shared_rootfs;
pub mod spec;
pub mod state;
mod store;
pub mod user;

pub use attach::Attach;
pub use builder::{Container, StdioMode};
pub use capsets::CapabilitySets;
pub use check::{CheckReport, Problem};
pub use error::{Error, Result};
pub use handle::{ContainerHandle, ExitInfo};
pub use jsonlog::JsonLog;
pub use ops::{ExecOptions, Process, read_json_log};
pub use resolve::DEFAULT_PATH;
pub use spec::{IdMapping, MountSpec, Network, ResourceLimits, RlimitSpec, Seccomp, Spec, Status};
pub use state::State;
pub use store::{ContainerInfo, ContainerStore};
