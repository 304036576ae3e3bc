//! Read-only views: `docker images` rows, `docker history` and
//! `docker image inspect`.

use serde_json::{Value, json};

use crate::config::ImageId;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::ImageStore;

/// One image as `docker images` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The image.
    pub id: ImageId,
    /// References naming it (empty for a dangling image).
    pub references: Vec<Reference>,
    /// `created` of the config.
    pub created: Option<String>,
    /// Sum of its layers' sizes.
    pub size: u64,
}

/// One row of `docker history`, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image ID on the top row, `None` (`<missing>`) below.
    pub id: Option<ImageId>,
    /// When the step ran.
    pub created: Option<String>,
    /// The step's command.
    pub created_by: String,
    /// Size of the layer it made (0 for empty layers).
    pub size: u64,
    /// Comment.
    pub comment: String,
    /// Whether the step made no layer.
    pub empty_layer: bool,
}

/// An image [`ImageStore::images_report`] could not list.
#[derive(Debug)]
pub struct BrokenImage {
    /// The image.
    pub id: ImageId,
    /// Why: its config cannot be read, or a layer of its chain is missing
    /// or damaged.
    pub error: Error,
}

/// Every image of the store: those listed, and those that could not be.
#[derive(Debug, Default)]
pub struct ImageReport {
    /// The images listed, like `docker images -a`.
    pub images: Vec<ImageSummary>,
    /// The images that could not be read, each with its error.
    pub broken: Vec<BrokenImage>,
}

impl ImageStore {
    /// All images that can be read, like `docker images -a`; a damaged
    /// image is left out (see [`images_report`](Self::images_report)).
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        Ok(self.images_report()?.images)
    }

    /// All images, and the damaged ones with their error: one image whose
    /// config or layer chain is broken does not hide the others.
    pub fn images_report(&self) -> Result<ImageReport> {
        let repos = self.repos()?;
        let mut report = ImageReport::default();
        for id in self.list()? {
            let summary = self.config(&id).and_then(|config| {
                Ok(ImageSummary {
                    references: repos.references(&id),
                    created: config.file().created.clone(),
                    size: match config.chain_id() {
                        Some(top) => self.layers().chain_size(&top)?,
                        None => 0,
                    },
                    id: id.clone(),
                })
            });
            match summary {
                Ok(s) => report.images.push(s),
                Err(error) => report.broken.push(BrokenImage { id, error }),
            }
        }
        Ok(report)
    }

    /// Sum of the sizes of an image's layers.
    pub fn size(&self, id: &ImageId) -> Result<u64> {
        let Some(top) = self.config(id)?.chain_id() else {
            return Ok(0);
        };
        Ok(self.layers().chain_size(&top)?)
    }

    /// `docker history`: one row per history entry (or per layer when the
    /// config has no history), newest first.
    pub fn history(&self, id: &ImageId) -> Result<Vec<HistoryRow>> {
        let config = self.config(id)?;
        let layers = match config.chain_id() {
            Some(top) => self.layers().chain(&top)?,
            None => Vec::new(),
        };
        let mut sizes = layers.iter().map(|l| l.size);
        let mut rows: Vec<HistoryRow> = if config.file().history.is_empty() {
            sizes
                .map(|size| HistoryRow {
                    id: None,
                    created: None,
                    created_by: String::new(),
                    size,
                    comment: String::new(),
                    empty_layer: false,
                })
                .collect()
        } else {
            config
                .file()
                .history
                .iter()
                .map(|h| HistoryRow {
                    id: None,
                    created: h.created.clone(),
                    created_by: h.created_by.clone().unwrap_or_default(),
                    size: if h.empty_layer {
                        0
                    } else {
                        sizes.next().unwrap_or(0)
                    },
                    comment: h.comment.clone().unwrap_or_default(),
                    empty_layer: h.empty_layer,
                })
                .collect()
        };
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top.id = Some(id.clone());
        }
        Ok(rows)
    }

    /// `docker image inspect`: the same fields and names, with the overlay2
    /// GraphDriver data of the top layer.
    pub fn inspect(&self, id: &ImageId) -> Result<Value> {
        let config = self.config(id)?;
        let f = config.file();
        let refs = self.references(id)?;
        let tags: Vec<String> = refs
            .iter()
            .filter(|r| r.digest().is_none())
            .map(Reference::familiar)
            .collect();
        let digests: Vec<String> = refs
            .iter()
            .filter(|r| r.digest().is_some())
            .map(Reference::familiar)
            .collect();
        let other = |k: &str| f.other.get(k).cloned().unwrap_or(Value::Null);
        let size = self.size(id)?;
        let graph = match config.chain_id() {
            Some(top) => {
                let layer = self.layers().get(&top)?;
                let driver = self.layers().driver();
                let home = driver.diff_dir(&layer.cache_id);
                let dir = home.parent().map(|p| p.to_path_buf()).unwrap_or_default();
                let mut data = serde_json::Map::new();
                let lowers = driver
                    .lower_dirs(&layer.cache_id)
                    .map_err(dunnage_layerstore::Error::from)?;
                if !lowers.is_empty() {
                    let joined: Vec<String> =
                        lowers.iter().map(|p| p.display().to_string()).collect();
                    data.insert("LowerDir".into(), joined.join(":").into());
                }
                data.insert(
                    "MergedDir".into(),
                    dir.join("merged").display().to_string().into(),
                );
                data.insert("UpperDir".into(), home.display().to_string().into());
                data.insert(
                    "WorkDir".into(),
                    dir.join("work").display().to_string().into(),
                );
                json!({ "Data": data, "Name": "overlay2" })
            }
            None => json!({ "Data": null, "Name": "overlay2" }),
        };
        let run_config = serde_json::to_value(&f.config)
            .map(with_docker_nulls)
            .map_err(|e| Error::json("config", e))?;
        Ok(json!({
            "Id": id.to_string(),
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": self.imagedb().parent(id)?.map(|p| p.to_string()).unwrap_or_default(),
            "Comment": other("comment").as_str().unwrap_or_default(),
            "Created": f.created.clone().unwrap_or_default(),
            "Container": other("container").as_str().unwrap_or_default(),
            "ContainerConfig": with_docker_nulls(other("container_config")),
            "DockerVersion": other("docker_version").as_str().unwrap_or_default(),
            "Author": f.author.clone().unwrap_or_default(),
            "Config": run_config,
            "Architecture": f.architecture.clone().unwrap_or_default(),
            "Variant": f.variant,
            "Os": f.os.clone().unwrap_or_default(),
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": graph,
            "RootFS": { "Type": f.rootfs.kind, "Layers": f.rootfs.diff_ids },
            "Metadata": { "LastTagTime": self.imagedb().last_updated(id)?.unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        }))
    }
}

/// Docker's inspect prints a container config through a Go struct whose
/// `Env`, `Cmd`, `Volumes`, `Entrypoint`, `OnBuild` and `Labels` are never
/// omitted: absent ones show as `null`.
fn with_docker_nulls(mut config: Value) -> Value {
    if let Some(map) = config.as_object_mut() {
        for key in ["Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "Volumes"] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    config
}
