//! Escalation and resolution statistics: what supervisors measure
//! (DOMAIN.md, "What supervisors measure"), as event counts per division,
//! level and month, kept from the global log by the [runner](crate::runner).
//!
//! # Which event counts where
//!
//! Every counter is bumped by one dispute event, in the month of the
//! event's `at` in +08:00 ([`Period::of`]), except the follow-up counters,
//! which count at the agreement they follow up. Each row is kept per day
//! too, the day (+08:00, [`local_day`]) the events it counts happened, a
//! follow-up's own day included, so that a query can sum only what had
//! happened by the end of a past day (`as_of`). Petitions are counted
//! apart, by [`crate::petition_statistics`].
//!
//! | counter | event | division and level it counts at |
//! |---|---|---|
//! | `registered` | `DisputeRegistered` | the registering division (the intake level) |
//! | `moved_in` | `DisputeEscalated`, `DisputeTakenOver`, `DisputeSentDown` | the division it moved **to** |
//! | `reopened` | `DisputeReopened` | the division that reopened it |
//! | `escalated_up` | `DisputeEscalated` | the division it **left** |
//! | `taken_over` | `DisputeTakenOver` | the division it **left** (taken from it by one above) |
//! | `sent_down` | `DisputeSentDown` | the division it **left** (sent to one below) |
//! | `agreements` | `AgreementReached` | the division holding the case |
//! | `terminations` | `MediationTerminated` (any reason, withdrawals included) and `MediationRefused` | the division holding the case |
//! | `mediations_moved` | `DisputeEscalated`, `DisputeTakenOver` while a mediation is under way (dispatched, not yet ended) | the division it **left** |
//! | `referred` | `DisputeReferred` | the division holding the case |
//! | `closed` | `DisputeClosed` | its `resolved_division` and `resolved_level` |
//! | `closed_at_or_below_intake` | `DisputeClosed` with `resolved_at_or_below_intake` | as `closed` |
//! | `closed_on_time` | `DisputeClosed` whose `at` is before the handling deadline in force (the `handling_due` of the latest registration, move or reopening) | as `closed` |
//! | `agreed_at_or_below_origin` | `DisputeClosed` with outcome `agreement` at a level no higher than where the dispute arose: the division of its `DisputeReported`, or of its `DisputeRegistered` if it was never reported | as `closed` |
//! | `agreements_followed_up` | the first `PerformanceFollowedUp` of an agreement | the division, level and **month of the agreement** |
//! | `agreements_performed` | the first `PerformanceFollowedUp` of an agreement finding it `performed` | as `agreements_followed_up` |
//! | `evaluations`, `satisfied`, `basically_satisfied` | `DisputeEvaluated` (all; 满意; 基本满意) | the division holding the case (the one that closed it) |
//!
//! A reopened case that is closed again counts as a second closure (and
//! may be evaluated again), and each mediation that ends (a case may be
//! mediated again after a court refuses to confirm its agreement) counts
//! once. A new dispatch, a move or a referral sets an agreement aside, as
//! the aggregate does; follow-ups then count for the next agreement.
//!
//! # Rates
//!
//! Rates are ratios of sums over the rows asked for, never averages of
//! per-row rates, and `None` when the denominator is zero:
//!
//! - lowest-level resolution: `agreed_at_or_below_origin ÷ closed`: the
//!   closures settled by agreement (not referred to a legal channel, not
//!   terminated) no higher than the level where the dispute arose ("小事不出
//!   村、一般事不出镇"), of all closures;
//! - mediation success: `agreements ÷ (agreements + terminations +
//!   mediations_moved)`, the mediations concluded, so refusals, withdrawals
//!   (People's Mediation Law Art 23) and mediations that ended because the
//!   case went up weigh against it;
//! - on time: `closed_on_time ÷ closed`;
//! - escalation: `escalated_up ÷ (registered + moved_in + reopened)`, the
//!   cases the level escalated among those it took in. Take-overs are not
//!   escalations (the level above acted, not this one) and are reported
//!   apart as `taken_over`;
//! - agreement performance: `agreements_performed ÷ agreements`, over the
//!   agreements reached in the months asked for, however late their
//!   follow-up came;
//! - satisfaction: `(satisfied + basically_satisfied) ÷ evaluations`.
//!
//! The on-time rate of each SLA stage comes from the SLA clocks
//! ([`dispute_stage_outcomes`]), which know when each obligation stopped and
//! whether it was late.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use cqrs_es::Aggregate;
use mediation_domain::dispute::{
    Dispute, DisputeChange, DisputeEvent, Outcome, Performance, Satisfaction,
};
use mediation_domain::policy::Stage;
use mediation_domain::values::{DivisionCode, InvalidValue, Level};
use mediation_store::{
    Batch, Cell, RecordedEvent, Row, Sql, Store, StoreError, cases_begun_before,
};

use crate::runner::Projection;
use support::{parse_level, to_i64, to_u64};

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
        // A case that begins in this batch has no state to read back.
        let ids = cases_begun_before(mine.iter().map(|(e, _)| *e));
        let mut states = load_states(batch, &ids).await?;
        let mut counts: HashMap<Key, Counts> = HashMap::new();
        let mut changed: HashSet<String> = HashSet::new();
        for (recorded, event) in mine {
            let id = &recorded.aggregate_id;
            // The checkpoint keeps a batch from being applied twice (and so
            // a case that begins in it from having a state already); the
            // case's version keeps an event read back from being counted
            // twice.
            if states
                .get(id)
                .is_some_and(|s| recorded.sequence <= s.version)
            {
                continue;
            }
            count(&mut counts, &mut states, id, event);
            if let Some(state) = states.get_mut(id) {
                // The events read from one stored row are counted as one
                // unit: the version moves past the row with its last.
                if recorded.ends_row() {
                    state.version = recorded.sequence;
                }
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

/// The calendar day `at` falls on in +08:00: the day statistics rows are
/// kept by beside their month, so that they can be summed as of the end of
/// any day.
pub fn local_day(at: DateTime<Utc>) -> NaiveDate {
    let utc = at.naive_utc();
    utc.checked_add_signed(TimeDelta::hours(PERIOD_OFFSET_HOURS))
        .unwrap_or(utc)
        .date()
}

/// A day as the statistics tables store it, `YYYY-MM-DD`, which sorts in
/// time order.
pub(crate) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The `as_of` bound of a query as stored text: the day itself, or past
/// every stored day when there is none.
fn as_of_text(as_of: Option<NaiveDate>) -> String {
    as_of.map_or_else(|| "9999-12-31".to_owned(), day_text)
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
    /// Disputes moved in here from another division: escalated up to it,
    /// taken over by it, or sent down to it. (Stored and served as
    /// `received` until it was named for what it counts.)
    pub moved_in: u64,
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
    /// Mediations here (dispatched, not yet ended) that ended because the
    /// case was escalated or taken over: they weigh against the success
    /// rate as a termination does.
    pub mediations_moved: u64,
    /// Disputes referred from here to a legal channel.
    pub referred: u64,
    /// Disputes closed here.
    pub closed: u64,
    /// Of those, closed at or below their intake level, whatever the
    /// outcome.
    pub closed_at_or_below_intake: u64,
    /// Of those, closed before the handling deadline in force.
    pub closed_on_time: u64,
    /// Of those, closed with an agreement at or below the level where the
    /// dispute arose (the division it was reported in, or registered at if
    /// it was never reported): the numerator of lowest-level resolution.
    pub agreed_at_or_below_origin: u64,
    /// Agreements reached here (in this row's month) that a follow-up
    /// visit has since checked, counted once each.
    pub agreements_followed_up: u64,
    /// Agreements reached here (in this row's month) that a follow-up
    /// visit has since found fully performed, counted once each.
    pub agreements_performed: u64,
    /// Evaluations of disputes closed here.
    pub evaluations: u64,
    /// Of those, satisfied (满意).
    pub satisfied: u64,
    /// Of those, basically satisfied (基本满意).
    pub basically_satisfied: u64,
}

/// The stored counter columns, in the order of [`Counts::values`].
const COLUMNS: [&str; WIDTH] = [
    "registered",
    "moved_in",
    "reopened",
    "escalated_up",
    "taken_over",
    "sent_down",
    "agreements",
    "terminations",
    "mediations_moved",
    "referred",
    "closed",
    "closed_at_or_below_intake",
    "closed_on_time",
    "agreed_at_or_below_origin",
    "agreements_followed_up",
    "agreements_performed",
    "evaluations",
    "satisfied",
    "basically_satisfied",
];

/// How many counters a row has.
const WIDTH: usize = 19;

impl Counts {
    /// Mediations concluded: agreements, terminations (refusals and
    /// withdrawals included) and mediations ended by escalation or
    /// take-over; the denominator of the success rate.
    pub fn mediations_concluded(&self) -> u64 {
        self.agreements
            .saturating_add(self.terminations)
            .saturating_add(self.mediations_moved)
    }

    /// The cases the level took in: registered, moved in from another
    /// level, or reopened; the denominator of the escalation rate.
    pub fn taken_in(&self) -> u64 {
        self.registered
            .saturating_add(self.moved_in)
            .saturating_add(self.reopened)
    }

    /// Evaluations that found the parties satisfied or basically
    /// satisfied: the numerator of the satisfaction rate.
    pub fn satisfied_or_basically(&self) -> u64 {
        self.satisfied.saturating_add(self.basically_satisfied)
    }

    /// The rates DOMAIN.md defines, from these counts.
    pub fn rates(&self) -> Rates {
        Rates {
            lowest_level_resolution: ratio(self.agreed_at_or_below_origin, self.closed),
            mediation_success: ratio(self.agreements, self.mediations_concluded()),
            on_time: ratio(self.closed_on_time, self.closed),
            escalation: ratio(self.escalated_up, self.taken_in()),
            agreement_performance: ratio(self.agreements_performed, self.agreements),
            satisfaction: ratio(self.satisfied_or_basically(), self.evaluations),
        }
    }

    fn values(&self) -> [u64; WIDTH] {
        [
            self.registered,
            self.moved_in,
            self.reopened,
            self.escalated_up,
            self.taken_over,
            self.sent_down,
            self.agreements,
            self.terminations,
            self.mediations_moved,
            self.referred,
            self.closed,
            self.closed_at_or_below_intake,
            self.closed_on_time,
            self.agreed_at_or_below_origin,
            self.agreements_followed_up,
            self.agreements_performed,
            self.evaluations,
            self.satisfied,
            self.basically_satisfied,
        ]
    }

    fn from_values(v: [u64; WIDTH]) -> Self {
        let [
            registered,
            moved_in,
            reopened,
            escalated_up,
            taken_over,
            sent_down,
            agreements,
            terminations,
            mediations_moved,
            referred,
            closed,
            closed_at_or_below_intake,
            closed_on_time,
            agreed_at_or_below_origin,
            agreements_followed_up,
            agreements_performed,
            evaluations,
            satisfied,
            basically_satisfied,
        ] = v;
        Self {
            registered,
            moved_in,
            reopened,
            escalated_up,
            taken_over,
            sent_down,
            agreements,
            terminations,
            mediations_moved,
            referred,
            closed,
            closed_at_or_below_intake,
            closed_on_time,
            agreed_at_or_below_origin,
            agreements_followed_up,
            agreements_performed,
            evaluations,
            satisfied,
            basically_satisfied,
        }
    }
}

impl std::ops::Add for Counts {
    type Output = Self;

    /// The counts of two rows together (of two subtrees, say).
    fn add(self, other: Self) -> Self {
        let (a, b) = (self.values(), other.values());
        Self::from_values(std::array::from_fn(|i| a[i].saturating_add(b[i])))
    }
}

pub(crate) fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The rates supervisors measure, as fractions (0.83, not 83); `None`
/// where nothing was counted in the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Resolved at the lowest level: closed with an agreement at or below
    /// the level where the dispute arose ÷ closed.
    pub lowest_level_resolution: Option<f64>,
    /// Mediation success: agreements ÷ mediations concluded.
    pub mediation_success: Option<f64>,
    /// Closed on time ÷ closed.
    pub on_time: Option<f64>,
    /// Escalated up ÷ taken in (registered + moved in + reopened).
    pub escalation: Option<f64>,
    /// Agreement performance: agreements found fully performed at a
    /// follow-up ÷ agreements reached.
    pub agreement_performance: Option<f64>,
    /// Satisfaction: evaluations satisfied or basically satisfied ÷
    /// evaluations.
    pub satisfaction: Option<f64>,
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
/// then level up the ladder, then month. With `as_of`, only what had
/// happened by the end of that day (+08:00) counts: the figures as they
/// stood then, late-recorded events included.
pub async fn query(
    store: &Store,
    subtree: &DivisionCode,
    from: Period,
    to: Period,
    as_of: Option<NaiveDate>,
    grouping: Grouping,
) -> Result<Vec<StatsRow>, StoreError> {
    let rows = sum_rows(
        store,
        "statistics",
        &COLUMNS,
        subtree,
        (from, to, as_of),
        grouping,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let counts = Counts::from_values(row.values);
            StatsRow {
                division: row.division,
                level: row.level,
                period: row.period,
                counts,
                rates: counts.rates(),
            }
        })
        .collect())
}

/// One row of counters summed over a group, as [`sum_rows`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summed<const N: usize> {
    pub(crate) division: Option<DivisionCode>,
    pub(crate) level: Option<Level>,
    pub(crate) period: Option<Period>,
    pub(crate) values: [u64; N],
}

/// Sums the counter `columns` of `table` (keyed by division, level,
/// period and day, as the statistics tables of this crate are) over the
/// divisions in `subtree` and the months `from` to `to` (counting only the
/// days up to `as_of`, when given), grouped as asked; ordered by division,
/// then level up the ladder, then month.
pub(crate) async fn sum_rows<const N: usize>(
    store: &Store,
    table: &str,
    columns: &[&str; N],
    subtree: &DivisionCode,
    (from, to, as_of): (Period, Period, Option<NaiveDate>),
    grouping: Grouping,
) -> Result<Vec<Summed<N>>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let (from, to, as_of) = (from.to_string(), to.to_string(), as_of_text(as_of));
    let sql = Sql::new(query_sql(table, columns, grouping))
        .bind(&low)
        .bind(&high)
        .bind(&from)
        .bind(&to)
        .bind(&as_of);
    let mut rows = store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(decode_row)
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Levels sort as text in SQL; the ladder's order is the one readers
    // expect.
    rows.sort_by(|a, b| (&a.division, a.level, a.period).cmp(&(&b.division, b.level, b.period)));
    Ok(rows)
}

fn query_sql(table: &str, columns: &[&str], grouping: Grouping) -> String {
    let (division, level, period) = match grouping {
        Grouping::DivisionLevelPeriod => (true, true, true),
        Grouping::LevelPeriod => (false, true, true),
        Grouping::Level => (false, true, false),
        Grouping::Total => (false, false, false),
    };
    let key = |on: bool, column: &'static str| if on { column } else { "CAST(NULL AS TEXT)" };
    let keys: Vec<&str> = [(division, "division"), (level, "level"), (period, "period")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
    // PostgreSQL sums bigints as numeric; cast back so both backends
    // return 64-bit integers.
    let sums: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
        .collect();
    let filter = "division BETWEEN $1 AND $2 AND period BETWEEN $3 AND $4 AND day <= $5";
    let mut sql = format!(
        "SELECT {} AS division, {} AS level, {} AS period, {} FROM {table} WHERE {filter}",
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

fn decode_row<const N: usize>(row: &Row) -> Result<Summed<N>, StoreError> {
    let (division, level, period): (Option<String>, Option<String>, Option<String>) =
        (row.get(0)?, row.get(1)?, row.get(2)?);
    let mut values = [0u64; N];
    for (i, value) in values.iter_mut().enumerate() {
        *value = row.count(i + 3)?;
    }
    Ok(Summed {
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
        values,
    })
}

/// How the SLA clocks of one stage came out: met by their due time, or
/// breached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageOutcome {
    /// The stage.
    pub stage: Stage,
    /// Clocks that stopped by their due time.
    pub met: u64,
    /// Clocks whose due time passed (a breach stays, whatever re-timed the
    /// clock later).
    pub breached: u64,
}

impl StageOutcome {
    /// The stage's stored name, as SLA clocks name it (`village_handling`,
    /// `petition_opinion`).
    pub fn stage_name(&self) -> String {
        self.stage.as_str().to_owned()
    }

    /// `met ÷ (met + breached)`; `None` when no clock came out.
    pub fn on_time(&self) -> Option<f64> {
        ratio(self.met, self.met.saturating_add(self.breached))
    }
}

/// The outcomes of the disputes' SLA clocks per stage; see
/// [`stage_outcomes`].
pub async fn dispute_stage_outcomes(
    store: &Store,
    subtree: &DivisionCode,
    from: Period,
    to: Period,
    as_of: Option<NaiveDate>,
) -> Result<Vec<StageOutcome>, StoreError> {
    stage_outcomes(store, Dispute::TYPE, subtree, (from, to, as_of)).await
}

/// The outcomes of the SLA clocks of cases of `aggregate_type` (the case
/// projection's [`crate::sla`] clocks), per stage, over the divisions in
/// `subtree` and the months `from` to `to`: a met clock in the month it
/// stopped, at the division then holding it; a breached one in the month its
/// due time passed, at the division holding it then. A clock still running
/// past its due time counts once its breach is recorded or it stops. With
/// `as_of`, only the clocks met or breached by the end of that day
/// (+08:00). In stage order.
///
/// Summed from the counts the case projection keeps per division, month,
/// day and stage ([`crate::sla::STAGE_COUNTS_TABLE`]), so its cost follows
/// the divisions and months asked for, not the number of clocks.
pub(crate) async fn stage_outcomes(
    store: &Store,
    aggregate_type: &str,
    subtree: &DivisionCode,
    (from, to, as_of): (Period, Period, Option<NaiveDate>),
) -> Result<Vec<StageOutcome>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let (from, to, as_of) = (from.to_string(), to.to_string(), as_of_text(as_of));
    let sql = Sql::new(format!(
        "SELECT stage, CAST(COALESCE(SUM(met), 0) AS BIGINT) AS met, \
         CAST(COALESCE(SUM(breached), 0) AS BIGINT) AS breached \
         FROM {table} WHERE aggregate_type = $1 AND division BETWEEN $2 AND $3 \
           AND month BETWEEN $4 AND $5 AND day <= $6 \
         GROUP BY stage",
        table = crate::sla::STAGE_COUNTS_TABLE
    ))
    .bind(aggregate_type)
    .bind(&low)
    .bind(&high)
    .bind(&from)
    .bind(&to)
    .bind(&as_of);
    let rows = store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|row| Ok((row.get::<String>(0)?, row.count(1)?, row.count(2)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut outcomes = rows
        .into_iter()
        .map(|(stage, met, breached)| {
            let stage = Stage::parse(&stage).ok_or_else(|| {
                StoreError::Corrupt(format!("a stored stage is unknown: {stage:?}"))
            })?;
            Ok(StageOutcome {
                stage,
                met,
                breached,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    outcomes.sort_by_key(|o| o.stage);
    Ok(outcomes)
}

/// A row's key: division, level, month, and the day (in +08:00) the
/// events it counts happened.
type Key = (String, Level, Period, NaiveDate);

/// Where an agreement counted: division, level, month.
type Place = (String, Level, Period);

/// What the counters need to know of a dispute between events.
#[derive(Debug, Clone, PartialEq)]
struct CaseState {
    /// The division holding the case (where it was reported, until it is
    /// registered).
    division: String,
    /// That division's level.
    level: Level,
    handling_due: Option<DateTime<Utc>>,
    /// The level where the dispute arose: that of the division it was
    /// reported in, or registered at if it was never reported.
    origin_level: Option<Level>,
    /// Whether a mediation is under way: dispatched and not yet ended by
    /// an agreement, a refusal, a termination, a referral or a move.
    mediating: bool,
    /// The agreement that stands, where it counted, to attribute its
    /// follow-ups to.
    agreement: Option<AgreementState>,
    version: u64,
}

/// Where an agreement was counted, and what its follow-ups have counted.
#[derive(Debug, Clone, PartialEq)]
struct AgreementState {
    key: Place,
    followed_up: bool,
    performed: bool,
}

impl CaseState {
    fn new(division: &DivisionCode, level: Level) -> Self {
        Self {
            division: division.as_str().to_owned(),
            level,
            handling_due: None,
            origin_level: None,
            mediating: false,
            agreement: None,
            version: 0,
        }
    }

    /// The case changes hands (registered, moved or reopened): a new round
    /// of handling starts there, without a mediation or an agreement, as
    /// the aggregate's own `move_to` has it.
    fn move_to(&mut self, division: &DivisionCode, level: Level, due: DateTime<Utc>) {
        self.division = division.as_str().to_owned();
        self.level = level;
        self.handling_due = Some(due);
        self.mediating = false;
        self.agreement = None;
    }
}

fn bump<'a>(
    counts: &'a mut HashMap<Key, Counts>,
    division: &str,
    level: Level,
    period: Period,
    day: NaiveDate,
) -> &'a mut Counts {
    counts
        .entry((division.to_owned(), level, period, day))
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
    let (period, day) = (Period::of(event.at), local_day(event.at));
    match event.change {
        C::DisputeReported { division, .. } => {
            let state = states
                .entry(id.to_owned())
                .or_insert_with(|| CaseState::new(&division, division.level()));
            state.origin_level = Some(division.level());
        }
        C::DisputeRegistered {
            division,
            level,
            handling_due,
            ..
        } => {
            bump(counts, division.as_str(), level, period, day).registered += 1;
            let state = states
                .entry(id.to_owned())
                .or_insert_with(|| CaseState::new(&division, level));
            // Registered without a report, it arose where it is registered.
            state.origin_level.get_or_insert(level);
            state.move_to(&division, level, handling_due.due);
        }
        C::DisputeDispatched { .. } => {
            if let Some(state) = states.get_mut(id) {
                // A new mediation replaces any agreement (Art 33).
                state.mediating = true;
                state.agreement = None;
            }
        }
        C::DisputeEscalated {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
            ..
        } => {
            let from = bump(counts, from_division.as_str(), from_level, period, day);
            from.escalated_up += 1;
            moved(from, states, id);
            bump(counts, to_division.as_str(), to_level, period, day).moved_in += 1;
            move_case(states, id, &to_division, to_level, handling_due.due);
        }
        C::DisputeTakenOver {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
        } => {
            let from = bump(counts, from_division.as_str(), from_level, period, day);
            from.taken_over += 1;
            moved(from, states, id);
            bump(counts, to_division.as_str(), to_level, period, day).moved_in += 1;
            move_case(states, id, &to_division, to_level, handling_due.due);
        }
        C::DisputeSentDown {
            from_division,
            from_level,
            to_division,
            to_level,
            handling_due,
        } => {
            // Sending down re-routes a case before its mediation has
            // begun in earnest (from registered or dispatched); the level
            // below mediates it afresh, so nothing is concluded here.
            bump(counts, from_division.as_str(), from_level, period, day).sent_down += 1;
            bump(counts, to_division.as_str(), to_level, period, day).moved_in += 1;
            move_case(states, id, &to_division, to_level, handling_due.due);
        }
        C::DisputeReopened {
            division,
            level,
            handling_due,
            ..
        } => {
            bump(counts, division.as_str(), level, period, day).reopened += 1;
            move_case(states, id, &division, level, handling_due.due);
        }
        C::AgreementReached { .. } => {
            if let Some((c, state)) = holder(counts, states, id, period, day) {
                c.agreements += 1;
                state.mediating = false;
                state.agreement = Some(AgreementState {
                    key: (state.division.clone(), state.level, period),
                    followed_up: false,
                    performed: false,
                });
            }
        }
        C::MediationTerminated { .. } | C::MediationRefused { .. } => {
            if let Some((c, state)) = holder(counts, states, id, period, day) {
                c.terminations += 1;
                state.mediating = false;
            }
        }
        C::DisputeReferred { .. } => {
            if let Some((c, state)) = holder(counts, states, id, period, day) {
                c.referred += 1;
                state.mediating = false;
                state.agreement = None;
            }
        }
        C::PerformanceFollowedUp { performance, .. } => {
            // Counted where and when the agreement was reached, once per
            // agreement however many visits follow, so that the rate
            // compares agreements with what became of those same
            // agreements.
            let Some(agreement) = states.get_mut(id).and_then(|s| s.agreement.as_mut()) else {
                return;
            };
            let (division, level, month) = &agreement.key;
            let c = bump(counts, division, *level, *month, day);
            if !agreement.followed_up {
                agreement.followed_up = true;
                c.agreements_followed_up += 1;
            }
            if performance == Performance::Performed && !agreement.performed {
                agreement.performed = true;
                c.agreements_performed += 1;
            }
        }
        C::DisputeClosed {
            outcome,
            resolved_division,
            resolved_level,
            resolved_at_or_below_intake,
            ..
        } => {
            let state = states.get(id);
            // A period lapses at its due instant, so closing at it is late.
            let on_time = state
                .and_then(|s| s.handling_due)
                .is_some_and(|due| event.at < due);
            // Resolved at the lowest level: settled by agreement, not
            // referred or terminated, no higher than where it arose.
            let lowest = outcome == Outcome::Agreement
                && state
                    .and_then(|s| s.origin_level)
                    .is_some_and(|origin| resolved_level <= origin);
            let c = bump(
                counts,
                resolved_division.as_str(),
                resolved_level,
                period,
                day,
            );
            c.closed += 1;
            c.closed_at_or_below_intake += u64::from(resolved_at_or_below_intake);
            c.closed_on_time += u64::from(on_time);
            c.agreed_at_or_below_origin += u64::from(lowest);
        }
        C::DisputeEvaluated { satisfaction, .. } => {
            // Evaluated after closure, where the case was closed.
            if let Some((c, _)) = holder(counts, states, id, period, day) {
                c.evaluations += 1;
                match satisfaction {
                    Satisfaction::Satisfied => c.satisfied += 1,
                    Satisfaction::BasicallySatisfied => c.basically_satisfied += 1,
                    Satisfaction::Dissatisfied => {}
                }
            }
        }
        // Consents, sessions, court steps, reviews and deadline warnings
        // count nothing here.
        _ => {}
    }
}

/// A mediation under way at the level a case leaves by escalation or
/// take-over ended there without agreement.
fn moved(from: &mut Counts, states: &HashMap<String, CaseState>, id: &str) {
    if states.get(id).is_some_and(|s| s.mediating) {
        from.mediations_moved += 1;
    }
}

/// Moves the case's state to its new holder; a state the log never
/// registered (which the aggregate cannot write) starts there.
fn move_case(
    states: &mut HashMap<String, CaseState>,
    id: &str,
    division: &DivisionCode,
    level: Level,
    due: DateTime<Utc>,
) {
    states
        .entry(id.to_owned())
        .or_insert_with(|| CaseState::new(division, level))
        .move_to(division, level, due);
}

/// The counts of the division and level holding the case, which events
/// inside a level do not name, with the case's state.
fn holder<'a>(
    counts: &'a mut HashMap<Key, Counts>,
    states: &'a mut HashMap<String, CaseState>,
    id: &str,
    period: Period,
    day: NaiveDate,
) -> Option<(&'a mut Counts, &'a mut CaseState)> {
    let Some(state) = states.get_mut(id) else {
        // A mediation outcome before any registration cannot happen in a
        // log the aggregate wrote; say so rather than count it nowhere.
        tracing::warn!(case = id, "dispute event before registration; not counted");
        return None;
    };
    Some((
        bump(counts, &state.division, state.level, period, day),
        state,
    ))
}

/// The stored columns of `statistics_cases`, in the order both backends
/// read them.
const CASE_COLUMNS: [&str; 12] = [
    "case_id",
    "division",
    "level",
    "handling_due",
    "version",
    "origin_level",
    "mediating",
    "agreement_division",
    "agreement_level",
    "agreement_period",
    "agreement_followed_up",
    "agreement_performed",
];

/// A case's state from its stored columns ([`CASE_COLUMNS`]).
#[allow(clippy::too_many_arguments)]
fn decode_state(
    division: String,
    level: &str,
    handling_due: Option<DateTime<Utc>>,
    version: i64,
    origin_level: Option<String>,
    mediating: bool,
    agreement: (Option<String>, Option<String>, Option<String>),
    followed_up: bool,
    performed: bool,
) -> Result<CaseState, StoreError> {
    let agreement = match agreement {
        (Some(division), Some(level), Some(period)) => Some(AgreementState {
            key: (
                division,
                parse_level(&level)?,
                Period::parse(&period)
                    .map_err(|e| StoreError::Corrupt(format!("statistics_cases: {e}")))?,
            ),
            followed_up,
            performed,
        }),
        _ => None,
    };
    Ok(CaseState {
        division,
        level: parse_level(level)?,
        handling_due,
        origin_level: origin_level.as_deref().map(parse_level).transpose()?,
        mediating,
        agreement,
        version: to_u64(version),
    })
}

/// The states of `ids`, read within the batch.
async fn load_states(
    batch: &mut Batch,
    ids: &[String],
) -> Result<HashMap<String, CaseState>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let table = batch.table("statistics_cases");
    let columns = CASE_COLUMNS.join(", ");
    let sql = Sql::new(format!(
        "SELECT {columns} FROM {table} WHERE {}",
        batch.dialect().any("case_id", 1)
    ))
    .bind(ids);
    let mut found = HashMap::new();
    for row in batch.fetch_all(&sql).await? {
        let level: String = row.get("level")?;
        let state = decode_state(
            row.get("division")?,
            &level,
            row.optional_time("handling_due")?,
            row.get("version")?,
            row.get("origin_level")?,
            row.get("mediating")?,
            (
                row.get("agreement_division")?,
                row.get("agreement_level")?,
                row.get("agreement_period")?,
            ),
            row.get("agreement_followed_up")?,
            row.get("agreement_performed")?,
        )?;
        found.insert(row.get("case_id")?, state);
    }
    Ok(found)
}

/// Adds `counts` to the stored counters within the batch, in one
/// statement.
async fn write_counts(batch: &mut Batch, counts: &HashMap<Key, Counts>) -> Result<(), StoreError> {
    support::add_counts(
        batch,
        "statistics",
        &COLUMNS,
        counts.iter().map(|(key, c)| (key, c.values())),
    )
    .await
}

/// Writes the states of the cases in `changed` within the batch, in one
/// statement.
async fn write_states(
    batch: &mut Batch,
    states: &HashMap<String, CaseState>,
    changed: &HashSet<String>,
) -> Result<(), StoreError> {
    let periods: HashMap<&String, String> = changed
        .iter()
        .filter_map(|id| {
            let agreement = states.get(id)?.agreement.as_ref()?;
            Some((id, agreement.key.2.to_string()))
        })
        .collect();
    let rows: Vec<Vec<Cell<'_>>> = changed
        .iter()
        .filter_map(|id| states.get(id).map(|s| (id, s)))
        .map(|(id, state)| {
            let agreement = state.agreement.as_ref();
            vec![
                Cell::Text(id),
                Cell::Text(&state.division),
                Cell::Text(state.level.as_str()),
                Cell::Time(state.handling_due),
                Cell::Int(to_i64(state.version)),
                Cell::OptionalText(state.origin_level.map(|l| l.as_str())),
                Cell::Bool(state.mediating),
                Cell::OptionalText(agreement.map(|a| a.key.0.as_str())),
                Cell::OptionalText(agreement.map(|a| a.key.1.as_str())),
                Cell::OptionalText(periods.get(id).map(String::as_str)),
                Cell::Bool(agreement.is_some_and(|a| a.followed_up)),
                Cell::Bool(agreement.is_some_and(|a| a.performed)),
            ]
        })
        .collect();
    let update: Vec<String> = CASE_COLUMNS[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    batch
        .insert_rows(
            "statistics_cases",
            &CASE_COLUMNS,
            &rows,
            &format!("ON CONFLICT (case_id) DO UPDATE SET {}", update.join(", ")),
        )
        .await
}

/// Small things the read models of this crate share: decoding dispute
/// events, and instants and ids as each backend stores them.
pub(crate) mod support {
    use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
    use cqrs_es::Aggregate;
    use mediation_domain::dispute::{Dispute, DisputeEvent};
    use mediation_domain::values::Level;
    use mediation_store::{Batch, Cell, RecordedEvent, StoreError};

    use super::{Period, day_text};

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

    /// Adds `counts` (per division, level, month and day; each the values
    /// of `columns`, in order) to the counters kept in table `base`, within
    /// the batch, in one statement.
    pub(crate) async fn add_counts<const N: usize>(
        batch: &mut Batch,
        base: &str,
        columns: &[&str; N],
        counts: impl Iterator<Item = (&(String, Level, Period, NaiveDate), [u64; N])>,
    ) -> Result<(), StoreError> {
        let table = batch.table(base);
        let all: Vec<&str> = ["division", "level", "period", "day"]
            .into_iter()
            .chain(columns.iter().copied())
            .collect();
        let add: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        let tail = format!(
            "ON CONFLICT (division, level, period, day) DO UPDATE SET {}",
            add.join(", ")
        );
        let keyed: Vec<(&str, Level, String, String, [u64; N])> = counts
            .map(|((division, level, period, day), values)| {
                (
                    division.as_str(),
                    *level,
                    period.to_string(),
                    day_text(*day),
                    values,
                )
            })
            .collect();
        let rows: Vec<Vec<Cell<'_>>> = keyed
            .iter()
            .map(|(division, level, period, day, values)| {
                [
                    Cell::Text(division),
                    Cell::Text(level.as_str()),
                    Cell::Text(period),
                    Cell::Text(day),
                ]
                .into_iter()
                .chain(values.iter().map(|v| Cell::Int(to_i64(*v))))
                .collect()
            })
            .collect();
        batch.insert_rows(base, &all, &rows, &tail).await
    }

    /// `at` to the millisecond: what both backends store, so that they hold
    /// the same rows.
    pub(crate) fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
        at.trunc_subsecs(3)
    }

    /// Instants and counts as the store reads and writes them (its one
    /// definition).
    pub(crate) use mediation_store::{to_i64, to_u64};

    /// A stored level name.
    pub(crate) fn parse_level(text: &str) -> Result<Level, StoreError> {
        Level::parse(text)
            .map_err(|_| StoreError::Corrupt(format!("a stored level is unknown: {text:?}")))
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
            moved_in: 1,
            escalated_up: 1,
            agreements: 2,
            terminations: 1,
            mediations_moved: 1,
            closed: 4,
            closed_at_or_below_intake: 3,
            closed_on_time: 2,
            agreed_at_or_below_origin: 1,
            agreements_followed_up: 2,
            agreements_performed: 1,
            evaluations: 4,
            satisfied: 1,
            basically_satisfied: 2,
            ..Counts::default()
        };
        let rates = counts.rates();
        // Agreements at or below where the disputes arose, not closures
        // at or below their intake level.
        assert_eq!(rates.lowest_level_resolution, Some(0.25));
        // A mediation ended by a move weighs as a termination does.
        assert_eq!(rates.mediation_success, Some(0.5));
        assert_eq!(rates.on_time, Some(0.5));
        assert_eq!(rates.escalation, Some(0.25));
        assert_eq!(rates.agreement_performance, Some(0.5));
        assert_eq!(rates.satisfaction, Some(0.75));
        assert_eq!(Counts::default().rates(), Rates::default());
    }

    #[test]
    fn the_counts_round_trip_through_their_columns() {
        let mut values = [0u64; WIDTH];
        for (i, v) in values.iter_mut().enumerate() {
            *v = i as u64 + 1;
        }
        assert_eq!(Counts::from_values(values).values(), values);
        assert_eq!(COLUMNS.len(), values.len());
    }

    #[test]
    fn queries_group_by_the_keys_asked_for() {
        let sql = query_sql("statistics", &COLUMNS, Grouping::Level);
        assert!(sql.ends_with("GROUP BY level"), "{sql}");
        assert!(sql.contains("CAST(NULL AS TEXT) AS division"), "{sql}");
        let total = query_sql("statistics", &COLUMNS, Grouping::Total);
        assert!(!total.contains("GROUP BY"), "{total}");
    }
}
