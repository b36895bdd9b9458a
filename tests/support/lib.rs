//! Support for the integration suite: a fresh database per test on either
//! backend, and a small probe aggregate for exercising the store.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

pub mod browser;
pub mod cluster;
pub mod probe;
pub mod requests;
pub mod server;

use std::io::Write;
use std::sync::Once;
use std::time::{Duration, Instant};

use mediation_store::{RecordedEvent, Store};
use sqlx::Connection;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new SQLite file in a temporary directory.
    Sqlite,
    /// A new database on the PostgreSQL server that `DATABASE_URL` names.
    Postgres,
}

/// A fresh, migrated database that belongs to one test.
#[derive(Debug)]
pub struct TestDb {
    /// The store, migrated.
    pub store: Store,
    /// The URL that opens this database (for starting a server on it).
    pub url: String,
    /// Which backend.
    pub kind: Kind,
    dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database of `kind`, or `None` for PostgreSQL when
    /// `DATABASE_URL` is not set (the skip is announced once on stderr).
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite().await),
            Kind::Postgres => Self::postgres().await,
        }
    }

    /// A new SQLite file in its own temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", dir.path().join("events.db").display());
        let store = Store::connect(&url).await.expect("open SQLite");
        store.migrate().await.expect("migrate SQLite");
        Self {
            store,
            url,
            kind: Kind::Sqlite,
            dir: Some(dir),
            postgres: None,
        }
    }

    /// A new schema, of its own, in the database `DATABASE_URL` names. Fails
    /// the test if the variable is set but the server cannot be used;
    /// returns `None` if it is unset, unless `CI` is set, where a missing
    /// database is an error.
    ///
    /// A schema rather than a database: `CREATE DATABASE` and `DROP
    /// DATABASE` hold a transaction id for as long as they copy files and
    /// wait for a checkpoint, and every reader of every log on the server
    /// waits below the oldest running transaction (see `mediation_store`'s
    /// log). Schemas come and go in ordinary, short transactions.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("DATABASE_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but DATABASE_URL is not: the PostgreSQL tests must run in CI");
            }
            announce_skip();
            return None;
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("{PREFIX}{created}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
        drop_stale(&mut admin, created).await;
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test schema");
        admin.close().await.ok();
        let url = with_search_path(&admin_url, &name);
        let store = Store::connect(&url)
            .await
            .expect("connect to the test database");
        store.migrate().await.expect("migrate PostgreSQL");
        Some(Self {
            store,
            url,
            kind: Kind::Postgres,
            dir: None,
            postgres: Some((admin_url, name)),
        })
    }

    /// A database on a [`cluster::Cluster`] of the test's own, migrated.
    pub async fn on_cluster(cluster: &cluster::Cluster, name: &str) -> Self {
        let url = cluster.url(name);
        let store = Store::connect(&url)
            .await
            .expect("connect to the private PostgreSQL server");
        store.migrate().await.expect("migrate PostgreSQL");
        Self {
            store,
            url,
            kind: Kind::Postgres,
            dir: None,
            postgres: None,
        }
    }

    /// The URL of another, not yet existing database beside this one: a
    /// file in the same directory, or a database on the same server.
    pub fn sibling_url(&self, suffix: &str) -> String {
        match (&self.dir, &self.postgres) {
            (Some(dir), _) => format!(
                "sqlite:{}",
                dir.path().join(format!("{suffix}.db")).display()
            ),
            (None, Some((admin_url, name))) => {
                with_database(admin_url, &format!("{name}_{suffix}"))
            }
            (None, None) => unreachable!("a test database is a file or a server database"),
        }
    }

    /// Closes the store and removes the database (on PostgreSQL, the
    /// schema). A schema still locked by a connection left open is left for
    /// a later run to remove.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await
        {
            let _ = sqlx::query("SET lock_timeout = '5s'")
                .execute(&mut admin)
                .await;
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut admin)
                .await;
        }
        drop(self.dir);
    }
}

/// Runs a test body, failing it if it has not finished in two minutes, so
/// that a deadlock shows up as a failure rather than a CI run that hangs.
pub async fn guard<F: std::future::Future<Output = ()>>(test: F) {
    if tokio::time::timeout(std::time::Duration::from_secs(120), test)
        .await
        .is_err()
    {
        panic!("the test did not finish within two minutes: deadlocked or stalled");
    }
}

/// Reads the log from the start until it holds `expected` events. On
/// PostgreSQL, a transaction still open anywhere on the server (another
/// test's, say) holds readers back for a moment, so this waits for the log
/// to settle rather than reading once. Fails the test if the log holds more
/// than `expected` events, or has not settled within a minute.
pub async fn read_all(store: &Store, expected: usize) -> Vec<RecordedEvent> {
    let started = Instant::now();
    loop {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = store.read_log(after, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            events.extend(page);
        }
        if events.len() >= expected {
            assert_eq!(
                events.len(),
                expected,
                "the log holds more events than were written"
            );
            return events;
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!(
                "the log settled at {} of {expected} events; {}",
                events.len(),
                holders(store).await
            );
        }
        tokio::task::yield_now().await;
    }
}

/// On PostgreSQL, the transactions on the whole server that hold a
/// transaction id, oldest first: what keeps the log's readers back when it
/// does not settle. For a failing test's message.
pub async fn holders(store: &Store) -> String {
    let mediation_store::Backend::Postgres(pool) = store.backend() else {
        return "no transaction holds SQLite's readers back".to_owned();
    };
    let rows: Result<Vec<String>, _> = sqlx::query_scalar(
        "SELECT format('pid %s in %s, %s, for %s s: %s', pid, datname, state, \
                round(extract(epoch FROM now() - xact_start)::numeric, 1), left(query, 200)) \
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start",
    )
    .fetch_all(pool)
    .await;
    match rows {
        Ok(rows) if rows.is_empty() => "no transaction holds an id now".to_owned(),
        Ok(rows) => format!("transactions holding an id: {}", rows.join("; ")),
        Err(e) => format!("pg_stat_activity unreadable: {e}"),
    }
}

/// Test schemas (and, from earlier versions of this suite, databases) are
/// named `PREFIX<unix seconds>_<uuid>`.
const PREFIX: &str = "mediation_test_";

/// Drops test schemas left behind more than an hour ago by runs that
/// panicked before their cleanup, and test databases of earlier versions of
/// this suite, once per test process. Younger schemas may belong to a run
/// still going.
async fn drop_stale(admin: &mut sqlx::PgConnection, now: u64) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let stale = |name: &str| {
            name.strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok())
                .is_none_or(|t| t + 3600 < now)
        };
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'mediation\\_test\\_%'",
        )
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
        for name in schemas.iter().filter(|n| stale(n)) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *admin)
                .await;
        }
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'mediation\\_test\\_%'",
        )
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
        for name in databases.iter().filter(|n| stale(n)) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    })
    .await;
}

/// `url` with `schema` as its connections' search path.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..]
        .find('/')
        .map_or(base.len(), |i| authority_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn announce_skip() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Written straight to stderr, past the test harness's capture, so
        // that the skip is visible in a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: DATABASE_URL is not set: the PostgreSQL variants of the suite are SKIPPED \
             (they pass without running). Set DATABASE_URL=postgres://… to run them.\n"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
