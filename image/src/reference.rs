//! Image references and Docker's normalisation of them.
//!
//! `busybox` means `docker.io/library/busybox:latest`; `repositories.json`
//! and the CLI show the familiar form back (`busybox:latest`). A reference
//! names a repository and a tag (`name:tag`), a digest (`name@sha256:...`)
//! or both.

use std::fmt;
use std::str::FromStr;

use dunnage_layerstore::Digest;

use crate::error::{Error, Result};

/// The registry of names without a domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of one-component names on the default registry.
pub const OFFICIAL_PREFIX: &str = "library/";
/// The host serving the default registry's API.
pub const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";
/// The key of the default registry in `~/.docker/config.json`.
pub const DEFAULT_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// The tag of a reference that names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// A normalised image reference: domain, path, and a tag and/or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise like `docker` does: add `docker.io`, `library/`
    /// and the `latest` tag when the text has neither tag nor digest.
    pub fn parse(text: &str) -> Result<Reference> {
        let mut r = Reference::parse_named(text)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parse and normalise without adding a default tag (a bare repository
    /// name, as `docker images busybox` takes it).
    pub fn parse_named(text: &str) -> Result<Reference> {
        let bad = |reason| Error::InvalidReference {
            reference: text.to_string(),
            reason,
        };
        let (rest, digest) = match text.rsplit_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|_| bad("invalid digest"))?),
            ),
            None => (text, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t)),
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("empty repository name"));
        }
        let (domain, path) = split_domain(name);
        if domain == DEFAULT_DOMAIN && is_hex64(path) {
            return Err(bad("cannot specify 64-byte hexadecimal strings"));
        }
        if !valid_domain(&domain) {
            return Err(bad("invalid registry domain"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(bad("invalid repository name"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        if domain.len() + 1 + path.len() > MAX_NAME {
            return Err(bad("repository name longer than 255 characters"));
        }
        if tag.is_some_and(|t| !valid_tag(t)) {
            return Err(bad("invalid tag"));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry domain (`docker.io`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker shows it (`busybox`, `me/app`,
    /// `registry.example:5000/app`).
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        self.path
            .strip_prefix(OFFICIAL_PREFIX)
            .unwrap_or(&self.path)
            .to_string()
    }

    /// The familiar form of the whole reference (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s = format!("{s}:{t}");
        }
        if let Some(d) = &self.digest {
            s = format!("{s}@{d}");
        }
        s
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with `digest` and no tag (the RepoDigest form,
    /// `name@sha256:...`).
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(*digest),
            ..self.clone()
        }
    }

    /// The host a registry client talks to for this reference's domain:
    /// `registry-1.docker.io` for Docker Hub, the domain itself otherwise.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST
        } else {
            &self.domain
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        if !valid_tag(tag) {
            return Err(Error::InvalidReference {
                reference: tag.to_string(),
                reason: "invalid tag",
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// Split `name` into domain and path the way Docker does: the first
/// component is a domain when it holds `.` or `:`, is `localhost`, or has
/// upper case letters.
fn split_domain(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            let domain = if first == "index.docker.io" {
                DEFAULT_DOMAIN
            } else {
                first
            };
            (domain.to_string(), rest)
        }
        _ => (DEFAULT_DOMAIN.to_string(), name),
    }
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port_ok && host.split('.').all(label_ok)
}

/// A path component: lower-case alphanumeric runs joined by `.`, `_`, `__`
/// or any number of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// Whether Docker treats `domain` (`host` or `host:port`) as an insecure
/// registry by default, reached over plain HTTP: `localhost`, `::1` and
/// every address of 127.0.0.0/8.
pub fn is_default_insecure(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => domain.rsplit_once(':').map_or(domain, |(h, _)| h),
    };
    if host == "localhost" || host == "::1" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_name_gets_default_domain_library_and_latest() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
    }

    #[test]
    fn user_repositories_and_registries_keep_their_path() {
        let r = Reference::parse("me/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/me/app:1.0");
        assert_eq!(r.familiar(), "me/app:1.0");
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/app:latest");
        assert_eq!(r.familiar_name(), "localhost:5000/app");
        let r = Reference::parse("index.docker.io/library/busybox:1").unwrap();
        assert_eq!(r.familiar(), "busybox:1");
        let r = Reference::parse("quay.io/a/b/c").unwrap();
        assert_eq!(r.familiar(), "quay.io/a/b/c:latest");
    }

    #[test]
    fn digest_references_get_no_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
    }

    #[test]
    fn registry_hosts_and_default_insecure() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert_eq!(r.registry_host(), "127.0.0.1:5000");
        let d: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        assert_eq!(
            r.with_digest(&d).to_string(),
            format!("127.0.0.1:5000/a/b@{d}")
        );
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.8.7",
            "[::1]:80",
        ] {
            assert!(is_default_insecure(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "128.0.0.1:5000",
            "localhost.example",
            "10.0.0.1",
        ] {
            assert!(!is_default_insecure(no), "{no}");
        }
    }

    #[test]
    fn malformed_references_are_rejected() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/",
            "-a",
            "a..b",
            "a___b",
            "busybox@sha256:abc",
            "exa mple",
            &"a".repeat(64),
            &format!("x:{}", "t".repeat(129)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Reference::parse("x/a--b__c.d/e-f").is_ok());
    }
}
