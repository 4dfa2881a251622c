//! `Durable`: a keyspace's persistence as one value (the library's in-process
//! backend drives it): open and recover, stage and write batches, snapshot
//! triggers, background and foreground snapshots, the lock.

mod common;

use common::durable::{get, run};
use redsnap_engine::Store;
use redsnap_persist::{Durable, DurableConfig, FsyncPolicy, PersistError};
use std::sync::mpsc;
use std::time::Duration;

fn quiet(dir: &std::path::Path) -> DurableConfig {
    DurableConfig {
        save_points: Vec::new(),
        snapshot_interval_secs: 0,
        ..DurableConfig::new(dir)
    }
}

#[test]
fn writes_survive_a_reopen_from_the_log_alone_and_from_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DurableConfig {
        appendfsync: FsyncPolicy::Always,
        ..quiet(tmp.path())
    };
    {
        let mut store = Store::default();
        let mut d = Durable::open(cfg.clone(), &mut store).unwrap();
        assert!(store.log_enabled);
        run(&mut store, &mut d, &["SET", "a", "1"]);
        run(&mut store, &mut d, &["SET", "b", "2", "EX", "600"]);
        // Dropped without a snapshot: the log holds everything.
    }
    let mut store = Store::default();
    let mut d = Durable::open(cfg.clone(), &mut store).unwrap();
    assert_eq!(d.recovery().log_records, 2);
    assert_eq!(get(&mut store, "a").as_deref(), Some(&b"1"[..]));
    run(&mut store, &mut d, &["SET", "a", "3"]);
    // A foreground snapshot (the final one of a shutdown).
    let job = d.prepare_save(&mut store).unwrap();
    let dirty = job.dirty();
    assert_eq!(dirty, 1);
    let info = job.run().unwrap();
    d.finish(&mut store, dirty, Ok(&info));
    assert_eq!(store.effects.dirty, 0);
    d.close().unwrap();
    drop(d);
    let mut store = Store::default();
    let d = Durable::open(cfg, &mut store).unwrap();
    assert_eq!(d.recovery().snapshot_keys, 2);
    assert_eq!(d.recovery().log_records, 0);
    assert_eq!(get(&mut store, "a").as_deref(), Some(&b"3"[..]));
    assert!(get(&mut store, "b").is_some());
}

#[test]
fn the_directory_is_locked_while_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::default();
    let d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
    let mut other = Store::default();
    match Durable::open(quiet(tmp.path()), &mut other) {
        Err(e @ PersistError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("is in use by pid {}", std::process::id())),
                "{msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(d);
    Durable::open(quiet(tmp.path()), &mut other).unwrap();
}

#[test]
fn save_points_and_the_interval_decide_when_a_snapshot_is_due() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DurableConfig {
        save_points: vec![(60, 3)],
        snapshot_interval_secs: 120,
        ..DurableConfig::new(tmp.path())
    };
    let mut store = Store::default();
    let d = Durable::open(cfg, &mut store).unwrap();
    let now = redsnap_engine::now_ms();
    // Fresh: nothing is due, however dirty, before the save point's seconds.
    assert_eq!(d.due(10, now), None);
    assert_eq!(d.due(2, now + 61_000), None);
    assert!(d
        .due(3, now + 61_000)
        .unwrap()
        .contains("3 changes in 60 seconds"));
    assert!(d
        .due(1, now + 121_000)
        .unwrap()
        .contains("snapshot-interval"));
    assert_eq!(d.due(0, now + 121_000), None);
}

#[test]
fn a_background_snapshot_compacts_the_log_and_resets_dirty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::default();
    let mut d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
    for i in 0..10 {
        run(&mut store, &mut d, &["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(store.effects.dirty, 10);
    let (tx, rx) = mpsc::channel();
    d.start_snapshot(&mut store, move |res| {
        tx.send(res).unwrap();
    })
    .unwrap();
    // Writes go on while it runs, into the next generation.
    run(&mut store, &mut d, &["SET", "later", "v"]);
    let res = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let info = res.as_ref().unwrap();
    assert_eq!(info.keys, 10);
    let at_start = d.dirty_at_start();
    d.finish(&mut store, at_start, res.as_ref().map_err(String::as_str));
    assert_eq!(store.effects.dirty, 1, "the write made during the snapshot");
    assert!(d.last_snapshot_ok());
    // As a shutdown does: wait until the snapshot no longer counts as in progress;
    // its thread has let go of the directory by then, so it reopens at once.
    while d.snapshots().in_progress() {
        std::thread::sleep(Duration::from_millis(1));
    }
    d.close().unwrap();
    drop(d);
    let mut store = Store::default();
    let d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
    assert_eq!(d.recovery().snapshot_keys, 10);
    assert_eq!(d.recovery().log_records, 1);
    assert_eq!(store.total_keys(), 11);
}

#[test]
fn without_the_append_log_only_snapshots_persist() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DurableConfig {
        appendonly: false,
        ..quiet(tmp.path())
    };
    {
        let mut store = Store::default();
        let mut d = Durable::open(cfg.clone(), &mut store).unwrap();
        assert!(d.log().is_none() && !store.log_enabled);
        run(&mut store, &mut d, &["SET", "a", "1"]);
    }
    let mut store = Store::default();
    let mut d = Durable::open(cfg.clone(), &mut store).unwrap();
    assert_eq!(store.total_keys(), 0, "no log, no snapshot: nothing");
    run(&mut store, &mut d, &["SET", "a", "1"]);
    let job = d.prepare_save(&mut store).unwrap();
    job.run().unwrap();
    drop(d);
    let mut store = Store::default();
    Durable::open(cfg, &mut store).unwrap();
    assert_eq!(store.total_keys(), 1);
}
