//! INFO memory, MEMORY STATS / DOCTOR / MALLOC-STATS / PURGE: Redis 7.0's fields,
//! figures that move with the dataset, memory given back after FLUSHALL, and the
//! snapshot's share (issue 16).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::Value;
use redsnap_testsupport::{RedisServer, RedsnapServer};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn conn(port: u16) -> redis::Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let c = c.get_connection().expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c
}

fn info_memory(c: &mut redis::Connection) -> BTreeMap<String, String> {
    let s: String = redis::cmd("INFO").arg("memory").query(c).expect("info");
    s.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k)
        .unwrap_or_else(|| panic!("INFO memory has no {k}: {m:?}"))
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{k} is not a number: {m:?}"))
}

/// MEMORY STATS as (name -> value), nested maps flattened as `db.0/overhead...`.
fn memory_stats(c: &mut redis::Connection) -> BTreeMap<String, Value> {
    let v: Value = redis::cmd("MEMORY").arg("STATS").query(c).expect("stats");
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(m) => m,
        Value::Array(a) => a.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
        other => panic!("MEMORY STATS: {other:?}"),
    };
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        let k: String = redis::from_redis_value(k).expect("name");
        out.insert(k, v);
    }
    out
}

fn stat(m: &BTreeMap<String, Value>, k: &str) -> f64 {
    match m.get(k) {
        Some(Value::Int(n)) => *n as f64,
        Some(Value::Double(d)) => *d,
        Some(v @ Value::BulkString(_)) => redis::from_redis_value::<String>(v.clone())
            .expect("text")
            .parse()
            .expect("number"),
        other => panic!("MEMORY STATS {k}: {other:?}"),
    }
}

fn load(c: &mut redis::Connection, n: usize, value: &str) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET").arg(format!("key:{i:012}")).arg(value).ignore();
        }
        p.query::<()>(c).expect("load");
    }
}

#[test]
fn info_memory_and_memory_stats_have_every_field_redis_reports() {
    let redis = RedisServer::start().expect("start redis-server");
    let ours = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let (mut r, mut s) = (conn(redis.port()), conn(ours.port()));
    load(&mut r, 100, "v");
    load(&mut s, 100, "v");
    let (ri, si) = (info_memory(&mut r), info_memory(&mut s));
    for k in ri.keys() {
        assert!(si.contains_key(k), "INFO memory lacks {k}");
    }
    let (rs, ss) = (memory_stats(&mut r), memory_stats(&mut s));
    for k in rs.keys() {
        assert!(ss.contains_key(k), "MEMORY STATS lacks {k}");
    }
    assert!(matches!(
        ss.get("db.0"),
        Some(Value::Map(_)) | Some(Value::Array(_))
    ));
    assert_eq!(stat(&ss, "keys.count"), 100.0);
    // Redsnap's figures for the snapshot's share are part of the overhead.
    assert!(ss.contains_key("snapshot.changes") && ss.contains_key("snapshot.copy"));
    assert!(si.contains_key("mem_snapshot_changes") && si.contains_key("mem_snapshot_copy"));
    // The reports that are text.
    let doctor: String = redis::cmd("MEMORY")
        .arg("DOCTOR")
        .query(&mut s)
        .expect("doctor");
    assert!(doctor.starts_with("Hi Sam"), "{doctor}");
    let malloc: String = redis::cmd("MEMORY")
        .arg("MALLOC-STATS")
        .query(&mut s)
        .expect("malloc-stats");
    assert!(!malloc.is_empty());
    let purge: String = redis::cmd("MEMORY")
        .arg("PURGE")
        .query(&mut s)
        .expect("purge");
    assert_eq!(purge, "OK");
}

#[test]
fn dataset_figures_follow_the_keys_and_flushall_gives_memory_back() {
    let ours = RedsnapServer::builder()
        .extra_args(&["--appendonly", "no", "--save", ""])
        .start()
        .expect("start redsnap");
    let mut c = conn(ours.port());
    let empty = info_memory(&mut c);
    let value = "x".repeat(1000);
    load(&mut c, 20_000, &value);
    let loaded = info_memory(&mut c);
    let stats = memory_stats(&mut c);
    // 20,000 values of 1,000 bytes: the dataset grows by at least that much.
    let grown = num(&loaded, "used_memory_dataset") - num(&empty, "used_memory_dataset");
    assert!(grown >= 20_000.0 * 1000.0, "dataset grew by {grown}");
    assert!(num(&loaded, "used_memory_peak") >= num(&loaded, "used_memory"));
    assert!(num(&loaded, "used_memory_overhead") > num(&empty, "used_memory_overhead"));
    assert!(stat(&stats, "dataset.bytes") >= 20_000.0 * 1000.0);
    assert_eq!(stat(&stats, "keys.count"), 20_000.0);
    assert!(stat(&stats, "keys.bytes-per-key") >= 1000.0);
    let pct = num(&loaded, "used_memory_dataset_perc");
    assert!(pct > 50.0 && pct <= 100.0, "{pct}");

    redis::cmd("FLUSHALL")
        .query::<()>(&mut c)
        .expect("flushall");
    let flushed = info_memory(&mut c);
    let freed = num(&loaded, "used_memory") - num(&flushed, "used_memory");
    assert!(freed >= 20_000.0 * 1000.0, "FLUSHALL freed {freed}");
    assert!(num(&flushed, "used_memory_dataset") < num(&loaded, "used_memory_dataset") / 10.0);
    // The peak stays; the percentage of it falls.
    assert!(num(&flushed, "used_memory_peak") >= num(&loaded, "used_memory"));
    assert!(num(&flushed, "used_memory_peak_perc") < 50.0);
    // The allocator gives the pages back: RSS falls by most of what was freed.
    let rss_loaded = num(&loaded, "used_memory_rss");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rss = num(&info_memory(&mut c), "used_memory_rss");
        if rss_loaded - rss >= freed / 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS {rss} after FLUSHALL (loaded {rss_loaded}, freed {freed})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writes_after_a_snapshot_are_recorded_not_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = RedsnapServer::builder()
        .dir(dir.path())
        .extra_args(&[
            "--appendonly",
            "no",
            "--save",
            "86400 2000000000",
            "--snapshot-interval",
            "0",
        ])
        .start()
        .expect("start redsnap");
    let mut c = conn(ours.port());
    load(&mut c, 20_000, "v");
    let bgsave = |c: &mut redis::Connection| {
        let _: String = redis::cmd("BGSAVE").query(c).expect("bgsave");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s: String = redis::cmd("INFO")
                .arg("persistence")
                .query(c)
                .expect("info");
            if s.contains("rdb_bgsave_in_progress:0") {
                break;
            }
            assert!(Instant::now() < deadline, "BGSAVE did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    bgsave(&mut c);
    let before = info_memory(&mut c);
    assert_eq!(num(&before, "mem_snapshot_changes"), 0.0);
    // A few keys changed after the snapshot: recorded (a few bytes each), and the
    // next snapshot is incremental.
    for i in 0..100 {
        redis::cmd("SET")
            .arg(format!("key:{i:012}"))
            .arg("changed")
            .query::<()>(&mut c)
            .expect("set");
    }
    let after = info_memory(&mut c);
    assert!(num(&after, "mem_snapshot_changes") > 0.0);
    assert_eq!(num(&after, "mem_snapshot_copy"), 0.0);
    bgsave(&mut c);
    let s: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut c)
        .expect("info");
    assert!(s.contains("rdb_last_snapshot_incremental:1"), "{s}");
    assert!(s.contains("rdb_last_snapshot_changed:100"), "{s}");
}
