//! The operations on a live or stopped container beyond its lifecycle:
//! pause and resume, stats, top, exec, update, commit, export, logs.

use std::io::Write;
use std::path::{Path, PathBuf};

use dunnage_image::{ImageChanges, ImageId};
use dunnage_namespaces::{Child, Command, Stdio};

use crate::container::builder::StdioMode;
use crate::container::command;
use crate::container::error::{Error, Result, io_err};
use crate::container::handle::ContainerHandle;
use crate::container::spec::{ResourceLimits, Status};
use crate::container::user;

/// One process of a container, as `docker top` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Process {
    /// The pid in the host's pid namespace.
    pub pid: u32,
    /// Its command line (arguments joined by spaces), or `[comm]` for a
    /// process without one.
    pub command: String,
}

/// How to run a process in a running container ([`ContainerHandle::exec`]).
///
/// Build it with `..ExecOptions::default()` so that fields added later
/// keep their defaults.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// `-e KEY=value`, added to the container's environment.
    pub env: Vec<String>,
    /// `-u`: resolved in the container's /etc/passwd; default the
    /// container's user.
    pub user: Option<String>,
    /// `-w`: default the container's working directory.
    pub working_dir: Option<String>,
    /// `-t`: a terminal (take it with [`Child::take_terminal`]).
    pub tty: bool,
    /// stdin (default null).
    pub stdin: StdioMode,
    /// stdout (default null).
    pub stdout: StdioMode,
    /// stderr (default null).
    pub stderr: StdioMode,
    /// The five capability sets of the process (`--process` of an OCI
    /// runtime), applied as given whatever the user. Default: the
    /// container's, with effective and permitted emptied when `user`
    /// switches to a non-root user, and set to the bounding set when it
    /// switches to root from a user with none (as docker does).
    pub capabilities: Option<crate::container::CapabilitySets>,
    /// `no_new_privs` for the process (an OCI `process.noNewPrivileges`).
    /// Default: the container's.
    pub no_new_privileges: Option<bool>,
    /// The resource limits of the process, replacing the container's (an
    /// OCI `process.rlimits`). Default: the container's.
    pub rlimits: Option<Vec<crate::container::spec::RlimitSpec>>,
    /// The supplementary groups, exactly (an OCI
    /// `process.user.additionalGids`). Default: those `user` has in the
    /// container's /etc/group, or the container's.
    pub additional_gids: Option<Vec<u32>>,
}

fn stdio(mode: StdioMode) -> Stdio {
    match mode {
        StdioMode::Inherit => Stdio::inherit(),
        StdioMode::Null => Stdio::null(),
        StdioMode::Piped => Stdio::piped(),
    }
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

impl ContainerHandle {
    fn set_status(&self, from: Status, to: Status, op: &'static str) -> Result<()> {
        let _lock = self.lock()?;
        let mut st = self.state()?;
        let status = st.live_status();
        if status == Status::Exited {
            return Err(Error::NotRunning(self.spec.id.clone()));
        }
        if status != from {
            return Err(Error::WrongState {
                op,
                id: self.spec.id.clone(),
                status,
            });
        }
        let cg = self.cgroup()?;
        if to == Status::Paused {
            cg.freeze()?;
        } else {
            cg.thaw()?;
        }
        st.status = Some(to);
        st.write(&self.dir())
    }

    /// Freeze every process of the container (cgroup freezer).
    pub fn pause(&mut self) -> Result<()> {
        self.set_status(Status::Running, Status::Paused, "pause")
    }

    /// Thaw a paused container.
    pub fn resume(&mut self) -> Result<()> {
        self.set_status(Status::Paused, Status::Running, "unpause")
    }

    /// CPU, memory, pids and io of the container's cgroup.
    pub fn stats(&self) -> Result<dunnage_cgroups::Stats> {
        Ok(self.cgroup()?.stats()?)
    }

    /// The container's processes.
    pub fn top(&self) -> Result<Vec<Process>> {
        let st = self.state()?;
        if st.live_status() == Status::Exited {
            return Err(Error::NotRunning(self.spec.id.clone()));
        }
        let mut out = Vec::new();
        for pid in self.cgroup()?.procs()? {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue; // ended meanwhile
            };
            let words: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let command = if words.is_empty() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("[{}]", comm.trim_end())
            } else {
                words.join(" ")
            };
            out.push(Process { pid, command });
        }
        Ok(out)
    }

    /// Run `argv` inside the running container: its namespaces, cgroup,
    /// capabilities, seccomp filter, user, environment and working
    /// directory, changed by `opts`. The caller waits for the returned
    /// child.
    pub fn exec<S: AsRef<str>>(&self, argv: &[S], opts: &ExecOptions) -> Result<Child> {
        let st = self.state()?;
        if st.live_status() == Status::Paused {
            return Err(Error::WrongState {
                op: "exec in",
                id: self.spec.id.clone(),
                status: Status::Paused,
            });
        }
        let pidfd = self.live_pidfd(&st)?;
        let (program, args) = argv.split_first().ok_or(Error::NoCommand)?;
        let mut spec = self.spec.clone();
        // The namespaces' sysctls were set when the container started.
        spec.sysctls.clear();
        if let Some(u) = &opts.user {
            let root = PathBuf::from(format!("/proc/{}/root", st.pid));
            let resolved = user::resolve(&root, u)?;
            spec.uid = resolved.uid;
            spec.gid = resolved.gid;
            spec.additional_gids = resolved.additional_gids;
            let caps = &mut spec.capabilities;
            if spec.uid != 0 {
                caps.effective.clear();
                caps.permitted.clear();
                caps.ambient.clear();
            } else if caps.effective.is_empty() && caps.permitted.is_empty() {
                // Docker's root in a container of a non-root user.
                caps.effective = caps.bounding.clone();
                caps.permitted = caps.bounding.clone();
            }
        }
        if let Some(caps) = &opts.capabilities {
            spec.capabilities = caps.clone();
        }
        if let Some(nnp) = opts.no_new_privileges {
            spec.no_new_privileges = nnp;
        }
        if let Some(r) = &opts.rlimits {
            for l in r {
                dunnage_namespaces::Rlimit::new(&l.name, l.soft, l.hard)?;
            }
            spec.rlimits = r.clone();
        }
        if let Some(g) = &opts.additional_gids {
            spec.additional_gids = g.clone();
        }
        let mut env = spec.env.clone();
        for e in &opts.env {
            match env.iter_mut().find(|x| env_key(x) == env_key(e)) {
                Some(x) => *x = e.clone(),
                None => env.push(e.clone()),
            }
        }
        let cwd = opts.working_dir.clone().unwrap_or_else(|| spec.cwd.clone());
        let mut cmd = Command::new(program.as_ref());
        cmd.args(args.iter().map(AsRef::as_ref))
            .env_clear()
            .current_dir(&cwd)
            .uid(spec.uid)
            .gid(spec.gid)
            .process_knobs(command::knobs(
                &spec,
                &crate::container::state::containers_dir(self.store.root()),
            )?)
            .exec_in(pidfd);
        // The child follows the init into its root (exec_in chroots there
        // after joining its namespaces): a container in a shared or joined
        // mount namespace chrooted into its rootfs, away from that
        // namespace's root.
        for e in &env {
            match e.split_once('=') {
                Some((k, v)) => cmd.env(k, v),
                None => cmd.env(e, ""),
            };
        }
        if opts.tty {
            cmd.terminal(true);
        } else {
            cmd.stdin(stdio(opts.stdin))
                .stdout(stdio(opts.stdout))
                .stderr(stdio(opts.stderr));
        }
        // cgroup v1 hierarchies, joined by the child itself as its first
        // step (no wait for the kernel's RCU grace period, see
        // Command::join_cgroup_tasks); exec_in joins the v2 one itself.
        if let Ok(cg) = self.cgroup() {
            cmd.join_cgroup_tasks(cg.join_fds()?.tasks);
        }
        match cmd.spawn() {
            Err(dunnage_namespaces::Error::Exec { source, .. }) => {
                let program = program.as_ref().to_string();
                Err(match source.raw_os_error() {
                    Some(libc::ENOENT) | Some(libc::ENOTDIR) => Error::CommandNotFound(program),
                    _ => Error::NotExecutable { program },
                })
            }
            other => Ok(other?),
        }
    }

    /// Change the cgroup limits of the container (`docker update`), and
    /// record them in its configuration.
    pub fn update(&mut self, limits: ResourceLimits) -> Result<()> {
        let _lock = self.lock()?;
        let resources = limits.to_cgroup()?;
        self.cgroup()?.apply(&resources)?;
        self.spec.resources = limits;
        let path = self.dir().join("config.json");
        let bytes = serde_json::to_vec_pretty(&self.spec).map_err(|e| Error::CorruptState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        dunnage_base::fs::write_atomic(&path, &bytes, 0o600).map_err(io_err("write", path))
    }

    /// `docker commit`: the container's read-write layer (the init layer
    /// left out) becomes a new layer on its image, with a new config and
    /// history entry, tagged with `changes.reference` when given.
    pub fn commit(&self, changes: &ImageChanges) -> Result<ImageId> {
        let (Some(image), None) = (&self.spec.image, &self.spec.rootfs_dir) else {
            return Err(Error::Unsupported {
                op: "commit",
                reason: "the container was made from a rootfs directory, not an image",
            });
        };
        let images = self.store.images()?;
        let id = images.resolve(image)?;
        Ok(images.commit(&self.spec.id, &id, changes)?)
    }

    /// The container's root filesystem as a tar stream (`docker export`),
    /// written to `out`. The rootfs is mounted while the container exists;
    /// the tar holds the files as the container sees them, without the
    /// bind-mounted /etc files' contents (their empty init-layer files).
    pub fn export<W: Write>(&self, out: W) -> Result<W> {
        let root: PathBuf = match &self.spec.rootfs_dir {
            Some(d) => d.clone(),
            None => self
                .store
                .images()?
                .layers()
                .rw_mount_point(&self.spec.id)?
                .ok_or(Error::Unsupported {
                    op: "export",
                    reason: "the container's rootfs is not mounted",
                })?,
        };
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Complete);
        tar.append_dir_all(".", &root)
            .map_err(io_err("export", &root))?;
        tar.into_inner().map_err(io_err("export", &root))
    }

    /// The container's layer record (`layerdb/mounts/<id>`: the
    /// read-write and init layers' driver directories, the image chain),
    /// for `docker inspect`'s GraphDriver; `None` for a container made
    /// from a rootfs directory.
    pub fn layer(&self) -> Result<Option<dunnage_layerstore::RwLayer>> {
        if self.spec.rootfs_dir.is_some() {
            return Ok(None);
        }
        Ok(Some(self.store.images()?.layers().get_rw(&self.spec.id)?))
    }

    /// Where the container's root filesystem is mounted on the host (the
    /// directory itself for a container made from one).
    pub fn rootfs_path(&self) -> Result<Option<PathBuf>> {
        match &self.spec.rootfs_dir {
            Some(d) => Ok(Some(d.clone())),
            None => Ok(self
                .store
                .images()?
                .layers()
                .rw_mount_point(&self.spec.id)?),
        }
    }

    /// The path of the container's json-file log (`<id>-json.log` in its
    /// state directory); present for containers with a monitor.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(format!("{}-json.log", self.spec.id))
    }

    /// The log's lines (`docker logs`): each `{"log":...,"stream":...,
    /// "time":...}` entry, as (stream, text).
    pub fn logs(&self) -> Result<Vec<(String, String)>> {
        read_json_log(&self.log_path())
    }
}

/// Read a docker json-file log; a malformed line is an error naming it.
pub fn read_json_log(path: &Path) -> Result<Vec<(String, String)>> {
    #[derive(serde::Deserialize)]
    struct Line {
        log: String,
        stream: String,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| Error::CorruptState {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        out.push((l.stream, l.log));
    }
    Ok(out)
}
