//! Streams against the real binary (issue 15): a stream with consumer groups and
//! pending entries survives SHUTDOWN and `kill -9` under `appendfsync always`
//! (snapshot plus append log), XADD ... MAXLEN ~ inside MULTI and Lua scripts (what
//! RQ and BullMQ send), and a blocked XREADGROUP woken by XADD.

use redis::Value as V;
use redsnap_testsupport::RedsnapServer;
use std::time::Duration;

fn conn(s: &RedsnapServer) -> redis::Connection {
    let c = redis::Client::open(s.url()).expect("url");
    let conn = c.get_connection().expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    conn
}

fn q(c: &mut redis::Connection, args: &[&str]) -> V {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What must survive a restart: entries, groups, PELs, consumers and counters.
fn state(c: &mut redis::Connection) -> Vec<V> {
    vec![
        q(c, &["XRANGE", "st", "-", "+"]),
        q(c, &["XPENDING", "st", "g1"]),
        // Delivery and seen times as absolute ms (XPENDING's idle times move on).
        q(c, &["XINFO", "STREAM", "st", "FULL", "COUNT", "0"]),
        q(c, &["XINFO", "GROUPS", "st"]),
        q(c, &["XLEN", "st"]),
        q(c, &["DEBUG", "DIGEST-VALUE", "st"]),
    ]
}

fn fill(c: &mut redis::Connection) {
    for i in 1..=300 {
        let id = format!("{i}-0");
        q(c, &["XADD", "st", &id, "f", &i.to_string(), "g", "x"]);
    }
    q(c, &["XDEL", "st", "7-0", "120-0"]);
    q(c, &["XGROUP", "CREATE", "st", "g1", "0"]);
    q(c, &["XGROUP", "CREATE", "st", "g2", "$"]);
    q(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "5",
            "STREAMS",
            "st",
            ">",
        ],
    );
    q(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "NOACK",
            "COUNT",
            "5",
            "STREAMS",
            "st",
            ">",
        ],
    );
    q(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "carol",
            "COUNT",
            "3",
            "STREAMS",
            "st",
            ">",
        ],
    );
    q(c, &["XACK", "st", "g1", "2-0"]);
    q(c, &["XCLAIM", "st", "g1", "bob", "0", "3-0"]);
    q(c, &["XTRIM", "st", "MAXLEN", "~", "250"]);
    q(c, &["XADD", "st", "MAXLEN", "=", "280", "*", "f", "last"]);
}

#[test]
fn streams_survive_shutdown_and_kill_9_under_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&["--appendonly", "yes", "--appendfsync", "always"])
        .start()
        .expect("start");
    let mut c = conn(&s);
    fill(&mut c);
    let before = state(&mut c);
    drop(c);
    s.kill_9();
    s.restart().expect("restart after kill -9");
    let mut c = conn(&s);
    assert_eq!(state(&mut c), before, "after kill -9 (log replay)");
    q(&mut c, &["BGSAVE"]);
    std::thread::sleep(Duration::from_millis(500));
    q(&mut c, &["XADD", "st", "*", "after", "snapshot"]);
    let before = state(&mut c);
    let _ = redis::cmd("SHUTDOWN").query::<V>(&mut c);
    drop(c);
    s.restart().expect("restart after shutdown");
    let mut c = conn(&s);
    assert_eq!(state(&mut c), before, "after SHUTDOWN (snapshot)");
}

#[test]
fn xadd_with_approximate_maxlen_in_multi_and_scripts() {
    let s = RedsnapServer::start().expect("start");
    let mut c = conn(&s);
    let r: V = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(&["rq:results:1", "MAXLEN", "~", "10", "*", "status", "ok"])
        .query(&mut c)
        .expect("MULTI/EXEC");
    assert!(matches!(&r, V::Array(v) if v.len() == 1), "{r:?}");
    let r = q(
        &mut c,
        &[
            "EVAL",
            "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', 10, '*', 'event', 'added')",
            "1",
            "bull:q:events",
        ],
    );
    assert!(matches!(r, V::BulkString(_)), "{r:?}");
    assert_eq!(q(&mut c, &["XLEN", "bull:q:events"]), V::Int(1));
    let r = redis::cmd("EVAL")
        .arg(&[
            "return redis.pcall('XREAD', 'BLOCK', 10, 'STREAMS', KEYS[1], '$')",
            "1",
            "bull:q:events",
        ])
        .query::<V>(&mut c);
    let e = r.expect_err("BLOCK is refused in scripts");
    assert!(
        e.to_string()
            .contains("XREAD command is not allowed with BLOCK option from scripts"),
        "{e}"
    );
}

#[test]
fn blocked_xreadgroup_is_served_by_xadd() {
    let s = RedsnapServer::start().expect("start");
    let mut c = conn(&s);
    q(&mut c, &["XGROUP", "CREATE", "w", "g", "$", "MKSTREAM"]);
    let url = s.url();
    let reader = std::thread::spawn(move || {
        let mut c = redis::Client::open(url)
            .expect("url")
            .get_connection()
            .expect("c");
        let r: V = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "w", ">"])
            .query(&mut c)
            .expect("served");
        r
    });
    for _ in 0..200 {
        let info = q(&mut c, &["INFO", "clients"]);
        if let V::BulkString(b) = info {
            if String::from_utf8_lossy(&b).contains("blocked_clients:1") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    q(&mut c, &["XADD", "w", "5-1", "k", "v"]);
    let r = reader.join().expect("reader");
    let text = format!("{r:?}");
    assert!(text.contains("5-1"), "{text}");
    // The entry is now pending for c1.
    let p = q(&mut c, &["XPENDING", "w", "g"]);
    assert!(matches!(&p, V::Array(v) if v[0] == V::Int(1)), "{p:?}");
}

/// `stream-node-max-entries` and `stream-node-max-bytes` set at runtime decide where
/// nodes split, which an approximate trim shows: it removes whole nodes only (the
/// numbers are what redis-server 7.0.15 answers for the same commands).
#[test]
fn node_size_settings_act_at_runtime() {
    let s = RedsnapServer::start().expect("start");
    let mut c = conn(&s);
    let six = |c: &mut redis::Connection, key: &str| {
        for i in 1..=6 {
            q(c, &["XADD", key, &format!("{i}-0"), "f", "v"]);
        }
        q(c, &["XTRIM", key, "MAXLEN", "~", "3"])
    };
    // One node of up to 100 entries: nothing whole to remove.
    assert_eq!(six(&mut c, "default"), V::Int(0));
    q(&mut c, &["CONFIG", "SET", "stream-node-max-entries", "2"]);
    assert_eq!(six(&mut c, "two-per-node"), V::Int(2));
    q(&mut c, &["CONFIG", "SET", "stream-node-max-entries", "0"]);
    q(&mut c, &["CONFIG", "SET", "stream-node-max-bytes", "1"]);
    assert_eq!(six(&mut c, "one-per-node"), V::Int(3));
}
