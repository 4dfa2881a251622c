//! The JSON commands that edit or measure values in place: numbers, booleans,
//! strings, arrays and objects (RedisJSON 2.6.9's `commands.rs`; see `json.rs`).
//!
//! A write first finds its targets on the stored document without copying it, checks
//! everything that can fail, and only then takes the document for writing, so an
//! error leaves the document as it was (RedisJSON may stop half-way through several
//! matches, e.g. on `index out of bounds`; redsnap refuses before the first change).

use super::json::{
    changed, doc_mut, err_expected, err_path, err_path_or, first, int_arg, match_paths, parse_json,
    path_arg, path_or_root, peek_doc, query, read_doc, text, ERR_NO_KEY,
};
use crate::json::{self, JVal, PathArg, PathElem};
use crate::reply::{wrong_arity, Reply};
use crate::store::{CmdResult, Cx};
use bytes::Bytes;

/// The targets of a write: one entry per match, `None` where `pred` refuses it
/// (`ERR could not perform this operation on a key that doesn't exist` without a key).
fn targets(
    cx: &mut Cx,
    key: &Bytes,
    p: &PathArg,
    pred: impl Fn(&JVal) -> bool,
) -> Result<Vec<Option<Vec<PathElem>>>, Reply> {
    let doc = peek_doc(cx, key)?.ok_or_else(|| Reply::err(ERR_NO_KEY))?;
    if p.is_root() {
        return Ok(vec![pred(doc).then(Vec::new)]);
    }
    let q = query(p)?;
    Ok(match_paths(doc, &q, pred))
}

/// The values a read finds: one entry per match, `None` where `pred` refuses it.
fn found<'a>(
    doc: &'a JVal,
    p: &PathArg,
    pred: impl Fn(&JVal) -> bool,
) -> Result<Vec<Option<&'a JVal>>, Reply> {
    Ok(super::json::all(doc, p)?
        .into_iter()
        .map(|v| pred(v).then_some(v))
        .collect())
}

/// Applies `f` to each target (all already validated); `None` targets stay `None`.
fn apply<T>(
    cx: &mut Cx,
    key: &Bytes,
    paths: &[Option<Vec<PathElem>>],
    mut f: impl FnMut(&mut JVal) -> T,
) -> Vec<Option<T>> {
    let Some(doc) = doc_mut(cx, key) else {
        return paths.iter().map(|_| None).collect();
    };
    paths
        .iter()
        .map(|p| p.as_ref().and_then(|p| json::get_mut(doc, p)).map(&mut f))
        .collect()
}

/// The values at the targets (for validation before any change).
fn peek_targets<'a>(
    cx: &'a mut Cx,
    key: &Bytes,
    paths: &[Option<Vec<PathElem>>],
) -> Result<Vec<Option<&'a JVal>>, Reply> {
    let doc = peek_doc(cx, key)?.ok_or_else(|| Reply::err(ERR_NO_KEY))?;
    Ok(paths
        .iter()
        .map(|p| p.as_ref().and_then(|p| get(doc, p)))
        .collect())
}

fn get<'a>(root: &'a JVal, path: &[PathElem]) -> Option<&'a JVal> {
    let mut cur = root;
    for e in path {
        cur = match (e, cur) {
            (PathElem::Key(k), JVal::Obj(o)) => o.get(k)?,
            (PathElem::Index(i), JVal::Arr(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn any(paths: &[Option<Vec<PathElem>>]) -> bool {
    paths.iter().any(Option::is_some)
}

fn ints(v: Vec<Option<usize>>) -> Reply {
    Reply::Array(
        v.into_iter()
            .map(|n| n.map_or(Reply::Nil, |n| Reply::Int(n as i64)))
            .collect(),
    )
}

fn last_int(v: Vec<Option<usize>>) -> Reply {
    v.into_iter()
        .flatten()
        .last()
        .map_or(Reply::Nil, |n| Reply::Int(n as i64))
}

// ----- numbers -----

/// JSON.NUMINCRBY key path number
pub fn numincrby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    num_op(cx, argv, "json.numincrby", i64::checked_add, |a, b| a + b)
}

/// JSON.NUMMULTBY key path number
pub fn nummultby(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    num_op(cx, argv, "json.nummultby", i64::checked_mul, |a, b| a * b)
}

/// Integer arithmetic when both sides are integers, else double arithmetic (the
/// result stays a double, as in RedisJSON). An integer result that overflows
/// becomes a double (RedisJSON's release build wraps around).
fn num_op(
    cx: &mut Cx,
    argv: &[Bytes],
    event: &'static str,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let is_num = |v: &JVal| matches!(v, JVal::Int(_) | JVal::Float(_));
    let paths = targets(cx, key, &p, is_num)?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "does not contains a number"));
    }
    let mut results: Vec<Option<JVal>> = Vec::with_capacity(paths.len());
    if any(&paths) {
        // The number is read only when there is something to apply it to.
        let input = match JVal::parse(&argv[3]) {
            Ok(v @ (JVal::Int(_) | JVal::Float(_))) => v,
            Ok(_) => return Err(Reply::err("bad input number")),
            Err(e) => return Err(Reply::error(e)),
        };
        for cur in peek_targets(cx, key, &paths)? {
            results.push(match cur {
                None => None,
                Some(cur) => Some(compute(cur, &input, int_op, float_op)?),
            });
        }
        let mut it = results.iter();
        apply(cx, key, &paths, |slot| {
            if let Some(Some(v)) = it.next() {
                *slot = v.clone();
            }
        });
        changed(cx, key, event);
    } else {
        results = paths.iter().map(|_| None).collect();
    }
    if cx.resp3 {
        return Ok(Reply::Array(
            results
                .into_iter()
                .map(|v| match v {
                    Some(JVal::Int(i)) => Reply::Int(i),
                    Some(JVal::Float(f)) => Reply::Double(f),
                    _ => Reply::Nil,
                })
                .collect(),
        ));
    }
    if p.legacy {
        let last = results.into_iter().flatten().last().unwrap_or(JVal::Null);
        return Ok(Reply::Bulk(Bytes::from(last.to_json())));
    }
    let arr = JVal::Arr(
        results
            .into_iter()
            .map(|v| v.unwrap_or(JVal::Null))
            .collect(),
    );
    Ok(Reply::Bulk(Bytes::from(arr.to_json())))
}

fn compute(
    cur: &JVal,
    input: &JVal,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Result<JVal, Reply> {
    let as_f = |v: &JVal| match v {
        JVal::Int(i) => *i as f64,
        JVal::Float(f) => *f,
        _ => 0.0,
    };
    if let (JVal::Int(a), JVal::Int(b)) = (cur, input) {
        if let Some(r) = int_op(*a, *b) {
            return Ok(JVal::Int(r));
        }
    }
    let r = float_op(as_f(cur), as_f(input));
    if !r.is_finite() {
        return Err(Reply::err("result is not a number"));
    }
    Ok(JVal::Float(r))
}

// ----- booleans -----

/// JSON.TOGGLE key path
pub fn toggle(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let paths = targets(cx, key, &p, |v| matches!(v, JVal::Bool(_)))?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "not a bool"));
    }
    let res = apply(cx, key, &paths, |v| {
        if let JVal::Bool(b) = v {
            *b = !*b;
            *b
        } else {
            false
        }
    });
    if any(&paths) {
        changed(cx, key, "json.toggle");
    }
    if p.legacy {
        let last = res.into_iter().flatten().last().unwrap_or(false);
        return Ok(Reply::bulk_str(if last { "true" } else { "false" }));
    }
    Ok(Reply::Array(
        res.into_iter()
            .map(|b| b.map_or(Reply::Nil, |b| Reply::Int(b as i64)))
            .collect(),
    ))
}

// ----- strings -----

/// JSON.STRAPPEND key [path] value: the value is a JSON string (`'"abc"'`).
pub fn strappend(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (p, raw) = if argv.len() == 3 {
        (PathArg::new("."), &argv[2])
    } else {
        (path_arg(&argv[2])?, &argv[3])
    };
    let paths = targets(cx, key, &p, |v| matches!(v, JVal::Str(_)))?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "not a string"));
    }
    let mut res = paths.iter().map(|_| None).collect::<Vec<_>>();
    if any(&paths) {
        let add = match parse_json(raw)? {
            JVal::Str(s) => s,
            _ => return Err(err_expected("string", text(raw)?)),
        };
        res = apply(cx, key, &paths, |v| {
            if let JVal::Str(s) = v {
                s.push_str(&add);
                s.len()
            } else {
                0
            }
        });
        changed(cx, key, "json.strappend");
    }
    Ok(if p.legacy { last_int(res) } else { ints(res) })
}

/// JSON.STRLEN key [path]
pub fn strlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let doc = read_doc(cx, &argv[1])?;
    if p.legacy {
        let Some(doc) = doc else {
            return Ok(Reply::Nil);
        };
        return match first(doc, &p)? {
            JVal::Str(s) => Ok(Reply::Int(s.len() as i64)),
            other => Err(err_expected("string", other.type_name())),
        };
    }
    let doc = doc.ok_or_else(|| Reply::err(ERR_NO_KEY))?;
    let vals = found(doc, &p, |v| matches!(v, JVal::Str(_)))?;
    Ok(ints(
        vals.into_iter()
            .map(|v| match v {
                Some(JVal::Str(s)) => Some(s.len()),
                _ => None,
            })
            .collect(),
    ))
}

// ----- arrays -----

fn is_arr(v: &JVal) -> bool {
    matches!(v, JVal::Arr(_))
}

fn values(args: &[Bytes]) -> Result<Vec<JVal>, Reply> {
    args.iter().map(parse_json).collect()
}

/// Refuses inserting `vals` into the arrays at `paths` when that would nest the
/// document deeper than [`json::MAX_DEPTH`].
fn check_depth(paths: &[Option<Vec<PathElem>>], vals: &[JVal]) -> Result<(), Reply> {
    let d = vals.iter().map(JVal::depth).max().unwrap_or(0);
    if paths
        .iter()
        .flatten()
        .any(|p| p.len() + 1 + d > json::MAX_DEPTH)
    {
        return Err(Reply::err(json::ERR_TOO_DEEP));
    }
    Ok(())
}

/// JSON.ARRAPPEND key path value [value ...]
pub fn arrappend(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let vals = values(&argv[3..])?;
    let paths = targets(cx, key, &p, is_arr)?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.original, "not an array"));
    }
    check_depth(&paths, &vals)?;
    let res = apply(cx, key, &paths, |v| {
        if let JVal::Arr(a) = v {
            a.extend(vals.iter().cloned());
            a.len()
        } else {
            0
        }
    });
    if any(&paths) {
        changed(cx, key, "json.arrappend");
    }
    Ok(if p.legacy { last_int(res) } else { ints(res) })
}

/// RedisJSON's `normalize_arr_start_index`.
fn start_index(start: i64, len: i64) -> i64 {
    if start < 0 {
        0.max(len + start)
    } else {
        start.min(len - 1)
    }
}

/// JSON.ARRINDEX key path value [start [stop]]: `stop` 0 means the end; the search
/// covers `[start, stop)`.
pub fn arrindex(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 6 {
        return Err(wrong_arity("json.arrindex"));
    }
    let p = path_arg(&argv[2])?;
    let start = argv.get(4).map_or(Ok(0), int_arg)?;
    let stop = argv.get(5).map_or(Ok(0), int_arg)?;
    let doc = read_doc(cx, &argv[1])?;
    let needle = parse_json(&argv[3])?;
    let Some(doc) = doc else {
        return Err(err_path(&p.original));
    };
    let index_in = |v: &JVal| -> Option<i64> {
        let JVal::Arr(a) = v else { return None };
        let len = a.len() as i64;
        if len == 0 {
            return Some(-1);
        }
        let s = start_index(start, len);
        let e = match stop {
            0 => len,
            e if e < 0 => 0.max(len + e),
            e => e.min(len),
        };
        Some(
            (s..e.max(s))
                .find(|&i| a[i as usize].json_eq(&needle))
                .unwrap_or(-1),
        )
    };
    if p.legacy {
        let v = first(doc, &p)?;
        return match index_in(v) {
            Some(i) => Ok(Reply::Int(i)),
            None => Err(err_expected("array", v.type_name())),
        };
    }
    Ok(Reply::Array(
        super::json::all(doc, &p)?
            .into_iter()
            .map(|v| index_in(v).map_or(Reply::Nil, Reply::Int))
            .collect(),
    ))
}

/// JSON.ARRINSERT key path index value [value ...]
pub fn arrinsert(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let index = int_arg(&argv[3])?;
    let vals = values(&argv[4..])?;
    let paths = targets(cx, key, &p, is_arr)?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "not an array"));
    }
    check_depth(&paths, &vals)?;
    let at = |len: usize| -> Option<usize> {
        let len = len as i64;
        let i = if index < 0 { len + index } else { index };
        (0..=len).contains(&i).then_some(i as usize)
    };
    for v in peek_targets(cx, key, &paths)?.into_iter().flatten() {
        if let JVal::Arr(a) = v {
            if at(a.len()).is_none() {
                return Err(Reply::err("ERR index out of bounds"));
            }
        }
    }
    let res = apply(cx, key, &paths, |v| {
        if let JVal::Arr(a) = v {
            let i = at(a.len()).unwrap_or(a.len());
            a.splice(i..i, vals.iter().cloned());
            a.len()
        } else {
            0
        }
    });
    if any(&paths) {
        changed(cx, key, "json.arrinsert");
    }
    Ok(if p.legacy { last_int(res) } else { ints(res) })
}

/// JSON.ARRLEN key [path]
pub fn arrlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let Some(doc) = read_doc(cx, &argv[1])? else {
        return if p.legacy {
            Ok(Reply::Nil)
        } else {
            Err(Reply::err(ERR_NO_KEY))
        };
    };
    let vals = found(doc, &p, is_arr)?;
    let len = |v: Option<&JVal>| match v {
        Some(JVal::Arr(a)) => Some(a.len()),
        _ => None,
    };
    if p.legacy {
        return match vals.first() {
            None => Err(err_path(&p.original)),
            Some(v) => len(*v)
                .map(|n| Reply::Int(n as i64))
                .ok_or_else(|| err_path_or(&p.original, "not an array")),
        };
    }
    Ok(ints(vals.into_iter().map(len).collect()))
}

/// JSON.ARRPOP key [FORMAT STRINGS|EXPAND1|EXPAND] [path [index]]: the index
/// defaults to -1 (the last element; without a path too), an index that is not an
/// integer counts as -1, as in RedisJSON; out-of-range indexes are clamped. FORMAT
/// (RESP3 only) answers EXPAND1/EXPAND as native RESP3 values.
pub fn arrpop(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let mut rest = 2;
    let mut expand = None;
    if argv.len() > 3 && super::is(&argv[2], "FORMAT") {
        expand = match argv[3].as_ref() {
            b"STRINGS" => None,
            b"EXPAND1" => Some(false),
            b"EXPAND" => Some(true),
            _ => return Err(Reply::err("ERR wrong reply format")),
        };
        if !cx.resp3 {
            return Err(Reply::err("ERR FORMAT argument is not supported on RESP2"));
        }
        rest = 4;
    }
    let (p, index) = match argv.get(rest) {
        None => (PathArg::new("."), i64::MAX),
        Some(b) => (
            path_arg(b)?,
            argv.get(rest + 1)
                .and_then(|i| crate::num::parse_i64(i))
                .unwrap_or(-1),
        ),
    };
    if p.legacy && expand.is_some() {
        return Err(Reply::err(
            "Legacy paths are supported only with FORMAT STRINGS",
        ));
    }
    let paths = targets(cx, key, &p, is_arr)?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "not an array"));
    }
    let res = apply(cx, key, &paths, |v| match v {
        JVal::Arr(a) if !a.is_empty() => {
            let i = start_index(index, a.len() as i64) as usize;
            Some(a.remove(i))
        }
        _ => None,
    });
    let popped = res.iter().any(|r| matches!(r, Some(Some(_))));
    if popped || (p.legacy && any(&paths)) {
        changed(cx, key, "json.arrpop");
    }
    let text = |v: Option<Option<JVal>>| match (v.flatten(), expand) {
        (Some(v), Some(full)) => super::json::to_resp3(&v, full, &json::Format::default()),
        (Some(v), None) => Reply::Bulk(Bytes::from(v.to_json())),
        (None, _) => Reply::Nil,
    };
    if p.legacy {
        return Ok(res
            .into_iter()
            .flatten()
            .last()
            .map_or(Reply::Nil, |v| text(Some(v))));
    }
    Ok(Reply::Array(res.into_iter().map(text).collect()))
}

/// RedisJSON's `ArrayIndex::normalize` (ARRTRIM).
fn trim_index(i: i64, len: i64) -> i64 {
    if i < 0 {
        len - len.min(i.saturating_neg())
    } else if len > 0 {
        (len - 1).min(i)
    } else {
        0
    }
}

/// JSON.ARRTRIM key path start stop
pub fn arrtrim(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let start = int_arg(&argv[3])?;
    let stop = int_arg(&argv[4])?;
    let paths = targets(cx, key, &p, is_arr)?;
    if p.legacy && !any(&paths) {
        return Err(err_path_or(&p.fixed, "not an array"));
    }
    let res = apply(cx, key, &paths, |v| {
        let JVal::Arr(a) = v else { return 0 };
        let len = a.len() as i64;
        let e = trim_index(stop, len);
        let s = if start < 0 || start < len {
            trim_index(start, len)
        } else {
            e + 1
        };
        if s > e || len == 0 {
            a.clear();
        } else {
            a.truncate(e as usize + 1);
            a.drain(..s as usize);
        }
        a.len()
    });
    if any(&paths) {
        changed(cx, key, "json.arrtrim");
    }
    Ok(if p.legacy { last_int(res) } else { ints(res) })
}

// ----- objects -----

fn keys_of(v: &JVal) -> Reply {
    match v {
        JVal::Obj(o) => Reply::Array(o.keys().map(|k| Reply::bulk_str(k)).collect()),
        _ => Reply::Nil,
    }
}

/// JSON.OBJKEYS key [path]
pub fn objkeys(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let doc = read_doc(cx, &argv[1])?;
    if p.legacy {
        let Some(doc) = doc else {
            return Ok(Reply::Nil);
        };
        return match first(doc, &p) {
            Err(_) => Ok(Reply::Nil),
            Ok(v @ JVal::Obj(_)) => Ok(keys_of(v)),
            Ok(_) => Err(err_path_or(&p.fixed, "not an object")),
        };
    }
    let doc = doc.ok_or_else(|| Reply::err(ERR_NO_KEY))?;
    Ok(Reply::Array(
        super::json::all(doc, &p)?
            .into_iter()
            .map(keys_of)
            .collect(),
    ))
}

/// JSON.OBJLEN key [path]
pub fn objlen(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let doc = read_doc(cx, &argv[1])?;
    if p.legacy {
        let Some(doc) = doc else {
            return Ok(Reply::Nil);
        };
        return match first(doc, &p) {
            Err(_) => Ok(Reply::Nil),
            Ok(JVal::Obj(o)) => Ok(Reply::Int(o.len() as i64)),
            Ok(v) => Err(err_expected("object", v.type_name())),
        };
    }
    let Some(doc) = doc else {
        return Err(err_path_or(&p.fixed, "not an object"));
    };
    Ok(ints(
        super::json::all(doc, &p)?
            .into_iter()
            .map(|v| match v {
                JVal::Obj(o) => Some(o.len()),
                _ => None,
            })
            .collect(),
    ))
}

/// JSON.CLEAR key [path ...]: empties arrays and objects and zeroes numbers; the
/// count of values changed (already empty or zero ones are not counted). Only the
/// first path is used, as in RedisJSON.
pub fn clear(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_or_root(argv, 2)?;
    let paths = targets(cx, key, &p, |v| match v {
        JVal::Arr(a) => !a.is_empty(),
        JVal::Obj(o) => !o.is_empty(),
        JVal::Int(i) => *i != 0,
        JVal::Float(f) => *f != 0.0,
        _ => false,
    })?;
    let res = apply(cx, key, &paths, |v| match v {
        JVal::Arr(a) => a.clear(),
        JVal::Obj(o) => o.clear(),
        other => *other = JVal::Int(0),
    });
    let n = res.iter().flatten().count();
    if n > 0 {
        changed(cx, key, "json.clear");
    }
    Ok(Reply::Int(n as i64))
}
