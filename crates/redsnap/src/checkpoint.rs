//! Checkpoints of a conversation / workflow thread: the [`Checkpointer`]
//! trait, [`RedisCheckpointer`] and [`MemoryCheckpointer`].
//!
//! Redis layout for namespace `ns` and thread `t` (one hash tag per thread,
//! so every write of a thread is a single-slot Lua script in a cluster):
//!
//! | key | type |
//! |---|---|
//! | `{ns:t}:cp:<checkpointId>` | string: envelope of the [`Checkpoint`] |
//! | `{ns:t}:idx` | sorted set, all scores 0, members = checkpoint ids (lexicographic order = time order) |

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::codec::{decode_key, Codec};
use crate::error::{Error, Result};
use crate::keys::{now_millis, tag_safe};
use crate::store::RedisStore;

/// One checkpoint of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The thread (conversation, workflow run...) it belongs to.
    pub thread_id: String,
    /// Sortable id: ids compare in creation order (see [`new_checkpoint_id`]).
    pub checkpoint_id: String,
    /// The checkpoint this one follows.
    pub parent_id: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The state.
    pub state: serde_json::Value,
    /// Unix ms of creation.
    pub created_at_ms: u64,
}

impl Checkpoint {
    /// A checkpoint with a fresh id, created now.
    pub fn new(thread_id: &str, parent_id: Option<&str>, state: serde_json::Value) -> Self {
        Self {
            thread_id: thread_id.to_string(),
            checkpoint_id: new_checkpoint_id(),
            parent_id: parent_id.map(String::from),
            metadata: BTreeMap::new(),
            state,
            created_at_ms: now_millis(),
        }
    }

    /// Add a metadata entry.
    pub fn with_metadata(mut self, k: &str, v: serde_json::Value) -> Self {
        self.metadata.insert(k.to_string(), v);
        self
    }
}

/// A new sortable checkpoint id: 16 hex digits of Unix ms, a process-wide
/// sequence number and random bits (`0000018f3a2b4c5d-000001-9f8e7d6c`).
/// Ids made later compare greater, in this process; across processes,
/// ordering follows the millisecond clock.
pub fn new_checkpoint_id() -> String {
    static LAST: Mutex<(u64, u64)> = Mutex::new((0, 0));
    let ms = now_millis();
    let (ms, seq) = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        // Keep ids monotonic even if the clock steps back.
        let ms = ms.max(last.0);
        let seq = if ms == last.0 { last.1 + 1 } else { 0 };
        *last = (ms, seq);
        (ms, seq)
    };
    let r: u32 = rand::random();
    format!("{ms:016x}-{seq:06x}-{r:08x}")
}

/// Options of [`Checkpointer::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only checkpoints with an id strictly less than this.
    pub before: Option<String>,
    /// At most this many (None: all).
    pub limit: Option<usize>,
}

/// Storage of thread checkpoints. All implementations pass the same
/// conformance suite (`tests/checkpoint_conformance.rs`).
pub trait Checkpointer: Send + Sync {
    /// Store a checkpoint atomically (replaces one with the same id).
    fn put(&self, cp: &Checkpoint) -> impl Future<Output = Result<()>> + Send;
    /// The newest checkpoint of a thread.
    fn get_latest(
        &self,
        thread_id: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;
    /// A checkpoint by id.
    fn get(
        &self,
        thread_id: &str,
        checkpoint_id: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;
    /// Checkpoints newest first.
    fn list(
        &self,
        thread_id: &str,
        opts: &ListOptions,
    ) -> impl Future<Output = Result<Vec<Checkpoint>>> + Send;
    /// Delete every checkpoint of a thread; returns how many there were.
    fn delete_thread(&self, thread_id: &str) -> impl Future<Output = Result<usize>> + Send;
    /// Keep the newest `keep` checkpoints of a thread; returns how many were deleted.
    fn prune(&self, thread_id: &str, keep: usize) -> impl Future<Output = Result<usize>> + Send;
}

fn check_thread(thread_id: &str) -> Result<()> {
    if thread_id.is_empty() {
        return Err(Error::InvalidKey(thread_id.to_string()));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<()> {
    // ids are used as ZSET lex-range bounds and inside keys: keep them printable.
    if id.is_empty() || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::InvalidKey(id.to_string()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

pub(crate) const PUT_LUA: &str = r#"
-- KEYS[1] checkpoint key, KEYS[2] index; ARGV[1] id, ARGV[2] bytes, ARGV[3] ttl seconds (0 = none)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[2])
end
return 1
"#;

pub(crate) const DELETE_LUA: &str = r#"
-- KEYS[1] index, KEYS[2..] checkpoint keys; ARGV ids to remove from the index
local n = 0
for i = 2, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
end
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
end
return n
"#;

/// [`Checkpointer`] over Redis / Redis Cluster / redsnap. Writes are Lua
/// scripts declaring every key in KEYS, all under the thread's hash tag.
pub struct RedisCheckpointer {
    store: RedisStore,
    ns: String,
    ttl: Option<Duration>,
    codec: Codec,
    put_script: redis::Script,
    delete_script: redis::Script,
}

impl std::fmt::Debug for RedisCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheckpointer")
            .field("ns", &self.ns)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisCheckpointer {
    /// Checkpoints under namespace `ns`, no TTL, msgpack+LZ4.
    pub fn new(store: RedisStore, ns: &str) -> Self {
        Self {
            store,
            ns: ns.to_string(),
            ttl: None,
            codec: Codec::default(),
            put_script: redis::Script::new(PUT_LUA),
            delete_script: redis::Script::new(DELETE_LUA),
        }
    }

    /// Expire a thread's checkpoints `ttl` after its last put.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl.max(Duration::from_secs(1)));
        self
    }

    /// Codec for writing.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    fn tag(&self, thread_id: &str) -> String {
        format!("{{{}:{}}}", tag_safe(&self.ns), tag_safe(thread_id))
    }

    /// Key of one checkpoint.
    pub fn checkpoint_key(&self, thread_id: &str, id: &str) -> String {
        format!("{}:cp:{id}", self.tag(thread_id))
    }

    /// Key of a thread's index.
    pub fn index_key(&self, thread_id: &str) -> String {
        format!("{}:idx", self.tag(thread_id))
    }

    async fn ids(&self, thread_id: &str, opts: &ListOptions) -> Result<Vec<String>> {
        let max = match &opts.before {
            Some(b) => format!("({b}"),
            None => "+".to_string(),
        };
        let mut cmd = redis::cmd("ZREVRANGEBYLEX");
        cmd.arg(self.index_key(thread_id)).arg(max).arg("-");
        if let Some(l) = opts.limit {
            cmd.arg("LIMIT").arg(0).arg(l);
        }
        self.store.query(&cmd).await
    }

    async fn fetch(&self, thread_id: &str, ids: &[String]) -> Result<Vec<Checkpoint>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|i| self.checkpoint_key(thread_id, i))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for (chunk_ids, chunk_keys) in ids.chunks(200).zip(keys.chunks(200)) {
            let vals: Vec<Option<Vec<u8>>> =
                self.store.query(redis::cmd("MGET").arg(chunk_keys)).await?;
            for ((id, key), v) in chunk_ids.iter().zip(chunk_keys).zip(vals) {
                match v {
                    Some(b) => out.push(decode_key::<Checkpoint>(key, &b)?),
                    None => missing.push(id.clone()),
                }
            }
        }
        if !missing.is_empty() {
            // Expired checkpoints leave index entries behind: tidy them.
            let _ = self
                .store
                .query::<i64>(
                    redis::cmd("ZREM")
                        .arg(self.index_key(thread_id))
                        .arg(&missing),
                )
                .await;
        }
        Ok(out)
    }

    async fn delete_ids(&self, thread_id: &str, ids: &[String]) -> Result<usize> {
        let mut n = 0usize;
        for chunk in ids.chunks(500) {
            let mut inv = self.delete_script.prepare_invoke();
            inv.key(self.index_key(thread_id));
            for id in chunk {
                inv.key(self.checkpoint_key(thread_id, id));
            }
            for id in chunk {
                inv.arg(id);
            }
            let _deleted: i64 = self.store.invoke(&inv).await?;
            n += chunk.len();
        }
        Ok(n)
    }
}

impl Checkpointer for RedisCheckpointer {
    async fn put(&self, cp: &Checkpoint) -> Result<()> {
        check_thread(&cp.thread_id)?;
        check_id(&cp.checkpoint_id)?;
        let bytes = self.codec.encode(cp)?;
        let ttl = self.ttl.map(|d| d.as_secs()).unwrap_or(0);
        let mut inv = self.put_script.prepare_invoke();
        inv.key(self.checkpoint_key(&cp.thread_id, &cp.checkpoint_id))
            .key(self.index_key(&cp.thread_id))
            .arg(&cp.checkpoint_id)
            .arg(bytes)
            .arg(ttl);
        let _: i64 = self.store.invoke(&inv).await?;
        Ok(())
    }

    async fn get_latest(&self, thread_id: &str) -> Result<Option<Checkpoint>> {
        check_thread(thread_id)?;
        // Skip over entries whose checkpoint expired.
        let mut before = None;
        loop {
            let ids = self
                .ids(
                    thread_id,
                    &ListOptions {
                        before: before.clone(),
                        limit: Some(16),
                    },
                )
                .await?;
            if ids.is_empty() {
                return Ok(None);
            }
            let found = self.fetch(thread_id, &ids).await?;
            if let Some(cp) = found.into_iter().next() {
                return Ok(Some(cp));
            }
            before = ids.last().cloned();
        }
    }

    async fn get(&self, thread_id: &str, checkpoint_id: &str) -> Result<Option<Checkpoint>> {
        check_thread(thread_id)?;
        check_id(checkpoint_id)?;
        let key = self.checkpoint_key(thread_id, checkpoint_id);
        let v: Option<Vec<u8>> = self.store.query(redis::cmd("GET").arg(&key)).await?;
        v.map(|b| decode_key(&key, &b)).transpose()
    }

    async fn list(&self, thread_id: &str, opts: &ListOptions) -> Result<Vec<Checkpoint>> {
        check_thread(thread_id)?;
        let ids = self.ids(thread_id, opts).await?;
        self.fetch(thread_id, &ids).await
    }

    async fn delete_thread(&self, thread_id: &str) -> Result<usize> {
        check_thread(thread_id)?;
        let ids: Vec<String> = self
            .store
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.index_key(thread_id))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let n = self.delete_ids(thread_id, &ids).await?;
        let _: i64 = self
            .store
            .query(redis::cmd("DEL").arg(self.index_key(thread_id)))
            .await?;
        Ok(n)
    }

    async fn prune(&self, thread_id: &str, keep: usize) -> Result<usize> {
        check_thread(thread_id)?;
        let ids: Vec<String> = self
            .store
            .query(
                redis::cmd("ZREVRANGEBYLEX")
                    .arg(self.index_key(thread_id))
                    .arg("+")
                    .arg("-")
                    .arg("LIMIT")
                    .arg(keep)
                    .arg(-1),
            )
            .await?;
        self.delete_ids(thread_id, &ids).await
    }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// Checkpoints of one thread (by id) and its expiry.
type ThreadEntry = (BTreeMap<String, Checkpoint>, Option<Instant>);

/// In-process [`Checkpointer`] (tests, single-process tools, no socket).
#[derive(Debug, Default)]
pub struct MemoryCheckpointer {
    ttl: Option<Duration>,
    threads: Mutex<HashMap<String, ThreadEntry>>,
}

impl MemoryCheckpointer {
    /// An empty checkpointer without TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire a thread `ttl` after its last put.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    fn with_thread<R>(
        &self,
        thread_id: &str,
        f: impl FnOnce(Option<&mut BTreeMap<String, Checkpoint>>) -> R,
    ) -> R {
        let mut g = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let expired = matches!(g.get(thread_id), Some((_, Some(exp))) if *exp <= Instant::now());
        if expired {
            g.remove(thread_id);
        }
        f(g.get_mut(thread_id).map(|(m, _)| m))
    }
}

impl Checkpointer for MemoryCheckpointer {
    async fn put(&self, cp: &Checkpoint) -> Result<()> {
        check_thread(&cp.thread_id)?;
        check_id(&cp.checkpoint_id)?;
        let mut g = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let entry = g
            .entry(cp.thread_id.clone())
            .or_insert_with(|| (BTreeMap::new(), None));
        if matches!(entry.1, Some(exp) if exp <= now) {
            entry.0.clear();
        }
        entry.0.insert(cp.checkpoint_id.clone(), cp.clone());
        entry.1 = self.ttl.map(|t| now + t);
        Ok(())
    }

    async fn get_latest(&self, thread_id: &str) -> Result<Option<Checkpoint>> {
        check_thread(thread_id)?;
        Ok(self.with_thread(thread_id, |m| {
            m.and_then(|m| m.values().next_back().cloned())
        }))
    }

    async fn get(&self, thread_id: &str, checkpoint_id: &str) -> Result<Option<Checkpoint>> {
        check_thread(thread_id)?;
        check_id(checkpoint_id)?;
        Ok(self.with_thread(thread_id, |m| m.and_then(|m| m.get(checkpoint_id).cloned())))
    }

    async fn list(&self, thread_id: &str, opts: &ListOptions) -> Result<Vec<Checkpoint>> {
        check_thread(thread_id)?;
        Ok(self.with_thread(thread_id, |m| {
            let Some(m) = m else { return Vec::new() };
            let it = m
                .values()
                .rev()
                .filter(|c| opts.before.as_ref().is_none_or(|b| c.checkpoint_id < *b))
                .cloned();
            match opts.limit {
                Some(l) => it.take(l).collect(),
                None => it.collect(),
            }
        }))
    }

    async fn delete_thread(&self, thread_id: &str) -> Result<usize> {
        check_thread(thread_id)?;
        let mut g = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.remove(thread_id).map(|(m, _)| m.len()).unwrap_or(0))
    }

    async fn prune(&self, thread_id: &str, keep: usize) -> Result<usize> {
        check_thread(thread_id)?;
        Ok(self.with_thread(thread_id, |m| {
            let Some(m) = m else { return 0 };
            let n = m.len().saturating_sub(keep);
            let old: Vec<String> = m.keys().take(n).cloned().collect();
            for k in &old {
                m.remove(k);
            }
            n
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sortable_and_unique() {
        let ids: Vec<String> = (0..1000).map(|_| new_checkpoint_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
    }
}
