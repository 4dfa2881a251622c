//! Stream commands (Redis 7.0's `t_stream.c`): XADD XRANGE XREVRANGE XLEN XDEL XTRIM
//! XSETID XREAD. Consumer groups are in `stream_group.rs`. XREAD and XREADGROUP are
//! server commands (they block); the server runs them through [`xread`] and, once
//! blocked, [`serve_blocked`].

use super::is;
use crate::db::own;
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx, Store};
use crate::stream::{Item, Stream, StreamId, Trim};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::Bytes;

pub use super::stream_group::{xgroup_subs, xinfo_subs};

const fn with_subs(c: CommandSpec, subs: &'static [CommandSpec]) -> CommandSpec {
    CommandSpec { subs, ..c }
}

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("xadd", -5, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", Some(xadd)),
    cmd("xrange", -4, READONLY, 1, 1, 1, "stream", Some(xrange)),
    cmd("xrevrange", -4, READONLY, 1, 1, 1, "stream", Some(xrevrange)),
    cmd("xlen", 2, READONLY | FAST, 1, 1, 1, "stream", Some(xlen)),
    cmd("xdel", -3, WRITE | FAST, 1, 1, 1, "stream", Some(xdel)),
    cmd("xtrim", -4, WRITE, 1, 1, 1, "stream", Some(xtrim)),
    cmd("xsetid", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", Some(xsetid)),
    cmd("xread", -4, READONLY | BLOCKING | MOVABLEKEYS, 0, 0, 0, "stream", None),
    cmd("xreadgroup", -7, WRITE | BLOCKING | MOVABLEKEYS, 0, 0, 0, "stream", None),
    cmd("xack", -4, WRITE | FAST, 1, 1, 1, "stream", Some(super::stream_group::xack)),
    cmd("xpending", -3, READONLY, 1, 1, 1, "stream", Some(super::stream_group::xpending)),
    cmd("xclaim", -6, WRITE | FAST, 1, 1, 1, "stream", Some(super::stream_group::xclaim)),
    cmd("xautoclaim", -6, WRITE | FAST, 1, 1, 1, "stream", Some(super::stream_group::xautoclaim)),
    with_subs(cmd("xgroup", -2, 0, 0, 0, 0, "stream", Some(super::stream_group::xgroup)), xgroup_subs()),
    with_subs(cmd("xinfo", -2, 0, 0, 0, 0, "stream", Some(super::stream_info::xinfo)), xinfo_subs()),
];

pub const ERR_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Redis's `string2ull`.
fn parse_u64(b: &[u8]) -> Option<u64> {
    // Decimal digits alone (the common case, zero-padded or not): both paths below
    // give exactly this (an overflow fails in strtoull too).
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        let mut v: u64 = 0;
        for &c in b {
            v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        }
        return Some(v);
    }
    if let Some(v) = crate::num::parse_i64(b) {
        return u64::try_from(v).ok();
    }
    // strtoull: optional leading spaces and sign, then decimal digits only.
    let s = std::str::from_utf8(b).ok()?;
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse::<u64>().ok()
}

/// Redis's `streamGenericParseIDOrReply`. `strict` refuses `-` and `+`; with
/// `seq_given` (XADD) `ms-*` is accepted and reports false.
fn parse_id_generic(
    b: &[u8],
    missing_seq: u64,
    strict: bool,
    mut seq_given: Option<&mut bool>,
) -> Result<StreamId, Reply> {
    let invalid = || Reply::err(ERR_INVALID_ID);
    if b.len() > 127 {
        return Err(invalid());
    }
    // C string semantics: the text ends at the first NUL.
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    if strict && (b == b"-" || b == b"+") {
        return Err(invalid());
    }
    if let Some(g) = seq_given.as_deref_mut() {
        *g = true;
    }
    if b == b"-" {
        return Ok(StreamId::MIN);
    }
    if b == b"+" {
        return Ok(StreamId::MAX);
    }
    match b.iter().position(|&c| c == b'-') {
        Some(dot) => {
            let ms = parse_u64(&b[..dot]).ok_or_else(invalid)?;
            let rest = &b[dot + 1..];
            let seq = if seq_given.is_some() && rest == b"*" {
                if let Some(g) = seq_given {
                    *g = false;
                }
                0
            } else {
                parse_u64(rest).ok_or_else(invalid)?
            };
            Ok(StreamId::new(ms, seq))
        }
        None => Ok(StreamId::new(
            parse_u64(b).ok_or_else(invalid)?,
            missing_seq,
        )),
    }
}

/// A strict ID (no `-`/`+`): XDEL, XACK, XCLAIM, XSETID...
pub fn parse_strict_id(b: &[u8]) -> Result<StreamId, Reply> {
    parse_id_generic(b, 0, true, None)
}

/// An ID where `-` and `+` are allowed (XGROUP SETID).
pub fn parse_id(b: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_generic(b, missing_seq, false, None)
}

/// Redis's `streamParseIntervalIDOrReply`: returns the ID and whether it was
/// exclusive (`(` prefix).
pub fn parse_interval_id(b: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if b.len() > 1 && b[0] == b'(' {
        Ok((parse_id_generic(&b[1..], missing_seq, true, None)?, true))
    } else {
        Ok((parse_id(b, missing_seq)?, false))
    }
}

/// A range start, incremented when exclusive.
pub fn parse_range_start(b: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval_id(b, 0)?;
    if ex {
        id.incr()
            .ok_or_else(|| Reply::err("ERR invalid start ID for the interval"))
    } else {
        Ok(id)
    }
}

/// A range end, decremented when exclusive.
pub fn parse_range_end(b: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval_id(b, u64::MAX)?;
    if ex {
        id.decr()
            .ok_or_else(|| Reply::err("ERR invalid end ID for the interval"))
    } else {
        Ok(id)
    }
}

pub fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

/// One entry as replies show it: `[id, [field, value, ...]]`.
pub fn item_reply((id, fields): Item) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.into_iter().map(Reply::Bulk).collect()),
    ])
}

pub fn items_reply(items: Vec<Item>) -> Reply {
    Reply::Array(items.into_iter().map(item_reply).collect())
}

fn long(b: &Bytes) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))
}

/// The stream at `key` for a read (counts a hit or miss); WRONGTYPE for others.
pub fn read_stream<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<&'a Stream>, Reply> {
    match cx.lookup_read(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// The stream at `key` for a write (Redis's lookupKeyWrite: no hit/miss counted):
/// one hash and one keyspace search (the type is checked before the value is made
/// mutable, so WRONGTYPE copies and marks nothing).
pub fn write_stream<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<&'a mut Stream>, Reply> {
    let (db, now) = (cx.db, cx.now);
    let store = &mut *cx.store;
    store.expire_if_needed(db, key, now);
    let (lfu, rng) = (store.lfu, &mut store.rng);
    let obj = store.dbs[db].get_mut_checked(key, |o| match o.value {
        Value::Stream(_) => {
            Store::touch_obj(lfu, o, now, rng);
            Ok(true)
        }
        _ => Err(Reply::wrongtype()),
    })?;
    match obj.map(|o| &mut o.value) {
        Some(Value::Stream(s)) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// Creates an empty stream at an absent `key` (raises "new").
pub fn create_stream(cx: &mut Cx, key: &Bytes) {
    cx.set_value(&own(key), Value::Stream(Box::default()), None);
}

/// Parsed XADD/XTRIM options (Redis's `streamAddTrimArgs`).
struct AddTrimArgs {
    id: StreamId,
    id_given: bool,
    seq_given: bool,
    no_mkstream: bool,
    trim: Trim,
    /// Index of the MAXLEN/MINID value (the `~`/`=` is just before it when given).
    trim_arg_idx: usize,
    approx: bool,
    limit: u64,
    /// Index of the LIMIT keyword, if given.
    limit_idx: Option<usize>,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`; returns the args and the index where
/// parsing stopped (XADD: the ID).
fn parse_add_trim(cx: &Cx, argv: &[Bytes], xadd: bool) -> Result<(AddTrimArgs, usize), Reply> {
    let mut a = AddTrimArgs {
        id: StreamId::MIN,
        id_given: false,
        seq_given: true,
        no_mkstream: false,
        trim: Trim::None,
        trim_arg_idx: 0,
        approx: false,
        limit: 0,
        limit_idx: None,
    };
    let mut limit: i64 = 0;
    let mut limit_given = false;
    let mut i = 2;
    let argc = argv.len();
    const BOTH: &str =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    while i < argc {
        let more = argc - 1 - i;
        let opt = &argv[i];
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if is(opt, "maxlen") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::err(BOTH));
            }
            a.approx = false;
            let next = &argv[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let maxlen = long(&argv[i + 1])?;
            if maxlen < 0 {
                return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
            }
            i += 1;
            a.trim = Trim::MaxLen(maxlen as u64);
            a.trim_arg_idx = i;
        } else if is(opt, "minid") && more > 0 {
            if a.trim != Trim::None {
                return Err(Reply::err(BOTH));
            }
            a.approx = false;
            let next = &argv[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let id = parse_strict_id(&argv[i + 1])?;
            i += 1;
            a.trim = Trim::MinId(id);
            a.trim_arg_idx = i;
        } else if is(opt, "limit") && more > 0 {
            limit = long(&argv[i + 1])?;
            if limit < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            a.limit_idx = Some(i);
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            let mut seq_given = true;
            a.id = parse_id_generic(opt, 0, true, Some(&mut seq_given))?;
            a.seq_given = seq_given;
            a.id_given = true;
            break;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 1;
    }
    if limit != 0 && a.trim == Trim::None {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && a.trim == Trim::None {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !a.approx {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        a.limit = limit as u64;
    } else if a.approx {
        let l = 100i64.saturating_mul(cx.config().stream_node_max_entries as i64);
        a.limit = if l <= 0 {
            10000
        } else {
            l.min(1_000_000) as u64
        };
    }
    Ok((a, i))
}

/// The argument Redis propagates for an approximate trim: the resulting length
/// (MAXLEN) or first ID, tombstones included (MINID).
fn trim_rewrite(s: &Stream, trim: Trim) -> Bytes {
    match trim {
        Trim::MaxLen(_) => Bytes::from(s.length.to_string()),
        _ => s.edge_id(true, false).to_bytes(),
    }
}

/// The command as propagated after an approximate trim: `~` becomes `=` with the
/// resulting threshold, and LIMIT goes (a replica or a replay trims exactly, and
/// LIMIT without `~` is refused; Redis's replicas ignore it).
fn rewrite_trim(argv: &[Bytes], a: &AddTrimArgs, value: Bytes) -> Vec<Bytes> {
    let mut prop = argv.to_vec();
    prop[a.trim_arg_idx - 1] = Bytes::from_static(b"=");
    prop[a.trim_arg_idx] = value;
    if let Some(l) = a.limit_idx {
        prop.drain(l..l + 2);
    }
    prop
}

/// XADD's append and trim (Redis's `streamAppendItem` and `streamTrim`): the new
/// ID, how many entries the trim removed, and the trim's exact threshold when it
/// was approximate.
fn add_entry(
    s: &mut Stream,
    a: &AddTrimArgs,
    pairs: &[Bytes],
    max_entries: u64,
    max_bytes: u64,
) -> Result<(StreamId, u64, Option<Bytes>), Reply> {
    if s.last_id == StreamId::MAX {
        return Err(Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = if a.id_given {
        if a.seq_given {
            a.id
        } else if s.last_id.ms == a.id.ms {
            if s.last_id.seq == u64::MAX {
                return Err(Reply::err(
                    "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                ));
            }
            StreamId::new(a.id.ms, s.last_id.seq + 1)
        } else {
            a.id
        }
    } else {
        // One clock read (the test and the ID use the same reading).
        let now = crate::now_ms();
        if now > s.last_id.ms {
            StreamId::new(now, 0)
        } else {
            s.last_id.incr().unwrap_or(StreamId::MIN)
        }
    };
    if id <= s.last_id {
        return Err(Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ));
    }
    // The values are copied into the node (and the field names, when they start a
    // node, by `append`): the arguments are used in place.
    let total: u64 = pairs.iter().map(|p| p.len() as u64).sum();
    if total > crate::stream::lp::MAX_SIZE {
        return Err(Reply::err("ERR Elements are too large to be stored"));
    }
    s.append(id, pairs, max_entries, max_bytes);
    let mut trimmed = 0;
    let mut rewritten = None;
    if a.trim != Trim::None {
        trimmed = s.trim(a.trim, a.approx, a.limit);
        if a.approx {
            rewritten = Some(trim_rewrite(s, a.trim));
        }
    }
    Ok((id, trimmed, rewritten))
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...
fn xadd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (a, idpos) = parse_add_trim(cx, argv, true)?;
    let field_pos = idpos + 1;
    let nf = argv.len().saturating_sub(field_pos);
    if nf < 2 || !nf.is_multiple_of(2) {
        return Err(reply::wrong_arity("xadd"));
    }
    if a.id_given && a.seq_given && a.id.is_zero() {
        return Err(Reply::err(
            "ERR The ID specified in XADD must be greater than 0-0",
        ));
    }
    let key = &argv[1];
    let (max_entries, max_bytes) = (
        cx.config().stream_node_max_entries,
        cx.config().stream_node_max_bytes,
    );
    let pairs = &argv[field_pos..];
    // One keyspace search for an existing stream; a new one is created, then found.
    let added = match write_stream(cx, key)? {
        Some(s) => Some(add_entry(s, &a, pairs, max_entries, max_bytes)?),
        None => None,
    };
    let (id, trimmed, rewritten) = match added {
        Some(added) => added,
        None => {
            if a.no_mkstream {
                return Ok(Reply::Nil);
            }
            create_stream(cx, key);
            let Some(s) = write_stream(cx, key)? else {
                return Err(Reply::err("ERR internal error: stream not created"));
            };
            add_entry(s, &a, pairs, max_entries, max_bytes)?
        }
    };
    cx.modified(key);
    cx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        cx.notify(notify::STREAM, "xtrim", key);
    }
    // Propagate the concrete ID and an exact trim (Redis rewrites its argv).
    let id_bytes = id.to_bytes();
    let mut prop = argv.to_vec();
    if !a.id_given || !a.seq_given {
        prop[idpos] = id_bytes.clone();
    }
    if let Some(v) = rewritten {
        prop = rewrite_trim(&prop, &a, v);
    }
    cx.propagate(prop);
    Ok(Reply::Bulk(id_bytes))
}

/// Redis's `getTimeoutFromObjectOrReply` in milliseconds (XREAD's BLOCK).
fn timeout_ms_from(b: &Bytes) -> Result<u64, Reply> {
    let t = crate::num::parse_i64(b)
        .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
    if t < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    if t > i64::MAX - crate::now_ms() as i64 {
        return Err(Reply::err("ERR timeout is out of range"));
    }
    Ok(t as u64)
}

fn range_generic(cx: &mut Cx, argv: &[Bytes], rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = parse_range_start(sa)?;
    let end = parse_range_end(ea)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if is(&argv[j], "count") && j + 1 < argv.len() {
            count = long(&argv[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let Some(s) = read_stream(cx, &argv[1])? else {
        return Ok(Reply::Array(vec![]));
    };
    if count == 0 {
        return Ok(Reply::NilArray);
    }
    let count = if count < 0 { 0 } else { count as usize };
    Ok(items_reply(s.range(start, end, rev, count)))
}

/// XRANGE key start end [COUNT n]
fn xrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_generic(cx, argv, false)
}

/// XREVRANGE key end start [COUNT n]
fn xrevrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_generic(cx, argv, true)
}

/// XLEN key
fn xlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        read_stream(cx, &argv[1])?.map_or(0, |s| s.length as i64),
    ))
}

/// XDEL key id [id ...]
fn xdel(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if write_stream(cx, key)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = argv[2..]
        .iter()
        .map(|a| parse_strict_id(a))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(s) = write_stream(cx, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut deleted = 0u64;
    let mut first_entry = false;
    for id in ids {
        if s.delete(id) {
            if id == s.first_id {
                first_entry = true;
            }
            if id > s.max_deleted {
                s.max_deleted = id;
            }
            deleted += 1;
        }
    }
    if deleted > 0 {
        if s.length == 0 {
            s.first_id = StreamId::MIN;
        } else if first_entry {
            s.first_id = s.edge_id(true, true);
        }
        cx.modified_n(key, deleted);
        cx.notify(notify::STREAM, "xdel", key);
    }
    Ok(Reply::Int(deleted as i64))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
fn xtrim(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (a, _) = parse_add_trim(cx, argv, false)?;
    let key = &argv[1];
    let Some(s) = write_stream(cx, key)? else {
        return Ok(Reply::Int(0));
    };
    let deleted = s.trim(a.trim, a.approx, a.limit);
    if deleted > 0 {
        let rewritten = a.approx.then(|| trim_rewrite(s, a.trim));
        cx.notify(notify::STREAM, "xtrim", key);
        cx.modified_n(key, deleted);
        if let Some(v) = rewritten {
            cx.propagate(rewrite_trim(argv, &a, v));
        }
    }
    Ok(Reply::Int(deleted as i64))
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]
fn xsetid(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let id = parse_strict_id(&argv[2])?;
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is(&argv[i], "entriesadded") && more > 0 {
            entries_added = long(&argv[i + 1])?;
            if entries_added < 0 {
                return Err(Reply::err("ERR entries_added must be positive"));
            }
            i += 2;
        } else if is(&argv[i], "maxdeletedid") && more > 0 {
            max_xdel = parse_strict_id(&argv[i + 1])?;
            if id < max_xdel {
                return Err(Reply::err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
            i += 2;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let key = &argv[1];
    let Some(s) = write_stream(cx, key)? else {
        return Err(Reply::err(reply::ERR_NO_KEY));
    };
    if s.length > 0 {
        if id < s.last_valid_id() {
            return Err(Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added != -1 && s.length > entries_added as u64 {
            return Err(Reply::err("ERR The entries_added specified in XSETID is smaller than the target stream length"));
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_xdel.is_zero() {
        s.max_deleted = max_xdel;
    }
    cx.modified(key);
    cx.notify(notify::STREAM, "xsetid", key);
    Ok(Reply::ok())
}

// ----- XREAD / XREADGROUP -----

/// XREAD's default COUNT for a client served after blocking.
const BLOCKED_DEFAULT_COUNT: u64 = 1000;

/// What a blocked XREAD/XREADGROUP waits for on its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct XReadWait {
    /// Per key, the ID entries must be greater than.
    pub ids: Vec<(Bytes, StreamId)>,
    pub count: u64,
    /// Group, consumer and NOACK for XREADGROUP.
    pub group: Option<(Bytes, Bytes, bool)>,
}

/// The outcome of an XREAD/XREADGROUP call.
#[derive(Debug)]
pub enum XRead {
    Reply(Reply),
    /// Nothing to read and BLOCK was given: the server blocks the client for
    /// `timeout` ms (0 = forever) on the keys of `wait`.
    Block {
        timeout: u64,
        wait: XReadWait,
    },
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key... id... and XREADGROUP GROUP g c
/// [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id... (Redis's `xreadCommand`).
/// `can_block` is false inside MULTI and scripts (CLIENT_DENY_BLOCKING);
/// `in_script` refuses BLOCK as Redis does.
pub fn xread(cx: &mut Cx, argv: &[Bytes], in_script: bool, can_block: bool) -> XRead {
    match xread_inner(cx, argv, in_script, can_block) {
        Ok(r) => r,
        Err(e) => XRead::Reply(e),
    }
}

fn xread_inner(
    cx: &mut Cx,
    argv: &[Bytes],
    in_script: bool,
    can_block: bool,
) -> Result<XRead, Reply> {
    let xreadgroup = argv[0].len() == 10;
    let name = String::from_utf8_lossy(&argv[0]).into_owned();
    let mut timeout: Option<u64> = None;
    let mut count: i64 = 0;
    let mut streams_arg = 0;
    let mut noack = false;
    let mut group: Option<(Bytes, Bytes)> = None;
    let argc = argv.len();
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let o = &argv[i];
        if is(o, "block") && more > 0 {
            if in_script {
                return Err(Reply::error(format!(
                    "ERR {name} command is not allowed with BLOCK option from scripts"
                )));
            }
            i += 1;
            timeout = Some(timeout_ms_from(&argv[i])?);
        } else if is(o, "count") && more > 0 {
            i += 1;
            count = long(&argv[i])?.max(0);
        } else if is(o, "streams") && more > 0 {
            streams_arg = i + 1;
            break;
        } else if is(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Reply::err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
            }
            group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if is(o, "noack") {
            if !xreadgroup {
                return Err(Reply::err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
            }
            noack = true;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let n = argc - streams_arg;
    if !n.is_multiple_of(2) {
        return Err(Reply::err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
    }
    let n = n / 2;
    if xreadgroup && group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    let keys = &argv[streams_arg..streams_arg + n];
    let id_args = &argv[streams_arg + n..];
    let mut ids = Vec::with_capacity(n);
    for (key, ida) in keys.iter().zip(id_args) {
        let s = read_stream(cx, key)?;
        if let Some((g, _)) = &group {
            if s.is_none_or(|s| !s.groups.contains_key(g)) {
                return Err(Reply::error(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(g)
                )));
            }
        }
        if ida.as_ref() == b"$" {
            if xreadgroup {
                return Err(Reply::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            ids.push(s.map_or(StreamId::MIN, |s| s.last_id));
        } else if ida.as_ref() == b">" {
            if !xreadgroup {
                return Err(Reply::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            ids.push(StreamId::MAX);
        } else {
            ids.push(parse_strict_id(ida)?);
        }
    }
    let mut out: Vec<(Reply, Reply)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(s) = read_stream(cx, key)? else {
            continue;
        };
        let mut gt = ids[i];
        let mut serve = false;
        let mut history = false;
        if let Some((g, _)) = &group {
            if gt != StreamId::MAX {
                serve = true;
                history = true;
            } else if s.length > 0 {
                let last = s.groups.get(g).map_or(StreamId::MAX, |g| g.last_id);
                if s.last_valid_id() > last {
                    serve = true;
                    gt = last;
                }
            }
        } else if s.length > 0 && s.last_valid_id() > gt {
            serve = true;
        }
        if !serve {
            continue;
        }
        let start = gt.incr().unwrap_or(StreamId::MIN);
        let entries = match &group {
            None => {
                let s = read_stream(cx, key)?.ok_or_else(Reply::wrongtype)?;
                items_reply(s.range(start, StreamId::MAX, false, count as usize))
            }
            Some((g, c)) => super::stream_group::read_group(
                cx,
                key,
                g,
                c,
                start,
                count as u64,
                noack,
                history,
                true,
            )?,
        };
        out.push((Reply::Bulk(key.clone()), entries));
    }
    if xreadgroup {
        // XREADGROUP propagates what it did (XCLAIM, XGROUP SETID), never itself.
        cx.no_propagate();
    }
    if !out.is_empty() {
        return Ok(XRead::Reply(keyed_reply(cx.resp3, out)));
    }
    if let Some(t) = timeout {
        if !can_block {
            return Ok(XRead::Reply(Reply::NilArray));
        }
        let wait = XReadWait {
            ids: keys.iter().cloned().zip(ids).collect(),
            count: if count > 0 {
                count as u64
            } else {
                BLOCKED_DEFAULT_COUNT
            },
            group: group.map(|(g, c)| (g, c, noack)),
        };
        return Ok(XRead::Block { timeout: t, wait });
    }
    Ok(XRead::Reply(Reply::NilArray))
}

/// `[[key, entries], ...]` (RESP2) or `{key: entries}` (RESP3).
fn keyed_reply(resp3: bool, out: Vec<(Reply, Reply)>) -> Reply {
    if resp3 {
        Reply::Map(out)
    } else {
        Reply::Array(
            out.into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
        )
    }
}

/// What serving a blocked reader on one key gave.
#[derive(Debug)]
pub enum Served {
    /// Nothing for it yet: it stays blocked.
    NotReady,
    /// Its reply (data, or an error that ends its wait).
    Reply(Reply),
}

/// Serves a client blocked by XREAD/XREADGROUP on `key` (Redis's
/// `serveClientsBlockedOnStreamKey` and `unblockDeletedStreamReadgroupClients`
/// for one client). Runs in the blocked client's database with its protocol.
pub fn serve_blocked(cx: &mut Cx, key: &Bytes, wait: &XReadWait) -> Served {
    let Some(mut gt) = wait.ids.iter().find(|(k, _)| k == key).map(|(_, id)| *id) else {
        return Served::NotReady;
    };
    let s = match cx.entry(key).map(|e| e.value()) {
        Some(Value::Stream(s)) => s,
        _ => {
            return if wait.group.is_some() {
                Served::Reply(Reply::err("UNBLOCKED the stream key no longer exists"))
            } else {
                Served::NotReady
            };
        }
    };
    if let Some((g, _, _)) = &wait.group {
        match s.groups.get(g) {
            None => {
                return Served::Reply(Reply::err(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                ))
            }
            Some(g) => gt = g.last_id,
        }
    }
    if s.last_id <= gt {
        return Served::NotReady;
    }
    let start = gt.incr().unwrap_or(StreamId::MIN);
    let entries = match &wait.group {
        None => items_reply(s.range(start, StreamId::MAX, false, wait.count as usize)),
        Some((g, c, noack)) => {
            match super::stream_group::read_group(
                cx, key, g, c, start, wait.count, *noack, false, true,
            ) {
                Ok(r) => r,
                Err(e) => return Served::Reply(e),
            }
        }
    };
    if wait.group.is_some() {
        cx.no_propagate();
    }
    Served::Reply(keyed_reply(
        cx.resp3,
        vec![(Reply::Bulk(key.clone()), entries)],
    ))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
