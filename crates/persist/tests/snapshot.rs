//! Snapshot store: round trips, atomic switch, corruption, injected failures.

mod common;

use bytes::Bytes;
use common::*;
use redsnap_engine::{Store, Value};
use redsnap_persist::{DataDir, LoadOptions, PersistError, SnapshotStore};

#[test]
fn round_trip_every_type_ttls_and_16_dbs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    // A key whose deadline has passed: dropped and counted at load.
    store.dbs[3].insert(b("gone"), Value::Str(b("x")), Some(now() - 1000));
    let want = {
        let mut s = dump(&store);
        s.remove(&(3, b("gone")));
        s
    };
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        let info = snaps.write(store.snapshot(), 0).expect("write");
        assert_eq!(info.keys as usize, want.len() + 1);
        let st = snaps.stats();
        assert!(st.last_ok && st.count == 1 && st.failures == 0 && !st.in_progress);
        assert!(st.last_save_ms.is_some() && st.last_size_bytes > 0);
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.snapshot_keys as usize, want.len() + 1);
    assert_eq!(o.report.expired_dropped, 1);
    assert_eq!(dump(&o.store), want);
    // Volatile bookkeeping restored: TTL keys are known as volatile.
    assert_eq!(o.store.dbs[0].volatile_len(), 3);
}

#[test]
fn second_snapshot_replaces_first_and_old_is_deleted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    let mut store = Store::default();
    populate(&mut store);
    snaps.write(store.snapshot(), 1).expect("first");
    store.dbs[0].remove(&b("k1"));
    store.dbs[5].insert(b("new"), Value::Str(b("v")), None);
    let info = snaps.write(store.snapshot(), 2).expect("second");
    assert_eq!(info.meta.id, 2);
    assert_eq!(
        snaps.current().expect("current").map(|m| m.log_gen),
        Some(2)
    );
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    assert_eq!(dump(&fresh), dump(&store));
}

#[test]
fn failure_mid_snapshot_keeps_previous_and_recovers_later() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    let first = dump(&store);
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 1).expect("first snapshot");
        // Change everything, then fail half-way through the next snapshot (as a full
        // disk would).
        for d in store.dbs.iter_mut() {
            d.clear();
            d.insert(b("only"), Value::Str(b("new")), None);
        }
        snaps.inject_failure_after(Some(5));
        let err = snaps.write(store.snapshot(), 2).expect_err("must fail");
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(err.is_write_failure());
        let st = snaps.stats();
        assert!(!st.last_ok && st.failures == 1 && st.count == 1 && !st.in_progress);
        assert!(st
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no space")));
        // The previous snapshot is still the one in force.
        let mut fresh = Store::default();
        snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
        assert_eq!(dump(&fresh), first);
    }
    // After a restart too.
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), first);
    // When space returns, snapshots succeed again.
    let info = o
        .snaps
        .write(store.snapshot(), 3)
        .expect("write after recovery");
    assert_eq!(info.keys, 16);
    assert!(o.snaps.stats().last_ok);
}

#[test]
fn crash_mid_snapshot_leaves_previous_whole() {
    // Simulate a crash after part of a new snapshot reached the disk: a partial
    // keyspace exists but `current` still names the old one.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 1).expect("first");
        drop(snaps);
        let db = fjall::Database::builder(dir.snapshot_path())
            .open()
            .expect("fjall");
        let ks = db
            .keyspace("snap-2", fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        ks.insert(
            b"\x00\x00partial-entry-without-checksum".as_slice(),
            b"junk".as_slice(),
        )
        .expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));
    // The stale keyspace was cleaned up and the next snapshot works.
    o.snaps.write(o.store.snapshot(), 2).expect("next snapshot");
}

#[test]
fn flipped_bytes_in_snapshot_are_an_error_naming_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    for i in 0..20_000 {
        store.dbs[i % 16].insert(
            b(&format!("key:{i}")),
            Value::Str(Bytes::from(format!("{i:0>100}"))),
            None,
        );
    }
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 0).expect("write");
    }
    let table = largest_file(&tmp.path().join("snapshot").join("keyspaces"));
    let len = std::fs::metadata(&table).expect("md").len();
    flip_byte(&table, len / 3);
    let err = match reopen(tmp.path(), &LoadOptions::new()) {
        Err(e) => e,
        Ok(o) => panic!(
            "damaged snapshot loaded {} keys without error",
            o.store.total_keys()
        ),
    };
    let msg = err.to_string();
    eprintln!("error reported: {msg}");
    assert!(msg.contains("snapshot"), "{msg}");
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
fn damaged_entry_is_named_and_skipped_when_asked() {
    // Write an entry whose own checksum is wrong (fjall's block checksums are fine),
    // by rewriting one value through fjall directly.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 5).expect("write");
        drop(snaps);
        let db = fjall::Database::builder(dir.snapshot_path())
            .open()
            .expect("fjall");
        let ks = db
            .keyspace("snap-1", fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        let mut key = Vec::new();
        let hash = store.dbs[7].key_hash(b"hash");
        redsnap_persist::codec::entry_key(&mut key, 7, hash, b"hash");
        let mut v = ks.get(&key).expect("get").expect("present").to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        ks.insert(key.as_slice(), v.as_slice()).expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("db 7 key \"hash\"") && msg.contains("checksum"),
        "{msg}"
    );
    let o = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: true,
            ignore_corruption: true,
        },
    )
    .expect("lenient");
    assert_eq!(o.report.snapshot_entries_skipped, 1);
    assert!(o.report.wrote_snapshot);
    let mut want = dump(&store);
    want.remove(&(7, b("hash")));
    assert_eq!(dump(&o.store), want);
    assert_eq!(o.report.next_gen, 6);
    // Writes after the lenient start are logged after the rewritten snapshot...
    let log = open_log(&o, redsnap_persist::FsyncPolicy::No);
    let mut store2 = o.store;
    ok(&mut store2, 0, &["SET", "after", "1"]);
    flush_effects(&mut store2, &log);
    want.insert((0, b("after")), (Value::Str(b("1")), None));
    drop(log);
    drop(o.snaps);
    drop(o.dir);
    // ...and the next, strict start loads both.
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("clean now");
    assert_eq!(dump(&o.store), want);
}

#[test]
fn background_snapshot_while_writing_is_one_point_in_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    let mut store = Store::default();
    for i in 0..50_000 {
        store.dbs[0].insert(b(&format!("k{i}")), Value::Str(b("before")), None);
    }
    let clone = store.snapshot();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = snaps
        .spawn(clone, 0, None, move |r| {
            tx.send(r.as_ref().map(|i| i.keys).map_err(|e| e.to_string()))
                .expect("send")
        })
        .expect("spawn");
    assert!(matches!(
        snaps.write(Vec::new(), 0),
        Err(PersistError::SnapshotInProgress)
    ));
    // Writes keep flowing while the snapshot thread works on the clone.
    for i in 0..50_000 {
        store.dbs[0].insert(b(&format!("k{i}")), Value::Str(b("after")), None);
    }
    h.join().expect("join");
    assert_eq!(rx.recv().expect("done"), Ok(50_000));
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    assert!(fresh.dbs[0]
        .iter()
        .all(|(_, e)| e.value() == &Value::Str(b("before"))));
}

#[test]
fn lock_is_exclusive_and_names_the_pid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("data");
    let first = DataDir::open(&path).expect("first");
    let err = DataDir::open(&path).expect_err("second must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("is locked by another running redsnap"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("in use by pid {}", std::process::id())),
        "{msg}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("md").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    drop(first);
    DataDir::open(&path).expect("free again after drop");
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A path under a regular file cannot be created, even by root.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let err = DataDir::open(file.join("data")).expect_err("must fail");
    assert!(
        err.to_string().starts_with("cannot write data directory"),
        "{err}"
    );
}

#[test]
fn incremental_snapshot_writes_only_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let snaps = SnapshotStore::open(&dir).expect("snaps");
    snaps.set_incremental(true);
    let mut store = Store::default();
    populate(&mut store);
    for i in 0..5_000 {
        store.dbs[i % 3].insert(b(&format!("bulk{i}")), Value::Str(b("v")), None);
    }
    let first = snaps.write(store.snapshot_point(true), 1).expect("full");
    assert!(!first.incremental);
    // Changes of every kind: value replaced, value mutated in place (copy-on-write),
    // deadline set and cleared, key deleted, key added, in several dbs.
    store.dbs[0].insert(b("bulk0"), Value::Str(b("replaced")), None);
    if let Some(Value::List(l)) = store.dbs[4].get_mut(&b("list")) {
        l.push_back(redsnap_engine::key::Key::new(b"pushed"));
    }
    store.dbs[1].set_expire(&b("bulk1"), Some(now() + 10_000));
    store.dbs[5].set_expire(&b("list"), None);
    store.dbs[2].remove(&b("bulk2"));
    store.dbs[15].insert(b("added"), Value::Str(b("new")), Some(now() + 99_000));
    let second = snaps
        .write(store.snapshot_point(true), 2)
        .expect("incremental");
    assert!(second.incremental, "{second:?}");
    assert_eq!(second.changed, 6);
    assert_eq!(second.meta.id, first.meta.id);
    assert_eq!(second.keys as usize, store.total_keys());
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    assert_eq!(dump(&fresh), dump(&store));

    // A failed incremental snapshot leaves the previous one in force, and the next
    // one is written in full.
    store.dbs[0].insert(b("bulk3"), Value::Str(b("lost")), None);
    snaps.inject_failure_after(Some(0));
    snaps
        .write(store.snapshot_point(true), 3)
        .expect_err("must fail");
    snaps.inject_failure_after(None);
    let mut fresh = Store::default();
    snaps.load(&mut fresh, &LoadOptions::new()).expect("load");
    assert!(fresh.dbs[0]
        .get(&b("bulk3"))
        .is_some_and(|e| e.value() == &Value::Str(b("v"))));
    let third = snaps
        .write(store.snapshot_point(true), 3)
        .expect("full again");
    assert!(!third.incremental);
    drop(snaps);
    drop(dir);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(dump(&o.store), dump(&store));

    // Many changes: falls back to a full snapshot.
    o.snaps.set_incremental(true);
    let mut store = o.store;
    o.snaps.write(store.snapshot_point(true), 4).expect("full");
    for d in store.dbs.iter_mut() {
        d.clear();
    }
    let info = o.snaps.write(store.snapshot_point(true), 5).expect("write");
    assert!(!info.incremental && info.keys == 0);
}

#[test]
fn lost_snapshot_tables_are_an_error_not_an_empty_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 0).expect("write");
    }
    // Remove the snapshot's table files (as a careless cleanup or a lost disk would).
    let mut removed = 0;
    fn walk(d: &std::path::Path, removed: &mut usize) {
        for e in std::fs::read_dir(d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, removed);
            } else if p.parent().is_some_and(|d| d.ends_with("tables")) {
                std::fs::remove_file(&p).expect("rm");
                *removed += 1;
            }
        }
    }
    walk(&tmp.path().join("snapshot").join("keyspaces"), &mut removed);
    assert!(removed > 0);
    match reopen(tmp.path(), &LoadOptions::new()) {
        Err(e) => eprintln!("reported: {e}"),
        Ok(o) => panic!(
            "started with {} keys from a snapshot whose tables are gone",
            o.store.total_keys()
        ),
    }
}
