//! Re-timing provisional deadlines once the holiday schedule of the year
//! they ran into is known.
//!
//! A deadline counted over a year with no loaded schedule is a guess
//! (Monday to Friday) and is marked [`Deadline::provisional`]. When the
//! year's schedule is loaded, the engine sends each case with such a
//! deadline a `RecomputeDeadlines` command. The case counts every
//! provisional deadline in force again, from the same start, by the same
//! rule, with the same extensions, over the calendar it has now, and
//! records what moved in one `DeadlinesRecomputed` event. Nothing moved,
//! nothing is written: the command is idempotent, so a restart or a second
//! server sending it again is harmless.
//!
//! What a recount keeps: a breach or a warning recorded for the old due
//! time stays recorded and is carried over to the new one, so that timers
//! neither fire again for the same obligation nor undo a breach (issue 12:
//! a clock that was breached stays breached).
//!
//! What it uses: the policy in force now. A policy changed between the
//! deadline's start and the recount applies to the recount too.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{Counting, Deadline, Stage, StageRule};
use crate::services::Services;
use crate::sla::DeadlineMark;

/// One deadline a recount moved, or confirmed: its stage, the due time it
/// had, and the deadline it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecomputedDeadline {
    /// The stage the deadline bounds.
    pub stage: Stage,
    /// The due time before the recount.
    pub old_due: DateTime<Utc>,
    /// The due time after it.
    pub new_due: DateTime<Utc>,
    /// The last day of the period after it, local date.
    pub last_day: NaiveDate,
    /// Whether the recount still ran into a year with no loaded schedule.
    pub provisional: bool,
}

impl RecomputedDeadline {
    /// The deadline as the recount left it.
    pub fn deadline(&self) -> Deadline {
        Deadline {
            stage: self.stage,
            due: self.new_due,
            last_day: self.last_day,
            provisional: self.provisional,
        }
    }
}

/// Where a deadline's period was counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The instant of the event that opened it (the period starts the next
    /// local day).
    At(DateTime<Utc>),
    /// A local day (a delivery), counted like an event on that day, by the
    /// policy's rule.
    Day(NaiveDate),
}

/// How a deadline in force was computed, so that it can be computed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Basis {
    /// The deadline as it stands.
    pub(crate) current: Deadline,
    /// Where its period started.
    pub(crate) start: Start,
    /// Its length in calendar days when a command gave it (an assigned
    /// report); `None` for the policy's rule for the stage.
    pub(crate) days: Option<u32>,
    /// Calendar days added to it afterwards, in order (an extension,
    /// hearings), each counted from the last day before it.
    pub(crate) extensions: Vec<u32>,
}

impl Basis {
    /// A deadline of the policy's rule for its stage, counted from `start`.
    pub(crate) fn new(current: Deadline, start: Start) -> Self {
        Self {
            current,
            start,
            days: None,
            extensions: Vec::new(),
        }
    }

    /// A deadline of the policy's rule for its stage, opened at `at`.
    pub(crate) fn at(current: Deadline, at: DateTime<Utc>) -> Self {
        Self::new(current, Start::At(at))
    }
}

/// Counts again every provisional deadline of `in_force` and returns those
/// whose due time, last day or provisional flag the count changes. A
/// deadline that is not provisional is left alone: it did not rely on a
/// guess.
pub(crate) fn recompute(services: &Services, in_force: &[Basis]) -> Vec<RecomputedDeadline> {
    in_force
        .iter()
        .filter(|basis| basis.current.provisional)
        .filter_map(|basis| {
            let new = count(services, basis);
            (new != basis.current).then_some(RecomputedDeadline {
                stage: basis.current.stage,
                old_due: basis.current.due,
                new_due: new.due,
                last_day: new.last_day,
                provisional: new.provisional,
            })
        })
        .collect()
}

/// The deadline `basis` describes, over the calendar in `services`.
fn count(services: &Services, basis: &Basis) -> Deadline {
    let stage = basis.current.stage;
    let mut deadline = match (basis.start, basis.days) {
        (Start::At(at), None) => services.deadline(stage, at),
        (Start::At(at), Some(days)) => services.deadline_for(stage, calendar_days(days), at),
        // Only request windows start on a day, and their length is the
        // policy's.
        (Start::Day(day), _) => services.deadline_on(stage, day),
    };
    for days in &basis.extensions {
        deadline = extend(services, deadline, *days);
    }
    deadline
}

/// A period of `days` calendar days.
pub(crate) fn calendar_days(days: u32) -> StageRule {
    StageRule {
        days,
        counting: Counting::Calendar,
    }
}

/// `current` moved out by `days` calendar days, counted from its last day.
/// The result is provisional if `current` was: it is counted from a guess.
pub(crate) fn extend(services: &Services, current: Deadline, days: u32) -> Deadline {
    // `due` is midnight after the last day; one second earlier is still on
    // the last day, which is where the added period starts counting.
    let last_moment = current
        .due
        .checked_sub_signed(TimeDelta::seconds(1))
        .unwrap_or(current.due);
    let mut extended = services.deadline_for(current.stage, calendar_days(days), last_moment);
    extended.provisional |= current.provisional;
    extended
}

/// Carries the warnings and the breach recorded for a clock due at
/// `old_due` over to its new due time, so that a timer for the re-timed
/// clock finds them recorded and writes nothing.
pub(crate) fn carry_marks(
    marks: &mut BTreeSet<DeadlineMark>,
    stage: Stage,
    old_due: DateTime<Utc>,
    new_due: DateTime<Utc>,
) {
    let carried: Vec<DeadlineMark> = marks
        .iter()
        .filter(|m| m.stage == stage && m.due == old_due)
        .map(|m| DeadlineMark { due: new_due, ..*m })
        .collect();
    marks.extend(carried);
}

/// Replaces the deadline in `slot` by the recount's when it is the one the
/// recount started from (same stage, same due time).
pub(crate) fn replace(slot: Option<&mut Deadline>, change: &RecomputedDeadline) {
    if let Some(current) = slot
        && current.stage == change.stage
        && current.due == change.old_due
    {
        *current = change.deadline();
    }
}

/// A made-up calendar for tests: the shipped years and, on request, a
/// fictional 2027 in which 1 January and Monday 4 January are days off.
/// It is not the official 2027 schedule, which has not been published.
#[cfg(test)]
pub(crate) fn test_services(now: DateTime<Utc>, with_fictional_2027: bool) -> Services {
    use std::sync::Arc;

    use crate::calendar::BusinessCalendar;
    use crate::jurisdiction::Jurisdiction;
    use crate::policy::DeadlinePolicy;
    use crate::services::ManualClock;

    let mut calendar = BusinessCalendar::new();
    for (_, text) in crate::STATUTORY_HOLIDAYS {
        calendar.load_year_json(text).expect("a shipped year");
    }
    if with_fictional_2027 {
        calendar
            .load_year_json(
                r#"{"year": 2027, "days": [
                    {"name": "fictional test day off", "date": "2027-01-01", "isOffDay": true},
                    {"name": "fictional test day off", "date": "2027-01-04", "isOffDay": true}]}"#,
            )
            .expect("the fictional year");
    }
    Services::new(
        Arc::new(ManualClock::new(now)),
        DeadlinePolicy::statutory(),
        calendar,
        Jurisdiction::from_toml(crate::EXAMPLE_JURISDICTION).expect("the example jurisdiction"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn services(with_fictional_2027: bool) -> Services {
        test_services(at("2027-01-02T00:00:00Z"), with_fictional_2027)
    }

    /// Monday 28 December 2026, 10:00 in Beijing: five working days run
    /// to 29, 30, 31 December and two days of 2027.
    const OPENED: &str = "2026-12-28T02:00:00Z";

    fn objection(services: &Services) -> Deadline {
        services.deadline(Stage::PetitionObjection, at(OPENED))
    }

    #[test]
    fn a_count_into_an_unpublished_year_is_provisional_and_so_is_its_extension() {
        let guessed = services(false);
        let base = objection(&guessed);
        // 1 January 2027 guessed a working Friday, then Monday 4 January.
        assert_eq!(base.last_day, "2027-01-04".parse::<NaiveDate>().unwrap());
        assert!(base.provisional);
        assert!(extend(&guessed, base, 2).provisional);
    }

    #[test]
    fn a_recount_over_the_same_calendar_changes_nothing() {
        let guessed = services(false);
        let basis = Basis::at(objection(&guessed), at(OPENED));
        assert!(recompute(&guessed, &[basis]).is_empty());
    }

    #[test]
    fn a_recount_over_the_loaded_year_moves_the_deadline_and_clears_the_flag() {
        let current = objection(&services(false));
        let changes = recompute(&services(true), &[Basis::at(current, at(OPENED))]);
        // 1 and 4 January off in the fictional year: Tuesday 5 and
        // Wednesday 6.
        assert_eq!(
            changes,
            vec![RecomputedDeadline {
                stage: Stage::PetitionObjection,
                old_due: current.due,
                new_due: at("2027-01-06T16:00:00Z"),
                last_day: "2027-01-06".parse().unwrap(),
                provisional: false,
            }]
        );
    }

    #[test]
    fn a_deadline_not_provisional_is_left_alone() {
        let mut current = objection(&services(false));
        current.provisional = false;
        assert!(recompute(&services(true), &[Basis::at(current, at(OPENED))]).is_empty());
    }

    #[test]
    fn extensions_are_counted_again_after_the_base() {
        let guessed = services(false);
        let extended = extend(&guessed, objection(&guessed), 3);
        let basis = Basis {
            extensions: vec![3],
            ..Basis::at(extended, at(OPENED))
        };
        let changes = recompute(&services(true), &[basis]);
        // Base Wednesday 6 January; 3 days on is Saturday 9, so Monday 11.
        assert_eq!(
            changes[0].last_day,
            "2027-01-11".parse::<NaiveDate>().unwrap()
        );
        assert!(!changes[0].provisional);
    }

    #[test]
    fn marks_are_carried_to_the_new_due_time() {
        use crate::sla::Threshold;
        let (old, new) = (at("2027-01-04T16:00:00Z"), at("2027-01-05T16:00:00Z"));
        let mut marks = BTreeSet::from([
            DeadlineMark::new(Stage::Review, old, Threshold::Warning(50)),
            DeadlineMark::new(Stage::Review, old, Threshold::Breach),
            DeadlineMark::new(Stage::ReReview, old, Threshold::Breach),
        ]);
        carry_marks(&mut marks, Stage::Review, old, new);
        assert!(marks.contains(&DeadlineMark::new(Stage::Review, new, Threshold::Breach)));
        assert!(marks.contains(&DeadlineMark::new(
            Stage::Review,
            new,
            Threshold::Warning(50)
        )));
        assert!(!marks.contains(&DeadlineMark::new(Stage::ReReview, new, Threshold::Breach)));
        assert_eq!(marks.len(), 5);
    }
}
