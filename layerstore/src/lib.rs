//! `dunnage-layerstore`: a Docker-compatible layer store.
//!
//! - [`digest`]: [`Digest`], [`DiffId`], [`ChainId`] and [`chain_id`].
//! - [`tarsplit`]: Go tar-split's `tar-split.json.gz`, recorded while a layer
//!   is registered and used to rebuild its original tar byte for byte.
//! - [`Error`]: what can go wrong, with the path or digest involved.
//!
//! ```
//! use dunnage_layerstore::{chain_id, DiffId, Digest};
//! let empty = DiffId(Digest::sha256_of(&[0u8; 1024]));
//! println!("{}", chain_id(&[empty, empty]).unwrap());
//! ```

pub mod digest;
mod error;
pub mod tarsplit;

pub use digest::{ChainId, DiffId, Digest, chain_id};
pub use error::{Error, Result};
