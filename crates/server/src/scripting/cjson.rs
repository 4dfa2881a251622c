//! `cjson` (lua-cjson 2.1.0 as bundled with Redis 7.0): encode and decode in Rust.

use super::MAX_NESTING;
use mlua::{LightUserData, Lua, MultiValue, Value};
use redsnap_engine::num::fmt_g;
use std::sync::atomic::{AtomicI64, Ordering};

/// lua-cjson's settings (`cjson.encode_max_depth()` and so on), one set per Lua state
/// as in Redis: a script's change stays for the next scripts.
#[derive(Debug)]
pub(super) struct JsonConfig {
    sparse_convert: AtomicI64,
    sparse_ratio: AtomicI64,
    sparse_safe: AtomicI64,
    encode_max_depth: AtomicI64,
    decode_max_depth: AtomicI64,
    precision: AtomicI64,
    keep_buffer: AtomicI64,
    /// 0 = refuse, 1 = encode as NaN/Infinity, 2 = encode as null.
    encode_invalid: AtomicI64,
    decode_invalid: AtomicI64,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            sparse_convert: AtomicI64::new(0),
            sparse_ratio: AtomicI64::new(2),
            sparse_safe: AtomicI64::new(10),
            encode_max_depth: AtomicI64::new(1000),
            decode_max_depth: AtomicI64::new(1000),
            precision: AtomicI64::new(14),
            keep_buffer: AtomicI64::new(1),
            encode_invalid: AtomicI64::new(0),
            decode_invalid: AtomicI64::new(1),
        }
    }
}

impl JsonConfig {
    fn get(a: &AtomicI64) -> i64 {
        a.load(Ordering::Relaxed)
    }

    /// The deepest nesting decoding accepts (capped: see MAX_NESTING).
    fn decode_depth(&self) -> usize {
        Self::get(&self.decode_max_depth).clamp(1, MAX_NESTING as i64) as usize
    }
}

/// One option (`json_integer_option` / `json_enum_option`): the argument at `i` (if
/// present and not nil) sets it; returns its value.
fn int_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    name: &str,
    slot: &AtomicI64,
    (min, max): (i64, i64),
) -> Result<Value, String> {
    match args.get(i) {
        None | Some(Value::Nil) => {}
        Some(v) => {
            let Some(n) = as_number(v).or_else(|| match v {
                Value::String(s) => s.to_str().ok()?.trim().parse::<f64>().ok(),
                _ => None,
            }) else {
                return Err(format!(
                    "bad argument #{} to '{name}' (number expected, got {})",
                    i + 1,
                    lua_type_name(v)
                ));
            };
            let n = n as i64;
            if n < min || n > max {
                return Err(format!(
                    "bad argument #1 to '{name}' (expected integer between {min} and {max})"
                ));
            }
            slot.store(n, Ordering::Relaxed);
        }
    }
    let _ = lua;
    Ok(Value::Integer(slot.load(Ordering::Relaxed)))
}

fn enum_option(
    lua: &Lua,
    args: &[Value],
    name: &str,
    slot: &AtomicI64,
    options: &[&str],
) -> Result<Value, String> {
    match args.first() {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => slot.store(*b as i64, Ordering::Relaxed),
        Some(Value::String(s)) => {
            let s = s.to_string_lossy();
            match options.iter().position(|o| *o == s) {
                Some(p) => slot.store(p as i64, Ordering::Relaxed),
                None => {
                    return Err(format!(
                        "bad argument #1 to '{name}' (invalid option '{s}')"
                    ))
                }
            }
        }
        Some(v) => {
            return Err(format!(
                "bad argument #1 to '{name}' (string expected, got {})",
                lua_type_name(v)
            ))
        }
    }
    let v = slot.load(Ordering::Relaxed);
    Ok(if v <= 1 {
        Value::Boolean(v == 1)
    } else {
        Value::String(
            lua.create_string(options[v as usize])
                .map_err(|e| e.to_string())?,
        )
    })
}

/// `cjson.<name>(...)`, the configuration functions, for the prelude's shim: status 0
/// and the values, or status 2 and the message.
pub(super) fn json_config(
    lua: &Lua,
    cfg: &JsonConfig,
    args: MultiValue,
) -> mlua::Result<MultiValue> {
    let mut it = args.into_iter();
    let name = match it.next() {
        Some(Value::String(s)) => s.to_string_lossy(),
        _ => String::new(),
    };
    let args: Vec<Value> = it.collect();
    const BOOL: &[&str] = &["off", "on"];
    let nargs = if name == "encode_sparse_array" { 3 } else { 1 };
    let res: Result<Vec<Value>, String> = if args.len() > nargs {
        Err(format!(
            "bad argument #{} to '{name}' (found too many arguments)",
            nargs + 1
        ))
    } else {
        let int = |i, slot, range| int_option(lua, &args, i, &name, slot, range);
        const ANY: (i64, i64) = (1, i32::MAX as i64);
        match name.as_str() {
            "encode_sparse_array" => (|| {
                Ok(vec![
                    enum_option(lua, &args, &name, &cfg.sparse_convert, BOOL)?,
                    int(1, &cfg.sparse_ratio, (0, i32::MAX as i64))?,
                    int(2, &cfg.sparse_safe, (0, i32::MAX as i64))?,
                ])
            })(),
            "encode_max_depth" => int(0, &cfg.encode_max_depth, ANY).map(|v| vec![v]),
            "decode_max_depth" => int(0, &cfg.decode_max_depth, ANY).map(|v| vec![v]),
            "encode_number_precision" => int(0, &cfg.precision, (1, 14)).map(|v| vec![v]),
            "encode_keep_buffer" => {
                enum_option(lua, &args, &name, &cfg.keep_buffer, BOOL).map(|v| vec![v])
            }
            "encode_invalid_numbers" => enum_option(
                lua,
                &args,
                &name,
                &cfg.encode_invalid,
                &["off", "on", "null"],
            )
            .map(|v| vec![v]),
            _ => enum_option(lua, &args, &name, &cfg.decode_invalid, BOOL).map(|v| vec![v]),
        }
    };
    let mut out = Vec::new();
    match res {
        Ok(v) => {
            out.push(Value::Integer(0));
            out.extend(v);
        }
        Err(m) => {
            out.push(Value::Integer(2));
            out.push(Value::String(lua.create_string(&m)?));
        }
    }
    Ok(MultiValue::from_vec(out))
}

pub(super) fn lua_type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn json_number(n: f64, out: &mut Vec<u8>, cfg: &JsonConfig) -> Result<(), String> {
    if n.is_nan() || n.is_infinite() {
        match JsonConfig::get(&cfg.encode_invalid) {
            0 => return Err("Cannot serialise number: must not be NaN or Inf".into()),
            1 => {
                out.extend_from_slice(match n {
                    _ if n.is_nan() => b"NaN".as_slice(),
                    _ if n < 0.0 => b"-Infinity",
                    _ => b"Infinity",
                });
                return Ok(());
            }
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    let precision = JsonConfig::get(&cfg.precision).clamp(1, 14) as usize;
    out.extend_from_slice(fmt_g(n, precision).as_bytes());
    Ok(())
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

pub(super) fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

pub(super) fn json_encode(
    v: &Value,
    depth: usize,
    out: &mut Vec<u8>,
    cfg: &JsonConfig,
) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => json_number(*i as f64, out, cfg)?,
        Value::Number(n) => json_number(*n, out, cfg)?,
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            // cjson's limit (1000 levels by default); deeper recursion here would
            // risk the thread's stack, so nesting beyond MAX_NESTING (and cycles)
            // fail as the default limit would, a bit earlier.
            let max = JsonConfig::get(&cfg.encode_max_depth);
            if depth as i64 > max {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            if depth > MAX_NESTING {
                return Err(format!("Cannot serialise, excessive nesting ({})", max + 1));
            }
            // lua_array_length
            let mut max = 0f64;
            let mut items = 0f64;
            let mut is_array = true;
            for (k, _) in t.pairs::<Value, Value>().flatten() {
                match as_number(&k) {
                    Some(k) if k.floor() == k && k >= 1.0 => {
                        if k > max {
                            max = k;
                        }
                        items += 1.0;
                    }
                    _ => {
                        is_array = false;
                        break;
                    }
                }
            }
            let ratio = JsonConfig::get(&cfg.sparse_ratio) as f64;
            let safe = JsonConfig::get(&cfg.sparse_safe) as f64;
            if is_array && ratio > 0.0 && max > items * ratio && max > safe {
                if JsonConfig::get(&cfg.sparse_convert) == 0 {
                    return Err("Cannot serialise table: excessively sparse array".into());
                }
                is_array = false;
            }
            if is_array && max > 0.0 {
                out.push(b'[');
                let n = max as i64;
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    json_encode(&v, depth, out, cfg)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for (k, v) in t.pairs::<Value, Value>().flatten() {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::Integer(_) | Value::Number(_) => {
                            out.push(b'"');
                            json_number(as_number(&k).unwrap_or(0.0), out, cfg)?;
                            out.extend_from_slice(b"\":");
                        }
                        Value::String(s) => {
                            json_string(&s.as_bytes(), out);
                            out.push(b':');
                        }
                        other => {
                            return Err(format!(
                                "Cannot serialise {}: table key must be a number or string",
                                lua_type_name(other)
                            ))
                        }
                    }
                    json_encode(&v, depth, out, cfg)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                lua_type_name(other)
            ))
        }
    }
    Ok(())
}

pub(super) enum JsonErr {
    Msg(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for JsonErr {
    fn from(e: mlua::Error) -> Self {
        JsonErr::Lua(e)
    }
}

#[derive(Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct JsonParser<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

impl JsonParser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
        let idx = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            0 => return (Tok::End, idx),
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, idx);
        }
        let rest = &self.data[self.pos.min(self.data.len())..];
        match c {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' if rest.starts_with(b"true") => {
                self.pos += 4;
                (Tok::Bool(true), idx)
            }
            b'f' if rest.starts_with(b"false") => {
                self.pos += 5;
                (Tok::Bool(false), idx)
            }
            b'n' if rest.starts_with(b"null") => {
                self.pos += 4;
                (Tok::Null, idx)
            }
            _ => (Tok::Error("invalid token"), idx),
        }
    }

    fn number(&mut self) -> (Tok, usize) {
        let start = self.pos;
        let mut i = start;
        if matches!(self.at(i), b'-' | b'+') {
            i += 1;
        }
        let ds = i;
        while self.at(i).is_ascii_digit() {
            i += 1;
        }
        let mut digits = i > ds;
        if self.at(i) == b'.' {
            let f = i + 1;
            let mut j = f;
            while self.at(j).is_ascii_digit() {
                j += 1;
            }
            if j > f || digits {
                digits = digits || j > f;
                i = j;
            }
        }
        if !digits {
            return (Tok::Error("invalid number"), start);
        }
        if matches!(self.at(i), b'e' | b'E') {
            let mut j = i + 1;
            if matches!(self.at(j), b'-' | b'+') {
                j += 1;
            }
            let es = j;
            while self.at(j).is_ascii_digit() {
                j += 1;
            }
            if j > es {
                i = j;
            }
        }
        let text = std::str::from_utf8(&self.data[start..i]).unwrap_or("0");
        let v: f64 = text.parse().unwrap_or(0.0);
        self.pos = i;
        (Tok::Num(v), start)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            let d = (self.at(at + k) as char).to_digit(16)?;
            v = v * 16 + d;
        }
        Some(v)
    }

    fn string(&mut self) -> (Tok, usize) {
        let idx = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            if c == 0 {
                return (Tok::Error("unexpected end of string"), self.pos);
            }
            if c == b'\\' {
                let e = self.at(self.pos + 1);
                let ch = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let Some(mut cp) = self.hex4(self.pos + 2) else {
                            return (Tok::Error("invalid unicode escape code"), self.pos);
                        };
                        let mut len = 6;
                        if (0xDC00..=0xDFFF).contains(&cp) {
                            return (Tok::Error("invalid unicode escape code"), self.pos);
                        }
                        if (0xD800..=0xDBFF).contains(&cp) {
                            let lo = if self.at(self.pos + 6) == b'\\'
                                && self.at(self.pos + 7) == b'u'
                            {
                                self.hex4(self.pos + 8)
                            } else {
                                None
                            };
                            match lo {
                                Some(lo) if (0xDC00..=0xDFFF).contains(&lo) => {
                                    cp = 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF);
                                    len = 12;
                                }
                                _ => return (Tok::Error("invalid unicode escape code"), self.pos),
                            }
                        }
                        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        self.pos += len;
                        continue;
                    }
                    _ => return (Tok::Error("invalid escape code"), self.pos),
                };
                out.push(ch);
                self.pos += 2;
                continue;
            }
            out.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        (Tok::Str(out), idx)
    }

    fn fail(&self, expected: &str, tok: &Tok, idx: usize) -> JsonErr {
        JsonErr::Msg(format!(
            "Expected {expected} but found {} at character {}",
            tok.name(),
            idx + 1
        ))
    }

    fn descend(&mut self) -> Result<(), JsonErr> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(JsonErr::Msg(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.pos
            )));
        }
        Ok(())
    }

    fn value(&mut self, lua: &Lua, tok: Tok, idx: usize) -> Result<Value, JsonErr> {
        Ok(match tok {
            Tok::Str(s) => Value::String(lua.create_string(&s)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
            Tok::ObjBegin => {
                self.descend()?;
                let t = lua.create_table()?;
                let (mut tok, mut idx) = self.next();
                if matches!(tok, Tok::ObjEnd) {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    let Tok::Str(key) = tok else {
                        return Err(self.fail("object key string", &tok, idx));
                    };
                    let (colon, ci) = self.next();
                    if !matches!(colon, Tok::Colon) {
                        return Err(self.fail("colon", &colon, ci));
                    }
                    let (vt, vi) = self.next();
                    let v = self.value(lua, vt, vi)?;
                    t.raw_set(lua.create_string(&key)?, v)?;
                    let (nt, ni) = self.next();
                    match nt {
                        Tok::ObjEnd => {
                            self.depth -= 1;
                            return Ok(Value::Table(t));
                        }
                        Tok::Comma => {}
                        other => return Err(self.fail("comma or object end", &other, ni)),
                    }
                    (tok, idx) = self.next();
                }
            }
            Tok::ArrBegin => {
                self.descend()?;
                let t = lua.create_table()?;
                let (mut tok, mut idx) = self.next();
                if matches!(tok, Tok::ArrEnd) {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value(lua, tok, idx)?;
                    t.raw_set(i, v)?;
                    i += 1;
                    let (nt, ni) = self.next();
                    match nt {
                        Tok::ArrEnd => {
                            self.depth -= 1;
                            return Ok(Value::Table(t));
                        }
                        Tok::Comma => {}
                        other => return Err(self.fail("comma or array end", &other, ni)),
                    }
                    (tok, idx) = self.next();
                }
            }
            other => return Err(self.fail("value", &other, idx)),
        })
    }
}

pub(super) fn json_decode(lua: &Lua, data: &[u8], cfg: &JsonConfig) -> Result<Value, JsonErr> {
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(JsonErr::Msg(
            "JSON parser does not support UTF-16 or UTF-32".into(),
        ));
    }
    let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
    let mut p = JsonParser {
        data: &data[..end],
        pos: 0,
        depth: 0,
        max_depth: cfg.decode_depth(),
    };
    let (tok, idx) = p.next();
    let v = p.value(lua, tok, idx)?;
    let (tok, idx) = p.next();
    if !matches!(tok, Tok::End) {
        return Err(p.fail("the end", &tok, idx));
    }
    Ok(v)
}
