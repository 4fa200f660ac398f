//! The apps: one Socket.IO namespace each, in a folder of its own that holds its
//! payloads, handlers and store. An app plugs in through [`App`]; the node mounts every
//! app listed in `apps!` the same way, so adding or removing one is its folder and
//! one line there.
//!
//! Every namespace goes through the same connect middleware (see `mount`), which
//! socketioxide awaits before it sends CONNECT: the official clients send buffered
//! events right after CONNECT, and handlers registered later (in the spawned connect
//! handler) would miss them.

use std::future::Future;
use std::pin::Pin;

use axum::http::Extensions;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{MaybeExtension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide_core::adapter::DefinedAdapter;

use crate::config::{Config, ConfigError};
use crate::core::connect::{self, ConnectError, Presence};
use crate::core::db::DbError;
use crate::core::handshake::Captured;
use crate::core::session::{Member, socket_rooms};
use crate::core::state::AppState;

/// One namespace of the node: its path, who may connect, and what it does at each step
/// of a socket's life. Every step but [`App::register`] does nothing unless the app
/// says otherwise.
pub trait App: 'static {
    /// The namespace's path.
    const PATH: &'static str;

    /// Whether `auth.guest_namespaces` may open the namespace to clients without
    /// credentials.
    const GUEST_CAPABLE: bool = false;

    /// Registers the event handlers of a socket that passed the middleware.
    fn register<A: Adapter>(socket: &SocketRef<A>);

    /// Starts what the app keeps for the node's life (its own stores and tasks), before
    /// any namespace is mounted. Its handlers find what it hands back through
    /// [`AppState::service`].
    fn start<A: Adapter>(
        _io: SocketIo<A>,
        _app: AppState,
    ) -> impl Future<Output = Result<Extensions, StartError>> + Send {
        async { Ok(Extensions::new()) }
    }

    /// Stops what [`App::start`] started, once the node's sockets are gone.
    fn stop(_app: AppState) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// What the app adds to an authenticated socket's member before its session row is
    /// written.
    fn admit<A: Adapter>(_socket: &SocketRef<A>, member: Member) -> Member {
        member
    }

    /// Runs in the middleware once the socket is authenticated, before CONNECT.
    fn prepare<A: Adapter>(
        _socket: &SocketRef<A>,
        _io: &SocketIo<A>,
        _app: &AppState,
        _auth: Option<&Value>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs once CONNECT is sent.
    fn connected<A: Adapter>(
        _socket: SocketRef<A>,
        _io: SocketIo<A>,
        _app: AppState,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs when the socket goes, before its session row is given back.
    fn disconnected<A: Adapter>(
        _socket: SocketRef<A>,
        _io: SocketIo<A>,
        _app: AppState,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs after another node was swept as dead (its session rows removed): the app
    /// cleans up what it kept for that node's sockets and tells those who care.
    fn node_swept<A: Adapter>(
        _io: SocketIo<A>,
        _app: AppState,
        _node: String,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Ok(()) }
    }
}

/// An app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The workspace's room history could not open its store.
    #[error(transparent)]
    History(#[from] workspace::history::HistoryError),
}

/// Something done for every app, in [`visit`] order.
pub trait Visit {
    /// Does it for app `T`.
    fn app<T: App>(&mut self);
}

/// Declares the app modules and [`visit`], from one list.
macro_rules! apps {
    ($($module:ident::$app:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Calls `visitor` for every app.
        pub fn visit(visitor: &mut impl Visit) {
            $(visitor.app::<$module::$app>();)*
        }
    };
}

apps!(workspace::Workspace, lobby::Lobby, chat::Chat, todo::Todo);

/// The path of every app.
pub fn paths() -> Vec<&'static str> {
    struct Paths(Vec<&'static str>);
    impl Visit for Paths {
        fn app<T: App>(&mut self) {
            self.0.push(T::PATH);
        }
    }
    let mut paths = Paths(Vec::new());
    visit(&mut paths);
    paths.0
}

/// The paths `auth.guest_namespaces` may name.
pub fn guest_capable() -> Vec<&'static str> {
    struct Capable(Vec<&'static str>);
    impl Visit for Capable {
        fn app<T: App>(&mut self) {
            if T::GUEST_CAPABLE {
                self.0.push(T::PATH);
            }
        }
    }
    let mut capable = Capable(Vec::new());
    visit(&mut capable);
    capable.0
}

/// Checks the parts of the configuration that name apps (at start-up, with the rest of
/// the configuration's checks).
pub fn check_config(config: &Config) -> Result<(), ConfigError> {
    let capable = guest_capable();
    match config.auth.guest_namespaces.iter().find(|ns| !capable.contains(&ns.as_str())) {
        Some(ns) => Err(ConfigError::Invalid {
            field: "auth.guest_namespaces",
            message: format!("{ns:?} is not one of {capable:?}"),
        }),
        None => Ok(()),
    }
}

type Step<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts every app in turn, and records what they started in `app` for their handlers.
pub async fn start_all<A: Adapter>(io: &SocketIo<A>, app: &AppState) -> Result<(), StartError> {
    struct Start<'a, A: Adapter> {
        io: &'a SocketIo<A>,
        app: &'a AppState,
        steps: Vec<Step<Result<Extensions, StartError>>>,
    }
    impl<A: Adapter> Visit for Start<'_, A> {
        fn app<T: App>(&mut self) {
            self.steps.push(Box::pin(T::start(self.io.clone(), self.app.clone())));
        }
    }
    let mut start = Start { io, app, steps: Vec::new() };
    visit(&mut start);
    let mut services = Extensions::new();
    for step in start.steps {
        services.extend(step.await?);
    }
    app.set_services(services);
    Ok(())
}

/// Stops what every app started, in turn.
pub async fn stop_all(app: &AppState) {
    struct Stop<'a>(&'a AppState, Vec<Step<()>>);
    impl Visit for Stop<'_> {
        fn app<T: App>(&mut self) {
            self.1.push(Box::pin(T::stop(self.0.clone())));
        }
    }
    let mut stop = Stop(app, Vec::new());
    visit(&mut stop);
    for step in stop.1 {
        step.await;
    }
}

/// Declares every app's namespace on `io`. The adapter's init results (for a cluster
/// adapter, futures that subscribe) are handed back for the caller to complete.
pub fn mount_all<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, app: &AppState) -> Vec<A::InitRes> {
    struct Mount<'a, A: Adapter + DefinedAdapter> {
        io: &'a SocketIo<A>,
        app: &'a AppState,
        inits: Vec<A::InitRes>,
    }
    impl<A: Adapter + DefinedAdapter> Visit for Mount<'_, A> {
        fn app<T: App>(&mut self) {
            self.inits.push(mount::<T, A>(self.io, self.app));
        }
    }
    let mut mount = Mount { io, app, inits: Vec::new() };
    visit(&mut mount);
    mount.inits
}

/// Declares app `T`'s namespace: the connect middleware, then `T`'s handlers.
fn mount<T: App, A: Adapter + DefinedAdapter>(io: &SocketIo<A>, app: &AppState) -> A::InitRes {
    let guests = T::GUEST_CAPABLE && app.config.auth.guest_namespaces.iter().any(|g| g == T::PATH);
    let setup = async move |s: SocketRef<A>,
                            io: SocketIo<A>,
                            State(app): State<AppState>,
                            TryData(auth): TryData<Value>|
                -> Result<(), ConnectError> {
        if !app.is_ready() {
            return Err(ConnectError::ShuttingDown);
        }
        let auth = auth.ok();
        s.extensions.insert(Captured::now(auth.as_ref()));
        if guests {
            connect::audit(s.ns(), "guest", None, connect::socket_address(&s, &app), None);
        } else {
            connect::authenticate(&s, &app, auth.as_ref(), T::admit).await?;
        }
        T::prepare(&s, &io, &app, auth.as_ref()).await;
        // CONNECT means the socket hears its own channel and resumed rooms.
        let mut own = vec![s.id.to_string()];
        own.extend(socket_rooms(&s));
        connect::rooms_ready(&app, T::PATH, own).await;
        track::<T, A>(&s, &app);
        T::register(&s);
        Ok(())
    };
    let connected = async |s: SocketRef<A>, io: SocketIo<A>, State(app): State<AppState>| {
        T::connected(s, io, app).await;
    };
    io.ns(T::PATH, connected.with(setup))
}

/// Holds the socket's presence, and gives it back after `T` saw the socket go.
fn track<T: App, A: Adapter>(s: &SocketRef<A>, app: &AppState) {
    s.extensions.insert(std::sync::Arc::new(Presence::start(s, app)));
    s.on_disconnect(
        async |s: SocketRef<A>,
               io: SocketIo<A>,
               State(app): State<AppState>,
               MaybeExtension(presence): MaybeExtension<std::sync::Arc<Presence>>| {
            T::disconnected(s, io, app).await;
            if let Some(presence) = presence {
                presence.end();
            }
        },
    );
}

/// Lets every app clean up after a node swept as dead, in [`visit`] order; the first
/// failure stops the rest (the next sweep finds nothing left to claim, so it is logged
/// and counted by the caller).
pub async fn node_swept<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    node: &str,
) -> Result<(), DbError> {
    type Cleanup = std::pin::Pin<Box<dyn Future<Output = Result<(), DbError>> + Send>>;
    struct Swept<'a, A: Adapter> {
        io: &'a SocketIo<A>,
        app: &'a AppState,
        node: &'a str,
        cleanups: Vec<Cleanup>,
    }
    impl<A: Adapter> Visit for Swept<'_, A> {
        fn app<T: App>(&mut self) {
            let cleanup = T::node_swept(self.io.clone(), self.app.clone(), self.node.to_owned());
            self.cleanups.push(Box::pin(cleanup));
        }
    }
    let mut swept = Swept { io, app, node, cleanups: Vec::new() };
    visit(&mut swept);
    for cleanup in swept.cleanups {
        cleanup.await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_is_listed_once() {
        assert_eq!(paths(), ["/", "/lobby", "/chat", "/todo"]);
        assert_eq!(guest_capable(), ["/lobby", "/chat"]);
    }

    #[test]
    fn only_guest_capable_apps_may_take_guests() {
        let mut config = Config::default();
        assert!(check_config(&config).is_ok(), "the default opens /lobby and /chat");
        config.auth.guest_namespaces = vec!["/lobby".into(), "/".into()];
        let err = check_config(&config).expect_err("guests on /").to_string();
        assert!(err.contains("auth.guest_namespaces"), "{err}");
        config.auth.guest_namespaces = vec!["/nowhere".into()];
        assert!(check_config(&config).is_err());
    }
}
