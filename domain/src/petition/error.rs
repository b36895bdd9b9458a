//! Why a petition command was refused.

use chrono::{DateTime, Utc};

use super::{MAX_VISIT_REPRESENTATIVES, MatterType, PetitionStatus};
use crate::policy::Stage;
use crate::values::{CaseId, DivisionCode};

/// A refused petition command. Each message says what was wrong and what the
/// caller can do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PetitionError {
    /// The command is not allowed in the petition's current status.
    #[error("cannot {action}: the petition is {status}")]
    NotAllowed {
        /// What was attempted, as a verb phrase.
        action: &'static str,
        /// The status that forbids it.
        status: PetitionStatus,
    },
    /// The division is not part of this deployment's jurisdiction.
    #[error(
        "division {division} is not in this deployment's jurisdiction; \
         use a district, town or village code from the jurisdiction file"
    )]
    UnknownDivision {
        /// The code given.
        division: DivisionCode,
    },
    /// The unit complained about names a division outside the jurisdiction.
    #[error(
        "the unit complained about, division {unit}, is not in this deployment's jurisdiction; \
         name it by a division code from the jurisdiction file or by an agency id"
    )]
    UnknownComplainedUnit {
        /// The code given.
        unit: DivisionCode,
    },
    /// A visit did not say which level was visited.
    #[error(
        "a visit must say which level was visited (visited_level), \
         so that a skipped level can be recorded (Art 20)"
    )]
    MissingVisitedLevel,
    /// A visit named no representatives.
    #[error(
        "a visit must send at least one representative; \
         set representatives to between 1 and {MAX_VISIT_REPRESENTATIVES}"
    )]
    NoRepresentatives,
    /// A group visit sent more representatives than Art 20 allows.
    #[error(
        "a group visit may send at most {MAX_VISIT_REPRESENTATIVES} representatives (Art 20), \
         not {representatives}; receive the visit with the representatives the group chooses \
         and record the whole group's headcount"
    )]
    TooManyRepresentatives {
        /// How many were given.
        representatives: u32,
    },
    /// A period of days is out of range.
    #[error("{days} days is not a valid period here: give between 1 and {max} days")]
    InvalidDeadline {
        /// The days given.
        days: u32,
        /// The longest period allowed.
        max: u32,
    },
    /// The window for this request has closed.
    #[error("the {} window closed at {due}; the request can no longer be made", .stage.label())]
    WindowClosed {
        /// The stage whose window closed.
        stage: Stage,
        /// When it closed.
        due: DateTime<Utc>,
    },
    /// The petition cannot be finalised while a request window is open.
    #[error(
        "the {} window is open until {due}; the petition can be finalised only after it lapses",
        .stage.label()
    )]
    WindowStillOpen {
        /// The stage whose window is open.
        stage: Stage,
        /// When it lapses.
        due: DateTime<Utc>,
    },
    /// Review and re-review are for appeals and demands only (Art 31).
    #[error(
        "a {} matter has no review or re-review: Art 31 opens them to appeals and demands \
         (申诉求决类) only",
        .matter_type.as_str()
    )]
    NoReviewForMatter {
        /// The matter's type.
        matter_type: MatterType,
    },
    /// The handling period has already been extended once.
    #[error(
        "the handling period has already been extended once and may not be extended again \
         (Art 34); issue the opinion instead"
    )]
    AlreadyExtended,
    /// The extension asked for is zero days or longer than the policy allows.
    #[error(
        "cannot extend handling by {days} days: an extension must be between 1 and {max} days \
         (Art 34)"
    )]
    ExtensionTooLong {
        /// The days asked for.
        days: u32,
        /// The longest extension the policy allows.
        max: u32,
    },
    /// The petition is final and its facts are not taken up again.
    #[error(
        "the petition became final at {finalised_at}; the same facts are not accepted again \
         (Art 37), though the petitioner may be offered counselling or assistance"
    )]
    AlreadyFinal {
        /// When it became final.
        finalised_at: DateTime<Utc>,
    },
    /// The petition has already been evaluated.
    #[error("the petition has already been evaluated: an evaluation is recorded once")]
    AlreadyEvaluated,
    /// A petition named as an earlier one on the same facts does not exist.
    #[error("there is no petition {id} to be a repeat of; check the id or leave it out")]
    UnknownPetition {
        /// The id given.
        id: CaseId,
    },
    /// A petition named as the final one a repeat is not accepted for is
    /// not final.
    #[error(
        "petition {id} is not final, so this one cannot be refused as its repeat (Art 37); \
         name it in repeat_of at receipt, or give another reason"
    )]
    RepeatNotFinal {
        /// The id given.
        id: CaseId,
    },
    /// The earlier petition could not be looked up.
    #[error("the earlier petition cannot be looked up right now; retry")]
    RecordsUnavailable,
    /// A deadline warning named a threshold other than 50 or 75 percent.
    #[error(
        "threshold_percent: {threshold_percent} is not a warning threshold; warnings are \
         recorded at 50 or 75 percent, a breach at the due time"
    )]
    InvalidThreshold {
        /// The threshold given.
        threshold_percent: u8,
    },
    /// No clock of that stage and due time is running: it stopped, or it was
    /// re-timed and the timer's due time is stale.
    #[error(
        "no {} clock due at {due} is running on this petition: it has stopped or been \
         re-timed; drop the timer",
        .stage.label()
    )]
    ClockNotRunning {
        /// The stage named.
        stage: Stage,
        /// The due time named.
        due: DateTime<Utc>,
    },
    /// The clock has not yet run long enough for this warning or breach.
    #[error(
        "the {} clock reaches {threshold_percent}% of its allowed time only at {reached_at}: \
         record it then",
        .stage.label()
    )]
    ThresholdNotReached {
        /// The stage named.
        stage: Stage,
        /// The threshold named, in percent (100 for a breach).
        threshold_percent: u8,
        /// When the clock will reach it.
        reached_at: DateTime<Utc>,
    },
}
