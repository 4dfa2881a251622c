//! `GET /health`: `{healthy, connectionState, reconnectAttempts, latencyMs}` as the
//! library reports a store's health, plus whether writes are refused and why, and
//! the state of persistence. HTTP 200 when healthy, 503 when not. `redsnap health`
//! prints the same document, built from INFO over RESP.

use crate::state::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Persistence as `/health` and `redsnap health` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceHealth {
    /// Whether anything is persisted (save points, `snapshot-interval`, the log).
    pub enabled: bool,
    /// Seconds since the last successful snapshot (None: none yet).
    pub last_snapshot_age_sec: Option<u64>,
    /// `ok` or `err`: the outcome of the last snapshot attempt.
    pub last_snapshot_status: &'static str,
    pub snapshot_in_progress: bool,
    /// Whether the append log is on.
    pub append_log: bool,
    /// `ok` or `err`; None when the log is off.
    pub append_log_write_status: Option<&'static str>,
    /// `ok` or `err`; None when the log is off (or the server does not say).
    pub append_log_fsync_status: Option<&'static str>,
}

/// The health document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// The server answered and accepts writes.
    pub healthy: bool,
    /// `connected` when the server answered, `error` when not.
    pub connection_state: &'static str,
    /// Failed attempts to reach the server (0 or 1: one attempt is made).
    pub reconnect_attempts: u64,
    /// For `/health`: the time to take the server lock and read the figures; for
    /// `redsnap health`: the PING round trip. None when the server did not answer.
    pub latency_ms: Option<u64>,
    /// Writes get an error (MISCONF after a failed snapshot with
    /// `stop-writes-on-bgsave-error yes` or a failed append log write or fsync,
    /// NOREPLICAS).
    pub writes_refused: bool,
    /// The error writes get.
    pub writes_refused_reason: Option<String>,
    /// None when the server did not answer.
    pub persistence: Option<PersistenceHealth>,
    /// Why the server could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HealthReport {
    /// A server that answered: healthy unless writes are refused.
    pub fn answered(
        latency: Duration,
        refusal: Option<String>,
        persistence: PersistenceHealth,
    ) -> HealthReport {
        HealthReport {
            healthy: refusal.is_none(),
            connection_state: "connected",
            reconnect_attempts: 0,
            latency_ms: Some(latency.as_millis().min(u64::MAX as u128) as u64),
            writes_refused: refusal.is_some(),
            writes_refused_reason: refusal,
            persistence: Some(persistence),
            error: None,
        }
    }

    /// A server that could not be asked.
    pub fn unreachable(error: String) -> HealthReport {
        HealthReport {
            healthy: false,
            connection_state: "error",
            reconnect_attempts: 1,
            latency_ms: None,
            writes_refused: false,
            writes_refused_reason: None,
            persistence: None,
            error: Some(error),
        }
    }
}

pub(super) async fn handler(State(shared): State<Arc<Shared>>) -> Response {
    let read = super::with_lock(&shared, |inner| {
        (
            crate::persist::refusal_text(inner),
            crate::persist::health_figures(inner),
        )
    })
    .await;
    let report = match read {
        Some(((refusal, persistence), took)) => HealthReport::answered(took, refusal, persistence),
        None => HealthReport::unreachable(format!(
            "the server lock was not free within {} ms (a script or command is running)",
            super::LOCK_WAIT.as_millis()
        )),
    };
    let code = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}
