//! [`Container`]: a builder in the manner of `std::process::Command`, with
//! container knobs. [`Container::resolve`] turns it into a [`Spec`]
//! without touching anything; [`Container::create`] makes the container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::container::error::{Error, Result};
use crate::container::spec::{IdMapping, MountSpec, Network, ResourceLimits, RlimitSpec, Seccomp};
use crate::profile::Profile;

/// Where the root filesystem comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An image of the store, by reference or ID.
    Image(String),
    /// A directory used as the rootfs (not copied; no layers).
    Rootfs(PathBuf),
}

/// Where a standard stream of the container's process goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdioMode {
    /// The creating process's own stream.
    Inherit,
    /// `/dev/null`.
    #[default]
    Null,
    /// A pipe; the other end is on the [`crate::container::ContainerHandle`].
    Piped,
}

/// A container to make: an image (or rootfs directory) and how to run it.
///
/// ```no_run
/// use dunnage::container::{Container, ContainerStore};
///
/// let store = ContainerStore::open("/var/lib/dunnage")?;
/// let mut c = Container::image("busybox")
///     .args(["sh", "-c", "exit 3"])
///     .env("GREETING", "hi")
///     .hostname("box")
///     .memory(64 << 20)
///     .create(&store)?;
/// c.start()?;
/// assert_eq!(c.wait()?.code, Some(3));
/// c.remove(false)?;
/// # Ok::<(), dunnage::container::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Container {
    pub(crate) source: Source,
    pub(crate) name: Option<String>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) stop_signal: Option<String>,
    pub(crate) stdin: StdioMode,
    pub(crate) stdout: StdioMode,
    pub(crate) stderr: StdioMode,
    pub(crate) tty: bool,
    pub(crate) open_stdin: bool,
    pub(crate) resources: ResourceLimits,
    pub(crate) mounts: Vec<MountSpec>,
    pub(crate) readonly_rootfs: bool,
    pub(crate) cap_add: Vec<String>,
    pub(crate) cap_drop: Vec<String>,
    pub(crate) capability_sets: Option<crate::container::CapabilitySets>,
    pub(crate) privileged: bool,
    pub(crate) seccomp: Seccomp,
    pub(crate) no_new_privileges: bool,
    pub(crate) umask: Option<u32>,
    pub(crate) extra_gids: Vec<u32>,
    pub(crate) network_files: bool,
    pub(crate) cgroup_namespace: bool,
    pub(crate) join_namespaces: Vec<(String, PathBuf)>,
    pub(crate) rootfs_propagation: Option<String>,
    pub(crate) id_maps: Option<(Vec<IdMapping>, Vec<IdMapping>)>,
    pub(crate) rlimits: Vec<RlimitSpec>,
    pub(crate) sysctls: Vec<(String, String)>,
    pub(crate) network: Network,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) profile: Profile,
    pub(crate) cgroup_parent: String,
    pub(crate) cgroup_path: Option<String>,
    pub(crate) monitor: Option<PathBuf>,
    pub(crate) auto_remove: bool,
}

impl Container {
    fn new(source: Source) -> Container {
        Container {
            source,
            name: None,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            working_dir: None,
            user: None,
            hostname: None,
            stop_signal: None,
            stdin: StdioMode::Null,
            stdout: StdioMode::Inherit,
            stderr: StdioMode::Inherit,
            tty: false,
            open_stdin: false,
            resources: ResourceLimits::default(),
            mounts: Vec::new(),
            readonly_rootfs: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            capability_sets: None,
            privileged: false,
            seccomp: Seccomp::Default,
            no_new_privileges: false,
            umask: None,
            extra_gids: Vec::new(),
            network_files: true,
            cgroup_namespace: false,
            join_namespaces: Vec::new(),
            rootfs_propagation: None,
            id_maps: None,
            rlimits: Vec::new(),
            sysctls: Vec::new(),
            network: Network::None,
            labels: BTreeMap::new(),
            profile: Profile::docker(),
            cgroup_parent: "dunnage".into(),
            cgroup_path: None,
            monitor: None,
            auto_remove: false,
        }
    }

    /// A container of the image `reference` (`busybox`, `busybox:1.36`,
    /// an ID or unique ID prefix) in the store it is created in.
    pub fn image(reference: impl Into<String>) -> Container {
        Container::new(Source::Image(reference.into()))
    }

    /// A container whose root is the directory `dir` (used in place, not
    /// copied; no image config applies).
    pub fn rootfs(dir: impl AsRef<Path>) -> Container {
        Container::new(Source::Rootfs(dir.as_ref().to_path_buf()))
    }

    /// The container's name (`--name`); unique in the store.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Container {
        self.name = Some(name.into());
        self
    }

    /// One argument of the command (replaces the image's Cmd; see
    /// [`args`](Container::args)).
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Container {
        self.cmd.get_or_insert_with(Vec::new).push(arg.into());
        self
    }

    /// The command's words (after the entrypoint), as after the image name
    /// in `docker run IMAGE ARGS...`.
    pub fn args<I, S>(&mut self, args: I) -> &mut Container
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd
            .get_or_insert_with(Vec::new)
            .extend(args.into_iter().map(Into::into));
        self
    }

    /// `--entrypoint`; an empty list (or one empty word) resets it.
    pub fn entrypoint<I, S>(&mut self, words: I) -> &mut Container
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(words.into_iter().map(Into::into).collect());
        self
    }

    /// `-e KEY=value`.
    pub fn env(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> &mut Container {
        self.env
            .push(format!("{}={}", key.as_ref(), value.as_ref()));
        self
    }

    /// `-w`.
    pub fn current_dir(&mut self, dir: impl Into<String>) -> &mut Container {
        self.working_dir = Some(dir.into());
        self
    }

    /// `-u`: `name`, `uid`, `name:group` or `uid:gid`, resolved in the
    /// container's own /etc/passwd and /etc/group.
    pub fn user(&mut self, user: impl Into<String>) -> &mut Container {
        self.user = Some(user.into());
        self
    }

    /// `-h` (default: the short ID).
    pub fn hostname(&mut self, name: impl Into<String>) -> &mut Container {
        self.hostname = Some(name.into());
        self
    }

    /// `--stop-signal` (default: the image's StopSignal, else SIGTERM).
    pub fn stop_signal(&mut self, signal: impl Into<String>) -> &mut Container {
        self.stop_signal = Some(signal.into());
        self
    }

    /// The process's stdin (default: null; piped with `-i`). Anything but
    /// null is docker's open stdin (`-i`): a detached container's monitor
    /// then holds a pipe to it for attached clients.
    pub fn stdin(&mut self, mode: StdioMode) -> &mut Container {
        self.stdin = mode;
        self.open_stdin = mode != StdioMode::Null;
        self
    }

    /// The process's stdout (default: inherit).
    pub fn stdout(&mut self, mode: StdioMode) -> &mut Container {
        self.stdout = mode;
        self
    }

    /// The process's stderr (default: inherit).
    pub fn stderr(&mut self, mode: StdioMode) -> &mut Container {
        self.stderr = mode;
        self
    }

    /// `-t`: a pty in the container as its stdio and controlling terminal;
    /// the master is on the handle.
    pub fn tty(&mut self, on: bool) -> &mut Container {
        self.tty = on;
        self
    }

    /// All cgroup limits at once.
    pub fn resources(&mut self, limits: ResourceLimits) -> &mut Container {
        self.resources = limits;
        self
    }

    /// `-m`: the memory limit in bytes.
    pub fn memory(&mut self, bytes: u64) -> &mut Container {
        self.resources.memory = Some(bytes);
        self
    }

    /// `--memory-swap`: memory plus swap in bytes (-1: unlimited).
    pub fn memory_swap(&mut self, bytes: i64) -> &mut Container {
        self.resources.memory_swap = Some(bytes);
        self
    }

    /// `--cpus`: CPU quota as a number of CPUs.
    pub fn cpus(&mut self, cpus: f64) -> &mut Container {
        let quota = (cpus * 100_000.0).round();
        self.resources.cpu_quota = (quota >= 1.0).then_some(quota as u64);
        self.resources.cpu_period = Some(100_000);
        self
    }

    /// `--cpu-shares`.
    pub fn cpu_shares(&mut self, shares: u64) -> &mut Container {
        self.resources.cpu_shares = Some(shares);
        self
    }

    /// `--cpuset-cpus`.
    pub fn cpuset_cpus(&mut self, cpus: impl Into<String>) -> &mut Container {
        self.resources.cpuset_cpus = Some(cpus.into());
        self
    }

    /// `--pids-limit` (0 or -1: unlimited).
    pub fn pids_limit(&mut self, n: i64) -> &mut Container {
        self.resources.pids_limit = Some(n);
        self
    }

    /// `--blkio-weight` (10..=1000).
    pub fn io_weight(&mut self, weight: u16) -> &mut Container {
        self.resources.io_weight = Some(weight);
        self
    }

    /// A huge-page limit: the page size as the kernel names it (`2MB`,
    /// `1GB`) and the limit in bytes.
    pub fn hugetlb(&mut self, page_size: impl Into<String>, bytes: u64) -> &mut Container {
        self.resources.hugetlb.push((page_size.into(), bytes));
        self
    }

    /// `--cpuset-mems`.
    pub fn cpuset_mems(&mut self, mems: impl Into<String>) -> &mut Container {
        self.resources.cpuset_mems = Some(mems.into());
        self
    }

    /// `-v SRC:DST[:ro]`.
    pub fn bind(
        &mut self,
        source: impl AsRef<Path>,
        destination: impl AsRef<Path>,
        readonly: bool,
    ) -> &mut Container {
        self.mounts.push(MountSpec::Bind {
            source: source.as_ref().to_path_buf(),
            destination: destination.as_ref().to_path_buf(),
            readonly,
        });
        self
    }

    /// A mount with OCI options, applied as given after the profile's (an
    /// OCI config's `mounts` entry): `kind` `bind` (or `none` with a
    /// `bind`/`rbind` option) binds the host path `source`.
    pub fn mount(
        &mut self,
        kind: impl Into<String>,
        source: impl AsRef<Path>,
        destination: impl AsRef<Path>,
        options: Vec<String>,
    ) -> &mut Container {
        self.mounts.push(MountSpec::Oci {
            destination: destination.as_ref().to_path_buf(),
            kind: kind.into(),
            source: source.as_ref().to_path_buf(),
            options,
        });
        self
    }

    /// `--tmpfs DST[:OPTIONS]` (options comma separated).
    pub fn tmpfs(&mut self, destination: impl AsRef<Path>, options: &str) -> &mut Container {
        self.mounts.push(MountSpec::Tmpfs {
            destination: destination.as_ref().to_path_buf(),
            options: options
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        });
        self
    }

    /// `--read-only`.
    pub fn readonly_rootfs(&mut self, on: bool) -> &mut Container {
        self.readonly_rootfs = on;
        self
    }

    /// `--cap-add` (`NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`).
    pub fn cap_add(&mut self, cap: impl Into<String>) -> &mut Container {
        self.cap_add.push(cap.into());
        self
    }

    /// `--cap-drop` (`ALL` drops every one not added).
    pub fn cap_drop(&mut self, cap: impl Into<String>) -> &mut Container {
        self.cap_drop.push(cap.into());
        self
    }

    /// The five capability sets exactly, as an OCI config gives them,
    /// instead of the security profile's list (which gives bounding,
    /// effective and permitted, with the latter two emptied for a
    /// non-root user as docker does). They apply as given whatever the
    /// user; [`Container::cap_add`] and [`Container::cap_drop`] still edit
    /// bounding, effective and permitted.
    pub fn capability_sets(&mut self, sets: crate::container::CapabilitySets) -> &mut Container {
        self.capability_sets = Some(sets);
        self
    }

    /// `--privileged`: every capability, no masked or read-only paths, no
    /// seccomp filter, /sys and /proc/sys writable.
    pub fn privileged(&mut self, on: bool) -> &mut Container {
        self.privileged = on;
        self
    }

    /// `--security-opt seccomp=...`.
    pub fn seccomp(&mut self, choice: Seccomp) -> &mut Container {
        self.seccomp = choice;
        self
    }

    /// `--security-opt no-new-privileges`.
    pub fn no_new_privileges(&mut self, on: bool) -> &mut Container {
        self.no_new_privileges = on;
        self
    }

    /// A user namespace of its own with these uid and gid maps (an OCI
    /// config's `linux.uidMappings`/`gidMappings`); both must be given.
    pub fn user_namespace(
        &mut self,
        uid_map: Vec<IdMapping>,
        gid_map: Vec<IdMapping>,
    ) -> &mut Container {
        self.id_maps = Some((uid_map, gid_map));
        self
    }

    /// Bind the container's resolv.conf, hostname and hosts (made in its
    /// state directory) over the rootfs's /etc, as docker does (default
    /// on; an OCI runtime leaves that to the config's mounts).
    pub fn network_files(&mut self, on: bool) -> &mut Container {
        self.network_files = on;
        self
    }

    /// The propagation of the container's `/` (OCI `rootfsPropagation`:
    /// `private`, `shared`, `slave`, `unbindable`, each also with a
    /// leading `r` for recursive). Checked by [`Container::resolve`].
    pub fn rootfs_propagation(&mut self, propagation: impl Into<String>) -> &mut Container {
        self.rootfs_propagation = Some(propagation.into());
        self
    }

    /// Join the `ipc`, `uts`, `pid` or `mnt` namespace at `path` (a
    /// `/proc/PID/ns/...` file or a bind of one) instead of making one
    /// (`--ipc container:...`); another kind is refused by
    /// [`Container::resolve`]. The caller's own namespace
    /// (`/proc/self/ns/...`) is shared, nothing joined. In a joined or
    /// shared mount namespace the rootfs (a directory, not an image) is set
    /// up there, made private (so its mounts do not propagate to peer
    /// namespaces) and entered with `chroot` (runc chroots too when the
    /// caller's namespace is shared, but `pivot_root`s in a namespace
    /// joined by path); its mounts stay there until
    /// [`ContainerHandle::remove`](crate::container::ContainerHandle::remove)
    /// unmounts them (in the caller's own namespace; a joined one's go
    /// with that namespace), or a failed create does.
    ///
    /// Security: `chroot` is no boundary. A process of the container
    /// holding `CAP_SYS_CHROOT` (in Docker's default set) leaves the
    /// rootfs (`mkdir x; chroot x; cd ../../..; chroot .`) and sees the
    /// whole mount namespace it shares. Share or join a mount namespace
    /// only with trusted programs, or drop `CAP_SYS_CHROOT`.
    pub fn join_namespace(
        &mut self,
        kind: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> &mut Container {
        self.join_namespaces
            .push((kind.into(), path.as_ref().to_path_buf()));
        self
    }

    /// A cgroup namespace of its own, rooted at the container's cgroup
    /// (`--cgroupns private`).
    pub fn cgroup_namespace(&mut self, on: bool) -> &mut Container {
        self.cgroup_namespace = on;
        self
    }

    /// The process's umask (an OCI config's `process.user.umask`).
    pub fn umask(&mut self, mask: u32) -> &mut Container {
        self.umask = Some(mask);
        self
    }

    /// `--group-add GID`: supplementary groups besides those the user has
    /// in the rootfs's /etc/group.
    pub fn group_add(&mut self, gid: u32) -> &mut Container {
        self.extra_gids.push(gid);
        self
    }

    /// `--ulimit NAME=SOFT[:HARD]`.
    pub fn rlimit(&mut self, name: impl Into<String>, soft: u64, hard: u64) -> &mut Container {
        self.rlimits.push(RlimitSpec {
            name: name.into(),
            soft,
            hard,
        });
        self
    }

    /// `--sysctl NAME=VALUE` (namespaced ones only).
    pub fn sysctl(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Container {
        self.sysctls.push((name.into(), value.into()));
        self
    }

    /// `--network none|host|bridge|NAME` (a bridge network with published
    /// ports: [`Network::Bridge`]) or a namespace to join by path.
    pub fn network(&mut self, network: Network) -> &mut Container {
        self.network = network;
        self
    }

    /// `--label KEY=VALUE`.
    pub fn label(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Container {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The security profile to start from (default: Docker's,
    /// [`Profile::docker`]): capabilities, masked and read-only paths,
    /// device cgroup rules, seccomp policy, network sysctls.
    pub fn security_profile(&mut self, profile: Profile) -> &mut Container {
        self.profile = profile;
        self
    }

    /// The security profile the container starts from, to inspect or
    /// change in place.
    pub fn security_profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// The cgroup the container's cgroup is made in (`--cgroup-parent`;
    /// default `dunnage`): the container's is `<parent>/<id>`.
    pub fn cgroup_parent(&mut self, parent: impl Into<String>) -> &mut Container {
        self.cgroup_parent = parent.into();
        self
    }

    /// The container's own cgroup, exactly (relative to each hierarchy's
    /// root), instead of `<parent>/<id>`: what an OCI runtime makes of
    /// `linux.cgroupsPath`.
    pub fn cgroup_path(&mut self, path: impl Into<String>) -> &mut Container {
        self.cgroup_path = Some(path.into());
        self
    }

    /// Check what needs no store: the name, the signal.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(name) = &self.name
            && !crate::container::spec::valid_name(name)
        {
            return Err(Error::InvalidName(name.clone()));
        }
        if let Some(sig) = &self.stop_signal {
            crate::container::spec::signal_number(sig)?;
        }
        if let Some(p) = &self.cgroup_path
            && (p.trim_matches('/').is_empty() || p.split('/').any(|c| c == ".." || c == "."))
        {
            return Err(Error::Invalid {
                what: "cgroup path",
                reason: format!("{p:?}"),
            });
        }
        if self.cgroup_parent.is_empty() || self.cgroup_parent.split('/').any(|c| c == "..") {
            return Err(Error::Invalid {
                what: "cgroup parent",
                reason: format!("{:?}", self.cgroup_parent),
            });
        }
        Ok(())
    }
}
