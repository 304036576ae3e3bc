//! Pulls of several layers streamed and staged at once, from a registry
//! the tests run on 127.0.0.1: the layers of `load` byte for byte, and a
//! bad layer anywhere in the chain (wrong bytes that still make a valid
//! tar or gzip, a cut that cannot be resumed) leaves the store exactly as
//! it was, the other layers' staged copies removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod regsupport;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use dunnage_image::registry::{PullEvent, PullOptions, PullStatus, RegistryConfig};
use dunnage_image::{Error, ImageStore, Reference};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, require_root};
use regsupport::http::{Req, Server, respond};

/// Layers are gzip (stored blocks, so a flipped byte of a file stays a
/// flipped byte of the blob) or plain tar.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Gzip,
    Plain,
}

struct Image {
    tars: Vec<Vec<u8>>,
    blobs: Vec<Vec<u8>>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

fn image(kind: Kind) -> Image {
    let tars: Vec<Vec<u8>> = (0..4u8)
        .map(|i| {
            let big = vec![b'a' + i; 300 << 10];
            common::layer_tar(&[
                (&format!("l{i}/big"), &big),
                (&format!("l{i}/small"), &[i; 100]),
                ("shared", &[i; 10]),
            ])
        })
        .collect();
    let blobs: Vec<Vec<u8>> = tars
        .iter()
        .map(|t| match kind {
            Kind::Plain => t.clone(),
            Kind::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
                gz.write_all(t).unwrap();
                gz.finish().unwrap()
            }
        })
        .collect();
    let diff_ids: Vec<_> = tars.iter().map(|t| common::diff_id(t)).collect();
    let config = common::config_for(&diff_ids);
    let media = match kind {
        Kind::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Kind::Plain => "application/vnd.docker.image.rootfs.diff.tar",
    };
    let layers: Vec<String> = blobs
        .iter()
        .map(|b| {
            format!(
                r#"{{"mediaType":"{media}","size":{},"digest":"{}"}}"#,
                b.len(),
                Digest::sha256_of(b)
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{}]}}"#,
        config.len(),
        Digest::sha256_of(&config),
        layers.join(",")
    )
    .into_bytes();
    Image {
        tars,
        blobs,
        config,
        manifest,
    }
}

/// Serve `img`; `twist` may answer a layer blob request (by index) first.
fn serve(
    img: Arc<Image>,
    twist: impl Fn(usize, &Req, &mut TcpStream, &Image) -> bool + Send + Sync + 'static,
) -> Server {
    let by_digest: HashMap<String, usize> = img
        .blobs
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("/blobs/{}", Digest::sha256_of(b)), i))
        .collect();
    Server::start(move |req, conn, _| {
        let mt = "application/vnd.docker.distribution.manifest.v2+json";
        if req.path == "/v2/" {
            respond(conn, "200 OK", &[], b"{}");
        } else if req.path.contains("/manifests/") {
            respond(conn, "200 OK", &[("Content-Type", mt)], &img.manifest);
        } else if req
            .path
            .ends_with(&format!("/blobs/{}", Digest::sha256_of(&img.config)))
        {
            respond(conn, "200 OK", &[], &img.config);
        } else if let Some(&i) = by_digest
            .iter()
            .find(|(k, _)| req.path.ends_with(k.as_str()))
            .map(|(_, i)| i)
        {
            if !twist(i, req, conn, &img) {
                respond(conn, "200 OK", &[], &img.blobs[i]);
            }
        } else {
            respond(conn, "404 Not Found", &[], b"{}");
        }
    })
}

fn opts<'a>() -> PullOptions<'a> {
    PullOptions {
        registry: RegistryConfig {
            auth_file: None,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            min_rate: 1 << 20,
            ..RegistryConfig::default()
        },
        ..PullOptions::default()
    }
}

/// Every regular file below the store's layerdb but `cache-id`, with its
/// bytes (the cache IDs are random).
fn layerdb(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let base = root.join("image/overlay2/layerdb/sha256");
    let mut out = Vec::new();
    for layer in std::fs::read_dir(&base).unwrap().flatten() {
        for f in std::fs::read_dir(layer.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name == "cache-id" || name.ends_with(".lock") {
                continue;
            }
            out.push((
                format!("{}/{name}", layer.file_name().to_string_lossy()),
                std::fs::read(f.path()).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn four_layers_streamed_at_once_match_a_load_of_the_same_image() {
    require_root!();
    for kind in [Kind::Gzip, Kind::Plain] {
        let img = Arc::new(image(kind));
        let server = serve(img.clone(), |_, _, _, _| false);
        let dir = TempDir::new("stream-ok").unwrap();
        let store = ImageStore::open(&dir.join("pulled")).unwrap();
        let r = Reference::parse(&format!("{}/stream/ok:1", server.addr)).unwrap();
        let mut events: Vec<PullEvent> = Vec::new();
        let mut on = |e: &PullEvent| events.push(e.clone());
        let pulled = store
            .pull(
                &r,
                PullOptions {
                    events: Some(&mut on),
                    ..opts()
                },
            )
            .unwrap();
        assert_eq!(pulled.downloaded, 4);
        // Committed base first, each once, after its blob was whole.
        let complete: Vec<usize> = events
            .iter()
            .filter(|e| e.status == PullStatus::PullComplete)
            .map(|e| e.layer)
            .collect();
        assert_eq!(complete, vec![0, 1, 2, 3]);
        for l in 0..4 {
            let at = |s: PullStatus| events.iter().position(|e| e.layer == l && e.status == s);
            assert!(at(PullStatus::DownloadComplete) < at(PullStatus::PullComplete));
        }
        // The same layers as a load of the uncompressed layers.
        let (archive, _) = common::docker_archive(&img.tars, "stream/ok:1");
        std::fs::write(dir.join("a.tar"), archive).unwrap();
        let loaded = ImageStore::open(&dir.join("loaded")).unwrap();
        let id = loaded.load(&dir.join("a.tar"), Default::default()).unwrap()[0]
            .id
            .clone();
        assert_eq!(pulled.id, id);
        assert_eq!(layerdb(store.root()), layerdb(loaded.root()));
        assert!(store.check().unwrap().is_clean());
        // No scratch file is left.
        let left: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// Pull from `server` into a fresh store: the error, after checking the
/// store is exactly as before (no layer, no staged leftover).
fn pull_fails(tag: &str, server: &Server) -> Error {
    let dir = TempDir::new(&format!("stream-{tag}")).unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let before = common::snapshot(store.root());
    let r = Reference::parse(&format!("{}/stream/{tag}:1", server.addr)).unwrap();
    let err = store.pull(&r, opts()).expect_err(tag);
    assert_eq!(
        common::snapshot(store.root()),
        before,
        "{tag}: store changed"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(store.layers().list().unwrap().is_empty());
    // Nothing staged is left in the layerdb's scratch space either.
    let staged: Vec<_> = std::fs::read_dir(store.root().join("image/overlay2/layerdb/tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "{tag}: {staged:?}");
    assert!(store.check().unwrap().is_clean());
    err
}

#[test]
fn a_layer_with_a_flipped_byte_anywhere_in_the_chain_registers_nothing() {
    require_root!();
    for kind in [Kind::Gzip, Kind::Plain] {
        for bad in 0..4 {
            // The flipped byte is inside a file: the tar stays valid, so
            // the stage may well finish before the digest says no.
            let img = Arc::new(image(kind));
            let server = serve(img, move |i, _, conn, img| {
                if i != bad {
                    return false;
                }
                let mut b = img.blobs[i].clone();
                let n = b.len() / 2;
                b[n] ^= 0x01;
                respond(conn, "200 OK", &[], &b);
                true
            });
            let e = pull_fails(&format!("flip{bad}"), &server);
            assert!(
                matches!(e, Error::DigestMismatch { .. }),
                "layer {bad}: {e}"
            );
        }
    }
}

#[test]
fn a_layer_cut_for_good_anywhere_in_the_chain_registers_nothing() {
    require_root!();
    for bad in 0..4 {
        let img = Arc::new(image(Kind::Gzip));
        let server = serve(img, move |i, _, conn, img| {
            if i != bad {
                return false;
            }
            let b = &img.blobs[i];
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&b[..b.len() / 3]);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            true
        });
        let e = pull_fails(&format!("cut{bad}"), &server);
        assert!(matches!(e, Error::Transport { .. }), "layer {bad}: {e}");
    }
}

#[test]
fn a_registry_that_ignores_range_still_resumes_a_cut_stream() {
    require_root!();
    // Each layer's first answer stops halfway; the next ones send the
    // whole blob (200, no Content-Range) whatever the Range asked: the
    // stream skips what it already handed to the stage.
    let img = Arc::new(image(Kind::Gzip));
    let cut = Arc::new(std::sync::Mutex::new(vec![false; 4]));
    let server = serve(img.clone(), move |i, _, conn, img| {
        let mut cut = cut.lock().unwrap();
        if cut[i] {
            return false;
        }
        cut[i] = true;
        let b = &img.blobs[i];
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len());
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&b[..b.len() / 2]);
        let _ = conn.shutdown(std::net::Shutdown::Both);
        true
    });
    let dir = TempDir::new("stream-norange").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let r = Reference::parse(&format!("{}/stream/norange:1", server.addr)).unwrap();
    let pulled = store.pull(&r, opts()).unwrap();
    let (archive, _) = common::docker_archive(&img.tars, "stream/norange:1");
    std::fs::write(dir.join("a.tar"), archive).unwrap();
    let loaded = ImageStore::open(&dir.join("loaded")).unwrap();
    let id = loaded.load(&dir.join("a.tar"), Default::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(pulled.id, id);
    assert_eq!(layerdb(store.root()), layerdb(loaded.root()));
}
