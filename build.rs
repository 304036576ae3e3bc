//! Build script of the facade: link options for the examples only (the
//! library and its users are not affected).
//!
//! The examples are short-lived commands (the runtime example is started
//! once per container operation, so its start-up is part of every `run`).
//! Linked as position-independent executables with `-z now` (Rust's
//! default), the dynamic loader applies some 15,000 relative relocations
//! before `main`, and each relocated page is a copy-on-write fault.
//! Linked at a fixed address (`-no-pie`, as Debian's runc is) there are
//! none: `runtime --version` takes 0.7 ms of CPU instead of 1.0 ms on
//! this machine (see BENCHMARKS.md, `rtfast2`). Shared libraries, the
//! stack, heap and mmap areas are still placed at random addresses; only
//! the example's own code and data are not.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-examples=-no-pie");
}
