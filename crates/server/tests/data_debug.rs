//! DEBUG DIGEST / DIGEST-VALUE / PROTOCOL / RELOAD / LOADAOF, encodings that stay
//! converted, RESTORE IDLETIME / FREQ, and the replication stream (SYNC, PSYNC) seen
//! raw and by a real redis-server replicating from redsnap.
//!
//! Every wait is bounded (socket timeouts, polling with a deadline).

use redsnap_engine::Value;
use redsnap_persist::rdbfile::{Item, RdbReader, ReadOptions};
use redsnap_testsupport::{encode_command, RawConn, RedisServer, RedsnapServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn conn(port: u16) -> RawConn {
    RawConn::connect(port).expect("connect")
}

fn cmd(c: &mut RawConn, args: &[&str]) -> String {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    String::from_utf8_lossy(&c.command(&a).expect("command")).into_owned()
}

fn ok(c: &mut RawConn, args: &[&str]) -> String {
    let r = cmd(c, args);
    assert!(!r.starts_with('-'), "{args:?} -> {r}");
    r
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A dataset with every type, in two databases, some keys with a TTL.
fn populate(c: &mut RawConn) {
    for db in ["0", "3"] {
        ok(c, &["SELECT", db]);
        ok(c, &["SET", "s", "hello"]);
        ok(c, &["SET", "n", "12345", "EX", "100000"]);
        ok(c, &["RPUSH", "l", "a", "b", "c", "1"]);
        ok(c, &["HSET", "h", "f1", "v1", "f2", "2"]);
        ok(c, &["SADD", "st", "x", "y", "3"]);
        ok(c, &["SADD", "is", "1", "2", "3"]);
        ok(c, &["ZADD", "z", "1.5", "a", "-2", "b", "3", "c"]);
        ok(c, &["PEXPIRE", "z", "99999999"]);
    }
    ok(c, &["SELECT", "0"]);
}

fn digest(c: &mut RawConn) -> String {
    let r = ok(c, &["DEBUG", "DIGEST"]);
    let d = r.trim_start_matches('+').trim_end().to_string();
    assert_eq!(d.len(), 40, "{r}");
    d
}

#[test]
fn digest_is_stable_across_reload_and_loadaof_and_tracks_content() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "yes", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    assert_eq!(digest(&mut c), "0".repeat(40));
    populate(&mut c);
    let d1 = digest(&mut c);
    assert_ne!(d1, "0".repeat(40));
    assert_eq!(ok(&mut c, &["DEBUG", "RELOAD"]), "+OK\r\n");
    assert_eq!(digest(&mut c), d1);
    assert_eq!(ok(&mut c, &["DEBUG", "LOADAOF"]), "+OK\r\n");
    assert_eq!(digest(&mut c), d1);
    // A copy has the value's digest; the dataset digest changes with it.
    ok(&mut c, &["COPY", "z", "z2"]);
    let v = ok(&mut c, &["DEBUG", "DIGEST-VALUE", "z", "z2", "nokey"]);
    let lines: Vec<&str> = v.split("\r\n").collect();
    assert_eq!(lines[0], "*3");
    assert_eq!(lines[1], lines[2]);
    assert_eq!(lines[3], format!("+{}", "0".repeat(40)));
    let d2 = digest(&mut c);
    assert_ne!(d2, d1);
    // Order matters in lists only.
    ok(&mut c, &["DEL", "z2"]);
    assert_eq!(digest(&mut c), d1);
    ok(&mut c, &["SREM", "st", "x"]);
    ok(&mut c, &["SADD", "st", "x"]);
    assert_eq!(digest(&mut c), d1);
    ok(&mut c, &["RPOP", "l"]);
    ok(&mut c, &["LPUSH", "l", "1"]);
    assert_ne!(digest(&mut c), d1);
    ok(&mut c, &["LPOP", "l"]);
    ok(&mut c, &["RPUSH", "l", "1"]);
    assert_eq!(digest(&mut c), d1);
    // The TTL's presence counts, not its value.
    ok(&mut c, &["EXPIRE", "n", "5000"]);
    assert_eq!(digest(&mut c), d1);
    ok(&mut c, &["PERSIST", "n"]);
    assert_ne!(digest(&mut c), d1);
}

/// Writes `args`, then reads exactly `want.len()` bytes and compares them.
fn expect_raw(s: &mut BufReader<TcpStream>, args: &[&str], want: &[u8]) {
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
    s.get_mut().write_all(&encode_command(&a)).expect("write");
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "{args:?}"
    );
}

fn raw_stream(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    BufReader::new(s)
}

#[test]
fn debug_protocol_sends_each_resp_type() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut r = raw_stream(s.port());
    let after = b"$39\r\nSome real reply following the attribute\r\n";
    // RESP2: the attribute is left out; big numbers and booleans degrade.
    expect_raw(&mut r, &["DEBUG", "PROTOCOL", "attrib"], after);
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "bignum"],
        b"$37\r\n1234567999999999999999999999999999999\r\n",
    );
    expect_raw(&mut r, &["DEBUG", "PROTOCOL", "true"], b":1\r\n");
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "push"],
        b"-ERR RESP2 is not supported by this command\r\n",
    );
    expect_raw(
        &mut r,
        &["PING", "a", "b"],
        b"-ERR wrong number of arguments for 'ping' command\r\n",
    );
    // RESP3.
    let hello = {
        r.get_mut()
            .write_all(&encode_command(&[b"HELLO", b"3"]))
            .expect("write");
        // The HELLO map: read its header and 7 pairs of simple lines / bulks.
        let mut line = String::new();
        r.read_line(&mut line).expect("hello");
        line
    };
    assert!(hello.starts_with('%'), "{hello}");
    let pairs: usize = hello[1..].trim().parse().expect("map len");
    for _ in 0..pairs * 2 {
        skip_reply(&mut r);
    }
    let mut want = b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n".to_vec();
    want.extend_from_slice(after);
    expect_raw(&mut r, &["DEBUG", "PROTOCOL", "attrib"], &want);
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "bignum"],
        b"(1234567999999999999999999999999999999\r\n",
    );
    expect_raw(&mut r, &["DEBUG", "PROTOCOL", "false"], b"#f\r\n");
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "map"],
        b"%3\r\n:0\r\n#f\r\n:1\r\n#t\r\n:2\r\n#f\r\n",
    );
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "verbatim"],
        b"=29\r\ntxt:This is a verbatim\nstring\r\n",
    );
    expect_raw(
        &mut r,
        &["DEBUG", "PROTOCOL", "push"],
        b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n",
    );
    expect_raw(&mut r, &["DEBUG", "PROTOCOL", "double"], b",3.141\r\n");
}

/// Skips one RESP2/RESP3 reply made of lines, bulks and aggregates.
fn skip_reply(r: &mut BufReader<TcpStream>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("line");
    let n = || line[1..].trim().parse::<i64>().expect("len");
    match line.as_bytes()[0] {
        b'$' | b'=' => {
            let mut buf = vec![0u8; n() as usize + 2];
            r.read_exact(&mut buf).expect("bulk");
        }
        b'*' | b'~' => {
            for _ in 0..n() {
                skip_reply(r);
            }
        }
        b'%' => {
            for _ in 0..n() * 2 {
                skip_reply(r);
            }
        }
        _ => {}
    }
}

#[test]
fn encodings_stay_converted_until_the_value_is_replaced() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    let enc = |c: &mut RawConn, k: &str| cmd(c, &["OBJECT", "ENCODING", k]);
    ok(&mut c, &["SET", "k", "1234"]);
    assert_eq!(enc(&mut c, "k"), "$3\r\nint\r\n");
    ok(&mut c, &["SETRANGE", "k", "0", "2"]);
    assert_eq!(enc(&mut c, "k"), "$3\r\nraw\r\n");
    ok(&mut c, &["INCR", "k"]);
    assert_eq!(enc(&mut c, "k"), "$3\r\nint\r\n");
    ok(&mut c, &["APPEND", "k", "5"]);
    assert_eq!(enc(&mut c, "k"), "$3\r\nraw\r\n");
    ok(&mut c, &["SET", "k", "5"]);
    assert_eq!(enc(&mut c, "k"), "$3\r\nint\r\n");
    ok(&mut c, &["SETRANGE", "new", "1", "x"]);
    assert_eq!(enc(&mut c, "new"), "$3\r\nraw\r\n");

    ok(&mut c, &["SADD", "s", "1", "2", "a"]);
    ok(&mut c, &["SREM", "s", "a"]);
    assert_eq!(enc(&mut c, "s"), "$9\r\nhashtable\r\n");
    ok(&mut c, &["SADD", "i", "1", "2"]);
    assert_eq!(enc(&mut c, "i"), "$6\r\nintset\r\n");

    let long = "x".repeat(100);
    ok(&mut c, &["HSET", "h", "f", &long, "g", "1"]);
    ok(&mut c, &["HDEL", "h", "f"]);
    assert_eq!(enc(&mut c, "h"), "$9\r\nhashtable\r\n");
    ok(&mut c, &["HSET", "h2", "f", "1"]);
    assert_eq!(enc(&mut c, "h2"), "$8\r\nlistpack\r\n");

    ok(&mut c, &["ZADD", "z", "1", &long, "2", "b"]);
    ok(&mut c, &["ZREM", "z", &long]);
    assert_eq!(enc(&mut c, "z"), "$8\r\nskiplist\r\n");
    ok(&mut c, &["ZADD", "z2", "1", "a"]);
    assert_eq!(enc(&mut c, "z2"), "$8\r\nlistpack\r\n");
}

#[test]
fn hashes_answer_in_insertion_order() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    ok(
        &mut c,
        &["HSET", "h", "c", "1", "a", "2", "b", "3", "d", "4"],
    );
    ok(&mut c, &["HDEL", "h", "a"]);
    ok(&mut c, &["HSET", "h", "e", "5", "c", "6"]);
    assert_eq!(
        ok(&mut c, &["HKEYS", "h"]),
        "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\nd\r\n$1\r\ne\r\n"
    );
    // DUMP/RESTORE keeps the order.
    let dump = c.command(&[b"DUMP", b"h"]).expect("dump");
    let payload = redsnap_testsupport::bulk_payload(&dump).expect("payload");
    let r = c
        .command(&[b"RESTORE", b"h2", b"0", &payload])
        .expect("restore");
    assert_eq!(r, b"+OK\r\n");
    assert_eq!(
        ok(&mut c, &["HKEYS", "h2"]),
        "*4\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\nd\r\n$1\r\ne\r\n"
    );
}

#[test]
fn restore_idletime_and_freq_follow_the_policy() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    ok(&mut c, &["SET", "foo", "bar"]);
    let dump = c.command(&[b"DUMP", b"foo"]).expect("dump");
    let payload = redsnap_testsupport::bulk_payload(&dump).expect("payload");
    let restore = |c: &mut RawConn, extra: &[&str]| {
        let mut a: Vec<&[u8]> = vec![b"RESTORE", b"foo", b"0", &payload, b"REPLACE"];
        a.extend(extra.iter().map(|x| x.as_bytes()));
        String::from_utf8_lossy(&c.command(&a).expect("restore")).into_owned()
    };
    ok(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    assert_eq!(restore(&mut c, &["IDLETIME", "1000"]), "+OK\r\n");
    let idle =
        redsnap_testsupport::int_reply(cmd(&mut c, &["OBJECT", "IDLETIME", "foo"]).as_bytes())
            .expect("idle");
    assert!((1000..=1010).contains(&idle), "{idle}");
    // Reading the idle time does not reset it; a read does.
    let again = cmd(&mut c, &["OBJECT", "IDLETIME", "foo"]);
    assert!(!again.starts_with(":0"), "{again}");
    ok(&mut c, &["GET", "foo"]);
    assert_eq!(cmd(&mut c, &["OBJECT", "IDLETIME", "foo"]), ":0\r\n");
    assert!(cmd(&mut c, &["OBJECT", "FREQ", "foo"])
        .starts_with("-ERR An LFU maxmemory policy is not selected"));

    ok(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    assert_eq!(restore(&mut c, &["FREQ", "100"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["OBJECT", "FREQ", "foo"]), ":100\r\n");
    assert!(cmd(&mut c, &["OBJECT", "IDLETIME", "foo"])
        .starts_with("-ERR An LFU maxmemory policy is selected"));
    assert!(restore(&mut c, &["FREQ", "256"]).starts_with("-ERR Invalid FREQ value"));
}

#[test]
fn client_unblock_checks_its_arguments_and_command_getkeys_finds_sort_store() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    assert_eq!(
        cmd(&mut c, &["CLIENT", "UNBLOCK", "asd"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        cmd(&mut c, &["CLIENT", "UNBLOCK", "1", "maybe"]),
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    assert_eq!(cmd(&mut c, &["CLIENT", "UNBLOCK", "999999"]), ":0\r\n");
    assert_eq!(
        cmd(
            &mut c,
            &["COMMAND", "GETKEYS", "SORT", "abc", "STORE", "x", "STORE", "def"]
        ),
        "*2\r\n$3\r\nabc\r\n$3\r\ndef\r\n"
    );
    assert_eq!(
        cmd(
            &mut c,
            &["COMMAND", "GETKEYS", "SORT", "abc", "GET", "store"]
        ),
        "*1\r\n$3\r\nabc\r\n"
    );
}

// ---------------------------------------------------------------------------
// Replication
// ---------------------------------------------------------------------------

/// Reads one multibulk command of the replication stream.
fn read_command(r: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut line = String::new();
    r.read_line(&mut line).expect("stream line");
    assert!(line.starts_with('*'), "not a command: {line:?}");
    let n: usize = line[1..].trim().parse().expect("argc");
    (0..n)
        .map(|_| {
            let mut l = String::new();
            r.read_line(&mut l).expect("bulk header");
            let len: usize = l[1..].trim().parse().expect("bulk len");
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf).expect("bulk");
            buf.truncate(len);
            String::from_utf8_lossy(&buf).into_owned()
        })
        .collect()
}

/// SYNC from a raw socket: the RDB file (no CRLF after it), then the stream.
fn attach(port: u16, psync: bool) -> BufReader<TcpStream> {
    let mut r = raw_stream(port);
    let req: &[u8] = if psync {
        b"PSYNC ? -1\r\n"
    } else {
        b"SYNC\r\n"
    };
    r.get_mut().write_all(req).expect("sync");
    let mut line = String::new();
    if psync {
        r.read_line(&mut line).expect("fullresync");
        let parts: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(parts[0], "+FULLRESYNC", "{line}");
        assert_eq!(parts[1].len(), 40, "{line}");
        line.clear();
    }
    r.read_line(&mut line).expect("payload length");
    assert!(line.starts_with('$'), "{line:?}");
    let len: usize = line[1..].trim().parse().expect("len");
    let mut rdb = vec![0u8; len];
    r.read_exact(&mut rdb).expect("rdb");
    let mut reader = RdbReader::new(&rdb[..], ReadOptions::default()).expect("an RDB header");
    let mut entries = Vec::new();
    while let Some(item) = reader.next_item().expect("a valid RDB file") {
        if let Item::Key(k) = item {
            entries.push(k);
        }
    }
    let mut keys: Vec<(usize, String)> = entries
        .iter()
        .map(|e| (e.db as usize, String::from_utf8_lossy(&e.key).into_owned()))
        .collect();
    keys.sort();
    assert_eq!(keys, [(0, "a".into()), (0, "l".into()), (2, "b".into())]);
    let l = entries.iter().find(|e| &e.key[..] == b"l").expect("l");
    assert!(matches!(&l.value, Value::List(v) if v.len() == 1));
    r
}

#[test]
fn sync_hands_over_an_rdb_file_then_the_write_stream() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    ok(&mut c, &["SET", "a", "1"]);
    ok(&mut c, &["RPUSH", "l", "x"]);
    ok(&mut c, &["SELECT", "2"]);
    ok(&mut c, &["SET", "b", "2"]);
    let mut rep = attach(s.port(), false);
    let mut rep2 = attach(s.port(), true);
    let before = now_ms();
    ok(&mut c, &["SET", "k", "v", "EX", "100"]);
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["PEXPIRE", "a", "5000"]);
    ok(&mut c, &["MULTI"]);
    ok(&mut c, &["INCR", "a"]);
    ok(&mut c, &["INCR", "a"]);
    ok(&mut c, &["EXEC"]);
    // A no-op is not propagated; a single write in a transaction is not wrapped.
    ok(&mut c, &["EXPIRE", "nokey", "10"]);
    ok(&mut c, &["MULTI"]);
    ok(&mut c, &["DEL", "l"]);
    ok(&mut c, &["GET", "a"]);
    ok(&mut c, &["EXEC"]);
    ok(&mut c, &["SET", "e", "v", "PX", "1"]);
    // Lazy expiry of a key read after its deadline is propagated as a DEL.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cmd(&mut c, &["GET", "e"]) != "$-1\r\n" {
        assert!(Instant::now() < deadline, "e never expired");
    }
    for r in [&mut rep, &mut rep2] {
        assert_eq!(read_command(r), ["SELECT", "2"]);
        let set = read_command(r);
        assert_eq!(set[..4], ["SET", "k", "v", "PXAT"]);
        let at: u64 = set[4].parse().expect("pxat");
        assert!(at >= before + 100_000 && at <= now_ms() + 100_000, "{at}");
        assert_eq!(read_command(r), ["SELECT", "0"]);
        let exp = read_command(r);
        assert_eq!(exp[..2], ["PEXPIREAT", "a"]);
        assert_eq!(read_command(r), ["MULTI"]);
        assert_eq!(read_command(r), ["INCR", "a"]);
        assert_eq!(read_command(r), ["INCR", "a"]);
        assert_eq!(read_command(r), ["EXEC"]);
        assert_eq!(read_command(r), ["DEL", "l"]);
        let set = read_command(r);
        assert_eq!(set[..4], ["SET", "e", "v", "PXAT"]);
        assert_eq!(read_command(r), ["DEL", "e"]);
    }
    // PING every repl-ping-replica-period seconds.
    ok(&mut c, &["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    assert_eq!(read_command(&mut rep), ["PING"]);
    // A replica that goes away is forgotten: writes go on.
    drop(rep);
    drop(rep2);
    ok(&mut c, &["SET", "after", "1"]);
    assert_eq!(cmd(&mut c, &["GET", "after"]), "$1\r\n1\r\n");
}

/// Polls `f` until it is true, for at most `secs` seconds.
fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_real_redis_replica_follows_redsnap() {
    let s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    populate(&mut c);
    let port = s.port().to_string();
    let replica = RedisServer::builder()
        .extra_args(&[
            "--replicaof",
            "127.0.0.1",
            &port,
            "--enable-debug-command",
            "yes",
        ])
        .start()
        .expect("start redis-server");
    let mut rc = conn(replica.port());
    let d1 = digest(&mut c);
    wait_until(20, "the initial synchronization", || {
        cmd(&mut rc, &["INFO", "replication"]).contains("master_link_status:up")
            && digest(&mut rc) == d1
    });
    // Then the stream: transactions, expiries, other databases, deletions.
    ok(&mut c, &["SELECT", "3"]);
    ok(&mut c, &["MULTI"]);
    ok(&mut c, &["LPUSH", "l", "new"]);
    ok(&mut c, &["HINCRBYFLOAT", "h", "f2", "0.25"]);
    ok(&mut c, &["EXEC"]);
    ok(&mut c, &["SETEX", "tmp", "1000", "v"]);
    ok(&mut c, &["SELECT", "5"]);
    ok(&mut c, &["ZADD", "z", "1", "m"]);
    ok(&mut c, &["SPOP", "nokey"]);
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["DEL", "s"]);
    ok(&mut c, &["EXPIRE", "l", "100000"]);
    ok(&mut c, &["INCRBYFLOAT", "n", "1.5"]);
    let d2 = digest(&mut c);
    assert_ne!(d1, d2);
    wait_until(20, "the replica to apply the stream", || {
        digest(&mut rc) == d2
    });
    assert_eq!(cmd(&mut rc, &["SELECT", "3"]), "+OK\r\n");
    let ttl =
        redsnap_testsupport::int_reply(cmd(&mut rc, &["TTL", "tmp"]).as_bytes()).expect("ttl");
    assert!((990..=1000).contains(&ttl), "{ttl}");
}

/// DEBUG POPULATE as Redis's debug.c: `key:<j>` = `value:<j>`, a prefix and a size
/// (cut or zero-padded), existing keys left alone; and, unlike Redis, the keys are
/// in the append log (a restart keeps them).
#[test]
fn debug_populate_adds_keys_that_persist() {
    let mut s = RedsnapServer::builder()
        .extra_args(&["--appendonly", "yes", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(s.port());
    ok(&mut c, &["SET", "key:3", "mine"]);
    assert_eq!(ok(&mut c, &["DEBUG", "POPULATE", "1000"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["DBSIZE"]), ":1000\r\n");
    assert_eq!(cmd(&mut c, &["GET", "key:999"]), "$9\r\nvalue:999\r\n");
    assert_eq!(cmd(&mut c, &["GET", "key:3"]), "$4\r\nmine\r\n");
    ok(&mut c, &["DEBUG", "POPULATE", "3", "p", "10"]);
    assert_eq!(cmd(&mut c, &["GET", "p:2"]), "$10\r\nvalue:2\0\0\0\r\n");
    ok(&mut c, &["DEBUG", "POPULATE", "2", "q", "3"]);
    assert_eq!(cmd(&mut c, &["GET", "q:1"]), "$3\r\nval\r\n");
    assert!(cmd(&mut c, &["DEBUG", "POPULATE", "-1"]).starts_with("-ERR value is out of range"));
    assert!(cmd(&mut c, &["DEBUG", "POPULATE", "x"]).starts_with("-ERR value is not an integer"));
    assert_eq!(cmd(&mut c, &["DBSIZE"]), ":1005\r\n");
    drop(c);
    // kill -9: no final snapshot, so what comes back is what the append log holds.
    s.kill_9();
    s.restart().expect("restart");
    let mut c = conn(s.port());
    assert_eq!(cmd(&mut c, &["DBSIZE"]), ":1005\r\n");
    assert_eq!(cmd(&mut c, &["GET", "key:500"]), "$9\r\nvalue:500\r\n");
}
