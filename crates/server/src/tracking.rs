//! Client-side caching (CLIENT TRACKING), after Redis 7.0's `tracking.c`.
//!
//! * The tracking table maps a key name (all databases share it, as in Redis) to the
//!   ids of the clients that may hold it in their cache; a read-only command of a
//!   client in the default mode adds its keys (`after_call`), a change to a key sends
//!   one invalidation message to each of them and forgets the key.
//! * The prefix table (BCAST mode) maps each prefix to its clients and to the keys
//!   changed under it since the last broadcast, with the client that changed each
//!   last (for NOLOOP); `broadcast` sends one message per prefix after each command.
//! * A message goes to the client, or to its REDIRECT client (RESP3 push
//!   `invalidate`, or a RESP2 `message` on `__redis__:invalidate` when that client
//!   is subscribed). Messages for the client whose command is running wait until its
//!   reply has been written (`pending`, Redis's `tracking_pending_keys`).
//!
//! Cost when nobody tracks: every hook is behind `Tracking::clients != 0` (Redis's
//! `server.tracking_clients`), one test of an integer.

use crate::conn::Conn;
use crate::state::{ConnMsg, IdHasher, Inner};
use bytes::Bytes;
use indexmap::IndexMap;
use redsnap_engine::table::{flags, CommandSpec};
use redsnap_engine::Reply;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering;

type Ids = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// One client's tracking mode (Redis's `CLIENT_TRACKING_*` flags).
#[derive(Debug, Default, Clone)]
pub struct ClientTracking {
    /// REDIRECT target (0: none).
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) given for the next command.
    pub caching: bool,
    /// A message could not be delivered: the redirect client is gone.
    pub broken_redirect: bool,
    /// BCAST prefixes, in order.
    pub prefixes: BTreeSet<Bytes>,
}

/// A BCAST prefix: its clients and the keys changed since the last broadcast, each
/// with the client that changed it last (None: expiry, eviction, a read).
#[derive(Debug, Default)]
struct Bcast {
    keys: BTreeMap<Bytes, Option<u64>>,
    clients: BTreeSet<u64>,
}

/// What an invalidation message carries.
#[derive(Debug, Clone)]
pub enum Payload {
    Key(Bytes),
    /// Every key (FLUSHDB, FLUSHALL): a null.
    All,
    /// A BCAST message's keys.
    Keys(Vec<Bytes>),
}

impl Payload {
    fn reply(self) -> Reply {
        match self {
            Payload::Key(k) => Reply::Array(vec![Reply::Bulk(k)]),
            Payload::All => Reply::Nil,
            Payload::Keys(v) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
        }
    }
}

/// The server's tracking state (behind the server lock).
#[derive(Debug, Default)]
pub struct Tracking {
    /// Clients with tracking on: every hook on the command path checks this first.
    pub clients: usize,
    modes: HashMap<u64, ClientTracking, BuildHasherDefault<IdHasher>>,
    /// Key -> ids of the clients that may cache it.
    table: IndexMap<Bytes, Ids>,
    /// Ids stored across the table (INFO `tracking_total_items`).
    total_items: u64,
    prefixes: BTreeMap<Bytes, Bcast>,
    /// Messages for the client running a command, sent after its reply.
    pending: Vec<(u64, Payload)>,
    /// Consecutive cron passes that could not bring the table under its limit
    /// (the effort grows with it, as in Redis).
    limit_rounds: u32,
    /// `tracking-table-max-keys` (0: no limit).
    pub max_keys: u64,
}

impl Tracking {
    pub fn mode(&self, id: u64) -> Option<&ClientTracking> {
        self.modes.get(&id)
    }
    pub fn total_keys(&self) -> usize {
        self.table.len()
    }
    pub fn total_items(&self) -> u64 {
        self.total_items
    }
    pub fn total_prefixes(&self) -> usize {
        self.prefixes.len()
    }
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Options of CLIENT TRACKING ON.
#[derive(Debug, Default)]
pub struct Options {
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Bytes>,
}

/// Redis's `enableTracking` (the options were checked by the caller).
pub fn enable(inner: &mut Inner, id: u64, o: Options) {
    let t = &mut inner.tracking;
    if !t.modes.contains_key(&id) {
        t.clients += 1;
    }
    let m = t.modes.entry(id).or_default();
    m.redirect = o.redirect;
    m.broken_redirect = false;
    m.bcast = o.bcast;
    m.optin = o.optin;
    m.optout = o.optout;
    m.noloop = o.noloop;
    if o.bcast {
        let mut list = o.prefixes;
        if list.is_empty() {
            list.push(Bytes::new());
        }
        for p in list {
            let b = t.prefixes.entry(p.clone()).or_default();
            if b.clients.insert(id) {
                m.prefixes.insert(p);
            }
        }
    }
}

/// Redis's `disableTracking`: the client's ids stay in the table and are skipped
/// (and dropped) when their keys are invalidated, as in Redis.
pub fn disable(inner: &mut Inner, id: u64) {
    let t = &mut inner.tracking;
    let Some(m) = t.modes.remove(&id) else {
        return;
    };
    t.clients -= 1;
    for p in &m.prefixes {
        if let Some(b) = t.prefixes.get_mut(p) {
            b.clients.remove(&id);
            if b.clients.is_empty() {
                t.prefixes.remove(p);
            }
        }
    }
}

/// Redis's `checkPrefixCollisionsOrReply`: an error when two prefixes (given, or
/// given and already registered) would both match one key.
pub fn prefix_collision(inner: &Inner, id: u64, given: &[Bytes]) -> Option<Reply> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let existing = inner.tracking.modes.get(&id).map(|m| &m.prefixes);
    for (i, p) in given.iter().enumerate() {
        if let Some(old) = existing.and_then(|set| set.iter().find(|e| overlap(e, p))) {
            return Some(Reply::error(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                s(p),
                s(old)
            )));
        }
        if let Some(q) = given[i + 1..].iter().find(|q| overlap(p, q)) {
            return Some(Reply::error(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                s(p),
                s(q)
            )));
        }
    }
    None
}

/// After a command ran through `Conn::call` at the top level or inside EXEC (not
/// one called by a script: the script's command does this once): invalidates the
/// keys it changed (`touched[t0..]`), then remembers the keys it read when its
/// client tracks them, as Redis's `call()` (a script that ran a read-only command
/// remembers its declared keys). Called only while some client tracks.
pub(crate) fn after_call(
    conn: &mut Conn,
    inner: &mut Inner,
    real: &'static CommandSpec,
    argv: &[Bytes],
    t0: usize,
) {
    let script_read = std::mem::take(&mut conn.script_read);
    if real.name != "exec" && inner.store.effects.touched.len() > t0 {
        // The client that changed the keys, for BCAST NOLOOP; keys a read-only
        // command touched were expired by it (Redis passes no client then).
        let writer = real.is_write().then_some(conn.id);
        let keys: Vec<Bytes> = inner.store.effects.touched[t0..]
            .iter()
            .map(|(_, k)| k.clone())
            .collect();
        for k in &keys {
            invalidate_key(inner, k, writer, Some(conn.id), true, true);
        }
    }
    let Some(m) = inner.tracking.modes.get(&conn.id) else {
        return;
    };
    let ro_script = matches!(real.name, "eval_ro" | "evalsha_ro" | "fcall_ro");
    let read = (real.has(flags::READONLY) && !ro_script) || script_read;
    if read && !m.bcast && !((m.optin && !m.caching) || (m.optout && m.caching)) {
        remember_keys(inner, conn.id, real, argv);
    }
    // CLIENT CACHING applies to the next command (or transaction) only.
    if !conn.in_exec && conn.multi.is_none() && !real.name.starts_with("client") {
        if let Some(m) = inner.tracking.modes.get_mut(&conn.id) {
            m.caching = false;
        }
    }
}

/// Redis's `trackingRememberKeys`.
fn remember_keys(inner: &mut Inner, id: u64, spec: &'static CommandSpec, argv: &[Bytes]) {
    // Shard channels are keys for cluster routing only.
    if spec.has(flags::PUBSUB) {
        return;
    }
    let Some(meta) = spec.meta() else {
        return;
    };
    let t = &mut inner.tracking;
    for k in redsnap_engine::getkeys::keys(meta, argv) {
        let Some(key) = argv.get(k.pos) else {
            continue;
        };
        let ids = t.table.entry(key.clone()).or_default();
        if ids.insert(id) {
            t.total_items += 1;
        }
    }
}

/// Redis's `trackingInvalidateKey`: tells the clients that may cache `key` that it
/// changed (and, with `bcast`, records it for the BCAST clients of its prefixes).
/// `current` is the client whose command is running: with NOLOOP it is not told of
/// its own changes, and with `defer` its messages wait for its reply.
pub(crate) fn invalidate_key(
    inner: &mut Inner,
    key: &Bytes,
    writer: Option<u64>,
    current: Option<u64>,
    bcast: bool,
    defer: bool,
) {
    if bcast && !inner.tracking.prefixes.is_empty() {
        for (p, b) in inner.tracking.prefixes.iter_mut() {
            if key.starts_with(p) {
                b.keys.insert(key.clone(), writer);
            }
        }
    }
    let Some(ids) = inner.tracking.table.swap_remove(key) else {
        return;
    };
    inner.tracking.total_items -= ids.len() as u64;
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    for id in ids {
        let Some(m) = inner.tracking.modes.get(&id) else {
            continue;
        };
        // Keys remembered before the client switched to BCAST are not sent.
        if m.bcast || (m.noloop && current == Some(id)) {
            continue;
        }
        if defer && current == Some(id) {
            inner.tracking.pending.push((id, Payload::Key(key.clone())));
        } else {
            send(inner, id, Payload::Key(key.clone()));
        }
    }
}

/// Invalidates keys changed outside a client's command (expiry, eviction, blocked
/// clients served): nothing waits for a reply.
pub(crate) fn invalidate_touched(inner: &mut Inner, touched: &[(usize, Bytes)]) {
    for (_, k) in touched {
        invalidate_key(inner, k, None, None, true, false);
    }
}

/// Redis's `sendTrackingMessage`: to the client, or its REDIRECT client.
fn send(inner: &mut Inner, id: u64, payload: Payload) {
    let Some(m) = inner.tracking.modes.get_mut(&id) else {
        return;
    };
    let mut to = id;
    if m.redirect != 0 {
        if !inner.clients.contains_key(&m.redirect) {
            m.broken_redirect = true;
            let redirect = m.redirect;
            if inner.clients.get(&id).is_some_and(|c| c.resp == 3) {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("tracking-redir-broken"),
                    Reply::Int(redirect as i64),
                ]);
                deliver(inner, id, msg);
            }
            return;
        }
        to = m.redirect;
    }
    let Some(c) = inner.clients.get(&to) else {
        return;
    };
    let msg = if c.resp == 3 {
        Reply::Push(vec![Reply::bulk_str("invalidate"), payload.reply()])
    } else if to != id && c.sub + c.psub + c.ssub > 0 {
        Reply::Push(vec![
            Reply::bulk_str("message"),
            Reply::bulk_str("__redis__:invalidate"),
            payload.reply(),
        ])
    } else {
        // RESP2 has no pushes on the client's own connection.
        return;
    };
    deliver(inner, to, msg);
}

/// Queues a push for a client (counted in its pending output, as pub/sub messages).
fn deliver(inner: &Inner, to: u64, msg: Reply) {
    if let Some(c) = inner.clients.get(&to) {
        let size = match &msg {
            Reply::Push(v) => 32 + v.len() as u64 * 16,
            _ => 32,
        };
        c.pending_out.fetch_add(size, Ordering::Relaxed);
        let _ = c.tx.send(ConnMsg::Push(msg));
    }
}

/// Sends the messages held for the client whose command just replied (Redis's
/// `trackingHandlePendingKeyInvalidations`); they reach its connection's queue.
pub(crate) fn flush_pending(inner: &mut Inner) {
    let pending = std::mem::take(&mut inner.tracking.pending);
    for (id, p) in pending {
        send(inner, id, p);
    }
}

/// FLUSHDB / FLUSHALL (Redis's `trackingInvalidateKeysOnFlush`): every tracking
/// client is told that every key changed (a null), and the table is emptied.
pub(crate) fn on_flush(inner: &mut Inner, current: u64) {
    if inner.tracking.clients != 0 {
        let mut ids: Vec<u64> = inner.tracking.modes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if id == current {
                inner.tracking.pending.push((id, Payload::All));
            } else {
                send(inner, id, Payload::All);
            }
        }
    }
    inner.tracking.table = IndexMap::new();
    inner.tracking.total_items = 0;
}

/// Redis's `trackingLimitUsedSlots`: above `tracking-table-max-keys`, invalidates
/// random keys (as if they changed) until under it, with an effort of 100 keys per
/// call times the number of calls that ended still above it.
pub(crate) fn limit_used_slots(inner: &mut Inner, current: Option<u64>) {
    let max = inner.tracking.max_keys as usize;
    if max == 0 || inner.tracking.table.len() <= max {
        inner.tracking.limit_rounds = 0;
        return;
    }
    let mut effort = 100 * (inner.tracking.limit_rounds as usize + 1);
    while effort > 0 && !inner.tracking.table.is_empty() {
        effort -= 1;
        let i = rand::random::<u64>() as usize % inner.tracking.table.len();
        let Some(key) = inner.tracking.table.get_index(i).map(|(k, _)| k.clone()) else {
            break;
        };
        invalidate_key(inner, &key, None, current, false, false);
        if inner.tracking.table.len() <= max {
            inner.tracking.limit_rounds = 0;
            return;
        }
    }
    inner.tracking.limit_rounds += 1;
}

/// Redis's `trackingBroadcastInvalidationMessages`, after each command and cron
/// pass: each prefix's changed keys to its clients (without, for a NOLOOP client,
/// the keys it changed itself). A message for `current` waits for its reply.
pub(crate) fn broadcast(inner: &mut Inner, current: Option<u64>) {
    if inner.tracking.prefixes.is_empty() {
        return;
    }
    let mut out: Vec<(u64, Vec<Bytes>)> = Vec::new();
    for b in inner.tracking.prefixes.values_mut() {
        if b.keys.is_empty() {
            continue;
        }
        let keys = std::mem::take(&mut b.keys);
        for &id in &b.clients {
            let noloop = inner.tracking.modes.get(&id).is_some_and(|m| m.noloop);
            let list: Vec<Bytes> = keys
                .iter()
                .filter(|(_, w)| !(noloop && **w == Some(id)))
                .map(|(k, _)| k.clone())
                .collect();
            if !list.is_empty() {
                out.push((id, list));
            }
        }
    }
    for (id, keys) in out {
        if current == Some(id) {
            inner.tracking.pending.push((id, Payload::Keys(keys)));
        } else {
            send(inner, id, Payload::Keys(keys));
        }
    }
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT]
/// [NOLOOP], with Redis's checks and error texts, in its order.
pub(crate) fn client_tracking(inner: &mut Inner, id: u64, argv: &[Bytes]) -> Reply {
    use redsnap_engine::cmd::is;
    let mut o = Options::default();
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        let a = &argv[j];
        if is(a, "redirect") && more {
            j += 1;
            if o.redirect != 0 {
                return Reply::err("ERR A client can only redirect to a single other client");
            }
            let Some(r) = redsnap_engine::num::parse_i64(&argv[j]) else {
                return Reply::err("ERR value is not an integer or out of range");
            };
            if r <= 0 || !inner.clients.contains_key(&(r as u64)) {
                return Reply::err("ERR The client ID you want redirect to does not exist");
            }
            o.redirect = r as u64;
        } else if is(a, "bcast") {
            o.bcast = true;
        } else if is(a, "optin") {
            o.optin = true;
        } else if is(a, "optout") {
            o.optout = true;
        } else if is(a, "noloop") {
            o.noloop = true;
        } else if is(a, "prefix") && more {
            j += 1;
            o.prefixes.push(argv[j].clone());
        } else {
            return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
        }
        j += 1;
    }
    if is(&argv[2], "off") {
        disable(inner, id);
        return Reply::ok();
    }
    if !is(&argv[2], "on") {
        return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
    }
    if !o.bcast && !o.prefixes.is_empty() {
        return Reply::err("ERR PREFIX option requires BCAST mode to be enabled");
    }
    let cur = inner.tracking.modes.get(&id);
    if cur.is_some_and(|m| m.bcast != o.bcast) {
        return Reply::err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
    }
    if o.bcast && (o.optin || o.optout) {
        return Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST");
    }
    if o.optin && o.optout {
        return Reply::err("ERR You can't specify both OPTIN mode and OPTOUT mode");
    }
    if cur.is_some_and(|m| (o.optin && m.optout) || (o.optout && m.optin)) {
        return Reply::err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
    }
    if o.bcast {
        if let Some(e) = prefix_collision(inner, id, &o.prefixes) {
            return e;
        }
    }
    enable(inner, id, o);
    Reply::ok()
}

/// CLIENT CACHING YES|NO.
pub(crate) fn client_caching(inner: &mut Inner, id: u64, opt: &[u8]) -> Reply {
    use redsnap_engine::cmd::is;
    let Some(m) = inner.tracking.modes.get_mut(&id) else {
        return Reply::err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    if is(opt, "yes") {
        if !m.optin {
            return Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
    } else if is(opt, "no") {
        if !m.optout {
            return Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
    } else {
        return Reply::err(redsnap_engine::reply::ERR_SYNTAX);
    }
    m.caching = true;
    Reply::ok()
}

/// CLIENT GETREDIR: the redirect id (0: none), -1 without tracking.
pub(crate) fn client_getredir(inner: &Inner, id: u64) -> Reply {
    Reply::Int(inner.tracking.mode(id).map_or(-1, |m| m.redirect as i64))
}

/// CLIENT TRACKINGINFO.
pub(crate) fn client_trackinginfo(inner: &Inner, id: u64) -> Reply {
    let m = inner.tracking.mode(id);
    let mut fl = vec![if m.is_some() { "on" } else { "off" }];
    let mut redirect = -1;
    let mut prefixes = Vec::new();
    if let Some(m) = m {
        if m.bcast {
            fl.push("bcast");
        }
        if m.optin {
            fl.push("optin");
            if m.caching {
                fl.push("caching-yes");
            }
        }
        if m.optout {
            fl.push("optout");
            if m.caching {
                fl.push("caching-no");
            }
        }
        if m.noloop {
            fl.push("noloop");
        }
        if m.broken_redirect {
            fl.push("broken_redirect");
        }
        redirect = m.redirect as i64;
        prefixes = m.prefixes.iter().map(|p| Reply::Bulk(p.clone())).collect();
    }
    Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(fl.into_iter().map(Reply::bulk_str).collect()),
        ),
        (Reply::bulk_str("redirect"), Reply::Int(redirect)),
        (Reply::bulk_str("prefixes"), Reply::Array(prefixes)),
    ])
}

/// CLIENT LIST's tracking flags (`t`, `R`, `B`) and `redir` of a client.
pub(crate) fn client_list_fields(inner: &Inner, id: u64) -> (&'static str, i64) {
    match inner.tracking.mode(id) {
        None => ("", -1),
        Some(m) => {
            let fl = match (m.broken_redirect, m.bcast) {
                (false, false) => "t",
                (true, false) => "tR",
                (false, true) => "tB",
                (true, true) => "tRB",
            };
            (fl, m.redirect as i64)
        }
    }
}
