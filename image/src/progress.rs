//! Progress of long operations (load, save, OCI export, import, commit),
//! reported through a callback as layer bytes stream.

use std::io::{self, Read};

/// How far an operation has come, passed to a progress callback.
///
/// One layer at a time: reports come every 4 MiB of the layer's bytes, and
/// once more with `done` set when the layer's stream ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Index of the image being worked on (0-based).
    pub image: usize,
    /// Number of images.
    pub images: usize,
    /// Index of the layer being streamed (0-based).
    pub layer: usize,
    /// Number of layers of this image.
    pub layers: usize,
    /// Bytes of this layer streamed so far.
    pub bytes: u64,
    /// Expected bytes of this layer: the member or file size when reading
    /// (load, import, commit); the layer's content size when writing (save,
    /// export), a little less than its tar.
    pub total: u64,
    /// This layer's stream has ended (the last report of a layer).
    pub done: bool,
}

/// A progress callback, as the `*_with_progress` methods take it.
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Progress);

/// Counts the bytes read through it and reports them.
pub(crate) struct Counting<'a, 'p, R> {
    pub(crate) inner: R,
    pub(crate) state: Progress,
    pub(crate) report: Option<&'a mut (dyn FnMut(&Progress) + 'p)>,
}

impl<R: Read> Read for Counting<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.state.bytes;
        self.state.bytes += n as u64;
        if let Some(report) = self.report.as_deref_mut() {
            if n == 0 && !buf.is_empty() {
                if !self.state.done {
                    self.state.done = true;
                    report(&self.state);
                }
            } else if before >> 22 != self.state.bytes >> 22 {
                report(&self.state);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_4_mib_and_once_at_the_end() {
        let data = vec![7u8; 10 << 20];
        let mut seen = Vec::new();
        let mut cb = |p: &Progress| seen.push((p.bytes, p.done));
        let mut r = Counting {
            inner: &data[..],
            state: Progress {
                total: data.len() as u64,
                ..Progress::default()
            },
            report: Some(&mut cb),
        };
        let mut buf = vec![0u8; 1 << 20];
        while r.read(&mut buf).unwrap() > 0 {}
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        assert_eq!(seen, [(4 << 20, false), (8 << 20, false), (10 << 20, true)]);
    }
}
