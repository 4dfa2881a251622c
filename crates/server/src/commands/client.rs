//! CLIENT and its subcommands as Redis 7.0 has them (ID, INFO, LIST, KILL, SETNAME,
//! GETNAME, PAUSE, UNPAUSE, NO-EVICT, REPLY, TRACKING, TRACKINGINFO, CACHING,
//! GETREDIR, UNBLOCK, HELP), and CLIENT PAUSE's state ([`Pause`]).

use super::Handler;
use crate::conn::{Conn, Step};
use crate::state::{ClientInfo, ConnMsg, Inner};
use bytes::Bytes;
use redsnap_engine::cmd::is;
use redsnap_engine::table::{flags, CommandSpec};
use redsnap_engine::{now_ms, Reply};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

pub(crate) const HANDLERS: &[(&str, Handler)] = &[("client", client_cmd)];

const HELP: &[&str] = &[
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
];

/// CLIENT PAUSE: readable without the server lock. While a pause is in effect,
/// the commands it covers are postponed (the client waits; see `Conn::dispatch`).
#[derive(Debug, Default)]
pub(crate) struct Pause {
    /// 0: none, [`PAUSE_WRITE`], [`PAUSE_ALL`].
    kind: AtomicU8,
    /// When it ends, ms since the epoch.
    end_ms: AtomicU64,
    /// Wakes postponed clients at CLIENT UNPAUSE.
    wake: tokio::sync::Notify,
}

pub(crate) const PAUSE_WRITE: u8 = 1;
pub(crate) const PAUSE_ALL: u8 = 2;

impl Pause {
    /// The pause in effect now (0: none). One atomic load when there is none.
    #[inline]
    pub(crate) fn kind(&self) -> u8 {
        let k = self.kind.load(Ordering::Acquire);
        if k == 0 || now_ms() < self.end_ms.load(Ordering::Acquire) {
            return k;
        }
        0
    }

    /// Redis's `pauseClients`: the stronger kind and the later end win (over a
    /// pause still in effect). Called under the server lock, so never concurrently.
    fn set(&self, kind: u8, end_ms: u64) {
        if self.kind() == 0 {
            self.kind.store(0, Ordering::Release);
            self.end_ms.store(0, Ordering::Release);
        }
        self.end_ms.fetch_max(end_ms, Ordering::AcqRel);
        self.kind.fetch_max(kind, Ordering::AcqRel);
    }

    fn clear(&self) {
        self.kind.store(0, Ordering::Release);
        self.end_ms.store(0, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Waits until no pause is in effect (UNPAUSE, or the end of the timeout).
    pub(crate) async fn wait(&self) {
        loop {
            let woken = self.wake.notified();
            if self.kind() == 0 {
                return;
            }
            let end = self.end_ms.load(Ordering::Acquire);
            let left = end.saturating_sub(now_ms());
            // An expired pause ends here; its end is re-read each round, since a
            // new CLIENT PAUSE may extend it.
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(left.max(1)), woken).await;
        }
    }
}

/// Whether the command must wait for the end of a CLIENT PAUSE (Redis's
/// `processCommand`): under PAUSE ALL every command; under PAUSE WRITE the ones
/// that may write or propagate (EXEC when a queued command does; a script by the
/// flags it declares).
pub(crate) fn postponed(
    conn: &Conn,
    inner: &Inner,
    spec: &CommandSpec,
    sub: &CommandSpec,
    argv: &[Bytes],
    kind: u8,
) -> bool {
    // Replicas are never paused (their REPLCONF ACKs).
    if inner.repl.is_replica(conn.id) {
        return false;
    }
    if kind == PAUSE_ALL {
        return true;
    }
    if spec.name == "exec" {
        return conn.multi.as_ref().is_some_and(|q| {
            q.iter().any(|a| {
                redsnap_engine::table::lookup(&a[0]).is_some_and(|s| {
                    let sub = redsnap_engine::table::check_arity(s, a).unwrap_or(s);
                    may_write(inner, s, sub, a)
                })
            })
        });
    }
    may_write(inner, spec, sub, argv)
}

/// Redis's "may replicate" test of a command: its WRITE or MAY_REPLICATE flag, or
/// for EVAL / EVALSHA the flags the script declares (`evalGetCommandFlags`), for
/// FCALL the function's (`fcallGetCommandFlags`).
fn may_write(inner: &Inner, spec: &CommandSpec, sub: &CommandSpec, argv: &[Bytes]) -> bool {
    let flagged = |c: &CommandSpec| c.has(flags::WRITE) || c.has(flags::MAY_REPLICATE);
    match spec.name {
        "eval" | "evalsha" => {
            crate::scripting::cache::script_may_write(inner, argv, spec.name == "evalsha")
                .unwrap_or_else(|| flagged(spec))
        }
        "fcall" => argv
            .get(1)
            .and_then(|name| inner.functions.may_write(name))
            .unwrap_or_else(|| flagged(spec)),
        _ => flagged(spec) || flagged(sub),
    }
}

/// The number of clients waiting: on a blocking command, or for the end of a
/// CLIENT PAUSE (INFO `blocked_clients`).
pub(crate) fn blocked_count(inner: &Inner) -> usize {
    inner.blocked.len()
        + inner.clients.values().filter(|c| c.postponed).count()
        + crate::repl::wait::waiting(inner)
}

/// Marks a client as waiting for the end of a pause (CLIENT LIST flag `b`, INFO
/// `blocked_clients`), or no longer.
pub(crate) fn set_postponed(inner: &mut Inner, id: u64, on: bool) {
    if let Some(c) = inner.clients.get_mut(&id) {
        c.postponed = on;
    }
}

fn client_cmd(conn: &mut Conn, inner: &mut Inner, _: &'static CommandSpec, argv: &[Bytes]) -> Step {
    client(conn, inner, argv)
}

/// Checks a client name as CLIENT SETNAME does.
pub(crate) fn valid_client_name(n: &[u8]) -> Result<(), Reply> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// Client types (Redis's `getClientTypeByName`).
#[derive(Clone, Copy, PartialEq)]
enum Type {
    Normal,
    Replica,
    PubSub,
    Master,
}

fn type_by_name(n: &[u8]) -> Option<Type> {
    match n.to_ascii_lowercase().as_slice() {
        b"normal" => Some(Type::Normal),
        b"slave" | b"replica" => Some(Type::Replica),
        b"pubsub" => Some(Type::PubSub),
        b"master" => Some(Type::Master),
        _ => None,
    }
}

fn type_of(c: &ClientInfo, inner: &Inner) -> Type {
    if inner.repl.is_replica(c.id) {
        Type::Replica
    } else if crate::repl::replica::is_master_client(inner, c.id) {
        Type::Master
    } else if c.sub + c.psub > 0 {
        Type::PubSub
    } else {
        Type::Normal
    }
}

fn unknown_type(n: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR Unknown client type '{}'",
        String::from_utf8_lossy(n)
    ))
}

/// What only the connection running CLIENT INFO / LIST knows about itself.
struct Caller {
    id: u64,
    qbuf: (usize, usize),
    argv_mem: usize,
    multi_mem: usize,
}

/// One line of CLIENT LIST / INFO, fields in Redis 7.0's order
/// (`catClientInfoString`).
fn client_line(out: &mut String, c: &ClientInfo, inner: &Inner, me: &Caller, now: Instant) {
    // Redis's order: O (monitor), S (replica), P (pub/sub), x (MULTI), b (blocked),
    // t R B (tracking, broken redirect, BCAST),
    // d (watched key touched), e (no-evict); N for none.
    let mut fl = String::new();
    if c.monitor {
        fl.push('O');
    }
    if inner.repl.is_replica(c.id) {
        fl.push('S');
    }
    if crate::repl::replica::is_master_client(inner, c.id) {
        fl.push('M');
    }
    if c.sub + c.psub + c.ssub > 0 {
        fl.push('P');
    }
    if c.multi >= 0 {
        fl.push('x');
    }
    if inner.blocked.contains_key(&c.id)
        || c.postponed
        || crate::repl::wait::is_waiting(inner, c.id)
    {
        fl.push('b');
    }
    let (tracking_flags, redir) = crate::tracking::client_list_fields(inner, c.id);
    fl.push_str(tracking_flags);
    if inner.cas_dirty.contains(&c.id) {
        fl.push('d');
    }
    if c.no_evict {
        fl.push('e');
    }
    if fl.is_empty() {
        fl.push('N');
    }
    let (qbuf, qbuf_free, argv_mem, multi_mem) = if c.id == me.id {
        (me.qbuf.0, me.qbuf.1, me.argv_mem, me.multi_mem)
    } else {
        let (q, f, argv) = c.qb.shown();
        (q, f, argv, c.multi_mem)
    };
    // The reply buffer (16 KB at first, resized by the cron as Redis's) and its
    // peak; what is queued beyond it (pub/sub) is `omem`.
    let (rbs, rbp) = c.qb.reply_shown();
    let omem = c.pending_out.load(Ordering::Relaxed) as usize;
    // The memory the connection published (query and reply buffers, a request
    // still arriving, MULTI queue, pub/sub and WATCH bookkeeping; see
    // `clientmem.rs`), its output beyond that, and the caller's own command.
    let own = if c.id == me.id { argv_mem } else { 0 };
    let tot = crate::clientmem::client_total(c) + own;
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp={} obl=0 oll=0 omem={} tot-mem={} events={} cmd={} user={} redir={} resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        String::from_utf8_lossy(&c.name),
        now.saturating_duration_since(c.created).as_secs(),
        now.saturating_duration_since(c.last_active).as_secs(),
        fl,
        c.db,
        c.sub,
        c.psub,
        c.ssub,
        c.multi,
        qbuf,
        qbuf_free,
        argv_mem,
        multi_mem,
        rbs,
        rbp,
        omem,
        tot,
        if omem > 0 { "rw" } else { "r" },
        c.last_cmd,
        String::from_utf8_lossy(&c.user),
        redir,
        c.resp,
    );
}

fn caller(conn: &Conn, argv: &[Bytes]) -> Caller {
    let queued = |q: &Vec<Vec<Bytes>>| q.iter().flatten().map(|a| a.len()).sum();
    Caller {
        id: conn.id,
        qbuf: conn.qb.shown(),
        argv_mem: argv.iter().map(|a| a.len()).sum(),
        multi_mem: conn.multi.as_ref().map_or(0, queued),
    }
}

fn client(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes]) -> Step {
    let sub = &argv[1];
    let argc = argv.len();
    let text = |s: String| {
        if conn.resp3 {
            Reply::Verbatim("txt", Bytes::from(s))
        } else {
            Reply::Bulk(Bytes::from(s))
        }
    };
    if is(sub, "help") && argc == 2 {
        super::command::help("client", HELP).into()
    } else if is(sub, "id") {
        Reply::Int(conn.id as i64).into()
    } else if is(sub, "info") {
        let mut s = String::new();
        if let Some(c) = inner.clients.get(&conn.id) {
            client_line(&mut s, c, inner, &caller(conn, argv), Instant::now());
        }
        text(s).into()
    } else if is(sub, "list") {
        match list(conn, inner, argv) {
            Ok(s) => text(s).into(),
            Err(e) => e,
        }
    } else if is(sub, "kill") {
        kill(conn, inner, argv)
    } else if is(sub, "setname") && argc == 3 {
        if let Err(e) = valid_client_name(&argv[2]) {
            return e.into();
        }
        conn.name = argv[2].clone();
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            c.name = argv[2].clone();
        }
        Reply::ok().into()
    } else if is(sub, "getname") && argc == 2 {
        if conn.name.is_empty() {
            Reply::Nil.into()
        } else {
            Reply::Bulk(conn.name.clone()).into()
        }
    } else if is(sub, "pause") && (argc == 3 || argc == 4) {
        pause(conn, argv)
    } else if is(sub, "unpause") && argc == 2 {
        conn.shared.pause.clear();
        Reply::ok().into()
    } else if is(sub, "no-evict") && argc == 3 {
        let on = if is(&argv[2], "on") {
            true
        } else if is(&argv[2], "off") {
            false
        } else {
            return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
        };
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            c.no_evict = on;
        }
        Reply::ok().into()
    } else if is(sub, "reply") && argc == 3 {
        reply_mode(conn, argv)
    } else if is(sub, "getredir") && argc == 2 {
        crate::tracking::client_getredir(inner, conn.id).into()
    } else if is(sub, "trackinginfo") && argc == 2 {
        crate::tracking::client_trackinginfo(inner, conn.id).into()
    } else if is(sub, "caching") && argc >= 3 {
        crate::tracking::client_caching(inner, conn.id, &argv[2]).into()
    } else if is(sub, "unblock") && (argc == 3 || argc == 4) {
        unblock(inner, argv)
    } else if is(sub, "tracking") && argc >= 3 {
        crate::tracking::client_tracking(inner, conn.id, argv).into()
    } else {
        subcommand_syntax_error(sub)
    }
}

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax_error(sub: &[u8]) -> Step {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
    .into()
}

/// CLIENT REPLY ON|OFF|SKIP.
/// CLIENT REPLY ON|OFF|SKIP as Redis's clientCommand: OFF and SKIP answer nothing
/// (an empty `Many`); the connection loop then silences replies (`Conn::emit`).
fn reply_mode(conn: &mut Conn, argv: &[Bytes]) -> Step {
    if is(&argv[2], "on") {
        // As Redis: a SKIP_NEXT set earlier in the same EXEC stays.
        conn.reply_off = false;
        conn.reply_skip = false;
        Reply::ok().into()
    } else if is(&argv[2], "off") {
        conn.reply_off = true;
        Step::Many(Vec::new())
    } else if is(&argv[2], "skip") {
        if !conn.reply_off {
            conn.reply_skip_next = true;
        }
        Step::Many(Vec::new())
    } else {
        Reply::err(redsnap_engine::reply::ERR_SYNTAX).into()
    }
}

/// CLIENT LIST [TYPE type | ID id [id ...]].
/// A client as CLIENT INFO shows it (for ACL LOG's `client-info`), without the
/// newline.
pub(crate) fn info_line(inner: &Inner, id: u64) -> String {
    let mut s = String::new();
    if let Some(c) = inner.clients.get(&id) {
        let me = Caller {
            id: 0,
            qbuf: (0, 0),
            argv_mem: 0,
            multi_mem: 0,
        };
        client_line(&mut s, c, inner, &me, Instant::now());
    }
    while s.ends_with('\n') {
        s.pop();
    }
    s
}

fn list(conn: &Conn, inner: &Inner, argv: &[Bytes]) -> Result<String, Step> {
    let me = caller(conn, argv);
    let now = Instant::now();
    let mut s = String::new();
    if argv.len() == 4 && is(&argv[2], "type") {
        let t = type_by_name(&argv[3]).ok_or_else(|| unknown_type(&argv[3]))?;
        for c in sorted(inner) {
            if type_of(c, inner) == t {
                client_line(&mut s, c, inner, &me, now);
            }
        }
    } else if argv.len() > 3 && is(&argv[2], "id") {
        for a in &argv[3..] {
            let id = redsnap_engine::num::parse_i64(a)
                .ok_or_else(|| Step::from(Reply::err("ERR Invalid client ID")))?;
            if let Some(c) = u64::try_from(id).ok().and_then(|id| inner.clients.get(&id)) {
                client_line(&mut s, c, inner, &me, now);
            }
        }
    } else if argv.len() != 2 {
        return Err(Reply::err(redsnap_engine::reply::ERR_SYNTAX).into());
    } else {
        for c in sorted(inner) {
            client_line(&mut s, c, inner, &me, now);
        }
    }
    Ok(s)
}

/// The clients in connection order (Redis lists them so).
fn sorted(inner: &Inner) -> Vec<&ClientInfo> {
    let mut v: Vec<&ClientInfo> = inner.clients.values().collect();
    v.sort_by_key(|c| c.id);
    v
}

/// CLIENT KILL addr:port, or CLIENT KILL with filters (ID, TYPE, ADDR, LADDR, USER,
/// SKIPME), as Redis's `clientCommand`.
fn kill(conn: &Conn, inner: &Inner, argv: &[Bytes]) -> Step {
    let (mut addr, mut laddr): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let (mut ty, mut id, mut skipme) = (None, None, true);
    let mut user: Option<&[u8]> = None;
    if argv.len() == 3 {
        // The old form may kill the caller too.
        addr = Some(&argv[2]);
        skipme = false;
    } else if argv.len() > 3 {
        let mut i = 2;
        while i < argv.len() {
            let (opt, val) = (&argv[i], argv.get(i + 1));
            let Some(val) = val else {
                return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
            };
            if is(opt, "id") {
                match redsnap_engine::num::parse_i64(val) {
                    Some(v) if v >= 1 => id = Some(v as u64),
                    _ => return Reply::err("ERR client-id should be greater than 0").into(),
                }
            } else if is(opt, "type") {
                match type_by_name(val) {
                    Some(t) => ty = Some(t),
                    None => return unknown_type(val).into(),
                }
            } else if is(opt, "addr") {
                addr = Some(val);
            } else if is(opt, "laddr") {
                laddr = Some(val);
            } else if is(opt, "user") {
                if conn.shared.acl.user(val).is_none() {
                    return Reply::error(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(val)
                    ))
                    .into();
                }
                user = Some(val);
            } else if is(opt, "skipme") {
                if is(val, "yes") {
                    skipme = true;
                } else if is(val, "no") {
                    skipme = false;
                } else {
                    return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
                }
            } else {
                return Reply::err(redsnap_engine::reply::ERR_SYNTAX).into();
            }
            i += 2;
        }
    }
    let mut killed = 0;
    let mut close_me = false;
    for c in inner.clients.values() {
        let matches = addr.is_none_or(|a| c.addr.as_bytes() == a)
            && laddr.is_none_or(|a| c.laddr.as_bytes() == a)
            && ty.is_none_or(|t| type_of(c, inner) == t)
            && id.is_none_or(|i| c.id == i)
            && user.is_none_or(|u| c.user == u);
        if !matches || (c.id == conn.id && skipme) {
            continue;
        }
        if c.id == conn.id {
            close_me = true;
        } else {
            c.kill();
        }
        killed += 1;
    }
    let reply = if argv.len() == 3 {
        if killed == 0 {
            Reply::err("ERR No such client")
        } else {
            Reply::ok()
        }
    } else {
        Reply::Int(killed)
    };
    if close_me {
        // Killed itself: the reply goes out, then the connection closes.
        Step::Close(Some(reply))
    } else {
        reply.into()
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL].
fn pause(conn: &Conn, argv: &[Bytes]) -> Step {
    let mut kind = PAUSE_ALL;
    if let Some(m) = argv.get(3) {
        if is(m, "write") {
            kind = PAUSE_WRITE;
        } else if !is(m, "all") {
            return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL").into();
        }
    }
    // Redis's getTimeoutFromObjectOrReply in milliseconds.
    let Some(ms) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Reply::err("ERR timeout is not an integer or out of range").into();
    };
    if ms < 0 {
        return Reply::err("ERR timeout is negative").into();
    }
    let end = if ms == 0 {
        0
    } else {
        match (now_ms() as i64).checked_add(ms) {
            Some(e) => e as u64,
            None => return Reply::err("ERR timeout is out of range").into(),
        }
    };
    conn.shared.pause.set(kind, end);
    Reply::ok().into()
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR].
fn unblock(inner: &mut Inner, argv: &[Bytes]) -> Step {
    let mut error = false;
    if let Some(r) = argv.get(3) {
        if is(r, "error") {
            error = true;
        } else if !is(r, "timeout") {
            return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR").into();
        }
    }
    let Some(id) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Reply::err(redsnap_engine::reply::ERR_NOT_INT).into();
    };
    let id = id as u64;
    if !inner.blocked.contains_key(&id) {
        // A client in WAIT: the count so far, or the error.
        let e = error.then(|| Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"));
        return Reply::Int(crate::repl::wait::unblock(inner, id, e) as i64).into();
    }
    let r = if error {
        Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    } else {
        Reply::NilArray
    };
    crate::commands::blocking::end_unserved(inner, id, &r);
    if let Some(c) = inner.clients.get(&id) {
        let _ = c.tx.send(ConnMsg::Unblocked(r));
    }
    Reply::Int(1).into()
}
