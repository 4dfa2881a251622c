//! An axum [`Router`] a service can mount (feature `http`, on by default):
//!
//! * `GET /metrics`: every metric of the store (see [`crate::metrics`]) in the
//!   OpenMetrics text format (`application/openmetrics-text; version=1.0.0`),
//!   which Prometheus scrapes as is.
//! * `GET /health` and `GET /health/memory` (the path source document 004's
//!   monitoring polls): the health JSON
//!   `{"healthy":true,"connectionState":"connected","reconnectAttempts":0,"latencyMs":1,"breaker":"closed","fallbackDepth":0,"namespaces":[...]}`,
//!   HTTP 200 when a PING just succeeded, 503 otherwise.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = redsnap::RedisStore::from_env()?;
//! let app = redsnap::http::router(store.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::metrics::{NamespaceStatus, CONTENT_TYPE};
use crate::resilience::BreakerState;
use crate::store::{Health, RedisStore};

/// Longest a `/health` request waits for the PING; past it the report says
/// unhealthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The `/health` document: [`Health`] plus the breaker and fallback state of
/// every namespace with a live `Snapshots` handle on the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `{healthy, connectionState, reconnectAttempts, latencyMs}`.
    #[serde(flatten)]
    pub health: Health,
    /// The worst breaker state over all namespaces (`closed` when none).
    pub breaker: BreakerState,
    /// Saves waiting in local fallbacks, all namespaces together.
    pub fallback_depth: u64,
    /// Per namespace.
    pub namespaces: Vec<NamespaceStatus>,
}

/// Build the report (PING bounded by [`HEALTH_TIMEOUT`]).
pub async fn health_report(store: &RedisStore) -> HealthReport {
    let limit = HEALTH_TIMEOUT.min(store.config().operation_timeout);
    let health = match tokio::time::timeout(limit, store.health()).await {
        Ok(h) => h,
        Err(_) => Health {
            healthy: false,
            connection_state: store.connection_state(),
            reconnect_attempts: store.reconnect_attempts(),
            latency_ms: None,
        },
    };
    let namespaces = store.metrics().namespaces();
    let rank = |b: BreakerState| match b {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    };
    let breaker = namespaces
        .iter()
        .map(|n| n.breaker)
        .max_by_key(|b| rank(*b))
        .unwrap_or(BreakerState::Closed);
    HealthReport {
        health,
        breaker,
        fallback_depth: namespaces.iter().map(|n| n.fallback_depth).sum(),
        namespaces,
    }
}

async fn metrics(State(store): State<RedisStore>) -> Response {
    let body = store.metrics().encode();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

async fn health(State(store): State<RedisStore>) -> Response {
    let report = health_report(&store).await;
    let code = if report.health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

/// `/metrics`, `/health` and `/health/memory` for `store`. Merge it into a
/// service's own router or serve it on its own port.
pub fn router(store: RedisStore) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/health/memory", get(health))
        .with_state(store)
}
