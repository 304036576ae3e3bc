//! kill -9 trials: `load`, `import`, `commit` (with the container layer's
//! create and remove around it) and `rmi` run in a child process that is
//! SIGKILLed at a random moment; then the store is reopened and checked.
//!
//! After each kill: `ImageStore::open` (its automatic clean-up) and
//! `check`; the only problem allowed before `repair` is a leaked layer
//! reference (a load, import or commit killed between registering layers
//! and writing its image: given back by `repair`, `prune` or the next
//! `load`); after `repair` the check reports nothing; every image the
//! child reported done is intact (config verified, every layer's tar
//! rebuilt against its diffID).
//!
//! `DUNNAGE_KILL_TRIALS` sets the trials per operation (default 10, the
//! full run uses 100); `DUNNAGE_KILL_SEED` repeats a run. Here the
//! container layer's create and remove are what is killed; the CLI's
//! container `create` and `rm` are killed in the facade's
//! `tests/kill_trials_container.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{docker_archive, layer_tar};
use dunnage_image::{ImageChanges, ImageId, ImageStore, LoadOptions, Problem};
use dunnage_testsupport::{Rng, TempDir, require_root};

const OP: &str = "DUNNAGE_KILL_TRIAL_OP";
const REPORTED: &str = "DUNNAGE-REPORTED ";

/// The child: runs one operation when `DUNNAGE_KILL_TRIAL_OP` is set
/// (`op root arg [base]`), printing what it completed.
#[test]
fn kill_trial_child() {
    let Ok(spec) = std::env::var(OP) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\t').collect();
    let (op, root, arg) = (parts[0], Path::new(parts[1]), parts[2]);
    let store = ImageStore::open(root).unwrap();
    match op {
        "load" => {
            for l in store.load(Path::new(arg), LoadOptions::default()).unwrap() {
                println!("{REPORTED}{}", l.id);
            }
        }
        "import" => {
            let id = store
                .import(Path::new(arg), &ImageChanges::default())
                .unwrap();
            println!("{REPORTED}{id}");
        }
        "commit" => {
            let base: ImageId = parts[3].parse().unwrap();
            let top = store.config(&base).unwrap().chain_id();
            let rw = store.layers().create_rw(arg, top.as_ref(), None).unwrap();
            let diff = store.layers().driver().diff_dir(&rw.mount_id);
            for i in 0..20 {
                std::fs::write(diff.join(format!("f{i}")), vec![i as u8; 20_000]).unwrap();
            }
            let id = store.commit(arg, &base, &ImageChanges::default()).unwrap();
            println!("{REPORTED}{id}");
            store.layers().remove_rw(arg).unwrap();
        }
        "rmi" => {
            store.remove(arg, true).unwrap();
            println!("{REPORTED}{arg}");
        }
        other => panic!("unknown op {other}"),
    }
}

/// Run the child for `spec`, SIGKILLed after `delay` (if still running);
/// returns what it reported done.
fn run_child(spec: &str, delay: Option<Duration>) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "kill_trial_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OP, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = dunnage_testsupport::ChildGuard::new(child.id() as i32);
    if let Some(d) = delay {
        std::thread::sleep(d);
        // Our own child, reaped below.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    }
    let out = child.wait_with_output().unwrap();
    drop(guard);
    assert!(
        delay.is_some() || out.status.success(),
        "{spec}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.find(REPORTED)
                .map(|i| l[i + REPORTED.len()..].to_string())
        })
        .collect()
}

/// An archive of two layers (a shared base, and one of its own) of about
/// 400 KB, different for every `n`.
fn archive(dir: &TempDir, n: u64) -> PathBuf {
    let base: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("base/{i}"), vec![i as u8; 20_000]))
        .collect();
    let own: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("own/{i}"),
                format!("{n}-{i}").repeat(2000).into_bytes(),
            )
        })
        .collect();
    let as_refs = |v: &[(String, Vec<u8>)]| {
        layer_tar(
            &v.iter()
                .map(|(a, b)| (a.as_str(), b.as_slice()))
                .collect::<Vec<_>>(),
        )
    };
    let (tar, _) = docker_archive(&[as_refs(&base), as_refs(&own)], &format!("trial:{n}"));
    let path = dir.join(format!("trial-{n}.tar"));
    std::fs::write(&path, tar).unwrap();
    path
}

/// The image is intact: its config verifies, every layer rebuilds.
fn assert_intact(store: &ImageStore, id: &str) {
    let id: ImageId = id.parse().unwrap();
    let config = store.config(&id).unwrap();
    if let Some(top) = config.chain_id() {
        for layer in store.layers().chain(&top).unwrap() {
            store.layers().verify(&layer.chain_id).unwrap();
        }
    }
}

fn kind(p: &Problem) -> String {
    format!("{p:?}")
        .split([' ', '(', '{'])
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn killed_operations_leave_a_store_that_checks_clean() {
    require_root!();
    let trials: u64 = std::env::var("DUNNAGE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("DUNNAGE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill trials: {trials} per operation, DUNNAGE_KILL_SEED={seed}");
    let mut rng = Rng::new(seed);
    let dir = TempDir::new("kill-trials").unwrap();
    let root = dir.join("root");
    let root_s = root.to_str().unwrap().to_string();
    let rootfs = common::busybox_rootfs(dir.path());
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        n
    };
    // A base image for commits, loaded without interruption.
    let base = run_child(
        &format!("load\t{root_s}\t{}", archive(&dir, next()).display()),
        None,
    );
    let base = base[0].clone();

    let mut findings: BTreeMap<String, u64> = BTreeMap::new();
    let mut completed: BTreeMap<&str, u64> = BTreeMap::new();
    for op in ["load", "import", "commit", "rmi"] {
        let spec = |i: u64, dir: &TempDir| match op {
            "load" => format!("load\t{root_s}\t{}", archive(dir, i).display()),
            "import" => format!("import\t{root_s}\t{}", rootfs.display()),
            "commit" => format!("commit\t{root_s}\tctr-{i}\t{base}"),
            _ => {
                let loaded = run_child(
                    &format!("load\t{root_s}\t{}", archive(dir, i).display()),
                    None,
                );
                format!("rmi\t{root_s}\t{}", loaded[0])
            }
        };
        // How long the operation takes uninterrupted: kills land in 0..2
        // times that (it grows with the store and with the machine's load,
        // and some operations must be let finish).
        let first = spec(next(), &dir);
        let start = Instant::now();
        run_child(&first, None);
        let span = start.elapsed().as_micros() as u64 * 2;
        for _ in 0..trials {
            let s = spec(next(), &dir);
            let delay = Duration::from_micros(rng.below(span));
            let reported = run_child(&s, Some(delay));
            if !reported.is_empty() {
                *completed.entry(op).or_default() += 1;
            }
            let store = ImageStore::open(&root).unwrap();
            let report = store.check().unwrap();
            for p in &report.problems {
                *findings.entry(format!("{op}: {}", kind(p))).or_default() += 1;
                assert!(
                    matches!(p, Problem::LeakedReferences(_)),
                    "{op} killed after {delay:?} (seed {seed}): {p}"
                );
            }
            store.repair().unwrap();
            let after = store.check().unwrap();
            assert!(after.is_clean(), "{op} (seed {seed}): {:?}", after.problems);
            if op == "rmi" {
                if let Some(id) = reported.first() {
                    assert!(!store.imagedb().exists(&id.parse().unwrap()));
                }
            } else {
                for id in &reported {
                    assert_intact(&store, id);
                }
            }
            if op == "commit" {
                let ctr = s.split('\t').nth(2).unwrap();
                if store.layers().get_rw(ctr).is_ok() {
                    store.layers().remove_rw(ctr).unwrap();
                }
            }
        }
    }
    assert_intact(&ImageStore::open(&root).unwrap(), &base);
    eprintln!(
        "kill trials: completed before the kill {completed:?}; findings before repair {findings:?}"
    );
}
