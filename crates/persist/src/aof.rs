//! The append log: every executed write, framed and checksummed, in a sequence of
//! generation files `appendonly.<gen>.log`.
//!
//! # Staging, writing, durability
//!
//! A server stages each batch of records under its lock ([`AppendLog::stage`]: encoded
//! in memory, a *token* returned) and writes every staged batch with one `write(2)`
//! ([`AppendLog::write_staged`]) before any reply leaves, so a process crash (even
//! `kill -9`) loses nothing acknowledged, under every fsync policy.
//! [`AppendLog::append`] does both at once. Tokens are the unit of durability: a token
//! is *written* once its bytes are in the kernel and *durable* once the file holding
//! them, and every older generation, was fsynced. The policies differ in when that is:
//! * [`FsyncPolicy::Always`]: a syncer thread fsyncs as soon as there are unsynced
//!   bytes; while one fsync runs, further writes accumulate and the next fsync covers
//!   them all (group commit). A server acknowledges only after
//!   [`AppendLog::durable`] (or [`AppendLog::wait_durable`]) for the token.
//! * [`FsyncPolicy::EverySec`]: the syncer fsyncs once per second.
//! * [`FsyncPolicy::No`]: the kernel decides.
//!
//! The policy can be changed on the live log ([`AppendLog::set_policy`]).
//!
//! # Generations
//!
//! [`AppendLog::rotate`] (called under the server lock at the moment the snapshot's
//! clone is taken) does no I/O: it only marks that batches staged from now on belong
//! to the next generation, and returns the one it closed (the snapshot covers every
//! generation up to it). The file work happens off the lock, in log order, by the
//! syncer thread or by the first writer that has a batch for the new generation,
//! whichever comes first: write what is staged for the closed generation, fsync it
//! (its records become durable), and only then create the next file (header, fsync,
//! directory fsync). So a newer generation never exists on disk while an older one
//! holds unsynced records: after an OS crash the log is a prefix of what was written.
//! [`AppendLog::compact_through`] deletes covered files once the snapshot is durable.
//!
//! # Failures
//!
//! A failed or short write is undone by truncating the file back to its last good
//! length, so the log never contains a partial frame in the middle; the error is
//! returned and remembered (`aof_last_write_status`) and the batches stay staged for
//! the next attempt. If the truncation fails too, or an fsync fails (after which the
//! kernel may have dropped the dirty pages), the log is marked broken: nothing written
//! after the last successful fsync is ever reported durable, and appends are refused
//! until restart. A batch whose frame would not fit the 32-bit frame length is
//! refused before anything of it is staged.

mod io;

use crate::codec::{self, CRC32C};
use crate::datadir::{sync_dir, DataDir};
use crate::error::{PersistError, Result};
use io::{
    catch_up_rotation, complete_sync, create_generation, fsync_file, kick, syncer_loop,
    write_staged_locked,
};
use parking_lot::{Condvar, Mutex};
use redsnap_engine::LogRecord;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Magic at the start of every log file.
pub const LOG_MAGIC: &[u8; 8] = b"RSNAPLOG";
/// Log format version.
pub const LOG_VERSION: u32 = 1;
/// Size of the file header: magic, version (u32 LE), generation (u64 LE), CRC-32C of
/// the preceding 20 bytes (u32 LE).
pub const LOG_HEADER: usize = 24;
/// The largest frame payload: a frame's length field is 32 bits. A batch (one frame,
/// so that replay applies it whole or not at all) larger than this is refused.
pub const MAX_FRAME_PAYLOAD: usize = u32::MAX as usize;
/// Suffix of a generation file that is not part of the log yet (see
/// [`AppendLog::open_pending`]); recovery ignores and deletes such files.
pub const PENDING_SUFFIX: &str = ".pending";

/// When the log is fsynced (Redis's `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    EverySec,
    No,
}

impl FsyncPolicy {
    /// Parses Redis's names (`always`, `everysec`, `no`).
    pub fn parse(s: &str) -> Option<FsyncPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            FsyncPolicy::Always => 0,
            FsyncPolicy::EverySec => 1,
            FsyncPolicy::No => 2,
        }
    }
    fn from_u8(v: u8) -> FsyncPolicy {
        match v {
            0 => FsyncPolicy::Always,
            1 => FsyncPolicy::EverySec,
            _ => FsyncPolicy::No,
        }
    }
}

/// The file name of a generation.
pub fn log_file_name(gen: u64) -> String {
    format!("appendonly.{gen}.log")
}

/// Parses `appendonly.<gen>.log`.
pub fn parse_log_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("appendonly.")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Log generations present in `dir`, ascending.
pub fn list_generations(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| PersistError::io("list", dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| PersistError::io("list", dir, e))?;
        if let Some(gen) = ent.file_name().to_str().and_then(parse_log_file_name) {
            out.push((gen, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn encode_header(gen: u64) -> [u8; LOG_HEADER] {
    let mut h = [0u8; LOG_HEADER];
    h[..8].copy_from_slice(LOG_MAGIC);
    h[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&gen.to_le_bytes());
    let crc = CRC32C.checksum(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a file header; returns the generation it names.
pub(crate) fn check_header(h: &[u8]) -> std::result::Result<u64, String> {
    if h.len() < LOG_HEADER || &h[..8] != LOG_MAGIC {
        return Err("bad file header magic".into());
    }
    let crc = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if CRC32C.checksum(&h[..20]) != crc {
        return Err("file header checksum mismatch".into());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != LOG_VERSION {
        return Err(format!("unsupported log format version {version}"));
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&h[12..20]);
    Ok(u64::from_le_bytes(g))
}

/// A test-only fault for the fsyncs of one generation ([`AppendLog::inject_fsync_fault`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncFault {
    /// The fsync fails with EIO.
    Fail,
    /// The fsync blocks until the fault is cleared.
    Stall,
}

/// Figures for INFO persistence (`aof_*`) and metrics.
#[derive(Debug, Clone)]
pub struct AofStats {
    pub policy: FsyncPolicy,
    /// The generation of the file being written.
    pub current_gen: u64,
    /// Bytes in all live generations (the log since the last snapshot).
    pub size: u64,
    /// The size of the last snapshot (`aof_base_size`).
    pub base_size: u64,
    pub current_file_size: u64,
    /// `aof_last_write_status`.
    pub last_write_ok: bool,
    pub last_write_error: Option<String>,
    pub write_errors: u64,
    /// Whether every fsync so far succeeded.
    pub last_fsync_ok: bool,
    pub fsyncs: u64,
    /// The last token written (in the kernel), and the last one durable (fsynced).
    pub seq: u64,
    pub durable_seq: u64,
    /// The last token staged.
    pub staged_seq: u64,
    /// Set when the log refuses appends (see the module docs).
    pub broken: Option<String>,
    /// A rotation whose file work has not happened yet.
    pub rotation_pending: bool,
    /// fsyncs are paused while a snapshot runs (`no-appendfsync-on-rewrite`).
    pub fsync_paused: bool,
    /// When (ms since the epoch) the oldest write not yet fsynced reached the kernel;
    /// None when everything written is durable (the server's fsync lag).
    pub unsynced_since_ms: Option<u64>,
}

/// The append log. Cheap to clone; the syncer thread stops when the last clone drops.
#[derive(Clone)]
pub struct AppendLog {
    handle: Arc<Handle>,
}

struct Handle {
    inner: Arc<Inner>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Lock order: `file` before `stage` before `meta` before `sync`; `fault` alone.
/// `file` is held during file I/O (writes, and a rotation's fsync and file creation);
/// nothing a server calls under its lock waits for it (figures come from `meta`).
struct Inner {
    dir: PathBuf,
    /// Holds the directory lock as long as the log lives.
    _data_dir: DataDir,
    policy: AtomicU8,
    /// Staged batches (taken under the server lock: never held during I/O).
    stage: Mutex<Stage>,
    /// The file being written (held during writes and rotation file work).
    file: Mutex<FileState>,
    /// Figures about the files, readable while I/O runs.
    meta: Mutex<Meta>,
    sync: Mutex<SyncState>,
    /// Wakes the syncer: writes under `always`, rotations, policy changes, stop.
    kick: Condvar,
    /// Signalled when the durable token advances or the log breaks.
    synced: Condvar,
    stop: AtomicBool,
    broken: AtomicBool,
    /// The log was opened pending and is not committed yet.
    pending: AtomicBool,
    /// fsyncs paused (no-appendfsync-on-rewrite while a snapshot runs).
    paused: AtomicBool,
    staged_token: AtomicU64,
    written_token: AtomicU64,
    durable_token: AtomicU64,
    /// The generation new batches go to, and the one of the file being written.
    stage_gen: AtomicU64,
    file_gen: AtomicU64,
    max_frame: AtomicUsize,
    /// The longest fsync (ms) since [`AppendLog::take_slowest_fsync_ms`] last read it
    /// (the server's latency monitor: `aof-fsync-always`).
    slowest_fsync_ms: AtomicU64,
    /// Test hook: fail the next writes after writing half the bytes.
    inject_write_error: AtomicBool,
    /// Test hook: a fault for the fsyncs of one generation.
    fault: Mutex<Option<(u64, FsyncFault)>>,
    fault_cleared: Condvar,
}

/// Encoded frames of one generation, waiting to be written.
struct Segment {
    gen: u64,
    bytes: Vec<u8>,
    last_token: u64,
}

struct Stage {
    segments: VecDeque<Segment>,
    /// The generation batches staged now belong to (advanced by `rotate`).
    gen: u64,
    token: u64,
}

struct FileState {
    file: Arc<File>,
    gen: u64,
    path: PathBuf,
    file_len: u64,
    /// Not yet part of the log: named `<name>.pending` until [`AppendLog::commit_pending`].
    pending: bool,
    written_token: u64,
}

struct Meta {
    /// The generation of the file being written, and its length.
    gen: u64,
    file_len: u64,
    /// Live generations and their sizes.
    gens: BTreeMap<u64, u64>,
    base_size: u64,
    last_write_ok: bool,
    last_write_error: Option<String>,
    write_errors: u64,
    /// The last token written, and when the oldest write after the last fsync
    /// happened (read by `stats`; set by the writer, cleared by the syncer).
    written: u64,
    unsynced_since_ms: Option<u64>,
}

type Waiter = (
    u64,
    tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
);

struct SyncState {
    durable: u64,
    /// Set after a failed fsync: every later wait fails, nothing more becomes durable.
    broken: Option<String>,
    fsyncs: u64,
    waiters: Vec<Waiter>,
}

/// The exact payload size of a frame holding `records` (see `codec::encode_frame`).
fn frame_payload_size(records: &[LogRecord]) -> u64 {
    fn varint_len(v: u64) -> u64 {
        u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
    }
    let mut n = varint_len(records.len() as u64);
    for r in records {
        n += varint_len(r.db as u64) + 8 + varint_len(r.argv.len() as u64);
        for a in &r.argv {
            n += varint_len(a.len() as u64) + a.len() as u64;
        }
    }
    n
}

impl AppendLog {
    /// Opens the log for appending in a new generation: `max(next_gen, newest file on
    /// disk + 1)`. Call after [`crate::recover()`], passing its `next_gen`, so the new
    /// generation is never one a snapshot already covers.
    pub fn open(dir: &DataDir, policy: FsyncPolicy, next_gen: u64) -> Result<AppendLog> {
        Self::open_inner(dir, policy, next_gen, false)
    }

    /// Like [`AppendLog::open`], but the new generation's file is named
    /// `appendonly.<gen>.log.pending` and recovery ignores it until
    /// [`AppendLog::commit_pending`] renames it. For starting a log at runtime
    /// (`CONFIG SET appendonly yes`): the snapshot that covers everything before the
    /// log must be durable before the log counts, as Redis's AOF only counts once its
    /// first rewrite is done. Rotation is refused while pending.
    pub fn open_pending(dir: &DataDir, policy: FsyncPolicy, next_gen: u64) -> Result<AppendLog> {
        Self::open_inner(dir, policy, next_gen, true)
    }

    fn open_inner(
        dir: &DataDir,
        policy: FsyncPolicy,
        next_gen: u64,
        pending: bool,
    ) -> Result<AppendLog> {
        let dirp = dir.path().to_path_buf();
        let existing = list_generations(&dirp)?;
        let mut gens = BTreeMap::new();
        for (g, p) in &existing {
            let len = std::fs::metadata(p)
                .map_err(|e| PersistError::io("stat", p, e))?
                .len();
            gens.insert(*g, len);
        }
        let gen = existing
            .last()
            .map_or(1, |(g, _)| g + 1)
            .max(next_gen)
            .max(1);
        let (file, path) = create_generation(&dirp, gen, pending)?;
        gens.insert(gen, LOG_HEADER as u64);
        tracing::info!(file = %path.display(), policy = policy.name(), "append log opened");
        let inner = Arc::new(Inner {
            dir: dirp,
            _data_dir: dir.clone(),
            policy: AtomicU8::new(policy.to_u8()),
            stage: Mutex::new(Stage {
                segments: VecDeque::new(),
                gen,
                token: 0,
            }),
            file: Mutex::new(FileState {
                file: Arc::new(file),
                gen,
                path,
                file_len: LOG_HEADER as u64,
                pending,
                written_token: 0,
            }),
            meta: Mutex::new(Meta {
                gen,
                file_len: LOG_HEADER as u64,
                gens,
                base_size: 0,
                last_write_ok: true,
                last_write_error: None,
                write_errors: 0,
                written: 0,
                unsynced_since_ms: None,
            }),
            sync: Mutex::new(SyncState {
                durable: 0,
                broken: None,
                fsyncs: 0,
                waiters: Vec::new(),
            }),
            kick: Condvar::new(),
            synced: Condvar::new(),
            stop: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            pending: AtomicBool::new(pending),
            paused: AtomicBool::new(false),
            staged_token: AtomicU64::new(0),
            written_token: AtomicU64::new(0),
            durable_token: AtomicU64::new(0),
            stage_gen: AtomicU64::new(gen),
            file_gen: AtomicU64::new(gen),
            max_frame: AtomicUsize::new(MAX_FRAME_PAYLOAD),
            slowest_fsync_ms: AtomicU64::new(0),
            inject_write_error: AtomicBool::new(false),
            fault: Mutex::new(None),
            fault_cleared: Condvar::new(),
        });
        let i = inner.clone();
        let syncer = std::thread::Builder::new()
            .name("redsnap-aof-sync".into())
            .spawn(move || syncer_loop(&i))
            .map_err(|e| PersistError::io("spawn fsync thread for", dir.path(), e))?;
        Ok(AppendLog {
            handle: Arc::new(Handle {
                inner,
                syncer: Mutex::new(Some(syncer)),
            }),
        })
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// Whether two handles are the same log.
    pub fn same(&self, other: &AppendLog) -> bool {
        Arc::ptr_eq(&self.handle, &other.handle)
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        FsyncPolicy::from_u8(self.inner().policy.load(Ordering::SeqCst))
    }

    /// Changes the fsync policy of the live log (`CONFIG SET appendfsync`). Switching
    /// to `always` makes later [`AppendLog::durable`] calls wait; waits already in
    /// progress complete at the next fsync whatever the policy.
    pub fn set_policy(&self, policy: FsyncPolicy) {
        let inner = self.inner();
        let old = FsyncPolicy::from_u8(inner.policy.swap(policy.to_u8(), Ordering::SeqCst));
        if old != policy {
            tracing::info!(
                from = old.name(),
                to = policy.name(),
                "append log fsync policy changed"
            );
        }
        kick(inner);
    }

    /// Pauses fsyncs (`no-appendfsync-on-rewrite` while a snapshot runs, as Redis does:
    /// replies under `always` then stop waiting, and an OS crash may lose what was
    /// written meanwhile). Rotation still fsyncs what it closes.
    pub fn set_fsync_paused(&self, paused: bool) {
        let inner = self.inner();
        if inner.paused.swap(paused, Ordering::SeqCst) != paused {
            tracing::info!(
                paused,
                "append log fsyncs paused for the snapshot (no-appendfsync-on-rewrite)"
            );
        }
        if paused {
            // Nobody waits for an fsync that the configuration has switched off.
            let mut s = inner.sync.lock();
            for (_, tx) in std::mem::take(&mut s.waiters) {
                let _ = tx.send(Ok(()));
            }
            inner.synced.notify_all();
        }
        kick(inner);
    }

    /// Whether replies must wait for their fsync now (policy `always`, not paused).
    pub fn waits_for_fsync(&self) -> bool {
        let inner = self.inner();
        self.policy() == FsyncPolicy::Always && !inner.paused.load(Ordering::SeqCst)
    }

    /// Appends records with one `write(2)` (a batch, e.g. a MULTI/EXEC, goes into one
    /// checksummed frame, so replay applies it whole or not at all). Returns the
    /// batch's token, to pass to [`AppendLog::wait_durable`]. An empty batch returns
    /// the last token written. Anything staged before is written first; on failure
    /// nothing staged stays staged (the caller learns the records were not logged).
    pub fn append(&self, records: &[LogRecord]) -> Result<u64> {
        let inner = self.inner();
        if records.is_empty() {
            return Ok(inner.written_token.load(Ordering::SeqCst));
        }
        let token = self.stage(records)?;
        let mut f = inner.file.lock();
        match write_staged_locked(inner, &mut f) {
            Ok(_) => Ok(token),
            Err(e) => {
                let mut s = inner.stage.lock();
                s.segments.clear();
                f.written_token = s.token;
                inner.written_token.store(s.token, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Encodes a batch of records as one frame without writing it; returns the batch's
    /// token. A server stages each connection's batch under its lock and calls
    /// [`AppendLog::write_staged`] before any reply leaves, as Redis writes its log
    /// once per event-loop iteration: one `write(2)` for the round instead of one per
    /// connection. A batch is in the kernel once `written_token() >= token`. A batch
    /// whose frame would exceed [`MAX_FRAME_PAYLOAD`] is refused (nothing staged).
    pub fn stage(&self, records: &[LogRecord]) -> Result<u64> {
        let inner = self.inner();
        check_open(inner)?;
        let mut s = inner.stage.lock();
        if records.is_empty() {
            return Ok(s.token);
        }
        let size = frame_payload_size(records);
        let limit = inner.max_frame.load(Ordering::SeqCst) as u64;
        if size > limit {
            let msg = format!(
                "a batch of {} log records takes {size} bytes, more than one log frame can hold ({limit} bytes): refused, nothing of it was logged",
                records.len()
            );
            tracing::error!("{msg}");
            return Err(PersistError::io(
                "append to the log in",
                inner.dir.clone(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, msg),
            ));
        }
        let gen = s.gen;
        s.token += 1;
        let token = s.token;
        match s.segments.back_mut() {
            Some(seg) if seg.gen == gen => {
                codec::encode_frame(&mut seg.bytes, records);
                seg.last_token = token;
            }
            _ => {
                let mut bytes = Vec::new();
                codec::encode_frame(&mut bytes, records);
                s.segments.push_back(Segment {
                    gen,
                    bytes,
                    last_token: token,
                });
            }
        }
        inner.staged_token.store(token, Ordering::SeqCst);
        Ok(token)
    }

    /// Writes every staged frame (one `write(2)` per generation, so one in the common
    /// case); returns the last token written (for [`AppendLog::durable`]). A batch for
    /// a generation whose file does not exist yet (after [`AppendLog::rotate`]) first
    /// closes the previous one (fsync) and creates it. On failure the file is cut back
    /// to its previous length and the frames stay staged, to be written by a later call
    /// (the batches they hold were applied in memory: writing them later keeps the log
    /// equal to memory); the callers whose batches they are must not acknowledge them.
    pub fn write_staged(&self) -> Result<u64> {
        let inner = self.inner();
        let written = inner.written_token.load(Ordering::SeqCst);
        if written >= inner.staged_token.load(Ordering::SeqCst) {
            return Ok(written);
        }
        let mut f = inner.file.lock();
        write_staged_locked(inner, &mut f)
    }

    /// [`AppendLog::write_staged`] unless another thread is writing (or finishing a
    /// rotation) right now: then returns None at once. For callers under a server
    /// lock (the cron), which must not wait for I/O.
    pub fn try_write_staged(&self) -> Result<Option<u64>> {
        let inner = self.inner();
        let written = inner.written_token.load(Ordering::SeqCst);
        if written >= inner.staged_token.load(Ordering::SeqCst) {
            return Ok(Some(written));
        }
        match inner.file.try_lock() {
            Some(mut f) => write_staged_locked(inner, &mut f).map(Some),
            None => Ok(None),
        }
    }

    /// The last batch token staged, the last one written, the last one durable.
    pub fn staged_token(&self) -> u64 {
        self.inner().staged_token.load(Ordering::SeqCst)
    }

    pub fn written_token(&self) -> u64 {
        self.inner().written_token.load(Ordering::SeqCst)
    }

    pub fn durable_token(&self) -> u64 {
        self.inner().durable_token.load(Ordering::SeqCst)
    }

    /// The generation batches staged now go to (after a rotation whose file work is
    /// not done yet, the one after [`AppendLog::generation`]).
    pub fn staged_generation(&self) -> u64 {
        self.inner().stage_gen.load(Ordering::SeqCst)
    }

    /// Whether the log was opened with [`AppendLog::open_pending`] and not committed.
    pub fn is_pending(&self) -> bool {
        self.inner().pending.load(Ordering::SeqCst)
    }

    /// Whether an fsync or an undo failed: the log refuses appends until restart.
    pub fn is_broken(&self) -> bool {
        self.inner().broken.load(Ordering::SeqCst)
    }

    /// Blocks until the batch with token `token` is on disk under policy `always`;
    /// returns at once under `everysec` and `no`. Fails when an fsync failed.
    pub fn wait_durable(&self, token: u64) -> Result<()> {
        let inner = self.inner();
        if !self.waits_for_fsync() {
            return Ok(());
        }
        let mut s = inner.sync.lock();
        loop {
            if let Some(b) = &s.broken {
                return Err(PersistError::LogBroken {
                    path: inner.dir.clone(),
                    detail: b.clone(),
                });
            }
            if s.durable >= token || inner.paused.load(Ordering::SeqCst) {
                return Ok(());
            }
            if inner.written_token.load(Ordering::SeqCst) < token
                && inner.staged_token.load(Ordering::SeqCst) < token
            {
                // Never staged: nothing to wait for.
                return Ok(());
            }
            inner.synced.wait(&mut s);
        }
    }

    /// The async form of [`AppendLog::wait_durable`], for a tokio server: resolves when
    /// `token` is on disk. One fsync completes every waiter it covers.
    pub fn durable(
        &self,
        token: u64,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let inner = self.handle.inner.clone();
        // Nothing to wait for: the policy does not wait, or the token is durable
        // already (the read-only hot path: two atomic loads).
        let done = !self.waits_for_fsync()
            || (inner.durable_token.load(Ordering::SeqCst) >= token
                && !inner.broken.load(Ordering::SeqCst));
        let rx = if done {
            None
        } else {
            let mut s = inner.sync.lock();
            if let Some(b) = &s.broken {
                Some(Err(b.clone()))
            } else if s.durable >= token {
                None
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                s.waiters.push((token, tx));
                Some(Ok(rx))
            }
        };
        if matches!(rx, Some(Ok(_))) {
            kick(&inner);
        }
        let dir = inner.dir.clone();
        async move {
            let broken = |detail: String| PersistError::LogBroken {
                path: dir.clone(),
                detail,
            };
            match rx {
                None => Ok(()),
                Some(Err(b)) => Err(broken(b)),
                Some(Ok(rx)) => match rx.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(b)) => Err(broken(b)),
                    Err(_) => Err(broken("the append log was closed".into())),
                },
            }
        }
    }

    /// Ends the current generation for the batches staged so far and returns it: a
    /// snapshot of the keyspace taken at this moment covers every generation `<=` the
    /// returned one. Call it under the same lock as the keyspace clone, after staging
    /// the records of every executed command. No I/O: the closed file is fsynced and
    /// the next one created off the lock, in that order (see the module docs).
    pub fn rotate(&self) -> Result<u64> {
        let inner = self.inner();
        check_open(inner)?;
        if inner.pending.load(Ordering::SeqCst) {
            return Err(PersistError::LogBroken {
                path: inner.dir.clone(),
                detail: "the log is not started yet (its first snapshot is still running)".into(),
            });
        }
        let closed = {
            let mut s = inner.stage.lock();
            let closed = s.gen;
            s.gen += 1;
            inner.stage_gen.store(s.gen, Ordering::SeqCst);
            closed
        };
        kick(inner);
        tracing::debug!(closed, "append log rotated");
        Ok(closed)
    }

    /// Makes a log opened with [`AppendLog::open_pending`] part of the log: renames
    /// its file to its generation's name and fsyncs the directory.
    pub fn commit_pending(&self) -> Result<()> {
        let inner = self.inner();
        let mut f = inner.file.lock();
        if !f.pending {
            return Ok(());
        }
        let to = inner.dir.join(log_file_name(f.gen));
        std::fs::rename(&f.path, &to).map_err(|e| PersistError::io("rename", &f.path, e))?;
        sync_dir(&inner.dir)?;
        tracing::info!(file = %to.display(), "append log started");
        f.path = to;
        f.pending = false;
        inner.pending.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Deletes generations `<= gen` (they are covered by a durable snapshot) and
    /// records `base_size` (the snapshot's size) for the rewrite check. The file being
    /// written is never deleted.
    pub fn compact_through(&self, gen: u64, base_size: u64) -> Result<()> {
        let inner = self.inner();
        let doomed: Vec<u64> = {
            let mut m = inner.meta.lock();
            m.base_size = base_size;
            let current = m.gen;
            m.gens
                .range(..=gen)
                .map(|(g, _)| *g)
                .filter(|g| *g < current)
                .collect()
        };
        let mut first_err = None;
        for g in doomed {
            let p = inner.dir.join(log_file_name(g));
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    inner.meta.lock().gens.remove(&g);
                    tracing::debug!(file = %p.display(), "deleted append log generation covered by the snapshot");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    inner.meta.lock().gens.remove(&g);
                }
                Err(e) => {
                    first_err.get_or_insert(PersistError::io("delete", p, e));
                }
            }
        }
        sync_dir(&inner.dir)?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Bytes in the live generations (the log since the last snapshot).
    pub fn size(&self) -> u64 {
        self.inner().meta.lock().gens.values().sum()
    }

    /// Whether the log has grown enough to warrant a snapshot + compaction, by
    /// Redis's rule: `size >= min_size` and it grew by `percentage` % of the last
    /// snapshot's size (`percentage == 0` disables).
    pub fn should_rewrite(&self, percentage: u64, min_size: u64) -> bool {
        if percentage == 0 {
            return false;
        }
        let (size, base) = {
            let m = self.inner().meta.lock();
            (m.gens.values().sum::<u64>(), m.base_size)
        };
        size >= min_size
            && (base == 0 || size.saturating_mul(100) >= base.saturating_mul(percentage))
    }

    /// Sets the base size (e.g. the size of the snapshot loaded at startup).
    pub fn set_base_size(&self, base_size: u64) {
        self.inner().meta.lock().base_size = base_size;
    }

    /// The generation of the file being written.
    pub fn generation(&self) -> u64 {
        self.inner().meta.lock().gen
    }

    /// Writes what is staged, finishes a pending rotation and fsyncs everything
    /// written so far (for shutdown and SHUTDOWN/SIGTERM).
    pub fn flush(&self) -> Result<()> {
        let inner = self.inner();
        let mut f = inner.file.lock();
        write_staged_locked(inner, &mut f)?;
        catch_up_rotation(inner, &mut f)?;
        let token = f.written_token;
        let res = fsync_file(inner, &f.file, f.gen);
        let failed = res.as_ref().err().map(|e| e.to_string());
        complete_sync(inner, token, res.map_err(|e| e.to_string()));
        match failed {
            Some(e) => Err(PersistError::LogBroken {
                path: f.path.clone(),
                detail: format!("fsync failed: {e}"),
            }),
            None => Ok(()),
        }
    }

    /// Figures for INFO and metrics.
    /// The longest fsync, in milliseconds, since the previous call (0 if none).
    pub fn take_slowest_fsync_ms(&self) -> u64 {
        self.inner().slowest_fsync_ms.swap(0, Ordering::Relaxed)
    }

    pub fn stats(&self) -> AofStats {
        let inner = self.inner();
        let m = inner.meta.lock();
        let stage_gen = inner.stage_gen.load(Ordering::SeqCst);
        let s = inner.sync.lock();
        AofStats {
            policy: self.policy(),
            current_gen: m.gen,
            size: m.gens.values().sum(),
            base_size: m.base_size,
            current_file_size: m.file_len,
            last_write_ok: m.last_write_ok,
            last_write_error: m.last_write_error.clone(),
            write_errors: m.write_errors,
            last_fsync_ok: s.broken.is_none(),
            fsyncs: s.fsyncs,
            seq: inner.written_token.load(Ordering::SeqCst),
            durable_seq: s.durable,
            staged_seq: inner.staged_token.load(Ordering::SeqCst),
            broken: s.broken.clone(),
            rotation_pending: stage_gen > m.gen,
            fsync_paused: inner.paused.load(Ordering::SeqCst),
            unsynced_since_ms: m.unsynced_since_ms,
        }
    }

    /// Test hook: make writes fail (after writing half of their bytes) as a full disk would.
    #[doc(hidden)]
    pub fn inject_write_error(&self, on: bool) {
        self.inner().inject_write_error.store(on, Ordering::SeqCst);
    }

    /// Test hook: make the fsyncs of generation `gen` fail or stall (None clears it).
    #[doc(hidden)]
    pub fn inject_fsync_fault(&self, fault: Option<(u64, FsyncFault)>) {
        let inner = self.inner();
        *inner.fault.lock() = fault;
        inner.fault_cleared.notify_all();
    }

    /// Test hook: lower the largest frame payload (default [`MAX_FRAME_PAYLOAD`]), to
    /// test the refusal of oversized batches without allocating 4 GiB.
    #[doc(hidden)]
    pub fn set_max_frame_payload(&self, bytes: usize) {
        self.inner()
            .max_frame
            .store(bytes.min(MAX_FRAME_PAYLOAD), Ordering::SeqCst);
    }

    /// Flushes, stops the syncer thread and waits for it.
    pub fn close(&self) -> Result<()> {
        let res = self.flush();
        self.handle.stop();
        res
    }
}

impl Handle {
    fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        kick(&self.inner);
        {
            let _g = self.inner.fault.lock();
            self.inner.fault_cleared.notify_all();
        }
        if let Some(t) = self.syncer.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
        // Hand the last bytes to the disk on a clean drop (best effort).
        let inner = &self.inner;
        let mut f = inner.file.lock();
        if write_staged_locked(inner, &mut f).is_ok() {
            let _ = catch_up_rotation(inner, &mut f);
        }
        if !inner.broken.load(Ordering::SeqCst) {
            if let Err(e) = f.file.sync_data() {
                tracing::warn!(file = %f.path.display(), error = %e, "fsync of the append log on close failed");
            }
        }
    }
}

fn check_open(inner: &Inner) -> Result<()> {
    if inner.stop.load(Ordering::SeqCst) {
        return Err(PersistError::LogBroken {
            path: inner.dir.clone(),
            detail: "the append log is closed".into(),
        });
    }
    if inner.broken.load(Ordering::SeqCst) {
        let detail = inner.sync.lock().broken.clone().unwrap_or_default();
        return Err(PersistError::LogBroken {
            path: inner.dir.clone(),
            detail,
        });
    }
    Ok(())
}
