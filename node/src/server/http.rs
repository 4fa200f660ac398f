//! Plain HTTP routes: the demo page, liveness, readiness, metrics and version.

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::core::build::BuildInfo;
use crate::core::state::AppState;

/// The demo chat at `/`, the official browser client and the recovery helper it loads.
pub fn demo_routes() -> Router {
    const PAGE: &str = include_str!("../../assets/index.html");
    Router::new()
        .route("/", get(async || Html(PAGE)))
        .route(
            "/assets/socket.io.min.js",
            get(async |headers: HeaderMap| {
                client_file("socket.io.min.js", MIN_JS, &bundle_etag(), &headers)
            }),
        )
        .route(
            "/assets/roomcast.mjs",
            get(async |headers: HeaderMap| {
                client_file(HELPER_NAME, HELPER_JS, HELPER_ETAG, &headers)
            }),
        )
}

/// The version of the vendored `socket.io-client` bundle, its ETag as in Node's server.
pub const CLIENT_VERSION: &str = "4.8.4";

/// The bundle most pages load, also under `/assets` for the demo page.
const MIN_JS: &str = include_str!("../../assets/socket.io.min.js");

/// The browser bundle files Node's Socket.IO serves under its path, by name (its
/// msgpack build excepted: this server speaks the default parser only).
const CLIENT_FILES: &[(&str, &str)] = &[
    ("socket.io.js", include_str!("../../assets/socket.io.js")),
    ("socket.io.js.map", include_str!("../../assets/socket.io.js.map")),
    ("socket.io.min.js", MIN_JS),
    ("socket.io.min.js.map", include_str!("../../assets/socket.io.min.js.map")),
    ("socket.io.esm.min.js", include_str!("../../assets/socket.io.esm.min.js")),
    ("socket.io.esm.min.js.map", include_str!("../../assets/socket.io.esm.min.js.map")),
];

/// The client helper that gets a socket its rooms and missed messages back after a
/// reconnect: an ES module of this project, served next to the bundle.
const HELPER_NAME: &str = "roomcast.mjs";
const HELPER_JS: &str = include_str!("../../assets/roomcast.mjs");

/// The helper's ETag follows this server's build (version and commit), not the bundle's
/// version: a browser keeps its copy until the node runs another build.
const HELPER_ETAG: &str =
    concat!("\"roomcast-", env!("CARGO_PKG_VERSION"), "-", env!("ROOMCAST_GIT_COMMIT"), "\"");

/// The bundle files' ETag: the vendored client version, as Node's server sends it.
fn bundle_etag() -> String {
    format!("\"{CLIENT_VERSION}\"")
}

/// Serves `<server.path>/socket.io.js`, the other bundle files and `roomcast.mjs`,
/// before the Socket.IO layer would take the request for a transport.
pub async fn serve_client(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let base = app.config.server.path.trim_end_matches('/');
    let name = req.uri().path().strip_prefix(base).and_then(|rest| rest.strip_prefix('/'));
    let file = match name {
        Some(HELPER_NAME) => Some((HELPER_NAME, HELPER_JS, HELPER_ETAG.to_owned())),
        Some(name) => CLIENT_FILES
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(file, body)| (*file, *body, bundle_etag())),
        None => None,
    };
    match file {
        Some((name, body, etag)) if [Method::GET, Method::HEAD].contains(req.method()) => {
            client_file(name, body, &etag, req.headers())
        }
        _ => next.run(req).await,
    }
}

/// One client file with Node's caching: revalidated each time (`max-age=0`) against
/// `etag`, `304 Not Modified` when the browser has it.
fn client_file(name: &str, body: &'static str, etag: &str, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag || v.strip_prefix("W/") == Some(etag));
    if fresh {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let kind = if name.ends_with(".map") { "application/json" } else { "application/javascript" };
    let headers = [
        (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
        (header::CACHE_CONTROL, "public, max-age=0".to_owned()),
        (header::ETAG, etag.to_owned()),
    ];
    (headers, body).into_response()
}

/// `/livez`, `/readyz`, `/metrics` and `/version`.
pub fn ops_routes(state: AppState) -> Router {
    Router::new()
        .route("/version", get(async || Json(BuildInfo::CURRENT)))
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
/// gets 403 (see [`crate::core::guard`]). A long-polling session is bound to its address by
/// its handshake, before the response naming it leaves; an address with
/// `server.max_unconnected_per_address` sessions still waiting for their first
/// namespace connect gets 429 for a new one.
pub async fn gate_engine(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(app.config.server.path.as_str()) {
        return next.run(req).await;
    }
    let query = req.uri().query().unwrap_or_default();
    let address = crate::core::guard::client_address(
        req.headers(),
        req.extensions(),
        &app.config.server.trusted_proxies,
    );
    match query.split('&').find_map(|kv| kv.strip_prefix("sid=")) {
        None if !app.is_ready() => {
            (StatusCode::SERVICE_UNAVAILABLE, "draining: reconnect to another node").into_response()
        }
        Some(sid) => {
            if app.owners.allows(sid, address) {
                next.run(req).await
            } else {
                app.metrics.error(crate::core::metrics::ErrorKind::SessionGuard).inc();
                (StatusCode::FORBIDDEN, "this session belongs to another client").into_response()
            }
        }
        None => {
            let Some(address) = address else { return next.run(detach_head(req)).await };
            if let Err(e) = app.owners.admit(address) {
                app.metrics.error(crate::core::metrics::ErrorKind::HandshakeLimit).inc();
                tracing::debug!(error = %e, "handshake refused");
                return (StatusCode::TOO_MANY_REQUESTS, "too many sessions waiting to connect")
                    .into_response();
            }
            let polling = req.method() == Method::GET && query.contains("transport=polling");
            let response = next.run(detach_head(req)).await;
            if polling { bind_opened_session(&app, response, address).await } else { response }
        }
    }
}

/// Largest handshake response read to find the session id (an open packet is ~100 bytes).
const OPEN_RESPONSE_MAX: usize = 16 * 1024;

/// Binds the session a polling handshake response opens to `address`, before the
/// response (the only place its id appears) leaves the node.
async fn bind_opened_session(app: &AppState, response: Response, address: IpAddr) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, OPEN_RESPONSE_MAX).await else {
        // An id that cannot be bound must not reach the client.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(sid) = opened_sid(&bytes) {
        app.owners.bind_handshake(sid, address);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The session id in an Engine.IO open packet (`0{"sid":"…",…}`), whatever framing
/// the protocol version puts around it.
fn opened_sid(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = br#""sid":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|b| *b == b'"')?;
    let sid = std::str::from_utf8(&body[start..start + len]).ok()?;
    let plausible = !sid.is_empty()
        && sid.len() <= 64
        && sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(sid)
}

/// A copy of the request with its URI and headers in allocations of their own.
///
/// hyper parses a request head in place: the URI and every header value are slices of
/// the connection's read buffer (8 KiB or more). engineioxide keeps the head of the
/// request that opened a session for the socket's whole life, so without this copy each
/// socket would pin that buffer, the largest single cost of an idle connection.
fn detach_head(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // Both sides accept the same bytes; should one ever not, the slice is kept.
        let copy = HeaderValue::from_bytes(value.as_bytes()).map_or_else(
            |_| value.clone(),
            |mut copy| {
                copy.set_sensitive(value.is_sensitive());
                copy
            },
        );
        headers.append(name.clone(), copy);
    }
    parts.headers = headers;
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        // axum's router keeps a clone of the URI too.
        if let Some(original) = parts.extensions.get_mut::<OriginalUri>() {
            original.0 = uri.clone();
        }
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use axum::http::header::{AUTHORIZATION, COOKIE};
    use bytes::Bytes;

    use super::*;

    #[test]
    fn finds_the_session_id_of_every_open_packet_framing() {
        let open = br#"0{"sid":"aB3-_x","upgrades":["websocket"],"pingInterval":25000}"#;
        assert_eq!(opened_sid(open), Some("aB3-_x"));
        let v3_text = br#"96:0{"sid":"aB3-_x","upgrades":[]}2:40"#;
        assert_eq!(opened_sid(v3_text), Some("aB3-_x"));
        let v3_binary = b"\x00\x09\xff0{\"sid\":\"aB3\",\"upgrades\":[]}";
        assert_eq!(opened_sid(v3_binary), Some("aB3"));
        assert_eq!(opened_sid(br#"0{"sid":"a\"b"}"#), None);
        assert_eq!(opened_sid(b"ok"), None);
    }

    #[test]
    fn the_bundle_etag_is_the_vendored_version() {
        let header = format!("/*!\n * Socket.IO v{CLIENT_VERSION}\n");
        for (name, body) in CLIENT_FILES {
            if name.ends_with(".map") {
                assert!(body.starts_with('{'), "{name} is not a source map");
            } else {
                assert!(
                    body.starts_with(&header),
                    "{name} is not socket.io-client {CLIENT_VERSION}"
                );
            }
        }
    }

    #[test]
    fn a_known_bundle_is_not_sent_again() {
        let etag = bundle_etag();
        let with = |tag: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(tag).expect("value"));
            client_file("socket.io.js", "x", &etag, &headers).status()
        };
        assert_eq!(with(&etag), StatusCode::NOT_MODIFIED);
        assert_eq!(with(&format!("W/{etag}")), StatusCode::NOT_MODIFIED);
        assert_eq!(with("\"4.0.0\""), StatusCode::OK);
        let fresh = client_file("socket.io.js.map", "{}", &etag, &HeaderMap::new());
        assert_eq!(fresh.headers()[header::CONTENT_TYPE], "application/json; charset=utf-8");
        assert_eq!(fresh.headers()[header::ETAG], etag.as_str());
    }

    #[test]
    fn the_helper_etag_is_the_server_build_not_the_bundle_version() {
        let version = crate::core::build::BuildInfo::CURRENT.version;
        assert!(HELPER_ETAG.starts_with(&format!("\"roomcast-{version}-")), "{HELPER_ETAG}");
        assert!(!HELPER_ETAG.contains(CLIENT_VERSION));
        let helper = client_file(HELPER_NAME, HELPER_JS, HELPER_ETAG, &HeaderMap::new());
        assert_eq!(helper.headers()[header::CONTENT_TYPE], "application/javascript; charset=utf-8");
        assert_eq!(helper.headers()[header::ETAG], HELPER_ETAG);
        assert!(HELPER_JS.contains("export function recoverable(socket)"));
    }

    #[test]
    fn a_detached_head_lets_go_of_the_read_buffer() {
        // As hyper parses: URI and header values are slices of one connection buffer.
        let buffer = Bytes::from(b"/socket.io/?EIO=4&transport=websocket;Bearer t;a=b".to_vec());
        let uri = Uri::from_maybe_shared(buffer.slice(0..37)).expect("uri");
        let mut auth = HeaderValue::from_maybe_shared(buffer.slice(38..46)).expect("value");
        auth.set_sensitive(true);
        let cookie = HeaderValue::from_maybe_shared(buffer.slice(47..)).expect("value");
        let mut req = Request::builder()
            .uri(uri.clone())
            .header(AUTHORIZATION, auth)
            .header(COOKIE, cookie)
            .body(Body::empty())
            .expect("request");
        req.extensions_mut().insert(OriginalUri(uri));
        assert!(!buffer.is_unique());

        let req = detach_head(req);
        assert!(buffer.is_unique(), "the head still refers to the read buffer");
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        let original = req.extensions().get::<OriginalUri>().expect("original uri");
        assert_eq!(original.0, *req.uri());
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer t");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers()[COOKIE], "a=b");
    }
}
