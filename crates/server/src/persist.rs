//! The server side of persistence: opening and recovering the data directory at
//! startup, appending each command's log records, snapshot triggers (BGSAVE, SAVE,
//! save points, `snapshot-interval`, log growth), INFO persistence, and the final
//! snapshot at shutdown. The storage itself is the `redsnap-persist` crate.

use crate::config::Config;
use crate::state::{Inner, Shared};
use crate::ServerError;
use redsnap_engine::{now_ms, Reply, Store};
use redsnap_persist::{recover, AppendLog, DataDir, FsyncPolicy, LoadOptions, SnapshotStore};
use std::fmt::Write;
use std::sync::Arc;

/// Persistence state kept under the server lock.
pub struct Persistence {
    pub dir: DataDir,
    pub snaps: SnapshotStore,
    pub log: Option<AppendLog>,
    /// The log generation snapshots cover when there is no append log.
    pub fixed_gen: u64,
    /// `dirty` when the snapshot in progress took its copy.
    pub dirty_at_start: u64,
    /// When the last snapshot attempt started (ms), for save points and retries.
    pub last_attempt_ms: u64,
    /// The outcome of the last snapshot attempt.
    pub last_ok: bool,
    /// A write to the log failed: writes are refused until an append succeeds.
    pub log_error: Option<String>,
    pub loaded_keys: u64,
    pub expired_at_load: u64,
    /// The log was started at runtime (`CONFIG SET appendonly yes`) and its first
    /// snapshot is not durable yet: its file is `*.pending` until then.
    pub log_pending: bool,
    /// Whether the last snapshot written was incremental, and how many entries it
    /// wrote (INFO `rdb_last_snapshot_incremental`, `rdb_last_snapshot_changed`).
    pub last_incremental: bool,
    pub last_changed: u64,
    /// The dataset holds an import (`serve --import`) that no snapshot holds yet:
    /// the cron starts one at once, and its success deletes the import's marker
    /// (`redsnap_persist::import`).
    pub import_pending: bool,
    /// Durations of the snapshots written since start (`/metrics`).
    pub durations: SnapshotDurations,
}

/// Upper bounds (seconds) of the snapshot duration histogram.
pub const SNAPSHOT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of snapshot durations, recorded once per snapshot (`finish`).
#[derive(Debug, Clone, Default)]
pub struct SnapshotDurations {
    /// Per bucket of [`SNAPSHOT_BUCKETS`], then the overflow (+Inf).
    pub counts: [u64; SNAPSHOT_BUCKETS.len() + 1],
    pub sum_secs: f64,
}

impl SnapshotDurations {
    fn record(&mut self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = SNAPSHOT_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(SNAPSHOT_BUCKETS.len());
        self.counts[i] += 1;
        self.sum_secs += s;
    }
}

/// The append log as the connections see it when they write replies. Swapped when
/// `CONFIG SET appendonly` starts or stops the log; a stopped log stays here until
/// its final fsync is done, so replies that wait for it still can.
#[derive(Default)]
pub struct LogSlot(parking_lot::RwLock<Option<AppendLog>>);

impl LogSlot {
    pub fn get(&self) -> Option<AppendLog> {
        self.0.read().clone()
    }
    pub fn set(&self, log: Option<AppendLog>) {
        *self.0.write() = log;
    }
    /// Empties the slot if it still holds `log`.
    pub fn clear_if(&self, log: &AppendLog) {
        let mut g = self.0.write();
        if g.as_ref().is_some_and(|l| l.same(log)) {
            *g = None;
        }
    }
}

/// `no-appendfsync-on-rewrite` (or redsnap's older name `appendfsync-no-rewrite`).
fn no_fsync_on_rewrite(c: &Config) -> bool {
    c.bool("no-appendfsync-on-rewrite") || c.bool("appendfsync-no-rewrite")
}

fn fsync_policy(c: &Config) -> FsyncPolicy {
    FsyncPolicy::parse(&c.str("appendfsync")).unwrap_or(FsyncPolicy::EverySec)
}

/// Whether the configuration asks for any persistence at all.
pub fn enabled(c: &Config) -> bool {
    c.bool("appendonly") || !c.save_points().is_empty() || c.u64("snapshot-interval") > 0
}

/// Opens the data directory (created 0700, locked) and restores the keyspace from
/// the snapshot and the log. Refuses to start on damage unless `load-corrupt yes`.
pub fn open(c: &Config, store: &mut Store) -> Result<Option<Persistence>, ServerError> {
    if !enabled(c) {
        return Ok(None);
    }
    let err = |e: redsnap_persist::PersistError| ServerError::Persist(e.to_string());
    let dir = DataDir::open(c.str("dir")).map_err(err)?;
    let snaps = SnapshotStore::open(&dir).map_err(err)?;
    snaps.set_incremental(c.bool("snapshot-incremental"));
    let opts = LoadOptions {
        load_truncated: c.bool("aof-load-truncated"),
        ignore_corruption: c.bool("load-corrupt"),
    };
    let mut import_pending = false;
    let (next_gen, loaded_keys, expired) = if c.bool("restore-on-startup") {
        let report = recover(&dir, &snaps, store, &opts).map_err(err)?;
        import_pending = report.import_pending.is_some();
        // A torn tail cut from the log is logged where it is cut (file, offset,
        // bytes: `redsnap_persist::recover`), once.
        let source = match (
            report.snapshot.is_some(),
            !report.log_files.is_empty(),
            import_pending,
        ) {
            (true, true, _) => "snapshot+log",
            (true, false, _) => "snapshot",
            (false, true, true) => "import+log",
            (false, false, true) => "import",
            (false, true, false) => "log",
            (false, false, false) => "empty",
        };
        tracing::info!(
            keys = report.keys,
            ms = report.duration.as_millis() as u64,
            source,
            snapshot_keys = report.snapshot_keys,
            log_files = report.log_files.len(),
            log_records = report.log_records,
            imported_keys = report.imported_keys,
            expired_dropped = report.expired_dropped,
            dir = %dir.path().display(),
            "dataset loaded"
        );
        for d in &report.ignored_corruption {
            tracing::warn!("load-corrupt: skipped damage: {d}");
        }
        (report.next_gen, report.keys, report.expired_dropped)
    } else {
        tracing::warn!("restore-on-startup is off: starting empty; the data in {} will be replaced by the next snapshot", dir.path().display());
        let gens = redsnap_persist::aof::list_generations(dir.path()).map_err(err)?;
        (gens.iter().map(|(g, _)| g + 1).max().unwrap_or(1), 0, 0)
    };
    let log = if c.bool("appendonly") {
        let log = AppendLog::open(&dir, fsync_policy(c), next_gen).map_err(err)?;
        log.set_base_size(snaps.stats().last_size_bytes);
        Some(log)
    } else {
        None
    };
    Ok(Some(Persistence {
        import_pending,
        dir,
        snaps,
        log,
        fixed_gen: next_gen.saturating_sub(1),
        dirty_at_start: 0,
        last_attempt_ms: 0,
        last_ok: true,
        log_error: None,
        loaded_keys,
        expired_at_load: expired,
        log_pending: false,
        last_incremental: false,
        last_changed: 0,
        durations: SnapshotDurations::default(),
    }))
}

/// Applies the persistence parameters after CONFIG SET (`old` is the configuration
/// before it), so that each takes effect at once: opens the data directory when
/// persistence is turned on at runtime, starts or stops the append log
/// (`appendonly`), switches the live log's fsync policy (`appendfsync`), pauses fsyncs
/// during a snapshot (`no-appendfsync-on-rewrite`), and sets incremental snapshots.
/// Save points, `snapshot-interval`, `snapshot-on-shutdown`, `auto-aof-rewrite-*`,
/// `aof-load-truncated` and `stop-writes-on-bgsave-error` are read live where they
/// act (the cron, shutdown, DEBUG RELOAD, `Tunables`). On error nothing was changed.
pub(crate) fn apply_config(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    old: &Config,
) -> Result<(), String> {
    let c = inner.config.clone();
    let opened_now = inner.persist.is_none() && enabled(&c);
    if opened_now {
        inner.persist = Some(open_at_runtime(&c)?);
    }
    if c.bool("appendonly") && inner.persist.as_ref().is_some_and(|p| p.log.is_none()) {
        if let Err(e) = start_log(shared, inner) {
            tracing::error!("could not turn on the append log: {e}");
            if opened_now {
                // Nothing changed: the data directory opened for this is released.
                inner.persist = None;
            }
            return Err(format!("CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF ({e})"));
        }
    }
    if !c.bool("appendonly") && old.bool("appendonly") {
        stop_log(shared, inner);
    }
    let Some(p) = inner.persist.as_mut() else {
        return Ok(());
    };
    if let Some(log) = &p.log {
        log.set_policy(fsync_policy(&c));
        log.set_fsync_paused(no_fsync_on_rewrite(&c) && p.snaps.in_progress());
    }
    p.snaps.set_incremental(c.bool("snapshot-incremental"));
    Ok(())
}

/// Persistence turned on at runtime (everything was off at startup): the data
/// directory is opened and locked, nothing is loaded (memory is the dataset); the
/// first snapshot replaces what the directory held.
fn open_at_runtime(c: &Config) -> Result<Persistence, String> {
    let dir = DataDir::open(c.str("dir")).map_err(|e| e.to_string())?;
    let snaps = SnapshotStore::open(&dir).map_err(|e| e.to_string())?;
    let gens = redsnap_persist::aof::list_generations(dir.path()).map_err(|e| e.to_string())?;
    let newest = gens.iter().map(|(g, _)| *g).max().unwrap_or(0);
    tracing::info!(
        "persistence turned on at runtime: using {}; the next snapshot replaces what it holds",
        dir.path().display()
    );
    Ok(Persistence {
        dir,
        snaps,
        log: None,
        fixed_gen: newest,
        dirty_at_start: 0,
        last_attempt_ms: 0,
        last_ok: true,
        log_error: None,
        loaded_keys: 0,
        expired_at_load: 0,
        log_pending: false,
        last_incremental: false,
        last_changed: 0,
        import_pending: false,
        durations: SnapshotDurations::default(),
    })
}

/// `appendonly yes` at runtime, as Redis's BGREWRITEAOF starts an AOF: a new log
/// generation (pending) receives every write from now on, and a snapshot of this
/// moment covers everything before it; once that snapshot is durable the generation
/// becomes part of the log. Until then a crash recovers the previous state (as in
/// Redis, whose new AOF only counts after its first rewrite).
fn start_log(shared: &Arc<Shared>, inner: &mut Inner) -> Result<(), String> {
    let policy = fsync_policy(&inner.config);
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is not open".into());
    };
    // The one file created under the lock (an administrative command, once).
    let log =
        AppendLog::open_pending(&p.dir, policy, p.fixed_gen + 1).map_err(|e| e.to_string())?;
    log.set_base_size(p.snaps.stats().last_size_bytes);
    p.fixed_gen = log.generation() - 1;
    p.log = Some(log.clone());
    p.log_pending = true;
    p.log_error = None;
    shared.log.set(Some(log));
    inner.store.log_enabled = true;
    tracing::info!("append log turned on: writing a snapshot to start it from");
    if let Err(e) = bgsave(shared, inner) {
        // The cron starts it as soon as the snapshot in progress is done.
        tracing::info!("the snapshot that starts the append log is scheduled: {e}");
    }
    Ok(())
}

/// `appendonly no` at runtime: no more writes are logged; the log is flushed, fsynced
/// and closed off the lock, and its files stay on disk (as Redis leaves them); later
/// snapshots cover them.
fn stop_log(shared: &Arc<Shared>, inner: &mut Inner) {
    // Records of commands that ran before CONFIG SET in this batch still go to the log.
    if let Err(e) = append(inner) {
        tracing::error!("append log: {e:?}");
    }
    inner.store.log_enabled = crate::repl::needs_records(inner);
    let Some(p) = inner.persist.as_mut() else {
        return;
    };
    let Some(log) = p.log.take() else { return };
    p.log_pending = false;
    p.log_error = None;
    p.fixed_gen = p.fixed_gen.max(log.staged_generation());
    tracing::info!("append log turned off");
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("redsnap-aof-close".into())
        .spawn({
            let log = log.clone();
            move || {
                if let Err(e) = log.close() {
                    tracing::error!("closing the append log: {e}");
                }
                shared.log.clear_if(&log);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("could not start the thread that closes the append log: {e}");
    }
}

/// Stages the records the last batch left in the append log (written before the
/// batch's replies leave, see `Conn::write`). Returns the batch's token, or an error
/// reply when the log refuses it (closed, broken, a record too large: the effect is in
/// memory but will not be logged, so the client is told).
pub(crate) fn append(inner: &mut Inner) -> Result<Option<u64>, Reply> {
    crate::repl::drain(inner);
    if inner.store.effects.log.is_empty() {
        return Ok(None);
    }
    let records = std::mem::take(&mut inner.store.effects.log);
    let Some(p) = inner.persist.as_mut() else {
        return Ok(None);
    };
    let Some(log) = &p.log else { return Ok(None) };
    // Staged, not written: the connection writes the round's staged batches before its
    // replies leave (`Conn::write`), one write(2) for every connection of the round.
    match log.stage(&records) {
        Ok(token) => {
            if p.log_error.is_some() && log.stats().last_write_ok {
                p.log_error = None;
            }
            Ok(Some(token))
        }
        Err(e) => {
            tracing::error!("writing the append log failed: {e}");
            let msg = format!("MISCONF Errors writing to the AOF file: {e}");
            p.log_error = Some(msg.clone());
            Err(Reply::error(msg))
        }
    }
}

/// The MISCONF refusal for write commands while persistence is failing, if any.
/// Whether a snapshot is being written (its copy then holds memory of its own).
pub(crate) fn snapshot_in_progress(inner: &Inner) -> bool {
    inner
        .persist
        .as_ref()
        .is_some_and(|p| p.snaps.in_progress())
}

pub(crate) fn write_refusal(inner: &Inner) -> Option<Reply> {
    if let Some(p) = inner.persist.as_ref() {
        if let Some(e) = &p.log_error {
            return Some(Reply::error(e.clone()));
        }
        if let Some(log) = p.log.as_ref().filter(|l| l.is_broken()) {
            let detail = log.stats().broken.unwrap_or_default();
            return Some(Reply::error(format!(
                "MISCONF Errors writing to the AOF file: {detail}"
            )));
        }
        if !p.last_ok && inner.tun.snapshots_configured && inner.tun.stop_writes_on_bgsave_error {
            return Some(Reply::err("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error."));
        }
    }
    // Redis's checkGoodReplicasStatus.
    if inner.tun.min_replicas && !crate::repl::enough_good_replicas(inner) {
        return Some(Reply::err("NOREPLICAS Not enough good replicas to write."));
    }
    None
}

/// The text of the refusal of writes in force, if any (the error, without `-`).
pub(crate) fn refusal_text(inner: &Inner) -> Option<String> {
    match write_refusal(inner)? {
        Reply::Error(e) => Some(String::from_utf8_lossy(&e).into_owned()),
        _ => Some("writes refused".into()),
    }
}

/// Logs a line when writes start being refused and when they are accepted again
/// (not one per refused command). Called by the cron; a change is logged within a
/// tick.
pub(crate) fn log_refusal(inner: &mut Inner) {
    let now = refusal_text(inner);
    match (&inner.refusal, now) {
        (None, None) => {}
        (Some((was, _)), Some(now)) if *was == now => {}
        (None, Some(now)) => {
            tracing::warn!(reason = %now, "refusing writes");
            inner.refusal = Some((now, std::time::Instant::now()));
        }
        (Some((_, since)), Some(now)) => {
            tracing::warn!(reason = %now, "refusing writes, for another reason now");
            let since = *since;
            inner.refusal = Some((now, since));
        }
        (Some((_, since)), None) => {
            tracing::info!(
                refused_ms = since.elapsed().as_millis() as u64,
                "accepting writes again"
            );
            inner.refusal = None;
        }
    }
}

/// Persistence as `/health` reports it, read under the lock.
pub(crate) fn health_figures(inner: &Inner) -> crate::PersistenceHealth {
    let ok = |b: bool| if b { "ok" } else { "err" };
    let Some(p) = inner.persist.as_ref() else {
        return crate::PersistenceHealth {
            enabled: false,
            last_snapshot_age_sec: None,
            last_snapshot_status: "ok",
            snapshot_in_progress: false,
            append_log: false,
            append_log_write_status: None,
            append_log_fsync_status: None,
        };
    };
    let st = p.snaps.stats();
    let log = p.log.as_ref().map(|l| l.stats());
    crate::PersistenceHealth {
        enabled: true,
        last_snapshot_age_sec: st.last_save_ms.map(|m| now_ms().saturating_sub(m) / 1000),
        last_snapshot_status: ok(st.last_ok),
        snapshot_in_progress: st.in_progress,
        append_log: log.is_some(),
        append_log_write_status: log.as_ref().map(|a| ok(a.last_write_ok)),
        append_log_fsync_status: log.as_ref().map(|a| ok(a.last_fsync_ok)),
    }
}

/// Starts a background snapshot. The copy of the keyspace is taken here, under the
/// lock, in O(databases); the writing happens on a snapshot thread.
pub(crate) fn bgsave(shared: &Arc<Shared>, inner: &mut Inner) -> Result<(), String> {
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is disabled (set appendonly, save or snapshot-interval)".into());
    };
    if p.snaps.in_progress() {
        return Err("Background save already in progress".into());
    }
    let (gen, commit) = snapshot_gen(p)?;
    // The point the snapshot stands for, with the changes since the last one (for
    // an incremental snapshot); recording goes on for the next one if it is on.
    let dbs = inner
        .store
        .snapshot_point(inner.config.bool("snapshot-incremental"));
    p.dirty_at_start = inner.store.effects.dirty;
    p.last_attempt_ms = now_ms();
    let shared2 = shared.clone();
    let pause = p.log.clone().filter(|_| no_fsync_on_rewrite(&inner.config));
    let res = p
        .snaps
        .spawn(dbs, gen, p.log.clone(), move |res| {
            let res = match res {
                Ok(info) => commit_log(commit.as_ref())
                    .map(|_| info)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let mut inner = shared2.inner.lock();
            finish(&mut inner, res);
        })
        .map(|_| ())
        .map_err(|e| e.to_string());
    if let (Ok(()), Some(log)) = (&res, pause) {
        log.set_fsync_paused(true);
    }
    res
}

/// The log generation a snapshot taken now covers (rotating the log: no I/O), and
/// the pending log its success starts, if any.
fn snapshot_gen(p: &mut Persistence) -> Result<(u64, Option<AppendLog>), String> {
    Ok(match &p.log {
        Some(log) if p.log_pending => (p.fixed_gen, Some(log.clone())),
        Some(log) => (log.rotate().map_err(|e| e.to_string())?, None),
        None => (p.fixed_gen, None),
    })
}

/// After the snapshot that starts a pending log is durable: make the log count.
fn commit_log(log: Option<&AppendLog>) -> redsnap_persist::Result<()> {
    match log {
        Some(l) => l.commit_pending(),
        None => Ok(()),
    }
}

fn finish(inner: &mut Inner, res: Result<&redsnap_persist::SnapshotInfo, String>) {
    let dirty_at_start = inner.persist.as_ref().map_or(0, |p| p.dirty_at_start);
    if let Some(log) = inner.persist.as_ref().and_then(|p| p.log.as_ref()) {
        log.set_fsync_paused(false);
    }
    match res {
        Ok(info) => {
            inner.store.effects.dirty = inner.store.effects.dirty.saturating_sub(dirty_at_start);
            inner.lastsave = now_ms() / 1000;
            if let Some(p) = inner.persist.as_mut() {
                p.last_ok = true;
                p.last_incremental = info.incremental;
                p.last_changed = info.changed;
                if p.log_pending && p.log.as_ref().is_some_and(|l| !l.is_pending()) {
                    p.log_pending = false;
                }
                if p.import_pending {
                    match redsnap_persist::import::finish(p.dir.path()) {
                        Ok(()) => {
                            p.import_pending = false;
                            tracing::info!("import complete: its first snapshot is durable");
                        }
                        Err(e) => tracing::error!(
                            "the import's first snapshot is durable, but its marker could not be deleted: {e} (the next start deletes it)"
                        ),
                    }
                }
                // The snapshot holds everything in memory, including any batch whose
                // log write failed: the log is consistent again from here on.
                if p.log_error.take().is_some() {
                    tracing::info!(
                        "append log writable again after a successful snapshot; accepting writes"
                    );
                }
            }
            if let Some(p) = inner.persist.as_mut() {
                p.durations.record(info.duration);
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
            if let Some(p) = inner.persist.as_mut() {
                p.last_ok = false;
            }
        }
    }
}

/// What a foreground save (SAVE, shutdown) needs, taken under the lock.
pub(crate) struct SaveJob {
    snaps: SnapshotStore,
    log: Option<AppendLog>,
    /// A pending log that this save starts.
    commit: Option<AppendLog>,
    dbs: redsnap_engine::Dataset,
    gen: u64,
    dirty: u64,
}

pub(crate) fn prepare_save(inner: &mut Inner) -> Result<SaveJob, String> {
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is disabled".into());
    };
    if p.snaps.in_progress() {
        return Err("Background save already in progress".into());
    }
    let (gen, commit) = snapshot_gen(p)?;
    p.last_attempt_ms = now_ms();
    Ok(SaveJob {
        snaps: p.snaps.clone(),
        log: p.log.clone(),
        commit,
        dbs: inner
            .store
            .snapshot_point(inner.config.bool("snapshot-incremental")),
        gen,
        dirty: inner.store.effects.dirty,
    })
}

/// Runs a foreground save off the async workers and records its outcome.
pub(crate) async fn run_save(shared: &Arc<Shared>, job: SaveJob) -> Result<(), String> {
    let dirty = job.dirty;
    let res = tokio::task::spawn_blocking(move || {
        job.snaps
            .save(job.dbs, job.gen, job.log.as_ref())
            .and_then(|info| commit_log(job.commit.as_ref()).map(|_| info))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let mut inner = shared.lock_async().await;
    if let Some(p) = inner.persist.as_mut() {
        p.dirty_at_start = dirty;
    }
    finish(&mut inner, res.as_ref().map_err(|e| e.clone()));
    res.map(|_| ())
}

/// Periodic checks: save points, `snapshot-interval`, log growth.
pub(crate) fn cron(shared: &Arc<Shared>, inner: &mut Inner) {
    let Some(p) = inner.persist.as_ref() else {
        return;
    };
    if p.snaps.in_progress() {
        return;
    }
    let now = now_ms();
    let dirty = inner.store.effects.dirty;
    let since_save = now / 1000 - inner.lastsave.min(now / 1000);
    // After a failure, retry no sooner than 5 s later (as Redis does).
    if !p.last_ok && now.saturating_sub(p.last_attempt_ms) < 5000 {
        return;
    }
    let mut reason = p.log_error.as_ref().map(|_| {
        "the append log could not be written: snapshotting to make memory durable again".to_string()
    });
    if reason.is_none() && p.log_pending {
        reason = Some("the append log was turned on".into());
    }
    if reason.is_none() && p.import_pending {
        reason = Some("the imported dataset is in no snapshot yet".into());
    }
    for (secs, changes) in inner.config.save_points() {
        if dirty >= changes && since_save >= secs {
            reason = Some(format!("{changes} changes in {secs} seconds"));
            break;
        }
    }
    let interval = inner.config.u64("snapshot-interval");
    if reason.is_none() && interval > 0 && dirty > 0 && since_save >= interval {
        reason = Some(format!("snapshot-interval {interval}s"));
    }
    if reason.is_none() {
        if let Some(log) = &p.log {
            if log.should_rewrite(
                inner.config.u64("auto-aof-rewrite-percentage"),
                inner.config.u64("auto-aof-rewrite-min-size"),
            ) {
                reason = Some("append log grew past auto-aof-rewrite-percentage".into());
            }
        }
    }
    if let Some(r) = reason {
        tracing::info!("{r}: starting a snapshot");
        if let Err(e) = bgsave(shared, inner) {
            tracing::error!("could not start a snapshot: {e}");
        }
    }
}

pub(crate) fn info(inner: &Inner) -> String {
    let mut s = String::from("# Persistence\r\n");
    // redsnap's own: whether writes are refused and the error they get (what
    // `/health` and `redsnap health` report).
    let refusal = refusal_text(inner);
    let refused = format!(
        "writes_refused:{}\r\nwrites_refused_reason:{}\r\n",
        refusal.is_some() as u8,
        refusal.unwrap_or_default()
    );
    let Some(p) = inner.persist.as_ref() else {
        let _ = write!(
            s,
            "loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\naof_enabled:0\r\naof_last_write_status:ok\r\npersistence_enabled:0\r\n{refused}\r\n",
            inner.store.effects.dirty, inner.lastsave
        );
        return s;
    };
    s.push_str(&refused);
    let st = p.snaps.stats();
    let now = now_ms();
    let _ = write!(
        s,
        "loading:0\r\npersistence_enabled:1\r\ndir:{}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_failures:{}\r\nrdb_last_snapshot_size:{}\r\nrdb_last_snapshot_keys:{}\r\nrdb_last_good_snapshot_age_sec:{}\r\nrdb_last_error:{}\r\nrdb_last_snapshot_incremental:{}\r\nrdb_last_snapshot_changed:{}\r\nloaded_keys:{}\r\nexpired_keys_at_load:{}\r\n",
        p.dir.path().display(),
        inner.store.effects.dirty,
        st.in_progress as u8,
        st.last_save_ms.map_or(inner.lastsave, |m| m / 1000),
        if st.last_ok { "ok" } else { "err" },
        st.last_duration.map_or(-1, |d| d.as_secs() as i64),
        st.current_started_ms.filter(|_| st.in_progress).map_or(-1, |t| (now.saturating_sub(t) / 1000) as i64),
        st.count,
        st.failures,
        st.last_size_bytes,
        st.last_keys,
        st.last_save_ms.map_or(-1, |m| (now.saturating_sub(m) / 1000) as i64),
        st.last_error.clone().unwrap_or_default().replace(['\r', '\n'], " "),
        p.last_incremental as u8,
        p.last_changed,
        p.loaded_keys,
        p.expired_at_load,
    );
    match &p.log {
        Some(log) => {
            let a = log.stats();
            let _ = write!(
                s,
                "aof_enabled:1\r\naof_fsync_policy:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_fsync_paused:{}\r\naof_last_write_status:{}\r\naof_last_write_error:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\naof_current_generation:{}\r\naof_fsyncs:{}\r\naof_last_fsync_status:{}\r\n\r\n",
                a.policy.name(),
                st.in_progress as u8,
                (p.log_pending && !st.in_progress) as u8,
                a.fsync_paused as u8,
                if a.last_write_ok { "ok" } else { "err" },
                a.last_write_error.unwrap_or_default().replace(['\r', '\n'], " "),
                a.size,
                a.base_size,
                a.current_gen,
                a.fsyncs,
                if a.last_fsync_ok { "ok" } else { "err" },
            );
        }
        // BGREWRITEAOF takes a snapshot even with the log off (Redis writes an AOF
        // then too): waiting for it reads aof_rewrite_in_progress.
        None => {
            let _ = write!(
                s,
                "aof_enabled:0\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:0\r\naof_last_write_status:ok\r\n\r\n",
                st.in_progress as u8
            );
        }
    }
    s
}

/// The final snapshot and log flush at shutdown. `save`: Some(true) SAVE, Some(false)
/// NOSAVE, None per `snapshot-on-shutdown`. Err means the server must not exit
/// because data would be lost.
pub(crate) async fn shutdown(shared: &Arc<Shared>, save: Option<bool>) -> Result<(), String> {
    // The lock is taken without blocking a runtime worker: while a busy script holds
    // it, connections must still reach SCRIPT KILL and SHUTDOWN NOSAVE.
    let (want_save, log) = {
        let inner = shared.lock_async().await;
        let Some(p) = inner.persist.as_ref() else {
            return Ok(());
        };
        // SHUTDOWN NOSAVE sent during a busy script wins over a pending SIGTERM's save:
        // the killed script's partial effects must not reach a snapshot.
        let nosave = shared
            .nosave_shutdown
            .load(std::sync::atomic::Ordering::Acquire);
        (
            // A log started at runtime counts only after its first snapshot: without
            // one, what it holds would be dropped at the next start. SHUTDOWN NOSAVE
            // during a busy script wins over both.
            !nosave
                && (p.log_pending
                    || save.unwrap_or_else(|| {
                        inner.config.bool("snapshot-on-shutdown") && enabled(&inner.config)
                    })),
            p.log.clone(),
        )
    };
    // Wait for a background snapshot in progress to finish.
    for _ in 0..6000 {
        let busy = shared
            .lock_async()
            .await
            .persist
            .as_ref()
            .is_some_and(|p| p.snaps.in_progress());
        if !busy {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let log_ok = match &log {
        Some(l) => match l.flush() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("flushing the append log at shutdown failed: {e}");
                false
            }
        },
        None => false,
    };
    if want_save {
        let job = prepare_save(&mut *shared.lock_async().await);
        let res = match job {
            Ok(job) => run_save(shared, job).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => tracing::info!("final snapshot saved"),
            Err(e) if log_ok => tracing::warn!(
                "final snapshot failed ({e}); the append log holds every write, nothing is lost"
            ),
            Err(e) => {
                return Err(format!(
                    "final snapshot failed and there is no append log to fall back on: {e}"
                ))
            }
        }
    }
    if let Some(l) = &log {
        if let Err(e) = l.close() {
            tracing::error!("closing the append log: {e}");
        }
    }
    Ok(())
}

/// DEBUG RELOAD: after a successful SAVE, empties the keyspace and loads it back from
/// the data directory.
pub(crate) fn reload(shared: &Arc<Shared>) -> Reply {
    reload_locked(&mut shared.inner.lock())
}

/// Empties the keyspace and loads it back from the data directory (DEBUG RELOAD
/// after its SAVE, DEBUG LOADAOF).
pub(crate) fn reload_locked(inner: &mut Inner) -> Reply {
    reload_into(inner, true, false)
}

/// Loads the dataset of the data directory, after writing and flushing what the
/// append log holds: in place of the current one (`flush`), or into it (DEBUG RELOAD
/// NOFLUSH), where a key or function library already present is an error unless
/// `merge` (it is then replaced, as with Redis's RDBFLAGS_ALLOW_DUP). On an error
/// nothing changes.
pub(crate) fn reload_into(inner: &mut Inner, flush: bool, merge: bool) -> Reply {
    if let Err(e) = append(inner) {
        return e;
    }
    let Some(p) = inner.persist.as_ref() else {
        return Reply::err("ERR persistence is disabled");
    };
    // Loading raises no keyspace events (Redis loads without notifying).
    let mut fresh = Store::new(redsnap_engine::EngineConfig {
        notify_keyspace_events: 0,
        ..inner.store.config.clone()
    });
    fresh.lfu = inner.store.lfu;
    let opts = LoadOptions {
        load_truncated: inner.config.bool("aof-load-truncated"),
        ignore_corruption: false,
    };
    if let Some(log) = &p.log {
        if let Err(e) = log.flush() {
            return Reply::error(format!("ERR Error flushing the append log: {e}"));
        }
    }
    if let Err(e) = recover(&p.dir, &p.snaps, &mut fresh, &opts) {
        return Reply::error(format!("ERR Error trying to load the snapshot: {e}"));
    }
    fresh.effects = Default::default();
    fresh.config = inner.store.config.clone();
    if flush {
        inner.store = fresh;
        let inner = &mut *inner;
        inner.functions.rebuild(&inner.store.libraries);
        return Reply::ok();
    }
    let dup_key = fresh
        .dbs
        .iter()
        .zip(&inner.store.dbs)
        .any(|(f, cur)| f.iter().any(|(k, _)| cur.get(k).is_some()));
    let dup_lib = fresh
        .libraries
        .iter()
        .any(|(name, _)| inner.store.libraries.get(name).is_some());
    if !merge && (dup_key || dup_lib) {
        return Reply::err("ERR Error trying to load the RDB dump");
    }
    for (name, code) in fresh.libraries.iter() {
        if let Err(e) = inner.functions.load_replace(code) {
            tracing::error!(library = %String::from_utf8_lossy(name), "function library not loaded: {e}");
            continue;
        }
        inner.store.libraries.insert(name.clone(), code.clone());
    }
    for (f, cur) in fresh.dbs.iter().zip(inner.store.dbs.iter_mut()) {
        for (k, e) in f.iter() {
            cur.insert_entry(k, e.clone());
        }
    }
    Reply::ok()
}
