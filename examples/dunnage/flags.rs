//! The docker CLI's flag syntax (pflag's: `-it`, `-eK=V`, `--name=x`,
//! `--name x`, `--` ends the flags; for `run`, `create` and `exec` the
//! flags end at the first positional argument) and docker's value
//! syntaxes (`32m`, `--cpus 0.5`, `nofile=1024:2048`, `-v SRC:DST:ro`).
//! Bad values are refused here, before anything is created, with the
//! docker CLI's wording.

/// One flag a verb accepts: its short letter (if any), long name, and
/// whether it takes a value.
pub struct Flag {
    pub short: Option<char>,
    pub long: &'static str,
    pub valued: bool,
}

/// A flag table entry: `f('m', "memory", true)`; `'\0'` for no short form.
pub const fn f(short: char, long: &'static str, valued: bool) -> Flag {
    Flag {
        short: if short == '\0' { None } else { Some(short) },
        long,
        valued,
    }
}

/// A usage error: the docker CLI prints it with "See 'docker VERB --help'."
/// and exits 125 (run, create, exec) or 1.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Parsed flags: (long name, value) in order, and the positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    pub flags: Vec<(&'static str, String)>,
    pub rest: Vec<String>,
}

impl Parsed {
    /// Whether a boolean flag is set (`--rm`, `--rm=true`; `--rm=false` is not).
    pub fn on(&self, long: &str) -> bool {
        self.flags
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .is_some_and(|(_, v)| v != "false")
    }

    /// The last value of a flag.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable flag.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(l, _)| *l == long)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parse `args` against `table`. With `stop_at_positional` the first
/// positional argument and everything after it are positional (the image
/// and its command).
pub fn parse(args: &[String], table: &[Flag], stop_at_positional: bool) -> Result<Parsed, Usage> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.rest.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(flag) = table.iter().find(|f| f.long == name) else {
                return Err(Usage(format!("unknown flag: --{name}")));
            };
            let value = match (flag.valued, inline) {
                (_, Some(v)) => v,
                (false, None) => "true".to_string(),
                (true, None) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| Usage(format!("flag needs an argument: --{}", flag.long)))?;
                    i += 1;
                    v.clone()
                }
            };
            out.flags.push((flag.long, value));
        } else if a.len() > 1 && a.starts_with('-') {
            // A cluster of short flags; a valued one takes the rest of the
            // word or the next argument.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(flag) = table.iter().find(|f| f.short == Some(c)) else {
                    return Err(Usage(format!("unknown shorthand flag: '{c}' in {a}")));
                };
                if !flag.valued {
                    out.flags.push((flag.long, "true".to_string()));
                    continue;
                }
                let tail: String = chars[j..].iter().collect();
                let value = if !tail.is_empty() {
                    tail.strip_prefix('=').unwrap_or(&tail).to_string()
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| Usage(format!("flag needs an argument: '{c}' in -{c}")))?;
                    i += 1;
                    v.clone()
                };
                out.flags.push((flag.long, value));
                break;
            }
        } else {
            out.rest.push(a.clone());
            if stop_at_positional {
                out.rest.extend(args[i..].iter().cloned());
                break;
            }
        }
    }
    Ok(out)
}

/// The error of a bad flag value, worded as the docker CLI words it.
pub fn invalid(value: &str, flag: &str, why: impl std::fmt::Display) -> Usage {
    Usage(format!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {why}"
    ))
}

/// docker's `RAMInBytes` (go-units): `32m`, `1g`, `512`, `1.5GiB`, `64kb`;
/// binary multiples; case-insensitive.
pub fn ram_in_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size: '{s}'");
    let t = s.trim_end_matches(['b', 'B']);
    let t = if t.len() < s.len() {
        t.trim_end_matches(['i', 'I'])
    } else {
        t
    };
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_lowercase() {
                'k' => 10,
                'm' => 20,
                'g' => 30,
                't' => 40,
                'p' => 50,
                _ => return Err(bad()),
            };
            (&t[..t.len() - 1], 1u64 << shift)
        }
        _ => (t, 1),
    };
    let num = num.strip_suffix(' ').unwrap_or(num);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    if num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `--memory-swap`: `-1` (unlimited) or a size.
pub fn memory_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    let b = ram_in_bytes(s)?;
    i64::try_from(b).map_err(|_| format!("invalid size: '{s}'"))
}

/// `--cpus`: a decimal number of CPUs (docker's NanoCPUs), > 0.
pub fn cpus(s: &str) -> Result<f64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v: f64 = s.parse().map_err(|_| bad())?;
    Ok(v)
}

/// The names `--ulimit` accepts (go-units' table).
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]` (-1 is unlimited): (name, soft, hard).
pub fn ulimit(s: &str) -> Result<(String, u64, u64), String> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a, b),
        None => (vals, vals),
    };
    let num = |v: &str| -> Result<u64, String> {
        match v.parse::<i64>() {
            Ok(-1) => Ok(u64::MAX),
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => Err(format!("invalid ulimit argument: {s}")),
        }
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok((name.to_string(), soft, hard))
}

/// `-v SRC:DST[:MODE]`: a bind mount of an absolute host path.
#[derive(Debug, PartialEq, Eq)]
pub struct Volume {
    pub source: String,
    pub destination: String,
    pub readonly: bool,
}

/// Parse `-v`. Named and anonymous volumes (no host path) are refused:
/// this CLI has no volume store.
pub fn volume(s: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => {
            return Err(format!(
                "anonymous volume {dst:?}: volumes are not supported, bind a host path (SRC:DST)"
            ));
        }
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(format!("invalid volume specification: '{s}'")),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(format!("invalid volume specification: '{s}'"));
    }
    if !dst.starts_with('/') {
        return Err(format!(
            "invalid volume specification: '{s}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        ));
    }
    if !src.starts_with('/') {
        return Err(format!(
            "named volume {src:?}: volumes are not supported, bind a host path (an absolute SRC)"
        ));
    }
    // docker's modes: at most one of each kind. The SELinux labels (z, Z)
    // and the consistency words change nothing on a host without SELinux
    // (as with docker there); the propagation docker gives binds by
    // default (rprivate) is the only one this CLI makes.
    let mut readonly = false;
    let mut seen = [0u8; 4];
    for m in mode.split(',').filter(|_| !mode.is_empty()) {
        let kind = match m {
            "ro" | "rw" => 0,
            "z" | "Z" => 1,
            "private" | "rprivate" => 2,
            "consistent" | "cached" | "delegated" => 3,
            _ => return Err(format!("invalid mode: {mode}")),
        };
        seen[kind] += 1;
        if seen[kind] > 1 {
            return Err(format!("invalid mode: {mode}"));
        }
        readonly |= m == "ro";
    }
    Ok(Volume {
        source: src.to_string(),
        destination: dst.to_string(),
        readonly,
    })
}

/// `--tmpfs DST[:OPTIONS]`.
pub fn tmpfs(s: &str) -> Result<(String, String), String> {
    let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
    if !dst.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{dst}' mount path must be absolute"
        ));
    }
    Ok((dst.to_string(), opts.to_string()))
}

/// `-e KEY=VALUE`, or `-e KEY` (taken from this environment; left out
/// when unset, as docker does).
pub fn env(s: &str) -> Result<Option<String>, String> {
    let key = s.split_once('=').map_or(s, |(k, _)| k);
    if key.is_empty() {
        return Err(format!("invalid environment variable: {s}"));
    }
    if s.contains('=') {
        return Ok(Some(s.to_string()));
    }
    Ok(std::env::var(s).ok().map(|v| format!("{s}={v}")))
}

/// `--env-file PATH`: its `KEY=VALUE` lines (the value kept as written,
/// quotes and all) and the values of this environment for lines that
/// name a variable alone (left out when it is unset); blank lines and
/// `#` comments skipped, leading blanks and a UTF-8 BOM dropped; as
/// docker's `opts.ParseEnvFile`.
pub fn env_file(path: &str) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let e = std::io::Error::from(e.kind());
        format!("open {path}: {}", go_io_words(&e))
    })?;
    env_file_text(path, &bytes, |k| std::env::var(k).ok())
}

/// Go's words for the common I/O errors (`no such file or directory`).
fn go_io_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// [`env_file`] of the file's bytes; `lookup` reads the environment.
pub fn env_file_text(
    path: &str,
    bytes: &[u8],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut out = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| {
            format!(
                "env file {path} contains invalid utf8 bytes at line {}: {:?}",
                n + 1,
                String::from_utf8_lossy(raw)
            )
        })?;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.contains(char::is_whitespace) {
            return Err(format!(
                "poorly formatted environment: variable '{key}' contains whitespaces"
            ));
        }
        if key.is_empty() {
            return Err(format!(
                "poorly formatted environment: no variable name on line '{line}'"
            ));
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `--sysctl NAME=VALUE`.
pub fn sysctl(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("sysctl '{s}' is not allowed")),
    }
}

/// A `--security-opt`.
#[derive(Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    SeccompUnconfined,
    SeccompFile(String),
    NoNewPrivileges(bool),
}

/// Parse `--security-opt` (`seccomp=unconfined|FILE`, `seccomp:...`,
/// `no-new-privileges[=true|false]`).
pub fn security_opt(s: &str) -> Result<SecurityOpt, String> {
    if s == "no-new-privileges" {
        return Ok(SecurityOpt::NoNewPrivileges(true));
    }
    let (k, v) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| format!("Invalid --security-opt: {s:?}"))?;
    match (k, v) {
        ("seccomp", "unconfined") => Ok(SecurityOpt::SeccompUnconfined),
        ("seccomp", "") => Err(format!("Invalid --security-opt: {s:?}")),
        ("seccomp", file) => Ok(SecurityOpt::SeccompFile(file.to_string())),
        ("no-new-privileges", "true") => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", "false") => Ok(SecurityOpt::NoNewPrivileges(false)),
        ("no-new-privileges", _) => Err(format!("invalid --security-opt 2: {s:?}")),
        _ => Err(format!("Invalid --security-opt: {s:?}")),
    }
}

/// `--network`: `none`, `host`, `container:NAME`, or a bridge network
/// (`bridge`: the default network `dunnage0`).
#[derive(Debug, PartialEq, Eq)]
pub enum NetworkOpt {
    None,
    Host,
    Container(String),
    Bridge(String),
}

/// Parse `--network`; whether a bridge network exists is checked when the
/// container is made.
pub fn network(s: &str) -> Result<NetworkOpt, String> {
    match s {
        "none" => Ok(NetworkOpt::None),
        "host" => Ok(NetworkOpt::Host),
        "" => Err("network  not found".to_string()),
        _ => match s.strip_prefix("container:") {
            Some(c) if !c.is_empty() => Ok(NetworkOpt::Container(c.to_string())),
            Some(_) => Err(format!("network {s} not found")),
            None => Ok(NetworkOpt::Bridge(
                crate::network::network_name(s).to_string(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const RUN: [Flag; 6] = [
        f('i', "interactive", false),
        f('t', "tty", false),
        f('d', "detach", false),
        f('e', "env", true),
        f('m', "memory", true),
        f('\0', "rm", false),
    ];

    #[test]
    fn short_clusters_long_forms_and_the_first_positional_end_the_flags() {
        let p = parse(
            &strs(&[
                "-it",
                "--rm",
                "-eA=1",
                "-e",
                "B=2",
                "--memory=32m",
                "img",
                "sh",
                "-c",
                "--rm",
            ]),
            &RUN,
            true,
        )
        .unwrap();
        assert!(p.on("interactive") && p.on("tty") && p.on("rm") && !p.on("detach"));
        assert_eq!(p.all("env"), ["A=1", "B=2"]);
        assert_eq!(p.get("memory"), Some("32m"));
        assert_eq!(p.rest, ["img", "sh", "-c", "--rm"]);
        let p = parse(&strs(&["-dm", "1g", "--rm=false", "x"]), &RUN, true).unwrap();
        assert!(p.on("detach") && !p.on("rm"));
        assert_eq!(p.get("memory"), Some("1g"));
        let p = parse(&strs(&["a", "-d", "b"]), &RUN, false).unwrap();
        assert_eq!(p.rest, ["a", "b"]);
        assert!(p.on("detach"));
    }

    #[test]
    fn unknown_and_valueless_flags_are_refused() {
        assert_eq!(
            parse(&strs(&["--nope"]), &RUN, true).unwrap_err().0,
            "unknown flag: --nope"
        );
        assert_eq!(
            parse(&strs(&["-x"]), &RUN, true).unwrap_err().0,
            "unknown shorthand flag: 'x' in -x"
        );
        assert_eq!(
            parse(&strs(&["--memory"]), &RUN, true).unwrap_err().0,
            "flag needs an argument: --memory"
        );
        assert!(parse(&strs(&["-e"]), &RUN, true).is_err());
    }

    #[test]
    fn memory_sizes_as_docker_reads_them() {
        assert_eq!(ram_in_bytes("32m"), Ok(32 << 20));
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1G"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("512"), Ok(512));
        assert_eq!(ram_in_bytes("64kb"), Ok(64 << 10));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("4 MB"), Ok(4 << 20));
        for bad in [
            "",
            "m",
            "32x",
            "-1",
            "1.2.3m",
            ".5m",
            "32mm",
            "1e3",
            "99999999999p",
        ] {
            assert_eq!(
                ram_in_bytes(bad),
                Err(format!("invalid size: '{bad}'")),
                "{bad}"
            );
        }
        assert_eq!(memory_swap("-1"), Ok(-1));
        assert_eq!(memory_swap("64m"), Ok(64 << 20));
        assert!(memory_swap("-2").is_err());
    }

    #[test]
    fn cpus_are_decimal() {
        assert_eq!(cpus("0.5"), Ok(0.5));
        assert_eq!(cpus("2"), Ok(2.0));
        assert_eq!(
            cpus("half"),
            Err("failed to parse half as a rational number".to_string())
        );
        assert!(cpus("-1").is_err());
        assert!(cpus("").is_err());
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            ulimit("nofile=1024:2048"),
            Ok(("nofile".into(), 1024, 2048))
        );
        assert_eq!(ulimit("nproc=10"), Ok(("nproc".into(), 10, 10)));
        assert_eq!(ulimit("core=-1"), Ok(("core".into(), u64::MAX, u64::MAX)));
        assert_eq!(ulimit("bogus=1"), Err("invalid ulimit type: bogus".into()));
        assert_eq!(
            ulimit("nofile=2048:1024"),
            Err("ulimit soft limit must be less than or equal to hard limit: 2048 > 1024".into())
        );
        for bad in ["nofile", "nofile=", "nofile=a", "nofile=1:b", "nofile=-5"] {
            assert!(ulimit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_files() {
        let env = |k: &str| (k == "SET").then(|| "from env".to_string());
        let text = b"\xef\xbb\xbfBOM=1\r\n  LEAD=2\n\n# c\nQ=\"quoted\" v\nSET\nUNSET\nE=\n";
        assert_eq!(
            env_file_text("f", text, env).unwrap(),
            ["BOM=1", "LEAD=2", "Q=\"quoted\" v", "SET=from env", "E="]
        );
        for (bad, why) in [
            (&b"A B=1"[..], "variable 'A B' contains whitespaces"),
            (b"=1", "no variable name on line '=1'"),
            (b"A=\xff", "invalid utf8 bytes at line 1"),
            (b"ok=1\nA\tB", "contains whitespaces"),
        ] {
            let e = env_file_text("f", bad, env).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(
            env_file("/nonexistent/dunnage-env").unwrap_err(),
            "open /nonexistent/dunnage-env: no such file or directory"
        );
    }

    #[test]
    fn volumes() {
        assert_eq!(
            volume("/src:/dst:ro"),
            Ok(Volume {
                source: "/src".into(),
                destination: "/dst".into(),
                readonly: true
            })
        );
        assert!(!volume("/src:/dst").unwrap().readonly);
        assert!(!volume("/src:/dst:rw").unwrap().readonly);
        assert!(volume("/data").unwrap_err().contains("anonymous volume"));
        assert!(volume("name:/data").unwrap_err().contains("named volume"));
        assert!(volume("/a:rel").unwrap_err().contains("must be absolute"));
        assert!(volume("/a:/b:xx").unwrap_err().contains("invalid mode"));
        assert!(volume("/a:/b:ro,rw").unwrap_err().contains("invalid mode"));
        assert!(volume("/a:/b:z,Z").unwrap_err().contains("invalid mode"));
        assert!(volume("/a:/b:ro,").unwrap_err().contains("invalid mode"));
        assert!(volume("/a:/b:ro,z,rprivate,cached").unwrap().readonly);
        assert!(!volume("/a:/b:Z").unwrap().readonly);
        assert!(volume("/a:/b:ro:x").is_err());
        assert!(volume(":/b").is_err());
    }

    #[test]
    fn other_values() {
        assert_eq!(tmpfs("/run:size=1m"), Ok(("/run".into(), "size=1m".into())));
        assert_eq!(tmpfs("/run"), Ok(("/run".into(), String::new())));
        assert!(tmpfs("run").is_err());
        assert_eq!(env("A=b=c"), Ok(Some("A=b=c".into())));
        assert_eq!(env("DUNNAGE_SURELY_UNSET_VAR"), Ok(None));
        assert!(env("=x").is_err());
        assert_eq!(
            sysctl("net.ipv4.ip_forward=1"),
            Ok(("net.ipv4.ip_forward".into(), "1".into()))
        );
        assert!(sysctl("x").is_err());
        assert_eq!(
            security_opt("seccomp=unconfined"),
            Ok(SecurityOpt::SeccompUnconfined)
        );
        assert_eq!(
            security_opt("seccomp:unconfined"),
            Ok(SecurityOpt::SeccompUnconfined)
        );
        assert_eq!(
            security_opt("seccomp=/p.json"),
            Ok(SecurityOpt::SeccompFile("/p.json".into()))
        );
        assert_eq!(
            security_opt("no-new-privileges"),
            Ok(SecurityOpt::NoNewPrivileges(true))
        );
        assert_eq!(
            security_opt("no-new-privileges=false"),
            Ok(SecurityOpt::NoNewPrivileges(false))
        );
        assert!(security_opt("apparmor=x").is_err());
        assert!(security_opt("seccomp=").is_err());
        assert_eq!(network("none"), Ok(NetworkOpt::None));
        assert_eq!(network("host"), Ok(NetworkOpt::Host));
        assert_eq!(
            network("container:web"),
            Ok(NetworkOpt::Container("web".into()))
        );
        assert_eq!(network("bridge"), Ok(NetworkOpt::Bridge("dunnage0".into())));
        assert_eq!(network("web"), Ok(NetworkOpt::Bridge("web".into())));
        assert!(network("").is_err());
        assert!(network("container:").is_err());
    }
}
