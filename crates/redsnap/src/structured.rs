//! Structured state (seed 001): maps persisted as Redis hashes writing only
//! what changed, JSON documents, and capped history lists.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::tag_safe;
use crate::store::RedisStore;

/// What a [`HashMapState::save`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Fields written with HSET (new or changed).
    pub written: usize,
    /// Fields removed with HDEL.
    pub deleted: usize,
    /// Fields left alone.
    pub unchanged: usize,
}

/// A map of `id -> V` persisted as the hash `{ns}:<name>` with JSON
/// values, writing only the diff against what this handle last saw.
pub struct HashMapState<V> {
    store: RedisStore,
    key: String,
    last: HashMap<String, String>,
    _v: std::marker::PhantomData<fn() -> V>,
}

impl<V> std::fmt::Debug for HashMapState<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMapState")
            .field("key", &self.key)
            .finish()
    }
}

impl<V: Serialize + DeserializeOwned> HashMapState<V> {
    /// The map `name` of namespace `ns`, stored at `{ns}:<name>` (e.g.
    /// `{resonance}:nodes`).
    pub fn new(store: RedisStore, ns: &str, name: &str) -> Self {
        Self {
            store,
            key: format!("{{{}}}:{name}", tag_safe(ns)),
            last: HashMap::new(),
            _v: std::marker::PhantomData,
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Load the whole map (HGETALL) and remember it as the base for diffs.
    /// A field with malformed JSON is an error naming the key and field.
    pub async fn load(&mut self) -> Result<BTreeMap<String, V>> {
        let raw: HashMap<String, String> = self
            .store
            .query(redis::cmd("HGETALL").arg(&self.key))
            .await?;
        let mut out = BTreeMap::new();
        for (k, v) in &raw {
            let parsed = serde_json::from_str(v).map_err(|e| {
                tracing::warn!(target: "redsnap", key = %self.key, field = %k, error = %e, "Malformed JSON in hash field");
                Error::MalformedJson {
                    key: format!("{} field {k}", self.key),
                    source: e,
                }
            })?;
            out.insert(k.clone(), parsed);
        }
        self.last = raw;
        Ok(out)
    }

    /// Persist `map`: HSET the fields that are new or changed, HDEL the ones
    /// that disappeared, in one MULTI/EXEC. Nothing is sent when nothing changed.
    pub async fn save<'a, I>(&mut self, map: I) -> Result<DiffStats>
    where
        I: IntoIterator<Item = (&'a String, &'a V)>,
        V: 'a,
    {
        let mut current = HashMap::new();
        for (k, v) in map {
            let json = serde_json::to_string(v).map_err(|e| Error::Encode(e.to_string()))?;
            current.insert(k.clone(), json);
        }
        let mut stats = DiffStats::default();
        let mut set: Vec<(&String, &String)> = Vec::new();
        for (k, v) in &current {
            if self.last.get(k) == Some(v) {
                stats.unchanged += 1;
            } else {
                set.push((k, v));
            }
        }
        let del: Vec<&String> = self
            .last
            .keys()
            .filter(|k| !current.contains_key(*k))
            .collect();
        stats.written = set.len();
        stats.deleted = del.len();
        if set.is_empty() && del.is_empty() {
            return Ok(stats);
        }
        let mut p = redis::pipe();
        p.atomic();
        if !set.is_empty() {
            p.cmd("HSET").arg(&self.key);
            for (k, v) in &set {
                p.arg(*k).arg(*v);
            }
            p.ignore();
        }
        if !del.is_empty() {
            p.cmd("HDEL").arg(&self.key).arg(&del).ignore();
        }
        self.store.query_pipe::<()>(&p).await?;
        self.last = current;
        Ok(stats)
    }
}

/// A JSON document stored as a string at `{ns}:<name>` (e.g. metrics).
#[derive(Debug, Clone)]
pub struct Document {
    store: RedisStore,
    key: String,
}

impl Document {
    /// The document `name` of namespace `ns`.
    pub fn new(store: RedisStore, ns: &str, name: &str) -> Self {
        Self {
            store,
            key: format!("{{{}}}:{name}", tag_safe(ns)),
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Write the document.
    pub async fn set<V: Serialize + ?Sized>(&self, v: &V) -> Result<()> {
        let json = serde_json::to_string(v).map_err(|e| Error::Encode(e.to_string()))?;
        self.store
            .query::<()>(redis::cmd("SET").arg(&self.key).arg(json))
            .await
    }

    /// Read the document.
    pub async fn get<V: DeserializeOwned>(&self) -> Result<Option<V>> {
        let s: Option<String> = self.store.query(redis::cmd("GET").arg(&self.key)).await?;
        s.map(|s| {
            serde_json::from_str(&s).map_err(|e| Error::MalformedJson {
                key: self.key.clone(),
                source: e,
            })
        })
        .transpose()
    }
}

/// A capped history list at `{ns}:<name>`: `LPUSH` + `LTRIM` in one
/// MULTI/EXEC, newest first.
#[derive(Debug, Clone)]
pub struct History {
    store: RedisStore,
    key: String,
    cap: usize,
}

impl History {
    /// The history `name` of namespace `ns`, keeping at most `cap` entries.
    pub fn new(store: RedisStore, ns: &str, name: &str, cap: usize) -> Self {
        Self {
            store,
            key: format!("{{{}}}:{name}", tag_safe(ns)),
            cap: cap.max(1),
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Push an entry (JSON) and trim to the cap.
    pub async fn push<V: Serialize + ?Sized>(&self, v: &V) -> Result<()> {
        let json = serde_json::to_string(v).map_err(|e| Error::Encode(e.to_string()))?;
        let mut p = redis::pipe();
        p.atomic()
            .cmd("LPUSH")
            .arg(&self.key)
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(&self.key)
            .arg(0)
            .arg(self.cap as i64 - 1)
            .ignore();
        self.store.query_pipe::<()>(&p).await
    }

    /// The newest `n` entries, newest first.
    pub async fn recent<V: DeserializeOwned>(&self, n: usize) -> Result<Vec<V>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let raw: Vec<String> = self
            .store
            .query(redis::cmd("LRANGE").arg(&self.key).arg(0).arg(n as i64 - 1))
            .await?;
        raw.iter()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| Error::MalformedJson {
                    key: self.key.clone(),
                    source: e,
                })
            })
            .collect()
    }

    /// Number of entries.
    pub async fn len(&self) -> Result<usize> {
        self.store.query(redis::cmd("LLEN").arg(&self.key)).await
    }
}
