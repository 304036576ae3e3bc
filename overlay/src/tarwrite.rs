//! Writing layer tar entries: ustar headers, PAX records for what ustar
//! cannot hold (long names and link targets, xattrs, times before 1970 or
//! after 2242), content copied from an open file, padding.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use rustix::fs::Stat;
use tar::{EntryType, Header};

use crate::error::{Error, Result, io_err};
use crate::whiteout::WHITEOUT_PREFIX;

/// Largest time (seconds) the 11 octal digits of a ustar `mtime` hold.
const USTAR_MAX_TIME: i64 = 0o777_7777_7777;

/// The header fields of one entry, taken from `fstat`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryStat {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    pub(crate) mtime_nsec: u32,
    pub(crate) rdev: u64,
    pub(crate) size: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) nlink: u64,
}

impl EntryStat {
    pub(crate) fn from_stat(st: &Stat) -> EntryStat {
        EntryStat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            mtime_nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            rdev: st.st_rdev,
            size: u64::try_from(st.st_size).unwrap_or(0),
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        }
    }

    /// The file type bits (`S_IFMT`).
    pub(crate) fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
}

/// Writes tar entries with a reused copy buffer.
pub(crate) struct TarWriter<W: Write> {
    out: BufWriter<W>,
    buf: Vec<u8>,
    /// First path seen of each inode with several links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        TarWriter {
            out: BufWriter::with_capacity(64 << 10, out),
            buf: vec![0; 1 << 20],
            links: HashMap::new(),
        }
    }

    /// The first name written for the inode of `st` if it has several
    /// links and was written before; otherwise remember `rel` for it.
    pub(crate) fn link_target(&mut self, st: &EntryStat, rel: &[u8]) -> Option<Vec<u8>> {
        if st.nlink <= 1 {
            return None;
        }
        let key = (st.dev, st.ino);
        if let Some(first) = self.links.get(&key) {
            return Some(first.clone());
        }
        self.links.insert(key, rel.to_vec());
        None
    }

    /// A whiteout hiding `rel`: `.wh.NAME`, root-owned, mode 0600, time 0.
    pub(crate) fn whiteout(&mut self, rel: &[u8]) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        self.write_header(h, &whiteout_name(rel), None, &[], None)
    }

    /// A whiteout named `name` for the overlay whiteout described by `st`:
    /// an empty regular file with its owner and time and mode `mode`.
    pub(crate) fn marker(&mut self, name: &[u8], st: &EntryStat, mode: u32) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_mode(mode);
        h.set_uid(st.uid.into());
        h.set_gid(st.gid.into());
        let time = set_time(&mut h, st);
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        self.write_header(h, name, None, &[], time.as_deref())
    }

    /// The opaque marker `name` of the directory described by `st`, as
    /// Docker writes it: the directory's owner and permission bits (no
    /// setuid, setgid or sticky bits), time 0.
    pub(crate) fn opaque_marker(&mut self, name: &[u8], st: &EntryStat) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_mode(st.mode & 0o777);
        h.set_uid(st.uid.into());
        h.set_gid(st.gid.into());
        h.set_mtime(0);
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        self.write_header(h, name, None, &[], None)
    }

    /// The header (and PAX header) of an entry described by `st`.
    pub(crate) fn header(
        &mut self,
        name: &[u8],
        st: &EntryStat,
        kind: EntryType,
        size: u64,
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let mut h = Header::new_ustar();
        // The file type bits too, as Go's archive/tar (Docker) writes them.
        h.set_mode(st.mode & (libc::S_IFMT | 0o7777));
        h.set_uid(st.uid.into());
        h.set_gid(st.gid.into());
        let time = set_time(&mut h, st);
        h.set_entry_type(kind);
        h.set_size(size);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(rustix::fs::major(st.rdev))
                .map_err(Error::Write)?;
            h.set_device_minor(rustix::fs::minor(st.rdev))
                .map_err(Error::Write)?;
        }
        self.write_header(h, name, link, xattrs, time.as_deref())
    }

    /// Fill in name and link (PAX records when they do not fit), write the
    /// PAX header if any, then the entry's header.
    fn write_header(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        mtime: Option<&[u8]>,
    ) -> Result<()> {
        let mut pax: Vec<(Vec<u8>, &[u8])> = Vec::new();
        if let Some(t) = mtime {
            pax.push((b"mtime".to_vec(), t));
        }
        if !set_name(&mut h, name) {
            pax.push((b"path".to_vec(), name));
        }
        if let Some(link) = link {
            if link.len() <= 100 {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            } else {
                pax.push((b"linkpath".to_vec(), link));
                h.as_old_mut().linkname[..100].copy_from_slice(&link[..100]);
            }
        }
        for (k, v) in xattrs {
            pax.push(([b"SCHILY.xattr.", k.as_slice()].concat(), v));
        }
        if !pax.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_mode(0o644);
            ph.set_cksum();
            self.out.write_all(ph.as_bytes()).map_err(Error::Write)?;
            self.out.write_all(&data).map_err(Error::Write)?;
            self.pad(data.len() as u64)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(Error::Write)
    }

    /// Copy exactly `size` bytes of the open file `file` (at `path`, for
    /// errors), then pad to a block. A file that shrank is an error; bytes
    /// past `size` are left out.
    pub(crate) fn content(&mut self, file: &std::fs::File, size: u64, path: &Path) -> Result<()> {
        let mut src = file.take(size);
        let mut copied = 0u64;
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", path)(e)),
            };
            if n == 0 {
                break;
            }
            self.out.write_all(&self.buf[..n]).map_err(Error::Write)?;
            copied += n as u64;
        }
        if copied != size {
            return Err(Error::ChangedDuringDiff {
                path: path.to_path_buf(),
                reason: "file shrank while being archived",
            });
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; 512][..512 - rem])
                .map_err(Error::Write)?;
        }
        Ok(())
    }

    /// Write the end-of-archive marker and return the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 1024]).map_err(Error::Write)?;
        self.out
            .into_inner()
            .map_err(|e| Error::Write(e.into_error()))
    }
}

/// `parent/.wh.name` for `rel` = `parent/name`.
pub(crate) fn whiteout_name(rel: &[u8]) -> Vec<u8> {
    let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    [parent, WHITEOUT_PREFIX.as_bytes(), name].concat()
}

/// Set the ustar mtime of `h` from `st`; when ustar cannot hold it (before
/// 1970, after 2242) return the PAX `mtime` value to write instead, with
/// its fraction of a second.
fn set_time(h: &mut Header, st: &EntryStat) -> Option<Vec<u8>> {
    if (0..=USTAR_MAX_TIME).contains(&st.mtime) {
        h.set_mtime(st.mtime as u64);
        return None;
    }
    h.set_mtime(if st.mtime < 0 {
        0
    } else {
        USTAR_MAX_TIME as u64
    });
    Some(pax_time(st.mtime, st.mtime_nsec).into_bytes())
}

/// A time as a PAX decimal: seconds, and the fraction when not zero
/// (`-1.25` for 1.25 s before the epoch: seconds -2, nanoseconds 750e6).
fn pax_time(sec: i64, nsec: u32) -> String {
    let nsec = i128::from(nsec.min(999_999_999));
    let total = i128::from(sec) * 1_000_000_000 + nsec;
    let sign = if total < 0 { "-" } else { "" };
    let abs = total.unsigned_abs();
    let (whole, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Store `name` in the ustar name (and prefix) fields, bytes as they are;
/// false (and a truncated name) when it needs a PAX `path` record.
fn set_name(h: &mut Header, name: &[u8]) -> bool {
    if name.len() <= 100 {
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        return true;
    }
    let split = name[..name.len().min(156)]
        .iter()
        .rposition(|&b| b == b'/')
        .filter(|&i| i > 0 && name.len() - i - 1 <= 100);
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    match split {
        Some(i) => {
            ustar.prefix[..i].copy_from_slice(&name[..i]);
            ustar.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            true
        }
        None => {
            ustar.name.copy_from_slice(&name[..100]);
            false
        }
    }
}

/// One PAX record: `<len> <key>=<value>\n`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"a");
        assert_eq!(v, b"9 path=a\n");
        let mut v = Vec::new();
        pax_record(&mut v, b"path", &[b'x'; 92]);
        assert_eq!(&v[..4], b"102 ");
        assert_eq!(v.len(), 102);
    }

    #[test]
    fn pax_times_are_signed_decimals_with_their_fraction() {
        assert_eq!(pax_time(-315_619_200, 0), "-315619200");
        assert_eq!(pax_time(-2, 750_000_000), "-1.25");
        assert_eq!(pax_time(-1, 1), "-0.999999999");
        assert_eq!(pax_time(0o777_7777_7777 + 1, 500), "8589934592.0000005");
        assert_eq!(pax_time(i64::MIN, 0), "-9223372036854775808");
    }

    #[test]
    fn times_ustar_cannot_hold_go_to_pax() {
        let st = |mtime, mtime_nsec| EntryStat {
            mode: 0,
            uid: 0,
            gid: 0,
            mtime,
            mtime_nsec,
            rdev: 0,
            size: 0,
            dev: 0,
            ino: 0,
            nlink: 1,
        };
        let mut h = Header::new_ustar();
        assert_eq!(set_time(&mut h, &st(1_700_000_000, 5)), None);
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert_eq!(
            set_time(&mut h, &st(-315_619_200, 0)).as_deref(),
            Some(&b"-315619200"[..])
        );
        assert_eq!(h.mtime().unwrap(), 0);
        assert!(set_time(&mut h, &st(USTAR_MAX_TIME + 1, 0)).is_some());
    }
}
