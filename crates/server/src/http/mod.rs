//! The server over HTTP (`http-port`, off unless set): `GET /health` (the health JSON
//! the library reports, plus persistence; 503 when unhealthy) and `GET /metrics`
//! (Prometheus / OpenMetrics text). Served by axum on the `bind` addresses, next to
//! the RESP listeners, from startup to shutdown.
//!
//! Nothing here costs anything per command: both endpoints take the server lock
//! once per request, copy the figures the server keeps anyway (INFO's counters,
//! commandstats and latency histograms, persistence stats) in O(databases +
//! commands), release it, and render outside it.

mod health;
mod metrics;

pub use health::{HealthReport, PersistenceHealth};

use crate::config::Config;
use crate::state::{Inner, Shared};
use crate::ServerError;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a request waits for the server lock (a busy script holds it) before
/// answering that the server is not responding.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Binds `http-port` on every `bind` address (none when it is 0). The listen backlog
/// is the RESP listeners' (`tcp-backlog`).
pub(crate) fn bind(config: &Config) -> Result<Vec<TcpListener>, ServerError> {
    let port = config.int("http-port").clamp(0, u16::MAX as i64) as u16;
    if port == 0 {
        return Ok(Vec::new());
    }
    let backlog = config.int("tcp-backlog").clamp(0, i32::MAX as i64) as i32;
    let wanted =
        crate::listeners::wanted(port, &config.str("bind")).map_err(ServerError::Config)?;
    let mut out = Vec::new();
    for (sa, optional) in wanted {
        match crate::listeners::bind_one(sa, backlog) {
            Ok(l) => out.push(l),
            Err(e) if optional && e.kind() != std::io::ErrorKind::AddrInUse => {
                tracing::debug!("optional bind {sa} (http-port) skipped: {e}");
            }
            Err(err) => {
                return Err(ServerError::Bind {
                    addr: format!("{sa} (http-port)"),
                    err,
                })
            }
        }
    }
    if out.is_empty() {
        return Err(ServerError::Config(format!(
            "no address to listen on for http-port {port}"
        )));
    }
    Ok(out)
}

/// Serves the listeners until `stop` turns true; returns the tasks.
pub(crate) fn serve(
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route("/health", get(health::handler))
        .route("/metrics", get(metrics::handler))
        .with_state(shared);
    listeners
        .into_iter()
        .map(|l| {
            let app = app.clone();
            let mut stop = stop.clone();
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!("HTTP (/health, /metrics) on {addr}");
            tokio::spawn(async move {
                let res = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = res {
                    tracing::error!("HTTP server on {addr}: {e}");
                }
            })
        })
        .collect()
}

/// Runs `f` under the server lock, waiting for it at most [`LOCK_WAIT`] without
/// blocking a runtime worker for long; returns what `f` returned and how long
/// taking the lock and running `f` took. None when the lock stayed taken.
pub(crate) async fn with_lock<T>(
    shared: &Shared,
    f: impl FnOnce(&mut Inner) -> T,
) -> Option<(T, Duration)> {
    let started = Instant::now();
    let deadline = started + LOCK_WAIT;
    loop {
        if let Some(mut g) = shared.inner.try_lock_for(Duration::from_millis(2)) {
            let out = f(&mut g);
            drop(g);
            return Some((out, started.elapsed()));
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
