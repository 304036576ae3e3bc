//! `dunnage-image`: container images as Docker stores them.
//!
//! Image configs (Docker v1.2 and OCI) kept byte for byte, the imagedb and
//! `repositories.json` of a Docker data-root, `docker load` of docker-archive
//! tars and OCI layouts, `docker save`, OCI layout export, `docker import`,
//! `docker commit`, history, inspect, tags, removal and pruning — on top of
//! [`dunnage_layerstore`], so a store written here is one a stopped dockerd
//! reads, and the other way round.
//!
//! ```
//! use dunnage_image::Reference;
//! let r = Reference::parse("busybox").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.familiar(), "busybox:latest");
//! ```
//!
//! - [`config`]: [`ImageConfig`] (raw bytes, [`ImageId`], typed [`ConfigFile`]).
//! - [`reference`](mod@reference): [`Reference`] parsing and Docker's normalisation.
//! - [`imagedb`]: [`ImageDb`], configs under their ID, verified on read.
//! - [`repositories`]: [`Repositories`], `repositories.json`.
//! - [`layout`]: the JSON documents of archives and OCI layouts.
//! - [`time`]: RFC 3339 and Docker's human durations and sizes.

pub mod config;
pub mod error;
mod fsutil;
pub mod imagedb;
pub mod layout;
pub mod reference;
pub mod repositories;
pub mod time;

pub use config::{ConfigFile, History, ImageConfig, ImageId, RootFs, RunConfig};
pub use error::{Error, Result};
pub use imagedb::ImageDb;
pub use reference::Reference;
pub use repositories::Repositories;
