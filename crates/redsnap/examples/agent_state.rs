//! A counter agent whose state survives restarts.
//!
//! * restores the counter from `<ns>:latest` and prints `restored <n>`;
//! * increments it every 100 ms;
//! * a [`Snapshotter`] saves it every `SNAPSHOT_INTERVAL_MS` (default 500)
//!   and the example prints `saved <n>` after each acknowledged save;
//! * on SIGTERM / Ctrl-C it takes a final snapshot, prints `final <n>` and
//!   exits 0.
//!
//! Environment: `REDIS_URL` (default `redsnap:///./data`: the redsnap engine in
//! this process, its data in `./data`, no server to run; `redis://...` for a
//! Redis or `redsnap serve`), `REDIS_PASSWORD`, `AGENT_NAMESPACE` (default `agent`),
//! `SNAPSHOT_INTERVAL_MS`, `AGENT_FALLBACK_DIR` (local durable fallback used
//! while Redis is unreachable; saves made there print `saved <n> (local fallback)`,
//! one per interval since saves stop waiting on Redis once it was found down,
//! and reach Redis when it returns, without replacing a newer state another
//! instance saved meanwhile).
//!
//! The in-process store is shut down last (`RedisStore::shutdown`): its final
//! snapshot, then the data directory is unlocked. A second agent started on the
//! same directory meanwhile exits with `data directory ./data is in use by pid N`.
//!
//! ```text
//! cargo run -p redsnap --example agent_state                     # ./data, in process
//! REDIS_URL='redsnap:///./data?appendfsync=always' cargo run -p redsnap --example agent_state
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p redsnap --example agent_state
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redsnap::{RedisConfig, RedisStore, SaveOutcome, Snapshots, Snapshotter, SnapshotterConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The same code whatever the backend: the URL picks it.
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "redsnap:///./data".to_string());
    let store = RedisStore::new(RedisConfig::from_lookup(|k| match k {
        "REDIS_URL" => Some(url.clone()),
        _ => std::env::var(k).ok(),
    })?)?;
    let ns = std::env::var("AGENT_NAMESPACE").unwrap_or_else(|_| "agent".to_string());
    let interval_ms: u64 = std::env::var("SNAPSHOT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut snaps = Snapshots::<Counter>::new(store.clone(), &ns);
    if let Ok(dir) = std::env::var("AGENT_FALLBACK_DIR") {
        // While Redis is down, saves go to this directory and are replayed later.
        snaps = snaps.with_fallback(dir)?;
    }
    let snaps = Arc::new(snaps);

    let restored = snaps.restore().await?.unwrap_or_default();
    println!("restored {}", restored.n);

    let counter = Arc::new(AtomicU64::new(restored.n));
    let c = counter.clone();
    let snapshotter = Snapshotter::spawn(
        snaps,
        SnapshotterConfig {
            interval: Duration::from_millis(interval_ms),
            ..SnapshotterConfig::default()
        },
        move || Counter {
            n: c.load(Ordering::SeqCst),
        },
    );
    let mut events = snapshotter.subscribe();
    let printer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    if ev.is_final {
                        println!("final {}", ev.state.n);
                    } else {
                        match ev.outcome {
                            SaveOutcome::Saved { .. } => println!("saved {}", ev.state.n),
                            SaveOutcome::Deferred { .. } => {
                                println!("saved {} (local fallback)", ev.state.n)
                            }
                            SaveOutcome::Unchanged => {}
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => { counter.fetch_add(1, Ordering::SeqCst); }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    snapshotter.shutdown().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;
    // In process: the final snapshot of the data directory, and its unlock.
    store.shutdown().await?;
    Ok(())
}
