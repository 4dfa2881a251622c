//! SORT and SORT_RO (Redis's `sortCommandGeneric`).

use super::is;
use crate::key::Key;
use crate::notify;
use crate::reply::{self, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::Bytes;
use std::cmp::Ordering;

pub const COMMANDS: &[CommandSpec] = &[
    cmd(
        "sort",
        -2,
        WRITE | DENYOOM | MOVABLEKEYS,
        1,
        1,
        1,
        "generic",
        Some(sort),
    ),
    cmd(
        "sort_ro",
        -2,
        READONLY | MOVABLEKEYS,
        1,
        1,
        1,
        "generic",
        Some(sort_ro),
    ),
];

/// The key positions of a SORT command (Redis's `sortGetKeys`, for COMMAND GETKEYS):
/// the sorted key, then the key of the last STORE option. Options are assumed to take
/// no argument except LIMIT (2), GET and BY (1); as in Redis, the word after STORE is
/// scanned again, so in `STORE a STORE b` the key is `b`.
pub fn get_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        if is(&argv[i], "limit") {
            i += 2;
        } else if is(&argv[i], "get") || is(&argv[i], "by") {
            i += 1;
        } else if is(&argv[i], "store") && i + 1 < argv.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store);
    keys
}

fn sort(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    sort_generic(cx, argv, false)
}

fn sort_ro(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    sort_generic(cx, argv, true)
}

/// C's `strchr`/`strstr` see a pattern only up to its first NUL byte.
fn c_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|c| *c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*`
/// is replaced by the element and the key (or, with `->field`, a hash field) is read.
fn lookup_by_pattern(cx: &mut Cx, pattern: &[u8], elem: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(elem.clone());
    }
    let cpat = c_str(pattern);
    let star = cpat.iter().position(|c| *c == b'*')?;
    let after = &cpat[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|off| star + 1 + off + 2 < pattern.len());
    let (key_tail_end, field) = match arrow {
        Some(off) => (star + 1 + off, Some(&pattern[star + 1 + off + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(key_tail_end + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_tail_end]);
    let key = Bytes::from(key);
    match (cx.lookup_read(&key).map(|e| e.value()), field) {
        (Some(Value::Hash(h)), Some(f)) => h.get(f).map(|v| v.to_bytes()),
        (Some(Value::Str(s)), None) => Some(s.clone()),
        _ => None,
    }
}

/// `strtod` as SORT uses it: the whole string, no NaN, no overflow or underflow.
/// Redis parses the value as a C string: a NUL byte ends it (a bitmap written by
/// SETBIT past a number leaves NULs after it).
fn sort_score(b: &[u8]) -> Option<f64> {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let v = super::zset::strtod(b)?;
    if v.is_nan() {
        return None;
    }
    let lower = b.to_ascii_lowercase();
    if v.is_infinite() && !lower.windows(3).any(|w| w == b"inf") {
        return None; // ERANGE (overflow)
    }
    if v.is_subnormal() {
        return None; // ERANGE (underflow)
    }
    if v == 0.0 {
        // Underflow to zero: a nonzero mantissa digit before any exponent.
        let hex = lower.windows(2).any(|w| w == b"0x");
        let mant: Vec<u8> = if hex {
            lower
                .split(|c| *c == b'p')
                .next()
                .unwrap_or(&[])
                .iter()
                .skip_while(|c| **c != b'x')
                .skip(1)
                .copied()
                .collect()
        } else {
            lower.split(|c| *c == b'e').next().unwrap_or(&[]).to_vec()
        };
        if mant.iter().any(|c| c.is_ascii_hexdigit() && *c != b'0') {
            return None;
        }
    }
    Some(v)
}

struct Item {
    obj: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

fn sort_generic(cx: &mut Cx, argv: &[Bytes], readonly: bool) -> CmdResult {
    let (mut desc, mut alpha) = (false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut dontsort = false;
    let mut sortby: Option<&Bytes> = None;
    let mut storekey: Option<&Bytes> = None;
    let mut gets: Vec<&Bytes> = Vec::new();
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = &argv[j];
        if is(a, "asc") {
            desc = false;
        } else if is(a, "desc") {
            desc = true;
        } else if is(a, "alpha") {
            alpha = true;
        } else if is(a, "limit") && left >= 2 {
            limit_start = super::int(&argv[j + 1])?;
            limit_count = super::int(&argv[j + 2])?;
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            storekey = Some(&argv[j + 1]);
            j += 1;
        } else if is(a, "by") && left >= 1 {
            sortby = Some(&argv[j + 1]);
            if !c_str(&argv[j + 1]).contains(&b'*') {
                dontsort = true;
            }
            j += 1;
        } else if is(a, "get") && left >= 1 {
            gets.push(&argv[j + 1]);
            j += 1;
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        j += 1;
    }

    // Load the elements in their natural order.
    let key = &argv[1];
    enum Src {
        List,
        Set,
        ZSet,
    }
    let mut ranged = false;
    let (src, mut elems): (Src, Vec<Bytes>) = match cx.lookup_read(key).map(|e| e.value()) {
        None => (Src::List, Vec::new()),
        Some(Value::List(l)) => (Src::List, l.to_bytes_vec()),
        Some(Value::Set(s)) => (Src::Set, s.iter().map(|m| m.to_bytes()).collect()),
        Some(Value::ZSet(z)) if dontsort => {
            // Redis's special case: only the LIMIT range is read, by rank (O(log n +
            // m)), in the order asked; the output then takes it whole.
            let n = z.len();
            let (start, end) = limit_range(limit_start, limit_count, n as i64);
            let mut picked = Vec::new();
            if end >= start && start >= 0 {
                let (s, e) = (start as usize, end as usize);
                let pick = |(m, _): (&crate::value::Member, f64)| m.to_bytes();
                picked = if desc {
                    z.range_iter(n - 1 - e, n - s).rev().map(pick).collect()
                } else {
                    z.range_iter(s, e + 1).map(pick).collect()
                };
            }
            (limit_start, limit_count) = (0, -1);
            ranged = true;
            (Src::ZSet, picked)
        }
        Some(Value::ZSet(z)) => (Src::ZSet, z.iter().map(|(m, _)| m.to_bytes()).collect()),
        Some(_) => return Err(Reply::wrongtype()),
    };
    if dontsort && matches!(src, Src::Set) && (storekey.is_some() || cx.store.in_script) {
        // A set has no order of its own: force a deterministic result when storing
        // or answering a script.
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    if dontsort && desc && !matches!(src, Src::Set) && !ranged {
        elems.reverse();
    }

    let (start, end) = limit_range(limit_start, limit_count, elems.len() as i64);

    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();
    let mut conversion_error = false;
    if !dontsort {
        for it in items.iter_mut() {
            let byval = match sortby {
                Some(p) => match lookup_by_pattern(cx, p, &it.obj) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match sort_score(&byval) {
                    Some(v) => it.score = v,
                    None => conversion_error = true,
                }
            }
        }
        let bypattern = sortby.is_some();
        let compare = |a: &Item, b: &Item| -> Ordering {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.obj.cmp(&b.obj))
            } else if bypattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.obj.cmp(&b.obj)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        };
        // Stable, like glibc's qsort (a merge sort).
        items.sort_by(compare);
    }
    if conversion_error {
        return Err(Reply::err(
            "ERR One or more scores can't be converted into double",
        ));
    }

    let selected: &[Item] = if end >= start && start >= 0 {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    match storekey {
        None => {
            let mut out = Vec::with_capacity(selected.len() * gets.len().max(1));
            for it in selected {
                if gets.is_empty() {
                    out.push(Reply::Bulk(it.obj.clone()));
                }
                for p in &gets {
                    out.push(Reply::opt_bulk(lookup_by_pattern(cx, p, &it.obj)));
                }
            }
            Ok(Reply::Array(out))
        }
        Some(dst) => {
            let mut list = crate::list::List::new();
            for it in selected {
                if gets.is_empty() {
                    list.push_back(Key::new(&it.obj));
                }
                for p in &gets {
                    let v = lookup_by_pattern(cx, p, &it.obj).unwrap_or_default();
                    list.push_back(Key::new(&v));
                }
            }
            let n = list.len() as u64;
            if n > 0 {
                cx.store.expire_if_needed(cx.db, dst, cx.now);
                cx.set_value(dst, Value::List(list), None);
                cx.notify(notify::LIST, "sortstore", dst);
                cx.add_dirty(n - 1);
            } else {
                cx.delete(dst);
            }
            Ok(Reply::Int(n as i64))
        }
    }
}

/// The ranks LIMIT selects among `len` elements (`start > end` when none).
fn limit_range(limit_start: i64, limit_count: i64, len: i64) -> (i64, i64) {
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(limit_count) - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    #[test]
    fn get_keys_finds_the_last_store() {
        let argv = |s: &str| -> Vec<bytes::Bytes> {
            s.split(' ')
                .map(|w| bytes::Bytes::copy_from_slice(w.as_bytes()))
                .collect()
        };
        assert_eq!(super::get_keys(&argv("sort abc store def")), [1, 3]);
        assert_eq!(
            super::get_keys(&argv("sort abc store invalid store stillbad store def")),
            [1, 7]
        );
        assert_eq!(super::get_keys(&argv("sort abc")), [1]);
        // STORE as the last word has no key; a GET pattern named "store" is skipped.
        assert_eq!(super::get_keys(&argv("sort abc store")), [1]);
        assert_eq!(super::get_keys(&argv("sort abc get store x")), [1]);
        assert_eq!(super::get_keys(&argv("sort abc limit 0 store by x")), [1]);
    }

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
    fn arr(v: &[Option<&str>]) -> Reply {
        Reply::Array(
            v.iter()
                .map(|x| match x {
                    Some(x) => Reply::Bulk(Bytes::copy_from_slice(x.as_bytes())),
                    None => Reply::Nil,
                })
                .collect(),
        )
    }
    fn strs(v: &[&str]) -> Reply {
        arr(&v.iter().map(|x| Some(*x)).collect::<Vec<_>>())
    }
    fn list(s: &mut Store, key: &str, items: &[&str]) {
        let l = items
            .iter()
            .map(|x| Bytes::copy_from_slice(x.as_bytes()))
            .collect();
        s.dbs[0].insert(
            Bytes::copy_from_slice(key.as_bytes()),
            crate::value::Value::List(l),
            None,
        );
    }
    fn hash(s: &mut Store, key: &str, f: &str, v: &str) {
        let h = [(crate::value::Member::from(f), crate::value::Member::from(v))]
            .into_iter()
            .collect::<crate::value::Hash>();
        s.dbs[0].insert(
            Bytes::copy_from_slice(key.as_bytes()),
            crate::value::Value::Hash(Box::new(h)),
            None,
        );
    }

    #[test]
    fn numeric_and_alpha() {
        let mut s = Store::default();
        list(&mut s, "l", &["3", "1", "2", "10", "x"]);
        assert_eq!(
            run(&mut s, &["SORT", "l"]),
            Reply::err("ERR One or more scores can't be converted into double")
        );
        assert_eq!(
            run(&mut s, &["SORT", "l", "ALPHA"]),
            strs(&["1", "10", "2", "3", "x"])
        );
        assert_eq!(
            run(&mut s, &["SORT", "l", "ALPHA", "DESC", "LIMIT", "1", "2"]),
            strs(&["3", "2"])
        );
        // A NUL byte ends the number, as for C's strtod.
        list(&mut s, "z", &["5\0x", "2", "\x001"]);
        assert_eq!(run(&mut s, &["SORT", "z"]), strs(&["\x001", "2", "5\0x"]));
        list(&mut s, "n", &["3", "1", "2", "10", "-1.5", " 4", ""]);
        assert_eq!(
            run(&mut s, &["SORT", "n"]),
            strs(&["-1.5", "", "1", "2", "3", " 4", "10"])
        );
        assert_eq!(
            run(&mut s, &["SORT", "n", "DESC", "LIMIT", "0", "0"]),
            strs(&[])
        );
        assert_eq!(
            run(&mut s, &["SORT", "n", "LIMIT", "-5", "2"]),
            strs(&["-1.5", ""])
        );
        assert_eq!(
            run(&mut s, &["SORT", "n", "LIMIT", "2", "-1"]),
            strs(&["1", "2", "3", " 4", "10"])
        );
        assert_eq!(run(&mut s, &["SORT", "n", "LIMIT", "100", "2"]), strs(&[]));
        assert_eq!(
            run(&mut s, &["SORT", "n", "BY", "nosort"]),
            strs(&["3", "1", "2", "10", "-1.5", " 4", ""])
        );
        assert_eq!(
            run(
                &mut s,
                &["SORT", "n", "BY", "nosort", "DESC", "LIMIT", "1", "3"]
            ),
            strs(&[" 4", "-1.5", "10"])
        );
        list(&mut s, "e", &["1e400", "2"]);
        assert_eq!(
            run(&mut s, &["SORT", "e"]),
            Reply::err("ERR One or more scores can't be converted into double")
        );
        list(&mut s, "hx", &["0x10", "2"]);
        assert_eq!(run(&mut s, &["SORT", "hx"]), strs(&["2", "0x10"]));
    }

    #[test]
    fn by_and_get_patterns() {
        let mut s = Store::default();
        // A NUL byte ends the number, as for C's strtod.
        list(&mut s, "z", &["5\0x", "2", "\x001"]);
        assert_eq!(run(&mut s, &["SORT", "z"]), strs(&["\x001", "2", "5\0x"]));
        list(&mut s, "n", &["3", "1", "2", "10", "-1.5", " 4", ""]);
        run(&mut s, &["SET", "w_3", "30"]);
        run(&mut s, &["SET", "w_1", "10"]);
        run(&mut s, &["SET", "w_2", "-20"]);
        hash(&mut s, "h_3", "f", "c");
        hash(&mut s, "h_1", "f", "a");
        let r = run(
            &mut s,
            &[
                "SORT", "n", "BY", "w_*", "GET", "#", "GET", "w_*", "GET", "h_*->f",
            ],
        );
        #[rustfmt::skip]
        let want = arr(&[
            Some("2"), Some("-20"), None,
            Some(""), None, None,
            Some(" 4"), None, None,
            Some("-1.5"), None, None,
            Some("10"), None, None,
            Some("1"), Some("10"), Some("a"),
            Some("3"), Some("30"), Some("c"),
        ]);
        assert_eq!(r, want);
        assert_eq!(
            run(&mut s, &["SORT", "n", "BY", "h_*->f", "ALPHA"]),
            strs(&["2", "10", "-1.5", " 4", "", "1", "3"])
        );
        assert_eq!(
            run(&mut s, &["SORT", "n", "BY", "w_*->"]),
            strs(&["", " 4", "-1.5", "1", "10", "2", "3"])
        );
        assert_eq!(
            run(
                &mut s,
                &["SORT", "n", "BY", "nosort", "GET", "h_*->f", "STORE", "dst"]
            ),
            Reply::Int(7)
        );
        assert_eq!(
            run(&mut s, &["SORT", "dst", "BY", "nosort"]),
            strs(&["c", "a", "", "", "", "", ""])
        );
        let d = s.effects.dirty;
        assert_eq!(run(&mut s, &["SORT", "n", "STORE", "dst"]), Reply::Int(7));
        assert_eq!(s.effects.dirty, d + 7);
        assert_eq!(
            run(&mut s, &["SORT", "nokey", "STORE", "dst"]),
            Reply::Int(0)
        );
        assert_eq!(run(&mut s, &["EXISTS", "dst"]), Reply::Int(0));
    }

    #[test]
    fn sets_zsets_and_errors() {
        let mut s = Store::default();
        run(&mut s, &["ZADD", "z", "3", "a", "1", "b", "2", "c"]);
        assert_eq!(
            run(&mut s, &["SORT", "z", "BY", "nosort"]),
            strs(&["b", "c", "a"])
        );
        assert_eq!(
            run(
                &mut s,
                &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "1"]
            ),
            strs(&["c"])
        );
        assert_eq!(run(&mut s, &["SORT", "z", "ALPHA"]), strs(&["a", "b", "c"]));
        let set = ["c", "a", "b"]
            .iter()
            .map(|x| crate::value::Member::from(*x))
            .collect::<crate::value::Set>();
        s.dbs[0].insert(
            Bytes::from("s"),
            crate::value::Value::Set(Box::new(set)),
            None,
        );
        assert_eq!(
            run(&mut s, &["SORT", "s", "BY", "nosort", "STORE", "sd"]),
            Reply::Int(3)
        );
        assert_eq!(
            run(&mut s, &["SORT", "sd", "BY", "nosort"]),
            strs(&["a", "b", "c"])
        );
        assert_eq!(
            run(&mut s, &["SORT", "s", "DESC", "ALPHA"]),
            strs(&["c", "b", "a"])
        );
        run(&mut s, &["SET", "str", "x"]);
        assert_eq!(run(&mut s, &["SORT", "str"]), Reply::wrongtype());
        assert_eq!(
            run(&mut s, &["SORT", "s", "LIMIT", "x", "1"]),
            Reply::err(crate::reply::ERR_NOT_INT)
        );
        assert_eq!(
            run(&mut s, &["SORT", "s", "LIMIT", "0"]),
            Reply::err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["SORT_RO", "s", "STORE", "x"]),
            Reply::err("ERR syntax error")
        );
        assert_eq!(
            run(&mut s, &["SORT_RO", "s", "ALPHA", "LIMIT", "0", "1"]),
            strs(&["a"])
        );
    }
}
