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

/// XREADGROUP through the engine's part of it (the server adds blocking).
fn xreadgroup(s: &mut Store, args: &[&str]) -> Reply {
    let mut cx = crate::store::Cx::new(s, 0, 1000, false);
    match super::xread(&mut cx, &argv(args), false, false) {
        super::XRead::Reply(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The consumers' lazily kept pending lists (stale IDs left by XACK and claims,
/// rebuilt when half stale) against a model of who owns what: XPENDING's
/// summary and per-consumer ranges, XREADGROUP's history, XINFO CONSUMERS,
/// DELCONSUMER and a DUMP/RESTORE round trip agree with it after every step.
#[test]
fn lazy_consumer_pels_match_a_model() {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut s = Store::default();
    let n = 2000u64;
    for i in 1..=n {
        run(&mut s, &["XADD", "k", &format!("{i}-0"), "f", "v"]);
    }
    run(&mut s, &["XGROUP", "CREATE", "k", "g", "0"]);
    let names = ["a", "b", "c"];
    let mut model: BTreeMap<u64, &str> = BTreeMap::new();
    let mut delivered = 0u64;
    let ids_of = |r: &Reply| -> Vec<u64> {
        let mut out = Vec::new();
        if let Reply::Array(streams) = r {
            for st in streams {
                if let Reply::Array(kv) = st {
                    if let Some(Reply::Array(items)) = kv.get(1) {
                        for it in items {
                            if let Reply::Array(e) = it {
                                if let Some(Reply::Bulk(id)) = e.first() {
                                    let t = std::str::from_utf8(id).unwrap_or("");
                                    out.push(t.trim_end_matches("-0").parse().unwrap_or(0));
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    };
    for step in 0..6000 {
        let c = names[rng.random_range(0..names.len())];
        let id = rng.random_range(1..=n);
        match rng.random_range(0..10) {
            0 if delivered < n => {
                let cnt = rng.random_range(1..200).to_string();
                let r = xreadgroup(
                    &mut s,
                    &[
                        "XREADGROUP",
                        "GROUP",
                        "g",
                        c,
                        "COUNT",
                        &cnt,
                        "STREAMS",
                        "k",
                        ">",
                    ],
                );
                for i in ids_of(&r) {
                    model.insert(i, c);
                    delivered = delivered.max(i);
                }
            }
            1..=5 => {
                let r = run(&mut s, &["XACK", "k", "g", &format!("{id}-0")]);
                let want = i64::from(model.remove(&id).is_some());
                assert_eq!(r, Reply::Int(want), "step {step}: XACK {id}");
            }
            6 | 7 => {
                // FORCE recreates acknowledged entries (all of them exist).
                let force = rng.random_bool(0.3);
                let mut a = vec!["XCLAIM", "k", "g", c, "0"];
                let ids = format!("{id}-0");
                a.push(&ids);
                a.push("JUSTID");
                if force {
                    a.push("FORCE");
                }
                run(&mut s, &a);
                if force || model.contains_key(&id) {
                    model.insert(id, c);
                }
            }
            8 => {
                let r = run(
                    &mut s,
                    &[
                        "XAUTOCLAIM",
                        "k",
                        "g",
                        c,
                        "0",
                        &format!("{id}-0"),
                        "COUNT",
                        "5",
                        "JUSTID",
                    ],
                );
                let moved: Vec<u64> = model.range(id..).take(5).map(|(k, _)| *k).collect();
                for m in moved {
                    model.insert(m, c);
                }
                assert!(matches!(r, Reply::Array(_)));
            }
            _ => {
                if rng.random_bool(0.01) {
                    let r = run(&mut s, &["XGROUP", "DELCONSUMER", "k", "g", c]);
                    let had = model.values().filter(|o| **o == c).count() as i64;
                    model.retain(|_, o| *o != c);
                    if r != Reply::Int(0) || had != 0 {
                        assert_eq!(r, Reply::Int(had), "step {step}: DELCONSUMER {c}");
                    }
                }
            }
        }
        if step % 200 != 0 {
            continue;
        }
        let want = |key: &str, s: &mut Store, who: &str| {
            let r = run(s, &["XPENDING", key, "g", "-", "+", "100000", who]);
            let got: Vec<u64> = match r {
                Reply::Array(v) => v
                    .iter()
                    .map(|e| match e {
                        Reply::Array(f) => match &f[0] {
                            Reply::Bulk(b) => std::str::from_utf8(b)
                                .unwrap_or("")
                                .trim_end_matches("-0")
                                .parse()
                                .unwrap_or(0),
                            _ => 0,
                        },
                        _ => 0,
                    })
                    .collect(),
                _ => vec![],
            };
            got
        };
        for key in ["k", "k2"] {
            if key == "k2" {
                let Reply::Bulk(dump) = run(&mut s, &["DUMP", "k"]) else {
                    panic!("DUMP");
                };
                let mut a = argv(&["RESTORE", "k2", "0"]);
                a.push(dump);
                a.push(Bytes::from_static(b"REPLACE"));
                assert_eq!(s.exec(0, 1000, &a), Reply::ok());
            }
            for who in names {
                let mine: Vec<u64> = model
                    .iter()
                    .filter(|(_, o)| **o == who)
                    .map(|(k, _)| *k)
                    .collect();
                assert_eq!(want(key, &mut s, who), mine, "step {step}: {key} {who}");
            }
            let summary = run(&mut s, &["XPENDING", key, "g"]);
            let Reply::Array(v) = summary else {
                panic!("summary")
            };
            assert_eq!(v[0], Reply::Int(model.len() as i64), "step {step}");
            let per: Vec<Reply> = names
                .iter()
                .filter_map(|who| {
                    let k = model.values().filter(|o| *o == who).count();
                    (k > 0).then(|| Reply::Array(vec![bulk(who), bulk(&k.to_string())]))
                })
                .collect();
            if model.is_empty() {
                assert_eq!(v[3], Reply::NilArray);
            } else {
                assert_eq!(v[3], Reply::Array(per), "step {step}: {key}");
            }
        }
        let c = names[step % 3];
        let r = xreadgroup(
            &mut s,
            &["XREADGROUP", "GROUP", "g", c, "STREAMS", "k", "0"],
        );
        let mine: Vec<u64> = model
            .iter()
            .filter(|(_, o)| **o == c)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(ids_of(&r), mine, "step {step}: history of {c}: {r:?}");
    }
}
