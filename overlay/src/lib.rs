//! # dunnage-overlay
//!
//! overlayfs as a library: mount descriptions you can print or mount
//! ([`Mount`]), whiteouts and opaque directories ([`whiteout`]), streaming a
//! layer tar into an upper directory ([`apply_layer`]) and an upper
//! directory back into a layer tar ([`write_diff`]), `docker diff`-style
//! [`changes()`], Docker's layer [`diff_size`] rule, and Docker's overlay2
//! driver directory ([`Driver`]).
//!
//! | module | what it is |
//! |---|---|
//! | [`mount`] | [`Mount`] descriptions, mounting (new mount API or mount(2)), unmounting |
//! | [`probe`] | overlay's availability and features, backing filesystem checks |
//! | [`whiteout`] | whiteouts, opaque directories, redirects; `.wh.` names |
//! | [`apply`] | layer tar -> directory, with path safety |
//! | [`diff`] | directory -> layer tar, walked by directory fds (safe against a writer changing it) |
//! | [`mod@changes`] | `A`/`C`/`D` changes of an upper directory, as `docker diff` lists them plus the xattr-only and same-size edits it misses |
//! | [`size`] | Docker's size rule |
//! | [`driver`] | the overlay2 driver directory |
//! | [`owned`] | driver mounts owned by a record on disk; mount queries |
//!
//! ```no_run
//! use dunnage_overlay::{ApplyOptions, DiffOptions, Mount, apply_layer, write_diff};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), dunnage_overlay::Error> {
//! // A layer tar becomes a lower directory...
//! let tar = std::fs::File::open("layer.tar").map_err(|e| dunnage_overlay::Error::Archive(e))?;
//! let stats = apply_layer(tar, Path::new("/tmp/lower"), &ApplyOptions::default())?;
//! println!("{} entries, {} bytes", stats.entries, stats.bytes);
//!
//! // ...that an overlay mounts under a writable upper layer.
//! let m = Mount::new("/tmp/merged").lower("/tmp/lower").upper("/tmp/upper", "/tmp/work");
//! println!("{m}"); // {"LowerDir":"/tmp/lower","MergedDir":"/tmp/merged",...}
//! m.mount()?;
//! std::fs::write("/tmp/merged/hello", b"hi").ok();
//! dunnage_overlay::unmount(Path::new("/tmp/merged"))?;
//!
//! // What the container changed, as a layer tar.
//! let out = std::fs::File::create("/tmp/diff.tar").map_err(|e| dunnage_overlay::Error::Write(e))?;
//! write_diff(Path::new("/tmp/upper"), out, &DiffOptions::default())?;
//! # Ok(()) }
//! ```

pub mod apply;
pub mod changes;
mod create;
pub mod diff;
pub mod driver;
mod error;
pub mod mount;
mod naive;
pub mod owned;
pub mod probe;
mod root;
pub mod size;
mod sparse;
mod tarmeta;
mod tarread;
mod tarwrite;
pub mod whiteout;
mod written;

pub use apply::{ApplyOptions, ApplyStats, apply_layer, apply_layer_buffered};
pub use changes::{Change, ChangeKind, changes};
pub use diff::{DiffOptions, write_diff};
pub use driver::Driver;
pub use error::{Error, Result};
pub use mount::{MAX_LOWERS, Mount, MountMethod, MountOptions, RedirectDir, Xino, unmount};
pub use size::diff_size;
