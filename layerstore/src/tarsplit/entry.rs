//! tar-split entries and their newline-delimited JSON form, field for field
//! as Go's tar-split `storage.Entry` is encoded.

use std::collections::HashSet;
use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

/// One record of a tar-split stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Raw bytes of the tar written verbatim: headers, padding, end-of-archive
    /// blocks, trailing bytes.
    Segment(Vec<u8>),
    /// A member whose content lives in the layer's directory.
    File {
        /// The member's name as the tar header (PAX/GNU long names applied) gives it.
        name: Vec<u8>,
        /// The content length.
        size: u64,
        /// CRC-64/ISO of the content as 8 big-endian bytes; `None` when `size` is 0.
        crc: Option<[u8; 8]>,
    },
}

/// Why a tar-split stream could not be written or read.
#[derive(Debug)]
pub(crate) enum EntryError {
    Io(std::io::Error),
    Duplicate(Vec<u8>),
    Malformed(String),
}

impl From<std::io::Error> for EntryError {
    fn from(e: std::io::Error) -> EntryError {
        EntryError::Io(e)
    }
}

/// Writes entries as JSON lines, numbering positions and refusing a second
/// file entry with the same cleaned name (as tar-split's packer does).
pub(crate) struct EntryWriter<W: Write> {
    out: W,
    position: u64,
    /// The first 128 bits of the sha256 of each cleaned file name: 16 bytes
    /// a file rather than the name and its allocation, so that memory grows
    /// slowly with the number of files (a collision, below 2^-64 at 2^32 files,
    /// would refuse a layer, never accept a bad one).
    seen: HashSet<u128>,
    line: Vec<u8>,
}

fn name_key(cleaned: &[u8]) -> u128 {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(cleaned);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    u128::from_le_bytes(k)
}

impl<W: Write> EntryWriter<W> {
    pub(crate) fn new(out: W) -> EntryWriter<W> {
        EntryWriter {
            out,
            position: 0,
            seen: HashSet::new(),
            line: Vec::with_capacity(256),
        }
    }

    /// Append `entry`.
    pub(crate) fn write(&mut self, entry: &Entry) -> Result<(), EntryError> {
        let line = &mut self.line;
        line.clear();
        match entry {
            Entry::Segment(payload) => {
                // Go's tar-split writes even an empty segment payload as "".
                line.extend_from_slice(b"{\"type\":2,\"payload\":\"");
                line.extend_from_slice(BASE64.encode(payload).as_bytes());
                line.push(b'"');
            }
            Entry::File { name, size, crc } => {
                if !self.seen.insert(name_key(&clean(name))) {
                    return Err(EntryError::Duplicate(name.clone()));
                }
                line.extend_from_slice(b"{\"type\":1,");
                match std::str::from_utf8(name) {
                    Ok("") => {}
                    Ok(text) => {
                        line.extend_from_slice(b"\"name\":");
                        push_go_json_string(line, text);
                        line.push(b',');
                    }
                    Err(_) => {
                        line.extend_from_slice(b"\"name_raw\":\"");
                        line.extend_from_slice(BASE64.encode(name).as_bytes());
                        line.extend_from_slice(b"\",");
                    }
                }
                if *size != 0 {
                    line.extend_from_slice(format!("\"size\":{size},").as_bytes());
                }
                match crc {
                    Some(c) => {
                        line.extend_from_slice(b"\"payload\":\"");
                        line.extend_from_slice(BASE64.encode(c).as_bytes());
                        line.push(b'"');
                    }
                    None => line.extend_from_slice(b"\"payload\":null"),
                }
            }
        }
        line.extend_from_slice(format!(",\"position\":{}}}\n", self.position).as_bytes());
        self.out.write_all(line)?;
        self.position += 1;
        Ok(())
    }

    /// The underlying writer.
    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escapes).
fn push_go_json_string(line: &mut Vec<u8>, s: &str) {
    line.push(b'"');
    for c in s.chars() {
        match c {
            '"' => line.extend_from_slice(b"\\\""),
            '\\' => line.extend_from_slice(b"\\\\"),
            '\n' => line.extend_from_slice(b"\\n"),
            '\r' => line.extend_from_slice(b"\\r"),
            '\t' => line.extend_from_slice(b"\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                line.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c if (c as u32) < 0x20 => {
                line.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                line.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    line.push(b'"');
}

/// A path cleaned lexically as Go's `filepath.Clean` does, for duplicate detection.
pub(crate) fn clean(name: &[u8]) -> Vec<u8> {
    let rooted = name.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(part);
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(name.len());
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
    #[allow(dead_code)] // read for validation only: positions are implied by order
    position: i64,
}

/// The longest JSON line accepted (a 1 MiB segment in base64 plus framing).
const MAX_LINE: u64 = 4 << 20;

/// Reads entries back from JSON lines (ours or Go tar-split's).
pub(crate) struct EntryReader<R: BufRead> {
    input: R,
    line: Vec<u8>,
}

impl<R: BufRead> EntryReader<R> {
    pub(crate) fn new(input: R) -> EntryReader<R> {
        EntryReader {
            input,
            line: Vec::new(),
        }
    }

    /// The next entry, or `None` at the end.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, EntryError> {
        loop {
            self.line.clear();
            let n =
                std::io::Read::take(&mut self.input, MAX_LINE).read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') && n as u64 == MAX_LINE {
                return Err(EntryError::Malformed("entry line longer than 4 MiB".into()));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let raw: RawEntry = serde_json::from_slice(&self.line)
                .map_err(|e| EntryError::Malformed(format!("bad JSON entry: {e}")))?;
            let payload = match raw.payload {
                Some(p) => BASE64
                    .decode(p)
                    .map_err(|e| EntryError::Malformed(format!("bad payload base64: {e}")))?,
                None => Vec::new(),
            };
            return match raw.kind {
                2 => Ok(Some(Entry::Segment(payload))),
                1 => {
                    let name = match (raw.name, raw.name_raw) {
                        (Some(n), _) if !n.is_empty() => n.into_bytes(),
                        (_, Some(r)) => BASE64.decode(r).map_err(|e| {
                            EntryError::Malformed(format!("bad name_raw base64: {e}"))
                        })?,
                        _ => Vec::new(),
                    };
                    let size = u64::try_from(raw.size.unwrap_or(0))
                        .map_err(|_| EntryError::Malformed("negative size".into()))?;
                    let crc = match payload.len() {
                        0 if size == 0 => None,
                        8 => payload.try_into().ok(),
                        n => {
                            return Err(EntryError::Malformed(format!(
                                "file entry checksum of {n} bytes, expected 8"
                            )));
                        }
                    };
                    Ok(Some(Entry::File { name, size, crc }))
                }
                k => Err(EntryError::Malformed(format!("unknown entry type {k}"))),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entries: &[Entry]) -> String {
        let mut w = EntryWriter::new(Vec::new());
        for e in entries {
            w.write(e).unwrap();
        }
        String::from_utf8(w.into_inner()).unwrap()
    }

    #[test]
    fn json_lines_have_go_field_order_and_omissions() {
        let text = written(&[
            Entry::Segment(b"abc".to_vec()),
            Entry::File {
                name: b"etc/".to_vec(),
                size: 0,
                crc: None,
            },
            Entry::File {
                name: b"a<b>&\"c".to_vec(),
                size: 3,
                crc: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            },
            Entry::File {
                name: vec![0xff, b'x'],
                size: 0,
                crc: None,
            },
        ]);
        assert_eq!(
            text,
            "{\"type\":2,\"payload\":\"YWJj\",\"position\":0}\n\
             {\"type\":1,\"name\":\"etc/\",\"payload\":null,\"position\":1}\n\
             {\"type\":1,\"name\":\"a\\u003cb\\u003e\\u0026\\\"c\",\"size\":3,\"payload\":\"AQIDBAUGBwg=\",\"position\":2}\n\
             {\"type\":1,\"name_raw\":\"/3g=\",\"payload\":null,\"position\":3}\n"
        );
    }

    #[test]
    fn entries_read_back_equal_written() {
        let entries = vec![
            Entry::Segment(vec![0; 1024]),
            Entry::File {
                name: b"usr/bin/x".to_vec(),
                size: 9,
                crc: Some([9; 8]),
            },
            Entry::File {
                name: vec![b'a', 0xfe],
                size: 0,
                crc: None,
            },
        ];
        let text = written(&entries);
        let mut r = EntryReader::new(text.as_bytes());
        let mut back = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            back.push(e);
        }
        assert_eq!(back, entries);
    }

    #[test]
    fn duplicate_cleaned_names_are_refused() {
        let mut w = EntryWriter::new(Vec::new());
        let file = |n: &[u8]| Entry::File {
            name: n.to_vec(),
            size: 0,
            crc: None,
        };
        w.write(&file(b"./a/b")).unwrap();
        assert!(matches!(
            w.write(&file(b"a//b/")),
            Err(EntryError::Duplicate(_))
        ));
        w.write(&file(b"/a/b")).unwrap(); // rooted: distinct, as in Go
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "{\"type\":3,\"position\":0}\n",
            "{\"type\":1,\"name\":\"a\",\"size\":-1,\"position\":0}\n",
            "{\"type\":1,\"name\":\"a\",\"size\":2,\"payload\":\"AQ==\",\"position\":0}\n",
            "{\"type\":2,\"payload\":\"!!\",\"position\":0}\n",
            "not json\n",
        ] {
            let mut r = EntryReader::new(bad.as_bytes());
            assert!(
                matches!(r.next_entry(), Err(EntryError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn clean_matches_go_filepath_clean() {
        for (input, want) in [
            ("a/b", "a/b"),
            ("./a/", "a"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("", "."),
            ("//x//y/", "/x/y"),
        ] {
            assert_eq!(clean(input.as_bytes()), want.as_bytes(), "{input}");
        }
    }
}
