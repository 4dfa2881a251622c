//! What changed in a database since the last snapshot point: the record incremental
//! snapshots are written from, instead of a kept copy of the previous version.
//!
//! A database that tracks changes keeps the key hashes it wrote and removed since
//! the last point ([`crate::Store::snapshot_point`]). A hash is 8 bytes in a set, not
//! the key and its old value: overwriting every key after a snapshot costs no copy
//! of the dataset. The snapshot writer reconciles each recorded hash: the keys the
//! point-in-time clone holds under it are written, and (for a removed hash) the keys
//! the stored snapshot holds under it that the clone no longer has are deleted.
//! Keys sharing a full hash are reconciled together, so a collision costs nothing
//! but a second entry.
//!
//! When the record grows past [`limit`] the database stops recording (the next
//! snapshot is a full one anyway, as an incremental one would be no cheaper), so the
//! record's memory stays a fraction of the keyspace's.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Key hashes are already uniform (keyed SipHash): the set uses them as they are.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only u64s are hashed here; anything else is folded in, in case.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of key hashes.
pub type HashSetU64 = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The key hashes one database wrote and removed since the last snapshot point.
#[derive(Debug, Clone, Default)]
pub struct ChangedKeys {
    /// Hashes of keys inserted, overwritten, modified or whose deadline changed.
    pub written: HashSetU64,
    /// Hashes of keys removed (a key removed and written again is in both).
    pub removed: HashSetU64,
}

impl ChangedKeys {
    /// Number of hashes recorded (a hash in both sets counts twice).
    pub fn len(&self) -> usize {
        self.written.len() + self.removed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.removed.is_empty()
    }

    /// Every recorded hash once, ascending (the snapshot's key order), with whether
    /// a key under it was removed.
    pub fn sorted(&self) -> Vec<(u64, bool)> {
        let mut out: Vec<(u64, bool)> = self
            .written
            .iter()
            .filter(|h| !self.removed.contains(h))
            .map(|&h| (h, false))
            .chain(self.removed.iter().map(|&h| (h, true)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Bytes the record holds (INFO and MEMORY STATS count it).
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: 8 bytes per bucket plus one control byte.
        (self.written.capacity() + self.removed.capacity()) * 9
    }
}

/// How many recorded hashes a database of `len` keys keeps before it gives up
/// (a quarter of the keys, and at least 1024): past it the next snapshot is a full
/// one (the snapshot writer takes one past a fifth of the keys).
#[inline]
pub fn limit(len: usize) -> usize {
    len / 4 + 1024
}

/// The changes between two snapshot points of a store, handed to the snapshot
/// writer with the clone taken at the second point.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The point the changes start from (0: none; then nothing is known).
    pub since: u64,
    /// The point the dataset was taken at.
    pub at: u64,
    /// Per database: the changes, or None when they are not known (the database was
    /// flushed, swapped, replaced, or changed too much): it must be written whole.
    pub dbs: Vec<Option<ChangedKeys>>,
}

impl Changes {
    /// Whether every database's changes are known.
    pub fn complete(&self) -> bool {
        self.since != 0 && self.dbs.iter().all(Option::is_some)
    }

    /// Number of hashes recorded over all databases.
    pub fn len(&self) -> usize {
        self.dbs.iter().flatten().map(ChangedKeys::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes copied on write since the last snapshot point: trie nodes and values a
/// write had to copy, or replaced or removed, because a snapshot's copy still shares
/// them. The old versions stay alive for that copy alone, so while a snapshot is being
/// written this is (an estimate of) the memory it holds beyond the live dataset.
static COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts `bytes` kept alive only by a snapshot's copy (see [`copied_since_point`]).
#[inline]
pub(crate) fn note_copy(bytes: usize) {
    COPIED.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Bytes kept alive by copies-on-write since the last snapshot point (all stores of
/// the process; see [`note_copy`]).
pub fn copied_since_point() -> u64 {
    COPIED.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn reset_copied() {
    COPIED.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// A new snapshot point, unique in the process (so changes recorded by one store
/// are never mistaken for another's, e.g. after DEBUG RELOAD replaced the store).
pub fn next_point() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_on_write_under_a_snapshot_are_counted() {
        use crate::value::Value;
        use bytes::Bytes;
        let mut s = crate::Store::default();
        for i in 0..100 {
            s.dbs[0].insert(
                Bytes::from(format!("k{i}")),
                Value::Str(Bytes::from(vec![b'x'; 1000])),
                None,
            );
        }
        // The counter is process-wide (other tests move it too): only a lower bound
        // can be checked.
        let copy = s.snapshot_point(true);
        for i in 0..100 {
            if let Some(Value::Str(v)) = s.dbs[0].get_mut(format!("k{i}").as_bytes()) {
                *v = Bytes::from_static(b"y");
            }
        }
        // Each value was copied (the snapshot keeps the 1,000-byte original).
        assert!(
            copied_since_point() >= 100 * 1000,
            "{}",
            copied_since_point()
        );
        drop(copy);
    }

    #[test]
    fn sorted_lists_each_hash_once_with_its_removal() {
        let mut c = ChangedKeys::default();
        c.written.insert(30);
        c.written.insert(10);
        c.removed.insert(20);
        c.written.insert(20);
        c.removed.insert(5);
        assert_eq!(c.len(), 5);
        assert_eq!(
            c.sorted(),
            vec![(5, true), (10, false), (20, true), (30, false)]
        );
    }
}
