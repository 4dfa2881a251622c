//! `cmsgpack` (lua-cmsgpack 0.4.0 as bundled with Redis 7.0): pack and unpack in Rust.

use super::cjson::as_number;
use mlua::{Lua, Table, Value};

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_number(n: f64, out: &mut Vec<u8>) {
    if !n.is_infinite()
        && (n as i64) as f64 == n
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n)
    {
        mp_int(n as i64, out);
    } else {
        let f = n as f32;
        if f as f64 == n {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        } else {
            out.push(0xcb);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn mp_len_header(len: usize, fix: u8, fixmax: usize, h16: u8, h32: u8, out: &mut Vec<u8>) {
    if len <= fixmax {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(h16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(h32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

pub(super) fn mp_encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_number(*i as f64, out),
        Value::Number(n) => mp_number(*n, out),
        Value::Table(t) if level < 16 => {
            let mut count = 0usize;
            let mut max = 0f64;
            let mut array = true;
            for (k, _) in t.pairs::<Value, Value>().flatten() {
                match as_number(&k) {
                    Some(n) if n > 0.0 && n.floor() == n => {
                        if n > max {
                            max = n;
                        }
                        count += 1;
                    }
                    _ => {
                        array = false;
                        break;
                    }
                }
            }
            if array && max == count as f64 {
                let len = t.raw_len();
                mp_len_header(len, 0x90, 15, 0xdc, 0xdd, out);
                for j in 1..=len {
                    let v: Value = t.raw_get(j)?;
                    mp_encode(&v, level + 1, out)?;
                }
            } else {
                let n = t.pairs::<Value, Value>().count();
                mp_len_header(n, 0x80, 15, 0xde, 0xdf, out);
                for (k, v) in t.pairs::<Value, Value>().flatten() {
                    mp_encode(&k, level + 1, out)?;
                    mp_encode(&v, level + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

/// How deep `cmsgpack.unpack` nests, in Lua stack slots. Redis 7.0's lua_cmsgpack
/// recurses and checks its Lua stack (8,000 slots, two per array: the table and the
/// index): 3,999 nested arrays decode, one more is `stack overflow (in function
/// mp_decode_to_lua_array)`. Its maps have no check at all (a deep map
/// overruns the stack); here a map level counts three slots (table, key, value).
/// Decoding is iterative (an explicit stack of open containers), so the limit is
/// Redis's and not the thread's stack; the open containers also hold mlua
/// references, whose stack has the same 8,000-slot bound.
pub(super) const MP_MAX_SLOTS: usize = 2 * 3999;

/// Most values one unpack returns. Redis's limit is its Lua stack: 7,999 values. The
/// values are returned through `unpack` in the prelude, whose own stack check leaves
/// room for 7,997 (with the next offset of `unpack_one`/`unpack_limit`), hence 7,996.
pub(super) const MP_MAX_RESULTS: usize = 7996;

enum MpErr {
    Eof,
    BadFmt,
    /// Nesting beyond `MP_MAX_SLOTS`: the name of Redis's function that stops.
    TooDeep(&'static str),
    Lua(mlua::Error),
}

impl From<mlua::Error> for MpErr {
    fn from(e: mlua::Error) -> Self {
        MpErr::Lua(e)
    }
}

/// What one type byte (and its length bytes) announce.
enum Item {
    Value(Value),
    Array(usize),
    Map(usize),
}

/// A container being filled.
enum Open {
    Array {
        t: Table,
        len: usize,
        next: usize,
    },
    Map {
        t: Table,
        left: usize,
        key: Option<Value>,
    },
}

struct MpCur<'a> {
    data: &'a [u8],
    pos: usize,
}

impl MpCur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MpErr> {
        if self.data.len() - self.pos < n {
            return Err(MpErr::Eof);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, MpErr> {
        let b = self.take(n)?;
        Ok(b.iter().fold(0u64, |a, &c| (a << 8) | c as u64))
    }

    fn len(&mut self, n: usize) -> Result<usize, MpErr> {
        usize::try_from(self.uint(n)?).map_err(|_| MpErr::Eof)
    }

    /// Reads one type byte and what goes with it: a scalar, or a container's length.
    fn item(&mut self, lua: &Lua) -> Result<Item, MpErr> {
        let c = self.take(1)?[0];
        let v = match c {
            0x00..=0x7f => Value::Number(c as f64),
            0xe0..=0xff => Value::Number(c as i8 as f64),
            0xcc => Value::Number(self.uint(1)? as f64),
            0xcd => Value::Number(self.uint(2)? as f64),
            0xce => Value::Number(self.uint(4)? as f64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Number(self.uint(1)? as u8 as i8 as f64),
            0xd1 => Value::Number(self.uint(2)? as u16 as i16 as f64),
            0xd2 => Value::Number(self.uint(4)? as u32 as i32 as f64),
            0xd3 => Value::Number(self.uint(8)? as i64 as f64),
            0xc0 => Value::Nil,
            0xc3 => Value::Boolean(true),
            0xc2 => Value::Boolean(false),
            0xca => Value::Number(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
            0xa0..=0xbf => self.string(lua, (c & 0x1f) as usize)?,
            0xd9 | 0xc4 => {
                let n = self.len(1)?;
                self.string(lua, n)?
            }
            0xda | 0xc5 => {
                let n = self.len(2)?;
                self.string(lua, n)?
            }
            0xdb | 0xc6 => {
                let n = self.len(4)?;
                self.string(lua, n)?
            }
            0x90..=0x9f => return Ok(Item::Array((c & 0x0f) as usize)),
            0xdc => return Ok(Item::Array(self.len(2)?)),
            0xdd => return Ok(Item::Array(self.len(4)?)),
            0x80..=0x8f => return Ok(Item::Map((c & 0x0f) as usize)),
            0xde => return Ok(Item::Map(self.len(2)?)),
            0xdf => return Ok(Item::Map(self.len(4)?)),
            _ => return Err(MpErr::BadFmt),
        };
        Ok(Item::Value(v))
    }

    fn string(&mut self, lua: &Lua, n: usize) -> Result<Value, MpErr> {
        let b = self.take(n)?;
        Ok(Value::String(lua.create_string(b)?))
    }

    /// Decodes one value (lua_cmsgpack's mp_decode_to_lua_type) without recursion.
    /// A container's announced length allocates nothing up front: every element
    /// needs at least one input byte, so a lying length ends in `Eof`.
    fn decode(&mut self, lua: &Lua) -> Result<Value, MpErr> {
        let mut open: Vec<Open> = Vec::new();
        let mut slots = 0usize;
        loop {
            let mut v = match self.item(lua)? {
                Item::Value(v) => v,
                Item::Array(len) => {
                    if slots + 2 > MP_MAX_SLOTS {
                        return Err(MpErr::TooDeep("mp_decode_to_lua_array"));
                    }
                    let t = lua.create_table()?;
                    if len > 0 {
                        slots += 2;
                        open.push(Open::Array { t, len, next: 1 });
                        continue;
                    }
                    Value::Table(t)
                }
                Item::Map(left) => {
                    if slots + 3 > MP_MAX_SLOTS {
                        return Err(MpErr::TooDeep("mp_decode_to_lua_hash"));
                    }
                    let t = lua.create_table()?;
                    if left > 0 {
                        slots += 3;
                        open.push(Open::Map { t, left, key: None });
                        continue;
                    }
                    Value::Table(t)
                }
            };
            // Hand the value to the innermost open container; a container it
            // completes is in turn a value for the one around it.
            loop {
                let done = match open.last_mut() {
                    None => return Ok(v),
                    Some(Open::Array { t, len, next }) => {
                        t.raw_set(*next, v)?;
                        *next += 1;
                        *next > *len
                    }
                    Some(Open::Map { t, left, key }) => match key.take() {
                        None => {
                            *key = Some(v);
                            false
                        }
                        Some(k) => {
                            if !matches!(k, Value::Nil) {
                                t.raw_set(k, v)?;
                            }
                            *left -= 1;
                            *left == 0
                        }
                    },
                };
                if !done {
                    break;
                }
                v = match open.pop() {
                    Some(Open::Array { t, .. }) => {
                        slots -= 2;
                        Value::Table(t)
                    }
                    Some(Open::Map { t, .. }) => {
                        slots -= 3;
                        Value::Table(t)
                    }
                    None => Value::Nil,
                };
            }
        }
    }
}

/// lua_cmsgpack's mp_unpack_full: returns (count, values) or (nil, message).
pub(super) fn mp_unpack(
    lua: &Lua,
    data: &[u8],
    limit: i64,
    offset: i64,
) -> mlua::Result<(Value, Value)> {
    let fail = |m: String| -> mlua::Result<(Value, Value)> {
        Ok((Value::Nil, Value::String(lua.create_string(&m)?)))
    };
    let len = data.len() as i64;
    if offset < 0 || limit < 0 {
        return fail(format!(
            "Invalid request to unpack with offset of {offset} and limit of {len}."
        ));
    }
    if offset > len {
        return fail(format!(
            "Start offset {offset} greater than input length {len}."
        ));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all { i64::MAX } else { limit };
    let mut cur = MpCur {
        data: &data[offset as usize..],
        pos: 0,
    };
    let out = lua.create_table()?;
    // Values go into `out` as they are decoded (none is held meanwhile: each would
    // hold an mlua reference); slot 1 is kept for the next offset unless all is read.
    let mut i = if decode_all { 1 } else { 2 };
    let mut cnt = 0i64;
    while cur.pos < cur.data.len() && cnt < limit {
        if cnt as usize >= MP_MAX_RESULTS {
            return fail(
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
                    .into(),
            );
        }
        match cur.decode(lua) {
            Ok(v) => {
                out.raw_set(i, v)?;
                i += 1;
            }
            Err(MpErr::Eof) => return fail("Missing bytes in input.".into()),
            Err(MpErr::BadFmt) => return fail("Bad data format in input.".into()),
            Err(MpErr::TooDeep(f)) => return fail(format!("stack overflow (in function {f})")),
            Err(MpErr::Lua(e)) => return Err(e),
        }
        cnt += 1;
    }
    if !decode_all {
        let left = cur.data.len() - cur.pos;
        let next = if left == 0 { -1 } else { len - left as i64 };
        out.raw_set(1, next)?;
        cnt += 1;
    }
    Ok((Value::Number(cnt as f64), Value::Table(out)))
}
