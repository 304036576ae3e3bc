//! The layers of a load, registered concurrently: a layer's contents,
//! diffID and tar-split do not depend on its parent, so a few threads
//! stage the archive's layers ([`LayerStore::stage`]) in parallel while
//! the calling thread commits them in chain order, base first.
//!
//! Bounds: at most [`STAGE_THREADS`] layers stream at once (each takes a
//! second thread for hashing and about 10 MiB of buffers, see
//! [`LayerStore::stage`]); layers staged ahead of their commit wait on
//! disk, not in memory. Progress is reported as before, one layer at a
//! time in chain order: the reports of a layer staged ahead are held
//! (one small record every 4 MiB) until its turn.
//!
//! [`LayerStore::stage`]: dunnage_layerstore::LayerStore::stage

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use dunnage_layerstore::{ChainId, DiffId, Digest, StagedLayer, child_chain_id};

use crate::error::{Error, Result};
use crate::load::{Limits, LoadOptions, Progress};
use crate::plan::ImagePlan;
use crate::source::Source;
use crate::store::ImageStore;

/// How many layers of one load stream at once.
pub(crate) const STAGE_THREADS: usize = 3;

/// One layer to stage: a member of the archive not in the store yet.
struct Job {
    member: String,
    digest: Option<Digest>,
    diff_id: DiffId,
    /// Where it sits in the plans, for progress reports.
    state: Progress,
}

/// What a staging thread tells the committing thread.
enum Event<'s> {
    Progress(usize, Progress),
    Staged(usize, Result<StagedLayer<'s>>),
}

/// The committing side: staged layers and held reports by job.
struct Committer<'s, 'o, 'p> {
    store: &'s ImageStore,
    events: Receiver<Event<'s>>,
    staged: Vec<Option<Result<StagedLayer<'s>>>>,
    held: Vec<Vec<Progress>>,
    /// Jobs already committed (a chain shared by two images is staged once).
    committed: Vec<bool>,
    job_of: HashMap<ChainId, usize>,
    opts: &'o mut LoadOptions<'p>,
}

impl ImageStore {
    /// Register the layers of every planned image; returns each image's
    /// top chainID holding one reference (`None` for an image without
    /// layers). On error every reference taken here is given back and
    /// every staged layer removed.
    pub(crate) fn register_all(
        &self,
        source: &Source,
        plans: &[ImagePlan],
        opts: &mut LoadOptions<'_>,
    ) -> Result<Vec<Option<ChainId>>> {
        let mut jobs = Vec::new();
        let mut job_of = HashMap::new();
        for (i, p) in plans.iter().enumerate() {
            let diff_ids = p.config.diff_ids();
            let mut parent: Option<ChainId> = None;
            for (j, (layer, diff_id)) in p.layers.iter().zip(diff_ids).enumerate() {
                let chain = child_chain_id(parent.as_ref(), diff_id);
                if !job_of.contains_key(&chain) && self.layers().get(&chain).is_err() {
                    job_of.insert(chain, jobs.len());
                    jobs.push(Job {
                        member: layer.member.clone(),
                        digest: layer.digest,
                        diff_id: *diff_id,
                        state: Progress {
                            image: i,
                            images: plans.len(),
                            layer: j,
                            layers: p.layers.len(),
                            ..Progress::default()
                        },
                    });
                }
                parent = Some(chain);
            }
        }
        let limits = Limits::of(opts);
        let next = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let (tx, events) = channel();
        std::thread::scope(|s| {
            for _ in 0..STAGE_THREADS.min(jobs.len()) {
                let tx = tx.clone();
                let (jobs, next, cancel) = (&jobs, &next, &cancel);
                s.spawn(move || self.stage_jobs(source, jobs, limits, next, cancel, tx));
            }
            drop(tx);
            let mut c = Committer {
                store: self,
                events,
                staged: jobs.iter().map(|_| None).collect(),
                held: jobs.iter().map(|_| Vec::new()).collect(),
                committed: vec![false; jobs.len()],
                job_of,
                opts,
            };
            let mut tops: Vec<Option<ChainId>> = Vec::with_capacity(plans.len());
            for (i, p) in plans.iter().enumerate() {
                match c.commit_image(source, p, i, plans.len()) {
                    Ok(top) => tops.push(top),
                    Err(e) => {
                        // Threads stop at their next read; what they staged
                        // is dropped (removed) with the channel.
                        cancel.store(true, Ordering::Relaxed);
                        self.release_all(tops.iter().flatten());
                        return Err(e);
                    }
                }
            }
            Ok(tops)
        })
    }

    /// A staging thread: take the next job until none is left or the load
    /// is cancelled.
    fn stage_jobs<'s>(
        &'s self,
        source: &Source,
        jobs: &[Job],
        limits: Limits,
        next: &AtomicUsize,
        cancel: &AtomicBool,
        tx: Sender<Event<'s>>,
    ) {
        while !cancel.load(Ordering::Relaxed) {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(k) else {
                return;
            };
            let mut report = |p: &Progress| {
                let _ = tx.send(Event::Progress(k, p.clone()));
            };
            let staged = self.stage_job(source, job, limits, cancel, &mut report);
            // A send fails once the load gave up: the staged layer comes
            // back in the error and is dropped (removed) here.
            let _ = tx.send(Event::Staged(k, staged));
        }
    }

    fn stage_job<'s>(
        &'s self,
        source: &Source,
        job: &Job,
        limits: Limits,
        cancel: &AtomicBool,
        report: &mut dyn FnMut(&Progress),
    ) -> Result<StagedLayer<'s>> {
        let (member, total) =
            source
                .open_member(&job.member)?
                .ok_or_else(|| Error::MissingMember {
                    archive: source.path().to_path_buf(),
                    member: job.member.clone(),
                })?;
        let what = format!("{}:{}", source.path().display(), job.member);
        self.stage_stream(
            Cancellable {
                inner: member,
                cancel,
            },
            total,
            what,
            job.digest.as_ref(),
            &job.diff_id,
            limits,
            Progress {
                total,
                ..job.state.clone()
            },
            Some(report),
        )
    }
}

impl<'s> Committer<'s, '_, '_> {
    /// Commit (or reference) an image's layers base first, as
    /// [`ImageStore::register_all`] promises for one image: the top holds one
    /// reference, each layer below is held by its child.
    fn commit_image(
        &mut self,
        source: &Source,
        plan: &ImagePlan,
        image: usize,
        images: usize,
    ) -> Result<Option<ChainId>> {
        let diff_ids = plan.config.diff_ids();
        let mut top: Option<ChainId> = None;
        for (i, (layer, diff_id)) in plan.layers.iter().zip(diff_ids).enumerate() {
            let chain = child_chain_id(top.as_ref(), diff_id);
            let result = match self.job_of.get(&chain) {
                Some(&k) if !self.committed[k] => {
                    self.committed[k] = true;
                    self.wait(k).and_then(|staged| {
                        let layer = staged.commit(top.as_ref())?;
                        Ok(layer.chain_id)
                    })
                }
                // In the store already, or committed for an earlier image.
                _ => self.store.register_one(
                    source,
                    layer,
                    top.as_ref(),
                    diff_id,
                    self.opts,
                    |bytes, total| Progress {
                        image,
                        images,
                        layer: i,
                        layers: plan.layers.len(),
                        bytes,
                        total,
                        done: false,
                    },
                ),
            };
            match result {
                // The new layer holds its parent: give back our reference.
                Ok(chain) => match top.map(|t| self.store.layers().release(&t)).transpose() {
                    Ok(_) => top = Some(chain),
                    Err(e) => {
                        self.store.release_all([&chain]);
                        return Err(e.into());
                    }
                },
                Err(e) => {
                    self.store.release_all(top.as_ref());
                    return Err(e);
                }
            }
        }
        Ok(top)
    }

    /// The staged layer of job `k`, once a thread is done with it; its
    /// progress reports are passed on meanwhile, the others' held.
    fn wait(&mut self, k: usize) -> Result<StagedLayer<'s>> {
        for p in std::mem::take(&mut self.held[k]) {
            self.report(&p);
        }
        loop {
            if let Some(staged) = self.staged[k].take() {
                return staged;
            }
            match self.events.recv() {
                Ok(Event::Progress(m, p)) if m == k => self.report(&p),
                Ok(Event::Progress(m, p)) => {
                    if let Some(h) = self.held.get_mut(m) {
                        h.push(p);
                    }
                }
                Ok(Event::Staged(m, r)) => {
                    if let Some(slot) = self.staged.get_mut(m) {
                        *slot = Some(r);
                    }
                }
                Err(_) => {
                    return Err(Error::Layer(dunnage_layerstore::Error::Stream(
                        io::Error::other("a layer staging thread ended without its result"),
                    )));
                }
            }
        }
    }

    fn report(&mut self, p: &Progress) {
        if let Some(cb) = self.opts.progress.as_deref_mut() {
            cb(p);
        }
    }
}

/// Fails reads once the load is cancelled, so that staging threads stop
/// early when another layer failed.
struct Cancellable<'c, R> {
    inner: R,
    cancel: &'c AtomicBool,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("the load was cancelled"));
        }
        self.inner.read(buf)
    }
}
