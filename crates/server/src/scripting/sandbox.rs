//! The sandbox scripts run in: the prelude (`sandbox.lua`, run once when the Lua state
//! is created) and the C functions it is built from.
//!
//! Redis 7.0 patches Lua with a read-only flag per table; redsnap's Lua is mlua's
//! vendored one, so read-only tables are emulated: every shared table (globals,
//! `redis`, `cjson`, `cmsgpack`, `bit`, `struct`, `string`, `table`, `math`,
//! `coroutine`, the string metatable) is reachable by scripts only through an empty
//! proxy whose metatable refuses writes and which no script can see or change. Every
//! route that could hand out the table behind a proxy goes through functions here or
//! in the prelude that return proxies instead: `pairs`, `next`, `rawget`,
//! `getmetatable`, the error handler, and the `table` functions that write raw
//! (`insert`, `remove`, `sort`: guarded by `ro_guard`). `getfenv`, `setfenv`,
//! `debug` and `newproxy` are not there, as in Redis 7.0, so upvalues and function
//! environments are out of reach. The shared tables hold string keys only, so
//! iterating them never yields a table as a key.

use super::bit::bit_op;
use super::cjson::{json_config, json_decode, json_encode, JsonConfig, JsonErr};
use super::cmsgpack::{mp_encode, mp_unpack};
use super::structlib::struct_op;
use mlua::ffi;
use mlua::{LightUserData, Lua, MultiValue, Table, Value};
use std::ffi::c_int;
use std::sync::Arc;

/// The prelude, written in Lua (see the comment at its top).
pub(super) const PRELUDE: &str = include_str!("sandbox.lua");

/// The error a write to a read-only table raises (Redis's text).
const READONLY: &std::ffi::CStr = c"Attempt to modify a readonly table";

/// Adds to the prelude's API table the C functions of the sandbox and the Rust
/// implementations of `cjson`, `cmsgpack`, `bit` and `struct`.
pub(super) fn register_libs(lua: &Lua, api: &Table) -> mlua::Result<()> {
    // SAFETY: plain Lua C functions following the Lua 5.1 API contract (each checks
    // or documents what its arguments must be; see their comments).
    unsafe {
        api.set("shim", lua.create_c_function(make_shim)?)?;
        api.set("make_next", lua.create_c_function(make_ro_next)?)?;
        api.set("guard", lua.create_c_function(make_ro_guard)?)?;
    }
    api.set(
        "null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    let cfg = Arc::new(JsonConfig::default());
    let c = cfg.clone();
    api.set(
        "json_config",
        lua.create_function(move |lua, args: MultiValue| json_config(lua, &c, args))?,
    )?;
    let c = cfg.clone();
    api.set(
        "json_encode",
        lua.create_function(move |lua, v: Value| {
            let mut out = Vec::new();
            match json_encode(&v, 0, &mut out, &c) {
                Ok(()) => Ok((Value::String(lua.create_string(&out)?), Value::Nil)),
                Err(e) => Ok((Value::Nil, Value::String(lua.create_string(&e)?))),
            }
        })?,
    )?;
    api.set(
        "json_decode",
        lua.create_function(move |lua, s: mlua::LuaString| {
            let data = s.as_bytes().to_vec();
            match json_decode(lua, &data, &cfg) {
                Ok(v) => Ok((true, v)),
                Err(JsonErr::Msg(m)) => Ok((false, Value::String(lua.create_string(&m)?))),
                Err(JsonErr::Lua(e)) => Err(e),
            }
        })?,
    )?;
    api.set(
        "mp_pack",
        lua.create_function(|lua, args: MultiValue| {
            let mut out = Vec::new();
            for v in args.iter() {
                mp_encode(v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    api.set(
        "mp_unpack",
        lua.create_function(|lua, (s, limit, offset): (mlua::LuaString, f64, f64)| {
            // lua_cmsgpack reads them as C ints: any number is taken modulo 2^32
            // (saturating first, as Rust's casts do), never an error.
            let int = |x: f64| (x as i64) as i32 as i64;
            let data = s.as_bytes().to_vec();
            mp_unpack(lua, &data, int(limit), int(offset))
        })?,
    )?;
    api.set(
        "bit",
        lua.create_function(|lua, args: MultiValue| bit_op(lua, args))?,
    )?;
    api.set(
        "struct",
        lua.create_function(|lua, args: MultiValue| {
            let mut it = args.into_iter();
            let name = match it.next() {
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => String::new(),
            };
            struct_op(lua, &name, it.collect())
        })?,
    )?;

    Ok(())
}

/// `make_next(prot, proxy_of)`: the `next` scripts see, as a C closure over the two
/// prelude maps (upvalue 1: proxy -> the table it stands for; upvalue 2: shared table
/// -> its proxy). See `ro_next`.
unsafe extern "C-unwind" fn make_ro_next(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::luaL_checktype(l, 2, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 2);
    ffi::lua_pushcclosure(l, ro_next, 2);
    1
}

/// `next(t, k)` where a read-only proxy is iterated through the table it stands for
/// and a value that is a shared table comes out as its proxy: a script never gets a
/// shared table itself. Other tables are iterated as by Lua's `next`.
unsafe extern "C-unwind" fn ro_next(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 2);
    ffi::lua_pushvalue(l, 1);
    ffi::lua_rawget(l, ffi::lua_upvalueindex(1));
    let proxy = ffi::lua_type(l, -1) == ffi::LUA_TTABLE;
    if proxy {
        ffi::lua_replace(l, 1);
    } else {
        ffi::lua_pop(l, 1);
    }
    // Stack: table, key (a C function has LUA_MINSTACK free slots).
    if ffi::lua_next(l, 1) == 0 {
        ffi::lua_pushnil(l);
        return 1;
    }
    if !proxy {
        // A script's own table holds no shared table (it could only have got
        // proxies to store).
        return 2;
    }
    ffi::lua_pushvalue(l, -1);
    ffi::lua_rawget(l, ffi::lua_upvalueindex(2));
    if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
        ffi::lua_pop(l, 1);
    } else {
        ffi::lua_replace(l, -2);
    }
    2
}

/// `guard(prot, f)`: `f` (a C function that writes its first argument raw, such as
/// `table.insert`) wrapped so that it raises Redis's read-only error when that
/// argument is a read-only proxy (upvalue 1: the proxy map; upvalue 2: `f`). Returns
/// `f` itself when it is not a C function.
unsafe extern "C-unwind" fn make_ro_guard(l: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 2);
    if ffi::lua_tocfunction(l, 2).is_none() {
        return 1;
    }
    ffi::lua_pushcclosure(l, ro_guard, 2);
    1
}

unsafe extern "C-unwind" fn ro_guard(l: *mut ffi::lua_State) -> c_int {
    if ffi::lua_type(l, 1) == ffi::LUA_TTABLE {
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rawget(l, ffi::lua_upvalueindex(1));
        let readonly = ffi::lua_type(l, -1) != ffi::LUA_TNIL;
        ffi::lua_pop(l, 1);
        if readonly {
            ffi::lua_pushstring(l, READONLY.as_ptr());
            ffi::lua_error(l);
        }
    }
    match ffi::lua_tocfunction(l, ffi::lua_upvalueindex(2)) {
        // The original runs in this very frame (not through lua_call), so its error
        // messages name the function and the script position as Redis's do. It is
        // a C function of Lua's table library (no upvalues), called on the state
        // and arguments Lua gave this closure, as Lua would call it.
        Some(f) => f(l),
        None => 0,
    }
}

/// Wraps a library implementation (argument 1) in a C closure: it calls the
/// implementation and reads its status (0 = return the values that follow, 1 = raise
/// the next value, 2 = raise the next string prefixed with the caller's position, like
/// luaL_error). Library functions are then C functions as in Redis: never
/// tail-called away, and errors point at the script line.
unsafe extern "C-unwind" fn make_shim(l: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(l, 1);
    ffi::lua_pushcclosure(l, lib_shim, 1);
    1
}

unsafe extern "C-unwind" fn lib_shim(l: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    ffi::luaL_checkstack(l, 4, std::ptr::null());
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, n, ffi::LUA_MULTRET);
    let nres = ffi::lua_gettop(l);
    if nres == 0 {
        return 0;
    }
    match ffi::lua_tonumber(l, 1) as i64 {
        0 => {
            ffi::lua_remove(l, 1);
            nres - 1
        }
        1 => {
            ffi::lua_settop(l, 2);
            ffi::lua_error(l)
        }
        _ => {
            ffi::lua_settop(l, 2);
            ffi::luaL_where(l, 1);
            ffi::lua_insert(l, 2);
            ffi::lua_concat(l, 2);
            ffi::lua_error(l)
        }
    }
}
