//! Load, save, tag, history, inspect and remove on a real store (overlay
//! layers on the real kernel), with archives made by the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Cursor, Read};

use common::{docker_archive, layer_tar, snapshot};
use dunnage_image::{Error, ImageChanges, ImageStore, LoadOptions, Reference, Removed};
use dunnage_layerstore::chain_id;
use dunnage_testsupport::{TempDir, require_root};

fn two_layer_archive(dir: &TempDir, tag: &str) -> (std::path::PathBuf, Vec<u8>) {
    let l0 = layer_tar(&[("a.txt", b"hello"), ("b.txt", b"world!")]);
    let l1 = layer_tar(&[("c.txt", b"third")]);
    let (tar, config) = docker_archive(&[l0, l1], tag);
    let path = dir.join(format!("{}.tar", tag.replace([':', '/'], "_")));
    std::fs::write(&path, tar).unwrap();
    (path, config)
}

#[test]
fn load_keeps_the_config_bytes_and_tags_the_image() {
    require_root!();
    let dir = TempDir::new("image-load").unwrap();
    let (archive, config) = two_layer_archive(&dir, "me/app:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let mut events = 0;
    let mut count = |_: &dunnage_image::Progress| events += 1;
    let loaded = store
        .load(
            &archive,
            LoadOptions {
                progress: Some(&mut count),
                ..LoadOptions::default()
            },
        )
        .unwrap();
    assert!(events >= 2);
    assert_eq!(loaded.len(), 1);
    let id = &loaded[0].id;
    assert_eq!(id.0, dunnage_layerstore::Digest::sha256_of(&config));
    assert_eq!(loaded[0].tags, vec![Reference::parse("me/app:1").unwrap()]);
    let stored = store.config(id).unwrap();
    assert_eq!(stored.raw(), &config[..]);
    let top = chain_id(stored.diff_ids()).unwrap();
    assert_eq!(store.layers().chain(&top).unwrap().len(), 2);
    assert_eq!(store.resolve("me/app:1").unwrap(), *id);
    assert_eq!(store.resolve(&id.hex()[..8]).unwrap(), *id);
    let repos = std::fs::read_to_string(dir.join("root/image/overlay2/repositories.json")).unwrap();
    assert_eq!(
        repos,
        format!(r#"{{"Repositories":{{"me/app":{{"me/app:1":"{id}"}}}}}}"#)
    );
    assert!(
        dir.join(format!(
            "root/image/overlay2/imagedb/metadata/sha256/{}/lastUpdated",
            id.hex()
        ))
        .is_file()
    );
    // Loading the same archive again changes nothing but the tag time.
    let again = store.load(&archive, LoadOptions::default()).unwrap();
    assert_eq!(again[0].id, *id);
}

#[test]
fn save_then_load_gives_the_same_image_id_and_layer_bytes() {
    require_root!();
    let dir = TempDir::new("image-save").unwrap();
    let (archive, _) = two_layer_archive(&dir, "busybox:x");
    let a = ImageStore::open(&dir.join("a")).unwrap();
    let id = a.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let saved = a
        .save(&["busybox:x"], Cursor::new(Vec::new()))
        .unwrap()
        .into_inner();
    let out = dir.join("saved.tar");
    std::fs::write(&out, &saved).unwrap();
    let b = ImageStore::open(&dir.join("b")).unwrap();
    let loaded = b.load(&out, LoadOptions::default()).unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(loaded[0].tags, vec![Reference::parse("busybox:x").unwrap()]);
    // The OCI layout export loads back to the same ID too.
    let oci = dir.join("oci");
    a.export_oci(&["busybox:x"], &oci).unwrap();
    let c = ImageStore::open(&dir.join("c")).unwrap();
    assert_eq!(c.load(&oci, LoadOptions::default()).unwrap()[0].id, id);
}

#[test]
fn history_and_inspect_read_like_docker() {
    require_root!();
    let dir = TempDir::new("image-views").unwrap();
    let (archive, _) = two_layer_archive(&dir, "views:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let h = store.history(&id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].id.as_ref(), Some(&id));
    assert_eq!(h[0].size, 5);
    assert_eq!(h[1].size, 11);
    let v = store.inspect(&id).unwrap();
    assert_eq!(v["Id"], id.to_string());
    assert_eq!(v["RepoTags"][0], "views:1");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    assert!(
        v["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .unwrap()
            .ends_with("/diff")
    );
    assert_eq!(v["Size"], 16);
    let images = store.images().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].size, 16);
}

#[test]
fn rmi_untags_then_deletes_and_releases_the_layers() {
    require_root!();
    let dir = TempDir::new("image-rmi").unwrap();
    let (archive, _) = two_layer_archive(&dir, "rmi:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let before = snapshot(&dir.join("root"));
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    store.tag("rmi:1", "rmi:2").unwrap();
    assert!(matches!(
        store.remove(&id.to_string(), false),
        Err(Error::InUse { .. })
    ));
    assert_eq!(
        store.remove("rmi:1", false).unwrap(),
        vec![Removed::Untagged(Reference::parse("rmi:1").unwrap())]
    );
    let done = store.remove("rmi:2", false).unwrap();
    assert_eq!(
        done,
        vec![
            Removed::Untagged(Reference::parse("rmi:2").unwrap()),
            Removed::Deleted(id.clone())
        ]
    );
    assert!(store.layers().list().unwrap().is_empty());
    assert!(matches!(store.resolve("rmi:1"), Err(Error::NoSuchImage(_))));
    drop(store);
    let after = snapshot(&dir.join("root"));
    let repos_only: Vec<_> = after
        .difference(&before)
        .filter(|p| !p.starts_with("image/overlay2/repositories.json"))
        .collect();
    assert!(repos_only.is_empty(), "left behind: {repos_only:?}");
}

#[test]
fn images_sharing_layers_keep_them_until_the_last_is_removed() {
    require_root!();
    let dir = TempDir::new("image-shared").unwrap();
    let base = layer_tar(&[("base", b"base")]);
    let (one, _) = docker_archive(std::slice::from_ref(&base), "one:1");
    let (two, _) = docker_archive(&[base, layer_tar(&[("top", b"top")])], "two:1");
    std::fs::write(dir.join("one.tar"), one).unwrap();
    std::fs::write(dir.join("two.tar"), two).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    store
        .load(&dir.join("one.tar"), LoadOptions::default())
        .unwrap();
    store
        .load(&dir.join("two.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(store.layers().list().unwrap().len(), 2);
    store.remove("one:1", false).unwrap();
    assert_eq!(store.layers().list().unwrap().len(), 2);
    drop(store);
    // A new process takes the images' references again on open.
    let store = ImageStore::open(&dir.join("root")).unwrap();
    store.remove("two:1", false).unwrap();
    assert!(store.layers().list().unwrap().is_empty());
}

#[test]
fn import_makes_a_one_layer_image_with_the_changes() {
    require_root!();
    let dir = TempDir::new("image-import").unwrap();
    let tar = common::busybox_rootfs(dir.path());
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let changes = ImageChanges {
        reference: Some(Reference::parse("bb:imported").unwrap()),
        cmd: Some(vec!["sh".into()]),
        env: vec!["PATH=/bin".into()],
        ..ImageChanges::default()
    };
    let id = store.import(&tar, &changes).unwrap();
    let config = store.config(&id).unwrap();
    assert_eq!(config.diff_ids().len(), 1);
    assert_eq!(config.file().history.len(), 1);
    let run = config.file().config.as_ref().unwrap();
    assert_eq!(run.cmd.as_deref().unwrap(), ["sh"]);
    assert_eq!(store.resolve("bb:imported").unwrap(), id);
    // The layer's tar comes back byte for byte.
    let mut back = Vec::new();
    std::io::copy(
        &mut store
            .layers()
            .tar_stream(&config.chain_id().unwrap())
            .unwrap(),
        &mut back,
    )
    .unwrap();
    assert_eq!(back, std::fs::read(&tar).unwrap());
}

#[test]
fn mount_shows_the_image_rootfs_read_only() {
    require_root!();
    let dir = TempDir::new("image-mount").unwrap();
    let (archive, _) = two_layer_archive(&dir, "mnt:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    store.mount(&id, &target).unwrap();
    let _guard = dunnage_testsupport::MountGuard::new(&target);
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(target.join("c.txt")).unwrap(), b"third");
    assert!(std::fs::write(target.join("new"), b"x").is_err());
    store.unmount(&target).unwrap();
    assert!(!target.join("a.txt").exists());
}

#[test]
fn commit_turns_container_changes_into_a_child_image() {
    require_root!();
    let dir = TempDir::new("image-commit").unwrap();
    let (archive, _) = two_layer_archive(&dir, "base:1");
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let base = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let top = store.config(&base).unwrap().chain_id().unwrap();
    let container = dunnage_testsupport::unique_name("commit");
    let layers = store.layers();
    layers
        .create_rw(
            &container,
            Some(&top),
            Some(&dunnage_layerstore::InitLayer::default()),
        )
        .unwrap();
    let rootfs = layers.mount_rw(&container).unwrap();
    std::fs::write(rootfs.join("made-in-container"), b"new").unwrap();
    std::fs::remove_file(rootfs.join("a.txt")).unwrap();
    layers.unmount_rw(&container).unwrap();
    let changes = ImageChanges {
        reference: Some(Reference::parse("child:1").unwrap()),
        cmd: Some(vec!["true".into()]),
        comment: Some("committed".into()),
        ..ImageChanges::default()
    };
    let child = store.commit(&container, &base, &changes).unwrap();
    layers.remove_rw(&container).unwrap();
    let config = store.config(&child).unwrap();
    assert_eq!(config.diff_ids().len(), 3);
    assert_eq!(
        config.file().history.last().unwrap().comment.as_deref(),
        Some("committed")
    );
    assert_eq!(
        config
            .file()
            .config
            .as_ref()
            .unwrap()
            .cmd
            .as_deref()
            .unwrap(),
        ["true"]
    );
    assert_eq!(store.imagedb().parent(&child).unwrap(), Some(base.clone()));
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    store.mount(&child, &target).unwrap();
    let _guard = dunnage_testsupport::MountGuard::new(&target);
    assert_eq!(
        std::fs::read(target.join("made-in-container")).unwrap(),
        b"new"
    );
    assert!(!target.join("a.txt").exists());
    assert!(
        !target.join(".dockerenv").exists(),
        "the init layer leaked into the commit"
    );
    store.unmount(&target).unwrap();
    // The parent cannot be deleted by ID while the child exists.
    assert!(matches!(
        store.remove(&base.to_string(), true),
        Err(Error::InUse { .. })
    ));
    store.remove("child:1", false).unwrap();
    store.remove("base:1", false).unwrap();
    assert!(store.layers().list().unwrap().is_empty());
}

/// Write `data` into a new FIFO at `path` from a thread, as `<(...)` would.
fn feed_fifo(path: &std::path::Path, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        // The reader may stop early on an error; that is the test's to report.
        let _ = w.write_all(&data);
    })
}

#[test]
fn load_reads_a_fifo_once_plain_or_compressed() {
    require_root!();
    let dir = TempDir::new("load-fifo").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let (plain, _) = two_layer_archive(&dir, "fifo:plain");
    let plain = std::fs::read(plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();
    for (name, data) in [("plain", plain.clone()), ("gzip", gz)] {
        let fifo = dir.join(format!("in-{name}"));
        let writer = feed_fifo(&fifo, data);
        let loaded = store
            .load(&fifo, LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        writer.join().unwrap();
        assert_eq!(loaded.len(), 1, "{name}");
        assert_eq!(
            loaded[0].tags[0].to_string(),
            "docker.io/library/fifo:plain"
        );
    }
}

/// Writes through to `inner` while hashing (the diffID of a layer made in
/// a stream).
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn a_highly_compressible_gzip_layer_loads_with_the_default_limits() {
    require_root!();
    // One file of 200 MiB of zeros: gzip shrinks it about 1000 times, as
    // far as gzip goes, and docker loads it.
    const SIZE: u64 = 200 << 20;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(HashingWriter {
        inner: gz,
        hasher: sha2::Sha256::default(),
    });
    let mut h = tar::Header::new_ustar();
    h.set_size(SIZE);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "zeros", std::io::repeat(0).take(SIZE))
        .unwrap();
    let w = b.into_inner().unwrap();
    let sum: [u8; 32] = sha2::Digest::finalize(w.hasher).into();
    let layer = w.inner.finish().unwrap();
    assert!(
        layer.len() as u64 * 500 < SIZE,
        "only {}x",
        SIZE / layer.len() as u64
    );
    let diff_id = dunnage_layerstore::DiffId(dunnage_layerstore::Digest::from_bytes(sum));
    let config = common::config_for(&[diff_id]);
    let manifest = br#"[{"Config":"c.json","RepoTags":["zeros:1"],"Layers":["l.tar.gz"]}]"#;
    let tar = common::raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("l.tar.gz", &layer, None),
    ]);
    let dir = TempDir::new("load-zeros").unwrap();
    std::fs::write(dir.join("zeros.tar"), tar).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store
        .load(&dir.join("zeros.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(store.size(&loaded[0].id).unwrap(), SIZE);
}
