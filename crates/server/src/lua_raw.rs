//! The hot path of scripting on the raw Lua C API: KEYS/ARGV tables, `redis.call`
//! arguments and replies moved between the Lua stack and Rust without mlua values
//! (each mlua value is a registry reference: measured, they made EVALSHA of a
//! two-command script cost twice what Redis's does; see ARCHITECTURE.md).
//!
//! Conventions: every function here leaves the stack balanced as documented, never
//! raises a Lua error itself (pushes can only fail on out-of-memory, where Lua's
//! allocator aborts the process as Rust's does), and holds no Rust value with a
//! destructor across a call that could raise.

use bytes::{Bytes, BytesMut};
use mlua::ffi;
use redsnap_engine::Reply;
use std::os::raw::c_int;

/// Pushes a byte string.
///
/// # Safety
/// `l` is a valid Lua state with one free stack slot.
#[inline]
pub(crate) unsafe fn push_bytes(l: *mut ffi::lua_State, b: &[u8]) {
    ffi::lua_pushlstring_(l, b.as_ptr().cast(), b.len());
}

/// `t[key] = <top>` for the table just below the top (pops the value).
unsafe fn set_field(l: *mut ffi::lua_State, key: &[u8]) {
    push_bytes(l, key);
    ffi::lua_insert(l, -2);
    ffi::lua_rawset(l, -3);
}

/// Sets the global named by upvalue `name_up` (raw: the globals are read-only to
/// scripts) to the table held in upvalue `up` of the running C closure, emptied and
/// refilled with `items`. The same two tables serve every run (no allocation, no
/// garbage per call): a script cannot keep a reference past its run (globals and
/// library tables are read-only), and whatever it did to the table (elements, fields,
/// a metatable) is undone here. A table a script grew beyond `KEEP` entries is
/// replaced by a new one, so its memory is not held.
///
/// The usual run costs little: the previous run's elements are cleared by index
/// (`1..=#t`), one `next` confirms nothing else is left (otherwise every key is
/// cleared), and the global is only assigned when it no longer holds the table.
///
/// # Safety
/// `l` is a valid Lua state running a C closure whose upvalue `up` is a table and
/// `name_up` a string, with four free stack slots.
pub(crate) unsafe fn refill_global_array(
    l: *mut ffi::lua_State,
    name_up: c_int,
    up: c_int,
    items: &[Bytes],
) {
    const KEEP: usize = 256;
    let up = ffi::lua_upvalueindex(up);
    ffi::lua_pushvalue(l, up);
    let t = ffi::lua_gettop(l);
    if ffi::lua_getmetatable(l, t) != 0 {
        ffi::lua_pop(l, 1);
        ffi::lua_pushnil(l);
        ffi::lua_setmetatable(l, t);
    }
    let len = ffi::lua_objlen(l, t);
    for i in 1..=len.min(KEEP + 1) {
        ffi::lua_pushnil(l);
        ffi::lua_rawseti_(l, t, i as c_int);
    }
    let mut cleared = len;
    ffi::lua_pushnil(l);
    if ffi::lua_next(l, t) != 0 {
        // Something beyond the elements (fields, holes): clear every key.
        ffi::lua_pop(l, 2);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, t) != 0 {
            // Assigning nil to the current key is allowed during a traversal.
            ffi::lua_pop(l, 1);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_pushnil(l);
            ffi::lua_rawset(l, t);
            cleared += 1;
        }
    }
    if cleared > KEEP {
        ffi::lua_pop(l, 1);
        ffi::lua_createtable(l, items.len().min(c_int::MAX as usize) as c_int, 0);
        ffi::lua_pushvalue(l, -1);
        ffi::lua_replace(l, up);
    }
    for (i, it) in items.iter().enumerate() {
        push_bytes(l, it);
        ffi::lua_rawseti_(l, t, (i + 1).min(c_int::MAX as usize) as c_int);
    }
    let name = ffi::lua_upvalueindex(name_up);
    ffi::lua_pushvalue(l, name);
    ffi::lua_rawget(l, ffi::LUA_GLOBALSINDEX);
    let bound = ffi::lua_rawequal(l, -1, t) != 0;
    ffi::lua_pop(l, 1);
    if bound {
        ffi::lua_pop(l, 1);
    } else {
        ffi::lua_pushvalue(l, name);
        ffi::lua_insert(l, -2);
        ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
    }
}

/// The arguments of a `redis.call` on the stack (1..=top) as a command's argv, with
/// Redis's conversions (numbers as `%.17g`); the error text otherwise. The bytes are
/// copied into `buf` and the arguments are slices of it: one buffer for the whole
/// call, reused from call to call once the previous call's arguments are dropped.
///
/// # Safety
/// `l` is a valid Lua state.
pub(crate) unsafe fn read_argv(
    l: *mut ffi::lua_State,
    buf: &mut BytesMut,
) -> Result<Vec<Bytes>, &'static [u8]> {
    let n = ffi::lua_gettop(l);
    if n == 0 {
        return Err(b"Please specify at least one argument for this redis lib call");
    }
    // A buffer grown by a huge argument is not kept.
    if buf.capacity() > ARGV_BUF_KEEP {
        *buf = BytesMut::new();
    }
    buf.clear();
    // Room for many calls' arguments: the buffer is reclaimed in place (no
    // allocation) once the previous calls' arguments are dropped.
    if buf.capacity() < 512 {
        buf.reserve(8 * 1024);
    }
    // Where each argument ends in `buf` (on the stack for the usual few arguments).
    let mut small = [0usize; 16];
    let mut large = Vec::new();
    let ends: &mut [usize] = if n as usize <= small.len() {
        &mut small[..n as usize]
    } else {
        large.resize(n as usize, 0);
        &mut large
    };
    for (i, end) in (1..=n).zip(ends.iter_mut()) {
        match ffi::lua_type(l, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, i, &mut len);
                if !p.is_null() {
                    buf.extend_from_slice(std::slice::from_raw_parts(p.cast::<u8>(), len));
                }
            }
            ffi::LUA_TNUMBER => {
                let v = ffi::lua_tonumber(l, i);
                buf.extend_from_slice(redsnap_engine::num::fmt_g(v, 17).as_bytes());
            }
            _ => return Err(b"Lua redis lib command arguments must be strings or integers"),
        }
        *end = buf.len();
    }
    let all = buf.split().freeze();
    let mut start = 0;
    Ok(ends
        .iter()
        .map(|&end| {
            let b = all.slice(start..end);
            start = end;
            b
        })
        .collect())
}

/// The largest argument buffer kept between `redis.call`s.
const ARGV_BUF_KEEP: usize = 64 * 1024;

/// The script result on top of the stack as a reply when it is a scalar (string,
/// number, boolean, nil: Redis's luaReplyToRedisReply for those); None for a table,
/// which the caller converts the general way.
///
/// # Safety
/// `l` is a valid Lua state with a value on top.
pub(crate) unsafe fn scalar_reply(l: *mut ffi::lua_State, resp3: bool) -> Option<Reply> {
    Some(match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => {
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            if p.is_null() {
                Reply::Bulk(Bytes::new())
            } else {
                Reply::Bulk(Bytes::copy_from_slice(std::slice::from_raw_parts(
                    p.cast::<u8>(),
                    len,
                )))
            }
        }
        // Lua numbers are doubles; the reply is the integer part, as in Redis.
        ffi::LUA_TNUMBER => Reply::Int(ffi::lua_tonumber(l, -1) as i64),
        ffi::LUA_TBOOLEAN => bool_reply(ffi::lua_toboolean(l, -1) != 0, resp3),
        ffi::LUA_TTABLE => return None,
        _ => Reply::Nil,
    })
}

/// A script's boolean as a reply: true/false under RESP3; 1 or nil under RESP2.
pub(crate) fn bool_reply(b: bool, resp3: bool) -> Reply {
    if resp3 {
        Reply::Bool(b)
    } else if b {
        Reply::Int(1)
    } else {
        Reply::Nil
    }
}

/// Pushes Redis's error table for a reply text (`-CODE msg`, or `msg` for ERR):
/// `{err = 'CODE msg'}`, with `ignore_error_stats_update = true` when asked.
///
/// # Safety
/// `l` is a valid Lua state with three free stack slots.
pub(crate) unsafe fn push_error_table(l: *mut ffi::lua_State, buf: &[u8], ignore_stats: bool) {
    ffi::lua_createtable(l, 0, 2);
    push_bytes(l, &crate::scripting::error_text_from_buf(buf));
    set_field(l, b"err");
    if ignore_stats {
        ffi::lua_pushboolean(l, 1);
        set_field(l, b"ignore_error_stats_update");
    }
}

/// `{name = <top>}` in place of the top value.
unsafe fn wrap_single(l: *mut ffi::lua_State, name: &[u8]) {
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_insert(l, -2);
    set_field(l, name);
}

/// Pushes a command reply as the script sees it (Redis's redisProtocolToLuaType), for
/// the protocol the script selected with redis.setresp. Returns false (pushing
/// nothing) when the Lua stack cannot grow for a deeply nested reply.
///
/// # Safety
/// `l` is a valid Lua state.
pub(crate) unsafe fn push_reply(l: *mut ffi::lua_State, r: &Reply, resp3: bool) -> bool {
    if ffi::lua_checkstack(l, 4) == 0 {
        return false;
    }
    match r {
        Reply::Simple(s) => {
            push_bytes(l, s);
            wrap_single(l, b"ok");
        }
        Reply::Error(e) => {
            let mut buf = Vec::with_capacity(e.len() + 1);
            buf.push(b'-');
            buf.extend_from_slice(e);
            push_error_table(l, &buf, true);
        }
        Reply::Int(i) => ffi::lua_pushnumber(l, *i as f64),
        Reply::Bulk(b) => push_bytes(l, b),
        Reply::BigNumber(n) => {
            push_bytes(l, n);
            if resp3 {
                wrap_single(l, b"big_number");
            }
        }
        // Redis parses attributes and drops them: scripts see the reply alone.
        Reply::Attribute(_, reply) => return push_reply(l, reply, resp3),
        Reply::Nil | Reply::NilArray => {
            if resp3 {
                ffi::lua_pushnil(l);
            } else {
                ffi::lua_pushboolean(l, 0);
            }
        }
        Reply::Array(items) | Reply::Push(items) => return push_list(l, items, resp3),
        Reply::Set(items) => {
            if !resp3 {
                return push_list(l, items, resp3);
            }
            ffi::lua_createtable(l, 0, items.len().min(c_int::MAX as usize) as c_int);
            for it in items {
                if !push_reply(l, it, resp3) {
                    ffi::lua_pop(l, 1);
                    return false;
                }
                set_key_true(l);
            }
            wrap_single(l, b"set");
        }
        Reply::Map(pairs) => {
            if resp3 {
                ffi::lua_createtable(l, 0, pairs.len().min(c_int::MAX as usize) as c_int);
                for (k, v) in pairs {
                    if !push_reply(l, k, resp3) {
                        ffi::lua_pop(l, 1);
                        return false;
                    }
                    if !push_reply(l, v, resp3) {
                        ffi::lua_pop(l, 2);
                        return false;
                    }
                    rawset_nonnil_key(l);
                }
                wrap_single(l, b"map");
            } else {
                let n = pairs.len().saturating_mul(2).min(c_int::MAX as usize);
                ffi::lua_createtable(l, n as c_int, 0);
                let mut i: c_int = 1;
                for (k, v) in pairs {
                    for it in [k, v] {
                        if !push_reply(l, it, resp3) {
                            ffi::lua_pop(l, 1);
                            return false;
                        }
                        ffi::lua_rawseti_(l, -2, i);
                        i = i.saturating_add(1);
                    }
                }
            }
        }
        Reply::Double(d) => {
            if resp3 {
                ffi::lua_pushnumber(l, *d);
                wrap_single(l, b"double");
            } else {
                push_bytes(l, redsnap_engine::num::fmt_g17(*d).as_bytes());
            }
        }
        Reply::HumanDouble(d) => {
            if resp3 {
                ffi::lua_pushnumber(l, *d);
                wrap_single(l, b"double");
            } else {
                push_bytes(l, redsnap_engine::num::fmt_human(*d).as_bytes());
            }
        }
        Reply::Bool(b) => {
            if resp3 {
                ffi::lua_pushboolean(l, *b as c_int);
            } else {
                ffi::lua_pushnumber(l, *b as i64 as f64);
            }
        }
        Reply::Verbatim(fmt, text) => {
            if resp3 {
                ffi::lua_createtable(l, 0, 2);
                push_bytes(l, fmt.as_bytes());
                set_field(l, b"format");
                push_bytes(l, text);
                set_field(l, b"string");
                wrap_single(l, b"verbatim_string");
            } else {
                push_bytes(l, text);
            }
        }
    }
    true
}

/// `t[<top>] = true` for the table below the top (pops the key; a nil key is
/// dropped, as Lua cannot hold it).
unsafe fn set_key_true(l: *mut ffi::lua_State) {
    if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
        ffi::lua_pop(l, 1);
        return;
    }
    ffi::lua_pushboolean(l, 1);
    ffi::lua_rawset(l, -3);
}

/// `t[k] = v` with k, v on top of the table (pops both; a nil key is dropped).
unsafe fn rawset_nonnil_key(l: *mut ffi::lua_State) {
    if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
        ffi::lua_pop(l, 2);
        return;
    }
    ffi::lua_rawset(l, -3);
}

unsafe fn push_list(l: *mut ffi::lua_State, items: &[Reply], resp3: bool) -> bool {
    ffi::lua_createtable(l, items.len().min(c_int::MAX as usize) as c_int, 0);
    for (i, it) in items.iter().enumerate() {
        if !push_reply(l, it, resp3) {
            ffi::lua_pop(l, 1);
            return false;
        }
        ffi::lua_rawseti_(l, -2, (i + 1).min(c_int::MAX as usize) as c_int);
    }
    true
}

/// The message of the error value at the top of the stack, as Redis's
/// `luaExtractErrorInformation` reads it: an error table's `err` field, or "ERR "
/// and a string (or number). Leaves the stack as it was.
///
/// # Safety
/// `l` is a valid Lua state with an error value on top and two free stack slots.
pub(crate) unsafe fn error_message(l: *mut ffi::lua_State) -> Vec<u8> {
    let text = |l: *mut ffi::lua_State, idx: c_int| -> Option<Vec<u8>> {
        if ffi::lua_type(l, idx) == ffi::LUA_TSTRING || ffi::lua_type(l, idx) == ffi::LUA_TNUMBER {
            // A copy first: lua_tolstring would turn a number on the stack into a string.
            ffi::lua_pushvalue(l, idx);
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            let out = if p.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts(p as *const u8, len).to_vec())
            };
            ffi::lua_pop(l, 1);
            out
        } else {
            None
        }
    };
    match ffi::lua_type(l, -1) {
        ffi::LUA_TTABLE => {
            push_bytes(l, b"err");
            ffi::lua_rawget(l, -2);
            let msg = text(l, -1);
            ffi::lua_pop(l, 1);
            msg.unwrap_or_else(|| b"ERR unknown error".to_vec())
        }
        _ => match text(l, -1) {
            Some(t) => {
                let mut out = b"ERR ".to_vec();
                out.extend_from_slice(&t);
                out
            }
            None => b"ERR unknown error".to_vec(),
        },
    }
}
