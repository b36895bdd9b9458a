//! Why a dispute refused a request.

use chrono::{DateTime, Utc};

use super::DisputeStatus;
use super::command::PartyRole;
use crate::policy::Stage;
use crate::values::{DivisionCode, Level};

/// Why a dispute refused a request. Each message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisputeError {
    /// The request is not allowed in the dispute's current status.
    #[error("cannot {action}: the dispute is {status}")]
    NotAllowed {
        /// The action refused, in words.
        action: &'static str,
        /// The status the dispute is in.
        status: DisputeStatus,
    },
    /// The division is not in the configured jurisdiction tree.
    #[error(
        "division {division} is not in this jurisdiction: use a code from the jurisdiction file"
    )]
    UnknownDivision {
        /// The unknown division.
        division: DivisionCode,
    },
    /// The level given does not match the division, or is not a handling level.
    #[error(
        "level {level} does not match division {division}, which is a {}: register at the division's own level (village, town or district)",
        division.level()
    )]
    LevelMismatch {
        /// The level given.
        level: Level,
        /// The division given.
        division: DivisionCode,
    },
    /// The parties lack an applicant or a respondent.
    #[error(
        "the parties include no {role}: a dispute needs at least one applicant and one respondent"
    )]
    MissingParty {
        /// The missing side.
        role: PartyRole,
    },
    /// The party's consent is already on record.
    #[error("the {party} has already consented to mediation: record the other party's answer")]
    AlreadyConsented {
        /// The party that already consented.
        party: PartyRole,
    },
    /// There is no level above the current one.
    #[error("already at district level: refer it to a legal channel instead")]
    AtTopLevel,
    /// The division to take over from is not above the current one.
    #[error(
        "{division} is not a division of this jurisdiction above the one holding the dispute: only a town or district that contains it can take it over"
    )]
    NotAbove {
        /// The division that tried to take over.
        division: DivisionCode,
    },
    /// The division to send down to is not below the current one.
    #[error(
        "{division} is not a division of this jurisdiction below the one holding the dispute: send it down to a town or village inside it"
    )]
    NotBelow {
        /// The division it was to be sent to.
        division: DivisionCode,
    },
    /// Only a written agreement can be judicially confirmed.
    #[error(
        "an oral agreement cannot be judicially confirmed: the parties must first sign a written agreement"
    )]
    OralAgreement,
    /// Judicial confirmation was already applied for.
    #[error(
        "judicial confirmation was already requested for this agreement: record the court's ruling instead"
    )]
    ConfirmationAlreadyRequested,
    /// There is no application awaiting a ruling.
    #[error("no judicial confirmation is awaiting a ruling: request confirmation first")]
    NoConfirmationPending,
    /// There is no application awaiting the court's decision to accept it.
    #[error(
        "no application for judicial confirmation is awaiting the court's acceptance: request confirmation first, or record the ruling if the court has accepted it"
    )]
    NoConfirmationAwaitingAcceptance,
    /// The court has not yet decided to accept the application, so it
    /// cannot rule on it or extend its ruling period.
    #[error(
        "the court has not yet accepted the application for judicial confirmation: record its acceptance first"
    )]
    ConfirmationNotAccepted,
    /// The court's acceptance or ruling is still awaited, so the case cannot
    /// be reviewed, escalated, referred or dispatched again yet.
    #[error(
        "judicial confirmation is awaiting the court's acceptance or ruling: record them before reviewing, escalating, referring or dispatching the dispute again"
    )]
    ConfirmationPending,
    /// The period has been extended as often as the policy allows.
    #[error(
        "the {stage} period has been extended {max} time(s) already, as often as the policy allows: it cannot be extended again"
    )]
    ExtensionsUsedUp {
        /// The period that cannot be extended again.
        stage: Stage,
        /// How many extensions the policy allows.
        max: u32,
    },
    /// The extension asked for is zero days or longer than the policy allows.
    #[error(
        "cannot extend the {stage} period by {days} days: an extension must be between 1 and {max} days"
    )]
    ExtensionTooLong {
        /// The period to be extended.
        stage: Stage,
        /// The days asked for.
        days: u32,
        /// The longest extension the policy allows.
        max: u32,
    },
    /// The period has already run out, so it can no longer be extended.
    #[error(
        "too late to extend: the {stage} period ended at {due} and stays overdue; an extension must be agreed before the period runs out"
    )]
    ExtensionTooLate {
        /// The period that ran out.
        stage: Stage,
        /// When it ran out.
        due: DateTime<Utc>,
    },
    /// The period for this step has lapsed.
    #[error(
        "too late: the {stage} period ended at {due}; the parties may still take the matter to court"
    )]
    WindowClosed {
        /// The stage whose period lapsed.
        stage: Stage,
        /// When it lapsed.
        due: DateTime<Utc>,
    },
    /// The dispute has already been evaluated.
    #[error("the dispute has already been evaluated: an evaluation is recorded once")]
    AlreadyEvaluated,
    /// A deadline warning named a threshold other than 50 or 75 percent.
    #[error(
        "threshold_percent: {threshold_percent} is not a warning threshold; warnings are recorded at 50 or 75 percent, a breach at the due time"
    )]
    InvalidThreshold {
        /// The threshold given.
        threshold_percent: u8,
    },
    /// No clock of that stage and due time is running: it stopped, or it was
    /// re-timed and the timer's due time is stale.
    #[error(
        "no {stage} clock due at {due} is running on this dispute: it has stopped or been re-timed; drop the timer"
    )]
    ClockNotRunning {
        /// The stage named.
        stage: Stage,
        /// The due time named.
        due: DateTime<Utc>,
    },
    /// The clock has not yet run long enough for this warning or breach.
    #[error(
        "the {stage} clock reaches {threshold_percent}% of its allowed time only at {reached_at}: record it then"
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
