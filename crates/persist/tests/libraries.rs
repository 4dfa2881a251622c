//! Function libraries in the dataset: a snapshot carries their code (metadata format
//! 3), full or incremental; a snapshot without libraries stays in format 2 and loads
//! with none; FUNCTION records of the append log replay after the snapshot.

mod common;

use bytes::Bytes;
use common::*;
use redsnap_engine::{Dataset, LogRecord, Store, Value};
use redsnap_persist::{FsyncPolicy, LoadOptions, SnapshotStore};

fn code(name: &str, body: &str) -> Bytes {
    Bytes::from(format!("#!lua name={name}\n{body}"))
}

fn names(store: &Store) -> Vec<Bytes> {
    store.libraries.iter().map(|(n, _)| n.clone()).collect()
}

fn record(argv: &[&[u8]]) -> LogRecord {
    LogRecord {
        db: 0,
        time: now(),
        argv: argv.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
    }
}

#[test]
fn snapshots_carry_the_libraries_full_and_incremental() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    let la = code(
        "a",
        "redis.register_function('fa', function() return 1 end)",
    );
    let lb = code(
        "b",
        "redis.register_function('fb', function() return 2 end)",
    );
    store.libraries.insert(b("a"), la.clone());
    store.libraries.insert(b("b"), lb.clone());
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        o.snaps.set_incremental(true);
        let info = o.snaps.write(store.snapshot_point(true), 0).expect("write");
        assert_eq!(info.meta.format_version, 3);
        assert_eq!(info.meta.libraries, vec![la.clone(), lb.clone()]);
        // An incremental snapshot after a key and a library changed.
        store.dbs[1].insert(b("new"), Value::Str(b("v")), None);
        store.libraries.remove(b"a");
        let info = o
            .snaps
            .write(store.snapshot_point(true), 0)
            .expect("incremental");
        assert!(info.incremental, "expected an incremental snapshot");
        assert_eq!(info.meta.libraries, vec![lb.clone()]);
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(names(&o.store), vec![b("b")]);
    assert_eq!(o.store.libraries.get(b"b"), Some(&lb));
    assert_eq!(dump(&o.store), dump(&store));
}

#[test]
fn a_snapshot_without_libraries_is_format_2_and_loads_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::default();
    populate(&mut store);
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        // The databases alone, as before libraries existed.
        let info = o.snaps.write(store.snapshot(), 0).expect("write");
        assert_eq!(info.meta.format_version, 2);
        assert!(info.meta.libraries.is_empty());
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert!(o.store.libraries.is_empty());
    assert_eq!(dump(&o.store), dump(&store));
    // An empty dataset converts too.
    let empty: Dataset = Vec::new().into();
    assert!(empty.dbs.is_empty() && empty.libraries.is_empty());
}

#[test]
fn function_records_replay_after_the_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a1 = code("a", "-- one");
    let a2 = code("a", "-- two");
    let c = code("c", "-- three");
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let mut store = Store::default();
        store.libraries.insert(b("a"), a1.clone());
        store.libraries.insert(b("b"), code("b", "-- b"));
        let log = open_log(&o, FsyncPolicy::Always);
        let gen = log.rotate().expect("rotate");
        o.snaps.write(store.dataset(), gen).expect("snapshot");
        let recs = vec![
            record(&[b"FUNCTION", b"LOAD", b"REPLACE", &a2]),
            record(&[b"FUNCTION", b"DELETE", b"b"]),
            record(&[b"FUNCTION", b"LOAD", &c]),
            record(&[b"SET", b"k", b"v"]),
        ];
        let seq = log.append(&recs).expect("append");
        log.wait_durable(seq).expect("durable");
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.replay_errors, 0);
    assert_eq!(names(&o.store), vec![b("a"), b("c")]);
    assert_eq!(o.store.libraries.get(b"a"), Some(&a2));
    assert_eq!(o.store.dbs[0].len(), 1);
    // A FLUSH record empties them, and the next snapshot holds none.
    {
        let log = open_log(&o, FsyncPolicy::Always);
        let seq = log
            .append(&[record(&[b"FUNCTION", b"FLUSH", b"ASYNC"])])
            .expect("append");
        log.wait_durable(seq).expect("durable");
    }
    drop(o);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert!(o.store.libraries.is_empty());
    let snaps: &SnapshotStore = &o.snaps;
    let info = snaps
        .write(o.store.dataset(), o.report.covered_gen())
        .expect("write");
    assert_eq!(info.meta.format_version, 2);
}
