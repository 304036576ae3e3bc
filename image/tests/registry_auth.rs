//! Registry auth against a real `docker-registry` on 127.0.0.1: basic auth
//! with an htpasswd file (and login/logout writing a docker config file),
//! and bearer tokens from a token server the test runs (JWTs signed with
//! a key made by openssl, checked by the registry against its cert).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod regsupport;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::run;
use dunnage_image::registry::{PullOptions, PushOptions, RegistryConfig, auth};
use dunnage_image::{Error, ImageStore, LoadOptions, Reference};
use dunnage_testsupport::{TempDir, require_command, require_root};
use regsupport::http::{Server, respond};
use regsupport::{Auth, Registry, skopeo_copy};

fn cfg(credentials: Option<(&str, &str)>, auth_file: Option<&Path>) -> RegistryConfig {
    RegistryConfig {
        credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        auth_file: auth_file.map(Path::to_path_buf),
        ..RegistryConfig::default()
    }
}

fn pull(store: &ImageStore, r: &str, registry: RegistryConfig) -> dunnage_image::Result<()> {
    store
        .pull(
            &Reference::parse(r).unwrap(),
            PullOptions {
                registry,
                ..PullOptions::default()
            },
        )
        .map(drop)
}

/// A one-layer docker-archive; returns its path.
fn archive(dir: &Path) -> std::path::PathBuf {
    let layer = common::layer_tar(&[("auth", b"secret layer\n")]);
    let (tar, _) = common::docker_archive(&[layer], "dunnage-test/auth:1");
    let path = dir.join("auth.tar");
    std::fs::write(&path, tar).unwrap();
    path
}

#[test]
fn basic_auth_with_htpasswd_login_and_logout() {
    require_root!();
    require_command!("docker-registry");
    require_command!("skopeo");
    require_command!("htpasswd");
    let dir = TempDir::new("reg-basic").unwrap();
    let htpasswd = run(Command::new("htpasswd").args(["-Bbn", "alice", "s3cret"]));
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    let reg = Registry::start("basic", Auth::Htpasswd(dir.join("htpasswd")));
    let image = format!("{}/dunnage/basic:1", reg.addr);
    let tar = archive(dir.path());
    skopeo_copy(
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{image}"),
        &["--dest-creds", "alice:s3cret"],
    );
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let before = common::snapshot(store.root());
    let e = pull(&store, &image, cfg(None, None)).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    let e = pull(&store, &image, cfg(Some(("alice", "wrong")), None)).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert_eq!(common::snapshot(store.root()), before);

    // login checks the password before writing anything.
    let file = dir.join("docker/config.json");
    let e = auth::login(&cfg(None, Some(&file)), &reg.addr, "alice", "wrong").unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(!file.exists());
    auth::login(&cfg(None, Some(&file)), &reg.addr, "alice", "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        v["auths"][&reg.addr]["auth"],
        STANDARD.encode("alice:s3cret")
    );
    pull(&store, &image, cfg(None, Some(&file))).unwrap();
    // Push with the stored credentials too.
    let pushed = format!("{}/dunnage/basic:pushed", reg.addr);
    store.tag(&image, &pushed).unwrap();
    store
        .push(
            &Reference::parse(&pushed).unwrap(),
            PushOptions {
                registry: cfg(None, Some(&file)),
                ..PushOptions::default()
            },
        )
        .unwrap();
    assert!(auth::logout(&cfg(None, Some(&file)), &reg.addr).unwrap());
    let fresh = ImageStore::open(&dir.join("fresh")).unwrap();
    let e = pull(&fresh, &pushed, cfg(None, Some(&file))).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
}

/// A token server: grants what is asked to `user`:`pass`, as an RS256 JWT
/// signed with `key` whose `cert` goes in the x5c header.
fn token_server(dir: &Path, issuer: &'static str, service: &'static str) -> Server {
    let key = dir.join("token.key");
    let cert_der = std::fs::read(dir.join("token.der")).unwrap();
    let x5c = STANDARD.encode(cert_der);
    let good = format!("basic {}", STANDARD.encode("bob:hunter2"));
    Server::start(move |req, conn, _| {
        let authorized = req.raw.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("authorization:")
                && l[14..].trim() == good.replacen("basic", "Basic", 1)
        });
        if !authorized {
            respond(conn, "401 Unauthorized", &[], br#"{"details":"no"}"#);
            return;
        }
        let query = req.path.split_once('?').map_or("", |(_, q)| q);
        let mut access = Vec::new();
        for pair in query.split('&') {
            if let Some(v) = pair.strip_prefix("scope=") {
                let v = percent_decode(v);
                let parts: Vec<&str> = v.splitn(3, ':').collect();
                if parts.len() == 3 {
                    let actions: Vec<&str> = parts[2].split(',').collect();
                    access.push(
                        serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}),
                    );
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
        let claims = serde_json::json!({
            "iss": issuer, "sub": "bob", "aud": service,
            "exp": now + 600, "nbf": now - 60, "iat": now,
            "jti": format!("{now}-{}", access.len()),
            "access": access,
        });
        let signing = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing.as_bytes())
            .unwrap();
        let sig = child.wait_with_output().unwrap().stdout;
        let jwt = format!("{signing}.{}", URL_SAFE_NO_PAD.encode(sig));
        let body = serde_json::json!({"token": jwt, "expires_in": 600}).to_string();
        respond(
            conn,
            "200 OK",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bearer_tokens_from_a_token_server() {
    require_root!();
    require_command!("docker-registry");
    require_command!("skopeo");
    require_command!("openssl");
    let dir = TempDir::new("reg-token").unwrap();
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dunnage-test-token",
            "-keyout",
        ])
        .arg(dir.join("token.key"))
        .arg("-out")
        .arg(dir.join("token.pem")));
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("token.pem"))
        .arg("-out")
        .arg(dir.join("token.der")));
    let tokens = token_server(dir.path(), "dunnage-test-issuer", "dunnage-test-registry");
    let reg = Registry::start(
        "token",
        Auth::Token {
            realm: format!("http://{}/token", tokens.addr),
            service: "dunnage-test-registry".into(),
            issuer: "dunnage-test-issuer".into(),
            cert: dir.join("token.pem"),
        },
    );
    let image = format!("{}/dunnage/token:1", reg.addr);
    let tar = archive(dir.path());
    skopeo_copy(
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{image}"),
        &["--dest-creds", "bob:hunter2"],
    );
    let store = ImageStore::open(&dir.join("store")).unwrap();
    let before = common::snapshot(store.root());
    for bad in [None, Some(("bob", "wrong"))] {
        let e = pull(&store, &image, cfg(bad, None)).unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
    }
    assert_eq!(common::snapshot(store.root()), before);
    let hits = tokens.ctx.hits.load(Ordering::Relaxed);
    pull(&store, &image, cfg(Some(("bob", "hunter2")), None)).unwrap();
    assert!(tokens.ctx.hits.load(Ordering::Relaxed) > hits);
    let loaded = ImageStore::open(&dir.join("loaded")).unwrap();
    let id = loaded.load(&tar, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(store.resolve(&image).unwrap(), id);
    // Push with a token scoped pull,push.
    let pushed = format!("{}/dunnage/token:pushed", reg.addr);
    store.tag(&image, &pushed).unwrap();
    store
        .push(
            &Reference::parse(&pushed).unwrap(),
            PushOptions {
                registry: cfg(Some(("bob", "hunter2")), None),
                ..PushOptions::default()
            },
        )
        .unwrap();
    let fresh = ImageStore::open(&dir.join("fresh")).unwrap();
    pull(&fresh, &pushed, cfg(Some(("bob", "hunter2")), None)).unwrap();
    assert_eq!(fresh.resolve(&pushed).unwrap(), id);
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made by
/// openssl in `dir`: (ca.pem, server.pem, server.key).
fn make_certs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=dunnage-test-ca", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "7", "-in"])
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("server.pem")));
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[test]
fn tls_with_a_per_registry_ca_through_a_docker_hub_mirror() {
    require_root!();
    require_command!("docker-registry");
    require_command!("skopeo");
    require_command!("openssl");
    let dir = TempDir::new("reg-tls").unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let reg = Registry::start_tls("tls", &cert, &key);
    let tar = archive(dir.path());
    skopeo_copy(
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{}/library/mirrored:1", reg.addr),
        &[],
    );
    // The CA where dockerd reads it: <certs.d>/<host:port>/ca.crt.
    let certs = dir.join("certs.d");
    std::fs::create_dir_all(certs.join(&reg.addr)).unwrap();
    std::fs::copy(&ca, certs.join(&reg.addr).join("ca.crt")).unwrap();
    let store = ImageStore::open(&dir.join("store")).unwrap();
    // `mirrored:1` is docker.io/library/mirrored:1: served by the mirror.
    let pulled = store
        .pull(
            &Reference::parse("mirrored:1").unwrap(),
            PullOptions {
                registry: RegistryConfig {
                    mirrors: vec![format!("https://{}", reg.addr)],
                    certs_dir: certs,
                    auth_file: None,
                    ..RegistryConfig::default()
                },
                ..PullOptions::default()
            },
        )
        .unwrap();
    let loaded = ImageStore::open(&dir.join("loaded")).unwrap();
    let id = loaded.load(&tar, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    assert_eq!(pulled.id, id);
    assert_eq!(store.resolve("mirrored:1").unwrap(), id);
    assert_eq!(store.resolve("docker.io/library/mirrored:1").unwrap(), id);
}
