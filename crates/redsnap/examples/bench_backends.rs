//! Latency of the library on each backend (issue 14): `Snapshots::save` followed by
//! `latest()`, and `latest()` alone, p50/p99, for 1 KB and 100 KB states, on
//!
//! * the in-process backend in memory (`redsnap://`), durable
//!   (`redsnap:///<tmp>`, `redsnap serve`'s defaults: append log with
//!   `appendfsync everysec`, snapshots in the background), and durable with
//!   `appendfsync always`;
//! * `redsnap serve` over loopback (its defaults: append log, everysec);
//! * redis-server over loopback (persistence off, as the test harness starts it).
//!
//! ```text
//! cargo run --release -p redsnap --example bench_backends
//! REDSNAP_BIN=target/release/redsnap BENCH_ITERS=2000 cargo run --release -p redsnap --example bench_backends
//! ```
//!
//! One client task, sequential operations; every save changes the state (a version
//! counter), so none is skipped as unchanged. Prints a markdown table.

use std::time::{Duration, Instant};

use redsnap::{InProcessConfig, RedisConfig, RedisStore, Snapshots};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    version: u64,
    items: Vec<String>,
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "planner",
    "executor",
    "critic",
    "memory",
    "tool",
    "search",
    "customer",
    "order",
    "invoice",
    "pending",
    "complete",
    "retry",
    "tokens",
    "latency",
    "budget",
    "region",
    "session",
    "thread",
    "checkpoint",
    "assistant",
];

/// A state of about `bytes` of compact JSON.
fn state(bytes: usize) -> State {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut items = Vec::new();
    let mut size = 30;
    while size < bytes {
        let mut s = String::new();
        for _ in 0..6 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
            s.push(' ');
        }
        s.push_str(&(x % 100_000).to_string());
        size += s.len() + 3;
        items.push(s);
    }
    State { version: 0, items }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Row {
    backend: String,
    size: &'static str,
    op: &'static str,
    p50: f64,
    p99: f64,
}

async fn measure(
    store: &RedisStore,
    backend: &str,
    size: &'static str,
    base: &State,
    iters: usize,
    rows: &mut Vec<Row>,
) -> redsnap::Result<()> {
    let ns = format!("bench-{backend}-{size}").replace([' ', '/'], "-");
    let snaps: Snapshots<State> = Snapshots::new(store.clone(), &ns);
    let mut st = base.clone();
    // Warm up (connections, caches).
    for _ in 0..iters / 10 + 5 {
        st.version += 1;
        snaps.save(&st).await?;
        snaps.latest().await?;
    }
    let mut save_latest = Vec::with_capacity(iters);
    let mut latest = Vec::with_capacity(iters);
    for _ in 0..iters {
        st.version += 1;
        let t = Instant::now();
        snaps.save(&st).await?;
        let got = snaps.latest().await?;
        save_latest.push(t.elapsed());
        assert_eq!(got.map(|s| s.state.version), Some(st.version));
        let t = Instant::now();
        let got = snaps.latest().await?;
        latest.push(t.elapsed());
        assert!(got.is_some());
    }
    for (op, mut v) in [("save + latest", save_latest), ("latest", latest)] {
        v.sort();
        rows.push(Row {
            backend: backend.to_string(),
            size,
            op,
            p50: pct(&v, 0.5),
            p99: pct(&v, 0.99),
        });
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let iters: usize = std::env::var("BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let sizes = [("1 KB", state(1024)), ("100 KB", state(100 * 1024))];
    let mut rows = Vec::new();

    let tmp = tempfile::tempdir()?;
    let redis = redsnap_testsupport::RedisServer::start()?;
    let serve = redsnap_testsupport::RedsnapServer::start()?;
    let quick = |url: &str| -> anyhow::Result<RedisStore> {
        Ok(RedisStore::new(
            RedisConfig::new(url)?.operation_timeout(Duration::from_secs(60)),
        )?)
    };
    let backends: Vec<(&str, RedisStore)> = vec![
        ("in-process (memory)", RedisStore::open("redsnap://")?),
        (
            "in-process (everysec)",
            RedisStore::in_process(InProcessConfig::dir(tmp.path().join("everysec")))?,
        ),
        (
            "in-process (always)",
            RedisStore::in_process(
                InProcessConfig::dir(tmp.path().join("always"))
                    .appendfsync(redsnap::inproc::FsyncPolicy::Always),
            )?,
        ),
        ("redsnap serve, loopback", quick(&serve.url())?),
        ("redis-server, loopback", quick(&redis.url())?),
    ];
    for (size, base) in &sizes {
        let n = if *size == "1 KB" {
            iters
        } else {
            iters / 5 + 1
        };
        // Interleaved per size, so that load on the machine hits every backend alike.
        for (name, store) in &backends {
            measure(store, name, size, base, n, &mut rows).await?;
        }
    }
    for (_, store) in &backends {
        store.shutdown().await?;
    }

    println!("| state | operation | backend | p50 ms | p99 ms | p50 vs redis-server |");
    println!("|---|---|---|---:|---:|---:|");
    for r in &rows {
        let redis_p50 = rows
            .iter()
            .find(|o| o.size == r.size && o.op == r.op && o.backend.starts_with("redis-server"))
            .map_or(f64::NAN, |o| o.p50);
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.1}x faster |",
            r.size,
            r.op,
            r.backend,
            r.p50,
            r.p99,
            redis_p50 / r.p50
        );
    }
    Ok(())
}
