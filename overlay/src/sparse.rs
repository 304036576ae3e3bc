//! GNU sparse files in PAX form (what GNU tar writes with `--sparse`):
//! reading their map and expanding them, as Go's `archive/tar` (Docker's
//! reader) does.
//!
//! - 1.0 (`GNU.sparse.major=1`, `GNU.sparse.minor=0`): the map is at the
//!   start of the member's data, decimal numbers one a line (the count,
//!   then offset and length pairs), padded to 512-byte blocks; the data
//!   fragments follow.
//! - 0.1 (`GNU.sparse.map=off,len,...`) and 0.0 (repeated
//!   `GNU.sparse.offset` / `GNU.sparse.numbytes` records): the map is in the
//!   PAX records and the data holds only the fragments.
//!
//! `GNU.sparse.name` names the file and `GNU.sparse.realsize` (1.0) or
//! `GNU.sparse.size` (0.x) gives its size. Fragments must be sorted, not
//! overlap, end within the size, and account for every data byte.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::error::{Error, Result};
use crate::root::bad_entry;

/// A sparse entry's layout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Sparse {
    /// The expanded file's size.
    pub(crate) real_size: u64,
    /// Offset and length of each data fragment; `None` for 1.0 (the map is
    /// in the data).
    pub(crate) map: Option<Vec<(u64, u64)>>,
}

/// The sparse layout described by PAX `records` (key, value), if any.
pub(crate) fn from_records<'a>(
    records: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    path: &[u8],
) -> Result<Option<Sparse>> {
    let (mut major, mut minor, mut map, mut size, mut real) = (None, None, None, None, None);
    let (mut offsets, mut lengths) = (Vec::new(), Vec::new());
    let num = |v: &[u8]| -> Result<u64> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_entry(path, "bad number in a GNU sparse record"))
    };
    for (k, v) in records {
        match k {
            b"GNU.sparse.major" => major = Some(v),
            b"GNU.sparse.minor" => minor = Some(v),
            b"GNU.sparse.map" => map = Some(v),
            b"GNU.sparse.size" => size = Some(num(v)?),
            b"GNU.sparse.realsize" => real = Some(num(v)?),
            b"GNU.sparse.offset" => offsets.push(num(v)?),
            b"GNU.sparse.numbytes" => lengths.push(num(v)?),
            _ => {}
        }
    }
    let v1 = match (major, minor) {
        (Some(b"1"), Some(b"0")) => true,
        (Some(b"0"), Some(b"0" | b"1")) => false,
        (None, None) if map.is_some() || !offsets.is_empty() => false,
        (None, None) => return Ok(None),
        _ => return Err(bad_entry(path, "unknown GNU sparse version")),
    };
    let real_size = size
        .or(real)
        .ok_or_else(|| bad_entry(path, "GNU sparse entry without its size"))?;
    if v1 {
        return Ok(Some(Sparse {
            real_size,
            map: None,
        }));
    }
    let pairs = match map {
        Some(m) => {
            let nums = m
                .split(|&b| b == b',')
                .filter(|s| !s.is_empty())
                .map(num)
                .collect::<Result<Vec<u64>>>()?;
            if nums.len() % 2 != 0 {
                return Err(bad_entry(path, "odd number of values in GNU.sparse.map"));
            }
            nums.chunks(2).map(|c| (c[0], c[1])).collect()
        }
        None if offsets.len() == lengths.len() => offsets.into_iter().zip(lengths).collect(),
        None => {
            return Err(bad_entry(
                path,
                "unpaired GNU sparse offset/numbytes records",
            ));
        }
    };
    Ok(Some(Sparse {
        real_size,
        map: Some(pairs),
    }))
}

/// Read a 1.0 map from the start of `data` (at most `cap` bytes of it).
/// Returns the map and the bytes it took.
fn read_map(data: &mut impl Read, cap: u64, path: &[u8]) -> Result<(Vec<(u64, u64)>, u64)> {
    let mut text = Vec::new();
    let mut block = [0u8; 512];
    let mut lines = 0usize;
    let mut need = 1usize;
    let mut count = None;
    loop {
        while lines < need {
            if text.len() as u64 + 512 > cap {
                return Err(bad_entry(path, format!("GNU sparse map over {cap} bytes")));
            }
            data.read_exact(&mut block).map_err(Error::Archive)?;
            text.extend_from_slice(&block);
            lines += block.iter().filter(|&&b| b == b'\n').count();
        }
        if count.is_some() {
            break;
        }
        let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
        let n: usize = std::str::from_utf8(first)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_entry(path, "bad GNU sparse map count"))?;
        need = n
            .checked_mul(2)
            .and_then(|m| m.checked_add(1))
            .ok_or_else(|| bad_entry(path, "bad GNU sparse map count"))?;
        count = Some(n);
    }
    let mut tokens = text.split(|&b| b == b'\n').skip(1);
    let mut num = || -> Result<u64> {
        tokens
            .next()
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_entry(path, "bad number in the GNU sparse map"))
    };
    let mut map = Vec::new();
    for _ in 0..count.unwrap_or(0) {
        map.push((num()?, num()?));
    }
    Ok((map, text.len() as u64))
}

/// Check fragments as Go does: sorted, not overlapping, within the size.
fn validate(map: &[(u64, u64)], real_size: u64, path: &[u8]) -> Result<()> {
    let mut end = 0u64;
    for &(off, len) in map {
        let stop = off
            .checked_add(len)
            .ok_or_else(|| bad_entry(path, "GNU sparse fragment overflows"))?;
        if off < end || stop > real_size {
            return Err(bad_entry(
                path,
                "GNU sparse fragments overlap, are unsorted or exceed the size",
            ));
        }
        end = stop;
    }
    Ok(())
}

/// Expand the sparse entry whose `data_size` bytes of data `data` yields
/// into `file`: fragments written at their offsets, holes left as holes,
/// the file's size set. Returns the fragment bytes written.
pub(crate) fn expand(
    sparse: &Sparse,
    data: &mut impl Read,
    data_size: u64,
    file: &mut std::fs::File,
    cap: u64,
    buf: &mut [u8],
    path: &[u8],
) -> Result<u64> {
    let (map, used) = match &sparse.map {
        Some(m) => (m.clone(), 0),
        None => read_map(data, cap.min(data_size), path)?,
    };
    validate(&map, sparse.real_size, path)?;
    let total: u64 = map.iter().map(|&(_, len)| len).sum();
    if total != data_size - used {
        return Err(bad_entry(
            path,
            format!(
                "GNU sparse fragments hold {total} bytes, the entry's data {}",
                data_size - used
            ),
        ));
    }
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
            Error::Archive(source)
        }
        _ => Error::Write(source),
    };
    for &(off, len) in &map {
        file.seek(SeekFrom::Start(off)).map_err(Error::Write)?;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            data.read_exact(&mut buf[..want]).map_err(io)?;
            file.write_all(&buf[..want]).map_err(Error::Write)?;
            left -= want as u64;
        }
    }
    file.set_len(sparse.real_size).map_err(Error::Write)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs<'a>(r: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        r.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()))
    }

    #[test]
    fn versions_are_told_apart() {
        assert_eq!(from_records(recs(&[("path", "x")]), b"x").unwrap(), None);
        let v1 = [
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "9"),
        ];
        assert_eq!(
            from_records(recs(&v1), b"x").unwrap(),
            Some(Sparse {
                real_size: 9,
                map: None
            })
        );
        let v01 = [("GNU.sparse.size", "9"), ("GNU.sparse.map", "0,2,5,1")];
        assert_eq!(
            from_records(recs(&v01), b"x").unwrap().unwrap().map,
            Some(vec![(0, 2), (5, 1)])
        );
        let v00 = [
            ("GNU.sparse.size", "9"),
            ("GNU.sparse.offset", "1"),
            ("GNU.sparse.numbytes", "2"),
        ];
        assert_eq!(
            from_records(recs(&v00), b"x").unwrap().unwrap().map,
            Some(vec![(1, 2)])
        );
        for bad in [
            &[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")][..],
            &[("GNU.sparse.map", "0,2,5")],
            &[("GNU.sparse.size", "9"), ("GNU.sparse.map", "0,x")],
            &[("GNU.sparse.map", "0,2")],
        ] {
            assert!(from_records(recs(bad), b"x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn maps_are_validated() {
        assert!(validate(&[(0, 2), (4, 1)], 5, b"x").is_ok());
        assert!(validate(&[(4, 1), (0, 2)], 5, b"x").is_err());
        assert!(validate(&[(0, 3), (2, 1)], 5, b"x").is_err());
        assert!(validate(&[(4, 2)], 5, b"x").is_err());
        assert!(validate(&[(u64::MAX, 2)], u64::MAX, b"x").is_err());
    }

    #[test]
    fn a_1_0_map_is_read_from_the_data() {
        let mut data = b"2\n0\n3\n10\n1\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcd");
        let mut r = &data[..];
        let (map, used) = read_map(&mut r, 1 << 20, b"x").unwrap();
        assert_eq!((map, used), (vec![(0, 3), (10, 1)], 512));
        let mut huge = b"999999999999\n".to_vec();
        huge.resize(512, 0);
        assert!(read_map(&mut &huge[..], 4096, b"x").is_err());
        assert!(
            read_map(&mut &b"1\n"[..], 4096, b"x").is_err(),
            "short block"
        );
    }
}
