//! Namespaced JSON memory: keys `governance:<tenant>:<type>:<id>`, JSON
//! values with a default TTL, `cleanup(pattern)` by SCAN on every primary.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys::glob_escape;
use crate::store::{Health, RedisStore};

/// Key prefix of every memory key.
pub const PREFIX: &str = "governance";

/// JSON memory service (seed 004).
#[derive(Debug, Clone)]
pub struct Memory {
    store: RedisStore,
    default_ttl: Duration,
}

fn check_part(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.contains(':') {
        return Err(Error::InvalidKey(format!(
            "{what} {s:?} must be non-empty and contain no ':'"
        )));
    }
    Ok(())
}

impl Memory {
    /// A memory service whose default TTL is the store's
    /// [`RedisConfig::default_ttl`](crate::RedisConfig::default_ttl)
    /// (`MEMORY_DEFAULT_TTL_SECONDS`, 86400 by default).
    pub fn new(store: RedisStore) -> Self {
        let default_ttl = store.config().default_ttl;
        Self { store, default_ttl }
    }

    /// Override the default TTL.
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The default TTL.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// `governance:<tenant>:<type>:<id>`. Tenant and type must be non-empty
    /// and contain no `:`; the id may contain anything.
    pub fn key(tenant: &str, resource_type: &str, id: &str) -> Result<String> {
        check_part("tenant", tenant)?;
        check_part("resource type", resource_type)?;
        if id.is_empty() {
            return Err(Error::InvalidKey("id must be non-empty".into()));
        }
        Ok(format!("{PREFIX}:{tenant}:{resource_type}:{id}"))
    }

    /// A SCAN pattern matching every id of `tenant` (and `resource_type`
    /// when given), with glob characters in the parts escaped.
    pub fn pattern(tenant: &str, resource_type: Option<&str>) -> Result<String> {
        check_part("tenant", tenant)?;
        match resource_type {
            Some(t) => {
                check_part("resource type", t)?;
                Ok(format!(
                    "{PREFIX}:{}:{}:*",
                    glob_escape(tenant),
                    glob_escape(t)
                ))
            }
            None => Ok(format!("{PREFIX}:{}:*", glob_escape(tenant))),
        }
    }

    /// Store `value` as JSON under `key` with `ttl` (default TTL when None;
    /// a zero TTL stores without expiry).
    pub async fn set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let json = serde_json::to_string(value).map_err(|e| Error::Encode(e.to_string()))?;
        let ttl = ttl.unwrap_or(self.default_ttl);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(json);
        if !ttl.is_zero() {
            cmd.arg("PX")
                .arg(ttl.as_millis().max(1).min(i64::MAX as u128) as i64);
        }
        self.store.query::<()>(&cmd).await
    }

    /// Store many values with one TTL: one pipeline on a standalone server,
    /// concurrent single-key writes in a cluster (keys may live in different
    /// slots). Not atomic as a whole; each key is written atomically.
    pub async fn set_many<V: Serialize>(
        &self,
        items: &[(String, V)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let ttl = ttl.unwrap_or(self.default_ttl);
        let mut cmds = Vec::with_capacity(items.len());
        for (key, value) in items {
            let json = serde_json::to_string(value).map_err(|e| Error::Encode(e.to_string()))?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(json);
            if !ttl.is_zero() {
                cmd.arg("PX")
                    .arg(ttl.as_millis().clamp(1, i64::MAX as u128) as i64);
            }
            cmds.push(cmd);
        }
        if self.store.is_cluster() {
            for chunk in cmds.chunks(64) {
                futures_util::future::try_join_all(chunk.iter().map(|c| self.store.query::<()>(c)))
                    .await?;
            }
        } else {
            for chunk in cmds.chunks(500) {
                let mut p = redis::pipe();
                for c in chunk {
                    p.add_command(c.clone()).ignore();
                }
                self.store.query_pipe::<()>(&p).await?;
            }
        }
        Ok(())
    }

    /// Read many keys (MGET on a standalone server, concurrent GETs in a
    /// cluster). Each entry is parsed separately: a malformed value is an
    /// error for that entry only.
    pub async fn get_many<V: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> Result<Vec<Result<Option<V>>>> {
        let raw: Vec<Option<Vec<u8>>> = if keys.is_empty() {
            Vec::new()
        } else if self.store.is_cluster() {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(64) {
                let cmds: Vec<redis::Cmd> = chunk
                    .iter()
                    .map(|k| {
                        let mut c = redis::cmd("GET");
                        c.arg(k);
                        c
                    })
                    .collect();
                let vals = futures_util::future::try_join_all(
                    cmds.iter().map(|c| self.store.query::<Option<Vec<u8>>>(c)),
                )
                .await?;
                out.extend(vals);
            }
            out
        } else {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(500) {
                let vals: Vec<Option<Vec<u8>>> =
                    self.store.query(redis::cmd("MGET").arg(chunk)).await?;
                out.extend(vals);
            }
            out
        };
        Ok(keys
            .iter()
            .zip(raw)
            .map(|(k, v)| match v {
                None => Ok(None),
                Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                    tracing::warn!(target: "redsnap", key = %k, error = %e, "Malformed JSON in memory key");
                    Error::MalformedJson {
                        key: k.clone(),
                        source: e,
                    }
                }),
            })
            .collect())
    }

    /// Read and parse the JSON under `key`. Malformed JSON is logged
    /// ("Malformed JSON") and returned as [`Error::MalformedJson`] for that
    /// key only.
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        let raw: Option<Vec<u8>> = self.store.query(redis::cmd("GET").arg(key)).await?;
        match raw {
            None => Ok(None),
            Some(b) => match serde_json::from_slice(&b) {
                Ok(v) => Ok(Some(v)),
                Err(e) => {
                    tracing::warn!(target: "redsnap", key, error = %e, "Malformed JSON in memory key");
                    Err(Error::MalformedJson {
                        key: key.to_string(),
                        source: e,
                    })
                }
            },
        }
    }

    /// Delete `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let n: i64 = self.store.query(redis::cmd("DEL").arg(key)).await?;
        Ok(n > 0)
    }

    /// Remaining TTL of `key` (None when missing or without expiry).
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let ms: i64 = self.store.query(redis::cmd("PTTL").arg(key)).await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// Delete every key matching the glob `pattern`, found by SCAN on every
    /// primary (never KEYS). The pattern must start with `governance:` so a
    /// cleanup can never reach outside the memory namespace. Returns how
    /// many keys were deleted.
    pub async fn cleanup(&self, pattern: &str) -> Result<u64> {
        if !pattern.starts_with("governance:") {
            return Err(Error::InvalidKey(format!(
                "cleanup pattern {pattern:?} must start with \"governance:\""
            )));
        }
        let n = self.store.scan_unlink(pattern).await?;
        tracing::info!(target: "redsnap", pattern, deleted = n, "memory cleanup");
        Ok(n)
    }

    /// Health of the underlying connection.
    pub async fn health(&self) -> Health {
        self.store.health().await
    }
}
