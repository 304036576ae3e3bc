//! uid and gid maps of user namespaces: validation, the `/proc` format, and
//! writing them for a child (directly, or through `newuidmap`/`newgidmap`).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The kernel's limit on lines in a uid or gid map (Linux 4.15+).
pub const MAX_LINES: usize = 340;

/// One line of a uid or gid map: `count` ids starting at `inside` in the
/// namespace are ids starting at `outside` in its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdMap {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id in the parent namespace.
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

impl IdMap {
    /// A map line.
    pub fn new(inside: u32, outside: u32, count: u32) -> IdMap {
        IdMap {
            inside,
            outside,
            count,
        }
    }

    fn end(start: u32, count: u32) -> u64 {
        u64::from(start) + u64::from(count)
    }
}

impl fmt::Display for IdMap {
    /// The `/proc/<pid>/uid_map` line, without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// What is wrong with a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdMapError {
    /// No lines at all.
    #[error("the map is empty")]
    Empty,
    /// More lines than the kernel accepts.
    #[error("{0} lines, the kernel accepts at most {MAX_LINES}")]
    TooManyLines(usize),
    /// A line maps no ids.
    #[error("line `{0}` maps zero ids")]
    ZeroCount(IdMap),
    /// A range runs past the largest id (4294967294).
    #[error("line `{0}` runs past the largest id")]
    Overflow(IdMap),
    /// Two lines map overlapping ids inside the namespace.
    #[error("lines `{0}` and `{1}` overlap inside the namespace")]
    OverlapInside(IdMap, IdMap),
    /// Two lines map overlapping ids of the parent namespace.
    #[error("lines `{0}` and `{1}` overlap outside the namespace")]
    OverlapOutside(IdMap, IdMap),
    /// A line is not three decimal numbers.
    #[error("malformed line {0:?}")]
    Malformed(String),
}

/// Check a map as the kernel would, before any syscall: not empty, at most
/// [`MAX_LINES`] lines, no zero counts, no range past `u32::MAX - 1`, no
/// overlaps inside or outside.
pub fn validate(map: &[IdMap]) -> Result<(), IdMapError> {
    if map.is_empty() {
        return Err(IdMapError::Empty);
    }
    if map.len() > MAX_LINES {
        return Err(IdMapError::TooManyLines(map.len()));
    }
    for m in map {
        if m.count == 0 {
            return Err(IdMapError::ZeroCount(*m));
        }
        if IdMap::end(m.inside, m.count) > u64::from(u32::MAX)
            || IdMap::end(m.outside, m.count) > u64::from(u32::MAX)
        {
            return Err(IdMapError::Overflow(*m));
        }
    }
    let overlap = |a: u32, b: u32, ca: u32, cb: u32| {
        u64::from(a) < IdMap::end(b, cb) && u64::from(b) < IdMap::end(a, ca)
    };
    for (i, a) in map.iter().enumerate() {
        for b in &map[i + 1..] {
            if overlap(a.inside, b.inside, a.count, b.count) {
                return Err(IdMapError::OverlapInside(*a, *b));
            }
            if overlap(a.outside, b.outside, a.count, b.count) {
                return Err(IdMapError::OverlapOutside(*a, *b));
            }
        }
    }
    Ok(())
}

/// The map in the kernel's format: one `inside outside count` line each.
pub fn format(map: &[IdMap]) -> String {
    map.iter().map(|m| format!("{m}\n")).collect()
}

/// Parse the kernel's format (as read from `/proc/<pid>/uid_map`) and
/// validate the result.
pub fn parse(text: &str) -> Result<Vec<IdMap>, IdMapError> {
    let mut map = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let nums: Vec<u32> = fields.iter().filter_map(|f| f.parse().ok()).collect();
        if fields.len() != 3 || nums.len() != 3 {
            return Err(IdMapError::Malformed(line.to_owned()));
        }
        map.push(IdMap::new(nums[0], nums[1], nums[2]));
    }
    validate(&map)?;
    Ok(map)
}

/// The ranges `(start, count)` that `/etc/subuid` or `/etc/subgid` content
/// `text` grants to the user called `name` or numbered `id`. Malformed lines
/// are skipped, as shadow-utils does.
pub fn subordinate_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || (owner != name && owner.parse() != Ok(id)) {
                return None;
            }
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (count > 0 && IdMap::end(start, count) <= u64::from(u32::MAX)).then_some((start, count))
        })
        .collect()
}

/// Whether a user namespace may call `setgroups(2)` (`/proc/<pid>/setgroups`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetGroups {
    /// `allow`: needs a gid map written with privilege.
    Allow,
    /// `deny`: required before an unprivileged process writes a gid map.
    Deny,
}

impl SetGroups {
    fn as_str(self) -> &'static str {
        match self {
            SetGroups::Allow => "allow",
            SetGroups::Deny => "deny",
        }
    }
}

/// Write the uid and gid maps of process `pid` (a child in a new user
/// namespace that has not written them yet) from its parent namespace.
///
/// Root, and anyone writing a single id (the caller's own), writes
/// `/proc/<pid>/uid_map` and `gid_map` directly; an unprivileged caller's
/// gid map then needs `setgroups` `deny`, which `None` chooses. Any other map
/// of an unprivileged caller goes through `newuidmap`/`newgidmap`, which
/// check `/etc/subuid` and `/etc/subgid`. Maps are validated before anything
/// is written; an empty map is left unwritten. `pid` may be the caller
/// itself after it unshared a user namespace.
pub fn write_maps(
    pid: i32,
    uid_map: &[IdMap],
    gid_map: &[IdMap],
    setgroups: Option<SetGroups>,
) -> Result<()> {
    for (which, map) in [("uid", uid_map), ("gid", gid_map)] {
        if !map.is_empty() {
            validate(map).map_err(|source| Error::IdMap { which, source })?;
        }
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let single = |map: &[IdMap]| map.len() == 1 && map[0].count == 1;
    let direct_gid = euid == 0 || single(gid_map);
    let setgroups = match setgroups {
        None if euid != 0 && direct_gid && !gid_map.is_empty() => Some(SetGroups::Deny),
        s => s,
    };
    let proc = |f: &str| PathBuf::from(format!("/proc/{pid}/{f}"));
    if let Some(s) = setgroups {
        write_proc(&proc("setgroups"), s.as_str())?;
    }
    if !uid_map.is_empty() {
        if euid == 0 || single(uid_map) {
            write_proc(&proc("uid_map"), &format(uid_map))?;
        } else {
            run_helper("newuidmap", pid, uid_map)?;
        }
    }
    if !gid_map.is_empty() {
        if direct_gid {
            write_proc(&proc("gid_map"), &format(gid_map))?;
        } else {
            run_helper("newgidmap", pid, gid_map)?;
        }
    }
    Ok(())
}

/// Write a whole `/proc` control file in one `write(2)`, as the kernel
/// requires for maps.
fn write_proc(path: &std::path::Path, content: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let n = f
        .write(content.as_bytes())
        .map_err(|e| Error::io("write", path, e))?;
    if n != content.len() {
        return Err(Error::io(
            "write",
            path,
            std::io::Error::other("short write"),
        ));
    }
    Ok(())
}

fn run_helper(program: &'static str, pid: i32, map: &[IdMap]) -> Result<()> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(pid.to_string());
    for m in map {
        cmd.args([m.inside, m.outside, m.count].map(|n| n.to_string()));
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io("run", program, e))?;
    if !out.status.success() {
        return Err(Error::IdMapHelper {
            program,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_maps_validate_and_round_trip() {
        let map = vec![IdMap::new(0, 1000, 1), IdMap::new(1, 100000, 65536)];
        validate(&map).unwrap();
        assert_eq!(format(&map), "0 1000 1\n1 100000 65536\n");
        assert_eq!(parse(&format(&map)).unwrap(), map);
        assert_eq!(
            parse("         0          0 4294967295\n").unwrap(),
            vec![IdMap::new(0, 0, u32::MAX)]
        );
    }

    #[test]
    fn bad_maps_are_refused_with_the_reason() {
        assert_eq!(validate(&[]), Err(IdMapError::Empty));
        let zero = IdMap::new(0, 0, 0);
        assert_eq!(validate(&[zero]), Err(IdMapError::ZeroCount(zero)));
        let over = IdMap::new(u32::MAX, 0, 1);
        assert_eq!(validate(&[over]), Err(IdMapError::Overflow(over)));
        let over = IdMap::new(0, 10, u32::MAX);
        assert_eq!(validate(&[over]), Err(IdMapError::Overflow(over)));
        let (a, b) = (IdMap::new(0, 1000, 10), IdMap::new(9, 5000, 1));
        assert_eq!(validate(&[a, b]), Err(IdMapError::OverlapInside(a, b)));
        let (a, b) = (IdMap::new(0, 1000, 10), IdMap::new(100, 1005, 1));
        assert_eq!(validate(&[a, b]), Err(IdMapError::OverlapOutside(a, b)));
        let many: Vec<IdMap> = (0..341).map(|i| IdMap::new(i, i, 1)).collect();
        assert_eq!(validate(&many), Err(IdMapError::TooManyLines(341)));
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in [
            "0 0",
            "0 0 1 1",
            "a b c",
            "-1 0 1",
            "0 0 4294967296",
            "0 0 1\n0 5 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(""), Err(IdMapError::Empty));
    }

    #[test]
    fn subordinate_ranges_match_name_or_uid_and_skip_junk() {
        let text = "alice:100000:65536\n1000:300000:10\nbob:200000:65536\n\
                    alice:x:1\nalice:5:0\nalice:1:2:3\n:::\nalice:4294967295:2\n\n";
        assert_eq!(
            subordinate_ranges(text, "alice", 1000),
            vec![(100000, 65536), (300000, 10)]
        );
        assert!(subordinate_ranges(text, "carol", 7).is_empty());
    }
}
