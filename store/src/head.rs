//! The highest committed position of the log, as opposed to the readable
//! head ([`Store::log_head`]).
//!
//! On PostgreSQL a reader stops below the oldest transaction still running,
//! so just after a command is acknowledged its position may lie above the
//! readable head for a moment. Whether a position has been written at all
//! is a different question, answered here: `max(position)` over the rows a
//! new statement sees, which are exactly the committed ones. On SQLite the
//! two heads are the same.

use crate::StoreError;
use crate::db::{Backend, Store};

impl Store {
    /// The position of the last committed event, 0 for an empty log. Every
    /// position a command has been acknowledged with is at or below it; a
    /// position above it has not been written (yet). One index probe.
    ///
    /// Not a reading bound: on PostgreSQL, events may still commit below
    /// it. Readers go by [`Store::log_head`].
    #[tracing::instrument(level = "debug", skip(self), fields(store = self.kind()))]
    pub async fn committed_head(&self) -> Result<u64, StoreError> {
        let head: Option<i64> = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_scalar("SELECT max(position) FROM events")
                    .fetch_one(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_scalar("SELECT max(position) FROM events")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(head.map_or(0, |p| u64::try_from(p).unwrap_or(0)))
    }
}
