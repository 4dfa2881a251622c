//! The snapshot store: one complete, checksummed snapshot of every database in an
//! embedded LSM store (fjall, chosen on measurement; see docs/persistence.md).
//!
//! # Layout
//!
//! `<data dir>/snapshot/` is a fjall database with
//! * keyspace `meta`, key `current`: the [`SnapshotMeta`] of the snapshot in force;
//! * keyspace `snap-<id>`: that snapshot's entries, key = db (u16 BE) ‖ scan hash
//!   (u64 BE) ‖ key bytes, value = CRC-32C ‖ type ‖ [deadline] ‖ payload (see
//!   [`crate::codec`]).
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
//! under its lock (`Store::snapshot`). Databases are persistent B-trees with values
//! behind `Arc`s, so the server keeps writing while this thread walks the clone; a
//! write copies only the tree path and the value it touches.

use crate::codec::{self, CRC32C};
use crate::datadir::DataDir;
use crate::error::{PersistError, Result};
use parking_lot::Mutex;
use redsnap_engine::{Db, Entry, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The snapshot format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const META_KEYSPACE: &str = "meta";
const CURRENT_KEY: &str = "current";
const SNAP_PREFIX: &str = "snap-";

/// Metadata of one snapshot, stored (checksummed) under `meta/current`.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotMeta {
    pub format_version: u32,
    /// Sequence number of the snapshot (names its keyspace `snap-<id>`).
    pub id: u64,
    /// The append log generation it covers: every write in generations `<= log_gen`
    /// is in the snapshot; replay starts at `log_gen + 1`.
    pub log_gen: u64,
    /// When the snapshot was started (the clone was taken), ms since the epoch.
    pub created_ms: u64,
    /// Number of entries written.
    pub keys: u64,
    /// CRC-32C over the entries' CRCs in store order (detects lost or extra entries).
    pub checksum: u32,
}

impl SnapshotMeta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(b"RSNAPMETA");
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.log_gen.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.keys.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
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
        if version != FORMAT_VERSION {
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
        let cs = r.take(4).map_err(|e| corrupt(&e.detail))?;
        let checksum = u32::from_le_bytes([cs[0], cs[1], cs[2], cs[3]]);
        Ok(SnapshotMeta {
            format_version: version,
            id,
            log_gen,
            created_ms,
            keys,
            checksum,
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

/// How to treat damage found while loading.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Load a log whose last file ends in a torn or corrupt record by truncating it
    /// (Redis's `aof-load-truncated`, on by default in [`LoadOptions::new`]).
    pub load_truncated: bool,
    /// Load what is valid when a snapshot or the middle of the log is damaged, instead
    /// of refusing to start. Damaged snapshot entries are skipped; log replay stops at
    /// the first damaged record and the damaged files are kept as `*.corrupt`.
    pub ignore_corruption: bool,
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
    /// The open fjall database; `None` after a failure poisoned it (reopened lazily).
    db: Mutex<Option<fjall::Database>>,
    busy: AtomicBool,
    stats: Mutex<SnapshotStats>,
    /// Test hook: fail after writing this many entries (u64::MAX = never).
    fail_after: AtomicU64,
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
        .map_err(store_err(path))
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

/// Deletes every `snap-*` keyspace other than `keep` (leftovers of failed attempts).
fn delete_others(db: &fjall::Database, path: &Path, keep: Option<&str>) {
    for name in db.list_keyspace_names() {
        let name: &str = &name;
        if name.starts_with(SNAP_PREFIX) && Some(name) != keep {
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
        let keep = current.as_ref().map(|m| format!("{SNAP_PREFIX}{}", m.id));
        delete_others(&db, &path, keep.as_deref());
        let stats = SnapshotStats {
            last_ok: true,
            last_save_ms: current.as_ref().map(|m| m.created_ms),
            last_keys: current.as_ref().map_or(0, |m| m.keys),
            ..Default::default()
        };
        Ok(SnapshotStore {
            inner: Arc::new(Inner {
                path,
                db: Mutex::new(Some(db)),
                busy: AtomicBool::new(false),
                stats: Mutex::new(stats),
                fail_after: AtomicU64::new(u64::MAX),
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A copy of the figures for INFO and metrics.
    pub fn stats(&self) -> SnapshotStats {
        self.inner.stats.lock().clone()
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
    pub fn write(&self, dbs: Vec<Db>, log_gen: u64) -> Result<SnapshotInfo> {
        let _busy = self.begin()?;
        self.write_locked(dbs, log_gen)
    }

    /// Starts a snapshot on a background thread. Checks synchronously that none is in
    /// progress (so BGSAVE can answer at once). After the snapshot is durable, log
    /// generations `<= log_gen` are deleted from `log` (compaction). `on_done` runs on
    /// the snapshot thread with the outcome (e.g. to reset the dirty counter, which
    /// the server should do by subtracting the dirty count it had when it took the clone).
    pub fn spawn(
        &self,
        dbs: Vec<Db>,
        log_gen: u64,
        log: Option<crate::AppendLog>,
        on_done: impl FnOnce(&Result<SnapshotInfo>) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>> {
        let busy = self.begin()?;
        let this = self.clone();
        std::thread::Builder::new()
            .name("redsnap-snapshot".into())
            .spawn(move || {
                let _busy = busy;
                let res = this.write_locked(dbs, log_gen);
                if let (Ok(info), Some(log)) = (&res, &log) {
                    if let Err(e) = log.compact_through(log_gen, info.size_bytes) {
                        tracing::warn!(error = %e, "snapshot written, but deleting old log generations failed");
                    }
                }
                on_done(&res);
            })
            .map_err(|e| PersistError::io("spawn snapshot thread for", self.inner.path.clone(), e))
    }

    fn begin(&self) -> Result<BusyGuard> {
        if self.inner.busy.swap(true, Ordering::AcqRel) {
            return Err(PersistError::SnapshotInProgress);
        }
        let mut st = self.inner.stats.lock();
        st.in_progress = true;
        st.current_started_ms = Some(now_ms());
        Ok(BusyGuard(self.inner.clone()))
    }

    fn write_locked(&self, dbs: Vec<Db>, log_gen: u64) -> Result<SnapshotInfo> {
        let started = Instant::now();
        let created_ms = now_ms();
        let res = self.write_inner(&dbs, log_gen, created_ms, started);
        drop(dbs);
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
                tracing::info!(
                    keys = info.keys,
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
                tracing::error!(error = %e, "snapshot failed; the previous snapshot is still in force");
                // fjall poisons a database after a failed write: reopen it next time.
                *self.inner.db.lock() = None;
            }
        }
        res
    }

    fn write_inner(
        &self,
        dbs: &[Db],
        log_gen: u64,
        created_ms: u64,
        started: Instant,
    ) -> Result<SnapshotInfo> {
        let path = &self.inner.path;
        let serr = store_err(path);
        let db = self.db()?;
        let current = read_current(&db, path)?;
        let id = current.as_ref().map_or(1, |m| m.id + 1);
        let name = format!("{SNAP_PREFIX}{id}");
        delete_others(
            &db,
            path,
            current
                .as_ref()
                .map(|m| format!("{SNAP_PREFIX}{}", m.id))
                .as_deref(),
        );
        let ks = db
            .keyspace(&name, fjall::KeyspaceCreateOptions::default)
            .map_err(&serr)?;
        let fail_after = self.inner.fail_after.load(Ordering::SeqCst);
        let mut ing = ks.start_ingestion().map_err(&serr)?;
        let mut key = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        let mut val = Vec::new();
        let mut n: u64 = 0;
        let mut digest = CRC32C.digest();
        for (i, d) in dbs.iter().enumerate() {
            let dbi = u16::try_from(i)
                .map_err(|_| PersistError::Injected(format!("database index {i} exceeds 65535")))?;
            for (k, e) in d.iter() {
                if n >= fail_after {
                    return Err(PersistError::Injected(format!(
                        "no space left on device (after {n} entries)"
                    )));
                }
                codec::entry_key(&mut key, dbi, k);
                if key <= prev && n > 0 {
                    return Err(PersistError::CorruptSnapshot {
                        path: path.clone(),
                        location: format!("db {i}"),
                        detail: "database iteration is not in (hash, key) order; cannot ingest"
                            .into(),
                    });
                }
                codec::encode_entry(&mut val, &key, e.value(), e.expire_at);
                if let Some(c) = codec::stored_crc(&val) {
                    digest.update(&c.to_le_bytes());
                }
                ing.write(key.as_slice(), val.as_slice()).map_err(&serr)?;
                std::mem::swap(&mut prev, &mut key);
                n += 1;
            }
        }
        ing.finish().map_err(&serr)?;
        let meta = SnapshotMeta {
            format_version: FORMAT_VERSION,
            id,
            log_gen,
            created_ms,
            keys: n,
            checksum: digest.finalize(),
        };
        // The switch: point `current` at the new keyspace and make it durable.
        meta_keyspace(&db, path)?
            .insert(CURRENT_KEY, meta.encode())
            .map_err(&serr)?;
        db.persist(fjall::PersistMode::SyncAll).map_err(&serr)?;
        let size_bytes = ks.disk_space();
        drop(ks);
        // Only now is the previous snapshot deleted.
        if let Some(old) = current {
            let old_name = format!("{SNAP_PREFIX}{}", old.id);
            let res = db
                .keyspace(&old_name, fjall::KeyspaceCreateOptions::default)
                .and_then(|k| db.delete_keyspace(k));
            if let Err(e) = res {
                tracing::warn!(keyspace = old_name, error = %e, "could not delete the previous snapshot keyspace");
            }
        }
        Ok(SnapshotInfo {
            meta,
            keys: n,
            size_bytes,
            duration: started.elapsed(),
        })
    }

    /// Loads the snapshot in force into `store` (which should be empty). Keys are
    /// inserted with their absolute deadlines, expired or not: the caller drops the
    /// expired ones after replaying the log (see [`crate::recover`]), because a
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
            tracing::info!(store = %path.display(), "no snapshot to load");
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
        let mut digest = CRC32C.digest();
        let mut n: u64 = 0;
        let mut last_key: Option<Vec<u8>> = None;
        let describe = |last: &Option<Vec<u8>>| match last {
            Some(k) => match codec::split_entry_key(k) {
                Some((d, key)) => format!("after db {d} key {:?}", String::from_utf8_lossy(key)),
                None => "after an unreadable key".to_string(),
            },
            None => "at the first entry".to_string(),
        };
        for item in ks.iter() {
            let (k, v) = match item.into_inner() {
                Ok(kv) => kv,
                Err(e) => {
                    let err = PersistError::CorruptSnapshot {
                        path: ks.path().to_path_buf(),
                        location: format!("keyspace {name}, {}", describe(&last_key)),
                        detail: format!("read error: {e}"),
                    };
                    if opts.ignore_corruption {
                        tracing::warn!(error = %err, "loading what is valid: stopping the snapshot load here");
                        report.truncated = true;
                        break;
                    }
                    return Err(err);
                }
            };
            if let Some(c) = codec::stored_crc(&v) {
                digest.update(&c.to_le_bytes());
            }
            n += 1;
            let decoded = match codec::split_entry_key(&k) {
                None => Err(codec::DecodeError {
                    offset: 0,
                    detail: "store key shorter than 10 bytes".into(),
                }),
                Some((d, key)) => codec::decode_entry(&k, &v).and_then(|(value, exp)| {
                    if (d as usize) < store.dbs.len() {
                        Ok((d as usize, key, value, exp))
                    } else {
                        Err(codec::DecodeError {
                            offset: 0,
                            detail: format!(
                                "database {d} does not exist (databases = {})",
                                store.dbs.len()
                            ),
                        })
                    }
                }),
            };
            match decoded {
                Ok((d, key, value, exp)) => {
                    store.dbs[d]
                        .insert_entry(bytes::Bytes::copy_from_slice(key), Entry::new(value, exp));
                    report.keys_loaded += 1;
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
                        report.entries_skipped += 1;
                    } else {
                        return Err(err);
                    }
                }
            }
            last_key = Some(k.to_vec());
        }
        if !report.truncated && (n != meta.keys || digest.finalize() != meta.checksum) {
            let err = PersistError::CorruptSnapshot {
                path: ks.path().to_path_buf(),
                location: format!("keyspace {name}"),
                detail: format!(
                    "snapshot checksum mismatch: metadata says {} entries, found {n} (entries lost, added or reordered)",
                    meta.keys
                ),
            };
            if opts.ignore_corruption {
                tracing::warn!(error = %err, "loading what is valid despite a checksum mismatch");
                report.truncated = true;
            } else {
                return Err(err);
            }
        }
        report.meta = Some(meta);
        report.duration = started.elapsed();
        tracing::info!(
            keys = report.keys_loaded,
            skipped = report.entries_skipped,
            ms = report.duration.as_millis() as u64,
            "snapshot loaded"
        );
        Ok(report)
    }
}

/// Clears the in-progress flag when the snapshot ends (or its thread dies).
struct BusyGuard(Arc<Inner>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        {
            let mut st = self.0.stats.lock();
            st.in_progress = false;
            st.current_started_ms = None;
        }
        self.0.busy.store(false, Ordering::Release);
    }
}
