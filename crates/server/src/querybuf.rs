//! The query buffer of each connection as CLIENT LIST shows it (`qbuf`,
//! `qbuf-free`) and its resizing, as Redis's `clientsCronResizeQueryBuffer`: a buffer
//! that wastes more than 4 KB is freed once its client has been idle for over two
//! seconds, and a buffer larger than 32 KB and more than twice the peak of recent
//! requests is shrunk (never below the 16 KB a read uses, so an active client keeps
//! reading in one syscall as before).
//!
//! Growth follows the bytes that arrived, never the length a client announces: a
//! bulk of 32 KB or more (Redis's PROTO_MBULK_BIG_ARG) gets a buffer of the bytes
//! still missing, capped at twice what is held (at least 64 KB) once less than a
//! read's worth (16 KB) of room is left, so the buffer doubles as data arrives and the bulk still ends in its final buffer (the
//! argument is a view of it, no copy at the end). Each doubling copies what is held
//! into a fresh allocation (`grow`): only those bytes are touched, so the resident
//! memory of a partly sent bulk is what was sent (Redis reserves the whole bulk as
//! address space and gets the same resident figure from the kernel). Smaller bulks
//! reserve what is missing at once, as before.
//!
//! The connection task owns its buffer; it publishes the figures in [`Stats`]
//! (atomics, no lock) after each read and after each batch, and the server cron
//! decides from them, asking the task to resize through its message channel only
//! when there is something to do.

use crate::clientmem::ClientMem;
use crate::state::{ClientInfo, ConnMsg, Inner};
use bytes::BytesMut;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a read reserves (Redis's PROTO_IOBUF_LEN).
pub(crate) const IOBUF_LEN: usize = 16 * 1024;
/// Larger buffers are candidates for shrinking (Redis's PROTO_RESIZE_THRESHOLD).
const RESIZE_THRESHOLD: usize = 32 * 1024;
/// Only a buffer wasting more than this is resized.
const MIN_WASTE: usize = 4 * 1024;
/// Bulks this large grow with the data (Redis's PROTO_MBULK_BIG_ARG).
pub(crate) const BIG_ARG: usize = 32 * 1024;
/// The first room given to a big bulk, and the least a growth step adds.
const GROW_MIN: usize = 64 * 1024;
/// The reply buffer a connection starts with (CLIENT LIST `rbs`), counted in its
/// memory; the cron grows an active client's back to it (Redis's
/// PROTO_REPLY_CHUNK_BYTES).
pub(crate) const RBS: usize = 16 * 1024;
/// The least the cron shrinks a reply buffer to (Redis's PROTO_REPLY_MIN_BYTES).
const REPLY_MIN: usize = 1024;

/// Reply buffer resizing (Redis's `clientsCronResizeOutputBuffer`): on, and how
/// often a client's peak is measured again (ms, -1: never), as DEBUG REPLYBUFFER
/// sets them.
pub(crate) static REPLY_RESIZING: AtomicBool = AtomicBool::new(true);
pub(crate) static REPLY_PEAK_RESET_MS: AtomicI64 = AtomicI64::new(REPLY_PEAK_RESET_DEFAULT);
pub(crate) const REPLY_PEAK_RESET_DEFAULT: i64 = 5000;
/// INFO stats `reply_buffer_shrinks` / `reply_buffer_expands`.
pub(crate) static REPLY_SHRINKS: AtomicU64 = AtomicU64::new(0);
pub(crate) static REPLY_EXPANDS: AtomicU64 = AtomicU64::new(0);

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
    /// The reply buffer's allocation (`rbs`) and the most replies it held at once
    /// since the peak was last reset (`rbp`), and when that was.
    reply_size: AtomicUsize,
    reply_peak: AtomicUsize,
    /// ms since the epoch (0: not yet).
    reply_peak_reset: AtomicU64,
    /// The memory the connection holds as last published (query buffer, arguments
    /// of a request still arriving, reply buffer, MULTI queue, pub/sub and WATCH
    /// bookkeeping): CLIENT LIST `tot-mem` less `omem`; its changes go to
    /// [`ClientMem`].
    mem: AtomicUsize,
    /// Evicted by `maxmemory-clients` (closing).
    evicted: AtomicBool,
    /// `mem` when evicted (counted as leaving until the connection is gone).
    evicted_mem: AtomicUsize,
}

impl Stats {
    /// (`qbuf`, `qbuf-free`, `argv-mem`).
    pub(crate) fn shown(&self) -> (usize, usize, usize) {
        let len = self.len.load(Relaxed);
        let free = self.alloc.load(Relaxed).saturating_sub(len);
        (len, free, self.argv.load(Relaxed))
    }

    /// (`rbs`, `rbp`).
    pub(crate) fn reply_shown(&self) -> (usize, usize) {
        (self.reply_size.load(Relaxed), self.reply_peak.load(Relaxed))
    }

    #[cfg(test)]
    pub(crate) fn alloc(&self) -> usize {
        self.alloc.load(Relaxed)
    }

    /// See the field `mem`.
    pub(crate) fn mem(&self) -> usize {
        self.mem.load(Relaxed)
    }

    pub(crate) fn evicted(&self) -> bool {
        self.evicted.load(Relaxed)
    }

    /// Marks the client evicted; returns the memory it is counted as releasing.
    pub(crate) fn mark_evicted(&self) -> usize {
        if self.evicted.swap(true, Relaxed) {
            return 0;
        }
        let m = self.mem.load(Relaxed);
        self.evicted_mem.store(m, Relaxed);
        m
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
    /// The figure last added to `cm` (`Stats::mem`), and the one to add.
    figure: usize,
    want: usize,
    /// Bytes of the commands queued in MULTI (set by `Conn::dispatch`).
    pub(crate) multi: usize,
    /// The reply buffer's allocation (replies of the last batch).
    reply_buf: usize,
    /// Per-client bookkeeping counted as Redis does (`clientmem::overhead`).
    overhead: usize,
    /// The cron shrank the buffer below a read's worth: no room is made before
    /// data arrives (`regrow` then).
    parked: bool,
    regrow: bool,
    cm: Arc<ClientMem>,
}

impl Drop for QueryBuf {
    fn drop(&mut self) {
        self.cm
            .gone(self.figure, self.stats.evicted_mem.swap(0, Relaxed));
    }
}

impl QueryBuf {
    pub(crate) fn new(alloc: usize, cm: Arc<ClientMem>) -> QueryBuf {
        let stats = Arc::new(Stats::default());
        stats.alloc.store(alloc, Relaxed);
        stats.reply_size.store(RBS, Relaxed);
        let mut qb = QueryBuf {
            stats,
            unprocessed: 0,
            alloc,
            figure: 0,
            want: 0,
            multi: 0,
            reply_buf: RBS,
            overhead: 0,
            parked: false,
            regrow: false,
            cm,
        };
        qb.publish(0, 0);
        qb
    }

    /// (`qbuf`, `qbuf-free`) of the connection asking (CLIENT INFO / LIST while its
    /// batch runs).
    pub(crate) fn shown(&self) -> (usize, usize) {
        (
            self.unprocessed,
            self.alloc.saturating_sub(self.unprocessed),
        )
    }

    /// Before a read: room for it (see the module docs). `bulk`: the length of
    /// the bulk being read and the bytes of it (with its CRLF) still missing, from
    /// the parser. Returns true
    /// when the clients' memory is now at or over `maxmemory-clients` (the caller
    /// runs the eviction before reading).
    #[inline]
    pub(crate) fn before_read(
        &mut self,
        rbuf: &mut BytesMut,
        bulk: Option<(usize, usize)>,
        parsed: usize,
    ) -> bool {
        let spare = rbuf.capacity() - rbuf.len();
        match bulk {
            Some((len, missing)) if len >= BIG_ARG => {
                // Room for a read of at least IOBUF_LEN (or the rest) is enough;
                // otherwise the buffer doubles (at least GROW_MIN more), never past
                // the end of the bulk.
                if spare >= missing.min(IOBUF_LEN) {
                    return false;
                }
                grow(rbuf, missing.min(rbuf.len().max(GROW_MIN)));
            }
            Some((_, missing)) => {
                if spare >= missing {
                    return false;
                }
                rbuf.reserve(missing);
            }
            // A buffer the cron shrank or freed stays so until data arrives (the
            // read takes what fits in the room the reader makes); then it gets a
            // read's worth of room again.
            None if self.parked => return false,
            None if self.regrow || rbuf.capacity() == 0 => {
                self.regrow = false;
                if spare >= IOBUF_LEN {
                    return false;
                }
                rbuf.reserve(IOBUF_LEN);
            }
            // Room for a read of IOBUF_LEN less what is held, as Redis reads
            // PROTO_IOBUF_LEN at a time. Every batch is split off the front of the
            // buffer, leaving less room behind it: without this, once a few batches
            // had gone the read took only the tail of the allocation (part of the
            // next pipeline: one more read, and one more reply write, per batch; MSET
            // -P 16, 4.5 KB a pipeline, read 1.29 times a batch). With the batches'
            // views dropped, `reserve` moves what is held (a partial request) to the
            // start of the same allocation: no allocation.
            None => {
                let want = IOBUF_LEN.saturating_sub(rbuf.len());
                if spare >= want {
                    return false;
                }
                rbuf.reserve(want);
            }
        }
        self.alloc = rbuf.capacity();
        self.publish(rbuf.len(), parsed)
    }

    /// After a read of `n` bytes (`parsed`: bytes of the arguments of a request
    /// still arriving that the parser took out of the buffer). True: the clients'
    /// memory is at or over `maxmemory-clients`.
    #[inline]
    pub(crate) fn after_read(&mut self, n: usize, rbuf: &BytesMut, parsed: usize) -> bool {
        self.unprocessed += n;
        self.alloc = self.alloc.max(rbuf.capacity());
        if self.parked {
            self.parked = false;
            self.regrow = true;
        }
        // Only this task raises the peak (the cron lowers it): no read-modify-write
        // on the read path.
        if self.unprocessed > self.stats.peak.load(Relaxed) {
            self.stats.peak.store(self.unprocessed, Relaxed);
        }
        self.publish(rbuf.len(), parsed)
    }

    /// The connection replaced its buffer (a large one, once emptied).
    #[inline]
    pub(crate) fn replaced(&mut self, rbuf: &BytesMut) {
        self.alloc = rbuf.capacity();
    }

    /// After a batch ran: what is left is the part of a request still arriving
    /// (`in_multi`: a MULTI is open, its queue counts); `reply_buf` is the reply
    /// buffer's allocation and `replies` the bytes it holds. True: the clients'
    /// memory is at or over `maxmemory-clients`.
    #[inline]
    pub(crate) fn after_batch(
        &mut self,
        rbuf: &BytesMut,
        parsed: usize,
        in_multi: bool,
        (reply_buf, replies): (usize, usize),
        overhead: usize,
    ) -> bool {
        if !in_multi {
            self.multi = 0;
        }
        if reply_buf != self.reply_buf {
            self.stats.reply_size.store(reply_buf, Relaxed);
        }
        // Only this task raises the peak (the cron lowers it).
        if replies > self.stats.reply_peak.load(Relaxed) {
            self.stats.reply_peak.store(replies, Relaxed);
        }
        self.reply_buf = reply_buf;
        self.overhead = overhead;
        self.unprocessed = rbuf.len() + parsed;
        self.publish(rbuf.len(), parsed)
    }

    /// The connection replaced its reply buffer (a large one, once written).
    pub(crate) fn reply_buf_replaced(&mut self, capacity: usize) {
        self.reply_buf = capacity;
        self.stats.reply_size.store(capacity, Relaxed);
        let (len, argv) = (self.stats.len.load(Relaxed), self.stats.argv.load(Relaxed));
        self.publish(len, argv);
    }

    /// Publishes the figures; the memory figure goes to the clients' total only
    /// when it changed (no shared write for a connection with a steady buffer).
    #[inline]
    fn publish(&mut self, unparsed: usize, parsed: usize) -> bool {
        self.stats.len.store(unparsed, Relaxed);
        self.stats.argv.store(parsed, Relaxed);
        self.stats.alloc.store(self.alloc, Relaxed);
        let figure = self.alloc + parsed + self.reply_buf + self.multi + self.overhead;
        self.want = figure;
        if figure == self.figure {
            return false;
        }
        if self.cm.change(self.figure, figure) {
            // Reaching the limit: added under the lock (`commit`).
            return true;
        }
        self.figure = figure;
        self.stats.mem.store(figure, Relaxed);
        false
    }

    /// Under the server lock, before the eviction: adds the figure `publish` left
    /// out because it reaches the limit.
    pub(crate) fn commit(&mut self) {
        if self.want != self.figure {
            self.cm.force(self.figure, self.want);
            self.figure = self.want;
            self.stats.mem.store(self.want, Relaxed);
        }
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
        self.parked = target < IOBUF_LEN;
        self.alloc = rbuf.capacity();
        self.unprocessed = rbuf.len() + parsed;
        self.publish(rbuf.len(), parsed);
    }
}

/// The cron's request: a reply buffer of `target` bytes, unless replies are
/// waiting in it.
pub(crate) fn resize_reply(qb: &mut QueryBuf, wbuf: &mut BytesMut, target: usize) {
    if wbuf.is_empty() && wbuf.capacity() != target {
        *wbuf = BytesMut::with_capacity(target);
        qb.reply_buf_replaced(wbuf.capacity());
    }
}

/// Moves what `rbuf` holds into a fresh allocation with `extra` bytes of room.
/// Not `BytesMut::reserve`: that reallocates, and the allocator copies the whole old
/// allocation (touching every page of the new one), not just the bytes held.
fn grow(rbuf: &mut BytesMut, extra: usize) {
    let mut next = BytesMut::with_capacity(rbuf.len() + extra);
    next.extend_from_slice(rbuf);
    *rbuf = next;
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
    let now_ms = redsnap_engine::now_ms();
    for c in inner.clients.values() {
        if c.id % groups != tick % groups {
            continue;
        }
        visit(c, now, now_ms);
    }
}

fn visit(c: &ClientInfo, now: Instant, now_ms: u64) {
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
    visit_reply(c, now_ms);
}

/// Redis's `clientsCronResizeOutputBuffer`: a reply buffer whose peak stayed under
/// half of it shrinks to the peak (at least 1 KB: an idle client keeps 1 KB, not
/// 16); one that filled up doubles, up to 16 KB (larger batches grow it as they
/// write, and it shrinks again once they stop). The peak is measured again every
/// `peak-reset-time`.
fn visit_reply(c: &ClientInfo, now_ms: u64) {
    if !REPLY_RESIZING.load(Relaxed) {
        return;
    }
    let s = &c.qb;
    let (size, peak) = (s.reply_size.load(Relaxed), s.reply_peak.load(Relaxed));
    let target = if size / 2 >= REPLY_MIN && peak < size / 2 {
        REPLY_SHRINKS.fetch_add(1, Relaxed);
        Some(REPLY_MIN.max(peak + 1))
    } else if size < RBS && peak >= size {
        REPLY_EXPANDS.fetch_add(1, Relaxed);
        Some(RBS.min(size * 2))
    } else {
        None
    };
    if let Some(t) = target {
        let _ = c.tx.send(ConnMsg::ResizeReplyBuf(t));
    }
    // Only the cron reads and writes the reset time.
    let every = REPLY_PEAK_RESET_MS.load(Relaxed);
    if every >= 0 && now_ms.saturating_sub(s.reply_peak_reset.load(Relaxed)) >= every as u64 {
        s.reply_peak_reset.store(now_ms, Relaxed);
        s.reply_peak.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_keeps_pending_bytes_and_reports_the_new_room() {
        let mut rbuf = BytesMut::with_capacity(IOBUF_LEN);
        let mut qb = QueryBuf::new(rbuf.capacity(), Arc::default());
        rbuf.extend_from_slice(b"*1\r\n$4\r\nPI");
        qb.after_read(10, &rbuf, 0);
        assert_eq!(qb.stats.shown().0, 10);
        // Too small for what is held: nothing happens.
        qb.resize(&mut rbuf, 0, 4);
        assert_eq!(qb.stats.alloc(), IOBUF_LEN);
        qb.resize(&mut rbuf, 0, 64);
        assert_eq!(&rbuf[..], b"*1\r\n$4\r\nPI");
        assert!(qb.stats.alloc() >= 64 && qb.stats.alloc() < IOBUF_LEN);
        // Freed when empty; room comes back once data arrives.
        rbuf.clear();
        qb.after_batch(&rbuf, 0, false, (RBS, 0), 0);
        qb.resize(&mut rbuf, 0, 0);
        assert_eq!(qb.stats.shown(), (0, 0, 0));
        qb.before_read(&mut rbuf, None, 0);
        assert_eq!(rbuf.capacity(), 0);
        rbuf.extend_from_slice(b"*1");
        qb.after_read(2, &rbuf, 0);
        qb.before_read(&mut rbuf, None, 0);
        assert!(rbuf.capacity() - rbuf.len() >= IOBUF_LEN);
    }

    #[test]
    fn batches_split_off_the_front_leave_a_full_read_of_room_in_the_same_allocation() {
        let mut rbuf = BytesMut::with_capacity(IOBUF_LEN);
        let mut qb = QueryBuf::new(rbuf.capacity(), Arc::default());
        let start = rbuf.as_ptr();
        let batch = vec![b'x'; 4500];
        for round in 0..10 {
            // A pipeline arrives with the start of the next one (60 bytes); the
            // batch is taken out and dropped, as a connection does.
            rbuf.extend_from_slice(&batch);
            rbuf.extend_from_slice(&[b'y'; 60]);
            drop(rbuf.split_to(batch.len()).freeze());
            qb.before_read(&mut rbuf, None, 0);
            assert!(
                rbuf.capacity() - rbuf.len() >= IOBUF_LEN - rbuf.len(),
                "round {round}: room {}",
                rbuf.capacity() - rbuf.len()
            );
            // The partial request moved to the start of the one allocation.
            assert_eq!(rbuf.as_ptr(), start);
            assert_eq!(&rbuf[..], &[b'y'; 60][..]);
            rbuf.clear();
        }
    }

    #[test]
    fn a_big_bulk_grows_with_the_bytes_held_not_the_announced_length() {
        let cm = Arc::new(ClientMem::default());
        let mut rbuf = BytesMut::with_capacity(IOBUF_LEN);
        let mut qb = QueryBuf::new(rbuf.capacity(), cm.clone());
        let announced = 512 << 20;
        // Only the header arrived: the read room already there is enough.
        qb.before_read(&mut rbuf, Some((announced, announced + 2)), 0);
        assert_eq!(rbuf.capacity(), IOBUF_LEN);
        // Each step at most doubles what is held (plus the minimum step).
        let mut held = 0;
        while held < 1 << 20 {
            let room = rbuf.capacity() - rbuf.len();
            rbuf.extend_from_slice(&vec![b'x'; room]);
            held += room;
            qb.after_read(room, &rbuf, 0);
            qb.before_read(&mut rbuf, Some((announced, announced + 2 - held)), 0);
            assert!(rbuf.capacity() <= 2 * held.max(GROW_MIN));
            assert_eq!(rbuf.len(), held);
        }
        // The total follows the connection's figure; a small bulk gets what is
        // missing at once, never more.
        assert_eq!(qb.stats.mem(), rbuf.capacity() + RBS);
        let mut small = BytesMut::new();
        qb.before_read(&mut small, Some((1000, 1002)), 0);
        assert!(small.capacity() >= 1002 && small.capacity() < IOBUF_LEN);
        drop(qb);
        assert!(!cm.over());
    }
}
