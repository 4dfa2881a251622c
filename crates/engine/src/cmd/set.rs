//! Set commands.

use super::scan_util;
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::{Kind, Member, Set, Value};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::HashSet;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "sadd",
        -3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "set",
        Some(sadd),
    ),
    cmd("srem", -3, WRITE | FAST, 1, 1, 1, "set", Some(srem)),
    cmd("smembers", 2, READONLY, 1, 1, 1, "set", Some(smembers)),
    cmd(
        "sismember",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "set",
        Some(sismember),
    ),
    cmd(
        "smismember",
        -3,
        READONLY | FAST,
        1,
        1,
        1,
        "set",
        Some(smismember),
    ),
    cmd("scard", 2, READONLY | FAST, 1, 1, 1, "set", Some(scard)),
    cmd("spop", -2, WRITE | FAST, 1, 1, 1, "set", Some(spop)),
    cmd(
        "srandmember",
        -2,
        READONLY,
        1,
        1,
        1,
        "set",
        Some(srandmember),
    ),
    cmd("sinter", -2, READONLY, 1, -1, 1, "set", Some(sinter)),
    cmd(
        "sintercard",
        -3,
        READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "set",
        Some(sintercard),
    ),
    cmd("sunion", -2, READONLY, 1, -1, 1, "set", Some(sunion)),
    cmd("sdiff", -2, READONLY, 1, -1, 1, "set", Some(sdiff)),
    cmd(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        1,
        -1,
        1,
        "set",
        Some(sinterstore),
    ),
    cmd(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        1,
        -1,
        1,
        "set",
        Some(sunionstore),
    ),
    cmd(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        1,
        -1,
        1,
        "set",
        Some(sdiffstore),
    ),
    cmd("smove", 4, WRITE | FAST, 1, 2, 1, "set", Some(smove)),
    cmd("sscan", -3, READONLY, 1, 1, 1, "set", Some(sscan)),
];

/// The most elements a negative-count SRANDMEMBER may ask for (Redis would try to
/// build any size and run out of memory).
const MAX_RANDOM_REPLY: u64 = 1 << 22;

/// Members per SREM record when SPOP is logged.
const SREM_BATCH: usize = 1024;

fn set_create<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<SetW<'a>, Reply> {
    let max_intset = cx.config().set_max_intset_entries;
    let (s, big) = cx
        .set_mut_enc(key, true)?
        .ok_or_else(|| Reply::err("ERR internal error: set not created"))?;
    Ok(SetW { s, big, max_intset })
}

/// A set being added to, with its sticky encoding flag and set-max-intset-entries.
struct SetW<'a> {
    s: &'a mut Set,
    big: &'a mut bool,
    max_intset: usize,
}

impl SetW<'_> {
    /// Adds `member` (copied); true when it is new. Notes the conversion to a
    /// hashtable as Redis's setTypeAdd does: a member that is not an integer, or more
    /// members than set-max-intset-entries (checked until the set is converted).
    fn add(&mut self, member: &Bytes) -> bool {
        // One hash and probe; the member is copied only when new.
        if !self.s.insert_slice(member) {
            return false;
        }
        if !*self.big && (self.s.len() > self.max_intset || crate::num::parse_i64(member).is_none())
        {
            *self.big = true;
        }
        true
    }
}

fn members_reply<'a>(it: impl IntoIterator<Item = &'a Member>) -> Reply {
    Reply::Set(it.into_iter().map(|m| Reply::Bulk(m.to_bytes())).collect())
}

/// SADD key member [member ...]
fn sadd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut s = set_create(cx, key)?;
    let mut added = 0u64;
    for m in &argv[2..] {
        if s.add(m) {
            added += 1;
        }
    }
    if added > 0 {
        cx.modified_n(key, added);
        cx.notify(notify::SET, "sadd", key);
    }
    Ok(Reply::Int(added as i64))
}

/// SREM key member [member ...]
fn srem(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(s) = cx.set_mut(key, false)? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = 0u64;
    for m in &argv[2..] {
        if s.swap_remove(&m[..]) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    if removed > 0 {
        cx.notify(notify::SET, "srem", key);
        cx.remove_if_empty(key);
        cx.modified_n(key, removed);
    }
    Ok(Reply::Int(removed as i64))
}

/// SMEMBERS key. A set Redis 7.0 keeps as an intset (only integers, at most
/// set-max-intset-entries) is answered in ascending order, as Redis walks its
/// intset; any other set in storage order (Redis's hash table order is
/// unspecified).
fn smembers(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let max_intset = cx.config().set_max_intset_entries;
    let Some(e) = cx.lookup_read(&argv[1]) else {
        return Ok(Reply::Set(Vec::new()));
    };
    let Value::Set(s) = e.value() else {
        return Err(Reply::wrongtype());
    };
    if !e.obj.big_encoding && s.len() <= max_intset {
        if let Some(sorted) = intset_order(s) {
            return Ok(members_reply(sorted));
        }
    }
    Ok(members_reply(s.iter()))
}

/// The members in ascending numeric order when every one is an integer (the
/// order of Redis's intset encoding), else None.
fn intset_order(s: &Set) -> Option<Vec<&Member>> {
    let mut v: Vec<(i64, &Member)> = s
        .iter()
        .map(|m| crate::num::parse_i64(m).map(|n| (n, m)))
        .collect::<Option<_>>()?;
    v.sort_unstable_by_key(|p| p.0);
    Some(v.into_iter().map(|p| p.1).collect())
}

/// SISMEMBER key member
fn sismember(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        cx.get_set(&argv[1])?
            .is_some_and(|s| s.contains(&argv[2][..])) as i64,
    ))
}

/// SMISMEMBER key member [member ...]
fn smismember(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let s = cx.get_set(&argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| Reply::Int(s.is_some_and(|s| s.contains(&m[..])) as i64))
            .collect(),
    ))
}

/// SCARD key
fn scard(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        cx.get_set(&argv[1])?.map_or(0, |s| s.len()) as i64
    ))
}

/// A borrowed set plus the store's rng.
type SetWithRng<'a> = (&'a Set, &'a mut SmallRng);

/// The set at `key` (WRONGTYPE if it is not a set) and the rng.
fn set_and_rng<'a>(
    cx: &'a mut Cx,
    key: &Bytes,
    read: bool,
) -> Result<Option<SetWithRng<'a>>, Reply> {
    // Reads count a keyspace hit or miss; writes (SPOP) do not, as in Redis.
    if read && cx.get_set(key)?.is_none() {
        return Ok(None);
    }
    let (db, now) = (cx.db, cx.now);
    let store = &mut *cx.store;
    if !read {
        store.expire_if_needed(db, key, now);
    }
    match store.dbs[db].get(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some((s, &mut store.rng))),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// SPOP key (no count): the member is chosen by position and removed by position
/// (no copy of it, no hash of it), and logged as SREM only when a log wants it.
fn spop_one(cx: &mut Cx, key: &Bytes) -> CmdResult {
    let Some((s, rng)) = set_and_rng(cx, key, false)? else {
        return Ok(Reply::Nil);
    };
    if s.is_empty() {
        return Ok(Reply::Nil);
    }
    let i = rng.random_range(0..s.len());
    let Some(set) = cx.set_mut(key, false)? else {
        return Ok(Reply::Nil);
    };
    // A copy made for a snapshot keeps the order, so `i` is the same member.
    let Some(m) = set.swap_remove_index(i) else {
        return Ok(Reply::Nil);
    };
    let emptied = set.is_empty();
    cx.notify(notify::SET, "spop", key);
    if emptied {
        cx.remove_if_empty(key);
    }
    cx.modified(key);
    if cx.logging() {
        cx.propagate(vec![Bytes::from_static(b"SREM"), key.clone(), m.to_bytes()]);
    } else {
        cx.propagate_nothing();
    }
    Ok(Reply::Bulk(m.to_bytes()))
}

/// SPOP key [count] (logged as SREM of the popped members, or DEL when the whole
/// set goes, so replay does not depend on the random choice).
fn spop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() > 3 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let count = match argv.get(2) {
        None => return spop_one(cx, key),
        Some(c) => Some(
            crate::num::parse_i64(c)
                .filter(|c| *c >= 0)
                .ok_or_else(|| Reply::err(reply::ERR_NOT_POSITIVE))?,
        ),
    };
    let Some((s, rng)) = set_and_rng(cx, key, false)? else {
        return Ok(if count.is_some() {
            Reply::Set(Vec::new())
        } else {
            Reply::Nil
        });
    };
    let size = s.len();
    let popped: Vec<Bytes> = match count {
        None => random_member(s, rng)
            .map(Member::to_bytes)
            .into_iter()
            .collect(),
        Some(0) => return Ok(Reply::Set(Vec::new())),
        Some(c) if c as u64 >= size as u64 => {
            // The whole set goes.
            let all = members_reply(s.iter());
            cx.notify(notify::SET, "spop", key);
            cx.delete(key);
            cx.add_dirty(size.saturating_sub(1) as u64);
            cx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
            return Ok(all);
        }
        Some(c) => random_members(s, rng, c as usize),
    };
    let Some(set) = cx.set_mut(key, false)? else {
        return Ok(Reply::Nil);
    };
    for m in &popped {
        set.swap_remove(&m[..]);
    }
    cx.notify(notify::SET, "spop", key);
    cx.remove_if_empty(key);
    cx.modified_n(key, popped.len() as u64);
    let logging = cx.logging();
    if !logging {
        cx.propagate_nothing();
    }
    for batch in popped.chunks(SREM_BATCH).filter(|_| logging) {
        let mut rec = Vec::with_capacity(batch.len() + 2);
        rec.push(Bytes::from_static(b"SREM"));
        rec.push(key.clone());
        rec.extend(batch.iter().cloned());
        cx.propagate(rec);
    }
    Ok(match count {
        None => Reply::opt_bulk(popped.into_iter().next()),
        Some(_) => Reply::Set(popped.into_iter().map(Reply::Bulk).collect()),
    })
}

/// SRANDMEMBER key [count]
fn srandmember(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() > 3 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let Some(count) = argv.get(2) else {
        let Some((s, rng)) = set_and_rng(cx, key, true)? else {
            return Ok(Reply::Nil);
        };
        return Ok(Reply::opt_bulk(random_member(s, rng).map(Member::to_bytes)));
    };
    let count = super::int(count)?;
    if count == i64::MIN {
        return Err(Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let Some((s, rng)) = set_and_rng(cx, key, true)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 || s.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    if count < 0 {
        // Repeats allowed: exactly |count| picks.
        let n = count.unsigned_abs();
        if n > MAX_RANDOM_REPLY {
            return Err(Reply::err("ERR value is out of range"));
        }
        return Ok(Reply::Array(
            (0..n)
                .filter_map(|_| random_member(s, rng).map(|m| Reply::Bulk(m.to_bytes())))
                .collect(),
        ));
    }
    if count as u64 >= s.len() as u64 {
        return Ok(Reply::bulks(s.iter().map(Member::to_bytes)));
    }
    Ok(Reply::bulks(random_members(s, rng, count as usize)))
}

/// A uniformly random member (by position: O(1)).
fn random_member<'a>(s: &'a Set, rng: &mut SmallRng) -> Option<&'a Member> {
    if s.is_empty() {
        return None;
    }
    s.get_index(rng.random_range(0..s.len()))
}

/// `n` distinct members chosen uniformly (`n` < the set's size): O(n).
fn random_members(s: &Set, rng: &mut SmallRng, n: usize) -> Vec<Bytes> {
    rand::seq::index::sample(rng, s.len(), n.min(s.len()))
        .iter()
        .filter_map(|i| s.get_index(i).map(Member::to_bytes))
        .collect()
}

/// Looks up every key as a read (expiring, counting hits, WRONGTYPE on any non-set,
/// as Redis checks them all); returns which exist.
fn lookup_sets(cx: &mut Cx, keys: &[Bytes]) -> Result<Vec<bool>, Reply> {
    keys.iter().map(|k| Ok(cx.get_set(k)?.is_some())).collect()
}

/// The sets at `keys` (None for missing ones) after [`lookup_sets`].
fn borrow_sets<'a>(cx: &'a Cx, keys: &[Bytes]) -> Vec<Option<&'a Set>> {
    let db = &cx.store.dbs[cx.db];
    keys.iter()
        .map(|k| match db.get(k).map(|e| e.value()) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect()
}

/// The intersection, stopping at `limit` members (0 = no limit).
fn intersect<'a>(sets: &[Option<&'a Set>], limit: usize) -> Vec<&'a Member> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<_>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in first.iter() {
        if rest.iter().all(|s| s.contains(&m[..])) {
            out.push(m);
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

fn union<'a>(sets: &[Option<&'a Set>]) -> HashSet<&'a Member> {
    let mut out = HashSet::new();
    for s in sets.iter().flatten() {
        out.extend(s.iter());
    }
    out
}

fn diff<'a>(sets: &[Option<&'a Set>]) -> Vec<&'a Member> {
    let Some((Some(first), rest)) = sets.split_first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|m| !rest.iter().flatten().any(|s| s.contains(&m[..])))
        .collect()
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

fn compute(cx: &mut Cx, keys: &[Bytes], op: SetOp) -> Result<Vec<Member>, Reply> {
    lookup_sets(cx, keys)?;
    let sets = borrow_sets(cx, keys);
    Ok(match op {
        SetOp::Inter => intersect(&sets, 0).into_iter().cloned().collect(),
        SetOp::Union => union(&sets).into_iter().cloned().collect(),
        SetOp::Diff => diff(&sets).into_iter().cloned().collect(),
    })
}

fn read_op(cx: &mut Cx, argv: &[Bytes], op: SetOp) -> CmdResult {
    let members = compute(cx, &argv[1..], op)?;
    Ok(Reply::Set(
        members
            .into_iter()
            .map(|m| Reply::Bulk(m.to_bytes()))
            .collect(),
    ))
}

/// Stores the result at `dst` (any old value and TTL go; an empty result deletes it).
fn store_op(cx: &mut Cx, argv: &[Bytes], op: SetOp) -> CmdResult {
    let dst = &argv[1];
    let members = compute(cx, &argv[2..], op)?;
    if members.is_empty() {
        cx.delete(dst);
        return Ok(Reply::Int(0));
    }
    let n = members.len();
    cx.store.expire_if_needed(cx.db, dst, cx.now);
    cx.set_value(
        dst,
        Value::Set(Box::new(members.into_iter().collect())),
        None,
    );
    let event = match op {
        SetOp::Inter => "sinterstore",
        SetOp::Union => "sunionstore",
        SetOp::Diff => "sdiffstore",
    };
    cx.notify(notify::SET, event, dst);
    Ok(Reply::Int(n as i64))
}

/// SINTER key [key ...]
fn sinter(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    read_op(cx, argv, SetOp::Inter)
}

/// SUNION key [key ...]
fn sunion(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    read_op(cx, argv, SetOp::Union)
}

/// SDIFF key [key ...]
fn sdiff(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    read_op(cx, argv, SetOp::Diff)
}

/// SINTERSTORE destination key [key ...]
fn sinterstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    store_op(cx, argv, SetOp::Inter)
}

/// SUNIONSTORE destination key [key ...]
fn sunionstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    store_op(cx, argv, SetOp::Union)
}

/// SDIFFSTORE destination key [key ...]
fn sdiffstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    store_op(cx, argv, SetOp::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let numkeys = crate::num::parse_i64(&argv[1])
        .filter(|n| *n >= 1)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?;
    let end = usize::try_from(numkeys)
        .ok()
        .filter(|n| *n <= argv.len() - 2)
        .map(|n| n + 2)
        .ok_or_else(|| Reply::err("ERR Number of keys can't be greater than number of args"))?;
    let mut limit = 0i64;
    let mut i = end;
    while i < argv.len() {
        if super::is(&argv[i], "limit") && i + 1 < argv.len() {
            limit = crate::num::parse_i64(&argv[i + 1])
                .filter(|l| *l >= 0)
                .ok_or_else(|| Reply::err("ERR LIMIT can't be negative"))?;
            i += 2;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let keys = &argv[2..end];
    lookup_sets(cx, keys)?;
    let sets = borrow_sets(cx, keys);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(Reply::Int(intersect(&sets, limit).len() as i64))
}

/// SMOVE source destination member
fn smove(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&argv[1], &argv[2], &argv[3]);
    let src_kind = cx.kind(src);
    let dst_kind = cx.kind(dst);
    match src_kind {
        None => return Ok(Reply::Int(0)),
        Some(Kind::Set) => {}
        Some(_) => return Err(Reply::wrongtype()),
    }
    if dst_kind.is_some_and(|k| k != Kind::Set) {
        return Err(Reply::wrongtype());
    }
    if src == dst {
        let Some(Value::Set(s)) = cx.entry(src).map(|e| e.value()) else {
            return Ok(Reply::Int(0));
        };
        return Ok(Reply::Int(s.contains(&member[..]) as i64));
    }
    let Some(s) = cx.set_mut(src, false)? else {
        return Ok(Reply::Int(0));
    };
    if !s.swap_remove(&member[..]) {
        return Ok(Reply::Int(0));
    }
    cx.notify(notify::SET, "srem", src);
    cx.remove_if_empty(src);
    cx.modified(src);
    if set_create(cx, dst)?.add(member) {
        cx.modified(dst);
        cx.notify(notify::SET, "sadd", dst);
    }
    Ok(Reply::Int(1))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let cursor = scan_util::parse_cursor(&argv[2])?;
    // As in Redis, a missing key answers before the options are checked.
    if cx.get_set(key)?.is_none() {
        return Ok(scan_util::empty());
    }
    let opts = scan_util::parse_opts(&argv[3..])?;
    let Some(e) = cx.store.dbs[cx.db].get(key) else {
        return Ok(scan_util::empty());
    };
    let Value::Set(s) = e.value() else {
        return Ok(scan_util::empty());
    };
    let whole = (!e.obj.big_encoding && s.len() <= cx.config().set_max_intset_entries)
        .then(|| intset_order(s))
        .flatten();
    let (next, items): (u64, Vec<(&Member, ())>) = if let Some(sorted) = whole {
        // An intset is answered whole, in its (ascending) order.
        (0, sorted.into_iter().map(|m| (m, ())).collect())
    } else {
        scan_util::step(s.iter().map(|m| (m, ())), s.len(), cursor, opts.count)
    };
    let out = items
        .into_iter()
        .filter(|(m, ())| opts.matches(m))
        .map(|(m, ())| Reply::Bulk(m.to_bytes()))
        .collect();
    Ok(scan_util::reply(next, out))
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::{LogRecord, Store};
    use bytes::Bytes;
    use std::collections::HashSet;

    use crate::cmd::testutil::{argv, run};
    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn err(s: &str) -> Reply {
        Reply::error(s)
    }
    /// The members of an Array or Set reply, sorted.
    fn members(r: Reply) -> Vec<String> {
        let items = match r {
            Reply::Array(v) | Reply::Set(v) => v,
            other => panic!("not a collection: {other:?}"),
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
    fn is_set(r: &Reply) -> bool {
        matches!(r, Reply::Set(_))
    }
    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn sadd_srem_membership() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["sadd", "s", "a", "b", "a"]), Reply::Int(2));
        assert_eq!(s.effects.dirty, 2);
        assert_eq!(run(&mut s, &["sadd", "s", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["srem", "s", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["srem", "nokey", "zz"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, 2);
        assert_eq!(run(&mut s, &["scard", "s"]), Reply::Int(2));
        assert_eq!(run(&mut s, &["scard", "nokey"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["sismember", "s", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["sismember", "s", "z"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &["smismember", "s", "a", "z"]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
        );
        assert_eq!(
            run(&mut s, &["smismember", "nokey", "a"]),
            Reply::Array(vec![Reply::Int(0)])
        );
        let r = run(&mut s, &["smembers", "s"]);
        assert!(is_set(&r));
        assert_eq!(members(r), ["a", "b"]);
        assert_eq!(run(&mut s, &["smembers", "nokey"]), Reply::Set(vec![]));
        assert_eq!(run(&mut s, &["srem", "s", "a", "b", "c"]), Reply::Int(2));
        assert_eq!(s.effects.dirty, 4);
        assert_eq!(run(&mut s, &["exists", "s"]), Reply::Int(0));
    }

    #[test]
    fn wrong_type() {
        let mut s = Store::default();
        run(&mut s, &["set", "str", "x"]);
        run(&mut s, &["sadd", "s", "a"]);
        let d = s.effects.dirty;
        for cmd in [
            &["sadd", "str", "a"][..],
            &["srem", "str", "a"],
            &["smembers", "str"],
            &["sismember", "str", "a"],
            &["smismember", "str", "a"],
            &["scard", "str"],
            &["spop", "str"],
            &["spop", "str", "1"],
            &["srandmember", "str"],
            &["srandmember", "str", "-1"],
            &["sinter", "nokey", "str"],
            &["sunion", "s", "str"],
            &["sdiff", "nokey", "str"],
            &["sintercard", "2", "nokey", "str"],
            &["sinterstore", "dst", "nokey", "str"],
            &["smove", "s", "str", "a"],
            &["smove", "str", "s", "a"],
            &["sscan", "str", "0"],
        ] {
            assert_eq!(run(&mut s, cmd), err(WRONGTYPE), "{cmd:?}");
        }
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["smove", "nokey", "str", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["exists", "dst"]), Reply::Int(0));
        assert_eq!(members(run(&mut s, &["smembers", "s"])), ["a"]);
    }

    #[test]
    fn algebra() {
        let mut s = Store::default();
        run(&mut s, &["sadd", "a", "1", "2", "3", "4"]);
        run(&mut s, &["sadd", "b", "3", "4", "5"]);
        run(&mut s, &["sadd", "c", "4", "6"]);
        let r = run(&mut s, &["sinter", "a", "b"]);
        assert!(is_set(&r));
        assert_eq!(members(r), ["3", "4"]);
        assert_eq!(members(run(&mut s, &["sinter", "a", "b", "c"])), ["4"]);
        assert_eq!(run(&mut s, &["sinter", "a", "nokey"]), Reply::Set(vec![]));
        assert_eq!(
            members(run(&mut s, &["sunion", "a", "nokey", "c"])),
            ["1", "2", "3", "4", "6"]
        );
        assert_eq!(
            members(run(&mut s, &["sdiff", "a", "b", "nokey", "c"])),
            ["1", "2"]
        );
        assert_eq!(run(&mut s, &["sdiff", "nokey", "a"]), Reply::Set(vec![]));
        assert_eq!(run(&mut s, &["sintercard", "2", "a", "b"]), Reply::Int(2));
        assert_eq!(
            run(&mut s, &["sintercard", "2", "a", "b", "limit", "1"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(
                &mut s,
                &["sintercard", "2", "a", "b", "LIMIT", "1", "limit", "0"]
            ),
            Reply::Int(2)
        );
        assert_eq!(run(&mut s, &["sintercard", "1", "nokey"]), Reply::Int(0));
        for (cmd, e) in [
            (
                &["sintercard", "0", "a"][..],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["sintercard", "x", "a"],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["sintercard", "2", "a"],
                "ERR Number of keys can't be greater than number of args",
            ),
            (
                &["sintercard", "9223372036854775807", "a"],
                "ERR Number of keys can't be greater than number of args",
            ),
            (
                &["sintercard", "1", "a", "limit", "-1"],
                "ERR LIMIT can't be negative",
            ),
            (
                &["sintercard", "1", "a", "limit", "x"],
                "ERR LIMIT can't be negative",
            ),
            (&["sintercard", "1", "a", "limit"], "ERR syntax error"),
            (&["sintercard", "1", "a", "foo"], "ERR syntax error"),
        ] {
            assert_eq!(run(&mut s, cmd), err(e), "{cmd:?}");
        }
    }

    #[test]
    fn store_variants() {
        let mut s = Store::default();
        run(&mut s, &["sadd", "a", "1", "2", "3"]);
        run(&mut s, &["sadd", "b", "2", "3", "4"]);
        run(&mut s, &["set", "dst", "x"]);
        // The destination is overwritten whatever its type, as in Redis.
        assert_eq!(
            run(&mut s, &["sinterstore", "dst", "a", "b"]),
            Reply::Int(2)
        );
        assert_eq!(members(run(&mut s, &["smembers", "dst"])), ["2", "3"]);
        assert_eq!(
            run(&mut s, &["sunionstore", "dst", "a", "b"]),
            Reply::Int(4)
        );
        assert_eq!(run(&mut s, &["sdiffstore", "dst", "a", "b"]), Reply::Int(1));
        assert_eq!(members(run(&mut s, &["smembers", "dst"])), ["1"]);
        // Storing into a source works.
        assert_eq!(run(&mut s, &["sunionstore", "a", "a", "b"]), Reply::Int(4));
        // An empty result deletes the destination.
        let d = s.effects.dirty;
        assert_eq!(
            run(&mut s, &["sinterstore", "dst", "a", "nokey"]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, &["exists", "dst"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d + 1);
        // ... and changes nothing when there was none.
        assert_eq!(
            run(&mut s, &["sdiffstore", "dst", "nokey", "a"]),
            Reply::Int(0)
        );
        assert_eq!(s.effects.dirty, d + 1);
    }

    #[test]
    fn smove_cases() {
        let mut s = Store::default();
        run(&mut s, &["sadd", "src", "a", "b"]);
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["smove", "src", "dst", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["smove", "src", "src", "a"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["smove", "src", "src", "zz"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["exists", "dst"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["smove", "src", "dst", "a"]), Reply::Int(1));
        assert_eq!(s.effects.dirty, d + 2);
        run(&mut s, &["sadd", "dst", "b"]);
        assert_eq!(run(&mut s, &["smove", "src", "dst", "b"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["exists", "src"]), Reply::Int(0));
        assert_eq!(members(run(&mut s, &["smembers", "dst"])), ["a", "b"]);
    }

    #[test]
    fn spop_replies_and_log() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["spop", "nokey"]), Reply::Nil);
        assert_eq!(run(&mut s, &["spop", "nokey", "2"]), Reply::Set(vec![]));
        assert_eq!(
            run(&mut s, &["spop", "nokey", "a"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            run(&mut s, &["spop", "nokey", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            run(&mut s, &["spop", "nokey", "1", "2"]),
            err("ERR syntax error")
        );
        run(&mut s, &["sadd", "s", "a", "b", "c", "d", "e"]);
        let d = s.effects.dirty;
        s.effects.log.clear();
        assert_eq!(run(&mut s, &["spop", "s", "0"]), Reply::Set(vec![]));
        assert_eq!(s.effects.dirty, d);
        assert!(s.effects.log.is_empty());

        let Reply::Bulk(one) = run(&mut s, &["spop", "s"]) else {
            panic!()
        };
        assert_eq!(
            s.effects.log,
            vec![LogRecord {
                db: 0,
                time: 1000,
                argv: vec![Bytes::from("SREM"), Bytes::from("s"), one.clone()]
            }]
        );
        assert_eq!(
            run(
                &mut s,
                &["sismember", "s", std::str::from_utf8(&one).unwrap()]
            ),
            Reply::Int(0)
        );
        s.effects.log.clear();
        let r = run(&mut s, &["spop", "s", "2"]);
        assert!(is_set(&r));
        let two = members(r);
        assert_eq!(two.len(), 2);
        assert_eq!(s.effects.log.len(), 1);
        let mut logged: Vec<String> = s.effects.log[0].argv[2..]
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        logged.sort();
        assert_eq!(logged, two);
        assert_eq!(run(&mut s, &["scard", "s"]), Reply::Int(2));
        s.effects.log.clear();
        assert_eq!(members(run(&mut s, &["spop", "s", "10"])).len(), 2);
        assert_eq!(
            s.effects.log,
            vec![LogRecord {
                db: 0,
                time: 1000,
                argv: argv(&["DEL", "s"])
            }]
        );
        assert_eq!(run(&mut s, &["exists", "s"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, d + 5);
    }

    #[test]
    fn random_picks_cover_a_large_set_evenly() {
        // 5,000 members; single picks and counted picks reach all of them about
        // equally (the first 1,024 in iteration order are not favoured).
        let mut s = Store::default();
        let names: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
        let mut cmd = vec!["sadd", "s"];
        cmd.extend(names.iter().map(|n| n.as_str()));
        run(&mut s, &cmd);
        let mut hits = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let Reply::Bulk(m) = run(&mut s, &["srandmember", "s"]) else {
                panic!()
            };
            *hits.entry(m).or_insert(0u32) += 1;
        }
        for m in members(run(&mut s, &["srandmember", "s", "2000"])) {
            *hits.entry(Bytes::from(m)).or_insert(0u32) += 1;
        }
        // 22,000 picks over 5,000 members: nearly every member is hit, and the ten
        // groups of 500 (by number) get 10 % each within a loose margin.
        assert!(hits.len() > 4_900, "{} members picked", hits.len());
        let mut groups = [0u32; 10];
        for (m, n) in &hits {
            let i: usize = std::str::from_utf8(&m[1..]).unwrap().parse().unwrap();
            groups[i / 500] += n;
        }
        assert!(
            groups.iter().all(|&g| (1_800..2_600).contains(&g)),
            "{groups:?}"
        );
        // SPOP with a count takes distinct members, then the set is smaller by that.
        let popped = members(run(&mut s, &["spop", "s", "1000"]));
        let distinct: std::collections::HashSet<_> = popped.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert_eq!(run(&mut s, &["scard", "s"]), Reply::Int(4000));
    }

    #[test]
    fn srandmember_counts() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["srandmember", "nokey"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["srandmember", "nokey", "3"]),
            Reply::Array(vec![])
        );
        assert_eq!(
            run(&mut s, &["srandmember", "nokey", "a"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["srandmember", "nokey", "1", "2"]),
            err("ERR syntax error")
        );
        run(&mut s, &["sadd", "s", "a", "b", "c"]);
        let Reply::Bulk(m) = run(&mut s, &["srandmember", "s"]) else {
            panic!()
        };
        assert!([&b"a"[..], b"b", b"c"].contains(&m.as_ref()));
        assert_eq!(
            run(&mut s, &["srandmember", "s", "0"]),
            Reply::Array(vec![])
        );
        let all = run(&mut s, &["srandmember", "s", "10"]);
        assert!(matches!(all, Reply::Array(_)));
        assert_eq!(members(all), ["a", "b", "c"]);
        let two = members(run(&mut s, &["srandmember", "s", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        let many = members(run(&mut s, &["srandmember", "s", "-20"]));
        assert_eq!(many.len(), 20);
        assert!(many.iter().all(|m| ["a", "b", "c"].contains(&m.as_str())));
        assert_eq!(
            run(&mut s, &["srandmember", "s", "-9223372036854775808"]),
            err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
        );
        assert!(run(&mut s, &["srandmember", "s", "-9223372036854775807"]).is_error());
        assert_eq!(s.effects.dirty, 3);
    }

    #[test]
    fn sscan_intset_and_hashtable() {
        let mut s = Store::default();
        assert_eq!(
            run(&mut s, &["sscan", "nokey", "0", "foo"]),
            super::scan_util::empty()
        );
        assert_eq!(
            run(&mut s, &["sscan", "nokey", "x"]),
            err("ERR invalid cursor")
        );
        run(&mut s, &["sadd", "ints", "1", "2", "3"]);
        let Reply::Array(r) = run(&mut s, &["sscan", "ints", "7", "count", "1"]) else {
            panic!()
        };
        assert_eq!(r[0], bulk("0"));
        assert_eq!(members(r[1].clone()), ["1", "2", "3"]);
        assert_eq!(
            run(&mut s, &["sscan", "ints", "0", "count", "0"]),
            err("ERR syntax error")
        );
        for i in 0..200 {
            run(&mut s, &["sadd", "big", &format!("m{i}")]);
        }
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        let mut steps = 0;
        loop {
            let Reply::Array(r) = run(&mut s, &["sscan", "big", &cursor, "match", "m1*"]) else {
                panic!()
            };
            let Reply::Bulk(c) = &r[0] else { panic!() };
            for m in members(r[1].clone()) {
                assert!(m.starts_with("m1"));
                seen.insert(m);
            }
            steps += 1;
            cursor = String::from_utf8(c.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        // m1, m10..m19, m100..m199
        assert_eq!(seen.len(), 111);
        assert!(steps >= 20);
    }

    /// A set Redis keeps as an intset answers SMEMBERS and SSCAN in ascending
    /// order, also after deletions (what redis-server 7.0.15 answers); once it
    /// holds a non-integer the order is storage order.
    #[test]
    fn intsets_answer_in_ascending_order() {
        let mut s = Store::default();
        run(&mut s, &["SADD", "i", "30", "5", "17", "-2", "1000", "8"]);
        run(&mut s, &["SREM", "i", "17"]);
        let want: Vec<Reply> = ["-2", "5", "8", "30", "1000"]
            .iter()
            .map(|m| Reply::Bulk(Bytes::from(*m)))
            .collect();
        assert_eq!(run(&mut s, &["SMEMBERS", "i"]), Reply::Set(want.clone()));
        assert_eq!(
            run(&mut s, &["SSCAN", "i", "0"]),
            Reply::Array(vec![Reply::Bulk(Bytes::from("0")), Reply::Array(want)])
        );
        run(&mut s, &["SADD", "i", "x"]);
        run(&mut s, &["SREM", "i", "x"]);
        // Converted for good (as Redis's hashtable): the members are all there.
        assert_eq!(
            members(run(&mut s, &["SMEMBERS", "i"])),
            ["-2", "1000", "30", "5", "8"]
        );
    }
}
