//! `docker import` (a rootfs tarball becomes a one-layer image) and
//! `docker commit` (a container's changes become a new layer on top of its
//! image).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use dunnage_layerstore::Compression;

use crate::config::{ConfigFile, History, ImageConfig, ImageId, RunConfig};
use crate::error::{Error, Result};
use crate::load::LoadOptions;
use crate::load::host_architecture;
use crate::progress::{Counting, Progress, ProgressFn};
use crate::reference::Reference;
use crate::source::decompress;
use crate::spool::Limit;
use crate::store::ImageStore;
use crate::time::format_rfc3339;

/// What a new image's config says beyond its layers (`docker import -c`,
/// `docker commit -c/-m/-a`).
#[derive(Clone, Debug, Default)]
pub struct ImageChanges {
    /// The tag to set.
    pub reference: Option<Reference>,
    /// A new `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// A new `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` entries replacing those with the same key.
    pub env: Vec<String>,
    /// A new working directory.
    pub working_dir: Option<String>,
    /// Labels added or replaced.
    pub labels: BTreeMap<String, String>,
    /// The history comment (`-m`).
    pub comment: Option<String>,
    /// The author (`-a`).
    pub author: Option<String>,
}

impl ImageChanges {
    /// Add one `docker import -c` / `docker commit -c` instruction: `CMD`,
    /// `ENTRYPOINT` (JSON array or shell form), `ENV` (`name value` or
    /// `name=value...`), `WORKDIR`, `LABEL key=value`. What docker refuses
    /// is [`Error::InvalidChange`] with docker's reason (`ENV FOO`: "ENV
    /// must have two arguments").
    pub fn add_instruction(&mut self, change: &str) -> Result<()> {
        let invalid = |reason: &str| Error::InvalidChange {
            change: change.to_string(),
            reason: reason.to_string(),
        };
        let text = change.trim();
        let (word, arg) = match text.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (text, ""),
        };
        let argv = || -> Vec<String> {
            serde_json::from_str(arg)
                .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), arg.into()])
        };
        match word.to_ascii_uppercase().as_str() {
            "CMD" => self.cmd = Some(argv()),
            "ENTRYPOINT" => self.entrypoint = Some(argv()),
            "WORKDIR" if arg.is_empty() => {
                return Err(invalid("WORKDIR requires exactly one argument"));
            }
            "WORKDIR" => self.working_dir = Some(arg.to_string()),
            "ENV" => self.env.extend(env_pairs(arg).map_err(|r| invalid(&r))?),
            "LABEL" => {
                let (k, v) = arg
                    .split_once('=')
                    .ok_or_else(|| invalid("LABEL must be of the form key=value"))?;
                self.labels
                    .insert(k.to_string(), v.trim_matches('"').to_string());
            }
            "" => return Err(invalid("empty instruction")),
            other => {
                return Err(invalid(&format!(
                    "{other} is not a supported change instruction"
                )));
            }
        }
        Ok(())
    }

    fn apply(&self, run: &mut RunConfig) {
        if let Some(c) = &self.cmd {
            run.cmd = Some(c.clone());
        }
        if let Some(e) = &self.entrypoint {
            run.entrypoint = Some(e.clone());
        }
        if let Some(w) = &self.working_dir {
            run.working_dir = Some(w.clone());
        }
        let env = run.env.get_or_insert_with(Vec::new);
        for kv in &self.env {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        if run.env.as_ref().is_some_and(Vec::is_empty) {
            run.env = None;
        }
        if !self.labels.is_empty() {
            run.labels
                .get_or_insert_with(BTreeMap::new)
                .extend(self.labels.clone());
        }
    }
}

impl ImageStore {
    /// `docker import`: the tarball at `path` (plain, gzip or zstd) is the
    /// only layer of a new image. The layer gets the limits of a load
    /// ([`LoadOptions::default`]): at most `max_layer` bytes, and a
    /// compressed tarball expands at most `max_ratio` times
    /// ([`Error::TooLarge`] beyond).
    pub fn import(&self, path: &Path, changes: &ImageChanges) -> Result<ImageId> {
        self.import_with_progress(path, changes, None)
    }

    /// [`import`](Self::import), reporting the bytes read of `path` to
    /// `progress`.
    pub fn import_with_progress(
        &self,
        path: &Path,
        changes: &ImageChanges,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<ImageId> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let total = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let what = path.display().to_string();
        let (kind, tar) = decompress(one_layer(file, total, progress), &what)?;
        let limits = LoadOptions::default();
        let limit = if kind == Compression::None {
            limits.max_layer
        } else {
            limits.max_layer.min(limits.expansion_limit(total))
        };
        let exceeded = Arc::new(AtomicBool::new(false));
        let tar = Limit {
            inner: tar,
            left: limit,
            exceeded: exceeded.clone(),
        };
        let _operation = self.begin_operation()?;
        let layer = match self.layers().register(tar, None, None) {
            Ok(l) => l,
            Err(_) if exceeded.load(Ordering::Relaxed) => {
                return Err(Error::TooLarge { what, limit });
            }
            Err(e) => return Err(e.into()),
        };
        let now = format_rfc3339(SystemTime::now());
        let comment = changes
            .comment
            .clone()
            .unwrap_or_else(|| format!("Imported from {}", path.display()));
        let mut run = RunConfig::default();
        changes.apply(&mut run);
        let mut file = ConfigFile {
            architecture: Some(host_architecture().to_string()),
            os: Some("linux".to_string()),
            created: Some(now.clone()),
            author: changes.author.clone(),
            config: Some(run),
            history: vec![History {
                created: Some(now),
                comment: Some(comment.clone()),
                ..History::default()
            }],
            ..ConfigFile::default()
        };
        file.rootfs.diff_ids.push(layer.diff_id);
        file.other.insert("comment".into(), comment.into());
        self.finish_new_image(&file, &layer.chain_id, None, changes)
    }

    /// `docker commit`: the changes of container `container_id` (its
    /// read-write layer, init layer excluded) on top of `image`.
    pub fn commit(
        &self,
        container_id: &str,
        image: &ImageId,
        changes: &ImageChanges,
    ) -> Result<ImageId> {
        self.commit_with_progress(container_id, image, changes, None)
    }

    /// [`commit`](Self::commit), reporting the registration of the new
    /// layer (after the container's diff is written) to `progress`.
    pub fn commit_with_progress(
        &self,
        container_id: &str,
        image: &ImageId,
        changes: &ImageChanges,
        progress: Option<ProgressFn<'_>>,
    ) -> Result<ImageId> {
        let base = self.config(image)?;
        let mut tmp = self.temp_file()?;
        self.layers().rw_diff(container_id, &mut tmp)?;
        let total = tmp
            .seek(SeekFrom::End(0))
            .and_then(|end| tmp.seek(SeekFrom::Start(0)).map(|_| end))
            .map_err(|e| Error::io("seek", "commit diff", e))?;
        let parent = base.chain_id();
        let _operation = self.begin_operation()?;
        let layer =
            self.layers()
                .register(one_layer(&mut tmp, total, progress), parent.as_ref(), None)?;
        let now = format_rfc3339(SystemTime::now());
        let mut file = base.file().clone();
        changes.apply(file.config.get_or_insert_with(RunConfig::default));
        file.created = Some(now.clone());
        if changes.author.is_some() {
            file.author = changes.author.clone();
        }
        file.rootfs.diff_ids.push(layer.diff_id);
        file.history.push(History {
            created: Some(now),
            author: changes.author.clone(),
            comment: changes.comment.clone(),
            ..History::default()
        });
        file.other.insert("container".into(), container_id.into());
        self.finish_new_image(&file, &layer.chain_id, Some(image), changes)
    }

    fn finish_new_image(
        &self,
        file: &ConfigFile,
        top: &dunnage_layerstore::ChainId,
        parent: Option<&ImageId>,
        changes: &ImageChanges,
    ) -> Result<ImageId> {
        let config = match ImageConfig::from_file(file) {
            Ok(c) => c,
            Err(e) => {
                self.layers().release(top)?;
                return Err(e);
            }
        };
        let locked = self.lock()?;
        let id = self.create_locked(&locked, &config, Some(top), parent)?;
        if let Some(r) = &changes.reference {
            self.set_tag_locked(&locked, r, &id)?;
        }
        Ok(id)
    }
}

/// The `KEY=value` entries of an `ENV` argument, as docker's Dockerfile
/// parser reads them: `name value...` (one pair, the value is the rest) or
/// `name=value ...` (every word a pair).
fn env_pairs(arg: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = arg.split_whitespace();
    let Some(first) = words.next() else {
        return Err("ENV requires at least one argument".to_string());
    };
    if !first.contains('=') {
        let value = arg[first.len()..].trim();
        if value.is_empty() {
            return Err("ENV must have two arguments".to_string());
        }
        return Ok(vec![format!("{first}={value}")]);
    }
    std::iter::once(first)
        .chain(words)
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err("ENV names can not be blank".to_string()),
            Some((k, v)) => Ok(format!("{k}={}", v.trim_matches('"'))),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// A reader of the single layer of an import or commit, counted.
fn one_layer<'a, R: Read>(
    inner: R,
    total: u64,
    report: Option<ProgressFn<'a>>,
) -> Counting<'a, 'a, R> {
    Counting {
        inner,
        state: Progress {
            images: 1,
            layers: 1,
            total,
            ..Progress::default()
        },
        report,
    }
}
