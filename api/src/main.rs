//! `mediation`: the dispute mediation and petition engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mediation_api::config::{ConfigFiles, load_services};
use mediation_domain::services::SystemClock;
use mediation_store::{DEFAULT_DATABASE_URL, Store, redact};

#[derive(Debug, Parser)]
#[command(
    name = "mediation",
    version,
    about = "Event-sourced engine for dispute mediation and petitions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server (migrates the store first).
    Serve(ServeArgs),
    /// Create or upgrade the store's schema, then exit.
    Migrate(StoreArgs),
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// The event store: postgres://… for PostgreSQL, sqlite:FILE for SQLite.
    /// Without it, a SQLite file `mediation.db` in the working directory.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "MEDIATION_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Jurisdiction tree (TOML); default: the shipped example jurisdiction.
    #[arg(long, env = "MEDIATION_JURISDICTION")]
    jurisdiction: Option<PathBuf>,
    /// Deadline policy overrides (TOML) over the statutory policy.
    #[arg(long, env = "MEDIATION_POLICY")]
    policy: Option<PathBuf>,
    /// Directory of yearly holiday files (YEAR.json) to load over the shipped ones.
    #[arg(long, env = "MEDIATION_HOLIDAYS")]
    holidays: Option<PathBuf>,
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    let url = &args.database_url;
    let store = Store::connect(url)
        .await
        .with_context(|| format!("opening the event store {}", redact(url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating the event store {}", redact(url)))?;
    Ok(store)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(args) => {
            let store = open_store(&args).await?;
            tracing::info!(store = %redact(&args.database_url), "schema is up to date");
            store.close().await;
        }
        Command::Serve(args) => {
            let files = ConfigFiles {
                jurisdiction: args.jurisdiction.clone(),
                policy: args.policy.clone(),
                holidays: args.holidays.clone(),
            };
            // Configuration is checked before anything starts, so that a bad
            // file stops the server at once with the file's name.
            load_services(&files, Arc::new(SystemClock)).context("loading configuration")?;
            let store = open_store(&args.store).await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            let addr = listener.local_addr().context("reading the bound address")?;
            tracing::info!(%addr, store = %redact(&args.store.database_url), "serving gRPC");
            let shutdown = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    tracing::warn!("cannot listen for Ctrl-C; stop the process with a signal");
                    std::future::pending::<()>().await;
                }
                tracing::info!("shutting down");
            };
            mediation_api::serve(listener, store.clone(), shutdown).await?;
            store.close().await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mediation_api::telemetry::init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
