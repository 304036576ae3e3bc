//! The docker CLI's output for containers: the `ps` columns (quoted,
//! truncated command; `Up 3 seconds`, `Exited (0) 2 minutes ago`), the
//! `stats` columns (binary sizes for memory, `0.00%`), and tables laid
//! out like Go's tabwriter as docker sets it up.

use std::time::SystemTime;

use dunnage::image::time::{human_since, human_size, parse_rfc3339};

/// Lay out rows like Go's tabwriter as the docker CLI sets it up
/// (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: a column is its widest
/// cell plus 3 spaces, and at least 10 wide); trailing spaces trimmed.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    table_min(header, rows, 10)
}

/// [`table`] with columns at least `min` wide (`docker top` sets up its
/// tabwriter with 20).
pub fn table_min(header: &[&str], rows: &[Vec<String>], min: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for w in &mut widths {
        *w = (*w + 3).max(min) - 3;
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i < last {
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Docker's duration words without "ago" (`Up 5 seconds`).
fn duration_words(since: SystemTime, now: SystemTime) -> String {
    let s = human_since(since, now);
    s.strip_suffix(" ago").unwrap_or(&s).to_string()
}

/// `docker ps`'s COMMAND: the program and its arguments, those with a
/// space in single quotes (as the daemon joins them), cut to 20
/// characters with an ellipsis (unless `--no-trunc`), then quoted as Go's
/// `strconv.Quote` quotes.
pub fn ps_command(argv: &[String], no_trunc: bool) -> String {
    let mut words = argv.iter();
    let mut cmd = words.next().cloned().unwrap_or_default();
    for a in words {
        cmd.push(' ');
        if a.contains(' ') {
            cmd.push_str(&format!("'{a}'"));
        } else {
            cmd.push_str(a);
        }
    }
    let cmd = if !no_trunc && cmd.chars().count() > 20 {
        format!("{}…", cmd.chars().take(19).collect::<String>())
    } else {
        cmd
    };
    go_quote(&cmd)
}

/// Go's `strconv.Quote`: double quotes, `\"` and `\\` escaped, control
/// characters as `\n`, `\t`, `\xNN` or `\u00NN`; other characters kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `docker ps`'s STATUS.
pub fn ps_status(
    status: &str,
    started: Option<&str>,
    finished: Option<&str>,
    exit_code: Option<i32>,
    now: SystemTime,
) -> String {
    let t = |s: Option<&str>| s.and_then(parse_rfc3339);
    match status {
        "running" | "paused" => {
            let up = t(started).map_or_else(String::new, |s| duration_words(s, now));
            let paused = if status == "paused" { " (Paused)" } else { "" };
            format!("Up {up}{paused}")
        }
        "exited" => {
            let code = exit_code.map_or_else(|| "255".to_string(), |c| c.to_string());
            match t(finished) {
                Some(f) => format!("Exited ({code}) {}", human_since(f, now)),
                None => format!("Exited ({code})"),
            }
        }
        _ => "Created".to_string(),
    }
}

/// Docker's `units.BytesSize`: binary units, four significant digits
/// (`1.5MiB`, `7.629GiB`).
pub fn bytes_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g4(v), UNITS[i])
}

/// Go's `%.4g` for the values `bytes_size` prints (0 <= v < 1024).
fn go_g4(v: f64) -> String {
    let digits = if v < 10.0 {
        3
    } else if v < 100.0 {
        2
    } else if v < 1000.0 {
        1
    } else {
        0
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One `docker stats --no-stream` row's numbers.
pub struct StatsRow<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub cpu_percent: f64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub io_read: u64,
    pub io_write: u64,
    pub pids: u64,
}

/// The `docker stats` header.
pub const STATS_HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// The cells of a `docker stats` row (no network: `0B / 0B`).
pub fn stats_cells(r: &StatsRow<'_>) -> Vec<String> {
    let mem_pct = if r.mem_limit == 0 {
        0.0
    } else {
        r.mem_usage as f64 * 100.0 / r.mem_limit as f64
    };
    vec![
        r.id.to_string(),
        r.name.to_string(),
        format!("{:.2}%", r.cpu_percent),
        format!("{} / {}", bytes_size(r.mem_usage), bytes_size(r.mem_limit)),
        format!("{mem_pct:.2}%"),
        "0B / 0B".to_string(),
        format!("{} / {}", human_size(r.io_read), human_size(r.io_write)),
        r.pids.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tables_are_laid_out_like_tabwriter() {
        let t = table(
            &["CONTAINER ID", "NAMES"],
            &[vec!["0123456789ab".into(), "x".into()]],
        );
        assert_eq!(t, "CONTAINER ID   NAMES\n0123456789ab   x\n");
        let t = table(&["A", "B"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "A         B\n1         2\n");
        let t = table_min(&["PID", "CMD"], &[vec!["1".into(), "sleep 1".into()]], 20);
        assert_eq!(
            t,
            format!("PID{}CMD\n1{}sleep 1\n", " ".repeat(17), " ".repeat(19))
        );
    }

    #[test]
    fn ps_columns() {
        let argv: Vec<String> = ["sh", "-c", "sleep 1000; echo done"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ps_command(&argv, false), "\"sh -c 'sleep 1000; …\"");
        assert_eq!(ps_command(&argv, true), "\"sh -c 'sleep 1000; echo done'\"");
        assert_eq!(ps_command(&["true".into()], false), "\"true\"");
        let argv: Vec<String> = ["echo", "a\"b", "c\\d\n"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(ps_command(&argv, true), r#""echo a\"b c\\d\n""#);
        let now = parse_rfc3339("2026-01-01T00:10:00Z").unwrap();
        let at = Some("2026-01-01T00:09:55Z");
        assert_eq!(ps_status("running", at, None, None, now), "Up 5 seconds");
        assert_eq!(
            ps_status("paused", at, None, None, now),
            "Up 5 seconds (Paused)"
        );
        assert_eq!(
            ps_status("exited", at, Some("2026-01-01T00:08:00Z"), Some(3), now),
            "Exited (3) 2 minutes ago"
        );
        assert_eq!(ps_status("created", None, None, None, now), "Created");
        let _ = Duration::ZERO;
    }

    #[test]
    fn stats_cells_use_docker_units() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(8_192_000_000), "7.629GiB");
        assert_eq!(bytes_size(123_456), "120.6KiB");
        let cells = stats_cells(&StatsRow {
            id: "0123456789ab",
            name: "web",
            cpu_percent: 1.234,
            mem_usage: 1 << 20,
            mem_limit: 64 << 20,
            io_read: 4096,
            io_write: 0,
            pids: 3,
        });
        assert_eq!(
            cells,
            [
                "0123456789ab",
                "web",
                "1.23%",
                "1MiB / 64MiB",
                "1.56%",
                "0B / 0B",
                "4.1kB / 0B",
                "3"
            ]
        );
    }
}
