use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn filled(n: u64, max_entries: u64) -> Stream {
    let mut s = Stream::new();
    for i in 1..=n {
        s.append(
            StreamId::new(i, 0),
            &[b("a"), b(&i.to_string()), b("b"), b("x")],
            max_entries,
            4096,
        );
    }
    s
}

#[test]
fn nodes_split_like_redis_and_ranges_cross_them() {
    let s = filled(250, 100);
    assert_eq!(s.nodes.len(), 3);
    assert_eq!(s.len(), 250);
    let all = s.range(StreamId::MIN, StreamId::MAX, false, 0);
    assert_eq!(all.len(), 250);
    assert_eq!(all[99].1, vec![b("a"), b("100"), b("b"), b("x")]);
    let rev = s.range(StreamId::new(95, 0), StreamId::new(105, 0), true, 3);
    let ids: Vec<u64> = rev.iter().map(|(id, _)| id.ms).collect();
    assert_eq!(ids, [105, 104, 103]);
}

#[test]
fn different_fields_are_kept_per_entry() {
    let mut s = Stream::new();
    s.append(StreamId::new(1, 0), &[b("f"), b("1")], 100, 4096);
    s.append(
        StreamId::new(2, 0),
        &[b("g"), b("2"), b("h"), b("3")],
        100,
        4096,
    );
    assert_eq!(
        s.get(StreamId::new(2, 0)),
        Some(vec![b("g"), b("2"), b("h"), b("3")])
    );
    assert_eq!(s.get(StreamId::new(1, 0)), Some(vec![b("f"), b("1")]));
}

#[test]
fn delete_and_trim() {
    let mut s = filled(250, 100);
    assert!(s.delete(StreamId::new(5, 0)));
    assert!(!s.delete(StreamId::new(5, 0)));
    assert_eq!(s.len(), 249);
    // Approximate: only whole nodes go (the first node has 99 live entries).
    assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 99);
    assert_eq!(s.len(), 150);
    assert_eq!(s.first_id, StreamId::new(101, 0));
    assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
    assert_eq!(s.first_id, StreamId::new(131, 0));
    assert_eq!(s.trim(Trim::MinId(StreamId::new(200, 0)), false, 0), 69);
    assert_eq!(s.len(), 51);
    assert_eq!(s.edge_id(true, true), StreamId::new(200, 0));
}

#[test]
fn codec_round_trip_with_groups() {
    let mut s = filled(150, 100);
    s.delete(StreamId::new(3, 0));
    s.max_deleted = StreamId::new(3, 0);
    let mut g = Group::new(StreamId::new(10, 0), 10);
    g.pel.insert(
        StreamId::new(7, 0),
        Nack {
            delivery_time: 5,
            delivery_count: 2,
            consumer: std::sync::Arc::new(b("alice")),
        },
    );
    let mut c = Consumer::new(&b("alice"), 0);
    c.add(StreamId::new(7, 0));
    c.seen_time = 9;
    g.consumers.insert(b("alice"), c);
    g.consumers.insert(b("bob"), Consumer::new(&b("bob"), 0));
    s.groups.insert(b("grp"), g);
    let mut out = Vec::new();
    codec::encode(&s, &mut out);
    let (d, used) = codec::decode(&out).expect("decodes");
    assert_eq!(used, out.len());
    assert_eq!(d, s);
    assert!(codec::decode(&out[..out.len() - 1]).is_err());
}

#[test]
fn last_valid_id_skips_tombstones_and_nodes_stay_small() {
    // The last entry's offset lives in the struct's padding: no memory per node.
    assert!(std::mem::size_of::<Node>() <= 56);
    let mut s = Stream::new();
    for i in 1..=5 {
        s.append(StreamId::new(i, 0), &[b("f"), b("v")], 2, 0);
    }
    assert_eq!(s.last_valid_id(), StreamId::new(5, 0));
    assert!(s.delete(StreamId::new(4, 0)));
    assert_eq!(s.last_valid_id(), StreamId::new(5, 0));
    assert!(s.delete(StreamId::new(5, 0)));
    assert_eq!(s.last_valid_id(), StreamId::new(3, 0));
    // Tombstones counted (Redis's streamGetEdgeID with skip_tombstones 0): 4.
    assert_eq!(s.edge_id(false, false), StreamId::new(4, 0));
    assert!(s.delete(StreamId::new(3, 0)));
    // (2 entries per node: [1 2] [3 4] [5]; the last two nodes are now gone.)
    assert_eq!(s.last_valid_id(), StreamId::new(2, 0));
    s.append(StreamId::new(6, 0), &[b("g"), b("w")], 2, 0);
    assert_eq!(s.last_valid_id(), StreamId::new(6, 0));
    // A ranged read stops at COUNT and crosses nodes.
    let got: Vec<StreamId> = s
        .range(StreamId::new(2, 0), StreamId::MAX, false, 2)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, vec![StreamId::new(2, 0), StreamId::new(6, 0)]);
}

/// A consumer's set of pending IDs keeps its stale IDs (left by XACK) bounded:
/// the sweep that runs with each release drops them, in a random order of
/// acknowledgements and in the worst order for the cursor (highest first).
#[test]
fn stale_consumer_ids_stay_bounded() {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    for descending in [false, true] {
        let mut g = Group::new(StreamId::MIN, 0);
        let mut c = Consumer::new(&b("c"), 0);
        let n = 20_000u64;
        for i in 1..=n {
            let id = StreamId::new(1, i);
            g.pel.insert(
                id,
                Nack {
                    delivery_time: 0,
                    delivery_count: 1,
                    consumer: c.name.clone(),
                },
            );
            c.add(id);
        }
        let mut order: Vec<u64> = (1..=n).collect();
        if descending {
            order.reverse();
        } else {
            order.shuffle(&mut rng);
        }
        let mut worst = 0usize;
        for (k, i) in order.iter().enumerate() {
            g.pel.remove(&StreamId::new(1, *i));
            c.release(&g.pel);
            assert_eq!(c.pending(), n as usize - k - 1);
            worst = worst.max(c.held().saturating_sub(2 * c.pending()));
        }
        assert!(
            worst <= 1_000,
            "descending {descending}: {worst} over 2 x pending"
        );
        assert_eq!(c.pending_ids(&g.pel, StreamId::MIN).count(), 0);
    }
}
