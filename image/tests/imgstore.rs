//! The store under attack and under concurrency (issue 15): planted
//! symlinks, concurrent CLI runs, killed loads, hostile plans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{docker_archive, layer_tar, run};
use dunnage_image::ImageStore;
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, example_binary, require_root};

/// `dunnage --root ROOT ARGS...`
fn cli(root: &Path) -> Command {
    let mut c = Command::new(example_binary("dunnage"));
    c.arg("--root").arg(root);
    c
}

/// A store at `<dir>/root` holding one loaded two-layer image `x:1`.
fn loaded_store(dir: &TempDir) -> (PathBuf, ImageStore) {
    let root = dir.join("root");
    let (archive, _) = docker_archive(
        &[layer_tar(&[("a", b"alpha")]), layer_tar(&[("b", b"beta")])],
        "x:1",
    );
    std::fs::write(dir.join("x.tar"), archive).unwrap();
    let store = ImageStore::open(&root).unwrap();
    store.load(&dir.join("x.tar"), Default::default()).unwrap();
    (root, store)
}

/// Names in `dir` that look like temporary files.
fn temp_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect()
}

#[test]
fn save_o_replaces_a_planted_symlink_and_never_writes_through_one() {
    require_root!();
    let dir = TempDir::new("save-symlink").unwrap();
    let (root, _store) = loaded_store(&dir);
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    // The old temp names were `<out>.tmp-<pid>`: plant them for the pids
    // the CLI may get, and the output name itself.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let next = std::process::id();
    for pid in next..(next + 2000).min(pid_max) {
        std::os::unix::fs::symlink(&victim, out.join(format!("x.tar.tmp-{pid}"))).unwrap();
    }
    std::os::unix::fs::symlink(&victim, out.join("x.tar")).unwrap();
    run(cli(&root)
        .args(["save", "-o"])
        .arg(out.join("x.tar"))
        .arg("x:1"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let meta = std::fs::symlink_metadata(out.join("x.tar")).unwrap();
    assert!(meta.is_file(), "x.tar is still a symlink");
    assert_eq!(meta.mode() & 0o777, 0o600);
    // What was written is an archive that loads back to the same image.
    let again = TempDir::new("save-symlink-back").unwrap();
    let other = ImageStore::open(&again.join("root")).unwrap();
    let loaded = other.load(&out.join("x.tar"), Default::default()).unwrap();
    assert_eq!(
        loaded[0].id,
        ImageStore::open(&root).unwrap().resolve("x:1").unwrap()
    );
    // Nothing but the planted links and the archive: no temp file left.
    let left: Vec<String> = temp_names(&out)
        .into_iter()
        .filter(|n| !n.starts_with("x.tar.tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn save_oci_replaces_planted_blobs_and_symlinks() {
    require_root!();
    let dir = TempDir::new("oci-symlink").unwrap();
    let (root, store) = loaded_store(&dir);
    let id = store.resolve("x:1").unwrap();
    let config = store.config(&id).unwrap();
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let diffs: Vec<String> = config.diff_ids().iter().map(|d| d.0.hex()).collect();
    // A fake first layer blob, a symlink as the second, symlinks at the
    // old predictable temp names, a FIFO as the config blob.
    std::fs::write(blobs.join(&diffs[0]), b"fake layer").unwrap();
    std::os::unix::fs::symlink(&victim, blobs.join(&diffs[1])).unwrap();
    for d in &diffs {
        std::os::unix::fs::symlink(&victim, blobs.join(format!("{d}.tmp"))).unwrap();
    }
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        blobs.join(id.hex()),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink(&victim, layout.join("index.json")).unwrap();
    run(cli(&root)
        .args(["save", "--oci", "-o"])
        .arg(&layout)
        .arg("x:1"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        std::fs::symlink_metadata(layout.join("index.json"))
            .unwrap()
            .is_file()
    );
    // Every blob the index reaches is a regular file hashing to its name.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        let p = blobs.join(d.trim_start_matches("sha256:"));
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{d}");
        let data = std::fs::read(&p).unwrap();
        assert_eq!(Digest::sha256_of(&data).to_string(), d, "{d}");
        data
    };
    let manifest: serde_json::Value = serde_json::from_slice(&blob(manifest_digest)).unwrap();
    blob(manifest["config"]["digest"].as_str().unwrap());
    for l in manifest["layers"].as_array().unwrap() {
        blob(l["digest"].as_str().unwrap());
    }
    // And the layout loads back to the same image.
    let again = TempDir::new("oci-symlink-back").unwrap();
    let loaded = ImageStore::open(&again.join("root"))
        .unwrap()
        .load(&layout, Default::default())
        .unwrap();
    assert_eq!(loaded[0].id, id);
}

#[test]
fn save_oci_refuses_a_blobs_directory_that_is_a_symlink() {
    require_root!();
    let dir = TempDir::new("oci-blobs-link").unwrap();
    let (_root, store) = loaded_store(&dir);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let layout = dir.join("layout");
    std::fs::create_dir(&layout).unwrap();
    std::os::unix::fs::symlink(&elsewhere, layout.join("blobs")).unwrap();
    let err = store.export_oci(&["x:1"], &layout).unwrap_err();
    assert!(matches!(err, dunnage_image::Error::Io { .. }), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// A docker-archive of `n` images sharing one layer, image `i` tagged
/// `<repo>:<i>` (configs differ by a label).
fn many_images(n: usize, repo: &str) -> Vec<u8> {
    let layer = layer_tar(&[("shared", b"shared by all")]);
    let diff = common::diff_id(&layer);
    let mut configs = Vec::new();
    let mut entries = Vec::new();
    for i in 0..n {
        let config = String::from_utf8(common::config_for(std::slice::from_ref(&diff)))
            .unwrap()
            .replace(
                r#""Cmd":["sh"]"#,
                &format!(r#""Cmd":["sh"],"Labels":{{"n":"{repo}{i}"}}"#),
            )
            .into_bytes();
        let name = format!("{}.json", Digest::sha256_of(&config).hex());
        entries.push(format!(
            r#"{{"Config":"{name}","RepoTags":["{repo}:{i}"],"Layers":["l/layer.tar"]}}"#
        ));
        configs.push((name, config));
    }
    let manifest = format!("[{}]", entries.join(","));
    let mut members: Vec<(&str, &[u8], Option<&str>)> = vec![
        ("manifest.json", manifest.as_bytes(), None),
        ("l/layer.tar", &layer, None),
    ];
    for (name, config) in &configs {
        members.push((name, config, None));
    }
    common::raw_tar(&members)
}

/// Every tag names a stored image, and every layer holds exactly as many
/// references as images have it on top; no layer is outside every image.
fn assert_consistent(root: &Path) {
    let store = ImageStore::open(root).unwrap();
    let ids = store.list().unwrap();
    let mut owners = std::collections::HashMap::new();
    let mut used = std::collections::HashSet::new();
    for id in &ids {
        let config = store.config(id).unwrap();
        if let Some(top) = config.chain_id() {
            *owners.entry(top).or_insert(0u64) += 1;
            for l in store.layers().chain(&top).unwrap() {
                used.insert(l.chain_id);
            }
        }
    }
    let repos: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("image/overlay2/repositories.json")).unwrap_or_default(),
    )
    .unwrap_or(serde_json::json!({}));
    for tags in repos["Repositories"].as_object().into_iter().flatten() {
        for (tag, id) in tags.1.as_object().unwrap() {
            let id: dunnage_image::ImageId = id.as_str().unwrap().parse().unwrap();
            assert!(ids.contains(&id), "{tag} names deleted image {id}");
        }
    }
    for l in store.layers().list().unwrap() {
        assert!(
            used.contains(&l.chain_id),
            "layer {} in no image",
            l.chain_id
        );
        assert_eq!(
            store.layers().references(&l.chain_id).unwrap().unwrap(),
            owners.get(&l.chain_id).copied().unwrap_or(0),
            "references of {}",
            l.chain_id
        );
    }
}

/// Run `args` of the CLI in parallel; every one must succeed.
fn all_succeed(root: &Path, runs: &[Vec<String>]) {
    let ok = run_parallel(root, runs);
    for ((success, stderr), args) in ok.iter().zip(runs) {
        assert!(success, "{args:?}: {stderr}");
    }
}

/// Run `args` of the CLI in parallel; whether each succeeded, and its
/// stderr.
fn run_parallel(root: &Path, runs: &[Vec<String>]) -> Vec<(bool, String)> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            cli(root)
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

#[test]
fn two_concurrent_loads_with_different_tags_keep_both_tags() {
    require_root!();
    let dir = TempDir::new("tags-race").unwrap();
    let root = dir.join("root");
    let (a, _) = docker_archive(&[layer_tar(&[("a", b"a")])], "first:1");
    let (b, _) = docker_archive(&[layer_tar(&[("b", b"b")])], "second:1");
    std::fs::write(dir.join("a.tar"), a).unwrap();
    std::fs::write(dir.join("b.tar"), b).unwrap();
    let load = |f: &str| {
        vec![
            "load".to_string(),
            "-q".into(),
            "-i".into(),
            dir.join(f).display().to_string(),
        ]
    };
    for run in 0..20 {
        all_succeed(&root, &[load("a.tar"), load("b.tar")]);
        let store = ImageStore::open(&root).unwrap();
        for tag in ["first:1", "second:1"] {
            assert!(store.resolve(tag).is_ok(), "run {run}: {tag} lost");
        }
        assert_consistent(&root);
        for tag in ["first:1", "second:1"] {
            store.remove(tag, false).unwrap();
        }
        assert!(store.layers().list().unwrap().is_empty());
    }
}

#[test]
fn an_rmi_during_a_load_never_resurrects_a_tag() {
    require_root!();
    let dir = TempDir::new("rmi-race").unwrap();
    let root = dir.join("root");
    let (a, _) = docker_archive(&[layer_tar(&[("a", b"a")])], "keep:1");
    std::fs::write(dir.join("a.tar"), &a).unwrap();
    let (v, _) = docker_archive(&[layer_tar(&[("v", b"v")])], "victim:1");
    std::fs::write(dir.join("v.tar"), &v).unwrap();
    for _ in 0..20 {
        ImageStore::open(&root)
            .unwrap()
            .load(&dir.join("v.tar"), Default::default())
            .unwrap();
        all_succeed(
            &root,
            &[
                vec![
                    "load".into(),
                    "-q".into(),
                    "-i".into(),
                    dir.join("a.tar").display().to_string(),
                ],
                vec!["rmi".into(), "victim:1".into()],
            ],
        );
        assert_consistent(&root);
        let store = ImageStore::open(&root).unwrap();
        assert!(store.resolve("victim:1").is_err(), "victim:1 came back");
        // An rmi of the very image being loaded: it may come before the
        // image exists (and fail), or after (and delete it); never a tag
        // naming a deleted image, never a layer left over.
        let results = run_parallel(
            &root,
            &[
                vec![
                    "load".into(),
                    "-q".into(),
                    "-i".into(),
                    dir.join("a.tar").display().to_string(),
                ],
                vec!["rmi".into(), "keep:1".into()],
            ],
        );
        assert!(results[0].0, "load: {}", results[0].1);
        assert_consistent(&root);
        let _ = store.remove("keep:1", false);
        assert!(store.layers().list().unwrap().is_empty());
    }
}

#[test]
fn concurrent_loads_of_one_300_image_archive_leak_no_reference() {
    require_root!();
    let dir = TempDir::new("refs-race").unwrap();
    let root = dir.join("root");
    let images = 300;
    std::fs::write(dir.join("many.tar"), many_images(images, "many")).unwrap();
    let load = vec![
        "load".to_string(),
        "-q".into(),
        "-i".into(),
        dir.join("many.tar").display().to_string(),
    ];
    all_succeed(&root, &[load.clone(), load]);
    assert_consistent(&root);
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), images);
    for i in 0..images {
        store.remove(&format!("many:{i}"), false).unwrap();
    }
    assert!(store.list().unwrap().is_empty());
    assert!(
        store.layers().list().unwrap().is_empty(),
        "layers left after rmi of every image"
    );
}

/// A two-image archive: a small first image and a second whose layer is
/// big enough that a load spends a while on it.
fn two_images_second_big(dir: &TempDir) -> (PathBuf, dunnage_layerstore::ChainId) {
    let small = layer_tar(&[("small", b"small")]);
    let big = layer_tar(&[("big", &vec![7u8; 96 << 20])]);
    let c0 = common::config_for(&[common::diff_id(&small)]);
    let c1 = common::config_for(&[common::diff_id(&big)]);
    let manifest = br#"[{"Config":"c0.json","RepoTags":["small:1"],"Layers":["0.tar"]},
                        {"Config":"c1.json","RepoTags":["big:1"],"Layers":["1.tar"]}]"#;
    let tar = common::raw_tar(&[
        ("manifest.json", manifest, None),
        ("c0.json", &c0, None),
        ("c1.json", &c1, None),
        ("0.tar", &small, None),
        ("1.tar", &big, None),
    ]);
    let path = dir.join("two.tar");
    std::fs::write(&path, tar).unwrap();
    (path, dunnage_layerstore::ChainId(common::diff_id(&small).0))
}

/// Start a load of `archive` and send `signal` once the first image's layer
/// is registered; true when the load died before storing any image.
fn kill_during_second_image(
    root: &Path,
    archive: &Path,
    first: &dunnage_layerstore::ChainId,
    signal: i32,
) -> bool {
    let marker = root.join("image/overlay2/layerdb/sha256").join(first.hex());
    let mut child = cli(root)
        .args(["load", "-q", "-i"])
        .arg(archive)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = dunnage_testsupport::ChildGuard::new(child.id() as i32);
    while !marker.exists() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: plain kill(2) of our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(signal) && ImageStore::open(root).unwrap().list().unwrap().is_empty()
}

#[test]
fn a_load_killed_during_the_second_image_leaks_nothing_for_long() {
    require_root!();
    let dir = TempDir::new("killed-load").unwrap();
    let (archive, first) = two_images_second_big(&dir);
    let (other, _) = docker_archive(&[layer_tar(&[("o", b"other")])], "other:1");
    std::fs::write(dir.join("other.tar"), other).unwrap();
    for (signal, reclaim_by) in [(libc::SIGKILL, "prune"), (libc::SIGTERM, "load")] {
        let root = dir.join(format!("root-{signal}"));
        ImageStore::open(&root).unwrap();
        let mut killed = false;
        for _ in 0..5 {
            if kill_during_second_image(&root, &archive, &first, signal) {
                killed = true;
                break;
            }
            // The load finished first: start over.
            let store = ImageStore::open(&root).unwrap();
            for t in ["small:1", "big:1"] {
                let _ = store.remove(t, false);
            }
        }
        assert!(killed, "no load was killed before storing its images");
        let store = ImageStore::open(&root).unwrap();
        let leaked = store.leaked_layers().unwrap().expect("no operation runs");
        assert!(
            leaked.iter().any(|l| l.chain_id == first && l.images == 0),
            "{leaked:?}"
        );
        // Reopening alone keeps it (the layer is referenced) ...
        assert!(store.layers().get(&first).is_ok());
        // ... the next prune or load gives it back.
        match reclaim_by {
            "prune" => run(cli(&root).arg("prune")),
            _ => run(cli(&root)
                .args(["load", "-q", "-i"])
                .arg(dir.join("other.tar"))),
        };
        assert_eq!(store.leaked_layers().unwrap(), Some(Vec::new()));
        assert!(store.layers().get(&first).is_err(), "leaked layer kept");
        assert_consistent(&root);
    }
}

/// A config with `created` set to `created` and no layer.
fn config_created(created: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

#[test]
fn a_multibyte_created_time_is_refused_at_load_and_never_panics_when_stored() {
    require_root!();
    let dir = TempDir::new("created-utf8").unwrap();
    let root = dir.join("root");
    let (_, store) = loaded_store(&dir);
    let bad = "2024-01-02T03:04:05+0\u{e9}:0";
    // At load: a typed error, nothing stored.
    let config = config_created(bad);
    let manifest = br#"[{"Config":"c.json","RepoTags":["bad:1"],"Layers":[]}]"#;
    let tar = common::raw_tar(&[("manifest.json", manifest, None), ("c.json", &config, None)]);
    std::fs::write(dir.join("bad.tar"), tar).unwrap();
    let before = common::snapshot(&root);
    let err = store
        .load(&dir.join("bad.tar"), Default::default())
        .unwrap_err();
    assert!(
        matches!(err, dunnage_image::Error::InvalidConfig { .. }),
        "{err}"
    );
    assert_eq!(common::snapshot(&root), before);
    // The same in a history entry.
    let history = String::from_utf8(config_created("2024-01-02T03:04:05Z"))
        .unwrap()
        .replace(
            r#""os""#,
            &format!(r#""history":[{{"created":"{bad}","empty_layer":true}}],"os""#),
        );
    let manifest = br#"[{"Config":"h.json","RepoTags":["bad:2"],"Layers":[]}]"#;
    let tar = common::raw_tar(&[
        ("manifest.json", manifest, None),
        ("h.json", history.as_bytes(), None),
    ]);
    std::fs::write(dir.join("bad2.tar"), tar).unwrap();
    let err = store
        .load(&dir.join("bad2.tar"), Default::default())
        .unwrap_err();
    assert!(
        matches!(err, dunnage_image::Error::InvalidConfig { .. }),
        "{err}"
    );
    // Planted straight into the imagedb (as a store written by another
    // tool could hold it): every verb reads it without a panic.
    let id = Digest::sha256_of(&config);
    std::fs::write(
        root.join("image/overlay2/imagedb/content/sha256")
            .join(id.hex()),
        &config,
    )
    .unwrap();
    store.tag(&id.to_string(), "planted:1").unwrap();
    for args in [
        vec!["images".to_string()],
        vec!["history".into(), "planted:1".into()],
        vec!["inspect".into(), "planted:1".into()],
        vec![
            "save".into(),
            "-o".into(),
            dir.join("p.tar").display().to_string(),
            "planted:1".into(),
        ],
    ] {
        let out = cli(&root).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let images = String::from_utf8(cli(&root).arg("images").output().unwrap().stdout).unwrap();
    assert!(images.contains("planted"), "{images}");
}

#[test]
fn one_image_with_a_broken_layer_chain_does_not_hide_the_others() {
    require_root!();
    let dir = TempDir::new("broken-chain").unwrap();
    let (root, store) = loaded_store(&dir);
    let broken = store.resolve("x:1").unwrap();
    let (other, _) = docker_archive(&[layer_tar(&[("o", b"other")])], "other:1");
    std::fs::write(dir.join("other.tar"), other).unwrap();
    let fine = store
        .load(&dir.join("other.tar"), Default::default())
        .unwrap()[0]
        .id
        .clone();
    // Damage x:1: its base layer's directory disappears from the layerdb.
    let base = store.config(&broken).unwrap().diff_ids()[0].0.hex();
    std::fs::remove_dir_all(root.join("image/overlay2/layerdb/sha256").join(base)).unwrap();
    let report = store.images_report().unwrap();
    assert_eq!(
        report.images.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&fine]
    );
    assert_eq!(report.broken.len(), 1);
    assert_eq!(report.broken[0].id, broken);
    let out = cli(&root).arg("images").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("other"), "{stdout}");
    assert!(stderr.contains(&broken.to_string()), "{stderr}");
    // The damaged layer does not stop the reference check of the others.
    assert_eq!(store.leaked_layers().unwrap(), Some(Vec::new()));
}

/// `{"mediaType":..,"digest":..,"size":..}` of `data`.
fn descriptor(media: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

#[test]
fn index_entries_docker_ignores_do_not_fail_the_image_that_matches() {
    require_root!();
    let dir = TempDir::new("oci-ignored").unwrap();
    let layer = layer_tar(&[("a", b"a")]);
    let config = common::config_for(&[common::diff_id(&layer)]);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        descriptor("application/vnd.oci.image.config.v1+json", &config),
        descriptor("application/vnd.oci.image.layer.v1.tar", &layer)
    );
    // An OCI 1.1 artifact: an image manifest whose config is the empty
    // descriptor, listed without a platform; and an old-style artifact
    // manifest media type.
    let empty = b"{}";
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{},"layers":[{}]}}"#,
        descriptor("application/vnd.oci.empty.v1+json", empty),
        descriptor("application/vnd.example.sbom", b"sbom")
    );
    let other_arch = if cfg!(target_arch = "s390x") {
        "arm64"
    } else {
        "s390x"
    };
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha512:{}","size":1234,"platform":{{"architecture":"{other_arch}","os":"linux"}}}},
            {},
            {{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","digest":"sha512:{}","size":99}},
            {}
        ]}}"#,
        "ab".repeat(64),
        descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            artifact.as_bytes()
        ),
        "cd".repeat(64),
        descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes()
        ),
    );
    let blob = |d: &[u8]| format!("blobs/sha256/{}", Digest::sha256_of(d).hex());
    let names = [
        blob(manifest.as_bytes()),
        blob(&config),
        blob(&layer),
        blob(artifact.as_bytes()),
        blob(empty),
        blob(b"sbom"),
    ];
    let datas: [&[u8]; 6] = [
        manifest.as_bytes(),
        &config,
        &layer,
        artifact.as_bytes(),
        empty,
        b"sbom",
    ];
    let mut members: Vec<(&str, &[u8], Option<&str>)> = vec![
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, None),
        ("index.json", index.as_bytes(), None),
    ];
    for (n, d) in names.iter().zip(datas) {
        members.push((n, d, None));
    }
    std::fs::write(dir.join("layout.tar"), common::raw_tar(&members)).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store
        .load(&dir.join("layout.tar"), Default::default())
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id.0, Digest::sha256_of(&config));
    // A matching entry with a digest we cannot read is a typed error.
    let bad = index.replace(
        &descriptor("application/vnd.oci.image.manifest.v1+json", manifest.as_bytes()),
        &format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha512:{}","size":1}}"#,
            "ef".repeat(64)
        ),
    );
    members[1] = ("index.json", bad.as_bytes(), None);
    std::fs::write(dir.join("bad.tar"), common::raw_tar(&members)).unwrap();
    let err = store
        .load(&dir.join("bad.tar"), Default::default())
        .unwrap_err();
    assert!(
        matches!(err, dunnage_image::Error::InvalidDigest(_)),
        "{err}"
    );
}

/// A tar of `(name, data, hardlink target)` members (a target makes a
/// hardlink entry).
fn tar_with_hardlinks(members: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, link) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, name, t).unwrap();
            }
            None => {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_links_in_the_outer_archive_reach_nothing_outside_it() {
    require_root!();
    let dir = TempDir::new("outer-links").unwrap();
    let (root, store) = loaded_store(&dir);
    let layer = layer_tar(&[("a", b"a")]);
    let config = common::config_for(&[common::diff_id(&layer)]);
    let manifest = br#"[{"Config":"c.json","RepoTags":["h:1"],"Layers":["l.tar"]}]"#;
    let cases: [(&str, Vec<u8>); 3] = [
        // A hardlink cycle.
        (
            "cycle",
            tar_with_hardlinks(&[
                ("manifest.json", manifest, None),
                ("c.json", &config, None),
                ("l.tar", b"", Some("m.tar")),
                ("m.tar", b"", Some("l.tar")),
            ]),
        ),
        // A hardlink whose target climbs out: it stops at the root.
        (
            "climb",
            tar_with_hardlinks(&[
                ("manifest.json", manifest, None),
                ("c.json", &config, None),
                ("l.tar", b"", Some("../../../../etc/passwd")),
            ]),
        ),
        // A symlink cycle.
        (
            "symlinks",
            common::raw_tar(&[
                ("manifest.json", manifest, None),
                ("c.json", &config, None),
                ("l.tar", b"", Some("m.tar")),
                ("m.tar", b"", Some("/l.tar")),
            ]),
        ),
    ];
    let before = common::snapshot(&root);
    for (name, tar) in cases {
        let path = dir.join(format!("{name}.tar"));
        std::fs::write(&path, tar).unwrap();
        let err = store.load(&path, Default::default()).unwrap_err();
        assert!(
            matches!(
                err,
                dunnage_image::Error::UnsafePath { .. }
                    | dunnage_image::Error::MissingMember { .. }
            ),
            "{name}: {err}"
        );
        assert_eq!(common::snapshot(&root), before, "{name}: store changed");
    }
}

#[test]
fn time_and_reference_parsers_never_panic_on_random_text() {
    let mut rng = dunnage_testsupport::Rng::new(15);
    let alphabet: Vec<char> = "09:-+.TZz tAa/@_é€😀\u{0}sha256:".chars().collect();
    for _ in 0..20_000 {
        let len = rng.below(40) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let _ = dunnage_image::time::parse_rfc3339(&text);
        let _ = dunnage_image::Reference::parse(&text);
        let mut changes = dunnage_image::ImageChanges::default();
        let _ = changes.add_instruction(&text);
        let _ = changes.add_instruction(&format!("ENV {text}"));
    }
    // Mutations of a valid time, byte for byte.
    let good = "2024-01-02T03:04:05.123+01:00";
    for i in 0..good.len() {
        for c in ['é', '€', '😀', '9', ':'] {
            let mut t = good.to_string();
            t.replace_range(i..i + 1, &c.to_string());
            let _ = dunnage_image::time::parse_rfc3339(&t);
        }
    }
}
