//! The on-disk protocol of a container's state, shared by every process
//! that works on the store.
//!
//! ```text
//! <root>/containers/
//!     .lock                 flock: held exclusively while a container is
//!                           added or removed (names stay unique)
//!     <id>/                 64 hex digits; flock on the directory
//!                           itself: held exclusively by every operation
//!                           that changes the container (start, kill,
//!                           stop, pause, remove, recording the exit)
//!         config.json       the resolved Spec, written once at create
//!                           (atomically, not fsynced)
//!                           xattr user.dunnage.creator: `PID START` of
//!                           the process creating it, until state.json
//!                           exists (the store check skips a create whose
//!                           creator lives); a file `creator` where the
//!                           file system has no user xattrs
//!         state.json        the State below, replaced atomically (not
//!                           fsynced: a crash ends its processes anyway)
//!         hostname, hosts, resolv.conf
//!                           bound (rbind, as docker does) over the init
//!                           layer's empty /etc files
//!         <id>-json.log     docker's json-file log (detached containers)
//!         start.fifo        detached containers not started yet: a byte
//!                           written here asks the monitor to start it
//!     .seccomp/<key>.bpf    compiled seccomp programs, a cache (see
//!                           below)
//! ```
//!
//! A container directory without `config.json` or `state.json` is a create
//! that did not finish: listing skips it and `remove` deletes it.
//!
//! `.seccomp/` keeps the seccomp programs compiled for containers, keyed
//! by a hash of the policy, the architecture and the libseccomp version,
//! each file verified by a checksum when read, so that a process that
//! makes one container (the CLI, an OCI runtime) does not compile
//! Docker's policy again. Deleting it at any time is safe.
//!
//! The init's pid is only trusted with its start time
//! (`/proc/<pid>/stat` field 22): a pid the kernel reused for another
//! process has another start time, and the container counts as exited.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::error::{Error, Result, io_err};
use crate::container::spec::Status;

/// The mutable part of a container's state (`state.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct State {
    /// The status as last recorded (see [`State::live_status`]).
    pub status: Option<Status>,
    /// The init's pid in the host's pid namespace (0: none).
    pub pid: i32,
    /// The init's start time in clock ticks after boot (`/proc/<pid>/stat`
    /// field 22), the guard against pid reuse.
    pub pid_start: u64,
    /// The exit code (128 + signal when killed by one), when known.
    pub exit_code: Option<i32>,
    /// Whether the OOM killer ended it.
    pub oom_killed: bool,
    /// When it was created (RFC 3339 with nanoseconds, UTC).
    pub created_at: String,
    /// When it started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The pid of its monitor (detached containers), 0 if none.
    pub monitor_pid: i32,
    /// The monitor's start time (the guard against pid reuse).
    #[serde(default)]
    pub monitor_start: u64,
    /// The rootfs bind a container sharing the creator's mount namespace
    /// made there (an OCI config without a mount namespace of its own),
    /// unmounted by remove; `None` for a container with its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_rootfs: Option<SharedRootfs>,
}

/// Which mount a container sharing the creator's mount namespace left
/// there: its rootfs bind, with everything mounted below it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SharedRootfs {
    /// The bind's mount ID (`/proc/self/mountinfo` field 1): remove
    /// unmounts the top mount at the rootfs only while it still has it.
    pub mount_id: u32,
    /// The device of the mount namespace's nsfs file.
    pub ns_dev: u64,
    /// The inode of the mount namespace's nsfs file: remove run from
    /// another mount namespace leaves it (the mounts go with that
    /// namespace).
    pub ns_ino: u64,
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`), `None` when
/// there is no such process.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|(_, start)| start)
}

/// The state letter (field 3) and the start time (field 22) of `pid`, from
/// one read of `/proc/<pid>/stat`.
fn read_stat(pid: i32) -> Option<(u8, u64)> {
    if pid <= 0 {
        return None;
    }
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let stat = dunnage_base::fs::read_unsized(&path).ok()?;
    // The command name is in parentheses and may hold anything (bytes
    // that are not UTF-8: the kernel cuts it at 15 bytes, inside a
    // character if need be): skip to the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_whitespace();
    // After ')' come field 3 (state) onwards: field 22 is the 20th.
    let state = *fields.next()?.as_bytes().first()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` (not a zombie) is still the process that started at
/// `start`.
pub fn same_process(pid: i32, start: u64) -> bool {
    let Some((state, started)) = read_stat(pid) else {
        return false;
    };
    // A zombie has ended; only its parent's wait remains.
    started == start && state != b'Z' && state != b'X'
}

impl State {
    /// The status with the process checked: a recorded `running`,
    /// `paused` or `created` whose process is gone is `exited`.
    pub fn live_status(&self) -> Status {
        let recorded = self.status.unwrap_or(Status::Exited);
        match recorded {
            Status::Exited => Status::Exited,
            other if same_process(self.pid, self.pid_start) => other,
            _ => Status::Exited,
        }
    }

    /// Read `state.json` of the container directory `dir`.
    ///
    /// An empty file is an exited container with nothing else known: the
    /// state is replaced without fsync ([`write`](State::write)), so a
    /// power loss can leave it empty, and the processes it described are
    /// gone then.
    pub fn read(dir: &Path) -> Result<State> {
        let path = dir.join("state.json");
        let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
        if bytes.is_empty() {
            return Ok(State {
                status: Some(Status::Exited),
                ..State::default()
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptState {
            path,
            reason: e.to_string(),
        })
    }

    /// Replace `state.json` of `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("state.json");
        let bytes = serde_json::to_vec(self).map_err(|e| Error::CorruptState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // Atomic, not fsynced: after a crash the processes it describes are
        // gone, and the live check (pid and start time) corrects it.
        dunnage_base::fs::write_replace(&path, &bytes, 0o600).map_err(io_err("write", path))
    }
}

/// The time now, as docker writes it (RFC 3339, nanoseconds, UTC).
pub fn now() -> String {
    dunnage_image::time::format_rfc3339(std::time::SystemTime::now())
}

/// `<root>/containers`.
pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Whether `id` is a container ID: 64 lower-case hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// [`valid_id`], as an error naming the ID when it is not one.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if valid_id(id) {
        return Ok(());
    }
    Err(Error::Invalid {
        what: "container ID",
        reason: format!("{id:?} is not 64 lower-case hex digits"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_and_reuse_guard() {
        let me = std::process::id() as i32;
        let start = pid_start_time(me).unwrap();
        assert!(same_process(me, start));
        assert!(!same_process(me, start + 1));
        assert_eq!(pid_start_time(0), None);
        assert_eq!(pid_start_time(-5), None);
        let st = State {
            status: Some(Status::Running),
            pid: me,
            pid_start: start + 1,
            ..State::default()
        };
        assert_eq!(st.live_status(), Status::Exited);
    }

    /// A command name the kernel cut inside a UTF-8 character (15 bytes
    /// of `é`s): the process is still recognised.
    #[test]
    fn a_name_cut_inside_a_character_is_still_the_process() {
        let dir = std::env::temp_dir().join(format!("dunnage-test-stat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("ééééééééé");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        let mut child = std::process::Command::new(&exe).arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        // Until the exec has happened (the name is the new one).
        let stat = PathBuf::from(format!("/proc/{pid}/stat"));
        while !std::fs::read(&stat)
            .unwrap()
            .starts_with(format!("{pid} (é").as_bytes())
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(std::str::from_utf8(&std::fs::read(&stat).unwrap()).is_err());
        let start = pid_start_time(pid).unwrap();
        assert!(same_process(pid, start));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!same_process(pid, start));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A state without the shared rootfs (an older one, or a container
    /// with its own mount namespace) reads as `None`; one with it round
    /// trips.
    #[test]
    fn shared_rootfs_is_optional_and_round_trips() {
        let mut v = serde_json::to_value(State::default()).unwrap();
        v.as_object_mut().unwrap().remove("shared_rootfs");
        let old: State = serde_json::from_value(v).unwrap();
        assert_eq!(old.shared_rootfs, None);
        let st = State {
            shared_rootfs: Some(SharedRootfs {
                mount_id: 7,
                ns_dev: 4,
                ns_ino: 4026531841,
            }),
            ..State::default()
        };
        let back: State = serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(back, st);
    }

    #[test]
    fn corrupt_state_is_typed() {
        let dir = std::env::temp_dir().join(format!("dunnage-test-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for junk in [
            &b"{"[..],
            b"[]",
            b"{\"pid\":\"x\"}",
            b"\xff\xfe",
            b"{\"shared_rootfs\":\"x\"}",
            b"{\"shared_rootfs\":{\"mount_id\":-1,\"ns_dev\":0,\"ns_ino\":0}}",
        ] {
            std::fs::write(dir.join("state.json"), junk).unwrap();
            assert!(matches!(State::read(&dir), Err(Error::CorruptState { .. })));
        }
        // Empty (a power loss after a replace): exited, nothing known.
        std::fs::write(dir.join("state.json"), b"").unwrap();
        let st = State::read(&dir).unwrap();
        assert_eq!((st.status, st.pid), (Some(Status::Exited), 0));
        let st = State {
            status: Some(Status::Created),
            created_at: now(),
            ..State::default()
        };
        st.write(&dir).unwrap();
        assert_eq!(State::read(&dir).unwrap(), st);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids() {
        assert!(valid_id(&"a".repeat(64)));
        assert!(!valid_id(&"A".repeat(64)));
        assert!(!valid_id("abc"));
        assert!(!valid_id(&"../".repeat(21)));
    }
}
