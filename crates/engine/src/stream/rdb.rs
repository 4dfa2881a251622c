//! Streams in Redis's RDB encoding: RDB_TYPE_STREAM_LISTPACKS_2 (Redis 7.0) is
//! written; _1 (Redis 5-6.2), _2 and _3 (Redis 7.2) are read. Each node becomes the
//! listpack Redis would hold (master entry, then entries with flags and deltas).

use super::{
    lp, Consumer, ConsumerName, Group, Nack, Stream, StreamId, FLAG_DELETED, FLAG_SAMEFIELDS,
};
use crate::rdb::{write_len, write_string, RdbError, Reader, Result};
use crate::value::Value;
use bytes::Bytes;

pub const STREAM_LISTPACKS: u8 = 15;
pub const STREAM_LISTPACKS_2: u8 = 19;
pub const STREAM_LISTPACKS_3: u8 = 21;

/// The listpack of one node, as Redis lays it out.
fn node_listpack(master: StreamId, node: &super::Node) -> Vec<u8> {
    let mut w = lp::Writer::new();
    w.int(node.live as i64);
    w.int(node.deleted as i64);
    w.int(node.master_fields.len() as i64);
    for f in node.master_fields.iter() {
        w.str(f);
    }
    w.int(0);
    for e in node.entries(master) {
        let pairs = node.fields(&e);
        let same = e.flags & FLAG_SAMEFIELDS != 0;
        let nf = pairs.len() / 2;
        w.int(e.flags as i64);
        w.int(e.id.ms.wrapping_sub(master.ms) as i64);
        w.int(e.id.seq.wrapping_sub(master.seq) as i64);
        if !same {
            w.int(nf as i64);
        }
        for p in pairs.chunks(2) {
            if !same {
                w.str(&p[0]);
            }
            w.str(&p[1]);
        }
        w.int(if same { nf + 3 } else { nf * 2 + 4 } as i64);
    }
    w.finish()
}

fn write_ms(out: &mut Vec<u8>, t: u64) {
    out.extend_from_slice(&t.to_le_bytes());
}

/// Appends the body of an RDB_TYPE_STREAM_LISTPACKS_2 value.
pub fn write(out: &mut Vec<u8>, s: &Stream) {
    write_len(out, s.nodes.len() as u64);
    for (&master, node) in &s.nodes {
        write_string(out, &master.encode());
        write_string(out, &node_listpack(master, node));
    }
    write_len(out, s.length);
    write_len(out, s.last_id.ms);
    write_len(out, s.last_id.seq);
    write_len(out, s.first_id.ms);
    write_len(out, s.first_id.seq);
    write_len(out, s.max_deleted.ms);
    write_len(out, s.max_deleted.seq);
    write_len(out, s.entries_added);
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_string(out, name);
        write_len(out, g.last_id.ms);
        write_len(out, g.last_id.seq);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, n) in &g.pel {
            out.extend_from_slice(&id.encode());
            write_ms(out, n.delivery_time);
            write_len(out, n.delivery_count);
        }
        write_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_string(out, cname);
            write_ms(out, c.seen_time);
            write_len(out, c.pending() as u64);
            for id in c.pending_ids(&g.pel, StreamId::MIN) {
                out.extend_from_slice(&id.encode());
            }
        }
    }
}

const WHAT: &str = "stream";

fn int(b: &Bytes) -> Result<i64> {
    crate::num::parse_i64(b).ok_or(RdbError::Corrupt(WHAT))
}

/// Parses one node's listpack into the stream.
fn read_node(s: &mut Stream, master: StreamId, elems: Vec<Bytes>) -> Result<()> {
    let bad = || RdbError::Corrupt(WHAT);
    let mut it = elems.into_iter();
    let mut next = || it.next().ok_or_else(bad);
    let count = int(&next()?)?;
    let deleted = int(&next()?)?;
    let nmf = int(&next()?)?;
    if count < 0 || deleted < 0 || nmf < 0 {
        return Err(bad());
    }
    let mut mf = Vec::new();
    for _ in 0..nmf {
        mf.push(next()?);
    }
    if int(&next()?)? != 0 {
        return Err(bad());
    }
    let mut entries = Vec::new();
    for _ in 0..(count + deleted) {
        let flags = int(&next()?)?;
        let ms = master.ms.wrapping_add(int(&next()?)? as u64);
        let seq = master.seq.wrapping_add(int(&next()?)? as u64);
        let mut pairs = Vec::new();
        if flags & FLAG_SAMEFIELDS as i64 != 0 {
            for f in &mf {
                pairs.push(f.clone());
                pairs.push(next()?);
            }
        } else {
            let nf = int(&next()?)?;
            if nf < 0 {
                return Err(bad());
            }
            for _ in 0..nf * 2 {
                pairs.push(next()?);
            }
        }
        next()?; // lp-count
        entries.push(((flags as u8) & FLAG_DELETED, StreamId::new(ms, seq), pairs));
    }
    if next().is_ok() {
        return Err(bad());
    }
    if let Some((_, prev, _)) = entries.first() {
        if *prev != master {
            return Err(bad());
        }
    }
    s.push_raw_node(master, mf, entries);
    Ok(())
}

fn read_id16(r: &mut Reader) -> Result<StreamId> {
    StreamId::decode(r.read_exact(16)?).ok_or(RdbError::Corrupt(WHAT))
}

fn read_ms(r: &mut Reader) -> Result<u64> {
    let b = r.read_exact(8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

/// Reads the body of a stream value of type `ty` (15, 19 or 21).
pub fn read(r: &mut Reader, ty: u8) -> Result<Value> {
    let bad = || RdbError::Corrupt(WHAT);
    let mut s = Stream::new();
    let nodes = r.read_len()?;
    for _ in 0..nodes {
        let key = r.read_string()?;
        let master = StreamId::decode(&key).ok_or_else(bad)?;
        let blob = r.read_string()?;
        let elems = crate::rdb::compact::listpack_in(&blob, &mut r.budget)?;
        if elems.is_empty() {
            return Err(bad());
        }
        if s.nodes.contains_key(&master) {
            return Err(bad());
        }
        read_node(&mut s, master, elems)?;
    }
    let length = r.read_len()?;
    s.last_id = StreamId::new(r.read_len()?, r.read_len()?);
    if ty != STREAM_LISTPACKS {
        s.first_id = StreamId::new(r.read_len()?, r.read_len()?);
        s.max_deleted = StreamId::new(r.read_len()?, r.read_len()?);
        s.entries_added = r.read_len()?;
    }
    s.length = s.nodes.values().map(|n| n.live as u64).sum();
    if s.length != length {
        return Err(bad());
    }
    if ty == STREAM_LISTPACKS {
        s.entries_added = s.length;
        s.update_first_id();
    }
    let ngroups = r.read_len()?;
    for _ in 0..ngroups {
        let name = r.read_string()?;
        let last = StreamId::new(r.read_len()?, r.read_len()?);
        let read = if ty == STREAM_LISTPACKS {
            s.estimate_distance(last)
        } else {
            r.read_len()? as i64
        };
        if s.groups.contains_key(&name) {
            return Err(RdbError::Duplicate("stream group"));
        }
        let mut g = Group::new(last, read);
        let npel = r.read_len()?;
        // Owner still unknown (the consumers come next): an empty name, shared.
        let unowned = ConsumerName::default();
        for _ in 0..npel {
            let id = read_id16(r)?;
            let delivery_time = read_ms(r)?;
            let delivery_count = r.read_len()?;
            r.budget.element(16)?;
            if g.pel
                .insert(
                    id,
                    Nack {
                        delivery_time,
                        delivery_count,
                        consumer: unowned.clone(),
                    },
                )
                .is_some()
            {
                return Err(RdbError::Duplicate("stream PEL"));
            }
        }
        let nc = r.read_len()?;
        for _ in 0..nc {
            let cname = r.read_string()?;
            let seen = read_ms(r)?;
            if ty == STREAM_LISTPACKS_3 {
                read_ms(r)?; // active-time (Redis 7.2)
            }
            let mut c = Consumer::new(&cname, seen);
            let np = r.read_len()?;
            for _ in 0..np {
                let id = read_id16(r)?;
                let n = g.pel.get_mut(&id).ok_or_else(bad)?;
                if !n.consumer.is_empty() || !c.load(id) {
                    return Err(bad());
                }
                n.consumer = c.name.clone();
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err(RdbError::Duplicate("stream consumer"));
            }
        }
        // Every pending entry has an owner (Redis's deep check refuses others).
        if g.pel.values().any(|n| n.consumer.is_empty()) {
            return Err(bad());
        }
        s.groups.insert(name, g);
    }
    Ok(Value::Stream(Box::new(s)))
}
