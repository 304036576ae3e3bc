//! Helpers shared by the overlay integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use tar::{EntryType, Header};

/// A tar archive built header by header, names and link targets stored as
/// raw bytes (so hostile names survive).
#[derive(Default)]
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        RawTar::default()
    }

    pub fn raw_entry(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        data: &[u8],
        link: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_ustar();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw_entry(name.as_bytes(), EntryType::Regular, 0o644, data, b"")
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw_entry(name.as_bytes(), EntryType::Directory, 0o755, b"", b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw_entry(
            name.as_bytes(),
            EntryType::Symlink,
            0o777,
            b"",
            target.as_bytes(),
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw_entry(
            name.as_bytes(),
            EntryType::Link,
            0o644,
            b"",
            target.as_bytes(),
        )
    }

    /// A PAX extended header with the given records.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw_entry(b"PaxHeader", EntryType::XHeader, 0o644, &data, b"")
    }

    /// The archive with its end-of-archive marker.
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// A description of every entry below `root`: type, mode, owner, size,
/// content hash / link target / device, and xattrs. Times are left out
/// unless `with_times`.
pub fn snapshot(root: &Path, with_times: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, with_times, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, with_times: bool, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link->{}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!("file:{}:{:x}", data.len(), fnv(&data))
        } else if ft.is_char_device() {
            format!("chr:{}", m.rdev())
        } else if ft.is_block_device() {
            format!("blk:{}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mut xattrs: Vec<String> = xattr_names(&p)
            .into_iter()
            .filter(|n| !n.starts_with("security.selinux"))
            .map(|n| {
                let v = read_xattr(&p, &n);
                format!("{n}={}", String::from_utf8_lossy(&v))
            })
            .collect();
        xattrs.sort();
        let mut desc = format!(
            "{what} mode={:o} {}:{} x=[{}]",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            xattrs.join(",")
        );
        if ft.is_symlink() {
            desc = format!("{what} {}:{} x=[{}]", m.uid(), m.gid(), xattrs.join(","));
        }
        if with_times && !ft.is_symlink() {
            desc += &format!(" mtime={}", m.mtime());
        }
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.insert(rel, desc);
        if ft.is_dir() {
            walk(root, &p, with_times, out);
        }
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

pub fn xattr_names(p: &Path) -> Vec<String> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid buffer and C string.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn read_xattr(p: &Path, name: &str) -> Vec<u8> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid buffer and C strings.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Vec::new();
    }
    buf.truncate(r as usize);
    buf
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Run a command, panicking with its stderr on failure.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Make a mixed tree under `dir`: files, nested dirs, symlinks, a hardlink,
/// a fifo, a device, setuid/sticky modes, odd owners, an xattr, a long name.
pub fn populate(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    };
    w("etc/hostname", b"dunnage\n");
    w("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n");
    w("usr/bin/tool", &vec![7u8; 70_000]);
    w("empty", b"");
    let long = format!("deep/{}/{}", "d".repeat(120), "f".repeat(150));
    w(&long, b"long name");
    std::os::unix::fs::symlink("../etc/passwd", dir.join("usr/passwd-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/abs", dir.join("abs-link")).unwrap();
    std::fs::hard_link(dir.join("etc/passwd"), dir.join("etc/passwd.hard")).unwrap();
    std::fs::set_permissions(
        dir.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::create_dir(dir.join("tmp")).unwrap();
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    run(Command::new("mkfifo").arg(dir.join("fifo")));
    run(Command::new("mknod")
        .arg(dir.join("null"))
        .args(["c", "1", "3"]));
    run(Command::new("chown")
        .args(["-h", "1234:5678"])
        .arg(dir.join("etc/hostname")));
    run(Command::new("chown")
        .args(["-h", "42:43"])
        .arg(dir.join("usr/passwd-link")));
    set_xattr(&dir.join("etc/hostname"), "user.dunnage", b"hello");
    set_xattr(
        &dir.join("usr/bin/tool"),
        "security.capability",
        &[
            1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
}
