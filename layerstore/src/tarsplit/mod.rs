//! tar-split: the metadata that lets a layer's original tar be rebuilt byte
//! for byte from its extracted directory (`tar-split.json.gz` in the layerdb).
//!
//! The format is Go tar-split's: gzip of newline-delimited JSON objects with
//! the fields `type` (1 = file, 2 = segment), `name` / `name_raw`, `size`,
//! `payload` and `position`, in that order. Segments carry raw tar bytes;
//! file entries carry the CRC-64/ISO of the member's content.
//!
//! # The bytes after the archive: Docker's rule
//!
//! Docker (20.10, `docker load`; tar-split's `NewInputTarStream`) records
//! what follows the end-of-archive blocks as it reads it: after Go's tar
//! reader reports the end, it calls `Read` with a 1 MiB buffer (its padding
//! chunk) until end of file, and writes **one segment per read**, the last,
//! empty read included. The layer file is read through a 32 KiB
//! `bufio.Reader`, so the reads return:
//!
//! 1. what the 32 KiB buffer still holds past the archive's end, if
//!    anything (one short read);
//! 2. then 1 MiB at a time straight from the file (a request at least as
//!    large as the buffer bypasses it), the last one short;
//! 3. then 0 bytes at end of file: an empty segment, always.
//!
//! The buffer always ends on a 32 KiB boundary of the stream: it is filled
//! once at the start (the compression sniffing `Peek`), and Go's tar
//! reader never asks for more than 32 KiB at a time (header blocks,
//! padding, extension headers and the end blocks in small reads served
//! from the buffer and refilled 32 KiB at a time; file contents through
//! `io.Copy`'s 32 KiB buffer, a full request that finds the buffer empty
//! reading 32 KiB straight from the file). So the first read after the
//! archive returns the bytes up to the next 32 KiB boundary (or to the end
//! of the stream), then come 1 MiB reads, then the empty one. Measured
//! cases: GNU tar (10240-byte records) ends `..., 1534, 4096, 0`; python's
//! tarfile `..., 1056, 2560, 0`; GNU tar followed by 3 MiB of zeros
//! `..., 24576, 1048576, 1048576, 1028096, 0`; a tar without padding ends
//! with the single empty segment. A tar without end-of-archive blocks ends
//! with the last member's padding segment and the empty one. PAX headers
//! of 40 000, 70 000 and 200 000 bytes keep the boundary too (tested
//! against dockerd).
//!
//! This holds for uncompressed layers, which is what `docker save` archives
//! carry. For compressed ones Docker's reads come from its decompressor (or
//! an `unpigz` pipe) and their sizes are not reproducible; the same rule is
//! applied to the decompressed stream.
//!
//! # Sparse files: where we differ on purpose
//!
//! For a GNU sparse member in PAX form Docker writes a file entry with the
//! expanded size and the CRC of the expanded content, and no segment for
//! the sparse map or the fragments: its own `docker save` of such a layer
//! then fails ("could not verify layer data"). We record the whole member
//! (header, map, fragments) verbatim in segments, with no file entry, so
//! the layer reassembles to its diffID, with our reassembler and with
//! Docker's (segments are copied as they are).

mod crc64;
mod entry;
mod reassemble;
mod recorder;

pub use entry::Entry;
pub use reassemble::Reassembler;
pub(crate) use recorder::Recorder;

use std::io::{BufRead, Read};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::digest::DiffId;

use crate::error::Error;

/// Read all entries of a (decompressed) tar-split stream.
///
/// ```
/// use dunnage_layerstore::tarsplit::{read_entries, Entry};
/// let json = "{\"type\":2,\"payload\":\"AAAA\",\"position\":0}\n";
/// assert_eq!(read_entries(json.as_bytes()).unwrap(), vec![Entry::Segment(vec![0, 0, 0])]);
/// ```
pub fn read_entries<R: BufRead>(input: R) -> Result<Vec<Entry>, Error> {
    let mut reader = entry::EntryReader::new(input);
    let mut out = Vec::new();
    while let Some(e) = reader.next_entry().map_err(|e| entry_error(e, "-"))? {
        out.push(e);
    }
    Ok(out)
}

/// Record the tar-split of a whole tar stream: the JSON lines (not gzipped).
///
/// ```
/// use dunnage_layerstore::tarsplit::{read_entries, record, Entry};
/// let json = record(&[0u8; 1024][..]).unwrap();
/// assert_eq!(
///     read_entries(&json[..]).unwrap(),
///     vec![Entry::Segment(vec![0; 1024]), Entry::Segment(vec![])], // end-of-archive, then what follows it
/// );
/// ```
pub fn record<R: Read>(mut tar: R) -> Result<Vec<u8>, Error> {
    let mut rec = Recorder::new(Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Stream(e)),
        };
        rec.observe(&buf[..n])?;
    }
    rec.finish()
}

/// Rebuild a tar from its tar-split JSON lines (already decompressed) and the
/// directory `root` it was extracted into. With `expected`, reading fails at
/// the end unless the sha256 of the whole stream equals it.
pub fn reassemble<R: BufRead>(
    tar_split: R,
    root: &Path,
    expected: Option<DiffId>,
) -> Result<Reassembler<R>, Error> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "open",
        path: root.to_owned(),
        source: e.into(),
    })?;
    Ok(Reassembler::new(
        tar_split,
        fd,
        root.display().to_string(),
        expected,
    ))
}

pub(crate) fn entry_error(e: entry::EntryError, layer: &str) -> Error {
    match e {
        entry::EntryError::Io(e) => Error::Stream(e),
        entry::EntryError::Duplicate(n) => {
            Error::DuplicatePath(String::from_utf8_lossy(&n).into_owned())
        }
        entry::EntryError::Malformed(why) => Error::TarSplit {
            layer: layer.to_owned(),
            why,
        },
    }
}
