//! One database: a persistent ordered map from key to entry.
//!
//! Keys are ordered by `(hash(key), key)`. That order gives SCAN a cursor that
//! survives any growth or shrinking of the map (the cursor is the next hash to visit,
//! so a key present for the whole scan is returned at least once), and lets active
//! expiry and random picks start at a random point. The hash is seeded per dataset
//! ([`crate::hash`]), so colliding keys cannot be computed in advance, and keys that do
//! share a hash are searched in O(log n) (see `trie::group`).
//!
//! The map is a persistent hash trie ([`crate::trie`]) with structural sharing: cloning
//! a database is O(1), which is how a snapshot captures one point in time without
//! stopping writes. Values sit behind an `Arc` and are copied only when written while
//! shared.

use crate::changes::{self, ChangedKeys};
use crate::hash::KeyHasher;
use crate::key::Key;
use crate::trie::Trie;
use crate::value::{Kind, Value};
use bytes::Bytes;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A key of the volatile-key index, in map order: by hash, then by bytes (the field
/// order the derived comparisons follow).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScanKey {
    pub hash: u64,
    pub key: Key,
}

impl ScanKey {
    pub fn new(hasher: &KeyHasher, key: &[u8]) -> ScanKey {
        ScanKey {
            hash: hasher.hash(key),
            key: Key::new(key),
        }
    }
}

/// A borrowed key for lookups: compares like a [`ScanKey`] without building one (no
/// clone, no allocation on the read path).
struct KeyRef<'a> {
    hash: u64,
    key: &'a [u8],
}

impl equivalent::Equivalent<ScanKey> for KeyRef<'_> {
    fn equivalent(&self, k: &ScanKey) -> bool {
        self.hash == k.hash && self.key == &k.key[..]
    }
}

impl equivalent::Comparable<ScanKey> for KeyRef<'_> {
    fn compare(&self, k: &ScanKey) -> std::cmp::Ordering {
        (self.hash, self.key).cmp(&(k.hash, &k.key[..]))
    }
}

/// A stored value plus its access clock (for LRU/LFU eviction).
#[derive(Debug)]
pub struct Obj {
    pub value: Value,
    /// Last access time in milliseconds (LRU) or a counter (LFU), updated on reads
    /// through a shared reference.
    pub access: AtomicU32,
    /// Set once the value took Redis's larger encoding (a raw string, a hashtable set
    /// or hash, a skiplist sorted set) through a command that converts it: Redis
    /// never converts back, so OBJECT ENCODING keeps answering it after the contents
    /// shrink. Cleared when the value is replaced; not persisted (a reload or
    /// RESTORE re-encodes from the contents, as Redis's loading does).
    pub big_encoding: bool,
}

impl Clone for Obj {
    fn clone(&self) -> Self {
        Obj {
            value: self.value.clone(),
            access: AtomicU32::new(self.access.load(Ordering::Relaxed)),
            big_encoding: self.big_encoding,
        }
    }
}

/// A map entry: the value and its absolute expiry deadline (ms since the epoch).
/// The deadline is stored in 8 bytes ([`NO_DEADLINE`] when there is none; Redis
/// refuses deadlines beyond i64::MAX, so the value is never a real one): every key
/// has an entry in a trie leaf, and `Option<u64>` would take 16.
#[derive(Debug, Clone)]
pub struct Entry {
    pub obj: Arc<Obj>,
    expire: u64,
}

/// [`Entry`]'s stored deadline when the key does not expire.
const NO_DEADLINE: u64 = u64::MAX;

fn pack_deadline(at: Option<u64>) -> u64 {
    // A deadline of u64::MAX ms could not be told from none; it is the same in effect.
    at.unwrap_or(NO_DEADLINE)
}

/// Entries are "the same" when they share the value allocation and the deadline: a
/// snapshot diff then skips everything a write did not touch.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.obj, &other.obj) && self.expire == other.expire
    }
}

/// One difference between two versions of a database.
#[derive(Debug)]
pub enum DbChange<'a> {
    /// The key is new (`old` is None) or changed: its entry before and now.
    Put {
        /// The key's hash in this database.
        hash: u64,
        key: &'a Key,
        old: Option<&'a Entry>,
        new: &'a Entry,
    },
    /// The key is gone; its entry before.
    Delete {
        hash: u64,
        key: &'a Key,
        old: &'a Entry,
    },
}

impl Entry {
    pub fn new(value: Value, expire_at: Option<u64>) -> Entry {
        Entry {
            obj: Arc::new(Obj {
                value,
                access: AtomicU32::new(0),
                big_encoding: false,
            }),
            expire: pack_deadline(expire_at),
        }
    }
    pub fn value(&self) -> &Value {
        &self.obj.value
    }
    /// The absolute deadline in ms since the epoch, if the key expires.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire != NO_DEADLINE).then_some(self.expire)
    }
    pub fn is_expired(&self, now: u64) -> bool {
        self.expire != NO_DEADLINE && self.expire < now
    }
}

/// One of the 16 databases.
#[derive(Debug, Clone, Default)]
pub struct Db {
    map: Trie<Entry>,
    /// Keys that carry an expiry, for active expiry sampling and `expires=` in INFO.
    volatile: imbl::OrdSet<ScanKey>,
    /// The dataset's key hash (the same in every database of a store).
    hasher: KeyHasher,
    memo: HashMemo,
    /// The key hashes changed since the last snapshot point, when this database
    /// records them (see [`crate::changes`]). Not shared by clones.
    changed: Tracker,
}

/// The change record of a database (None: not recording, or given up). A clone
/// (a snapshot's copy) starts without one: copying it would cost O(changes) under
/// the server's lock.
#[derive(Default)]
struct Tracker(Option<ChangedKeys>);

impl Clone for Tracker {
    fn clone(&self) -> Self {
        Tracker(None)
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(c) => write!(f, "Tracker({} changes)", c.len()),
            None => f.write_str("Tracker(off)"),
        }
    }
}

impl Tracker {
    /// Records a write of a key whose hash is `hash` in a database of `len` keys.
    #[inline]
    fn wrote(&mut self, hash: u64, len: usize) {
        if let Some(c) = &mut self.0 {
            c.written.insert(hash);
            if c.len() > changes::limit(len) {
                self.0 = None;
            }
        }
    }

    /// Records the removal of a key whose hash is `hash`.
    #[inline]
    fn removed(&mut self, hash: u64, len: usize) {
        if let Some(c) = &mut self.0 {
            c.removed.insert(hash);
            if c.len() > changes::limit(len) {
                self.0 = None;
            }
        }
    }
}

/// Longest key a [`HashMemo`] keeps.
const MEMO_KEY: usize = 22;

/// A remembered key: its hash, length and bytes (plain data, no allocation).
#[derive(Clone, Copy)]
struct MemoEntry {
    hash: u64,
    len: u8,
    bytes: [u8; MEMO_KEY],
}

impl MemoEntry {
    #[inline]
    fn is(&self, key: &[u8]) -> bool {
        usize::from(self.len) == key.len() && self.bytes[..key.len()] == *key
    }
}

/// The hashes a batch prefetch ([`Db::prefetch`]) just computed, in batch order, so
/// that the batch's commands do not hash their key a second time (the keyed hash is
/// ~130 instructions for a short key). An entry is used only for a key with the same
/// bytes, so it can never give a wrong hash, whatever ran in between; keys longer
/// than a `Key` holds inline are not kept. Not shared by clones.
#[derive(Default)]
struct HashMemo {
    entries: std::cell::RefCell<Vec<MemoEntry>>,
    /// Where the next command's key should be.
    next: std::cell::Cell<usize>,
}

impl Clone for HashMemo {
    fn clone(&self) -> Self {
        HashMemo::default()
    }
}

impl std::fmt::Debug for HashMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashMemo")
    }
}

impl HashMemo {
    /// The remembered hash of `key`, looked for at the expected position, then at
    /// the one taken last (a command looks its key up more than once: type check,
    /// access clock, mutable access; and a batch on one hot key repeats it in every
    /// entry, so the last one keeps serving once the batch's entries are used up),
    /// then one further (a command that hashed no key skips one).
    #[inline]
    fn take(&self, key: &[u8]) -> Option<u64> {
        let entries = self.entries.try_borrow().ok()?;
        let i = self.next.get();
        if let Some(e) = entries.get(i).filter(|e| e.is(key)) {
            self.next.set(i + 1);
            return Some(e.hash);
        }
        if let Some(e) = i
            .checked_sub(1)
            .and_then(|p| entries.get(p))
            .filter(|e| e.is(key))
        {
            return Some(e.hash);
        }
        let e = entries.get(i + 1).filter(|e| e.is(key))?;
        self.next.set(i + 2);
        Some(e.hash)
    }

    fn record<'k>(&self, hashed: impl Iterator<Item = (u64, &'k [u8])>) {
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return;
        };
        entries.clear();
        for (hash, k) in hashed {
            if k.len() <= MEMO_KEY {
                let mut bytes = [0u8; MEMO_KEY];
                bytes[..k.len()].copy_from_slice(k);
                entries.push(MemoEntry {
                    hash,
                    len: k.len() as u8,
                    bytes,
                });
            }
        }
        self.next.set(0);
    }
}

impl Db {
    /// An empty database with a random hash seed.
    pub fn new() -> Db {
        Db::default()
    }

    /// An empty database ordered by `hasher`.
    pub fn with_hasher(hasher: KeyHasher) -> Db {
        Db {
            map: Trie::default(),
            volatile: imbl::OrdSet::new(),
            hasher,
            memo: HashMemo::default(),
            changed: Tracker::default(),
        }
    }

    pub fn hasher(&self) -> KeyHasher {
        self.hasher
    }

    /// The hash that orders `key` in this database.
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        match self.memo.take(key) {
            Some(h) => h,
            None => self.hasher.hash(key),
        }
    }

    /// This database's contents ordered by another hash (every key rehashed).
    pub fn rehashed(&self, hasher: KeyHasher) -> Db {
        let mut d = Db::with_hasher(hasher);
        for (k, e) in self.iter() {
            d.insert_entry(k, e.clone());
        }
        d
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// The entry, expired or not.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(self.key_hash(key), key).map(|l| &l.value)
    }

    /// Brings the trie paths and value objects of `keys` into the cache (see
    /// [`Trie::prefetch_paths`]): a hint before running a batch of commands. The
    /// hashes computed are remembered for the batch's commands (see `HashMemo`).
    pub fn prefetch(&self, keys: &[&[u8]]) {
        let mut hashes = [0u64; 32];
        let n = keys.len().min(hashes.len());
        for (h, k) in hashes.iter_mut().zip(keys) {
            *h = self.hasher.hash(k);
        }
        self.memo
            .record(hashes[..n].iter().copied().zip(keys.iter().copied()));
        self.map.prefetch_paths(&hashes[..n], |l| {
            // The object's reference count and its value.
            let p = Arc::as_ptr(&l.value.obj).cast::<u8>();
            crate::trie::prefetch(p.wrapping_sub(16));
            crate::trie::prefetch(p.wrapping_add(40));
        });
    }

    /// Mutable access to the value; copies it first if a snapshot shares it.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.get_mut_obj(key).map(|o| &mut o.value)
    }

    /// Mutable access to the value's object (value and encoding flag); copies it
    /// first if a snapshot shares it.
    pub fn get_mut_obj(&mut self, key: &[u8]) -> Option<&mut Obj> {
        let hash = self.key_hash(key);
        let len = self.map.len();
        let e = self.map.get_mut(hash, key)?;
        self.changed.wrote(hash, len);
        note_if_shared(&e.obj);
        Some(crate::unique::make_mut(&mut e.obj))
    }

    /// [`Db::get_mut_obj`] after a look at the object, with one hash and one trie
    /// search: `check` sees the stored object first (`Err` stops, e.g. WRONGTYPE);
    /// only when it returns `Ok(true)` is the value counted as written and made
    /// mutable (copied if a snapshot shares it). Absent, or `Ok(false)`: `Ok(None)`.
    pub fn get_mut_checked<E>(
        &mut self,
        key: &[u8],
        check: impl FnOnce(&Obj) -> Result<bool, E>,
    ) -> Result<Option<&mut Obj>, E> {
        let hash = self.key_hash(key);
        let len = self.map.len();
        let Some(e) = self.map.get_mut(hash, key) else {
            return Ok(None);
        };
        if !check(&e.obj)? {
            return Ok(None);
        }
        self.changed.wrote(hash, len);
        note_if_shared(&e.obj);
        Ok(Some(crate::unique::make_mut(&mut e.obj)))
    }

    /// Inserts or replaces a key (its bytes are copied into the map). The value must
    /// own its bytes (not slices of a network buffer); see [`own`].
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: Value, expire_at: Option<u64>) {
        self.insert_entry(key, Entry::new(value, expire_at));
    }

    /// Fills this database, which must be empty (else nothing is done and false is
    /// returned), with `entries`: `(key_hash, key, entry)` in `(hash, key)` order,
    /// keys distinct (one out of order or repeated is dropped). The keyspace is
    /// built in one pass (`Trie::from_sorted`), where inserting a million keys one by
    /// one copies a node's slots for each (loading an RDB file).
    pub fn fill_sorted(&mut self, entries: Vec<(u64, Key, Entry)>) -> bool {
        if !self.map.is_empty() {
            return false;
        }
        let mut leaves = Vec::with_capacity(entries.len());
        for (hash, key, entry) in entries {
            if entry.expire_at().is_some() {
                self.volatile.insert(ScanKey {
                    hash,
                    key: key.clone(),
                });
            }
            leaves.push(crate::trie::Leaf {
                hash,
                key,
                value: entry,
            });
        }
        self.map = Trie::from_sorted(leaves);
        let len = self.map.len();
        if self.changed.0.is_some() {
            for l in self.map.iter() {
                self.changed.wrote(l.hash, len);
            }
        }
        true
    }

    /// Inserts a whole entry (used by restore from a snapshot).
    pub fn insert_entry(&mut self, key: impl AsRef<[u8]>, entry: Entry) {
        let key = Key::new(key.as_ref());
        let hash = self.key_hash(&key);
        self.changed.wrote(hash, self.map.len());
        if entry.expire_at().is_some() {
            self.volatile.insert(ScanKey {
                hash,
                key: key.clone(),
            });
        } else if !self.volatile.is_empty() {
            self.volatile.remove(&KeyRef { hash, key: &key });
        }
        if let Some(old) = self.map.insert(hash, key, entry) {
            note_if_shared(&old.obj);
        }
    }

    /// Sets `key` to `value` (and its deadline). An overwrite keeps the stored key
    /// bytes and, when no snapshot shares it, the value's allocation (only the value
    /// inside is replaced); a new key's bytes are copied (see [`own`]). The access
    /// clock carries over, as Redis's dbOverwrite keeps the LFU counter; `stamp` then
    /// updates it.
    pub fn set_value(
        &mut self,
        key: &Bytes,
        value: Value,
        expire_at: Option<u64>,
        stamp: impl FnOnce(&Obj),
    ) {
        let hash = self.key_hash(key);
        if expire_at.is_none() && self.volatile.is_empty() {
            self.changed.wrote(hash, self.map.len());
            if let Some(e) = self.map.get_mut(hash, key) {
                match crate::unique::get_mut(&mut e.obj) {
                    Some(obj) => {
                        obj.value = value;
                        obj.big_encoding = false;
                    }
                    None => {
                        note_if_shared(&e.obj);
                        let access = e.obj.access.load(Ordering::Relaxed);
                        e.obj = Arc::new(Obj {
                            value,
                            access: AtomicU32::new(access),
                            big_encoding: false,
                        });
                    }
                }
                e.expire = NO_DEADLINE;
                stamp(&e.obj);
                return;
            }
            let entry = Entry::new(value, None);
            stamp(&entry.obj);
            self.map.insert(hash, Key::new(key), entry);
            return;
        }
        let access = self
            .map
            .get(hash, key)
            .map_or(0, |l| l.value.obj.access.load(Ordering::Relaxed));
        let entry = Entry::new(value, expire_at);
        entry.obj.access.store(access, Ordering::Relaxed);
        stamp(&entry.obj);
        self.insert_entry(key, entry);
    }

    /// Replaces the value of an existing key, keeping its expiry. Returns false if absent.
    pub fn replace_value(&mut self, key: &[u8], value: Value) -> bool {
        let hash = self.key_hash(key);
        let len = self.map.len();
        match self.map.get_mut(hash, key) {
            Some(e) => {
                self.changed.wrote(hash, len);
                note_if_shared(&e.obj);
                e.obj = Arc::new(Obj {
                    value,
                    access: AtomicU32::new(0),
                    big_encoding: false,
                });
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let kr = KeyRef {
            hash: self.key_hash(key),
            key,
        };
        let e = self.map.remove(kr.hash, key)?.value;
        self.changed.removed(kr.hash, self.map.len());
        note_if_shared(&e.obj);
        if e.expire_at().is_some() {
            self.volatile.remove(&kr);
        }
        Some(e)
    }

    /// Sets or clears the expiry of an existing key. Returns false if absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>) -> bool {
        let kr = KeyRef {
            hash: self.key_hash(key),
            key,
        };
        let len = self.map.len();
        let Some(e) = self.map.get_mut(kr.hash, key) else {
            return false;
        };
        self.changed.wrote(kr.hash, len);
        e.expire = pack_deadline(expire_at);
        if expire_at.is_some() {
            self.volatile.insert(ScanKey {
                hash: kr.hash,
                key: Key::new(key),
            });
        } else {
            self.volatile.remove(&kr);
        }
        true
    }

    /// Empties the database (the hash stays: it belongs to the dataset).
    pub fn clear(&mut self) {
        if !self.map.is_empty() {
            // Every key is gone: the next snapshot writes this database whole.
            self.changed.0 = None;
        }
        self.map = Trie::default();
        self.volatile = imbl::OrdSet::new();
    }

    /// Empties the database and returns its contents (to be freed elsewhere: FLUSHALL
    /// drops them off the server's thread).
    pub fn take_all(&mut self) -> (Trie<Entry>, imbl::OrdSet<ScanKey>) {
        if !self.map.is_empty() {
            self.changed.0 = None;
        }
        (
            std::mem::take(&mut self.map),
            std::mem::take(&mut self.volatile),
        )
    }

    /// Starts a new change record (`track`) or stops recording, and returns the
    /// record since the last call (None: not recording, or given up, or flushed:
    /// the changes are not known). Called at a snapshot point.
    pub fn take_changes(&mut self, track: bool) -> Option<ChangedKeys> {
        std::mem::replace(&mut self.changed.0, track.then(ChangedKeys::default))
    }

    /// Forgets the change record: what the database holds no longer follows from
    /// the last snapshot point by recorded writes (SWAPDB moved it).
    pub fn forget_changes(&mut self) {
        self.changed.0 = None;
    }

    /// An estimate of the bytes the keyspace's own structures take, apart from the
    /// values' contents (MEMORY STATS `overhead.hashtable.main` and `.expires`):
    /// per key its trie slot, its value's allocation header and object, and a share
    /// of the inner nodes; per key with a deadline its index entry.
    pub fn overhead_bytes(&self) -> (usize, usize) {
        let per_key = Trie::<Entry>::slot_size() + 16 + std::mem::size_of::<Obj>() + 4;
        let per_volatile = std::mem::size_of::<ScanKey>() + 16;
        (self.len() * per_key, self.volatile_len() * per_volatile)
    }

    /// Bytes the change record holds.
    pub fn changes_bytes(&self) -> usize {
        self.changed.0.as_ref().map_or(0, ChangedKeys::heap_bytes)
    }

    /// The entries whose key hash is `hash` (usually one; keys sharing a full hash
    /// are all returned), in key order.
    pub fn entries_with_hash(&self, hash: u64) -> impl Iterator<Item = (&Key, &Entry)> {
        self.map
            .iter_from(hash)
            .take_while(move |l| l.hash == hash)
            .map(|l| (&l.key, &l.value))
    }

    /// All entries in map order (a snapshot iterates a clone of the db).
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.map.iter().map(|l| (&l.key, &l.value))
    }

    /// All entries in map order with their hashes (no hash computed).
    pub fn iter_hashed(&self) -> impl Iterator<Item = (u64, &Key, &Entry)> {
        self.map.iter().map(|l| (l.hash, &l.key, &l.value))
    }

    /// Calls `f` with what changed from `old` to `self`, in key order, visiting only
    /// trie nodes that are not shared between the two (so the cost follows the number
    /// of changes, not the size of the database, when `self` was derived from `old` by
    /// writes). Returns false as soon as `f` does.
    pub fn diff_from<'a>(&'a self, old: &'a Db, mut f: impl FnMut(DbChange<'a>) -> bool) -> bool {
        self.map.diff(
            &old.map,
            &|a, b| a == b,
            &mut |before, after| match (before, after) {
                (before, Some(l)) => f(DbChange::Put {
                    hash: l.hash,
                    key: &l.key,
                    old: before.map(|b| &b.value),
                    new: &l.value,
                }),
                (Some(b), None) => f(DbChange::Delete {
                    hash: b.hash,
                    key: &b.key,
                    old: &b.value,
                }),
                (None, None) => true,
            },
        )
    }

    /// One SCAN step: up to `count` keys (more if several share the last hash) starting
    /// at `cursor`; returns the next cursor (0 when done).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<(&Key, &Entry)>) {
        let mut out = Vec::with_capacity(count.min(1024));
        let mut last_hash = None;
        for l in self.map.iter_from(cursor) {
            if out.len() >= count.max(1) && Some(l.hash) != last_hash {
                return (l.hash, out);
            }
            last_hash = Some(l.hash);
            out.push((&l.key, &l.value));
        }
        (0, out)
    }

    /// Keys with an expiry, starting at a point in hash order (for active expiry).
    pub fn volatile_from(&self, hash: u64) -> impl Iterator<Item = &ScanKey> {
        let start = ScanKey {
            hash,
            key: Key::empty(),
        };
        self.volatile
            .range((Bound::Included(start.clone()), Bound::Unbounded))
            .chain(
                self.volatile
                    .range((Bound::Unbounded, Bound::Excluded(start))),
            )
    }

    /// A key at (or after) a random point in hash order, wrapping around.
    /// A key picked about uniformly at random (`Trie::random_leaf`).
    pub fn random_key(&self, pick: impl FnMut(usize) -> usize) -> Option<(&Key, &Entry)> {
        self.map.random_leaf(pick).map(|l| (&l.key, &l.value))
    }

    pub fn key_at_or_after(&self, hash: u64) -> Option<(&Key, &Entry)> {
        self.map
            .iter_from(hash)
            .next()
            .or_else(|| self.map.iter().next())
            .map(|l| (&l.key, &l.value))
    }

    pub fn kind_of(&self, key: &[u8]) -> Option<Kind> {
        self.get(key).map(|e| e.value().kind())
    }
}

/// Counts a value a write copies, replaces or removes while a snapshot's copy shares
/// it (the copy alone keeps the old one alive: see [`changes::copied_since_point`]).
#[inline]
fn note_if_shared(obj: &Arc<Obj>) {
    if Arc::strong_count(obj) != 1 {
        changes::note_copy(obj.value.mem_usage() + std::mem::size_of::<Obj>() + 16);
    }
}

/// Copies bytes out of a (possibly large, shared) network buffer so a stored key or
/// value does not pin that buffer in memory.
pub fn own(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_mut_checked_copies_a_shared_value_only_when_the_check_passes() {
        let mut d = Db::default();
        d.insert("k", Value::Str(Bytes::from_static(b"v")), None);
        let shared = d.get(b"k").map(|e| e.obj.clone());
        let same = |d: &Db| {
            d.get(b"k")
                .zip(shared.as_ref())
                .is_some_and(|(e, s)| Arc::ptr_eq(&e.obj, s))
        };
        assert_eq!(
            d.get_mut_checked(b"k", |_| Err::<bool, ()>(())).err(),
            Some(())
        );
        assert!(same(&d));
        assert!(matches!(
            d.get_mut_checked(b"k", |_| Ok::<bool, ()>(false)),
            Ok(None)
        ));
        assert!(same(&d));
        assert!(matches!(
            d.get_mut_checked(b"nokey", |_| Ok::<bool, ()>(true)),
            Ok(None)
        ));
        assert!(matches!(
            d.get_mut_checked(b"k", |_| Ok::<bool, ()>(true)),
            Ok(Some(_))
        ));
        assert!(
            !same(&d),
            "a value a snapshot shares is copied before a write"
        );
    }

    #[test]
    fn scan_key_order_is_hash_then_bytes_whatever_the_allocation() {
        use std::cmp::Ordering;
        let a = ScanKey::new(&KeyHasher::with_seed(5), &Bytes::from("key:1"));
        let same_bytes_elsewhere = ScanKey {
            hash: a.hash,
            key: Key::new(b"key:1"),
        };
        assert_eq!(a.cmp(&a.clone()), Ordering::Equal);
        assert_eq!(a.cmp(&same_bytes_elsewhere), Ordering::Equal);
        assert_eq!(a, same_bytes_elsewhere);
        let b = ScanKey {
            hash: a.hash,
            key: Key::from("key:2"),
        };
        assert_eq!(a.cmp(&b), Ordering::Less);
        assert_eq!(b.cmp(&a), Ordering::Greater);
        assert_ne!(a, b);
        let c = ScanKey {
            hash: a.hash.wrapping_add(1),
            key: Key::from("key:0"),
        };
        assert_eq!(a.cmp(&c), a.hash.cmp(&c.hash));
    }

    #[test]
    fn scan_survives_growth() {
        let mut db = Db::new();
        for i in 0..1000 {
            db.insert(Bytes::from(format!("k{i}")), Value::Str(Bytes::new()), None);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let (next, keys) = db.scan(cursor, 10);
            for (k, _) in keys {
                seen.insert(k.clone());
            }
            // Grow the map heavily during the scan.
            for j in 0..50 {
                db.insert(
                    Bytes::from(format!("new{round}-{j}")),
                    Value::Str(Bytes::new()),
                    None,
                );
            }
            round += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(
                seen.contains(&Key::from(format!("k{i}").as_str())),
                "k{i} missed"
            );
        }
    }

    #[test]
    fn change_record_follows_writes_and_gives_up_past_its_limit() {
        let mut db = Db::new();
        db.insert(Bytes::from("before"), Value::Str(Bytes::new()), None);
        // Not recording until a point starts it.
        assert!(db.take_changes(true).is_none());
        db.insert(Bytes::from("a"), Value::Str(Bytes::from("1")), None);
        db.set_expire(b"before", Some(1));
        db.remove(b"missing");
        db.remove(b"a");
        // A snapshot's copy does not carry (or copy) the record.
        let copy = db.clone();
        assert_eq!(copy.changes_bytes(), 0);
        assert!(db.changes_bytes() > 0);
        let c = db.take_changes(true).expect("recorded");
        let (ha, hb) = (db.key_hash(b"a"), db.key_hash(b"before"));
        let mut want = vec![(ha, true), (hb, false)];
        want.sort_unstable();
        assert_eq!(c.sorted(), want);
        // Past the limit the record is dropped: the changes are then unknown.
        // (New keys: the limit grows with the database, a quarter as fast.)
        for i in 0..2 * crate::changes::limit(0) {
            db.insert(Bytes::from(format!("k{i}")), Value::Str(Bytes::new()), None);
        }
        assert!(db.take_changes(true).is_none());
        db.insert(Bytes::from("x"), Value::Str(Bytes::new()), None);
        db.clear();
        assert!(db.take_changes(false).is_none());
        db.insert(Bytes::from("y"), Value::Str(Bytes::new()), None);
        assert!(db.take_changes(true).is_none());
    }

    #[test]
    fn diff_reports_only_changes() {
        let mut db = Db::new();
        for i in 0..5000 {
            db.insert(
                Bytes::from(format!("k{i}")),
                Value::Str(Bytes::from("v")),
                None,
            );
        }
        let old = db.clone();
        db.insert(Bytes::from("k1"), Value::Str(Bytes::from("changed")), None);
        db.remove(&Bytes::from("k2"));
        db.insert(Bytes::from("new"), Value::Str(Bytes::from("x")), None);
        db.set_expire(&Bytes::from("k3"), Some(99));
        let mut puts: Vec<String> = Vec::new();
        let mut dels: Vec<String> = Vec::new();
        db.diff_from(&old, |c| {
            match c {
                DbChange::Put { key, .. } => puts.push(String::from_utf8_lossy(key).into_owned()),
                DbChange::Delete { key, .. } => {
                    dels.push(String::from_utf8_lossy(key).into_owned())
                }
            }
            true
        });
        puts.sort();
        assert_eq!(puts, vec!["k1", "k3", "new"]);
        assert_eq!(dels, vec!["k2"]);
    }

    #[test]
    fn overwrite_reuses_the_value_only_when_unshared() {
        let mut db = Db::new();
        let k = Bytes::from("k");
        db.set_value(&k, Value::Str(Bytes::from("1")), None, |_| {});
        let before = Arc::as_ptr(&db.get(&k).unwrap().obj);
        db.set_value(&k, Value::Str(Bytes::from("2")), None, |_| {});
        // Nothing shares it: the same allocation holds the new value.
        assert_eq!(Arc::as_ptr(&db.get(&k).unwrap().obj), before);
        let snap = db.clone();
        db.set_value(&k, Value::Str(Bytes::from("3")), None, |_| {});
        // A snapshot shares it: the snapshot keeps "2", the diff sees the change.
        assert_eq!(snap.get(&k).unwrap().value(), &Value::Str(Bytes::from("2")));
        assert_eq!(db.get(&k).unwrap().value(), &Value::Str(Bytes::from("3")));
        let mut changed = 0;
        db.diff_from(&snap, |_| {
            changed += 1;
            true
        });
        assert_eq!(changed, 1);
        // With a deadline and back: the volatile set follows.
        db.set_value(&k, Value::Str(Bytes::from("4")), Some(u64::MAX - 1), |_| {});
        assert_eq!(db.volatile_len(), 1);
        db.set_value(&k, Value::Str(Bytes::from("5")), None, |_| {});
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.get(&k).unwrap().expire_at(), None);
    }

    #[test]
    fn a_chosen_seed_orders_the_keys_and_rehashing_keeps_everything() {
        let a = KeyHasher::with_seed(11);
        let b = KeyHasher::with_seed(22);
        let mut db = Db::with_hasher(a);
        for i in 0..500 {
            let exp = (i % 3 == 0).then_some(1_000_000 + i as u64);
            db.insert(
                Bytes::from(format!("k{i}")),
                Value::Str(Bytes::from("v")),
                exp,
            );
        }
        // Iteration is in the chosen seed's hash order.
        let hashes: Vec<u64> = db.iter_hashed().map(|(h, _, _)| h).collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]));
        assert!(db.iter_hashed().all(|(h, k, _)| h == a.hash(k)));
        let re = db.rehashed(b);
        assert_eq!(re.hasher(), b);
        assert_eq!(re.len(), 500);
        assert_eq!(re.volatile_len(), db.volatile_len());
        assert!(re.iter_hashed().all(|(h, k, _)| h == b.hash(k)));
        for i in 0..500 {
            let k = format!("k{i}");
            assert_eq!(
                re.get(k.as_bytes()).and_then(|e| e.expire_at()),
                db.get(k.as_bytes()).and_then(|e| e.expire_at())
            );
        }
    }

    #[test]
    fn prefetched_hashes_are_reused_only_for_the_same_bytes() {
        let h = KeyHasher::with_seed(3);
        let mut db = Db::with_hasher(h);
        for k in ["a", "b", "c", "d"] {
            db.insert(Bytes::from(k), Value::Str(Bytes::from(k)), None);
        }
        let long = "x".repeat(40);
        db.prefetch(&[b"a", long.as_bytes(), b"b", b"c", b"d"]);
        // In order, with a miss in between and an unexpected key: always right.
        assert_eq!(db.key_hash(b"a"), h.hash(b"a"));
        assert_eq!(db.memo.next.get(), 1);
        assert_eq!(db.key_hash(b"zz"), h.hash(b"zz"));
        assert_eq!(db.key_hash(long.as_bytes()), h.hash(long.as_bytes()));
        assert_eq!(db.key_hash(b"b"), h.hash(b"b"));
        assert_eq!(db.memo.next.get(), 2);
        // "c" skipped: "d" is still found one position further.
        assert_eq!(db.key_hash(b"d"), h.hash(b"d"));
        assert_eq!(db.memo.next.get(), 4);
        assert_eq!(
            db.get(b"c").map(|e| e.value().clone()),
            Some(Value::Str(Bytes::from("c")))
        );
        // A clone starts without the memo; writes after a prefetch are right.
        assert!(db.clone().memo.entries.borrow().is_empty());
        db.prefetch(&[b"a"]);
        db.remove(b"a");
        assert!(db.get(b"a").is_none());
        assert!(db.iter_hashed().all(|(hh, k, _)| hh == h.hash(k)));
    }

    #[test]
    fn prefetched_hash_serves_repeated_lookups_of_the_same_key() {
        let h = KeyHasher::with_seed(5);
        let mut db = Db::with_hasher(h);
        db.insert(Bytes::from("hot"), Value::Str(Bytes::from("v")), None);
        db.insert(Bytes::from("a"), Value::Str(Bytes::from("v")), None);
        // A command looking its key up three times takes one entry.
        db.prefetch(&[b"a", b"hot"]);
        for _ in 0..3 {
            assert_eq!(db.key_hash(b"a"), h.hash(b"a"));
            assert_eq!(db.memo.next.get(), 1);
        }
        assert_eq!(db.key_hash(b"hot"), h.hash(b"hot"));
        assert_eq!(db.memo.next.get(), 2);
        // A batch on one key: past its entries, the last one still answers.
        db.prefetch(&[b"hot", b"hot"]);
        for _ in 0..10 {
            assert_eq!(db.key_hash(b"hot"), h.hash(b"hot"));
        }
        assert_eq!(db.memo.next.get(), 2);
        // Another key is never given the hot key's hash.
        assert_eq!(db.key_hash(b"a"), h.hash(b"a"));
        assert_eq!(db.key_hash(b"ho"), h.hash(b"ho"));
        assert!(db.get(b"hot").is_some() && db.get(b"a").is_some());
    }

    #[test]
    fn snapshot_clone_is_isolated() {
        let mut db = Db::new();
        db.insert(Bytes::from("a"), Value::Str(Bytes::from("1")), None);
        let snap = db.clone();
        if let Some(Value::Str(s)) = db.get_mut(&Bytes::from("a")) {
            *s = Bytes::from("2");
        }
        db.insert(Bytes::from("b"), Value::Str(Bytes::from("x")), Some(5));
        assert_eq!(snap.len(), 1);
        assert_eq!(
            snap.get(&Bytes::from("a")).map(|e| e.value().clone()),
            Some(Value::Str(Bytes::from("1")))
        );
        assert_eq!(db.volatile_len(), 1);
        assert_eq!(snap.volatile_len(), 0);
    }
}
