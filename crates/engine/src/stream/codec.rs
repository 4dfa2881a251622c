//! redsnap's own serialization of a stream (snapshots): the metadata, every node
//! with its tombstones, and the consumer groups with their PELs.

use super::{Consumer, Group, Nack, Stream, StreamId, FLAG_DELETED};
use bytes::Bytes;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_varint(out, id.ms);
    put_varint(out, id.seq);
}

/// Appends the stream's encoding to `out`.
pub fn encode(s: &Stream, out: &mut Vec<u8>) {
    put_varint(out, s.length);
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted);
    put_varint(out, s.entries_added);
    put_varint(out, s.nodes.len() as u64);
    for (&master, node) in &s.nodes {
        put_id(out, master);
        put_varint(out, node.master_fields.len() as u64);
        for f in node.master_fields.iter() {
            put_bytes(out, f);
        }
        let es = node.entries(master);
        put_varint(out, es.len() as u64);
        for e in &es {
            out.push(e.flags & FLAG_DELETED);
            put_id(out, e.id);
            let f = node.fields(e);
            put_varint(out, f.len() as u64 / 2);
            for b in &f {
                put_bytes(out, b);
            }
        }
    }
    put_varint(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_bytes(out, name);
        put_id(out, g.last_id);
        put_varint(out, g.entries_read as u64);
        put_varint(out, g.pel.len() as u64);
        for (id, n) in &g.pel {
            put_id(out, *id);
            put_varint(out, n.delivery_time);
            put_varint(out, n.delivery_count);
            put_bytes(out, &n.consumer);
        }
        put_varint(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_bytes(out, cname);
            put_varint(out, c.seen_time);
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    p: usize,
}

const BAD: &str = "truncated or invalid stream encoding";

impl R<'_> {
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self.b.get(self.p).ok_or(BAD)?;
            self.p += 1;
            if shift >= 64 {
                return Err(BAD);
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }
    fn len(&mut self) -> Result<usize, &'static str> {
        let n = self.varint()?;
        // Every element takes at least one byte: a count beyond what is left lies.
        if n > (self.b.len() - self.p) as u64 {
            return Err(BAD);
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Bytes, &'static str> {
        let n = self.len()?;
        let b = Bytes::copy_from_slice(&self.b[self.p..self.p + n]);
        self.p += n;
        Ok(b)
    }
    fn id(&mut self) -> Result<StreamId, &'static str> {
        Ok(StreamId::new(self.varint()?, self.varint()?))
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        let b = *self.b.get(self.p).ok_or(BAD)?;
        self.p += 1;
        Ok(b)
    }
}

/// Decodes a stream from the start of `b`; returns it and the bytes consumed.
pub fn decode(b: &[u8]) -> Result<(Stream, usize), &'static str> {
    let mut r = R { b, p: 0 };
    let mut s = Stream::new();
    let length = r.varint()?;
    s.last_id = r.id()?;
    s.first_id = r.id()?;
    s.max_deleted = r.id()?;
    s.entries_added = r.varint()?;
    let nodes = r.len()?;
    for _ in 0..nodes {
        let master = r.id()?;
        let nf = r.len()?;
        let mut mf = Vec::with_capacity(nf);
        for _ in 0..nf {
            mf.push(r.bytes()?);
        }
        let ne = r.len()?;
        let mut es = Vec::with_capacity(ne);
        for _ in 0..ne {
            let flags = r.u8()?;
            let id = r.id()?;
            let np = r.len()?;
            let mut pairs = Vec::with_capacity(np * 2);
            for _ in 0..np * 2 {
                pairs.push(r.bytes()?);
            }
            es.push((flags, id, pairs));
        }
        s.push_raw_node(master, mf, es);
    }
    s.length = s.nodes.values().map(|n| n.live as u64).sum();
    if s.length != length {
        return Err("stream length does not match its entries");
    }
    let ng = r.len()?;
    for _ in 0..ng {
        let name = r.bytes()?;
        let last = r.id()?;
        let read = r.varint()? as i64;
        let mut g = Group::new(last, read);
        let np = r.len()?;
        for _ in 0..np {
            let id = r.id()?;
            let delivery_time = r.varint()?;
            let delivery_count = r.varint()?;
            let consumer = r.bytes()?;
            let c = g
                .consumers
                .entry(consumer.clone())
                .or_insert_with(|| Consumer::new(&consumer, 0));
            c.load(id);
            let consumer = c.name.clone();
            g.pel.insert(
                id,
                Nack {
                    delivery_time,
                    delivery_count,
                    consumer,
                },
            );
        }
        let nc = r.len()?;
        for _ in 0..nc {
            let cname = r.bytes()?;
            let seen = r.varint()?;
            let c = g
                .consumers
                .entry(cname.clone())
                .or_insert_with(|| Consumer::new(&cname, 0));
            c.seen_time = seen;
        }
        s.groups.insert(name, g);
    }
    Ok((s, r.p))
}
