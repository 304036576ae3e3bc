//! The layers of a pull: each streams from its HTTP response through the
//! layer store's one-pass stage (decompress, hash, tar-split, apply into a
//! fresh directory), several at once; once every layer is staged and
//! verified they are committed on their parents in chain order.
//!
//! A layer is staged only once its whole blob matched its digest: the
//! [`BlobStream`] fails the read of its last byte otherwise, which fails
//! the stage, and a staged layer that is dropped uncommitted is removed.
//! On any failure the other streams stop at their next read and every
//! staged layer is dropped: nothing is registered, not even the layers
//! below the bad one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use dunnage_layerstore::{ChainId, StagedLayer};

use super::client::Client;
use super::download::BlobStream;
use super::pull::{PullEvent, PullOptions, PullStatus, Resolved};
use crate::error::{Error, Result};
use crate::load::Limits;
use crate::progress::Progress;
use crate::store::ImageStore;

/// A staged layer and the scratch file to remove once it is committed.
type Staged<'s> = (StagedLayer<'s>, Option<PathBuf>);

enum Event<'s> {
    Bytes(usize, u64),
    Done(usize, Result<Staged<'s>>),
}

impl ImageStore {
    /// Stream and stage the layers from `present` on, `opts.parallel` at a
    /// time, then commit them in order on `top` (which holds a reference
    /// to the layer below, swapped for one to each layer committed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn download_and_register(
        &self,
        client: &Client,
        resolved: &Resolved,
        chains: &[ChainId],
        present: usize,
        top: &mut Option<ChainId>,
        opts: &mut PullOptions<'_>,
        emit: &mut impl FnMut(usize, PullStatus, &mut Option<&mut dyn FnMut(&PullEvent)>),
    ) -> Result<()> {
        let layers = &resolved.layers;
        let queue: Mutex<Vec<usize>> = Mutex::new((present..layers.len()).rev().collect());
        let cancel = AtomicBool::new(false);
        let tmp = self.root().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("mkdir", &tmp, e))?;
        let limits = Limits::of(&opts.load);
        let workers = opts.parallel.clamp(1, 16).min(layers.len() - present);
        // Byte counts go to the caller's callback only: none, none sent.
        let report_bytes = opts.events.is_some();
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<Event<'_>>();
            for _ in 0..workers {
                let tx = tx.clone();
                let (queue, cancel, tmp) = (&queue, &cancel, &tmp);
                scope.spawn(move || {
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        // Base first: the layers committed next stage first.
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(i) = next else { return };
                        let tick = |n| {
                            if report_bytes {
                                let _ = tx.send(Event::Bytes(i, n));
                            }
                        };
                        let r = self.stage_layer(client, tmp, resolved, i, limits, cancel, &tick);
                        let failed = r.is_err();
                        // A send fails once the pull gave up: the staged
                        // layer in it is dropped, which removes it. A
                        // failure is sent before the others are cancelled,
                        // so it arrives before their "cancelled" errors.
                        let sent = tx.send(Event::Done(i, r));
                        if failed {
                            cancel.store(true, Ordering::Relaxed);
                        }
                        if sent.is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut ready: Vec<Option<Staged<'_>>> = (0..layers.len()).map(|_| None).collect();
            let result = (|| {
                // Every layer staged and verified first: a bad blob
                // anywhere registers nothing, not even the layers below it.
                let mut waiting = layers.len() - present;
                while waiting > 0 {
                    match rx.recv() {
                        Ok(Event::Bytes(j, bytes)) => emit(
                            j,
                            PullStatus::Downloading {
                                bytes,
                                total: layers[j].size,
                            },
                            &mut opts.events,
                        ),
                        // The first failure is the cause: the other streams
                        // stop ("cancelled") because of it.
                        Ok(Event::Done(_, Err(e))) => return Err(e),
                        Ok(Event::Done(j, Ok(staged))) => {
                            emit(j, PullStatus::DownloadComplete, &mut opts.events);
                            ready[j] = Some(staged);
                            waiting -= 1;
                        }
                        Err(_) => {
                            return Err(Error::Transport {
                                op: "get blob",
                                url: client.url("blobs"),
                                reason: "the downloads stopped".to_string(),
                            });
                        }
                    }
                }
                let mut partials = Vec::new();
                for (i, slot) in ready.iter_mut().enumerate().skip(present) {
                    let Some((staged, partial)) = slot.take() else {
                        return Err(Error::Transport {
                            op: "get blob",
                            url: client.url(&format!("blobs/{}", layers[i].digest)),
                            reason: "the download stopped".to_string(),
                        });
                    };
                    emit(i, PullStatus::Extracting, &mut opts.events);
                    let chain = staged.commit(top.as_ref())?.chain_id;
                    debug_assert_eq!(chain, chains[i]);
                    // The new layer holds its parent: give back ours.
                    if let Some(t) = top.take()
                        && let Err(e) = self.layers().release(&t)
                    {
                        let _ = self.layers().release(&chain);
                        return Err(e.into());
                    }
                    *top = Some(chain);
                    partials.extend(partial);
                    emit(i, PullStatus::PullComplete, &mut opts.events);
                }
                // What is known of the registry's blobs, once all is in.
                for p in partials {
                    let _ = std::fs::remove_file(p);
                }
                let diff_ids = resolved.config.diff_ids();
                for (layer, diff_id) in layers.iter().zip(diff_ids).skip(present) {
                    super::distribution::record(
                        self.root(),
                        &layer.digest,
                        diff_id,
                        &format!("{}/{}", client.domain, client.repo),
                    );
                }
                Ok(())
            })();
            if result.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            // Staged layers not committed are dropped here, and those still
            // in the channel with it: all removed.
            drop(ready);
            drop(rx);
            result
        })
    }

    /// Stream layer `i` from the registry (or the bytes an earlier pull
    /// kept, then the registry) into a staged layer; the stream's scratch
    /// file is returned to be removed once the layer is committed. Bytes
    /// kept by an earlier pull that make the blob fail are thrown away and
    /// the blob is fetched once more from the start.
    #[allow(clippy::too_many_arguments)]
    fn stage_layer<'s>(
        &'s self,
        client: &Client,
        tmp: &Path,
        resolved: &Resolved,
        i: usize,
        limits: Limits,
        cancel: &AtomicBool,
        tick: &dyn Fn(u64),
    ) -> Result<Staged<'s>> {
        let layer = &resolved.layers[i];
        let mut fresh = false;
        loop {
            let mut stream = BlobStream::open(client, tmp, layer, cancel, tick, fresh)?;
            let state = Progress {
                image: 0,
                images: 1,
                layer: i,
                layers: resolved.layers.len(),
                bytes: 0,
                total: layer.size,
                done: false,
            };
            // The stream checks the blob's digest itself.
            let staged = self.stage_stream(
                &mut stream,
                layer.size,
                format!("{}@{}", client.repo, layer.digest),
                None,
                &resolved.config.diff_ids()[i],
                limits,
                state,
                None,
            );
            // A blob that is not what it should be is the cause of any
            // failure of its stage.
            let failed = match (staged, stream.finish()) {
                (Ok(staged), Ok(())) => return Ok((staged, stream.partial_path())),
                (Ok(staged), Err(e)) => {
                    drop(staged);
                    e
                }
                (Err(_), Err(e)) | (Err(e), Ok(())) => e,
            };
            if fresh || !stream.reused() {
                return Err(failed);
            }
            stream.discard_partial();
            fresh = true;
        }
    }
}
