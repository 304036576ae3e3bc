//! Registry auth: `WWW-Authenticate` challenges, Docker's
//! `~/.docker/config.json` credentials, and `login`/`logout` writing it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::RegistryConfig;
use super::client::Client;
use crate::error::{Error, Result};
use crate::reference::{DEFAULT_AUTH_KEY, DEFAULT_DOMAIN};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The service to name to it.
        service: Option<String>,
        /// The scope the registry asked for.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value; `None` for a scheme we do not
/// know or a bearer challenge without a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k=v, k="quoted \"v\""` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
}

/// `docker login`: check `user`/`password` against the registry of
/// `domain` (a version check answering its challenge with them), then
/// store them in `cfg.auth_file`.
pub fn login(cfg: &RegistryConfig, domain: &str, user: &str, password: &str) -> Result<()> {
    let mut checked = cfg.clone();
    checked.credentials = Some((user.to_string(), password.to_string()));
    Client::connect(&checked, domain, &registry_host(domain), "", "pull")?;
    let path = cfg.auth_file.as_deref().ok_or_else(|| Error::Auth {
        registry: domain.to_string(),
        reason: "no config file to store credentials in".to_string(),
    })?;
    store_credentials(path, domain, user, password)
}

/// `docker logout`: forget the credentials of `domain`; whether there
/// were any.
pub fn logout(cfg: &RegistryConfig, domain: &str) -> Result<bool> {
    match cfg.auth_file.as_deref() {
        Some(path) => remove_credentials(path, domain),
        None => Ok(false),
    }
}

fn registry_host(domain: &str) -> String {
    if domain == DEFAULT_DOMAIN {
        crate::reference::DEFAULT_REGISTRY_HOST.to_string()
    } else {
        domain.to_string()
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_auth_file() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The key of a registry in the `auths` map (Docker Hub's is its v1 URL).
pub fn auth_key(domain: &str) -> String {
    if domain == DEFAULT_DOMAIN {
        DEFAULT_AUTH_KEY.to_string()
    } else {
        domain.to_string()
    }
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let raw = match std::fs::read(path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::InvalidConfig {
            id: path.display().to_string(),
            reason: "not a JSON object".to_string(),
        }),
        Err(e) => Err(Error::json(path.display().to_string(), e)),
    }
}

/// The credentials stored for `domain` in `path`: `(user, password)`.
/// A missing file or entry is `None`; a malformed one an error.
pub fn credentials(path: &Path, domain: &str) -> Result<Option<(String, String)>> {
    let config = read_config(path)?;
    let key = auth_key(domain);
    let Some(entry) = config.get("auths").and_then(|a| {
        a.get(&key).or_else(|| {
            // Docker also accepts keys written as URLs (`https://host/v1/`).
            a.as_object()?.iter().find_map(|(k, v)| {
                let host = k
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                (host.split('/').next() == Some(domain)).then_some(v)
            })
        })
    }) else {
        return Ok(None);
    };
    let bad = |reason: &str| Error::InvalidConfig {
        id: format!("{} auths[{key:?}]", path.display()),
        reason: reason.to_string(),
    };
    if let (Some(Value::String(u)), Some(Value::String(p))) =
        (entry.get("username"), entry.get("password"))
    {
        return Ok(Some((u.clone(), p.clone())));
    }
    let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
        return Ok(None);
    };
    if auth.is_empty() {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("auth is not base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| bad("auth is not UTF-8"))?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| bad("auth is not user:password"))?;
    Ok(Some((user.to_string(), pass.to_string())))
}

/// Store `user`/`password` for `domain` in `path` (created mode 0600, its
/// other content kept), as `docker login` does after the registry accepted
/// them. [`login`](crate::ImageStore) checks them first; this only writes.
pub fn store_credentials(path: &Path, domain: &str, user: &str, password: &str) -> Result<()> {
    let mut config = read_config(path)?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let entry = serde_json::json!({ "auth": STANDARD.encode(format!("{user}:{password}")) });
    if let Value::Object(a) = auths {
        a.insert(auth_key(domain), entry);
    }
    write_config(path, &config)
}

/// Remove the credentials of `domain` from `path`; whether there were any.
pub fn remove_credentials(path: &Path, domain: &str) -> Result<bool> {
    let mut config = read_config(path)?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(&auth_key(domain)))
        .is_some();
    if removed {
        write_config(path, &config)?;
    }
    Ok(removed)
}

fn write_config(path: &Path, config: &Map<String, Value>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
    }
    let mut text = serde_json::to_vec_pretty(config).map_err(|e| Error::json("config.json", e))?;
    text.push(b'\n');
    dunnage_base::fs::write_atomic(path, &text, 0o600).map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=http://a/t , service="s\"q""#),
            Some(Challenge::Bearer {
                realm: "http://a/t".into(),
                service: Some("s\"q".into()),
                scope: None
            })
        );
        for bad in [
            "",
            "Bearer",
            "Bearer service=x",
            "Negotiate abc",
            "Bearer realm=\"",
            "\u{0}==",
        ] {
            assert!(
                !matches!(parse_challenge(bad), Some(Challenge::Bearer { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_round_trip_and_keep_other_settings() {
        let dir = std::env::temp_dir().join(format!(
            "dunnage-test-auth-{}",
            dunnage_base::rand::random_hex(8).unwrap()
        ));
        let path = dir.join("config.json");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            br#"{"psFormat":"x","auths":{"other:1":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        store_credentials(&path, "127.0.0.1:5000", "me", "p:w").unwrap();
        store_credentials(&path, "docker.io", "hub", "pw").unwrap();
        assert_eq!(
            credentials(&path, "127.0.0.1:5000").unwrap(),
            Some(("me".into(), "p:w".into()))
        );
        assert_eq!(
            credentials(&path, "other:1").unwrap(),
            Some(("a".into(), "b".into()))
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert!(v["auths"][DEFAULT_AUTH_KEY]["auth"].is_string());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(remove_credentials(&path, "127.0.0.1:5000").unwrap());
        assert!(!remove_credentials(&path, "127.0.0.1:5000").unwrap());
        assert_eq!(credentials(&path, "127.0.0.1:5000").unwrap(), None);
        for bad in [
            &b"[1]"[..],
            b"{",
            br#"{"auths":{"h":{"auth":"!!"}}}"#,
            br#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                credentials(&path, "h").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
