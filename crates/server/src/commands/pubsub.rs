//! Pub/sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB, the
//! sharded SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH (one server owns every slot, so a
//! shard channel is a channel of its own namespace, without patterns), and the
//! delivery of messages to subscribers (`publish`).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::{ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::CommandSpec;
use redsnap_engine::Reply;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("subscribe", subscribe),
    ("psubscribe", psubscribe),
    ("unsubscribe", unsubscribe),
    ("punsubscribe", punsubscribe),
    ("publish", publish_cmd),
    ("pubsub", pubsub),
    ("ssubscribe", ssubscribe),
    ("sunsubscribe", sunsubscribe),
    ("spublish", spublish),
];

fn ssubscribe(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    // Redis's CLIENT_DENY_BLOCKING: inside EXEC (scripts cannot call it at all).
    if conn.in_exec {
        return Reply::err("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client").into();
    }
    let mut out = Vec::new();
    for n in &argv[1..] {
        if conn.shard_channels.insert(n.clone()) {
            inner
                .shard_channels
                .entry(n.clone())
                .or_default()
                .push(conn.id);
        }
        out.push(Reply::Push(vec![
            Reply::bulk_str("ssubscribe"),
            Reply::Bulk(n.clone()),
            Reply::Int(conn.shard_channels.len() as i64),
        ]));
    }
    conn.sync_sub_counts(inner);
    Step::Many(out)
}

fn sunsubscribe(
    conn: &mut Conn,
    inner: &mut Inner,
    _: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let names: Vec<Bytes> = if argv.len() == 1 {
        conn.shard_channels.iter().cloned().collect()
    } else {
        argv[1..].to_vec()
    };
    let mut out = Vec::new();
    if names.is_empty() {
        out.push(Reply::Push(vec![
            Reply::bulk_str("sunsubscribe"),
            Reply::Nil,
            Reply::Int(conn.shard_channels.len() as i64),
        ]));
    }
    for n in names {
        conn.remove_shard_sub(inner, &n);
        out.push(Reply::Push(vec![
            Reply::bulk_str("sunsubscribe"),
            Reply::Bulk(n),
            Reply::Int(conn.shard_channels.len() as i64),
        ]));
    }
    conn.sync_sub_counts(inner);
    Step::Many(out)
}

fn spublish(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    // Propagated to replicas, as Redis does without cluster mode.
    crate::repl::propagate_publish(inner, conn.db, argv);
    Reply::Int(publish_shard(inner, &argv[1], &argv[2]) as i64).into()
}

fn subscribe(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    conn.subscribe(inner, &argv[1..], false)
}

fn psubscribe(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    conn.subscribe(inner, &argv[1..], true)
}

fn unsubscribe(
    conn: &mut Conn,
    inner: &mut Inner,
    _: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    conn.unsubscribe(inner, &argv[1..], false)
}

fn punsubscribe(
    conn: &mut Conn,
    inner: &mut Inner,
    _: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    conn.unsubscribe(inner, &argv[1..], true)
}

fn publish_cmd(
    conn: &mut Conn,
    inner: &mut Inner,
    _: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    // Propagated to replicas (not to the append log), as Redis does.
    crate::repl::propagate_publish(inner, conn.db, argv);
    Reply::Int(publish(inner, &argv[1], &argv[2]) as i64).into()
}

fn pubsub(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    conn.pubsub_cmd(inner, argv)
}

impl Conn {
    pub(crate) fn subscribe(&mut self, inner: &mut Inner, names: &[Bytes], pattern: bool) -> Step {
        let mut out = Vec::new();
        for n in names {
            let set = if pattern {
                &mut self.patterns
            } else {
                &mut self.channels
            };
            if set.insert(n.clone()) {
                if pattern {
                    inner.patterns.push((n.clone(), self.id));
                } else {
                    inner.channels.entry(n.clone()).or_default().push(self.id);
                }
            }
            let kind = if pattern { "psubscribe" } else { "subscribe" };
            out.push(Reply::Push(vec![
                Reply::bulk_str(kind),
                Reply::Bulk(n.clone()),
                Reply::Int(self.global_subscriptions() as i64),
            ]));
        }
        self.sync_sub_counts(inner);
        Step::Many(out)
    }

    pub(crate) fn unsubscribe(
        &mut self,
        inner: &mut Inner,
        names: &[Bytes],
        pattern: bool,
    ) -> Step {
        let kind = if pattern {
            "punsubscribe"
        } else {
            "unsubscribe"
        };
        let names: Vec<Bytes> = if names.is_empty() {
            let set = if pattern {
                &self.patterns
            } else {
                &self.channels
            };
            set.iter().cloned().collect()
        } else {
            names.to_vec()
        };
        let mut out = Vec::new();
        if names.is_empty() {
            out.push(Reply::Push(vec![
                Reply::bulk_str(kind),
                Reply::Nil,
                Reply::Int(self.global_subscriptions() as i64),
            ]));
        }
        for n in names {
            self.remove_sub(inner, &n, pattern);
            out.push(Reply::Push(vec![
                Reply::bulk_str(kind),
                Reply::Bulk(n),
                Reply::Int(self.global_subscriptions() as i64),
            ]));
        }
        self.sync_sub_counts(inner);
        Step::Many(out)
    }

    pub(crate) fn remove_sub(&mut self, inner: &mut Inner, n: &Bytes, pattern: bool) {
        if pattern {
            if self.patterns.remove(n) {
                inner.patterns.retain(|(p, c)| !(p == n && *c == self.id));
            }
        } else if self.channels.remove(n) {
            if let Some(v) = inner.channels.get_mut(n) {
                v.retain(|&c| c != self.id);
                if v.is_empty() {
                    inner.channels.remove(n);
                }
            }
        }
    }

    /// Subscriptions to channels and patterns (what SUBSCRIBE and PSUBSCRIBE
    /// count in their replies; shard channels are counted apart).
    pub(crate) fn global_subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub(crate) fn remove_shard_sub(&mut self, inner: &mut Inner, n: &Bytes) {
        if self.shard_channels.remove(n) {
            if let Some(v) = inner.shard_channels.get_mut(n) {
                v.retain(|&c| c != self.id);
                if v.is_empty() {
                    inner.shard_channels.remove(n);
                }
            }
        }
    }

    pub(crate) fn sync_sub_counts(&self, inner: &mut Inner) {
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.sub = self.channels.len();
            c.psub = self.patterns.len();
            c.ssub = self.shard_channels.len();
        }
    }

    pub(crate) fn pubsub_cmd(&mut self, inner: &mut Inner, argv: &[Bytes]) -> Step {
        let sub = &argv[1];
        if is(sub, "channels") || is(sub, "shardchannels") {
            let pat = argv.get(2);
            let map = if is(sub, "channels") {
                &inner.channels
            } else {
                &inner.shard_channels
            };
            let mut v: Vec<Reply> = map
                .keys()
                .filter(|c| pat.is_none_or(|p| redsnap_engine::glob::glob_match(p, c, false)))
                .map(|c| Reply::Bulk(c.clone()))
                .collect();
            v.sort_by(|a, b| match (a, b) {
                (Reply::Bulk(x), Reply::Bulk(y)) => x.cmp(y),
                _ => std::cmp::Ordering::Equal,
            });
            Reply::Array(v).into()
        } else if is(sub, "numsub") {
            // An array of channel, count pairs under RESP2 and RESP3 alike (Redis 7).
            let mut out = Vec::new();
            for c in &argv[2..] {
                out.push(Reply::Bulk(c.clone()));
                out.push(Reply::Int(
                    inner.channels.get(c).map_or(0, |v| v.len()) as i64
                ));
            }
            Reply::Array(out).into()
        } else if is(sub, "numpat") {
            let pats: HashSet<&Bytes> = inner.patterns.iter().map(|(p, _)| p).collect();
            Reply::Int(pats.len() as i64).into()
        } else if is(sub, "shardnumsub") {
            let mut out = Vec::new();
            for c in &argv[2..] {
                out.push(Reply::Bulk(c.clone()));
                out.push(Reply::Int(
                    inner.shard_channels.get(c).map_or(0, |v| v.len()) as i64,
                ));
            }
            Reply::Array(out).into()
        } else {
            super::help(
                "PUBSUB",
                &[
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                    "SHARDCHANNELS [<pattern>]",
                    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "    Return the number of subscribers for the specified shard level channel(s)",
                ],
            )
            .into()
        }
    }
}

/// Delivers a message to subscribers; returns how many received it.
pub(crate) fn publish(inner: &mut Inner, channel: &Bytes, msg: &Bytes) -> usize {
    let mut n = 0;
    let mut dead = Vec::new();
    let limit = inner.tun.pubsub_obuf_limit;
    let size = (channel.len() + msg.len() + 32) as u64;
    let mut deliver = |id: u64, reply: Reply, clients: &crate::state::ClientMap| {
        if let Some(c) = clients.get(&id) {
            let pending = c.pending_out.fetch_add(size, Ordering::Relaxed) + size;
            if limit > 0 && pending > limit {
                // Output buffer limit for pub/sub clients: disconnect the slow reader.
                c.kill();
                dead.push(id);
            } else {
                let _ = c.tx.send(ConnMsg::Push(reply));
            }
        }
    };
    if let Some(subs) = inner.channels.get(channel) {
        for &id in subs {
            deliver(
                id,
                Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(msg.clone()),
                ]),
                &inner.clients,
            );
            n += 1;
        }
    }
    for (pat, id) in &inner.patterns {
        if redsnap_engine::glob::glob_match(pat, channel, false) {
            deliver(
                *id,
                Reply::Push(vec![
                    Reply::bulk_str("pmessage"),
                    Reply::Bulk(pat.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(msg.clone()),
                ]),
                &inner.clients,
            );
            n += 1;
        }
    }
    inner.stats.pubsub_messages += 1;
    n
}

/// SPUBLISH: delivers `smessage` to the subscribers of a shard channel.
pub(crate) fn publish_shard(inner: &mut Inner, channel: &Bytes, msg: &Bytes) -> usize {
    let Some(subs) = inner.shard_channels.get(channel) else {
        inner.stats.pubsub_messages += 1;
        return 0;
    };
    let limit = inner.tun.pubsub_obuf_limit;
    let size = (channel.len() + msg.len() + 32) as u64;
    for id in subs {
        if let Some(c) = inner.clients.get(id) {
            let pending = c.pending_out.fetch_add(size, Ordering::Relaxed) + size;
            if limit > 0 && pending > limit {
                c.kill();
            } else {
                let _ = c.tx.send(ConnMsg::Push(Reply::Push(vec![
                    Reply::bulk_str("smessage"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(msg.clone()),
                ])));
            }
        }
    }
    inner.stats.pubsub_messages += 1;
    subs.len()
}

/// Publishes the keyspace notifications recorded by the commands that just ran
/// (and by the blocked clients they served), in order, through the normal publish
/// path: `__keyspace@<db>__:<key>` with the event name, then
/// `__keyevent@<db>__:<event>` with the key, as Redis's `notifyKeyspaceEvent`.
/// Redis publishes while the command runs; the engine does no I/O, so redsnap
/// publishes right after it, under the same lock (no other command runs between).
pub(crate) fn publish_events(inner: &mut Inner) {
    use redsnap_engine::notify::{KEYEVENT, KEYSPACE};
    let mut events = std::mem::take(&mut inner.store.effects.events);
    let flags = inner.store.config.notify_keyspace_events;
    // Nobody subscribed: nothing to build (Redis would publish to no one).
    if !(inner.channels.is_empty() && inner.patterns.is_empty()) {
        for ev in &events {
            if flags & KEYSPACE != 0 {
                let mut chan = format!("__keyspace@{}__:", ev.db).into_bytes();
                chan.extend_from_slice(&ev.key);
                let msg = Bytes::from_static(ev.event.as_bytes());
                publish(inner, &Bytes::from(chan), &msg);
            }
            if flags & KEYEVENT != 0 {
                let chan = format!("__keyevent@{}__:{}", ev.db, ev.event);
                publish(inner, &Bytes::from(chan), &ev.key);
            }
        }
    }
    // Keep the buffer for the next command's events.
    events.clear();
    if inner.store.effects.events.is_empty() {
        inner.store.effects.events = events;
    }
}
