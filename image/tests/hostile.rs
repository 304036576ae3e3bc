//! Malformed and hostile archives: each gives a typed error and leaves the
//! store exactly as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use common::{config_for, diff_id, docker_archive, layer_tar, raw_tar, snapshot};
use dunnage_image::{Error, ImageStore, LoadOptions};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, require_root};

/// Load `archive` into a store holding one good image; the store must be
/// unchanged afterwards. Returns the error.
fn load_fails(tag: &str, archive: &[u8], opts: LoadOptions<'_>) -> Error {
    let dir = TempDir::new(&format!("hostile-{tag}")).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let (good, _) = docker_archive(&[layer_tar(&[("good", b"good")])], "good:1");
    std::fs::write(dir.join("good.tar"), good).unwrap();
    store
        .load(&dir.join("good.tar"), LoadOptions::default())
        .unwrap();
    let before = snapshot(&dir.join("root"));
    let layers_before = store.layers().list().unwrap().len();
    let path = dir.join("input.tar");
    std::fs::write(&path, archive).unwrap();
    let err = store.load(&path, opts).expect_err("hostile archive loaded");
    assert_eq!(snapshot(&dir.join("root")), before, "{tag}: store changed");
    assert_eq!(store.layers().list().unwrap().len(), layers_before);
    err
}

#[test]
fn member_names_with_dot_dot_are_rejected() {
    require_root!();
    let tar = raw_tar(&[("../evil", b"x", None), ("manifest.json", b"[]", None)]);
    assert!(matches!(
        load_fails("dotdot", &tar, LoadOptions::default()),
        Error::UnsafePath { .. }
    ));
}

#[test]
fn a_manifest_pointing_outside_the_archive_is_rejected() {
    require_root!();
    let manifest = br#"[{"Config":"../../../etc/passwd","RepoTags":null,"Layers":[]}]"#;
    let tar = raw_tar(&[("manifest.json", manifest, None)]);
    assert!(matches!(
        load_fails("outside", &tar, LoadOptions::default()),
        Error::UnsafePath { .. }
    ));
    let manifest = br#"[{"Config":"cfg.json","RepoTags":null,"Layers":["link/layer.tar"]}]"#;
    let config = config_for(&[diff_id(&layer_tar(&[]))]);
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("cfg.json", &config, None),
        ("link", b"", Some("../../etc")),
    ]);
    // As in docker (which extracts the archive in a chroot), the link's
    // `..` stops at the archive root: `etc/layer.tar` is not there.
    assert!(matches!(
        load_fails("symlink-out", &tar, LoadOptions::default()),
        Error::MissingMember { .. }
    ));
}

#[test]
fn a_config_that_does_not_match_its_name_is_rejected() {
    require_root!();
    let config = config_for(&[]);
    let name = format!("{}.json", "0".repeat(64));
    let manifest = format!(r#"[{{"Config":"{name}","RepoTags":["x:1"],"Layers":[]}}]"#);
    let tar = raw_tar(&[
        ("manifest.json", manifest.as_bytes(), None),
        (&name, &config, None),
    ]);
    assert!(matches!(
        load_fails("cfg-digest", &tar, LoadOptions::default()),
        Error::DigestMismatch { .. }
    ));
}

#[test]
fn a_layer_whose_diff_id_differs_from_the_config_is_rejected() {
    require_root!();
    let l0 = layer_tar(&[("a", b"a")]);
    let l1 = layer_tar(&[("b", b"b")]);
    // The config names layer l1's diffID but the archive carries l0 twice.
    let config = config_for(&[diff_id(&l0), diff_id(&l1)]);
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["0.tar","1.tar"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("0.tar", &l0, None),
        ("1.tar", &l0, None),
    ]);
    let err = load_fails("diffid", &tar, LoadOptions::default());
    assert!(matches!(err, Error::Layer(_)), "{err}");
}

#[test]
fn a_missing_layer_blob_is_reported_by_name() {
    require_root!();
    let l0 = layer_tar(&[("a", b"a")]);
    let config = config_for(&[diff_id(&l0), diff_id(&l0)]);
    let manifest = br#"[{"Config":"c.json","RepoTags":null,"Layers":["0.tar","gone.tar"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("0.tar", &l0, None),
    ]);
    match load_fails("missing", &tar, LoadOptions::default()) {
        Error::MissingMember { member, .. } => assert_eq!(member, "gone.tar"),
        e => panic!("{e}"),
    }
}

#[test]
fn huge_json_is_refused_before_it_is_read() {
    require_root!();
    let huge = vec![b' '; 9 << 20];
    let tar = raw_tar(&[("manifest.json", &huge, None)]);
    assert!(matches!(
        load_fails("huge", &tar, LoadOptions::default()),
        Error::TooLarge { .. }
    ));
}

#[test]
fn a_gzip_bomb_layer_stops_at_the_size_limit() {
    require_root!();
    // 64 MiB of zeros compress to ~64 KiB.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let config = config_for(&[diff_id(&[0u8; 1024])]);
    let manifest = br#"[{"Config":"c.json","RepoTags":null,"Layers":["bomb.tar.gz"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("bomb.tar.gz", &bomb, None),
    ]);
    let opts = LoadOptions {
        max_layer: 8 << 20,
        ..LoadOptions::default()
    };
    assert!(matches!(
        load_fails("bomb", &tar, opts),
        Error::TooLarge { .. }
    ));
}

#[test]
fn oci_blobs_that_do_not_match_their_digest_are_rejected() {
    require_root!();
    let layer = layer_tar(&[("a", b"a")]);
    let config = config_for(&[diff_id(&layer)]);
    let (ld, cd) = (Digest::sha256_of(&layer), Digest::sha256_of(&config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let md = Digest::sha256_of(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{}}}]}}"#,
        manifest.len()
    );
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let (lb, cb, mb) = (blob(&ld), blob(&cd), blob(&md));
    // A tampered layer blob (same length, other bytes).
    let mut evil = layer.clone();
    evil[0] = b'b';
    let tar = raw_tar(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, None),
        ("index.json", index.as_bytes(), None),
        (&mb, manifest.as_bytes(), None),
        (&cb, &config, None),
        (&lb, &evil, None),
    ]);
    let err = load_fails("oci-layer", &tar, LoadOptions::default());
    assert!(
        matches!(err, Error::Layer(_) | Error::DigestMismatch { .. }),
        "{err}"
    );
    // A tampered manifest.
    let bad_manifest = manifest.replace("\"schemaVersion\":2", "\"schemaVersion\":3");
    let tar = raw_tar(&[
        ("index.json", index.as_bytes(), None),
        (&mb, bad_manifest.as_bytes(), None),
        (&cb, &config, None),
        (&lb, &layer, None),
    ]);
    assert!(matches!(
        load_fails("oci-manifest", &tar, LoadOptions::default()),
        Error::DigestMismatch { .. }
    ));
    // The intact layout loads.
    let dir = TempDir::new("hostile-oci-ok").unwrap();
    let tar = raw_tar(&[
        ("index.json", index.as_bytes(), None),
        (&mb, manifest.as_bytes(), None),
        (&cb, &config, None),
        (&lb, &layer, None),
    ]);
    std::fs::write(dir.join("ok.tar"), tar).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    assert_eq!(
        store
            .load(&dir.join("ok.tar"), LoadOptions::default())
            .unwrap()[0]
            .id
            .0,
        cd
    );
}

#[test]
fn garbage_and_unknown_layouts_are_typed_errors() {
    require_root!();
    assert!(matches!(
        load_fails(
            "garbage",
            b"this is not a tar archive at all",
            LoadOptions::default()
        ),
        Error::UnknownFormat { .. }
    ));
    let tar = raw_tar(&[("hello.txt", b"hi", None)]);
    assert!(matches!(
        load_fails("no-manifest", &tar, LoadOptions::default()),
        Error::UnknownFormat { .. }
    ));
    let tar = raw_tar(&[("manifest.json", b"{not json", None)]);
    assert!(matches!(
        load_fails("bad-json", &tar, LoadOptions::default()),
        Error::Json { .. }
    ));
    let manifest = br#"[{"Config":"c.json","RepoTags":["UPPER:1"],"Layers":[]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config_for(&[]), None),
    ]);
    assert!(matches!(
        load_fails("bad-tag", &tar, LoadOptions::default()),
        Error::InvalidReference { .. }
    ));
}

/// An OCI layout tar of one image, without the blobs `drop` names
/// (`"layer"`, `"config"`), with `platform` on the index entry and
/// `config` instead of a minimal config.
fn oci_layout(drop: &[&str], platform: Option<&str>, config: Option<Vec<u8>>) -> Vec<u8> {
    let layer = layer_tar(&[("a", b"a")]);
    let config = config.unwrap_or_else(|| config_for(&[diff_id(&layer)]));
    let (ld, cd) = (Digest::sha256_of(&layer), Digest::sha256_of(&config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let md = Digest::sha256_of(manifest.as_bytes());
    let platform = platform.map_or(String::new(), |p| format!(r#","platform":{p}"#));
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{}{platform}}}]}}"#,
        manifest.len()
    );
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let (lb, cb, mb) = (blob(&ld), blob(&cd), blob(&md));
    let members: Vec<(&str, &[u8], Option<&str>)> = vec![
        ("index.json", index.as_bytes(), None),
        (&mb, manifest.as_bytes(), None),
        (&cb, &config, None),
        (&lb, &layer, None),
    ];
    let kept: Vec<_> = members
        .into_iter()
        .filter(|(name, _, _)| {
            !(drop.contains(&"layer") && *name == lb || drop.contains(&"config") && *name == cb)
        })
        .collect();
    raw_tar(&kept)
}

#[test]
fn a_missing_blob_in_an_oci_layout_is_reported_by_name() {
    require_root!();
    match load_fails(
        "oci-no-layer",
        &oci_layout(&["layer"], None, None),
        LoadOptions::default(),
    ) {
        Error::MissingMember { member, .. } => {
            assert!(member.starts_with("blobs/sha256/"), "{member}")
        }
        e => panic!("{e}"),
    }
    match load_fails(
        "oci-no-config",
        &oci_layout(&["config"], None, None),
        LoadOptions::default(),
    ) {
        Error::MissingMember { member, .. } => {
            assert!(member.starts_with("blobs/sha256/"), "{member}")
        }
        e => panic!("{e}"),
    }
}

#[test]
fn huge_configs_and_indexes_are_refused() {
    require_root!();
    // A config blob of 9 MiB (its digest and size are right).
    let mut config = config_for(&[diff_id(&layer_tar(&[("a", b"a")]))]);
    let end = config.len() - 1;
    config.splice(end..end, std::iter::repeat_n(b' ', 9 << 20));
    assert!(matches!(
        load_fails(
            "huge-config",
            &oci_layout(&[], None, Some(config)),
            LoadOptions::default()
        ),
        Error::TooLarge { .. }
    ));
    let mut index = br#"{"schemaVersion":2,"manifests":[]"#.to_vec();
    index.extend(std::iter::repeat_n(b' ', 9 << 20));
    index.push(b'}');
    let tar = raw_tar(&[("index.json", &index, None)]);
    assert!(matches!(
        load_fails("huge-index", &tar, LoadOptions::default()),
        Error::TooLarge { .. }
    ));
}

#[test]
fn an_index_with_no_image_for_this_platform_is_an_error() {
    require_root!();
    for platform in [
        r#"{"architecture":"s390x","os":"linux"}"#,
        r#"{"architecture":"amd64","os":"windows"}"#,
    ] {
        assert!(matches!(
            load_fails(
                "platform",
                &oci_layout(&[], Some(platform), None),
                LoadOptions::default()
            ),
            Error::UnknownFormat { .. }
        ));
    }
    let tar = raw_tar(&[("index.json", br#"{"schemaVersion":2,"manifests":[]}"#, None)]);
    assert!(matches!(
        load_fails("empty-index", &tar, LoadOptions::default()),
        Error::UnknownFormat { .. }
    ));
}

#[test]
fn a_bad_second_image_leaves_the_first_unloaded_too() {
    require_root!();
    let l0 = layer_tar(&[("first", b"first")]);
    let l1 = layer_tar(&[("second", b"second")]);
    let good = config_for(&[diff_id(&l0)]);
    // The second config names l1's diffID; the archive carries other bytes.
    let bad = config_for(&[diff_id(&l0), diff_id(&l1)]);
    let manifest = br#"[{"Config":"good.json","RepoTags":["first:1"],"Layers":["0.tar"]},
                        {"Config":"bad.json","RepoTags":["second:1"],"Layers":["0.tar","2.tar"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("good.json", &good, None),
        ("bad.json", &bad, None),
        ("0.tar", &l0, None),
        ("2.tar", &layer_tar(&[("other", b"other")]), None),
    ]);
    let err = load_fails("two-images", &tar, LoadOptions::default());
    assert!(matches!(err, Error::Layer(_)), "{err}");
}

/// `copies` concatenated gzip members of 1 MiB of zeros each (about 1 KiB
/// compressed apiece): a stream expanding about 1000 times.
fn gzip_bomb(copies: usize) -> Vec<u8> {
    let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    one.write_all(&vec![0u8; 1 << 20]).unwrap();
    let one = one.finish().unwrap();
    one.repeat(copies)
}

/// `copies` concatenated zstd frames of 1 MiB of zeros each (some dozens
/// of bytes apiece): a stream expanding many thousand times, far beyond
/// what gzip can.
fn zstd_bomb(copies: usize) -> Vec<u8> {
    zstd::encode_all(&vec![0u8; 1 << 20][..], 19)
        .unwrap()
        .repeat(copies)
}

#[test]
fn a_zstd_bombed_archive_stops_at_the_default_expansion_limit() {
    require_root!();
    // 256 MiB once inflated: beyond 64 MiB (the floor) and 1100x its size.
    let bomb = zstd_bomb(256);
    assert!(bomb.len() * 1100 < 64 << 20, "{}", bomb.len());
    match load_fails("archive-bomb", &bomb, LoadOptions::default()) {
        Error::TooLarge { limit, .. } => assert_eq!(limit, 64 << 20),
        e => panic!("{e}"),
    }
    // Tighter options stop a gzip bomb too.
    let bomb = gzip_bomb(256);
    let opts = LoadOptions {
        max_ratio: 10,
        ratio_floor: 1 << 20,
        ..LoadOptions::default()
    };
    match load_fails("archive-bomb-tight", &bomb, opts) {
        Error::TooLarge { limit, .. } => assert_eq!(limit, (bomb.len() as u64 * 10).max(1 << 20)),
        e => panic!("{e}"),
    }
}

#[test]
fn a_zstd_bombed_layer_stops_at_the_default_expansion_limit() {
    require_root!();
    let bomb = zstd_bomb(256);
    let config = config_for(&[diff_id(&[0u8; 1024])]);
    let manifest = br#"[{"Config":"c.json","RepoTags":null,"Layers":["bomb.tar.zst"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c.json", &config, None),
        ("bomb.tar.zst", &bomb, None),
    ]);
    assert!(matches!(
        load_fails("layer-bomb-default", &tar, LoadOptions::default()),
        Error::TooLarge { .. }
    ));
}

#[test]
fn expansion_limits_default_to_1100x_with_a_64_mib_floor() {
    let opts = LoadOptions::default();
    assert_eq!(opts.expansion_limit(1000), 64 << 20);
    assert_eq!(opts.expansion_limit(1 << 30), 1100 << 30);
    assert_eq!(opts.max_layer, 64 << 30);
}

/// gzip of `data`, at the best level.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A docker archive whose only layer member `name` holds `blob`.
fn archive_with_layer_blob(name: &str, blob: &[u8]) -> Vec<u8> {
    let config = config_for(&[diff_id(&[0u8; 1024])]);
    let manifest = format!(r#"[{{"Config":"c.json","RepoTags":null,"Layers":["{name}"]}}]"#);
    raw_tar(&[
        ("manifest.json", manifest.as_bytes(), None),
        ("c.json", &config, None),
        (name, blob, None),
    ])
}

#[test]
fn a_double_compressed_layer_is_refused() {
    require_root!();
    // gzip(gzip(64 MiB of zeros)): the outer stream expands only ~1000x to
    // ~64 KiB, well inside every limit; the inner one is the bomb.
    let bomb = gzip(&gzip(&vec![0u8; 64 << 20]));
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let tar = archive_with_layer_blob("bomb.tar.gz", &bomb);
    match load_fails("nested-layer", &tar, LoadOptions::default()) {
        Error::NestedCompression { outer, inner, .. } => {
            assert_eq!((outer, inner), ("gzip", "gzip"))
        }
        e => panic!("{e}"),
    }
    // zstd inside gzip too.
    let inner = zstd::encode_all(&layer_tar(&[("a", b"a")])[..], 3).unwrap();
    let tar = archive_with_layer_blob("l.tar.gz", &gzip(&inner));
    assert!(matches!(
        load_fails("nested-zstd", &tar, LoadOptions::default()),
        Error::NestedCompression { inner: "zstd", .. }
    ));
    // A whole archive compressed twice.
    let (archive, _) = docker_archive(&[layer_tar(&[("x", b"x")])], "twice:1");
    assert!(matches!(
        load_fails(
            "nested-archive",
            &gzip(&gzip(&archive)),
            LoadOptions::default()
        ),
        Error::NestedCompression { .. }
    ));
}

#[test]
fn xz_and_bzip2_layers_are_unsupported_compression() {
    require_root!();
    // Only the magic matters: detection happens before any decoding.
    let xz = [&[0xfd, b'7', b'z', b'X', b'Z', 0][..], &[0u8; 64]].concat();
    let tar = archive_with_layer_blob("l.tar.xz", &xz);
    assert!(matches!(
        load_fails("xz-docker", &tar, LoadOptions::default()),
        Error::UnsupportedCompression {
            compression: "xz",
            ..
        }
    ));
    let bz = [&b"BZh9"[..], &[0u8; 64]].concat();
    let tar = archive_with_layer_blob("l.tar.bz2", &bz);
    assert!(matches!(
        load_fails("bzip2-docker", &tar, LoadOptions::default()),
        Error::UnsupportedCompression {
            compression: "bzip2",
            ..
        }
    ));
    // An OCI blob named by its own digest: not a digest mismatch.
    let config = config_for(&[diff_id(&layer_tar(&[("a", b"a")]))]);
    let (ld, cd) = (Digest::sha256_of(&xz), Digest::sha256_of(&config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+xz","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        xz.len()
    );
    let md = Digest::sha256_of(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{}}}]}}"#,
        manifest.len()
    );
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let tar = raw_tar(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, None),
        ("index.json", index.as_bytes(), None),
        (&blob(&md), manifest.as_bytes(), None),
        (&blob(&cd), &config, None),
        (&blob(&ld), &xz, None),
    ]);
    match load_fails("xz-oci", &tar, LoadOptions::default()) {
        Error::UnsupportedCompression { compression, .. } => assert_eq!(compression, "xz"),
        e => panic!("{e}"),
    }
}

#[test]
fn a_config_write_failing_for_the_second_image_undoes_the_first() {
    require_root!();
    let dir = TempDir::new("hostile-undo").unwrap();
    let root = dir.join("root");
    let store = ImageStore::open(&root).unwrap();
    let (good, _) = docker_archive(&[layer_tar(&[("good", b"good")])], "good:1");
    std::fs::write(dir.join("good.tar"), good).unwrap();
    let old = store
        .load(&dir.join("good.tar"), LoadOptions::default())
        .unwrap()[0]
        .id
        .clone();
    // Image 1 moves good:1 and adds new:1; image 2's config cannot be
    // written (a directory sits where it goes).
    let l0 = layer_tar(&[("first", b"first")]);
    let l1 = layer_tar(&[("second", b"second")]);
    let c0 = config_for(&[diff_id(&l0)]);
    let c1 = config_for(&[diff_id(&l1)]);
    let manifest = br#"[{"Config":"c0.json","RepoTags":["good:1","new:1"],"Layers":["0.tar"]},
                        {"Config":"c1.json","RepoTags":["second:1"],"Layers":["1.tar"]}]"#;
    let tar = raw_tar(&[
        ("manifest.json", manifest, None),
        ("c0.json", &c0, None),
        ("c1.json", &c1, None),
        ("0.tar", &l0, None),
        ("1.tar", &l1, None),
    ]);
    std::fs::write(dir.join("two.tar"), tar).unwrap();
    let blocker = root.join(format!(
        "image/overlay2/imagedb/content/sha256/{}",
        Digest::sha256_of(&c1).hex(),
    ));
    std::fs::create_dir(&blocker).unwrap();
    let before = snapshot(&root);
    let layers_before = store.layers().list().unwrap().len();
    let err = store
        .load(&dir.join("two.tar"), LoadOptions::default())
        .expect_err("the second config was written");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(snapshot(&root), before, "store changed");
    assert_eq!(store.layers().list().unwrap().len(), layers_before);
    assert_eq!(store.resolve("good:1").unwrap(), old);
    assert!(store.resolve("new:1").is_err());
    assert_eq!(store.list().unwrap(), vec![old.clone()]);
    // A reopened store agrees (repositories.json was put back on disk).
    let reopened = ImageStore::open(&root).unwrap();
    assert_eq!(reopened.resolve("good:1").unwrap(), old);
    assert!(reopened.resolve("new:1").is_err());
    std::fs::remove_dir(&blocker).unwrap();
}
