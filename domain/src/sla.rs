//! SLA clocks: which deadlines bind a case now, who owes them, and when a
//! clock reaches its warning thresholds (50% and 75% of the allowed time)
//! and its breach (100%).
//!
//! Both aggregates derive their running clocks from their own state
//! ([`crate::dispute::Dispute::running_clocks`],
//! [`crate::petition::Petition::running_clocks`]); nothing here is stored
//! apart from the case. A timer outside the domain reads the clocks (or the
//! events that start them), and when a threshold falls due it sends the
//! case a `RecordDeadlineWarning` or `RecordDeadlineBreach` command, so that
//! the warning or breach becomes an event in the case's history, naming who
//! held the case at the time. The commands are idempotent: the case keeps
//! the marks it has recorded and a repeat writes nothing.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{Deadline, Stage};
use crate::values::{DivisionCode, Level};

/// The warning thresholds, in percent of a clock's allowed time, at which a
/// timer records a warning (first the assignee, then a supervisor is told).
pub const WARNING_THRESHOLDS: [u8; 2] = [50, 75];

/// The threshold, in percent, at which a clock is breached: its due time.
pub const BREACH_PERCENT: u8 = 100;

/// Who owes the obligation a clock measures: the case's holder for that
/// stage. Events of warnings and breaches carry it, because accountability
/// (信访工作条例 Art 44–46) needs to know who held a case when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// The division holding the case.
    pub division: Option<DivisionCode>,
    /// The level holding the case (`grid` while a grid report awaits
    /// registration).
    pub level: Option<Level>,
    /// The body that owes the step, where one is named: the mediation body's
    /// id during mediation, the court awaiting a confirmation ruling, or the
    /// petition's receiving unit.
    pub body: Option<String>,
    /// The person in charge, where one is named: the mediator during
    /// mediation, otherwise the case's responsible official.
    pub person: Option<String>,
    /// The case's responsible official (责任人, 包案领导) at the time, if one
    /// was named; absent from events recorded before officials were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub official: Option<String>,
}

/// An obligation running on a case now: a stage whose deadline binds the
/// case's holder, since when, and how much legally excluded time it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningClock {
    /// The stage timed.
    pub stage: Stage,
    /// Its current deadline (moved out by any extension or hearing).
    pub deadline: Deadline,
    /// When the obligation began: the event that opened the stage.
    pub started_at: DateTime<Utc>,
    /// Legally excluded time inside the period, such as petition hearing
    /// days during review or re-review (Art 35–36); zero otherwise. The
    /// deadline already lies that much later.
    pub paused: Duration,
    /// Who owes the obligation.
    pub holder: Holder,
}

impl RunningClock {
    /// The allowed time: from the start to the due time, less the paused
    /// time (which the deadline already includes). Never negative.
    pub fn allowed(&self) -> Duration {
        let span = self.deadline.due.signed_duration_since(self.started_at) - self.paused;
        span.max(Duration::zero())
    }

    /// The instant `threshold_percent` of the allowed time has run, paused
    /// time not counted: `started_at + paused + p% of allowed`, which for
    /// 100% is exactly the due time. Counted back from the due time, so that
    /// rounding never moves the breach off it.
    pub fn reached_at(&self, threshold_percent: u8) -> DateTime<Utc> {
        let remaining_percent = i64::from(100_u8.saturating_sub(threshold_percent));
        let remaining_ms = self
            .allowed()
            .num_milliseconds()
            .saturating_mul(remaining_percent)
            / 100;
        self.deadline
            .due
            .checked_sub_signed(Duration::milliseconds(remaining_ms))
            .unwrap_or(self.started_at)
    }
}

/// A warning or breach a case has recorded: the key that makes the timer
/// commands idempotent. A re-timed clock (a new due time) is a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct DeadlineMark {
    pub(crate) stage: Stage,
    pub(crate) due: DateTime<Utc>,
    pub(crate) threshold_percent: u8,
}

impl DeadlineMark {
    /// The mark of `threshold` on the clock of `stage` due at `due`.
    pub(crate) fn new(stage: Stage, due: DateTime<Utc>, threshold: Threshold) -> Self {
        Self {
            stage,
            due,
            threshold_percent: threshold.percent(),
        }
    }
}

/// What a timer command records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threshold {
    /// A warning at this percentage; only [`WARNING_THRESHOLDS`] are valid.
    Warning(u8),
    /// The breach, at the due time.
    Breach,
}

impl Threshold {
    /// The percentage of the allowed time it stands for.
    pub(crate) fn percent(self) -> u8 {
        match self {
            Self::Warning(percent) => percent,
            Self::Breach => BREACH_PERCENT,
        }
    }
}

/// Why a timer command was refused, before each aggregate names it in its
/// own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerRefusal {
    /// A warning threshold other than 50 or 75.
    InvalidThreshold,
    /// No running clock has that stage and due time.
    NotRunning,
    /// The clock has not yet reached the threshold; it will at this instant.
    NotReached(DateTime<Utc>),
}

/// Decides a timer command against the case's running clocks and recorded
/// marks. `Ok(Some(holder))`: record it, naming `holder`; `Ok(None)`: it is
/// already recorded, so nothing is written (the command is idempotent).
pub(crate) fn check_timer(
    clocks: &[RunningClock],
    marks: &BTreeSet<DeadlineMark>,
    stage: Stage,
    due: DateTime<Utc>,
    threshold: Threshold,
    now: DateTime<Utc>,
) -> Result<Option<Holder>, TimerRefusal> {
    if let Threshold::Warning(percent) = threshold
        && !WARNING_THRESHOLDS.contains(&percent)
    {
        return Err(TimerRefusal::InvalidThreshold);
    }
    // The due time must match too: a timer set for a deadline that has since
    // moved (an extension, a hearing, a new level) is stale.
    let Some(clock) = clocks
        .iter()
        .find(|c| c.stage == stage && c.deadline.due == due)
    else {
        return Err(TimerRefusal::NotRunning);
    };
    if marks.contains(&DeadlineMark::new(stage, due, threshold)) {
        return Ok(None);
    }
    let reached_at = clock.reached_at(threshold.percent());
    if now < reached_at {
        return Err(TimerRefusal::NotReached(reached_at));
    }
    Ok(Some(clock.holder.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn clock(started: &str, due: &str, paused_days: i64) -> RunningClock {
        let due = at(due);
        RunningClock {
            stage: Stage::Review,
            deadline: Deadline {
                stage: Stage::Review,
                due,
                last_day: due.date_naive(),
                provisional: false,
            },
            started_at: at(started),
            paused: Duration::days(paused_days),
            holder: Holder::default(),
        }
    }

    #[test]
    fn thresholds_fall_at_their_share_of_the_allowed_time() {
        let c = clock("2026-03-01T00:00:00Z", "2026-03-11T00:00:00Z", 0);
        assert_eq!(c.reached_at(50), at("2026-03-06T00:00:00Z"));
        assert_eq!(c.reached_at(75), at("2026-03-08T12:00:00Z"));
        assert_eq!(c.reached_at(100), c.deadline.due);
    }

    #[test]
    fn paused_time_is_not_counted() {
        // Ten days allowed, moved out by a four-day hearing: half the
        // allowed time has run two days later than without the hearing.
        let c = clock("2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z", 4);
        assert_eq!(c.allowed(), Duration::days(10));
        assert_eq!(c.reached_at(50), at("2026-03-10T00:00:00Z"));
        assert_eq!(c.reached_at(100), c.deadline.due);
    }
}
