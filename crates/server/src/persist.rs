//! The server side of persistence. The rules (recovery at open, staging the log,
//! when a snapshot is due, MISCONF, what a snapshot's outcome changes, starting and
//! stopping the log at runtime) are `redsnap_persist::Durable`'s, shared with the
//! library's in-process backend; this file wires it to the server: its
//! configuration and `CONFIG SET`, the connections' view of the log (`LogSlot`),
//! BGSAVE/SAVE and the cron, INFO persistence, `/health` and `/metrics`, the final
//! snapshot at shutdown, DEBUG RELOAD.

use crate::config::Config;
use crate::state::{Inner, Shared};
use crate::ServerError;
use redsnap_engine::{now_ms, Reply, Store};
use redsnap_persist::{AppendLog, Durable, DurableConfig, FsyncPolicy, LoadOptions};
use std::fmt::Write;
use std::sync::Arc;

/// Persistence state kept under the server lock.
pub struct Persistence {
    /// The data directory, its snapshots and log, and their rules.
    pub durable: Durable,
    /// Durations of the snapshots written since start (`/metrics`).
    pub durations: SnapshotDurations,
}

/// A foreground save (SAVE, shutdown) prepared under the lock (boxed: it travels in
/// the connection's `AsyncOp`).
pub(crate) struct SaveJob(Box<redsnap_persist::SaveJob>);

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

/// The persistence settings of the configuration, as `Durable` takes them.
fn durable_config(c: &Config) -> DurableConfig {
    DurableConfig {
        dir: c.str("dir").into(),
        appendonly: c.bool("appendonly"),
        appendfsync: fsync_policy(c),
        save_points: c.save_points(),
        snapshot_interval_secs: c.u64("snapshot-interval"),
        snapshot_on_shutdown: c.bool("snapshot-on-shutdown"),
        restore_on_startup: c.bool("restore-on-startup"),
        snapshot_incremental: c.bool("snapshot-incremental"),
        aof_load_truncated: c.bool("aof-load-truncated"),
        load_corrupt: c.bool("load-corrupt"),
        auto_aof_rewrite_percentage: c.u64("auto-aof-rewrite-percentage"),
        auto_aof_rewrite_min_size: c.u64("auto-aof-rewrite-min-size"),
        stop_writes_on_bgsave_error: c.bool("stop-writes-on-bgsave-error"),
        no_appendfsync_on_rewrite: no_fsync_on_rewrite(c),
    }
}

/// Opens the data directory (created 0700, locked) and restores the keyspace from
/// the snapshot and the log. Refuses to start on damage unless `load-corrupt yes`.
pub fn open(c: &Config, store: &mut Store) -> Result<Option<Persistence>, ServerError> {
    if !enabled(c) {
        return Ok(None);
    }
    let durable =
        Durable::open(durable_config(c), store).map_err(|e| ServerError::Persist(e.to_string()))?;
    if c.bool("restore-on-startup") {
        let report = durable.recovery();
        let source = match (
            report.snapshot.is_some(),
            !report.log_files.is_empty(),
            report.import_pending.is_some(),
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
            dir = %durable.path().display(),
            "dataset loaded"
        );
    }
    Ok(Some(Persistence {
        durable,
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
        // Persistence turned on at runtime (everything was off at startup): nothing
        // is loaded (memory is the dataset); the first snapshot replaces what the
        // directory held.
        let durable =
            Durable::attach(durable_config(&c), inner.lastsave).map_err(|e| e.to_string())?;
        inner.persist = Some(Persistence {
            durable,
            durations: SnapshotDurations::default(),
        });
    }
    if !c.bool("appendonly") && old.bool("appendonly") {
        stop_log(shared, inner);
    }
    let Some(p) = inner.persist.as_mut() else {
        return Ok(());
    };
    let starting = c.bool("appendonly") && p.durable.log().is_none();
    p.durable.set_config(durable_config(&c));
    if starting {
        if let Err(e) = start_log(shared, inner) {
            tracing::error!("could not turn on the append log: {e}");
            if opened_now {
                // Nothing changed: the data directory opened for this is released.
                inner.persist = None;
            } else if let Some(p) = inner.persist.as_mut() {
                p.durable.set_config(durable_config(old));
            }
            return Err(format!("CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF ({e})"));
        }
        if let Some(p) = inner.persist.as_mut() {
            // The new log's fsync pause, if the snapshot in progress is not its own.
            p.durable.set_config(durable_config(&c));
        }
    }
    Ok(())
}

/// `appendonly yes` at runtime (`Durable::start_log`): the connections see the new
/// log, and the snapshot that starts it is begun now if it can be (else the cron
/// starts it as soon as the snapshot in progress is done).
fn start_log(shared: &Arc<Shared>, inner: &mut Inner) -> Result<(), String> {
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is not open".into());
    };
    let log = p.durable.start_log().map_err(|e| e.to_string())?;
    shared.log.set(Some(log));
    inner.store.log_enabled = true;
    if let Err(e) = bgsave(shared, inner) {
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
    let Some(log) = inner.persist.as_mut().and_then(|p| p.durable.stop_log()) else {
        return;
    };
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
    let Some(p) = inner.persist.as_mut() else {
        inner.store.effects.log.clear();
        return Ok(None);
    };
    // Staged, not written: the connection writes the round's staged batches before its
    // replies leave (`Conn::write`), one write(2) for every connection of the round.
    p.durable.stage(&mut inner.store).map_err(Reply::error)
}

/// Whether a snapshot is being written (its copy then holds memory of its own).
pub(crate) fn snapshot_in_progress(inner: &Inner) -> bool {
    inner
        .persist
        .as_ref()
        .is_some_and(|p| p.durable.in_progress())
}

/// The refusal for write commands while persistence is failing (MISCONF, the
/// rules are `Durable::write_refusal`'s) or too few replicas are good, if any.
pub(crate) fn write_refusal(inner: &Inner) -> Option<Reply> {
    if let Some(e) = inner
        .persist
        .as_ref()
        .and_then(|p| p.durable.write_refusal())
    {
        return Some(Reply::error(e));
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
    let st = p.durable.snapshots().stats();
    let log = p.durable.log().map(|l| l.stats());
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

/// Starts a background snapshot (`Durable::start_snapshot`): the copy of the
/// keyspace is taken here, under the lock, in O(databases); the writing happens on a
/// snapshot thread, which then records the outcome under the lock.
pub(crate) fn bgsave(shared: &Arc<Shared>, inner: &mut Inner) -> Result<(), String> {
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is disabled (set appendonly, save or snapshot-interval)".into());
    };
    let shared2 = shared.clone();
    p.durable.start_snapshot(&mut inner.store, move |res| {
        let mut inner = shared2.inner.lock();
        let dirty = inner
            .persist
            .as_ref()
            .map_or(0, |p| p.durable.dirty_at_start());
        finish(&mut inner, dirty, res.as_ref().map_err(String::as_str));
    })
}

/// Records a snapshot's outcome (`Durable::finish`), its duration for `/metrics`
/// and the time of the last save (LASTSAVE, INFO).
fn finish(
    inner: &mut Inner,
    dirty_at_start: u64,
    res: Result<&redsnap_persist::SnapshotInfo, &str>,
) {
    let Some(p) = inner.persist.as_mut() else {
        return;
    };
    p.durable.finish(&mut inner.store, dirty_at_start, res);
    if let Ok(info) = res {
        p.durations.record(info.duration);
        inner.lastsave = p.durable.last_save();
    }
}

/// A foreground save (SAVE, shutdown), taken under the lock.
pub(crate) fn prepare_save(inner: &mut Inner) -> Result<SaveJob, String> {
    let Some(p) = inner.persist.as_mut() else {
        return Err("persistence is disabled".into());
    };
    p.durable
        .prepare_save(&mut inner.store)
        .map(|job| SaveJob(Box::new(job)))
}

/// Runs a foreground save off the async workers and records its outcome.
pub(crate) async fn run_save(shared: &Arc<Shared>, job: SaveJob) -> Result<(), String> {
    let dirty = job.0.dirty();
    let res = tokio::task::spawn_blocking(move || job.0.run())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let mut inner = shared.lock_async().await;
    finish(&mut inner, dirty, res.as_ref().map_err(String::as_str));
    res.map(|_| ())
}

/// Periodic checks: starts a snapshot when one is due (`Durable::due`).
pub(crate) fn cron(shared: &Arc<Shared>, inner: &mut Inner) {
    let Some(p) = inner.persist.as_ref() else {
        return;
    };
    if let Some(r) = p.durable.due(inner.store.effects.dirty, now_ms()) {
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
    let d = &p.durable;
    let st = d.snapshots().stats();
    let now = now_ms();
    let _ = write!(
        s,
        "loading:0\r\npersistence_enabled:1\r\ndir:{}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_failures:{}\r\nrdb_last_snapshot_size:{}\r\nrdb_last_snapshot_keys:{}\r\nrdb_last_good_snapshot_age_sec:{}\r\nrdb_last_error:{}\r\nrdb_last_snapshot_incremental:{}\r\nrdb_last_snapshot_changed:{}\r\nloaded_keys:{}\r\nexpired_keys_at_load:{}\r\n",
        d.path().display(),
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
        d.last_incremental() as u8,
        d.last_changed(),
        d.recovery().keys,
        d.recovery().expired_dropped,
    );
    match d.log() {
        Some(log) => {
            let a = log.stats();
            let _ = write!(
                s,
                "aof_enabled:1\r\naof_fsync_policy:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_fsync_paused:{}\r\naof_last_write_status:{}\r\naof_last_write_error:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\naof_current_generation:{}\r\naof_fsyncs:{}\r\naof_last_fsync_status:{}\r\n\r\n",
                a.policy.name(),
                st.in_progress as u8,
                (d.log_pending() && !st.in_progress) as u8,
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
        // Without any persistence configured (all turned off at runtime), only a
        // pending log asks for a final snapshot.
        let requested = save.or_else(|| (!enabled(&inner.config)).then_some(false));
        (
            !nosave && p.durable.save_at_shutdown(requested),
            p.durable.log().cloned(),
        )
    };
    // Wait for a background snapshot in progress to finish.
    for _ in 0..6000 {
        let busy = shared
            .lock_async()
            .await
            .persist
            .as_ref()
            .is_some_and(|p| p.durable.in_progress());
        if !busy {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let log_ok = redsnap_persist::durable::flush_at_shutdown(log.as_ref());
    if want_save {
        // The lock is released before the save runs (`run_save` takes it again).
        let job = prepare_save(&mut *shared.lock_async().await);
        let res = match job {
            Ok(job) => run_save(shared, job).await,
            Err(e) => Err(e),
        };
        redsnap_persist::durable::final_snapshot_outcome(res, log_ok)?;
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
    if let Err(e) = p.durable.flush() {
        return Reply::error(format!("ERR Error flushing the append log: {e}"));
    }
    if let Err(e) = p.durable.load_into(&mut fresh, &opts) {
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
