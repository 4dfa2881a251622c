//! Hash commands.

use super::scan_util;
use crate::notify;
use crate::reply::{self, wrong_arity, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use crate::value::{Hash, Member};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::seq::IteratorRandom;
use rand::Rng;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "hset",
        -4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "hash",
        Some(hset),
    ),
    cmd(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "hash",
        Some(hsetnx),
    ),
    cmd("hget", 3, READONLY | FAST, 1, 1, 1, "hash", Some(hget)),
    cmd("hmget", -3, READONLY | FAST, 1, 1, 1, "hash", Some(hmget)),
    cmd(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "hash",
        Some(hmset),
    ),
    cmd("hgetall", 2, READONLY, 1, 1, 1, "hash", Some(hgetall)),
    cmd("hdel", -3, WRITE | FAST, 1, 1, 1, "hash", Some(hdel)),
    cmd(
        "hexists",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "hash",
        Some(hexists),
    ),
    cmd("hlen", 2, READONLY | FAST, 1, 1, 1, "hash", Some(hlen)),
    cmd("hkeys", 2, READONLY, 1, 1, 1, "hash", Some(hkeys)),
    cmd("hvals", 2, READONLY, 1, 1, 1, "hash", Some(hvals)),
    cmd(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "hash",
        Some(hincrby),
    ),
    cmd(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "hash",
        Some(hincrbyfloat),
    ),
    cmd(
        "hstrlen",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "hash",
        Some(hstrlen),
    ),
    cmd("hscan", -3, READONLY, 1, 1, 1, "hash", Some(hscan)),
    cmd(
        "hrandfield",
        -2,
        READONLY,
        1,
        1,
        1,
        "hash",
        Some(hrandfield),
    ),
];

/// The most elements a negative-count HRANDFIELD may ask for (Redis would try to
/// build any size and run out of memory).
const MAX_RANDOM_REPLY: u64 = 1 << 22;

/// A hash being written, with its sticky encoding flag and Redis's listpack limits.
struct HashW<'a> {
    h: &'a mut Hash,
    big: &'a mut bool,
    max_entries: usize,
    max_value: usize,
}

impl HashW<'_> {
    /// Sets `field` (copied) to `value`; true when the field is new. Notes the
    /// conversion to a hashtable as Redis's hashTypeTryConversion and hashTypeSet do:
    /// a field or value longer than hash-max-listpack-value, or more fields than
    /// hash-max-listpack-entries.
    fn put(&mut self, field: &[u8], value: &[u8]) -> bool {
        if field.len() > self.max_value || value.len() > self.max_value {
            *self.big = true;
        }
        // One hash of the field and one probe, whether it is new or not.
        let created = self.h.put(field, Member::new(value));
        if self.h.len() > self.max_entries {
            *self.big = true;
        }
        created
    }
}

/// The hash at `key`, created empty when absent (the caller adds to it).
fn hash_create<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<HashW<'a>, Reply> {
    let max_entries = cx.config().hash_max_listpack_entries;
    let max_value = cx.config().hash_max_listpack_value;
    let (h, big) = cx
        .hash_mut_enc(key, true)?
        .ok_or_else(|| Reply::err("ERR internal error: hash not created"))?;
    Ok(HashW {
        h,
        big,
        max_entries,
        max_value,
    })
}

/// A field's value without copying the hash (WRONGTYPE if `key` is not a hash).
fn peek_field(cx: &mut Cx, key: &Bytes, field: &Bytes) -> Result<Option<Bytes>, Reply> {
    match cx.entry(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(h.get(&field[..]).map(Member::to_bytes)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

fn set_pairs(cx: &mut Cx, argv: &[Bytes], name: &str) -> Result<i64, Reply> {
    if argv.len() & 1 != 0 {
        return Err(wrong_arity(name));
    }
    let key = &argv[1];
    let mut h = hash_create(cx, key)?;
    let mut created = 0;
    for pair in argv[2..].chunks_exact(2) {
        if h.put(&pair[0], &pair[1]) {
            created += 1;
        }
    }
    cx.modified_n(key, ((argv.len() - 2) / 2) as u64);
    cx.notify(notify::HASH, "hset", key);
    Ok(created)
}

/// HSET key field value [field value ...]
fn hset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(set_pairs(cx, argv, "hset")?))
}

/// HMSET key field value [field value ...]
fn hmset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    set_pairs(cx, argv, "hmset")?;
    Ok(Reply::ok())
}

/// HSETNX key field value
fn hsetnx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, field) = (&argv[1], &argv[2]);
    if peek_field(cx, key, field)?.is_some() {
        return Ok(Reply::Int(0));
    }
    hash_create(cx, key)?.put(field, &argv[3]);
    cx.modified(key);
    cx.notify(notify::HASH, "hset", key);
    Ok(Reply::Int(1))
}

/// HGET key field
fn hget(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::opt_bulk(
        h.and_then(|h| h.get(&argv[2][..]).map(Member::to_bytes)),
    ))
}

/// HMGET key field [field ...]
fn hmget(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|f| Reply::opt_bulk(h.and_then(|h| h.get(&f[..]).map(Member::to_bytes))))
            .collect(),
    ))
}

/// HGETALL key
fn hgetall(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::Map(
        h.into_iter()
            .flatten()
            .map(|(k, v)| (Reply::Bulk(k.to_bytes()), Reply::Bulk(v.to_bytes())))
            .collect(),
    ))
}

/// HKEYS key
fn hkeys(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::bulks(
        h.into_iter().flat_map(|h| h.keys().map(Member::to_bytes)),
    ))
}

/// HVALS key
fn hvals(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::bulks(
        h.into_iter().flat_map(|h| h.values().map(Member::to_bytes)),
    ))
}

/// HDEL key field [field ...]
fn hdel(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let listpack_max = cx.config().hash_max_listpack_entries;
    let Some(h) = cx.hash_mut(key, false)? else {
        return Ok(Reply::Int(0));
    };
    let mut deleted = 0;
    for f in &argv[2..] {
        // A hash Redis keeps as a listpack keeps its fields' order when one goes
        // (HGETALL shows it); a larger one is a dict with no order, where the O(1)
        // removal is fine.
        let removed = if h.len() <= listpack_max {
            h.shift_remove(&f[..])
        } else {
            h.swap_remove(&f[..])
        };
        if removed.is_some() {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    if deleted > 0 {
        cx.notify(notify::HASH, "hdel", key);
        cx.remove_if_empty(key);
        cx.modified_n(key, deleted);
    }
    Ok(Reply::Int(deleted as i64))
}

/// HEXISTS key field
fn hexists(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::Int(
        h.is_some_and(|h| h.contains_key(&argv[2][..])) as i64
    ))
}

/// HLEN key
fn hlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::Int(h.map_or(0, |h| h.len()) as i64))
}

/// HSTRLEN key field
fn hstrlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let h = cx.get_hash(&argv[1])?;
    Ok(Reply::Int(
        h.and_then(|h| h.get(&argv[2][..])).map_or(0, |v| v.len()) as i64,
    ))
}

/// HINCRBY key field increment
fn hincrby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, field) = (&argv[1], &argv[2]);
    let incr = super::int(&argv[3])?;
    let cur = match peek_field(cx, key, field)? {
        None => 0,
        Some(v) => crate::num::parse_i64(&v)
            .ok_or_else(|| Reply::err("ERR hash value is not an integer"))?,
    };
    let new = cur
        .checked_add(incr)
        .ok_or_else(|| Reply::err(reply::ERR_OVERFLOW))?;
    hash_create(cx, key)?.put(field, &crate::num::int_bytes(new));
    cx.modified(key);
    cx.notify(notify::HASH, "hincrby", key);
    Ok(Reply::Int(new))
}

/// HINCRBYFLOAT key field increment (logged as `HSET key field result`).
fn hincrbyfloat(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, field, incr) = (&argv[1], &argv[2], &argv[3]);
    match crate::num::ld_valid(incr) {
        None => return Err(Reply::err(crate::reply::ERR_NOT_FLOAT)),
        Some(false) => return Err(Reply::err("ERR value is NaN or Infinity")),
        Some(true) => {}
    }
    let cur = match peek_field(cx, key, field)? {
        None => Bytes::from_static(b"0"),
        Some(v) => {
            if crate::num::ld_valid(&v).is_none() {
                return Err(Reply::err("ERR hash value is not a float"));
            }
            v
        }
    };
    let text = crate::num::incr_float(&cur, incr)
        .ok_or_else(|| Reply::err("ERR increment would produce NaN or Infinity"))?
        .1;
    let new = Bytes::from(text);
    hash_create(cx, key)?.put(field, &new);
    cx.modified(key);
    cx.notify(notify::HASH, "hincrbyfloat", key);
    cx.propagate(vec![
        Bytes::from_static(b"HSET"),
        key.clone(),
        field.clone(),
        new.clone(),
    ]);
    Ok(Reply::Bulk(new))
}

/// Whether Redis would keep this hash in its listpack encoding (HSCAN then answers
/// it whole with cursor 0).
fn is_small(cx: &Cx, h: &Hash) -> bool {
    let (entries, value) = (
        cx.config().hash_max_listpack_entries,
        cx.config().hash_max_listpack_value,
    );
    h.len() <= entries && h.iter().all(|(k, v)| k.len() <= value && v.len() <= value)
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cursor = scan_util::parse_cursor(&argv[2])?;
    // As in Redis, a missing key answers before the options are checked.
    if cx.get_hash(key)?.is_none() {
        return Ok(scan_util::empty());
    }
    let opts = scan_util::parse_opts(&argv[3..])?;
    let Some(e) = cx.store.dbs[cx.db].get(key) else {
        return Ok(scan_util::empty());
    };
    let Value::Hash(h) = e.value() else {
        return Ok(scan_util::empty());
    };
    let (next, items): (u64, Vec<(&Member, &Member)>) = if !e.obj.big_encoding && is_small(cx, h) {
        (0, h.iter().collect())
    } else {
        scan_util::step(h.iter(), h.len(), cursor, opts.count)
    };
    let mut out = Vec::with_capacity(items.len() * 2);
    for (k, v) in items {
        if opts.matches(k) {
            out.push(Reply::Bulk(k.to_bytes()));
            out.push(Reply::Bulk(v.to_bytes()));
        }
    }
    Ok(scan_util::reply(next, out))
}

/// A borrowed hash plus the store's rng.
type HashWithRng<'a> = (&'a Hash, &'a mut SmallRng);

/// The hash at `key` (a read: counts hits/misses, WRONGTYPE otherwise) and the rng.
fn hash_and_rng<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<HashWithRng<'a>>, Reply> {
    if cx.get_hash(key)?.is_none() {
        return Ok(None);
    }
    let db = cx.db;
    let store = &mut *cx.store;
    match store.dbs[db].get(key).map(|e| e.value()) {
        Some(Value::Hash(h)) => Ok(Some((h, &mut store.rng))),
        _ => Ok(None),
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() == 2 {
        let Some((h, rng)) = hash_and_rng(cx, key)? else {
            return Ok(Reply::Nil);
        };
        return Ok(Reply::opt_bulk(h.keys().choose(rng).map(Member::to_bytes)));
    }
    let count = super::int(&argv[2])?;
    if count == i64::MIN {
        return Err(Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let withvalues = match argv.len() {
        3 => false,
        4 if super::is(&argv[3], "withvalues") => true,
        _ => return Err(Reply::err(reply::ERR_SYNTAX)),
    };
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(Reply::err("ERR value is out of range"));
    }
    let resp3 = cx.resp3;
    let Some((h, rng)) = hash_and_rng(cx, key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picks: Vec<(&Member, &Member)> = if count < 0 {
        // Repeats allowed: exactly |count| picks.
        let n = count.unsigned_abs();
        if n > MAX_RANDOM_REPLY {
            return Err(Reply::err("ERR value is out of range"));
        }
        let all: Vec<(&Member, &Member)> = h.iter().collect();
        if all.is_empty() {
            return Ok(Reply::Array(Vec::new()));
        }
        (0..n)
            .map(|_| all[rng.random_range(0..all.len())])
            .collect()
    } else if count as u64 >= h.len() as u64 {
        h.iter().collect()
    } else {
        // Distinct fields, fewer than the hash holds.
        h.iter().choose_multiple(rng, count as usize)
    };
    let mut out = Vec::with_capacity(picks.len() * if withvalues && !resp3 { 2 } else { 1 });
    for (k, v) in picks {
        let (k, v) = (Reply::Bulk(k.to_bytes()), Reply::Bulk(v.to_bytes()));
        match (withvalues, resp3) {
            (false, _) => out.push(k),
            (true, true) => out.push(Reply::Array(vec![k, v])),
            (true, false) => {
                out.push(k);
                out.push(v);
            }
        }
    }
    Ok(Reply::Array(out))
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::{LogRecord, Store};
    use std::collections::HashSet;

    use crate::cmd::testutil::{argv, run};
    fn run3(s: &mut Store, args: &[&str]) -> Reply {
        let a = argv(args);
        let spec = crate::table::lookup(&a[0]).expect("known command");
        s.call(spec, 0, 1000, &a, true)
    }
    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn err(s: &str) -> Reply {
        Reply::error(s)
    }
    fn sorted_bulks(r: Reply) -> Vec<String> {
        let Reply::Array(items) = r else {
            panic!("not an array: {r:?}")
        };
        let mut v: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        v.sort();
        v
    }
    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn hset_hget_and_friends() {
        let mut s = Store::default();
        assert_eq!(
            run(&mut s, &["hset", "h", "a", "1", "b", "2"]),
            Reply::Int(2)
        );
        assert_eq!(s.effects.dirty, 2);
        assert_eq!(
            run(&mut s, &["hset", "h", "a", "x", "c", "3"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, &["hset", "h", "a"]),
            err("ERR wrong number of arguments for 'hset' command")
        );
        assert_eq!(
            run(&mut s, &["hmset", "h", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'hmset' command")
        );
        assert_eq!(run(&mut s, &["hmset", "h", "a", "1"]), Reply::ok());
        assert_eq!(run(&mut s, &["hget", "h", "a"]), bulk("1"));
        assert_eq!(run(&mut s, &["hget", "h", "zz"]), Reply::Nil);
        assert_eq!(run(&mut s, &["hget", "nokey", "a"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["hmget", "h", "a", "zz", "c"]),
            Reply::Array(vec![bulk("1"), Reply::Nil, bulk("3")])
        );
        assert_eq!(
            run(&mut s, &["hmget", "nokey", "a"]),
            Reply::Array(vec![Reply::Nil])
        );
        assert_eq!(run(&mut s, &["hlen", "h"]), Reply::Int(3));
        assert_eq!(run(&mut s, &["hlen", "nokey"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["hexists", "h", "b"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["hexists", "h", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["hstrlen", "h", "b"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["hstrlen", "h", "zz"]), Reply::Int(0));
        assert_eq!(sorted_bulks(run(&mut s, &["hkeys", "h"])), ["a", "b", "c"]);
        assert_eq!(sorted_bulks(run(&mut s, &["hvals", "h"])), ["1", "2", "3"]);
        assert_eq!(run(&mut s, &["hkeys", "nokey"]), Reply::Array(vec![]));
        let Reply::Map(mut m) = run(&mut s, &["hgetall", "h"]) else {
            panic!("hgetall is a map")
        };
        m.sort_by_key(|(k, _)| format!("{k:?}"));
        assert_eq!(
            m,
            vec![
                (bulk("a"), bulk("1")),
                (bulk("b"), bulk("2")),
                (bulk("c"), bulk("3"))
            ]
        );
        assert_eq!(run(&mut s, &["hgetall", "nokey"]), Reply::Map(vec![]));
        // Reads leave dirty alone.
        let d = s.effects.dirty;
        run(&mut s, &["hgetall", "h"]);
        assert_eq!(s.effects.dirty, d);
    }

    /// Fields and values on both sides of the inline limit (22 bytes) are stored,
    /// found, replaced, listed in insertion order and deleted alike.
    #[test]
    fn inline_and_heap_fields_and_values() {
        let mut s = Store::default();
        let sizes = [0usize, 1, 21, 22, 23, 64, 300];
        let field = |n: usize| "f".repeat(n);
        let value = |n: usize| format!("{n}:{}", "v".repeat(n));
        for &n in &sizes {
            let (f, v) = (field(n), value(n));
            assert_eq!(run(&mut s, &["hset", "h", &f, &v]), Reply::Int(1), "{n}");
        }
        for &n in &sizes {
            assert_eq!(run(&mut s, &["hget", "h", &field(n)]), bulk(&value(n)));
            assert_eq!(
                run(&mut s, &["hstrlen", "h", &field(n)]),
                Reply::Int(value(n).len() as i64)
            );
        }
        // A longer field with an inline-length prefix is a different field.
        assert_eq!(run(&mut s, &["hexists", "h", &field(24)]), Reply::Int(0));
        // Replacing a heap value by an inline one and back.
        assert_eq!(run(&mut s, &["hset", "h", &field(23), "x"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["hget", "h", &field(23)]), bulk("x"));
        let long = "y".repeat(40);
        assert_eq!(
            run(&mut s, &["hset", "h", &field(22), &long]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, &["hget", "h", &field(22)]), bulk(&long));
        assert_eq!(run(&mut s, &["hdel", "h", &field(1)]), Reply::Int(1));
        let Reply::Map(m) = run(&mut s, &["hgetall", "h"]) else {
            panic!("hgetall is a map")
        };
        let keys: Vec<Reply> = m.into_iter().map(|(k, _)| k).collect();
        let expected: Vec<Reply> = sizes
            .iter()
            .filter(|&&n| n != 1)
            .map(|&n| bulk(&field(n)))
            .collect();
        assert_eq!(keys, expected);
        assert_eq!(
            run(&mut s, &["hincrby", "h", &field(300), "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "h", &field(30), "5"]),
            Reply::Int(5)
        );
        assert_eq!(run(&mut s, &["hget", "h", &field(30)]), bulk("5"));
    }

    #[test]
    fn hsetnx_and_hdel() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["hsetnx", "h", "a", "1"]), Reply::Int(1));
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["hsetnx", "h", "a", "2"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["hget", "h", "a"]), bulk("1"));
        run(&mut s, &["hset", "h", "b", "2"]);
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["hdel", "h", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["hdel", "nokey", "zz"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["hdel", "h", "a", "zz", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["hdel", "h", "b"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["exists", "h"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d + 2);
    }

    #[test]
    fn wrong_type() {
        let mut s = Store::default();
        run(&mut s, &["set", "str", "x"]);
        let d = s.effects.dirty;
        for cmd in [
            &["hset", "str", "a", "1"][..],
            &["hsetnx", "str", "a", "1"],
            &["hget", "str", "a"],
            &["hmget", "str", "a"],
            &["hgetall", "str"],
            &["hdel", "str", "a"],
            &["hlen", "str"],
            &["hincrby", "str", "a", "1"],
            &["hincrbyfloat", "str", "a", "1"],
            &["hscan", "str", "0"],
            &["hrandfield", "str"],
            &["hrandfield", "str", "2"],
        ] {
            assert_eq!(run(&mut s, cmd), err(WRONGTYPE), "{cmd:?}");
        }
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["get", "str"]), bulk("x"));
    }

    #[test]
    fn hincrby_rules() {
        let mut s = Store::default();
        run(
            &mut s,
            &[
                "hset",
                "h",
                "a",
                "1",
                "b",
                "x",
                "c",
                "1.5",
                "big",
                "9223372036854775807",
                "sp",
                " 1",
            ],
        );
        assert_eq!(run(&mut s, &["hincrby", "h", "a", "5"]), Reply::Int(6));
        assert_eq!(run(&mut s, &["hincrby", "h", "new", "-3"]), Reply::Int(-3));
        assert_eq!(run(&mut s, &["hget", "h", "new"]), bulk("-3"));
        let d = s.effects.dirty;
        assert_eq!(
            run(&mut s, &["hincrby", "h", "b", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "h", "c", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "h", "sp", "1"]),
            err("ERR hash value is not an integer")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "h", "big", "1"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "h", "a", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["hincrby", "nokey", "a", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["exists", "nokey"]), Reply::Int(0));
    }

    #[test]
    fn hincrbyfloat_rules_and_propagation() {
        let mut s = Store::default();
        run(&mut s, &["hset", "h", "a", "10.5", "b", "x", "sp", " 1"]);
        s.effects.log.clear();
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "a", "0.1"]),
            bulk("10.6")
        );
        assert_eq!(
            s.effects.log,
            vec![LogRecord {
                db: 0,
                time: 1000,
                argv: argv(&["HSET", "h", "a", "10.6"])
            }]
        );
        assert_eq!(run(&mut s, &["hincrbyfloat", "h", "n", "1e1"]), bulk("10"));
        assert_eq!(run(&mut s, &["hincrbyfloat", "h", "a", "-10.6"]), bulk("0"));
        let d = s.effects.dirty;
        s.effects.log.clear();
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "b", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "sp", "1"]),
            err("ERR hash value is not a float")
        );
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "a", "x"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "a", " 1"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "a", "inf"]),
            err("ERR value is NaN or Infinity")
        );
        // Long double range, not double (checked against redis-server 7.0.15): the
        // sum of two 1e4932 overflows, 1e4933 is not a number at all.
        run(&mut s, &["hset", "h", "m", "1e4932"]);
        s.effects.log.clear();
        let d2 = s.effects.dirty;
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "m", "1e4933"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            run(&mut s, &["hincrbyfloat", "h", "m", "1e4932"]),
            err("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(s.effects.dirty, d2);
        assert!(s.effects.log.is_empty());
        assert_eq!(d2, d + 1);
    }

    #[test]
    fn long_double_arithmetic_matches_redis() {
        // Results taken from redis-server 7.0.15 (x86-64, 80-bit long double).
        for (cur, incr, want) in [
            ("9223372036854775807", "3", "9223372036854775810"),
            ("9223372036854775807", "2", "9223372036854775809"),
            ("-9223372036854775808", "0.5", "-9223372036854775807.5"),
            ("-9223372036854775808", "1.5", "-9223372036854775806.5"),
            ("-9223372036854775808", "3", "-9223372036854775805"),
            ("10.5", "0.1", "10.6"),
            ("0", "1.5", "1.5"),
            ("3.0", "-3.0", "0"),
            ("100.1", "0.2", "100.3"),
            ("1234567.1", "0.1", "1234567.20000000000004547"),
            ("9999999999999999999", "1", "10000000000000000000"),
            (
                "0.00000000000000001",
                "0.00000000000000001",
                "0.00000000000000002",
            ),
            ("0.5", ".25", "0.75"),
            ("5.", "+1", "6"),
            (
                "99999999999999999999999.0255142848387873",
                "0.20",
                "100000000000000000000000",
            ),
            (
                "1000000000000000000000000000000.695893556746074",
                "2710.7406873661000601",
                "1000000000000000000024696061952",
            ),
            (
                "9999999999999999999.68103370781497",
                "1000000000000000000000000000000.6999030666602524",
                "1000000000010000000005202509824",
            ),
            ("99999999999999999999999", "1", "100000000000000000000000"),
            (
                "123456789012345678901234567",
                "0",
                "123456789012345678899183616",
            ),
            (
                "18446744073709551615",
                "-9223372036854775807.3",
                "9223372036854775807.5",
            ),
            (
                "-9223372036854775808.80594427004209",
                "18446744073709551615.731240322399710",
                "9223372036854775807",
            ),
            (
                "-98758.658843322822",
                "-18446744073709551615.9205233797",
                "-18446744073709650374",
            ),
            (
                "123456789012.123",
                "0.001",
                "123456789012.12400000542402267",
            ),
            ("0.1", "0.2", "0.3"),
            ("-0.00001", "0", "-0.00001"),
        ] {
            assert_eq!(
                crate::num::incr_float(cur.as_bytes(), incr.as_bytes())
                    .map(|x| x.1)
                    .as_deref(),
                Some(want),
                "{cur} + {incr}"
            );
        }
    }

    #[test]
    fn hscan_small_and_large() {
        let mut s = Store::default();
        assert_eq!(
            run(&mut s, &["hscan", "nokey", "0", "foo"]),
            super::scan_util::empty()
        );
        assert_eq!(
            run(&mut s, &["hscan", "nokey", "x"]),
            err("ERR invalid cursor")
        );
        run(&mut s, &["hset", "h", "a", "1", "b", "2"]);
        // Small hashes come back whole, whatever the cursor and count.
        let Reply::Array(r) = run(&mut s, &["hscan", "h", "5", "count", "1"]) else {
            panic!()
        };
        assert_eq!(r[0], bulk("0"));
        let Reply::Array(items) = &r[1] else { panic!() };
        assert_eq!(items.len(), 4);
        assert_eq!(
            run(&mut s, &["hscan", "h", "0", "match", "a"]),
            Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("a"), bulk("1")])])
        );
        assert_eq!(
            run(&mut s, &["hscan", "h", "0", "count", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["hscan", "h", "0", "count", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["hscan", "h", "0", "type", "hash"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["hscan", "h", " 1"]),
            err("ERR invalid cursor")
        );

        for i in 0..300 {
            run(&mut s, &["hset", "big", &format!("f{i}"), &format!("v{i}")]);
        }
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        let mut steps = 0;
        loop {
            let Reply::Array(r) = run(&mut s, &["hscan", "big", &cursor]) else {
                panic!()
            };
            let Reply::Bulk(c) = &r[0] else { panic!() };
            let Reply::Array(items) = &r[1] else { panic!() };
            assert!(items.len() <= 20, "count 10 returned {}", items.len());
            for pair in items.chunks(2) {
                let (Reply::Bulk(f), Reply::Bulk(v)) = (&pair[0], &pair[1]) else {
                    panic!()
                };
                assert_eq!(&v[1..], &f[1..]);
                seen.insert(f.clone());
            }
            steps += 1;
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 300);
        assert!(steps >= 30);
    }

    #[test]
    fn hrandfield_counts() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["hrandfield", "nokey"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["hrandfield", "nokey", "3"]),
            Reply::Array(vec![])
        );
        assert_eq!(
            run(&mut s, &["hrandfield", "nokey", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["hrandfield", "nokey", "1", "foo"]),
            err("ERR syntax error")
        );
        run(&mut s, &["hset", "h", "a", "1", "b", "2", "c", "3"]);
        let Reply::Bulk(f) = run(&mut s, &["hrandfield", "h"]) else {
            panic!()
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&f.as_ref()));
        assert_eq!(run(&mut s, &["hrandfield", "h", "0"]), Reply::Array(vec![]));
        assert_eq!(
            sorted_bulks(run(&mut s, &["hrandfield", "h", "5"])),
            ["a", "b", "c"]
        );
        let two = sorted_bulks(run(&mut s, &["hrandfield", "h", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let Reply::Array(many) = run(&mut s, &["hrandfield", "h", "-10"]) else {
            panic!()
        };
        assert_eq!(many.len(), 10);
        let Reply::Array(flat) = run(&mut s, &["hrandfield", "h", "-4", "withvalues"]) else {
            panic!()
        };
        assert_eq!(flat.len(), 8);
        let Reply::Array(nested) = run3(&mut s, &["hrandfield", "h", "2", "WITHVALUES"]) else {
            panic!()
        };
        assert_eq!(nested.len(), 2);
        for p in nested {
            let Reply::Array(p) = p else {
                panic!("RESP3 pairs are arrays")
            };
            let (Reply::Bulk(f), Reply::Bulk(v)) = (&p[0], &p[1]) else {
                panic!()
            };
            assert_eq!((f[0] - b'a' + b'1'), v[0]);
        }
        assert_eq!(
            run(&mut s, &["hrandfield", "h", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert_eq!(
            run(
                &mut s,
                &["hrandfield", "h", "-4611686018427387904", "withvalues"]
            ),
            err("ERR value is out of range")
        );
        assert!(run(&mut s, &["hrandfield", "h", "-9223372036854775807"]).is_error());
    }
}
