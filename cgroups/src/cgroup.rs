//! A cgroup handle: one directory per v1 hierarchy of the chosen
//! controllers, or the one v2 directory (both, in hybrid mode).

use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::file;
use crate::hierarchy::{Hierarchies, Hierarchy, Version};
use crate::path::CgroupPath;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One directory of a cgroup, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The hierarchy's version.
    pub version: Version,
    /// The directory.
    pub path: PathBuf,
    /// The controllers this handle uses in it.
    pub controllers: Vec<Controller>,
}

impl CgroupDir {
    /// The file `name` in this directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The file of a thread list: v1 `tasks`, v2 `cgroup.threads`.
    fn threads_file(&self) -> PathBuf {
        self.file(match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.threads",
        })
    }
}

/// A cgroup across the hierarchies that hold its controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: CgroupPath,
    dirs: Vec<CgroupDir>,
}

/// How long `delete` waits for exiting tasks to leave.
const DELETE_WAIT: Duration = Duration::from_secs(2);

impl Cgroup {
    /// Create the cgroup `path` (and missing parents) in the hierarchies of
    /// `controllers` (when empty: every hierarchy with controllers and the
    /// v2 one, or, when `h` holds only named v1 hierarchies, those).
    /// Existing directories are
    /// reused; on failure the directories this call made are removed.
    ///
    /// v1 cpuset: a new directory gets its parent's `cpuset.cpus` and
    /// `cpuset.mems` (tasks cannot join an empty cpuset). v2: the chosen
    /// controllers are enabled in each ancestor's `cgroup.subtree_control`,
    /// top-down.
    pub fn create(
        h: &Hierarchies,
        path: &CgroupPath,
        controllers: &[Controller],
    ) -> Result<Cgroup> {
        let cg = Cgroup::select(h, path, controllers)?;
        let mut created: Vec<PathBuf> = Vec::new();
        let result = cg.dirs.iter().try_for_each(|d| {
            let mount = mount_point_of(&d.path, path);
            create_dir(d, &mount, path, &mut created)
        });
        if let Err(e) = result {
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Open the existing cgroup `path` in the hierarchies of `controllers`
    /// (all usable ones when empty).
    pub fn open(h: &Hierarchies, path: &CgroupPath, controllers: &[Controller]) -> Result<Cgroup> {
        let cg = Cgroup::select(h, path, controllers)?;
        for d in &cg.dirs {
            std::fs::metadata(&d.path).map_err(|e| Error::io("open", &d.path, e))?;
        }
        Ok(cg)
    }

    /// The cgroup `path` as [`create`](Cgroup::create) would make it in the
    /// hierarchies of `controllers` (all usable ones when empty): its
    /// directories, nothing made or checked. For a caller that needs their
    /// paths before they exist.
    pub fn planned(
        h: &Hierarchies,
        path: &CgroupPath,
        controllers: &[Controller],
    ) -> Result<Cgroup> {
        Cgroup::select(h, path, controllers)
    }

    /// The directories `path` has in the hierarchies of `controllers`.
    fn select(h: &Hierarchies, path: &CgroupPath, controllers: &[Controller]) -> Result<Cgroup> {
        let mut dirs: Vec<CgroupDir> = Vec::new();
        let mut add = |hier: &Hierarchy, c: Vec<Controller>| {
            let p = hier.mount_point.join(path.as_str());
            match dirs.iter_mut().find(|d| d.path == p) {
                Some(d) => {
                    for c in c {
                        if !d.controllers.contains(&c) {
                            d.controllers.push(c);
                        }
                    }
                }
                None => dirs.push(CgroupDir {
                    version: hier.version,
                    path: p,
                    controllers: c,
                }),
            }
        };
        let mut chosen: Vec<(&Hierarchy, Vec<Controller>)> = Vec::new();
        if controllers.is_empty() {
            chosen = h
                .list()
                .iter()
                .map(|x| (x, x.controllers()))
                .filter(|(x, cs)| x.version == Version::V2 || !cs.is_empty())
                .collect();
            // Only named hierarchies (`none,name=...`): use them.
            if chosen.is_empty() {
                chosen = h.list().iter().map(|x| (x, Vec::new())).collect();
            }
        } else {
            for &c in controllers {
                let hier = h.for_controller(c).ok_or_else(|| {
                    Error::unsupported(c.v1_name(), "no mounted hierarchy offers this controller")
                })?;
                chosen.push((hier, vec![c]));
            }
        }
        for (hier, c) in chosen {
            add(hier, c);
        }
        if dirs.is_empty() {
            return Err(Error::NotMounted("no hierarchy with controllers".into()));
        }
        Ok(Cgroup {
            path: path.clone(),
            dirs,
        })
    }

    /// The cgroup's path below the hierarchies' roots.
    pub fn path(&self) -> &CgroupPath {
        &self.path
    }

    /// Its directories, one per hierarchy.
    pub fn dirs(&self) -> &[CgroupDir] {
        &self.dirs
    }

    /// The directory that holds controller `c`.
    pub fn dir_of(&self, c: Controller) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.controllers.contains(&c))
    }

    /// The v2 directory, if the handle has one.
    pub fn v2_dir(&self) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.version == Version::V2)
    }

    /// Remove the cgroup's directories. While exiting tasks still hold it
    /// (`EBUSY`), retry for up to 2 s; then, or at once when it has child
    /// cgroups, fail with [`Error::NotEmpty`]. A directory that is already
    /// gone is not an error.
    pub fn delete(&self) -> Result<()> {
        for d in &self.dirs {
            remove_dir(&d.path)?;
        }
        Ok(())
    }

    /// Remove the cgroup's directories when no process and no child cgroup
    /// holds it: `Ok(true)`, nothing read or written but the `rmdir`s. At
    /// the first busy directory, `Ok(false)` without waiting, the rest left
    /// in place (then [`kill`](Cgroup::kill) and [`delete`](Cgroup::delete)
    /// it). A directory that is already gone is not an error.
    pub fn delete_if_empty(&self) -> Result<bool> {
        for d in &self.dirs {
            match std::fs::remove_dir(&d.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(false),
                Err(e) => return Err(Error::io("rmdir", &d.path, e)),
            }
        }
        Ok(true)
    }

    /// Remove the cgroup and every cgroup below it, deepest first. The
    /// cgroups must hold no process.
    pub fn delete_recursive(&self) -> Result<()> {
        for d in &self.dirs {
            let mut all = Vec::new();
            collect_dirs(&d.path, &mut all)?;
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in all {
                remove_dir(&p)?;
            }
        }
        Ok(())
    }

    /// Move process `pid` (all its threads) into the cgroup, in every
    /// hierarchy.
    pub fn add_process(&self, pid: u32) -> Result<()> {
        check_pid(pid)?;
        for d in &self.dirs {
            write_pid(&d.file("cgroup.procs"), pid)?;
        }
        Ok(())
    }

    /// Move thread `tid` into the cgroup: v1 `tasks`, v2 `cgroup.threads`
    /// (v2 needs a threaded cgroup, see [`Cgroup::set_threaded`]).
    pub fn add_thread(&self, tid: u32) -> Result<()> {
        check_pid(tid)?;
        for d in &self.dirs {
            write_pid(&d.threads_file(), tid)?;
        }
        Ok(())
    }

    /// The processes in the cgroup (all hierarchies, sorted, no repeats).
    pub fn procs(&self) -> Result<Vec<u32>> {
        self.ids(|d| d.file("cgroup.procs"))
    }

    /// The threads in the cgroup (all hierarchies, sorted, no repeats).
    pub fn threads(&self) -> Result<Vec<u32>> {
        self.ids(CgroupDir::threads_file)
    }

    /// [`procs`](Cgroup::procs) of the directories still there and of the
    /// cgroups below them (a container with its own cgroup namespace may
    /// have made some): a directory removed meanwhile holds no process.
    pub(crate) fn procs_left(&self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for d in &self.dirs {
            let mut dirs = Vec::new();
            collect_dirs(&d.path, &mut dirs)?;
            for dir in dirs {
                match read_ids(&dir.join("cgroup.procs")) {
                    Ok(ids) => out.extend(ids),
                    // Gone meanwhile (kernfs says ENODEV for a cgroup removed
                    // between lookup and open), or a v2 threaded cgroup
                    // below (EOPNOTSUPP: its processes are listed in the
                    // domain above it).
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound
                            || (dir != d.path
                                && source.raw_os_error() == Some(libc::EOPNOTSUPP))
                            || source.raw_os_error() == Some(libc::ENODEV) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn ids(&self, file: impl Fn(&CgroupDir) -> PathBuf) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for d in &self.dirs {
            out.extend(read_ids(&file(d))?);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Move every process of this cgroup into `to`. Processes that exit
    /// meanwhile are skipped; new ones forked meanwhile are moved too.
    pub fn move_all(&self, to: &Cgroup) -> Result<()> {
        for _ in 0..16 {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                match to.add_process(pid) {
                    Ok(()) | Err(Error::NoSuchProcess { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::Timeout {
            what: "processes to move",
            path: self.dirs[0].path.clone(),
        })
    }

    /// The directory holding the control file `name`: the one of the
    /// controller its prefix names (`memory.max` -> memory), else (core
    /// files such as `cgroup.procs`) the v2 one, else the first.
    pub fn dir_for_file(&self, name: &str) -> Result<&CgroupDir> {
        if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
            return Err(Error::invalid(
                "control file",
                format!("{name:?} is not a file name"),
            ));
        }
        let prefix = name.split('.').next().unwrap_or_default();
        match Controller::from_name(prefix) {
            Some(c) => self
                .dir_of(c)
                .or_else(|| self.v2_dir().filter(|_| c.v2_builtin())),
            None => self.v2_dir().or(self.dirs.first()),
        }
        .ok_or_else(|| {
            Error::unsupported(
                "control file",
                format!("no directory of this cgroup holds {name}"),
            )
        })
    }

    /// Read the control file `name` (see [`Cgroup::dir_for_file`]).
    pub fn read_file(&self, name: &str) -> Result<String> {
        file::read(&self.dir_for_file(name)?.file(name))
    }

    /// Write `value` to the control file `name` in one write (see
    /// [`Cgroup::dir_for_file`]). No validation beyond the name: prefer
    /// [`Cgroup::apply`].
    pub fn write_file(&self, name: &str, value: &str) -> Result<()> {
        file::write(&self.dir_for_file(name)?.file(name), value)
    }

    /// v1: set `notify_on_release` in every v1 directory.
    pub fn set_notify_on_release(&self, on: bool) -> Result<()> {
        self.write_v1("notify_on_release", if on { "1" } else { "0" })
    }

    /// v1: set `cgroup.clone_children` (new children copy cpuset
    /// settings) in every v1 directory.
    pub fn set_clone_children(&self, on: bool) -> Result<()> {
        self.write_v1("cgroup.clone_children", if on { "1" } else { "0" })
    }

    fn write_v1(&self, name: &'static str, value: &str) -> Result<()> {
        let v1: Vec<_> = self
            .dirs
            .iter()
            .filter(|d| d.version == Version::V1)
            .collect();
        if v1.is_empty() {
            return Err(Error::unsupported(
                name,
                "a v1 file; this cgroup has no v1 directory",
            ));
        }
        v1.iter()
            .try_for_each(|d| file::write(&d.file(name), value))
    }

    fn v2(&self, what: &'static str) -> Result<&CgroupDir> {
        self.v2_dir()
            .ok_or_else(|| Error::unsupported(what, "a v2 file; this cgroup has no v2 directory"))
    }

    /// v2: enable `controllers` for this cgroup's children
    /// (`cgroup.subtree_control`). The no-internal-process rule gives
    /// [`Error::InternalProcesses`] when the cgroup holds processes.
    pub fn enable_subtree(&self, controllers: &[Controller]) -> Result<()> {
        enable_subtree(&self.v2("cgroup.subtree_control")?.path, controllers)
    }

    /// v2: the controllers enabled for this cgroup's children.
    pub fn subtree_control(&self) -> Result<Vec<String>> {
        let p = self
            .v2("cgroup.subtree_control")?
            .file("cgroup.subtree_control");
        Ok(file::read(&p)?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// v2: `cgroup.type` (`domain`, `domain threaded`, `domain invalid`,
    /// `threaded`).
    pub fn cgroup_type(&self) -> Result<String> {
        file::read_trimmed(&self.v2("cgroup.type")?.file("cgroup.type"))
    }

    /// v2: turn this cgroup into a threaded one (its parent becomes the
    /// threaded domain). There is no way back.
    pub fn set_threaded(&self) -> Result<()> {
        file::write(&self.v2("cgroup.type")?.file("cgroup.type"), "threaded")
    }
}

/// The mount point a directory of `path` hangs under.
fn mount_point_of(dir: &Path, path: &CgroupPath) -> PathBuf {
    let mut m = dir.to_path_buf();
    for _ in path.prefixes() {
        m.pop();
    }
    m
}

fn create_dir(
    d: &CgroupDir,
    mount: &Path,
    path: &CgroupPath,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    // v1 has nothing to set up in the ancestors: make the leaf alone when
    // they exist (the common case), one mkdir instead of one per level.
    if d.version == Version::V1 && !path.is_root() {
        let leaf = mount.join(path.as_str());
        match std::fs::create_dir(&leaf) {
            Ok(()) => {
                created.push(leaf.clone());
                if d.controllers.contains(&Controller::Cpuset)
                    && let Some(parent) = leaf.parent()
                {
                    inherit_cpuset(parent, &leaf)?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            // A missing ancestor: made below, top-down.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("mkdir", &leaf, e)),
        }
    }
    let mut parent = mount.to_path_buf();
    for prefix in path.prefixes() {
        if d.version == Version::V2 {
            enable_subtree(&parent, &d.controllers)?;
        }
        let dir = mount.join(prefix);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                created.push(dir.clone());
                if d.version == Version::V1 && d.controllers.contains(&Controller::Cpuset) {
                    inherit_cpuset(&parent, &dir)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("mkdir", &dir, e)),
        }
        parent = dir;
    }
    Ok(())
}

/// v1: copy `cpuset.cpus` and `cpuset.mems` from `parent` into a new `dir`.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<()> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        if file::read_trimmed(&dir.join(name))?.is_empty() {
            file::write(&dir.join(name), &file::read_trimmed(&parent.join(name))?)?;
        }
    }
    Ok(())
}

/// Enable the v2 controllers among `controllers` that `dir` does not yet
/// enable for its children.
fn enable_subtree(dir: &Path, controllers: &[Controller]) -> Result<()> {
    let ctl = dir.join("cgroup.subtree_control");
    let enabled = file::read(&ctl)?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !c.v2_builtin())
        .map(|c| c.v2_name())
        .filter(|n| !enabled.split_whitespace().any(|e| e == *n))
        .map(|n| format!("+{n}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = missing.join(" ");
    file::write(&ctl, &line).map_err(|e| match e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
            Error::InternalProcesses {
                path: dir.to_owned(),
                controllers: line.clone(),
            }
        }
        e => e,
    })
}

fn remove_dir(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + DELETE_WAIT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if has_child_dir(dir) || Instant::now() >= deadline {
                    return Err(Error::NotEmpty {
                        path: dir.to_owned(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io("rmdir", dir, e)),
        }
    }
}

fn has_child_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("readdir", dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io("readdir", dir, e))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), out)?;
        }
    }
    out.push(dir.to_owned());
    Ok(())
}

/// Refuse ids that cannot be a process: 0 (which the kernel reads as "the
/// writer itself") and ids beyond `pid_t`. A pid that does not exist is
/// refused by the kernel (`ESRCH`, see [`write_pid`]).
fn check_pid(pid: u32) -> Result<()> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return Err(Error::NoSuchProcess { pid });
    }
    Ok(())
}

fn write_pid(path: &Path, pid: u32) -> Result<()> {
    file::write(path, &pid.to_string()).map_err(|e| match e {
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::ESRCH) => {
            Error::NoSuchProcess { pid }
        }
        e => e,
    })
}

/// Parse a `cgroup.procs` / `tasks` / `cgroup.threads` file.
pub(crate) fn read_ids(path: &Path) -> Result<Vec<u32>> {
    file::read(path)?
        .lines()
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse()
                .map_err(|_| Error::parse(path, i + 1, format!("not a pid: {l:?}")))
        })
        .collect()
}
