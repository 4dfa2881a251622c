//! WAIT and the acknowledgements it counts: `REPLCONF ACK <offset>` from replicas,
//! and `REPLCONF GETACK *` in the stream to ask for them (Redis's `waitCommand`,
//! `replconfCommand`, `processClientsWaitingReplicas`).

use super::{propagate_command, State};
use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::Reply;
use std::time::{Duration, Instant};

/// A client blocked in WAIT.
#[derive(Debug)]
pub(super) struct Waiter {
    pub id: u64,
    token: u64,
    /// The offset the replicas must have acknowledged.
    offset: u64,
    numreplicas: i64,
}

/// Online replicas that acknowledged `offset` (Redis's `replicationCountAcksByOffset`).
fn count(inner: &Inner, offset: u64) -> i64 {
    inner
        .repl
        .replicas
        .iter()
        .filter(|r| !r.syncing() && r.ack_off >= offset)
        .count() as i64
}

/// WAIT numreplicas timeout: the number of replicas that acknowledged this client's
/// last write, once there are `numreplicas` of them or after `timeout` ms (0:
/// forever). Inside MULTI it does not block.
pub(super) fn wait(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let Some(numreplicas) = redsnap_engine::num::parse_i64(&argv[1]) else {
        return Reply::err("ERR value is not an integer or out of range").into();
    };
    let Some(timeout) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Reply::err("ERR timeout is not an integer or out of range").into();
    };
    if timeout < 0 {
        return Reply::err("ERR timeout is negative").into();
    }
    let offset = inner.repl.woff.get(&conn.id).copied().unwrap_or(0);
    let acked = count(inner, offset);
    if acked >= numreplicas || conn.in_exec {
        return Reply::Int(acked).into();
    }
    inner.repl.wait_seq += 1;
    let token = inner.repl.wait_seq;
    inner.repl.waiters.push(Waiter {
        id: conn.id,
        token,
        offset,
        numreplicas,
    });
    // Replicas are asked to acknowledge now (not while clients are paused: it would
    // move the offset; the cron sends it after the pause).
    if conn.shared.pause.kind() == 0 {
        send_getack(inner);
    } else {
        inner.repl.getack_pending = true;
    }
    if timeout > 0 {
        let shared = conn.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout as u64)).await;
            let mut inner = shared.lock_async().await;
            timed_out(&mut inner, token);
        });
    }
    Step::Block(None, Reply::Int(0))
}

/// `REPLCONF GETACK *` into the stream.
pub(super) fn send_getack(inner: &mut Inner) {
    propagate_command(inner, &[b"REPLCONF", b"GETACK", b"*"]);
}

/// `REPLCONF ACK <offset>` from a replica: records it, starts the stream of a
/// replica that loaded an `$EOF:` payload, and serves the waiters it satisfies.
pub(super) fn ack(inner: &mut Inner, id: u64, val: &Bytes) {
    let Some(off) = redsnap_engine::num::parse_i64(val) else {
        return;
    };
    let Some(r) = inner.repl.replicas.iter_mut().find(|r| r.id == id) else {
        return;
    };
    if off > 0 && off as u64 > r.ack_off {
        r.ack_off = off as u64;
    }
    r.ack_time = Instant::now();
    if r.state == State::WaitAck && !r.go_online() {
        super::drop_replica(inner, id);
        return;
    }
    serve(inner);
}

/// Unblocks the waiters whose replicas have acknowledged enough.
fn serve(inner: &mut Inner) {
    if inner.repl.waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut inner.repl.waiters);
    let mut left = Vec::with_capacity(waiters.len());
    for w in waiters {
        let n = count(inner, w.offset);
        if n >= w.numreplicas {
            reply(inner, w.id, n);
        } else {
            left.push(w);
        }
    }
    inner.repl.waiters = left;
}

fn reply(inner: &Inner, id: u64, n: i64) {
    if let Some(c) = inner.clients.get(&id) {
        let _ = c.tx.send(ConnMsg::Unblocked(Reply::Int(n)));
    }
}

/// A WAIT's timeout: it answers how many replicas acknowledged by now.
fn timed_out(inner: &mut Inner, token: u64) {
    let Some(i) = inner.repl.waiters.iter().position(|w| w.token == token) else {
        return;
    };
    let w = inner.repl.waiters.remove(i);
    let n = count(inner, w.offset);
    reply(inner, w.id, n);
}

/// Whether client `id` is blocked in WAIT.
pub(crate) fn is_waiting(inner: &Inner, id: u64) -> bool {
    inner.repl.waiters.iter().any(|w| w.id == id)
}

/// How many clients are blocked in WAIT (INFO `blocked_clients`).
pub(crate) fn waiting(inner: &Inner) -> usize {
    inner.repl.waiters.len()
}

/// Ends client `id`'s WAIT early: with the count acknowledged so far (CLIENT
/// UNBLOCK id TIMEOUT, Redis's `replyToBlockedClientTimedOut`), or with `error`.
/// False when it is not waiting.
pub(crate) fn unblock(inner: &mut Inner, id: u64, error: Option<Reply>) -> bool {
    let Some(i) = inner.repl.waiters.iter().position(|w| w.id == id) else {
        return false;
    };
    let w = inner.repl.waiters.remove(i);
    let r = error.unwrap_or_else(|| Reply::Int(count(inner, w.offset)));
    if let Some(c) = inner.clients.get(&id) {
        let _ = c.tx.send(ConnMsg::Unblocked(r));
    }
    true
}
