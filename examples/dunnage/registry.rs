//! The registry verbs of the `dunnage` example: pull, push, login, logout,
//! and `info`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use dunnage::image::registry::{
    PullEvent, PullOptions, PullStatus, PushCompression, PushOptions, RegistryConfig, auth,
};
use dunnage::image::time::human_size;
use dunnage::image::{ImageStore, Reference};

use super::{Args, Res};

/// Registry settings from the environment: `DUNNAGE_INSECURE_REGISTRIES`
/// and `DUNNAGE_REGISTRY_MIRRORS` (comma-separated), like dockerd's
/// `insecure-registries` and `registry-mirrors`.
fn config() -> RegistryConfig {
    let list = |var: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    RegistryConfig {
        insecure: list("DUNNAGE_INSECURE_REGISTRIES"),
        mirrors: list("DUNNAGE_REGISTRY_MIRRORS"),
        ..RegistryConfig::default()
    }
}

/// Docker's per-layer lines: on a terminal one line per layer, redrawn in
/// place; otherwise a line per state change (no byte counts).
struct Lines {
    tty: bool,
    shown: usize,
    text: Vec<String>,
}

impl Lines {
    fn event(&mut self, e: &PullEvent) {
        let id = &e.digest.hex()[..12];
        let status = match &e.status {
            PullStatus::AlreadyExists => "Already exists".to_string(),
            PullStatus::Waiting => "Pulling fs layer".to_string(),
            PullStatus::Downloading { bytes, total } => {
                if !self.tty {
                    return;
                }
                let width = 50;
                let done = (bytes.min(total) * width).checked_div(*total).unwrap_or(0) as usize;
                format!(
                    "Downloading [{}>{}] {}/{}",
                    "=".repeat(done),
                    " ".repeat(width as usize - done),
                    human_size(*bytes),
                    human_size(*total)
                )
            }
            PullStatus::DownloadComplete => "Download complete".to_string(),
            PullStatus::Extracting => "Extracting".to_string(),
            PullStatus::PullComplete => "Pull complete".to_string(),
            _ => return,
        };
        let line = format!("{id}: {status}");
        let mut out = std::io::stdout();
        if !self.tty {
            let _ = writeln!(out, "{line}");
            return;
        }
        if self.text.len() < e.layers {
            self.text.resize(e.layers, String::new());
        }
        self.text[e.layer] = line;
        // Go up to the layer's line, rewrite it, come back down.
        if self.shown <= e.layer {
            for l in &self.text[self.shown..=e.layer] {
                let _ = writeln!(out, "{l}");
            }
            self.shown = e.layer + 1;
        } else {
            let up = self.shown - e.layer;
            let _ = write!(out, "\x1b[{up}A\r\x1b[2K{}\r\x1b[{up}B", self.text[e.layer]);
        }
        let _ = out.flush();
    }
}

/// `pull [--platform P] [-q] REF`.
pub fn pull(root: &Path, a: &Args) -> Res {
    let r = a.exactly(1, "dunnage pull")?;
    let reference = Reference::parse(super::text(&r[0])?)?;
    let quiet = a.has(&["-q", "--quiet"]);
    let store = ImageStore::open(root)?;
    let mut lines = Lines {
        tty: std::io::stdout().is_terminal(),
        shown: 0,
        text: Vec::new(),
    };
    let mut on = |e: &PullEvent| lines.event(e);
    if !quiet {
        let what = reference.tag().map_or_else(
            || {
                reference
                    .digest()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            },
            str::to_string,
        );
        println!("{what}: Pulling from {}", reference.path());
    }
    let pulled = store.pull(
        &reference,
        PullOptions {
            registry: config(),
            platform: a.value(&["--platform"])?.map(str::parse).transpose()?,
            events: if quiet { None } else { Some(&mut on) },
            ..PullOptions::default()
        },
    )?;
    if !quiet {
        println!("Digest: {}", pulled.digest);
        if pulled.downloaded > 0 || pulled.new {
            println!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        } else {
            println!("Status: Image is up to date for {}", reference.familiar());
        }
    }
    println!("{reference}");
    Ok(())
}

/// `push [--zstd] [--chunk BYTES] REF`.
pub fn push(root: &Path, a: &Args) -> Res {
    let r = a.exactly(1, "dunnage push")?;
    let reference = Reference::parse(super::text(&r[0])?)?;
    let store = ImageStore::open(root)?;
    println!("The push refers to repository [{}]", reference.name());
    let mut on = |line: &str| println!("{line}");
    let pushed = store.push(
        &reference,
        PushOptions {
            registry: config(),
            compression: if a.has(&["--zstd"]) {
                PushCompression::Zstd
            } else {
                PushCompression::Gzip
            },
            chunk_size: a.value(&["--chunk"])?.map(str::parse).transpose()?,
            events: Some(&mut on),
            ..PushOptions::default()
        },
    )?;
    println!(
        "{}: digest: {} size: {}",
        reference.tag().unwrap_or_default(),
        pushed.digest,
        pushed.size
    );
    Ok(())
}

/// The registry a login names: `docker.io` when none is given.
fn domain(a: &Args) -> Res<String> {
    match a.rest.as_slice() {
        [] => Ok("docker.io".to_string()),
        [d] => {
            let d = super::text(d)?
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let d = d.strip_suffix("/v1").unwrap_or(d);
            Ok(if d == "index.docker.io" || d == "registry-1.docker.io" {
                "docker.io".to_string()
            } else {
                d.to_string()
            })
        }
        _ => Err("\"dunnage login\" requires at most 1 argument".into()),
    }
}

/// `login [-u USER] [--password-stdin] [REGISTRY]`.
pub fn login(a: &Args) -> Res {
    let domain = domain(a)?;
    let user = match a.value(&["-u", "--username"])? {
        Some(u) => u.to_string(),
        None => return Err("a username is needed: -u USER".into()),
    };
    let password = match a.value(&["-p", "--password"])? {
        Some(p) => p.to_string(),
        None if a.has(&["--password-stdin"]) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        None => return Err("a password is needed: --password-stdin".into()),
    };
    if password.is_empty() {
        return Err("password is empty".into());
    }
    auth::login(&config(), &domain, &user, &password)?;
    println!("Login Succeeded");
    Ok(())
}

/// `logout [REGISTRY]`.
pub fn logout(a: &Args) -> Res {
    let domain = domain(a)?;
    if auth::logout(&config(), &domain)? {
        println!("Removing login credentials for {}", auth::auth_key(&domain));
    } else {
        println!("Not logged in to {}", auth::auth_key(&domain));
    }
    Ok(())
}

/// `info`: the store, its driver and counts, the kernel and cgroup version.
pub fn info(root: &Path) -> Res {
    let store = ImageStore::open(root)?;
    let images = store.list()?.len();
    let layers = std::fs::read_dir(root.join("image/overlay2/layerdb/sha256"))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    println!("Images: {images}");
    println!("Layers: {layers}");
    println!("Storage Driver: overlay2");
    println!("Dunnage Root Dir: {}", root.display());
    println!("Kernel Version: {}", kernel.trim());
    println!("Cgroup Version: {cgroup}");
    println!("Architecture: {}", std::env::consts::ARCH);
    Ok(())
}
