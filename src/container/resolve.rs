//! From a [`Container`] builder to a [`Spec`]: the image's config merged
//! as docker merges it ([`dunnage_image::RunView`]), the user resolved in
//! the image, the security profile with the caller's changes. Nothing is
//! created.

use std::path::PathBuf;

use dunnage_image::{ImageConfig, RunOverrides, RunView};

use crate::container::CapabilitySets;
use crate::container::builder::{Container, Source};
use crate::container::error::{Error, Result};
use crate::container::spec::{Network, Seccomp, Spec};
use crate::container::store::ContainerStore;
use crate::container::user;

/// The PATH docker gives a container whose config sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image a container is made of.
pub(crate) struct ImageSource {
    pub(crate) config: ImageConfig,
    /// The layer directories, top first (for reading /etc/passwd).
    pub(crate) layer_dirs: Vec<PathBuf>,
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Replace the entry with `entry`'s key, or append it (docker's
/// `ReplaceOrAppendEnvValues`).
fn replace_or_append(env: &mut Vec<String>, entry: &str) {
    match env.iter_mut().find(|e| env_key(e) == env_key(entry)) {
        Some(e) => *e = entry.to_string(),
        None => env.push(entry.to_string()),
    }
}

/// Capability names normalised to `CAP_X` upper case.
fn cap_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Docker's capability arithmetic: start from the profile's list (every
/// capability when privileged) in bounding, effective and permitted, or
/// from the caller's exact sets; `--cap-drop ALL` empties them, then adds,
/// then other drops. A non-root user gets docker's empty effective and
/// permitted sets unless the sets were given exactly.
fn capabilities(c: &Container, uid: u32) -> Result<CapabilitySets> {
    // Every capability this process can hand on (its effective set), as
    // docker's --privileged gives the daemon's.
    let own = own_bounding_set();
    let all: Vec<String> = (0..=dunnage_namespaces::caps::last_cap())
        .filter(|c| own & (1u64 << c) != 0)
        .filter_map(dunnage_namespaces::caps::capability_name)
        .collect();
    let adds: Vec<String> = c.cap_add.iter().map(|s| cap_name(s)).collect();
    let drops: Vec<String> = c.cap_drop.iter().map(|s| cap_name(s)).collect();
    for name in adds.iter().chain(&drops) {
        if name != "ALL" && dunnage_namespaces::caps::capability_number(name).is_none() {
            return Err(Error::Invalid {
                what: "capability",
                reason: format!("unknown capability: {name:?}"),
            });
        }
    }
    let mut sets = match &c.capability_sets {
        _ if c.privileged => CapabilitySets::uniform(all.clone()),
        Some(exact) => exact.clone(),
        None => {
            CapabilitySets::uniform(c.profile.capabilities.iter().map(|s| cap_name(s)).collect())
        }
    };
    if !c.privileged {
        sets.edit(&adds, &drops, &all);
    }
    if uid != 0 && c.capability_sets.is_none() {
        sets.effective.clear();
        sets.permitted.clear();
    }
    Ok(sets)
}

impl Container {
    /// The container this builder makes in `store`, resolved: the image's
    /// config applied, the user looked up in the image, the security
    /// profile with the caller's changes. Makes nothing; the ID is new on
    /// each call.
    pub fn resolve(&self, store: &ContainerStore) -> Result<Spec> {
        let image = match &self.source {
            Source::Image(reference) => Some(store.image_source(reference)?),
            Source::Rootfs(_) => None,
        };
        let id = dunnage_base::rand::random_hex(32).map_err(|e| Error::Io {
            op: "random",
            path: "/dev/urandom".into(),
            source: e,
        })?;
        self.resolve_with(id, image.as_ref())
    }

    pub(crate) fn resolve_with(&self, id: String, image: Option<&ImageSource>) -> Result<Spec> {
        self.check()?;
        let overrides = RunOverrides {
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            user: self.user.clone(),
            stop_signal: self.stop_signal.clone(),
        };
        let (view, image_id, chain) = match image {
            Some(img) => (
                RunView::new(&img.config, &overrides),
                Some(img.config.id().to_string()),
                img.config.chain_id().map(|c| c.to_string()),
            ),
            None => (
                RunView {
                    entrypoint: overrides
                        .entrypoint
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|w| !w.is_empty())
                        .collect(),
                    cmd: overrides.cmd.clone().unwrap_or_default(),
                    env: overrides.env.clone(),
                    working_dir: overrides.working_dir.clone().unwrap_or_default(),
                    user: overrides.user.clone().unwrap_or_default(),
                    stop_signal: overrides
                        .stop_signal
                        .clone()
                        .unwrap_or_else(|| dunnage_image::runview::DEFAULT_STOP_SIGNAL.into()),
                },
                None,
                None,
            ),
        };
        let argv = view.argv();
        if argv.is_empty() || argv[0].is_empty() {
            return Err(Error::NoCommand);
        }
        crate::container::spec::signal_number(&view.stop_signal)?;
        let resolved = match (&self.source, image) {
            (Source::Rootfs(dir), _) => user::resolve(dir, &view.user)?,
            (_, Some(img)) => user::resolve_in_layers(&img.layer_dirs, &view.user)?,
            _ => user::resolve_from(&view.user, "", "")?,
        };
        let short = &id[..12];
        let hostname = match &self.hostname {
            Some(h) if !h.is_empty() => h.clone(),
            _ if self.network == Network::Host => host_name(),
            _ => short.to_string(),
        };
        // Docker's runtime environment: PATH when the config has none,
        // HOSTNAME, TERM with a tty, then the config's, then HOME.
        let mut env = Vec::new();
        if !view.env.iter().any(|e| env_key(e) == "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env.push(format!("HOSTNAME={hostname}"));
        if self.tty {
            env.push("TERM=xterm".into());
        }
        for e in &view.env {
            replace_or_append(&mut env, e);
        }
        if !env.iter().any(|e| env_key(e) == "HOME") {
            env.push(format!("HOME={}", resolved.home));
        }
        let cwd = if view.working_dir.is_empty() {
            "/".to_string()
        } else if view.working_dir.starts_with('/') {
            view.working_dir.clone()
        } else {
            return Err(Error::Invalid {
                what: "working directory",
                reason: format!("{:?} is not an absolute path", view.working_dir),
            });
        };
        for r in &self.rlimits {
            dunnage_namespaces::Rlimit::new(&r.name, r.soft, r.hard)?;
        }
        for (kind, path) in &self.join_namespaces {
            if crate::container::command::joinable(kind).is_none() || !path.is_absolute() {
                return Err(Error::Invalid {
                    what: "namespace to join",
                    reason: format!(
                        "{kind} at {}: only ipc, uts, pid and mnt namespaces, by absolute path",
                        path.display()
                    ),
                });
            }
            if kind == "mnt" && matches!(self.source, Source::Image(_)) {
                return Err(Error::Invalid {
                    what: "namespace to join",
                    reason: "a joined mount namespace needs a rootfs directory, not an image"
                        .into(),
                });
            }
        }
        if let Some(p) = &self.rootfs_propagation
            && crate::container::command::propagation(p).is_none()
        {
            return Err(Error::Invalid {
                what: "rootfs propagation",
                reason: format!(
                    "{p:?} is not one of (r)private, (r)shared, (r)slave, (r)unbindable"
                ),
            });
        }
        if let Some((uids, gids)) = &self.id_maps {
            for (what, map) in [("uid map", uids), ("gid map", gids)] {
                let lines: Vec<_> = map
                    .iter()
                    .map(|m| dunnage_namespaces::IdMap::new(m.container_id, m.host_id, m.size))
                    .collect();
                if lines.is_empty() {
                    return Err(Error::Invalid {
                        what,
                        reason: "a user namespace needs both maps".into(),
                    });
                }
                dunnage_namespaces::idmap::validate(&lines).map_err(|e| Error::Invalid {
                    what,
                    reason: e.to_string(),
                })?;
            }
        }
        let mut resources = self.resources.clone();
        // Docker: swap defaults to as much again as the memory limit.
        if let (Some(m), None) = (resources.memory, resources.memory_swap) {
            resources.memory_swap = Some(i64::try_from(m.saturating_mul(2)).unwrap_or(i64::MAX));
        }
        resources.to_cgroup()?;
        // The profile's namespaced sysctls for a container network
        // namespace (docker's two), the caller's winning.
        let mut sysctls: Vec<(String, String)> = Vec::new();
        if self.network.has_own_namespace() {
            sysctls.extend(self.profile.network_sysctls.clone());
        }
        for (k, v) in &self.sysctls {
            sysctls.retain(|(name, _)| name != k);
            sysctls.push((k.clone(), v.clone()));
        }
        let (masked, readonly) = if self.privileged {
            (Vec::new(), Vec::new())
        } else {
            (
                self.profile.masked_paths.clone(),
                self.profile.readonly_paths.clone(),
            )
        };
        Ok(Spec {
            name: self.name.clone().unwrap_or_else(|| short.to_string()),
            cgroup: match &self.cgroup_path {
                Some(p) => p.trim_matches('/').to_string(),
                None => format!("{}/{id}", self.cgroup_parent.trim_matches('/')),
            },
            id,
            image: image_id,
            image_name: match &self.source {
                Source::Image(r) => Some(r.clone()),
                Source::Rootfs(_) => None,
            },
            chain,
            rootfs_dir: match &self.source {
                Source::Rootfs(d) => Some(d.clone()),
                Source::Image(_) => None,
            },
            argv,
            env,
            cwd,
            config: Some(crate::container::spec::ConfigView {
                env: view.env.clone(),
                working_dir: view.working_dir.clone(),
            }),
            user: view.user.clone(),
            uid: resolved.uid,
            gid: resolved.gid,
            additional_gids: {
                let mut gids = resolved.additional_gids;
                for g in &self.extra_gids {
                    if !gids.contains(g) {
                        gids.push(*g);
                    }
                }
                gids
            },
            hostname,
            stop_signal: view.stop_signal.clone(),
            tty: self.tty,
            open_stdin: self.open_stdin,
            capabilities: capabilities(self, resolved.uid)?,
            privileged: self.privileged,
            masked_paths: masked,
            readonly_paths: readonly,
            readonly_rootfs: self.readonly_rootfs,
            base_mounts: if self.privileged {
                crate::profile::Profile::privileged().mounts
            } else {
                self.profile.mounts.clone()
            },
            devices: self.profile.devices.clone(),
            mounts: self.mounts.clone(),
            seccomp: match (&self.seccomp, &self.profile.seccomp) {
                _ if self.privileged => Seccomp::Unconfined,
                (Seccomp::Default, Some(policy)) => Seccomp::Profile(policy.to_string()),
                (choice, _) => choice.clone(),
            },
            no_new_privileges: self.no_new_privileges,
            umask: self.umask,
            no_network_files: !self.network_files,
            cgroup_namespace: self.cgroup_namespace,
            join_namespaces: self.join_namespaces.clone(),
            rootfs_propagation: self.rootfs_propagation.clone(),
            uid_map: self.id_maps.clone().unwrap_or_default().0,
            gid_map: self.id_maps.clone().unwrap_or_default().1,
            rlimits: self.rlimits.clone(),
            sysctls,
            device_rules: if self.privileged {
                crate::profile::Profile::privileged().device_rules
            } else {
                self.profile.device_rules.clone()
            },
            network: self.network.clone(),
            labels: self.labels.clone(),
            resources,
            created: crate::container::state::now(),
        })
    }
}

/// The calling thread's effective set (`CapEff`), every capability if
/// unreadable.
fn own_bounding_set() -> u64 {
    dunnage_namespaces::caps::own_effective().map_or(u64::MAX, |s| s.0)
}

/// The host's name (a container on the host network shares it).
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
