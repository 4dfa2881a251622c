//! Lua scripting against real Redis 7.0: every case runs on a fresh connection to a
//! redis-server and to redsnap, and the raw replies must be byte-identical
//! (conversions, errors raised inside scripts, pcall, redis.* helpers, cjson,
//! cmsgpack, bit, the sandbox and global protection, SCRIPT subcommands). Plus a
//! busy script: BUSY for other clients, SCRIPT KILL, UNKILLABLE after a write,
//! SHUTDOWN NOSAVE.

use redsnap_testsupport::{RawConn, RedisServer, RedsnapServer};
use std::time::Duration;

/// Cases separated by `===`; one command per line, arguments separated by ` | `,
/// `\n` in an argument is a newline, `\xNN` a byte. A line starting with `~` runs
/// without comparing its reply (HELLO, whose reply names the server).
///
/// Cases check that a script sees fresh KEYS and ARGV whatever the previous script
/// did to them (redsnap refills the same two tables), and that time stands still
/// inside a script: a key set to expire in
/// 1 ms is still there 5 ms later in the same script, and gone after it (PTTL is not
/// compared: Redis 7.0 freezes only the expiry check, 7.2 and redsnap the whole
/// command clock).
const CASES: &str = r#"
EVAL | return tostring(math.random()) | 0
===
EVAL | return {math.random(100), math.random(100), math.random(5, 10)} | 0
===
EVAL | math.randomseed(42) return {math.random(1000), math.random(1000)} | 0
===
EVAL | return math.random(0) | 0
===
EVAL | return math.random(1, 2, 3) | 0
===
EVAL | return 1 | 0
===
EVAL | KEYS[7] = 'x' KEYS.f = 1 ARGV[1] = nil setmetatable(KEYS, {__index = function() return 'meta' end}) return KEYS[9] | 1 | a | v
EVAL | return {#KEYS, KEYS[1], tostring(KEYS[7]), tostring(KEYS.f), tostring(KEYS[9]), #ARGV, ARGV[1], tostring(getmetatable(KEYS))} | 1 | b | w
EVAL | for i = 1, 1000 do KEYS['k' .. i] = i end return #KEYS | 1 | c
EVAL | return {#KEYS, tostring(KEYS.k1), KEYS[1]} | 1 | d
EVAL | for i = 2, 600 do KEYS[i] = i end ARGV[3] = 'x' return #KEYS | 1 | e | f
EVAL | return {#KEYS, KEYS[1], tostring(KEYS[2]), tostring(KEYS[600]), #ARGV, tostring(ARGV[3])} | 1 | g
===
EVAL | redis.call('SET', KEYS[1], 'v', 'PX', 1) local t = redis.call('TIME') local u repeat u = redis.call('TIME') until (u[1] - t[1]) * 1000000 + (u[2] - t[2]) > 5000 return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[1])} | 1 | frozen
EXISTS | frozen
===
EVAL | return x | 0
===
EVAL | x = 1 | 0
===
EVAL | return os | 0
===
EVAL | return {1,2,3,'ciao',{1,2}} | 0
===
EVAL | return redis.call('incr','a','b') | 0
===
SET | s | v
EVAL | return redis.call('lpush','s','b') | 0
EVAL | return redis.pcall('lpush','s','b') | 0
EVAL | local t = redis.pcall('lpush','s','b') return {t.err, tostring(t.ignore_error_stats_update)} | 0
===
EVAL | return redis.call('nosuch') | 0
===
EVAL | return redis.pcall('nosuch') | 0
===
EVAL | return redis.call('auth','x') | 0
===
EVAL | return redis.call('multi') | 0
===
EVAL | return redis.call('eval', 'return 1', 0) | 0
===
EVAL | return redis.call('config', 'nosuchsub') | 0
===
EVAL | return redis.call('blpop','nolist',0) | 0
===
EVAL | error('boom') | 0
===
EVAL | error('boom', 0) | 0
===
EVAL | error() | 0
===
EVAL | error({err='MY thing'}) | 0
===
EVAL | return {err='MY thing'} | 0
===
EVAL | return {err='bad\r\nline'} | 0
===
EVAL | return redis.error_reply('x') | 0
===
EVAL | return redis.error_reply('-x y') | 0
===
EVAL | return redis.error_reply('MY code') | 0
===
EVAL | return redis.error_reply(5) | 0
===
EVAL | return redis.status_reply('FINE') | 0
===
EVAL | return redis.status_reply() | 0
===
EVAL | return {ok='a\nb'} | 0
===
EVAL | syntax error here | 0
===
EVAL | return 'unfinished | 0
===
EVAL | \x1bLua | 0
===
EVAL | redis.call = 1 | 0
===
EVAL | redis.newfield = 1 | 0
===
EVAL | setmetatable(_G, nil) | 0
===
EVAL | rawset(_G,'x',1) | 0
===
EVAL | return rawget(_G,'nosuch') | 0
===
EVAL | string.x = 1 | 0
===
EVAL | table.insert = nil | 0
===
EVAL | cjson.encode = nil | 0
===
EVAL | local t = getmetatable('') t.__index = nil return 1 | 0
===
EVAL | _G.x = 1 | 0
===
EVAL | return _G.x | 0
===
EVAL | tostring = nil | 0
===
EVAL | return select(2, loadstring(string.dump(function() return 1 end))) | 0
===
EVAL | return {loadstring('\27Lua')} | 0
===
EVAL | return loadstring('return 5')() | 0
===
EVAL | loadstring('x = 5')() | 0
===
EVAL | return select(2, loadstring('return +')) | 0
===
EVAL | return os.execute('ls') | 0
===
EVAL | return io.open('/etc/passwd') | 0
===
EVAL | return dofile('/etc/passwd') | 0
===
EVAL | return loadfile('/etc/passwd') | 0
===
EVAL | return require('os') | 0
===
EVAL | return print('x') | 0
===
EVAL | return debug.getinfo(1) | 0
===
EVAL | return getfenv(1) | 0
===
EVAL | return newproxy() | 0
===
EVAL | return module('x') | 0
===
EVAL | local t={} for k,v in pairs(_G) do t[#t+1]=k..':'..type(v) end table.sort(t) return t | 0
===
EVAL | local t={} for k,v in pairs(redis) do t[#t+1]=k..':'..type(v) end table.sort(t) return t | 0
===
EVAL | return {type(cjson), type(cmsgpack), type(bit), type(struct), type(coroutine), type(string.dump)} | 0
===
EVAL | \n\nerror('line3') | 0
===
EVAL | \nlocal function f() error('x') end\nf() | 0
===
EVAL | \nlocal function f() return redis.call('nosuch') end\n\nf() | 0
===
EVAL | return nil + 1 | 0
===
EVAL | local t = nil\nreturn t.x | 0
===
EVAL | return pcall(function() return x end) | 0
===
EVAL | return {pcall(function() return x end)} | 0
===
EVAL | return {pcall(error, 'e')} | 0
===
EVAL | local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), e.err} | 0
===
EVAL | local ok, e = pcall(cjson.decode, '{') return {tostring(ok), e} | 0
===
SET | s | v
EVAL | local ok, e = pcall(redis.call, 'lpush', 's', 'x') return {type(e), e} | 0
EVAL | local ok, e = pcall(redis.call, 'lpush', 's', 'x') error(e) | 0
EVAL | local ok, e = pcall(redis.setresp, 5) return {type(e), tostring(e)} | 0
EVAL | local ok, e = pcall(function() redis.call('nosuch') end) return e | 0
EVAL | local ok, e = pcall(error, {err='X y'}) return e | 0
EVAL | local ok, e = pcall(error, {a=1}) return type(e) | 0
EVAL | return {pcall(function() return 1, 2 end)} | 0
===
EVAL | return redis.setresp(4) | 0
===
EVAL | return redis.setresp() | 0
===
EVAL | return redis.sha1hex() | 0
===
EVAL | return redis.sha1hex('abc') | 0
===
EVAL | return redis.sha1hex(123) | 0
===
EVAL | return redis.call() | 0
===
EVAL | return redis.pcall() | 0
===
EVAL | return redis.call('get', {}) | 0
===
EVAL | return redis.pcall('get', true) | 0
===
EVAL | redis.log(redis.LOG_WARNING, 'hello', 'world') return 1 | 0
===
EVAL | return redis.log(1) | 0
===
EVAL | return redis.log('x', 'y') | 0
===
EVAL | return redis.log(9, 'y') | 0
===
EVAL | return {redis.REDIS_VERSION, redis.REDIS_VERSION_NUM, redis.LOG_DEBUG, redis.LOG_NOTICE, redis.REPL_ALL} | 0
===
EVAL | return {redis.replicate_commands(), redis.breakpoint(), redis.debug('x')} | 0
===
EVAL | return redis.set_repl(9) | 0
===
EVAL | redis.set_repl(redis.REPL_ALL) return redis.call('set', 'k', 'v') | 0
===
EVAL | return redis.acl_check_cmd('get', 'x') | 0
===
EVAL | return redis.acl_check_cmd('nosuch') | 0
===
EVAL | return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV} | 2 | a | b | c | d
===
EVAL | return 3.99 | 0
===
EVAL | return -3.99 | 0
===
EVAL | return true | 0
===
EVAL | return false | 0
===
EVAL | return nil | 0
===
EVAL | return | 0
===
EVAL | return 1, 2 | 0
===
EVAL | return {1, 2, nil, 4} | 0
===
EVAL | return {1, false, true, 'x', 2.5} | 0
===
EVAL | return {double=1.5} | 0
===
EVAL | return {map={a=1}} | 0
===
EVAL | return {set={a=true}} | 0
===
EVAL | return {big_number='123'} | 0
===
EVAL | return function() end | 0
===
EVAL | return redis.call('get','nokey') | 0
===
EVAL | return {redis.call('get','nokey'), 'after'} | 0
===
EVAL | return type(redis.call('get','nokey')) | 0
===
EVAL | return redis.call('set','x',1.5) | 0
===
EVAL | redis.call('set','x',0.1) return redis.call('get','x') | 0
===
EVAL | redis.call('set','x',12345678901234567) return redis.call('get','x') | 0
===
EVAL | redis.call('set','x',-0) return redis.call('get','x') | 0
===
EVAL | return redis.call('incrbyfloat','f','1.5') | 0
===
EVAL | return redis.call('set','x','y') | 0
===
EVAL | return type(redis.call('set','x','y')) | 0
===
EVAL | return redis.call('set','x','y').ok | 0
===
RPUSH | l | a | b | c
EVAL | return redis.call('lrange', 'l', 0, -1) | 0
===
HSET | h | a | 1
EVAL | return redis.call('hgetall', 'h') | 0
===
ZADD | z | 1.5 | a | 2 | b
EVAL | return redis.call('zrange', 'z', 0, -1, 'withscores') | 0
EVAL | return redis.call('zscore', 'z', 'a') | 0
===
SADD | st | x
EVAL | return redis.call('smembers', 'st') | 0
===
EVAL | return redis.call('exists', 'nokey') | 0
===
EVAL | return redis.call('ping') | 0
===
EVAL | return redis.call('echo', 'hi') | 0
===
EVAL | redis.setresp(3) return redis.call('get','nokey') | 0
===
EVAL | redis.setresp(3) return {redis.call('get','nokey'), 'after'} | 0
===
HSET | h | a | 1
EVAL | redis.setresp(3) local t = redis.call('hgetall','h') return {t.map.a, type(t.map)} | 0
EVAL | redis.setresp(3) return redis.call('hgetall','h') | 0
===
SADD | st | x
EVAL | redis.setresp(3) local t = redis.call('smembers','st') return tostring(t.set.x) | 0
===
ZADD | z | 1.5 | a
EVAL | redis.setresp(3) local t = redis.call('zscore','z','a') return {t.double, type(t)} | 0
EVAL | redis.setresp(3) return redis.call('zscore','z','a') | 0
===
EVAL | redis.setresp(3) return true | 0
===
EVAL | redis.setresp(3) return false | 0
===
~HELLO | 3
EVAL | return {double=1.5} | 0
EVAL | return {map={a=1}} | 0
EVAL | return {set={a=true}} | 0
EVAL | return nil | 0
EVAL | return true | 0
EVAL | return false | 0
EVAL | redis.setresp(3) return true | 0
EVAL | redis.setresp(3) return false | 0
EVAL | redis.setresp(3) return redis.call('get','nokey') | 0
EVAL | return redis.call('get','nokey') | 0
===
EVAL | redis.call('select', 5) redis.call('set','k','v') return redis.call('dbsize') | 0
DBSIZE
SELECT | 5
DBSIZE
===
EVAL | return redis.call('select', 99) | 0
===
EVAL_RO | return redis.call('set','a','b') | 0
===
EVAL_RO | return redis.call('get','a') | 0
===
EVAL | #!lua flags=no-writes\nreturn redis.call('set','a','b') | 0
===
EVAL | #!lua flags=no-writes\nreturn redis.call('get','a') | 0
===
EVAL | #!lua flags=bad\nreturn 1 | 0
===
EVAL | #!python\nreturn 1 | 0
===
EVAL | #!lua\nreturn redis.call('set','a','b') | 0
===
EVAL | #!lua x=1\nreturn 1 | 0
===
EVAL | #!lua | 0
===
EVAL | #!lua\nreturn 1/x | 0
===
EVAL_RO | #!lua\nreturn 1 | 0
===
EVAL_RO | #!lua flags=no-writes\nreturn 1 | 0
===
SCRIPT | LOAD | return 1
SCRIPT | EXISTS | E0E1F9FABFC9D4800C877A703B823AC0578FF8DB | e0e1f9fabfc9d4800c877a703b823ac0578ff8db | ffff
EVALSHA | E0E1F9FABFC9D4800C877A703B823AC0578FF8DB | 0
EVALSHA_RO | e0e1f9fabfc9d4800c877a703b823ac0578ff8db | 0
SCRIPT | FLUSH
SCRIPT | EXISTS | e0e1f9fabfc9d4800c877a703b823ac0578ff8db
EVALSHA | e0e1f9fabfc9d4800c877a703b823ac0578ff8db | 0
===
SCRIPT | LOAD | syntax error
SCRIPT | LOAD | #!lua flags=bad\nreturn 1
===
EVAL | return redis.call('get', KEYS[1]) | 1 | k
SCRIPT | EXISTS | 4e6d8fc8bb01276962cce5371fa795a7763657ae
EVALSHA | 4e6d8fc8bb01276962cce5371fa795a7763657ae | 1 | k
===
SCRIPT | HELP
SCRIPT | FLUSH | x
SCRIPT | FLUSH | SYNC
SCRIPT | FLUSH | ASYNC
SCRIPT | KILL
EVAL | return 1 | x
EVAL | return 1 | 2 | a
EVAL | return 1 | -1
EVALSHA | abc | 0
EVALSHA | ffffffffffffffffffffffffffffffffffffffff | 0
EVALSHA | ffffffffffffffffffffffffffffffffffffffff | 2 | a
===
EVAL | return cjson.encode({1,2,3,{a=1}}) | 0
===
EVAL | return cjson.encode({}) | 0
===
EVAL | return cjson.encode({a='x/y"z\\n\1', b=1.5, c=true, d=cjson.null}) | 0
===
EVAL | return cjson.encode({[1]=1,[2]=2,[20]=3}) | 0
===
EVAL | return cjson.encode({[1]=1,[3]=3}) | 0
===
EVAL | return cjson.encode({[1.5]=1}) | 0
===
EVAL | return cjson.encode({[true]=1}) | 0
===
EVAL | return cjson.encode(123456789012345) | 0
===
EVAL | return cjson.encode({0.1, -0, 1e300, 1/3, 100, -7}) | 0
===
EVAL | return cjson.encode(1/0) | 0
===
EVAL | return cjson.encode(function() end) | 0
===
EVAL | return cjson.encode() | 0
===
EVAL | return cjson.encode('\127\128\255') | 0
===
EVAL | local t = {} t.t = t return cjson.encode(t) | 0
===
EVAL | return cjson.decode('[1,2,{"a":"b"}]')[3].a | 0
===
EVAL | return cjson.decode('{"a":1,}') | 0
===
EVAL | return cjson.decode('') | 0
===
EVAL | return cjson.decode('[1 2]') | 0
===
EVAL | return cjson.decode('{"a" 1}') | 0
===
EVAL | return cjson.decode('[1,2') | 0
===
EVAL | return cjson.decode('"abc') | 0
===
EVAL | return cjson.decode('"\\q"') | 0
===
EVAL | return cjson.decode('tru') | 0
===
EVAL | return cjson.decode('[1] x') | 0
===
EVAL | return cjson.decode('"\\u00e9\\ud83d\\ude00"') | 0
===
EVAL | return cjson.decode('1.5e3') | 0
===
EVAL | return cjson.decode('-0.25') | 0
===
EVAL | return cjson.decode() | 0
===
EVAL | return cjson.decode({}) | 0
===
EVAL | return cjson.encode(cjson.decode('{"a":[1,2,3],"b":null,"c":{"d":false}}')) | 0
===
EVAL | return cjson.decode('null') == cjson.null | 0
===
EVAL | return cjson.encode(cjson.decode('[[[[[[1]]]]]]')) | 0
===
EVAL | return cjson.encode({'a', {b={1, 2}}, 'c'}) | 0
===
EVAL | return cmsgpack.pack({1,2,3}, 'abc', {a=1}, 1.5, -1, 300, -300, 70000, true, false, 0.1, -40, -200, 5000000000, -5000000000) | 0
===
EVAL | return cmsgpack.pack(string.rep('x', 40), string.rep('y', 300), {}, {[1]=1,[3]=3}) | 0
===
EVAL | return {cmsgpack.unpack(cmsgpack.pack({1,2,3}, 'abc', 1.5, -1, 300))} | 0
===
EVAL | local t = cmsgpack.unpack(cmsgpack.pack({a={b='c'}})) return t.a.b | 0
===
EVAL | return cmsgpack.unpack('\xc1') | 0
===
EVAL | return cmsgpack.unpack('\x92\x01') | 0
===
EVAL | return cmsgpack.pack() | 0
===
EVAL | return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))} | 0
===
EVAL | return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)} | 0
===
EVAL | return {bit.band(7,3), bit.bor(1,2), bit.bxor(3,1), bit.lshift(1,31), bit.tohex(255), bit.tohex(-1, -4), bit.bnot(0), bit.rshift(-1, 28), bit.arshift(-16, 2), bit.rol(1, 33), bit.bswap(1), bit.tobit(4294967297)} | 0
===
EVAL | return bit.band() | 0
===
EVAL | return bit.band('x') | 0
===
EVAL | return {string.format('%5.2f', 3.14159), string.rep('ab', 3), ('x'):upper(), #'abc', table.concat({1,2,3}, ',')} | 0
===
EVAL | local t = {3,1,2} table.sort(t) return t | 0
===
EVAL | local co = coroutine.create(function() coroutine.yield(1) end) return {coroutine.resume(co)} | 0
===
EVAL | return tonumber('0x10') | 0
===
EVAL | return tostring(1e15) | 0
===
EVAL | return {tostring(0.1), tostring(1/3), tostring(-0)} | 0
===
EVAL | return unpack({1, 2, 3}) | 0
===
EVAL | return select('#', 1, 2, 3) | 0
===
EVAL | return string.sub('hello', 2, 3) | 0
===
EVAL | return #KEYS + #ARGV | 0
===
EVAL | local s = 0 for i = 1, 100000 do s = s + i end return s | 0
"#;

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'n' {
            out.push(b'\n');
            i += 2;
        } else if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && b[i + 2].is_ascii_hexdigit()
            && b[i + 3].is_ascii_hexdigit()
        {
            let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// (compare?, argv) for each command of a case.
fn parse_case(case: &str) -> Vec<(bool, Vec<Vec<u8>>)> {
    case.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (cmp, l) = match l.strip_prefix('~') {
                Some(rest) => (false, rest),
                None => (true, l),
            };
            (cmp, l.split(" | ").map(unescape).collect())
        })
        .collect()
}

fn run_case(port: u16, cmds: &[(bool, Vec<Vec<u8>>)]) -> Vec<Vec<u8>> {
    let mut c = match RawConn::connect(port) {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to {port} for case {cmds:?}: {e}"),
    };
    c.command(&[b"FLUSHALL"]).expect("flushall");
    cmds.iter()
        .map(|(_, argv)| {
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
            c.command(&args)
                .unwrap_or_else(|e| format!("<io error: {e}>").into_bytes())
        })
        .collect()
}

#[test]
fn scripting_matches_redis() {
    let redis = RedisServer::start().expect("redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let mut mismatches = Vec::new();
    let mut n = 0;
    for case in CASES.split("\n===\n") {
        let cmds = parse_case(case);
        if cmds.is_empty() {
            continue;
        }
        n += 1;
        let a = run_case(redis.port(), &cmds);
        let b = run_case(redsnap.port(), &cmds);
        for (i, (cmp, argv)) in cmds.iter().enumerate() {
            if *cmp && a[i] != b[i] {
                mismatches.push(format!(
                    "{:?}\n  redis:   {:?}\n  redsnap: {:?}",
                    argv.iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&a[i]),
                    String::from_utf8_lossy(&b[i])
                ));
            }
        }
    }
    assert!(n > 150, "only {n} cases parsed");
    assert!(
        mismatches.is_empty(),
        "{} mismatches out of {n} cases:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Reads one reply, waiting up to `timeout`.
fn read_within(c: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    c.command(args)
        .unwrap_or_else(|e| format!("<io error: {e}>").into_bytes())
}

fn send_only(port: u16, args: &[&[u8]]) -> std::thread::JoinHandle<Vec<u8>> {
    let mut c = RawConn::connect(port).expect("connect");
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    std::thread::spawn(move || {
        let a: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        c.command(&a)
            .unwrap_or_else(|e| format!("<io error: {e}>").into_bytes())
    })
}

/// The busy-script sequence on one server; returns the replies seen.
fn busy_sequence(port: u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut other = RawConn::connect(port).unwrap();
    let mut killer = RawConn::connect(port).unwrap();
    assert_eq!(read_within(&mut other, &[b"PING"]), b"+PONG\r\n");
    assert_eq!(read_within(&mut killer, &[b"PING"]), b"+PONG\r\n");

    // A read-only endless loop: BUSY for others, SCRIPT KILL ends it.
    let script = send_only(
        port,
        &[b"EVAL", b"local i = 0 while true do i = i + 1 end", b"0"],
    );
    std::thread::sleep(Duration::from_millis(600));
    out.push(read_within(&mut other, &[b"PING"]));
    out.push(read_within(&mut other, &[b"GET", b"x"]));
    out.push(read_within(&mut killer, &[b"SCRIPT", b"KILL"]));
    out.push(script.join().unwrap());
    out.push(read_within(&mut other, &[b"PING"]));
    out.push(read_within(&mut other, &[b"SET", b"after", b"1"]));

    // A script that wrote cannot be killed; SHUTDOWN NOSAVE still stops the server.
    let script = send_only(
        port,
        &[
            b"EVAL",
            b"redis.call('set','k','v') while true do end",
            b"0",
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    out.push(read_within(&mut killer, &[b"SCRIPT", b"KILL"]));
    out.push(read_within(&mut other, &[b"PING"]));
    let _ = read_within(&mut killer, &[b"SHUTDOWN", b"NOSAVE"]);
    let _ = script.join();
    out
}

#[test]
fn busy_script_kill_and_shutdown() {
    let mut redis = RedisServer::builder()
        .extra_args(&["--busy-reply-threshold", "200"])
        .start()
        .expect("redis-server");
    let mut redsnap = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--lua-time-limit",
            "200",
        ])
        .start()
        .expect("redsnap");
    let a = busy_sequence(redis.port());
    let b = busy_sequence(redsnap.port());
    let show = |v: &[Vec<u8>]| {
        v.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(show(&a), show(&b));
    assert!(
        String::from_utf8_lossy(&b[0]).starts_with("-BUSY "),
        "{:?}",
        show(&b)
    );
    assert_eq!(b[2], b"+OK\r\n");
    assert!(String::from_utf8_lossy(&b[3])
        .starts_with("-ERR Script killed by user with SCRIPT KILL..."));
    assert_eq!(b[4], b"+PONG\r\n");
    assert!(String::from_utf8_lossy(&b[6]).starts_with("-UNKILLABLE "));
    // SHUTDOWN NOSAVE ended the script and the server.
    assert!(
        redsnap.wait_exit(Duration::from_secs(10)).is_some(),
        "redsnap did not exit after SHUTDOWN NOSAVE"
    );
    redis.stop();
}
