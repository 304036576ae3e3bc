//! Diff fidelity (issue 17) and the diff under a racing writer (issue 15):
//! times before 1970, names a layer cannot carry, entries swapped for
//! symlinks, FIFOs and directory symlinks while the diff runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_overlay::{ApplyOptions, DiffOptions, Error, apply_layer, write_diff};
use dunnage_testsupport::{TempDir, require_root};

mod common;
use common::run;

/// Set atime and mtime of `p` (not following symlinks) to `sec`.`nsec`.
fn set_time(p: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mtime(p: &Path) -> (i64, i64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

/// PAX `mtime` records of a tar, by entry name.
fn pax_mtimes(tar: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for r in pax {
                let r = r.unwrap();
                if r.key().unwrap() == "mtime" {
                    out.push((name.clone(), r.value().unwrap().to_string()));
                }
            }
        }
    }
    out
}

const NO_OWNER: ApplyOptions = ApplyOptions {
    userxattr: false,
    same_owner: false,
    max_header_size: 1 << 20,
};

#[test]
fn times_before_1970_survive_diff_and_apply() {
    let t = TempDir::new("ovdiff-times").unwrap();
    let up = t.join("upper");
    std::fs::create_dir_all(up.join("dir")).unwrap();
    std::fs::write(up.join("dir/old"), b"1960").unwrap();
    std::fs::write(up.join("frac"), b"").unwrap();
    std::fs::write(up.join("now"), b"").unwrap();
    std::fs::write(up.join("far"), b"").unwrap();
    std::os::unix::fs::symlink("dir/old", up.join("link")).unwrap();
    set_time(&up.join("dir/old"), -315_619_200, 0); // 1960-01-01
    set_time(&up.join("frac"), -2, 750_000_000); // 1.25 s before 1970
    set_time(&up.join("now"), 1_700_000_000, 123);
    set_time(&up.join("far"), 10_000_000_000, 0); // past ustar's 2242
    set_time(&up.join("link"), -86_400, 0);
    set_time(&up.join("dir"), -1, 0);
    let tar = write_diff(&up, Vec::new(), &DiffOptions::default()).unwrap();
    let pax = pax_mtimes(&tar);
    let want: Vec<(String, String)> = [
        ("dir/", "-1"),
        ("dir/old", "-315619200"),
        ("far", "10000000000"),
        ("frac", "-1.25"),
        ("link", "-86400"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut got = pax.clone();
    got.sort();
    assert_eq!(got, want, "times ustar holds stay in ustar");
    // GNU tar reads the same dates.
    std::fs::write(t.join("d.tar"), &tar).unwrap();
    let listing = String::from_utf8(run(Command::new("tar")
        .args(["--full-time", "-tvf"])
        .arg(t.join("d.tar"))))
    .unwrap();
    assert!(listing.contains("1960-01-01 00:00:00 dir/old"), "{listing}");
    // Applied back: the same times, negative seconds and fractions kept.
    let out = t.join("out");
    std::fs::create_dir(&out).unwrap();
    apply_layer(&tar[..], &out, &NO_OWNER).unwrap();
    for rel in ["dir", "dir/old", "frac", "far", "link"] {
        assert_eq!(mtime(&out.join(rel)), mtime(&up.join(rel)), "{rel}");
    }
    // In-range times keep whole seconds, as ustar and Docker do.
    assert_eq!(mtime(&out.join("now")), (1_700_000_000, 0));
}

#[test]
fn gnu_and_posix_tar_times_before_1970_apply() {
    let t = TempDir::new("ovdiff-gnutimes").unwrap();
    let src = t.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("old"), b"x").unwrap();
    set_time(&src.join("old"), -315_619_200, 0);
    for format in ["gnu", "posix"] {
        let tarfile = t.join(format!("{format}.tar"));
        run(Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&tarfile)
            .arg("-C")
            .arg(&src)
            .arg("old"));
        let out = t.join(format);
        std::fs::create_dir(&out).unwrap();
        let data = std::fs::read(&tarfile).unwrap();
        apply_layer(&data[..], &out, &NO_OWNER).unwrap();
        assert_eq!(mtime(&out.join("old")), (-315_619_200, 0), "{format}");
    }
}

/// The diff of `up` must fail naming `bad`.
fn assert_unrepresentable(up: &Path, bad: &str) {
    match write_diff(up, Vec::new(), &DiffOptions::default()) {
        Err(Error::UnrepresentableName { path }) => {
            assert_eq!(path, up.join(bad));
            let msg = Error::UnrepresentableName { path }.to_string();
            assert!(msg.contains(bad), "{msg}");
        }
        other => panic!("{bad}: expected UnrepresentableName, got {other:?}"),
    }
}

/// A bad name and how to make it in an upper directory.
type Case<'a> = (&'a str, &'a dyn Fn(&Path));

#[test]
fn names_a_layer_cannot_carry_fail_the_diff() {
    let t = TempDir::new("ovdiff-names").unwrap();
    // A regular file `.wh.victim`, an opaque-marker file, a directory
    // `.wh.nested`, an empty file `.wh.x` deep down: each alone.
    let cases: [Case; 4] = [
        (".wh.victim", &|up| {
            std::fs::write(up.join(".wh.victim"), b"").unwrap()
        }),
        ("d/.wh..wh..opq", &|up| {
            std::fs::create_dir(up.join("d")).unwrap();
            std::fs::write(up.join("d/.wh..wh..opq"), b"").unwrap();
        }),
        (".wh.nested", &|up| {
            std::fs::create_dir(up.join(".wh.nested")).unwrap()
        }),
        ("a/b/.wh.x", &|up| {
            std::fs::create_dir_all(up.join("a/b")).unwrap();
            std::fs::write(up.join("a/b/.wh.x"), b"data").unwrap();
        }),
    ];
    for (i, (bad, make)) in cases.iter().enumerate() {
        let up = t.join(format!("u{i}"));
        std::fs::create_dir(&up).unwrap();
        std::fs::write(up.join("victim"), b"keep").unwrap();
        make(&up);
        assert_unrepresentable(&up, bad);
    }
    // Names that merely look alike are fine.
    let up = t.join("ok");
    std::fs::create_dir(&up).unwrap();
    std::fs::write(up.join(".whx"), b"").unwrap();
    std::fs::write(up.join("a.wh.b"), b"").unwrap();
    write_diff(&up, Vec::new(), &DiffOptions::default()).unwrap();
}

#[test]
fn names_a_layer_cannot_carry_fail_the_diff_of_a_real_overlay() {
    require_root!();
    let t = TempDir::new("ovdiff-names-ovl").unwrap();
    for d in ["lower/d", "upper", "work", "merged"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("lower/victim"), b"v").unwrap();
    std::fs::write(t.join("lower/d/f"), b"f").unwrap();
    let m = dunnage_overlay::Mount::new(t.join("merged"))
        .lower(t.join("lower"))
        .upper(t.join("upper"), t.join("work"));
    m.mount().unwrap();
    let _g = dunnage_testsupport::MountGuard::new(t.join("merged"));
    // A real whiteout is fine...
    std::fs::remove_file(t.join("merged/victim")).unwrap();
    write_diff(&t.join("upper"), Vec::new(), &DiffOptions::default()).unwrap();
    // ...a container's own `.wh.` file is not.
    std::fs::write(t.join("merged/d/.wh.f"), b"").unwrap();
    assert_unrepresentable(&t.join("upper"), "d/.wh.f");
}

/// Victim files the writer swaps.
const VICTIMS: usize = 16;

/// Make `dir`'s victims: files `vNN`, each with a spare `sNN` to trade
/// places with (a symlink to a root-only file outside, every fourth a
/// FIFO), and a directory `sub` with a spare `sublink`, a symlink to a
/// directory outside.
fn victims(dir: &Path, outside: &Path) {
    for i in 0..VICTIMS {
        std::fs::write(dir.join(format!("v{i:02}")), b"plain file").unwrap();
        let spare = dir.join(format!("s{i:02}"));
        if i % 4 == 3 {
            let c = std::ffi::CString::new(spare.into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        } else {
            std::os::unix::fs::symlink(outside.join("secret"), spare).unwrap();
        }
    }
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/inner"), b"inner").unwrap();
    std::os::unix::fs::symlink(outside, dir.join("sublink")).unwrap();
}

/// A writer trading places of each victim and its spare (one atomic
/// `renameat2(RENAME_EXCHANGE)` each), as fast as it can, until `stop`.
fn swapper(dir: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let fd = rustix::fs::open(
            &dir,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let exchange = |a: &str, b: &str| {
            rustix::fs::renameat_with(&fd, a, &fd, b, rustix::fs::RenameFlags::EXCHANGE).unwrap();
        };
        let mut rounds = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let i = rounds as usize % VICTIMS;
            exchange(&format!("v{i:02}"), &format!("s{i:02}"));
            if rounds.is_multiple_of(4) {
                exchange("sub", "sublink");
            }
            rounds += 1;
        }
        rounds
    })
}

/// What of outside the directory a diff holds, if anything.
fn leak(tar: &[u8]) -> Option<String> {
    for needle in [&b"SECRET-FROM-OUTSIDE"[..], b"OTHER-OUTSIDE-FILE"] {
        if tar.windows(needle.len()).any(|w| w == needle) {
            return Some(format!(
                "content of a file outside the directory in the diff: {}",
                String::from_utf8_lossy(needle)
            ));
        }
    }
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if name.starts_with("sub/secret") || name.starts_with("sub/other") {
            return Some(format!(
                "an entry of a directory outside in the diff: {name}"
            ));
        }
    }
    None
}

#[test]
fn a_racing_writer_never_gets_outside_content_into_the_diff() {
    let t = TempDir::new("ovdiff-race").unwrap();
    let outside = t.join("outside");
    let up = t.join("upper");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&up).unwrap();
    std::fs::write(outside.join("secret"), b"SECRET-FROM-OUTSIDE").unwrap();
    std::fs::write(outside.join("other"), b"OTHER-OUTSIDE-FILE").unwrap();
    victims(&up, &outside);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = swapper(&up, stop.clone());
    // The diffs run in their own thread so that a hang fails the test
    // instead of blocking it forever.
    let (tx, rx) = std::sync::mpsc::channel();
    let up2 = up.clone();
    let differ = std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..1000 {
            match write_diff(&up2, Vec::new(), &DiffOptions::default()) {
                Ok(tar) => {
                    if let Some(leak) = leak(&tar) {
                        let _ = tx.send(Err(leak));
                        return;
                    }
                    ok += 1;
                }
                // A racing writer may make a diff fail; never hang or leak.
                Err(e) => {
                    if failed < 5 {
                        eprintln!("diff failed under the race: {e}");
                    }
                    failed += 1
                }
            }
        }
        let _ = tx.send(Ok((ok, failed)));
    });
    let result = rx.recv_timeout(std::time::Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    let (ok, failed) = match result {
        Ok(Ok(counts)) => counts,
        Ok(Err(leak)) => panic!("{leak}"),
        Err(_) => panic!("diffs hung under a racing writer"),
    };
    differ.join().unwrap();
    eprintln!("{ok} diffs written, {failed} failed, {rounds} swaps");
    assert!(ok > 0);
}

#[test]
fn apply_takes_only_empty_regular_files_as_whiteouts() {
    use common::RawTar;
    use tar::EntryType;
    let t = TempDir::new("ovdiff-apply-wh").unwrap();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            ".wh.victim",
            RawTar::new().file(".wh.victim", b"data").finish(),
        ),
        ("d/.wh..wh..opq", {
            let mut r = RawTar::new();
            r.dir("d/").file("d/.wh..wh..opq", b"x");
            r.finish()
        }),
        (".wh.nested/", RawTar::new().dir(".wh.nested/").finish()),
        (
            ".wh.sym",
            RawTar::new().symlink(".wh.sym", "victim").finish(),
        ),
        (
            ".wh.fifo",
            RawTar::new()
                .raw_entry(b".wh.fifo", EntryType::Fifo, 0o644, b"", b"")
                .finish(),
        ),
        (".wh.link", {
            let mut r = RawTar::new();
            r.file("plain", b"").hardlink(".wh.link", "plain");
            r.finish()
        }),
    ];
    for (i, (name, tar)) in bad.iter().enumerate() {
        let root = t.join(format!("r{i}"));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("victim"), b"keep").unwrap();
        std::fs::write(root.join("d/f"), b"keep").unwrap();
        std::fs::create_dir(root.join("nested")).unwrap();
        match apply_layer(&tar[..], &root, &NO_OWNER) {
            Err(Error::BadEntry { path, reason }) => {
                assert_eq!(path, *name);
                assert!(reason.contains("empty regular file"), "{reason}");
            }
            other => panic!("{name}: expected BadEntry, got {other:?}"),
        }
        // Nothing below was lost.
        assert_eq!(std::fs::read(root.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(root.join("d/f")).unwrap(), b"keep");
        assert!(root.join("nested").is_dir());
    }
}

#[test]
fn apply_still_takes_empty_whiteouts_and_docker_whiteout_hardlinks() {
    require_root!();
    use common::RawTar;
    let t = TempDir::new("ovdiff-apply-wh-ok").unwrap();
    let mut r = RawTar::new();
    r.file(".wh.a", b"")
        .hardlink(".wh.b", ".wh.a")
        .dir("d/")
        .file("d/.wh..wh..opq", b"");
    let root = t.join("root");
    std::fs::create_dir(&root).unwrap();
    let stats = apply_layer(&r.finish()[..], &root, &ApplyOptions::default()).unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 1));
}

#[test]
fn a_racing_writer_never_gets_outside_names_into_the_changes() {
    let t = TempDir::new("ovdiff-race-changes").unwrap();
    let outside = t.join("outside");
    let up = t.join("upper");
    let lower = t.join("lower");
    for d in [&outside, &up, &lower.join("sub")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("secret"), b"SECRET-FROM-OUTSIDE").unwrap();
    std::fs::write(outside.join("other"), b"OTHER-OUTSIDE-FILE").unwrap();
    for i in 0..VICTIMS {
        std::fs::write(lower.join(format!("v{i:02}")), b"lower file").unwrap();
    }
    victims(&up, &outside);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = swapper(&up, stop.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let differ = std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..500 {
            match dunnage_overlay::changes(&up, std::slice::from_ref(&lower)) {
                Ok(list) => {
                    if let Some(c) = list.iter().find(|c| {
                        c.path.starts_with("/sub/secret") || c.path.starts_with("/sub/other")
                    }) {
                        let _ = tx.send(Err(format!("a name from outside in the changes: {c}")));
                        return;
                    }
                    ok += 1;
                }
                Err(e) => {
                    if failed < 5 {
                        eprintln!("changes failed under the race: {e}");
                    }
                    failed += 1
                }
            }
        }
        let _ = tx.send(Ok((ok, failed)));
    });
    let result = rx.recv_timeout(std::time::Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    let (ok, failed) = match result {
        Ok(Ok(counts)) => counts,
        Ok(Err(leak)) => panic!("{leak}"),
        Err(_) => panic!("changes hung under a racing writer"),
    };
    differ.join().unwrap();
    eprintln!("{ok} change lists, {failed} failed, {rounds} swaps");
    assert!(ok > 0);
}
