use super::*;
use std::collections::HashSet;

fn m(s: &str) -> Member {
    Member::new(s.as_bytes())
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("element:{i}")).collect()
}

#[test]
fn small_tables_keep_insertion_order() {
    let mut h: Dict<Member> = Dict::new();
    for f in ["z", "a", "m", "b"] {
        assert!(h.put(f.as_bytes(), m("v")));
    }
    assert!(!h.put(b"a", m("w")));
    assert_eq!(h.get(b"a"), Some(&m("w")));
    assert_eq!(h.shift_remove(b"m"), Some(m("v")));
    let order: Vec<&[u8]> = h.keys().map(|k| k.as_bytes()).collect();
    assert_eq!(order, [&b"z"[..], b"a", b"b"]);
    assert!(!h.is_sharded());
}

#[test]
fn big_tables_are_sharded_and_keep_every_member() {
    let all = names(3 * SHARD_AT);
    let mut s = MemberSet::new();
    for (i, n) in all.iter().enumerate() {
        assert!(s.insert_slice(n.as_bytes()));
        assert!(!s.insert_slice(n.as_bytes()));
        assert_eq!(s.len(), i + 1);
        assert_eq!(s.is_sharded(), i + 1 > SHARD_AT);
    }
    // Every member is found, walked once, and at exactly one position.
    assert!(all.iter().all(|n| s.contains(n.as_bytes())));
    let walked: HashSet<Vec<u8>> = s.iter().map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(walked.len(), all.len());
    assert_eq!(s.iter().len(), all.len());
    let by_pos: HashSet<Vec<u8>> = (0..s.len())
        .map(|i| {
            s.get_index(i)
                .map(|k| k.as_bytes().to_vec())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(by_pos, walked);
    assert!(s.get_index(s.len()).is_none());
    // Shards share the members about evenly (bits of a keyed hash).
    let Repr::Shards { maps, .. } = &s.0.repr else {
        panic!("not sharded");
    };
    let (lo, hi) = maps.iter().fold((usize::MAX, 0), |(lo, hi), m| {
        (lo.min(m.len()), hi.max(m.len()))
    });
    assert!(
        lo > 0 && hi < 4 * all.len() / SHARDS,
        "shard sizes {lo}..{hi}"
    );
    // Removal by member and by position.
    for n in &all[..SHARD_AT] {
        assert!(s.swap_remove(n.as_bytes()));
        assert!(!s.swap_remove(n.as_bytes()));
    }
    assert_eq!(s.len(), 2 * SHARD_AT);
    let mut popped = HashSet::new();
    while let Some(k) = s.swap_remove_index(s.len() / 2) {
        popped.insert(k.as_bytes().to_vec());
        if s.len() == SHARD_AT {
            break;
        }
    }
    assert_eq!(popped.len(), SHARD_AT);
    assert_eq!(s.len(), SHARD_AT);
    assert!(popped.iter().all(|p| !s.contains(p)));
}

#[test]
fn sharded_hash_values_and_equality() {
    let all = names(SHARD_AT + 100);
    let mut a: Dict<Member> = Dict::new();
    for n in &all {
        a.put(n.as_bytes(), m("1"));
    }
    assert!(a.is_sharded());
    for n in all.iter().step_by(3) {
        *a.get_mut(n.as_bytes()).expect("present") = m("2");
    }
    // The same entries built in another order (and so another layout) are equal.
    let b: Dict<Member> = all
        .iter()
        .rev()
        .enumerate()
        .map(|(i, n)| {
            let j = all.len() - 1 - i;
            (
                Member::new(n.as_bytes()),
                m(if j.is_multiple_of(3) { "2" } else { "1" }),
            )
        })
        .collect();
    assert_eq!(a, b);
    let mut c = b.clone();
    assert_eq!(c.insert(m("element:0"), m("3")), Some(m("2")));
    assert_ne!(a, c);
    assert_eq!(
        a.values().filter(|v| v.as_bytes() == b"2").count(),
        all.len().div_ceil(3)
    );
    let owned: Vec<(Member, Member)> = c.into_iter().collect();
    assert_eq!(owned.len(), all.len());
}

#[test]
fn random_positions_are_uniform_over_shards() {
    // Each position maps to one member: counting picks by position over a table
    // whose shards differ in size still gives every member the same share.
    let mut s = MemberSet::new();
    for n in names(2 * SHARD_AT) {
        s.insert_slice(n.as_bytes());
    }
    let mut hits = std::collections::HashMap::new();
    for i in 0..s.len() {
        *hits
            .entry(s.get_index(i).map(|k| k.as_bytes().to_vec()))
            .or_insert(0) += 1;
    }
    assert_eq!(hits.len(), s.len());
    assert!(hits.values().all(|&n| n == 1));
}

#[test]
fn heap_size_follows_the_table() {
    let mut s = MemberSet::new();
    let empty = s.heap_size();
    for n in names(10_000) {
        s.insert_slice(n.as_bytes());
    }
    let full = s.heap_size();
    // At least the entries themselves (hash + handle), at most a few times that.
    assert!(full >= empty + 10_000 * 32, "{full}");
    assert!(full <= 10_000 * 32 * 4, "{full}");
}

/// The longest single insert while a set grows to 100k members, against one
/// `IndexSet` (what sets were): a measurement, not an assertion (timings are noise on
/// a shared machine, so each insert's time is the least over 9 runs, which drops a
/// preemption that hits one run). Run with
/// `cargo test --profile profiling -p redsnap-engine --lib dict::tests::growth_pauses -- --ignored --nocapture`.
#[test]
#[ignore]
fn growth_pauses() {
    use std::time::Instant;
    let all = names(100_000);
    let mut best_new = vec![u128::MAX; all.len()];
    let mut best_old = vec![u128::MAX; all.len()];
    for _ in 0..9 {
        let mut s = MemberSet::new();
        for (i, n) in all.iter().enumerate() {
            let t = Instant::now();
            s.insert_slice(n.as_bytes());
            best_new[i] = best_new[i].min(t.elapsed().as_nanos());
        }
        let mut o: indexmap::IndexSet<Member> = indexmap::IndexSet::new();
        for (i, n) in all.iter().enumerate() {
            let t = Instant::now();
            o.insert(Member::new(n.as_bytes()));
            best_old[i] = best_old[i].min(t.elapsed().as_nanos());
        }
    }
    for (name, v) in [("MemberSet", &best_new), ("IndexSet", &best_old)] {
        let mut top: Vec<(u128, usize)> = v.iter().enumerate().map(|(i, &d)| (d, i)).collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        let mut sorted = v.clone();
        sorted.sort_unstable();
        println!(
            "{name}: median insert {} ns, p99.9 {} ns; slowest (us @ member count): {:?}",
            sorted[sorted.len() / 2],
            sorted[sorted.len() * 999 / 1000],
            top[..6]
                .iter()
                .map(|&(d, i)| (d / 1000, i))
                .collect::<Vec<_>>()
        );
    }
}
