//! The record of requests already carried out, for idempotent commands.
//! Rows are written by a trigger on the event log, in the transaction that
//! appends the request's events (see the `0002` migrations).

use crate::StoreError;
use crate::db::Store;
use crate::sql::{Sql, to_u64};

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

const FIND: &str = "SELECT r.request_hash, r.aggregate_type, r.aggregate_id, r.last_sequence, \
    e.position FROM command_requests r JOIN events e ON e.aggregate_type = r.aggregate_type \
    AND e.aggregate_id = r.aggregate_id AND e.sequence = r.last_sequence \
    WHERE r.agency = $1 AND r.request_id = $2";

impl Store {
    /// The request `request_id` of `agency`, if it has been carried out.
    pub(crate) async fn find_request(
        &self,
        agency: &str,
        request_id: &str,
    ) -> Result<Option<FoundRequest>, StoreError> {
        let sql = Sql::new(FIND).bind(agency).bind(request_id);
        let Some(row) = self.fetch_optional(&sql).await? else {
            return Ok(None);
        };
        Ok(Some(FoundRequest {
            fingerprint: row.get(0)?,
            aggregate_type: row.get(1)?,
            aggregate_id: row.get(2)?,
            version: to_u64(row.get(3)?),
            position: to_u64(row.get::<Option<i64>>(4)?.unwrap_or(0)),
        }))
    }
}
