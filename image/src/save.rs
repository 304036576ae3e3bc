//! `docker save`: a docker-archive tar that Docker 20.10's `docker load`
//! and `podman load` read, giving the same image IDs.
//!
//! ```text
//! manifest.json            [{"Config":"<id hex>.json","RepoTags":[..],"Layers":["<chain hex>/layer.tar",..]}]
//! repositories             {"busybox":{"latest":"<top chain hex>"}}
//! <id hex>.json            the config, byte for byte
//! <chain hex>/VERSION      1.0
//! <chain hex>/json         {"id":..,"parent":..}
//! <chain hex>/layer.tar    the layer tar from tar-split, byte for byte
//! ```
//! Layers stream straight into the output; the output must be seekable so
//! each layer's tar header gets its size after the bytes are written.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use dunnage_base::fs::TempFile;

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::layout::ArchiveManifest;
use crate::progress::{Counting, Progress, ProgressFn};
use crate::reference::Reference;
use crate::store::ImageStore;

impl ImageStore {
    /// The images `names` select with the references to record for each
    /// (a name that is a tag records that tag; an ID records none).
    pub(crate) fn select(&self, names: &[&str]) -> Result<Vec<(ImageId, Vec<Reference>)>> {
        let mut out: Vec<(ImageId, Vec<Reference>)> = Vec::new();
        for name in names {
            let id = self.resolve(name)?;
            let refs = self.references(&id)?;
            let tag = Reference::parse(name)
                .ok()
                .filter(|r| r.tag().is_some() && refs.contains(r));
            match out.iter_mut().find(|(i, _)| *i == id) {
                Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
                None => out.push((id, tag.into_iter().collect())),
            }
        }
        Ok(out)
    }

    /// Write the images `names` select as a docker-archive tar to `out`.
    pub fn save<W: Write + Seek>(&self, names: &[&str], out: W) -> Result<W> {
        self.save_with_progress(names, out, None)
    }

    /// [`save`](Self::save) into the file `path` (`docker save -o`), mode
    /// 0600 as docker writes it. The archive is written under a random
    /// temporary name in the same directory, created exclusively without
    /// following symlinks, and renamed over `path` once complete (a symlink
    /// at `path` is replaced, not followed); on error it is removed.
    pub fn save_to_file(
        &self,
        names: &[&str],
        path: &Path,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<()> {
        let name = path.file_name().ok_or_else(|| {
            Error::io(
                "create",
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
            )
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = TempFile::new_in(dir, "dunnage-save", 0o600)
            .map_err(|e| Error::io("create", dir, e))?;
        let out = io::BufWriter::with_capacity(1 << 20, tmp.file());
        let out = self.save_with_progress(names, out, progress)?;
        out.into_inner()
            .map_err(|e| Error::io("write", tmp.path(), e.into_error()))?;
        let at = tmp.path();
        tmp.persist(name).map_err(|e| Error::io("rename", at, e))
    }

    /// [`save`](Self::save), reporting each layer written to `progress`.
    pub fn save_with_progress<W: Write + Seek>(
        &self,
        names: &[&str],
        out: W,
        mut progress: Option<ProgressFn<'_>>,
    ) -> Result<W> {
        let mut tar = TarOut { w: out };
        let mut manifests = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut written = HashSet::new();
        let selected = self.select(names)?;
        let images = selected.len();
        for (image, (id, tags)) in selected.into_iter().enumerate() {
            let config = self.config(&id)?;
            let mtime = config
                .file()
                .created
                .as_deref()
                .and_then(crate::time::parse_rfc3339);
            let mtime = mtime
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let mut members = Vec::new();
            let mut parent: Option<String> = None;
            let chain = match config.chain_id() {
                Some(top) => self.layers().chain(&top)?,
                None => Vec::new(),
            };
            let layers = chain.len();
            for (index, layer) in chain.into_iter().enumerate() {
                let dir = layer.chain_id.0.hex().to_string();
                if written.insert(dir.clone()) {
                    tar.dir(&dir, mtime)?;
                    tar.file(&format!("{dir}/VERSION"), b"1.0", mtime)?;
                    let v1 = serde_json::json!({ "id": dir, "parent": parent });
                    tar.file(&format!("{dir}/json"), v1.to_string().as_bytes(), mtime)?;
                    let mut stream = Counting {
                        inner: self.layers().tar_stream(&layer.chain_id)?,
                        state: Progress {
                            image,
                            images,
                            layer: index,
                            layers,
                            total: layer.size,
                            ..Progress::default()
                        },
                        report: progress.as_deref_mut(),
                    };
                    tar.stream(&format!("{dir}/layer.tar"), &mut stream, mtime)?;
                }
                members.push(format!("{dir}/layer.tar"));
                parent = Some(dir);
            }
            let config_name = format!("{}.json", id.hex());
            if written.insert(config_name.clone()) {
                tar.file(&config_name, config.raw(), mtime)?;
            }
            for t in &tags {
                if let (Some(tag), Some(top)) = (t.tag(), &parent) {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.clone());
                }
            }
            let repo_tags =
                (!tags.is_empty()).then(|| tags.iter().map(Reference::familiar).collect());
            manifests.push(ArchiveManifest {
                config: config_name,
                repo_tags,
                layers: members,
            });
        }
        if !repositories.is_empty() {
            let raw =
                serde_json::to_vec(&repositories).map_err(|e| Error::json("repositories", e))?;
            tar.file("repositories", &raw, 0)?;
        }
        let raw = serde_json::to_vec(&manifests).map_err(|e| Error::json("manifest.json", e))?;
        tar.file("manifest.json", &raw, 0)?;
        tar.finish()
    }
}

/// A tar writer on a seekable output.
struct TarOut<W> {
    w: W,
}

fn out_err(e: io::Error) -> Error {
    Error::io("write", "archive", e)
}

impl<W: Write + Seek> TarOut<W> {
    fn header(
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
        mtime: u64,
    ) -> Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(out_err)?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(mtime);
        h.set_cksum();
        Ok(h)
    }

    fn dir(&mut self, name: &str, mtime: u64) -> Result<()> {
        let h = Self::header(
            &format!("{name}/"),
            tar::EntryType::Directory,
            0o755,
            0,
            mtime,
        )?;
        self.w.write_all(h.as_bytes()).map_err(out_err)
    }

    fn file(&mut self, name: &str, data: &[u8], mtime: u64) -> Result<()> {
        let h = Self::header(
            name,
            tar::EntryType::Regular,
            0o644,
            data.len() as u64,
            mtime,
        )?;
        self.w.write_all(h.as_bytes()).map_err(out_err)?;
        self.w.write_all(data).map_err(out_err)?;
        self.pad(data.len() as u64)
    }

    /// Write a member of unknown size: a placeholder header, the bytes,
    /// then the real header over the placeholder.
    fn stream(&mut self, name: &str, r: &mut dyn Read, mtime: u64) -> Result<u64> {
        let at = self.w.stream_position().map_err(out_err)?;
        self.w.write_all(&[0u8; 512]).map_err(out_err)?;
        let size = io::copy(r, &mut self.w).map_err(|e| Error::io("copy layer", name, e))?;
        let end = self.w.stream_position().map_err(out_err)?;
        let h = Self::header(name, tar::EntryType::Regular, 0o644, size, mtime)?;
        self.w.seek(SeekFrom::Start(at)).map_err(out_err)?;
        self.w.write_all(h.as_bytes()).map_err(out_err)?;
        self.w.seek(SeekFrom::Start(end)).map_err(out_err)?;
        self.pad(size)?;
        Ok(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (512 - size % 512) % 512;
        self.w
            .write_all(&[0u8; 512][..rem as usize])
            .map_err(out_err)
    }

    fn finish(mut self) -> Result<W> {
        self.w.write_all(&[0u8; 1024]).map_err(out_err)?;
        self.w.flush().map_err(out_err)?;
        Ok(self.w)
    }
}
