//! The operators' admin API, under `/admin/` on the ops port, and its client.
//!
//! Who is online is read from the session rows, the cluster's truth: every live socket
//! of every node has one. Disconnects and notices go through the adapter, so they
//! reach sockets on any node: a socket's id is its private room. The API is off (its
//! routes absent, so 404) unless `admin.token` is set; every request must carry that
//! token as `Authorization: Bearer`, and each one leaves an audit line.

pub mod client;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use socketioxide::BroadcastError;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;
use subtle::ConstantTimeEq;

use crate::core::auth::password;
use crate::core::db::DbError;
use crate::core::db::sessions::{SocketFilter, SocketRow};
use crate::core::state::AppState;

/// The event a notice arrives as: `notice` `{text, room, ts}`.
pub const NOTICE_EVENT: &str = "notice";

/// Longest notice text, in characters.
pub const MAX_NOTICE_CHARS: usize = 1000;

/// Sockets listed when the request names no `limit`, and the most it may name.
const DEFAULT_LIMIT: i64 = 1000;
const MAX_LIMIT: i64 = 100_000;

/// Why an admin request failed; the text is the `error` of the JSON answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The user or socket named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] DbError),
    /// The adapter could not carry the operation to the other nodes (503).
    #[error("cluster: {0}")]
    Cluster(String),
    /// Hashing a password failed (500).
    #[error(transparent)]
    Hash(#[from] password::HashError),
    /// The hashing task died (500).
    #[error("password hashing task failed: {0}")]
    HashTask(#[from] tokio::task::JoinError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Store(_) | AdminError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Hash(_) | AdminError::HashTask(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<JsonRejection> for AdminError {
    fn from(e: JsonRejection) -> Self {
        AdminError::BadRequest(format!("body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for AdminError {
    fn from(e: QueryRejection) -> Self {
        AdminError::BadRequest(format!("query: {}", e.body_text()))
    }
}

/// What the admin handlers share: the node and its Socket.IO server.
struct Admin<A: Adapter> {
    app: AppState,
    io: SocketIo<A>,
}

impl<A: Adapter> Clone for Admin<A> {
    fn clone(&self) -> Self {
        Self { app: self.app.clone(), io: self.io.clone() }
    }
}

/// The admin routes, guarded by the token; none when `admin.token` is unset.
pub fn routes<A: Adapter>(app: &AppState, io: SocketIo<A>) -> Router {
    let Some(token) = &app.config.admin.token else { return Router::new() };
    let expected = TokenDigest(Sha256::digest(token.expose().as_bytes()).into());
    let admin = Admin { app: app.clone(), io };
    Router::new()
        .route("/admin/nodes", get(nodes::<A>))
        .route("/admin/online/users", get(online_users::<A>))
        .route("/admin/online/users/{login}/disconnect", post(disconnect_user::<A>))
        .route("/admin/online/sockets", get(online_sockets::<A>))
        .route("/admin/online/sockets/{id}/disconnect", post(disconnect_socket::<A>))
        .route("/admin/notice", post(notice::<A>))
        .route("/admin/users", get(users::<A>))
        .route("/admin/users/{login}", axum::routing::delete(delete_user::<A>))
        .route("/admin/users/{login}/password", put(set_password::<A>))
        .route_layer(axum::middleware::from_fn_with_state(expected, guard))
        .with_state(admin)
}

/// SHA-256 of the configured token: comparing digests takes the same time whatever
/// the length or content of the token presented.
#[derive(Clone)]
struct TokenDigest([u8; 32]);

/// Refuses requests without the token (401) and writes the audit line of each one.
async fn guard(State(expected): State<TokenDigest>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = presented.is_some_and(|t| {
        let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
        bool::from(digest.ct_eq(&expected.0))
    });
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let from = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
    let from = from.unwrap_or_default();
    if !allowed {
        tracing::warn!(target: "audit", %method, %path, %from, status = 401, "admin request refused");
        let body = Json(json!({ "error": "missing or wrong admin token" }));
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body)
            .into_response();
    }
    let response = next.run(req).await;
    let status = response.status().as_u16();
    tracing::info!(target: "audit", %method, %path, %from, status, "admin request");
    response
}

async fn nodes<A: Adapter>(State(admin): State<Admin<A>>) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "nodes": admin.app.db.list_nodes().await? })))
}

async fn online_users<A: Adapter>(
    State(admin): State<Admin<A>>,
) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "users": admin.app.db.online_users().await? })))
}

/// `GET /admin/online/sockets?user=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketsQuery {
    user: Option<String>,
    limit: Option<i64>,
}

async fn online_sockets<A: Adapter>(
    State(admin): State<Admin<A>>,
    query: Result<Query<SocketsQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::BadRequest(format!("limit must be 1-{MAX_LIMIT}")));
    }
    let filter = query.user.as_deref().map_or(SocketFilter::All, SocketFilter::User);
    Ok(Json(json!({ "sockets": admin.app.db.live_sockets(filter, limit).await? })))
}

impl<A: Adapter> Admin<A> {
    /// Disconnects the sockets of these rows on whichever nodes hold them; returns how
    /// many. One adapter request per namespace, addressed to the sockets' private rooms.
    async fn disconnect(&self, rows: &[SocketRow]) -> Result<usize, AdminError> {
        let mut by_namespace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for row in rows {
            by_namespace.entry(&row.namespace).or_default().push(row.socket.clone());
        }
        for (namespace, sockets) in by_namespace {
            let Some(ns) = self.io.of(namespace) else { continue };
            // Sockets held here are closed directly: socketioxide's in-process adapter
            // has no room per socket id. The others go through the cluster adapter.
            let mut elsewhere = Vec::new();
            for id in sockets {
                match id.parse::<Sid>().ok().and_then(|sid| ns.get_socket(sid)) {
                    // An error means it closed meanwhile: as good as disconnected.
                    Some(socket) => socket.disconnect().unwrap_or_default(),
                    None => elsewhere.push(id),
                }
            }
            if elsewhere.is_empty() {
                continue;
            }
            match ns.to(elsewhere).disconnect().await {
                // A socket that closed meanwhile is as good as disconnected.
                Ok(()) | Err(BroadcastError::Socket(_)) => {}
                Err(e) => return Err(AdminError::Cluster(e.to_string())),
            }
        }
        Ok(rows.len())
    }

    /// Every live socket row of a user.
    async fn sockets_of(&self, login: &str) -> Result<Vec<SocketRow>, AdminError> {
        Ok(self.app.db.live_sockets(SocketFilter::User(login), i64::MAX).await?)
    }
}

async fn disconnect_user<A: Adapter>(
    State(admin): State<Admin<A>>,
    Path(login): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let rows = admin.sockets_of(&login).await?;
    if rows.is_empty() && !admin.app.db.user_exists(&login).await? {
        return Err(AdminError::NotFound(format!("no user {login:?}")));
    }
    let disconnected = admin.disconnect(&rows).await?;
    Ok(Json(json!({ "user": login, "disconnected": disconnected })))
}

async fn disconnect_socket<A: Adapter>(
    State(admin): State<Admin<A>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let rows = admin.app.db.live_sockets(SocketFilter::Socket(&id), i64::MAX).await?;
    if rows.is_empty() {
        return Err(AdminError::NotFound(format!("no live socket {id:?}")));
    }
    let disconnected = admin.disconnect(&rows).await?;
    Ok(Json(json!({ "socket": id, "disconnected": disconnected })))
}

/// `POST /admin/notice`: `text` to the sockets of `room` (every socket when absent)
/// in `namespace` (default `/`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    text: String,
    room: Option<String>,
    namespace: Option<String>,
}

async fn notice<A: Adapter>(
    State(admin): State<Admin<A>>,
    body: Result<Json<NoticeRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(request) = body?;
    let chars = request.text.chars().count();
    if chars == 0 || chars > MAX_NOTICE_CHARS {
        return Err(AdminError::BadRequest(format!(
            "text must be 1-{MAX_NOTICE_CHARS} characters"
        )));
    }
    if let Some(room) = &request.room {
        crate::protocol::room::check_name(room)
            .map_err(|e| AdminError::BadRequest(format!("room: {e}")))?;
    }
    let namespace = request.namespace.as_deref().unwrap_or("/");
    let namespaces = crate::apps::paths();
    let ns = namespaces.contains(&namespace).then(|| admin.io.of(namespace)).flatten().ok_or_else(
        || AdminError::BadRequest(format!("namespace must be one of {namespaces:?}")),
    )?;
    let ts = chrono::Utc::now().timestamp_millis();
    let payload = json!({ "text": request.text, "room": request.room, "ts": ts });
    let target = match &request.room {
        Some(room) => ns.to(room.clone()),
        None => ns,
    };
    target.emit(NOTICE_EVENT, &payload).await.map_err(|e| AdminError::Cluster(e.to_string()))?;
    Ok(Json(json!({ "sent": payload, "namespace": namespace })))
}

async fn users<A: Adapter>(State(admin): State<Admin<A>>) -> Result<Json<Value>, AdminError> {
    Ok(Json(json!({ "users": admin.app.db.list_users().await? })))
}

/// Deletes the user, then disconnects their sockets: deleted first, so that a socket
/// reconnecting meanwhile is refused.
async fn delete_user<A: Adapter>(
    State(admin): State<Admin<A>>,
    Path(login): Path<String>,
) -> Result<Json<Value>, AdminError> {
    if !admin.app.db.delete_user(&login).await? {
        return Err(AdminError::NotFound(format!("no user {login:?}")));
    }
    let disconnected = admin.disconnect(&admin.sockets_of(&login).await?).await?;
    Ok(Json(json!({ "deleted": login, "disconnected": disconnected })))
}

/// `PUT /admin/users/{login}/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

async fn set_password<A: Adapter>(
    State(admin): State<Admin<A>>,
    Path(login): Path<String>,
    body: Result<Json<PasswordRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(request) = body?;
    if !password::valid_new_password(&request.password) {
        return Err(AdminError::BadRequest(format!(
            "password must be 1-{} bytes",
            password::MAX_PASSWORD_BYTES
        )));
    }
    // argon2 is CPU-bound: off the async workers.
    let hash = tokio::task::spawn_blocking(move || password::hash(&request.password)).await??;
    if !admin.app.db.set_password_hash(&login, &hash).await? {
        return Err(AdminError::NotFound(format!("no user {login:?}")));
    }
    Ok(Json(json!({ "updated": login })))
}
