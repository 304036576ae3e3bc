//! Crash-safe and symlink-safe file writes.
//!
//! Every temporary file is created inside an open directory handle with a
//! random name, `O_CREAT | O_EXCL | O_NOFOLLOW`: a symlink or file planted
//! under the name (by someone else who can write to the directory) makes the
//! create fail instead of redirecting the write, and the final `renameat`
//! replaces whatever stands at the destination name without following it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// How many random names [`TempFile::new_in`] tries before giving up.
const CREATE_TRIES: usize = 16;

/// A temporary file created exclusively in a directory, renamed into place
/// by [`TempFile::persist`] and unlinked when dropped without it.
#[derive(Debug)]
pub struct TempFile {
    dir: OwnedFd,
    dir_path: PathBuf,
    name: OsString,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// Create `<dir>/.<prefix>.tmp-<16 random hex>` with exactly `mode`
    /// (umask does not apply), exclusively and without following symlinks.
    pub fn new_in(dir: &Path, prefix: &str, mode: u32) -> io::Result<TempFile> {
        let dirfd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut last = None;
        for _ in 0..CREATE_TRIES {
            let name = OsString::from(format!(".{prefix}.tmp-{}", crate::rand::random_hex(8)?));
            match rustix::fs::openat(
                &dirfd,
                name.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode & 0o7777),
            ) {
                Ok(fd) => {
                    let file = File::from(fd);
                    let tmp = TempFile {
                        dir: dirfd,
                        dir_path: dir.to_path_buf(),
                        name,
                        file,
                        persisted: false,
                    };
                    rustix::fs::fchmod(&tmp.file, Mode::from_raw_mode(mode & 0o7777))?;
                    return Ok(tmp);
                }
                Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.unwrap_or(rustix::io::Errno::EXIST).into())
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's current path (for error messages).
    pub fn path(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// fsync the file, rename it to `name` in the same directory (replacing
    /// what is there, a symlink included, without following it), then fsync
    /// the directory.
    pub fn persist(mut self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = name.as_ref();
        if name.is_empty() || name.as_bytes().contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file name", name.to_string_lossy()),
            ));
        }
        self.file.sync_all()?;
        self.rename_to(name)?;
        rustix::fs::fsync(&self.dir)?;
        Ok(())
    }

    /// Rename the file to `name` in the same directory (replacing what is
    /// there, a symlink included, without following it), without any
    /// fsync: atomic for readers, not durable across a crash.
    ///
    /// An existing file is swapped out (`RENAME_EXCHANGE`, then unlinked)
    /// rather than renamed over, so that ext4 does not write the new data
    /// out at once (and its later unlink does not wait for that write);
    /// after a power loss the file may then be empty.
    pub fn replace(mut self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        swap_in(&self.dir, &self.name, name)?;
        self.persisted = true;
        Ok(())
    }

    fn rename_to(&mut self, name: &OsStr) -> io::Result<()> {
        if name.is_empty() || name.as_bytes().contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file name", name.to_string_lossy()),
            ));
        }
        rustix::fs::renameat(&self.dir, self.name.as_os_str(), &self.dir, name)?;
        self.persisted = true;
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = rustix::fs::unlinkat(&self.dir, self.name.as_os_str(), AtFlags::empty());
        }
    }
}

/// Write `data` to `path` atomically: a [`TempFile`] in the same directory,
/// fsync, rename over `path`, fsync of the directory. The file gets exactly
/// `mode`. Readers see the old content or the new, never a mix; a crash
/// leaves at most a `.<name>.tmp-*` file behind.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let prefix = String::from_utf8_lossy(name.as_bytes()).into_owned();
    let mut tmp = TempFile::new_in(dir, &prefix, mode)?;
    tmp.write_all(data)?;
    tmp.persist(name)
}

/// Write `data` to `path` atomically like [`write_atomic`] but without the
/// fsyncs: readers see the old content or the new, never a mix, but after
/// a power loss the file may hold either, or be empty (it is swapped in
/// without being written out, see [`TempFile::replace`]). For state that
/// a crash makes stale anyway (a process's status); readers must take an
/// empty file.
pub fn write_replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let prefix = String::from_utf8_lossy(name.as_bytes()).into_owned();
    let mut tmp = TempFile::new_in(dir, &prefix, mode)?;
    tmp.write_all(data)?;
    tmp.replace(name)
}

/// Create the new file `name` in the open directory `dir` with exactly
/// `mode` (umask does not apply) and `data`: exclusively
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`), not atomically (a process killed
/// midway leaves the file shorter) and without fsync. For files in a
/// directory that nobody else reads until it is complete, made with as few
/// system calls as the kernel allows: one open, one `fchmod`, one write.
pub fn create_new_at(dir: impl AsFd, name: &OsStr, data: &[u8], mode: u32) -> io::Result<()> {
    check_name(name)?;
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o7777),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    if !data.is_empty() {
        File::from(fd).write_all(data)?;
    }
    Ok(())
}

/// Create the directory `name` in the open directory `dir` with exactly
/// `mode` (umask does not apply); `AlreadyExists` when something stands
/// there. The new directory is opened (`O_DIRECTORY | O_NOFOLLOW`) and
/// returned, for creating entries inside it relative to it.
pub fn mkdir_at(dir: impl AsFd, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    check_name(name)?;
    let dir = dir.as_fd();
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode & 0o7777))?;
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(fd)
}

/// Write `data` to `name` in the open directory `dir` like
/// [`write_replace`] (a random exclusive temporary name, renamed over
/// `name`; atomic for readers, no fsync), relative to the directory handle.
pub fn write_replace_at(dir: impl AsFd, name: &OsStr, data: &[u8], mode: u32) -> io::Result<()> {
    check_name(name)?;
    let dir = dir.as_fd();
    let mut last = None;
    for _ in 0..CREATE_TRIES {
        let tmp = OsString::from(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            crate::rand::random_hex(8)?
        ));
        match create_new_at(dir, &tmp, data, mode) {
            Ok(()) => {
                return swap_in(dir, &tmp, name).inspect_err(|_| {
                    let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// Put the file `tmp` of the directory `dir` in place under `name`,
/// atomically for readers, without fsync. What stands at `name` is
/// exchanged with `tmp` (`RENAME_EXCHANGE`) and then unlinked, rather than
/// renamed over: ext4 (`auto_da_alloc`, the default) answers a rename over
/// an existing file by allocating the new file's blocks and starting its
/// write-out at once, and the unlink that removes that file later then
/// waits for the write and, with `-o discard`, for a synchronous discard.
/// A file swapped in stays in the page cache until ordinary write-back, so
/// a short-lived one never reaches the disk (and, after a power loss
/// within the write-back delay, the file may be empty). Where nothing
/// stands at `name`, or the exchange fails, it is a plain rename.
/// A directory at `name` is refused (`EISDIR`) and left in place.
fn swap_in(dir: impl AsFd, tmp: &OsStr, name: &OsStr) -> io::Result<()> {
    use rustix::fs::{RenameFlags, renameat, renameat_with};
    let dir = dir.as_fd();
    if renameat_with(dir, tmp, dir, name, RenameFlags::EXCHANGE).is_err() {
        // Nothing at `name`, or no exchange here (a file system without
        // it, a filter refusing renameat2): a plain rename, whose own
        // error is the answer.
        return Ok(renameat(dir, tmp, dir, name)?);
    }
    // `tmp` now names what stood at `name`.
    match rustix::fs::unlinkat(dir, tmp, AtFlags::empty()) {
        Ok(()) => Ok(()),
        Err(e) => {
            // A directory (or anything that cannot be unlinked) goes back
            // where it was; the caller removes the new file.
            let _ = renameat_with(dir, tmp, dir, name, RenameFlags::EXCHANGE);
            Err(e.into())
        }
    }
}

/// A plain file name: not empty, no `/`, not `.` or `..`.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') || b == b"." || b == b".." || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", name.to_string_lossy()),
        ));
    }
    Ok(())
}

/// Ask the file system to spread the directories made in `dir` over its
/// allocation groups (the `FS_TOPDIR_FL` inode flag, `chattr +T`: ext2/3/4
/// place each new subdirectory, and so the files made in it, in a group
/// of its own choosing instead of `dir`'s). For a directory whose
/// subdirectories are made and deleted at a high rate (container layers):
/// on an ext4 without a journal, allocating an inode
/// skips, one lookup each, every inode of its group freed in the last 30
/// seconds, so churn concentrated in one group makes every allocation
/// slower. The scan of every group's statistics that the spreading costs
/// (a fifth of a millisecond per `mkdir` on a 250 GB ext4) is worth it only
/// where dozens of inodes churn per directory. Only the allocator's choice
/// changes; contents and layout stay.
/// `Ok(false)` when the flag was set already or the file system has no
/// such flag (the call is then a no-op); errors only for a `dir` that
/// cannot be opened or whose flags cannot be changed (not the owner).
pub fn spread_subdirs(dir: &Path) -> io::Result<bool> {
    use rustix::fs::IFlags;
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = match rustix::fs::ioctl_getflags(&fd) {
        Ok(f) => f,
        Err(rustix::io::Errno::NOTTY | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    if flags.contains(IFlags::TOPDIR) {
        return Ok(false);
    }
    match rustix::fs::ioctl_setflags(&fd, flags | IFlags::TOPDIR) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOTTY | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Read a whole file whose size `stat` does not tell: procfs, sysfs and
/// cgroup files report 0. Straight into a page-sized buffer (doubled as
/// needed), without the size query and the growing probe reads of
/// [`std::fs::read`]: one `read` for a small file, and one that returns 0.
pub fn read_unsized(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// [`read_unsized`] of a text file; invalid UTF-8 is an
/// [`io::ErrorKind::InvalidData`] error, as in [`std::fs::read_to_string`].
pub fn read_unsized_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read_unsized(path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// fsync a directory, so that renames and creates inside it are durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(fd.as_fd())?;
    Ok(())
}

/// Whether `name` is a temporary name made by [`TempFile`] (for clean-up of
/// what a crash left behind).
pub fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.first() == Some(&b'.')
        && b.len() > 21
        && b[b.len() - 21..].starts_with(b".tmp-")
        && b[b.len() - 16..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "dunnage-base-fs-{}",
            crate::rand::random_hex(8).unwrap()
        ));
        std::fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn at_helpers_make_exact_modes_refuse_existing_and_bad_names() {
        let d = tempdir();
        let dir = rustix::fs::open(
            &d,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let sub = mkdir_at(&dir, OsStr::new("sub"), 0o777).unwrap();
        create_new_at(&sub, OsStr::new("f"), b"data", 0o666).unwrap();
        create_new_at(&sub, OsStr::new("empty"), b"", 0o600).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&d.join("sub")), 0o777);
        assert_eq!(mode(&d.join("sub/f")), 0o666);
        assert_eq!(std::fs::read(d.join("sub/f")).unwrap(), b"data");
        assert_eq!(std::fs::read(d.join("sub/empty")).unwrap(), b"");
        // Existing names are refused, symlinks are not followed.
        let e = create_new_at(&sub, OsStr::new("f"), b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        std::os::unix::fs::symlink(d.join("sub/f"), d.join("sub/link")).unwrap();
        assert!(create_new_at(&sub, OsStr::new("link"), b"x", 0o600).is_err());
        assert_eq!(std::fs::read(d.join("sub/f")).unwrap(), b"data");
        assert!(mkdir_at(&dir, OsStr::new("sub"), 0o700).is_err());
        for bad in ["", ".", "..", "a/b"] {
            let bad = OsStr::new(bad);
            assert!(create_new_at(&dir, bad, b"", 0o600).is_err());
            assert!(mkdir_at(&dir, bad, 0o700).is_err());
            assert!(write_replace_at(&dir, bad, b"", 0o600).is_err());
        }
        // Replacing: atomic, exact mode, no temp file left.
        write_replace_at(&sub, OsStr::new("f"), b"new", 0o640).unwrap();
        write_replace_at(&sub, OsStr::new("link"), b"over", 0o600).unwrap();
        assert_eq!(std::fs::read(d.join("sub/f")).unwrap(), b"new");
        assert_eq!(mode(&d.join("sub/f")), 0o640);
        assert!(
            std::fs::symlink_metadata(d.join("sub/link"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read_dir(d.join("sub")).unwrap().count(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replacing_swaps_files_and_symlinks_out_and_refuses_a_directory() {
        let d = tempdir();
        let p = d.join("state.json");
        write_replace(&p, b"one", 0o600).unwrap();
        write_replace(&p, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        // A symlink is replaced, its target untouched.
        std::fs::write(d.join("target"), b"keep").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("link")).unwrap();
        write_replace(&d.join("link"), b"three", 0o600).unwrap();
        assert!(std::fs::symlink_metadata(d.join("link")).unwrap().is_file());
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"keep");
        // A directory stays where it is, with what it holds.
        std::fs::create_dir(d.join("dir")).unwrap();
        std::fs::write(d.join("dir/inner"), b"x").unwrap();
        let e = write_replace(&d.join("dir"), b"four", 0o600).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::ISDIR.raw_os_error()),
            "{e}"
        );
        assert_eq!(std::fs::read(d.join("dir/inner")).unwrap(), b"x");
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "link", "state.json", "target"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn read_unsized_reads_proc_files_and_large_ones_whole() {
        // A procfs file (stat size 0) as std reads it.
        let status = read_unsized_string(Path::new("/proc/self/status")).unwrap();
        assert!(status.starts_with("Name:") && status.contains("\nPid:"));
        let d = tempdir();
        for size in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 5] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(d.join("f"), &data).unwrap();
            assert_eq!(read_unsized(&d.join("f")).unwrap(), data, "{size}");
        }
        std::fs::write(d.join("bad"), [0xff, 0xfe]).unwrap();
        let e = read_unsized_string(&d.join("bad")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = read_unsized(&d.join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn spread_subdirs_sets_the_flag_once_or_is_a_no_op() {
        let d = tempdir();
        let first = spread_subdirs(&d).unwrap();
        // Set now (ext4, the test machines' /tmp), or a file system
        // without the flag: either way a second call changes nothing.
        assert!(!spread_subdirs(&d).unwrap());
        if first {
            let fd =
                rustix::fs::open(&d, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
            let flags = rustix::fs::ioctl_getflags(&fd).unwrap();
            assert!(flags.contains(rustix::fs::IFlags::TOPDIR));
        }
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(spread_subdirs(&d.join("missing")).is_err());
        std::fs::write(d.join("file"), b"").unwrap();
        assert!(spread_subdirs(&d.join("file")).is_err(), "not a directory");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_atomic_replaces_content_with_exact_mode_and_leaves_no_temp() {
        let d = tempdir();
        let p = d.join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_replace_swaps_content_atomically_and_leaves_no_temp() {
        let dir = tempdir();
        let path = dir.join("state.json");
        write_replace(&path, b"one", 0o600).unwrap();
        write_replace(&path, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        assert!(write_replace(&dir.join("missing/x"), b"x", 0o600).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_at_the_destination_is_replaced_not_followed() {
        let d = tempdir();
        let victim = d.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("out")).unwrap();
        write_atomic(&d.join("out"), b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(d.join("out")).unwrap().is_file());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_dropped_temp_file_is_unlinked_and_names_are_recognised() {
        let d = tempdir();
        let t = TempFile::new_in(&d, "x", 0o600).unwrap();
        let name = t.path().file_name().unwrap().to_owned();
        assert!(is_temp_name(&name), "{name:?}");
        assert!(!is_temp_name(OsStr::new("x")));
        assert_eq!(std::fs::metadata(t.path()).unwrap().nlink(), 1);
        drop(t);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        assert!(
            TempFile::new_in(&d, "x", 0o600)
                .unwrap()
                .persist("a/b")
                .is_err()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
