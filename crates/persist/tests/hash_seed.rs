//! The key hash seed: kept in the snapshot metadata, taken by the store at load, so
//! the entry keys computed after a restart are the stored ones; snapshots written
//! before seeds existed still load.

mod common;

use common::*;
use redsnap_engine::{EngineConfig, KeyHasher, Store, Value};
use redsnap_persist::codec::{entry_key, CRC32C};
use redsnap_persist::{DataDir, LoadOptions, SnapshotStore};
use std::path::Path;

const SEED: u128 = 0x1234_5678_9abc_def0_1122_3344_5566_7788;

fn seeded_store(hasher: KeyHasher) -> Store {
    let mut store = Store::with_hasher(EngineConfig::default(), hasher);
    populate(&mut store);
    for i in 0..2_000 {
        store.dbs[i % 4].insert(b(&format!("bulk{i}")), Value::Str(b("v")), None);
    }
    store
}

/// How many of `store`'s keys have an entry at the key its own hash gives, in the
/// snapshot keyspace in force (read with fjall directly; the store must be closed).
fn entries_found(dir: &Path, store: &Store) -> usize {
    let db = fjall::Database::builder(dir.join("snapshot"))
        .open()
        .expect("fjall");
    let meta = db
        .keyspace("meta", fjall::KeyspaceCreateOptions::default)
        .expect("meta");
    assert!(meta.get("current").expect("get").is_some());
    let ks = db
        .keyspace("snap-1", fjall::KeyspaceCreateOptions::default)
        .expect("snap-1");
    let mut found = 0;
    let mut key = Vec::new();
    for (i, d) in store.dbs.iter().enumerate() {
        for (k, _) in d.iter() {
            entry_key(&mut key, i as u16, d.key_hash(k), k);
            if ks.get(&key).expect("get").is_some() {
                found += 1;
            }
        }
    }
    found
}

#[test]
fn hash_seed_survives_restart_and_incremental_snapshots_update_in_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = seeded_store(KeyHasher::with_seed(SEED));
    let total = store.total_keys();
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        let info = snaps.write(store.snapshot(), 1).expect("write");
        assert_eq!(info.meta.hash_seed, Some(SEED));
        assert_eq!(info.meta.format_version, 2);
        // The seed is not shown in debug output (logs).
        let shown = format!("{info:?}");
        assert!(!shown.contains(&SEED.to_string()) && !shown.contains(&format!("{SEED:x}")));
    }
    // Restart: a fresh store has a random seed until the snapshot gives it its own.
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.store.key_hasher(), KeyHasher::with_seed(SEED));
    assert_eq!(dump(&o.store), dump(&store));
    let loaded = o.store;
    drop(o.snaps);
    drop(o.dir);
    // The entry keys computed after the restart are the stored ones (and a store on
    // another seed would find none of them: the check can fail).
    assert_eq!(entries_found(tmp.path(), &loaded), total);
    let mut other = Store::new(EngineConfig::default());
    for (i, d) in loaded.dbs.iter().enumerate() {
        for (k, e) in d.iter() {
            other.dbs[i].insert_entry(k, e.clone());
        }
    }
    assert_eq!(entries_found(tmp.path(), &other), 0);

    // Incremental snapshots after the restart update entries in place.
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    o.snaps.set_incremental(true);
    let mut store = o.store;
    assert!(
        !o.snaps
            .write(store.snapshot_point(true), 2)
            .expect("full")
            .incremental
    );
    store.dbs[0].insert(b("bulk0"), Value::Str(b("changed")), None);
    store.dbs[1].remove(&b("bulk1"));
    store.dbs[2].insert(b("new"), Value::Str(b("x")), None);
    let info = o
        .snaps
        .write(store.snapshot_point(true), 3)
        .expect("incremental");
    assert!(info.incremental, "{info:?}");
    assert_eq!(info.changed, 3);
    assert_eq!(info.keys as usize, store.total_keys());
    assert_eq!(info.meta.hash_seed, Some(SEED));
    drop(o.snaps);
    drop(o.dir);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.snapshot_keys as usize, store.total_keys());
    assert_eq!(dump(&o.store), dump(&store));
    assert_eq!(o.store.key_hasher(), KeyHasher::with_seed(SEED));
}

/// Rewrites the metadata in force as format 1 (no seed), as a build before seeds
/// wrote it.
fn downgrade_meta_to_format_1(dir: &Path) {
    let db = fjall::Database::builder(dir.join("snapshot"))
        .open()
        .expect("fjall");
    let meta = db
        .keyspace("meta", fjall::KeyspaceCreateOptions::default)
        .expect("meta");
    let cur = meta.get("current").expect("get").expect("current");
    // magic (9) | version (4) | id, log_gen, created_ms, keys, checksum | [seed] | crc
    let mut v1 = cur[..9].to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&cur[13..13 + 40]);
    let crc = CRC32C.checksum(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    meta.insert("current", v1).expect("insert");
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

#[test]
fn a_snapshot_from_before_seeds_loads_and_the_next_one_is_seeded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Written on the unseeded hash, then its metadata made format 1.
    let store = seeded_store(KeyHasher::legacy());
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 1).expect("write");
    }
    downgrade_meta_to_format_1(tmp.path());
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("old format loads");
    let meta = o.report.snapshot.clone().expect("snapshot");
    assert_eq!((meta.format_version, meta.hash_seed), (1, None));
    assert_eq!(dump(&o.store), dump(&store));
    // The data now lives under a random seed, not the unseeded hash...
    let hasher = o.store.key_hasher();
    assert!(!hasher.is_legacy());
    // ...and incremental mode cannot write onto the old keyspace: the next snapshot
    // is full, seeded, and loads back whole.
    o.snaps.set_incremental(true);
    let mut live = o.store;
    let info = o.snaps.write(live.snapshot_point(true), 2).expect("write");
    assert!(!info.incremental);
    assert_eq!(info.meta.hash_seed, Some(hasher.seed()));
    live.dbs[0].insert(b("later"), Value::Str(b("1")), None);
    assert!(
        o.snaps
            .write(live.snapshot_point(true), 3)
            .expect("write")
            .incremental
    );
    drop(o.snaps);
    drop(o.dir);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.store.key_hasher(), hasher);
    assert_eq!(dump(&o.store), dump(&live));
}

#[test]
fn an_entry_under_another_seed_is_reported_as_damage() {
    // A snapshot whose seed does not match its entry keys (as if the metadata had
    // lost its seed) is refused rather than loaded under the wrong hash.
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = seeded_store(KeyHasher::with_seed(SEED));
    {
        let dir = DataDir::open(tmp.path()).expect("open");
        let snaps = SnapshotStore::open(&dir).expect("snaps");
        snaps.write(store.snapshot(), 1).expect("write");
    }
    downgrade_meta_to_format_1(tmp.path());
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("hash"), "{err}");
}
