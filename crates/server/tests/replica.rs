//! Replication, replica side (REPLICAOF): a redsnap replica of a real redis-server
//! 7.0 master and of a redsnap master stays identical (DEBUG DIGEST after WAIT)
//! through writes of every type, MULTI, scripts and expiries; a killed link
//! continues with a partial resynchronization; a restarted master or replica
//! resynchronizes; chained replication; READONLY, MASTERDOWN, UNBLOCKED, and
//! REPLICAOF NO ONE promoting the replica.
//!
//! Every wait is bounded (polling with a deadline). Servers run on free loopback
//! ports in their own temporary directories.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redsnap_testsupport::dataset::{fill_every_encoding, Client, Resp};
use redsnap_testsupport::probe::{call, client, digest, field, info, ok, text, wait_until};
use redsnap_testsupport::{free_port, RedisServer, RedsnapServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn link_up(port: u16) -> bool {
    field(&info(port, "replication"), "master_link_status").as_deref() == Some("up")
}

fn stat(port: u16, name: &str) -> u64 {
    field(&info(port, "stats"), name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// WAIT for one replica on the connection that wrote last, then the replica's
/// digest and key counts are the master's.
fn assert_identical(writer: &mut Client, master: u16, replica: u16) {
    assert_eq!(ok(writer, &["WAIT", "1", "60000"]), Resp::Int(1), "WAIT");
    // WAIT counts the acknowledgement of the bytes; the replica applied them
    // before acknowledging.
    let d = digest(master);
    assert_ne!(d, "0".repeat(40), "an empty dataset proves nothing");
    // A key whose TTL ran out but that the master has not deleted yet counts in
    // one digest and not the other until the master's DEL arrives: the digests
    // must agree within a bounded time (a divergence never converges).
    let deadline = Instant::now() + Duration::from_secs(10);
    while digest(replica) != digest(master) {
        if Instant::now() > deadline {
            panic!(
                "replica digest differs: {:?}",
                differing_keys(master, replica)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for db in ["db0", "db1", "db2"] {
        let keys = |port| {
            field(&info(port, "keyspace"), db).and_then(|l| l.split(',').next().map(str::to_string))
        };
        assert_eq!(keys(replica), keys(master), "{db} key count");
    }
}

/// The keys whose DEBUG DIGEST-VALUE differs (or that exist on one side only).
fn differing_keys(master: u16, replica: u16) -> Vec<String> {
    let mut out = vec![info(master, "keyspace"), info(replica, "keyspace")];
    for db in 0..16 {
        let (mut a, mut b) = (client(master), client(replica));
        ok(&mut a, &["SELECT", &db.to_string()]);
        ok(&mut b, &["SELECT", &db.to_string()]);
        let mut keys = ok(&mut a, &["KEYS", "*"]).strings().expect("keys");
        keys.extend(ok(&mut b, &["KEYS", "*"]).strings().expect("keys"));
        keys.sort();
        keys.dedup();
        for k in keys {
            let ks = String::from_utf8_lossy(&k).into_owned();
            let va = ok(&mut a, &["DEBUG", "DIGEST-VALUE", &ks]);
            let vb = ok(&mut b, &["DEBUG", "DIGEST-VALUE", &ks]);
            let ta = ok(&mut a, &["PEXPIRETIME", &ks]);
            let tb = ok(&mut b, &["PEXPIRETIME", &ks]);
            let far = match (&ta, &tb) {
                (Resp::Int(x), Resp::Int(y)) => x != y,
                _ => true,
            };
            if va != vb || far {
                out.push(format!("db{db} {ks}: {va:?}/{vb:?} ttl {ta:?}/{tb:?}"));
            }
        }
    }
    out
}

fn redis_master() -> RedisServer {
    RedisServer::builder()
        .extra_args(&[
            "--enable-debug-command",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ])
        .start()
        .expect("start redis-server")
}

fn redsnap(args: &[&str]) -> RedsnapServer {
    RedsnapServer::builder()
        .extra_args(args)
        .start()
        .expect("start redsnap")
}

/// Writes of every type, in several databases, MULTI/EXEC, a script, expiries.
fn mixed_writes(c: &mut Client, seed: u64, n: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..n {
        let db = rng.random_range(0..3).to_string();
        ok(c, &["SELECT", &db]);
        let k = format!("k{}", rng.random_range(0..200));
        let v = format!("v{}", rng.random_range(0..1_000_000));
        let f = format!("f{}", rng.random_range(0..40));
        let score = rng.random_range(0..1000).to_string();
        let key = |t: &str| format!("{t}:{k}");
        match rng.random_range(0..16) {
            0 => ok(c, &["SET", &key("s"), &v]),
            1 => ok(c, &["INCRBY", &key("n"), "3"]),
            2 => ok(c, &["APPEND", &key("s"), &v]),
            3 => ok(c, &["RPUSH", &key("l"), &v, &f]),
            4 => ok(c, &["LPOP", &key("l")]),
            5 => ok(c, &["HSET", &key("h"), &f, &v]),
            6 => ok(c, &["HDEL", &key("h"), &f]),
            7 => ok(c, &["SADD", &key("set"), &f, &v]),
            8 => ok(c, &["SPOP", &key("set")]),
            9 => ok(c, &["ZADD", &key("z"), &score, &f]),
            10 => ok(c, &["ZINCRBY", &key("z"), "1.5", &f]),
            11 => ok(c, &["DEL", &key("s")]),
            12 => ok(c, &["SET", &key("ttl"), &v, "PX", "150"]),
            13 => ok(c, &["EXPIRE", &key("h"), "1000"]),
            14 => {
                ok(c, &["MULTI"]);
                call(c, &["INCR", &key("n")]);
                call(c, &["LPUSH", &key("l"), &v]);
                ok(c, &["EXEC"])
            }
            _ => ok(
                c,
                &[
                    "EVAL",
                    "redis.call('hincrby', KEYS[1], ARGV[1], 1); return redis.call('sadd', KEYS[2], ARGV[1])",
                    "2",
                    &key("hc"),
                    &key("set"),
                    &f,
                ],
            ),
        };
        if i % 500 == 0 {
            ok(c, &["XADD", "stream", "*", "i", &i.to_string()]);
        }
    }
    ok(c, &["SELECT", "0"]);
}

/// Lets the keys with a short TTL expire on the master (its DELs reach the
/// replica), touching them so that none is left to the active cycle's pace.
fn expire_short_ttls(c: &mut Client) {
    std::thread::sleep(Duration::from_millis(200));
    for db in 0..3 {
        ok(c, &["SELECT", &db.to_string()]);
        for k in 0..200 {
            call(c, &["EXISTS", &format!("ttl:k{k}")]);
        }
    }
    ok(c, &["SELECT", "0"]);
}

#[test]
fn redsnap_replica_of_a_real_redis_master_stays_identical() {
    let m = redis_master();
    let mut c = client(m.port());
    fill_every_encoding(&mut c).expect("fill");
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["SET", "ttl:long", "v", "EX", "5000"]);
    let r = redsnap(&["--appendonly", "yes", "--save", ""]);
    let mut rc = client(r.port());
    let p = m.port().to_string();
    assert_eq!(text(&ok(&mut rc, &["REPLICAOF", "127.0.0.1", &p])), "OK");
    assert_eq!(
        text(&ok(&mut rc, &["REPLICAOF", "127.0.0.1", &p])),
        "OK Already connected to specified master"
    );
    wait_until(30, "link up", || link_up(r.port()));
    match ok(&mut rc, &["ROLE"]) {
        Resp::Array(Some(v)) => {
            assert_eq!(v.len(), 5, "{v:?}");
            assert_eq!(text(&v[0]), "slave");
            assert_eq!(text(&v[2]), p);
            assert_eq!(text(&v[3]), "connected");
        }
        other => panic!("ROLE -> {other:?}"),
    }
    assert_eq!(
        ok(&mut rc, &["CONFIG", "GET", "replicaof"])
            .strings()
            .expect("array")[1],
        format!("127.0.0.1 {p}").into_bytes()
    );
    mixed_writes(&mut c, 1, 3000);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());
    // Replicated expiries: the keys with a short TTL are gone on both.
    assert_eq!(ok(&mut rc, &["EXISTS", "ttl:k1"]), Resp::Int(0));
    assert_eq!(ok(&mut rc, &["PTTL", "ttl:long"]).strings().ok(), None);
    let ttl = |c: &mut Client| match ok(c, &["TTL", "ttl:long"]) {
        Resp::Int(n) => n,
        other => panic!("TTL -> {other:?}"),
    };
    assert!((ttl(&mut rc) - ttl(&mut c)).abs() <= 1, "TTL kept");

    // The link dropped: a partial resynchronization.
    let partial = stat(m.port(), "sync_partial_ok");
    ok(&mut rc, &["CLIENT", "KILL", "TYPE", "master"]);
    wait_until(30, "partial resync", || {
        stat(m.port(), "sync_partial_ok") > partial && link_up(r.port())
    });
    mixed_writes(&mut c, 2, 1000);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());

    // The master restarts (with its dump): the replica follows it again.
    let mut m = m;
    ok(&mut c, &["SAVE"]);
    m.restart().expect("restart redis");
    let mut c = client(m.port());
    wait_until(30, "link up after the master's restart", || {
        link_up(r.port())
    });
    mixed_writes(&mut c, 3, 1000);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());
}

#[test]
fn redsnap_replica_of_a_redsnap_master_resyncs_after_restarts() {
    let m = redsnap(&["--appendonly", "yes", "--save", ""]);
    let mut c = client(m.port());
    fill_every_encoding(&mut c).expect("fill");
    ok(&mut c, &["SELECT", "0"]);
    let p = m.port().to_string();
    let mut r = redsnap(&[
        "--appendonly",
        "yes",
        "--save",
        "",
        "--replicaof",
        "127.0.0.1",
        &p,
    ]);
    wait_until(30, "link up", || link_up(r.port()));
    // A replica of the replica (chained replication) gets the same stream.
    let rp = r.port().to_string();
    let chained = redsnap(&["--save", "", "--replicaof", "127.0.0.1", &rp]);
    wait_until(30, "chained link up", || link_up(chained.port()));
    mixed_writes(&mut c, 4, 3000);
    expire_short_ttls(&mut c);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());
    wait_until(30, "chained replica caught up", || {
        field(&info(chained.port(), "replication"), "master_repl_offset")
            == field(&info(r.port(), "replication"), "master_repl_offset")
    });
    assert_eq!(
        digest(chained.port()),
        digest(m.port()),
        "chained replica digest"
    );
    assert_eq!(
        field(&info(r.port(), "replication"), "master_replid"),
        field(&info(m.port(), "replication"), "master_replid"),
        "the replica takes the master's history"
    );

    let partial = stat(m.port(), "sync_partial_ok");
    ok(&mut client(r.port()), &["CLIENT", "KILL", "TYPE", "master"]);
    wait_until(30, "partial resync", || {
        stat(m.port(), "sync_partial_ok") > partial && link_up(r.port())
    });
    mixed_writes(&mut c, 5, 500);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());

    // The master restarts: a new history, a full resynchronization.
    let mut m = m;
    m.restart().expect("restart master");
    let mut c = client(m.port());
    wait_until(30, "link up after the master's restart", || {
        link_up(r.port())
    });
    mixed_writes(&mut c, 6, 500);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());

    // The replica restarts: it asks for the master again at startup.
    r.restart().expect("restart replica");
    wait_until(30, "link up after the replica's restart", || {
        link_up(r.port())
    });
    mixed_writes(&mut c, 7, 200);
    expire_short_ttls(&mut c);
    assert_identical(&mut c, m.port(), r.port());
}

#[test]
fn readonly_masterdown_unblocked_and_promotion() {
    let r = redsnap(&["--save", ""]);
    let mut c = client(r.port());
    ok(&mut c, &["SET", "k", "v"]);
    ok(&mut c, &["RPUSH", "list", "a"]);
    let replid = field(&info(r.port(), "replication"), "master_replid");

    // A client blocked when the server becomes a replica gets UNBLOCKED.
    let mut blocked = TcpStream::connect(("127.0.0.1", r.port())).expect("connect");
    blocked
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    blocked
        .write_all(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nempty\r\n$1\r\n0\r\n")
        .expect("write");
    wait_until(10, "client blocked", || {
        field(&info(r.port(), "clients"), "blocked_clients").as_deref() == Some("1")
    });
    // Nothing listens there: the link stays down.
    let nowhere = free_port().to_string();
    ok(&mut c, &["REPLICAOF", "127.0.0.1", &nowhere]);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n") {
        let n = blocked.read(&mut buf).expect("read UNBLOCKED");
        assert!(n > 0, "closed before the reply");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
    );

    let inf = info(r.port(), "replication");
    assert_eq!(field(&inf, "role").as_deref(), Some("slave"));
    assert_eq!(field(&inf, "master_link_status").as_deref(), Some("down"));
    let e = text(&call(&mut c, &["SET", "k", "w"]));
    assert_eq!(e, "READONLY You can't write against a read only replica.");
    // Reads are served (replica-serve-stale-data yes).
    assert_eq!(text(&ok(&mut c, &["GET", "k"])), "v");
    // EXEC with a queued write is refused as a write.
    ok(&mut c, &["MULTI"]);
    call(&mut c, &["GET", "k"]);
    let e = text(&call(&mut c, &["SET", "k", "w"]));
    assert!(e.starts_with("READONLY"), "{e}");
    assert!(text(&call(&mut c, &["EXEC"])).starts_with("EXECABORT"));

    ok(&mut c, &["CONFIG", "SET", "replica-read-only", "no"]);
    assert_eq!(text(&ok(&mut c, &["SET", "local", "1"])), "OK");
    ok(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    let e = text(&call(&mut c, &["GET", "k"]));
    assert_eq!(
        e,
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    // Commands with the `stale` flag still run.
    assert!(field(&info(r.port(), "replication"), "role").is_some());
    ok(&mut c, &["MULTI"]);
    let e = text(&call(&mut c, &["PING"]));
    assert!(e.starts_with("MASTERDOWN"), "{e}");
    let e = text(&call(&mut c, &["EXEC"]));
    assert!(e.starts_with("EXECABORT"), "{e}");
    // Queued while stale data was served, refused at EXEC.
    ok(
        &mut c,
        &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
    );
    ok(&mut c, &["MULTI"]);
    assert_eq!(text(&call(&mut c, &["GET", "k"])), "QUEUED");
    ok(
        &mut client(r.port()),
        &["CONFIG", "SET", "replica-serve-stale-data", "no"],
    );
    let e = text(&call(&mut c, &["EXEC"]));
    assert!(
        e.starts_with("EXECABORT") && e.contains("MASTERDOWN"),
        "{e}"
    );

    // Promotion: writes work again, the replication id shifts.
    assert_eq!(text(&ok(&mut c, &["REPLICAOF", "NO", "ONE"])), "OK");
    assert_eq!(text(&ok(&mut c, &["SET", "k", "w"])), "OK");
    assert_eq!(text(&ok(&mut c, &["GET", "k"])), "w");
    let inf = info(r.port(), "replication");
    assert_eq!(field(&inf, "role").as_deref(), Some("master"));
    assert_eq!(field(&inf, "master_replid2"), replid);
    assert_ne!(field(&inf, "master_replid"), replid);
    assert_eq!(
        ok(&mut c, &["CONFIG", "GET", "replicaof"])
            .strings()
            .expect("array")[1],
        b"".to_vec()
    );
    assert_eq!(
        text(&call(&mut c, &["REPLICAOF", "127.0.0.1", "70000"])),
        "ERR Invalid master port"
    );
    assert_eq!(text(&ok(&mut c, &["SLAVEOF", "no", "one"])), "OK");
}

/// `masterauth` / `masteruser` (CONFIG SET acts on the next connection to the
/// master), `replica-priority` and `replica-announced` (reported in INFO).
#[test]
fn master_auth_priority_and_announced_act() {
    let m = RedisServer::builder()
        .password("s3cret")
        .extra_args(&["--repl-diskless-sync-delay", "0"])
        .start()
        .expect("start redis-server");
    let mut mc = Client::connect(m.port(), Some("s3cret")).expect("connect to master");
    ok(
        &mut mc,
        &["ACL", "SETUSER", "repl", "on", ">r3pl", "+@all", "~*"],
    );
    ok(&mut mc, &["SET", "k", "v"]);
    let r = redsnap(&[]);
    let mut c = client(r.port());
    ok(&mut c, &["CONFIG", "SET", "replica-priority", "42"]);
    ok(&mut c, &["CONFIG", "SET", "replica-announced", "no"]);
    // Without credentials the master refuses the sync: the link stays down.
    ok(&mut c, &["REPLICAOF", "127.0.0.1", &m.port().to_string()]);
    // A replica reports both (a master has no such fields, as in Redis).
    let inf = info(r.port(), "replication");
    assert_eq!(field(&inf, "slave_priority").as_deref(), Some("42"));
    assert_eq!(field(&inf, "replica_announced").as_deref(), Some("0"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!link_up(r.port()), "synced without credentials");
    // A user and its password: the next attempt authenticates and syncs.
    ok(&mut c, &["CONFIG", "SET", "masteruser", "repl"]);
    ok(&mut c, &["CONFIG", "SET", "masterauth", "r3pl"]);
    wait_until(20, "the link with AUTH repl r3pl", || link_up(r.port()));
    wait_until(10, "the key from the master", || {
        text(&call(&mut client(r.port()), &["GET", "k"])) == "v"
    });
    ok(&mut c, &["REPLICAOF", "NO", "ONE"]);
}

/// On a replica an expired key reads as absent but stays until the master's DEL
/// (Redis's expireIfNeeded on a replica): the replica's expired_keys does not
/// move.
#[test]
fn a_replica_hides_expired_keys_until_the_master_deletes_them() {
    let m = redis_master();
    let r = redsnap(&["--save", "", "--appendonly", "no"]);
    let mut mc = client(m.port());
    let mut rc = client(r.port());
    ok(&mut rc, &["REPLICAOF", "127.0.0.1", &m.port().to_string()]);
    wait_until(30, "link up", || link_up(r.port()));
    // The master must not expire it on its own while the replica looks.
    ok(&mut mc, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    ok(&mut mc, &["SET", "gone", "v", "PX", "100"]);
    ok(&mut mc, &["SET", "counter", "5", "PX", "100"]);
    assert_eq!(ok(&mut mc, &["WAIT", "1", "10000"]), Resp::Int(1));
    // Setup, not an assertion: the deadlines pass.
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(call(&mut rc, &["GET", "gone"]), Resp::Bulk(None));
    assert_eq!(call(&mut rc, &["EXISTS", "gone"]), Resp::Int(0));
    assert_eq!(call(&mut rc, &["TTL", "gone"]), Resp::Int(-2));
    assert_eq!(
        call(&mut rc, &["DBSIZE"]),
        Resp::Int(2),
        "kept until the DEL"
    );
    assert_eq!(stat(r.port(), "expired_keys"), 0);
    // The master's INCR finds its key expired too: DEL, then a new counter.
    assert_eq!(call(&mut mc, &["INCR", "counter"]), Resp::Int(1));
    assert_eq!(ok(&mut mc, &["WAIT", "1", "10000"]), Resp::Int(1));
    wait_until(10, "the counter replaced", || {
        call(&mut client(r.port()), &["GET", "counter"]) == Resp::Bulk(Some(b"1".to_vec()))
    });
    // The master's lazy expiry sends DEL: now it is gone on the replica too.
    assert_eq!(call(&mut mc, &["GET", "gone"]), Resp::Bulk(None));
    assert_eq!(ok(&mut mc, &["WAIT", "1", "10000"]), Resp::Int(1));
    wait_until(10, "the DEL applied", || {
        call(&mut client(r.port()), &["DBSIZE"]) == Resp::Int(1)
    });
    ok(&mut mc, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
}

/// A master that sends its file in the `$<len>` form (disk-based sync) and one
/// larger than the socket buffers: the replica parses it as it arrives and ends up
/// identical.
#[test]
fn a_replica_loads_a_large_length_prefixed_file_as_it_arrives() {
    let m = RedisServer::builder()
        .extra_args(&[
            "--enable-debug-command",
            "yes",
            "--repl-diskless-sync",
            "no",
            "--save",
            "",
        ])
        .start()
        .expect("start redis-server");
    let mut c = client(m.port());
    fill_every_encoding(&mut c).expect("fill");
    ok(&mut c, &["SELECT", "0"]);
    ok(&mut c, &["DEBUG", "POPULATE", "50000", "big", "100"]);
    let r = redsnap(&["--save", "", "--appendonly", "no"]);
    let mut rc = client(r.port());
    ok(&mut rc, &["REPLICAOF", "127.0.0.1", &m.port().to_string()]);
    wait_until(60, "link up", || link_up(r.port()));
    mixed_writes(&mut c, 7, 500);
    assert_identical(&mut c, m.port(), r.port());
}
