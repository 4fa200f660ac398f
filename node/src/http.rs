//! Plain HTTP routes: the demo page, liveness, readiness and metrics.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
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

/// Guards the Socket.IO path. While the node is not ready (starting or draining), a
/// new Engine.IO session, i.e. a
/// request on the Socket.IO path without `sid`, gets 503. Clients take that as a
/// transport error and retry, through the load balancer, on another node; a Socket.IO
/// `connect_error` would instead stop them. Requests of live sessions pass.
///
/// A request naming a live session from an address other than the one that opened it
/// gets 403 (see [`crate::guard`]).
pub async fn gate_engine(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(app.config.server.path.as_str()) {
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or_default();
    match query.split('&').find_map(|kv| kv.strip_prefix("sid=")) {
        None if !app.is_ready() => {
            (StatusCode::SERVICE_UNAVAILABLE, "draining: reconnect to another node").into_response()
        }
        Some(sid) => {
            let trust = app.config.auth.rate_limit.trust_forwarded_for;
            let address = crate::guard::client_address(req.headers(), req.extensions(), trust);
            if app.owners.allows(sid, address) {
                next.run(req).await
            } else {
                app.metrics.errors.with_label_values(&["session_guard"]).inc();
                (StatusCode::FORBIDDEN, "this session belongs to another client").into_response()
            }
        }
        None => next.run(req).await,
    }
}
