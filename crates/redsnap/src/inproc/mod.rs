//! The in-process backend: the redsnap engine and its persistence in this process,
//! with no server, no socket and no RESP. Chosen by `REDIS_URL=redsnap:///path/to/dir`
//! (durable) or `redsnap://` (memory only), or by [`InProcessConfig`]; the
//! application keeps using [`RedisStore`](crate::RedisStore) and everything built
//! on it.
//!
//! # What runs where
//!
//! * The keyspace is a `redsnap_engine::Store` (the engine `redsnap serve` runs)
//!   behind one mutex: a command, a pipeline, an atomic pipeline (MULTI/EXEC) or
//!   one of the library's scripts runs whole under it, so each is atomic, as on a
//!   server. Commands reach the engine through its command table, from the
//!   arguments of the redis-rs `Cmd` (no encoding); replies come back as the
//!   `redis::Value` a RESP2 connection would read.
//! * Persistence is `redsnap_persist::Durable`: the same data directory, snapshot
//!   store and append log as `redsnap serve`, with the same settings and defaults
//!   (`appendonly yes`, `appendfsync everysec`, `save 3600 1 300 100 60 10000`,
//!   `snapshot-interval 300`, snapshot on shutdown, restore on startup), and the
//!   same discipline: a batch's log records are staged under the lock as one
//!   frame and written (one `write(2)`) before its reply is returned; under
//!   `appendfsync always` the reply waits for the fsync that covers it and
//!   everything written before it (group commit), so nothing acknowledged is lost.
//!   A directory written by this backend opens in `redsnap serve` and the other way
//!   round; a second process (or a second store in this one) opening it gets
//!   `data directory <dir> is in use by pid N`.
//! * A cron thread (every 100 ms) expires keys actively, starts snapshots when a
//!   save point, the interval or the log's growth asks for one (written by a
//!   snapshot thread from an O(1) copy, off the lock), and delivers pub/sub
//!   messages left waiting.
//! * [`RedisStore::shutdown`](crate::RedisStore::shutdown) (or dropping the last
//!   handle) writes the final snapshot, flushes and closes the log and unlocks the
//!   directory.
//!
//! # Limits (each pinned by a test)
//!
//! * Lua: only the library's own scripts run, natively (see `scripts.rs`); EVAL of
//!   any other script is refused, EVALSHA answers NOSCRIPT.
//! * Server commands: PING, ECHO, TIME, PUBLISH, EVAL/EVALSHA, SCRIPT, SELECT 0;
//!   others (blocking pops, CONFIG, INFO, CLIENT, separate MULTI/EXEC, ...) answer
//!   `ERR '<cmd>' is not available in the in-process backend (redsnap://)`.
//! * One database (0), no `maxmemory`, no keyspace notifications.
//! * Watches see what this process publishes (pub/sub is within the process).

mod config;
mod exec;
mod pubsub;
mod scripts;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use redsnap_engine::{now_ms, EngineConfig, Reply, Store};
use redsnap_persist::{AppendLog, Durable};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

pub use config::InProcessConfig;
pub use redsnap_persist::{DurableConfig, FsyncPolicy};

use exec::Batch;
use pubsub::PubSub;

/// The keyspace and its persistence, under the one lock.
struct Engine {
    store: Store,
    durable: Option<Durable>,
    /// After shutdown: every request is refused.
    closed: bool,
}

struct Shared {
    engine: Arc<Mutex<Engine>>,
    pubsub: Arc<PubSub>,
    target: String,
    /// Set once shutdown started (the cron stops).
    closing: Arc<AtomicBool>,
}

/// The in-process backend of a [`RedisStore`](crate::RedisStore). Cheap to clone.
#[derive(Clone)]
pub(crate) struct InProcess {
    shared: Arc<Shared>,
}

/// A redis-rs connection to the in-process backend: every request runs on the
/// engine, in this task, under the engine lock.
#[derive(Clone)]
pub struct InProcessConn {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcessConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessConn")
            .field("target", &self.shared.target)
            .finish()
    }
}

impl InProcess {
    /// Opens the backend: locks and restores the data directory (if any) and starts
    /// the cron thread.
    pub(crate) fn open(cfg: &InProcessConfig) -> Result<InProcess> {
        let mut store = Store::new(EngineConfig::default());
        store.log_enabled = false;
        let durable = match &cfg.durable {
            None => None,
            Some(d) => Some(
                Durable::open(d.clone(), &mut store)
                    .map_err(|e| Error::InProcess(e.to_string()))?,
            ),
        };
        if let Some(d) = &durable {
            let r = d.recovery();
            tracing::info!(target: "redsnap", dir = %d.path().display(), keys = r.keys, log_records = r.log_records, "in-process store restored");
        }
        let shared = Arc::new(Shared {
            engine: Arc::new(Mutex::new(Engine {
                store,
                durable,
                closed: false,
            })),
            pubsub: Arc::new(PubSub::default()),
            target: cfg.target(),
            closing: Arc::new(AtomicBool::new(false)),
        });
        // The cron holds neither `Shared` (so the last handle's drop, and its final
        // snapshot, happen on the dropping thread) nor the engine (weakly only).
        let (engine, pubsub, closing) = (
            Arc::downgrade(&shared.engine),
            shared.pubsub.clone(),
            shared.closing.clone(),
        );
        std::thread::Builder::new()
            .name("redsnap-inproc-cron".into())
            .spawn(move || cron(engine, pubsub, closing))
            .map_err(|e| Error::InProcess(format!("cannot start the cron thread: {e}")))?;
        Ok(InProcess { shared })
    }

    /// A connection handle for redis-rs commands, pipelines and scripts.
    pub(crate) fn conn(&self) -> InProcessConn {
        InProcessConn {
            shared: self.shared.clone(),
        }
    }

    /// A subscription to `channel` (messages published in this process).
    pub(crate) fn subscribe(&self, channel: &str) -> mpsc::Receiver<Vec<u8>> {
        self.shared.pubsub.subscribe(channel.as_bytes())
    }

    /// The final snapshot, log flush and close, directory unlock (off the async
    /// workers). Later requests fail.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.shutdown())
            .await
            .map_err(|e| Error::Stopped(format!("in-process shutdown task: {e}")))?
            .map_err(|e| Error::InProcess(format!("{}: {e}", self.shared.target)))
    }
}

impl Shared {
    /// Runs a batch of commands (`atomic`: as MULTI/EXEC) and makes it durable as
    /// the server would before replying: its log records staged under the lock as
    /// one frame, written before returning, fsynced first under `always`.
    async fn run(&self, cmds: Vec<Vec<Bytes>>, atomic: bool) -> redis::RedisResult<Vec<Value>> {
        let (replies, log, own) = {
            let mut guard = self.engine.lock();
            let Engine {
                store,
                durable,
                closed,
            } = &mut *guard;
            if *closed {
                return Err(exec::error(&format!(
                    "ERR the in-process store {} is shut down",
                    self.target
                )));
            }
            let mut batch = Batch {
                store,
                durable: durable.as_ref(),
                pubsub: &self.pubsub,
                published: Vec::new(),
                now: now_ms(),
            };
            let replies: Vec<Reply> = if atomic {
                if let Some(e) = cmds.iter().find_map(|a| Batch::queue_check(a).err()) {
                    tracing::debug!(target: "redsnap", "transaction refused: {e:?}");
                    return Err(exec::error(
                        "EXECABORT Transaction discarded because of previous errors.",
                    ));
                }
                // EXEC with a queue is refused as a whole while persistence fails.
                if let Some(Reply::Error(e)) = batch.refusal() {
                    return Err(exec::error(&String::from_utf8_lossy(&e)));
                }
                cmds.iter().map(|a| batch.run(a)).collect()
            } else {
                cmds.iter()
                    .map(|a| {
                        batch.now = now_ms();
                        batch.run(a)
                    })
                    .collect()
            };
            let published = std::mem::take(&mut batch.published);
            store.effects.clear_touched();
            let (log, own) = match durable.as_mut() {
                Some(d) => match d.stage(store) {
                    Ok(own) => (d.log().cloned(), own),
                    Err(msg) => return Err(exec::error(&msg)),
                },
                None => {
                    store.effects.log.clear();
                    (None, None)
                }
            };
            let token = own.unwrap_or(0);
            self.pubsub.queue(token, published);
            (replies, log, own)
        };
        if let Some(log) = &log {
            self.make_durable(log, own).await?;
        }
        self.pubsub.deliver(log.as_ref());
        let values: Vec<Value> = replies.into_iter().map(exec::to_value).collect();
        if atomic {
            // EXEC's reply: every command's, errors included.
            return Ok(vec![Value::Array(values)]);
        }
        Ok(values)
    }

    /// Writes what is staged (this batch's frame and any other's: one `write(2)`),
    /// then under `always` waits for the fsync covering it (group commit). A batch
    /// whose own records could not be written or fsynced is not acknowledged.
    async fn make_durable(&self, log: &AppendLog, own: Option<u64>) -> redis::RedisResult<()> {
        let own = own.unwrap_or(0);
        let written = match log.write_staged() {
            Ok(w) => w,
            Err(e) if own > log.written_token() => {
                let msg = format!("MISCONF Errors writing to the AOF file: {e}");
                tracing::error!(target: "redsnap", "{msg}");
                if let Some(d) = self.engine.lock().durable.as_mut() {
                    d.note_write_error(msg.clone());
                }
                return Err(exec::error(&msg));
            }
            // Another batch's write failed; this one's was written before.
            Err(_) => log.written_token(),
        };
        if log.waits_for_fsync() && log.durable_token() < written {
            if let Err(e) = log.durable(written).await {
                if own > log.durable_token() {
                    return Err(exec::error(&format!(
                        "MISCONF the append log fsync failed, this write is not durable: {e}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Shutdown (sync): refuse further requests, wait for a background snapshot,
    /// flush the log, write the final snapshot (`snapshot-on-shutdown`), close the
    /// log, release the directory. Idempotent.
    fn shutdown(&self) -> std::result::Result<(), String> {
        self.closing.store(true, Ordering::SeqCst);
        let (want_save, log) = {
            let mut g = self.engine.lock();
            if g.closed {
                return Ok(());
            }
            g.closed = true;
            let Engine { store, durable, .. } = &mut *g;
            let Some(d) = durable.as_mut() else {
                return Ok(());
            };
            // Records of the cron's expiries not staged yet.
            if let Err(e) = d.stage(store) {
                tracing::error!(target: "redsnap", "append log at shutdown: {e}");
            }
            (d.save_at_shutdown(None), d.log().cloned())
        };
        for _ in 0..6000 {
            let busy = self
                .engine
                .lock()
                .durable
                .as_ref()
                .is_some_and(|d| d.snapshots().in_progress());
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let log_ok = redsnap_persist::durable::flush_at_shutdown(log.as_ref());
        let mut result = Ok(());
        if want_save {
            let job = {
                let mut g = self.engine.lock();
                let Engine { store, durable, .. } = &mut *g;
                durable.as_mut().map(|d| d.prepare_save(store))
            };
            if let Some(job) = job {
                let res = job.and_then(|job| {
                    let dirty = job.dirty();
                    job.run().map(|info| (info, dirty))
                });
                let mut g = self.engine.lock();
                let Engine { store, durable, .. } = &mut *g;
                if let Some(d) = durable.as_mut() {
                    match &res {
                        Ok((info, dirty)) => d.finish(store, *dirty, Ok(info)),
                        Err(e) => d.finish(store, 0, Err(e)),
                    }
                }
                result = redsnap_persist::durable::final_snapshot_outcome(res.map(|_| ()), log_ok);
            }
        }
        let durable = self.engine.lock().durable.take();
        if let Some(d) = durable {
            if let Err(e) = d.close() {
                tracing::error!(target: "redsnap", "closing the append log: {e}");
            }
            // Dropping it releases the directory lock.
        }
        result
    }
}

impl Drop for Shared {
    /// The last handle is gone without [`InProcess::shutdown`]: the same shutdown,
    /// on this thread (the final snapshot is written before this returns).
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(target: "redsnap", "{}: {e}", self.target);
        }
    }
}

/// Every 100 ms: active expiry, snapshot triggers, leftover log writes and pub/sub
/// deliveries. Holds the engine only weakly: ends at shutdown (which dropping the
/// last handle runs).
fn cron(weak: Weak<Mutex<Engine>>, pubsub: Arc<PubSub>, closing: Arc<AtomicBool>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let Some(engine) = weak.upgrade() else {
            return;
        };
        let log = {
            let mut g = engine.lock();
            let Engine {
                store,
                durable,
                closed,
            } = &mut *g;
            if *closed {
                return;
            }
            let now = now_ms();
            store.active_expire_cycle(now, 2000);
            store.effects.clear_touched();
            match durable.as_mut() {
                None => {
                    store.effects.log.clear();
                    None
                }
                Some(d) => {
                    if let Err(e) = d.stage(store) {
                        tracing::error!(target: "redsnap", "append log: {e}");
                    }
                    if let Some(reason) = d.due(store.effects.dirty, now) {
                        tracing::info!(target: "redsnap", "{reason}: starting a snapshot");
                        let engine = Arc::downgrade(&engine);
                        let started = d.start_snapshot(store, move |res| {
                            let Some(engine) = engine.upgrade() else {
                                return;
                            };
                            let mut g = engine.lock();
                            let Engine { store, durable, .. } = &mut *g;
                            if let Some(d) = durable.as_mut() {
                                let dirty = d.dirty_at_start();
                                d.finish(store, dirty, res.as_ref().map_err(String::as_str));
                            }
                        });
                        if let Err(e) = started {
                            tracing::error!(target: "redsnap", "could not start a snapshot: {e}");
                        }
                    }
                    d.log().cloned()
                }
            }
        };
        if let Some(l) = &log {
            // Never waits for a writer that is busy.
            if let Err(e) = l.try_write_staged() {
                tracing::error!(target: "redsnap", "append log: {e}");
            }
        }
        drop(engine);
        if pubsub.has_pending() {
            pubsub.deliver(log.as_ref());
        }
    }
}

impl ConnectionLike for InProcessConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let argv = exec::argv(cmd);
        Box::pin(async move {
            let mut v = self.shared.run(vec![argv], false).await?;
            Ok(v.pop().unwrap_or(Value::Nil))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let cmds: Vec<Vec<Bytes>> = pipeline.cmd_iter().map(exec::argv).collect();
        let atomic = pipeline.is_transaction();
        Box::pin(async move {
            let values = self.shared.run(cmds, atomic).await?;
            // A transaction answers with EXEC's reply alone (redis-rs asks for it
            // at offset len + 1); a plain pipeline with every reply.
            let skip = if atomic { 0 } else { offset };
            Ok(values.into_iter().skip(skip).take(count).collect())
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
