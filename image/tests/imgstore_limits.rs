//! Bounds on what an archive can make a load do (issue 15 items 7, 9):
//! plans, spooled input, imports. Memory is read from the spawned CLI
//! (peak resident size), never timed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{config_for, diff_id, layer_tar, raw_tar};
use dunnage_image::{Error, ImageStore, LoadOptions};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, example_binary, require_root};

/// Run the CLI with `args` (stdin from `stdin` when given); its exit
/// status, stderr and peak resident size in KiB: the larger of VmHWM read
/// from /proc while it runs and the ru_maxrss the kernel reports at exit.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives ru_maxrss
fn run_measured(root: &Path, args: &[&str], stdin: Option<&Path>) -> (bool, String, u64) {
    let mut cmd = Command::new(example_binary("dunnage"));
    cmd.arg("--root").arg(root).args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kib);
        }
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-buffer.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child only.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            peak = peak.max(usage.ru_maxrss as u64);
            let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            drop(child);
            return (ok, reader.join().unwrap(), peak);
        }
        assert_eq!(r, 0, "wait4: {}", std::io::Error::last_os_error());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A config padded to about `pad` bytes (a field docker keeps as is).
fn padded_config(layer: &[u8], pad: usize, salt: &str) -> Vec<u8> {
    let base = String::from_utf8(config_for(&[diff_id(layer)])).unwrap();
    let padding = format!(r#""x_pad":"{salt}{}","#, "p".repeat(pad));
    base.replacen('{', &format!("{{{padding}"), 1).into_bytes()
}

#[test]
fn one_big_config_named_3000_times_is_read_once() {
    require_root!();
    let dir = TempDir::new("plan-shared").unwrap();
    let layer = layer_tar(&[("a", b"a")]);
    let config = padded_config(&layer, 7 << 20, "");
    let name = format!("{}.json", Digest::sha256_of(&config).hex());
    let entries: Vec<String> = (0..3000)
        .map(|i| {
            format!(r#"{{"Config":"{name}","RepoTags":["big:{i}"],"Layers":["l/layer.tar"]}}"#)
        })
        .collect();
    let manifest = format!("[{}]", entries.join(","));
    let archive = raw_tar(&[
        ("manifest.json", manifest.as_bytes(), None),
        (&name, &config, None),
        ("l/layer.tar", &layer, None),
    ]);
    std::fs::write(dir.join("a.tar"), archive).unwrap();
    let root = dir.join("root");
    let a = dir.join("a.tar").display().to_string();
    let (ok, err, peak) = run_measured(&root, &["load", "-q", "-i", &a], None);
    assert!(ok, "{err}");
    eprintln!("load of 3000 entries x 7 MiB config: peak {peak} KiB");
    // 7 MiB read once (dockerd stays near 130 MB on this archive).
    assert!(peak < 200 << 10, "peak resident size {peak} KiB");
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    let id = store.list().unwrap()[0].clone();
    assert_eq!(store.references(&id).unwrap().len(), 3000);
    assert_eq!(
        store
            .layers()
            .references(&store.config(&id).unwrap().chain_id().unwrap())
            .unwrap(),
        Some(1)
    );
}

#[test]
fn nested_index_fan_out_is_refused_with_bounded_memory() {
    require_root!();
    let dir = TempDir::new("plan-fanout").unwrap();
    let layer = layer_tar(&[("a", b"a")]);
    let config = config_for(&[diff_id(&layer)]);
    let desc = |media: &str, data: &[u8]| {
        format!(
            r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
            Digest::sha256_of(data),
            data.len()
        )
    };
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#,
        desc("application/vnd.oci.image.config.v1+json", &config),
        desc("application/vnd.oci.image.layer.v1.tar", &layer)
    );
    let mut blobs: Vec<Vec<u8>> = vec![manifest.clone().into_bytes(), config.clone(), layer];
    // Four levels of indexes, 200 entries each, every entry the level below.
    let mut below = (
        "application/vnd.oci.image.manifest.v1+json",
        manifest.into_bytes(),
    );
    for _ in 0..4 {
        let entry = desc(below.0, &below.1);
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            vec![entry; 200].join(",")
        )
        .into_bytes();
        blobs.push(index.clone());
        below = ("application/vnd.oci.image.index.v1+json", index);
    }
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
        vec![desc(below.0, &below.1); 200].join(",")
    );
    let names: Vec<String> = blobs
        .iter()
        .map(|b| format!("blobs/sha256/{}", Digest::sha256_of(b).hex()))
        .collect();
    let mut members: Vec<(&str, &[u8], Option<&str>)> = vec![("index.json", top.as_bytes(), None)];
    for (n, b) in names.iter().zip(&blobs) {
        members.push((n, b, None));
    }
    std::fs::write(dir.join("fan.tar"), raw_tar(&members)).unwrap();
    let root = dir.join("root");
    let f = dir.join("fan.tar").display().to_string();
    let (ok, err, peak) = run_measured(&root, &["load", "-q", "-i", &f], None);
    eprintln!("nested fan-out: peak {peak} KiB");
    assert!(!ok, "the fan-out loaded");
    assert!(err.contains("more than once"), "{err}");
    assert!(peak < 100 << 10, "peak resident size {peak} KiB");
    // The library's answer is typed, and nothing was stored.
    let store = ImageStore::open(&root).unwrap();
    let e = store
        .load(&dir.join("fan.tar"), LoadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e}");
    assert!(store.list().unwrap().is_empty());
    assert!(store.layers().list().unwrap().is_empty());
}

#[test]
fn plans_are_bounded_in_entries_layers_and_bytes() {
    require_root!();
    let dir = TempDir::new("plan-bounds").unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let layer = layer_tar(&[("a", b"a")]);
    // More manifest entries than max_images.
    let config = config_for(&[diff_id(&layer)]);
    let entry = r#"{"Config":"c.json","RepoTags":null,"Layers":["l.tar"]}"#;
    let manifest = format!("[{}]", vec![entry; 5000].join(","));
    let tar = raw_tar(&[
        ("manifest.json", manifest.as_bytes(), None),
        ("c.json", &config, None),
        ("l.tar", &layer, None),
    ]);
    std::fs::write(dir.join("many.tar"), tar).unwrap();
    let e = store
        .load(&dir.join("many.tar"), LoadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::PlanTooLarge { limit: 4096, .. }), "{e}");
    // More layers in one image than docker's 125.
    let config = config_for(&vec![diff_id(&layer); 126]);
    let entry = format!(
        r#"[{{"Config":"c.json","RepoTags":null,"Layers":[{}]}}]"#,
        vec![r#""l.tar""#; 126].join(",")
    );
    let tar = raw_tar(&[
        ("manifest.json", entry.as_bytes(), None),
        ("c.json", &config, None),
        ("l.tar", &layer, None),
    ]);
    std::fs::write(dir.join("deep.tar"), tar).unwrap();
    let e = store
        .load(&dir.join("deep.tar"), LoadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::PlanTooLarge { limit: 125, .. }), "{e}");
    // Distinct configs beyond max_plan_bytes.
    let configs: Vec<Vec<u8>> = (0..3)
        .map(|i| padded_config(&layer, 1 << 20, &i.to_string()))
        .collect();
    let names: Vec<String> = (0..3).map(|i| format!("c{i}.json")).collect();
    let entries: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"Config":"{n}","RepoTags":null,"Layers":["l.tar"]}}"#))
        .collect();
    let manifest = format!("[{}]", entries.join(","));
    let mut members: Vec<(&str, &[u8], Option<&str>)> = vec![
        ("manifest.json", manifest.as_bytes(), None),
        ("l.tar", &layer, None),
    ];
    for (n, c) in names.iter().zip(&configs) {
        members.push((n, c, None));
    }
    std::fs::write(dir.join("bytes.tar"), raw_tar(&members)).unwrap();
    let opts = LoadOptions {
        max_plan_bytes: 2 << 20,
        ..LoadOptions::default()
    };
    let e = store.load(&dir.join("bytes.tar"), opts).unwrap_err();
    assert!(matches!(e, Error::PlanTooLarge { .. }), "{e}");
    assert!(store.list().unwrap().is_empty());
    // Within the default bounds the same archive loads three images.
    assert_eq!(
        store
            .load(&dir.join("bytes.tar"), LoadOptions::default())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn load_from_dev_zero_fails_fast_and_spooling_is_bounded() {
    require_root!();
    let dir = TempDir::new("spool-bounds").unwrap();
    let root = dir.join("root");
    // `load -i /dev/zero` and `load < /dev/zero`: refused at the first
    // block, nothing spooled.
    for stdin in [None, Some(Path::new("/dev/zero"))] {
        let args: &[&str] = if stdin.is_none() {
            &["load", "-q", "-i", "/dev/zero"]
        } else {
            &["load", "-q"]
        };
        let (ok, err, _) = run_measured(&root, args, stdin);
        assert!(!ok, "{args:?} loaded");
        assert!(err.contains("not a tar archive"), "{args:?}: {err}");
    }
    let spooled = std::fs::read_dir(root.join("tmp")).map_or(0, |d| d.count());
    assert_eq!(spooled, 0);
    // A stream that starts as a tar and never ends stops at max_spool ...
    let store = ImageStore::open(&root).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("huge").unwrap();
    h.set_size(1 << 40);
    h.set_cksum();
    let endless = || std::io::Cursor::new(h.as_bytes().to_vec()).chain(std::io::repeat(0));
    use std::io::Read;
    let opts = LoadOptions {
        max_spool: 16 << 20,
        ..LoadOptions::default()
    };
    let e = store
        .load_reader(endless(), Path::new("<endless>"), opts)
        .unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { limit, .. } if limit == 16 << 20),
        "{e}"
    );
    // ... and before the file system's free space drops below min_free.
    let opts = LoadOptions {
        min_free: u64::MAX / 2,
        ..LoadOptions::default()
    };
    let e = store
        .load_reader(endless(), Path::new("<endless>"), opts)
        .unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn import_applies_the_limits_of_load() {
    require_root!();
    let dir = TempDir::new("import-bomb").unwrap();
    // A tar of one 200 MiB file of zeros, zstd-compressed to a few KiB.
    let mut h = tar::Header::new_ustar();
    h.set_path("zeros").unwrap();
    h.set_size(200 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let mut bomb = zstd::encode_all(&h.as_bytes()[..], 3).unwrap();
    let frame = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).unwrap();
    for _ in 0..201 {
        bomb.extend_from_slice(&frame);
    }
    assert!(bomb.len() < 64 << 10);
    std::fs::write(dir.join("bomb.tar.zst"), &bomb).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let e = store
        .import(&dir.join("bomb.tar.zst"), &Default::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { limit, .. } if limit == 64 << 20),
        "{e}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(store.layers().list().unwrap().is_empty());
}
