//! The master side of replication, as Redis 7.0's: SYNC and PSYNC, the replication
//! stream, the backlog and partial resynchronization, REPLCONF, WAIT, ROLE and INFO
//! replication.
//!
//! **The stream** is one sequence of bytes shared by every replica, numbered from the
//! start of the replication history (`master_repl_offset` is the number of its last
//! byte): the writes in the form Redis 7.0 propagates them (`replicationFeedSlaves`),
//! a SELECT whenever the database changes (one selected database for the whole
//! stream, reset at each full synchronization so that it starts with a SELECT), one
//! multibulk per command rewritten as Redis rewrites it (relative expiries as
//! absolute ones, GETDEL as DEL, ...: `repl/stream.rs`), the writes of one command
//! (EXEC, a script, a write that lazily expired a key first) wrapped in MULTI/EXEC
//! when there are several (`propagatePendingCommands`), PUBLISH (propagated to
//! replicas only, not to the append log), a PING every `repl-ping-replica-period`
//! seconds and `REPLCONF GETACK *` when a WAIT blocks. It is built from the append
//! log's records (`Effects::log`): a command's records are fed when it returns
//! (`after_command`), records left by anything else (blocked clients served after a
//! command, active expiry, eviction) one by one before the next command runs and
//! before the records are handed to the log (`drain`).
//!
//! **The backlog** (`repl/backlog.rs`) keeps the last `repl-backlog-size` bytes. It
//! is created with the first replica (with a new replication id, as Redis does) and
//! freed `repl-backlog-ttl` seconds after the last replica left; while it exists,
//! every write leaves a record and is fed even with no replica attached, so that a
//! replica that reconnects with `PSYNC <replid> <offset>` gets `+CONTINUE` and the
//! bytes it missed. Without a backlog nothing is done per command (one branch).
//!
//! **A full synchronization** (`repl/fullsync.rs`) answers `+FULLRESYNC <replid>
//! <offset>` at once, takes the point-in-time copy of the dataset that BGSAVE takes
//! (O(databases) under the lock) and encodes and streams the RDB file on a thread of
//! its own, in `$<len>` or, for replicas with `capa eof`, `$EOF:` form. Meanwhile the
//! replica's share of the stream is buffered (counted against `client-output-buffer-
//! limit replica`) and sent after the payload (for the `$EOF:` form after the
//! replica's first `REPLCONF ACK`, as Redis does, so that the end mark is the last
//! thing it reads before loading). So the replica gets exactly the copy's point in
//! time and every write after it.
//!
//! **Replicas** answer nothing to their own commands (their replies would land in
//! the stream); `REPLCONF ACK <offset>` records how far each one got (ROLE, INFO,
//! WAIT: `repl/wait.rs`). INFO replication and ROLE are `repl/info.rs`.
//!
//! **The replica side** (REPLICAOF, the link to a master, READONLY/MASTERDOWN) is
//! `repl/replica.rs`. The replication id and offset are not kept across a restart:
//! a replica of a restarted redsnap gets a full resynchronization, and a restarted
//! replica asks its master for one.

mod backlog;
mod fullsync;
pub(crate) mod handoff;
mod info;
pub(crate) mod replica;
mod stream;
mod sync;
pub(crate) mod wait;

pub(crate) use info::{info_section, role};

use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, IdHasher, Inner, Shared};
use backlog::Backlog;
use bytes::Bytes;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Replicas attached to this server and the state of the stream.
#[derive(Debug)]
pub(crate) struct Replication {
    replicas: Vec<Replica>,
    /// How many records of `Effects::log` were fed already.
    fed: usize,
    /// Commands propagated to replicas only (PUBLISH), each with the length the
    /// record list had when it ran (its place among the records).
    extras: Vec<(usize, usize, Vec<Bytes>)>,
    /// The replication id (`master_replid`), and the previous one with the offset up
    /// to which it is valid (`master_replid2`, `second_repl_offset`).
    replid: String,
    replid2: String,
    second_offset: i64,
    /// `master_repl_offset`: the number of the stream's last byte.
    offset: u64,
    backlog: Option<Backlog>,
    /// The database the stream last SELECTed (None: the next write SELECTs).
    seldb: Option<usize>,
    last_ping: Instant,
    no_replicas_since: Instant,
    /// What connections announced with REPLCONF before SYNC/PSYNC.
    handshakes: HashMap<u64, Handshake, BuildHasherDefault<IdHasher>>,
    /// Clients blocked in WAIT.
    waiters: Vec<wait::Waiter>,
    /// Each client's offset right after its last command that fed the stream.
    woff: HashMap<u64, u64, BuildHasherDefault<IdHasher>>,
    /// A WAIT asked for acknowledgements while clients were paused.
    getack_pending: bool,
    /// Numbers the WAITs (their timeouts find them by it).
    wait_seq: u64,
    conf: Conf,
    /// INFO stats `sync_full`, `sync_partial_ok`, `sync_partial_err`.
    pub(crate) sync_full: u64,
    pub(crate) sync_partial_ok: u64,
    pub(crate) sync_partial_err: u64,
    /// The master this server replicates (REPLICAOF), if any (`repl/replica.rs`).
    pub(crate) link: Option<replica::Link>,
    /// Numbers the REPLICAOF calls: a link task of an older one stops.
    link_generation: u64,
    /// `replica-read-only`, `replica-serve-stale-data`.
    replica_conf: replica::ReplicaConf,
}

/// The replication parameters, read at startup and after each CONFIG SET.
#[derive(Debug, Clone, Default)]
struct Conf {
    backlog_size: usize,
    backlog_ttl: u64,
    timeout: Duration,
    diskless: bool,
    /// `repl-diskless-sync-delay` and `repl-diskless-sync-max-replicas`.
    sync_delay: Duration,
    sync_max_replicas: u64,
    ping_period: u64,
    /// `client-output-buffer-limit replica`: hard, soft, soft seconds.
    obuf: (u64, u64, u64),
    min_to_write: u64,
    max_lag: u64,
    rules: stream::Rules,
}

/// What a connection announced with REPLCONF.
#[derive(Debug, Clone, Default)]
struct Handshake {
    listening_port: i64,
    ip: Option<String>,
    eof: bool,
    psync2: bool,
    rdb_only: bool,
    /// `REPLCONF rdb-filter-only`: the file leaves out the keys, and the function
    /// libraries unless the filter names them.
    exclude_data: bool,
    exclude_functions: bool,
}

impl Handshake {
    fn filtered(&self) -> bool {
        self.exclude_data || self.exclude_functions
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for its transfer to start (`repl-diskless-sync-delay`); nothing of
    /// the stream is kept (its point in time is the transfer's start).
    WaitStart,
    /// The RDB file is being produced and sent; the stream is buffered.
    Transfer,
    /// `$EOF:` payload sent; the stream starts at the replica's first ACK.
    WaitAck,
    Online,
}

#[derive(Debug)]
struct Replica {
    id: u64,
    tx: UnboundedSender<ConnMsg>,
    /// The connection's queued output bytes (`ClientInfo::pending_out`).
    out: Arc<AtomicU64>,
    hs: Handshake,
    /// The peer address (`ip:port`) of the connection.
    addr: String,
    state: State,
    /// The stream produced while not online, sent once online.
    buffered: Vec<Bytes>,
    buffered_len: u64,
    ack_off: u64,
    ack_time: Instant,
    /// Attached with SYNC (Redis's CLIENT_PRE_PSYNC): sends no ACK.
    pre_psync: bool,
    /// Its RDB file goes in the `$EOF:` form.
    eof_form: bool,
    /// Since when the output is over the soft limit.
    soft_since: Option<Instant>,
    /// When it asked for its full synchronization.
    asked: Instant,
}

impl Replica {
    /// Its file is not sent yet (INFO `wait_bgsave`; WAIT and ROLE leave it out).
    fn syncing(&self) -> bool {
        matches!(self.state, State::WaitStart | State::Transfer)
    }

    /// The IP shown by INFO and ROLE: the announced one, else the peer's.
    fn ip(&self) -> String {
        if let Some(ip) = &self.hs.ip {
            return ip.clone();
        }
        let host = self
            .addr
            .rsplit_once(':')
            .map_or(self.addr.as_str(), |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    /// Queues stream bytes (sent now when online, buffered otherwise). Returns false
    /// when the replica must go: connection gone or output over its limits.
    fn feed(&mut self, data: &Bytes, conf: &Conf) -> bool {
        let used = match self.state {
            State::Online => {
                let n = data.len() as u64;
                let used = self.out.fetch_add(n, Ordering::Relaxed) + n;
                if self.tx.send(ConnMsg::Raw(data.clone())).is_err() {
                    return false;
                }
                used
            }
            State::WaitStart => return true,
            _ if self.hs.rdb_only => return true,
            _ => {
                self.buffered.push(data.clone());
                self.buffered_len += data.len() as u64;
                self.buffered_len
            }
        };
        self.within_limits(used, conf)
    }

    /// Redis's `checkClientOutputBufferLimits` for the replica class.
    fn within_limits(&mut self, used: u64, conf: &Conf) -> bool {
        let (hard, soft, secs) = conf.obuf;
        if hard > 0 && used > hard {
            tracing::warn!(
                client = self.id,
                used,
                "replica {} closed for overcoming of output buffer limits",
                self.addr
            );
            return false;
        }
        if soft > 0 && used > soft {
            let since = *self.soft_since.get_or_insert_with(Instant::now);
            if since.elapsed().as_secs() >= secs {
                tracing::warn!(
                    client = self.id,
                    used,
                    "replica {} closed for overcoming of output buffer soft limit",
                    self.addr
                );
                return false;
            }
        } else {
            self.soft_since = None;
        }
        true
    }

    /// Sends what was buffered and goes online.
    fn go_online(&mut self) -> bool {
        self.state = State::Online;
        self.ack_time = Instant::now();
        for b in std::mem::take(&mut self.buffered) {
            self.out.fetch_add(b.len() as u64, Ordering::Relaxed);
            if self.tx.send(ConnMsg::Raw(b)).is_err() {
                return false;
            }
        }
        self.buffered_len = 0;
        true
    }
}

fn random_id() -> String {
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rand::random::<u8>() as usize % 16]))
        .collect()
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replicas: Vec::new(),
            fed: 0,
            extras: Vec::new(),
            replid: random_id(),
            replid2: "0".repeat(40),
            second_offset: -1,
            offset: 0,
            backlog: None,
            seldb: None,
            last_ping: Instant::now(),
            no_replicas_since: Instant::now(),
            handshakes: HashMap::default(),
            waiters: Vec::new(),
            woff: HashMap::default(),
            getack_pending: false,
            wait_seq: 0,
            conf: Conf::default(),
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
            link: None,
            link_generation: 0,
            replica_conf: Default::default(),
        }
    }
}

impl Replication {
    /// Whether a connection is a replica (CLIENT LIST flag `S`, CLIENT KILL TYPE).
    pub(crate) fn is_replica(&self, id: u64) -> bool {
        self.replicas.iter().any(|r| r.id == id)
    }
}

/// Bytes the replication backlog holds (MEMORY STATS `replication.backlog`).
pub(crate) fn backlog_bytes(inner: &Inner) -> u64 {
    inner.repl.backlog.as_ref().map_or(0, |b| b.histlen())
}

/// Connected replicas and `master_repl_offset` (for /metrics).
pub(crate) fn replicas_and_offset(inner: &Inner) -> (usize, u64) {
    (inner.repl.replicas.len(), inner.repl.offset)
}

/// Reads the replication parameters (startup and CONFIG SET) and resizes the
/// backlog to `repl-backlog-size`.
pub(crate) fn apply_config(inner: &mut Inner) {
    let c = &inner.config;
    let class = c
        .str("client-output-buffer-limit")
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(4)
        .find(|w| w.len() == 4 && matches!(w[0], "slave" | "replica"))
        .map(|w| {
            let mem = |s: &str| crate::config::parse_memory(s).unwrap_or(0);
            (mem(w[1]), mem(w[2]), w[3].parse().unwrap_or(0))
        })
        .unwrap_or((0, 0, 0));
    let conf = Conf {
        backlog_size: c.u64("repl-backlog-size").min(usize::MAX as u64) as usize,
        backlog_ttl: c.u64("repl-backlog-ttl"),
        timeout: Duration::from_secs(c.u64("repl-timeout").max(1)),
        diskless: c.bool("repl-diskless-sync"),
        sync_delay: Duration::from_secs(c.u64("repl-diskless-sync-delay")),
        sync_max_replicas: c.u64("repl-diskless-sync-max-replicas"),
        ping_period: c.u64("repl-ping-replica-period").max(1),
        obuf: class,
        min_to_write: c.u64("min-replicas-to-write"),
        max_lag: c.u64("min-replicas-max-lag"),
        rules: stream::Rules {
            lazy_user_del: c.bool("lazyfree-lazy-user-del"),
        },
    };
    if let Some(b) = &mut inner.repl.backlog {
        b.resize(conf.backlog_size);
    }
    inner.repl.replica_conf = replica::ReplicaConf {
        read_only: c.bool("replica-read-only"),
        serve_stale: c.bool("replica-serve-stale-data"),
    };
    inner.repl.conf = conf;
}

/// Feeds the records left since the last feed, each on its own (before a command
/// runs: what blocked clients, expiry or eviction did).
pub(crate) fn feed_each(inner: &mut Inner) {
    if inner.repl.backlog.is_none() {
        return;
    }
    feed(inner, false);
}

/// Feeds the records a top-level command of client `id` left, as one unit: wrapped
/// in MULTI/EXEC when there are several, except for commands that may lazily expire
/// arbitrary keys (SCAN, RANDOMKEY: Redis's CMD_TOUCHES_ARBITRARY_KEYS), whose
/// deletions go out one by one. Remembers the offset for the client's WAIT.
pub(crate) fn after_command(inner: &mut Inner, id: u64, spec: &CommandSpec) {
    if inner.repl.backlog.is_none() {
        return;
    }
    let before = inner.repl.offset;
    feed(inner, !matches!(spec.name, "scan" | "randomkey"));
    if inner.repl.offset != before {
        let off = inner.repl.offset;
        inner.repl.woff.insert(id, off);
    }
}

/// Before the records are taken for the append log: feeds what is left and starts
/// counting from the empty list again.
pub(crate) fn drain(inner: &mut Inner) {
    feed_each(inner);
    inner.repl.fed = 0;
}

/// Whether writes must leave log records for the stream (kept on when the append
/// log is turned off while the backlog exists).
pub(crate) fn needs_records(inner: &Inner) -> bool {
    inner.repl.backlog.is_some()
}

/// PUBLISH is propagated to replicas (not to the append log), in its place among
/// the command's writes.
pub(crate) fn propagate_publish(inner: &mut Inner, db: usize, argv: &[Bytes]) {
    if inner.repl.backlog.is_none() {
        return;
    }
    let at = inner.store.effects.log.len();
    inner.repl.extras.push((at, db, argv.to_vec()));
}

/// A connection closed: it is no longer a replica, a waiter or a handshake.
pub(crate) fn client_gone(inner: &mut Inner, id: u64) {
    let r = &mut inner.repl;
    if r.backlog.is_none() && r.handshakes.is_empty() && r.waiters.is_empty() {
        return;
    }
    r.handshakes.remove(&id);
    r.woff.remove(&id);
    r.waiters.retain(|w| w.id != id);
    if let Some(i) = r.replicas.iter().position(|x| x.id == id) {
        let gone = r.replicas.remove(i);
        tracing::info!(client = id, "connection with replica {} lost", gone.addr);
        if r.replicas.is_empty() {
            r.no_replicas_since = Instant::now();
        }
    }
}

/// Redis's `checkGoodReplicasStatus` (with `min-replicas-to-write` and
/// `min-replicas-max-lag` set): enough online replicas acknowledged within the lag.
pub(crate) fn enough_good_replicas(inner: &Inner) -> bool {
    let r = &inner.repl;
    let good = r
        .replicas
        .iter()
        .filter(|x| x.state == State::Online && x.ack_time.elapsed().as_secs() <= r.conf.max_lag)
        .count() as u64;
    good >= r.conf.min_to_write
}

fn select_if_needed(repl: &mut Replication, out: &mut Vec<u8>, db: usize) {
    if repl.seldb != Some(db) {
        stream::encode_command(
            out,
            &[Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())],
        );
        repl.seldb = Some(db);
    }
}

fn feed(inner: &mut Inner, as_unit: bool) {
    let Inner { store, repl, .. } = inner;
    let log = &store.effects.log;
    let from = repl.fed.min(log.len());
    if from == log.len() && repl.extras.is_empty() {
        return;
    }
    if repl.link.is_some() {
        // A replica proxies its master's stream (`replica::add_offset`); its own
        // writes are not propagated (Redis's replicationFeedSlaves).
        repl.fed = log.len();
        repl.extras.clear();
        return;
    }
    let rules = repl.conf.rules;
    let mut extras = std::mem::take(&mut repl.extras).into_iter().peekable();
    let mut cmds: Vec<(usize, Vec<Bytes>)> = Vec::with_capacity(log.len() - from);
    for (i, r) in log.iter().enumerate().skip(from) {
        while let Some((_, db, argv)) = extras.next_if(|e| e.0 <= i) {
            cmds.push((db, argv));
        }
        cmds.push((r.db, stream::to_stream(r, rules)));
    }
    cmds.extend(extras.map(|(_, db, argv)| (db, argv)));
    repl.fed = log.len();
    let wrap = as_unit && cmds.len() > 1;
    let mut out = Vec::new();
    if wrap {
        select_if_needed(repl, &mut out, cmds[0].0);
        stream::encode_command(&mut out, &[Bytes::from_static(b"MULTI")]);
    }
    for (db, argv) in &cmds {
        select_if_needed(repl, &mut out, *db);
        stream::encode_command(&mut out, argv);
    }
    if wrap {
        stream::encode_command(&mut out, &[Bytes::from_static(b"EXEC")]);
    }
    propagate(inner, out);
}

/// Appends bytes to the stream: the offset, the backlog, every replica.
fn propagate(inner: &mut Inner, out: Vec<u8>) {
    // Without a backlog there is no stream (and no offset to move).
    if out.is_empty() || inner.repl.backlog.is_none() {
        return;
    }
    let repl = &mut inner.repl;
    let data = Bytes::from(out);
    repl.offset += data.len() as u64;
    if let Some(b) = &mut repl.backlog {
        b.push(&data);
    }
    let mut gone = Vec::new();
    for r in &mut repl.replicas {
        if !r.feed(&data, &repl.conf) {
            gone.push(r.id);
        }
    }
    for id in gone {
        drop_replica(inner, id);
    }
}

/// Closes a replica's connection and forgets it.
fn drop_replica(inner: &mut Inner, id: u64) {
    if let Some(c) = inner.clients.get(&id) {
        c.kill();
    }
    client_gone(inner, id);
}

/// One command in the stream outside of any client's command (PING, GETACK).
fn propagate_command(inner: &mut Inner, argv: &[&'static [u8]]) {
    let argv: Vec<Bytes> = argv.iter().map(|a| Bytes::from_static(a)).collect();
    let mut out = Vec::new();
    stream::encode_command(&mut out, &argv);
    propagate(inner, out);
}

/// Replication's share of the cron: PING to replicas every
/// `repl-ping-replica-period` seconds, a GETACK a pause held back, replicas that
/// stopped acknowledging (`repl-timeout`), and freeing the backlog
/// `repl-backlog-ttl` seconds after the last replica left.
pub(crate) fn cron(shared: &Arc<Shared>, inner: &mut Inner) {
    if inner.repl.backlog.is_none() {
        return;
    }
    sync::start_pending(shared, inner);
    let paused = shared.pause.kind() != 0;
    if inner.repl.getack_pending && !paused {
        inner.repl.getack_pending = false;
        wait::send_getack(inner);
    }
    let r = &mut inner.repl;
    // A replica's sub-replicas get the master's PINGs; it keeps its backlog.
    let master = r.link.is_none();
    if master && !r.replicas.is_empty() && r.last_ping.elapsed().as_secs() >= r.conf.ping_period {
        r.last_ping = Instant::now();
        propagate_command(inner, &[b"PING"]);
    }
    let r = &inner.repl;
    let stale: Vec<u64> = r
        .replicas
        .iter()
        .filter(|x| {
            x.state == State::Online && !x.pre_psync && x.ack_time.elapsed() > r.conf.timeout
        })
        .map(|x| x.id)
        .collect();
    for id in stale {
        tracing::warn!(
            client = id,
            "disconnecting timedout replica (streaming sync)"
        );
        drop_replica(inner, id);
    }
    let r = &mut inner.repl;
    if master
        && r.replicas.is_empty()
        && r.conf.backlog_ttl > 0
        && r.no_replicas_since.elapsed().as_secs() > r.conf.backlog_ttl
    {
        // As Redis: a new replication id (writes made now are not in the history a
        // former replica could claim), and nothing fed until the next replica.
        r.replid = random_id();
        r.replid2 = "0".repeat(40);
        r.second_offset = -1;
        r.backlog = None;
        r.seldb = None;
        r.woff.clear();
        inner.store.log_enabled = inner
            .persist
            .as_ref()
            .is_some_and(|p| p.durable.log().is_some());
        tracing::info!(
            "replication backlog freed after {} seconds without connected replicas",
            inner.repl.conf.backlog_ttl
        );
    }
}

/// SYNC, PSYNC, REPLCONF, WAIT and ROLE.
pub(crate) fn command(conn: &mut Conn, inner: &mut Inner, name: &str, argv: &[Bytes]) -> Step {
    match name {
        "replconf" => sync::replconf(conn, inner, argv),
        "wait" => wait::wait(conn, inner, argv),
        "role" => role(inner).into(),
        "replicaof" | "slaveof" => {
            let shared = conn.shared.clone();
            replica::replicaof(&shared, conn, inner, argv).into()
        }
        _ => {
            if inner
                .repl
                .link
                .as_ref()
                .is_some_and(|l| l.state != replica::LinkState::Connected)
            {
                return Reply::err("NOMASTERLINK Can't SYNC while not connected with my master")
                    .into();
            }
            if inner.repl.is_replica(conn.id) {
                // Redis ignores SYNC from a connection that is a replica already.
                return Step::Many(vec![]);
            }
            sync::sync(conn, inner, argv)
        }
    }
}
