//! `--user` resolved as docker (runc's `user` package) does, in the
//! container's own `/etc/passwd` and `/etc/group`, read with
//! `openat2(RESOLVE_IN_ROOT)` so that a symlink in the image cannot make
//! us read a host file.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::container::error::{Error, Result, io_err};

/// The most of /etc/passwd or /etc/group read (hostile images).
const MAX_FILE: u64 = 4 << 20;

/// A resolved user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary groups: the groups of /etc/group listing the user,
    /// then the primary group (what `id` shows in a docker container).
    pub additional_gids: Vec<u32>,
    /// The home directory (`HOME` when the image sets none), `/` if unknown.
    pub home: String,
}

/// What a layer (or a rootfs) holds at a path.
enum Found {
    /// A regular file's text.
    File(String),
    /// A whiteout (a 0/0 character device): deleted in this layer.
    Whiteout,
    /// Nothing there.
    Missing,
}

/// Read `rel` (e.g. `etc/passwd`) below `root` without leaving it.
fn read_in_root(root: &Path, rel: &str) -> Result<Found> {
    let dir = match rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(e) => return Err(io_err("open rootfs", root)(e.into())),
    };
    let path = root.join(rel);
    let fd = match rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            return Ok(Found::Missing);
        }
        Err(e) => return Err(io_err("open", path)(e.into())),
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(io_err("stat", &path))?;
    if std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type())
        && std::os::unix::fs::MetadataExt::rdev(&meta) == 0
    {
        return Ok(Found::Whiteout);
    }
    if !meta.is_file() {
        return Err(Error::Invalid {
            what: "user database",
            reason: format!("{} is not a regular file", path.display()),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::Invalid {
            what: "user database",
            reason: format!("{} is larger than {MAX_FILE} bytes", path.display()),
        });
    }
    Ok(Found::File(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The text of `rel` in the first of `roots` (top layer first) that has
/// it; a whiteout or no layer with it reads as empty. Symlinks resolve
/// within one layer (images keep /etc/passwd a regular file).
fn read_in_layers(roots: &[PathBuf], rel: &str) -> Result<String> {
    for root in roots {
        match read_in_root(root, rel)? {
            Found::File(text) => return Ok(text),
            Found::Whiteout => return Ok(String::new()),
            Found::Missing => continue,
        }
    }
    Ok(String::new())
}

/// One `name:x:uid:gid:gecos:home:shell` line, when well formed.
fn passwd_entry(line: &str) -> Option<(&str, u32, u32, &str)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 || f[0].is_empty() {
        return None;
    }
    Some((
        f[0],
        f[2].parse().ok()?,
        f[3].parse().ok()?,
        f.get(5).copied().unwrap_or(""),
    ))
}

/// One `name:x:gid:member,member` line, when well formed.
fn group_entry(line: &str) -> Option<(&str, u32, Vec<&str>)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 3 || f[0].is_empty() {
        return None;
    }
    let members = f
        .get(3)
        .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    Some((f[0], f[2].parse().ok()?, members))
}

/// Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) from the
/// texts of /etc/passwd and /etc/group.
pub fn resolve_from(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<_> = passwd.lines().filter_map(passwd_entry).collect();
    let numeric = user.parse::<u32>().ok();
    let found = entries
        .iter()
        .find(|(name, uid, _, _)| *name == user || Some(*uid) == numeric);
    let (uid, mut gid, name, home) = match (found, numeric) {
        (Some(&(name, uid, gid, home)), _) => (uid, gid, Some(name), home.to_string()),
        (None, Some(uid)) => (uid, 0, None, "/".to_string()),
        (None, None) => return Err(Error::UnknownUser(user.to_string())),
    };
    let groups: Vec<_> = group.lines().filter_map(group_entry).collect();
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|(n, _, _)| *n == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| Error::UnknownGroup(g.to_string()))?,
        };
    }
    // Docker's supplementary groups: those of /etc/group that list the
    // user, in file order, then the primary group when not among them;
    // a group given explicitly (`user:group`) is the only one, as runc's
    // GetExecUser makes it.
    let explicit = grp.is_some_and(|g| !g.is_empty());
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = name.filter(|_| !explicit) {
        for (_, g, members) in &groups {
            if members.contains(&name) && !additional_gids.contains(g) {
                additional_gids.push(*g);
            }
        }
    }
    if !additional_gids.contains(&gid) {
        additional_gids.push(gid);
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Resolve `spec` in the rootfs at `root`.
pub fn resolve(root: &Path, spec: &str) -> Result<User> {
    resolve_in_layers(&[root.to_path_buf()], spec)
}

/// Resolve `spec` in an image's layer directories, top layer first,
/// without mounting them.
pub fn resolve_in_layers(roots: &[PathBuf], spec: &str) -> Result<User> {
    let passwd = read_in_layers(roots, "etc/passwd")?;
    let group = read_in_layers(roots, "etc/group")?;
    resolve_from(spec, &passwd, &group)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbad line\nweb:x:1000:1001::/home/web:/bin/sh\n:x:5:5::/:\nnum:x:zz:1::/:\n";
    const GROUP: &str = "root:x:0:\nweb:x:1001:\nstaff:x:50:web,other\naudio:x:29:web\n::\n";

    #[test]
    fn docker_rules() {
        let root = resolve_from("", PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let web = resolve_from("web", PASSWD, GROUP).unwrap();
        assert_eq!((web.uid, web.gid), (1000, 1001));
        assert_eq!(web.additional_gids, vec![50, 29, 1001]);
        let by_uid = resolve_from("1000", PASSWD, GROUP).unwrap();
        assert_eq!(by_uid, web);
        let unknown_uid = resolve_from("4242", PASSWD, GROUP).unwrap();
        assert_eq!((unknown_uid.uid, unknown_uid.gid), (4242, 0));
        let ug = resolve_from("1000:staff", PASSWD, GROUP).unwrap();
        assert_eq!((ug.uid, ug.gid), (1000, 50));
        assert_eq!(ug.additional_gids, vec![50]);
        let web_web = resolve_from("web:web", PASSWD, GROUP).unwrap();
        assert_eq!(web_web.additional_gids, vec![1001]);
        assert_eq!(resolve_from("7:8", "", "").unwrap().gid, 8);
        assert!(matches!(
            resolve_from("nobody", PASSWD, GROUP),
            Err(Error::UnknownUser(_))
        ));
        assert!(matches!(
            resolve_from("web:nogroup", PASSWD, GROUP),
            Err(Error::UnknownGroup(_))
        ));
    }

    #[test]
    fn hostile_files_do_not_panic() {
        for junk in [
            "::::::",
            "\0\0\n:",
            "a:b:c:d",
            "x:x:-1:-1::",
            "x:x:99999999999:1::",
        ] {
            let _ = resolve_from("x", junk, junk);
            let _ = resolve_from("0:x", junk, junk);
        }
    }

    #[test]
    fn reads_inside_the_root_only() {
        let dir = std::env::temp_dir().join(format!("dunnage-test-user-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        // An image whose /etc/passwd points at the host's: resolved in the
        // rootfs, it is missing (read as empty), never the host's file.
        std::os::unix::fs::symlink("/../../../etc/shadow", dir.join("etc/passwd")).unwrap();
        std::fs::write(dir.join("etc/group"), GROUP).unwrap();
        let u = resolve(&dir, "").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert!(matches!(resolve(&dir, "root"), Err(Error::UnknownUser(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
