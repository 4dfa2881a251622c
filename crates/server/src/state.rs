//! Shared server state: the keyspace and everything about clients that other clients
//! can affect (pub/sub, WATCH, blocked clients), all behind one mutex. Commands run
//! one at a time under it, as in Redis, which makes every command, MULTI/EXEC and
//! script atomic without further locking.

use crate::config::Config;
use bytes::Bytes;
use parking_lot::Mutex;
use redsnap_engine::{Reply, Store};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Messages delivered to a connection task from elsewhere.
#[derive(Debug)]
pub enum ConnMsg {
    /// A pub/sub message (RESP3 push / RESP2 array).
    Push(Reply),
    /// The reply that ends a blocking command.
    Unblocked(Reply),
    /// CLIENT KILL or shutdown: close the connection.
    Kill,
    /// Bytes written as they are: a replica's RDB file and stream (`repl.rs`). The
    /// sender adds their length to `ClientInfo::pending_out`, the connection
    /// subtracts it when it takes them (the RDB transfer waits on that count).
    Raw(Bytes),
    /// A replica's full synchronization asks for the socket (`repl/handoff.rs`):
    /// write out what is queued, then lend it.
    Lend(crate::repl::handoff::Lend),
    /// The cron asks for a query buffer of this many bytes (0: free it), see
    /// `querybuf.rs`.
    ResizeQueryBuf(usize),
    /// The cron asks for a reply buffer of this many bytes (`querybuf.rs`).
    ResizeReplyBuf(usize),
    /// CONFIG SET changed `timeout`: an idle connection re-reads it (sent to every
    /// client; the connection loop keeps no other wait for configuration changes).
    TimeoutChanged,
}

/// What a blocked client waits for, and how to serve it once a key is ready.
#[derive(Debug, Clone)]
pub enum BlockKind {
    /// BLPOP / BRPOP.
    Pop { left: bool },
    /// BLMOVE / BRPOPLPUSH.
    Move { dst: Bytes, from: Bytes, to: Bytes },
    /// BLMPOP.
    MPop { dir: Bytes, count: Bytes },
    /// BZPOPMIN / BZPOPMAX.
    ZPop { min: bool },
    /// BZMPOP.
    ZMPop { dir: Bytes, count: Bytes },
    /// XREAD / XREADGROUP (see `commands/stream.rs`).
    Stream(Box<redsnap_engine::cmd::stream::XReadWait>),
}

impl BlockKind {
    pub fn wants_zset(&self) -> bool {
        matches!(self, BlockKind::ZPop { .. } | BlockKind::ZMPop { .. })
    }
    pub fn is_stream(&self) -> bool {
        matches!(self, BlockKind::Stream(_))
    }
}

#[derive(Debug)]
pub struct Blocked {
    pub db: usize,
    pub keys: Vec<Bytes>,
    pub kind: BlockKind,
    pub resp3: bool,
    /// The blocking call, whose statistics and slowlog entry wait for its end (as
    /// Redis's `updateStatsOnUnblock`).
    pub call: Option<Box<crate::calls::PendingCall>>,
}

/// What CLIENT LIST shows about a client, kept current by its connection task.
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: Bytes,
    /// The ACL user the client is authenticated as (CLIENT LIST `user`).
    pub user: Bytes,
    /// The socket's file descriptor (CLIENT LIST `fd`).
    pub fd: i32,
    pub db: usize,
    pub created: Instant,
    pub last_active: Instant,
    pub last_cmd: &'static str,
    pub resp: u8,
    pub sub: usize,
    pub psub: usize,
    /// Shard channels (SSUBSCRIBE).
    pub ssub: usize,
    /// Commands queued in MULTI (-1: not in MULTI) and their arguments' bytes.
    pub multi: i64,
    pub multi_mem: usize,
    pub no_evict: bool,
    /// In MONITOR mode (CLIENT LIST flag `O`).
    pub monitor: bool,
    /// Waiting for the end of a CLIENT PAUSE.
    pub postponed: bool,
    /// The connection's query buffer figures (CLIENT LIST `qbuf`, `qbuf-free`).
    pub qb: Arc<crate::querybuf::Stats>,
    pub tx: mpsc::UnboundedSender<ConnMsg>,
    /// Bytes queued for this client and not yet written (pub/sub output buffer).
    pub pending_out: Arc<AtomicU64>,
    /// Closes the connection even while it is stuck writing to a client that does
    /// not read (CLIENT KILL, output buffer limits, shutdown).
    pub kill: Arc<tokio::sync::Notify>,
}

impl ClientInfo {
    pub fn kill(&self) {
        self.kill.notify_one();
        let _ = self.tx.send(ConnMsg::Kill);
    }
}

/// A key watched by a client; `expired` records that it was already logically
/// expired at WATCH time (its later deletion then changes nothing, as in Redis).
#[derive(Debug, Clone)]
pub struct WatchedKey {
    pub db: usize,
    pub key: Bytes,
    pub expired: bool,
}

/// Counters for INFO stats.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub total_connections: u64,
    pub total_commands: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub pubsub_messages: u64,
    /// Samples behind `instantaneous_ops_per_sec`.
    pub ops: crate::commands::info::OpsMeter,
}

/// Settings read on every command, parsed once per CONFIG SET (see `apply_config`).
#[derive(Debug, Default, Clone)]
pub struct Tunables {
    pub maxmemory: u64,
    pub policy: Option<redsnap_engine::store::EvictPolicy>,
    pub samples: usize,
    /// min-replicas-to-write and min-replicas-max-lag are both set: writes are
    /// refused (NOREPLICAS) without enough good replicas (`repl::enough_good_replicas`).
    pub min_replicas: bool,
    /// `slowlog-log-slower-than` in microseconds (negative: off).
    pub slowlog_slower_than: i64,
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` in milliseconds (0: off).
    pub latency_threshold_ms: u64,
    /// `latency-tracking`: per-command latency histograms.
    pub latency_tracking: bool,
    /// `latency-tracking-info-percentiles`.
    pub latency_percentiles: Vec<f64>,
    /// Output buffer hard limit of MONITOR clients (`client-output-buffer-limit
    /// normal`; 0: none).
    pub monitor_obuf_limit: u64,
    /// Output buffer hard limit of pub/sub clients (`client-output-buffer-limit
    /// pubsub`; 0: none).
    pub pubsub_obuf_limit: u64,
}

/// Hashes a client id (assigned by the server, in sequence: nothing to flood) with
/// one multiplication; the map is read on every command (SipHash was ~0.5 % of a
/// pipelined EVALSHA).
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and a tag from the top seven.
        self.0 ^ (self.0 >> 32)
    }
}

/// The connected clients by id.
pub type ClientMap = HashMap<u64, ClientInfo, std::hash::BuildHasherDefault<IdHasher>>;

/// Everything behind the server lock.
pub struct Inner {
    pub store: Store,
    pub config: Config,
    pub clients: ClientMap,
    pub channels: HashMap<Bytes, Vec<u64>>,
    pub patterns: Vec<(Bytes, u64)>,
    /// Watchers of each key, and each client's watched keys.
    pub watched: HashMap<(usize, Bytes), Vec<u64>>,
    pub watches: HashMap<u64, Vec<WatchedKey>>,
    pub cas_dirty: HashSet<u64>,
    pub blocked_keys: HashMap<(usize, Bytes), VecDeque<u64>>,
    pub blocked: HashMap<u64, Blocked>,
    pub stats: ServerStats,
    pub lastsave: u64,
    pub scripts: crate::scripting::Scripts,
    /// The function libraries (FUNCTION LOAD) and their Lua state.
    pub functions: crate::scripting::Functions,
    pub persist: Option<crate::persist::Persistence>,
    pub tun: Tunables,
    /// Attached replicas and their stream (`repl.rs`).
    pub repl: crate::repl::Replication,
    /// What every call records: INFO commandstats, errorstats, latencystats.
    pub calls: crate::calls::CallStats,
    pub slowlog: crate::commands::slowlog::SlowLog,
    /// LATENCY's event time series.
    pub latency: crate::commands::latency::Events,
    /// Clients in MONITOR mode, by id.
    pub monitors: Vec<u64>,
    /// The refusal of writes in force (MISCONF, NOREPLICAS) and since when, as last
    /// logged by the cron (`persist::log_refusal`): a line when it starts and ends.
    pub refusal: Option<(String, Instant)>,
    /// Subscribers of each shard channel (SSUBSCRIBE).
    pub shard_channels: HashMap<Bytes, Vec<u64>>,
    /// Client-side caching (CLIENT TRACKING, `tracking.rs`).
    pub tracking: crate::tracking::Tracking,
    /// DEBUG PAUSE-CRON: the cron's Redis work (active expiry, the tracking table
    /// limit) stops.
    pub cron_paused: bool,
}

/// Whether a script is running and for how long, readable without the server lock
/// (a busy script holds it): other clients get BUSY after `busy-reply-threshold`,
/// and SCRIPT KILL / SHUTDOWN NOSAVE reach the script through `kill`.
#[derive(Debug, Default)]
pub struct BusyState {
    pub running: std::sync::atomic::AtomicBool,
    /// When the running script started (ms since the epoch).
    pub since_ms: AtomicU64,
    /// Set when the running script has performed a write (SCRIPT KILL then refuses:
    /// UNKILLABLE).
    pub wrote: std::sync::atomic::AtomicBool,
    /// 0 = none, 1 = SCRIPT KILL requested, 2 = SHUTDOWN NOSAVE requested.
    pub kill: std::sync::atomic::AtomicU8,
    /// busy-reply-threshold in ms (mirrors the config, readable without the lock).
    pub threshold_ms: AtomicU64,
    /// Whether the running script has handed its runtime worker's queue off.
    pub handed_off: std::sync::atomic::AtomicBool,
    /// Whether the running script is a function (FCALL): FUNCTION KILL stops it,
    /// SCRIPT KILL refuses to, and other commands get the FUNCTION KILL flavour of
    /// BUSY.
    pub function: std::sync::atomic::AtomicBool,
    /// The running function, for FUNCTION STATS during a busy run.
    pub current: parking_lot::Mutex<Option<RunningFunction>>,
}

/// What FUNCTION STATS says of a running function (set for the length of an FCALL).
#[derive(Debug, Clone)]
pub struct RunningFunction {
    pub name: Bytes,
    /// The FCALL command as the client sent it.
    pub command: Vec<Bytes>,
    /// The libraries and functions loaded (they cannot change while it runs).
    pub libraries: usize,
    pub functions: usize,
}

/// The settings that the path from `accept` to a connection's first reply needs,
/// readable without the server lock (a busy script holds it for as long as it runs).
/// Written by `apply_config` at startup and after every CONFIG SET.
#[derive(Debug)]
pub struct LiveConfig {
    pub maxclients: std::sync::atomic::AtomicUsize,
    pub protected_mode: std::sync::atomic::AtomicBool,
    /// `requirepass` ("" = none), as last applied to the `default` user.
    pub requirepass: parking_lot::RwLock<Bytes>,
    /// New connections must authenticate: the `default` user has a password or is
    /// off (kept by `acl::Acl::changed`).
    pub auth_required: std::sync::atomic::AtomicBool,
    pub proto_max_bulk_len: AtomicU64,
    /// `client-query-buffer-limit` (0 = none).
    pub query_buffer_limit: AtomicU64,
    /// `timeout` in seconds (0 = never).
    pub timeout: AtomicU64,
    /// `tcp-keepalive` in seconds (0 = off), applied to each accepted socket.
    pub tcp_keepalive: AtomicU64,
    /// Connections refused (maxclients, protected mode), for INFO.
    pub rejected_connections: AtomicU64,
    /// The `hz` the cron runs at (read by the cron at each tick).
    pub hz: AtomicU64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            maxclients: Default::default(),
            protected_mode: Default::default(),
            requirepass: Default::default(),
            auth_required: Default::default(),
            proto_max_bulk_len: Default::default(),
            query_buffer_limit: Default::default(),
            timeout: Default::default(),
            tcp_keepalive: Default::default(),
            rejected_connections: Default::default(),
            hz: AtomicU64::new(10),
        }
    }
}

impl LiveConfig {
    pub fn requires_auth(&self) -> bool {
        self.auth_required.load(Ordering::Acquire)
    }
}

/// A shutdown request and where to report its outcome.
pub type ShutdownMsg = (
    ShutdownRequest,
    Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
);

/// State shared by every connection.
pub struct Shared {
    pub busy: BusyState,
    pub live: LiveConfig,
    /// ACL users and the ACL log (`acl/`).
    pub(crate) acl: crate::acl::Acl,
    /// Set by SHUTDOWN NOSAVE while a script is busy: whatever shutdown is pending
    /// (SIGTERM, SHUTDOWN) then exits without a final snapshot, and the batch of the
    /// killed script is not logged (nothing of it was acknowledged).
    pub nosave_shutdown: std::sync::atomic::AtomicBool,
    /// Open client connections (counted at accept, before the connection registers).
    pub connections: std::sync::atomic::AtomicUsize,
    pub inner: Mutex<Inner>,
    pub next_id: AtomicU64,
    pub started: Instant,
    /// Shutdown requests (SHUTDOWN); each carries a channel for the outcome.
    pub shutdown: mpsc::UnboundedSender<ShutdownMsg>,
    pub shutdown_rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<ShutdownMsg>>>,
    /// The append log (for `appendfsync always` waits outside the lock).
    pub log: crate::persist::LogSlot,
    pub run_id: String,
    /// CLIENT PAUSE (readable without the lock).
    pub(crate) pause: crate::commands::client::Pause,
    /// The plain TCP listening sockets (`port`, `bind`; CONFIG SET changes them).
    pub(crate) listeners: parking_lot::Mutex<Vec<crate::listeners::Listener>>,
    /// Clients' memory and `maxmemory-clients` (`clientmem.rs`).
    pub(crate) client_mem: Arc<crate::clientmem::ClientMem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Some(true) = SAVE, Some(false) = NOSAVE, None = per configuration.
    pub save: Option<bool>,
}

impl Shared {
    pub fn new(store: Store, config: Config) -> Arc<Shared> {
        let (tx, rx) = mpsc::unbounded_channel();
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        Arc::new(Shared {
            inner: Mutex::new(Inner {
                store,
                config,
                clients: ClientMap::default(),
                channels: HashMap::new(),
                patterns: Vec::new(),
                watched: HashMap::new(),
                watches: HashMap::new(),
                cas_dirty: HashSet::new(),
                blocked_keys: HashMap::new(),
                blocked: HashMap::new(),
                stats: ServerStats::default(),
                lastsave: redsnap_engine::now_ms() / 1000,
                scripts: crate::scripting::Scripts::new(),
                functions: crate::scripting::Functions::default(),
                persist: None,
                tun: Tunables::default(),
                repl: Default::default(),
                calls: crate::calls::CallStats::default(),
                slowlog: Default::default(),
                latency: Default::default(),
                monitors: Vec::new(),
                refusal: None,
                shard_channels: HashMap::new(),
                tracking: Default::default(),
                cron_paused: false,
            }),
            busy: BusyState::default(),
            live: LiveConfig::default(),
            acl: Default::default(),
            nosave_shutdown: std::sync::atomic::AtomicBool::new(false),
            connections: std::sync::atomic::AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            shutdown: tx,
            shutdown_rx: parking_lot::Mutex::new(Some(rx)),
            log: Default::default(),
            run_id,
            pause: Default::default(),
            listeners: Default::default(),
            client_mem: Default::default(),
        })
    }

    /// Takes the server lock from async code without blocking a runtime worker while
    /// a long script holds it (that would stall every connection on the worker).
    pub async fn lock_async(&self) -> parking_lot::MutexGuard<'_, Inner> {
        loop {
            if let Some(g) = self.inner.try_lock_for(std::time::Duration::from_millis(2)) {
                return g;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
