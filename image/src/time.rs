//! RFC 3339 timestamps and Docker's "2 hours ago" durations, without a
//! date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Format a time as RFC 3339 UTC with nanoseconds, as Docker writes
/// `created` and `lastUpdated` (`2024-01-02T03:04:05.123456789Z`).
pub fn format_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Parse an RFC 3339 time as Go's `time.Parse(time.RFC3339, ..)` does
/// (Docker decodes `created` with it): `T` and `Z` upper case, a fraction
/// after `.` or `,`, an offset `±hh:mm` (two digits each, not range
/// checked), times before 1970 included. Anything else, fields out of
/// range and non-ASCII text included, is `None` (never a panic: stored
/// configs are read with it).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = s.get(start..i.min(start + 9))?;
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if &o[..1] == "+" { v } else { -v }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let since = Duration::new(secs.unsigned_abs(), 0);
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(since)?
    } else {
        UNIX_EPOCH.checked_sub(since)?
    };
    whole.checked_add(Duration::from_nanos(nanos.into()))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Docker's human duration for `CREATED` columns (`About an hour ago`,
/// `3 days ago`).
pub fn human_since(t: SystemTime, now: SystemTime) -> String {
    let s = now.duration_since(t).unwrap_or_default().as_secs();
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    let text = match () {
        _ if s < 1 => "Less than a second".to_string(),
        _ if s == 1 => "1 second".to_string(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".to_string(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 && s < 5400 => "About an hour".to_string(),
        _ if h < 48 => format!("{} hours", (s + 1800) / 3600),
        _ if d < 14 => format!("{d} days"),
        _ if d < 60 => format!("{} weeks", d / 7),
        _ if d < 730 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    };
    format!("{text} ago")
}

/// Docker's size text (`units.HumanSizeWithPrecision(n, 3)`): decimal
/// units, three significant digits (`1.24MB`, `0B`).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[i])
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_704_164_645, 123_456_789);
        let s = format_rfc3339(t);
        assert_eq!(s, "2024-01-02T03:04:05.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(
            parse_rfc3339("2024-01-02T04:04:05+01:00"),
            Some(UNIX_EPOCH + Duration::from_secs(1_704_164_645))
        );
        assert_eq!(parse_rfc3339("2024-01-02"), None);
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05.1x"), None);
        // Non-ASCII text where a field or an offset is sliced, out of
        // range fields: None, never a panic.
        for bad in [
            "2024-01-02T03:04:05+0\u{e9}:0",
            "2024-01-02T03:04:05\u{e9}0:00",
            "\u{e9}024-01-02T03:04:05Z",
            "2024-01-02T03:04:\u{e9}Z",
            "2024-13-02T03:04:05Z",
            "2023-02-29T03:04:05Z",
            "2024-01-02T24:04:05Z",
            "2024-01-02t03:04:05Z",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05z",
            "2024-01-02T03:04:05.Z",
            "+024-01-02T03:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T03:04:05-05:30").is_some());
        // What Go's parser (so docker) accepts too.
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59.5Z"),
            Some(UNIX_EPOCH - Duration::from_millis(500))
        );
        assert!(parse_rfc3339("0000-01-01T00:00:00Z").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05,5Z").is_some());
        assert!(parse_rfc3339("2024-01-02T03:04:05+24:00").is_some());
    }

    #[test]
    fn sizes_and_durations_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(123_400), "123kB");
        assert_eq!(human_size(10_000_000), "10MB");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            human_since(now - Duration::from_secs(7200), now),
            "2 hours ago"
        );
        assert_eq!(
            human_since(now - Duration::from_secs(3 * 86_400), now),
            "3 days ago"
        );
    }
}
