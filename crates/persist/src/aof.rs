//! The append log: every executed write, framed and checksummed, in a sequence of
//! generation files `appendonly.<gen>.log`.
//!
//! # Durability
//!
//! [`AppendLog::append`] encodes the records and hands them to the kernel with one
//! `write(2)` before returning, so a process crash (even `kill -9`) loses nothing that
//! was appended, under every fsync policy. What the policies differ in is an OS crash
//! or power loss:
//! * [`FsyncPolicy::Always`]: a background syncer thread fsyncs as soon as there are
//!   unsynced bytes; while one fsync runs, further appends accumulate and the next
//!   fsync covers them all (group commit). The server acknowledges a write only after
//!   [`AppendLog::wait_durable`] (or [`AppendLog::durable`]) for its sequence number.
//! * [`FsyncPolicy::EverySec`]: the syncer fsyncs once per second.
//! * [`FsyncPolicy::No`]: the kernel decides.
//!
//! # Generations
//!
//! [`AppendLog::rotate`] (called under the server lock at the moment the snapshot's
//! clone is taken) fsyncs the current file and starts the next generation; the
//! snapshot then covers every generation up to the one rotate returned, and
//! [`AppendLog::compact_through`] deletes those files once the snapshot is durable.
//!
//! # Failed writes
//!
//! A failed or short write is undone by truncating the file back to its last good
//! length, so the log never contains a partial frame in the middle; the error is
//! returned and remembered (`aof_last_write_status`). If the truncation fails too, or
//! an fsync fails (after which the kernel may have dropped the dirty pages), the log is
//! marked broken and refuses further appends until restart.

use crate::codec::{self, CRC32C};
use crate::datadir::{sync_dir, DataDir};
use crate::error::{PersistError, Result};
use parking_lot::{Condvar, Mutex};
use redsnap_engine::LogRecord;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Magic at the start of every log file.
pub const LOG_MAGIC: &[u8; 8] = b"RSNAPLOG";
/// Log format version.
pub const LOG_VERSION: u32 = 1;
/// Size of the file header: magic, version (u32 LE), generation (u64 LE), CRC-32C of
/// the preceding 20 bytes (u32 LE).
pub const LOG_HEADER: usize = 24;
/// Frames are cut at about this payload size (a single record may exceed it).
const MAX_FRAME_PAYLOAD: usize = 1 << 30;

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

/// Figures for INFO persistence (`aof_*`) and metrics.
#[derive(Debug, Clone)]
pub struct AofStats {
    pub policy: FsyncPolicy,
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
    /// `aof_last_bgrewrite_status`-like: whether the last fsync succeeded.
    pub last_fsync_ok: bool,
    pub fsyncs: u64,
    /// Sequence number of the last append, and the last one known on disk.
    pub seq: u64,
    pub durable_seq: u64,
    /// Set when the log refuses appends (see the module docs).
    pub broken: Option<String>,
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

struct Inner {
    dir: PathBuf,
    /// Holds the directory lock as long as the log lives.
    _data_dir: DataDir,
    policy: FsyncPolicy,
    state: Mutex<State>,
    /// Signalled on append (Always) and on stop.
    appended: Condvar,
    sync: Mutex<SyncState>,
    synced: Condvar,
    stop: AtomicBool,
}

struct State {
    file: Arc<File>,
    gen: u64,
    path: PathBuf,
    file_len: u64,
    seq: u64,
    /// Live generations and their sizes.
    gens: BTreeMap<u64, u64>,
    base_size: u64,
    last_write_ok: bool,
    last_write_error: Option<String>,
    write_errors: u64,
    /// Frames encoded and not yet written: [`AppendLog::stage`] adds to it,
    /// [`AppendLog::write_staged`] writes all of it with one `write(2)`.
    staged: Vec<u8>,
    /// Batches staged so far, and how many of them have been written.
    staged_token: u64,
    written_token: u64,
    /// Test hook: fail the next appends after writing half the bytes.
    inject_write_error: bool,
}

type Waiter = (
    u64,
    tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
);

struct SyncState {
    durable_seq: u64,
    /// Set after a failed fsync: every later wait fails.
    broken: Option<String>,
    fsyncs: u64,
    waiters: Vec<Waiter>,
}

fn create_generation(dir: &Path, gen: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(log_file_name(gen));
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| PersistError::io("create append log", &path, e))?;
    f.write_all(&encode_header(gen))
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&path);
            PersistError::io("write append log header to", &path, e)
        })?;
    sync_dir(dir)?;
    Ok((f, path))
}

impl AppendLog {
    /// Opens the log for appending in a new generation: `max(next_gen, newest file on
    /// disk + 1)`. Call after [`crate::recover()`], passing its `next_gen`, so the new
    /// generation is never one a snapshot already covers.
    pub fn open(dir: &DataDir, policy: FsyncPolicy, next_gen: u64) -> Result<AppendLog> {
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
        let (file, path) = create_generation(&dirp, gen)?;
        gens.insert(gen, LOG_HEADER as u64);
        tracing::info!(file = %path.display(), policy = policy.name(), "append log opened");
        let inner = Arc::new(Inner {
            dir: dirp,
            _data_dir: dir.clone(),
            policy,
            state: Mutex::new(State {
                file: Arc::new(file),
                gen,
                path,
                file_len: LOG_HEADER as u64,
                seq: 0,
                gens,
                base_size: 0,
                last_write_ok: true,
                last_write_error: None,
                write_errors: 0,
                staged: Vec::new(),
                staged_token: 0,
                written_token: 0,
                inject_write_error: false,
            }),
            appended: Condvar::new(),
            sync: Mutex::new(SyncState {
                durable_seq: 0,
                broken: None,
                fsyncs: 0,
                waiters: Vec::new(),
            }),
            synced: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let syncer = if policy == FsyncPolicy::No {
            None
        } else {
            let i = inner.clone();
            Some(
                std::thread::Builder::new()
                    .name("redsnap-aof-sync".into())
                    .spawn(move || syncer_loop(&i))
                    .map_err(|e| PersistError::io("spawn fsync thread for", dir.path(), e))?,
            )
        };
        Ok(AppendLog {
            handle: Arc::new(Handle {
                inner,
                syncer: Mutex::new(syncer),
            }),
        })
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.inner().policy
    }

    /// Appends records with one `write(2)` (a batch, e.g. a MULTI/EXEC, goes into one
    /// checksummed frame, so replay applies it whole or not at all). Returns the
    /// sequence number to pass to [`AppendLog::wait_durable`]. An empty batch returns
    /// the last sequence number. Anything staged before is written first; on failure
    /// nothing of it stays staged (the caller learns the records were not logged).
    pub fn append(&self, records: &[LogRecord]) -> Result<u64> {
        let inner = self.inner();
        let mut st = inner.state.lock();
        if records.is_empty() {
            return Ok(st.seq);
        }
        Self::check_open(inner, &st)?;
        Self::encode_staged(&mut st, records)?;
        let res = Self::write_staged_locked(inner, &mut st);
        if res.is_err() {
            st.staged.clear();
            st.written_token = st.staged_token;
        }
        res
    }

    /// Encodes a batch of records as a frame (or several, for a huge batch) without
    /// writing it; returns the batch's token. A server stages each connection's batch
    /// under its lock and calls [`AppendLog::write_staged`] once per scheduler round,
    /// before any reply leaves, as Redis writes its log once per event-loop iteration:
    /// one `write(2)` for the round instead of one per connection. A batch is in the
    /// kernel (safe from a process crash) once `written_token() >= token`.
    pub fn stage(&self, records: &[LogRecord]) -> Result<u64> {
        let inner = self.inner();
        let mut st = inner.state.lock();
        Self::check_open(inner, &st)?;
        if !records.is_empty() {
            Self::encode_staged(&mut st, records)?;
            st.staged_token += 1;
        }
        Ok(st.staged_token)
    }

    /// Writes every staged frame with one `write(2)`; returns the sequence number
    /// covering them (for [`AppendLog::durable`]). On failure the file is cut back to
    /// its previous length and the frames stay staged, to be written by a later call
    /// (the batches they hold were applied in memory: writing them later keeps the log
    /// equal to memory); the callers whose batches they are must not acknowledge them.
    pub fn write_staged(&self) -> Result<u64> {
        let inner = self.inner();
        let mut st = inner.state.lock();
        if st.staged.is_empty() {
            return Ok(st.seq);
        }
        Self::write_staged_locked(inner, &mut st)
    }

    /// The last batch token staged, and the last one written.
    pub fn staged_token(&self) -> u64 {
        self.inner().state.lock().staged_token
    }

    pub fn written_token(&self) -> u64 {
        self.inner().state.lock().written_token
    }

    fn check_open(inner: &Inner, st: &State) -> Result<()> {
        if inner.stop.load(Ordering::SeqCst) {
            return Err(PersistError::LogBroken {
                path: st.path.clone(),
                detail: "the append log is closed".into(),
            });
        }
        if let Some(b) = inner.sync.lock().broken.clone() {
            return Err(PersistError::LogBroken {
                path: st.path.clone(),
                detail: b,
            });
        }
        Ok(())
    }

    /// Encodes `records` at the end of the staged bytes.
    fn encode_staged(st: &mut State, records: &[LogRecord]) -> Result<()> {
        // An upper bound of a record's encoded size.
        let size_of = |r: &LogRecord| 32 + r.argv.iter().map(|a| a.len() + 10).sum::<usize>();
        let mut start = 0;
        let mut acc = 0usize;
        // Checked before anything is encoded, so a refused batch stages nothing.
        for r in records {
            let size = size_of(r);
            if size >= u32::MAX as usize {
                // A frame's length field is 32 bits; refuse rather than write garbage.
                return Err(PersistError::io(
                    "append to",
                    st.path.clone(),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("a single log record of {size} bytes exceeds 4 GiB"),
                    ),
                ));
            }
        }
        for (i, r) in records.iter().enumerate() {
            acc += size_of(r);
            if acc >= MAX_FRAME_PAYLOAD {
                codec::encode_frame(&mut st.staged, &records[start..=i]);
                start = i + 1;
                acc = 0;
            }
        }
        if start < records.len() {
            codec::encode_frame(&mut st.staged, &records[start..]);
        }
        Ok(())
    }

    /// Writes the staged bytes (see [`AppendLog::write_staged`]).
    fn write_staged_locked(inner: &Inner, st: &mut State) -> Result<u64> {
        let res = if st.inject_write_error {
            let half = st.staged.len() / 2;
            (&*st.file).write_all(&st.staged[..half]).and_then(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (injected)",
                ))
            })
        } else {
            (&*st.file).write_all(&st.staged)
        };
        if let Err(e) = res {
            st.last_write_ok = false;
            st.last_write_error = Some(e.to_string());
            st.write_errors += 1;
            tracing::error!(file = %st.path.display(), error = %e, "append log write failed");
            // Undo a short write so the file never holds a partial frame mid-log.
            if let Err(te) = st.file.set_len(st.file_len) {
                let detail = format!(
                    "write failed ({e}) and truncating back to {} failed ({te})",
                    st.file_len
                );
                tracing::error!(file = %st.path.display(), "{detail}; refusing further appends");
                inner.sync.lock().broken = Some(detail);
            }
            return Err(PersistError::io("append to", st.path.clone(), e));
        }
        let n = st.staged.len() as u64;
        st.file_len += n;
        *st.gens.entry(st.gen).or_insert(0) += n;
        st.seq += 1;
        st.written_token = st.staged_token;
        st.last_write_ok = true;
        st.last_write_error = None;
        st.staged.clear();
        if st.staged.capacity() > (64 << 20) {
            st.staged = Vec::new();
        }
        let seq = st.seq;
        if inner.policy == FsyncPolicy::Always {
            inner.appended.notify_one();
        }
        Ok(seq)
    }

    /// Blocks until the append with sequence number `seq` is on disk (policy
    /// `always`); returns at once under `everysec` and `no`. Fails when an fsync failed.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        let inner = self.inner();
        if inner.policy != FsyncPolicy::Always {
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
            if s.durable_seq >= seq {
                return Ok(());
            }
            inner.synced.wait(&mut s);
        }
    }

    /// The async form of [`AppendLog::wait_durable`], for a tokio server: resolves when
    /// `seq` is on disk. One fsync completes every waiter it covers.
    pub fn durable(
        &self,
        seq: u64,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let inner = self.handle.inner.clone();
        let rx = if inner.policy != FsyncPolicy::Always {
            None
        } else {
            let mut s = inner.sync.lock();
            if let Some(b) = &s.broken {
                Some(Err(b.clone()))
            } else if s.durable_seq >= seq {
                None
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                s.waiters.push((seq, tx));
                Some(Ok(rx))
            }
        };
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

    /// Starts a new generation and returns the one it closed: a snapshot of the
    /// keyspace taken at this moment covers every generation `<= ` the returned one.
    /// Call it under the same lock as the keyspace clone, after appending the records
    /// of every executed command. The closed file is fsynced first.
    pub fn rotate(&self) -> Result<u64> {
        let inner = self.inner();
        let (old_file, old_gen, old_seq) = {
            let mut st = inner.state.lock();
            // Staged batches ran before the keyspace copy this rotation goes with: they
            // belong to the generation it covers.
            if !st.staged.is_empty() {
                Self::write_staged_locked(inner, &mut st)?;
            }
            let (file, path) = create_generation(&inner.dir, st.gen + 1)?;
            let old_file = std::mem::replace(&mut st.file, Arc::new(file));
            let old_gen = st.gen;
            st.gen += 1;
            st.path = path;
            st.file_len = LOG_HEADER as u64;
            let g = st.gen;
            st.gens.insert(g, LOG_HEADER as u64);
            (old_file, old_gen, st.seq)
        };
        self.sync_file(&old_file, old_seq)?;
        tracing::debug!(closed = old_gen, "append log rotated");
        Ok(old_gen)
    }

    /// fsyncs `file` and records `seq` as durable (waking waiters).
    fn sync_file(&self, file: &File, seq: u64) -> Result<()> {
        let inner = self.inner();
        let res = file.sync_data();
        complete_sync(
            inner,
            seq,
            res.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
        res.map_err(|e| PersistError::io("fsync append log in", inner.dir.clone(), e))
    }

    /// Deletes generations `<= gen` (they are covered by a durable snapshot) and
    /// records `base_size` (the snapshot's size) for the rewrite check.
    pub fn compact_through(&self, gen: u64, base_size: u64) -> Result<()> {
        let inner = self.inner();
        let doomed: Vec<u64> = {
            let mut st = inner.state.lock();
            st.base_size = base_size;
            let current = st.gen;
            st.gens
                .range(..=gen)
                .map(|(g, _)| *g)
                .filter(|g| *g != current)
                .collect()
        };
        let mut first_err = None;
        for g in doomed {
            let p = inner.dir.join(log_file_name(g));
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    inner.state.lock().gens.remove(&g);
                    tracing::debug!(file = %p.display(), "deleted append log generation covered by the snapshot");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    inner.state.lock().gens.remove(&g);
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
        self.inner().state.lock().gens.values().sum()
    }

    /// Whether the log has grown enough to warrant a snapshot + compaction, by
    /// Redis's rule: `size >= min_size` and it grew by `percentage` % of the last
    /// snapshot's size (`percentage == 0` disables).
    pub fn should_rewrite(&self, percentage: u64, min_size: u64) -> bool {
        if percentage == 0 {
            return false;
        }
        let (size, base) = {
            let st = self.inner().state.lock();
            (st.gens.values().sum::<u64>(), st.base_size)
        };
        size >= min_size
            && (base == 0 || size.saturating_mul(100) >= base.saturating_mul(percentage))
    }

    /// Sets the base size (e.g. the size of the snapshot loaded at startup).
    pub fn set_base_size(&self, base_size: u64) {
        self.inner().state.lock().base_size = base_size;
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.inner().state.lock().gen
    }

    /// Writes what is staged and fsyncs everything appended so far (for shutdown and
    /// SHUTDOWN/SIGTERM).
    pub fn flush(&self) -> Result<()> {
        let (file, seq) = {
            let inner = self.inner();
            let mut st = inner.state.lock();
            if !st.staged.is_empty() {
                Self::write_staged_locked(inner, &mut st)?;
            }
            (st.file.clone(), st.seq)
        };
        self.sync_file(&file, seq)
    }

    /// Figures for INFO and metrics.
    pub fn stats(&self) -> AofStats {
        let inner = self.inner();
        let st = inner.state.lock();
        let s = inner.sync.lock();
        AofStats {
            policy: inner.policy,
            current_gen: st.gen,
            size: st.gens.values().sum(),
            base_size: st.base_size,
            current_file_size: st.file_len,
            last_write_ok: st.last_write_ok,
            last_write_error: st.last_write_error.clone(),
            write_errors: st.write_errors,
            last_fsync_ok: s.broken.is_none(),
            fsyncs: s.fsyncs,
            seq: st.seq,
            durable_seq: s.durable_seq,
            broken: s.broken.clone(),
        }
    }

    /// Test hook: make appends fail (after writing half of their bytes) as a full disk would.
    #[doc(hidden)]
    pub fn inject_write_error(&self, on: bool) {
        self.inner().state.lock().inject_write_error = on;
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
        {
            let _g = self.inner.state.lock();
            self.inner.appended.notify_all();
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
        let mut st = self.inner.state.lock();
        if !st.staged.is_empty() {
            let _ = AppendLog::write_staged_locked(&self.inner, &mut st);
        }
        if let Err(e) = st.file.sync_data() {
            tracing::warn!(file = %st.path.display(), error = %e, "fsync of the append log on close failed");
        }
    }
}

fn complete_sync(inner: &Inner, seq: u64, res: std::result::Result<(), String>) {
    let mut s = inner.sync.lock();
    match res {
        Ok(()) => {
            s.fsyncs += 1;
            if seq > s.durable_seq {
                s.durable_seq = seq;
            }
            let durable = s.durable_seq;
            let waiters = std::mem::take(&mut s.waiters);
            for (w, tx) in waiters {
                if w <= durable {
                    let _ = tx.send(Ok(()));
                } else {
                    s.waiters.push((w, tx));
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "append log fsync failed; refusing further appends");
            let detail = format!("fsync failed: {e}");
            s.broken = Some(detail.clone());
            for (_, tx) in std::mem::take(&mut s.waiters) {
                let _ = tx.send(Err(detail.clone()));
            }
        }
    }
    inner.synced.notify_all();
}

fn syncer_loop(inner: &Inner) {
    loop {
        let (file, seq) = {
            let mut st = inner.state.lock();
            match inner.policy {
                FsyncPolicy::Always => {
                    while !inner.stop.load(Ordering::SeqCst)
                        && st.seq <= inner.sync.lock().durable_seq
                    {
                        inner.appended.wait(&mut st);
                    }
                }
                _ => {
                    if !inner.stop.load(Ordering::SeqCst) {
                        inner.appended.wait_for(&mut st, Duration::from_secs(1));
                    }
                }
            }
            if inner.stop.load(Ordering::SeqCst) {
                return;
            }
            if st.seq <= inner.sync.lock().durable_seq {
                continue;
            }
            (st.file.clone(), st.seq)
        };
        let res = file.sync_data();
        let failed = res.is_err();
        complete_sync(inner, seq, res.map_err(|e| e.to_string()));
        if failed {
            return;
        }
    }
}
