//! Persistence against the real binary (issue 4): restart round trips of every type
//! with TTLs in all 16 databases (SHUTDOWN, SIGTERM, SIGINT, log replay), `kill -9`
//! crash cycles that check every acknowledged write, a torn log tail, flipped bytes
//! in the log and in the snapshot (with and without `load-corrupt`), a full disk
//! (a 4 MB tmpfs when `mount` works), point-in-time snapshots under concurrent
//! MULTI writers, and a taken port / a locked or unwritable data directory.
//!
//! Every wait is bounded; every server is a child process killed on drop.

use rand::Rng;
use redsnap_testsupport::{encode_command, free_port, redsnap_bin, RedsnapServer};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// A small RESP2 client
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Arr(Option<Vec<R>>),
}

impl R {
    fn bulk(&self) -> Option<Vec<u8>> {
        match self {
            R::Bulk(b) => b.clone(),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }
    fn int(&self) -> i64 {
        match self {
            R::Int(i) => *i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }
    fn arr(&self) -> Vec<R> {
        match self {
            R::Arr(Some(a)) => a.clone(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
    fn bulks(&self) -> Vec<Vec<u8>> {
        self.arr()
            .iter()
            .map(|r| r.bulk().expect("nil in array"))
            .collect()
    }
    fn is_ok(&self) -> bool {
        matches!(self, R::Simple(s) if s == "OK")
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_reply(r: &mut impl BufRead) -> io::Result<R> {
    let line = read_line(r)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad reply");
    let (kind, rest) = line.split_at(1.min(line.len()));
    Ok(match kind {
        "+" => R::Simple(rest.to_string()),
        "-" => R::Err(rest.to_string()),
        ":" => R::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                R::Bulk(None)
            } else {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                R::Bulk(Some(buf))
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                R::Arr(None)
            } else {
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(read_reply(r)?);
                }
                R::Arr(Some(v))
            }
        }
        _ => return Err(bad()),
    })
}

struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> io::Result<Client> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let _ = s.set_nodelay(true);
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<R> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
        self.w.write_all(&encode_command(&args))?;
        read_reply(&mut self.r)
    }

    /// A command that must get a non-error reply.
    fn q<A: AsRef<[u8]>>(&mut self, args: &[A]) -> R {
        let r = self.call(args).unwrap_or_else(|e| {
            panic!(
                "{:?}: {e}",
                String::from_utf8_lossy(args[0].as_ref()).into_owned()
            )
        });
        if let R::Err(e) = &r {
            panic!(
                "{:?} answered an error: {e}",
                args.iter()
                    .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                    .collect::<Vec<_>>()
            );
        }
        r
    }

    /// Sends commands in batches of 500 and reads their replies; panics on errors.
    fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) {
        for chunk in cmds.chunks(500) {
            let mut buf = Vec::new();
            for c in chunk {
                let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
                buf.extend_from_slice(&encode_command(&args));
            }
            self.w.write_all(&buf).expect("pipeline write");
            for c in chunk {
                let r = read_reply(&mut self.r).expect("pipeline read");
                if let R::Err(e) = r {
                    panic!("{:?} failed: {e}", String::from_utf8_lossy(&c[0]));
                }
            }
        }
    }
}

fn cmd(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

fn q(port: u16, args: &[&str]) -> R {
    Client::connect(port).expect("connect").q(args)
}

fn info(port: u16) -> BTreeMap<String, String> {
    let raw = q(port, &["INFO", "persistence"]).bulk().expect("info");
    String::from_utf8_lossy(&raw)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn info_field(port: u16, field: &str) -> String {
    info(port)
        .get(field)
        .cloned()
        .unwrap_or_else(|| panic!("no {field} in INFO persistence"))
}

/// Waits (bounded) until no snapshot is in progress; returns `rdb_last_bgsave_status`.
fn wait_bgsave(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let i = info(port);
        if i.get("rdb_bgsave_in_progress").map(String::as_str) == Some("0") {
            return i["rdb_last_bgsave_status"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "snapshot still running after 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn server_log(s: &RedsnapServer) -> String {
    strip_ansi(&s.log())
}

fn start(dir: &Path, args: &[&str]) -> RedsnapServer {
    RedsnapServer::builder()
        .dir(dir)
        .extra_args(args)
        .start()
        .unwrap_or_else(|e| panic!("redsnap failed to start: {e:#}"))
}

/// Runs `redsnap serve --port P --bind 127.0.0.1 <args>` that is expected to fail at
/// startup; returns its exit status and its output (ANSI colours removed).
fn run_expect_failure(port: u16, args: &[&str]) -> (ExitStatus, String) {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out_path = out_dir.path().join("out");
    let out = File::create(&out_path).expect("out file");
    let mut child = Command::new(redsnap_bin().expect("redsnap binary"))
        .args(["serve", "--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn redsnap");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redsnap {args:?} kept running although it should have refused to start:\n{}",
                strip_ansi(&fs::read_to_string(&out_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = strip_ansi(&String::from_utf8_lossy(
        &fs::read(&out_path).unwrap_or_default(),
    ));
    (status, text)
}

// ---------------------------------------------------------------------------
// Dataset: every type, TTLs, 16 databases
// ---------------------------------------------------------------------------

/// (db, key) -> (type, normalised value, PEXPIRETIME)
type Dump = BTreeMap<(usize, Vec<u8>), (String, Vec<Vec<u8>>, i64)>;

fn dump(port: u16) -> Dump {
    let mut c = Client::connect(port).expect("connect");
    let mut out = Dump::new();
    for db in 0..16 {
        c.q(&["SELECT", &db.to_string()]);
        for key in c.q(&[&b"KEYS"[..], b"*"]).bulks() {
            let t = match c.q(&[&b"TYPE"[..], &key]) {
                R::Simple(t) => t,
                other => panic!("TYPE: {other:?}"),
            };
            let val: Vec<Vec<u8>> = match t.as_str() {
                "string" => vec![c.q(&[&b"GET"[..], &key]).bulk().expect("value")],
                "list" => c.q(&[&b"LRANGE"[..], &key, b"0", b"-1"]).bulks(),
                "hash" => {
                    let flat = c.q(&[&b"HGETALL"[..], &key]).bulks();
                    let mut pairs: Vec<Vec<u8>> = flat
                        .chunks(2)
                        .map(|p| [p[0].clone(), b"=".to_vec(), p[1].clone()].concat())
                        .collect();
                    pairs.sort();
                    pairs
                }
                "set" => {
                    let mut m = c.q(&[&b"SMEMBERS"[..], &key]).bulks();
                    m.sort();
                    m
                }
                "zset" => c
                    .q(&[&b"ZRANGE"[..], &key, b"0", b"-1", b"WITHSCORES"])
                    .bulks(),
                other => panic!("unexpected type {other}"),
            };
            let exp = c.q(&[&b"PEXPIRETIME"[..], &key]).int();
            out.insert((db, key), (t, val, exp));
        }
    }
    out
}

fn rand_bytes(rng: &mut impl Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// Fills all 16 databases with every type, with and without TTLs (deadlines 1 to 2
/// hours away), binary values, big values and special scores.
fn populate(port: u16) {
    let mut rng = rand::rng();
    let mut c = Client::connect(port).expect("connect");
    let hour = now_ms() + 3_600_000;
    for db in 0..16usize {
        let d = db.to_string();
        let mut cmds: Vec<Vec<Vec<u8>>> = vec![cmd(&["SELECT", &d])];
        let k = |name: &str| format!("{name}:{db}");
        // strings
        cmds.push(vec![
            b"SET".to_vec(),
            k("str").into_bytes(),
            [b"bin\0\r\n\xff".to_vec(), rand_bytes(&mut rng, 50)].concat(),
        ]);
        cmds.push(cmd(&[
            "SET",
            &k("str:ttl"),
            "with ttl",
            "PXAT",
            &(hour + db as u64).to_string(),
        ]));
        cmds.push(cmd(&["SET", &k("int"), "12345"]));
        cmds.push(cmd(&["INCRBY", &k("int"), &db.to_string()]));
        cmds.push(cmd(&["SET", &k("empty"), ""]));
        cmds.push(vec![
            b"SET".to_vec(),
            [&b"\x00bin\xffkey"[..], d.as_bytes()].concat(),
            b"binary key".to_vec(),
        ]);
        if db % 4 == 0 {
            cmds.push(vec![
                b"SET".to_vec(),
                k("big").into_bytes(),
                rand_bytes(&mut rng, 70_000),
            ]);
        }
        // list (quicklist-sized and small), with a TTL on one
        let mut rp = cmd(&["RPUSH", &k("list")]);
        for i in 0..300 {
            rp.push(format!("e{i}").into_bytes());
        }
        rp.push(Vec::new());
        rp.push(rand_bytes(&mut rng, 300));
        cmds.push(rp);
        cmds.push(cmd(&["LPUSH", &k("list"), "head1", "head2"]));
        cmds.push(cmd(&["RPUSH", &k("list:ttl"), "a", "b", "a"]));
        cmds.push(cmd(&[
            "PEXPIREAT",
            &k("list:ttl"),
            &(hour + 1000).to_string(),
        ]));
        // hash
        let mut hs = cmd(&["HSET", &k("hash")]);
        for i in 0..60 {
            hs.push(format!("f{i}").into_bytes());
            hs.push(if i == 7 {
                rand_bytes(&mut rng, 2000)
            } else {
                format!("v{i}").into_bytes()
            });
        }
        cmds.push(hs);
        cmds.push(cmd(&["HSET", &k("hash:ttl"), "x", "1", "y", "2"]));
        cmds.push(cmd(&["PEXPIRE", &k("hash:ttl"), "5400000"]));
        // sets: integers and strings
        let mut si = cmd(&["SADD", &k("set:int")]);
        si.extend((0..100).map(|i| (i * 7 - 300).to_string().into_bytes()));
        cmds.push(si);
        let mut ss = cmd(&["SADD", &k("set")]);
        ss.extend((0..150).map(|i| format!("member-{i}").into_bytes()));
        cmds.push(ss);
        cmds.push(cmd(&["PEXPIREAT", &k("set"), &(hour + 2000).to_string()]));
        // sorted sets with special scores
        cmds.push(cmd(&[
            "ZADD",
            &k("zset"),
            "-inf",
            "neg-inf",
            "+inf",
            "pos-inf",
            "0",
            "zero",
            "-0.5",
            "neg-half",
            "1e300",
            "huge",
            "3.141592653589793",
            "pi",
            "1.5e-300",
            "tiny",
        ]));
        let mut zb = cmd(&["ZADD", &k("zset:big")]);
        for i in 0..200 {
            zb.push(format!("{}", i as f64 * 1.25).into_bytes());
            zb.push(format!("m{i}").into_bytes());
        }
        cmds.push(zb);
        cmds.push(cmd(&[
            "PEXPIREAT",
            &k("zset:big"),
            &(hour + 3000).to_string(),
        ]));
        c.pipeline(&cmds);
    }
}

/// Writes keys of every type that expire at `deadline` (one set per database);
/// returns how many.
fn populate_short_lived(port: u16, deadline: u64) -> u64 {
    let mut c = Client::connect(port).expect("connect");
    let dl = deadline.to_string();
    let mut n = 0;
    for db in 0..16usize {
        let mut cmds = vec![cmd(&["SELECT", &db.to_string()])];
        cmds.push(cmd(&["SET", &format!("short:str:{db}"), "x", "PXAT", &dl]));
        cmds.push(cmd(&["RPUSH", &format!("short:list:{db}"), "1", "2"]));
        cmds.push(cmd(&["PEXPIREAT", &format!("short:list:{db}"), &dl]));
        cmds.push(cmd(&["ZADD", &format!("short:zset:{db}"), "1", "a"]));
        cmds.push(cmd(&["PEXPIREAT", &format!("short:zset:{db}"), &dl]));
        c.pipeline(&cmds);
        n += 3;
    }
    n
}

fn assert_same(expected: &Dump, got: &Dump, ttl_tolerance_ms: i64) {
    let ek: BTreeSet<_> = expected.keys().collect();
    let gk: BTreeSet<_> = got.keys().collect();
    let missing: Vec<_> = ek.difference(&gk).take(10).collect();
    let extra: Vec<_> = gk.difference(&ek).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "keys differ after restart: missing {missing:?}, unexpected {extra:?}"
    );
    for (k, (t, v, exp)) in expected {
        let (t2, v2, exp2) = &got[k];
        assert_eq!(t, t2, "type of {k:?}");
        assert!(v == v2, "value of {k:?} ({t}) differs after restart");
        if *exp < 0 {
            assert_eq!(*exp2, *exp, "{k:?} gained a TTL");
        } else {
            assert!(
                (*exp2 - *exp).abs() <= ttl_tolerance_ms,
                "deadline of {k:?} moved: {exp} -> {exp2} (must be kept as an absolute time)"
            );
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Shutdown,
    Term,
    Int,
}

/// Stops the server the given way and checks it exits with status 0.
fn stop(server: &mut RedsnapServer, how: Stop) {
    match how {
        Stop::Shutdown => {
            // The server closes the connection (no reply) when it exits.
            if let Ok(mut c) = Client::connect(server.port()) {
                if let Ok(R::Err(e)) = c.call(&["SHUTDOWN"]) {
                    panic!("SHUTDOWN refused: {e}");
                }
            }
        }
        Stop::Term => server.signal("TERM").expect("SIGTERM"),
        Stop::Int => server.signal("INT").expect("SIGINT"),
    }
    let status = server
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("server did not exit within 30 s after {how:?}"));
    assert!(
        status.success(),
        "exit status after {how:?}: {status}; log:\n{}",
        server_log(server)
    );
}

/// Writes the dataset, stops the server `how`, waits past the short keys' deadline,
/// restarts and compares. Returns the server (running).
fn round_trip(dir: &Path, args: &[&str], stops: &[Stop]) -> RedsnapServer {
    let mut server = start(dir, args);
    populate(server.port());
    for (round, how) in stops.iter().enumerate() {
        let port = server.port();
        if round > 0 {
            // A snapshot, then changes after it: the final snapshot at the stop is then
            // incremental (snapshot-incremental is on by default) and must carry
            // deletions, TTL changes and updates; without one, the log must.
            let mut c = Client::connect(port).expect("connect");
            assert!(c.q(&["SAVE"]).is_ok());
            c.q(&["SELECT", "3"]);
            c.q(&["DEL", "hash:3"]);
            c.q(&["RPUSH", "list:3", &format!("round{round}")]);
            c.q(&["SET", &format!("round:{round}"), "v", "PX", "7200000"]);
            c.q(&["ZINCRBY", "zset:3", "2.5", "zero"]);
            c.q(&["PERSIST", "str:ttl:3"]);
        }
        let expected = dump(port);
        assert!(
            expected.len() > 16 * 12,
            "dataset too small: {}",
            expected.len()
        );
        let deadline = now_ms() + 1200;
        let short = populate_short_lived(port, deadline);
        assert_eq!(dump(port).len(), expected.len() + short as usize);
        stop(&mut server, *how);
        let stopped_before_deadline = now_ms() + 50 < deadline;
        // Stay down past the deadline, and long enough that a TTL stored as
        // "remaining time" would visibly move.
        let wait = (deadline + 300).saturating_sub(now_ms()).max(1000);
        std::thread::sleep(Duration::from_millis(wait));
        server.restart().expect("restart");
        let got = dump(server.port());
        assert_same(&expected, &got, 50);
        if stopped_before_deadline {
            let dropped: u64 = info_field(server.port(), "expired_keys_at_load")
                .parse()
                .expect("expired_keys_at_load");
            assert!(
                dropped >= short,
                "{short} keys expired while the server was down but only {dropped} were dropped at load"
            );
        }
    }
    server
}

#[test]
fn round_trip_every_type_with_ttls_in_16_dbs_via_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No append log: everything must come from the final snapshot.
    let server = round_trip(
        dir.path(),
        &["--appendonly", "no", "--save", "900 1"],
        &[Stop::Shutdown, Stop::Shutdown],
    );
    assert_eq!(info_field(server.port(), "aof_enabled"), "0");
}

#[test]
fn round_trip_every_type_with_ttls_in_16_dbs_via_sigterm_and_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trip(
        dir.path(),
        &["--appendonly", "no", "--save", "900 1"],
        &[Stop::Term, Stop::Int],
    );
}

#[test]
fn round_trip_from_the_append_log_alone_via_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Round 1: no snapshot at all, the log replay must rebuild every type and
    // deadline; round 2: a SAVE, then changes only in the log.
    let server = round_trip(
        dir.path(),
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--snapshot-interval",
            "0",
            "--snapshot-on-shutdown",
            "no",
        ],
        &[Stop::Term, Stop::Shutdown],
    );
    assert_eq!(info_field(server.port(), "rdb_saves"), "0");
}

// ---------------------------------------------------------------------------
// kill -9 crash cycles
// ---------------------------------------------------------------------------

/// What one writer had acknowledged, and what it had sent without an answer.
#[derive(Debug, Default, Clone)]
struct Writer {
    t: usize,
    seq: u64,
    set_acked: Option<u64>,
    set_inflight: Option<u64>,
    incr_acked: i64,
    incr_inflight: bool,
    list_acked: Vec<u64>,
    list_inflight: Option<u64>,
    hash_acked: BTreeSet<u64>,
    hash_inflight: Option<u64>,
    multi_acked: Option<u64>,
    multi_inflight: Option<u64>,
    acks: u64,
    errors: Vec<String>,
}

impl Writer {
    fn key(&self, kind: &str) -> String {
        format!("{kind}:w{}", self.t)
    }

    /// Writes until the connection fails (the server was killed) or `stop`.
    fn run(mut self, port: u16, stop: Arc<AtomicBool>) -> Writer {
        let Ok(mut c) = Client::connect(port) else {
            return self;
        };
        let mut op = self.seq as usize;
        while !stop.load(Ordering::Relaxed) {
            self.seq += 1;
            let s = self.seq;
            let sv = s.to_string();
            let res: io::Result<bool> = match op % 5 {
                0 => {
                    self.set_inflight = Some(s);
                    c.call(&["SET", &self.key("s"), &sv]).map(|r| {
                        let ok = r.is_ok();
                        if ok {
                            self.set_acked = self.set_inflight.take();
                        } else {
                            self.errors.push(format!("SET: {r:?}"));
                        }
                        ok
                    })
                }
                1 => {
                    self.incr_inflight = true;
                    c.call(&["INCR", &self.key("c")]).map(|r| match r {
                        R::Int(v) if v == self.incr_acked + 1 => {
                            self.incr_acked = v;
                            self.incr_inflight = false;
                            true
                        }
                        other => {
                            self.errors.push(format!(
                                "INCR answered {other:?}, expected {}",
                                self.incr_acked + 1
                            ));
                            false
                        }
                    })
                }
                2 => {
                    self.list_inflight = Some(s);
                    c.call(&["RPUSH", &self.key("l"), &sv]).map(|r| match r {
                        R::Int(n) if n as usize == self.list_acked.len() + 1 => {
                            self.list_acked.push(s);
                            self.list_inflight = None;
                            true
                        }
                        other => {
                            self.errors.push(format!("RPUSH: {other:?}"));
                            false
                        }
                    })
                }
                3 => {
                    self.hash_inflight = Some(s);
                    c.call(&["HSET", &self.key("h"), &format!("f{s}"), &sv])
                        .map(|r| match r {
                            R::Int(1) => {
                                self.hash_acked.insert(s);
                                self.hash_inflight = None;
                                true
                            }
                            other => {
                                self.errors.push(format!("HSET: {other:?}"));
                                false
                            }
                        })
                }
                _ => {
                    self.multi_inflight = Some(s);
                    let (a, b, cc) = (self.key("ma"), self.key("mb"), self.key("mc"));
                    let r = (|| -> io::Result<R> {
                        for args in [
                            vec!["MULTI"],
                            vec!["SET", &a, &sv],
                            vec!["SET", &b, &sv],
                            vec!["SET", &cc, &sv],
                        ] {
                            let r = c.call(&args)?;
                            if let R::Err(e) = r {
                                return Ok(R::Err(e));
                            }
                        }
                        c.call(&["EXEC"])
                    })();
                    r.map(|r| match r {
                        R::Arr(Some(items)) if items.len() == 3 && items.iter().all(R::is_ok) => {
                            self.multi_acked = self.multi_inflight.take();
                            true
                        }
                        other => {
                            self.errors.push(format!("MULTI/EXEC: {other:?}"));
                            false
                        }
                    })
                }
            };
            match res {
                Ok(true) => self.acks += 1,
                Ok(false) | Err(_) => return self,
            }
            op += 1;
        }
        self
    }

    /// After a restart: every acknowledged write is there; at most the one write in
    /// flight at the kill may or may not be. Then takes what is there as the new
    /// baseline.
    fn verify(&mut self, port: u16, cycle: usize) {
        let mut c = Client::connect(port).expect("connect after restart");
        let ctx = format!("cycle {cycle}, writer {}", self.t);
        let num = |b: Option<Vec<u8>>| -> Option<u64> {
            b.map(|v| String::from_utf8(v).expect("utf8").parse().expect("number"))
        };
        // SET
        let v = num(c.q(&["GET", &self.key("s")]).bulk());
        assert!(
            v == self.set_acked || (v.is_some() && v == self.set_inflight),
            "{ctx}: SET {} is {v:?}, acknowledged {:?} (in flight {:?})",
            self.key("s"),
            self.set_acked,
            self.set_inflight
        );
        self.set_acked = v;
        self.set_inflight = None;
        // INCR
        let v = num(c.q(&["GET", &self.key("c")]).bulk()).unwrap_or(0) as i64;
        assert!(
            v == self.incr_acked || (self.incr_inflight && v == self.incr_acked + 1),
            "{ctx}: counter {} is {v}, acknowledged {} (in flight: {})",
            self.key("c"),
            self.incr_acked,
            self.incr_inflight
        );
        self.incr_acked = v;
        self.incr_inflight = false;
        // RPUSH
        let list: Vec<u64> = c
            .q(&["LRANGE", &self.key("l"), "0", "-1"])
            .bulks()
            .into_iter()
            .map(|b| num(Some(b)).expect("element"))
            .collect();
        let with_inflight: Option<Vec<u64>> = self
            .list_inflight
            .map(|x| [self.list_acked.clone(), vec![x]].concat());
        if list != self.list_acked && Some(&list) != with_inflight.as_ref() {
            let missing: Vec<_> = self
                .list_acked
                .iter()
                .filter(|x| !list.contains(x))
                .take(10)
                .collect();
            panic!(
                "{ctx}: list {} has {} elements, {} acknowledged; missing acknowledged pushes {missing:?}; last {:?} vs acknowledged last {:?}",
                self.key("l"),
                list.len(),
                self.list_acked.len(),
                list.last(),
                self.list_acked.last()
            );
        }
        self.list_acked = list;
        self.list_inflight = None;
        // HSET
        let flat = c.q(&["HGETALL", &self.key("h")]).bulks();
        let mut fields = BTreeSet::new();
        for p in flat.chunks(2) {
            let f: u64 = String::from_utf8_lossy(&p[0])[1..].parse().expect("field");
            assert_eq!(num(Some(p[1].clone())), Some(f), "{ctx}: hash value");
            fields.insert(f);
        }
        let missing: Vec<_> = self.hash_acked.difference(&fields).take(10).collect();
        assert!(
            missing.is_empty(),
            "{ctx}: acknowledged HSET fields missing: {missing:?}"
        );
        let extra: Vec<_> = fields
            .difference(&self.hash_acked)
            .filter(|f| Some(**f) != self.hash_inflight)
            .collect();
        assert!(extra.is_empty(), "{ctx}: fields never written: {extra:?}");
        self.hash_acked = fields;
        self.hash_inflight = None;
        // MULTI: the three keys always agree and hold the acknowledged value (or the
        // one in flight).
        let vals: Vec<Option<u64>> = c
            .q(&["MGET", &self.key("ma"), &self.key("mb"), &self.key("mc")])
            .arr()
            .into_iter()
            .map(|r| num(r.bulk()))
            .collect();
        assert!(
            vals[0] == vals[1] && vals[1] == vals[2],
            "{ctx}: a MULTI/EXEC was applied partly: {vals:?}"
        );
        assert!(
            vals[0] == self.multi_acked || (vals[0].is_some() && vals[0] == self.multi_inflight),
            "{ctx}: MULTI keys hold {:?}, acknowledged {:?} (in flight {:?})",
            vals[0],
            self.multi_acked,
            self.multi_inflight
        );
        self.multi_acked = vals[0];
        self.multi_inflight = None;
    }
}

fn crash_cycles(policy: &str, extra: &[&str], cycles: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--appendonly", "yes", "--appendfsync", policy];
    args.extend_from_slice(extra);
    let mut server = start(dir.path(), &args);
    let started = Instant::now();
    let mut writers: Vec<Writer> = (0..4)
        .map(|t| Writer {
            t,
            ..Default::default()
        })
        .collect();
    let mut rng = rand::rng();
    let mut total_acks = 0;
    let mut snapshots = 0;
    for cycle in 0..cycles {
        let port = server.port();
        let stop_flag = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = writers
            .drain(..)
            .map(|w| {
                let stop_flag = stop_flag.clone();
                std::thread::spawn(move || w.run(port, stop_flag))
            })
            .collect();
        // Kill at a random moment of 0.3 to 1.8 s of writing (snapshots rotate the log
        // every second meanwhile: counted below).
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1800)));
        snapshots += q(port, &["INFO", "persistence"])
            .bulk()
            .map(|raw| {
                let raw = String::from_utf8_lossy(&raw).into_owned();
                raw.lines()
                    .find_map(|l| l.strip_prefix("rdb_saves:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        server.kill_9();
        stop_flag.store(true, Ordering::Relaxed);
        let mut acks = 0;
        for h in handles {
            let w = h.join().expect("writer thread");
            assert!(
                w.errors.is_empty(),
                "cycle {cycle}: unexpected replies {:?}",
                w.errors
            );
            acks += w.acks;
            writers.push(w);
        }
        total_acks += acks;
        writers.sort_by_key(|w| w.t);
        server
            .restart()
            .unwrap_or_else(|e| panic!("cycle {cycle}: restart after kill -9 failed: {e:#}"));
        let dbsize = q(server.port(), &["DBSIZE"]).int();
        assert!(
            total_acks == 0 || dbsize > 0,
            "cycle {cycle}: empty start after {total_acks} acknowledged writes"
        );
        for w in writers.iter_mut() {
            w.acks = 0;
            w.verify(server.port(), cycle);
        }
    }
    assert!(
        total_acks >= cycles as u64 * 10,
        "too few acknowledged writes to mean anything: {total_acks}"
    );
    assert!(
        snapshots >= cycles as u64 / 2,
        "{snapshots} snapshots during {cycles} cycles"
    );
    eprintln!(
        "{policy}: {cycles} kill -9 cycles, {total_acks} acknowledged writes, {snapshots} snapshots rotating the log during the writes, all recovered, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Save points that fire every second (the cron checks every 100 ms), so the log is
/// rotated by a snapshot about once a second during the writes, and kills also land
/// during snapshots, rotations and compactions. "Acknowledged" means a reply was
/// received: under every policy the bytes were in the kernel before it, so a process
/// crash loses none of them; under `always` they were also fsynced.
#[test]
fn kill_9_loses_no_acknowledged_write_appendfsync_always_with_snapshots() {
    crash_cycles("always", &["--save", "1 1"], 20);
}

#[test]
fn kill_9_loses_no_acknowledged_write_appendfsync_everysec_with_snapshots() {
    crash_cycles("everysec", &["--save", "1 1"], 20);
}

/// Under `appendfsync always` a reply leaves only after its write is fsynced, so one
/// client's N sequential writes need at least N fsyncs (group commit can only merge
/// writes that are waiting at the same time). A process crash cannot show the
/// difference (the bytes are in the kernel either way); an OS crash or power loss can.
#[test]
fn appendfsync_always_replies_only_after_the_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(
        dir.path(),
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--snapshot-interval",
            "0",
        ],
    );
    let port = server.port();
    let fsyncs = || -> u64 { info_field(port, "aof_fsyncs").parse().expect("aof_fsyncs") };
    let before = fsyncs();
    let mut c = Client::connect(port).expect("connect");
    let n = 300;
    for i in 0..n {
        assert!(c.q(&["SET", &format!("k{i}"), "v"]).is_ok());
    }
    let done = fsyncs() - before;
    assert!(
        done >= n,
        "{n} sequential acknowledged writes under appendfsync always, but only {done} fsyncs: replies are sent before their write is durable"
    );
}

// ---------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------

const LOG_ONLY: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--snapshot-interval",
    "0",
    "--snapshot-on-shutdown",
    "no",
];

/// The log generations in `dir`, oldest first.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            let gen = name.strip_prefix("appendonly.")?.strip_suffix(".log")?;
            Some((gen.parse().ok()?, p))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// (offset, total length) of every frame of a log file (24-byte file header, then
/// 12-byte frame headers starting with the payload length, u32 LE).
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let b = fs::read(path).expect("read log");
    let mut out = Vec::new();
    let mut pos = 24usize;
    while pos + 12 <= b.len() {
        let len = u32::from_le_bytes(b[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if pos + 12 + len > b.len() {
            break;
        }
        out.push((pos as u64, (12 + len) as u64));
        pos += 12 + len;
    }
    out
}

/// Writes `n` keys one command (one log frame) each, then stops with SIGTERM (no
/// snapshot); returns the log file holding them and its frames.
fn log_with_keys(dir: &Path, n: usize) -> (PathBuf, Vec<(u64, u64)>) {
    let mut server = start(dir, LOG_ONLY);
    let mut c = Client::connect(server.port()).expect("connect");
    for i in 0..n {
        assert!(c
            .q(&["SET", &format!("k:{i}"), &format!("value-{i}")])
            .is_ok());
    }
    stop(&mut server, Stop::Term);
    let file = log_files(dir)
        .into_iter()
        .rev()
        .find(|p| frames(p).len() >= n)
        .expect("a log file holding the writes");
    let fr = frames(&file);
    assert_eq!(fr.len(), n, "one frame per write");
    (file, fr)
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).expect("write");
    f.sync_all().expect("fsync");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn torn_log_tail_is_cut_with_a_log_line_saying_how_many_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 40;
    let (file, fr) = log_with_keys(dir.path(), n);
    let (last_off, last_len) = *fr.last().expect("frames");
    let file_len = fs::metadata(&file).expect("stat").len();
    assert_eq!(last_off + last_len, file_len);
    // Cut the last frame in the middle, as a crash during write(2) would.
    let cut_from_end = 5;
    OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(file_len - cut_from_end)
        .expect("truncate");
    let torn = last_len - cut_from_end;

    // With aof-load-truncated no, a torn tail is an error.
    let mut strict = vec!["--dir", dir.path().to_str().expect("utf8")];
    strict.extend_from_slice(LOG_ONLY);
    strict.extend_from_slice(&["--aof-load-truncated", "no"]);
    let (status, out) = run_expect_failure(free_port(), &strict);
    assert!(!status.success());
    assert!(
        out.contains(file.to_str().expect("utf8")) && out.contains(&format!("offset {last_off}")),
        "the refusal must name the file and offset:\n{out}"
    );

    // By default it is cut, with a log line, and everything before it is there.
    let server = start(dir.path(), LOG_ONLY);
    let log = server_log(&server);
    let line = format!("truncating {torn} bytes at offset {last_off}");
    assert!(
        log.contains(&line),
        "expected a log line with '{line}':\n{log}"
    );
    assert_eq!(
        fs::metadata(&file).expect("stat").len(),
        last_off,
        "file cut at the torn frame"
    );
    let port = server.port();
    assert_eq!(q(port, &["DBSIZE"]).int(), n as i64 - 1);
    for i in 0..n - 1 {
        assert_eq!(
            q(port, &["GET", &format!("k:{i}")]).bulk(),
            Some(format!("value-{i}").into_bytes())
        );
    }
    assert_eq!(q(port, &["GET", &format!("k:{}", n - 1)]).bulk(), None);
}

#[test]
fn flipped_byte_in_the_middle_of_the_log_stops_startup_and_load_corrupt_loads_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100;
    let (file, fr) = log_with_keys(dir.path(), n);
    // A second copy for damage to a frame header (its length field).
    let dir2 = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), dir2.path());
    let file2 = dir2.path().join(file.file_name().expect("name"));

    let (off50, _) = fr[50];
    flip(&file, off50 + 12 + 3); // payload byte of frame 50
    let (off70, _) = fr[70];
    flip(&file2, off70 + 1); // length byte of frame 70

    for (d, f, off, what) in [
        (dir.path(), &file, off50, "frame checksum mismatch"),
        (dir2.path(), &file2, off70, "frame header checksum mismatch"),
    ] {
        let mut args = vec!["--dir", d.to_str().expect("utf8")];
        args.extend_from_slice(LOG_ONLY);
        let (status, out) = run_expect_failure(free_port(), &args);
        assert!(!status.success(), "must not start on a damaged log");
        let want = format!(
            "corrupt append log {} at byte offset {off}",
            f.to_str().expect("utf8")
        );
        assert!(out.contains(&want), "expected '{want}' in:\n{out}");
        assert!(out.contains(what), "expected '{what}' in:\n{out}");
    }

    // load-corrupt yes: loads the records before the damage, keeps the damaged file.
    let mut args = LOG_ONLY.to_vec();
    args.extend_from_slice(&["--load-corrupt", "yes"]);
    let mut server = start(dir.path(), &args);
    let port = server.port();
    assert_eq!(q(port, &["DBSIZE"]).int(), 50);
    for i in 0..50 {
        assert_eq!(
            q(port, &["GET", &format!("k:{i}")]).bulk(),
            Some(format!("value-{i}").into_bytes())
        );
    }
    let kept = fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".corrupt"));
    assert!(kept, "the damaged log must be kept as *.corrupt");
    assert!(q(port, &["SET", "after", "1"]).is_ok());
    stop(&mut server, Stop::Term);
    // The next normal start loads what load-corrupt kept, plus later writes.
    let server = start(dir.path(), LOG_ONLY);
    assert_eq!(q(server.port(), &["DBSIZE"]).int(), 51);
}

/// Keys for the snapshot corruption test: the value is derived from the key.
fn snap_value(i: usize) -> String {
    format!("{i:08}-{}", "v".repeat(90))
}

#[test]
fn flipped_byte_in_the_snapshot_stops_startup_and_load_corrupt_loads_what_is_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--appendonly", "no", "--save", "900 1"];
    let n = 20_000;
    {
        let mut server = start(dir.path(), &args);
        let mut c = Client::connect(server.port()).expect("connect");
        let cmds: Vec<_> = (0..n)
            .map(|i| cmd(&["SET", &format!("key:{i}"), &snap_value(i)]))
            .collect();
        c.pipeline(&cmds);
        assert!(c.q(&["SAVE"]).is_ok());
        server.kill_9();
    }
    // The biggest table file of the snapshot store holds the entries.
    let mut tables = Vec::new();
    let mut stack = vec![dir.path().join("snapshot")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(|p| p.file_name()) == Some("tables".as_ref()) {
                tables.push((fs::metadata(&p).expect("stat").len(), p));
            }
        }
    }
    tables.sort();
    let (size, table) = tables.pop().expect("a table file");
    assert!(size > 1_000_000, "table too small: {size}");
    let offset = size / 2;
    flip(&table, offset);
    let keyspace_dir = table
        .parent()
        .and_then(Path::parent)
        .expect("keyspace dir")
        .to_str()
        .expect("utf8")
        .to_string();

    let mut a = vec!["--dir", dir.path().to_str().expect("utf8")];
    a.extend_from_slice(&args);
    let (status, out) = run_expect_failure(free_port(), &a);
    assert!(
        !status.success(),
        "must not start (nor start empty) on a damaged snapshot"
    );
    assert!(
        out.contains("corrupt snapshot in")
            && out.contains(&keyspace_dir)
            && out.contains(table.to_str().expect("utf8")),
        "the error must name the damaged store ({keyspace_dir}) and its table file:\n{out}"
    );
    assert!(
        out.to_lowercase().contains("checksum") && out.contains("offset"),
        "the output must say where the damage is:\n{out}"
    );

    // load-corrupt yes: starts with the entries that verify; every one is right.
    let mut a2 = args.to_vec();
    a2.extend_from_slice(&["--load-corrupt", "yes"]);
    let mut server = start(dir.path(), &a2);
    let port = server.port();
    let loaded = q(port, &["DBSIZE"]).int();
    assert!(
        loaded > 0 && loaded < n as i64,
        "expected part of the {n} keys, got {loaded}"
    );
    let mut c = Client::connect(port).expect("connect");
    let keys = c.q(&["KEYS", "*"]).bulks();
    for k in keys {
        let i: usize = String::from_utf8_lossy(&k)["key:".len()..]
            .parse()
            .expect("key");
        assert_eq!(
            c.q(&[&b"GET"[..], &k]).bulk(),
            Some(snap_value(i).into_bytes())
        );
    }
    assert!(
        server_log(&server).contains("load-corrupt"),
        "damage must be logged"
    );
    stop(&mut server, Stop::Term);
    // A normal start afterwards works (the damage was replaced by a good snapshot).
    let server = start(dir.path(), &args);
    assert_eq!(q(server.port(), &["DBSIZE"]).int(), loaded);
}

// ---------------------------------------------------------------------------
// Full disk
// ---------------------------------------------------------------------------

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem with `filler` until ENOSPC, then shrinks it to leave `free`.
fn fill_disk(filler: &Path, free: u64) {
    let mut f = File::create(filler).expect("create filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
    f.set_len(written.saturating_sub(free))
        .expect("shrink filler");
    f.sync_all().expect("fsync filler");
}

fn big_dataset(port: u16, n: usize) {
    let mut rng = rand::rng();
    let mut c = Client::connect(port).expect("connect");
    let cmds: Vec<_> = (0..n)
        .map(|i| {
            vec![
                b"SET".to_vec(),
                format!("big:{i}").into_bytes(),
                rand_bytes(&mut rng, 1024),
            ]
        })
        .collect();
    c.pipeline(&cmds);
}

fn assert_misconf(port: u16) {
    match Client::connect(port)
        .expect("connect")
        .call(&["SET", "refused", "1"])
    {
        Ok(R::Err(e)) => assert!(e.starts_with("MISCONF"), "expected MISCONF, got {e}"),
        other => panic!("a write must be refused with MISCONF, got {other:?}"),
    }
}

#[test]
fn full_disk_fails_the_snapshot_visibly_refuses_writes_and_recovers() {
    let root = tempfile::tempdir().expect("tempdir");
    let mnt = root.path().join("mnt");
    fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::piped())
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED full_disk test: mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED full_disk test: cannot run mount: {e}");
            return;
        }
    }
    let _mount = Mount(mnt.clone());
    let data = mnt.join("data");
    let filler = mnt.join("filler");
    let args = [
        "--appendonly",
        "no",
        "--save",
        "900 1",
        "--stop-writes-on-bgsave-error",
        "yes",
    ];
    let mut server = start(&data, &args);
    let port = server.port();
    // The previous snapshot: 100 small keys.
    let mut c = Client::connect(port).expect("connect");
    let small: Vec<_> = (0..100)
        .map(|i| cmd(&["SET", &format!("small:{i}"), &format!("v{i}")]))
        .collect();
    c.pipeline(&small);
    assert!(c.q(&["SAVE"]).is_ok());
    let before = dump(port);

    // Fill the disk, add 1 MB of incompressible data, BGSAVE.
    fill_disk(&filler, 256 * 1024);
    big_dataset(port, 1000);
    let r = q(port, &["BGSAVE"]);
    assert_eq!(r, R::Simple("Background saving started".into()));
    assert_eq!(
        wait_bgsave(port),
        "err",
        "the snapshot must fail on a full disk"
    );
    let i = info(port);
    assert!(
        !i["rdb_last_error"].is_empty(),
        "rdb_last_error must say why"
    );
    assert!(i["rdb_failures"] != "0");
    assert!(server_log(&server).contains("snapshot failed"));
    assert_misconf(port);
    assert!(
        q(port, &["GET", "small:1"]).bulk().is_some(),
        "reads still work"
    );

    // The previous snapshot is intact: kill, free space, restart.
    server.kill_9();
    fs::remove_file(&filler).expect("rm filler");
    server.restart().expect("restart after a failed snapshot");
    let port = server.port();
    assert_same(&before, &dump(port), 0);

    // Fail again, then recover in the same process when space returns.
    fill_disk(&filler, 256 * 1024);
    big_dataset(port, 1000);
    assert!(q(port, &["BGSAVE"]) == R::Simple("Background saving started".into()));
    assert_eq!(wait_bgsave(port), "err");
    assert_misconf(port);
    fs::remove_file(&filler).expect("rm filler");
    assert!(q(port, &["BGSAVE"]) == R::Simple("Background saving started".into()));
    assert_eq!(
        wait_bgsave(port),
        "ok",
        "the snapshot must succeed once space returns:\n{}",
        server_log(&server)
    );
    assert!(
        q(port, &["SET", "accepted", "1"]).is_ok(),
        "writes accepted again"
    );
    stop(&mut server, Stop::Shutdown);
    server.restart().expect("restart");
    assert_eq!(q(server.port(), &["DBSIZE"]).int(), 100 + 1000 + 1);
}

/// Mounts a 4 MB tmpfs under `root`, or explains why not (the caller skips).
fn mount_tmpfs(root: &Path) -> Result<Mount, String> {
    let mnt = root.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    match Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::piped())
        .output()
    {
        Ok(o) if o.status.success() => Ok(Mount(mnt)),
        Ok(o) => Err(format!(
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run mount: {e}")),
    }
}

#[test]
fn full_disk_fails_log_writes_visibly_and_recovers_when_space_returns() {
    let root = tempfile::tempdir().expect("tempdir");
    let mount = match mount_tmpfs(root.path()) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full-disk log test: {why}");
            return;
        }
    };
    let data = mount.0.join("data");
    let filler = mount.0.join("filler");
    let mut server = start(
        &data,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--snapshot-interval",
            "0",
        ],
    );
    let port = server.port();
    assert!(q(port, &["SET", "before", "1"]).is_ok());
    fill_disk(&filler, 0);
    // Writes until one fails: it must not be acknowledged.
    let mut rng = rand::rng();
    let mut acked = Vec::new();
    let mut failed = false;
    for i in 0..200 {
        let mut c = Client::connect(port).expect("connect");
        let v = rand_bytes(&mut rng, 64 * 1024);
        match c.call(&[format!("fill:{i}").into_bytes(), v.clone()].iter().fold(
            vec![b"SET".to_vec()],
            |mut a, x| {
                a.push(x.clone());
                a
            },
        )) {
            Ok(R::Simple(s)) if s == "OK" => acked.push((i, v)),
            Ok(R::Err(e)) => {
                assert!(e.starts_with("MISCONF"), "unexpected error {e}");
                failed = true;
                break;
            }
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a full disk must make a log write fail");
    assert_eq!(info_field(port, "aof_last_write_status"), "err");
    assert_misconf(port);
    // Space returns: writes are accepted again without a restart.
    fs::remove_file(&filler).expect("rm filler");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(port)
            .expect("connect")
            .call(&["SET", "after", "1"])
        {
            Ok(r) if r.is_ok() => break,
            other => assert!(
                Instant::now() < deadline,
                "writes still refused 10 s after space returned: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(info_field(port, "aof_last_write_status"), "ok");
    // Every acknowledged write survives a crash.
    server.kill_9();
    server.restart().expect("restart");
    for (i, v) in acked {
        assert_eq!(
            q(server.port(), &["GET", &format!("fill:{i}")]).bulk(),
            Some(v)
        );
    }
    assert!(q(server.port(), &["GET", "after"]).bulk().is_some());
}

// ---------------------------------------------------------------------------
// Point-in-time snapshots
// ---------------------------------------------------------------------------

const PIT_KEYS: usize = 8;

/// Writes `pit:0..8` (spread over the keyspace) to the same value in one MULTI,
/// forever; `acked` is the last value whose EXEC was answered.
fn pit_writer(port: u16, start: u64, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Ok(mut c) = Client::connect(port) else {
        return;
    };
    let mut i = start;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let v = i.to_string();
        let mut ok = c.call(&["MULTI"]).is_ok();
        for k in 0..PIT_KEYS {
            ok = ok && c.call(&["SET", &format!("pit:{k}"), &v]).is_ok();
        }
        match c.call(&["EXEC"]) {
            Ok(R::Arr(Some(a))) if ok && a.len() == PIT_KEYS => acked.store(i, Ordering::SeqCst),
            _ => return,
        }
    }
}

fn pit_values(port: u16) -> Vec<Option<u64>> {
    let keys: Vec<String> = (0..PIT_KEYS).map(|k| format!("pit:{k}")).collect();
    let mut args = vec!["MGET"];
    args.extend(keys.iter().map(String::as_str));
    q(port, &args)
        .arr()
        .into_iter()
        .map(|r| {
            r.bulk()
                .map(|b| String::from_utf8_lossy(&b).parse().expect("number"))
        })
        .collect()
}

fn point_in_time(args: &[&str], remove_log: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path(), args);
    let filler = 30_000;
    {
        let mut c = Client::connect(server.port()).expect("connect");
        let cmds: Vec<_> = (0..filler)
            .map(|i| cmd(&["SET", &format!("filler:{i}"), &"x".repeat(64)]))
            .collect();
        c.pipeline(&cmds);
    }
    let mut progressed = false;
    let mut last = 0u64;
    for cycle in 0..3 {
        let port = server.port();
        let acked = Arc::new(AtomicU64::new(last));
        let stop_flag = Arc::new(AtomicBool::new(false));
        let h = {
            let (a, s) = (acked.clone(), stop_flag.clone());
            std::thread::spawn(move || pit_writer(port, last, a, s))
        };
        std::thread::sleep(Duration::from_millis(50));
        let mut window = (0, 0);
        for _ in 0..4 {
            let before = acked.load(Ordering::SeqCst);
            assert_eq!(
                q(port, &["BGSAVE"]),
                R::Simple("Background saving started".into())
            );
            let mid = acked.load(Ordering::SeqCst);
            assert_eq!(wait_bgsave(port), "ok");
            let after = acked.load(Ordering::SeqCst);
            progressed |= after > mid;
            window = (before, after);
        }
        // Crash with the writer still running: the restart sees the last snapshot.
        server.kill_9();
        stop_flag.store(true, Ordering::Relaxed);
        h.join().expect("writer");
        if remove_log {
            for f in log_files(dir.path()) {
                fs::remove_file(f).expect("rm log");
            }
        }
        server.restart().expect("restart");
        let port = server.port();
        let vals = pit_values(port);
        assert!(
            vals.iter().all(|v| *v == vals[0]),
            "cycle {cycle}: the snapshot is not one point in time: {vals:?}"
        );
        let v = vals[0].expect("pit keys present");
        assert!(
            v >= window.0 && v <= window.1 + 1,
            "cycle {cycle}: snapshot holds {v}, expected the last BGSAVE's window {window:?}"
        );
        assert_eq!(q(port, &["DBSIZE"]).int(), filler as i64 + PIT_KEYS as i64);
        last = v + 1_000_000;
    }
    assert!(
        progressed,
        "writes must proceed while a snapshot is written"
    );
}

#[test]
fn snapshot_is_one_point_in_time_without_append_log() {
    // snapshot-incremental is on by default: the first BGSAVE after a start is full,
    // the later ones write the changes.
    point_in_time(&["--appendonly", "no", "--save", "900 1"], false);
}

#[test]
fn full_snapshots_are_one_point_in_time_too() {
    point_in_time(
        &[
            "--appendonly",
            "no",
            "--save",
            "900 1",
            "--snapshot-incremental",
            "no",
        ],
        false,
    );
}

#[test]
fn snapshot_is_one_point_in_time_with_the_log_removed() {
    point_in_time(
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "900 1",
        ],
        true,
    );
}

// ---------------------------------------------------------------------------
// Port in use, locked or unwritable data directory
// ---------------------------------------------------------------------------

#[test]
fn taken_port_locked_dir_and_unwritable_dir_are_clear_startup_errors() {
    let d1 = tempfile::tempdir().expect("tempdir");
    let d2 = tempfile::tempdir().expect("tempdir");
    let server = start(d1.path(), &[]);
    let port = server.port();
    let pid = server.pid().expect("pid");
    assert!(q(port, &["SET", "owner", "first"]).is_ok());

    // Same port, other directory.
    let (status, out) = run_expect_failure(port, &["--dir", d2.path().to_str().expect("utf8")]);
    assert!(!status.success());
    assert!(
        out.to_lowercase().contains("address already in use")
            && out.contains(&format!("127.0.0.1:{port}")),
        "expected a clear 'address in use' error:\n{out}"
    );

    // Other port, same directory.
    let other = free_port();
    let (status, out) = run_expect_failure(other, &["--dir", d1.path().to_str().expect("utf8")]);
    assert!(!status.success());
    assert!(
        out.contains("locked by another running redsnap") && out.contains(&format!("pid {pid}")),
        "expected the lock error naming pid {pid}:\n{out}"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, other)).is_err(),
        "the refused instance must not keep listening"
    );

    // A data directory under a regular file.
    let file = d2.path().join("regular-file");
    fs::write(&file, b"not a directory").expect("write");
    let bad = file.join("data");
    let (status, out) = run_expect_failure(free_port(), &["--dir", bad.to_str().expect("utf8")]);
    assert!(!status.success());
    assert!(
        out.contains("cannot write data directory") && out.contains(bad.to_str().expect("utf8")),
        "expected a clear unwritable-directory error:\n{out}"
    );

    // The first instance is untouched and still the only one serving its data.
    assert_eq!(q(port, &["GET", "owner"]).bulk(), Some(b"first".to_vec()));
    assert_eq!(
        fs::read_to_string(d1.path().join("LOCK"))
            .expect("LOCK")
            .trim(),
        pid.to_string()
    );
}
