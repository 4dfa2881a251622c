//! A keyspace's persistence as one value, for a process that runs the engine itself
//! (the library's in-process backend, `redsnap:///path`): the locked data directory,
//! the snapshot store, the append log, recovery at open, the snapshot triggers
//! (save points, `snapshot-interval`, log growth), the MISCONF state, and the final
//! snapshot at shutdown, with the settings and the rules `redsnap serve` applies
//! (the server wires the same pieces itself in `server/src/persist.rs`, around its
//! configuration and `CONFIG SET`).
//!
//! [`Durable`] holds no lock of its own: its owner keeps it beside the
//! [`Store`] under the one lock that makes commands atomic, and follows the same
//! discipline as the server:
//!
//! ```text
//! open        let d = Durable::open(cfg, &mut store)?;     // lock the dir, recover
//! per batch   (under the lock) run commands; let token = d.stage(&mut store)?;
//!             (off the lock, before acknowledging) let w = log.write_staged()?;
//!             if log.waits_for_fsync() { log.durable(w).await? }   // appendfsync always
//! cron        (under the lock) if let Some(why) = d.due(store.effects.dirty, now) {
//!                 d.start_snapshot(&mut store, on_done)?   // clone O(dbs), write off the lock
//!             }                                        // on_done: lock, d.finish(..)
//! shutdown    d.prepare_save(&mut store) under the lock, job.run() off it, d.finish(..),
//!             d.close()
//! ```

use crate::error::Result;
use crate::{recover, AppendLog, DataDir, FsyncPolicy, LoadOptions, RecoveryReport};
use crate::{SnapshotInfo, SnapshotStore};
use redsnap_engine::{now_ms, Dataset, Store};
use std::path::{Path, PathBuf};

/// The persistence settings, with `redsnap serve`'s names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableConfig {
    /// The data directory (`dir`), created 0700 and locked.
    pub dir: PathBuf,
    /// `appendonly` (default yes): log every write.
    pub appendonly: bool,
    /// `appendfsync` (default everysec).
    pub appendfsync: FsyncPolicy,
    /// `save` points `(seconds, changes)` (default `3600 1 300 100 60 10000`).
    pub save_points: Vec<(u64, u64)>,
    /// `snapshot-interval` in seconds, 0 = off (default 300).
    pub snapshot_interval_secs: u64,
    /// `snapshot-on-shutdown` (default yes).
    pub snapshot_on_shutdown: bool,
    /// `restore-on-startup` (default yes). Off: start empty, and the next snapshot
    /// replaces what the directory held.
    pub restore_on_startup: bool,
    /// `snapshot-incremental` (default yes).
    pub snapshot_incremental: bool,
    /// `aof-load-truncated` (default yes): cut a torn tail of the newest log file.
    pub aof_load_truncated: bool,
    /// `load-corrupt` (default no): load what is valid from a damaged directory.
    pub load_corrupt: bool,
    /// `auto-aof-rewrite-percentage` (default 100, 0 = off).
    pub auto_aof_rewrite_percentage: u64,
    /// `auto-aof-rewrite-min-size` in bytes (default 64 MB).
    pub auto_aof_rewrite_min_size: u64,
    /// `stop-writes-on-bgsave-error` (default yes).
    pub stop_writes_on_bgsave_error: bool,
}

impl DurableConfig {
    /// `redsnap serve`'s defaults for the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> DurableConfig {
        DurableConfig {
            dir: dir.into(),
            appendonly: true,
            appendfsync: FsyncPolicy::EverySec,
            save_points: vec![(3600, 1), (300, 100), (60, 10000)],
            snapshot_interval_secs: 300,
            snapshot_on_shutdown: true,
            restore_on_startup: true,
            snapshot_incremental: true,
            aof_load_truncated: true,
            load_corrupt: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            stop_writes_on_bgsave_error: true,
        }
    }

    /// Whether any snapshot trigger is configured (save points or an interval), for
    /// `stop-writes-on-bgsave-error` (as the server's `snapshots_configured`).
    fn snapshots_configured(&self) -> bool {
        !self.save_points.is_empty() || self.snapshot_interval_secs > 0
    }
}

/// An open data directory with its snapshots and append log (see the module docs).
pub struct Durable {
    cfg: DurableConfig,
    dir: DataDir,
    snaps: SnapshotStore,
    log: Option<AppendLog>,
    /// The log generation snapshots cover when there is no append log.
    fixed_gen: u64,
    /// `dirty` when the snapshot in progress took its copy.
    dirty_at_start: u64,
    /// When the last snapshot attempt started (ms).
    last_attempt_ms: u64,
    /// The outcome of the last snapshot attempt.
    last_ok: bool,
    /// A write to the log failed: writes are refused until a snapshot succeeds.
    log_error: Option<String>,
    /// Unix seconds of the last successful snapshot (or of the open).
    lastsave: u64,
    report: RecoveryReport,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("dir", &self.dir.path())
            .field("appendonly", &self.log.is_some())
            .finish()
    }
}

/// A foreground snapshot (shutdown, an explicit save), prepared under the lock and
/// run off it with [`SaveJob::run`].
pub struct SaveJob {
    snaps: SnapshotStore,
    log: Option<AppendLog>,
    dbs: Dataset,
    gen: u64,
    dirty: u64,
}

impl SaveJob {
    /// Writes the snapshot on the calling thread and compacts the log it covers.
    pub fn run(self) -> std::result::Result<SnapshotInfo, String> {
        self.snaps
            .save(self.dbs, self.gen, self.log.as_ref())
            .map_err(|e| e.to_string())
    }

    /// The dirty count when the copy was taken (pass it to [`Durable::finish`]).
    pub fn dirty(&self) -> u64 {
        self.dirty
    }
}

impl Durable {
    /// Locks the directory (a second process, or a second open in this one, gets
    /// [`PersistError::Locked`] naming the holder's pid and nothing is touched),
    /// restores `store` (which should be empty) from the snapshot and the log unless
    /// `restore_on_startup` is off, and opens the log in a new generation.
    pub fn open(cfg: DurableConfig, store: &mut Store) -> Result<Durable> {
        let dir = DataDir::open(&cfg.dir)?;
        let snaps = SnapshotStore::open(&dir)?;
        snaps.set_incremental(cfg.snapshot_incremental);
        let opts = LoadOptions {
            load_truncated: cfg.aof_load_truncated,
            ignore_corruption: cfg.load_corrupt,
        };
        let report = if cfg.restore_on_startup {
            let report = recover(&dir, &snaps, store, &opts)?;
            if report.truncated_bytes > 0 {
                tracing::warn!(
                    "the append log ended in a torn record: {} bytes cut from {:?}",
                    report.truncated_bytes,
                    report.truncated_file
                );
            }
            for d in &report.ignored_corruption {
                tracing::warn!("load-corrupt: skipped damage: {d}");
            }
            report
        } else {
            tracing::warn!("restore-on-startup is off: starting empty; the data in {} will be replaced by the next snapshot", dir.path().display());
            let gens = crate::aof::list_generations(dir.path())?;
            RecoveryReport {
                next_gen: gens.iter().map(|(g, _)| g + 1).max().unwrap_or(1),
                ..RecoveryReport::default()
            }
        };
        let log = if cfg.appendonly {
            let log = AppendLog::open(&dir, cfg.appendfsync, report.next_gen)?;
            log.set_base_size(snaps.stats().last_size_bytes);
            Some(log)
        } else {
            None
        };
        store.log_enabled = log.is_some();
        let lastsave = snaps
            .stats()
            .last_save_ms
            .map_or_else(|| now_ms() / 1000, |ms| ms / 1000);
        Ok(Durable {
            fixed_gen: report.next_gen.saturating_sub(1),
            cfg,
            dir,
            snaps,
            log,
            dirty_at_start: 0,
            last_attempt_ms: 0,
            last_ok: true,
            log_error: None,
            lastsave,
            report,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DurableConfig {
        &self.cfg
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What recovery found at open.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// The append log, when `appendonly` is on.
    pub fn log(&self) -> Option<&AppendLog> {
        self.log.as_ref()
    }

    /// The snapshot store (its figures: [`SnapshotStore::stats`]).
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snaps
    }

    /// Whether the last snapshot attempt succeeded.
    pub fn last_snapshot_ok(&self) -> bool {
        self.last_ok
    }

    /// Stages the records the commands just run left in `store.effects.log` as one
    /// frame (replayed whole or not at all), to be written before anything is
    /// acknowledged. Returns the batch's token, or the MISCONF error text when the
    /// log refuses it (the effect is in memory but not logged: the caller must not
    /// acknowledge it).
    pub fn stage(&mut self, store: &mut Store) -> std::result::Result<Option<u64>, String> {
        if store.effects.log.is_empty() {
            return Ok(None);
        }
        let records = std::mem::take(&mut store.effects.log);
        let Some(log) = &self.log else {
            return Ok(None);
        };
        match log.stage(&records) {
            Ok(token) => {
                if self.log_error.is_some() && log.stats().last_write_ok {
                    self.log_error = None;
                }
                Ok(Some(token))
            }
            Err(e) => {
                tracing::error!("writing the append log failed: {e}");
                let msg = format!("MISCONF Errors writing to the AOF file: {e}");
                self.log_error = Some(msg.clone());
                Err(msg)
            }
        }
    }

    /// Records that writing staged batches failed (the caller's write of the log,
    /// off the lock): writes are refused until a snapshot succeeds.
    pub fn note_write_error(&mut self, msg: String) {
        self.log_error = Some(msg);
    }

    /// The MISCONF refusal for write commands while persistence is failing, as the
    /// server answers it: a failed log write or fsync, or a failed snapshot under
    /// `stop-writes-on-bgsave-error`.
    pub fn write_refusal(&self) -> Option<String> {
        if let Some(e) = &self.log_error {
            return Some(e.clone());
        }
        if let Some(log) = self.log.as_ref().filter(|l| l.is_broken()) {
            let detail = log.stats().broken.unwrap_or_default();
            return Some(format!("MISCONF Errors writing to the AOF file: {detail}"));
        }
        if !self.last_ok && self.cfg.snapshots_configured() && self.cfg.stop_writes_on_bgsave_error
        {
            return Some("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into());
        }
        None
    }

    /// Why a snapshot should start now, if one should: a save point reached, the
    /// snapshot interval passed with changes, the log grown past
    /// `auto-aof-rewrite-percentage`, or a log write failure to repair; never while
    /// one is in progress, nor within 5 s of a failed attempt (as Redis).
    pub fn due(&self, dirty: u64, now: u64) -> Option<String> {
        if self.snaps.in_progress() {
            return None;
        }
        if !self.last_ok && now.saturating_sub(self.last_attempt_ms) < 5000 {
            return None;
        }
        if self.log_error.is_some() {
            return Some(
                "the append log could not be written: snapshotting to make memory durable again"
                    .into(),
            );
        }
        let since_save = (now / 1000).saturating_sub(self.lastsave);
        for &(secs, changes) in &self.cfg.save_points {
            if dirty >= changes && since_save >= secs {
                return Some(format!("{changes} changes in {secs} seconds"));
            }
        }
        let interval = self.cfg.snapshot_interval_secs;
        if interval > 0 && dirty > 0 && since_save >= interval {
            return Some(format!("snapshot-interval {interval}s"));
        }
        if let Some(log) = &self.log {
            if log.should_rewrite(
                self.cfg.auto_aof_rewrite_percentage,
                self.cfg.auto_aof_rewrite_min_size,
            ) {
                return Some("append log grew past auto-aof-rewrite-percentage".into());
            }
        }
        None
    }

    /// The log generation a snapshot taken now covers (rotating the log: no I/O).
    fn snapshot_gen(&self) -> std::result::Result<u64, String> {
        match &self.log {
            Some(log) => log.rotate().map_err(|e| e.to_string()),
            None => Ok(self.fixed_gen),
        }
    }

    /// Starts a background snapshot: the copy of `store` is taken here, under the
    /// caller's lock, in O(databases); a snapshot thread writes it. `on_done` runs on
    /// that thread with the outcome: it should take the lock and call
    /// [`Durable::finish`] with [`Durable::dirty_at_start`].
    pub fn start_snapshot(
        &mut self,
        store: &mut Store,
        on_done: impl FnOnce(std::result::Result<SnapshotInfo, String>) + Send + 'static,
    ) -> std::result::Result<(), String> {
        if self.snaps.in_progress() {
            return Err("Background save already in progress".into());
        }
        let gen = self.snapshot_gen()?;
        self.dirty_at_start = store.effects.dirty;
        self.last_attempt_ms = now_ms();
        self.snaps
            .spawn(
                store.snapshot_point(self.cfg.snapshot_incremental),
                gen,
                self.log.clone(),
                move |res| {
                    on_done(match res {
                        Ok(info) => Ok(info.clone()),
                        Err(e) => Err(e.to_string()),
                    })
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The dirty count when the background snapshot in progress took its copy.
    pub fn dirty_at_start(&self) -> u64 {
        self.dirty_at_start
    }

    /// A foreground snapshot of `store` as it is now (taken under the lock, written
    /// by [`SaveJob::run`] off it).
    pub fn prepare_save(&mut self, store: &mut Store) -> std::result::Result<SaveJob, String> {
        if self.snaps.in_progress() {
            return Err("Background save already in progress".into());
        }
        let gen = self.snapshot_gen()?;
        self.last_attempt_ms = now_ms();
        Ok(SaveJob {
            snaps: self.snaps.clone(),
            log: self.log.clone(),
            dbs: store.snapshot_point(self.cfg.snapshot_incremental),
            gen,
            dirty: store.effects.dirty,
        })
    }

    /// Records a snapshot's outcome (under the lock): on success the changes it
    /// covers (`dirty_at_start`) no longer count, the time is the last save, and a
    /// failed log write is repaired (the snapshot holds everything in memory).
    pub fn finish(
        &mut self,
        store: &mut Store,
        dirty_at_start: u64,
        res: std::result::Result<&SnapshotInfo, &str>,
    ) {
        match res {
            Ok(_) => {
                store.effects.dirty = store.effects.dirty.saturating_sub(dirty_at_start);
                self.lastsave = now_ms() / 1000;
                self.last_ok = true;
                if self.log_error.take().is_some() {
                    tracing::info!(
                        "append log writable again after a successful snapshot; accepting writes"
                    );
                }
                tracing::info!("snapshot saved");
            }
            Err(e) => {
                tracing::error!("snapshot failed: {e} (the previous snapshot is intact)");
                self.last_ok = false;
            }
        }
    }

    /// Writes and fsyncs what the log holds, then closes it (after the final
    /// snapshot). The directory stays locked until this value is dropped.
    pub fn close(&self) -> Result<()> {
        if let Some(log) = &self.log {
            log.close()?;
        }
        Ok(())
    }

    /// Writes and fsyncs what the log holds (before the final snapshot).
    pub fn flush(&self) -> Result<()> {
        match &self.log {
            Some(log) => log.flush(),
            None => Ok(()),
        }
    }
}
