-- redsnap's Lua sandbox, run once when the scripting state is created. It builds
-- what Redis 7.0 builds in C: the `redis`, `cjson`, `cmsgpack`, `bit` and `struct` libraries
-- (their work is done by Rust functions in `I`), read-only globals and libraries,
-- the error handler that adds the script position, and the PRNG of `math.random`.
-- Read-only tables are emulated with empty proxies (Redis patches Lua instead): a
-- script must never get hold of a shared table itself, only of its proxy, so every
-- function that could hand one out (pairs, next, rawget, getmetatable, the error
-- handler) returns proxies, and the table functions that write raw refuse proxies.
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

-- prot: proxy -> the table it stands for; proxy_of: shared table -> its proxy.
local prot = raw_setmetatable({}, { __mode = 'k' })
local proxy_of = raw_setmetatable({}, { __mode = 'k' })
local fakemeta = raw_setmetatable({}, { __mode = 'k' })

local function ro_newindex()
  raw_error('Attempt to modify a readonly table', 2)
end

local function protect(t)
  local p = {}
  raw_setmetatable(p, { __index = t, __newindex = ro_newindex, __metatable = false })
  prot[p] = t
  proxy_of[t] = p
  return p
end

-- next over a proxy walks the table behind it, giving proxies for shared tables.
local ro_next = I.make_next(prot, proxy_of)

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
-- What Redis 7.0 answers when the error object is a read-only table: its handler
-- fails writing `source` into it (chunk err_handler_def, line 10), and that error
-- is handled in turn (positioned there).
local RO_HANDLER = 'err_handler_def:10: Attempt to modify a readonly table'
local function err_handler(err)
  if prot[err] ~= nil then
    raw_error(RO_HANDLER, 0)
  end
  if err == RO_HANDLER then
    return { err = 'ERR ' .. RO_HANDLER, source = '@err_handler_def', line = 10 }
  end
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
local json_config = I.json_config
for _, name in raw_ipairs({ 'encode_sparse_array', 'encode_max_depth', 'decode_max_depth',
  'encode_number_precision', 'encode_keep_buffer', 'encode_invalid_numbers',
  'decode_invalid_numbers' }) do
  C[name] = shim(function(...)
    return json_config(name, ...)
  end)
end

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

-- struct (lua_struct).
local S = {}
local struct_impl = I.struct
for _, name in raw_ipairs({ 'pack', 'unpack', 'size' }) do
  S[name] = shim(function(...)
    return struct_impl(name, ...)
  end)
end

-- table.insert writes its first argument raw: it refuses proxies. (remove and sort
-- also write raw, but only within #t, which is 0 for an empty proxy: as in Redis,
-- they do nothing there.)
table.insert = I.guard(prot, table.insert)

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
  -- Scripts make no userdata; what they can meet (an error object of the Rust
  -- side) keeps its metatable to itself.
  if raw_type(o) == 'userdata' then
    return 0, nil
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
    local v = raw_rawget(r, k)
    if v ~= nil and proxy_of[v] ~= nil then
      return 0, proxy_of[v]
    end
    return 0, v
  end
  return 0, raw_rawget(t, k)
end)
G.pairs = shim(function(...)
  local t = ...
  if raw_type(t) ~= 'table' then
    return 2, ("bad argument #1 to 'pairs' (table expected, got %s)"):format(
      raw_select('#', ...) > 0 and raw_type(t) or 'no value')
  end
  if prot[t] ~= nil then
    return 0, ro_next, t, nil
  end
  return 0, raw_next, t, nil
end)
G.next = ro_next

-- Redis 7.0's pcall: an error table with an `err` string is caught as that string.
local raw_pcall = pcall
local function pcall_result(ok, ...)
  if ok then
    return 0, true, ...
  end
  local e = ...
  if raw_type(e) == 'userdata' then
    local m = errmsg_impl(e)
    if m ~= nil then
      e = m
    end
  end
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

-- Function libraries (FUNCTION LOAD). A library's body runs, and the functions it
-- registers keep running, with FP as their environment. While the body loads, FP
-- reads from LIBG: only `redis`, with register_function, log, the log levels and the
-- version (Redis's library API); every other name, there or in `redis`, raises
-- "Script attempted to access nonexistent global variable". Afterwards FP reads the
-- globals EVAL scripts see. Writes to FP always fail.
local LR = {
  register_function = shim(I.register_function),
  log = R.log,
  LOG_DEBUG = R.LOG_DEBUG,
  LOG_VERBOSE = R.LOG_VERBOSE,
  LOG_NOTICE = R.LOG_NOTICE,
  LOG_WARNING = R.LOG_WARNING,
  REDIS_VERSION = R.REDIS_VERSION,
  REDIS_VERSION_NUM = R.REDIS_VERSION_NUM,
}
raw_setmetatable(LR, { __index = missing_global })
local LIBG = { redis = protect(LR) }
raw_setmetatable(LIBG, { __index = missing_global })
local fp_meta = { __index = LIBG, __newindex = ro_newindex, __metatable = false }
local FP = raw_setmetatable({}, fp_meta)

-- The host switches FP between the two (fp_meta.__index = LIBG or G) raw, so that
-- no Lua code runs when a load ends.
return err_handler, GP, { env = FP, meta = fp_meta, loading = LIBG, loaded = G }
