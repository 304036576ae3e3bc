//! The same layers loaded by a private dockerd (20.10, `docker load`) and
//! registered by us: the tar-split JSON must be Docker's byte for byte
//! (layers written by GNU tar, Go's archive/tar and python's tarfile, with
//! and without bytes after the end-of-archive blocks), and the extracted
//! tree must be Docker's for the odd layers of issue 15.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_layerstore::{DiffId, Digest, LayerStore};
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};

fn run(c: &mut Command) -> Vec<u8> {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A ustar header block.
fn header(name: &[u8], kind: u8, size: u64, mode: u32, link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h.as_mut_bytes()[156] = kind;
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A member: header, data, padding.
fn member(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    let mut out = header(
        name.as_bytes(),
        kind,
        data.len() as u64,
        0o644,
        link.as_bytes(),
    );
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    member(name, b'0', data, "")
}

fn pax(records: &[(&str, &str)]) -> Vec<u8> {
    let mut data = String::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data += &format!("{len} {k}={v}\n");
    }
    member("PaxHeader", b'x', data.as_bytes(), "")
}

const EOA: [u8; 1024] = [0; 1024];

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tree with files around Docker's 32 KiB read size, written by GNU tar
/// (10240-byte records) and by python's tarfile.
fn tool_layers(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    for (i, size) in [100_000usize, 32_768, 40_000, 70_001, 5, 0, 1_000]
        .iter()
        .enumerate()
    {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(*size, i as u64)).unwrap();
    }
    std::fs::write(src.join("sub/deeper/x"), pseudo_random(65_536, 9)).unwrap();
    std::os::unix::fs::symlink("f1", src.join("link")).unwrap();
    let gnu = dir.join("gnu.tar");
    run(Command::new("tar")
        .arg("--sort=name")
        .arg("-cf")
        .arg(&gnu)
        .arg("-C")
        .arg(&src)
        .arg("."));
    // One 512-byte block a record: nothing after the end-of-archive blocks.
    let gnu_b1 = dir.join("gnu-b1.tar");
    run(Command::new("tar")
        .args(["--sort=name", "-b", "1", "-cf"])
        .arg(&gnu_b1)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let py = dir.join("py.tar");
    run(Command::new("python3").arg("-c").arg(format!(
        "import tarfile; t = tarfile.open('{}', 'w'); t.add('{}', arcname='.'); t.close()",
        py.display(),
        src.display()
    )));
    // A file with holes, for GNU tar's PAX sparse formats (issue 15 item 14).
    let holes = dir.join("holes");
    std::fs::create_dir(&holes).unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(holes.join("s")).unwrap();
        for (off, len) in [(0u64, 100usize), (200_000, 70_000), (1_000_000, 5)] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&pseudo_random(len, off)).unwrap();
        }
        f.set_len(2_000_000).unwrap();
    }
    let mut sparse = Vec::new();
    for version in ["1.0", "0.1"] {
        let path = dir.join(format!("sparse-{version}.tar"));
        run(Command::new("tar")
            .args([
                "--sparse",
                "--format=pax",
                "--sparse-version",
                version,
                "-cf",
            ])
            .arg(&path)
            .arg("-C")
            .arg(&holes)
            .arg("s"));
        sparse.push((format!("sparse-{version}"), std::fs::read(path).unwrap()));
    }
    let gnu = std::fs::read(gnu).unwrap();
    let py = std::fs::read(py).unwrap();
    let mut gnu_3m = gnu.clone();
    gnu_3m.extend(std::iter::repeat_n(0u8, 3 << 20));
    let mut py_extra = py.clone();
    py_extra.extend(std::iter::repeat_n(0u8, 40_000));
    let mut layers = vec![
        ("gnu".into(), gnu),
        ("gnu -b 1".into(), std::fs::read(gnu_b1).unwrap()),
        ("gnu+3MiB".into(), gnu_3m),
        ("python".into(), py),
        ("python+40000".into(), py_extra),
    ];
    layers.extend(sparse);
    layers
}

/// The odd layers of issue 15 (items 11-13, 15-17, 20).
fn odd_layers() -> Vec<(String, Vec<u8>)> {
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let mut root_dot = header(b"./", b'5', 0, 0o700, b"");
    root_dot.extend(file("./f", b"x"));
    let big: Vec<u8> = pseudo_random(70_000, 3);
    let mut pax_size = pax(&[("size", "70000")]);
    pax_size.extend(header(b"big", b'0', 0, 0o644, b""));
    pax_size.extend(&big);
    pax_size.resize(pax_size.len().div_ceil(512) * 512, 0);
    let mut hardlink = file("f", b"data");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes()
        .copy_from_slice(&member("h", b'1', b"", "f")[..512]);
    h.set_mode(0o600);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_cksum();
    hardlink.extend(h.as_bytes());
    let mut layers = vec![
        ("root-dot".to_owned(), root_dot),
        ("root-slash".into(), {
            let mut h = tar::Header::new_old();
            h.as_mut_bytes()
                .copy_from_slice(&header(b"/", b'5', 0, 0o700, b""));
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_cksum();
            let mut l = h.as_bytes().to_vec();
            l.extend(file("f", b"x"));
            l
        }),
        (
            "root-dot-symlink".into(),
            cat(&[member(".", b'2', b"", "/etc"), file("f", b"x")]),
        ),
        (
            "opaque-parentless".into(),
            cat(&[file("d/.wh..wh..opq", b""), file("d/sub/file", b"keep")]),
        ),
        (
            "opaque-alias".into(),
            cat(&[
                member("d/", b'5', b"", ""),
                file("d/file", b"keep"),
                member("alias", b'2', b"", "d"),
                file("alias/.wh..wh..opq", b""),
            ]),
        ),
        ("pax-size".into(), pax_size),
        (
            "whiteout-then-readd".into(),
            cat(&[
                file(".wh.x", b""),
                file("x", b"new"),
                file(".wh.d", b""),
                member("d/", b'5', b"", ""),
                file("d/f", b"f"),
            ]),
        ),
        ("hardlink-owner-mode".into(), hardlink),
        (
            "slash-named-files".into(),
            cat(&[
                file("x/", b""),
                file("y/", b"abc"),
                member("z/", 0, b"", ""),
            ]),
        ),
        (
            "aufs-metadata".into(),
            cat(&[
                file(".wh..wh.aufs", b""),
                member(".wh..wh.orph/", b'5', b"", ""),
                member(".wh..wh.plnk/", b'5', b"", ""),
                file(".wh..wh.plnk/1.2", b"plnk"),
                member("x", b'1', b"", ".wh..wh.plnk/1.2"),
            ]),
        ),
    ];
    for (_, l) in &mut layers {
        l.extend_from_slice(&EOA);
    }
    layers.push(("no-end-of-archive".into(), file("f", b"no end")));
    // Extension headers over Docker's 32 KiB buffer, then trailing bytes.
    for (i, len) in [40_000usize, 70_000, 200_000].iter().enumerate() {
        let comment = "c".repeat(*len);
        let mut l = pax(&[("comment", comment.as_str())]);
        l.extend(file("f", &pseudo_random(1000, i as u64)));
        l.extend_from_slice(&EOA);
        l.extend(std::iter::repeat_n(0u8, 100_000));
        layers.push((format!("pax-header-{len}+100000"), l));
    }
    layers
}

/// A docker-save archive with one single-layer image per layer.
fn save_archive(layers: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut manifest = Vec::new();
    for (i, (name, layer)) in layers.iter().enumerate() {
        let diff = DiffId(Digest::sha256_of(layer));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}},"history":[{{"created_by":"{name}"}}]}}"#
        );
        let cfg_name = format!("{}.json", Digest::sha256_of(config.as_bytes()).hex());
        add(&mut b, &cfg_name, config.as_bytes());
        add(&mut b, &format!("l{i}/layer.tar"), layer);
        manifest.push(format!(
            r#"{{"Config":"{cfg_name}","RepoTags":["dunnage-test/l{i}:1"],"Layers":["l{i}/layer.tar"]}}"#
        ));
    }
    add(
        &mut b,
        "manifest.json",
        format!("[{}]", manifest.join(",")).as_bytes(),
    );
    b.into_inner().unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut s = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut s)
        .unwrap();
    s
}

/// The layerdb directory of a base layer (chainID = diffID).
fn layerdb(data_root: &Path, layer: &[u8]) -> PathBuf {
    data_root
        .join("image/overlay2/layerdb/sha256")
        .join(Digest::sha256_of(layer).hex())
}

fn diff_dir(data_root: &Path, layer: &[u8]) -> PathBuf {
    let cache = std::fs::read_to_string(layerdb(data_root, layer).join("cache-id")).unwrap();
    data_root.join("overlay2").join(cache.trim()).join("diff")
}

/// Every entry below `root`: type, mode, owner, content hash or target,
/// link count and the opaque xattr.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                let mut v = [0u8; 4];
                let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: valid C string and buffer.
                let n = unsafe {
                    libc::lgetxattr(
                        c.as_ptr(),
                        c"trusted.overlay.opaque".as_ptr(),
                        v.as_mut_ptr().cast(),
                        v.len(),
                    )
                };
                format!("dir opaque={}", n == 1 && v[0] == b'y')
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!("file {} {}", data.len(), Digest::sha256_of(&data).hex())
            } else if ft.is_char_device() {
                format!("chr {}", m.rdev())
            } else {
                "other".into()
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(
                rel,
                format!(
                    "{what} mode={mode:o} {}:{} nlink={}",
                    m.uid(),
                    m.gid(),
                    m.nlink()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    let m = std::fs::metadata(root).unwrap();
    out.insert(
        ".".into(),
        format!("mode={:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
    );
    walk(root, root, &mut out);
    out
}

#[test]
fn tar_split_and_trees_match_docker_load_byte_for_byte() {
    require_root!();
    require_command!("python3");
    if !Path::new(dunnage_testsupport::DOCKERD).exists() {
        dunnage_testsupport::skip("docker_layers", "needs /usr/sbin/dockerd");
        return;
    }
    let work = TempDir::new("ls-docker-layers").unwrap();
    let mut layers = tool_layers(work.path());
    layers.extend(odd_layers());
    let d = Dockerd::start("tarsplit").unwrap();
    std::fs::write(work.join("first.tar"), save_archive(&layers)).unwrap();
    run(d.docker().arg("load").arg("-i").arg(work.join("first.tar")));

    // A layer written by Go's archive/tar: docker's own export of a
    // container of the first image, with and without trailing bytes.
    let cid = String::from_utf8(run(d.docker().args([
        "create",
        "dunnage-test/l0:1",
        "/nothing",
    ])))
    .unwrap();
    let go = run(d.docker().args(["export", cid.trim()]));
    let mut go_extra = go.clone();
    go_extra.extend(std::iter::repeat_n(0u8, 100_000));
    let go_layers = vec![
        ("go-export".to_owned(), go),
        ("go-export+100000".into(), go_extra),
    ];
    std::fs::write(work.join("second.tar"), save_archive(&go_layers)).unwrap();
    run(d
        .docker()
        .arg("load")
        .arg("-i")
        .arg(work.join("second.tar")));
    layers.extend(go_layers);

    let data = d.data_root();
    let store = LayerStore::open(&work.join("ours")).unwrap();
    let mut failures = Vec::new();
    for (name, layer) in &layers {
        let ours = store.register(&layer[..], None, None).unwrap();
        let our_db = layerdb(&work.join("ours"), layer);
        let (want, got) = (
            gunzip(&layerdb(&data, layer).join("tar-split.json.gz")),
            gunzip(&our_db.join("tar-split.json.gz")),
        );
        let entries = dunnage_layerstore::tarsplit::read_entries(&got[..]).unwrap();
        assert_eq!(
            entries.last(),
            Some(&dunnage_layerstore::tarsplit::Entry::Segment(Vec::new())),
            "{name}"
        );
        if name == "gnu+3MiB" {
            let tail: Vec<usize> = entries[entries.len() - 4..]
                .iter()
                .map(|e| match e {
                    dunnage_layerstore::tarsplit::Entry::Segment(p) => p.len(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(tail[..2], [1 << 20, 1 << 20]);
            assert_eq!(tail[3], 0);
        }
        // Docker's tar-split of a sparse file records its expanded content
        // and cannot rebuild the layer (its `docker save` fails); ours keeps
        // the member verbatim.
        if want != got && !name.starts_with("sparse") {
            failures.push(format!(
                "{name}: tar-split differs\n docker: {}\n ours:   {}",
                sizes(&want),
                sizes(&got)
            ));
        }
        let mut docker_tree = tree(&diff_dir(&data, layer));
        if name == "aufs-metadata" {
            // docker 20.10 turns the aufs markers into whiteout devices
            // `.wh.aufs`, `.wh.orph`, `.wh.plnk`; we skip them.
            docker_tree.retain(|k, _| !matches!(k.as_str(), ".wh.aufs" | ".wh.orph" | ".wh.plnk"));
        }
        // The size counted during the apply is Docker's and the walk's.
        let docker_size = std::fs::read_to_string(layerdb(&data, layer).join("size")).unwrap();
        let walked = store.driver().diff_size(&ours.cache_id).unwrap();
        if docker_size.trim() != ours.size.to_string() || walked != ours.size {
            failures.push(format!(
                "{name}: size {} (walked {walked}), docker {docker_size}",
                ours.size
            ));
        }
        let our_tree = tree(&store.driver().diff_dir(&ours.cache_id));
        if docker_tree != our_tree {
            failures.push(format!(
                "{name}: tree differs\n docker: {docker_tree:#?}\n ours:   {our_tree:#?}"
            ));
        }
        // And the layer reassembles to its own bytes.
        let mut back = Vec::new();
        let read = store
            .tar_stream(&ours.chain_id)
            .unwrap()
            .read_to_end(&mut back);
        if let Err(e) = read {
            failures.push(format!("{name}: reassembly failed: {e}"));
        } else if back != *layer {
            failures.push(format!("{name}: reassembled bytes differ"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The segment and file sizes of a tar-split stream, last ones first.
fn sizes(json: &[u8]) -> String {
    let entries = dunnage_layerstore::tarsplit::read_entries(json).unwrap();
    let sizes: Vec<String> = entries
        .iter()
        .rev()
        .take(8)
        .map(|e| match e {
            dunnage_layerstore::tarsplit::Entry::Segment(p) => format!("seg {}", p.len()),
            dunnage_layerstore::tarsplit::Entry::File { size, .. } => format!("file {size}"),
        })
        .collect();
    format!(
        "{} entries, from the end: {}",
        entries.len(),
        sizes.join(", ")
    )
}
