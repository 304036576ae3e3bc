//! `dunnage-layerstore`: a Docker-compatible layer store.
//!
//! A [`LayerStore`] opens a Docker data-root (overlay2 driver) and reads and
//! writes its layerdb byte for byte as dockerd does: read-only layers under
//! their [`ChainId`], with `diff`, `parent`, `cache-id`, `size` and
//! `tar-split.json.gz`; container layers under `mounts/`; the layers'
//! contents in the overlay2 driver's directories (crate `dunnage-overlay`).
//!
//! ```no_run
//! use std::path::Path;
//! use dunnage_layerstore::{LayerStore, InitLayer};
//!
//! # fn main() -> Result<(), dunnage_layerstore::Error> {
//! let store = LayerStore::open(Path::new("/var/lib/dunnage"))?;
//! // One pass over the (gzip or plain) stream: sha256, tar-split, extraction.
//! let base = store.register(std::fs::File::open("rootfs.tar.gz").unwrap(), None, None)?;
//! println!("{} diff {} size {}", base.chain_id, base.diff_id, base.size);
//! // The original tar, byte for byte.
//! std::io::copy(&mut store.tar_stream(&base.chain_id)?, &mut std::io::sink()).unwrap();
//! // A container layer on top, with Docker's init layer, mounted.
//! store.create_rw("my-container", Some(&base.chain_id), Some(&InitLayer::default()))?;
//! let rootfs = store.mount_rw("my-container")?;
//! # let _ = rootfs;
//! store.unmount_rw("my-container")?;
//! store.remove_rw("my-container")?;
//! store.release(&base.chain_id)?; // the last reference: the layer is removed
//! # Ok(())
//! # }
//! ```
//!
//! # Contents
//! - [`digest`]: [`Digest`], [`DiffId`], [`ChainId`] and [`chain_id`].
//! - [`LayerStore`] and [`Layer`]: register, get, list, chain, acquire,
//!   release, tar_stream, verify, mount_chain.
//! - [`StagedLayer`]: a layer extracted before its parent is registered
//!   ([`LayerStore::stage`]), committed on it later; `register` is stage
//!   then commit.
//! - Container layers: [`RwLayer`], [`InitLayer`], `LayerStore::create_rw`
//!   and friends.
//! - [`tarsplit`]: Go tar-split's format, recorded during registration and
//!   used to rebuild the original tar.
//! - [`Compression`]: what `register` recognises (plain, gzip, and zstd with
//!   the `zstd` cargo feature).
//! - [`children`]: the index of what sits on each layer, which `release`
//!   reads instead of every layer's parent file.
//! - [`spare`]: a removed container's untouched layer kept for the next
//!   container on the same image (`remove_rw` keeps, `create_rw` takes
//!   back, by renames: no inode made or freed).
//! - [`Error`]: one enum, variants carrying the path or digest involved.
//!
//! # Sharing a store between processes
//! Every process that opens a data-root takes `flock(2)` locks in
//! `layerdb/dunnage/`: a store lock (shared while committing or referencing
//! a layer, exclusive while removing layers or cleaning up) and one lock per
//! layer or container. Registration streams without any lock held, so
//! different layers register in parallel; two processes registering the same
//! layer end with one layer and two references. A registration killed at any
//! point leaves no visible layer: its write-set in `tmp/` (locked by its
//! owner while alive) and driver directory are removed by the next
//! [`LayerStore::open`], as are `*-removing` directories.
//!
//! # Mounts that outlive their process
//! Two kinds of mount are owned by a record on disk instead of by the
//! process that made them, and stay until released explicitly:
//! a container's read-write layer mounted with
//! [`mount_rw`](LayerStore::mount_rw) (record: the driver's
//! `<cache-id>/mount-owner`, see [`dunnage_overlay::owned`]; released by
//! [`unmount_rw`](LayerStore::unmount_rw)), and a chain mounted read-only at
//! a caller's directory with [`mount_chain_at`](LayerStore::mount_chain_at)
//! (record: `layerdb/dunnage/chain-mounts/`, see [`chainmount`]; released by
//! [`unmount_chain_at`](LayerStore::unmount_chain_at)). [`LayerStore::open`]
//! repairs around them and never unmounts them; queries can open a store
//! with [`LayerStore::open_read_only`], which repairs nothing at all.
//!
//! # Reference counts
//! Docker keeps reference counts in memory; dunnage persists them so that
//! processes share them: `layerdb/dunnage/refs/<chainID hex>` holds the
//! number of references callers took (`register`, `acquire`) and did not
//! `release`. A layer is removed when that count is 0, no layer and no
//! container layer sits on it (looked up in the index of children,
//! [`children`], not by reading every layer's `parent` file) and no process
//! has it mounted (`mount_chain`); its parents follow by the same rule. A layer kept with a
//! count of 0 is listed in `layerdb/dunnage/unreferenced/` and removed once
//! unused, at the latest by the next `open`.
//! A layer without a count file — any layer written by dockerd — belongs to
//! whatever owns it: dunnage reads, reassembles and mounts it, counts no
//! references on it and never removes it. Do not run a dockerd on a data-root
//! while dunnage writes to it.

pub mod chainmount;
pub mod children;
pub mod digest;
mod error;
mod layerdb;
mod lock;
mod rw;
pub mod spare;
mod staged;
mod store;
mod stream;
pub mod tarsplit;
mod tee;

pub use chainmount::ChainMount;
pub use children::{Child, ChildrenIndexProblem};
pub use digest::{ChainId, DiffId, Digest, chain_id, child_chain_id};
pub use error::{Error, Result};
pub use layerdb::Layer;
pub use rw::{InitEntry, InitLayer, RwLayer};
pub use staged::StagedLayer;
pub use store::LayerStore;
pub use stream::Compression;

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
