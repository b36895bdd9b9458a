//! Petition statistics: the "three rates" petition bureaus are measured by
//! (DOMAIN.md, "More of the petition procedure"), as event counts per
//! division, competent level and month, kept from the global log by the
//! [runner](crate::runner) beside the dispute [statistics](crate::statistics).
//!
//! # Which event counts where
//!
//! Every counter is bumped by one petition event, in the month of the
//! event's `at` in +08:00 ([`Period::of`]), at the division the petition
//! belongs to and its competent level (both from `PetitionReceived`; a
//! petition does not change division), and on the event's day, as the
//! dispute statistics are kept, for figures as of a past day.
//!
//! | counter | event |
//! |---|---|
//! | `received` | `PetitionReceived` |
//! | `acceptance_decided` | the decision that answers whether the petition is taken up: `PetitionAccepted` by the receiving unit, or at triage `PetitionDiverted` or `PetitionNotAccepted` |
//! | `acceptance_in_time` | of those, the ones where every triage step (forward, assign, divert, not accept) came within the triage deadline (信访工作条例 Art 22: 15 days) and, for a petition the unit accepted, the unit's notice within its deadline (Art 23: 15 days), as the events' `late` and `late_notice` say |
//! | `opinions` | `OpinionIssued`: the handling opinion (Art 32) |
//! | `opinions_on_time` | of those, issued within the handling period in force, an extension included (Art 34: 60 days, once extended by up to 30), as its `late` says |
//! | `review_opinions` | `ReviewOpinionIssued` and `ReReviewOpinionIssued` (Art 35–36) |
//! | `review_opinions_on_time` | of those, issued within their period (30 days each; a re-review's hearing days not counted, Art 36) |
//! | `evaluations`, `satisfied`, `basically_satisfied` | `PetitionEvaluated` (all; 满意; 基本满意) |
//!
//! An objection (Art 23) sends a petition back to triage; its triage counts
//! late if any of its triage steps was late, since the triage deadline is
//! not set again. A petition whose opinion is still outstanding past its
//! due time counts in `opinions` only once the opinion is issued (late);
//! until then the SLA clocks show it ([`stage_outcomes`]).
//!
//! # Rates
//!
//! Ratios of sums over the rows asked for, `None` when the denominator is
//! zero:
//!
//! - 及时受理率, timely acceptance: `acceptance_in_time ÷ acceptance_decided`;
//! - 按期办结率, handled on time: `opinions_on_time ÷ opinions`;
//! - 群众满意率, satisfaction: `(satisfied + basically_satisfied) ÷
//!   evaluations`;
//! - review on time: `review_opinions_on_time ÷ review_opinions`.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use mediation_domain::dispute::Satisfaction;
use mediation_domain::petition::{Petition, PetitionChange, PetitionEvent};
use mediation_domain::values::{DivisionCode, Level};
use mediation_store::{Batch, Cell, RecordedEvent, Sql, Store, StoreError, cases_begun_before};

use crate::runner::Projection;
use crate::statistics::support::{parse_level, to_i64, to_u64};
use crate::statistics::{Grouping, Period, StageOutcome, local_day, ratio, sum_rows};

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "petition_statistics";

/// The petition statistics as a projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PetitionStatistics;

#[async_trait::async_trait]
impl Projection for PetitionStatistics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["petition_statistics", "petition_statistics_cases"]
    }

    fn gather(&self) -> std::time::Duration {
        crate::runner::DASHBOARD_GATHER
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mine = decode_petitions(events)?;
        if mine.is_empty() {
            return Ok(());
        }
        // A case that begins in this batch has no state to read back.
        let ids = cases_begun_before(mine.iter().map(|(e, _)| *e));
        let mut states = load_states(batch, &ids).await?;
        let mut counts: HashMap<Key, PetitionCounts> = HashMap::new();
        let mut changed: HashSet<String> = HashSet::new();
        for (recorded, event) in mine {
            let id = &recorded.aggregate_id;
            // As in the dispute statistics: the checkpoint keeps a batch
            // from being applied twice, the case's version an event read
            // back from being counted twice.
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

/// The event counts of one row; see the [module documentation](self) for
/// which event counts where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PetitionCounts {
    /// Petitions received.
    pub received: u64,
    /// Petitions whose acceptance was decided: accepted by the receiving
    /// unit, or diverted or not accepted at triage.
    pub acceptance_decided: u64,
    /// Of those, decided in time: triage within Art 22's deadline and the
    /// unit's notice within Art 23's.
    pub acceptance_in_time: u64,
    /// Handling opinions issued (Art 32).
    pub opinions: u64,
    /// Of those, issued within the handling period in force (Art 34).
    pub opinions_on_time: u64,
    /// Review and re-review opinions issued (Art 35–36).
    pub review_opinions: u64,
    /// Of those, issued within their period.
    pub review_opinions_on_time: u64,
    /// Satisfaction evaluations recorded.
    pub evaluations: u64,
    /// Of those, satisfied (满意).
    pub satisfied: u64,
    /// Of those, basically satisfied (基本满意).
    pub basically_satisfied: u64,
}

/// How many counters a row has.
const WIDTH: usize = 10;

/// The stored counter columns, in the order of [`PetitionCounts::values`].
const COLUMNS: [&str; WIDTH] = [
    "received",
    "acceptance_decided",
    "acceptance_in_time",
    "opinions",
    "opinions_on_time",
    "review_opinions",
    "review_opinions_on_time",
    "evaluations",
    "satisfied",
    "basically_satisfied",
];

impl PetitionCounts {
    /// The rates petition bureaus are measured by, from these counts.
    pub fn rates(&self) -> PetitionRates {
        PetitionRates {
            timely_acceptance: ratio(self.acceptance_in_time, self.acceptance_decided),
            handled_on_time: ratio(self.opinions_on_time, self.opinions),
            satisfaction: ratio(
                self.satisfied.saturating_add(self.basically_satisfied),
                self.evaluations,
            ),
            review_on_time: ratio(self.review_opinions_on_time, self.review_opinions),
        }
    }

    fn values(&self) -> [u64; WIDTH] {
        [
            self.received,
            self.acceptance_decided,
            self.acceptance_in_time,
            self.opinions,
            self.opinions_on_time,
            self.review_opinions,
            self.review_opinions_on_time,
            self.evaluations,
            self.satisfied,
            self.basically_satisfied,
        ]
    }

    fn from_values(v: [u64; WIDTH]) -> Self {
        let [
            received,
            acceptance_decided,
            acceptance_in_time,
            opinions,
            opinions_on_time,
            review_opinions,
            review_opinions_on_time,
            evaluations,
            satisfied,
            basically_satisfied,
        ] = v;
        Self {
            received,
            acceptance_decided,
            acceptance_in_time,
            opinions,
            opinions_on_time,
            review_opinions,
            review_opinions_on_time,
            evaluations,
            satisfied,
            basically_satisfied,
        }
    }
}

impl std::ops::Add for PetitionCounts {
    type Output = Self;

    /// The counts of two rows together (of two subtrees, say).
    fn add(self, other: Self) -> Self {
        let (a, b) = (self.values(), other.values());
        Self::from_values(std::array::from_fn(|i| a[i].saturating_add(b[i])))
    }
}

/// The petition rates, as fractions (0.83, not 83); `None` where nothing
/// was counted in the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PetitionRates {
    /// 及时受理率: acceptance decided in time ÷ acceptance decided.
    pub timely_acceptance: Option<f64>,
    /// 按期办结率: handling opinions on time ÷ handling opinions.
    pub handled_on_time: Option<f64>,
    /// 群众满意率: satisfied or basically satisfied ÷ evaluations.
    pub satisfaction: Option<f64>,
    /// Review and re-review opinions on time ÷ those opinions.
    pub review_on_time: Option<f64>,
}

/// One row of petition statistics; a key is `None` when the grouping sums
/// over it.
#[derive(Debug, Clone, PartialEq)]
pub struct PetitionStatsRow {
    /// The division.
    pub division: Option<DivisionCode>,
    /// The competent level.
    pub level: Option<Level>,
    /// The month.
    pub period: Option<Period>,
    /// The summed counts.
    pub counts: PetitionCounts,
    /// The rates of the summed counts.
    pub rates: PetitionRates,
}

/// The petition statistics of the divisions in `subtree` (itself
/// included), for the months `from` to `to` inclusive, grouped as asked;
/// ordered by division, then level up the ladder, then month. With
/// `as_of`, only what had happened by the end of that day (+08:00), as
/// [`crate::statistics::query`].
pub async fn query(
    store: &Store,
    subtree: &DivisionCode,
    from: Period,
    to: Period,
    as_of: Option<NaiveDate>,
    grouping: Grouping,
) -> Result<Vec<PetitionStatsRow>, StoreError> {
    let rows = sum_rows(
        store,
        "petition_statistics",
        &COLUMNS,
        subtree,
        (from, to, as_of),
        grouping,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let counts = PetitionCounts::from_values(row.values);
            PetitionStatsRow {
                division: row.division,
                level: row.level,
                period: row.period,
                counts,
                rates: counts.rates(),
            }
        })
        .collect())
}

/// The outcomes of the petitions' SLA clocks per stage (triage, notice,
/// opinion, review, re-review, assigned report), as
/// [`crate::statistics::dispute_stage_outcomes`] counts the disputes'.
pub async fn stage_outcomes(
    store: &Store,
    subtree: &DivisionCode,
    from: Period,
    to: Period,
    as_of: Option<NaiveDate>,
) -> Result<Vec<StageOutcome>, StoreError> {
    crate::statistics::stage_outcomes(store, Petition::TYPE, subtree, (from, to, as_of)).await
}

/// A row's key: division, competent level, month, and the day (+08:00)
/// its events happened.
type Key = (String, Level, Period, NaiveDate);

/// What the counters need to know of a petition between events.
#[derive(Debug, Clone, PartialEq)]
struct CaseState {
    division: String,
    level: Level,
    /// Whether a triage step of the petition came after the triage deadline.
    triage_late: bool,
    version: u64,
}

/// The petition events among `events`, decoded, in log order.
fn decode_petitions(
    events: &[RecordedEvent],
) -> Result<Vec<(&RecordedEvent, PetitionEvent)>, StoreError> {
    events
        .iter()
        .filter(|e| e.aggregate_type == Petition::TYPE)
        .map(|e| {
            let event = e.decode().map_err(|err| {
                StoreError::Corrupt(format!(
                    "event {} of petition {} does not match this engine: {err}",
                    e.sequence, e.aggregate_id
                ))
            })?;
            Ok((e, event))
        })
        .collect()
}

/// Counts one event and brings the petition's state past it.
fn count(
    counts: &mut HashMap<Key, PetitionCounts>,
    states: &mut HashMap<String, CaseState>,
    id: &str,
    event: PetitionEvent,
) {
    use PetitionChange as C;
    let (period, day) = (Period::of(event.at), local_day(event.at));
    if let C::PetitionReceived {
        division,
        competent_level,
        ..
    } = &event.change
    {
        states.insert(
            id.to_owned(),
            CaseState {
                division: division.as_str().to_owned(),
                level: *competent_level,
                triage_late: false,
                version: 0,
            },
        );
    }
    let Some(state) = states.get_mut(id) else {
        // Only a receipt starts a petition in a log the aggregate wrote.
        tracing::warn!(case = id, "petition event before its receipt; not counted");
        return;
    };
    let c = counts
        .entry((state.division.clone(), state.level, period, day))
        .or_default();
    match event.change {
        C::PetitionReceived { .. } => c.received += 1,
        C::PetitionForwarded { late, .. } | C::PetitionAssigned { late, .. } => {
            state.triage_late |= late;
        }
        // Triage answers the petitioner itself (Art 22): the matter goes to
        // a legal channel, or is not accepted.
        C::PetitionDiverted { late, .. } | C::PetitionNotAccepted { late, .. } => {
            state.triage_late |= late;
            c.acceptance_decided += 1;
            c.acceptance_in_time += u64::from(!state.triage_late);
        }
        // The unit's written notice that it accepts (Art 23).
        C::PetitionAccepted { late_notice, .. } => {
            c.acceptance_decided += 1;
            c.acceptance_in_time += u64::from(!state.triage_late && !late_notice);
        }
        C::OpinionIssued { late, .. } => {
            c.opinions += 1;
            c.opinions_on_time += u64::from(!late);
        }
        C::ReviewOpinionIssued { late, .. } | C::ReReviewOpinionIssued { late, .. } => {
            c.review_opinions += 1;
            c.review_opinions_on_time += u64::from(!late);
        }
        C::PetitionEvaluated { satisfaction, .. } => {
            c.evaluations += 1;
            match satisfaction {
                Satisfaction::Satisfied => c.satisfied += 1,
                Satisfaction::BasicallySatisfied => c.basically_satisfied += 1,
                Satisfaction::Dissatisfied => {}
            }
        }
        // Objections, extensions, requests, hearings, deliveries, finality,
        // headcounts and deadline marks count nothing here.
        _ => {}
    }
}

/// The states of `ids`, read within the batch.
async fn load_states(
    batch: &mut Batch,
    ids: &[String],
) -> Result<HashMap<String, CaseState>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let table = batch.table("petition_statistics_cases");
    let columns = "case_id, division, level, triage_late, version";
    let sql = Sql::new(format!(
        "SELECT {columns} FROM {table} WHERE {}",
        batch.dialect().any("case_id", 1)
    ))
    .bind(ids);
    let rows: Vec<(String, String, String, bool, i64)> = batch
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    rows.into_iter()
        .map(|(id, division, level, triage_late, version)| {
            Ok((
                id,
                CaseState {
                    division,
                    level: parse_level(&level)?,
                    triage_late,
                    version: to_u64(version),
                },
            ))
        })
        .collect()
}

/// Adds `counts` to the stored counters within the batch, in one
/// statement.
async fn write_counts(
    batch: &mut Batch,
    counts: &HashMap<Key, PetitionCounts>,
) -> Result<(), StoreError> {
    crate::statistics::support::add_counts(
        batch,
        "petition_statistics",
        &COLUMNS,
        counts.iter().map(|(key, c)| (key, c.values())),
    )
    .await
}

/// Writes the states of the petitions in `changed` within the batch, in
/// one statement.
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
                Cell::Bool(state.triage_late),
                Cell::Int(to_i64(state.version)),
            ]
        })
        .collect();
    batch
        .insert_rows(
            "petition_statistics_cases",
            &["case_id", "division", "level", "triage_late", "version"],
            &rows,
            "ON CONFLICT (case_id) DO UPDATE SET triage_late = excluded.triage_late, \
             version = excluded.version",
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_rates_are_ratios_of_the_counts() {
        let counts = PetitionCounts {
            received: 5,
            acceptance_decided: 4,
            acceptance_in_time: 3,
            opinions: 2,
            opinions_on_time: 1,
            evaluations: 4,
            satisfied: 1,
            basically_satisfied: 2,
            ..PetitionCounts::default()
        };
        let rates = counts.rates();
        assert_eq!(rates.timely_acceptance, Some(0.75));
        assert_eq!(rates.handled_on_time, Some(0.5));
        assert_eq!(rates.satisfaction, Some(0.75));
        assert_eq!(rates.review_on_time, None);
        assert_eq!(PetitionCounts::default().rates(), PetitionRates::default());
    }

    #[test]
    fn the_counts_round_trip_through_their_columns() {
        let mut values = [0u64; WIDTH];
        for (i, v) in values.iter_mut().enumerate() {
            *v = i as u64 + 1;
        }
        assert_eq!(PetitionCounts::from_values(values).values(), values);
    }
}
