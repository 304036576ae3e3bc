//! config.json to the [`Container`] builder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, LinuxNamespaceType, Spec};
use serde_json::Value;

use super::error::{Error, Result, Warning};
use super::{OciConfig, fields};
use crate::container::{Container, IdMapping, Network, ResourceLimits, Seccomp};
use crate::profile::{DeviceRule, DeviceType};

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
        mounts(&mut c, spec, bundle)?;
        // Only the config's binds and sysctls, as runc (not Docker's).
        c.network_files(false);
        c.security_profile_mut().network_sysctls.clear();
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
        namespaces(&mut c, linux, self.raw.get("linux").unwrap_or(&Value::Null))?;
        if let Some((_, path)) = c.join_namespaces.iter().find(|(k, _)| k == "mnt") {
            warnings.push(Warning::SharedMountNamespace { path: path.clone() });
        }
        if c.join_namespaces.iter().any(|(k, _)| k == "uts")
            && spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        {
            warnings.push(Warning::NoEffect {
                field: "hostname",
                reason: "the joined uts namespace keeps its own hostname",
            });
        }
        if linux
            .mount_label()
            .as_deref()
            .is_some_and(|l| !l.is_empty())
        {
            if Path::new("/sys/fs/selinux/enforce").exists() {
                return Err(unsupported(
                    "linux.mountLabel",
                    "SELinux labels are not applied by this runtime",
                ));
            }
            warnings.push(Warning::NoEffect {
                field: "linux.mountLabel",
                reason: "SELinux is off on this host",
            });
        }
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
            None | Some("") => {}
            Some(p) => {
                if crate::container::command::propagation(p).is_none() {
                    return Err(invalid(
                        "linux.rootfsPropagation",
                        format!("{p:?}: not a propagation"),
                    ));
                }
                c.rootfs_propagation(p);
            }
        }
        devices(&mut c, &self.raw)?;
        if let Some(path) = linux.cgroups_path() {
            let s = path.to_string_lossy();
            let parent = s.trim_start_matches('/').rsplit_once('/').map(|(p, _)| p);
            if let Some(parent) = parent.filter(|p| !p.is_empty()) {
                c.cgroup_parent(parent.to_string());
            }
            cgroups_path = Some(path.clone());
        }
        if let Some(r) = linux.resources() {
            c.resources(resources(r, &mut warnings)?);
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
    if let Some(m) = u.umask() {
        if m > 0o777 {
            return Err(invalid(
                "process.user.umask",
                format!("{m:#o} is not a umask"),
            ));
        }
        c.umask(m);
    }
    // Added to the groups the user has in the rootfs's /etc/group, as runc does.
    for g in u.additional_gids().iter().flatten() {
        c.group_add(*g);
    }
    Ok(())
}

/// `mounts`: every entry in order, with its options as given (runc's
/// semantics); the profile's own mount list is not used.
fn mounts(c: &mut Container, spec: &Spec, bundle: &Path) -> Result<()> {
    c.security_profile_mut().mounts.clear();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination();
        let kind = m.typ().as_deref().unwrap_or("");
        let options: Vec<String> = m.options().clone().unwrap_or_default();
        let is_bind = kind == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        if !dest.is_absolute() {
            return Err(invalid(format!("{field}.destination"), "not absolute"));
        }
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(kind));
        if is_bind {
            if m.source().is_none() {
                return Err(invalid(format!("{field}.source"), "missing"));
            }
            // A relative source is relative to the bundle, as in runc.
            let source = bundle.join(&source);
            c.mount(kind, &source, dest, options);
        } else if kind.is_empty() {
            return Err(invalid(format!("{field}.type"), "missing"));
        } else {
            // Flags and data as given; the kernel judges the type.
            c.mount(kind, &source, dest, options);
        }
    }
    Ok(())
}

fn namespaces(
    c: &mut Container,
    linux: &oci_spec::runtime::Linux,
    linux_raw: &Value,
) -> Result<()> {
    let list = linux.namespaces().clone().unwrap_or_default();
    let mut network = Network::Host;
    // A namespace the config does not list is the runtime's own (runc's
    // and crun's reading of the spec): shared, nothing made.
    for (want, name) in [
        (LinuxNamespaceType::Mount, "mnt"),
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Uts, "uts"),
        (LinuxNamespaceType::Ipc, "ipc"),
    ] {
        if !list.iter().any(|n| n.typ() == want) {
            c.join_namespace(name, format!("/proc/self/ns/{name}"));
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
            (LinuxNamespaceType::Ipc, Some(p)) => {
                c.join_namespace("ipc", p);
            }
            (LinuxNamespaceType::Uts, Some(p)) => {
                c.join_namespace("uts", p);
            }
            (LinuxNamespaceType::Pid, Some(p)) => {
                c.join_namespace("pid", p);
            }
            (LinuxNamespaceType::Mount, Some(p)) => {
                c.join_namespace("mnt", p);
            }
            (_, Some(_)) => {
                return Err(unsupported(
                    format!("linux.namespaces[{i}].path"),
                    "only network, mount, ipc, uts and pid namespaces can be joined",
                ));
            }
            (LinuxNamespaceType::Cgroup, None) => {
                c.cgroup_namespace(true);
            }
            (LinuxNamespaceType::User, None) => {
                let maps = |key: &str| -> Result<Vec<IdMapping>> {
                    let field = format!("linux.{key}");
                    let list = match linux_raw.get(key) {
                        Some(Value::Array(list)) if !list.is_empty() => list,
                        _ => return Err(invalid(&field, "a user namespace needs both maps")),
                    };
                    list.iter()
                        .enumerate()
                        .map(|(j, m)| {
                            let n = |k: &str| {
                                m.get(k)
                                    .and_then(Value::as_u64)
                                    .and_then(|n| u32::try_from(n).ok())
                                    .ok_or_else(|| {
                                        invalid(format!("{field}[{j}].{k}"), "not a 32-bit id")
                                    })
                            };
                            Ok(IdMapping {
                                container_id: n("containerID")?,
                                host_id: n("hostID")?,
                                size: n("size")?,
                            })
                        })
                        .collect()
                };
                c.user_namespace(maps("uidMappings")?, maps("gidMappings")?);
            }
            (t, None) => {
                return Err(unsupported(
                    format!("linux.namespaces[{i}]"),
                    format!("{t:?} namespaces are not supported"),
                ));
            }
        }
    }
    let has_user = list.iter().any(|n| n.typ() == LinuxNamespaceType::User);
    for key in ["uidMappings", "gidMappings"] {
        let set = linux_raw
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if set && !has_user {
            return Err(invalid(
                format!("linux.{key}"),
                "set without a user namespace in linux.namespaces",
            ));
        }
    }
    c.network(network);
    Ok(())
}

/// `linux.devices` (made besides the runtime's defaults, a config's entry
/// replacing a default of the same path) and `linux.resources.devices`
/// (the device cgroup rules, in order, instead of the profile's).
fn devices(c: &mut Container, raw: &Value) -> Result<()> {
    let nodes = raw.pointer("/linux/devices").and_then(Value::as_array);
    let mut made = Vec::new();
    for (i, d) in nodes.into_iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let path = d.get("path").and_then(Value::as_str).unwrap_or("");
        if !path.starts_with('/') {
            return Err(invalid(format!("{field}.path"), "not an absolute path"));
        }
        let kind = match d.get("type").and_then(Value::as_str) {
            Some("c" | "u") => DeviceType::Char,
            Some("b") => DeviceType::Block,
            Some("p") => DeviceType::Fifo,
            _ => return Err(invalid(format!("{field}.type"), "not one of c, u, b, p")),
        };
        let number = |key: &str| -> Result<i64> {
            match d.get(key) {
                None | Some(Value::Null) if kind == DeviceType::Fifo => Ok(0),
                Some(v) => v
                    .as_i64()
                    .filter(|n| u32::try_from(*n).is_ok())
                    .ok_or_else(|| invalid(format!("{field}.{key}"), "not a device number")),
                None => Err(invalid(format!("{field}.{key}"), "missing")),
            }
        };
        let id = |key: &str| -> Result<u32> {
            match d.get(key) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| invalid(format!("{field}.{key}"), "not a uid/gid")),
            }
        };
        let file_mode = match d.get("fileMode") {
            None | Some(Value::Null) => 0o666,
            Some(v) => v
                .as_u64()
                .filter(|m| *m <= 0o7777)
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| invalid(format!("{field}.fileMode"), "not a permission mode"))?,
        };
        let mut node = crate::profile::DeviceNode::char(path, number("major")?, number("minor")?);
        node.kind = kind;
        node.file_mode = file_mode;
        node.uid = id("uid")?;
        node.gid = id("gid")?;
        made.push(node);
    }
    let profile = c.security_profile_mut();
    for node in made {
        profile.devices.retain(|n| n.path != node.path);
        profile.devices.push(node);
    }
    let rules = raw
        .pointer("/linux/resources/devices")
        .and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, r) in rules.into_iter().flatten().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let mut rule: DeviceRule =
            serde_json::from_value(r.clone()).map_err(|e| invalid(&field, e.to_string()))?;
        if rule.kind == Some(DeviceType::All) {
            rule.kind = None;
        }
        if rule.kind == Some(DeviceType::Fifo) {
            return Err(invalid(format!("{field}.type"), "not one of a, c, b"));
        }
        if rule.access.is_empty() {
            rule.access = "rwm".into();
        }
        if !rule.access.chars().all(|ch| "rwm".contains(ch)) {
            return Err(invalid(format!("{field}.access"), "not some of r, w, m"));
        }
        out.push(rule);
    }
    if rules.is_some() {
        profile.device_rules = out;
    }
    Ok(())
}

fn resources(
    r: &oci_spec::runtime::LinuxResources,
    warnings: &mut Vec<Warning>,
) -> Result<ResourceLimits> {
    let mut out = ResourceLimits::default();
    if let Some(m) = r.memory() {
        out.memory = m.limit().filter(|l| *l > 0).map(|l| l.unsigned_abs());
        out.memory_swap = m.swap().filter(|s| *s != 0);
        out.memory_reservation = m.reservation().filter(|l| *l > 0).map(|l| l.unsigned_abs());
        out.memory_swappiness = m.swappiness();
        out.oom_kill_disable = m.disable_oom_killer().filter(|d| *d);
        // Kernel memory is no longer limitable since Linux 6.1: a warning,
        // as runc's. The TCP buffer limit still exists on v1 (crun sets it).
        if m.kernel().is_some() {
            warnings.push(Warning::NoEffect {
                field: "linux.resources.memory.kernel",
                reason: "kernel memory limits are gone from Linux (runc skips them too)",
            });
        }
        if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
            if memory_is_v1() {
                out.memory_kernel_tcp = Some(t);
            } else {
                warnings.push(Warning::NoEffect {
                    field: "linux.resources.memory.kernelTCP",
                    reason: "cgroup v2 has no TCP buffer memory limit (runc and crun skip it too)",
                });
            }
        }
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

/// Whether this host's memory controller is on a cgroup v1 hierarchy
/// (where `memory.kmem.tcp.limit_in_bytes` is).
fn memory_is_v1() -> bool {
    use dunnage_cgroups::{Controller, Hierarchies, Version};
    Hierarchies::detect()
        .ok()
        .and_then(|h| {
            h.for_controller(Controller::Memory)
                .map(|m| m.version == Version::V1)
        })
        .unwrap_or(false)
}

/// Warn about Docker's defaults the Container adds on its own.
fn container_defaults(c: &Container, warnings: &mut Vec<Warning>) {
    if let (Some(m), None) = (c.resources.memory, c.resources.memory_swap) {
        warnings.push(Warning::ContainerDefault {
            field: "linux.resources.memory.swap",
            added: format!("memory+swap {}", m.saturating_mul(2)),
        });
    }
}
