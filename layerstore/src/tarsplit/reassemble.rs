//! Rebuilding a layer's original tar, byte for byte, from its tar-split and
//! its diff directory.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use super::crc64::Crc64;
use super::entry::{Entry, EntryError, EntryReader};
use crate::digest::{DiffId, Digest};
use crate::error::Error;

enum Current {
    None,
    Segment {
        data: Vec<u8>,
        at: usize,
    },
    File {
        file: File,
        name: Vec<u8>,
        remaining: u64,
        crc: Crc64,
        want: Option<[u8; 8]>,
    },
    Done,
}

/// A reader of the original tar stream of a layer.
///
/// Segments are written verbatim; file contents are read from the diff
/// directory with every name resolved inside it (`openat2` with
/// `RESOLVE_IN_ROOT`, the last component not followed), checked against the
/// recorded size and CRC-64. At the end the sha256 of everything produced must
/// equal the expected diffID. Failures surface as `io::Error`s wrapping the
/// crate's [`Error`](crate::Error) (see [`Error::from_io`](crate::Error::from_io)).
pub struct Reassembler<R: BufRead> {
    entries: EntryReader<R>,
    root: OwnedFd,
    layer: String,
    expected: Option<DiffId>,
    hasher: Sha256,
    current: Current,
}

impl<R: BufRead> Reassembler<R> {
    /// Reassemble from the tar-split JSON lines in `tar_split` (already
    /// decompressed) and the directory `root`; `layer` names the layer in
    /// errors.
    pub(crate) fn new(
        tar_split: R,
        root: OwnedFd,
        layer: String,
        expected: Option<DiffId>,
    ) -> Reassembler<R> {
        Reassembler {
            entries: EntryReader::new(tar_split),
            root,
            layer,
            expected,
            hasher: Sha256::new(),
            current: Current::None,
        }
    }

    /// Name the layer in error messages.
    pub(crate) fn set_layer_name(&mut self, name: String) {
        self.layer = name;
    }

    fn err(&self, why: impl Into<String>) -> io::Error {
        io::Error::other(Error::TarSplit {
            layer: self.layer.clone(),
            why: why.into(),
        })
    }

    fn open_member(&self, name: &[u8]) -> io::Result<File> {
        // A regular file may be named `x/` in the tar: it was extracted as
        // the file `x` (as Docker extracts it).
        let mut trimmed = name;
        while let [rest @ .., b'/'] = trimmed
            && !rest.is_empty()
        {
            trimmed = rest;
        }
        let path = std::ffi::OsStr::from_bytes(trimmed);
        let fd = rustix::fs::openat2(
            &self.root,
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        )
        .map_err(|e| self.err(format!("open {:?}: {e}", String::from_utf8_lossy(name))))?;
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(self.err(format!(
                "{:?} is not a regular file",
                String::from_utf8_lossy(name)
            )));
        }
        Ok(file)
    }

    /// Move to the next entry; `false` at the end.
    fn advance(&mut self) -> io::Result<bool> {
        let entry = self.entries.next_entry().map_err(|e| match e {
            EntryError::Io(e) => e,
            EntryError::Malformed(why) => self.err(why),
            EntryError::Duplicate(n) => self.err(format!("duplicate {n:?}")),
        })?;
        self.current = match entry {
            None => {
                self.finish()?;
                Current::Done
            }
            Some(Entry::Segment(data)) => Current::Segment { data, at: 0 },
            Some(Entry::File { size: 0, .. }) => Current::None,
            Some(Entry::File { name, size, crc }) => Current::File {
                file: self.open_member(&name)?,
                name,
                remaining: size,
                crc: Crc64::default(),
                want: crc,
            },
        };
        Ok(!matches!(self.current, Current::Done))
    }

    fn finish(&mut self) -> io::Result<()> {
        let actual = DiffId(Digest::from_bytes(
            std::mem::take(&mut self.hasher).finalize().into(),
        ));
        match self.expected {
            Some(expected) if expected != actual => Err(io::Error::other(Error::TarSplit {
                layer: self.layer.clone(),
                why: format!("reassembled stream hashes to {actual}, not the diffID {expected}"),
            })),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for Reassembler<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.current {
                Current::Done => return Ok(0),
                Current::None => {
                    self.advance()?;
                    continue;
                }
                Current::Segment { data, at } => {
                    let n = (data.len() - *at).min(buf.len());
                    buf[..n].copy_from_slice(&data[*at..*at + n]);
                    *at += n;
                    if *at == data.len() {
                        self.current = Current::None;
                    }
                    n
                }
                Current::File {
                    file,
                    name,
                    remaining,
                    crc,
                    want,
                } => {
                    let limit = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let n = file.read(&mut buf[..limit])?;
                    if n == 0 {
                        let why = format!(
                            "{:?} is shorter than recorded",
                            String::from_utf8_lossy(name)
                        );
                        return Err(self.err(why));
                    }
                    crc.update(&buf[..n]);
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        if Some(crc.sum()) != *want {
                            let why = format!(
                                "{:?} fails its CRC-64 check",
                                String::from_utf8_lossy(name)
                            );
                            return Err(self.err(why));
                        }
                        self.current = Current::None;
                    }
                    n
                }
            };
            if n > 0 {
                self.hasher.update(&buf[..n]);
                return Ok(n);
            }
        }
    }
}
