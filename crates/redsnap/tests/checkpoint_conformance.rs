//! One conformance suite for every Checkpointer implementation.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redsnap::{
    new_checkpoint_id, Checkpoint, Checkpointer, ListOptions, MemoryCheckpointer, RedisCheckpointer,
};
use serde_json::json;

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

#[tokio::test]
async fn memory_checkpointer_conforms() {
    conformance(Arc::new(MemoryCheckpointer::new())).await;
    ttl_conformance(MemoryCheckpointer::new().with_ttl(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_checkpointer_conforms() {
    let (_s, store) = common::plain();
    conformance(Arc::new(RedisCheckpointer::new(store.clone(), "cp"))).await;
    ttl_conformance(
        RedisCheckpointer::new(store.clone(), "cpttl").with_ttl(Duration::from_secs(2)),
    )
    .await;

    // TTL really set on both keys; compression really compresses.
    let cp = RedisCheckpointer::new(store.clone(), "cpx").with_ttl(Duration::from_secs(600));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_checkpointer_conforms_on_cluster() {
    let (_c, store) = common::cluster();
    conformance(Arc::new(RedisCheckpointer::new(store.clone(), "cp"))).await;
}

/// The conformance suite against a `redsnap serve` process (the
/// "redsnap-embedded" implementation is `RedisCheckpointer` pointed at it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_checkpointer_conforms_on_redsnap_server() {
    let s = redsnap_testsupport::RedsnapServer::start().expect("redsnap serve");
    let store =
        redsnap::RedisStore::new(common::quick(redsnap::RedisConfig::new(&s.url()).unwrap()))
            .unwrap();
    conformance(Arc::new(RedisCheckpointer::new(store.clone(), "cp"))).await;
    ttl_conformance(RedisCheckpointer::new(store, "cpttl").with_ttl(Duration::from_secs(2))).await;
}
