//! `remove` and `prune` of an image in use by a container layer or a
//! mount: refused as dockerd refuses, checked against a private dockerd's
//! answers on the same image and container IDs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{docker_archive, layer_tar, run};
use dunnage_image::{Error, ImageStore, ImageUser, LoadOptions, Removed};
use dunnage_layerstore::InitLayer;
use dunnage_testsupport::{Dockerd, MountGuard, TempDir, require_command, require_root};

/// A store with a two-layer image tagged `inuse:1`; returns it and the ID.
fn store_with_image(dir: &TempDir) -> (ImageStore, dunnage_image::ImageId) {
    let l0 = layer_tar(&[("a.txt", b"hello")]);
    let l1 = layer_tar(&[("b.txt", b"world")]);
    let (tar, _) = docker_archive(&[l0, l1], "inuse:1");
    let archive = dir.join("inuse.tar");
    std::fs::write(&archive, tar).unwrap();
    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&archive, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    (store, id)
}

#[test]
fn a_container_keeps_its_image_as_docker_does() {
    require_root!();
    let dir = TempDir::new("image-inuse-container").unwrap();
    let (store, id) = store_with_image(&dir);
    let top = store.config(&id).unwrap().chain_id().unwrap();
    let c = "0123456789abcdef".repeat(4);
    store
        .layers()
        .create_rw(&c, Some(&top), Some(&InitLayer::default()))
        .unwrap();
    let stopped = ImageUser::Container {
        id: c.clone(),
        running: false,
    };
    assert_eq!(store.users(&id).unwrap(), vec![stopped.clone()]);

    // The only reference stays without force.
    let err = store.remove("inuse:1", false).unwrap_err();
    assert!(matches!(err, Error::ReferenceInUse { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"inuse:1\" (must force) - container 0123456789ab is using its referenced image {}",
            &id.hex()[..12]
        )
    );
    // By ID: a soft conflict.
    let err = store.remove(&id.hex(), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container 0123456789ab",
            &id.hex()[..12]
        )
    );
    assert!(store.prune().unwrap().is_empty());

    // Running (its layer mounted): even force keeps the image, and a
    // forced rmi of the reference only untags.
    store.layers().mount_rw(&c).unwrap();
    let err = store.remove(&id.hex(), true).unwrap_err();
    assert!(err.to_string().ends_with(&format!(
        "{} (cannot be forced) - image is being used by running container 0123456789ab",
        &id.hex()[..12]
    )));
    let done = store.remove("inuse:1", true).unwrap();
    assert_eq!(done.len(), 1);
    assert!(matches!(done[0], Removed::Untagged(_)));
    assert!(store.config(&id).is_ok());
    assert!(
        store.prune().unwrap().is_empty(),
        "prune deleted a used image"
    );
    store.layers().unmount_rw(&c).unwrap();

    // Stopped again: force deletes the image, the container keeps the layers.
    assert_eq!(
        store.remove(&id.hex(), true).unwrap(),
        vec![Removed::Deleted(id.clone())]
    );
    assert_eq!(store.layers().chain(&top).unwrap().len(), 2);
    store.layers().remove_rw(&c).unwrap();
    assert!(store.layers().list().unwrap().is_empty());
}

#[test]
fn a_mounted_image_is_not_deleted_and_prune_skips_it() {
    require_root!();
    let dir = TempDir::new("image-inuse-mount").unwrap();
    let (store, id) = store_with_image(&dir);
    let target = dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    store.mount(&id, &target).unwrap();
    let _guard = MountGuard::new(&target);
    let user = ImageUser::Mount {
        target: std::fs::canonicalize(&target).unwrap(),
    };
    assert_eq!(store.users(&id).unwrap(), vec![user]);
    assert!(matches!(
        store.remove("inuse:1", false),
        Err(Error::ReferenceInUse { .. })
    ));
    assert!(matches!(
        store.remove(&id.hex(), true),
        Err(Error::ImageUsed { .. })
    ));
    // Forced: untagged, kept, still mounted; prune keeps it too.
    assert_eq!(store.remove("inuse:1", true).unwrap().len(), 1);
    assert!(store.prune().unwrap().is_empty());
    assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"hello");
    store.unmount(&target).unwrap();
    assert_eq!(store.prune().unwrap(), vec![id]);
    assert!(store.layers().list().unwrap().is_empty());
}

/// Docker's error line for a failed command (`Error response from daemon: `
/// stripped).
fn docker_error(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    err.trim()
        .strip_prefix("Error response from daemon: ")
        .unwrap_or_else(|| panic!("{err}"))
        .to_string()
}

#[test]
fn conflicts_read_like_a_private_dockerds() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("image-inuse-docker").unwrap();
    let rootfs = common::busybox_rootfs(dir.path());
    let d = Dockerd::start("inuse").unwrap();
    let image = "dunnage-test/inuse:1";
    run(d
        .docker()
        .args(["import", "-c", "CMD [\"sh\"]"])
        .arg(&rootfs)
        .arg(image));
    let id = run(d
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", image]))
    .trim()
    .to_string();
    let container = run(d.docker().args(["create", image, "true"]))
        .trim()
        .to_string();
    let saved = dir.join("saved.tar");
    run(d.docker().args(["save", "-o"]).arg(&saved).arg(image));
    let by_ref = docker_error(d.docker().args(["rmi", image]));
    let by_id = docker_error(d.docker().args(["rmi", &id]));
    let forced = run(d.docker().args(["rmi", "-f", image]));
    drop(d);

    let store = ImageStore::open(&dir.join("root")).unwrap();
    let ours = store.load(&saved, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(ours.to_string(), id);
    let top = store.config(&ours).unwrap().chain_id().unwrap();
    store
        .layers()
        .create_rw(&container, Some(&top), None)
        .unwrap();
    assert_eq!(store.remove(image, false).unwrap_err().to_string(), by_ref);
    assert_eq!(store.remove(&id, false).unwrap_err().to_string(), by_id);
    // docker rmi -f with a stopped container: untagged and deleted.
    let printed: Vec<String> = store
        .remove(image, true)
        .unwrap()
        .iter()
        .map(|r| match r {
            Removed::Untagged(r) => format!("Untagged: {}", r.familiar()),
            Removed::Deleted(id) => format!("Deleted: {id}"),
        })
        .collect();
    assert_eq!(printed.join("\n"), forced.trim());
    assert_eq!(store.layers().chain(&top).unwrap().len(), 1);
    store.layers().remove_rw(&container).unwrap();
}
