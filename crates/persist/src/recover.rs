//! Startup recovery: load the snapshot, replay the log generations after it, drop keys
//! whose deadline has passed.
//!
//! Rules (see docs/persistence.md):
//! * A snapshot that fails to load is an error, never an empty store.
//! * A torn or corrupt record at the end of the newest log file (the record runs past
//!   the end of the file, or only zero bytes follow it) is a crash artefact: the file
//!   is truncated there with a warning saying how many bytes were cut (unless
//!   `load_truncated` is off, then it is an error).
//! * A damaged record anywhere else, a damaged file header or a missing generation is
//!   an error naming the file and byte offset, unless `ignore_corruption` is set:
//!   then replay stops at the damage (everything before it is one consistent point in
//!   time), a fresh snapshot of what was loaded is written, and the damaged and later
//!   files are renamed `*.corrupt` rather than deleted.
//! * Every replayed file is fsynced before recovery returns (a killed process may have
//!   left its last writes in the page cache only), so the generation the server opens
//!   next never becomes durable before the records replayed from before it.
//! * `appendonly.<gen>.log.pending` files (a log started at runtime whose first
//!   snapshot never became durable) are not part of the log: they are deleted.

use crate::aof::{check_header, list_generations, LOG_HEADER};
use crate::codec::{self, CRC32C, FRAME_HEADER};
use crate::datadir::{sync_dir, DataDir};
use crate::error::{PersistError, Result};
use crate::snapshot::{LoadOptions, SnapshotMeta, SnapshotStore};
use redsnap_engine::{LogRecord, Reply, Store};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What recovery did.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// The snapshot loaded, if any.
    pub snapshot: Option<SnapshotMeta>,
    pub snapshot_keys: u64,
    /// Damaged snapshot entries skipped (only with `ignore_corruption`).
    pub snapshot_entries_skipped: u64,
    /// Log files replayed, in order.
    pub log_files: Vec<PathBuf>,
    /// Replayed log files fsynced before recovery returned (all of them): a file the
    /// crashed process wrote may still sit in the page cache, and the generation the
    /// server appends to next must not become durable before it.
    pub synced_log_files: Vec<PathBuf>,
    /// Leftover `*.log.pending` files deleted (a log started at runtime whose first
    /// snapshot never finished).
    pub pending_deleted: Vec<PathBuf>,
    pub log_records: u64,
    /// Replayed commands that answered with an error (logged, not fatal).
    pub replay_errors: u64,
    /// Bytes cut from a torn tail, and the file.
    pub truncated_bytes: u64,
    pub truncated_file: Option<PathBuf>,
    /// Damage that was skipped because `ignore_corruption` was set.
    pub ignored_corruption: Vec<String>,
    /// Files renamed to `*.corrupt`.
    pub quarantined: Vec<PathBuf>,
    /// Keys already expired at load, dropped.
    pub expired_dropped: u64,
    /// Keys in the store after recovery.
    pub keys: u64,
    /// The generation [`crate::AppendLog::open`] must start at (or after).
    pub next_gen: u64,
    /// Whether recovery wrote a fresh snapshot (after skipping damage).
    pub wrote_snapshot: bool,
    /// Size of the snapshot in force (for the rewrite check's base size).
    pub snapshot_size: u64,
    /// An import (`serve --import`) whose first snapshot is not written yet: its RDB
    /// file was loaded before the log (see [`crate::import`]). The server must take
    /// a snapshot and then delete the marker.
    pub import_pending: Option<crate::import::ImportMarker>,
    /// Keys loaded from that file.
    pub imported_keys: u64,
    pub duration: Duration,
}

impl RecoveryReport {
    /// The newest log generation on disk at startup. When the server runs without an
    /// append log, it passes this as `log_gen` to its snapshots (they then cover every
    /// log file left on disk).
    pub fn covered_gen(&self) -> u64 {
        self.next_gen.saturating_sub(1)
    }
}

/// Where reading a log file stopped.
#[derive(Debug)]
enum FileEnd {
    Clean,
    /// A torn tail at this offset (already truncated when allowed).
    Torn {
        offset: u64,
    },
    /// Damage in the middle, at this offset.
    Corrupt {
        offset: u64,
        detail: String,
    },
}

/// Reads one log file, calling `apply` for every intact frame; cuts a torn tail of
/// the newest file when `opts.load_truncated` allows it.
fn read_log_file(
    path: &Path,
    gen: u64,
    is_last: bool,
    opts: &LoadOptions,
    apply: impl FnMut(Vec<LogRecord>) -> Result<()>,
) -> Result<(FileEnd, u64)> {
    let (end, records, len) = scan_log_file(path, gen, is_last, apply)?;
    let end = match end {
        FileEnd::Torn { offset } if is_last && opts.load_truncated => {
            let cut = len - offset;
            tracing::warn!(
                file = %path.display(),
                offset,
                bytes = cut,
                "append log ends in a torn record: truncating {cut} bytes at offset {offset}"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| PersistError::io("open append log", path, e))?;
            if offset < LOG_HEADER as u64 {
                // Not even a whole header: rewrite it.
                f.set_len(0)
                    .map_err(|e| PersistError::io("truncate append log", path, e))?;
                let mut f = f;
                std::io::Write::write_all(&mut f, &crate::aof::encode_header(gen))
                    .map_err(|e| PersistError::io("rewrite append log header", path, e))?;
                f.sync_all()
                    .map_err(|e| PersistError::io("fsync append log", path, e))?;
            } else {
                f.set_len(offset)
                    .map_err(|e| PersistError::io("truncate append log", path, e))?;
                f.sync_all()
                    .map_err(|e| PersistError::io("fsync append log", path, e))?;
            }
            return Ok((FileEnd::Torn { offset: cut }, records));
        }
        FileEnd::Torn { offset } => {
            let detail = if is_last {
                format!("torn record at the end of the file ({} bytes; enable load-truncated to cut them)", len - offset)
            } else {
                "truncated record at the end of a file that is not the newest".to_string()
            };
            FileEnd::Corrupt { offset, detail }
        }
        e => e,
    };
    Ok((end, records))
}

/// What [`check_log_file`] found in one append log file.
#[derive(Debug, Clone)]
pub struct LogFileCheck {
    pub gen: u64,
    pub path: PathBuf,
    pub len: u64,
    /// Intact frames and the records in them.
    pub frames: u64,
    pub records: u64,
    /// Where reading stopped early, if it did.
    pub damage: Option<LogDamage>,
}

/// Damage in an append log file.
#[derive(Debug, Clone)]
pub struct LogDamage {
    pub offset: u64,
    pub detail: String,
    /// A torn last record of the newest file: what a crash leaves; the next start
    /// cuts it (`aof-load-truncated`), nothing acknowledged is lost.
    pub torn_tail: bool,
}

/// Verifies one log file without changing it: the header, every frame's checksums
/// and encoding. `is_last`: the newest generation, where a torn tail is a crash
/// artefact rather than damage.
/// `apply` sees the records of every intact frame (e.g. to replay them into a copy
/// of the dataset).
pub fn check_log_file(
    path: &Path,
    gen: u64,
    is_last: bool,
    mut apply: impl FnMut(Vec<LogRecord>),
) -> Result<LogFileCheck> {
    let mut frames = 0u64;
    let (end, records, len) = scan_log_file(path, gen, is_last, |recs| {
        frames += 1;
        apply(recs);
        Ok(())
    })?;
    let damage = match end {
        FileEnd::Clean => None,
        FileEnd::Torn { offset } => {
            Some(LogDamage {
                offset,
                detail: if is_last {
                    format!("torn record at the end of the newest file ({} bytes, cut at the next start)", len - offset)
                } else {
                    "truncated record at the end of a file that is not the newest".into()
                },
                torn_tail: is_last,
            })
        }
        FileEnd::Corrupt { offset, detail } => Some(LogDamage {
            offset,
            detail,
            torn_tail: false,
        }),
    };
    Ok(LogFileCheck {
        gen,
        path: path.to_path_buf(),
        len,
        frames,
        records,
        damage,
    })
}

/// Reads one log file without changing it, calling `apply` for every intact frame;
/// returns where it stopped, the records read and the file's length.
fn scan_log_file(
    path: &Path,
    gen: u64,
    is_last: bool,
    mut apply: impl FnMut(Vec<LogRecord>) -> Result<()>,
) -> Result<(FileEnd, u64, u64)> {
    let file = File::open(path).map_err(|e| PersistError::io("open append log", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| PersistError::io("stat", path, e))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let read_err = |e| PersistError::io("read append log", path, e);
    let mut records = 0u64;
    let end = 'outer: {
        if len < LOG_HEADER as u64 {
            break 'outer FileEnd::Torn { offset: 0 };
        }
        let mut h = [0u8; LOG_HEADER];
        r.read_exact(&mut h).map_err(read_err)?;
        match check_header(&h) {
            Ok(g) if g == gen => {}
            Ok(g) => {
                break 'outer FileEnd::Corrupt {
                    offset: 0,
                    detail: format!("file header names generation {g}"),
                }
            }
            Err(detail) => break 'outer FileEnd::Corrupt { offset: 0, detail },
        }
        let mut pos = LOG_HEADER as u64;
        let mut payload = Vec::new();
        while pos < len {
            let remaining = len - pos;
            if remaining < FRAME_HEADER as u64 {
                break 'outer FileEnd::Torn { offset: pos };
            }
            let mut fh = [0u8; FRAME_HEADER];
            r.read_exact(&mut fh).map_err(read_err)?;
            let Some((plen, crc)) = codec::check_frame_header(&fh) else {
                break 'outer FileEnd::Corrupt {
                    offset: pos,
                    detail: "frame header checksum mismatch".into(),
                };
            };
            let plen = u64::from(plen);
            if plen == 0 {
                break 'outer FileEnd::Corrupt {
                    offset: pos,
                    detail: "empty frame".into(),
                };
            }
            // The length is bounded by the file: a corrupt length cannot allocate more.
            if plen > remaining - FRAME_HEADER as u64 {
                break 'outer FileEnd::Torn { offset: pos };
            }
            payload.clear();
            payload.resize(plen as usize, 0);
            r.read_exact(&mut payload).map_err(read_err)?;
            let actual = CRC32C.checksum(&payload);
            if actual != crc {
                let detail = format!(
                    "frame checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
                );
                if pos + FRAME_HEADER as u64 + plen == len {
                    // The very last frame: a torn write.
                    break 'outer FileEnd::Torn { offset: pos };
                }
                break 'outer FileEnd::Corrupt {
                    offset: pos,
                    detail,
                };
            }
            match codec::decode_frame_payload(&payload) {
                Ok(recs) => {
                    records += recs.len() as u64;
                    apply(recs)?;
                }
                Err(e) => {
                    break 'outer FileEnd::Corrupt {
                        offset: pos,
                        detail: e.to_string(),
                    }
                }
            }
            pos += FRAME_HEADER as u64 + plen;
        }
        FileEnd::Clean
    };
    // Damage followed only by zero bytes (a filesystem that extended the file but
    // never wrote the data) is a torn tail too.
    let end = match end {
        FileEnd::Corrupt { offset, detail } if is_last => {
            if only_zeros_from(path, offset)? {
                FileEnd::Torn { offset }
            } else {
                FileEnd::Corrupt { offset, detail }
            }
        }
        e => e,
    };
    Ok((end, records, len))
}

fn only_zeros_from(path: &Path, offset: u64) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| PersistError::io("open append log", path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| PersistError::io("seek append log", path, e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| PersistError::io("read append log", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// fsyncs a log file that was replayed (it may hold bytes a killed process left in
/// the page cache).
fn sync_log_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| PersistError::io("fsync append log", path, e))
}

/// Deletes `appendonly.<gen>.log.pending` files: logs started at runtime whose first
/// snapshot never became durable (they were never part of the log).
fn delete_pending(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| PersistError::io("list", dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| PersistError::io("list", dir, e))?;
        let name = ent.file_name();
        let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_suffix(crate::aof::PENDING_SUFFIX))
        else {
            continue;
        };
        if crate::aof::parse_log_file_name(base).is_none() {
            continue;
        }
        let p = ent.path();
        tracing::warn!(file = %p.display(), "deleting an append log that was never started (its first snapshot did not finish)");
        std::fs::remove_file(&p).map_err(|e| PersistError::io("delete", &p, e))?;
        out.push(p);
    }
    if !out.is_empty() {
        sync_dir(dir)?;
    }
    Ok(out)
}

/// Drops every key whose deadline is before `now`; returns how many.
pub fn drop_expired(store: &mut Store, now: u64) -> u64 {
    let mut n = 0;
    for db in store.dbs.iter_mut() {
        let expired: Vec<redsnap_engine::key::Key> = db
            .volatile_from(0)
            .filter(|k| db.get(&k.key).is_some_and(|e| e.is_expired(now)))
            .map(|k| k.key.clone())
            .collect();
        for k in expired {
            db.remove(&k);
            n += 1;
        }
    }
    n
}

/// Loads the snapshot and replays the log into `store` (which should be empty), then
/// drops keys already expired. See the module docs for how damage is treated.
/// Afterwards open the log with `AppendLog::open(dir, policy, report.next_gen)`.
pub fn recover(
    dir: &DataDir,
    snapshots: &SnapshotStore,
    store: &mut Store,
    opts: &LoadOptions,
) -> Result<RecoveryReport> {
    recover_at(dir, snapshots, store, opts, redsnap_engine::now_ms())
}

/// [`recover`] with an explicit clock (ms since the epoch) for dropping expired keys.
pub fn recover_at(
    dir: &DataDir,
    snapshots: &SnapshotStore,
    store: &mut Store,
    opts: &LoadOptions,
    now: u64,
) -> Result<RecoveryReport> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let loaded = snapshots.load(store, opts)?;
    report.snapshot_keys = loaded.keys_loaded;
    report.snapshot_entries_skipped = loaded.entries_skipped;
    let mut damaged = loaded.entries_skipped > 0 || loaded.truncated;
    if damaged {
        report.ignored_corruption.push(format!(
            "snapshot in {}: {} damaged entries skipped{}",
            snapshots.path().display(),
            loaded.entries_skipped,
            if loaded.truncated {
                ", load stopped early"
            } else {
                ""
            }
        ));
    }
    match (&loaded.meta, crate::import::pending(dir.path())?) {
        (Some(_), Some(_)) => {
            // The import's snapshot was written; only the marker's deletion was lost.
            crate::import::finish(dir.path())?;
        }
        (None, Some(marker)) => {
            let imported = match crate::import::load(dir.path(), &marker, store) {
                Ok(r) => r,
                Err(e) => {
                    // Nothing was written after the import began: the directory is
                    // as empty as before it, and the marker goes (the error says why).
                    if list_generations(dir.path())?.is_empty() {
                        crate::import::finish(dir.path())?;
                    }
                    return Err(e);
                }
            };
            tracing::info!(
                file = %marker.file.display(),
                keys = imported.keys,
                expired_skipped = imported.expired_skipped,
                ms = imported.duration.as_millis() as u64,
                "loaded the RDB file of an import whose first snapshot is not written yet"
            );
            report.imported_keys = imported.keys;
            report.import_pending = Some(marker);
        }
        _ => {}
    }
    let covered = loaded.meta.as_ref().map_or(0, |m| m.log_gen);
    report.snapshot = loaded.meta;
    report.snapshot_size = snapshots.stats().last_size_bytes;

    report.pending_deleted = delete_pending(dir.path())?;
    let all = list_generations(dir.path())?;
    let max_gen = all.last().map_or(0, |(g, _)| *g);
    // Generations a durable snapshot covers are leftovers of an interrupted compaction.
    for (g, p) in all.iter().filter(|(g, _)| *g <= covered) {
        tracing::info!(file = %p.display(), generation = g, "deleting append log generation covered by the snapshot");
        std::fs::remove_file(p).map_err(|e| PersistError::io("delete", p, e))?;
    }
    let todo: Vec<(u64, PathBuf)> = all.into_iter().filter(|(g, _)| *g > covered).collect();
    let have: Vec<u64> = todo.iter().map(|(g, _)| *g).collect();
    // Generations must be contiguous, starting right after the snapshot (or at 1).
    let missing = (covered + 1..)
        .zip(have.iter())
        .find(|(want, g)| *want != **g)
        .map(|(want, _)| want);
    let mut stop_at: Option<usize> = None;
    if let Some(m) = missing {
        let err = PersistError::MissingGeneration {
            dir: dir.path().to_path_buf(),
            missing: m,
            have: have.clone(),
        };
        if !opts.ignore_corruption {
            return Err(err);
        }
        tracing::warn!(error = %err, "loading what is valid: replay stops before the gap");
        report.ignored_corruption.push(err.to_string());
        damaged = true;
        stop_at = todo.iter().position(|(g, _)| *g >= m);
    }

    let last_idx = todo.len().saturating_sub(1);
    let mut warned = 0u32;
    for (i, (gen, path)) in todo.iter().enumerate() {
        if stop_at.is_some_and(|s| i >= s) {
            break;
        }
        let mut apply = |recs: Vec<LogRecord>| -> Result<()> {
            for rec in recs {
                if rec.db >= store.dbs.len() {
                    return Err(PersistError::CorruptLog {
                        path: path.clone(),
                        offset: 0,
                        detail: format!(
                            "record for database {} but databases = {}",
                            rec.db,
                            store.dbs.len()
                        ),
                    });
                }
                let reply = store.exec(rec.db, rec.time, &rec.argv);
                if let Reply::Error(e) = reply {
                    report.replay_errors += 1;
                    if warned < 10 {
                        warned += 1;
                        tracing::warn!(
                            file = %path.display(),
                            command = %String::from_utf8_lossy(rec.argv.first().map_or(&b""[..], |a| &a[..])),
                            error = %String::from_utf8_lossy(&e),
                            "replayed command answered with an error"
                        );
                    }
                }
                report.log_records += 1;
            }
            store.effects.log.clear();
            store.effects.clear_touched();
            Ok(())
        };
        let (end, _) = read_log_file(path, *gen, i == last_idx, opts, &mut apply)?;
        report.log_files.push(path.clone());
        // In log order, before anything is appended after it (a new generation).
        sync_log_file(path)?;
        report.synced_log_files.push(path.clone());
        match end {
            FileEnd::Clean => {}
            FileEnd::Torn { offset: cut } => {
                report.truncated_bytes = cut;
                report.truncated_file = Some(path.clone());
            }
            FileEnd::Corrupt { offset, detail } => {
                let err = PersistError::CorruptLog {
                    path: path.clone(),
                    offset,
                    detail,
                };
                if !opts.ignore_corruption {
                    return Err(err);
                }
                tracing::warn!(error = %err, "loading what is valid: replay stops at the damaged record");
                report.ignored_corruption.push(err.to_string());
                damaged = true;
                stop_at = Some(i);
                break;
            }
        }
    }
    store.effects.dirty = 0;
    store.effects.log.clear();
    store.effects.clear_touched();
    report.expired_dropped = drop_expired(store, now);
    report.keys = store.total_keys() as u64;
    report.next_gen = covered.max(max_gen) + 1;

    if damaged {
        // Make what was loaded durable before setting the damaged files aside: a
        // snapshot covering every generation on disk.
        let info = snapshots.write(store.dataset(), covered.max(max_gen))?;
        report.wrote_snapshot = true;
        report.snapshot_size = info.size_bytes;
        for (i, (_, path)) in todo.iter().enumerate() {
            if stop_at.is_some_and(|s| i >= s) {
                let mut q = path.as_os_str().to_owned();
                q.push(".corrupt");
                let q = PathBuf::from(q);
                std::fs::rename(path, &q)
                    .map_err(|e| PersistError::io("rename damaged append log", path, e))?;
                tracing::warn!(file = %path.display(), kept_as = %q.display(), "damaged append log set aside");
                report.quarantined.push(q);
            } else {
                std::fs::remove_file(path).map_err(|e| PersistError::io("delete", path, e))?;
            }
        }
        sync_dir(dir.path())?;
    }
    report.duration = started.elapsed();
    // Debug: the server logs one info line per load with these figures.
    tracing::debug!(
        snapshot_keys = report.snapshot_keys,
        log_files = report.log_files.len(),
        log_records = report.log_records,
        expired_dropped = report.expired_dropped,
        keys = report.keys,
        ms = report.duration.as_millis() as u64,
        "recovery done"
    );
    Ok(report)
}
