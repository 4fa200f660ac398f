//! The `roomcast` command: serve a node, or administer its store.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use roomcast_node::Node;
use roomcast_node::auth::{jwt, password};
use roomcast_node::build::BuildInfo;
use roomcast_node::config::{CONFIG_FILE_ENV, Config, ConfigError, unknown_env_vars};
use roomcast_node::db::Db;
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let telemetry = roomcast_node::telemetry::init(&config)?;
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
            if !password::valid_login(&login) {
                bail!("login must be 1-64 characters of [A-Za-z0-9_.@-]");
            }
            let password = match password {
                Some(p) => p,
                None => {
                    let mut input = String::new();
                    std::io::stdin().read_to_string(&mut input).context("reading the password")?;
                    input.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if password.is_empty() || password.len() > 1024 {
                bail!("password must be 1-1024 bytes");
            }
            let hash = password::hash(&password)?;
            let db = store(&config).await?;
            let created = db.create_user(&login, &hash).await?;
            db.close().await;
            if !created {
                bail!("user {login:?} already exists");
            }
            println!("user {login} created");
        }
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
            for secret in [&mut shown.auth.jwt.secret, &mut shown.auth.session.secret] {
                if secret.is_some() {
                    *secret = Some("<hidden>".into());
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
