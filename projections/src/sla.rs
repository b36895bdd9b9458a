//! SLA clocks as a read model: one row per obligation a case's holder has
//! run (stage, start, due time, who owed it, warnings, breach, stop), kept
//! by the case projection in the same transaction as the case index.
//!
//! The clocks come from the aggregates themselves
//! ([`Dispute::running_clocks`], [`Petition::running_clocks`]): after each
//! event the projection compares the case's running clocks with those
//! before it. A clock that appears has started; one whose due time moved
//! was re-timed (an extension, a hearing); one that disappears has stopped,
//! met if it stopped by its due time and breached otherwise. Warnings and
//! breaches are what the case's history says (`DeadlineWarned`,
//! `DeadlineBreached`), so the read model never disagrees with it.
//!
//! A breach stays: once a clock is breached (recorded, or stopped late) it
//! counts as breached in every query whatever happens after — an
//! extension, a hearing, a re-time. Accountability (信访工作条例 Art 44–46)
//! asks who held a case when it went overdue, so the row keeps the due time
//! passed and the holder at that moment ([`ClockBreach`]) beside the new
//! due time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use mediation_domain::dispute::Dispute;
use mediation_domain::petition::Petition;
use mediation_domain::policy::Stage;
use mediation_domain::sla::{Holder, RunningClock};
use mediation_store::{Batch, Cell, RecordedEvent, Row, Sql, Store, StoreError};

use crate::statistics::{Period, day_text, local_day};

/// The table.
pub const TABLE: &str = "sla_clocks";

/// The clock outcomes kept per division, body and start day, which the
/// breach board sums ([`breaches_by_body`]).
pub const COUNTS_TABLE: &str = "sla_body_counts";

/// The clock outcomes the projection keeps per kind of case, division,
/// month, day and stage, which the statistics' on-time rate of each stage sums
/// ([`crate::statistics`]).
pub const STAGE_COUNTS_TABLE: &str = "sla_stage_counts";

/// Open clocks per kind of case, division and stage, and how many of them
/// have a breach recorded: what the board's cards and drill-downs sum
/// ([`open_counts`]).
pub const OPEN_COUNTS_TABLE: &str = "sla_open_counts";

/// Breached clocks per division, body and person holding the case when the
/// due time passed ([`breaches_by_holder`]).
pub const HOLDER_COUNTS_TABLE: &str = "sla_breach_holders";

/// Running clocks not yet breached per kind of case, division, stage and
/// UTC day of their due time: what the board's "due soon" sums over whole
/// days ([`open_counts`]).
pub const DUE_COUNTS_TABLE: &str = "sla_due_counts";

/// A case whose obligations run on clocks.
pub trait Clocked {
    /// The clocks running on the case now.
    fn clocks(&self) -> Vec<RunningClock>;
}

impl Clocked for Dispute {
    fn clocks(&self) -> Vec<RunningClock> {
        self.running_clocks()
    }
}

impl Clocked for Petition {
    fn clocks(&self) -> Vec<RunningClock> {
        self.running_clocks()
    }
}

/// What one event did to a case's clocks.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockChange {
    /// A clock started, or was re-timed: write it as running.
    Running(RunningClock),
    /// A clock stopped at this instant.
    Stopped {
        /// Its stage.
        stage: Stage,
        /// When it started (with the stage, the row's key).
        started_at: DateTime<Utc>,
        /// When it stopped.
        at: DateTime<Utc>,
    },
    /// The case recorded a warning or a breach for a clock.
    Marked {
        /// Its stage.
        stage: Stage,
        /// The due time the mark is for.
        due: DateTime<Utc>,
        /// 50, 75, or 100 for the breach.
        threshold_percent: u8,
        /// When it was recorded.
        at: DateTime<Utc>,
        /// Who owed the stage then, as the event names it.
        holder: Option<Holder>,
    },
    /// A clock re-timed by a recount of its provisional deadline
    /// (`DeadlinesRecomputed`): the new due time and flag, with the
    /// warnings and breach it had kept, since the case carries them over.
    Recomputed(RunningClock),
}

/// The changes of a `DeadlinesRecomputed` event: its re-timed clocks keep
/// their marks (see [`ClockChange::Recomputed`]).
pub fn recomputed(event: &RecordedEvent, changes: Vec<ClockChange>) -> Vec<ClockChange> {
    if event.event_type != "DeadlinesRecomputed" {
        return changes;
    }
    changes
        .into_iter()
        .map(|change| match change {
            ClockChange::Running(clock) => ClockChange::Recomputed(clock),
            other => other,
        })
        .collect()
}

/// The changes between the clocks `before` and `after` an event at `at`.
pub fn diff(
    before: &[RunningClock],
    after: &[RunningClock],
    at: DateTime<Utc>,
) -> Vec<ClockChange> {
    let mut changes = Vec::new();
    for clock in before {
        if !after
            .iter()
            .any(|c| c.stage == clock.stage && c.started_at == clock.started_at)
        {
            changes.push(ClockChange::Stopped {
                stage: clock.stage,
                started_at: clock.started_at,
                at,
            });
        }
    }
    for clock in after {
        let same = before
            .iter()
            .find(|c| c.stage == clock.stage && c.started_at == clock.started_at);
        if same != Some(clock) {
            changes.push(ClockChange::Running(clock.clone()));
        }
    }
    changes
}

/// The warning or breach an event records, read from its stored JSON.
pub fn mark(event: &RecordedEvent) -> Option<ClockChange> {
    let threshold = match event.event_type.as_str() {
        "DeadlineWarned" => None,
        "DeadlineBreached" => Some(100),
        _ => return None,
    };
    let body = event.payload.get("change")?.get(&event.event_type)?;
    let stage: Stage = serde_json::from_value(body.get("stage")?.clone()).ok()?;
    let due: DateTime<Utc> = serde_json::from_value(body.get("due")?.clone()).ok()?;
    let threshold_percent = match threshold {
        Some(t) => t,
        None => u8::try_from(body.get("threshold_percent")?.as_u64()?).ok()?,
    };
    let holder = body
        .get("holder")
        .and_then(|h| serde_json::from_value(h.clone()).ok());
    Some(ClockChange::Marked {
        stage,
        due,
        threshold_percent,
        at: event_time(event),
        holder,
    })
}

/// When an event happened, as the case's history says (`at`); the store's
/// recording time if the payload has none.
pub fn event_time(event: &RecordedEvent) -> DateTime<Utc> {
    event
        .payload
        .get("at")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or(event.recorded_at)
}

/// The clock rows of the cases a rebuild touched last, kept between its
/// batches (see `mediation_store::Batch::take_carried`), least recently
/// touched out first.
pub(crate) struct Carried {
    cases: lru::LruCache<(String, String), Vec<(ClockKey, StoredClock)>>,
}

impl Carried {
    /// Keeps the clocks of at most `cases` cases.
    pub(crate) fn new(cases: usize) -> Self {
        Self {
            cases: lru::LruCache::new(
                std::num::NonZeroUsize::new(cases).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
        }
    }
}

/// One row of the clocks table, as [`write_all`] folds changes into it.
#[derive(Debug, Clone, PartialEq)]
struct StoredClock {
    due_at: DateTime<Utc>,
    paused_seconds: i64,
    warn_50_at: DateTime<Utc>,
    warn_75_at: DateTime<Utc>,
    provisional: bool,
    division: Option<String>,
    level: Option<String>,
    body: Option<String>,
    person: Option<String>,
    status: ClockStatus,
    warned_50_at: Option<DateTime<Utc>>,
    warned_75_at: Option<DateTime<Utc>>,
    breached_at: Option<DateTime<Utc>>,
    stopped_at: Option<DateTime<Utc>>,
    breach: Option<ClockBreach>,
}

/// Where a clock stands, as the read model stores it (the `status` column
/// holds [`ClockStatus::as_str`]). The order is the order a running clock
/// moves in; a stopped clock is met or breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockStatus {
    /// Running, no threshold reached yet.
    Running,
    /// Running, half of the period gone.
    Warned50,
    /// Running, three quarters of the period gone.
    Warned75,
    /// The due time passed, running or stopped late: it stays breached.
    Breached,
    /// Stopped in time.
    Met,
}

impl ClockStatus {
    /// Every status, in the order a clock moves through them.
    pub const ALL: [Self; 5] = [
        Self::Running,
        Self::Warned50,
        Self::Warned75,
        Self::Breached,
        Self::Met,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Warned50 => "warned_50",
            Self::Warned75 => "warned_75",
            Self::Breached => "breached",
            Self::Met => "met",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// A stored name read back, or [`StoreError::Corrupt`] for one no
    /// version of the engine writes.
    fn stored(stored: String) -> Result<Self, StoreError> {
        Self::parse(&stored)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown clock status {stored:?}")))
    }

    /// How far along a running clock is: a mark never moves it back.
    fn rank(self) -> u8 {
        match self {
            Self::Running => 0,
            Self::Warned50 => 1,
            Self::Warned75 => 2,
            Self::Breached | Self::Met => 3,
        }
    }
}

impl std::fmt::Display for ClockStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A clock's breach as the read model keeps it: the due time that passed
/// and who held the case at that moment. It stays with the clock whatever
/// re-times it later (Art 44–46: who held the case when it went overdue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockBreach {
    /// The due time that passed; the clock's `due_at` may since have moved.
    pub due_at: DateTime<Utc>,
    /// The division holding the case then.
    pub division: Option<String>,
    /// The level holding the case then.
    pub level: Option<String>,
    /// The body that owed the step then, if one was named.
    pub body: Option<String>,
    /// The person in charge then, if one was named.
    pub person: Option<String>,
}

impl ClockBreach {
    /// The breach of the due time `due_at`, by `holder` as the case's
    /// history names it, or else by the row's holder.
    fn of(due_at: DateTime<Utc>, holder: Option<&Holder>, row: &StoredClock) -> Self {
        match holder {
            Some(h) => Self {
                due_at,
                division: h.division.as_ref().map(|d| d.as_str().to_owned()),
                level: h.level.map(|l| l.as_str().to_owned()),
                body: h.body.clone(),
                person: h.person.clone(),
            },
            None => Self {
                due_at,
                division: row.division.clone(),
                level: row.level.clone(),
                body: row.body.clone(),
                person: row.person.clone(),
            },
        }
    }

    /// The breach stored in a row's breach columns: one exactly when the
    /// breached due time is set.
    fn stored(
        due_at: Option<DateTime<Utc>>,
        division: Option<String>,
        level: Option<String>,
        body: Option<String>,
        person: Option<String>,
    ) -> Option<Self> {
        due_at.map(|due_at| Self {
            due_at,
            division,
            level,
            body,
            person,
        })
    }
}

/// One text column of a row's breach, `None` without a breach.
fn breach_text(row: &StoredClock, field: impl Fn(&ClockBreach) -> &Option<String>) -> Option<&str> {
    row.breach.as_ref().and_then(|b| field(b).as_deref())
}

/// A clock row's key: the case, and the stage with its start (a stage may
/// run more than once in a case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ClockKey {
    aggregate_type: String,
    case_id: String,
    stage: String,
    started_at: DateTime<Utc>,
}

/// How the database keeps instants, so that keys and due times in memory
/// compare as the stored rows do: PostgreSQL keeps microseconds; SQLite
/// keeps the text sqlx writes, to the nanosecond.
#[derive(Debug, Clone, Copy)]
enum Precision {
    Micros,
    Exact,
}

impl Precision {
    fn stored(self, t: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::SubsecRound as _;
        match self {
            Self::Micros => t.trunc_subsecs(6),
            Self::Exact => t,
        }
    }
}

/// Applies one change to the rows of its case. A clock that starts is
/// written as running; one re-timed (a new due time) runs again, its
/// warnings cleared, since they were for the earlier due time; one
/// restated with the same due time keeps its status and marks. A breached
/// clock re-timed stays breached, with its marks and its [`ClockBreach`]
/// (Art 44–46). A stop is late (breached) if it comes after the due time or
/// the clock was breached already. A mark never steps a clock's status
/// back.
fn fold_change(
    precision: Precision,
    rows: &mut BTreeMap<ClockKey, StoredClock>,
    touched: &mut BTreeSet<ClockKey>,
    aggregate_type: &str,
    case_id: &str,
    change: &ClockChange,
) {
    let key = |stage: Stage, started_at: DateTime<Utc>| ClockKey {
        aggregate_type: aggregate_type.to_owned(),
        case_id: case_id.to_owned(),
        stage: stage.as_str().to_owned(),
        started_at: precision.stored(started_at),
    };
    match change {
        ClockChange::Recomputed(clock) => {
            let key = key(clock.stage, clock.started_at);
            let Some(old) = rows.get_mut(&key) else {
                // Not seen start: write it as any clock that starts.
                fold_change(
                    precision,
                    rows,
                    touched,
                    aggregate_type,
                    case_id,
                    &ClockChange::Running(clock.clone()),
                );
                return;
            };
            // The same obligation, counted again: only the times move. Its
            // status, warnings and breach stay as recorded, as the case
            // keeps them for the new due time.
            old.due_at = precision.stored(clock.deadline.due);
            old.warn_50_at = precision.stored(clock.reached_at(50));
            old.warn_75_at = precision.stored(clock.reached_at(75));
            old.provisional = clock.deadline.provisional;
            touched.insert(key);
        }
        ClockChange::Running(clock) => {
            let key = key(clock.stage, clock.started_at);
            let holder = &clock.holder;
            let due_at = precision.stored(clock.deadline.due);
            let fresh = StoredClock {
                due_at,
                paused_seconds: clock.paused.num_seconds(),
                warn_50_at: precision.stored(clock.reached_at(50)),
                warn_75_at: precision.stored(clock.reached_at(75)),
                provisional: clock.deadline.provisional,
                division: holder.division.as_ref().map(|d| d.as_str().to_owned()),
                level: holder.level.map(|l| l.as_str().to_owned()),
                body: holder.body.clone(),
                person: holder.person.clone(),
                status: ClockStatus::Running,
                warned_50_at: None,
                warned_75_at: None,
                breached_at: None,
                stopped_at: None,
                breach: None,
            };
            let row = match rows.get(&key) {
                // Re-timed or restated: marks stand only for the same due
                // time, except a breach, which no later due time undoes.
                Some(old) if old.due_at == due_at || old.status == ClockStatus::Breached => {
                    StoredClock {
                        status: old.status,
                        warned_50_at: old.warned_50_at,
                        warned_75_at: old.warned_75_at,
                        breached_at: old.breached_at,
                        stopped_at: old.stopped_at,
                        breach: old.breach.clone(),
                        ..fresh
                    }
                }
                Some(old) => StoredClock {
                    stopped_at: old.stopped_at,
                    ..fresh
                },
                None => fresh,
            };
            rows.insert(key.clone(), row);
            touched.insert(key);
        }
        ClockChange::Stopped {
            stage,
            started_at,
            at,
        } => {
            let key = key(*stage, *started_at);
            if let Some(row) = rows.get_mut(&key)
                && row.stopped_at.is_none()
            {
                let at = precision.stored(*at);
                row.stopped_at = Some(at);
                if row.status == ClockStatus::Breached || at > row.due_at {
                    // Stopped late with no breach recorded (no timer ran in
                    // time): the due time passed and its holder are the
                    // row's own.
                    if row.breach.is_none() {
                        row.breach = Some(ClockBreach::of(row.due_at, None, row));
                    }
                    row.status = ClockStatus::Breached;
                } else {
                    row.status = ClockStatus::Met;
                }
                touched.insert(key);
            }
        }
        ClockChange::Marked {
            stage,
            due,
            threshold_percent,
            at,
            holder,
        } => {
            let (stage, due, at) = (
                stage.as_str().to_owned(),
                precision.stored(*due),
                precision.stored(*at),
            );
            let status = match threshold_percent {
                50 => ClockStatus::Warned50,
                75 => ClockStatus::Warned75,
                _ => ClockStatus::Breached,
            };
            // The case's clocks of this stage, found by their keys' prefix
            // rather than by a walk over every clock of the batch (which
            // made a batch's cost grow with its square).
            let first = ClockKey {
                aggregate_type: aggregate_type.to_owned(),
                case_id: case_id.to_owned(),
                stage,
                started_at: DateTime::<Utc>::MIN_UTC,
            };
            let last = ClockKey {
                started_at: DateTime::<Utc>::MAX_UTC,
                ..first.clone()
            };
            for (key, row) in rows.range_mut(first..=last) {
                if row.due_at != due || row.stopped_at.is_some() {
                    continue;
                }
                match threshold_percent {
                    50 => row.warned_50_at = Some(at),
                    75 => row.warned_75_at = Some(at),
                    // The first breach is the one that stays.
                    _ if row.breach.is_none() => {
                        row.breached_at = Some(at);
                        row.breach = Some(ClockBreach::of(due, holder.as_ref(), row));
                    }
                    _ => {}
                }
                if row.status.rank() < status.rank() {
                    row.status = status;
                }
                touched.insert(key.clone());
            }
        }
    }
}

const STORED_COLUMNS: &str = "aggregate_type, case_id, stage, started_at, due_at, paused_seconds, \
    warn_50_at, warn_75_at, provisional, division, level, body, person, status, warned_50_at, \
    warned_75_at, breached_at, stopped_at, breached_due_at, breach_division, breach_level, \
    breach_body, breach_person";

/// Reads a stored clock row (columns as [`STORED_COLUMNS`]).
fn stored_clock(r: &Row) -> Result<(ClockKey, StoredClock), StoreError> {
    Ok((
        ClockKey {
            aggregate_type: r.get(0)?,
            case_id: r.get(1)?,
            stage: r.get(2)?,
            started_at: r.time(3)?,
        },
        StoredClock {
            due_at: r.time(4)?,
            paused_seconds: r.get(5)?,
            warn_50_at: r.time(6)?,
            warn_75_at: r.time(7)?,
            provisional: r.get(8)?,
            division: r.get(9)?,
            level: r.get(10)?,
            body: r.get(11)?,
            person: r.get(12)?,
            status: ClockStatus::stored(r.get(13)?)?,
            warned_50_at: r.optional_time(14)?,
            warned_75_at: r.optional_time(15)?,
            breached_at: r.optional_time(16)?,
            stopped_at: r.optional_time(17)?,
            breach: ClockBreach::stored(
                r.optional_time(18)?,
                r.get(19)?,
                r.get(20)?,
                r.get(21)?,
                r.get(22)?,
            ),
        },
    ))
}

/// One case's clock changes in a batch, for [`write_all`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaseClocks<'a> {
    /// `Dispute` or `Petition`.
    pub(crate) aggregate_type: &'a str,
    /// The case.
    pub(crate) case_id: &'a str,
    /// What the batch's events did to its clocks, in order.
    pub(crate) changes: &'a [ClockChange],
    /// Whether the case began before the batch; if not, none of its
    /// clocks is stored yet.
    pub(crate) begun_before: bool,
}

/// Writes the clock changes of many cases, each case's in order, within
/// `batch`: the cases' clocks are read, the changes folded into them in
/// memory ([`fold_change`]), and the rows that changed written back. On
/// both backends that is a read and a write whatever the batch holds (a
/// round trip per change made most of a rebuild's time), besides the kept
/// counts.
pub(crate) async fn write_all(
    batch: &mut Batch,
    cases: &[CaseClocks<'_>],
    mut carried: Option<&mut Carried>,
) -> Result<(), StoreError> {
    let table = batch.table(TABLE);
    let cases: Vec<_> = cases.iter().filter(|c| !c.changes.is_empty()).collect();
    if cases.is_empty() {
        return Ok(());
    }
    let mut rows: BTreeMap<ClockKey, StoredClock> = BTreeMap::new();
    // A case that begins in this batch has no clock stored yet; in a
    // rebuild, the clocks of the cases the last batches touched are at
    // hand. Only the others are read.
    let mut unknown: Vec<_> = cases.iter().filter(|c| c.begun_before).copied().collect();
    if let Some(carried) = carried.as_deref_mut() {
        unknown.retain(|c| {
            match carried
                .cases
                .pop(&(c.aggregate_type.to_owned(), c.case_id.to_owned()))
            {
                Some(clocks) => {
                    rows.extend(clocks);
                    false
                }
                None => true,
            }
        });
    }
    let precision = batch.dialect().pick(Precision::Micros, Precision::Exact);
    if !unknown.is_empty() {
        // The clocks of the cases' ids among the cases' types: the few rows
        // of another type that share an id are left out here.
        let mut types: Vec<String> = unknown
            .iter()
            .map(|c| c.aggregate_type.to_owned())
            .collect();
        types.sort_unstable();
        types.dedup();
        let ids: Vec<String> = unknown.iter().map(|c| c.case_id.to_owned()).collect();
        let wanted: HashSet<(&str, &str)> = unknown
            .iter()
            .map(|c| (c.aggregate_type, c.case_id))
            .collect();
        let dialect = batch.dialect();
        let sql = Sql::new(format!(
            "SELECT {STORED_COLUMNS} FROM {table} WHERE {} AND {}",
            dialect.any("case_id", 1),
            dialect.any("aggregate_type", 2)
        ))
        .bind(ids.as_slice())
        .bind(types.as_slice());
        for r in batch.fetch_all(&sql).await? {
            let (key, row) = stored_clock(&r)?;
            if wanted.contains(&(key.aggregate_type.as_str(), key.case_id.as_str())) {
                rows.insert(key, row);
            }
        }
    }
    let before = rows.clone();
    let mut touched = BTreeSet::new();
    for case in &cases {
        for change in case.changes {
            fold_change(
                precision,
                &mut rows,
                &mut touched,
                case.aggregate_type,
                case.case_id,
                change,
            );
        }
    }
    if let Some(carried) = carried {
        // Every case of the batch, those with no clock too.
        let mut by_case: HashMap<(String, String), Vec<(ClockKey, StoredClock)>> = cases
            .iter()
            .map(|c| {
                (
                    (c.aggregate_type.to_owned(), c.case_id.to_owned()),
                    Vec::new(),
                )
            })
            .collect();
        for (key, row) in &rows {
            if let Some(clocks) =
                by_case.get_mut(&(key.aggregate_type.clone(), key.case_id.clone()))
            {
                clocks.push((key.clone(), row.clone()));
            }
        }
        for (case, clocks) in by_case {
            carried.cases.put(case, clocks);
        }
    }
    let written: Vec<(&ClockKey, &StoredClock)> = touched
        .iter()
        .filter_map(|key| rows.get(key).map(|row| (key, row)))
        .collect();
    if written.is_empty() {
        return Ok(());
    }
    // Each touched clock as it was and as it is, looked up once for all
    // the kept tables.
    let changed: Vec<Change<'_>> = touched
        .iter()
        .map(|key| (key, before.get(key), rows.get(key)))
        .collect();
    for kept in KEPT {
        write_kept(batch, kept, &changed).await?;
    }
    let conflict = "ON CONFLICT (aggregate_type, case_id, stage, started_at) DO UPDATE SET \
             due_at = excluded.due_at, paused_seconds = excluded.paused_seconds, \
             warn_50_at = excluded.warn_50_at, warn_75_at = excluded.warn_75_at, \
             provisional = excluded.provisional, division = excluded.division, \
             level = excluded.level, body = excluded.body, person = excluded.person, \
             status = excluded.status, warned_50_at = excluded.warned_50_at, \
             warned_75_at = excluded.warned_75_at, breached_at = excluded.breached_at, \
             stopped_at = excluded.stopped_at, breached_due_at = excluded.breached_due_at, \
             breach_division = excluded.breach_division, breach_level = excluded.breach_level, \
             breach_body = excluded.breach_body, breach_person = excluded.breach_person";
    if let Some(connection) = batch.postgres() {
        macro_rules! column {
            ($f:expr) => {
                written.iter().map($f).collect::<Vec<_>>()
            };
        }
        sqlx::query(&format!(
            "INSERT INTO {table} ({STORED_COLUMNS}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
             $5::timestamptz[], $6::bigint[], $7::timestamptz[], $8::timestamptz[], \
             $9::boolean[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
             $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], \
             $19::timestamptz[], $20::text[], $21::text[], $22::text[], $23::text[]) {conflict}"
        ))
        .bind(column!(|(k, _)| k.aggregate_type.as_str()))
        .bind(column!(|(k, _)| k.case_id.as_str()))
        .bind(column!(|(k, _)| k.stage.as_str()))
        .bind(column!(|(k, _)| k.started_at))
        .bind(column!(|(_, r)| r.due_at))
        .bind(column!(|(_, r)| r.paused_seconds))
        .bind(column!(|(_, r)| r.warn_50_at))
        .bind(column!(|(_, r)| r.warn_75_at))
        .bind(column!(|(_, r)| r.provisional))
        .bind(column!(|(_, r)| r.division.as_deref()))
        .bind(column!(|(_, r)| r.level.as_deref()))
        .bind(column!(|(_, r)| r.body.as_deref()))
        .bind(column!(|(_, r)| r.person.as_deref()))
        .bind(column!(|(_, r)| r.status.as_str()))
        .bind(column!(|(_, r)| r.warned_50_at))
        .bind(column!(|(_, r)| r.warned_75_at))
        .bind(column!(|(_, r)| r.breached_at))
        .bind(column!(|(_, r)| r.stopped_at))
        .bind(column!(|(_, r)| r.breach.as_ref().map(|b| b.due_at)))
        .bind(column!(|(_, r)| breach_text(r, |b| &b.division)))
        .bind(column!(|(_, r)| breach_text(r, |b| &b.level)))
        .bind(column!(|(_, r)| breach_text(r, |b| &b.body)))
        .bind(column!(|(_, r)| breach_text(r, |b| &b.person)))
        .execute(&mut *connection)
        .await?;
    } else {
        // SQLite: the rows in one multi-row VALUES statement per 30,000
        // values, the clocks' instants at full precision as they are read.
        let cells: Vec<Vec<Cell<'_>>> = written
            .iter()
            .map(|(k, r)| {
                vec![
                    Cell::Text(&k.aggregate_type),
                    Cell::Text(&k.case_id),
                    Cell::Text(&k.stage),
                    Cell::Instant(Some(k.started_at)),
                    Cell::Instant(Some(r.due_at)),
                    Cell::Int(r.paused_seconds),
                    Cell::Instant(Some(r.warn_50_at)),
                    Cell::Instant(Some(r.warn_75_at)),
                    Cell::Bool(r.provisional),
                    Cell::OptionalText(r.division.as_deref()),
                    Cell::OptionalText(r.level.as_deref()),
                    Cell::OptionalText(r.body.as_deref()),
                    Cell::OptionalText(r.person.as_deref()),
                    Cell::Text(r.status.as_str()),
                    Cell::Instant(r.warned_50_at),
                    Cell::Instant(r.warned_75_at),
                    Cell::Instant(r.breached_at),
                    Cell::Instant(r.stopped_at),
                    Cell::Instant(r.breach.as_ref().map(|b| b.due_at)),
                    Cell::OptionalText(breach_text(r, |b| &b.division)),
                    Cell::OptionalText(breach_text(r, |b| &b.level)),
                    Cell::OptionalText(breach_text(r, |b| &b.body)),
                    Cell::OptionalText(breach_text(r, |b| &b.person)),
                ]
            })
            .collect();
        let columns: Vec<&str> = STORED_COLUMNS.split(',').map(str::trim).collect();
        batch.insert_rows(TABLE, &columns, &cells, conflict).await?;
    }
    Ok(())
}

/// A clock whose next threshold has come: what the timer watcher records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case.
    pub case_id: String,
    /// The clock's stage.
    pub stage: Stage,
    /// The clock's due time.
    pub due: DateTime<Utc>,
    /// 50 or 75 for a warning, 100 for the breach: the highest threshold
    /// reached by `now`. Lower ones not yet recorded are passed over, since a
    /// warning after the deadline has passed helps nobody.
    pub threshold_percent: u8,
}

/// A table of counts the case projection keeps beside the clocks, moved by
/// what each batch changed: each touched clock leaves the row (and count
/// column) it was in and joins the one it is in now, so that the boards
/// sum a few rows instead of counting clocks.
struct Kept {
    table: &'static str,
    /// The key columns, in the table's primary key order.
    keys: &'static [&'static str],
    /// The count columns.
    counts: &'static [&'static str],
    /// Where a clock row counts: its key values and the index of its count
    /// column, or nowhere.
    slot: fn(&ClockKey, &StoredClock) -> Option<Slot>,
}

/// Where a clock counts in a [`Kept`] table: the row's key values and the
/// index of the count column.
type Slot = (Vec<String>, usize);

/// Every kept count, written by each batch of clock changes.
const KEPT: &[Kept] = &[
    Kept {
        table: COUNTS_TABLE,
        keys: &["division", "day", "body"],
        counts: &["breached", "met", "running"],
        slot: body_count,
    },
    Kept {
        table: STAGE_COUNTS_TABLE,
        keys: &["aggregate_type", "division", "month", "day", "stage"],
        counts: &["met", "breached"],
        slot: stage_count,
    },
    Kept {
        table: OPEN_COUNTS_TABLE,
        keys: &["aggregate_type", "division", "stage"],
        counts: &["running", "breached"],
        slot: open_count,
    },
    Kept {
        table: HOLDER_COUNTS_TABLE,
        keys: &["division", "body", "person"],
        counts: &["breached"],
        slot: holder_count,
    },
    Kept {
        table: DUE_COUNTS_TABLE,
        keys: &["aggregate_type", "division", "stage", "due_day"],
        counts: &["running"],
        slot: due_count,
    },
];

/// The UTC day `at` falls on, as [`DUE_COUNTS_TABLE`] keeps it.
fn due_day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// [`DUE_COUNTS_TABLE`]: a running clock whose breach is not recorded, on
/// the UTC day it is due.
fn due_count(key: &ClockKey, row: &StoredClock) -> Option<Slot> {
    if row.stopped_at.is_some() || row.breached_at.is_some() {
        return None;
    }
    let keys = vec![
        key.aggregate_type.clone(),
        row.division.clone().unwrap_or_default(),
        key.stage.clone(),
        due_day(row.due_at),
    ];
    Some((keys, 0))
}

/// [`COUNTS_TABLE`]: per division, body and UTC start day, breached, met
/// or running, or none once the clock stopped otherwise.
fn body_count(key: &ClockKey, row: &StoredClock) -> Option<Slot> {
    let slot = match row.status {
        ClockStatus::Breached => 0,
        ClockStatus::Met => 1,
        _ if row.stopped_at.is_none() => 2,
        _ => return None,
    };
    let keys = vec![
        row.division.clone().unwrap_or_default(),
        key.started_at.format("%Y-%m-%d").to_string(),
        row.body.clone().unwrap_or_default(),
    ];
    Some((keys, slot))
}

/// [`STAGE_COUNTS_TABLE`]: met in the month and day it stopped, at the
/// division holding it; breached in the month and day its breached due
/// time passed, at the division holding it then; elsewhere not at all.
fn stage_count(key: &ClockKey, row: &StoredClock) -> Option<Slot> {
    let (division, at, slot) = match row.status {
        ClockStatus::Met => (row.division.clone(), row.stopped_at?, 0),
        ClockStatus::Breached => {
            let breach = row.breach.as_ref();
            (
                breach
                    .and_then(|b| b.division.clone())
                    .or_else(|| row.division.clone()),
                breach.map_or(row.due_at, |b| b.due_at),
                1,
            )
        }
        _ => return None,
    };
    let keys = vec![
        key.aggregate_type.clone(),
        division.unwrap_or_default(),
        Period::of(at).to_string(),
        day_text(local_day(at)),
        key.stage.clone(),
    ];
    Some((keys, slot))
}

/// [`OPEN_COUNTS_TABLE`]: an open clock at the division holding it, in
/// `breached` once its breach is recorded, in `running` until then.
fn open_count(key: &ClockKey, row: &StoredClock) -> Option<Slot> {
    if row.stopped_at.is_some() {
        return None;
    }
    let keys = vec![
        key.aggregate_type.clone(),
        row.division.clone().unwrap_or_default(),
        key.stage.clone(),
    ];
    Some((keys, usize::from(row.status == ClockStatus::Breached)))
}

/// [`HOLDER_COUNTS_TABLE`]: a breached clock, open or stopped late, at
/// whoever held the case when its due time passed.
fn holder_count(_key: &ClockKey, row: &StoredClock) -> Option<Slot> {
    if row.status != ClockStatus::Breached {
        return None;
    }
    let held = |field: fn(&ClockBreach) -> &Option<String>, own: &Option<String>| {
        row.breach
            .as_ref()
            .and_then(|b| field(b).clone())
            .or_else(|| own.clone())
            .unwrap_or_default()
    };
    let keys = vec![
        held(|b| &b.division, &row.division),
        held(|b| &b.body, &row.body),
        held(|b| &b.person, &row.person),
    ];
    Some((keys, 0))
}

/// A clock a batch touched: its key, and its row before and after the
/// batch (none: not stored).
type Change<'a> = (
    &'a ClockKey,
    Option<&'a StoredClock>,
    Option<&'a StoredClock>,
);

/// Moves `kept`'s counts by what the batch changed, one multi-row upsert.
async fn write_kept(
    batch: &mut Batch,
    kept: &Kept,
    changed: &[Change<'_>],
) -> Result<(), StoreError> {
    let mut deltas: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
    for &(key, before, after) in changed {
        for (row, sign) in [(before, -1), (after, 1)] {
            if let Some((keys, slot)) = row.and_then(|row| (kept.slot)(key, row)) {
                deltas
                    .entry(keys)
                    .or_insert_with(|| vec![0; kept.counts.len()])[slot] += sign;
            }
        }
    }
    deltas.retain(|_, d| d.iter().any(|n| *n != 0));
    if deltas.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Cell<'_>>> = deltas
        .iter()
        .map(|(keys, counts)| {
            keys.iter()
                .map(|k| Cell::Text(k))
                .chain(counts.iter().map(|n| Cell::Int(*n)))
                .collect()
        })
        .collect();
    let table = batch.table(kept.table);
    let columns: Vec<&str> = kept.keys.iter().chain(kept.counts).copied().collect();
    let sums: Vec<String> = kept
        .counts
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    batch
        .insert_rows(
            kept.table,
            &columns,
            &rows,
            &format!(
                "ON CONFLICT ({}) DO UPDATE SET {}",
                kept.keys.join(", "),
                sums.join(", ")
            ),
        )
        .await?;
    // A row whose counts all came back to zero goes: a rebuild, which
    // sees the clock start and stop within one batch, never writes it.
    // Only a row some count of which went down can have come back to zero.
    let lowered: Vec<&Vec<String>> = deltas
        .iter()
        .filter(|(_, d)| d.iter().any(|n| *n < 0))
        .map(|(keys, _)| keys)
        .collect();
    if lowered.is_empty() {
        return Ok(());
    }
    let mut prune = Sql::new("");
    let tuples: Vec<String> = lowered
        .into_iter()
        .map(|keys| {
            let at: Vec<String> = keys
                .iter()
                .map(|k| format!("${}", prune.push(k.as_str())))
                .collect();
            format!("({})", at.join(", "))
        })
        .collect();
    let zero: Vec<String> = kept.counts.iter().map(|c| format!("{c} = 0")).collect();
    prune.push_text(&format!(
        "DELETE FROM {table} WHERE {} AND ({}) IN (VALUES {})",
        zero.join(" AND "),
        kept.keys.join(", "),
        tuples.join(", ")
    ));
    batch.execute(&prune).await?;
    Ok(())
}

/// Running clocks whose highest threshold reached by `now` is not yet
/// recorded, earliest due first. A clock already breached is not picked up
/// again, even once re-timed: its breach stays recorded, and a warning or a
/// second breach for the new due time would only repeat it.
pub async fn due_timers(
    store: &Store,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DueTimer>, StoreError> {
    // The three cases are exclusive: only the highest threshold reached is
    // looked at, so a clock is not picked up for a warning it skipped.
    let condition = |n: &str| {
        format!(
            "stopped_at IS NULL AND breached_at IS NULL AND ( \
               (due_at <= {n} AND breached_at IS NULL) \
            OR (due_at > {n} AND warn_75_at <= {n} AND warned_75_at IS NULL) \
            OR (warn_75_at > {n} AND warn_50_at <= {n} AND warned_50_at IS NULL))"
        )
    };
    let sql = Sql::new(format!(
        "SELECT aggregate_type, case_id, stage, due_at, warn_50_at, warn_75_at \
         FROM {TABLE} WHERE {} ORDER BY due_at LIMIT $2",
        condition("$1")
    ))
    .bind(Cell::Instant(Some(now)))
    .bind(i64::from(limit));
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| timer_row(r.get(0)?, r.get(1)?, r.get(2)?, r.time(3)?, r.time(5)?, now))
        .collect()
}

fn timer_row(
    aggregate_type: String,
    case_id: String,
    stage: String,
    due: DateTime<Utc>,
    warn_75_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DueTimer, StoreError> {
    let stage = Stage::parse(&stage)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown stage {stage:?} in {TABLE}")))?;
    let threshold_percent = if due <= now {
        100
    } else if warn_75_at <= now {
        75
    } else {
        50
    };
    Ok(DueTimer {
        aggregate_type,
        case_id,
        stage,
        due,
        threshold_percent,
    })
}

/// One clock as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockRow {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case.
    pub case_id: String,
    /// The stage timed, by its stored name (`village_handling`, …).
    pub stage: String,
    /// When the obligation began.
    pub started_at: DateTime<Utc>,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Legally excluded time inside the period, in seconds.
    pub paused_seconds: i64,
    /// Whether the due time was counted over a year with no holiday file.
    pub provisional: bool,
    /// The division holding the case for this stage.
    pub division: Option<String>,
    /// The level holding the case.
    pub level: Option<String>,
    /// The body that owes the step, if one is named.
    pub body: Option<String>,
    /// The person in charge, if one is named.
    pub person: Option<String>,
    /// Where the clock stands.
    pub status: ClockStatus,
    /// When the 50% warning was recorded.
    pub warned_50_at: Option<DateTime<Utc>>,
    /// When the 75% warning was recorded.
    pub warned_75_at: Option<DateTime<Utc>>,
    /// When the breach was recorded.
    pub breached_at: Option<DateTime<Utc>>,
    /// When the clock stopped; `None` while it runs.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The breach, once the clock is breached: the due time passed and who
    /// held the case then, kept whatever re-timed the clock after.
    pub breach: Option<ClockBreach>,
}

/// Which clocks [`clocks`] returns, ordered by due time; every field set
/// must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockQuery {
    /// Only clocks of cases held by a division in this range of codes.
    pub division: Option<(String, String)>,
    /// A second range that must match too: the caller's scope.
    pub scope: Option<(String, String)>,
    /// Only running clocks due at or before this instant: overdue as of it.
    pub overdue_at: Option<DateTime<Utc>>,
    /// Only running clocks due in this window (from, to]: "due within N days".
    pub due_between: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only clocks owed by this body.
    pub body: Option<String>,
    /// Only clocks in this status.
    pub status: Option<ClockStatus>,
    /// Only clocks of this stage, by its stored name.
    pub stage: Option<String>,
    /// Only clocks after this one in the order (due time, case, stage,
    /// start): the last row of the previous page.
    pub after: Option<(DateTime<Utc>, String, String, DateTime<Utc>)>,
    /// The most rows to return.
    pub limit: u32,
    /// Only clocks whose due time is (`true`) or is not (`false`)
    /// provisional: counted over a year with no holiday schedule loaded.
    pub provisional: Option<bool>,
}

const CLOCK_COLUMNS: &str = "aggregate_type, case_id, stage, started_at, due_at, paused_seconds, \
    provisional, division, level, body, person, status, warned_50_at, warned_75_at, breached_at, \
    stopped_at, breached_due_at, breach_division, breach_level, breach_body, breach_person";

/// Reads a clock row (columns as [`CLOCK_COLUMNS`]).
fn clock_row(r: &Row) -> Result<ClockRow, StoreError> {
    Ok(ClockRow {
        aggregate_type: r.get(0)?,
        case_id: r.get(1)?,
        stage: r.get(2)?,
        started_at: r.time(3)?,
        due_at: r.time(4)?,
        paused_seconds: r.get(5)?,
        provisional: r.get(6)?,
        division: r.get(7)?,
        level: r.get(8)?,
        body: r.get(9)?,
        person: r.get(10)?,
        status: ClockStatus::stored(r.get(11)?)?,
        warned_50_at: r.optional_time(12)?,
        warned_75_at: r.optional_time(13)?,
        breached_at: r.optional_time(14)?,
        stopped_at: r.optional_time(15)?,
        breach: ClockBreach::stored(
            r.optional_time(16)?,
            r.get(17)?,
            r.get(18)?,
            r.get(19)?,
            r.get(20)?,
        ),
    })
}

/// Clocks matching `query`, earliest due first.
pub async fn clocks(store: &Store, query: &ClockQuery) -> Result<Vec<ClockRow>, StoreError> {
    // Only the conditions the query has go into the statement, so that the
    // planner sees each one (a `$n IS NULL OR …` would hide the running
    // clocks' index from a generic plan, and a million clocks get sorted).
    let mut sql = Sql::new(format!("SELECT {CLOCK_COLUMNS} FROM {TABLE}")).transient();
    let mut conditions: Vec<String> = Vec::new();
    let instant = |t: DateTime<Utc>| Cell::Instant(Some(t));
    for (lo, hi) in [&query.division, &query.scope].into_iter().flatten() {
        let (lo, hi) = (sql.push(lo), sql.push(hi));
        conditions.push(format!("division BETWEEN ${lo} AND ${hi}"));
    }
    if let Some(at) = query.overdue_at {
        let at = sql.push(instant(at));
        conditions.push(format!("stopped_at IS NULL AND due_at <= ${at}"));
    }
    if let Some((from, to)) = query.due_between {
        let (from, to) = (sql.push(instant(from)), sql.push(instant(to)));
        conditions.push(format!(
            "stopped_at IS NULL AND due_at > ${from} AND due_at <= ${to}"
        ));
    }
    if let Some(body) = &query.body {
        conditions.push(format!("body = ${}", sql.push(body)));
    }
    if let Some(status) = query.status {
        conditions.push(format!("status = ${}", sql.push(status.as_str())));
    }
    if let Some(stage) = &query.stage {
        conditions.push(format!("stage = ${}", sql.push(stage)));
    }
    match query.provisional {
        // A flag, not a value: no argument, and the partial index of
        // running provisional clocks matches the condition as written.
        Some(true) => conditions.push("provisional".to_owned()),
        Some(false) => conditions.push("NOT provisional".to_owned()),
        None => {}
    }
    if let Some((due, case, stage, start)) = &query.after {
        let (due, case) = (sql.push(instant(*due)), sql.push(case));
        let (stage, start) = (sql.push(stage), sql.push(instant(*start)));
        conditions.push(format!(
            "(due_at, case_id, stage, started_at) > (${due}, ${case}, ${stage}, ${start})"
        ));
    }
    if !conditions.is_empty() {
        sql.push_text(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    let limit = sql.push(i64::from(query.limit));
    sql.push_text(&format!(
        " ORDER BY due_at, case_id, stage, started_at LIMIT ${limit}"
    ));
    store.fetch_all(&sql).await?.iter().map(clock_row).collect()
}

/// A running clock whose due time is provisional, as the engine pages
/// through them when a year's holiday schedule has been loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionalClock {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The case.
    pub case_id: String,
    /// The stage, by its stored name.
    pub stage: String,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// Its provisional due time.
    pub due_at: DateTime<Utc>,
}

impl ProvisionalClock {
    /// The position after this clock, for the next page.
    pub fn key(&self) -> (DateTime<Utc>, String, String, DateTime<Utc>) {
        (
            self.due_at,
            self.case_id.clone(),
            self.stage.clone(),
            self.started_at,
        )
    }
}

/// Running clocks with a provisional due time in `(from, to]`, earliest due
/// first, after the position `after` (the previous page's last
/// [`ProvisionalClock::key`]), at most `limit`. Read through the partial
/// index of running provisional clocks (migration 0011), so the cost
/// follows the provisional clocks, not all clocks.
pub async fn provisional_clocks(
    store: &Store,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    after: Option<&(DateTime<Utc>, String, String, DateTime<Utc>)>,
    limit: u32,
) -> Result<Vec<ProvisionalClock>, StoreError> {
    let instant = |t: DateTime<Utc>| Cell::Instant(Some(t));
    let mut sql = Sql::new(format!(
        "SELECT aggregate_type, case_id, stage, started_at, due_at FROM {TABLE} \
         WHERE provisional AND stopped_at IS NULL AND due_at > $1 AND due_at <= $2"
    ))
    .bind(instant(from))
    .bind(instant(to));
    if let Some((due, case, stage, start)) = after {
        let (due, case) = (sql.push(instant(*due)), sql.push(case));
        let (stage, start) = (sql.push(stage), sql.push(instant(*start)));
        sql.push_text(&format!(
            " AND (due_at, case_id, stage, started_at) > (${due}, ${case}, ${stage}, ${start})"
        ));
    }
    let limit = sql.push(i64::from(limit));
    sql.push_text(&format!(
        " ORDER BY due_at, case_id, stage, started_at LIMIT ${limit}"
    ));
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(ProvisionalClock {
                aggregate_type: r.get(0)?,
                case_id: r.get(1)?,
                stage: r.get(2)?,
                started_at: r.time(3)?,
                due_at: r.time(4)?,
            })
        })
        .collect()
}

/// Breaches per body: clocks breached (recorded in the case's history, or
/// stopped late) and clocks running, in a division range since an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyBreaches {
    /// The body that owed the steps (`None`: no body named, e.g. a level's
    /// handling period).
    pub body: Option<String>,
    /// Clocks breached.
    pub breached: i64,
    /// Clocks met.
    pub met: i64,
    /// Clocks still running.
    pub running: i64,
}

/// [`BodyBreaches`] for clocks started at or after `since`, in `scope`
/// (a range of division codes), most breaches first.
///
/// Served from the kept counts: whole days after `since`'s (UTC) day are
/// summed from [`COUNTS_TABLE`], and only the clocks of that first, partial
/// day are counted one by one, so the cost follows the days and bodies
/// asked for, not the number of clocks.
pub async fn breaches_by_body(
    store: &Store,
    scope: Option<(String, String)>,
    since: DateTime<Utc>,
) -> Result<Vec<BodyBreaches>, StoreError> {
    let (lo, hi) = scope.unzip();
    let first_day = since.format("%Y-%m-%d").to_string();
    let next_day = since
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(since, |d| d.and_utc());
    let sql = Sql::new(format!(
        "SELECT body, CAST(sum(breached) AS BIGINT), CAST(sum(met) AS BIGINT), \
         CAST(sum(running) AS BIGINT) FROM ( \
           SELECT nullif(body, '') AS body, breached, met, running FROM {COUNTS_TABLE} \
           WHERE day > $3 AND (CAST($4 AS TEXT) IS NULL OR division BETWEEN $4 AND $5) \
           UNION ALL \
           SELECT nullif(body, '') AS body, \
             CASE WHEN status = 'breached' THEN 1 ELSE 0 END, \
             CASE WHEN status = 'met' THEN 1 ELSE 0 END, \
             CASE WHEN stopped_at IS NULL AND status <> 'breached' THEN 1 ELSE 0 END \
           FROM {TABLE} WHERE started_at >= $1 AND started_at < $2 \
           AND (CAST($4 AS TEXT) IS NULL OR division BETWEEN $4 AND $5) \
         ) AS outcomes GROUP BY body \
         HAVING sum(breached) + sum(met) + sum(running) > 0 ORDER BY 2 DESC, body"
    ))
    .bind(Cell::Instant(Some(since)))
    .bind(Cell::Instant(Some(next_day)))
    .bind(&first_day)
    .bind(lo.as_deref())
    .bind(hi.as_deref());
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(BodyBreaches {
                body: r.get(0)?,
                breached: r.get::<Option<i64>>(1)?.unwrap_or(0),
                met: r.get::<Option<i64>>(2)?.unwrap_or(0),
                running: r.get::<Option<i64>>(3)?.unwrap_or(0),
            })
        })
        .collect()
}

/// Open clocks of one kind of case, division and stage, as the board's
/// cards and drill-downs sum them ([`open_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    /// `Dispute` or `Petition`.
    pub aggregate_type: String,
    /// The division holding the cases (`None`: none named).
    pub division: Option<String>,
    /// The stage timed, by its stored name.
    pub stage: String,
    /// Clocks open (not stopped).
    pub open: i64,
    /// Of those, the overdue ones: a breach recorded, or past due and not
    /// yet reached by the deadline timers.
    pub overdue: i64,
    /// Of those not overdue, the ones due within the window asked for.
    pub due_soon: i64,
}

/// [`OpenCount`]s of the divisions in `division` (a range of codes), and
/// in `scope` too when given; `due_soon` counts running clocks due in
/// (`now`, `soon`].
///
/// The open and breached counts are the kept ones ([`OPEN_COUNTS_TABLE`]),
/// and so are the clocks due on the whole days within the window
/// ([`DUE_COUNTS_TABLE`]); only the clocks past due that the timers have
/// not marked yet (a sweep's worth) and those due on the window's two
/// partial days are counted one by one, through a partial index of
/// running clocks by due time, so the cost follows the answer, not the
/// number of clocks.
pub async fn open_counts(
    store: &Store,
    division: (String, String),
    scope: Option<(String, String)>,
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
) -> Result<Vec<OpenCount>, StoreError> {
    let (lo, hi) = scope.unzip();
    // Clocks due soon: the whole UTC days strictly inside (now, soon] are
    // summed from the kept counts, and only the clocks of the two partial
    // days at its ends are counted one by one.
    let midnight = |day: chrono::NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
    let whole_from = now
        .date_naive()
        .succ_opt()
        .map_or(DateTime::<Utc>::MAX_UTC, midnight);
    let whole_to = midnight(soon.date_naive()).max(whole_from);
    let (first_day, last_day) = (due_day(whole_from), due_day(whole_to));
    let sql = Sql::new(format!(
        "SELECT aggregate_type, division, stage, CAST(sum(open) AS BIGINT), \
           CAST(sum(overdue) AS BIGINT), CAST(sum(soon) AS BIGINT) FROM ( \
           SELECT aggregate_type, division, stage, running + breached AS open, \
             breached AS overdue, 0 AS soon \
           FROM {OPEN_COUNTS_TABLE} WHERE division BETWEEN $1 AND $2 \
           AND (CAST($5 AS TEXT) IS NULL OR division BETWEEN $5 AND $6) \
           UNION ALL \
           SELECT aggregate_type, coalesce(division, ''), stage, 0, 1, 0 FROM {TABLE} \
           WHERE stopped_at IS NULL AND breached_at IS NULL AND due_at <= $3 \
           AND division BETWEEN $1 AND $2 \
           AND (CAST($5 AS TEXT) IS NULL OR division BETWEEN $5 AND $6) \
           UNION ALL \
           SELECT aggregate_type, division, stage, 0, 0, running FROM {DUE_COUNTS_TABLE} \
           WHERE due_day >= $7 AND due_day < $8 AND division BETWEEN $1 AND $2 \
           AND (CAST($5 AS TEXT) IS NULL OR division BETWEEN $5 AND $6) \
           UNION ALL \
           SELECT aggregate_type, coalesce(division, ''), stage, 0, 0, 1 FROM {TABLE} \
           WHERE stopped_at IS NULL AND breached_at IS NULL AND due_at > $3 AND due_at <= $4 \
           AND (due_at < $9 OR due_at >= $10) \
           AND division BETWEEN $1 AND $2 \
           AND (CAST($5 AS TEXT) IS NULL OR division BETWEEN $5 AND $6) \
         ) AS counted GROUP BY aggregate_type, division, stage \
         HAVING sum(open) <> 0 OR sum(overdue) <> 0 OR sum(soon) <> 0 \
         ORDER BY aggregate_type, division, stage"
    ))
    .bind(&division.0)
    .bind(&division.1)
    .bind(Cell::Instant(Some(now)))
    .bind(Cell::Instant(Some(soon)))
    .bind(lo.as_deref())
    .bind(hi.as_deref())
    .bind(first_day.as_str())
    .bind(last_day.as_str())
    .bind(Cell::Instant(Some(whole_from)))
    .bind(Cell::Instant(Some(whole_to)));
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            let division: String = r.get(1)?;
            Ok(OpenCount {
                aggregate_type: r.get(0)?,
                division: (!division.is_empty()).then_some(division),
                stage: r.get(2)?,
                open: r.get::<Option<i64>>(3)?.unwrap_or(0),
                overdue: r.get::<Option<i64>>(4)?.unwrap_or(0),
                due_soon: r.get::<Option<i64>>(5)?.unwrap_or(0),
            })
        })
        .collect()
}

/// Breaches per body and person holding the case when the due time passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderBreaches {
    /// The body then (`None`: none named).
    pub body: Option<String>,
    /// The person in charge then (`None`: none named).
    pub person: Option<String>,
    /// Clocks breached, open or stopped late.
    pub breached: i64,
}

/// [`HolderBreaches`] of the cases held by a division in `division` (a
/// range of codes) when they went overdue, most first, from the kept
/// counts ([`HOLDER_COUNTS_TABLE`]).
pub async fn breaches_by_holder(
    store: &Store,
    division: (String, String),
    scope: Option<(String, String)>,
) -> Result<Vec<HolderBreaches>, StoreError> {
    let (lo, hi) = scope.unzip();
    let sql = Sql::new(format!(
        "SELECT nullif(body, ''), nullif(person, ''), CAST(sum(breached) AS BIGINT) \
         FROM {HOLDER_COUNTS_TABLE} WHERE division BETWEEN $1 AND $2 \
         AND (CAST($3 AS TEXT) IS NULL OR division BETWEEN $3 AND $4) \
         GROUP BY body, person HAVING sum(breached) > 0 \
         ORDER BY 3 DESC, body, person"
    ))
    .bind(&division.0)
    .bind(&division.1)
    .bind(lo.as_deref())
    .bind(hi.as_deref());
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(HolderBreaches {
                body: r.get(0)?,
                person: r.get(1)?,
                breached: r.get::<Option<i64>>(2)?.unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use mediation_domain::policy::Deadline;
    use mediation_domain::values::{DivisionCode, Level};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn holder(body: &str) -> Holder {
        Holder {
            division: Some(DivisionCode::parse("990101001000").unwrap()),
            level: Some(Level::Town),
            body: Some(body.to_owned()),
            person: None,
            official: None,
        }
    }

    fn opinion_clock(due: &str, body: &str) -> RunningClock {
        let due = at(due);
        RunningClock {
            stage: Stage::PetitionOpinion,
            deadline: Deadline {
                stage: Stage::PetitionOpinion,
                due,
                last_day: due.date_naive(),
                provisional: false,
            },
            started_at: at("2026-03-01T16:00:00Z"),
            paused: Duration::zero(),
            holder: holder(body),
        }
    }

    fn fold(changes: &[ClockChange]) -> StoredClock {
        let mut rows = BTreeMap::new();
        let mut touched = BTreeSet::new();
        for change in changes {
            fold_change(
                Precision::Exact,
                &mut rows,
                &mut touched,
                "Petition",
                "p1",
                change,
            );
        }
        rows.into_values().next().unwrap()
    }

    #[test]
    fn a_breach_stays_with_its_due_time_and_holder_when_the_clock_is_re_timed() {
        let first_due = "2026-04-30T16:00:00Z";
        let breach = ClockChange::Marked {
            stage: Stage::PetitionOpinion,
            due: at(first_due),
            threshold_percent: 100,
            at: at("2026-05-01T00:00:00Z"),
            holder: Some(holder("Land Office")),
        };
        // Re-timed after the breach, and by then owed by another body.
        let row = fold(&[
            ClockChange::Running(opinion_clock(first_due, "Land Office")),
            breach,
            ClockChange::Running(opinion_clock("2026-05-30T16:00:00Z", "Land Bureau")),
        ]);
        assert_eq!(row.status, ClockStatus::Breached);
        assert_eq!(row.due_at, at("2026-05-30T16:00:00Z"));
        assert_eq!(row.body.as_deref(), Some("Land Bureau"));
        assert_eq!(row.breached_at, Some(at("2026-05-01T00:00:00Z")));
        let kept = row.breach.unwrap();
        assert_eq!(kept.due_at, at(first_due));
        assert_eq!(kept.body.as_deref(), Some("Land Office"));
        assert_eq!(kept.level.as_deref(), Some("town"));
    }

    #[test]
    fn a_late_stop_without_a_recorded_breach_keeps_the_due_time_it_missed() {
        let due = "2026-04-30T16:00:00Z";
        let row = fold(&[
            ClockChange::Running(opinion_clock(due, "Land Office")),
            ClockChange::Stopped {
                stage: Stage::PetitionOpinion,
                started_at: at("2026-03-01T16:00:00Z"),
                at: at("2026-05-02T00:00:00Z"),
            },
        ]);
        assert_eq!(row.status, ClockStatus::Breached);
        assert_eq!(row.breached_at, None);
        let kept = row.breach.unwrap();
        assert_eq!(kept.due_at, at(due));
        assert_eq!(kept.body.as_deref(), Some("Land Office"));
    }

    #[test]
    fn a_clock_re_timed_before_any_breach_runs_again() {
        let row = fold(&[
            ClockChange::Running(opinion_clock("2026-04-30T16:00:00Z", "Land Office")),
            ClockChange::Marked {
                stage: Stage::PetitionOpinion,
                due: at("2026-04-30T16:00:00Z"),
                threshold_percent: 75,
                at: at("2026-04-15T00:00:00Z"),
                holder: None,
            },
            ClockChange::Running(opinion_clock("2026-05-30T16:00:00Z", "Land Office")),
        ]);
        assert_eq!(row.status, ClockStatus::Running);
        assert_eq!(row.warned_75_at, None);
        assert_eq!(row.breach, None);
    }

    #[test]
    fn a_clock_recounted_once_its_year_is_loaded_keeps_its_warnings_and_breach() {
        let guessed = "2027-01-01T16:00:00Z";
        let mut provisional = opinion_clock(guessed, "Land Office");
        provisional.deadline.provisional = true;
        let mark = |threshold_percent, at_: &str| ClockChange::Marked {
            stage: Stage::PetitionOpinion,
            due: at(guessed),
            threshold_percent,
            at: at(at_),
            holder: None,
        };
        let recounted = opinion_clock("2027-01-05T16:00:00Z", "Land Office");
        let row = fold(&[
            ClockChange::Running(provisional.clone()),
            mark(75, "2026-12-20T00:00:00Z"),
            ClockChange::Recomputed(recounted.clone()),
        ]);
        // The warning stands (the case carries it to the new due time), so
        // the watcher does not send it again.
        assert_eq!(row.status, ClockStatus::Warned75);
        assert_eq!(row.warned_75_at, Some(at("2026-12-20T00:00:00Z")));
        assert_eq!(row.due_at, at("2027-01-05T16:00:00Z"));
        assert_eq!(row.warn_75_at, recounted.reached_at(75));
        assert!(!row.provisional);
        // And a breach stays a breach, with the due time it passed.
        let row = fold(&[
            ClockChange::Running(provisional),
            mark(100, "2027-01-02T00:00:00Z"),
            ClockChange::Recomputed(recounted),
        ]);
        assert_eq!(row.status, ClockStatus::Breached);
        assert_eq!(row.breach.map(|b| b.due_at), Some(at(guessed)));
        assert_eq!(row.due_at, at("2027-01-05T16:00:00Z"));
    }
}
