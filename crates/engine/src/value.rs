//! Values held in the keyspace.

use crate::zset_tree::OsTree;
use bytes::Bytes;
use std::collections::HashMap;

/// One value. Containers use std collections; a value is shared between the live
/// keyspace and any snapshot in progress through an `Arc` and copied on first write
/// (see `Db::get_mut`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(crate::list::List),
    Hash(Box<Hash>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    Stream(Box<crate::stream::Stream>),
    /// A JSON document (`ReJSON-RL`, see `crate::json`).
    Json(Box<crate::json::JVal>),
}

/// A set's members. An `IndexSet` (a hash index over a dense array) rather than a
/// `HashSet`: SPOP and SRANDMEMBER pick a uniformly random member by position in
/// O(1), where a `HashSet` can only be walked (SPOP at `-P 16` was 0.48x Redis,
/// walking up to 1,024 members per pick, and never picked beyond them). Members are
/// [`Member`]s, as in sorted sets: one of up to 22 bytes sits inline in the entry, so
/// a lookup compares it without another cache miss (SADD -P 16: +14 % ops/s; 1M
/// members of 20 bytes: 77 bytes each, was 112, Redis 72). Big sets are split into
/// shards so that no insert stalls to grow the whole table (see [`crate::dict`]).
pub type Set = crate::dict::MemberSet;

/// A hash's fields. An `IndexMap` keeps insertion order, which is the order Redis
/// answers HGETALL in for a hash small enough for its listpack encoding (deleting a
/// field of such a hash keeps the others' order: see `cmd::hash`). Fields and values
/// are [`Member`]s as set members are: up to 22 bytes inline in the entry, so a lookup
/// compares the field without another cache miss and a short field or value costs no
/// allocation of its own. Big hashes are split into shards as big sets are
/// ([`crate::dict`]).
pub type Hash = crate::dict::Dict<Member>;

/// The type of a value, as TYPE and SCAN TYPE name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    List,
    Hash,
    Set,
    ZSet,
    Stream,
    Json,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
            Kind::Json => crate::json::TYPE_NAME,
        }
    }
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        Some(match name.to_ascii_lowercase().as_slice() {
            b"string" => Kind::Str,
            b"list" => Kind::List,
            b"hash" => Kind::Hash,
            b"set" => Kind::Set,
            b"zset" => Kind::ZSet,
            b"stream" => Kind::Stream,
            // TYPE answers `ReJSON-RL`; SCAN TYPE compares names case-insensitively.
            b"rejson-rl" => Kind::Json,
            _ => return None,
        })
    }
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::List(_) => Kind::List,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
            Value::Json(_) => Kind::Json,
        }
    }

    /// Whether a container became empty (Redis deletes empty containers).
    pub fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // Redis keeps an emptied stream (its last ID and groups matter).
            Value::Stream(_) => false,
            // An emptied document stays (`{}`, `[]`), as in RedisJSON.
            Value::Json(_) => false,
        }
    }

    /// An estimate of the heap bytes this value uses (for MEMORY USAGE and maxmemory).
    pub fn mem_usage(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 16,
            Value::List(l) => l.heap_size() + 32,
            Value::Hash(h) => h.heap_size(|k, v| k.heap_size() + v.heap_size()) + 48,
            Value::Set(s) => s.heap_size() + 48,
            Value::ZSet(z) => {
                // Each member's handle sits in both indexes (hash entry and B-tree
                // slot with their share of overhead); a long member's bytes once.
                z.dict.keys().map(|e| e.heap_size() + 88).sum::<usize>() + 96
            }
            Value::Stream(s) => s.mem_usage(),
            Value::Json(j) => j.mem_usage() + 16,
        }
    }
}

/// A float score with a total order (scores are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // -0.0 and 0.0 compare equal, as in Redis (C `<` on doubles). Two plain
        // comparisons: the sorted set's B-tree makes about log2(n) of these per ZADD.
        if self.0 < other.0 {
            std::cmp::Ordering::Less
        } else if self.0 > other.0 {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }
}

/// A sorted set: member -> score, plus (score, member) order. Members are
/// [`Member`]s (up to 22 bytes inline in a 24-byte handle, longer ones in one shared
/// allocation), so a short member costs no allocation of its own in either index:
/// 1M geo members take about half the memory they took as `Bytes` (see
/// BENCHMARKS.md, "Data types"). The order is a counted B-tree
/// ([`OsTree`]): rank, select and range counts in O(log n), as Redis's skiplist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    pub dict: HashMap<Member, f64>,
    pub order: OsTree<(Score, Member)>,
}

/// An order element's place relative to (`score`, `member`), with no `Member` built.
fn cmp_elem(e: &(Score, Member), score: f64, member: &[u8]) -> std::cmp::Ordering {
    e.0.cmp(&Score(score))
        .then_with(|| e.1.as_bytes().cmp(member))
}

/// A sorted set's member (the keyspace's compact key handle).
pub type Member = crate::key::Key;

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }
    pub fn len(&self) -> usize {
        self.dict.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }
    /// Inserts or updates; returns true when the member is new.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        match self.dict.get_mut(&member[..]) {
            Some(old) => {
                if *old != score || old.is_sign_negative() != score.is_sign_negative() {
                    let prev = *old;
                    *old = score;
                    // Move the order's own handle (no new `Member` for a long one).
                    let m = match self.order.remove_by(|e| cmp_elem(e, prev, &member)) {
                        Some((_, m)) => m,
                        None => Member::new(&member),
                    };
                    self.order.insert((Score(score), m));
                }
                false
            }
            None => {
                let m = Member::new(&member);
                self.dict.insert(m.clone(), score);
                self.order.insert((Score(score), m));
                true
            }
        }
    }
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.dict.remove_entry(member) {
            Some((m, s)) => {
                self.order.remove_by(|e| cmp_elem(e, s, m.as_bytes()));
                true
            }
            None => false,
        }
    }
    /// 0-based rank in ascending order, O(log n).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        self.order.rank_by(|e| cmp_elem(e, s, member)).ok()
    }
    /// Members in ascending order.
    pub fn iter(&self) -> ZIter<'_> {
        self.range_iter(0, self.len())
    }
    /// Elements with ascending ranks `lo..hi` (clamped), reversible: O(log n + m).
    pub fn range_iter(&self, lo: usize, hi: usize) -> ZIter<'_> {
        self.order
            .range_idx(lo, hi)
            .map(pick_elem as fn(&(Score, Member)) -> (&Member, f64))
    }
    /// The element of ascending rank `i`, O(log n).
    pub fn get_by_rank(&self, i: usize) -> Option<(&Member, f64)> {
        self.order.get(i).map(|(s, m)| (m, s.0))
    }
}

fn pick_elem(e: &(Score, Member)) -> (&Member, f64) {
    (&e.1, e.0 .0)
}

/// Iteration over a range of a sorted set's ranks.
pub type ZIter<'a> = std::iter::Map<
    crate::zset_tree::Iter<'a, (Score, Member)>,
    fn(&'a (Score, Member)) -> (&'a Member, f64),
>;

/// A score interval with optionally exclusive ends (Redis's `zrangespec`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    /// Every score.
    pub fn all() -> ScoreRange {
        ScoreRange {
            min: f64::NEG_INFINITY,
            max: f64::INFINITY,
            minex: false,
            maxex: false,
        }
    }
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }
    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }
    pub fn contains(&self, v: f64) -> bool {
        self.gte_min(v) && self.lte_max(v)
    }
    /// Ranges that can never match anything (`zslIsInRange`'s first test).
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lexicographic range: `-`, `+`, or a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    Val(Bytes),
}

/// A lexicographic interval (Redis's `zlexrangespec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
    pub minex: bool,
    pub maxex: bool,
}

/// Redis's `sdscmplex`.
fn cmp_lex(a: &LexBound, b: &LexBound) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (LexBound::Min, LexBound::Min) | (LexBound::Max, LexBound::Max) => Equal,
        (LexBound::Min, _) | (_, LexBound::Max) => Less,
        (LexBound::Max, _) | (_, LexBound::Min) => Greater,
        (LexBound::Val(x), LexBound::Val(y)) => x.cmp(y),
    }
}

impl LexRange {
    pub fn all() -> LexRange {
        LexRange {
            min: LexBound::Min,
            max: LexBound::Max,
            minex: true,
            maxex: true,
        }
    }
    pub fn gte_min(&self, v: &[u8]) -> bool {
        let c = match &self.min {
            LexBound::Min => std::cmp::Ordering::Greater,
            LexBound::Max => std::cmp::Ordering::Less,
            LexBound::Val(m) => v.cmp(m),
        };
        if self.minex {
            c.is_gt()
        } else {
            c.is_ge()
        }
    }
    pub fn lte_max(&self, v: &[u8]) -> bool {
        let c = match &self.max {
            LexBound::Min => std::cmp::Ordering::Greater,
            LexBound::Max => std::cmp::Ordering::Less,
            LexBound::Val(m) => v.cmp(m),
        };
        if self.maxex {
            c.is_lt()
        } else {
            c.is_le()
        }
    }
    /// Ranges that can never match anything (`zslIsInLexRange`'s first test).
    pub fn is_empty(&self) -> bool {
        let c = cmp_lex(&self.min, &self.max);
        c.is_gt() || (c.is_eq() && (self.minex || self.maxex))
    }
}

impl ZSet {
    /// Builds a set from pairs (later duplicates overwrite earlier ones).
    pub fn from_pairs<I: IntoIterator<Item = (Bytes, f64)>>(pairs: I) -> ZSet {
        let mut z = ZSet::new();
        for (m, s) in pairs {
            z.insert(m, s);
        }
        z
    }

    /// 0-based rank in descending order.
    pub fn rev_rank(&self, member: &[u8]) -> Option<usize> {
        let r = self.rank(member)?;
        Some(self.len() - 1 - r)
    }

    /// Elements with ranks `start..=end` (already normalized, in bounds), ascending
    /// or (with `rev`) descending, where ranks count in the iteration direction.
    /// O(log n + m).
    pub fn range_by_rank(&self, start: usize, end: usize, rev: bool) -> Vec<(Bytes, f64)> {
        let pick = |(m, s): (&Member, f64)| (m.to_bytes(), s);
        let hi = end.saturating_add(1).min(self.len());
        if rev {
            let n = self.len();
            self.range_iter(n - hi, n.saturating_sub(start))
                .rev()
                .map(pick)
                .collect()
        } else {
            self.range_iter(start, hi).map(pick).collect()
        }
    }

    /// Ascending ranks `lo..hi` of the elements whose score is in `r`, O(log n).
    pub fn score_ranks(&self, r: &ScoreRange) -> (usize, usize) {
        if r.is_empty() || r.min.is_nan() || r.max.is_nan() {
            return (0, 0);
        }
        // Both predicates hold for a prefix of the score order.
        let lo = self.order.partition_point(|e| !r.gte_min(e.0 .0));
        let hi = self.order.partition_point(|e| r.lte_max(e.0 .0));
        (lo, hi.max(lo))
    }

    /// Elements whose score is in `r`, ascending or (with `rev`) descending.
    pub fn iter_by_score<'a>(
        &'a self,
        r: &ScoreRange,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&'a Member, f64)> + 'a> {
        let (lo, hi) = self.score_ranks(r);
        let it = self.range_iter(lo, hi);
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// ZCOUNT, O(log n).
    pub fn count_by_score(&self, r: &ScoreRange) -> usize {
        let (lo, hi) = self.score_ranks(r);
        hi - lo
    }

    /// Ascending ranks `lo..hi` of the elements whose member is in `r`. Meaningful
    /// when all scores are equal, as in Redis, and then O(log n); with mixed scores
    /// the score order is walked as Redis walks a listpack (from the top with `rev`,
    /// which can select other elements, as in Redis).
    pub fn lex_ranks(&self, r: &LexRange, rev: bool) -> (usize, usize) {
        let (Some(first), Some(last)) = (self.order.first(), self.order.last()) else {
            return (0, 0);
        };
        if r.is_empty() {
            return (0, 0);
        }
        if first.0 == last.0 {
            // One score: members are in byte order.
            let lo = self.order.partition_point(|e| !r.gte_min(&e.1));
            let hi = self.order.partition_point(|e| r.lte_max(&e.1));
            return (lo, hi.max(lo));
        }
        // Nothing matches unless the last member is >= min and the first is <= max
        // (`zzlIsInLexRange`).
        if !(r.gte_min(&last.1) && r.lte_max(&first.1)) {
            return (0, 0);
        }
        let n = self.len();
        if rev {
            let skip = self.iter().rev().take_while(|(m, _)| !r.lte_max(m)).count();
            let hi = n - skip;
            let take = self
                .range_iter(0, hi)
                .rev()
                .take_while(|(m, _)| r.gte_min(m))
                .count();
            (hi - take, hi)
        } else {
            let lo = self.iter().take_while(|(m, _)| !r.gte_min(m)).count();
            let take = self
                .range_iter(lo, n)
                .take_while(|(m, _)| r.lte_max(m))
                .count();
            (lo, lo + take)
        }
    }

    /// Elements whose member is in `r` (see [`ZSet::lex_ranks`]), ascending or (with
    /// `rev`) descending.
    pub fn iter_by_lex<'a>(
        &'a self,
        r: &LexRange,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&'a Member, f64)> + 'a> {
        let (lo, hi) = self.lex_ranks(r, rev);
        let it = self.range_iter(lo, hi);
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// ZLEXCOUNT: O(log n) when all scores are equal.
    pub fn count_by_lex(&self, r: &LexRange) -> usize {
        let (lo, hi) = self.lex_ranks(r, false);
        hi - lo
    }

    /// Removes the elements of ascending ranks `lo..hi`; returns how many. O(log n)
    /// each, with no comparison of members.
    pub fn remove_ranks(&mut self, lo: usize, hi: usize) -> usize {
        let mut n = 0;
        for _ in lo..hi.min(self.len()) {
            match self.order.remove_at(lo) {
                Some((_, m)) => {
                    self.dict.remove(&m);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Removes and returns the lowest (or, with `max`, the highest) element.
    pub fn pop(&mut self, max: bool) -> Option<(Bytes, f64)> {
        let (s, m) = if max {
            self.order.pop_last()?
        } else {
            self.order.pop_first()?
        };
        self.dict.remove(&m);
        Some((m.to_bytes(), s.0))
    }
}

#[cfg(test)]
mod zset_tests {
    use super::*;

    fn z(pairs: &[(&str, f64)]) -> ZSet {
        ZSet::from_pairs(
            pairs
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m.as_bytes()), *s)),
        )
    }
    fn members<'a>(it: impl Iterator<Item = (&'a Member, f64)>) -> Vec<String> {
        it.map(|(m, _)| String::from_utf8_lossy(m).into_owned())
            .collect()
    }
    fn sr(min: f64, minex: bool, max: f64, maxex: bool) -> ScoreRange {
        ScoreRange {
            min,
            max,
            minex,
            maxex,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Rank-based score and lex selections equal a filter over the whole order;
        /// ranks and ranges by index equal positions in it.
        #[test]
        fn rank_selections_match_a_walk(
            pairs in proptest::collection::vec((0u8..6, 0u16..300), 0..500),
            same_score in proptest::bool::ANY,
            bounds in proptest::collection::vec((0u8..8, 0u8..8, proptest::bool::ANY, proptest::bool::ANY), 1..8),
        ) {
            let scores = [f64::NEG_INFINITY, -1.0, -0.0, 0.0, 2.5, f64::INFINITY];
            let mut s = ZSet::new();
            for (sc, m) in &pairs {
                let score = if same_score { 1.0 } else { scores[*sc as usize] };
                s.insert(Bytes::from(format!("m{m:03}")), score);
            }
            let all: Vec<(Bytes, f64)> = s.iter().map(|(m, x)| (m.to_bytes(), x)).collect();
            for (i, (m, _)) in all.iter().enumerate() {
                proptest::prop_assert_eq!(s.rank(m), Some(i));
                proptest::prop_assert_eq!(s.rev_rank(m), Some(all.len() - 1 - i));
            }
            let lex = |k: u8| match k {
                0 => LexBound::Min,
                7 => LexBound::Max,
                k => LexBound::Val(Bytes::from(format!("m{:03}", k as u16 * 40))),
            };
            for &(a, b, ax, bx) in &bounds {
                let r = sr(scores[(a % 6) as usize], ax, scores[(b % 6) as usize], bx);
                let want: Vec<_> = all.iter().filter(|(_, x)| r.contains(*x)).cloned().collect();
                let got: Vec<_> = s.iter_by_score(&r, false).map(|(m, x)| (m.to_bytes(), x)).collect();
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(s.count_by_score(&r), want.len());
                let back: Vec<_> = s.iter_by_score(&r, true).map(|(m, x)| (m.to_bytes(), x)).collect();
                proptest::prop_assert!(back.iter().rev().eq(want.iter()));
                let lr = LexRange { min: lex(a), max: lex(b), minex: ax, maxex: bx };
                // The walk the lex selection replaced (Redis's listpack walk).
                let fwd: Vec<_> = if lr.is_empty() || all.is_empty() { Vec::new() } else {
                    let ok = lr.gte_min(&all[all.len() - 1].0) && lr.lte_max(&all[0].0);
                    all.iter().skip_while(|(m, _)| !ok || !lr.gte_min(m)).take_while(|(m, _)| lr.lte_max(m)).cloned().collect()
                };
                let rev: Vec<_> = if lr.is_empty() || all.is_empty() { Vec::new() } else {
                    let ok = lr.gte_min(&all[all.len() - 1].0) && lr.lte_max(&all[0].0);
                    all.iter().rev().skip_while(|(m, _)| !ok || !lr.lte_max(m)).take_while(|(m, _)| lr.gte_min(m)).cloned().collect()
                };
                let got: Vec<_> = s.iter_by_lex(&lr, false).map(|(m, x)| (m.to_bytes(), x)).collect();
                proptest::prop_assert_eq!(&got, &fwd);
                proptest::prop_assert_eq!(s.count_by_lex(&lr), fwd.len());
                let got: Vec<_> = s.iter_by_lex(&lr, true).map(|(m, x)| (m.to_bytes(), x)).collect();
                proptest::prop_assert_eq!(&got, &rev);
                let (i, j) = (a as usize * 60, b as usize * 60);
                if i <= j && i < all.len() {
                    let j = j.min(all.len() - 1);
                    proptest::prop_assert_eq!(s.range_by_rank(i, j, false), all[i..=j].to_vec());
                    let mut down = all.clone();
                    down.reverse();
                    proptest::prop_assert_eq!(s.range_by_rank(i, j, true), down[i..=j].to_vec());
                }
            }
            // Removal by rank keeps the dict and the order in step.
            let n = s.len();
            let removed = s.remove_ranks(n / 3, n / 2);
            proptest::prop_assert_eq!(removed, n / 2 - n / 3);
            proptest::prop_assert_eq!(s.len(), n - removed);
            proptest::prop_assert_eq!(s.order.len(), s.dict.len());
            for (m, x) in s.iter() {
                proptest::prop_assert_eq!(s.score(m), Some(x));
            }
        }
    }

    #[test]
    fn score_ranges() {
        let s = z(&[
            ("a", -1.5),
            ("b", 0.0),
            ("c", 0.0),
            ("d", 2.0),
            ("e", f64::INFINITY),
        ]);
        assert_eq!(
            members(s.iter_by_score(&sr(-1.5, true, 0.0, false), false)),
            ["b", "c"]
        );
        assert_eq!(
            members(s.iter_by_score(&sr(-1.5, false, 0.0, true), true)),
            ["a"]
        );
        assert_eq!(
            members(s.iter_by_score(&sr(-0.0, false, 2.0, false), true)),
            ["d", "c", "b"]
        );
        assert_eq!(
            members(s.iter_by_score(&sr(2.0, true, f64::INFINITY, false), false)),
            ["e"]
        );
        assert_eq!(
            members(s.iter_by_score(&sr(2.0, false, f64::INFINITY, true), false)),
            ["d"]
        );
        assert_eq!(
            s.count_by_score(&sr(f64::INFINITY, true, f64::INFINITY, false)),
            0
        );
        assert_eq!(s.count_by_score(&sr(3.0, false, 1.0, false)), 0);
        assert_eq!(s.count_by_score(&sr(0.0, true, 0.0, false)), 0);
        assert_eq!(s.count_by_score(&ScoreRange::all()), 5);
    }

    #[test]
    fn ranks_and_pops() {
        let mut s = z(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
        assert_eq!(s.rank(b"c"), Some(2));
        assert_eq!(s.rev_rank(b"c"), Some(0));
        assert_eq!(s.rank(b"x"), None);
        assert_eq!(s.range_by_rank(1, 5, true).len(), 2);
        assert_eq!(s.pop(true), Some((Bytes::from("c"), 3.0)));
        assert_eq!(s.pop(false), Some((Bytes::from("a"), 1.0)));
        assert_eq!(s.len(), 1);
        assert_eq!(s.dict.len(), s.order.len());
    }

    #[test]
    fn lex_ranges() {
        let s = z(&[("a", 0.0), ("b", 0.0), ("c", 0.0)]);
        let v = |b: &str| LexBound::Val(Bytes::copy_from_slice(b.as_bytes()));
        let r = LexRange {
            min: v("a"),
            max: LexBound::Max,
            minex: true,
            maxex: true,
        };
        assert_eq!(members(s.iter_by_lex(&r, false)), ["b", "c"]);
        assert_eq!(members(s.iter_by_lex(&r, true)), ["c", "b"]);
        let r = LexRange {
            min: LexBound::Min,
            max: v("b"),
            minex: true,
            maxex: false,
        };
        assert_eq!(members(s.iter_by_lex(&r, false)), ["a", "b"]);
        let r = LexRange {
            min: v("b"),
            max: v("b"),
            minex: false,
            maxex: true,
        };
        assert!(r.is_empty());
        assert_eq!(s.iter_by_lex(&r, false).count(), 0);
        let r = LexRange {
            min: LexBound::Max,
            max: LexBound::Min,
            minex: true,
            maxex: true,
        };
        assert_eq!(s.iter_by_lex(&r, false).count(), 0);
        assert_eq!(s.iter_by_lex(&LexRange::all(), false).count(), 3);
    }
}

#[cfg(test)]
mod size_probe {
    /// Every key holds a Value (inside its `Arc<Obj>`): containers are boxed so that a
    /// string key does not pay for the largest variant (80 bytes unboxed).
    #[test]
    fn value_stays_small() {
        assert!(std::mem::size_of::<super::Value>() <= 40);
        assert!(std::mem::size_of::<crate::db::Obj>() <= 48);
        // A trie leaf: the (hash, key) and the entry (value pointer, deadline).
        assert!(std::mem::size_of::<crate::db::Entry>() <= 16);
    }
}
