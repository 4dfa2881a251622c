//! The JSON type against the real binary (issue 18): seed 001's flow
//! (`JSON.SET resonance:metrics $ ...`, JSON.GET, JSON.NUMINCRBY) surviving `kill -9`
//! under `appendfsync always` (from the append log alone, and from a snapshot plus
//! the log), and the document as a first-class value: TYPE, OBJECT ENCODING,
//! SCAN TYPE, DUMP/RESTORE, MEMORY USAGE, DEBUG DIGEST, keyspace events, Lua's
//! `redis.call`, COMMAND INFO, and RESP2 number formatting of JSON.RESP.

use redsnap_testsupport::{bulk_payload, encode_command, int_reply, RedsnapServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const METRICS: &str = r#"{"service":"resonance","requests":0,"errors":0,"latency_ms":{"p50":1.5,"p99":12.25},"regions":["eu","us"],"healthy":true}"#;

fn cmd(s: &RedsnapServer, args: &[&str]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
    s.command(&a).expect("command")
}

fn bulk(s: &RedsnapServer, args: &[&str]) -> String {
    let r = cmd(s, args);
    String::from_utf8(
        bulk_payload(&r)
            .unwrap_or_else(|| panic!("{args:?}: not a bulk: {}", String::from_utf8_lossy(&r))),
    )
    .expect("utf8")
}

fn start(args: &[&str]) -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(args)
        .start()
        .expect("redsnap starts")
}

/// Seed 001's flow; returns the document the server must hold.
fn seed_flow(s: &RedsnapServer, from: i64, n: i64) -> i64 {
    let mut requests = from;
    for i in 0..n {
        let r = bulk(
            s,
            &["JSON.NUMINCRBY", "resonance:metrics", "$.requests", "1"],
        );
        requests += 1;
        assert_eq!(r, format!("[{requests}]"));
        if i % 10 == 0 {
            assert_eq!(
                bulk(s, &["JSON.NUMINCRBY", "resonance:metrics", "$.errors", "1"]).len(),
                3
            );
        }
    }
    requests
}

fn expected(requests: i64, errors: i64) -> String {
    format!(
        r#"[{{"service":"resonance","requests":{requests},"errors":{errors},"latency_ms":{{"p50":1.5,"p99":12.25}},"regions":["eu","us"],"healthy":true}}]"#
    )
}

#[test]
fn seed_001_flow_survives_kill_9_under_appendfsync_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&["--appendonly", "yes", "--appendfsync", "always"])
        .start()
        .expect("start");
    assert_eq!(
        cmd(&s, &["JSON.SET", "resonance:metrics", "$", METRICS]),
        b"+OK\r\n"
    );
    assert_eq!(
        bulk(&s, &["JSON.GET", "resonance:metrics", "$"]),
        expected(0, 0)
    );
    let requests = seed_flow(&s, 0, 50);
    let errors = 5;
    assert_eq!(
        bulk(&s, &["JSON.GET", "resonance:metrics", "$"]),
        expected(requests, errors)
    );

    // Crash: every acknowledged update is back (replayed from the append log).
    s.kill_9();
    s.restart().expect("restart after kill -9");
    assert_eq!(
        bulk(&s, &["JSON.GET", "resonance:metrics", "$"]),
        expected(requests, errors)
    );
    assert_eq!(cmd(&s, &["TYPE", "resonance:metrics"]), b"+ReJSON-RL\r\n");

    // A snapshot, more updates, crash again: snapshot + log tail.
    assert_eq!(cmd(&s, &["SAVE"]), b"+OK\r\n");
    let requests = seed_flow(&s, requests, 21);
    let errors = errors + 3;
    assert_eq!(
        bulk(
            &s,
            &[
                "JSON.NUMINCRBY",
                "resonance:metrics",
                "$.latency_ms.p99",
                "0.5"
            ]
        ),
        "[12.75]"
    );
    s.kill_9();
    s.restart().expect("restart after the second kill -9");
    let got = bulk(&s, &["JSON.GET", "resonance:metrics", "$"]);
    assert_eq!(got, expected(requests, errors).replace("12.25", "12.75"));
}

#[test]
fn a_document_is_a_first_class_value() {
    let s = start(&["--save", ""]);
    assert_eq!(cmd(&s, &["JSON.SET", "doc", "$", METRICS]), b"+OK\r\n");
    cmd(&s, &["SET", "plain", "x"]);
    assert_eq!(cmd(&s, &["TYPE", "doc"]), b"+ReJSON-RL\r\n");
    assert_eq!(bulk(&s, &["OBJECT", "ENCODING", "doc"]), "raw");
    assert_eq!(
        cmd(&s, &["SCAN", "0", "TYPE", "ReJSON-RL"]),
        b"*2\r\n$1\r\n0\r\n*1\r\n$3\r\ndoc\r\n"
    );
    let usage = int_reply(&cmd(&s, &["MEMORY", "USAGE", "doc"])).expect("int");
    assert!(usage > METRICS.len() as i64, "MEMORY USAGE {usage}");
    // Wrong type both ways.
    assert!(cmd(&s, &["GET", "doc"]).starts_with(b"-WRONGTYPE"));
    assert!(cmd(&s, &["JSON.GET", "plain"]).starts_with(b"-WRONGTYPE"));

    // DUMP / RESTORE (RedisJSON's module value format).
    let payload = bulk_payload(&cmd(&s, &["DUMP", "doc"])).expect("dump");
    let r = s
        .command(&[b"RESTORE", b"copy", b"0", &payload])
        .expect("restore");
    assert_eq!(r, b"+OK\r\n");
    assert_eq!(
        bulk(&s, &["JSON.GET", "copy"]),
        bulk(&s, &["JSON.GET", "doc"])
    );

    // DEBUG DIGEST sees the document's contents.
    let d1 = cmd(&s, &["DEBUG", "DIGEST-VALUE", "doc"]);
    assert_eq!(d1, cmd(&s, &["DEBUG", "DIGEST-VALUE", "copy"]));
    cmd(&s, &["JSON.NUMINCRBY", "copy", "$.requests", "1"]);
    assert_ne!(d1, cmd(&s, &["DEBUG", "DIGEST-VALUE", "copy"]));

    // Lua.
    assert_eq!(
        bulk(
            &s,
            &[
                "EVAL",
                "return redis.call('JSON.GET', KEYS[1], '$.regions[-1]')",
                "1",
                "doc"
            ]
        ),
        r#"["us"]"#
    );
    assert_eq!(
        cmd(
            &s,
            &[
                "EVAL",
                "return redis.call('JSON.ARRAPPEND', KEYS[1], '$.regions', '\"ap\"')",
                "1",
                "doc"
            ]
        ),
        b"*1\r\n:3\r\n"
    );
    // JSON.RESP: doubles as Redis prints them in RESP2.
    cmd(&s, &["JSON.SET", "item", "$", r#"{"price":64.99}"#]);
    assert_eq!(
        cmd(&s, &["JSON.RESP", "item", "$.price"]),
        b"*1\r\n$18\r\n64.989999999999995\r\n"
    );
    // COMMAND INFO knows the commands (module flag, @json).
    let info = String::from_utf8_lossy(&cmd(&s, &["COMMAND", "INFO", "json.set"])).into_owned();
    assert!(info.contains("module") && info.contains("@json"), "{info}");
    let listed = cmd(&s, &["COMMAND", "LIST", "FILTERBY", "MODULE", "ReJSON"]);
    assert!(
        listed.starts_with(b"*24\r\n"),
        "{}",
        String::from_utf8_lossy(&listed)
    );
    // Arity is checked in dispatch.
    assert!(cmd(&s, &["JSON.SET", "doc", "$"])
        .starts_with(b"-ERR wrong number of arguments for 'json.set'"));
}

fn read_until(rd: &mut BufReader<TcpStream>, needle: &[u8]) -> Vec<u8> {
    read_until_n(rd, needle, 1)
}

/// Reads until `needle` occurs `n` times.
fn read_until_n(rd: &mut BufReader<TcpStream>, needle: &[u8], n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.windows(needle.len()).filter(|w| *w == needle).count() < n {
        let mut buf = [0u8; 512];
        let n = rd.read(&mut buf).expect("read (timed out?)");
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn writes_raise_module_keyspace_events() {
    let s = start(&["--save", "", "--notify-keyspace-events", "KEd"]);
    let sub = TcpStream::connect(("127.0.0.1", s.port())).expect("connect");
    sub.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rd = BufReader::new(sub);
    rd.get_mut()
        .write_all(&encode_command(&[b"PSUBSCRIBE", b"__keyevent@0__:json.*"]))
        .expect("write");
    read_until(&mut rd, b"psubscribe");
    cmd(&s, &["JSON.SET", "doc", "$", r#"{"a":[1],"n":1,"b":true}"#]);
    cmd(&s, &["JSON.SET", "doc", "$.nothing.here", "1"]); // no change: no event
    cmd(&s, &["JSON.ARRAPPEND", "doc", "$.a", "2"]);
    cmd(&s, &["JSON.NUMINCRBY", "doc", "$.n", "2"]);
    cmd(&s, &["JSON.TOGGLE", "doc", "$.b"]);
    cmd(&s, &["JSON.DEL", "doc", "$.a"]);
    cmd(&s, &["JSON.DEL", "doc"]);
    let got = read_until_n(&mut rd, b"json.del\r\n$3\r\ndoc\r\n", 2);
    let text = String::from_utf8_lossy(&got);
    let events: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.starts_with("__keyevent@0__:json.") && !l.ends_with('*'))
        .map(|l| l.trim_start_matches("__keyevent@0__:"))
        .collect();
    assert_eq!(
        events,
        [
            "json.set",
            "json.arrappend",
            "json.numincrby",
            "json.toggle",
            "json.del",
            "json.del"
        ]
    );
    // (No generic `del` either: RedisJSON's root delete raises json.del alone.)
    let mut line = String::new();
    rd.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let _ = rd.read_line(&mut line);
    assert!(line.is_empty(), "unexpected extra event: {line:?}");
}

fn redsnap_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(redsnap_testsupport::redsnap_bin().expect("binary"))
        .args(args)
        .env_remove("REDSNAP_LOG")
        .output()
        .expect("running redsnap")
}

/// `redsnap backup` writes documents as RedisJSON's module values, and `redsnap
/// restore` reads them back, into a running server and into a data directory.
#[test]
fn backup_and_restore_carry_documents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = start(&["--save", ""]);
    cmd(&source, &["JSON.SET", "resonance:metrics", "$", METRICS]);
    cmd(&source, &["SET", "plain", "x"]);
    let file = tmp.path().join("out.rdb");
    let out = redsnap_cli(&[
        "backup",
        "--from",
        &source.url(),
        "--to",
        file.to_str().unwrap_or(""),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let target = start(&["--save", ""]);
    let out = redsnap_cli(&[
        "restore",
        "--to",
        &target.url(),
        file.to_str().unwrap_or(""),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        bulk(&target, &["JSON.GET", "resonance:metrics", "$"]),
        bulk(&source, &["JSON.GET", "resonance:metrics", "$"])
    );
    assert_eq!(
        cmd(&target, &["TYPE", "resonance:metrics"]),
        b"+ReJSON-RL\r\n"
    );

    let dir = tmp.path().join("data");
    let out = redsnap_cli(&[
        "restore",
        "--to",
        dir.to_str().unwrap_or(""),
        file.to_str().unwrap_or(""),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let from_dir = RedsnapServer::builder()
        .dir(&dir)
        .start()
        .expect("start on the restored dir");
    assert_eq!(
        bulk(&from_dir, &["JSON.GET", "resonance:metrics", "$"]),
        bulk(&source, &["JSON.GET", "resonance:metrics", "$"])
    );
}
