//! A runaway script must not lock anyone out (issue 11, item 1), and the limits
//! before authentication (item 7). Each sequence runs against a real redis-server
//! 7.0.15 and against redsnap, on connections opened *while* the script runs, and
//! the replies must match; the black-box tests drive the `redsnap` binary with the
//! `redis-cli` binary as an operator would.

use redsnap_testsupport::{RawConn, RedisServer, RedsnapServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const THRESHOLD_MS: &str = "100";

fn redis(extra: &[&str]) -> RedisServer {
    let mut args = vec!["--busy-reply-threshold", THRESHOLD_MS];
    args.extend_from_slice(extra);
    RedisServer::builder()
        .extra_args(&args)
        .start()
        .expect("redis-server")
}

fn redsnap(extra: &[&str]) -> RedsnapServer {
    let mut args = vec!["--busy-reply-threshold", THRESHOLD_MS];
    args.extend_from_slice(extra);
    RedsnapServer::builder()
        .extra_args(&args)
        .start()
        .expect("redsnap")
}

fn cmd(c: &mut RawConn, args: &[&[u8]]) -> String {
    match c.command(args) {
        Ok(r) => String::from_utf8_lossy(&r).into_owned(),
        Err(e) => format!("<io error: {e}>"),
    }
}

/// Sends a command on its own connection and returns its reply (one line: the
/// scripts here end with an error) when it comes, waiting up to 60 s: the script
/// runs for as long as the sequence around it takes.
fn in_background(port: u16, auth: Option<&str>, args: &[&[u8]]) -> JoinHandle<String> {
    let mut t = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let read_line = |t: &mut TcpStream| {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            match t.read(&mut b) {
                Ok(1) => out.push(b[0]),
                Ok(_) => return format!("<closed after {:?}>", String::from_utf8_lossy(&out)),
                Err(e) => return format!("<io error: {e}>"),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    if let Some(p) = auth {
        t.write_all(&redsnap_testsupport::encode_command(&[
            b"AUTH",
            p.as_bytes(),
        ]))
        .expect("auth");
        assert_eq!(read_line(&mut t), "+OK\r\n");
    }
    t.write_all(&redsnap_testsupport::encode_command(args))
        .expect("write");
    std::thread::spawn(move || read_line(&mut t))
}

fn wait_busy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = RawConn::connect(port).expect("connect during a busy script");
        if cmd(&mut c, &[b"PING"]).starts_with("-BUSY") {
            return;
        }
        assert!(Instant::now() < deadline, "server never reported BUSY");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// New connections during an endless read-only script, and transactions around it
/// (the four "... and script timeout" cases of Redis's unit/multi).
fn busy_sequence(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut setup = RawConn::connect(port).expect("connect");
    out.push(cmd(&mut setup, &[b"SET", b"xx", b"1"]));
    // Opened before the script: a transaction that spans it.
    let mut spanning = RawConn::connect(port).expect("connect");
    out.push(cmd(&mut spanning, &[b"MULTI"]));
    out.push(cmd(&mut spanning, &[b"INCR", b"xx"]));

    let script = in_background(port, None, &[b"EVAL", b"while true do end", b"0"]);
    wait_busy(port);

    // Every one of these connects while the script runs.
    let fresh = || RawConn::connect(port).expect("connect during a busy script");
    let mut c = fresh();
    out.push(cmd(&mut c, &[b"PING"]));
    out.push(cmd(&mut c, &[b"GET", b"xx"]));
    out.push(cmd(&mut c, &[b"NOSUCHCOMMAND", b"a"]));
    out.push(cmd(&mut c, &[b"GET"]));
    out.push(cmd(&mut c, &[b"SHUTDOWN"]));
    out.push(cmd(&mut c, &[b"FUNCTION", b"STATS"]));
    out.push(cmd(&mut c, &[b"FUNCTION", b"KILL"]));
    out.push(cmd(&mut c, &[b"SCRIPT", b"FLUSH"]));
    out.push(cmd(&mut c, &[b"WATCH", b"xx"]));
    out.push(cmd(&mut c, &[b"UNWATCH"]));
    out.push(cmd(&mut c, &[b"DISCARD"]));
    out.push(cmd(&mut c, &[b"EXEC"]));
    // MULTI during the script, a command refused with BUSY: EXECABORT later.
    let mut during = fresh();
    out.push(cmd(&mut during, &[b"MULTI"]));
    out.push(cmd(&mut during, &[b"MULTI"]));
    out.push(cmd(&mut during, &[b"INCR", b"xx"]));
    out.push(cmd(&mut during, &[b"UNWATCH"]));
    // The transaction opened before the script: EXEC during it aborts it.
    out.push(cmd(&mut spanning, &[b"INCR", b"xx"]));
    out.push(cmd(&mut spanning, &[b"EXEC"]));
    out.push(cmd(&mut spanning, &[b"PING", b"asdf"]));
    // DISCARD and QUIT are allowed.
    let mut d = fresh();
    out.push(cmd(&mut d, &[b"MULTI"]));
    out.push(cmd(&mut d, &[b"DISCARD"]));
    out.push(cmd(&mut d, &[b"QUIT"]));

    out.push(cmd(&mut fresh(), &[b"SCRIPT", b"KILL"]));
    out.push(script.join().expect("script thread"));
    out.push(cmd(&mut during, &[b"EXEC"]));
    out.push(cmd(&mut during, &[b"PING", b"asdf"]));
    out.push(cmd(&mut fresh(), &[b"GET", b"xx"]));
    out.push(cmd(&mut fresh(), &[b"PING"]));
    out
}

#[test]
fn new_connections_during_a_busy_script_match_redis() {
    let mut r = redis(&[]);
    let mut s = redsnap(&["--appendonly", "no", "--save", ""]);
    let a = busy_sequence(r.port());
    let b = busy_sequence(s.port());
    assert_eq!(a, b, "redis (left) and redsnap (right) differ");
    assert!(b
        .iter()
        .any(|x| x.starts_with("-EXECABORT Transaction discarded because of: BUSY")));
    assert_eq!(b.last().map(String::as_str), Some("+PONG\r\n"));
    r.stop();
    s.stop();
}

/// AUTH and HELLO are answered during a busy script; other commands before AUTH get
/// NOAUTH, after it BUSY.
fn auth_sequence(port: u16) -> Vec<String> {
    let script = in_background(port, Some("secret"), &[b"EVAL", b"while true do end", b"0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = RawConn::connect(port).expect("connect");
        c.command_ok(&[b"AUTH", b"secret"])
            .expect("auth during busy");
        if cmd(&mut c, &[b"PING"]).starts_with("-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "never BUSY");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    let mut c = RawConn::connect(port).expect("connect");
    out.push(cmd(&mut c, &[b"GET", b"x"]));
    out.push(cmd(&mut c, &[b"AUTH", b"wrong"]));
    out.push(cmd(&mut c, &[b"AUTH", b"default", b"wrong"]));
    out.push(cmd(&mut c, &[b"HELLO", b"2"]));
    out.push(cmd(&mut c, &[b"AUTH", b"secret"]));
    out.push(cmd(&mut c, &[b"GET", b"x"]));
    let mut h = RawConn::connect(port).expect("connect");
    let hello = cmd(&mut h, &[b"HELLO", b"3", b"AUTH", b"default", b"secret"]);
    out.push(hello.lines().take(5).collect::<Vec<_>>().join("|"));
    out.push(cmd(&mut h, &[b"GET", b"x"]));
    let mut k = RawConn::connect(port).expect("connect");
    k.command_ok(&[b"AUTH", b"secret"]).expect("auth");
    out.push(cmd(&mut k, &[b"SCRIPT", b"KILL"]));
    out.push(script.join().expect("script"));
    out.push(cmd(&mut h, &[b"PING"]));
    out
}

#[test]
fn auth_and_hello_during_a_busy_script_match_redis() {
    let mut r = RedisServer::builder()
        .password("secret")
        .extra_args(&["--busy-reply-threshold", THRESHOLD_MS])
        .start()
        .expect("redis-server");
    let mut s = RedsnapServer::builder()
        .password("secret")
        .extra_args(&[
            "--busy-reply-threshold",
            THRESHOLD_MS,
            "--appendonly",
            "no",
            "--save",
            "",
        ])
        .start()
        .expect("redsnap");
    let a = auth_sequence(r.port());
    let b = auth_sequence(s.port());
    assert_eq!(a, b, "redis (left) and redsnap (right) differ");
    assert!(b[0].starts_with("-NOAUTH"), "{b:?}");
    assert_eq!(b[4], "+OK\r\n");
    assert!(b[5].starts_with("-BUSY"), "{b:?}");
    r.stop();
    s.stop();
}

#[test]
fn connection_limits_do_not_wait_for_a_busy_script() {
    let mut s = redsnap(&["--appendonly", "no", "--save", "", "--maxclients", "3"]);
    let port = s.port();
    let _held = RawConn::connect(port).expect("connect");
    let script = in_background(port, None, &[b"EVAL", b"while true do end", b"0"]);
    wait_busy(port);
    // Two connections open (held, script) and the probe of wait_busy gone: the third
    // is served, the fourth refused at once, without waiting for the script.
    // (The probe's slot is released when the server sees it close: retry briefly.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        let mut c = RawConn::connect(port).expect("connect");
        let r = cmd(&mut c, &[b"PING"]);
        if r.starts_with("-BUSY") {
            break c;
        }
        assert!(Instant::now() < deadline, "third connection: {r}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut fourth = RawConn::connect(port).expect("connect");
    assert_eq!(
        cmd(&mut fourth, &[b"PING"]),
        "-ERR max number of clients reached\r\n"
    );
    assert_eq!(cmd(&mut third, &[b"SCRIPT", b"KILL"]), "+OK\r\n");
    assert!(script
        .join()
        .expect("script")
        .starts_with("-ERR Script killed"));
    s.stop();
}

/// A WATCH sent while a script is busy cannot observe the keys; redsnap registers
/// them as modified, so the transaction aborts (nil) rather than run on a stale read.
#[test]
fn watch_during_a_busy_script_aborts_the_transaction() {
    let mut s = redsnap(&["--appendonly", "no", "--save", ""]);
    let port = s.port();
    let script = in_background(port, None, &[b"EVAL", b"while true do end", b"0"]);
    wait_busy(port);
    let mut c = RawConn::connect(port).expect("connect");
    assert_eq!(cmd(&mut c, &[b"WATCH", b"w"]), "+OK\r\n");
    assert_eq!(
        cmd(
            &mut RawConn::connect(port).expect("c"),
            &[b"SCRIPT", b"KILL"]
        ),
        "+OK\r\n"
    );
    script.join().expect("script");
    assert_eq!(cmd(&mut c, &[b"MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &[b"SET", b"w", b"1"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &[b"EXEC"]), "*-1\r\n");
    assert_eq!(cmd(&mut c, &[b"EXISTS", b"w"]), ":0\r\n");
    // UNWATCH during a later busy script clears it: the next transaction runs.
    assert_eq!(cmd(&mut c, &[b"WATCH", b"w"]), "+OK\r\n");
    let script = in_background(port, None, &[b"EVAL", b"while true do end", b"0"]);
    wait_busy(port);
    assert_eq!(cmd(&mut c, &[b"UNWATCH"]), "+OK\r\n");
    assert_eq!(
        cmd(
            &mut RawConn::connect(port).expect("c"),
            &[b"SCRIPT", b"KILL"]
        ),
        "+OK\r\n"
    );
    script.join().expect("script");
    assert_eq!(cmd(&mut c, &[b"MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &[b"SET", b"w", b"1"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &[b"EXEC"]), "*1\r\n+OK\r\n");
    s.stop();
}

/// `redis-cli ARGS...` with a time limit; returns its stdout.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut child = spawn_redis_cli(port, args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(child.try_wait(), Ok(Some(_))) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return format!("<redis-cli {args:?} hung>");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    out.trim_end().to_string()
}

fn spawn_redis_cli(port: u16, args: &[&str]) -> std::process::Child {
    Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli")
}

/// The operator's view: `redis-cli EVAL "while true do end" 0` in one terminal, and
/// in another `redis-cli PING`, `SCRIPT KILL`, `PING`.
#[test]
fn redis_cli_during_a_busy_script() {
    let mut s = redsnap(&["--appendonly", "no", "--save", ""]);
    let port = s.port();
    let mut script = spawn_redis_cli(port, &["EVAL", "while true do end", "0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = redis_cli(port, &["PING"]);
        if r.starts_with("BUSY") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no BUSY from a fresh redis-cli: {r}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(redis_cli(port, &["SCRIPT", "KILL"]), "OK");
    let _ = script.wait();
    assert_eq!(redis_cli(port, &["PING"]), "PONG");
    s.stop();
}

/// `SHUTDOWN NOSAVE` from a new redis-cli stops a server whose script has written
/// (and cannot be killed). What was acknowledged before the script survives (append
/// log, `appendfsync always`); the killed script's partial write is not persisted,
/// as in Redis, which propagates a script's effects only when it ends.
#[test]
fn redis_cli_shutdown_nosave_stops_a_script_that_wrote() {
    let mut s = redsnap(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ]);
    let port = s.port();
    assert_eq!(redis_cli(port, &["SET", "before", "1"]), "OK");
    let mut script = spawn_redis_cli(
        port,
        &[
            "EVAL",
            "redis.call('set','partial','1') while true do end",
            "0",
        ],
    );
    wait_busy(port);
    assert!(redis_cli(port, &["SCRIPT", "KILL"]).starts_with("UNKILLABLE"));
    assert!(redis_cli(port, &["SHUTDOWN"]).starts_with("BUSY"));
    let _ = redis_cli(port, &["SHUTDOWN", "NOSAVE"]);
    assert!(
        s.wait_exit(Duration::from_secs(10)).is_some(),
        "redsnap still running after SHUTDOWN NOSAVE; log:\n{}",
        s.log()
    );
    let _ = script.wait();
    s.restart().expect("restart");
    assert_eq!(redis_cli(port, &["GET", "before"]), "1");
    assert_eq!(redis_cli(port, &["EXISTS", "partial"]), "0");
    s.stop();
}

/// SIGTERM during a busy script schedules the shutdown (as Redis does): the server
/// keeps answering BUSY, says so in its log, and exits with its final snapshot as soon
/// as the script is killed.
#[test]
fn sigterm_during_a_busy_script_waits_for_it() {
    let mut s = redsnap(&[
        "--appendonly",
        "no",
        "--save",
        "",
        "--snapshot-on-shutdown",
        "yes",
    ]);
    let port = s.port();
    assert_eq!(redis_cli(port, &["SET", "kept", "1"]), "OK");
    let mut script = spawn_redis_cli(port, &["EVAL", "while true do end", "0"]);
    wait_busy(port);
    s.terminate().expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.log().contains("shutdown scheduled") {
        assert!(Instant::now() < deadline, "no log line; log:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(redis_cli(port, &["PING"]).starts_with("BUSY"));
    assert!(
        s.wait_exit(Duration::from_millis(300)).is_none(),
        "exited during the script"
    );
    assert_eq!(redis_cli(port, &["SCRIPT", "KILL"]), "OK");
    assert!(
        s.wait_exit(Duration::from_secs(10)).is_some(),
        "still running after the script was killed; log:\n{}",
        s.log()
    );
    let _ = script.wait();
    assert!(s.log().contains("final snapshot saved"), "{}", s.log());
    s.restart().expect("restart");
    assert_eq!(redis_cli(port, &["GET", "kept"]), "1");
    s.stop();
}

/// Sends raw bytes on a fresh connection and reads until the server closes it (or
/// 5 s pass): what an unauthenticated client gets for an oversized request.
fn raw_exchange(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut t = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    t.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match t.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // Closed with unread input: the kernel resets the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn unauth_sequence(port: u16) -> Vec<(String, bool)> {
    let mut big = b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$16385\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 16385));
    big.extend_from_slice(b"\r\n");
    let mut eleven = b"*11\r\n".to_vec();
    for _ in 0..11 {
        eleven.extend_from_slice(b"$1\r\na\r\n");
    }
    // AUTH then, in the same packet, a request over both limits: allowed once
    // authenticated.
    let mut pipelined = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n".to_vec();
    let val = vec![b'v'; 20_000];
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    let keys: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
    for k in &keys {
        args.push(k);
        args.push(&val);
    }
    pipelined.extend(redsnap_testsupport::encode_command(&args));
    pipelined.extend(redsnap_testsupport::encode_command(&[b"STRLEN", b"k5"]));
    pipelined.extend(redsnap_testsupport::encode_command(&[b"QUIT"]));
    vec![
        raw_exchange(port, &eleven),
        raw_exchange(port, &big),
        raw_exchange(port, b"*10\r\n$3\r\nGET\r\n"),
        raw_exchange(port, &pipelined),
    ]
}

#[test]
fn limits_before_authentication_match_redis() {
    let mut r = RedisServer::builder()
        .password("secret")
        .start()
        .expect("redis");
    let mut s = RedsnapServer::builder()
        .password("secret")
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("redsnap");
    let a = unauth_sequence(r.port());
    let b = unauth_sequence(s.port());
    assert_eq!(a, b, "redis (left) and redsnap (right) differ");
    assert_eq!(
        b[0],
        (
            "-ERR Protocol error: unauthenticated multibulk length\r\n".to_string(),
            true
        )
    );
    assert_eq!(
        b[1],
        (
            "-ERR Protocol error: unauthenticated bulk length\r\n".to_string(),
            true
        )
    );
    assert_eq!(b[3].0, "+OK\r\n+OK\r\n:20000\r\n+OK\r\n");
    r.stop();
    s.stop();
}

/// The script's worker hands its queue to a new thread once the script runs long;
/// under load that thread may start late, and a hand-off that was not confirmed is
/// retried (it was tried once, and a lost race left every connection stuck until the
/// script ended, which for `while true do end` is never). Many short-threshold busy
/// scripts in a row, with the CPU kept busy by spinning threads.
#[test]
fn busy_scripts_under_cpu_load_never_lock_out_new_connections() {
    let mut s = RedsnapServer::builder()
        .extra_args(&[
            "--busy-reply-threshold",
            "10",
            "--appendonly",
            "no",
            "--save",
            "",
        ])
        .start()
        .expect("redsnap");
    let port = s.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    for round in 0..25 {
        let script = in_background(port, None, &[b"EVAL", b"while true do end", b"0"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = RawConn::connect(port).expect("connect");
            let r = cmd(&mut c, &[b"SCRIPT", b"KILL"]);
            if r == "+OK\r\n" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: SCRIPT KILL from a new connection got {r:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(script
            .join()
            .expect("script")
            .starts_with("-ERR Script killed"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in spinners {
        let _ = t.join();
    }
    s.stop();
}
