//! `examples/overlay.rs` from a shell's point of view: mount and umount,
//! apply a layer from stdin, diff a directory to stdout, and bad input
//! giving exit status 1 with a one-line error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use dunnage::overlay::mount::is_mount_point;
use dunnage_testsupport::{MountGuard, TempDir, example_binary, require_root};

/// Run the example with `args`, feeding `stdin`.
fn overlay(args: &[&Path], stdin: &[u8]) -> Output {
    let mut child = Command::new(example_binary("overlay"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The example may fail before reading all of stdin.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status 1 and exactly one line on stderr, starting `overlay: `.
fn assert_one_line_error(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert!(
        err.starts_with("overlay: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{what}: not a one-line error: {err:?}"
    );
    err
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

/// A layer: `etc/`, `etc/hostname`, a whiteout of `gone` and an opaque `var/`.
fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let entries: [(&str, tar::EntryType, &[u8]); 5] = [
        ("etc/", tar::EntryType::Directory, b""),
        ("etc/hostname", tar::EntryType::Regular, b"box\n"),
        (".wh.gone", tar::EntryType::Regular, b""),
        ("var/", tar::EntryType::Directory, b""),
        ("var/.wh..wh..opq", tar::EntryType::Regular, b""),
    ];
    for (name, kind, data) in entries {
        b.append_data(&mut header(kind, data.len() as u64), name, data)
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-entry tar whose name is written raw (the tar crate refuses `..`).
fn hostile_layer(name: &[u8]) -> Vec<u8> {
    let mut h = header(tar::EntryType::Regular, 4);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn mount_and_umount_stack_lowers_top_first() {
    require_root!();
    let t = TempDir::new("ex-ovl-mount").unwrap();
    for d in ["top", "bottom", "upper", "work", "merged"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    std::fs::write(t.join("top/shared"), b"top").unwrap();
    std::fs::write(t.join("bottom/shared"), b"bottom").unwrap();
    std::fs::write(t.join("bottom/only-bottom"), b"b").unwrap();
    let merged = t.join("merged");
    let out = overlay(
        &[
            p("mount"),
            &merged,
            p("--lower"),
            &t.join("top"),
            p("--lower"),
            &t.join("bottom"),
            p("--upper"),
            &t.join("upper"),
            p("--work"),
            &t.join("work"),
        ],
        b"",
    );
    let guard = MountGuard::new(&merged);
    assert!(out.status.success(), "mount: {}", stderr(&out));
    assert!(is_mount_point(&merged).unwrap());
    assert_eq!(std::fs::read(merged.join("shared")).unwrap(), b"top");
    assert_eq!(std::fs::read(merged.join("only-bottom")).unwrap(), b"b");
    std::fs::write(merged.join("new"), b"n").unwrap();
    assert_eq!(std::fs::read(t.join("upper/new")).unwrap(), b"n");
    let out = overlay(&[p("umount"), &merged], b"");
    assert!(out.status.success(), "umount: {}", stderr(&out));
    assert!(!is_mount_point(&merged).unwrap());
    drop(guard);
    // Read-only, without an upper layer: two lowers.
    let out = overlay(
        &[
            p("mount"),
            &merged,
            p("--lower"),
            &t.join("top"),
            p("--lower"),
            &t.join("bottom"),
        ],
        b"",
    );
    let _guard = MountGuard::new(&merged);
    assert!(out.status.success(), "mount: {}", stderr(&out));
    assert!(std::fs::write(merged.join("x"), b"x").is_err());
    assert!(overlay(&[p("umount"), &merged], b"").status.success());
}

#[test]
fn apply_reads_stdin_and_diff_writes_the_same_layer_to_stdout() {
    require_root!();
    let t = TempDir::new("ex-ovl-apply").unwrap();
    let dir = t.join("layer");
    std::fs::create_dir(&dir).unwrap();
    let out = overlay(&[p("apply"), &dir], &layer());
    assert!(out.status.success(), "apply: {}", stderr(&out));
    assert!(stderr(&out).starts_with("5 entries, 4 bytes, 1 whiteouts, 1 opaque"));
    assert_eq!(std::fs::read(dir.join("etc/hostname")).unwrap(), b"box\n");
    let wh = std::fs::symlink_metadata(dir.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);

    let out = overlay(&[p("diff"), &dir], b"");
    assert!(out.status.success(), "diff: {}", stderr(&out));
    let mut names = Vec::new();
    for e in tar::Archive::new(&out.stdout[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name == "etc/hostname" {
            assert_eq!(data, b"box\n");
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            ".wh.gone",
            "etc/",
            "etc/hostname",
            "var/",
            "var/.wh..wh..opq"
        ]
    );
    // The diff applies again to the same tree.
    let again = t.join("again");
    std::fs::create_dir(&again).unwrap();
    let out2 = overlay(&[p("apply"), &again], &out.stdout);
    assert!(out2.status.success(), "apply of diff: {}", stderr(&out2));
    assert_eq!(std::fs::read(again.join("etc/hostname")).unwrap(), b"box\n");
}

#[test]
fn bad_input_exits_1_with_a_one_line_error() {
    require_root!();
    let t = TempDir::new("ex-ovl-bad").unwrap();
    let root = t.join("root");
    std::fs::create_dir(&root).unwrap();
    // A name escaping the root: refused, nothing written outside.
    let err = assert_one_line_error(
        &overlay(&[p("apply"), &root], &hostile_layer(b"../escape")),
        "apply ../escape",
    );
    assert!(err.contains("`..` in a layer path"), "{err}");
    assert!(!t.join("escape").exists());
    // A truncated archive.
    let mut cut = layer();
    cut.truncate(700);
    let err = assert_one_line_error(&overlay(&[p("apply"), &root], &cut), "truncated");
    assert!(err.contains("layer tar"), "{err}");
    // A reserved whiteout name.
    let err = assert_one_line_error(
        &overlay(&[p("apply"), &root], &hostile_layer(b".wh..wh.bogus")),
        "reserved name",
    );
    assert!(err.contains("reserved whiteout name"), "{err}");
    // Applying into a directory that does not exist.
    assert_one_line_error(
        &overlay(&[p("apply"), &t.join("missing")], &layer()),
        "missing root",
    );
    // Diffing a directory that does not exist.
    let out = overlay(&[p("diff"), &t.join("missing")], b"");
    assert_one_line_error(&out, "diff of a missing directory");
    // Mounting without lowers, with a missing lower, with a bad option.
    let merged = t.join("merged");
    std::fs::create_dir(&merged).unwrap();
    let _guard = MountGuard::new(&merged);
    assert_one_line_error(&overlay(&[p("mount"), &merged], b""), "no lower");
    assert_one_line_error(
        &overlay(
            &[
                p("mount"),
                &merged,
                p("--lower"),
                &t.join("nope"),
                p("--upper"),
                &root,
                p("--work"),
                &t.join("work"),
            ],
            b"",
        ),
        "missing lower",
    );
    assert_one_line_error(
        &overlay(
            &[
                p("mount"),
                &merged,
                p("--lower"),
                &root,
                p("--lower"),
                &root,
                p("-o"),
                p("index=maybe"),
            ],
            b"",
        ),
        "bad option",
    );
    assert!(!is_mount_point(&merged).unwrap());
    // Unmounting what is not mounted; unknown commands and options.
    assert_one_line_error(&overlay(&[p("umount"), &merged], b""), "umount");
    assert_one_line_error(&overlay(&[p("frobnicate")], b""), "unknown command");
    assert_one_line_error(
        &overlay(&[p("apply"), &root, p("--bogus")], b""),
        "unknown option",
    );
    assert_one_line_error(&overlay(&[], b""), "no command");
}
