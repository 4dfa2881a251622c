//! The redsnap server: RESP2/RESP3 over TCP, connections, pub/sub, transactions,
//! blocking commands and administration, on top of the keyspace engine.
//!
//! A command's path: a connection task parses requests from its socket
//! ([`resp::Parser`]), takes the server lock once per batch of pipelined requests,
//! runs each through [`conn::Conn::dispatch`] (table lookup, arity, auth, MULTI
//! queueing) into the engine, then handles what the command left behind (WATCH
//! invalidation, blocked clients, append-log records) and writes the replies.

pub mod config;
pub mod resp;

mod acl;

mod alloc;
mod commands;
pub use alloc::{collect_if_requested, CountingAlloc};
mod busy;
mod calls;
mod clientmem;
mod conn;
mod hdr;
mod http;
mod listeners;
mod lua_raw;
mod persist;
mod querybuf;
mod repl;
mod scripting;
mod state;
mod tls;
mod tracking;

pub use config::Config;
pub use http::{HealthReport, PersistenceHealth};
use redsnap_engine::{EngineConfig, Store};
use state::{Inner, Shared, ShutdownRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The Redis version redsnap reports to clients (the command set it follows).
pub const REDIS_VERSION: &str = "7.0.15";
pub const REDSNAP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not bind {addr}: {err}")]
    Bind { addr: String, err: std::io::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Persist(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn engine_config(c: &Config) -> EngineConfig {
    EngineConfig {
        databases: c.int("databases").max(1) as usize,
        proto_max_bulk_len: c.u64("proto-max-bulk-len"),
        hash_max_listpack_entries: c.u64("hash-max-listpack-entries") as usize,
        hash_max_listpack_value: c.u64("hash-max-listpack-value") as usize,
        set_max_intset_entries: c.u64("set-max-intset-entries") as usize,
        zset_max_listpack_entries: c.u64("zset-max-listpack-entries") as usize,
        zset_max_listpack_value: c.u64("zset-max-listpack-value") as usize,
        list_max_listpack_size: c.int("list-max-listpack-size"),
        stream_node_max_entries: c.int("stream-node-max-entries").max(0) as u64,
        stream_node_max_bytes: c.u64("stream-node-max-bytes"),
        hll_sparse_max_bytes: c.u64("hll-sparse-max-bytes").min(usize::MAX as u64) as usize,
        notify_keyspace_events: notify_flags(c),
    }
}

/// `notify-keyspace-events` as the engine's flags word (validated when set).
fn notify_flags(c: &Config) -> u32 {
    redsnap_engine::notify::parse(c.str("notify-keyspace-events").as_bytes()).unwrap_or(0)
}

/// Applies runtime-changeable settings after CONFIG SET.
pub(crate) fn apply_config(inner: &mut Inner) {
    inner.store.lfu = inner.config.str("maxmemory-policy").contains("lfu");
    let c = &inner.config;
    inner.tun = state::Tunables {
        maxmemory: c.u64("maxmemory"),
        policy: redsnap_engine::store::EvictPolicy::parse(&c.str("maxmemory-policy")),
        samples: c.u64("maxmemory-samples") as usize,
        min_replicas: c.u64("min-replicas-to-write") > 0 && c.u64("min-replicas-max-lag") > 0,
        slowlog_slower_than: c.int("slowlog-log-slower-than"),
        slowlog_max_len: c.u64("slowlog-max-len").min(usize::MAX as u64) as usize,
        latency_threshold_ms: c.u64("latency-monitor-threshold"),
        latency_tracking: c.bool("latency-tracking"),
        latency_percentiles: c.percentiles("latency-tracking-info-percentiles"),
        monitor_obuf_limit: commands::monitor::output_limit(c),
        pubsub_obuf_limit: c.obuf_hard_limit("pubsub").unwrap_or(32 << 20),
    };
    inner.tracking.max_keys = c.u64("tracking-table-max-keys");
    let databases = inner.store.config.databases;
    inner.store.config = EngineConfig {
        databases,
        ..engine_config(&inner.config)
    };
    repl::apply_config(inner);
}

/// Sets the log level when `loglevel` changes (at startup and by CONFIG SET); the
/// binary installs it, since it owns the logging subscriber. Redis's levels are
/// passed as named in the configuration (`debug verbose notice warning nothing`).
pub type LogLevelHook = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
static LOG_LEVEL_HOOK: std::sync::OnceLock<LogLevelHook> = std::sync::OnceLock::new();
/// The level last set through the hook.
static LOG_LEVEL_APPLIED: parking_lot::Mutex<String> = parking_lot::Mutex::new(String::new());

/// Installs the [`LogLevelHook`] (once per process; later calls are ignored).
pub fn set_log_level_hook(hook: LogLevelHook) {
    let _ = LOG_LEVEL_HOOK.set(hook);
}

/// Publishes the settings that connections read without the server lock
/// ([`state::LiveConfig`]); called with `apply_config` at startup and after CONFIG SET.
/// True when `timeout` changed (the caller tells the connections,
/// `ConnMsg::TimeoutChanged`).
pub(crate) fn publish_live(shared: &Shared, c: &Config) -> bool {
    use std::sync::atomic::Ordering::{AcqRel, Release};
    let live = &shared.live;
    live.maxclients
        .store(c.int("maxclients").max(1) as usize, Release);
    live.protected_mode.store(c.bool("protected-mode"), Release);
    // `requirepass` is the default user's password: applied when it changes.
    let pass = bytes::Bytes::from(c.str("requirepass").into_bytes());
    let changed = {
        let mut cur = live.requirepass.write();
        let changed = *cur != pass;
        *cur = pass.clone();
        changed
    };
    if changed {
        shared.acl.set_requirepass(live, &pass);
    }
    shared.acl.configure(c);
    live.proto_max_bulk_len
        .store(c.u64("proto-max-bulk-len"), Release);
    live.query_buffer_limit
        .store(c.u64("client-query-buffer-limit"), Release);
    let mmc = c.str("maxmemory-clients");
    let mmc = match mmc.strip_suffix('%') {
        Some(p) => -p.parse::<i64>().unwrap_or(0),
        None => mmc.parse().unwrap_or(0),
    };
    shared.client_mem.set_limit(mmc, c.u64("maxmemory"));
    // Idle connections wait on `timeout`: the caller wakes them when it changed.
    let timeout_changed = live.timeout.swap(c.u64("timeout"), AcqRel) != c.u64("timeout");
    live.tcp_keepalive.store(c.u64("tcp-keepalive"), Release);
    live.hz.store(c.u64("hz").clamp(1, 500), Release);
    // The subscriber is rebuilt only when the level changed.
    let level = c.str("loglevel");
    let mut applied = LOG_LEVEL_APPLIED.lock();
    if *applied != level {
        if let Some(hook) = LOG_LEVEL_HOOK.get() {
            match hook(&level) {
                Ok(()) => *applied = level,
                Err(e) => tracing::warn!("loglevel: {e}"),
            }
        }
    }
    shared
        .busy
        .threshold_ms
        .store(c.u64("busy-reply-threshold"), Release);
    scripting::set_memory_limit(c.u64("lua-memory-limit"));
    timeout_changed
}

/// CONFIG SET: applies the new configuration (`inner.config`; `old` is the previous
/// one): persistence parameters first (they can fail, e.g. `appendonly yes` when the
/// data directory cannot be opened; then nothing was changed), then the tunables.
pub(crate) fn apply_config_change(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    old: &config::Config,
) -> Result<(), String> {
    persist::apply_config(shared, inner, old)?;
    apply_config(inner);
    Ok(())
}

pub(crate) fn persistence_info(inner: &Inner) -> String {
    persist::info(inner)
}

/// Memory used by the dataset as redsnap accounts it (for INFO and maxmemory).
pub(crate) fn used_memory(_inner: &Inner) -> u64 {
    alloc::allocated().unwrap_or_else(commands::introspection::rss_bytes)
}

/// Frees memory under `maxmemory` by evicting keys per `maxmemory-policy`, as Redis's
/// performEvictions does before each command. Returns false when memory is still over
/// the limit (the caller refuses commands that may grow memory: OOM).
pub(crate) fn perform_evictions(inner: &mut Inner) -> bool {
    let max = inner.tun.maxmemory;
    if max == 0 {
        return true;
    }
    let policy = inner
        .tun
        .policy
        .unwrap_or(redsnap_engine::store::EvictPolicy::NoEviction);
    let samples = inner.tun.samples;
    let now = redsnap_engine::now_ms();
    let mut evicted = 0;
    // Latency events as Redis's performEvictions records them: each key's deletion
    // (`eviction-del`) and the whole cycle (`eviction-cycle`), when the latency
    // monitor is on.
    let monitor = inner.tun.latency_threshold_ms > 0;
    let started = monitor.then(std::time::Instant::now);
    let ok = loop {
        if used_memory(inner) <= max {
            break true;
        }
        let del = monitor.then(std::time::Instant::now);
        if evicted >= 10_000 || !inner.store.evict_one(policy, samples, now) {
            break used_memory(inner) <= max;
        }
        if let Some(t) = del {
            let ms = t.elapsed().as_millis() as u64;
            commands::latency::add_if_needed(inner, "eviction-del", ms);
        }
        evicted += 1;
    };
    if evicted > 0 {
        if let Some(t) = started {
            let ms = t.elapsed().as_millis() as u64;
            commands::latency::add_if_needed(inner, "eviction-cycle", ms);
        }
        conn::after_command(inner);
    }
    ok
}

/// Asks the server to shut down and waits for the outcome: Ok means the process is
/// exiting; Err means the final save failed and the server keeps running.
pub(crate) async fn shutdown(shared: &Arc<Shared>, req: ShutdownRequest) -> Result<(), String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if shared.shutdown.send((req, Some(tx))).is_err() {
        return Ok(());
    }
    match rx.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    /// TLS listeners (`tls-port`, fixed at startup); the plain ones are in
    /// `Shared::listeners`.
    tls_listeners: Vec<(Arc<TcpListener>, tokio_rustls::TlsAcceptor)>,
    /// `/health` and `/metrics` (`http-port`, fixed at startup).
    http_listeners: Vec<TcpListener>,
}

impl Server {
    /// Binds the listeners and prepares the keyspace. Fails clearly when a port is
    /// taken (no SO_REUSEPORT: a second instance cannot share the port).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        // No keyspace events while the dataset is replayed (no client could have
        // subscribed yet); `apply_config` below turns them on.
        let store = Store::new(EngineConfig {
            notify_keyspace_events: 0,
            ..engine_config(&config)
        });
        let tls = tls::acceptor(&config)?;
        let backlog = config.int("tcp-backlog").clamp(0, i32::MAX as i64) as i32;
        let mut plain = Vec::new();
        let mut tls_listeners = Vec::new();
        let mut ports = vec![(config.int("port") as u16, None)];
        if let Some(t) = tls {
            ports.push((config.int("tls-port") as u16, Some(t)));
        }
        for (port, tls) in ports {
            if port == 0 {
                continue;
            }
            let mut bound = 0;
            let wanted =
                listeners::wanted(port, &config.str("bind")).map_err(ServerError::Config)?;
            for (sa, optional) in wanted {
                match listeners::bind_one(sa, backlog) {
                    Ok(l) => {
                        let l = Arc::new(l);
                        match &tls {
                            Some(t) => tls_listeners.push((l, t.clone())),
                            None => plain.push(listeners::Listener {
                                sock: l,
                                addr: sa,
                                stop: Default::default(),
                            }),
                        }
                        bound += 1;
                    }
                    Err(e) if optional && e.kind() != std::io::ErrorKind::AddrInUse => {
                        tracing::debug!("optional bind {sa} skipped: {e}");
                    }
                    Err(err) => {
                        return Err(ServerError::Bind {
                            addr: sa.to_string(),
                            err,
                        })
                    }
                }
            }
            if bound == 0 {
                return Err(ServerError::Config(format!(
                    "no address to listen on for port {port}"
                )));
            }
        }
        if plain.is_empty() && tls_listeners.is_empty() {
            return Err(ServerError::Config(
                "both port and tls-port are 0: nothing to listen on".into(),
            ));
        }
        let http_listeners = http::bind(&config)?;
        let mut store = store;
        commands::memory::record_startup();
        let persistence = persist::open(&config, &mut store)?;
        let shared = Shared::new(store, config);
        *shared.listeners.lock() = plain;
        {
            let mut inner = shared.inner.lock();
            if let Some(p) = &persistence {
                if let Some(log) = p.durable.log() {
                    shared.log.set(Some(log.clone()));
                }
                inner.lastsave = p.durable.last_save();
            }
            inner.store.log_enabled = persistence
                .as_ref()
                .is_some_and(|p| p.durable.log().is_some());
            inner.persist = persistence;
            let libraries = std::mem::take(&mut inner.store.libraries);
            inner.functions.rebuild(&libraries);
            inner.store.libraries = libraries;
            apply_config(&mut inner);
            // No connection exists yet to tell of the timeout.
            publish_live(&shared, &inner.config);
            acl::load_at_startup(&shared, &inner.config).map_err(ServerError::Config)?;
        }
        Ok(Server {
            shared,
            tls_listeners,
            http_listeners,
        })
    }

    /// The append log in use (for tests that inject faults into it).
    #[doc(hidden)]
    pub fn append_log(&self) -> Option<redsnap_persist::AppendLog> {
        self.shared.log.get()
    }

    /// The addresses `/health` and `/metrics` are served on (`http-port`).
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.http_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let plain: Vec<SocketAddr> = self
            .shared
            .listeners
            .lock()
            .iter()
            .filter_map(|l| l.sock.local_addr().ok())
            .collect();
        plain
            .into_iter()
            .chain(
                self.tls_listeners
                    .iter()
                    .filter_map(|(l, _)| l.local_addr().ok()),
            )
            .collect()
    }

    /// Serves until SIGTERM, SIGINT or SHUTDOWN.
    pub async fn run(self) -> Result<(), ServerError> {
        let shared = self.shared.clone();
        for l in shared.listeners.lock().iter() {
            tokio::spawn(accept_loop(
                shared.clone(),
                l.sock.clone(),
                None,
                l.stop.clone(),
            ));
        }
        for (l, tls) in self.tls_listeners {
            tokio::spawn(accept_loop(
                shared.clone(),
                l,
                Some(tls),
                Default::default(),
            ));
        }
        let Some(mut rx) = shared.shutdown_rx.lock().take() else {
            return Err(ServerError::Config("the server is already running".into()));
        };
        let (http_stop, stopped) = tokio::sync::watch::channel(false);
        let http_tasks = http::serve(shared.clone(), self.http_listeners, stopped);
        tokio::spawn(cron(shared.clone()));
        repl::replica::start_from_config(&shared, &mut *shared.lock_async().await);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            let (req, reply) = tokio::select! {
                _ = term.recv() => { signal_received(&shared, "SIGTERM"); (ShutdownRequest { save: None }, None) }
                _ = int.recv() => { signal_received(&shared, "SIGINT"); (ShutdownRequest { save: None }, None) }
                r = rx.recv() => match r {
                    Some(r) => { tracing::info!("SHUTDOWN requested by a client"); r }
                    None => (ShutdownRequest { save: None }, None),
                },
            };
            match persist::shutdown(&shared, req.save).await {
                Ok(()) => {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!("refusing to exit: {e}");
                    if let Some(r) = reply {
                        let _ = r.send(Err(e));
                    }
                }
            }
        }
        {
            let inner = shared.lock_async().await;
            for c in inner.clients.values() {
                c.kill();
            }
        }
        // Stop the HTTP listeners (requests in flight finish, briefly).
        let _ = http_stop.send(true);
        for t in http_tasks {
            let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
        }
        tracing::info!("redsnap is now ready to exit, bye bye...");
        Ok(())
    }
}

/// Logs a shutdown signal. During a busy script the shutdown is scheduled, as in
/// Redis: it runs (with its final snapshot) as soon as the script ends or is killed
/// with SCRIPT KILL; SHUTDOWN NOSAVE from any connection exits without the snapshot.
fn signal_received(shared: &Shared, name: &str) {
    if shared.busy.running.load(Ordering::Acquire) {
        tracing::warn!(
            "received {name} during a running script: shutdown scheduled for when the script ends (SCRIPT KILL stops it; SHUTDOWN NOSAVE exits without a final snapshot)"
        );
    } else {
        tracing::info!("received {name}, shutting down");
    }
}

/// Accepts connections until `stop` is set and the socket stops listening (CONFIG
/// SET port / bind, see `listeners.rs`).
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let laddr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        let (sock, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        // Nothing here waits for the server lock: a busy script holds it, and new
        // connections must still be accepted (to answer BUSY, SCRIPT KILL, SHUTDOWN
        // NOSAVE). The limits come from `LiveConfig`.
        let live = &shared.live;
        let refusal: Option<&'static [u8]> = if shared.connections.load(Ordering::Acquire)
            >= live.maxclients.load(Ordering::Acquire)
        {
            Some(b"-ERR max number of clients reached\r\n")
        } else if live.protected_mode.load(Ordering::Acquire)
            && !live.requires_auth()
            && !is_loopback(&addr)
        {
            Some(PROTECTED_MODE_ERROR.as_bytes())
        } else {
            None
        };
        match refusal {
            Some(_) => {
                live.rejected_connections.fetch_add(1, Ordering::Relaxed);
            }
            None => set_keepalive(&sock, live.tcp_keepalive.load(Ordering::Acquire)),
        }
        let shared = shared.clone();
        let laddr = laddr.clone();
        let tls = tls.clone();
        if refusal.is_none() {
            shared
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        tokio::spawn(async move {
            // Released when this task ends, however it ends.
            struct Slot(Option<Arc<Shared>>);
            impl Drop for Slot {
                fn drop(&mut self) {
                    if let Some(s) = &self.0 {
                        s.connections
                            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    }
                }
            }
            let _slot = Slot(refusal.is_none().then(|| shared.clone()));
            use tokio::io::AsyncWriteExt;
            match tls {
                None => {
                    let mut sock = sock;
                    if let Some(msg) = refusal {
                        let _ = sock.write_all(msg).await;
                        return;
                    }
                    conn::serve(shared, sock, addr.to_string(), laddr, fd).await;
                }
                Some(acceptor) => {
                    // A handshake that does not finish in time is dropped (slow clients
                    // cannot hold a connection slot forever).
                    let hs =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await;
                    let mut stream = match hs {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!("TLS handshake with {addr} failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::info!("TLS handshake with {addr} timed out");
                            return;
                        }
                    };
                    if let Some(msg) = refusal {
                        let _ = stream.write_all(msg).await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                    conn::serve(shared, stream, addr.to_string(), laddr, fd).await;
                }
            }
        });
    }
}

/// `tcp-keepalive` (seconds, 0 = off) on an accepted socket.
fn set_keepalive(sock: &tokio::net::TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs))
        .with_interval(Duration::from_secs((secs / 3).max(1)));
    if let Err(e) = socket2::SockRef::from(sock).set_tcp_keepalive(&ka) {
        tracing::debug!("tcp-keepalive: {e}");
    }
}

/// Redis's protected-mode refusal, sent to non-loopback clients when no password is set.
const PROTECTED_MODE_ERROR: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis treats exactly 127.0.0.1 and ::1 as loopback for protected mode.
fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

/// Periodic work: active expiry (Redis's serverCron/activeExpireCycle).
async fn cron(shared: Arc<Shared>) {
    let mut tick: u64 = 0;
    loop {
        tick = tick.wrapping_add(1);
        // `hz` times a second, as Redis's serverCron (CONFIG SET hz acts at the next
        // tick).
        let hz = shared.live.hz.load(Ordering::Acquire).clamp(1, 500);
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        // Skip a tick rather than wait while a long script holds the lock.
        let Some(mut inner) = shared.inner.try_lock_for(Duration::from_millis(5)) else {
            continue;
        };
        let now = redsnap_engine::now_ms();
        // Keys do not expire actively while clients are paused (Redis 7.0).
        // Nor on a replica: its master's DEL removes them (Redis's serverCron).
        if shared.pause.kind() == 0 && !inner.cron_paused && inner.repl.link.is_none() {
            let started = std::time::Instant::now();
            inner.store.active_expire_cycle(now, 2000);
            let ms = started.elapsed().as_millis() as u64;
            commands::latency::add_if_needed(&mut inner, "expire-cycle", ms);
        }
        if inner.tracking.clients != 0 && !inner.cron_paused {
            tracking::limit_used_slots(&mut inner, None);
        }
        commands::info::sample(&mut inner);
        commands::memory::cron(&inner);
        querybuf::cron(&mut inner, tick, hz);
        clientmem::evict(&mut inner, &shared.client_mem, true);
        conn::after_command(&mut inner);
        if let Err(e) = persist::append(&mut inner) {
            tracing::error!("append log: {e:?}");
        }
        // Connections write the staged log batches before their replies; a batch no
        // reply follows (CLIENT REPLY OFF, a client gone) is written here, within a tick.
        // Never waits for I/O under the lock: skipped while a writer is busy.
        if let Some(log) = shared.log.get() {
            if let Err(e) = log.try_write_staged() {
                tracing::error!("append log: {e}");
            }
            // Under `appendfsync always` a reply waits for its fsync: the slowest
            // one is the latency monitor's `aof-fsync-always` (Redis fsyncs on its
            // main thread then).
            let fsync_ms = log.take_slowest_fsync_ms();
            if log.waits_for_fsync() {
                commands::latency::add_if_needed(&mut inner, "aof-fsync-always", fsync_ms);
            }
        }
        persist::cron(&shared, &mut inner);
        persist::log_refusal(&mut inner);
        repl::cron(&shared, &mut inner);
    }
}
