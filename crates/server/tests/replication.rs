//! Replication, master side, against real tools: `redis-cli --rdb` output loaded by
//! a real redis-server; a real `redis-server --replicaof` redsnap through 100,000
//! mixed writes and a redsnap restart; partial resynchronization (a real replica
//! whose link is killed, and PSYNC driven by hand, byte for byte) and a backlog too
//! small for it; WAIT, ROLE and INFO replication.
//!
//! Every wait is bounded (socket timeouts, polling with a deadline). Servers run on
//! free loopback ports in their own temporary directories.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redsnap_testsupport::dataset::{fetch_dataset, fill_every_encoding, Client, Resp};
use redsnap_testsupport::probe::{call, client, digest, field, info, ok, text, wait_until};
use redsnap_testsupport::{RedisServer, RedsnapServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn master() -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(&["--appendonly", "yes", "--save", ""])
        .start()
        .expect("start redsnap")
}

/// A real redis-server replicating from 127.0.0.1:`port`.
fn replica_of(port: u16) -> RedisServer {
    RedisServer::builder()
        .extra_args(&[
            "--replicaof",
            "127.0.0.1",
            &port.to_string(),
            "--enable-debug-command",
            "yes",
        ])
        .start()
        .expect("start redis-server")
}

fn link_up(replica: &RedisServer) -> bool {
    field(&info(replica.port(), "replication"), "master_link_status").as_deref() == Some("up")
}

fn replica_log(replica: &RedisServer) -> String {
    std::fs::read_to_string(replica.dir().join("redis.log")).unwrap_or_default()
}

/// WAIT 1 on the connection that wrote last, then both digests agree.
fn assert_replica_identical(writer: &mut Client, master: u16, replica: &RedisServer) {
    let acked = ok(writer, &["WAIT", "1", "60000"]);
    assert_eq!(acked, Resp::Int(1), "WAIT");
    let d = digest(master);
    assert_eq!(digest(replica.port()), d, "replica digest");
    assert_ne!(d, "0".repeat(40));
}

/// Runs `cmd` with a time limit; returns its stdout and stderr.
fn run(cmd: &mut Command, secs: u64) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut out);
            }
            return (status.success(), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_cli_rdb_from_redsnap_loads_into_redis_server_identically() {
    let m = master();
    let mut c = client(m.port());
    fill_every_encoding(&mut c).expect("fill");
    // Relative TTLs too (the file holds absolute deadlines).
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["SET", "ttl:rel", "v", "EX", "5000"]);
    ok(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=rdblib\nredis.register_function('f', function() return 1 end)",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dump.rdb");
    let (ok_run, out) = run(
        Command::new("redis-cli")
            .args(["-p", &m.port().to_string(), "--rdb"])
            .arg(&file),
        60,
    );
    assert!(ok_run, "redis-cli --rdb: {out}");
    let (checked, out) = run(Command::new("redis-check-rdb").arg(&file), 60);
    assert!(checked, "redis-check-rdb: {out}");
    let r = RedisServer::builder()
        .dir(dir.path())
        .extra_args(&["--dbfilename", "dump.rdb", "--enable-debug-command", "yes"])
        .start()
        .expect("redis-server loads the file");
    assert_eq!(digest(r.port()), digest(m.port()));
    let ours = fetch_dataset(m.port(), None, 16).expect("redsnap dataset");
    let theirs = fetch_dataset(r.port(), None, 16).expect("redis dataset");
    assert_eq!(ours.len(), theirs.len());
    for (k, v) in &ours {
        let t = theirs.get(k).unwrap_or_else(|| panic!("{k:?} missing"));
        assert_eq!((&t.kind, &t.value), (&v.kind, &v.value), "{k:?}");
        assert!((t.pexpiretime - v.pexpiretime).abs() <= 1000, "{k:?} ttl");
    }
    let mut rc = client(r.port());
    assert_eq!(text(&ok(&mut rc, &["FCALL", "f", "0"])), "1");
    drop(rc);
    drop(r);
    // `--functions-rdb` (REPLCONF rdb-filter-only functions): the libraries only.
    let fdir = tempfile::tempdir().expect("tempdir");
    let (ok_run, out) = run(
        Command::new("redis-cli")
            .args(["-p", &m.port().to_string(), "--functions-rdb"])
            .arg(fdir.path().join("dump.rdb")),
        60,
    );
    assert!(ok_run, "redis-cli --functions-rdb: {out}");
    let r = RedisServer::builder()
        .dir(fdir.path())
        .extra_args(&["--dbfilename", "dump.rdb"])
        .start()
        .expect("redis-server loads the functions file");
    let mut rc = client(r.port());
    assert_eq!(ok(&mut rc, &["DBSIZE"]), Resp::Int(0));
    assert_eq!(text(&ok(&mut rc, &["FCALL", "f", "0"])), "1");
    // A filter needs the `$EOF` form.
    let mut raw = Raw::connect(m.port());
    raw.send(&["REPLCONF", "rdb-filter-only", ""]);
    assert_eq!(raw.line(), "+OK\r\n");
    raw.send(&["SYNC"]);
    assert_eq!(
        raw.line(),
        "-ERR Filtered replica requires EOF capability\r\n"
    );
    raw.send(&["REPLCONF", "rdb-filter-only", "keys"]);
    assert_eq!(
        raw.line(),
        "-ERR Unsupported rdb-filter-only option: keys\r\n"
    );
    // The transfer is logged with its figures.
    assert!(m.log().contains("full resynchronization"), "{}", m.log());
}

fn s(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// One random write (or a group: MULTI/EXEC, a script, another database). Keys are
/// named by type so that most commands apply; short-lived keys are remembered.
fn random_write(
    rng: &mut StdRng,
    payload: &[u8],
    out: &mut Vec<Vec<Vec<u8>>>,
    short: &mut Vec<(u32, String)>,
) {
    let n = rng.random_range(0..200);
    let k = |p: &str, n: u32| format!("{p}:{n}");
    let v = rng.random_range(0..1000).to_string();
    // Long enough that nothing but the `short:` keys expires during the test
    // (seconds for EX/EXPIRE, milliseconds for the others).
    let secs = rng.random_range(1000..100_000u64);
    let ttl = secs.to_string();
    let ttl_ms = (secs * 1000).to_string();
    match rng.random_range(0..40) {
        0 => out.push(s(&["SET", &k("s", n), &v])),
        1 => out.push(s(&["SET", &k("s", n), &v, "EX", &ttl])),
        2 => out.push(s(&["SET", &k("s", n), &v, "PX", &ttl_ms, "GET"])),
        3 => out.push(s(&["SETEX", &k("s", n), &ttl, &v])),
        4 => out.push(s(&["APPEND", &k("s", n), &v])),
        5 => out.push(s(&["INCRBY", &k("n", n), &v])),
        6 => out.push(s(&["INCRBYFLOAT", &k("f", n), "1.25"])),
        7 => out.push(s(&["GETDEL", &k("s", n)])),
        8 => out.push(s(&["GETEX", &k("s", n), "EX", &ttl])),
        9 => out.push(s(&["GETEX", &k("s", n), "PERSIST"])),
        10 => out.push(s(&["GETSET", &k("s", n), &v])),
        11 => out.push(s(&["MSET", &k("s", n), &v, &k("s", n + 1), &v])),
        12 => out.push(s(&["RPUSH", &k("l", n), &v, "x", "y"])),
        13 => out.push(s(&["LPUSH", &k("l", n), &v])),
        14 => out.push(s(&["LPOP", &k("l", n), "2"])),
        15 => out.push(s(&["LMPOP", "2", &k("l", n), &k("l", n + 1), "RIGHT", "COUNT", "3"])),
        16 => out.push(s(&["LMOVE", &k("l", n), &k("l", n + 7), "LEFT", "RIGHT"])),
        17 => out.push(s(&["HSET", &k("h", n), "f", &v, "g", "1"])),
        18 => out.push(s(&["HINCRBYFLOAT", &k("h", n), "g", "0.5"])),
        19 => out.push(s(&["HDEL", &k("h", n), "f"])),
        20 => out.push(s(&["SADD", &k("t", n), &v, "a", "b"])),
        21 => out.push(s(&["SPOP", &k("t", n)])),
        22 => out.push(s(&["SREM", &k("t", n), "a"])),
        23 => out.push(s(&["ZADD", &k("z", n), &v, "m", "1.5", &v])),
        24 => out.push(s(&["ZINCRBY", &k("z", n), "2.5", "m"])),
        25 => out.push(s(&["ZMPOP", "1", &k("z", n), "MIN", "COUNT", "2"])),
        26 => out.push(s(&["ZPOPMAX", &k("z", n)])),
        27 => out.push(s(&["DEL", &k("s", n), &k("l", n)])),
        28 => out.push(s(&["EXPIRE", &k("h", n), &ttl])),
        29 => out.push(s(&["PEXPIRE", &k("z", n), &ttl_ms, "NX"])),
        30 => out.push(s(&["PERSIST", &k("h", n)])),
        31 => {
            // Short-lived: expire during the test.
            let key = k("short", n);
            out.push(s(&["SET", &key, &v, "PX", &rng.random_range(1..200).to_string()]));
            short.push((0, key));
        }
        32 => {
            out.push(s(&["MULTI"]));
            out.push(s(&["INCR", &k("n", n)]));
            out.push(s(&["RPUSH", &k("l", n), &v]));
            out.push(s(&["EXPIRE", &k("l", n), &ttl]));
            out.push(s(&["EXEC"]));
        }
        33 => out.push(s(&[
            "EVAL",
            "redis.call('set', KEYS[1], ARGV[1]) redis.call('expire', KEYS[1], ARGV[2]) return redis.call('incr', KEYS[2])",
            "2",
            &k("s", n),
            &k("n", n),
            &v,
            &ttl,
        ])),
        34 => out.push(s(&[
            "EVAL",
            "return redis.call('spop', KEYS[1])",
            "1",
            &k("t", n),
        ])),
        35 => out.push(s(&["FCALL", "rset", "1", &k("s", n), &v])),
        36 => {
            out.push(s(&["SELECT", "3"]));
            out.push(s(&["SET", &k("s", n), &v, "EX", &ttl]));
            out.push(s(&["DEL", &k("s", n + 1)]));
            out.push(s(&["SELECT", "0"]));
        }
        37 => {
            out.push(s(&["SELECT", "5"]));
            out.push(s(&["HSET", &k("h", n), "f", &v]));
            if n < 5 {
                out.push(s(&["FLUSHDB"]));
            }
            out.push(s(&["SELECT", "0"]));
        }
        38 => {
            let mut cmd = s(&["RESTORE", &k("r", n), &ttl_ms]);
            cmd.push(payload.to_vec());
            cmd.push(b"REPLACE".to_vec());
            out.push(cmd);
        }
        _ => out.push(s(&["COPY", &k("h", n), &k("h", n + 1), "REPLACE"])),
    }
}

/// 100,000 writes through a pipeline, starting while the replica's first
/// synchronization may still be running.
fn write_mixed(c: &mut Client, n: usize, seed: u64) -> Vec<(u32, String)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut short = Vec::new();
    ok(c, &["SET", "dump:src", "payload"]);
    let Resp::Bulk(Some(payload)) = ok(c, &["DUMP", "dump:src"]) else {
        panic!("DUMP")
    };
    let mut written = 0;
    while written < n {
        let mut batch = Vec::new();
        while batch.len() < 500 {
            random_write(&mut rng, &payload, &mut batch, &mut short);
        }
        written += batch.len();
        let replies = c.pipeline(&batch).expect("pipeline");
        let errors = replies
            .iter()
            .filter(|r| matches!(r, Resp::Error(e) if !e.starts_with(b"ERR no such key")))
            .count();
        // Type collisions are impossible by naming; errors are rare (EXECABORT never).
        assert!(errors < batch.len() / 10, "{errors} errors: {replies:?}");
    }
    short
}

/// Lets the short-lived keys expire and removes them on the master by reading
/// them (their DELs are propagated).
fn expire_short(c: &mut Client, short: &[(u32, String)]) {
    std::thread::sleep(Duration::from_millis(250));
    let reads: Vec<Vec<Vec<u8>>> = short.iter().map(|(_, k)| s(&["EXISTS", k])).collect();
    for r in c.pipeline(&reads).expect("exists") {
        assert_eq!(r, Resp::Int(0));
    }
}

#[test]
fn a_real_replica_stays_identical_through_100k_writes_and_a_master_restart() {
    let mut m = master();
    let port = m.port();
    let mut c = client(port);
    ok(&mut c, &["SET", "before", "sync"]);
    ok(&mut c, &[
        "FUNCTION",
        "LOAD",
        "#!lua name=replib\nredis.register_function('rset', function(keys, args) return redis.call('set', keys[1], args[1]) end)",
    ]);
    populate(&mut c, 1, 200_000);
    // The writes start while the first synchronization is under way (200,000
    // keys take a while to encode and load).
    let starting = std::thread::spawn(move || replica_of(port));
    let short = write_mixed(&mut c, 100_000, 7);
    let replica = starting.join().expect("replica");
    expire_short(&mut c, &short);
    wait_until(60, "the replica link", || link_up(&replica));
    assert_replica_identical(&mut c, port, &replica);
    let before_restart = digest(port);
    let log = m.log();
    assert!(log.contains("synchronized:"), "{log}");

    // A clean restart on the same data directory and port: the replica comes back
    // (a full resynchronization: the replication id is new) and is identical again.
    drop(c);
    m.stop().expect("redsnap exits on SIGTERM");
    m.restart().expect("redsnap starts again");
    assert_eq!(digest(port), before_restart, "the restart kept the data");
    wait_until(60, "the replica to resynchronize", || {
        link_up(&replica)
            && field(&info(port, "replication"), "connected_slaves").as_deref() == Some("1")
    });
    let mut c = client(port);
    let short = write_mixed(&mut c, 5_000, 8);
    expire_short(&mut c, &short);
    assert_replica_identical(&mut c, port, &replica);
    assert_eq!(
        field(&info(port, "stats"), "sync_full").as_deref(),
        Some("1")
    );
}

#[test]
fn a_replica_whose_link_is_killed_continues_from_the_backlog() {
    let m = master();
    let port = m.port();
    let replica = replica_of(port);
    let mut c = client(port);
    ok(&mut c, &["SET", "a", "1"]);
    wait_until(60, "the replica link", || link_up(&replica));
    assert_replica_identical(&mut c, port, &replica);
    // CLIENT KILL TYPE replica, writes while it is away, then it reconnects.
    assert_eq!(
        ok(&mut c, &["CLIENT", "KILL", "TYPE", "replica"]),
        Resp::Int(1)
    );
    for i in 0..200 {
        ok(&mut c, &["RPUSH", "away", &i.to_string()]);
    }
    wait_until(60, "a partial resynchronization", || {
        field(&info(port, "stats"), "sync_partial_ok").as_deref() == Some("1") && link_up(&replica)
    });
    assert_replica_identical(&mut c, port, &replica);
    let st = info(port, "stats");
    assert_eq!(field(&st, "sync_full").as_deref(), Some("1"), "{st}");
    assert!(
        replica_log(&replica).contains("Successful partial resynchronization with master"),
        "{}",
        replica_log(&replica)
    );
    assert!(
        m.log().contains("partial resynchronization request from"),
        "{}",
        m.log()
    );
}

/// `n` string keys in database `db` (then back to database 0).
fn populate(c: &mut Client, db: u32, n: usize) {
    ok(c, &["SELECT", &db.to_string()]);
    let mut batch = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut cmd = s(&["MSET"]);
        for i in chunk {
            cmd.push(format!("pop:{i}").into_bytes());
            cmd.push(format!("value-{i}").into_bytes());
        }
        batch.push(cmd);
        if batch.len() == 100 {
            c.pipeline(&batch).expect("populate");
            batch.clear();
        }
    }
    c.pipeline(&batch).expect("populate");
    ok(c, &["SELECT", "0"]);
}

/// A raw replica connection.
struct Raw(BufReader<TcpStream>);

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Raw(BufReader::new(s))
    }
    fn send(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.0
            .get_mut()
            .write_all(&redsnap_testsupport::encode_command(&a))
            .expect("send");
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.0.read_line(&mut l).expect("line");
        l
    }
    fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.0.read_exact(&mut b).expect("bytes");
        b
    }
    /// `PSYNC`: the first line of the answer, and for a full resync the payload.
    fn psync(&mut self, replid: &str, offset: &str) -> String {
        let head = self.psync_head(replid, offset);
        if head.starts_with("+FULLRESYNC") {
            self.payload();
        }
        head
    }
    /// Sends PSYNC and reads the first line of the answer (`+FULLRESYNC` is sent
    /// when the replica is attached, before its file is produced).
    fn psync_head(&mut self, replid: &str, offset: &str) -> String {
        self.send(&["REPLCONF", "capa", "psync2"]);
        assert_eq!(self.line(), "+OK\r\n");
        self.send(&["PSYNC", replid, offset]);
        self.line()
    }
    /// The RDB payload of a full resynchronization (`$<len>` form).
    fn payload(&mut self) {
        let mut len = self.line();
        while len == "\n" {
            len = self.line();
        }
        let n: usize = len[1..].trim().parse().expect("payload length");
        let rdb = self.exact(n);
        assert!(rdb.starts_with(b"REDIS0010"));
    }
}

fn cmd_bytes(args: &[&str]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    redsnap_testsupport::encode_command(&a)
}

#[test]
fn psync_by_hand_continues_byte_for_byte_and_a_small_backlog_forces_a_full_resync() {
    let m = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let port = m.port();
    let mut c = client(port);
    // No PING in the stream while the bytes are compared.
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-ping-replica-period", "3600"],
    );
    ok(&mut c, &["SET", "k", "0"]);
    // Enough keys that the file takes a while: the writes below are made while it
    // is produced, buffered, and sent after it.
    populate(&mut c, 1, 30_000);
    let mut r = Raw::connect(port);
    let head = r.psync_head("?", "-1");
    ok(&mut c, &["SET", "a", "1"]);
    ok(&mut c, &["EXPIRE", "a", "100"]);
    r.payload();
    let parts: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(parts[0], "+FULLRESYNC", "{head}");
    let replid = parts[1].to_string();
    let start: u64 = parts[2].parse().expect("offset");
    assert_eq!(replid.len(), 40);
    // The stream after the file: SELECT, then the writes, exactly.
    let expected = [cmd_bytes(&["SELECT", "0"]), cmd_bytes(&["SET", "a", "1"])].concat();
    assert_eq!(r.exact(expected.len()), expected);
    let got = r.line();
    assert_eq!(got, "*3\r\n");
    let rest = [r.line(), r.line(), r.line(), r.line(), r.line(), r.line()].concat();
    assert!(
        rest.starts_with("$9\r\nPEXPIREAT\r\n$1\r\na\r\n$13\r\n"),
        "{rest}"
    );
    let seen = expected.len() + got.len() + rest.len();
    let i = info(port, "replication");
    assert_eq!(
        field(&i, "master_repl_offset"),
        Some((start + seen as u64).to_string())
    );
    assert_eq!(field(&i, "master_replid").as_deref(), Some(replid.as_str()));
    assert_eq!(field(&i, "repl_backlog_active").as_deref(), Some("1"));
    drop(r);
    // Writes while no replica is attached still go to the backlog.
    wait_until(10, "the replica to be gone", || {
        field(&info(port, "replication"), "connected_slaves").as_deref() == Some("0")
    });
    ok(&mut c, &["RPUSH", "l", "x"]);
    ok(&mut c, &["PUBLISH", "ch", "msg"]);
    let mut r = Raw::connect(port);
    let next = start + seen as u64 + 1;
    assert_eq!(
        r.psync(&replid, &next.to_string()),
        format!("+CONTINUE {replid}\r\n")
    );
    let expected = [
        cmd_bytes(&["RPUSH", "l", "x"]),
        cmd_bytes(&["PUBLISH", "ch", "msg"]),
    ]
    .concat();
    assert_eq!(r.exact(expected.len()), expected);
    let i = info(port, "stats");
    assert_eq!(field(&i, "sync_partial_ok").as_deref(), Some("1"));
    // ACK, then ROLE and INFO show it.
    let ack = (next - 1 + expected.len() as u64).to_string();
    r.send(&["REPLCONF", "ACK", &ack]);
    wait_until(10, "the ACK", || {
        info(port, "replication").contains(&format!(",state=online,offset={ack},"))
    });
    drop(r);
    wait_until(10, "the replica to be gone", || {
        field(&info(port, "replication"), "connected_slaves").as_deref() == Some("0")
    });

    // A backlog of 16 KB (the minimum) and 100 KB written meanwhile: FULLRESYNC.
    ok(&mut c, &["FLUSHALL"]);
    ok(&mut c, &["CONFIG", "SET", "repl-backlog-size", "1"]);
    let i = info(port, "replication");
    assert_eq!(field(&i, "repl_backlog_size").as_deref(), Some("16384"));
    let off: u64 = field(&i, "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .expect("offset");
    let big = "x".repeat(1000);
    for n in 0..100 {
        ok(&mut c, &["SET", &format!("big{n}"), &big]);
    }
    let i = info(port, "replication");
    assert_eq!(field(&i, "repl_backlog_histlen").as_deref(), Some("16384"));
    let mut r = Raw::connect(port);
    let head = r.psync(&replid, &(off + 1).to_string());
    assert!(
        head.starts_with(&format!("+FULLRESYNC {replid} ")),
        "{head}"
    );
    // An unknown replication id: FULLRESYNC too.
    let mut r2 = Raw::connect(port);
    let head = r2.psync(&"f".repeat(40), "1");
    assert!(head.starts_with("+FULLRESYNC"), "{head}");
    let i = info(port, "stats");
    assert_eq!(field(&i, "sync_partial_err").as_deref(), Some("2"), "{i}");
}

#[test]
fn wait_role_and_info_replication() {
    let m = master();
    let port = m.port();
    let mut c = client(port);
    // No replica: WAIT 0 answers at once, WAIT 1 after its timeout with 0.
    assert_eq!(ok(&mut c, &["WAIT", "0", "0"]), Resp::Int(0));
    ok(&mut c, &["SET", "x", "1"]);
    assert_eq!(ok(&mut c, &["WAIT", "1", "100"]), Resp::Int(0));
    assert_eq!(
        call(&mut c, &["WAIT", "1", "-1"]),
        Resp::Error(b"ERR timeout is negative".to_vec())
    );
    assert!(matches!(call(&mut c, &["WAIT", "x", "1"]), Resp::Error(_)));
    let i = info(port, "replication");
    assert_eq!(field(&i, "role").as_deref(), Some("master"));
    assert_eq!(field(&i, "connected_slaves").as_deref(), Some("0"));
    assert_eq!(field(&i, "repl_backlog_active").as_deref(), Some("0"));
    assert_eq!(field(&i, "master_repl_offset").as_deref(), Some("0"));
    assert_eq!(field(&i, "second_repl_offset").as_deref(), Some("-1"));
    assert_eq!(
        field(&i, "master_failover_state").as_deref(),
        Some("no-failover")
    );

    let replica = replica_of(port);
    wait_until(60, "the replica link", || link_up(&replica));
    ok(&mut c, &["SET", "x", "2"]);
    assert_eq!(ok(&mut c, &["WAIT", "1", "60000"]), Resp::Int(1));
    // Two replicas cannot ack: the timeout answers how many did.
    assert_eq!(ok(&mut c, &["WAIT", "2", "300"]), Resp::Int(1));
    // Inside MULTI WAIT does not block.
    ok(&mut c, &["MULTI"]);
    ok(&mut c, &["SET", "x", "3"]);
    ok(&mut c, &["WAIT", "5", "0"]);
    let Resp::Array(Some(r)) = ok(&mut c, &["EXEC"]) else {
        panic!("EXEC")
    };
    assert!(matches!(r[1], Resp::Int(0..=1)), "{r:?}");
    assert_eq!(ok(&mut c, &["WAIT", "1", "60000"]), Resp::Int(1));

    let i = info(port, "replication");
    assert_eq!(field(&i, "connected_slaves").as_deref(), Some("1"));
    let offset: u64 = field(&i, "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .expect("offset");
    assert!(offset > 0);
    let slave0 = field(&i, "slave0").expect("slave0");
    assert!(
        slave0.starts_with(&format!(
            "ip=127.0.0.1,port={},state=online,offset=",
            replica.port()
        )),
        "{slave0}"
    );
    assert_eq!(field(&i, "master_replid").map(|v| v.len()), Some(40));
    assert_eq!(
        field(&i, "master_replid2").as_deref(),
        Some("0".repeat(40).as_str())
    );
    assert_eq!(field(&i, "repl_backlog_active").as_deref(), Some("1"));
    assert_eq!(field(&i, "repl_backlog_size").as_deref(), Some("1048576"));
    assert_eq!(
        field(&i, "repl_backlog_first_byte_offset").as_deref(),
        Some("1")
    );
    assert_eq!(field(&i, "repl_backlog_histlen"), Some(offset.to_string()));

    let Resp::Array(Some(role)) = ok(&mut c, &["ROLE"]) else {
        panic!("ROLE")
    };
    assert_eq!(text(&role[0]), "master");
    assert!(matches!(role[1], Resp::Int(o) if o as u64 >= offset));
    let Resp::Array(Some(replicas)) = &role[2] else {
        panic!("ROLE replicas")
    };
    assert_eq!(replicas.len(), 1);
    let r = replicas[0].strings().expect("ip port offset");
    assert_eq!(r[0], b"127.0.0.1");
    assert_eq!(r[1], replica.port().to_string().as_bytes());
    // CLIENT LIST shows the replica with flag S.
    let list = text(&ok(&mut c, &["CLIENT", "LIST", "TYPE", "replica"]));
    assert!(list.contains("flags=S"), "{list}");
    // min-replicas-to-write: one good replica is enough, two are not.
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    ok(&mut c, &["SET", "y", "1"]);
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "2"]);
    assert_eq!(
        call(&mut c, &["SET", "y", "2"]),
        Resp::Error(b"NOREPLICAS Not enough good replicas to write.".to_vec())
    );
    ok(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
}

#[test]
fn repl_parameters_act_backlog_ttl_timeout_and_diskless_sync() {
    let m = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let port = m.port();
    let mut c = client(port);
    ok(&mut c, &["SET", "k", "v"]);
    // A replica with capa eof gets the `$EOF:` form (repl-diskless-sync yes, the
    // default) and the 40-character mark after the file.
    let mut r = Raw::connect(port);
    r.send(&["REPLCONF", "capa", "eof"]);
    assert_eq!(r.line(), "+OK\r\n");
    r.send(&["SYNC"]);
    let head = r.line();
    let mark = head
        .strip_prefix("$EOF:")
        .map(|m| m.trim_end().to_string())
        .unwrap_or_else(|| panic!("{head:?}"));
    assert_eq!(mark.len(), 40);
    let mut file = Vec::new();
    while !file.ends_with(mark.as_bytes()) {
        let mut b = [0u8; 1];
        r.0.read_exact(&mut b).expect("payload");
        file.push(b[0]);
    }
    assert!(file.starts_with(b"REDIS0010"));
    drop(r);
    // With repl-diskless-sync no, the same replica gets `$<len>`.
    ok(&mut c, &["CONFIG", "SET", "repl-diskless-sync", "no"]);
    let mut r = Raw::connect(port);
    r.send(&["REPLCONF", "capa", "eof"]);
    assert_eq!(r.line(), "+OK\r\n");
    r.send(&["SYNC"]);
    r.payload();
    drop(r);

    // repl-timeout: a PSYNC replica that never acknowledges is dropped.
    ok(&mut c, &["CONFIG", "SET", "repl-timeout", "1"]);
    let mut r = Raw::connect(port);
    assert!(r.psync("?", "-1").starts_with("+FULLRESYNC"));
    wait_until(10, "the replica to count", || {
        field(&info(port, "replication"), "connected_slaves").as_deref() == Some("1")
    });
    wait_until(20, "the silent replica to be dropped", || {
        field(&info(port, "replication"), "connected_slaves").as_deref() == Some("0")
    });
    // Its connection was closed.
    let mut rest = Vec::new();
    let _ = r.0.read_to_end(&mut rest);
    assert!(m.log().contains("timedout replica"), "{}", m.log());

    // repl-backlog-ttl: the backlog goes (with a new replication id) once no replica
    // has been attached for that long.
    let before = field(&info(port, "replication"), "master_replid").expect("replid");
    assert_eq!(
        field(&info(port, "replication"), "repl_backlog_active").as_deref(),
        Some("1")
    );
    ok(&mut c, &["CONFIG", "SET", "repl-backlog-ttl", "1"]);
    wait_until(20, "the backlog to be freed", || {
        field(&info(port, "replication"), "repl_backlog_active").as_deref() == Some("0")
    });
    let i = info(port, "replication");
    assert_ne!(field(&i, "master_replid"), Some(before));
    assert_eq!(field(&i, "repl_backlog_histlen").as_deref(), Some("0"));
    // Without a backlog, writes no longer move the offset.
    let off = field(&i, "master_repl_offset");
    ok(&mut c, &["SET", "k", "w"]);
    assert_eq!(field(&info(port, "replication"), "master_repl_offset"), off);
}

impl Raw {
    /// `REPLCONF capa eof`, SYNC, then the `$EOF:` payload: (mark, file).
    fn eof_sync_start(&mut self) {
        self.send(&["REPLCONF", "capa", "eof"]);
        assert_eq!(self.line(), "+OK\r\n");
        self.send(&["SYNC"]);
    }
    fn eof_payload(&mut self) -> (String, Vec<u8>) {
        let mut head = self.line();
        while head == "\n" {
            head = self.line();
        }
        let mark = head
            .strip_prefix("$EOF:")
            .map(|m| m.trim_end().to_string())
            .unwrap_or_else(|| panic!("{head:?}"));
        assert_eq!(mark.len(), 40);
        let mut file = Vec::new();
        let mut buf = [0u8; 65536];
        while !file.ends_with(mark.as_bytes()) {
            // Never past the mark: the file is all the replica is sent until it acks.
            let n = self.0.read(&mut buf).expect("payload");
            assert!(n > 0, "connection closed inside the payload");
            file.extend_from_slice(&buf[..n]);
        }
        file.truncate(file.len() - mark.len());
        (mark, file)
    }
}

/// Transfers started, from the log (one line per encoding).
fn transfers(m: &RedsnapServer) -> Vec<String> {
    m.log()
        .lines()
        .filter(|l| l.contains("starting the RDB transfer"))
        .map(str::to_string)
        .collect()
}

#[test]
fn replicas_asking_within_the_sync_delay_share_one_encoding() {
    let m = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let port = m.port();
    let mut c = client(port);
    populate(&mut c, 0, 5000);
    let got = ok(&mut c, &["CONFIG", "GET", "repl-diskless-sync-delay"]);
    assert_eq!(
        got.strings().expect("CONFIG GET"),
        vec![b"repl-diskless-sync-delay".to_vec(), b"0".to_vec()]
    );
    // redsnap's default: a lone replica's transfer starts at once.
    let mut a = Raw::connect(port);
    a.eof_sync_start();
    let (_, file) = a.eof_payload();
    assert!(file.starts_with(b"REDIS0010"));
    drop(a);
    assert_eq!(transfers(&m).len(), 1);

    // Two replicas asking within the delay get one encoding: the same mark, the
    // same bytes.
    ok(&mut c, &["CONFIG", "SET", "repl-diskless-sync-delay", "2"]);
    let (mut a, mut b) = (Raw::connect(port), Raw::connect(port));
    a.eof_sync_start();
    // The first one waits (INFO shows it as wait_bgsave) ...
    wait_until(10, "the first replica to wait", || {
        info(port, "replication").contains("state=wait_bgsave")
    });
    b.eof_sync_start();
    ok(&mut c, &["SET", "after", "the-request"]);
    let (ma, fa) = a.eof_payload();
    let (mb, fb) = b.eof_payload();
    assert_eq!(ma, mb, "one encoding, one mark");
    assert_eq!(fa, fb, "identical files");
    // ... and the file is the point in time of the transfer's start, after the SET.
    assert!(
        fa.windows(b"the-request".len())
            .any(|w| w == b"the-request"),
        "the write made while waiting is in the file"
    );
    let t = transfers(&m);
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t[1].contains("of 2 replica(s)"), "{t:?}");
    drop((a, b));

    // repl-diskless-sync-max-replicas: the transfer starts when that many wait,
    // without waiting for the delay.
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-diskless-sync-delay", "3600"],
    );
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-diskless-sync-max-replicas", "2"],
    );
    let (mut a, mut b) = (Raw::connect(port), Raw::connect(port));
    a.eof_sync_start();
    b.eof_sync_start();
    let (ma, fa) = a.eof_payload();
    let (mb, fb) = b.eof_payload();
    assert_eq!((ma, fa), (mb, fb));
    let t = transfers(&m);
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t[2].contains("of 2 replica(s)"), "{t:?}");
    // Replicas with different forms do not share: a `$<len>` one (no capa eof)
    // and an `$EOF:` one get a transfer each.
    ok(&mut c, &["CONFIG", "SET", "repl-diskless-sync-delay", "1"]);
    ok(
        &mut c,
        &["CONFIG", "SET", "repl-diskless-sync-max-replicas", "0"],
    );
    let (mut a, mut b) = (Raw::connect(port), Raw::connect(port));
    a.eof_sync_start();
    b.send(&["SYNC"]);
    let (_, fa) = a.eof_payload();
    b.payload();
    assert!(fa.starts_with(b"REDIS0010"));
    assert_eq!(transfers(&m).len(), 5);
}
