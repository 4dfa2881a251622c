//! The query buffer of each connection as CLIENT LIST shows it (`qbuf`,
//! `qbuf-free`) and its resizing, as Redis's `clientsCronResizeQueryBuffer`: a buffer
//! that wastes more than 4 KB is freed once its client has been idle for over two
//! seconds, and a buffer larger than 32 KB and more than twice the peak of recent
//! requests is shrunk (never below the 16 KB a read uses, so an active client keeps
//! reading in one syscall as before).
//!
//! The connection task owns its buffer; it publishes the figures in [`Stats`]
//! (atomics, no lock) after each read and after each batch, and the server cron
//! decides from them, asking the task to resize through its message channel only
//! when there is something to do.

use crate::state::{ClientInfo, ConnMsg, Inner};
use bytes::BytesMut;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a read reserves (Redis's PROTO_IOBUF_LEN).
pub(crate) const IOBUF_LEN: usize = 16 * 1024;
/// Larger buffers are candidates for shrinking (Redis's PROTO_RESIZE_THRESHOLD).
const RESIZE_THRESHOLD: usize = 32 * 1024;
/// Only a buffer wasting more than this is resized.
const MIN_WASTE: usize = 4 * 1024;

/// A connection's query buffer figures, shared with its `ClientInfo`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes received and not yet parsed (`qbuf`).
    len: AtomicUsize,
    /// Bytes of the arguments parsed so far of a request still arriving
    /// (`argv-mem`).
    argv: AtomicUsize,
    /// Bytes the buffer holds room for (`qbuf` + `qbuf-free`).
    alloc: AtomicUsize,
    /// Most bytes held at once since the cron last looked.
    peak: AtomicUsize,
}

impl Stats {
    /// (`qbuf`, `qbuf-free`, `argv-mem`).
    pub(crate) fn shown(&self) -> (usize, usize, usize) {
        let len = self.len.load(Relaxed);
        let free = self.alloc.load(Relaxed).saturating_sub(len);
        (len, free, self.argv.load(Relaxed))
    }

    pub(crate) fn alloc(&self) -> usize {
        self.alloc.load(Relaxed)
    }
}

/// The connection task's side.
#[derive(Debug)]
pub(crate) struct QueryBuf {
    pub(crate) stats: Arc<Stats>,
    /// Bytes received and not yet executed, the batch being executed included (as
    /// Redis's buffer keeps a batch until it has run).
    unprocessed: usize,
    alloc: usize,
}

impl QueryBuf {
    pub(crate) fn new(alloc: usize) -> QueryBuf {
        let stats = Arc::new(Stats::default());
        stats.alloc.store(alloc, Relaxed);
        QueryBuf {
            stats,
            unprocessed: 0,
            alloc,
        }
    }

    /// (`qbuf`, `qbuf-free`) of the connection asking (CLIENT INFO / LIST while its
    /// batch runs).
    pub(crate) fn shown(&self) -> (usize, usize) {
        (
            self.unprocessed,
            self.alloc.saturating_sub(self.unprocessed),
        )
    }

    /// Before a read: a buffer freed by the cron gets its read room back.
    #[inline]
    pub(crate) fn before_read(&mut self, rbuf: &mut BytesMut) {
        if rbuf.capacity() == 0 {
            rbuf.reserve(IOBUF_LEN);
            self.alloc = self.alloc.max(rbuf.capacity());
        }
    }

    /// After a read of `n` bytes (`parsed`: bytes of the arguments of a request
    /// still arriving that the parser took out of the buffer).
    #[inline]
    pub(crate) fn after_read(&mut self, n: usize, rbuf: &BytesMut, parsed: usize) {
        self.unprocessed += n;
        self.alloc = self.alloc.max(rbuf.capacity());
        self.publish(rbuf.len(), parsed);
        // Only this task raises the peak (the cron lowers it): no read-modify-write
        // on the read path.
        if self.unprocessed > self.stats.peak.load(Relaxed) {
            self.stats.peak.store(self.unprocessed, Relaxed);
        }
    }

    /// The connection replaced its buffer (a large one, once emptied).
    #[inline]
    pub(crate) fn replaced(&mut self, rbuf: &BytesMut) {
        self.alloc = rbuf.capacity();
    }

    /// After a batch ran: what is left is the part of a request still arriving.
    #[inline]
    pub(crate) fn after_batch(&mut self, rbuf: &BytesMut, parsed: usize) {
        self.unprocessed = rbuf.len() + parsed;
        self.publish(rbuf.len(), parsed);
    }

    #[inline]
    fn publish(&self, unparsed: usize, parsed: usize) {
        self.stats.len.store(unparsed, Relaxed);
        self.stats.argv.store(parsed, Relaxed);
        self.stats.alloc.store(self.alloc, Relaxed);
    }

    /// The cron's request: a buffer of `target` bytes (0: free it), unless it holds
    /// more than that by now.
    pub(crate) fn resize(&mut self, rbuf: &mut BytesMut, parsed: usize, target: usize) {
        if rbuf.len() + parsed > target {
            return;
        }
        let mut next = BytesMut::with_capacity(target);
        next.extend_from_slice(rbuf);
        *rbuf = next;
        self.alloc = rbuf.capacity();
        self.unprocessed = rbuf.len() + parsed;
        self.publish(rbuf.len(), parsed);
    }
}

/// Redis's `clientsCronResizeQueryBuffer` over the clients: run from the server
/// cron, `hz` times a second; each call looks at every client at most once per
/// second (at least five per call, as Redis), so that few clients are visited at
/// every tick.
pub(crate) fn cron(inner: &mut Inner, tick: u64, hz: u64) {
    let n = inner.clients.len();
    if n == 0 {
        return;
    }
    let per_tick = (n as u64 / hz.max(1)).max(5);
    let groups = (n as u64).div_ceil(per_tick).max(1);
    let now = Instant::now();
    for c in inner.clients.values() {
        if c.id % groups != tick % groups {
            continue;
        }
        visit(c, now);
    }
}

fn visit(c: &ClientInfo, now: Instant) {
    let s = &c.qb;
    let (len, alloc) = (s.len.load(Relaxed), s.alloc.load(Relaxed));
    let peak = s.peak.load(Relaxed).max(len);
    if alloc.saturating_sub(len) > MIN_WASTE {
        let idle = now.saturating_duration_since(c.last_active);
        let target = if idle > Duration::from_secs(2) {
            Some(len)
        } else if alloc > RESIZE_THRESHOLD && alloc / 2 > peak {
            Some(peak.max(IOBUF_LEN))
        } else {
            None
        };
        if let Some(t) = target {
            let _ = c.tx.send(ConnMsg::ResizeQueryBuf(t));
        }
    }
    // The peak is measured again until the next visit.
    s.peak.store(len, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_pending_bytes_and_reports_the_new_room() {
        let mut rbuf = BytesMut::with_capacity(IOBUF_LEN);
        let mut qb = QueryBuf::new(rbuf.capacity());
        rbuf.extend_from_slice(b"*1\r\n$4\r\nPI");
        qb.after_read(10, &rbuf, 0);
        assert_eq!(qb.stats.shown().0, 10);
        // Too small for what is held: nothing happens.
        qb.resize(&mut rbuf, 0, 4);
        assert_eq!(qb.stats.alloc(), IOBUF_LEN);
        qb.resize(&mut rbuf, 0, 64);
        assert_eq!(&rbuf[..], b"*1\r\n$4\r\nPI");
        assert!(qb.stats.alloc() >= 64 && qb.stats.alloc() < IOBUF_LEN);
        // Freed when empty, and room comes back before the next read.
        rbuf.clear();
        qb.after_batch(&rbuf, 0);
        qb.resize(&mut rbuf, 0, 0);
        assert_eq!(qb.stats.shown(), (0, 0, 0));
        qb.before_read(&mut rbuf);
        assert!(rbuf.capacity() >= IOBUF_LEN);
    }
}
