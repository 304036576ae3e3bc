//! Try the overlay crate from a shell.
//!
//! ```text
//! overlay mount TARGET --lower DIR [--lower DIR]... [--upper DIR --work DIR] [-o OPTS] [--ro] [--print]
//! overlay umount TARGET
//! overlay apply DIR < layer.tar
//! overlay diff DIR [--lower DIR]... > layer.tar
//! overlay changes DIR [--lower DIR]...
//! overlay probe [DIR]
//! ```
//! The first `--lower` is the top-most layer, as in `lowerdir=`. On failure
//! the program prints one line to stderr and exits with status 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use dunnage::overlay::{self, ApplyOptions, DiffOptions, Mount, MountOptions};

const USAGE: &str = "usage: overlay mount TARGET --lower DIR [--lower DIR]... [--upper DIR --work DIR] [-o OPTS] [--ro] [--print]
       overlay umount TARGET
       overlay apply DIR < layer.tar
       overlay diff DIR [--lower DIR]... > layer.tar
       overlay changes DIR [--lower DIR]...
       overlay probe [DIR]";

fn main() {
    // Paths are bytes: arguments stay `OsString`s, never decoded.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("overlay: {e}");
        std::process::exit(1);
    }
}

/// Arguments after the subcommand: positional ones and `--flag value` pairs.
struct Parsed {
    positional: Vec<OsString>,
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    options: Option<String>,
    read_only: bool,
    print: bool,
}

fn parse(args: &[OsString]) -> Result<Parsed, String> {
    let mut p = Parsed {
        positional: Vec::new(),
        lowers: Vec::new(),
        upper: None,
        work: None,
        options: None,
        read_only: false,
        print: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let shown = a.to_string_lossy();
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{shown} needs a value"))
        };
        match a.to_str() {
            Some("--lower") => p.lowers.push(value()?.into()),
            Some("--upper") => p.upper = Some(value()?.into()),
            Some("--work") => p.work = Some(value()?.into()),
            Some("-o") => {
                let o = value()?;
                p.options =
                    Some(o.into_string().map_err(|o| {
                        format!("-o {}: options are not UTF-8", o.to_string_lossy())
                    })?);
            }
            Some("--ro") => p.read_only = true,
            Some("--print") => p.print = true,
            _ if a.as_bytes().starts_with(b"-") => {
                return Err(format!("unknown option {shown}"));
            }
            _ => p.positional.push(a.clone()),
        }
    }
    Ok(p)
}

fn one_dir(p: &Parsed, what: &str) -> Result<PathBuf, String> {
    match p.positional.as_slice() {
        [d] => Ok(PathBuf::from(d)),
        _ => Err(format!("{what} takes exactly one directory (try --help)")),
    }
}

fn run(args: &[OsString]) -> Result<(), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command (try --help)".into());
    };
    if cmd == "--help" || cmd == "-h" {
        println!("{USAGE}");
        return Ok(());
    }
    let p = parse(rest)?;
    let err = |e: overlay::Error| e.to_string();
    match cmd.to_str().unwrap_or("") {
        "mount" => {
            let target = one_dir(&p, "mount")?;
            let mut m = Mount::new(target);
            m.lowers = p.lowers.clone();
            m.read_only = p.read_only;
            match (&p.upper, &p.work) {
                (Some(u), Some(w)) => m = m.upper(u, w),
                (None, None) => {}
                _ => return Err("--upper and --work go together".into()),
            }
            if let Some(o) = &p.options {
                m.options = MountOptions::parse(o).map_err(err)?;
            }
            if p.print {
                println!("{m}");
            }
            m.mount().map_err(err)
        }
        "umount" => overlay::unmount(&one_dir(&p, "umount")?).map_err(err),
        "apply" => {
            let dir = one_dir(&p, "apply")?;
            let stdin = std::io::stdin().lock();
            let stats = overlay::apply_layer(stdin, &dir, &ApplyOptions::default()).map_err(err)?;
            eprintln!(
                "{} entries, {} bytes, {} whiteouts, {} opaque directories",
                stats.entries, stats.bytes, stats.whiteouts, stats.opaque_dirs
            );
            Ok(())
        }
        "diff" => {
            let dir = one_dir(&p, "diff")?;
            let opts = DiffOptions {
                lowers: p.lowers.clone(),
                ..Default::default()
            };
            let out = overlay::write_diff(&dir, std::io::stdout().lock(), &opts).map_err(err)?;
            let mut out = out;
            out.flush().map_err(|e| format!("writing stdout: {e}"))
        }
        "changes" => {
            let dir = one_dir(&p, "changes")?;
            for c in overlay::changes(&dir, &p.lowers).map_err(err)? {
                println!("{c}");
            }
            Ok(())
        }
        "probe" => {
            let f = overlay::probe::features();
            println!("overlay available: {}", f.available);
            println!("fsconfig lowerdir+: {}", f.lowerdir_append);
            for (k, v) in &f.defaults {
                println!("default {k}: {v}");
            }
            if let Some(d) = p.positional.first() {
                let d = std::path::Path::new(d);
                let fs = overlay::probe::check_backing_fs(d).map_err(err)?;
                println!("{}: {} (d_type: {})", d.display(), fs.name, fs.d_type);
            }
            Ok(())
        }
        _ => Err(format!("unknown command {cmd:?} (try --help)")),
    }
}
