//! The conformance suite: the library's behaviour, written once, run against every
//! backend a [`RedisStore`] can have: the in-memory and the durable in-process
//! backends (`redsnap://`, `redsnap:///dir`), a real redis-server, a real
//! redis-server with TLS and AUTH, a 3-node Redis Cluster, and `redsnap serve`
//! over TCP. Every backend runs [`suite`]; where a backend differs, the
//! difference is a documented limit pinned by [`limits`] (the in-process backend
//! runs only the library's own Lua scripts, natively, and not the server's
//! administrative commands).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redsnap::{
    new_checkpoint_id, Checkpoint, Checkpointer, Codec, ConnectionState, Document, Error,
    HashMapState, History, ListOptions, Lock, Memory, MemoryCheckpointer, RedisCheckpointer,
    RedisStore, RetentionPolicy, SaveOutcome, Snapshots,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Which backend a store runs on (for the few checks that name a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    InProcess,
    Redis,
    RedisTlsAuth,
    Cluster,
    RedsnapServe,
}

impl Backend {
    fn in_process(self) -> bool {
        matches!(self, Backend::Memory | Backend::InProcess)
    }
}

/// The whole suite, in one order for every backend.
async fn suite(store: RedisStore, backend: Backend) {
    // Lazy: nothing connected (or run) before the first operation.
    assert_eq!(store.connection_state(), ConnectionState::Idle);
    assert_eq!(store.is_in_process(), backend.in_process());
    health_suite(&store).await;
    snapshots_suite(&store).await;
    memory_suite(&store).await;
    structured_suite(&store).await;
    checkpointer_suite(&store).await;
    lock_suite(&store).await;
    watch_suite(&store).await;
    metrics_suite(&store).await;
    limits(&store, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    let store = RedisStore::open("redsnap://").unwrap();
    suite(store.clone(), Backend::Memory).await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_process_durable() {
    let dir = tempfile::tempdir().unwrap();
    // `always`: every acknowledged operation waited for its fsync.
    let url = format!(
        "redsnap://{}?appendfsync=always",
        dir.path().join("data").display()
    );
    let store = RedisStore::open(&url).unwrap();
    suite(store.clone(), Backend::InProcess).await;
    store.shutdown().await.unwrap();
    // What the suite left is all there after a restart.
    let again = RedisStore::open(&url).unwrap();
    let n: i64 = again.query(&redis::cmd("DBSIZE")).await.unwrap();
    assert!(n > 0);
    again.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redis() {
    let (_s, store) = common::plain();
    suite(store, Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redis_password() {
    // AUTH alone (TLS+AUTH below): the password from the config, not the URL.
    let (_s, store) = common::password();
    suite(store, Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redis_tls_auth() {
    let t = common::tls();
    suite(t.store.clone(), Backend::RedisTlsAuth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cluster() {
    let (c, store) = common::cluster();
    suite(store.clone(), Backend::Cluster).await;
    cluster_layout(&c, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_redsnap_serve() {
    let s = redsnap_testsupport::RedsnapServer::start().expect("redsnap serve");
    let store =
        RedisStore::new(common::quick(redsnap::RedisConfig::new(&s.url()).unwrap())).unwrap();
    suite(store, Backend::RedsnapServe).await;
}

/// `MemoryCheckpointer` (no store at all) passes the checkpointer part.
#[tokio::test]
async fn conformance_memory_checkpointer() {
    conformance(Arc::new(MemoryCheckpointer::new())).await;
    ttl_conformance(MemoryCheckpointer::new().with_ttl(Duration::from_secs(2))).await;
}

/// Where backends differ, each difference is a limit of one backend, pinned here.
async fn limits(store: &RedisStore, backend: Backend) {
    // Scripts other than the library's own: the in-process backend has no Lua.
    let script = redis::Script::new("return ARGV[1]");
    let mut inv = script.prepare_invoke();
    inv.arg("echoed");
    let r = store.invoke::<String>(&inv).await;
    if backend.in_process() {
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("runs only the redsnap library's own scripts"),
            "{e}"
        );
        let sha: Result<String, _> = store
            .query(redis::cmd("SCRIPT").arg("LOAD").arg("return 1"))
            .await;
        assert!(sha.is_err());
    } else {
        assert_eq!(r.unwrap(), "echoed");
    }
    // Administrative server commands.
    let info = store
        .query::<redis::Value>(redis::cmd("INFO").arg("server"))
        .await;
    if backend.in_process() {
        let e = info.unwrap_err().to_string();
        assert!(
            e.contains("'info' is not available in the in-process backend"),
            "{e}"
        );
    } else {
        info.unwrap();
    }
    // A library script that fails raises like Lua's redis.call on every backend:
    // the command's error, then ` script: <sha>, on @user_script:<line>.`
    let cp = RedisCheckpointer::new(store.clone(), &common::ns("limits"));
    let c = Checkpoint::new("t", None, json!(1));
    let _: () = store
        .query(redis::cmd("SET").arg(cp.index_key("t")).arg("not a zset"))
        .await
        .unwrap();
    let e = cp.put(&c).await.unwrap_err().to_string();
    assert!(e.contains("WRONGTYPE"), "{e}");
    // (line 9 of the put script: its ZADD)
    assert!(e.contains(" script: "), "{e}");
    assert!(e.ends_with(", on @user_script:9."), "{e}");
    // MULTI/EXEC as an atomic pipeline works everywhere; a command that fails
    // inside it fails the pipeline, and the others ran (no rollback, as Redis).
    let k = format!("{{{}}}:tx", common::ns("tx"));
    let mut p = redis::pipe();
    p.atomic()
        .cmd("SET")
        .arg(&k)
        .arg("v")
        .cmd("INCR")
        .arg(&k)
        .cmd("APPEND")
        .arg(&k)
        .arg("w");
    assert!(store.query_pipe::<()>(&p).await.is_err());
    let v: String = store.query(redis::cmd("GET").arg(&k)).await.unwrap();
    assert_eq!(v, "vw");
    // A queue-time error (unknown command) discards the transaction: an error of
    // kind ExecAbort everywhere. (Through a server, redis-rs lists the queued
    // commands' errors, "Transaction aborted: [(1, unknown command ...)]"; in
    // process it is EXEC's own "EXECABORT Transaction discarded because of previous
    // errors.", since redis-rs builds the former only inside its connection.)
    let mut p = redis::pipe();
    p.atomic().cmd("SET").arg(&k).arg("x").cmd("NOSUCHCOMMAND");
    match store.query_pipe::<()>(&p).await {
        Err(Error::Redis(e)) => {
            assert_eq!(
                e.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort),
                "{e}"
            );
            if backend.in_process() {
                assert!(e.to_string().contains("Transaction discarded"), "{e}");
            } else {
                assert!(e.to_string().contains("unknown command"), "{e}");
            }
        }
        other => panic!("expected an aborted transaction, got {other:?}"),
    }
    let v: String = store.query(redis::cmd("GET").arg(&k)).await.unwrap();
    assert_eq!(v, "vw");
}

async fn metrics_suite(store: &RedisStore) {
    let ns = common::ns("metered");
    let snaps: Snapshots<u32> = Snapshots::new(store.clone(), &ns);
    snaps.save(&7).await.unwrap();
    assert_eq!(snaps.restore().await.unwrap(), Some(7));
    let text = store.metrics().encode();
    assert!(
        text.contains(&format!(
            "redsnap_snapshot_saves_total{{namespace=\"{ns}\",outcome=\"saved\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("redsnap_connection_up 1"), "{text}");
    #[cfg(feature = "http")]
    {
        let report = redsnap::http::health_report(store).await;
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["healthy"], true, "{json}");
    }
}

async fn checkpointer_suite(store: &RedisStore) {
    conformance(Arc::new(RedisCheckpointer::new(
        store.clone(),
        &common::ns("cp"),
    )))
    .await;
    ttl_conformance(
        RedisCheckpointer::new(store.clone(), &common::ns("cpttl"))
            .with_ttl(Duration::from_secs(2)),
    )
    .await;
    // TTL really set on both keys; compression really compresses.
    let cp = RedisCheckpointer::new(store.clone(), &common::ns("cpx"))
        .with_ttl(Duration::from_secs(600));
    let c = Checkpoint::new("t1", None, big_state(1));
    cp.put(&c).await.unwrap();
    for key in [
        cp.checkpoint_key("t1", &c.checkpoint_id),
        cp.index_key("t1"),
    ] {
        let ttl: i64 = store.query(redis::cmd("TTL").arg(&key)).await.unwrap();
        assert!(ttl > 590 && ttl <= 600, "{key}: {ttl}");
    }
    let stored: Vec<u8> = store
        .query(redis::cmd("GET").arg(cp.checkpoint_key("t1", &c.checkpoint_id)))
        .await
        .unwrap();
    let json_len = serde_json::to_vec(&c).unwrap().len();
    assert!(
        stored.len() * 3 < json_len,
        "{} vs {json_len}",
        stored.len()
    );
    assert_eq!(stored[5], 0x02);
    assert!(new_checkpoint_id() > c.checkpoint_id);
}

/// Cluster only: keys really spread over several masters, and a namespace's
/// snapshot keys share one slot.
async fn cluster_layout(c: &redsnap_testsupport::RedisCluster, store: &RedisStore) {
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
    let snaps: Snapshots<AppState> = Snapshots::new(store.clone(), "slot{test}");
    let mut slots: Vec<i64> = Vec::new();
    for k in [snaps.latest_key(), snaps.index_key(), snaps.snapshot_key(1)] {
        slots.push(
            store
                .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(k))
                .await
                .unwrap(),
        );
    }
    assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
}

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

async fn lock_suite(store: &RedisStore) {
    let name = common::ns("job");
    let a = Lock::try_acquire(store, &name, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free lock");
    assert!(Lock::try_acquire(store, &name, Duration::from_secs(5))
        .await
        .unwrap()
        .is_none());
    let pttl: i64 = store.query(redis::cmd("PTTL").arg(a.key())).await.unwrap();
    assert!(pttl > 4000 && pttl <= 5000, "{pttl}");
    assert!(a.extend(Duration::from_secs(30)).await.unwrap());
    let pttl: i64 = store.query(redis::cmd("PTTL").arg(a.key())).await.unwrap();
    assert!(pttl > 29_000, "{pttl}");
    let a_fence = a.fencing_token();
    assert!(a.release().await.unwrap());

    // Expired lock: a new holder takes it; the old token can neither
    // extend nor release it.
    let old = Lock::try_acquire(store, &name, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let new = Lock::acquire(store, &name, Duration::from_secs(5), Duration::from_secs(2))
        .await
        .unwrap()
        .unwrap();
    // Fencing tokens: every acquisition a larger one (a, old, new in that order).
    assert!(a_fence < old.fencing_token(), "{a_fence} {old:?}");
    assert!(old.fencing_token() < new.fencing_token(), "{old:?} {new:?}");
    assert!(!old.extend(Duration::from_secs(5)).await.unwrap());
    assert!(!old.release().await.unwrap());
    assert!(new.release().await.unwrap());

    // Mutual exclusion under contention.
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let name = name.clone();
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                let l = Lock::acquire(
                    &store,
                    &name,
                    Duration::from_secs(5),
                    Duration::from_secs(20),
                )
                .await
                .unwrap()
                .expect("acquired");
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                assert!(l.release().await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn watch_suite(store: &RedisStore) {
    let ns = common::ns("watched");
    let snaps: Snapshots<u32> = Snapshots::new(store.clone(), &ns);
    let mut w = snaps.watch().await.unwrap();
    snaps.save_at(&1, 1_700_000_000).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, b"1700000000");
    snaps.heartbeat(&2).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, b"latest");
    let n = store
        .publish(&snaps.changes_channel(), b"custom")
        .await
        .unwrap();
    assert!(n >= 0);
    let msg = tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, b"custom");
}

fn big_state(i: usize) -> serde_json::Value {
    json!({
        "step": i,
        "messages": (0..40).map(|m| format!("message {m} of the conversation, step {i}")).collect::<Vec<_>>(),
    })
}

async fn conformance<C: Checkpointer + 'static>(cp: Arc<C>) {
    let thread = format!("thread-{}", rand::random::<u32>());
    let other = format!("{thread}-other");
    assert!(cp.get_latest(&thread).await.unwrap().is_none());
    assert!(cp
        .list(&thread, &ListOptions::default())
        .await
        .unwrap()
        .is_empty());

    // put / get / latest / parent chain
    let mut ids = Vec::new();
    let mut parent: Option<String> = None;
    for i in 0..10 {
        let c = Checkpoint::new(&thread, parent.as_deref(), big_state(i))
            .with_metadata("source", json!("loop"))
            .with_metadata("step", json!(i));
        cp.put(&c).await.unwrap();
        parent = Some(c.checkpoint_id.clone());
        ids.push(c.checkpoint_id.clone());
        let got = cp.get(&thread, &c.checkpoint_id).await.unwrap().unwrap();
        assert_eq!(got, c);
    }
    cp.put(&Checkpoint::new(&other, None, json!({"x": 1})))
        .await
        .unwrap();
    let latest = cp.get_latest(&thread).await.unwrap().unwrap();
    assert_eq!(latest.checkpoint_id, ids[9]);
    assert_eq!(latest.parent_id.as_deref(), Some(ids[8].as_str()));
    assert_eq!(latest.metadata["step"], json!(9));
    assert!(cp.get(&thread, "no-such-id").await.unwrap().is_none());

    // list newest first, before, limit
    let all = cp.list(&thread, &ListOptions::default()).await.unwrap();
    let listed: Vec<String> = all.iter().map(|c| c.checkpoint_id.clone()).collect();
    let mut expect = ids.clone();
    expect.reverse();
    assert_eq!(listed, expect);
    let page = cp
        .list(
            &thread,
            &ListOptions {
                before: Some(ids[5].clone()),
                limit: Some(3),
            },
        )
        .await
        .unwrap();
    let page: Vec<String> = page.into_iter().map(|c| c.checkpoint_id).collect();
    assert_eq!(page, vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    let first_two = cp
        .list(
            &thread,
            &ListOptions {
                before: None,
                limit: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(first_two.len(), 2);
    assert_eq!(first_two[0].checkpoint_id, ids[9]);

    // put with an existing id replaces
    let mut replaced = latest.clone();
    replaced.state = json!({"replaced": true});
    cp.put(&replaced).await.unwrap();
    assert_eq!(
        cp.get_latest(&thread).await.unwrap().unwrap().state,
        json!({"replaced": true})
    );
    assert_eq!(
        cp.list(&thread, &ListOptions::default())
            .await
            .unwrap()
            .len(),
        10
    );

    // prune keeps the newest N, never another thread
    assert_eq!(cp.prune(&thread, 4).await.unwrap(), 6);
    let left: Vec<String> = cp
        .list(&thread, &ListOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.checkpoint_id)
        .collect();
    assert_eq!(
        left,
        vec![
            ids[9].clone(),
            ids[8].clone(),
            ids[7].clone(),
            ids[6].clone()
        ]
    );
    assert!(cp.get(&thread, &ids[0]).await.unwrap().is_none());
    assert_eq!(cp.prune(&thread, 10).await.unwrap(), 0);
    assert_eq!(
        cp.list(&other, &ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // concurrent writers on one thread lose nothing
    let conc = format!("{thread}-conc");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let cp = cp.clone();
        let conc = conc.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..25 {
                let c = Checkpoint::new(&conc, None, json!({"w": w, "i": i}));
                cp.put(&c).await.unwrap();
                mine.push(c.checkpoint_id);
            }
            mine
        }));
    }
    let mut written = HashSet::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    assert_eq!(written.len(), 200);
    let stored: HashSet<String> = cp
        .list(&conc, &ListOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.checkpoint_id)
        .collect();
    assert_eq!(stored, written);

    // delete a thread
    assert_eq!(cp.delete_thread(&conc).await.unwrap(), 200);
    assert!(cp.get_latest(&conc).await.unwrap().is_none());
    assert_eq!(cp.delete_thread(&conc).await.unwrap(), 0);
    assert_eq!(cp.delete_thread(&thread).await.unwrap(), 4);
    assert_eq!(
        cp.list(&other, &ListOptions::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // awkward thread ids (hash-tag braces, glob chars, unicode)
    let odd = "we{ir}d*th?read:ü";
    let c = Checkpoint::new(odd, None, json!(1));
    cp.put(&c).await.unwrap();
    assert_eq!(cp.get_latest(odd).await.unwrap().unwrap(), c);
    assert_eq!(cp.delete_thread(odd).await.unwrap(), 1);

    // invalid input is an error, not a panic
    assert!(cp.put(&Checkpoint::new("", None, json!(1))).await.is_err());
    let mut bad = Checkpoint::new("t", None, json!(1));
    bad.checkpoint_id = "has space".into();
    assert!(cp.put(&bad).await.is_err());
}

async fn ttl_conformance<C: Checkpointer>(cp: C) {
    let thread = format!("ttl-{}", rand::random::<u32>());
    cp.put(&Checkpoint::new(&thread, None, json!(1)))
        .await
        .unwrap();
    assert!(cp.get_latest(&thread).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(cp.get_latest(&thread).await.unwrap().is_none());
    assert!(cp
        .list(&thread, &ListOptions::default())
        .await
        .unwrap()
        .is_empty());
}
