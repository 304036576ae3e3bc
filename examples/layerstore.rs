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

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use dunnage::layerstore::{ChainId, Error, Layer, LayerStore};

fn print(l: &Layer) {
    println!("{} {} {} {}", l.chain_id, l.diff_id, l.size, l.cache_id);
}

fn run(args: &[String]) -> Result<(), Error> {
    let [root, cmd, rest @ ..] = args else {
        eprintln!(
            "usage: layerstore <data-root> register|list|chain|verify|tar|release|containers ..."
        );
        std::process::exit(2);
    };
    let store = LayerStore::open(Path::new(root))?;
    let chain = |i: usize| -> Result<ChainId, Error> {
        rest.get(i).map_or_else(
            || {
                eprintln!("{cmd}: missing chainID");
                std::process::exit(2)
            },
            |s| s.parse(),
        )
    };
    match cmd.as_str() {
        "register" => {
            let file = rest.first().expect("register: missing tar file");
            let parent = rest.get(1).map(|p| p.parse()).transpose()?;
            let f = std::fs::File::open(file).map_err(Error::Stream)?;
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
        other => {
            eprintln!("unknown command {other:?}");
            return Ok(());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layerstore: {e}");
            ExitCode::FAILURE
        }
    }
}
