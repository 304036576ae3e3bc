//! OOM notification as a pollable file descriptor.
//!
//! v1: an eventfd registered in `cgroup.event_control` against
//! `memory.oom_control`; the kernel signals it on every OOM in the cgroup.
//! v2: an inotify watch on `memory.events`; a change is an event when the
//! `oom` or `oom_kill` counter grew.

use crate::cgroup::Cgroup;
use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::file;
use crate::hierarchy::Version;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::fs::inotify;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// A source of OOM events of one cgroup. Poll [`OomEvents::as_fd`] for
/// readability, or call [`OomEvents::wait`].
#[derive(Debug)]
pub struct OomEvents {
    fd: OwnedFd,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The eventfd, and `memory.oom_control` kept open: closing it would
    /// unregister the event.
    V1 { _oom_control: File },
    /// `memory.events` and the counters last seen.
    V2 { events: PathBuf, seen: u64 },
}

fn sys(op: &'static str, arg: impl Into<String>, e: rustix::io::Errno) -> Error {
    Error::Sys {
        op,
        arg: arg.into(),
        source: e.into(),
    }
}

impl Cgroup {
    /// How many processes the OOM killer has killed in this cgroup (v1
    /// `memory.oom_control`, v2 `memory.events`, key `oom_kill`); `None`
    /// without the memory controller. One file read, where
    /// [`Cgroup::stats`] reads every controller's.
    pub fn oom_kills(&self) -> Result<Option<u64>> {
        let Some(d) = self.dir_of(Controller::Memory) else {
            return Ok(None);
        };
        let path = d.file(match d.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        });
        let keyed = file::read_flat_keyed(&path)?;
        file::key(&path, &keyed, "oom_kill").map(Some)
    }

    /// Start listening for OOM events in this cgroup's memory controller.
    pub fn oom_events(&self) -> Result<OomEvents> {
        let d = self.dir_of(Controller::Memory).ok_or_else(|| {
            Error::unsupported("oom events", "the memory controller is not in this cgroup")
        })?;
        match d.version {
            Version::V1 => {
                let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                    .map_err(|e| sys("eventfd", "", e))?;
                let oc_path = d.file("memory.oom_control");
                let oc = File::open(&oc_path).map_err(|e| Error::io("open", &oc_path, e))?;
                file::write(
                    &d.file("cgroup.event_control"),
                    &format!("{} {}", efd.as_raw_fd(), oc.as_raw_fd()),
                )?;
                Ok(OomEvents {
                    fd: efd,
                    kind: Kind::V1 { _oom_control: oc },
                })
            }
            Version::V2 => {
                let events = d.file("memory.events");
                let fd =
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                        .map_err(|e| sys("inotify_init1", "", e))?;
                inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY)
                    .map_err(|e| sys("inotify_add_watch", events.display().to_string(), e))?;
                let seen = oom_count(&events)?;
                Ok(OomEvents {
                    fd,
                    kind: Kind::V2 { events, seen },
                })
            }
        }
    }
}

/// `oom` + `oom_kill` of a v2 `memory.events`.
fn oom_count(events: &std::path::Path) -> Result<u64> {
    let kv = file::read_flat_keyed(events)?;
    Ok(file::key(events, &kv, "oom")? + file::key(events, &kv, "oom_kill")?)
}

impl OomEvents {
    /// Wait up to `timeout` (forever when `None`) for OOM events; returns
    /// how many arrived (0 on timeout).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<u64> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let ts = left.map(|l| {
                Timespec::try_from(l).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                })
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(sys("poll", "", e)),
            }
            let n = self.drain()?;
            if n > 0 {
                return Ok(n);
            }
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(0);
            }
        }
    }

    /// Consume what is pending without blocking; returns the new events.
    fn drain(&mut self) -> Result<u64> {
        match &mut self.kind {
            Kind::V1 { .. } => {
                let mut buf = [0u8; 8];
                match rustix::io::read(&self.fd, &mut buf) {
                    Ok(8) => Ok(u64::from_ne_bytes(buf)),
                    Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(0),
                    Err(e) => Err(sys("read", "eventfd", e)),
                }
            }
            Kind::V2 { events, seen } => {
                let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
                let mut reader = inotify::Reader::new(&self.fd, &mut buf);
                loop {
                    match reader.next() {
                        Ok(_) => {}
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(e) => return Err(sys("read", "inotify", e)),
                    }
                }
                let now = oom_count(events)?;
                let new = now.saturating_sub(*seen);
                *seen = now;
                Ok(new)
            }
        }
    }
}

impl AsFd for OomEvents {
    /// The fd to poll for readability (an eventfd on v1, an inotify fd on
    /// v2). After it polls readable, call [`OomEvents::wait`] with a zero
    /// timeout to consume and count the events.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
