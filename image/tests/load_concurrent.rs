//! `load` stages the layers of an archive concurrently and commits them in
//! chain order: the layerdb it leaves is the one serial registration
//! leaves, byte for byte, and a layer failing in the middle leaves the
//! store as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{config_for, diff_id, layer_tar, raw_tar, snapshot};
use dunnage_image::{ImageStore, LoadOptions};
use dunnage_layerstore::{ChainId, DiffId, Digest, LayerStore, chain_id};
use dunnage_testsupport::{TempDir, require_root};

/// A layer of `n` files of 64 KiB derived from `seed`, gzip-compressed
/// when `gz` (so the layers take different times to stage).
fn layer(seed: u8, n: usize, gz: bool) -> Blob {
    let data: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            (0..65536u32)
                .map(|j| (j.wrapping_mul(31).wrapping_add(i as u32) as u8) ^ seed)
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("d{seed}/f{i}")).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&data)
        .map(|(n, d)| (n.as_str(), &d[..]))
        .collect();
    let tar = layer_tar(&files);
    let id = diff_id(&tar);
    if !gz {
        return (tar, id);
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &tar).unwrap();
    (e.finish().unwrap(), id)
}

/// A layer blob and its diffID.
type Blob = (Vec<u8>, DiffId);

/// A layer's layerdb files (name, content).
type LayerFiles = Vec<(String, Vec<u8>)>;

/// A docker-archive of several images: (tag, layer blobs).
fn archive(images: &[(&str, Vec<&Blob>)]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    for (tag, layers) in images {
        let ids: Vec<DiffId> = layers.iter().map(|l| l.1).collect();
        let config = config_for(&ids);
        let cfg_name = format!("{}.json", Digest::sha256_of(&config).hex());
        let mut names = Vec::new();
        for (blob, id) in layers {
            let name = format!("{}/layer.tar", id.0.hex());
            if !files.iter().any(|(n, _)| *n == name) {
                files.push((name.clone(), blob.clone()));
            }
            names.push(format!("\"{name}\""));
        }
        entries.push(format!(
            r#"{{"Config":"{cfg_name}","RepoTags":["{tag}"],"Layers":[{}]}}"#,
            names.join(",")
        ));
        files.push((cfg_name, config));
    }
    let manifest = format!("[{}]", entries.join(","));
    let mut members: Vec<(&str, &[u8], Option<&str>)> =
        vec![("manifest.json", manifest.as_bytes(), None)];
    for (n, d) in &files {
        members.push((n, d, None));
    }
    raw_tar(&members)
}

/// The layerdb files Docker compares (all but `cache-id`) of every layer.
fn layerdb(root: &Path) -> Vec<(String, LayerFiles)> {
    let sha = root.join("image/overlay2/layerdb/sha256");
    let mut out = Vec::new();
    let mut layers: Vec<_> = std::fs::read_dir(&sha)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    layers.sort();
    for l in layers {
        let mut files: Vec<_> = std::fs::read_dir(sha.join(&l))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "cache-id")
            .collect();
        files.sort();
        let files = files
            .into_iter()
            .map(|f| {
                let data = std::fs::read(sha.join(&l).join(&f)).unwrap();
                (f, data)
            })
            .collect();
        out.push((l, files));
    }
    out
}

#[test]
fn images_sharing_layers_load_as_serial_registration_would() {
    require_root!();
    let dir = TempDir::new("load-conc").unwrap();
    let a = layer(1, 40, false);
    let b = layer(2, 8, true);
    let c = layer(3, 30, true);
    let d = layer(4, 2, false);
    // Two images sharing a base, and the same diff again higher up (a
    // different chain), as `docker save` of several images writes them.
    let images = [
        ("conc/one:1", vec![&a, &b, &c]),
        ("conc/two:1", vec![&a, &b, &d, &a]),
    ];
    std::fs::write(dir.join("two.tar"), archive(&images)).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let loaded = store
        .load(&dir.join("two.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(loaded.len(), 2);

    // The same layers registered one by one, base first.
    let serial_root = dir.join("serial");
    let serial = LayerStore::open(&serial_root).unwrap();
    for (_, layers) in &images {
        let mut parent: Option<ChainId> = None;
        for (blob, _) in layers {
            parent = Some(
                serial
                    .register(&blob[..], parent.as_ref(), None)
                    .unwrap()
                    .chain_id,
            );
        }
    }
    assert_eq!(layerdb(&dir.join("root")), layerdb(&serial_root));

    // Each top is held by its image; the layers below by their children.
    let tops: Vec<ChainId> = images
        .iter()
        .filter_map(|(_, l)| chain_id(&l.iter().map(|x| x.1).collect::<Vec<_>>()))
        .collect();
    for l in store.layers().list().unwrap() {
        let want = u64::from(tops.contains(&l.chain_id));
        assert_eq!(store.layers().references(&l.chain_id).unwrap(), Some(want));
    }
    assert_eq!(store.layers().list().unwrap().len(), 5);
    let tmp = dir.join("root/image/overlay2/layerdb/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    // Loading it again reads nothing new and changes no reference.
    let before = snapshot(&dir.join("root"));
    store
        .load(&dir.join("two.tar"), LoadOptions::default())
        .unwrap();
    assert_eq!(layerdb(&dir.join("root")), layerdb(&serial_root));
    let after = snapshot(&dir.join("root"));
    let changed: Vec<_> = before.symmetric_difference(&after).collect();
    assert!(
        changed.iter().all(|p| p.contains("imagedb/metadata")),
        "{changed:?}"
    );
}

#[test]
fn a_failing_layer_leaves_the_store_as_it_was() {
    require_root!();
    let dir = TempDir::new("load-conc-fail").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    // One layer in the store before, shared with the failing image.
    let a = layer(1, 10, false);
    std::fs::write(dir.join("base.tar"), archive(&[("conc/base:1", vec![&a])])).unwrap();
    store
        .load(&dir.join("base.tar"), LoadOptions::default())
        .unwrap();
    let before = snapshot(&dir.join("root"));

    let layers = [
        layer(2, 30, true),
        layer(3, 20, false),
        layer(4, 3, true),
        layer(5, 25, true),
    ];
    for bad in 0..layers.len() {
        // The config names the right diffIDs; member `bad` holds other bytes.
        let mut blobs: Vec<Blob> = layers.to_vec();
        blobs[bad].0 = layer(9, 4, bad % 2 == 0).0;
        let mut chain: Vec<&Blob> = vec![&a];
        chain.extend(blobs.iter());
        std::fs::write(dir.join("bad.tar"), archive(&[("conc/bad:1", chain)])).unwrap();
        let err = store
            .load(&dir.join("bad.tar"), LoadOptions::default())
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("diffID") || text.contains("digest"), "{text}");
        assert_eq!(snapshot(&dir.join("root")), before, "bad layer {bad}");
        let tmp = dir.join("root/image/overlay2/layerdb/tmp");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
