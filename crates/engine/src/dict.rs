//! The tables behind sets and hashes: one `IndexMap` while small, [`SHARDS`] of them
//! once big, so that no insert stalls the server for long.
//!
//! An `IndexMap` doubles its whole index and entry array in one step: a set of 57k
//! members paused 1.3-1.7 ms on the insert that grew it (median insert 50 ns), and
//! under `redis-benchmark -P 16` that pause held ~800 pipelined requests, which set
//! HSET's p99 (2.70 ms against Redis's 1.78; Redis rehashes incrementally). Past
//! [`SHARD_AT`] members a table is split into [`SHARDS`] maps chosen by bits of the
//! member's hash, so one growth step copies 1/64 of the table.
//!
//! Members are hashed once, slice-wise, with the process's SipHash-1-3
//! ([`crate::hash::process_hasher`], as keys are hashed), and that hash serves both
//! the shard choice and the probe (`raw_entry_v1` with the hash given): cheaper than
//! std's `Hash` trait through `RandomState`.
//!
//! Order: a table that is one map keeps insertion order (a hash Redis keeps as a
//! listpack answers HGETALL in it; see `cmd::hash`). A sharded table is walked shard
//! by shard; Redis's hashtable order is unspecified too. SHARD_AT is above
//! Redis's default listpack and intset limits (128, 512): a hash configured with
//! `hash-max-listpack-entries` above it loses insertion order past SHARD_AT fields.
//!
//! Random picks (SPOP, SRANDMEMBER, HRANDFIELD) index the whole table by position
//! ([`Dict::get_index`]): a walk over the 64 shard sizes, so still uniform.

use crate::hash::process_hasher;
use crate::key::Key as Member;
use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
use indexmap::IndexMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Members at which a table is split into shards.
pub const SHARD_AT: usize = 1024;
/// Shards of a big table (a power of two).
pub const SHARDS: usize = 64;

/// The hash of a member: the same function the inner maps use through `Hash`.
#[inline]
fn hash_of(m: &[u8]) -> u64 {
    process_hasher().hash(m)
}

/// The shard of a hash. Neither the low bits (hashbrown's bucket index) nor the top
/// seven (its tag byte): those must vary within a shard.
#[inline]
fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) & (SHARDS - 1)
}

/// A `Hasher` that gives a member (hashed through `[u8]`'s `Hash`: a length prefix,
/// then the bytes in one write) the same hash as [`hash_of`], so the maps' own
/// methods agree with the hashes this module passes them.
#[derive(Default)]
pub struct MemberHasher(u64);

impl Hasher for MemberHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ hash_of(bytes);
    }
    /// The length prefix of `[u8]`'s `Hash`: already covered by the bytes' hash.
    fn write_usize(&mut self, _: usize) {}
}

type Map<V> = IndexMap<Member, V, BuildHasherDefault<MemberHasher>>;

fn new_map<V>(cap: usize) -> Map<V> {
    IndexMap::with_capacity_and_hasher(cap, BuildHasherDefault::default())
}

/// A table of members to `V` (a hash's values; `()` for a set).
#[derive(Clone)]
pub struct Dict<V> {
    repr: Repr<V>,
}

#[derive(Clone)]
enum Repr<V> {
    One(Map<V>),
    Shards { len: usize, maps: Box<[Map<V>]> },
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Dict {
            repr: Repr::One(new_map(0)),
        }
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut d = Dict {
            repr: Repr::One(new_map(cap.min(SHARD_AT))),
        };
        if cap > SHARD_AT {
            d.split(cap);
        }
        d
    }

    #[inline]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::One(m) => m.len(),
            Repr::Shards { len, .. } => *len,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the table is split into shards (for tests and MEMORY USAGE).
    pub fn is_sharded(&self) -> bool {
        matches!(self.repr, Repr::Shards { .. })
    }

    /// The map that holds (or would hold) a member of hash `h`.
    #[inline]
    fn map_for(&self, h: u64) -> &Map<V> {
        match &self.repr {
            Repr::One(m) => m,
            Repr::Shards { maps, .. } => &maps[shard_of(h)],
        }
    }

    /// Splits a single map into shards, sized for `cap` members in all.
    #[cold]
    fn split(&mut self, cap: usize) {
        let Repr::One(one) = &mut self.repr else {
            return;
        };
        let one = std::mem::replace(one, new_map(0));
        let per = cap / SHARDS + cap / (SHARDS * 4) + 1;
        let mut maps: Box<[Map<V>]> = (0..SHARDS).map(|_| new_map(per)).collect();
        let len = one.len();
        for (k, v) in one {
            let h = hash_of(&k);
            match maps[shard_of(h)].raw_entry_mut_v1().from_hash(h, |_| false) {
                RawEntryMut::Vacant(e) => {
                    e.insert_hashed_nocheck(h, k, v);
                }
                RawEntryMut::Occupied(_) => {}
            }
        }
        self.repr = Repr::Shards { len, maps };
    }

    pub fn get(&self, m: &[u8]) -> Option<&V> {
        let h = hash_of(m);
        self.map_for(h)
            .raw_entry_v1()
            .from_hash(h, |k| k.as_bytes() == m)
            .map(|(_, v)| v)
    }

    pub fn get_key_value(&self, m: &[u8]) -> Option<(&Member, &V)> {
        let h = hash_of(m);
        self.map_for(h)
            .raw_entry_v1()
            .from_hash(h, |k| k.as_bytes() == m)
    }

    pub fn get_mut(&mut self, m: &[u8]) -> Option<&mut V> {
        let h = hash_of(m);
        let map = match &mut self.repr {
            Repr::One(map) => map,
            Repr::Shards { maps, .. } => &mut maps[shard_of(h)],
        };
        match map.raw_entry_mut_v1().from_hash(h, |k| k.as_bytes() == m) {
            RawEntryMut::Occupied(e) => Some(e.into_mut()),
            RawEntryMut::Vacant(_) => None,
        }
    }

    pub fn contains_key(&self, m: &[u8]) -> bool {
        self.get(m).is_some()
    }

    /// Sets `m` to `value` with one hash and one probe; the member is copied only
    /// when new. True when it was new.
    pub fn put(&mut self, m: &[u8], value: V) -> bool {
        let h = hash_of(m);
        let created = {
            let (map, len) = match &mut self.repr {
                Repr::One(map) => (map, None),
                Repr::Shards { len, maps } => (&mut maps[shard_of(h)], Some(len)),
            };
            match map.raw_entry_mut_v1().from_hash(h, |k| k.as_bytes() == m) {
                RawEntryMut::Occupied(mut e) => {
                    *e.get_mut() = value;
                    false
                }
                RawEntryMut::Vacant(e) => {
                    e.insert_hashed_nocheck(h, Member::new(m), value);
                    if let Some(len) = len {
                        *len += 1;
                    }
                    true
                }
            }
        };
        if created {
            self.after_insert();
        }
        created
    }

    #[inline]
    fn after_insert(&mut self) {
        if let Repr::One(m) = &self.repr {
            if m.len() > SHARD_AT {
                let n = m.len();
                self.split(n * 2);
            }
        }
    }

    /// Inserts `m` (already a `Member`); returns the old value when it was there.
    pub fn insert(&mut self, m: Member, value: V) -> Option<V> {
        let h = hash_of(&m);
        let old = {
            let (map, len) = match &mut self.repr {
                Repr::One(map) => (map, None),
                Repr::Shards { len, maps } => (&mut maps[shard_of(h)], Some(len)),
            };
            match map.raw_entry_mut_v1().from_hash(h, |k| *k == m) {
                RawEntryMut::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), value)),
                RawEntryMut::Vacant(e) => {
                    e.insert_hashed_nocheck(h, m, value);
                    if let Some(len) = len {
                        *len += 1;
                    }
                    None
                }
            }
        };
        if old.is_none() {
            self.after_insert();
        }
        old
    }

    fn remove_by(&mut self, m: &[u8], shift: bool) -> Option<(Member, V)> {
        let h = hash_of(m);
        match &mut self.repr {
            Repr::One(map) => match map.raw_entry_mut_v1().from_hash(h, |k| k.as_bytes() == m) {
                RawEntryMut::Occupied(e) if shift => Some(e.shift_remove_entry()),
                RawEntryMut::Occupied(e) => Some(e.swap_remove_entry()),
                RawEntryMut::Vacant(_) => None,
            },
            Repr::Shards { len, maps } => {
                let map = &mut maps[shard_of(h)];
                match map.raw_entry_mut_v1().from_hash(h, |k| k.as_bytes() == m) {
                    RawEntryMut::Occupied(e) => {
                        *len -= 1;
                        Some(e.swap_remove_entry())
                    }
                    RawEntryMut::Vacant(_) => None,
                }
            }
        }
    }

    /// Removes `m` in O(1), moving the last entry into its place.
    pub fn swap_remove(&mut self, m: &[u8]) -> Option<V> {
        self.remove_by(m, false).map(|(_, v)| v)
    }

    /// Removes `m` keeping the others' order (O(n) on a single map; a sharded table
    /// has no order to keep and removes in O(1)).
    pub fn shift_remove(&mut self, m: &[u8]) -> Option<V> {
        self.remove_by(m, true).map(|(_, v)| v)
    }

    /// The shard and position within it of overall position `i`.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::One(m) => (i < m.len()).then_some((0, i)),
            Repr::Shards { len, maps } => {
                if i >= *len {
                    return None;
                }
                for (s, m) in maps.iter().enumerate() {
                    if i < m.len() {
                        return Some((s, i));
                    }
                    i -= m.len();
                }
                None
            }
        }
    }

    /// The entry at position `i` of the walk order (0..len): each member is at one
    /// position, so a uniform position is a uniform member.
    pub fn get_index(&self, i: usize) -> Option<(&Member, &V)> {
        let (s, j) = self.locate(i)?;
        match &self.repr {
            Repr::One(m) => m.get_index(j),
            Repr::Shards { maps, .. } => maps[s].get_index(j),
        }
    }

    /// Removes the entry at position `i` (see [`Dict::get_index`]) in O(1).
    pub fn swap_remove_index(&mut self, i: usize) -> Option<(Member, V)> {
        let (s, j) = self.locate(i)?;
        match &mut self.repr {
            Repr::One(m) => m.swap_remove_index(j),
            Repr::Shards { len, maps } => {
                let r = maps[s].swap_remove_index(j);
                if r.is_some() {
                    *len -= 1;
                }
                r
            }
        }
    }

    fn maps(&self) -> &[Map<V>] {
        match &self.repr {
            Repr::One(m) => std::slice::from_ref(m),
            Repr::Shards { maps, .. } => maps,
        }
    }

    pub fn iter(&self) -> Iter<'_, V> {
        let maps = self.maps();
        let (first, rest) = maps
            .split_first()
            .map_or((None, &maps[..0]), |(f, r)| (Some(f), r));
        Iter {
            cur: first.map(|m| m.iter()),
            rest: rest.iter(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Member> + Clone {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + Clone {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        let maps: &mut [Map<V>] = match &mut self.repr {
            Repr::One(m) => std::slice::from_mut(m),
            Repr::Shards { maps, .. } => maps,
        };
        maps.iter_mut().flat_map(|m| m.values_mut())
    }

    pub fn clear(&mut self) {
        *self = Dict::new();
    }

    /// Bytes this table holds on the heap: its entry arrays and hash indexes (by
    /// capacity), and the bytes of members and values held out of line as `extra`
    /// counts them.
    pub fn heap_size(&self, extra: impl Fn(&Member, &V) -> usize) -> usize {
        // An entry: its hash, the member and the value; an index slot: a `usize` and
        // hashbrown's control byte, at most 7/8 full.
        let entry = 8 + std::mem::size_of::<Member>() + std::mem::size_of::<V>();
        let tables: usize = self
            .maps()
            .iter()
            .map(|m| {
                let cap = m.capacity();
                let slots = if cap == 0 {
                    0
                } else {
                    (cap * 8 / 7).next_power_of_two()
                };
                cap * entry + slots * 9
            })
            .sum();
        let shards = match &self.repr {
            Repr::One(_) => 0,
            Repr::Shards { maps, .. } => maps.len() * std::mem::size_of::<Map<V>>(),
        };
        tables + shards + self.iter().map(|(k, v)| extra(k, v)).sum::<usize>()
    }
}

/// A walk over a [`Dict`]'s entries, shard by shard.
pub struct Iter<'a, V> {
    cur: Option<indexmap::map::Iter<'a, Member, V>>,
    rest: std::slice::Iter<'a, Map<V>>,
}

impl<V> Clone for Iter<'_, V> {
    fn clone(&self) -> Self {
        Iter {
            cur: self.cur.clone(),
            rest: self.rest.clone(),
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a Member, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.cur.as_mut()?.next() {
                return Some(e);
            }
            self.cur = Some(self.rest.next()?.iter());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let here = self.cur.as_ref().map_or(0, |c| c.len());
        let rest: usize = self.rest.as_slice().iter().map(|m| m.len()).sum();
        (here + rest, Some(here + rest))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a Dict<V> {
    type Item = (&'a Member, &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<V> IntoIterator for Dict<V> {
    type Item = (Member, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Map<V>>>;
    fn into_iter(self) -> Self::IntoIter {
        let maps: Vec<Map<V>> = match self.repr {
            Repr::One(m) => vec![m],
            Repr::Shards { maps, .. } => maps.into_vec(),
        };
        maps.into_iter().flatten()
    }
}

impl<V> Extend<(Member, V)> for Dict<V> {
    fn extend<I: IntoIterator<Item = (Member, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<V> FromIterator<(Member, V)> for Dict<V> {
    fn from_iter<I: IntoIterator<Item = (Member, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut d = Dict::with_capacity(iter.size_hint().0);
        d.extend(iter);
        d
    }
}

impl<V, const N: usize> From<[(Member, V); N]> for Dict<V> {
    fn from(a: [(Member, V); N]) -> Self {
        a.into_iter().collect()
    }
}

impl<V: PartialEq> PartialEq for Dict<V> {
    /// Same members with the same values, in any order (as `IndexMap`'s).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(k.as_bytes()).is_some_and(|w| v == w))
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Dict<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A set: a [`Dict`] of members to nothing, with `IndexSet`'s method names.
#[derive(Clone, Default, PartialEq)]
pub struct MemberSet(Dict<()>);

impl MemberSet {
    pub fn new() -> Self {
        MemberSet(Dict::new())
    }
    pub fn with_capacity(cap: usize) -> Self {
        MemberSet(Dict::with_capacity(cap))
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn is_sharded(&self) -> bool {
        self.0.is_sharded()
    }
    /// Adds `m`; true when it is new.
    pub fn insert(&mut self, m: Member) -> bool {
        self.0.insert(m, ()).is_none()
    }
    /// Adds a copy of `m` when it is not there (one hash, one probe, no copy of a
    /// member already there); true when it is new.
    pub fn insert_slice(&mut self, m: &[u8]) -> bool {
        self.0.put(m, ())
    }
    pub fn contains(&self, m: &[u8]) -> bool {
        self.0.contains_key(m)
    }
    pub fn get(&self, m: &[u8]) -> Option<&Member> {
        self.0.get_key_value(m).map(|(k, _)| k)
    }
    pub fn swap_remove(&mut self, m: &[u8]) -> bool {
        self.0.swap_remove(m).is_some()
    }
    pub fn shift_remove(&mut self, m: &[u8]) -> bool {
        self.0.shift_remove(m).is_some()
    }
    /// Removes and returns `m`'s stored member.
    pub fn take(&mut self, m: &[u8]) -> Option<Member> {
        self.0.remove_by(m, false).map(|(k, _)| k)
    }
    pub fn get_index(&self, i: usize) -> Option<&Member> {
        self.0.get_index(i).map(|(k, _)| k)
    }
    pub fn swap_remove_index(&mut self, i: usize) -> Option<Member> {
        self.0.swap_remove_index(i).map(|(k, _)| k)
    }
    pub fn iter(&self) -> SetIter<'_> {
        SetIter(self.0.iter())
    }
    pub fn clear(&mut self) {
        self.0.clear()
    }
    pub fn heap_size(&self) -> usize {
        self.0.heap_size(|k, _| k.heap_size())
    }
}

/// A walk over a [`MemberSet`]'s members.
#[derive(Clone)]
pub struct SetIter<'a>(Iter<'a, ()>);

impl<'a> Iterator for SetIter<'a> {
    type Item = &'a Member;
    #[inline]
    fn next(&mut self) -> Option<&'a Member> {
        self.0.next().map(|(k, _)| k)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for SetIter<'_> {}

impl<'a> IntoIterator for &'a MemberSet {
    type Item = &'a Member;
    type IntoIter = SetIter<'a>;
    fn into_iter(self) -> SetIter<'a> {
        self.iter()
    }
}

impl IntoIterator for MemberSet {
    type Item = Member;
    type IntoIter =
        std::iter::Map<<Dict<()> as IntoIterator>::IntoIter, fn((Member, ())) -> Member>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().map(|(k, ())| k)
    }
}

impl Extend<Member> for MemberSet {
    fn extend<I: IntoIterator<Item = Member>>(&mut self, iter: I) {
        for m in iter {
            self.insert(m);
        }
    }
}

impl FromIterator<Member> for MemberSet {
    fn from_iter<I: IntoIterator<Item = Member>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut s = MemberSet::with_capacity(iter.size_hint().0);
        s.extend(iter);
        s
    }
}

impl<const N: usize> From<[Member; N]> for MemberSet {
    fn from(a: [Member; N]) -> Self {
        a.into_iter().collect()
    }
}

impl std::fmt::Debug for MemberSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests;
