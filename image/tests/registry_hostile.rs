//! A hostile registry the tests run themselves on 127.0.0.1: wrong digests,
//! truncated and oversized bodies, a config that is not JSON, an index
//! naming itself, endless redirects, a 401 loop, a hanging token endpoint,
//! a slow-loris server. Every pull fails with a typed error within bounded
//! time and leaves the store exactly as it was. No privilege needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod regsupport;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dunnage_image::registry::{PullOptions, RegistryConfig};
use dunnage_image::{Error, ImageStore, Reference};
use dunnage_layerstore::Digest;
use dunnage_testsupport::{TempDir, require_root};
use regsupport::http::{Ctx, Req, Server, respond};

/// An image: gzip layer, config, manifest.
struct Image {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

fn image() -> Image {
    let tar = common::layer_tar(&[("hello", b"hostile world\n")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = common::config_for(&[common::diff_id(&tar)]);
    let manifest = manifest_for(&config, &layer);
    Image {
        layer,
        config,
        manifest,
    }
}

fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{}"}}]}}"#,
        config.len(),
        Digest::sha256_of(config),
        layer.len(),
        Digest::sha256_of(layer)
    )
    .into_bytes()
}

/// Serve `img` faithfully except where `twist` answers first.
fn serve(
    img: Image,
    twist: impl Fn(&Req, &mut TcpStream, &Ctx, &Image) -> bool + Send + Sync + 'static,
) -> Server {
    Server::start(move |req, conn, server| {
        if twist(req, conn, server, &img) {
            return;
        }
        let blob = |b: &[u8]| format!("/blobs/{}", Digest::sha256_of(b));
        let mt = "application/vnd.docker.distribution.manifest.v2+json";
        if req.method != "GET" {
            respond(conn, "405 Method Not Allowed", &[], b"{}");
        } else if req.path == "/v2/" {
            respond(conn, "200 OK", &[], b"{}");
        } else if req.path.contains("/manifests/") {
            respond(conn, "200 OK", &[("Content-Type", mt)], &img.manifest);
        } else if req.path.ends_with(&blob(&img.config)) {
            respond(conn, "200 OK", &[], &img.config);
        } else if req.path.ends_with(&blob(&img.layer)) {
            // Range requests are honoured, as distribution does.
            let from = req
                .headers
                .split("range: bytes=")
                .nth(1)
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < img.layer.len());
            match from {
                Some(n) => {
                    let range = format!("bytes {n}-{}/{}", img.layer.len() - 1, img.layer.len());
                    respond(
                        conn,
                        "206 Partial Content",
                        &[("Content-Range", &range)],
                        &img.layer[n..],
                    );
                }
                None => respond(conn, "200 OK", &[], &img.layer),
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
            request_timeout: Duration::from_secs(3),
            min_rate: 1 << 20,
            max_manifest: 64 << 10,
            ..RegistryConfig::default()
        },
        ..PullOptions::default()
    }
}

/// Pull from `server` into a fresh store: the error, after checking the
/// store is exactly as before and the pull took bounded time.
fn pull_fails(tag: &str, server: &Server) -> Error {
    let dir = TempDir::new(&format!("hostile-{tag}")).unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let before = common::snapshot(store.root());
    let r = Reference::parse(&format!("{}/hostile/{tag}:1", server.addr)).unwrap();
    let start = Instant::now();
    let err = store.pull(&r, opts()).expect_err(tag);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{tag}: {:?}",
        start.elapsed()
    );
    assert_eq!(
        common::snapshot(store.root()),
        before,
        "{tag}: store changed"
    );
    assert!(store.list().unwrap().is_empty());
    err
}

#[test]
fn a_faithful_server_pulls() {
    require_root!();
    let server = serve(image(), |_, _, _, _| false);
    let dir = TempDir::new("hostile-ok").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let r = Reference::parse(&format!("{}/hostile/ok:1", server.addr)).unwrap();
    let pulled = store.pull(&r, opts()).unwrap();
    assert_eq!(pulled.downloaded, 1);
    assert_eq!(pulled.digest, Digest::sha256_of(&image().manifest));
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused() {
    require_root!();
    let server = serve(image(), |req, conn, _, img| {
        if req.path.contains(&Digest::sha256_of(&img.layer).hex()) {
            let mut bad = img.layer.clone();
            let n = bad.len();
            bad[n - 9] ^= 0xff;
            respond(conn, "200 OK", &[], &bad);
            return true;
        }
        false
    });
    let e = pull_fails("digest", &server);
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
}

#[test]
fn a_truncated_blob_is_retried_then_refused() {
    require_root!();
    let server = serve(image(), |req, conn, _, img| {
        if req.path.contains(&Digest::sha256_of(&img.layer).hex()) {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                img.layer.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&img.layer[..img.layer.len() / 2]);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return true;
        }
        false
    });
    let e = pull_fails("truncated", &server);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

#[test]
fn a_manifest_over_the_limit_is_refused() {
    require_root!();
    let server = serve(image(), |req, conn, _, _| {
        if req.path.contains("/manifests/") {
            respond(conn, "200 OK", &[], &vec![b' '; 100 << 10]);
            return true;
        }
        false
    });
    let e = pull_fails("big", &server);
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

#[test]
fn a_config_that_is_not_json_is_refused() {
    require_root!();
    let mut img = image();
    img.config = b"this is not JSON".to_vec();
    img.manifest = manifest_for(&img.config, &img.layer);
    let server = serve(img, |_, _, _, _| false);
    let e = pull_fails("config", &server);
    assert!(
        matches!(e, Error::Json { .. } | Error::InvalidConfig { .. }),
        "{e}"
    );
}

#[test]
fn malformed_manifests_are_refused() {
    require_root!();
    for (i, body) in [
        &b"<html>"[..],
        b"{}",
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        b"\xff\xfe",
    ]
    .into_iter()
    .enumerate()
    {
        let body = body.to_vec();
        let server = serve(image(), move |req, conn, _, _| {
            if req.path.contains("/manifests/") {
                respond(conn, "200 OK", &[], &body);
                return true;
            }
            false
        });
        let e = pull_fails(&format!("malformed{i}"), &server);
        assert!(matches!(e, Error::InvalidManifest { .. }), "{e}");
    }
}

#[test]
fn an_index_that_names_itself_is_refused() {
    require_root!();
    // The index names a digest; asked by that digest, the server sends
    // the same index again.
    let server = serve(image(), |req, conn, _, _| {
        if req.path.contains("/manifests/") {
            let index = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:{}","size":10,"platform":{{"os":"linux","architecture":"{}"}}}}]}}"#,
                "c".repeat(64),
                host_arch()
            );
            respond(conn, "200 OK", &[], index.as_bytes());
            return true;
        }
        false
    });
    let e = pull_fails("selfindex", &server);
    assert!(
        matches!(
            e,
            Error::InvalidManifest { .. } | Error::DigestMismatch { .. }
        ),
        "{e}"
    );
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

#[test]
fn endless_redirects_stop() {
    require_root!();
    let server = serve(image(), |req, conn, _, _| {
        if req.path.contains("/manifests/") {
            let next = format!("{}x", req.path);
            respond(conn, "302 Found", &[("Location", &next)], b"");
            return true;
        }
        false
    });
    let e = pull_fails("redirects", &server);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(server.hits() < 30);
}

#[test]
fn a_401_loop_is_an_auth_error() {
    require_root!();
    let server = serve(image(), |req, conn, server, _| {
        if req.path.starts_with("/token") {
            respond(conn, "200 OK", &[], br#"{"token":"t"}"#);
        } else {
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="hostile""#,
                server.addr
            );
            respond(
                conn,
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                b"{}",
            );
        }
        true
    });
    let e = pull_fails("401", &server);
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(server.hits() < 10);
}

#[test]
fn a_hanging_token_endpoint_times_out() {
    require_root!();
    let server = serve(image(), |req, conn, server, _| {
        if req.path.starts_with("/token") {
            while !server.stopped() {
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="hostile""#,
                server.addr
            );
            respond(
                conn,
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                b"{}",
            );
        }
        true
    });
    let e = pull_fails("hang", &server);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

#[test]
fn a_slow_loris_server_times_out() {
    require_root!();
    let server = serve(image(), |req, conn, server, _| {
        if req.path.contains("/manifests/") {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{");
            while !server.stopped() {
                if conn.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            return true;
        }
        false
    });
    let e = pull_fails("loris", &server);
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

#[test]
fn a_blob_cut_off_is_resumed_with_range() {
    require_root!();
    // The first answer stops halfway; the client asks for the rest.
    let cut = Arc::new(AtomicBool::new(false));
    let ranged = Arc::new(AtomicBool::new(false));
    let (c, r) = (cut.clone(), ranged.clone());
    let server = serve(image(), move |req, conn, _, img| {
        if !req.path.contains(&Digest::sha256_of(&img.layer).hex()) {
            return false;
        }
        let half = img.layer.len() / 2;
        if !c.swap(true, Ordering::Relaxed) {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                img.layer.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&img.layer[..half]);
            let _ = conn.shutdown(std::net::Shutdown::Both);
        } else if req.headers.contains(&format!("range: bytes={half}-")) {
            r.store(true, Ordering::Relaxed);
            let range = format!("bytes {half}-{}/{}", img.layer.len() - 1, img.layer.len());
            respond(
                conn,
                "206 Partial Content",
                &[("Content-Range", &range)],
                &img.layer[half..],
            );
        } else {
            respond(conn, "200 OK", &[], &img.layer);
        }
        true
    });
    let dir = TempDir::new("hostile-resume").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let r = Reference::parse(&format!("{}/hostile/resume:1", server.addr)).unwrap();
    store.pull(&r, opts()).unwrap();
    assert!(ranged.load(Ordering::Relaxed), "no Range request");
    // The scratch file is gone once the layer is registered.
    let left: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn resumed_bytes_that_are_wrong_are_thrown_away() {
    require_root!();
    // A partial file left by an earlier pull holds wrong bytes: resumed
    // with Range, the whole blob fails its digest, and one download from
    // the start fixes it.
    let img = image();
    let layer_digest = Digest::sha256_of(&img.layer);
    let server = serve(image(), |_, _, _, _| false);
    let dir = TempDir::new("hostile-badpartial").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    std::fs::create_dir_all(store.root().join("tmp")).unwrap();
    std::fs::write(
        store
            .root()
            .join(format!("tmp/pull-{}.partial", layer_digest.hex())),
        vec![0u8; img.layer.len() / 2],
    )
    .unwrap();
    let r = Reference::parse(&format!("{}/hostile/badpartial:1", server.addr)).unwrap();
    store.pull(&r, opts()).unwrap();
}

#[test]
fn a_blob_redirected_elsewhere_is_followed() {
    require_root!();
    // Registries send blobs from storage elsewhere (S3, a CDN): a 307 to
    // another path is followed, and the bytes still checked.
    let server = serve(image(), |req, conn, _, img| {
        let layer = Digest::sha256_of(&img.layer).hex();
        if req.path.starts_with("/v2/") && req.path.contains(&layer) {
            let to = format!("/storage/{layer}?sig=x");
            respond(conn, "307 Temporary Redirect", &[("Location", &to)], b"");
            return true;
        }
        if req.path.starts_with("/storage/") {
            respond(conn, "200 OK", &[], &img.layer);
            return true;
        }
        false
    });
    let dir = TempDir::new("hostile-redirect").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let r = Reference::parse(&format!("{}/hostile/redirect:1", server.addr)).unwrap();
    let pulled = store.pull(&r, opts()).unwrap();
    assert_eq!(pulled.downloaded, 1);
}

#[test]
fn an_rmi_racing_a_pull_of_the_same_layers_never_fails_the_pull() {
    require_root!();
    // The pull finds the layer, an rmi of the same image releases and
    // removes it before the pull acquires it: the pull downloads it again.
    // That window is microseconds wide and these rounds rarely land in it
    // (the test passed with the fix taken out): what they check is that a
    // pull racing an rmi of its image always succeeds and every round ends
    // with a consistent store.
    let server = serve(image(), |_, _, _, _| false);
    let dir = TempDir::new("hostile-rmi-race").unwrap();
    let root = dir.join("store");
    let r = Reference::parse(&format!("{}/hostile/race:1", server.addr)).unwrap();
    let tag = r.to_string();
    for round in 0..30 {
        let store = ImageStore::open(&root).unwrap();
        store.pull(&r, opts()).unwrap();
        std::thread::scope(|s| {
            let puller = s.spawn(|| ImageStore::open(&root).unwrap().pull(&r, opts()));
            // Before, during or after the pull: the rmi may find no image.
            let _ = ImageStore::open(&root).unwrap().remove(&tag, false);
            let pulled = puller.join().unwrap();
            assert!(pulled.is_ok(), "round {round}: {:?}", pulled.err());
        });
        let report = store.check().unwrap();
        assert!(report.is_clean(), "round {round}: {:?}", report.problems);
        for id in store.list().unwrap() {
            store.remove(&id.to_string(), true).unwrap();
        }
        assert!(store.list().unwrap().is_empty(), "round {round}");
        assert!(store.layers().list().unwrap().is_empty(), "round {round}");
    }
}

/// Read the chunked body of a request whose head was read: up to its last
/// chunk, or `None` when the connection ends first.
fn read_chunked_body(conn: &mut TcpStream) -> Option<usize> {
    use std::io::Read;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.ends_with(b"\r\n0\r\n\r\n") {
            return Some(total);
        }
        let keep = tail.len().saturating_sub(8);
        tail.drain(..keep);
    }
}

/// A registry that takes uploads but answers `status` to the streamed
/// `PATCH` (`on_patch`) or to the closing `PUT` (else).
fn upload_server(on_patch: bool, status: &'static str) -> Server {
    Server::start(move |req, conn, server| {
        let location = format!("http://{}/v2/hostile/push/blobs/uploads/u1", server.addr);
        match req.method.as_str() {
            "GET" if req.path == "/v2/" => respond(conn, "200 OK", &[], b"{}"),
            "HEAD" => respond(conn, "404 Not Found", &[], b""),
            "POST" => respond(conn, "202 Accepted", &[("Location", &location)], b""),
            "PATCH" => {
                if read_chunked_body(conn).is_none() {
                    return;
                }
                if on_patch {
                    respond(conn, status, &[], b"{\"errors\":[]}");
                } else {
                    respond(conn, "202 Accepted", &[("Location", &location)], b"");
                }
            }
            "PUT" => respond(conn, status, &[], b"{\"errors\":[]}"),
            _ => respond(conn, "405 Method Not Allowed", &[], b"{}"),
        }
    })
}

#[test]
fn a_push_refused_midway_is_a_typed_error_and_changes_nothing() {
    require_root!();
    let source = serve(image(), |_, _, _, _| false);
    let dir = TempDir::new("hostile-push").unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let r = Reference::parse(&format!("{}/hostile/ok:1", source.addr)).unwrap();
    store.pull(&r, opts()).unwrap();
    drop(source);
    for (on_patch, status, code) in [
        (true, "500 Internal Server Error", 500),
        (false, "400 Bad Request", 400),
    ] {
        let server = upload_server(on_patch, status);
        let target = format!("{}/hostile/push:1", server.addr);
        store.tag(&r.to_string(), &target).unwrap();
        let before = common::snapshot(store.root());
        let start = Instant::now();
        let e = store
            .push(
                &Reference::parse(&target).unwrap(),
                dunnage_image::registry::PushOptions {
                    registry: opts().registry,
                    ..Default::default()
                },
            )
            .expect_err("push to a refusing registry");
        assert!(start.elapsed() < Duration::from_secs(60));
        match e {
            Error::Status { op, status, .. } => {
                assert_eq!(op, "upload blob", "{on_patch}");
                assert_eq!(status, code, "{on_patch}");
            }
            e => panic!("{on_patch}: {e}"),
        }
        assert_eq!(
            common::snapshot(store.root()),
            before,
            "{on_patch}: store changed"
        );
    }
}
