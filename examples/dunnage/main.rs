//! A docker-like image CLI over a Docker-compatible data-root.
//!
//! ```text
//! dunnage [--root DIR] load [-i FILE] [-q]          (stdin without -i)
//! dunnage [--root DIR] save [-o FILE] [--oci] IMAGE... (stdout without -o)
//! dunnage [--root DIR] import [-c CHANGE]... [-m MESSAGE] FILE [REF]
//! dunnage [--root DIR] images [-q] [--no-trunc]
//! dunnage [--root DIR] history [--no-trunc] IMAGE
//! dunnage [--root DIR] inspect IMAGE...
//! dunnage [--root DIR] tag SRC DST
//! dunnage [--root DIR] rmi [-f] IMAGE...
//! dunnage [--root DIR] prune
//! dunnage [--root DIR] layers
//! dunnage [--root DIR] mount IMAGE DIR
//! dunnage [--root DIR] umount DIR
//! dunnage [--root DIR] pull [--platform OS/ARCH[/VARIANT]] [-q] REF
//! dunnage [--root DIR] push [--zstd] [--chunk BYTES] REF
//! dunnage login -u USER [--password-stdin] [REGISTRY]
//! dunnage logout [REGISTRY]
//! dunnage [--root DIR] info
//!
//! dunnage [--root DIR] run|create [OPTIONS] IMAGE [COMMAND [ARG...]]
//! dunnage [--root DIR] start [-a] [-i] CONTAINER...
//! dunnage [--root DIR] ps [-a] [-q] [--no-trunc]
//! dunnage [--root DIR] exec [-d -i -t -u USER -w DIR -e K=V] CONTAINER CMD...
//! dunnage [--root DIR] logs [-f] CONTAINER
//! dunnage [--root DIR] stop [-t SECONDS] | kill [-s SIGNAL] | rm [-f] CONTAINER...
//! dunnage [--root DIR] pause | unpause | wait CONTAINER...
//! dunnage [--root DIR] stats --no-stream [CONTAINER...]
//! dunnage [--root DIR] top CONTAINER [ps OPTIONS]
//! dunnage [--root DIR] update [-m -–memory-swap --cpus -c --cpuset-cpus --pids-limit] CONTAINER...
//! dunnage [--root DIR] commit [-c CHANGE] [-m MESSAGE] CONTAINER [REF]
//! dunnage [--root DIR] export [-o FILE] CONTAINER
//! dunnage [--root DIR] system check [--repair]
//! dunnage [--root DIR] network create [--subnet CIDR] [--gateway IP] NAME | ls [-q] | inspect NAME... | rm NAME...
//! dunnage [--root DIR] port CONTAINER [PRIVATE_PORT[/PROTO]]
//! ```
//! Registries on localhost and 127.0.0.0/8 are reached over plain HTTP;
//! `DUNNAGE_INSECURE_REGISTRIES` and `DUNNAGE_REGISTRY_MIRRORS` (comma
//! separated) add others and Docker Hub mirrors. Credentials live in
//! docker's `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`).
//! `--root` defaults to `/var/lib/dunnage`; pointed at a stopped dockerd's
//! data-root it lists and exports that daemon's images. Errors print one
//! line; image verbs exit with status 1; container verbs with docker's
//! codes (125 when `run` cannot make the container, 126 and 127 when its
//! program cannot be run, the process's own code otherwise). The `run`
//! options are docker's (see `run.rs`); the network defaults to the bridge
//! network `dunnage0` when it exists (`network create dunnage0`, or a first
//! `run --network bridge`), to `none` otherwise. Networks, their bridges
//! and rules live in the network namespace the CLI runs in.
//! Detached containers (`run -d`, `create`) are held by a monitor, which
//! is this same program started with `--dunnage-monitor`. `system check` prints one line per
//! problem and exits with status 1 when it found any (with `--repair`: when
//! any is left after repairing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod flags;
mod format;
mod inspect;
mod logs;
mod messages;
mod netinspect;
mod network;
mod order;
mod ps;
mod registry;
mod run;
mod template;
mod verbs;
use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use dunnage::image::time::{human_since, human_size, parse_rfc3339};
use dunnage::image::{ImageChanges, ImageStore, LoadOptions, Progress, Reference, Removed};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: dunnage [--root DIR] load|save|import|images|history|inspect|tag|rmi|prune|layers|mount|umount|pull|push|login|logout|info|run|create|start|restart|attach|ps|exec|logs|stop|kill|rm|pause|unpause|stats|top|wait|update|commit|export|network|port|system check ...";

fn main() -> ExitCode {
    // A detached container's monitor is this program run again.
    dunnage::container::monitor::run_if_monitor();
    // Paths are bytes: arguments stay `OsString`s; only image names,
    // references and flags that are text are decoded, with an error (not
    // a panic) when they are not UTF-8.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dunnage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An argument that must be text (an image name, a reference, a flag's
/// text value).
fn text(arg: &OsStr) -> Res<&str> {
    arg.to_str()
        .ok_or_else(|| format!("{:?} is not valid UTF-8", arg.to_string_lossy()).into())
}

/// Split `args` into flags (with their values) and positional arguments.
struct Args {
    flags: Vec<(String, Option<OsString>)>,
    rest: Vec<OsString>,
}

impl Args {
    /// `valued` lists the flags that take a value.
    fn parse(args: &[OsString], valued: &[&str], plain: &[&str]) -> Res<Args> {
        let (mut flags, mut rest) = (Vec::new(), Vec::new());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a.to_str().unwrap_or("");
            if valued.contains(&name) {
                let v = it
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: {name}"))?;
                flags.push((name.to_string(), Some(v.clone())));
            } else if plain.contains(&name) {
                flags.push((name.to_string(), None));
            } else if a.as_bytes().starts_with(b"-") && a.len() > 1 {
                return Err(format!("unknown flag: {}", a.to_string_lossy()).into());
            } else {
                rest.push(a.clone());
            }
        }
        Ok(Args { flags, rest })
    }

    fn has(&self, names: &[&str]) -> bool {
        self.flags.iter().any(|(f, _)| names.contains(&f.as_str()))
    }

    /// The last value of a flag that names a path.
    fn path(&self, names: &[&str]) -> Option<&Path> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| names.contains(&f.as_str()))
            .and_then(|(_, v)| v.as_deref())
            .map(Path::new)
    }

    /// The last value of a flag that is text.
    fn value(&self, names: &[&str]) -> Res<Option<&str>> {
        self.path(names).map(|p| text(p.as_os_str())).transpose()
    }

    /// Every value of a flag that is text.
    fn values(&self, names: &[&str]) -> Res<Vec<&str>> {
        self.flags
            .iter()
            .filter(|(f, _)| names.contains(&f.as_str()))
            .filter_map(|(_, v)| v.as_deref())
            .map(text)
            .collect()
    }

    /// The positional arguments as text (image names and references).
    fn texts(&self) -> Res<Vec<&str>> {
        self.rest.iter().map(|a| text(a)).collect()
    }

    fn exactly(&self, n: usize, usage: &str) -> Res<&[OsString]> {
        if self.rest.len() != n {
            return Err(format!("\"{usage}\" requires exactly {n} argument(s)").into());
        }
        Ok(&self.rest)
    }
}

fn run(mut args: Vec<OsString>) -> Res<u8> {
    let mut root = PathBuf::from("/var/lib/dunnage");
    while args
        .first()
        .is_some_and(|a| a.as_bytes().starts_with(b"--root"))
    {
        let a = args.remove(0);
        root = match a.as_bytes().strip_prefix(b"--root=") {
            Some(v) => PathBuf::from(OsStr::from_bytes(v)),
            None if a != "--root" => {
                return Err(format!("unknown flag: {}", a.to_string_lossy()).into());
            }
            None if !args.is_empty() => PathBuf::from(args.remove(0)),
            None => return Err("flag needs an argument: --root".into()),
        };
    }
    let Some(cmd) = args.first().cloned() else {
        return Err(USAGE.into());
    };
    let rest = &args[1..];
    let verb = text(&cmd)?;
    // Container verbs take text arguments (names, flags, commands); the
    // image verbs keep paths as bytes.
    if verbs::VERBS.contains(&verb) {
        let words: Vec<String> = rest
            .iter()
            .map(|a| text(a).map(str::to_string))
            .collect::<Res<_>>()?;
        let store = match dunnage::container::ContainerStore::open(&root) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("dunnage: {e}");
                return Ok(125);
            }
        };
        return Ok(match verbs::dispatch(&store, verb, &words) {
            Some(Ok(code)) => code,
            // Worded as docker words it, prefix included (`run`'s daemon
            // errors start with `dunnage: `, as docker's with `docker: `).
            Some(Err(fail)) => {
                eprintln!("{}", fail.msg);
                fail.code
            }
            None => 1,
        });
    }
    if verb == "inspect" {
        return inspect(&root, &Args::parse(rest, &["-f", "--format"], &[])?);
    }
    image_verb(&root, verb, rest).map(|()| 0)
}

/// The image verbs (and `inspect`, of containers and images).
fn image_verb(root: &Path, verb: &str, rest: &[OsString]) -> Res {
    match verb {
        "load" => load(
            root,
            &Args::parse(rest, &["-i", "--input"], &["-q", "--quiet"])?,
        ),
        "save" => save(root, &Args::parse(rest, &["-o", "--output"], &["--oci"])?),
        "import" => import(
            root,
            &Args::parse(rest, &["-c", "--change", "-m", "--message"], &[])?,
        ),
        "images" => images(
            root,
            &Args::parse(rest, &[], &["-q", "--quiet", "--no-trunc", "-a", "--all"])?,
        ),
        "history" => history(
            root,
            &Args::parse(rest, &[], &["--no-trunc", "-H", "--human"])?,
        ),
        "tag" => {
            let a = Args::parse(rest, &[], &[])?;
            let r = a.exactly(2, "dunnage tag")?;
            ImageStore::open(root)?.tag(text(&r[0])?, text(&r[1])?)?;
            Ok(())
        }
        "rmi" => rmi(root, &Args::parse(rest, &[], &["-f", "--force"])?),
        "prune" => {
            for id in ImageStore::open(root)?.prune()? {
                println!("deleted: {id}");
            }
            Ok(())
        }
        "layers" => layers(root),
        "mount" => {
            let a = Args::parse(rest, &[], &[])?;
            let r = a.exactly(2, "dunnage mount")?;
            let store = ImageStore::open(root)?;
            let id = store.resolve(text(&r[0])?)?;
            store.mount(&id, Path::new(&r[1]))?;
            Ok(())
        }
        "umount" => {
            let a = Args::parse(rest, &[], &[])?;
            let r = a.exactly(1, "dunnage umount")?;
            ImageStore::open(root)?.unmount(Path::new(&r[0]))?;
            Ok(())
        }
        "pull" => registry::pull(
            root,
            &Args::parse(rest, &["--platform"], &["-q", "--quiet"])?,
        ),
        "push" => registry::push(root, &Args::parse(rest, &["--chunk"], &["--zstd"])?),
        "login" => registry::login(&Args::parse(
            rest,
            &["-u", "--username", "-p", "--password"],
            &["--password-stdin"],
        )?),
        "logout" => registry::logout(&Args::parse(rest, &[], &[])?),
        "info" => registry::info(root),
        "system" => system(root, rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}; {USAGE}").into()),
    }
}

/// `system check [--repair]`: exit status 1 (an error) when a problem is
/// found, or left after repairing.
fn system(root: &Path, rest: &[OsString]) -> Res {
    let Some((_, rest)) = rest.split_first().filter(|(s, _)| *s == "check") else {
        return Err("usage: dunnage system check [--repair]".into());
    };
    let a = Args::parse(rest, &[], &["--repair"])?;
    a.exactly(0, "dunnage system check")?;
    let store = dunnage::container::ContainerStore::open(root)?;
    let report = if a.has(&["--repair"]) {
        for p in &store.repair()?.problems {
            println!("found: {p}");
        }
        store.check()?
    } else {
        store.check()?
    };
    for p in &report.problems {
        println!("{p}");
    }
    match report.problems.len() {
        0 => Ok(()),
        n => Err(format!("{n} problem(s) found").into()),
    }
}

/// A progress bar on stderr when it is a terminal (and not `-q`), like
/// the docker CLI's: `<verb> layer i/n [=====>    ] 12.3MB/45.6MB`.
fn progress_bar(verb: &'static str, quiet: bool) -> Option<impl FnMut(&Progress)> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(move |p: &Progress| {
        let width = 50u64;
        let done = if p.done {
            width
        } else {
            (p.bytes.min(p.total) * width)
                .checked_div(p.total)
                .unwrap_or(0)
        };
        let line = format!(
            "\r{verb} layer {}/{} [{}>{}] {}/{}",
            p.layer + 1,
            p.layers,
            "=".repeat(done as usize),
            " ".repeat((width - done) as usize),
            human_size(p.bytes),
            human_size(p.total.max(p.bytes))
        );
        let mut err = std::io::stderr();
        let _ = err.write_all(line.as_bytes());
        if p.done {
            let _ = err.write_all(b"\n");
        }
    })
}

fn load(root: &Path, a: &Args) -> Res {
    let store = ImageStore::open(root)?;
    let mut bar = progress_bar("Loading", a.has(&["-q", "--quiet"]));
    let opts = LoadOptions {
        progress: bar.as_mut().map(|b| b as &mut dyn FnMut(&Progress)),
        ..LoadOptions::default()
    };
    // Like docker: without -i the archive comes on stdin.
    let loaded = match a.path(&["-i", "--input"]) {
        Some(f) => store.load(f, opts)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err("requested load from stdin, but stdin is empty".into());
            }
            store.load_reader(stdin.lock(), Path::new("<stdin>"), opts)?
        }
    };
    for image in loaded {
        if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.id);
        }
        for t in &image.tags {
            println!("Loaded image: {}", t.familiar());
        }
    }
    Ok(())
}

fn save(root: &Path, a: &Args) -> Res {
    if a.rest.is_empty() {
        return Err("\"dunnage save\" requires at least 1 argument".into());
    }
    let names = a.texts()?;
    let out = a.path(&["-o", "--output"]);
    if out.is_none() && std::io::stdout().is_terminal() {
        return Err("cowardly refusing to save to a terminal. Use the -o flag or redirect".into());
    }
    let store = ImageStore::open(root)?;
    let mut bar = progress_bar("Saving", false);
    let progress = bar.as_mut().map(|b| b as &mut dyn FnMut(&Progress));
    if a.has(&["--oci"]) {
        let dir = out.ok_or("save --oci needs -o DIR")?;
        store.export_oci_with_progress(&names, dir, progress)?;
        return Ok(());
    }
    let Some(out) = out else {
        // The archive needs a seekable output: an anonymous spool file
        // (O_TMPFILE, nothing left behind if we die) in the store's tmp
        // directory, then copied to stdout.
        let spool = store.temp_file()?;
        let written = store.save_with_progress(
            &names,
            std::io::BufWriter::with_capacity(1 << 20, spool),
            progress,
        )?;
        let mut spool = written.into_inner().map_err(|e| e.into_error())?;
        spool.seek(std::io::SeekFrom::Start(0))?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut spool, &mut stdout)?;
        stdout.flush()?;
        return Ok(());
    };
    store.save_to_file(&names, out, progress)?;
    Ok(())
}

fn import(root: &Path, a: &Args) -> Res {
    if a.rest.is_empty() || a.rest.len() > 2 {
        return Err("\"dunnage import\" requires 1 or 2 arguments: FILE [REF]".into());
    }
    let mut changes = ImageChanges {
        reference: a
            .rest
            .get(1)
            .map(|r| Reference::parse(text(r)?).map_err(Into::into))
            .transpose()
            .map_err(|e: Box<dyn std::error::Error>| e)?,
        comment: a.value(&["-m", "--message"])?.map(str::to_string),
        ..ImageChanges::default()
    };
    for c in a.values(&["-c", "--change"])? {
        changes.add_instruction(c)?;
    }
    let mut bar = progress_bar("Importing", false);
    let progress = bar.as_mut().map(|b| b as &mut dyn FnMut(&Progress));
    let id =
        ImageStore::open(root)?.import_with_progress(Path::new(&a.rest[0]), &changes, progress)?;
    println!("{id}");
    Ok(())
}

/// Print rows in docker's table layout ([`format::table`]).
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", format::table(header, rows));
}

fn since(created: Option<&str>) -> String {
    created
        .and_then(parse_rfc3339)
        .map_or_else(|| "N/A".to_string(), |t| human_since(t, SystemTime::now()))
}

fn images(root: &Path, a: &Args) -> Res {
    let store = ImageStore::open_read_only(root)?;
    let report = store.images_report()?;
    // Like docker with a damaged image: list the others, warn on stderr.
    for b in &report.broken {
        eprintln!("WARNING: image {}: {}", b.id, b.error);
    }
    let mut list = report.images;
    list.sort_by(|x, y| {
        let t = |s: &Option<String>| s.as_deref().and_then(parse_rfc3339);
        t(&y.created).cmp(&t(&x.created))
    });
    let no_trunc = a.has(&["--no-trunc"]);
    let show_id = |id: &dunnage::image::ImageId| if no_trunc { id.to_string() } else { id.short() };
    if a.has(&["-q", "--quiet"]) {
        for i in &list {
            println!("{}", show_id(&i.id));
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &list {
        let tail = [
            show_id(&i.id),
            since(i.created.as_deref()),
            human_size(i.size),
        ];
        let tagged: Vec<&Reference> = i.references.iter().filter(|r| r.tag().is_some()).collect();
        if tagged.is_empty() {
            rows.push(
                [
                    vec!["<none>".to_string(), "<none>".to_string()],
                    tail.to_vec(),
                ]
                .concat(),
            );
        }
        for r in tagged {
            rows.push(
                [
                    vec![r.familiar_name(), r.tag().unwrap_or_default().to_string()],
                    tail.to_vec(),
                ]
                .concat(),
            );
        }
    }
    print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(())
}

fn history(root: &Path, a: &Args) -> Res {
    let r = a.exactly(1, "dunnage history")?;
    let store = ImageStore::open_read_only(root)?;
    let id = store.resolve(text(&r[0])?)?;
    let no_trunc = a.has(&["--no-trunc"]);
    let rows: Vec<Vec<String>> = store
        .history(&id)?
        .into_iter()
        .map(|h| {
            let by = h.created_by.replace(['\t', '\n'], " ");
            let by = if !no_trunc && by.chars().count() > 45 {
                format!("{}…", by.chars().take(44).collect::<String>())
            } else {
                by
            };
            let image = h.id.map_or_else(
                || "<missing>".to_string(),
                |i| if no_trunc { i.to_string() } else { i.short() },
            );
            vec![
                image,
                since(h.created.as_deref()),
                by,
                human_size(h.size),
                h.comment,
            ]
        })
        .collect();
    print_table(
        &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    );
    Ok(())
}

/// `inspect`: like docker, the objects found (`[]` when none), then one
/// `Error: No such object: X` line for each name not found, and exit
/// status 1 when there was any.
fn inspect(root: &Path, a: &Args) -> Res<u8> {
    if a.rest.is_empty() {
        return Err("\"dunnage inspect\" requires at least 1 argument".into());
    }
    let store = ImageStore::open_read_only(root)?;
    // Like docker: a container of that name or ID first, then an image.
    let containers = dunnage::container::state::containers_dir(root)
        .is_dir()
        .then(|| dunnage::container::ContainerStore::open(root).ok())
        .flatten();
    let (mut out, mut missing) = (Vec::new(), Vec::new());
    for name in a.texts()? {
        if let Some(h) = containers.as_ref().and_then(|c| c.get(name).ok()) {
            out.push(inspect::container(root, &h));
            continue;
        }
        match store.resolve(name) {
            Ok(id) => out.push(store.inspect(&id)?),
            Err(
                dunnage::image::Error::NoSuchImage(_)
                | dunnage::image::Error::InvalidReference { .. }
                | dunnage::image::Error::InvalidDigest(_),
            ) => missing.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(format) = a.value(&["-f", "--format"])? {
        // One line per object found, as docker's -f prints them.
        let template = match template::Template::parse(format) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}", e.msg);
                return Ok(e.code);
            }
        };
        // docker says which names it did not find first.
        for name in &missing {
            eprintln!("Error: No such object: {name}");
        }
        for obj in &out {
            match template.render(obj) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    // docker ends the line it was writing.
                    println!();
                    eprintln!("{}", e.msg);
                    return Ok(e.code);
                }
            }
        }
        return Ok(u8::from(!missing.is_empty()));
    }
    let ordered: Vec<order::Ordered<'_>> = out.iter().map(order::Ordered).collect();
    if ordered.is_empty() {
        println!("[]");
    } else {
        // The docker CLI indents by four spaces; serde_json's pretty printer by two.
        for line in serde_json::to_string_pretty(&ordered)?.lines() {
            let body = line.trim_start_matches(' ');
            println!("{}{body}", " ".repeat(2 * (line.len() - body.len())));
        }
    }
    for name in &missing {
        eprintln!("Error: No such object: {name}");
    }
    Ok(u8::from(!missing.is_empty()))
}

fn rmi(root: &Path, a: &Args) -> Res {
    if a.rest.is_empty() {
        return Err("\"dunnage rmi\" requires at least 1 argument".into());
    }
    let store = ImageStore::open(root)?;
    for name in a.texts()? {
        for done in store.remove(name, a.has(&["-f", "--force"]))? {
            match done {
                Removed::Untagged(r) => println!("Untagged: {}", r.familiar()),
                Removed::Deleted(id) => println!("Deleted: {id}"),
            }
        }
    }
    Ok(())
}

fn layers(root: &Path) -> Res {
    let store = ImageStore::open_read_only(root)?;
    let mut rows = Vec::new();
    for l in store.layers().list()? {
        rows.push(vec![
            l.chain_id.to_string(),
            l.diff_id.to_string(),
            l.cache_id.clone(),
            human_size(l.size),
        ]);
    }
    print_table(&["CHAIN ID", "DIFF ID", "CACHE ID", "SIZE"], &rows);
    Ok(())
}
