//! Snapshots of a whole state value: `save`, `latest`, `list`, `get`,
//! `prune`, thinning retention, and the background [`Snapshotter`].
//!
//! Key layout for namespace `ns` (the `{ns}` hash tag puts every key of a
//! namespace in one Redis Cluster slot, so a save is one atomic MULTI/EXEC):
//!
//! | key | type | expiry |
//! |---|---|---|
//! | `{ns}:snapshot:<epochSec>` | string (envelope) | TTL (default 24 h) |
//! | `{ns}:latest` | string (envelope) | none |
//! | `{ns}:latest:at` | string, Unix ms at which `latest` was saved (or last heartbeat) | none |
//! | `{ns}:snapshots` | sorted set, member = score = epochSec | none |
//!
//! Each save also publishes its epoch on the channel `{ns}:changes`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::codec::{decode_key, Codec};
use crate::error::{Error, Result};
use crate::keys::{now_millis, now_secs, tag_safe};
use crate::metrics::NsProbe;
use crate::resilience::{BreakerState, CircuitBreaker, LocalFallback};
use crate::store::RedisStore;

mod replay;
pub(crate) use replay::REPLAY_LUA;

/// Default snapshot TTL: 24 hours.
pub const DEFAULT_SNAPSHOT_TTL: Duration = Duration::from_secs(86_400);

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SaveOutcome {
    /// A snapshot was written.
    Saved {
        /// Its epoch second.
        epoch: u64,
        /// Serialized size before compression.
        raw_bytes: usize,
        /// Bytes stored.
        stored_bytes: usize,
    },
    /// The encoded state equals the last one written: nothing written.
    Unchanged,
    /// Redis was unreachable: written to the local fallback, to be replayed.
    Deferred {
        /// Its epoch second.
        epoch: u64,
    },
}

/// A restored snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    /// Unix time (ms) the value was written, when known.
    pub written_at_ms: Option<u64>,
    /// The state.
    pub state: T,
}

/// Counters kept by a [`Snapshots`] handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMetrics {
    /// Snapshots written.
    pub saves: u64,
    /// Saves skipped because nothing changed.
    pub skipped_unchanged: u64,
    /// Saves written to the local fallback because Redis was unreachable.
    pub deferred: u64,
    /// Saves waiting in the local fallback.
    pub fallback_depth: u64,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Failed saves.
    pub failures: u64,
    /// Successful loads.
    pub loads: u64,
    /// Raw bytes of the last save.
    pub last_raw_bytes: u64,
    /// Stored bytes of the last save.
    pub last_stored_bytes: u64,
    /// Duration of the last save in microseconds.
    pub last_save_micros: u64,
    /// Unix ms of the last successful write to `latest` (0: none yet).
    pub last_save_at_ms: u64,
    /// Age of the newest state this handle wrote to Redis, in ms.
    pub latest_age_ms: Option<u64>,
}

#[derive(Default)]
struct Counters {
    saves: AtomicU64,
    skipped: AtomicU64,
    failures: AtomicU64,
    deferred: AtomicU64,
    loads: AtomicU64,
    raw: AtomicU64,
    stored: AtomicU64,
    micros: AtomicU64,
    at_ms: AtomicU64,
}

/// Typed snapshot storage for one namespace.
pub struct Snapshots<T> {
    store: RedisStore,
    ns: String,
    tag: String,
    ttl: Duration,
    codec: Codec,
    known: Mutex<Known>,
    counters: Counters,
    fallback: Option<LocalFallback>,
    breaker: Arc<CircuitBreaker>,
    /// A background probe of Redis is under way (see `replay.rs`).
    probing: Arc<AtomicBool>,
    probe: Arc<NsProbe>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Snapshots<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("ns", &self.ns)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// What this handle knows of the state `latest` holds, as hashes of the
/// encoded bytes: the unchanged-skip compares a save with them.
#[derive(Debug, Default)]
struct Known {
    /// What `latest` holds in Redis: written, replayed or read by this
    /// handle. None when unknown (e.g. a replay found a newer `latest`
    /// written by another instance).
    redis: Option<u64>,
    /// The newest state queued in the fallback, which reaches Redis when the
    /// queue is replayed. Only meaningful while the queue is not empty.
    queued: Option<u64>,
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

impl<T: Serialize + DeserializeOwned> Snapshots<T> {
    /// Snapshots of namespace `ns` (e.g. `"meta"`), 24 h TTL, msgpack+LZ4.
    pub fn new(store: RedisStore, ns: &str) -> Self {
        let breaker = Arc::new(CircuitBreaker::new(3, Duration::from_secs(5)));
        let probe = store.metrics().probe(ns, breaker.clone(), None);
        Self {
            store,
            ns: ns.to_string(),
            tag: format!("{{{}}}", tag_safe(ns)),
            ttl: DEFAULT_SNAPSHOT_TTL,
            codec: Codec::default(),
            known: Mutex::new(Known::default()),
            counters: Counters::default(),
            fallback: None,
            breaker,
            probing: Arc::new(AtomicBool::new(false)),
            probe,
            _t: PhantomData,
        }
    }

    /// Set the TTL of snapshot keys (at least one second).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Set the codec used for writing.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The store this handle writes to.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The snapshot TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Key of the snapshot taken at `epoch`.
    pub fn snapshot_key(&self, epoch: u64) -> String {
        format!("{}:snapshot:{epoch}", self.tag)
    }

    /// Key of the latest value.
    pub fn latest_key(&self) -> String {
        format!("{}:latest", self.tag)
    }

    /// Key holding the Unix ms of the last write/heartbeat.
    pub fn latest_at_key(&self) -> String {
        format!("{}:latest:at", self.tag)
    }

    /// Key of the sorted-set index of snapshot epochs.
    pub fn index_key(&self) -> String {
        format!("{}:snapshots", self.tag)
    }

    /// Pub/sub channel announcing each save (payload: the epoch) and
    /// heartbeat that changed `latest` (payload: `latest`).
    pub fn changes_channel(&self) -> String {
        format!("{}:changes", self.tag)
    }

    /// Subscribe to this namespace's change notifications.
    pub async fn watch(&self) -> Result<crate::coord::Watch> {
        self.store.watch(&self.changes_channel()).await
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `h` is the state Redis holds, or will hold once the local
    /// queue is replayed: never the local mirror of a state Redis has not got.
    fn unchanged(&self, h: u64) -> bool {
        let queued = self.fallback_depth() > 0;
        let k = self.known();
        let expected = if queued { k.queued } else { k.redis };
        expected == Some(h)
    }

    /// `latest` in Redis now holds the state hashed `h`.
    fn wrote_redis(&self, h: u64) {
        let mut k = self.known();
        k.redis = Some(h);
        k.queued = None;
    }

    /// The state hashed `h` was queued in the fallback.
    fn queued_locally(&self, h: u64) {
        self.known().queued = Some(h);
    }

    /// Keep a local durable copy under `dir` and use it while Redis is
    /// unreachable: saves and heartbeats that cannot reach Redis are queued
    /// there (and reported as [`SaveOutcome::Deferred`]), reads are served
    /// from it, and the queue is replayed into Redis, in the order the saves
    /// were made, as soon as Redis answers again (also after a process
    /// restart). Replay never replaces a `latest` newer than the queued save
    /// (written meanwhile by another instance): the snapshots still land in
    /// history. Once one operation found Redis unreachable, saves no longer
    /// wait on it: they go to the fallback while a background probe (and,
    /// after `threshold` failures, the circuit breaker's cool-down; default
    /// 3 failures, 5 s) tells when Redis answers again.
    pub fn with_fallback(mut self, dir: impl AsRef<std::path::Path>) -> Result<Self> {
        self.fallback = Some(LocalFallback::open(dir, &self.ns)?);
        self.reprobe();
        Ok(self)
    }

    /// Circuit breaker settings for the fallback.
    pub fn with_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker = Arc::new(CircuitBreaker::new(threshold, cooldown));
        self.reprobe();
        self
    }

    fn reprobe(&mut self) {
        self.probe =
            self.store
                .metrics()
                .probe(&self.ns, self.breaker.clone(), self.fallback.clone());
    }

    /// Circuit breaker state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Saves waiting in the local fallback for Redis.
    pub fn fallback_depth(&self) -> usize {
        self.fallback
            .as_ref()
            .and_then(|f| f.pending().ok())
            .map(|p| p.len())
            .unwrap_or(0)
    }

    /// Save `state` now (see [`save_at`](Self::save_at)).
    pub async fn save(&self, state: &T) -> Result<SaveOutcome> {
        self.save_at(state, now_secs()).await
    }

    fn save_pipeline(&self, bytes: &[u8], epoch: u64, at_ms: u64) -> redis::Pipeline {
        let ttl = self.ttl.as_secs().max(1);
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SET")
            .arg(self.snapshot_key(epoch))
            .arg(bytes)
            .arg("EX")
            .arg(ttl)
            .ignore()
            .cmd("ZADD")
            .arg(self.index_key())
            .arg(epoch)
            .arg(epoch)
            .ignore();
        p.cmd("SET")
            .arg(self.latest_key())
            .arg(bytes)
            .ignore()
            .cmd("SET")
            .arg(self.latest_at_key())
            .arg(at_ms)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.index_key())
            .arg("-inf")
            .arg(self.trim_bound(epoch))
            .ignore()
            .cmd("PUBLISH")
            .arg(self.changes_channel())
            .arg(epoch)
            .ignore();
        p
    }

    /// Index entries below this bound (exclusive, `(<epoch>`) are older
    /// than the TTL and dropped by a save of `epoch`.
    fn trim_bound(&self, epoch: u64) -> String {
        format!(
            "({}",
            now_secs()
                .max(epoch)
                .saturating_sub(self.ttl.as_secs().max(1))
        )
    }

    /// Save `state` as the snapshot of `epoch` (Unix seconds): one atomic
    /// MULTI/EXEC writes `snapshot:<epoch>` with `SET .. EX ttl`, `latest`
    /// (no expiry), `latest:at`, adds the epoch to the index, drops index
    /// entries older than the TTL and publishes the epoch on
    /// [`changes_channel`](Self::changes_channel). Skipped (returns
    /// [`SaveOutcome::Unchanged`]) when the encoded bytes equal what `latest`
    /// holds in Redis as far as this handle knows (written, replayed or
    /// restored through it) or, while saves wait in the fallback, the newest
    /// of them (the replay brings it to Redis).
    pub async fn save_at(&self, state: &T, epoch: u64) -> Result<SaveOutcome> {
        let started = std::time::Instant::now();
        let r = self.save_at_inner(state, epoch, started).await;
        self.probe
            .save_seconds
            .observe(started.elapsed().as_secs_f64());
        match &r {
            Ok(SaveOutcome::Saved { .. }) => self.probe.saved.inc(),
            Ok(SaveOutcome::Deferred { .. }) => self.probe.deferred.inc(),
            Ok(SaveOutcome::Unchanged) => self.probe.unchanged.inc(),
            Err(_) => self.probe.save_failures.inc(),
        };
        r
    }

    async fn save_at_inner(
        &self,
        state: &T,
        epoch: u64,
        started: std::time::Instant,
    ) -> Result<SaveOutcome> {
        let (bytes, size) = self.codec.encode_with_size(state)?;
        let h = hash_bytes(&bytes);
        if self.unchanged(h) {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            if self.fallback_depth() > 0 {
                // Nothing new, but queued saves still need to reach Redis.
                let _ = self.through_breaker(async { Ok(()) }).await?;
            }
            return Ok(SaveOutcome::Unchanged);
        }
        let at_ms = now_millis();
        let p = self.save_pipeline(&bytes, epoch, at_ms);
        match self.through_breaker(self.store.query_pipe::<()>(&p)).await {
            Ok(Some(())) => {
                self.wrote_redis(h);
                if let Some(fb) = &self.fallback {
                    if let Err(e) = fb.write_latest(&bytes) {
                        tracing::warn!(target: "redsnap", error = %e, "could not mirror latest locally");
                    }
                }
                let c = &self.counters;
                c.saves.fetch_add(1, Ordering::Relaxed);
                c.raw.store(size.raw as u64, Ordering::Relaxed);
                c.stored.store(size.stored as u64, Ordering::Relaxed);
                c.micros.store(
                    started.elapsed().as_micros().min(u64::MAX as u128) as u64,
                    Ordering::Relaxed,
                );
                // The time written to `latest:at`.
                c.at_ms.store(at_ms, Ordering::Relaxed);
                self.probe.record_bytes(size.raw, size.stored);
                self.probe.note_latest_at(at_ms);
                tracing::debug!(target: "redsnap", ns = %self.ns, epoch, raw = size.raw, stored = size.stored, "snapshot saved");
                Ok(SaveOutcome::Saved {
                    epoch,
                    raw_bytes: size.raw,
                    stored_bytes: size.stored,
                })
            }
            Ok(None) => {
                let fb = self
                    .fallback
                    .as_ref()
                    .ok_or_else(|| Error::Stopped("no fallback".into()))?;
                fb.push_snapshot(epoch, at_ms, &bytes)?;
                fb.write_latest(&bytes)?;
                self.queued_locally(h);
                self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                self.probe.record_bytes(size.raw, size.stored);
                self.probe.note_latest_at(at_ms);
                Ok(SaveOutcome::Deferred { epoch })
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "redsnap", ns = %self.ns, error = %e, "snapshot save failed");
                Err(e)
            }
        }
    }

    /// Heartbeat: write `state` to `latest` only (no history entry) when it
    /// changed, and otherwise refresh `latest:at` (unless saves wait in the
    /// fallback: then it only replays them). With a fallback, a changed state
    /// that cannot reach Redis is queued and replayed like a save.
    pub async fn heartbeat(&self, state: &T) -> Result<SaveOutcome> {
        let (bytes, size) = self.codec.encode_with_size(state)?;
        let h = hash_bytes(&bytes);
        if self.unchanged(h) {
            if self.fallback_depth() > 0 {
                // Unchanged from the queued state: replay the queue, but do
                // not touch `latest:at`, which after the replay may belong
                // to a newer state written by another instance.
                let _ = self.through_breaker(async { Ok(()) }).await?;
            } else {
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.latest_at_key()).arg(now_millis());
                let touch = self.store.query::<()>(&cmd);
                // A failed touch is harmless; nothing changed.
                let _ = self.through_breaker(touch).await?;
            }
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(SaveOutcome::Unchanged);
        }
        let at_ms = now_millis();
        let mut p = redis::pipe();
        p.atomic()
            .cmd("SET")
            .arg(self.latest_key())
            .arg(&bytes)
            .ignore()
            .cmd("SET")
            .arg(self.latest_at_key())
            .arg(at_ms)
            .ignore()
            .cmd("PUBLISH")
            .arg(self.changes_channel())
            .arg("latest")
            .ignore();
        let written = self
            .through_breaker(self.store.query_pipe::<()>(&p))
            .await?;
        match written {
            Some(()) => {
                self.wrote_redis(h);
                if let Some(fb) = &self.fallback {
                    fb.write_latest(&bytes)?;
                }
                self.counters.at_ms.store(at_ms, Ordering::Relaxed);
                self.probe.note_latest_at(at_ms);
                Ok(SaveOutcome::Saved {
                    epoch: at_ms / 1000,
                    raw_bytes: size.raw,
                    stored_bytes: size.stored,
                })
            }
            None => {
                // Queued like a save (without a history entry), so that the
                // replay brings it to Redis.
                let fb = self
                    .fallback
                    .as_ref()
                    .ok_or_else(|| Error::Stopped("no fallback".into()))?;
                fb.push_latest(at_ms, &bytes)?;
                fb.write_latest(&bytes)?;
                self.queued_locally(h);
                self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                self.probe.note_latest_at(at_ms);
                Ok(SaveOutcome::Deferred {
                    epoch: at_ms / 1000,
                })
            }
        }
    }

    async fn timed_load<R>(&self, fut: impl std::future::Future<Output = Result<R>>) -> Result<R> {
        let started = std::time::Instant::now();
        let r = fut.await;
        self.probe
            .load_seconds
            .observe(started.elapsed().as_secs_f64());
        if r.is_err() {
            self.probe.load_failures.inc();
        }
        r
    }

    /// `latest`'s bytes, `latest:at`, and whether they came from Redis (not
    /// from the fallback's local copy).
    async fn latest_bytes(&self) -> Result<(Option<Vec<u8>>, Option<u64>, bool)> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.latest_key()).arg(self.latest_at_key());
        let fetch = self.store.query::<(Option<Vec<u8>>, Option<u64>)>(&cmd);
        match self.through_breaker(fetch).await? {
            Some((bytes, at)) => {
                if let (Some(_), Some(at)) = (&bytes, at) {
                    self.probe.note_latest_at(at);
                }
                Ok((bytes, at, true))
            }
            None => {
                let fb = self
                    .fallback
                    .as_ref()
                    .ok_or_else(|| Error::Stopped("no fallback".into()))?;
                Ok((fb.read_latest()?, None, false))
            }
        }
    }

    /// The latest state (written by a save or a heartbeat), if any. With a
    /// fallback, served from the local copy while Redis is unreachable
    /// (`written_at_ms` is then `None`).
    pub async fn latest(&self) -> Result<Option<Snapshot<T>>> {
        self.timed_load(self.latest_untimed()).await
    }

    async fn latest_untimed(&self) -> Result<Option<Snapshot<T>>> {
        let (bytes, at, _) = self.latest_bytes().await?;
        match bytes {
            None => Ok(None),
            Some(b) => {
                let state = decode_key(&self.latest_key(), &b)?;
                self.counters.loads.fetch_add(1, Ordering::Relaxed);
                self.probe.loads.inc();
                Ok(Some(Snapshot {
                    written_at_ms: at,
                    state,
                }))
            }
        }
    }

    /// Restore on boot: the latest state, remembering its bytes so that
    /// saving the same state again is skipped.
    pub async fn restore(&self) -> Result<Option<T>> {
        self.timed_load(self.restore_untimed()).await
    }

    async fn restore_untimed(&self) -> Result<Option<T>> {
        let (bytes, _, from_redis) = self.latest_bytes().await?;
        match bytes {
            None => Ok(None),
            Some(b) => {
                let state = decode_key(&self.latest_key(), &b)?;
                let h = hash_bytes(&b);
                if from_redis || self.fallback_depth() == 0 {
                    // From Redis, or the local mirror of what Redis got.
                    self.wrote_redis(h);
                } else {
                    // The local copy is the newest queued save.
                    self.queued_locally(h);
                }
                self.counters.loads.fetch_add(1, Ordering::Relaxed);
                self.probe.loads.inc();
                Ok(Some(state))
            }
        }
    }

    /// Snapshot epochs, newest first (at most `limit`), from the index
    /// (never KEYS). Entries whose key has expired may still be listed
    /// until the next save trims them; [`get`](Self::get) returns `None` for them.
    pub async fn list(&self, limit: usize) -> Result<Vec<u64>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.store
            .query(
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(self.index_key())
                    .arg("+inf")
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await
    }

    /// The snapshot of `epoch`, if it exists and has not expired.
    pub async fn get(&self, epoch: u64) -> Result<Option<T>> {
        self.timed_load(self.get_untimed(epoch)).await
    }

    async fn get_untimed(&self, epoch: u64) -> Result<Option<T>> {
        let key = self.snapshot_key(epoch);
        let bytes: Option<Vec<u8>> = self.store.query(redis::cmd("GET").arg(&key)).await?;
        match bytes {
            None => Ok(None),
            Some(b) => {
                let v = decode_key(&key, &b)?;
                self.counters.loads.fetch_add(1, Ordering::Relaxed);
                self.probe.loads.inc();
                Ok(Some(v))
            }
        }
    }

    async fn delete_epochs(&self, epochs: &[u64]) -> Result<usize> {
        let mut removed = 0;
        for chunk in epochs.chunks(500) {
            let mut p = redis::pipe();
            p.atomic();
            let keys: Vec<String> = chunk.iter().map(|e| self.snapshot_key(*e)).collect();
            p.cmd("ZREM").arg(self.index_key()).arg(chunk).ignore();
            p.cmd("DEL").arg(&keys).ignore();
            self.store.query_pipe::<()>(&p).await?;
            removed += chunk.len();
        }
        Ok(removed)
    }

    /// Keep the newest `keep` snapshots, delete the others (keys and index
    /// entries). `latest` is never touched. Returns how many were deleted.
    pub async fn prune(&self, keep: usize) -> Result<usize> {
        let old: Vec<u64> = self
            .store
            .query(
                redis::cmd("ZREVRANGE")
                    .arg(self.index_key())
                    .arg(keep)
                    .arg(-1),
            )
            .await?;
        self.delete_epochs(&old).await
    }

    /// Apply a thinning [`RetentionPolicy`] as of `now` (Unix seconds).
    /// Returns how many snapshots were deleted.
    pub async fn apply_retention(&self, policy: &RetentionPolicy, now: u64) -> Result<usize> {
        let all: Vec<u64> = self
            .store
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.index_key())
                    .arg("-inf")
                    .arg("+inf"),
            )
            .await?;
        let drop = policy.to_drop(&all, now);
        self.delete_epochs(&drop).await
    }

    /// Counters for metrics.
    pub fn metrics(&self) -> SnapshotMetrics {
        let c = &self.counters;
        SnapshotMetrics {
            saves: c.saves.load(Ordering::Relaxed),
            skipped_unchanged: c.skipped.load(Ordering::Relaxed),
            deferred: c.deferred.load(Ordering::Relaxed),
            fallback_depth: self.fallback_depth() as u64,
            breaker: self.breaker.state(),
            failures: c.failures.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            last_raw_bytes: c.raw.load(Ordering::Relaxed),
            last_stored_bytes: c.stored.load(Ordering::Relaxed),
            last_save_micros: c.micros.load(Ordering::Relaxed),
            last_save_at_ms: c.at_ms.load(Ordering::Relaxed),
            latest_age_ms: match c.at_ms.load(Ordering::Relaxed) {
                0 => None,
                at => Some(now_millis().saturating_sub(at)),
            },
        }
    }
}

/// One tier of a [`RetentionPolicy`]: snapshots younger than `max_age` (and
/// older than the previous tier's) are kept at most one per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Upper age bound of this tier.
    pub max_age: Duration,
    /// Keep one snapshot per bucket of this length (the oldest in the bucket).
    pub every: Duration,
}

/// A thinning retention policy (grandfather-father-son style). Snapshots
/// older than the last tier's `max_age` are deleted.
///
/// The default keeps every snapshot for 10 minutes, one a minute up to an
/// hour, one per 10 minutes up to 24 hours: at one snapshot a second that is
/// at most 600 + 50 + 138 = 788 snapshots instead of 86,400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Tiers, by increasing `max_age`.
    pub tiers: Vec<Tier>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            tiers: vec![
                Tier {
                    max_age: Duration::from_secs(600),
                    every: Duration::from_secs(1),
                },
                Tier {
                    max_age: Duration::from_secs(3600),
                    every: Duration::from_secs(60),
                },
                Tier {
                    max_age: Duration::from_secs(86_400),
                    every: Duration::from_secs(600),
                },
            ],
        }
    }
}

impl RetentionPolicy {
    /// The upper bound of snapshots kept: sum over tiers of span / every
    /// (plus one per tier for bucket edges).
    pub fn max_kept(&self) -> u64 {
        let mut prev = 0u64;
        let mut total = 0u64;
        for t in &self.tiers {
            let span = t.max_age.as_secs().saturating_sub(prev);
            total += span / t.every.as_secs().max(1) + 1;
            prev = t.max_age.as_secs();
        }
        total
    }

    /// Which of `epochs` to delete as of `now`.
    pub fn to_drop(&self, epochs: &[u64], now: u64) -> Vec<u64> {
        let mut sorted: Vec<u64> = epochs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut kept_buckets = std::collections::HashSet::new();
        let mut drop = Vec::new();
        for e in sorted {
            let age = now.saturating_sub(e);
            let tier = self
                .tiers
                .iter()
                .enumerate()
                .find(|(_, t)| age <= t.max_age.as_secs());
            match tier {
                None => drop.push(e),
                Some((i, t)) => {
                    let bucket = e / t.every.as_secs().max(1);
                    // Oldest first: the first snapshot seen in a bucket stays.
                    if !kept_buckets.insert((i, bucket)) {
                        drop.push(e);
                    }
                }
            }
        }
        drop
    }
}

/// Settings of a [`Snapshotter`].
#[derive(Debug, Clone)]
pub struct SnapshotterConfig {
    /// Full snapshot every `interval` (e.g. 1 s, 10 s, 5 min).
    pub interval: Duration,
    /// Update `latest` every `heartbeat` between snapshots (None: off).
    pub heartbeat: Option<Duration>,
    /// Thinning policy applied every `retention_every`.
    pub retention: Option<RetentionPolicy>,
    /// How often to apply the retention policy.
    pub retention_every: Duration,
}

impl Default for SnapshotterConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            heartbeat: None,
            retention: Some(RetentionPolicy::default()),
            retention_every: Duration::from_secs(60),
        }
    }
}

/// Sent to subscribers after every acknowledged write.
#[derive(Debug)]
pub struct SaveEvent<T> {
    /// What was written.
    pub outcome: SaveOutcome,
    /// Whether this was the final snapshot on shutdown.
    pub is_final: bool,
    /// The state that was saved.
    pub state: Arc<T>,
}

impl<T> Clone for SaveEvent<T> {
    fn clone(&self) -> Self {
        Self {
            outcome: self.outcome,
            is_final: self.is_final,
            state: Arc::clone(&self.state),
        }
    }
}

/// A background task that snapshots a state every interval, updates
/// `latest` on heartbeats, applies retention, and takes a final snapshot on
/// [`shutdown`](Self::shutdown). Save failures are logged and retried on
/// the next tick.
pub struct Snapshotter<T> {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<SaveOutcome>>,
    events: broadcast::Sender<SaveEvent<T>>,
}

impl<T> Snapshotter<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Start the task. `state` is called on every tick to get the current
    /// state (usually a clone under a lock). Must be called inside a Tokio
    /// runtime.
    pub fn spawn<F>(snapshots: Arc<Snapshots<T>>, config: SnapshotterConfig, state: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
    {
        let (stop, mut stop_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(64);
        let ev = events.clone();
        let handle = tokio::spawn(async move {
            let mut snap_tick =
                tokio::time::interval(config.interval.max(Duration::from_millis(1)));
            snap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let hb = config
                .heartbeat
                .unwrap_or(Duration::from_secs(3600 * 24 * 365));
            let mut hb_tick = tokio::time::interval(hb.max(Duration::from_millis(1)));
            hb_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            hb_tick.tick().await;
            let mut ret_tick =
                tokio::time::interval(config.retention_every.max(Duration::from_millis(10)));
            ret_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ret_tick.tick().await;
            loop {
                tokio::select! {
                    biased;
                    changed = stop_rx.changed() => {
                        if changed.is_err() || *stop_rx.borrow() {
                            break;
                        }
                    }
                    _ = snap_tick.tick() => {
                        let s = Arc::new(state());
                        match snapshots.save(&s).await {
                            Ok(outcome) => { let _ = ev.send(SaveEvent { outcome, is_final: false, state: s }); }
                            Err(e) => tracing::warn!(target: "redsnap", error = %e, "periodic snapshot failed; will retry"),
                        }
                    }
                    _ = hb_tick.tick(), if config.heartbeat.is_some() => {
                        let s = Arc::new(state());
                        match snapshots.heartbeat(&s).await {
                            Ok(outcome) => { let _ = ev.send(SaveEvent { outcome, is_final: false, state: s }); }
                            Err(e) => tracing::warn!(target: "redsnap", error = %e, "heartbeat failed"),
                        }
                    }
                    _ = ret_tick.tick(), if config.retention.is_some() => {
                        if let Some(p) = &config.retention {
                            match snapshots.apply_retention(p, now_secs()).await {
                                Ok(n) if n > 0 => tracing::debug!(target: "redsnap", deleted = n, "retention applied"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(target: "redsnap", error = %e, "retention failed"),
                            }
                        }
                    }
                }
            }
            // Final snapshot.
            let s = Arc::new(state());
            let outcome = snapshots.save(&s).await?;
            let _ = ev.send(SaveEvent {
                outcome,
                is_final: true,
                state: s,
            });
            Ok(outcome)
        });
        Self {
            stop,
            handle,
            events,
        }
    }

    /// Receive an event after every acknowledged save or heartbeat.
    pub fn subscribe(&self) -> broadcast::Receiver<SaveEvent<T>> {
        self.events.subscribe()
    }

    /// Stop the task and take a final snapshot; returns its outcome.
    pub async fn shutdown(self) -> Result<SaveOutcome> {
        let _ = self.stop.send(true);
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(Error::Stopped(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_bounds_a_day_of_per_second_snapshots() {
        let p = RetentionPolicy::default();
        let now = 1_000_000_000u64;
        let all: Vec<u64> = (now - 86_400 - 100..=now).collect();
        let drop: std::collections::HashSet<u64> = p.to_drop(&all, now).into_iter().collect();
        let kept = all.len() - drop.len();
        assert!(kept as u64 <= p.max_kept(), "{kept} > {}", p.max_kept());
        assert!(kept > 700, "{kept}");
        // Everything from the last 10 minutes is kept.
        for e in now - 600..=now {
            assert!(!drop.contains(&e));
        }
        // Everything older than a day is dropped.
        for e in now - 86_400 - 100..now - 86_400 {
            assert!(drop.contains(&e));
        }
        // Stable: applying again to what was kept drops nothing.
        let kept_v: Vec<u64> = all.iter().copied().filter(|e| !drop.contains(e)).collect();
        assert!(p.to_drop(&kept_v, now).is_empty());
    }
}
