//! Issue 6 under a real outage: a redis-server stopped for more than 5 s
//! while the service keeps saving, a process restart in the middle of it,
//! health transitions and the circuit breaker's states.

mod common;

use std::time::{Duration, Instant};

use redsnap::{BreakerState, ConnectionState, RedisStore, SaveOutcome, Snapshots};
use redsnap_testsupport::RedisServer;

fn snaps(store: RedisStore, ns: &str, dir: &std::path::Path) -> Snapshots<Vec<u64>> {
    Snapshots::new(store, ns)
        .with_fallback(dir)
        .unwrap()
        .with_breaker(2, Duration::from_millis(400))
}

/// Save until the fallback queue is empty (the first probe after Redis
/// returns may still hit the dead connection and defer again).
async fn drain(s: &Snapshots<Vec<u64>>, state: &Vec<u64>, epoch: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = s.save_at(state, epoch).await.unwrap();
        if s.fallback_depth() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue never drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_long_outage_and_a_restart_all_reach_redis() {
    let fb = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    let ns = common::ns("long-outage");
    let base = redsnap::keys::now_secs() - 100;
    let first = snaps(common::outage_store(port), &ns, fb.path());
    assert!(matches!(
        first.save_at(&vec![0], base).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));

    server.stop();
    let outage = Instant::now();
    // Process 1 saves epochs 1..=10 during the outage, one every 250 ms.
    let mut epoch = 0u64;
    for _ in 0..10 {
        epoch += 1;
        let out = first.save_at(&vec![epoch], base + epoch).await.unwrap();
        assert_eq!(
            out,
            SaveOutcome::Deferred {
                epoch: base + epoch
            }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(first.fallback_depth(), 10);
    // "Process restart" in the middle of the outage: drop everything and
    // build a new store and handle over the same fallback directory.
    drop(first);
    let second = snaps(common::outage_store(port), &ns, fb.path());
    assert_eq!(second.fallback_depth(), 10);
    assert_eq!(second.restore().await.unwrap(), Some(vec![10]));
    // The new process goes on saving (restore remembered [10]: unchanged).
    assert_eq!(
        second.save_at(&vec![10], base + 10).await.unwrap(),
        SaveOutcome::Unchanged
    );
    while outage.elapsed() < Duration::from_millis(5_500) {
        epoch += 1;
        let out = second.save_at(&vec![epoch], base + epoch).await.unwrap();
        assert_eq!(
            out,
            SaveOutcome::Deferred {
                epoch: base + epoch
            }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = epoch;
    assert!(
        last > 12,
        "the second process saved during the outage too: {last}"
    );
    assert_eq!(second.fallback_depth() as u64, last);
    assert!(outage.elapsed() >= Duration::from_secs(5));

    // Redis returns, empty (the harness runs it without persistence).
    server.restart().unwrap();
    drain(&second, &vec![last], base + last).await;
    let m = second.metrics();
    assert_eq!(m.fallback_depth, 0);
    assert_eq!(second.breaker_state(), BreakerState::Closed);

    // Every write made during the outage, by both processes, is in Redis.
    let check = Snapshots::<Vec<u64>>::new(common::outage_store(port), &ns);
    let listed = check.list(1000).await.unwrap();
    for e in 1..=last {
        assert!(
            listed.contains(&(base + e)),
            "epoch {e} missing: {listed:?}"
        );
        assert_eq!(check.get(base + e).await.unwrap(), Some(vec![e]), "{e}");
    }
    assert_eq!(check.latest().await.unwrap().unwrap().state, vec![last]);
    // Nothing left in the local journal.
    let pending = std::fs::read_dir(fb.path())
        .unwrap()
        .flatten()
        .flat_map(|d| {
            std::fs::read_dir(d.path().join("pending"))
                .unwrap()
                .flatten()
        })
        .count();
    assert_eq!(pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_goes_unhealthy_and_back_with_reconnect_attempts_counting() {
    let mut server = RedisServer::start().unwrap();
    let store = common::outage_store(server.port());
    assert_eq!(store.connection_state(), ConnectionState::Idle);
    let h = store.health().await;
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.connection_state, ConnectionState::Connected);
    assert_eq!(h.reconnect_attempts, 0);
    assert!(h.latency_ms.is_some());

    server.stop();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let h = store.health().await;
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(!h.healthy, "{h:?}");
        assert_ne!(h.connection_state, ConnectionState::Connected);
        assert_eq!(h.latency_ms, None);
        seen.push(h.reconnect_attempts);
    }
    assert!(
        seen[0] >= 1 && seen.windows(2).all(|w| w[1] > w[0]),
        "{seen:?}"
    );
    let json = serde_json::to_value(store.health().await).unwrap();
    assert_eq!(json["healthy"], false);
    assert!(json["reconnectAttempts"].as_u64().unwrap() > seen[2]);
    assert!(json["connectionState"] == "reconnecting" || json["connectionState"] == "error");

    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let h = loop {
        let h = store.health().await;
        if h.healthy {
            break h;
        }
        assert!(Instant::now() < deadline, "never healthy again: {h:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h.reconnect_attempts, 0);
    assert_eq!(h.connection_state, ConnectionState::Connected);
    let text = store.metrics().encode();
    assert!(metric_value(&text, "redsnap_reconnects_total") >= 1.0);
    assert!(metric_value(&text, "redsnap_reconnect_attempts_total") >= 4.0);
    assert_eq!(metric_value(&text, "redsnap_connection_up"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_half_opens_and_closes_as_configured() {
    let fb = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start().unwrap();
    let cooldown = Duration::from_millis(800);
    let s = Snapshots::<Vec<u64>>::new(common::outage_store(server.port()), &common::ns("breaker"))
        .with_fallback(fb.path())
        .unwrap()
        .with_breaker(3, cooldown);
    s.save(&vec![0]).await.unwrap();
    assert_eq!(s.breaker_state(), BreakerState::Closed);

    server.stop();
    // The save that finds Redis down fails once (the breaker stays closed);
    // later saves go straight to the fallback while background probes keep
    // failing, and the third failure opens the breaker.
    assert!(matches!(
        s.save(&vec![1]).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    assert_eq!(s.breaker_state(), BreakerState::Closed, "after 1 failure");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 2;
    while s.breaker_state() != BreakerState::Open {
        assert!(Instant::now() < deadline, "breaker never opened");
        assert!(matches!(
            s.save(&vec![i]).await.unwrap(),
            SaveOutcome::Deferred { .. }
        ));
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = Instant::now();
    // Open: saves skip Redis entirely.
    assert!(matches!(
        s.save(&vec![1_000_000]).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    assert_eq!(s.breaker_state(), BreakerState::Open);
    // After the cool-down: half-open.
    tokio::time::sleep(cooldown.saturating_sub(opened.elapsed()) + Duration::from_millis(50)).await;
    assert_eq!(s.breaker_state(), BreakerState::HalfOpen);
    // The save goes to the fallback at once and a background probe fails
    // (Redis still down): open again for another cool-down.
    assert!(matches!(
        s.save(&vec![1_000_001]).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.breaker_state() != BreakerState::Open {
        assert!(Instant::now() < deadline, "failed probe did not reopen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = s_metrics_text(&s);
    let series = format!("redsnap_breaker_state{{namespace=\"{}\"}}", s.namespace());
    assert_eq!(metric_value(&text, &series), 2.0, "{text}");

    server.restart().unwrap();
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert_eq!(s.breaker_state(), BreakerState::HalfOpen);
    // Probes until one reaches Redis: the breaker closes and the queue drains.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 6;
    while s.breaker_state() != BreakerState::Closed || s.fallback_depth() > 0 {
        assert!(Instant::now() < deadline, "breaker never closed");
        let _ = s.save(&vec![n]).await.unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        s.save(&vec![1000]).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
}

fn s_metrics_text(s: &Snapshots<Vec<u64>>) -> String {
    // The handle registers with its store's metrics.
    s.store().metrics().encode()
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing in {text}"))
        .trim()
        .parse()
        .unwrap()
}
