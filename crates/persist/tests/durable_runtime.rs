//! `Durable` as `redsnap serve` drives it at runtime: settings changed live
//! (`set_config`), persistence turned on in a running process (`attach`), the append
//! log started and stopped (`start_log`, `stop_log`), and the shutdown rules.

mod common;

use common::durable::{get, run};
use redsnap_engine::Store;
use redsnap_persist::durable::final_snapshot_outcome;
use redsnap_persist::{Durable, DurableConfig};

/// No triggers and no log: snapshots only when asked.
fn quiet(dir: &std::path::Path) -> DurableConfig {
    DurableConfig {
        appendonly: false,
        save_points: Vec::new(),
        snapshot_interval_secs: 0,
        ..DurableConfig::new(dir)
    }
}

fn save(store: &mut Store, d: &mut Durable) {
    let job = d.prepare_save(store).unwrap();
    let dirty = job.dirty();
    let res = job.run();
    d.finish(store, dirty, res.as_ref().map_err(String::as_str));
    res.unwrap();
}

#[test]
fn set_config_changes_the_triggers_live() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::default();
    let mut d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
    run(&mut store, &mut d, &["SET", "a", "1"]);
    let now = redsnap_engine::now_ms();
    assert_eq!(d.due(store.effects.dirty, now), None);
    d.set_config(DurableConfig {
        save_points: vec![(0, 1)],
        ..quiet(tmp.path())
    });
    assert_eq!(
        d.due(store.effects.dirty, now).as_deref(),
        Some("1 changes in 0 seconds")
    );
    // MISCONF follows stop-writes-on-bgsave-error only with a trigger configured.
    assert_eq!(d.write_refusal(), None);
}

#[test]
fn a_log_started_at_runtime_counts_once_its_first_snapshot_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut store = Store::default();
        let mut d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
        assert!(d.log().is_none());
        run(&mut store, &mut d, &["SET", "before", "1"]);
        d.start_log().unwrap();
        store.log_enabled = true;
        assert!(d.log_pending());
        // The snapshot that starts the log is due at once, and forced at shutdown.
        let now = redsnap_engine::now_ms();
        assert_eq!(
            d.due(store.effects.dirty, now).as_deref(),
            Some("the append log was turned on")
        );
        assert!(d.save_at_shutdown(Some(false)));
        run(&mut store, &mut d, &["SET", "during", "2"]);
        save(&mut store, &mut d);
        assert!(!d.log_pending());
        assert!(!d.save_at_shutdown(Some(false)));
        assert_eq!(d.due(store.effects.dirty, now), None);
        run(&mut store, &mut d, &["SET", "after", "3"]);
        d.close().unwrap();
    }
    // The log now counts: the write after the snapshot is recovered from it.
    let mut store = Store::default();
    let _d = Durable::open(
        DurableConfig {
            appendonly: true,
            ..quiet(tmp.path())
        },
        &mut store,
    )
    .unwrap();
    for k in ["before", "during", "after"] {
        assert!(get(&mut store, k).is_some(), "{k} lost");
    }
}

#[test]
fn a_stopped_log_is_handed_back_and_later_snapshots_cover_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = DurableConfig {
        appendonly: true,
        ..quiet(tmp.path())
    };
    {
        let mut store = Store::default();
        let mut d = Durable::open(cfg.clone(), &mut store).unwrap();
        run(&mut store, &mut d, &["SET", "logged", "1"]);
        let log = d.stop_log().expect("the log");
        log.close().unwrap();
        assert!(d.log().is_none());
        assert!(d.stop_log().is_none());
        store.log_enabled = false;
        run(&mut store, &mut d, &["SET", "unlogged", "2"]);
        save(&mut store, &mut d);
    }
    let mut store = Store::default();
    let _d = Durable::open(cfg, &mut store).unwrap();
    assert!(get(&mut store, "logged").is_some());
    assert!(get(&mut store, "unlogged").is_some());
}

#[test]
fn attach_loads_nothing_and_its_first_snapshot_replaces_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut store = Store::default();
        let mut d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
        run(&mut store, &mut d, &["SET", "old", "1"]);
        save(&mut store, &mut d);
    }
    {
        let mut store = Store::default();
        let mut d = Durable::attach(quiet(tmp.path()), 1234).unwrap();
        assert_eq!(d.last_save(), 1234);
        assert!(get(&mut store, "old").is_none());
        run(&mut store, &mut d, &["SET", "new", "2"]);
        save(&mut store, &mut d);
        assert!(d.last_save() > 1234);
    }
    let mut store = Store::default();
    let _d = Durable::open(quiet(tmp.path()), &mut store).unwrap();
    assert!(get(&mut store, "old").is_none());
    assert!(get(&mut store, "new").is_some());
}

#[test]
fn a_failed_final_snapshot_is_an_error_only_without_a_log() {
    assert_eq!(final_snapshot_outcome(Ok(()), false), Ok(()));
    assert_eq!(
        final_snapshot_outcome(Err("disk full".into()), true),
        Ok(())
    );
    let e = final_snapshot_outcome(Err("disk full".into()), false).unwrap_err();
    assert!(e.contains("no append log to fall back on") && e.contains("disk full"));
}
