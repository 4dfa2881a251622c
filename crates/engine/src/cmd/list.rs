//! List commands. The blocking forms (BLPOP, BLMOVE, BLMPOP...) are served by the
//! server, which runs LPOP/RPOP/LMOVE/LMPOP through [`crate::Store::exec`].

use super::{is, norm_range};
use crate::key::Key;
use crate::list::List;
use crate::notify;
use crate::num::int_bytes;
use crate::reply::{self, wrong_arity, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::{Kind, Value};
use bytes::Bytes;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "lpush",
        -3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "list",
        Some(lpush),
    ),
    cmd(
        "rpush",
        -3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "list",
        Some(rpush),
    ),
    cmd(
        "lpushx",
        -3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "list",
        Some(lpushx),
    ),
    cmd(
        "rpushx",
        -3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "list",
        Some(rpushx),
    ),
    cmd("lpop", -2, WRITE | FAST, 1, 1, 1, "list", Some(lpop)),
    cmd("rpop", -2, WRITE | FAST, 1, 1, 1, "list", Some(rpop)),
    cmd("lrange", 4, READONLY, 1, 1, 1, "list", Some(lrange)),
    cmd("ltrim", 4, WRITE, 1, 1, 1, "list", Some(ltrim)),
    cmd("llen", 2, READONLY | FAST, 1, 1, 1, "list", Some(llen)),
    cmd("lindex", 3, READONLY, 1, 1, 1, "list", Some(lindex)),
    cmd("lset", 4, WRITE | DENYOOM, 1, 1, 1, "list", Some(lset)),
    cmd("lrem", 4, WRITE, 1, 1, 1, "list", Some(lrem)),
    cmd(
        "linsert",
        5,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "list",
        Some(linsert),
    ),
    cmd("lpos", -3, READONLY, 1, 1, 1, "list", Some(lpos)),
    cmd("lmove", 5, WRITE | DENYOOM, 1, 2, 1, "list", Some(lmove)),
    cmd(
        "rpoplpush",
        3,
        WRITE | DENYOOM,
        1,
        2,
        1,
        "list",
        Some(rpoplpush),
    ),
    cmd(
        "lmpop",
        -4,
        WRITE | MOVABLEKEYS,
        0,
        0,
        0,
        "list",
        Some(lmpop),
    ),
];

/// The list at `key`, created empty when absent (the caller adds to it).
fn list_create<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<&'a mut List, Reply> {
    cx.list_mut(key, true)?
        .ok_or_else(|| Reply::err("ERR internal error: list not created"))
}

/// A list index argument resolved against `len` (negative counts from the end).
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 {
        len.checked_add(index)?
    } else {
        index
    };
    if (0..len).contains(&i) {
        usize::try_from(i).ok()
    } else {
        None
    }
}

/// Redis's `getPositiveLongFromObjectOrReply` with a message: one error text for a
/// non-integer and for a negative value.
fn non_negative(b: &Bytes, msg: &'static str) -> Result<i64, Reply> {
    crate::num::parse_i64(b)
        .filter(|v| *v >= 0)
        .ok_or_else(|| Reply::err(msg))
}

/// LEFT | RIGHT; true for LEFT.
fn parse_end(b: &Bytes) -> Result<bool, Reply> {
    if is(b, "left") {
        Ok(true)
    } else if is(b, "right") {
        Ok(false)
    } else {
        Err(Reply::err(reply::ERR_SYNTAX))
    }
}

fn push(cx: &mut Cx, argv: &[Bytes], left: bool, only_existing: bool) -> CmdResult {
    let key = &argv[1];
    if only_existing && !cx.check_kind(key, Kind::List)? {
        return Ok(Reply::Int(0));
    }
    let l = list_create(cx, key)?;
    for v in &argv[2..] {
        if left {
            l.push_front(Key::new(v));
        } else {
            l.push_back(Key::new(v));
        }
    }
    let len = l.len();
    cx.modified_n(key, (argv.len() - 2) as u64);
    cx.notify(notify::LIST, if left { "lpush" } else { "rpush" }, key);
    Ok(Reply::Int(len as i64))
}

/// LPUSH key element [element ...]
fn lpush(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    push(cx, argv, true, false)
}

/// RPUSH key element [element ...]
fn rpush(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    push(cx, argv, false, false)
}

/// LPUSHX key element [element ...]
fn lpushx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    push(cx, argv, true, true)
}

/// RPUSHX key element [element ...]
fn rpushx(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    push(cx, argv, false, true)
}

/// Pops up to `count` elements from one end of an existing list, deleting it when it
/// becomes empty; returns them in pop order.
fn pop_n(cx: &mut Cx, key: &Bytes, left: bool, count: usize) -> Result<Vec<Bytes>, Reply> {
    let Some(l) = cx.list_mut(key, false)? else {
        return Ok(Vec::new());
    };
    let n = count.min(l.len());
    let mut out: Vec<Bytes> = Vec::with_capacity(n);
    for _ in 0..n {
        let popped = if left { l.pop_front() } else { l.pop_back() };
        match popped {
            Some(k) => out.push(k.to_bytes()),
            None => break,
        }
    }
    let emptied = l.is_empty();
    if !out.is_empty() {
        cx.notify(notify::LIST, if left { "lpop" } else { "rpop" }, key);
        if emptied {
            cx.remove_if_empty(key);
        }
        cx.modified_n(key, out.len() as u64);
    }
    Ok(out)
}

/// LPOP/RPOP without a count: one element, no vector (the list is looked up once
/// for the type check and the write, and again only when it became empty).
fn pop_one(cx: &mut Cx, key: &Bytes, left: bool) -> CmdResult {
    let Some(l) = cx.list_mut(key, false)? else {
        return Ok(Reply::Nil);
    };
    let popped = if left { l.pop_front() } else { l.pop_back() };
    let emptied = l.is_empty();
    let Some(v) = popped else {
        return Ok(Reply::Nil);
    };
    cx.notify(notify::LIST, if left { "lpop" } else { "rpop" }, key);
    if emptied {
        cx.remove_if_empty(key);
    }
    cx.modified(key);
    Ok(Reply::Bulk(v.to_bytes()))
}

fn pop(cx: &mut Cx, argv: &[Bytes], left: bool) -> CmdResult {
    let key = &argv[1];
    if argv.len() > 3 {
        return Err(wrong_arity(if left { "lpop" } else { "rpop" }));
    }
    let count = match argv.get(2) {
        Some(c) => non_negative(c, reply::ERR_NOT_POSITIVE)?,
        None => return pop_one(cx, key, left),
    };
    if !cx.check_kind(key, Kind::List)? {
        return Ok(Reply::NilArray);
    }
    match count {
        0 => Ok(Reply::Array(Vec::new())),
        n => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(Reply::bulks(pop_n(cx, key, left, n)?))
        }
    }
}

/// LPOP key [count]
fn lpop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    pop(cx, argv, true)
}

/// RPOP key [count]
fn rpop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    pop(cx, argv, false)
}

/// LRANGE key start stop
fn lrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (start, stop) = (super::int(&argv[2])?, super::int(&argv[3])?);
    let Some(l) = cx.get_list(&argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    Ok(match norm_range(start, stop, l.len()) {
        None => Reply::Array(Vec::new()),
        Some((s, e)) => Reply::Array(l.range_replies(s, e)),
    })
}

/// LTRIM key start stop
fn ltrim(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (start, stop) = (super::int(&argv[2])?, super::int(&argv[3])?);
    let Some(l) = cx.list_mut(key, false)? else {
        return Ok(Reply::ok());
    };
    let len = l.len();
    let removed = match norm_range(start, stop, len) {
        None => {
            l.clear();
            len
        }
        Some((s, e)) => {
            l.truncate(e + 1);
            l.drop_front(s);
            len - (e + 1 - s)
        }
    };
    cx.notify(notify::LIST, "ltrim", key);
    cx.remove_if_empty(key);
    // Redis signals the key even when nothing was trimmed (dirty counts elements).
    cx.modified_n(key, removed as u64);
    Ok(Reply::ok())
}

/// LLEN key
fn llen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        cx.get_list(&argv[1])?.map_or(0, |l| l.len()) as i64
    ))
}

/// LINDEX key index
fn lindex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let Some(l) = cx.get_list(&argv[1])? else {
        return Ok(Reply::Nil);
    };
    let index = crate::num::parse_i64(&argv[2]).ok_or_else(|| Reply::err(reply::ERR_NOT_INT))?;
    Ok(Reply::opt_bulk(
        resolve_index(index, l.len())
            .and_then(|i| l.get(i))
            .map(Key::to_bytes),
    ))
}

/// LSET key index element
fn lset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if !cx.check_kind(key, Kind::List)? {
        return Err(Reply::err(reply::ERR_NO_KEY));
    }
    let index = super::int(&argv[2])?;
    let Some(l) = cx.list_mut(key, false)? else {
        return Err(Reply::err(reply::ERR_NO_KEY));
    };
    let slot = resolve_index(index, l.len())
        .and_then(|i| l.get_mut(i))
        .ok_or_else(|| Reply::err(reply::ERR_INDEX))?;
    *slot = Key::new(&argv[3]);
    cx.modified(key);
    cx.notify(notify::LIST, "lset", key);
    Ok(Reply::ok())
}

/// LREM key count element
fn lrem(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, elem) = (&argv[1], &argv[3]);
    let count = super::int(&argv[2])?;
    let Some(l) = cx.list_mut(key, false)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    // From the tail: skip the matches that stay (all but the last `limit`).
    let mut skip = if count < 0 {
        l.iter()
            .filter(|e| *e == elem)
            .count()
            .saturating_sub(limit)
    } else {
        0
    };
    let mut removed = 0usize;
    l.retain(|e| {
        if e != elem || removed >= limit {
            return true;
        }
        if skip > 0 {
            skip -= 1;
            return true;
        }
        removed += 1;
        false
    });
    if removed > 0 {
        cx.notify(notify::LIST, "lrem", key);
        cx.remove_if_empty(key);
        cx.modified_n(key, removed as u64);
    }
    Ok(Reply::Int(removed as i64))
}

/// LINSERT key BEFORE|AFTER pivot element
fn linsert(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let after = if is(&argv[2], "after") {
        true
    } else if is(&argv[2], "before") {
        false
    } else {
        return Err(Reply::err(reply::ERR_SYNTAX));
    };
    let pos = match cx.entry(key).map(|e| e.value()) {
        None => return Ok(Reply::Int(0)),
        Some(Value::List(l)) => l.iter().position(|e| *e == argv[3]),
        Some(_) => return Err(Reply::wrongtype()),
    };
    let Some(pos) = pos else {
        return Ok(Reply::Int(-1));
    };
    let Some(l) = cx.list_mut(key, false)? else {
        return Ok(Reply::Int(0));
    };
    l.insert(if after { pos + 1 } else { pos }, Key::new(&argv[4]));
    let len = l.len();
    cx.modified(key);
    cx.notify(notify::LIST, "linsert", key);
    Ok(Reply::Int(len as i64))
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (key, elem) = (&argv[1], &argv[2]);
    let mut rank: i64 = 1;
    let mut count: Option<u64> = None;
    let mut maxlen: u64 = 0;
    let mut i = 3;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if is(&argv[i], "rank") && more {
            rank = super::int(&argv[i + 1])?;
            if rank == 0 {
                return Err(Reply::err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                     or use negative to start from the end of the list",
                ));
            }
        } else if is(&argv[i], "count") && more {
            count = Some(non_negative(&argv[i + 1], "ERR COUNT can't be negative")? as u64);
        } else if is(&argv[i], "maxlen") && more {
            maxlen = non_negative(&argv[i + 1], "ERR MAXLEN can't be negative")? as u64;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 2;
    }
    let Some(l) = cx.get_list(key)? else {
        return Ok(if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Nil
        });
    };
    // Redis 7.0 negates the rank in place: -LONG_MIN stays negative, so every match
    // then qualifies, as with RANK -1.
    let from_tail = rank < 0;
    let rank = if rank == i64::MIN {
        1
    } else {
        rank.unsigned_abs()
    };
    let len = l.len();
    let mut matches: u64 = 0;
    let mut found: Vec<Reply> = Vec::new();
    let mut it = l.iter();
    for off in 0..len {
        if maxlen != 0 && off as u64 >= maxlen {
            break;
        }
        let idx = if from_tail { len - 1 - off } else { off };
        let e = if from_tail { it.next_back() } else { it.next() };
        if e.is_none_or(|e| e.as_bytes() != elem.as_ref()) {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        found.push(Reply::Int(idx as i64));
        match count {
            None => break,
            Some(c) if c != 0 && found.len() as u64 >= c => break,
            Some(_) => {}
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Nil),
    })
}

/// Moves one element from an end of `src` to an end of `dst`.
fn move_one(cx: &mut Cx, src: &Bytes, dst: &Bytes, from_left: bool, to_left: bool) -> CmdResult {
    if !cx.check_kind(src, Kind::List)? {
        return Ok(Reply::Nil);
    }
    cx.check_kind(dst, Kind::List)?;
    let Some(l) = cx.list_mut(src, false)? else {
        return Ok(Reply::Nil);
    };
    let Some(v) = (if from_left {
        l.pop_front()
    } else {
        l.pop_back()
    }) else {
        return Ok(Reply::Nil);
    };
    let d = list_create(cx, dst)?;
    if to_left {
        d.push_front(v.clone());
    } else {
        d.push_back(v.clone());
    }
    // Redis's order: the push on `dst` ("new" first if created), then the pop.
    cx.notify(notify::LIST, if to_left { "lpush" } else { "rpush" }, dst);
    cx.notify(notify::LIST, if from_left { "lpop" } else { "rpop" }, src);
    cx.remove_if_empty(src);
    cx.modified(src);
    cx.modified_n(dst, 0);
    Ok(Reply::Bulk(v.to_bytes()))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
fn lmove(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let from_left = parse_end(&argv[3])?;
    let to_left = parse_end(&argv[4])?;
    move_one(cx, &argv[1], &argv[2], from_left, to_left)
}

/// RPOPLPUSH source destination
fn rpoplpush(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    move_one(cx, &argv[1], &argv[2], false, true)
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
fn lmpop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let numkeys = crate::num::parse_i64(&argv[1])
        .filter(|n| *n >= 1)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?;
    let where_idx = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(2))
        .filter(|w| *w < argv.len())
        .ok_or_else(|| Reply::err(reply::ERR_SYNTAX))?;
    let left = parse_end(&argv[where_idx])?;
    let mut count: Option<i64> = None;
    let mut i = where_idx + 1;
    while i < argv.len() {
        if count.is_none() && is(&argv[i], "count") && i + 1 < argv.len() {
            let c = crate::num::parse_i64(&argv[i + 1])
                .filter(|c| *c >= 1)
                .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?;
            count = Some(c);
            i += 2;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    for key in &argv[2..where_idx] {
        if !cx.check_kind(key, Kind::List)? {
            continue;
        }
        let popped = pop_n(cx, key, left, count)?;
        if popped.is_empty() {
            continue;
        }
        // Logged as the equivalent [LR]POP key n, as Redis propagates it.
        let name: &'static [u8] = if left { b"LPOP" } else { b"RPOP" };
        cx.propagate(vec![
            Bytes::from_static(name),
            key.clone(),
            int_bytes(popped.len() as i64),
        ]);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::bulks(popped),
        ]));
    }
    Ok(Reply::NilArray)
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::{LogRecord, Store};

    use crate::cmd::testutil::{argv, run};
    fn bulk(s: &str) -> Reply {
        Reply::bulk_str(s)
    }
    fn bulks(v: &[&str]) -> Reply {
        Reply::Array(v.iter().map(|s| bulk(s)).collect())
    }
    fn ints(v: &[i64]) -> Reply {
        Reply::Array(v.iter().map(|i| Reply::Int(*i)).collect())
    }
    fn err(s: &str) -> Reply {
        Reply::error(s)
    }
    fn list(s: &mut Store, key: &str) -> Reply {
        run(s, &["lrange", key, "0", "-1"])
    }
    const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    #[test]
    fn lrange_of_empty_small_and_large_elements() {
        let mut s = Store::default();
        let big = "b".repeat(65);
        let edge = "e".repeat(64);
        let items = ["", "x", big.as_str(), "yz", edge.as_str(), ""];
        let mut argv = vec!["rpush", "l"];
        argv.extend(items);
        run(&mut s, &argv);
        assert_eq!(list(&mut s, "l"), bulks(&items));
        assert_eq!(run(&mut s, &["lrange", "l", "1", "3"]), bulks(&items[1..4]));
        assert_eq!(run(&mut s, &["lrange", "l", "2", "2"]), bulks(&[&big]));
        // The stored elements are unchanged by the replies.
        assert_eq!(run(&mut s, &["lpop", "l", "6"]), bulks(&items));
    }
    const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";

    #[test]
    fn push_and_range() {
        let mut s = Store::default();
        assert_eq!(run(&mut s, &["rpush", "l", "a", "b"]), Reply::Int(2));
        assert_eq!(run(&mut s, &["lpush", "l", "x", "y"]), Reply::Int(4));
        assert_eq!(list(&mut s, "l"), bulks(&["y", "x", "a", "b"]));
        assert_eq!(s.effects.dirty, 4);
        assert_eq!(run(&mut s, &["lpushx", "nokey", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["rpushx", "nokey", "a"]), Reply::Int(0));
        assert_eq!(s.effects.dirty, 4);
        assert_eq!(run(&mut s, &["exists", "nokey"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["rpushx", "l", "z"]), Reply::Int(5));
        assert_eq!(run(&mut s, &["lrange", "l", "1", "2"]), bulks(&["x", "a"]));
        assert_eq!(
            run(&mut s, &["lrange", "l", "-2", "100"]),
            bulks(&["b", "z"])
        );
        assert_eq!(run(&mut s, &["lrange", "l", "3", "1"]), bulks(&[]));
        assert_eq!(run(&mut s, &["lrange", "l", "-100", "0"]), bulks(&["y"]));
        assert_eq!(run(&mut s, &["lrange", "nokey", "0", "-1"]), bulks(&[]));
        assert_eq!(
            run(&mut s, &["lrange", "nokey", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut s, &["llen", "l"]), Reply::Int(5));
        assert_eq!(run(&mut s, &["llen", "nokey"]), Reply::Int(0));
    }

    #[test]
    fn wrong_type_leaves_everything_alone() {
        let mut s = Store::default();
        run(&mut s, &["set", "str", "x"]);
        run(&mut s, &["rpush", "l", "a"]);
        let d = s.effects.dirty;
        for cmd in [
            &["lpush", "str", "a"][..],
            &["rpushx", "str", "a"],
            &["lpop", "str"],
            &["lpop", "str", "0"],
            &["lrange", "str", "0", "1"],
            &["ltrim", "str", "0", "1"],
            &["llen", "str"],
            &["lindex", "str", "x"],
            &["lset", "str", "x", "x"],
            &["linsert", "str", "before", "a", "b"],
            &["lpos", "str", "a"],
            &["lmove", "str", "l", "left", "left"],
            &["lmove", "l", "str", "left", "left"],
            &["rpoplpush", "l", "str"],
            &["lmpop", "2", "nokey", "str", "left"],
        ] {
            assert_eq!(run(&mut s, cmd), err(WRONGTYPE), "{cmd:?}");
        }
        assert_eq!(s.effects.dirty, d);
        assert_eq!(list(&mut s, "l"), bulks(&["a"]));
        // The source missing wins over a wrong-type destination.
        assert_eq!(run(&mut s, &["rpoplpush", "nokey", "str"]), Reply::Nil);
    }

    #[test]
    fn pops_with_and_without_count() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a", "b", "c", "d", "e"]);
        assert_eq!(run(&mut s, &["lpop", "l"]), bulk("a"));
        assert_eq!(run(&mut s, &["rpop", "l"]), bulk("e"));
        assert_eq!(run(&mut s, &["lpop", "l", "2"]), bulks(&["b", "c"]));
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["lpop", "l", "0"]), bulks(&[]));
        assert_eq!(run(&mut s, &["lpop", "nokey"]), Reply::Nil);
        assert_eq!(run(&mut s, &["lpop", "nokey", "1"]), Reply::NilArray);
        assert_eq!(run(&mut s, &["lpop", "nokey", "0"]), Reply::NilArray);
        assert_eq!(
            run(&mut s, &["lpop", "l", "-1"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            run(&mut s, &["lpop", "nokey", "a"]),
            err("ERR value is out of range, must be positive")
        );
        assert_eq!(
            run(&mut s, &["lpop", "l", "1", "2"]),
            err("ERR wrong number of arguments for 'lpop' command")
        );
        assert_eq!(s.effects.dirty, d);
        assert_eq!(
            run(&mut s, &["rpop", "l", "9223372036854775807"]),
            bulks(&["d"])
        );
        assert_eq!(run(&mut s, &["exists", "l"]), Reply::Int(0));
        run(&mut s, &["rpush", "l", "a", "b", "c"]);
        assert_eq!(run(&mut s, &["rpop", "l", "2"]), bulks(&["c", "b"]));
    }

    #[test]
    fn ltrim_lindex_lset() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a", "b", "c", "d"]);
        assert_eq!(
            run(&mut s, &["ltrim", "l", "x", "1"]),
            err("ERR value is not an integer or out of range")
        );
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["ltrim", "l", "0", "-1"]), Reply::ok());
        assert_eq!(run(&mut s, &["ltrim", "nokey", "0", "1"]), Reply::ok());
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["ltrim", "l", "1", "-2"]), Reply::ok());
        assert_eq!(s.effects.dirty, d + 2);
        assert_eq!(list(&mut s, "l"), bulks(&["b", "c"]));
        assert_eq!(run(&mut s, &["lindex", "l", "-1"]), bulk("c"));
        assert_eq!(run(&mut s, &["lindex", "l", "2"]), Reply::Nil);
        assert_eq!(run(&mut s, &["lindex", "l", "-3"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["lindex", "l", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut s, &["lindex", "nokey", "x"]), Reply::Nil);
        assert_eq!(run(&mut s, &["lset", "l", "-1", "z"]), Reply::ok());
        assert_eq!(list(&mut s, "l"), bulks(&["b", "z"]));
        let d = s.effects.dirty;
        assert_eq!(
            run(&mut s, &["lset", "l", "2", "z"]),
            err("ERR index out of range")
        );
        assert_eq!(
            run(&mut s, &["lset", "l", "-9223372036854775808", "z"]),
            err("ERR index out of range")
        );
        assert_eq!(
            run(&mut s, &["lset", "l", "x", "z"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["lset", "nokey", "x", "z"]),
            err("ERR no such key")
        );
        assert_eq!(s.effects.dirty, d);
        assert_eq!(run(&mut s, &["ltrim", "l", "5", "1"]), Reply::ok());
        assert_eq!(run(&mut s, &["exists", "l"]), Reply::Int(0));
    }

    #[test]
    fn lrem_and_linsert() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a", "b", "a", "c", "a", "b", "a"]);
        assert_eq!(run(&mut s, &["lrem", "l", "-2", "a"]), Reply::Int(2));
        assert_eq!(list(&mut s, "l"), bulks(&["a", "b", "a", "c", "b"]));
        assert_eq!(run(&mut s, &["lrem", "l", "1", "a"]), Reply::Int(1));
        assert_eq!(list(&mut s, "l"), bulks(&["b", "a", "c", "b"]));
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["lrem", "l", "0", "zz"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["lrem", "nokey", "0", "a"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &["lrem", "nokey", "x", "a"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["linsert", "l", "before", "zz", "x"]),
            Reply::Int(-1)
        );
        assert_eq!(
            run(&mut s, &["linsert", "nokey", "before", "a", "x"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, &["linsert", "l", "middle", "a", "x"]),
            err("ERR syntax error")
        );
        assert_eq!(s.effects.dirty, d);
        assert_eq!(
            run(&mut s, &["linsert", "l", "BEFORE", "b", "x"]),
            Reply::Int(5)
        );
        assert_eq!(
            run(&mut s, &["linsert", "l", "after", "c", "y"]),
            Reply::Int(6)
        );
        assert_eq!(list(&mut s, "l"), bulks(&["x", "b", "a", "c", "y", "b"]));
        assert_eq!(run(&mut s, &["lrem", "l", "0", "b"]), Reply::Int(2));
        assert_eq!(
            run(&mut s, &["lrem", "l", "-9223372036854775808", "x"]),
            Reply::Int(1)
        );
        assert_eq!(list(&mut s, "l"), bulks(&["a", "c", "y"]));
    }

    #[test]
    fn lpos_options() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a", "b", "c", "a", "b", "c", "a"]);
        assert_eq!(run(&mut s, &["lpos", "l", "a"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "-1"]),
            Reply::Int(6)
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "2", "count", "0"]),
            ints(&[3, 6])
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "-2", "count", "2"]),
            ints(&[3, 0])
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "count", "2", "maxlen", "4"]),
            ints(&[0, 3])
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "-1", "maxlen", "1"]),
            Reply::Int(6)
        );
        assert_eq!(run(&mut s, &["lpos", "l", "b", "maxlen", "1"]), Reply::Nil);
        assert_eq!(run(&mut s, &["lpos", "l", "a", "rank", "4"]), Reply::Nil);
        assert_eq!(run(&mut s, &["lpos", "l", "zz", "count", "0"]), ints(&[]));
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "-9223372036854775808"]),
            Reply::Int(6)
        );
        assert_eq!(run(&mut s, &["lpos", "nokey", "a"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["lpos", "nokey", "a", "count", "1"]),
            ints(&[])
        );
        assert_eq!(
            run(&mut s, &["lpos", "nokey", "a", "rank", "0"]),
            err(RANK_ZERO)
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "count", "-1"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "count", "x"]),
            err("ERR COUNT can't be negative")
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "maxlen", "-1"]),
            err("ERR MAXLEN can't be negative")
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "rank"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["lpos", "l", "a", "foo", "1"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn lmove_and_rpoplpush() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "src", "a", "b", "c"]);
        assert_eq!(
            run(&mut s, &["lmove", "src", "dst", "up", "left"]),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["lmove", "nokey", "dst", "left", "up"]),
            err("ERR syntax error")
        );
        let d = s.effects.dirty;
        assert_eq!(
            run(&mut s, &["lmove", "nokey", "dst", "left", "right"]),
            Reply::Nil
        );
        assert_eq!(s.effects.dirty, d);
        assert_eq!(
            run(&mut s, &["lmove", "src", "dst", "left", "right"]),
            bulk("a")
        );
        assert_eq!(
            run(&mut s, &["lmove", "src", "dst", "RIGHT", "LEFT"]),
            bulk("c")
        );
        assert_eq!(list(&mut s, "dst"), bulks(&["c", "a"]));
        assert_eq!(run(&mut s, &["rpoplpush", "dst", "dst"]), bulk("a"));
        assert_eq!(list(&mut s, "dst"), bulks(&["a", "c"]));
        assert_eq!(run(&mut s, &["rpoplpush", "src", "src"]), bulk("b"));
        assert_eq!(list(&mut s, "src"), bulks(&["b"]));
        assert_eq!(run(&mut s, &["rpoplpush", "src", "dst"]), bulk("b"));
        assert_eq!(run(&mut s, &["exists", "src"]), Reply::Int(0));
        assert_eq!(list(&mut s, "dst"), bulks(&["b", "a", "c"]));
    }

    #[test]
    fn lmpop_parsing_and_replies() {
        let mut s = Store::default();
        run(&mut s, &["rpush", "l", "a", "b", "c"]);
        let d = s.effects.dirty;
        for (cmd, e) in [
            (
                &["lmpop", "0", "l", "left"][..],
                "ERR numkeys should be greater than 0",
            ),
            (
                &["lmpop", "a", "l", "left"],
                "ERR numkeys should be greater than 0",
            ),
            (&["lmpop", "2", "l", "left"], "ERR syntax error"),
            (
                &["lmpop", "9223372036854775807", "l", "left"],
                "ERR syntax error",
            ),
            (&["lmpop", "1", "l", "middle"], "ERR syntax error"),
            (
                &["lmpop", "1", "l", "left", "count", "0"],
                "ERR count should be greater than 0",
            ),
            (
                &["lmpop", "1", "l", "left", "count", "x"],
                "ERR count should be greater than 0",
            ),
            (
                &["lmpop", "1", "l", "left", "count", "1", "count", "1"],
                "ERR syntax error",
            ),
            (&["lmpop", "1", "l", "left", "count"], "ERR syntax error"),
        ] {
            assert_eq!(run(&mut s, cmd), err(e), "{cmd:?}");
        }
        assert_eq!(
            run(&mut s, &["lmpop", "1", "nokey", "left"]),
            Reply::NilArray
        );
        assert_eq!(s.effects.dirty, d);
        s.effects.log.clear();
        assert_eq!(
            run(&mut s, &["lmpop", "2", "nokey", "l", "right", "count", "2"]),
            Reply::Array(vec![bulk("l"), bulks(&["c", "b"])])
        );
        assert_eq!(
            s.effects.log,
            vec![LogRecord {
                db: 0,
                time: 1000,
                argv: argv(&["RPOP", "l", "2"])
            }]
        );
        assert_eq!(
            run(&mut s, &["lmpop", "1", "l", "left", "count", "10"]),
            Reply::Array(vec![bulk("l"), bulks(&["a"])])
        );
        assert_eq!(run(&mut s, &["exists", "l"]), Reply::Int(0));
    }
}
