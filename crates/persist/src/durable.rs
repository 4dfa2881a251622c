//! A keyspace's persistence as one value, for a process that runs the engine itself
//! (the library's in-process backend, `redsnap:///path`): the locked data directory,
//! the snapshot store, the append log, recovery at open, the snapshot triggers
//! (save points, `snapshot-interval`, log growth), the MISCONF state, and the final
//! snapshot at shutdown, with the settings and the rules `redsnap serve` applies.
//! It is the one place those rules live: `redsnap serve` (`server/src/persist.rs`)
//! holds a `Durable` too and adds only what is the server's own (its configuration
//! and `CONFIG SET`, INFO text, `/metrics`, the replies of BGSAVE and SAVE). For
//! `CONFIG SET appendonly` at runtime a log can be started ([`Durable::start_log`],
//! counted only once the snapshot of that moment is durable) and stopped
//! ([`Durable::stop_log`]); settings change live with [`Durable::set_config`].
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
    /// `no-appendfsync-on-rewrite` (default no): the log is not fsynced while a
    /// background snapshot is written.
    pub no_appendfsync_on_rewrite: bool,
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
            no_appendfsync_on_rewrite: false,
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
    /// The log was started at runtime ([`Durable::start_log`]) and its first
    /// snapshot is not durable yet: its file is `*.pending` until then.
    log_pending: bool,
    /// The dataset holds an import (`serve --import`) that no snapshot holds yet: a
    /// snapshot is due at once, and its success deletes the import's marker.
    import_pending: bool,
    /// Whether the last snapshot written was incremental, and how many entries it
    /// wrote.
    last_incremental: bool,
    last_changed: u64,
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
    /// A pending log ([`Durable::start_log`]) that this snapshot starts.
    commit: Option<AppendLog>,
    dbs: Dataset,
    gen: u64,
    dirty: u64,
}

impl SaveJob {
    /// Writes the snapshot on the calling thread and compacts the log it covers.
    pub fn run(self) -> std::result::Result<SnapshotInfo, String> {
        self.snaps
            .save(self.dbs, self.gen, self.log.as_ref())
            .and_then(|info| commit_log(self.commit.as_ref()).map(|_| info))
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
            // A torn tail cut from the log is logged where it is cut (file, offset,
            // bytes: `recover`), once.
            let report = recover(&dir, &snaps, store, &opts)?;
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
            import_pending: report.import_pending.is_some(),
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
            log_pending: false,
            last_incremental: false,
            last_changed: 0,
        })
    }

    /// Persistence turned on in a running process whose memory is the dataset:
    /// locks the directory and opens its snapshot store, loads nothing, starts no
    /// log (see [`Durable::start_log`]); the first snapshot replaces what the
    /// directory held. `lastsave` is the caller's last save time (unix seconds).
    pub fn attach(cfg: DurableConfig, lastsave: u64) -> Result<Durable> {
        let dir = DataDir::open(&cfg.dir)?;
        let snaps = SnapshotStore::open(&dir)?;
        snaps.set_incremental(cfg.snapshot_incremental);
        let gens = crate::aof::list_generations(dir.path())?;
        let newest = gens.iter().map(|(g, _)| *g).max().unwrap_or(0);
        tracing::info!(
            "persistence turned on at runtime: using {}; the next snapshot replaces what it holds",
            dir.path().display()
        );
        Ok(Durable {
            cfg,
            dir,
            snaps,
            log: None,
            fixed_gen: newest,
            dirty_at_start: 0,
            last_attempt_ms: 0,
            last_ok: true,
            log_error: None,
            lastsave,
            report: RecoveryReport::default(),
            log_pending: false,
            import_pending: false,
            last_incremental: false,
            last_changed: 0,
        })
    }

    /// Applies changed settings to the open directory: the log's fsync policy,
    /// `no-appendfsync-on-rewrite` (at once if a snapshot is running), incremental
    /// snapshots; the triggers and `stop-writes-on-bgsave-error` are read where they
    /// act. `dir`, `appendonly` and the load options are not acted on here (the log
    /// is started and stopped with [`Durable::start_log`] and [`Durable::stop_log`]).
    pub fn set_config(&mut self, cfg: DurableConfig) {
        if let Some(log) = &self.log {
            log.set_policy(cfg.appendfsync);
            log.set_fsync_paused(cfg.no_appendfsync_on_rewrite && self.snaps.in_progress());
        }
        self.snaps.set_incremental(cfg.snapshot_incremental);
        self.cfg = cfg;
    }

    /// Starts an append log at runtime, as Redis's BGREWRITEAOF starts an AOF: a
    /// new generation (pending) receives every write from now on, and a snapshot of
    /// this moment (due at once: [`Durable::due`]) covers everything before it; once
    /// that snapshot is durable the generation becomes part of the log. Until then a
    /// crash recovers the previous state. Creates one file (an administrative
    /// command, once). Returns the new log.
    pub fn start_log(&mut self) -> Result<AppendLog> {
        let log = AppendLog::open_pending(&self.dir, self.cfg.appendfsync, self.fixed_gen + 1)?;
        log.set_base_size(self.snaps.stats().last_size_bytes);
        self.fixed_gen = log.generation() - 1;
        self.log = Some(log.clone());
        self.log_pending = true;
        self.log_error = None;
        self.cfg.appendonly = true;
        tracing::info!("append log turned on: writing a snapshot to start it from");
        Ok(log)
    }

    /// Stops logging writes: returns the log, to be flushed, fsynced and closed
    /// ([`AppendLog::close`]) off the caller's lock. Its files stay on disk; later
    /// snapshots cover them.
    pub fn stop_log(&mut self) -> Option<AppendLog> {
        let log = self.log.take()?;
        self.log_pending = false;
        self.log_error = None;
        self.fixed_gen = self.fixed_gen.max(log.staged_generation());
        self.cfg.appendonly = false;
        tracing::info!("append log turned off");
        Some(log)
    }

    /// Whether a log started at runtime still waits for its first snapshot (which
    /// must then be written at shutdown whatever `snapshot-on-shutdown` says, or
    /// what the log holds would be dropped at the next start).
    pub fn log_pending(&self) -> bool {
        self.log_pending
    }

    /// Whether shutdown writes a final snapshot: `requested` is the caller's choice
    /// (SHUTDOWN SAVE / NOSAVE), else `snapshot-on-shutdown`; a log started at
    /// runtime that no snapshot started yet forces one (what it holds would be
    /// dropped at the next start).
    pub fn save_at_shutdown(&self, requested: Option<bool>) -> bool {
        self.log_pending || requested.unwrap_or(self.cfg.snapshot_on_shutdown)
    }

    /// Whether the dataset holds an import that no snapshot holds yet.
    pub fn import_pending(&self) -> bool {
        self.import_pending
    }

    /// Whether the last snapshot written was incremental.
    pub fn last_incremental(&self) -> bool {
        self.last_incremental
    }

    /// How many entries the last snapshot wrote.
    pub fn last_changed(&self) -> u64 {
        self.last_changed
    }

    /// Unix seconds of the last successful snapshot (or of the open).
    pub fn last_save(&self) -> u64 {
        self.lastsave
    }

    /// Whether a background snapshot is being written.
    pub fn in_progress(&self) -> bool {
        self.snaps.in_progress()
    }

    /// Loads the dataset of the directory into `store` (DEBUG RELOAD): what the log
    /// holds must have been written first ([`Durable::flush`]).
    pub fn load_into(&self, store: &mut Store, opts: &LoadOptions) -> Result<RecoveryReport> {
        recover(&self.dir, &self.snaps, store, opts)
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

    /// Why a snapshot should start now, if one should: a log write failure to
    /// repair, a log started at runtime or an import to make durable, a save point
    /// reached, the snapshot interval passed with changes, or the log grown past
    /// `auto-aof-rewrite-percentage`; never while one is in progress, nor within 5 s
    /// of a failed attempt (as Redis).
    pub fn due(&self, dirty: u64, now: u64) -> Option<String> {
        if self.snaps.in_progress() {
            return None;
        }
        if !self.last_ok && now.saturating_sub(self.last_attempt_ms) < 5000 {
            return None;
        }
        let mut reason = if self.log_error.is_some() {
            Some(
                "the append log could not be written: snapshotting to make memory durable again"
                    .to_string(),
            )
        } else if self.log_pending {
            Some("the append log was turned on".to_string())
        } else if self.import_pending {
            Some("the imported dataset is in no snapshot yet".to_string())
        } else {
            None
        };
        let since_save = (now / 1000).saturating_sub(self.lastsave);
        for &(secs, changes) in &self.cfg.save_points {
            if dirty >= changes && since_save >= secs {
                return Some(format!("{changes} changes in {secs} seconds"));
            }
        }
        let interval = self.cfg.snapshot_interval_secs;
        if reason.is_none() && interval > 0 && dirty > 0 && since_save >= interval {
            reason = Some(format!("snapshot-interval {interval}s"));
        }
        if reason.is_none() {
            if let Some(log) = &self.log {
                if log.should_rewrite(
                    self.cfg.auto_aof_rewrite_percentage,
                    self.cfg.auto_aof_rewrite_min_size,
                ) {
                    reason = Some("append log grew past auto-aof-rewrite-percentage".into());
                }
            }
        }
        reason
    }

    /// The log generation a snapshot taken now covers (rotating the log: no I/O),
    /// and the pending log its success starts, if any.
    fn snapshot_gen(&self) -> std::result::Result<(u64, Option<AppendLog>), String> {
        Ok(match &self.log {
            Some(log) if self.log_pending => (self.fixed_gen, Some(log.clone())),
            Some(log) => (log.rotate().map_err(|e| e.to_string())?, None),
            None => (self.fixed_gen, None),
        })
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
        let (gen, commit) = self.snapshot_gen()?;
        // The point the snapshot stands for, with the changes since the last one (for
        // an incremental snapshot); recording goes on for the next one if it is on.
        let dbs = store.snapshot_point(self.cfg.snapshot_incremental);
        self.dirty_at_start = store.effects.dirty;
        self.last_attempt_ms = now_ms();
        let res = self
            .snaps
            .spawn(dbs, gen, self.log.clone(), move |res| {
                on_done(match res {
                    Ok(info) => commit_log(commit.as_ref())
                        .map(|_| info.clone())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                })
            })
            .map(|_| ())
            .map_err(|e| e.to_string());
        if res.is_ok() && self.cfg.no_appendfsync_on_rewrite {
            if let Some(log) = &self.log {
                log.set_fsync_paused(true);
            }
        }
        res
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
        let (gen, commit) = self.snapshot_gen()?;
        self.last_attempt_ms = now_ms();
        Ok(SaveJob {
            snaps: self.snaps.clone(),
            log: self.log.clone(),
            commit,
            dbs: store.snapshot_point(self.cfg.snapshot_incremental),
            gen,
            dirty: store.effects.dirty,
        })
    }

    /// Records a snapshot's outcome (under the lock): on success the changes it
    /// covers (`dirty_at_start`) no longer count, the time is the last save, a log
    /// started at runtime counts from now on, an import's marker is deleted, and a
    /// failed log write is repaired (the snapshot holds everything in memory). On
    /// failure the previous snapshot is intact; writes are refused per
    /// [`Durable::write_refusal`] and the next attempt waits 5 s ([`Durable::due`]).
    pub fn finish(
        &mut self,
        store: &mut Store,
        dirty_at_start: u64,
        res: std::result::Result<&SnapshotInfo, &str>,
    ) {
        if let Some(log) = &self.log {
            log.set_fsync_paused(false);
        }
        match res {
            Ok(info) => {
                store.effects.dirty = store.effects.dirty.saturating_sub(dirty_at_start);
                self.lastsave = now_ms() / 1000;
                self.last_ok = true;
                self.last_incremental = info.incremental;
                self.last_changed = info.changed;
                if self.log_pending && self.log.as_ref().is_some_and(|l| !l.is_pending()) {
                    self.log_pending = false;
                }
                if self.import_pending {
                    match crate::import::finish(self.dir.path()) {
                        Ok(()) => {
                            self.import_pending = false;
                            tracing::info!("import complete: its first snapshot is durable");
                        }
                        Err(e) => tracing::error!(
                            "the import's first snapshot is durable, but its marker could not be deleted: {e} (the next start deletes it)"
                        ),
                    }
                }
                // The snapshot holds everything in memory, including any batch whose
                // log write failed: the log is consistent again from here on.
                if self.log_error.take().is_some() {
                    tracing::info!(
                        "append log writable again after a successful snapshot; accepting writes"
                    );
                }
                tracing::info!(
                    keys = info.keys,
                    bytes = info.size_bytes,
                    ms = info.duration.as_millis() as u64,
                    kind = if info.incremental {
                        "incremental"
                    } else {
                        "full"
                    },
                    changed = info.changed,
                    "snapshot saved"
                );
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

/// After the snapshot that starts a pending log is durable: make the log count.
fn commit_log(log: Option<&AppendLog>) -> Result<()> {
    match log {
        Some(l) => l.commit_pending(),
        None => Ok(()),
    }
}

/// Shutdown, off the lock, after any background snapshot finished: writes and
/// fsyncs what `log` holds. Returns whether the log now holds every write (then a
/// failed final snapshot loses nothing: [`final_snapshot_outcome`]).
pub fn flush_at_shutdown(log: Option<&AppendLog>) -> bool {
    match log {
        Some(l) => match l.flush() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("flushing the append log at shutdown failed: {e}");
                false
            }
        },
        None => false,
    }
}

/// The outcome of shutdown's final snapshot: a failure is an error (the process
/// must not exit, data would be lost) only when there is no flushed log
/// (`log_ok`, from [`flush_at_shutdown`]) to fall back on.
pub fn final_snapshot_outcome(
    res: std::result::Result<(), String>,
    log_ok: bool,
) -> std::result::Result<(), String> {
    match res {
        Ok(()) => {
            tracing::info!("final snapshot saved");
            Ok(())
        }
        Err(e) if log_ok => {
            tracing::warn!(
                "final snapshot failed ({e}); the append log holds every write, nothing is lost"
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "final snapshot failed and there is no append log to fall back on: {e}"
        )),
    }
}
