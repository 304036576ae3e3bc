//! A small command line over a Docker-compatible layer store.
//!
//! ```text
//! layerstore <data-root> register <tar[.gz]> [parent chainID]   register a layer, print it
//! layerstore <data-root> list                                   every layer: chainID diffID size cache-id
//! layerstore <data-root> chain <chainID>                        the layers of a chain, base first
//! layerstore <data-root> verify [chainID]                       rebuild tars, check diffIDs
//! layerstore <data-root> tar <chainID>                          write the original tar to stdout
//! layerstore <data-root> release <chainID>                      drop one reference
//! layerstore <data-root> containers                             container layers (mounts/)
//! ```
//!
//! `/var/lib/docker` of a stopped dockerd (overlay2) works as a data-root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use dunnage::layerstore::{ChainId, Error, Layer, LayerStore};

fn print(l: &Layer) {
    println!("{} {} {} {}", l.chain_id, l.diff_id, l.size, l.cache_id);
}

/// Exit with status 2 after a usage message.
fn usage(why: &str) -> ! {
    eprintln!("layerstore: {why}");
    eprintln!(
        "usage: layerstore <data-root> register|list|chain|verify|tar|release|containers ..."
    );
    std::process::exit(2);
}

fn run(args: &[OsString]) -> Result<(), Error> {
    // Paths stay bytes (`OsString`); only the command and chainIDs are text.
    let [root, cmd, rest @ ..] = args else {
        usage("missing data-root or command");
    };
    let cmd = cmd
        .to_str()
        .unwrap_or_else(|| usage("the command is not UTF-8"));
    let root = Path::new(root);
    let chain = |i: usize| -> Result<ChainId, Error> {
        let Some(text) = rest.get(i) else {
            usage(&format!("{cmd}: missing chainID"));
        };
        text.to_str()
            .unwrap_or_else(|| usage(&format!("{cmd}: the chainID is not UTF-8")))
            .parse()
    };
    // Queries open the store without repairing or unmounting anything.
    let store = match cmd {
        "register" | "release" => LayerStore::open(root)?,
        "list" | "chain" | "verify" | "tar" | "containers" => LayerStore::open_read_only(root)?,
        other => usage(&format!("unknown command {other:?}")),
    };
    match cmd {
        "register" => {
            let Some(file) = rest.first() else {
                usage("register: missing tar file");
            };
            let parent = if rest.len() > 1 {
                Some(chain(1)?)
            } else {
                None
            };
            let f = std::fs::File::open(file).map_err(|e| Error::Io {
                op: "open",
                path: file.into(),
                source: e,
            })?;
            print(&store.register(std::io::BufReader::new(f), parent.as_ref(), None)?);
        }
        "list" => store.list()?.iter().for_each(print),
        "chain" => store.chain(&chain(0)?)?.iter().for_each(print),
        "verify" => {
            let layers = match rest.first() {
                Some(_) => vec![store.get(&chain(0)?)?],
                None => store.list()?,
            };
            for l in layers {
                store.verify(&l.chain_id)?;
                println!("ok {}", l.chain_id);
            }
        }
        "tar" => {
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut store.tar_stream(&chain(0)?)?, &mut out).map_err(Error::from_io)?;
            out.flush().map_err(Error::Stream)?;
        }
        "release" => store.release(&chain(0)?)?,
        "containers" => {
            for rw in store.list_rw()? {
                let parent = rw.parent.map(|p| p.to_string()).unwrap_or_default();
                println!("{} {} {}", rw.container_id, rw.mount_id, parent);
            }
        }
        other => usage(&format!("unknown command {other:?}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layerstore: {e}");
            ExitCode::FAILURE
        }
    }
}
