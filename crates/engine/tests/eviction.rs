//! Sampled eviction prefers old keys (LRU), rarely used keys (LFU), near deadlines (TTL).

use bytes::Bytes;
use redsnap_engine::store::EvictPolicy;
use redsnap_engine::{Reply, Store};

fn exec(s: &mut Store, now: u64, args: &[&str]) -> Reply {
    let argv: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    s.exec(0, now, &argv)
}

#[test]
fn lru_keeps_recently_read_keys() {
    let mut s = Store::default();
    let mut now = 1_000_000u64;
    for i in 0..20 {
        exec(&mut s, now, &["SET", &format!("hot{i}"), "x"]);
        exec(&mut s, now, &["SET", &format!("cold{i}"), "x"]);
    }
    for round in 0..2000 {
        now += 1;
        exec(&mut s, now, &["SET", &format!("bulk{round}"), "x"]);
        if round % 50 == 0 {
            for i in 0..20 {
                exec(&mut s, now, &["GET", &format!("hot{i}")]);
            }
        }
        // Keep 600 keys.
        while s.dbs[0].len() > 600 {
            assert!(s.evict_one(EvictPolicy::AllKeysLru, 5, now));
        }
    }
    let alive = |s: &mut Store, p: &str| {
        (0..20)
            .filter(|i| exec(s, now, &["EXISTS", &format!("{p}{i}")]) == Reply::Int(1))
            .count()
    };
    let (hot, cold) = (alive(&mut s, "hot"), alive(&mut s, "cold"));
    assert!(hot >= 18, "hot keys survive: {hot}/20");
    // Sampled LRU is an approximation (as Redis's): a sample is a run of keys in hash
    // order from a random point, so a key behind a short gap is sampled less often and
    // one cold key in ~15 runs outlives 1,400 evictions. Nearly all must go.
    assert!(cold <= 2, "untouched keys go first: {cold}/20 left");
}

#[test]
fn noeviction_evicts_nothing_and_volatile_ttl_picks_nearest_deadline() {
    let mut s = Store::default();
    let now = 1_000_000u64;
    exec(&mut s, now, &["SET", "a", "1"]);
    assert!(!s.evict_one(EvictPolicy::NoEviction, 5, now));
    assert!(
        !s.evict_one(EvictPolicy::VolatileLru, 5, now),
        "no volatile key to evict"
    );
    exec(&mut s, now, &["SET", "soon", "1", "PX", "1000"]);
    exec(&mut s, now, &["SET", "late", "1", "PX", "9000000"]);
    assert!(s.evict_one(EvictPolicy::VolatileTtl, 5, now));
    assert_eq!(exec(&mut s, now, &["EXISTS", "soon"]), Reply::Int(0));
    assert_eq!(exec(&mut s, now, &["EXISTS", "late", "a"]), Reply::Int(2));
    assert_eq!(s.stats.evicted_keys, 1);
}
