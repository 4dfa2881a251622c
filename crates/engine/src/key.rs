//! A stored key: short keys inline, longer ones in a shared buffer.
//!
//! Every key lives in a trie leaf. Held as a `Bytes`, a key was a 32-byte handle to
//! its own allocation: a lookup compared bytes behind a pointer (a cache miss per
//! lookup on a large keyspace) and every new key cost an allocation. Keys of up to
//! [`INLINE`] bytes (most keys in practice: `user:1000`, `session:ab12cd34`) are
//! held in the 24 bytes of the handle itself; longer ones in an `Arc<[u8]>` (one
//! allocation, shared by every version of the trie that holds the key, and by the
//! volatile-key index).

use bytes::Bytes;
use std::sync::Arc;

/// The longest key held inline.
pub const INLINE: usize = 22;

#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Arc<[u8]>),
}

impl Key {
    pub fn new(b: &[u8]) -> Key {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            Key(Repr::Inline {
                len: b.len() as u8,
                data,
            })
        } else {
            Key(Repr::Heap(Arc::from(b)))
        }
    }

    /// The empty key (sorts first among keys of one hash).
    pub const fn empty() -> Key {
        Key(Repr::Inline {
            len: 0,
            data: [0; INLINE],
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..*len as usize],
            Repr::Heap(a) => a,
        }
    }

    /// The key as `Bytes` (for replies): short keys are copied, long ones share the
    /// stored buffer.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { len, data } => Bytes::copy_from_slice(&data[..*len as usize]),
            Repr::Heap(a) => Bytes::from_owner(SharedKey(a.clone())),
        }
    }

    /// Equal bytes; for two handles to one buffer, without reading it.
    pub fn same(&self, other: &Key) -> bool {
        match (&self.0, &other.0) {
            (Repr::Heap(a), Repr::Heap(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }

    /// Bytes allocated for the key beyond its handle.
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(a) => a.len() + 16,
        }
    }
}

/// An `Arc<[u8]>` as the owner of a `Bytes`.
struct SharedKey(Arc<[u8]>);

impl AsRef<[u8]> for SharedKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        Key::new(b)
    }
}

impl From<&Bytes> for Key {
    fn from(b: &Bytes) -> Key {
        Key::new(b)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::new(s.as_bytes())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.same(other)
    }
}

impl Eq for Key {}

impl PartialEq<[u8]> for Key {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl PartialEq<Bytes> for Key {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_bytes() == &other[..]
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_bytes()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }

    #[test]
    fn inline_and_heap_keys_round_trip_and_compare_by_bytes() {
        let long = vec![b'x'; INLINE + 1];
        let cases: [&[u8]; 5] = [b"", b"a", b"user:1000", &[b'y'; INLINE], &long];
        for a in cases {
            let k = Key::new(a);
            assert_eq!(k.as_bytes(), a);
            assert_eq!(&k.to_bytes()[..], a);
            assert_eq!(k.heap_size() > 0, a.len() > INLINE);
            for b in cases {
                let kb = Key::new(b);
                assert_eq!(k == kb, a == b);
                assert_eq!(k.cmp(&kb), a.cmp(b));
            }
        }
        let k = Key::new(&long);
        assert!(k.same(&k.clone()));
    }
}
