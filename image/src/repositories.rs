//! `repositories.json`: the tags and digest references of the images.
//!
//! ```json
//! {"Repositories":{"busybox":{"busybox:latest":"sha256:<id>"}}}
//! ```
//! Keys are familiar names, as Docker writes them; in memory every
//! reference is normalised ([`Reference`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::fsutil::{read_limited, write_atomic};
use crate::reference::Reference;

const MAX_FILE: u64 = 64 << 20;

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, ImageId>>,
}

/// The reference store of one data-root.
#[derive(Debug)]
pub struct Repositories {
    path: PathBuf,
    refs: BTreeMap<Reference, ImageId>,
}

impl Repositories {
    /// Read `path` (an absent file is an empty store).
    pub fn open(path: &Path) -> Result<Repositories> {
        let mut refs = BTreeMap::new();
        if let Some(file) = match std::fs::File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("open", path, e)),
        } {
            let raw = read_limited(file, MAX_FILE, &path.display().to_string())?;
            let disk: OnDisk = serde_json::from_slice(&raw)
                .map_err(|e| Error::json(path.display().to_string(), e))?;
            for (text, id) in disk.repositories.into_values().flatten() {
                refs.insert(Reference::parse(&text)?, id);
            }
        }
        Ok(Repositories {
            path: path.to_path_buf(),
            refs,
        })
    }

    fn save(&self) -> Result<()> {
        let mut disk = OnDisk::default();
        for (r, id) in &self.refs {
            disk.repositories
                .entry(r.familiar_name())
                .or_default()
                .insert(r.familiar(), id.clone());
        }
        let raw = serde_json::to_vec(&disk).map_err(|e| Error::json("repositories.json", e))?;
        write_atomic(&self.path, &raw, 0o600)
    }

    /// Point `reference` at `id`, replacing what it named before (returned).
    pub fn add(&mut self, reference: &Reference, id: &ImageId) -> Result<Option<ImageId>> {
        let old = self.refs.insert(reference.clone(), id.clone());
        if old.as_ref() != Some(id) {
            self.save()?;
        }
        Ok(old)
    }

    /// Point every reference of `references` at `id`, writing the file once.
    pub fn add_all(&mut self, references: &[Reference], id: &ImageId) -> Result<()> {
        let mut changed = false;
        for r in references {
            changed |= self.refs.insert(r.clone(), id.clone()).as_ref() != Some(id);
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    /// Remove `reference`; returns the image it named.
    pub fn remove(&mut self, reference: &Reference) -> Result<Option<ImageId>> {
        let old = self.refs.remove(reference);
        if old.is_some() {
            self.save()?;
        }
        Ok(old)
    }

    /// The image `reference` names.
    pub fn get(&self, reference: &Reference) -> Option<&ImageId> {
        self.refs.get(reference)
    }

    /// The references naming `id`, sorted.
    pub fn references(&self, id: &ImageId) -> Vec<Reference> {
        self.refs
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every reference and its image.
    pub fn all(&self) -> impl Iterator<Item = (&Reference, &ImageId)> {
        self.refs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_familiar_names_as_docker_does() {
        let dir = dunnage_testsupport::TempDir::new("repos").unwrap();
        let path = dir.join("repositories.json");
        let id: ImageId = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let mut repos = Repositories::open(&path).unwrap();
        repos
            .add(&Reference::parse("busybox").unwrap(), &id)
            .unwrap();
        repos
            .add(&Reference::parse("quay.io/x/y:2").unwrap(), &id)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"Repositories":{{"busybox":{{"busybox:latest":"{id}"}},"quay.io/x/y":{{"quay.io/x/y:2":"{id}"}}}}}}"#
            )
        );
        let again = Repositories::open(&path).unwrap();
        assert_eq!(
            again.get(&Reference::parse("docker.io/library/busybox:latest").unwrap()),
            Some(&id)
        );
        assert_eq!(again.references(&id).len(), 2);
        std::fs::write(&path, b"{\"Repositories\":{\"x\":{\"x:latest\":\"nope\"}}}").unwrap();
        assert!(Repositories::open(&path).is_err());
    }
}
