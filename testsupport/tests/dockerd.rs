#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The private dockerd starts, answers, and leaves nothing behind.

use dunnage_testsupport::{Dockerd, require_command, require_root};

#[test]
fn private_dockerd_starts_answers_and_cleans_up() {
    require_root!();
    require_command!("dockerd");
    let d = Dockerd::start("selftest").unwrap();
    let out = d
        .docker()
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", d.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "overlay2");
    let dir = d.dir().to_path_buf();
    let data = d.stop().unwrap();
    assert!(data.join("data/image/overlay2").is_dir());
    drop(data);
    assert!(!dir.exists());
}
