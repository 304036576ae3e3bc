//! `dunnage-image`: placeholder. This crate is not built yet; see the
//! workspace README for its status.
//!
//! ```
//! assert_eq!(2 + 2, 4); // nothing to show yet
//! ```
