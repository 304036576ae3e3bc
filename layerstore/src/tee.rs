//! The hand-off of a layer's bytes between the thread that extracts them
//! and the thread that hashes them (sha256 for the diffID, CRC-64 and JSON
//! for the tar-split).
//!
//! The extracting thread reads the (decompressed) stream in 1 MiB buffers
//! and serves the apply straight from them ([`BufRead`]); each buffer is
//! shared, not copied, with the hashing thread, and comes back to the
//! extracting thread once both are done with it. At most [`BUFFERS`]
//! buffers exist, which bounds the memory a layer takes.
//!
//! The two threads are woken in batches, not per buffer: the hashing
//! thread, once it has caught up, sleeps until [`WAKE_AT`] buffers are
//! waiting (or the stream ends, or the extracting thread runs out of
//! buffers); the extracting thread, when it is the faster one and runs
//! out of buffers, sleeps until [`WAKE_AT`] are free again (or the
//! hashing thread has caught up). Woken per chunk, the hashing thread, faster than extraction,
//! slept and was woken thousands of times a layer; the scheduler placed
//! it on the waker's CPU each time, where it preempted the extraction, and
//! the two ran one after the other on one core while the other core stayed
//! free (`perf sched timehist`: no migrations, a switch every 100 us).

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use crate::digest::{DiffId, Digest};
use crate::error::Error;
use crate::tarsplit::Recorder;

/// Size of one buffer.
const CHUNK: usize = 1 << 20;
/// Buffers in existence at most: the one being extracted, the one being
/// hashed, and those waiting.
const BUFFERS: usize = 8;
/// Buffers waiting before a sleeping hashing thread is woken.
const WAKE_AT: usize = 4;

/// What the hashing thread hands back: the hasher and the recorder, fed
/// with every byte sent, or the recorder's first error.
type Worked<W> = Result<(Sha256, Recorder<W>), Error>;

/// What the two threads share, under one mutex.
#[derive(Default)]
struct Queue {
    /// Filled buffers the hashing thread has not taken yet.
    full: VecDeque<Arc<Vec<u8>>>,
    /// Buffers the hashing thread is done with.
    spare: Vec<Arc<Vec<u8>>>,
    /// No more buffers will come.
    closed: bool,
    /// The hashing thread stopped (error, end, or panic).
    stopped: bool,
    /// The hashing thread sleeps waiting for buffers.
    hasher_waits: bool,
    /// The extracting thread sleeps waiting for a spare buffer.
    reader_waits: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signals the hashing thread.
    to_hasher: Condvar,
    /// Signals the extracting thread.
    to_reader: Condvar,
}

impl Shared {
    /// The queue; a panic elsewhere while holding it leaves it usable.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the hashing thread stopped when it ends, however it ends, so the
/// extracting thread never waits for it in vain.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.stopped = true;
        q.full.clear();
        drop(q);
        self.0.to_reader.notify_all();
    }
}

/// Passes a stream through (as [`Read`] and [`BufRead`]) while a second
/// thread hashes it (the diffID) and records its tar-split. The recorder's
/// first error is kept, so the caller can report it rather than the error
/// of whoever was reading the same bytes.
pub(crate) struct Tee<R: Read, W: Write + Send + 'static> {
    inner: R,
    shared: Arc<Shared>,
    /// The buffer being served, and the position in it.
    current: Option<Arc<Vec<u8>>>,
    pos: usize,
    /// Buffers allocated so far.
    allocated: usize,
    /// The input reached its end.
    eof: bool,
    worker: Option<JoinHandle<Worked<W>>>,
    /// Set when the worker stopped with an error, or the input failed.
    failed: Option<Error>,
    /// The worker's result once joined.
    worked: Option<(Sha256, Recorder<W>)>,
}

impl<R: Read, W: Write + Send + 'static> Tee<R, W> {
    pub(crate) fn new(inner: R, tar_split: W) -> Result<Tee<R, W>, Error> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            to_hasher: Condvar::new(),
            to_reader: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn(move || hash(theirs, tar_split))
            .map_err(Error::Stream)?;
        Ok(Tee {
            inner,
            shared,
            current: None,
            pos: 0,
            allocated: 0,
            eof: false,
            worker: Some(worker),
            failed: None,
            worked: None,
        })
    }

    /// A buffer to fill: a spare one, a new one while fewer than
    /// [`BUFFERS`] exist, or else the next one the hashing thread gives
    /// back. `None` when the hashing thread stopped.
    fn take_buffer(&mut self) -> Option<Vec<u8>> {
        let mut q = self.shared.lock();
        loop {
            if q.stopped {
                return None;
            }
            while let Some(buf) = q.spare.pop() {
                // The hashing thread dropped its reference before giving
                // it back, and this thread holds none.
                match Arc::try_unwrap(buf) {
                    Ok(buf) => return Some(buf),
                    // Still shared (never expected): let it go, and count
                    // it out so a fresh one may replace it.
                    Err(_) => self.allocated -= 1,
                }
            }
            if self.allocated < BUFFERS {
                self.allocated += 1;
                return Some(Vec::with_capacity(CHUNK));
            }
            // Out of buffers: whatever is queued must be hashed first.
            if q.hasher_waits {
                self.shared.to_hasher.notify_one();
            }
            q.reader_waits = true;
            q = self
                .shared
                .to_reader
                .wait(q)
                .unwrap_or_else(|e| e.into_inner());
            q.reader_waits = false;
        }
    }

    /// Queue a filled buffer for the hashing thread; false when it stopped.
    fn send(&self, buf: Arc<Vec<u8>>) -> bool {
        let mut q = self.shared.lock();
        if q.stopped {
            return false;
        }
        q.full.push_back(buf);
        if q.hasher_waits && q.full.len() >= WAKE_AT {
            self.shared.to_hasher.notify_one();
        }
        true
    }

    /// Fill the next buffer from the input and queue it; the buffer stays
    /// empty at the end of the input.
    fn refill(&mut self) -> io::Result<()> {
        self.current = None;
        self.pos = 0;
        if self.eof {
            return Ok(());
        }
        let Some(mut buf) = self.take_buffer() else {
            return Err(self.hasher_stopped());
        };
        // Zeroes only what a short last read left (once per buffer).
        buf.resize(CHUNK, 0);
        let mut n = 0;
        while n < CHUNK {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = Some(Error::Stream(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        buf.truncate(n);
        if n == 0 {
            // Back to the pool through the hashing thread's spares.
            self.shared.lock().spare.push(Arc::new(buf));
            return Ok(());
        }
        let buf = Arc::new(buf);
        if !self.send(Arc::clone(&buf)) {
            return Err(self.hasher_stopped());
        }
        self.current = Some(buf);
        Ok(())
    }

    /// The hashing thread stopped early: the recorder refused the bytes.
    fn hasher_stopped(&mut self) -> io::Error {
        self.join();
        let msg = match &self.failed {
            Some(e) => e.to_string(),
            None => "the layer hashing thread stopped".to_owned(),
        };
        if self.failed.is_none() {
            self.failed = Some(Error::Stream(io::Error::other(msg.clone())));
        }
        io::Error::other(msg)
    }

    /// Close the queue and wait for the worker; its error, if any, becomes
    /// the failure.
    fn join(&mut self) {
        {
            let mut q = self.shared.lock();
            q.closed = true;
        }
        self.shared.to_hasher.notify_all();
        let Some(worker) = self.worker.take() else {
            return;
        };
        match worker.join() {
            Ok(Ok(done)) => self.worked = Some(done),
            Ok(Err(e)) => self.failed = Some(e),
            Err(_) => {
                self.failed = Some(Error::Stream(io::Error::other(
                    "the layer hashing thread panicked",
                )))
            }
        }
    }

    /// The error that stopped the stream, if any: the recorder's verdict on
    /// the bytes read so far comes first.
    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        let input = self.failed.take();
        self.join();
        self.failed.take().or(input)
    }

    /// Read the rest of the stream (bytes after the tar's end count in the
    /// diffID), then return the diffID and the tar-split writer.
    pub(crate) fn finish(mut self) -> Result<(DiffId, W), Error> {
        loop {
            match self.fill_buf() {
                Ok([]) => break,
                Ok(b) => {
                    let n = b.len();
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.take_failure().unwrap_or(Error::Stream(e))),
            }
        }
        self.join();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let Some((hasher, recorder)) = self.worked.take() else {
            return Err(Error::Stream(io::Error::other(
                "the layer hashing thread ended without a result",
            )));
        };
        let out = recorder.finish()?;
        let diff = DiffId(Digest::from_bytes(hasher.finalize().into()));
        Ok((diff, out))
    }
}

impl<R: Read, W: Write + Send + 'static> Drop for Tee<R, W> {
    fn drop(&mut self) {
        // Never leave the hashing thread waiting for buffers.
        self.join();
    }
}

impl<R: Read, W: Write + Send + 'static> BufRead for Tee<R, W> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.failed.is_some() {
            return Err(io::Error::other("layer stream already failed"));
        }
        let done = self.current.as_ref().is_none_or(|b| self.pos >= b.len());
        if done {
            self.refill()?;
        }
        Ok(match &self.current {
            Some(b) => &b[self.pos..],
            None => &[],
        })
    }

    fn consume(&mut self, amt: usize) {
        let len = self.current.as_ref().map_or(0, |b| b.len());
        self.pos = (self.pos + amt).min(len);
    }
}

impl<R: Read, W: Write + Send + 'static> Read for Tee<R, W> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The hashing thread: takes filled buffers until the queue is closed and
/// empty, or the recorder refuses the bytes.
fn hash<W: Write>(shared: Arc<Shared>, tar_split: W) -> Worked<W> {
    let _stop = StopGuard(Arc::clone(&shared));
    let mut hasher = Sha256::new();
    let mut recorder = Recorder::new(tar_split);
    let mut q = shared.lock();
    loop {
        match q.full.pop_front() {
            Some(buf) => {
                drop(q);
                hasher.update(&buf[..]);
                recorder.observe(&buf[..])?;
                q = shared.lock();
                q.spare.push(buf);
                // A waiting reader, too, is woken with a batch to fill.
                if q.reader_waits && (q.spare.len() >= WAKE_AT || q.full.is_empty()) {
                    shared.to_reader.notify_one();
                }
            }
            None if q.closed => return Ok((hasher, recorder)),
            None => {
                // Caught up: sleep (releasing the queue) until a batch
                // waits, the stream ends, or the reader, out of buffers,
                // has queued all it had.
                q.hasher_waits = true;
                loop {
                    q = shared.to_hasher.wait(q).unwrap_or_else(|e| e.into_inner());
                    if q.closed || q.full.len() >= WAKE_AT || (q.reader_waits && !q.full.is_empty())
                    {
                        break;
                    }
                }
                q.hasher_waits = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of one file of `size` bytes, then `trailing` bytes after the
    /// end-of-archive blocks.
    fn layer(size: usize, trailing: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        b.append_data(&mut h, "f", &data[..]).unwrap();
        let mut out = b.into_inner().unwrap();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out.extend(std::iter::repeat_n(9u8, trailing));
        out
    }

    #[test]
    fn every_byte_is_hashed_once_through_many_recycled_buffers() {
        // More than BUFFERS buffers' worth, and not a multiple of CHUNK.
        for (size, trailing) in [(0, 0), (CHUNK - 512, 0), (19 * CHUNK + 3, 5000)] {
            let bytes = layer(size, trailing);
            let mut tee = Tee::new(&bytes[..], Vec::new()).unwrap();
            // Consume in odd steps, as the apply does.
            let mut seen = 0;
            let mut small = [0u8; 777];
            while seen < bytes.len() / 2 {
                let n = tee.read(&mut small).unwrap();
                assert_eq!(&small[..n], &bytes[seen..seen + n]);
                seen += n;
            }
            let (diff, split) = tee.finish().unwrap();
            assert_eq!(diff.0, Digest::sha256_of(&bytes), "{size} {trailing}");
            assert!(!split.is_empty());
        }
    }

    #[test]
    fn a_reader_faster_than_the_hashing_thread_waits_for_it_without_a_hang() {
        // Whole buffers consumed at once: the reader runs out of buffers
        // again and again, and the hashing thread drains the queue while
        // it waits.
        let bytes = layer(48 * CHUNK, 0);
        for _ in 0..3 {
            let mut tee = Tee::new(&bytes[..], Vec::new()).unwrap();
            let mut seen = 0;
            loop {
                let n = tee.fill_buf().unwrap().len();
                if n == 0 {
                    break;
                }
                tee.consume(n);
                seen += n;
            }
            assert_eq!(seen, bytes.len());
            let (diff, _) = tee.finish().unwrap();
            assert_eq!(diff.0, Digest::sha256_of(&bytes));
        }
    }

    #[test]
    fn the_recorder_s_error_stops_the_stream_without_a_hang() {
        let garbage = vec![0x5au8; 12 * CHUNK];
        let mut tee = Tee::new(&garbage[..], Vec::new()).unwrap();
        let mut sink = Vec::new();
        assert!(tee.read_to_end(&mut sink).is_err());
        assert!(matches!(tee.take_failure(), Some(Error::Tar { .. })));
        let tee = Tee::new(&garbage[..], Vec::new()).unwrap();
        assert!(matches!(tee.finish(), Err(Error::Tar { .. })));
    }

    #[test]
    fn a_failing_input_is_reported_and_dropping_midway_does_not_hang() {
        struct Fails(usize);
        impl Read for Fails {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(0);
                self.0 -= n;
                Ok(n)
            }
        }
        let tee = Tee::new(Fails(3 * CHUNK), Vec::new()).unwrap();
        match tee.finish() {
            Err(Error::Stream(e)) => assert!(e.to_string().contains("disk on fire"), "{e}"),
            other => panic!("{:?}", other.map(|(d, _)| d)),
        }
        let bytes = layer(15 * CHUNK, 0);
        let mut tee = Tee::new(&bytes[..], Vec::new()).unwrap();
        let mut buf = [0u8; 4096];
        tee.read_exact(&mut buf).unwrap();
        drop(tee);
    }
}
