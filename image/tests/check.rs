//! `ImageStore::check` and `repair` on a real store: a consistent store
//! (images, a container layer) reports nothing; each kind of damage is
//! reported, and repaired where the check says it can be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{docker_archive, layer_tar};
use dunnage_image::{ImageStore, LoadOptions, Problem};
use dunnage_testsupport::{TempDir, require_root};

fn load(store: &ImageStore, dir: &TempDir, tag: &str, files: &[(&str, &[u8])]) {
    let (tar, _) = docker_archive(&[layer_tar(&[("base", b"base")]), layer_tar(files)], tag);
    let path = dir.join(format!("{}.tar", tag.replace([':', '/'], "_")));
    std::fs::write(&path, tar).unwrap();
    store.load(&path, LoadOptions::default()).unwrap();
}

fn kinds(store: &ImageStore) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = store
        .check()
        .unwrap()
        .problems
        .iter()
        .map(|p| match p {
            Problem::DanglingTag { .. } => "tag",
            Problem::BrokenImage { .. } => "image",
            Problem::MissingLayers { .. } => "missing-layers",
            Problem::LeakedReferences(_) => "leaked",
            Problem::BrokenLayer { .. } => "layer",
            Problem::BrokenContainerLayer { .. } => "container",
            Problem::OrphanDriverDir { .. } => "orphan",
            Problem::DanglingLink { .. } => "link",
            Problem::Leftover { .. } => "leftover",
            Problem::StrayMount { .. } => "mount",
            Problem::OrphanMount { .. } => "orphan-mount",
            _ => "other",
        })
        .collect();
    k.sort();
    k
}

#[test]
fn a_consistent_store_reports_nothing() {
    require_root!();
    let dir = TempDir::new("check-clean").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    assert!(store.check().unwrap().is_clean());
    load(&store, &dir, "a:1", &[("a", b"a")]);
    load(&store, &dir, "b:1", &[("b", b"b")]);
    store.tag("a:1", "a:2").unwrap();
    let top = store
        .config(&store.resolve("a:1").unwrap())
        .unwrap()
        .chain_id()
        .unwrap();
    store.layers().create_rw("ctr", Some(&top), None).unwrap();
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    store.layers().remove_rw("ctr").unwrap();
    assert_eq!(store.repair().unwrap().problems, vec![]);
}

#[test]
fn damage_is_reported_and_repaired() {
    require_root!();
    let dir = TempDir::new("check-damage").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    load(&store, &dir, "keep:1", &[("k", b"k")]);
    load(&store, &dir, "broken:1", &[("x", b"x")]);
    load(&store, &dir, "leaky:1", &[("l", b"l")]);
    let broken = store.resolve("broken:1").unwrap();
    let leaky = store.resolve("leaky:1").unwrap();
    let leaky_top = store.config(&leaky).unwrap().chain_id().unwrap();
    let keep = store.resolve("keep:1").unwrap();

    // A tag naming no image.
    let repos = root.join("image/overlay2/repositories.json");
    let text = std::fs::read_to_string(&repos).unwrap().replace(
        "\"keep:1\":",
        &format!("\"keep:gone\":\"sha256:{}\",\"keep:1\":", "ab".repeat(32)),
    );
    std::fs::write(&repos, text).unwrap();
    // A config whose bytes no longer hash to its ID.
    let content = root.join(format!(
        "image/overlay2/imagedb/content/sha256/{}",
        broken.hex()
    ));
    let mut raw = std::fs::read(&content).unwrap();
    raw.push(b' ');
    std::fs::write(&content, raw).unwrap();
    // A reference no image owns.
    store.layers().acquire(&leaky_top).unwrap();
    // A driver directory and a short link belonging to nothing.
    std::fs::create_dir_all(root.join("overlay2/0123orphan/diff")).unwrap();
    std::os::unix::fs::symlink(
        "../nothere/diff",
        root.join("overlay2/l/AAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .unwrap();

    // While a config is unreadable its layers are unknown: leaks are not
    // told (they would be guesses) until the image is dealt with.
    assert_eq!(kinds(&store), ["image", "link", "orphan", "tag"]);
    let found = store.repair().unwrap();
    assert_eq!(found.problems.len(), 4, "{:?}", found.problems);
    let after = store.check().unwrap();
    assert!(after.is_clean(), "{:?}", after.problems);
    // What was sound is untouched; the broken image and its tag are gone.
    assert_eq!(store.resolve("keep:1").unwrap(), keep);
    assert_eq!(store.resolve("leaky:1").unwrap(), leaky);
    assert!(store.resolve("broken:1").is_err());
    assert_eq!(store.layers().references(&leaky_top).unwrap(), Some(1));
    assert!(!root.join("overlay2/0123orphan").exists());
}

#[test]
fn a_layer_without_its_directory_is_reported_not_removed() {
    require_root!();
    let dir = TempDir::new("check-layer").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    load(&store, &dir, "gone:1", &[("g", b"g")]);
    let id = store.resolve("gone:1").unwrap();
    let top = store.config(&id).unwrap().chain_id().unwrap();
    let cache_id = store.layers().get(&top).unwrap().cache_id;
    std::fs::remove_dir_all(root.join("overlay2").join(&cache_id).join("diff")).unwrap();
    let k = kinds(&store);
    assert!(k.contains(&"layer"), "{k:?}");
    store.repair().unwrap();
    // The layer stays (reported); its directory's remains are not an orphan.
    assert!(kinds(&store).contains(&"layer"));
    assert!(
        root.join("image/overlay2/layerdb/sha256")
            .join(top.hex())
            .is_dir()
    );
    assert!(!kinds(&store).contains(&"orphan"));
}

#[test]
fn the_cli_exits_1_on_problems_and_0_after_repair() {
    require_root!();
    let dir = TempDir::new("check-cli").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    load(&store, &dir, "cli:1", &[("c", b"c")]);
    let cli = dunnage_testsupport::example_binary("dunnage");
    let run = |args: &[&str]| {
        std::process::Command::new(&cli)
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["system", "check"]);
    assert!(out.status.success(), "{out:?}");
    std::fs::create_dir_all(root.join("overlay2/stray/diff")).unwrap();
    let out = run(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("overlay2 directory stray"));
    let out = run(&["system", "check", "--repair"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!Path::new(&root.join("overlay2/stray")).exists());
}

#[test]
fn leftovers_and_stray_mounts_are_reported_and_repaired() {
    require_root!();
    let dir = TempDir::new("check-leftovers").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    load(&store, &dir, "m:1", &[("m", b"m")]);
    let top = store
        .config(&store.resolve("m:1").unwrap())
        .unwrap()
        .chain_id()
        .unwrap();
    let cache_id = store.layers().get(&top).unwrap().cache_id;
    // A write-set whose process died after the store was opened.
    let ws = root.join("image/overlay2/layerdb/tmp/write-set-0123456789abcdef");
    std::fs::create_dir(&ws).unwrap();
    // A mount of a layer's merged directory no process holds, and one
    // elsewhere below the data-root (TempDir's drop detaches both if the
    // test fails).
    let merged = root.join("overlay2").join(&cache_id).join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let other = root.join("stray-mount");
    std::fs::create_dir_all(&other).unwrap();
    for target in [&merged, &other] {
        rustix::mount::mount(
            "tmpfs",
            target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
    }
    let k = kinds(&store);
    assert_eq!(
        k,
        ["leftover", "mount", "mount"],
        "{:?}",
        store.check().unwrap()
    );
    store.repair().unwrap();
    let after = store.check().unwrap();
    assert!(after.is_clean(), "{:?}", after.problems);
    assert!(!ws.exists());
    assert!(
        dunnage_base::mountinfo::mounts_below(&root)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_stopped_dockerds_data_root_checks_clean() {
    require_root!();
    dunnage_testsupport::require_command!("dockerd");
    let dir = TempDir::new("check-docker").unwrap();
    let rootfs = common::busybox_rootfs(dir.path());
    let d = dunnage_testsupport::Dockerd::start("check-docker").unwrap();
    common::run(d.docker().arg("import").arg(&rootfs).arg("base:1"));
    common::run(d.docker().args(["tag", "base:1", "other/name:2"]));
    // A container layer (and its init layer) on the image.
    common::run(d.docker().args(["create", "--name", "c1", "base:1", "sh"]));
    let data_root = d.data_root();
    let kept = d.stop().unwrap();
    let store = ImageStore::open(&data_root).unwrap();
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    // Layers dockerd owns carry no dunnage reference: repair leaves all.
    let before = common::snapshot(&data_root.join("overlay2"));
    store.repair().unwrap();
    assert_eq!(common::snapshot(&data_root.join("overlay2")), before);
    drop(kept);
}

#[test]
fn a_children_index_entry_lost_is_reported_and_rebuilt() {
    require_root!();
    let dir = TempDir::new("check-children").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    load(&store, &dir, "c:1", &[("c", b"c")]);
    let index = dir.join("root/image/overlay2/layerdb/dunnage/children");
    let parents: Vec<_> = std::fs::read_dir(&index).unwrap().flatten().collect();
    assert_eq!(parents.len(), 1);
    std::fs::remove_dir_all(parents[0].path()).unwrap();
    let report = store.check().unwrap();
    assert!(
        matches!(
            report.problems.as_slice(),
            [Problem::ChildrenIndex(
                dunnage_layerstore::ChildrenIndexProblem::Missing { .. }
            )]
        ),
        "{report:?}"
    );
    assert!(report.problems[0].to_string().contains("index of children"));
    store.repair().unwrap();
    assert!(store.check().unwrap().is_clean());
    assert_eq!(std::fs::read_dir(&index).unwrap().count(), 1);
}

/// A container layer still mounted whose record left `layerdb/mounts/`
/// (what a `remove_rw` killed between moving the record into `tmp/` and
/// putting it back leaves, when the layer was still mounted): no container
/// will unmount it, and its owner record kept it out of the stray mounts.
/// The check reports it as an orphan mount; repair unmounts it and removes
/// its directories with the staged record.
#[test]
fn an_owned_mount_no_record_names_is_reported_and_repaired() {
    require_root!();
    let dir = TempDir::new("check-orphan-mount").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    load(&store, &dir, "o:1", &[("o", b"o")]);
    let top = store
        .config(&store.resolve("o:1").unwrap())
        .unwrap()
        .chain_id()
        .unwrap();
    let container = "0123456789abcdef".repeat(4);
    let rw = store
        .layers()
        .create_rw(&container, Some(&top), None)
        .unwrap();
    let merged = store.layers().mount_rw(&container).unwrap();
    assert!(kinds(&store).is_empty(), "{:?}", store.check().unwrap());
    let db = root.join("image/overlay2/layerdb");
    std::fs::rename(
        db.join("mounts").join(&container),
        db.join("tmp")
            .join(format!("mount-removing-{container}-0123456789abcdef")),
    )
    .unwrap();
    let found = store.check().unwrap().problems;
    assert!(
        found.contains(&Problem::OrphanMount {
            id: rw.mount_id.clone(),
            path: merged.clone(),
        }),
        "{found:?}"
    );
    store.repair().unwrap();
    let after = store.check().unwrap();
    assert!(after.is_clean(), "{:?}", after.problems);
    assert!(
        dunnage_base::mountinfo::mounts_below(&root)
            .unwrap()
            .is_empty()
    );
    assert!(!root.join("overlay2").join(&rw.mount_id).exists());
    // The image is whole and its layers are still there.
    assert!(store.layers().chain(&top).is_ok());
}

/// A spare container layer (kept by `remove_rw` for the next container on
/// the image) is no orphan; one whose init layer's directory went is
/// reported broken, and repair drops it with its other directory.
#[test]
fn spare_container_layers_are_not_orphans_and_broken_ones_are_dropped() {
    require_root!();
    let dir = TempDir::new("check-spare").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    load(&store, &dir, "s:1", &[("s", b"s")]);
    let top = store
        .config(&store.resolve("s:1").unwrap())
        .unwrap()
        .chain_id()
        .unwrap();
    let init = dunnage_layerstore::InitLayer::default();
    let layers = store.layers();
    let rw = layers.create_rw("spare1", Some(&top), Some(&init)).unwrap();
    layers.remove_rw("spare1").unwrap();
    assert_eq!(layers.spare_count().unwrap(), 1);
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    let init_dir = dir.join("root/overlay2").join(rw.init_id.unwrap());
    std::fs::remove_dir_all(&init_dir).unwrap();
    let report = store.check().unwrap();
    // (Its short link in l/ dangles too.)
    let broken: Vec<_> = report
        .problems
        .iter()
        .filter(|p| matches!(p, Problem::BrokenSpare { .. }))
        .collect();
    assert_eq!(broken.len(), 1, "{report:?}");
    assert!(broken[0].to_string().contains("spare"));
    store.repair().unwrap();
    assert!(store.check().unwrap().is_clean());
    assert_eq!(store.layers().spare_count().unwrap(), 0);
    assert!(!dir.join("root/overlay2").join(&rw.mount_id).exists());
}
