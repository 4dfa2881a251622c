//! Lua scripting as in Redis 7.0: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
//! LOAD/EXISTS/FLUSH/KILL/HELP.
//!
//! One long-lived Lua 5.1 state (mlua, vendored) holds every script compiled once and
//! cached by SHA1, as Redis does. The sandbox follows Redis 7.0: no io/os/loadfile/
//! dofile/require/print, read-only globals and libraries, errors for reads of
//! undefined globals, bytecode refused by `loadstring`. The `redis` library runs
//! commands through the normal command path (lookup, arity, NOSCRIPT, read-only and
//! OOM checks, then `Conn::execute`) with Redis's conversions both ways; `cjson`,
//! `cmsgpack` and `bit` are implemented here in Rust.
//!
//! Scripts run under the server lock, so they are atomic. Their commands leave
//! append-log records as executed; the server appends the whole command's records as
//! one frame. An instruction hook (every 100k instructions, when
//! busy-reply-threshold > 0) checks `Shared::busy.kill`: other connections answer
//! BUSY on their own (see `Conn::busy_gate`) and SCRIPT KILL / SHUTDOWN NOSAVE reach
//! the script through that flag.

use crate::conn::{Conn, Step};
use crate::lua_raw;
use crate::state::Inner;
use bytes::Bytes;
use mlua::ffi;
use mlua::{
    chunk::ChunkMode, Function, HookTriggers, LightUserData, Lua, LuaOptions, MultiValue,
    RegistryKey, StdLib, Table, Value, VmState,
};
use redsnap_engine::num::fmt_g;
use redsnap_engine::table::{self, flags, CommandSpec};
use redsnap_engine::{now_ms, Reply};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The sandbox, written in Lua (see the comment at its top).
const PRELUDE: &str = r###"-- redsnap's Lua sandbox, run once when the scripting state is created. It builds
-- what Redis 7.0 builds in C: the `redis`, `cjson`, `cmsgpack` and `bit` libraries
-- (their work is done by Rust functions in `I`), read-only globals and libraries,
-- the error handler that adds the script position, and the PRNG of `math.random`.
-- Read-only tables are emulated with empty proxies (Redis patches Lua instead).
--
-- Library functions are C closures made by `shim` around an implementation that
-- returns a status first: 0 = values follow, 1 = raise the next value as is, 2 =
-- raise the next string prefixed with the caller's position (like luaL_error). So a
-- library function never appears as a Lua frame (no tail-call elimination, errors
-- positioned at the script line), exactly like Redis's C functions.
local I, G = ...
local shim = I.shim
local getinfo = debug.getinfo
local raw_setfenv, raw_getmetatable, raw_setmetatable = setfenv, getmetatable, setmetatable
local raw_rawset, raw_rawget, raw_pairs, raw_next, raw_ipairs = rawset, rawget, pairs, next, ipairs
local raw_loadstring, raw_load = loadstring, load
local raw_error, raw_select, raw_type = error, select, type
local raw_tostring, raw_tonumber, raw_unpack = tostring, tonumber, unpack
local raw_xpcall = xpcall
local floor, ceil = math.floor, math.ceil
local concat = table.concat
local INTERNAL = '=redsnap'

local prot = raw_setmetatable({}, { __mode = 'k' })
local fakemeta = raw_setmetatable({}, { __mode = 'k' })

local function ro_newindex()
  raw_error('Attempt to modify a readonly table', 2)
end

local function protect(t)
  local p = {}
  raw_setmetatable(p, { __index = t, __newindex = ro_newindex, __metatable = false })
  prot[p] = t
  return p
end

-- Error handler (Redis's __redis__err__handler): string errors become
-- {err='ERR ...'}; the position of the script code that raised is added.
-- Level 1 = find_frame, 2 = handler, 3 = the function that raised. Frames of
-- this prelude (metamethods) are invisible.
local function find_frame()
  local lvl = 3
  local first = false
  while true do
    local i = getinfo(lvl, 'nSl')
    if not i then
      return nil
    end
    if i.source ~= INTERNAL then
      if first or i.what ~= 'C' then
        return i
      end
      first = true
    end
    lvl = lvl + 1
  end
end

local errmsg_impl = I.errmsg
local function err_handler(err)
  local i = find_frame()
  if raw_type(err) ~= 'table' then
    if raw_type(err) == 'userdata' then
      local m = errmsg_impl(err)
      if m ~= nil then
        err = m
      end
    end
    err = { err = 'ERR ' .. raw_tostring(err) }
  end
  if i then
    raw_rawset(err, 'source', i.source)
    raw_rawset(err, 'line', i.currentline)
  end
  return err
end


-- Removed globals (Redis 7.0 does not load or removes these).
for _, k in raw_ipairs({ 'print', 'dofile', 'loadfile', 'getfenv', 'setfenv', 'newproxy',
  'module', 'require', 'package', 'os', 'io', 'debug' }) do
  raw_rawset(G, k, nil)
end

-- Argument helpers emulating luaL_check* messages (positioned at the caller).
-- They return nil and the message on error.
local function targ(v, n, present, fname)
  local x = raw_tonumber(v)
  if x == nil then
    return nil, ("bad argument #%d to '%s' (number expected, got %s)"):format(
      n, fname, present and raw_type(v) or 'no value')
  end
  if x >= 0 then
    return floor(x)
  end
  return ceil(x)
end

local function sarg(v, n, present, fname)
  local t = raw_type(v)
  if t == 'string' then
    return v
  end
  if t == 'number' then
    return raw_tostring(v)
  end
  return nil, ("bad argument #%d to '%s' (string expected, got %s)"):format(
    n, fname, present and t or 'no value')
end

-- math.random / math.randomseed on Redis's rand48 generator.
local rand, srand = I.rand, I.srand
math.random = shim(function(...)
  local r = rand()
  local n = raw_select('#', ...)
  if n == 0 then
    return 0, r
  end
  local a, b = ...
  if n == 1 then
    local u, e = targ(a, 1, true, 'random')
    if not u then return 2, e end
    if u < 1 then
      return 2, "bad argument #1 to 'random' (interval is empty)"
    end
    return 0, floor(r * u) + 1
  elseif n == 2 then
    local l, e = targ(a, 1, true, 'random')
    if not l then return 2, e end
    local u, e2 = targ(b, 2, true, 'random')
    if not u then return 2, e2 end
    if l > u then
      return 2, "bad argument #2 to 'random' (interval is empty)"
    end
    return 0, floor(r * (u - l + 1)) + l
  end
  return 2, 'wrong number of arguments'
end)
math.randomseed = shim(function(...)
  local s, e = targ((...), 1, raw_select('#', ...) > 0, 'randomseed')
  if not s then return 2, e end
  srand(s)
  return 0
end)

-- The redis library.
local function push_error(buf)
  local code, msg
  if buf:sub(1, 1) == '-' then
    local sp = buf:find(' ', 1, true)
    if sp then
      code, msg = buf:sub(2, sp - 1), buf:sub(sp + 1)
    else
      code, msg = 'ERR', buf:sub(2)
    end
  else
    code, msg = 'ERR', buf
  end
  msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return { err = code .. ' ' .. msg }
end

local R = {}
-- C functions on the raw Lua API (they raise their errors themselves).
R.call = I.call
R.pcall = I.pcall
R.acl_check_cmd = shim(I.acl)
R.error_reply = function(...)
  local e = ...
  if raw_select('#', ...) ~= 1 or raw_type(e) ~= 'string' then
    return push_error('wrong number or type of arguments')
  end
  if e:sub(1, 1) ~= '-' then
    e = '-' .. e
  end
  return push_error(e)
end
R.status_reply = function(...)
  local s = ...
  if raw_select('#', ...) ~= 1 or raw_type(s) ~= 'string' then
    return push_error('wrong number or type of arguments')
  end
  return { ok = s }
end
local sha1_impl = I.sha1
R.sha1hex = shim(function(...)
  if raw_select('#', ...) ~= 1 then
    return 1, push_error('wrong number of arguments')
  end
  return 0, sha1_impl((...))
end)
local log_impl = I.log
R.log = shim(function(...)
  if raw_select('#', ...) < 2 then
    return 1, push_error('redis.log() requires two arguments or more.')
  end
  local lvl = raw_tonumber((...))
  if lvl == nil then
    return 1, push_error('First argument must be a number (log level).')
  end
  if lvl >= 0 then lvl = floor(lvl) else lvl = ceil(lvl) end
  if lvl < 0 or lvl > 3 then
    return 1, push_error('Invalid debug level.')
  end
  log_impl(lvl, raw_select(2, ...))
  return 0
end)
local setresp_impl = I.setresp
R.setresp = shim(function(...)
  if raw_select('#', ...) ~= 1 then
    return 1, push_error('redis.setresp() requires one argument.')
  end
  local v = raw_tonumber((...)) or 0
  if v >= 0 then v = floor(v) else v = ceil(v) end
  if v ~= 2 and v ~= 3 then
    return 1, push_error('RESP version must be 2 or 3.')
  end
  setresp_impl(v)
  return 0
end)
local setrepl_impl = I.setrepl
R.set_repl = shim(function(...)
  if raw_select('#', ...) ~= 1 then
    return 1, push_error('redis.set_repl() requires two arguments.')
  end
  local v = raw_tonumber((...)) or 0
  if v >= 0 then v = floor(v) else v = ceil(v) end
  if v < 0 or v > 3 then
    return 1, push_error('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
  setrepl_impl(v)
  return 0
end)
R.replicate_commands = function()
  return true
end
R.breakpoint = function()
  return false
end
R.debug = function()
end
R.LOG_DEBUG = 0
R.LOG_VERBOSE = 1
R.LOG_NOTICE = 2
R.LOG_WARNING = 3
R.REPL_NONE = 0
R.REPL_AOF = 1
R.REPL_SLAVE = 2
R.REPL_REPLICA = 2
R.REPL_ALL = 3
R.REDIS_VERSION = I.version
R.REDIS_VERSION_NUM = I.version_num

-- cjson.
local C = {}
local json_encode, json_decode = I.json_encode, I.json_decode
C._NAME = 'cjson'
C._VERSION = '2.1.0'
C.null = I.null
C.encode = shim(function(...)
  if raw_select('#', ...) ~= 1 then
    return 2, "bad argument #1 to 'encode' (expected 1 argument)"
  end
  local s, e = json_encode((...))
  if s == nil then
    return 2, e
  end
  return 0, s
end)
C.decode = shim(function(...)
  if raw_select('#', ...) ~= 1 then
    return 2, "bad argument #1 to 'decode' (expected 1 argument)"
  end
  local s, e = sarg((...), 1, true, 'decode')
  if not s then return 2, e end
  local ok, v = json_decode(s)
  if not ok then
    return 2, v
  end
  return 0, v
end)
C.encode_sparse_array = function() return false, 2, 10 end
C.encode_max_depth = function() return 1000 end
C.decode_max_depth = function() return 1000 end
C.encode_number_precision = function() return 14 end
C.encode_keep_buffer = function() return true end
C.encode_invalid_numbers = function() return false end
C.decode_invalid_numbers = function() return true end

-- cmsgpack.
local P = {}
local mp_pack, mp_unpack = I.mp_pack, I.mp_unpack
P._NAME = 'cmsgpack'
P._VERSION = 'lua-cmsgpack 0.4.0'
P._COPYRIGHT = 'Copyright (C) 2012, Salvatore Sanfilippo'
P._DESCRIPTION = 'MessagePack C implementation for Lua'
P.pack = shim(function(...)
  if raw_select('#', ...) == 0 then
    return 2, "bad argument #0 to 'pack' (MessagePack pack needs input.)"
  end
  return 0, mp_pack(...)
end)
local function unpack_result(n, t)
  if n == nil then
    return 2, t
  end
  return 0, raw_unpack(t, 1, n)
end
P.unpack = shim(function(...)
  local s, e = sarg((...), 1, raw_select('#', ...) > 0, 'unpack')
  if not s then return 2, e end
  return unpack_result(mp_unpack(s, 0, 0))
end)
P.unpack_one = shim(function(...)
  local a, b = ...
  local s, e = sarg(a, 1, raw_select('#', ...) > 0, 'unpack_one')
  if not s then return 2, e end
  local off = 0
  if b ~= nil then
    off, e = targ(b, 2, true, 'unpack_one')
    if not off then return 2, e end
  end
  return unpack_result(mp_unpack(s, 1, off))
end)
P.unpack_limit = shim(function(...)
  local a, b, c = ...
  local s, e = sarg(a, 1, raw_select('#', ...) > 0, 'unpack_limit')
  if not s then return 2, e end
  local lim
  lim, e = targ(b, 2, raw_select('#', ...) > 1, 'unpack_limit')
  if not lim then return 2, e end
  local off = 0
  if c ~= nil then
    off, e = targ(c, 3, true, 'unpack_limit')
    if not off then return 2, e end
  end
  return unpack_result(mp_unpack(s, lim, off))
end)

-- bit (LuaBitOp).
local B = {}
local bit_impl = I.bit
for _, name in raw_ipairs({ 'tobit', 'tohex', 'bnot', 'band', 'bor', 'bxor', 'lshift',
  'rshift', 'arshift', 'rol', 'ror', 'bswap' }) do
  B[name] = shim(function(...)
    local ok, v = bit_impl(name, ...)
    if not ok then
      return 2, v
    end
    return 0, v
  end)
end

-- struct: not implemented by redsnap.
local S = {}
for _, name in raw_ipairs({ 'pack', 'unpack', 'size' }) do
  S[name] = shim(function()
    return 2, 'struct.' .. name .. ' is not supported by redsnap'
  end)
end

-- Read-only libraries.
local string_meta = raw_getmetatable('')
G.string = protect(string)
string_meta.__index = G.string
local string_meta_proxy = protect(string_meta)
G.table = protect(table)
G.math = protect(math)
G.coroutine = protect(coroutine)
G.redis = protect(R)
G.cjson = protect(C)
G.cmsgpack = protect(P)
G.bit = protect(B)
G.struct = protect(S)
local cjson_proxy = G.cjson
C.new = function()
  return cjson_proxy
end

-- Base functions that could bypass the protection.
G.getmetatable = shim(function(...)
  if raw_select('#', ...) == 0 then
    return 2, "bad argument #1 to 'getmetatable' (value expected)"
  end
  local o = ...
  if o ~= nil and prot[o] ~= nil then
    return 0, fakemeta[o]
  end
  local m = raw_getmetatable(o)
  if m == string_meta then
    return 0, string_meta_proxy
  end
  return 0, m
end)
G.setmetatable = shim(function(t, m)
  if t ~= nil and prot[t] ~= nil then
    return 1, 'Attempt to modify a readonly table'
  end
  return 0, raw_setmetatable(t, m)
end)
G.rawset = shim(function(t, k, v)
  if t ~= nil and prot[t] ~= nil then
    return 1, 'Attempt to modify a readonly table'
  end
  return 0, raw_rawset(t, k, v)
end)
G.rawget = shim(function(t, k)
  local r = t ~= nil and prot[t]
  if r then
    return 0, raw_rawget(r, k)
  end
  return 0, raw_rawget(t, k)
end)
G.pairs = shim(function(...)
  local t = ...
  if raw_type(t) ~= 'table' then
    return 2, ("bad argument #1 to 'pairs' (table expected, got %s)"):format(
      raw_select('#', ...) > 0 and raw_type(t) or 'no value')
  end
  local r = prot[t]
  if r then
    return 0, raw_next, r, nil
  end
  return 0, raw_next, t, nil
end)

-- Redis 7.0's pcall: an error table with an `err` string is caught as that string.
local raw_pcall = pcall
local function pcall_result(ok, ...)
  if ok then
    return 0, true, ...
  end
  local e = ...
  if raw_type(e) == 'table' then
    local m = raw_rawget(e, 'err')
    local tm = raw_type(m)
    if tm == 'string' or tm == 'number' then
      e = m
    end
  end
  return 0, false, e
end
G.pcall = shim(function(...)
  return pcall_result(raw_pcall(...))
end)

local GP = {}

local function chunkid(src)
  local c = src:sub(1, 1)
  if c == '=' or c == '@' then
    return src:sub(2)
  end
  local z = src:find('\0', 1, true)
  if z then src = src:sub(1, z - 1) end
  local len = #src
  local cut = len
  local nl = src:find('\n', 1, true)
  if nl and nl - 1 < cut then cut = nl - 1 end
  if cut > 43 then cut = 43 end
  if cut < len then
    return '[string "' .. src:sub(1, cut) .. '..."]'
  end
  return '[string "' .. src .. '"]'
end

local function loadstring_wrapped(s, name)
  if raw_type(s) == 'string' and s:byte(1) == 27 then
    return nil, chunkid(raw_type(name) == 'string' and name or s) ..
      ":1: unexpected symbol near 'char(27)'"
  end
  local f, e = raw_loadstring(s, name)
  if f then
    raw_setfenv(f, GP)
  end
  return f, e
end
G.loadstring = loadstring_wrapped
G.load = function(f, name)
  if raw_type(f) ~= 'function' then
    return raw_load(f, name)
  end
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    if raw_type(p) ~= 'string' then
      return nil, 'reader function must return a string'
    end
    parts[#parts + 1] = p
  end
  return loadstring_wrapped(concat(parts), name or '=(load)')
end

G.__redis__err__handler = err_handler

-- Globals: scripts run with the empty proxy GP as environment; reads fall through
-- to G, missing names and every assignment raise Redis's errors.
local function missing_global(t, k)
  raw_error("Script attempted to access nonexistent global variable '" .. raw_tostring(k) .. "'", 2)
end
raw_rawset(G, '_G', GP)
raw_setmetatable(G, { __index = missing_global, __newindex = ro_newindex })
raw_setmetatable(GP, { __index = G, __newindex = ro_newindex, __metatable = false })
prot[GP] = G
fakemeta[GP] = protect({ __index = missing_global })

return err_handler, GP
"###;

const KILL_MSG: &str = "Script killed by user with SCRIPT KILL...";

/// Script flags (shebang `#!lua flags=...`).
const SF_COMPAT: u32 = 1;
const SF_NO_WRITES: u32 = 2;
const SF_ALLOW_OOM: u32 = 4;
const SF_ALLOW_STALE: u32 = 8;
const SF_NO_CLUSTER: u32 = 16;
const SF_ALLOW_CROSS_SLOT: u32 = 32;

/// Deepest table nesting converted recursively (script replies, cjson); bounded so
/// that a cyclic or absurdly deep table cannot overflow the thread's stack.
const MAX_NESTING: usize = 200;

/// Redis's rand48 state for math.random (process-wide and never reseeded, as in Redis).
static RAND48: AtomicU64 = AtomicU64::new(0x1234_ABCD_330E);

/// What the `redis` library needs while a script runs: the connection and the server
/// state of the EVAL being served, and the run's flags.
struct RunCtx {
    conn: *mut Conn,
    inner: *mut Inner,
    resp3: bool,
    ro: bool,
    allow_oom: bool,
    script_oom: bool,
    dirty: bool,
    repl: u8,
}

/// Holds the run context for the Lua callbacks. Only touched while the server lock is
/// held and a script runs (the callbacks run synchronously inside `run_script`), so
/// there is never concurrent access.
#[derive(Default)]
struct CtxCell(UnsafeCell<Option<RunCtx>>, UnsafeCell<bytes::BytesMut>);
// SAFETY: see above: accessed only under the server lock, from the thread running the
// script.
unsafe impl Send for CtxCell {}
unsafe impl Sync for CtxCell {}

impl CtxCell {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Option<RunCtx> {
        // SAFETY: no two references are alive at once: each callback takes it, uses it,
        // and returns before another callback can run.
        unsafe { &mut *self.0.get() }
    }

    /// The buffer `redis.call` copies its arguments into (see `lua_raw::read_argv`).
    #[allow(clippy::mut_from_ref)]
    fn argv_buf(&self) -> &mut bytes::BytesMut {
        // SAFETY: as for `get`: used only by the callback running now.
        unsafe { &mut *self.1.get() }
    }
}

struct Script {
    /// The compiled body, held in the registry (its index is what a run pushes).
    func: RegistryKey,
    flags: u32,
}

/// The main Lua state as a raw pointer, for the hot path of a run (`run_script`),
/// which drives it with the C API instead of through mlua. Every use of the state,
/// mlua's or raw, happens under the server lock, one at a time.
struct RawState(*mut ffi::lua_State);
// SAFETY: see above: the state is only used by whoever holds the server lock.
unsafe impl Send for RawState {}
unsafe impl Sync for RawState {}

/// The Lua state and the script cache.
pub struct Scripts {
    lua: Lua,
    raw: RawState,
    env: Table,
    /// The error handler scripts run under (adds the script position).
    err_handler: RegistryKey,
    /// `run_entry` as a Lua function (made once, not per run).
    entry: RegistryKey,
    /// Whether the SCRIPT KILL / busy hook is installed (once, for good).
    hooked: bool,
    cache: HashMap<String, Script, ShaBuild>,
    ctx: Arc<CtxCell>,
}

/// Hashes a script's SHA1 (hex) by its first 16 characters (64 bits of the digest)
/// with the process's keyed SipHash: as safe against crafted collisions as hashing
/// all 40 (finding scripts whose digests share 64 bits is out of reach), in a third
/// of the time; the cache is read on every EVALSHA. Other keys (none are used) would
/// hash by the same prefix.
#[derive(Default, Clone)]
struct ShaBuild(std::hash::RandomState);

struct ShaHasher {
    sip: std::hash::DefaultHasher,
    prefix: [u8; 16],
    filled: usize,
}

impl std::hash::BuildHasher for ShaBuild {
    type Hasher = ShaHasher;
    fn build_hasher(&self) -> ShaHasher {
        ShaHasher {
            sip: self.0.build_hasher(),
            prefix: [0; 16],
            filled: 0,
        }
    }
}

impl std::hash::Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        let k = bytes.len().min(self.prefix.len() - self.filled);
        self.prefix[self.filled..self.filled + k].copy_from_slice(&bytes[..k]);
        self.filled += k;
    }
    fn finish(&self) -> u64 {
        let mut sip = self.sip.clone();
        sip.write(&self.prefix[..self.filled]);
        sip.finish()
    }
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts::build().expect("the Lua scripting state could not be created")
    }

    fn build() -> mlua::Result<Scripts> {
        // SAFETY: the debug library is only used by the prelude, which removes it from
        // the globals before any script runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        let ctx = Arc::new(CtxCell::default());
        let api = lua.create_table()?;
        {
            // redis.call / redis.pcall: C closures over the run context (upvalue 1).
            let cell = Arc::as_ptr(&ctx) as *mut std::ffi::c_void;
            for (name, f) in [
                ("call", lua_redis_call as ffi::lua_CFunction),
                ("pcall", lua_redis_pcall as ffi::lua_CFunction),
            ] {
                // SAFETY: pushes a C closure with one light userdata upvalue; the cell
                // outlives the Lua state (both are owned by `Scripts`).
                let func: Function = unsafe {
                    lua.exec_raw((), |l| {
                        ffi::lua_pushlightuserdata(l, cell);
                        ffi::lua_pushcclosure(l, f, 1);
                    })?
                };
                api.set(name, func)?;
            }
            let c = ctx.clone();
            api.set(
                "acl",
                lua.create_function(move |lua, args: MultiValue| acl_check(lua, &c, args))?,
            )?;
            let c = ctx.clone();
            api.set(
                "setresp",
                lua.create_function(move |_, v: f64| {
                    if let Some(ctx) = c.get().as_mut() {
                        ctx.resp3 = v == 3.0;
                    }
                    Ok(())
                })?,
            )?;
            let c = ctx.clone();
            api.set(
                "setrepl",
                lua.create_function(move |_, v: f64| {
                    if let Some(ctx) = c.get().as_mut() {
                        ctx.repl = v as u8;
                    }
                    Ok(())
                })?,
            )?;
        }
        // SAFETY: plain Lua C functions following the Lua 5.1 API contract.
        api.set("shim", unsafe { lua.create_c_function(make_shim)? })?;
        api.set(
            "errmsg",
            lua.create_function(|_, v: Value| {
                Ok(match v {
                    Value::Error(e) => Some(error_text(&e)),
                    _ => None,
                })
            })?,
        )?;
        api.set("rand", lua.create_function(|_, ()| Ok(rand48_next()))?)?;
        api.set(
            "srand",
            lua.create_function(|_, seed: f64| {
                let s = seed as i64 as i32 as u32 as u64;
                RAND48.store((s << 16) | 0x330E, Ordering::Relaxed);
                Ok(())
            })?,
        )?;
        api.set(
            "sha1",
            lua.create_function(|lua, v: Value| {
                let bytes = value_text(&v).unwrap_or_default();
                lua.create_string(sha1_hex(&bytes))
            })?,
        )?;
        api.set(
            "log",
            lua.create_function(|_, args: MultiValue| {
                let mut it = args.into_iter();
                let level = match it.next() {
                    Some(Value::Integer(i)) => i,
                    Some(Value::Number(n)) => n as i64,
                    _ => 2,
                };
                let mut msg = Vec::new();
                for (j, v) in it.enumerate() {
                    if let Some(t) = value_text(&v) {
                        if j != 0 {
                            msg.push(b' ');
                        }
                        msg.extend_from_slice(&t);
                    }
                }
                let msg = String::from_utf8_lossy(&msg);
                match level {
                    0 | 1 => tracing::debug!(target: "redsnap::script", "{msg}"),
                    2 => tracing::info!(target: "redsnap::script", "{msg}"),
                    _ => tracing::warn!(target: "redsnap::script", "{msg}"),
                }
                Ok(())
            })?,
        )?;
        api.set("version", crate::REDIS_VERSION)?;
        api.set("version_num", version_num(crate::REDIS_VERSION))?;
        api.set(
            "null",
            Value::LightUserData(LightUserData(std::ptr::null_mut())),
        )?;
        api.set(
            "json_encode",
            lua.create_function(|lua, v: Value| {
                let mut out = Vec::new();
                match json_encode(&v, 0, &mut out) {
                    Ok(()) => Ok((Value::String(lua.create_string(&out)?), Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(&e)?))),
                }
            })?,
        )?;
        api.set(
            "json_decode",
            lua.create_function(|lua, s: mlua::LuaString| {
                let data = s.as_bytes().to_vec();
                match json_decode(lua, &data) {
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
            lua.create_function(|lua, (s, limit, offset): (mlua::LuaString, i64, i64)| {
                let data = s.as_bytes().to_vec();
                mp_unpack(lua, &data, limit, offset)
            })?,
        )?;
        api.set(
            "bit",
            lua.create_function(|lua, args: MultiValue| bit_op(lua, args))?,
        )?;

        let globals = lua.globals();
        let prelude = lua
            .load(PRELUDE)
            .set_name("=redsnap")
            .set_mode(ChunkMode::Text)
            .into_function()?;
        let (err_handler, env): (Function, Table) = prelude.call((api, globals.clone()))?;
        let err_handler = lua.create_registry_value(err_handler)?;
        let mut main: *mut ffi::lua_State = std::ptr::null_mut();
        // SAFETY: only reads the state pointer (mlua's main state at the top level) and
        // makes a C function value.
        let entry: Function = unsafe {
            lua.exec_raw((), |l| {
                main = l;
                // Upvalues: the KEYS and ARGV tables every run refills, and
                // their global names.
                ffi::lua_createtable(l, 4, 0);
                ffi::lua_createtable(l, 4, 0);
                lua_raw::push_bytes(l, b"KEYS");
                lua_raw::push_bytes(l, b"ARGV");
                ffi::lua_pushcclosure(l, run_entry, 4);
            })?
        };
        let entry = lua.create_registry_value(entry)?;
        Ok(Scripts {
            lua,
            raw: RawState(main),
            env,
            err_handler,
            entry,
            hooked: false,
            cache: HashMap::default(),
            ctx,
        })
    }

    /// Compiles a script body (once) and returns its SHA1; errors are replies.
    fn create(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if self.cache.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body)?;
        let code = &body[shebang_len..];
        if code.first() == Some(&27) {
            return Err(Reply::err(
                "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'",
            ));
        }
        let func = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                let mut msg = b"ERR Error compiling script (new function): ".to_vec();
                msg.extend_from_slice(error_text(&e).as_bytes());
                error_reply_bytes(msg)
            })?;
        let func = self
            .lua
            .create_registry_value(func)
            .map_err(|e| Reply::error(format!("ERR Error compiling script: {}", error_text(&e))))?;
        self.cache.insert(sha.clone(), Script { func, flags });
        Ok(sha)
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
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

/// The message of a Lua error as Lua code would see it.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        other => other.to_string(),
    }
}

fn version_num(v: &str) -> i64 {
    let mut n = 0i64;
    for part in v.split('.').take(3) {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

fn rand48_next() -> f64 {
    let mut x = RAND48.load(Ordering::Relaxed);
    x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    RAND48.store(x, Ordering::Relaxed);
    let v = (x >> 17) as i64;
    (v % 2_147_483_647) as f64 / 2_147_483_647.0
}

/// What `lua_tolstring` gives for a value (strings and numbers), as bytes.
fn value_text(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(fmt_g(*i as f64, 14).into_bytes()),
        Value::Number(n) => Some(lua_number_text(*n).into_bytes()),
        _ => None,
    }
}

/// Lua 5.1's number to string ("%.14g").
fn lua_number_text(n: f64) -> String {
    fmt_g(n, 14)
}

fn error_reply_bytes(mut msg: Vec<u8>) -> Reply {
    for c in msg.iter_mut() {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    Reply::Error(Bytes::from(msg))
}

/// Redis's evalExtractShebangFlags: returns the flags and the shebang length.
fn parse_shebang(body: &[u8]) -> Result<(u32, usize), Reply> {
    if !body.starts_with(b"#!") {
        return Ok((SF_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err(Reply::err("ERR Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.is_empty() {
        return Err(Reply::err("ERR Invalid engine in script shebang"));
    }
    if parts[0] != "#!lua" {
        return Err(Reply::error(format!(
            "ERR Unexpected engine in script shebang: {}",
            parts[0]
        )));
    }
    let mut flags = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(Reply::error(format!("ERR Unknown lua shebang option: {p}")));
        };
        for f in list.split(',') {
            flags |= match f {
                "no-writes" => SF_NO_WRITES,
                "allow-oom" => SF_ALLOW_OOM,
                "allow-stale" => SF_ALLOW_STALE,
                "no-cluster" => SF_NO_CLUSTER,
                "allow-cross-slot-keys" => SF_ALLOW_CROSS_SLOT,
                "" => 0,
                other => {
                    return Err(Reply::error(format!(
                        "ERR Unexpected flag in script shebang: {other}"
                    )))
                }
            };
        }
    }
    Ok((flags, end))
}

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";

fn write_refusal(inner: &Inner) -> Option<Reply> {
    crate::persist::write_refusal(inner)
}

/// Entry point from `Conn::execute` for EVAL*, EVALSHA* and SCRIPT.
pub(crate) fn run(
    conn: &mut Conn,
    inner: &mut Inner,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Step {
    let reply = match spec.name {
        "eval" => eval(conn, inner, argv, false, false),
        "eval_ro" => eval(conn, inner, argv, false, true),
        "evalsha" => eval(conn, inner, argv, true, false),
        "evalsha_ro" => eval(conn, inner, argv, true, true),
        _ => script_command(inner, argv),
    };
    Step::Reply(reply)
}

fn script_command(inner: &mut Inner, argv: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    match sub.as_str() {
        "help" if argv.len() == 2 => {
            let lines = [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ];
            Reply::Array(
                lines
                    .iter()
                    .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
                    .collect(),
            )
        }
        "flush" => {
            let ok = argv.len() == 2
                || (argv.len() == 3
                    && (argv[2].eq_ignore_ascii_case(b"sync")
                        || argv[2].eq_ignore_ascii_case(b"async")));
            if !ok {
                return Reply::err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            inner.scripts = Scripts::new();
            Reply::ok()
        }
        "exists" => Reply::Array(
            argv[2..]
                .iter()
                .map(|s| {
                    let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
                    Reply::Int(inner.scripts.cache.contains_key(&sha) as i64)
                })
                .collect(),
        ),
        "load" if argv.len() == 3 => match inner.scripts.create(&argv[2]) {
            Ok(sha) => Reply::Bulk(Bytes::from(sha)),
            Err(e) => e,
        },
        "kill" if argv.len() == 2 => Reply::err("NOTBUSY No scripts in execution right now."),
        _ => Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

fn eval(conn: &mut Conn, inner: &mut Inner, argv: &[Bytes], evalsha: bool, ro: bool) -> Reply {
    if evalsha && argv[1].len() != 40 {
        return Reply::err(NOSCRIPT_ERR);
    }
    let Some(numkeys) = redsnap_engine::num::parse_i64(&argv[2]) else {
        return Reply::err("ERR value is not an integer or out of range");
    };
    if numkeys > (argv.len() - 3) as i64 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
    // The SHA1 in lower case, on the stack for EVALSHA (no allocation per call).
    let mut lower = [0u8; 40];
    let sha: std::borrow::Cow<str> = if evalsha {
        for (d, c) in lower.iter_mut().zip(argv[1].iter()) {
            *d = c.to_ascii_lowercase();
        }
        match std::str::from_utf8(&lower) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => return Reply::err(NOSCRIPT_ERR),
        }
    } else {
        let sha = sha1_hex(&argv[1]);
        if !inner.scripts.cache.contains_key(&sha) {
            if let Err(e) = inner.scripts.create(&argv[1]) {
                return e;
            }
        }
        std::borrow::Cow::Owned(sha)
    };
    let Some(script) = inner.scripts.cache.get(sha.as_ref()) else {
        return Reply::err(NOSCRIPT_ERR);
    };
    let (func, sflags) = (script.func.id(), script.flags);

    let script_oom = !crate::perform_evictions(inner);
    if sflags & SF_COMPAT == 0 {
        if sflags & SF_NO_WRITES == 0 {
            if let Some(r) = write_refusal(inner) {
                return r;
            }
            if ro {
                return Reply::err(
                    "ERR Can not execute a script with write flag using *_ro command.",
                );
            }
        }
        if sflags & (SF_ALLOW_OOM | SF_NO_WRITES) == 0 && script_oom {
            return Reply::err("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'");
        }
    }
    let keys = &argv[3..3 + numkeys as usize];
    let args = &argv[3 + numkeys as usize..];
    let run = RunCtx {
        conn: conn as *mut Conn,
        inner: inner as *mut Inner,
        resp3: false,
        ro: ro || sflags & SF_NO_WRITES != 0,
        allow_oom: sflags & SF_COMPAT == 0 && sflags & SF_ALLOW_OOM != 0,
        script_oom,
        dirty: false,
        repl: 3,
    };
    run_script(conn, inner, sha.as_ref(), func, keys, args, run)
}

/// What `run_entry` needs: the script's KEYS and ARGV.
struct RunArgs<'a> {
    keys: &'a [Bytes],
    args: &'a [Bytes],
}

/// Called (protected, with the error handler) as `run_entry(args, func)`: sets KEYS
/// and ARGV (raw: the globals are read-only to scripts) and calls the script, leaving
/// its first result. Holds no Rust value with a destructor: an error raised by the
/// script unwinds through it with a long jump.
unsafe extern "C-unwind" fn run_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: argument 1 is the `RunArgs` of the run in progress (see `run_script`).
    let a = &*(ffi::lua_touserdata(l, 1) as *const RunArgs);
    lua_raw::refill_global_array(l, 3, 1, a.keys);
    lua_raw::refill_global_array(l, 4, 2, a.args);
    ffi::lua_remove(l, 1);
    ffi::lua_call(l, 0, 1);
    1
}

/// Registry slot a non-scalar script result is handed to mlua through.
const RESULT_SLOT: &std::ffi::CStr = c"redsnap.script_result";

fn run_script(
    conn: &mut Conn,
    inner: &mut Inner,
    sha: &str,
    func: c_int,
    keys: &[Bytes],
    args: &[Bytes],
    run: RunCtx,
) -> Reply {
    let lua = inner.scripts.lua.clone();
    let raw = inner.scripts.raw.0;
    let (handler, entry) = (inner.scripts.err_handler.id(), inner.scripts.entry.id());
    let ctx = inner.scripts.ctx.clone();

    // Busy-script state for other connections, and the hook that lets SCRIPT KILL in
    // (installed once; it checks the state, so idle it costs one test per 100k
    // instructions).
    let shared = conn.shared.clone();
    let threshold = inner.tun.busy_reply_threshold;
    let busy = &shared.busy;
    busy.wrote.store(false, Ordering::Release);
    busy.kill.store(0, Ordering::Release);
    busy.threshold_ms.store(threshold, Ordering::Release);
    let started = now_ms();
    busy.since_ms.store(started, Ordering::Release);
    busy.running.store(true, Ordering::Release);
    busy.handed_off.store(false, Ordering::Relaxed);
    if !inner.scripts.hooked {
        inner.scripts.hooked = true;
        // Weak: the hook lives in the Lua state, which the shared state owns.
        let weak = Arc::downgrade(&shared);
        let _ = lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            move |_, _| {
                let Some(sh) = weak.upgrade() else {
                    return Ok(VmState::Continue);
                };
                let threshold = sh.busy.threshold_ms.load(Ordering::Acquire);
                if threshold == 0 {
                    return Ok(VmState::Continue);
                }
                if sh.busy.kill.load(Ordering::Acquire) != 0 {
                    return Err(mlua::Error::RuntimeError(KILL_MSG.into()));
                }
                // A long script blocks this runtime worker: once it has run for a
                // quarter of busy-reply-threshold, hand the worker's queue (and the
                // I/O driver) to another thread, so that other connections can answer
                // BUSY and pass SCRIPT KILL.
                let elapsed = now_ms().saturating_sub(sh.busy.since_ms.load(Ordering::Acquire));
                if elapsed < threshold / 4 {
                    return Ok(VmState::Continue);
                }
                let killed = || sh.busy.kill.load(Ordering::Acquire) != 0;
                if !sh.busy.handed_off.load(Ordering::Relaxed) && hand_off_worker(killed) {
                    sh.busy.handed_off.store(true, Ordering::Relaxed);
                }
                // Wake an idle worker now and then: a worker blocked on the server lock
                // may have left the I/O driver unattended.
                if let Ok(h) = tokio::runtime::Handle::try_current() {
                    h.spawn(async {});
                }
                Ok(VmState::Continue)
            },
        );
    }

    let saved_db = conn.db;
    let saved_in_exec = conn.in_exec;
    conn.in_exec = true;
    // Time stands still while a script runs (Redis: keys do not expire mid-script).
    conn.script_now = Some(started);
    *ctx.get() = Some(run);

    // From here until the context is cleared, `conn` and `inner` are only used
    // through the context by the `redis` library callbacks.
    let run_args = RunArgs { keys, args };
    // SAFETY: the raw state is the main state of `lua`, used under the server lock
    // only (see `RawState`). The stack is restored to `base` before leaving; the
    // pushed values are registry entries made by `Scripts` (handler, entry, the
    // script) and a pointer to `run_args`, which outlives the call.
    let (ok, fast, run) = unsafe {
        let base = ffi::lua_gettop(raw);
        if ffi::lua_checkstack(raw, 8) == 0 {
            let run = ctx.get().take();
            (false, Some(Reply::err("ERR reached lua stack limit")), run)
        } else {
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, handler);
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, entry);
            ffi::lua_pushlightuserdata(raw, &run_args as *const RunArgs as *mut _);
            ffi::lua_rawgeti_(raw, ffi::LUA_REGISTRYINDEX, func);
            let ok = ffi::lua_pcall(raw, 2, 1, base + 1) == 0;
            let run = ctx.get().take();
            let resp3 = run.as_ref().is_some_and(|r| r.resp3);
            let fast = if ok {
                lua_raw::scalar_reply(raw, resp3)
            } else {
                None
            };
            if fast.is_none() {
                // Tables and errors go through mlua's values (not the hot path).
                ffi::lua_setfield(raw, ffi::LUA_REGISTRYINDEX, RESULT_SLOT.as_ptr());
            }
            ffi::lua_settop(raw, base);
            (ok, fast, run)
        }
    };

    let resp3 = run.as_ref().is_some_and(|r| r.resp3);
    busy.running.store(false, Ordering::Release);
    conn.script_now = None;
    let reply = match fast {
        Some(r) => r,
        None => {
            let slot = RESULT_SLOT.to_str().unwrap_or_default();
            let v = lua
                .named_registry_value::<Value>(slot)
                .unwrap_or(Value::Nil);
            let _ = lua.unset_named_registry_value(slot);
            if ok {
                lua_to_reply(&v, resp3, 0)
            } else {
                match v {
                    Value::Table(t) => error_from_table(&t, sha),
                    other => {
                        let text =
                            value_text(&other).unwrap_or_else(|| b"execution failure".to_vec());
                        let mut msg = format!("ERR Error running script {sha}, ").into_bytes();
                        msg.extend_from_slice(&text[..text.len().min(100)]);
                        error_reply_bytes(msg)
                    }
                }
            }
        }
    };
    conn.in_exec = saved_in_exec;
    if conn.db != saved_db {
        conn.db = saved_db;
        if let Some(c) = inner.clients.get_mut(&conn.id) {
            c.db = saved_db;
        }
    }
    reply
}

/// Moves the current tokio worker's tasks to another thread (the script goes on
/// blocking this one). No-op outside a multi-threaded runtime.
///
/// Returns whether the hand-off is confirmed: `block_in_place` gives the worker's
/// core to a new thread, and takes it back on return if that thread has not picked
/// it up yet (under load it may not have started). So the closure waits until a
/// task spawned meanwhile has run, which needs a worker with a core: then the new
/// thread holds it. Unconfirmed, the caller tries again at its next hook. `stop`
/// (SCRIPT KILL) ends the wait early.
fn hand_off_worker(stop: impl Fn() -> bool) -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return true;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return true;
    }
    tokio::task::block_in_place(|| {
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        handle.spawn(async move { flag.store(true, Ordering::Release) });
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while !ran.load(Ordering::Acquire) && !stop() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        ran.load(Ordering::Acquire)
    })
}

/// The reply for an error raised by a script: the message, then where it was raised.
fn error_from_table(t: &Table, sha: &str) -> Reply {
    let get =
        |k: &str| -> Option<Vec<u8>> { t.raw_get::<Value>(k).ok().and_then(|v| value_text(&v)) };
    let mut msg = get("err").unwrap_or_else(|| b"ERR unknown error".to_vec());
    if let (Some(source), Some(line)) = (get("source"), get("line")) {
        msg.extend_from_slice(format!(" script: {sha}, on ").as_bytes());
        msg.extend_from_slice(&source);
        msg.push(b':');
        msg.extend_from_slice(&line);
        msg.push(b'.');
    }
    error_reply_bytes(msg)
}

/// Redis's luaPushErrorBuff: "-CODE msg" or "msg" (code ERR) into "CODE msg".
pub(crate) fn error_text_from_buf(buf: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = if let Some(rest) = buf.strip_prefix(b"-") {
        match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        }
    } else {
        (b"ERR", buf)
    };
    let is_nl = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = msg.iter().position(|c| !is_nl(c)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|c| !is_nl(c)).map_or(start, |e| e + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&msg[start..end.max(start)]);
    out
}

fn error_table(lua: &Lua, buf: &[u8], ignore_stats: bool) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_text_from_buf(buf))?)?;
    if ignore_stats {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(Value::Table(t))
}

/// Redis's luaArgsToRedisArgv.
fn lua_args_to_argv(args: &MultiValue) -> Result<Vec<Bytes>, &'static [u8]> {
    if args.is_empty() {
        return Err(b"Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for v in args.iter() {
        match v {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => argv.push(Bytes::from(fmt_g(*i as f64, 17))),
            Value::Number(n) => argv.push(Bytes::from(fmt_g(*n, 17))),
            _ => return Err(b"Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

/// Status for library implementations wrapped by `lib_shim`: the value, or raise it.
fn status(raise: bool, v: Value) -> (i32, Value) {
    (raise as i32, v)
}

unsafe extern "C-unwind" fn lua_redis_call(l: *mut ffi::lua_State) -> c_int {
    redis_call_raw(l, true)
}

unsafe extern "C-unwind" fn lua_redis_pcall(l: *mut ffi::lua_State) -> c_int {
    redis_call_raw(l, false)
}

/// redis.call / redis.pcall: the converted reply, raised when it is an error and this
/// is redis.call. Every Rust value is dropped before `lua_error` jumps away.
unsafe fn redis_call_raw(l: *mut ffi::lua_State, raise: bool) -> c_int {
    let raise_now = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        redis_call_body(l, raise)
    })) {
        Ok(r) => r,
        Err(_) => {
            ffi::lua_settop(l, 0);
            lua_raw::push_error_table(l, b"internal error running the command", false);
            true
        }
    };
    if raise_now {
        ffi::lua_error(l)
    } else {
        1
    }
}

/// Pushes the call's result (or error table) and says whether to raise it.
unsafe fn redis_call_body(l: *mut ffi::lua_State, raise: bool) -> bool {
    // SAFETY: upvalue 1 is the `CtxCell` of the `Scripts` owning this state.
    let cell = &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const CtxCell);
    let Some(ctx) = cell.get().as_mut() else {
        lua_raw::push_error_table(
            l,
            b"redis.call/pcall can only be called inside a script invocation",
            false,
        );
        return true;
    };
    let argv = match lua_raw::read_argv(l, cell.argv_buf()) {
        Ok(a) => a,
        Err(msg) => {
            lua_raw::push_error_table(l, msg, false);
            return raise;
        }
    };
    // SAFETY: the pointers were taken from the `&mut` references of the EVAL being
    // served, which are not used while the script runs (see `run_script`).
    let conn = &mut *ctx.conn;
    let inner = &mut *ctx.inner;
    let reply = match script_call(ctx, conn, inner, argv) {
        Ok(r) => r,
        Err(msg) => {
            lua_raw::push_error_table(l, &msg, true);
            return raise;
        }
    };
    if !lua_raw::push_reply(l, &reply, ctx.resp3) {
        lua_raw::push_error_table(l, b"reached lua stack limit", false);
        return raise;
    }
    raise && reply.is_error()
}

/// Redis's scriptCall: the checks a command from a script goes through, then the run.
fn script_call(
    ctx: &mut RunCtx,
    conn: &mut Conn,
    inner: &mut Inner,
    argv: Vec<Bytes>,
) -> Result<Reply, Vec<u8>> {
    let unknown = || b"Unknown Redis command called from script".to_vec();
    let spec = table::lookup(&argv[0]).ok_or_else(unknown)?;
    let cmd = if !spec.subs.is_empty() && argv.len() >= 2 {
        table::lookup_sub(spec, &argv[1]).ok_or_else(unknown)?
    } else {
        spec
    };
    let arity_ok = if cmd.arity >= 0 {
        argv.len() == cmd.arity as usize
    } else {
        argv.len() >= (-cmd.arity) as usize
    };
    if !arity_ok {
        return Err(b"Wrong number of args calling Redis command from script".to_vec());
    }
    // Redis 7.0 flags every blocking command NOSCRIPT.
    if cmd.has(flags::NOSCRIPT) || cmd.has(flags::BLOCKING) {
        return Err(b"This Redis command is not allowed from script".to_vec());
    }
    let write = cmd.is_write();
    if ctx.ro && (write || cmd.has(flags::MAY_REPLICATE)) {
        return Err(b"Write commands are not allowed from read-only scripts.".to_vec());
    }
    if write && !ctx.dirty {
        if let Some(Reply::Error(e)) = write_refusal(inner) {
            let mut buf = b"-".to_vec();
            buf.extend_from_slice(&e);
            return Err(buf);
        }
    }
    if !ctx.allow_oom
        && !ctx.dirty
        && ctx.script_oom
        && cmd.has(flags::DENYOOM)
        && inner.config.u64("maxmemory") > 0
    {
        return Err(b"-OOM command not allowed when used memory > 'maxmemory'.".to_vec());
    }
    if write {
        ctx.dirty = true;
        conn.shared.busy.wrote.store(true, Ordering::Release);
    }
    let saved_resp = conn.resp3;
    conn.resp3 = ctx.resp3;
    let log_len = inner.store.effects.log.len();
    inner.stats.total_commands += 1;
    let step = conn.execute(inner, spec, argv);
    conn.resp3 = saved_resp;
    if ctx.repl & 1 == 0 {
        inner.store.effects.log.truncate(log_len);
    }
    Ok(match step {
        Step::Reply(r) | Step::Block(_, r) | Step::Sleep(_, r) => r,
        Step::Many(v) => Reply::Array(v),
        Step::Close(r) => r.unwrap_or_else(Reply::ok),
        Step::Async(_) => Reply::err("ERR This Redis command is not allowed from script"),
    })
}

/// redis.acl_check_cmd: every command is allowed (redsnap has only the default user).
fn acl_check(lua: &Lua, cell: &CtxCell, args: MultiValue) -> mlua::Result<(i32, Value)> {
    if cell.get().is_none() {
        return Ok(status(
            true,
            error_table(
                lua,
                b"redis.acl_check_cmd can only be called inside a script invocation",
                false,
            )?,
        ));
    }
    let argv = match lua_args_to_argv(&args) {
        Ok(a) => a,
        Err(msg) => return Ok(status(true, error_table(lua, msg, false)?)),
    };
    let found = table::lookup(&argv[0]).and_then(|spec| {
        if !spec.subs.is_empty() && argv.len() >= 2 {
            table::lookup_sub(spec, &argv[1])
        } else {
            Some(spec)
        }
    });
    match found {
        Some(_) => Ok(status(false, Value::Boolean(true))),
        None => Ok(status(
            true,
            error_table(
                lua,
                b"Invalid command passed to redis.acl_check_cmd()",
                false,
            )?,
        )),
    }
}

fn replace_newlines(b: &[u8]) -> Bytes {
    if b.iter().any(|&c| c == b'\r' || c == b'\n') {
        Bytes::from(
            b.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                .collect::<Vec<u8>>(),
        )
    } else {
        Bytes::copy_from_slice(b)
    }
}

/// A script's return value as a reply (Redis's luaReplyToRedisReply).
fn lua_to_reply(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > MAX_NESTING {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => lua_raw::bool_reply(*b, resp3),
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return error_reply_bytes(e.as_bytes().to_vec());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::Simple(replace_newlines(&s.as_bytes()));
            }
            match t.raw_get::<Value>("double") {
                Ok(Value::Number(d)) => return Reply::Double(d),
                Ok(Value::Integer(i)) => return Reply::Double(i as f64),
                _ => {}
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
                return Reply::Bulk(replace_newlines(&s.as_bytes()));
            }
            if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string") {
                if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    let text = Bytes::copy_from_slice(&s.as_bytes());
                    return match &f.as_bytes()[..] {
                        b"txt" => Reply::Verbatim("txt", text),
                        b"mkd" => Reply::Verbatim("mkd", text),
                        _ => Reply::Bulk(text),
                    };
                }
            }
            if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
                let mut pairs = Vec::new();
                for (k, v) in m.pairs::<Value, Value>().flatten() {
                    pairs.push((
                        lua_to_reply(&k, resp3, depth + 1),
                        lua_to_reply(&v, resp3, depth + 1),
                    ));
                }
                return Reply::Map(pairs);
            }
            if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
                let mut items = Vec::new();
                for (k, _) in s.pairs::<Value, Value>().flatten() {
                    items.push(lua_to_reply(&k, resp3, depth + 1));
                }
                return Reply::Set(items);
            }
            let mut items = Vec::new();
            let mut j = 1i64;
            loop {
                match t.raw_get::<Value>(j) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, resp3, depth + 1)),
                }
                j += 1;
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

// ---------------------------------------------------------------------------
// cjson
// ---------------------------------------------------------------------------

fn lua_type_name(v: &Value) -> &'static str {
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

fn json_number(n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if n.is_nan() || n.is_infinite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(fmt_g(n, 14).as_bytes());
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

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn json_encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => json_number(*i as f64, out)?,
        Value::Number(n) => json_number(*n, out)?,
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            // cjson's limit is 1000 levels; deeper recursion here would risk the
            // thread's stack, so nesting beyond MAX_NESTING (and cycles) fail the same
            // way a bit earlier.
            if depth > MAX_NESTING {
                return Err("Cannot serialise, excessive nesting (1001)".to_string());
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
            if is_array && max > items * 2.0 && max > 10.0 {
                return Err("Cannot serialise table: excessively sparse array".into());
            }
            if is_array && max > 0.0 {
                out.push(b'[');
                let n = max as i64;
                for i in 1..=n {
                    if i > 1 {
                        out.push(b',');
                    }
                    let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    json_encode(&v, depth, out)?;
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
                            json_number(as_number(&k).unwrap_or(0.0), out)?;
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
                    json_encode(&v, depth, out)?;
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

enum JsonErr {
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
        if self.depth > MAX_NESTING {
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

fn json_decode(lua: &Lua, data: &[u8]) -> Result<Value, JsonErr> {
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
    };
    let (tok, idx) = p.next();
    let v = p.value(lua, tok, idx)?;
    let (tok, idx) = p.next();
    if !matches!(tok, Tok::End) {
        return Err(p.fail("the end", &tok, idx));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// cmsgpack
// ---------------------------------------------------------------------------

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

fn mp_encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
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

enum MpErr {
    Eof,
    BadFmt,
    Lua(mlua::Error),
}

impl From<mlua::Error> for MpErr {
    fn from(e: mlua::Error) -> Self {
        MpErr::Lua(e)
    }
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

    fn decode(&mut self, lua: &Lua) -> Result<Value, MpErr> {
        let c = self.take(1)?[0];
        Ok(match c {
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
                let n = self.uint(1)? as usize;
                self.string(lua, n)?
            }
            0xda | 0xc5 => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)?
            }
            0xdb | 0xc6 => {
                let n = self.uint(4)? as usize;
                self.string(lua, n)?
            }
            0x90..=0x9f => self.array(lua, (c & 0x0f) as usize)?,
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n)?
            }
            0x80..=0x8f => self.map(lua, (c & 0x0f) as usize)?,
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n)?
            }
            _ => return Err(MpErr::BadFmt),
        })
    }

    fn string(&mut self, lua: &Lua, n: usize) -> Result<Value, MpErr> {
        let b = self.take(n)?.to_vec();
        Ok(Value::String(lua.create_string(&b)?))
    }

    fn array(&mut self, lua: &Lua, n: usize) -> Result<Value, MpErr> {
        let t = lua.create_table()?;
        for i in 1..=n {
            let v = self.decode(lua)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize) -> Result<Value, MpErr> {
        let t = lua.create_table()?;
        for _ in 0..n {
            let k = self.decode(lua)?;
            let v = self.decode(lua)?;
            if !matches!(k, Value::Nil) {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }
}

/// lua_cmsgpack's mp_unpack_full: returns (count, values) or (nil, message).
fn mp_unpack(lua: &Lua, data: &[u8], limit: i64, offset: i64) -> mlua::Result<(Value, Value)> {
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
    let mut vals = Vec::new();
    let mut cnt = 0i64;
    while cur.pos < cur.data.len() && cnt < limit {
        match cur.decode(lua) {
            Ok(v) => vals.push(v),
            Err(MpErr::Eof) => return fail("Missing bytes in input.".into()),
            Err(MpErr::BadFmt) => return fail("Bad data format in input.".into()),
            Err(MpErr::Lua(e)) => return Err(e),
        }
        cnt += 1;
    }
    let mut i = 1;
    if !decode_all {
        let left = cur.data.len() - cur.pos;
        let next = if left == 0 { -1 } else { len - left as i64 };
        out.raw_set(1, next)?;
        i = 2;
        cnt += 1;
    }
    for v in vals {
        out.raw_set(i, v)?;
        i += 1;
    }
    Ok((Value::Number(cnt as f64), Value::Table(out)))
}

// ---------------------------------------------------------------------------
// bit (LuaBitOp)
// ---------------------------------------------------------------------------

fn bit_op(lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
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
                let digits: &[u8] = if n < 0 {
                    n = -n;
                    b"0123456789ABCDEF"
                } else {
                    b"0123456789abcdef"
                };
                let n = n.min(8) as usize;
                let mut buf = vec![0u8; n];
                for i in (0..n).rev() {
                    buf[i] = digits[(b & 15) as usize];
                    b >>= 4;
                }
                Value::String(lua.create_string(&buf).map_err(|e| e.to_string())?)
            }
            _ => return Err(format!("unknown bit operation '{name}'")),
        })
    })();
    match res {
        Ok(v) => Ok((true, v)),
        Err(m) => Ok((false, Value::String(lua.create_string(&m)?))),
    }
}
