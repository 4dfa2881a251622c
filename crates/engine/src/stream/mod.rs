//! The stream value (Redis's `t_stream.c` data structure).
//!
//! Entries live in packed nodes kept in a B-tree keyed by each node's master ID (the
//! ID of its first entry), as Redis keeps listpacks in a radix tree. A node holds the
//! master entry's field names once; an entry with the same fields stores only its
//! values (Redis's SAMEFIELDS flag). Deleted entries are flagged in place, and a node
//! whose last live entry goes is removed, as in Redis. Node boundaries follow Redis's
//! rule (`stream-node-max-entries`, and `stream-node-max-bytes` measured as the size
//! of the listpack Redis would build, see [`lp`]), so approximate trimming (`~`)
//! removes exactly the entries Redis removes.

pub mod codec;
pub mod lp;
pub mod rdb;

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// An entry ID: milliseconds and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The successor (Redis's `streamIncrID`); None for the last possible ID.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The predecessor (Redis's `streamDecrID`); None for 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    pub fn is_zero(self) -> bool {
        self.ms == 0 && self.seq == 0
    }

    /// `ms-seq`, as replies print it.
    pub fn to_bytes(self) -> Bytes {
        let mut a = itoa::Buffer::new();
        let mut b = itoa::Buffer::new();
        let (ms, seq) = (a.format(self.ms).as_bytes(), b.format(self.seq).as_bytes());
        let mut out = bytes::BytesMut::with_capacity(ms.len() + 1 + seq.len());
        out.extend_from_slice(ms);
        out.extend_from_slice(b"-");
        out.extend_from_slice(seq);
        out.freeze()
    }

    /// The 16-byte big-endian form Redis uses as rax key.
    pub fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<StreamId> {
        if b.len() != 16 {
            return None;
        }
        let ms = u64::from_be_bytes(b[..8].try_into().ok()?);
        let seq = u64::from_be_bytes(b[8..].try_into().ok()?);
        Some(StreamId::new(ms, seq))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Entry flags, as Redis stores them.
pub const FLAG_DELETED: u8 = 1;
pub const FLAG_SAMEFIELDS: u8 = 2;

/// One packed node (Redis's listpack of stream entries).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    /// The master entry's field names.
    pub master_fields: Box<[Bytes]>,
    /// Entries: flags byte, ms delta and seq delta (varints, wrapping differences
    /// from the master ID), then either the values (SAMEFIELDS) or a field count and
    /// the field/value pairs, each string as a varint length and its bytes.
    data: Vec<u8>,
    pub live: u32,
    pub deleted: u32,
    /// Size of Redis's listpack for this node without the header's two counters.
    lp_body: u32,
    /// Offset of the last entry (the struct's padding had room for it): the last
    /// live ID is found without decoding the node (XREADGROUP's `>` asks for it).
    last_pos: u32,
}

/// An entry decoded from a node.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRef {
    pub id: StreamId,
    pub flags: u8,
    /// Offset of the entry's flags byte in the node.
    pub pos: usize,
    /// Offset of its field data (after the deltas).
    pub body: usize,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = data.get(*pos) {
        *pos += 1;
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

fn get_str(data: &[u8], pos: &mut usize) -> Bytes {
    let n = get_varint(data, pos) as usize;
    let end = (*pos + n).min(data.len());
    let b = Bytes::copy_from_slice(&data[*pos..end]);
    *pos = end;
    b
}

fn skip_str(data: &[u8], pos: &mut usize) {
    let n = get_varint(data, pos) as usize;
    *pos = (*pos + n).min(data.len());
}

impl Node {
    fn new(master_fields: Box<[Bytes]>) -> Node {
        let mut body = lp::int_size(master_fields.len() as i64) + lp::int_size(0);
        for f in master_fields.iter() {
            body += lp::str_size(f);
        }
        Node {
            master_fields,
            data: Vec::new(),
            live: 0,
            deleted: 0,
            lp_body: body as u32,
            last_pos: 0,
        }
    }

    /// The listpack size Redis would have for this node.
    pub fn lp_bytes(&self) -> usize {
        lp::HEADER
            + 1
            + lp::int_size(self.live as i64)
            + lp::int_size(self.deleted as i64)
            + self.lp_body as usize
    }

    pub fn heap_bytes(&self) -> usize {
        self.data.capacity()
            + self.master_fields.len() * 32
            + self.master_fields.iter().map(|f| f.len()).sum::<usize>()
    }

    /// Decodes the entry at `pos` (`master` is the node's key); returns it and the
    /// offset of the next entry.
    fn entry_at(&self, master: StreamId, pos: usize) -> (EntryRef, usize) {
        let d = &self.data;
        let mut p = pos;
        let flags = d[p];
        p += 1;
        let ms = master.ms.wrapping_add(get_varint(d, &mut p));
        let seq = master.seq.wrapping_add(get_varint(d, &mut p));
        let body = p;
        if flags & FLAG_SAMEFIELDS != 0 {
            for _ in 0..self.master_fields.len() {
                skip_str(d, &mut p);
            }
        } else {
            let n = get_varint(d, &mut p);
            for _ in 0..n.saturating_mul(2) {
                skip_str(d, &mut p);
            }
        }
        (
            EntryRef {
                id: StreamId::new(ms, seq),
                flags,
                pos,
                body,
            },
            p,
        )
    }

    /// Every entry (tombstones included) in order.
    pub fn entries(&self, master: StreamId) -> Vec<EntryRef> {
        let mut out = Vec::with_capacity((self.live + self.deleted) as usize);
        let mut p = 0;
        while p < self.data.len() {
            let (e, next) = self.entry_at(master, p);
            out.push(e);
            p = next;
        }
        out
    }

    /// The field/value pairs of an entry, flattened.
    pub fn fields(&self, e: &EntryRef) -> Vec<Bytes> {
        let d = &self.data;
        let mut p = e.body;
        if e.flags & FLAG_SAMEFIELDS != 0 {
            let mut out = Vec::with_capacity(self.master_fields.len() * 2);
            for f in self.master_fields.iter() {
                out.push(f.clone());
                out.push(get_str(d, &mut p));
            }
            out
        } else {
            let n = get_varint(d, &mut p) as usize;
            let mut out = Vec::with_capacity(n.min(1 << 16) * 2);
            for _ in 0..n.saturating_mul(2) {
                out.push(get_str(d, &mut p));
            }
            out
        }
    }

    fn mark_deleted(&mut self, pos: usize) {
        if let Some(f) = self.data.get_mut(pos) {
            *f |= FLAG_DELETED;
        }
        self.live = self.live.saturating_sub(1);
        self.deleted += 1;
    }

    fn push(&mut self, master: StreamId, id: StreamId, pairs: &[Bytes]) {
        let nf = pairs.len() / 2;
        let same = nf == self.master_fields.len()
            && pairs
                .chunks(2)
                .zip(self.master_fields.iter())
                .all(|(p, f)| p[0] == *f);
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        let msd = id.ms.wrapping_sub(master.ms);
        let seqd = id.seq.wrapping_sub(master.seq);
        // (Node data stays far below 4 GiB: `stream-node-max-bytes` caps it.)
        self.last_pos = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        self.data.push(flags);
        put_varint(&mut self.data, msd);
        put_varint(&mut self.data, seqd);
        let mut body =
            lp::int_size(flags as i64) + lp::int_size(msd as i64) + lp::int_size(seqd as i64);
        if !same {
            put_varint(&mut self.data, nf as u64);
            body += lp::int_size(nf as i64);
        }
        for p in pairs.chunks(2) {
            if !same {
                put_varint(&mut self.data, p[0].len() as u64);
                self.data.extend_from_slice(&p[0]);
                body += lp::str_size(&p[0]);
            }
            put_varint(&mut self.data, p[1].len() as u64);
            self.data.extend_from_slice(&p[1]);
            body += lp::str_size(&p[1]);
        }
        let lp_count = if same { nf + 3 } else { nf * 2 + 4 };
        body += lp::int_size(lp_count as i64);
        self.lp_body = self.lp_body.saturating_add(body as u32);
        self.live += 1;
    }
}

/// A consumer's name as pending entries refer to it: shared with the consumer
/// ([`Consumer::name`]), so that a [`Nack`] is 24 bytes. The group PEL's B-tree
/// nodes then hold 11 NACKs in 264 bytes instead of 528 (with `Bytes`' 32): an
/// XACK on a large PEL shifts and reads half the cache lines (see ARCHITECTURE).
pub type ConsumerName = std::sync::Arc<Bytes>;

/// A pending entry of a consumer group (Redis's `streamNACK`).
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    pub delivery_time: u64,
    pub delivery_count: u64,
    pub consumer: ConsumerName,
}

/// IDs of a consumer's set checked per release while it holds many stale ones.
const SWEEP: usize = 4;

/// A consumer of a group.
///
/// Its pending list is kept lazily: `ids` holds every ID the group's PEL has
/// for this consumer, and may also hold IDs that were acknowledged or claimed
/// by another consumer since (an XACK then searches only the group's B-tree, not
/// this one too: the second root-to-leaf descent over a large PEL cost as many
/// cache misses as the first, see ARCHITECTURE). `pending` counts the live ones;
/// readers filter `ids` through the group's PEL ([`Consumer::pending_ids`]).
/// While more than a third of the set is stale, each release also checks the
/// next 4 IDs from a cursor going round the set and drops the stale ones: the
/// set stays within about 2 x pending + 64 IDs, and no single command pays for a
/// rebuild (a one-off rebuild of a 1M-ID set stalled an XACK for ~67 ms).
#[derive(Debug, Clone, Default)]
pub struct Consumer {
    pub seen_time: u64,
    ids: BTreeSet<StreamId>,
    pending: usize,
    /// Where the next sweep of stale IDs starts.
    sweep: StreamId,
    /// Its name (the key it has in [`Group::consumers`]), for its NACKs to share.
    pub name: ConsumerName,
}

/// Equal when the visible state is: the owners of the pending entries are in
/// the group's PEL, which [`Group`]'s equality compares.
impl PartialEq for Consumer {
    fn eq(&self, o: &Consumer) -> bool {
        self.seen_time == o.seen_time && self.pending == o.pending && self.name == o.name
    }
}

impl Consumer {
    pub fn new(name: &Bytes, seen_time: u64) -> Consumer {
        Consumer {
            seen_time,
            ids: BTreeSet::new(),
            pending: 0,
            sweep: StreamId::MIN,
            name: std::sync::Arc::new(Bytes::copy_from_slice(name)),
        }
    }

    /// How many entries of the group's PEL this consumer owns.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Whether the NACK of `id` in the group's `pel` is this consumer's.
    pub fn owns(&self, pel: &BTreeMap<StreamId, Nack>, id: &StreamId) -> bool {
        pel.get(id).is_some_and(|n| {
            std::sync::Arc::ptr_eq(&n.consumer, &self.name) || *n.consumer == *self.name
        })
    }

    /// This consumer's pending IDs from `start` on, in order.
    pub fn pending_ids<'a>(
        &'a self,
        pel: &'a BTreeMap<StreamId, Nack>,
        start: StreamId,
    ) -> impl Iterator<Item = StreamId> + 'a {
        self.ids
            .range(start..)
            .copied()
            .filter(move |id| self.owns(pel, id))
    }

    /// Records that the NACK of `id` now belongs to this consumer (it did not).
    pub fn add(&mut self, id: StreamId) {
        self.ids.insert(id);
        self.pending += 1;
    }

    /// Adds `id` while loading (a snapshot or RDB); false if it was there.
    pub fn load(&mut self, id: StreamId) -> bool {
        let fresh = self.ids.insert(id);
        self.pending += usize::from(fresh);
        fresh
    }

    /// Records that the NACK of an ID of this consumer was removed from `pel` or
    /// given to another consumer (`pel` already says so): its ID stays in `ids`
    /// until a sweep passes it.
    pub fn release(&mut self, pel: &BTreeMap<StreamId, Nack>) {
        self.pending = self.pending.saturating_sub(1);
        if self.ids.len() > self.pending + self.pending / 2 + 64 {
            self.sweep(pel);
        }
    }

    /// Checks the next [`SWEEP`] IDs from the sweep cursor (one descent of the
    /// set), dropping stale ones; wraps round at the end.
    fn sweep(&mut self, pel: &BTreeMap<StreamId, Nack>) {
        let mut next = [StreamId::MIN; SWEEP];
        let mut n = 0;
        for (slot, id) in next.iter_mut().zip(self.ids.range(self.sweep..)) {
            *slot = *id;
            n += 1;
        }
        for id in &next[..n] {
            if !self.owns(pel, id) {
                self.ids.remove(id);
            }
        }
        self.sweep = match next[..n].last() {
            Some(last) if n == SWEEP => last.incr().unwrap_or(StreamId::MIN),
            _ => StreamId::MIN,
        };
    }

    /// IDs held, stale ones included (memory accounting).
    pub fn held(&self) -> usize {
        self.ids.len()
    }
}

/// `entries_read` when unknown (Redis's `SCG_INVALID_ENTRIES_READ`).
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The shared name of consumer `name` for a NACK (a fresh one if it does not
    /// exist).
    pub fn consumer_name(&self, name: &Bytes) -> ConsumerName {
        match self.consumers.get(name) {
            Some(c) => c.name.clone(),
            None => std::sync::Arc::new(Bytes::copy_from_slice(name)),
        }
    }

    /// Removes a consumer and its pending entries (Redis's `streamDelConsumer`);
    /// returns how many were pending.
    pub fn del_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.ids {
            if c.owns(&self.pel, id) {
                self.pel.remove(id);
            }
        }
        Some(c.pending)
    }
}

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trim {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    pub nodes: BTreeMap<StreamId, Node>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    /// Groups by name (Redis keeps them in a radix tree: byte order).
    pub groups: BTreeMap<Bytes, Group>,
}

/// One entry read out: its ID and flattened field/value pairs.
pub type Item = (StreamId, Vec<Bytes>);

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Appends an entry with `id` (checked by the caller to be greater than the last
    /// ID); `pairs` is field, value, field, value...
    pub fn append(&mut self, id: StreamId, pairs: &[Bytes], max_entries: u64, max_bytes: u64) {
        let total: usize = pairs.iter().map(|p| p.len()).sum();
        let node_max_bytes = if max_bytes == 0 || max_bytes > lp::MAX_SIZE {
            lp::MAX_SIZE
        } else {
            max_bytes
        };
        let mut new_node = true;
        if let Some((_, n)) = self.nodes.iter().next_back() {
            new_node = (n.lp_bytes() + total) as u64 >= node_max_bytes
                || (max_entries != 0 && (n.live + n.deleted) as u64 >= max_entries);
        }
        if new_node {
            // The closed node will not grow again (Redis's lpShrinkToFit).
            if let Some((_, n)) = self.nodes.iter_mut().next_back() {
                n.data.shrink_to_fit();
            }
            // Owned copies: `pairs` may be slices of a request buffer.
            let fields: Box<[Bytes]> = pairs
                .iter()
                .step_by(2)
                .map(|f| Bytes::copy_from_slice(f))
                .collect();
            self.nodes.insert(id, Node::new(fields));
        }
        if let Some((&master, n)) = self.nodes.iter_mut().next_back() {
            n.push(master, id, pairs);
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// Entries with IDs in `[start, end]`, ascending (or descending with `rev`), at
    /// most `count` of them (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<Item> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let limit = if count == 0 { usize::MAX } else { count };
        if !rev {
            // The node that may hold `start` is the last one keyed <= start.
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map(|(k, _)| *k)
                .unwrap_or(StreamId::MIN);
            for (&master, node) in self.nodes.range(from..) {
                if master > end {
                    break;
                }
                // Decoded one entry at a time: a COUNT 1 read stops at the first.
                let mut p = 0;
                while p < node.data.len() {
                    let (e, next) = node.entry_at(master, p);
                    p = next;
                    if e.id > end {
                        return out;
                    }
                    if e.id >= start && e.flags & FLAG_DELETED == 0 {
                        out.push((e.id, node.fields(&e)));
                        if out.len() >= limit {
                            return out;
                        }
                    }
                }
            }
        } else {
            for (&master, node) in self.nodes.range(..=end).rev() {
                for e in node.entries(master).into_iter().rev() {
                    if e.id < start {
                        return out;
                    }
                    if e.id <= end && e.flags & FLAG_DELETED == 0 {
                        out.push((e.id, node.fields(&e)));
                        if out.len() >= limit {
                            return out;
                        }
                    }
                }
                if master < start {
                    break;
                }
            }
        }
        out
    }

    /// The fields of a live entry.
    pub fn get(&self, id: StreamId) -> Option<Vec<Bytes>> {
        self.range(id, id, false, 1).pop().map(|(_, f)| f)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        node.entries(master)
            .iter()
            .any(|e| e.id == id && e.flags & FLAG_DELETED == 0)
    }

    /// Deletes one entry (Redis's `streamDeleteItem`); returns whether it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let Some(e) = node
            .entries(master)
            .into_iter()
            .find(|e| e.id == id && e.flags & FLAG_DELETED == 0)
        else {
            return false;
        };
        if node.live == 1 {
            self.nodes.remove(&master);
        } else {
            node.mark_deleted(e.pos);
        }
        self.length -= 1;
        true
    }

    /// The first (or last) entry's ID; with `skip_tombstones` false, deleted entries
    /// count (Redis's `streamGetEdgeID`). Empty: MAX for first, MIN for last.
    pub fn edge_id(&self, first: bool, skip_tombstones: bool) -> StreamId {
        let pick = |master: StreamId, node: &Node| -> Option<StreamId> {
            // The last entry first: live (or tombstones count), it is the answer.
            if !first && (node.last_pos as usize) < node.data.len() {
                let (e, _) = node.entry_at(master, node.last_pos as usize);
                if !skip_tombstones || e.flags & FLAG_DELETED == 0 {
                    return Some(e.id);
                }
            }
            let es = node.entries(master);
            let ok = |e: &&EntryRef| !skip_tombstones || e.flags & FLAG_DELETED == 0;
            if first {
                es.iter().find(ok).map(|e| e.id)
            } else {
                es.iter().rev().find(ok).map(|e| e.id)
            }
        };
        let found = if first {
            self.nodes.iter().find_map(|(m, n)| pick(*m, n))
        } else {
            self.nodes.iter().rev().find_map(|(m, n)| pick(*m, n))
        };
        found.unwrap_or(if first { StreamId::MAX } else { StreamId::MIN })
    }

    /// Redis's `streamLastValidID`: the last live entry's ID, 0-0 when none.
    pub fn last_valid_id(&self) -> StreamId {
        self.edge_id(false, true)
    }

    /// Refreshes `first_id` after removals.
    pub fn update_first_id(&mut self) {
        self.first_id = if self.length == 0 {
            StreamId::MIN
        } else {
            self.edge_id(true, true)
        };
    }

    /// Trims as Redis's `streamTrim`: whole nodes first; with `approx` only whole
    /// nodes; `limit` caps the entries removed (0: no cap). Returns how many went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted: u64 = 0;
        if trim == Trim::None {
            return 0;
        }
        let masters: Vec<StreamId> = self.nodes.keys().copied().collect();
        for master in masters {
            if let Trim::MaxLen(maxlen) = trim {
                if self.length <= maxlen {
                    break;
                }
            }
            let Some(node) = self.nodes.get_mut(&master) else {
                continue;
            };
            let entries = node.live as u64;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let es = node.entries(master);
            let remove_node = match trim {
                Trim::MaxLen(maxlen) => self.length - entries >= maxlen,
                Trim::MinId(min) => es.last().is_none_or(|e| e.id < min),
                Trim::None => false,
            };
            if remove_node {
                self.nodes.remove(&master);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            for e in es {
                let stop = match trim {
                    Trim::MaxLen(maxlen) => self.length <= maxlen,
                    Trim::MinId(min) => e.id >= min,
                    Trim::None => true,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    node.mark_deleted(e.pos);
                    self.length -= 1;
                    deleted += 1;
                }
            }
            break;
        }
        self.update_first_id();
        deleted
    }

    /// Redis's `streamRangeHasTombstones`.
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return added,
            std::cmp::Ordering::Greater => return INVALID_ENTRIES_READ,
            _ => {}
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return added - self.length as i64,
                std::cmp::Ordering::Equal => return added - self.length as i64 + 1,
                _ => {}
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag (None when it cannot be known: Redis replies nil).
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ
            && !self.range_has_tombstones(g.last_id, StreamId::MAX)
        {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        if read != INVALID_ENTRIES_READ {
            Some(self.entries_added as i64 - read)
        } else {
            None
        }
    }

    /// Heap bytes (MEMORY USAGE, maxmemory accounting).
    pub fn mem_usage(&self) -> usize {
        let mut n = 96;
        for node in self.nodes.values() {
            n += node.heap_bytes() + 64;
        }
        for (name, g) in &self.groups {
            n += name.len() + 96 + g.pel.len() * 80;
            for (cname, c) in &g.consumers {
                n += cname.len() + 64 + c.held() * 32;
            }
        }
        n
    }

    /// Every node with its master ID, for the encoders.
    pub fn node_iter(&self) -> impl Iterator<Item = (&StreamId, &Node)> {
        self.nodes.iter()
    }

    /// Builds a node from decoded parts (the DUMP/RESTORE reader); `entries` are
    /// (flags, id, flattened pairs). Keeps flags, so tombstones survive.
    pub fn push_raw_node(
        &mut self,
        master: StreamId,
        master_fields: Vec<Bytes>,
        entries: Vec<(u8, StreamId, Vec<Bytes>)>,
    ) {
        let mut node = Node::new(master_fields.into_boxed_slice());
        for (flags, id, pairs) in entries {
            let pos = node.data.len();
            node.push(master, id, &pairs);
            if flags & FLAG_DELETED != 0 {
                node.mark_deleted(pos);
            }
        }
        if node.live + node.deleted > 0 {
            self.nodes.insert(master, node);
        }
    }
}

#[cfg(test)]
mod tests;
