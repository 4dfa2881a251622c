//! `redsnap health`: exit code 0 for a healthy redsnap or redis-server, 1 for one
//! that refuses writes (MISCONF after a failed snapshot), for a closed port and a
//! wrong password, 2 for usage errors; `--json` prints the `/health` document, the
//! same one the server serves on `http-port`.
//!
//! Snapshots are made to fail as root would not notice a permission change: the
//! snapshot store's directory of a redsnap is replaced with a file; a directory is
//! put where a redis-server renames its dump to.

use anyhow::{Context, Result};
use redsnap_testsupport::{
    bulk_payload, free_port, raw_command, raw_command_auth, redsnap_bin, RedisServer, RedsnapServer,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn health(args: &[&str]) -> Result<Output> {
    Command::new(redsnap_bin()?)
        .arg("health")
        .args(args)
        .env_remove("REDSNAP_LOG")
        .env_remove("REDIS_URL")
        .output()
        .context("running redsnap health")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn cmd(port: u16, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
    let r = raw_command(port, &a).expect("command");
    match bulk_payload(&r) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => String::from_utf8_lossy(&r).trim_end().to_string(),
    }
}

/// BGSAVE and wait for its outcome (`ok` / `err`), on redsnap or Redis.
fn bgsave(port: u16) -> String {
    let field = |f: &str| {
        cmd(port, &["INFO", "persistence"])
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{f}:"))
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let r = cmd(port, &["BGSAVE"]);
    assert!(r.contains("Background saving started"), "{r}");
    let deadline = Instant::now() + WAIT;
    while field("rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    field("rdb_last_bgsave_status")
}

/// `GET /health` on `http-port`: status and JSON.
fn http_health(port: u16) -> (u16, serde_json::Value) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).expect("JSON"))
}

fn break_snapshots(dir: &Path) {
    std::fs::rename(dir.join("snapshot"), dir.join("snapshot.away")).expect("move the store");
    std::fs::write(dir.join("snapshot"), b"x").expect("a file in its place");
}

fn mend_snapshots(dir: &Path) {
    std::fs::remove_file(dir.join("snapshot")).expect("rm");
    std::fs::rename(dir.join("snapshot.away"), dir.join("snapshot")).expect("move back");
}

/// The fields `/health` and `redsnap health` have in common, without the ones
/// that depend on the moment (latency, snapshot age).
fn stable(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    v["latencyMs"] = serde_json::Value::Null;
    v["persistence"]["lastSnapshotAgeSec"] = serde_json::Value::Null;
    v
}

#[test]
fn a_healthy_redsnap_then_one_refusing_writes_then_healthy_again() -> Result<()> {
    let http = free_port();
    let http_arg = http.to_string();
    let s = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "yes",
            "--save",
            "3600 1",
            "--snapshot-incremental",
            "no",
            "--http-port",
            &http_arg,
        ])
        .start()?;
    let url = s.url();
    assert_eq!(cmd(s.port(), &["SET", "k", "v"]), "+OK");
    assert_eq!(bgsave(s.port()), "ok");

    let out = health(&["--url", &url, "--json"])?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    let h = json(&out);
    assert_eq!(h["healthy"], true);
    assert_eq!(h["connectionState"], "connected");
    assert_eq!(h["reconnectAttempts"], 0);
    assert!(h["latencyMs"].is_u64());
    assert_eq!(h["writesRefused"], false);
    assert_eq!(h["persistence"]["enabled"], true);
    assert_eq!(h["persistence"]["lastSnapshotStatus"], "ok");
    assert!(h["persistence"]["lastSnapshotAgeSec"].is_u64(), "{h}");
    assert_eq!(h["persistence"]["appendLog"], true);
    assert_eq!(h["persistence"]["appendLogWriteStatus"], "ok");
    assert_eq!(h["persistence"]["appendLogFsyncStatus"], "ok");
    // The same document as the server's /health.
    let (status, served) = http_health(http);
    assert_eq!(status, 200);
    assert_eq!(stable(&served), stable(&h));
    // Text output, same verdict.
    let out = health(&["--url", &url])?;
    assert_eq!(code(&out), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy"));

    break_snapshots(s.dir());
    assert_eq!(bgsave(s.port()), "err");
    let out = health(&["--url", &url, "--json"])?;
    assert_eq!(code(&out), Some(1), "{out:?}");
    let h = json(&out);
    assert_eq!(h["healthy"], false);
    assert_eq!(h["connectionState"], "connected");
    assert_eq!(h["writesRefused"], true);
    assert!(
        h["writesRefusedReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("MISCONF")),
        "{h}"
    );
    assert_eq!(h["persistence"]["lastSnapshotStatus"], "err");
    let (status, served) = http_health(http);
    assert_eq!(status, 503);
    assert_eq!(stable(&served), stable(&h));
    let out = health(&["--url", &url])?;
    assert_eq!(code(&out), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("writes refused: MISCONF"));

    mend_snapshots(s.dir());
    assert_eq!(bgsave(s.port()), "ok");
    let out = health(&["--url", &url, "--json"])?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    Ok(())
}

#[test]
fn a_closed_port_is_unhealthy() -> Result<()> {
    // Bound then released: nothing listens there.
    let port = free_port();
    let out = health(&["--url", &format!("redis://127.0.0.1:{port}"), "--json"])?;
    assert_eq!(code(&out), Some(1), "{out:?}");
    let h = json(&out);
    assert_eq!(h["healthy"], false);
    assert_eq!(h["connectionState"], "error");
    assert_eq!(h["reconnectAttempts"], 1);
    assert!(h["latencyMs"].is_null());
    assert!(h["error"].as_str().is_some_and(|e| !e.is_empty()), "{h}");
    Ok(())
}

#[test]
fn password_in_the_url_and_redis_url_from_the_environment() -> Result<()> {
    let s = RedsnapServer::builder()
        .password("s3cret")
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--snapshot-interval",
            "0",
        ])
        .start()?;
    assert_eq!(
        raw_command_auth(s.port(), Some("s3cret"), &[b"PING"])?,
        b"+PONG\r\n"
    );
    let good = format!("redis://:s3cret@127.0.0.1:{}", s.port());
    let out = health(&["--url", &good])?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    let out = health(&["--url", &format!("redis://:wrong@127.0.0.1:{}", s.port())])?;
    assert_eq!(code(&out), Some(1), "{out:?}");
    // No --url: REDIS_URL.
    let out = Command::new(redsnap_bin()?)
        .args(["health", "--json"])
        .env("REDIS_URL", &good)
        .env_remove("REDSNAP_LOG")
        .output()?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    assert_eq!(json(&out)["persistence"]["enabled"], false);
    Ok(())
}

#[test]
fn usage_errors_exit_2() -> Result<()> {
    for args in [
        &["--url", "http://127.0.0.1:6379"][..],
        &["--url", "redis://127.0.0.1:notaport"][..],
        &["--timeout", "0"][..],
        &["--no-such-flag"][..],
    ] {
        let out = health(args)?;
        assert_eq!(code(&out), Some(2), "{args:?}: {out:?}");
    }
    Ok(())
}

#[test]
fn a_real_redis_server_healthy_then_refusing_writes() -> Result<()> {
    let redis = RedisServer::builder()
        .extra_args(&["--save", "3600 1", "--appendonly", "no"])
        .start()?;
    let url = redis.url();
    let out = health(&["--url", &url, "--json"])?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    let h = json(&out);
    assert_eq!(h["healthy"], true);
    assert_eq!(h["writesRefused"], false);
    assert_eq!(h["persistence"]["enabled"], true);
    assert_eq!(h["persistence"]["appendLog"], false);

    // Redis writes temp-<pid>.rdb, then renames it to dump.rdb: a directory there
    // makes the snapshot fail, and writes (and PING) get MISCONF.
    let dump = redis.dir().join("dump.rdb");
    let _ = std::fs::remove_file(&dump);
    std::fs::create_dir(&dump)?;
    assert_eq!(cmd(redis.port(), &["SET", "k", "v"]), "+OK");
    assert_eq!(bgsave(redis.port()), "err");
    let out = health(&["--url", &url, "--json"])?;
    assert_eq!(code(&out), Some(1), "{out:?}");
    let h = json(&out);
    assert_eq!(h["connectionState"], "connected");
    assert_eq!(h["writesRefused"], true);
    assert!(
        h["writesRefusedReason"]
            .as_str()
            .is_some_and(|r| r.starts_with("MISCONF")),
        "{h}"
    );
    assert_eq!(h["persistence"]["lastSnapshotStatus"], "err");

    std::fs::remove_dir(&dump)?;
    assert_eq!(bgsave(redis.port()), "ok");
    let out = health(&["--url", &url])?;
    assert_eq!(code(&out), Some(0), "{out:?}");
    Ok(())
}
