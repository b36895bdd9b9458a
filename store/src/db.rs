//! Opening the database and migrating its schema.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;
use crate::append::SqliteWriter;

/// The database a newcomer gets when they name none: a SQLite file in the
/// working directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:mediation.db";

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The connection pool of one of the two backends.
#[derive(Debug, Clone)]
pub enum Backend {
    /// PostgreSQL, the production store.
    Postgres(PgPool),
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
}

/// A handle on the event store. Cheap to clone: it holds a connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite admits one writer at a time. Appenders queue here, in tokio,
    /// rather than each holding a pooled connection while SQLite's busy
    /// handler sleeps, which would starve readers of connections.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite's group-commit appender, started on the first append.
    sqlite_appender: Arc<OnceLock<SqliteWriter>>,
    /// How [`Store::probe`] reaches PostgreSQL on a connection of its own.
    probe_options: Option<PgConnectOptions>,
    /// When a probe last found the database away.
    outage: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long a call waits for a pooled PostgreSQL connection before the store
/// reports itself unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens the database `url` names: `postgres://…` or `postgresql://…` for
    /// PostgreSQL, `sqlite:PATH` for a SQLite file (created if missing).
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            create_postgres_database_if_missing(url).await;
            let options = PgConnectOptions::from_str(url).map_err(|_| {
                StoreError::BadUrl(format!("{} is not a valid PostgreSQL URL", redact(url)))
            })?;
            // Connections opened before the health probe last found the
            // database away belong to a server that has since gone: they
            // are dropped when next taken from the pool (no round trip),
            // so that the first calls after a restart do not each fail on a
            // dead socket.
            let outage = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
            let seen_outage = outage.clone();
            let pool = PgPoolOptions::new()
                .before_acquire(move |_, meta| {
                    let stale = seen_outage
                        .lock()
                        .ok()
                        .and_then(|at| *at)
                        .zip(std::time::Instant::now().checked_sub(meta.age))
                        .is_some_and(|(outage, opened)| opened <= outage);
                    Box::pin(async move { Ok(!stale) })
                })
                .max_connections(16)
                // While the database is away, a call waits this long for a
                // connection and then fails as unavailable, so that clients
                // with a few seconds' deadline hear UNAVAILABLE (and retry)
                // rather than only their own deadline passing.
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // No ping before every use: it would cost each command a
                // second round trip. A connection the server has dropped
                // fails its next query, which reports the store unavailable;
                // the pool then discards it.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, url = %redact(url), "cannot connect to PostgreSQL");
                    StoreError::Unavailable(format!("cannot connect to {}", redact(url)))
                })?;
            let mut store = Self::from_postgres(pool);
            store.probe_options = Some(options);
            store.outage = outage;
            Ok(store)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|_| StoreError::BadUrl(format!("{url} is not a valid SQLite URL")))?
                .create_if_missing(true)
                // WAL lets readers run beside the single writer; FULL syncs
                // every commit, so that an acknowledged command survives a
                // power cut, not only a crash of the process.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // Readers run beside the writer in WAL mode: enough connections
            // that commands' loads do not queue behind projection batches.
            let pool = SqlitePoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(10))
                // A ping is a hand-off to the connection's thread: not worth
                // it for a file that does not go away.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, url, "cannot open SQLite database");
                    StoreError::Unavailable(format!("cannot open {url}"))
                })?;
            Ok(Self::from_sqlite(pool))
        } else {
            Err(StoreError::BadUrl(format!(
                "unsupported database URL {}: use postgres://… or sqlite:FILE",
                redact(url)
            )))
        }
    }

    /// A store on an existing PostgreSQL pool.
    pub fn from_postgres(pool: PgPool) -> Self {
        Self {
            backend: Backend::Postgres(pool),
            sqlite_writer: Arc::default(),
            sqlite_appender: Arc::default(),
            probe_options: None,
            outage: Arc::default(),
        }
    }

    /// A store on an existing SQLite pool.
    pub fn from_sqlite(pool: SqlitePool) -> Self {
        Self {
            backend: Backend::Sqlite(pool),
            sqlite_writer: Arc::default(),
            sqlite_appender: Arc::default(),
            probe_options: None,
            outage: Arc::default(),
        }
    }

    /// Creates or upgrades the schema with the migrations embedded in this
    /// binary. Safe to run from several processes at once: sqlx serialises
    /// them with a lock.
    #[tracing::instrument(skip(self), fields(store = self.kind()))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.backend {
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
        };
        result.map_err(|e| {
            tracing::error!(error = %e, "migration failed");
            StoreError::Migration(match e {
                sqlx::migrate::MigrateError::VersionMissing(v) => format!(
                    "the database has migration {v}, which this binary does not know: it was migrated by a newer version"
                ),
                _ => "see the server log".into(),
            })
        })
    }

    /// Which backend this is: `"postgres"` or `"sqlite"`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// The connection pool.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The appender that commits this process's SQLite appends in groups,
    /// taking its turn with the other writers; started on first use.
    pub(crate) fn sqlite_appender(&self, pool: &SqlitePool) -> &SqliteWriter {
        self.sqlite_appender.get_or_init(|| {
            let path = pool.connect_options().get_filename().to_owned();
            SqliteWriter::start(path, self.sqlite_writer.clone())
        })
    }

    /// Waits for this process's turn to write, on SQLite, for work that
    /// keeps its turn across calls (a projection batch, a group of
    /// appends); on PostgreSQL writers run concurrently and this returns at
    /// once.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite(_) => Some(self.sqlite_writer.clone().lock_owned().await),
            Backend::Postgres(_) => None,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// A probe of the database for health checks: it answers within
    /// `timeout` whether the database does, on a connection of its own on
    /// PostgreSQL (a pool that is waiting for connections would make the
    /// probe wait as long as the calls it is meant to warn about). Keep the
    /// returned [`Probe`] and call [`Probe::check`] repeatedly.
    pub fn probe(&self, timeout: Duration) -> Probe {
        Probe {
            store: self.clone(),
            timeout,
            connection: None,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A health probe of the store; see [`Store::probe`].
#[derive(Debug)]
pub struct Probe {
    store: Store,
    timeout: Duration,
    connection: Option<sqlx::PgConnection>,
}

impl Probe {
    /// Whether the database answers a trivial query within the probe's
    /// timeout, connecting first if need be.
    pub async fn check(&mut self) -> Result<(), StoreError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.check_untimed()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.outage();
                Err(e)
            }
            Err(_) => {
                // A connection that stopped answering is not trusted again.
                self.outage();
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    /// Marks the database as away now: this connection and the pool's
    /// older ones are not used again.
    fn outage(&mut self) {
        self.connection = None;
        if let Ok(mut at) = self.store.outage.lock() {
            *at = Some(std::time::Instant::now());
        }
    }

    async fn check_untimed(&mut self) -> Result<(), StoreError> {
        use sqlx::Connection;
        let Some(options) = &self.store.probe_options else {
            return self.store.ping().await;
        };
        let connection = match &mut self.connection {
            Some(connection) => connection,
            slot @ None => slot.insert(sqlx::PgConnection::connect_with(options).await?),
        };
        connection.ping().await?;
        Ok(())
    }
}

/// Creates the database `url` names if the server says it does not exist,
/// as SQLite creates a missing file. Any failure here (no right to create
/// databases, server down) is left for the connection that follows to
/// report.
async fn create_postgres_database_if_missing(url: &str) {
    use sqlx::migrate::MigrateDatabase;
    if let Ok(false) = sqlx::Postgres::database_exists(url).await {
        match sqlx::Postgres::create_database(url).await {
            Ok(()) => tracing::info!(url = %redact(url), "created the database"),
            Err(e) => tracing::warn!(error = %e, url = %redact(url), "cannot create the database"),
        }
    }
}

/// `url` with any password replaced by `***`, for logs and messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
