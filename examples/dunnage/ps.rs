//! `ps [-a] [-q] [--no-trunc] [-n N] [-l] [-f KEY=VALUE]...`: docker's
//! container list, newest first, and its filters: `status`, `name` (a
//! substring, `^` and `$` anchoring it), `id` (a prefix), `exited` (a
//! code) and `label` (`KEY` or `KEY=VALUE`); several values of one key
//! are alternatives, different keys must all match.

use std::time::SystemTime;

use dunnage::container::{ContainerInfo, ContainerStore};

use crate::flags::Parsed;
use crate::format;
use crate::template::Template;
use crate::verbs::Fail;

/// The statuses docker's `status` filter knows.
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// The filters of `-f`, by key.
#[derive(Default)]
struct Filters(Vec<(String, String)>);

impl Filters {
    fn parse(p: &Parsed) -> Result<Filters, Fail> {
        let mut out = Vec::new();
        for f in p.all("filter") {
            let bad = || Fail {
                code: 1,
                msg: format!("Error response from daemon: Invalid filter '{f}'"),
            };
            let Some((k, v)) = f.split_once('=') else {
                return Err(crate::messages::flag_error(
                    "ps",
                    &format!(
                        "invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
                    ),
                ));
            };
            let k = k.to_ascii_lowercase();
            match k.as_str() {
                "status" if !STATUSES.contains(&v) => return Err(bad()),
                "exited" if v.parse::<i32>().is_err() => {
                    return Err(Fail {
                        code: 1,
                        msg: format!(
                            "Error response from daemon: strconv.Atoi: parsing \"{v}\": invalid syntax"
                        ),
                    });
                }
                "status" | "name" | "id" | "exited" | "label" => {}
                _ => {
                    return Err(Fail {
                        code: 1,
                        msg: format!("Error response from daemon: Invalid filter '{k}'"),
                    });
                }
            }
            out.push((k, v.to_string()));
        }
        Ok(Filters(out))
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Whether `c` passes every key's filter.
    fn pass(&self, c: &ContainerInfo) -> bool {
        let status = c.status.to_string();
        let one = |k: &str, v: &str| match k {
            "status" => status == v,
            "name" => name_matches(&c.spec.name, v),
            "id" => c.spec.id.starts_with(v),
            "exited" => {
                status == "exited" && c.state.exit_code.map(|x| x.to_string()) == Some(v.into())
            }
            "label" => match v.split_once('=') {
                Some((lk, lv)) => c.spec.labels.get(lk).is_some_and(|x| x == lv),
                None => c.spec.labels.contains_key(v),
            },
            _ => false,
        };
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.iter().all(|k| {
            self.0
                .iter()
                .filter(|(fk, _)| fk == k)
                .any(|(_, v)| one(k, v))
        })
    }
}

/// docker's `name` filter is a regular expression; this takes the common
/// forms: a substring, anchored by a leading `^` or a trailing `$`.
fn name_matches(name: &str, pattern: &str) -> bool {
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
    match (pattern.strip_prefix('^'), pattern.strip_suffix('$')) {
        (Some(p), _) if p.ends_with('$') => name == &p[..p.len() - 1],
        (Some(p), _) => name.starts_with(p),
        (None, Some(p)) => name.ends_with(p),
        (None, None) => name.contains(pattern),
    }
}

/// `dunnage ps`.
pub fn ps(store: &ContainerStore, p: &Parsed) -> Result<u8, Fail> {
    let filters = Filters::parse(p)?;
    let last = match (p.on("latest"), p.get("last")) {
        (true, _) => Some(1),
        (false, Some(n)) => n.parse::<i64>().ok().and_then(|n| usize::try_from(n).ok()),
        (false, None) => None,
    };
    let mut list = store.list()?;
    list.sort_by(|a, b| b.state.created_at.cmp(&a.state.created_at));
    // -n/-l and the status filter look at every container, as -a does.
    let all = p.on("all") || last.is_some() || filters.has("status");
    list.retain(|c| {
        (all || matches!(c.status.to_string().as_str(), "running" | "paused")) && filters.pass(c)
    });
    if let Some(n) = last {
        list.truncate(n);
    }
    let now = SystemTime::now();
    let no_trunc = p.on("no-trunc");
    // A format wins over -q, as docker's; `table` alone is the default.
    let format = p
        .get("format")
        .filter(|f| f.trim() != "table")
        .map(Format::parse)
        .transpose()?;
    let mut rows = Vec::new();
    let mut objects = Vec::new();
    for c in &list {
        let status = c.status.to_string();
        let id = if no_trunc {
            c.spec.id.clone()
        } else {
            c.spec.short_id().to_string()
        };
        if p.on("quiet") && format.is_none() {
            println!("{id}");
            continue;
        }
        let image = c
            .spec
            .image_name
            .clone()
            .or_else(|| c.spec.image.clone())
            .unwrap_or_default();
        let row = vec![
            id,
            image,
            format::ps_command(&c.spec.argv, no_trunc),
            dunnage::image::time::parse_rfc3339(&c.state.created_at).map_or_else(
                || "N/A".to_string(),
                |t| dunnage::image::time::human_since(t, now),
            ),
            format::ps_status(
                &status,
                c.state.started_at.as_deref(),
                c.state.finished_at.as_deref(),
                c.state.exit_code,
                now,
            ),
            if status == "running" || status == "paused" {
                crate::network::ps_ports(&c.spec.network)
            } else {
                String::new()
            },
            c.spec.name.clone(),
        ];
        if format.is_some() {
            objects.push(context(c, &row));
        }
        rows.push(row);
    }
    if let Some(f) = format {
        return f.print(&objects);
    }
    if !p.on("quiet") {
        print!(
            "{}",
            format::table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES"
                ],
                &rows
            )
        );
    }
    Ok(0)
}

/// docker's `ps --format` fields of a container (its `ContainerContext`),
/// from the cells of its `ps` row and the container.
fn context(c: &ContainerInfo, row: &[String]) -> serde_json::Value {
    use dunnage::container::Network;
    let cell = |i: usize| row.get(i).cloned().unwrap_or_default();
    // `2026-12-07 18:27:47 +0000 UTC` from the stored RFC 3339 UTC time.
    let created = &c.state.created_at;
    let created_at = match created.split_once('T') {
        Some((d, t)) => format!("{d} {} +0000 UTC", t.get(..8).unwrap_or(t)),
        None => created.clone(),
    };
    let labels: Vec<String> = c
        .spec
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let networks = match &c.spec.network {
        Network::None => "none".to_string(),
        Network::Host => "host".to_string(),
        Network::Bridge { name, .. } if name == dunnage::container::network::DEFAULT_NETWORK => {
            "bridge".to_string()
        }
        Network::Bridge { name, .. } => name.clone(),
        _ => String::new(),
    };
    serde_json::json!({
        "Command": cell(2),
        "CreatedAt": created_at,
        "ID": cell(0),
        "Image": cell(1),
        "Labels": labels.join(","),
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": cell(6),
        "Networks": networks,
        "Ports": cell(5),
        "RunningFor": cell(3),
        "State": c.status.to_string(),
        "Status": cell(4),
    })
}

/// The column titles of `ps --format 'table ...'`.
const TITLES: [(&str, &str); 13] = [
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Labels", "LABELS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Mounts", "MOUNTS"),
    ("Names", "NAMES"),
    ("Networks", "NETWORKS"),
    ("Ports", "PORTS"),
    ("RunningFor", "CREATED"),
    ("State", "STATE"),
    ("Status", "STATUS"),
];

/// A `--format` template: a table (`table ...`, a header and columns
/// laid out at tabs) or lines.
pub struct Format {
    /// A table: a header, then columns laid out at tabs.
    pub table: bool,
    /// The template of one line.
    pub template: Template,
}

impl Format {
    /// As docker prepares it: `table ` cut off, blanks trimmed, `\t` and
    /// `\n` written as such made real.
    pub fn parse(text: &str) -> Result<Format, Fail> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&body).map_err(|e| Fail {
            code: 1,
            msg: e
                .msg
                .replace("template parsing error:", "failed to parse template:"),
        })?;
        Ok(Format { table, template })
    }

    fn render(&self, obj: &serde_json::Value) -> Result<String, Fail> {
        self.template.render(obj).map_err(|e| Fail {
            code: 1,
            msg: e.go_field_error("*formatter.ContainerContext"),
        })
    }

    fn print(&self, objects: &[serde_json::Value]) -> Result<u8, Fail> {
        if !self.table {
            for o in objects {
                println!("{}", self.render(o)?);
            }
            return Ok(0);
        }
        let titles: serde_json::Map<String, serde_json::Value> = TITLES
            .iter()
            .map(|(k, t)| (k.to_string(), serde_json::Value::from(*t)))
            .collect();
        let header = self.render(&serde_json::Value::Object(titles))?;
        let cells = |line: &str| -> Vec<String> { line.split('\t').map(str::to_string).collect() };
        let mut rows = Vec::new();
        for o in objects {
            rows.push(cells(&self.render(o)?));
        }
        let header = cells(&header);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        print!("{}", format::table(&header, &rows));
        Ok(0)
    }
}
