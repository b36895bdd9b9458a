//! The record of requests already carried out, for idempotent commands.
//! Rows are written by a trigger on the event log, in the transaction that
//! appends the request's events (see the `0002` migrations).

use crate::StoreError;
use crate::db::{Backend, Store};

/// A request that has been carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundRequest {
    pub(crate) fingerprint: String,
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    /// The case's version after the request: the sequence of its last event.
    pub(crate) version: u64,
    /// The log position of the request's last event.
    pub(crate) position: u64,
}

const FIND_PG: &str = "SELECT r.request_hash, r.aggregate_type, r.aggregate_id, r.last_sequence, \
    e.position FROM command_requests r JOIN events e ON e.aggregate_type = r.aggregate_type \
    AND e.aggregate_id = r.aggregate_id AND e.sequence = r.last_sequence \
    WHERE r.agency = $1 AND r.request_id = $2";

const FIND_SQLITE: &str = "SELECT r.request_hash, r.aggregate_type, r.aggregate_id, \
    r.last_sequence, e.position FROM command_requests r JOIN events e \
    ON e.aggregate_type = r.aggregate_type AND e.aggregate_id = r.aggregate_id \
    AND e.sequence = r.last_sequence WHERE r.agency = ? AND r.request_id = ?";

impl Store {
    /// The request `request_id` of `agency`, if it has been carried out.
    pub(crate) async fn find_request(
        &self,
        agency: &str,
        request_id: &str,
    ) -> Result<Option<FoundRequest>, StoreError> {
        let row: Option<(String, String, String, i64, Option<i64>)> = match self.backend() {
            Backend::Postgres(pool) => {
                sqlx::query_as(FIND_PG)
                    .bind(agency)
                    .bind(request_id)
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(pool) => {
                sqlx::query_as(FIND_SQLITE)
                    .bind(agency)
                    .bind(request_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(row.map(
            |(fingerprint, aggregate_type, aggregate_id, version, position)| FoundRequest {
                fingerprint,
                aggregate_type,
                aggregate_id,
                version: u64::try_from(version).unwrap_or(0),
                position: position.and_then(|p| u64::try_from(p).ok()).unwrap_or(0),
            },
        ))
    }
}
