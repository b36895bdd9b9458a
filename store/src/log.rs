//! The global event log: every event of every case, in one order that a
//! reader can trust.
//!
//! The order is given by `position`. Positions increase along the log but are
//! not dense: on PostgreSQL a position is the writing transaction's id shifted
//! left by 20 bits plus the event's index within the transaction, so there are
//! wide gaps between transactions. What readers may rely on:
//!
//! - a read from position `p` returns the events after `p` in position order;
//! - no event will ever be committed at or below a position already returned
//!   (on PostgreSQL, reads stop below the oldest transaction still running, so
//!   a slow transaction holds readers back instead of being skipped);
//! - reading the same range again returns the same events in the same order.

use chrono::{DateTime, Utc};
use mediation_domain::upcast::StoredEvent;
use serde_json::Value;
use uuid::Uuid;

use crate::StoreError;
use crate::db::Store;
use crate::sql::{Row, Sql, to_i64, to_u64};

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Place in the global log; increases along the log, not dense.
    pub position: u64,
    /// Unique id of this event.
    pub event_id: Uuid,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case id.
    pub aggregate_id: String,
    /// 1-based index of the event within its case: the case's version after it.
    pub sequence: u64,
    /// The event's name, e.g. `DisputeRegistered`.
    pub event_type: String,
    /// The payload's schema version.
    pub event_version: String,
    /// The event itself, as JSON.
    pub payload: Value,
    /// Metadata stored beside the event.
    pub metadata: Value,
    /// Which of the events read from this row this is, from 0: a row stored
    /// in an older shape may be read as several events in the current one
    /// (see [`mediation_domain::upcast`]), which share its position,
    /// sequence and id.
    pub part: u32,
    /// How many events were read from this row: 1 but for such a split.
    pub parts: u32,
}

impl RecordedEvent {
    /// The payload as `T`, read from the JSON in place (no copy of it is
    /// made). The log's readers return events in the current shape
    /// already ([`upcast`]).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }

    /// Whether this is the last event read from its row. A reader that
    /// keeps the version it has applied up to advances it here, so that the
    /// events of one row are applied together or not at all: a read model
    /// that skips events at or below its version would otherwise drop the
    /// second event of a split.
    pub fn ends_row(&self) -> bool {
        self.part + 1 >= self.parts
    }

    /// Whether this is the first event of its case.
    pub fn begins_case(&self) -> bool {
        self.sequence == 1 && self.part == 0
    }
}

/// `row`, as stored, in the current shape: one event or, for a row stored
/// in an older shape that the model now records as several, several. The
/// one decoding every read of the log goes through.
///
/// The store serves any cqrs-es aggregate; rows of an aggregate type that
/// has no registry in [`mediation_domain::upcast`] (none of the engine's
/// own: a test aggregate, say) have no versions to read and pass as
/// stored.
pub fn upcast(row: RecordedEvent) -> Result<Vec<RecordedEvent>, StoreError> {
    let Some(registry) = mediation_domain::upcast::registry(&row.aggregate_type) else {
        return Ok(vec![row]);
    };
    let stored = StoredEvent {
        event_type: row.event_type,
        event_version: row.event_version,
        payload: row.payload,
    };
    let current = registry.upcast(stored).map_err(|e| {
        StoreError::Unreadable(format!(
            "event {} of {} {} (position {}): {e}",
            row.sequence, row.aggregate_type, row.aggregate_id, row.position
        ))
    })?;
    let parts = u32::try_from(current.len()).unwrap_or(u32::MAX);
    let mut metadata = row.metadata;
    let mut events = Vec::with_capacity(current.len());
    for (event, part) in current.into_iter().zip(0..) {
        // The parts share the row's metadata; the last takes it.
        let metadata = if part + 1 == parts {
            std::mem::take(&mut metadata)
        } else {
            metadata.clone()
        };
        events.push(RecordedEvent {
            position: row.position,
            event_id: row.event_id,
            recorded_at: row.recorded_at,
            aggregate_type: row.aggregate_type.clone(),
            aggregate_id: row.aggregate_id.clone(),
            sequence: row.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            metadata,
            part,
            parts,
        });
    }
    Ok(events)
}

/// The cases among `events` that a read model may already hold something
/// of: those whose first event among `events` is not the first of the
/// case. A read model applied under its checkpoint, one batch of the log
/// at a time, holds nothing yet of a case that begins within the batch it
/// is applying, so only these are worth reading back. Sorted, each once.
pub fn cases_begun_before<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Vec<String> {
    let mut first: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for event in events {
        first
            .entry(event.aggregate_id.as_str())
            .or_insert_with(|| !event.begins_case());
    }
    let mut ids: Vec<String> = first
        .into_iter()
        .filter(|(_, before)| *before)
        .map(|(id, _)| id.to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

/// Rows as stored → events in the current shape, in order.
fn current(rows: &[Row]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        events.extend(upcast(from_row(row)?)?);
    }
    Ok(events)
}

/// Which events a filtered read returns; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only events of this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only events of this case.
    pub aggregate_id: Option<String>,
    /// Only events whose case was held, before or after the event, by a
    /// division in this range of codes (lowest, highest), as written by
    /// the engine into the event's metadata (`division`, `prior_division`).
    pub division: Option<(String, String)>,
    /// A second range that must match too: the reader's scope.
    pub scope: Option<(String, String)>,
}

impl LogFilter {
    fn ranges(&self) -> [Option<&(String, String)>; 2] {
        [self.division.as_ref(), self.scope.as_ref()]
    }
}

/// A page of a filtered read of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    /// The matching events, in log order.
    pub events: Vec<RecordedEvent>,
    /// The position the read covered: resume after it. At most the
    /// settled head, and below `after` when `after` lay beyond it.
    pub read_to: u64,
}

const COLUMNS: &str = "position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
                       event_type, event_version, payload, metadata";

/// Rows of transactions older than every transaction still running: those
/// are settled, nothing new can commit among them.
const PG_SETTLED: &str = "position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)";

impl Store {
    /// Up to `limit` events after position `after` (0 reads from the start),
    /// in log order. Returns fewer, possibly none, at the end of the settled
    /// log.
    #[tracing::instrument(level = "debug", skip(self), fields(store = self.kind()))]
    pub async fn read_log(&self, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        // On PostgreSQL only rows of settled transactions are read.
        let settled = self.dialect().pick(PG_SETTLED, "true");
        let sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM events WHERE position > $1 AND {settled} \
             ORDER BY position LIMIT $2"
        ))
        .bind(to_i64(after))
        .bind(i64::from(limit));
        self.opened(current(&self.fetch_all(&sql).await?)?).await
    }

    /// `events` with the identities sealed in them opened (or erased).
    async fn opened(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.open_identities(&mut events).await?;
        Ok(events)
    }

    /// Up to `limit` events after position `after` that match `filter`, in
    /// log order, and how far the read got: a reader resumes after
    /// [`LogPage::read_to`], which may lie beyond the last event returned
    /// when events that did not match were passed over, but never beyond
    /// the settled head: an `after` beyond it reads nothing and answers the
    /// head, so that a reader resuming there misses no event that commits
    /// later below `after`.
    #[tracing::instrument(level = "debug", skip(self, filter), fields(store = self.kind()))]
    pub async fn read_log_filtered(
        &self,
        after: u64,
        limit: u32,
        filter: &LogFilter,
    ) -> Result<LogPage, StoreError> {
        // Everything up to the settled head is final, so the page may stop
        // there and promise that nothing matching was left out below it.
        let head = self.log_head().await?;
        if head <= after {
            return Ok(LogPage {
                events: Vec::new(),
                read_to: head,
            });
        }
        let [r1, r2] = filter.ranges();
        let dialect = self.dialect();
        let field = |name: &str| {
            dialect.pick(
                format!("metadata->>'{name}'"),
                format!("json_extract(metadata, '$.{name}')"),
            )
        };
        let (division, prior) = (field("division"), field("prior_division"));
        let in_range = |lo: usize, hi: usize| {
            format!(
                "(CAST(${lo} AS TEXT) IS NULL OR {division} BETWEEN ${lo} AND ${hi} \
                 OR {prior} BETWEEN ${lo} AND ${hi})"
            )
        };
        let sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM events WHERE position > $1 AND position <= $2 \
             AND (CAST($3 AS TEXT) IS NULL OR aggregate_type = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR aggregate_id = $4) AND {} AND {} \
             ORDER BY position LIMIT $9",
            in_range(5, 6),
            in_range(7, 8)
        ))
        .bind(to_i64(after))
        .bind(to_i64(head))
        .bind(filter.aggregate_type.as_deref())
        .bind(filter.aggregate_id.as_deref())
        .bind(r1.map(|r| r.0.as_str()))
        .bind(r1.map(|r| r.1.as_str()))
        .bind(r2.map(|r| r.0.as_str()))
        .bind(r2.map(|r| r.1.as_str()))
        .bind(i64::from(limit));
        let events = self.opened(current(&self.fetch_all(&sql).await?)?).await?;
        let read_to = if events.len() as u64 >= u64::from(limit) {
            events.last().map_or(after, |e| e.position)
        } else {
            head
        };
        Ok(LogPage { events, read_to })
    }

    /// The position of the last settled event, 0 for an empty log. A reader
    /// that has reached it has seen everything committed so far.
    pub async fn log_head(&self) -> Result<u64, StoreError> {
        let settled = self.dialect().pick(PG_SETTLED, "true");
        let sql = Sql::new(format!("SELECT max(position) FROM events WHERE {settled}"));
        let head: Option<i64> = match self.fetch_optional(&sql).await? {
            Some(row) => row.get(0)?,
            None => None,
        };
        Ok(head.map_or(0, to_u64))
    }

    /// Every event of one case, in its own order.
    #[tracing::instrument(level = "debug", skip(self), fields(store = self.kind()))]
    pub async fn case_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
             ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id);
        self.opened(current(&self.fetch_all(&sql).await?)?).await
    }
}

fn from_row(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position: Option<i64> = row.get("position")?;
    Ok(RecordedEvent {
        position: position.map_or(0, to_u64),
        event_id: row.uuid("event_id")?,
        recorded_at: row.time("recorded_at")?,
        aggregate_type: row.get("aggregate_type")?,
        aggregate_id: row.get("aggregate_id")?,
        sequence: to_u64(row.get("sequence")?),
        event_type: row.get("event_type")?,
        event_version: row.get("event_version")?,
        payload: row.get("payload")?,
        metadata: row.get("metadata")?,
        part: 0,
        parts: 1,
    })
}
