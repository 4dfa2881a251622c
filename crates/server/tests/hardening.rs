//! TLS, protected mode, memory limits and hostile clients, against the real binary.

use redsnap_testsupport::{free_port, raw_command, RedsnapServer, TlsFiles};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn info_field(port: u16, section: &str, field: &str) -> u64 {
    let raw = raw_command(port, &[b"INFO", section.as_bytes()]).expect("info");
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
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

fn cli_tls(port: u16, files: &TlsFiles, with_client_cert: bool) -> (bool, String) {
    let mut c = Command::new("redis-cli");
    c.args(["--tls", "--cacert"]).arg(&files.ca_cert).args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ]);
    if with_client_cert {
        c.arg("--cert")
            .arg(&files.client_cert)
            .arg("--key")
            .arg(&files.client_key);
    }
    c.arg("PING");
    let out = c.output().expect("redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text.trim() == "PONG", text)
}

#[test]
fn tls_with_and_without_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = TlsFiles::generate(dir.path()).expect("tls material");
    let tls_port = free_port();
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (cert, key, ca) = (
        path(&files.server_cert),
        path(&files.server_key),
        path(&files.ca_cert),
    );
    let tls_port_s = tls_port.to_string();
    // Optional client certificates: a client without one connects.
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--tls-port",
            &tls_port_s,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "optional",
        ])
        .start()
        .expect("redsnap with TLS");
    let (ok, text) = cli_tls(tls_port, &files, false);
    assert!(ok, "TLS PING without client cert under 'optional': {text}");
    drop(server);

    // Required client certificates: refused without, accepted with.
    let tls_port = free_port();
    let tls_port_s = tls_port.to_string();
    let _server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--tls-port",
            &tls_port_s,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "yes",
        ])
        .start()
        .expect("redsnap with TLS");
    let (ok, text) = cli_tls(tls_port, &files, false);
    assert!(!ok, "a client without certificate must be refused: {text}");
    let (ok, text) = cli_tls(tls_port, &files, true);
    assert!(
        ok,
        "a client with a certificate signed by the CA connects: {text}"
    );

    // redis-py with ssl: refused without a client certificate, served with one.
    let py = |with_cert: bool| {
        let certs = if with_cert {
            format!(
                ", ssl_certfile={:?}, ssl_keyfile={:?}",
                path(&files.client_cert),
                path(&files.client_key)
            )
        } else {
            String::new()
        };
        let code = format!(
            "import redis\nr = redis.Redis(host='127.0.0.1', port={tls_port}, ssl=True, ssl_ca_certs={ca:?}{certs}, socket_timeout=5)\nr.set('tls-py', 'ok')\nprint(r.get('tls-py').decode())"
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(code)
            .output()
            .expect("python3");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = py(true);
    assert_eq!(
        out, "ok",
        "redis-py over TLS with a client certificate: {err}"
    );
    let (out, _) = py(false);
    assert_ne!(
        out, "ok",
        "redis-py without a client certificate must be refused"
    );

    // redis-rs over rediss:// with the test CA and a client certificate.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let certs = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: files.client_cert_pem().expect("cert"),
            client_key: files.client_key_pem().expect("key"),
        }),
        root_cert: Some(files.ca_pem().expect("ca")),
    };
    let client = redis::Client::build_with_tls(format!("rediss://127.0.0.1:{tls_port}/"), certs)
        .expect("client");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("redis-rs TLS connection");
    let _: () = redis::cmd("SET")
        .arg("tls-rs")
        .arg("ok")
        .query(&mut con)
        .expect("set");
    let v: String = redis::cmd("GET")
        .arg("tls-rs")
        .query(&mut con)
        .expect("get");
    assert_eq!(v, "ok");
    // Plain TCP to the TLS port gets nothing useful, and the server stays up.
    let _ = raw_command(tls_port, &[b"PING"]);
    let (ok, _) = cli_tls(tls_port, &files, true);
    assert!(ok);
}

#[test]
fn unsafe_or_contradictory_config_refuses_to_start() {
    let bin = redsnap_testsupport::redsnap_bin().expect("binary");
    let cases: &[&[&str]] = &[
        &["--tls-port", "0", "--port", "0"],
        &[
            "--tls-port",
            "16999",
            "--tls-cert-file",
            "/nonexistent.pem",
            "--tls-key-file",
            "/nonexistent.key",
        ],
        &["--tls-port", "16999"],
        &["--maxmemory-policy", "sometimes"],
        &["--port", "99999"],
    ];
    for args in cases {
        let out = Command::new(&bin)
            .arg("serve")
            .args(*args)
            .args(["--appendonly", "no", "--save", ""])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} must fail to start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: the refusal says why");
    }
}

#[test]
fn protected_mode_refuses_non_loopback_clients_without_password() {
    let server = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let port = server.port();
    let reply = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Redis counts only 127.0.0.1 and ::1 as local; 127.0.0.2 is "remote".
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind");
        let mut s = sock
            .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
            .await
            .expect("connect");
        let _ = s.write_all(b"PING\r\n").await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        buf
    });
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("-DENIED Redis is running in protected mode"),
        "{text}"
    );
    // Loopback clients are served.
    assert_eq!(raw_command(port, &[b"PING"]).expect("ping"), b"+PONG\r\n");
}

/// Writes `n` keys of `size` bytes with pipelined SETs; returns the replies' error lines.
fn fill(port: u16, prefix: &str, n: usize, size: usize, reads: &[String]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let value = vec![b'v'; size];
    let mut errors = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let mut buf = Vec::new();
        let mut expected = 0;
        for i in chunk {
            let key = format!("{prefix}{i}");
            buf.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n${}\r\n",
                    key.len(),
                    key,
                    size
                )
                .as_bytes(),
            );
            buf.extend_from_slice(&value);
            buf.extend_from_slice(b"\r\n");
            expected += 1;
        }
        // Touch the hot keys so LRU sees them as recently used.
        for k in reads {
            buf.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", k.len(), k).as_bytes(),
            );
            expected += 1;
        }
        s.write_all(&buf).expect("write");
        let mut got = 0;
        let mut acc = Vec::new();
        let mut tmp = vec![0u8; 1 << 16];
        while got < expected {
            let n = s.read(&mut tmp).expect("read");
            assert!(n > 0, "server closed");
            acc.extend_from_slice(&tmp[..n]);
            // Count complete replies (GET replies may be large bulks).
            let mut chunk_errors = Vec::new();
            let mut i = 0;
            let mut complete = 0;
            while i < acc.len() {
                let Some(nl) = acc[i..].windows(2).position(|w| w == b"\r\n") else {
                    break;
                };
                let line = &acc[i..i + nl];
                if line.first() == Some(&b'$') {
                    let len: i64 = String::from_utf8_lossy(&line[1..]).parse().unwrap_or(-1);
                    let end = i + nl + 2 + if len >= 0 { len as usize + 2 } else { 0 };
                    if end > acc.len() {
                        break;
                    }
                    i = end;
                } else {
                    if line.first() == Some(&b'-') {
                        chunk_errors.push(String::from_utf8_lossy(line).into_owned());
                    }
                    i += nl + 2;
                }
                complete += 1;
            }
            if complete >= expected {
                got = complete;
                errors.extend(chunk_errors);
                acc.drain(..i);
            }
        }
    }
    errors
}

#[test]
fn maxmemory_allkeys_lru_keeps_memory_under_the_limit_and_hot_keys() {
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--maxmemory",
            "64mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ])
        .start()
        .expect("redsnap");
    let port = server.port();
    let hot: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
    let cold: Vec<String> = (0..20).map(|i| format!("cold{i}")).collect();
    fill(port, "hot", 20, 10_000, &[]);
    fill(port, "cold", 20, 10_000, &[]);
    // 500 MB of new keys while the hot keys keep being read.
    let errors = fill(port, "bulk:", 5_000, 100_000, &hot);
    assert!(
        errors.is_empty(),
        "allkeys-lru must not refuse writes: {:?}",
        errors.first()
    );
    let used = info_field(port, "memory", "used_memory");
    assert!(
        used <= 64 * 1024 * 1024 + 2 * 1024 * 1024,
        "used_memory {used} over the 64mb limit"
    );
    assert!(info_field(port, "stats", "evicted_keys") > 0);
    let alive = |keys: &[String]| {
        keys.iter()
            .filter(|k| raw_command(port, &[b"EXISTS", k.as_bytes()]).expect("exists") == b":1\r\n")
            .count()
    };
    let (h, c) = (alive(&hot), alive(&cold));
    assert!(
        h > c,
        "recently read keys should survive more than untouched ones: hot {h}/20, cold {c}/20"
    );
    if let Some(pid) = server.pid() {
        assert!(rss_kb(pid) < 400 * 1024, "RSS {} kB", rss_kb(pid));
    }
}

#[test]
fn maxmemory_noeviction_answers_oom_and_loses_nothing() {
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--maxmemory",
            "16mb",
            "--maxmemory-policy",
            "noeviction",
        ])
        .start()
        .expect("redsnap");
    let port = server.port();
    let mut accepted = Vec::new();
    let mut oom = None;
    let mut c = redsnap_testsupport::RawConn::connect(port).expect("connect");
    let value = vec![b'x'; 50_000];
    for i in 0..2000 {
        let key = format!("k{i}");
        let r = c.command(&[b"SET", key.as_bytes(), &value]).expect("set");
        if r == b"+OK\r\n" {
            accepted.push(key);
        } else {
            oom = Some(String::from_utf8_lossy(&r).into_owned());
            break;
        }
    }
    assert_eq!(
        oom.as_deref(),
        Some("-OOM command not allowed when used memory > 'maxmemory'.\r\n")
    );
    // Reads and deletes still work; every acknowledged key is there.
    for k in &accepted {
        assert_eq!(
            c.command(&[b"EXISTS", k.as_bytes()]).expect("exists"),
            b":1\r\n",
            "{k} lost"
        );
    }
    assert_eq!(info_field(port, "stats", "evicted_keys"), 0);
    assert_eq!(
        c.command(&[b"DEL", accepted[0].as_bytes()]).expect("del"),
        b":1\r\n"
    );
}

#[test]
fn idle_timeout_slow_loris_silent_subscriber_and_maxclients() {
    let server = RedsnapServer::builder()
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "",
            "--timeout",
            "1",
            "--maxclients",
            "50",
            "--client-output-buffer-limit",
            "pubsub 1mb 512kb 60",
        ])
        .start()
        .expect("redsnap");
    let port = server.port();

    // An idle client is closed after `timeout` seconds.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(
        idle.read(&mut buf).expect("read"),
        0,
        "idle client should be closed"
    );
    assert!(start.elapsed() >= Duration::from_millis(900));

    // A slow-loris client trickling a command does not hold up others.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nhello\r\n";
    for (i, b) in req.iter().enumerate() {
        slow.write_all(&[*b]).expect("trickle");
        if i % 8 == 0 {
            assert_eq!(raw_command(port, &[b"PING"]).expect("ping"), b"+PONG\r\n");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reply = [0u8; 5];
    slow.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"+OK\r\n");

    // A subscriber that never reads is disconnected at the pub/sub output limit.
    let mut sub = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sub.write_all(b"SUBSCRIBE flood\r\n").expect("subscribe");
    std::thread::sleep(Duration::from_millis(100));
    let payload = vec![b'p'; 64 * 1024];
    let mut publisher = redsnap_testsupport::RawConn::connect(port).expect("connect");
    let mut receivers_seen_zero = false;
    for _ in 0..2000 {
        let r = publisher
            .command(&[b"PUBLISH", b"flood", &payload])
            .expect("publish");
        if r == b":0\r\n" {
            receivers_seen_zero = true;
            break;
        }
    }
    assert!(
        receivers_seen_zero,
        "the silent subscriber should have been disconnected"
    );
    if let Some(pid) = server.pid() {
        assert!(
            rss_kb(pid) < 300 * 1024,
            "RSS {} kB after the flood",
            rss_kb(pid)
        );
    }

    assert_eq!(raw_command(port, &[b"PING"]).expect("ping"), b"+PONG\r\n");
}

#[test]
fn ten_thousand_connection_attempts_against_maxclients() {
    let server = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", "", "--maxclients", "50"])
        .start()
        .expect("redsnap");
    let port = server.port();
    // 10,000 connection attempts against maxclients 50: refused ones get Redis's
    // error, the server keeps serving.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..10_000 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        if held.len() < 60 {
            let _ = s.write_all(b"PING\r\n");
            let mut b = [0u8; 64];
            let n = s.read(&mut b).unwrap_or(0);
            if b[..n].starts_with(b"-ERR max number of clients reached") {
                refused += 1;
            } else {
                held.push(s);
            }
        }
    }
    assert!(
        refused > 0,
        "maxclients must refuse connections beyond the limit"
    );
    assert!(held.len() <= 50);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(raw_command(port, &[b"PING"]).expect("ping"), b"+PONG\r\n");
    if let Some(pid) = server.pid() {
        assert!(rss_kb(pid) < 200 * 1024, "RSS {} kB", rss_kb(pid));
    }
}
