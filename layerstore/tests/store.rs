//! Registering, referencing, releasing and reassembling layers in a real
//! overlay2 store, with Docker's file formats checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use common::{
    assert_no_cache_dirs, assert_nothing_registered, cache_dirs, diff_id, gzip, names, tar_of,
};
use dunnage_layerstore::{ChainId, Error, InitLayer, LayerStore, chain_id};
use dunnage_testsupport::{TempDir, require_root};

fn store() -> (TempDir, LayerStore) {
    let dir = TempDir::new("ls-store").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    (dir, store)
}

fn read_all(store: &LayerStore, chain: &ChainId) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .tar_stream(chain)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn registered_layer_has_dockers_files_and_reassembles() {
    require_root!();
    let (dir, store) = store();
    let tar = tar_of(&[
        ("etc/", b""),
        ("etc/a", b"123456"),
        ("b", b"12"),
        ("c", b"12"),
    ]);
    let layer = store
        .register(&tar[..], None, Some(&diff_id(&tar)))
        .unwrap();
    assert_eq!(layer.diff_id, diff_id(&tar));
    assert_eq!(layer.chain_id, chain_id(&[layer.diff_id]).unwrap());
    assert_eq!(layer.size, 10, "Docker's size rule: 6+2+2");
    let ldir = dir
        .path()
        .join("image/overlay2/layerdb/sha256")
        .join(layer.chain_id.hex());
    assert_eq!(
        names(&ldir),
        ["cache-id", "diff", "size", "tar-split.json.gz"]
    );
    assert_eq!(
        std::fs::read(ldir.join("diff")).unwrap(),
        layer.diff_id.to_string().as_bytes()
    );
    assert_eq!(std::fs::read(ldir.join("size")).unwrap(), b"10");
    assert_eq!(
        std::fs::read(ldir.join("cache-id")).unwrap(),
        layer.cache_id.as_bytes()
    );
    assert_eq!(layer.cache_id.len(), 64);
    assert_eq!(
        std::fs::metadata(&ldir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(ldir.join("diff"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let cache = dir.path().join("overlay2").join(&layer.cache_id);
    assert!(cache.join("committed").exists());
    assert_eq!(std::fs::read(cache.join("diff/etc/a")).unwrap(), b"123456");
    assert_eq!(read_all(&store, &layer.chain_id), tar);
    store.verify(&layer.chain_id).unwrap();
    assert_eq!(store.get(&layer.chain_id).unwrap(), layer);
    assert_eq!(store.list().unwrap(), vec![layer.clone()]);
    assert!(names(&dir.path().join("image/overlay2/layerdb/tmp")).is_empty());
}

#[test]
fn gzip_layer_with_trailing_bytes_keeps_them_in_the_diff_id() {
    require_root!();
    let (_dir, store) = store();
    let mut tar = tar_of(&[("x", b"hello")]);
    tar.extend_from_slice(&[0u8; 4096]);
    tar.extend_from_slice(b"trailing junk");
    let layer = store.register(&gzip(&tar)[..], None, None).unwrap();
    assert_eq!(layer.diff_id, diff_id(&tar));
    assert_eq!(read_all(&store, &layer.chain_id), tar);
}

#[test]
fn child_layer_records_its_parent_and_chain() {
    require_root!();
    let (dir, store) = store();
    let base_tar = tar_of(&[("a", b"1"), ("d/", b"")]);
    let top_tar = tar_of(&[("d/b", b"22"), (".wh.a", b"")]);
    let base = store.register(&base_tar[..], None, None).unwrap();
    let top = store
        .register(&top_tar[..], Some(&base.chain_id), None)
        .unwrap();
    assert_eq!(top.parent, Some(base.chain_id));
    assert_eq!(
        top.chain_id,
        chain_id(&[base.diff_id, top.diff_id]).unwrap()
    );
    let ldir = dir
        .path()
        .join("image/overlay2/layerdb/sha256")
        .join(top.chain_id.hex());
    assert_eq!(
        std::fs::read(ldir.join("parent")).unwrap(),
        base.chain_id.to_string().as_bytes()
    );
    let chain = store.chain(&top.chain_id).unwrap();
    assert_eq!(chain, vec![base.clone(), top.clone()]);
    assert_eq!(
        store.chain_size(&top.chain_id).unwrap(),
        base.size + top.size
    );
    assert_eq!(read_all(&store, &top.chain_id), top_tar);
    let merged = store.mount_chain(&top.chain_id).unwrap();
    assert_eq!(std::fs::read(merged.join("d/b")).unwrap(), b"22");
    assert!(!merged.join("a").exists(), "whiteout hides a");
    store.unmount_chain(&top.chain_id).unwrap();
    // The base is held by its child: releasing the base's own reference keeps it.
    store.release(&base.chain_id).unwrap();
    assert!(store.get(&base.chain_id).is_ok());
    store.release(&top.chain_id).unwrap();
    assert!(matches!(
        store.get(&top.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert!(matches!(
        store.get(&base.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert_no_cache_dirs(dir.path());
}

#[test]
fn same_layer_twice_is_one_layer_with_two_references() {
    require_root!();
    let (dir, store) = store();
    let tar = tar_of(&[("f", b"same")]);
    let a = store.register(&tar[..], None, None).unwrap();
    let b = store.register(&gzip(&tar)[..], None, None).unwrap();
    assert_eq!(a, b);
    assert_eq!(store.references(&a.chain_id).unwrap(), Some(2));
    assert_eq!(cache_dirs(dir.path()), vec![a.cache_id.clone()]);
    store.acquire(&a.chain_id).unwrap();
    store.release(&a.chain_id).unwrap();
    store.release(&a.chain_id).unwrap();
    assert!(store.get(&a.chain_id).is_ok());
    store.release(&a.chain_id).unwrap();
    assert!(matches!(
        store.get(&a.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert!(matches!(
        store.release(&a.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert_no_cache_dirs(dir.path());
}

#[test]
fn diff_id_mismatch_registers_nothing() {
    require_root!();
    let (dir, store) = store();
    let tar = tar_of(&[("f", b"x")]);
    let wrong = diff_id(b"other");
    let err = store.register(&tar[..], None, Some(&wrong)).unwrap_err();
    assert!(
        matches!(err, Error::DiffIdMismatch { expected, actual } if expected == wrong && actual == diff_id(&tar))
    );
    assert_nothing_registered(&dir, &store);
}

#[test]
fn truncated_or_corrupt_streams_register_nothing() {
    require_root!();
    let (dir, store) = store();
    let tar = tar_of(&[("f", &[5u8; 3000][..]), ("g", b"y")]);
    let gz = gzip(&tar);
    let mut flipped = gz.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tar cut in content", tar[..1000].to_vec()),
        ("tar cut in header", tar[..100].to_vec()),
        ("gzip cut", gz[..gz.len() / 2].to_vec()),
        ("gzip corrupt", flipped),
        ("bad checksum", {
            let mut t = tar.clone();
            t[10] ^= 1;
            t
        }),
        ("duplicate path", tar_of(&[("f", b"1"), ("f", b"2")])),
        ("xz", b"\xfd7zXZ\0rest".to_vec()),
    ];
    for (what, bytes) in cases {
        let err = store.register(&bytes[..], None, None);
        assert!(err.is_err(), "{what} was accepted");
        if what == "duplicate path" {
            assert!(
                matches!(err, Err(Error::DuplicatePath(_))),
                "{what}: {err:?}"
            );
        }
        assert_nothing_registered(&dir, &store);
    }
}

#[test]
fn unknown_parent_is_an_error() {
    require_root!();
    let (dir, store) = store();
    let ghost = chain_id(&[diff_id(b"ghost")]).unwrap();
    let err = store
        .register(&tar_of(&[("a", b"1")])[..], Some(&ghost), None)
        .unwrap_err();
    assert!(matches!(err, Error::LayerNotFound(c) if c == ghost));
    assert_nothing_registered(&dir, &store);
}

#[test]
fn tampered_layerdb_gives_typed_errors() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    let sha = dir.path().join("image/overlay2/layerdb/sha256");
    let tdir = sha.join(top.chain_id.hex());
    let corrupt =
        |store: &LayerStore| matches!(store.get(&top.chain_id), Err(Error::Corrupt { .. }));

    std::fs::write(tdir.join("diff"), "sha256:nothex").unwrap();
    assert!(corrupt(&store));
    std::fs::write(tdir.join("diff"), top.diff_id.to_string()).unwrap();
    assert!(store.get(&top.chain_id).is_ok());

    std::fs::rename(tdir.join("cache-id"), dir.path().join("cache-id.bak")).unwrap();
    assert!(corrupt(&store));
    std::fs::rename(dir.path().join("cache-id.bak"), tdir.join("cache-id")).unwrap();

    std::fs::write(tdir.join("cache-id"), "../../etc").unwrap();
    assert!(corrupt(&store));
    std::fs::write(tdir.join("cache-id"), &top.cache_id).unwrap();

    std::fs::write(tdir.join("size"), "ten").unwrap();
    assert!(corrupt(&store));
    std::fs::write(tdir.join("size"), top.size.to_string()).unwrap();

    // A parent that does not exist (the chainID no longer matches either).
    let ghost = chain_id(&[diff_id(b"ghost")]).unwrap();
    std::fs::write(tdir.join("parent"), ghost.to_string()).unwrap();
    assert!(corrupt(&store));
    assert!(store.list().is_err());
    assert!(store.tar_stream(&top.chain_id).is_err());
    std::fs::write(tdir.join("parent"), base.chain_id.to_string()).unwrap();

    // A parent directory removed behind the store's back.
    std::fs::rename(sha.join(base.chain_id.hex()), dir.path().join("moved")).unwrap();
    assert!(
        matches!(store.get(&top.chain_id), Err(Error::Corrupt { why, .. }) if why.contains("does not exist"))
    );
    std::fs::rename(dir.path().join("moved"), sha.join(base.chain_id.hex())).unwrap();

    // Content changed in the diff directory: reassembly refuses it.
    std::fs::write(
        dir.path()
            .join("overlay2")
            .join(&top.cache_id)
            .join("diff/b"),
        "3",
    )
    .unwrap();
    assert!(matches!(
        store.verify(&top.chain_id),
        Err(Error::TarSplit { .. })
    ));
    // A garbage tar-split.
    std::fs::write(tdir.join("tar-split.json.gz"), gzip(b"{\"type\":9}\n")).unwrap();
    assert!(matches!(
        store.verify(&top.chain_id),
        Err(Error::TarSplit { .. })
    ));
}

#[test]
fn open_cleans_removing_dirs_and_abandoned_write_sets() {
    require_root!();
    let (dir, store) = store();
    let layer = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let db = dir.path().join("image/overlay2/layerdb");
    // A deletion interrupted after its first step.
    let removing = db
        .join("sha256")
        .join(format!("{}-abc-removing", layer.chain_id.hex()));
    std::fs::rename(db.join("sha256").join(layer.chain_id.hex()), &removing).unwrap();
    // A registration interrupted with its driver directory made.
    let ws = db.join("tmp/write-set-dead");
    std::fs::create_dir(&ws).unwrap();
    let orphan = "f".repeat(64);
    std::fs::write(ws.join("cache-id"), &orphan).unwrap();
    store.driver().create(&orphan, None).unwrap();
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(!removing.exists());
    assert!(!ws.exists());
    assert_no_cache_dirs(dir.path());
    assert!(store.list().unwrap().is_empty());
    assert!(names(&db.join("dunnage/refs")).is_empty());
}

#[test]
fn container_layer_has_dockers_init_layer_and_diff() {
    require_root!();
    let (dir, store) = store();
    let image = store
        .register(
            &tar_of(&[("etc/", b""), ("etc/os", b"dunnage"), ("old", b"o")])[..],
            None,
            None,
        )
        .unwrap();
    let rw = store
        .create_rw("c1", Some(&image.chain_id), Some(&InitLayer::default()))
        .unwrap();
    assert_eq!(
        rw.init_id.as_deref(),
        Some(format!("{}-init", rw.mount_id).as_str())
    );
    let mdir = dir.path().join("image/overlay2/layerdb/mounts/c1");
    assert_eq!(names(&mdir), ["init-id", "mount-id", "parent"]);
    assert_eq!(
        std::fs::read(mdir.join("parent")).unwrap(),
        image.chain_id.to_string().as_bytes()
    );
    assert_eq!(
        std::fs::read(mdir.join("mount-id")).unwrap(),
        rw.mount_id.as_bytes()
    );
    let init = dir
        .path()
        .join("overlay2")
        .join(rw.init_id.as_ref().unwrap())
        .join("diff");
    assert_eq!(names(&init), [".dockerenv", "dev", "etc", "proc", "sys"]);
    assert_eq!(
        std::fs::read_link(init.join("etc/mtab")).unwrap().to_str(),
        Some("/proc/mounts")
    );
    assert_eq!(
        std::fs::metadata(init.join("etc/hosts"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert!(matches!(
        store.create_rw("c1", None, None),
        Err(Error::MountExists(_))
    ));
    assert!(matches!(
        store.create_rw("../x", None, None),
        Err(Error::InvalidContainerId(_))
    ));
    assert_eq!(store.get_rw("c1").unwrap(), rw);
    assert_eq!(store.list_rw().unwrap(), vec![rw.clone()]);

    let merged = store.mount_rw("c1").unwrap();
    assert_eq!(std::fs::read(merged.join("etc/os")).unwrap(), b"dunnage");
    assert!(merged.join(".dockerenv").exists());
    std::fs::write(merged.join("new"), b"n").unwrap();
    std::fs::remove_file(merged.join("old")).unwrap();
    store.unmount_rw("c1").unwrap();
    let changes: Vec<String> = store
        .rw_changes("c1")
        .unwrap()
        .iter()
        .map(|c| format!("{:?} {}", c.kind, c.path.display()))
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("Added") && c.ends_with("new")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("Deleted") && c.ends_with("old")),
        "{changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.contains("dockerenv")),
        "init layer excluded: {changes:?}"
    );
    let diff = store.rw_diff("c1", Vec::new()).unwrap();
    let mut names_in_diff = Vec::new();
    for e in tar::Archive::new(&diff[..]).entries().unwrap() {
        names_in_diff.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(
        names_in_diff.iter().any(|n| n.ends_with("new")),
        "{names_in_diff:?}"
    );
    assert!(
        names_in_diff.iter().any(|n| n.ends_with(".wh.old")),
        "{names_in_diff:?}"
    );
    assert!(
        !names_in_diff.iter().any(|n| n.contains("dockerenv")),
        "{names_in_diff:?}"
    );

    // The container holds its image: releasing the image's reference keeps it
    // until the container layer goes.
    store.release(&image.chain_id).unwrap();
    assert!(store.get(&image.chain_id).is_ok());
    store.remove_rw("c1").unwrap();
    assert!(matches!(store.get_rw("c1"), Err(Error::MountNotFound(_))));
    assert!(matches!(
        store.get(&image.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert_no_cache_dirs(dir.path());
}

fn removing_dirs(dir: &TempDir) -> Vec<String> {
    names(&dir.path().join("image/overlay2/layerdb/sha256"))
        .into_iter()
        .filter(|n| n.ends_with("-removing"))
        .collect()
}

#[test]
fn releasing_a_mounted_layer_keeps_it_until_the_last_unmount() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    // An overlay mount for the top, the bare diff directory for the base.
    let merged = store.mount_chain(&top.chain_id).unwrap();
    let base_view = store.mount_chain(&base.chain_id).unwrap();
    store.release(&top.chain_id).unwrap();
    store.release(&base.chain_id).unwrap();
    // Nothing of the removal began: no -removing directory, the counts kept.
    assert!(removing_dirs(&dir).is_empty());
    assert_eq!(store.references(&top.chain_id).unwrap(), Some(0));
    assert_eq!(std::fs::read(merged.join("a")).unwrap(), b"1");
    assert_eq!(std::fs::read(merged.join("b")).unwrap(), b"2");
    assert_eq!(std::fs::read(base_view.join("a")).unwrap(), b"1");
    // Another open (as another process would) neither removes nor breaks
    // them, and its own release of a new reference keeps them too: the mount
    // lock is seen across open file descriptions.
    let other = LayerStore::open(dir.path()).unwrap();
    assert_eq!(other.list().unwrap().len(), 2);
    other.verify(&top.chain_id).unwrap();
    other.acquire(&top.chain_id).unwrap();
    other.release(&top.chain_id).unwrap();
    assert!(other.get(&top.chain_id).is_ok());
    assert!(removing_dirs(&dir).is_empty());
    assert!(matches!(
        other.release(&top.chain_id),
        Err(Error::NotReferenced(_))
    ));
    drop(other);
    // The last unmount of the top removes it; the base is still mounted.
    store.unmount_chain(&top.chain_id).unwrap();
    assert!(matches!(
        store.get(&top.chain_id),
        Err(Error::LayerNotFound(_))
    ));
    assert_eq!(std::fs::read(base_view.join("a")).unwrap(), b"1");
    store.unmount_chain(&base.chain_id).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(removing_dirs(&dir).is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn open_removes_layers_left_unreferenced() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    store.release(&base.chain_id).unwrap(); // kept: the top sits on it
    // As if a process died after removing the top and before the base.
    let sha = dir.path().join("image/overlay2/layerdb/sha256");
    std::fs::rename(
        sha.join(top.chain_id.hex()),
        sha.join(format!("{}-x-removing", top.chain_id.hex())),
    )
    .unwrap();
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(removing_dirs(&dir).is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn container_diff_with_redirects_and_metacopy_compares_with_the_lowers() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = store();
    let image = store
        .register(
            &tar_of(&[
                ("etc/", b""),
                ("etc/os", &[7u8; 10_000][..]),
                ("olddir/", b""),
                ("olddir/sub/", b""),
                ("olddir/sub/f", b"inside"),
            ])[..],
            None,
            None,
        )
        .unwrap();
    let rw = store
        .create_rw(
            "c-redirect",
            Some(&image.chain_id),
            Some(&InitLayer::default()),
        )
        .unwrap();
    // Mount the container's layers the way a runtime with redirect_dir and
    // metacopy would (the driver mounts without them).
    let driver = store.driver();
    let view = dir.path().join("view");
    std::fs::create_dir(&view).unwrap();
    let mut m = dunnage_overlay::Mount::new(&view).upper(
        driver.diff_dir(&rw.mount_id),
        driver.home().join(&rw.mount_id).join("work"),
    );
    m.lowers = driver.lower_dirs(&rw.mount_id).unwrap();
    m.options = dunnage_overlay::MountOptions::parse("redirect_dir=on,metacopy=on").unwrap();
    m.mount().unwrap();
    let guard = dunnage_testsupport::MountGuard::new(&view);
    std::fs::rename(view.join("olddir"), view.join("newdir")).unwrap();
    std::fs::set_permissions(view.join("etc/os"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(view.join("added"), b"a").unwrap();
    dunnage_overlay::unmount(&view).unwrap();
    drop(guard);
    let upper = driver.diff_dir(&rw.mount_id);
    let mut redirect = [0u8; 256];
    let c_path =
        std::ffi::CString::new(upper.join("newdir").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: valid C string and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c"trusted.overlay.redirect".as_ptr(),
            redirect.as_mut_ptr().cast(),
            redirect.len(),
        )
    };
    assert!(
        n > 0,
        "the rename left a redirect mark in the upper directory"
    );
    assert_eq!(
        std::fs::metadata(upper.join("etc/os")).unwrap().len(),
        10_000,
        "apparent size of a metacopy file"
    );

    let diff = store.rw_diff("c-redirect", Vec::new()).unwrap();
    let mut entries = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&diff[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.insert(name, (e.header().mode().unwrap() & 0o777, data));
    }
    let names: Vec<&String> = entries.keys().collect();
    assert!(entries.contains_key(".wh.olddir"), "{names:?}");
    assert_eq!(entries["newdir/sub/f"].1, b"inside", "{names:?}");
    assert_eq!(entries["etc/os"], (0o600, vec![7u8; 10_000]), "{names:?}");
    assert_eq!(entries["added"].1, b"a");
    assert!(
        !names
            .iter()
            .any(|n| n.contains("dockerenv") || n.starts_with("proc")),
        "init layer excluded: {names:?}"
    );
    store.remove_rw("c-redirect").unwrap();
}

/// Register a chain of `n` layers and release all but the top, as an image
/// load does; returns the chainIDs, base first.
fn released_chain(store: &LayerStore, n: usize) -> Vec<ChainId> {
    let mut chains: Vec<ChainId> = Vec::new();
    for i in 0..n {
        let name = format!("f{i}");
        let tar = tar_of(&[(name.as_str(), b"x")]);
        let layer = store.register(&tar[..], chains.last(), None).unwrap();
        chains.push(layer.chain_id);
    }
    for c in &chains[..n - 1] {
        store.release(c).unwrap();
    }
    chains
}

#[test]
fn open_keeps_released_parents_of_a_long_chain() {
    require_root!();
    let (dir, store) = store();
    let chains = released_chain(&store, 300);
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 300);
    assert_eq!(store.chain(chains.last().unwrap()).unwrap().len(), 300);
    for c in &chains[..299] {
        assert_eq!(store.references(c).unwrap(), Some(0));
    }
    // Releasing the top removes the whole chain.
    store.release(chains.last().unwrap()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn unreadable_parent_file_does_not_stop_open() {
    require_root!();
    let (dir, store) = store();
    let chains = released_chain(&store, 3);
    let other = store
        .register(&tar_of(&[("o", b"1")])[..], None, None)
        .unwrap();
    let child = store
        .register(&tar_of(&[("p", b"2")])[..], Some(&other.chain_id), None)
        .unwrap();
    drop(store);
    let parent = dir
        .path()
        .join("image/overlay2/layerdb/sha256")
        .join(child.chain_id.hex())
        .join("parent");
    std::fs::write(&parent, b"\xff\xfe not UTF-8").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    // Nothing was collected: which layer the bad file protects is unknown.
    assert_eq!(store.chain(&chains[2]).unwrap().len(), 3);
    assert!(store.get(&other.chain_id).is_ok());
    assert!(matches!(
        store.get(&child.chain_id),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn layer_held_by_a_driver_get_is_kept_and_open_still_works() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    // A `get` straight from the driver, not through mount_chain.
    store.driver().get(&top.cache_id).unwrap();
    store.release(&base.chain_id).unwrap();
    store.release(&top.chain_id).unwrap();
    assert!(removing_dirs(&dir).is_empty());
    assert_eq!(store.list().unwrap().len(), 2);
    let other = LayerStore::open(dir.path()).unwrap();
    assert_eq!(other.list().unwrap().len(), 2);
    drop(other);
    store.driver().put(&top.cache_id).unwrap();
    drop(store);
    let store = LayerStore::open(dir.path()).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn open_skips_a_removing_leftover_still_held() {
    require_root!();
    let (dir, store) = store();
    let layer = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    store.driver().get(&layer.cache_id).unwrap();
    // As if a removal had renamed the layer and then met the held `get`.
    let sha = dir.path().join("image/overlay2/layerdb/sha256");
    std::fs::rename(
        sha.join(layer.chain_id.hex()),
        sha.join(format!("{}-x-removing", layer.chain_id.hex())),
    )
    .unwrap();
    let other = LayerStore::open(dir.path()).unwrap();
    assert_eq!(removing_dirs(&dir).len(), 1);
    drop(other);
    store.driver().put(&layer.cache_id).unwrap();
    drop(store);
    let _store = LayerStore::open(dir.path()).unwrap();
    assert!(removing_dirs(&dir).is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn failed_unmount_keeps_the_chain_mounted_and_counted() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    let merged = store.mount_chain(&top.chain_id).unwrap();
    // A tmpfs stacked on the overlay: put detaches it, then rmdir fails.
    let guard = dunnage_testsupport::MountGuard::new(&merged);
    let ok = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "dunnage-test-stack",
            merged.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(store.unmount_chain(&top.chain_id).is_err());
    assert!(store.driver().is_busy(&top.cache_id).unwrap());
    store.release(&top.chain_id).unwrap();
    store.release(&base.chain_id).unwrap();
    assert_eq!(store.list().unwrap().len(), 2, "still mounted: kept");
    store.unmount_chain(&top.chain_id).unwrap();
    drop(guard);
    assert!(!store.driver().is_busy(&top.cache_id).unwrap());
    assert!(store.list().unwrap().is_empty());
    assert_no_cache_dirs(dir.path());
}

#[test]
fn removed_layers_and_containers_leave_no_lock_files() {
    require_root!();
    let (dir, store) = store();
    let base = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let top = store
        .register(&tar_of(&[("b", b"2")])[..], Some(&base.chain_id), None)
        .unwrap();
    store.acquire(&top.chain_id).unwrap();
    store.mount_chain(&top.chain_id).unwrap();
    store.unmount_chain(&top.chain_id).unwrap();
    store
        .create_rw("dunnage-test-locks", Some(&top.chain_id), None)
        .unwrap();
    let locks = dir.path().join("image/overlay2/layerdb/dunnage/locks");
    assert!(!names(&locks).is_empty());
    store.release(&base.chain_id).unwrap();
    store.release(&top.chain_id).unwrap();
    store.release(&top.chain_id).unwrap();
    store.remove_rw("dunnage-test-locks").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(names(&locks).is_empty(), "{:?}", names(&locks));
}

#[test]
fn plain_container_diff_does_not_read_the_lowers() {
    require_root!();
    let (dir, store) = store();
    let image = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    let rw = store
        .create_rw("dunnage-test-lazy", Some(&image.chain_id), None)
        .unwrap();
    std::fs::write(store.driver().diff_dir(&rw.mount_id).join("new"), b"n").unwrap();
    // Break the container's short link to the image layer.
    let link = std::fs::read_to_string(
        dir.path()
            .join("overlay2")
            .join(&image.cache_id)
            .join("link"),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("overlay2/l").join(link.trim())).unwrap();
    assert!(store.driver().lower_dirs(&rw.mount_id).is_err());
    let tar = store.rw_diff("dunnage-test-lazy", Vec::new()).unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["new"]);
}

#[test]
fn open_deletes_reference_files_that_are_not_chain_ids() {
    require_root!();
    let (dir, store) = store();
    let layer = store
        .register(&tar_of(&[("a", b"1")])[..], None, None)
        .unwrap();
    drop(store);
    let refs = dir.path().join("image/overlay2/layerdb/dunnage/refs");
    // What an interrupted write of older versions left.
    let tmp = refs.join(format!("{}.tmp-0123456789abcdef", layer.chain_id.hex()));
    std::fs::write(&tmp, b"2").unwrap();
    let store = LayerStore::open(dir.path()).unwrap();
    assert_eq!(names(&refs), [layer.chain_id.hex()]);
    assert_eq!(store.references(&layer.chain_id).unwrap(), Some(1));
}
