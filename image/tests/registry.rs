//! Pull and push against a real `docker-registry` on 127.0.0.1, with skopeo
//! pushing images for us to pull and a private dockerd pulling the same
//! references (and what we push) for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod regsupport;

use std::path::Path;
use std::process::Command;

use common::run;
use dunnage_image::registry::{PullOptions, PushCompression, PushOptions, RegistryConfig};
use dunnage_image::{Error, ImageStore, LoadOptions, Reference};
use dunnage_layerstore::chain_id;
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};
use regsupport::{Auth, Registry, layerdb, skopeo_copy};

/// No credentials from the machine's own `~/.docker/config.json`.
fn config() -> RegistryConfig {
    RegistryConfig {
        auth_file: None,
        ..RegistryConfig::default()
    }
}

fn pull_opts<'a>() -> PullOptions<'a> {
    PullOptions {
        registry: config(),
        ..PullOptions::default()
    }
}

fn docker_inspect(d: &Dockerd, image: &str, format: &str) -> String {
    run(d.docker().args(["image", "inspect", "-f", format, image]))
        .trim()
        .to_string()
}

/// A multi-layer image built by the dockerd (files added, changed,
/// deleted, an opaque dir, empty steps), saved as a docker-archive.
fn build_and_save(d: &Dockerd, dir: &Path) -> std::path::PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ENV PATH=/bin\n\
         RUN mkdir -p /data/sub && echo one > /data/one && ln -s one /data/link\n\
         RUN rm /data/one && mkdir /opaque && touch /opaque/x\n\
         LABEL test=dunnage\n\
         CMD [\"sh\"]\n",
    )
    .unwrap();
    run(d
        .docker()
        .args([
            "build",
            "--network=none",
            "-q",
            "-t",
            "dunnage-test/multi:1",
        ])
        .arg(&ctx));
    let tar = dir.join("multi.tar");
    run(d
        .docker()
        .args(["save", "-o"])
        .arg(&tar)
        .arg("dunnage-test/multi:1"));
    run(d.docker().args(["rmi", "dunnage-test/multi:1"]));
    tar
}

/// Our pull and the dockerd's pull of `reference` agree: image ID,
/// chainIDs, layerdb bytes, RepoDigest.
fn assert_pulls_alike(store: &ImageStore, d: &Dockerd, reference: &str) {
    let r = Reference::parse(reference).unwrap();
    let pulled = store.pull(&r, pull_opts()).unwrap();
    run(d.docker().args(["pull", "-q", reference]));
    let docker_id = docker_inspect(d, reference, "{{.Id}}");
    assert_eq!(pulled.id.to_string(), docker_id, "{reference}: image ID");
    let digests = docker_inspect(d, reference, "{{json .RepoDigests}}");
    let ours = r.with_digest(&pulled.digest).familiar();
    assert!(
        digests.contains(&ours),
        "{reference}: {digests} lacks {ours}"
    );
    assert_eq!(store.resolve(&ours).unwrap(), pulled.id);
    assert_eq!(store.resolve(reference).unwrap(), pulled.id);
    let config = store.config(&pulled.id).unwrap();
    let diffs = config.diff_ids();
    for n in 1..=diffs.len() {
        let chain = chain_id(&diffs[..n]).unwrap().to_string();
        assert_eq!(
            layerdb(store.root(), &chain),
            layerdb(&d.data_root(), &chain),
            "{reference}: layerdb of {chain}"
        );
    }
}

/// Every file under `image/overlay2/distribution` with its bytes.
fn distribution(root: &Path) -> Vec<(String, Vec<u8>)> {
    let base = root.join("image/overlay2/distribution");
    let mut out = Vec::new();
    for sub in ["diffid-by-digest/sha256", "v2metadata-by-diffid/sha256"] {
        let Ok(rd) = std::fs::read_dir(base.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = format!("{sub}/{}", e.file_name().to_string_lossy());
            out.push((name, std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn skopeo_pushed_images_pull_with_dockers_ids_chain_ids_and_layerdb() {
    require_root!();
    require_command!("dockerd");
    require_command!("skopeo");
    require_command!("docker-registry");
    let dir = TempDir::new("reg-pull").unwrap();
    let reg = Registry::start("pull", Auth::None);
    let d = Dockerd::start("reg-pull").unwrap();
    let tar = build_and_save(&d, dir.path());
    let src = format!("docker-archive:{}", tar.display());
    let base = format!("{}/dunnage/multi", reg.addr);
    skopeo_copy(&src, &format!("docker://{base}:gzip"), &[]);
    skopeo_copy(&src, &format!("docker://{base}:oci"), &["--format", "oci"]);
    skopeo_copy(
        &src,
        &format!("docker://{base}:zstd"),
        &[
            "--format",
            "oci",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
        ],
    );
    let store = ImageStore::open(&dir.join("store")).unwrap();
    for tag in ["gzip", "oci", "zstd"] {
        assert_pulls_alike(&store, &d, &format!("{base}:{tag}"));
        if tag == "gzip" {
            // Which blob each layer came from, from where: dockerd's files.
            assert_eq!(
                distribution(store.root()),
                distribution(&d.data_root()),
                "distribution metadata"
            );
        }
    }
    // Pushed to another repository, every layer is mounted from the one it
    // was pulled from: nothing is compressed or uploaded again.
    let repushed = format!("{}/dunnage/repushed:1", reg.addr);
    store.tag(&format!("{base}:gzip"), &repushed).unwrap();
    let mut lines = Vec::new();
    let mut on = |l: &str| lines.push(l.to_string());
    let p = store
        .push(
            &Reference::parse(&repushed).unwrap(),
            PushOptions {
                registry: config(),
                events: Some(&mut on),
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert_eq!(p.uploaded, 0);
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("Mounted from dunnage/multi")),
        "{lines:?}"
    );
    run(d.docker().args(["pull", "-q", &repushed]));
    assert_eq!(docker_inspect(&d, &repushed, "{{.Id}}"), p.id.to_string());
    // A second pull downloads nothing and keeps the same image.
    let again = store
        .pull(
            &Reference::parse(&format!("{base}:gzip")).unwrap(),
            pull_opts(),
        )
        .unwrap();
    assert_eq!(again.downloaded, 0);
    assert!(!again.new);
    // By digest: the reference names the manifest, no tag is set.
    let by_digest = Reference::parse(&format!("{base}@{}", again.digest)).unwrap();
    let p = store.pull(&by_digest, pull_opts()).unwrap();
    assert_eq!(p.id, again.id);
    assert_eq!(p.references, vec![by_digest]);
}

/// An image with a config claiming `arch`, as a docker-archive.
fn archive_for_arch(dir: &Path, arch: &str) -> std::path::PathBuf {
    let layer = common::layer_tar(&[("arch", arch.as_bytes())]);
    let ids = [common::diff_id(&layer)];
    let config = String::from_utf8(common::config_for(&ids))
        .unwrap()
        .replace("\"amd64\"", &format!("\"{arch}\""));
    let cfg_name = format!(
        "{}.json",
        dunnage_layerstore::Digest::sha256_of(config.as_bytes()).hex()
    );
    let manifest = format!(
        r#"[{{"Config":"{cfg_name}","RepoTags":["x/{arch}:1"],"Layers":["l/layer.tar"]}}]"#
    );
    let tar = common::raw_tar(&[
        ("manifest.json", manifest.as_bytes(), None),
        (&cfg_name, config.as_bytes(), None),
        ("l/layer.tar", &layer, None),
    ]);
    let path = dir.join(format!("{arch}.tar"));
    std::fs::write(&path, tar).unwrap();
    path
}

#[test]
fn a_two_platform_index_pulls_the_hosts_or_the_asked_platform() {
    require_root!();
    require_command!("skopeo");
    require_command!("docker-registry");
    require_command!("curl");
    let dir = TempDir::new("reg-index").unwrap();
    let reg = Registry::start("index", Auth::None);
    let base = format!("{}/dunnage/multiarch", reg.addr);
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let tar = archive_for_arch(dir.path(), arch);
        skopeo_copy(
            &format!("docker-archive:{}", tar.display()),
            &format!("docker://{base}:{arch}"),
            &["--format", "oci"],
        );
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{base}:{arch}"),
        ]));
        let digest = dunnage_layerstore::Digest::sha256_of(raw.as_bytes());
        entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
            raw.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    );
    run(Command::new("curl").args([
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &index,
        &format!("http://{}/v2/dunnage/multiarch/manifests/multi", reg.addr),
    ]));
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let multi = Reference::parse(&format!("{base}:multi")).unwrap();
    let host = store.pull(&multi, pull_opts()).unwrap();
    let amd = store
        .pull(
            &Reference::parse(&format!("{base}:amd64")).unwrap(),
            pull_opts(),
        )
        .unwrap();
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(host.id, amd.id);
    }
    let arm = store
        .pull(
            &multi,
            PullOptions {
                platform: Some("linux/arm64".parse().unwrap()),
                ..pull_opts()
            },
        )
        .unwrap();
    let arm_direct = store
        .pull(
            &Reference::parse(&format!("{base}:arm64")).unwrap(),
            pull_opts(),
        )
        .unwrap();
    assert_eq!(arm.id, arm_direct.id);
    assert_ne!(arm.id, amd.id);
    let none = store.pull(
        &multi,
        PullOptions {
            platform: Some("linux/s390x".parse().unwrap()),
            ..pull_opts()
        },
    );
    assert!(
        matches!(none, Err(Error::NoMatchingPlatform { .. })),
        "{none:?}"
    );
}

#[test]
fn what_we_push_the_dockerd_pulls_and_runs_with_our_image_id() {
    require_root!();
    require_command!("dockerd");
    require_command!("skopeo");
    require_command!("docker-registry");
    let dir = TempDir::new("reg-push").unwrap();
    let reg = Registry::start("push", Auth::None);
    let rootfs = std::fs::read(common::busybox_rootfs(dir.path())).unwrap();
    let extra = common::layer_tar(&[("etc/extra", b"pushed by dunnage\n")]);
    let (archive, _) = common::docker_archive(&[rootfs, extra], "dunnage-test/bb:1");
    std::fs::write(dir.join("bb.tar"), archive).unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let loaded = store
        .load(&dir.join("bb.tar"), LoadOptions::default())
        .unwrap();
    let id = loaded[0].id.clone();
    let target = format!("{}/dunnage/pushed:1", reg.addr);
    store.tag("dunnage-test/bb:1", &target).unwrap();
    let mut lines = Vec::new();
    let mut on = |l: &str| lines.push(l.to_string());
    let pushed = store
        .push(
            &Reference::parse(&target).unwrap(),
            PushOptions {
                registry: config(),
                events: Some(&mut on),
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert_eq!(pushed.id, id);
    assert_eq!(pushed.uploaded, 2);
    assert!(lines.iter().all(|l| l.ends_with(": Pushed")), "{lines:?}");

    let d = Dockerd::start("reg-push").unwrap();
    run(d.docker().args(["pull", "-q", &target]));
    assert_eq!(docker_inspect(&d, &target, "{{.Id}}"), id.to_string());
    let digests = docker_inspect(&d, &target, "{{json .RepoDigests}}");
    assert!(digests.contains(&pushed.digest.to_string()), "{digests}");
    let out = run(d.docker().args([
        "run",
        "--rm",
        "--network=none",
        &target,
        "/bin/cat",
        "/etc/extra",
        "/etc/motd",
    ]));
    assert_eq!(out, "pushed by dunnage\ndunnage\n");

    // Pushed again: every layer is there. To another repository: mounted.
    let mut lines = Vec::new();
    let mut on = |l: &str| lines.push(l.to_string());
    let again = store
        .push(
            &Reference::parse(&target).unwrap(),
            PushOptions {
                registry: config(),
                events: Some(&mut on),
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert_eq!(again.uploaded, 0);
    assert_eq!(again.digest, pushed.digest);
    assert!(
        lines.iter().all(|l| l.ends_with("Layer already exists")),
        "{lines:?}"
    );
    let other = format!("{}/dunnage/other:1", reg.addr);
    store.tag(&target, &other).unwrap();
    let mut lines = Vec::new();
    let mut on = |l: &str| lines.push(l.to_string());
    store
        .push(
            &Reference::parse(&other).unwrap(),
            PushOptions {
                registry: config(),
                events: Some(&mut on),
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("Mounted from dunnage/pushed")),
        "{lines:?}"
    );

    // zstd in an OCI manifest, uploaded in chunks: pulled back into a
    // fresh store with the same ID, and skopeo sees zstd layers.
    let zstd = format!("{}/dunnage/zstd:1", reg.addr);
    store.tag(&target, &zstd).unwrap();
    let z = store
        .push(
            &Reference::parse(&zstd).unwrap(),
            PushOptions {
                registry: config(),
                compression: PushCompression::Zstd,
                chunk_size: Some(100_000),
                mount_from: vec!["nonexistent/repo".into()],
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert_eq!(z.uploaded, 2);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{zstd}"),
    ]));
    assert!(raw.contains("tar+zstd"), "{raw}");
    let fresh = ImageStore::open(&dir.join("fresh")).unwrap();
    let p = fresh
        .pull(&Reference::parse(&zstd).unwrap(), pull_opts())
        .unwrap();
    assert_eq!(p.id, id);
    assert_eq!(p.digest, z.digest);
}
