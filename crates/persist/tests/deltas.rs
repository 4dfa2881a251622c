//! Incremental snapshots as deltas over an unchanged base (format 4), each a run of
//! records under its own prefix in the `deltas` keyspace: they load to exactly the
//! dataset through rounds of changes and restarts, every delta is verified on its own
//! (a lost, added or altered record is an error naming it), they are bounded (a full
//! snapshot replaces the base and clears them), and a crash before the switch leaves
//! the previous snapshot in force.

mod common;

use common::*;
use redsnap_engine::{Store, Value};
use redsnap_persist::snapshot::delta::{self, MAX_DELTAS};
use redsnap_persist::{DataDir, LoadOptions, PersistError, SnapshotStore};

fn loaded(snaps: &SnapshotStore) -> Store {
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    fresh
}

fn snap_keyspaces(path: &std::path::Path) -> Vec<String> {
    let db = fjall::Database::builder(path.join("snapshot"))
        .open()
        .expect("fjall");
    let mut names: Vec<String> = db
        .list_keyspace_names()
        .iter()
        .map(|n| n.to_string())
        .filter(|n| n.starts_with("snap-"))
        .collect();
    names.sort();
    names
}

fn base_store() -> Store {
    let mut store = Store::default();
    populate(&mut store);
    for i in 0..4_000 {
        store.dbs[i % 3].insert(b(&format!("bulk{i}")), Value::Str(b("v")), None);
    }
    store
}

#[test]
fn rounds_of_deltas_load_to_exactly_the_dataset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    let records = {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        let first = snaps.write(store.snapshot_point(true), 1).expect("full");
        assert!(!first.incremental);
        assert_eq!(first.meta.format_version, 2);
        for round in 0..5u64 {
            // Overwrites, deletes, re-adds (a key removed and written again), the
            // empty key, deadlines, a new key in another db.
            store.dbs[0].insert(
                b(&format!("bulk{}", round * 3)),
                Value::Str(b(&format!("r{round}"))),
                None,
            );
            store.dbs[1].remove(&b(&format!("bulk{}", round * 3 + 1)));
            store.dbs[2].remove(&b("bulk2"));
            store.dbs[2].insert(b("bulk2"), Value::Str(b(&format!("again{round}"))), None);
            if round % 2 == 0 {
                store.dbs[3].insert(b(""), Value::Str(b("empty key")), None);
            } else {
                store.dbs[3].remove(&b(""));
            }
            store.dbs[1].set_expire(&b("bulk7"), Some(now() + 10_000 + round));
            store.dbs[9].insert(b(&format!("new{round}")), Value::Str(b("n")), None);
            let info = snaps
                .write(store.snapshot_point(true), 2 + round)
                .expect("incremental");
            assert!(info.incremental, "round {round}: {info:?}");
            assert_eq!(info.meta.id, first.meta.id);
            assert_eq!(info.meta.format_version, 4);
            assert_eq!(info.meta.deltas.len() as u64, round + 1);
            assert_eq!(info.keys as usize, store.total_keys());
            // The base is never rewritten: its count and sum stay the full one's.
            assert_eq!(info.meta.base_keys, first.meta.keys);
            assert_eq!(info.meta.checksum, first.meta.checksum);
            assert_eq!(dump(&loaded(&snaps)), dump(&store), "round {round}");
        }
        // No changes: no new delta, the metadata still moves on.
        let info = snaps
            .write(store.snapshot_point(true), 9)
            .expect("no changes");
        assert!(info.incremental && info.changed == 0, "{info:?}");
        assert_eq!(info.meta.deltas.len(), 5);
        assert_eq!(info.meta.log_gen, 9);
        info.meta.deltas.iter().map(|d| d.entries).sum::<u64>()
    };
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
    assert_eq!(o.report.snapshot_keys as usize, store.total_keys());
    drop(o);
    assert_eq!(snap_keyspaces(tmp.path()), ["snap-1"]);
    // The deltas' records are all there is in the deltas keyspace.
    assert_eq!(delta_records(tmp.path()) as u64, records);
}

/// The number of records in the `deltas` keyspace.
fn delta_records(path: &std::path::Path) -> usize {
    let db = fjall::Database::builder(path.join("snapshot"))
        .open()
        .expect("fjall");
    let ks = db
        .keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .expect("deltas");
    ks.len().expect("len")
}

#[test]
fn deltas_are_bounded_and_a_full_snapshot_drops_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        snaps.write(store.snapshot_point(true), 1).expect("full");
        for i in 0..MAX_DELTAS {
            store.dbs[0].insert(b(&format!("bulk{}", i * 3)), Value::Str(b("x")), None);
            let info = snaps.write(store.snapshot_point(true), 2).expect("write");
            assert!(info.incremental, "{i}: {info:?}");
        }
        store.dbs[0].insert(b("bulk0"), Value::Str(b("last")), None);
        let info = snaps.write(store.snapshot_point(true), 3).expect("write");
        assert!(!info.incremental, "{info:?}");
        assert!(info.meta.deltas.is_empty());
        assert_eq!(info.meta.format_version, 2);
        assert_eq!(dump(&loaded(&snaps)), dump(&store));
        // Deltas beyond a quarter of the base (4,432 keys: 2,132 records with the
        // 1,024 allowance): the third round of 800 changed keys is written in full.
        let info = snaps
            .write(store.snapshot_point(true), 4)
            .expect("no changes");
        assert!(info.incremental && info.changed == 0 && info.meta.deltas.is_empty());
        for round in 0..3 {
            for i in 0..800 {
                store.dbs[i % 3].insert(
                    b(&format!("bulk{i}")),
                    Value::Str(b(&format!("{round}"))),
                    None,
                );
            }
            let info = snaps.write(store.snapshot_point(true), 5).expect("write");
            assert_eq!(info.incremental, round < 2, "round {round}: {info:?}");
        }
        assert_eq!(dump(&loaded(&snaps)), dump(&store));
    }
    // The third full snapshot, with no deltas (the records of the replaced ones are
    // never read: the dumps above are exact).
    assert_eq!(snap_keyspaces(tmp.path()), ["snap-3"]);
}

/// Writes a full snapshot and one delta, then lets `damage` change the `deltas`
/// keyspace (the delta's records are under the prefix of base 1, generation 1)
/// through fjall directly.
fn with_damaged_delta(damage: impl FnOnce(&fjall::Keyspace, &Store)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    snaps.set_incremental(true);
    snaps.write(store.snapshot_point(true), 1).expect("full");
    store.dbs[0].insert(b("bulk0"), Value::Str(b("changed")), None);
    store.dbs[1].remove(&b("bulk1"));
    store.dbs[2].insert(b("added"), Value::Str(b("new")), None);
    assert!(
        snaps
            .write(store.snapshot_point(true), 2)
            .expect("delta")
            .incremental
    );
    drop(snaps);
    let db = fjall::Database::builder(dir.snapshot_path())
        .open()
        .expect("fjall");
    let ks = db
        .keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .expect("ks");
    assert_eq!(ks.len().expect("len"), 3);
    damage(&ks, &store);
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
    drop(ks);
    drop(db);
    drop(dir);
    tmp
}

fn load_error(tmp: &tempfile::TempDir) -> String {
    match reopen(tmp.path(), &LoadOptions::new()) {
        Err(e) => {
            assert!(matches!(e, PersistError::CorruptSnapshot { .. }), "{e:?}");
            e.to_string()
        }
        Ok(o) => panic!("damaged delta loaded {} keys", o.store.total_keys()),
    }
}

fn entry_key(store: &Store, db: usize, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let hash = store.dbs[db].key_hash(key.as_bytes());
    redsnap_persist::codec::entry_key(&mut out, db as u16, hash, key.as_bytes());
    out
}

/// The record key of an entry key in delta `gen` of base 1.
fn record(gen: u64, entry_key: &[u8]) -> Vec<u8> {
    let mut out = delta::prefix(1, gen).to_vec();
    out.extend_from_slice(entry_key);
    out
}

#[test]
fn a_lost_delta_record_is_an_error_naming_the_delta() {
    let tmp = with_damaged_delta(|ks, store| {
        ks.remove(record(1, &entry_key(store, 2, "added")))
            .expect("remove");
    });
    let msg = load_error(&tmp);
    assert!(
        msg.contains("delta 1.1") && msg.contains("checksum mismatch"),
        "{msg}"
    );
    // Asked to, recovery loads what is valid.
    let o = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: true,
            ignore_corruption: true,
        },
    )
    .expect("load what is valid");
    assert!(o.store.dbs[0].get(&b("bulk0")).is_some());
}

#[test]
fn a_replaced_delta_entry_with_a_valid_crc_is_an_error() {
    // An entry re-encoded with another value (its own CRC right): only the delta's
    // sum can tell, as the base's sum tells for the base.
    let tmp = with_damaged_delta(|ks, store| {
        let key = entry_key(store, 0, "bulk0");
        let mut val = Vec::new();
        redsnap_persist::codec::encode_entry(&mut val, &key, &Value::Str(b("stale")), None);
        ks.insert(record(1, &key), val.as_slice()).expect("insert");
    });
    let msg = load_error(&tmp);
    assert!(
        msg.contains("delta 1.1") && msg.contains("checksum mismatch"),
        "{msg}"
    );
}

#[test]
fn a_damaged_marker_or_entry_is_named() {
    // The removed key's marker (db 1, its hash, no key bytes) with a wrong CRC.
    let tmp = with_damaged_delta(|ks, store| {
        let hash = store.dbs[1].key_hash(b"bulk1");
        let mut key = Vec::new();
        redsnap_persist::codec::entry_key(&mut key, 1, hash, b"");
        let v = ks
            .get(record(1, &key))
            .expect("get")
            .expect("the marker is there");
        assert_eq!(v.len(), 4);
        let mut v = v.to_vec();
        v[0] ^= 1;
        ks.insert(record(1, &key), v.as_slice()).expect("insert");
    });
    let msg = load_error(&tmp);
    assert!(
        msg.contains("delta 1.1, db 1") && msg.contains("marker"),
        "{msg}"
    );
    let tmp = with_damaged_delta(|ks, store| {
        let key = record(1, &entry_key(store, 2, "added"));
        let mut v = ks.get(&key).expect("get").expect("present").to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        ks.insert(key.as_slice(), v.as_slice()).expect("insert");
    });
    let msg = load_error(&tmp);
    assert!(
        msg.contains("delta 1.1, db 2 key \"added\"") && msg.contains("checksum"),
        "{msg}"
    );
}

#[test]
fn flipped_byte_in_a_delta_table_is_detected() {
    // A delta larger than a batch is ingested as a table (a small one lives in
    // fjall's journal until a flush, as the metadata does).
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        snaps.write(store.snapshot_point(true), 1).expect("full");
        let big = bytes::Bytes::from(vec![b'x'; delta::BATCH_BYTES + 1]);
        store.dbs[0].insert(b("bulk0"), Value::Str(big), None);
        assert!(
            snaps
                .write(store.snapshot_point(true), 2)
                .expect("delta")
                .incremental
        );
    }
    let tables = {
        let db = fjall::Database::builder(tmp.path().join("snapshot"))
            .open()
            .expect("fjall");
        let ks = db
            .keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .expect("deltas");
        ks.path().join("tables")
    };
    let table = largest_file(&tables);
    let len = std::fs::metadata(&table).expect("md").len();
    flip_byte(&table, len / 4);
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    assert!(
        matches!(
            err,
            PersistError::CorruptSnapshot { .. }
                | PersistError::Store { .. }
                | PersistError::StoreOpen { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn records_of_a_crashed_attempt_are_never_read_and_a_full_snapshot_clears_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        snaps.write(store.snapshot_point(true), 1).expect("full");
        store.dbs[0].insert(b("bulk0"), Value::Str(b("changed")), None);
        assert!(
            snaps
                .write(store.snapshot_point(true), 2)
                .expect("delta")
                .incremental
        );
        drop(snaps);
        // A crash after the next delta was ingested, before `current` named it.
        let db = fjall::Database::builder(dir.snapshot_path())
            .open()
            .expect("fjall");
        let ks = db
            .keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        ks.insert(
            record(2, &entry_key(&store, 0, "bulk3")),
            b"junk".as_slice(),
        )
        .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
    assert_eq!(o.report.snapshot_keys as usize, store.total_keys());
    // The first snapshot after a start is full; the records of the replaced deltas
    // (and the crashed attempt's) are never read.
    o.snaps.set_incremental(true);
    let mut store = o.store;
    let info = o.snaps.write(store.snapshot_point(true), 3).expect("full");
    assert!(!info.incremental);
    drop(o.snaps);
    drop(o.dir);
    assert_eq!(snap_keyspaces(tmp.path()), ["snap-2"]);
    store.dbs[0].remove(&b("bulk0"));
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert!(o.store.dbs[0].get(&b("bulk0")).is_some());
}

#[test]
fn a_missing_deltas_keyspace_is_an_error_naming_it() {
    let tmp = with_damaged_delta(|_, _| {});
    {
        let db = fjall::Database::builder(tmp.path().join("snapshot"))
            .open()
            .expect("fjall");
        let ks = db
            .keyspace(delta::KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        db.delete_keyspace(ks).expect("delete");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let msg = load_error(&tmp);
    assert!(msg.contains("deltas") && msg.contains("missing"), "{msg}");
    let o = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: true,
            ignore_corruption: true,
        },
    )
    .expect("the base alone, when asked");
    assert!(o.store.dbs[0]
        .get(&b("bulk0"))
        .is_some_and(|e| e.value() == &Value::Str(b("v"))));
}

#[test]
fn a_full_snapshot_drops_deltas_that_take_room_and_deltas_go_on_after() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    for i in 0..600 {
        store.dbs[0].insert(b(&format!("k{i}")), Value::Str(b("v")), None);
    }
    // The records of replaced snapshots' deltas may not exceed this (a quarter of
    // the base plus 1024) when a full snapshot is written; the current ones add.
    let bound = 600 / 4 + 1024;
    let (written, current) = {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        snaps.write(store.snapshot_point(true), 1).expect("full");
        let mut written = 0;
        for round in 0..60 {
            for i in 0..100 {
                store.dbs[0].insert(
                    b(&format!("k{i}")),
                    Value::Str(b(&format!("{round}"))),
                    None,
                );
            }
            let info = snaps.write(store.snapshot_point(true), 2).expect("write");
            if info.incremental {
                written += info.changed;
            }
        }
        // Deltas go on after the drops, and load exactly.
        store.dbs[0].insert(b("k1"), Value::Str(b("last")), None);
        store.dbs[0].remove(&b("k2"));
        let info = snaps.write(store.snapshot_point(true), 3).expect("write");
        assert!(info.incremental, "{info:?}");
        let current = info.meta.deltas.iter().map(|d| d.entries).sum::<u64>();
        written += info.changed;
        assert_eq!(dump(&loaded(&snaps)), dump(&store));
        (written, current)
    };
    // Without the drops the keyspace would hold every record ever written.
    assert!(written > 2 * bound, "{written}");
    let left = delta_records(tmp.path()) as u64;
    assert!(
        left <= bound + current,
        "{left} records left, {current} current"
    );
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
}

#[test]
fn a_delta_larger_than_a_batch_is_ingested_and_loads_the_same() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = base_store();
    let big = |i: usize| Value::Str(bytes::Bytes::from(vec![b'a' + (i % 26) as u8; 1 << 20]));
    let n = delta::BATCH_BYTES / (1 << 20) + 2;
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.set_incremental(true);
        snaps.write(store.snapshot_point(true), 1).expect("full");
        for i in 0..n {
            store.dbs[i % 3].insert(b(&format!("bulk{i}")), big(i), None);
        }
        store.dbs[4].remove(&b("list"));
        let info = snaps.write(store.snapshot_point(true), 2).expect("delta");
        assert!(info.incremental, "{info:?}");
        assert_eq!(info.changed as usize, n + 1);
        assert!(info.size_bytes as usize > n << 20, "{info:?}");
        assert_eq!(dump(&loaded(&snaps)), dump(&store));
        // A small one after it (a batch) applies on top.
        store.dbs[0].insert(b("bulk0"), Value::Str(b("small")), None);
        let info = snaps.write(store.snapshot_point(true), 3).expect("delta");
        assert!(info.incremental && info.meta.deltas.len() == 2, "{info:?}");
        assert_eq!(dump(&loaded(&snaps)), dump(&store));
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
}
