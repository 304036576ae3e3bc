//! Overlay mounts: a description that can be inspected, printed and
//! mounted.
//!
//! [`Mount::mount`] uses the new mount API (`fsopen("overlay")`, one
//! `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)` per layer, `fsmount`,
//! `move_mount`) where the kernel has `lowerdir+` (6.8+). Otherwise it calls
//! mount(2) with the options in one page; when they do not fit, it uses
//! paths relative to the layers' common parent from a thread that did
//! `unshare(CLONE_FS)` and `chdir` (Docker's workaround).

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::error::{Error, Result, errno};

/// The kernel's limit on lower layers (`OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// `redirect_dir=` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectDir {
    /// Create and follow redirects.
    On,
    /// Follow redirects, create none.
    Follow,
    /// Neither create nor follow.
    NoFollow,
    /// Create none; follow them only for compatibility.
    Off,
}

/// `xino=` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xino {
    /// Always use extended inode numbers.
    On,
    /// Never.
    Off,
    /// When the layers' inode numbers leave room.
    Auto,
}

/// Which system calls [`Mount::mount_with`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MountMethod {
    /// The new mount API when the kernel has `lowerdir+`, else mount(2).
    #[default]
    Auto,
    /// `fsopen` / `fsconfig("lowerdir+")` / `fsmount` / `move_mount` only.
    NewApi,
    /// mount(2) only, with relative names from an unshared-cwd thread when
    /// the options exceed a page.
    Legacy,
}

/// Overlay mount options; `None` leaves the kernel's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `index=on|off`.
    pub index: Option<bool>,
    /// `redirect_dir=...`.
    pub redirect_dir: Option<RedirectDir>,
    /// `metacopy=on|off`.
    pub metacopy: Option<bool>,
    /// `xino=...`.
    pub xino: Option<Xino>,
    /// `userxattr`: keep overlay marks in `user.overlay.*`.
    pub userxattr: bool,
    /// `volatile`: skip syncs to the upper layer (needs an upper layer).
    pub volatile: bool,
    /// `nfs_export=on|off`.
    pub nfs_export: Option<bool>,
}

impl MountOptions {
    /// The options as `(key, value)` pairs; a flag has no value.
    pub fn pairs(&self) -> Vec<(&'static str, Option<&'static str>)> {
        let onoff = |b: bool| Some(if b { "on" } else { "off" });
        let mut out = Vec::new();
        if let Some(b) = self.index {
            out.push(("index", onoff(b)));
        }
        if let Some(r) = self.redirect_dir {
            let v = match r {
                RedirectDir::On => "on",
                RedirectDir::Follow => "follow",
                RedirectDir::NoFollow => "nofollow",
                RedirectDir::Off => "off",
            };
            out.push(("redirect_dir", Some(v)));
        }
        if let Some(b) = self.metacopy {
            out.push(("metacopy", onoff(b)));
        }
        if let Some(x) = self.xino {
            let v = match x {
                Xino::On => "on",
                Xino::Off => "off",
                Xino::Auto => "auto",
            };
            out.push(("xino", Some(v)));
        }
        if self.userxattr {
            out.push(("userxattr", None));
        }
        if self.volatile {
            out.push(("volatile", None));
        }
        if let Some(b) = self.nfs_export {
            out.push(("nfs_export", onoff(b)));
        }
        out
    }

    /// Parse a comma-separated list such as `index=off,metacopy=on,userxattr`.
    pub fn parse(s: &str) -> Result<MountOptions> {
        let mut o = MountOptions::default();
        let bad = |opt: &str| Error::InvalidMount(format!("unknown or malformed option {opt:?}"));
        for opt in s.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = opt
                .split_once('=')
                .map_or((opt, None), |(k, v)| (k, Some(v)));
            let onoff = |v: Option<&str>| match v {
                Some("on") => Ok(true),
                Some("off") => Ok(false),
                _ => Err(bad(opt)),
            };
            match key {
                "index" => o.index = Some(onoff(value)?),
                "metacopy" => o.metacopy = Some(onoff(value)?),
                "nfs_export" => o.nfs_export = Some(onoff(value)?),
                "userxattr" if value.is_none() => o.userxattr = true,
                "volatile" if value.is_none() => o.volatile = true,
                "redirect_dir" => {
                    o.redirect_dir = Some(match value {
                        Some("on") => RedirectDir::On,
                        Some("follow") => RedirectDir::Follow,
                        Some("nofollow") => RedirectDir::NoFollow,
                        Some("off") => RedirectDir::Off,
                        _ => return Err(bad(opt)),
                    })
                }
                "xino" => {
                    o.xino = Some(match value {
                        Some("on") => Xino::On,
                        Some("off") => Xino::Off,
                        Some("auto") => Xino::Auto,
                        _ => return Err(bad(opt)),
                    })
                }
                _ => return Err(bad(opt)),
            }
        }
        Ok(o)
    }
}

/// An overlay mount: lower layers (top-most first, as in `lowerdir=`), an
/// optional upper and work directory, the target and options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Lower layers, top-most first.
    pub lowers: Vec<PathBuf>,
    /// The writable layer, with its work directory (same filesystem).
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Where the merged view appears.
    pub target: PathBuf,
    /// Overlay options.
    pub options: MountOptions,
    /// Mount read-only (`MOUNT_ATTR_RDONLY` / `MS_RDONLY`).
    pub read_only: bool,
    /// The same lowers under the names the kernel is given, when these
    /// differ from [`lowers`](Mount::lowers): the overlay2 driver passes
    /// Docker's `<home>/l/<link>` short links here, so that the mount(2)
    /// data relative to the home fits one page for 128 lowers, while
    /// `lowers` (what [`Display`](fmt::Display) prints, as `docker
    /// inspect` does) keeps the layers' `diff` directories. Empty: the
    /// kernel is given `lowers`.
    pub mount_lowers: Vec<PathBuf>,
}

impl Mount {
    /// A mount of no layers yet onto `target`.
    pub fn new(target: impl Into<PathBuf>) -> Mount {
        Mount {
            lowers: Vec::new(),
            upper: None,
            target: target.into(),
            options: MountOptions::default(),
            read_only: false,
            mount_lowers: Vec::new(),
        }
    }

    /// Add a lower layer below those already added.
    pub fn lower(mut self, dir: impl Into<PathBuf>) -> Mount {
        self.lowers.push(dir.into());
        self
    }

    /// Set the upper layer and its work directory.
    pub fn upper(mut self, upper: impl Into<PathBuf>, work: impl Into<PathBuf>) -> Mount {
        self.upper = Some((upper.into(), work.into()));
        self
    }

    /// The lower layers as the kernel is given them:
    /// [`mount_lowers`](Mount::mount_lowers) when set, else
    /// [`lowers`](Mount::lowers).
    pub fn kernel_lowers(&self) -> &[PathBuf] {
        if self.mount_lowers.is_empty() {
            &self.lowers
        } else {
            &self.mount_lowers
        }
    }

    /// Set the options.
    pub fn options(mut self, options: MountOptions) -> Mount {
        self.options = options;
        self
    }

    /// Check what the kernel would refuse, before any syscall: no lowers,
    /// more than [`MAX_LOWERS`], a single lower without an upper, `volatile`
    /// without an upper, [`mount_lowers`](Mount::mount_lowers) not naming
    /// as many layers as `lowers`.
    pub fn validate(&self) -> Result<()> {
        let count = self.lowers.len().max(self.mount_lowers.len());
        if count > MAX_LOWERS {
            return Err(Error::TooManyLowers {
                count,
                max: MAX_LOWERS,
            });
        }
        if !self.mount_lowers.is_empty() && self.mount_lowers.len() != self.lowers.len() {
            return Err(Error::InvalidMount(format!(
                "{} mount_lowers for {} lowers",
                self.mount_lowers.len(),
                self.lowers.len()
            )));
        }
        if self.lowers.is_empty() {
            return Err(Error::InvalidMount("no lower layer".into()));
        }
        if self.upper.is_none() && self.lowers.len() < 2 {
            return Err(Error::InvalidMount(
                "without an upper layer the kernel needs at least two lowers".into(),
            ));
        }
        if self.upper.is_none() && self.options.volatile {
            return Err(Error::InvalidMount("volatile needs an upper layer".into()));
        }
        Ok(())
    }

    /// The mount(2) data string (`lowerdir=a:b,upperdir=..,workdir=..,...`,
    /// lowers from [`kernel_lowers`](Mount::kernel_lowers)), with `:`, `,`
    /// and `\\` in paths escaped, for display: bytes that are not UTF-8
    /// show as U+FFFD. What mount(2) is given is
    /// [`data_bytes`](Mount::data_bytes).
    pub fn data(&self) -> String {
        String::from_utf8_lossy(&self.data_bytes()).into_owned()
    }

    /// The mount(2) data as the kernel gets it: paths byte for byte.
    pub fn data_bytes(&self) -> Vec<u8> {
        self.data_with(|p| p.to_path_buf())
    }

    fn data_with(&self, name: impl Fn(&Path) -> PathBuf) -> Vec<u8> {
        let mut s = b"lowerdir=".to_vec();
        for (i, l) in self.kernel_lowers().iter().enumerate() {
            if i > 0 {
                s.push(b':');
            }
            s.extend(escape(&name(l)));
        }
        if let Some((u, w)) = &self.upper {
            s.extend_from_slice(b",upperdir=");
            s.extend(escape(&name(u)));
            s.extend_from_slice(b",workdir=");
            s.extend(escape(&name(w)));
        }
        for (k, v) in self.options.pairs() {
            s.push(b',');
            s.extend_from_slice(k.as_bytes());
            if let Some(v) = v {
                s.push(b'=');
                s.extend_from_slice(v.as_bytes());
            }
        }
        s
    }

    /// Mount it ([`MountMethod::Auto`]). Lowers beyond [`MAX_LOWERS`] are
    /// refused before any syscall.
    pub fn mount(&self) -> Result<()> {
        self.mount_with(MountMethod::Auto)
    }

    /// Mount it with the given system calls.
    pub fn mount_with(&self, method: MountMethod) -> Result<()> {
        self.validate()?;
        if method == MountMethod::Legacy {
            return self.mount_legacy();
        }
        match self.mount_new_api() {
            Err(MountApi::Unsupported) if method == MountMethod::Auto => self.mount_legacy(),
            Err(MountApi::Unsupported) => Err(Error::OverlayUnavailable(
                "the kernel's new mount API has no overlay `lowerdir+`".into(),
            )),
            Err(MountApi::Failed(e)) => Err(e),
            Ok(()) => Ok(()),
        }
    }

    /// fsopen / fsconfig(`lowerdir+`) / fsmount / move_mount.
    fn mount_new_api(&self) -> Result<(), MountApi> {
        let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
            Ok(fd) => fd,
            Err(Errno::NOSYS) => return Err(MountApi::Unsupported),
            Err(e) => return Err(MountApi::Failed(errno("fsopen", "overlay")(e))),
        };
        for (i, lower) in self.kernel_lowers().iter().enumerate() {
            if let Err(e) = rustix::mount::fsconfig_set_string(&fs, "lowerdir+", lower) {
                // A kernel without `lowerdir+` rejects the key itself.
                if i == 0 && e == Errno::INVAL && kernel_log(&fs).contains("lowerdir+") {
                    return Err(MountApi::Unsupported);
                }
                return Err(MountApi::Failed(config_error(&fs, lower, e)));
            }
        }
        if let Some((u, w)) = &self.upper {
            for (key, dir) in [("upperdir", u), ("workdir", w)] {
                rustix::mount::fsconfig_set_string(&fs, key, dir)
                    .map_err(|e| MountApi::Failed(config_error(&fs, dir, e)))?;
            }
        }
        for (key, value) in self.options.pairs() {
            let r = match value {
                Some(v) => rustix::mount::fsconfig_set_string(&fs, key, v),
                None => rustix::mount::fsconfig_set_flag(&fs, key),
            };
            r.map_err(|e| MountApi::Failed(config_error(&fs, Path::new(key), e)))?;
        }
        if let Err(e) = rustix::mount::fsconfig_create(&fs) {
            let log = kernel_log(&fs);
            // Before 6.5 overlay had no fs_context of its own: the kernel's
            // legacy adapter took `lowerdir+` as an opaque option and overlay
            // rejects it only here, logging nothing on the fd. mount(2) then
            // mounts it (or says what else is wrong).
            if e == Errno::INVAL && log.is_empty() {
                return Err(MountApi::Unsupported);
            }
            return Err(MountApi::Failed(logged_error(log, &self.target, e)));
        }
        let attrs = if self.read_only {
            MountAttrFlags::MOUNT_ATTR_RDONLY
        } else {
            MountAttrFlags::empty()
        };
        let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| MountApi::Failed(errno("fsmount", &self.target)(e)))?;
        move_mount_to(&mnt, &self.target).map_err(MountApi::Failed)
    }

    /// mount(2), with relative names when the data exceeds a page.
    fn mount_legacy(&self) -> Result<()> {
        let flags = if self.read_only {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
        let data = self.data_bytes();
        if data.len() < page_size() {
            return rustix::mount::mount(
                "overlay",
                &self.target,
                "overlay",
                flags,
                Some(cstr(&data)?.as_c_str()),
            )
            .map_err(errno("mount", &self.target));
        }
        let base = self.common_parent();
        let short = self.data_with(|p| p.strip_prefix(&base).unwrap_or(p).to_path_buf());
        if short.len() >= page_size() {
            return Err(Error::InvalidMount(format!(
                "mount options of {} bytes do not fit one page even relative to {}",
                short.len(),
                base.display()
            )));
        }
        let target = std::path::absolute(&self.target)
            .map_err(crate::error::io_err("realpath", &self.target))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: this thread is ours alone; unsharing its fs struct
                // makes the chdir below invisible to other threads.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                    .map_err(errno("unshare(CLONE_FS)", &base))?;
                rustix::process::chdir(&base).map_err(errno("chdir", &base))?;
                rustix::mount::mount(
                    "overlay",
                    &target,
                    "overlay",
                    flags,
                    Some(cstr(&short)?.as_c_str()),
                )
                .map_err(errno("mount", &target))
            })
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidMount("mount thread panicked".into())))
        })
    }

    /// The deepest directory containing every layer path.
    fn common_parent(&self) -> PathBuf {
        let mut all = self
            .kernel_lowers()
            .iter()
            .chain(self.upper.iter().flat_map(|(u, w)| [u, w]));
        let mut base = all
            .next()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for p in all {
            while !p.starts_with(&base) {
                match base.parent() {
                    Some(b) => base = b.to_path_buf(),
                    None => break,
                }
            }
        }
        base
    }
}

/// Prints the description like `docker inspect`'s GraphDriver data:
/// `{"LowerDir":"a:b","MergedDir":"..","UpperDir":"..","WorkDir":".."}`.
impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write!(f, "{{\"LowerDir\":{}", json(&lowers.join(":")))?;
        write!(
            f,
            ",\"MergedDir\":{}",
            json(&self.target.display().to_string())
        )?;
        if let Some((u, w)) = &self.upper {
            write!(f, ",\"UpperDir\":{}", json(&u.display().to_string()))?;
            write!(f, ",\"WorkDir\":{}", json(&w.display().to_string()))?;
        }
        write!(f, "}}")
    }
}

enum MountApi {
    Unsupported,
    Failed(Error),
}

/// Detach-unmount `target` (`umount2(MNT_DETACH)`).
pub fn unmount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(errno("umount2", target))
}

/// Bind-mount `source` at `target` read-only (`MS_BIND`, then a
/// `MS_REMOUNT|MS_BIND|MS_RDONLY`); when the remount fails the bind mount
/// is detached again.
pub fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    rustix::mount::mount_bind(source, target).map_err(errno("mount(MS_BIND)", target))?;
    rustix::mount::mount_remount(target, MountFlags::RDONLY | MountFlags::BIND, "").map_err(|e| {
        let _ = unmount(target);
        errno("mount(MS_REMOUNT|MS_RDONLY)", target)(e)
    })
}

/// Mount points at or below `dir`, deepest first, from
/// `/proc/self/mountinfo` ([`dunnage_base::mountinfo::mounts_below`]).
pub fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    dunnage_base::mountinfo::mounts_below(dir)
        .map_err(crate::error::io_err("read", "/proc/self/mountinfo"))
}

/// Whether `path` is a mount point (in this process's mount namespace).
///
/// One `statx` (`STATX_ATTR_MOUNT_ROOT`, Linux 5.8) instead of reading
/// `/proc/self/mountinfo`; a path that does not exist is not one. On a
/// kernel without that attribute, `/proc/self/mountinfo` answers.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(false),
        _ => Ok(mounts_below(path)?.iter().any(|p| p == path)),
    }
}

fn move_mount_to(mnt: &OwnedFd, target: &Path) -> Result<()> {
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno("move_mount", target))
}

/// The kernel's messages on a filesystem context (read until empty).
fn kernel_log(fs: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
    }
    out
}

fn config_error(fs: &OwnedFd, path: &Path, e: Errno) -> Error {
    logged_error(kernel_log(fs), path, e)
}

/// An fsconfig error with the kernel's log of the context, if any.
fn logged_error(log: String, path: &Path, e: Errno) -> Error {
    let op = "fsconfig";
    if log.is_empty() {
        errno(op, path)(e)
    } else {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::Error::from(e).kind(), format!("{e} ({log})")),
        }
    }
}

fn cstr(data: &[u8]) -> Result<std::ffi::CString> {
    dunnage_base::cstr::cstring(OsStr::from_bytes(data))
        .map_err(|_| Error::InvalidMount("a path contains a NUL byte".into()))
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// `p`'s bytes with `:`, `,` and `\\` escaped by a backslash, as overlay's
/// mount(2) option parser expects them. Bytes, not text: a path that is
/// not UTF-8 reaches the kernel unchanged.
fn escape(p: &Path) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.as_os_str().len());
    for &b in p.as_os_str().as_bytes() {
        if matches!(b, b':' | b',' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

fn json(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_prints_like_graph_driver_data() {
        let m = Mount::new("/m").lower("/l1").lower("/l2").upper("/u", "/w");
        assert_eq!(
            m.to_string(),
            r#"{"LowerDir":"/l1:/l2","MergedDir":"/m","UpperDir":"/u","WorkDir":"/w"}"#
        );
        assert_eq!(m.data(), "lowerdir=/l1:/l2,upperdir=/u,workdir=/w");
    }

    #[test]
    fn mount_lowers_reach_the_kernel_and_lowers_are_printed() {
        let mut m = Mount::new("/h/x/merged")
            .lower("/h/a/diff")
            .lower("/h/b/diff")
            .upper("/h/x/diff", "/h/x/work");
        m.mount_lowers = vec!["/h/l/A".into(), "/h/l/B".into()];
        assert_eq!(
            m.data(),
            "lowerdir=/h/l/A:/h/l/B,upperdir=/h/x/diff,workdir=/h/x/work"
        );
        assert!(
            m.to_string()
                .starts_with(r#"{"LowerDir":"/h/a/diff:/h/b/diff","#)
        );
        assert_eq!(m.common_parent(), Path::new("/h"));
        m.mount_lowers.pop();
        assert!(matches!(m.validate(), Err(Error::InvalidMount(_))));
    }

    #[test]
    fn options_round_trip_through_parse() {
        let o = MountOptions::parse(
            "index=off,redirect_dir=follow,metacopy=on,xino=auto,userxattr,volatile,nfs_export=off",
        )
        .unwrap();
        let m = Mount::new("/m").lower("/a,b").upper("/u", "/w").options(o);
        assert_eq!(
            m.data(),
            "lowerdir=/a\\,b,upperdir=/u,workdir=/w,index=off,redirect_dir=follow,metacopy=on,xino=auto,userxattr,volatile,nfs_export=off"
        );
        assert!(MountOptions::parse("index=maybe").is_err());
        assert!(MountOptions::parse("lowerdir=/x").is_err());
    }

    #[test]
    fn too_many_lowers_is_refused_before_any_syscall() {
        let mut m = Mount::new("/nonexistent-target");
        m.lowers = (0..501).map(|i| PathBuf::from(format!("/l{i}"))).collect();
        assert!(matches!(
            m.mount(),
            Err(Error::TooManyLowers {
                count: 501,
                max: 500
            })
        ));
    }

    #[test]
    fn mount_data_keeps_bytes_that_are_not_utf8() {
        let lower = PathBuf::from(OsStr::from_bytes(b"/l\xff:x"));
        let m = Mount::new("/m").lower(lower).lower("/l2");
        assert_eq!(m.data_bytes(), b"lowerdir=/l\xff\\:x:/l2".to_vec());
        assert_eq!(m.data(), "lowerdir=/l\u{fffd}\\:x:/l2");
    }
}
