//! What operators use to watch a server: MONITOR, SLOWLOG, LATENCY and INFO's
//! statistics. The same commands run against a real redis-server 7.0 and against
//! redsnap, and what each shows must be the same: MONITOR lines (time and client
//! port aside), slowlog entries, INFO's sections, commandstats (calls, rejected and
//! failed calls; not the times) and errorstats.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Value;
use redsnap_testsupport::{encode_command, RawConn, RedisServer, RedsnapServer};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn redsnap() -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap")
}

fn redis_server() -> RedisServer {
    RedisServer::start().expect("start redis-server")
}

fn conn(port: u16) -> redis::Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let c = c.get_connection().expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c
}

fn cmd(c: &mut redis::Connection, args: &[&[u8]]) -> Value {
    let mut q = redis::cmd(std::str::from_utf8(args[0]).expect("name"));
    for a in &args[1..] {
        q.arg(*a);
    }
    // Error replies are values too (Value::ServerError).
    q.query::<Value>(c)
        .unwrap_or_else(|e| Value::SimpleString(format!("ERROR {e}")))
}

fn words(s: &str) -> Vec<&[u8]> {
    s.split(' ').map(str::as_bytes).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn info(c: &mut redis::Connection, section: &str) -> String {
    let mut args = vec![&b"INFO"[..]];
    if !section.is_empty() {
        args.extend(words(section));
    }
    text(&cmd(c, &args))
}

/// A connection in MONITOR mode.
struct Monitor {
    reader: BufReader<TcpStream>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        let mut m = Monitor {
            reader: BufReader::new(s),
        };
        m.send(&[b"MONITOR"]);
        assert_eq!(m.line(), "+OK");
        m
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.reader
            .get_mut()
            .write_all(&encode_command(args))
            .expect("write");
    }

    fn line(&mut self) -> String {
        let mut l = Vec::new();
        self.reader.read_until(b'\n', &mut l).expect("read");
        String::from_utf8_lossy(&l).trim_end().to_string()
    }

    /// The lines up to the one showing `ECHO <marker>`, the time checked and taken
    /// out, the client's address replaced by `ADDR`.
    fn lines_until(&mut self, marker: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "monitor connection closed");
            let done = l.contains(&format!("\"{marker}\""));
            out.push(normalize(&l));
            if done {
                return out;
            }
        }
    }
}

/// `+1700000000.123456 [5 127.0.0.1:4242] "set" ...` -> `[5 ADDR] "set" ...`.
fn normalize(line: &str) -> String {
    let rest = line
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("not a status: {line}"));
    let (time, rest) = rest.split_once(' ').expect("time");
    let (secs, micros) = time.split_once('.').expect("time with a point");
    assert!(
        secs.len() >= 10 && secs.bytes().all(|c| c.is_ascii_digit()),
        "{line}"
    );
    assert!(
        micros.len() == 6 && micros.bytes().all(|c| c.is_ascii_digit()),
        "{line}"
    );
    let (client, args) = rest.split_once("] ").expect("client");
    let client = match client.split_once(' ') {
        Some((db, who)) if who != "lua" => format!("{db} ADDR"),
        _ => client.to_string(),
    };
    format!("{client}] {args}")
}

/// The commands both servers run while monitored (none needs a feature redsnap
/// lacks). Replies are not compared here.
fn scenario(port: u16) {
    let mut c = RawConn::connect(port).expect("connect");
    let binary: &[u8] = b"a\x00b\xe9\"\\ \n\r\t\x07";
    let script =
        "redis.call('select','3') redis.call('set','a','1') return redis.pcall('incr','nokey-x')";
    let steps: Vec<Vec<&[u8]>> = vec![
        words("select 5"),
        vec![b"SET", b"k", binary],
        words("get k"),
        words("auth onlypass"),
        words("auth user pass"),
        words("auth a b c"),
        words("hello 2 auth u p"),
        words("hello 4 auth u p"),
        words("hello 2 setname x auth u p"),
        words("config set maxmemory-samples 5"),
        words("client id"),
        words("client list"),
        words("multi"),
        words("set a 1"),
        words("incr a"),
        words("exec"),
        words("multi"),
        words("nosuchcmd x"),
        words("exec"),
        vec![b"EVAL", script.as_bytes(), b"0"],
        words("evalsha 0000000000000000000000000000000000000000 0"),
        words("set k"),
        words("blpop emptylist 0.01"),
        words("multi"),
        words("monitor"),
        words("exec"),
        words("debug sleep 0"),
        words("ping"),
        words("echo END"),
    ];
    for s in steps {
        c.command(&s).expect("command");
    }
}

#[test]
fn monitor_shows_what_redis_shows() {
    let redis = redis_server();
    let ours = redsnap();
    let mut got = Vec::new();
    for port in [redis.port(), ours.port()] {
        let mut m = Monitor::start(port);
        // A monitor may run commands that do not touch the keyspace, and sees them.
        m.send(&words("get x"));
        assert_eq!(m.line(), "-ERR Replica can't interact with the keyspace");
        m.send(&words("ping"));
        assert_eq!(m.line(), "+PONG");
        assert!(m.line().ends_with("\"ping\""));
        // A second MONITOR is ignored without a reply.
        m.send(&words("monitor"));
        scenario(port);
        got.push(m.lines_until("END"));
    }
    assert_eq!(got[1], got[0], "redsnap's lines differ from redis-server's");
    // The scenario shows secrets redacted, and script commands after their EVAL.
    let all = got[1].join("\n");
    assert!(all.contains(r#""auth" "(redacted)" "(redacted)""#), "{all}");
    assert!(all.contains(r#"[3 lua] "set" "a" "1""#), "{all}");
    assert!(all.contains(r#""k" "a\x00b\xe9\"\\ \n\r\t\a""#), "{all}");
}

#[test]
fn monitor_ends_with_reset_and_a_slow_monitor_is_disconnected() {
    let ours = redsnap();
    let mut c = conn(ours.port());
    let mut m = Monitor::start(ours.port());
    assert!(text(&cmd(&mut c, &words("client list"))).contains("flags=O"));
    m.send(&words("reset"));
    assert_eq!(m.line(), "+RESET");
    assert!(!text(&cmd(&mut c, &words("client list"))).contains("flags=O"));
    cmd(&mut c, &words("set after reset"));
    m.send(&words("get after"));
    // Not a monitor any more: the keyspace answers, and no line came for the SET.
    assert_eq!(m.line(), "$5");
    assert_eq!(m.line(), "reset");

    // A monitor that never reads is cut off at the normal class's hard limit.
    let set = cmd(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 65536 0 0",
        ],
    );
    assert_eq!(set, Value::Okay);
    let _quiet = Monitor::start(ours.port());
    let big = vec![b'x'; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        cmd(&mut c, &[b"SET", b"big", &big]);
        if !text(&cmd(&mut c, &words("client list"))).contains("flags=O") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the silent monitor was never disconnected"
        );
    }
    assert_eq!(
        cmd(&mut c, &words("ping")),
        Value::SimpleString("PONG".into())
    );
    // One that reads keeps up with far more than the limit.
    let mut reading = Monitor::start(ours.port());
    let reader = std::thread::spawn(move || reading.lines_until("DONE").len());
    for _ in 0..200 {
        cmd(&mut c, &[b"SET", b"big", &big]);
    }
    assert!(text(&cmd(&mut c, &words("client list"))).contains("flags=O"));
    cmd(&mut c, &words("echo DONE"));
    assert_eq!(reader.join().expect("reader"), 201);
}

/// Slowlog entries (id and time aside; the client's port replaced).
fn slowlog_entries(c: &mut redis::Connection) -> Vec<(Vec<String>, String, String)> {
    let Value::Array(entries) = cmd(c, &words("slowlog get -1")) else {
        panic!("slowlog get");
    };
    entries
        .iter()
        .map(|e| {
            let Value::Array(f) = e else {
                panic!("entry {e:?}")
            };
            assert_eq!(f.len(), 6);
            assert!(matches!(f[0], Value::Int(_)) && matches!(f[1], Value::Int(_)));
            let Value::Int(us) = f[2] else {
                panic!("duration")
            };
            assert!(us >= 0);
            let Value::Array(argv) = &f[3] else {
                panic!("argv")
            };
            let addr = text(&f[4]);
            let addr = if addr.starts_with("127.0.0.1:") {
                "client".to_string()
            } else {
                addr
            };
            (argv.iter().map(text).collect::<Vec<_>>(), addr, text(&f[5]))
        })
        // The INFO calls that waited for the blocked client vary in number.
        .filter(|(argv, _, _)| !argv[0].eq_ignore_ascii_case("info"))
        .collect()
}

#[test]
fn slowlog_entries_are_redis_s() {
    let redis = redis_server();
    let ours = redsnap();
    let mut got = Vec::new();
    for port in [redis.port(), ours.port()] {
        let mut c = conn(port);
        cmd(&mut c, &words("config set slowlog-log-slower-than 0"));
        cmd(&mut c, &words("config set slowlog-max-len 128"));
        cmd(&mut c, &words("slowlog reset"));
        cmd(&mut c, &words("client setname watcher"));
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut sadd: Vec<&[u8]> = vec![b"SADD", b"s"];
        sadd.extend(many.iter().map(|s| s.as_bytes()));
        cmd(&mut c, &sadd);
        let long = vec![b'A'; 200];
        cmd(&mut c, &[b"SET", b"long", &long]);
        cmd(&mut c, &words("auth secret"));
        cmd(&mut c, &[b"CONFIG", b"SET", b"requirepass", b""]);
        cmd(
            &mut c,
            &words("config set masterauth x maxmemory-samples 5"),
        );
        cmd(&mut c, &words("multi"));
        cmd(&mut c, &words("incr n"));
        cmd(&mut c, &words("exec"));
        cmd(&mut c, &[b"EVAL", b"return redis.call('get','long')", b"0"]);
        // A blocked command is logged when it is served.
        let mut w = RawConn::connect(port).expect("connect");
        let handle = std::thread::spawn(move || w.command(&words("blpop queue 0")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !info(&mut c, "clients").contains("blocked_clients:1") {
            assert!(Instant::now() < deadline, "never blocked");
        }
        cmd(&mut c, &words("rpush queue v"));
        handle.join().expect("join").expect("blpop");
        got.push(slowlog_entries(&mut c));
        // Errors and the length.
        let e = cmd(&mut c, &words("slowlog get -2"));
        assert!(format!("{e:?}").contains("count should be greater than or equal to -1"));
        let Value::Int(n) = cmd(&mut c, &words("slowlog len")) else {
            panic!("len")
        };
        assert!(n > 10);
        cmd(&mut c, &words("config set slowlog-max-len 2"));
        assert_eq!(cmd(&mut c, &words("slowlog len")), Value::Int(2));
        cmd(&mut c, &words("config set slowlog-log-slower-than -1"));
        cmd(&mut c, &words("slowlog reset"));
        cmd(&mut c, &words("ping"));
        assert_eq!(cmd(&mut c, &words("slowlog len")), Value::Int(0));
    }
    assert_eq!(
        got[1], got[0],
        "redsnap's slowlog differs from redis-server's"
    );
    let all = format!("{:?}", got[1]);
    assert!(all.contains("... (11 more arguments)"), "{all}");
    assert!(all.contains("... (72 more bytes)"), "{all}");
    assert!(all.contains(r#"["auth", "(redacted)"]"#), "{all}");
    assert!(all.contains(r#""masterauth", "(redacted)""#), "{all}");
    assert!(!all.contains(r#"["exec"]"#), "{all}");
    assert!(all.contains(r#"(["get", "long"], "?:0", "")"#), "{all}");
    assert!(
        all.contains(r#"(["blpop", "queue", "0"], "client", "")"#),
        "{all}"
    );
}

/// The `# Name` lines of an INFO text.
fn headers(info: &str) -> Vec<String> {
    info.lines()
        .filter(|l| l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn info_sections_are_chosen_as_redis_chooses_them() {
    let redis = redis_server();
    let ours = redsnap();
    let mut r = conn(redis.port());
    let mut o = conn(ours.port());
    for args in [
        "",
        "default",
        "all",
        "everything",
        "commandSTATS",
        "cpu sentinel",
        "cpu all",
        "CPU default",
        "errorstats latencystats",
        "bogus",
        "keyspace server",
    ] {
        let theirs = info(&mut r, args);
        let mine = info(&mut o, args);
        assert_eq!(headers(&mine), headers(&theirs), "INFO {args}");
        // Sections are separated by one empty line, and the text ends with one CRLF.
        assert!(
            !mine.contains("\r\n\r\n\r\n") && !mine.ends_with("\r\n\r\n"),
            "{args}"
        );
        assert_eq!(
            mine.contains("rejected_calls"),
            theirs.contains("rejected_calls"),
            "{args}"
        );
    }
}

/// commandstats without the times, errorstats and total_error_replies.
fn stats(c: &mut redis::Connection) -> (BTreeMap<String, String>, String) {
    let mut out = BTreeMap::new();
    let all = info(c, "commandstats errorstats");
    for line in all.lines() {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        let kept: Vec<&str> = fields
            .split(',')
            .filter(|f| !f.starts_with("usec"))
            .collect();
        // INFO itself differs in number (the reader's own calls): left out.
        if name != "cmdstat_info" {
            out.insert(name.to_string(), kept.join(","));
        }
    }
    let total = info(c, "stats")
        .lines()
        .find_map(|l| l.strip_prefix("total_error_replies:").map(String::from))
        .unwrap_or_default();
    (out, total)
}

#[test]
fn commandstats_and_errorstats_count_as_redis_does() {
    let redis = redis_server();
    let ours = redsnap();
    let mut got = Vec::new();
    for port in [redis.port(), ours.port()] {
        let mut c = conn(port);
        cmd(&mut c, &words("config resetstat"));
        let steps = [
            "set a b",
            "get a",
            "set k",
            "nosuchcommand",
            "lpush a x",
            "client list",
            "client id x",
            "client nosuch",
            "multi",
            "set x y",
            "auth foo",
            "exec",
            "multi",
            "set",
            "exec",
            "exec",
            "evalsha ffffffffffffffffffffffffffffffffffffffff 0",
            "config set maxmemory 1",
            "set m n",
            "config set maxmemory 0",
        ];
        for s in steps {
            cmd(&mut c, &words(s));
        }
        // New connections are raw: a client library's handshake would be counted.
        let mut sub = RawConn::connect(port).expect("connect");
        sub.command(&words("subscribe ch")).expect("subscribe");
        let e = sub.command(&words("get a")).expect("get");
        assert!(e.starts_with(b"-ERR Can't execute 'get'"));
        for s in [
            "return redis.call('select', 99)",
            "return redis.pcall('select', 99)",
            "local t = redis.pcall('select', 99) return 1",
            "local t = redis.pcall('get') return 1",
            "local t = redis.pcall('nosuch') return 1",
            "return redis.pcall('nosuch')",
            "return redis.call('get')",
            "error('boom')",
            "return redis.error_reply('MY own error')",
            "redis.call('set', 'sk', '1') redis.call('incr', 'sk') return 1",
        ] {
            cmd(&mut c, &[b"EVAL", s.as_bytes(), b"0"]);
        }
        cmd(
            &mut c,
            &[b"EVAL_RO", b"return redis.call('set','x','y')", b"0"],
        );
        // A blocked command served, one unblocked with an error, one timed out.
        let deadline = Instant::now() + Duration::from_secs(10);
        let wait_blocked = |c: &mut redis::Connection| {
            while !info(c, "clients").contains("blocked_clients:1") {
                assert!(Instant::now() < deadline, "never blocked");
            }
        };
        let mut w = RawConn::connect(port).expect("connect");
        let h = std::thread::spawn(move || w.command(&words("blpop list1 0")));
        wait_blocked(&mut c);
        cmd(&mut c, &words("rpush list1 v"));
        h.join().expect("join").expect("blpop");
        let mut w = RawConn::connect(port).expect("connect");
        let h = std::thread::spawn(move || w.command(&words("brpop list2 0")));
        wait_blocked(&mut c);
        let clients = text(&cmd(&mut c, &words("client list")));
        let blocked_id = clients
            .lines()
            .find(|l| l.contains("cmd=brpop"))
            .and_then(|l| l.strip_prefix("id="))
            .and_then(|l| l.split(' ').next())
            .expect("the blocked client")
            .to_string();
        cmd(
            &mut c,
            &[b"CLIENT", b"UNBLOCK", blocked_id.as_bytes(), b"ERROR"],
        );
        let reply = h.join().expect("join").expect("brpop");
        assert!(
            reply.starts_with(b"-UNBLOCKED"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        cmd(&mut c, &words("blpop list3 0.01"));
        got.push(stats(&mut c));
    }
    assert_eq!(
        got[1].0, got[0].0,
        "commandstats/errorstats differ from redis-server's"
    );
    assert_eq!(got[1].1, got[0].1, "total_error_replies differs");
}

#[test]
fn latency_histograms_and_percentiles() {
    let ours = redsnap();
    let mut c = conn(ours.port());
    cmd(&mut c, &words("config resetstat"));
    cmd(&mut c, &words("set a b"));
    cmd(&mut c, &words("set a c"));
    cmd(&mut c, &words("client id"));
    // RESP2: maps come as flat arrays of pairs.
    fn pairs(v: &Value) -> Vec<(String, Value)> {
        let Value::Array(items) = v else {
            panic!("not a map: {v:?}")
        };
        items
            .chunks(2)
            .map(|p| (text(&p[0]).trim_matches('"').to_string(), p[1].clone()))
            .collect()
    }
    let h = pairs(&cmd(&mut c, &words("latency histogram set client nosuch")));
    let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, vec!["set", "client|id"]);
    let set = pairs(&h[0].1);
    assert_eq!(set[0], ("calls".to_string(), Value::Int(2)));
    assert_eq!(set[1].0, "histogram_usec");
    let Value::Array(buckets) = &set[1].1 else {
        panic!("buckets")
    };
    // (usec, cumulative count) pairs, ending with every call.
    assert!(!buckets.is_empty() && buckets.len() % 2 == 0);
    assert_eq!(buckets.last(), Some(&Value::Int(2)));
    let line = |c: &mut redis::Connection| {
        info(c, "latencystats")
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_set:"))
            .map(String::from)
    };
    let l = line(&mut c).expect("set's percentiles");
    let fields: Vec<&str> = l.split_once(':').expect(":").1.split(',').collect();
    assert_eq!(fields.len(), 3);
    for (f, p) in fields.iter().zip(["p50=", "p99=", "p99.9="]) {
        let v = f.strip_prefix(p).unwrap_or_else(|| panic!("{l}"));
        assert!(v.split_once('.').is_some_and(|(_, d)| d.len() == 3), "{l}");
    }
    cmd(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"0.0 50.0 100.0",
        ],
    );
    let Value::Array(v) = cmd(
        &mut c,
        &words("config get latency-tracking-info-percentiles"),
    ) else {
        panic!("config get")
    };
    assert_eq!(text(&v[1]), "0 50 100");
    assert!(line(&mut c).is_some_and(|l| l.contains(":p0=") && l.contains(",p100=")));
    let e = cmd(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"10 101",
        ],
    );
    assert!(format!("{e:?}").contains("between [0.0,100.0]"), "{e:?}");
    cmd(&mut c, &words("config set latency-tracking no"));
    assert!(line(&mut c).is_none());
    cmd(&mut c, &words("config set latency-tracking yes"));
    cmd(&mut c, &words("config resetstat"));
    assert!(line(&mut c).is_none());
}

#[test]
fn latency_monitor_records_slow_commands() {
    let ours = redsnap();
    let mut c = conn(ours.port());
    assert!(text(&cmd(&mut c, &words("latency doctor"))).contains("Latency monitoring is disabled"));
    cmd(&mut c, &words("config set latency-monitor-threshold 50"));
    cmd(&mut c, &words("debug sleep 0.1"));
    cmd(&mut c, &words("ping"));
    let Value::Array(latest) = cmd(&mut c, &words("latency latest")) else {
        panic!("latest")
    };
    assert_eq!(latest.len(), 1);
    let Value::Array(e) = &latest[0] else {
        panic!("event")
    };
    assert_eq!(text(&e[0]), "command");
    let Value::Int(ms) = e[2] else { panic!("ms") };
    assert!((100..1000).contains(&ms), "{ms}");
    let Value::Array(h) = cmd(&mut c, &words("latency history command")) else {
        panic!("history")
    };
    assert_eq!(h.len(), 1);
    let graph = text(&cmd(&mut c, &words("latency graph command")));
    assert!(graph.starts_with("command - high "), "{graph}");
    assert!(format!("{:?}", cmd(&mut c, &words("latency graph nosuch"))).contains("No samples"));
    assert!(text(&cmd(&mut c, &words("latency doctor"))).contains("1. command: 1 latency spikes"));
    assert_eq!(cmd(&mut c, &words("latency reset nosuch")), Value::Int(0));
    assert_eq!(cmd(&mut c, &words("latency reset")), Value::Int(1));
    assert_eq!(cmd(&mut c, &words("latency latest")), Value::Array(vec![]));
}

/// The cron's active expiry registers an `expire-cycle` event when a cycle takes
/// `latency-monitor-threshold` or longer (Redis's activeExpireCycle). The cycle that
/// expires a set of 300,000 members longer than 22 bytes (each its own allocation,
/// freed inside the cycle: `lazyfree-lazy-expire` is no, as in Redis) frees 300,000
/// allocations, which takes well over the 1 ms threshold. Redis's own test of this
/// (unit/latency-monitor "LATENCY of expire events are correctly collected") relies on
/// freeing 1M short members taking over 20 ms, which does not hold when members are
/// stored inline; it is skipped (scripts/redis_suite.skip) in favour of this one.
#[test]
fn latency_monitor_records_slow_expire_cycles() {
    let ours = redsnap();
    let mut c = conn(ours.port());
    cmd(&mut c, &words("config set latency-monitor-threshold 1"));
    for batch in 0..300 {
        let members: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("a-member-longer-than-inline-{:020}", batch * 1000 + i).into_bytes())
            .collect();
        let mut args: Vec<&[u8]> = vec![b"sadd", b"bigset"];
        args.extend(members.iter().map(|m| m.as_slice()));
        cmd(&mut c, &args);
    }
    assert_eq!(cmd(&mut c, &words("scard bigset")), Value::Int(300_000));
    cmd(&mut c, &words("latency reset"));
    // Nothing touches the key after this: only the cron's cycle can expire it.
    cmd(&mut c, &words("pexpire bigset 1"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while cmd(&mut c, &words("dbsize")) != Value::Int(0) {
        assert!(Instant::now() < deadline, "the key was not expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    let Value::Array(h) = cmd(&mut c, &words("latency history expire-cycle")) else {
        panic!("history")
    };
    assert!(!h.is_empty(), "no expire-cycle event");
    for sample in &h {
        let Value::Array(s) = sample else {
            panic!("sample")
        };
        let Value::Int(ms) = s[1] else { panic!("ms") };
        assert!(ms >= 1, "{ms}");
    }
    let latest = format!("{:?}", cmd(&mut c, &words("latency latest")));
    assert!(latest.contains("expire-cycle"), "{latest}");
}
