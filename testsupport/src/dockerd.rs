//! A private dockerd for tests: its own data-root, exec-root, pidfile and
//! socket under a [`TempDir`], overlay2, no bridge, no iptables.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// The Debian `docker.io` daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The Debian `docker.io` client (a newer client may come first on `PATH`).
pub const DOCKER: &str = "/usr/bin/docker";

/// A running private dockerd, stopped and cleaned up on drop.
///
/// ```no_run
/// let d = dunnage_testsupport::Dockerd::start("example").unwrap();
/// let out = d.docker().arg("images").output().unwrap();
/// assert!(out.status.success());
/// ```
#[derive(Debug)]
pub struct Dockerd {
    // Fields drop in order: the daemon stops before its directory goes.
    daemon: Daemon,
    dir: TempDir,
}

/// The daemon process; shut down on drop.
#[derive(Debug)]
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

impl Dockerd {
    /// Start a daemon in a fresh `dunnage-test-dockerd-<tag>-...` directory
    /// and wait (up to 60 s) until it answers.
    pub fn start(tag: &str) -> io::Result<Dockerd> {
        let dir = TempDir::new(&format!("dockerd-{tag}"))?;
        Self::start_in(dir)
    }

    /// Start a daemon whose data-root is `<dir>/data` (possibly written by an
    /// earlier daemon), and wait until it answers.
    pub fn start_in(dir: TempDir) -> io::Result<Dockerd> {
        Self::start_in_with(dir, &[] as &[&str])
    }

    /// Start a daemon in a fresh directory (as [`Dockerd::start`]) with
    /// `extra` arguments after the usual ones, e.g.
    /// `--add-runtime NAME=/abs/path`.
    pub fn start_with<S: AsRef<std::ffi::OsStr>>(tag: &str, extra: &[S]) -> io::Result<Dockerd> {
        let dir = TempDir::new(&format!("dockerd-{tag}"))?;
        Self::start_in_with(dir, extra)
    }

    /// [`Dockerd::start_in`] with `extra` arguments for the daemon.
    pub fn start_in_with<S: AsRef<std::ffi::OsStr>>(
        dir: TempDir,
        extra: &[S],
    ) -> io::Result<Dockerd> {
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args([
                "--storage-driver=overlay2",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut d = Dockerd {
            daemon: Daemon {
                child: Some(child),
                dir: dir.path().to_path_buf(),
            },
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = d
                .docker()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(d);
            }
            if let Some(child) = d.daemon.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "dockerd exited with {status}: {}",
                    d.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "dockerd did not answer within 60 s: {}",
                    d.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's process id (`None` once it was stopped), for reading
    /// its CPU time from `/proc` in benchmarks.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.child.as_ref().map(Child::id)
    }

    /// The daemon's `--data-root`.
    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding everything of this daemon.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `-H` value of the daemon's socket.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// A `docker -H <sock>` command to add arguments to.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H").arg(self.host());
        c
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Stop the daemon (SIGTERM, then SIGKILL after 30 s) and return its
    /// directory, whose data-root can then be opened by the code under test
    /// or handed to [`Dockerd::start_in`].
    pub fn stop(self) -> io::Result<TempDir> {
        let Dockerd { mut daemon, dir } = self;
        daemon.shutdown()?;
        Ok(dir)
    }
}

impl Daemon {
    fn shutdown(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The managed containerd normally exits with dockerd; make sure.
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && pid > 1
            && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok()
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.contains(&self.dir.display().to_string()))
        {
            // SAFETY: the containerd this daemon started (its command line
            // names our directory).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
