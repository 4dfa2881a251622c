//! The types of issue 15 together (streams with groups and pending entries, geo
//! in both encodings, bitmaps with BITFIELD values, sparse/dense/merged
//! HyperLogLogs; testsupport's `new_types`): they survive `kill -9` under
//! `appendfsync always` (append log replay) and SHUTDOWN (snapshot), and their
//! DUMP payloads cross between redsnap and a real redis-server 7.0 in both
//! directions with the same state on arrival (delivery and seen times included).
//! RDB files: crates/cli/tests/new_types_rdb.rs.

use redsnap_testsupport::dataset::{Client, Resp};
use redsnap_testsupport::new_types::{
    assert_same_state, fill_new_types, mask_group_counters, new_types_state, NEW_TYPE_KEYS,
};
use redsnap_testsupport::{RedisServer, RedsnapServer};

fn client(port: u16) -> Client {
    Client::connect(port, None).expect("connect")
}

#[test]
fn new_types_survive_kill_9_and_shutdown_under_always() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .start()
        .expect("start redsnap");
    let mut c = client(s.port());
    fill_new_types(&mut c).expect("fill");
    let before = new_types_state(&mut c).expect("state");
    drop(c);
    s.kill_9();
    s.restart().expect("restart after kill -9");
    let mut c = client(s.port());
    // The log replays XREADGROUP as XCLAIMs, as Redis's AOF does: the groups'
    // read counters (entries-read, lag) are not restored, the rest is.
    assert_same_state(
        "after kill -9",
        &mask_group_counters(&before),
        &mask_group_counters(&new_types_state(&mut c).expect("state")),
    );
    // One more change of each kind, then a clean SHUTDOWN (a snapshot).
    for cmd in [
        &[&b"XADD"[..], b"nt:stream", b"3000-0", b"after", b"restart"][..],
        &[b"XACK", b"nt:stream", b"g2", b"1050-0", b"1050-1"],
        &[b"GEOADD", b"nt:geo", b"2.35", b"48.85", b"Paris"],
        &[b"SETBIT", b"nt:bits", b"5", b"1"],
        &[b"PFADD", b"nt:hll:sparse", b"one-more"],
    ] {
        c.ok(cmd).expect("change");
    }
    let before = new_types_state(&mut c).expect("state");
    let _ = c.call(&[b"SHUTDOWN"]);
    drop(c);
    assert!(
        s.wait_exit(std::time::Duration::from_secs(30)).is_some(),
        "SHUTDOWN did not stop redsnap"
    );
    s.restart().expect("restart after SHUTDOWN");
    let mut c = client(s.port());
    assert_same_state(
        "after SHUTDOWN",
        &before,
        &new_types_state(&mut c).expect("state"),
    );
}

/// Copies every new-type key from one server to another with DUMP + RESTORE.
fn copy_by_dump(from: u16, to: u16) {
    let (mut a, mut b) = (client(from), client(to));
    for k in NEW_TYPE_KEYS {
        let payload = match a.ok(&[b"DUMP", k.as_bytes()]).expect("DUMP") {
            Resp::Bulk(Some(p)) => p,
            other => panic!("DUMP {k}: {other:?}"),
        };
        match b.call(&[b"RESTORE", k.as_bytes(), b"0", &payload, b"REPLACE"]) {
            Ok(Resp::Simple(ok)) if ok == b"OK" => {}
            other => panic!("RESTORE {k} from port {from} into port {to}: {other:?}"),
        }
    }
}

#[test]
fn new_types_dump_restore_both_ways_with_redis() {
    let redis = RedisServer::start().expect("start redis-server");
    let redsnap = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let other = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start a second redsnap");

    // Redis's payloads into redsnap.
    fill_new_types(&mut client(redis.port())).expect("fill redis");
    let want = new_types_state(&mut client(redis.port())).expect("state");
    copy_by_dump(redis.port(), redsnap.port());
    let got = new_types_state(&mut client(redsnap.port())).expect("state");
    assert_same_state("redis-server -> redsnap", &want, &got);

    // redsnap's payloads (of values it built itself) into Redis.
    client(redis.port()).ok(&[b"FLUSHALL"]).expect("FLUSHALL");
    fill_new_types(&mut client(other.port())).expect("fill redsnap");
    let want = new_types_state(&mut client(other.port())).expect("state");
    copy_by_dump(other.port(), redis.port());
    let got = new_types_state(&mut client(redis.port())).expect("state");
    assert_same_state("redsnap -> redis-server", &want, &got);

    // And what redsnap restored from Redis goes back unchanged.
    client(redis.port()).ok(&[b"FLUSHALL"]).expect("FLUSHALL");
    let want = new_types_state(&mut client(redsnap.port())).expect("state");
    copy_by_dump(redsnap.port(), redis.port());
    let got = new_types_state(&mut client(redis.port())).expect("state");
    assert_same_state("redis-server -> redsnap -> redis-server", &want, &got);
}
