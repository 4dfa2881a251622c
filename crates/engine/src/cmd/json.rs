//! The JSON commands (RedisJSON 2.6, built in; the JSON value type is `crate::json`).
//!
//! Each command follows RedisJSON 2.6.9's `commands.rs`: the same argument parsing,
//! the same reply shapes (a JSONPath `$...` answers one element per match, a legacy
//! path `.a.b` answers the first match alone), the same error texts, and one
//! keyspace event of the module class (`d`) named after the command (`json.set`,
//! `json.del`, ...), raised only when the document changed. Where RedisJSON's
//! documentation and code are silent or its behaviour is an accident of its
//! implementation, the function says what redsnap does.
//!
//! Table rows: RedisJSON registers its commands with arity -1 and flags `write`,
//! `readonly`, `deny-oom`; redsnap's rows carry the minimum argument counts (so a
//! short command fails in dispatch with Redis's arity error), the same flags and
//! key positions, except JSON.MGET whose keys are 1..-2 (RedisJSON declares only
//! the first, which leaves the others out of ACL key checks and WATCH-like uses).
//! ACL categories: `@json` (what RedisJSON declares on Redis 7.2+) plus `@read` or
//! `@write` and `@slow` derived from the flags (`json/cmdmeta.txt`).

use super::json_ops;
use crate::json::{self, compile, Format, JVal, PathArg, PathElem, Query};
use crate::notify;
use crate::reply::{wrong_arity, Reply};
use crate::store::{CmdResult, Cx};
use crate::table::{cmd, flags::*, CommandSpec};
use crate::value::Value;
use bytes::Bytes;

const G: &str = "module";

pub const COMMANDS: &[CommandSpec] = &[
    cmd("json.del", -2, WRITE, 1, 1, 1, G, Some(json_del)),
    cmd("json.forget", -2, WRITE, 1, 1, 1, G, Some(json_del)),
    cmd("json.get", -2, READONLY, 1, 1, 1, G, Some(json_get)),
    cmd("json.mget", -3, READONLY, 1, -2, 1, G, Some(json_mget)),
    cmd("json.set", -4, WRITE | DENYOOM, 1, 1, 1, G, Some(json_set)),
    cmd(
        "json.mset",
        -4,
        WRITE | DENYOOM,
        1,
        -1,
        3,
        G,
        Some(json_mset),
    ),
    cmd(
        "json.merge",
        -4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        G,
        Some(json_merge),
    ),
    cmd("json.type", -2, READONLY, 1, 1, 1, G, Some(json_type)),
    cmd(
        "json.numincrby",
        -4,
        WRITE,
        1,
        1,
        1,
        G,
        Some(json_ops::numincrby),
    ),
    cmd(
        "json.nummultby",
        -4,
        WRITE,
        1,
        1,
        1,
        G,
        Some(json_ops::nummultby),
    ),
    cmd(
        "json.toggle",
        -3,
        WRITE | DENYOOM,
        1,
        1,
        1,
        G,
        Some(json_ops::toggle),
    ),
    cmd(
        "json.strappend",
        -3,
        WRITE | DENYOOM,
        1,
        1,
        1,
        G,
        Some(json_ops::strappend),
    ),
    cmd(
        "json.strlen",
        -2,
        READONLY,
        1,
        1,
        1,
        G,
        Some(json_ops::strlen),
    ),
    cmd(
        "json.arrappend",
        -4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        G,
        Some(json_ops::arrappend),
    ),
    cmd(
        "json.arrindex",
        -4,
        READONLY,
        1,
        1,
        1,
        G,
        Some(json_ops::arrindex),
    ),
    cmd(
        "json.arrinsert",
        -5,
        WRITE | DENYOOM,
        1,
        1,
        1,
        G,
        Some(json_ops::arrinsert),
    ),
    cmd(
        "json.arrlen",
        -2,
        READONLY,
        1,
        1,
        1,
        G,
        Some(json_ops::arrlen),
    ),
    cmd("json.arrpop", -2, WRITE, 1, 1, 1, G, Some(json_ops::arrpop)),
    cmd(
        "json.arrtrim",
        -5,
        WRITE,
        1,
        1,
        1,
        G,
        Some(json_ops::arrtrim),
    ),
    cmd(
        "json.objkeys",
        -2,
        READONLY,
        1,
        1,
        1,
        G,
        Some(json_ops::objkeys),
    ),
    cmd(
        "json.objlen",
        -2,
        READONLY,
        1,
        1,
        1,
        G,
        Some(json_ops::objlen),
    ),
    cmd("json.clear", -2, WRITE, 1, 1, 1, G, Some(json_ops::clear)),
    cmd("json.debug", -2, READONLY, 2, 2, 1, G, Some(json_debug)),
    cmd("json.resp", -2, READONLY, 1, 1, 1, G, Some(json_resp)),
];

// ----- errors (RedisJSON's texts) -----

pub(crate) const ERR_NO_KEY: &str =
    "ERR could not perform this operation on a key that doesn't exist";
const ERR_NEW_AT_ROOT: &str = "ERR new objects must be created at the root";

pub(crate) fn err_path(p: &str) -> Reply {
    Reply::error(format!("ERR Path '{p}' does not exist"))
}

pub(crate) fn err_path_or(p: &str, or: &str) -> Reply {
    Reply::error(format!("ERR Path '{p}' does not exist or {or}"))
}

pub(crate) fn err_expected(expected: &str, found: &str) -> Reply {
    Reply::error(format!(
        "WRONGTYPE wrong type of path value - expected {expected} but found {found}"
    ))
}

// ----- helpers shared with json_ops -----

/// An argument as text (RedisJSON takes every argument as UTF-8).
pub(crate) fn text(b: &Bytes) -> Result<&str, Reply> {
    std::str::from_utf8(b).map_err(|_| Reply::err("ERR Couldn't parse as UTF-8 string"))
}

pub(crate) fn path_arg(b: &Bytes) -> Result<PathArg, Reply> {
    Ok(PathArg::new(text(b)?))
}

/// The path argument at `i`, or the legacy root when absent.
pub(crate) fn path_or_root(argv: &[Bytes], i: usize) -> Result<PathArg, Reply> {
    match argv.get(i) {
        Some(b) => path_arg(b),
        None => Ok(PathArg::new(".")),
    }
}

pub(crate) fn query(p: &PathArg) -> Result<Query, Reply> {
    compile(&p.fixed).map_err(|e| Reply::error(e.to_string()))
}

/// A JSON argument (serde_json's message on malformed text, as RedisJSON).
pub(crate) fn parse_json(b: &Bytes) -> Result<JVal, Reply> {
    JVal::parse(b).map_err(Reply::error)
}

/// `Couldn't parse as integer`, redis-module-rs's text for a bad integer argument.
pub(crate) fn int_arg(b: &Bytes) -> Result<i64, Reply> {
    crate::num::parse_i64(b).ok_or_else(|| Reply::err("Couldn't parse as integer"))
}

/// The document at `key` for a read (counts a hit or miss); WRONGTYPE for another type.
pub(crate) fn read_doc<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<&'a JVal>, Reply> {
    match cx.lookup_read(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Json(j)) => Ok(Some(j)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// The document at `key` for a write, not yet copied (WRONGTYPE for another type).
pub(crate) fn peek_doc<'a>(cx: &'a mut Cx, key: &Bytes) -> Result<Option<&'a JVal>, Reply> {
    match cx.entry(key).map(|e| e.value()) {
        None => Ok(None),
        Some(Value::Json(j)) => Ok(Some(j)),
        Some(_) => Err(Reply::wrongtype()),
    }
}

/// The document at `key`, writable (copied first if a snapshot shares it).
pub(crate) fn doc_mut<'a>(cx: &'a mut Cx, key: &Bytes) -> Option<&'a mut JVal> {
    cx.touch(key);
    match cx.value_mut(key) {
        Some(Value::Json(j)) => Some(j),
        _ => None,
    }
}

/// Records a change of the document at `key`: dirty, touched, and the module event.
pub(crate) fn changed(cx: &mut Cx, key: &Bytes, event: &'static str) {
    cx.modified(key);
    cx.notify(notify::MODULE, event, key);
}

/// Every match of `q` with its path, `None` where `pred` refuses the value
/// (RedisJSON's `find_all_paths`).
pub(crate) fn match_paths(
    doc: &JVal,
    q: &Query,
    pred: impl Fn(&JVal) -> bool,
) -> Vec<Option<Vec<PathElem>>> {
    q.select_paths(doc)
        .into_iter()
        .map(|(p, v)| pred(v).then_some(p))
        .collect()
}

/// The first match of a legacy path (`ERR Path '$...' does not exist` if none).
pub(crate) fn first<'a>(doc: &'a JVal, p: &PathArg) -> Result<&'a JVal, Reply> {
    if p.is_root() {
        return Ok(doc);
    }
    query(p)?
        .select(doc)
        .into_iter()
        .next()
        .ok_or_else(|| err_path(&p.fixed))
}

/// Every match (the root without compiling when the path is `$`).
pub(crate) fn all<'a>(doc: &'a JVal, p: &PathArg) -> Result<Vec<&'a JVal>, Reply> {
    if p.is_root() {
        return Ok(vec![doc]);
    }
    Ok(query(p)?.select(doc))
}

/// Values as one JSON array text.
fn array_text(vals: &[&JVal], fmt: &Format) -> Bytes {
    let mut out = Vec::new();
    if fmt.is_plain() {
        out.push(b'[');
        for (i, v) in vals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            v.write_json(&mut out);
        }
        out.push(b']');
    } else {
        json::value::write_array(vals.iter().copied(), fmt, &mut out);
    }
    Bytes::from(out)
}

fn value_text(v: &JVal, fmt: &Format) -> Bytes {
    let mut out = Vec::new();
    json::value::write_formatted(v, fmt, &mut out);
    Bytes::from(out)
}

// ----- JSON.SET / JSON.MERGE / JSON.MSET -----

#[derive(Debug, Clone, Copy, PartialEq)]
enum SetOpt {
    None,
    Nx,
    Xx,
}

/// Where a write lands: an existing value, or a new member of an object.
enum Update {
    Set(Vec<PathElem>),
    Add(Vec<PathElem>, String),
}

/// RedisJSON's `find_paths` for JSON.SET: the existing matches (unless NX), else
/// (unless XX) the member a static path would create.
fn find_updates(doc: &JVal, p: &PathArg, opt: SetOpt) -> Result<Vec<Update>, Reply> {
    let q = query(p)?;
    if opt != SetOpt::Nx {
        let found = q.select_paths(doc);
        if !found.is_empty() {
            return Ok(found.into_iter().map(|(p, _)| Update::Set(p)).collect());
        }
    }
    if opt == SetOpt::Xx {
        return Ok(Vec::new());
    }
    if !q.is_static() {
        return Err(Reply::err("Err wrong static path"));
    }
    let mut parent = q.clone();
    match parent.segs.pop() {
        None => Err(Reply::err("Err path must end with object key to set")),
        Some(json::path::Seg::Key(k)) => {
            if parent.segs.is_empty() {
                return Ok(vec![Update::Add(Vec::new(), k)]);
            }
            Ok(parent
                .select_paths(doc)
                .into_iter()
                .map(|(p, _)| Update::Add(p, k.clone()))
                .collect())
        }
        Some(_) => {
            if q.select(doc).is_empty() {
                Err(Reply::err("ERR array index out of range"))
            } else {
                Ok(Vec::new())
            }
        }
    }
}

/// Refuses updates that would nest the document deeper than [`json::MAX_DEPTH`].
fn check_depth(updates: &[Update], val: &JVal) -> Result<(), Reply> {
    let d = val.depth();
    let too_deep = updates.iter().any(|u| match u {
        Update::Set(p) => p.len() + d > json::MAX_DEPTH,
        Update::Add(p, _) => p.len() + 1 + d > json::MAX_DEPTH,
    });
    if too_deep {
        return Err(Reply::err(json::ERR_TOO_DEEP));
    }
    Ok(())
}

/// Applies updates; true when any landed. `merge` merges instead of replacing.
fn apply_updates(doc: &mut JVal, updates: Vec<Update>, val: &JVal, merge: bool) -> bool {
    let mut updated = false;
    for u in updates {
        match u {
            // Merging `null` into a member deletes it (JSON.MERGE's documented example:
            // `JSON.MERGE doc $.a null` leaves `{}`).
            Update::Set(path) if merge && matches!(val, JVal::Null) && !path.is_empty() => {
                updated |= json::remove(doc, &path);
            }
            Update::Set(path) => {
                if let Some(slot) = json::get_mut(doc, &path) {
                    if merge {
                        slot.merge(val);
                    } else {
                        *slot = val.clone();
                    }
                    updated = true;
                }
            }
            Update::Add(path, k) => {
                if let Some(JVal::Obj(o)) = json::get_mut(doc, &path) {
                    if !o.contains_key(&k) {
                        o.insert(k, val.clone());
                        updated = true;
                    }
                }
            }
        }
    }
    updated
}

/// Stores a new document at an absent key.
fn create(cx: &mut Cx, key: &Bytes, doc: JVal) {
    cx.set_value(&crate::db::own(key), Value::Json(Box::new(doc)), None);
}

/// Replaces the document (keeps the key's TTL, as RedisJSON's `set_root` does).
fn replace_root(cx: &mut Cx, key: &Bytes, doc: JVal) {
    if let Some(d) = doc_mut(cx, key) {
        *d = doc;
    }
}

/// JSON.SET key path value [NX | XX] [FORMAT fmt]
fn json_set(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let mut opt = SetOpt::None;
    let mut i = 4;
    while i < argv.len() {
        let a = &argv[i];
        if super::is(a, "NX") && opt == SetOpt::None {
            opt = SetOpt::Nx;
        } else if super::is(a, "XX") && opt == SetOpt::None {
            opt = SetOpt::Xx;
        } else if super::is(a, "FORMAT") {
            i += 1;
            format_arg(argv.get(i))?;
        } else {
            return Err(Reply::err(crate::reply::ERR_SYNTAX));
        }
        i += 1;
    }
    let exists = peek_doc(cx, key)?.is_some();
    let val = parse_json(&argv[3])?;
    if !exists {
        if opt == SetOpt::Xx {
            return Ok(Reply::Nil);
        }
        if !p.is_root() {
            return Err(Reply::err(ERR_NEW_AT_ROOT));
        }
        create(cx, key, val);
        changed(cx, key, "json.set");
        return Ok(Reply::ok());
    }
    if p.is_root() {
        if opt == SetOpt::Nx {
            return Ok(Reply::Nil);
        }
        replace_root(cx, key, val);
        changed(cx, key, "json.set");
        return Ok(Reply::ok());
    }
    let updates = match peek_doc(cx, key)? {
        Some(doc) => find_updates(doc, &p, opt)?,
        None => Vec::new(),
    };
    if updates.is_empty() {
        return Ok(Reply::Nil);
    }
    check_depth(&updates, &val)?;
    let done = doc_mut(cx, key).is_some_and(|d| apply_updates(d, updates, &val, false));
    if !done {
        return Ok(Reply::Nil);
    }
    changed(cx, key, "json.set");
    Ok(Reply::ok())
}

/// The argument of FORMAT in JSON.SET / JSON.MERGE: `JSON` or `STRING` (RedisJSON's
/// names, case-sensitive); `BSON` is refused (redsnap does not read BSON).
fn format_arg(b: Option<&Bytes>) -> Result<(), Reply> {
    match b.map(|b| b.as_ref()) {
        Some(b"JSON") | Some(b"STRING") => Ok(()),
        Some(_) => Err(Reply::err("ERR wrong format")),
        None => Err(Reply::err(crate::reply::ERR_SYNTAX)),
    }
}

/// JSON.MERGE key path value [FORMAT fmt]
fn json_merge(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_arg(&argv[2])?;
    let mut i = 4;
    while i < argv.len() {
        if super::is(&argv[i], "FORMAT") {
            i += 1;
            format_arg(argv.get(i))?;
        } else {
            return Err(Reply::err(crate::reply::ERR_SYNTAX));
        }
        i += 1;
    }
    let exists = peek_doc(cx, key)?.is_some();
    let val = parse_json(&argv[3])?;
    if !exists {
        if !p.is_root() {
            return Err(Reply::err(ERR_NEW_AT_ROOT));
        }
        create(cx, key, val);
        changed(cx, key, "json.merge");
        return Ok(Reply::ok());
    }
    if p.is_root() {
        if let Some(d) = doc_mut(cx, key) {
            d.merge(&val);
        }
        changed(cx, key, "json.merge");
        return Ok(Reply::ok());
    }
    let updates = match peek_doc(cx, key)? {
        Some(doc) => find_updates(doc, &p, SetOpt::None)?,
        None => Vec::new(),
    };
    if updates.is_empty() {
        return Ok(Reply::Nil);
    }
    check_depth(&updates, &val)?;
    let done = doc_mut(cx, key).is_some_and(|d| apply_updates(d, updates, &val, true));
    if !done {
        return Ok(Reply::Nil);
    }
    changed(cx, key, "json.merge");
    Ok(Reply::ok())
}

/// JSON.MSET key path value [key path value ...]: every triple is checked (key
/// type, path, JSON) before any is applied, so a bad triple changes nothing. The
/// paths of a key named twice are found against the document as the earlier
/// triples left it (RedisJSON finds them all against the original document).
fn json_mset(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    if !(argv.len() - 1).is_multiple_of(3) {
        return Err(wrong_arity("json.mset"));
    }
    let mut triples = Vec::with_capacity(argv.len() / 3);
    for t in argv[1..].chunks_exact(3) {
        let p = path_arg(&t[1])?;
        match peek_doc(cx, &t[0])? {
            None if !p.is_root() => return Err(Reply::err(ERR_NEW_AT_ROOT)),
            Some(doc) if !p.is_root() => {
                let updates = find_updates(doc, &p, SetOpt::None)?;
                check_depth(&updates, &parse_json(&t[2])?)?;
            }
            _ => {}
        }
        triples.push((&t[0], p, parse_json(&t[2])?));
    }
    for (key, p, val) in triples {
        let updated = if p.is_root() {
            if peek_doc(cx, key)?.is_some() {
                replace_root(cx, key, val);
            } else {
                create(cx, key, val);
            }
            true
        } else {
            let updates = match peek_doc(cx, key)? {
                Some(doc) => find_updates(doc, &p, SetOpt::None)?,
                None => Vec::new(),
            };
            !updates.is_empty()
                && doc_mut(cx, key).is_some_and(|d| apply_updates(d, updates, &val, false))
        };
        if updated {
            changed(cx, key, "json.mset");
        }
    }
    Ok(Reply::ok())
}

// ----- JSON.GET / JSON.MGET / JSON.RESP / JSON.TYPE -----

/// JSON.GET's FORMAT under RESP3 (RedisJSON 2.6): STRING is the RESP2 answer,
/// EXPAND1/EXPAND answer native RESP3 values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ReplyFormat {
    String,
    Expand1,
    Expand,
}

/// JSON.GET key [INDENT s] [NEWLINE s] [SPACE s] [NOESCAPE] [FORMAT f] [path ...]
fn json_get(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let mut fmt = Format::default();
    let mut rfmt = ReplyFormat::String;
    let mut paths: Vec<PathArg> = Vec::new();
    let mut i = 2;
    let next = |i: usize| -> Result<String, Reply> {
        argv.get(i)
            .map(|b| text(b).map(str::to_owned))
            .unwrap_or_else(|| Err(wrong_arity("json.get")))
    };
    while i < argv.len() {
        let a = &argv[i];
        if super::is(a, "INDENT") {
            i += 1;
            fmt.indent = Some(next(i)?);
        } else if super::is(a, "NEWLINE") {
            i += 1;
            fmt.newline = Some(next(i)?);
        } else if super::is(a, "SPACE") {
            i += 1;
            fmt.space = Some(next(i)?);
        } else if super::is(a, "NOESCAPE") {
            // Accepted and ignored, as RedisJSON (compatibility with ReJSON 1.0).
        } else if super::is(a, "FORMAT") {
            if !cx.resp3 && paths.is_empty() {
                return Err(Reply::err("ERR FORMAT argument is not supported on RESP2"));
            }
            i += 1;
            rfmt = match next(i)?.as_str() {
                "STRING" => ReplyFormat::String,
                "EXPAND1" => ReplyFormat::Expand1,
                "EXPAND" => ReplyFormat::Expand,
                _ => return Err(Reply::err("ERR wrong reply format")),
            };
        } else {
            paths.push(path_arg(a)?);
        }
        i += 1;
    }
    if paths.is_empty() {
        paths.push(PathArg::new("."));
    }
    let resp3_native = cx.resp3 && rfmt != ReplyFormat::String;
    let Some(doc) = read_doc(cx, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    if resp3_native {
        let expand = rfmt == ReplyFormat::Expand;
        return Ok(Reply::Array(
            paths
                .iter()
                .map(|p| {
                    let vals = all(doc, p).unwrap_or_default();
                    Reply::Array(
                        vals.into_iter()
                            .map(|v| to_resp3(v, expand, &fmt))
                            .collect(),
                    )
                })
                .collect(),
        ));
    }
    let legacy = paths.iter().all(|p| p.legacy);
    if paths.len() == 1 {
        let p = &paths[0];
        return Ok(Reply::Bulk(if legacy {
            value_text(first(doc, p)?, &fmt)
        } else {
            array_text(&all(doc, p)?, &fmt)
        }));
    }
    // Several paths: one JSON object keyed by the paths as given. A path that does
    // not compile is left out, as RedisJSON does; the members are in argument order
    // (RedisJSON's come from a hash map, in no defined order).
    let mut obj = json::value::Map::new();
    for p in &paths {
        let Ok(q) = query(p) else { continue };
        let found = q.select(doc);
        let v = if legacy {
            match found.first() {
                Some(v) => (*v).clone(),
                None => return Err(err_path(&p.original)),
            }
        } else {
            JVal::Arr(found.into_iter().cloned().collect())
        };
        obj.insert(p.original.clone(), v);
    }
    Ok(Reply::Bulk(value_text(&JVal::Obj(Box::new(obj)), &fmt)))
}

/// A value as a RESP3 reply (JSON.GET FORMAT EXPAND1 / EXPAND).
pub(crate) fn to_resp3(v: &JVal, expand: bool, fmt: &Format) -> Reply {
    match v {
        JVal::Null => Reply::Nil,
        JVal::Bool(b) => Reply::Bool(*b),
        JVal::Int(i) => Reply::Int(*i),
        JVal::Float(f) => Reply::Double(*f),
        JVal::Str(s) if expand => Reply::bulk_str(s),
        JVal::Arr(a) if expand => Reply::Array(a.iter().map(|e| to_resp3(e, true, fmt)).collect()),
        JVal::Obj(o) if expand => Reply::Map(
            o.iter()
                .map(|(k, e)| (Reply::bulk_str(k), to_resp3(e, true, fmt)))
                .collect(),
        ),
        other => Reply::Bulk(value_text(other, fmt)),
    }
}

/// JSON.MGET key [key ...] path: nil for a missing key, a key of another type or a
/// path without a match (RedisJSON answers nil there too, not WRONGTYPE).
fn json_mget(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_arg(&argv[argv.len() - 1])?;
    let q = if p.is_root() { None } else { query(&p).ok() };
    let compiles = p.is_root() || q.is_some();
    let fmt = Format::default();
    let mut out = Vec::with_capacity(argv.len() - 2);
    for key in &argv[1..argv.len() - 1] {
        let doc = match read_doc(cx, key) {
            Ok(Some(d)) if compiles => d,
            _ => {
                out.push(Reply::Nil);
                continue;
            }
        };
        let found = match &q {
            Some(q) => q.select(doc),
            None => vec![doc],
        };
        out.push(if p.legacy {
            found
                .first()
                .map_or(Reply::Nil, |v| Reply::Bulk(value_text(v, &fmt)))
        } else {
            Reply::Bulk(array_text(&found, &fmt))
        });
    }
    Ok(Reply::Array(out))
}

/// JSON.RESP key [path]: the document as RESP (`[` and `{` lead arrays and objects,
/// booleans are the simple strings `true`/`false`, doubles are RESP doubles).
fn json_resp(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let Some(doc) = read_doc(cx, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    if p.legacy {
        return Ok(resp_value(first(doc, &p)?));
    }
    Ok(Reply::Array(
        all(doc, &p)?.into_iter().map(resp_value).collect(),
    ))
}

fn resp_value(v: &JVal) -> Reply {
    match v {
        JVal::Null => Reply::Nil,
        JVal::Bool(true) => Reply::simple("true"),
        JVal::Bool(false) => Reply::simple("false"),
        JVal::Int(i) => Reply::Int(*i),
        JVal::Float(f) => Reply::Double(*f),
        JVal::Str(s) => Reply::bulk_str(s),
        JVal::Arr(a) => {
            let mut r = Vec::with_capacity(a.len() + 1);
            r.push(Reply::simple("["));
            r.extend(a.iter().map(resp_value));
            Reply::Array(r)
        }
        JVal::Obj(o) => {
            let mut r = Vec::with_capacity(o.len() * 2 + 1);
            r.push(Reply::simple("{"));
            for (k, e) in o.iter() {
                r.push(Reply::bulk_str(k));
                r.push(resp_value(e));
            }
            Reply::Array(r)
        }
    }
}

/// JSON.TYPE key [path]
fn json_type(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let p = path_or_root(argv, 2)?;
    let resp3 = cx.resp3;
    let r = match read_doc(cx, &argv[1])? {
        None => Reply::Nil,
        Some(doc) if p.legacy => {
            first(doc, &p).map_or(Reply::Nil, |v| Reply::bulk_str(v.type_name()))
        }
        Some(doc) => Reply::Array(
            all(doc, &p)?
                .into_iter()
                .map(|v| Reply::bulk_str(v.type_name()))
                .collect(),
        ),
    };
    // Under RESP3 RedisJSON wraps the answer in one more array.
    Ok(if resp3 { Reply::Array(vec![r]) } else { r })
}

// ----- JSON.DEL / JSON.DEBUG -----

/// JSON.DEL key [path] (and JSON.FORGET): the number of values removed. Deleting the
/// root deletes the key, with the `json.del` event alone (RedisJSON removes it
/// through the module API, which raises no generic `del`).
fn json_del(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let p = path_or_root(argv, 2)?;
    let Some(doc) = peek_doc(cx, key)? else {
        return Ok(Reply::Int(0));
    };
    if p.is_root() {
        cx.db().remove(key);
        changed(cx, key, "json.del");
        return Ok(Reply::Int(1));
    }
    let mut paths: Vec<Vec<PathElem>> = query(&p)?
        .select_paths(doc)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if paths.is_empty() {
        return Ok(Reply::Int(0));
    }
    json::order_for_deletion(&mut paths);
    let mut n = 0;
    if let Some(d) = doc_mut(cx, key) {
        for path in &paths {
            if path.is_empty() {
                // `$..` style paths can match the root itself: nothing to remove it from.
                continue;
            }
            if json::remove(d, path) {
                n += 1;
            }
        }
    }
    if n > 0 {
        changed(cx, key, "json.del");
    }
    Ok(Reply::Int(n))
}

/// JSON.DEBUG MEMORY key [path] | JSON.DEBUG HELP
fn json_debug(cx: &mut Cx, argv: &[Bytes]) -> CmdResult {
    if super::is(&argv[1], "HELP") {
        return Ok(Reply::Array(vec![
            Reply::bulk_str("MEMORY <key> [path] - reports memory usage"),
            Reply::bulk_str("HELP                - this message"),
        ]));
    }
    if !super::is(&argv[1], "MEMORY") {
        return Err(Reply::err("ERR unknown subcommand - try `JSON.DEBUG HELP`"));
    }
    let Some(key) = argv.get(2) else {
        return Err(wrong_arity("json.debug"));
    };
    let p = path_or_root(argv, 3)?;
    let doc = read_doc(cx, key)?;
    if p.legacy {
        return Ok(Reply::Int(match doc {
            Some(d) => first(d, &p)?.debug_memory() as i64,
            None => 0,
        }));
    }
    Ok(Reply::Array(match doc {
        Some(d) => all(d, &p)?
            .into_iter()
            .map(|v| Reply::Int(v.debug_memory() as i64))
            .collect(),
        None => Vec::new(),
    }))
}
