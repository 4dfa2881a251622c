//! Every API against real redis-server processes: plain, password, TLS and a
//! 3-node cluster.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use redsnap::{
    Codec, ConnectionState, Document, Error, HashMapState, History, Memory, RedisStore,
    RetentionPolicy, SaveOutcome, Snapshots,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AppState {
    counter: u64,
    name: String,
    items: Vec<String>,
}

fn state(n: u64) -> AppState {
    AppState {
        counter: n,
        name: "agent".into(),
        items: (0..50)
            .map(|i| format!("item number {i} of the list"))
            .collect(),
    }
}

async fn ttl(store: &RedisStore, key: &str) -> i64 {
    store.query(redis::cmd("TTL").arg(key)).await.unwrap()
}

async fn exists(store: &RedisStore, key: &str) -> bool {
    let n: i64 = store.query(redis::cmd("EXISTS").arg(key)).await.unwrap();
    n == 1
}

async fn snapshots_suite(store: &RedisStore) {
    let ns = common::ns("meta");
    let snaps: Snapshots<AppState> = Snapshots::new(store.clone(), &ns);
    assert!(snaps.latest().await.unwrap().is_none());
    assert!(snaps.list(10).await.unwrap().is_empty());

    let base = redsnap::keys::now_secs() - 100;
    for i in 0..5u64 {
        let out = snaps.save_at(&state(i), base + i).await.unwrap();
        assert!(matches!(out, SaveOutcome::Saved { epoch, .. } if epoch == base + i));
    }
    // Unchanged state is skipped.
    assert_eq!(
        snaps.save_at(&state(4), base + 10).await.unwrap(),
        SaveOutcome::Unchanged
    );
    assert_eq!(
        snaps.list(100).await.unwrap(),
        (0..5).rev().map(|i| base + i).collect::<Vec<_>>()
    );
    assert_eq!(snaps.list(2).await.unwrap(), vec![base + 4, base + 3]);
    assert_eq!(snaps.get(base + 2).await.unwrap(), Some(state(2)));
    assert_eq!(snaps.get(base + 99).await.unwrap(), None);
    let latest = snaps.latest().await.unwrap().unwrap();
    assert_eq!(latest.state, state(4));
    assert!(latest.written_at_ms.is_some());

    // TTL on snapshots (default 24 h), none on latest.
    let t = ttl(store, &snaps.snapshot_key(base + 1)).await;
    assert!(t > 86_000 && t <= 86_400, "ttl {t}");
    assert_eq!(ttl(store, &snaps.latest_key()).await, -1);
    assert_eq!(ttl(store, &snaps.index_key()).await, -1);

    // Compression really compresses, and the stored bytes carry the envelope.
    let raw: Vec<u8> = store
        .query(redis::cmd("GET").arg(snaps.snapshot_key(base)))
        .await
        .unwrap();
    assert_eq!(&raw[..4], b"RSNP");
    assert_eq!(raw[5], 0x02, "msgpack+lz4 codec");
    let m = snaps.metrics();
    assert!(m.last_stored_bytes * 3 < m.last_raw_bytes, "{m:?}");
    assert_eq!(m.saves, 5);
    assert_eq!(m.skipped_unchanged, 1);

    // Another namespace is untouched by prune.
    let other: Snapshots<AppState> = Snapshots::new(store.clone(), &common::ns("other"));
    other.save_at(&state(7), base).await.unwrap();

    assert_eq!(snaps.prune(2).await.unwrap(), 3);
    assert_eq!(snaps.list(100).await.unwrap(), vec![base + 4, base + 3]);
    assert!(!exists(store, &snaps.snapshot_key(base)).await);
    assert!(exists(store, &snaps.snapshot_key(base + 3)).await);
    assert!(exists(store, &snaps.latest_key()).await);
    assert_eq!(other.list(10).await.unwrap(), vec![base]);
    assert_eq!(other.get(base).await.unwrap(), Some(state(7)));

    // Retention: per-second snapshots over 30 minutes, thinned.
    let r: Snapshots<AppState> = Snapshots::new(store.clone(), &common::ns("ret"));
    let now = redsnap::keys::now_secs();
    for i in 0..120u64 {
        // 120 snapshots, one every 15 s, ages 0..30 min
        r.save_at(&state(1000 + i), now - i * 15).await.unwrap();
    }
    let policy = RetentionPolicy::default();
    let deleted = r.apply_retention(&policy, now).await.unwrap();
    let left = r.list(1000).await.unwrap();
    assert_eq!(deleted + left.len(), 120);
    // < 10 min: all 41 kept (ages 0..=600 step 15); 10..30 min: one per minute.
    assert!(left.iter().filter(|e| now - **e <= 600).count() == 41);
    let older = left.iter().filter(|e| now - **e > 600).count();
    assert!((19..=21).contains(&older), "older kept {older}");
    for e in &left {
        assert!(exists(store, &r.snapshot_key(*e)).await);
    }
    assert_eq!(r.apply_retention(&policy, now).await.unwrap(), 0);

    // Restore primes the unchanged check.
    let fresh: Snapshots<AppState> = Snapshots::new(store.clone(), &ns);
    assert_eq!(fresh.restore().await.unwrap(), Some(state(4)));
    assert_eq!(fresh.save(&state(4)).await.unwrap(), SaveOutcome::Unchanged);
    assert!(matches!(
        fresh.heartbeat(&state(5)).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert_eq!(fresh.latest().await.unwrap().unwrap().state, state(5));

    // JSON codec round trip.
    let j: Snapshots<AppState> =
        Snapshots::new(store.clone(), &common::ns("json")).with_codec(Codec::JSON);
    j.save(&state(3)).await.unwrap();
    assert_eq!(j.latest().await.unwrap().unwrap().state, state(3));

    // Garbage and truncated values give clear decode errors.
    let bad: Snapshots<AppState> = Snapshots::new(store.clone(), &common::ns("bad"));
    let _: () = store
        .query(
            redis::cmd("SET")
                .arg(bad.latest_key())
                .arg("not an envelope"),
        )
        .await
        .unwrap();
    match bad.latest().await {
        Err(Error::Decode { key, source }) => {
            assert_eq!(key, bad.latest_key());
            assert!(matches!(source, redsnap::DecodeError::BadMagic { .. }));
        }
        other => panic!("expected decode error, got {other:?}"),
    }
    let good = Codec::default().encode(&state(1)).unwrap();
    let _: () = store
        .query(
            redis::cmd("SET")
                .arg(bad.latest_key())
                .arg(&good[..good.len() / 2]),
        )
        .await
        .unwrap();
    let err = bad.latest().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Decode {
                source: redsnap::DecodeError::Decompress(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot decode value of key"));
}

async fn memory_suite(store: &RedisStore) {
    let mem = Memory::new(store.clone());
    assert_eq!(mem.default_ttl(), Duration::from_secs(86_400));
    let tenant = common::ns("acgs");
    let other_tenant = format!("{tenant}x");
    let k1 = Memory::key(&tenant, "decision", "abc123").unwrap();
    assert_eq!(k1, format!("governance:{tenant}:decision:abc123"));
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Decision {
        result: String,
    }
    let d = Decision {
        result: "approved".into(),
    };
    mem.set(&k1, &d, None).await.unwrap();
    assert_eq!(mem.get::<Decision>(&k1).await.unwrap(), Some(d));
    let t = ttl(store, &k1).await;
    assert!(t > 86_000 && t <= 86_400, "ttl {t}");
    let k2 = Memory::key(&tenant, "decision", "short").unwrap();
    mem.set(
        &k2,
        &serde_json::json!({"a": 1}),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let t = ttl(store, &k2).await;
    assert!(t > 3500 && t <= 3600, "ttl {t}");

    // Malformed JSON: an error for that key, others still readable.
    let k3 = Memory::key(&tenant, "decision", "broken").unwrap();
    let _: () = store
        .query(redis::cmd("SET").arg(&k3).arg("{not json"))
        .await
        .unwrap();
    match mem.get::<serde_json::Value>(&k3).await {
        Err(Error::MalformedJson { key, .. }) => assert_eq!(key, k3),
        other => panic!("expected MalformedJson, got {other:?}"),
    }
    assert!(mem.get::<serde_json::Value>(&k2).await.unwrap().is_some());

    // Glob characters in ids are data, not patterns.
    let star = Memory::key(&tenant, "session", "s*[1]?").unwrap();
    mem.set(&star, &1, None).await.unwrap();
    for i in 0..30 {
        let k = Memory::key(&tenant, "session", &format!("sess-{i}")).unwrap();
        mem.set(&k, &i, None).await.unwrap();
    }
    let keep_other = Memory::key(&other_tenant, "session", "sess-1").unwrap();
    mem.set(&keep_other, &1, None).await.unwrap();

    // Patterns may not escape the governance namespace.
    assert!(matches!(mem.cleanup("*").await, Err(Error::InvalidKey(_))));
    let n = mem
        .cleanup(&Memory::pattern(&tenant, Some("session")).unwrap())
        .await
        .unwrap();
    assert_eq!(n, 31);
    assert!(mem.get::<i32>(&star).await.unwrap().is_none());
    assert_eq!(mem.get::<i32>(&keep_other).await.unwrap(), Some(1));
    assert!(mem.get::<Decision>(&k1).await.unwrap().is_some());

    // delete
    assert!(mem.delete(&k1).await.unwrap());
    assert!(!mem.delete(&k1).await.unwrap());
    // whole tenant
    let n = mem
        .cleanup(&Memory::pattern(&tenant, None).unwrap())
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(mem.get::<i32>(&keep_other).await.unwrap(), Some(1));
    assert!(Memory::key("a:b", "t", "i").is_err());

    // Batches.
    let items: Vec<(String, i32)> = (0..40)
        .map(|i| (Memory::key(&tenant, "batch", &i.to_string()).unwrap(), i))
        .collect();
    mem.set_many(&items, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let broken = Memory::key(&tenant, "batch", "broken").unwrap();
    let _: () = store
        .query(redis::cmd("SET").arg(&broken).arg("[1,"))
        .await
        .unwrap();
    let mut keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    keys.push(broken.clone());
    keys.push(Memory::key(&tenant, "batch", "missing").unwrap());
    let got = mem.get_many::<i32>(&keys).await.unwrap();
    assert_eq!(got.len(), 42);
    for (i, r) in got.iter().take(40).enumerate() {
        assert_eq!(r.as_ref().unwrap(), &Some(i as i32));
    }
    assert!(matches!(&got[40], Err(Error::MalformedJson { key, .. }) if *key == broken));
    assert!(matches!(&got[41], Ok(None)));
    let t = ttl(store, &items[7].0).await;
    assert!(t > 590 && t <= 600, "ttl {t}");
    assert_eq!(
        mem.cleanup(&Memory::pattern(&tenant, Some("batch")).unwrap())
            .await
            .unwrap(),
        41
    );

    // Many SCAN rounds: 1200 keys, deleted batch by batch.
    let many: Vec<(String, u8)> = (0..1200)
        .map(|i| (Memory::key(&tenant, "many", &format!("k{i}")).unwrap(), 1))
        .collect();
    mem.set_many(&many, None).await.unwrap();
    assert_eq!(
        mem.cleanup(&Memory::pattern(&tenant, Some("many")).unwrap())
            .await
            .unwrap(),
        1200
    );
    assert_eq!(mem.get::<i32>(&keep_other).await.unwrap(), Some(1));
}

async fn structured_suite(store: &RedisStore) {
    let ns = common::ns("resonance");
    let mut nodes: HashMapState<serde_json::Value> = HashMapState::new(store.clone(), &ns, "nodes");
    let mut map = BTreeMap::new();
    for i in 0..10 {
        map.insert(format!("n{i}"), serde_json::json!({"id": i, "w": 1.5}));
    }
    let s = nodes.save(&map).await.unwrap();
    assert_eq!((s.written, s.deleted, s.unchanged), (10, 0, 0));
    map.insert("n3".into(), serde_json::json!({"id": 3, "w": 9}));
    map.remove("n7");
    let s = nodes.save(&map).await.unwrap();
    assert_eq!((s.written, s.deleted, s.unchanged), (1, 1, 8));
    let s = nodes.save(&map).await.unwrap();
    assert_eq!((s.written, s.deleted), (0, 0));
    let mut again: HashMapState<serde_json::Value> = HashMapState::new(store.clone(), &ns, "nodes");
    assert_eq!(again.load().await.unwrap(), map);
    let n: i64 = store
        .query(redis::cmd("HLEN").arg(nodes.key()))
        .await
        .unwrap();
    assert_eq!(n, 9);

    let doc = Document::new(store.clone(), &ns, "metrics");
    doc.set(&serde_json::json!({"saves": 3})).await.unwrap();
    assert_eq!(
        doc.get::<serde_json::Value>().await.unwrap(),
        Some(serde_json::json!({"saves": 3}))
    );

    let h = History::new(store.clone(), &ns, "snapshots", 5);
    for i in 0..12 {
        h.push(&i).await.unwrap();
    }
    assert_eq!(h.len().await.unwrap(), 5);
    assert_eq!(h.recent::<i32>(10).await.unwrap(), vec![11, 10, 9, 8, 7]);
}

async fn health_suite(store: &RedisStore) {
    let h = store.health().await;
    assert!(h.healthy);
    assert_eq!(h.connection_state, ConnectionState::Connected);
    assert_eq!(h.reconnect_attempts, 0);
    let json = serde_json::to_value(&h).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["connectionState"], "connected");
    assert_eq!(json["reconnectAttempts"], 0);
    assert!(json["latencyMs"].is_u64());
}

async fn all(store: RedisStore) {
    // Lazy: nothing connected before the first operation.
    assert_eq!(store.connection_state(), ConnectionState::Idle);
    health_suite(&store).await;
    snapshots_suite(&store).await;
    memory_suite(&store).await;
    structured_suite(&store).await;
}

#[tokio::test]
async fn plain_server_all_apis() {
    let (_s, store) = common::plain();
    all(store).await;
}

#[tokio::test]
async fn password_server_all_apis() {
    let (_s, store) = common::password();
    all(store).await;
}

#[tokio::test]
async fn tls_server_all_apis() {
    let t = common::tls();
    all(t.store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_all_apis() {
    let (c, store) = common::cluster();
    all(store.clone()).await;
    // Keys of memory cleanup really spread over several masters.
    let mem = Memory::new(store.clone());
    let tenant = common::ns("spread");
    for i in 0..60 {
        mem.set(
            &Memory::key(&tenant, "t", &i.to_string()).unwrap(),
            &i,
            None,
        )
        .await
        .unwrap();
    }
    let mut per_node = Vec::new();
    for node in c.nodes() {
        let reply = node.command(&[b"DBSIZE"]).unwrap();
        per_node.push(redsnap_testsupport::int_reply(&reply).unwrap_or(0));
    }
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "{per_node:?}"
    );
    assert_eq!(
        mem.cleanup(&Memory::pattern(&tenant, None).unwrap())
            .await
            .unwrap(),
        60
    );
    // A namespace's snapshot keys share one slot.
    let snaps: Snapshots<AppState> = Snapshots::new(store.clone(), "slot{test}");
    let slots: Vec<i64> = {
        let mut v = Vec::new();
        for k in [snaps.latest_key(), snaps.index_key(), snaps.snapshot_key(1)] {
            v.push(
                store
                    .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(k))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
}

/// Same suite against a `redsnap serve` process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redsnap_server_all_apis() {
    let s = redsnap_testsupport::RedsnapServer::start().expect("redsnap serve");
    let store =
        RedisStore::new(common::quick(redsnap::RedisConfig::new(&s.url()).unwrap())).unwrap();
    all(store).await;
}
