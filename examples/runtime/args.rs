//! runc's command-line shape: global flags, a verb, the verb's flags
//! (`--flag value`, `--flag=value`, `-f value`, boolean switches) and
//! positional arguments, in any order until `--`.

use std::collections::BTreeMap;

/// Parsed flags and positionals of one level (global or a verb's).
#[derive(Debug, Default)]
pub struct Parsed {
    /// Flags given, by their long name (last one wins; `env`-like flags
    /// that repeat keep every value in `multi`).
    pub flags: BTreeMap<String, String>,
    /// Repeatable flags (`-e`, `--cap`), every value in order.
    pub multi: BTreeMap<String, Vec<String>>,
    /// Positional arguments.
    pub rest: Vec<String>,
}

impl Parsed {
    /// The value of flag `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    /// Whether switch `name` was given (and not `=false`).
    pub fn on(&self, name: &str) -> bool {
        self.flags.get(name).is_some_and(|v| v != "false")
    }

    /// Every value of a repeatable flag.
    pub fn all(&self, name: &str) -> &[String] {
        self.multi.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A flag a verb knows: its long name, short alias, whether it takes a
/// value, whether it repeats.
pub struct Flag {
    /// Long name without dashes.
    pub long: &'static str,
    /// One-letter alias, if any.
    pub short: Option<char>,
    /// Takes a value.
    pub value: bool,
    /// Repeats (values collected).
    pub repeat: bool,
}

/// A flag taking a value.
pub const fn val(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        value: true,
        repeat: false,
    }
}

/// A boolean switch.
pub const fn sw(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        value: false,
        repeat: false,
    }
}

/// A repeatable flag taking a value.
pub const fn rep(long: &'static str, short: Option<char>) -> Flag {
    Flag {
        long,
        short,
        value: true,
        repeat: true,
    }
}

/// Parse `args` against `known`. With `stop_at_first`, the first
/// positional ends parsing (global flags stop at the verb); the rest is
/// returned untouched in `rest`.
pub fn parse(args: &[String], known: &[Flag], stop_at_first: bool) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            out.rest.extend(args[i..].iter().cloned());
            break;
        }
        let (name, inline) = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            // runc (urfave/cli) also takes single-dash long names.
            let (n, v) = match short.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (short, None),
            };
            let long = if n.chars().count() == 1 {
                known
                    .iter()
                    .find(|f| f.short.map(String::from).as_deref() == Some(n))
                    .map(|f| f.long.to_string())
                    .unwrap_or_else(|| n.to_string())
            } else {
                n.to_string()
            };
            (long, v)
        } else {
            out.rest.push(a.clone());
            if stop_at_first {
                out.rest.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        };
        let flag = known
            .iter()
            .find(|f| f.long == name)
            .ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = if flag.value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            inline.unwrap_or_else(|| "true".into())
        };
        if flag.repeat {
            out.multi
                .entry(name.clone())
                .or_default()
                .push(value.clone());
        }
        out.flags.insert(name, value);
    }
    Ok(out)
}
