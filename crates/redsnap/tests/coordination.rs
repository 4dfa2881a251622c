//! Lock and pub/sub notifications on a plain server and a cluster.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redsnap::{Lock, RedisStore, Snapshots};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_watch_on_plain_server() {
    let (_s, store) = common::plain();
    lock_suite(&store).await;
    watch_suite(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_watch_on_cluster() {
    let (_c, store) = common::cluster();
    lock_suite(&store).await;
    watch_suite(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_a_server_restart() {
    let (mut s, store) = common::plain();
    let mut w = store.watch("chan").await.unwrap();
    s.stop();
    s.restart().unwrap();
    // Publish until the resubscribed watcher sees a message.
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let _ = store.publish("chan", b"hello").await;
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), w.recv()).await {
                return m;
            }
        }
    })
    .await
    .expect("watch resubscribed");
    assert_eq!(got, b"hello");
}
