//! Values held in the keyspace.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// One value. Containers use std collections; a value is shared between the live
/// keyspace and any snapshot in progress through an `Arc` and copied on first write
/// (see `Db::get_mut`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Hash(HashMap<Bytes, Bytes>),
    Set(HashSet<Bytes>),
    ZSet(ZSet),
}

/// The type of a value, as TYPE and SCAN TYPE name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    List,
    Hash,
    Set,
    ZSet,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
    pub fn from_name(name: &[u8]) -> Option<Kind> {
        Some(match name.to_ascii_lowercase().as_slice() {
            b"string" => Kind::Str,
            b"list" => Kind::List,
            b"hash" => Kind::Hash,
            b"set" => Kind::Set,
            b"zset" => Kind::ZSet,
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
        }
    }

    /// An estimate of the heap bytes this value uses (for MEMORY USAGE and maxmemory).
    pub fn mem_usage(&self) -> usize {
        const PER_ELEM: usize = 48;
        match self {
            Value::Str(s) => s.len() + 16,
            Value::List(l) => l.iter().map(|e| e.len() + 32).sum::<usize>() + 32,
            Value::Hash(h) => h.iter().map(|(k, v)| k.len() + v.len() + PER_ELEM + 16).sum::<usize>() + 48,
            Value::Set(s) => s.iter().map(|e| e.len() + PER_ELEM).sum::<usize>() + 48,
            Value::ZSet(z) => z.dict.keys().map(|e| 2 * e.len() + 2 * PER_ELEM + 16).sum::<usize>() + 96,
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
        self.0.partial_cmp(&other.0).unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// A sorted set: member -> score, plus (score, member) order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    pub dict: HashMap<Bytes, f64>,
    pub order: BTreeSet<(Score, Bytes)>,
}

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
        match self.dict.get_mut(&member) {
            Some(old) => {
                if *old != score || old.is_sign_negative() != score.is_sign_negative() {
                    self.order.remove(&(Score(*old), member.clone()));
                    *old = score;
                    self.order.insert((Score(score), member));
                }
                false
            }
            None => {
                self.dict.insert(member.clone(), score);
                self.order.insert((Score(score), member));
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
        let key = (Score(s), Bytes::copy_from_slice(member));
        Some(self.order.range(..key).count())
    }
    /// Members in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }
}
