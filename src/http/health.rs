//! Liveness and readiness probes for load balancers and orchestrators.

use axum::{extract::State, http::StatusCode};

use super::AppState;

/// `GET /healthz`: 200 while the process runs.
pub async fn live() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the database answers, 503 otherwise.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}
