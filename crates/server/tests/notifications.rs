//! Keyspace notifications (`notify-keyspace-events`) and CLIENT REPLY ON|OFF|SKIP,
//! against a real redis-server 7.0: the same commands go to both servers, and the
//! replies and the streams of published events (what RESP2 and RESP3 subscribers,
//! pattern and plain, receive, in order) are compared byte for byte.

use redsnap_testsupport::wire::WireClient as Client;
use redsnap_testsupport::{encode_command, RedisServer, RedsnapServer};
use std::io::Write;
use std::time::{Duration, Instant};

/// What these tests add to the wire client.
trait Script {
    fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8>;
    fn cmd_str(&mut self, args: &[&str]) -> String;
}

impl Script for Client {
    /// Sends a command and returns the raw bytes of its reply.
    fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read().raw
    }

    fn cmd_str(&mut self, args: &[&str]) -> String {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        String::from_utf8_lossy(&self.cmd(&a)).into_owned()
    }
}

/// The two servers under comparison: a real redis-server and redsnap.
struct Servers {
    redis: RedisServer,
    redsnap: RedsnapServer,
}

impl Servers {
    fn start() -> Servers {
        let redis = RedisServer::builder()
            .extra_args(&["--enable-debug-command", "local"])
            .start()
            .expect("start redis-server");
        let redsnap = RedsnapServer::builder()
            .extra_args(&["--appendonly", "no", "--save", ""])
            .start()
            .expect("start redsnap");
        Servers { redis, redsnap }
    }

    fn ports(&self) -> [(&'static str, u16); 2] {
        [
            ("redis", self.redis.port()),
            ("redsnap", self.redsnap.port()),
        ]
    }
}

/// A subscriber that collects what it receives until the sentinel message.
struct Subscriber {
    c: Client,
}

const SENTINEL: &str = "zz-sentinel";

impl Subscriber {
    /// `resp3`: speaks RESP3 (messages are pushes); `pattern`: PSUBSCRIBE, else
    /// SUBSCRIBE; the sentinel channel is always subscribed too.
    fn new(port: u16, resp3: bool, pattern: bool, channels: &[&str]) -> Subscriber {
        let mut c = Client::connect(port);
        if resp3 {
            c.cmd_str(&["HELLO", "3"]);
        }
        let verb = if pattern { "PSUBSCRIBE" } else { "SUBSCRIBE" };
        for ch in channels.iter().copied().chain([SENTINEL]) {
            let r = c.cmd_str(&[verb, ch]);
            assert!(r.contains(ch), "{verb} {ch}: {r}");
        }
        Subscriber { c }
    }

    /// Reads until the sentinel message; returns the raw bytes of each message.
    fn collect(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let r = self.c.read();
            if r.parts.iter().any(|p| p == SENTINEL.as_bytes()) {
                return out;
            }
            out.push(String::from_utf8_lossy(&r.raw).into_owned());
        }
    }
}

fn publish_sentinel(c: &mut Client) {
    c.cmd_str(&["PUBLISH", SENTINEL, "end"]);
}

/// One step of a scenario.
enum Step {
    /// A command whose reply is compared.
    Cmd(Vec<Vec<u8>>),
    /// A command whose reply is not compared (DUMP payloads, random picks).
    Quiet(Vec<Vec<u8>>),
    /// Wait until the keys set with a 1 ms deadline are past it.
    PassTime,
}

fn c(args: &[&str]) -> Step {
    Step::Cmd(args.iter().map(|a| a.as_bytes().to_vec()).collect())
}

/// Runs `steps` on one connection; returns the compared replies, one per line.
fn run_steps(c: &mut Client, steps: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Cmd(a) | Step::Quiet(a) => {
                let args: Vec<&[u8]> = a.iter().map(|x| x.as_slice()).collect();
                let r = c.cmd(&args);
                if matches!(s, Step::Cmd(_)) {
                    let shown: Vec<String> = a
                        .iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect();
                    out.push(format!(
                        "{} -> {}",
                        shown.join(" "),
                        String::from_utf8_lossy(&r)
                    ));
                }
            }
            Step::PassTime => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    out
}

/// What one server produced for a scenario.
#[derive(Debug, PartialEq)]
struct Outcome {
    replies: Vec<String>,
    /// RESP2 `PSUBSCRIBE *`.
    all_resp2: Vec<String>,
    /// RESP3 `PSUBSCRIBE __key*`.
    all_resp3: Vec<String>,
    /// RESP2 plain SUBSCRIBE to two channels.
    plain: Vec<String>,
}

fn run_scenario(port: u16, flags: &str, steps: &[Step]) -> Outcome {
    let mut c = Client::connect(port);
    assert_eq!(c.cmd_str(&["FLUSHALL"]), "+OK\r\n");
    assert_eq!(
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", flags]),
        "+OK\r\n"
    );
    let mut all_resp2 = Subscriber::new(port, false, true, &["*"]);
    let mut all_resp3 = Subscriber::new(port, true, true, &["__key*"]);
    let mut plain = Subscriber::new(
        port,
        false,
        false,
        &["__keyevent@0__:del", "__keyspace@0__:l"],
    );
    let replies = run_steps(&mut c, steps);
    publish_sentinel(&mut c);
    let out = Outcome {
        replies,
        all_resp2: all_resp2.collect(),
        all_resp3: all_resp3.collect(),
        plain: plain.collect(),
    };
    assert_eq!(
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]),
        "+OK\r\n"
    );
    out
}

/// Compares the outcomes of both servers and names the first difference.
fn assert_same(name: &str, redis: &Outcome, redsnap: &Outcome) {
    let fields = [
        ("replies", &redis.replies, &redsnap.replies),
        ("PSUBSCRIBE * (RESP2)", &redis.all_resp2, &redsnap.all_resp2),
        (
            "PSUBSCRIBE __key* (RESP3)",
            &redis.all_resp3,
            &redsnap.all_resp3,
        ),
        ("SUBSCRIBE", &redis.plain, &redsnap.plain),
    ];
    for (what, a, b) in fields {
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert_eq!(
                x,
                y,
                "{name}: {what} differ at #{i} (redis first; context: {:?})",
                &a[i.saturating_sub(3)..i]
            );
        }
        assert_eq!(
            a.len(),
            b.len(),
            "{name}: {what}: redis has {} entries, redsnap {} (redis tail {:?}, redsnap tail {:?})",
            a.len(),
            b.len(),
            &a[a.len().min(b.len())..],
            &b[a.len().min(b.len())..]
        );
    }
}

/// The commands of the main scenario: every event of the commands redsnap
/// implements, including deletions of emptied keys, no-ops that raise nothing,
/// MULTI/EXEC, a script, lazy expiry, and other databases.
fn scenario(payload: &[u8]) -> Vec<Step> {
    let restore = |extra: &[&str]| {
        let mut a: Vec<Vec<u8>> = vec![b"RESTORE".to_vec(), b"rs".to_vec(), b"0".to_vec()];
        a.push(payload.to_vec());
        a.extend(extra.iter().map(|x| x.as_bytes().to_vec()));
        Step::Cmd(a)
    };
    vec![
        // strings
        c(&["SET", "s1", "v"]),
        c(&["SET", "s1", "v2", "EX", "100"]),
        c(&["SET", "s1", "v3", "KEEPTTL"]),
        c(&["SET", "s1", "v4", "NX"]),
        c(&["SET", "s1", "v5", "XX", "GET"]),
        c(&["SET", "s9", "v", "PXAT", "1"]),
        // Expired at once: the next access deletes it, if the active cycle has not.
        c(&["GET", "s9"]),
        c(&["SETNX", "s2", "a"]),
        c(&["SETNX", "s2", "b"]),
        c(&["SETEX", "s3", "100", "a"]),
        c(&["PSETEX", "s4", "100000", "a"]),
        c(&["MSET", "m1", "a", "m2", "b"]),
        c(&["MSETNX", "m1", "x", "m3", "y"]),
        c(&["MSETNX", "m3", "x", "m4", "y"]),
        c(&["GETSET", "s2", "z"]),
        c(&["GETDEL", "s2"]),
        c(&["GETDEL", "s2"]),
        c(&["GETEX", "s3", "EX", "200"]),
        c(&["GETEX", "s3", "PERSIST"]),
        c(&["GETEX", "s3", "PERSIST"]),
        c(&["GETEX", "s4", "PXAT", "1"]),
        c(&["APPEND", "ap", "hello"]),
        c(&["APPEND", "ap", "world"]),
        c(&["APPEND", "ap", ""]),
        c(&["SETRANGE", "sr", "5", "x"]),
        c(&["SETRANGE", "sr", "0", ""]),
        c(&["SETRANGE", "sr2", "0", ""]),
        c(&["SETRANGE", "sr", "0", "y"]),
        c(&["INCR", "n"]),
        c(&["INCRBY", "n", "5"]),
        c(&["DECR", "n"]),
        c(&["DECRBY", "n", "2"]),
        c(&["INCRBYFLOAT", "f", "1.5"]),
        c(&["INCRBYFLOAT", "f", "2"]),
        c(&["INCR", "ap"]),
        c(&["GET", "nokey"]),
        // generic
        c(&["DEL", "m1", "m2", "nokey"]),
        c(&["UNLINK", "m3"]),
        c(&["EXPIRE", "m4", "100"]),
        c(&["PEXPIRE", "m4", "100000"]),
        c(&["EXPIRE", "m4", "100", "NX"]),
        c(&["EXPIREAT", "m4", "1"]),
        c(&["EXPIRE", "nokey", "100"]),
        c(&["PERSIST", "s1"]),
        c(&["PERSIST", "s1"]),
        c(&["SET", "r1", "a"]),
        c(&["SET", "r2", "b"]),
        c(&["RENAME", "r1", "r2"]),
        c(&["RENAMENX", "r2", "r3"]),
        c(&["RENAMENX", "r3", "n"]),
        c(&["RENAME", "r3", "r3"]),
        c(&["MOVE", "r3", "1"]),
        c(&["COPY", "n", "n2"]),
        c(&["COPY", "n", "n2"]),
        c(&["COPY", "n", "n2", "REPLACE"]),
        c(&["COPY", "n", "n3", "DB", "1"]),
        c(&["SELECT", "1"]),
        c(&["DEL", "r3", "n3"]),
        c(&["LPUSH", "l", "in-db1"]),
        c(&["SELECT", "0"]),
        restore(&[]),
        restore(&["REPLACE"]),
        restore(&[]),
        restore(&["REPLACE", "ABSTTL", "1"]),
        // lists
        c(&["LPUSH", "l", "a", "b", "c"]),
        c(&["RPUSH", "l", "d"]),
        c(&["LPUSHX", "nol", "a"]),
        c(&["RPUSHX", "l", "e"]),
        c(&["LINSERT", "l", "BEFORE", "a", "x"]),
        c(&["LINSERT", "l", "BEFORE", "zz", "x"]),
        c(&["LSET", "l", "0", "y"]),
        c(&["LREM", "l", "1", "y"]),
        c(&["LREM", "l", "0", "nothing"]),
        c(&["LTRIM", "l", "0", "100"]),
        c(&["LPOP", "l"]),
        c(&["RPOP", "l", "2"]),
        c(&["LMOVE", "l", "l2", "LEFT", "RIGHT"]),
        c(&["RPOPLPUSH", "l", "l2"]),
        c(&["LMOVE", "l", "l", "LEFT", "RIGHT"]),
        c(&["LMPOP", "2", "nol", "l2", "LEFT", "COUNT", "10"]),
        c(&["LRANGE", "l", "0", "-1"]),
        c(&["RPUSH", "l3", "3", "1", "2"]),
        c(&["SORT", "l3", "STORE", "l4"]),
        c(&["SORT", "nol", "STORE", "l4"]),
        c(&["LTRIM", "l3", "5", "10"]),
        c(&["LTRIM", "nol", "0", "1"]),
        c(&["RPUSH", "l5", "only"]),
        c(&["LREM", "l5", "0", "only"]),
        // hashes
        c(&["HSET", "h", "a", "1", "b", "2"]),
        c(&["HMSET", "h", "c", "3"]),
        c(&["HSETNX", "h", "a", "9"]),
        c(&["HSETNX", "h", "d", "4"]),
        c(&["HINCRBY", "h", "a", "5"]),
        c(&["HINCRBYFLOAT", "h", "b", "0.5"]),
        c(&["HDEL", "h", "a", "b", "c", "x"]),
        c(&["HDEL", "h", "x"]),
        c(&["HDEL", "h", "d"]),
        c(&["HINCRBY", "h2", "f", "1"]),
        // sets
        c(&["SADD", "st", "a", "b", "c"]),
        c(&["SADD", "st", "a"]),
        c(&["SREM", "st", "x"]),
        c(&["SREM", "st", "a"]),
        c(&["SMOVE", "st", "st2", "b"]),
        c(&["SMOVE", "st", "st2", "x"]),
        c(&["SMOVE", "st", "st2", "c"]),
        c(&["SADD", "st3", "b", "z"]),
        c(&["SINTERSTORE", "d1", "st2", "st3"]),
        c(&["SUNIONSTORE", "d2", "st2", "st3"]),
        c(&["SDIFFSTORE", "d3", "st2", "st3"]),
        c(&["SINTERSTORE", "d1", "st2", "nokey"]),
        // (The whole set comes back in each server's own order.)
        Step::Quiet(vec![b"SPOP".to_vec(), b"d2".to_vec(), b"10".to_vec()]),
        c(&["SPOP", "d3"]),
        c(&["SPOP", "st2", "0"]),
        c(&["SADD", "st4", "a", "b"]),
        c(&["SREM", "st4", "a", "b", "c"]),
        // sorted sets
        c(&["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"]),
        c(&["ZADD", "z", "XX", "1", "nope"]),
        c(&["ZADD", "z", "NX", "10", "a"]),
        c(&["ZADD", "z", "CH", "10", "a"]),
        c(&["ZADD", "zx", "XX", "1", "a"]),
        c(&["ZINCRBY", "z", "1", "b"]),
        c(&["ZADD", "z", "INCR", "1", "c"]),
        c(&["ZREM", "z", "nope"]),
        c(&["ZREM", "z", "a"]),
        c(&["ZREMRANGEBYSCORE", "z", "100", "200"]),
        c(&["ZREMRANGEBYSCORE", "z", "3", "3"]),
        c(&["ZREMRANGEBYRANK", "z", "0", "0"]),
        c(&["ZREMRANGEBYRANK", "z", "5", "9"]),
        c(&["ZADD", "zl", "0", "a", "0", "b", "0", "c"]),
        c(&["ZREMRANGEBYLEX", "zl", "[a", "[a"]),
        c(&["ZPOPMIN", "zl"]),
        c(&["ZPOPMAX", "zl", "5"]),
        c(&["ZADD", "za", "1", "x", "2", "y"]),
        c(&["ZADD", "zb", "2", "y", "3", "z"]),
        c(&["ZUNIONSTORE", "zu", "2", "za", "zb"]),
        c(&["ZINTERSTORE", "zi", "2", "za", "zb"]),
        c(&["ZDIFFSTORE", "zd", "2", "za", "zb"]),
        c(&["ZRANGESTORE", "zr", "za", "0", "-1"]),
        c(&["ZINTERSTORE", "zi", "2", "za", "nokey"]),
        c(&["ZMPOP", "1", "zr", "MIN", "COUNT", "5"]),
        c(&["ZREM", "zd", "x"]),
        // bitmaps and HyperLogLog (string events; none for what changed nothing)
        c(&["SETBIT", "bm", "7", "1"]),
        c(&["SETBIT", "bm", "7", "1"]),
        c(&["SETBIT", "bm", "100", "0"]),
        c(&["GETBIT", "nokey", "3"]),
        c(&["BITFIELD", "bf", "SET", "u8", "0", "5", "GET", "u8", "0"]),
        c(&["BITFIELD", "bf", "GET", "u8", "0"]),
        c(&["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u2", "0", "9"]),
        c(&["BITFIELD", "bf2", "OVERFLOW", "FAIL", "SET", "u2", "0", "9"]),
        c(&["BITFIELD_RO", "nokey", "GET", "i4", "0"]),
        c(&["BITOP", "AND", "bd", "bm", "bf"]),
        c(&["BITOP", "OR", "bd", "nokey"]),
        c(&["BITOP", "OR", "bd", "nokey"]),
        c(&["BITCOUNT", "nokey"]),
        c(&["PFADD", "hl", "a", "b"]),
        c(&["PFADD", "hl", "a"]),
        c(&["PFADD", "hl2"]),
        c(&["PFCOUNT", "hl"]),
        c(&["PFMERGE", "hl3", "hl", "hl2"]),
        c(&["PFDEBUG", "TODENSE", "hl3"]),
        c(&["PFCOUNT", "nokey"]),
        // a transaction and a script raise their commands' events, in order
        c(&["MULTI"]),
        c(&["SET", "t1", "a"]),
        c(&["LPUSH", "t2", "b"]),
        c(&["DEL", "t1"]),
        c(&["EXEC"]),
        c(&[
            "EVAL",
            "redis.call('set', KEYS[1], 'x'); redis.call('rpush', KEYS[2], 'y'); redis.call('del', KEYS[1]); return 1",
            "2",
            "sc",
            "scl",
        ]),
        // lazy expiry (the active cycle is off): "expired" before the command's own
        c(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]),
        c(&["SET", "e1", "v", "PX", "1"]),
        c(&["SET", "e2", "v", "PX", "1"]),
        c(&["RPUSH", "e3", "v"]),
        c(&["PEXPIRE", "e3", "1"]),
        c(&["SET", "e4", "v", "PX", "1"]),
        c(&["SET", "e5", "v", "PX", "1"]),
        c(&["SET", "e6", "v", "PX", "1"]),
        c(&["SET", "e7", "v", "PX", "1"]),
        c(&["SET", "e8", "v", "PX", "1"]),
        c(&["SET", "e9", "v", "PX", "1"]),
        c(&["SADD", "e6src", "a"]),
        c(&["ZADD", "e8src", "1", "a"]),
        c(&["RPUSH", "e9src", "1"]),
        Step::PassTime,
        // Writes over a stale key: "expired" first, then "new".
        c(&["MSET", "e5", "x"]),
        c(&["SUNIONSTORE", "e6", "e6src"]),
        c(&["RENAME", "e6src", "e7"]),
        c(&["ZUNIONSTORE", "e8", "1", "e8src"]),
        c(&["SORT", "e9src", "STORE", "e9"]),
        c(&["GET", "e1"]),
        c(&["SET", "e2", "new"]),
        c(&["LPUSH", "e3", "w"]),
        c(&["DEL", "e4"]),
        c(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]),
        Step::Quiet(vec![b"FLUSHALL".to_vec()]),
    ]
}

/// A DUMP payload made by the real Redis (redsnap RESTOREs what Redis DUMPs).
fn redis_payload(redis_port: u16) -> Vec<u8> {
    let mut c = Client::connect(redis_port);
    c.cmd_str(&["SET", "payload-src", "hello"]);
    c.send(&[b"DUMP", b"payload-src"]);
    let r = c.read();
    c.cmd_str(&["DEL", "payload-src"]);
    r.parts.into_iter().next().expect("DUMP payload")
}

#[test]
fn events_of_every_command_match_redis() {
    let s = Servers::start();
    let payload = redis_payload(s.redis.port());
    let steps = scenario(&payload);
    for flags in ["KEA", "KEAnm", "Kgl", "Ez$hx", "A"] {
        let [(_, rp), (_, sp)] = s.ports();
        let redis = run_scenario(rp, flags, &steps);
        let redsnap = run_scenario(sp, flags, &steps);
        assert_same(&format!("flags {flags}"), &redis, &redsnap);
        if flags.contains('K') || flags.contains('E') {
            assert!(!redis.all_resp2.is_empty(), "{flags}: no events at all");
        } else {
            // Classes without K or E publish nothing.
            assert!(redis.all_resp2.is_empty(), "{flags}: {:?}", redis.all_resp2);
        }
    }
}

/// Waits (bounded) until the server reports `n` blocked clients.
fn wait_blocked(c: &mut Client, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.cmd_str(&["INFO", "clients"]).contains(&want) {
        assert!(Instant::now() < deadline, "never saw {want}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blocked_pops_served_by_a_push_raise_their_events_after_the_push() {
    let s = Servers::start();
    let mut outcomes = Vec::new();
    for (_, port) in s.ports() {
        let mut c = Client::connect(port);
        c.cmd_str(&["FLUSHALL"]);
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"]);
        let mut sub = Subscriber::new(port, false, true, &["*"]);
        let mut replies = Vec::new();
        for (block, push) in [
            (vec!["BLPOP", "bl", "0"], vec!["LPUSH", "bl", "a", "b"]),
            (
                vec!["BLMOVE", "bsrc", "bdst", "LEFT", "RIGHT", "0"],
                vec!["RPUSH", "bsrc", "x"],
            ),
            (vec!["BZPOPMIN", "bz", "0"], vec!["ZADD", "bz", "1", "m"]),
            (
                vec!["BLMPOP", "0", "1", "bm", "RIGHT", "COUNT", "5"],
                vec!["RPUSH", "bm", "1", "2"],
            ),
        ] {
            let mut blocked = Client::connect(port);
            let a: Vec<&[u8]> = block.iter().map(|x| x.as_bytes()).collect();
            blocked.send(&a);
            wait_blocked(&mut c, 1);
            replies.push(c.cmd_str(&push));
            replies.push(String::from_utf8_lossy(&blocked.read().raw).into_owned());
        }
        publish_sentinel(&mut c);
        outcomes.push((replies, sub.collect()));
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    }
    assert_eq!(outcomes[0], outcomes[1], "redis first");
    assert!(outcomes[0].1.iter().any(|m| m.contains("lpop")));
}

#[test]
fn active_expiry_and_eviction_raise_expired_and_evicted() {
    let s = Servers::start();
    for (name, port) in s.ports() {
        let mut c = Client::connect(port);
        c.cmd_str(&["FLUSHALL"]);
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "Exe"]);
        let mut sub = Client::connect(port);
        sub.cmd_str(&["PSUBSCRIBE", "__keyevent@*"]);
        // Nothing reads the key: only the expiry cycle can delete it.
        c.cmd_str(&["SET", "foo", "1", "PX", "50"]);
        let r = sub.read();
        assert_eq!(
            r.parts,
            [
                b"pmessage".to_vec(),
                b"__keyevent@*".to_vec(),
                b"__keyevent@0__:expired".to_vec(),
                b"foo".to_vec()
            ],
            "{name}"
        );
        c.cmd_str(&["SET", "bar", "1"]);
        c.cmd_str(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
        assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxmemory", "1"]), "+OK\r\n");
        let r = sub.read();
        c.cmd_str(&["CONFIG", "SET", "maxmemory", "0"]);
        c.cmd_str(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
        assert_eq!(
            r.parts,
            [
                b"pmessage".to_vec(),
                b"__keyevent@*".to_vec(),
                b"__keyevent@0__:evicted".to_vec(),
                b"bar".to_vec()
            ],
            "{name}"
        );
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    }
}

#[test]
fn config_get_set_render_classes_like_redis() {
    let s = Servers::start();
    let inputs = [
        "",
        "KEA",
        "gKE",
        "$lshzxeKE",
        "KA",
        "EA",
        "AKEmn",
        "nE",
        "Kmtd",
        "g$lshzxetd",
        "KKg",
        "x",
        "bad",
        "KEX",
        "K E",
    ];
    let mut seen = Vec::new();
    for (_, port) in s.ports() {
        let mut c = Client::connect(port);
        let mut out = Vec::new();
        for i in inputs {
            let set = c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", i]);
            let get = c.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]);
            out.push(format!("{i:?}: {set} {get}"));
        }
        c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", ""]);
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1], "redis first");
    assert!(seen[1].iter().any(|l| l.contains("AK")), "{:?}", seen[1]);
}

/// Pipelines `cmds` (then `CLIENT REPLY ON` and an ECHO marking the end) and
/// returns every byte the server sent back.
fn client_reply_stream(port: u16, resp3: bool, cmds: &[&[&str]]) -> String {
    let mut c = Client::connect(port);
    c.cmd_str(&["FLUSHALL"]);
    if resp3 {
        c.cmd_str(&["HELLO", "3"]);
    }
    let mut buf = Vec::new();
    for args in cmds
        .iter()
        .copied()
        .chain([&["CLIENT", "REPLY", "ON"][..], &["ECHO", "the-end"][..]])
    {
        let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
        buf.extend_from_slice(&encode_command(&a));
    }
    c.rd.get_mut().write_all(&buf).expect("write");
    let mut raw = Vec::new();
    loop {
        let r = c.read();
        raw.extend_from_slice(&r.raw);
        if r.parts.iter().any(|p| p == b"the-end") {
            return String::from_utf8_lossy(&raw).into_owned();
        }
    }
}

#[test]
fn client_reply_off_skip_on_match_redis() {
    let s = Servers::start();
    let cases: Vec<(bool, Vec<&[&str]>)> = vec![
        (
            false,
            vec![
                &["CLIENT", "REPLY", "OFF"],
                &["SET", "a", "1"],
                &["GET", "a"],
                &["NOSUCHCOMMAND"],
                &["CLIENT", "REPLY", "SKIP"],
                &["GET", "a"],
            ],
        ),
        (
            false,
            vec![
                &["CLIENT", "REPLY", "SKIP"],
                &["INCR", "n"],
                &["INCR", "n"],
                &["CLIENT", "REPLY", "SKIP"],
                &["GET", "wrong", "arity"],
                &["GET", "n"],
                &["CLIENT", "REPLY", "SKIP"],
                &["CLIENT", "REPLY", "ON"],
                &["CLIENT", "REPLY", "BOGUS"],
                &["MULTI"],
                &["INCR", "n"],
                &["EXEC"],
            ],
        ),
        // Pub/sub confirmations and messages still arrive with replies off.
        (
            true,
            vec![
                &["CLIENT", "REPLY", "OFF"],
                &["SUBSCRIBE", "ch"],
                &["PUBLISH", "ch", "to-self"],
                &["PSUBSCRIBE", "c*"],
                &["PING"],
                &["UNSUBSCRIBE", "ch"],
                &["PUNSUBSCRIBE"],
            ],
        ),
        (
            false,
            vec![
                &["CLIENT", "REPLY", "SKIP"],
                &["SUBSCRIBE", "ch"],
                &["CLIENT", "REPLY", "OFF"],
                &["PING"],
                &["UNSUBSCRIBE"],
            ],
        ),
    ];
    for (resp3, cmds) in &cases {
        let [(_, rp), (_, sp)] = s.ports();
        let redis = client_reply_stream(rp, *resp3, cmds);
        let redsnap = client_reply_stream(sp, *resp3, cmds);
        assert_eq!(redis, redsnap, "{cmds:?} (redis first)");
    }
}

#[test]
fn notifications_off_by_default_and_on_at_once() {
    let s = Servers::start();
    let port = s.redsnap.port();
    let mut c = Client::connect(port);
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "notify-keyspace-events"]),
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$0\r\n\r\n"
    );
    let mut sub = Subscriber::new(port, false, true, &["*"]);
    c.cmd_str(&["SET", "quiet", "1"]);
    c.cmd_str(&["CONFIG", "SET", "notify-keyspace-events", "K$"]);
    c.cmd_str(&["SET", "loud", "1"]);
    publish_sentinel(&mut c);
    assert_eq!(
        sub.collect(),
        ["*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$19\r\n__keyspace@0__:loud\r\n$3\r\nset\r\n"]
    );
}

/// The startup flag sets the classes (the config file goes through the same
/// `Config::set`: see the unit test `config::tests::notify_keyspace_events`), and
/// events flow from the first command.
#[test]
fn startup_flag_sets_the_classes() {
    let mut s = RedsnapServer::builder()
        .extra_args(&[
            "--notify-keyspace-events",
            "Kl",
            "--appendonly",
            "no",
            "--save",
            "",
        ])
        .start()
        .expect("redsnap with the flag");
    let mut c = Client::connect(s.port());
    assert!(c
        .cmd_str(&["CONFIG", "GET", "notify-keyspace-events"])
        .ends_with("$2\r\nlK\r\n"));
    let mut sub = Subscriber::new(s.port(), false, false, &["__keyspace@0__:q"]);
    c.cmd_str(&["RPUSH", "q", "job"]);
    publish_sentinel(&mut c);
    assert_eq!(
        sub.collect(),
        ["*3\r\n$7\r\nmessage\r\n$16\r\n__keyspace@0__:q\r\n$5\r\nrpush\r\n"]
    );
    s.stop();
    let bad = RedsnapServer::builder()
        .extra_args(&[
            "--notify-keyspace-events",
            "Kq",
            "--appendonly",
            "no",
            "--save",
            "",
        ])
        .start();
    assert!(bad.is_err(), "an invalid class must stop startup");
}
