//! Keys that share one full 64-bit hash: one trie slot, ordered by bytes.
//!
//! With a seeded hash such groups are rare (two keys of a 64-bit hash colliding by
//! chance), but a group must not become a weak point if one grows anyway (a test with a
//! forced hash, an old data directory on the unseeded hash): it is a persistent B-tree
//! (`imbl::OrdMap`), so a lookup, an insert and a removal cost O(log n) comparisons
//! and a bounded copy (no memmove of the whole group), and a clone (a snapshot) is
//! O(1) with the nodes shared until written.

use super::Leaf;
use crate::key::Key;
use std::cmp::Ordering;

/// The bytes of a key, ordered as bytes (the B-tree's key; the leaf holds the key too).
#[derive(Debug, Clone)]
pub(super) struct GroupKey(Key);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GroupKey {}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        count_comparison();
        self.0[..].cmp(&other.0[..])
    }
}

/// A borrowed key to search a group with (no allocation on the read path).
struct Probe<'a>(&'a [u8]);

impl equivalent::Equivalent<GroupKey> for Probe<'_> {
    fn equivalent(&self, k: &GroupKey) -> bool {
        count_comparison();
        *self.0 == k.0[..]
    }
}

impl equivalent::Comparable<GroupKey> for Probe<'_> {
    fn compare(&self, k: &GroupKey) -> Ordering {
        count_comparison();
        self.0.cmp(&k.0[..])
    }
}

#[cfg(test)]
thread_local! {
    static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Key comparisons made in groups by this thread so far (test builds only).
#[cfg(test)]
pub(crate) fn comparisons() -> u64 {
    COMPARISONS.with(|c| c.get())
}

#[inline(always)]
fn count_comparison() {
    #[cfg(test)]
    COMPARISONS.with(|c| c.set(c.get() + 1));
}

/// Two or more keys with one hash.
#[derive(Debug, Clone)]
pub(super) struct Group<V> {
    hash: u64,
    map: imbl::OrdMap<GroupKey, Leaf<V>>,
}

/// The leaves of a group in key order.
pub(super) type GroupIter<'a, V> =
    imbl::ordmap::Values<'a, GroupKey, Leaf<V>, imbl::shared_ptr::DefaultSharedPtr>;

impl<V> Group<V> {
    pub(super) fn hash(&self) -> u64 {
        self.hash
    }

    pub(super) fn iter(&self) -> GroupIter<'_, V> {
        self.map.values()
    }
}

impl<V: Clone> Group<V> {
    /// A group of two leaves with the same hash and different keys.
    pub(super) fn pair(a: Leaf<V>, b: Leaf<V>) -> Group<V> {
        let mut g = Group {
            hash: a.hash,
            map: imbl::OrdMap::new(),
        };
        g.insert(a);
        g.insert(b);
        g
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Leaf<V>> {
        self.map.get(&Probe(key))
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Leaf<V>> {
        self.map.get_mut(&Probe(key))
    }

    /// Inserts or replaces (a replaced key keeps its stored bytes); returns the
    /// previous value.
    pub(super) fn insert(&mut self, leaf: Leaf<V>) -> Option<V> {
        if let Some(l) = self.map.get_mut(&Probe(&leaf.key)) {
            return Some(std::mem::replace(&mut l.value, leaf.value));
        }
        self.map.insert(GroupKey(leaf.key.clone()), leaf);
        None
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Leaf<V>> {
        self.map.remove(&Probe(key))
    }

    /// The only leaf, taken out, when one is left.
    pub(super) fn take_single(&mut self) -> Option<Leaf<V>> {
        if self.map.len() != 1 {
            return None;
        }
        self.map.values().next().cloned()
    }

    /// Whether the two groups share their tree (then they hold the same leaves).
    pub(super) fn ptr_eq(&self, other: &Group<V>) -> bool {
        self.map.ptr_eq(&other.map)
    }
}
