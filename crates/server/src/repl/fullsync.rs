//! A full resynchronization's RDB file, produced off the server lock: the dataset is
//! a point-in-time copy taken under the lock in O(databases) (`Store::dataset`, the
//! copy BGSAVE takes), encoded on a thread of its own by the RDB writer backups use,
//! and streamed to the replica's connection in chunks of about 256 KB through its
//! channel, at most `WINDOW` bytes ahead of what the connection has written (the
//! connection subtracts what it takes from `ClientInfo::pending_out`), so a large
//! dataset never sits in memory as a whole file.
//!
//! Two forms, as Redis's: `$EOF:<40 random chars>\r\n<payload><same 40 chars>` for a
//! replica that announced `REPLCONF capa eof` (with `repl-diskless-sync yes`, the
//! default), streamed in one pass; `$<len>\r\n<payload>` otherwise (SYNC, redis-cli
//! --rdb), where the length must come first: a first pass encodes into a counter
//! (sending `\n` keepalives every second meanwhile, as Redis does to replicas waiting
//! for their RDB), a second one streams. The copy is immutable, so both passes
//! produce the same bytes; the second checks that they did.

use crate::state::{ConnMsg, Shared};
use bytes::Bytes;
use redsnap_engine::Dataset;
use redsnap_persist::rdbfile::RdbWriter;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How far the encoder may run ahead of the socket (bytes queued in the channel).
const WINDOW: u64 = 2 << 20;

/// What one full synchronization needs, taken under the lock.
pub(super) struct Job {
    pub id: u64,
    pub tx: UnboundedSender<ConnMsg>,
    /// The connection's count of queued output bytes (`ClientInfo::pending_out`).
    pub out: Arc<AtomicU64>,
    pub data: Dataset,
    pub aux: Vec<(String, String)>,
    /// `$EOF:` form (else `$<len>`).
    pub eof: bool,
    /// `repl-timeout`: a replica that reads nothing for this long is dropped.
    pub timeout: Duration,
    pub started: Instant,
}

/// What was sent: keys and payload bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub keys: u64,
    pub bytes: u64,
}

/// Sends bytes to the replica's connection, waiting while more than `WINDOW` bytes
/// are queued; fails when the connection is gone or has read nothing for
/// `repl-timeout`.
pub(super) fn send(job: &Job, b: Bytes) -> io::Result<()> {
    let mut last = job.out.load(Ordering::Relaxed);
    let mut progress = Instant::now();
    while last > WINDOW {
        if job.tx.is_closed() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "replica gone"));
        }
        if progress.elapsed() > job.timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the replica read nothing for repl-timeout seconds",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
        let now = job.out.load(Ordering::Relaxed);
        if now < last {
            progress = Instant::now();
        }
        last = now;
    }
    job.out.fetch_add(b.len() as u64, Ordering::Relaxed);
    job.tx
        .send(ConnMsg::Raw(b))
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "replica gone"))
}

/// The payload's bytes, sent as they are encoded.
struct Chunks<'a>(&'a Job);

impl Write for Chunks<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, Bytes::copy_from_slice(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first pass of the `$<len>` form: encodes into nothing, sending a `\n`
/// keepalive every second (before the length line, where replicas accept them).
struct Keepalive<'a> {
    job: &'a Job,
    last: Instant,
}

impl Write for Keepalive<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            send(self.job, Bytes::from_static(b"\n"))?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes the dataset as one RDB file: function libraries, then each non-empty
/// database with its sizes, keys with their deadlines.
fn encode<W: Write>(w: W, job: &Job) -> io::Result<(W, Sent)> {
    let mut wr = RdbWriter::new(w, &job.aux)?;
    for code in &job.data.libraries {
        wr.write_function(code)?;
    }
    for (i, db) in job.data.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        wr.select_db(i as u64, Some((db.len() as u64, db.volatile_len() as u64)))?;
        for (k, e) in db.iter() {
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

/// Produces and sends the payload (header, file, trailer) for `job`.
pub(super) fn produce(job: &Job) -> io::Result<Sent> {
    if job.eof {
        let mark: String = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rand::random::<u8>() as usize % 16]))
            .collect();
        send(job, Bytes::from(format!("$EOF:{mark}\r\n")))?;
        let (_, sent) = encode(Chunks(job), job)?;
        send(job, Bytes::from(mark))?;
        return Ok(sent);
    }
    let counter = Keepalive {
        job,
        last: Instant::now(),
    };
    let (_, counted) = encode(counter, job)?;
    send(job, Bytes::from(format!("${}\r\n", counted.bytes)))?;
    let (_, sent) = encode(Chunks(job), job)?;
    if sent.bytes != counted.bytes {
        // The payload would not match its announced length: the replica must not
        // load it (the connection is closed).
        return Err(io::Error::other(format!(
            "the RDB file changed size between passes ({} then {} bytes)",
            counted.bytes, sent.bytes
        )));
    }
    Ok(sent)
}

/// Runs `job` on a thread of its own (at a lower priority, as snapshots), then
/// reports to the replication state under the lock.
pub(super) fn start(shared: Arc<Shared>, job: Job) -> io::Result<()> {
    std::thread::Builder::new()
        .name("redsnap-repl-sync".into())
        .spawn(move || {
            lower_thread_priority();
            let res = produce(&job);
            let mut inner = shared.inner.lock();
            super::sync::transfer_done(&mut inner, job.id, res, job.started);
        })
        .map(|_| ())
}

/// Nice 10, as the background snapshot thread (see ARCHITECTURE.md: GET p99 during
/// BGSAVE). Best effort.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}
