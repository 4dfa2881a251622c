//! The local fallback's side of [`Snapshots`]: admission through the circuit
//! breaker, the background probe that finds Redis again, and the replay of
//! queued saves.
//!
//! Replay runs one Lua script per queued save, so that comparing the queued
//! save's time with `latest:at` and writing `latest` are one atomic step on
//! the server: a save made by this instance before a partition never
//! replaces a newer `latest` written meanwhile by another instance, and its
//! snapshot still lands in history.

use std::sync::atomic::Ordering;
use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{hash_bytes, Snapshots};
use crate::error::Result;
use crate::keys::now_secs;
use crate::resilience::{Admission, PendingKind};

/// KEYS: latest, latest:at, index, snapshot:<epoch> (snapshots only).
/// ARGV: envelope, saved-at ms, epoch ("" for a heartbeat), TTL seconds
/// (0: no history entry, its TTL has passed), index trim bound, channel.
/// Returns 1 when `latest` was written, 0 when Redis held a newer one.
pub(crate) const REPLAY_LUA: &str = r#"
local at = tonumber(ARGV[2])
local cur = redis.call('GET', KEYS[2])
if cur then cur = tonumber(cur) else cur = nil end
local epoch = ARGV[3]
if epoch ~= '' and tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[4])
  redis.call('ZADD', KEYS[3], epoch, epoch)
end
local replaced = 0
if cur == nil or at >= cur then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  replaced = 1
end
if epoch ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
  redis.call('PUBLISH', ARGV[6], epoch)
elseif replaced == 1 then
  redis.call('PUBLISH', ARGV[6], 'latest')
end
return replaced
"#;

static REPLAY: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REPLAY_LUA));

impl<T: Serialize + DeserializeOwned> Snapshots<T> {
    /// Replay saves queued in the local fallback into Redis, in the order
    /// they were made. Each snapshot lands in history (with the TTL counted
    /// from its own epoch) and replaces `latest` only if `latest:at` in
    /// Redis is not newer than the time it was saved, which `latest:at` then
    /// keeps. Returns how many entries were replayed.
    pub async fn replay_fallback(&self) -> Result<usize> {
        let Some(fb) = &self.fallback else {
            return Ok(0);
        };
        let pending = fb.pending()?;
        let mut n = 0;
        let mut kept_newer = 0;
        for entry in pending {
            let bytes = match std::fs::read(&entry.path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(target: "redsnap", path = %entry.path.display(), error = %e, "unreadable fallback entry skipped");
                    continue;
                }
            };
            let mut inv = REPLAY.prepare_invoke();
            inv.key(self.latest_key())
                .key(self.latest_at_key())
                .key(self.index_key());
            match entry.kind {
                PendingKind::Snapshot { epoch } => {
                    let age = now_secs().saturating_sub(epoch);
                    let ttl = self.ttl.as_secs().max(1).saturating_sub(age);
                    inv.key(self.snapshot_key(epoch))
                        .arg(&bytes)
                        .arg(entry.at_ms)
                        .arg(epoch)
                        .arg(ttl)
                        .arg(self.trim_bound(epoch));
                }
                PendingKind::Latest => {
                    inv.arg(&bytes).arg(entry.at_ms).arg("").arg(0).arg("");
                }
            }
            inv.arg(self.changes_channel());
            let replaced: i64 = self
                .store
                .within_one_attempt(self.store.invoke(&inv))
                .await?;
            fb.remove(&entry.path)?;
            let h = hash_bytes(&bytes);
            {
                let mut k = self.known();
                if replaced == 1 {
                    k.redis = Some(h);
                } else {
                    // `latest` holds another instance's newer state.
                    k.redis = None;
                    kept_newer += 1;
                }
            }
            if replaced == 1 {
                self.counters.at_ms.store(entry.at_ms, Ordering::Relaxed);
            }
            n += 1;
        }
        if n > 0 {
            self.known().queued = None;
            tracing::info!(target: "redsnap", ns = %self.ns, replayed = n, kept_newer, "fallback replayed into Redis");
        }
        if kept_newer > 0 {
            tracing::warn!(target: "redsnap", ns = %self.ns, kept_newer, "replayed saves older than the latest in Redis did not replace it (their snapshots went to history)");
        }
        Ok(n)
    }

    /// Run `op` against Redis through the breaker, replaying the fallback
    /// first. `Ok(None)` means Redis is unavailable and the caller should use
    /// the fallback; then nothing waited on Redis unless this call was the
    /// one that found it down.
    pub(super) async fn through_breaker<R, F>(&self, op: F) -> Result<Option<R>>
    where
        F: std::future::Future<Output = Result<R>>,
    {
        if self.fallback.is_none() {
            return op.await.map(Some);
        }
        match self.breaker.admit() {
            Admission::Allow => {}
            Admission::Fallback => return Ok(None),
            // Outside a runtime no probe can run: this operation is the probe.
            Admission::Probe if self.start_probe() => return Ok(None),
            Admission::Probe => {}
        }
        if self.store.is_unreachable() && self.start_probe() {
            // The last operation on this store could not reach Redis: do
            // not wait on it again (a reconnect can take the store's whole
            // retry schedule); a background probe finds out when it answers.
            return Ok(None);
        }
        // Each request waits for at most one connection attempt: with a
        // fallback at hand, a save need not sit through the reconnect schedule.
        let r = async {
            self.replay_fallback().await?;
            self.store.within_one_attempt(op).await
        }
        .await;
        match r {
            Ok(v) => {
                self.breaker.on_success();
                Ok(Some(v))
            }
            Err(e) if e.is_unavailable() => {
                self.breaker.on_failure();
                tracing::warn!(target: "redsnap", ns = %self.ns, error = %e, "Redis unavailable; using local fallback");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Probe Redis with a PING in the background (at most one probe at a
    /// time); its outcome goes to the breaker. Returns false outside a Tokio
    /// runtime, where no probe can run (the caller then tries Redis itself).
    fn start_probe(&self) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.probing.swap(true, Ordering::AcqRel) {
            return true;
        }
        let store = self.store.clone();
        let breaker = self.breaker.clone();
        let probing = self.probing.clone();
        let ns = self.ns.clone();
        // Cleared however the task ends, also when the runtime drops it unrun.
        let done = ProbeDone(probing);
        rt.spawn(async move {
            let _done = done;
            let cmd = redis::cmd("PING");
            let ping = store.query::<String>(&cmd);
            match store.within_one_attempt(ping).await {
                Err(e) if e.is_unavailable() => {
                    tracing::debug!(target: "redsnap", ns = %ns, error = %e, "probe: Redis still unavailable");
                    breaker.on_failure();
                }
                // Any answer, even an error reply, means Redis is reachable:
                // the next operation goes there (and reports its error).
                _ => breaker.on_success(),
            }
        });
        true
    }
}

/// Clears the "probe in flight" flag when dropped.
struct ProbeDone(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for ProbeDone {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
