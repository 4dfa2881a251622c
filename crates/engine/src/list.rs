//! A list's elements: a deque of chunks, each a small deque of [`Key`] handles.
//!
//! Held as one `VecDeque<Bytes>`, every element was a 32-byte handle to its own heap
//! allocation, and a growing list doubled by copying its whole ring (4M elements:
//! 128 MB moved in one command, a latency spike). Here an element of up to
//! [`crate::key::INLINE`] bytes is held inside its 24-byte handle (no allocation),
//! handles sit in chunks of at most [`CHUNK`] (as Redis's quicklist holds elements in
//! listpack nodes of about 8 KB), and growth adds a chunk: the deque of chunks is
//! what doubles, 32 bytes per chunk. Pushes and pops at either end are O(1); an
//! index is found in O(n / CHUNK) by walking the chunk lengths from the nearer end.

use crate::key::Key;
use bytes::Bytes;
use std::collections::{vec_deque, VecDeque};

/// The most elements one chunk holds (3 KB of handles).
pub const CHUNK: usize = 128;

type Chunk = VecDeque<Key>;

#[derive(Clone, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_front(&mut self, k: Key) {
        match self.chunks.front_mut() {
            Some(c) if c.len() < CHUNK => c.push_front(k),
            _ => {
                let mut c = Chunk::with_capacity(if self.len == 0 { 1 } else { CHUNK });
                c.push_back(k);
                self.chunks.push_front(c);
            }
        }
        self.len += 1;
    }

    pub fn push_back(&mut self, k: Key) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < CHUNK => c.push_back(k),
            _ => {
                let mut c = Chunk::with_capacity(if self.len == 0 { 1 } else { CHUNK });
                c.push_back(k);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Key> {
        let c = self.chunks.front_mut()?;
        let k = c.pop_front();
        if c.is_empty() {
            self.chunks.pop_front();
        }
        if k.is_some() {
            self.len -= 1;
        }
        k
    }

    pub fn pop_back(&mut self) -> Option<Key> {
        let c = self.chunks.back_mut()?;
        let k = c.pop_back();
        if c.is_empty() {
            self.chunks.pop_back();
        }
        if k.is_some() {
            self.len -= 1;
        }
        k
    }

    pub fn front(&self) -> Option<&Key> {
        self.chunks.front().and_then(|c| c.front())
    }

    pub fn back(&self) -> Option<&Key> {
        self.chunks.back().and_then(|c| c.back())
    }

    /// The chunk holding element `i` and the offset in it, walking from the nearer
    /// end.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i < self.len / 2 {
            let mut off = i;
            for (ci, c) in self.chunks.iter().enumerate() {
                if off < c.len() {
                    return Some((ci, off));
                }
                off -= c.len();
            }
        } else {
            // Elements after `i`.
            let mut after = self.len - 1 - i;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if after < c.len() {
                    return Some((ci, c.len() - 1 - after));
                }
                after -= c.len();
            }
        }
        None
    }

    pub fn get(&self, i: usize) -> Option<&Key> {
        let (ci, off) = self.locate(i)?;
        self.chunks.get(ci)?.get(off)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Key> {
        let (ci, off) = self.locate(i)?;
        self.chunks.get_mut(ci)?.get_mut(off)
    }

    /// Inserts `k` before element `i` (at the end when `i == len`); a full chunk is
    /// split in two first.
    pub fn insert(&mut self, i: usize, k: Key) {
        if i == 0 {
            return self.push_front(k);
        }
        if i >= self.len {
            return self.push_back(k);
        }
        let Some((mut ci, mut off)) = self.locate(i) else {
            return self.push_back(k);
        };
        if self.chunks[ci].len() >= CHUNK {
            let tail = self.chunks[ci].split_off(CHUNK / 2);
            self.chunks.insert(ci + 1, tail);
            if off >= CHUNK / 2 {
                ci += 1;
                off -= CHUNK / 2;
            }
        }
        self.chunks[ci].insert(off, k);
        self.len += 1;
    }

    /// Keeps the first `n` elements.
    pub fn truncate(&mut self, n: usize) {
        while self.len > n {
            let Some(c) = self.chunks.back_mut() else {
                break;
            };
            let drop = self.len - n;
            if c.len() <= drop {
                self.len -= c.len();
                self.chunks.pop_back();
            } else {
                c.truncate(c.len() - drop);
                self.len = n;
            }
        }
    }

    /// Removes the first `n` elements.
    pub fn drop_front(&mut self, n: usize) {
        let mut left = n.min(self.len);
        while left > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            if c.len() <= left {
                left -= c.len();
                self.len -= c.len();
                self.chunks.pop_front();
            } else {
                c.drain(..left);
                self.len -= left;
                left = 0;
            }
        }
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Keeps the elements for which `keep` is true, visiting them in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        for c in self.chunks.iter_mut() {
            c.retain(&mut keep);
        }
        self.chunks.retain(|c| !c.is_empty());
        self.len = self.chunks.iter().map(|c| c.len()).sum();
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.chunks.iter().flatten(),
            remaining: self.len,
        }
    }

    /// Elements `start..=end` (both inside the list; empty otherwise).
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let located = (self.locate(start), self.locate(end));
        let (Some((cs, os)), Some((ce, oe))) = located else {
            return self.empty_iter();
        };
        if end < start {
            return self.empty_iter();
        }
        // The chunks holding the range, less the elements before `start` in the
        // first and after `end` in the last (O(1) skips of chunk iterators).
        let mut inner = self.chunks.range(cs..=ce).flatten();
        if os > 0 {
            inner.nth(os - 1);
        }
        let after = self.chunks[ce].len() - 1 - oe;
        if after > 0 {
            inner.nth_back(after - 1);
        }
        Iter {
            inner,
            remaining: end - start + 1,
        }
    }

    fn empty_iter(&self) -> Iter<'_> {
        Iter {
            inner: self.chunks.range(0..0).flatten(),
            remaining: 0,
        }
    }

    /// Calls `f` on elements `start..=end` in order (nothing unless both are inside
    /// the list), a chunk slice at a time (a tighter loop than [`List::range`]'s
    /// iterator).
    pub fn for_each_in(&self, start: usize, end: usize, mut f: impl FnMut(&Key)) {
        if end < start || end >= self.len {
            return;
        }
        let Some((mut ci, mut off)) = self.locate(start) else {
            return;
        };
        let mut left = end - start + 1;
        while left > 0 {
            let Some(c) = self.chunks.get(ci) else {
                return;
            };
            let (a, b) = c.as_slices();
            for part in [a, b] {
                if off >= part.len() {
                    off -= part.len();
                    continue;
                }
                let take = (part.len() - off).min(left);
                part[off..off + take].iter().for_each(&mut f);
                left -= take;
                off = 0;
                if left == 0 {
                    return;
                }
            }
            ci += 1;
        }
    }

    /// Elements `start..=end` as bulk replies, all slices of one buffer: one
    /// allocation for the elements' bytes (LRANGE), not one per element.
    pub fn range_replies(&self, start: usize, end: usize) -> Vec<crate::reply::Reply> {
        let mut total = 0;
        self.for_each_in(start, end, |k| total += k.len());
        let mut buf = bytes::BytesMut::with_capacity(total);
        self.for_each_in(start, end, |k| buf.extend_from_slice(k.as_bytes()));
        let buf = buf.freeze();
        let mut out = Vec::with_capacity(end.saturating_sub(start) + 1);
        let mut at = 0;
        self.for_each_in(start, end, |k| {
            out.push(crate::reply::Reply::Bulk(buf.slice(at..at + k.len())));
            at += k.len();
        });
        out
    }

    /// Bytes allocated for the elements beyond the list's own handle.
    pub fn heap_size(&self) -> usize {
        let handles: usize = self
            .chunks
            .iter()
            .map(|c| c.capacity() * std::mem::size_of::<Key>())
            .sum();
        let spilled: usize = self.iter().map(|k| k.heap_size()).sum();
        handles + spilled + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// The elements as `Bytes`.
    pub fn to_bytes_vec(&self) -> Vec<Bytes> {
        to_bytes_all(self.iter()).collect()
    }
}

/// Copies of `keys` as `Bytes`, all slices of one buffer: one allocation for a
/// reply of many elements (LRANGE), not one per element.
pub fn to_bytes_all<'a>(
    keys: impl ExactSizeIterator<Item = &'a Key> + Clone + 'a,
) -> impl ExactSizeIterator<Item = Bytes> + 'a {
    let total: usize = keys.clone().map(|k| k.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for k in keys.clone() {
        buf.extend_from_slice(k.as_bytes());
    }
    let buf = buf.freeze();
    let mut start = 0;
    keys.map(move |k| {
        let b = buf.slice(start..start + k.len());
        start += k.len();
        b
    })
}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<Key> for List {
    fn from_iter<I: IntoIterator<Item = Key>>(it: I) -> List {
        let mut l = List::new();
        l.extend(it);
        l
    }
}

impl FromIterator<Bytes> for List {
    fn from_iter<I: IntoIterator<Item = Bytes>>(it: I) -> List {
        it.into_iter().map(|b| Key::new(&b)).collect()
    }
}

impl Extend<Key> for List {
    fn extend<I: IntoIterator<Item = Key>>(&mut self, it: I) {
        for k in it {
            self.push_back(k);
        }
    }
}

impl From<VecDeque<Bytes>> for List {
    fn from(v: VecDeque<Bytes>) -> List {
        v.into_iter().collect()
    }
}

impl From<Vec<Bytes>> for List {
    fn from(v: Vec<Bytes>) -> List {
        v.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a List {
    type Item = &'a Key;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// In-order iterator over a list's elements (or a range of them): the chunks'
/// elements flattened, with a count of those left for `ExactSizeIterator`.
#[derive(Clone)]
pub struct Iter<'a> {
    inner: std::iter::Flatten<vec_deque::Iter<'a, Chunk>>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Key;

    #[inline]
    fn next(&mut self) -> Option<&'a Key> {
        let k = self.inner.next()?;
        self.remaining -= 1;
        Some(k)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    #[inline]
    fn next_back(&mut self) -> Option<&'a Key> {
        let k = self.inner.next_back()?;
        self.remaining -= 1;
        Some(k)
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model to check against: the list as a plain deque of byte strings.
    fn check(l: &List, model: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), model.len());
        let got: Vec<&[u8]> = l.iter().map(|k| k.as_bytes()).collect();
        let want: Vec<&[u8]> = model.iter().map(|v| v.as_slice()).collect();
        assert_eq!(got, want);
        let rev: Vec<&[u8]> = l.iter().rev().map(|k| k.as_bytes()).collect();
        let want_rev: Vec<&[u8]> = model.iter().rev().map(|v| v.as_slice()).collect();
        assert_eq!(rev, want_rev);
        for (i, v) in model.iter().enumerate() {
            assert_eq!(l.get(i).map(|k| k.as_bytes()), Some(v.as_slice()));
        }
        assert!(l.get(model.len()).is_none());
    }

    fn elem(i: usize) -> Vec<u8> {
        // Every 7th element is longer than the inline limit (held on the heap).
        if i.is_multiple_of(7) {
            format!("a-long-element-held-on-the-heap-{i}").into_bytes()
        } else {
            format!("e{i}").into_bytes()
        }
    }

    #[test]
    fn pushes_pops_and_indexes_across_chunks() {
        let mut l = List::new();
        let mut m = VecDeque::new();
        for i in 0..(CHUNK * 5 + 3) {
            let e = elem(i);
            if i % 3 == 0 {
                l.push_front(Key::new(&e));
                m.push_front(e);
            } else {
                l.push_back(Key::new(&e));
                m.push_back(e);
            }
        }
        check(&l, &m);
        for i in 0..(CHUNK * 2 + 1) {
            if i % 2 == 0 {
                assert_eq!(l.pop_front().map(|k| k.as_bytes().to_vec()), m.pop_front());
            } else {
                assert_eq!(l.pop_back().map(|k| k.as_bytes().to_vec()), m.pop_back());
            }
        }
        check(&l, &m);
        while let Some(v) = m.pop_back() {
            assert_eq!(l.pop_back().map(|k| k.as_bytes().to_vec()), Some(v));
        }
        assert!(l.is_empty() && l.pop_front().is_none() && l.pop_back().is_none());
        assert_eq!(l.chunks.len(), 0);
    }

    #[test]
    fn ranges_match_the_model() {
        let m: VecDeque<Vec<u8>> = (0..CHUNK * 3 + 17).map(elem).collect();
        let l: List = m.iter().map(|v| Key::new(v)).collect();
        for (s, e) in [
            (0, 0),
            (0, 99),
            (5, CHUNK - 1),
            (CHUNK - 1, CHUNK),
            (3, CHUNK * 3 + 16),
            (CHUNK + 2, CHUNK * 2 + 5),
            (m.len() - 1, m.len() - 1),
        ] {
            let got: Vec<&[u8]> = l.range(s, e).map(|k| k.as_bytes()).collect();
            let want: Vec<&[u8]> = m.range(s..=e).map(|v| v.as_slice()).collect();
            assert_eq!(got, want, "range {s}..={e}");
            assert_eq!(l.range(s, e).len(), e - s + 1);
            let got_rev: Vec<&[u8]> = l.range(s, e).rev().map(|k| k.as_bytes()).collect();
            let want_rev: Vec<&[u8]> = m.range(s..=e).rev().map(|v| v.as_slice()).collect();
            assert_eq!(got_rev, want_rev);
        }
        for (s, e) in [
            (0, 0),
            (2, CHUNK + 7),
            (CHUNK * 2, m.len() - 1),
            (1, m.len() - 1),
        ] {
            let got: Vec<Vec<u8>> = l
                .range_replies(s, e)
                .into_iter()
                .map(|r| match r {
                    crate::reply::Reply::Bulk(b) => b.to_vec(),
                    _ => panic!("not a bulk"),
                })
                .collect();
            let want: Vec<Vec<u8>> = m.range(s..=e).cloned().collect();
            assert_eq!(got, want, "replies {s}..={e}");
        }
        assert!(l.range_replies(5, 4).is_empty());
        assert!(l.range_replies(0, m.len()).is_empty());
        assert_eq!(l.range(0, m.len()).count(), 0);
        assert_eq!(l.range(5, 4).count(), 0);
    }

    #[test]
    fn insert_retain_truncate_drop_front() {
        let mut m: VecDeque<Vec<u8>> = (0..CHUNK * 2).map(elem).collect();
        let mut l: List = m.iter().map(|v| Key::new(v)).collect();
        // Inserts into full chunks split them.
        for (n, at) in [1usize, CHUNK / 2, CHUNK, CHUNK + 3, 7, 2 * CHUNK]
            .into_iter()
            .enumerate()
        {
            let e = format!("ins{n}").into_bytes();
            l.insert(at, Key::new(&e));
            m.insert(at, e);
            check(&l, &m);
        }
        l.insert(0, Key::new(b"head"));
        m.push_front(b"head".to_vec());
        l.insert(l.len(), Key::new(b"tail"));
        m.push_back(b"tail".to_vec());
        check(&l, &m);
        if let Some(k) = l.get_mut(CHUNK + 1) {
            *k = Key::new(b"set");
        }
        m[CHUNK + 1] = b"set".to_vec();
        check(&l, &m);
        l.retain(|k| k.as_bytes().len() % 2 == 0);
        m.retain(|v| v.len() % 2 == 0);
        check(&l, &m);
        l.truncate(l.len() - 5);
        m.truncate(m.len() - 5);
        check(&l, &m);
        l.drop_front(CHUNK - 1);
        m.drain(..CHUNK - 1);
        check(&l, &m);
        l.drop_front(usize::MAX);
        l.truncate(0);
        assert!(l.is_empty());
        assert_eq!(l.iter().count(), 0);
    }

    #[test]
    fn equality_and_conversions() {
        let a: List = vec![Bytes::from("x"), Bytes::from("y")].into();
        let mut b = List::new();
        b.push_back(Key::new(b"y"));
        b.push_front(Key::new(b"x"));
        assert_eq!(a, b);
        b.push_back(Key::new(b"z"));
        assert_ne!(a, b);
        assert_eq!(a.to_bytes_vec(), vec![Bytes::from("x"), Bytes::from("y")]);
    }
}
