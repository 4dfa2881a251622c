//! Sorted set commands (Redis 7.0 semantics).

use super::{float, int, is, norm_range};
use crate::db::own;
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::{Kind, LexBound, LexRange, Member, ScoreRange, Value, ZSet};
use bytes::Bytes;
use rand::Rng;
use std::collections::HashMap;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "zadd",
        -4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zadd),
    ),
    cmd(
        "zincrby",
        4,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zincrby),
    ),
    cmd("zrem", -3, WRITE | FAST, 1, 1, 1, "sorted_set", Some(zrem)),
    cmd(
        "zscore",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zscore),
    ),
    cmd(
        "zmscore",
        -3,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zmscore),
    ),
    cmd(
        "zcard",
        2,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zcard),
    ),
    cmd(
        "zcount",
        4,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zcount),
    ),
    cmd(
        "zlexcount",
        4,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zlexcount),
    ),
    cmd("zrange", -4, READONLY, 1, 1, 1, "sorted_set", Some(zrange)),
    cmd(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        1,
        2,
        1,
        "sorted_set",
        Some(zrangestore),
    ),
    cmd(
        "zrangebyscore",
        -4,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrangebyscore),
    ),
    cmd(
        "zrevrangebyscore",
        -4,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrevrangebyscore),
    ),
    cmd(
        "zrangebylex",
        -4,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrangebylex),
    ),
    cmd(
        "zrevrangebylex",
        -4,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrevrangebylex),
    ),
    cmd(
        "zrevrange",
        -4,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrevrange),
    ),
    cmd(
        "zrank",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zrank),
    ),
    cmd(
        "zrevrank",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zrevrank),
    ),
    cmd(
        "zremrangebyscore",
        4,
        WRITE,
        1,
        1,
        1,
        "sorted_set",
        Some(zremrangebyscore),
    ),
    cmd(
        "zremrangebyrank",
        4,
        WRITE,
        1,
        1,
        1,
        "sorted_set",
        Some(zremrangebyrank),
    ),
    cmd(
        "zremrangebylex",
        4,
        WRITE,
        1,
        1,
        1,
        "sorted_set",
        Some(zremrangebylex),
    ),
    cmd(
        "zpopmin",
        -2,
        WRITE | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zpopmin),
    ),
    cmd(
        "zpopmax",
        -2,
        WRITE | FAST,
        1,
        1,
        1,
        "sorted_set",
        Some(zpopmax),
    ),
    cmd(
        "zmpop",
        -4,
        WRITE | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
        Some(zmpop),
    ),
    cmd(
        "zunion",
        -3,
        READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
        Some(zunion),
    ),
    cmd(
        "zinter",
        -3,
        READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
        Some(zinter),
    ),
    cmd(
        "zdiff",
        -3,
        READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
        Some(zdiff),
    ),
    cmd(
        "zunionstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted_set",
        Some(zunionstore),
    ),
    cmd(
        "zinterstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted_set",
        Some(zinterstore),
    ),
    cmd(
        "zdiffstore",
        -4,
        WRITE | DENYOOM | MOVABLEKEYS,
        1,
        1,
        1,
        "sorted_set",
        Some(zdiffstore),
    ),
    cmd(
        "zintercard",
        -3,
        READONLY | MOVABLEKEYS,
        0,
        0,
        0,
        "sorted_set",
        Some(zintercard),
    ),
    cmd(
        "zrandmember",
        -2,
        READONLY,
        1,
        1,
        1,
        "sorted_set",
        Some(zrandmember),
    ),
    cmd("zscan", -3, READONLY, 1, 1, 1, "sorted_set", Some(zscan)),
];

const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";
const ERR_SCORE_RANGE: &str = "ERR min or max is not a float";
const ERR_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// Largest reply ZRANDMEMBER builds for a negative count (Redis streams any size; we
/// refuse absurd counts instead of allocating gigabytes).
const MAX_RANDOM_REPLY: u64 = 1 << 21;

// ----- shared helpers -----

/// C's `strtod` over the whole input (Redis's range and SORT parsing): leading
/// whitespace is skipped, an empty input is 0, hexadecimal is accepted, trailing
/// bytes are an error. NaN is returned as NaN (callers reject it).
pub(crate) fn strtod(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let t = &b[start..];
    let (neg, body) = match t[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        let v = parse_hex_float(&body[2..])?;
        return Some(if neg { -v } else { v });
    }
    let lower = body.to_ascii_lowercase();
    if lower.starts_with(b"nan") {
        // strtod accepts "nan" and "nan(chars)".
        let rest = &lower[3..];
        let ok = rest.is_empty() || (rest.first() == Some(&b'(') && rest.last() == Some(&b')'));
        return if ok { Some(f64::NAN) } else { None };
    }
    if body.first().is_some_and(|c| *c == b'+' || *c == b'-') {
        return None;
    }
    let s = std::str::from_utf8(&lower).ok()?;
    if s.len() > 5000 {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn parse_hex_float(b: &[u8]) -> Option<f64> {
    let mut v = 0f64;
    let mut i = 0;
    let mut digits = 0;
    let mut scale = 0i32;
    let mut frac = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' && !frac {
            frac = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            v = v * 16.0 + d as f64;
            digits += 1;
            if frac {
                scale -= 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() {
        if b[i] | 0x20 != b'p' {
            return None;
        }
        let e = crate::num::parse_i64(&b[i + 1..]).or_else(|| {
            b.get(i + 1)
                .filter(|c| **c == b'+')
                .and_then(|_| crate::num::parse_i64(&b[i + 2..]))
        })?;
        scale = scale.saturating_add(e.clamp(-10000, 10000) as i32);
    }
    Some(v * 2f64.powi(scale))
}

/// Redis's `zslParseRange`.
pub(crate) fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    fn item(b: &[u8]) -> Option<(f64, bool)> {
        let (ex, body) = if b.first() == Some(&b'(') {
            (true, &b[1..])
        } else {
            (false, b)
        };
        let v = strtod(body).filter(|v| !v.is_nan())?;
        Some((v, ex))
    }
    let (min, minex) = item(min).ok_or_else(|| Reply::err(ERR_SCORE_RANGE))?;
    let (max, maxex) = item(max).ok_or_else(|| Reply::err(ERR_SCORE_RANGE))?;
    Ok(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// Redis's `zslParseLexRange`.
pub(crate) fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
    fn item(b: &[u8]) -> Option<(LexBound, bool)> {
        match b.first()? {
            b'+' if b.len() == 1 => Some((LexBound::Max, true)),
            b'-' if b.len() == 1 => Some((LexBound::Min, true)),
            b'(' => Some((LexBound::Val(Bytes::copy_from_slice(&b[1..])), true)),
            b'[' => Some((LexBound::Val(Bytes::copy_from_slice(&b[1..])), false)),
            _ => None,
        }
    }
    let (min, minex) = item(min).ok_or_else(|| Reply::err(ERR_LEX_RANGE))?;
    let (max, maxex) = item(max).ok_or_else(|| Reply::err(ERR_LEX_RANGE))?;
    Ok(LexRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// Members with optional scores: RESP2 flat, RESP3 `[member, score]` pairs.
fn scored_reply(items: Vec<(Bytes, f64)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if resp3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        )
    } else {
        let mut out = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
        Reply::Array(out)
    }
}

/// Whether Redis would hold a set of this shape as a listpack.
fn listpack_sized(cx: &Cx, len: usize, max_member: usize) -> bool {
    len <= cx.config().zset_max_listpack_entries
        && max_member <= cx.config().zset_max_listpack_value
}

/// Listpacks store integral scores as integers, so a stored `-0` reads back as `0`.
fn listpack_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

/// Stores a computed sorted set at `dst` (deleting `dst` when empty) and raises
/// `event` on it; returns its size.
pub(crate) fn store_result(cx: &mut Cx, dst: &Bytes, mut z: ZSet, event: &'static str) -> i64 {
    let n = z.len() as i64;
    if n > 0 {
        let max_member = z.dict.keys().map(|m| m.len()).max().unwrap_or(0);
        if listpack_sized(cx, z.len(), max_member) && z.dict.values().any(|s| *s == 0.0) {
            z = ZSet::from_pairs(
                z.iter()
                    .map(|(m, s)| (m.to_bytes(), listpack_score(s)))
                    .collect::<Vec<_>>(),
            );
        }
        cx.store.expire_if_needed(cx.db, dst, cx.now);
        cx.set_value(dst, Value::ZSet(Box::new(z)), None);
        cx.notify(notify::ZSET, event, dst);
    } else {
        cx.delete(dst);
    }
    n
}

// ----- ZADD / ZINCRBY / ZREM -----

fn zadd(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zadd_generic(cx, argv, false)
}

fn zincrby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zadd_generic(cx, argv, true)
}

pub(crate) fn zadd_generic(cx: &mut Cx, argv: &[Bytes], zincrby: bool) -> CmdResult {
    let key = &argv[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, zincrby);
    let mut idx = 2;
    if !zincrby {
        while idx < argv.len() {
            let a = &argv[idx];
            if is(a, "nx") {
                nx = true;
            } else if is(a, "xx") {
                xx = true;
            } else if is(a, "gt") {
                gt = true;
            } else if is(a, "lt") {
                lt = true;
            } else if is(a, "ch") {
                ch = true;
            } else if is(a, "incr") {
                incr = true;
            } else {
                break;
            }
            idx += 1;
        }
    }
    let elements = argv.len() - idx;
    if elements % 2 == 1 || elements == 0 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let elements = elements / 2;
    if nx && xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && elements > 1 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(elements);
    for j in 0..elements {
        scores.push(float(&argv[idx + 2 * j])?);
    }
    let exists = cx.check_kind(key, Kind::ZSet)?;
    if !exists && xx {
        return Ok(if incr { Reply::Nil } else { Reply::Int(0) });
    }
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    let (lp_entries, lp_value) = (
        cx.config().zset_max_listpack_entries,
        cx.config().zset_max_listpack_value,
    );
    let mut nan = false;
    let mut emptied = false;
    // Redis's encoding decides how a zero is stored: a listpack keeps integral scores
    // as integers (`-0` reads back as `0`), a skiplist keeps the double. A new set is
    // created as a skiplist when its first member is too long (Redis 7.0 looks only at
    // that one); an existing set's form is inferred from its shape; a set converts
    // before an insert that would make it too long or add a too long member, and
    // never converts back within the command.
    // (Read off the set being written, not through a lookup: a ZADD is not a
    // keyspace hit.)
    if let Some((z, big)) = cx.zset_mut_enc(key, true)? {
        // A set that was converted stays a skiplist (Redis never converts back).
        let mut skiplist = if exists {
            *big || z.len() > lp_entries || z.dict.keys().any(|m| m.len() > lp_value)
        } else {
            lp_entries == 0 || argv[idx + 1].len() > lp_value
        };
        for (j, &incr_by) in scores.iter().enumerate() {
            let member = &argv[idx + 2 * j + 1];
            let mut score = incr_by;
            match z.score(member) {
                Some(cur) => {
                    if nx {
                        continue;
                    }
                    if incr {
                        score += cur;
                        if score.is_nan() {
                            nan = true;
                            break;
                        }
                    }
                    if (gt && score <= cur) || (lt && score >= cur) {
                        continue;
                    }
                    if score != cur {
                        z.insert(
                            own(member),
                            if skiplist {
                                score
                            } else {
                                listpack_score(score)
                            },
                        );
                        updated += 1;
                    }
                }
                None => {
                    if xx {
                        continue;
                    }
                    if z.len() + 1 > lp_entries || member.len() > lp_value {
                        skiplist = true;
                    }
                    z.insert(
                        own(member),
                        if skiplist {
                            score
                        } else {
                            listpack_score(score)
                        },
                    );
                    added += 1;
                }
            }
            processed += 1;
            last = score;
        }
        *big = skiplist;
        emptied = z.is_empty();
    }
    // (Only a set this command created can be left empty: look it up again only then.)
    if emptied {
        cx.remove_if_empty(key);
    }
    if added + updated > 0 {
        cx.modified_n(key, added + updated);
        cx.notify(notify::ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    if nan {
        return Err(Reply::err(ERR_NAN));
    }
    Ok(if incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int((if ch { added + updated } else { added }) as i64)
    })
}

fn zrem(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let Some(z) = cx.zset_mut(key, false)? else {
        return Ok(Reply::Int(0));
    };
    let n = argv[2..].iter().filter(|m| z.remove(m)).count();
    if n > 0 {
        cx.notify(notify::ZSET, "zrem", key);
    }
    cx.remove_if_empty(key);
    if n > 0 {
        cx.modified_n(key, n as u64);
    }
    Ok(Reply::Int(n as i64))
}

// ----- point reads -----

fn zscore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(
        match cx.get_zset(&argv[1])?.and_then(|z| z.score(&argv[2])) {
            Some(s) => Reply::Double(s),
            None => Reply::Nil,
        },
    )
}

fn zmscore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let z = cx.get_zset(&argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| z.score(m)) {
                Some(s) => Reply::Double(s),
                None => Reply::Nil,
            })
            .collect(),
    ))
}

fn zcard(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        cx.get_zset(&argv[1])?.map_or(0, |z| z.len()) as i64
    ))
}

fn zcount(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let r = parse_score_range(&argv[2], &argv[3])?;
    Ok(Reply::Int(
        cx.get_zset(&argv[1])?.map_or(0, |z| z.count_by_score(&r)) as i64,
    ))
}

fn zlexcount(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let r = parse_lex_range(&argv[2], &argv[3])?;
    Ok(Reply::Int(
        cx.get_zset(&argv[1])?.map_or(0, |z| z.count_by_lex(&r)) as i64,
    ))
}

fn zrank(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(
        match cx.get_zset(&argv[1])?.and_then(|z| z.rank(&argv[2])) {
            Some(r) => Reply::Int(r as i64),
            None => Reply::Nil,
        },
    )
}

fn zrevrank(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    Ok(
        match cx.get_zset(&argv[1])?.and_then(|z| z.rev_rank(&argv[2])) {
            Some(r) => Reply::Int(r as i64),
            None => Reply::Nil,
        },
    )
}

// ----- ranges -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Auto,
    Fwd,
    Rev,
}

/// Redis's `zrangeGenericCommand`: parses options from `argv[start]` (the key) on and
/// returns the selected elements and whether scores were requested.
fn zrange_select(
    cx: &mut Cx,
    argv: &[Bytes],
    start: usize,
    store: bool,
    mut rt: RangeType,
    mut dir: Dir,
) -> Result<(Vec<(Bytes, f64)>, bool), Reply> {
    let key = &argv[start];
    let (mut minarg, mut maxarg) = (&argv[start + 1], &argv[start + 2]);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = start + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = &argv[j];
        if !store && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = int(&argv[j + 1])?;
            limit = int(&argv[j + 2])?;
            j += 2;
        } else if dir == Dir::Auto && is(a, "rev") {
            dir = Dir::Rev;
        } else if rt == RangeType::Auto && is(a, "bylex") {
            rt = RangeType::Lex;
        } else if rt == RangeType::Auto && is(a, "byscore") {
            rt = RangeType::Score;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }
    if dir == Dir::Auto {
        dir = Dir::Fwd;
    }
    if rt == RangeType::Auto {
        rt = RangeType::Rank;
    }
    if limit != -1 && rt == RangeType::Rank {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rt == RangeType::Lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let rev = dir == Dir::Rev;
    if rev && rt != RangeType::Rank {
        std::mem::swap(&mut minarg, &mut maxarg);
    }
    enum Sel {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let sel = match rt {
        RangeType::Score => Sel::Score(parse_score_range(minarg, maxarg)?),
        RangeType::Lex => Sel::Lex(parse_lex_range(minarg, maxarg)?),
        _ => Sel::Rank(int(minarg)?, int(maxarg)?),
    };
    let Some(z) = cx.get_zset(key)? else {
        return Ok((Vec::new(), withscores));
    };
    // LIMIT over ascending ranks lo..hi: the offset is skipped by rank, O(log n).
    let limited = |(lo, hi): (usize, usize)| -> Vec<(Bytes, f64)> {
        if offset < 0 || (offset > 0 && offset as u64 >= z.len() as u64) {
            return Vec::new();
        }
        let take = if limit < 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let skip = offset as usize;
        let pick = |(m, s): (&Member, f64)| (m.to_bytes(), s);
        if rev {
            let hi = hi.saturating_sub(skip).max(lo);
            let lo = hi.saturating_sub(take).max(lo);
            z.range_iter(lo, hi).rev().map(pick).collect()
        } else {
            let lo = lo.saturating_add(skip).min(hi);
            let hi = lo.saturating_add(take).min(hi);
            z.range_iter(lo, hi).map(pick).collect()
        }
    };
    let items = match sel {
        Sel::Rank(s, e) => match norm_range(s, e, z.len()) {
            Some((s, e)) => z.range_by_rank(s, e, rev),
            None => Vec::new(),
        },
        Sel::Score(r) => limited(z.score_ranks(&r)),
        Sel::Lex(r) => limited(z.lex_ranks(&r, rev)),
    };
    Ok((items, withscores))
}

fn range_reply(cx: &mut Cx, argv: &[Bytes], rt: RangeType, dir: Dir) -> CmdResult {
    let (items, withscores) = zrange_select(cx, argv, 1, false, rt, dir)?;
    Ok(scored_reply(items, withscores, cx.resp3))
}

fn zrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Auto, Dir::Auto)
}

fn zrangebyscore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Score, Dir::Fwd)
}

fn zrevrangebyscore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Score, Dir::Rev)
}

fn zrangebylex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Lex, Dir::Fwd)
}

fn zrevrangebylex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Lex, Dir::Rev)
}

fn zrevrange(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    range_reply(cx, argv, RangeType::Rank, Dir::Rev)
}

fn zrangestore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let (items, _) = zrange_select(cx, argv, 2, true, RangeType::Auto, Dir::Auto)?;
    let n = store_result(cx, &argv[1], ZSet::from_pairs(items), "zrangestore");
    Ok(Reply::Int(n))
}

// ----- removal by range -----

fn zremrange(cx: &mut Cx, argv: &[Bytes], rt: RangeType) -> CmdResult {
    let key = &argv[1];
    enum Sel {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let sel = match rt {
        RangeType::Score => Sel::Score(parse_score_range(&argv[2], &argv[3])?),
        RangeType::Lex => Sel::Lex(parse_lex_range(&argv[2], &argv[3])?),
        _ => Sel::Rank(int(&argv[2])?, int(&argv[3])?),
    };
    // Select first (read-only), then remove: no copy-on-write when nothing matches.
    let (lo, hi) = {
        let Some(z) = cx.get_zset(key)? else {
            return Ok(Reply::Int(0));
        };
        match sel {
            Sel::Rank(s, e) => match norm_range(s, e, z.len()) {
                Some((s, e)) => (s, e.saturating_add(1).min(z.len())),
                None => (0, 0),
            },
            Sel::Score(r) => z.score_ranks(&r),
            Sel::Lex(r) => z.lex_ranks(&r, false),
        }
    };
    if lo >= hi {
        return Ok(Reply::Int(0));
    }
    let removed = match cx.zset_mut(key, false)? {
        Some(z) => z.remove_ranks(lo, hi),
        None => 0,
    };
    let event = match rt {
        RangeType::Score => "zremrangebyscore",
        RangeType::Lex => "zremrangebylex",
        _ => "zremrangebyrank",
    };
    cx.notify(notify::ZSET, event, key);
    cx.remove_if_empty(key);
    cx.modified_n(key, removed as u64);
    Ok(Reply::Int(removed as i64))
}

fn zremrangebyscore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zremrange(cx, argv, RangeType::Score)
}

fn zremrangebyrank(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zremrange(cx, argv, RangeType::Rank)
}

fn zremrangebylex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zremrange(cx, argv, RangeType::Lex)
}

// ----- pops -----

/// Pops up to `count` elements from an existing sorted set at `key`.
fn pop_n(cx: &mut Cx, key: &Bytes, count: u64, max: bool) -> Result<Vec<(Bytes, f64)>, Reply> {
    let mut out = Vec::new();
    if let Some(z) = cx.zset_mut(key, false)? {
        while (out.len() as u64) < count {
            match z.pop(max) {
                Some(p) => out.push(p),
                None => break,
            }
        }
    }
    if !out.is_empty() {
        cx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        cx.remove_if_empty(key);
        cx.modified_n(key, out.len() as u64);
    }
    Ok(out)
}

fn zpop_generic(cx: &mut Cx, argv: &[Bytes], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let key = &argv[1];
    let count = match argv.get(2) {
        Some(c) => Some(
            crate::num::parse_i64(c)
                .filter(|v| *v >= 0)
                .ok_or_else(|| Reply::err(reply::ERR_NOT_POSITIVE))? as u64,
        ),
        None => None,
    };
    if !cx.check_kind(key, Kind::ZSet)? || count == Some(0) {
        return Ok(Reply::Array(Vec::new()));
    }
    let items = pop_n(cx, key, count.unwrap_or(1), max)?;
    // RESP3 nests pairs only when a count was given.
    Ok(scored_reply(items, true, cx.resp3 && count.is_some()))
}

fn zpopmin(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zpop_generic(cx, argv, false)
}

fn zpopmax(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zpop_generic(cx, argv, true)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
fn zmpop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let numkeys = crate::num::parse_i64(&argv[1])
        .filter(|n| *n >= 1)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?
        as u64;
    let where_idx = numkeys
        .checked_add(2)
        .filter(|w| *w < argv.len() as u64)
        .ok_or_else(|| Reply::err(reply::ERR_SYNTAX))? as usize;
    let max = if is(&argv[where_idx], "min") {
        false
    } else if is(&argv[where_idx], "max") {
        true
    } else {
        return Err(Reply::err(reply::ERR_SYNTAX));
    };
    let mut count: Option<u64> = None;
    let mut j = where_idx + 1;
    while j < argv.len() {
        if is(&argv[j], "count") && j + 1 < argv.len() && count.is_none() {
            let c = crate::num::parse_i64(&argv[j + 1])
                .filter(|n| *n >= 1)
                .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?;
            count = Some(c as u64);
            j += 2;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let count = count.unwrap_or(1);
    for key in &argv[2..where_idx] {
        if !cx.check_kind(key, Kind::ZSet)? {
            continue;
        }
        let items = pop_n(cx, key, count, max)?;
        if items.is_empty() {
            continue;
        }
        // Redis propagates ZMPOP as ZPOPMIN/ZPOPMAX with the number popped.
        let name: &'static [u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        cx.propagate(vec![
            Bytes::from_static(name),
            key.clone(),
            crate::num::int_bytes(items.len() as i64),
        ]);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            scored_reply(items, true, true),
        ]));
    }
    Ok(Reply::NilArray)
}

// ----- set operations -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Agg::Min => {
            if val < *target {
                *target = val;
            }
        }
        Agg::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// An input of ZUNION & co: a sorted set, a plain set (scores 1) or nothing.
enum Src<'a> {
    None,
    Set(&'a crate::value::Set),
    Z(&'a ZSet),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::None => 0,
            Src::Set(s) => s.len(),
            Src::Z(z) => z.len(),
        }
    }
    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::None => None,
            Src::Set(s) => s.contains(m).then_some(1.0),
            Src::Z(z) => z.score(m),
        }
    }
    fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            Src::None => Box::new(std::iter::empty()),
            Src::Set(s) => Box::new(s.iter().map(|m| (&m[..], 1.0))),
            Src::Z(z) => Box::new(z.iter().map(|(m, s)| (&m[..], s))),
        }
    }
}

/// What a set operation produces.
enum OpOut {
    Pairs(HashMap<Bytes, f64>),
    Card(i64),
}

/// Redis's `zunionInterDiffGenericCommand`.
fn zsetop(
    cx: &mut Cx,
    argv: &[Bytes],
    numkeys_idx: usize,
    dst: Option<&Bytes>,
    op: SetOp,
    card_only: bool,
) -> CmdResult {
    let name = argv[0].to_ascii_lowercase();
    let setnum = int(&argv[numkeys_idx])?;
    if setnum < 1 {
        return Err(Reply::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(&name)
        )));
    }
    if setnum as u64 > (argv.len() - (numkeys_idx + 1)) as u64 {
        return Err(Reply::err(reply::ERR_SYNTAX));
    }
    let setnum = setnum as usize;
    let keys = &argv[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    // Expire and type-check every input first (WRONGTYPE before option errors).
    for k in keys {
        match cx.lookup_read(k).map(|e| e.value().kind()) {
            None | Some(Kind::ZSet) | Some(Kind::Set) => {}
            Some(_) => return Err(Reply::wrongtype()),
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Agg::Sum;
    let mut withscores = false;
    let mut limit: u64 = 0;
    let mut j = numkeys_idx + 1 + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = &argv[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && is(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = crate::num::parse_f64(&argv[j])
                    .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && is(a, "aggregate") {
            let v = &argv[j + 1];
            agg = if is(v, "sum") {
                Agg::Sum
            } else if is(v, "min") {
                Agg::Min
            } else if is(v, "max") {
                Agg::Max
            } else {
                return Err(Reply::err(reply::ERR_SYNTAX));
            };
            j += 2;
        } else if card_only && remaining >= 2 && is(a, "limit") {
            limit = crate::num::parse_i64(&argv[j + 1])
                .filter(|v| *v >= 0)
                .ok_or_else(|| Reply::err("ERR LIMIT can't be negative"))?
                as u64;
            j += 2;
        } else if dst.is_none() && !card_only && is(a, "withscores") {
            withscores = true;
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
    }
    let out = {
        let db = &cx.store.dbs[cx.db];
        let mut srcs: Vec<(Src, f64)> = keys
            .iter()
            .zip(weights.iter())
            .map(|(k, w)| {
                let src = match db.get(k).map(|e| e.value()) {
                    Some(Value::ZSet(z)) => Src::Z(z),
                    Some(Value::Set(s)) => Src::Set(s),
                    _ => Src::None,
                };
                (src, *w)
            })
            .collect();
        if op != SetOp::Diff {
            // Smallest first, as Redis does (a stable sort, like glibc's qsort).
            srcs.sort_by_key(|(s, _)| s.len());
        }
        compute_setop(&srcs, op, agg, card_only, limit)
    };
    match out {
        OpOut::Card(n) => Ok(Reply::Int(n)),
        OpOut::Pairs(pairs) => {
            let z = ZSet::from_pairs(pairs);
            match dst {
                Some(d) => {
                    let event = match op {
                        SetOp::Union => "zunionstore",
                        SetOp::Inter => "zinterstore",
                        SetOp::Diff => "zdiffstore",
                    };
                    Ok(Reply::Int(store_result(cx, d, z, event)))
                }
                None => {
                    let items: Vec<(Bytes, f64)> =
                        z.iter().map(|(m, s)| (m.to_bytes(), s)).collect();
                    Ok(scored_reply(items, withscores, cx.resp3))
                }
            }
        }
    }
}

fn compute_setop(srcs: &[(Src, f64)], op: SetOp, agg: Agg, card_only: bool, limit: u64) -> OpOut {
    let mut acc: HashMap<Bytes, f64> = HashMap::new();
    match op {
        SetOp::Union => {
            for (src, w) in srcs {
                for (m, s) in src.iter() {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(Bytes::copy_from_slice(m), score);
                        }
                    }
                }
            }
        }
        SetOp::Inter => {
            let mut card: u64 = 0;
            if srcs.iter().all(|(s, _)| s.len() > 0) {
                let (first, w0) = &srcs[0];
                'outer: for (m, s) in first.iter() {
                    let mut score = w0 * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for (src, w) in &srcs[1..] {
                        match src.find(m) {
                            Some(v) => aggregate(&mut score, v * w, agg),
                            None => continue 'outer,
                        }
                    }
                    if card_only {
                        card += 1;
                        if limit != 0 && card >= limit {
                            break;
                        }
                    } else {
                        acc.insert(Bytes::copy_from_slice(m), score);
                    }
                }
            }
            if card_only {
                return OpOut::Card(card as i64);
            }
        }
        SetOp::Diff => {
            let (first, _) = &srcs[0];
            for (m, s) in first.iter() {
                if srcs[1..].iter().all(|(o, _)| o.find(m).is_none()) {
                    acc.insert(Bytes::copy_from_slice(m), s);
                }
            }
        }
    }
    OpOut::Pairs(acc)
}

fn zunion(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 1, None, SetOp::Union, false)
}

fn zinter(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 1, None, SetOp::Inter, false)
}

fn zdiff(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 1, None, SetOp::Diff, false)
}

fn zunionstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 2, Some(&argv[1]), SetOp::Union, false)
}

fn zinterstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 2, Some(&argv[1]), SetOp::Inter, false)
}

fn zdiffstore(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 2, Some(&argv[1]), SetOp::Diff, false)
}

fn zintercard(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    zsetop(cx, argv, 1, None, SetOp::Inter, true)
}

// ----- ZRANDMEMBER / ZSCAN -----

fn zrandmember(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() < 3 {
        let Some(z) = cx.get_zset(key)? else {
            return Ok(Reply::Nil);
        };
        let n = z.len();
        let Cx { store, db, .. } = cx;
        let i = store.rng.random_range(0..n);
        let z = match store.dbs[*db].get(key).map(|e| e.value()) {
            Some(Value::ZSet(z)) => z,
            _ => return Ok(Reply::Nil),
        };
        return Ok(Reply::opt_bulk(z.get_by_rank(i).map(|(m, _)| m.to_bytes())));
    }
    let l = int(&argv[2])?;
    if l == i64::MIN {
        return Err(Reply::error(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let withscores = match argv.len() {
        3 => false,
        4 if is(&argv[3], "withscores") => true,
        _ => return Err(Reply::err(reply::ERR_SYNTAX)),
    };
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(Reply::err("ERR value is out of range"));
    }
    let resp3 = cx.resp3;
    let Some(z) = cx.get_zset(key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let size = z.len();
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    if uniq && count >= size as u64 {
        // The whole set, highest first (Redis's zset iterator starts at the tail).
        let items: Vec<(Bytes, f64)> = z.iter().rev().map(|(m, s)| (m.to_bytes(), s)).collect();
        return Ok(scored_reply(items, withscores, resp3));
    }
    if !uniq && count > MAX_RANDOM_REPLY {
        return Err(Reply::err("ERR value is out of range"));
    }
    let Cx { store, db, .. } = cx;
    let z = match store.dbs[*db].get(key).map(|e| e.value()) {
        Some(Value::ZSet(z)) => z,
        _ => return Ok(Reply::Array(Vec::new())),
    };
    let rng = &mut store.rng;
    let picks: Vec<usize> = if uniq {
        rand::seq::index::sample(rng, size, count as usize).into_vec()
    } else {
        (0..count).map(|_| rng.random_range(0..size)).collect()
    };
    let pick = |(m, s): (&Member, f64)| (m.to_bytes(), s);
    let items = if picks.len() < size / 8 {
        // A few picks: each by rank, O(log n), rather than listing the whole set.
        picks
            .into_iter()
            .filter_map(|i| z.get_by_rank(i).map(pick))
            .collect()
    } else {
        let all: Vec<(&Member, f64)> = z.iter().collect();
        picks
            .into_iter()
            .filter_map(|i| all.get(i).copied().map(pick))
            .collect()
    };
    Ok(scored_reply(items, withscores, resp3))
}

fn zscan(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    use super::scan_util;
    let cursor = scan_util::parse_cursor(&argv[2])?;
    let key = &argv[1];
    if !cx.check_kind(key, Kind::ZSet)? {
        // Redis replies before parsing the options.
        cx.lookup_read(key);
        return Ok(scan_util::empty());
    }
    let opts = scan_util::parse_opts(&argv[3..])?;
    let (small_entries, small_value) = (
        cx.config().zset_max_listpack_entries,
        cx.config().zset_max_listpack_value,
    );
    let Some(z) = cx.get_zset(key)? else {
        return Ok(scan_util::empty());
    };
    let small = z.len() <= small_entries && z.dict.keys().all(|m| m.len() <= small_value);
    let (next, picked): (u64, Vec<(&Member, f64)>) = if small {
        // A listpack-sized set is returned whole, in score order, as Redis does.
        (0, z.iter().collect())
    } else {
        scan_util::step(
            z.dict.iter().map(|(m, s)| (m, *s)),
            z.len(),
            cursor,
            opts.count,
        )
    };
    let mut items = Vec::new();
    for (m, s) in picked {
        if opts.matches(m) {
            items.push(Reply::Bulk(m.to_bytes()));
            items.push(Reply::bulk_str(&crate::num::fmt_g17(s)));
        }
    }
    Ok(scan_util::reply(next, items))
}

#[cfg(test)]
mod tests {
    use crate::reply::Reply;
    use crate::store::Store;
    use bytes::Bytes;

    fn run(s: &mut Store, args: &[&str]) -> Reply {
        let argv: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        s.exec(0, 1_000, &argv)
    }
    fn b(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }
    fn arr(v: &[&str]) -> Reply {
        Reply::Array(v.iter().map(|x| b(x)).collect())
    }
    fn err(s: &mut Store, args: &[&str]) -> String {
        match run(s, args) {
            Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
            r => panic!("expected an error from {args:?}, got {r:?}"),
        }
    }

    #[test]
    fn zadd_flags_and_errors() {
        let mut s = Store::default();
        assert_eq!(
            run(&mut s, &["ZADD", "z", "1", "a", "2", "b"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, &["ZADD", "z", "CH", "5", "a", "3", "c"]),
            Reply::Int(2)
        );
        assert_eq!(run(&mut s, &["ZADD", "z", "NX", "9", "a"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["ZSCORE", "z", "a"]), Reply::Double(5.0));
        assert_eq!(
            run(&mut s, &["ZADD", "z", "XX", "CH", "9", "a", "1", "new"]),
            Reply::Int(1)
        );
        assert_eq!(run(&mut s, &["ZSCORE", "z", "new"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["ZADD", "z", "GT", "CH", "1", "a"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, &["ZADD", "z", "LT", "CH", "1", "a"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, &["ZADD", "z", "INCR", "2.5", "a"]),
            Reply::Double(3.5)
        );
        assert_eq!(
            run(&mut s, &["ZADD", "z", "NX", "INCR", "2.5", "a"]),
            Reply::Nil
        );
        assert_eq!(
            run(&mut s, &["ZADD", "nokey", "XX", "INCR", "2.5", "a"]),
            Reply::Nil
        );
        assert_eq!(run(&mut s, &["EXISTS", "nokey"]), Reply::Int(0));
        assert_eq!(
            err(&mut s, &["ZADD", "z", "XX", "NX", "1", "a"]),
            "ERR XX and NX options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut s, &["ZADD", "z", "GT", "LT", "1", "a"]),
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut s, &["ZADD", "z", "INCR", "1", "a", "2", "b"]),
            "ERR INCR option supports a single increment-element pair"
        );
        assert_eq!(
            err(&mut s, &["ZADD", "z", "1", "a", "2"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, &["ZADD", "z", "1", "a", "x", "b"]),
            "ERR value is not a valid float"
        );
        assert_eq!(run(&mut s, &["ZCARD", "z"]), Reply::Int(3));
        assert_eq!(run(&mut s, &["ZADD", "inf", "inf", "a"]), Reply::Int(1));
        assert_eq!(
            err(&mut s, &["ZINCRBY", "inf", "-inf", "a"]),
            "ERR resulting score is not a number (NaN)"
        );
        assert_eq!(
            run(&mut s, &["ZINCRBY", "inc", "1.5", "m"]),
            Reply::Double(1.5)
        );
        run(&mut s, &["SET", "str", "x"]);
        assert_eq!(
            err(&mut s, &["ZADD", "str", "1", "a"]),
            crate::reply::WRONGTYPE
        );
    }

    #[test]
    fn negative_zero_is_stored_as_listpacks_do() {
        let mut s = Store::default();
        let neg = |r: Reply| matches!(r, Reply::Double(v) if v == 0.0 && v.is_sign_negative());
        assert_eq!(run(&mut s, &["ZADD", "z", "-0", "a"]), Reply::Int(1));
        assert!(!neg(run(&mut s, &["ZSCORE", "z", "a"])));
        // The increment's result is replied as computed, then stored as 0.
        assert!(neg(run(&mut s, &["ZINCRBY", "z", "-0", "c"])));
        assert!(!neg(run(&mut s, &["ZSCORE", "z", "c"])));
        // A computed (unstored) union keeps the sign.
        assert!(matches!(
            run(&mut s, &["ZUNION", "1", "z", "WEIGHTS", "-1", "WITHSCORES"]),
            Reply::Array(v) if neg(v[1].clone())
        ));
    }

    /// Checked against redis-server 7.0.15: a set created with a long first member is
    /// a skiplist at once and keeps `-0`; a long member added later converts the set
    /// only from that insert on (earlier zeros in the same ZADD were stored by the
    /// listpack as `0`).
    #[test]
    fn negative_zero_is_kept_once_the_set_is_a_skiplist() {
        let mut s = Store::default();
        let long = "x".repeat(70);
        let zrange = |s: &mut Store, k: &str| match run(s, &["ZRANGE", k, "0", "-1", "WITHSCORES"])
        {
            Reply::Array(v) => v,
            r => panic!("{r:?}"),
        };
        let neg = |r: &Reply| matches!(r, Reply::Double(v) if *v == 0.0 && v.is_sign_negative());
        let zero = |r: &Reply| matches!(r, Reply::Double(v) if *v == 0.0 && !v.is_sign_negative());
        // ZADD z 1 <long> -0 m: m keeps -0.
        assert_eq!(
            run(&mut s, &["ZADD", "z1", "1", &long, "-0", "m"]),
            Reply::Int(2)
        );
        let v = zrange(&mut s, "z1");
        assert_eq!(v[0], Reply::bulk_str("m"));
        assert!(neg(&v[1]), "{v:?}");
        // The long member second: m was stored by the listpack.
        run(&mut s, &["ZADD", "z2", "-0", "m", "1", &long]);
        assert!(zero(&zrange(&mut s, "z2")[1]));
        // An existing skiplist (by member length) keeps -0 on a later ZADD/ZINCRBY.
        run(&mut s, &["ZADD", "z3", "1", &long]);
        run(&mut s, &["ZADD", "z3", "-0", "m"]);
        assert!(neg(&zrange(&mut s, "z3")[1]));
        assert!(neg(&run(&mut s, &["ZINCRBY", "z3", "-0", "q"])));
        assert!(neg(&run(&mut s, &["ZSCORE", "z3", "q"])));
        // Conversion in the middle of one ZADD: before it 0, after it -0.
        run(&mut s, &["ZADD", "z4", "1", "a"]);
        run(&mut s, &["ZADD", "z4", "-0", "m", "2", &long, "-0", "n"]);
        assert!(zero(&run(&mut s, &["ZSCORE", "z4", "m"])));
        assert!(neg(&run(&mut s, &["ZSCORE", "z4", "n"])));
    }

    #[test]
    fn dirty_counts_real_changes() {
        let mut s = Store::default();
        run(&mut s, &["ZADD", "z", "1", "a", "2", "b"]);
        let d = s.effects.dirty;
        run(&mut s, &["ZADD", "z", "1", "a"]);
        run(&mut s, &["ZREM", "z", "nope"]);
        run(&mut s, &["ZREMRANGEBYSCORE", "z", "5", "6"]);
        assert_eq!(s.effects.dirty, d);
        run(&mut s, &["ZREM", "z", "a", "b"]);
        assert_eq!(s.effects.dirty, d + 2);
        assert_eq!(run(&mut s, &["EXISTS", "z"]), Reply::Int(0));
    }

    #[test]
    fn ranges() {
        let mut s = Store::default();
        run(
            &mut s,
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        );
        assert_eq!(
            run(&mut s, &["ZRANGE", "z", "0", "-1"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(
            run(&mut s, &["ZRANGE", "z", "-2", "100", "REV"]),
            arr(&["b", "a"])
        );
        assert_eq!(
            run(&mut s, &["ZREVRANGE", "z", "0", "0", "WITHSCORES"]),
            Reply::Array(vec![b("d"), Reply::Double(4.0)])
        );
        assert_eq!(
            run(&mut s, &["ZRANGEBYSCORE", "z", "(1", "3"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(
                &mut s,
                &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2"]
            ),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(
                &mut s,
                &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "2"]
            ),
            arr(&[])
        );
        assert_eq!(
            run(
                &mut s,
                &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "2", "-1"]
            ),
            arr(&["c", "d"])
        );
        assert_eq!(
            run(&mut s, &["ZREVRANGEBYSCORE", "z", "3", "(1"]),
            arr(&["c", "b"])
        );
        assert_eq!(
            run(&mut s, &["ZRANGE", "z", "(4", "+inf", "BYSCORE"]),
            arr(&[])
        );
        assert_eq!(
            run(
                &mut s,
                &["ZRANGE", "z", "+inf", "(3", "BYSCORE", "REV", "LIMIT", "0", "1"]
            ),
            arr(&["d"])
        );
        assert_eq!(run(&mut s, &["ZRANGEBYSCORE", "z", "3", "1"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZRANGEBYSCORE", "z", "(2", "(2"]), arr(&[]));
        assert_eq!(
            run(&mut s, &["ZRANGEBYSCORE", "z", " 2", "0x3"]),
            arr(&["b", "c"])
        );
        assert_eq!(run(&mut s, &["ZCOUNT", "z", "(1", "+inf"]), Reply::Int(3));
        assert_eq!(
            err(&mut s, &["ZCOUNT", "z", "x", "1"]),
            "ERR min or max is not a float"
        );
        assert_eq!(
            err(&mut s, &["ZCOUNT", "z", "nan", "1"]),
            "ERR min or max is not a float"
        );
        assert_eq!(
            err(&mut s, &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"]),
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        );
        assert_eq!(
            err(&mut s, &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]),
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
        );
        assert_eq!(
            err(&mut s, &["ZRANGEBYSCORE", "z", "0", "1", "REV"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, &["ZRANGE", "z", "x", "1"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(run(&mut s, &["ZRANK", "z", "c"]), Reply::Int(2));
        assert_eq!(run(&mut s, &["ZREVRANK", "z", "c"]), Reply::Int(1));
        assert_eq!(run(&mut s, &["ZRANK", "z", "zz"]), Reply::Nil);
        assert_eq!(run(&mut s, &["ZRANGE", "nokey", "0", "-1"]), arr(&[]));
    }

    #[test]
    fn lex_ranges() {
        let mut s = Store::default();
        run(
            &mut s,
            &["ZADD", "z", "0", "a", "0", "b", "0", "c", "0", "d"],
        );
        assert_eq!(
            run(&mut s, &["ZRANGEBYLEX", "z", "-", "+"]),
            arr(&["a", "b", "c", "d"])
        );
        assert_eq!(
            run(&mut s, &["ZRANGEBYLEX", "z", "(a", "[c"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(&mut s, &["ZRANGEBYLEX", "z", "[b", "+", "LIMIT", "1", "5"]),
            arr(&["c", "d"])
        );
        assert_eq!(
            run(&mut s, &["ZREVRANGEBYLEX", "z", "(c", "-"]),
            arr(&["b", "a"])
        );
        assert_eq!(
            run(&mut s, &["ZRANGE", "z", "[c", "(a", "BYLEX", "REV"]),
            arr(&["c", "b"])
        );
        assert_eq!(run(&mut s, &["ZRANGEBYLEX", "z", "+", "-"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZRANGEBYLEX", "z", "(b", "(b"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZLEXCOUNT", "z", "[b", "[c"]), Reply::Int(2));
        assert_eq!(
            err(&mut s, &["ZRANGEBYLEX", "z", "a", "+"]),
            "ERR min or max not valid string range item"
        );
        assert_eq!(
            err(&mut s, &["ZLEXCOUNT", "z", "", "+"]),
            "ERR min or max not valid string range item"
        );
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYLEX", "z", "[b", "(d"]),
            Reply::Int(2)
        );
        assert_eq!(run(&mut s, &["ZRANGE", "z", "0", "-1"]), arr(&["a", "d"]));
    }

    #[test]
    fn lex_ranges_with_mixed_scores_walk_like_a_listpack() {
        // Results checked against redis-server 7.0.15.
        let mut s = Store::default();
        run(
            &mut s,
            &["ZADD", "m", "1", "b", "2", "a", "3", "c", "0", "d"],
        );
        assert_eq!(run(&mut s, &["ZRANGEBYLEX", "m", "[a", "[b"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZREVRANGEBYLEX", "m", "[b", "[a"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZRANGEBYLEX", "m", "(c", "+"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZRANGEBYLEX", "m", "-", "[c"]), arr(&[]));
        assert_eq!(
            run(&mut s, &["ZREVRANGEBYLEX", "m", "+", "(a"]),
            arr(&["c"])
        );
        assert_eq!(run(&mut s, &["ZLEXCOUNT", "m", "[b", "+"]), Reply::Int(4));
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYLEX", "m", "[a", "[b"]),
            Reply::Int(0)
        );
    }

    #[test]
    fn remrange_and_store() {
        let mut s = Store::default();
        run(
            &mut s,
            &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        );
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYRANK", "z", "0", "1"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYRANK", "z", "5", "10"]),
            Reply::Int(0)
        );
        assert_eq!(
            run(&mut s, &["ZRANGESTORE", "dst", "z", "0", "-1"]),
            Reply::Int(2)
        );
        assert_eq!(
            err(
                &mut s,
                &["ZRANGESTORE", "dst", "z", "0", "-1", "WITHSCORES"]
            ),
            "ERR syntax error"
        );
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYSCORE", "z", "-inf", "(4"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, &["ZREMRANGEBYSCORE", "z", "4", "4"]),
            Reply::Int(1)
        );
        assert_eq!(run(&mut s, &["EXISTS", "z"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &["ZRANGESTORE", "dst", "z", "0", "-1"]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, &["EXISTS", "dst"]), Reply::Int(0));
    }

    #[test]
    fn pops() {
        let mut s = Store::default();
        run(&mut s, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            run(&mut s, &["ZPOPMIN", "z"]),
            Reply::Array(vec![b("a"), Reply::Double(1.0)])
        );
        assert_eq!(
            run(&mut s, &["ZPOPMAX", "z", "5"]),
            Reply::Array(vec![b("c"), Reply::Double(3.0), b("b"), Reply::Double(2.0)])
        );
        assert_eq!(run(&mut s, &["EXISTS", "z"]), Reply::Int(0));
        assert_eq!(run(&mut s, &["ZPOPMIN", "z"]), arr(&[]));
        assert_eq!(
            err(&mut s, &["ZPOPMIN", "z", "-1"]),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(err(&mut s, &["ZPOPMIN", "z", "1", "2"]), "ERR syntax error");
        run(&mut s, &["ZADD", "z2", "1", "a", "2", "b"]);
        assert_eq!(
            run(&mut s, &["ZMPOP", "2", "z", "z2", "MAX", "COUNT", "1"]),
            Reply::Array(vec![
                b("z2"),
                Reply::Array(vec![Reply::Array(vec![b("b"), Reply::Double(2.0)])])
            ])
        );
        assert_eq!(
            s.effects.log.last().map(|r| r.argv.clone()),
            Some(vec![
                Bytes::from("ZPOPMAX"),
                Bytes::from("z2"),
                Bytes::from("1")
            ])
        );
        assert_eq!(run(&mut s, &["ZMPOP", "1", "z", "MIN"]), Reply::NilArray);
        assert_eq!(
            err(&mut s, &["ZMPOP", "0", "z", "MIN"]),
            "ERR numkeys should be greater than 0"
        );
        assert_eq!(err(&mut s, &["ZMPOP", "5", "z", "MIN"]), "ERR syntax error");
        assert_eq!(
            err(&mut s, &["ZMPOP", "1", "z", "MIN", "COUNT", "0"]),
            "ERR count should be greater than 0"
        );
        assert_eq!(
            err(
                &mut s,
                &["ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "1"]
            ),
            "ERR syntax error"
        );
    }

    #[test]
    fn resp3_shapes() {
        let mut s = Store::default();
        let argv = |a: &[&str]| {
            a.iter()
                .map(|x| Bytes::copy_from_slice(x.as_bytes()))
                .collect::<Vec<_>>()
        };
        s.exec(0, 0, &argv(&["ZADD", "z", "1", "a", "2", "b"]));
        let spec = crate::table::lookup(b"zrange").unwrap();
        let r = s.call(
            spec,
            0,
            0,
            &argv(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
            true,
        );
        let pair = |m: &str, v: f64| Reply::Array(vec![b(m), Reply::Double(v)]);
        assert_eq!(r, Reply::Array(vec![pair("a", 1.0), pair("b", 2.0)]));
        let spec = crate::table::lookup(b"zpopmin").unwrap();
        assert_eq!(
            s.call(spec, 0, 0, &argv(&["ZPOPMIN", "z"]), true),
            Reply::Array(vec![b("a"), Reply::Double(1.0)])
        );
        assert_eq!(
            s.call(spec, 0, 0, &argv(&["ZPOPMIN", "z", "1"]), true),
            Reply::Array(vec![pair("b", 2.0)])
        );
    }

    #[test]
    fn set_operations() {
        let mut s = Store::default();
        run(&mut s, &["ZADD", "z1", "1", "a", "2", "b", "3", "c"]);
        run(&mut s, &["ZADD", "z2", "10", "b", "20", "c", "30", "d"]);
        s.dbs[0].insert(
            Bytes::from("s"),
            crate::value::Value::Set(Box::new(
                ["a", "x"]
                    .iter()
                    .map(|x| crate::value::Member::from(*x))
                    .collect(),
            )),
            None,
        );
        assert_eq!(
            run(&mut s, &["ZUNION", "2", "z1", "z2", "WITHSCORES"]),
            Reply::Array(vec![
                b("a"),
                Reply::Double(1.0),
                b("b"),
                Reply::Double(12.0),
                b("c"),
                Reply::Double(23.0),
                b("d"),
                Reply::Double(30.0)
            ])
        );
        assert_eq!(
            run(&mut s, &["ZINTER", "2", "z1", "z2", "AGGREGATE", "MAX"]),
            arr(&["b", "c"])
        );
        assert_eq!(
            run(
                &mut s,
                &[
                    "ZINTER",
                    "2",
                    "z1",
                    "z2",
                    "WEIGHTS",
                    "2",
                    "0.5",
                    "AGGREGATE",
                    "MIN",
                    "WITHSCORES"
                ]
            ),
            Reply::Array(vec![b("b"), Reply::Double(4.0), b("c"), Reply::Double(6.0)])
        );
        assert_eq!(run(&mut s, &["ZDIFF", "2", "z1", "z2"]), arr(&["a"]));
        assert_eq!(
            run(&mut s, &["ZUNION", "2", "z1", "s", "WITHSCORES"]),
            Reply::Array(vec![
                b("x"),
                Reply::Double(1.0),
                b("a"),
                Reply::Double(2.0),
                b("b"),
                Reply::Double(2.0),
                b("c"),
                Reply::Double(3.0),
            ])
        );
        assert_eq!(
            run(&mut s, &["ZINTERSTORE", "dst", "2", "z1", "z2"]),
            Reply::Int(2)
        );
        assert_eq!(
            run(&mut s, &["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
            Reply::Array(vec![
                b("b"),
                Reply::Double(12.0),
                b("c"),
                Reply::Double(23.0)
            ])
        );
        assert_eq!(
            run(&mut s, &["ZINTERSTORE", "dst", "2", "z1", "nokey"]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, &["EXISTS", "dst"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, &["ZDIFFSTORE", "dst", "1", "z1"]),
            Reply::Int(3)
        );
        assert_eq!(run(&mut s, &["ZINTERCARD", "2", "z1", "z2"]), Reply::Int(2));
        assert_eq!(
            run(&mut s, &["ZINTERCARD", "2", "z1", "z2", "LIMIT", "1"]),
            Reply::Int(1)
        );
        assert_eq!(
            err(&mut s, &["ZINTERCARD", "1", "z1", "LIMIT", "-1"]),
            "ERR LIMIT can't be negative"
        );
        assert_eq!(
            err(&mut s, &["ZINTERCARD", "1", "z1", "WITHSCORES"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, &["ZUNIONSTORE", "d", "0", "z1"]),
            "ERR at least 1 input key is needed for 'zunionstore' command"
        );
        assert_eq!(
            err(&mut s, &["ZUNION", "3", "z1", "z2"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, &["ZUNION", "1", "z1", "WEIGHTS", "x"]),
            "ERR weight value is not a float"
        );
        assert_eq!(
            err(&mut s, &["ZDIFF", "1", "z1", "WEIGHTS", "1"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&mut s, &["ZUNIONSTORE", "d", "1", "z1", "WITHSCORES"]),
            "ERR syntax error"
        );
        run(&mut s, &["SET", "str", "x"]);
        assert_eq!(
            err(&mut s, &["ZUNION", "2", "z1", "str", "bogus"]),
            crate::reply::WRONGTYPE
        );
        // inf + -inf is 0 in SUM.
        run(&mut s, &["ZADD", "i1", "inf", "m"]);
        run(&mut s, &["ZADD", "i2", "-inf", "m"]);
        assert_eq!(
            run(&mut s, &["ZUNION", "2", "i1", "i2", "WITHSCORES"]),
            Reply::Array(vec![b("m"), Reply::Double(0.0)])
        );
    }

    #[test]
    fn randmember_and_scan() {
        let mut s = Store::default();
        run(&mut s, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        assert_eq!(
            run(&mut s, &["ZRANDMEMBER", "z", "5"]),
            arr(&["c", "b", "a"])
        );
        let Reply::Array(v) = run(&mut s, &["ZRANDMEMBER", "z", "-7", "WITHSCORES"]) else {
            panic!()
        };
        assert_eq!(v.len(), 14);
        let Reply::Array(v) = run(&mut s, &["ZRANDMEMBER", "z", "2"]) else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        assert_ne!(v[0], v[1]);
        assert!(matches!(run(&mut s, &["ZRANDMEMBER", "z"]), Reply::Bulk(_)));
        assert_eq!(run(&mut s, &["ZRANDMEMBER", "nokey"]), Reply::Nil);
        assert_eq!(run(&mut s, &["ZRANDMEMBER", "nokey", "3"]), arr(&[]));
        assert_eq!(run(&mut s, &["ZRANDMEMBER", "z", "0"]), arr(&[]));
        assert_eq!(
            err(&mut s, &["ZRANDMEMBER", "z", "-9223372036854775808"]),
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
        );
        assert_eq!(
            err(
                &mut s,
                &["ZRANDMEMBER", "z", "9223372036854775807", "WITHSCORES"]
            ),
            "ERR value is out of range"
        );
        assert_eq!(
            err(&mut s, &["ZRANDMEMBER", "z", "-1000000000"]),
            "ERR value is out of range"
        );
        assert_eq!(
            err(&mut s, &["ZRANDMEMBER", "z", "1", "foo"]),
            "ERR syntax error"
        );
        run(&mut s, &["ZADD", "z", "1.1", "d"]);
        assert_eq!(
            run(&mut s, &["ZSCAN", "z", "0", "MATCH", "[cd]"]),
            Reply::Array(vec![b("0"), arr(&["d", "1.1000000000000001", "c", "3"])])
        );
        assert_eq!(err(&mut s, &["ZSCAN", "z", "x"]), "ERR invalid cursor");
        assert_eq!(
            err(&mut s, &["ZSCAN", "z", "0", "COUNT", "0"]),
            "ERR syntax error"
        );
        assert_eq!(
            run(&mut s, &["ZSCAN", "nokey", "0", "bogus"]),
            Reply::Array(vec![b("0"), arr(&[])])
        );
        // A large set is scanned in steps and every member comes back.
        for i in 0..300 {
            run(&mut s, &["ZADD", "big", &i.to_string(), &format!("m{i}")]);
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        loop {
            let Reply::Array(v) = run(&mut s, &["ZSCAN", "big", &cursor, "COUNT", "20"]) else {
                panic!()
            };
            let Reply::Bulk(c) = &v[0] else { panic!() };
            let Reply::Array(items) = &v[1] else { panic!() };
            for pair in items.chunks(2) {
                seen.insert(format!("{:?}", pair[0]));
            }
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 300);
    }
}
