//! config.json to the [`Container`] builder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, LinuxNamespaceType, Spec};
use serde_json::Value;

use super::error::{Error, Result, Warning};
use super::{OciConfig, fields};
use crate::container::{Container, Network, ResourceLimits, Seccomp};
use crate::profile::{DeviceRule, DeviceType, Profile};

/// A config.json converted: the builder, and what the runtime applies
/// itself (the builder has no knob for them).
#[derive(Debug)]
#[non_exhaustive]
pub struct Converted {
    /// The container to create.
    pub container: Container,
    /// The hooks, for the runtime to run at their points.
    pub hooks: Hooks,
    /// `process.consoleSize` (height, width), for the pty.
    pub console_size: Option<(u64, u64)>,
    /// `process.oomScoreAdj`, to write to the init's `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// `linux.cgroupsPath` as written; the builder's cgroup parent is its
    /// directory, the container's cgroup `<parent>/<container id>`.
    pub cgroups_path: Option<PathBuf>,
    /// `annotations` (also set as the container's labels).
    pub annotations: BTreeMap<String, String>,
    /// What was noticed and not refused.
    pub warnings: Vec<Warning>,
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl OciConfig {
    /// Convert to a [`Container`] whose rootfs is `root.path` (relative to
    /// `bundle`), refusing every field the container cannot honour with
    /// [`Error::Unsupported`] naming it.
    pub fn to_container(&self, bundle: &Path) -> Result<Converted> {
        fields::refuse_unsupported(&self.raw)?;
        let spec = &self.spec;
        let version = spec.version();
        if !version.starts_with("1.") {
            return Err(unsupported("ociVersion", format!("{version:?} is not 1.x")));
        }
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "missing"))?;
        let mut c = Container::rootfs(bundle.join(root.path()));
        c.readonly_rootfs(root.readonly().unwrap_or(false));
        let mut warnings = self.warnings.clone();
        let p = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("process", "missing"))?;
        {
            let args = p.args().clone().unwrap_or_default();
            if args.is_empty() {
                return Err(invalid("process.args", "empty"));
            }
            c.entrypoint(args);
            for (i, e) in p.env().iter().flatten().enumerate() {
                let (k, v) = e
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("process.env[{i}]"), "no '='"))?;
                c.env(k, v);
            }
            let cwd = p.cwd();
            if !cwd.is_absolute() {
                return Err(invalid("process.cwd", "not an absolute path"));
            }
            c.current_dir(cwd.to_string_lossy().into_owned());
            user(&mut c, p.user())?;
            c.tty(p.terminal().unwrap_or(false));
            c.no_new_privileges(p.no_new_privileges().unwrap_or(false));
            for r in p.rlimits().iter().flatten() {
                let name = serde_json::to_value(r.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let short = name.strip_prefix("RLIMIT_").unwrap_or(&name);
                c.rlimit(short.to_ascii_lowercase(), r.soft(), r.hard());
            }
            let (sets, caps_warnings) = self
                .raw
                .get("process")
                .map(super::process_capabilities)
                .transpose()?
                .flatten()
                .unwrap_or_default();
            // Unknown names were warned about at parse time.
            warnings.extend(
                caps_warnings
                    .into_iter()
                    .filter(|w| !matches!(w, Warning::UnknownCapability { .. })),
            );
            c.security_profile_mut().capabilities = sets.bounding.clone();
            c.capability_sets(sets);
        }
        if let Some(h) = spec.hostname() {
            c.hostname(h.clone());
        }
        let privileged_rules = devices(&self.raw)?.is_some();
        mounts(&mut c, spec, privileged_rules, &mut warnings)?;
        let annotations: BTreeMap<String, String> = spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &annotations {
            c.label(k.clone(), v.clone());
        }
        let mut cgroups_path = None;
        // No `linux` object: no seccomp, no masked paths, the namespaces
        // check below refuses it.
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| unsupported("linux", "missing: the Container needs its namespaces"))?;
        namespaces(&mut c, linux)?;
        c.security_profile_mut().masked_paths = linux.masked_paths().clone().unwrap_or_default();
        c.security_profile_mut().readonly_paths =
            linux.readonly_paths().clone().unwrap_or_default();
        match self.raw.pointer("/linux/seccomp") {
            Some(s) if !s.is_null() => {
                c.seccomp(Seccomp::Profile(s.to_string()));
            }
            _ => {
                c.seccomp(Seccomp::Unconfined);
            }
        }
        let mut sysctls: Vec<_> = linux.sysctl().iter().flatten().collect();
        sysctls.sort();
        for (k, v) in sysctls {
            c.sysctl(k.clone(), v.clone());
        }
        match linux.rootfs_propagation().as_deref() {
            None | Some("") | Some("private") | Some("rprivate") => {}
            Some(other) => {
                return Err(unsupported(
                    "linux.rootfsPropagation",
                    format!("{other:?}: only private and rprivate are supported"),
                ));
            }
        }
        if let Some(rule) = devices(&self.raw)? {
            check_privileged(&c, rule)?;
            c.privileged(true);
        }
        if let Some(path) = linux.cgroups_path() {
            let s = path.to_string_lossy();
            let parent = s.trim_start_matches('/').rsplit_once('/').map(|(p, _)| p);
            if let Some(parent) = parent.filter(|p| !p.is_empty()) {
                c.cgroup_parent(parent.to_string());
            }
            cgroups_path = Some(path.clone());
        }
        if let Some(r) = linux.resources() {
            c.resources(resources(r)?);
        }
        container_defaults(&c, &mut warnings);
        c.check()
            .map_err(|e| invalid("linux.cgroupsPath", e.to_string()))?;
        Ok(Converted {
            container: c,
            hooks: spec.hooks().clone().unwrap_or_default(),
            console_size: p.console_size().map(|b| (b.height(), b.width())),
            oom_score_adj: p.oom_score_adj(),
            cgroups_path,
            annotations,
            warnings,
        })
    }
}

fn user(c: &mut Container, u: &oci_spec::runtime::User) -> Result<()> {
    c.user(format!("{}:{}", u.uid(), u.gid()));
    if let Some(m) = u.umask()
        && m != 0o022
    {
        return Err(unsupported(
            "process.user.umask",
            format!("{m:#o}: only 0o022 (the default) is supported"),
        ));
    }
    // Docker lists the primary group; more groups than that cannot be
    // given to the builder (it reads them from the rootfs's /etc/group).
    if let Some(g) = u.additional_gids()
        && g.iter().any(|g| *g != u.gid())
    {
        return Err(unsupported(
            "process.user.additionalGids",
            "groups besides the primary one come from the rootfs's /etc/group",
        ));
    }
    Ok(())
}

fn mounts(
    c: &mut Container,
    spec: &Spec,
    privileged: bool,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let profile = if privileged {
        Profile::privileged()
    } else {
        Profile::docker()
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination();
        let kind = m.typ().as_deref().unwrap_or("");
        let options: Vec<String> = m.options().clone().unwrap_or_default();
        let is_bind = kind == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        if let Some(pm) = profile
            .mounts
            .iter()
            .find(|pm| Path::new(&pm.destination) == dest && pm.kind == kind)
        {
            if pm.options != options {
                warnings.push(Warning::MountOptions {
                    field,
                    used: pm.options.clone(),
                });
            }
            continue;
        }
        if !dest.is_absolute() {
            return Err(invalid(format!("{field}.destination"), "not absolute"));
        }
        if is_bind {
            let mut readonly = false;
            for o in &options {
                match o.as_str() {
                    "bind" | "rbind" | "rprivate" | "private" | "rw" => {}
                    "ro" => readonly = true,
                    other => {
                        return Err(unsupported(
                            format!("{field}.options"),
                            format!("{other:?} on a bind mount"),
                        ));
                    }
                }
            }
            let source = m
                .source()
                .as_ref()
                .ok_or_else(|| invalid(format!("{field}.source"), "missing"))?;
            c.bind(source, dest, readonly);
        } else if kind == "tmpfs" {
            c.tmpfs(dest, &options.join(","));
        } else {
            return Err(unsupported(
                format!("{field}.type"),
                format!(
                    "{kind:?} at {}: only bind, tmpfs and the profile's mounts",
                    dest.display()
                ),
            ));
        }
    }
    Ok(())
}

fn namespaces(c: &mut Container, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let list = linux.namespaces().clone().unwrap_or_default();
    let mut network = Network::Host;
    for want in [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ] {
        if !list.iter().any(|n| n.typ() == want) {
            return Err(unsupported(
                "linux.namespaces",
                format!(
                    "no {want:?} namespace: the Container always makes new mount, pid, uts and ipc namespaces"
                ),
            ));
        }
    }
    for (i, n) in list.iter().enumerate() {
        match (n.typ(), n.path()) {
            (LinuxNamespaceType::Network, None) => network = Network::None,
            (LinuxNamespaceType::Network, Some(p)) => network = Network::Join(p.clone()),
            (
                LinuxNamespaceType::Mount
                | LinuxNamespaceType::Pid
                | LinuxNamespaceType::Uts
                | LinuxNamespaceType::Ipc,
                None,
            ) => {}
            (_, Some(_)) => {
                return Err(unsupported(
                    format!("linux.namespaces[{i}].path"),
                    "only a network namespace can be joined",
                ));
            }
            (t, None) => {
                return Err(unsupported(
                    format!("linux.namespaces[{i}]"),
                    format!("{t:?} namespaces are not supported"),
                ));
            }
        }
    }
    c.network(network);
    Ok(())
}

/// `linux.devices` and `linux.resources.devices`: nothing beyond what
/// the Container gives (Docker's nodes, and rules within Docker's).
/// Returns the index of an allow-all rule (privileged mode), if any.
fn devices(raw: &Value) -> Result<Option<usize>> {
    let profile = Profile::docker();
    let nodes = raw.pointer("/linux/devices").and_then(Value::as_array);
    for (i, d) in nodes.into_iter().flatten().enumerate() {
        let path = d.get("path").and_then(Value::as_str).unwrap_or("");
        let major = d.get("major").and_then(Value::as_i64);
        let minor = d.get("minor").and_then(Value::as_i64);
        if !profile
            .devices
            .iter()
            .any(|n| n.path == path && Some(n.major) == major && Some(n.minor) == minor)
        {
            return Err(unsupported(
                format!("linux.devices[{i}]"),
                format!("{path:?}: only Docker's default device nodes are made"),
            ));
        }
    }
    let rules = raw
        .pointer("/linux/resources/devices")
        .and_then(Value::as_array);
    let mut allow_all = None;
    for (i, r) in rules.into_iter().flatten().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let mut rule: DeviceRule =
            serde_json::from_value(r.clone()).map_err(|e| invalid(&field, e.to_string()))?;
        if rule.kind == Some(DeviceType::All) {
            rule.kind = None;
        }
        if rule == DeviceRule::allow_all() {
            allow_all = Some(i);
            continue;
        }
        if !rule.allow || profile.device_rules.contains(&rule) {
            continue;
        }
        return Err(unsupported(
            field,
            "allows a device beyond Docker's default rules",
        ));
    }
    Ok(allow_all)
}

/// An allow-all device rule is privileged mode, which the Container only
/// has as a whole: every capability, no seccomp, nothing masked.
fn check_privileged(c: &Container, rule: usize) -> Result<()> {
    let field = format!("linux.resources.devices[{rule}]");
    let mut caps = c.profile.capabilities.clone();
    caps.sort();
    caps.dedup();
    let all = caps.len() == crate::profile::ALL_CAPABILITIES.len();
    let unconfined = c.seccomp == Seccomp::Unconfined;
    let unmasked = c.profile.masked_paths.is_empty() && c.profile.readonly_paths.is_empty();
    if all && unconfined && unmasked {
        Ok(())
    } else {
        Err(unsupported(
            field,
            "allowing every device is privileged mode, which also needs every capability, \
             no seccomp and no masked or read-only paths",
        ))
    }
}

fn resources(r: &oci_spec::runtime::LinuxResources) -> Result<ResourceLimits> {
    let mut out = ResourceLimits::default();
    if let Some(m) = r.memory() {
        out.memory = m.limit().filter(|l| *l > 0).map(|l| l.unsigned_abs());
        out.memory_swap = m.swap().filter(|s| *s != 0);
    }
    if let Some(cpu) = r.cpu() {
        out.cpu_shares = cpu.shares().filter(|s| *s > 0);
        out.cpu_quota = cpu.quota().filter(|q| *q > 0).map(|q| q.unsigned_abs());
        out.cpu_period = cpu.period().filter(|p| *p > 0);
        out.cpuset_cpus = cpu.cpus().clone().filter(|s| !s.is_empty());
        out.cpuset_mems = cpu.mems().clone().filter(|s| !s.is_empty());
    }
    if let Some(p) = r.pids() {
        out.pids_limit = Some(p.limit()).filter(|l| *l != 0);
    }
    if let Some(b) = r.block_io()
        && let Some(w) = b.weight().filter(|w| *w > 0)
    {
        out.io_weight = Some(w);
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let limit = u64::try_from(h.limit()).map_err(|_| {
            invalid(
                format!("linux.resources.hugepageLimits[{i}].limit"),
                "negative",
            )
        })?;
        out.hugetlb.push((h.page_size().clone(), limit));
    }
    out.to_cgroup()
        .map_err(|e| invalid("linux.resources", e.to_string()))?;
    Ok(out)
}

/// Warn about Docker's defaults the Container adds on its own.
fn container_defaults(c: &Container, warnings: &mut Vec<Warning>) {
    if c.network == Network::None {
        for (k, v) in crate::profile::DOCKER_SYSCTLS {
            if !c.sysctls.iter().any(|(name, _)| name == k) {
                warnings.push(Warning::ContainerDefault {
                    field: "linux.sysctl",
                    added: format!("{k}={v}"),
                });
            }
        }
    }
    if let (Some(m), None) = (c.resources.memory, c.resources.memory_swap) {
        warnings.push(Warning::ContainerDefault {
            field: "linux.resources.memory.swap",
            added: format!("memory+swap {}", m.saturating_mul(2)),
        });
    }
}
