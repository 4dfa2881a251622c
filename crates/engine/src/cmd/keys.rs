//! Generic key commands (Redis 7.0 `db.c`, `expire.c`, `object.c`).

use super::is;
use crate::db::own;
use crate::glob::glob_match;
use crate::num;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx, EngineConfig};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::{Kind, Value};
use bytes::Bytes;
use rand::Rng;

const fn with_subs(c: CommandSpec, subs: &'static [CommandSpec]) -> CommandSpec {
    CommandSpec { subs, ..c }
}

const OBJECT_SUBS: &[CommandSpec] = &[
    cmd(
        "object|encoding",
        3,
        READONLY,
        2,
        2,
        1,
        "generic",
        Some(object),
    ),
    cmd("object|freq", 3, READONLY, 2, 2, 1, "generic", Some(object)),
    cmd(
        "object|idletime",
        3,
        READONLY,
        2,
        2,
        1,
        "generic",
        Some(object),
    ),
    cmd(
        "object|refcount",
        3,
        READONLY,
        2,
        2,
        1,
        "generic",
        Some(object),
    ),
    cmd(
        "object|help",
        2,
        LOADING | STALE,
        0,
        0,
        0,
        "generic",
        Some(object),
    ),
];

pub const COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, 1, -1, 1, "generic", Some(del)),
    cmd("unlink", -2, WRITE | FAST, 1, -1, 1, "generic", Some(del)),
    cmd(
        "exists",
        -2,
        READONLY | FAST,
        1,
        -1,
        1,
        "generic",
        Some(exists),
    ),
    cmd(
        "touch",
        -2,
        READONLY | FAST,
        1,
        -1,
        1,
        "generic",
        Some(exists),
    ),
    cmd(
        "type",
        2,
        READONLY | FAST,
        1,
        1,
        1,
        "generic",
        Some(type_cmd),
    ),
    cmd("rename", 3, WRITE, 1, 2, 1, "generic", Some(rename)),
    cmd(
        "renamenx",
        3,
        WRITE | FAST,
        1,
        2,
        1,
        "generic",
        Some(renamenx),
    ),
    cmd("keys", 2, READONLY, 0, 0, 0, "generic", Some(keys)),
    cmd("scan", -2, READONLY, 0, 0, 0, "generic", Some(scan)),
    cmd("expire", -3, WRITE | FAST, 1, 1, 1, "generic", Some(expire)),
    cmd(
        "pexpire",
        -3,
        WRITE | FAST,
        1,
        1,
        1,
        "generic",
        Some(pexpire),
    ),
    cmd(
        "expireat",
        -3,
        WRITE | FAST,
        1,
        1,
        1,
        "generic",
        Some(expireat),
    ),
    cmd(
        "pexpireat",
        -3,
        WRITE | FAST,
        1,
        1,
        1,
        "generic",
        Some(pexpireat),
    ),
    cmd("ttl", 2, READONLY | FAST, 1, 1, 1, "generic", Some(ttl)),
    cmd("pttl", 2, READONLY | FAST, 1, 1, 1, "generic", Some(pttl)),
    cmd(
        "expiretime",
        2,
        READONLY | FAST,
        1,
        1,
        1,
        "generic",
        Some(expiretime),
    ),
    cmd(
        "pexpiretime",
        2,
        READONLY | FAST,
        1,
        1,
        1,
        "generic",
        Some(pexpiretime),
    ),
    cmd(
        "persist",
        2,
        WRITE | FAST,
        1,
        1,
        1,
        "generic",
        Some(persist),
    ),
    cmd(
        "randomkey",
        1,
        READONLY,
        0,
        0,
        0,
        "generic",
        Some(randomkey),
    ),
    cmd("copy", -3, WRITE | DENYOOM, 1, 2, 1, "generic", Some(copy)),
    cmd("move", 3, WRITE | FAST, 1, 1, 1, "generic", Some(move_cmd)),
    with_subs(
        cmd("object", -2, 0, 0, 0, 0, "generic", Some(object)),
        OBJECT_SUBS,
    ),
];

/// DEL / UNLINK key [key ...]
fn del(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| cx.delete(k)).count();
    Ok(Reply::Int(n as i64))
}

/// EXISTS / TOUCH key [key ...]: counts live keys (repeats count again).
fn exists(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..]
        .iter()
        .filter(|k| cx.lookup_read(k).is_some())
        .count();
    Ok(Reply::Int(n as i64))
}

fn type_cmd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let name = cx
        .lookup_read(&argv[1])
        .map_or("none", |e| e.value().kind().name());
    Ok(Reply::simple(name))
}

/// Moves the entry (value and TTL) from `src` to `dst` in the current database,
/// replacing `dst`. Both keys must be live and different.
fn move_entry(cx: &mut Cx, src: &Bytes, dst: &Bytes) {
    let db = cx.db;
    let Some(entry) = cx.store.dbs[db].remove(src) else {
        return;
    };
    // Remove first so a TTL of the old `dst` does not linger in the volatile set.
    cx.store.dbs[db].remove(dst);
    cx.store.dbs[db].insert_entry(own(dst), entry);
    cx.modified(src);
    cx.modified_n(dst, 0);
}

fn rename_generic(cx: &mut Cx, argv: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&argv[1], &argv[2]);
    if !cx.exists(src) {
        return Err(Reply::err(reply::ERR_NO_KEY));
    }
    let done = if nx { Reply::Int(1) } else { Reply::ok() };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { done });
    }
    if nx && cx.exists(dst) {
        return Ok(Reply::Int(0));
    }
    // Expire a stale `dst` the way Redis's lookupKeyWrite does before replacing it.
    cx.exists(dst);
    move_entry(cx, src, dst);
    Ok(done)
}

fn rename(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    rename_generic(cx, argv, false)
}

fn renamenx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    rename_generic(cx, argv, true)
}

fn keys(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let pat = &argv[1];
    let all = &pat[..] == b"*";
    let now = cx.now;
    let out: Vec<Reply> = cx
        .db()
        .iter()
        .filter(|(k, e)| (all || glob_match(pat, k, false)) && !e.is_expired(now))
        .map(|(k, _)| Reply::Bulk(k.clone()))
        .collect();
    Ok(Reply::Array(out))
}

/// Redis's `parseScanCursorOrReply` (`strtoul`): optional sign (a `-` negates modulo
/// 2^64), decimal digits, no leading space; an empty cursor is 0.
pub fn parse_cursor(b: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::err("ERR invalid cursor");
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        // strtoul parses nothing: valid only for an empty string.
        return if b.is_empty() { Ok(0) } else { Err(invalid()) };
    }
    let v = num::parse_u64(digits).ok_or_else(invalid)?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
fn scan(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[1])?;
    let mut count: i64 = 10;
    let mut pattern: Option<&Bytes> = None;
    let mut typename: Option<&Bytes> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - i;
        let a = &argv[i];
        if is(a, "count") && more >= 2 {
            count = super::int(&argv[i + 1])?;
            if count < 1 {
                return Err(Reply::err(reply::ERR_SYNTAX));
            }
        } else if is(a, "match") && more >= 2 {
            pattern = Some(&argv[i + 1]).filter(|p| &p[..] != b"*");
        } else if is(a, "type") && more >= 2 {
            typename = Some(&argv[i + 1]);
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 2;
    }
    let now = cx.now;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let (next, batch) = cx.db().scan(cursor, count);
    let batch: Vec<(Bytes, Kind, bool)> = batch
        .into_iter()
        .map(|(k, e)| (k.clone(), e.value().kind(), e.is_expired(now)))
        .collect();
    let mut out = Vec::with_capacity(batch.len().min(1024));
    for (key, kind, expired) in batch {
        if pattern.is_some_and(|p| !glob_match(p, &key, false)) {
            continue;
        }
        if let Some(t) = typename {
            // Redis looks the key up to learn its type (counting a hit or a miss).
            if expired {
                cx.store.stats.keyspace_misses += 1;
            } else {
                cx.store.stats.keyspace_hits += 1;
                if !t.eq_ignore_ascii_case(kind.name().as_bytes()) {
                    continue;
                }
            }
        }
        if expired {
            cx.store.expire_if_needed(cx.db, &key, now);
            continue;
        }
        out.push(Reply::Bulk(key));
    }
    let mut buf = itoa::Buffer::new();
    let cursor = Bytes::copy_from_slice(buf.format(next).as_bytes());
    Ok(Reply::Array(vec![Reply::Bulk(cursor), Reply::Array(out)]))
}

/// Options of the EXPIRE family (Redis's `parseExtendedExpireArgumentsOrReply`).
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(argv: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for opt in argv.iter().skip(3) {
        if is(opt, "nx") {
            f.nx = true;
        } else if is(opt, "xx") {
            f.xx = true;
        } else if is(opt, "gt") {
            f.gt = true;
        } else if is(opt, "lt") {
            f.lt = true;
        } else {
            // Redis prints the option as a C string (up to a NUL byte).
            let end = opt.iter().position(|&c| c == 0).unwrap_or(opt.len());
            return Err(Reply::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(&opt[..end])
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// Redis's `expireGenericCommand`: `relative` adds the command time, `seconds` scales.
fn expire_generic(
    cx: &mut Cx,
    argv: &[Bytes],
    relative: bool,
    seconds: bool,
    name: &str,
) -> CmdResult {
    let key = &argv[1];
    let f = parse_expire_flags(argv)?;
    let mut when = super::int(&argv[2])?;
    let invalid = || crate::cmd::string::invalid_expire(name);
    if seconds {
        when = when.checked_mul(1000).ok_or_else(invalid)?;
    }
    if relative {
        let base = i64::try_from(cx.now).unwrap_or(i64::MAX);
        when = when.checked_add(base).ok_or_else(invalid)?;
    }
    let Some(current) = cx.entry(key).map(|e| e.expire_at) else {
        return Ok(Reply::Int(0));
    };
    let current = current.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
    if (f.nx && current.is_some()) || (f.xx && current.is_none()) {
        return Ok(Reply::Int(0));
    }
    // No expiry counts as an infinite TTL.
    if f.gt && current.is_none_or(|c| when <= c) {
        return Ok(Reply::Int(0));
    }
    if f.lt && current.is_some_and(|c| when >= c) {
        return Ok(Reply::Int(0));
    }
    if when <= i64::try_from(cx.now).unwrap_or(i64::MAX) {
        // A deadline not in the future deletes the key.
        cx.delete(key);
    } else {
        cx.db().set_expire(key, Some(when as u64));
        cx.modified(key);
    }
    Ok(Reply::Int(1))
}

fn expire(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    expire_generic(cx, argv, true, true, "expire")
}

fn pexpire(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    expire_generic(cx, argv, true, false, "pexpire")
}

fn expireat(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    expire_generic(cx, argv, false, true, "expireat")
}

fn pexpireat(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    expire_generic(cx, argv, false, false, "pexpireat")
}

/// Redis's `ttlGenericCommand`.
fn ttl_generic(cx: &mut Cx, key: &Bytes, ms: bool, abs: bool) -> CmdResult {
    let now = cx.now;
    let Some(e) = cx.lookup_read(key) else {
        return Ok(Reply::Int(-2));
    };
    let Some(at) = e.expire_at else {
        return Ok(Reply::Int(-1));
    };
    let t = if abs { at } else { at.saturating_sub(now) };
    let t = if ms { t } else { t.saturating_add(500) / 1000 };
    Ok(Reply::Int(i64::try_from(t).unwrap_or(i64::MAX)))
}

fn ttl(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(cx, &argv[1], false, false)
}

fn pttl(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(cx, &argv[1], true, false)
}

fn expiretime(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(cx, &argv[1], false, true)
}

fn pexpiretime(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    ttl_generic(cx, &argv[1], true, true)
}

fn persist(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if cx.entry(key).is_some_and(|e| e.expire_at.is_some()) {
        cx.db().set_expire(key, None);
        cx.modified(key);
        return Ok(Reply::Int(1));
    }
    Ok(Reply::Int(0))
}

fn randomkey(cx: &mut Cx, _argv: &[Bytes]) -> CmdResult {
    let (db, now) = (cx.db, cx.now);
    // Expired picks are deleted and another key is tried, as in Redis; the number
    // of random tries is bounded, then the first live key is taken.
    for _ in 0..100 {
        let h: u64 = cx.rng().random();
        let Some((k, e)) = cx.store.dbs[db].key_at_or_after(h) else {
            return Ok(Reply::Nil);
        };
        if !e.is_expired(now) {
            return Ok(Reply::Bulk(k.clone()));
        }
        let k = k.clone();
        cx.store.expire_if_needed(db, &k, now);
    }
    let live = cx.store.dbs[db]
        .iter()
        .find(|(_, e)| !e.is_expired(now))
        .map(|(k, _)| k.clone());
    Ok(Reply::opt_bulk(live))
}

/// Redis's `getIntFromObjectOrReply` for a database index, then the range check.
fn db_index(cx: &Cx, b: &Bytes) -> Result<usize, Reply> {
    let v = super::int(b)?;
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        return Err(Reply::err(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if v < 0 || v as usize >= cx.store.dbs.len() {
        return Err(Reply::err(reply::ERR_DB_INDEX));
    }
    Ok(v as usize)
}

const SAME_OBJECT: &str = "ERR source and destination objects are the same";

/// MOVE key db
fn move_cmd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let dst = db_index(cx, &argv[2])?;
    let (src, now) = (cx.db, cx.now);
    if dst == src {
        return Err(Reply::err(SAME_OBJECT));
    }
    if !cx.exists(key) {
        return Ok(Reply::Int(0));
    }
    cx.store.expire_if_needed(dst, key, now);
    if cx.store.dbs[dst].get(key).is_some() {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = cx.store.dbs[src].remove(key) else {
        return Ok(Reply::Int(0));
    };
    cx.store.dbs[dst].insert_entry(own(key), entry);
    cx.modified(key);
    cx.store.effects.touched.push((dst, key.clone()));
    Ok(Reply::Int(1))
}

/// COPY source destination [DB destination-db] [REPLACE]
fn copy(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, newkey) = (&argv[1], &argv[2]);
    let (src, now) = (cx.db, cx.now);
    let mut dst = src;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        if is(&argv[j], "replace") {
            replace = true;
        } else if is(&argv[j], "db") && more >= 1 {
            dst = db_index(cx, &argv[j + 1])?;
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    if src == dst && key == newkey {
        return Err(Reply::err(SAME_OBJECT));
    }
    let Some((value, expire_at)) = cx
        .lookup_read(key)
        .map(|e| (e.value().clone(), e.expire_at))
    else {
        return Ok(Reply::Int(0));
    };
    cx.store.expire_if_needed(dst, newkey, now);
    if cx.store.dbs[dst].get(newkey).is_some() {
        if !replace {
            return Ok(Reply::Int(0));
        }
        cx.store.dbs[dst].remove(newkey);
    }
    cx.store.dbs[dst].insert(own(newkey), value, expire_at);
    cx.modified_in(dst, newkey);
    Ok(Reply::Int(1))
}

/// The encoding Redis 7.0 would report for a value with these contents.
pub fn encoding(v: &Value, c: &EngineConfig) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && num::parse_i64(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let small = h.len() <= c.hash_max_listpack_entries
                && h.iter().all(|(k, v)| {
                    k.len() <= c.hash_max_listpack_value && v.len() <= c.hash_max_listpack_value
                });
            if small {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(s) => {
            if s.len() <= c.set_max_intset_entries && s.iter().all(|m| num::parse_i64(m).is_some())
            {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let small = z.len() <= c.zset_max_listpack_entries
                && z.dict.keys().all(|m| m.len() <= c.zset_max_listpack_value);
            if small {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP
fn object(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    if argv.len() == 2 && is(sub, "help") {
        return Ok(Reply::Array(
            OBJECT_HELP.iter().map(|l| Reply::simple(l)).collect(),
        ));
    }
    let known = ["encoding", "freq", "idletime", "refcount"]
        .iter()
        .any(|s| is(sub, s));
    if argv.len() != 3 || !known {
        let name = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
        return Err(Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{name}'. Try OBJECT HELP."
        )));
    }
    let config = cx.config().clone();
    let now = cx.now;
    let Some(e) = cx.lookup_read(&argv[2]) else {
        return Ok(Reply::Nil);
    };
    if is(sub, "encoding") {
        Ok(Reply::Bulk(Bytes::from_static(
            encoding(e.value(), &config).as_bytes(),
        )))
    } else if is(sub, "refcount") {
        // Redis shares the objects of the integers 0..9999.
        let shared = matches!(e.value(), Value::Str(s) if s.len() <= 4 && num::parse_i64(s).is_some_and(|n| (0..10000).contains(&n)));
        Ok(Reply::Int(if shared { i32::MAX as i64 } else { 1 }))
    } else if is(sub, "idletime") {
        let access = e.obj.access.load(std::sync::atomic::Ordering::Relaxed);
        let now_s = (now / 1000) as u32;
        Ok(Reply::Int(if access == 0 {
            0
        } else {
            now_s.saturating_sub(access) as i64
        }))
    } else {
        Err(Reply::err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ))
    }
}
