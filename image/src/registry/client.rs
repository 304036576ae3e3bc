//! One repository on one registry: the HTTP client, its TLS, and auth.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dunnage_layerstore::Digest;

use super::RegistryConfig;
use super::auth::{Challenge, parse_challenge};
use crate::error::{Error, Result};

/// The largest body read from an error response or a token endpoint.
const SMALL_BODY: u64 = 1 << 20;

/// A body to send: bytes (sent again when auth makes us retry), or a
/// stream of unknown length (chunked transfer encoding; sent once).
pub(crate) enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    Stream(&'a mut (dyn Read + Send)),
}

pub(crate) struct Client {
    agent: ureq::Agent,
    /// `http://host:port` or `https://host`.
    pub(crate) base: String,
    /// The registry domain, as in references.
    pub(crate) domain: String,
    /// The repository path.
    pub(crate) repo: String,
    /// `pull` or `pull,push`.
    actions: &'static str,
    credentials: Option<(String, String)>,
    authorization: Mutex<Option<String>>,
    pub(crate) cfg: RegistryConfig,
}

impl Client {
    /// A client of `repo` on `domain` (reached at `host`), pinged once
    /// (`GET /v2/`, the version check) so that auth is settled before the
    /// first real request.
    pub(crate) fn connect(
        cfg: &RegistryConfig,
        domain: &str,
        host: &str,
        repo: &str,
        actions: &'static str,
    ) -> Result<Client> {
        let insecure = cfg.is_insecure(host);
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.trim_end_matches('/').to_string()
        } else if insecure {
            format!("http://{host}")
        } else {
            format!("https://{host}")
        };
        let bare = base.split("://").nth(1).unwrap_or(host).to_string();
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(cfg.connect_timeout)
            .timeout_read(cfg.io_timeout)
            .timeout_write(cfg.io_timeout)
            .redirects(cfg.max_redirects)
            .user_agent(concat!("dunnage/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("https://") {
            builder = builder.tls_config(Arc::new(tls_config(cfg, &bare)?));
        }
        let credentials = match &cfg.credentials {
            Some(c) => Some(c.clone()),
            None => match &cfg.auth_file {
                Some(path) => super::auth::credentials(path, domain)?,
                None => None,
            },
        };
        let client = Client {
            agent: builder.build(),
            base,
            domain: domain.to_string(),
            repo: repo.to_string(),
            actions,
            credentials,
            authorization: Mutex::new(None),
            cfg: cfg.clone(),
        };
        client.ping()?;
        Ok(client)
    }

    /// `GET /v2/`: the registry speaks the v2 API, and we are let in.
    pub(crate) fn ping(&self) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let resp = self.send("ping", "GET", &url, &[], Body::None, None)?;
        self.expect("ping", &url, resp, &[200]).map(drop)
    }

    /// `https://host/v2/<repo>/<rest>`.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repo, rest)
    }

    /// Resolve a `Location` header against the registry.
    pub(crate) fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/{location}", self.base)
        }
    }

    /// Send a request, answering one auth challenge; any status is
    /// returned. `deadline` bounds the whole exchange (default
    /// [`RegistryConfig::request_timeout`]).
    pub(crate) fn send(
        &self,
        op: &'static str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        deadline: Option<Duration>,
    ) -> Result<ureq::Response> {
        let mut body = body;
        let mut authenticated = false;
        loop {
            let mut req = self
                .agent
                .request(method, url)
                .timeout(deadline.unwrap_or(self.cfg.request_timeout));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = self.auth_header() {
                req = req.set("Authorization", &a);
            }
            let result = match &mut body {
                Body::None => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Stream(r) => req.send(&mut **r),
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(Error::Transport {
                        op,
                        url: url.to_string(),
                        reason: t.to_string(),
                    });
                }
            };
            if resp.status() != 401 {
                return Ok(resp);
            }
            if authenticated {
                return Err(self.auth_error("the registry still answers 401 after authenticating"));
            }
            let challenge = resp.header("WWW-Authenticate").map(str::to_string);
            drop(resp);
            let challenge = challenge
                .as_deref()
                .and_then(parse_challenge)
                .ok_or_else(|| self.auth_error("401 without a challenge we can answer"))?;
            self.authenticate(&challenge)?;
            if let Body::Stream(_) = body {
                // What was read of the stream is gone: the caller starts
                // over, with the authorization now set.
                return Err(self.auth_error("401 to a streamed upload; authenticated again"));
            }
            authenticated = true;
        }
    }

    fn auth_header(&self) -> Option<String> {
        self.authorization.lock().ok().and_then(|a| a.clone())
    }

    fn auth_error(&self, reason: &str) -> Error {
        Error::Auth {
            registry: self.domain.clone(),
            reason: reason.to_string(),
        }
    }

    fn basic(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))))
    }

    /// Meet a challenge: basic credentials, or a (fresh) bearer token.
    fn authenticate(&self, challenge: &Challenge) -> Result<()> {
        let header = match challenge {
            Challenge::Basic => self
                .basic()
                .ok_or_else(|| self.auth_error("basic auth asked and no credentials known"))?,
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => format!(
                "Bearer {}",
                self.token(realm, service.as_deref(), scope.as_deref())?
            ),
        };
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(header);
        }
        Ok(())
    }

    /// Ask the token endpoint for a token for this repository.
    fn token(&self, realm: &str, service: Option<&str>, scope: Option<&str>) -> Result<String> {
        if !(realm.starts_with("http://") || realm.starts_with("https://")) {
            return Err(self.auth_error(&format!("token realm {realm:?} is not an HTTP URL")));
        }
        let mut req = self.agent.get(realm).timeout(self.cfg.request_timeout);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        let own = format!("repository:{}:{}", self.repo, self.actions);
        if !self.repo.is_empty() {
            req = req.query("scope", &own);
        }
        if let Some(s) = scope.filter(|s| *s != own) {
            req = req.query("scope", s);
        }
        if let Some(b) = self.basic() {
            req = req.set("Authorization", &b);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let message = small_body(r);
                return Err(
                    self.auth_error(&format!("token endpoint answered HTTP {code}: {message}"))
                );
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Error::Transport {
                    op: "get token",
                    url: realm.to_string(),
                    reason: t.to_string(),
                });
            }
        };
        let mut raw = Vec::new();
        resp.into_reader()
            .take(SMALL_BODY)
            .read_to_end(&mut raw)
            .map_err(|e| Error::Transport {
                op: "get token",
                url: realm.to_string(),
                reason: e.to_string(),
            })?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| Error::json(realm, e))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| self.auth_error("the token endpoint's answer has no token"))
    }

    /// Check the status of `resp`: one of `ok`, else [`Error::Status`].
    pub(crate) fn expect(
        &self,
        op: &'static str,
        url: &str,
        resp: ureq::Response,
        ok: &[u16],
    ) -> Result<ureq::Response> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let status = resp.status();
        Err(Error::Status {
            op,
            url: url.to_string(),
            status,
            message: small_body(resp),
        })
    }

    /// GET a small document (manifest, config) of at most `limit` bytes,
    /// checked against `digest` when given; returns the bytes and the
    /// response's content type and `Docker-Content-Digest`.
    pub(crate) fn get_small(
        &self,
        op: &'static str,
        rest: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        let url = self.url(rest);
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let resp = self.send(op, "GET", &url, &headers, Body::None, None)?;
        let resp = self.expect(op, &url, resp, &[200])?;
        let content_type = resp.header("Content-Type").map(str::to_string);
        let digest = resp.header("Docker-Content-Digest").map(str::to_string);
        if resp
            .header("Content-Length")
            .and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|l| l > limit)
        {
            return Err(Error::TooLarge { what: url, limit });
        }
        let mut raw = Vec::new();
        resp.into_reader()
            .take(limit + 1)
            .read_to_end(&mut raw)
            .map_err(|e| Error::Transport {
                op,
                url: url.clone(),
                reason: e.to_string(),
            })?;
        if raw.len() as u64 > limit {
            return Err(Error::TooLarge { what: url, limit });
        }
        Ok((raw, content_type, digest))
    }

    /// Whether the registry has blob `digest` in this repository (`HEAD`).
    pub(crate) fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send("head blob", "HEAD", &url, &[], Body::None, None)?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => self.expect("head blob", &url, resp, &[200]).map(|_| true),
        }
    }

    /// The size and first bytes of blob `digest` in this repository (a
    /// ranged GET), `None` when the registry does not answer with them.
    pub(crate) fn blob_start(&self, digest: &Digest) -> Result<Option<(u64, Vec<u8>)>> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(
            "get blob",
            "GET",
            &url,
            &[("Range", "bytes=0-3")],
            Body::None,
            None,
        )?;
        let size = match resp.status() {
            206 => resp
                .header("Content-Range")
                .and_then(|r| r.rsplit_once('/'))
                .and_then(|(_, n)| n.parse::<u64>().ok()),
            200 => resp.header("Content-Length").and_then(|n| n.parse().ok()),
            _ => None,
        };
        let Some(size) = size else { return Ok(None) };
        let mut head = Vec::new();
        let _ = resp.into_reader().take(4).read_to_end(&mut head);
        Ok(Some((size, head)))
    }

    /// The deadline of a blob of `size` bytes.
    pub(crate) fn blob_deadline(&self, size: u64) -> Duration {
        self.cfg.request_timeout + Duration::from_secs(size / self.cfg.min_rate.max(1))
    }
}

/// The first bytes of an error body, as one line.
fn small_body(resp: ureq::Response) -> String {
    let mut raw = Vec::new();
    let _ = resp.into_reader().take(512).read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// TLS with the system roots and the registry's own CAs
/// (`<certs_dir>/<host>/*.crt`, as dockerd reads them).
fn tls_config(cfg: &RegistryConfig, host: &str) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(certs) = rustls_native_certs::load_native_certs() {
        for c in certs {
            let _ = roots.add(c);
        }
    }
    let dir = cfg.certs_dir.join(host);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "crt") {
                let certs = CertificateDer::pem_file_iter(&path).map_err(|e| Error::Transport {
                    op: "read CA",
                    url: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                for c in certs {
                    let c = c.map_err(|e| Error::Transport {
                        op: "read CA",
                        url: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                    roots.add(c).map_err(|e| Error::Transport {
                        op: "add CA",
                        url: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
            }
        }
    }
    // ring (what ureq 2 itself builds on): aws-lc-rs would add a cmake
    // build for post-quantum key exchange that registries do not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport {
            op: "set up TLS",
            url: host.to_string(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
