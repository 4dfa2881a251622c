//! The replication backlog: the last `repl-backlog-size` bytes of the stream, so that
//! a replica that lost its link can continue from its offset (PSYNC answered with
//! `+CONTINUE`) instead of loading a whole new RDB file.
//!
//! Offsets are Redis's: the stream's bytes are numbered from 1, `master_repl_offset`
//! is the number of the last byte produced, and `first` (INFO
//! `repl_backlog_first_byte_offset`) the number of the oldest byte held. A backlog
//! created at offset N holds nothing and has `first` = N + 1.

use std::collections::VecDeque;

/// Redis's CONFIG_REPL_BACKLOG_MIN_SIZE: a smaller `repl-backlog-size` is raised to it.
pub(crate) const MIN_SIZE: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Backlog {
    buf: VecDeque<u8>,
    size: usize,
    first: u64,
}

impl Backlog {
    /// An empty backlog whose next byte is `offset + 1`.
    pub(crate) fn new(size: usize, offset: u64) -> Backlog {
        Backlog {
            buf: VecDeque::new(),
            size: size.max(MIN_SIZE),
            first: offset + 1,
        }
    }

    /// Appends stream bytes, dropping the oldest beyond the size.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.size {
            self.first += (self.buf.len() + data.len() - self.size) as u64;
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.size..]);
            return;
        }
        self.buf.extend(data);
        self.trim();
    }

    fn trim(&mut self) {
        if self.buf.len() > self.size {
            let excess = self.buf.len() - self.size;
            self.buf.drain(..excess);
            self.first += excess as u64;
        }
    }

    /// CONFIG SET repl-backlog-size: keeps the newest bytes that fit.
    pub(crate) fn resize(&mut self, size: usize) {
        self.size = size.max(MIN_SIZE);
        self.trim();
        if self.buf.capacity() > 2 * self.size.max(self.buf.len()) {
            self.buf.shrink_to_fit();
        }
    }

    /// The effective size (`repl_backlog_size`).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// `repl_backlog_first_byte_offset`.
    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// `repl_backlog_histlen`.
    pub(crate) fn histlen(&self) -> u64 {
        self.buf.len() as u64
    }

    /// The bytes from stream byte `offset` to the end, if the backlog still holds
    /// them (Redis accepts `first <= offset <= first + histlen`; at the upper bound
    /// there is nothing to send).
    pub(crate) fn since(&self, offset: u64) -> Option<Vec<u8>> {
        if offset < self.first || offset > self.first + self.histlen() {
            return None;
        }
        let skip = (offset - self.first) as usize;
        let (a, b) = self.buf.as_slices();
        let mut out = Vec::with_capacity(self.buf.len() - skip);
        if skip < a.len() {
            out.extend_from_slice(&a[skip..]);
            out.extend_from_slice(b);
        } else {
            out.extend_from_slice(&b[skip - a.len()..]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `n` bytes whose byte numbered `i` (from 1) is `i % 251`.
    fn bytes(from: u64, n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| ((from + i) % 251) as u8).collect()
    }

    #[test]
    fn keeps_the_newest_bytes_with_redis_offsets() {
        let mut b = Backlog::new(100, 1000);
        assert_eq!((b.first(), b.histlen(), b.size()), (1001, 0, MIN_SIZE));
        assert_eq!(b.since(1001), Some(vec![]));
        assert_eq!(b.since(1000), None);
        assert_eq!(b.since(1002), None);
        let mut off = 1000u64;
        let mut push = |b: &mut Backlog, n: usize| {
            b.push(&bytes(off + 1, n));
            off += n as u64;
        };
        push(&mut b, 10_000);
        assert_eq!((b.first(), b.histlen()), (1001, 10_000));
        assert_eq!(b.since(1001 + 9_990), Some(bytes(1001 + 9_990, 10)));
        push(&mut b, 10_000);
        // Only the last MIN_SIZE bytes remain; the first byte moved accordingly.
        let last = 21_000u64;
        assert_eq!(b.histlen(), MIN_SIZE as u64);
        assert_eq!(b.first(), last - MIN_SIZE as u64 + 1);
        assert_eq!(b.since(b.first()), Some(bytes(b.first(), MIN_SIZE)));
        assert_eq!(b.since(b.first() - 1), None);
        assert_eq!(b.since(last + 1), Some(vec![]));
        assert_eq!(b.since(last + 2), None);
        // A write larger than the backlog keeps its tail.
        push(&mut b, 3 * MIN_SIZE);
        let last = last + 3 * MIN_SIZE as u64;
        assert_eq!(b.first(), last - MIN_SIZE as u64 + 1);
        assert_eq!(b.since(last - 4), Some(bytes(last - 4, 5)));
    }

    #[test]
    fn resize_keeps_what_fits() {
        let mut b = Backlog::new(1 << 20, 0);
        b.push(&bytes(1, 100_000));
        assert_eq!((b.first(), b.histlen()), (1, 100_000));
        b.resize(1);
        assert_eq!(b.size(), MIN_SIZE);
        assert_eq!(b.first(), 100_000 - MIN_SIZE as u64 + 1);
        assert_eq!(b.since(b.first()), Some(bytes(b.first(), MIN_SIZE)));
        b.resize(1 << 20);
        b.push(&bytes(100_001, 10));
        assert_eq!(b.histlen(), MIN_SIZE as u64 + 10);
        assert_eq!(b.since(100_001), Some(bytes(100_001, 10)));
    }
}
