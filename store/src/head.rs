//! The highest committed position of the log, as opposed to the readable
//! head ([`Store::log_head`]).
//!
//! On PostgreSQL a reader stops below the oldest transaction still running,
//! so just after a command is acknowledged its position may lie above the
//! readable head for a moment. Whether a position has been written at all
//! is a different question, answered here: `max(position)` over the rows a
//! new statement sees, which are exactly the committed ones. On SQLite the
//! two heads are the same.
//!
//! What sits between them is the [`Horizon`]: the oldest transaction still
//! running, which keeps every reader below it, and the age of the events it
//! hides is part of a projection's lag.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::StoreError;
use crate::db::{Backend, Store};
use crate::sql::Sql;

impl Store {
    /// The position of the last committed event, 0 for an empty log. Every
    /// position a command has been acknowledged with is at or below it; a
    /// position above it has not been written (yet). One index probe.
    ///
    /// Not a reading bound: on PostgreSQL, events may still commit below
    /// it. Readers go by [`Store::log_head`].
    #[tracing::instrument(level = "debug", skip(self), fields(store = self.kind()))]
    pub async fn committed_head(&self) -> Result<u64, StoreError> {
        let head = self
            .fetch_optional(&Sql::new("SELECT max(position) FROM events"))
            .await?;
        let head: Option<i64> = match head {
            Some(row) => row.get(0)?,
            None => None,
        };
        Ok(head.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
    }
}

/// How far the log can be read now, how far it has been committed, and what
/// keeps readers short of the committed head.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Horizon {
    /// The settled head ([`Store::log_head`]): readers see events up to it.
    pub readable: u64,
    /// The committed head ([`Store::committed_head`]); on PostgreSQL it may
    /// lie beyond `readable` while a transaction is running.
    pub committed: u64,
    /// The oldest transaction still running that has a transaction id, on
    /// the whole PostgreSQL server: every log reader stops below it. `None`
    /// when none runs, and always on SQLite.
    pub holder: Option<HorizonHolder>,
}

/// A transaction that holds every log reader back (see [`Horizon`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonHolder {
    /// Its server process (`pg_stat_activity.pid`).
    pub pid: i32,
    /// Its transaction id (32-bit, as `pg_stat_activity.backend_xid`).
    pub transaction_id: u64,
    /// How long its transaction has been running; `None` when this role may
    /// not see other roles' sessions in detail (`pg_read_all_stats`).
    pub age: Option<Duration>,
    /// The database it runs in, which may be another one of the server.
    pub database: Option<String>,
    /// Its state, e.g. `idle in transaction`; `None` as for `age`.
    pub state: Option<String>,
}

impl Store {
    /// When the first committed event after `position` was recorded, if
    /// there is one, including events that readers cannot see yet because a
    /// transaction holds the horizon below them. The age of what a reader
    /// at `position` has not applied, measured against what has committed,
    /// not against what it can read. One index probe.
    pub async fn first_committed_after(
        &self,
        position: u64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let after = i64::try_from(position).unwrap_or(i64::MAX);
        let sql = Sql::new(
            "SELECT recorded_at FROM events WHERE position > $1 ORDER BY position LIMIT 1",
        )
        .bind(after);
        let at = match self.fetch_optional(&sql).await? {
            Some(row) => Some(row.time(0)?),
            None => None,
        };
        Ok(at)
    }

    /// The log's [`Horizon`] now: both heads, and on PostgreSQL the oldest
    /// running transaction that has an id. Only such a transaction (one
    /// that has written, or called `txid_current()`) holds readers back, in
    /// whichever database of the server it runs; a read-only transaction
    /// has no id and holds nobody.
    #[tracing::instrument(level = "debug", skip(self), fields(store = self.kind()))]
    pub async fn horizon(&self) -> Result<Horizon, StoreError> {
        let readable = self.log_head().await?;
        let committed = self.committed_head().await?;
        let Backend::Postgres(pool) = self.backend() else {
            return Ok(Horizon {
                readable,
                committed,
                holder: None,
            });
        };
        let holder: Option<HolderRow> = sqlx::query_as(
            "SELECT pid, backend_xid::text, \
             extract(epoch FROM clock_timestamp() - xact_start)::float8, \
             datname::text, state \
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
             ORDER BY age(backend_xid) DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?;
        Ok(Horizon {
            readable,
            committed,
            holder: holder.map(|(pid, xid, age, database, state)| HorizonHolder {
                pid,
                transaction_id: xid.and_then(|x| x.parse().ok()).unwrap_or(0),
                age: age.and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok()),
                database,
                state,
            }),
        })
    }
}

type HolderRow = (
    i32,
    Option<String>,
    Option<f64>,
    Option<String>,
    Option<String>,
);
