//! Round trips with the real tools: a private dockerd, podman, skopeo and
//! umoci, all started by the tests with their own state under a TempDir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::run;
use dunnage_image::{ImageChanges, ImageStore, LoadOptions, Reference};
use dunnage_layerstore::chain_id;
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};

/// A multi-layer image built offline: FROM scratch, busybox copied in,
/// RUN steps that add, change and delete files (whiteouts), empty steps.
fn build_multi_layer(d: &Dockerd, dir: &Path, tag: &str) {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ENV PATH=/bin\n\
         RUN mkdir -p /data/sub && echo one > /data/one && echo two > /data/sub/two && ln -s one /data/link\n\
         RUN rm /data/one && echo changed > /data/sub/two && mkdir /opaque && touch /opaque/x\n\
         RUN rm -rf /data/sub && mkdir /data/sub && echo fresh > /data/sub/new\n\
         LABEL test=dunnage\n\
         CMD [\"sh\"]\n",
    )
    .unwrap();
    run(d
        .docker()
        .args(["build", "--network=none", "-q", "-t", tag])
        .arg(&ctx));
}

fn docker_id(d: &Dockerd, image: &str) -> String {
    run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", image]))
    .trim()
    .to_string()
}

#[test]
fn docker_save_loads_with_the_same_ids_and_our_save_loads_into_docker() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("peer-docker").unwrap();
    let rootfs = common::busybox_rootfs(dir.path());
    let d = Dockerd::start("image").unwrap();
    run(d
        .docker()
        .args(["import", "-c", "CMD [\"sh\"]"])
        .arg(&rootfs)
        .arg("dunnage-test/bb:imported"));
    build_multi_layer(&d, dir.path(), "dunnage-test/multi:1");
    let ids = [
        docker_id(&d, "dunnage-test/bb:imported"),
        docker_id(&d, "dunnage-test/multi:1"),
    ];
    let saved = dir.join("docker-saved.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&saved)
        .args(["dunnage-test/bb:imported", "dunnage-test/multi:1"]));

    // docker save -> our load: same image IDs, same chainIDs as dockerd's layerdb.
    let store = ImageStore::open(&dir.join("ours")).unwrap();
    let loaded = store.load(&saved, LoadOptions::default()).unwrap();
    let mut ours: Vec<String> = loaded.iter().map(|l| l.id.to_string()).collect();
    ours.sort();
    let mut theirs = ids.to_vec();
    theirs.sort();
    assert_eq!(ours, theirs);
    let multi = store.resolve("dunnage-test/multi:1").unwrap();
    let config = store.config(&multi).unwrap();
    assert!(config.diff_ids().len() >= 5);
    for n in 1..=config.diff_ids().len() {
        let chain = chain_id(&config.diff_ids()[..n]).unwrap();
        assert!(
            d.data_root()
                .join("image/overlay2/layerdb/sha256")
                .join(chain.0.hex())
                .is_dir()
        );
        store.layers().get(&chain).unwrap();
    }

    // Our save -> docker load into a fresh daemon: same IDs and tags.
    let ours_tar = dir.join("ours.tar");
    let f = std::fs::File::create(&ours_tar).unwrap();
    store
        .save(&["dunnage-test/bb:imported", "dunnage-test/multi:1"], f)
        .unwrap();
    let d2 = Dockerd::start("image-load").unwrap();
    let out = run(d2.docker().args(["load", "-i"]).arg(&ours_tar));
    assert!(out.contains("Loaded image: dunnage-test/multi:1"), "{out}");
    assert_eq!(docker_id(&d2, "dunnage-test/bb:imported"), ids[0]);
    assert_eq!(docker_id(&d2, "dunnage-test/multi:1"), ids[1]);
    // The image runs nowhere here (no network), but its files are Docker's: export and compare.
    let a = run(d
        .docker()
        .args(["history", "--no-trunc", "-q", "dunnage-test/multi:1"]));
    let b = run(d2
        .docker()
        .args(["history", "--no-trunc", "-q", "dunnage-test/multi:1"]));
    assert_eq!(a.lines().next(), b.lines().next());
    drop(d2);

    // A stopped dockerd's data-root is a store we read and export.
    let data = d.stop().unwrap();
    let theirs = ImageStore::open(&data.join("data")).unwrap();
    let listed: Vec<String> = theirs
        .images()
        .unwrap()
        .iter()
        .map(|i| i.id.to_string())
        .collect();
    for id in &ids {
        assert!(listed.contains(id), "{id} not in {listed:?}");
    }
    let h = theirs
        .history(&theirs.resolve("dunnage-test/multi:1").unwrap())
        .unwrap();
    assert!(h.iter().any(|r| r.empty_layer && r.size == 0));
    let exported = data.join("exported.tar");
    theirs
        .save(
            &["dunnage-test/multi:1"],
            std::fs::File::create(&exported).unwrap(),
        )
        .unwrap();
    let again = ImageStore::open(&dir.join("again")).unwrap();
    assert_eq!(
        again.load(&exported, LoadOptions::default()).unwrap()[0]
            .id
            .to_string(),
        ids[1]
    );
}

fn imported_store(dir: &TempDir) -> (ImageStore, dunnage_image::ImageId) {
    let rootfs = common::busybox_rootfs(dir.path());
    let store = ImageStore::open(&dir.join("ours")).unwrap();
    let changes = ImageChanges {
        reference: Some(Reference::parse("dunnage-test/bb:1").unwrap()),
        cmd: Some(vec!["sh".into()]),
        ..ImageChanges::default()
    };
    let id = store.import(&rootfs, &changes).unwrap();
    (store, id)
}

#[test]
fn podman_loads_our_docker_archive_with_the_same_id() {
    require_root!();
    require_command!("podman");
    let dir = TempDir::new("peer-podman").unwrap();
    let (store, id) = imported_store(&dir);
    let tar = dir.join("ours.tar");
    store
        .save(&["dunnage-test/bb:1"], std::fs::File::create(&tar).unwrap())
        .unwrap();
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.join("podman-root"))
            .arg("--runroot")
            .arg(dir.join("podman-run"));
        c.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]);
        c
    };
    run(podman().args(["load", "-q", "-i"]).arg(&tar));
    let out = run(podman().args([
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}}",
    ]));
    // podman names an unqualified archive tag `localhost/...`, as it does for
    // archives from `docker save`.
    let line = out
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("{id} not in {out}"));
    assert!(line.ends_with("dunnage-test/bb:1"), "{line}");
}

#[test]
fn skopeo_and_umoci_read_our_oci_layout_and_we_read_theirs() {
    require_root!();
    require_command!("skopeo");
    require_command!("umoci");
    let dir = TempDir::new("peer-oci").unwrap();
    let (store, id) = imported_store(&dir);
    let layout = dir.join("layout");
    store.export_oci(&["dunnage-test/bb:1"], &layout).unwrap();
    // skopeo copies it (verifying every digest), recompressing with gzip and zstd.
    let gz = dir.join("gz");
    let zst = dir.join("zst");
    let copy = |to: &Path, extra: &[&str]| {
        run(Command::new("skopeo")
            .args(["copy", "-q"])
            .args(extra)
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("oci:{}:1", to.display())));
    };
    copy(&gz, &["--dest-compress"]);
    copy(&zst, &["--dest-compress", "--dest-compress-format", "zstd"]);
    // umoci unpacks it.
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle));
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/motd")).unwrap(),
        b"dunnage\n"
    );
    // We load what skopeo wrote: the config is unchanged, so is the image ID.
    for (i, from) in [gz, zst].iter().enumerate() {
        let other = ImageStore::open(&dir.join(format!("back{i}"))).unwrap();
        let loaded = other.load(from, LoadOptions::default()).unwrap();
        assert_eq!(loaded[0].id, id);
    }
    // And an OCI archive (a tar of the layout).
    let archive = dir.join("oci.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("oci-archive:{}:1", archive.display())));
    let other = ImageStore::open(&dir.join("back-archive")).unwrap();
    assert_eq!(
        other.load(&archive, LoadOptions::default()).unwrap()[0].id,
        id
    );
}
