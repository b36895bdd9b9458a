//! The one conversion from the engine's errors to gRPC statuses (STYLE.md):
//! invalid input → INVALID_ARGUMENT, a transition the state forbids →
//! FAILED_PRECONDITION, a version conflict → ABORTED, an unknown or hidden
//! case → NOT_FOUND, a duplicate → ALREADY_EXISTS, a `min_position` that
//! has not been written → OUT_OF_RANGE, the store down → UNAVAILABLE.
//! Messages tell the caller what to do; database and driver text goes to
//! the log only.
//!
//! Machine-readable details travel in the standard `google.rpc` form
//! (`grpc-status-details-bin`): a `BadRequest` naming the field, as the
//! `.proto` spells it, with every INVALID_ARGUMENT (and OUT_OF_RANGE) about
//! a request field; an `ErrorInfo` in [`ERROR_DOMAIN`] with a stable
//! UPPER_SNAKE `reason` and metadata with every FAILED_PRECONDITION (where
//! a `PreconditionFailure` names the case too), with ABORTED for a wrong
//! expected version, and with OUT_OF_RANGE.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use mediation_app::AppError;
use mediation_domain::dispute::{DisputeError, DisputeStatus};
use mediation_domain::petition::{PetitionError, PetitionStatus};
use mediation_domain::policy::Stage;
use mediation_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::convert::common::{ProtoEnum, stage_name};

/// The trailer that carries a case's current version with ABORTED.
pub const CURRENT_VERSION_TRAILER: &str = "mediation-current-version";

/// The `domain` of every `google.rpc.ErrorInfo` this server sends.
pub const ERROR_DOMAIN: &str = "mediation.v1";

/// `ErrorInfo.reason` of ABORTED for a stale `expected_version`.
pub const VERSION_MISMATCH: &str = "VERSION_MISMATCH";

/// `ErrorInfo.reason` of ABORTED when another request changed the case at
/// the same moment.
pub const CONCURRENT_MODIFICATION: &str = "CONCURRENT_MODIFICATION";

/// `ErrorInfo.reason` of OUT_OF_RANGE for a `min_position` beyond every
/// committed event.
pub const POSITION_NOT_WRITTEN: &str = "POSITION_NOT_WRITTEN";

/// INVALID_ARGUMENT for a bad request field: the message reads
/// `invalid {field}: {description}`, and a `BadRequest` carries the field
/// (as the `.proto` names it, with its path if nested: `parties[1].name`)
/// and the description.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    let description = description.into();
    invalid_field_with_message(
        format!("invalid {field}: {description}"),
        field,
        description,
    )
}

/// [`invalid_field`] with a message of its own.
pub fn invalid_field_with_message(
    message: impl Into<String>,
    field: &str,
    description: impl Into<String>,
) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

/// OUT_OF_RANGE for a `min_position` (in request field `field`) above the
/// last committed event: waiting would not help, since no event has that
/// position yet.
pub fn position_not_written(field: &str, position: u64) -> Status {
    let description = format!(
        "position {position} does not exist yet: no event has been committed at or after it; \
         pass the position of a command's outcome or of an event you have read"
    );
    let mut details = ErrorDetails::with_bad_request_violation(field, description.clone());
    details.set_error_info(
        POSITION_NOT_WRITTEN,
        ERROR_DOMAIN,
        HashMap::from([(field.to_owned(), position.to_string())]),
    );
    Status::with_error_details(Code::OutOfRange, description, details)
}

/// A status of `code` with an `ErrorInfo` of `reason` and `metadata`.
fn with_error_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    metadata: Vec<(&str, String)>,
) -> Status {
    let metadata = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect::<HashMap<_, _>>();
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}

/// FAILED_PRECONDITION for a step that `kind` `id` (a case) refuses in its
/// state: an `ErrorInfo` of `reason` with `metadata` and the case's id and
/// kind, and a `PreconditionFailure` whose subject is the case.
fn case_refused(
    message: String,
    kind: &str,
    id: &str,
    reason: &str,
    mut metadata: Vec<(&str, String)>,
) -> Status {
    metadata.push(("case_id", id.to_owned()));
    metadata.push(("case_kind", kind.to_owned()));
    let metadata = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect::<HashMap<_, _>>();
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    details.add_precondition_failure_violation(reason, format!("{kind}s/{id}"), message.clone());
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// An instant as ErrorInfo metadata: RFC 3339 in UTC.
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The metadata of a refusal that names a stage and its due instant.
fn stage_due(stage: Stage, due: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![("stage", stage_name(stage)), ("due_time", instant(due))]
}

/// A store failure as a status.
pub fn store_status(e: &StoreError) -> Status {
    metrics::counter!(
        "mediation_store_errors_total",
        "source" => "request",
        "kind" => e.kind()
    )
    .increment(1);
    match e {
        StoreError::Unavailable(why) => {
            // The store's own reason may already say what to do.
            let advice = if why.contains("retry") || why.contains("again") {
                ""
            } else {
                "; retry shortly"
            };
            Status::unavailable(format!("the event store is unavailable: {why}{advice}"))
        }
        // The server already tried again; like an outage, this is for the
        // client to retry, with the same request id, after a moment.
        StoreError::Contention => Status::unavailable(
            "the event store aborted a transaction that conflicted with another; \
             nothing was written; retry shortly",
        ),
        StoreError::Busy(why) => with_error_info(
            Code::FailedPrecondition,
            why.clone(),
            "OPERATION_IN_PROGRESS",
            Vec::new(),
        ),
        // The log holds an event of a version this server does not know:
        // the client is told which, since only an upgrade helps.
        StoreError::Unreadable(what) => {
            tracing::error!(error = %what, "event of an unknown type or version in the log");
            with_error_info(
                Code::Internal,
                e.to_string(),
                "EVENT_VERSION_UNKNOWN",
                Vec::new(),
            )
        }
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

/// The status of every refusal and failure of the application.
pub fn status(e: AppError) -> Status {
    match e {
        AppError::InvalidField {
            field,
            description,
            message,
        } => invalid_field_with_message(message, &field, description),
        AppError::PermissionDenied(why) => Status::permission_denied(why),
        AppError::NotFound { kind, id } => not_found(&kind, &id),
        AppError::Dispute { id, creates, error } => dispute_status(error, &id, creates),
        AppError::Petition {
            id,
            creates,
            rpc,
            error,
        } => petition_status(error, &id, creates, rpc),
        AppError::Conflict { kind, id, actual } => {
            let now = actual
                .map(|v| format!(" (it is now at version {v})"))
                .unwrap_or_default();
            let mut metadata = vec![("case_id", id.clone()), ("case_kind", kind.clone())];
            if let Some(v) = actual {
                metadata.push(("current_version", v.to_string()));
            }
            let mut status = with_error_info(
                Code::Aborted,
                format!(
                    "{kind} {id} was changed by another request at the same time{now}; nothing \
                     was written: read it again and retry"
                ),
                CONCURRENT_MODIFICATION,
                metadata,
            );
            if let Some(v) = actual {
                with_current_version(&mut status, v);
            }
            status
        }
        AppError::WrongVersion {
            kind,
            id,
            expected,
            actual,
        } => {
            let mut status = with_error_info(
                Code::Aborted,
                format!(
                    "{kind} {id} is at version {actual}, not the expected {expected}; nothing \
                     was written: read it again and decide whether to retry"
                ),
                VERSION_MISMATCH,
                vec![
                    ("current_version", actual.to_string()),
                    ("expected_version", expected.to_string()),
                    ("case_id", id.clone()),
                    ("case_kind", kind.clone()),
                ],
            );
            with_current_version(&mut status, actual);
            status
        }
        AppError::RequestReused => Status::already_exists(
            "this request_id was already used for a different request; choose a new request_id \
             for every new request and reuse it only to retry the very same request",
        ),
        AppError::PositionNotWritten { field, position } => position_not_written(field, position),
        AppError::NotYet(why) => Status::unavailable(why),
        AppError::ShuttingDown => Status::unavailable("the server is shutting down; retry"),
        AppError::Store(e) => store_status(&e),
    }
}

/// Puts the case's current version in [`CURRENT_VERSION_TRAILER`].
fn with_current_version(status: &mut Status, version: u64) {
    if let Ok(value) = version.to_string().parse() {
        status.metadata_mut().insert(CURRENT_VERSION_TRAILER, value);
    }
}

/// NOT_FOUND for a case that does not exist or that the caller may not see;
/// the two read the same, so that existence does not leak.
pub fn not_found(kind: &str, id: &str) -> Status {
    Status::not_found(format!("no {kind} {id} in your jurisdiction"))
}

/// A dispute's refusal as a status. `creates`: the command may create the
/// dispute.
pub fn dispute_status(e: DisputeError, id: &str, creates: bool) -> Status {
    use DisputeError as E;
    let message = e.to_string();
    let refused =
        |reason: &str, metadata| case_refused(message.clone(), "dispute", id, reason, metadata);
    let bad = |field: &str| invalid_field_with_message(message.clone(), field, message.clone());
    match e {
        E::NotAllowed {
            status: DisputeStatus::New,
            ..
        } => not_found("dispute", id),
        E::NotAllowed { .. } if creates => Status::already_exists(format!(
            "dispute {id} already exists and {message}; choose another dispute_id or leave it \
             empty"
        )),
        E::NotAllowed { action, status } => refused(
            "NOT_ALLOWED",
            vec![
                ("status", status.proto_name().to_owned()),
                ("action", action.to_owned()),
            ],
        ),
        E::AlreadyConsented { party } => refused(
            "ALREADY_CONSENTED",
            vec![("party", party.proto_name().to_owned())],
        ),
        E::AtTopLevel => refused("AT_TOP_LEVEL", Vec::new()),
        E::OralAgreement => refused("ORAL_AGREEMENT", Vec::new()),
        E::ConfirmationAlreadyRequested => refused("CONFIRMATION_ALREADY_REQUESTED", Vec::new()),
        E::NoConfirmationPending => refused("NO_CONFIRMATION_PENDING", Vec::new()),
        E::NoConfirmationAwaitingAcceptance => {
            refused("NO_CONFIRMATION_AWAITING_ACCEPTANCE", Vec::new())
        }
        E::ConfirmationNotAccepted => refused("CONFIRMATION_NOT_ACCEPTED", Vec::new()),
        E::ExtensionsUsedUp { stage, max } => refused(
            "EXTENSIONS_USED_UP",
            vec![
                ("stage", stage_name(stage)),
                ("max_extensions", max.to_string()),
            ],
        ),
        E::ExtensionTooLate { stage, due } => refused("EXTENSION_TOO_LATE", stage_due(stage, due)),
        E::ConfirmationPending => refused("CONFIRMATION_PENDING", Vec::new()),
        E::WindowClosed { stage, due } => refused("WINDOW_CLOSED", stage_due(stage, due)),
        E::AlreadyEvaluated => refused("ALREADY_EVALUATED", Vec::new()),
        E::ClockNotRunning { stage, due } => refused("CLOCK_NOT_RUNNING", stage_due(stage, due)),
        E::ThresholdNotReached {
            stage,
            threshold_percent,
            reached_at,
        } => refused(
            "THRESHOLD_NOT_REACHED",
            vec![
                ("stage", stage_name(stage)),
                ("threshold_percent", threshold_percent.to_string()),
                ("reached_time", instant(reached_at)),
            ],
        ),
        // Every RPC that names a division calls the field `division_code`.
        E::UnknownDivision { .. } | E::NotAbove { .. } | E::NotBelow { .. } => bad("division_code"),
        E::LevelMismatch { .. } => bad("level"),
        E::MissingParty { .. } => bad("parties"),
        E::InvalidThreshold { .. } => bad("threshold_percent"),
        // Input the policy bounds: INVALID_ARGUMENT on the field, with a
        // reason and the bound, so that a client can tell it from a typo.
        E::ExtensionTooLong { stage, days, max } => {
            let mut details = ErrorDetails::with_bad_request_violation("days", message.clone());
            details.set_error_info(
                "EXTENSION_TOO_LONG",
                ERROR_DOMAIN,
                HashMap::from([
                    ("stage".to_owned(), stage_name(stage)),
                    ("days".to_owned(), days.to_string()),
                    ("max_days".to_owned(), max.to_string()),
                ]),
            );
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
    }
}

/// A petition's refusal as a status. `creates`: the command may create the
/// petition; `rpc`: the method, which says what a field is called.
pub fn petition_status(e: PetitionError, id: &str, creates: bool, rpc: &str) -> Status {
    use PetitionError as E;
    let message = e.to_string();
    let refused =
        |reason: &str, metadata| case_refused(message.clone(), "petition", id, reason, metadata);
    let bad = |field: &str| invalid_field_with_message(message.clone(), field, message.clone());
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
        E::NotAllowed { action, status } => refused(
            "NOT_ALLOWED",
            vec![
                ("status", status.proto_name().to_owned()),
                ("action", action.to_owned()),
            ],
        ),
        E::WindowClosed { stage, due } => refused("WINDOW_CLOSED", stage_due(stage, due)),
        E::WindowStillOpen { stage, due } => refused("WINDOW_STILL_OPEN", stage_due(stage, due)),
        E::AlreadyExtended => refused("ALREADY_EXTENDED", Vec::new()),
        E::AlreadyEvaluated => refused("ALREADY_EVALUATED", Vec::new()),
        E::NoReviewForMatter { matter_type } => refused(
            "NO_REVIEW_FOR_MATTER",
            vec![("matter_type", matter_type.proto_name().to_owned())],
        ),
        E::AlreadyFinal { finalised_at } => refused(
            "ALREADY_FINAL",
            vec![("finalised_time", instant(finalised_at))],
        ),
        E::ClockNotRunning { stage, due } => refused("CLOCK_NOT_RUNNING", stage_due(stage, due)),
        E::ThresholdNotReached {
            stage,
            threshold_percent,
            reached_at,
        } => refused(
            "THRESHOLD_NOT_REACHED",
            vec![
                ("stage", stage_name(stage)),
                ("threshold_percent", threshold_percent.to_string()),
                ("reached_time", instant(reached_at)),
            ],
        ),
        E::UnknownDivision { .. } => bad("division_code"),
        E::UnknownComplainedUnit { .. } => bad("complained_unit_id"),
        E::MissingVisitedLevel => bad("visited_level"),
        E::NoRepresentatives | E::TooManyRepresentatives { .. } => bad("representatives"),
        // The one period checked this way per RPC: the report period of an
        // assignment, the days of a hearing.
        E::InvalidDeadline { .. } if rpc == "AssignPetition" => bad("report_within_days"),
        E::InvalidDeadline { .. } | E::ExtensionTooLong { .. } => bad("days"),
        E::UnknownPetition { .. } => bad("repeat_of"),
        E::RepeatNotFinal { id } => refused(
            "REPEAT_NOT_FINAL",
            vec![("repeat_of", id.as_str().to_owned())],
        ),
        E::InvalidThreshold { .. } => bad("threshold_percent"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;
    use mediation_domain::dispute::PartyRole;
    use mediation_domain::values::DivisionCode;

    use super::*;

    fn due() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 16, 0, 0).unwrap()
    }

    /// The reason of `status`'s ErrorInfo, after checking its domain.
    fn reason(status: &Status) -> String {
        let info = status
            .get_details_error_info()
            .unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
        assert_eq!(info.domain, ERROR_DOMAIN);
        info.reason
    }

    fn is_upper_snake(reason: &str) -> bool {
        !reason.is_empty()
            && reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
    }

    #[test]
    fn every_failed_precondition_names_a_reason_of_its_own() {
        let disputes = [
            DisputeError::NotAllowed {
                action: "hold a session",
                status: DisputeStatus::Registered,
            },
            DisputeError::AlreadyConsented {
                party: PartyRole::Applicant,
            },
            DisputeError::AtTopLevel,
            DisputeError::OralAgreement,
            DisputeError::ConfirmationAlreadyRequested,
            DisputeError::NoConfirmationPending,
            DisputeError::NoConfirmationAwaitingAcceptance,
            DisputeError::ConfirmationNotAccepted,
            DisputeError::ConfirmationPending,
            DisputeError::ExtensionsUsedUp {
                stage: Stage::Mediation,
                max: 1,
            },
            DisputeError::ExtensionTooLate {
                stage: Stage::Mediation,
                due: due(),
            },
            DisputeError::WindowClosed {
                stage: Stage::JudicialConfirmationWindow,
                due: due(),
            },
            DisputeError::AlreadyEvaluated,
            DisputeError::ClockNotRunning {
                stage: Stage::Mediation,
                due: due(),
            },
            DisputeError::ThresholdNotReached {
                stage: Stage::Mediation,
                threshold_percent: 75,
                reached_at: due(),
            },
        ];
        let mut reasons = BTreeSet::new();
        for e in disputes {
            let status = dispute_status(e, "D-1", false);
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            let reason = reason(&status);
            assert!(is_upper_snake(&reason), "{reason}");
            assert!(reasons.insert(reason.clone()), "{reason} twice");
            let failure = status.get_details_precondition_failure().unwrap();
            assert_eq!(failure.violations[0].subject, "disputes/D-1");
        }
        let petitions = [
            PetitionError::NotAllowed {
                action: "assign",
                status: PetitionStatus::Accepted,
            },
            PetitionError::WindowClosed {
                stage: Stage::ReviewRequest,
                due: due(),
            },
            PetitionError::WindowStillOpen {
                stage: Stage::ReviewRequest,
                due: due(),
            },
            PetitionError::AlreadyExtended,
            PetitionError::AlreadyEvaluated,
            PetitionError::RepeatNotFinal {
                id: mediation_domain::values::CaseId::parse("P-0").unwrap(),
            },
            PetitionError::NoReviewForMatter {
                matter_type: mediation_domain::petition::MatterType::Suggestion,
            },
            PetitionError::AlreadyFinal {
                finalised_at: due(),
            },
            PetitionError::ClockNotRunning {
                stage: Stage::PetitionOpinion,
                due: due(),
            },
            PetitionError::ThresholdNotReached {
                stage: Stage::PetitionOpinion,
                threshold_percent: 50,
                reached_at: due(),
            },
        ];
        let mut reasons = BTreeSet::new();
        for e in petitions {
            let status = petition_status(e, "P-1", false, "AssignPetition");
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            let reason = reason(&status);
            assert!(is_upper_snake(&reason), "{reason}");
            assert!(reasons.insert(reason.clone()), "{reason} twice");
        }
    }

    #[test]
    fn refusals_carry_the_state_that_forbids_them() {
        let status = dispute_status(
            DisputeError::NotAllowed {
                action: "close",
                status: DisputeStatus::Mediating,
            },
            "D-1",
            false,
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "NOT_ALLOWED");
        assert_eq!(info.metadata["status"], "DISPUTE_STATUS_MEDIATING");
        assert_eq!(info.metadata["action"], "close");
        assert_eq!(info.metadata["case_id"], "D-1");
        assert_eq!(info.metadata["case_kind"], "dispute");

        let status = dispute_status(
            DisputeError::WindowClosed {
                stage: Stage::JudicialConfirmationWindow,
                due: due(),
            },
            "D-1",
            false,
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "WINDOW_CLOSED");
        assert_eq!(info.metadata["stage"], "judicial_confirmation_window");
        assert_eq!(info.metadata["due_time"], "2026-03-10T16:00:00Z");
    }

    #[test]
    fn an_extension_longer_than_the_policy_allows_names_the_field_and_the_bound() {
        let status = dispute_status(
            DisputeError::ExtensionTooLong {
                stage: Stage::JudicialConfirmationRuling,
                days: 11,
                max: 10,
            },
            "D-1",
            false,
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "days");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "EXTENSION_TOO_LONG");
        assert_eq!(info.metadata["stage"], "judicial_confirmation_ruling");
        assert_eq!(info.metadata["max_days"], "10");
    }

    #[test]
    fn the_domains_bad_values_name_the_request_field() {
        let division = DivisionCode::parse("990101101201").unwrap();
        let cases = [
            (
                dispute_status(
                    DisputeError::UnknownDivision {
                        division: division.clone(),
                    },
                    "D-1",
                    true,
                ),
                "division_code",
            ),
            (
                dispute_status(
                    DisputeError::MissingParty {
                        role: PartyRole::Respondent,
                    },
                    "D-1",
                    true,
                ),
                "parties",
            ),
            (
                petition_status(
                    PetitionError::InvalidDeadline { days: 0, max: 90 },
                    "P-1",
                    false,
                    "AssignPetition",
                ),
                "report_within_days",
            ),
            (
                petition_status(
                    PetitionError::InvalidDeadline { days: 0, max: 30 },
                    "P-1",
                    false,
                    "RecordHearing",
                ),
                "days",
            ),
            (
                petition_status(
                    PetitionError::NoRepresentatives,
                    "P-1",
                    true,
                    "ReceivePetition",
                ),
                "representatives",
            ),
        ];
        for (status, field) in cases {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let bad = status.get_details_bad_request().unwrap();
            assert_eq!(bad.field_violations[0].field, field, "{status:?}");
            assert_eq!(bad.field_violations[0].description, status.message());
        }
    }

    #[test]
    fn a_stale_expected_version_says_the_current_one_twice() {
        let status = status(AppError::WrongVersion {
            kind: "dispute".into(),
            id: "D-1".into(),
            expected: 5,
            actual: 7,
        });
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(status.metadata().get(CURRENT_VERSION_TRAILER).unwrap(), "7");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, VERSION_MISMATCH);
        assert_eq!(info.metadata["current_version"], "7");
        assert_eq!(info.metadata["expected_version"], "5");
    }

    #[test]
    fn a_lost_race_says_the_current_version_too() {
        let status = status(AppError::Conflict {
            kind: "dispute".into(),
            id: "D-1".into(),
            actual: Some(9),
        });
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(status.metadata().get(CURRENT_VERSION_TRAILER).unwrap(), "9");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, CONCURRENT_MODIFICATION);
        assert_eq!(info.metadata["current_version"], "9");
    }

    #[test]
    fn an_unavailable_store_says_retry_once() {
        let busy = store_status(&StoreError::Unavailable(
            "the database is busy or restarting; retry shortly".into(),
        ));
        assert_eq!(busy.code(), Code::Unavailable);
        assert_eq!(
            busy.message(),
            "the event store is unavailable: the database is busy or restarting; retry shortly"
        );
        let down = store_status(&StoreError::Unavailable("cannot reach the database".into()));
        assert_eq!(
            down.message(),
            "the event store is unavailable: cannot reach the database; retry shortly"
        );
        // A deadlock the store could not retry its way out of: the client's
        // retry is safe (nothing was written).
        let deadlock = store_status(&StoreError::Contention);
        assert_eq!(deadlock.code(), Code::Unavailable);
        assert!(deadlock.message().contains("nothing was written"));
    }

    #[test]
    fn another_operation_under_way_is_a_failed_precondition() {
        let status = store_status(&StoreError::Busy(
            "another rebuild of case_index is running; try again when it has finished".into(),
        ));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().starts_with("another rebuild"));
        assert_eq!(reason(&status), "OPERATION_IN_PROGRESS");
    }

    #[test]
    fn a_position_not_written_is_out_of_range_naming_the_field() {
        let status = position_not_written("min_position", 42);
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(status.message().contains("does not exist yet"));
        assert_eq!(reason(&status), POSITION_NOT_WRITTEN);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "min_position");
    }
}
