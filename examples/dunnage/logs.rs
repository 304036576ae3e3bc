//! `logs [-f] [-n|--tail N] [-t]`: a container's json-file log, stdout
//! entries to stdout and stderr entries to stderr, as docker prints it.

use std::io::{BufRead, Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

use dunnage::container::ContainerStore;

use crate::flags::Parsed;
use crate::messages;
use crate::verbs::{Fail, lookup};

/// How the entries are shown.
#[derive(Clone, Copy)]
struct Show {
    timestamps: bool,
}

/// Print the log's whole entries from `from` bytes on; returns where it
/// ended (a partial last line is read again next time).
fn print_log(path: &Path, from: u64, show: Show) -> Result<u64, Fail> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(from);
    };
    f.seek(std::io::SeekFrom::Start(from))?;
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for line in text[..whole].lines() {
        let line = line?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| Fail {
            code: 1,
            msg: format!("Error: {}: malformed log line: {e}", path.display()),
        })?;
        let text = v["log"].as_str().unwrap_or_default();
        let w: &mut dyn Write = if v["stream"] == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if show.timestamps {
            let _ = write!(w, "{} ", v["time"].as_str().unwrap_or_default());
        }
        let _ = w.write_all(text.as_bytes());
    }
    let _ = out.flush();
    Ok(from + whole as u64)
}

/// The byte offset where the last `n` whole entries of the log begin.
fn tail_offset(path: &Path, n: usize) -> Result<u64, Fail> {
    let Ok(text) = std::fs::read(path) else {
        return Ok(0);
    };
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if n == 0 {
        return Ok(whole as u64);
    }
    // The start of entry k is just after the newline ending entry k-1.
    let ends: Vec<usize> = text[..whole]
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    Ok(match ends.len().checked_sub(n + 1) {
        Some(k) => ends[k] as u64,
        None => 0,
    })
}

/// docker's `--tail`: a count; `all`, a negative count or anything
/// that is not a number (docker's CLI ignores it) for all.
fn tail(p: &Parsed) -> Option<usize> {
    p.get("tail")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok())
}

/// `dunnage logs`.
pub fn logs(store: &ContainerStore, p: &Parsed) -> Result<u8, Fail> {
    if p.rest.len() != 1 {
        return Err(messages::arg_count(
            "logs",
            "\"dunnage logs\" requires exactly 1 argument",
        ));
    }
    let key = &p.rest[0];
    let show = Show {
        timestamps: p.on("timestamps"),
    };
    let h = lookup(store, "logs", key)?;
    let path = h.log_path();
    let start = match tail(p) {
        Some(n) => tail_offset(&path, n)?,
        None => 0,
    };
    let mut at = print_log(&path, start, show)?;
    if !p.on("follow") {
        return Ok(0);
    }
    loop {
        let exited = h
            .status()
            .map_err(|e| messages::verb_error("logs", key, e))?
            == dunnage::container::Status::Exited;
        at = print_log(&path, at, show)?;
        if exited {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait for the monitor to record the exit; it has then also logged
    // the last output (its log threads may still have been writing when
    // the process was seen gone).
    if let Ok(mut h) = store.get(key) {
        let _ = h.wait();
    }
    print_log(&path, at, show)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offsets_count_whole_entries() {
        let tmp = dunnage_testsupport::TempDir::new("tail").unwrap();
        let dir = tmp.join("log");
        std::fs::write(&dir, b"a\nbb\nccc\npartial").unwrap();
        assert_eq!(tail_offset(&dir, 0).unwrap(), 9);
        assert_eq!(tail_offset(&dir, 1).unwrap(), 5);
        assert_eq!(tail_offset(&dir, 2).unwrap(), 2);
        assert_eq!(tail_offset(&dir, 3).unwrap(), 0);
        assert_eq!(tail_offset(&dir, 10).unwrap(), 0);
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(tail_offset(&dir, 1).unwrap(), 0);
    }
}
