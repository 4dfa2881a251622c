//! Tests of the stream commands.

use crate::cmd::testutil::{argv, run};
use crate::reply::Reply;
use crate::store::Store;
use bytes::Bytes;

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn xadd_ids_and_errors() {
    let mut s = Store::default();
    assert_eq!(run(&mut s, &["XADD", "k", "5-*", "f", "v"]), bulk("5-0"));
    assert_eq!(run(&mut s, &["XADD", "k", "5-*", "f", "v"]), bulk("5-1"));
    assert_eq!(
        run(&mut s, &["XADD", "k", "5-1", "f", "v"]),
        Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
        )
    );
    assert_eq!(
        run(&mut s, &["XADD", "k", "0-0", "f", "v"]),
        Reply::err("ERR The ID specified in XADD must be greater than 0-0")
    );
    assert_eq!(
        run(&mut s, &["XADD", "k", "x-1", "f", "v"]),
        Reply::err(super::ERR_INVALID_ID)
    );
    assert_eq!(
        run(&mut s, &["XADD", "k", "6-0", "f"]),
        Reply::err("ERR wrong number of arguments for 'xadd' command")
    );
    assert_eq!(
        run(
            &mut s,
            &["XADD", "k", "MAXLEN", "1", "LIMIT", "1", "*", "f", "v"]
        ),
        Reply::err("ERR syntax error, LIMIT cannot be used without the special ~ option")
    );
    assert_eq!(
        run(&mut s, &["XADD", "nokey", "NOMKSTREAM", "*", "f", "v"]),
        Reply::Nil
    );
    assert_eq!(run(&mut s, &["EXISTS", "nokey"]), Reply::Int(0));
}

#[test]
fn ranges_with_exclusive_ends_and_count() {
    let mut s = Store::default();
    for i in 1..=5 {
        run(
            &mut s,
            &["XADD", "k", &format!("{i}-0"), "f", &i.to_string()],
        );
    }
    let ids = |r: Reply| -> Vec<Reply> {
        match r {
            Reply::Array(v) => v
                .into_iter()
                .map(|e| match e {
                    Reply::Array(mut p) => p.remove(0),
                    o => o,
                })
                .collect(),
            o => panic!("{o:?}"),
        }
    };
    assert_eq!(
        ids(run(&mut s, &["XRANGE", "k", "(1-0", "(4-0"])),
        [bulk("2-0"), bulk("3-0")]
    );
    assert_eq!(
        ids(run(&mut s, &["XREVRANGE", "k", "+", "-", "COUNT", "2"])),
        [bulk("5-0"), bulk("4-0")]
    );
    assert_eq!(
        run(&mut s, &["XRANGE", "k", "-", "+", "COUNT", "0"]),
        Reply::NilArray
    );
    assert_eq!(
        run(
            &mut s,
            &[
                "XRANGE",
                "k",
                "(18446744073709551615-18446744073709551615",
                "+"
            ]
        ),
        Reply::err("ERR invalid start ID for the interval")
    );
    assert_eq!(run(&mut s, &["XDEL", "k", "2-0", "9-0"]), Reply::Int(1));
    assert_eq!(run(&mut s, &["XLEN", "k"]), Reply::Int(4));
}

#[test]
fn log_records_are_what_redis_propagates() {
    let mut s = Store::default();
    s.config.stream_node_max_entries = 10;
    for i in 1..=30 {
        run(&mut s, &["XADD", "k", &format!("{i}-0"), "f", "v"]);
    }
    s.effects.log.clear();
    run(
        &mut s,
        &[
            "XADD", "k", "MAXLEN", "~", "15", "LIMIT", "100", "*", "f", "v",
        ],
    );
    let rec = &s.effects.log[0].argv;
    let text: Vec<String> = rec
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(&text[..5], ["XADD", "k", "MAXLEN", "=", "21"]);
    assert!(text[5].contains('-'), "concrete ID: {text:?}");
    s.effects.log.clear();
    run(&mut s, &["XGROUP", "CREATE", "k", "g", "0"]);
    run(
        &mut s,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "k",
            ">",
        ],
    );
    // XREADGROUP is a server command: the engine alone logs XGROUP CREATE.
    assert_eq!(s.effects.log.len(), 1);
    assert_eq!(
        s.effects.log[0].argv,
        argv(&["XGROUP", "CREATE", "k", "g", "0"])
    );
    s.effects.log.clear();
    let mut cx = crate::store::Cx::new(&mut s, 0, 1000, false);
    let r = super::xread(
        &mut cx,
        &argv(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "k",
            ">",
        ]),
        false,
        false,
    );
    assert!(matches!(r, super::XRead::Reply(Reply::Array(_))), "{r:?}");
    let rec: Vec<String> = s.effects.log[0]
        .argv
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(
        rec,
        [
            "XCLAIM",
            "k",
            "g",
            "c",
            "0",
            "11-0",
            "TIME",
            "1000",
            "RETRYCOUNT",
            "1",
            "FORCE",
            "JUSTID",
            "LASTID",
            "11-0"
        ]
    );
}

/// XCLAIM FORCE of an ID no consumer holds creates the pending entry with
/// Redis's starting count (1, streamCreateNACK) and then counts the claim: 2;
/// with JUSTID the claim is not counted (numbers from redis-server 7.0.15).
#[test]
fn xclaim_force_counts_deliveries_like_redis() {
    let mut s = Store::default();
    run(&mut s, &["XADD", "k", "1-0", "f", "v"]);
    run(&mut s, &["XADD", "k", "2-0", "f", "v"]);
    run(&mut s, &["XGROUP", "CREATE", "k", "g", "$"]);
    run(&mut s, &["XCLAIM", "k", "g", "c", "0", "1-0", "FORCE"]);
    run(
        &mut s,
        &["XCLAIM", "k", "g", "c", "0", "2-0", "FORCE", "JUSTID"],
    );
    let counts = |s: &mut Store| -> Vec<Reply> {
        match run(s, &["XPENDING", "k", "g", "-", "+", "10"]) {
            Reply::Array(v) => v
                .into_iter()
                .map(|e| match e {
                    Reply::Array(f) => f[3].clone(),
                    other => other,
                })
                .collect(),
            other => vec![other],
        }
    };
    assert_eq!(counts(&mut s), vec![Reply::Int(2), Reply::Int(1)]);
}

#[test]
fn xack_counts_lookups_and_reports_bad_ids_only_with_a_group() {
    let mut s = Store::default();
    for i in 1..=12 {
        run(&mut s, &["XADD", "k", &format!("1-{i}"), "f", "v"]);
    }
    run(&mut s, &["XGROUP", "CREATE", "k", "g", "0"]);
    // (XREADGROUP is a server command: XCLAIM FORCE fills the PEL here.)
    let mut claim = vec!["XCLAIM", "k", "g", "alice", "0"];
    let all: Vec<String> = (1..=12).map(|i| format!("1-{i}")).collect();
    claim.extend(all.iter().map(|s| s.as_str()));
    claim.extend(["FORCE", "JUSTID"]);
    run(&mut s, &claim);
    // No key, no group: 0 whatever the IDs (Redis looks the group up first).
    let (hits, misses) = (s.stats.keyspace_hits, s.stats.keyspace_misses);
    assert_eq!(run(&mut s, &["XACK", "nokey", "g", "bad"]), Reply::Int(0));
    assert_eq!(s.stats.keyspace_misses, misses + 1);
    assert_eq!(run(&mut s, &["XACK", "k", "nogroup", "bad"]), Reply::Int(0));
    assert_eq!(s.stats.keyspace_hits, hits + 1);
    assert_eq!(
        run(&mut s, &["XACK", "k", "g", "1-1", "bad"]),
        Reply::err(super::ERR_INVALID_ID)
    );
    // The bad ID stopped the whole command: 1-1 is still pending.
    assert_eq!(run(&mut s, &["XACK", "k", "g", "1-1"]), Reply::Int(1));
    // Zero-padded IDs (as redis-benchmark writes them) are the same IDs.
    assert_eq!(run(&mut s, &["XACK", "k", "g", "1-000002"]), Reply::Int(1));
    // More than 8 IDs (the heap path), with repeats and IDs not pending.
    let mut args = vec!["XACK", "k", "g"];
    let ids: Vec<String> = (1..=14).map(|i| format!("1-{i}")).collect();
    args.extend(ids.iter().map(|s| s.as_str()));
    args.push("1-3");
    assert_eq!(run(&mut s, &args), Reply::Int(10));
    assert_eq!(
        run(&mut s, &["XPENDING", "k", "g"]),
        Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray])
    );
    run(&mut s, &["SET", "str", "x"]);
    assert_eq!(
        run(&mut s, &["XACK", "str", "g", "bad"]),
        Reply::wrongtype()
    );
}

#[test]
fn nacks_share_their_consumers_name() {
    let mut s = Store::default();
    for i in 1..=3 {
        run(&mut s, &["XADD", "k", &format!("{i}-0"), "f", "v"]);
    }
    run(&mut s, &["XGROUP", "CREATE", "k", "g", "0"]);
    // (XREADGROUP is a server command: XCLAIM FORCE fills the PEL here.)
    run(
        &mut s,
        &[
            "XCLAIM", "k", "g", "alice", "0", "1-0", "2-0", "FORCE", "JUSTID",
        ],
    );
    run(
        &mut s,
        &[
            "XCLAIM", "k", "g", "bob", "0", "2-0", "3-0", "FORCE", "JUSTID",
        ],
    );
    let Some(crate::value::Value::Stream(st)) = s.dbs[0].get(b"k").map(|e| e.value()) else {
        panic!("no stream");
    };
    let g = &st.groups[&Bytes::from_static(b"g")];
    let name = |c: &str| {
        g.consumers[&Bytes::copy_from_slice(c.as_bytes())]
            .name
            .clone()
    };
    let owner = |ms| g.pel[&crate::stream::StreamId::new(ms, 0)].consumer.clone();
    assert!(std::sync::Arc::ptr_eq(&owner(1), &name("alice")));
    assert!(std::sync::Arc::ptr_eq(&owner(2), &name("bob")));
    assert!(std::sync::Arc::ptr_eq(&owner(3), &name("bob")));
    assert_eq!(*name("bob"), Bytes::from_static(b"bob"));
}

#[test]
fn xadd_reply_and_log_carry_the_same_id() {
    let mut s = Store::default();
    s.effects.log.clear();
    let r = run(&mut s, &["XADD", "k", "18446744073709551615-*", "f", "v"]);
    assert_eq!(r, bulk("18446744073709551615-0"));
    let logged = s.effects.log.last().map(|l| l.argv[2].clone());
    assert_eq!(logged, Some(Bytes::from_static(b"18446744073709551615-0")));
    // The field names of a node are owned copies, values live in the node.
    assert_eq!(
        run(&mut s, &["XRANGE", "k", "-", "+"]),
        Reply::Array(vec![Reply::Array(vec![
            bulk("18446744073709551615-0"),
            Reply::Array(vec![bulk("f"), bulk("v")]),
        ])])
    );
}
