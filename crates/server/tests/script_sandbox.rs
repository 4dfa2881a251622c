//! The script sandbox under attack (issue 11, item 2) and the script libraries'
//! bounds (item 8).
//!
//! Each route a script could take to a writable shared table (the globals, the
//! libraries, the string metatable) is tried on redis-server 7.0 and on redsnap: the
//! replies must be byte-identical (Redis answers `Attempt to modify a readonly
//! table`), and after each attempt a second client's script on a new connection must
//! still see the real `redis.call` and libraries (the probe). A black-box test drives
//! the `redsnap` binary with `redis-cli`.

use redsnap_testsupport::{RawConn, RedisServer, RedsnapServer};
use std::process::Command;

/// Run after every attack, from another connection: what an honest script sees.
/// Any hijacked function or library field shows here.
const PROBE: &str = "return {redis.call('get', 'x'), type(redis.call), type(redis.pcall), \
     tostring(redis.pwned), cjson.encode({1}), type(cmsgpack.pack), bit.band(6, 3), \
     tostring(struct.pwned), ('abc'):len(), string.upper('a'), math.floor(1.5), \
     table.concat({'a', 'b'}), tostring(coroutine.pwned), tostring(rawget(_G, 'pwned')), \
     tostring(getmetatable('').pwned), tostring(getmetatable('').__index == string), \
     tostring(string.pwned), tostring(rawget(redis, 1)), tostring(rawget(_G, 1)), \
     tostring(rawget(getmetatable(''), 1)), tostring(rawget(redis, 'source'))}";

/// Attacks: (route, script). Each either fails as Redis fails or harms nothing.
fn attacks() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        (
            "pairs(redis) hands out a table",
            "local _, R = pairs(redis); R.call = function() return 'pwned' end; return 1",
        ),
        (
            "pairs(_G)",
            "local _, G = pairs(_G); G.redis = {call = function() return 'pwned' end}; return 1",
        ),
        (
            "pairs(_G) values",
            "for k, v in pairs(_G) do if type(v) == 'table' and k ~= 'KEYS' and k ~= 'ARGV' \
             then v.pwned = 1 end end return 1",
        ),
        (
            "pairs(getmetatable(''))",
            "local _, m = pairs(getmetatable('')); m.__index = {len = function() return 'pwned' end}",
        ),
        (
            "pairs(getmetatable('')) values",
            "for k, v in pairs(getmetatable('')) do v.pwned = 1 end return 1",
        ),
        (
            "next over the globals",
            "local k, v = next(_G) while k do if type(v) == 'table' and k ~= 'KEYS' \
             and k ~= 'ARGV' then v.pwned = 1 end k, v = next(_G, k) end return 1",
        ),
        ("next over redis", "local k = next(redis) redis[k] = 1"),
        (
            "next over the string metatable",
            "local k, v = next(getmetatable('')) v.pwned = 1",
        ),
        (
            "ipairs hands back its table",
            "local _, t = ipairs(redis) t.call = 1",
        ),
        ("rawget(_G, 'string')", "local s = rawget(_G, 'string') s.len = 1"),
        (
            "rawget of the string metatable",
            "rawget(getmetatable(''), '__index').len = 1",
        ),
        ("rawset(redis)", "rawset(redis, 'call', 1)"),
        ("rawset(_G)", "rawset(_G, 'redis', 1)"),
        ("rawset(string metatable)", "rawset(getmetatable(''), '__index', {})"),
        (
            "rawequal",
            "return {tostring(rawequal(redis, rawget(_G, 'redis'))), tostring(rawequal(string, getmetatable('').__index))}",
        ),
        ("getmetatable(redis)", "return tostring(getmetatable(redis))"),
        (
            "getmetatable(_G)",
            "local m = getmetatable(_G) m.__index = function() return 'pwned' end",
        ),
        (
            "getmetatable('').__index",
            "getmetatable('').__index = {len = function() return 'pwned' end}",
        ),
        ("getmetatable('') field", "getmetatable('').pwned = 1"),
        ("setmetatable(redis)", "setmetatable(redis, {__index = function() return 'pwned' end})"),
        ("setmetatable(_G)", "setmetatable(_G, {})"),
        ("setmetatable(string metatable)", "setmetatable(getmetatable(''), {})"),
        ("getfenv", "return getfenv(1)"),
        ("setfenv", "setfenv(1, {})"),
        ("debug", "return debug.getupvalue(redis.error_reply, 1)"),
        ("newproxy", "return newproxy(true)"),
        (
            "coroutine.wrap(pairs)",
            "local _, R = coroutine.wrap(pairs)(redis) R.call = function() return 'pwned' end",
        ),
        (
            "coroutine.create",
            "local co = coroutine.create(function() local _, R = pairs(redis) \
             R.call = function() return 'pwned' end end) return {coroutine.resume(co)}",
        ),
        ("coroutine.wrap(rawset)", "coroutine.wrap(rawset)(redis, 'call', 1)"),
        ("error(redis)", "error(redis)"),
        ("error(_G)", "error(_G)"),
        ("error(string metatable)", "error(getmetatable(''))"),
        (
            "pcall(error, redis)",
            "local ok, e = pcall(error, redis) e.call = function() return 'pwned' end",
        ),
        (
            "xpcall handler",
            "return {xpcall(function() error(redis) end, function(e) e.call = function() return 'pwned' end return e end)}",
        ),
        ("the error handler", "__redis__err__handler(redis)"),
        ("the error handler, caught", "return {pcall(__redis__err__handler, _G)}"),
        (
            "loadstring",
            "local f = loadstring('redis.call = function() return 1 end') f()",
        ),
        (
            "loadstring of bytecode",
            "return {loadstring(string.dump(function() return 1 end))}",
        ),
        ("load of bytecode", "local s = string.dump(function() return 1 end) local d = false return {load(function() if d then return nil end d = true return s end)}"),
        ("select", "local R = select(2, pairs(redis)) R.call = 1"),
        ("unpack", "local R = unpack({pairs(redis)}, 2) R.call = 1"),
        ("unpack(redis)", "return {unpack(redis)}"),
        ("table.insert(redis)", "table.insert(redis, 'pwned')"),
        ("table.insert(_G)", "table.insert(_G, 'pwned')"),
        ("table.insert(string metatable)", "table.insert(getmetatable(''), 1)"),
        ("table.insert arguments", "table.insert(nil, 1)"),
        ("table.remove(redis)", "return {table.remove(redis)}"),
        ("table.sort(redis)", "table.sort(redis) return 1"),
        ("string.len = ...", "string.len = function() return 'pwned' end"),
        ("assignment to a global", "redis = 1"),
        ("_G.x", "_G.pwned = 1"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for lib in [
        "redis",
        "cjson",
        "cmsgpack",
        "bit",
        "struct",
        "string",
        "table",
        "math",
        "coroutine",
        "_G",
    ] {
        v.push((
            format!("pairs({lib})"),
            format!("local _, t = pairs({lib}) t.pwned = 1"),
        ));
        v.push((format!("{lib}.pwned"), format!("{lib}.pwned = 1")));
        v.push((
            format!("rawset({lib})"),
            format!("rawset({lib}, 'pwned', 1)"),
        ));
    }
    v
}

fn eval(port: u16, script: &str) -> Vec<u8> {
    let mut c = RawConn::connect(port).expect("connect");
    c.command(&[b"EVAL", script.as_bytes(), b"0"])
        .unwrap_or_else(|e| format!("<io error: {e}>").into_bytes())
}

fn set_x(port: u16) {
    let mut c = RawConn::connect(port).expect("connect");
    assert_eq!(c.command(&[b"SET", b"x", b"v"]).expect("set"), b"+OK\r\n");
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_route_to_a_shared_table_is_refused_as_in_redis() {
    let redis = RedisServer::start().expect("redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    set_x(redis.port());
    set_x(redsnap.port());
    let probe = eval(redis.port(), PROBE);
    assert!(
        show(&probe).starts_with("*21\r\n$1\r\nv\r\n"),
        "{}",
        show(&probe)
    );
    assert_eq!(show(&eval(redsnap.port(), PROBE)), show(&probe));
    let mut failures = Vec::new();
    let attacks = attacks();
    for (route, script) in &attacks {
        let a = eval(redis.port(), script);
        let b = eval(redsnap.port(), script);
        if a != b {
            failures.push(format!(
                "{route}: {script}\n  redis:   {}\n  redsnap: {}",
                show(&a),
                show(&b)
            ));
        }
        // Another client, on a new connection, is unaffected.
        let after = eval(redsnap.port(), PROBE);
        if after != probe {
            failures.push(format!(
                "{route}: {script}\n  the next script saw {}\n  instead of {}",
                show(&after),
                show(&probe)
            ));
        }
    }
    assert!(attacks.len() > 80, "only {} attacks", attacks.len());
    assert!(
        failures.is_empty(),
        "{} of {} attacks:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
}

/// The shared tables can still be read and iterated as in Redis: `next` and `pairs`
/// walk them, and what they give for a library is that library (its proxy).
#[test]
fn shared_tables_still_read_and_iterate() {
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let r = eval(
        redsnap.port(),
        "local n, same = 0, 0 for k, v in pairs(_G) do n = n + 1 \
         if type(v) == 'table' and v == _G[k] then same = same + 1 end end \
         local fns = 0 for k, v in pairs(redis) do if type(v) == 'function' then fns = fns + 1 end end \
         local k, v = next(redis, nil) \
         return {tostring(n > 20), tostring(same >= 10), tostring(fns > 10), type(k), \
         tostring(rawget(_G, 'redis') == redis), type(pairs(redis))}",
    );
    assert_eq!(
        show(&r),
        "*6\r\n$4\r\ntrue\r\n$4\r\ntrue\r\n$4\r\ntrue\r\n$6\r\nstring\r\n$4\r\ntrue\r\n$8\r\nfunction\r\n"
    );
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".into()))
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The reproduction, black box: the `redsnap` binary, two `redis-cli`
/// processes (two connections).
#[test]
fn redis_cli_cannot_hijack_redis_call_for_other_clients() {
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let port = redsnap.port();
    assert_eq!(redis_cli(port, &["SET", "x", "v"]).trim(), "OK");
    let hijack = redis_cli(
        port,
        &[
            "EVAL",
            "local _, R = pairs(redis); R.call = function() return 'pwned' end; return 1",
            "0",
        ],
    );
    assert!(
        hijack.contains("Attempt to modify a readonly table"),
        "{hijack}"
    );
    let other = redis_cli(port, &["EVAL", "return redis.call('get','x')", "0"]);
    assert_eq!(other.trim(), "v");
    let globals = redis_cli(
        port,
        &[
            "EVAL",
            "local _, G = pairs(_G); G.redis = {call = function() return 'pwned' end}; return 1",
            "0",
        ],
    );
    assert!(
        globals.contains("Attempt to modify a readonly table"),
        "{globals}"
    );
    let other = redis_cli(port, &["EVAL", "return redis.call('get','x')", "0"]);
    assert_eq!(other.trim(), "v");
}

/// Script-library bounds (item 8), compared with Redis where Redis answers safely.
#[test]
fn script_library_bounds_match_redis() {
    let redis = RedisServer::start().expect("redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let cases = [
        // 100,000 nested arrays: Redis stops at its Lua stack (3,998 levels).
        "return cmsgpack.unpack(string.rep('\\145', 100000) .. '\\144')",
        "local ok, e = pcall(cmsgpack.unpack, string.rep('\\145', 3999) .. '\\144') return {tostring(ok), e}",
        "local t = cmsgpack.unpack(string.rep('\\145', 3998) .. '\\144') local d = 0 while type(t) == 'table' do d = d + 1 t = t[1] end return d",
        "local t = cmsgpack.unpack(string.rep('\\145', 3000) .. '\\144') return type(t)",
        // Too many values at once.
        "return cmsgpack.unpack(string.rep('\\0', 100000))",
        "return select('#', cmsgpack.unpack(string.rep('\\0', 7000)))",
        "return {cmsgpack.unpack_limit(string.rep('\\0', 100000), 3)}",
        // Lengths that announce more than the input holds.
        "return cmsgpack.unpack('\\221\\255\\255\\255\\255')",
        "return cmsgpack.unpack('\\223\\255\\255\\255\\255\\1')",
        "return cmsgpack.unpack('\\219\\255\\255\\255\\255ab')",
        // Counts beyond a C int are taken modulo 2^32, as lua_cmsgpack's ints.
        "return {cmsgpack.unpack_one(string.rep('\\0', 3), 1e10)}",
        "return cmsgpack.unpack_limit('x', 1e300)",
        // Packing a cyclic or deep table: Redis cuts it at 16 levels.
        "local t = {} t[1] = t return #cmsgpack.pack(t)",
        "local t = {} local c = t for i = 1, 100 do c.a = {} c = c.a end return cmsgpack.pack(t)",
        // bit.tohex's count: negative means upper case; INT32_MIN must not overflow.
        "return bit.tohex(65535, -2147483648)",
        "return {bit.tohex(65535, 2147483647), bit.tohex(65535, -3), bit.tohex(-1, 0), bit.tohex(1, -8)}",
        "return bit.tohex(65535, 4294967296 + 5)",
        // cjson: deep and cyclic structures are errors, not crashes.
        "local t = {} t[1] = t return pcall(cjson.encode, t)",
        "return type(cjson.decode(string.rep('[', 150) .. string.rep(']', 150)))",
    ];
    let mut failures = Vec::new();
    for script in cases {
        let a = eval(redis.port(), script);
        let b = eval(redsnap.port(), script);
        if a != b {
            failures.push(format!(
                "{script}\n  redis:   {}\n  redsnap: {}",
                show(&a),
                show(&b)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What redsnap does where Redis does not answer safely or redsnap's bound is its
/// own: nesting that would crash Redis (deep msgpack maps) or that redsnap stops
/// sooner (cjson at 200 levels instead of 1,000) fails with an error, and the server
/// goes on.
#[test]
fn script_library_bounds_beyond_redis() {
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let port = redsnap.port();
    let deep_map = eval(
        port,
        "return cmsgpack.unpack(string.rep('\\129\\192', 100000) .. '\\192')",
    );
    assert!(
        show(&deep_map)
            .starts_with("-ERR user_script:1: stack overflow (in function mp_decode_to_lua_hash)"),
        "{}",
        show(&deep_map)
    );
    let deep_json = eval(
        port,
        "return cjson.decode(string.rep('[', 100000) .. string.rep(']', 100000))",
    );
    assert!(
        show(&deep_json).starts_with("-ERR user_script:1: Found too many nested data structures"),
        "{}",
        show(&deep_json)
    );
    let deep_encode = eval(
        port,
        "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return cjson.encode(t)",
    );
    assert!(
        show(&deep_encode).starts_with("-ERR user_script:1: Cannot serialise, excessive nesting"),
        "{}",
        show(&deep_encode)
    );
    let deep_reply = eval(
        port,
        "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return t",
    );
    assert!(!deep_reply.is_empty());
    let mut c = RawConn::connect(port).expect("connect");
    assert_eq!(c.command(&[b"PING"]).expect("ping"), b"+PONG\r\n");
}
