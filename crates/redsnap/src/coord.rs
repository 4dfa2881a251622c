//! Coordination: a distributed lock (`SET NX PX` + token-checked release and
//! extend, with a fencing token) and pub/sub change notifications.
//!
//! Limits of the lock: it lives on one Redis primary (a single server, or
//! the one cluster slot of its hash tag). It is not Redlock: a failover to a
//! replica that had not yet received the `SET` can hand the lock out twice,
//! and a holder paused (GC, swap, stopped VM) past its TTL keeps running
//! while someone else holds the lock. The fencing token covers the second
//! case for resources that check it; nothing here covers the first.

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::keys::tag_safe;
use crate::store::RedisStore;

/// Take the lock and hand out the next fencing token (both keys share the
/// lock's hash tag, so this is one slot on a cluster).
pub(crate) const ACQUIRE_LUA: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"#;

pub(crate) const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub(crate) const EXTEND_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// A held lock. Only the holder's random token can release or extend it;
/// it expires by itself after its TTL if the holder dies. Dropping a `Lock`
/// does not release it (call [`release`](Self::release)).
#[derive(Debug)]
pub struct Lock {
    store: RedisStore,
    key: String,
    token: String,
    fence: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().clamp(1, i64::MAX as u128) as u64
}

impl Lock {
    /// Key of the lock `name`: `redsnap:lock:{name}`.
    pub fn key_for(name: &str) -> String {
        format!("redsnap:lock:{{{}}}", tag_safe(name))
    }

    /// Try once to take the lock for `ttl`; `None` if someone holds it.
    pub async fn try_acquire(
        store: &RedisStore,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<Lock>> {
        let key = Self::key_for(name);
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let script = redis::Script::new(ACQUIRE_LUA);
        let mut inv = script.prepare_invoke();
        inv.key(&key)
            .key(format!("{key}:fence"))
            .arg(&token)
            .arg(ms(ttl));
        let fence: Option<u64> = store.invoke(&inv).await?;
        Ok(fence.map(|fence| Lock {
            store: store.clone(),
            key,
            token,
            fence,
        }))
    }

    /// Retry [`try_acquire`](Self::try_acquire) with backoff (10 ms doubling
    /// to 200 ms, jittered) until `wait` has passed.
    pub async fn acquire(
        store: &RedisStore,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Lock>> {
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(l) = Self::try_acquire(store, name, ttl).await? {
                return Ok(Some(l));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 10);
            tokio::time::sleep((delay + jitter).min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fencing token: a counter (`<key>:fence`, never expiring)
    /// incremented on every acquisition, so a later holder always has a
    /// larger token. Pass it to the resource you protect and have it reject
    /// writes carrying a smaller token than one it has seen: that stops a
    /// holder that was paused past its TTL from writing after the lock moved on.
    pub fn fencing_token(&self) -> u64 {
        self.fence
    }

    /// The random token stored in the lock key while we hold it (for
    /// scripts that check ownership server-side: `GET key == token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Extend the lock to `ttl` from now; false if we no longer hold it.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        let script = redis::Script::new(EXTEND_LUA);
        let mut inv = script.prepare_invoke();
        inv.key(&self.key).arg(&self.token).arg(ms(ttl));
        let n: i64 = self.store.invoke(&inv).await?;
        Ok(n == 1)
    }

    /// Keeps the lock alive in the background: extends it to `ttl` every `ttl / 3`
    /// until the returned guard is dropped, or until an extension finds the lock
    /// lost (expired and taken by someone else, or Redis unreachable for longer
    /// than the TTL), which [`AutoExtend::is_lost`] then reports. Check it (and
    /// pass [`fencing_token`](Self::fencing_token) to the protected resource)
    /// before acting on the lock.
    pub fn auto_extend(&self, ttl: Duration) -> AutoExtend {
        let lost = Arc::new(AtomicBool::new(false));
        let (store, key, token) = (self.store.clone(), self.key.clone(), self.token.clone());
        let flag = lost.clone();
        let task = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(1));
            loop {
                tokio::time::sleep(every).await;
                let script = redis::Script::new(EXTEND_LUA);
                let mut inv = script.prepare_invoke();
                inv.key(&key).arg(&token).arg(ms(ttl));
                match store.invoke::<i64>(&inv).await {
                    Ok(1) => {}
                    Ok(_) => {
                        flag.store(true, AtomicOrdering::SeqCst);
                        return;
                    }
                    // A transient error: the next tick retries while the TTL lasts.
                    Err(e) => tracing::warn!(key = %key, "lock extension failed: {e}"),
                }
            }
        });
        AutoExtend { task, lost }
    }

    /// Release the lock; false if it had expired or was taken by another holder.
    pub async fn release(self) -> Result<bool> {
        let script = redis::Script::new(RELEASE_LUA);
        let mut inv = script.prepare_invoke();
        inv.key(&self.key).arg(&self.token);
        let n: i64 = self.store.invoke(&inv).await?;
        Ok(n == 1)
    }
}

/// The background extension started by [`Lock::auto_extend`]; dropping it stops
/// extending (the lock then expires after its TTL unless released).
#[derive(Debug)]
pub struct AutoExtend {
    task: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl AutoExtend {
    /// True once an extension found that the lock is no longer ours.
    pub fn is_lost(&self) -> bool {
        self.lost.load(AtomicOrdering::SeqCst)
    }
}

impl Drop for AutoExtend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A subscription to change notifications. Messages arrive on
/// [`recv`](Self::recv); the background task reconnects (with backoff) if
/// the connection drops, and messages published while disconnected are lost
/// (pub/sub is fire-and-forget: re-read state after a reconnect if needed).
pub struct Watch {
    rx: mpsc::Receiver<Vec<u8>>,
    /// The subscriber task (none in-process: messages arrive from the publishers).
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish()
    }
}

impl Watch {
    /// The next message payload; None when the watch has stopped.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Channel on which [`crate::Snapshots`] of namespace `ns` announce saves.
pub fn changes_channel(ns: &str) -> String {
    format!("{{{}}}:changes", tag_safe(ns))
}

impl RedisStore {
    /// Subscribe to `channel`. Resolves once the subscription is active
    /// (bounded by the operation timeout). In a cluster the subscription is
    /// made on the first seed node (classic PUBLISH reaches every node).
    pub async fn watch(&self, channel: &str) -> Result<Watch> {
        if let Some(ip) = self.in_process_backend() {
            // In-process: the subscription is active once registered.
            return Ok(Watch {
                rx: ip.subscribe(channel),
                task: None,
            });
        }
        let client = self.pubsub_client()?;
        let limit = self.config().operation_timeout;
        let (tx, rx) = mpsc::channel(1024);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let channel = channel.to_string();
        let store = self.clone();
        let max_backoff = self.config().max_backoff.max(Duration::from_millis(50));
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut delay = Duration::from_millis(50);
            loop {
                let attempt = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                match attempt.await {
                    Ok(ps) => {
                        delay = Duration::from_millis(50);
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                        let mut stream = ps.into_on_message();
                        while let Some(msg) = stream.next().await {
                            if tx.send(msg.get_payload_bytes().to_vec()).await.is_err() {
                                return;
                            }
                        }
                        tracing::warn!(target: "redsnap", channel = %channel, "pub/sub connection lost; resubscribing");
                    }
                    Err(e) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(store.classify(e)));
                            return;
                        }
                        tracing::warn!(target: "redsnap", channel = %channel, error = %e, "pub/sub reconnect failed");
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max_backoff);
            }
        });
        match tokio::time::timeout(limit, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(Watch {
                rx,
                task: Some(task),
            }),
            Ok(Ok(Err(e))) => {
                task.abort();
                Err(e)
            }
            Ok(Err(_)) => {
                task.abort();
                Err(Error::Stopped("pub/sub task ended".into()))
            }
            Err(_) => {
                task.abort();
                Err(Error::Timeout(limit))
            }
        }
    }

    /// Publish `payload` on `channel`; returns the number of receivers
    /// reached (on this node).
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<i64> {
        self.query(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await
    }
}
