//! The tar-split recorder: a passive observer of a raw (decompressed) tar
//! stream that writes its tar-split entries as the bytes go by.
//!
//! It parses the 512-byte headers itself, with PAX `x`/`g` records (`path`,
//! `size`) and GNU `L`/`K` long names, and cuts segments where Go's tar-split
//! cuts them: the padding of one member, the meta headers and the header of
//! the next member form one segment; the end-of-archive blocks form one;
//! bytes after them follow in the segments Docker's reads make of them (see
//! [`docker_buffered`] and the [module docs](super)).

use std::io::Write;

use super::crc64::Crc64;
use super::entry::{Entry, EntryError, EntryWriter};
use crate::error::Error;

const BLOCK: usize = 512;
/// Largest PAX or GNU long-name payload accepted (Go's limit too).
const MAX_META: u64 = 1 << 20;
/// Largest run of raw bytes held before a member's header is complete.
const MAX_PENDING: usize = 4 << 20;
/// Trailing bytes after the end-of-archive are recorded in chunks of at most
/// this size (Docker's padding chunk).
const TRAILING_CHUNK: usize = 1 << 20;
/// The size of the buffered reader Docker reads a layer through.
const DOCKER_BUF: u64 = 32 * 1024;

/// Bytes Docker's 32 KiB buffered reader holds when the archive ends at
/// `end`: up to the next 32 KiB boundary of the stream (clipped later to
/// the stream's end).
///
/// `docker load` reads a layer file through a 32 KiB `bufio.Reader`. Go's
/// tar reader asks it for at most 32 KiB at a time (header blocks, padding,
/// extension headers, the end blocks; file contents through `io.Copy`'s
/// 32 KiB buffer). A request smaller than the buffer finding it empty
/// refills it with 32 KiB; a 32 KiB request finding it empty reads the
/// file directly, 32 KiB too. Either way the reader's position in the file
/// advances in 32 KiB steps from the start, so the buffer always ends on a
/// 32 KiB boundary (PAX headers of up to 200 000 bytes checked against
/// dockerd).
fn docker_buffered(end: u64) -> u64 {
    (DOCKER_BUF - end % DOCKER_BUF) % DOCKER_BUF
}

enum State {
    Header,
    SecondZero,
    Meta {
        kind: u8,
        remaining: u64,
        pad: u64,
    },
    Content {
        remaining: u64,
        pad: u64,
    },
    /// The data of a GNU sparse member: kept verbatim in segments.
    Raw {
        remaining: u64,
        pad: u64,
    },
    Padding {
        remaining: u64,
    },
    Trailing,
}

/// Overrides collected from PAX and GNU meta headers for the next member.
#[derive(Default)]
struct Overrides {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// The member is a GNU sparse file (PAX `GNU.sparse.*` records).
    sparse: bool,
}

/// Records the tar-split of a tar stream fed through [`Recorder::observe`].
pub(crate) struct Recorder<W: Write> {
    writer: EntryWriter<W>,
    state: State,
    block: [u8; BLOCK],
    have: usize,
    pending: Vec<u8>,
    meta: Vec<u8>,
    overrides: Overrides,
    offset: u64,
    crc: Crc64,
    name: Vec<u8>,
    size: u64,
    /// Size of the first trailing segment (what Docker's buffer held when
    /// the archive ended); `None` once it is written.
    first_trailing: Option<usize>,
}

impl<W: Write> Recorder<W> {
    /// A recorder writing JSON lines to `out`.
    pub(crate) fn new(out: W) -> Recorder<W> {
        Recorder {
            writer: EntryWriter::new(out),
            state: State::Header,
            block: [0; BLOCK],
            have: 0,
            pending: Vec::new(),
            meta: Vec::new(),
            overrides: Overrides::default(),
            offset: 0,
            crc: Crc64::default(),
            name: Vec::new(),
            size: 0,
            first_trailing: None,
        }
    }

    fn tar_err(&self, why: impl Into<String>) -> Error {
        Error::Tar {
            offset: self.offset,
            why: why.into(),
        }
    }

    fn emit(&mut self, entry: &Entry) -> Result<(), Error> {
        self.writer.write(entry).map_err(|e| match e {
            EntryError::Duplicate(name) => {
                Error::DuplicatePath(String::from_utf8_lossy(&name).into_owned())
            }
            EntryError::Io(e) => Error::Stream(e),
            EntryError::Malformed(why) => Error::Tar {
                offset: self.offset,
                why,
            },
        })
    }

    fn flush_pending(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            let seg = Entry::Segment(std::mem::take(&mut self.pending));
            self.emit(&seg)?;
        }
        Ok(())
    }

    fn hold(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_PENDING && !matches!(self.state, State::Trailing) {
            return Err(self.tar_err("more than 4 MiB of headers before a member"));
        }
        Ok(())
    }

    /// Feed the next bytes of the stream.
    pub(crate) fn observe(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = match self.state {
                State::Header | State::SecondZero => {
                    let n = (BLOCK - self.have).min(data.len());
                    self.block[self.have..self.have + n].copy_from_slice(&data[..n]);
                    self.have += n;
                    n
                }
                State::Meta { remaining, .. }
                | State::Content { remaining, .. }
                | State::Raw { remaining, .. }
                | State::Padding { remaining } => usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len()),
                State::Trailing => data.len(),
            };
            let (now, rest) = data.split_at(n);
            data = rest;
            self.offset += n as u64;
            match &mut self.state {
                State::Header | State::SecondZero => {
                    if self.have == BLOCK {
                        self.have = 0;
                        self.header_block()?;
                    }
                }
                State::Meta { remaining, .. } => {
                    *remaining -= n as u64;
                    self.meta.extend_from_slice(now);
                    self.hold(now)?;
                    self.meta_step()?;
                }
                State::Content { remaining, pad } => {
                    *remaining -= n as u64;
                    self.crc.update(now);
                    if *remaining == 0 {
                        let pad = *pad;
                        self.file_done(pad)?;
                    }
                }
                State::Raw { remaining, pad } => {
                    *remaining -= n as u64;
                    let pad = *pad;
                    let done = *remaining == 0;
                    for chunk in now.chunks(TRAILING_CHUNK) {
                        if self.pending.len() + chunk.len() > TRAILING_CHUNK {
                            self.flush_pending()?;
                        }
                        self.pending.extend_from_slice(chunk);
                    }
                    if done {
                        self.state = if pad == 0 {
                            State::Header
                        } else {
                            State::Padding { remaining: pad }
                        };
                    }
                }
                State::Padding { remaining } => {
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                    self.hold(now)?;
                }
                State::Trailing => {
                    let mut now = now;
                    if let Some(first) = self.first_trailing {
                        let take = (first - self.pending.len()).min(now.len());
                        self.pending.extend_from_slice(&now[..take]);
                        now = &now[take..];
                        if self.pending.len() < first {
                            continue;
                        }
                        self.first_trailing = None;
                        self.flush_pending()?;
                    }
                    for chunk in now.chunks(TRAILING_CHUNK) {
                        let room = TRAILING_CHUNK - self.pending.len();
                        let (a, b) = chunk.split_at(room.min(chunk.len()));
                        self.pending.extend_from_slice(a);
                        if self.pending.len() == TRAILING_CHUNK {
                            self.flush_pending()?;
                        }
                        self.pending.extend_from_slice(b);
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: flush the last segment and return the writer.
    pub(crate) fn finish(mut self) -> Result<W, Error> {
        let clean_end = match self.state {
            State::Header | State::SecondZero => self.have == 0,
            State::Trailing => true,
            _ => false,
        };
        if !clean_end {
            return Err(self.tar_err("stream ends inside a tar member (truncated)"));
        }
        if self.overrides.long_name.is_some()
            || self.overrides.pax_path.is_some()
            || self.overrides.pax_size.is_some()
            || self.overrides.sparse
        {
            return Err(self.tar_err("stream ends after an extended header"));
        }
        // The last short read after the archive, then Docker's read that
        // met the end of the stream: always an empty segment.
        self.flush_pending()?;
        self.emit(&Entry::Segment(Vec::new()))?;
        Ok(self.writer.into_inner())
    }

    fn header_block(&mut self) -> Result<(), Error> {
        let block = self.block;
        let zero = block.iter().all(|&b| b == 0);
        if matches!(self.state, State::SecondZero) {
            if !zero {
                return Err(self.tar_err("a zero block followed by a non-zero block"));
            }
            self.hold(&block)?;
            self.flush_pending()?;
            self.state = State::Trailing;
            let buffered = docker_buffered(self.offset);
            self.first_trailing = usize::try_from(buffered).ok().filter(|&b| b > 0);
            return Ok(());
        }
        self.hold(&block)?;
        if zero {
            self.state = State::SecondZero;
            return Ok(());
        }
        if !checksum_ok(&block) {
            return Err(self.tar_err("bad header checksum"));
        }
        let kind = block[156];
        let header_size =
            parse_numeric(&block[124..136]).ok_or_else(|| self.tar_err("bad size field"))?;
        match kind {
            b'x' | b'g' | b'L' | b'K' => {
                if header_size > MAX_META {
                    return Err(self.tar_err(format!("extended header of {header_size} bytes")));
                }
                self.meta.clear();
                self.state = State::Meta {
                    kind,
                    remaining: header_size,
                    pad: padding(header_size),
                };
                self.meta_step()
            }
            b'S' => Err(self.tar_err("GNU sparse members cannot be recorded")),
            _ => {
                let ov = std::mem::take(&mut self.overrides);
                self.name = ov
                    .long_name
                    .or(ov.pax_path)
                    .unwrap_or_else(|| header_name(&block));
                let size = ov.pax_size.unwrap_or(header_size);
                // Go's reader gives header-only types no content, whatever the size field says.
                self.size =
                    if matches!(kind, b'1'..=b'6') || (kind == 0 && self.name.ends_with(b"/")) {
                        0
                    } else {
                        size
                    };
                if ov.sparse && self.size > 0 {
                    // Docker records a sparse file's expanded content, which
                    // cannot rebuild its tar: keep the map and fragments
                    // verbatim instead (no file entry).
                    self.name.clear();
                    self.state = State::Raw {
                        remaining: self.size,
                        pad: padding(self.size),
                    };
                    return Ok(());
                }
                self.flush_pending()?;
                if self.size == 0 {
                    let name = std::mem::take(&mut self.name);
                    self.emit(&Entry::File {
                        name,
                        size: 0,
                        crc: None,
                    })?;
                    self.state = State::Header;
                } else {
                    self.crc = Crc64::default();
                    self.state = State::Content {
                        remaining: self.size,
                        pad: padding(self.size),
                    };
                }
                Ok(())
            }
        }
    }

    /// Act on a meta header once its content is complete.
    fn meta_step(&mut self) -> Result<(), Error> {
        let State::Meta {
            kind,
            remaining: 0,
            pad,
        } = self.state
        else {
            return Ok(());
        };
        let content = std::mem::take(&mut self.meta);
        match kind {
            b'L' => self.overrides.long_name = Some(cstr(&content).to_vec()),
            b'K' => {} // long link target: no bearing on tar-split
            b'x' => self.pax_records(&content, false)?,
            _ => {
                // A global header is a member of its own in Go's reader: its
                // header and records form a segment, then a file entry.
                self.pax_records(&content, true)?;
                let ov = std::mem::take(&mut self.overrides);
                let name = ov.pax_path.unwrap_or_else(|| header_name(&self.block));
                self.flush_pending()?;
                self.emit(&Entry::File {
                    name,
                    size: 0,
                    crc: None,
                })?;
            }
        }
        self.state = if pad == 0 {
            State::Header
        } else {
            State::Padding { remaining: pad }
        };
        Ok(())
    }

    fn pax_records(&mut self, mut content: &[u8], global: bool) -> Result<(), Error> {
        while !content.is_empty() {
            let bad = || Error::Tar {
                offset: self.offset,
                why: "malformed PAX record".into(),
            };
            let sp = content.iter().position(|&b| b == b' ').ok_or_else(bad)?;
            let len: usize = std::str::from_utf8(&content[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&l| l > sp + 1 && l <= content.len())
                .ok_or_else(bad)?;
            let record = &content[sp + 1..len];
            content = &content[len..];
            let record = record.strip_suffix(b"\n").ok_or_else(bad)?;
            let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => self.overrides.pax_path = Some(value.to_vec()),
                b"size" if !global => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?;
                    self.overrides.pax_size = Some(size);
                }
                k if k.starts_with(b"GNU.sparse.") && !global => self.overrides.sparse = true,
                _ => {}
            }
        }
        Ok(())
    }

    fn file_done(&mut self, pad: u64) -> Result<(), Error> {
        let entry = Entry::File {
            name: std::mem::take(&mut self.name),
            size: self.size,
            crc: Some(self.crc.sum()),
        };
        self.emit(&entry)?;
        self.state = if pad == 0 {
            State::Header
        } else {
            State::Padding { remaining: pad }
        };
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Bytes up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// The member name of a header block, with the ustar prefix joined.
fn header_name(block: &[u8; BLOCK]) -> Vec<u8> {
    let name = cstr(&block[0..100]);
    let ustar = &block[257..263] == b"ustar\0" && &block[263..265] == b"00";
    let prefix = match ustar {
        true if &block[508..512] == b"tar\0" => cstr(&block[345..476]), // star
        true => cstr(&block[345..500]),
        false => &[][..],
    };
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// Whether the header's checksum field matches its bytes (unsigned or signed sum).
fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let Some(want) = parse_numeric(&block[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed)
}

/// A numeric header field: octal (space/NUL padded) or GNU base-256. Negative
/// or overflowing values are `None`.
fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .map_or(&[][..], |start| {
            let end = field
                .iter()
                .rposition(|&b| b != b' ' && b != 0)
                .map_or(start, |e| e + 1);
            &field[start..end]
        });
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(text).ok()?, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaying a 32 KiB `bufio.Reader` (filled by a `Peek` at the start)
    /// through random sequences of Go's requests (small reads, and
    /// `io.Copy` runs of 32 KiB requests) always leaves its buffer ending
    /// on a 32 KiB boundary: what `docker_buffered` assumes.
    /// One request of `want` bytes at `at` to a 32 KiB `bufio.Reader`
    /// whose data ends at `up` (a regular file: reads return in full).
    fn request(at: &mut u64, up: &mut u64, want: u64) {
        if *up > *at {
            *at += (*up - *at).min(want);
        } else if want >= DOCKER_BUF {
            *at += want;
            *up = *at;
        } else {
            *up = *at + DOCKER_BUF;
            *at += want;
        }
    }

    #[test]
    fn docker_reads_keep_the_buffer_on_32_kib_boundaries() {
        let mut x = 88172645463325252u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2_000 {
            let (mut at, mut up) = (0u64, DOCKER_BUF);
            for _ in 0..50 {
                let r = next();
                if r % 2 == 0 {
                    // A header, padding, a PAX record.
                    request(&mut at, &mut up, 1 + (r >> 8) % 1024);
                } else {
                    let end = at + (r >> 8) % 200_000; // a file's content
                    while at < end {
                        let want = (end - at).min(DOCKER_BUF);
                        request(&mut at, &mut up, want);
                    }
                }
            }
            assert_eq!(up % DOCKER_BUF, 0);
            assert_eq!(up - at, docker_buffered(at));
        }
    }

    #[test]
    fn numeric_fields_parse_octal_and_base256() {
        assert_eq!(parse_numeric(b"00000000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"   12 \0"), Some(0o12));
        assert_eq!(parse_numeric(b"\0\0\0"), Some(0));
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
        assert_eq!(parse_numeric(&[0xff, 0xff]), None);
        assert_eq!(parse_numeric(b"0009"), None);
    }
}
