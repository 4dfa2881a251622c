//! A counted B-tree: an ordered set with O(log n) rank and select.
//!
//! The sorted set's (score, member) order (`value::ZSet`) lives here. std's
//! `BTreeSet` cannot tell an element's rank or find the n-th element without walking,
//! so ZRANK, ZRANGE by index, ZCOUNT, LIMIT offsets and the like were O(n). Here every
//! internal node knows the size of its subtree (kept next to the child's pointer in
//! its parent, so summing a node's children reads no other node), which gives rank,
//! select and range counts in O(log n) and iteration from any position in
//! O(log n + m), as Redis's skiplist with spans does.
//!
//! Layout: a classic B-tree (elements in internal nodes too, so no key is stored
//! twice). Leaves hold up to [`LEAF_CAP`] elements in one `Vec`; internal nodes up to
//! [`INNER_CAP`] elements and one more child. A tree that fits in one leaf grows its
//! `Vec` by doubling (a 3-member set takes 4 slots, not 64); split nodes get their
//! full capacity at once. Inserting past the last element (or before the first) keeps
//! the left (right) half of a split full, so sorted loads fill nodes completely;
//! elsewhere splits halve, as in any B-tree (about 69 % full under random inserts).
//!
//! No unsafe code; no operation panics whatever the order's contents (indexes are
//! checked, the comparator may be any total order). `Clone` copies every node, O(n),
//! as `BTreeSet`'s does: values are shared through `Arc` and cloned only when written
//! during a snapshot (`Db::get_mut`).

use std::cmp::Ordering;

/// Most elements in a leaf.
const LEAF_CAP: usize = 64;
/// Most elements in an internal node (it has one more child).
const INNER_CAP: usize = 63;
/// The deepest path the insert and remove fast paths record (child indexes fit a
/// byte); deeper trees (never under the fill rules) take the recursive paths.
const MAX_PATH: usize = 24;

#[derive(Clone)]
enum Node<T> {
    Leaf(Vec<T>),
    /// An internal node and the number of elements in its subtree.
    Inner(Box<Inner<T>>, usize),
}

#[derive(Clone)]
struct Inner<T> {
    keys: Vec<T>,
    /// `keys.len() + 1` children, all at the same depth.
    children: Vec<Node<T>>,
}

impl<T> Node<T> {
    /// Elements in the subtree.
    fn size(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(_, n) => *n,
        }
    }
    /// Elements in this node itself.
    fn count(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(b, _) => b.keys.len(),
        }
    }
    fn cap(&self) -> usize {
        match self {
            Node::Leaf(_) => LEAF_CAP,
            Node::Inner(..) => INNER_CAP,
        }
    }
}

/// Inserts into a node's `Vec`, growing its allocation by doubling up to `cap` (never
/// beyond: `Vec`'s own growth could double a cloned, exactly-sized node past it).
fn vec_insert<X>(v: &mut Vec<X>, i: usize, x: X, cap: usize) {
    if v.len() == v.capacity() {
        let want = (v.capacity() * 2).clamp(4, cap.max(v.len() + 1));
        v.reserve_exact(want - v.len());
    }
    v.insert(i.min(v.len()), x);
}

/// A node's `Vec` for a split half: its full capacity at once.
fn full_vec<X>(cap: usize, items: impl Iterator<Item = X>) -> Vec<X> {
    let mut v = Vec::with_capacity(cap);
    v.extend(items);
    v
}

/// The result of inserting into a subtree.
enum Ins<T> {
    Present,
    Done,
    /// The node split: this median goes up, followed by this new right sibling.
    Split(T, Node<T>),
}

/// An ordered set of distinct elements with rank and select.
#[derive(Clone)]
pub struct OsTree<T> {
    root: Node<T>,
}

impl<T> Default for OsTree<T> {
    fn default() -> Self {
        OsTree {
            root: Node::Leaf(Vec::new()),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for OsTree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for OsTree<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T> OsTree<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.root.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at 0-based rank `i` (select), O(log n).
    pub fn get(&self, mut i: usize) -> Option<&T> {
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(v) => return v.get(i),
                Node::Inner(b, _) => {
                    let mut next = None;
                    for (c, child) in b.children.iter().enumerate() {
                        let s = child.size();
                        if i < s {
                            next = Some(child);
                            break;
                        }
                        if i == s {
                            return b.keys.get(c);
                        }
                        i -= s + 1;
                    }
                    node = next?;
                }
            }
        }
    }

    pub fn first(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn last(&self) -> Option<&T> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Where `f` (an element's order relative to a probe, consistent with the tree's
    /// order) finds the probe: `Ok(rank)` of the element it calls equal, or
    /// `Err(rank)` it would be inserted at. O(log n) calls of `f`.
    pub fn rank_by<F: FnMut(&T) -> Ordering>(&self, mut f: F) -> Result<usize, usize> {
        let mut node = &self.root;
        let mut before = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    return match v.binary_search_by(&mut f) {
                        Ok(i) => Ok(before + i),
                        Err(i) => Err(before + i),
                    }
                }
                Node::Inner(b, _) => {
                    let (c, found) = match b.keys.binary_search_by(&mut f) {
                        Ok(c) => (c, true),
                        Err(c) => (c, false),
                    };
                    before += b.children[..c].iter().map(Node::size).sum::<usize>() + c;
                    if found {
                        return Ok(before + b.children[c].size());
                    }
                    node = &b.children[c];
                }
            }
        }
    }

    /// The number of elements for which `pred` holds, when it holds for a prefix of
    /// the order (as `slice::partition_point`). O(log n) calls of `pred`.
    pub fn partition_point<P: FnMut(&T) -> bool>(&self, mut pred: P) -> usize {
        match self.rank_by(|e| {
            if pred(e) {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }) {
            Ok(i) | Err(i) => i,
        }
    }

    /// Elements with ranks in `lo..hi` (clamped to the tree), in order and reversible.
    pub fn range_idx(&self, lo: usize, hi: usize) -> Iter<'_, T> {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        Iter {
            front: Front::seek(&self.root, lo, self.len()),
            back: Back::seek(&self.root, hi),
            remaining: hi - lo,
        }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        self.range_idx(0, self.len())
    }
}

impl<T: Ord> OsTree<T> {
    /// 0-based rank of `x`, if present.
    pub fn rank(&self, x: &T) -> Option<usize> {
        self.rank_by(|e| e.cmp(x)).ok()
    }

    pub fn contains(&self, x: &T) -> bool {
        self.rank(x).is_some()
    }

    /// Inserts `x`; false (and `x` dropped) when an equal element is present.
    pub fn insert(&mut self, x: T) -> bool {
        // Fast path (all but about one insert in 20 under random keys): find the leaf
        // without writing; when it has room, walk down again by the recorded child
        // indexes, counting the element, and insert it. No recursion, no comparison on
        // the second walk.
        let mut path = [0u8; MAX_PATH];
        let mut depth = 0;
        let mut node = &self.root;
        let at = loop {
            match node {
                Node::Leaf(v) => match v.binary_search(&x) {
                    Ok(_) => return false,
                    Err(i) if v.len() < LEAF_CAP => break i,
                    Err(_) => return self.insert_split(x),
                },
                Node::Inner(b, _) => match b.keys.binary_search(&x) {
                    Ok(_) => return false,
                    Err(c) if depth < MAX_PATH => {
                        path[depth] = c as u8;
                        depth += 1;
                        node = &b.children[c];
                    }
                    Err(_) => return self.insert_split(x),
                },
            }
        };
        let mut node = &mut self.root;
        for &c in &path[..depth] {
            node = match node {
                Node::Inner(b, size) => {
                    *size += 1;
                    &mut b.children[c as usize]
                }
                leaf => leaf,
            };
        }
        if let Node::Leaf(v) = node {
            vec_insert(v, at, x, LEAF_CAP);
        }
        true
    }

    /// Inserts `x` where a node may split (recursively, splits going up).
    fn insert_split(&mut self, x: T) -> bool {
        match insert_rec(&mut self.root, x, true, true) {
            Ins::Present => false,
            Ins::Done => true,
            Ins::Split(median, right) => {
                let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
                let size = left.size() + 1 + right.size();
                let mut keys = Vec::with_capacity(INNER_CAP);
                keys.push(median);
                let mut children = Vec::with_capacity(INNER_CAP + 1);
                children.push(left);
                children.push(right);
                self.root = Node::Inner(Box::new(Inner { keys, children }), size);
                true
            }
        }
    }

    /// Removes and returns the element equal to `x`.
    pub fn remove(&mut self, x: &T) -> Option<T> {
        self.remove_by(|e| e.cmp(x))
    }
}

impl<T> OsTree<T> {
    /// Removes the element `f` calls equal (see [`OsTree::rank_by`]).
    pub fn remove_by<F: FnMut(&T) -> Ordering>(&mut self, mut f: F) -> Option<T> {
        // Fast path: the element is in a leaf that stays at least half full (or is the
        // root): find it without writing, then walk down again uncounting it.
        let mut path = [0u8; MAX_PATH];
        let mut depth = 0;
        let mut node = &self.root;
        let at = loop {
            match node {
                Node::Leaf(v) => match v.binary_search_by(&mut f) {
                    Ok(i) if depth == 0 || v.len() > LEAF_CAP / 2 => break i,
                    Ok(_) => return self.remove_rebalancing(f),
                    Err(_) => return None,
                },
                Node::Inner(b, _) => match b.keys.binary_search_by(&mut f) {
                    Err(c) if depth < MAX_PATH => {
                        path[depth] = c as u8;
                        depth += 1;
                        node = &b.children[c];
                    }
                    _ => return self.remove_rebalancing(f),
                },
            }
        };
        let mut node = &mut self.root;
        for &c in &path[..depth] {
            node = match node {
                Node::Inner(b, size) => {
                    *size -= 1;
                    &mut b.children[c as usize]
                }
                leaf => leaf,
            };
        }
        match node {
            Node::Leaf(v) if at < v.len() => Some(v.remove(at)),
            _ => None,
        }
    }

    /// Removes the element `f` calls equal, merging or rebalancing nodes on the way up.
    fn remove_rebalancing<F: FnMut(&T) -> Ordering>(&mut self, mut f: F) -> Option<T> {
        let x = remove_rec(&mut self.root, &mut f)?;
        self.shrink_root();
        Some(x)
    }

    /// Removes and returns the element of rank `i`, O(log n) with no comparison.
    pub fn remove_at(&mut self, i: usize) -> Option<T> {
        let x = remove_at_rec(&mut self.root, i)?;
        self.shrink_root();
        Some(x)
    }

    pub fn pop_first(&mut self) -> Option<T> {
        let x = remove_end(&mut self.root, false)?;
        self.shrink_root();
        Some(x)
    }

    pub fn pop_last(&mut self) -> Option<T> {
        let x = remove_end(&mut self.root, true)?;
        self.shrink_root();
        Some(x)
    }

    /// A root left with no element but one child gives way to that child.
    fn shrink_root(&mut self) {
        if let Node::Inner(b, _) = &mut self.root {
            if b.keys.is_empty() {
                if let Some(only) = b.children.pop() {
                    self.root = only;
                }
            }
        }
    }
}

/// Inserts into the subtree at `node`; `first`/`last` say whether it is the tree's
/// leftmost/rightmost node at its depth (where sorted loads split unevenly).
fn insert_rec<T: Ord>(node: &mut Node<T>, x: T, first: bool, last: bool) -> Ins<T> {
    match node {
        Node::Leaf(v) => {
            let i = match v.binary_search(&x) {
                Ok(_) => return Ins::Present,
                Err(i) => i,
            };
            if v.len() < LEAF_CAP {
                vec_insert(v, i, x, LEAF_CAP);
                return Ins::Done;
            }
            let (median, right) = split(v, i, x, LEAF_CAP, first, last);
            Ins::Split(median, Node::Leaf(right))
        }
        Node::Inner(b, size) => {
            let c = match b.keys.binary_search(&x) {
                Ok(_) => return Ins::Present,
                Err(c) => c,
            };
            let nkeys = b.keys.len();
            let (first, last) = (first && c == 0, last && c == nkeys);
            let (median, right) = match insert_rec(&mut b.children[c], x, first, last) {
                Ins::Present => return Ins::Present,
                Ins::Done => {
                    *size += 1;
                    return Ins::Done;
                }
                Ins::Split(m, r) => (m, r),
            };
            *size += 1;
            if nkeys < INNER_CAP {
                vec_insert(&mut b.keys, c, median, INNER_CAP);
                vec_insert(&mut b.children, c + 1, right, INNER_CAP + 1);
                return Ins::Done;
            }
            // Full: split keys and children alike around the median.
            let (up, rkeys) = split(&mut b.keys, c, median, INNER_CAP, first, last);
            let lkeys = b.keys.len();
            // Children: the new child goes right after child c; the left node keeps
            // `lkeys + 1` of the `INNER_CAP + 2` children.
            let mut all: Vec<Node<T>> = std::mem::take(&mut b.children);
            all.insert(c + 1, right);
            let rchildren = full_vec(INNER_CAP + 1, all.drain(lkeys + 1..));
            b.children = full_vec(INNER_CAP + 1, all.into_iter());
            let rsize: usize = rchildren.iter().map(Node::size).sum::<usize>() + rkeys.len();
            *size -= rsize + 1;
            Ins::Split(
                up,
                Node::Inner(
                    Box::new(Inner {
                        keys: rkeys,
                        children: rchildren,
                    }),
                    rsize,
                ),
            )
        }
    }
}

/// Splits a full node's `v` (with `x` going at `i`) into `v`, a median and a right
/// half. An insert past the end of the rightmost node keeps the left half full (and
/// before the start of the leftmost, the right half), so sorted loads fill nodes.
fn split<X>(v: &mut Vec<X>, i: usize, x: X, cap: usize, first: bool, last: bool) -> (X, Vec<X>) {
    // With x the node's elements are cap + 1 (S); the left keeps S[..k], the median
    // is S[k], the right S[k + 1..].
    let k = if last && i >= cap {
        cap - 1
    } else if first && i == 0 {
        1
    } else {
        cap / 2
    };
    let k = k.min(v.len());
    let mut right = Vec::with_capacity(cap);
    if i < k {
        right.extend(v.drain(k..));
        // v[k - 1] becomes the median (v holds k >= 1 elements here).
        match v.pop() {
            Some(m) => {
                vec_insert(v, i, x, cap);
                (m, right)
            }
            None => (x, right),
        }
    } else if i == k {
        right.extend(v.drain(k..));
        (x, right)
    } else {
        let mut tail = v.drain(k..);
        let median = tail.next();
        right.extend(tail);
        match median {
            Some(m) => {
                vec_insert(&mut right, i - k - 1, x, cap);
                (m, right)
            }
            None => (x, right),
        }
    }
}

/// Removes the element `f` calls equal from the subtree at `node`.
fn remove_rec<T, F: FnMut(&T) -> Ordering>(node: &mut Node<T>, f: &mut F) -> Option<T> {
    match node {
        Node::Leaf(v) => {
            let i = v.binary_search_by(&mut *f).ok()?;
            Some(v.remove(i))
        }
        Node::Inner(b, size) => {
            let x = match b.keys.binary_search_by(&mut *f) {
                Ok(c) => {
                    // Its predecessor, the last element under child c, takes its place.
                    let pred = remove_end(b.children.get_mut(c)?, true)?;
                    let x = std::mem::replace(&mut b.keys[c], pred);
                    fix_child(b, c);
                    x
                }
                Err(c) => {
                    let x = remove_rec(b.children.get_mut(c)?, f)?;
                    fix_child(b, c);
                    x
                }
            };
            *size -= 1;
            Some(x)
        }
    }
}

/// Removes the element of rank `i` in the subtree at `node`.
fn remove_at_rec<T>(node: &mut Node<T>, mut i: usize) -> Option<T> {
    match node {
        Node::Leaf(v) => (i < v.len()).then(|| v.remove(i)),
        Node::Inner(b, size) => {
            let mut found = None;
            for (c, child) in b.children.iter().enumerate() {
                let s = child.size();
                if i <= s {
                    found = Some((c, i == s));
                    break;
                }
                i -= s + 1;
            }
            let (c, is_key) = found?;
            if is_key && c >= b.keys.len() {
                return None; // i is the subtree's size: out of range
            }
            let x = if is_key {
                let pred = remove_end(b.children.get_mut(c)?, true)?;
                std::mem::replace(&mut b.keys[c], pred)
            } else {
                remove_at_rec(b.children.get_mut(c)?, i)?
            };
            fix_child(b, c);
            *size -= 1;
            Some(x)
        }
    }
}

/// Removes the last (or, without `last`, the first) element of the subtree.
fn remove_end<T>(node: &mut Node<T>, last: bool) -> Option<T> {
    match node {
        Node::Leaf(v) if last => v.pop(),
        Node::Leaf(v) => (!v.is_empty()).then(|| v.remove(0)),
        Node::Inner(b, size) => {
            let c = if last { b.children.len() - 1 } else { 0 };
            let x = remove_end(b.children.get_mut(c)?, last)?;
            *size -= 1;
            fix_child(b, c);
            Some(x)
        }
    }
}

/// Makes room in `v` for `extra` more elements, up to the node's capacity at once.
fn reserve_node<X>(v: &mut Vec<X>, extra: usize, cap: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve_exact(cap.max(v.len() + extra) - v.len());
    }
}

/// After a removal under child `c`: a child left with fewer than half its capacity
/// merges with a sibling when both fit in one node, else takes one of its elements.
fn fix_child<T>(b: &mut Inner<T>, c: usize) {
    let Some(child) = b.children.get(c) else {
        return;
    };
    let cap = child.cap();
    if child.count() >= cap / 2 || b.children.len() < 2 {
        return;
    }
    // The pair (i, i + 1) around separator keys[i].
    let i = c.saturating_sub(1);
    let (lc, rc) = (b.children[i].count(), b.children[i + 1].count());
    if lc + 1 + rc <= cap {
        merge(b, i);
    } else if c == i {
        take_from_right(b, i);
    } else {
        take_from_left(b, i);
    }
}

/// Merges child i + 1 and separator i into child i.
fn merge<T>(b: &mut Inner<T>, i: usize) {
    let sep = b.keys.remove(i);
    let right = b.children.remove(i + 1);
    match (&mut b.children[i], right) {
        (Node::Leaf(l), Node::Leaf(r)) => {
            reserve_node(l, r.len() + 1, LEAF_CAP);
            l.push(sep);
            l.extend(r);
        }
        (Node::Inner(lb, ls), Node::Inner(rb, rs)) => {
            let rb = *rb;
            reserve_node(&mut lb.keys, rb.keys.len() + 1, INNER_CAP);
            reserve_node(&mut lb.children, rb.children.len(), INNER_CAP + 1);
            lb.keys.push(sep);
            lb.keys.extend(rb.keys);
            lb.children.extend(rb.children);
            *ls += 1 + rs;
        }
        // Siblings are always at the same depth; put things back rather than panic.
        (_, right) => {
            b.keys.insert(i, sep);
            b.children.insert(i + 1, right);
        }
    }
}

/// Child i takes the separator, child i + 1's first element replaces it.
fn take_from_right<T>(b: &mut Inner<T>, i: usize) {
    let (left, right) = b.children.split_at_mut(i + 1);
    match (&mut left[i], &mut right[0]) {
        (Node::Leaf(l), Node::Leaf(r)) if !r.is_empty() => {
            let up = r.remove(0);
            let down = std::mem::replace(&mut b.keys[i], up);
            vec_insert(l, l.len(), down, LEAF_CAP);
        }
        (Node::Inner(lb, ls), Node::Inner(rb, rs)) if !rb.keys.is_empty() => {
            let up = rb.keys.remove(0);
            let moved = rb.children.remove(0);
            let ms = moved.size();
            let down = std::mem::replace(&mut b.keys[i], up);
            vec_insert(&mut lb.keys, usize::MAX, down, INNER_CAP);
            vec_insert(&mut lb.children, usize::MAX, moved, INNER_CAP + 1);
            *ls += 1 + ms;
            *rs -= 1 + ms;
        }
        _ => {}
    }
}

/// Child i + 1 takes the separator, child i's last element replaces it.
fn take_from_left<T>(b: &mut Inner<T>, i: usize) {
    let (left, right) = b.children.split_at_mut(i + 1);
    match (&mut left[i], &mut right[0]) {
        (Node::Leaf(l), Node::Leaf(r)) => {
            if let Some(up) = l.pop() {
                let down = std::mem::replace(&mut b.keys[i], up);
                vec_insert(r, 0, down, LEAF_CAP);
            }
        }
        (Node::Inner(lb, ls), Node::Inner(rb, rs)) => {
            if let (Some(up), Some(moved)) = (lb.keys.pop(), lb.children.pop()) {
                let ms = moved.size();
                let down = std::mem::replace(&mut b.keys[i], up);
                vec_insert(&mut rb.keys, 0, down, INNER_CAP);
                vec_insert(&mut rb.children, 0, moved, INNER_CAP + 1);
                *ls -= 1 + ms;
                *rs += 1 + ms;
            }
        }
        _ => {}
    }
}

/// A forward cursor: the next element is `leaf[i]`, or past the leaf, the separator
/// after the child the top of `stack` descended into.
struct Front<'a, T> {
    stack: Vec<(&'a Inner<T>, usize)>,
    leaf: &'a [T],
    i: usize,
}

impl<'a, T> Front<'a, T> {
    /// Positioned before the element of rank `r` (nothing left when `r >= len`).
    fn seek(root: &'a Node<T>, mut r: usize, len: usize) -> Self {
        let mut cur = Front {
            stack: Vec::new(),
            leaf: &[],
            i: 0,
        };
        if r >= len {
            return cur;
        }
        let mut node = root;
        loop {
            match node {
                Node::Leaf(v) => {
                    cur.leaf = v;
                    cur.i = r;
                    return cur;
                }
                Node::Inner(b, _) => {
                    let mut next = None;
                    for (c, child) in b.children.iter().enumerate() {
                        let s = child.size();
                        if r <= s {
                            cur.stack.push((b, c));
                            if r < s {
                                next = Some(child);
                            }
                            break;
                        }
                        r -= s + 1;
                    }
                    // None: the next element is the separator after the pushed child.
                    match next {
                        Some(n) => node = n,
                        None => return cur,
                    }
                }
            }
        }
    }

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.leaf.get(self.i) {
                self.i += 1;
                return Some(x);
            }
            let (b, c) = self.stack.pop()?;
            if let Some(x) = b.keys.get(c) {
                self.stack.push((b, c + 1));
                let mut n = b.children.get(c + 1)?;
                loop {
                    match n {
                        Node::Leaf(v) => {
                            self.leaf = v;
                            self.i = 0;
                            break;
                        }
                        Node::Inner(nb, _) => {
                            self.stack.push((nb, 0));
                            n = nb.children.first()?;
                        }
                    }
                }
                return Some(x);
            }
        }
    }
}

/// A backward cursor: the next element is `leaf[j - 1]`, or before the leaf, the
/// separator before the child the top of `stack` descended into.
struct Back<'a, T> {
    stack: Vec<(&'a Inner<T>, usize)>,
    leaf: &'a [T],
    j: usize,
}

impl<'a, T> Back<'a, T> {
    /// Positioned after the first `r` elements.
    fn seek(root: &'a Node<T>, mut r: usize) -> Self {
        let mut cur = Back {
            stack: Vec::new(),
            leaf: &[],
            j: 0,
        };
        let mut node = root;
        loop {
            match node {
                Node::Leaf(v) => {
                    cur.leaf = v;
                    cur.j = r.min(v.len());
                    return cur;
                }
                Node::Inner(b, _) => {
                    let mut next = None;
                    for (c, child) in b.children.iter().enumerate() {
                        let s = child.size();
                        if r <= s {
                            cur.stack.push((b, c));
                            next = Some(child);
                            break;
                        }
                        r -= s + 1;
                    }
                    match next {
                        Some(n) => node = n,
                        None => return cur,
                    }
                }
            }
        }
    }

    fn next_back(&mut self) -> Option<&'a T> {
        loop {
            if self.j > 0 {
                self.j -= 1;
                return self.leaf.get(self.j);
            }
            let (b, c) = self.stack.pop()?;
            if c > 0 {
                let x = b.keys.get(c - 1)?;
                self.stack.push((b, c - 1));
                let mut n = b.children.get(c - 1)?;
                loop {
                    match n {
                        Node::Leaf(v) => {
                            self.leaf = v;
                            self.j = v.len();
                            break;
                        }
                        Node::Inner(nb, _) => {
                            self.stack.push((nb, nb.children.len().saturating_sub(1)));
                            n = nb.children.last()?;
                        }
                    }
                }
                return Some(x);
            }
        }
    }
}

/// Elements of a rank range, in order; reversible.
pub struct Iter<'a, T> {
    front: Front<'a, T>,
    back: Back<'a, T>,
    remaining: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;
    fn next(&mut self) -> Option<&'a T> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.front.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a, T> DoubleEndedIterator for Iter<'a, T> {
    fn next_back(&mut self) -> Option<&'a T> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.back.next_back()
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
#[path = "zset_tree_tests.rs"]
mod tests;
