//! Plain HTTP routes: liveness, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

/// `/livez`, `/readyz` and `/metrics`.
pub fn ops_routes(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(async || "ok"))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Ready while the node takes sockets and its database answers.
async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    if !app.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !app.db.ping().await {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render())
}
