//! Fixtures shared by the image tests, all made on the spot.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use dunnage_layerstore::{DiffId, Digest};

/// Run a command, panicking with its output when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A rootfs tarball with the host's static busybox as `/bin/busybox` and
/// `sh`, `ls`, `cat`, `echo` links, written to `<dir>/busybox-rootfs.tar`.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("busybox-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in ["sh", "ls", "cat", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    std::fs::write(root.join("etc/motd"), b"dunnage\n").unwrap();
    let tar = dir.join("busybox-rootfs.tar");
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// A tar stream of the given regular files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The diffID of an uncompressed layer.
pub fn diff_id(layer: &[u8]) -> DiffId {
    DiffId(Digest::sha256_of(layer))
}

/// A minimal config with one history entry per layer.
pub fn config_for(diff_ids: &[DiffId]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    let history: Vec<&str> = diff_ids
        .iter()
        .map(|_| r#"{"created":"2024-01-02T03:04:05Z","created_by":"test"}"#)
        .collect();
    format!(
        r#"{{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{{"Cmd":["sh"]}},"history":[{}],"rootfs":{{"type":"layers","diff_ids":[{}]}},"x_unknown":{{"kept":true}}}}"#,
        history.join(","),
        ids.join(",")
    )
    .into_bytes()
}

/// A tar of raw members: names are written as given (even `../x`), so
/// hostile archives can be made. A `Some(target)` makes a symlink.
pub fn raw_tar(members: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, link) in members {
        let mut h = tar::Header::new_old();
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            old.linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(if link.is_some() {
            tar::EntryType::Symlink
        } else {
            tar::EntryType::Regular
        });
        h.set_size(if link.is_some() { 0 } else { data.len() as u64 });
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        if link.is_none() {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A docker-archive (pre-25 layout) of one image with the given layers.
pub fn docker_archive(layers: &[Vec<u8>], tag: &str) -> (Vec<u8>, Vec<u8>) {
    let ids: Vec<DiffId> = layers.iter().map(|l| diff_id(l)).collect();
    let config = config_for(&ids);
    let cfg_name = format!("{}.json", Digest::sha256_of(&config).hex());
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest = format!(
        r#"[{{"Config":"{cfg_name}","RepoTags":["{tag}"],"Layers":[{}]}}]"#,
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut members: Vec<(&str, &[u8], Option<&str>)> = vec![
        ("manifest.json", manifest.as_bytes(), None),
        (&cfg_name, &config, None),
    ];
    for (n, l) in names.iter().zip(layers) {
        members.push((n, l, None));
    }
    (raw_tar(&members), config)
}

/// Every path below `root` (for "the store is unchanged" checks), with
/// the size of regular files.
pub fn snapshot(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            // Scratch space and lock files are not state.
            if rel == "tmp"
                || rel.starts_with("image/overlay2/layerdb/tmp")
                || rel.starts_with("image/overlay2/layerdb/dunnage/locks")
                || (rel.starts_with("image/overlay2/dunnage/") && rel.ends_with(".lock"))
            {
                continue;
            }
            out.insert(format!(
                "{rel} {}",
                if meta.is_file() { meta.len() } else { 0 }
            ));
            if meta.is_dir() {
                walk(&p, root, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}
