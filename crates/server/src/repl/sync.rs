//! SYNC, PSYNC and REPLCONF: the handshake of a replica, partial resynchronization
//! from the backlog, and the start and end of a full one (its file is
//! `fullsync.rs`).

use super::backlog::Backlog;
use super::{client_gone, drop_replica, feed_each, fullsync, random_id, wait, Replica, State};
use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner, Shared};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::Reply;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// REPLCONF option value [option value ...] (Redis's `replconfCommand`).
pub(super) fn replconf(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    if argv.len().is_multiple_of(2) {
        return Reply::err("ERR syntax error").into();
    }
    let mut hs = inner
        .repl
        .handshakes
        .get(&conn.id)
        .cloned()
        .unwrap_or_default();
    for pair in argv[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        if is(opt, "listening-port") {
            match redsnap_engine::num::parse_i64(val) {
                Some(p) => hs.listening_port = p,
                None => return Reply::err("ERR value is not an integer or out of range").into(),
            }
        } else if is(opt, "ip-address") {
            if val.len() >= 46 {
                return Reply::error(format!(
                    "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                    val.len()
                ))
                .into();
            }
            hs.ip = Some(String::from_utf8_lossy(val).into_owned());
        } else if is(opt, "capa") {
            // Capabilities this master does not know are ignored.
            if is(val, "eof") {
                hs.eof = true;
            } else if is(val, "psync2") {
                hs.psync2 = true;
            }
        } else if is(opt, "ack") {
            // Part of the stream's conversation: no reply, as Redis.
            wait::ack(inner, conn.id, val);
            return Step::Many(vec![]);
        } else if is(opt, "getack") {
            // Asked of replicas; a master has no master to acknowledge to.
            return Step::Many(vec![]);
        } else if is(opt, "rdb-only") {
            match redsnap_engine::num::parse_i64(val) {
                Some(v @ 0..=1) => hs.rdb_only = v == 1,
                Some(_) => {
                    return Reply::err("ERR value is out of range, value must between 0 and 1")
                        .into()
                }
                None => return Reply::err("ERR value is not an integer or out of range").into(),
            }
        } else if is(opt, "rdb-filter-only") {
            // Include filters; by default the file holds nothing.
            let Some(filters) = redsnap_engine::text::split_args(val) else {
                return Reply::err("ERR Missing rdb-filter-only values").into();
            };
            hs.exclude_data = true;
            hs.exclude_functions = true;
            for f in filters {
                if f.eq_ignore_ascii_case(b"functions") {
                    hs.exclude_functions = false;
                } else {
                    return Reply::error(format!(
                        "ERR Unsupported rdb-filter-only option: {}",
                        String::from_utf8_lossy(&f)
                    ))
                    .into();
                }
            }
        } else {
            return Reply::error(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            ))
            .into();
        }
    }
    if let Some(r) = inner.repl.replicas.iter_mut().find(|r| r.id == conn.id) {
        r.hs = hs;
    } else {
        inner.repl.handshakes.insert(conn.id, hs);
    }
    Reply::ok().into()
}

/// SYNC or PSYNC (Redis's `syncCommand`): a partial resynchronization when PSYNC's
/// id and offset are in the backlog, else a full one.
pub(super) fn sync(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let psync = is(&argv[0], "psync");
    let psync_offset = if psync {
        match redsnap_engine::num::parse_i64(&argv[2]) {
            Some(o) => Some(o),
            None => return Reply::err("ERR value is not an integer or out of range").into(),
        }
    } else {
        None
    };
    if inner
        .repl
        .handshakes
        .get(&conn.id)
        .is_some_and(|h| h.filtered() && !h.eof)
    {
        return Reply::err("ERR Filtered replica requires EOF capability").into();
    }
    let Some(client) = inner.clients.get(&conn.id) else {
        return Step::Many(vec![]);
    };
    let (tx, out, addr) = (
        client.tx.clone(),
        client.pending_out.clone(),
        client.addr.clone(),
    );
    // What earlier commands wrote is in the stream (or the file) before this.
    feed_each(inner);
    let hs = inner.repl.handshakes.remove(&conn.id).unwrap_or_default();
    tracing::info!(client = conn.id, "replica {addr} asks for synchronization");
    let replica = Replica {
        id: conn.id,
        tx,
        out,
        hs,
        addr,
        state: State::Transfer,
        buffered: Vec::new(),
        buffered_len: 0,
        ack_off: 0,
        ack_time: Instant::now(),
        pre_psync: !psync,
        eof_form: false,
        soft_since: None,
        asked: Instant::now(),
    };
    // Its replies would land in the stream.
    conn.reply_off = true;
    if let Some(offset) = psync_offset {
        let replid = String::from_utf8_lossy(&argv[1]).into_owned();
        if let Some(data) = continuation(inner, &replica.addr, &replid, offset) {
            continue_partial(inner, replica, data, offset);
            return Step::Many(vec![]);
        }
        if !replid.starts_with('?') {
            inner.repl.sync_partial_err += 1;
        }
    }
    full_sync(conn, inner, replica);
    Step::Many(vec![])
}

/// Redis's `masterTryPartialResynchronization`: the backlog's bytes from `offset`
/// when PSYNC's id and offset allow continuing, else None (and why, in the log).
fn continuation(inner: &Inner, addr: &str, replid: &str, offset: i64) -> Option<Vec<u8>> {
    let r = &inner.repl;
    if !replid.eq_ignore_ascii_case(&r.replid)
        && (!replid.eq_ignore_ascii_case(&r.replid2) || offset > r.second_offset)
    {
        if replid.starts_with('?') {
            tracing::info!("full resync requested by replica {addr}");
        } else if !replid.eq_ignore_ascii_case(&r.replid)
            && !replid.eq_ignore_ascii_case(&r.replid2)
        {
            tracing::info!(
                "partial resynchronization not accepted: replication ID mismatch (replica asked for '{replid}', my replication IDs are '{}' and '{}')",
                r.replid,
                r.replid2
            );
        } else {
            tracing::info!(
                "partial resynchronization not accepted: requested offset for second ID was {offset}, but I can reply up to {}",
                r.second_offset
            );
        }
        return None;
    }
    let data = match (&r.backlog, u64::try_from(offset)) {
        (Some(b), Ok(o)) => b.since(o),
        _ => None,
    };
    if data.is_none() {
        tracing::info!(
            "unable to partial resync with replica {addr} for lack of backlog (replica request was: {offset})"
        );
    }
    data
}

/// `+CONTINUE`, the backlog from the replica's offset, then the stream.
fn continue_partial(inner: &mut Inner, mut replica: Replica, data: Vec<u8>, offset: i64) {
    let r = &mut inner.repl;
    let head = if replica.hs.psync2 {
        format!("+CONTINUE {}\r\n", r.replid)
    } else {
        "+CONTINUE\r\n".to_string()
    };
    let sent = data.len();
    replica.state = State::Online;
    replica.ack_time = Instant::now();
    let mut ok = true;
    for b in [Bytes::from(head), Bytes::from(data)] {
        replica.out.fetch_add(b.len() as u64, Ordering::Relaxed);
        ok &= replica.tx.send(ConnMsg::Raw(b)).is_ok();
    }
    if !ok {
        return;
    }
    let (id, addr) = (replica.id, replica.addr.clone());
    r.replicas.push(replica);
    r.sync_partial_ok += 1;
    tracing::info!(
        client = id,
        offset,
        bytes = sent,
        kind = "partial",
        "partial resynchronization request from {addr} accepted: sending {sent} bytes of backlog starting from offset {offset}"
    );
}

/// A full resynchronization: the replica waits for its transfer to start (at once
/// with `repl-diskless-sync-delay 0`, redsnap's default, or with `repl-diskless-sync
/// no`), then gets `+FULLRESYNC` (for PSYNC), the RDB file of that moment produced
/// off the lock, then the stream from that moment on.
fn full_sync(conn: &Conn, inner: &mut Inner, mut replica: Replica) {
    let r = &mut inner.repl;
    r.sync_full += 1;
    if r.backlog.is_none() {
        // A new history: new id, no previous one (Redis's createReplicationBacklog).
        r.replid = random_id();
        r.replid2 = "0".repeat(40);
        r.second_offset = -1;
        r.backlog = Some(Backlog::new(r.conf.backlog_size, r.offset));
        r.last_ping = Instant::now();
        // Records before this moment are in the file.
        r.fed = inner.store.effects.log.len();
        inner.store.log_enabled = true;
        tracing::info!(
            "replication backlog created, my new replication IDs are '{}' and '{}'",
            inner.repl.replid,
            inner.repl.replid2
        );
    }
    let r = &mut inner.repl;
    // A filtered file always goes in the `$EOF` form, as Redis sends it over the
    // socket.
    replica.eof_form = replica.hs.eof && (r.conf.diskless || replica.hs.filtered());
    replica.state = State::WaitStart;
    replica.asked = Instant::now();
    let key = Group::of(&replica);
    r.replicas.push(replica);
    let waiting = r
        .replicas
        .iter()
        .filter(|x| x.state == State::WaitStart && Group::of(x) == key)
        .count() as u64;
    // Redis's shouldStartChildProcess, less its wait for the next cron tick.
    if !r.conf.diskless
        || r.conf.sync_delay.is_zero()
        || (r.conf.sync_max_replicas > 0 && waiting >= r.conf.sync_max_replicas)
    {
        start_group(&conn.shared, inner, key);
    } else {
        tracing::info!(
            client = conn.id,
            "delay next RDB transfer for diskless SYNC"
        );
    }
}

/// What replicas must share to share one file: its form and its filters (Redis
/// groups waiting replicas by their requirements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    eof: bool,
    exclude_data: bool,
    exclude_functions: bool,
}

impl Group {
    fn of(r: &Replica) -> Group {
        Group {
            eof: r.eof_form,
            exclude_data: r.hs.exclude_data,
            exclude_functions: r.hs.exclude_functions,
        }
    }
}

/// From the cron: starts the transfer of the replicas that waited
/// `repl-diskless-sync-delay` (the longest-waiting one of a group decides, as
/// Redis's `max_idle`), or that are `repl-diskless-sync-max-replicas` together.
pub(super) fn start_pending(shared: &Arc<Shared>, inner: &mut Inner) {
    loop {
        let r = &inner.repl;
        let mut groups: Vec<(Group, Instant, u64)> = Vec::new();
        for x in r.replicas.iter().filter(|x| x.state == State::WaitStart) {
            let key = Group::of(x);
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => {
                    g.1 = g.1.min(x.asked);
                    g.2 += 1;
                }
                None => groups.push((key, x.asked, 1)),
            }
        }
        let due = groups.into_iter().find(|(_, first, n)| {
            first.elapsed() >= r.conf.sync_delay
                || (r.conf.sync_max_replicas > 0 && *n >= r.conf.sync_max_replicas)
        });
        let Some((key, _, _)) = due else {
            return;
        };
        start_group(shared, inner, key);
    }
}

/// Starts one transfer for every replica waiting in group `key`: `+FULLRESYNC` with
/// this moment's offset to each, one point-in-time copy, encoded once on a thread
/// of its own and streamed to all of them.
fn start_group(shared: &Arc<Shared>, inner: &mut Inner, key: Group) {
    let r = &mut inner.repl;
    // The stream after the file starts with a SELECT.
    r.seldb = None;
    let head = Bytes::from(format!("+FULLRESYNC {} {}\r\n", r.replid, r.offset));
    let mut targets = Vec::new();
    let mut hs = None;
    for x in r
        .replicas
        .iter_mut()
        .filter(|x| x.state == State::WaitStart && Group::of(x) == key)
    {
        x.state = State::Transfer;
        if !x.pre_psync {
            x.out.fetch_add(head.len() as u64, Ordering::Relaxed);
            let _ = x.tx.send(ConnMsg::Raw(head.clone()));
        }
        // The file's thread writes to the socket itself when the connection can
        // lend it (`handoff.rs`), once `+FULLRESYNC` is out.
        let (lend, answer) = super::handoff::request();
        let _ = x.tx.send(ConnMsg::Lend(lend));
        targets.push(fullsync::Target::new(
            x.id,
            x.tx.clone(),
            x.out.clone(),
            answer,
        ));
        hs.get_or_insert_with(|| x.hs.clone());
    }
    let Some(hs) = hs else {
        return;
    };
    let mut aux = redsnap_persist::rdbfile::default_aux(crate::used_memory(inner));
    let r = &inner.repl;
    let at = aux.len().saturating_sub(1);
    aux.splice(
        at..at,
        [
            ("repl-stream-db".to_string(), "0".to_string()),
            ("repl-id".to_string(), r.replid.clone()),
            ("repl-offset".to_string(), r.offset.to_string()),
        ],
    );
    let ids: Vec<u64> = targets.iter().map(|t| t.id).collect();
    let job = fullsync::Job {
        targets,
        data: filtered_dataset(inner, &hs),
        aux,
        eof: key.eof,
        timeout: r.conf.timeout,
        started: Instant::now(),
        spool_dir: inner
            .persist
            .is_some()
            .then(|| inner.config.str("dir").into()),
    };
    tracing::info!(
        clients = ?ids,
        "starting the RDB transfer for a full resynchronization of {} replica(s) ({})",
        ids.len(),
        if key.eof { "$EOF form" } else { "$<len> form" }
    );
    if let Err(e) = fullsync::start(shared.clone(), job) {
        tracing::error!("cannot start the replicas' RDB transfer: {e}");
        for id in ids {
            drop_replica(inner, id);
        }
    }
}

/// The end of a full resynchronization's transfer (from its thread, under the lock).
pub(super) fn transfer_done(
    inner: &mut Inner,
    id: u64,
    res: std::io::Result<fullsync::Sent>,
    started: Instant,
) {
    let Some(r) = inner.repl.replicas.iter_mut().find(|r| r.id == id) else {
        return;
    };
    let sent = match res {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                client = id,
                "replica {} full resynchronization failed: {e}",
                r.addr
            );
            drop_replica(inner, id);
            return;
        }
    };
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        client = id,
        keys = sent.keys,
        bytes = sent.bytes,
        ms,
        kind = "full",
        "replica {} synchronized: {} keys, {} bytes of RDB in {} ms (full resynchronization)",
        r.addr,
        sent.keys,
        sent.bytes,
        ms
    );
    if r.hs.rdb_only {
        // It asked for the file only: closed once the file is written.
        let _ = r.tx.send(ConnMsg::Kill);
        let id = r.id;
        client_gone(inner, id);
        return;
    }
    if r.tx.is_closed() {
        drop_replica(inner, id);
        return;
    }
    if r.eof_form {
        r.state = State::WaitAck;
    } else if !r.go_online() {
        drop_replica(inner, id);
    }
}

/// The point-in-time copy for a replica, less what `rdb-filter-only` leaves out.
fn filtered_dataset(inner: &Inner, hs: &super::Handshake) -> redsnap_engine::Dataset {
    if !hs.filtered() {
        return inner.store.dataset();
    }
    redsnap_engine::Dataset {
        dbs: if hs.exclude_data {
            Vec::new()
        } else {
            inner.store.snapshot()
        },
        libraries: if hs.exclude_functions {
            Vec::new()
        } else {
            inner.store.libraries.codes()
        },
        changes: None,
    }
}
