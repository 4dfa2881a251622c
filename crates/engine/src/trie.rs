//! A persistent hash trie ordered by hash: the keyspace map of a database.
//!
//! A key lives on the path given by its 64-bit hash, read six bits at a time from the
//! top: 64-way nodes with a bitmap of the occupied slots (HAMT-style, no empty slots
//! stored). Visiting slots in index order therefore visits keys in ascending hash
//! order; keys with the very same hash share one slot, sorted by bytes. That is the
//! `(hash, key)` order that SCAN cursors, random picks and the snapshot store rely on.
//!
//! Nodes are shared between versions through `Arc` and copied on write
//! (`Arc::make_mut`): a clone is O(1), and [`Trie::diff`] skips every subtree two
//! versions share by pointer, so its cost follows the number of changes, not the size
//! of the map.
//!
//! A lookup reads one node per level (about log64(n): 3 levels for 100k keys) and
//! compares one key, where a B-tree of 16-key nodes reads five levels and binary-searches
//! each (see ARCHITECTURE.md for the measurement).

use crate::key::Key;
use std::sync::Arc;

mod group;
#[cfg(test)]
pub(crate) use group::comparisons as group_comparisons;
use group::{Group, GroupIter};

/// Hash bits per level (64-way nodes).
const BITS: u32 = 6;

/// The deepest level (10: the last four bits of the hash).
const MAX_LEVEL: u32 = 10;

/// The slot index of `hash` at `level`: bits from the top, so slot order is hash order.
/// Levels 0..=9 read six bits each, level 10 the last four (shifted up, order kept).
#[inline]
fn index(hash: u64, level: u32) -> u32 {
    let end = BITS * (level + 1);
    if end <= 64 {
        ((hash >> (64 - end)) & 63) as u32
    } else {
        ((hash << (end - 64)) & 63) as u32
    }
}

/// Asks the CPU to bring the cache line at `p` (and so the reference counts just
/// before an `Arc`'s data) closer; never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that does not access memory architecturally; any
    // address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One key and its value.
#[derive(Debug, Clone)]
pub struct Leaf<V> {
    pub hash: u64,
    pub key: Key,
    pub value: V,
}

impl<V> Leaf<V> {
    /// Same hash and bytes (for a long key two versions share, a pointer comparison).
    fn same_key(&self, other: &Leaf<V>) -> bool {
        self.hash == other.hash && self.key.same(&other.key)
    }

    fn order(&self, other: &Leaf<V>) -> std::cmp::Ordering {
        if self.same_key(other) {
            return std::cmp::Ordering::Equal;
        }
        (self.hash, &self.key[..]).cmp(&(other.hash, &other.key[..]))
    }
}

#[derive(Debug, Clone)]
enum Slot<V> {
    Leaf(Leaf<V>),
    Node(Node<V>),
    /// Two or more keys with the same full hash, sorted by bytes (a persistent
    /// B-tree: O(log n) whatever the number of keys an attacker or chance put there).
    Same(Arc<Group<V>>),
}

impl<V> Slot<V> {
    /// The hash of the keys held directly (None for a node).
    fn hash(&self) -> Option<u64> {
        match self {
            Slot::Leaf(l) => Some(l.hash),
            Slot::Same(g) => Some(g.hash()),
            Slot::Node(_) => None,
        }
    }
}

/// A node: the bitmap of occupied slot indexes, and the occupied slots in index order.
/// The bitmap sits next to the pointer, in the parent's slot, so a lookup touches one
/// cache line per level (the slot it follows), not a node header and then its slots.
#[derive(Debug, Clone)]
struct Node<V> {
    bitmap: u64,
    slots: Arc<[Slot<V>]>,
}

impl<V> Node<V> {
    fn empty() -> Node<V> {
        Node {
            bitmap: 0,
            // The empty array is a shared static: no allocation.
            slots: Arc::default(),
        }
    }

    /// Whether `idx` is occupied, and the position its slot has (or would have).
    #[inline]
    fn locate(&self, idx: u32) -> (bool, usize) {
        let bit = 1u64 << idx;
        (
            self.bitmap & bit != 0,
            (self.bitmap & (bit - 1)).count_ones() as usize,
        )
    }
}

impl<V: Clone> Node<V> {
    fn from_slots(bitmap: u64, slots: Vec<Slot<V>>) -> Node<V> {
        Node {
            bitmap,
            slots: Arc::from(slots),
        }
    }

    /// The slots, copied first if another version shares them.
    fn slots_mut(&mut self) -> &mut [Slot<V>] {
        if crate::unique::is_unique(&self.slots) {
            // SAFETY: just checked, and `self.slots` is held exclusively. (No locked
            // instruction on the way down: see `crate::unique`.)
            return unsafe { crate::unique::get_mut_unchecked(&mut self.slots) };
        }
        if Arc::strong_count(&self.slots) != 1 && !self.slots.is_empty() {
            // Another version (a snapshot's copy) keeps the original.
            crate::changes::note_copy(array_bytes::<V>(self.slots.len()));
        }
        Arc::make_mut(&mut self.slots)
    }

    fn insert_slot(&mut self, idx: u32, pos: usize, slot: Slot<V>) {
        let old = std::mem::take(&mut self.slots);
        self.slots = rebuild(old, pos, Some(slot)).0;
        self.bitmap |= 1u64 << idx;
    }

    fn remove_slot(&mut self, idx: u32, pos: usize) -> Option<Slot<V>> {
        let old = std::mem::take(&mut self.slots);
        let (slots, removed) = rebuild(old, pos, None);
        self.slots = slots;
        self.bitmap &= !(1u64 << idx);
        removed
    }
}

/// The heap bytes of a slot array of `n` slots (with the `Arc`'s counts).
fn array_bytes<V>(n: usize) -> usize {
    16 + n * std::mem::size_of::<Slot<V>>()
}

/// A new slot array: `old` with `insert` placed at `pos`, or without the slot at
/// `pos` (returned) when `insert` is None. One allocation and one copy: the slots are
/// moved out of `old` when nothing else shares it, cloned when another version does.
fn rebuild<V: Clone>(
    old: Arc<[Slot<V>]>,
    pos: usize,
    insert: Option<Slot<V>>,
) -> (Arc<[Slot<V>]>, Option<Slot<V>>) {
    let pos = pos.min(old.len());
    let skip = usize::from(insert.is_none() && pos < old.len());
    if !crate::unique::is_unique(&old) {
        crate::changes::note_copy(array_bytes::<V>(old.len()));
        let removed = (skip == 1).then(|| old[pos].clone());
        let new = old[..pos]
            .iter()
            .cloned()
            .chain(insert)
            .chain(old[pos + skip..].iter().cloned())
            .collect();
        return (new, removed);
    }
    // SAFETY: this is the only reference to the array (`is_unique` said so). Every
    // element is moved out bitwise exactly once (into the new array or `removed`),
    // then the allocation is released as an array of `ManuallyDrop` (same layout:
    // `repr(transparent)`), so no element is dropped twice. Nothing between the reads
    // and the release can panic (cloning is not involved; allocation failure aborts).
    unsafe {
        let raw = Arc::into_raw(old) as *const [std::mem::ManuallyDrop<Slot<V>>];
        let arr = Arc::from_raw(raw);
        let take = |s: &std::mem::ManuallyDrop<Slot<V>>| std::ptr::read(&**s);
        let removed = (skip == 1).then(|| take(&arr[pos]));
        let new = arr[..pos]
            .iter()
            .map(take)
            .chain(insert)
            .chain(arr[pos + skip..].iter().map(take))
            .collect();
        drop(arr);
        (new, removed)
    }
}

/// The map: keys ordered by `(hash, bytes)`; the caller supplies each key's hash.
#[derive(Debug, Clone)]
pub struct Trie<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie {
            root: Node::empty(),
            len: 0,
        }
    }
}

impl<V> Trie<V> {
    /// The bytes one key's slot takes in a node's array.
    pub fn slot_size() -> usize {
        std::mem::size_of::<Slot<V>>()
    }
}

impl<V: Clone> Trie<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A leaf reached by a random descent: at each node a uniformly random
    /// occupied slot, in a group of equal hashes a uniformly random key. `pick(n)`
    /// must return a uniform index below `n`. Keys are spread by a keyed hash, so
    /// the trie is balanced and every key is about equally likely (two keys in
    /// different root slots exactly 1/2 each), unlike the key at or after a random
    /// hash, whose odds follow the gap before it.
    pub fn random_leaf(&self, mut pick: impl FnMut(usize) -> usize) -> Option<&Leaf<V>> {
        let mut node = &self.root;
        loop {
            if node.slots.is_empty() {
                return None;
            }
            match &node.slots[pick(node.slots.len())] {
                Slot::Leaf(l) => return Some(l),
                Slot::Node(n) => node = n,
                Slot::Same(g) => {
                    let n = g.iter().count();
                    return g.iter().nth(pick(n));
                }
            }
        }
    }

    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Leaf<V>> {
        let mut node = &self.root;
        let mut level = 0;
        loop {
            let (present, pos) = node.locate(index(hash, level));
            if !present {
                return None;
            }
            match &node.slots[pos] {
                Slot::Leaf(l) => return (l.hash == hash && l.key[..] == *key).then_some(l),
                Slot::Node(n) => {
                    node = n;
                    level += 1;
                }
                Slot::Same(g) => return if g.hash() == hash { g.get(key) } else { None },
            }
        }
    }

    /// Brings the paths to several keys into the cache, level by level across the
    /// keys, and calls `found` with each leaf reached that has the key's hash (to
    /// prefetch what its value points to). The reads of one level are independent
    /// between keys, so their cache misses overlap, where looking the keys up one
    /// after the other waits for each miss in turn. Used before running a batch of pipelined commands: their
    /// own lookups then hit the cache. A hint only: nothing is changed.
    pub fn prefetch_paths(&self, hashes: &[u64], mut found: impl FnMut(&Leaf<V>)) {
        const MAX: usize = 32;
        let n = hashes.len().min(MAX);
        let mut cur: [Option<&Node<V>>; MAX] = [None; MAX];
        for c in cur.iter_mut().take(n) {
            *c = Some(&self.root);
        }
        for level in 0..=MAX_LEVEL {
            let mut deeper = false;
            for (c, &hash) in cur.iter_mut().zip(hashes).take(n) {
                let Some(node) = *c else { continue };
                *c = None;
                let (present, pos) = node.locate(index(hash, level));
                if !present {
                    continue;
                }
                match &node.slots[pos] {
                    Slot::Node(next) => {
                        // The array's reference count, which a write checks.
                        prefetch(Arc::as_ptr(&next.slots).cast::<u8>().wrapping_sub(16));
                        *c = Some(next);
                        deeper = true;
                    }
                    Slot::Leaf(l) if l.hash == hash => found(l),
                    Slot::Leaf(_) | Slot::Same(_) => {}
                }
            }
            if !deeper {
                break;
            }
        }
    }

    /// Mutable access to a value; copies the nodes on its path that another version
    /// shares (callers ask for keys they know exist).
    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut level = 0;
        loop {
            let (present, pos) = node.locate(index(hash, level));
            if !present {
                return None;
            }
            match &mut node.slots_mut()[pos] {
                Slot::Leaf(l) => {
                    return (l.hash == hash && l.key[..] == *key).then_some(&mut l.value)
                }
                Slot::Node(n) => {
                    node = n;
                    level += 1;
                }
                Slot::Same(g) => {
                    // Look first: an absent key must not copy a group a snapshot shares.
                    if g.hash() != hash || g.get(key).is_none() {
                        return None;
                    }
                    return Arc::make_mut(g).get_mut(key).map(|l| &mut l.value);
                }
            }
        }
    }

    /// The trie of `leaves`, which must be in `(hash, bytes)` order without equal
    /// keys (a key out of order or repeated is dropped). Built in one pass, each
    /// node allocated once at its final size, where inserting the keys one by one
    /// rebuilds a node's slot array for every key it gains; the shape is the one
    /// those inserts would give (a leaf at the first level where its slot is its
    /// own).
    pub fn from_sorted(leaves: Vec<Leaf<V>>) -> Trie<V> {
        let mut sorted = Vec::with_capacity(leaves.len());
        for l in leaves {
            // Checked, not assumed: the loader's sort could be wrong one day.
            if sorted.last().is_none_or(|p: &Leaf<V>| p.order(&l).is_lt()) {
                sorted.push(l);
            }
        }
        if sorted.is_empty() {
            return Trie::default();
        }
        let hashes: Vec<u64> = sorted.iter().map(|l| l.hash).collect();
        let len = sorted.len();
        let mut it = sorted.into_iter();
        let root = build_node(&hashes, 0, &mut it);
        Trie { root, len }
    }

    /// Inserts or replaces; returns the previous value. A replaced key keeps its
    /// stored bytes (equal to `key`).
    pub fn insert(&mut self, hash: u64, key: Key, value: V) -> Option<V> {
        let old = insert_at(&mut self.root, 0, Leaf { hash, key, value });
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Leaf<V>> {
        // Look first: removing an absent key must not copy nodes a snapshot shares.
        self.get(hash, key)?;
        let out = remove_at(&mut self.root, 0, hash, key);
        if out.is_some() {
            self.len -= 1;
        }
        out
    }

    /// All keys in `(hash, bytes)` order.
    pub fn iter(&self) -> Iter<'_, V> {
        let mut stack = Vec::with_capacity(12);
        stack.push(self.root.slots.iter());
        Iter { stack, same: None }
    }

    /// The keys whose hash is `hash` or more, in order.
    pub fn iter_from(&self, hash: u64) -> Iter<'_, V> {
        let mut stack = Vec::with_capacity(12);
        let mut node = &self.root;
        let mut level = 0;
        loop {
            let (present, pos) = node.locate(index(hash, level));
            if !present {
                stack.push(node.slots[pos..].iter());
                break;
            }
            match &node.slots[pos] {
                Slot::Node(n) => {
                    stack.push(node.slots[pos + 1..].iter());
                    node = n;
                    level += 1;
                }
                s => {
                    let from = if s.hash().is_some_and(|h| h >= hash) {
                        pos
                    } else {
                        pos + 1
                    };
                    stack.push(node.slots[from..].iter());
                    break;
                }
            }
        }
        Iter { stack, same: None }
    }

    /// Calls `f(before, after)` for every key whose value differs between `old` and
    /// `self` (added: before is None; removed: after is None; changed: `eq` says the
    /// values differ), in key order. Subtrees the two versions share are skipped.
    /// Returns false as soon as `f` does.
    pub fn diff<'a>(
        &'a self,
        old: &'a Trie<V>,
        eq: &impl Fn(&V, &V) -> bool,
        f: &mut impl FnMut(Option<&'a Leaf<V>>, Option<&'a Leaf<V>>) -> bool,
    ) -> bool {
        diff_nodes(&old.root, &self.root, eq, f)
    }
}

/// The node at `level` holding the next `hashes.len()` leaves of `it` (whose hashes
/// `hashes` are, ascending, all on this node's path).
fn build_node<V: Clone>(
    hashes: &[u64],
    level: u32,
    it: &mut impl Iterator<Item = Leaf<V>>,
) -> Node<V> {
    let mut bitmap = 0u64;
    let mut slots = Vec::new();
    let mut i = 0;
    while i < hashes.len() {
        let idx = index(hashes[i], level);
        let mut j = i + 1;
        while j < hashes.len() && index(hashes[j], level) == idx {
            j += 1;
        }
        let part = &hashes[i..j];
        i = j;
        let slot = if part.len() == 1 {
            it.next().map(Slot::Leaf)
        } else if part[0] == part[part.len() - 1] || level == MAX_LEVEL {
            // Keys with one full hash (at the last level, hashes are equal).
            let mut g: Option<Group<V>> = None;
            let mut first = None;
            for leaf in it.by_ref().take(part.len()) {
                match (&mut g, first.take()) {
                    (Some(g), _) => {
                        g.insert(leaf);
                    }
                    (None, Some(a)) => g = Some(Group::pair(a, leaf)),
                    (None, None) => first = Some(leaf),
                }
            }
            g.map(|g| Slot::Same(Arc::new(g)))
                .or_else(|| first.map(Slot::Leaf))
        } else {
            Some(Slot::Node(build_node(part, level + 1, it)))
        };
        if let Some(slot) = slot {
            bitmap |= 1u64 << idx;
            slots.push(slot);
        }
    }
    Node::from_slots(bitmap, slots)
}

fn insert_at<V: Clone>(node: &mut Node<V>, level: u32, leaf: Leaf<V>) -> Option<V> {
    let idx = index(leaf.hash, level);
    let (present, pos) = node.locate(idx);
    if !present {
        node.insert_slot(idx, pos, Slot::Leaf(leaf));
        return None;
    }
    let slot = &mut node.slots_mut()[pos];
    match slot {
        Slot::Node(n) => return insert_at(n, level + 1, leaf),
        Slot::Leaf(l) if l.hash == leaf.hash && l.key == leaf.key => {
            return Some(std::mem::replace(&mut l.value, leaf.value));
        }
        Slot::Same(g) if g.hash() == leaf.hash => return Arc::make_mut(g).insert(leaf),
        _ => {}
    }
    // A leaf of another key, or keys of another hash: both go one level down.
    let old = std::mem::replace(slot, Slot::Node(Node::empty()));
    *slot = split(old, leaf, level + 1);
    None
}

/// The slot holding `old` (a leaf or same-hash keys) and `leaf`, which share the path
/// down to `level`.
fn split<V: Clone>(old: Slot<V>, leaf: Leaf<V>, level: u32) -> Slot<V> {
    let Some(oh) = old.hash() else {
        // A node (not reached: nodes are descended into); insert into it.
        let mut old = old;
        if let Slot::Node(n) = &mut old {
            insert_at(n, level, leaf);
        }
        return old;
    };
    if oh == leaf.hash {
        let g = match old {
            Slot::Leaf(l) => Group::pair(l, leaf),
            Slot::Same(g) => {
                let mut g = Arc::unwrap_or_clone(g);
                g.insert(leaf);
                g
            }
            // Not reached: `oh` is None for a node.
            Slot::Node(_) => return Slot::Leaf(leaf),
        };
        return Slot::Same(Arc::new(g));
    }
    let (a, b) = (index(oh, level), index(leaf.hash, level));
    if a == b {
        return Slot::Node(Node::from_slots(
            1u64 << a,
            vec![split(old, leaf, level + 1)],
        ));
    }
    let new = Slot::Leaf(leaf);
    let slots = if a < b {
        vec![old, new]
    } else {
        vec![new, old]
    };
    Slot::Node(Node::from_slots((1u64 << a) | (1u64 << b), slots))
}

fn remove_at<V: Clone>(node: &mut Node<V>, level: u32, hash: u64, key: &[u8]) -> Option<Leaf<V>> {
    let idx = index(hash, level);
    let (present, pos) = node.locate(idx);
    if !present {
        return None;
    }
    let (out, now_empty) = match &mut node.slots_mut()[pos] {
        Slot::Leaf(l) => {
            if l.hash != hash || l.key[..] != *key {
                return None;
            }
            (None, true)
        }
        slot @ Slot::Same(_) => {
            let Slot::Same(g) = slot else { return None };
            if g.hash() != hash || g.get(key).is_none() {
                return None;
            }
            let g = Arc::make_mut(g);
            let out = g.remove(key)?;
            let last = g.take_single();
            if let Some(last) = last {
                *slot = Slot::Leaf(last);
            }
            (Some(out), false)
        }
        slot @ Slot::Node(_) => {
            let Slot::Node(child) = slot else { return None };
            let out = remove_at(child, level + 1, hash, key)?;
            let now_empty = child.slots.is_empty();
            // One leaf (or same-hash group) left below: pull it up.
            let last = if child.slots.len() == 1 && !matches!(child.slots[0], Slot::Node(_)) {
                child.remove_slot(child.bitmap.trailing_zeros(), 0)
            } else {
                None
            };
            if let Some(last) = last {
                *slot = last;
            }
            (Some(out), now_empty)
        }
    };
    if now_empty {
        let removed = node.remove_slot(idx, pos);
        if let (None, Some(Slot::Leaf(l))) = (&out, removed) {
            return Some(l);
        }
    }
    out
}

fn diff_nodes<'a, V: Clone>(
    old: &'a Node<V>,
    new: &'a Node<V>,
    eq: &impl Fn(&V, &V) -> bool,
    f: &mut impl FnMut(Option<&'a Leaf<V>>, Option<&'a Leaf<V>>) -> bool,
) -> bool {
    if Arc::ptr_eq(&old.slots, &new.slots) {
        return true;
    }
    let mut bits = old.bitmap | new.bitmap;
    while bits != 0 {
        let idx = bits.trailing_zeros();
        bits &= bits - 1;
        let slot_of = |n: &'a Node<V>| {
            let (present, pos) = n.locate(idx);
            present.then(|| &n.slots[pos])
        };
        if !diff_slots(slot_of(old), slot_of(new), eq, f) {
            return false;
        }
    }
    true
}

fn diff_slots<'a, V: Clone>(
    old: Option<&'a Slot<V>>,
    new: Option<&'a Slot<V>>,
    eq: &impl Fn(&V, &V) -> bool,
    f: &mut impl FnMut(Option<&'a Leaf<V>>, Option<&'a Leaf<V>>) -> bool,
) -> bool {
    match (old, new) {
        (Some(Slot::Node(a)), Some(Slot::Node(b))) => diff_nodes(a, b, eq, f),
        (Some(Slot::Same(a)), Some(Slot::Same(b))) if Arc::ptr_eq(a, b) || a.ptr_eq(b) => true,
        (Some(Slot::Leaf(a)), Some(Slot::Leaf(b))) if a.same_key(b) => {
            eq(&a.value, &b.value) || f(Some(a), Some(b))
        }
        _ => {
            // Different shapes: merge the two ordered key sequences.
            let mut a = Iter::of_slot(old).peekable();
            let mut b = Iter::of_slot(new).peekable();
            loop {
                let go_on = match (a.peek(), b.peek()) {
                    (None, None) => return true,
                    (Some(x), None) => {
                        let x = *x;
                        a.next();
                        f(Some(x), None)
                    }
                    (None, Some(y)) => {
                        let y = *y;
                        b.next();
                        f(None, Some(y))
                    }
                    (Some(x), Some(y)) => {
                        let (x, y) = (*x, *y);
                        match x.order(y) {
                            std::cmp::Ordering::Less => {
                                a.next();
                                f(Some(x), None)
                            }
                            std::cmp::Ordering::Greater => {
                                b.next();
                                f(None, Some(y))
                            }
                            std::cmp::Ordering::Equal => {
                                a.next();
                                b.next();
                                eq(&x.value, &y.value) || f(Some(x), Some(y))
                            }
                        }
                    }
                };
                if !go_on {
                    return false;
                }
            }
        }
    }
}

/// Keys in order (see [`Trie::iter`] and [`Trie::iter_from`]).
pub struct Iter<'a, V> {
    stack: Vec<std::slice::Iter<'a, Slot<V>>>,
    same: Option<GroupIter<'a, V>>,
}

impl<'a, V> Iter<'a, V> {
    fn of_slot(slot: Option<&'a Slot<V>>) -> Iter<'a, V> {
        Iter {
            stack: slot
                .map(|s| vec![std::slice::from_ref(s).iter()])
                .unwrap_or_default(),
            same: None,
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a Leaf<V>;

    fn next(&mut self) -> Option<&'a Leaf<V>> {
        loop {
            if let Some(it) = &mut self.same {
                match it.next() {
                    Some(l) => return Some(l),
                    None => self.same = None,
                }
            }
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(Slot::Leaf(l)) => return Some(l),
                Some(Slot::Node(n)) => self.stack.push(n.slots.iter()),
                Some(Slot::Same(g)) => self.same = Some(g.iter()),
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod size_probe {
    /// A slot holds a leaf inline (hash, key handle, entry: 48 bytes) plus the variant
    /// tag; a node pointer with its bitmap and a same-hash group fit in the same space.
    #[test]
    fn slot_is_one_leaf_wide() {
        assert_eq!(std::mem::size_of::<super::Leaf<crate::db::Entry>>(), 48);
        assert!(std::mem::size_of::<super::Slot<crate::db::Entry>>() <= 56);
    }
}
