//! An import (`serve --import dump.rdb`) before its first snapshot: recovery loads the
//! RDB file again and replays the log written after it; once a snapshot exists the
//! marker goes; a file that vanished or changed stops the start with the reason,
//! never an empty start.

mod common;

use common::*;
use redsnap_persist::rdbfile::{default_aux, write_dbs};
use redsnap_persist::{import, FsyncPolicy, LoadOptions};
use std::path::Path;

fn write_dump(path: &Path) -> Store {
    let mut src = Store::default();
    populate(&mut src);
    let f = std::fs::File::create(path).expect("create dump");
    write_dbs(f, &src.snapshot(), &default_aux(0)).expect("write dump");
    src
}

use redsnap_engine::Store;

#[test]
fn a_crash_before_the_first_snapshot_loads_the_file_then_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("dump.rdb");
    let src = write_dump(&file);
    {
        let dir = redsnap_persist::DataDir::open(&data).expect("open");
        import::begin(&dir, &file).expect("begin");
    }
    // First start: the file is loaded; writes after it go to the log; then a crash
    // (nothing is closed cleanly, no snapshot).
    let mut expected;
    {
        let mut o = reopen(&data, &LoadOptions::new()).expect("recover");
        assert!(o.report.import_pending.is_some());
        assert_eq!(dump(&o.store), dump(&src));
        let log = open_log(&o, FsyncPolicy::Always);
        ok(&mut o.store, 0, &["SET", "after-import", "1"]);
        ok(&mut o.store, 3, &["DEL", "str:3"]);
        let t = flush_effects(&mut o.store, &log);
        log.wait_durable(t).expect("durable");
        expected = dump(&o.store);
        drop(log);
    }
    // Second start: the file again, then the log on top.
    {
        let o = reopen(&data, &LoadOptions::new()).expect("recover again");
        assert!(
            o.report.import_pending.is_some(),
            "the import is still pending"
        );
        assert_eq!(o.report.log_records, 2);
        assert_eq!(dump(&o.store), expected);
        // The first snapshot: from now on the snapshot holds the data and the marker
        // is stale (the server deletes it; recovery deletes a leftover one).
        o.snaps
            .write(o.store.dataset(), o.report.next_gen.saturating_sub(1))
            .expect("snapshot");
        expected = dump(&o.store);
    }
    assert!(import::pending(&data).expect("read marker").is_some());
    std::fs::remove_file(&file).expect("the file is no longer needed");
    let o = reopen(&data, &LoadOptions::new()).expect("recover from the snapshot");
    assert!(o.report.import_pending.is_none());
    assert_eq!(dump(&o.store), expected);
    assert!(import::pending(&data).expect("read marker").is_none());
}

#[test]
fn a_vanished_or_changed_file_refuses_the_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("dump.rdb");
    write_dump(&file);
    {
        let dir = redsnap_persist::DataDir::open(&data).expect("open");
        import::begin(&dir, &file).expect("begin");
    }
    {
        // A write after the import: the directory now holds something the file
        // must come before.
        let mut o = reopen(&data, &LoadOptions::new()).expect("recover");
        let log = open_log(&o, FsyncPolicy::Always);
        ok(&mut o.store, 0, &["SET", "after-import", "1"]);
        let t = flush_effects(&mut o.store, &log);
        log.wait_durable(t).expect("durable");
    }
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).expect("write");
    let err = reopen(&data, &LoadOptions::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("changed since the import began"), "{err}");
    std::fs::remove_file(&file).expect("remove");
    let err = reopen(&data, &LoadOptions::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("did not finish"), "{err}");
    // The marker stays: the log alone would be a silently partial dataset.
    assert!(import::pending(&data).expect("read marker").is_some());
}

#[test]
fn a_damaged_file_with_nothing_written_after_it_leaves_an_empty_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let file = tmp.path().join("dump.rdb");
    write_dump(&file);
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, &bytes).expect("write");
    {
        let dir = redsnap_persist::DataDir::open(&data).expect("open");
        import::begin(&dir, &file).expect("begin");
    }
    let err = reopen(&data, &LoadOptions::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("import of"), "{err}");
    assert!(import::pending(&data).expect("read marker").is_none());
    let o = reopen(&data, &LoadOptions::new()).expect("an empty directory opens");
    assert_eq!(o.report.keys, 0);
}
