//! Hostile and broken input: malformed RESP, requests beyond the limits, clients that
//! vanish mid-command or mid-MULTI, many connections at once, numbers chosen to
//! overflow. Where Redis defines the answer, the same bytes go to a real redis-server
//! and to redsnap and the replies (and whether the connection was closed) must match.

use redsnap_testsupport::{RedisServer, RedsnapServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends raw bytes and collects everything the server answers until it closes the
/// connection or stays quiet for a while. Returns (reply bytes, closed by server).
fn exchange(port: u16, input: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s.write_all(input).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

fn cmd(port: u16, args: &[&[u8]]) -> Vec<u8> {
    redsnap_testsupport::raw_command(port, args).expect("command")
}

#[test]
fn malformed_protocol_matches_redis() {
    let args = [
        "--proto-max-bulk-len",
        "1mb",
        "--client-query-buffer-limit",
        "1mb",
    ];
    let redis = RedisServer::builder()
        .extra_args(&args)
        .start()
        .expect("redis");
    let redsnap = RedsnapServer::builder()
        .extra_args(&args)
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("non-numeric multibulk count", b"*abc\r\n".to_vec()),
        ("negative bulk length", b"*1\r\n$-5\r\n".to_vec()),
        ("non-numeric bulk length", b"*1\r\n$x\r\n".to_vec()),
        ("bulk beyond proto-max-bulk-len", b"*1\r\n$2000000\r\n".to_vec()),
        ("huge multibulk count", b"*99999999999\r\n".to_vec()),
        ("multibulk count over INT_MAX", b"*2147483648\r\n".to_vec()),
        ("expected $", b"*1\r\n+PING\r\n".to_vec()),
        ("unbalanced quotes", b"SET a \"b\r\n".to_vec()),
        ("empty multibulk then ping", b"*0\r\n*-1\r\nPING\r\n".to_vec()),
        ("inline with spaces", b"  PING   \r\n".to_vec()),
        ("inline quoted escapes", b"ECHO \"a\\x41\\n\"\r\n".to_vec()),
        ("binary garbage inline", b"\x00\x01\xfe\xff garbage\r\n".to_vec()),
        ("missing CRLF after bulk", b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n".to_vec()),
        ("leading zeros in count", b"*01\r\n$4\r\nPING\r\n".to_vec()),
        ("plus sign in bulk len", b"*1\r\n$+4\r\nPING\r\n".to_vec()),
        ("pipeline then error", b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\nPING\r\n".to_vec()),
        ("too big inline", vec![b'a'; 70 * 1024]),
        ("unknown command with long args", b"NOPE aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb c d\r\n".to_vec()),
    ];
    let mut failures = Vec::new();
    for (name, input) in &cases {
        let a = exchange(redis.port(), input);
        let b = exchange(redsnap.port(), input);
        if a != b {
            failures.push(format!(
                "{name}:\n  redis:   {:?} closed={}\n  redsnap: {:?} closed={}",
                String::from_utf8_lossy(&a.0),
                a.1,
                String::from_utf8_lossy(&b.0),
                b.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The server is still up and other clients are unaffected.
    assert_eq!(cmd(redsnap.port(), &[b"PING"]), b"+PONG\r\n");
}

#[test]
fn overflowing_numbers_match_redis_and_never_crash() {
    let redis = RedisServer::start().expect("redis");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let setup: &[&[&[u8]]] = &[
        &[b"SET", b"s", b"hello"],
        &[b"RPUSH", b"l", b"a", b"b", b"c"],
        &[b"SADD", b"t", b"a", b"b", b"c"],
        &[b"HSET", b"h", b"a", b"1", b"b", b"2"],
        &[b"ZADD", b"z", b"1", b"a", b"2", b"b"],
        &[b"SET", b"n", b"9223372036854775807"],
    ];
    let probes: &[&[&[u8]]] = &[
        &[b"SETRANGE", b"k", b"9223372036854775807", b"a"],
        &[b"SETRANGE", b"k", b"536870911", b"ab"],
        &[b"SETRANGE", b"s", b"-1", b"a"],
        &[b"GETRANGE", b"s", b"0", b"9223372036854775807"],
        &[
            b"GETRANGE",
            b"s",
            b"-9223372036854775808",
            b"9223372036854775807",
        ],
        &[b"INCR", b"n"],
        &[b"INCRBY", b"n", b"-9223372036854775808"],
        &[b"DECRBY", b"s", b"-9223372036854775808"],
        // Not compared: INCRBYFLOAT beyond f64 range (Redis computes in 80-bit long
        // double; redsnap in f64 and refuses results that overflow it).
        &[b"INCRBYFLOAT", b"s", b"1"],
        &[b"LPOP", b"l", b"9223372036854775807"],
        &[
            b"LRANGE",
            b"l",
            b"-9223372036854775808",
            b"9223372036854775807",
        ],
        &[b"LINDEX", b"l", b"-9223372036854775808"],
        &[
            b"LPOS",
            b"l",
            b"a",
            b"COUNT",
            b"9223372036854775807",
            b"RANK",
            b"-9223372036854775808",
        ],
        &[b"SRANDMEMBER", b"t", b"-9223372036854775808"],
        &[b"SPOP", b"t", b"-1"],
        &[b"HRANDFIELD", b"h", b"-9223372036854775808"],
        &[b"ZRANDMEMBER", b"z", b"-9223372036854775808"],
        &[
            b"ZRANGE",
            b"z",
            b"0",
            b"-1",
            b"BYSCORE",
            b"LIMIT",
            b"9223372036854775807",
            b"9223372036854775807",
        ],
        &[b"ZADD", b"z", b"INCR", b"1e308", b"a"],
        &[b"ZINCRBY", b"z", b"inf", b"a"],
        &[b"ZINCRBY", b"z", b"-inf", b"a"],
        &[b"EXPIRE", b"s", b"9223372036854775807"],
        &[b"PEXPIRE", b"s", b"9223372036854775807"],
        &[b"SET", b"x", b"1", b"EX", b"9223372036854775807"],
        &[b"SCAN", b"18446744073709551616"],
        &[b"SCAN", b"0", b"COUNT", b"0"],
        &[b"SELECT", b"9223372036854775807"],
        &[b"BLPOP", b"nothing", b"1e30"],
        &[b"LMPOP", b"9223372036854775807", b"l", b"LEFT"],
    ];
    for c in setup {
        cmd(redis.port(), c);
        cmd(redsnap.port(), c);
    }
    let mut failures = Vec::new();
    for p in probes {
        let a = cmd(redis.port(), p);
        let b = cmd(redsnap.port(), p);
        if a != b {
            let shown: Vec<String> = p
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            failures.push(format!(
                "{:?}\n  redis:   {:?}\n  redsnap: {:?}",
                shown,
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cmd(redsnap.port(), &[b"PING"]), b"+PONG\r\n");
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn limits_vanishing_clients_and_many_connections() {
    let redsnap = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--client-query-buffer-limit",
            "1mb",
            "--maxclients",
            "5000",
        ])
        .start()
        .expect("redsnap");
    let port = redsnap.port();

    // A request whose pending arguments exceed client-query-buffer-limit: closed.
    let mut big = b"*3\r\n$3\r\nSET\r\n$600000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 600000));
    big.extend_from_slice(b"\r\n$600000\r\n");
    big.extend(std::iter::repeat_n(b'b', 600000));
    let (_, closed) = exchange(port, &big);
    assert!(
        closed,
        "a request beyond client-query-buffer-limit must close the connection"
    );

    // Announcing a huge bulk and sending nothing does not make the server reserve it.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"*1\r\n$536870912\r\n").expect("write");
        idle.push(s);
    }

    // A client vanishing mid-command leaves nothing behind.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc")
            .expect("write");
    }
    // A client vanishing mid-MULTI: its queued writes never run.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"MULTI\r\nSET m 1\r\n").expect("write");
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmd(port, &[b"GET", b"k"]), b"$-1\r\n");
    assert_eq!(cmd(port, &[b"GET", b"m"]), b"$-1\r\n");

    // 1,000 connections at once, each served.
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        conns.push(s);
    }
    for s in conns.iter_mut() {
        s.write_all(b"PING\r\n").expect("write");
    }
    for s in conns.iter_mut() {
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).expect("pong");
        assert_eq!(&buf, b"+PONG\r\n");
    }
    let info = String::from_utf8_lossy(&cmd(port, &[b"INFO", b"clients"])).into_owned();
    let connected: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(connected >= 1000, "connected_clients={connected}");
    drop(conns);
    drop(idle);

    // Memory stayed bounded through all of it.
    if let Some(pid) = redsnap.pid() {
        let rss = rss_kb(pid);
        assert!(rss < 300 * 1024, "server RSS grew to {rss} kB");
    }
    assert_eq!(cmd(port, &[b"PING"]), b"+PONG\r\n");
}
