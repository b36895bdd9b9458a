//! `mediation`: the dispute mediation and petition engine.

use clap::{Parser, Subcommand};
use mediation_api::cli::{ExportArgs, ForgetArgs, ReplayArgs, ServeArgs, StoreArgs};
use mediation_api::telemetry::LogFormat;
use mediation_app::access::{new_token, token_hash};

/// mimalloc rather than the system allocator: see the workspace manifest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "mediation",
    version,
    about = "Event-sourced engine for dispute mediation and petitions"
)]
struct Cli {
    /// How log lines are written to stderr: `text` for a person, `json`
    /// (one object per line) for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "MEDIATION_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server and the web board (migrates the store first).
    Serve(ServeArgs),
    /// Create or upgrade the store's schema, then exit.
    Migrate(StoreArgs),
    /// Print a new bearer token for an agency, and the line that goes into
    /// the agencies file (which keeps only the token's hash).
    Token,
    /// Rebuild read models from the start of the log into fresh tables and
    /// swap them in when done. Safe beside a running server on the same
    /// database: its runner pauses for the swap and carries on after it.
    Replay(ReplayArgs),
    /// Export the event log (and, if asked, the read models) as Parquet or
    /// JSON lines for analysts, incrementally, with identities pseudonymised
    /// unless --with-identities is given.
    Export(ExportArgs),
    /// Forget a person at their request (PIPL Art 47): their identity is
    /// erased in every case that names them and their key deleted, so that
    /// every read, export and rebuild shows them as erased.
    Forget(ForgetArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Token => {
            let token = new_token();
            // The one place the binary writes to stdout: this is its output.
            let mut out = std::io::stdout().lock();
            use std::io::Write as _;
            writeln!(
                out,
                "token (give it to the agency; it is not stored):\n  {token}"
            )?;
            writeln!(
                out,
                "for its [[agency]] entry in the agencies file:\n  token_sha256 = \"{}\"",
                token_hash(&token)
            )?;
        }
        Command::Replay(args) => mediation_api::cli::replay(args).await?,
        Command::Export(args) => mediation_api::cli::export(args).await?,
        Command::Forget(args) => mediation_api::cli::forget(args).await?,
        Command::Migrate(args) => mediation_api::cli::migrate(args).await?,
        Command::Serve(args) => mediation_api::cli::serve(args).await?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    mediation_api::telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
