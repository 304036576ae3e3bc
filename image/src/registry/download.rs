//! One blob of a pull into a scratch file: verified as it streams,
//! resumed with `Range` after a cut (also by a later pull, from the named
//! partial file a killed one left), only a whole blob matching its digest
//! handed on.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use dunnage_layerstore::Digest;
use sha2::{Digest as _, Sha256};

use super::client::{Body, Client};
use super::manifest::Descriptor;
use crate::error::{Error, Result};
use crate::store::ImageStore;

/// Downloads tried for one blob: the first and resumptions after a cut.
const ATTEMPTS: u32 = 4;

/// Download blob `d` into a scratch file of `tmp`, verified. A named
/// `pull-<hex>.partial` keeps the bytes of a cut download for the next
/// try (of this pull or a later one); when another pull holds that file,
/// an anonymous one is used. Returns the file (at its start) and the name
/// to remove once registered.
pub(crate) fn download(
    store: &ImageStore,
    client: &Client,
    tmp: &std::path::Path,
    d: &Descriptor,
    cancel: &AtomicBool,
    tick: &dyn Fn(u64),
) -> Result<(File, Option<PathBuf>)> {
    let url = client.url(&format!("blobs/{}", d.digest));
    let path = tmp.join(format!("pull-{}.partial", d.digest.hex()));
    let io_err = |op, e| Error::io(op, &path, e);
    let named = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| io_err("open", e))?;
    let (mut file, name) = match dunnage_base::lock::try_lock_exclusive(&named) {
        Ok(true) => (named, Some(path.clone())),
        _ => {
            drop(named);
            (store.temp_file()?, None)
        }
    };
    // The bytes kept from an earlier try are hashed again: only a whole
    // blob that matches its digest is ever used.
    let mut have = file.metadata().map_err(|e| io_err("stat", e))?.len();
    if have > d.size {
        file.set_len(0).map_err(|e| io_err("truncate", e))?;
        have = 0;
    }
    let mut hasher = Sha256::new();
    file.seek(SeekFrom::Start(0))
        .map_err(|e| io_err("seek", e))?;
    io::copy(&mut (&mut file).take(have), &mut HashWriter(&mut hasher))
        .map_err(|e| io_err("read", e))?;
    let mut resumed = have > 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A whole blob kept from before is only checked.
        let got = if have == d.size {
            Ok(())
        } else {
            fetch_into(
                client,
                &url,
                d,
                &mut file,
                &mut hasher,
                &mut have,
                cancel,
                tick,
            )
        };
        match got {
            Ok(()) => {
                let actual = Digest::from_bytes(std::mem::take(&mut hasher).finalize().into());
                if actual == d.digest {
                    file.seek(SeekFrom::Start(0))
                        .map_err(|e| io_err("seek", e))?;
                    return Ok((file, name));
                }
                file.set_len(0).map_err(|e| io_err("truncate", e))?;
                have = 0;
                hasher = Sha256::new();
                if !resumed || attempt >= ATTEMPTS {
                    drop(file);
                    if let Some(n) = &name {
                        let _ = std::fs::remove_file(n);
                    }
                    return Err(Error::DigestMismatch {
                        what: url,
                        expected: d.digest.to_string(),
                        actual: actual.to_string(),
                    });
                }
                // Reused bytes were wrong: once more from the start.
                resumed = false;
            }
            Err(e @ Error::Transport { .. })
                if attempt < ATTEMPTS && !cancel.load(Ordering::Relaxed) =>
            {
                let _ = e;
                resumed |= have > 0;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One GET of the blob from byte `have` on, appended to `file`.
#[allow(clippy::too_many_arguments)]
fn fetch_into(
    client: &Client,
    url: &str,
    d: &Descriptor,
    file: &mut File,
    hasher: &mut Sha256,
    have: &mut u64,
    cancel: &AtomicBool,
    tick: &dyn Fn(u64),
) -> Result<()> {
    let range = format!("bytes={have}-");
    let headers: Vec<(&str, &str)> = if *have > 0 {
        vec![("Range", &range)]
    } else {
        vec![]
    };
    let resp = client.send(
        "get blob",
        "GET",
        url,
        &headers,
        Body::None,
        Some(client.blob_deadline(d.size - *have)),
    )?;
    if resp.status() == 416 && *have > 0 {
        // The registry will not resume from there: start again.
        file.set_len(0).map_err(|e| Error::io("truncate", url, e))?;
        *have = 0;
        *hasher = Sha256::new();
        return Err(Error::Transport {
            op: "get blob",
            url: url.to_string(),
            reason: "range not satisfiable".to_string(),
        });
    }
    let resp = client.expect("get blob", url, resp, &[200, 206])?;
    let resumes = resp.status() == 206
        && resp
            .header("Content-Range")
            .is_some_and(|r| r.starts_with(&format!("bytes {have}-")));
    if !resumes {
        file.set_len(0).map_err(|e| Error::io("truncate", url, e))?;
        *have = 0;
        *hasher = Sha256::new();
    }
    file.seek(SeekFrom::Start(*have))
        .map_err(|e| Error::io("seek", url, e))?;
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 256 << 10];
    let cut = |reason: String| Error::Transport {
        op: "get blob",
        url: url.to_string(),
        reason,
    };
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(cut("cancelled".to_string()));
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cut(e.to_string())),
        };
        if *have + n as u64 > d.size {
            return Err(Error::DigestMismatch {
                what: url.to_string(),
                expected: format!("{} ({} bytes)", d.digest, d.size),
                actual: format!("more than {} bytes", d.size),
            });
        }
        file.write_all(&buf[..n])
            .map_err(|e| Error::io("write", url, e))?;
        hasher.update(&buf[..n]);
        *have += n as u64;
        tick(*have);
    }
    if *have < d.size {
        return Err(cut(format!("truncated blob: {} of {} bytes", have, d.size)));
    }
    Ok(())
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
