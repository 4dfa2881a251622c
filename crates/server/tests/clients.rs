//! Real clients against redsnap: redis-cli, redis-py, ioredis and redis-rs run
//! the same scenario (strings, hashes, lists with BLPOP, sets, sorted sets,
//! pub/sub with patterns, MULTI/EXEC and a WATCH conflict) against a real
//! redis-server and against redsnap, over RESP2 and RESP3 where the client
//! supports it (ioredis 5 is RESP2 only), and the normalized transcripts must be
//! equal line for line.
//!
//! The scripts live in `tests/clients/` (`client_py.py`, `client_ioredis.js`,
//! `client_cli.sh`); each prints one JSON object per step. The redis-rs scenario
//! is in this file. Setup: `cd tests/clients && pip install -r requirements.txt
//! && npm install` (scripts/test.sh does it). The tests skip (with a printed
//! reason) only when `python3` or `node` is not installed at all; a missing
//! client library is a failure that says how to install it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::Value;
use redsnap_testsupport::external::{self, have, tail};
use redsnap_testsupport::{RedisServer, RedsnapServer};

/// Upper bound for one client script run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How many differing steps a failure message shows.
const SHOW_DIFFS: usize = 12;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("tests")
        .join("clients")
}

/// Both servers, persistence off.
struct Servers {
    redis: RedisServer,
    redsnap: RedsnapServer,
}

fn start_servers() -> Servers {
    let redis = RedisServer::start().expect("start redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    Servers { redis, redsnap }
}

/// Run `program args...` in tests/clients with a timeout; Ok(stdout) if it exits 0
/// and printed something.
fn run_script(program: &str, args: &[String]) -> Result<String, String> {
    let out = external::run(program, args, &clients_dir(), SCRIPT_TIMEOUT)?;
    if out.trim().is_empty() {
        return Err(format!("{program} {args:?} printed nothing"));
    }
    Ok(out)
}

/// The step name of a transcript line: the `"step"` field of the JSON lines the
/// scripts print, or the part before ` => ` for the redis-rs lines.
fn step_name(line: &str) -> &str {
    if let Some(i) = line.rfind("\"step\": \"") {
        let rest = &line[i + 9..];
        return rest.split('"').next().unwrap_or(rest);
    }
    line.split(" => ").next().unwrap_or(line)
}

/// Commands redsnap answered with "unknown command" (for the failure summary).
fn unknown_commands(lines: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        let lower = l.to_ascii_lowercase();
        if let Some(i) = lower.find("unknown command '") {
            let rest = &l[i + "unknown command '".len()..];
            let name = rest.split('\'').next().unwrap_or("").to_ascii_uppercase();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Compare two transcripts line by line; panics with the first differences.
fn compare(label: &str, redis: &str, redsnap: &str) {
    let a: Vec<&str> = redis.lines().collect();
    let b: Vec<&str> = redsnap.lines().collect();
    let mut diffs = Vec::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied(), b.get(i).copied());
        if x != y {
            diffs.push((i, x, y));
        }
    }
    if diffs.is_empty() {
        eprintln!(
            "{label}: {} steps, identical on redis-server and redsnap",
            a.len()
        );
        return;
    }
    let redsnap_side: Vec<&str> = diffs.iter().filter_map(|d| d.2).collect();
    let unknown = unknown_commands(&redsnap_side);
    let mut msg = format!(
        "{label}: {} of {} steps differ between redis-server and redsnap",
        diffs.len(),
        a.len().max(b.len())
    );
    if !unknown.is_empty() {
        msg.push_str(&format!(
            "\n  redsnap answered \"unknown command\" for: {}",
            unknown.join(", ")
        ));
    }
    msg.push_str(&format!(
        "\n  first {} differences:",
        diffs.len().min(SHOW_DIFFS)
    ));
    for (i, x, y) in diffs.iter().take(SHOW_DIFFS) {
        let name = step_name(x.or(*y).unwrap_or(""));
        msg.push_str(&format!(
            "\n  step #{i} {name}\n    redis-server: {}\n    redsnap:      {}",
            x.unwrap_or("<missing>"),
            y.unwrap_or("<missing>")
        ));
    }
    panic!("{msg}");
}

/// Run a client script against both servers and compare.
fn script_test(label: &str, program: &str, script: &str, protocol: Option<u8>) {
    let servers = start_servers();
    let args = |port: u16| -> Vec<String> {
        let mut v = vec![
            clients_dir().join(script).display().to_string(),
            "127.0.0.1".to_string(),
            port.to_string(),
        ];
        if let Some(p) = protocol {
            v.push(p.to_string());
        }
        v
    };
    let expected = run_script(program, &args(servers.redis.port()))
        .unwrap_or_else(|e| panic!("{label}: the script failed against the real redis-server (a bug in the script or its setup, not in redsnap):\n{e}"));
    let actual = run_script(program, &args(servers.redsnap.port())).unwrap_or_else(|e| {
        panic!(
            "{label}: the script failed against redsnap:\n{e}\nredsnap log tail:\n{}",
            tail(&servers.redsnap.log(), 30)
        )
    });
    compare(label, &expected, &actual);
}

// ---------------------------------------------------------------------------
// redis-py
// ---------------------------------------------------------------------------

fn redis_py(protocol: u8) {
    if !have("python3") {
        eprintln!("SKIPPED redis-py test: python3 is not installed");
        return;
    }
    let missing = external::missing_python_modules(&["redis"]);
    assert!(
        missing.is_empty(),
        "redis-py is not installed: run `python3 -m pip install -r tests/clients/requirements.txt` \
         (scripts/test.sh does it)"
    );
    script_test(
        &format!("redis-py RESP{protocol}"),
        "python3",
        "client_py.py",
        Some(protocol),
    );
}

#[test]
fn redis_py_resp2() {
    redis_py(2);
}

#[test]
fn redis_py_resp3() {
    redis_py(3);
}

/// redis-py as a named ACL user: username/password, a credential provider, a wrong
/// password (issue 17).
#[test]
fn redis_py_acl_user() {
    if !have("python3") {
        eprintln!("SKIPPED redis-py ACL test: python3 is not installed");
        return;
    }
    for protocol in [2, 3] {
        script_test(
            &format!("redis-py ACL user RESP{protocol}"),
            "python3",
            "client_acl.py",
            Some(protocol),
        );
    }
}

/// ioredis as a named ACL user (issue 17).
#[test]
fn ioredis_acl_user() {
    if !have("node") {
        eprintln!("SKIPPED ioredis ACL test: node is not installed");
        return;
    }
    assert!(
        clients_dir().join("node_modules").join("ioredis").is_dir(),
        "ioredis is not installed: run `cd tests/clients && npm install` (scripts/test.sh does it)"
    );
    script_test("ioredis ACL user", "node", "client_acl.js", Some(2));
}

// ---------------------------------------------------------------------------
// ioredis (RESP2 only: ioredis 5 never sends HELLO 3)
// ---------------------------------------------------------------------------

#[test]
fn ioredis_resp2() {
    if !have("node") {
        eprintln!("SKIPPED ioredis test: node is not installed");
        return;
    }
    assert!(
        clients_dir().join("node_modules").join("ioredis").is_dir(),
        "ioredis is not installed: run `cd tests/clients && npm install` (scripts/test.sh does it)"
    );
    script_test("ioredis RESP2", "node", "client_ioredis.js", Some(2));
}

// ---------------------------------------------------------------------------
// redis-cli (the script needs python3 to assemble its transcript)
// ---------------------------------------------------------------------------

fn redis_cli(protocol: u8) {
    if !have("python3") {
        eprintln!(
            "SKIPPED redis-cli test: python3 (used to assemble the transcript) is not installed"
        );
        return;
    }
    assert!(
        have("redis-cli"),
        "redis-cli is not installed (Debian package redis-tools; scripts/test.sh installs it)"
    );
    script_test(
        &format!("redis-cli RESP{protocol}"),
        "bash",
        "client_cli.sh",
        Some(protocol),
    );
}

#[test]
fn redis_cli_resp2() {
    redis_cli(2);
}

#[test]
fn redis_cli_resp3() {
    redis_cli(3);
}

// ---------------------------------------------------------------------------
// redis-rs (sync API), same scenario
// ---------------------------------------------------------------------------

/// Render a reply deterministically: RESP3 maps and sets are sorted (their
/// order is unspecified), doubles keep their RESP3 type.
fn render(v: &Value) -> String {
    fn quote(b: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(b))
    }
    match v {
        Value::Nil => "nil".into(),
        Value::Int(i) => i.to_string(),
        Value::BulkString(b) => quote(b),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(render).collect::<Vec<_>>().join(", ")
            )
        }
        Value::SimpleString(s) => format!("+{s}"),
        Value::Okay => "+OK".into(),
        Value::Map(pairs) => {
            let mut kv: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect();
            kv.sort();
            format!("{{{}}}", kv.join(", "))
        }
        Value::Attribute { data, .. } => render(data),
        Value::Set(items) => {
            let mut r: Vec<String> = items.iter().map(render).collect();
            r.sort();
            format!("~[{}]", r.join(", "))
        }
        Value::Double(d) => format!("double {d:?}"),
        Value::Boolean(b) => format!("bool {b}"),
        Value::VerbatimString { text, .. } => format!("verbatim {text:?}"),
        Value::BigNumber(n) => format!("big {n:?}"),
        Value::Push { kind, data } => format!(
            "push {kind:?} [{}]",
            data.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Value::ServerError(e) => format!("error {e}"),
        other => format!("other {other:?}"),
    }
}

fn render_result(r: redis::RedisResult<Value>, sort: bool) -> String {
    match r {
        Ok(Value::Array(items)) if sort => {
            let mut r: Vec<String> = items.iter().map(render).collect();
            r.sort();
            format!("[{}]", r.join(", "))
        }
        Ok(v) => render(&v),
        Err(e) => format!("error {e}"),
    }
}

struct RsTranscript {
    lines: Vec<String>,
}

impl RsTranscript {
    fn record(&mut self, step: &str, result: String) {
        self.lines.push(format!("{step} => {result}"));
    }

    fn run(
        &mut self,
        con: &mut redis::Connection,
        step: &str,
        args: &[&str],
    ) -> redis::RedisResult<Value> {
        let r = command(args).query::<Value>(con);
        self.record(step, render_result(r.clone(), false));
        r
    }

    fn sorted(&mut self, con: &mut redis::Connection, step: &str, args: &[&str]) {
        let r = command(args).query::<Value>(con);
        self.record(step, render_result(r, true));
    }

    /// An integer reply reduced to whether lo <= n <= hi.
    fn in_range(
        &mut self,
        con: &mut redis::Connection,
        step: &str,
        args: &[&str],
        lo: i64,
        hi: i64,
    ) {
        let r = match command(args).query::<Value>(con) {
            Ok(Value::Int(n)) => format!("{}", lo <= n && n <= hi),
            other => render_result(other, false),
        };
        self.record(step, r);
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

fn wait_subscribed(con: &mut redis::Connection, chan: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let numsub = command(&["PUBSUB", "NUMSUB", chan]).query::<Value>(con);
        let numpat = command(&["PUBSUB", "NUMPAT"]).query::<Value>(con);
        let subs = match numsub {
            Ok(Value::Array(v)) if v.len() == 2 => v[1] == Value::Int(1),
            Ok(Value::Map(v)) if v.len() == 1 => v[0].1 == Value::Int(1),
            _ => false,
        };
        if subs && matches!(numpat, Ok(Value::Int(1))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn render_msg(m: redis::RedisResult<redis::Msg>) -> String {
    match m {
        Ok(m) => format!(
            "channel {:?} pattern {:?} payload {:?}",
            m.get_channel_name(),
            m.get_pattern::<Option<String>>().ok().flatten(),
            String::from_utf8_lossy(m.get_payload_bytes())
        ),
        Err(e) => format!("error {e}"),
    }
}

/// The scenario of tests/clients/client_py.py through redis-rs.
fn redis_rs_scenario(port: u16, protocol: u8) -> String {
    let url = match protocol {
        3 => format!("redis://127.0.0.1:{port}/?protocol=resp3"),
        _ => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url.as_str()).expect("redis-rs client");
    let connect = || {
        let c = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("redis-rs connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        c
    };
    let mut con = connect();
    let mut other = connect();
    let mut t = RsTranscript { lines: Vec::new() };
    let p = |k: &str| format!("rsc:{k}");
    let (k, h, l, s, z, w) = (p("s"), p("h"), p("l"), p("set"), p("z"), p("w"));
    let (missing, counter, m1, m2) = (p("missing"), p("counter"), p("m1"), p("m2"));

    t.run(&mut con, "ping", &["PING"]).ok();
    t.run(&mut con, "echo", &["ECHO", "héllo"]).ok();

    // ---- strings
    for (step, args) in [
        ("set", vec!["SET", &k, "hello"]),
        ("get", vec!["GET", &k]),
        ("get_missing", vec!["GET", &missing]),
        ("set_nx_existing", vec!["SET", &k, "x", "NX"]),
        ("set_xx_missing", vec!["SET", &missing, "x", "XX"]),
        ("set_get", vec!["SET", &k, "world", "GET"]),
        ("append", vec!["APPEND", &k, "!"]),
        ("strlen", vec!["STRLEN", &k]),
        ("getrange", vec!["GETRANGE", &k, "0", "2"]),
        ("incr", vec!["INCR", &counter]),
        ("incrby", vec!["INCRBY", &counter, "10"]),
        ("decr", vec!["DECR", &counter]),
        ("incrbyfloat", vec!["INCRBYFLOAT", "rsc:float", "1.5"]),
        ("incr_not_integer", vec!["INCR", &k]),
        ("mset", vec!["MSET", &m1, "a", &m2, "b"]),
        ("mget", vec!["MGET", &m1, &missing, &m2]),
        ("exists", vec!["EXISTS", &k, &m1, &missing]),
        ("type", vec!["TYPE", &k]),
        ("expire", vec!["EXPIRE", &k, "100"]),
    ] {
        t.run(&mut con, step, &args).ok();
    }
    t.in_range(&mut con, "ttl_in_range", &["TTL", &k], 90, 100);
    t.in_range(&mut con, "pttl_in_range", &["PTTL", &k], 90_000, 100_000);
    t.run(&mut con, "persist", &["PERSIST", &k]).ok();
    t.run(&mut con, "ttl_persisted", &["TTL", &k]).ok();
    t.run(&mut con, "ttl_missing", &["TTL", &missing]).ok();
    t.run(&mut con, "set_ex", &["SET", &m2, "c", "EX", "50"])
        .ok();
    t.in_range(&mut con, "ttl_set_ex_in_range", &["TTL", &m2], 40, 50);
    t.run(&mut con, "del", &["DEL", &m1, &m2, &missing]).ok();

    // ---- hashes
    t.run(
        &mut con,
        "hset",
        &["HSET", &h, "f1", "v1", "f2", "v2", "n", "5"],
    )
    .ok();
    t.run(&mut con, "hset_update", &["HSET", &h, "f1", "v1b"])
        .ok();
    t.run(&mut con, "hget", &["HGET", &h, "f1"]).ok();
    t.run(&mut con, "hget_missing", &["HGET", &h, "nope"]).ok();
    // RESP2 HGETALL is a flat array: compare it as a sorted list of field/value pairs.
    let hgetall = match command(&["HGETALL", &h]).query::<Value>(&mut con) {
        Ok(Value::Array(items)) => {
            let mut pairs: Vec<String> = items
                .chunks(2)
                .map(|c| c.iter().map(render).collect::<Vec<_>>().join(": "))
                .collect();
            pairs.sort();
            format!("pairs [{}]", pairs.join(", "))
        }
        other => render_result(other, false),
    };
    t.record("hgetall", hgetall);
    t.run(&mut con, "hincrby", &["HINCRBY", &h, "n", "3"]).ok();
    t.run(&mut con, "hincrbyfloat", &["HINCRBYFLOAT", &h, "n", "0.5"])
        .ok();
    t.run(&mut con, "hexists", &["HEXISTS", &h, "f2"]).ok();
    t.run(&mut con, "hdel", &["HDEL", &h, "f2", "nope"]).ok();
    t.run(&mut con, "hlen", &["HLEN", &h]).ok();
    t.sorted(&mut con, "hkeys", &["HKEYS", &h]);
    t.sorted(&mut con, "hvals", &["HVALS", &h]);
    t.run(&mut con, "hmget", &["HMGET", &h, "f1", "nope", "n"])
        .ok();
    t.run(&mut con, "hgetall_missing", &["HGETALL", &missing])
        .ok();
    t.run(&mut con, "wrongtype", &["LPUSH", &h, "x"]).ok();

    // ---- lists
    t.run(&mut con, "rpush", &["RPUSH", &l, "a", "b", "c", "d"])
        .ok();
    t.run(&mut con, "lpush", &["LPUSH", &l, "z"]).ok();
    t.run(&mut con, "lrange_all", &["LRANGE", &l, "0", "-1"])
        .ok();
    t.run(&mut con, "lrange_part", &["LRANGE", &l, "1", "2"])
        .ok();
    t.run(&mut con, "llen", &["LLEN", &l]).ok();
    t.run(&mut con, "lindex", &["LINDEX", &l, "-1"]).ok();
    t.run(&mut con, "lpop", &["LPOP", &l]).ok();
    t.run(&mut con, "lpop_count", &["LPOP", &l, "2"]).ok();
    t.run(&mut con, "rpop", &["RPOP", &l]).ok();
    t.run(&mut con, "blpop_ready", &["BLPOP", "rsc:empty", &l, "1"])
        .ok();
    t.run(&mut con, "blpop_timeout", &["BLPOP", "rsc:empty", "0.1"])
        .ok();
    t.run(&mut con, "lrange_missing", &["LRANGE", &missing, "0", "-1"])
        .ok();
    // BLPOP served by a push from another connection.
    let mut blocker = connect();
    let waiter = std::thread::spawn(move || {
        render_result(
            command(&["BLPOP", "rsc:bl", "5"]).query::<Value>(&mut blocker),
            false,
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    t.run(
        &mut other,
        "rpush_wakes_blpop",
        &["RPUSH", "rsc:bl", "woken"],
    )
    .ok();
    let woken = waiter
        .join()
        .unwrap_or_else(|_| "blocker thread panicked".into());
    t.record("blpop_woken", woken);

    // ---- sets
    t.run(&mut con, "sadd", &["SADD", &s, "a", "b", "c"]).ok();
    t.run(&mut con, "sadd_existing", &["SADD", &s, "a"]).ok();
    t.sorted(&mut con, "smembers", &["SMEMBERS", &s]);
    t.run(&mut con, "sismember", &["SISMEMBER", &s, "a"]).ok();
    t.run(&mut con, "sismember_no", &["SISMEMBER", &s, "zz"])
        .ok();
    t.run(&mut con, "scard", &["SCARD", &s]).ok();
    t.run(&mut con, "srem", &["SREM", &s, "b", "zz"]).ok();
    t.run(&mut con, "sadd2", &["SADD", "rsc:set2", "c", "d"])
        .ok();
    t.sorted(&mut con, "sinter", &["SINTER", &s, "rsc:set2"]);
    t.sorted(&mut con, "sunion", &["SUNION", &s, "rsc:set2"]);
    t.sorted(&mut con, "sdiff", &["SDIFF", &s, "rsc:set2"]);
    t.run(&mut con, "sadd3", &["SADD", "rsc:set3", "only"]).ok();
    t.run(&mut con, "spop_single", &["SPOP", "rsc:set3"]).ok();
    t.run(&mut con, "exists_after_spop", &["EXISTS", "rsc:set3"])
        .ok();

    // ---- sorted sets
    t.run(
        &mut con,
        "zadd",
        &["ZADD", &z, "1", "a", "2.5", "b", "-1", "c"],
    )
    .ok();
    t.run(&mut con, "zadd_update", &["ZADD", &z, "3", "a"]).ok();
    t.run(
        &mut con,
        "zrange_withscores",
        &["ZRANGE", &z, "0", "-1", "WITHSCORES"],
    )
    .ok();
    t.run(&mut con, "zrange", &["ZRANGE", &z, "0", "-1"]).ok();
    t.run(
        &mut con,
        "zrevrange_withscores",
        &["ZREVRANGE", &z, "0", "1", "WITHSCORES"],
    )
    .ok();
    t.run(
        &mut con,
        "zrangebyscore",
        &["ZRANGEBYSCORE", &z, "0", "3", "WITHSCORES"],
    )
    .ok();
    t.run(&mut con, "zscore", &["ZSCORE", &z, "b"]).ok();
    t.run(&mut con, "zscore_missing", &["ZSCORE", &z, "nope"])
        .ok();
    t.run(&mut con, "zincrby", &["ZINCRBY", &z, "1", "c"]).ok();
    t.run(&mut con, "zrank", &["ZRANK", &z, "a"]).ok();
    t.run(&mut con, "zcard", &["ZCARD", &z]).ok();
    t.run(&mut con, "zrem", &["ZREM", &z, "c", "nope"]).ok();
    t.run(
        &mut con,
        "zrange_after",
        &["ZRANGE", &z, "0", "-1", "WITHSCORES"],
    )
    .ok();

    // ---- pub/sub: subscribe on one connection, publish on another
    let (chan, pat) = ("rsc:chan", "rsc:pat:*");
    let mut subcon = connect();
    {
        let mut ps = subcon.as_pubsub();
        ps.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("pubsub timeout");
        t.record(
            "subscribe",
            render_result(ps.subscribe(chan).map(|_| Value::Okay), false),
        );
        t.record(
            "psubscribe",
            render_result(ps.psubscribe(pat).map(|_| Value::Okay), false),
        );
        let subscribed = wait_subscribed(&mut other, chan);
        t.record("subscribed", subscribed.to_string());
        t.run(&mut other, "pubsub_numsub", &["PUBSUB", "NUMSUB", chan])
            .ok();
        t.run(&mut other, "pubsub_numpat", &["PUBSUB", "NUMPAT"])
            .ok();
        t.run(&mut other, "publish", &["PUBLISH", chan, "hello"])
            .ok();
        t.record("message", render_msg(ps.get_message()));
        t.run(
            &mut other,
            "publish_pattern",
            &["PUBLISH", "rsc:pat:x", "hi"],
        )
        .ok();
        t.record("pmessage", render_msg(ps.get_message()));
        t.run(
            &mut other,
            "publish_nobody",
            &["PUBLISH", "rsc:nobody", "x"],
        )
        .ok();
        t.record(
            "unsubscribe",
            render_result(ps.unsubscribe(chan).map(|_| Value::Okay), false),
        );
        t.record(
            "punsubscribe",
            render_result(ps.punsubscribe(pat).map(|_| Value::Okay), false),
        );
        // Dropping the PubSub sends UNSUBSCRIBE + PUNSUBSCRIBE (no arguments) and
        // drains the confirmations; the connection must then be usable again.
    }
    t.run(&mut subcon, "after_pubsub_ping", &["PING"]).ok();

    // ---- MULTI/EXEC (pipeline transaction)
    let r = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("rsc:tx")
        .arg(1)
        .cmd("INCR")
        .arg("rsc:tx")
        .cmd("RPUSH")
        .arg("rsc:txl")
        .arg("a")
        .arg("b")
        .cmd("LRANGE")
        .arg("rsc:txl")
        .arg(0)
        .arg(-1)
        .cmd("GET")
        .arg("rsc:tx")
        .query::<Value>(&mut con);
    t.record("multi_exec", render_result(r, false));
    let r = redis::pipe()
        .atomic()
        .ignore_errors()
        .cmd("SET")
        .arg("rsc:txs")
        .arg("x")
        .cmd("INCR")
        .arg("rsc:txs")
        .cmd("GET")
        .arg("rsc:txs")
        .query::<Value>(&mut con);
    t.record("multi_exec_runtime_error", render_result(r, false));
    // A queued command with an unknown name aborts the whole transaction.
    let r = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("rsc:txs")
        .arg("y")
        .cmd("NOSUCHCOMMAND")
        .query::<Value>(&mut con);
    t.record("multi_exec_abort", render_result(r, false));
    t.run(&mut con, "multi_exec_abort_value", &["GET", "rsc:txs"])
        .ok();

    t.run(&mut con, "watch_setup", &["SET", &w, "start"]).ok();
    t.run(&mut con, "watch", &["WATCH", &w]).ok();
    t.run(&mut other, "watch_other_write", &["SET", &w, "other"])
        .ok();
    let r = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&w)
        .arg("mine")
        .query::<Value>(&mut con);
    t.record("watch_conflict", render_result(r, false));
    t.run(&mut con, "watch_conflict_value", &["GET", &w]).ok();
    t.run(&mut con, "watch_again", &["WATCH", &w]).ok();
    let r = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&w)
        .arg("mine")
        .query::<Value>(&mut con);
    t.record("watch_ok", render_result(r, false));
    t.run(&mut con, "watch_ok_value", &["GET", &w]).ok();

    let mut out = t.lines.join("\n");
    out.push('\n');
    out
}

fn redis_rs(protocol: u8) {
    let servers = start_servers();
    let expected = redis_rs_scenario(servers.redis.port(), protocol);
    let actual = redis_rs_scenario(servers.redsnap.port(), protocol);
    compare(&format!("redis-rs RESP{protocol}"), &expected, &actual);
}

#[test]
fn redis_rs_resp2() {
    redis_rs(2);
}

#[test]
fn redis_rs_resp3() {
    redis_rs(3);
}
