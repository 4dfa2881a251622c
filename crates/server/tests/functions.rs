//! Functions (FUNCTION LOAD / FCALL) against real Redis 7.0 and across restarts:
//! every case runs on a fresh connection to a redis-server and to redsnap and the raw
//! replies must be byte-identical (library metadata, `redis.register_function` in
//! both forms and its errors, the load environment and its limits, FCALL/FCALL_RO
//! and the flags, LIST/DUMP/RESTORE/DELETE/FLUSH/STATS); payloads of FUNCTION DUMP
//! restore across the two servers; a busy function is killed by FUNCTION KILL and not
//! by SCRIPT KILL (and the reverse for EVAL); libraries come back after a restart from
//! the snapshot and after `kill -9` from the append log.

use redsnap_testsupport::{bulk_payload, RawConn, RedisServer, RedsnapServer};
use std::time::Duration;

/// Cases separated by `===`; one command per line, arguments separated by ` | `,
/// `\n` in an argument is a newline, `\xNN` a byte. A line starting with `~` runs
/// without comparing its reply.
const CASES: &str = r#"
FUNCTION | LOAD | #!lua name=lib\nredis.register_function('f1', function(keys, args) return {keys[1], args[1], #keys, #args} end)
FCALL | f1 | 1 | k | a | b
FCALL | F1 | 0
FCALL_RO | f1 | 0
FUNCTION | LIST
FUNCTION | LIST | WITHCODE
FUNCTION | LIST | LIBRARYNAME | l*
FUNCTION | LIST | LIBRARYNAME | x*
FUNCTION | STATS
FUNCTION | LOAD | #!lua name=lib\nredis.register_function('f1', function() return 1 end)
FUNCTION | LOAD | REPLACE | #!lua name=lib\nredis.register_function('f1', function() return 2 end)
FCALL | f1 | 0
FUNCTION | DELETE | lib
FUNCTION | DELETE | lib
FCALL | f1 | 0
===
FUNCTION | LOAD | return 1
FUNCTION | LOAD | #!lua name=x
FUNCTION | LOAD | #!lua\nreturn 1
FUNCTION | LOAD | #!lua name=a name=b\nreturn 1
FUNCTION | LOAD | #!lua name=a foo=bar\nreturn 1
FUNCTION | LOAD | #!lua name="q"\nredis.register_function('fq', function() return 'q' end)
FUNCTION | LOAD | #! name=x\nreturn 1
FUNCTION | LOAD | #!js name=x\nreturn 1
FUNCTION | LOAD | #!LUA name=bad-name\nreturn 1
FUNCTION | LOAD | #!lua name=x\nbad code
FUNCTION | LOAD | #!lua name=x\nreturn 1
FUNCTION | LOAD | foo | #!lua name=x\nreturn 1
FUNCTION | LOAD | #!lua name=x\nreturn math.random()
FUNCTION | LOAD | #!lua name=x\nreturn redis.call('ping')
FUNCTION | LOAD | #!lua name=x\nreturn redis.setresp(3)
FUNCTION | LOAD | #!lua name=x\na = 1
FUNCTION | LOAD | #!lua name=x\nlocal mt = getmetatable(_G)
FUNCTION | LOAD | #!lua name=x\nlocal a = 1 while 1 do a = a + 1 end
FUNCTION | LOAD | #!lua name=x\nredis.log(redis.LOG_NOTICE, 'loading', redis.REDIS_VERSION) redis.register_function('v', function() return redis.REDIS_VERSION_NUM end)
FCALL | v | 0
===
FUNCTION | LOAD | #!lua name=r\nredis.register_function()
FUNCTION | LOAD | #!lua name=r\nredis.register_function('f')
FUNCTION | LOAD | #!lua name=r\nredis.register_function('f', function() end, 1)
FUNCTION | LOAD | #!lua name=r\nredis.register_function(nil, function() end)
FUNCTION | LOAD | #!lua name=r\nredis.register_function('f', 'x')
FUNCTION | LOAD | #!lua name=r\nredis.register_function('a\x00b', function() end)
FUNCTION | LOAD | #!lua name=r\nredis.register_function('', function() end)
FUNCTION | LOAD | #!lua name=r\nredis.register_function('f', function() end) redis.register_function('f', function() end)
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f'}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{callback=function() end}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name=function() end, callback=function() end}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback='x'}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback=function() end, description={}}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback=function() end, flags='no-writes'}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback=function() end, flags={'nope'}}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback=function() end, other=1}
FUNCTION | LOAD | #!lua name=r\nredis.register_function{function_name='f', callback=function() return 'named' end, description='d', flags={'NO-WRITES', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}}
FUNCTION | LIST
FCALL | f | 0
FCALL_RO | f | 0
===
FUNCTION | LOAD | #!lua name=w\nredis.register_function('w', function(keys, args) return redis.call('set', keys[1], args[1]) end) redis.register_function{function_name='ro', callback=function(keys) return redis.call('set', keys[1], 'x') end, flags={'no-writes'}}
FCALL | w | 1 | k | v
FCALL_RO | w | 1 | k | v
FCALL | ro | 1 | k
GET | k
FCALL | w | x
FCALL | w | 3 | k
FCALL | w | -1 | k
FCALL | nosuch | 0
===
FUNCTION | LOAD | #!lua name=e\nlocal lib = redis\nredis.register_function('e1', function() return foo end) redis.register_function('e2', function() lib.x = 1 end) redis.register_function('e3', function() return lib.register_function('z', function() end) end) redis.register_function('e4', function() return redis.register_function end) redis.register_function('e5', function() return KEYS end) redis.register_function('e6', function() return {err='MY boom'} end) redis.register_function('e7', function() error('plain') end) redis.register_function('e8', function() return redis.call('nosuch') end)
FCALL | e1 | 0
FCALL | e2 | 0
FCALL | e3 | 0
FCALL | e4 | 0
FCALL | e5 | 0
FCALL | e6 | 0
FCALL | e7 | 0
FCALL | e8 | 0
===
FUNCTION | LOAD | #!lua name=a\nredis.register_function('same', function() return 1 end)
FUNCTION | LOAD | #!lua name=b\nredis.register_function('SAME', function() return 2 end)
FUNCTION | LOAD | #!lua name=b\nredis.register_function('other', function() return 2 end)
FUNCTION | STATS
FUNCTION | RESTORE | bad_payload
FUNCTION | RESTORE | x | BAD
FUNCTION | RESTORE | x | y | z
FUNCTION | FLUSH | BAD
FUNCTION | FLUSH | SYNC | x
FUNCTION | KILL
FUNCTION | NOSUCH
FUNCTION | FLUSH | ASYNC
FUNCTION | STATS
FUNCTION | LIST
FUNCTION | DUMP
===
FUNCTION | LIST | nope
FUNCTION | LIST | LIBRARYNAME
FUNCTION | LIST | WITHCODE | WITHCODE
FUNCTION | LIST | LIBRARYNAME | a | LIBRARYNAME | b
~FUNCTION | HELP
COMMAND | GETKEYS | FCALL | f | 2 | a | b | c
COMMAND | GETKEYS | FCALL_RO | f | 0 | a
===
EVAL | return struct.pack('>I2i4', 258, -2) | 0
EVAL | return {struct.unpack('>I2i4', struct.pack('>I2i4', 258, -2))} | 0
EVAL | return struct.size('!4bihd') | 0
EVAL | return {struct.unpack('sc3b', struct.pack('sc3b', 'ab', 'xyz', 7))} | 0
EVAL | return {struct.unpack('<d', struct.pack('<d', 1.5))} | 0
EVAL | return struct.pack('z') | 0
EVAL | return struct.pack('i') | 0
EVAL | return struct.pack('ii', 1) | 0
EVAL | return struct.pack() | 0
EVAL | return struct.unpack('i') | 0
EVAL | return {struct.unpack('bc0', struct.pack('bc0', 3, 'hey'))} | 0
EVAL | return {struct.unpack('>i16', struct.pack('<i16', -5))} | 0
EVAL | return struct.pack('>h', 70000) | 0
EVAL | return struct.pack('i33', 1) | 0
EVAL | return struct.pack('!3') | 0
EVAL | return struct.pack('c5', 'ab') | 0
EVAL | return struct.unpack('i', 'ab') | 0
EVAL | return struct.unpack('i', 'abcd', 0) | 0
EVAL | return struct.unpack('s', 'ab') | 0
EVAL | return struct.size('s') | 0
"#;

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'n' {
            out.push(b'\n');
            i += 2;
        } else if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let h = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
            out.push(u8::from_str_radix(h, 16).expect("hex"));
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

fn cmd(c: &mut RawConn, args: &[&[u8]]) -> Vec<u8> {
    c.command(args)
        .unwrap_or_else(|e| format!("<io error: {e}>").into_bytes())
}

fn run_case(port: u16, cmds: &[(bool, Vec<Vec<u8>>)]) -> Vec<Vec<u8>> {
    let mut c = RawConn::connect(port).expect("connect");
    cmd(&mut c, &[b"FLUSHALL"]);
    cmd(&mut c, &[b"FUNCTION", b"FLUSH"]);
    cmds.iter()
        .map(|(_, argv)| {
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
            cmd(&mut c, &args)
        })
        .collect()
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn redsnap_without_persistence() -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap")
}

#[test]
fn functions_match_redis() {
    let redis = RedisServer::start().expect("redis-server");
    let redsnap = redsnap_without_persistence();
    let mut mismatches = Vec::new();
    let mut n = 0;
    for case in CASES.split("\n===\n") {
        let cmds = parse_case(case);
        if cmds.is_empty() {
            continue;
        }
        let a = run_case(redis.port(), &cmds);
        let b = run_case(redsnap.port(), &cmds);
        for (i, (cmp, argv)) in cmds.iter().enumerate() {
            n += 1;
            if *cmp && a[i] != b[i] {
                let argv: Vec<String> = argv.iter().map(|x| show(x)).collect();
                mismatches.push(format!(
                    "{argv:?}\n  redis:   {:?}\n  redsnap: {:?}",
                    show(&a[i]),
                    show(&b[i])
                ));
            }
        }
    }
    assert!(n > 100, "only {n} commands parsed");
    assert!(
        mismatches.is_empty(),
        "{} mismatches out of {n} commands:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Library code for the DUMP/RESTORE and restart tests (long enough for Redis to
/// compress it in its DUMP payload).
fn library(name: &str, func: &str, value: &str) -> String {
    format!(
        "#!lua name={name}\nredis.register_function('{func}', function(keys, args) return '{value}' .. string.rep('-', 3) end)\n-- padding padding padding padding padding"
    )
}

#[test]
fn function_dump_payloads_restore_across_redis_and_redsnap() {
    let redis = RedisServer::start().expect("redis-server");
    let redsnap = redsnap_without_persistence();
    let mut r = RawConn::connect(redis.port()).expect("connect");
    let mut s = RawConn::connect(redsnap.port()).expect("connect");
    let load = |c: &mut RawConn, code: &str| cmd(c, &[b"FUNCTION", b"LOAD", code.as_bytes()]);
    assert_eq!(
        load(&mut r, &library("fromredis", "fr", "redis")),
        b"$9\r\nfromredis\r\n"
    );
    assert_eq!(
        load(&mut s, &library("fromredsnap", "fs", "redsnap")),
        b"$11\r\nfromredsnap\r\n"
    );
    let from_redis = bulk_payload(&cmd(&mut r, &[b"FUNCTION", b"DUMP"])).expect("payload");
    let from_redsnap = bulk_payload(&cmd(&mut s, &[b"FUNCTION", b"DUMP"])).expect("payload");
    assert_eq!(
        cmd(&mut s, &[b"FUNCTION", b"RESTORE", &from_redis]),
        b"+OK\r\n"
    );
    assert_eq!(
        cmd(&mut r, &[b"FUNCTION", b"RESTORE", &from_redsnap]),
        b"+OK\r\n"
    );
    for c in [&mut r, &mut s] {
        assert_eq!(cmd(c, &[b"FCALL", b"fr", b"0"]), b"$8\r\nredis---\r\n");
        assert_eq!(cmd(c, &[b"FCALL", b"fs", b"0"]), b"$10\r\nredsnap---\r\n");
    }
    // The same libraries again: APPEND refuses, REPLACE and FLUSH take them.
    for (c, p) in [(&mut r, &from_redsnap), (&mut s, &from_redis)] {
        let again = cmd(c, &[b"FUNCTION", b"RESTORE", p]);
        assert!(show(&again).contains("already exists"), "{}", show(&again));
        assert_eq!(
            cmd(c, &[b"FUNCTION", b"RESTORE", p, b"REPLACE"]),
            b"+OK\r\n"
        );
        assert_eq!(cmd(c, &[b"FUNCTION", b"RESTORE", p, b"FLUSH"]), b"+OK\r\n");
        let list = cmd(c, &[b"FUNCTION", b"LIST"]);
        assert!(show(&list).starts_with("*1\r\n"), "{}", show(&list));
    }
}

fn send_only(port: u16, args: &[&[u8]]) -> std::thread::JoinHandle<Vec<u8>> {
    let mut c = RawConn::connect(port).expect("connect");
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    std::thread::spawn(move || {
        let a: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        cmd(&mut c, &a)
    })
}

/// FUNCTION STATS during a busy function, with the duration blanked.
fn stats_without_duration(reply: &[u8]) -> String {
    let s = show(reply);
    match s.find("duration_ms\r\n:") {
        Some(i) => {
            let rest = &s[i + 14..];
            let end = rest.find("\r\n").map_or(rest.len(), |e| e);
            format!("{}<ms>{}", &s[..i + 14], &rest[end..])
        }
        None => s,
    }
}

/// A busy function and a busy EVAL script on one server; the replies seen.
fn busy_sequence(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut other = RawConn::connect(port).expect("connect");
    let code = b"#!lua name=busy\nredis.register_function('spin', function() local a = 0 while true do a = a + 1 end end)";
    out.push(show(&cmd(&mut other, &[b"FUNCTION", b"LOAD", code])));

    let f = send_only(port, &[b"FCALL", b"spin", b"0"]);
    std::thread::sleep(Duration::from_millis(600));
    out.push(show(&cmd(&mut other, &[b"PING"])));
    out.push(show(&cmd(&mut other, &[b"SCRIPT", b"KILL"])));
    out.push(stats_without_duration(&cmd(
        &mut other,
        &[b"FUNCTION", b"STATS"],
    )));
    out.push(show(&cmd(&mut other, &[b"FUNCTION", b"KILL"])));
    out.push(show(&f.join().expect("fcall")));
    out.push(show(&cmd(&mut other, &[b"PING"])));

    let e = send_only(port, &[b"EVAL", b"while true do end", b"0"]);
    std::thread::sleep(Duration::from_millis(600));
    out.push(show(&cmd(&mut other, &[b"FUNCTION", b"KILL"])));
    out.push(show(&cmd(&mut other, &[b"FUNCTION", b"STATS"])));
    out.push(show(&cmd(&mut other, &[b"SCRIPT", b"KILL"])));
    out.push(show(&e.join().expect("eval")));
    out.push(show(&cmd(&mut other, &[b"FUNCTION", b"STATS"])));
    out
}

#[test]
fn busy_functions_are_killed_by_function_kill_only() {
    let redis = RedisServer::builder()
        .extra_args(&["--busy-reply-threshold", "200"])
        .start()
        .expect("redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--busy-reply-threshold",
            "200",
        ])
        .start()
        .expect("redsnap");
    let a = busy_sequence(redis.port());
    let b = busy_sequence(redsnap.port());
    assert_eq!(a, b);
    assert!(
        b[1].starts_with("-BUSY ") && b[1].contains("FUNCTION KILL"),
        "{b:?}"
    );
    assert!(
        b[3].contains("running_script") && b[3].contains("spin"),
        "{b:?}"
    );
    assert_eq!(b[4], "+OK\r\n");
    assert!(b[5].contains("Script killed by user"), "{b:?}");
}

fn q(port: u16, args: &[&[u8]]) -> String {
    let mut c = RawConn::connect(port).expect("connect");
    show(&cmd(&mut c, args))
}

/// The names of the libraries FUNCTION LIST gives, sorted.
fn function_names(port: u16) -> Vec<String> {
    let list = q(port, &[b"FUNCTION", b"LIST"]);
    // Each library is a map starting `library_name`, then `$<len>`, then the name.
    let mut names: Vec<String> = list
        .split("library_name\r\n")
        .skip(1)
        .map(|rest| rest.split("\r\n").nth(1).unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn libraries_survive_a_restart_through_the_snapshot() {
    // No append log: only what a snapshot holds comes back.
    let mut server = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let port = server.port();
    let load = |code: &str| q(port, &[b"FUNCTION", b"LOAD", code.as_bytes()]);
    assert_eq!(load(&library("kept", "k", "one")), "$4\r\nkept\r\n");
    assert_eq!(load(&library("gone", "g", "two")), "$4\r\ngone\r\n");
    assert_eq!(q(port, &[b"SET", b"key", b"v"]), "+OK\r\n");
    assert_eq!(q(port, &[b"SAVE"]), "+OK\r\n");
    // After the snapshot: not in it.
    assert_eq!(q(port, &[b"FUNCTION", b"DELETE", b"gone"]), "+OK\r\n");
    assert_eq!(load(&library("late", "l", "three")), "$4\r\nlate\r\n");
    server.kill_9();
    server.restart().expect("restart");
    let port = server.port();
    assert_eq!(function_names(port), vec!["gone", "kept"]);
    assert_eq!(q(port, &[b"FCALL", b"k", b"0"]), "$6\r\none---\r\n");
    assert_eq!(q(port, &[b"FCALL", b"g", b"0"]), "$6\r\ntwo---\r\n");
    assert_eq!(
        q(port, &[b"FCALL", b"l", b"0"]),
        "-ERR Function not found\r\n"
    );
    assert_eq!(q(port, &[b"GET", b"key"]), "$1\r\nv\r\n");
    // The final snapshot of a clean shutdown holds what changed since.
    assert_eq!(q(port, &[b"FUNCTION", b"FLUSH"]), "+OK\r\n");
    assert_eq!(load(&library("last", "z", "four")), "$4\r\nlast\r\n");
    let _ = q(port, &[b"SHUTDOWN"]);
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "no exit"
    );
    server.restart().expect("restart");
    assert_eq!(function_names(server.port()), vec!["last"]);
    assert_eq!(
        q(server.port(), &[b"FCALL", b"z", b"0"]),
        "$7\r\nfour---\r\n"
    );
}

#[test]
fn library_changes_replay_from_the_append_log_after_kill_9() {
    let mut server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .start()
        .expect("redsnap");
    let port = server.port();
    let load = |args: &[&[u8]]| q(port, args);
    let a1 = library("a", "fa", "a1");
    let a2 = library("a", "fa", "a2");
    let b = library("b", "fb", "b");
    assert_eq!(load(&[b"FUNCTION", b"LOAD", a1.as_bytes()]), "$1\r\na\r\n");
    assert_eq!(load(&[b"FUNCTION", b"LOAD", b.as_bytes()]), "$1\r\nb\r\n");
    // A snapshot in the middle: what follows replays from the log after it.
    assert_eq!(q(port, &[b"SAVE"]), "+OK\r\n");
    assert_eq!(
        load(&[b"FUNCTION", b"LOAD", b"REPLACE", a2.as_bytes()]),
        "$1\r\na\r\n"
    );
    // A failed load is not logged.
    let bad = load(&[b"FUNCTION", b"LOAD", b"#!lua name=c\nreturn 1"]);
    assert_eq!(bad, "-ERR No functions registered\r\n");
    // RESTORE of a payload holding `c`, then `b` deleted.
    let c = library("c", "fc", "c");
    let mut conn = RawConn::connect(port).expect("connect");
    cmd(&mut conn, &[b"FUNCTION", b"LOAD", c.as_bytes()]);
    let payload = bulk_payload(&cmd(&mut conn, &[b"FUNCTION", b"DUMP"])).expect("payload");
    cmd(&mut conn, &[b"FUNCTION", b"DELETE", b"c"]);
    assert_eq!(
        cmd(&mut conn, &[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"]),
        b"+OK\r\n"
    );
    assert_eq!(q(port, &[b"FUNCTION", b"DELETE", b"b"]), "+OK\r\n");
    let expected = function_names(port);
    assert_eq!(expected, vec!["a", "c"]);
    server.kill_9();
    server.restart().expect("restart");
    let port = server.port();
    assert_eq!(function_names(port), expected);
    assert_eq!(q(port, &[b"FCALL", b"fa", b"0"]), "$5\r\na2---\r\n");
    assert_eq!(q(port, &[b"FCALL", b"fc", b"0"]), "$4\r\nc---\r\n");
    assert_eq!(
        q(port, &[b"FCALL", b"fb", b"0"]),
        "-ERR Function not found\r\n"
    );
    // FLUSH and RESTORE FLUSH replay too.
    assert_eq!(q(port, &[b"FUNCTION", b"FLUSH"]), "+OK\r\n");
    assert_eq!(function_names(port), Vec::<String>::new());
    let mut conn = RawConn::connect(port).expect("connect");
    assert_eq!(
        cmd(&mut conn, &[b"FUNCTION", b"RESTORE", &payload, b"FLUSH"]),
        b"+OK\r\n"
    );
    server.kill_9();
    server.restart().expect("restart");
    assert_eq!(function_names(server.port()), vec!["a", "b", "c"]);
    assert_eq!(
        q(server.port(), &[b"FCALL", b"fa", b"0"]),
        "$5\r\na2---\r\n"
    );
}
