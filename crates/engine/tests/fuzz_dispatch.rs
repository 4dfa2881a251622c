//! A bounded fuzz run of command dispatch: random commands from the table with
//! random, often hostile, arguments. Nothing may panic, every reply must be well
//! formed, and the keyspace must stay internally consistent.

use bytes::Bytes;
use proptest::prelude::*;
use redsnap_engine::{table, Reply, Store};

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"k".to_vec()),
        Just(b"k2".to_vec()),
        Just(b"0".to_vec()),
        Just(b"1".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"2".to_vec()),
        Just(b"9223372036854775807".to_vec()),
        Just(b"-9223372036854775808".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"1e308".to_vec()),
        Just(b"inf".to_vec()),
        Just(b"-inf".to_vec()),
        Just(b"nan".to_vec()),
        Just(b"(1".to_vec()),
        Just(b"[a".to_vec()),
        Just(b"-".to_vec()),
        Just(b"+".to_vec()),
        Just(b"*".to_vec()),
        Just(b"LIMIT".to_vec()),
        Just(b"COUNT".to_vec()),
        Just(b"WITHSCORES".to_vec()),
        Just(b"MATCH".to_vec()),
        Just(b"BYSCORE".to_vec()),
        Just(b"BYLEX".to_vec()),
        Just(b"REV".to_vec()),
        Just(b"LEFT".to_vec()),
        Just(b"RIGHT".to_vec()),
        Just(b"EX".to_vec()),
        Just(b"PX".to_vec()),
        Just(b"NX".to_vec()),
        Just(b"XX".to_vec()),
        Just(b"GT".to_vec()),
        Just(b"STORE".to_vec()),
        Just(b"GET".to_vec()),
        Just(b"BY".to_vec()),
        Just(b"WEIGHTS".to_vec()),
        Just(b"AGGREGATE".to_vec()),
        Just(b"IDX".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn engine_commands() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = table::all()
        .filter(|c| c.handler.is_some())
        .map(|c| c.name)
        .collect();
    v.sort();
    v
}

fn check_reply(r: &Reply, depth: usize) {
    assert!(depth < 64, "reply nested too deep");
    match r {
        Reply::Error(e) => assert!(
            !e.is_empty() && !e.contains(&b'\n') && !e.contains(&b'\r'),
            "bad error text {e:?}"
        ),
        Reply::Simple(s) => assert!(!s.contains(&b'\n')),
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => {
            v.iter().for_each(|x| check_reply(x, depth + 1))
        }
        Reply::Map(m) => m.iter().for_each(|(a, b)| {
            check_reply(a, depth + 1);
            check_reply(b, depth + 1)
        }),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn random_commands_never_panic(script in proptest::collection::vec((0usize..1000, proptest::collection::vec(arg(), 0..8)), 1..40)) {
        let names = engine_commands();
        let mut store = Store::default();
        let mut now = 1_700_000_000_000u64;
        for (pick, args) in script {
            let name = names[pick % names.len()];
            let mut argv = vec![Bytes::from_static(name.as_bytes())];
            argv.extend(args.into_iter().map(Bytes::from));
            let r = store.exec(pick % 3, now, &argv);
            check_reply(&r, 0);
            now += 7;
            // Containers are never left empty, and the expiry index matches entries.
            for db in &store.dbs {
                for (k, e) in db.iter() {
                    prop_assert!(!e.value().is_empty_container(), "empty container left at {:?} after {}", k, name);
                }
            }
        }
    }
}
