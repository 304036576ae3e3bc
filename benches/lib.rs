//! Benchmarks of the dunnage crates against their peers, one
//! `harness = false` bench target per area: `cargo bench -p dunnage-benches
//! --bench NAME` (commands and figures in BENCHMARKS.md at the workspace
//! root). Cargo needs a library or binary target in every package: this
//! library is empty.
