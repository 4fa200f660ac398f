//! The `roomcast` command: serve a node, or administer its store.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use roomcast_node::Node;
use roomcast_node::config::{CONFIG_FILE_ENV, Config, ConfigError, Secret, unknown_env_vars};
use roomcast_node::core::auth::{jwt, password};
use roomcast_node::core::build::BuildInfo;
use roomcast_node::core::db::Db;
use roomcast_node::protocol::names::Login;
use roomcast_node::server::admin::client::{AdminClient, segment};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "roomcast", version = BuildInfo::LONG_VERSION, about = "A horizontally scaled Socket.IO server")]
struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(long, global = true, env = CONFIG_FILE_ENV)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print a JWT for an existing user, signed with the configured key.
    Token {
        /// The user's login.
        login: String,
    },
    /// Validate the configuration and print it with secrets hidden.
    CheckConfig,
    /// Call a node's admin API (cluster-wide operations); prints its JSON answer.
    Admin {
        #[command(flatten)]
        target: AdminTarget,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Args)]
struct AdminTarget {
    /// Base URL of a node's ops port, e.g. http://127.0.0.1:9090.
    #[arg(long, env = "ROOMCAST_ADMIN_URL")]
    url: String,
    /// The admin token; defaults to `admin.token` (ROOMCAST_ADMIN_TOKEN).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Live nodes, their last heartbeat and socket count.
    Nodes,
    /// Users with live sockets, cluster-wide.
    Online,
    /// Live sockets, cluster-wide.
    Sockets {
        /// Only this user's sockets.
        #[arg(long)]
        user: Option<String>,
        /// At most this many (default 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Disconnect every socket of a user, on every node.
    DisconnectUser {
        /// The user's login.
        login: String,
    },
    /// Disconnect one socket, on whichever node holds it.
    DisconnectSocket {
        /// The socket id.
        id: String,
    },
    /// Send `notice` {text, room, ts} to a room (or to every socket of the namespace).
    Notice {
        /// The text.
        text: String,
        /// The room; every socket of the namespace when absent.
        #[arg(long)]
        room: Option<String>,
        /// The namespace (default `/`).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// The users table.
    Users,
    /// Delete a user and disconnect their sockets.
    DeleteUser {
        /// The user's login.
        login: String,
    },
    /// Set a user's password; it comes from --password or standard input.
    Passwd {
        /// The user's login.
        login: String,
        /// Password; read from standard input when absent.
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from --password or standard input.
    Add {
        /// Login: 1-64 characters of [A-Za-z0-9_.@-].
        login: String,
        /// Password; read from standard input when absent.
        #[arg(long)]
        password: Option<String>,
    },
    /// List users.
    List,
    /// Delete a user (their live sockets stay until they go; `roomcast admin
    /// delete-user` disconnects them too).
    Delete {
        /// The user's login.
        login: String,
    },
    /// Set a user's password; it comes from --password or standard input.
    Passwd {
        /// The user's login.
        login: String,
        /// Password; read from standard input when absent.
        #[arg(long)]
        password: Option<String>,
    },
}

/// The new password from the flag or standard input, checked.
fn new_password(flag: Option<String>) -> anyhow::Result<String> {
    let password = match flag {
        Some(p) => p,
        None => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).context("reading the password")?;
            input.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if !password::valid_new_password(&password) {
        bail!("password must be 1-{} bytes", password::MAX_PASSWORD_BYTES);
    }
    Ok(password)
}

/// Calls the admin API and prints the answer.
async fn admin(config: &Config, target: AdminTarget, command: AdminCommand) -> anyhow::Result<()> {
    let configured = || config.admin.token.as_ref().map(|t| t.expose().to_owned());
    let Some(token) = target.token.or_else(configured) else {
        bail!("no admin token: pass --token or set ROOMCAST_ADMIN_TOKEN");
    };
    let client = AdminClient::new(&target.url, &token)?;
    let (method, path, body) = match command {
        AdminCommand::Nodes => (Method::GET, "nodes".to_owned(), None),
        AdminCommand::Online => (Method::GET, "online/users".to_owned(), None),
        AdminCommand::Sockets { user, limit } => {
            let mut query = Vec::new();
            if let Some(user) = user {
                query.push(format!("user={}", segment(&user)));
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            (Method::GET, format!("online/sockets?{}", query.join("&")), None)
        }
        AdminCommand::DisconnectUser { login } => {
            (Method::POST, format!("online/users/{}/disconnect", segment(&login)), None)
        }
        AdminCommand::DisconnectSocket { id } => {
            (Method::POST, format!("online/sockets/{}/disconnect", segment(&id)), None)
        }
        AdminCommand::Notice { text, room, namespace } => (
            Method::POST,
            "notice".to_owned(),
            Some(json!({"text": text, "room": room, "namespace": namespace})),
        ),
        AdminCommand::Users => (Method::GET, "users".to_owned(), None),
        AdminCommand::DeleteUser { login } => {
            (Method::DELETE, format!("users/{}", segment(&login)), None)
        }
        AdminCommand::Passwd { login, password } => {
            let password = new_password(password)?;
            (
                Method::PUT,
                format!("users/{}/password", segment(&login)),
                Some(json!({"password": password})),
            )
        }
    };
    let answer = client.call(method, &path, body.as_ref()).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn store(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database).await?;
    db.migrate().await?;
    Ok(db)
}

/// Exit status of a configuration that cannot be used, as for a bad command line.
const EXIT_CONFIG: u8 = 2;

/// Prints a failure as one line of causes (no backtrace, whatever `RUST_BACKTRACE`
/// says) and exits 2 for a configuration error, 1 for anything else.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("roomcast: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `ROOMCAST_*` variables of this process that set nothing.
fn unknown_env() -> Vec<String> {
    unknown_env_vars(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    roomcast_node::apps::check_config(&config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let telemetry = roomcast_node::core::telemetry::init(&config)?;
            for variable in unknown_env() {
                tracing::warn!(%variable, "unknown environment variable ignored");
            }
            let node = Node::build(config).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    shutdown_signal().await;
                    shutdown.cancel();
                }
            });
            let served = node.run(shutdown).await;
            // Blocking: the exporter's last batch goes out before the process ends.
            tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
            served?;
        }
        Command::Migrate => {
            store(&config).await?.close().await;
            println!("migrations applied");
        }
        Command::User { command: UserCommand::Add { login, password } } => {
            Login::parse(login.as_str())?;
            let password = new_password(password)?;
            let hash = password::hash(&password)?;
            let db = store(&config).await?;
            let created = db.create_user(&login, &hash).await?;
            db.close().await;
            if !created {
                bail!("user {login:?} already exists");
            }
            println!("user {login} created");
        }
        Command::User { command: UserCommand::List } => {
            let db = store(&config).await?;
            let users = db.list_users().await;
            db.close().await;
            for user in users? {
                println!("{}\t{}", user.login, user.created_at);
            }
        }
        Command::User { command: UserCommand::Delete { login } } => {
            let db = store(&config).await?;
            let deleted = db.delete_user(&login).await;
            db.close().await;
            if !deleted? {
                bail!("no user {login:?}");
            }
            println!("user {login} deleted");
        }
        Command::User { command: UserCommand::Passwd { login, password } } => {
            let hash = password::hash(&new_password(password)?)?;
            let db = store(&config).await?;
            let updated = db.set_password_hash(&login, &hash).await;
            db.close().await;
            if !updated? {
                bail!("no user {login:?}");
            }
            println!("password of {login} changed");
        }
        Command::Admin { target, command } => admin(&config, target, command).await?,
        Command::Token { login } => {
            let db = store(&config).await?;
            let exists = db.user_exists(&login).await?;
            db.close().await;
            if !exists {
                bail!("no user {login:?}");
            }
            println!("{}", jwt::mint(&config.auth.jwt, &login)?);
        }
        Command::CheckConfig => {
            let mut shown = config.clone();
            for secret in
                [&mut shown.auth.jwt.secret, &mut shown.auth.session.secret, &mut shown.admin.token]
            {
                if secret.is_some() {
                    *secret = Some(Secret::PLACEHOLDER.into());
                }
            }
            for variable in unknown_env() {
                eprintln!("warning: unknown environment variable {variable} ignored");
            }
            // TOML, the file format, so the output can be fed back as a file.
            println!("{}", toml::to_string_pretty(&shown)?);
            println!("# configuration is valid");
        }
    }
    Ok(())
}
