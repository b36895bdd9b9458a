//! What `mediation serve`, `mediation migrate` and `mediation replay` run,
//! with their command-line options (clap), so that another binary (the
//! bench's server under test) runs exactly what `mediation` runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mediation_domain::services::SystemClock;
use mediation_store::{DEFAULT_DATABASE_URL, Store, redact};

use crate::Settings;
use crate::auth::Authenticator;
use crate::config::{ConfigFiles, load_services, load_tls};

/// The options naming the event store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The event store: postgres://… for PostgreSQL, sqlite:FILE for SQLite.
    /// Without it, a SQLite file `mediation.db` in the working directory.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
}

/// The options of `mediation serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(
        long,
        env = "MEDIATION_LISTEN",
        hide_env_values = true,
        default_value = "127.0.0.1:50051"
    )]
    listen: SocketAddr,
    /// Jurisdiction tree (TOML); default: the shipped example jurisdiction.
    #[arg(long, env = "MEDIATION_JURISDICTION", hide_env_values = true)]
    jurisdiction: Option<PathBuf>,
    /// Deadline policy overrides (TOML) over the statutory policy.
    #[arg(long, env = "MEDIATION_POLICY", hide_env_values = true)]
    policy: Option<PathBuf>,
    /// Directory of yearly holiday files (YEAR.json) to load over the shipped ones.
    #[arg(long, env = "MEDIATION_HOLIDAYS", hide_env_values = true)]
    holidays: Option<PathBuf>,
    /// Agencies file (TOML): who may call, with hashed tokens, scopes and
    /// roles. Without it authentication is off, and the server listens on
    /// loopback addresses only.
    #[arg(long, env = "MEDIATION_AGENCIES", hide_env_values = true)]
    agencies: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "MEDIATION_TLS_CERT",
        hide_env_values = true,
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "MEDIATION_TLS_KEY",
        hide_env_values = true,
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: require client certificates signed by this CA (PEM).
    #[arg(
        long,
        env = "MEDIATION_TLS_CLIENT_CA",
        hide_env_values = true,
        requires = "tls_cert"
    )]
    tls_client_ca: Option<PathBuf>,
    /// Seconds between sweeps of the deadline timers (warnings at 50% and
    /// 75% of a clock's time, breaches at 100%); 0 runs no timers here.
    #[arg(
        long,
        env = "MEDIATION_TIMER_INTERVAL",
        hide_env_values = true,
        default_value_t = 30
    )]
    timer_interval: u64,
    /// How many cases of each kind (disputes, petitions) to keep in memory
    /// between commands, so that a command on a recent case need not load
    /// it (a few kilobytes each); 0 keeps none.
    #[arg(
        long,
        env = "MEDIATION_CASE_CACHE",
        hide_env_values = true,
        default_value_t = mediation_store::DEFAULT_CACHE_CAPACITY
    )]
    case_cache: usize,
}

/// The options of `mediation replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Rebuild only this projection; without it, every one.
    #[arg(long, value_name = "NAME")]
    projection: Option<String>,
}

/// Opens the store `args` names and brings its schema up to date.
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

/// `mediation migrate`: creates or upgrades the store's schema.
pub async fn migrate(args: StoreArgs) -> anyhow::Result<()> {
    let store = open_store(&args).await?;
    tracing::info!(store = %redact(&args.database_url), "schema is up to date");
    store.close().await;
    Ok(())
}

/// `mediation serve`: loads and checks the configuration, migrates the
/// store and serves gRPC until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let files = ConfigFiles {
        jurisdiction: args.jurisdiction.clone(),
        policy: args.policy.clone(),
        holidays: args.holidays.clone(),
    };
    // Configuration is checked before anything starts, so that a bad
    // file stops the server at once with the file's name.
    let services = load_services(&files, Arc::new(SystemClock)).context("loading configuration")?;
    let auth = match &args.agencies {
        Some(path) => Authenticator::from_file(path)?,
        None if args.listen.ip().is_loopback() => {
            tracing::warn!(
                "authentication is off (no --agencies file): every caller acts as a \
                 local supervisor; listening on loopback only"
            );
            Authenticator::disabled()
        }
        None => anyhow::bail!(
            "refusing to listen on {} without authentication: give an agencies file \
             with --agencies, or listen on a loopback address such as 127.0.0.1",
            args.listen
        ),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            load_tls(cert, key, args.tls_client_ca.as_deref()).context("loading the TLS files")?,
        ),
        _ => None,
    };
    let store = open_store(&args.store).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let signal = stop_signal()?;
    let shutdown = async {
        signal.await;
        tracing::info!("shutting down");
    };
    tracing::info!(%addr, store = %redact(&args.store.database_url), "serving gRPC");

    let settings = Settings {
        services,
        auth,
        tls,
        timer_interval: (args.timer_interval > 0)
            .then(|| std::time::Duration::from_secs(args.timer_interval)),
        case_cache: args.case_cache,
    };
    crate::serve(listener, store.clone(), settings, shutdown).await?;
    store.close().await;
    Ok(())
}

/// `mediation replay`: rebuilds the projection `args` names, or all of
/// them side by side from one read of the log, with a progress bar on
/// stderr and the outcome on stdout ("rebuilt NAMES: N events in T s (R
/// events/s)").
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let all = mediation_projections::all();
    let chosen = match &args.projection {
        None => all,
        Some(name) => match all.iter().find(|p| p.name() == name) {
            Some(projection) => vec![projection.clone()],
            None => {
                let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
                anyhow::bail!(
                    "there is no projection named {name:?}; known: {}",
                    known.join(", ")
                );
            }
        },
    };
    let store = open_store(&args.store).await?;
    let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
    let names = names.join(", ");
    // Drawn on stderr, and only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0)
        .with_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {human_pos}/{human_len} events, {msg}, {eta} left",
            )
            .context("the progress bar's template")?,
        )
        .with_prefix("rebuilding")
        .with_message("0 events/s");
    let projections: Vec<&dyn mediation_projections::runner::Projection> =
        chosen.iter().map(|p| p.as_ref()).collect();
    // The read models rebuild side by side from one read of the log.
    let rebuilt = mediation_projections::replay::rebuild_together(
        &store,
        &projections,
        mediation_projections::replay::REBUILD_BATCH,
        |p| {
            bar.set_length(p.total.max(p.events));
            bar.set_position(p.events);
            let seconds = p.elapsed.as_secs_f64();
            if seconds > 0.0 {
                bar.set_message(format!("{:.0} events/s", p.events as f64 / seconds));
            }
        },
    )
    .await
    .with_context(|| format!("rebuilding {names}"));
    bar.finish_and_clear();
    store.close().await;
    let rebuilt = rebuilt?;
    // The command's output, as `mediation token` prints its token.
    writeln!(
        std::io::stdout().lock(),
        "rebuilt {names}: {} events in {:.1} s ({:.0} events/s)",
        rebuilt.events,
        rebuilt.elapsed.as_secs_f64(),
        rebuilt.rate_per_second
    )?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what service managers and
/// container runtimes send). The handlers are installed when this is
/// called, not when the future is first polled, so that a signal arriving
/// as the server starts is not lost.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
