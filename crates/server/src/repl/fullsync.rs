//! A full resynchronization's RDB file, produced off the server lock: the dataset is
//! a point-in-time copy taken under the lock in O(databases) (`Store::dataset`, the
//! copy BGSAVE takes), encoded on a thread of its own (niced) by the RDB writer
//! backups use.
//!
//! Where the bytes go: a plain TCP connection lends its socket to this thread
//! (`handoff.rs`), which writes the file itself, so the kernel's send and loopback
//! receive work is charged to a background thread rather than to the tokio workers
//! that answer other clients. A TLS connection's bytes go in chunks of about
//! 256 KB through its channel, at most `WINDOW` bytes ahead of what the connection
//! has written (the connection subtracts what it takes from
//! `ClientInfo::pending_out`). Either way a large dataset never sits in memory as a
//! whole file.
//!
//! Two forms, as Redis's: `$EOF:<40 random chars>\r\n<payload><same 40 chars>` for a
//! replica that announced `REPLCONF capa eof` (with `repl-diskless-sync yes`, the
//! default), streamed in one pass; `$<len>\r\n<payload>` otherwise (SYNC, redis-cli
//! --rdb), where the length must come first: the file is encoded once into an
//! unlinked temporary file (in the data directory, else the system's temporary
//! directory), sending `\n` keepalives every second meanwhile as Redis does to
//! replicas waiting for their RDB, then sent (sendfile(2) to a lent socket), as
//! Redis's disk-based transfer does.

use super::handoff::{Direct, Lent};
use crate::state::{ConnMsg, Shared};
use bytes::Bytes;
use redsnap_engine::key::Key;
use redsnap_engine::trie::prefetch;
use redsnap_engine::{Dataset, Db, Entry, Value};
use redsnap_persist::rdbfile::RdbWriter;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How far the encoder may run ahead of the socket (bytes queued in the channel).
const WINDOW: u64 = 2 << 20;

/// What one round of a spooled file's transfer sends to each replica (the slowest
/// sets the pace, as for the `$EOF` form).
const SLICE: u64 = 1 << 20;

/// One replica a full synchronization's file goes to.
pub(super) struct Target {
    pub id: u64,
    pub tx: UnboundedSender<ConnMsg>,
    /// The connection's count of queued output bytes (`ClientInfo::pending_out`).
    pub out: Arc<AtomicU64>,
    /// Why it stopped receiving (gone, timed out); the others go on.
    failed: Option<io::Error>,
    /// Its queue last went down then (for `repl-timeout`).
    progress: Instant,
    last: u64,
    /// The connection's answer to the lend request (`handoff.rs`), until taken.
    lend: Option<Receiver<Lent>>,
    /// Its socket, when the connection lent it: written by this thread.
    direct: Option<Direct>,
}

impl Target {
    pub fn new(
        id: u64,
        tx: UnboundedSender<ConnMsg>,
        out: Arc<AtomicU64>,
        lend: Receiver<Lent>,
    ) -> Target {
        Target {
            id,
            tx,
            out,
            failed: None,
            progress: Instant::now(),
            last: 0,
            lend: Some(lend),
            direct: None,
        }
    }
}

/// What one full synchronization needs, taken under the lock: one point-in-time
/// copy, encoded once and streamed to every replica of the job (replicas that asked
/// within `repl-diskless-sync-delay` of each other share it, as Redis's share one
/// fork).
pub(super) struct Job {
    pub targets: Vec<Target>,
    pub data: Dataset,
    pub aux: Vec<(String, String)>,
    /// `$EOF:` form (else `$<len>`).
    pub eof: bool,
    /// `repl-timeout`: a replica that reads nothing for this long is dropped.
    pub timeout: Duration,
    pub started: Instant,
    /// Where the `$<len>` form's file is spooled (the data directory, else the
    /// system's temporary directory).
    pub spool_dir: Option<PathBuf>,
}

/// What was sent: keys and payload bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub keys: u64,
    pub bytes: u64,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "replica gone")
}

/// Takes each connection's answer to its lend request: its socket (plain TCP), or
/// none (TLS: the channel). A connection that does not answer within `timeout`
/// (or is gone) stops receiving.
fn take_sockets(targets: &mut [Target], timeout: Duration) {
    for t in targets.iter_mut() {
        let Some(rx) = t.lend.take() else { continue };
        match rx.recv_timeout(timeout) {
            Ok(Lent { fd: Some(fd), back }) => t.direct = Some(Direct::new(fd, back)),
            Ok(Lent { fd: None, .. }) => {}
            Err(_) => t.failed = Some(gone()),
        }
    }
}

/// Sends bytes to every replica still receiving. A lent socket is written here,
/// until all is in the kernel; for the others, the bytes are queued in their
/// connection's channel, first waiting while one of them has more than `WINDOW`
/// bytes queued (the slowest sets the pace, as Redis's diskless transfer waits for
/// every replica's socket). A replica whose connection is gone or that read nothing
/// for `repl-timeout` stops receiving. Fails when none is left.
pub(super) fn send(targets: &mut [Target], timeout: Duration, b: &[u8]) -> io::Result<()> {
    loop {
        let mut wait = false;
        for t in targets
            .iter_mut()
            .filter(|t| t.failed.is_none() && t.direct.is_none())
        {
            let now = t.out.load(Ordering::Relaxed);
            if now <= WINDOW {
                continue;
            }
            if t.tx.is_closed() {
                t.failed = Some(gone());
            } else if now < t.last {
                t.progress = Instant::now();
                wait = true;
            } else if t.progress.elapsed() > timeout {
                t.failed = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the replica read nothing for repl-timeout seconds",
                ));
            } else {
                wait = true;
            }
            t.last = now;
        }
        if !wait {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut live = false;
    // One copy for all the channel targets, made only when there is one.
    let mut shared: Option<Bytes> = None;
    for t in targets.iter_mut().filter(|t| t.failed.is_none()) {
        let Target {
            tx, direct, failed, ..
        } = t;
        if let Some(d) = direct {
            match d.write_all(b, timeout, &|| tx.is_closed()) {
                Ok(()) => live = true,
                Err(e) => *failed = Some(e),
            }
            continue;
        }
        let b = shared
            .get_or_insert_with(|| Bytes::copy_from_slice(b))
            .clone();
        t.out.fetch_add(b.len() as u64, Ordering::Relaxed);
        if t.tx.send(ConnMsg::Raw(b)).is_err() {
            t.failed = Some(gone());
        } else {
            t.progress = Instant::now();
            live = true;
        }
    }
    if live {
        Ok(())
    } else {
        Err(gone())
    }
}

/// The payload's bytes, sent as they are encoded.
struct Chunks<'a> {
    targets: &'a mut [Target],
    timeout: Duration,
}

impl Write for Chunks<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.targets, self.timeout, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `$<len>` form's file, written to its spool file as it is encoded, with a
/// `\n` keepalive to the replicas every second (before the length line, where
/// replicas accept them, as Redis sends them while its child writes the file).
struct Spool<'a> {
    file: File,
    targets: &'a mut [Target],
    timeout: Duration,
    last: Instant,
}

impl Write for Spool<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            send(self.targets, self.timeout, b"\n")?;
        }
        self.file.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How far ahead of the encoder a key's object is asked of memory; its string's
/// bytes are asked half as far ahead (once the object is there to say where they
/// are).
const AHEAD: usize = 16;

/// A database's keys in order, each key's object and string bytes prefetched ahead
/// of use. The values of a large dataset are scattered over the heap and cold: one
/// cache miss for the object and one for the bytes, each waited for in turn, were
/// most of the encoder's time; prefetched, the misses overlap.
struct Prefetched<'a, I: Iterator<Item = (&'a Key, &'a Entry)>> {
    it: I,
    window: VecDeque<(&'a Key, &'a Entry)>,
}

fn prefetched<'a>(db: &'a Db) -> Prefetched<'a, impl Iterator<Item = (&'a Key, &'a Entry)>> {
    Prefetched {
        it: db.iter(),
        window: VecDeque::with_capacity(AHEAD),
    }
}

impl<'a, I: Iterator<Item = (&'a Key, &'a Entry)>> Iterator for Prefetched<'a, I> {
    type Item = (&'a Key, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        while self.window.len() < AHEAD {
            let Some(x) = self.it.next() else { break };
            // The object's address, computed without reading it.
            prefetch((x.1.value() as *const Value).cast());
            self.window.push_back(x);
        }
        if let Some((_, e)) = self.window.get(AHEAD / 2) {
            if let Value::Str(b) = e.value() {
                prefetch(b.as_ptr());
                if b.len() > 64 {
                    prefetch(b[64..].as_ptr());
                }
            }
        }
        self.window.pop_front()
    }
}

/// Encodes the dataset as one RDB file: function libraries, then each non-empty
/// database with its sizes, keys with their deadlines.
fn encode<W: Write>(w: W, data: &Dataset, aux: &[(String, String)]) -> io::Result<(W, Sent)> {
    let mut wr = RdbWriter::new(w, aux)?;
    for code in &data.libraries {
        wr.write_function(code)?;
    }
    for (i, db) in data.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        wr.select_db(i as u64, Some((db.len() as u64, db.volatile_len() as u64)))?;
        for (k, e) in prefetched(db) {
            wr.write_key(i as u64, k.as_bytes(), e.value(), e.expire_at())?;
        }
    }
    let (w, stats) = wr.finish()?;
    Ok((
        w,
        Sent {
            keys: stats.keys,
            bytes: stats.bytes,
        },
    ))
}

/// Produces and sends the payload (header, file, trailer) for `job`'s replicas.
pub(super) fn produce(job: &mut Job) -> io::Result<Sent> {
    let Job {
        targets,
        data,
        aux,
        eof,
        timeout,
        spool_dir,
        ..
    } = job;
    let timeout = *timeout;
    take_sockets(targets, timeout);
    if *eof {
        let mark: String = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rand::random::<u8>() as usize % 16]))
            .collect();
        send(targets, timeout, format!("$EOF:{mark}\r\n").as_bytes())?;
        let (_, sent) = encode(Chunks { targets, timeout }, data, aux)?;
        send(targets, timeout, mark.as_bytes())?;
        return Ok(sent);
    }
    // The length must come first: the file is encoded once into an unlinked
    // temporary file, then sent (Redis's disk-based transfer does the same).
    let file = spool_file(spool_dir.as_deref())?;
    let spool = Spool {
        file,
        targets,
        timeout,
        last: Instant::now(),
    };
    let (spool, sent) = encode(spool, data, aux)?;
    let Spool { file, targets, .. } = spool;
    send(targets, timeout, format!("${}\r\n", sent.bytes).as_bytes())?;
    send_file(targets, timeout, &file, sent.bytes)?;
    Ok(sent)
}

/// An unlinked temporary file in `dir` (or the system's temporary directory when
/// there is none, or when `dir` refuses it).
fn spool_file(dir: Option<&std::path::Path>) -> io::Result<File> {
    if let Some(dir) = dir {
        match tempfile::tempfile_in(dir) {
            Ok(f) => return Ok(f),
            Err(e) => tracing::debug!(
                "cannot spool the replicas' RDB file in {}: {e}; using the temporary directory",
                dir.display()
            ),
        }
    }
    tempfile::tempfile()
}

/// Sends the spooled file's `len` bytes to every replica still receiving, a slice
/// at a time to each (sendfile(2) to a lent socket; read and queued for the
/// others).
fn send_file(targets: &mut [Target], timeout: Duration, file: &File, len: u64) -> io::Result<()> {
    let channel = targets
        .iter()
        .any(|t| t.failed.is_none() && t.direct.is_none());
    let mut buf = Vec::new();
    let mut reader = file;
    if channel {
        reader.rewind()?;
    }
    let mut off = 0;
    while off < len {
        let n = SLICE.min(len - off);
        let mut live = false;
        for t in targets.iter_mut().filter(|t| t.failed.is_none()) {
            let Target {
                tx, direct, failed, ..
            } = t;
            if let Some(d) = direct {
                match d.send_file(file, off, n, timeout, &|| tx.is_closed()) {
                    Ok(()) => live = true,
                    Err(e) => *failed = Some(e),
                }
            }
        }
        if channel {
            buf.resize(n as usize, 0);
            reader.read_exact(&mut buf)?;
            let mut rest: Vec<&mut Target> = targets
                .iter_mut()
                .filter(|t| t.failed.is_none() && t.direct.is_none())
                .collect();
            if !rest.is_empty() {
                for chunk in buf.chunks(256 << 10) {
                    if send_rest(&mut rest, timeout, chunk) {
                        live = true;
                    }
                }
            }
        }
        if !live {
            return Err(gone());
        }
        off += n;
    }
    Ok(())
}

/// [`send`] to the channel targets of a spooled transfer; true when one is left.
fn send_rest(rest: &mut [&mut Target], timeout: Duration, chunk: &[u8]) -> bool {
    let mut live = false;
    for t in rest.iter_mut() {
        if t.failed.is_none() {
            live |= send(std::slice::from_mut(&mut **t), timeout, chunk).is_ok();
        }
    }
    live
}

/// Runs `job` on a thread of its own (at a lower priority, as snapshots), then
/// reports each replica's outcome to the replication state under the lock.
pub(super) fn start(shared: Arc<Shared>, mut job: Job) -> io::Result<()> {
    std::thread::Builder::new()
        .name("redsnap-repl-sync".into())
        .spawn(move || {
            redsnap_persist::background::lower_thread_priority();
            let res = produce(&mut job);
            // The lent sockets go back to their connections first.
            for t in &mut job.targets {
                t.direct = None;
                t.lend = None;
            }
            let mut inner = shared.inner.lock();
            for t in &mut job.targets {
                let r = match (&res, t.failed.take()) {
                    (_, Some(e)) => Err(e),
                    (Ok(sent), None) => Ok(*sent),
                    (Err(e), None) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                super::sync::transfer_done(&mut inner, t.id, r, job.started);
            }
        })
        .map(|_| ())
}
