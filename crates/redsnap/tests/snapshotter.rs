//! The background Snapshotter and the `agent_state` example process.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::agent::{final_line, number, wait_for, wait_for_save, Agent};

use redsnap::{SaveOutcome, Snapshots, Snapshotter, SnapshotterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshotter_saves_heartbeats_and_takes_a_final_snapshot() {
    let (_s, store) = common::plain();
    let ns = common::ns("snapper");
    let snaps = Arc::new(Snapshots::<u64>::new(store.clone(), &ns));
    assert_eq!(snaps.restore().await.unwrap(), None);
    let value = Arc::new(AtomicU64::new(0));
    let v = value.clone();
    let snapper = Snapshotter::spawn(
        snaps.clone(),
        SnapshotterConfig {
            interval: Duration::from_millis(100),
            heartbeat: Some(Duration::from_millis(30)),
            ..SnapshotterConfig::default()
        },
        move || v.load(Ordering::SeqCst),
    );
    let mut events = snapper.subscribe();
    let mut saved = 0;
    let mut unchanged = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while saved < 4 || unchanged < 2 {
        assert!(
            Instant::now() < deadline,
            "saved {saved} unchanged {unchanged}"
        );
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        match ev.outcome {
            SaveOutcome::Saved { .. } => {
                saved += 1;
                // Acknowledged: latest holds at least this value now.
                let latest = snaps.latest().await.unwrap().unwrap().state;
                assert!(latest >= *ev.state);
                value.fetch_add(1, Ordering::SeqCst);
            }
            SaveOutcome::Unchanged => unchanged += 1,
            SaveOutcome::Deferred { .. } => panic!("no fallback configured"),
        }
    }
    value.store(1000, Ordering::SeqCst);
    let out = snapper.shutdown().await.unwrap();
    assert!(matches!(out, SaveOutcome::Saved { .. }), "{out:?}");
    assert_eq!(snaps.latest().await.unwrap().unwrap().state, 1000);
    assert!(!snaps.list(100).await.unwrap().is_empty());
    // Restore on boot.
    let again = Snapshots::<u64>::new(store.clone(), &ns);
    assert_eq!(again.restore().await.unwrap(), Some(1000));
}

#[test]
fn agent_example_survives_restart() {
    let s = redsnap_testsupport::RedisServer::start().unwrap();
    let ns = common::ns("agent");
    let mut a = Agent::start(&s.url(), &ns);
    assert_eq!(number(&a.next_line(), "restored "), 0);
    let mut last_saved = 0;
    let mut saves = 0;
    while saves < 3 {
        let line = a.next_line();
        if line.starts_with("saved ") {
            let n = number(&line, "saved ");
            assert!(n >= last_saved);
            last_saved = n;
            saves += 1;
        }
    }
    let status = a.terminate();
    assert!(status.success(), "{status:?}");
    // Drain: the final snapshot line.
    let mut fin = None;
    while let Ok(line) = a.lines.recv_timeout(Duration::from_secs(2)) {
        if line.starts_with("final ") {
            fin = Some(number(&line, "final "));
        }
    }
    let fin = fin.expect("final line");
    assert!(fin >= last_saved);
    drop(a);

    let b = Agent::start(&s.url(), &ns);
    assert_eq!(number(&b.next_line(), "restored "), fin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_example_rides_out_a_redis_outage() {
    let mut s = redsnap_testsupport::RedisServer::start().unwrap();
    let url = s.url();
    let ns = common::ns("outage");
    let fb = tempfile::tempdir().unwrap();
    let fb_path = fb.path().to_str().unwrap().to_string();
    let env = [
        ("AGENT_FALLBACK_DIR", fb_path.as_str()),
        ("MEMORY_MAX_RECONNECT_ATTEMPTS", "1"),
    ];
    let mut a = Agent::start_with(&url, &ns, &env);
    assert_eq!(number(&a.next_line(), "restored "), 0);
    wait_for(&a, "saved ");
    wait_for(&a, "saved ");

    // Outage: saves go to the local fallback.
    s.stop();
    wait_for_save(&a, "saved ", true);
    assert!(a.terminate().success());
    let n1 = final_line(&a);
    drop(a);

    // Redeploy while Redis is still down: restored from the fallback.
    let mut b = Agent::start_with(&url, &ns, &env);
    assert_eq!(number(&b.next_line(), "restored "), n1);

    // Redis returns (empty): the queue is replayed and saving resumes.
    s.restart().unwrap();
    let saved = wait_for(&b, "saved ");
    assert!(saved > n1);
    assert!(b.terminate().success());
    let n2 = final_line(&b);
    drop(b);

    let store = redsnap::RedisStore::open(&url).unwrap();
    let snaps = Snapshots::<serde_json::Value>::new(store, &ns);
    assert_eq!(snaps.latest().await.unwrap().unwrap().state["n"], n2);
    // Saves made during the outage reached Redis: the local queue is empty
    // (snapshots are per second, so same-second saves share a key).
    assert!(!snaps.list(1000).await.unwrap().is_empty());
    let pending: Vec<_> = std::fs::read_dir(fb.path())
        .unwrap()
        .flatten()
        .flat_map(|ns_dir| {
            std::fs::read_dir(ns_dir.path().join("pending"))
                .unwrap()
                .flatten()
        })
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
}

/// Issue 11 item 10: with the store's default reconnect settings, saves made
/// while Redis is down keep the snapshot interval (200 ms here) instead of
/// each waiting through the reconnect schedule.
#[test]
fn agent_example_keeps_its_interval_during_an_outage() {
    let mut s = redsnap_testsupport::RedisServer::start().unwrap();
    let ns = common::ns("interval");
    let fb = tempfile::tempdir().unwrap();
    let fb_path = fb.path().to_str().unwrap().to_string();
    let a = Agent::start_with(&s.url(), &ns, &[("AGENT_FALLBACK_DIR", fb_path.as_str())]);
    assert_eq!(number(&a.next_line(), "restored "), 0);
    wait_for(&a, "saved ");
    wait_for(&a, "saved ");

    s.stop();
    let window = Duration::from_secs(6);
    let stopped = Instant::now();
    let mut deferred = 0u32;
    while let Some(left) = window.checked_sub(stopped.elapsed()) {
        match a.lines.recv_timeout(left) {
            Ok(line) if line.ends_with("(local fallback)") => deferred += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // 30 intervals; a save that waited through the reconnect schedule
    // (about 4 s by default) would leave only a few.
    assert!(
        deferred >= 10,
        "{deferred} saves to the fallback in a {window:?} outage at a 200 ms interval"
    );
    s.restart().unwrap();
    wait_for(&a, "saved ");
}
