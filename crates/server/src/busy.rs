//! Serving a connection while a script holds the server lock (Redis's "busy" state).
//!
//! Once a script has run longer than `busy-reply-threshold`, Redis answers other
//! clients from inside the script's hook: commands flagged `allow-busy` run (AUTH,
//! HELLO, MULTI, DISCARD, WATCH, UNWATCH, QUIT, RESET, SCRIPT KILL, FUNCTION KILL,
//! FUNCTION STATS, SHUTDOWN NOSAVE) and every other command gets `BUSY`. redsnap's
//! script runs on another thread under the server lock, so these commands are answered
//! here without it, from the connection's own state and [`crate::state::LiveConfig`].
//! What they change in the shared state (client name and protocol in CLIENT LIST,
//! watched keys, subscriptions dropped by RESET) is recorded in [`Deferred`] and
//! applied under the lock before the connection's next batch ([`Conn::sync_deferred`]).
//!
//! A WATCH sent while a script is busy cannot see the keys' versions (the script may
//! be changing them, and others write after it ends before the watch is registered),
//! so its keys are registered as already modified: the following EXEC returns a nil
//! reply and the client retries, as optimistic locking allows. Redis would let the
//! transaction run when nothing touched the keys; redsnap never lets one run on a
//! stale read.

use crate::conn::{ok, Conn};
use crate::state::{Inner, Shared, ShutdownRequest};
use bytes::{Bytes, BytesMut};
use parking_lot::MutexGuard;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{self, flags};
use redsnap_engine::{now_ms, Reply};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Redis's `slowevalerr`.
pub(crate) const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// Redis's `slowscripterr`: the BUSY error while a function runs.
pub(crate) const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// A change to the shared state made by a command answered without the lock.
#[derive(Debug)]
pub(crate) enum Deferred {
    /// The connection is not in the client table yet (it connected during a busy
    /// script); its `ClientInfo` is inserted at the next lock.
    Register(Box<crate::state::ClientInfo>),
    /// WATCH during a busy script: registered as already modified (see the module doc).
    Watch { db: usize, keys: Vec<Bytes> },
    /// UNWATCH, DISCARD, an aborted EXEC.
    Unwatch,
    /// RESET: drop every subscription and watch.
    Reset,
    /// HELLO / RESET changed what CLIENT LIST shows.
    ClientFields,
}

/// Whether a script has held the lock for longer than `busy-reply-threshold`.
pub(crate) fn script_busy(shared: &Shared) -> bool {
    let busy = &shared.busy;
    busy.running.load(Ordering::Acquire)
        && now_ms().saturating_sub(busy.since_ms.load(Ordering::Acquire))
            >= busy.threshold_ms.load(Ordering::Acquire)
}

/// Takes the server lock, unless a busy script holds it (None): callers on the path
/// to a first reply must not wait for a script that may never end.
pub(crate) async fn lock_unless_busy(shared: &Shared) -> Option<MutexGuard<'_, Inner>> {
    loop {
        if let Some(g) = shared.inner.try_lock_for(Duration::from_millis(2)) {
            return Some(g);
        }
        if script_busy(shared) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

impl Conn {
    /// While a script holds the server lock longer than `busy-reply-threshold`,
    /// answers the next pending command without the lock (see the module doc).
    /// Returns true when it consumed a command.
    pub(crate) async fn busy_gate(
        &mut self,
        pending: &mut VecDeque<Vec<Bytes>>,
        wbuf: &mut BytesMut,
    ) -> bool {
        loop {
            if let Some(g) = self.shared.inner.try_lock_for(Duration::from_millis(5)) {
                drop(g);
                return false;
            }
            let busy = &self.shared.busy;
            if !busy.running.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
                continue;
            }
            if !script_busy(&self.shared) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let Some(argv) = pending.pop_front() else {
                return false;
            };
            let reply = match self.busy_command(argv) {
                BusyStep::Reply(r) => r,
                BusyStep::Shutdown => {
                    // The script stops at its next hook; the pending or new shutdown
                    // then exits without a snapshot (`Shared::nosave_shutdown`).
                    let _ =
                        crate::shutdown(&self.shared, ShutdownRequest { save: Some(false) }).await;
                    ok()
                }
                BusyStep::Close(r) => {
                    self.emit(wbuf, &r);
                    self.closing = true;
                    return true;
                }
            };
            self.emit(wbuf, &reply);
            self.command_done();
            return true;
        }
    }

    /// One command while a script is busy, in the order of Redis's `processCommand`:
    /// lookup, arity, authentication, transaction context, then BUSY unless the
    /// command is flagged `allow-busy`.
    fn busy_command(&mut self, argv: Vec<Bytes>) -> BusyStep {
        let Some(spec) = table::lookup(&argv[0]) else {
            self.flag_multi();
            return BusyStep::Reply(table::unknown_command(&argv));
        };
        let sub = match table::check_arity(spec, &argv) {
            Ok(s) => s,
            Err(e) => {
                self.flag_multi();
                return BusyStep::Reply(e);
            }
        };
        if let Err(e) = self.check_auth_and_multi(spec, sub) {
            return BusyStep::Reply(e);
        }
        let busy = &self.shared.busy;
        // Redis answers as it does for the kind of script that runs (`scriptIsEval`).
        let function = busy.function.load(Ordering::Acquire);
        let busy_err = if function { BUSY_FUNCTION } else { BUSY_EVAL };
        if !(spec.has(flags::ALLOW_BUSY) || sub.has(flags::ALLOW_BUSY))
            || (spec.name == "shutdown" && !argv[1..].iter().any(|a| is(a, "nosave")))
        {
            self.flag_multi();
            if spec.name == "exec" {
                // Redis's execCommandAbort (with or without MULTI): the transaction,
                // if any, is discarded.
                self.multi = None;
                self.multi_err = false;
                self.deferred.push(Deferred::Unwatch);
                return BusyStep::Reply(Reply::error(format!(
                    "EXECABORT Transaction discarded because of: {busy_err}"
                )));
            }
            return BusyStep::Reply(Reply::err(busy_err));
        }
        if let Some(q) = &mut self.multi {
            if !matches!(
                spec.name,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            ) {
                q.push(argv);
                return BusyStep::Reply(Reply::simple("QUEUED"));
            }
        }
        BusyStep::Reply(match sub.name {
            // (A failure is not added to the ACL log: that needs the lock.)
            "auth" => {
                let r = self.auth_local(&argv).map_or_else(|e| e, |()| ok());
                self.auth_failed = None;
                self.deferred.push(Deferred::ClientFields);
                r
            }
            "hello" => {
                let r = self.hello_local(&argv);
                self.auth_failed = None;
                self.deferred.push(Deferred::ClientFields);
                r
            }
            "multi" => {
                if self.multi.is_some() {
                    Reply::err("ERR MULTI calls can not be nested")
                } else {
                    self.multi = Some(Vec::new());
                    self.multi_err = false;
                    self.deferred.push(Deferred::ClientFields);
                    ok()
                }
            }
            "discard" => {
                if self.multi.take().is_none() {
                    Reply::err("ERR DISCARD without MULTI")
                } else {
                    self.multi_err = false;
                    self.deferred.push(Deferred::Unwatch);
                    ok()
                }
            }
            "watch" => {
                if self.multi.is_some() {
                    Reply::err("ERR WATCH inside MULTI is not allowed")
                } else {
                    self.deferred.push(Deferred::Watch {
                        db: self.db,
                        keys: argv[1..].to_vec(),
                    });
                    ok()
                }
            }
            "unwatch" => {
                self.deferred.push(Deferred::Unwatch);
                ok()
            }
            "quit" => return BusyStep::Close(ok()),
            "reset" => {
                self.reset_local();
                self.deferred.push(Deferred::Reset);
                Reply::simple("RESET")
            }
            // Redis's scriptKill: a script that wrote is unkillable; SCRIPT KILL only
            // kills EVAL scripts, FUNCTION KILL only functions.
            "script|kill" | "function|kill" => {
                if busy.wrote.load(Ordering::Acquire) {
                    Reply::err(UNKILLABLE)
                } else if function != (sub.name == "function|kill") {
                    Reply::err(if function { BUSY_FUNCTION } else { BUSY_EVAL })
                } else {
                    busy.kill.store(1, Ordering::Release);
                    ok()
                }
            }
            "function|stats" => match busy.current.lock().as_ref() {
                // During an EVAL script Redis answers BUSY (`functionStatsCommand`).
                Some(r) if function => {
                    let ms = now_ms().saturating_sub(busy.since_ms.load(Ordering::Acquire));
                    crate::scripting::functions::stats_reply(
                        Some((r, ms)),
                        r.libraries,
                        r.functions,
                    )
                }
                _ => Reply::err(BUSY_EVAL),
            },
            "shutdown" => {
                self.shared.nosave_shutdown.store(true, Ordering::Release);
                busy.kill.store(2, Ordering::Release);
                tracing::warn!(
                    client = self.id,
                    "SHUTDOWN NOSAVE during a busy script: stopping the script, exiting without a snapshot"
                );
                return BusyStep::Shutdown;
            }
            _ => Reply::err(busy_err),
        })
    }

    /// Applies what commands answered without the lock left for the shared state
    /// (see [`Deferred`]), in order. Called under the lock before each batch.
    pub(crate) fn sync_deferred(&mut self, inner: &mut Inner) {
        for d in std::mem::take(&mut self.deferred) {
            match d {
                Deferred::Register(info) => {
                    inner.clients.insert(self.id, *info);
                    inner.stats.total_connections += 1;
                }
                Deferred::Unwatch => self.unwatch(inner),
                Deferred::Watch { db, keys } => {
                    for key in &keys {
                        self.watch_key(inner, db, key, false);
                    }
                    inner.cas_dirty.insert(self.id);
                }
                Deferred::Reset => self.reset_shared(inner),
                Deferred::ClientFields => {}
            }
        }
        if let Some(c) = inner.clients.get_mut(&self.id) {
            c.db = self.db;
            c.resp = if self.resp3 { 3 } else { 2 };
            c.name = self.name.clone();
            c.user = self.user.name.clone();
            c.multi = if self.multi.is_some() { 0 } else { -1 };
            c.multi_mem = 0;
        }
    }
}

/// What a command answered during a busy script asks of the connection loop.
pub(crate) enum BusyStep {
    Reply(Reply),
    /// SHUTDOWN NOSAVE: hand the request to the main task.
    Shutdown,
    /// QUIT: reply, then close.
    Close(Reply),
}
