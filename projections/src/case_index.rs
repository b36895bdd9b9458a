//! The case index read model: one row per dispute and petition with the
//! columns lists filter on and the case's state, kept up to date from the
//! global log by the [runner](crate::runner). The same projection keeps the
//! cases' SLA clocks ([`crate::sla`]), which come from the same states.
//!
//! Each event is applied to the indexed state of its case with the
//! aggregate's own `apply`, so the index can never disagree with the
//! aggregate.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use mediation_domain::dispute::Dispute;
use mediation_domain::petition::Petition;
use mediation_store::{
    Batch, Cell, RecordedEvent, Sql, Store, StoreError, cases_begun_before, to_i64, to_u64,
};
use serde_json::Value;

use crate::runner::Projection;
use crate::sla::{self, ClockChange, Clocked};

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "case_index";

/// The case index as a projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaseIndex;

#[async_trait::async_trait]
impl Projection for CaseIndex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "case_index",
            sla::TABLE,
            sla::COUNTS_TABLE,
            sla::STAGE_COUNTS_TABLE,
            sla::OPEN_COUNTS_TABLE,
            sla::HOLDER_COUNTS_TABLE,
            sla::DUE_COUNTS_TABLE,
        ]
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        // In a rebuild: the cases and clocks the last batches left.
        let mut carried = batch.take_carried::<Carried>();
        let mut cases = fold::<Dispute>(batch, events, carried.as_mut()).await?;
        cases.extend(fold::<Petition>(batch, events, carried.as_mut()).await?);
        write_rows(batch, &cases).await?;
        let clocks: Vec<sla::CaseClocks<'_>> = cases
            .iter()
            .map(|case| sla::CaseClocks {
                aggregate_type: case.aggregate_type,
                case_id: case.case_id.as_str(),
                changes: case.clocks.as_slice(),
                begun_before: case.begun_before,
            })
            .collect();
        sla::write_all(batch, &clocks, carried.as_mut().map(|c| &mut c.clocks)).await?;
        if let Some(carried) = carried {
            batch.carry_on(carried);
        }
        Ok(())
    }
}

/// What the index needs to know of a case.
pub(crate) trait Indexed: Aggregate + Clone + Send + 'static {
    /// The filterable columns of the case as it stands.
    fn columns(&self) -> Columns;

    /// The cases of this type a rebuild keeps at hand.
    fn carried(carried: &mut Carried) -> &mut lru::LruCache<String, (Self, u64)>;
}

/// The filterable columns of one case, as stored names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// The division holding the case.
    pub division: Option<String>,
    /// The level holding the case.
    pub level: Option<&'static str>,
    /// The status.
    pub status: &'static str,
    /// The dispute category.
    pub category: Option<&'static str>,
    /// The dispute's risk grading.
    pub risk: Option<&'static str>,
    /// The petition's channel.
    pub channel: Option<&'static str>,
}

impl Indexed for Dispute {
    fn carried(carried: &mut Carried) -> &mut lru::LruCache<String, (Self, u64)> {
        &mut carried.disputes
    }

    fn columns(&self) -> Columns {
        Columns {
            division: self.division().map(|d| d.as_str().to_owned()),
            level: self.level().map(|l| l.as_str()),
            status: self.status().as_str(),
            category: self.category().map(|c| c.as_str()),
            risk: self.risk().map(|r| r.as_str()),
            channel: None,
        }
    }
}

impl Indexed for Petition {
    fn carried(carried: &mut Carried) -> &mut lru::LruCache<String, (Self, u64)> {
        &mut carried.petitions
    }

    fn columns(&self) -> Columns {
        Columns {
            division: self.division().map(|d| d.as_str().to_owned()),
            level: self.level().map(|l| l.as_str()),
            status: self.status().as_str(),
            category: None,
            risk: None,
            channel: self.channel().map(|c| c.as_str()),
        }
    }
}

/// One case in the index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case id.
    pub case_id: String,
    /// The division holding the case.
    pub division: Option<String>,
    /// The level holding the case (stored name).
    pub level: Option<String>,
    /// The status (stored name).
    pub status: String,
    /// The dispute category (stored name).
    pub category: Option<String>,
    /// The dispute risk grading (stored name).
    pub risk: Option<String>,
    /// The petition channel (stored name).
    pub channel: Option<String>,
    /// The case's version as of `position`.
    pub version: u64,
    /// The log position of the case's last event applied.
    pub position: u64,
    /// The case's state: the aggregate, serialised.
    pub state: Value,
}

/// Which cases a list returns, ordered by case id; every field set must
/// match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexQuery {
    /// The aggregate type.
    pub aggregate_type: String,
    /// Only cases held by a division in this range of codes (lowest, highest).
    pub division: Option<(String, String)>,
    /// A second range that must match too: the caller's scope.
    pub scope: Option<(String, String)>,
    /// Only cases at this level.
    pub level: Option<String>,
    /// Only cases in this status.
    pub status: Option<String>,
    /// Only disputes of this category.
    pub category: Option<String>,
    /// Only disputes of this risk grading.
    pub risk: Option<String>,
    /// Only petitions of this channel.
    pub channel: Option<String>,
    /// Only cases whose id sorts after this one.
    pub after_case_id: Option<String>,
    /// The most rows to return.
    pub limit: u32,
}

/// A case as a batch leaves it: its index row, the state serialised, and
/// what the batch's events did to its clocks, in order.
struct Folded {
    aggregate_type: &'static str,
    case_id: String,
    columns: Columns,
    version: u64,
    position: u64,
    state: String,
    clocks: Vec<ClockChange>,
    /// Whether the case began before this batch (else no clock of it is
    /// stored yet).
    begun_before: bool,
}

/// How many cases of each type a rebuild keeps at hand between batches
/// ([`Batch::carried`]), least recently touched out first: a few KB each
/// in memory, so about 100 MB of each type at most. A case whose events
/// lie further apart in the log is read back from the table.
const CARRIED_CASES: usize = 30_000;

/// The cases a rebuild keeps at hand between batches, with their
/// versions.
pub(crate) struct Carried {
    disputes: lru::LruCache<String, (Dispute, u64)>,
    petitions: lru::LruCache<String, (Petition, u64)>,
    clocks: sla::Carried,
}

impl Default for Carried {
    fn default() -> Self {
        let capacity =
            std::num::NonZeroUsize::new(CARRIED_CASES).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            disputes: lru::LruCache::new(capacity),
            petitions: lru::LruCache::new(capacity),
            // The clocks of both kinds of case.
            clocks: sla::Carried::new(2 * CARRIED_CASES),
        }
    }
}

/// One case as a batch folds it: its state, its version, the position of
/// the last event applied (0: none yet), and what the events did to its
/// clocks, in order.
struct Folding<A> {
    case: A,
    version: u64,
    position: u64,
    clocks: Vec<ClockChange>,
    /// Whether the case had events before this batch.
    begun_before: bool,
}

impl<A> Folding<A> {
    /// A case as read, before this batch's events.
    fn read(case: A, version: u64) -> Self {
        Self {
            case,
            version,
            position: 0,
            clocks: Vec::new(),
            begun_before: version > 0,
        }
    }
}

/// The cases of type `A` that `events` touch, with the events applied.
async fn fold<A: Indexed + Clocked>(
    batch: &mut Batch,
    events: &[RecordedEvent],
    mut carried: Option<&mut Carried>,
) -> Result<Vec<Folded>, StoreError> {
    let mine: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.aggregate_type == A::TYPE)
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    // A case that begins in this batch has nothing to read back.
    let mut ids = cases_begun_before(mine.iter().copied());
    let mut cases: HashMap<String, Folding<A>> = HashMap::new();
    // In a rebuild, the cases the last batches left are at hand; only the
    // others are read back from the table.
    if let Some(carried) = carried.as_deref_mut().map(A::carried) {
        ids.retain(|id| match carried.pop(id) {
            Some((case, version)) => {
                cases.insert(id.clone(), Folding::read(case, version));
                false
            }
            None => true,
        });
    }
    for (id, (state, version)) in index_states(batch, A::TYPE, &ids).await? {
        let case = decode::<A>(&id, state)?;
        cases.insert(id, Folding::read(case, version));
    }
    for event in mine {
        let entry = cases
            .entry(event.aggregate_id.clone())
            .or_insert_with(|| Folding::read(A::default(), 0));
        // An event the index already holds (its version is past it) is
        // skipped, so that a case read back is never folded twice. (A
        // case that begins in the batch is not read back: the checkpoint
        // keeps the batch from being applied twice.)
        if event.sequence <= entry.version {
            continue;
        }
        let payload: A::Event = event.decode().map_err(|e| {
            StoreError::Corrupt(format!(
                "event {} of {} {} does not match this engine: {e}",
                event.sequence,
                A::TYPE,
                event.aggregate_id
            ))
        })?;
        let before = entry.case.clocks();
        entry.case.apply(payload);
        let after = entry.case.clocks();
        let changes = sla::diff(&before, &after, sla::event_time(event));
        entry.clocks.extend(sla::recomputed(event, changes));
        entry.clocks.extend(sla::mark(event));
        // The events read from one stored row (an older event the model
        // now records as several) are applied as one unit: the version
        // moves past the row only with its last, so the skip above cannot
        // drop the second.
        if event.ends_row() {
            entry.version = event.sequence;
        }
        entry.position = event.position;
    }
    let mut rows = Vec::with_capacity(cases.len());
    let mut carried = carried.map(A::carried);
    for (
        id,
        Folding {
            case,
            version,
            position,
            clocks,
            begun_before,
        },
    ) in cases
    {
        if position == 0 {
            // Nothing applied: the case stands as it was read.
            if let Some(carried) = carried.as_deref_mut() {
                carried.put(id, (case, version));
            }
            continue;
        }
        let state = serde_json::to_string(&case)
            .map_err(|e| StoreError::Corrupt(format!("{} {id} not serialisable: {e}", A::TYPE)))?;
        let columns = case.columns();
        if let Some(carried) = carried.as_deref_mut() {
            carried.put(id.clone(), (case, version));
        }
        rows.push(Folded {
            aggregate_type: A::TYPE,
            columns,
            case_id: id,
            version,
            position,
            state,
            clocks,
            begun_before,
        });
    }
    Ok(rows)
}

/// A case's state from the index.
pub fn decode<A: Aggregate>(id: &str, state: Value) -> Result<A, StoreError> {
    serde_json::from_value(state).map_err(|e| {
        StoreError::Corrupt(format!(
            "indexed {} {id} does not match this engine ({e}); rebuild the index",
            A::TYPE
        ))
    })
}

/// The indexed states and versions of `ids`, read within the batch.
async fn index_states(
    batch: &mut Batch,
    aggregate_type: &str,
    ids: &[String],
) -> Result<HashMap<String, (Value, u64)>, StoreError> {
    let mut found = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let table = batch.table("case_index");
    let sql = Sql::new(format!(
        "SELECT case_id, state, version FROM {table} WHERE aggregate_type = $1 AND {}",
        batch.dialect().any("case_id", 2)
    ))
    .bind(aggregate_type)
    .bind(ids);
    for row in batch.fetch_all(&sql).await? {
        found.insert(
            row.get("case_id")?,
            (row.get("state")?, to_u64(row.get("version")?)),
        );
    }
    Ok(found)
}

/// What an index row's columns are updated with when the case is there.
const UPSERT: &str = "ON CONFLICT (aggregate_type, case_id) DO UPDATE SET \
    division = excluded.division, level = excluded.level, status = excluded.status, \
    category = excluded.category, risk = excluded.risk, channel = excluded.channel, \
    version = excluded.version, position = excluded.position, state = excluded.state";

/// Writes `rows` into the index within the batch: one statement for the
/// whole batch (a round trip per case was most of a rebuild's time). Each
/// case appears once in `rows`.
async fn write_rows(batch: &mut Batch, rows: &[Folded]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let table = batch.table("case_index");
    if let Some(connection) = batch.postgres() {
        // Arrays rather than a VALUES list: the state travels as text and
        // becomes `jsonb` in the statement.
        let sql = format!(
            "INSERT INTO {table} (aggregate_type, case_id, division, level, status, category, \
             risk, channel, version, position, state) \
             SELECT t, c, d, l, s, cat, r, ch, v, p, st::jsonb \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                         $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[]) \
                  AS u(t, c, d, l, s, cat, r, ch, v, p, st) {UPSERT}"
        );
        let column =
            |f: fn(&Folded) -> Option<&str>| -> Vec<Option<&str>> { rows.iter().map(f).collect() };
        sqlx::query(&sql)
            .bind(column(|r| Some(r.aggregate_type)))
            .bind(column(|r| Some(r.case_id.as_str())))
            .bind(column(|r| r.columns.division.as_deref()))
            .bind(column(|r| r.columns.level))
            .bind(column(|r| Some(r.columns.status)))
            .bind(column(|r| r.columns.category))
            .bind(column(|r| r.columns.risk))
            .bind(column(|r| r.columns.channel))
            .bind(rows.iter().map(|r| to_i64(r.version)).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| to_i64(r.position)).collect::<Vec<_>>())
            .bind(column(|r| Some(r.state.as_str())))
            .execute(&mut *connection)
            .await?;
        return Ok(());
    }
    let cells: Vec<Vec<Cell<'_>>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::Text(r.aggregate_type),
                Cell::Text(&r.case_id),
                Cell::OptionalText(r.columns.division.as_deref()),
                Cell::OptionalText(r.columns.level),
                Cell::Text(r.columns.status),
                Cell::OptionalText(r.columns.category),
                Cell::OptionalText(r.columns.risk),
                Cell::OptionalText(r.columns.channel),
                Cell::Int(to_i64(r.version)),
                Cell::Int(to_i64(r.position)),
                Cell::Text(&r.state),
            ]
        })
        .collect();
    batch
        .insert_rows(
            "case_index",
            &[
                "aggregate_type",
                "case_id",
                "division",
                "level",
                "status",
                "category",
                "risk",
                "channel",
                "version",
                "position",
                "state",
            ],
            &cells,
            UPSERT,
        )
        .await
}

/// One page of the case index, ordered by case id.
pub async fn list(store: &Store, query: &IndexQuery) -> Result<Vec<IndexRow>, StoreError> {
    let (d, s) = (query.division.as_ref(), query.scope.as_ref());
    let sql = Sql::new(LIST)
        .bind(&query.aggregate_type)
        .bind(d.map(|r| r.0.as_str()))
        .bind(d.map(|r| r.1.as_str()))
        .bind(s.map(|r| r.0.as_str()))
        .bind(s.map(|r| r.1.as_str()))
        .bind(query.level.as_deref())
        .bind(query.status.as_deref())
        .bind(query.category.as_deref())
        .bind(query.risk.as_deref())
        .bind(query.channel.as_deref())
        .bind(query.after_case_id.as_deref())
        .bind(i64::from(query.limit));
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|row| {
            Ok(IndexRow {
                aggregate_type: query.aggregate_type.clone(),
                case_id: row.get("case_id")?,
                division: row.get("division")?,
                level: row.get("level")?,
                status: row.get("status")?,
                category: row.get("category")?,
                risk: row.get("risk")?,
                channel: row.get("channel")?,
                version: to_u64(row.get("version")?),
                position: to_u64(row.get("position")?),
                state: row.get("state")?,
            })
        })
        .collect()
}

const LIST: &str = "SELECT case_id, division, level, status, category, risk, channel, \
    version, position, state FROM case_index WHERE aggregate_type = $1 \
    AND (CAST($2 AS TEXT) IS NULL OR division BETWEEN $2 AND $3) \
    AND (CAST($4 AS TEXT) IS NULL OR division BETWEEN $4 AND $5) \
    AND (CAST($6 AS TEXT) IS NULL OR level = $6) AND (CAST($7 AS TEXT) IS NULL OR status = $7) \
    AND (CAST($8 AS TEXT) IS NULL OR category = $8) AND (CAST($9 AS TEXT) IS NULL OR risk = $9) \
    AND (CAST($10 AS TEXT) IS NULL OR channel = $10) \
    AND (CAST($11 AS TEXT) IS NULL OR case_id > $11) \
    ORDER BY case_id LIMIT $12";
