//! The to-do example of seed 002 on namespace `/todo`: `todo:get`, `todo:add`,
//! `todo:remove`, each answered with the whole list as `todos`. Items are rows in the
//! database; changes reach every client of the namespace, on every node.

pub mod store;

use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::App;
use crate::core::metrics::ErrorKind;
use crate::core::reply::{check_broadcast, count_in, count_out, emit, fail};
use crate::core::session::Member;
use crate::core::state::AppState;

/// Longest item title, in characters.
const MAX_TITLE_CHARS: usize = 500;

/// The to-do app.
pub struct Todo;

impl App for Todo {
    const PATH: &'static str = "/todo";

    fn register<A: Adapter>(socket: &SocketRef<A>) {
        socket.on("todo:get", async |s: SocketRef<A>, State(app): State<AppState>| {
            count_in(&s, &app, "todo:get");
            if let Some(todos) = list(&s, &app).await {
                emit(&s, &app, "todos", &todos);
            }
        });
        socket.on("todo:add", add::<A>);
        socket.on("todo:remove", remove::<A>);
        socket.on_fallback(async |s: SocketRef<A>, State(app): State<AppState>| {
            count_in(&s, &app, "unknown");
            fail(&s, &app, "Unknown event");
        });
    }
}

async fn list<A: Adapter>(s: &SocketRef<A>, app: &AppState) -> Option<Value> {
    match app.db.todos().await {
        Ok(todos) => Some(json!(todos)),
        Err(e) => {
            app.metrics.error(ErrorKind::Database).inc();
            tracing::warn!(error = %e, "to-do list unavailable");
            fail(s, app, "Service unavailable, try again");
            None
        }
    }
}

/// Sends the list to every client of the namespace, the sender included.
async fn publish<A: Adapter>(s: &SocketRef<A>, app: &AppState) {
    let Some(todos) = list(s, app).await else { return };
    count_out(s, app, "todos");
    let sent = s.broadcast().emit("todos", &todos).await;
    check_broadcast(&app.metrics, s.ns(), "todos", sent);
    emit(s, app, "todos", &todos);
}

/// The title of a `todo:add` payload, `"title"` or `{title}`: trimmed, 1-500
/// characters.
fn item_title(data: &Value) -> Option<&str> {
    match data {
        Value::String(title) => Some(title.as_str()),
        other => other.get("title").and_then(Value::as_str),
    }
    .map(str::trim)
    .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TITLE_CHARS)
}

/// The item of a `todo:remove` payload, `id` or `{id}`.
fn item_id(data: &Value) -> Option<i64> {
    match data {
        Value::Number(id) => id.as_i64(),
        other => other.get("id").and_then(Value::as_i64),
    }
}

async fn add<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(member): Extension<Arc<Member>>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "todo:add");
    let Some(title) = data.as_ref().ok().and_then(item_title) else {
        return fail(&s, &app, "Bad payload: expected a title of 1-500 characters");
    };
    match app.db.add_todo(title, &member.identity.user).await {
        Ok(()) => publish(&s, &app).await,
        Err(e) => {
            tracing::warn!(error = %e, "to-do not added");
            fail(&s, &app, "Service unavailable, try again");
        }
    }
}

async fn remove<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    TryData(data): TryData<Value>,
) {
    count_in(&s, &app, "todo:remove");
    let Some(id) = data.as_ref().ok().and_then(item_id) else {
        return fail(&s, &app, "Bad payload: expected an item id");
    };
    match app.db.remove_todo(id).await {
        Ok(true) => publish(&s, &app).await,
        Ok(false) => fail(&s, &app, "No such item"),
        Err(e) => {
            tracing::warn!(error = %e, "to-do not removed");
            fail(&s, &app, "Service unavailable, try again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(item_title(&json!("  milk ")), Some("milk"));
        assert_eq!(item_title(&json!({"title": "eggs", "x": 1})), Some("eggs"));
        assert_eq!(item_title(&json!("é".repeat(500))).map(str::len), Some(1000));
        for bad in [json!(""), json!("   "), json!("x".repeat(501)), json!({"title": 5}), json!(5)]
        {
            assert_eq!(item_title(&bad), None, "{bad}");
        }
    }

    #[test]
    fn item_ids() {
        assert_eq!(item_id(&json!(3)), Some(3));
        assert_eq!(item_id(&json!({"id": 4})), Some(4));
        for bad in [json!("3"), json!(1.5), json!({"id": "4"}), json!(null)] {
            assert_eq!(item_id(&bad), None, "{bad}");
        }
    }
}
