//! What `mediation serve`, `migrate`, `replay` and `export` run,
//! with their command-line options (clap), so that another binary (the
//! bench's server under test) runs exactly what `mediation` runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use mediation_domain::services::SystemClock;
use mediation_projections::petitioners::PetitionerSecret;
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

/// Where the secret comes from under which read models key petitioners
/// (HMAC-SHA256 of the normalised name and contact). Every `serve` and
/// `replay` on one database must use the same secret.
#[derive(Debug, Clone, Default, Args)]
pub struct SecretArgs {
    /// File holding the petitioner secret (at least 16 bytes, e.g. 64 hex
    /// digits). Without it: `MEDIATION_PETITIONER_SECRET`, else a secret
    /// generated beside a SQLite file, else the public development secret.
    #[arg(
        long,
        env = "MEDIATION_PETITIONER_SECRET_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    petitioner_secret_file: Option<PathBuf>,
}

/// The environment variable that may hold the petitioner secret itself
/// (read only from the environment: a command line shows in `ps`).
pub const PETITIONER_SECRET_ENV: &str = "MEDIATION_PETITIONER_SECRET";

/// The file beside a SQLite database that keeps its generated petitioner
/// secret: the database's path with this suffix.
pub const GENERATED_SECRET_SUFFIX: &str = ".petitioner-secret";

/// Where a petitioner secret came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The file `--petitioner-secret-file` named.
    File(PathBuf),
    /// `MEDIATION_PETITIONER_SECRET`.
    Environment,
    /// Generated earlier, or now, beside the SQLite database.
    BesideDatabase(PathBuf),
    /// None given, none to generate: the public development secret.
    Development,
}

/// The SQLite file a database URL names, if it names one (not PostgreSQL,
/// not an in-memory database).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The petitioner secret for the database at `database_url`: the file
/// `args` names, else `MEDIATION_PETITIONER_SECRET`, else (for a SQLite
/// file) the secret kept beside the database in `FILE.petitioner-secret`,
/// generated with 244 random bits on first use, else the public
/// development secret, which the caller must warn about or refuse.
pub fn petitioner_secret(
    args: &SecretArgs,
    database_url: &str,
) -> anyhow::Result<(PetitionerSecret, SecretSource)> {
    if let Some(path) = &args.petitioner_secret_file {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the petitioner secret {}", path.display()))?;
        let secret = PetitionerSecret::new(&bytes)
            .with_context(|| format!("the petitioner secret {}", path.display()))?;
        return Ok((secret, SecretSource::File(path.clone())));
    }
    if let Some(value) = std::env::var_os(PETITIONER_SECRET_ENV) {
        let secret = PetitionerSecret::new(value.as_encoded_bytes())
            .with_context(|| format!("the petitioner secret in {PETITIONER_SECRET_ENV}"))?;
        return Ok((secret, SecretSource::Environment));
    }
    let Some(database) = sqlite_file(database_url) else {
        return Ok((PetitionerSecret::development(), SecretSource::Development));
    };
    let mut path = database.into_os_string();
    path.push(GENERATED_SECRET_SUFFIX);
    let path = PathBuf::from(path);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let secret = PetitionerSecret::new(&bytes)
                .with_context(|| format!("the petitioner secret {}", path.display()))?;
            Ok((secret, SecretSource::BesideDatabase(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generated = mediation_app::access::new_token();
            write_new_secret(&path, &generated).with_context(|| {
                format!("writing a new petitioner secret to {}", path.display())
            })?;
            tracing::info!(
                file = %path.display(),
                "generated a petitioner secret beside the database; keep it with the database"
            );
            let secret = PetitionerSecret::new(generated.as_bytes())
                .context("the generated petitioner secret")?;
            Ok((secret, SecretSource::BesideDatabase(path)))
        }
        Err(e) => {
            Err(e).with_context(|| format!("reading the petitioner secret {}", path.display()))
        }
    }
}

/// Writes `secret` to a new file readable by its owner only; fails if the
/// file exists, so that two processes starting at once cannot each keep a
/// secret of their own.
fn write_new_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Logs the development secret's use loudly: keys made under it are as
/// reversible as plain hashes of names and phone numbers.
fn warn_development_secret() {
    tracing::warn!(
        "no petitioner secret (--petitioner-secret-file, {PETITIONER_SECRET_ENV}): read \
         models key petitioners under the public development secret, which anyone can \
         reverse; use made-up data only"
    );
}

/// The options of `mediation serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    secret: SecretArgs,
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
    /// Address of the web board (HTTP), or `off` for none. Without an
    /// agencies file it must be a loopback address, as for gRPC.
    #[arg(
        long,
        env = "MEDIATION_HTTP",
        hide_env_values = true,
        default_value = "127.0.0.1:8080",
        value_parser = parse_http
    )]
    http: HttpListen,
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
    #[command(flatten)]
    secret: SecretArgs,
    /// Rebuild only this projection; without it, every one.
    #[arg(long, value_name = "NAME")]
    projection: Option<String>,
}

/// The options of `mediation export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    secret: SecretArgs,
    /// The output folder: `manifest.json`, `events/case_type=…/month=…/`
    /// and, with --with-read-models, `read_models/`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The log's file format: parquet or jsonl.
    #[arg(long, default_value = "parquet", value_parser = parse_format)]
    format: mediation_export::Format,
    /// Export the events after this log position; with a manifest in the
    /// folder it must be the manifest's (the default: continue from it).
    #[arg(long, value_name = "N")]
    since_position: Option<u64>,
    /// Stop at the first event that happened after this time (RFC 3339,
    /// e.g. 2026-04-01T00:00:00+08:00); a later run takes up from there.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Also write the read models' current rows (cases, SLA clocks,
    /// statistics) as Parquet tables, replaced whole.
    #[arg(long)]
    with_read_models: bool,
    /// Write parties' and petitioners' names and contacts in clear instead
    /// of keyed pseudonyms. An operator's flag: no API role can ask for it.
    #[arg(long)]
    with_identities: bool,
}

/// The options of `mediation forget`.
#[derive(Debug, Clone, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    secret: SecretArgs,
    /// The person's name, as recorded (a party, or a petitioner).
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "key",
        required_unless_present = "key"
    )]
    name: Option<String>,
    /// The contact the person gave with a petition, if any.
    #[arg(long, value_name = "CONTACT", requires = "name")]
    contact: Option<String>,
    /// The person's pseudonym, as exports and the petitioner history show
    /// it, instead of a name.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Who asks, as recorded on the erasure events.
    #[arg(long, value_name = "ACTOR", default_value = "operator")]
    actor: String,
}

/// Where the web board listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// `--http off`.
    Off,
    /// An address.
    On(SocketAddr),
}

fn parse_http(s: &str) -> Result<HttpListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(HttpListen::Off);
    }
    s.parse()
        .map(HttpListen::On)
        .map_err(|e| format!("{s:?} is neither an address (such as 127.0.0.1:8080) nor `off`: {e}"))
}

fn parse_format(s: &str) -> Result<mediation_export::Format, String> {
    s.parse()
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
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
    if let (HttpListen::On(http), None) = (args.http, &args.agencies) {
        anyhow::ensure!(
            http.ip().is_loopback(),
            "refusing to serve the web board on {http} without authentication: give an \
             agencies file with --agencies, listen on a loopback address, or --http off"
        );
    }
    let (petitioner_secret, source) = petitioner_secret(&args.secret, &args.store.database_url)?;
    if source == SecretSource::Development {
        // An agencies file means real callers, hence real petitioners.
        anyhow::ensure!(
            args.agencies.is_none(),
            "refusing to serve agencies without a petitioner secret: give one with \
             --petitioner-secret-file or {PETITIONER_SECRET_ENV} (and the same to \
             `mediation replay`)"
        );
        warn_development_secret();
    }
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
    let http = match args.http {
        HttpListen::Off => None,
        HttpListen::On(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("listening for the web board on {at}"))?;
            let bound = listener
                .local_addr()
                .context("reading the board's address")?;
            tracing::info!(addr = %bound, "serving the web board");
            Some(listener)
        }
    };

    let settings = Settings {
        services,
        auth,
        tls,
        timer_interval: (args.timer_interval > 0)
            .then(|| std::time::Duration::from_secs(args.timer_interval)),
        case_cache: args.case_cache,
        petitioner_secret,
        http,
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
    let (secret, source) = petitioner_secret(&args.secret, &args.store.database_url)?;
    if source == SecretSource::Development {
        warn_development_secret();
    }
    let all = mediation_projections::all(&secret);
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
    // The read models rebuild side by side from one read of the log.
    let rebuilt = mediation_projections::replay::rebuild_together(
        &store,
        &chosen,
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

/// `mediation forget`: forgets a person in every case that names them
/// (`mediation_app::erasure`), as the local operator, and prints what it
/// erased ("forgot N pseudonyms in C cases: …").
pub async fn forget(args: ForgetArgs) -> anyhow::Result<()> {
    use mediation_app::erasure::Whom;
    use mediation_domain::values::{ActorId, Name};
    use std::io::Write as _;
    let (secret, source) = petitioner_secret(&args.secret, &args.store.database_url)?;
    if source == SecretSource::Development {
        warn_development_secret();
    }
    let whom = match (&args.name, &args.key) {
        (Some(name), _) => Whom::Named {
            name: Name::parse(name).map_err(|e| anyhow::anyhow!("--name: {}", e.reason))?,
            contact: args
                .contact
                .as_deref()
                .map(Name::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--contact: {}", e.reason))?,
        },
        (None, Some(key)) => Whom::Key(key.trim().to_ascii_lowercase()),
        (None, None) => anyhow::bail!("name the person with --name (and --contact) or --key"),
    };
    let actor =
        ActorId::parse(&args.actor).map_err(|e| anyhow::anyhow!("--actor: {}", e.reason))?;
    let store = open_store(&args.store).await?;
    let services = load_services(&ConfigFiles::default(), Arc::new(SystemClock))
        .context("loading configuration")?;
    let stop = tokio_util::sync::CancellationToken::new();
    let (app, worker) =
        mediation_app::App::start_with(store.clone(), services, 0, secret, stop.clone());
    let forgotten = app
        .forget_person(&mediation_app::access::Caller::local(), actor, whom)
        .await;
    stop.cancel();
    let _ = worker.await;
    store.close().await;
    let forgotten = forgotten.context("forgetting the person")?;
    let cases: Vec<String> = forgotten
        .cases
        .iter()
        .map(|c| format!("{} {}", c.aggregate_type, c.case_id))
        .collect();
    writeln!(
        std::io::stdout().lock(),
        "forgot {} pseudonyms in {} cases{}{}",
        forgotten.persons.len(),
        cases.len(),
        if cases.is_empty() { "" } else { ": " },
        cases.join(", ")
    )?;
    Ok(())
}

/// `mediation export`: writes the log after the folder's manifest (and
/// the read models, if asked) with a progress bar on stderr, then prints
/// "exported N events to F files (+ R read-model rows) in T s (E events/s)".
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let identities = if args.with_identities {
        tracing::warn!(
            "--with-identities: parties' and petitioners' names and contacts are written \
             in clear; the files are as confidential as the database (信访工作条例 Art 30)"
        );
        mediation_export::Identities::Clear
    } else {
        let (secret, source) = petitioner_secret(&args.secret, &args.store.database_url)?;
        if source == SecretSource::Development {
            warn_development_secret();
        }
        mediation_export::Identities::Pseudonymised(secret)
    };
    let options = mediation_export::Options {
        out: args.out.clone(),
        format: args.format,
        since_position: args.since_position,
        until: args.until,
        with_read_models: args.with_read_models,
        identities,
        batch_size: mediation_export::EXPORT_BATCH,
    };
    let store = open_store(&args.store).await?;
    // Drawn on stderr, and only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0)
        .with_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{wide_bar}] {human_pos}/{human_len} events, {msg}, {eta} left",
            )
            .context("the progress bar's template")?,
        )
        .with_prefix("exporting")
        .with_message("0 events/s");
    let exported = mediation_export::export(&store, &options, |p| {
        bar.set_length(p.total.max(p.events));
        bar.set_position(p.events);
        let seconds = p.elapsed.as_secs_f64();
        if seconds > 0.0 {
            bar.set_message(format!("{:.0} events/s", p.events as f64 / seconds));
        }
    })
    .await
    .with_context(|| format!("exporting to {}", args.out.display()));
    bar.finish_and_clear();
    store.close().await;
    let exported = exported?;
    if exported.repaired > 0 {
        tracing::info!(
            files = exported.repaired,
            "removed what an interrupted export had left"
        );
    }
    writeln!(
        std::io::stdout().lock(),
        "exported {} events (positions {} to {}) to {} files, {} read-model rows to {} files, \
         in {:.1} s ({:.0} events/s)",
        exported.events,
        exported.from,
        exported.position,
        exported.files,
        exported.read_model_rows,
        exported.read_model_files,
        exported.elapsed.as_secs_f64(),
        exported.rate_per_second
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sqlite_file_has_a_place_beside_it() {
        assert_eq!(
            sqlite_file("sqlite:mediation.db"),
            Some("mediation.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/m.db?mode=rwc"),
            Some("/var/lib/m.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite:x.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://postgres@localhost/m"), None);
    }

    #[test]
    fn a_sqlite_database_gets_a_secret_beside_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let url = format!("sqlite:{}", db.display());
        let none = SecretArgs::default();
        let (first, source) = petitioner_secret(&none, &url).unwrap();
        let beside = dir.path().join("m.db.petitioner-secret");
        assert_eq!(source, SecretSource::BesideDatabase(beside.clone()));
        assert!(!first.is_development());
        // Read back, not generated again.
        let (again, _) = petitioner_secret(&none, &url).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&beside).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read the secret");
        }
        // A file named explicitly wins; a short one is refused.
        let file = dir.path().join("secret");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").unwrap();
        let named = SecretArgs {
            petitioner_secret_file: Some(file.clone()),
        };
        let (secret, source) = petitioner_secret(&named, &url).unwrap();
        assert_eq!(source, SecretSource::File(file.clone()));
        assert_ne!(secret, first);
        std::fs::write(&file, "short").unwrap();
        let refused = petitioner_secret(&named, &url).unwrap_err();
        assert!(format!("{refused:#}").contains("at least 16"));
    }

    #[test]
    fn postgres_without_a_secret_falls_back_to_the_development_one() {
        let (secret, source) =
            petitioner_secret(&SecretArgs::default(), "postgres://postgres@localhost/m").unwrap();
        assert_eq!(source, SecretSource::Development);
        assert!(secret.is_development());
    }
}
