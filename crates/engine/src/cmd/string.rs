//! String commands (Redis 7.0 `t_string.c`).

use super::is;
use crate::db::own;
use crate::notify;
use crate::num;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::{Bytes, BytesMut};

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, 1, 1, 1, "string", Some(get)),
    cmd("set", -3, WRITE | DENYOOM, 1, 1, 1, "string", Some(set)),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(setnx)),
    cmd("setex", 4, WRITE | DENYOOM, 1, 1, 1, "string", Some(setex)),
    cmd("psetex", 4, WRITE | DENYOOM, 1, 1, 1, "string", Some(psetex)),
    cmd("mget", -2, READONLY | FAST, 1, -1, 1, "string", Some(mget)),
    cmd("mset", -3, WRITE | DENYOOM, 1, -1, 2, "string", Some(mset)),
    cmd("msetnx", -3, WRITE | DENYOOM, 1, -1, 2, "string", Some(msetnx)),
    cmd("getset", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(getset)),
    cmd("getdel", 2, WRITE | FAST, 1, 1, 1, "string", Some(getdel)),
    cmd("getex", -2, WRITE | FAST, 1, 1, 1, "string", Some(getex)),
    cmd("append", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(append)),
    cmd("strlen", 2, READONLY | FAST, 1, 1, 1, "string", Some(strlen)),
    cmd("getrange", 4, READONLY, 1, 1, 1, "string", Some(getrange)),
    cmd("substr", 4, READONLY, 1, 1, 1, "string", Some(getrange)),
    cmd("setrange", 4, WRITE | DENYOOM, 1, 1, 1, "string", Some(setrange)),
    cmd("lcs", -3, READONLY, 1, 2, 1, "string", Some(lcs)),
    cmd("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(incr)),
    cmd("decr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(decr)),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(incrby)),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(decrby)),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", Some(incrbyfloat)),
];

/// The unit of an expire option of SET / GETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Parsed options of SET (`set_cmd`) or GETEX (Redis's `parseExtendedStringArgumentsOrReply`).
#[derive(Default)]
struct StrOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpUnit, &'a Bytes)>,
}

fn parse_str_opts(argv: &[Bytes], start: usize, set_cmd: bool) -> Result<StrOpts<'_>, Reply> {
    let mut o = StrOpts::default();
    let mut j = start;
    while j < argv.len() {
        let a = &argv[j];
        let next = argv.get(j + 1);
        let unit = if is(a, "ex") {
            Some(ExpUnit::Ex)
        } else if is(a, "px") {
            Some(ExpUnit::Px)
        } else if is(a, "exat") {
            Some(ExpUnit::ExAt)
        } else if is(a, "pxat") {
            Some(ExpUnit::PxAt)
        } else {
            None
        };
        if set_cmd && is(a, "nx") && !o.xx {
            o.nx = true;
        } else if set_cmd && is(a, "xx") && !o.nx {
            o.xx = true;
        } else if set_cmd && is(a, "get") {
            o.get = true;
        } else if set_cmd && is(a, "keepttl") && !o.persist && o.expire.is_none() {
            o.keepttl = true;
        } else if !set_cmd && is(a, "persist") && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let (Some(u), Some(n)) = (unit, next) {
            // An expire option may repeat (the last one wins) but not mix with
            // another unit, KEEPTTL or PERSIST.
            if o.keepttl || o.persist || o.expire.is_some_and(|(cur, _)| cur != u) {
                return Err(Reply::err(reply::ERR_SYNTAX));
            }
            o.expire = Some((u, n));
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// Redis's `getExpireMillisecondsOrReply`: the absolute deadline in ms of an expire
/// option, or the "invalid expire time" error naming `name`.
fn expire_ms(now: u64, unit: ExpUnit, arg: &Bytes, name: &str) -> Result<u64, Reply> {
    let mut ms = super::int(arg)?;
    let seconds = matches!(unit, ExpUnit::Ex | ExpUnit::ExAt);
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid_expire(name));
    }
    if seconds {
        ms *= 1000;
    }
    if matches!(unit, ExpUnit::Ex | ExpUnit::Px) {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        ms = ms.checked_add(now).ok_or_else(|| invalid_expire(name))?;
    }
    Ok(ms as u64)
}

/// `ERR invalid expire time in '<cmd>' command`.
pub fn invalid_expire(cmd: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Redis's `getGenericCommand` without the reply: the string value of a key (counting
/// a keyspace hit or miss), WRONGTYPE for other types.
fn get_string(cx: &mut Cx, key: &Bytes) -> Result<Option<Bytes>, Reply> {
    cx.get_str(key)
}

/// The string value of a key for a write command (no hit/miss counting).
fn get_string_w(cx: &mut Cx, key: &Bytes) -> Result<Option<Bytes>, Reply> {
    match cx.entry(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::wrongtype()),
    }
}

fn get(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(get_string(cx, &argv[1])?))
}

/// Redis's `setGenericCommand`.
fn set_generic(
    cx: &mut Cx,
    key: &Bytes,
    val: &Bytes,
    o: &StrOpts,
    name: &str,
    ok_reply: Reply,
    abort_reply: Reply,
) -> CmdResult {
    let deadline = match o.expire {
        Some((unit, arg)) => Some(expire_ms(cx.now, unit, arg, name)?),
        None => None,
    };
    let old = if o.get { get_string(cx, key)? } else { None };
    // Existence only matters under NX / XX (a plain SET overwrites whatever is there,
    // after deleting it if it expired, as Redis's lookupKeyWrite does: free when no
    // key of the database has a deadline).
    let found = if o.nx || o.xx {
        cx.exists(key)
    } else {
        cx.store.expire_if_needed(cx.db, key, cx.now);
        false
    };
    if (o.nx && found) || (o.xx && !found) {
        return Ok(if o.get {
            Reply::opt_bulk(old)
        } else {
            abort_reply
        });
    }
    let ttl = if o.keepttl {
        cx.entry(key).and_then(|e| e.expire_at())
    } else {
        deadline
    };
    // A deadline already past leaves a logically expired key, as in Redis 7.0: the
    // next access deletes it.
    cx.set_value(key, Value::Str(own(val)), ttl);
    cx.notify(notify::STRING, "set", key);
    if deadline.is_some() {
        cx.notify(notify::GENERIC, "expire", key);
    }
    Ok(if o.get {
        Reply::opt_bulk(old)
    } else {
        ok_reply
    })
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]
fn set(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let o = parse_str_opts(argv, 3, true)?;
    set_generic(cx, &argv[1], &argv[2], &o, "set", Reply::ok(), Reply::Nil)
}

fn setnx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let o = StrOpts {
        nx: true,
        ..StrOpts::default()
    };
    set_generic(
        cx,
        &argv[1],
        &argv[2],
        &o,
        "setnx",
        Reply::Int(1),
        Reply::Int(0),
    )
}

fn setex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let o = StrOpts {
        expire: Some((ExpUnit::Ex, &argv[2])),
        ..StrOpts::default()
    };
    set_generic(cx, &argv[1], &argv[3], &o, "setex", Reply::ok(), Reply::Nil)
}

fn psetex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let o = StrOpts {
        expire: Some((ExpUnit::Px, &argv[2])),
        ..StrOpts::default()
    };
    set_generic(
        cx,
        &argv[1],
        &argv[3],
        &o,
        "psetex",
        Reply::ok(),
        Reply::Nil,
    )
}

fn mget(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity((argv.len() - 1).min(1024));
    for k in &argv[1..] {
        out.push(match cx.lookup_read(k).map(|e| e.value()) {
            Some(Value::Str(s)) => Reply::Bulk(s.clone()),
            _ => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

fn mset_generic(cx: &mut Cx, argv: &[Bytes], nx: bool) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(reply::wrong_arity(if nx { "msetnx" } else { "mset" }));
    }
    if nx && argv[1..].chunks_exact(2).any(|kv| cx.exists(&kv[0])) {
        return Ok(Reply::Int(0));
    }
    for kv in argv[1..].chunks_exact(2) {
        // Redis's setKey looks the key up for writing: a stale one expires first.
        cx.store.expire_if_needed(cx.db, &kv[0], cx.now);
        cx.set_value(&kv[0], Value::Str(own(&kv[1])), None);
        cx.notify(notify::STRING, "set", &kv[0]);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

fn mset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    mset_generic(cx, argv, false)
}

fn msetnx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    mset_generic(cx, argv, true)
}

fn getset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let old = get_string(cx, &argv[1])?;
    cx.set_value(&argv[1], Value::Str(own(&argv[2])), None);
    cx.notify(notify::STRING, "set", &argv[1]);
    Ok(Reply::opt_bulk(old))
}

fn getdel(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let old = get_string(cx, &argv[1])?;
    if old.is_some() {
        cx.delete(&argv[1]);
    }
    Ok(Reply::opt_bulk(old))
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]
fn getex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let o = parse_str_opts(argv, 2, false)?;
    let Some(val) = get_string(cx, key)? else {
        return Ok(Reply::Nil);
    };
    let deadline = match o.expire {
        Some((unit, arg)) => Some((unit, expire_ms(cx.now, unit, arg, "getex")?)),
        None => None,
    };
    match deadline {
        Some((ExpUnit::ExAt | ExpUnit::PxAt, ms)) if ms <= cx.now => {
            cx.delete(key);
        }
        Some((_, ms)) => {
            cx.db().set_expire(key, Some(ms));
            cx.modified(key);
            cx.notify(notify::GENERIC, "expire", key);
        }
        None if o.persist && cx.entry(key).is_some_and(|e| e.expire_at().is_some()) => {
            cx.db().set_expire(key, None);
            cx.modified(key);
            cx.notify(notify::GENERIC, "persist", key);
        }
        None => {}
    }
    Ok(Reply::Bulk(val))
}

/// Redis's `checkStringLength`: `size + append` must fit proto-max-bulk-len.
fn check_string_length(cx: &Cx, size: u64, append: u64) -> Result<(), Reply> {
    match size.checked_add(append) {
        Some(total) if total <= cx.config().proto_max_bulk_len => Ok(()),
        _ => Err(Reply::err(reply::ERR_STRING_TOO_LONG)),
    }
}

/// Turns a stored string into a growable buffer, reusing its allocation when nothing
/// else shares it (so repeated APPENDs are amortized O(1)).
pub(crate) fn into_mut(s: Bytes, extra: usize) -> BytesMut {
    match s.try_into_mut() {
        Ok(m) => m,
        Err(b) => {
            let mut m = BytesMut::with_capacity(b.len().saturating_add(extra));
            m.extend_from_slice(&b);
            m
        }
    }
}

fn append(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, val) = (&argv[1], &argv[2]);
    let Some(cur) = get_string_w(cx, key)? else {
        cx.set_value(key, Value::Str(own(val)), None);
        cx.notify(notify::STRING, "append", key);
        return Ok(Reply::Int(val.len() as i64));
    };
    check_string_length(cx, cur.len() as u64, val.len() as u64)?;
    drop(cur);
    let mut total = 0;
    if let Some(obj) = cx.obj_mut(key) {
        // Redis appends to a raw copy (dbUnshareStringValue): raw from then on.
        obj.big_encoding = true;
        if let Value::Str(s) = &mut obj.value {
            let mut m = into_mut(std::mem::take(s), val.len());
            m.extend_from_slice(val);
            total = m.len();
            *s = m.freeze();
        }
    }
    cx.modified(key);
    cx.notify(notify::STRING, "append", key);
    Ok(Reply::Int(total as i64))
}

fn strlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        get_string(cx, &argv[1])?.map_or(0, |s| s.len() as i64),
    ))
}

/// GETRANGE / SUBSTR key start end
fn getrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let mut start = super::int(&argv[2])?;
    let mut end = super::int(&argv[3])?;
    let empty = || Reply::Bulk(Bytes::new());
    let Some(s) = get_string(cx, &argv[1])? else {
        return Ok(empty());
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(empty());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(empty());
    }
    Ok(Reply::Bulk(s.slice(start as usize..=end as usize)))
}

fn setrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, val) = (&argv[1], &argv[3]);
    let offset = super::int(&argv[2])?;
    if offset < 0 {
        return Err(Reply::err("ERR offset is out of range"));
    }
    let offset = offset as u64;
    match get_string_w(cx, key)? {
        None => {
            if val.is_empty() {
                return Ok(Reply::Int(0));
            }
            check_string_length(cx, offset, val.len() as u64)?;
            let off = offset as usize;
            let mut m = BytesMut::zeroed(off + val.len());
            m[off..].copy_from_slice(val);
            let total = m.len();
            cx.set_value(key, Value::Str(m.freeze()), None);
            cx.notify(notify::STRING, "setrange", key);
            // Redis builds the new string raw.
            if let Some(obj) = cx.obj_mut(key) {
                obj.big_encoding = true;
            }
            Ok(Reply::Int(total as i64))
        }
        Some(cur) => {
            if val.is_empty() {
                return Ok(Reply::Int(cur.len() as i64));
            }
            check_string_length(cx, offset, val.len() as u64)?;
            drop(cur);
            let off = offset as usize;
            let end = off + val.len();
            let mut total = 0;
            if let Some(obj) = cx.obj_mut(key) {
                // Edited in a raw copy (dbUnshareStringValue): raw from then on.
                obj.big_encoding = true;
                if let Value::Str(s) = &mut obj.value {
                    let grow = end.saturating_sub(s.len());
                    let mut m = into_mut(std::mem::take(s), grow);
                    if m.len() < end {
                        m.resize(end, 0);
                    }
                    m[off..end].copy_from_slice(val);
                    total = m.len();
                    *s = m.freeze();
                }
            }
            cx.modified(key);
            cx.notify(notify::STRING, "setrange", key);
            Ok(Reply::Int(total as i64))
        }
    }
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
fn lcs(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    // Both keys are looked up (an expired one goes) before either's type is
    // checked, as Redis's lcsCommand does.
    let mut found: [Option<Option<Bytes>>; 2] = [None, None];
    for (slot, key) in found.iter_mut().zip(&argv[1..3]) {
        *slot = cx.lookup_read(key).map(|e| match e.value() {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        });
    }
    let mut strs = [Bytes::new(), Bytes::new()];
    for (slot, f) in strs.iter_mut().zip(found) {
        match f {
            None => {}
            Some(Some(s)) => *slot = s,
            Some(None) => {
                return Err(Reply::err(
                    "ERR The specified keys must contain string values",
                ))
            }
        }
    }
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let opt = &argv[j];
        let more = argv.len() - 1 - j;
        if is(opt, "idx") {
            getidx = true;
        } else if is(opt, "len") {
            getlen = true;
        } else if is(opt, "withmatchlen") {
            withmatchlen = true;
        } else if is(opt, "minmatchlen") && more > 0 {
            minmatchlen = super::int(&argv[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    if getidx && getlen {
        return Err(Reply::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (a, b) = (&strs[0][..], &strs[1][..]);
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(Reply::err("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    let bytes = cells.checked_mul(4);
    if bytes.is_some_and(|n| n > cx.config().proto_max_bulk_len) {
        return Err(Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let alloc_err =
        || Reply::err("ERR Insufficient memory, failed allocating transient memory for LCS");
    let cells = usize::try_from(cells).map_err(|_| alloc_err())?;
    let mut table: Vec<u32> = Vec::new();
    table.try_reserve_exact(cells).map_err(|_| alloc_err())?;
    table.resize(cells, 0);
    let w = blen + 1;
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * w + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * w + j - 1] + 1
            } else {
                table[(i - 1) * w + j].max(table[i * w + j - 1])
            };
        }
    }
    let total = table[alen * w + blen];
    let computelcs = getidx || !getlen;
    let mut result = vec![0u8; if computelcs { total as usize } else { 0 }];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    // Ranges are tracked backwards; `arange_start == alen` means "no current range".
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) =
        (alen, 0usize, 0usize, 0usize);
    let (mut i, mut j) = (alen, blen);
    while computelcs && i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == alen {
                arange_start = i - 1;
                arange_end = i - 1;
                brange_start = j - 1;
                brange_end = j - 1;
            } else if arange_start == i && brange_start == j {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            let lcs1 = table[(i - 1) * w + j];
            let lcs2 = table[i * w + j - 1];
            if lcs1 > lcs2 {
                i -= 1;
            } else {
                j -= 1;
            }
            if arange_start != alen {
                emit = true;
            }
        }
        let match_len = arange_end.wrapping_sub(arange_start).wrapping_add(1);
        if emit {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                let mut m = vec![
                    Reply::Array(vec![
                        Reply::Int(arange_start as i64),
                        Reply::Int(arange_end as i64),
                    ]),
                    Reply::Array(vec![
                        Reply::Int(brange_start as i64),
                        Reply::Int(brange_end as i64),
                    ]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
            arange_start = alen;
        }
    }
    if getidx {
        Ok(Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Int(total as i64)),
        ]))
    } else if getlen {
        Ok(Reply::Int(total as i64))
    } else {
        Ok(Reply::Bulk(Bytes::from(result)))
    }
}

/// Redis's `incrDecrCommand`: adds `incr` to the integer at `key` (keeping its TTL).
fn incr_decr(cx: &mut Cx, key: &Bytes, incr: i64) -> CmdResult {
    // One trie search; the value is replaced in place (its `Arc<Obj>` is copied
    // first if a snapshot shares it, so a snapshot diff still sees the change).
    if let Some(obj) = cx.obj_mut(key) {
        let Value::Str(s) = &mut obj.value else {
            return Err(Reply::wrongtype());
        };
        let new = num::parse_i64(s)
            .ok_or_else(|| Reply::err(reply::ERR_NOT_INT))?
            .checked_add(incr)
            .ok_or_else(|| Reply::err(reply::ERR_OVERFLOW))?;
        *s = num::int_bytes(new);
        // The result is a new integer object in Redis, whatever the old encoding.
        obj.big_encoding = false;
        cx.modified(key);
        cx.notify(notify::STRING, "incrby", key);
        return Ok(Reply::Int(new));
    }
    cx.set_value(key, Value::Str(num::int_bytes(incr)), None);
    cx.notify(notify::STRING, "incrby", key);
    Ok(Reply::Int(incr))
}

fn incr(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    incr_decr(cx, &argv[1], 1)
}

fn decr(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    incr_decr(cx, &argv[1], -1)
}

fn incrby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = super::int(&argv[2])?;
    incr_decr(cx, &argv[1], n)
}

fn decrby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = super::int(&argv[2])?;
    if n == i64::MIN {
        return Err(Reply::err("ERR decrement would overflow"));
    }
    incr_decr(cx, &argv[1], -n)
}

/// INCRBYFLOAT key increment; logged as `SET key <result> KEEPTTL`.
fn incrbyfloat(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, incr) = (&argv[1], &argv[2]);
    let cur = get_string_w(cx, key)?;
    let cur_bytes: &[u8] = cur.as_deref().unwrap_or(b"0");
    let not_float = || Reply::err(reply::ERR_NOT_FLOAT);
    num::ld_valid(cur_bytes).ok_or_else(not_float)?;
    num::ld_valid(incr).ok_or_else(not_float)?;
    let (_, text) = num::incr_float(cur_bytes, incr)
        .ok_or_else(|| Reply::err("ERR increment would produce NaN or Infinity"))?;
    let result = Bytes::from(text);
    let v = Value::Str(result.clone());
    if cur.is_some() {
        cx.db().replace_value(key, v);
        cx.modified(key);
    } else {
        cx.set_value(key, v, None);
    }
    cx.notify(notify::STRING, "incrbyfloat", key);
    cx.propagate(vec![
        Bytes::from_static(b"SET"),
        own(key),
        result.clone(),
        Bytes::from_static(b"KEEPTTL"),
    ]);
    Ok(Reply::Bulk(result))
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::Store;
    use bytes::Bytes;

    const T0: u64 = 1_700_000_000_000;

    fn run(s: &mut Store, now: u64, args: &[&str]) -> Reply {
        let argv: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        s.exec(0, now, &argv)
    }
    fn r(s: &mut Store, args: &[&str]) -> Reply {
        run(s, T0, args)
    }
    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn err(s: &str) -> Reply {
        Reply::Error(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn ok() -> Reply {
        Reply::ok()
    }
    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    const SYNTAX: &str = "ERR syntax error";
    const NOT_INT: &str = "ERR value is not an integer or out of range";

    fn with_list() -> Store {
        let mut s = Store::default();
        s.dbs[0].insert(
            Bytes::from_static(b"l"),
            crate::value::Value::List(std::iter::once(Bytes::from_static(b"x")).collect()),
            None,
        );
        s
    }

    #[test]
    fn get_set_basic() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["get", "k"]), Reply::Nil);
        assert_eq!(r(&mut s, &["set", "k", "v"]), ok());
        assert_eq!(r(&mut s, &["get", "k"]), bulk("v"));
        assert_eq!(r(&mut s, &["get", "l"]), err(WT));
        assert_eq!(
            r(&mut s, &["get"]),
            err("ERR wrong number of arguments for 'get' command")
        );
        // SET overwrites other types.
        assert_eq!(r(&mut s, &["set", "l", "s"]), ok());
        assert_eq!(r(&mut s, &["get", "l"]), bulk("s"));
    }

    #[test]
    fn set_options() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["set", "k", "v", "nx"]), ok());
        assert_eq!(r(&mut s, &["set", "k", "w", "nx"]), Reply::Nil);
        assert_eq!(r(&mut s, &["set", "k", "w", "nx", "get"]), bulk("v"));
        assert_eq!(r(&mut s, &["set", "k", "w", "xx", "get"]), bulk("v"));
        assert_eq!(r(&mut s, &["get", "k"]), bulk("w"));
        assert_eq!(r(&mut s, &["set", "new", "w", "xx"]), Reply::Nil);
        assert_eq!(r(&mut s, &["set", "new", "w", "get"]), Reply::Nil);
        assert_eq!(r(&mut s, &["get", "new"]), bulk("w"));
        assert_eq!(r(&mut s, &["set", "k", "v", "nx", "nx"]), Reply::Nil);
        assert_eq!(r(&mut s, &["set", "k", "v", "xx", "nx"]), err(SYNTAX));
        assert_eq!(
            r(&mut s, &["set", "k", "v", "px", "10", "ex", "5"]),
            err(SYNTAX)
        );
        assert_eq!(
            r(&mut s, &["set", "k", "v", "keepttl", "ex", "5"]),
            err(SYNTAX)
        );
        assert_eq!(
            r(&mut s, &["set", "k", "v", "ex", "5", "keepttl"]),
            err(SYNTAX)
        );
        assert_eq!(r(&mut s, &["set", "k", "v", "ex"]), err(SYNTAX));
        assert_eq!(r(&mut s, &["set", "k", "v", "persist"]), err(SYNTAX));
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "abc"]), err(NOT_INT));
        let bad = err("ERR invalid expire time in 'set' command");
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "0"]), bad);
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "-1"]), bad);
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "9223372036854776"]), bad);
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "9223372036854775"]), bad);
        assert_eq!(
            r(&mut s, &["set", "k", "v", "px", "9223372036854775807"]),
            bad
        );
        assert_eq!(
            r(&mut s, &["set", "k", "v", "exat", "9223372036854775"]),
            ok()
        );
        // GET on a wrong type fails before anything changes; expire errors come first.
        assert_eq!(r(&mut s, &["set", "l", "v", "get"]), err(WT));
        assert_eq!(r(&mut s, &["set", "l", "v", "get", "ex", "0"]), bad);
        assert_eq!(r(&mut s, &["set", "l", "v", "nx"]), Reply::Nil);
        assert_eq!(r(&mut s, &["get", "l"]), err(WT));
        // Repeated expire options: the last one wins.
        assert_eq!(r(&mut s, &["set", "k", "v", "ex", "10", "EX", "20"]), ok());
        assert_eq!(r(&mut s, &["ttl", "k"]), Reply::Int(20));
    }

    #[test]
    fn set_expiry_and_keepttl() {
        let mut s = Store::default();
        assert_eq!(r(&mut s, &["set", "k", "v", "px", "1500"]), ok());
        assert_eq!(r(&mut s, &["pttl", "k"]), Reply::Int(1500));
        assert_eq!(r(&mut s, &["set", "k", "v2", "keepttl"]), ok());
        assert_eq!(r(&mut s, &["pttl", "k"]), Reply::Int(1500));
        assert_eq!(r(&mut s, &["set", "k", "v3"]), ok());
        assert_eq!(r(&mut s, &["pttl", "k"]), Reply::Int(-1));
        assert_eq!(
            r(
                &mut s,
                &["set", "k", "v", "exat", &((T0 / 1000) + 100).to_string()]
            ),
            ok()
        );
        assert_eq!(r(&mut s, &["ttl", "k"]), Reply::Int(100));
        assert_eq!(
            r(&mut s, &["set", "k", "v", "pxat", &(T0 + 5).to_string()]),
            ok()
        );
        assert_eq!(run(&mut s, T0 + 5, &["get", "k"]), bulk("v"));
        assert_eq!(run(&mut s, T0 + 6, &["get", "k"]), Reply::Nil);
        // A deadline in the past leaves a logically expired key.
        assert_eq!(r(&mut s, &["set", "p", "v", "pxat", "1"]), ok());
        assert_eq!(r(&mut s, &["exists", "p"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["setex", "e", "10", "v"]), ok());
        assert_eq!(r(&mut s, &["ttl", "e"]), Reply::Int(10));
        assert_eq!(
            r(&mut s, &["setex", "e", "0", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(
            r(&mut s, &["psetex", "e", "-5", "v"]),
            err("ERR invalid expire time in 'psetex' command")
        );
        assert_eq!(r(&mut s, &["psetex", "e", "x", "v"]), err(NOT_INT));
        assert_eq!(r(&mut s, &["psetex", "e", "2500", "v"]), ok());
        assert_eq!(r(&mut s, &["pttl", "e"]), Reply::Int(2500));
        assert_eq!(run(&mut s, T0 + 2501, &["get", "e"]), Reply::Nil);
    }

    #[test]
    fn dirty_only_when_changed() {
        let mut s = with_list();
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["set", "k", "v"]), ok());
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(s.effects.log.len(), 1);
        assert_eq!(r(&mut s, &["set", "k", "v", "nx"]), Reply::Nil);
        assert_eq!(r(&mut s, &["setnx", "k", "v"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["getdel", "nokey"]), Reply::Nil);
        assert_eq!(r(&mut s, &["getex", "k"]), bulk("v"));
        assert_eq!(r(&mut s, &["getex", "k", "persist"]), bulk("v"));
        assert_eq!(r(&mut s, &["setrange", "k", "0", ""]), Reply::Int(1));
        assert_eq!(r(&mut s, &["msetnx", "a", "1", "k", "2"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["incr", "l"]), err(WT));
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(s.effects.log.len(), 1);
    }

    #[test]
    fn setnx_mset_mget() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["setnx", "a", "1"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["setnx", "a", "2"]), Reply::Int(0));
        assert_eq!(
            r(&mut s, &["mset", "a"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            r(&mut s, &["mset", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            r(&mut s, &["msetnx", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'msetnx' command")
        );
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["mset", "a", "x", "b", "y"]), ok());
        assert_eq!(s.effects.dirty, d0 + 2);
        assert_eq!(
            r(&mut s, &["mget", "a", "l", "nokey", "b"]),
            Reply::Array(vec![bulk("x"), Reply::Nil, Reply::Nil, bulk("y")])
        );
        assert_eq!(r(&mut s, &["msetnx", "c", "1", "a", "2"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["get", "c"]), Reply::Nil);
        assert_eq!(r(&mut s, &["msetnx", "c", "1", "c", "2"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["get", "c"]), bulk("2"));
        // MSET clears TTLs.
        assert_eq!(r(&mut s, &["expire", "a", "100"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["mset", "a", "z"]), ok());
        assert_eq!(r(&mut s, &["ttl", "a"]), Reply::Int(-1));
    }

    #[test]
    fn getset_getdel_getex() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["getset", "k", "1"]), Reply::Nil);
        assert_eq!(r(&mut s, &["expire", "k", "100"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["getset", "k", "2"]), bulk("1"));
        assert_eq!(r(&mut s, &["ttl", "k"]), Reply::Int(-1));
        assert_eq!(r(&mut s, &["getset", "l", "2"]), err(WT));
        assert_eq!(r(&mut s, &["getdel", "l"]), err(WT));
        assert_eq!(r(&mut s, &["getdel", "k"]), bulk("2"));
        assert_eq!(r(&mut s, &["exists", "k"]), Reply::Int(0));

        assert_eq!(r(&mut s, &["set", "s", "hello"]), ok());
        assert_eq!(
            r(&mut s, &["getex", "s", "persist", "ex", "10"]),
            err(SYNTAX)
        );
        assert_eq!(
            r(&mut s, &["getex", "s", "ex", "10", "persist"]),
            err(SYNTAX)
        );
        assert_eq!(r(&mut s, &["getex", "s", "nx"]), err(SYNTAX));
        assert_eq!(r(&mut s, &["getex", "s", "keepttl"]), err(SYNTAX));
        assert_eq!(r(&mut s, &["getex", "nokey", "foo"]), err(SYNTAX));
        assert_eq!(r(&mut s, &["getex", "nokey", "ex", "abc"]), Reply::Nil);
        assert_eq!(r(&mut s, &["getex", "l", "ex", "0"]), err(WT));
        assert_eq!(
            r(&mut s, &["getex", "s", "ex", "0"]),
            err("ERR invalid expire time in 'getex' command")
        );
        assert_eq!(
            r(&mut s, &["getex", "s", "ex", "10", "ex", "20"]),
            bulk("hello")
        );
        assert_eq!(r(&mut s, &["ttl", "s"]), Reply::Int(20));
        assert_eq!(r(&mut s, &["getex", "s", "px", "1234"]), bulk("hello"));
        assert_eq!(r(&mut s, &["pttl", "s"]), Reply::Int(1234));
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["getex", "s", "persist"]), bulk("hello"));
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(r(&mut s, &["ttl", "s"]), Reply::Int(-1));
        assert_eq!(
            r(&mut s, &["getex", "s", "pxat", &(T0 + 10).to_string()]),
            bulk("hello")
        );
        assert_eq!(r(&mut s, &["pttl", "s"]), Reply::Int(10));
        // An absolute deadline not in the future deletes the key.
        assert_eq!(
            r(&mut s, &["getex", "s", "pxat", &T0.to_string()]),
            bulk("hello")
        );
        assert_eq!(s.dbs[0].len(), 1);
        assert_eq!(r(&mut s, &["get", "s"]), Reply::Nil);
    }

    #[test]
    fn append_strlen() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["append", "k", "ab"]), Reply::Int(2));
        assert_eq!(r(&mut s, &["append", "k", "cd"]), Reply::Int(4));
        assert_eq!(r(&mut s, &["append", "k", ""]), Reply::Int(4));
        assert_eq!(r(&mut s, &["get", "k"]), bulk("abcd"));
        assert_eq!(r(&mut s, &["strlen", "k"]), Reply::Int(4));
        assert_eq!(r(&mut s, &["strlen", "nokey"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["strlen", "l"]), err(WT));
        assert_eq!(r(&mut s, &["append", "l", "x"]), err(WT));
        // APPEND keeps the TTL.
        assert_eq!(r(&mut s, &["expire", "k", "50"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["append", "k", "e"]), Reply::Int(5));
        assert_eq!(r(&mut s, &["ttl", "k"]), Reply::Int(50));
        // A snapshot taken before an APPEND keeps the old value.
        let snap = s.snapshot();
        for _ in 0..100 {
            r(&mut s, &["append", "k", "xyz"]);
        }
        assert_eq!(r(&mut s, &["strlen", "k"]), Reply::Int(305));
        let old = snap[0]
            .get(&Bytes::from_static(b"k"))
            .map(|e| e.value().clone());
        assert_eq!(
            old,
            Some(crate::value::Value::Str(Bytes::from_static(b"abcde")))
        );
        s.config.proto_max_bulk_len = 306;
        assert_eq!(
            r(&mut s, &["append", "k", "ab"]),
            err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        );
        assert_eq!(r(&mut s, &["append", "k", "a"]), Reply::Int(306));
    }

    #[test]
    fn getrange_edges() {
        let mut s = with_list();
        r(&mut s, &["set", "s", "hello"]);
        r(&mut s, &["set", "e", ""]);
        let cases: &[(&str, &str, &str)] = &[
            ("0", "-1", "hello"),
            ("-100", "-200", ""),
            ("-1", "-5", ""),
            ("9223372036854775807", "-9223372036854775808", ""),
            ("-9223372036854775808", "9223372036854775807", "hello"),
            ("3", "2", ""),
            ("1", "2", "el"),
            ("-3", "-1", "llo"),
            ("4", "100", "o"),
            ("5", "10", ""),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                r(&mut s, &["getrange", "s", a, b]),
                bulk(want),
                "getrange {a} {b}"
            );
        }
        assert_eq!(r(&mut s, &["substr", "s", "1", "2"]), bulk("el"));
        assert_eq!(r(&mut s, &["getrange", "e", "0", "-1"]), bulk(""));
        assert_eq!(r(&mut s, &["getrange", "e", "-1", "0"]), bulk(""));
        assert_eq!(r(&mut s, &["getrange", "nokey", "0", "-1"]), bulk(""));
        assert_eq!(r(&mut s, &["getrange", "s", "a", "1"]), err(NOT_INT));
        assert_eq!(r(&mut s, &["getrange", "l", "0", "1"]), err(WT));
        assert_eq!(r(&mut s, &["getrange", "l", "a", "1"]), err(NOT_INT));
    }

    #[test]
    fn setrange_edges() {
        let mut s = with_list();
        let too_long = err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        assert_eq!(
            r(&mut s, &["setrange", "x", "9223372036854775807", "a"]),
            too_long
        );
        assert_eq!(
            r(&mut s, &["setrange", "x", "-1", "a"]),
            err("ERR offset is out of range")
        );
        assert_eq!(r(&mut s, &["setrange", "x", "536870912", "a"]), too_long);
        assert_eq!(
            r(&mut s, &["setrange", "x", "536870912", ""]),
            Reply::Int(0)
        );
        assert_eq!(r(&mut s, &["setrange", "x", "abc", "a"]), err(NOT_INT));
        assert_eq!(r(&mut s, &["setrange", "l", "0", ""]), err(WT));
        assert_eq!(r(&mut s, &["exists", "x"]), Reply::Int(0));
        assert_eq!(r(&mut s, &["setrange", "x", "3", "ab"]), Reply::Int(5));
        assert_eq!(
            r(&mut s, &["get", "x"]),
            Reply::Bulk(Bytes::from_static(b"\0\0\0ab"))
        );
        assert_eq!(r(&mut s, &["setrange", "x", "1", "ZZ"]), Reply::Int(5));
        assert_eq!(
            r(&mut s, &["get", "x"]),
            Reply::Bulk(Bytes::from_static(b"\0ZZab"))
        );
        assert_eq!(r(&mut s, &["setrange", "x", "7", "q"]), Reply::Int(8));
        assert_eq!(
            r(&mut s, &["get", "x"]),
            Reply::Bulk(Bytes::from_static(b"\0ZZab\0\0q"))
        );
        assert_eq!(r(&mut s, &["setrange", "x", "100", ""]), Reply::Int(8));
        assert_eq!(
            r(&mut s, &["setrange", "x", "9223372036854775807", "a"]),
            too_long
        );
    }

    #[test]
    fn incr_family() {
        let mut s = with_list();
        assert_eq!(r(&mut s, &["incr", "n"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["incrby", "n", "10"]), Reply::Int(11));
        assert_eq!(r(&mut s, &["decr", "n"]), Reply::Int(10));
        assert_eq!(r(&mut s, &["decrby", "n", "-5"]), Reply::Int(15));
        assert_eq!(r(&mut s, &["get", "n"]), bulk("15"));
        assert_eq!(r(&mut s, &["expire", "n", "100"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["incr", "n"]), Reply::Int(16));
        assert_eq!(r(&mut s, &["ttl", "n"]), Reply::Int(100));
        r(&mut s, &["set", "n", "9223372036854775807"]);
        assert_eq!(
            r(&mut s, &["incr", "n"]),
            err("ERR increment or decrement would overflow")
        );
        r(&mut s, &["set", "n", "-9223372036854775808"]);
        assert_eq!(
            r(&mut s, &["decr", "n"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            r(&mut s, &["decrby", "n", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(
            r(&mut s, &["decrby", "zz", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(r(&mut s, &["incrby", "n", "abc"]), err(NOT_INT));
        assert_eq!(r(&mut s, &["incrby", "l", "abc"]), err(NOT_INT));
        assert_eq!(r(&mut s, &["incr", "l"]), err(WT));
        for bad in [" 1", "1 ", "1.5", "01", "-0", ""] {
            r(&mut s, &["set", "b", bad]);
            assert_eq!(r(&mut s, &["incr", "b"]), err(NOT_INT), "{bad:?}");
        }
    }

    #[test]
    fn incrbyfloat_cases() {
        let mut s = with_list();
        let log0 = s.effects.log.len();
        assert_eq!(r(&mut s, &["incrbyfloat", "f", "10.5"]), bulk("10.5"));
        assert_eq!(r(&mut s, &["incrbyfloat", "f", "0.1"]), bulk("10.6"));
        assert_eq!(r(&mut s, &["get", "f"]), bulk("10.6"));
        let rec = s.effects.log.last().map(|l| l.argv.clone());
        let want: Vec<Bytes> = ["SET", "f", "10.6", "KEEPTTL"]
            .iter()
            .map(|x| Bytes::from(*x))
            .collect();
        assert_eq!(rec, Some(want));
        assert_eq!(s.effects.log.len(), log0 + 2);
        assert_eq!(r(&mut s, &["incrbyfloat", "n", "3.0e3"]), bulk("3000"));
        assert_eq!(
            r(&mut s, &["incrbyfloat", "f", "abc"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(r(&mut s, &["incrbyfloat", "l", "abc"]), err(WT));
        r(&mut s, &["set", "bad", "abc"]);
        assert_eq!(
            r(&mut s, &["incrbyfloat", "bad", "1"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            r(&mut s, &["incrbyfloat", "f", "inf"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(
            r(&mut s, &["incrbyfloat", "f", " 1"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(r(&mut s, &["expire", "f", "100"]), Reply::Int(1));
        assert_eq!(r(&mut s, &["incrbyfloat", "f", "-0.6"]), bulk("10"));
        assert_eq!(r(&mut s, &["ttl", "f"]), Reply::Int(100));
        assert_eq!(s.effects.log.len(), log0 + 6);
    }

    #[test]
    fn lcs_looks_up_both_keys_before_checking_types() {
        let mut s = with_list();
        // A key whose deadline passed stays until something looks it up (no active
        // expiry here); LCS looks up its second key even when the first one is of
        // the wrong type, so the expired key goes, as in Redis.
        r(&mut s, &["set", "gone", "v", "pxat", "1"]);
        let before = r(&mut s, &["dbsize"]);
        assert_eq!(
            r(&mut s, &["lcs", "l", "gone"]),
            Reply::err("ERR The specified keys must contain string values")
        );
        let Reply::Int(n) = before else {
            panic!("{before:?}")
        };
        assert_eq!(r(&mut s, &["dbsize"]), Reply::Int(n - 1));
    }

    #[test]
    fn lcs_cases() {
        let mut s = with_list();
        r(&mut s, &["mset", "key1", "ohmytext", "key2", "mynewtext"]);
        assert_eq!(r(&mut s, &["lcs", "key1", "key2"]), bulk("mytext"));
        assert_eq!(r(&mut s, &["lcs", "key1", "key2", "len"]), Reply::Int(6));
        let range = |a: i64, b: i64| Reply::Array(vec![Reply::Int(a), Reply::Int(b)]);
        assert_eq!(
            r(&mut s, &["lcs", "key1", "key2", "idx"]),
            Reply::Map(vec![
                (
                    bulk("matches"),
                    Reply::Array(vec![
                        Reply::Array(vec![range(4, 7), range(5, 8)]),
                        Reply::Array(vec![range(2, 3), range(0, 1)]),
                    ])
                ),
                (bulk("len"), Reply::Int(6)),
            ])
        );
        assert_eq!(
            r(
                &mut s,
                &[
                    "lcs",
                    "key1",
                    "key2",
                    "idx",
                    "minmatchlen",
                    "4",
                    "withmatchlen"
                ]
            ),
            Reply::Map(vec![
                (
                    bulk("matches"),
                    Reply::Array(vec![Reply::Array(vec![
                        range(4, 7),
                        range(5, 8),
                        Reply::Int(4)
                    ])])
                ),
                (bulk("len"), Reply::Int(6)),
            ])
        );
        assert_eq!(
            r(&mut s, &["lcs", "key1", "key2", "idx", "len"]),
            err("ERR If you want both the length and indexes, please just use IDX.")
        );
        assert_eq!(
            r(&mut s, &["lcs", "key1", "key2", "minmatchlen"]),
            err(SYNTAX)
        );
        assert_eq!(
            r(&mut s, &["lcs", "key1", "key2", "minmatchlen", "x"]),
            err(NOT_INT)
        );
        assert_eq!(r(&mut s, &["lcs", "key1", "key2", "foo"]), err(SYNTAX));
        let strerr = err("ERR The specified keys must contain string values");
        assert_eq!(r(&mut s, &["lcs", "key1", "l"]), strerr);
        assert_eq!(r(&mut s, &["lcs", "l", "key1", "foo"]), strerr);
        assert_eq!(
            r(&mut s, &["lcs", "nokey", "nokey2", "idx"]),
            Reply::Map(vec![
                (bulk("matches"), Reply::Array(vec![])),
                (bulk("len"), Reply::Int(0))
            ])
        );
        assert_eq!(r(&mut s, &["lcs", "nokey", "key1"]), bulk(""));
        s.config.proto_max_bulk_len = 100;
        assert_eq!(
            r(&mut s, &["lcs", "key1", "key2"]),
            err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        );
    }

    #[test]
    fn stored_values_are_owned() {
        let mut s = Store::default();
        let buf = Bytes::from_static(b"setkkkvvv");
        let argv = vec![Bytes::from_static(b"set"), buf.slice(3..6), buf.slice(6..9)];
        let big = Bytes::from(vec![7u8; 4096]);
        assert_eq!(s.exec(0, T0, &argv), ok());
        let argv = vec![
            Bytes::from_static(b"append"),
            Bytes::from_static(b"a"),
            big.slice(0..3),
        ];
        assert_eq!(s.exec(0, T0, &argv), Reply::Int(3));
        // The stored value must not keep the 4 KiB request buffer alive.
        drop(argv);
        s.effects.log.clear();
        assert!(big.try_into_mut().is_ok());
    }
}
