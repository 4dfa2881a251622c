//! The replica side of replication, as Redis 7.0's (`replicationSetMaster`,
//! `replicationUnsetMaster`, `connectWithMaster`/`syncWithMaster`,
//! `readSyncBulkPayload`, `replicationCron`): REPLICAOF / SLAVEOF, the `replicaof`
//! directive, the link to the master and the stream it sends.
//!
//! **The link** is one tokio task per `REPLICAOF host port` (`run`), numbered by a
//! generation: a later REPLICAOF (or NO ONE) makes it stop at its next look at the
//! state. It connects (plain TCP), sends PING, AUTH (`masterauth`, `masteruser`),
//! `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`, then `PSYNC <replid>
//! <offset+1>` with the history it has (Redis's cached master: its own id and offset
//! after a switch from master, the master's after a lost link), or `PSYNC ? -1` when
//! it has none. `+FULLRESYNC`: the RDB payload (`$<len>` or `$EOF:<mark>`) is parsed
//! as it arrives, on a blocking thread fed through a channel, into a fresh keyspace
//! off the lock (the reader `serve --import` and `redsnap restore` use; the file is
//! never held whole); under the lock the dataset is flushed (a
//! FLUSHALL run as the master, so WATCH, client tracking and the append log see it)
//! and replaced, the function libraries too, and a snapshot is started so that a
//! restart keeps it. `+CONTINUE`: the stream goes on from the offset. Every second
//! (and on `REPLCONF GETACK`) the replica sends `REPLCONF ACK <offset>`; a link
//! silent for `repl-timeout` is dropped, and a lost link is tried again every second.
//!
//! **The stream** is read and split into commands; each runs as the master client (a
//! `Conn` of its own: no reply sent, no READONLY/MASTERDOWN/ACL/OOM check, MULTI
//! queued as Redis does for its master client), its bytes counted into the offset
//! (`master_repl_offset`) once it ran. Sub-replicas (chained replication) get the
//! master's bytes as they are, as Redis proxies them
//! (`replicationFeedStreamFromMasterStream`), so offsets and the replication id
//! agree along the chain; the replica's own writes are not propagated.
//!
//! **Expiry**: the cron does not expire keys actively on a replica (the master's DEL
//! does). A read of a logically expired key still deletes it locally (the engine's
//! lazy expiry, which Redis's replicas skip); the reply is the same (nil), and the
//! master's DEL that follows is a no-op.

use super::{drop_replica, random_id, Backlog};
use crate::conn::Conn;
use crate::state::{ClientInfo, ConnMsg, Inner, Shared};
use bytes::{Buf, Bytes, BytesMut};
use redsnap_engine::table;
use redsnap_engine::Reply;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

/// Redis's `repl_state`, as ROLE names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Must connect (REPL_STATE_CONNECT).
    Connect,
    /// Connecting and handshaking (REPL_STATE_CONNECTING .. RECEIVE_PSYNC_REPLY).
    Connecting,
    /// Receiving the RDB payload (REPL_STATE_TRANSFER).
    Sync,
    Connected,
}

impl LinkState {
    fn name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// The master this server replicates (`server.masterhost`).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) state: LinkState,
    generation: u64,
    /// The master connection's client id once synchronized (CLIENT LIST, CLIENT
    /// KILL TYPE master).
    pub(crate) client: Option<u64>,
    /// Whether a PSYNC may continue our history (false: `PSYNC ? -1`).
    has_history: bool,
    last_io: Instant,
    down_since: Instant,
    /// The payload being received: its size (-1 for `$EOF:`) and the bytes read.
    sync_size: i64,
    sync_read: u64,
    sync_started: Instant,
    /// The database the master's stream last selected: a partial resynchronization
    /// continues in it (Redis keeps it in its cached master client).
    db: usize,
}

/// The settings a replica checks per command (read by `apply_config`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplicaConf {
    pub(crate) read_only: bool,
    pub(crate) serve_stale: bool,
}

/// Whether `id` is the master's connection.
pub(crate) fn is_master_client(inner: &Inner, id: u64) -> bool {
    inner
        .repl
        .link
        .as_ref()
        .is_some_and(|l| l.client == Some(id))
}

/// Redis's processCommand checks for a replica: READONLY for writes of ordinary
/// clients while `replica-read-only`, MASTERDOWN for commands without the `stale`
/// flag while the link is down and `replica-serve-stale-data` is no. EXEC counts
/// as a write when a queued command writes, and as not stale when one is not.
/// Called only on a replica (`inner.repl.link` is set).
pub(crate) fn refusal(
    conn: &Conn,
    inner: &Inner,
    spec: &table::CommandSpec,
    sub: &table::CommandSpec,
) -> Option<Reply> {
    let link = inner.repl.link.as_ref()?;
    if link.client == Some(conn.id) {
        return None;
    }
    let queued = |f: &dyn Fn(&table::CommandSpec) -> bool| {
        spec.name == "exec"
            && conn.multi.as_ref().is_some_and(|q| {
                q.iter().any(|a| {
                    table::lookup(&a[0]).is_some_and(|s| {
                        let s = table::check_arity(s, a).unwrap_or(s);
                        f(s)
                    })
                })
            })
    };
    let rc = inner.repl.replica_conf;
    if rc.read_only && (sub.is_write() || queued(&|s| s.is_write())) {
        return Some(Reply::err(
            "READONLY You can't write against a read only replica.",
        ));
    }
    if link.state != LinkState::Connected
        && !rc.serve_stale
        && (!sub.has(table::flags::STALE) || queued(&|s| !s.has(table::flags::STALE)))
    {
        return Some(Reply::err(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ));
    }
    None
}

/// REPLICAOF / SLAVEOF (Redis's `replicaofCommand`).
pub(crate) fn replicaof(
    shared: &Arc<Shared>,
    conn: &Conn,
    inner: &mut Inner,
    argv: &[Bytes],
) -> Reply {
    if argv[1].eq_ignore_ascii_case(b"no") && argv[2].eq_ignore_ascii_case(b"one") {
        if inner.repl.link.is_some() {
            unset_master(inner);
            tracing::info!(client = conn.id, "MASTER MODE enabled (user request)");
        }
        return Reply::ok();
    }
    if inner.repl.is_replica(conn.id) {
        return Reply::err("ERR Command is not valid when client is a replica.");
    }
    let port = match redsnap_engine::num::parse_i64(&argv[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Reply::err("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    if let Some(l) = &inner.repl.link {
        if l.host.eq_ignore_ascii_case(&host) && l.port == port {
            tracing::info!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
            return Reply::simple("OK Already connected to specified master");
        }
    }
    set_master(shared, inner, host, port, true);
    Reply::ok()
}

/// The `replicaof` directive at startup.
pub(crate) fn start_from_config(shared: &Arc<Shared>, inner: &mut Inner) {
    let v = inner.config.str("replicaof");
    let Some((host, port)) = v.rsplit_once(' ') else {
        return;
    };
    let Ok(port) = port.parse::<u16>() else {
        return;
    };
    set_master(shared, inner, host.to_string(), port, false);
}

/// Redis's `replicationSetMaster`: drops the current master link, fails blocked
/// clients with UNBLOCKED, and starts a link to `host:port`. `from_command`: a
/// server that was a master PSYNCs with its own history (Redis's
/// `replicationCacheMasterUsingMyself`).
fn set_master(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    host: String,
    port: u16,
    from_command: bool,
) {
    let was_master = inner.repl.link.is_none();
    drop_master_client(inner);
    disconnect_blocked(inner);
    inner.repl.link_generation += 1;
    let generation = inner.repl.link_generation;
    let has_history = match &inner.repl.link {
        Some(l) => l.has_history,
        None => from_command && was_master,
    };
    tracing::info!("Connecting to MASTER {host}:{port}");
    let _ = inner
        .config
        .set("replicaof", &[host.clone(), port.to_string()]);
    inner.repl.link = Some(Link {
        host,
        port,
        state: LinkState::Connect,
        generation,
        client: None,
        has_history,
        last_io: Instant::now(),
        down_since: Instant::now(),
        sync_size: 0,
        sync_read: 0,
        sync_started: Instant::now(),
        db: 0,
    });
    tokio::spawn(run(shared.clone(), generation));
}

/// Redis's `replicationUnsetMaster`: the link goes, the replication id shifts (the
/// master's history is kept as `replid2` up to our offset), sub-replicas are
/// disconnected (they continue with PSYNC), the next stream starts with SELECT.
fn unset_master(inner: &mut Inner) {
    drop_master_client(inner);
    inner.repl.link = None;
    inner.repl.link_generation += 1;
    let _ = inner.config.set("replicaof", &[String::new()]);
    let r = &mut inner.repl;
    r.replid2 = std::mem::replace(&mut r.replid, random_id());
    r.second_offset = r.offset as i64 + 1;
    tracing::info!(
        "setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
        r.replid2,
        r.second_offset,
        r.replid
    );
    let ids: Vec<u64> = r.replicas.iter().map(|x| x.id).collect();
    for id in ids {
        drop_replica(inner, id);
    }
    let r = &mut inner.repl;
    r.seldb = None;
    r.no_replicas_since = Instant::now();
    r.fed = inner.store.effects.log.len();
}

fn drop_master_client(inner: &mut Inner) {
    let Some(id) = inner.repl.link.as_mut().and_then(|l| l.client.take()) else {
        return;
    };
    if let Some(c) = inner.clients.get(&id) {
        c.kill();
    }
}

/// Redis's `disconnectAllBlockedClients`: each blocked client gets UNBLOCKED and
/// is closed after the reply.
fn disconnect_blocked(inner: &mut Inner) {
    let ids: Vec<u64> = inner.blocked.keys().copied().collect();
    let e = Reply::err(
        "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
    );
    for id in ids {
        crate::commands::blocking::end_unserved(inner, id, &e);
        if let Some(c) = inner.clients.get(&id) {
            let _ = c.tx.send(ConnMsg::Unblocked(e.clone()));
            let _ = c.tx.send(ConnMsg::Kill);
        }
    }
    // Clients in WAIT too (Redis's BLOCKED_WAIT).
    let waiting: Vec<u64> = inner.repl.waiters.iter().map(|w| w.id).collect();
    for id in waiting {
        super::wait::unblock(inner, id, Some(e.clone()));
        if let Some(c) = inner.clients.get(&id) {
            let _ = c.tx.send(ConnMsg::Kill);
        }
    }
}

/// INFO replication's replica fields (after `role:slave`).
pub(crate) fn info_fields(inner: &Inner, s: &mut String) {
    use std::fmt::Write;
    let Some(l) = &inner.repl.link else {
        return;
    };
    let up = l.state == LinkState::Connected;
    let last_io = if l.state == LinkState::Connected || l.state == LinkState::Sync {
        l.last_io.elapsed().as_secs() as i64
    } else {
        -1
    };
    let _ = write!(
        s,
        "master_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{last_io}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
        l.host,
        l.port,
        if up { "up" } else { "down" },
        u8::from(l.state == LinkState::Sync),
        inner.repl.offset,
        inner.repl.offset,
    );
    if l.state == LinkState::Sync {
        let _ = write!(
            s,
            "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
            l.sync_size,
            l.sync_read,
            l.sync_size - l.sync_read as i64,
            if l.sync_size > 0 { l.sync_read as f64 * 100.0 / l.sync_size as f64 } else { 0.0 },
            l.last_io.elapsed().as_secs(),
        );
    }
    if !up {
        let _ = write!(
            s,
            "master_link_down_since_seconds:{}\r\n",
            l.down_since.elapsed().as_secs()
        );
    }
    let c = &inner.config;
    let _ = write!(
        s,
        "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
        c.u64("replica-priority"),
        u8::from(inner.repl.replica_conf.read_only),
        u8::from(c.bool("replica-announced")),
    );
}

/// ROLE on a replica: `["slave", host, port, state, offset]`.
pub(crate) fn role(inner: &Inner) -> Option<Reply> {
    let l = inner.repl.link.as_ref()?;
    let offset = if l.state == LinkState::Connected {
        inner.repl.offset as i64
    } else {
        -1
    };
    Some(Reply::Array(vec![
        Reply::bulk_str("slave"),
        Reply::bulk_str(&l.host),
        Reply::Int(l.port as i64),
        Reply::bulk_str(l.state.name()),
        Reply::Int(offset),
    ]))
}

/// Runs `f` on the link if it is still this task's generation.
fn with_link<T>(inner: &mut Inner, generation: u64, f: impl FnOnce(&mut Link) -> T) -> Option<T> {
    match &mut inner.repl.link {
        Some(l) if l.generation == generation => Some(f(l)),
        _ => None,
    }
}

/// The link task: connects and follows the master until REPLICAOF changes;
/// retries every second (Redis's `replicationCron`).
async fn run(shared: Arc<Shared>, generation: u64) {
    loop {
        let target = {
            let mut inner = shared.lock_async().await;
            with_link(&mut inner, generation, |l| {
                l.state = LinkState::Connecting;
                (l.host.clone(), l.port)
            })
        };
        let Some((host, port)) = target else {
            return;
        };
        match session(&shared, generation, &host, port).await {
            Ok(()) => {}
            Err(e) => tracing::warn!("replication link with MASTER {host}:{port}: {e}"),
        }
        {
            let mut inner = shared.lock_async().await;
            let gone = with_link(&mut inner, generation, |l| {
                if l.state == LinkState::Connected {
                    tracing::info!("connection with master lost");
                    l.down_since = Instant::now();
                }
                l.state = LinkState::Connect;
                l.client.take()
            });
            match gone {
                None => return,
                Some(Some(id)) => {
                    if let Some(c) = inner.clients.remove(&id) {
                        c.kill();
                    }
                }
                Some(None) => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

type LinkResult<T> = Result<T, String>;

/// The socket with a read buffer.
struct Io {
    sock: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl Io {
    async fn fill(&mut self) -> LinkResult<()> {
        if self.buf.capacity() - self.buf.len() < 16 << 10 {
            self.buf.reserve(64 << 10);
        }
        let n = tokio::time::timeout(self.timeout, self.sock.read_buf(&mut self.buf))
            .await
            .map_err(|_| "timeout reading from MASTER".to_string())?
            .map_err(|e| format!("error reading from MASTER: {e}"))?;
        if n == 0 {
            return Err("MASTER closed the connection".into());
        }
        Ok(())
    }

    async fn line(&mut self) -> LinkResult<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf.split_to(i + 1);
                let s = String::from_utf8_lossy(&l[..i]);
                return Ok(s.trim_end_matches('\r').to_string());
            }
            if self.buf.len() > 64 * 1024 {
                return Err("reply line too long from MASTER".into());
            }
            self.fill().await?;
        }
    }

    async fn send(&mut self, args: &[&[u8]]) -> LinkResult<()> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut out = Vec::new();
        super::stream::encode_command(&mut out, &argv);
        self.sock
            .write_all(&out)
            .await
            .map_err(|e| format!("error writing to MASTER: {e}"))
    }

    async fn command(&mut self, args: &[&[u8]]) -> LinkResult<String> {
        self.send(args).await?;
        self.line().await
    }
}

/// One connection to the master: handshake, synchronization, then the stream.
async fn session(shared: &Arc<Shared>, generation: u64, host: &str, port: u16) -> LinkResult<()> {
    let (timeout, auth, listening_port, psync) = {
        let inner = shared.inner.lock();
        let c = &inner.config;
        let auth = Some(c.str("masterauth"))
            .filter(|p| !p.is_empty())
            .map(|p| {
                let user = c.str("masteruser");
                (Some(user).filter(|u| !u.is_empty()), p)
            });
        let l = inner.repl.link.as_ref();
        let psync = if l.is_some_and(|l| l.has_history) {
            (
                inner.repl.replid.clone(),
                (inner.repl.offset + 1).to_string(),
            )
        } else {
            ("?".to_string(), "-1".to_string())
        };
        (
            Duration::from_secs(c.u64("repl-timeout").max(1)),
            auth,
            c.u64("port"),
            psync,
        )
    };
    let sock = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timeout connecting to MASTER".to_string())?
        .map_err(|e| format!("error connecting to MASTER: {e}"))?;
    let _ = sock.set_nodelay(true);
    let mut io = Io {
        sock,
        buf: BytesMut::with_capacity(64 * 1024),
        timeout,
    };
    tracing::info!("MASTER <-> REPLICA sync started");
    let pong = io.command(&[b"PING"]).await?;
    if !pong.starts_with('+')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("error reply to PING from master: '{pong}'"));
    }
    if let Some((user, pass)) = &auth {
        let r = match user {
            Some(u) => {
                io.command(&[b"AUTH", u.as_bytes(), pass.as_bytes()])
                    .await?
            }
            None => io.command(&[b"AUTH", pass.as_bytes()]).await?,
        };
        if r.starts_with('-') {
            return Err(format!("unable to AUTH to MASTER: {r}"));
        }
    }
    let port_s = listening_port.to_string();
    let r = io
        .command(&[b"REPLCONF", b"listening-port", port_s.as_bytes()])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(non critical) master does not understand REPLCONF listening-port: {r}");
    }
    let r = io
        .command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(non critical) master does not understand REPLCONF capa: {r}");
    }
    let reply = io
        .command(&[b"PSYNC", psync.0.as_bytes(), psync.1.as_bytes()])
        .await?;
    let mut reply = reply;
    while reply.is_empty() {
        // Newline keepalives while the master waits to start the transfer.
        reply = io.line().await?;
    }
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
        let mut it = rest.split_whitespace();
        let (Some(replid), Some(offset)) =
            (it.next(), it.next().and_then(|o| o.parse::<u64>().ok()))
        else {
            return Err(format!("bad FULLRESYNC reply from MASTER: '{reply}'"));
        };
        tracing::info!("full resync from master: {replid}:{offset}");
        full_sync(shared, generation, &mut io, replid.to_string(), offset).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        tracing::info!("successful partial resynchronization with master");
        let mut inner = shared.lock_async().await;
        let ok = with_link(&mut inner, generation, |_| ()).is_some();
        if !ok {
            return Ok(());
        }
        let r = &mut inner.repl;
        if !new_id.is_empty() && new_id != r.replid {
            // The master's history changed id (a failover): ours follows, the old
            // one stays valid up to our offset (Redis's PSYNC_CONTINUE handling).
            r.replid2 = std::mem::replace(&mut r.replid, new_id.to_string());
            r.second_offset = r.offset as i64 + 1;
            let ids: Vec<u64> = r.replicas.iter().map(|x| x.id).collect();
            for id in ids {
                drop_replica(&mut inner, id);
            }
        }
        if inner.repl.backlog.is_none() {
            let r = &mut inner.repl;
            r.backlog = Some(Backlog::new(r.conf.backlog_size, r.offset));
            inner.store.log_enabled = true;
        }
    } else {
        return Err(format!("unexpected reply to PSYNC from MASTER: '{reply}'"));
    }
    stream(shared, generation, io).await
}

/// The payload's bytes, handed to the loading thread as they arrive (so the file is
/// never held whole: peak memory is the dataset being loaded, as Redis's
/// `repl-diskless-load`).
struct Feed {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl std::io::Read for Feed {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                // The link ended (or the whole payload was sent): end of file.
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// Reads the RDB payload (`$<len>` or `$EOF:<mark>`) into `tx` as it arrives;
/// returns its size, or None when the link was replaced meanwhile. Stops early
/// (returning what was read) when the loader stopped taking bytes: its error says
/// why.
async fn read_payload(
    shared: &Arc<Shared>,
    generation: u64,
    io: &mut Io,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> LinkResult<Option<u64>> {
    let header = loop {
        let l = io.line().await?;
        if !l.is_empty() {
            break l;
        }
        // `\n` keepalives while the master prepares the file.
        let mut inner = shared.lock_async().await;
        if with_link(&mut inner, generation, |l| l.last_io = Instant::now()).is_none() {
            return Ok(None);
        }
    };
    if header.starts_with('-') {
        return Err(format!(
            "MASTER aborted replication with an error: {header}"
        ));
    }
    let Some(spec) = header.strip_prefix('$') else {
        return Err(format!(
            "bad protocol from MASTER, the first byte is not '$': '{header}'"
        ));
    };
    let eof_mark = spec.strip_prefix("EOF:").map(|m| m.as_bytes().to_vec());
    let size: i64 = match &eof_mark {
        Some(m) if m.len() == 40 => -1,
        Some(_) => return Err("bad EOF mark from MASTER".into()),
        None => spec
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("bad payload length from MASTER: '{header}'"))?,
    };
    {
        let mut inner = shared.lock_async().await;
        let now = Instant::now();
        let started = with_link(&mut inner, generation, |l| {
            l.state = LinkState::Sync;
            l.sync_size = size;
            l.sync_read = 0;
            l.sync_started = now;
            l.last_io = now;
        });
        if started.is_none() {
            return Ok(None);
        }
    }
    tracing::info!(
        "MASTER <-> REPLICA sync: receiving {} bytes from master",
        if size < 0 {
            "streamed".to_string()
        } else {
            size.to_string()
        }
    );
    // With `$EOF:`, the last 40 bytes read may be the mark: they are held back
    // until more arrive (Redis compares the end of what it read with the mark).
    let mut held = BytesMut::new();
    let mut read: u64 = 0;
    let mut last_report = Instant::now();
    loop {
        if size >= 0 && read >= size as u64 {
            break;
        }
        if io.buf.is_empty() {
            io.fill().await?;
        }
        let take = if size >= 0 {
            io.buf.len().min((size as u64 - read) as usize)
        } else {
            io.buf.len()
        };
        let chunk = io.buf.split_to(take);
        read += take as u64;
        let (out, done) = match &eof_mark {
            None => (chunk.freeze(), false),
            Some(m) => {
                held.extend_from_slice(&chunk);
                if held.ends_with(m) {
                    held.truncate(held.len() - m.len());
                    (std::mem::take(&mut held).freeze(), true)
                } else {
                    let keep = held.len().min(m.len());
                    (held.split_to(held.len() - keep).freeze(), false)
                }
            }
        };
        if !out.is_empty() && tx.send(out).await.is_err() {
            // The loader gave up on the file: its error says why.
            return Ok(Some(read));
        }
        if done {
            break;
        }
        if last_report.elapsed() >= Duration::from_millis(100) {
            last_report = Instant::now();
            let mut inner = shared.lock_async().await;
            if with_link(&mut inner, generation, |l| {
                l.sync_read = read;
                l.last_io = Instant::now();
            })
            .is_none()
            {
                return Ok(None);
            }
        }
    }
    Ok(Some(read))
}

/// A full synchronization: the payload is parsed as it arrives (on a blocking
/// thread) into a fresh dataset, which replaces the current one once the whole
/// file loaded intact.
async fn full_sync(
    shared: &Arc<Shared>,
    generation: u64,
    io: &mut Io,
    replid: String,
    offset: u64,
) -> LinkResult<()> {
    let (config, hasher) = {
        let inner = shared.lock_async().await;
        (inner.store.config.clone(), inner.store.key_hasher())
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let loader = tokio::task::spawn_blocking(move || {
        use redsnap_persist::rdbfile::{load_into, LoadRdbOptions, RdbReader, ReadOptions};
        let mut fresh = redsnap_engine::Store::with_hasher(
            redsnap_engine::EngineConfig {
                notify_keyspace_events: 0,
                ..config
            },
            hasher,
        );
        let feed = std::io::BufReader::with_capacity(
            64 << 10,
            Feed {
                rx,
                cur: Bytes::new(),
            },
        );
        let reader = RdbReader::new(feed, ReadOptions::default()).map_err(|e| e.to_string())?;
        let opts = LoadRdbOptions {
            now_ms: redsnap_engine::now_ms(),
            ..Default::default()
        };
        let report = load_into(reader, &mut fresh, &opts, |_| {}).map_err(|e| e.to_string())?;
        Ok::<_, String>((fresh, report))
    });
    tracing::info!("MASTER <-> REPLICA sync: loading DB in memory as it arrives");
    // The sender is dropped when this returns: the loader sees the end of the file.
    let got = read_payload(shared, generation, io, tx).await;
    let loaded = loader
        .await
        .map_err(|e| format!("loading the RDB from MASTER: {e}"))?;
    let Some(bytes) = got? else {
        return Ok(());
    };
    let (mut fresh, report) =
        loaded.map_err(|e| format!("failed to load the RDB from MASTER: {e}"))?;
    let mut inner = shared.lock_async().await;
    if with_link(&mut inner, generation, |_| ()).is_none() {
        return Ok(());
    }
    let mut conn = Conn::internal(shared.clone(), 0);
    // Emptied as by a FLUSHALL (WATCH, client tracking, the append log see it).
    if let Some(spec) = table::lookup(b"flushall") {
        let _ = conn.execute(&mut inner, spec, &[Bytes::from_static(b"FLUSHALL")]);
        crate::conn::after_command(&mut inner);
    }
    let inner = &mut *inner;
    std::mem::swap(&mut inner.store.dbs, &mut fresh.dbs);
    inner.store.libraries = std::mem::take(&mut fresh.libraries);
    inner.functions.rebuild(&inner.store.libraries);
    inner.store.effects.dirty += report.keys;
    // Sub-replicas must resynchronize: the history changed.
    let ids: Vec<u64> = inner.repl.replicas.iter().map(|x| x.id).collect();
    for id in ids {
        drop_replica(inner, id);
    }
    let r = &mut inner.repl;
    r.replid = replid;
    r.replid2 = "0".repeat(40);
    r.second_offset = -1;
    r.offset = offset;
    r.seldb = None;
    r.backlog = Some(Backlog::new(r.conf.backlog_size, offset));
    r.fed = inner.store.effects.log.len();
    inner.store.log_enabled = true;
    if let Some(l) = inner.repl.link.as_mut() {
        l.has_history = true;
        l.db = 0;
    }
    tracing::info!(
        keys = report.keys,
        bytes,
        ms = report.duration.as_millis() as u64,
        kind = "full",
        "MASTER <-> REPLICA sync: finished with success"
    );
    if inner.persist.is_some() {
        if let Err(e) = crate::persist::bgsave(shared, inner) {
            tracing::warn!("snapshot after the sync with the master not started: {e}");
        }
    }
    Ok(())
}

/// Registers the master's connection as a client; returns its kill signal and
/// message channel.
fn register_master(
    inner: &mut Inner,
    id: u64,
    addr: String,
    laddr: String,
) -> (Arc<Notify>, mpsc::UnboundedReceiver<ConnMsg>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let kill = Arc::new(Notify::new());
    let now = Instant::now();
    inner.clients.insert(
        id,
        ClientInfo {
            id,
            addr,
            laddr,
            name: Bytes::new(),
            user: Bytes::new(),
            fd: -1,
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
            qb: Default::default(),
            tx,
            pending_out: Arc::new(AtomicU64::new(0)),
            kill: kill.clone(),
        },
    );
    (kill, rx)
}

/// Follows the stream: applies each command as the master client, counts the
/// offset, proxies the bytes to sub-replicas, acknowledges every second.
async fn stream(shared: &Arc<Shared>, generation: u64, mut io: Io) -> LinkResult<()> {
    let addr = io
        .sock
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let laddr = io
        .sock
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let id = shared.next_client_id();
    let mut conn = Conn::internal(shared.clone(), id);
    let (kill, mut rx) = {
        let mut inner = shared.lock_async().await;
        let Some(db) = with_link(&mut inner, generation, |l| {
            l.state = LinkState::Connected;
            l.client = Some(id);
            l.last_io = Instant::now();
            l.db
        }) else {
            return Ok(());
        };
        conn.db = db;
        tracing::info!("MASTER <-> REPLICA sync: master accepted, link up");
        register_master(&mut inner, id, addr, laddr)
    };
    let mut parser = crate::resp::Parser::new();
    let limits = crate::resp::Limits {
        max_bulk_len: u64::MAX / 4,
        ..Default::default()
    };
    let mut ack = tokio::time::interval(Duration::from_secs(1));
    ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = io.timeout;
    let mut last_read = Instant::now();
    let mut consumed: u64 = 0;
    // The commands of a MULTI from the master, counted once EXEC ran (Redis does
    // not move a master client's offset inside MULTI, so a link lost half-way
    // continues from the MULTI).
    let mut held: Vec<(u64, Vec<Bytes>)> = Vec::new();
    loop {
        // Whole commands in the buffer, each with the number of bytes it took (a
        // request may span reads: the parser keeps its partial arguments).
        let mut cmds: Vec<(Vec<Bytes>, u64)> = Vec::new();
        loop {
            let before = io.buf.len();
            let r = parser.next(&mut io.buf, &limits);
            consumed += (before - io.buf.len()) as u64;
            match r {
                Ok(Some(argv)) => cmds.push((argv, std::mem::take(&mut consumed))),
                Ok(None) => break,
                Err(e) => return Err(format!("protocol error from MASTER: {}", e.0)),
            }
        }
        if !cmds.is_empty() {
            let Some(acks) = run_batch(shared, generation, &mut conn, &mut held, cmds).await else {
                return Ok(());
            };
            for off in acks {
                let o = off.to_string();
                io.send(&[b"REPLCONF", b"ACK", o.as_bytes()]).await?;
            }
        }
        tokio::select! {
            r = io.sock.read_buf(&mut io.buf) => {
                match r {
                    Ok(0) => return Err("MASTER closed the connection".into()),
                    Ok(_) => last_read = Instant::now(),
                    Err(e) => return Err(format!("error reading from MASTER: {e}")),
                }
            }
            _ = ack.tick() => {
                if last_read.elapsed() > timeout {
                    return Err("MASTER timeout: no data nor PING received".into());
                }
                let off = {
                    let mut inner = shared.lock_async().await;
                    if with_link(&mut inner, generation, |l| l.last_io = last_read).is_none() {
                        return Ok(());
                    }
                    inner.repl.offset
                };
                let o = off.to_string();
                io.send(&[b"REPLCONF", b"ACK", o.as_bytes()]).await?;
            }
            _ = kill.notified() => return Ok(()),
            m = rx.recv() => {
                if matches!(m, Some(ConnMsg::Kill) | None) {
                    return Ok(());
                }
            }
        }
    }
}

/// Applies a batch of the master's commands under one lock; returns the offsets
/// to acknowledge (REPLCONF GETACK), or None when the link was replaced.
async fn run_batch(
    shared: &Arc<Shared>,
    generation: u64,
    conn: &mut Conn,
    held: &mut Vec<(u64, Vec<Bytes>)>,
    cmds: Vec<(Vec<Bytes>, u64)>,
) -> Option<Vec<u64>> {
    let mut inner = shared.lock_async().await;
    with_link(&mut inner, generation, |l| l.last_io = Instant::now())?;
    conn.begin_batch();
    let mut acks = Vec::new();
    let mut last = "NULL";

    for (argv, n) in cmds {
        if argv.is_empty() {
            // An empty inline line (a newline keepalive) counts too.
            add_offset(&mut inner, n, &[]);
            continue;
        }
        if argv.len() >= 2
            && argv[0].eq_ignore_ascii_case(b"replconf")
            && argv[1].eq_ignore_ascii_case(b"getack")
        {
            acks.push(inner.repl.offset);
            add_offset(&mut inner, n, &argv);
            continue;
        }
        last = table::lookup(&argv[0]).map_or(last, |s| s.name);
        let proxied = argv.clone();
        apply(conn, &mut inner, argv);
        if conn.multi.is_some() {
            held.push((n, proxied));
            continue;
        }
        for (m, a) in held.drain(..) {
            add_offset(&mut inner, m, &a);
        }
        add_offset(&mut inner, n, &proxied);
    }
    if let Some(l) = inner.repl.link.as_mut() {
        l.db = conn.db;
    }
    if let Some(c) = inner.clients.get_mut(&conn.id) {
        c.last_active = Instant::now();
        c.last_cmd = last;
        c.db = conn.db;
    }
    if let Err(e) = crate::persist::append(&mut inner) {
        tracing::error!("append log after the master's commands: {e:?}");
    }
    Some(acks)
}

/// The master's bytes count into our offset and go to sub-replicas as the master
/// sent them (its multibulk form, which Redis always uses on the stream: the same
/// bytes, re-encoded; `n` is what was read, so the offset is exact regardless).
fn add_offset(inner: &mut Inner, n: u64, argv: &[Bytes]) {
    let r = &mut inner.repl;
    r.offset += n;
    if r.backlog.is_none() {
        return;
    }
    let mut out = Vec::with_capacity(n as usize);
    if argv.is_empty() {
        out.resize(n as usize, b'\n');
    } else {
        super::stream::encode_command(&mut out, argv);
    }
    let data = Bytes::from(out);
    if let Some(b) = &mut r.backlog {
        b.push(&data);
    }
    if r.replicas.is_empty() {
        return;
    }
    let mut gone = Vec::new();
    for x in &mut r.replicas {
        if !x.feed(&data, &r.conf) {
            gone.push(x.id);
        }
    }
    for id in gone {
        drop_replica(inner, id);
    }
}

/// Runs one command of the master (Redis's processCommand for its master client:
/// no ACL, READONLY, MASTERDOWN or OOM check; MULTI queues).
fn apply(conn: &mut Conn, inner: &mut Inner, argv: Vec<Bytes>) {
    let Some(spec) = table::lookup(&argv[0]) else {
        tracing::warn!(
            "unknown command '{}' from MASTER ignored",
            String::from_utf8_lossy(&argv[0])
        );
        return;
    };
    let Ok(sub) = table::check_arity(spec, &argv) else {
        tracing::warn!("wrong number of arguments for '{}' from MASTER", spec.name);
        return;
    };
    if let Some(q) = &mut conn.multi {
        if !matches!(
            spec.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        ) {
            q.push(argv);
            return;
        }
    }
    // The master decides when its keys expire: its commands see them live.
    let mode = std::mem::replace(
        &mut inner.store.expire_mode,
        redsnap_engine::ExpireMode::Keep,
    );
    let _ = conn.call(inner, spec, sub, argv, false);
    inner.store.expire_mode = mode;
    conn.after_command(inner);
    conn.command_done();
}
