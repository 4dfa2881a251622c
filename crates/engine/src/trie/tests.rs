use super::*;
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Hashes that collide often (few distinct values, shared prefixes) to reach
/// same-hash groups and deep splits.
fn weak_hash(key: &[u8], mode: u8) -> u64 {
    let h = crate::hash::legacy_hash(key);
    match mode {
        0 => h,
        1 => h & 0xF000_0000_0000_000F, // shared middle bits: deep paths
        _ => h % 3,                     // many full collisions
    }
}

/// The nodes' bitmaps and slot kinds, depth first (the trie's shape).
fn shape<V>(n: &Node<V>, out: &mut Vec<(u64, u8)>) {
    out.push((n.bitmap, 0));
    for s in n.slots.iter() {
        match s {
            Slot::Leaf(l) => out.push((l.hash, 1)),
            Slot::Same(g) => out.push((g.hash(), 2)),
            Slot::Node(c) => shape(c, out),
        }
    }
}

proptest! {
    /// A trie built from sorted leaves holds the same keys, in the same shape, as
    /// one built by inserting them one by one, and takes further writes alike.
    #[test]
    fn from_sorted_matches_inserts(
        keys in proptest::collection::vec((0u16..2000, any::<u32>()), 0..600),
        mode in 0u8..3,
        after in proptest::collection::vec((0u16..2000, any::<u32>()), 0..50),
    ) {
        let leaf = |k: u16, v: u32| {
            let b = format!("key:{k}");
            Leaf { hash: weak_hash(b.as_bytes(), mode), key: Key::new(b.as_bytes()), value: v }
        };
        let mut inserted = Trie::default();
        let mut last: BTreeMap<(u64, Vec<u8>), u32> = BTreeMap::new();
        for &(k, v) in &keys {
            let l = leaf(k, v);
            last.insert((l.hash, l.key.to_vec()), v);
            inserted.insert(l.hash, l.key, l.value);
        }
        let leaves: Vec<Leaf<u32>> = last
            .iter()
            .map(|((h, k), v)| Leaf { hash: *h, key: Key::new(k), value: *v })
            .collect();
        let mut built = Trie::from_sorted(leaves);
        prop_assert_eq!(built.len(), inserted.len());
        let a: Vec<_> = built.iter().map(|l| (l.hash, l.key.to_vec(), l.value)).collect();
        let b: Vec<_> = inserted.iter().map(|l| (l.hash, l.key.to_vec(), l.value)).collect();
        prop_assert_eq!(a, b);
        let (mut sa, mut sb) = (Vec::new(), Vec::new());
        shape(&built.root, &mut sa);
        shape(&inserted.root, &mut sb);
        prop_assert_eq!(sa, sb);
        for &(k, v) in &after {
            let l = leaf(k, v);
            prop_assert_eq!(
                built.insert(l.hash, l.key.clone(), v),
                inserted.insert(l.hash, l.key, v)
            );
        }
        let a: Vec<_> = built.iter().map(|l| (l.hash, l.key.to_vec(), l.value)).collect();
        let b: Vec<_> = inserted.iter().map(|l| (l.hash, l.key.to_vec(), l.value)).collect();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn from_sorted_drops_keys_out_of_order_or_repeated() {
    let l = |h: u64, k: &str| Leaf {
        hash: h,
        key: Key::new(k.as_bytes()),
        value: 0u8,
    };
    let t = Trie::from_sorted(vec![l(1, "a"), l(1, "a"), l(5, "b"), l(3, "c"), l(9, "d")]);
    let got: Vec<_> = t.iter().map(|x| (x.hash, x.key.to_vec())).collect();
    assert_eq!(
        got,
        vec![(1, b"a".to_vec()), (5, b"b".to_vec()), (9, b"d".to_vec())]
    );
    assert_eq!(t.len(), 3);
    assert!(Trie::<u8>::from_sorted(Vec::new()).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    Snapshot,
    Get(u16),
    From(u64),
    /// From a key's own hash (exact-hash boundary).
    FromKey(u16),
    /// Continue writing to the snapshot (the clone) and keep the other version.
    Swap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u16..300).prop_map(Op::Remove),
        1 => Just(Op::Snapshot),
        1 => (0u16..300).prop_map(Op::Get),
        1 => any::<u64>().prop_map(Op::From),
        1 => (0u16..300).prop_map(Op::FromKey),
        1 => Just(Op::Swap),
    ]
}

/// The reference model: (hash, key) -> value.
type Model = BTreeMap<(u64, Bytes), u32>;

/// Short keys (held inline) and, for every third one, a long key (on the heap).
fn key(k: u16) -> Bytes {
    if k.is_multiple_of(3) {
        Bytes::from(format!("k{k:0>30}"))
    } else {
        Bytes::from(format!("k{k}"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Against a BTreeMap keyed by (hash, bytes): contents, order, ranges, length,
    /// and diffs between versions (with the old version left untouched).
    #[test]
    fn behaves_like_an_ordered_map(mode in 0u8..3, ops in proptest::collection::vec(op(), 1..400)) {
        let mut t: Trie<u32> = Trie::default();
        let mut m: Model = BTreeMap::new();
        let mut snap: Option<(Trie<u32>, Model)> = None;
        for o in ops {
            match o {
                Op::Insert(k, v) => {
                    let kb = key(k);
                    let h = weak_hash(&kb, mode);
                    prop_assert_eq!(t.insert(h, Key::from(&kb), v), m.insert((h, kb), v));
                }
                Op::Remove(k) => {
                    let kb = key(k);
                    let h = weak_hash(&kb, mode);
                    prop_assert_eq!(t.remove(h, &kb).map(|l| l.value), m.remove(&(h, kb)));
                }
                Op::Get(k) => {
                    let kb = key(k);
                    let h = weak_hash(&kb, mode);
                    prop_assert_eq!(t.get(h, &kb).map(|l| l.value), m.get(&(h, kb.clone())).copied());
                    if let Some(v) = t.get_mut(h, &kb) {
                        *v = v.wrapping_add(1);
                        if let Some(mv) = m.get_mut(&(h, kb)) { *mv = mv.wrapping_add(1); }
                    }
                }
                Op::From(_) | Op::FromKey(_) => {
                    let h = match o {
                        Op::FromKey(k) => weak_hash(&key(k), mode),
                        Op::From(h) => h,
                        _ => 0,
                    };
                    let got: Vec<(u64, Bytes)> = t.iter_from(h).map(|l| (l.hash, l.key.to_bytes())).collect();
                    let want: Vec<(u64, Bytes)> = m.range((h, Bytes::new())..).map(|(k, _)| k.clone()).collect();
                    prop_assert_eq!(got, want);
                }
                Op::Swap => {
                    if let Some((st, sm)) = snap.as_mut() {
                        std::mem::swap(&mut t, st);
                        std::mem::swap(&mut m, sm);
                    }
                }
                Op::Snapshot => {
                    if let Some((old, old_m)) = &snap {
                        let mut changes = Vec::new();
                        t.diff(old, &|a, b| a == b, &mut |a, b| {
                            changes.push((a.map(|l| (l.hash, l.key.to_bytes(), l.value)), b.map(|l| (l.hash, l.key.to_bytes(), l.value))));
                            true
                        });
                        let mut want = Vec::new();
                        let keys: std::collections::BTreeSet<&(u64, Bytes)> = old_m.keys().chain(m.keys()).collect();
                        for k in keys {
                            let (a, b) = (old_m.get(k), m.get(k));
                            if a != b {
                                want.push((a.map(|v| (k.0, k.1.clone(), *v)), b.map(|v| (k.0, k.1.clone(), *v))));
                            }
                        }
                        prop_assert_eq!(changes, want);
                        // The old version still holds what it held.
                        let old_items: Vec<(u64, Bytes, u32)> = old.iter().map(|l| (l.hash, l.key.to_bytes(), l.value)).collect();
                        let old_want: Vec<(u64, Bytes, u32)> = old_m.iter().map(|(k, v)| (k.0, k.1.clone(), *v)).collect();
                        prop_assert_eq!(old_items, old_want);
                    }
                    snap = Some((t.clone(), m.clone()));
                }
            }
            prop_assert_eq!(t.len(), m.len());
        }
        let items: Vec<(u64, Bytes, u32)> = t.iter().map(|l| (l.hash, l.key.to_bytes(), l.value)).collect();
        let want: Vec<(u64, Bytes, u32)> = m.iter().map(|(k, v)| (k.0, k.1.clone(), *v)).collect();
        prop_assert_eq!(items, want);
    }
}

#[test]
fn diff_of_a_few_changes_visits_few_nodes() {
    // 100k keys, 10 changed: the diff reports exactly those, and skips shared
    // subtrees (the number of values compared stays far below the map size).
    let mut t: Trie<u32> = Trie::default();
    for i in 0..100_000u32 {
        let k = Key::from(format!("key:{i}").as_str());
        t.insert(crate::hash::legacy_hash(&k), k, i);
    }
    let old = t.clone();
    for i in (0..100_000u32).step_by(10_000) {
        let k = Key::from(format!("key:{i}").as_str());
        t.insert(crate::hash::legacy_hash(&k), k, i + 1);
    }
    let compared = std::cell::Cell::new(0usize);
    let mut n = 0;
    t.diff(
        &old,
        &|a, b| {
            compared.set(compared.get() + 1);
            a == b
        },
        &mut |_, _| {
            n += 1;
            true
        },
    );
    assert_eq!(n, 10);
    assert!(compared.get() < 2_000, "compared {}", compared.get());
}

#[test]
fn prefetch_reaches_the_leaves_of_present_keys() {
    let mut t: Trie<u32> = Trie::default();
    for i in 0..10_000u32 {
        let k = Key::from(format!("key:{i}").as_str());
        t.insert(crate::hash::legacy_hash(&k), k, i);
    }
    // Present and absent keys, more than one batch's worth.
    let names: Vec<String> = (0..40).map(|i| format!("key:{}", i * 499)).collect();
    let hashes: Vec<u64> = names
        .iter()
        .map(|n| crate::hash::legacy_hash(n.as_bytes()))
        .collect();
    let mut reached = Vec::new();
    t.prefetch_paths(&hashes, |l| reached.push(l.value));
    reached.sort_unstable();
    let want: Vec<u32> = (0..32u32)
        .map(|i| i * 499)
        .filter(|&v| v < 10_000)
        .collect();
    assert_eq!(reached, want);
    // An empty trie and an empty batch reach nothing.
    Trie::<u32>::default().prefetch_paths(&hashes, |_| panic!("empty trie"));
    t.prefetch_paths(&[], |_| panic!("empty batch"));
}

/// 50,000 keys forced into one same-hash group (the trie takes the hash from the
/// caller): every operation still works, and a lookup costs O(log n) key
/// comparisons (counted, not timed), where the group was a vector searched
/// linearly and inserted into with a memmove of the whole group.
#[test]
fn a_huge_same_hash_group_stays_logarithmic() {
    const N: u32 = 50_000;
    const H: u64 = 0x0123_4567_89ab_cdef;
    let name = |i: u32| Key::from(format!("flood:{i:08}").as_str());
    let mut t: Trie<u32> = Trie::default();
    // A neighbour with another hash, so the group sits below a node.
    t.insert(H ^ 1, Key::from("other"), 7);
    let before = group_comparisons();
    for i in 0..N {
        assert_eq!(t.insert(H, name(i), i), None);
    }
    let per_insert = (group_comparisons() - before) / u64::from(N);
    // log2(50,000) is about 16: a B-tree search is a few of those per insert.
    assert!(per_insert <= 64, "{per_insert} comparisons per insert");
    assert_eq!(t.len(), N as usize + 1);
    let bound = 4 * u64::from(32 - N.leading_zeros()); // 4 * ceil(log2 N)
    for i in (0..N).step_by(997) {
        let c = group_comparisons();
        assert_eq!(t.get(H, &name(i)).map(|l| l.value), Some(i));
        let c = group_comparisons() - c;
        assert!(
            c <= bound,
            "lookup of key {i}: {c} comparisons (bound {bound})"
        );
    }
    let c = group_comparisons();
    assert!(t.get(H, b"flood:absent").is_none());
    assert!(group_comparisons() - c <= bound);
    // A clone (snapshot), then writes on the live version only.
    let snap = t.clone();
    *t.get_mut(H, &name(5)).unwrap() = 1_000_005;
    assert_eq!(t.insert(H, name(6), 1_000_006), Some(6));
    assert_eq!(t.remove(H, &name(7)).map(|l| l.value), Some(7));
    assert!(t.remove(H, b"flood:absent").is_none());
    t.insert(H, Key::from("flood:zzz"), 1);
    assert_eq!(snap.get(H, &name(5)).map(|l| l.value), Some(5));
    assert_eq!(snap.get(H, &name(7)).map(|l| l.value), Some(7));
    let mut changes = Vec::new();
    t.diff(&snap, &|a, b| a == b, &mut |a, b| {
        changes.push((a.map(|l| l.value), b.map(|l| l.value)));
        true
    });
    assert_eq!(
        changes,
        vec![
            (Some(5), Some(1_000_005)),
            (Some(6), Some(1_000_006)),
            (Some(7), None),
            (None, Some(1)),
        ]
    );
    // Order: the group in byte order, after the neighbour or before it by hash.
    let keys: Vec<Bytes> = t.iter_from(H).take(3).map(|l| l.key.to_bytes()).collect();
    assert_eq!(
        keys,
        vec!["flood:00000000", "flood:00000001", "flood:00000002"]
    );
    let all: Vec<&Leaf<u32>> = t.iter().filter(|l| l.hash == H).collect();
    assert_eq!(all.len(), N as usize);
    assert!(all.windows(2).all(|w| w[0].key[..] < w[1].key[..]));
    // Shrinking back to one key turns the group into a plain leaf.
    for i in 0..N {
        t.remove(H, &name(i));
    }
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(H, b"flood:zzz").map(|l| l.value), Some(1));
    assert_eq!(snap.len(), N as usize + 1);
}

#[test]
fn index_keeps_hash_order() {
    for level in 0..11 {
        let mut prev = 0;
        for top in 0..64u64 {
            let h = if level < 10 {
                top << (58 - 6 * level)
            } else {
                top >> 2
            };
            let i = index(h, level);
            assert!(i >= prev);
            prev = i;
        }
    }
}
