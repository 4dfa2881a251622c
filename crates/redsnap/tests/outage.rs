//! Issue 6 under a real outage: a redis-server stopped for more than 5 s
//! while the service keeps saving, a process restart in the middle of it,
//! health transitions and the circuit breaker's states. Issue 11 item 10:
//! heartbeats made during an outage reach Redis, replay never replaces a
//! newer `latest` written by another instance, and saves keep their interval
//! while Redis is unreachable (a client partitioned by a proxy).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use redsnap::{
    BreakerState, ConnectionState, RedisConfig, RedisStore, SaveOutcome, Snapshots, Snapshotter,
    SnapshotterConfig,
};
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

fn now_ms() -> u64 {
    redsnap::keys::now_millis()
}

/// `latest:at` as stored in Redis.
async fn latest_at(store: &RedisStore, s: &Snapshots<Vec<u64>>) -> u64 {
    store
        .query::<u64>(redis::cmd("GET").arg(s.latest_at_key()))
        .await
        .unwrap()
}

/// Wait until the proxied handle has replayed its whole queue, saving
/// (or, with `heartbeat`, heartbeating) `state`: the state it queued last,
/// so that the save itself is skipped as unchanged and only the replay
/// writes.
async fn drain_replay_with(s: &Snapshots<Vec<u64>>, state: &Vec<u64>, heartbeat: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = if heartbeat {
            s.heartbeat(state).await.unwrap()
        } else {
            s.save(state).await.unwrap()
        };
        assert!(
            !matches!(out, SaveOutcome::Saved { .. }),
            "the queued state was saved again instead of replayed: {out:?}"
        );
        if s.fallback_depth() == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "queue never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drain_replay(s: &Snapshots<Vec<u64>>, state: &Vec<u64>) {
    drain_replay_with(s, state, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_during_an_outage_reaches_redis_when_it_returns() {
    let fb = tempfile::tempdir().unwrap();
    let server = RedisServer::start().unwrap();
    let proxy = Proxy::start(server.port()).unwrap();
    let direct = common::outage_store(server.port());
    let ns = common::ns("hb-outage");
    let s = snaps(common::outage_store(proxy.port()), &ns, fb.path());
    assert!(matches!(
        s.save(&vec![1]).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));

    proxy.set_mode(Mode::Blackhole);
    let before = now_ms();
    // The heartbeat changes `latest` while Redis is unreachable.
    assert!(matches!(
        s.heartbeat(&vec![2]).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    let after = now_ms();
    assert_eq!(s.fallback_depth(), 1, "the heartbeat is queued for replay");
    // Read locally meanwhile.
    assert_eq!(s.latest().await.unwrap().unwrap().state, vec![2]);

    proxy.set_mode(Mode::Forward);
    // Saving the same state again is not a new write: only the replay writes.
    drain_replay(&s, &vec![2]).await;
    let reader = Snapshots::<Vec<u64>>::new(direct.clone(), &ns);
    assert_eq!(reader.latest().await.unwrap().unwrap().state, vec![2]);
    let at = latest_at(&direct, &s).await;
    assert!(
        (before..=after).contains(&at),
        "latest:at keeps the heartbeat's own time: {before} <= {at} <= {after}"
    );
    // A heartbeat is no history entry.
    assert_eq!(reader.list(10).await.unwrap().len(), 1);
    // Redis has it now: the same state is unchanged, a new one is saved.
    assert_eq!(s.save(&vec![2]).await.unwrap(), SaveOutcome::Unchanged);
    assert!(matches!(
        s.save(&vec![3]).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    assert_eq!(reader.latest().await.unwrap().unwrap().state, vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_partitioned_instance_never_replaces_a_newer_latest() {
    let fb_a = tempfile::tempdir().unwrap();
    let server = RedisServer::start().unwrap();
    let proxy = Proxy::start(server.port()).unwrap();
    let ns = common::ns("two-instances");
    let direct = common::outage_store(server.port());
    // Instance A reaches Redis through the proxy; instance B directly.
    let a = snaps(common::outage_store(proxy.port()), &ns, fb_a.path());
    let b = Snapshots::<Vec<u64>>::new(direct.clone(), &ns);
    let base = redsnap::keys::now_secs() - 100;
    assert!(matches!(
        a.save_at(&vec![0], base).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));

    // A is partitioned and saves S1 at t1 (and heartbeats S1b after it).
    proxy.set_mode(Mode::Blackhole);
    let s1 = vec![1];
    assert_eq!(
        a.save_at(&s1, base + 1).await.unwrap(),
        SaveOutcome::Deferred { epoch: base + 1 }
    );
    let s1b = vec![11];
    assert!(matches!(
        a.heartbeat(&s1b).await.unwrap(),
        SaveOutcome::Deferred { .. }
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // B saves S2 at t2 > t1 while A is partitioned.
    let t2_before = now_ms();
    assert!(matches!(
        b.save_at(&vec![2], base + 2).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    let b_at = latest_at(&direct, &b).await;
    assert!(b_at >= t2_before);

    // A comes back and replays.
    proxy.set_mode(Mode::Forward);
    // (Heartbeating the queued state: it replays, and must not touch B's
    // `latest:at` either.)
    drain_replay_with(&a, &s1b, true).await;
    let latest = b.latest().await.unwrap().unwrap();
    assert_eq!(latest.state, vec![2], "B's newer latest stays");
    assert_eq!(latest.written_at_ms, Some(b_at), "latest:at stays B's");
    // S1 is in history (with a TTL counted from its epoch), next to S2.
    let listed = b.list(10).await.unwrap();
    assert!(listed.contains(&(base + 1)), "{listed:?}");
    assert!(listed.contains(&(base + 2)), "{listed:?}");
    assert_eq!(b.get(base + 1).await.unwrap(), Some(s1.clone()));
    let ttl: i64 = direct
        .query(redis::cmd("TTL").arg(b.snapshot_key(base + 1)))
        .await
        .unwrap();
    assert!(ttl > 86_000 && ttl < 86_400 - 90, "{ttl}");

    // Second partition: B writes S4, then A saves S5 later (t5 > t4). A's
    // replay now carries the newest state: it replaces `latest`, and
    // `latest:at` keeps A's own save time, not the replay's.
    proxy.set_mode(Mode::Blackhole);
    assert!(matches!(
        b.save_at(&vec![4], base + 4).await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t5_before = now_ms();
    assert_eq!(
        a.save_at(&vec![5], base + 5).await.unwrap(),
        SaveOutcome::Deferred { epoch: base + 5 }
    );
    let t5_after = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.set_mode(Mode::Forward);
    drain_replay(&a, &vec![5]).await;
    let latest = b.latest().await.unwrap().unwrap();
    assert_eq!(latest.state, vec![5]);
    let at = latest.written_at_ms.unwrap();
    assert!(
        (t5_before..=t5_after).contains(&at),
        "{t5_before} <= {at} <= {t5_after}"
    );
    assert_eq!(b.get(base + 4).await.unwrap(), Some(vec![4]));
    assert_eq!(b.get(base + 5).await.unwrap(), Some(vec![5]));
}

/// The next save event within `limit`.
async fn next<T>(
    events: &mut tokio::sync::broadcast::Receiver<redsnap::SaveEvent<T>>,
    limit: Duration,
) -> Option<redsnap::SaveEvent<T>> {
    match tokio::time::timeout(limit, events.recv()).await {
        Ok(Ok(ev)) => Some(ev),
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => None,
    }
}

/// A store as configured by default but with shorter timeouts (1 s to
/// connect, 2 s for a response; default 2 s and 5 s): 10 reconnect attempts
/// with backoff, so that sitting through the reconnect schedule against a
/// partitioned server costs about 14 s.
fn slow_failing_store(port: u16) -> RedisStore {
    RedisStore::new(
        RedisConfig::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(2))
            .max_reconnect_attempts(10)
            .operation_timeout(Duration::from_secs(30)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_keep_their_interval_while_redis_is_unreachable() {
    let fb = tempfile::tempdir().unwrap();
    let server = RedisServer::start().unwrap();
    let proxy = Proxy::start(server.port()).unwrap();
    let s = Snapshots::<u64>::new(slow_failing_store(proxy.port()), &common::ns("interval"))
        .with_fallback(fb.path())
        .unwrap()
        .with_breaker(2, Duration::from_millis(300));
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let interval = Duration::from_millis(200);
    let snapshotter = Snapshotter::spawn(
        Arc::new(s),
        SnapshotterConfig {
            interval,
            heartbeat: None,
            retention: None,
            ..SnapshotterConfig::default()
        },
        // A new state on every tick, so that no save is skipped.
        move || c.fetch_add(1, Ordering::SeqCst),
    );
    let mut events = snapshotter.subscribe();
    let ev = next(&mut events, Duration::from_secs(20)).await.unwrap();
    assert!(
        matches!(ev.outcome, SaveOutcome::Saved { .. }),
        "{:?}",
        ev.outcome
    );

    proxy.set_mode(Mode::Blackhole);
    // Count the saves made during an 8 s partition (40 intervals). The save
    // that finds Redis unreachable waits for at most one connection attempt
    // and one response (3 s); every later one goes straight to the fallback.
    let window = Duration::from_secs(8);
    let start = Instant::now();
    let mut deferred = 0u32;
    while let Some(left) = window.checked_sub(start.elapsed()) {
        match next(&mut events, left).await {
            // (A save under way when the partition began may still land.)
            Some(ev) => deferred += matches!(ev.outcome, SaveOutcome::Deferred { .. }) as u32,
            None => break,
        }
    }
    let expected = (window.as_millis() / interval.as_millis()) as u32;
    eprintln!("{deferred} saves to the fallback in {window:?} (interval {interval:?})");
    assert!(
        deferred >= 15,
        "{deferred} saves in a {window:?} outage at a {interval:?} interval (expected about {expected})"
    );

    // Redis reachable again: the queue drains and saves reach Redis.
    proxy.set_mode(Mode::Forward);
    loop {
        let ev = next(&mut events, Duration::from_secs(30))
            .await
            .expect("no save reached Redis after the partition");
        if matches!(ev.outcome, SaveOutcome::Saved { .. }) {
            break;
        }
    }
    assert!(matches!(
        snapshotter.shutdown().await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_booted_during_a_partition_keeps_its_interval() {
    let fb = tempfile::tempdir().unwrap();
    let server = RedisServer::start().unwrap();
    let proxy = Proxy::start(server.port()).unwrap();
    proxy.set_mode(Mode::Blackhole);
    // A fresh store (never connected) whose connection attempts hang: its
    // first connection would sit through 10 attempts, about 14 s.
    let s = Snapshots::<u64>::new(slow_failing_store(proxy.port()), &common::ns("boot"))
        .with_fallback(fb.path())
        .unwrap()
        .with_breaker(2, Duration::from_millis(300));
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let interval = Duration::from_millis(200);
    let snapshotter = Snapshotter::spawn(
        Arc::new(s),
        SnapshotterConfig {
            interval,
            heartbeat: None,
            retention: None,
            ..SnapshotterConfig::default()
        },
        move || c.fetch_add(1, Ordering::SeqCst),
    );
    let mut events = snapshotter.subscribe();
    // 8 s (40 intervals): the first save waits for at most one connection
    // attempt and one response (3 s), the later ones go to the fallback.
    let window = Duration::from_secs(8);
    let start = Instant::now();
    let mut deferred = 0u32;
    while let Some(left) = window.checked_sub(start.elapsed()) {
        match next(&mut events, left).await {
            Some(ev) => {
                assert!(
                    matches!(ev.outcome, SaveOutcome::Deferred { .. }),
                    "{:?}",
                    ev.outcome
                );
                deferred += 1;
            }
            None => break,
        }
    }
    eprintln!("{deferred} saves to the fallback in {window:?} after booting");
    assert!(
        deferred >= 15,
        "{deferred} saves in the first {window:?} of a partition at a {interval:?} interval"
    );
    proxy.set_mode(Mode::Forward);
    loop {
        let ev = next(&mut events, Duration::from_secs(30))
            .await
            .expect("no save reached Redis after the partition");
        if matches!(ev.outcome, SaveOutcome::Saved { .. }) {
            break;
        }
    }
    assert!(matches!(
        snapshotter.shutdown().await.unwrap(),
        SaveOutcome::Saved { .. }
    ));
}
