//! `dunnage-image`: container images as Docker stores them.
//!
//! Image configs (Docker v1.2 and OCI) kept byte for byte, the imagedb and
//! `repositories.json` of a Docker data-root, `docker load` of docker-archive
//! tars and OCI layouts, `docker save`, OCI layout export, `docker import`,
//! `docker commit`, history, inspect, tags, removal and pruning — on top of
//! [`dunnage_layerstore`], so a store written here is one a stopped dockerd
//! reads, and the other way round.
//!
//! ```no_run
//! use dunnage_image::{ImageStore, LoadOptions};
//! # fn main() -> Result<(), dunnage_image::Error> {
//! let store = ImageStore::open("/var/lib/dunnage".as_ref())?;
//! for image in store.load("busybox.tar".as_ref(), LoadOptions::default())? {
//!     println!("Loaded image ID: {}", image.id);
//! }
//! for image in store.images()? {
//!     println!("{} {:?} {}", image.id.short(), image.references, image.size);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! - [`config`]: [`ImageConfig`] (raw bytes, [`ImageId`], typed [`ConfigFile`]).
//! - [`reference`](mod@reference): [`Reference`] parsing and Docker's normalisation.
//! - [`imagedb`]: [`ImageDb`], configs under their ID, verified on read.
//! - [`repositories`]: [`Repositories`], `repositories.json`.
//! - [`store`]: [`ImageStore`]: resolve, tag, remove, prune; one lock for
//!   every change of configs and tags, shared by all processes.
//! - [`check`]: [`ImageStore::check`] and [`ImageStore::repair`] of a whole store.
//! - [`reclaim`]: layer references no image owns (a load killed halfway)
//!   found by [`ImageStore::leaked_layers`] and given back by
//!   [`ImageStore::prune`], [`ImageStore::load`] and
//!   [`ImageStore::reclaim_leaked_layers`].
//! - [`load`]: [`ImageStore::load`] with [`LoadOptions`].
//! - [`progress`]: [`Progress`] reports of load, save, export, import, commit.
//! - [`save`] and [`export`]: [`ImageStore::save`] (docker-archive) and
//!   [`ImageStore::export_oci`] (OCI layout).
//! - [`import`]: [`ImageStore::import`] and [`ImageStore::commit`].
//! - [`mount`](mod@mount): [`ImageStore::mount`] of an image's read-only rootfs.
//! - [`views`]: [`ImageStore::images`], [`ImageStore::history`], [`ImageStore::inspect`].
//! - [`layout`]: the JSON documents of archives and OCI layouts.
//! - `registry` (cargo feature `registry`): `ImageStore::pull` and
//!   `ImageStore::push` over the OCI distribution API, `login`/`logout`.
//! - [`time`]: RFC 3339 and Docker's human durations and sizes.

pub mod check;
mod check_fs;
pub mod config;
pub mod error;
pub mod export;
mod fsutil;
pub mod imagedb;
pub mod import;
pub mod inuse;
pub mod layout;
pub mod load;
pub mod mount;
mod plan;
pub mod progress;
pub mod reclaim;
pub mod reference;
#[cfg(feature = "registry")]
pub mod registry;
pub mod repositories;
pub mod runview;
pub mod save;
mod source;
mod spool;
mod stage;
pub mod store;
pub mod time;
pub mod views;

pub use check::{CheckReport, Problem};
pub use config::{ConfigFile, History, ImageConfig, ImageId, RootFs, RunConfig};
pub use error::{Error, Result};
pub use imagedb::ImageDb;
pub use import::ImageChanges;
pub use inuse::ImageUser;
pub use load::{LoadOptions, Loaded};
pub use progress::{Progress, ProgressFn};
pub use reclaim::{LeakedLayer, Operation};
pub use reference::Reference;
pub use repositories::Repositories;
pub use runview::{RunOverrides, RunView};
pub use store::{ImageStore, Removed};
pub use views::{BrokenImage, HistoryRow, ImageReport, ImageSummary};
