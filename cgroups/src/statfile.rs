//! The parsers [`Cgroup::stats`](crate::Cgroup::stats) uses, on a stat
//! file's text: for a caller that reads the files itself (another
//! process's cgroup through a saved copy, a test) and for the fuzz
//! targets. `path` only names the file in errors; nothing is read.
//!
//! Every parser returns [`Error::Parse`](crate::Error::Parse) with the
//! path and line on text the kernel would not write; none panics.

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::stats::{IoDeviceStats, Pressure};

/// `key value` lines: `memory.stat`, `cpu.stat`, `memory.events`,
/// `pids.events`, v1 `memory.oom_control`; in file order.
pub fn flat_keyed(path: &Path, text: &str) -> Result<Vec<(String, u64)>> {
    crate::file::parse_flat_keyed(path, text)
}

/// A file of one unsigned number: `pids.current`, `memory.current`, v1
/// `memory.usage_in_bytes`, `cpuacct.usage`.
pub fn number(path: &Path, text: &str) -> Result<u64> {
    crate::file::parse_u64(path, text)
}

/// A number or `max` (`None`): `pids.max`, `memory.max`.
pub fn number_or_max(path: &Path, text: &str) -> Result<Option<u64>> {
    crate::file::parse_max(path, text)
}

/// v2 `io.stat`: `maj:min rbytes=.. wbytes=.. rios=.. wios=..` lines, one
/// entry per line.
pub fn io_stat(path: &Path, text: &str) -> Result<Vec<IoDeviceStats>> {
    crate::stats::parse_io_stat(path, text)
}

/// v1 `blkio.throttle.io_service_bytes` (`bytes`) or `io_serviced`
/// (operations): `maj:min Read|Write|Sync|Async|Discard|Total N` lines and
/// a closing `Total N`; one entry per device.
pub fn blkio(path: &Path, text: &str, bytes: bool) -> Result<Vec<IoDeviceStats>> {
    let mut list = Vec::new();
    crate::stats::parse_blkio(path, text, &mut list, bytes)?;
    Ok(list)
}

/// A pressure (PSI) file: `cpu.pressure`, `memory.pressure`,
/// `io.pressure`.
pub fn pressure(path: &Path, text: &str) -> Result<Pressure> {
    crate::stats::parse_pressure(path, text)
}

/// v1 `cpuacct.usage_percpu`: nanoseconds per CPU.
pub fn per_cpu(path: &Path, text: &str) -> Result<Vec<Duration>> {
    crate::stats::parse_per_cpu(path, text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Error;

    fn p() -> &'static Path {
        Path::new("f")
    }

    #[test]
    fn well_formed() {
        assert_eq!(
            flat_keyed(p(), "anon 4096\nfile 0\n").unwrap(),
            [("anon".to_string(), 4096), ("file".to_string(), 0)]
        );
        assert_eq!(number(p(), "17\n").unwrap(), 17);
        assert_eq!(number_or_max(p(), "max\n").unwrap(), None);
        assert_eq!(number_or_max(p(), "5\n").unwrap(), Some(5));
        let io = io_stat(p(), "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0\n").unwrap();
        assert_eq!((io[0].major, io[0].read_bytes, io[0].write_ops), (8, 1, 4));
        let b = blkio(
            p(),
            "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
            true,
        )
        .unwrap();
        assert_eq!((b.len(), b[0].read_bytes, b[0].write_bytes), (1, 10, 20));
        let psi = pressure(
            p(),
            "some avg10=0.00 avg60=1.50 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(psi.some.total, Duration::from_micros(12));
        assert!(psi.full.is_some());
        assert_eq!(per_cpu(p(), "1 2 \n").unwrap().len(), 2);
    }

    /// Hostile text: typed errors, never a panic.
    #[test]
    fn malformed_is_a_parse_error() {
        let parse_err = |r: Result<()>| assert!(matches!(r, Err(Error::Parse { .. })), "{r:?}");
        for bad in [
            "a",
            "a b",
            "a 1 2",
            "a -1",
            "a 18446744073709551616",
            "\u{0} x",
        ] {
            parse_err(flat_keyed(p(), bad).map(drop));
        }
        for bad in ["", "-1", "max", "1 2", "0x10"] {
            parse_err(number(p(), bad).map(drop));
        }
        parse_err(number_or_max(p(), "maximum").map(drop));
        for bad in [
            "8 rbytes=1",
            "8:x",
            ":",
            "8:0 rbytes",
            "8:0 rbytes=-1",
            "99999999999:0",
        ] {
            parse_err(io_stat(p(), bad).map(drop));
        }
        for bad in ["8:0 Read", "8:0 Read x", "x Read 1", "8:0 Read 1 2"] {
            parse_err(blkio(p(), bad, false).map(drop));
        }
        for bad in [
            "",
            "full avg10=0",
            "some avg10",
            "some avg10=x",
            "other a=1",
            "some total=-1",
        ] {
            parse_err(pressure(p(), bad).map(drop));
        }
        parse_err(per_cpu(p(), "1 x").map(drop));
    }
}
