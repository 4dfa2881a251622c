//! Incremental snapshots written from the record of changed keys
//! (`Store::snapshot_point`), with no previous version kept in memory.

mod common;

use common::*;
use redsnap_engine::{Reply, Store, Value};
use redsnap_persist::{DataDir, LoadOptions, SnapshotStore};
use std::sync::Arc;

fn bulk(store: &mut Store, n: usize) {
    for i in 0..n {
        store.dbs[i % 3].insert(b(&format!("bulk{i}")), Value::Str(b("v")), None);
    }
}

/// The number of references to the value of `key` in db `d` (1: nothing but the
/// live store holds it).
fn refs(store: &Store, d: usize, key: &str) -> usize {
    Arc::strong_count(&store.dbs[d].get(&b(key)).expect("key").obj)
}

fn loaded(snaps: &SnapshotStore) -> Store {
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    fresh
}

#[test]
fn a_written_snapshot_keeps_nothing_of_the_dataset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    snaps.set_incremental(true);
    let mut store = Store::default();
    for i in 0..20_000 {
        store.dbs[0].insert(b(&format!("bulk{i}")), Value::Str(b("v")), None);
    }
    assert!(
        !snaps
            .write(store.snapshot_point(true), 1)
            .expect("full")
            .incremental
    );
    // Once written, the snapshot holds no reference to any value: writes modify them
    // in place (no copy), where keeping the previous version made each one a copy.
    assert_eq!(refs(&store, 0, "bulk0"), 1);
    let before = Arc::as_ptr(&store.dbs[0].get(&b("bulk0")).expect("key").obj);
    if let Some(Value::Str(s)) = store.dbs[0].get_mut(&b("bulk0")) {
        *s = b("changed in place");
    }
    let after = Arc::as_ptr(&store.dbs[0].get(&b("bulk0")).expect("key").obj);
    assert_eq!(before, after, "the value was copied");
    // ...and the change is still found by the next snapshot.
    let info = snaps
        .write(store.snapshot_point(true), 2)
        .expect("incremental");
    assert!(info.incremental && info.changed == 1, "{info:?}");
    assert_eq!(refs(&store, 0, "bulk0"), 1);
    assert_eq!(dump(&loaded(&snaps)), dump(&store));

    // Overwriting every key: the record gives up (bounded memory) and the next
    // snapshot is a full one, which loads back whole.
    for i in 0..20_000 {
        store.dbs[0].insert(b(&format!("bulk{i}")), Value::Str(b("w")), None);
    }
    assert_eq!(store.changes_bytes(), 0);
    let info = snaps.write(store.snapshot_point(true), 3).expect("full");
    assert!(!info.incremental, "{info:?}");
    assert_eq!(dump(&loaded(&snaps)), dump(&store));
}

#[test]
fn removed_and_re_added_keys_are_reconciled_with_the_stored_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    snaps.set_incremental(true);
    let mut store = Store::default();
    populate(&mut store);
    bulk(&mut store, 2_000);
    let first = snaps.write(store.snapshot_point(true), 1).expect("full");
    // Removed; removed and added again with another value; added then removed (never
    // stored: nothing to write); expired through a command; a deadline set.
    ok(&mut store, 0, &["DEL", "bulk0"]);
    ok(&mut store, 1, &["DEL", "bulk1"]);
    ok(&mut store, 1, &["SET", "bulk1", "again"]);
    ok(&mut store, 2, &["SET", "transient", "x"]);
    ok(&mut store, 2, &["DEL", "transient"]);
    ok(&mut store, 4, &["RPUSH", "list", "pushed"]);
    ok(&mut store, 5, &["EXPIRE", "k3", "1000"]);
    ok(&mut store, 2, &["MOVE", "bulk5", "7"]);
    let info = snaps
        .write(store.snapshot_point(true), 2)
        .expect("incremental");
    assert!(info.incremental, "{info:?}");
    // bulk0 deleted, bulk1 rewritten, list, k3, bulk5 gone from 2 and written in 7,
    // and a marker for transient's hash (the delta is written without reading the
    // stored snapshot, so a removed hash gets a marker whether or not it was stored).
    assert_eq!(info.changed, 7, "{info:?}");
    assert_eq!(info.meta.id, first.meta.id);
    assert_eq!(info.keys as usize, store.total_keys());
    assert_eq!(dump(&loaded(&snaps)), dump(&store));
    // The count and checksum in the metadata agree with the entries (a reopen
    // verifies both).
    drop(snaps);
    drop(dir);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
}

#[test]
fn swapdb_flush_and_a_lost_point_make_the_next_snapshot_full() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    snaps.set_incremental(true);
    let mut store = Store::default();
    populate(&mut store);
    bulk(&mut store, 2_000);
    snaps.write(store.snapshot_point(true), 1).expect("full");

    // SWAPDB: each index now holds the other's keys.
    assert_eq!(exec(&mut store, 0, &["SWAPDB", "0", "1"]), Reply::ok());
    let info = snaps.write(store.snapshot_point(true), 2).expect("write");
    assert!(!info.incremental, "{info:?}");
    assert_eq!(dump(&loaded(&snaps)), dump(&store));

    // A plain copy in between (a replica's sync, DEBUG) does not disturb the record.
    ok(&mut store, 3, &["SET", "str:3", "changed"]);
    let _copy = store.dataset();
    let info = snaps.write(store.snapshot_point(true), 3).expect("write");
    assert!(info.incremental && info.changed == 1, "{info:?}");

    // FLUSHDB: the database is written whole.
    ok(&mut store, 2, &["FLUSHDB"]);
    let info = snaps.write(store.snapshot_point(true), 4).expect("write");
    assert!(!info.incremental, "{info:?}");
    assert_eq!(dump(&loaded(&snaps)), dump(&store));

    // A point whose snapshot was never written: the changes it took are lost to the
    // next one, which is therefore full.
    ok(&mut store, 0, &["SET", "lost", "1"]);
    drop(store.snapshot_point(true));
    ok(&mut store, 0, &["SET", "later", "1"]);
    let info = snaps.write(store.snapshot_point(true), 5).expect("write");
    assert!(!info.incremental, "{info:?}");
    assert_eq!(dump(&loaded(&snaps)), dump(&store));

    // Tracking off: no record, full snapshots.
    ok(&mut store, 0, &["SET", "x", "1"]);
    let data = store.snapshot_point(false);
    assert!(data.changes.is_none());
    ok(&mut store, 0, &["SET", "y", "1"]);
    assert_eq!(store.changes_bytes(), 0);
    assert!(!snaps.write(data, 6).expect("write").incremental);
}
