//! Docker's json-file log (`<id>-json.log`): one
//! `{"log":"...","stream":"stdout|stderr","time":"RFC 3339 ns"}` entry per
//! line of output, a line longer than 16 KiB split as docker splits it.
//! Written by the monitor of a detached container and by a foreground
//! `run` (which copies its container's output itself).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::container::error::{Result, io_err};
use crate::container::state;

/// The longest log entry; a longer line is split, as docker's json-file
/// driver does.
pub const MAX_LINE: usize = 16 * 1024;

/// A json-file log opened for appending, shared by the threads that copy
/// a container's streams into it (a clone shares the file).
#[derive(Clone, Debug)]
pub struct JsonLog {
    file: Arc<Mutex<File>>,
}

impl JsonLog {
    /// Open (or make, mode 0600) the log at `path` for appending: the
    /// entries of an earlier run stay.
    pub fn open(path: &Path) -> Result<JsonLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err("open", path))?;
        Ok(JsonLog {
            file: Arc::new(Mutex::new(f)),
        })
    }

    /// Append one entry: `text` (one line or a piece of one) of `stream`.
    /// A write error is ignored (as docker's driver, the output goes on).
    pub fn entry(&self, stream: &str, text: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(text),
            "stream": stream,
            "time": state::now(),
        });
        let mut line = entry.to_string();
        line.push('\n');
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Copy `from` until its end (or a read error, such as a pty's EIO
    /// when its last holder has gone) into the log as `stream` entries,
    /// one per line. Each piece read is handed to `sink` at once, before
    /// its line is complete (a prompt shows before its newline).
    pub fn copy(&self, mut from: impl Read, stream: &str, mut sink: impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            sink(&buf[..n]);
            pending.extend_from_slice(&buf[..n]);
            loop {
                let cut = match pending.iter().position(|&b| b == b'\n') {
                    Some(at) if at < MAX_LINE => at + 1,
                    _ if pending.len() >= MAX_LINE => MAX_LINE,
                    _ => break,
                };
                self.entry(stream, &pending[..cut]);
                pending.drain(..cut);
            }
        }
        if !pending.is_empty() {
            self.entry(stream, &pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_appended() {
        let tmp = dunnage_testsupport::TempDir::new("jsonlog").unwrap();
        let path = tmp.join("x-json.log");
        std::fs::write(&path, b"").unwrap();
        let log = JsonLog::open(&path).unwrap();
        let mut seen = Vec::new();
        let long = vec![b'a'; MAX_LINE + 3];
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\n\xffpartial");
        log.copy(&input[..], "stderr", |b| seen.extend_from_slice(b));
        assert_eq!(seen, input);
        let again = JsonLog::open(&path).unwrap();
        again.entry("stdout", b"later\n");
        let lines = crate::container::read_json_log(&path).unwrap();
        let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts[0], "one\r\n");
        assert_eq!(texts[1], "two\n");
        assert_eq!(texts[2].len(), MAX_LINE);
        assert_eq!(texts[3], "aaa\n");
        assert_eq!(texts[4], "\u{fffd}partial");
        assert_eq!(lines[5], ("stdout".to_string(), "later\n".to_string()));
        assert!(lines[..5].iter().all(|(s, _)| s == "stderr"));
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let tmp = dunnage_testsupport::TempDir::new("jsonlog").unwrap();
        let target = tmp.join("target");
        std::fs::write(&target, b"").unwrap();
        let link = tmp.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(JsonLog::open(&link).is_err());
    }
}
