//! `changes()` against `docker diff` (issue 17 item 4), on a container of
//! a private dockerd, and against the truth of mounted views for uppers
//! with redirects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use dunnage_overlay::{
    ApplyOptions, DiffOptions, Mount, MountOptions, apply_layer, changes, write_diff,
};
use dunnage_testsupport::{Dockerd, MountGuard, TempDir, require_root};

mod common;
use common::{run, set_xattr, snapshot};

/// A busybox rootfs with the directories the changes act on.
fn rootfs_tar(t: &TempDir) -> std::path::PathBuf {
    let root = t.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let busybox = dunnage_testsupport::find_in_path("busybox").expect("busybox on PATH");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "rm", "mkdir", "mv", "touch", "echo", "cat", "sleep", "printf",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    };
    w("opq/a", b"a");
    w("opq/b/c", b"c");
    w("opq/sub/x", b"x");
    w("ren/k", b"k");
    w("ren/deep/z", b"z");
    w("touched/f", b"f");
    w("samesize", b"aaaa");
    w("ref", b"");
    w("xf", b"xattr me");
    w("etc/motd", b"hi\n");
    // The same mtime on the file edited and its reference.
    run(Command::new("touch")
        .args(["-d", "2020-01-01 00:00:00"])
        .arg(root.join("samesize"))
        .arg(root.join("ref")));
    let tar = t.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg("."));
    tar
}

/// What the container does.
const SCRIPT: &str = "rm -rf /opq && mkdir -p /opq/sub && echo n > /opq/sub/new \
    && mv /ren /ren2 \
    && touch /touched/tmp && rm /touched/tmp \
    && printf bbbb > /samesize && touch -r /ref /samesize \
    && echo old > /old1960 && touch -d '1960-01-01 00:00:00' /old1960 \
    && echo ok";

fn lines(s: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(s)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn changes_match_docker_diff_where_docker_is_right() {
    require_root!();
    if !dunnage_testsupport::require_command(module_path!(), "busybox")
        || !Path::new(dunnage_testsupport::DOCKERD).exists()
    {
        return;
    }
    let t = TempDir::new("ovchanges-docker").unwrap();
    let tar = rootfs_tar(&t);
    let d = Dockerd::start("ovchanges").unwrap();
    let image = "dunnage-test-changes:latest";
    run(d.docker().arg("import").arg(&tar).arg(image));
    let name = "dunnage-test-changes-c";
    run(d.docker().args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        image,
        "sleep",
        "1000",
    ]));
    let out = run(d.docker().args(["exec", name, "sh", "-c", SCRIPT]));
    assert_eq!(String::from_utf8_lossy(&out).trim(), "ok");
    // An xattr-only change, through the container's mounted view.
    let merged = String::from_utf8(run(d.docker().args([
        "inspect",
        "-f",
        "{{.GraphDriver.Data.MergedDir}}",
        name,
    ])))
    .unwrap();
    set_xattr(&Path::new(merged.trim()).join("xf"), "user.tag", b"1");
    let theirs = lines(&run(d.docker().args(["diff", name])));
    let mount_id = String::from_utf8(run(d.docker().args([
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}",
        name,
    ])))
    .unwrap();
    let upper = Path::new(mount_id.trim());
    let id = upper
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // The lowers from the layer's `lower` file (Driver::open would detach
    // the mounts of a dockerd that holds none of our locks).
    let home = d.data_root().join("overlay2");
    let lowers: Vec<std::path::PathBuf> = std::fs::read_to_string(home.join(&id).join("lower"))
        .unwrap()
        .trim()
        .split(':')
        .map(|l| std::fs::canonicalize(home.join(l)).unwrap())
        .collect();
    let ours: BTreeSet<String> = changes(upper, &lowers)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    // Differential: our diff applied over the lowers is the mounted view,
    // and equals Docker's commit of it except the xattr Docker drops.
    let truth = snapshot(Path::new(merged.trim()), true);
    let layer = write_diff(
        upper,
        Vec::new(),
        &DiffOptions {
            lowers: lowers.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    for dir in ["layer", "view", "docker-commit"] {
        std::fs::create_dir(t.join(dir)).unwrap();
    }
    apply_layer(&layer[..], &t.join("layer"), &ApplyOptions::default()).unwrap();
    let mut m = Mount::new(t.join("view")).lower(t.join("layer"));
    m.lowers.extend(lowers);
    m.mount().unwrap();
    let g = MountGuard::new(t.join("view"));
    let ours_applied = snapshot(&t.join("view"), true);
    drop(g);
    assert_eq!(ours_applied, truth);
    run(d
        .docker()
        .args(["commit", name, "dunnage-test-changes:committed"]));
    run(d.docker().args([
        "create",
        "--name",
        "dunnage-test-changes-c2",
        "dunnage-test-changes:committed",
    ]));
    let export = t.join("docker-commit.tar");
    run(d
        .docker()
        .args(["export", "-o"])
        .arg(&export)
        .arg("dunnage-test-changes-c2"));
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&export)
        .arg("-C")
        .arg(t.join("docker-commit")));
    let mut docker_tree = snapshot(&t.join("docker-commit"), false);
    let mut ours_tree = std::collections::BTreeMap::new();
    for (k, v) in &ours_applied {
        ours_tree.insert(
            k.clone(),
            v[..v.find(" mtime=").unwrap_or(v.len())].to_string(),
        );
    }
    // A time before 1970 survives our commit (Docker's export writes 0:
    // Docker is wrong there; its commit below keeps it).
    assert!(ours_applied["old1960"].ends_with(" mtime=-315619200"));
    // Docker 20.10 drops user.* xattrs in its commit; ours keeps them.
    let xf = ours_tree.get("xf").unwrap().clone();
    assert!(xf.contains("user.tag=1"), "{xf}");
    docker_tree.insert("xf".into(), xf);
    assert_eq!(ours_tree, docker_tree);
    // Entry by entry against Docker's committed layer.
    let save = t.join("save.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&save)
        .arg("dunnage-test-changes:committed"));
    let docker_tar = top_layer(&save);
    let docker_layer = entries(&docker_tar);
    let mut our_layer = entries(&layer);
    // Again except the user.* xattr Docker drops: the same entries, in the
    // same order, with the same headers (not the same bytes: Go formats
    // checksums and device fields differently and fills in user names).
    for e in our_layer.iter_mut().filter(|e| e.starts_with("xf ")) {
        let xattr = "pax=[\"SCHILY.xattr.user.tag=1\"]";
        assert!(e.ends_with(xattr), "{e}");
        *e = e.replace(xattr, "pax=[]");
    }
    assert_eq!(our_layer, docker_layer);
    run(d
        .docker()
        .args(["rm", "-f", name, "dunnage-test-changes-c2"]));
    drop(d);
    eprintln!("docker: {theirs:?}\nours:   {ours:?}");
    // Docker misses xattr-only and same-size same-mtime changes; we do not.
    let ours_only: BTreeSet<String> = ["C /xf", "C /samesize"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in &ours_only {
        assert!(ours.contains(c), "ours lacks {c}");
        assert!(!theirs.contains(c), "docker now reports {c}");
    }
    let ours_rest: BTreeSet<String> = ours.difference(&ours_only).cloned().collect();
    assert_eq!(ours_rest, theirs);
}

/// Changes of an upper with redirects equal those found by comparing the
/// mounted views (the truth): a renamed directory is deleted under its old
/// name and added, with all its children, under the new one; deletions
/// inside it name paths that existed.
#[test]
fn changes_of_a_redirected_upper_list_the_renamed_tree() {
    require_root!();
    let t = TempDir::new("ovchanges-redirect").unwrap();
    for d in ["lower/olddir/sub", "upper", "work", "merged"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(t.join("lower/olddir/sub/f"), b"f").unwrap();
    std::fs::write(t.join("lower/olddir/gone"), b"g").unwrap();
    std::fs::write(t.join("lower/olddir/kept"), b"k").unwrap();
    let mut m = Mount::new(t.join("merged"))
        .lower(t.join("lower"))
        .upper(t.join("upper"), t.join("work"));
    m.options = MountOptions::parse("redirect_dir=on,metacopy=on").unwrap();
    m.mount().unwrap();
    let g = MountGuard::new(t.join("merged"));
    let merged = t.join("merged");
    std::fs::rename(merged.join("olddir"), merged.join("newdir")).unwrap();
    std::fs::remove_file(merged.join("newdir/gone")).unwrap();
    drop(g);
    let got: Vec<String> = changes(&t.join("upper"), &[t.join("lower")])
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "A /newdir",
            "A /newdir/kept",
            "A /newdir/sub",
            "A /newdir/sub/f",
            "D /olddir",
        ]
    );
}

/// The last layer of a `docker save` archive.
fn top_layer(save: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut files = std::collections::HashMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(save).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest = String::from_utf8(files["manifest.json"].clone()).unwrap();
    let layers = &manifest[manifest.find("\"Layers\":[").unwrap()..];
    let last = layers[..layers.find(']').unwrap()]
        .rsplit('"')
        .nth(1)
        .unwrap()
        .to_string();
    files.remove(&last).unwrap()
}

/// A layer's entries: name, type, mode, owner, mtime, size, link target
/// and PAX records, in order.
fn entries(tar: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax: Vec<String> = e
            .pax_extensions()
            .unwrap()
            .map(|p| {
                p.map(|r| {
                    let r = r.unwrap();
                    format!(
                        "{}={}",
                        r.key().unwrap(),
                        String::from_utf8_lossy(r.value_bytes())
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        pax.sort();
        let h = e.header();
        out.push(format!(
            "{} {:?} {:o} {}:{} mtime={} size={} link={:?} pax={pax:?}",
            String::from_utf8_lossy(&e.path_bytes()),
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            h.size().unwrap(),
            e.link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
        ));
    }
    out
}

/// Without docker: the rules docker follows, on our own overlay mount.
#[test]
fn changes_list_hidden_children_of_opaque_dirs_and_skip_unchanged_copies() {
    require_root!();
    let t = TempDir::new("ovchanges-opaque").unwrap();
    for d in [
        "lower/opq/b",
        "lower/opq/sub",
        "lower/touched",
        "upper",
        "work",
        "merged",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    for f in ["opq/a", "opq/b/c", "opq/sub/x", "touched/f"] {
        std::fs::write(t.join("lower").join(f), f).unwrap();
    }
    let m = Mount::new(t.join("merged"))
        .lower(t.join("lower"))
        .upper(t.join("upper"), t.join("work"));
    m.mount().unwrap();
    let g = MountGuard::new(t.join("merged"));
    let merged = t.join("merged");
    std::fs::remove_dir_all(merged.join("opq")).unwrap();
    std::fs::create_dir_all(merged.join("opq/sub")).unwrap();
    std::fs::write(merged.join("opq/sub/new"), b"n").unwrap();
    std::fs::write(merged.join("touched/tmp"), b"t").unwrap();
    std::fs::remove_file(merged.join("touched/tmp")).unwrap();
    drop(g);
    assert!(
        t.join("upper/touched").is_dir(),
        "the directory was copied up"
    );
    let got: Vec<String> = changes(&t.join("upper"), &[t.join("lower")])
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "C /opq",
            "D /opq/a",
            "D /opq/b",
            "C /opq/sub",
            "A /opq/sub/new",
            "D /opq/sub/x",
        ]
    );
}
