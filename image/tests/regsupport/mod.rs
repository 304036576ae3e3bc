//! A real `docker-registry` (distribution 2.8) on 127.0.0.1 for the
//! registry tests, with its storage in a TempDir; stopped on drop.
#![allow(dead_code)]

pub mod http;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dunnage_testsupport::TempDir;

/// The registry binary of Debian's `docker-registry` package.
pub const REGISTRY: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub dir: TempDir,
}

/// How the registry authenticates.
pub enum Auth {
    None,
    /// An htpasswd (bcrypt) file.
    Htpasswd(PathBuf),
    /// Bearer tokens from `realm`, signed by the key of `cert`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start(tag: &str, auth: Auth) -> Registry {
        Self::start_with(tag, auth, None)
    }

    /// A registry serving HTTPS with `cert` and `key`.
    pub fn start_tls(tag: &str, cert: &Path, key: &Path) -> Registry {
        Self::start_with(tag, Auth::None, Some((cert, key)))
    }

    fn start_with(tag: &str, auth: Auth, tls: Option<(&Path, &Path)>) -> Registry {
        let dir = TempDir::new(&format!("registry-{tag}")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd(p) => format!(
                "auth:\n  htpasswd:\n    realm: dunnage-test\n    path: {}\n",
                p.display()
            ),
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let tls = match tls {
            Some((c, k)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c.display(),
                k.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_status(&r.addr, "/v2/").is_none() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The blob files the registry stores.
    pub fn blobs(&self) -> PathBuf {
        self.dir.join("data/docker/registry/v2/blobs/sha256")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET path` (no auth), `None` when nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `skopeo copy` to the registry, over plain HTTP.
pub fn skopeo_copy(src: &str, dest: &str, extra: &[&str]) {
    super::common::run(
        Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--insecure-policy",
                "--dest-tls-verify=false",
            ])
            .args(extra)
            .arg(src)
            .arg(dest),
    );
}

/// The layerdb entry of `chain` under a data root: its files and bytes,
/// `tar-split.json.gz` decompressed (Go's gzip and zlib frame the same
/// JSON differently; the JSON is what tars are rebuilt from).
pub fn layerdb(root: &Path, chain: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root
        .join("image/overlay2/layerdb/sha256")
        .join(chain.trim_start_matches("sha256:"));
    let mut out = Vec::new();
    for name in ["diff", "size", "parent", "tar-split.json.gz"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            let b = if name.ends_with(".gz") {
                let mut json = Vec::new();
                flate2::read::GzDecoder::new(&b[..])
                    .read_to_end(&mut json)
                    .unwrap();
                json
            } else {
                b
            };
            out.push((name.to_string(), b));
        }
    }
    assert!(!out.is_empty(), "no layerdb entry {}", dir.display());
    out
}
