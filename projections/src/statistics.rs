//! Escalation and resolution statistics: what supervisors measure
//! (DOMAIN.md, "What supervisors measure"), as event counts per division,
//! level and month, kept from the global log by the [runner](crate::runner).
//!
//! # Which event counts where
//!
//! Every counter is bumped by one dispute event, in the month of the
//! event's `at` in +08:00 ([`Period::of`]). Petitions are not counted here:
//! they do not climb the ladder (see [`crate::petitioners`]).
//!
//! | counter | event | division and level it counts at |
//! |---|---|---|
//! | `registered` | `DisputeRegistered` | the registering division (the intake level) |
//! | `received` | `DisputeEscalated`, `DisputeTakenOver`, `DisputeSentDown` | the division it moved **to** |
//! | `reopened` | `DisputeReopened` | the division that reopened it |
//! | `escalated_up` | `DisputeEscalated` | the division it **left** |
//! | `taken_over` | `DisputeTakenOver` | the division it **left** (taken from it by one above) |
//! | `sent_down` | `DisputeSentDown` | the division it **left** (sent to one below) |
//! | `agreements` | `AgreementReached` | the division holding the case |
//! | `terminations` | `MediationTerminated` (any reason, withdrawals included) and `MediationRefused` | the division holding the case |
//! | `referred` | `DisputeReferred` | the division holding the case |
//! | `closed` | `DisputeClosed` | its `resolved_division` and `resolved_level` |
//! | `closed_at_or_below_intake` | `DisputeClosed` with `resolved_at_or_below_intake` | as `closed` |
//! | `closed_on_time` | `DisputeClosed` whose `at` is before the handling deadline in force (the `handling_due` of the latest registration, move or reopening) | as `closed` |
//!
//! A reopened case that is closed again counts as a second closure, and
//! each mediation that ends (a case may be mediated again after a court
//! refuses to confirm its agreement) counts once.
//!
//! # Rates
//!
//! Rates are ratios of sums over the rows asked for, never averages of
//! per-row rates, and `None` when the denominator is zero:
//!
//! - lowest-level resolution: `closed_at_or_below_intake ÷ closed`;
//! - mediation success: `agreements ÷ (agreements + terminations)`, the
//!   mediations concluded, so refusals and withdrawals weigh against it;
//! - on time: `closed_on_time ÷ closed`;
//! - escalation: `escalated_up ÷ (registered + received + reopened)`, the
//!   cases the level escalated among those it took in. Take-overs are not
//!   escalations (the level above acted, not this one) and are reported
//!   apart as `taken_over`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use mediation_domain::dispute::{DisputeChange, DisputeEvent};
use mediation_domain::values::{DivisionCode, InvalidValue, Level};
use mediation_store::{Backend, Batch, Cell, RecordedEvent, Store, StoreError};
use sqlx::Row;

use crate::runner::Projection;
use support::{ids_json, parse_level, parse_time, to_i64, to_u64};

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "statistics";

/// The offset of the local time in which periods are counted: +08:00
/// (China has one time zone and no daylight saving).
pub const PERIOD_OFFSET_HOURS: i64 = 8;

/// The escalation and resolution statistics as a projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statistics;

#[async_trait::async_trait]
impl Projection for Statistics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["statistics", "statistics_cases"]
    }

    fn gather(&self) -> std::time::Duration {
        crate::runner::DASHBOARD_GATHER
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mine = support::decode_disputes(events)?;
        if mine.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = mine.iter().map(|(e, _)| e.aggregate_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut states = load_states(batch, &ids).await?;
        let mut counts: HashMap<Key, Counts> = HashMap::new();
        let mut changed: HashSet<String> = HashSet::new();
        for (recorded, event) in mine {
            let id = &recorded.aggregate_id;
            // The checkpoint already keeps a batch from being applied twice;
            // the case's version keeps the counters right even if it did not.
            if states
                .get(id)
                .is_some_and(|s| recorded.sequence <= s.version)
            {
                continue;
            }
            count(&mut counts, &mut states, id, event);
            if let Some(state) = states.get_mut(id) {
                state.version = recorded.sequence;
                changed.insert(id.clone());
            }
        }
        write_counts(batch, &counts).await?;
        write_states(batch, &states, &changed).await
    }
}

/// A calendar month in +08:00: the period statistics are kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: i32,
    month: u32,
}

impl Period {
    /// The month `month` (1–12) of `year` (1–9999).
    pub fn new(year: i32, month: u32) -> Result<Self, InvalidValue> {
        // Four-digit years keep the stored text ('YYYY-MM') in time order.
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(InvalidValue::new(
                "period",
                format!("{year}-{month} is not a month of the years 1 to 9999"),
            ));
        }
        Ok(Self { year, month })
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue::new("period", format!("{s:?} is not a month as YYYY-MM"));
        let (year, month) = s.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        Self::new(
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        )
    }

    /// The month `at` falls in, in +08:00.
    pub fn of(at: DateTime<Utc>) -> Self {
        let utc = at.naive_utc();
        let local = utc
            .checked_add_signed(TimeDelta::hours(PERIOD_OFFSET_HOURS))
            .unwrap_or(utc);
        Self {
            year: local.year().clamp(1, 9999),
            month: local.month(),
        }
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The first instant of the month, local midnight in +08:00.
    pub fn start(&self) -> DateTime<Utc> {
        // `new` admits only dates chrono can represent.
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(DateTime::<Utc>::MIN_UTC, |local| {
                (local - TimeDelta::hours(PERIOD_OFFSET_HOURS)).and_utc()
            })
    }

    /// The month after this one (the last month stays where it is).
    pub fn next(&self) -> Self {
        match (self.year, self.month) {
            (9999, 12) => *self,
            (year, 12) => Self {
                year: year + 1,
                month: 1,
            },
            (year, month) => Self {
                year,
                month: month + 1,
            },
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The event counts of one row; see the [module documentation](self) for
/// which event counts where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Disputes registered here (this is their intake level).
    pub registered: u64,
    /// Disputes that arrived from another level: escalated, taken over or
    /// sent down to here.
    pub received: u64,
    /// Closed disputes reopened here.
    pub reopened: u64,
    /// Disputes escalated from here to the level above.
    pub escalated_up: u64,
    /// Disputes taken over from here by a division above.
    pub taken_over: u64,
    /// Disputes sent down from here to a division below.
    pub sent_down: u64,
    /// Mediations here that ended in an agreement (resolved by agreement).
    pub agreements: u64,
    /// Mediations here that ended without one: terminated for any reason,
    /// a party's withdrawal included, or refused by a party.
    pub terminations: u64,
    /// Disputes referred from here to a legal channel.
    pub referred: u64,
    /// Disputes closed here.
    pub closed: u64,
    /// Of those, closed at or below their intake level.
    pub closed_at_or_below_intake: u64,
    /// Of those, closed before the handling deadline in force.
    pub closed_on_time: u64,
}

/// The stored counter columns, in the order of [`Counts::values`].
const COLUMNS: [&str; 12] = [
    "registered",
    "received",
    "reopened",
    "escalated_up",
    "taken_over",
    "sent_down",
    "agreements",
    "terminations",
    "referred",
    "closed",
    "closed_at_or_below_intake",
    "closed_on_time",
];

impl Counts {
    /// Mediations concluded: agreements plus terminations (refusals and
    /// withdrawals included), the denominator of the success rate.
    pub fn mediations_concluded(&self) -> u64 {
        self.agreements.saturating_add(self.terminations)
    }

    /// The cases the level took in: registered, received from another
    /// level, or reopened; the denominator of the escalation rate.
    pub fn taken_in(&self) -> u64 {
        self.registered
            .saturating_add(self.received)
            .saturating_add(self.reopened)
    }

    /// The rates DOMAIN.md defines, from these counts.
    pub fn rates(&self) -> Rates {
        Rates {
            lowest_level_resolution: ratio(self.closed_at_or_below_intake, self.closed),
            mediation_success: ratio(self.agreements, self.mediations_concluded()),
            on_time: ratio(self.closed_on_time, self.closed),
            escalation: ratio(self.escalated_up, self.taken_in()),
        }
    }

    fn values(&self) -> [u64; 12] {
        [
            self.registered,
            self.received,
            self.reopened,
            self.escalated_up,
            self.taken_over,
            self.sent_down,
            self.agreements,
            self.terminations,
            self.referred,
            self.closed,
            self.closed_at_or_below_intake,
            self.closed_on_time,
        ]
    }

    fn from_values(v: [u64; 12]) -> Self {
        let [
            registered,
            received,
            reopened,
            escalated_up,
            taken_over,
            sent_down,
            agreements,
            terminations,
            referred,
            closed,
            closed_at_or_below_intake,
            closed_on_time,
        ] = v;
        Self {
            registered,
            received,
            reopened,
            escalated_up,
            taken_over,
            sent_down,
            agreements,
            terminations,
            referred,
            closed,
            closed_at_or_below_intake,
            closed_on_time,
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The rates supervisors measure, as fractions (0.83, not 83); `None`
/// where nothing was counted in the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Resolved at the lowest level: closed at or below the intake level ÷
    /// closed.
    pub lowest_level_resolution: Option<f64>,
    /// Mediation success: agreements ÷ mediations concluded.
    pub mediation_success: Option<f64>,
    /// Closed on time ÷ closed.
    pub on_time: Option<f64>,
    /// Escalated up ÷ taken in (registered + received + reopened).
    pub escalation: Option<f64>,
}

/// How the rows of a query are grouped; counts are summed within a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One row per division, level and month.
    DivisionLevelPeriod,
    /// One row per level and month, over the whole subtree.
    LevelPeriod,
    /// One row per level over the subtree and the months: the escalation
    /// rate per level.
    Level,
    /// One row for everything asked for (always returned, zeros if empty).
    Total,
}

/// One row of statistics; a key is `None` when the grouping sums over it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    /// The division.
    pub division: Option<DivisionCode>,
    /// The level.
    pub level: Option<Level>,
    /// The month.
    pub period: Option<Period>,
    /// The summed counts.
    pub counts: Counts,
    /// The rates of the summed counts.
    pub rates: Rates,
}

/// The statistics of the divisions in `subtree` (itself included), for the
/// months `from` to `to` inclusive, grouped as asked; ordered by division,
/// then level up the ladder, then month.
pub async fn query(
    store: &Store,
    subtree: &DivisionCode,
    from: Period,
    to: Period,
    grouping: Grouping,
) -> Result<Vec<StatsRow>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let (from, to) = (from.to_string(), to.to_string());
    let mut rows = match store.backend() {
        Backend::Postgres(pool) => sqlx::query(&query_sql(grouping, true))
            .bind(&low)
            .bind(&high)
            .bind(&from)
            .bind(&to)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                decode_row(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, |i| {
                    row.try_get(i)
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?,
        Backend::Sqlite(pool) => sqlx::query(&query_sql(grouping, false))
            .bind(&low)
            .bind(&high)
            .bind(&from)
            .bind(&to)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                decode_row(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, |i| {
                    row.try_get(i)
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?,
    };
    // Levels sort as text in SQL; the ladder's order is the one readers
    // expect.
    rows.sort_by(|a, b| (&a.division, a.level, a.period).cmp(&(&b.division, b.level, b.period)));
    Ok(rows)
}

fn query_sql(grouping: Grouping, postgres: bool) -> String {
    let (division, level, period) = match grouping {
        Grouping::DivisionLevelPeriod => (true, true, true),
        Grouping::LevelPeriod => (false, true, true),
        Grouping::Level => (false, true, false),
        Grouping::Total => (false, false, false),
    };
    let null = if postgres { "NULL::text" } else { "NULL" };
    let key = |on: bool, column: &'static str| if on { column } else { null };
    let keys: Vec<&str> = [(division, "division"), (level, "level"), (period, "period")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
    // PostgreSQL sums bigints as numeric; cast back so both backends
    // return 64-bit integers.
    let cast = if postgres { "::bigint" } else { "" };
    let sums: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("COALESCE(SUM({c}), 0){cast} AS {c}"))
        .collect();
    let filter = if postgres {
        "division BETWEEN $1 AND $2 AND period BETWEEN $3 AND $4"
    } else {
        "division BETWEEN ?1 AND ?2 AND period BETWEEN ?3 AND ?4"
    };
    let mut sql = format!(
        "SELECT {} AS division, {} AS level, {} AS period, {} FROM statistics WHERE {filter}",
        key(division, "division"),
        key(level, "level"),
        key(period, "period"),
        sums.join(", "),
    );
    if !keys.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
    }
    sql
}

fn decode_row(
    division: Option<String>,
    level: Option<String>,
    period: Option<String>,
    get: impl Fn(usize) -> Result<i64, sqlx::Error>,
) -> Result<StatsRow, StoreError> {
    let mut values = [0u64; 12];
    for (i, value) in values.iter_mut().enumerate() {
        *value = to_u64(get(i + 3)?);
    }
    let counts = Counts::from_values(values);
    Ok(StatsRow {
        division: division
            .map(|d| {
                DivisionCode::parse(&d)
                    .map_err(|e| StoreError::Corrupt(format!("statistics division: {e}")))
            })
            .transpose()?,
        level: level.as_deref().map(parse_level).transpose()?,
        period: period
            .map(|p| Period::parse(&p).map_err(|e| StoreError::Corrupt(format!("statistics: {e}"))))
            .transpose()?,
        counts,
        rates: counts.rates(),
    })
}

/// A row's key: division, level, month.
type Key = (String, Level, Period);

/// What the counters need to know of a dispute between events.
#[derive(Debug, Clone, PartialEq)]
struct CaseState {
    division: String,
    level: Level,
    handling_due: Option<DateTime<Utc>>,
    version: u64,
}

fn bump<'a>(
    counts: &'a mut HashMap<Key, Counts>,
    division: &str,
    level: Level,
    period: Period,
) -> &'a mut Counts {
    counts
        .entry((division.to_owned(), level, period))
        .or_default()
}

/// Counts one event and brings the case's state past it.
fn count(
    counts: &mut HashMap<Key, Counts>,
    states: &mut HashMap<String, CaseState>,
    id: &str,
    event: DisputeEvent,
) {
    use DisputeChange as C;
    let period = Period::of(event.at);
    let version = states.get(id).map_or(0, |s| s.version);
    let mut move_to = |division: DivisionCode, level: Level, due: DateTime<Utc>| {
        states.insert(
            id.to_owned(),
            CaseState {
                division: division.into(),
                level,
                handling_due: Some(due),
                version,
            },
        );
    };
    match event.change {
        C::DisputeRegistered {
            division,
            level,
            handling_due,
            ..
        } => {
            bump(counts, division.as_str(), level, period).registered += 1;
            move_to(division, level, handling_due.due);
        }
        C::DisputeEscalated {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
            ..
        } => {
            bump(counts, from_division.as_str(), from_level, period).escalated_up += 1;
            bump(counts, to_division.as_str(), to_level, period).received += 1;
            move_to(to_division, to_level, handling_due.due);
        }
        C::DisputeTakenOver {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
        } => {
            bump(counts, from_division.as_str(), from_level, period).taken_over += 1;
            bump(counts, to_division.as_str(), to_level, period).received += 1;
            move_to(to_division, to_level, handling_due.due);
        }
        C::DisputeSentDown {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
        } => {
            bump(counts, from_division.as_str(), from_level, period).sent_down += 1;
            bump(counts, to_division.as_str(), to_level, period).received += 1;
            move_to(to_division, to_level, handling_due.due);
        }
        C::DisputeReopened {
            division,
            level,
            handling_due,
            ..
        } => {
            bump(counts, division.as_str(), level, period).reopened += 1;
            move_to(division, level, handling_due.due);
        }
        C::AgreementReached { .. } => {
            if let Some(c) = holder(counts, states, id, period) {
                c.agreements += 1;
            }
        }
        C::MediationTerminated { .. } | C::MediationRefused { .. } => {
            if let Some(c) = holder(counts, states, id, period) {
                c.terminations += 1;
            }
        }
        C::DisputeReferred { .. } => {
            if let Some(c) = holder(counts, states, id, period) {
                c.referred += 1;
            }
        }
        C::DisputeClosed {
            resolved_division,
            resolved_level,
            resolved_at_or_below_intake,
            ..
        } => {
            // A period lapses at its due instant, so closing at it is late.
            let on_time = states
                .get(id)
                .and_then(|s| s.handling_due)
                .is_some_and(|due| event.at < due);
            let c = bump(counts, resolved_division.as_str(), resolved_level, period);
            c.closed += 1;
            c.closed_at_or_below_intake += u64::from(resolved_at_or_below_intake);
            c.closed_on_time += u64::from(on_time);
        }
        // Reports, consents, sessions, court steps, follow-ups, reviews,
        // evaluations and deadline warnings count nothing here.
        _ => {}
    }
}

/// The counts of the division and level holding the case, which events
/// inside a level do not name.
fn holder<'a>(
    counts: &'a mut HashMap<Key, Counts>,
    states: &HashMap<String, CaseState>,
    id: &str,
    period: Period,
) -> Option<&'a mut Counts> {
    let Some(state) = states.get(id) else {
        // A mediation outcome before any registration cannot happen in a
        // log the aggregate wrote; say so rather than count it nowhere.
        tracing::warn!(case = id, "dispute event before registration; not counted");
        return None;
    };
    Some(bump(counts, &state.division, state.level, period))
}

/// The states of `ids`, read within the batch.
async fn load_states(
    batch: &mut Batch,
    ids: &[String],
) -> Result<HashMap<String, CaseState>, StoreError> {
    let table = batch.table("statistics_cases");
    let mut found = HashMap::new();
    if let Some(connection) = batch.postgres() {
        let rows = sqlx::query(&format!(
            "SELECT case_id, division, level, handling_due, version FROM {table} \
             WHERE case_id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(connection)
        .await?;
        for row in rows {
            let level: String = row.try_get("level")?;
            found.insert(
                row.try_get("case_id")?,
                CaseState {
                    division: row.try_get("division")?,
                    level: parse_level(&level)?,
                    handling_due: row.try_get("handling_due")?,
                    version: to_u64(row.try_get("version")?),
                },
            );
        }
    } else if let Some(connection) = batch.sqlite() {
        let rows = sqlx::query(&format!(
            "SELECT case_id, division, level, handling_due, version FROM {table} \
             WHERE case_id IN (SELECT value FROM json_each(?))"
        ))
        .bind(ids_json(ids)?)
        .fetch_all(connection)
        .await?;
        for row in rows {
            let level: String = row.try_get("level")?;
            let due: Option<String> = row.try_get("handling_due")?;
            found.insert(
                row.try_get("case_id")?,
                CaseState {
                    division: row.try_get("division")?,
                    level: parse_level(&level)?,
                    handling_due: due.as_deref().map(parse_time).transpose()?,
                    version: to_u64(row.try_get("version")?),
                },
            );
        }
    }
    Ok(found)
}

/// Adds `counts` to the stored counters within the batch, in one
/// statement.
async fn write_counts(batch: &mut Batch, counts: &HashMap<Key, Counts>) -> Result<(), StoreError> {
    let table = batch.table("statistics");
    let columns: Vec<&str> = ["division", "level", "period"]
        .into_iter()
        .chain(COLUMNS.iter().copied())
        .collect();
    let add: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let tail = format!(
        "ON CONFLICT (division, level, period) DO UPDATE SET {}",
        add.join(", ")
    );
    let keyed: Vec<(&Key, &Counts, String)> = counts
        .iter()
        .map(|(key, c)| (key, c, key.2.to_string()))
        .collect();
    let rows: Vec<Vec<Cell<'_>>> = keyed
        .iter()
        .map(|((division, level, _), c, period)| {
            [
                Cell::Text(division),
                Cell::Text(level.as_str()),
                Cell::Text(period),
            ]
            .into_iter()
            .chain(c.values().into_iter().map(|v| Cell::Int(to_i64(v))))
            .collect()
        })
        .collect();
    batch
        .insert_rows("statistics", &columns, &rows, &tail)
        .await
}

/// Writes the states of the cases in `changed` within the batch, in one
/// statement.
async fn write_states(
    batch: &mut Batch,
    states: &HashMap<String, CaseState>,
    changed: &HashSet<String>,
) -> Result<(), StoreError> {
    let rows: Vec<Vec<Cell<'_>>> = changed
        .iter()
        .filter_map(|id| states.get(id).map(|s| (id, s)))
        .map(|(id, state)| {
            vec![
                Cell::Text(id),
                Cell::Text(&state.division),
                Cell::Text(state.level.as_str()),
                Cell::Time(state.handling_due),
                Cell::Int(to_i64(state.version)),
            ]
        })
        .collect();
    batch
        .insert_rows(
            "statistics_cases",
            &["case_id", "division", "level", "handling_due", "version"],
            &rows,
            "ON CONFLICT (case_id) DO UPDATE SET division = excluded.division, \
             level = excluded.level, handling_due = excluded.handling_due, \
             version = excluded.version",
        )
        .await
}

/// Small things the read models of this crate share: decoding dispute
/// events, and instants and ids as each backend stores them.
pub(crate) mod support {
    use chrono::{DateTime, SubsecRound, Utc};
    use cqrs_es::Aggregate;
    use mediation_domain::dispute::{Dispute, DisputeEvent};
    use mediation_domain::values::Level;
    use mediation_store::{RecordedEvent, StoreError};

    /// The dispute events among `events`, decoded, in log order.
    pub(crate) fn decode_disputes(
        events: &[RecordedEvent],
    ) -> Result<Vec<(&RecordedEvent, DisputeEvent)>, StoreError> {
        events
            .iter()
            .filter(|e| e.aggregate_type == Dispute::TYPE)
            .map(|e| {
                let event = e.decode().map_err(|err| {
                    StoreError::Corrupt(format!(
                        "event {} of dispute {} does not match this engine: {err}",
                        e.sequence, e.aggregate_id
                    ))
                })?;
                Ok((e, event))
            })
            .collect()
    }

    /// `at` to the millisecond: what both backends store, so that they hold
    /// the same rows.
    pub(crate) fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
        at.trunc_subsecs(3)
    }

    /// `at` as SQLite stores it (the store's one definition).
    pub(crate) use mediation_store::sqlite_time;

    /// An instant stored as text by [`sqlite_time`].
    pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| StoreError::Corrupt(format!("a stored instant is malformed: {text:?}")))
    }

    /// A stored level name.
    pub(crate) fn parse_level(text: &str) -> Result<Level, StoreError> {
        Level::parse(text)
            .map_err(|_| StoreError::Corrupt(format!("a stored level is unknown: {text:?}")))
    }

    /// Case ids as a JSON array, for `json_each` (SQLite has no arrays).
    pub(crate) fn ids_json(ids: &[String]) -> Result<String, StoreError> {
        serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(format!("case ids: {e}")))
    }

    pub(crate) fn to_i64(v: u64) -> i64 {
        i64::try_from(v).unwrap_or(i64::MAX)
    }

    pub(crate) fn to_u64(v: i64) -> u64 {
        u64::try_from(v).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_months_in_beijing_time() {
        // 16:30 UTC on the last day of March is 00:30 on 1 April in Beijing.
        let at: DateTime<Utc> = "2026-03-31T16:30:00Z".parse().unwrap();
        assert_eq!(Period::of(at).to_string(), "2026-04");
        let at: DateTime<Utc> = "2026-03-31T15:59:59Z".parse().unwrap();
        assert_eq!(Period::of(at).to_string(), "2026-03");
        let april = Period::parse("2026-04").unwrap();
        assert_eq!(
            april.start(),
            "2026-03-31T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            Period::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert!(Period::parse("2026-13").is_err());
        assert!(Period::parse("2026-4").is_err());
        assert!(Period::parse("26-04").is_err());
        assert!(Period::parse("2026-03").unwrap() < april);
    }

    #[test]
    fn rates_are_ratios_of_the_counts_and_none_when_nothing_was_counted() {
        let counts = Counts {
            registered: 3,
            received: 1,
            escalated_up: 1,
            agreements: 2,
            terminations: 1,
            closed: 4,
            closed_at_or_below_intake: 3,
            closed_on_time: 2,
            ..Counts::default()
        };
        let rates = counts.rates();
        assert_eq!(rates.lowest_level_resolution, Some(0.75));
        assert_eq!(rates.mediation_success, Some(2.0 / 3.0));
        assert_eq!(rates.on_time, Some(0.5));
        assert_eq!(rates.escalation, Some(0.25));
        assert_eq!(Counts::default().rates(), Rates::default());
    }

    #[test]
    fn the_counts_round_trip_through_their_columns() {
        let mut values = [0u64; 12];
        for (i, v) in values.iter_mut().enumerate() {
            *v = i as u64 + 1;
        }
        assert_eq!(Counts::from_values(values).values(), values);
        assert_eq!(COLUMNS.len(), values.len());
    }

    #[test]
    fn queries_group_by_the_keys_asked_for() {
        let sql = query_sql(Grouping::Level, true);
        assert!(sql.ends_with("GROUP BY level"), "{sql}");
        assert!(sql.contains("NULL::text AS division"), "{sql}");
        let total = query_sql(Grouping::Total, false);
        assert!(!total.contains("GROUP BY"), "{total}");
    }
}
