//! The script libraries' decoders in the sandboxed Lua state, replayed on generated
//! inputs (bounded proptest runs; the same entry points the fuzz targets in `fuzz/`
//! reach through a server): no panic, no crash, Redis's limits where it has them.

use super::cmsgpack::MP_MAX_SLOTS;
use super::Scripts;
use mlua::{Function, MultiValue, Table, Value};
use proptest::prelude::*;

/// Calls `lib.func(args...)` as a script would (through the sandbox's globals).
fn call(s: &Scripts, lib: &str, func: &str, args: Vec<Value>) -> Result<MultiValue, String> {
    let run = || -> mlua::Result<MultiValue> {
        let t: Table = s.vm.env.get(lib)?;
        let f: Function = t.get(func)?;
        f.call::<MultiValue>(MultiValue::from_vec(args))
    };
    run().map_err(|e| super::error_text(&e))
}

fn bytes(s: &Scripts, b: &[u8]) -> Value {
    Value::String(s.vm.lua.create_string(b).expect("a Lua string"))
}

fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"[]{}:,\"0123456789.eE+-\\utrfalsn \x00\xff".to_vec()),
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn cjson_decode_any_input(raw in prop::collection::vec(any::<u8>(), 0..200), ish in json_ish()) {
        let s = Scripts::new();
        for input in [raw, ish] {
            let v = bytes(&s, &input);
            if let Ok(r) = call(&s, "cjson", "decode", vec![v]) {
                let _ = call(&s, "cjson", "encode", r.into_iter().collect());
            }
        }
    }

    #[test]
    fn cjson_nesting_is_bounded(n in 1usize..3000) {
        let s = Scripts::new();
        let mut doc = "[".repeat(n);
        doc.push_str(&"]".repeat(n));
        let r = call(&s, "cjson", "decode", vec![bytes(&s, doc.as_bytes())]);
        if n <= super::MAX_NESTING {
            prop_assert!(r.is_ok(), "{n}: {r:?}");
        } else {
            let e = r.expect_err("too deep");
            prop_assert!(e.contains("Found too many nested data structures"), "{e}");
        }
    }

    #[test]
    fn cmsgpack_unpack_any_input(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        which in 0u8..3,
        n in 0i64..5,
    ) {
        let s = Scripts::new();
        let v = bytes(&s, &raw);
        let r = match which {
            0 => call(&s, "cmsgpack", "unpack", vec![v]),
            1 => call(&s, "cmsgpack", "unpack_one", vec![v, Value::Number(n as f64)]),
            _ => call(&s, "cmsgpack", "unpack_limit", vec![v, Value::Number(n as f64)]),
        };
        if let Ok(vals) = r {
            let _ = call(&s, "cmsgpack", "pack", vals.into_iter().collect());
        }
    }

    #[test]
    fn cmsgpack_nesting_is_bounded(n in 0usize..20_000, map in any::<bool>()) {
        let s = Scripts::new();
        // n nested one-element containers around an empty array.
        let mut doc = if map { b"\x81\xc0".repeat(n) } else { vec![0x91; n] };
        doc.push(0x90);
        let r = call(&s, "cmsgpack", "unpack", vec![bytes(&s, &doc)]);
        let slots = if map { 3 * n + 2 } else { 2 * (n + 1) };
        if slots <= MP_MAX_SLOTS {
            prop_assert!(r.is_ok(), "{n}: {r:?}");
        } else {
            let e = r.expect_err("too deep");
            prop_assert!(e.contains("stack overflow (in function mp_decode_to_lua_"), "{e}");
        }
    }

    #[test]
    fn bit_tohex_matches_luabitop(x in any::<i32>(), n in prop_oneof![any::<i32>(), -10i32..10, Just(i32::MIN)]) {
        let s = Scripts::new();
        let r = call(&s, "bit", "tohex", vec![Value::Number(x as f64), Value::Number(n as f64)]);
        let got = match r.ok().and_then(|v| v.into_iter().next()) {
            Some(Value::String(t)) => t.as_bytes().to_vec(),
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        // LuaBitOp with Redis's INT32_MIN fix.
        let m = if n == i32::MIN { i32::MIN + 1 } else { n };
        let len = m.unsigned_abs().min(8) as usize;
        let full = if m < 0 { format!("{:08X}", x as u32) } else { format!("{:08x}", x as u32) };
        prop_assert_eq!(String::from_utf8_lossy(&got), &full[8 - len..]);
    }

    #[test]
    fn bit_functions_any_arguments(op in 0usize..12, a in any::<f64>(), b in any::<f64>(), text in "[ 0-9a-fx.e+-]{0,12}") {
        let s = Scripts::new();
        let ops = ["tobit", "tohex", "bnot", "band", "bor", "bxor", "lshift", "rshift",
            "arshift", "rol", "ror", "bswap"];
        let _ = call(&s, "bit", ops[op], vec![Value::Number(a), Value::Number(b)]);
        let _ = call(&s, "bit", ops[op], vec![bytes(&s, text.as_bytes()), Value::Number(b)]);
        let _ = call(&s, "bit", ops[op], vec![]);
    }

    #[test]
    fn struct_any_input(fmt in prop::collection::vec(any::<u8>(), 0..40), data in prop::collection::vec(any::<u8>(), 0..80)) {
        let s = Scripts::new();
        let _ = call(&s, "struct", "unpack", vec![bytes(&s, &fmt), bytes(&s, &data)]);
        let _ = call(&s, "struct", "size", vec![bytes(&s, &fmt)]);
        let _ = call(&s, "struct", "pack", vec![bytes(&s, &fmt), Value::Number(1.0), bytes(&s, &data)]);
    }
}
