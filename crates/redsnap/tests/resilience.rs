//! Local durable fallback and circuit breaker during a Redis outage.

mod common;

use std::time::{Duration, Instant};

use redsnap::{BreakerState, SaveOutcome, Snapshots};
use redsnap_testsupport::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_goes_to_fallback_and_is_replayed() {
    let fb_dir = tempfile::tempdir().unwrap();
    let mut s = RedisServer::start().unwrap();
    let store = common::outage_store(s.port());
    let ns = common::ns("resilient");
    let snaps = Snapshots::<u64>::new(store.clone(), &ns)
        .with_fallback(fb_dir.path())
        .unwrap()
        .with_breaker(2, Duration::from_millis(500));
    let base = redsnap::keys::now_secs() - 50;
    assert!(matches!(
        snaps.save_at(&1, base).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));

    // Outage.
    s.stop();
    let t = Instant::now();
    assert_eq!(
        snaps.save_at(&2, base + 1).await.unwrap(),
        SaveOutcome::Deferred { epoch: base + 1 }
    );
    assert_eq!(
        snaps.save_at(&3, base + 2).await.unwrap(),
        SaveOutcome::Deferred { epoch: base + 2 }
    );
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    // The second failure (a background probe started by the second save)
    // opens the breaker.
    let deadline = Instant::now() + Duration::from_secs(20);
    while snaps.breaker_state() != BreakerState::Open {
        assert!(Instant::now() < deadline, "breaker never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Breaker open: no waiting on Redis at all.
    let t = Instant::now();
    assert_eq!(
        snaps.save_at(&4, base + 3).await.unwrap(),
        SaveOutcome::Deferred { epoch: base + 3 }
    );
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(snaps.fallback_depth(), 3);
    // Reads are served locally.
    assert_eq!(snaps.latest().await.unwrap().unwrap().state, 4);
    let m = snaps.metrics();
    assert_eq!(m.deferred, 3);
    assert_eq!(m.fallback_depth, 3);

    // A restart of the process during the outage restores from the fallback.
    let reborn = Snapshots::<u64>::new(common::outage_store(s.port()), &ns)
        .with_fallback(fb_dir.path())
        .unwrap()
        .with_breaker(1, Duration::from_millis(500));
    assert_eq!(reborn.restore().await.unwrap(), Some(4));
    drop(reborn);

    // Redis returns (empty: the test server has no persistence). The next
    // save replays the queue first, oldest first.
    s.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // breaker cool-down
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut outcomes = Vec::new();
    loop {
        // The first probe may still see the old broken connection and
        // defer; a later save (even of the same state) replays the queue.
        outcomes.push(snaps.save_at(&5, base + 4).await.unwrap());
        if snaps.fallback_depth() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still {outcomes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(snaps.fallback_depth(), 0);
    assert_eq!(snaps.breaker_state(), BreakerState::Closed);
    let listed = snaps.list(10).await.unwrap();
    assert_eq!(&listed[listed.len() - 3..], &[base + 3, base + 2, base + 1]);
    assert!(listed.len() == 3 || listed[0] == base + 4, "{listed:?}");
    assert_eq!(snaps.get(base + 2).await.unwrap(), Some(3));
    let ttl: i64 = store
        .query(redis::cmd("TTL").arg(snaps.snapshot_key(base + 1)))
        .await
        .unwrap();
    assert!(
        ttl > 86_000 && ttl < 86_400 - 40,
        "replayed TTL counts from the epoch: {ttl}"
    );
    assert_eq!(snaps.latest().await.unwrap().unwrap().state, 5);
}

#[tokio::test]
async fn without_fallback_an_outage_is_an_error() {
    let mut s = RedisServer::start().unwrap();
    let snaps = Snapshots::<u64>::new(common::outage_store(s.port()), &common::ns("nofb"));
    snaps.save(&1).await.unwrap();
    s.stop();
    let err = snaps.save(&2).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(snaps.metrics().failures, 1);
}
