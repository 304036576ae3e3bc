//! Issue 15 cases where a private dockerd is the reference: the same input
//! given to docker and to us must give the same answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{config_for, diff_id, layer_tar, run};
use dunnage_image::{Error, ImageChanges, ImageStore};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};

/// A tar of members `(name, data, kind, link target)`.
fn tar_of(members: &[(&str, &[u8], tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, kind, link) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_size(if kind.is_file() { data.len() as u64 } else { 0 });
        if kind.is_file() {
            b.append_data(&mut h, name, *data).unwrap();
        } else if kind.is_dir() {
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        } else {
            b.append_link(&mut h, name, link).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn docker_loads(d: &Dockerd, archive: &Path) -> Result<String, String> {
    let out = d
        .docker()
        .args(["load", "-q", "-i"])
        .arg(archive)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn docker_id(d: &Dockerd, image: &str) -> String {
    run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", image]))
    .trim()
    .to_string()
}

#[test]
fn outer_archive_links_and_bad_created_times_load_as_in_docker() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("links-docker").unwrap();
    let d = Dockerd::start("imgstore-links").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();

    // Item 18: a layer member that is a hardlink, one that is an absolute
    // symlink, one reached through a `../../..` symlink.
    let layers = [
        layer_tar(&[("zero", b"0")]),
        layer_tar(&[("one", b"1")]),
        layer_tar(&[("two", b"2")]),
    ];
    let config = config_for(&layers.iter().map(|l| diff_id(l)).collect::<Vec<_>>());
    let manifest = br#"[{"Config":"c.json","RepoTags":["links:1"],"Layers":["l0/layer.tar","l1/layer.tar","a/b/l2/layer.tar"]}]"#;
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let archive = tar_of(&[
        ("manifest.json", manifest, Regular, ""),
        ("c.json", &config, Regular, ""),
        ("real0/", b"", Directory, ""),
        ("real0/layer.tar", &layers[0], Regular, ""),
        ("l0/", b"", Directory, ""),
        ("l0/layer.tar", b"", Link, "real0/layer.tar"),
        ("real1/", b"", Directory, ""),
        ("real1/layer.tar", &layers[1], Regular, ""),
        ("l1", b"", Symlink, "/real1"),
        ("real2/", b"", Directory, ""),
        ("real2/layer.tar", &layers[2], Regular, ""),
        ("a/", b"", Directory, ""),
        ("a/b/", b"", Directory, ""),
        ("a/b/l2", b"", Symlink, "../../../real2"),
    ]);
    let path = dir.join("links.tar");
    std::fs::write(&path, archive).unwrap();
    docker_loads(&d, &path).unwrap();
    let ours = store.load(&path, Default::default()).unwrap();
    assert_eq!(ours[0].id.to_string(), docker_id(&d, "links:1"));
    assert_eq!(ours[0].id.0, Digest::sha256_of(&config));

    // Item 8: a created time with a multi-byte character, in the config
    // and in a history entry.
    let bad_time = "2024-01-02T03:04:05+0\u{e9}:0";
    let configs = [
        serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": bad_time,
            "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
        }),
        serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
            "history": [{"created": bad_time, "empty_layer": true}],
            "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
        }),
    ];
    for (i, config) in configs.iter().enumerate() {
        let bad = serde_json::to_vec(config).unwrap();
        let manifest = br#"[{"Config":"c.json","RepoTags":["bad:1"],"Layers":[]}]"#;
        let archive = tar_of(&[
            ("manifest.json", manifest, Regular, ""),
            ("c.json", &bad, Regular, ""),
        ]);
        let path = dir.join(format!("bad{i}.tar"));
        std::fs::write(&path, archive).unwrap();
        let docker = docker_loads(&d, &path);
        assert!(docker.is_err(), "docker loaded case {i}: {docker:?}");
        let err = store.load(&path, Default::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{i}: {err}");
    }
}

fn dunnage(root: &Path) -> Command {
    let mut c = Command::new(dunnage_testsupport::example_binary("dunnage"));
    c.arg("--root").arg(root);
    c
}

#[test]
fn tag_with_a_digest_and_import_env_changes_answer_as_docker() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("cli-docker").unwrap();
    let root = dir.join("root");
    let rootfs = common::busybox_rootfs(dir.path());
    let d = Dockerd::start("imgstore-cli").unwrap();
    run(d.docker().arg("import").arg(&rootfs).arg("src:1"));
    run(dunnage(&root).arg("import").arg(&rootfs).arg("src:1"));
    let digested = format!("dst@sha256:{}", "a".repeat(64));
    for (who, mut cmd) in [("docker", d.docker()), ("dunnage", dunnage(&root))] {
        let out = cmd.args(["tag", "src:1", &digested]).output().unwrap();
        assert!(!out.status.success(), "{who} tagged with a digest");
    }
    let ours = ImageStore::open(&root).unwrap();
    let err = ours.tag("src:1", &digested).unwrap_err();
    assert!(matches!(err, Error::InvalidReference { .. }), "{err}");

    // `ENV FOO` (no value) is refused by docker with its parser's words;
    // the two-argument and name=value forms set the same Env.
    let out = d
        .docker()
        .args(["import", "-c", "ENV FOO"])
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(!out.status.success(), "docker accepted ENV FOO");
    let docker_says = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut changes = ImageChanges::default();
    let err = changes.add_instruction("ENV FOO").unwrap_err();
    let Error::InvalidChange { reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        docker_says.contains(reason.as_str()),
        "docker: {docker_says}, we: {reason}"
    );
    let out = dunnage(&root)
        .args(["import", "-c", "ENV FOO"])
        .arg(&rootfs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    for change in ["ENV FOO bar baz", "ENV A=1 B=2", "ENV FOO="] {
        let tag = "env:1";
        run(d
            .docker()
            .args(["import", "-c", change])
            .arg(&rootfs)
            .arg(tag));
        run(dunnage(&root)
            .args(["import", "-c", change])
            .arg(&rootfs)
            .arg(tag));
        let docker_env =
            run(d
                .docker()
                .args(["image", "inspect", "-f", "{{json .Config.Env}}", tag]));
        let id = ours.resolve(tag).unwrap();
        let our_env = ours.config(&id).unwrap().file().config.clone().unwrap().env;
        let docker_env: Option<Vec<String>> = serde_json::from_str(docker_env.trim()).unwrap();
        assert_eq!(our_env, docker_env, "{change}");
    }
}

#[test]
fn created_times_docker_refuses_are_the_ones_we_refuse() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("times-docker").unwrap();
    let d = Dockerd::start("imgstore-times").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let mut differ = Vec::new();
    for (i, t) in [
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.123456789Z",
        "2024-01-02T03:04:05.1234567891Z",
        "2024-01-02T03:04:05+01:00",
        "2024-01-02T03:04:05-23:59",
        "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05+01:60",
        "2024-01-02t03:04:05z",
        "2024-01-02 03:04:05Z",
        "2024-01-02T03:04:05,123Z",
        "2024-01-02T03:04:05.Z",
        "2024-02-29T03:04:05Z",
        "2023-02-29T03:04:05Z",
        "2024-01-02T23:59:60Z",
        "2024-13-02T03:04:05Z",
        "0000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2024-01-02T03:04:05",
        "",
    ]
    .iter()
    .enumerate()
    {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": t,
            "config": {"Labels": {"case": i.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap();
        let manifest = br#"[{"Config":"c.json","RepoTags":null,"Layers":[]}]"#;
        let archive = tar_of(&[
            ("manifest.json", manifest, tar::EntryType::Regular, ""),
            ("c.json", &config, tar::EntryType::Regular, ""),
        ]);
        let path = dir.join(format!("t{i}.tar"));
        std::fs::write(&path, archive).unwrap();
        let docker = docker_loads(&d, &path).is_ok();
        let ours = store.load(&path, Default::default()).is_ok();
        if docker != ours {
            differ.push(format!("{t:?}: docker {docker}, dunnage {ours}"));
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

#[test]
fn the_layer_count_docker_refuses_is_the_one_we_refuse() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("depth-docker").unwrap();
    let d = Dockerd::start("imgstore-depth").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let layer = layer_tar(&[("a", b"a")]);
    for (n, loads) in [(125, true), (126, false)] {
        let config = config_for(&vec![diff_id(&layer); n]);
        let manifest = format!(
            r#"[{{"Config":"c.json","RepoTags":["deep:{n}"],"Layers":[{}]}}]"#,
            vec![r#""l.tar""#; n].join(",")
        );
        let archive = tar_of(&[
            (
                "manifest.json",
                manifest.as_bytes(),
                tar::EntryType::Regular,
                "",
            ),
            ("c.json", &config, tar::EntryType::Regular, ""),
            ("l.tar", &layer, tar::EntryType::Regular, ""),
        ]);
        let path = dir.join(format!("deep{n}.tar"));
        std::fs::write(&path, archive).unwrap();
        let docker = docker_loads(&d, &path);
        assert_eq!(docker.is_ok(), loads, "docker, {n} layers: {docker:?}");
        let ours = store.load(&path, Default::default());
        assert_eq!(ours.is_ok(), loads, "dunnage, {n} layers: {ours:?}");
        if loads {
            assert_eq!(
                ours.unwrap()[0].id.to_string(),
                docker_id(&d, &format!("deep:{n}"))
            );
        }
    }
}
