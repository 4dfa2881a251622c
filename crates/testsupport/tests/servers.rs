//! The harness starts real redis-server processes that answer.

use std::time::{Duration, Instant};

use redsnap_testsupport::{
    bulk_payload, free_cluster_port, free_port, int_reply, raw_command, raw_command_auth,
    RedisCluster, RedisServer, TlsFiles,
};

#[test]
fn free_ports_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        assert!(seen.insert(free_port()));
    }
    let p = free_cluster_port();
    assert!(p < 55_000);
}

#[test]
fn plain_server_answers_and_restarts() {
    let mut s = RedisServer::start().unwrap();
    assert_eq!(raw_command(s.port(), &[b"PING"]).unwrap(), b"+PONG\r\n");
    assert_eq!(s.url(), format!("redis://127.0.0.1:{}", s.port()));
    assert_eq!(
        raw_command(s.port(), &[b"SET", b"k", b"v"]).unwrap(),
        b"+OK\r\n"
    );
    let reply = raw_command(s.port(), &[b"GET", b"k"]).unwrap();
    assert_eq!(bulk_payload(&reply).unwrap(), b"v");
    let reply = raw_command(s.port(), &[b"DBSIZE"]).unwrap();
    assert_eq!(int_reply(&reply), Some(1));
    let reply = raw_command(s.port(), &[b"MGET", b"k", b"nope"]).unwrap();
    assert_eq!(reply, b"*2\r\n$1\r\nv\r\n$-1\r\n");

    let port = s.port();
    s.stop();
    assert!(raw_command(port, &[b"PING"]).is_err());
    s.restart().unwrap();
    assert_eq!(s.port(), port);
    assert_eq!(raw_command(port, &[b"PING"]).unwrap(), b"+PONG\r\n");
}

#[test]
fn password_server_requires_auth() {
    let s = RedisServer::builder().password("s3cret").start().unwrap();
    let reply = raw_command(s.port(), &[b"GET", b"x"]).unwrap();
    assert!(
        reply.starts_with(b"-NOAUTH"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        raw_command_auth(s.port(), Some("s3cret"), &[b"PING"]).unwrap(),
        b"+PONG\r\n"
    );
    assert_eq!(s.url(), format!("redis://:s3cret@127.0.0.1:{}", s.port()));
    assert_eq!(s.command(&[b"PING"]).unwrap(), b"+PONG\r\n");
}

#[test]
fn tls_server_answers_over_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(dir.path()).unwrap();
    let s = RedisServer::builder()
        .tls(tls)
        .password("pw")
        .start()
        .unwrap();
    assert!(s.url().starts_with("rediss://:pw@127.0.0.1:"));
    assert_eq!(s.cli(&["PING"]).unwrap().trim(), "PONG");
    // Plain RESP on the TLS port does not get a PONG.
    let plain = raw_command(s.port(), &[b"PING"]);
    assert!(plain.map(|r| r != b"+PONG\r\n").unwrap_or(true));
}

#[test]
fn extra_args_are_passed() {
    let s = RedisServer::builder()
        .extra_args(&["--maxmemory", "10mb"])
        .start()
        .unwrap();
    let reply = raw_command(s.port(), &[b"CONFIG", b"GET", b"maxmemory"]).unwrap();
    assert!(String::from_utf8_lossy(&reply).contains("10485760"));
}

#[test]
fn startup_failure_is_a_clear_error() {
    let t = Instant::now();
    let err = RedisServer::builder()
        .extra_args(&["--no-such-option", "1"])
        .start()
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("did not become ready"), "{text}");
    assert!(
        text.contains("no-such-option") || text.contains("Bad directive"),
        "{text}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[test]
fn cluster_of_three_is_ok() {
    let c = RedisCluster::start().unwrap();
    assert_eq!(c.nodes().len(), 3);
    assert_eq!(c.urls().len(), 3);
    for node in c.nodes() {
        let info = node.command(&[b"CLUSTER", b"INFO"]).unwrap();
        assert!(String::from_utf8_lossy(&info).contains("cluster_state:ok"));
    }
    // A key lives on exactly one node; others redirect.
    let owner = c.node_for_key(b"somekey").unwrap();
    let mut moved = 0;
    for node in c.nodes() {
        let r = node.command(&[b"SET", b"somekey", b"1"]).unwrap();
        if node.port() == owner {
            assert_eq!(r, b"+OK\r\n");
        } else {
            assert!(r.starts_with(b"-MOVED"));
            moved += 1;
        }
    }
    assert_eq!(moved, 2);
}
