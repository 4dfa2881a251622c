//! CONFIG SET must act, not echo (issue 11, item 3): every parameter that CONFIG SET
//! accepts is listed here with the test that observes its effect, and a parameter
//! without one fails `every_mutable_parameter_has_an_effect_test`. Parameters whose
//! feature is not built accept only their default.

use redsnap_testsupport::{RawConn, RedsnapServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> RedsnapServer {
    let mut args = vec!["--appendonly", "no", "--save", ""];
    args.extend_from_slice(extra);
    RedsnapServer::builder()
        .extra_args(&args)
        .start()
        .expect("redsnap")
}

fn cmd(c: &mut RawConn, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    match c.command(&a) {
        Ok(r) => String::from_utf8_lossy(&r).into_owned(),
        Err(e) => format!("<io error: {e}>"),
    }
}

fn set(c: &mut RawConn, name: &str, value: &str) {
    assert_eq!(
        cmd(c, &["CONFIG", "SET", name, value]),
        "+OK\r\n",
        "CONFIG SET {name} {value}"
    );
}

/// The parameters whose effect is observed in this file.
const OBSERVED_HERE: &[&str] = &[
    "requirepass",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "protected-mode",
    "loglevel",
    "hz",
    "maxmemory",
    "maxmemory-policy",
    "busy-reply-threshold",
    "lua-memory-limit",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "list-max-listpack-size",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "client-output-buffer-limit",
    "min-replicas-to-write",
    "min-replicas-max-lag",
];

/// Persistence parameters: their effects are observed in tests/config_persist.rs.
const OBSERVED_IN_CONFIG_PERSIST: &[&str] = &[
    "appendonly",
    "appendfsync",
    "aof-load-truncated",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "stop-writes-on-bgsave-error",
    "snapshot-interval",
    "snapshot-on-shutdown",
    "snapshot-incremental",
    "save",
    "dbfilename",
    "appendfsync-no-rewrite",
    "no-appendfsync-on-rewrite",
    "rdbcompression",
];

/// Keyspace notifications: their effects are observed in tests/notifications.rs.
const OBSERVED_IN_NOTIFICATIONS: &[&str] = &["notify-keyspace-events"];
/// Replication: the PING period is observed on a replica's stream in
/// tests/data_debug.rs (`sync_hands_over_an_rdb_file_then_the_write_stream`).
const OBSERVED_IN_DATA_DEBUG: &[&str] = &["repl-ping-replica-period"];
/// Observed in tests/replication.rs (the backlog's size and lifetime, a replica's
/// timeout, the `$EOF` form).
const OBSERVED_IN_REPLICATION: &[&str] = &[
    "repl-backlog-size",
    "repl-backlog-ttl",
    "repl-timeout",
    "repl-diskless-sync",
    // replicas_asking_within_the_sync_delay_share_one_encoding
    "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas",
    // tests/replica.rs: readonly_masterdown_unblocked_and_promotion and
    // master_auth_priority_and_announced_act
    "replica-serve-stale-data",
    "replica-read-only",
    "replica-announced",
    "masteruser",
    "masterauth",
    "replica-priority",
];
/// Observed in tests/streams.rs (where nodes split, as an approximate trim shows).
const OBSERVED_IN_STREAMS: &[&str] = &["stream-node-max-entries", "stream-node-max-bytes"];
/// Observed in tests/bits_hll.rs (sparse HyperLogLogs turn dense past it).
const OBSERVED_IN_BITS_HLL: &[&str] = &["hll-sparse-max-bytes"];
/// Observed in tests/tracking.rs (the tracking table is cut down to it).
const OBSERVED_IN_TRACKING: &[&str] = &["tracking-table-max-keys"];
/// Observed in tests/introspection.rs (slowlog, latency monitor, latency histograms).
const OBSERVED_IN_INTROSPECTION: &[&str] = &[
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "latency-tracking",
    "latency-tracking-info-percentiles",
];

/// Accepted but only their default value (the feature is not built).
const DEFAULT_ONLY: &[(&str, &str)] = &[
    ("lazyfree-lazy-user-del", "yes"),
    ("lazyfree-lazy-user-flush", "yes"),
];

/// Read on every eviction, but not observable by a client in a bounded test: the
/// number of keys sampled per eviction only changes which key goes.
const NOT_OBSERVABLE: &[&str] = &["maxmemory-samples"];

/// No effect by design: the server's own list (`config::NO_EFFECT_BY_DESIGN`, with
/// the reasons; ARCHITECTURE.md's known deviations).
use redsnap_server::config::{self, NO_EFFECT_BY_DESIGN};

/// Observed in tests/admin_commands.rs (the listening sockets change at once).
const OBSERVED_IN_ADMIN_COMMANDS: &[&str] = &["port", "bind"];
/// Checked in tests/acl.rs.
const OBSERVED_IN_ACL: &[&str] = &["acllog-max-len", "acl-pubsub-default"];
/// In tests/hostile_memory.rs.
const OBSERVED_IN_HOSTILE_MEMORY: &[&str] = &["maxmemory-clients"];

#[test]
fn every_mutable_parameter_has_an_effect_test() {
    let mut s = start(&[]);
    let mut c = RawConn::connect(s.port()).expect("connect");
    let all = cmd(&mut c, &["CONFIG", "GET", "*"]);
    // *N, then $len / value pairs (a value may be empty).
    let lines: Vec<&str> = all.split("\r\n").collect();
    let values: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && lines[i - 1].starts_with('$'))
        .map(|(_, l)| *l)
        .collect();
    let mut mutable = Vec::new();
    for pair in values.chunks(2) {
        let (name, value) = (pair[0], pair.get(1).copied().unwrap_or(""));
        if name == "requirepass" {
            mutable.push(name.to_string());
            continue;
        }
        let r = cmd(&mut c, &["CONFIG", "SET", name, value]);
        if r == "+OK\r\n" {
            mutable.push(name.to_string());
        } else {
            assert!(r.contains("can't set immutable config"), "{name}: {r}");
        }
    }
    assert!(mutable.len() > 30, "{mutable:?}");
    // Not built (only the default is accepted) and read at startup only (setting
    // the current value is a no-op) are the server's own lists.
    let known: Vec<&str> = OBSERVED_HERE
        .iter()
        .chain(OBSERVED_IN_CONFIG_PERSIST)
        .chain(OBSERVED_IN_NOTIFICATIONS)
        .chain(OBSERVED_IN_DATA_DEBUG)
        .chain(OBSERVED_IN_REPLICATION)
        .chain(OBSERVED_IN_BITS_HLL)
        .chain(OBSERVED_IN_TRACKING)
        .chain(OBSERVED_IN_STREAMS)
        .chain(OBSERVED_IN_INTROSPECTION)
        .chain(OBSERVED_IN_ADMIN_COMMANDS)
        .chain(OBSERVED_IN_ACL)
        .chain(OBSERVED_IN_HOSTILE_MEMORY)
        .chain(DEFAULT_ONLY.iter().map(|(n, _)| n))
        .chain(NOT_OBSERVABLE)
        .chain(config::STARTUP_ONLY)
        .copied()
        .chain(NO_EFFECT_BY_DESIGN.iter().map(|(n, _)| *n))
        .chain(config::not_built().map(|(n, _)| n))
        .collect();
    // An alias is its directive.
    let missing: Vec<&String> = mutable
        .iter()
        .filter(|m| !known.contains(&config::canonical_name(m).unwrap_or(m)))
        .collect();
    assert!(
        missing.is_empty(),
        "CONFIG SET accepts these, and no test observes their effect: {missing:?}"
    );
    // Immutable ones are refused with Redis's error, and so is a change of those
    // read at startup only.
    assert!(
        cmd(&mut c, &["CONFIG", "SET", "daemonize", "no"]).contains("can't set immutable config")
    );
    assert!(cmd(&mut c, &["CONFIG", "SET", "restore-on-startup", "no"])
        .contains("can't set immutable config"));
    for (name, value) in DEFAULT_ONLY {
        let r = cmd(&mut c, &["CONFIG", "SET", name, value]);
        assert!(
            r.starts_with("-ERR CONFIG SET failed") && r.contains("not built"),
            "{name} {value}: {r}"
        );
    }
    s.stop();
}

#[test]
fn connection_parameters_act_at_once() {
    let mut s = start(&[]);
    let port = s.port();
    let mut admin = RawConn::connect(port).expect("connect");

    // requirepass: new connections must authenticate; the existing one stays in.
    set(&mut admin, "requirepass", "pw");
    let mut c = RawConn::connect(port).expect("connect");
    assert!(cmd(&mut c, &["PING"]).starts_with("-NOAUTH"));
    assert_eq!(cmd(&mut c, &["AUTH", "pw"]), "+OK\r\n");
    set(&mut admin, "requirepass", "");
    assert_eq!(
        cmd(&mut RawConn::connect(port).expect("c"), &["PING"]),
        "+PONG\r\n"
    );

    // maxclients: with two open (admin, c), a limit of 2 refuses the third.
    set(&mut admin, "maxclients", "2");
    let mut third = RawConn::connect(port).expect("connect");
    assert_eq!(
        cmd(&mut third, &["PING"]),
        "-ERR max number of clients reached\r\n"
    );
    set(&mut admin, "maxclients", "10000");
    drop(c);

    // protected-mode: 127.0.0.2 is not loopback by Redis's rule.
    let from_2 = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind("127.0.0.2:0".parse().expect("addr"))
                .expect("bind");
            let mut s = sock
                .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
                .await
                .expect("connect");
            let _ = s.write_all(b"PING\r\n").await;
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    };
    assert!(from_2().starts_with("-DENIED"));
    set(&mut admin, "protected-mode", "no");
    assert_eq!(from_2(), "+PONG\r\n");

    // timeout: a client idle since before the change is closed.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("t");
    idle.write_all(b"PING\r\n").expect("w");
    let mut buf = [0u8; 64];
    assert_eq!(idle.read(&mut buf).expect("pong"), 7);
    set(&mut admin, "timeout", "1");
    let started = Instant::now();
    let n = idle.read(&mut buf).unwrap_or(usize::MAX);
    assert_eq!(n, 0, "the idle client was not closed");
    assert!(started.elapsed() < Duration::from_secs(9));
    // (The admin connection was idle as long: closed too.)
    let mut admin = RawConn::connect(port).expect("connect");
    set(&mut admin, "timeout", "0");

    // tcp-keepalive: sockets accepted after the change carry the keepalive timer.
    set(&mut admin, "tcp-keepalive", "7");
    let ka = RawConn::connect(port).expect("connect");
    let ss = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(ss.contains("keepalive"), "{ss}");
    drop(ka);

    // proto-max-bulk-len (at least 1mb, as Redis) and client-query-buffer-limit: on
    // an open connection too.
    let mut open = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("t");
    set(&mut admin, "proto-max-bulk-len", "1mb");
    let _ = open.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n");
    let n = open.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("invalid bulk length"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    set(&mut admin, "proto-max-bulk-len", "512mb");
    set(&mut admin, "client-query-buffer-limit", "1mb");
    let mut q = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    q.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("t");
    let _ = q.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n");
    let _ = q.write_all(&vec![b'a'; 1_200_000]);
    assert_eq!(q.read(&mut buf).unwrap_or(0), 0, "not closed at the limit");
    set(&mut admin, "client-query-buffer-limit", "1gb");
    s.stop();
}

#[test]
fn loglevel_and_hz_act_at_once() {
    let mut s = start(&["--loglevel", "warning"]);
    let port = s.port();
    let mut admin = RawConn::connect(port).expect("connect");
    let proto_error = |tag: &str| {
        let mut t = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = t.write_all(format!("*1\r\n$x{tag}\r\n").as_bytes());
        let mut b = [0u8; 256];
        let _ = t.read(&mut b);
    };
    proto_error("quiet");
    set(&mut admin, "loglevel", "notice");
    proto_error("loud");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.log().contains("protocol error") {
        assert!(
            Instant::now() < deadline,
            "no info line after loglevel notice"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = s.log();
    assert_eq!(log.matches("protocol error").count(), 1, "{log}");

    set(&mut admin, "hz", "100");
    assert!(cmd(&mut admin, &["INFO", "server"]).contains("hz:100\r\n"));
    s.stop();
}

#[test]
fn memory_and_script_parameters_act_at_once() {
    let mut s = start(&[]);
    let port = s.port();
    let mut c = RawConn::connect(port).expect("connect");
    set(&mut c, "maxmemory", "1");
    assert!(cmd(&mut c, &["SET", "a", "1"]).starts_with("-OOM"));
    set(&mut c, "maxmemory", "0");
    assert_eq!(cmd(&mut c, &["SET", "a", "1"]), "+OK\r\n");

    // maxmemory-policy: the same limit evicts instead of refusing.
    let v = "v".repeat(1000);
    for i in 0..3000 {
        cmd(&mut c, &["SET", &format!("key:{i}"), &v]);
    }
    let info = cmd(&mut c, &["INFO", "memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    set(&mut c, "maxmemory", &(used - 1_000_000).to_string());
    assert!(cmd(&mut c, &["SET", "more", "1"]).starts_with("-OOM"));
    set(&mut c, "maxmemory-policy", "allkeys-random");
    assert_eq!(cmd(&mut c, &["SET", "more", "1"]), "+OK\r\n");
    assert!(!cmd(&mut c, &["INFO", "stats"]).contains("evicted_keys:0\r\n"));
    set(&mut c, "maxmemory", "0");
    set(&mut c, "maxmemory-policy", "noeviction");

    // Encodings follow the thresholds.
    let enc = |c: &mut RawConn, k: &str| cmd(c, &["OBJECT", "ENCODING", k]);
    cmd(&mut c, &["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(enc(&mut c, "h"), "$8\r\nlistpack\r\n");
    set(&mut c, "hash-max-listpack-entries", "1");
    cmd(&mut c, &["HSET", "h", "c", "3"]);
    assert_eq!(enc(&mut c, "h"), "$9\r\nhashtable\r\n");
    set(&mut c, "hash-max-listpack-value", "2");
    set(&mut c, "hash-max-listpack-entries", "128");
    cmd(&mut c, &["HSET", "h2", "f", "long value"]);
    assert_eq!(enc(&mut c, "h2"), "$9\r\nhashtable\r\n");
    cmd(&mut c, &["SADD", "s", "1", "2", "3"]);
    assert_eq!(enc(&mut c, "s"), "$6\r\nintset\r\n");
    set(&mut c, "set-max-intset-entries", "2");
    cmd(&mut c, &["SADD", "s2", "1", "2", "3"]);
    assert_eq!(enc(&mut c, "s2"), "$9\r\nhashtable\r\n");
    set(&mut c, "zset-max-listpack-entries", "1");
    cmd(&mut c, &["ZADD", "z", "1", "a", "2", "b"]);
    assert_eq!(enc(&mut c, "z"), "$8\r\nskiplist\r\n");
    set(&mut c, "zset-max-listpack-entries", "128");
    set(&mut c, "zset-max-listpack-value", "2");
    cmd(&mut c, &["ZADD", "z2", "1", "long member"]);
    assert_eq!(enc(&mut c, "z2"), "$8\r\nskiplist\r\n");
    set(&mut c, "list-max-listpack-size", "2");
    cmd(&mut c, &["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(enc(&mut c, "l"), "$9\r\nquicklist\r\n");

    // busy-reply-threshold (lua-time-limit): BUSY after the new threshold.
    set(&mut c, "busy-reply-threshold", "50");
    let mut sc = RawConn::connect(port).expect("connect");
    let script = std::thread::spawn(move || cmd(&mut sc, &["EVAL", "while true do end", "0"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cmd(&mut RawConn::connect(port).expect("c"), &["PING"]);
        if r.starts_with("-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        cmd(&mut RawConn::connect(port).expect("c"), &["SCRIPT", "KILL"]),
        "+OK\r\n"
    );
    assert!(script
        .join()
        .expect("script")
        .starts_with("-ERR Script killed"));

    // lua-memory-limit: a script that grows past it stops with "not enough memory"
    // (the server and the Lua state live on); under a higher limit it runs.
    let grow = "local t = {} for i = 1, 2000000 do t[i] = i end return #t";
    set(&mut c, "lua-memory-limit", "8mb");
    let r = cmd(&mut c, &["EVAL", grow, "0"]);
    assert!(r.contains("not enough memory"), "{r}");
    assert_eq!(cmd(&mut c, &["EVAL", "return 1 + 1", "0"]), ":2\r\n");
    set(&mut c, "lua-memory-limit", "1gb");
    assert_eq!(cmd(&mut c, &["EVAL", grow, "0"]), ":2000000\r\n");

    // client-output-buffer-limit: a subscriber that does not read is dropped once
    // its pub/sub output passes the new hard limit.
    set(
        &mut c,
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 100kb 0 0",
    );
    let mut sub = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sub.write_all(b"SUBSCRIBE ch\r\n").expect("w");
    std::thread::sleep(Duration::from_millis(200));
    let msg = "m".repeat(10_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for _ in 0..50 {
            cmd(&mut c, &["PUBLISH", "ch", &msg]);
        }
        let n = cmd(&mut c, &["PUBSUB", "NUMSUB", "ch"]);
        if n.ends_with(":0\r\n") {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber never dropped: {n}");
    }
    s.stop();
}

#[test]
fn min_replicas_refuse_writes_at_once() {
    // No replica is attached: with both parameters above 0, every write is refused
    // (tests/replication.rs has the case of a replica that acknowledges).
    let s = start(&[]);
    let mut c = RawConn::connect(s.port()).expect("connect");
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]), "+OK\r\n");
    set(&mut c, "min-replicas-to-write", "1");
    let refused = "-NOREPLICAS Not enough good replicas to write.\r\n";
    assert_eq!(cmd(&mut c, &["SET", "k", "w"]), refused);
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$1\r\nv\r\n");
    // Inside a script too, and for a script declaring writes.
    let r = cmd(&mut c, &["EVAL", "return redis.call('set', 'k', 'w')", "0"]);
    assert!(r.starts_with("-NOREPLICAS "), "{r}");
    assert_eq!(cmd(&mut c, &["EVAL", "#!lua\nreturn 1", "0"]), refused);
    assert_eq!(
        cmd(&mut c, &["EVAL", "#!lua flags=no-writes\nreturn 1", "0"]),
        ":1\r\n"
    );
    // A lag of 0 turns the check off.
    set(&mut c, "min-replicas-max-lag", "0");
    assert_eq!(cmd(&mut c, &["SET", "k", "w"]), "+OK\r\n");
    set(&mut c, "min-replicas-max-lag", "10");
    assert_eq!(cmd(&mut c, &["DEL", "k"]), refused);
    set(&mut c, "min-replicas-to-write", "0");
    assert_eq!(cmd(&mut c, &["DEL", "k"]), ":1\r\n");
}
