//! Reading one layer tar entry's name and metadata: GNU long names, PAX
//! records (with a size cap), name normalisation.

use std::io::Read;

use rustix::fs::{Dev, Gid, Timespec, Timestamps, Uid};
use tar::{EntryType, Header, PaxExtensions};

use crate::error::{Error, Result};
use crate::root::bad_entry;

/// The extension headers (GNU `L`/`K`, PAX `x`) that precede an entry.
#[derive(Debug, Default)]
pub(crate) struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Extensions {
    /// Whether a member of type `kind` is an extension header (GNU `L`/`K`,
    /// PAX `x`/`g`) rather than an entry.
    pub(crate) fn is_extension(kind: EntryType) -> bool {
        matches!(
            kind,
            EntryType::GNULongName
                | EntryType::GNULongLink
                | EntryType::XHeader
                | EntryType::XGlobalHeader
        )
    }

    /// Read the extension header `header`, whose `size` bytes of data `data`
    /// yields (at most `cap` bytes accepted). PAX global headers are read
    /// and ignored.
    pub(crate) fn absorb(
        &mut self,
        header: &Header,
        data: &mut impl Read,
        size: u64,
        cap: u64,
    ) -> Result<()> {
        let kind = header.entry_type();
        let is_pax = kind == EntryType::XHeader;
        let name = header.path_bytes().into_owned();
        if size > cap {
            return Err(bad_entry(
                &name,
                format!("extension header of {size} bytes exceeds the {cap}-byte limit"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        data.take(size)
            .read_to_end(&mut buf)
            .map_err(Error::Archive)?;
        let slot = match kind {
            EntryType::GNULongName => &mut self.long_name,
            EntryType::GNULongLink => &mut self.long_link,
            EntryType::XHeader => &mut self.pax,
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(bad_entry(
                &name,
                "two extension headers of one kind for one entry",
            ));
        }
        if buf.last() == Some(&0) && !is_pax {
            buf.pop();
        }
        *slot = Some(buf);
        Ok(())
    }

    /// The data size of the entry `header` (named `path`): none for
    /// header-only types (as Go reads them), else the PAX `size` record,
    /// else the header's size field.
    pub(crate) fn data_size(&self, header: &Header, path: &[u8]) -> Result<u64> {
        if crate::tarread::header_only(header.as_bytes()[156], path) {
            return Ok(0);
        }
        if let Some(v) = self.pax_value(b"size") {
            return parse_u64(v).ok_or_else(|| bad_entry(path, "bad PAX size"));
        }
        header
            .entry_size()
            .map_err(|e| bad_entry(path, format!("bad size: {e}")))
    }

    /// Whether no extension header is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }

    fn pax_value(&self, key: &[u8]) -> Option<&[u8]> {
        let pax = self.pax.as_deref()?;
        PaxExtensions::new(pax)
            .filter_map(|r| r.ok())
            .find(|e| e.key_bytes() == key)
            .map(|e| e.value_bytes())
    }

    /// The GNU sparse layout the PAX records describe, if any.
    pub(crate) fn sparse(&self, path: &[u8]) -> Result<Option<crate::sparse::Sparse>> {
        let Some(pax) = self.pax.as_deref() else {
            return Ok(None);
        };
        let records = PaxExtensions::new(pax)
            .filter_map(|r| r.ok())
            .map(|e| (e.key_bytes(), e.value_bytes()));
        crate::sparse::from_records(records, path)
    }

    /// The entry's name, in Go's order of precedence: PAX `GNU.sparse.name`
    /// of a sparse entry, else the GNU long name, else PAX `path`, else the
    /// header's.
    pub(crate) fn path(&self, header: &Header) -> Vec<u8> {
        if let Some(n) = self.pax_value(b"GNU.sparse.name").filter(|n| !n.is_empty())
            && self.sparse(n).is_ok_and(|s| s.is_some())
        {
            return n.to_vec();
        }
        if let Some(n) = &self.long_name {
            return n.clone();
        }
        match self.pax_value(b"path") {
            Some(p) => p.to_vec(),
            None => header.path_bytes().into_owned(),
        }
    }

    /// The link target: GNU long link, else PAX `linkpath`, else the
    /// header's; `None` when empty.
    pub(crate) fn link(&self, header: &Header) -> Option<Vec<u8>> {
        let link = if let Some(n) = &self.long_link {
            n.clone()
        } else if let Some(p) = self.pax_value(b"linkpath") {
            p.to_vec()
        } else {
            header.link_name_bytes()?.into_owned()
        };
        (!link.is_empty()).then_some(link)
    }
}

/// An entry's owner, mode, times, device number and xattrs.
#[derive(Debug)]
pub(crate) struct EntryMeta {
    pub(crate) mode: u32,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    pub(crate) dev: Dev,
    mtime: Timespec,
    atime: Option<Timespec>,
    /// `SCHILY.xattr.*` records, name without the prefix.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMeta {
    /// Read the header, with PAX records overriding it.
    pub(crate) fn parse(header: &Header, ext: &Extensions, path: &[u8]) -> Result<EntryMeta> {
        let bad = |what: &str, e: std::io::Error| bad_entry(path, format!("bad {what}: {e}"));
        let old = header.as_old();
        let mut uid = or_zero(&old.uid, header.uid()).map_err(|e| bad("uid", e))?;
        let mut gid = or_zero(&old.gid, header.gid()).map_err(|e| bad("gid", e))?;
        let mtime = match base256(&old.mtime) {
            Some(t) => t.ok_or_else(|| bad_entry(path, "bad mtime: base-256 overflow"))?,
            None => {
                let t = or_zero(&old.mtime, header.mtime()).map_err(|e| bad("mtime", e))?;
                i64::try_from(t).map_err(|_| bad_entry(path, "bad mtime: out of range"))?
            }
        };
        let mut mtime = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = &ext.pax {
            for rec in PaxExtensions::new(pax) {
                let rec = rec.map_err(|e| bad("PAX record", e))?;
                let (key, value) = (rec.key_bytes(), rec.value_bytes());
                match key {
                    b"uid" => {
                        uid = parse_u64(value).ok_or_else(|| bad_entry(path, "bad PAX uid"))?
                    }
                    b"gid" => {
                        gid = parse_u64(value).ok_or_else(|| bad_entry(path, "bad PAX gid"))?
                    }
                    b"mtime" => {
                        mtime = parse_time(value).ok_or_else(|| bad_entry(path, "bad PAX mtime"))?
                    }
                    b"atime" => {
                        atime = Some(
                            parse_time(value).ok_or_else(|| bad_entry(path, "bad PAX atime"))?,
                        )
                    }
                    b"size" => {
                        parse_u64(value).ok_or_else(|| bad_entry(path, "bad PAX size"))?;
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| bad_entry(path, format!("{what} {v} out of range")))
        };
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
        Ok(EntryMeta {
            mode: or_zero(&old.mode, header.mode().map(u64::from)).map_err(|e| bad("mode", e))?
                as u32,
            uid: Uid::from_raw(id(uid, "uid")?),
            gid: Gid::from_raw(id(gid, "gid")?),
            dev: rustix::fs::makedev(major, minor),
            mtime,
            atime,
            xattrs,
        })
    }

    /// Access and modification times (access = modification unless PAX
    /// records an atime).
    pub(crate) fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime.unwrap_or(self.mtime),
            last_modification: self.mtime,
        }
    }

    /// How many of the xattrs are overlayfs's own (never applied).
    pub(crate) fn overlay_xattrs(&self) -> u64 {
        self.xattrs
            .iter()
            .filter(|(k, _)| crate::whiteout::is_overlay_xattr(k))
            .count() as u64
    }
}

/// A numeric header field left empty (only NULs and spaces) reads as 0, as
/// Go's archive/tar (Docker's) reads it; otherwise the parsed value.
fn or_zero(field: &[u8], parsed: std::io::Result<u64>) -> std::io::Result<u64> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// A GNU base-256 numeric field (first byte's top bit set), signed as GNU
/// tar writes times before 1970; `None` when the field is octal, `Some(None)`
/// when the value does not fit an `i64`.
fn base256(field: &[u8]) -> Option<Option<i64>> {
    let first = *field.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let negative = first & 0x40 != 0;
    let inv = if negative { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &b) in field.iter().enumerate() {
        let mut c = b ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 != 0 {
            return Some(None);
        }
        x = x << 8 | u64::from(c);
    }
    let x = i64::try_from(x).ok();
    Some(if negative { x.map(|v| !v) } else { x })
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time: decimal seconds with an optional fraction.
fn parse_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut tv_nsec: i64 = digits.parse().ok()?;
    let mut tv_sec = tv_sec;
    if secs.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec { tv_sec, tv_nsec })
}

/// A tar name made relative and clean: leading `/` and `.` components and
/// repeated slashes dropped; `..` anywhere is an error. Empty means the root.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(bad_entry(raw, "`..` in a layer path")),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_dotdot_refused() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"a/../../b").is_err());
        assert!(normalize(b"..").is_err());
    }

    #[test]
    fn empty_numeric_fields_read_as_zero() {
        let mut h = Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(0);
        let ext = Extensions::default();
        let m = EntryMeta::parse(&h, &ext, b"f").unwrap();
        assert_eq!((m.uid.as_raw(), m.gid.as_raw(), m.mode), (0, 0, 0));
        assert_eq!(m.times().last_modification.tv_sec, 0);
        h.as_old_mut().uid = *b"12x4567\0";
        assert!(EntryMeta::parse(&h, &ext, b"f").is_err());
    }

    #[test]
    fn base256_times_are_signed() {
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        assert_eq!(base256(&f), Some(Some(5)));
        let mut f = [0xffu8; 12];
        f[11] = 0xff;
        assert_eq!(base256(&f), Some(Some(-1)));
        // -315619200 as GNU tar writes it.
        let v = (-315_619_200i64).to_be_bytes();
        let mut f = [0xffu8; 12];
        f[4..].copy_from_slice(&v);
        assert_eq!(base256(&f), Some(Some(-315_619_200)));
        assert_eq!(base256(b"00000000000\0"), None);
        let mut f = [0x7fu8; 12];
        f[0] = 0x80;
        assert_eq!(base256(&f), Some(None));
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = parse_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_time(b"12x").is_none());
    }
}
