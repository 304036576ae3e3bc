//! Apply: stream a layer tar into a directory in overlay form.
//!
//! `.wh.NAME` entries become whiteouts (character device 0:0) and
//! `DIR/.wh..wh..opq` makes `DIR` opaque (xattr). Every path is resolved
//! inside the root (`openat2` with `RESOLVE_IN_ROOT`); final components are created with
//! `O_EXCL`/`O_NOFOLLOW` and configured through fds. The input is read
//! sequentially, once, up to the end-of-archive marker (see
//! [`apply_layer`] for how members are delimited).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::{EntryType, Header};

use crate::create::{
    create_or_replace, create_or_replace_with, is_aufs_metadata, process_umask, refused,
};
use crate::error::{Result, errno_at};
use crate::root::{RootDir, bad_entry, remove_all_at};
use crate::tarmeta::{EntryMeta, Extensions, normalize};
use crate::tarread::Members;
use crate::whiteout::{TarName, XattrNamespace, classify, set_opaque_fd};
use crate::written::Written;

/// How [`apply_layer`] writes a layer.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Mark opaque directories with `user.overlay.opaque` (for overlays
    /// mounted with `userxattr`) instead of `trusted.overlay.opaque`.
    pub userxattr: bool,
    /// Give entries the uid/gid the tar records (needs `CAP_CHOWN`). When
    /// false, files belong to the caller.
    pub same_owner: bool,
    /// Largest PAX or GNU long-name header accepted, in bytes.
    pub max_header_size: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            userxattr: false,
            same_owner: true,
            max_header_size: 1 << 20,
        }
    }
}

/// What [`apply_layer`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries in the layer (files, directories, links, devices, whiteouts,
    /// opaque markers; PAX and GNU extension headers not counted).
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Whiteouts created.
    pub whiteouts: u64,
    /// Directories made opaque.
    pub opaque_dirs: u64,
    /// `trusted.overlay.*` / `user.overlay.*` xattrs found in the tar and
    /// not applied.
    pub dropped_xattrs: u64,
    /// The directory's size by Docker's rule ([`diff_size`]), counted while
    /// writing: known when the directory was empty before and the layer
    /// replaced or hid nothing it had written (then nothing but the layer's
    /// own entries is there); `None` otherwise, when only a walk can tell.
    ///
    /// [`diff_size`]: crate::diff_size
    pub size: Option<u64>,
}

/// Stream the layer tar `layer` into `root` (which must exist).
///
/// Reads `layer` sequentially and stops after the end-of-archive marker
/// (bytes after it are left for the caller to drain; a small read-ahead may
/// have consumed some). Members are delimited as Go's `archive/tar`
/// (Docker's reader) delimits them: a PAX `size` record gives the data size,
/// header-only types carry no data, and a stream that ends on a header
/// boundary without its end-of-archive blocks is complete. As Docker does,
/// an entry naming the root as `.` is skipped (the root keeps its owner and
/// mode), a regular file named `x/` is the file `x`, and a hardlink entry's
/// owner, mode and times apply to the linked inode. Top-level aufs metadata
/// (`.wh..wh.aufs`, the `.wh..wh.orph/` and `.wh..wh.plnk/` entries) is
/// skipped.
///
/// Whiteouts and opaque markers hide what is below the layer, never the
/// layer's own entries (tracked by inode, so a marker reached through a
/// symlink cannot either); a path whited out and then added again is the
/// new entry. GNU sparse files in PAX form (versions 0.0, 0.1 and 1.0)
/// are expanded, holes left as holes. Duplicate paths, `..` components,
/// reserved `.wh.` names, old GNU sparse members (type `S`, which Docker
/// refuses too) and oversized headers are errors; absolute names are taken
/// relative to `root`; symlinks are resolved inside `root`.
pub fn apply_layer<R: Read>(layer: R, root: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    apply_layer_buffered(BufReader::with_capacity(128 << 10, layer), root, opts)
}

/// [`apply_layer`] on a reader that has its own buffer: file contents are
/// written to the files straight from that buffer, with no copy in
/// between (for a reader whose buffer holds large chunks of the stream;
/// [`apply_layer`] puts a 128 KiB [`BufReader`] in front of any reader).
pub fn apply_layer_buffered<R: BufRead>(
    layer: R,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats> {
    // An unreadable directory is simply not known to be empty.
    let empty = std::fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
    let mut applier = Applier {
        root: RootDir::open(root)?,
        size: empty.then_some(0),
        path: root.to_path_buf(),
        opts,
        ns: XattrNamespace::for_userxattr(opts.userxattr),
        umask: process_umask(),
        seen: HashSet::new(),
        whited: HashSet::new(),
        written: Written::default(),
        dirs: Vec::new(),
        opaque: Vec::new(),
        buf: vec![0; 1 << 20],
        stats: ApplyStats::default(),
    };
    let mut tar = Members::new(layer);
    let mut ext = Extensions::default();
    while let Some(header) = tar.next_header()? {
        if Extensions::is_extension(header.entry_type()) {
            let size = header
                .entry_size()
                .map_err(|e| bad_entry(&header.path_bytes(), format!("bad size: {e}")))?;
            tar.begin_data(size);
            ext.absorb(&header, &mut tar, size, opts.max_header_size)?;
            continue;
        }
        let path = ext.path(&header);
        let size = ext.data_size(&header, &path)?;
        tar.begin_data(size);
        applier.entry(&header, &mut tar, size, std::mem::take(&mut ext), path)?;
    }
    if !ext.is_empty() {
        return Err(bad_entry(b"", "extension header without a following entry"));
    }
    applier.finish()
}

struct Applier<'o> {
    root: RootDir,
    /// The root's path, for error messages.
    path: std::path::PathBuf,
    opts: &'o ApplyOptions,
    ns: XattrNamespace,
    umask: u32,
    /// Paths this layer wrote.
    seen: HashSet<Vec<u8>>,
    /// Paths this layer whited out (a later entry may add them again).
    whited: HashSet<Vec<u8>>,
    /// Inodes this layer wrote.
    written: Written,
    /// Directories whose times are set at the end.
    dirs: Vec<(Vec<u8>, Timestamps)>,
    /// Directories made opaque.
    opaque: Vec<Vec<u8>>,
    buf: Vec<u8>,
    stats: ApplyStats,
    /// Docker's size of what was written so far (see [`ApplyStats::size`]).
    size: Option<u64>,
}

impl Applier<'_> {
    fn entry(
        &mut self,
        header: &Header,
        data: &mut Members<impl BufRead>,
        size: u64,
        ext: Extensions,
        raw_path: Vec<u8>,
    ) -> Result<()> {
        let kind = header.entry_type();
        let meta = EntryMeta::parse(header, &ext, &raw_path)?;
        let norm = normalize(&raw_path)?;
        self.stats.entries += 1;
        let (parent, name) = match norm.iter().rposition(|&b| b == b'/') {
            Some(i) => (&norm[..i], &norm[i + 1..]),
            None => (&b""[..], &norm[..]),
        };
        // Go's reader makes an old-style regular file (type NUL) named
        // `x/` a directory; a type `0` file named `x/` stays a file.
        let is_dir = kind == EntryType::Directory
            || (kind == EntryType::Regular
                && crate::tarread::header_only(header.as_bytes()[156], &raw_path));
        if norm.is_empty() {
            // Docker skips an entry whose cleaned name is `.` (whatever its
            // type: the root keeps 0755 root:root) and applies a `/`
            // directory entry's metadata to the root.
            if !raw_path.starts_with(b"/") {
                return Ok(());
            }
            if !is_dir {
                return Err(bad_entry(&raw_path, "a non-directory entry names the root"));
            }
            return self.directory(&norm, &meta);
        }
        if is_aufs_metadata(&norm, is_dir, kind == EntryType::Regular && size == 0) {
            // Old aufs layers: the top-level `.wh..wh.aufs` marker and the
            // `.wh..wh.orph/` and `.wh..wh.plnk/` directory entries carry
            // nothing; files below them are applied (hardlinks may point
            // into `.wh..wh.plnk/`, and the layer must reassemble).
            return Ok(());
        }
        let name_kind = classify(name);
        if matches!(name_kind, TarName::Opaque | TarName::Whiteout(_))
            && !is_marker_entry(kind, size, ext.link(header).as_deref())
        {
            return Err(bad_entry(
                &raw_path,
                "a whiteout or opaque marker must be an empty regular file",
            ));
        }
        match name_kind {
            TarName::Invalid => Err(bad_entry(&raw_path, "reserved whiteout name")),
            TarName::Opaque => {
                // Only marks the directory: what this layer wrote there
                // stays; lower entries are hidden by the mount (or, onto an
                // existing tree, removed at the end).
                self.claim(&norm, &raw_path)?;
                self.root.dir(parent)?;
                let fd = self
                    .root
                    .open_dir(parent, OFlags::RDONLY, true)
                    .map_err(errno_at("openat2", &self.path, parent))?;
                set_opaque_fd(&fd, self.ns, &self.path.join(OsStr::from_bytes(parent)))?;
                self.opaque.push(parent.to_vec());
                self.stats.opaque_dirs += 1;
                Ok(())
            }
            TarName::Whiteout(hidden) => {
                let mut key = parent.to_vec();
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(hidden);
                if self.seen.contains(&key) || !self.whited.insert(key.clone()) {
                    return Err(bad_entry(&raw_path, "whiteout of a path of the same layer"));
                }
                let opts = self.opts;
                let pfd = self.root.dir(parent)?;
                let name = OsStr::from_bytes(hidden);
                let mknod =
                    || rustix::fs::mknodat(pfd, name, FileType::CharacterDevice, Mode::empty(), 0);
                let replaced = create_or_replace(pfd, name, mknod, &self.written)
                    .map_err(refused("mknodat", &self.path, &key, &raw_path))?;
                self.written
                    .add_at(pfd, name, true)
                    .map_err(errno_at("fstatat", &self.path, &key))?;
                if opts.same_owner {
                    rustix::fs::chownat(
                        pfd,
                        name,
                        Some(meta.uid),
                        Some(meta.gid),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(errno_at("fchownat", &self.path, &key))?;
                }
                rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_at("utimensat", &self.path, &key))?;
                self.stats.whiteouts += 1;
                self.after(replaced);
                Ok(())
            }
            TarName::Plain => {
                self.claim(&norm, &raw_path)?;
                if is_dir {
                    return self.directory(&norm, &meta);
                }
                self.leaf(
                    header, data, size, &ext, &raw_path, &norm, parent, name, &meta,
                )
            }
        }
    }

    /// Record `key` as written by this layer; a second time is an error.
    fn claim(&mut self, key: &[u8], raw_path: &[u8]) -> Result<()> {
        if self.seen.insert(key.to_vec()) {
            Ok(())
        } else {
            Err(bad_entry(raw_path, "duplicate path in layer"))
        }
    }

    /// After replacing an existing tree entry the cached parent may be stale,
    /// and the size counted so far no longer tells.
    fn after(&mut self, replaced: bool) {
        if replaced {
            self.root.invalidate();
            self.size = None;
        }
    }

    /// A new inode of `bytes` apparent bytes was written.
    fn count(&mut self, bytes: u64) {
        self.size = self.size.and_then(|s| s.checked_add(bytes));
    }

    fn directory(&mut self, norm: &[u8], meta: &EntryMeta) -> Result<()> {
        if !norm.is_empty() {
            let (parent, name) = split(norm);
            let pfd = self.root.dir(parent)?;
            let name = OsStr::from_bytes(name);
            let mode = Mode::from_raw_mode(meta.mode & 0o7777);
            let mut replaced = false;
            match rustix::fs::mkdirat(pfd, name, mode) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let st = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(errno_at("fstatat", &self.path, norm))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                        remove_all_at(pfd, name).map_err(errno_at("unlinkat", &self.path, norm))?;
                        rustix::fs::mkdirat(pfd, name, mode)
                            .map_err(errno_at("mkdirat", &self.path, norm))?;
                        replaced = true;
                    }
                }
                Err(e) => return Err(errno_at("mkdirat", &self.path, norm)(e)),
            }
            self.after(replaced);
        }
        let fd = self
            .root
            .open_dir(norm, OFlags::RDONLY, false)
            .map_err(errno_at("openat2", &self.path, norm))?;
        let st = self
            .written
            .add_fd(&fd)
            .map_err(errno_at("fstat", &self.path, norm))?;
        self.set_owner_mode(fd.as_fd(), &st, meta, true, norm)?;
        self.set_xattrs_fd(fd.as_fd(), meta, norm)?;
        self.dirs.push((norm.to_vec(), meta.times()));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &mut self,
        header: &Header,
        data: &mut Members<impl BufRead>,
        size: u64,
        ext: &Extensions,
        raw_path: &[u8],
        norm: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: &EntryMeta,
    ) -> Result<()> {
        let name = OsStr::from_bytes(name);
        let mode = Mode::from_raw_mode(meta.mode & 0o7777);
        match header.entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                let pfd = self.root.dir(parent)?;
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let open = || rustix::fs::openat(pfd, name, flags, mode);
                let (fd, replaced) = create_or_replace_with(pfd, name, open, &self.written)
                    .map_err(refused("openat", &self.path, norm, raw_path))?;
                let st = self
                    .written
                    .add_fd(&fd)
                    .map_err(errno_at("fstat", &self.path, norm))?;
                let mut file = std::fs::File::from(fd);
                match ext.sparse(raw_path)? {
                    Some(sparse) => {
                        self.count(sparse.real_size);
                        self.stats.bytes += crate::sparse::expand(
                            &sparse,
                            data,
                            size,
                            &mut file,
                            self.opts.max_header_size,
                            &mut self.buf,
                            raw_path,
                        )?;
                    }
                    None => {
                        let n =
                            data.copy_data(&mut file, || self.path.join(OsStr::from_bytes(norm)))?;
                        self.stats.bytes += n;
                        self.count(n);
                    }
                }
                let fd = OwnedFd::from(file);
                self.after(replaced);
                self.set_owner_mode(fd.as_fd(), &st, meta, false, norm)?;
                self.set_xattrs_fd(fd.as_fd(), meta, norm)?;
                rustix::fs::futimens(&fd, &meta.times())
                    .map_err(errno_at("futimens", &self.path, norm))
            }
            EntryType::Symlink => {
                let target = ext
                    .link(header)
                    .ok_or_else(|| bad_entry(raw_path, "symlink without target"))?;
                let pfd = self.root.dir(parent)?;
                let make = || rustix::fs::symlinkat(OsStr::from_bytes(&target), pfd, name);
                let replaced = create_or_replace(pfd, name, make, &self.written)
                    .map_err(refused("symlinkat", &self.path, norm, raw_path))?;
                self.written
                    .add_at(pfd, name, false)
                    .map_err(errno_at("fstatat", &self.path, norm))?;
                self.after(replaced);
                // A symlink's size is its target's length.
                self.count(target.len() as u64);
                self.finish_at(parent, name, meta, norm, false, true)
            }
            EntryType::Link => {
                let target = ext
                    .link(header)
                    .ok_or_else(|| bad_entry(raw_path, "hardlink without target"))?;
                let target = normalize(&target)?;
                if target.is_empty() || target == norm {
                    return Err(bad_entry(raw_path, "hardlink to itself or to the root"));
                }
                let (tparent, tname) = split(&target);
                let tfd = self
                    .root
                    .open_dir(tparent, OFlags::PATH, true)
                    .map_err(errno_at("openat2", &self.path, tparent))?;
                let pfd = self.root.dir(parent)?;
                let tname = OsStr::from_bytes(tname);
                let link = || rustix::fs::linkat(&tfd, tname, pfd, name, AtFlags::empty());
                let replaced = create_or_replace(pfd, name, link, &self.written)
                    .map_err(refused("linkat", &self.path, norm, raw_path))?;
                let st = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_at("fstatat", &self.path, norm))?;
                self.written.add_stat(&st);
                self.after(replaced);
                // Docker applies the link entry's owner, xattrs, mode and
                // times to the (shared) inode; mode and times only when the
                // target is not a symlink.
                let not_symlink = FileType::from_raw_mode(st.st_mode) != FileType::Symlink;
                self.finish_at(parent, name, meta, norm, not_symlink, not_symlink)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match header.entry_type() {
                    EntryType::Char => (FileType::CharacterDevice, meta.dev),
                    EntryType::Block => (FileType::BlockDevice, meta.dev),
                    _ => (FileType::Fifo, 0),
                };
                let pfd = self.root.dir(parent)?;
                let make = || rustix::fs::mknodat(pfd, name, ft, mode, dev);
                let replaced = create_or_replace(pfd, name, make, &self.written)
                    .map_err(refused("mknodat", &self.path, norm, raw_path))?;
                self.written
                    .add_at(pfd, name, false)
                    .map_err(errno_at("fstatat", &self.path, norm))?;
                self.after(replaced);
                self.finish_at(parent, name, meta, norm, true, true)
            }
            other => Err(bad_entry(
                raw_path,
                format!("unsupported entry type {:?}", other.as_byte() as char),
            )),
        }
    }

    /// Owner, mode, xattrs and times of a symlink or special file, through
    /// its parent's fd (these cannot be opened for writing).
    fn finish_at(
        &mut self,
        parent: &[u8],
        name: &OsStr,
        meta: &EntryMeta,
        norm: &[u8],
        chmod: bool,
        times: bool,
    ) -> Result<()> {
        let opts = self.opts;
        let pfd = self.root.dir(parent)?;
        if opts.same_owner {
            rustix::fs::chownat(
                pfd,
                name,
                Some(meta.uid),
                Some(meta.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno_at("fchownat", &self.path, norm))?;
        }
        if chmod {
            rustix::fs::chmodat(
                pfd,
                name,
                Mode::from_raw_mode(meta.mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(errno_at("fchmodat", &self.path, norm))?;
        }
        for (key, value) in meta
            .xattrs
            .iter()
            .filter(|(k, _)| !crate::whiteout::is_overlay_xattr(k))
        {
            let proc = format!("/proc/self/fd/{}/", rustix::fd::AsRawFd::as_raw_fd(&pfd));
            let path = [proc.as_bytes(), name.as_bytes()].concat();
            rustix::fs::lsetxattr(
                OsStr::from_bytes(&path),
                OsStr::from_bytes(key),
                value,
                XattrFlags::empty(),
            )
            .map_err(errno_at("lsetxattr", &self.path, norm))?;
        }
        self.stats.dropped_xattrs += meta.overlay_xattrs();
        if !times {
            return Ok(());
        }
        rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_at("utimensat", &self.path, norm))
    }

    /// Owner and mode of a file or directory through its fd; `st` is its
    /// status before (from [`Written::add_fd`]). What already matches is
    /// not set again: a file this process just created usually has the
    /// entry's owner (root extracting a root-owned layer) and, under the
    /// usual umask, its mode, and a chown or chmod per entry is a syscall
    /// per file that `tar -x` pays and we need not.
    fn set_owner_mode(
        &self,
        fd: BorrowedFd<'_>,
        st: &rustix::fs::Stat,
        meta: &EntryMeta,
        is_dir: bool,
        norm: &[u8],
    ) -> Result<()> {
        let owner_matches = st.st_uid == meta.uid.as_raw() && st.st_gid == meta.gid.as_raw();
        let chowned = self.opts.same_owner && !owner_matches;
        if chowned {
            rustix::fs::fchown(fd, Some(meta.uid), Some(meta.gid))
                .map_err(errno_at("fchown", &self.path, norm))?;
        }
        // A fresh file has `mode & !umask`; chown clears setuid/setgid
        // (and the kernel may drop setgid at creation), so those bits are
        // always set explicitly. A directory may exist already (made for
        // an earlier entry below it, or by a lower layer): its mode is
        // compared with the entry's unless a chown just ran.
        let mode = meta.mode & 0o7777;
        let needed = if is_dir {
            chowned || st.st_mode & 0o7777 != mode
        } else {
            mode & 0o7000 != 0 || mode & self.umask != 0
        };
        if needed {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
                .map_err(errno_at("fchmod", &self.path, norm))?;
        }
        Ok(())
    }

    fn set_xattrs_fd(&mut self, fd: BorrowedFd<'_>, meta: &EntryMeta, norm: &[u8]) -> Result<()> {
        for (key, value) in meta
            .xattrs
            .iter()
            .filter(|(k, _)| !crate::whiteout::is_overlay_xattr(k))
        {
            rustix::fs::fsetxattr(fd, OsStr::from_bytes(key), value, XattrFlags::empty())
                .map_err(errno_at("fsetxattr", &self.path, norm))?;
        }
        self.stats.dropped_xattrs += meta.overlay_xattrs();
        Ok(())
    }

    /// Empty opaque directories of what this layer did not write (applying
    /// onto an existing tree), then set directory times (last, since
    /// creating entries changes them).
    fn finish(mut self) -> Result<ApplyStats> {
        if !self.opaque.is_empty() {
            // What the opaque directories hide is not counted here.
            self.size = None;
        }
        let mut done = HashSet::new();
        for dir in std::mem::take(&mut self.opaque) {
            let fd = self
                .root
                .open_dir(&dir, OFlags::RDONLY, true)
                .map_err(errno_at("openat2", &self.path, &dir))?;
            let st = rustix::fs::fstat(&fd).map_err(errno_at("fstat", &self.path, &dir))?;
            if done.insert((st.st_dev, st.st_ino)) {
                self.written
                    .hide_lower(fd.as_fd())
                    .map_err(errno_at("unlinkat", &self.path, &dir))?;
            }
        }
        for (dir, times) in &self.dirs {
            let fd = self
                .root
                .open_dir(dir, OFlags::RDONLY, false)
                .map_err(errno_at("openat2", &self.path, dir))?;
            rustix::fs::futimens(&fd, times).map_err(errno_at("futimens", &self.path, dir))?;
        }
        self.stats.size = self.size;
        Ok(self.stats)
    }
}

/// Whether an entry may stand for a whiteout or opaque marker: an empty
/// regular file, or (Docker's tar writer links later whiteouts sharing the
/// kernel's whiteout inode to the first) a hardlink to another whiteout.
fn is_marker_entry(kind: EntryType, size: u64, link: Option<&[u8]>) -> bool {
    match kind {
        EntryType::Regular | EntryType::Continuous => size == 0,
        EntryType::Link => link.is_some_and(|l| {
            let name = l.rsplit(|&b| b == b'/').next().unwrap_or(l);
            matches!(classify(name), TarName::Whiteout(_))
        }),
        _ => false,
    }
}

/// Split `a/b/c` into (`a/b`, `c`).
fn split(norm: &[u8]) -> (&[u8], &[u8]) {
    match norm.iter().rposition(|&b| b == b'/') {
        Some(i) => (&norm[..i], &norm[i + 1..]),
        None => (&b""[..], norm),
    }
}
