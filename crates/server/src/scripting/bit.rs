//! `bit` (LuaBitOp 1.0.2 as bundled with Redis 7.0).

use super::cjson::lua_type_name;
use mlua::{Lua, MultiValue, Value};

pub(super) fn bit_op(lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
    let mut it = args.into_iter();
    let name = match it.next() {
        Some(Value::String(s)) => s.to_str()?.to_string(),
        _ => String::new(),
    };
    let rest: Vec<Value> = it.collect();
    let barg = |i: usize| -> Result<u32, String> {
        let v = rest.get(i).cloned().unwrap_or(Value::Nil);
        let n = match &v {
            Value::Integer(x) => Some(*x as f64),
            Value::Number(x) => Some(*x),
            Value::String(s) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
            _ => None,
        };
        match n {
            Some(n) => Ok((n + 6_755_399_441_055_744.0).to_bits() as u32),
            None => Err(format!(
                "bad argument #{} to '{}' (number expected, got {})",
                i + 1,
                name,
                if i < rest.len() {
                    lua_type_name(&v)
                } else {
                    "no value"
                }
            )),
        }
    };
    let num = |b: u32| Value::Number(b as i32 as f64);
    let res: Result<Value, String> = (|| {
        Ok(match name.as_str() {
            "tobit" => num(barg(0)?),
            "bnot" => num(!barg(0)?),
            "bswap" => num(barg(0)?.swap_bytes()),
            "band" | "bor" | "bxor" => {
                let mut b = barg(0)?;
                for i in 1..rest.len() {
                    let y = barg(i)?;
                    b = match name.as_str() {
                        "band" => b & y,
                        "bor" => b | y,
                        _ => b ^ y,
                    };
                }
                num(b)
            }
            "lshift" | "rshift" | "arshift" | "rol" | "ror" => {
                let b = barg(0)?;
                let n = barg(1)? & 31;
                num(match name.as_str() {
                    "lshift" => b << n,
                    "rshift" => b >> n,
                    "arshift" => ((b as i32) >> n) as u32,
                    "rol" => b.rotate_left(n),
                    _ => b.rotate_right(n),
                })
            }
            "tohex" => {
                let mut b = barg(0)?;
                let mut n: i32 = if rest.len() > 1 { barg(1)? as i32 } else { 8 };
                // LuaBitOp negates a negative count (upper-case digits); Redis's
                // bit.c keeps INT32_MIN from overflowing that negation.
                if n == i32::MIN {
                    n = i32::MIN + 1;
                }
                let digits: &[u8] = if n < 0 {
                    n = -n;
                    b"0123456789ABCDEF"
                } else {
                    b"0123456789abcdef"
                };
                let n = n.clamp(0, 8) as usize;
                let mut buf = [0u8; 8];
                let buf = &mut buf[..n];
                for i in (0..n).rev() {
                    buf[i] = digits[(b & 15) as usize];
                    b >>= 4;
                }
                Value::String(lua.create_string(&*buf).map_err(|e| e.to_string())?)
            }
            _ => return Err(format!("unknown bit operation '{name}'")),
        })
    })();
    match res {
        Ok(v) => Ok((true, v)),
        Err(m) => Ok((false, Value::String(lua.create_string(&m)?))),
    }
}
