//! Values held in the keyspace.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};

/// One value. Containers use std collections; a value is shared between the live
/// keyspace and any snapshot in progress through an `Arc` and copied on first write
/// (see `Db::get_mut`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
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
/// walking up to 1,024 members per pick, and never picked beyond them).
pub type Set = indexmap::IndexSet<Bytes>;

/// A hash's fields. An `IndexMap` keeps insertion order, which is the order Redis
/// answers HGETALL in for a hash small enough for its listpack encoding (deleting a
/// field of such a hash keeps the others' order: see `cmd::hash`).
pub type Hash = indexmap::IndexMap<Bytes, Bytes>;

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
        const PER_ELEM: usize = 48;
        match self {
            Value::Str(s) => s.len() + 16,
            Value::List(l) => l.iter().map(|e| e.len() + 32).sum::<usize>() + 32,
            Value::Hash(h) => {
                h.iter()
                    .map(|(k, v)| k.len() + v.len() + PER_ELEM + 16)
                    .sum::<usize>()
                    + 48
            }
            Value::Set(s) => s.iter().map(|e| e.len() + PER_ELEM).sum::<usize>() + 48,
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
        // -0.0 and 0.0 compare equal, as in Redis (C `<` on doubles).
        self.0
            .partial_cmp(&other.0)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// A sorted set: member -> score, plus (score, member) order. Members are
/// [`Member`]s (up to 22 bytes inline in a 24-byte handle, longer ones in one shared
/// allocation), so a short member costs no allocation of its own in either index:
/// 1M geo members take about half the memory they took as `Bytes` (see
/// BENCHMARKS.md, "Data types").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    pub dict: HashMap<Member, f64>,
    pub order: BTreeSet<(Score, Member)>,
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
                    let m = Member::new(&member);
                    self.order.remove(&(Score(*old), m.clone()));
                    *old = score;
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
                self.order.remove(&(Score(s), m));
                true
            }
            None => false,
        }
    }
    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        let key = (Score(s), Member::new(member));
        Some(self.order.range(..key).count())
    }
    /// Members in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Member, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }
}

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

type ZBound = std::ops::Bound<(Score, Member)>;

/// The least double greater than `v` (`f64::next_up`, which needs Rust 1.86).
fn next_up(v: f64) -> f64 {
    if v.is_nan() || v == f64::INFINITY {
        return v;
    }
    if v == 0.0 {
        return f64::from_bits(1);
    }
    let b = v.to_bits();
    if v > 0.0 {
        f64::from_bits(b + 1)
    } else {
        f64::from_bits(b - 1)
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
    pub fn range_by_rank(&self, start: usize, end: usize, rev: bool) -> Vec<(Bytes, f64)> {
        let n = end.saturating_sub(start).saturating_add(1);
        let pick = |(s, m): &(Score, Member)| (m.to_bytes(), s.0);
        if rev {
            self.order
                .iter()
                .rev()
                .skip(start)
                .take(n)
                .map(pick)
                .collect()
        } else {
            self.order.iter().skip(start).take(n).map(pick).collect()
        }
    }

    /// B-tree bounds of a score range; None when it is empty.
    fn score_bounds(r: &ScoreRange) -> Option<(ZBound, ZBound)> {
        use std::ops::Bound::*;
        if r.is_empty() || r.min.is_nan() || r.max.is_nan() {
            return None;
        }
        let lo = if r.minex {
            if r.min == f64::INFINITY {
                return None;
            }
            Included((Score(next_up(r.min)), Member::empty()))
        } else {
            Included((Score(r.min), Member::empty()))
        };
        let hi = if r.maxex {
            Excluded((Score(r.max), Member::empty()))
        } else if r.max == f64::INFINITY {
            Unbounded
        } else {
            Excluded((Score(next_up(r.max)), Member::empty()))
        };
        // Guard BTreeSet::range's panics on inverted bounds.
        if let (Included(a), Excluded(b)) = (&lo, &hi) {
            if a >= b {
                return None;
            }
        }
        Some((lo, hi))
    }

    /// Elements whose score is in `r`, ascending or (with `rev`) descending.
    pub fn iter_by_score<'a>(
        &'a self,
        r: &ScoreRange,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&'a Member, f64)> + 'a> {
        match Self::score_bounds(r) {
            None => Box::new(std::iter::empty()),
            Some(b) => {
                let it = self.order.range(b).map(|(s, m)| (m, s.0));
                if rev {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
        }
    }

    pub fn count_by_score(&self, r: &ScoreRange) -> usize {
        self.iter_by_score(r, false).count()
    }

    /// Elements whose member is in `r` (meaningful when all scores are equal, as in
    /// Redis; with mixed scores this walks the score order like Redis does).
    pub fn iter_by_lex<'a>(
        &'a self,
        r: &LexRange,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&'a Member, f64)> + 'a> {
        use std::ops::Bound::*;
        if r.is_empty() || self.is_empty() {
            return Box::new(std::iter::empty());
        }
        let first = self.order.iter().next().map(|x| x.0);
        let last = self.order.iter().next_back().map(|x| x.0);
        if let (Some(f), Some(l)) = (first, last) {
            if f == l {
                // One score: members are in byte order, so the range is a B-tree range.
                let lo = match &r.min {
                    LexBound::Min => Unbounded,
                    LexBound::Max => return Box::new(std::iter::empty()),
                    LexBound::Val(m) if r.minex => Excluded((f, Member::new(m))),
                    LexBound::Val(m) => Included((f, Member::new(m))),
                };
                let hi = match &r.max {
                    LexBound::Max => Unbounded,
                    LexBound::Min => return Box::new(std::iter::empty()),
                    LexBound::Val(m) if r.maxex => Excluded((f, Member::new(m))),
                    LexBound::Val(m) => Included((f, Member::new(m))),
                };
                // Not empty (checked above), so the bounds are ordered.
                let it = self.order.range((lo, hi)).map(|(s, m)| (m, s.0));
                return if rev {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                };
            }
        }
        // Mixed scores: walk the score order as Redis walks a listpack. Nothing matches
        // unless the last member is >= min and the first is <= max (`zzlIsInLexRange`).
        let in_range = match (self.order.iter().next_back(), self.order.iter().next()) {
            (Some((_, last)), Some((_, first))) => r.gte_min(last) && r.lte_max(first),
            _ => false,
        };
        if !in_range {
            return Box::new(std::iter::empty());
        }
        let r1 = r.clone();
        let r2 = r.clone();
        if rev {
            Box::new(
                self.iter()
                    .rev()
                    .skip_while(move |(m, _)| !r1.lte_max(m))
                    .take_while(move |(m, _)| r2.gte_min(m)),
            )
        } else {
            Box::new(
                self.iter()
                    .skip_while(move |(m, _)| !r1.gte_min(m))
                    .take_while(move |(m, _)| r2.lte_max(m)),
            )
        }
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
        assert_eq!(next_up(-1.0), -0.9999999999999999);
        assert_eq!(next_up(0.0), f64::from_bits(1));
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
