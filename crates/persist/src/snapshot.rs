//! The snapshot store: one complete, checksummed snapshot of every database in an
//! embedded LSM store (fjall, chosen on measurement; see docs/persistence.md).
//!
//! # Layout
//!
//! `<data dir>/snapshot/` is a fjall database with
//! * keyspace `meta`, key `current`: the [`SnapshotMeta`] of the snapshot in force;
//! * keyspace `snap-<id>`: that snapshot's entries, key = db (u16 BE) ‖ key hash
//!   (u64 BE) ‖ key bytes, value = CRC-32C ‖ type ‖ (deadline) ‖ payload (see
//!   [`crate::codec`]).
//!
//! # The hash seed
//!
//! The key hash is seeded per dataset (`redsnap_engine::hash`); the metadata keeps the
//! seed (format 2), loading gives the store that seed, so the entry keys computed
//! after a restart are the stored ones. A format 1 snapshot (written before seeds, on
//! the unseeded hash) still loads: its keys go into the store under the store's own
//! random seed, and the next snapshot, which is always a full one after a load, is
//! written in format 2 under that seed. An incremental snapshot is only written onto
//! a keyspace whose seed is the one the databases use.
//!
//! # Atomic switch
//!
//! A new snapshot is bulk-ingested into a fresh keyspace `snap-<id+1>` (its tables are
//! written and fsynced by fjall), then `meta/current` is pointed at it and the journal
//! is fsynced; only then is the old keyspace deleted. A crash or error at any point
//! before the pointer is durable leaves the previous snapshot in force; a leftover
//! partial keyspace is deleted on the next open or write.
//!
//! # Not stopping the world
//!
//! The writer takes a `Vec<Db>`: an O(1) clone of the keyspace taken by the server
//! under its lock (`Store::snapshot`). Databases are persistent hash tries with values
//! behind `Arc`s, so the server keeps writing while this thread walks the clone; a
//! write copies only the tree path and the value it touches.

use crate::codec::{self, CRC32C};
use crate::datadir::DataDir;
use crate::error::{PersistError, Result};
use bytes::Bytes;
use parking_lot::Mutex;
use redsnap_engine::changes::Changes;
use redsnap_engine::{Dataset, Db, Entry, HashSeed, KeyHasher, Libraries, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod delta;

/// The newest snapshot format this build writes (4: the metadata also lists the
/// incremental deltas written onto the base keyspace, see [`delta`]). A snapshot
/// without deltas is written in the oldest format that holds it: 3 (the metadata
/// holds the function libraries' code) or 2 (the metadata holds the key hash seed),
/// which builds from before deltas (or libraries) read. Format 1 (no seed: entry
/// keys on the unseeded hash) is also read.
pub const FORMAT_VERSION: u32 = 4;

/// The format with function libraries and no deltas.
const FORMAT_LIBRARIES: u32 = 3;

/// The format with a key hash seed and no libraries.
const FORMAT_SEEDED: u32 = 2;

/// The format before hash seeds.
const FORMAT_UNSEEDED: u32 = 1;

const META_KEYSPACE: &str = "meta";
const CURRENT_KEY: &str = "current";
const SNAP_PREFIX: &str = "snap-";

/// Metadata of one snapshot, stored (checksummed) under `meta/current`.
#[derive(Clone, PartialEq)]
pub struct SnapshotMeta {
    pub format_version: u32,
    /// Sequence number of the snapshot (names its keyspace `snap-<id>`).
    pub id: u64,
    /// The append log generation it covers: every write in generations `<= log_gen`
    /// is in the snapshot; replay starts at `log_gen + 1`.
    pub log_gen: u64,
    /// When the snapshot was started (the clone was taken), ms since the epoch.
    pub created_ms: u64,
    /// Number of keys the snapshot holds (the base keyspace with its deltas applied).
    pub keys: u64,
    /// Number of entries in the base keyspace `snap-<id>` (= `keys` without deltas).
    pub base_keys: u64,
    /// Wrapping sum of the base keyspace's entries' CRC-32Cs (order-independent;
    /// detects lost, extra or altered entries). The base is never changed after it
    /// is written: incremental snapshots add deltas, each with its own sum.
    pub checksum: u64,
    /// The key hash seed the entry keys were computed with (`None`: format 1, the
    /// unseeded hash). Secret: never logged.
    pub hash_seed: Option<HashSeed>,
    /// The code of the function libraries (format 3; none in earlier formats).
    pub libraries: Vec<Bytes>,
    /// The incremental deltas applied over the base, oldest first (format 4).
    pub deltas: Vec<delta::DeltaMeta>,
}

/// The format a snapshot is written in: the oldest that holds it.
fn format_for(libraries: &[Bytes], deltas: &[delta::DeltaMeta]) -> u32 {
    if !deltas.is_empty() {
        FORMAT_VERSION
    } else if libraries.is_empty() {
        FORMAT_SEEDED
    } else {
        FORMAT_LIBRARIES
    }
}

impl std::fmt::Debug for SnapshotMeta {
    /// Everything but the hash seed's value (it keeps colliding keys out of reach).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotMeta")
            .field("format_version", &self.format_version)
            .field("id", &self.id)
            .field("log_gen", &self.log_gen)
            .field("created_ms", &self.created_ms)
            .field("keys", &self.keys)
            .field("base_keys", &self.base_keys)
            .field("checksum", &self.checksum)
            .field("hash_seed", &self.hash_seed.map(|_| "<set>"))
            .field("libraries", &self.libraries.len())
            .field("deltas", &self.deltas)
            .finish()
    }
}

impl SnapshotMeta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(b"RSNAPMETA");
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.log_gen.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        // The base keyspace's count (before format 4 the only one: the same).
        out.extend_from_slice(&self.base_keys.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
        if let Some(seed) = self.hash_seed {
            out.extend_from_slice(&seed.to_le_bytes());
        }
        if self.format_version >= FORMAT_LIBRARIES {
            codec::put_varint(&mut out, self.libraries.len() as u64);
            for code in &self.libraries {
                codec::put_bytes(&mut out, code);
            }
        }
        if self.format_version >= FORMAT_VERSION {
            out.extend_from_slice(&self.keys.to_le_bytes());
            codec::put_varint(&mut out, self.deltas.len() as u64);
            for d in &self.deltas {
                out.extend_from_slice(&d.gen.to_le_bytes());
                out.extend_from_slice(&d.entries.to_le_bytes());
                out.extend_from_slice(&d.checksum.to_le_bytes());
            }
        }
        let crc = CRC32C.checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(b: &[u8], path: &Path) -> Result<SnapshotMeta> {
        let corrupt = |detail: &str| PersistError::CorruptSnapshot {
            path: path.to_path_buf(),
            location: "keyspace meta, key current".into(),
            detail: detail.to_string(),
        };
        if b.len() < 13 || &b[..9] != b"RSNAPMETA" {
            return Err(corrupt("bad magic"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if CRC32C.checksum(body) != stored {
            return Err(corrupt("metadata checksum mismatch"));
        }
        let version = u32::from_le_bytes([b[9], b[10], b[11], b[12]]);
        if !(FORMAT_UNSEEDED..=FORMAT_VERSION).contains(&version) {
            return Err(PersistError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut r = codec::Reader::new(&body[13..]);
        let mut next = || r.u64_le().map_err(|e| corrupt(&e.detail));
        let id = next()?;
        let log_gen = next()?;
        let created_ms = next()?;
        let keys = next()?;
        let checksum = next()?;
        let hash_seed = if version == FORMAT_UNSEEDED {
            None
        } else {
            let lo = next()?;
            let hi = next()?;
            Some(u128::from(lo) | (u128::from(hi) << 64))
        };
        let mut libraries = Vec::new();
        if version >= FORMAT_LIBRARIES {
            let n = r.len(1).map_err(|e| corrupt(&e.detail))?;
            for _ in 0..n {
                libraries.push(r.bytes().map_err(|e| corrupt(&e.detail))?);
            }
        }
        let base_keys = keys;
        let mut keys = keys;
        let mut deltas = Vec::new();
        if version >= FORMAT_VERSION {
            keys = r.u64_le().map_err(|e| corrupt(&e.detail))?;
            let n = r.len(24).map_err(|e| corrupt(&e.detail))?;
            for _ in 0..n {
                let mut field = || r.u64_le().map_err(|e| corrupt(&e.detail));
                deltas.push(delta::DeltaMeta {
                    gen: field()?,
                    entries: field()?,
                    checksum: field()?,
                });
            }
        }
        Ok(SnapshotMeta {
            format_version: version,
            id,
            log_gen,
            created_ms,
            keys,
            base_keys,
            checksum,
            hash_seed,
            libraries,
            deltas,
        })
    }
}

/// The outcome of a successful snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    pub keys: u64,
    /// Bytes the new snapshot's keyspace occupies on disk.
    pub size_bytes: u64,
    pub duration: Duration,
    /// Whether only the changes since the previous snapshot were written.
    pub incremental: bool,
    /// Entries written or deleted (all of them for a full snapshot).
    pub changed: u64,
}

/// What loading a snapshot found.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The snapshot loaded, if there was one.
    pub meta: Option<SnapshotMeta>,
    pub keys_loaded: u64,
    /// Entries skipped because they were damaged (only with `ignore_corruption`).
    pub entries_skipped: u64,
    /// Whether reading stopped early at a damaged block (only with `ignore_corruption`).
    pub truncated: bool,
    pub duration: Duration,
}

/// How to treat damage found while loading. `Default` is [`LoadOptions::new`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Load a log whose last file ends in a torn or corrupt record by truncating it
    /// (Redis's `aof-load-truncated`, on by default in [`LoadOptions::new`]).
    pub load_truncated: bool,
    /// Load what is valid when a snapshot or the middle of the log is damaged, instead
    /// of refusing to start. Damaged snapshot entries are skipped; log replay stops at
    /// the first damaged record and the damaged files are kept as `*.corrupt`.
    pub ignore_corruption: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::new()
    }
}

impl LoadOptions {
    /// The defaults the server should use: truncate a torn tail, refuse other damage.
    pub fn new() -> LoadOptions {
        LoadOptions {
            load_truncated: true,
            ignore_corruption: false,
        }
    }
}

/// Figures for INFO persistence and metrics.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStats {
    pub in_progress: bool,
    /// Start of the snapshot in progress, ms since the epoch.
    pub current_started_ms: Option<u64>,
    /// Unix time (ms) of the last successful snapshot (LASTSAVE), including one found
    /// on disk at open.
    pub last_save_ms: Option<u64>,
    /// Whether the last attempt succeeded (`rdb_last_bgsave_status`); true before any.
    pub last_ok: bool,
    pub last_error: Option<String>,
    pub last_duration: Option<Duration>,
    pub last_size_bytes: u64,
    pub last_keys: u64,
    /// Successful snapshots since start.
    pub count: u64,
    /// Failed snapshots since start.
    pub failures: u64,
}

/// The snapshot store. Cheap to clone; one snapshot is written at a time.
#[derive(Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Holds the directory lock as long as the store lives.
    _data_dir: DataDir,
    /// The open fjall database; `None` after a failure poisoned it (reopened lazily).
    db: Mutex<Option<fjall::Database>>,
    /// Shared with the [`BusyGuard`] of a snapshot in progress, which does not hold
    /// the store itself: a snapshot thread lets go of the store (and so of the
    /// directory lock) before `busy` turns false.
    busy: Arc<AtomicBool>,
    stats: Arc<Mutex<SnapshotStats>>,
    /// Test hook: fail after writing this many entries (u64::MAX = never).
    fail_after: AtomicU64,
    /// Whether to write incremental snapshots from the changes a dataset carries.
    incremental: AtomicBool,
    /// The snapshot point the snapshot in force was written from (incremental mode
    /// only): a dataset whose changes start there can be written as its difference.
    prev: Mutex<Option<Prev>>,
}

/// The snapshot in force and the point (`Store::snapshot_point`) it was taken at.
struct Prev {
    id: u64,
    /// Its deltas (an incremental snapshot continues only the one it wrote last).
    deltas: Vec<delta::DeltaMeta>,
    point: u64,
    dbs: usize,
}

fn store_err(path: &Path) -> impl Fn(fjall::Error) -> PersistError + '_ {
    move |source| PersistError::Store {
        path: path.to_path_buf(),
        source,
    }
}

fn open_db(path: &Path) -> Result<fjall::Database> {
    fjall::Database::builder(path)
        .worker_threads(1)
        .open()
        .map_err(|source| PersistError::StoreOpen {
            path: path.to_path_buf(),
            source,
        })
}

fn meta_keyspace(db: &fjall::Database, path: &Path) -> Result<fjall::Keyspace> {
    db.keyspace(META_KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .map_err(store_err(path))
}

fn read_current(db: &fjall::Database, path: &Path) -> Result<Option<SnapshotMeta>> {
    let meta = meta_keyspace(db, path)?;
    match meta.get(CURRENT_KEY).map_err(store_err(path))? {
        None => Ok(None),
        Some(b) => SnapshotMeta::decode(&b, path).map(Some),
    }
}

/// The names of a snapshot's own keyspaces: its base `snap-<id>` (its deltas are
/// records in the shared keyspace [`delta::KEYSPACE`]).
fn keyspace_names(meta: &SnapshotMeta) -> Vec<String> {
    vec![format!("{SNAP_PREFIX}{}", meta.id)]
}

/// Deletes every `snap-*` keyspace not in `keep` (leftovers of failed attempts).
fn delete_others(db: &fjall::Database, path: &Path, keep: &[String]) {
    for name in db.list_keyspace_names() {
        let name: &str = &name;
        if name.starts_with(SNAP_PREFIX) && !keep.iter().any(|k| k == name) {
            let res = db
                .keyspace(name, fjall::KeyspaceCreateOptions::default)
                .and_then(|ks| db.delete_keyspace(ks));
            match res {
                Ok(()) => {
                    tracing::info!(store = %path.display(), keyspace = name, "deleted stale snapshot keyspace")
                }
                Err(e) => {
                    tracing::warn!(store = %path.display(), keyspace = name, error = %e, "could not delete stale snapshot keyspace")
                }
            }
        }
    }
}

fn now_ms() -> u64 {
    redsnap_engine::now_ms()
}

impl SnapshotStore {
    /// Opens (or creates) the snapshot store in `<dir>/snapshot`. Partial keyspaces
    /// left by a crash during a snapshot are deleted.
    pub fn open(dir: &DataDir) -> Result<SnapshotStore> {
        let path = dir.snapshot_path();
        let db = open_db(&path)?;
        let current = read_current(&db, &path)?;
        let keep = current.as_ref().map(keyspace_names).unwrap_or_default();
        delete_others(&db, &path, &keep);
        let stats = SnapshotStats {
            last_ok: true,
            last_save_ms: current.as_ref().map(|m| m.created_ms),
            last_keys: current.as_ref().map_or(0, |m| m.keys),
            ..Default::default()
        };
        Ok(SnapshotStore {
            inner: Arc::new(Inner {
                path,
                _data_dir: dir.clone(),
                db: Mutex::new(Some(db)),
                busy: Arc::new(AtomicBool::new(false)),
                stats: Arc::new(Mutex::new(stats)),
                fail_after: AtomicU64::new(u64::MAX),
                incremental: AtomicBool::new(false),
                prev: Mutex::new(None),
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A copy of the figures for INFO and metrics. `in_progress` is the flag a new
    /// snapshot checks (not a second copy of it, which the ending thread clears a
    /// moment earlier): once INFO says none is in progress, BGSAVE can start one.
    pub fn stats(&self) -> SnapshotStats {
        let mut st = self.inner.stats.lock().clone();
        st.in_progress = self.in_progress();
        st
    }

    /// Whether a snapshot is being written.
    pub fn in_progress(&self) -> bool {
        self.inner.busy.load(Ordering::Acquire)
    }

    /// The metadata of the snapshot in force, if any.
    pub fn current(&self) -> Result<Option<SnapshotMeta>> {
        let db = self.db()?;
        read_current(&db, &self.inner.path)
    }

    /// Incremental snapshots: a dataset taken at a snapshot point
    /// (`Store::snapshot_point`) carries the key hashes written and removed since the
    /// previous point; when that point is the one the snapshot in force was written
    /// from, the next snapshot is written as the difference (the entries under those
    /// hashes), applied to the snapshot in force in one atomic batch. Nothing of the
    /// previous version is kept in memory: the record costs a few bytes per changed
    /// key. The first snapshot after start is always full.
    pub fn set_incremental(&self, on: bool) {
        self.inner.incremental.store(on, Ordering::Relaxed);
        if !on {
            *self.inner.prev.lock() = None;
        } else if let Ok(db) = self.db() {
            // The deltas' keyspace is created now, once per store, rather than by the
            // first incremental snapshot (creating one costs some twenty fsyncs).
            if let Err(e) = db.keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default) {
                tracing::debug!(error = %e, "could not create the deltas keyspace yet");
            }
        }
    }

    /// Test hook: make the next snapshots fail after `n` entries as a full disk would
    /// (`None` to stop).
    #[doc(hidden)]
    pub fn inject_failure_after(&self, n: Option<u64>) {
        self.inner
            .fail_after
            .store(n.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn db(&self) -> Result<fjall::Database> {
        let mut g = self.inner.db.lock();
        if let Some(db) = g.as_ref() {
            return Ok(db.clone());
        }
        let db = open_db(&self.inner.path)?;
        *g = Some(db.clone());
        Ok(db)
    }

    /// Writes a complete snapshot of `dbs` covering log generations `<= log_gen`, on
    /// the calling thread, and switches to it atomically. On error the previous
    /// snapshot stays in force. Fails with [`PersistError::SnapshotInProgress`] when
    /// another snapshot is being written.
    pub fn write(&self, data: impl Into<Dataset>, log_gen: u64) -> Result<SnapshotInfo> {
        let _busy = self.begin()?;
        self.write_locked(data.into(), log_gen)
    }

    /// Starts a snapshot on a background thread. Checks synchronously that none is in
    /// progress (so BGSAVE can answer at once). After the snapshot is durable, log
    /// generations `<= log_gen` are deleted from `log` (compaction). `on_done` runs on
    /// the snapshot thread with the outcome (e.g. to reset the dirty counter, which
    /// the server should do by subtracting the dirty count it had when it took the clone),
    /// before [`SnapshotStore::in_progress`] turns false; it must not wait for that.
    pub fn spawn(
        &self,
        data: impl Into<Dataset>,
        log_gen: u64,
        log: Option<crate::AppendLog>,
        on_done: impl FnOnce(&Result<SnapshotInfo>) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>> {
        let busy = self.begin()?;
        let this = self.clone();
        let data = data.into();
        std::thread::Builder::new()
            .name("redsnap-snapshot".into())
            .spawn(move || {
                // A background snapshot yields the CPU to the server: clients' latency
                // comes first, the snapshot takes what is left (BENCHMARKS.md).
                crate::background::lower_thread_priority();
                let res = this.write_locked(data, log_gen);
                if let (Ok(info), Some(log)) = (&res, &log) {
                    compact(log, log_gen, info.size_bytes);
                }
                // The outcome is recorded (on_done) before the snapshot stops counting
                // as in progress: whoever sees it finished (INFO, the next BGSAVE) also
                // sees what on_done recorded (e.g. the server's MISCONF state).
                on_done(&res);
                // The thread's hold on the store (and the directory lock) ends before
                // the snapshot stops counting as in progress: whoever waits for that
                // can close the directory and reopen it at once.
                drop(this);
                drop(busy);
            })
            .map_err(|e| PersistError::io("spawn snapshot thread for", self.inner.path.clone(), e))
    }

    /// SAVE: writes a snapshot on the calling thread (at its priority) (see [`SnapshotStore::write`]),
    /// then deletes the log generations it covers.
    pub fn save(
        &self,
        data: impl Into<Dataset>,
        log_gen: u64,
        log: Option<&crate::AppendLog>,
    ) -> Result<SnapshotInfo> {
        let info = self.write(data, log_gen)?;
        if let Some(log) = log {
            compact(log, log_gen, info.size_bytes);
        }
        Ok(info)
    }

    fn begin(&self) -> Result<BusyGuard> {
        if self.inner.busy.swap(true, Ordering::AcqRel) {
            return Err(PersistError::SnapshotInProgress);
        }
        let mut st = self.inner.stats.lock();
        st.in_progress = true;
        st.current_started_ms = Some(now_ms());
        Ok(BusyGuard {
            busy: self.inner.busy.clone(),
            stats: self.inner.stats.clone(),
        })
    }

    fn write_locked(&self, data: Dataset, log_gen: u64) -> Result<SnapshotInfo> {
        let started = Instant::now();
        let created_ms = now_ms();
        let Dataset {
            dbs,
            libraries,
            changes,
        } = data;
        let res = self.write_inner(
            &dbs,
            &libraries,
            changes.as_ref(),
            log_gen,
            created_ms,
            started,
        );
        // The next snapshot can be incremental only if it starts from this one's point.
        *self.inner.prev.lock() = match (&res, &changes) {
            (Ok(info), Some(c)) if self.inner.incremental.load(Ordering::Relaxed) => Some(Prev {
                id: info.meta.id,
                deltas: info.meta.deltas.clone(),
                point: c.at,
                dbs: dbs.len(),
            }),
            _ => None,
        };
        // The clone goes now: the memory its copy-on-write kept is returned.
        drop(dbs);
        drop(changes);
        let mut st = self.inner.stats.lock();
        st.last_duration = Some(started.elapsed());
        match &res {
            Ok(info) => {
                st.last_ok = true;
                st.last_error = None;
                st.last_save_ms = Some(created_ms);
                st.last_size_bytes = info.size_bytes;
                st.last_keys = info.keys;
                st.count += 1;
                // Debug: the server logs one info line per snapshot with these figures.
                tracing::debug!(
                    keys = info.keys,
                    incremental = info.incremental,
                    changed = info.changed,
                    size_bytes = info.size_bytes,
                    ms = info.duration.as_millis() as u64,
                    log_gen,
                    "snapshot written"
                );
            }
            Err(e) => {
                st.last_ok = false;
                st.last_error = Some(e.to_string());
                st.failures += 1;
                // Debug: the server logs the failure (and what it does about it).
                tracing::debug!(error = %e, "snapshot failed; the previous snapshot is still in force");
                // fjall poisons a database after a failed write: reopen it next time.
                *self.inner.db.lock() = None;
            }
        }
        res
    }

    fn write_inner(
        &self,
        dbs: &[Db],
        libraries: &[Bytes],
        changes: Option<&Changes>,
        log_gen: u64,
        created_ms: u64,
        started: Instant,
    ) -> Result<SnapshotInfo> {
        let path = &self.inner.path;
        let db = self.db()?;
        let current = read_current(&db, path)?;
        // Incremental when the changes start at the point the snapshot in force was
        // written from, and every database's changes are known.
        let prev = self.inner.prev.lock().take();
        let hasher = dataset_hasher(dbs, path)?;
        if let (Some(prev), Some(cur), Some(changes)) = (prev, current.as_ref(), changes) {
            // The keyspace's entry keys must be on the databases' hash.
            let same_hash = cur.hash_seed == Some(hasher.seed());
            if prev.id == cur.id
                && prev.deltas == cur.deltas
                && prev.point == changes.since
                && changes.complete()
                && prev.dbs == dbs.len()
                && changes.dbs.len() == dbs.len()
                && same_hash
            {
                let res = self.write_incremental(
                    &db, cur, dbs, changes, libraries, log_gen, created_ms, started,
                );
                match res? {
                    Some(info) => return Ok(info),
                    None => tracing::debug!(
                        "too many changes for an incremental snapshot; writing a full one"
                    ),
                }
            }
        }
        self.write_full(
            &db, current, dbs, libraries, hasher, log_gen, created_ms, started,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn write_full(
        &self,
        db: &fjall::Database,
        current: Option<SnapshotMeta>,
        dbs: &[Db],
        libraries: &[Bytes],
        hasher: KeyHasher,
        log_gen: u64,
        created_ms: u64,
        started: Instant,
    ) -> Result<SnapshotInfo> {
        let path = &self.inner.path;
        let serr = store_err(path);
        let id = current.as_ref().map_or(1, |m| m.id + 1);
        let name = format!("{SNAP_PREFIX}{id}");
        delete_others(
            db,
            path,
            &current.as_ref().map(keyspace_names).unwrap_or_default(),
        );
        let ks = db
            .keyspace(&name, fjall::KeyspaceCreateOptions::default)
            .map_err(&serr)?;
        let fail_after = self.inner.fail_after.load(Ordering::SeqCst);
        // Two stages on two threads: this one walks the clone and encodes entries into
        // chunks; the other ingests them into the store.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        let (n, checksum) = std::thread::scope(|sc| -> Result<(u64, u64)> {
            let ingester = sc.spawn(|| -> Result<()> {
                let mut ing = ks.start_ingestion().map_err(&serr)?;
                for chunk in rx {
                    for (k, v) in chunk.iter() {
                        ing.write(k, v).map_err(&serr)?;
                    }
                }
                ing.finish().map_err(&serr)
            });
            let encoded = encode_all(dbs, path, fail_after, tx);
            let ingested = ingester
                .join()
                .map_err(|_| PersistError::Internal("snapshot ingestion thread panicked".into()))?;
            // An encoding error closes the channel early; report it over the
            // ingester's (which then only says the stream ended).
            let (n, checksum) = encoded?;
            ingested?;
            Ok((n, checksum))
        })?;
        let meta = SnapshotMeta {
            format_version: format_for(libraries, &[]),
            id,
            log_gen,
            created_ms,
            keys: n,
            base_keys: n,
            checksum,
            hash_seed: Some(hasher.seed()),
            libraries: libraries.to_vec(),
            deltas: Vec::new(),
        };
        // The switch: point `current` at the new keyspace and make it durable.
        meta_keyspace(db, path)?
            .insert(CURRENT_KEY, meta.encode())
            .map_err(&serr)?;
        db.persist(fjall::PersistMode::SyncAll).map_err(&serr)?;
        let size_bytes = ks.disk_space();
        drop(ks);
        // Only now is the previous snapshot (its base and deltas) deleted.
        for old_name in current.as_ref().map(keyspace_names).unwrap_or_default() {
            let res = db
                .keyspace(&old_name, fjall::KeyspaceCreateOptions::default)
                .and_then(|k| db.delete_keyspace(k));
            if let Err(e) = res {
                tracing::warn!(keyspace = old_name, error = %e, "could not delete the previous snapshot keyspace");
            }
        }
        // The deltas of replaced snapshots, once they take room.
        delta::drop_stale(db, path, n);
        Ok(SnapshotInfo {
            meta,
            keys: n,
            size_bytes,
            duration: started.elapsed(),
            incremental: false,
            changed: n,
        })
    }

    /// Loads the snapshot in force into `store` (which should be empty). Keys are
    /// inserted with their absolute deadlines, expired or not: the caller drops the
    /// expired ones after replaying the log (see [`crate::recover()`]), because a
    /// logged command may have changed a key's expiry.
    ///
    /// Damage (a failed entry checksum, an undecodable entry, a store read error, a
    /// count or checksum mismatch with the metadata) is an error naming the store and
    /// the location, unless `opts.ignore_corruption` is set: then damaged entries are
    /// skipped and counted, and a read error ends the load early.
    pub fn load(&self, store: &mut Store, opts: &LoadOptions) -> Result<LoadReport> {
        let started = Instant::now();
        let path = &self.inner.path;
        let serr = store_err(path);
        let db = self.db()?;
        let mut report = LoadReport::default();
        let Some(meta) = read_current(&db, path)? else {
            tracing::debug!(store = %path.display(), "no snapshot to load");
            report.duration = started.elapsed();
            return Ok(report);
        };
        let name = format!("{SNAP_PREFIX}{}", meta.id);
        if !db.keyspace_exists(&name) {
            return Err(PersistError::CorruptSnapshot {
                path: path.clone(),
                location: format!("keyspace {name}"),
                detail: "the current snapshot's keyspace is missing".into(),
            });
        }
        let ks = db
            .keyspace(&name, fjall::KeyspaceCreateOptions::default)
            .map_err(&serr)?;
        store.libraries = match Libraries::from_codes(meta.libraries.clone()) {
            Ok(libs) => libs,
            Err(detail) => {
                let err = PersistError::CorruptSnapshot {
                    path: path.clone(),
                    location: "keyspace meta, key current".into(),
                    detail: format!("function libraries: {detail}"),
                };
                if !opts.ignore_corruption {
                    return Err(err);
                }
                tracing::warn!(error = %err, "loading the snapshot without its function libraries");
                report.truncated = true;
                Libraries::default()
            }
        };
        let ndbs = store.dbs.len();
        // Entry keys carry the hash of the snapshot's seed: the store takes it, so the
        // keys of later (incremental) snapshots are the stored ones. A format 1
        // snapshot was written on the unseeded hash; its keys go in under the store's
        // own seed (the next snapshot, a full one, is written under that seed).
        let stored_hasher = match meta.hash_seed {
            Some(seed) => {
                store.set_key_hasher(KeyHasher::with_seed(seed));
                KeyHasher::with_seed(seed)
            }
            None => {
                tracing::info!(
                    "the snapshot predates hash seeds: loading it under a new random seed; the next snapshot is written with it"
                );
                KeyHasher::legacy()
            }
        };
        // Two stages: a reader thread iterates the store, verifies and decodes
        // entries; this thread inserts them into the keyspace.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, bytes::Bytes, Entry)>>(8);
        let read = std::thread::scope(|sc| {
            let reader = sc.spawn(|| read_entries(&ks, &name, ndbs, stored_hasher, opts, tx));
            for batch in rx {
                for (d, key, entry) in batch {
                    store.dbs[d].insert_entry(key, entry);
                }
            }
            reader.join()
        });
        let read =
            read.map_err(|_| PersistError::Internal("snapshot reader thread panicked".into()))??;
        let ReadOutcome {
            n,
            checksum,
            loaded,
            skipped,
            truncated,
        } = read;
        report.keys_loaded = loaded;
        report.entries_skipped = skipped;
        report.truncated = truncated;
        if !report.truncated && (n != meta.base_keys || checksum != meta.checksum) {
            let err = PersistError::CorruptSnapshot {
                path: ks.path().to_path_buf(),
                location: format!("keyspace {name}"),
                detail: format!(
                    "snapshot checksum mismatch: metadata says {} entries, found {n} (entries lost, added or altered)",
                    meta.base_keys
                ),
            };
            if opts.ignore_corruption {
                tracing::warn!(error = %err, "loading what is valid despite a checksum mismatch");
                report.truncated = true;
            } else {
                return Err(err);
            }
        }
        if !meta.deltas.is_empty() {
            let before: usize = store.dbs.iter().map(|d| d.len()).sum();
            let applied = delta::apply(&db, path, &meta, store, stored_hasher, opts)?;
            report.entries_skipped += applied.skipped;
            report.truncated |= applied.truncated;
            let after: usize = store.dbs.iter().map(|d| d.len()).sum();
            // The store was empty: what it holds now is what the snapshot loaded.
            let initial = (before as u64).saturating_sub(loaded);
            report.keys_loaded = (after as u64).saturating_sub(initial);
            if !report.truncated && report.entries_skipped == 0 && after as u64 != meta.keys {
                let err = PersistError::CorruptSnapshot {
                    path: path.clone(),
                    location: format!("keyspace {name} and its deltas"),
                    detail: format!(
                        "snapshot checksum mismatch: metadata says {} keys, the base and its deltas hold {after}",
                        meta.keys
                    ),
                };
                if !opts.ignore_corruption {
                    return Err(err);
                }
                tracing::warn!(error = %err, "loading what is valid despite a key count mismatch");
                report.truncated = true;
            }
        }
        report.meta = Some(meta);
        report.duration = started.elapsed();
        tracing::debug!(
            keys = report.keys_loaded,
            skipped = report.entries_skipped,
            ms = report.duration.as_millis() as u64,
            "snapshot loaded"
        );
        Ok(report)
    }
}

/// Clears the in-progress flag when the snapshot ends (or its thread dies).
struct BusyGuard {
    busy: Arc<AtomicBool>,
    stats: Arc<Mutex<SnapshotStats>>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        {
            let mut st = self.stats.lock();
            st.in_progress = false;
            st.current_started_ms = None;
        }
        self.busy.store(false, Ordering::Release);
    }
}

/// The table files of a keyspace directory, for error messages (fjall's read errors
/// do not say which file failed; its own log line gives the block offset).
fn table_files(keyspace: &Path) -> String {
    let dir = keyspace.join("tables");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    format!("{} ({len} bytes)", e.path().display())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        format!("none found in {}", dir.display())
    } else {
        files.join(", ")
    }
}

fn db_index(i: usize, path: &Path) -> Result<u16> {
    u16::try_from(i).map_err(|_| PersistError::CorruptSnapshot {
        path: path.to_path_buf(),
        location: format!("db {i}"),
        detail: "database index exceeds 65535".into(),
    })
}

/// Encoded entries, back to back, with their (key length, value length).
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl Chunk {
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut off = 0usize;
        self.spans.iter().map(move |&(k, v)| {
            let (k, v) = (k as usize, v as usize);
            let key = &self.data[off..off + k];
            let val = &self.data[off + k..off + k + v];
            off += k + v;
            (key, val)
        })
    }
}

const CHUNK_BYTES: usize = 1 << 20;

/// Walks every database in order, encodes each entry, and sends chunks to the
/// ingester. Returns (entries, checksum).
fn encode_all(
    dbs: &[Db],
    path: &Path,
    fail_after: u64,
    tx: std::sync::mpsc::SyncSender<Chunk>,
) -> Result<(u64, u64)> {
    let mut key = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    let mut val = Vec::new();
    let mut n: u64 = 0;
    let mut checksum: u64 = 0;
    let mut chunk = Chunk::default();
    let closed = || PersistError::Internal("snapshot ingestion stopped early".into());
    for (i, d) in dbs.iter().enumerate() {
        let dbi = db_index(i, path)?;
        for (hash, k, e) in d.iter_hashed() {
            if n >= fail_after {
                return Err(PersistError::Injected(format!(
                    "no space left on device (after {n} entries)"
                )));
            }
            codec::entry_key(&mut key, dbi, hash, k);
            if n > 0 && key <= prev {
                return Err(PersistError::CorruptSnapshot {
                    path: path.to_path_buf(),
                    location: format!("db {i}"),
                    detail: "database iteration is not in (hash, key) order; cannot ingest".into(),
                });
            }
            codec::encode_entry(&mut val, &key, e.value(), e.expire_at());
            checksum = checksum.wrapping_add(u64::from(codec::stored_crc(&val).unwrap_or(0)));
            let (Ok(kl), Ok(vl)) = (u32::try_from(key.len()), u32::try_from(val.len())) else {
                return Err(PersistError::CorruptSnapshot {
                    path: path.to_path_buf(),
                    location: format!(
                        "db {i} key {:?}",
                        String::from_utf8_lossy(&k[..k.len().min(64)])
                    ),
                    detail: "entry larger than 4 GiB".into(),
                });
            };
            chunk.data.extend_from_slice(&key);
            chunk.data.extend_from_slice(&val);
            chunk.spans.push((kl, vl));
            if chunk.data.len() >= CHUNK_BYTES {
                tx.send(std::mem::take(&mut chunk)).map_err(|_| closed())?;
            }
            std::mem::swap(&mut prev, &mut key);
            n += 1;
        }
    }
    if !chunk.spans.is_empty() {
        tx.send(chunk).map_err(|_| closed())?;
    }
    Ok((n, checksum))
}

/// The key hash the databases share (a snapshot's entry keys are computed with it).
fn dataset_hasher(dbs: &[Db], path: &Path) -> Result<KeyHasher> {
    let hasher = dbs.first().map_or_else(KeyHasher::random, |d| d.hasher());
    if dbs.iter().any(|d| d.hasher() != hasher) {
        return Err(PersistError::Internal(format!(
            "snapshot of {}: the databases do not share one key hash",
            path.display()
        )));
    }
    Ok(hasher)
}

struct ReadOutcome {
    /// Entries read (damaged or not), and the sum of their stored CRCs.
    n: u64,
    checksum: u64,
    loaded: u64,
    skipped: u64,
    truncated: bool,
}

/// Reads, verifies and decodes every entry of a snapshot keyspace, sending batches.
fn read_entries(
    ks: &fjall::Keyspace,
    name: &str,
    ndbs: usize,
    hasher: KeyHasher,
    opts: &LoadOptions,
    tx: std::sync::mpsc::SyncSender<Vec<(usize, bytes::Bytes, Entry)>>,
) -> Result<ReadOutcome> {
    let mut out = ReadOutcome {
        n: 0,
        checksum: 0,
        loaded: 0,
        skipped: 0,
        truncated: false,
    };
    let mut last_key: Option<fjall::UserKey> = None;
    let describe =
        |last: &Option<fjall::UserKey>| match last.as_deref().and_then(codec::split_entry_key) {
            Some((d, key)) => format!("after db {d} key {:?}", String::from_utf8_lossy(key)),
            None if last.is_some() => "after an unreadable key".to_string(),
            None => "at the first entry".to_string(),
        };
    let mut batch = Vec::with_capacity(1024);
    for item in ks.iter() {
        let (k, v) = match item.into_inner() {
            Ok(kv) => kv,
            Err(e) => {
                let err = PersistError::CorruptSnapshot {
                    path: ks.path().to_path_buf(),
                    location: format!("keyspace {name}, {}", describe(&last_key)),
                    detail: format!(
                        "read error: {e}; table files of this keyspace: {}",
                        table_files(ks.path())
                    ),
                };
                if opts.ignore_corruption {
                    tracing::warn!(error = %err, "loading what is valid: stopping the snapshot load here");
                    out.truncated = true;
                    break;
                }
                return Err(err);
            }
        };
        out.checksum = out
            .checksum
            .wrapping_add(u64::from(codec::stored_crc(&v).unwrap_or(0)));
        out.n += 1;
        let decoded = match codec::split_entry_key(&k) {
            None => Err(codec::DecodeError {
                offset: 0,
                detail: "store key shorter than 10 bytes".into(),
            }),
            Some((d, key)) => codec::decode_entry(&k, &v).and_then(|(value, exp)| {
                if codec::entry_key_hash(&k) != Some(hasher.hash(key)) {
                    Err(codec::DecodeError {
                        offset: 2,
                        detail: "the key's stored hash is not the hash of the snapshot's seed"
                            .into(),
                    })
                } else if (d as usize) < ndbs {
                    Ok((d as usize, key, value, exp))
                } else {
                    Err(codec::DecodeError {
                        offset: 0,
                        detail: format!("database {d} does not exist (databases = {ndbs})"),
                    })
                }
            }),
        };
        match decoded {
            Ok((d, key, value, exp)) => {
                batch.push((
                    d,
                    bytes::Bytes::copy_from_slice(key),
                    Entry::new(value, exp),
                ));
                out.loaded += 1;
                if batch.len() >= 1024 {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(1024));
                    if tx.send(full).is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                let location = match codec::split_entry_key(&k) {
                    Some((d, key)) => format!(
                        "keyspace {name}, db {d} key {:?}",
                        String::from_utf8_lossy(key)
                    ),
                    None => format!("keyspace {name}, {}", describe(&last_key)),
                };
                let err = PersistError::CorruptSnapshot {
                    path: ks.path().to_path_buf(),
                    location,
                    detail: e.to_string(),
                };
                if opts.ignore_corruption {
                    tracing::warn!(error = %err, "loading what is valid: skipping a damaged snapshot entry");
                    out.skipped += 1;
                } else {
                    return Err(err);
                }
            }
        }
        last_key = Some(k);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    Ok(out)
}

fn compact(log: &crate::AppendLog, log_gen: u64, base_size: u64) {
    if let Err(e) = log.compact_through(log_gen, base_size) {
        tracing::warn!(error = %e, "snapshot written, but deleting the log generations it covers failed");
    }
}
