//! `/proc/<pid>/mountinfo`, parsed exactly (proc_pid_mountinfo(5)).
//!
//! Paths are kept as bytes (`PathBuf`/`OsString`): the kernel escapes space,
//! tab, newline and backslash as `\ooo` octal and passes every other byte
//! through, so a mount point need not be UTF-8.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Unique mount ID.
    pub mount_id: u32,
    /// The parent mount's ID (itself for the root of the tree).
    pub parent_id: u32,
    /// `st_dev` major of the filesystem.
    pub major: u32,
    /// `st_dev` minor of the filesystem.
    pub minor: u32,
    /// The directory of the filesystem that forms this mount's root.
    pub root: PathBuf,
    /// Where it is mounted, relative to the reading process's root.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Optional fields (`shared:1`, `master:2`, `propagate_from:3`,
    /// `unbindable`).
    pub optional: Vec<String>,
    /// Filesystem type (`overlay`, `cgroup2`, `fuse.sshfs`).
    pub fs_type: String,
    /// Filesystem-specific source (`/dev/vda1`, `overlay`), as bytes.
    pub source: OsString,
    /// Per-superblock options (`lowerdir=...`, `memory`).
    pub super_options: String,
}

impl MountInfo {
    /// Whether a per-mount option (`ro`, `nosuid`, ...) is set.
    pub fn has_mount_option(&self, opt: &str) -> bool {
        self.mount_options.split(',').any(|o| o == opt)
    }

    /// The peer group of a shared mount (`shared:N`).
    pub fn shared_group(&self) -> Option<u32> {
        self.optional
            .iter()
            .find_map(|o| o.strip_prefix("shared:")?.parse().ok())
    }

    /// The master peer group of a slave mount (`master:N`).
    pub fn master_group(&self) -> Option<u32> {
        self.optional
            .iter()
            .find_map(|o| o.strip_prefix("master:")?.parse().ok())
    }
}

/// Parse mountinfo text. A malformed line is an
/// [`io::ErrorKind::InvalidData`] error naming its line number.
pub fn parse(text: &[u8]) -> io::Result<Vec<MountInfo>> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            parse_line(l).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "mountinfo line {}: malformed: {}",
                        i + 1,
                        String::from_utf8_lossy(l)
                    ),
                )
            })
        })
        .collect()
}

/// Read and parse `/proc/self/mountinfo`.
pub fn read_self() -> io::Result<Vec<MountInfo>> {
    read_path(Path::new("/proc/self/mountinfo"))
}

/// Read and parse `/proc/<pid>/mountinfo`.
pub fn read_pid(pid: u32) -> io::Result<Vec<MountInfo>> {
    read_path(&PathBuf::from(format!("/proc/{pid}/mountinfo")))
}

fn read_path(path: &Path) -> io::Result<Vec<MountInfo>> {
    let text = crate::fs::read_unsized(path)?;
    parse(&text)
}

/// Mount points at or below `dir`, deepest first (the order to unmount
/// them in), from `/proc/self/mountinfo`.
pub fn mounts_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = read_self()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(found)
}

/// Decode the kernel's `\ooo` octal escapes; anything else (a lone or
/// trailing backslash, `\04`) is kept as it is.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && let Some(d) = s.get(i + 1..i + 4)
            && d.iter().all(|b| (b'0'..=b'7').contains(b))
            && d[0] <= b'3'
        {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn parse_line(line: &[u8]) -> Option<MountInfo> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let sep = fields.iter().position(|f| *f == b"-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(unescape(b)).ok();
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
    let (major, minor) = {
        let d = std::str::from_utf8(fields[2]).ok()?;
        let (a, b) = d.split_once(':')?;
        (a.parse().ok()?, b.parse().ok()?)
    };
    Some(MountInfo {
        mount_id: num(fields[0])?,
        parent_id: num(fields[1])?,
        major,
        minor,
        root: PathBuf::from(OsString::from_vec(unescape(fields[3]))),
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
        mount_options: text(fields[5])?,
        optional: fields[6..sep]
            .iter()
            .map(|f| text(f))
            .collect::<Option<_>>()?,
        fs_type: text(fields[sep + 1])?,
        source: OsString::from_vec(unescape(fields[sep + 2])),
        super_options: String::from_utf8_lossy(&unescape(&fields[sep + 3..].join(&b' ')))
            .into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    const SAMPLE: &[u8] = b"22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard\n\
36 22 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory\n\
40 22 0:44 /sub /tmp/a\\040b\\134c\\377 ro master:3 propagate_from:2 - overlay overlay rw,lowerdir=/l\\054x\n\
41 22 0:45 / /tmp/unbound rw unbindable - tmpfs tmp\\040fs rw\n";

    #[test]
    fn every_field_parses_and_escapes_decode_to_bytes() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mount_point, Path::new("/"));
        assert_eq!(m[0].shared_group(), Some(1));
        assert_eq!((m[0].major, m[0].minor), (254, 1));
        assert_eq!(m[1].fs_type, "cgroup");
        assert_eq!(m[1].super_options, "rw,memory");
        assert!(m[1].has_mount_option("noexec"));
        assert_eq!(m[2].root, Path::new("/sub"));
        assert_eq!(m[2].mount_point.as_os_str().as_bytes(), b"/tmp/a b\\c\xff");
        assert_eq!(m[2].master_group(), Some(3));
        assert_eq!(m[2].optional, ["master:3", "propagate_from:2"]);
        assert_eq!(m[2].super_options, "rw,lowerdir=/l,x");
        assert_eq!(m[3].source.as_bytes(), b"tmp fs");
        assert_eq!(m[3].optional, ["unbindable"]);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for bad in [
            &b"22 1 254:1 / / rw shared:1 ext4 /dev/vda1 rw\n"[..],
            b"x 1 254:1 / / rw - ext4 /dev/vda1 rw\n",
            b"22 1 2541 / / rw - ext4 /dev/vda1 rw\n",
            b"22 1 254:1 / / - ext4 /dev/vda1 rw\n",
            b"22 1 254:1 / / rw - ext4\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("line 1"), "{e}");
        }
    }

    #[test]
    fn unescape_keeps_what_is_not_an_escape() {
        assert_eq!(unescape(br"/a\040b"), b"/a b");
        assert_eq!(unescape(br"/a\"), br"/a\");
        assert_eq!(unescape(br"/a\04"), br"/a\04");
        assert_eq!(unescape(br"/a\400"), br"/a\400");
        assert_eq!(unescape(br"\\134"), br"\\");
    }

    #[test]
    fn this_process_sees_its_root() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mount_point == Path::new("/")));
        assert!(
            mounts_below(Path::new("/proc"))
                .unwrap()
                .iter()
                .any(|p| p == Path::new("/proc"))
        );
    }
}
