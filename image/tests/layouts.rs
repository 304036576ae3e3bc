//! Archive formats made by hand or by umoci: Docker 25's OCI-layout
//! archive, OCI layouts with gzip and zstd layers, umoci's own layouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::{config_for, diff_id, layer_tar, raw_tar, run};
use dunnage_image::{ImageStore, LoadOptions, Reference};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, require_command, require_root};

/// The names of the entries of a layer tar.
fn entry_names(tar: impl Read) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// The bytes of every layer of the image `id`, base first.
fn layer_bytes(store: &ImageStore, id: &dunnage_image::ImageId) -> Vec<Vec<u8>> {
    let top = store.config(id).unwrap().chain_id().unwrap();
    store
        .layers()
        .chain(&top)
        .unwrap()
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            store
                .layers()
                .tar_stream(&l.chain_id)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .collect()
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn descriptor(media: &str, data: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
        Digest::sha256_of(data),
        data.len()
    )
}

fn oci_manifest(config: &[u8], layers: &[(&str, &[u8])]) -> Vec<u8> {
    let layers: Vec<String> = layers.iter().map(|(m, l)| descriptor(m, l)).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        descriptor("application/vnd.oci.image.config.v1+json", config),
        layers.join(",")
    )
    .into_bytes()
}

#[test]
fn a_docker_25_archive_loads_with_the_config_digest_as_id() {
    require_root!();
    let dir = TempDir::new("docker25").unwrap();
    let l0 = layer_tar(&[("etc/hello", b"hello")]);
    let l1 = layer_tar(&[("etc/world", b"world")]);
    let config = config_for(&[diff_id(&l0), diff_id(&l1)]);
    let manifest = oci_manifest(
        &config,
        &[
            ("application/vnd.oci.image.layer.v1.tar", &l0),
            ("application/vnd.oci.image.layer.v1.tar", &l1),
        ],
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/hello:25","org.opencontainers.image.ref.name":"25"}}}}]}}"#,
        Digest::sha256_of(&manifest),
        manifest.len()
    );
    let (c, m0, m1, mm) = (
        blob_name(&Digest::sha256_of(&config)),
        blob_name(&Digest::sha256_of(&l0)),
        blob_name(&Digest::sha256_of(&l1)),
        blob_name(&Digest::sha256_of(&manifest)),
    );
    // Docker 25+ writes manifest.json next to the layout, pointing into blobs/.
    let docker_manifest =
        format!(r#"[{{"Config":"{c}","RepoTags":["hello:25"],"Layers":["{m0}","{m1}"]}}]"#);
    let tar = raw_tar(&[
        ("blobs/", b"", None),
        ("blobs/sha256/", b"", None),
        (&m0, &l0, None),
        (&m1, &l1, None),
        (&c, &config, None),
        (&mm, &manifest, None),
        ("index.json", index.as_bytes(), None),
        ("manifest.json", docker_manifest.as_bytes(), None),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, None),
        ("repositories", br#"{"hello":{"25":"x"}}"#, None),
    ]);
    std::fs::write(dir.join("hello.tar"), tar).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store
        .load(&dir.join("hello.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id.0, Digest::sha256_of(&config));
    assert_eq!(loaded[0].tags, [Reference::parse("hello:25").unwrap()]);
    assert_eq!(store.resolve("hello:25").unwrap(), loaded[0].id);
    assert_eq!(store.config(&loaded[0].id).unwrap().raw(), &config[..]);
    assert_eq!(layer_bytes(&store, &loaded[0].id), [l0, l1]);
}

#[test]
fn gzip_and_zstd_layers_of_an_oci_layout_load() {
    require_root!();
    let dir = TempDir::new("oci-zstd").unwrap();
    let l0 = layer_tar(&[("gz/file", &[b'g'; 5000])]);
    let l1 = layer_tar(&[("zst/file", &[b'z'; 5000])]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&l0).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&l1[..], 3).unwrap();
    assert!(zst.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));
    let config = config_for(&[diff_id(&l0), diff_id(&l1)]);
    let manifest = oci_manifest(
        &config,
        &[
            ("application/vnd.oci.image.layer.v1.tar+gzip", &gz),
            ("application/vnd.oci.image.layer.v1.tar+zstd", &zst),
        ],
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
        descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)
    );
    // As a directory this time.
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for data in [&gz, &zst, &config, &manifest] {
        std::fs::write(layout.join(blob_name(&Digest::sha256_of(data))), data).unwrap();
    }
    std::fs::write(layout.join("index.json"), index).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store.load(&layout, LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id.0, Digest::sha256_of(&config));
    assert!(loaded[0].tags.is_empty());
    // The layers are stored uncompressed, byte for byte.
    assert_eq!(layer_bytes(&store, &loaded[0].id), [l0, l1]);
}

/// The manifest and config digests of `tag` in an OCI layout directory.
fn layout_config_digest(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let hex = entry["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    manifest["config"]["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_layout_written_by_umoci_loads() {
    require_root!();
    require_command!("umoci");
    let dir = TempDir::new("umoci-layout").unwrap();
    let layout = dir.join("layout");
    let image = format!("{}:v1", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    // Two layers made the usual umoci way: unpack, change the rootfs,
    // repack. (`umoci insert` of 0.4.7 writes member data without tar
    // padding, a truncated tar we refuse, so it is not used here.)
    let bundle = dir.join("bundle");
    let cycle = |change: &dyn Fn(&Path)| {
        run(Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle));
        change(&bundle.join("rootfs"));
        run(Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle));
        std::fs::remove_dir_all(&bundle).unwrap();
    };
    cycle(&|rootfs| {
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/hello"), b"hello from umoci\n").unwrap();
        std::fs::write(rootfs.join("etc/again"), b"again\n").unwrap();
    });
    cycle(&|rootfs| std::fs::remove_file(rootfs.join("etc/hello")).unwrap());
    let config_digest = layout_config_digest(&layout, "v1");

    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store.load(&layout, LoadOptions::default()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id.to_string(), config_digest);
    // A bare tag in ref.name names no repository: the image stays untagged.
    assert!(loaded[0].tags.is_empty());
    let layers = layer_bytes(&store, &loaded[0].id);
    assert_eq!(layers.len(), 2);
    assert!(
        entry_names(&layers[0][..])
            .iter()
            .any(|n| n.ends_with("etc/hello"))
    );
    assert!(
        entry_names(&layers[1][..])
            .iter()
            .any(|n| n.ends_with("etc/.wh.hello"))
    );
    // Loading it twice changes nothing.
    assert_eq!(store.load(&layout, LoadOptions::default()).unwrap(), loaded);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn layers_the_store_has_are_not_read_again() {
    require_root!();
    let dir = TempDir::new("known-layers").unwrap();
    let l0 = layer_tar(&[("base", b"base")]);
    let l1 = layer_tar(&[("top", b"top")]);
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let (first, _) = common::docker_archive(std::slice::from_ref(&l0), "first:1");
    std::fs::write(dir.join("first.tar"), first).unwrap();
    store
        .load(&dir.join("first.tar"), LoadOptions::default())
        .unwrap();
    // Like docker load: the base layer is known by its chainID, so its
    // member is not even opened (here it is garbage).
    let config = config_for(&[diff_id(&l0), diff_id(&l1)]);
    let manifest = br#"[{"Config":"c.json","RepoTags":["second:1"],"Layers":["0.tar","1.tar"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("0.tar", b"not a layer", None),
        ("1.tar", &l1, None),
    ]);
    std::fs::write(dir.join("second.tar"), tar).unwrap();
    let loaded = store
        .load(&dir.join("second.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(layer_bytes(&store, &loaded[0].id), [l0, l1]);
    assert_eq!(store.layers().list().unwrap().len(), 2);
    // Both images hold the base; removing one keeps it.
    store.remove("first:1", false).unwrap();
    assert_eq!(store.layers().list().unwrap().len(), 2);
    store.remove("second:1", false).unwrap();
    assert!(store.layers().list().unwrap().is_empty());
}
