//! The caseload read model: one row per open dispute with who holds it —
//! the mediation body and mediator it was dispatched to, or, until it is
//! dispatched, the division at its level — and since when, kept from the
//! global log by the [runner](crate::runner).
//!
//! A row appears when a dispute is registered. It changes when the case is
//! dispatched (to a body other than the current one: the age starts
//! again; to the same body: the age runs on, the mediator may change) and
//! when it moves level (escalated, taken over, sent down: it leaves its
//! body and waits at the new level). It goes when the case is closed or
//! referred to a legal channel, and comes back when a closed case is
//! reopened. A terminated or agreed case stays with its body until it moves
//! or closes: the body still answers for it. Petitions are not mediated by
//! bodies and have no caseload here.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use mediation_domain::dispute::DisputeChange;
use mediation_domain::values::{DivisionCode, Level};
use mediation_store::{
    Batch, Cell, RecordedEvent, Row, Sql, Store, StoreError, cases_begun_before,
};

use crate::runner::Projection;
use crate::statistics::support::{decode_disputes, millis, parse_level, to_u64};

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "caseload";

/// The caseload as a projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caseload;

#[async_trait::async_trait]
impl Projection for Caseload {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["caseload"]
    }

    fn gather(&self) -> std::time::Duration {
        crate::runner::DASHBOARD_GATHER
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mine = decode_disputes(events)?;
        if mine.is_empty() {
            return Ok(());
        }
        // `None`: the case is not (or no longer) open.
        let mut open: HashMap<String, Option<OpenCase>> = mine
            .iter()
            .map(|(e, _)| (e.aggregate_id.clone(), None))
            .collect();
        // A case that begins in this batch has nothing to read back.
        let mut ids = cases_begun_before(mine.iter().map(|(e, _)| *e));
        // In a rebuild, the cases the last batches touched are at hand;
        // only the others are read.
        let mut carried = batch.take_carried::<Carried>();
        if let Some(carried) = carried.as_mut() {
            ids.retain(|id| match carried.cases.pop(id) {
                Some(case) => {
                    open.insert(id.clone(), case);
                    false
                }
                None => true,
            });
        }
        for row in load(batch, &ids).await? {
            open.insert(row.case_id.clone(), Some(row));
        }
        for (recorded, event) in mine {
            let id = &recorded.aggregate_id;
            let at = millis(event.at);
            let arrived = |division: DivisionCode, level: Level| OpenCase {
                case_id: id.clone(),
                division,
                level,
                body_id: None,
                body_name: None,
                mediator: None,
                opened_at: at,
            };
            let Some(slot) = open.get_mut(id) else {
                continue;
            };
            use DisputeChange as C;
            match event.change {
                C::DisputeRegistered {
                    division, level, ..
                }
                | C::DisputeReopened {
                    division, level, ..
                }
                | C::DisputeEscalated {
                    to_division: division,
                    to_level: level,
                    ..
                }
                | C::DisputeTakenOver {
                    to_division: division,
                    to_level: level,
                    ..
                }
                | C::DisputeSentDown {
                    to_division: division,
                    to_level: level,
                    ..
                } => *slot = Some(arrived(division, level)),
                C::DisputeDispatched { body, mediator, .. } => match slot {
                    Some(case) => {
                        // Dispatched again to the body that has it (after a
                        // court refused the agreement, say): it never left.
                        if case.body_id.as_deref() != Some(body.id.as_str()) {
                            case.opened_at = at;
                        }
                        case.body_id = Some(body.id.into());
                        case.body_name = Some(body.name.into());
                        case.mediator = mediator.map(Into::into);
                    }
                    None => {
                        // The aggregate dispatches only registered, open
                        // cases; a log that says otherwise is reported.
                        tracing::warn!(case = %id, "dispatch of a case not open; not counted");
                    }
                },
                C::DisputeReferred { .. } | C::DisputeClosed { .. } => *slot = None,
                // Nothing else changes who holds the case.
                _ => {}
            }
        }
        write(batch, &open).await?;
        if let Some(mut carried) = carried {
            for (id, case) in open {
                carried.cases.put(id, case);
            }
            batch.carry_on(carried);
        }
        Ok(())
    }
}

/// How many cases a rebuild keeps at hand between batches (a few hundred
/// bytes each), least recently touched out first.
const CARRIED_CASES: usize = 100_000;

/// The cases a rebuild keeps at hand between batches: each open case's
/// row, or `None` for one known not to be open.
struct Carried {
    cases: lru::LruCache<String, Option<OpenCase>>,
}

impl Default for Carried {
    fn default() -> Self {
        Self {
            cases: lru::LruCache::new(
                std::num::NonZeroUsize::new(CARRIED_CASES).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
        }
    }
}

/// One open dispute and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCase {
    /// The case id.
    pub case_id: String,
    /// The division holding the case.
    pub division: DivisionCode,
    /// Its level.
    pub level: Level,
    /// The mediation body it is dispatched to; `None` while it awaits
    /// dispatch at its level.
    pub body_id: Option<String>,
    /// The body's name, as the dispatch gave it.
    pub body_name: Option<String>,
    /// The mediator in charge, if named.
    pub mediator: Option<String>,
    /// When the current holder got it: the dispatch, or (awaiting dispatch)
    /// the registration, move or reopening that brought it to its level.
    pub opened_at: DateTime<Utc>,
}

/// The open cases of one holder (a body, or a mediator within a body) and
/// how long they have been held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The body; `None` for the cases awaiting dispatch.
    pub body_id: Option<String>,
    /// The body's name (the latest dispatch's, if it changed).
    pub body_name: Option<String>,
    /// The mediator, in a per-mediator load; `None` in a per-body load, or
    /// for the cases whose dispatch named no mediator.
    pub mediator: Option<String>,
    /// How many open cases.
    pub open: u64,
    /// When the longest-held one was opened.
    pub oldest_opened_at: DateTime<Utc>,
    /// Its age at the time asked about (zero if opened after it).
    pub oldest_age: TimeDelta,
    /// The mean age of the open cases, to the second.
    pub average_age: TimeDelta,
}

/// The open disputes held in `subtree`, oldest first.
pub async fn open_cases(
    store: &Store,
    subtree: &DivisionCode,
) -> Result<Vec<OpenCase>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM caseload WHERE division BETWEEN $1 AND $2 \
         ORDER BY opened_at, case_id"
    ))
    .bind(&low)
    .bind(&high);
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(decode_open)
        .collect()
}

/// The columns of an open case.
const COLUMNS: &str = "case_id, division, level, body_id, body_name, mediator, opened_at";

/// The load of each mediation body holding open disputes in `subtree`,
/// with the cases awaiting dispatch as one load without a body; ages as of
/// `now`. Ordered by body id, the cases awaiting dispatch first.
pub async fn per_body(
    store: &Store,
    subtree: &DivisionCode,
    now: DateTime<Utc>,
) -> Result<Vec<Load>, StoreError> {
    loads(store, subtree, now, false).await
}

/// The load of each mediator (within their body) holding open disputes in
/// `subtree`; ages as of `now`. Ordered by body id, then mediator, the
/// cases without a mediator first.
pub async fn per_mediator(
    store: &Store,
    subtree: &DivisionCode,
    now: DateTime<Utc>,
) -> Result<Vec<Load>, StoreError> {
    loads(store, subtree, now, true).await
}

async fn loads(
    store: &Store,
    subtree: &DivisionCode,
    now: DateTime<Utc>,
    by_mediator: bool,
) -> Result<Vec<Load>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let (mediator, group) = if by_mediator {
        ("mediator", "body_id, mediator")
    } else {
        ("NULL", "body_id")
    };
    let epoch = store.dialect().pick(
        "extract(epoch FROM opened_at)::bigint",
        "CAST(strftime('%s', opened_at) AS INTEGER)",
    );
    let order = group
        .split(", ")
        .map(|c| format!("{c} NULLS FIRST"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = Sql::new(format!(
        "SELECT body_id, max(body_name) AS body_name, CAST({mediator} AS TEXT) AS mediator, \
         count(*) AS open, min(opened_at) AS oldest, CAST(sum({epoch}) AS BIGINT) AS seconds \
         FROM caseload WHERE division BETWEEN $1 AND $2 \
         GROUP BY {group} ORDER BY {order}"
    ))
    .bind(&low)
    .bind(&high);
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|row| decode_load(row, now))
        .collect()
}

fn decode_open(row: &Row) -> Result<OpenCase, StoreError> {
    let division: String = row.get("division")?;
    let level: String = row.get("level")?;
    Ok(OpenCase {
        case_id: row.get("case_id")?,
        division: DivisionCode::parse(&division)
            .map_err(|e| StoreError::Corrupt(format!("caseload division: {e}")))?,
        level: parse_level(&level)?,
        body_id: row.get("body_id")?,
        body_name: row.get("body_name")?,
        mediator: row.get("mediator")?,
        opened_at: row.time("opened_at")?,
    })
}

fn decode_load(row: &Row, now: DateTime<Utc>) -> Result<Load, StoreError> {
    let oldest_opened_at = row.time("oldest")?;
    let open: i64 = row.get("open")?;
    let seconds: i64 = row.get("seconds")?;
    // The mean age is the time since the mean opening instant.
    let mean_opened = seconds.checked_div(open).unwrap_or(0);
    let average = now.timestamp().saturating_sub(mean_opened).max(0);
    Ok(Load {
        body_id: row.get("body_id")?,
        body_name: row.get("body_name")?,
        mediator: row.get("mediator")?,
        open: to_u64(open),
        oldest_opened_at,
        oldest_age: (now - oldest_opened_at).max(TimeDelta::zero()),
        average_age: TimeDelta::seconds(average),
    })
}

/// The open rows of `ids`, read within the batch.
async fn load(batch: &mut Batch, ids: &[String]) -> Result<Vec<OpenCase>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let table = batch.table("caseload");
    let sql = Sql::new(format!(
        "SELECT {COLUMNS} FROM {table} WHERE {}",
        batch.dialect().any("case_id", 1)
    ))
    .bind(ids);
    batch
        .fetch_all(&sql)
        .await?
        .iter()
        .map(decode_open)
        .collect()
}

/// Writes the open cases and removes the ones no longer open, within the
/// batch: one statement for each.
async fn write(
    batch: &mut Batch,
    cases: &HashMap<String, Option<OpenCase>>,
) -> Result<(), StoreError> {
    let open: Vec<Vec<Cell<'_>>> = cases
        .values()
        .flatten()
        .map(|c| {
            vec![
                Cell::Text(&c.case_id),
                Cell::Text(c.division.as_str()),
                Cell::Text(c.level.as_str()),
                Cell::OptionalText(c.body_id.as_deref()),
                Cell::OptionalText(c.body_name.as_deref()),
                Cell::OptionalText(c.mediator.as_deref()),
                Cell::Time(Some(c.opened_at)),
            ]
        })
        .collect();
    batch
        .insert_rows(
            "caseload",
            &[
                "case_id",
                "division",
                "level",
                "body_id",
                "body_name",
                "mediator",
                "opened_at",
            ],
            &open,
            "ON CONFLICT (case_id) DO UPDATE SET division = excluded.division, \
             level = excluded.level, body_id = excluded.body_id, \
             body_name = excluded.body_name, mediator = excluded.mediator, \
             opened_at = excluded.opened_at",
        )
        .await?;
    let closed: Vec<String> = cases
        .iter()
        .filter(|(_, c)| c.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    batch
        .where_in("DELETE FROM {table}", "caseload", "case_id", &closed)
        .await?;
    Ok(())
}
