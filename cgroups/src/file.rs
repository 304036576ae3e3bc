//! Reading and writing cgroup control files, with the path in every error.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Read a whole control file.
pub(crate) fn read(path: &Path) -> Result<String> {
    dunnage_base::fs::read_unsized_string(path).map_err(|e| Error::io("read", path, e))
}

/// Read a control file that holds one value, trimmed.
pub(crate) fn read_trimmed(path: &Path) -> Result<String> {
    Ok(read(path)?.trim().to_owned())
}

/// Read a control file that holds one unsigned number.
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    parse_u64(path, &read(path)?)
}

/// Parse the text of a file that holds one unsigned number.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let s = text.trim();
    s.parse()
        .map_err(|_| Error::parse(path, 1, format!("expected a number, found {s:?}")))
}

/// Read a file that holds a number or `max` (v2) / a huge value (v1
/// "unlimited" is reported as is).
pub(crate) fn read_max(path: &Path) -> Result<Option<u64>> {
    parse_max(path, &read(path)?)
}

/// Parse the text of a file that holds a number or `max`.
pub(crate) fn parse_max(path: &Path, text: &str) -> Result<Option<u64>> {
    let s = text.trim();
    if s == "max" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Error::parse(path, 1, format!("expected a number or max, found {s:?}")))
}

/// Write `value` to a control file in one `write(2)`, as the kernel wants.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    write_to(&open_write(path)?, path, value)
}

/// Open an existing control file for writing.
pub(crate) fn open_write(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))
}

/// Write `value` in one `write(2)` to `f`, the control file `path` (an
/// open control file takes one value per write; the file offset is not
/// looked at).
pub(crate) fn write_to(mut f: &std::fs::File, path: &Path, value: &str) -> Result<()> {
    f.write_all(value.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

/// Parse `key value` lines (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn parse_flat_keyed(path: &Path, text: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse(
                path,
                i + 1,
                format!("expected `key value`, found {line:?}"),
            ));
        };
        let v = v
            .parse()
            .map_err(|_| Error::parse(path, i + 1, format!("{k}: not a number: {v:?}")))?;
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

/// Read and parse a flat-keyed file.
pub(crate) fn read_flat_keyed(path: &Path) -> Result<Vec<(String, u64)>> {
    parse_flat_keyed(path, &read(path)?)
}

/// The value of `key` in a flat-keyed file's entries, or a parse error.
pub(crate) fn key(path: &Path, entries: &[(String, u64)], key: &str) -> Result<u64> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| Error::parse(path, 0, format!("missing key {key}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_rejects_garbage() {
        let p = Path::new("x");
        assert_eq!(parse_flat_keyed(p, "a 1\nb 2\n").unwrap().len(), 2);
        assert!(parse_flat_keyed(p, "a\n").is_err());
        assert!(parse_flat_keyed(p, "a 1 2\n").is_err());
        assert!(parse_flat_keyed(p, "a -1\n").is_err());
    }
}
