//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
//! BZMPOP). A blocking command first tries its non-blocking form; if nothing is there
//! the client is queued on its keys (FIFO per key). After every write, keys that
//! blocked clients wait on are checked and the first waiter is served by running the
//! non-blocking form on its behalf, under the same lock: so the pop is atomic, and it
//! reaches the append log as the plain command that was run.

use super::Handler;
use crate::conn::{key_ready, Conn, Step};
use crate::state::{BlockKind, Blocked};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::{is, timeout_ms};
use redsnap_engine::table::CommandSpec;
use redsnap_engine::{now_ms, table, Reply};
use std::time::Duration;

fn run(inner: &mut Inner, db: usize, resp3: bool, argv: Vec<Bytes>) -> Reply {
    let Some(spec) = table::lookup(&argv[0]) else {
        return table::unknown_command(&argv);
    };
    if let Err(e) = table::check_arity(spec, &argv) {
        return e;
    }
    inner.store.call(spec, db, now_ms(), &argv, resp3)
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` (or MIN|MAX) as LMPOP/ZMPOP do.
fn parse_mpop(args: &[Bytes], zset: bool) -> Result<(Vec<Bytes>, Bytes, i64), Reply> {
    let n = redsnap_engine::num::parse_i64(&args[0])
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?;
    if n <= 0 {
        return Err(Reply::err("ERR numkeys should be greater than 0"));
    }
    let n = n as usize;
    if n.saturating_add(1) >= args.len() {
        return Err(Reply::err("ERR syntax error"));
    }
    let keys = args[1..=n].to_vec();
    let dir = args[n + 1].clone();
    let ok_dir = if zset {
        is(&dir, "min") || is(&dir, "max")
    } else {
        is(&dir, "left") || is(&dir, "right")
    };
    if !ok_dir {
        return Err(Reply::err("ERR syntax error"));
    }
    let mut count = -1;
    let mut i = n + 2;
    while i < args.len() {
        if is(&args[i], "count") && count == -1 && i + 1 < args.len() {
            let c = redsnap_engine::num::parse_i64(&args[i + 1])
                .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?;
            if c <= 0 {
                return Err(Reply::err("ERR count should be greater than 0"));
            }
            count = c;
            i += 2;
        } else {
            return Err(Reply::err("ERR syntax error"));
        }
    }
    Ok((keys, dir, if count == -1 { 1 } else { count }))
}

/// Runs a blocking command for `conn`.
pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("blpop", command),
    ("brpop", command),
    ("brpoplpush", command),
    ("blmove", command),
    ("blmpop", command),
    ("bzpopmin", command),
    ("bzpopmax", command),
    ("bzmpop", command),
];

fn command(conn: &mut Conn, inner: &mut Inner, spec: &'static CommandSpec, argv: &[Bytes]) -> Step {
    let name = spec.name;
    match block_cmd(conn, inner, name, argv) {
        Ok(s) => s,
        Err(e) => Step::Reply(e),
    }
}

fn block_cmd(
    conn: &mut Conn,
    inner: &mut Inner,
    name: &str,
    argv: &[Bytes],
) -> Result<Step, Reply> {
    let (db, resp3) = (conn.db, conn.resp3);
    match name {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let timeout = timeout_ms(&argv[argv.len() - 1])?;
            let keys = &argv[1..argv.len() - 1];
            let zset = name.starts_with("bz");
            let op = match name {
                "blpop" => "LPOP",
                "brpop" => "RPOP",
                "bzpopmin" => "ZPOPMIN",
                _ => "ZPOPMAX",
            };
            for k in keys {
                // A key whose deadline passed is still popped at: the pop deletes it
                // (lazy expiry, logged), as Redis's lookupKeyWrite does here.
                if inner.store.dbs[db].get(k).is_none() {
                    continue;
                }
                let r = run(inner, db, resp3, vec![b(op), k.clone()]);
                if let Some(r) = pop_reply(k, r, zset) {
                    return Ok(Step::Reply(r));
                }
            }
            let kind = match name {
                "blpop" => BlockKind::Pop { left: true },
                "brpop" => BlockKind::Pop { left: false },
                "bzpopmin" => BlockKind::ZPop { min: true },
                _ => BlockKind::ZPop { min: false },
            };
            Ok(block(
                conn,
                inner,
                keys.to_vec(),
                kind,
                timeout,
                Reply::NilArray,
            ))
        }
        "brpoplpush" | "blmove" => {
            let (src, dst) = (&argv[1], &argv[2]);
            let (from, to, t) = if name == "brpoplpush" {
                (b("RIGHT"), b("LEFT"), &argv[3])
            } else {
                for w in [&argv[3], &argv[4]] {
                    if !(is(w, "left") || is(w, "right")) {
                        return Err(Reply::err("ERR syntax error"));
                    }
                }
                (argv[3].clone(), argv[4].clone(), &argv[5])
            };
            let timeout = timeout_ms(t)?;
            let r = run(
                inner,
                db,
                resp3,
                vec![
                    b("LMOVE"),
                    src.clone(),
                    dst.clone(),
                    from.clone(),
                    to.clone(),
                ],
            );
            if !matches!(r, Reply::Nil) {
                return Ok(Step::Reply(r));
            }
            let kind = BlockKind::Move {
                dst: dst.clone(),
                from,
                to,
            };
            Ok(block(
                conn,
                inner,
                vec![src.clone()],
                kind,
                timeout,
                Reply::Nil,
            ))
        }
        "blmpop" | "bzmpop" => {
            let zset = name == "bzmpop";
            let (keys, dir, count) = parse_mpop(&argv[2..], zset)?;
            let timeout = timeout_ms(&argv[1])?;
            let op = if zset { "ZMPOP" } else { "LMPOP" };
            let mut nb = vec![b(op)];
            nb.extend_from_slice(&argv[2..]);
            let r = run(inner, db, resp3, nb);
            if !matches!(r, Reply::NilArray | Reply::Nil) {
                return Ok(Step::Reply(r));
            }
            let count = Bytes::from(count.to_string());
            let kind = if zset {
                BlockKind::ZMPop { dir, count }
            } else {
                BlockKind::MPop { dir, count }
            };
            Ok(block(conn, inner, keys, kind, timeout, Reply::NilArray))
        }
        _ => Err(Reply::error(format!(
            "ERR unknown blocking command '{name}'"
        ))),
    }
}

/// The reply of BLPOP-style commands built from the non-blocking pop's reply;
/// None when nothing was popped.
fn pop_reply(key: &Bytes, r: Reply, zset: bool) -> Option<Reply> {
    match r {
        Reply::Error(_) => Some(r),
        Reply::Bulk(v) if !zset => {
            Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]))
        }
        Reply::Array(v) if zset && !v.is_empty() => {
            let mut flat = vec![Reply::Bulk(key.clone())];
            for item in v {
                match item {
                    Reply::Array(pair) => flat.extend(pair),
                    other => flat.push(other),
                }
                if flat.len() >= 3 {
                    break;
                }
            }
            Some(Reply::Array(flat))
        }
        _ => None,
    }
}

fn block(
    conn: &mut Conn,
    inner: &mut Inner,
    keys: Vec<Bytes>,
    kind: BlockKind,
    timeout: u64,
    timeout_reply: Reply,
) -> Step {
    if conn.in_exec {
        // Inside MULTI/EXEC (and scripts) a blocking command does not block.
        return Step::Reply(timeout_reply);
    }
    conn.register_block(inner, keys, kind);
    let t = if timeout == 0 {
        None
    } else {
        Some(Duration::from_millis(timeout))
    };
    Step::Block(t, timeout_reply)
}

/// Removes a client from the blocked queues; returns what it waited for.
pub(crate) fn unblock(inner: &mut Inner, id: u64) -> Option<Blocked> {
    let b = inner.blocked.remove(&id)?;
    for k in &b.keys {
        let key = (b.db, k.clone());
        if let Some(q) = inner.blocked_keys.get_mut(&key) {
            q.retain(|&c| c != id);
            if q.is_empty() {
                inner.blocked_keys.remove(&key);
            }
        }
    }
    Some(b)
}

/// CLIENT UNBLOCK: the client leaves the queues with `reply`, and its call is
/// recorded as ended and failed, whatever the reply (Redis's `updateStatsOnUnblock`
/// with errors; a blocked command that times out is not recorded at all).
pub(crate) fn end_unserved(inner: &mut Inner, id: u64, reply: &Reply) {
    if let Some(b) = unblock(inner, id) {
        if let Some(call) = b.call {
            crate::calls::finish_blocked(inner, id, b.db, *call, reply, true);
        }
    }
}

/// Serves blocked clients waiting on keys that the last command touched.
pub(crate) fn serve_ready(inner: &mut Inner, touched: &[(usize, Bytes)], dbs: &[usize]) {
    if inner.blocked_keys.is_empty() {
        return;
    }
    let mut ready: Vec<(usize, Bytes)> = touched
        .iter()
        .filter(|k| inner.blocked_keys.contains_key(k))
        .cloned()
        .collect();
    for db in dbs {
        ready.extend(inner.blocked_keys.keys().filter(|(d, _)| d == db).cloned());
    }
    ready.dedup();
    let now = redsnap_engine::now_ms();
    for (db, key) in ready {
        // Redis looks the key up before serving (lookupKeyRead): one that expired is
        // deleted then (and the deletion logged and replicated), and its waiters stay
        // blocked.
        inner.store.expire_if_needed(db, &key, now);
        serve_stream_waiters(inner, db, &key);
        // Serve waiters in arrival order while the key holds something.
        for _ in 0..100_000 {
            let Some(cid) = first_pop_waiter(inner, db, &key) else {
                break;
            };
            let Some(zset) = inner.blocked.get(&cid).map(|b| b.kind.wants_zset()) else {
                unblock(inner, cid);
                continue;
            };
            if !key_ready(inner, db, &key, zset) {
                break;
            }
            let Some(bl) = unblock(inner, cid) else {
                break;
            };
            let (kind, resp3) = (bl.kind, bl.resp3);
            let reply = match kind {
                BlockKind::Pop { left } => {
                    let r = run(
                        inner,
                        db,
                        resp3,
                        vec![b(if left { "LPOP" } else { "RPOP" }), key.clone()],
                    );
                    pop_reply(&key, r, false).unwrap_or(Reply::NilArray)
                }
                BlockKind::ZPop { min } => {
                    let r = run(
                        inner,
                        db,
                        resp3,
                        vec![b(if min { "ZPOPMIN" } else { "ZPOPMAX" }), key.clone()],
                    );
                    pop_reply(&key, r, true).unwrap_or(Reply::NilArray)
                }
                BlockKind::Move { dst, from, to } => run(
                    inner,
                    db,
                    resp3,
                    vec![b("LMOVE"), key.clone(), dst, from, to],
                ),
                BlockKind::MPop { dir, count } => run(
                    inner,
                    db,
                    resp3,
                    vec![b("LMPOP"), b("1"), key.clone(), dir, b("COUNT"), count],
                ),
                BlockKind::ZMPop { dir, count } => run(
                    inner,
                    db,
                    resp3,
                    vec![b("ZMPOP"), b("1"), key.clone(), dir, b("COUNT"), count],
                ),
                // Not returned by `first_pop_waiter`.
                BlockKind::Stream(_) => Reply::NilArray,
            };
            if let Some(call) = bl.call {
                let failed = reply.is_error();
                crate::calls::finish_blocked(inner, cid, bl.db, *call, &reply, failed);
            }
            if let Some(c) = inner.clients.get(&cid) {
                let _ = c.tx.send(ConnMsg::Unblocked(reply));
            }
        }
    }
}

/// The first client waiting on `key` for a list or sorted-set pop (stream readers
/// are served by [`serve_stream_waiters`]).
fn first_pop_waiter(inner: &Inner, db: usize, key: &Bytes) -> Option<u64> {
    let q = inner.blocked_keys.get(&(db, key.clone()))?;
    q.iter()
        .copied()
        .find(|c| inner.blocked.get(c).is_none_or(|b| !b.kind.is_stream()))
}

/// Serves every XREAD/XREADGROUP client blocked on `key` that can be served, in the
/// order they blocked (Redis's `serveClientsBlockedOnStreamKey`).
fn serve_stream_waiters(inner: &mut Inner, db: usize, key: &Bytes) {
    let Some(q) = inner.blocked_keys.get(&(db, key.clone())) else {
        return;
    };
    let waiting: Vec<u64> = q.iter().copied().collect();
    for cid in waiting {
        let Some((wait, resp3)) = inner.blocked.get(&cid).and_then(|bl| match &bl.kind {
            BlockKind::Stream(w) if bl.db == db => Some((w.clone(), bl.resp3)),
            _ => None,
        }) else {
            continue;
        };
        let Some(reply) = super::stream::serve(inner, db, resp3, key, &wait) else {
            continue;
        };
        let Some(bl) = unblock(inner, cid) else {
            continue;
        };
        if let Some(call) = bl.call {
            let failed = reply.is_error();
            crate::calls::finish_blocked(inner, cid, bl.db, *call, &reply, failed);
        }
        if let Some(c) = inner.clients.get(&cid) {
            let _ = c.tx.send(ConnMsg::Unblocked(reply));
        }
    }
}

impl Conn {
    pub(crate) fn register_block(&mut self, inner: &mut Inner, keys: Vec<Bytes>, kind: BlockKind) {
        for k in &keys {
            inner
                .blocked_keys
                .entry((self.db, k.clone()))
                .or_default()
                .push_back(self.id);
        }
        inner.blocked.insert(
            self.id,
            Blocked {
                db: self.db,
                keys,
                kind,
                resp3: self.resp3,
                call: None,
            },
        );
    }
}
