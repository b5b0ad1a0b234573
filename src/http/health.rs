//! Liveness and readiness probes for load balancers and orchestrators, and metrics.

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

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let (open, idle) = state.db.pool_stats();
    ::metrics::gauge!("db_pool_connections", "state" => "open").set(f64::from(open));
    ::metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
