//! The one conversion from the engine's errors to gRPC statuses (STYLE.md):
//! invalid input → INVALID_ARGUMENT, a transition the state forbids →
//! FAILED_PRECONDITION, a version conflict → ABORTED, an unknown or hidden
//! case → NOT_FOUND, a duplicate → ALREADY_EXISTS, the store down →
//! UNAVAILABLE. Messages tell the caller what to do; database and driver
//! text goes to the log only.

use mediation_domain::dispute::{DisputeError, DisputeStatus};
use mediation_domain::petition::{PetitionError, PetitionStatus};
use mediation_store::{CommandError, StoreError};
use tonic::Status;

/// The trailer that carries a case's current version with ABORTED.
pub const CURRENT_VERSION_TRAILER: &str = "mediation-current-version";

/// A store failure as a status.
pub fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::Unavailable(why) => Status::unavailable(format!(
            "the event store is unavailable ({why}); retry shortly"
        )),
        StoreError::Corrupt(what) => {
            tracing::error!(error = %what, "stored data unreadable");
            Status::internal("stored data could not be read; the operators have been told")
        }
        other => {
            tracing::error!(error = %other, "store failure");
            Status::internal("the event store failed; the operators have been told")
        }
    }
}

/// A failed command as a status. `kind` names the case ("dispute",
/// "petition") and `creates` says whether the command may create the case.
pub fn command_status<E: std::error::Error>(
    e: CommandError<E>,
    kind: &str,
    id: &str,
    domain: impl FnOnce(E) -> Status,
) -> Status {
    match e {
        CommandError::Domain(e) => domain(e),
        CommandError::NotFound => not_found(kind, id),
        CommandError::Conflict => Status::aborted(format!(
            "{kind} {id} was changed by another request at the same time; nothing was written: \
             read it again and retry"
        )),
        CommandError::WrongVersion { expected, actual } => {
            let mut status = Status::aborted(format!(
                "{kind} {id} is at version {actual}, not the expected {expected}; nothing was \
                 written: read it again and decide whether to retry"
            ));
            if let Ok(value) = actual.to_string().parse() {
                status.metadata_mut().insert(CURRENT_VERSION_TRAILER, value);
            }
            status
        }
        CommandError::RequestReused => Status::already_exists(
            "this request_id was already used for a different request; choose a new request_id \
             for every new request and reuse it only to retry the very same request",
        ),
        CommandError::Store(e) => store_status(&e),
    }
}

/// NOT_FOUND for a case that does not exist or that the caller may not see;
/// the two read the same, so that existence does not leak.
pub fn not_found(kind: &str, id: &str) -> Status {
    Status::not_found(format!("no {kind} {id} in your jurisdiction"))
}

/// A dispute's refusal as a status.
pub fn dispute_status(e: DisputeError, id: &str, creates: bool) -> Status {
    use DisputeError as E;
    let message = e.to_string();
    match e {
        E::NotAllowed {
            status: DisputeStatus::New,
            ..
        } => not_found("dispute", id),
        E::NotAllowed { .. } if creates => Status::already_exists(format!(
            "dispute {id} already exists and {message}; choose another dispute_id or leave it \
             empty"
        )),
        E::NotAllowed { .. }
        | E::AlreadyConsented { .. }
        | E::AtTopLevel
        | E::OralAgreement
        | E::ConfirmationAlreadyRequested
        | E::NoConfirmationPending
        | E::ConfirmationPending
        | E::WindowClosed { .. }
        | E::AlreadyEvaluated
        | E::ClockNotRunning { .. }
        | E::ThresholdNotReached { .. } => Status::failed_precondition(message),
        E::UnknownDivision { .. }
        | E::LevelMismatch { .. }
        | E::MissingParty { .. }
        | E::NotAbove { .. }
        | E::NotBelow { .. }
        | E::InvalidThreshold { .. } => Status::invalid_argument(message),
    }
}

/// A petition's refusal as a status.
pub fn petition_status(e: PetitionError, id: &str, creates: bool) -> Status {
    use PetitionError as E;
    let message = e.to_string();
    match e {
        E::NotAllowed {
            status: PetitionStatus::New,
            ..
        } => not_found("petition", id),
        E::NotAllowed { .. } if creates => Status::already_exists(format!(
            "petition {id} already exists and {message}; choose another petition_id or leave \
             it empty"
        )),
        E::RecordsUnavailable => Status::unavailable(message),
        E::NotAllowed { .. }
        | E::WindowClosed { .. }
        | E::WindowStillOpen { .. }
        | E::AlreadyExtended
        | E::AlreadyFinal { .. }
        | E::ClockNotRunning { .. }
        | E::ThresholdNotReached { .. } => Status::failed_precondition(message),
        E::UnknownDivision { .. }
        | E::MissingVisitedLevel
        | E::NoRepresentatives
        | E::TooManyRepresentatives { .. }
        | E::InvalidDeadline { .. }
        | E::ExtensionTooLong { .. }
        | E::UnknownPetition { .. }
        | E::InvalidThreshold { .. } => Status::invalid_argument(message),
    }
}
