//! Whole images made of the layers issue 15 found we refused or applied
//! differently from Docker: a rootfs tarball with its `./` entry from a
//! 0700 temp dir, a PAX 1.0 sparse file, a whiteout followed by the same
//! path, an opaque marker with a parentless child, a PAX size record with 0
//! in the header, a hardlink entry carrying its own owner and mode, and a
//! layer without end-of-archive blocks. Loaded by us and by a private
//! dockerd: the same image ID and the same layer trees; our save loads
//! into docker with the same ID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{docker_archive, run};
use dunnage_image::{ImageStore, LoadOptions};
use dunnage_layerstore::chain_id;
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};

/// A ustar member: header (with the given owner and mode), data, padding.
fn member(name: &str, kind: u8, data: &[u8], link: &str, mode: u32, owner: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_mode(mode);
    h.set_uid(owner);
    h.set_gid(owner);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.as_mut_bytes()[156] = kind;
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    member(name, b'0', data, "", 0o644, 0)
}

/// The base layer: GNU tar (posix format) of a 0700 temp dir holding a
/// sparse file and a few plain ones, `./` entry included.
fn base_layer(dir: &Path) -> Vec<u8> {
    let src = dir.join("rootfs");
    std::fs::create_dir(&src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(src.join("d")).unwrap();
    std::fs::write(src.join("d/lower"), b"hidden by the opaque marker").unwrap();
    std::fs::write(src.join("x"), b"whited out, then added again").unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(src.join("sparse")).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"data in the middle").unwrap();
        f.set_len(4 << 20).unwrap();
    }
    let tar = dir.join("base.tar");
    run(Command::new("tar")
        .args(["--format=posix", "--sparse", "--numeric-owner", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    std::fs::read(tar).unwrap()
}

fn odd_layers(dir: &Path) -> Vec<Vec<u8>> {
    let base = base_layer(dir);
    let mut second = [
        file(".wh.x", b""),
        file("x", b"new x"),
        file("d/.wh..wh..opq", b""),
        file("d/sub/file", b"kept"),
    ]
    .concat();
    second.extend_from_slice(&[0u8; 1024]);
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let mut pax = String::new();
    pax += "14 size=70000\n";
    let mut third = member("PaxHeader", b'x', pax.as_bytes(), "", 0o644, 0);
    let mut h = member("big", b'0', b"", "", 0o644, 0);
    // Header size 0, the size in the PAX record: how Go writes >= 8 GiB.
    third.append(&mut h);
    third.extend_from_slice(&big);
    third.resize(third.len().div_ceil(512) * 512, 0);
    third.extend(file("f", b"linked"));
    third.extend(member("h", b'1', b"", "f", 0o600, 1234));
    // No end-of-archive blocks.
    vec![base, second, third]
}

fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                let d = std::fs::read(&p).unwrap();
                format!(
                    "{} {}",
                    d.len(),
                    dunnage_layerstore::Digest::sha256_of(&d).hex()
                )
            } else {
                String::new()
            };
            out.insert(
                p.strip_prefix(root).unwrap().display().to_string(),
                format!(
                    "{:o} {}:{} rdev={} {content}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.rdev()
                ),
            );
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let m = std::fs::metadata(root).unwrap();
    let mut out = BTreeMap::new();
    out.insert(
        ".".into(),
        format!("{:o} {}:{}", m.mode(), m.uid(), m.gid()),
    );
    walk(root, root, &mut out);
    out
}

fn docker_id(d: &Dockerd, image: &str) -> String {
    run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", image]))
    .trim()
    .to_owned()
}

#[test]
fn odd_layers_load_as_in_docker_and_save_back_with_the_same_id() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("odd-layers").unwrap();
    let layers = odd_layers(dir.path());
    let (archive, _) = docker_archive(&layers, "dunnage-test/odd:1");
    let input = dir.join("odd.tar");
    std::fs::write(&input, &archive).unwrap();

    let store = ImageStore::open(&dir.join("ours")).unwrap();
    let loaded = store.load(&input, LoadOptions::default()).unwrap();
    let d = Dockerd::start("odd-layers").unwrap();
    run(d.docker().args(["load", "-i"]).arg(&input));
    assert_eq!(
        loaded[0].id.to_string(),
        docker_id(&d, "dunnage-test/odd:1")
    );

    let id = store.resolve("dunnage-test/odd:1").unwrap();
    let diff_ids = store.config(&id).unwrap().diff_ids().to_vec();
    assert_eq!(diff_ids.len(), 3);
    for n in 1..=diff_ids.len() {
        let chain = chain_id(&diff_ids[..n]).unwrap();
        let ours = store.layers().get(&chain).unwrap();
        let ours = tree(&store.layers().driver().diff_dir(&ours.cache_id));
        let db = d
            .data_root()
            .join("image/overlay2/layerdb/sha256")
            .join(chain.0.hex());
        let cache = std::fs::read_to_string(db.join("cache-id")).unwrap();
        let theirs = tree(
            &d.data_root()
                .join("overlay2")
                .join(cache.trim())
                .join("diff"),
        );
        assert_eq!(ours, theirs, "layer {n}");
        if n == 1 {
            assert_eq!(ours["."], "40755 0:0", "the root keeps 0755 root:root");
        }
    }

    // Our save loads into a fresh docker with the same ID (docker's own
    // save of this image fails: its tar-split of the sparse file cannot
    // rebuild the layer).
    let saved = dir.join("saved.tar");
    store
        .save(
            &["dunnage-test/odd:1"],
            std::fs::File::create(&saved).unwrap(),
        )
        .unwrap();
    let d2 = Dockerd::start("odd-layers-2").unwrap();
    run(d2.docker().args(["load", "-i"]).arg(&saved));
    assert_eq!(
        docker_id(&d2, "dunnage-test/odd:1"),
        loaded[0].id.to_string()
    );
}
