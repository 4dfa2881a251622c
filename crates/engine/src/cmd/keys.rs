//! Generic key commands (Redis 7.0 `db.c`, `expire.c`, `object.c`).

use super::is;
use super::scan_util::parse_cursor;
use crate::db::own;
use crate::glob::glob_match;
use crate::notify;
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

#[rustfmt::skip]
const OBJECT_SUBS: &[CommandSpec] = &[
    cmd("object|encoding", 3, READONLY, 2, 2, 1, "generic", Some(object)),
    cmd("object|freq", 3, READONLY, 2, 2, 1, "generic", Some(object)),
    cmd("object|idletime", 3, READONLY, 2, 2, 1, "generic", Some(object)),
    cmd("object|refcount", 3, READONLY, 2, 2, 1, "generic", Some(object)),
    cmd("object|help", 2, LOADING | STALE, 0, 0, 0, "generic", Some(object)),
];

#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, 1, -1, 1, "generic", Some(del)),
    cmd("unlink", -2, WRITE | FAST, 1, -1, 1, "generic", Some(unlink)),
    cmd("exists", -2, READONLY | FAST, 1, -1, 1, "generic", Some(exists)),
    cmd("touch", -2, READONLY | FAST, 1, -1, 1, "generic", Some(touch)),
    cmd("type", 2, READONLY | FAST, 1, 1, 1, "generic", Some(type_cmd)),
    cmd("rename", 3, WRITE, 1, 2, 1, "generic", Some(rename)),
    cmd("renamenx", 3, WRITE | FAST, 1, 2, 1, "generic", Some(renamenx)),
    cmd("keys", 2, READONLY, 0, 0, 0, "generic", Some(keys)),
    cmd("scan", -2, READONLY, 0, 0, 0, "generic", Some(scan)),
    cmd("expire", -3, WRITE | FAST, 1, 1, 1, "generic", Some(expire)),
    cmd("pexpire", -3, WRITE | FAST, 1, 1, 1, "generic", Some(pexpire)),
    cmd("expireat", -3, WRITE | FAST, 1, 1, 1, "generic", Some(expireat)),
    cmd("pexpireat", -3, WRITE | FAST, 1, 1, 1, "generic", Some(pexpireat)),
    cmd("ttl", 2, READONLY | FAST, 1, 1, 1, "generic", Some(ttl)),
    cmd("pttl", 2, READONLY | FAST, 1, 1, 1, "generic", Some(pttl)),
    cmd("expiretime", 2, READONLY | FAST, 1, 1, 1, "generic", Some(expiretime)),
    cmd("pexpiretime", 2, READONLY | FAST, 1, 1, 1, "generic", Some(pexpiretime)),
    cmd("persist", 2, WRITE | FAST, 1, 1, 1, "generic", Some(persist)),
    cmd("randomkey", 1, READONLY, 0, 0, 0, "generic", Some(randomkey)),
    cmd("copy", -3, WRITE | DENYOOM, 1, 2, 1, "generic", Some(copy)),
    cmd("move", 3, WRITE | FAST, 1, 1, 1, "generic", Some(move_cmd)),
    with_subs(cmd("object", -2, 0, 0, 0, 0, "generic", Some(object)), OBJECT_SUBS),
];

/// DEL / UNLINK key [key ...]
fn del(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| cx.delete(k)).count();
    Ok(Reply::Int(n as i64))
}

/// UNLINK key [key ...]: DEL whose large values are freed on the lazyfree thread.
fn unlink(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..].iter().filter(|k| cx.delete_lazy(k)).count();
    Ok(Reply::Int(n as i64))
}

/// EXISTS / TOUCH key [key ...]: counts live keys (repeats count again).
/// EXISTS key...: reads without touching (a key's idle time is kept).
fn exists(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..]
        .iter()
        .filter(|k| cx.lookup_notouch(k).is_some())
        .count();
    Ok(Reply::Int(n as i64))
}

/// TOUCH key...: like EXISTS, and records the access (LRU clock, LFU counter).
fn touch(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let n = argv[1..]
        .iter()
        .filter(|k| cx.lookup_read(k).is_some())
        .count();
    Ok(Reply::Int(n as i64))
}

fn type_cmd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let name = cx
        .lookup_notouch(&argv[1])
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
    cx.notify(notify::NEW, "new", dst);
    cx.notify(notify::GENERIC, "rename_from", src);
    cx.notify(notify::GENERIC, "rename_to", dst);
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
        .map(|(k, _)| Reply::Bulk(k.to_bytes()))
        .collect();
    Ok(Reply::Array(out))
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
        .map(|(k, e)| (k.to_bytes(), e.value().kind(), e.is_expired(now)))
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
    let Some(current) = cx.entry(key).map(|e| e.expire_at()) else {
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
        cx.notify(notify::GENERIC, "expire", key);
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
    let Some(e) = cx.lookup_notouch(key) else {
        return Ok(Reply::Int(-2));
    };
    let Some(at) = e.expire_at() else {
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
    if cx.entry(key).is_some_and(|e| e.expire_at().is_some()) {
        cx.db().set_expire(key, None);
        cx.modified(key);
        cx.notify(notify::GENERIC, "persist", key);
        return Ok(Reply::Int(1));
    }
    Ok(Reply::Int(0))
}

fn randomkey(cx: &mut Cx, _argv: &[Bytes]) -> CmdResult {
    let (db, now) = (cx.db, cx.now);
    // Expired picks are deleted and another key is tried, as in Redis; the number
    // of random tries is bounded, then the first live key is taken.
    for _ in 0..100 {
        let store = &mut *cx.store;
        let rng = &mut store.rng;
        let Some((k, e)) = store.dbs[db].random_key(|n| rng.random_range(0..n)) else {
            return Ok(Reply::Nil);
        };
        if !e.is_expired(now) {
            return Ok(Reply::Bulk(k.to_bytes()));
        }
        let k = k.to_bytes();
        cx.store.expire_if_needed(db, &k, now);
    }
    let live = cx.store.dbs[db]
        .iter()
        .find(|(_, e)| !e.is_expired(now))
        .map(|(k, _)| k.to_bytes());
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
    cx.store.notify(dst, notify::NEW, "new", key);
    cx.store.dbs[dst].insert_entry(own(key), entry);
    cx.modified(key);
    cx.store.effects.touched.push((dst, key.clone()));
    cx.notify(notify::GENERIC, "move_from", key);
    cx.store.notify(dst, notify::GENERIC, "move_to", key);
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
        .map(|e| (e.value().clone(), e.expire_at()))
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
    cx.store.notify(dst, notify::NEW, "new", newkey);
    cx.store.dbs[dst].insert(own(newkey), value, expire_at);
    cx.modified_in(dst, newkey);
    cx.store.notify(dst, notify::GENERIC, "copy_to", newkey);
    Ok(Reply::Int(1))
}

/// The encoding Redis 7.0 would report for a stored value: its contents decide,
/// unless a command converted it to the larger encoding, which Redis keeps.
pub fn encoding(obj: &crate::db::Obj, c: &EngineConfig) -> &'static str {
    if !obj.big_encoding {
        return contents_encoding(&obj.value, c);
    }
    match obj.value {
        Value::Str(_) => "raw",
        Value::List(_) => "quicklist",
        Value::Hash(_) | Value::Set(_) => "hashtable",
        Value::ZSet(_) => "skiplist",
        Value::Stream(_) => "stream",
        Value::Json(_) => "raw",
    }
}

/// The encoding Redis 7.0 would give a value with these contents.
pub fn contents_encoding(v: &Value, c: &EngineConfig) -> &'static str {
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
        Value::Stream(_) => "stream",
        // A module value: Redis reports OBJ_ENCODING_RAW.
        Value::Json(_) => "raw",
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
    let (now, lfu) = (cx.now, cx.store.lfu);
    // OBJECT looks at a key without touching it (Redis's LOOKUP_NOTOUCH).
    let Some(e) = cx.lookup_notouch(&argv[2]) else {
        return Ok(Reply::Nil);
    };
    let access = e.obj.access.load(std::sync::atomic::Ordering::Relaxed);
    if is(sub, "encoding") {
        Ok(Reply::Bulk(Bytes::from_static(
            encoding(&e.obj, &config).as_bytes(),
        )))
    } else if is(sub, "refcount") {
        // Redis shares the objects of the integers 0..9999.
        let shared = matches!(e.value(), Value::Str(s) if s.len() <= 4 && num::parse_i64(s).is_some_and(|n| (0..10000).contains(&n)));
        Ok(Reply::Int(if shared { i32::MAX as i64 } else { 1 }))
    } else if is(sub, "idletime") {
        if lfu {
            return Err(Reply::err(
                "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        Ok(Reply::Int(crate::store::lru_idle_secs(access, now) as i64))
    } else if !lfu {
        Err(Reply::err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ))
    } else {
        Ok(Reply::Int(crate::store::lfu_freq(access, now) as i64))
    }
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::Store;
    use crate::value::Value;
    use bytes::Bytes;
    use std::collections::VecDeque;

    const T0: u64 = 1_700_000_000_000;

    fn run_db(s: &mut Store, db: usize, now: u64, args: &[&str]) -> Reply {
        let argv: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        s.exec(db, now, &argv)
    }
    fn run(s: &mut Store, now: u64, args: &[&str]) -> Reply {
        run_db(s, 0, now, args)
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
    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }
    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }
    fn sorted(reply: Reply) -> Vec<Bytes> {
        let Reply::Array(items) = reply else {
            panic!("not an array: {reply:?}")
        };
        let mut v: Vec<Bytes> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => b,
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        v.sort();
        v
    }
    fn names(v: &[&str]) -> Vec<Bytes> {
        let mut v: Vec<Bytes> = v.iter().map(|x| b(x)).collect();
        v.sort();
        v
    }

    #[test]
    fn del_exists_touch_type() {
        let mut s = Store::default();
        r(&mut s, &["set", "a", "1"]);
        r(&mut s, &["set", "b", "2"]);
        s.dbs[0].insert(b("l"), Value::List(VecDeque::from([b("x")]).into()), None);
        assert_eq!(r(&mut s, &["exists", "a", "a", "nokey", "l"]), int(3));
        assert_eq!(r(&mut s, &["touch", "a", "b", "nokey", "a"]), int(3));
        assert_eq!(r(&mut s, &["type", "a"]), Reply::simple("string"));
        assert_eq!(r(&mut s, &["type", "l"]), Reply::simple("list"));
        assert_eq!(r(&mut s, &["type", "nokey"]), Reply::simple("none"));
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["del", "a", "nokey", "a"]), int(1));
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(r(&mut s, &["unlink", "b", "l"]), int(2));
        assert_eq!(r(&mut s, &["del", "nokey"]), int(0));
        assert_eq!(s.effects.dirty, d0 + 3);
        assert_eq!(s.dbs[0].len(), 0);
        assert_eq!(
            r(&mut s, &["del"]),
            err("ERR wrong number of arguments for 'del' command")
        );
    }

    #[test]
    fn expire_family() {
        let mut s = Store::default();
        r(&mut s, &["set", "a", "1"]);
        let incompatible =
            err("ERR NX and XX, GT or LT options at the same time are not compatible");
        assert_eq!(r(&mut s, &["expire", "a", "10", "nx", "xx"]), incompatible);
        assert_eq!(r(&mut s, &["expire", "a", "10", "nx", "gt"]), incompatible);
        assert_eq!(r(&mut s, &["expire", "a", "abc", "nx", "lt"]), incompatible);
        assert_eq!(
            r(&mut s, &["expire", "a", "10", "gt", "lt"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            r(&mut s, &["expire", "a", "10", "xx", "foo"]),
            err("ERR Unsupported option foo")
        );
        assert_eq!(
            r(&mut s, &["expire", "nokey", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(r(&mut s, &["expire", "nokey", "10"]), int(0));
        let bad = |c: &str| err(&format!("ERR invalid expire time in '{c}' command"));
        assert_eq!(
            r(&mut s, &["expire", "a", "9223372036854776"]),
            bad("expire")
        );
        assert_eq!(
            r(&mut s, &["expire", "a", "9223372036854775"]),
            bad("expire")
        );
        assert_eq!(
            r(&mut s, &["expire", "a", "-9223372036854776"]),
            bad("expire")
        );
        assert_eq!(
            r(&mut s, &["pexpire", "a", "9223372036854775807"]),
            bad("pexpire")
        );
        assert_eq!(
            r(&mut s, &["expireat", "a", "9223372036854776"]),
            bad("expireat")
        );
        assert_eq!(
            r(&mut s, &["pexpireat", "a", "9223372036854775807"]),
            int(1)
        );
        assert_eq!(r(&mut s, &["pexpiretime", "a"]), int(i64::MAX));
        assert_eq!(r(&mut s, &["expiretime", "a"]), int(9223372036854776));
        assert_eq!(r(&mut s, &["persist", "a"]), int(1));
        assert_eq!(r(&mut s, &["persist", "a"]), int(0));
        assert_eq!(r(&mut s, &["persist", "nokey"]), int(0));
        assert_eq!(r(&mut s, &["ttl", "a"]), int(-1));
        assert_eq!(r(&mut s, &["pttl", "nokey"]), int(-2));
        assert_eq!(r(&mut s, &["expiretime", "a"]), int(-1));
        assert_eq!(r(&mut s, &["pexpiretime", "nokey"]), int(-2));

        // GT/LT/NX/XX: no expiry counts as infinite.
        assert_eq!(r(&mut s, &["expire", "a", "100", "xx"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "100", "gt"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "100", "lt"]), int(1));
        assert_eq!(r(&mut s, &["ttl", "a"]), int(100));
        assert_eq!(r(&mut s, &["expire", "a", "50", "gt"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "200", "GT"]), int(1));
        assert_eq!(r(&mut s, &["expire", "a", "300", "lt"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "10", "nx"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "10", "xx"]), int(1));
        assert_eq!(r(&mut s, &["pttl", "a"]), int(10_000));
        assert_eq!(
            r(&mut s, &["expiretime", "a"]),
            int((T0 / 1000 + 10) as i64)
        );
        assert_eq!(r(&mut s, &["pexpiretime", "a"]), int((T0 + 10_000) as i64));
        assert_eq!(r(&mut s, &["pexpire", "a", "1499"]), int(1));
        assert_eq!(r(&mut s, &["ttl", "a"]), int(1));
        assert_eq!(r(&mut s, &["pexpire", "a", "1500"]), int(1));
        assert_eq!(r(&mut s, &["ttl", "a"]), int(2));
        assert_eq!(
            r(&mut s, &["expireat", "a", &(T0 / 1000 + 7).to_string()]),
            int(1)
        );
        assert_eq!(r(&mut s, &["ttl", "a"]), int(7));
        assert_eq!(
            r(&mut s, &["pexpireat", "a", &(T0 + 20).to_string()]),
            int(1)
        );
        // The clock moves: TTL shrinks, clamps at 0, and the key expires after the deadline.
        assert_eq!(run(&mut s, T0 + 15, &["pttl", "a"]), int(5));
        assert_eq!(run(&mut s, T0 + 20, &["pttl", "a"]), int(0));
        assert_eq!(run(&mut s, T0 + 21, &["pttl", "a"]), int(-2));
        assert_eq!(run(&mut s, T0 + 21, &["exists", "a"]), int(0));

        // An expiry not in the future deletes the key (and counts as a change).
        r(&mut s, &["set", "b", "1"]);
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["expire", "b", "0"]), int(1));
        assert_eq!(s.effects.dirty, d0 + 1);
        assert!(s.dbs[0].get(&b("b")).is_none());
        r(&mut s, &["set", "b", "1"]);
        assert_eq!(r(&mut s, &["pexpireat", "b", &T0.to_string()]), int(1));
        assert_eq!(r(&mut s, &["exists", "b"]), int(0));
        r(&mut s, &["set", "b", "1"]);
        assert_eq!(r(&mut s, &["expire", "b", "-9223372036854775"]), int(1));
        assert_eq!(r(&mut s, &["exists", "b"]), int(0));
        // Failed conditions change nothing.
        r(&mut s, &["set", "c", "1"]);
        let d0 = s.effects.dirty;
        let log0 = s.effects.log.len();
        assert_eq!(r(&mut s, &["expire", "c", "10", "xx"]), int(0));
        assert_eq!(r(&mut s, &["persist", "c"]), int(0));
        assert_eq!(s.effects.dirty, d0);
        assert_eq!(s.effects.log.len(), log0);
    }

    #[test]
    fn rename_and_renamenx() {
        let mut s = Store::default();
        assert_eq!(r(&mut s, &["rename", "nokey", "b"]), err("ERR no such key"));
        assert_eq!(
            r(&mut s, &["rename", "nokey", "nokey"]),
            err("ERR no such key")
        );
        assert_eq!(
            r(&mut s, &["renamenx", "nokey", "b"]),
            err("ERR no such key")
        );
        r(&mut s, &["set", "a", "1"]);
        assert_eq!(r(&mut s, &["rename", "a", "a"]), Reply::ok());
        assert_eq!(r(&mut s, &["renamenx", "a", "a"]), int(0));
        r(&mut s, &["set", "b", "2"]);
        assert_eq!(r(&mut s, &["renamenx", "a", "b"]), int(0));
        assert_eq!(r(&mut s, &["expire", "a", "100"]), int(1));
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["rename", "a", "c"]), Reply::ok());
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(r(&mut s, &["ttl", "c"]), int(100));
        assert_eq!(r(&mut s, &["get", "c"]), bulk("1"));
        assert_eq!(r(&mut s, &["exists", "a"]), int(0));
        // RENAME over a key with a TTL: the destination takes the source's (no) TTL.
        assert_eq!(r(&mut s, &["expire", "b", "100"]), int(1));
        r(&mut s, &["set", "d", "4"]);
        assert_eq!(r(&mut s, &["rename", "d", "b"]), Reply::ok());
        assert_eq!(r(&mut s, &["ttl", "b"]), int(-1));
        assert_eq!(s.dbs[0].volatile_len(), 1);
        assert_eq!(r(&mut s, &["renamenx", "b", "e"]), int(1));
        assert_eq!(r(&mut s, &["get", "e"]), bulk("4"));
        // An expired source is missing.
        assert_eq!(r(&mut s, &["pexpire", "c", "5"]), int(1));
        assert_eq!(
            run(&mut s, T0 + 6, &["rename", "c", "f"]),
            err("ERR no such key")
        );
    }

    #[test]
    fn keys_and_scan() {
        let mut s = Store::default();
        for k in ["a1", "a2", "b1", "exp"] {
            r(&mut s, &["set", k, "v"]);
        }
        s.dbs[0].insert(b("l"), Value::List(VecDeque::from([b("x")]).into()), None);
        assert_eq!(r(&mut s, &["pexpire", "exp", "10"]), int(1));
        assert_eq!(
            sorted(r(&mut s, &["keys", "*"])),
            names(&["a1", "a2", "b1", "exp", "l"])
        );
        assert_eq!(sorted(r(&mut s, &["keys", "a*"])), names(&["a1", "a2"]));
        assert_eq!(
            sorted(run(&mut s, T0 + 11, &["keys", "*"])),
            names(&["a1", "a2", "b1", "l"])
        );

        let scan_all = |s: &mut Store, extra: &[&str]| -> Vec<Bytes> {
            let mut cursor = "0".to_string();
            let mut all = Vec::new();
            for _ in 0..100 {
                let mut args = vec!["scan", cursor.as_str()];
                args.extend_from_slice(extra);
                let Reply::Array(parts) = run(s, T0 + 11, &args) else {
                    panic!("scan reply")
                };
                let [Reply::Bulk(next), keys] = &parts[..] else {
                    panic!("scan shape {parts:?}")
                };
                all.extend(sorted(keys.clone()));
                cursor = String::from_utf8(next.to_vec()).unwrap_or_default();
                if cursor == "0" {
                    break;
                }
            }
            all.sort();
            all
        };
        assert_eq!(
            scan_all(&mut s, &["count", "1"]),
            names(&["a1", "a2", "b1", "l"])
        );
        assert_eq!(
            scan_all(&mut s, &["match", "a*", "count", "2"]),
            names(&["a1", "a2"])
        );
        assert_eq!(scan_all(&mut s, &["type", "LIST"]), names(&["l"]));
        assert_eq!(
            scan_all(&mut s, &["type", "string", "match", "*1"]),
            names(&["a1", "b1"])
        );
        assert_eq!(scan_all(&mut s, &["type", "foo"]), names(&[]));
        // The expired key was deleted along the way.
        assert_eq!(s.dbs[0].len(), 4);

        let syntax = err("ERR syntax error");
        assert_eq!(r(&mut s, &["scan", "0", "count", "0"]), syntax);
        assert_eq!(r(&mut s, &["scan", "0", "count", "-1"]), syntax);
        assert_eq!(
            r(&mut s, &["scan", "0", "count", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(r(&mut s, &["scan", "0", "match"]), syntax);
        assert_eq!(r(&mut s, &["scan", "0", "foo", "bar"]), syntax);
        let invalid = err("ERR invalid cursor");
        assert_eq!(r(&mut s, &["scan", " 0"]), invalid);
        assert_eq!(r(&mut s, &["scan", "abc", "count", "0"]), invalid);
        assert_eq!(r(&mut s, &["scan", "18446744073709551616"]), invalid);
        assert_eq!(r(&mut s, &["scan", "-"]), invalid);
        assert_eq!(super::parse_cursor(b""), Ok(0));
        assert_eq!(super::parse_cursor(b"+0"), Ok(0));
        assert_eq!(super::parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(super::parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        let Reply::Array(parts) = r(&mut s, &["scan", ""]) else {
            panic!("scan reply")
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], bulk("0"));
    }

    #[test]
    fn randomkey_skips_expired() {
        let mut s = Store::default();
        assert_eq!(r(&mut s, &["randomkey"]), Reply::Nil);
        r(&mut s, &["set", "live", "v"]);
        for i in 0..300 {
            let k = format!("e{i}");
            r(&mut s, &["set", &k, "v", "px", "5"]);
        }
        for _ in 0..20 {
            assert_eq!(run(&mut s, T0 + 10, &["randomkey"]), bulk("live"));
        }
        r(&mut s, &["del", "live"]);
        for i in 0..300 {
            let k = format!("f{i}");
            r(&mut s, &["set", &k, "v", "px", "5"]);
        }
        assert_eq!(run(&mut s, T0 + 10, &["randomkey"]), Reply::Nil);
        // With expiry deletion off, expired keys are still skipped.
        s.active_expire = false;
        r(&mut s, &["set", "g", "v", "px", "5"]);
        assert_eq!(run(&mut s, T0 + 10, &["randomkey"]), Reply::Nil);
        r(&mut s, &["set", "h", "v"]);
        assert_eq!(run(&mut s, T0 + 10, &["randomkey"]), bulk("h"));
    }

    #[test]
    fn randomkey_is_fair_whatever_the_hash_gaps() {
        // Two keys whose hashes are close: the key at or after a random hash would
        // almost always be the first of them. A random descent picks each about
        // half the time.
        let mut s = Store::default();
        let names: Vec<String> = (0..4000).map(|i| format!("k{i}")).collect();
        let mut by_hash: Vec<(u64, &str)> = names
            .iter()
            .map(|n| (s.dbs[0].key_hash(n.as_bytes()), n.as_str()))
            .collect();
        by_hash.sort();
        let (a, b) = by_hash
            .windows(2)
            .min_by_key(|w| w[1].0 - w[0].0)
            .map(|w| (w[0].1, w[1].1))
            .unwrap();
        r(&mut s, &["set", a, "1"]);
        r(&mut s, &["set", b, "2"]);
        let mut seen_b = 0;
        for _ in 0..400 {
            if r(&mut s, &["randomkey"]) == bulk(b) {
                seen_b += 1;
            }
        }
        assert!(
            (100..=300).contains(&seen_b),
            "{b} picked {seen_b} times of 400"
        );
    }

    #[test]
    fn move_and_copy() {
        let mut s = Store::default();
        r(&mut s, &["set", "c", "1"]);
        assert_eq!(r(&mut s, &["expire", "c", "100"]), int(1));
        assert_eq!(
            r(&mut s, &["move", "c", "0"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(
            r(&mut s, &["move", "c", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            r(&mut s, &["move", "c", "-1"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            r(&mut s, &["move", "c", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            r(&mut s, &["move", "c", "2147483648"]),
            err("ERR value is out of range, value must between -2147483648 and 2147483647")
        );
        assert_eq!(r(&mut s, &["move", "nokey", "1"]), int(0));
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["move", "c", "1"]), int(1));
        assert_eq!(s.effects.dirty, d0 + 1);
        assert_eq!(r(&mut s, &["exists", "c"]), int(0));
        assert_eq!(run_db(&mut s, 1, T0, &["ttl", "c"]), int(100));
        r(&mut s, &["set", "c", "2"]);
        assert_eq!(r(&mut s, &["move", "c", "1"]), int(0));
        assert_eq!(run_db(&mut s, 1, T0, &["get", "c"]), bulk("1"));

        // COPY
        assert_eq!(
            r(&mut s, &["copy", "c", "c"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(
            r(&mut s, &["copy", "c", "x", "db", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            r(&mut s, &["copy", "c", "x", "db"]),
            err("ERR syntax error")
        );
        assert_eq!(
            r(&mut s, &["copy", "c", "x", "foo"]),
            err("ERR syntax error")
        );
        assert_eq!(
            r(&mut s, &["copy", "c", "c", "db", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(r(&mut s, &["copy", "nokey", "x"]), int(0));
        assert_eq!(r(&mut s, &["copy", "c", "c", "db", "1"]), int(0));
        assert_eq!(r(&mut s, &["copy", "c", "c", "db", "1", "replace"]), int(1));
        assert_eq!(run_db(&mut s, 1, T0, &["get", "c"]), bulk("2"));
        assert_eq!(run_db(&mut s, 1, T0, &["ttl", "c"]), int(-1));
        assert_eq!(run_db(&mut s, 1, T0, &["expire", "c", "50"]), int(1));
        assert_eq!(
            run_db(&mut s, 1, T0, &["copy", "c", "d", "db", "0"]),
            int(1)
        );
        assert_eq!(r(&mut s, &["ttl", "d"]), int(50));
        // A copy is independent of its source.
        s.dbs[0].insert(
            b("h"),
            Value::Hash(Box::new(crate::value::Hash::from([(
                "f".into(),
                "v".into(),
            )]))),
            None,
        );
        assert_eq!(r(&mut s, &["copy", "h", "h2"]), int(1));
        if let Some(Value::Hash(h)) = s.dbs[0].get_mut(&b("h")) {
            h.insert("g".into(), "w".into());
        }
        assert_eq!(
            s.dbs[0].get(&b("h2")).map(|e| e.value().clone()),
            Some(Value::Hash(Box::new(crate::value::Hash::from([(
                "f".into(),
                "v".into()
            )]))))
        );
        let d0 = s.effects.dirty;
        assert_eq!(r(&mut s, &["copy", "h", "h2"]), int(0));
        assert_eq!(s.effects.dirty, d0);
    }

    #[test]
    fn object_subcommands() {
        let mut s = Store::default();
        let cases = [
            ("100", "int"),
            ("123456", "int"),
            ("12345678901234567890123456789012345678901234", "embstr"),
            ("123456789012345678901234567890123456789012345", "raw"),
            ("-0", "embstr"),
            ("99999999999999999999", "embstr"),
            ("9223372036854775807", "int"),
        ];
        for (v, enc) in cases {
            r(&mut s, &["set", "k", v]);
            assert_eq!(r(&mut s, &["object", "encoding", "k"]), bulk(enc), "{v}");
        }
        r(&mut s, &["set", "k", "100"]);
        assert_eq!(r(&mut s, &["object", "refcount", "k"]), int(2147483647));
        r(&mut s, &["set", "k", "123456"]);
        assert_eq!(r(&mut s, &["object", "refcount", "k"]), int(1));
        assert_eq!(r(&mut s, &["object", "refcount", "nokey"]), Reply::Nil);
        assert_eq!(r(&mut s, &["object", "encoding", "nokey"]), Reply::Nil);
        assert_eq!(r(&mut s, &["object", "idletime", "k"]), int(0));
        assert_eq!(r(&mut s, &["object", "freq", "nokey"]), Reply::Nil);
        assert!(
            matches!(r(&mut s, &["object", "freq", "k"]), Reply::Error(e) if e.starts_with(b"ERR An LFU maxmemory policy is not selected"))
        );

        s.dbs[0].insert(b("l"), Value::List(VecDeque::from([b("x")]).into()), None);
        assert_eq!(r(&mut s, &["object", "encoding", "l"]), bulk("quicklist"));
        s.dbs[0].insert(
            b("s"),
            Value::Set(Box::new(crate::value::Set::from(["1".into(), "2".into()]))),
            None,
        );
        assert_eq!(r(&mut s, &["object", "encoding", "s"]), bulk("intset"));
        s.dbs[0].insert(
            b("s"),
            Value::Set(Box::new(crate::value::Set::from(["1".into(), "a".into()]))),
            None,
        );
        assert_eq!(r(&mut s, &["object", "encoding", "s"]), bulk("hashtable"));
        s.dbs[0].insert(
            b("h"),
            Value::Hash(Box::new(crate::value::Hash::from([(
                "a".into(),
                "b".into(),
            )]))),
            None,
        );
        assert_eq!(r(&mut s, &["object", "encoding", "h"]), bulk("listpack"));
        s.dbs[0].insert(
            b("h"),
            Value::Hash(Box::new(crate::value::Hash::from([(
                "a".into(),
                crate::value::Member::new(&[b'x'; 65]),
            )]))),
            None,
        );
        assert_eq!(r(&mut s, &["object", "encoding", "h"]), bulk("hashtable"));
        let mut z = crate::value::ZSet::new();
        z.insert(b("a"), 1.0);
        s.dbs[0].insert(b("z"), Value::ZSet(Box::new(z.clone())), None);
        assert_eq!(r(&mut s, &["object", "encoding", "z"]), bulk("listpack"));
        for i in 0..200 {
            z.insert(Bytes::from(format!("m{i}")), i as f64);
        }
        s.dbs[0].insert(b("z"), Value::ZSet(Box::new(z)), None);
        assert_eq!(r(&mut s, &["object", "encoding", "z"]), bulk("skiplist"));

        assert_eq!(
            r(&mut s, &["object"]),
            err("ERR wrong number of arguments for 'object' command")
        );
        assert_eq!(
            r(&mut s, &["object", "encoding"]),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        assert_eq!(
            r(&mut s, &["object", "ENCODING", "a", "b"]),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        assert_eq!(
            r(&mut s, &["object", "help", "x"]),
            err("ERR wrong number of arguments for 'object|help' command")
        );
        assert_eq!(
            r(&mut s, &["object", "foo"]),
            err("ERR unknown subcommand 'foo'. Try OBJECT HELP.")
        );
        let Reply::Array(help) = r(&mut s, &["object", "help"]) else {
            panic!("help")
        };
        assert_eq!(help.len(), 15);
        assert_eq!(
            help[0],
            Reply::simple("OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
        );
        assert_eq!(help[14], Reply::simple("    Prints this help."));
    }
}
