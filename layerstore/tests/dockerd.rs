//! A data-root written by a real (private) dockerd: dunnage opens it, lists
//! its layers and container layers, rebuilds every layer's tar with the
//! diffID Docker recorded, records the same tar-split JSON Docker wrote, and
//! mounts an image chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::names;
use dunnage_layerstore::{LayerStore, tarsplit};
use dunnage_testsupport::{Dockerd, TempDir, require_root};

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A rootfs tarball: busybox and a few files.
fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_path_with_name("/bin/busybox", "bin/busybox")
        .unwrap();
    for (name, data) in [
        ("etc/hello", &b"hello\n"[..]),
        ("etc/motd", b"dunnage"),
        ("empty", b""),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn dockerd_data_root_opens_lists_reassembles_and_mounts() {
    require_root!();
    if !Path::new(dunnage_testsupport::DOCKERD).exists() {
        dunnage_testsupport::skip("dockerd_data_root", "needs /usr/sbin/dockerd");
        return;
    }
    let work = TempDir::new("ls-dockerd-work").unwrap();
    let tar = rootfs_tar();
    std::fs::write(work.join("rootfs.tar"), &tar).unwrap();
    std::fs::write(work.join("two"), b"second layer\n").unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        "FROM dunnage-test/base:1\nCOPY two /two\n",
    )
    .unwrap();

    let d = Dockerd::start("layerstore").unwrap();
    let mut import = d.docker();
    import
        .arg("import")
        .arg(work.join("rootfs.tar"))
        .arg("dunnage-test/base:1");
    run(import);
    let mut build = d.docker();
    build
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "dunnage-test/top:1"])
        .arg(work.path());
    run(build);
    let mut create = d.docker();
    create.args([
        "create",
        "--name",
        "c1",
        "dunnage-test/top:1",
        "/bin/busybox",
        "true",
    ]);
    let container = run(create);
    let mut inspect = d.docker();
    inspect.args([
        "image",
        "inspect",
        "-f",
        "{{range .RootFS.Layers}}{{.}} {{end}}",
        "dunnage-test/top:1",
    ]);
    let diff_ids: Vec<String> = run(inspect).split_whitespace().map(str::to_owned).collect();
    assert_eq!(diff_ids.len(), 2);
    let dir = d.stop().unwrap();

    let store = LayerStore::open(&dir.join("data")).unwrap();
    let layers = store.list().unwrap();
    assert_eq!(layers.len(), 2, "{layers:?}");
    for l in &layers {
        store.verify(&l.chain_id).unwrap();
        assert_eq!(
            store.references(&l.chain_id).unwrap(),
            None,
            "dockerd's layers are not dunnage's to count"
        );
    }
    let top = layers.iter().find(|l| l.parent.is_some()).unwrap();
    let base = layers.iter().find(|l| l.parent.is_none()).unwrap();
    assert_eq!(base.diff_id.to_string(), diff_ids[0]);
    assert_eq!(top.diff_id.to_string(), diff_ids[1]);
    assert_eq!(
        store.chain(&top.chain_id).unwrap(),
        vec![base.clone(), top.clone()]
    );

    // Byte for byte: the rebuilt base layer is the imported tar, and the
    // tar-split JSON we record for it is the one Docker wrote.
    let mut rebuilt = Vec::new();
    store
        .tar_stream(&base.chain_id)
        .unwrap()
        .read_to_end(&mut rebuilt)
        .unwrap();
    assert!(
        rebuilt == tar,
        "reassembled base layer differs from the imported tar"
    );
    let docker_json = {
        let path = dir
            .join("data/image/overlay2/layerdb/sha256")
            .join(base.chain_id.hex())
            .join("tar-split.json.gz");
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_end(&mut s)
            .unwrap();
        s
    };
    assert_eq!(
        String::from_utf8_lossy(&tarsplit::record(&tar[..]).unwrap()),
        String::from_utf8_lossy(&docker_json)
    );

    // The container layer and its init layer.
    let rw = store.get_rw(&container).unwrap();
    assert_eq!(rw.parent, Some(top.chain_id));
    assert_eq!(
        rw.init_id.as_deref(),
        Some(format!("{}-init", rw.mount_id).as_str())
    );
    assert!(store.list_rw().unwrap().contains(&rw));
    let init_diff = store.driver().diff_dir(rw.init_id.as_ref().unwrap());
    assert_eq!(
        names(&init_diff),
        [".dockerenv", "dev", "etc", "proc", "sys"]
    );

    // Mount the image chain and the container.
    let merged = store.mount_chain(&top.chain_id).unwrap();
    assert_eq!(
        std::fs::read(merged.join("two")).unwrap(),
        b"second layer\n"
    );
    assert_eq!(std::fs::read(merged.join("etc/motd")).unwrap(), b"dunnage");
    assert!(merged.join("bin/busybox").is_file());
    store.unmount_chain(&top.chain_id).unwrap();
    let root = store.mount_rw(&container).unwrap();
    assert!(root.join(".dockerenv").exists() && root.join("two").exists());
    store.unmount_rw(&container).unwrap();
}
