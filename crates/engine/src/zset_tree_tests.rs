//! Tests of the counted B-tree against a sorted `Vec` model.

use super::*;
use crate::value::{Member, Score};
use proptest::prelude::*;
use std::cell::Cell;

type E = (Score, Member);

/// Checks the tree's invariants: order, subtree sizes, equal leaf depth, node
/// capacities (allocations never beyond a node's capacity) and minimum fill.
fn check<T: Ord + std::fmt::Debug>(t: &OsTree<T>) {
    fn walk<T: Ord>(n: &Node<T>, root: bool, depth: usize, leaves: &mut Vec<usize>) -> usize {
        match n {
            Node::Leaf(v) => {
                assert!(v.len() <= LEAF_CAP && v.capacity() <= LEAF_CAP.max(4));
                assert!(root || !v.is_empty(), "empty non-root leaf");
                leaves.push(depth);
                v.len()
            }
            Node::Inner(b, size) => {
                assert!(b.keys.len() <= INNER_CAP && b.keys.capacity() <= INNER_CAP);
                assert!(b.children.capacity() <= INNER_CAP + 1);
                assert!(!b.keys.is_empty(), "inner node without elements");
                assert_eq!(b.children.len(), b.keys.len() + 1);
                let sum: usize = b
                    .children
                    .iter()
                    .map(|c| walk(c, false, depth + 1, leaves))
                    .sum::<usize>()
                    + b.keys.len();
                assert_eq!(sum, *size, "subtree size");
                sum
            }
        }
    }
    let mut leaves = Vec::new();
    let n = walk(&t.root, true, 0, &mut leaves);
    assert_eq!(n, t.len());
    assert!(
        leaves.windows(2).all(|w| w[0] == w[1]),
        "leaves at one depth"
    );
    let all: Vec<&T> = t.iter().collect();
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
    let back: Vec<&T> = t.iter().rev().collect();
    assert!(back.iter().rev().eq(all.iter()));
}

fn score_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NEG_INFINITY),
        Just(f64::INFINITY),
        Just(-0.0),
        Just(0.0),
        (-20i32..20).prop_map(|i| i as f64 / 2.0),
    ]
}

fn elem_strategy() -> impl Strategy<Value = E> {
    (score_strategy(), 0u16..400)
        .prop_map(|(s, m)| (Score(s), Member::new(format!("m{m}").as_bytes())))
}

#[derive(Debug, Clone)]
enum Op {
    Insert(E),
    Remove(E),
    PopFirst,
    PopLast,
    RemoveAt(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => elem_strategy().prop_map(Op::Insert),
        3 => elem_strategy().prop_map(Op::Remove),
        1 => Just(Op::PopFirst),
        1 => Just(Op::PopLast),
        2 => (0usize..3000).prop_map(Op::RemoveAt),
    ]
}

/// Compares every query of the tree with the model.
fn compare(t: &OsTree<E>, model: &[E], probes: &[E], idx: &[(usize, usize)]) {
    assert_eq!(t.len(), model.len());
    assert_eq!(t.first(), model.first());
    assert_eq!(t.last(), model.last());
    for p in probes {
        assert_eq!(t.rank(p), model.binary_search(p).ok());
        assert_eq!(t.contains(p), model.binary_search(p).is_ok());
        let pp = |e: &E| e.0 < p.0;
        assert_eq!(t.partition_point(pp), model.partition_point(pp));
        assert_eq!(t.rank_by(|e| e.cmp(p)), model.binary_search(p));
    }
    for i in 0..model.len().min(5) {
        assert_eq!(t.get(i), model.get(i));
    }
    assert_eq!(t.get(model.len()), None);
    for &(a, b) in idx {
        let (lo, hi) = (a.min(b), a.max(b));
        for k in [lo, hi, model.len().saturating_sub(1)] {
            assert_eq!(t.get(k), model.get(k));
        }
        let hi2 = hi.min(model.len());
        let lo2 = lo.min(hi2);
        let want = &model[lo2..hi2];
        assert!(t.range_idx(lo, hi).eq(want.iter()));
        assert!(t.range_idx(lo, hi).rev().eq(want.iter().rev()));
        // Both ends at once.
        let mut it = t.range_idx(lo, hi);
        let mut got = Vec::new();
        let mut flip = false;
        loop {
            let x = if flip { it.next_back() } else { it.next() };
            match x {
                Some(x) => got.push(x.clone()),
                None => break,
            }
            flip = !flip;
        }
        got.sort();
        assert_eq!(got, want);
    }
}

fn apply(t: &mut OsTree<E>, model: &mut Vec<E>, op: &Op) {
    match op {
        Op::Insert(x) => {
            let want = match model.binary_search(x) {
                Ok(_) => false,
                Err(i) => {
                    model.insert(i, x.clone());
                    true
                }
            };
            assert_eq!(t.insert(x.clone()), want);
        }
        Op::Remove(x) => {
            let want = model.binary_search(x).ok().map(|i| model.remove(i));
            assert_eq!(t.remove(x), want);
        }
        Op::PopFirst => {
            let want = (!model.is_empty()).then(|| model.remove(0));
            assert_eq!(t.pop_first(), want);
        }
        Op::PopLast => assert_eq!(t.pop_last(), model.pop()),
        Op::RemoveAt(i) => {
            let want = (*i < model.len()).then(|| model.remove(*i));
            assert_eq!(t.remove_at(*i), want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn matches_sorted_vec(
        ops in prop::collection::vec(op_strategy(), 0..4000),
        probes in prop::collection::vec(elem_strategy(), 1..20),
        idx in prop::collection::vec((0usize..4100, 0usize..4100), 1..10),
    ) {
        let mut t = OsTree::new();
        let mut model: Vec<E> = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            apply(&mut t, &mut model, op);
            if n % 500 == 0 {
                check(&t);
            }
        }
        check(&t);
        compare(&t, &model, &probes, &idx);
        // A clone is equal and independent.
        let c = t.clone();
        prop_assert_eq!(&c, &t);
        check(&c);
    }
}

/// Sorted loads (ascending and descending), then removal of everything in an
/// interleaved order, through several tree levels.
#[test]
fn sorted_loads_and_full_removal() {
    for desc in [false, true] {
        let n: i64 = 150_000;
        let mut t = OsTree::new();
        let mut model = Vec::new();
        for i in 0..n {
            let v = if desc { n - i } else { i };
            assert!(t.insert(v));
            model.push(v);
        }
        model.sort();
        check(&t);
        for k in [0, 1, 63, 64, 65, 1000, 77_777, n as usize - 1] {
            assert_eq!(t.get(k), model.get(k));
            assert_eq!(t.rank(&model[k]), Some(k));
        }
        // Cloning a tree gives exactly-sized node Vecs; inserting into it must keep
        // every allocation within a node's capacity.
        let mut c = t.clone();
        for i in 0..2000 {
            c.insert(n + 10 + i * 7);
            c.insert(-(i * 13) - 1);
        }
        check(&c);
        // Remove odd then even ones.
        for v in (0..=n).filter(|v| v % 2 == 1) {
            t.remove(&v);
        }
        check(&t);
        for v in 0..=n {
            t.remove(&v);
        }
        check(&t);
        assert!(t.is_empty());
        assert_eq!(t.iter().next(), None);
    }
}

thread_local! {
    static COMPARISONS: Cell<usize> = const { Cell::new(0) };
}

/// An element that counts its comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted(E);
impl PartialOrd for Counted {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Counted {
    fn cmp(&self, other: &Self) -> Ordering {
        COMPARISONS.with(|c| c.set(c.get() + 1));
        self.0.cmp(&other.0)
    }
}

/// ZRANK on a 100k-member set costs a logarithmic number of comparisons (a linear
/// walk would cost up to 100k), and the worst over every member is bounded too.
#[test]
fn rank_is_logarithmic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = 100_000;
    let mut t = OsTree::new();
    let mut all = Vec::new();
    while t.len() < n {
        let e = Counted((
            Score(rng.random_range(0..1000) as f64),
            Member::new(format!("member:{}", rng.random::<u32>()).as_bytes()),
        ));
        if t.insert(e.clone()) {
            all.push(e);
        }
    }
    let log2 = (n as f64).log2().ceil() as usize; // 17
    let mut worst = 0;
    for (i, e) in all.iter().enumerate().step_by(97) {
        COMPARISONS.with(|c| c.set(0));
        let r = t.rank(e).expect("present");
        let cmps = COMPARISONS.with(|c| c.get());
        worst = worst.max(cmps);
        assert_eq!(t.get(r), Some(&all[i]));
    }
    // Binary search in each node: about log2(n) plus one per level.
    assert!(
        worst <= log2 + 6,
        "{worst} comparisons for a rank among {n}"
    );
    // Select reads no element at all: only subtree sizes, at most one node's
    // children per level.
    let (depth, mut node) = (0usize, &t.root);
    let mut depth = depth;
    while let Node::Inner(b, _) = node {
        depth += 1;
        node = &b.children[0];
    }
    assert!(depth <= 4, "depth {depth} for {n}");
}

/// Bytes per element stay at or below std's BTreeSet for the sorted set's elements,
/// for random and for sorted loads.
#[test]
fn memory_not_above_btreeset() {
    use crate::test_alloc::held;
    use rand::{Rng, SeedableRng};
    let n = 200_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let random: Vec<E> = (0..n)
        .map(|i| {
            (
                Score(rng.random::<u32>() as f64),
                Member::new(format!("{i}").as_bytes()),
            )
        })
        .collect();
    let mut sorted = random.clone();
    sorted.sort();
    for (name, elems) in [("random", &random), ("sorted", &sorted)] {
        let before = held();
        // One insert at a time, as ZADD does (`collect` would bulk-load full nodes).
        let mut std_set = std::collections::BTreeSet::new();
        for e in elems.iter() {
            std_set.insert(e.clone());
        }
        let std_bytes = held() - before;
        let before = held();
        let mut t = OsTree::new();
        for e in elems.iter() {
            t.insert(e.clone());
        }
        let ours = held() - before;
        let (per_std, per_ours) = (std_bytes as f64 / n as f64, ours as f64 / n as f64);
        eprintln!("{name}: BTreeSet {per_std:.1} B/element, OsTree {per_ours:.1}");
        assert!(
            per_ours <= per_std,
            "{name}: {per_ours:.1} > {per_std:.1} B/element"
        );
        drop(std_set);
    }
}

/// Random inserts and removals on a tree three levels deep (every node kind splits,
/// merges and borrows), against std's `BTreeSet`.
#[test]
fn random_ops_many_levels() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut t = OsTree::new();
    let mut model = std::collections::BTreeSet::new();
    for round in 0..6 {
        for _ in 0..120_000 {
            let v: u32 = rng.random_range(0..400_000);
            if rng.random_bool(if round % 2 == 0 { 0.8 } else { 0.3 }) {
                assert_eq!(t.insert(v), model.insert(v));
            } else if rng.random_bool(0.5) {
                assert_eq!(t.remove(&v), model.take(&v));
            } else {
                // Select is checked against the model below; here it names the
                // victim (BTreeSet has no O(log n) nth).
                let i = rng.random_range(0..=model.len());
                let want = t.get(i).copied();
                if let Some(w) = want {
                    assert!(model.remove(&w));
                }
                assert_eq!(t.remove_at(i), want);
            }
        }
        check(&t);
        assert!(t.iter().eq(model.iter()));
        for _ in 0..200 {
            let v: u32 = rng.random_range(0..400_000);
            let want = model.range(..v).count();
            assert_eq!(t.partition_point(|e| *e < v), want);
            assert_eq!(t.get(want), model.range(v..).next());
        }
    }
}
