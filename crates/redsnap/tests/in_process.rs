//! The in-process backend's own guarantees (its behaviour as a store is the
//! conformance suite's): restarts of the `agent_state` example with no
//! `REDIS_URL`, SIGKILL under `appendfsync always`, the data directory's lock
//! against a second process, the final snapshot, background snapshots, active
//! expiry, and data directories shared with `redsnap serve` both ways.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::{example_bin, final_line, number, wait_for, Agent};
use redsnap::{Error, HashMapState, InProcessConfig, Memory, RedisStore, Snapshots};

/// `agent_state` with no `REDIS_URL` keeps its data in `./data`: run, SIGTERM,
/// run again: it restores the value it printed last (`final <n>`), every time.
#[test]
fn agent_without_redis_url_restores_its_final_value() {
    let cwd = tempfile::tempdir().unwrap();
    let mut expect = 0;
    for round in 0..3 {
        let mut a = Agent::spawn(None, "agent", Some(cwd.path()), &[]);
        assert_eq!(number(&a.next_line(), "restored "), expect, "round {round}");
        let saved = wait_for(&a, "saved ");
        assert!(saved >= expect);
        wait_for(&a, "saved ");
        let status = a.terminate();
        assert!(status.success(), "{status:?}");
        let fin = final_line(&a);
        assert!(fin > expect, "the counter moved on: {fin} after {expect}");
        expect = fin;
    }
    assert!(cwd.path().join("data").join("LOCK").exists());
    assert!(cwd.path().join("data").join("snapshot").is_dir());
}

/// Killed with SIGKILL under `appendfsync always`: the next run restores at least
/// the last save the agent saw acknowledged (and printed).
#[test]
fn agent_killed_under_always_restores_the_last_acknowledged_value() {
    let cwd = tempfile::tempdir().unwrap();
    let url = format!(
        "redsnap://{}?appendfsync=always",
        cwd.path().join("data").display()
    );
    let mut expect = 0;
    for round in 0..3 {
        let mut a = Agent::spawn(Some(&url), "killed", None, &[]);
        let restored = number(&a.next_line(), "restored ");
        assert!(
            restored >= expect,
            "round {round}: restored {restored}, but {expect} was acknowledged"
        );
        wait_for(&a, "saved ");
        wait_for(&a, "saved ");
        // Kill right after an acknowledged save was printed.
        let acked = wait_for(&a, "saved ");
        a.kill_9();
        expect = acked;
    }
    let a = Agent::spawn(Some(&url), "killed", None, &[]);
    assert!(number(&a.next_line(), "restored ") >= expect);
}

/// A second process on the same data directory gets a clear "in use by pid N"
/// error and leaves the directory alone: the first goes on saving, and its final
/// value is restored afterwards.
#[test]
fn a_second_process_on_the_same_directory_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let mut a = Agent::spawn(None, "owner", Some(cwd.path()), &[]);
    assert_eq!(number(&a.next_line(), "restored "), 0);
    wait_for(&a, "saved ");

    let out = Command::new(example_bin())
        .env_remove("REDIS_URL")
        .env("RUST_BACKTRACE", "0")
        .env("AGENT_NAMESPACE", "owner")
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("is in use by pid {}", a.pid())),
        "{err}"
    );
    assert!(err.contains("data"), "{err}");
    // It printed nothing: it never restored anything.
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The owner is unaffected.
    let before = wait_for(&a, "saved ");
    assert!(wait_for(&a, "saved ") > before);
    assert!(a.terminate().success());
    let fin = final_line(&a);
    drop(a);
    let b = Agent::spawn(None, "owner", Some(cwd.path()), &[]);
    assert_eq!(number(&b.next_line(), "restored "), fin);
}

/// Two stores on one directory in one process: the second is refused too (the
/// lock is per open, not per process), and opens once the first shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = InProcessConfig::dir(dir.path().join("d"));
    let first = RedisStore::in_process(cfg.clone()).unwrap();
    let _: () = first
        .query(redis::cmd("SET").arg("k").arg("v"))
        .await
        .unwrap();
    match RedisStore::in_process(cfg.clone()) {
        Err(Error::InProcess(m)) => {
            assert!(
                m.contains(&format!("is in use by pid {}", std::process::id())),
                "{m}"
            )
        }
        other => panic!("expected the directory to be in use: {other:?}"),
    }
    first.shutdown().await.unwrap();
    // Shut down: requests fail, the directory is free.
    let e = first
        .query::<Option<String>>(redis::cmd("GET").arg("k"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is shut down"), "{e}");
    let second = RedisStore::in_process(cfg).unwrap();
    let v: Option<String> = second.query(redis::cmd("GET").arg("k")).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    second.shutdown().await.unwrap();
}

/// Every append-log generation holds its 24-byte header only: the snapshot holds
/// the data.
fn log_is_compacted(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("appendonly."))
        .all(|e| e.metadata().map(|m| m.len() <= 24).unwrap_or(false))
}

/// Dropping the last handle without `shutdown` takes the final snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_takes_the_final_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let cfg = InProcessConfig::dir(&data);
    {
        let store = RedisStore::in_process(cfg.clone()).unwrap();
        let snaps: Snapshots<Vec<u32>> = Snapshots::new(store.clone(), "dropped");
        snaps.save(&vec![1, 2, 3]).await.unwrap();
        assert!(!log_is_compacted(&data));
    }
    assert!(log_is_compacted(&data));
    let store = RedisStore::in_process(cfg).unwrap();
    let snaps: Snapshots<Vec<u32>> = Snapshots::new(store.clone(), "dropped");
    assert_eq!(snaps.restore().await.unwrap(), Some(vec![1, 2, 3]));
    store.shutdown().await.unwrap();
}

async fn poll(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A save point reached starts a background snapshot, which compacts the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_point_starts_a_background_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let url = format!("redsnap://{}?save=1+1&snapshot-interval=0", data.display());
    let store = RedisStore::open(&url).unwrap();
    let _: () = store
        .query(redis::cmd("SET").arg("k").arg("v"))
        .await
        .unwrap();
    assert!(!log_is_compacted(&data));
    poll("the save point's snapshot", async || {
        log_is_compacted(&data)
    })
    .await;
    store.shutdown().await.unwrap();
}

/// Keys with a deadline are deleted by the cron, not only when read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_actively() {
    let store = RedisStore::open("redsnap://").unwrap();
    for i in 0..50 {
        let _: () = store
            .query(
                redis::cmd("SET")
                    .arg(format!("k{i}"))
                    .arg("v")
                    .arg("PX")
                    .arg(30),
            )
            .await
            .unwrap();
    }
    let _: () = store
        .query(redis::cmd("SET").arg("stays").arg("v"))
        .await
        .unwrap();
    poll("active expiry", async || {
        store.query::<i64>(&redis::cmd("DBSIZE")).await.unwrap() == 1
    })
    .await;
}

/// The directory of the in-process backend opens in `redsnap serve` and the other
/// way round: from the append log alone (no final snapshot, or a SIGKILLed
/// server) and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redsnap_serve_and_the_in_process_backend_share_data_directories() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shared");
    let in_process = |final_snapshot: bool| {
        RedisStore::in_process(InProcessConfig::dir(&data).snapshot_on_shutdown(final_snapshot))
            .unwrap()
    };
    let serve = || {
        redsnap_testsupport::RedsnapServer::builder()
            .dir(&data)
            .start()
            .expect("redsnap serve")
    };
    let tcp = |s: &redsnap_testsupport::RedsnapServer| {
        RedisStore::new(common::quick(redsnap::RedisConfig::new(&s.url()).unwrap())).unwrap()
    };

    // 1. In process, no final snapshot: the server reads the in-process log.
    let store = in_process(false);
    let snaps: Snapshots<Vec<String>> = Snapshots::new(store.clone(), "shared");
    snaps.save(&vec!["one".into()]).await.unwrap();
    let mem = Memory::new(store.clone());
    let key = Memory::key("t", "decision", "d1").unwrap();
    mem.set(
        &key,
        &serde_json::json!({"ok": true}),
        Some(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let mut nodes: HashMapState<u32> = HashMapState::new(store.clone(), "shared", "nodes");
    nodes
        .save(&std::collections::BTreeMap::from([
            ("a".to_string(), 1),
            ("b".to_string(), 2),
        ]))
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    assert!(!log_is_compacted(&data));

    // 2. redsnap serve on it; then SIGKILL: the next reader replays its log.
    let mut s = serve();
    let remote = tcp(&s);
    let snaps: Snapshots<Vec<String>> = Snapshots::new(remote.clone(), "shared");
    assert_eq!(
        snaps.restore().await.unwrap(),
        Some(vec!["one".to_string()])
    );
    let ttl: i64 = remote.query(redis::cmd("TTL").arg(&key)).await.unwrap();
    assert!(ttl > 0 && ttl <= 600, "the deadline survives: {ttl}");
    let mut nodes: HashMapState<u32> = HashMapState::new(remote.clone(), "shared", "nodes");
    assert_eq!(nodes.load().await.unwrap().len(), 2);
    snaps.save(&vec!["two".into()]).await.unwrap();
    s.kill_9();
    drop(s);

    // 3. In process again: the server's log replayed; a final snapshot this time.
    let store = in_process(true);
    let snaps: Snapshots<Vec<String>> = Snapshots::new(store.clone(), "shared");
    assert_eq!(
        snaps.restore().await.unwrap(),
        Some(vec!["two".to_string()])
    );
    assert_eq!(
        Memory::new(store.clone())
            .get::<serde_json::Value>(&key)
            .await
            .unwrap(),
        Some(serde_json::json!({"ok": true}))
    );
    snaps.save(&vec!["three".into()]).await.unwrap();
    store.shutdown().await.unwrap();
    assert!(log_is_compacted(&data));

    // 4. The server starts from the in-process snapshot.
    let mut s = serve();
    let remote = tcp(&s);
    let snaps: Snapshots<Vec<String>> = Snapshots::new(remote.clone(), "shared");
    assert_eq!(
        snaps.restore().await.unwrap(),
        Some(vec!["three".to_string()])
    );
    assert!(s.terminate().is_ok());
}

#[test]
fn urls_pick_the_backend() {
    for (url, inproc) in [
        ("redsnap://", true),
        ("redsnap:///tmp/x", true),
        ("redis://127.0.0.1:6379", false),
    ] {
        let cfg = redsnap::RedisConfig::new(url).unwrap();
        assert_eq!(
            matches!(cfg.topology, redsnap::Topology::InProcess(_)),
            inproc,
            "{url}"
        );
    }
    for bad in [
        "redsnap://?appendfsync=always",
        "redsnap:///d?appendfsync=sometimes",
        "redsnap:///d?nosuchsetting=1",
        "redsnap:///d?save=1",
        "redsnap://host/d",
    ] {
        assert!(
            matches!(redsnap::RedisConfig::new(bad), Err(Error::Config(_))),
            "{bad}"
        );
    }
}
