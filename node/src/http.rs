//! Plain HTTP routes: the demo page, liveness, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::state::AppState;

/// The demo chat at `/` and the official browser client it loads.
pub fn demo_routes() -> Router {
    const PAGE: &str = include_str!("../assets/index.html");
    const CLIENT: &str = include_str!("../assets/socket.io.min.js");
    Router::new().route("/", get(async || Html(PAGE))).route(
        "/assets/socket.io.min.js",
        get(async || {
            let headers = [
                (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ];
            (headers, CLIENT)
        }),
    )
}

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
