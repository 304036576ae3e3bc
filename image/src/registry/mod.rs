//! Pull from and push to registries (the OCI distribution API), behind the
//! `registry` cargo feature.
//!
//! - [`ImageStore::pull`](crate::ImageStore::pull): manifest (Docker schema 2
//!   or OCI; an index picks the host's platform or [`PullOptions::platform`]),
//!   config, then the layers: several stream at once from their HTTP
//!   responses through the layer store's one-pass stage (decompress,
//!   hash, tar-split, apply), each verified against its digest as it
//!   passes and resumed with `Range` when cut off, and are committed in
//!   chain order. The image gets the ID, chainIDs and layerdb of `docker
//!   pull`, and the manifest digest is recorded as a RepoDigest.
//! - [`ImageStore::push`](crate::ImageStore::push): blobs the registry has
//!   skipped (`HEAD`) or mounted from another repository, the other
//!   layers compressed (gzip or zstd) as they stream into their uploads
//!   (one streamed `PATCH`, or chunks), several at once; config, manifest.
//! - [`auth`]: anonymous, basic and bearer auth; `~/.docker/config.json`
//!   credentials, [`auth::login`] and [`auth::logout`].
//!
//! Registries on `localhost` and 127.0.0.0/8, and those listed in
//! [`RegistryConfig::insecure`], are reached over plain HTTP, as dockerd
//! does; the others over HTTPS with the system roots plus the CAs in
//! `/etc/docker/certs.d/<host>/*.crt`.

pub mod auth;
mod client;
mod distribution;
mod download;
mod layers;
pub mod manifest;
mod pull;
mod push;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

pub use manifest::Platform;
pub use pull::{PullEvent, PullOptions, PullStatus, Pulled};
pub use push::{PushCompression, PushOptions, Pushed};

/// How registries are reached: insecure hosts, mirrors, CAs, credentials,
/// timeouts and limits.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Registries (`host` or `host:port`) reached over plain HTTP besides
    /// localhost and 127.0.0.0/8.
    pub insecure: Vec<String>,
    /// Mirrors of Docker Hub (`http://host:port` or `https://host`), tried
    /// in order before it for pulls.
    pub mirrors: Vec<String>,
    /// Where per-registry CAs are read: `<certs_dir>/<host>/*.crt`
    /// (default `/etc/docker/certs.d`).
    pub certs_dir: PathBuf,
    /// Docker's client config holding credentials (default
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`); `None`
    /// reads none.
    pub auth_file: Option<PathBuf>,
    /// Credentials to use instead of the auth file's (`user`, `password`).
    pub credentials: Option<(String, String)>,
    /// Bound on connecting (default 30 s).
    pub connect_timeout: Duration,
    /// Bound on one read or write of a connection (default 60 s).
    pub io_timeout: Duration,
    /// Bound on a whole small exchange: ping, token, manifest, config
    /// (default 120 s). A server that trickles bytes fails here.
    pub request_timeout: Duration,
    /// Slowest average rate accepted for a blob, in bytes per second
    /// (default 16 KiB/s): a blob of `n` bytes must arrive within
    /// `request_timeout + n / min_rate`.
    pub min_rate: u64,
    /// Most redirects followed for one request (default 10).
    pub max_redirects: u32,
    /// Largest manifest or index accepted (default 4 MiB, as containerd).
    pub max_manifest: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            mirrors: Vec::new(),
            certs_dir: PathBuf::from("/etc/docker/certs.d"),
            auth_file: auth::default_auth_file(),
            credentials: None,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            min_rate: 16 << 10,
            max_redirects: 10,
            max_manifest: 4 << 20,
        }
    }
}

impl RegistryConfig {
    /// Whether `domain` is reached over plain HTTP.
    pub fn is_insecure(&self, domain: &str) -> bool {
        crate::reference::is_default_insecure(domain) || self.insecure.iter().any(|h| h == domain)
    }
}
