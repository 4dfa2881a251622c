//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH. Queueing inside MULTI is
//! done by `Conn::dispatch` (every command passes there); EXEC runs the queue
//! through `Conn::call`, so a queued command runs (and is recorded) as it would
//! outside.

use super::Handler;
use crate::conn::{ok, Conn, Step};
use crate::state::{Inner, WatchedKey};
use bytes::Bytes;
use redsnap_engine::table::{self, CommandSpec};
use redsnap_engine::{now_ms, Reply};

pub(crate) const HANDLERS: &[(&str, Handler)] = &[
    ("multi", multi),
    ("exec", exec),
    ("discard", discard),
    ("watch", watch),
    ("unwatch", unwatch),
];

fn multi(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    if conn.multi.is_some() {
        return Reply::err("ERR MULTI calls can not be nested").into();
    }
    conn.multi = Some(Vec::new());
    conn.multi_err = false;
    if let Some(c) = inner.clients.get_mut(&conn.id) {
        c.multi = 0;
        c.multi_mem = 0;
    }
    ok().into()
}

fn exec(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    conn.exec(inner)
}

fn discard(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    if conn.multi.take().is_none() {
        return Reply::err("ERR DISCARD without MULTI").into();
    }
    if let Some(c) = inner.clients.get_mut(&conn.id) {
        c.multi = -1;
        c.multi_mem = 0;
    }
    conn.multi_err = false;
    conn.unwatch(inner);
    ok().into()
}

fn watch(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    if conn.multi.is_some() {
        return Reply::err("ERR WATCH inside MULTI is not allowed").into();
    }
    let now = now_ms();
    for key in &argv[1..] {
        let expired = inner.store.dbs[conn.db]
            .get(key)
            .is_some_and(|e| e.is_expired(now));
        conn.watch_key(inner, conn.db, key, expired);
    }
    ok().into()
}

fn unwatch(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, _: &[Bytes]) -> Step {
    conn.unwatch(inner);
    ok().into()
}

impl Conn {
    /// Registers one watched key (once per client, database and key).
    pub(crate) fn watch_key(&self, inner: &mut Inner, db: usize, key: &Bytes, expired: bool) {
        let list = inner.watches.entry(self.id).or_default();
        if list.iter().any(|w| w.db == db && w.key == key) {
            return;
        }
        list.push(WatchedKey {
            db,
            key: key.clone(),
            expired,
        });
        inner
            .watched
            .entry((db, key.clone()))
            .or_default()
            .push(self.id);
    }

    pub(crate) fn unwatch(&mut self, inner: &mut Inner) {
        if let Some(list) = inner.watches.remove(&self.id) {
            for w in list {
                let k = (w.db, w.key);
                if let Some(v) = inner.watched.get_mut(&k) {
                    v.retain(|&c| c != self.id);
                    if v.is_empty() {
                        inner.watched.remove(&k);
                    }
                }
            }
        }
        inner.cas_dirty.remove(&self.id);
    }

    pub(crate) fn exec(&mut self, inner: &mut Inner) -> Step {
        let Some(queue) = self.multi.take() else {
            return Reply::err("ERR EXEC without MULTI").into();
        };
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.multi = -1;
            c.multi_mem = 0;
        }
        if self.multi_err {
            self.multi_err = false;
            self.unwatch(inner);
            return Reply::err("EXECABORT Transaction discarded because of previous errors.")
                .into();
        }
        let now = now_ms();
        let expired = inner.watches.get(&self.id).is_some_and(|l| {
            l.iter().any(|w| {
                !w.expired
                    && inner.store.dbs[w.db]
                        .get(&w.key)
                        .is_some_and(|e| e.is_expired(now))
            })
        });
        if inner.cas_dirty.contains(&self.id) || expired {
            self.unwatch(inner);
            return Reply::NilArray.into();
        }
        self.unwatch(inner);
        self.in_exec = true;
        let mut replies = Vec::with_capacity(queue.len());
        let mut touched = std::mem::take(&mut inner.store.effects.touched);
        for argv in queue {
            let Some(spec) = table::lookup(&argv[0]) else {
                continue;
            };
            let real = table::check_arity(spec, &argv).unwrap_or(spec);
            // The rules may have changed since the command was queued.
            if let Err(d) = self.acl_check(real, &argv) {
                self.acl_denied(inner, d, crate::acl::Context::Multi, real, &argv);
                let e = d.exec_error();
                if let Reply::Error(t) = &e {
                    inner.calls.count_error(t);
                }
                replies.push(e);
                continue;
            }
            let r = match self.call(inner, spec, real, argv, false) {
                // DEBUG SLEEP inside a transaction stops the server as in Redis (the
                // lock is held): the transaction's later commands and the clients
                // served after it see the clock moved.
                Step::Sleep(d, r) => {
                    std::thread::sleep(d);
                    r
                }
                Step::Reply(r) | Step::Block(_, r) => r,
                Step::Many(v) => Reply::Array(v),
                Step::Close(r) => r.unwrap_or_else(ok),
                // (`execute` never postpones: CLIENT PAUSE acts in `dispatch`.)
                Step::Async(_) | Step::Postpone(_) => {
                    Reply::err("ERR Command not allowed inside a transaction")
                }
            };
            replies.push(r);
            // Keys touched inside the transaction mark other watchers, as in Redis.
            let t = std::mem::take(&mut inner.store.effects.touched);
            mark_watchers(inner, &t);
            touched.extend(t);
        }
        inner.store.effects.touched = touched;
        self.in_exec = false;
        Reply::Array(replies).into()
    }

    /// WATCH semantics of FLUSHDB/FLUSHALL/SWAPDB, before the command runs: Redis's
    /// `touchAllWatchedKeysInDb(emptied, replaced_with)` for each database emptied
    /// (and, for SWAPDB, what replaces it). A key that was already expired at WATCH
    /// time and is now gone, or stays expired, changed nothing logically; a missing
    /// key replaced by an expired one neither.
    pub(crate) fn touch_watched_before_flush(
        &mut self,
        inner: &mut Inner,
        name: &str,
        argv: &[Bytes],
    ) {
        if inner.watched.is_empty() {
            return;
        }
        let n = inner.store.dbs.len();
        let pairs: Vec<(usize, Option<usize>)> = match name {
            "flushdb" => vec![(self.db, None)],
            "flushall" => (0..n).map(|d| (d, None)).collect(),
            _ => {
                let a = redsnap_engine::num::parse_i64(&argv[1]).unwrap_or(-1);
                let b = redsnap_engine::num::parse_i64(&argv[2]).unwrap_or(-1);
                if a < 0 || b < 0 || a as usize >= n || b as usize >= n {
                    return;
                }
                let (a, b) = (a as usize, b as usize);
                vec![(a, Some(b)), (b, Some(a))]
            }
        };
        let now = now_ms();
        let Inner {
            watched,
            watches,
            store,
            cas_dirty,
            ..
        } = inner;
        for (emptied, replaced) in pairs {
            for ((db, key), clients) in watched.iter() {
                if *db != emptied {
                    continue;
                }
                let in_emptied = store.dbs[emptied].get(key).is_some();
                let replacement = replaced.and_then(|r| store.dbs[r].get(key));
                if !in_emptied && replacement.is_none() {
                    continue;
                }
                let replacement_expired = replacement.is_some_and(|e| e.is_expired(now));
                for &c in clients {
                    let Some(wk) = watches
                        .get_mut(&c)
                        .and_then(|l| l.iter_mut().find(|w| w.db == *db && w.key == key))
                    else {
                        continue;
                    };
                    if wk.expired {
                        if replacement.is_none() {
                            // Expired key now deleted: no logical change.
                            wk.expired = false;
                            continue;
                        } else if replacement_expired {
                            continue;
                        }
                    } else if !in_emptied && replacement_expired {
                        // A missing key replaced by an expired one.
                        wk.expired = true;
                        continue;
                    }
                    cas_dirty.insert(c);
                }
            }
        }
    }
}

/// Marks clients watching keys touched by a command.
pub(crate) fn mark_watchers(inner: &mut Inner, touched: &[(usize, Bytes)]) {
    if inner.watched.is_empty() {
        return;
    }
    for (db, key) in touched {
        let Some(clients) = inner.watched.get(&(*db, key.clone())) else {
            continue;
        };
        for &c in clients {
            // A key already expired at WATCH time that is now deleted changed nothing.
            let w = inner
                .watches
                .get_mut(&c)
                .and_then(|l| l.iter_mut().find(|w| w.db == *db && w.key == key));
            if let Some(w) = w {
                if w.expired && inner.store.dbs[*db].get(key).is_none() {
                    w.expired = false;
                    continue;
                }
            }
            inner.cas_dirty.insert(c);
        }
    }
}
