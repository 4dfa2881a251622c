//! [`RedisStore`]: the one handle the library's features work on, whatever the
//! backend the URL picks: a lazily connected, self-healing connection to a
//! standalone Redis / redsnap server or a Redis Cluster (redis-rs), or the redsnap
//! engine in this process ([`crate::inproc`], `redsnap://`), with health tracking.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::{RedisConfig, Topology};
use crate::error::{Error, Result};
use crate::inproc::{InProcess, InProcessConfig, InProcessConn};
use crate::metrics::Metrics;

/// A connection handle usable with redis-rs commands, pipelines and scripts:
/// either a [`ConnectionManager`] (standalone) or a cluster connection.
#[derive(Clone)]
pub enum Conn {
    /// Standalone server.
    Single(ConnectionManager),
    /// Redis Cluster.
    Cluster(ClusterConnection),
    /// The in-process backend (`redsnap://`).
    InProcess(InProcessConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::InProcess(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::InProcess(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::InProcess(c) => c.get_db(),
        }
    }
}

/// Connection state as reported by [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// No connection attempted yet (lazy connect).
    Idle,
    /// The last operation reached the server.
    Connected,
    /// The last operation failed to reach the server; retrying.
    Reconnecting,
    /// Reconnection attempts exhausted; the next operation retries again.
    Error,
}

impl ConnectionState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connected,
            2 => Self::Reconnecting,
            3 => Self::Error,
            _ => Self::Idle,
        }
    }
}

/// The health document: `{"healthy":true,"connectionState":"connected","reconnectAttempts":0,"latencyMs":1}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Whether a PING just succeeded.
    pub healthy: bool,
    /// Connection state.
    pub connection_state: ConnectionState,
    /// Consecutive failed operations since the last success.
    pub reconnect_attempts: u64,
    /// Round trip of the PING in milliseconds (None when it failed).
    pub latency_ms: Option<u64>,
}

enum Backend {
    Single(Mutex<Option<ConnectionManager>>),
    Cluster {
        client: Box<ClusterClient>,
        conn: Mutex<Option<ClusterConnection>>,
    },
    InProcess(InProcess),
}

struct Inner {
    config: RedisConfig,
    client: Option<redis::Client>,
    backend: Backend,
    state: AtomicU8,
    /// The last operation could not reach the server (connection error or
    /// timeout); cleared by the next answer, even an error reply.
    unreachable: AtomicBool,
    failures: AtomicU64,
    last_latency_us: AtomicU64,
    metrics: Metrics,
}

/// A cheap-to-clone handle on a Redis deployment. Connects lazily on first
/// use (so a service boots while Redis is down), reconnects with exponential
/// backoff bounded by [`RedisConfig::max_reconnect_attempts`], and bounds
/// every operation by [`RedisConfig::operation_timeout`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.config.redacted_target())
            .finish()
    }
}

impl RedisStore {
    /// Validate the configuration and build the handle. Does not connect.
    pub fn new(config: RedisConfig) -> Result<Self> {
        if config.tls.is_some() || config.redacted_target().contains("rediss://") {
            // rustls needs a process-wide crypto provider; ignore "already installed".
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let tls = config.tls.as_ref().map(|t| t.to_redis());
        let (client, backend) = match &config.topology {
            Topology::Standalone(url) => {
                let info = connection_info(url, &config)?;
                let client = match tls {
                    Some(certs) => redis::Client::build_with_tls(info, certs),
                    None => redis::Client::open(info),
                }
                .map_err(|e| Error::Config(format!("{}: {e}", config.redacted_target())))?;
                (Some(client), Backend::Single(Mutex::new(None)))
            }
            Topology::Cluster(nodes) => {
                let mut infos = Vec::with_capacity(nodes.len());
                for n in nodes {
                    infos.push(connection_info(n, &config)?);
                }
                let max_retry_ms = config.max_backoff.as_millis().min(u64::MAX as u128) as u64;
                let min_retry_ms = config.min_backoff.as_millis().min(u64::MAX as u128) as u64;
                let mut b = ClusterClient::builder(infos)
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(config.max_reconnect_attempts.min(u32::MAX as usize) as u32)
                    .min_retry_wait(min_retry_ms)
                    .max_retry_wait(max_retry_ms.max(min_retry_ms));
                if let Some(certs) = tls {
                    b = b.certs(certs);
                }
                let client = b
                    .build()
                    .map_err(|e| Error::Config(format!("{}: {e}", config.redacted_target())))?;
                (
                    None,
                    Backend::Cluster {
                        client: Box::new(client),
                        conn: Mutex::new(None),
                    },
                )
            }
            Topology::InProcess(c) => (None, Backend::InProcess(InProcess::open(c)?)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client,
                backend,
                state: AtomicU8::new(0),
                unreachable: AtomicBool::new(false),
                failures: AtomicU64::new(0),
                last_latency_us: AtomicU64::new(0),
                metrics: Metrics::new(),
            }),
        })
    }

    /// The in-process backend: `RedisStore::new(RedisConfig::in_process(cfg))`.
    pub fn in_process(cfg: InProcessConfig) -> Result<Self> {
        Self::new(RedisConfig::in_process(cfg))
    }

    /// `RedisStore::new(RedisConfig::from_env()?)`.
    pub fn from_env() -> Result<Self> {
        Self::new(RedisConfig::from_env()?)
    }

    /// `RedisStore::new(RedisConfig::new(url)?)`.
    pub fn open(url: &str) -> Result<Self> {
        Self::new(RedisConfig::new(url)?)
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The Prometheus metrics of this store and of every [`crate::Snapshots`]
    /// handle built on it (see [`crate::metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Whether this store targets a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.config.is_cluster()
    }

    /// Whether this store runs the redsnap engine in this process (`redsnap://`).
    pub fn is_in_process(&self) -> bool {
        matches!(self.inner.backend, Backend::InProcess(_))
    }

    pub(crate) fn in_process_backend(&self) -> Option<&InProcess> {
        match &self.inner.backend {
            Backend::InProcess(ip) => Some(ip),
            _ => None,
        }
    }

    /// Shut the store down. For the in-process backend: write the final snapshot
    /// (`snapshot-on-shutdown`), flush and close the append log and unlock the data
    /// directory; later operations fail. Dropping the last handle does the same,
    /// blocking the dropping thread meanwhile. For a Redis server: nothing (the
    /// connections close when the handles are dropped).
    pub async fn shutdown(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::InProcess(ip) => ip.shutdown().await,
            _ => Ok(()),
        }
    }

    /// A connection handle (creating it on first use). Commands sent through
    /// it are not tracked by [`health`](Self::health); prefer
    /// [`query`](Self::query) and friends.
    pub async fn conn(&self) -> Result<Conn> {
        let cfg = &self.inner.config;
        match &self.inner.backend {
            Backend::Single(slot) => {
                let mut guard = slot.lock().await;
                if let Some(m) = guard.as_ref() {
                    return Ok(Conn::Single(m.clone()));
                }
                let client = self
                    .inner
                    .client
                    .clone()
                    .ok_or_else(|| Error::Config("missing client".into()))?;
                let mcfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(cfg.connection_timeout))
                    .set_response_timeout(Some(cfg.response_timeout))
                    .set_number_of_retries(cfg.max_reconnect_attempts)
                    .set_min_delay(cfg.min_backoff)
                    .set_max_delay(cfg.max_backoff)
                    .set_exponent_base(2.0);
                let m = ConnectionManager::new_lazy_with_config(client, mcfg)
                    .map_err(|e| self.classify(e))?;
                *guard = Some(m.clone());
                Ok(Conn::Single(m))
            }
            Backend::Cluster { client, conn } => {
                let mut guard = conn.lock().await;
                if let Some(c) = guard.as_ref() {
                    return Ok(Conn::Cluster(c.clone()));
                }
                let c = self
                    .bounded(async {
                        client
                            .get_async_connection()
                            .await
                            .map_err(|e| self.classify(e))
                    })
                    .await?;
                *guard = Some(c.clone());
                Ok(Conn::Cluster(c))
            }
            Backend::InProcess(ip) => Ok(Conn::InProcess(ip.conn())),
        }
    }

    /// Forget the current connection so that the next operation builds a new
    /// one (used after errors a connection manager does not recover from by
    /// itself, such as a rejected password that is later fixed server-side).
    async fn reset(&self) {
        match &self.inner.backend {
            Backend::Single(slot) => *slot.lock().await = None,
            Backend::Cluster { conn, .. } => *conn.lock().await = None,
            Backend::InProcess(_) => {}
        }
    }

    async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.inner.config.operation_timeout;
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(limit)))
    }

    /// Bound one request by one connection attempt plus one response
    /// (`connection_timeout + response_timeout`) instead of the whole
    /// reconnect schedule. For callers that have somewhere else to go when
    /// Redis is down (the snapshot fallback); a request that would succeed
    /// is never cut, since redis-rs bounds its response by `response_timeout`.
    pub(crate) async fn within_one_attempt<T>(
        &self,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let cfg = &self.inner.config;
        let limit = cfg.connection_timeout + cfg.response_timeout;
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(limit)))
    }

    /// An operation that took longer than `limit`: counted as an unreachable server.
    /// (Kept out of the futures above: one more async layer around every request
    /// overflowed a test thread's stack in debug builds.)
    fn timed_out(&self, limit: std::time::Duration) -> Error {
        let err = Error::Timeout(limit);
        self.note_unreachable(&err);
        err
    }

    /// Bookkeeping for an operation that could not reach the server.
    fn note_unreachable(&self, err: &Error) {
        let g = self.inner.metrics.store_gauges();
        g.reconnect_attempts.inc();
        g.up.store(0, Ordering::Relaxed);
        self.inner.unreachable.store(true, Ordering::Relaxed);
        let n = self.inner.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let st = if n as usize > self.inner.config.max_reconnect_attempts {
            3
        } else {
            2
        };
        self.inner.state.store(st, Ordering::Relaxed);
        tracing::warn!(target: "redsnap", attempts = n, error = %err, "Redis unreachable");
    }

    /// Map a redis-rs error to our error type.
    pub(crate) fn classify(&self, e: RedisError) -> Error {
        let target = self.inner.config.redacted_target();
        let code = e.code().unwrap_or("");
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || code == "NOAUTH"
            || code == "WRONGPASS"
            || code == "NOPERM"
        {
            return Error::Auth {
                target,
                message: e.to_string(),
            };
        }
        if e.is_timeout() {
            return Error::Timeout(self.inner.config.response_timeout);
        }
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
        {
            return Error::Connection {
                target,
                message: e.to_string(),
            };
        }
        Error::Redis(e)
    }

    async fn observe<T>(
        &self,
        started: Instant,
        r: std::result::Result<T, RedisError>,
    ) -> Result<T> {
        match r {
            Ok(v) => {
                let g = self.inner.metrics.store_gauges();
                if self.inner.failures.swap(0, Ordering::Relaxed) > 0 {
                    g.reconnects.inc();
                }
                g.up.store(1, Ordering::Relaxed);
                self.inner.state.store(1, Ordering::Relaxed);
                self.inner.unreachable.store(false, Ordering::Relaxed);
                let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
                self.inner.last_latency_us.store(us, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                let err = self.classify(e);
                match &err {
                    Error::Connection { .. } | Error::Timeout(_) => self.note_unreachable(&err),
                    Error::Auth { .. } => {
                        self.inner.unreachable.store(false, Ordering::Relaxed);
                        self.inner
                            .metrics
                            .store_gauges()
                            .up
                            .store(0, Ordering::Relaxed);
                        self.inner.failures.fetch_add(1, Ordering::Relaxed);
                        self.inner.state.store(3, Ordering::Relaxed);
                        tracing::error!(target: "redsnap", error = %err, "Redis authentication failed");
                        self.reset().await;
                    }
                    _ => {
                        // The server answered: the connection is fine.
                        self.inner.unreachable.store(false, Ordering::Relaxed);
                        self.inner.state.store(1, Ordering::Relaxed);
                    }
                }
                Err(err)
            }
        }
    }

    /// Run one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let t = Instant::now();
            let r = cmd.query_async(&mut c).await;
            self.observe(t, r).await
        })
        .await
    }

    /// Run a pipeline (use `pipe.atomic()` for MULTI/EXEC; in a cluster every
    /// key of an atomic pipeline must hash to the same slot).
    pub async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let t = Instant::now();
            let r = pipe.query_async(&mut c).await;
            self.observe(t, r).await
        })
        .await
    }

    /// Run a Lua script (EVALSHA, falling back to EVAL on NOSCRIPT).
    pub async fn invoke<T: FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> Result<T> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let t = Instant::now();
            let r = inv.invoke_async(&mut c).await;
            self.observe(t, r).await
        })
        .await
    }

    /// Addresses (`host`, `port`) of every primary: the one server for a
    /// standalone deployment, every master of a cluster.
    pub async fn primaries(&self) -> Result<Vec<(String, u16)>> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let v: Value = self.query(redis::cmd("CLUSTER").arg("SLOTS")).await?;
        let mut out: Vec<(String, u16)> = Vec::new();
        if let Value::Array(ranges) = v {
            for r in ranges {
                if let Value::Array(items) = r {
                    if let Some(Value::Array(master)) = items.get(2) {
                        let host = match master.first() {
                            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                            Some(Value::SimpleString(s)) => s.clone(),
                            _ => continue,
                        };
                        let port = match master.get(1) {
                            Some(Value::Int(p)) => *p as u16,
                            _ => continue,
                        };
                        if !out.contains(&(host.clone(), port)) {
                            out.push((host, port));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Send a command to one cluster node by address.
    pub async fn query_node<T: FromRedisValue>(
        &self,
        host: &str,
        port: u16,
        cmd: Cmd,
    ) -> Result<T> {
        self.bounded(async {
            let c = self.conn().await?;
            let t = Instant::now();
            let r = match c {
                Conn::Cluster(mut cc) => {
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_string(),
                        port,
                    });
                    cc.route_command(cmd, route).await
                }
                Conn::Single(mut m) => cmd.query_async::<Value>(&mut m).await,
                Conn::InProcess(mut c) => cmd.query_async::<Value>(&mut c).await,
            };
            let v = self.observe(t, r).await?;
            T::from_redis_value(v).map_err(|e| Error::Redis(e.into()))
        })
        .await
    }

    /// Iterate `SCAN cursor MATCH pattern COUNT 500` over every primary and
    /// collect the matching keys. Never uses KEYS.
    pub async fn scan_match(&self, pattern: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        self.scan_each(pattern, |batch| {
            keys.extend_from_slice(batch);
            async { Ok(()) }
        })
        .await?;
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Delete (UNLINK) every key matching `pattern`, batch by batch as SCAN
    /// returns them on every primary (memory stays bounded however many
    /// keys match). Returns how many keys were deleted.
    pub async fn scan_unlink(&self, pattern: &str) -> Result<u64> {
        let total = Arc::new(AtomicU64::new(0));
        self.scan_each(pattern, |batch| {
            let batch = batch.to_vec();
            let this = self.clone();
            let total = total.clone();
            async move {
                let n = this.unlink_keys(&batch).await?;
                total.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
        })
        .await?;
        Ok(total.load(Ordering::Relaxed))
    }

    /// Call `f` with each SCAN batch (possibly empty batches skipped) from
    /// every primary.
    async fn scan_each<F, Fut>(&self, pattern: &str, mut f: F) -> Result<()>
    where
        F: FnMut(&[String]) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let nodes: Vec<Option<(String, u16)>> = if self.is_cluster() {
            self.primaries().await?.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(500);
                let (next, batch): (u64, Vec<String>) = match &node {
                    Some((h, p)) => self.query_node(h, *p, cmd).await?,
                    None => self.query(&cmd).await?,
                };
                if !batch.is_empty() {
                    f(&batch).await?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Delete keys (UNLINK), in batches on a standalone server and key by
    /// key in a cluster (keys may live in different slots). Returns how many
    /// existed.
    pub async fn unlink_keys(&self, keys: &[String]) -> Result<u64> {
        let mut removed = 0u64;
        if self.is_cluster() {
            for k in keys {
                let n: u64 = self.query(redis::cmd("UNLINK").arg(k)).await?;
                removed += n;
            }
        } else {
            for chunk in keys.chunks(500) {
                let n: u64 = self.query(redis::cmd("UNLINK").arg(chunk)).await?;
                removed += n;
            }
        }
        Ok(removed)
    }

    /// PING and report `{healthy, connectionState, reconnectAttempts, latencyMs}`.
    pub async fn health(&self) -> Health {
        let t = Instant::now();
        let ok = self
            .query::<String>(&redis::cmd("PING"))
            .await
            .map(|s| s == "PONG")
            .unwrap_or(false);
        let latency = t.elapsed();
        Health {
            healthy: ok,
            connection_state: self.connection_state(),
            reconnect_attempts: self.inner.failures.load(Ordering::Relaxed),
            latency_ms: ok.then(|| latency.as_millis().min(u64::MAX as u128) as u64),
        }
    }

    /// Consecutive failed operations since the last success.
    pub fn reconnect_attempts(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Whether the last operation failed to reach the server (a connection
    /// error or a timeout, not an error reply). The snapshot fallback uses it
    /// to stop waiting on Redis as soon as one operation found it down.
    pub fn is_unreachable(&self) -> bool {
        self.inner.unreachable.load(Ordering::Relaxed)
    }

    /// The connection state observed by the last operation.
    pub fn connection_state(&self) -> ConnectionState {
        ConnectionState::from_u8(self.inner.state.load(Ordering::Relaxed))
    }

    /// Latency of the last successful operation.
    pub fn last_latency(&self) -> Duration {
        Duration::from_micros(self.inner.last_latency_us.load(Ordering::Relaxed))
    }
}

impl RedisStore {
    /// A plain (non-cluster) client for pub/sub: the server itself, or the
    /// first seed node of a cluster.
    pub(crate) fn pubsub_client(&self) -> Result<redis::Client> {
        if let Some(c) = &self.inner.client {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let url = match &cfg.topology {
            Topology::Cluster(nodes) => nodes
                .first()
                .cloned()
                .ok_or_else(|| Error::Config("no cluster nodes".into()))?,
            Topology::Standalone(u) => u.clone(),
            Topology::InProcess(_) => return Err(Error::Config(
                "the in-process backend has no Redis client (its pub/sub is within the process)"
                    .into(),
            )),
        };
        let info = connection_info(&url, cfg)?;
        match cfg.tls.as_ref().map(|t| t.to_redis()) {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
        .map_err(|e| Error::Config(format!("{}: {e}", cfg.redacted_target())))
    }
}

fn connection_info(url: &str, cfg: &RedisConfig) -> Result<redis::ConnectionInfo> {
    let info = url
        .into_connection_info()
        .map_err(|e| Error::Config(format!("bad Redis URL {}: {e}", crate::config::redact(url))))?;
    let mut rs = info.redis_settings().clone();
    if let Some(pw) = &cfg.password {
        rs = rs.set_password(pw);
    }
    if let Some(u) = &cfg.username {
        rs = rs.set_username(u);
    }
    Ok(info.set_redis_settings(rs))
}
