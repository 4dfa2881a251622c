//! One client connection: reads requests, runs them under the server lock in batches
//! (one lock per pipeline read), writes replies, and handles the per-connection parts
//! of MULTI/EXEC, WATCH, pub/sub, blocking commands and authentication.

use crate::resp::{self, Limits, Parser};
use crate::state::{ClientInfo, ConnMsg, Inner, Shared, ShutdownRequest};
use bytes::{Bytes, BytesMut};
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{now_ms, Kind, Reply};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

mod batch;
use batch::BatchIo;

/// What running a command asks the connection loop to do next.
pub(crate) enum Step {
    Reply(Reply),
    /// Several replies in a row (SUBSCRIBE a b c answers once per channel).
    Many(Vec<Reply>),
    /// Wait for a key (blocking command); None = forever.
    Block(Option<Duration>, Reply),
    /// Reply (if any) then close the connection.
    Close(Option<Reply>),
    /// Sleep, then reply (DEBUG SLEEP).
    Sleep(Duration, Reply),
    /// Run an async server operation (SAVE, SHUTDOWN) outside the lock.
    Async(AsyncOp),
    /// CLIENT PAUSE holds this command: run it again once the pause ends.
    Postpone(Vec<Bytes>),
}

pub(crate) enum AsyncOp {
    Shutdown(ShutdownRequest),
    /// SAVE (or DEBUG RELOAD when the flag is set).
    Save(crate::persist::SaveJob, bool),
    /// MIGRATE's transfer (`commands::migrate`).
    Migrate(Box<crate::commands::migrate::MigrateJob>),
}

impl From<Reply> for Step {
    fn from(r: Reply) -> Step {
        Step::Reply(r)
    }
}

/// Per-connection state.
pub(crate) struct Conn {
    pub shared: Arc<Shared>,
    pub id: u64,
    pub db: usize,
    pub resp3: bool,
    pub authed: bool,
    /// The ACL user (the version current at `user_epoch`).
    pub(crate) user: Arc<crate::acl::User>,
    pub(crate) user_epoch: u64,
    /// The user name of a failed AUTH, for the ACL log (taken by the AUTH/HELLO
    /// handlers, which hold the server lock).
    pub(crate) auth_failed: Option<Bytes>,
    pub multi: Option<Vec<Vec<Bytes>>>,
    pub multi_err: bool,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    /// Shard channels (SSUBSCRIBE).
    pub shard_channels: HashSet<Bytes>,
    /// A command called by the script running on this connection was read-only
    /// (client tracking then remembers the script's keys, `tracking::after_call`).
    pub(crate) script_read: bool,
    pub name: Bytes,
    pub in_exec: bool,
    /// The clock of the script running on this connection: commands it calls see
    /// the time the script started, as in Redis.
    pub script_now: Option<u64>,
    pending_out: Arc<AtomicU64>,
    kill: Arc<tokio::sync::Notify>,
    /// The append-log token of this connection's last staged batch, until its
    /// replies have been written (0: none pending).
    pub(crate) pending_token: u64,
    /// When the current batch of pipelined commands started (their clients'
    /// last-activity time).
    batch_start: Instant,
    /// Changes to the shared state made while a script held the lock, applied at
    /// the next lock (`busy.rs`).
    pub(crate) deferred: Vec<crate::busy::Deferred>,
    /// QUIT answered during a busy script: close once the reply is written.
    pub(crate) closing: bool,
    /// When the client last sent something (for `timeout`).
    last_io: Instant,
    /// CLIENT REPLY OFF: no reply is written until CLIENT REPLY ON.
    pub(crate) reply_off: bool,
    /// CLIENT REPLY SKIP took effect: the current command's reply is not written.
    pub(crate) reply_skip: bool,
    /// CLIENT REPLY SKIP ran: the next command's reply is not written.
    pub(crate) reply_skip_next: bool,
    /// The last clock reading of the batch running (see `call`).
    clock: Instant,
    /// Wall-clock milliseconds at `batch_start` (one read per batch): a command's
    /// time is this plus the monotonic time since, from the reading `call` already
    /// takes (Redis's `updateCachedTimeWithUs` from `call()`'s own timer).
    batch_wall_ms: u64,
    /// The query buffer's figures (CLIENT LIST `qbuf`, resizing by the cron).
    pub(crate) qb: crate::querybuf::QueryBuf,
    /// A replica's full synchronization asked for the socket: lent once what is
    /// queued is written (`repl/handoff.rs`).
    lend: Option<crate::repl::handoff::Lend>,
}

pub(crate) fn ok() -> Reply {
    Reply::ok()
}

impl Conn {
    /// Encodes a reply unless CLIENT REPLY OFF/SKIP silences it. Pub/sub pushes
    /// (subscribe confirmations, messages) still go out, as Redis sets
    /// `CLIENT_PUSHING` for them, which lifts the silencing flags.
    pub(crate) fn emit(&self, out: &mut BytesMut, r: &Reply) {
        if (self.reply_off || self.reply_skip) && !matches!(r, Reply::Push(_)) {
            return;
        }
        encode_reply(out, r, self.resp3);
    }

    /// After each command's reply (Redis's `resetClient`): a SKIP silences the
    /// command after CLIENT REPLY SKIP only.
    pub(crate) fn command_done(&mut self) {
        self.reply_skip = std::mem::take(&mut self.reply_skip_next);
    }

    pub fn subscribed(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// Runs one request as Redis's `processCommand` does: lookup, arity, auth,
    /// transaction and pub/sub context checks, queueing inside MULTI, then `call`.
    /// A refused command is counted (`reject`).
    pub fn dispatch(&mut self, inner: &mut Inner, argv: Vec<Bytes>) -> Step {
        // `maxmemory-clients`, as Redis's processCommand: the biggest clients are
        // closed before a command runs (this one too, then without a reply).
        // A client evicted by another's growth runs nothing more. One relaxed load
        // when there is no limit.
        if self.shared.client_mem.limit() > 0 {
            if self.shared.client_mem.over() {
                crate::clientmem::evict(inner, &self.shared.client_mem, false);
            }
            if self.qb.stats.evicted() {
                return Step::Close(None);
            }
        }
        let Some(spec) = table::lookup(&argv[0]) else {
            return self.reject(inner, None, table::unknown_command(&argv), &argv);
        };
        let arity = table::check_arity(spec, &argv);
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.last_active = self.batch_start;
            c.last_cmd = arity.as_ref().map_or(spec.name, |s| s.name);
        }
        let sub = match arity {
            Ok(s) => s,
            Err(e) => return self.reject(inner, crate::calls::arity_target(spec, &argv), e, &argv),
        };
        if !std::ptr::eq(sub, spec) {
            // CLIENT LIST shows the subcommand (`cmd=client|list`).
            if let Some(c) = inner.clients.get_mut(&self.id) {
                c.last_cmd = sub.name;
            }
        }
        if let Err(e) = self.check_auth_and_multi(spec, sub) {
            return self.reject(inner, Some(sub), e, &argv);
        }
        // ACL: one atomic load and one flag test for an unrestricted user.
        if let Err(d) = self.acl_check(sub, &argv) {
            let ctx = if self.multi.is_some() {
                crate::acl::Context::Multi
            } else {
                crate::acl::Context::Toplevel
            };
            self.acl_denied(inner, d, ctx, sub, &argv);
            return self.reject(inner, Some(sub), d.error(sub), &argv);
        }
        if sub.is_write()
            || spec.name == "exec" && self.multi.as_ref().is_some_and(|q| !q.is_empty())
        {
            if let Some(r) = crate::persist::write_refusal(inner) {
                return self.reject(inner, Some(sub), r, &argv);
            }
        }
        // A replica: READONLY and MASTERDOWN (one branch on a master).
        if inner.repl.link.is_some() {
            if let Some(e) = crate::repl::replica::refusal(self, inner, spec, sub) {
                return self.reject(inner, Some(sub), e, &argv);
            }
        }
        // Inside MULTI every command but EXEC, DISCARD, QUIT and RESET is refused on
        // OOM (queueing takes memory), as in Redis's processCommand.
        if !crate::perform_evictions(inner)
            && (sub.has(flags::DENYOOM)
                || (spec.name == "exec" && self.multi_has_denyoom())
                || (self.multi.is_some()
                    && !matches!(spec.name, "exec" | "discard" | "quit" | "reset")))
        {
            let e = Reply::err("OOM command not allowed when used memory > 'maxmemory'.");
            return self.reject(inner, Some(sub), e, &argv);
        }
        // Keep the tracking table within `tracking-table-max-keys` (Redis does it
        // here too, before every command).
        if inner.tracking.clients != 0 {
            crate::tracking::limit_used_slots(inner, Some(self.id));
        }
        if !self.resp3
            && self.subscribed() > 0
            && !matches!(
                spec.name,
                "ping"
                    | "subscribe"
                    | "ssubscribe"
                    | "unsubscribe"
                    | "sunsubscribe"
                    | "psubscribe"
                    | "punsubscribe"
                    | "quit"
                    | "reset"
            )
        {
            let e = Reply::error(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                sub.name
            ));
            return self.reject(inner, Some(sub), e, &argv);
        }
        if let Some(e) = crate::commands::monitor::refusal(inner, self.id, sub) {
            return self.reject(inner, Some(sub), e, &argv);
        }
        let pause = self.shared.pause.kind();
        if pause != 0 && crate::commands::client::postponed(self, inner, spec, sub, &argv, pause) {
            crate::commands::client::set_postponed(inner, self.id, true);
            return Step::Postpone(argv);
        }
        if let Some(q) = &mut self.multi {
            if !matches!(
                spec.name,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            ) {
                if let Some(c) = inner.clients.get_mut(&self.id) {
                    c.multi += 1;
                    c.multi_mem += argv.iter().map(|a| a.len()).sum::<usize>();
                    self.qb.multi = c.multi_mem;
                }
                q.push(argv);
                return Reply::simple("QUEUED").into();
            }
        }
        // Redis's expireIfNeeded: while a pause holds writes, and on a replica, an
        // expired key is hidden, not deleted (nothing may be written or propagated).
        inner.store.expire_mode = if pause != 0 || inner.repl.link.is_some() {
            redsnap_engine::ExpireMode::Hide
        } else {
            redsnap_engine::ExpireMode::Delete
        };
        crate::repl::feed_each(inner);
        let step = self.call(inner, spec, sub, argv, false);
        crate::repl::after_command(inner, self.id, spec);
        self.after_command(inner);
        step
    }

    /// Redis's `rejectCommand`: the refusal is counted (INFO errorstats, and
    /// commandstats' rejected_calls of the command when found) and flags an open
    /// transaction; a refused EXEC discards the transaction (`execCommandAbort`).
    fn reject(
        &mut self,
        inner: &mut Inner,
        spec: Option<&'static CommandSpec>,
        e: Reply,
        argv: &[Bytes],
    ) -> Step {
        self.flag_multi();
        let e = match spec {
            Some(s) if s.name == "exec" => {
                self.multi = None;
                self.multi_err = false;
                self.unwatch(inner);
                if let Some(c) = inner.clients.get_mut(&self.id) {
                    c.multi = -1;
                }
                let Reply::Error(text) = &e else {
                    return e.into();
                };
                let mut abort = b"EXECABORT Transaction discarded because of: ".to_vec();
                abort.extend_from_slice(text);
                crate::commands::monitor::feed(inner, self.caller(false), s, argv);
                Reply::Error(Bytes::from(abort))
            }
            _ => e,
        };
        crate::calls::rejected(inner, spec, &e);
        e.into()
    }

    /// `processCommand`'s authentication and transaction checks (a refusal flags an
    /// open transaction). Shared by `dispatch` and the busy path (`busy.rs`).
    pub(crate) fn check_auth_and_multi(
        &mut self,
        spec: &CommandSpec,
        sub: &CommandSpec,
    ) -> Result<(), Reply> {
        if !self.authed && !spec.has(flags::NO_AUTH) {
            if !self.shared.live.requires_auth() {
                self.authed = true;
            } else {
                self.flag_multi();
                return Err(Reply::err("NOAUTH Authentication required."));
            }
        }
        if self.multi.is_some() && (spec.has(flags::NO_MULTI) || sub.has(flags::NO_MULTI)) {
            self.flag_multi();
            return Err(Reply::err("ERR Command not allowed inside a transaction"));
        }
        Ok(())
    }

    fn multi_has_denyoom(&self) -> bool {
        self.multi.as_ref().is_some_and(|q| {
            q.iter()
                .any(|a| table::lookup(&a[0]).is_some_and(|s| s.has(flags::DENYOOM)))
        })
    }

    pub(crate) fn flag_multi(&mut self) {
        if self.multi.is_some() {
            self.multi_err = true;
        }
    }

    /// Redis's `call()`: runs a command that passed the checks, at the top level,
    /// inside EXEC or from a script (`script`), and records it (`calls::record`: INFO
    /// commandstats, errorstats and latencystats, the latency monitor, the slowlog,
    /// MONITOR). `spec` is the command, `real` the subcommand run (or `spec`).
    ///
    /// Cost: one clock read per command. A command's time runs from the previous
    /// reading of this connection (the previous command's end, or the start of the
    /// batch), so it includes the checks `dispatch` made and, in a pipeline, the
    /// encoding of the previous reply; a command called by a script reads the clock
    /// when it starts too (the script's own work in between is not its time). DEBUG
    /// SLEEP's sleep (served after the lock is released) counts as its time.
    pub(crate) fn call(
        &mut self,
        inner: &mut Inner,
        spec: &'static CommandSpec,
        real: &'static CommandSpec,
        argv: Vec<Bytes>,
        script: bool,
    ) -> Step {
        let start = if script { Instant::now() } else { self.clock };
        inner.calls.boundary = inner.calls.total_error_replies;
        if !inner.monitors.is_empty() && crate::commands::monitor::feeds_before(real) {
            crate::commands::monitor::feed(inner, self.caller(script), real, &argv);
        }
        let t0 = inner.store.effects.touched.len();
        let step = self.execute(inner, spec, &argv);
        if inner.tracking.clients != 0 {
            if script {
                self.script_read |= real.has(flags::READONLY);
            } else {
                crate::tracking::after_call(self, inner, real, &argv, t0);
            }
        }
        let end = Instant::now();
        self.clock = end;
        let mut us = end.saturating_duration_since(start).as_micros() as u64;
        if let Step::Sleep(d, _) = &step {
            us += d.as_micros() as u64;
        }
        crate::calls::record(inner, self.caller(script), real, argv, us, &step);
        step
    }

    /// The time of the command running (ms since the epoch): the batch's wall clock
    /// plus the monotonic time from the batch start to the command's start (`clock`,
    /// the end of the previous command), so no clock is read for it.
    pub(crate) fn command_ms(&self) -> u64 {
        let since = self.clock.saturating_duration_since(self.batch_start);
        self.batch_wall_ms + since.as_millis() as u64
    }

    pub(crate) fn caller(&self, script: bool) -> crate::calls::Caller {
        crate::calls::Caller {
            id: self.id,
            db: self.db,
            script,
        }
    }

    /// Runs a command (see `call`): the engine's handler for keyspace commands, the
    /// server's (`commands/`) for the rest. Both come from the one command table.
    pub fn execute(
        &mut self,
        inner: &mut Inner,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Step {
        if spec.handler.is_some() {
            if matches!(spec.name, "flushdb" | "flushall" | "swapdb") {
                self.touch_watched_before_flush(inner, spec.name, argv);
                if spec.name != "swapdb" && flush_args_ok(argv) {
                    crate::tracking::on_flush(inner, self.id);
                }
            }
            if !self.user.unrestricted && matches!(spec.name, "sort" | "sort_ro") {
                if let Some(e) = self.sort_acl_refusal(spec, argv) {
                    return Step::Reply(e);
                }
            }
            let now = self.script_now.unwrap_or_else(|| self.command_ms());
            let r = inner.store.call(spec, self.db, now, argv, self.resp3);
            return Step::Reply(r);
        }
        match crate::commands::handler(spec) {
            Some(run) => run(self, inner, spec, argv),
            None => Reply::error(format!("ERR '{}' is not supported by redsnap", spec.name)).into(),
        }
    }

    /// After each top-level command: WATCH invalidation, blocked clients, the log.
    pub fn after_command(&mut self, inner: &mut Inner) {
        after_command_of(inner, Some(self.id));
    }
}

/// FLUSHDB/FLUSHALL's arguments are valid (the flush happens).
fn flush_args_ok(argv: &[Bytes]) -> bool {
    argv.len() == 1
        || argv.len() == 2
            && (argv[1].eq_ignore_ascii_case(b"async") || argv[1].eq_ignore_ascii_case(b"sync"))
}

/// Runs the follow-ups of a command: WATCH invalidation, serving blocked clients
/// (which may touch more keys), then hands log records to persistence.
pub(crate) fn after_command(inner: &mut Inner) {
    after_command_of(inner, None);
}

/// `after_command` for the command of client `current` (None: expiry, eviction).
/// The keys a client's command touched were invalidated for client tracking when
/// it returned (`Conn::call`); the rest (blocked clients served, expiry, eviction)
/// are here, and the BCAST messages of all of them go out at the end.
fn after_command_of(inner: &mut Inner, current: Option<u64>) {
    let mut first = true;
    for _ in 0..1000 {
        if inner.store.effects.touched.is_empty() && inner.store.effects.touched_dbs.is_empty() {
            break;
        }
        let mut touched = std::mem::take(&mut inner.store.effects.touched);
        let mut dbs = std::mem::take(&mut inner.store.effects.touched_dbs);
        if inner.tracking.clients != 0 && !(first && current.is_some()) {
            crate::tracking::invalidate_touched(inner, &touched);
        }
        first = false;
        crate::commands::transactions::mark_watchers(inner, &touched);
        crate::commands::blocking::serve_ready(inner, &touched, &dbs);
        // The buffers go back (emptied) unless the clients served touched more keys:
        // no allocation per write command.
        touched.clear();
        dbs.clear();
        if inner.store.effects.touched.is_empty() {
            inner.store.effects.touched = touched;
        }
        if inner.store.effects.touched_dbs.is_empty() {
            inner.store.effects.touched_dbs = dbs;
        }
    }
    if inner.tracking.clients != 0 {
        crate::tracking::broadcast(inner, current);
    }
    if !inner.store.effects.events.is_empty() {
        crate::commands::pubsub::publish_events(inner);
    }
    inner.store.effects.clear_touched();
}

/// Encodes a reply.
pub(crate) fn encode_reply(out: &mut BytesMut, r: &Reply, resp3: bool) {
    resp::encode(out, r, resp3);
}

/// Before a batch of pipelined commands runs: brings the keyspace paths to their
/// first keys into the cache at once (their misses overlap; see
/// `Db::prefetch`). Measured on EVALSHA GET+SET `-P 16`, 100k keys: see
/// ARCHITECTURE.md.
fn prefetch_batch(inner: &Inner, db: usize, pending: &VecDeque<Vec<Bytes>>) {
    let mut keys: [&[u8]; 32] = [&[]; 32];
    let mut n = 0;
    for argv in pending.iter().take(keys.len()) {
        if let Some(k) = argv.first().and_then(|name| first_key(name, argv)) {
            keys[n] = k;
            n += 1;
        }
    }
    if n > 1 {
        inner.store.dbs[db].prefetch(&keys[..n]);
    }
}

/// The first key a request names, if any: by the command table's key positions,
/// or the first of EVAL/EVALSHA's declared keys.
fn first_key<'a>(name: &[u8], argv: &'a [Bytes]) -> Option<&'a [u8]> {
    let spec = table::lookup(name)?;
    if spec.first_key > 0 {
        return argv.get(spec.first_key as usize).map(|k| &k[..]);
    }
    if spec.name.starts_with("eval") && argv.get(2).is_some_and(|n| n[..] != *b"0") {
        return argv.get(3).map(|k| &k[..]);
    }
    None
}

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    mut stream: S,
    addr: String,
    laddr: String,
    fd: i32,
) where
    S: AsyncRead + AsyncWrite + Unpin + crate::repl::handoff::PlainFd,
{
    let id = shared.next_client_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pending_out = Arc::new(AtomicU64::new(0));
    let kill = Arc::new(tokio::sync::Notify::new());
    let now = Instant::now();
    let qb = crate::querybuf::QueryBuf::new(crate::querybuf::IOBUF_LEN, shared.client_mem.clone());
    let info = ClientInfo {
        id,
        addr,
        laddr,
        name: Bytes::new(),
        fd,
        user: Bytes::from_static(b"default"),
        db: 0,
        created: now,
        last_active: now,
        last_cmd: "NULL",
        resp: 2,
        sub: 0,
        psub: 0,
        ssub: 0,
        multi: -1,
        multi_mem: 0,
        no_evict: false,
        monitor: false,
        postponed: false,
        qb: qb.stats.clone(),
        tx,
        pending_out: pending_out.clone(),
        kill: kill.clone(),
    };
    let authed = !shared.live.requires_auth();
    let mut conn = Conn::new(shared.clone(), id, authed, false, (pending_out, kill), qb);
    // Registered in the client table now, or at the first batch when a busy script
    // holds the lock: a new connection is served (BUSY, SCRIPT KILL, SHUTDOWN
    // NOSAVE) without waiting for the script.
    let deferred = match crate::busy::lock_unless_busy(&shared).await {
        Some(mut inner) => {
            inner.clients.insert(id, info);
            inner.stats.total_connections += 1;
            None
        }
        None => Some(crate::busy::Deferred::Register(Box::new(info))),
    };
    conn.deferred.extend(deferred);
    let result = conn.run(&mut stream, &mut rx).await;
    if let Err(e) = result {
        tracing::debug!(client = id, "connection closed: {e}");
    }
    let _ = stream.shutdown().await;
    // During a busy script the cleanup waits for the lock on a task of its own, so
    // that this connection's slot (maxclients) is released now.
    if let Some(mut inner) = crate::busy::lock_unless_busy(&shared).await {
        conn.cleanup(&mut inner);
        return;
    }
    tokio::spawn(async move {
        let mut inner = shared.lock_async().await;
        conn.cleanup(&mut inner);
    });
}

impl Conn {
    /// A connection with no socket of its own: the master's commands on a replica
    /// (`repl/replica.rs`), authenticated as the default user with its replies
    /// dropped by the caller.
    pub(crate) fn internal(shared: Arc<Shared>, id: u64) -> Conn {
        let qb = crate::querybuf::QueryBuf::new(0, shared.client_mem.clone());
        Conn::new(shared, id, true, true, Default::default(), qb)
    }

    /// A connection's state before its first command: database 0, RESP2, the
    /// default user (`authed` when no password is required), replies on unless
    /// `reply_off`; `out` is its count of queued output bytes and its kill flag,
    /// shared with its `ClientInfo`.
    fn new(
        shared: Arc<Shared>,
        id: u64,
        authed: bool,
        reply_off: bool,
        out: (Arc<AtomicU64>, Arc<tokio::sync::Notify>),
        qb: crate::querybuf::QueryBuf,
    ) -> Conn {
        let now = Instant::now();
        let (pending_out, kill) = out;
        Conn {
            user: shared.acl.default_user(),
            user_epoch: shared.acl.epoch(),
            shared,
            id,
            db: 0,
            resp3: false,
            authed,
            auth_failed: None,
            multi: None,
            multi_err: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            script_read: false,
            name: Bytes::new(),
            in_exec: false,
            script_now: None,
            pending_out,
            kill,
            pending_token: 0,
            batch_start: now,
            deferred: Vec::new(),
            closing: false,
            last_io: now,
            reply_off,
            reply_skip: false,
            reply_skip_next: false,
            clock: now,
            batch_wall_ms: now_ms(),
            qb,
            lend: None,
        }
    }

    /// Starts a batch of commands (the clock its commands' times are read from).
    pub(crate) fn begin_batch(&mut self) {
        self.batch_start = Instant::now();
        self.batch_wall_ms = now_ms();
        self.clock = self.batch_start;
    }
}

/// The parser's limits as the configuration says now (CONFIG SET acts on the next
/// read of every connection), and Redis 6.2's limits before authentication
/// (CVE-2021-32675: 10 arguments, 16 KB per bulk).
fn limits_now(live: &crate::state::LiveConfig, authed: bool) -> Limits {
    Limits {
        max_bulk_len: live.proto_max_bulk_len.load(Ordering::Relaxed),
        unauthenticated: !authed && live.requires_auth(),
        ..Limits::default()
    }
}

impl Conn {
    fn cleanup(&mut self, inner: &mut Inner) {
        self.unwatch(inner);
        crate::commands::monitor::stop(inner, self.id);
        crate::commands::blocking::unblock(inner, self.id);
        let chans: Vec<Bytes> = self.channels.iter().cloned().collect();
        for c in chans {
            self.remove_sub(inner, &c, false);
        }
        let pats: Vec<Bytes> = self.patterns.iter().cloned().collect();
        for p in pats {
            self.remove_sub(inner, &p, true);
        }
        let shard: Vec<Bytes> = self.shard_channels.iter().cloned().collect();
        for c in shard {
            self.remove_shard_sub(inner, &c);
        }
        crate::tracking::disable(inner, self.id);
        crate::repl::client_gone(inner, self.id);
        inner.clients.remove(&self.id);
    }

    async fn run<S>(
        &mut self,
        stream: &mut S,
        rx: &mut mpsc::UnboundedReceiver<ConnMsg>,
    ) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + crate::repl::handoff::PlainFd,
    {
        let mut rbuf = BytesMut::with_capacity(crate::querybuf::IOBUF_LEN);
        let mut wbuf = BytesMut::with_capacity(16 * 1024);
        let mut parser = Parser::new();
        let mut pending: VecDeque<Vec<Bytes>> = VecDeque::new();
        let mut proto_err: Option<String> = None;
        loop {
            // Run what has been parsed, one lock per run of commands.
            loop {
                if pending.is_empty() {
                    // Before authentication requests are parsed one at a time (their
                    // limits depend on whether the previous one was AUTH): parse the
                    // next one left in the buffer.
                    if self.authed
                        || rbuf.is_empty()
                        || proto_err.is_some()
                        || self.parse_requests(&mut parser, &mut rbuf, &mut pending, &mut proto_err)
                        || pending.is_empty()
                    {
                        break;
                    }
                }
                if self.busy_gate(&mut pending, &mut wbuf).await {
                    if self.closing {
                        self.write(stream, &wbuf).await?;
                        return Ok(());
                    }
                    continue;
                }
                let step = {
                    let shared = self.shared.clone();
                    let mut inner = shared.lock_async().await;
                    let batch = BatchIo {
                        rx: &mut *rx,
                        wbuf: &mut wbuf,
                        rbuf: &rbuf,
                        parser: &parser,
                    };
                    match self.run_batch(&mut inner, &mut pending, batch) {
                        Some(last) => last,
                        None => return Ok(()),
                    }
                };
                if !self
                    .after_batch(stream, rx, &mut rbuf, &mut wbuf, &mut pending, step)
                    .await?
                {
                    return Ok(());
                }
            }
            if let Some(e) = proto_err.take() {
                self.emit(&mut wbuf, &Reply::error(format!("ERR Protocol error: {e}")));
                self.write(stream, &wbuf).await?;
                return Ok(());
            }
            if !wbuf.is_empty() || self.pending_token > 0 {
                // Let the other ready connections run first: replies then leave in a
                // burst at the end of the scheduler's round, as Redis writes them before
                // going back to epoll (see ARCHITECTURE.md: the client is woken once
                // per burst instead of once per reply), and the first of them writes
                // the round's staged log batches with one write(2) (`Conn::write`).
                tokio::task::yield_now().await;
                self.write(stream, &wbuf).await?;
                wbuf.clear();
                if wbuf.capacity() > 1 << 20 {
                    wbuf = BytesMut::with_capacity(16 * 1024);
                    self.qb.reply_buf_replaced(wbuf.capacity());
                }
            }
            if let Some(lend) = self.lend.take() {
                // Written out above: the transfer thread writes until it is done.
                crate::repl::handoff::lend(&*stream, lend, &self.kill).await?;
            }
            // `timeout`: read when the wait starts and again when CONFIG SET
            // changes it (`ConnMsg::TimeoutChanged`: it acts on idle clients at
            // once). Not a watch of the configuration: polling one was ~350
            // instructions per command at -P 1 (see ARCHITECTURE.md).
            let bulk = parser.bulk_missing(&rbuf);
            if self.qb.before_read(&mut rbuf, bulk, parser.pending_bytes())
                && self.evict_clients().await
            {
                return Ok(());
            }
            let idle = self.shared.live.timeout.load(Ordering::Acquire);
            let subscribed = self.subscribed() > 0;
            let idle_since = self.last_io;
            let idle_sleep = async move {
                if idle > 0 && !subscribed {
                    tokio::time::sleep_until((idle_since + Duration::from_secs(idle)).into()).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = idle_sleep => {
                    tracing::debug!(client = self.id, "closing idle client (timeout {idle}s)");
                    return Ok(());
                }
                n = stream.read_buf(&mut rbuf) => {
                    let n = n?;
                    self.last_io = Instant::now();
                    if n == 0 {
                        if parser.in_progress() || !rbuf.is_empty() {
                            tracing::debug!(client = self.id, "client closed the connection in the middle of a command");
                        }
                        return Ok(());
                    }
                    if self.parse_requests(&mut parser, &mut rbuf, &mut pending, &mut proto_err) {
                        return Ok(());
                    }
                    if rbuf.is_empty() && rbuf.capacity() > 1 << 20 {
                        rbuf = BytesMut::with_capacity(crate::querybuf::IOBUF_LEN);
                        self.qb.replaced(&rbuf);
                    }
                    if self.qb.after_read(n, &rbuf, parser.pending_bytes())
                        && self.evict_clients().await
                    {
                        return Ok(());
                    }
                }
                m = rx.recv() => {
                    match m {
                        Some(ConnMsg::Push(r)) => {
                            self.push_barrier().await;
                            self.encode_push(&mut wbuf, &r);
                        }
                        Some(ConnMsg::Kill) | None => return Ok(()),
                        Some(ConnMsg::Unblocked(_)) => {}
                        Some(ConnMsg::Raw(b)) => {
                            self.took_raw(&b);
                            wbuf.extend_from_slice(&b);
                        }
                        Some(ConnMsg::ResizeQueryBuf(target)) => {
                            self.qb.resize(&mut rbuf, parser.pending_bytes(), target);
                        }
                        Some(ConnMsg::ResizeReplyBuf(target)) => {
                            crate::querybuf::resize_reply(&mut self.qb, &mut wbuf, target);
                        }
                        Some(ConnMsg::Lend(l)) => self.lend = Some(l),
                        // The loop reads `timeout` again before the next wait.
                        Some(ConnMsg::TimeoutChanged) => {}
                    }
                }
            }
        }
    }

    /// The bookkeeping Redis counts in a client's memory: its pub/sub
    /// subscriptions and watched keys (`clientmem::overhead`).
    fn mem_overhead(&self, inner: &Inner) -> usize {
        let watched = if inner.watches.is_empty() {
            0
        } else {
            inner.watches.get(&self.id).map_or(0, Vec::len)
        };
        crate::clientmem::overhead(self.channels.len(), self.patterns.len(), watched)
    }

    /// The clients' memory reached `maxmemory-clients`: closes the biggest clients
    /// (`clientmem::evict`). True when this one was among them.
    async fn evict_clients(&mut self) -> bool {
        let shared = self.shared.clone();
        let mut inner = shared.lock_async().await;
        self.qb.commit();
        crate::clientmem::evict(&mut inner, &shared.client_mem, false);
        self.qb.stats.evicted()
    }

    /// Releases the share of the output count (`pending_out`) of raw bytes (a
    /// replica's RDB file and stream, counted by `repl.rs` when queued).
    fn took_raw(&self, b: &Bytes) {
        let n = b.len() as u64;
        let _ = self
            .pending_out
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Encodes a pub/sub message and releases its share of the output limit.
    fn encode_push(&self, wbuf: &mut BytesMut, r: &Reply) {
        let before = wbuf.len();
        encode_reply(wbuf, r, self.resp3);
        let sz = (wbuf.len() - before) as u64;
        let _ = self
            .pending_out
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(sz.max(1)))
            });
    }

    /// After a command of a subscribed client, under the lock: the messages already
    /// published to it (by this command itself, e.g. a keyspace event of its own
    /// write or a PUBLISH to a channel it listens to, or by earlier commands of
    /// others) go out before the command's reply, as Redis writes them into the
    /// client's buffer when they are published. Their publishers' batches are
    /// staged, so `Conn::write` covers them as it covers the reply. Returns true
    /// when the connection was killed meanwhile.
    fn take_pushes(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<ConnMsg>,
        wbuf: &mut BytesMut,
    ) -> bool {
        loop {
            match rx.try_recv() {
                Ok(ConnMsg::Push(r)) => self.encode_push(wbuf, &r),
                Ok(ConnMsg::Unblocked(_)) => {}
                Ok(ConnMsg::Raw(b)) => {
                    self.took_raw(&b);
                    wbuf.extend_from_slice(&b);
                }
                // The cron asks again at its next pass.
                Ok(ConnMsg::ResizeQueryBuf(_) | ConnMsg::ResizeReplyBuf(_)) => {}
                Ok(ConnMsg::TimeoutChanged) => {}
                Ok(ConnMsg::Lend(l)) => self.lend = Some(l),
                Ok(ConnMsg::Kill) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Takes the complete requests out of `rbuf` (one only before authentication).
    /// Returns true when the client must be closed (query buffer limit).
    fn parse_requests(
        &mut self,
        parser: &mut Parser,
        rbuf: &mut BytesMut,
        pending: &mut VecDeque<Vec<Bytes>>,
        proto_err: &mut Option<String>,
    ) -> bool {
        let live = &self.shared.live;
        let limits = limits_now(live, self.authed);
        loop {
            match parser.next(rbuf, &limits) {
                Ok(Some(argv)) => {
                    if !argv.is_empty() {
                        pending.push_back(argv);
                        if !self.authed {
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(client = self.id, "protocol error: {}", e.0);
                    *proto_err = Some(e.0);
                    break;
                }
            }
        }
        let query_limit = live.query_buffer_limit.load(Ordering::Relaxed) as usize;
        let held = rbuf.len() + parser.pending_bytes();
        if query_limit > 0 && held > query_limit {
            tracing::warn!(
                client = self.id,
                "closing client that reached max query buffer length ({held} bytes)"
            );
            return true;
        }
        false
    }

    /// Before a pub/sub message is written under `appendfsync always`: the batch that
    /// published it (a script or MULTI may also have written) stages its log records
    /// when it releases the server lock; taking the lock once waits for that, so the
    /// fsync wait in [`Conn::write`] covers the writes the message may reveal.
    async fn push_barrier(&self) {
        if self.shared.log.get().is_some_and(|l| l.waits_for_fsync()) {
            drop(self.shared.lock_async().await);
        }
    }

    /// Writes replies; gives up when the connection is killed meanwhile (a client
    /// that never reads must not pin its connection and buffers forever).
    async fn write<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        buf: &[u8],
    ) -> std::io::Result<()> {
        if let Some(log) = self.shared.log.get() {
            let own = std::mem::take(&mut self.pending_token);
            // Under `appendfsync always` (not paused for a snapshot), any reply may show
            // the effects of the batches that ran before it, this connection's or
            // others': it leaves only once they are fsynced (Redis fsyncs in
            // beforeSleep before writing the replies of the round).
            let always = log.waits_for_fsync();
            // No reply leaves before the log records of every batch that ran before it
            // are in the kernel (this connection's, and those of other connections,
            // whose effects a reply could show): the first writer of a round writes all
            // the staged batches with one write(2); later ones find nothing staged.
            let written = match log.write_staged() {
                Ok(written) => written,
                Err(e) if own > log.written_token() => {
                    // This connection's batch is not logged: nothing of it may be
                    // acknowledged. Writes are refused (MISCONF) until the log or a
                    // snapshot succeeds. (Other replies still leave, as after a failed
                    // fsync below: the server stays usable for reads.)
                    tracing::error!(
                        client = self.id,
                        "closing client after append log failure: {e}"
                    );
                    let msg = format!("MISCONF Errors writing to the AOF file: {e}");
                    if let Some(p) = self.shared.lock_async().await.persist.as_mut() {
                        p.durable.note_write_error(msg);
                    }
                    return Err(std::io::Error::other(e.to_string()));
                }
                // Other connections' batches failed; this one's was written before.
                Err(_) => log.written_token(),
            };
            // Group commit: one fsync completes every connection waiting for it. A
            // batch that saw only durable data waits for nothing.
            if always && log.durable_token() < written {
                if let Err(e) = log.durable(written).await {
                    // The fsync failed: what it covered will never be known durable.
                    // A client whose own write it held is disconnected (never
                    // acknowledged); writes are refused from now on (MISCONF, see
                    // `persist::write_refusal`). Other replies still leave: the server
                    // stays usable for reads (Redis exits instead).
                    if own > log.durable_token() {
                        tracing::error!(
                            client = self.id,
                            "append log fsync failed, closing the client: {e}"
                        );
                        return Err(std::io::Error::other(e.to_string()));
                    }
                }
            }
        }
        // Biased: a write that completes at once goes out even when the client was
        // just killed (CLIENT KILL SKIPME NO answers its own killer, then closes, as
        // in Redis); a write that blocks is still abandoned when the kill comes.
        tokio::select! {
            biased;
            r = stream.write_all(buf) => r,
            _ = self.kill.notified() => Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client killed")),
        }
    }

    /// Waits for the end of a CLIENT PAUSE that holds this connection's next command
    /// (false: the client was killed meanwhile). Pub/sub messages are delivered.
    async fn wait_unpaused<S>(
        &mut self,
        stream: &mut S,
        rx: &mut mpsc::UnboundedReceiver<ConnMsg>,
    ) -> std::io::Result<bool>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let shared = self.shared.clone();
        let unpaused = shared.pause.wait();
        tokio::pin!(unpaused);
        let mut wbuf = BytesMut::new();
        loop {
            tokio::select! {
                _ = &mut unpaused => return Ok(true),
                _ = self.kill.notified() => return Ok(false),
                m = rx.recv() => match m {
                    Some(ConnMsg::Kill) | None => return Ok(false),
                    Some(ConnMsg::Push(r)) => {
                        self.push_barrier().await;
                        encode_reply(&mut wbuf, &r, self.resp3);
                        self.write(stream, &wbuf).await?;
                        wbuf.clear();
                    }
                    Some(ConnMsg::Raw(b)) => {
                        self.took_raw(&b);
                        self.write(stream, &b).await?;
                    }
                    Some(ConnMsg::Unblocked(_))
                    | Some(ConnMsg::ResizeQueryBuf(_))
                    | Some(ConnMsg::ResizeReplyBuf(_))
                    | Some(ConnMsg::TimeoutChanged) => {}
                    Some(ConnMsg::Lend(l)) => self.lend = Some(l),
                },
            }
        }
    }

    /// Waits until a blocking command is served, times out, or the client goes away
    /// (None). Bytes that arrive meanwhile stay buffered for later.
    async fn wait_unblocked<S>(
        &mut self,
        stream: &mut S,
        rx: &mut mpsc::UnboundedReceiver<ConnMsg>,
        rbuf: &mut BytesMut,
        timeout: Option<Duration>,
        timeout_reply: Reply,
    ) -> std::io::Result<Option<Reply>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut wbuf = BytesMut::new();
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = rx.recv() => match m {
                    Some(ConnMsg::Unblocked(r)) => {
                        // The pop ran in another connection's batch: once its lock is
                        // released, that batch is staged; the reply waits for it.
                        if let Some(log) = self.shared.log.get() {
                            drop(self.shared.lock_async().await);
                            self.pending_token = log.staged_token();
                        }
                        return Ok(Some(r));
                    }
                    Some(ConnMsg::Push(r)) => {
                        self.push_barrier().await;
                        encode_reply(&mut wbuf, &r, self.resp3);
                        self.write(stream, &wbuf).await?;
                        wbuf.clear();
                    }
                    // A replica does not block; its stream is not for this wait.
                    Some(ConnMsg::Raw(b)) => self.took_raw(&b),
                    Some(ConnMsg::Kill) | None => {
                        let mut inner = self.shared.lock_async().await;
                        crate::commands::blocking::unblock(&mut inner, self.id);
                        return Ok(None);
                    }
                    Some(ConnMsg::ResizeQueryBuf(_))
                    | Some(ConnMsg::ResizeReplyBuf(_))
                    | Some(ConnMsg::TimeoutChanged) => {}
                    Some(ConnMsg::Lend(l)) => self.lend = Some(l),
                },
                _ = sleep => {
                    let mut inner = self.shared.lock_async().await;
                    crate::commands::blocking::unblock(&mut inner, self.id);
                    drop(inner);
                    // The reply may have been sent just before the timeout fired.
                    if let Ok(ConnMsg::Unblocked(r)) = rx.try_recv() {
                        return Ok(Some(r));
                    }
                    return Ok(Some(timeout_reply));
                }
                n = stream.read_buf(rbuf) => {
                    if n? == 0 {
                        let mut inner = self.shared.lock_async().await;
                        crate::commands::blocking::unblock(&mut inner, self.id);
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Whether a key currently holds a value of the kind a blocked client waits for.
pub(crate) fn key_ready(inner: &Inner, db: usize, key: &Bytes, zset: bool) -> bool {
    let now = now_ms();
    match inner.store.dbs[db].get(key) {
        Some(e) if !e.is_expired(now) => {
            e.value().kind() == if zset { Kind::ZSet } else { Kind::List }
        }
        _ => false,
    }
}
