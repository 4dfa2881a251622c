//! `struct` (Roberto Ierusalimschy's lua_struct 0.2 as bundled with Redis 7.0,
//! `deps/lua/src/lua_struct.c`): `struct.pack`, `struct.unpack`, `struct.size`.
//!
//! The C types are those of Redis on x86-64 Linux: `long` and `size_t` are 8 bytes,
//! `int` 4, the native order is little endian and the largest alignment (`!`) 8.
//! Each function returns a status first for the prelude's shim (0 = the values that
//! follow; 2 = an error message, positioned at the caller like luaL_error's).

use super::cjson::lua_type_name;
use mlua::{Lua, MultiValue, Value};

/// Largest integral size (`i32` and so on).
const MAXINTSIZE: usize = 32;
/// Alignment of `!` without a number (`offsetof` a double after a char, or int).
const MAXALIGN: usize = 8;
/// What a C function may push at most (Lua's LUAI_MAXCSTACK) before
/// `luaL_checkstack` fails.
const MAX_RESULTS: usize = 8000;

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

const DEFAULT: Header = Header {
    little: true,
    align: 1,
};

/// A format string being read (a C string: it ends at a NUL byte).
struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// `getnum`: the digits that follow, or `df`.
    fn num(&mut self, df: usize) -> Result<usize, String> {
        if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }

    /// `optsize`: the size of option `opt` (reading its number, if any).
    fn size(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let sz = self.num(4)?;
                if sz > MAXINTSIZE {
                    return Err(format!(
                        "integral size {sz} is larger than limit of {MAXINTSIZE}"
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is an error.
    fn control(&mut self, opt: u8, h: &mut Header, fname: &str) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => h.little = false,
            b'<' => h.little = true,
            b'!' => {
                let a = self.num(MAXALIGN)?;
                if !a.is_power_of_two() {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            _ => {
                return Err(format!(
                    "bad argument #1 to '{fname}' (invalid format option '{}')",
                    opt as char
                ))
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an element of `size` at `len`.
fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & size.wrapping_sub(1))) & size.wrapping_sub(1)
}

fn is_int_opt(opt: u8) -> bool {
    matches!(
        opt,
        b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I'
    )
}

/// Lua 5.1's `lua_tonumber`: numbers, and strings that read as one (decimal or hex,
/// surrounded by spaces).
fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => {
            let b = s.as_bytes();
            let t = std::str::from_utf8(&b)
                .ok()?
                .trim_matches(|c: char| c.is_ascii_whitespace());
            let (neg, digits) = match t.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            if let Some(hex) = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
            {
                let v = u64::from_str_radix(hex, 16).ok()? as f64;
                return Some(if neg { -v } else { v });
            }
            t.parse::<f64>().ok()
        }
        _ => None,
    }
}

/// The argument at `i` (0-based) as `luaL_check*` reads it, or the error message.
/// `pack` pushes a nil after its arguments (a mark before its string buffer): the
/// first missing one is "nil" there.
fn arg_error(args: &MultiValue, i: usize, fname: &str, expected: &str) -> String {
    let missing = if fname == "pack" && i > 0 && i == args.len() {
        "nil"
    } else {
        "no value"
    };
    let got = args.get(i).map_or(missing, lua_type_name);
    format!(
        "bad argument #{} to '{fname}' ({expected} expected, got {got})",
        i + 1
    )
}

fn check_number(args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    args.get(i)
        .and_then(to_number)
        .ok_or_else(|| arg_error(args, i, fname, "number"))
}

fn check_string(args: &MultiValue, i: usize, fname: &str) -> Result<Vec<u8>, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => {
            Ok(super::value_text(v).unwrap_or_default())
        }
        _ => Err(arg_error(args, i, fname, "string")),
    }
}

/// The format (argument 1) as a C string.
fn check_format(args: &MultiValue, fname: &str) -> Result<Vec<u8>, String> {
    let mut f = check_string(args, 0, fname)?;
    if let Some(z) = f.iter().position(|&c| c == 0) {
        f.truncate(z);
    }
    Ok(f)
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    // C's conversions on x86-64: through a signed long when negative.
    let mut value: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
    let mut buf = [0u8; MAXINTSIZE];
    for k in 0..size {
        let idx = if little { k } else { size - 1 - k };
        buf[idx] = value as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
    out.extend_from_slice(&buf[..size]);
}

fn pack(args: &MultiValue) -> Result<Vec<u8>, String> {
    let fmt = check_format(args, "pack")?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = DEFAULT;
    let mut arg = 1;
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            _ if is_int_opt(opt) => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                put_integer(&mut out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(args, arg, "pack")? as f32;
                arg += 1;
                let b = if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'd' => {
                let v = check_number(args, arg, "pack")?;
                arg += 1;
                let b = if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                out.extend_from_slice(&b);
            }
            b'c' | b's' => {
                let s = check_string(args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // lua_struct checks after moving to the next argument.
                    return Err(format!(
                        "bad argument #{} to 'pack' (string too short)",
                        arg + 1
                    ));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn get_integer(b: &[u8], little: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    for k in 0..size {
        let byte = if little { b[size - 1 - k] } else { b[k] };
        l = (l << 8) | byte as u64;
    }
    if !signed {
        return l as f64;
    }
    // x86 shifts by the count modulo 64 (the C code shifts by size*8-1).
    let shift = ((size * 8) as u32).wrapping_sub(1) & 63;
    let mask = u64::MAX << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// One result of `unpack`.
enum Item {
    Num(f64),
    Str(Vec<u8>),
}

fn unpack(args: &MultiValue) -> Result<(Vec<Item>, i64), String> {
    let fmt = check_format(args, "unpack")?;
    let data = check_string(args, 1, "unpack")?;
    let ld = data.len();
    let pos = match args.get(2) {
        None | Some(Value::Nil) => 1i64,
        Some(v) => match to_number(v) {
            Some(n) => n as i64,
            None => return Err(arg_error(args, 2, "unpack", "number")),
        },
    };
    if pos <= 0 {
        return Err("bad argument #3 to 'unpack' (offset must be 1 or greater)".into());
    }
    let too_short = || "bad argument #2 to 'unpack' (data string too short)".to_string();
    let mut pos = (pos - 1) as usize;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = DEFAULT;
    let mut items: Vec<Item> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        if items.len() + 2 > MAX_RESULTS {
            return Err("stack overflow (too many results)".into());
        }
        match opt {
            _ if is_int_opt(opt) => {
                let signed = opt.is_ascii_lowercase();
                items.push(Item::Num(get_integer(&data[pos..], h.little, signed, size)));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                items.push(Item::Num(v as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                items.push(Item::Num(v));
            }
            b'c' => {
                if size == 0 {
                    let Some(Item::Num(n)) = items.pop() else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    size = n as usize;
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                items.push(Item::Str(data[pos..pos + size].to_vec()));
            }
            b's' => {
                let Some(z) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err("unfinished string in data".into());
                };
                size = z + 1;
                items.push(Item::Str(data[pos..pos + z].to_vec()));
            }
            _ => f.control(opt, &mut h, "unpack")?,
        }
        pos = pos.wrapping_add(size);
    }
    Ok((items, pos as i64 + 1))
}

fn size(args: &MultiValue) -> Result<usize, String> {
    let fmt = check_format(args, "size")?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = DEFAULT;
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err("bad argument #1 to 'size' (option 's' has no fixed size)".into());
        }
        if opt == b'c' && size == 0 {
            return Err("bad argument #1 to 'size' (option 'c0' has no fixed size)".into());
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h, "size")?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos)
}

/// `struct.<name>(...)` for the prelude's shim: status 0 and the results, or status
/// 2 and the message.
pub(super) fn struct_op(lua: &Lua, name: &str, args: MultiValue) -> mlua::Result<MultiValue> {
    let res: Result<Vec<Value>, String> = match name {
        "pack" => pack(&args).and_then(|b| {
            Ok(vec![Value::String(
                lua.create_string(&b).map_err(|e| e.to_string())?,
            )])
        }),
        "unpack" => unpack(&args).and_then(|(items, next)| {
            let mut out = Vec::with_capacity(items.len() + 1);
            for it in items {
                out.push(match it {
                    Item::Num(n) => Value::Number(n),
                    Item::Str(s) => {
                        Value::String(lua.create_string(&s).map_err(|e| e.to_string())?)
                    }
                });
            }
            out.push(Value::Integer(next));
            Ok(out)
        }),
        _ => size(&args).map(|n| vec![Value::Integer(n as i64)]),
    };
    let mut out = Vec::new();
    match res {
        Ok(values) => {
            out.push(Value::Integer(0));
            out.extend(values);
        }
        Err(msg) => {
            out.push(Value::Integer(2));
            out.push(Value::String(lua.create_string(&msg)?));
        }
    }
    Ok(MultiValue::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lua: &Lua, name: &str, args: Vec<Value>) -> Result<Vec<Value>, String> {
        let mut r: Vec<Value> = struct_op(lua, name, MultiValue::from_vec(args))
            .expect("no Lua error")
            .into_iter()
            .collect();
        let status = r.remove(0);
        match status {
            Value::Integer(0) => Ok(r),
            _ => Err(r[0].to_string().unwrap_or_default()),
        }
    }

    fn s(lua: &Lua, b: &[u8]) -> Value {
        Value::String(lua.create_string(b).expect("string"))
    }

    #[test]
    fn pack_unpack_size_as_lua_struct() {
        let lua = Lua::new();
        let n = |x: f64| Value::Number(x);
        let packed = run(&lua, "pack", vec![s(&lua, b">I2i4"), n(258.0), n(-2.0)]).expect("pack");
        let Value::String(p) = &packed[0] else {
            panic!("a string")
        };
        assert_eq!(&p.as_bytes()[..], &[1, 2, 0xff, 0xff, 0xff, 0xfe][..]);
        let r = run(&lua, "unpack", vec![s(&lua, b">I2i4"), packed[0].clone()]).expect("unpack");
        assert_eq!(r, vec![n(258.0), n(-2.0), Value::Integer(7)]);
        // Alignment: a byte then an aligned int ("!4").
        let r = run(&lua, "size", vec![s(&lua, b"!4bi")]).expect("size");
        assert_eq!(r, vec![Value::Integer(8)]);
        assert_eq!(
            run(&lua, "size", vec![s(&lua, b"bhld")]).expect("size"),
            vec![Value::Integer(19)]
        );
        // Strings: zero-terminated and sized.
        let p = run(
            &lua,
            "pack",
            vec![s(&lua, b"sc3"), s(&lua, b"ab"), s(&lua, b"xyz")],
        )
        .expect("pack");
        let r = run(&lua, "unpack", vec![s(&lua, b"sc3"), p[0].clone()]).expect("unpack");
        assert_eq!(r, vec![s(&lua, b"ab"), s(&lua, b"xyz"), Value::Integer(7)]);
        // c0 takes its size from the previous number.
        let p = run(&lua, "pack", vec![s(&lua, b"bc0"), n(3.0), s(&lua, b"hey")]).expect("pack");
        let r = run(&lua, "unpack", vec![s(&lua, b"bc0"), p[0].clone()]).expect("unpack");
        assert_eq!(r, vec![s(&lua, b"hey"), Value::Integer(5)]);
        // Doubles and floats in both orders.
        let p = run(&lua, "pack", vec![s(&lua, b"<d>f"), n(1.5), n(-0.25)]).expect("pack");
        let r = run(&lua, "unpack", vec![s(&lua, b"<d>f"), p[0].clone()]).expect("unpack");
        assert_eq!(r, vec![n(1.5), n(-0.25), Value::Integer(13)]);
    }

    #[test]
    fn errors_are_lua_structs() {
        let lua = Lua::new();
        let e = |name: &str, args: Vec<Value>| run(&lua, name, args).expect_err("an error");
        assert_eq!(
            e("pack", vec![s(&lua, b"z")]),
            "bad argument #1 to 'pack' (invalid format option 'z')"
        );
        assert_eq!(
            e("pack", vec![s(&lua, b"i")]),
            "bad argument #2 to 'pack' (number expected, got nil)"
        );
        assert_eq!(
            e("pack", vec![s(&lua, b"ii"), Value::Integer(1)]),
            "bad argument #3 to 'pack' (number expected, got nil)"
        );
        assert_eq!(
            e("pack", vec![]),
            "bad argument #1 to 'pack' (string expected, got no value)"
        );
        assert_eq!(
            e("pack", vec![s(&lua, b"i33"), Value::Integer(1)]),
            "integral size 33 is larger than limit of 32"
        );
        assert_eq!(
            e("pack", vec![s(&lua, b"!3")]),
            "alignment 3 is not a power of 2"
        );
        assert_eq!(
            e("pack", vec![s(&lua, b"c5"), s(&lua, b"ab")]),
            "bad argument #3 to 'pack' (string too short)"
        );
        assert_eq!(
            e("unpack", vec![s(&lua, b"i"), s(&lua, b"ab")]),
            "bad argument #2 to 'unpack' (data string too short)"
        );
        assert_eq!(
            e(
                "unpack",
                vec![s(&lua, b"i"), s(&lua, b"abcd"), Value::Integer(0)]
            ),
            "bad argument #3 to 'unpack' (offset must be 1 or greater)"
        );
        assert_eq!(
            e("unpack", vec![s(&lua, b"s"), s(&lua, b"ab")]),
            "unfinished string in data"
        );
        assert_eq!(
            e("unpack", vec![s(&lua, b"c0"), s(&lua, b"ab")]),
            "format 'c0' needs a previous size"
        );
        assert_eq!(
            e("size", vec![s(&lua, b"s")]),
            "bad argument #1 to 'size' (option 's' has no fixed size)"
        );
        assert_eq!(
            e("size", vec![s(&lua, b"i99999999999")]),
            "integral size overflow"
        );
        // `size` skips unknown letters (no error), unlike `pack`.
        assert_eq!(
            run(&lua, "size", vec![s(&lua, b"zb")]).expect("size"),
            vec![Value::Integer(1)]
        );
    }
}
