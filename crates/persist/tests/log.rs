//! Append log: replay, torn tails, corruption, write errors, group commit, rotation.

mod common;

use bytes::Bytes;
use common::*;
use redsnap_engine::{LogRecord, Store, Value};
use redsnap_persist::aof::{list_generations, log_file_name};
use redsnap_persist::{AppendLog, DataDir, FsyncPolicy, LoadOptions, PersistError};
use std::path::Path;

fn rec(db: usize, args: &[&str]) -> LogRecord {
    LogRecord {
        db,
        time: now(),
        argv: args.iter().map(|a| b(a)).collect(),
    }
}

/// Appends `n` single-record SETs to a fresh log in `path` and returns the file.
fn write_sets(path: &Path, n: usize) -> std::path::PathBuf {
    let o = reopen(path, &LoadOptions::new()).expect("open");
    let log = open_log(&o, FsyncPolicy::No);
    for i in 0..n {
        log.append(&[rec(i % 16, &["SET", &format!("k{i}"), &format!("v{i}")])])
            .expect("append");
    }
    let gen = log.generation();
    log.close().expect("close");
    path.join(log_file_name(gen))
}

#[test]
fn replay_round_trip_through_the_engine() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut live = Store::default();
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::Always);
        let t = now();
        for db in 0..16 {
            ok(&mut live, db, &["SET", &format!("s{db}"), "hello"]);
            ok(&mut live, db, &["SET", "ttl", "x", "PX", "3600000"]);
            ok(&mut live, db, &["SET", "abs", "y"]);
            ok(
                &mut live,
                db,
                &["PEXPIREAT", "abs", &(t + 7_200_000).to_string()],
            );
            ok(
                &mut live,
                db,
                &["ZADD", "z", "1", "a", "2.5", "b", "-inf", "c"],
            );
            ok(&mut live, db, &["INCRBY", "counter", &db.to_string()]);
            ok(&mut live, db, &["APPEND", "s0", "!"]);
            ok(&mut live, db, &["SET", "deleted", "x"]);
            ok(&mut live, db, &["DEL", "deleted"]);
            // Types whose commands another crate session may still be adding.
            for cmd in [
                &["RPUSH", "list", "a", "b", "c"][..],
                &["HSET", "hash", "f", "v", "g", "w"][..],
                &["SADD", "set", "m1", "m2"][..],
            ] {
                if redsnap_engine::lookup(cmd[0].as_bytes()).is_some() {
                    ok(&mut live, db, cmd);
                } else if db == 0 {
                    eprintln!(
                        "note: {} not in the engine yet; its replay is not covered",
                        cmd[0]
                    );
                }
            }
            let seq = flush_effects(&mut live, &log);
            log.wait_durable(seq).expect("durable");
        }
        assert!(log.stats().durable_seq >= 16);
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert!(o.report.snapshot.is_none());
    assert_eq!(o.report.replay_errors, 0);
    assert!(o.report.log_records >= 16 * 9);
    assert_eq!(dump(&o.store), dump(&live));
    assert!(dump(&o.store).contains_key(&(15, b("z"))));
}

#[test]
fn snapshot_plus_log_and_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut live = Store::default();
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::EverySec);
        for i in 0..100 {
            ok(&mut live, i % 16, &["SET", &format!("before{i}"), "1"]);
        }
        // Under the server lock: clone + rotate; then the snapshot in the background.
        let gen_before = log.generation();
        flush_effects(&mut live, &log);
        let dbs = live.snapshot();
        let covered = log.rotate().expect("rotate");
        assert_eq!(covered, gen_before);
        // A key whose expiry is changed by the log after the snapshot.
        ok(&mut live, 2, &["SET", "keep", "x", "PX", "600000"]);
        flush_effects(&mut live, &log);
        let (tx, rx) = std::sync::mpsc::channel();
        let h = o
            .snaps
            .spawn(dbs, covered, Some(log.clone()), move |r| {
                tx.send(r.is_ok()).expect("send")
            })
            .expect("spawn");
        for i in 0..50 {
            ok(&mut live, i % 16, &["SET", &format!("after{i}"), "2"]);
        }
        ok(&mut live, 2, &["PERSIST", "keep"]);
        flush_effects(&mut live, &log);
        h.join().expect("join");
        assert!(rx.recv().expect("done"));
        // The covered generation is gone, the new one remains.
        let gens: Vec<u64> = list_generations(tmp.path())
            .expect("list")
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(gens, vec![covered + 1]);
        assert!(log.size() > 0);
        assert!(!log.should_rewrite(100, 1 << 30));
        assert!(log.should_rewrite(1, 0));
        assert!(!log.should_rewrite(0, 0));
        log.close().expect("close");
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.snapshot_keys, 100);
    assert_eq!(o.report.snapshot.as_ref().map(|m| m.log_gen), Some(1));
    assert_eq!(dump(&o.store), dump(&live));
    assert!(o.store.dbs[2]
        .get(&b("keep"))
        .is_some_and(|e| e.expire_at().is_none()));
    // A new log starts after every generation on disk.
    let log = open_log(&o, FsyncPolicy::No);
    assert!(log.generation() > 2);
}

#[test]
fn expired_at_load_are_dropped_after_replay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::No);
        let t = now();
        // Logged an hour ago with a 1 s TTL: expired by now.
        log.append(&[LogRecord {
            db: 4,
            time: t - 3_600_000,
            argv: vec![b("SET"), b("old"), b("v"), b("PX"), b("1000")],
        }])
        .expect("append");
        log.append(&[rec(4, &["SET", "fresh", "v", "PX", "600000"])])
            .expect("append");
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.expired_dropped, 1);
    assert!(o.store.dbs[4].get(&b("old")).is_none());
    assert!(o.store.dbs[4].get(&b("fresh")).is_some());
}

#[test]
fn torn_tail_is_truncated_with_a_log_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write_sets(tmp.path(), 50);
    let len = std::fs::metadata(&file).expect("md").len();
    // Cut the last record in half, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 7)
        .expect("truncate");
    let (res, logs) = capture_logs(|| reopen(tmp.path(), &LoadOptions::new()));
    let o = res.expect("recover");
    assert_eq!(o.report.log_records, 49);
    assert!(o.report.truncated_bytes > 0);
    assert_eq!(o.report.truncated_file.as_deref(), Some(file.as_path()));
    assert!(
        logs.contains("torn record")
            && logs.contains(&format!("truncating {} bytes", o.report.truncated_bytes)),
        "{logs}"
    );
    assert!(logs.contains("WARN"), "{logs}");
    assert_eq!(o.store.total_keys(), 49);
    drop(o);
    // Truncated for good: the next start is clean.
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("again");
    assert_eq!(o.report.truncated_bytes, 0);
    assert_eq!(o.store.total_keys(), 49);
}

#[test]
fn torn_tail_refused_without_load_truncated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write_sets(tmp.path(), 5);
    let len = std::fs::metadata(&file).expect("md").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 1)
        .expect("truncate");
    let err = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: false,
            ignore_corruption: false,
        },
    )
    .err()
    .expect("must fail");
    assert!(matches!(err, PersistError::CorruptLog { .. }), "{err}");
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write_sets(tmp.path(), 10);
    let mut data = std::fs::read(&file).expect("read");
    data.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&file, data).expect("write");
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.report.truncated_bytes, 4096);
    assert_eq!(o.store.total_keys(), 10);
}

#[test]
fn flipped_byte_mid_log_is_an_error_with_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write_sets(tmp.path(), 100);
    // Frame layout: 24-byte file header, then frames of 12-byte header + payload.
    // Find the offset of frame 40 by walking the frames.
    let data = std::fs::read(&file).expect("read");
    let mut off = 24usize;
    for _ in 0..40 {
        let len =
            u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        off += 12 + len;
    }
    flip_byte(&file, off as u64 + 12);
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("byte offset {off}")), "{msg}");
    // Loading what is valid: the 40 records before the damage, then a fresh snapshot,
    // and the damaged file is kept aside.
    let o = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: true,
            ignore_corruption: true,
        },
    )
    .expect("lenient");
    assert_eq!(o.store.total_keys(), 40);
    assert!(o.report.wrote_snapshot);
    assert_eq!(o.report.quarantined.len(), 1);
    assert!(o.report.quarantined[0].exists());
    assert!(!file.exists());
    drop(o);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("clean afterwards");
    assert_eq!(o.store.total_keys(), 40);
    assert!(o.report.log_files.is_empty());
}

#[test]
fn corrupt_length_does_not_allocate_and_is_detected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = write_sets(tmp.path(), 20);
    let mut data = std::fs::read(&file).expect("read");
    // The 10th frame's length -> 0xFFFFFFF0 (4 GiB, past the end of the file). The
    // frame header's own checksum shows this is damage, not a torn write, so even with
    // load_truncated (the default) it is an error, not a silent truncation of the
    // records after it; and no 4 GiB buffer is allocated.
    let mut off = 24usize;
    for _ in 0..9 {
        off += 12
            + u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
    }
    data[off..off + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&file, &data).expect("write");
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains(&format!(
            "byte offset {off}: frame header checksum mismatch"
        )),
        "{err}"
    );
    // Loading what is valid keeps the 9 records before it.
    let o = reopen(
        tmp.path(),
        &LoadOptions {
            load_truncated: true,
            ignore_corruption: true,
        },
    )
    .expect("lenient");
    assert_eq!(o.store.total_keys(), 9);
}

#[test]
fn damage_in_an_older_generation_is_not_a_torn_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write_sets(tmp.path(), 10);
    write_sets(tmp.path(), 10); // a second generation (keys overwrite the same names)
    let len = std::fs::metadata(&first).expect("md").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .expect("open")
        .set_len(len - 3)
        .expect("truncate");
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    assert!(matches!(err, PersistError::CorruptLog { .. }), "{err}");
}

#[test]
fn missing_generation_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = write_sets(tmp.path(), 3);
    write_sets(tmp.path(), 3);
    write_sets(tmp.path(), 3);
    let gens = list_generations(tmp.path()).expect("list");
    std::fs::remove_file(&gens[1].1).expect("rm");
    let err = reopen(tmp.path(), &LoadOptions::new())
        .err()
        .expect("must fail");
    assert!(
        matches!(err, PersistError::MissingGeneration { .. }),
        "{err}"
    );
    assert!(first.exists());
}

#[test]
fn injected_write_error_is_reported_and_leaves_no_partial_frame() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::EverySec);
        log.append(&[rec(0, &["SET", "a", "1"])]).expect("append");
        log.inject_write_error(true);
        let err = log
            .append(&[rec(0, &["SET", "b", &"x".repeat(1000)])])
            .expect_err("must fail");
        assert!(err.is_write_failure());
        let st = log.stats();
        assert!(!st.last_write_ok);
        assert!(
            st.last_write_error
                .as_deref()
                .is_some_and(|e| e.contains("No space")),
            "{st:?}"
        );
        assert_eq!(st.write_errors, 1);
        log.inject_write_error(false);
        log.append(&[rec(0, &["SET", "c", "3"])])
            .expect("append after space returns");
        assert!(log.stats().last_write_ok);
    }
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(
        o.report.truncated_bytes, 0,
        "the half-written frame was undone"
    );
    assert!(o.store.dbs[0].get(&b("a")).is_some());
    assert!(o.store.dbs[0].get(&b("b")).is_none());
    assert!(o.store.dbs[0].get(&b("c")).is_some());
}

#[test]
fn staged_batches_are_written_together_in_order_and_survive_failures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first_gen;
    {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::EverySec);
        let path = tmp.path().join(log_file_name(log.generation()));
        let header = std::fs::metadata(&path).expect("log").len();
        // Staged batches stay in memory until written.
        let t1 = log.stage(&[rec(0, &["SET", "a", "1"])]).expect("stage");
        let t2 = log
            .stage(&[rec(0, &["INCR", "n"]), rec(0, &["INCR", "n"])])
            .expect("stage");
        assert!(t2 > t1);
        assert_eq!(log.staged_token(), t2);
        assert!(log.written_token() < t1);
        assert_eq!(std::fs::metadata(&path).expect("log").len(), header);
        let seq = log.write_staged().expect("write");
        assert_eq!(log.written_token(), t2);
        assert!(std::fs::metadata(&path).expect("log").len() > header);
        // Nothing staged: no write, the same sequence number.
        assert_eq!(log.write_staged().expect("write"), seq);
        // A failed write keeps the batch staged and the file unchanged; a later
        // write (space back) writes it, in order.
        let len = std::fs::metadata(&path).expect("log").len();
        let t3 = log.stage(&[rec(0, &["INCR", "n"])]).expect("stage");
        log.inject_write_error(true);
        assert!(log
            .write_staged()
            .expect_err("must fail")
            .is_write_failure());
        assert!(log.written_token() < t3);
        assert_eq!(std::fs::metadata(&path).expect("log").len(), len);
        log.inject_write_error(false);
        log.write_staged().expect("write after space returns");
        assert_eq!(log.written_token(), t3);
        // Rotation writes what is staged into the generation it closes.
        log.stage(&[rec(0, &["SET", "before-rotation", "x"])])
            .expect("stage");
        first_gen = log.rotate().expect("rotate");
        log.stage(&[rec(0, &["SET", "after-rotation", "y"])])
            .expect("stage");
        // Closing writes the rest.
        log.close().expect("close");
    }
    let closed = tmp.path().join(log_file_name(first_gen));
    let closed_bytes = std::fs::read(&closed).expect("closed generation");
    assert!(closed_bytes.windows(15).any(|w| w == b"before-rotation"));
    assert!(!closed_bytes.windows(14).any(|w| w == b"after-rotation"));
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    let db = &o.store.dbs[0];
    assert_eq!(
        db.get(&b("a")).map(|e| e.value().clone()),
        Some(Value::Str(b("1")))
    );
    assert_eq!(
        db.get(&b("n")).map(|e| e.value().clone()),
        Some(Value::Str(b("3")))
    );
    assert!(db.get(&b("before-rotation")).is_some());
    assert!(db.get(&b("after-rotation")).is_some());
}

#[test]
fn group_commit_covers_concurrent_writers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let log = AppendLog::open(&dir, FsyncPolicy::Always, 1).expect("log");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let seq = log
                        .append(&[rec(0, &["SET", &format!("t{t}-{i}"), "v"])])
                        .expect("append");
                    log.wait_durable(seq).expect("durable");
                    assert!(log.stats().durable_seq >= seq);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let st = log.stats();
    assert_eq!(st.seq, 400);
    assert_eq!(st.durable_seq, 400);
    assert!(st.fsyncs >= 1 && st.fsyncs <= 400, "{st:?}");
    // The async form, from a tokio runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let seq = log
            .append(&[rec(1, &["SET", "async", "v"])])
            .expect("append");
        log.durable(seq).await.expect("durable");
    });
    assert!(log.stats().durable_seq >= 401);
    drop(log);
    drop(dir);
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert_eq!(o.store.total_keys(), 401);
}

#[test]
fn multi_record_batch_is_one_frame() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = {
        let o = reopen(tmp.path(), &LoadOptions::new()).expect("open");
        let log = open_log(&o, FsyncPolicy::No);
        log.append(&[rec(0, &["SET", "solo", "1"])])
            .expect("append");
        // A MULTI/EXEC's writes as one batch.
        log.append(&[rec(0, &["SET", "a", "1"]), rec(0, &["SET", "b", "1"])])
            .expect("append");
        tmp.path().join(log_file_name(log.generation()))
    };
    // Tear the batch's frame: neither of its records is applied.
    let len = std::fs::metadata(&file).expect("md").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(len - 2)
        .expect("truncate");
    let o = reopen(tmp.path(), &LoadOptions::new()).expect("recover");
    assert!(o.store.dbs[0].get(&b("solo")).is_some());
    assert!(o.store.dbs[0].get(&b("a")).is_none() && o.store.dbs[0].get(&b("b")).is_none());
    let _ = Value::Str(Bytes::new());
}

#[test]
fn everysec_fsyncs_in_the_background() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(tmp.path()).expect("open");
    let log = AppendLog::open(&dir, FsyncPolicy::EverySec, 1).expect("log");
    let seq = log.append(&[rec(0, &["SET", "a", "1"])]).expect("append");
    // Returns at once (no durability wait under everysec)...
    log.wait_durable(seq).expect("no wait");
    // ...and the syncer makes it durable within about a second.
    let t = std::time::Instant::now();
    while log.stats().durable_seq < seq {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "not fsynced after 3 s: {:?}",
            log.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(log.stats().fsyncs >= 1);
    // Closing refuses further appends instead of leaving them unsynced.
    log.close().expect("close");
    assert!(log.append(&[rec(0, &["SET", "b", "1"])]).is_err());
}
