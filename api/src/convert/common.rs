//! What the dispute and petition conversions share: the error that names a
//! bad request field, parsers from request fields to domain values, the
//! envelope every command carries, and the helpers that write deadlines,
//! instants and enums into responses.
//!
//! Every parser takes the field's name as the `.proto` spells it, with the
//! path for nested and repeated fields (`body.kind`, `parties[1].name`),
//! so that a client is told exactly which field to fix.

use std::fmt;

use chrono::{DateTime, Utc};
use mediation_app::AppError;
use mediation_app::access::Caller;
use mediation_app::accountability::CaseKind;
use mediation_app::command::{CaseRef, Envelope, RequestId, fingerprint};
use mediation_app::history::AsOfPoint;
use mediation_domain::dispute::{
    AgreementForm, ConfirmationStep, DisputeStatus, EscalationReason, Outcome, PartyRole,
    Performance, Satisfaction, TerminationReason,
};
use mediation_domain::petition::{
    DeliveryMethod, FinalBasis, MatterType, OpinionOutcome, PetitionStatus, Reply, ReviewDecision,
};
use mediation_domain::policy::{Deadline, Stage};
use mediation_domain::values::{
    ActorId, AgencyId, CaseId, DisputeCategory, DivisionCode, InvalidValue, LegalChannel, Level,
    MediationKind, Name, PetitionChannel, PetitionLevel, Risk, Text, UnitRef,
};
use mediation_proto::v1 as pb;
use tonic::Status;

/// A request field that does not hold a valid value. It becomes
/// INVALID_ARGUMENT with the message `invalid {field}: {reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadField {
    /// The field as the `.proto` names it, with its path if nested.
    field: String,
    /// What is wrong, in words a caller can act on.
    reason: String,
}

impl BadField {
    /// A bad value in `field`.
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The domain's reason, under the request's own field name: the domain
    /// names its fields after its types ("name", "text"), not the request's.
    fn from_invalid(field: &str, invalid: InvalidValue) -> Self {
        Self::new(field, invalid.reason)
    }
}

impl fmt::Display for BadField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl From<BadField> for Status {
    /// INVALID_ARGUMENT, with the field in a `google.rpc.BadRequest`.
    fn from(bad: BadField) -> Self {
        crate::error::invalid_field(&bad.field, bad.reason)
    }
}

impl From<BadField> for AppError {
    fn from(bad: BadField) -> Self {
        Self::invalid(bad.field, bad.reason)
    }
}

/// Whether an optional string field was left out. proto3 cannot tell an
/// unset string from an empty one, and a blank one carries nothing either.
fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// Free text that must be given.
pub(crate) fn text(field: &str, value: &str) -> Result<Text, BadField> {
    Text::parse(value).map_err(|e| BadField::from_invalid(field, e))
}

/// Free text that may be left empty.
pub(crate) fn optional_text(field: &str, value: &str) -> Result<Option<Text>, BadField> {
    if is_blank(value) {
        return Ok(None);
    }
    text(field, value).map(Some)
}

/// A short name (a person, a unit, a court) that must be given.
pub(crate) fn name(field: &str, value: &str) -> Result<Name, BadField> {
    Name::parse(value).map_err(|e| BadField::from_invalid(field, e))
}

/// A short name that may be left empty.
pub(crate) fn optional_name(field: &str, value: &str) -> Result<Option<Name>, BadField> {
    if is_blank(value) {
        return Ok(None);
    }
    name(field, value).map(Some)
}

/// A unit named by configuration (an agency id, or a 12-digit division
/// code), if given.
pub(crate) fn optional_unit(field: &str, value: &str) -> Result<Option<UnitRef>, BadField> {
    if is_blank(value) {
        return Ok(None);
    }
    UnitRef::parse(value)
        .map(Some)
        .map_err(|e| BadField::from_invalid(field, e))
}

/// The kind of case a request names in `aggregate_type`. Its error comes
/// after the caller's authorisation for `rpc`, so that PERMISSION_DENIED
/// still comes before INVALID_ARGUMENT.
pub(crate) fn case_kind(caller: &Caller, rpc: &str, value: i32) -> Result<CaseKind, Status> {
    match pb::AggregateType::try_from(value) {
        Ok(pb::AggregateType::Dispute) => Ok(CaseKind::Dispute),
        Ok(pb::AggregateType::Petition) => Ok(CaseKind::Petition),
        _ => {
            caller.authorise(rpc).map_err(crate::error::status)?;
            Err(BadField::new(
                "aggregate_type",
                "must be AGGREGATE_TYPE_DISPUTE or AGGREGATE_TYPE_PETITION",
            )
            .into())
        }
    }
}

/// A timestamp field, if set.
pub(crate) fn optional_time(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, BadField> {
    let Some(at) = at else {
        return Ok(None);
    };
    u32::try_from(at.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(at.seconds, nanos))
        .map(Some)
        .ok_or_else(|| BadField::new(field, "not a valid instant"))
}

/// The point in the past a `Get*AsOf` request names: a time or a log
/// position, one of which must be set.
pub(crate) fn as_of_point(
    time: Option<&prost_types::Timestamp>,
    position: Option<u64>,
) -> Result<AsOfPoint, BadField> {
    match (optional_time("as_of_time", time)?, position) {
        (Some(time), _) => Ok(AsOfPoint::Time(time)),
        (None, Some(position)) => Ok(AsOfPoint::Position(position)),
        (None, None) => Err(BadField::new(
            "point",
            "set as_of_time or as_of_position: the moment to look at",
        )),
    }
}

/// An agency's identifier, such as a mediation body's.
pub(crate) fn agency_id(field: &str, value: &str) -> Result<AgencyId, BadField> {
    AgencyId::parse(value).map_err(|e| BadField::from_invalid(field, e))
}

/// A 12-digit division code that must be given.
pub(crate) fn division_code(field: &str, value: &str) -> Result<DivisionCode, BadField> {
    DivisionCode::parse(value).map_err(|e| {
        let digits = value.trim();
        if digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()) {
            // Twelve digits that name a province: the domain says so.
            BadField::from_invalid(field, e)
        } else {
            // The domain's reason quotes the input, which may be long; the
            // message goes back in a header, so it stays short.
            BadField::new(field, "must be a 12-digit division code")
        }
    })
}

/// A division code that may be left empty, as in a list filter.
pub(crate) fn optional_division_code(
    field: &str,
    value: &str,
) -> Result<Option<DivisionCode>, BadField> {
    if is_blank(value) {
        return Ok(None);
    }
    division_code(field, value).map(Some)
}

/// A case identifier that must be given.
pub(crate) fn case_id(field: &str, value: &str) -> Result<CaseId, BadField> {
    CaseId::parse(value).map_err(|e| BadField::from_invalid(field, e))
}

/// A case identifier that may be left empty.
pub(crate) fn optional_case_id(field: &str, value: &str) -> Result<Option<CaseId>, BadField> {
    if value.is_empty() {
        return Ok(None);
    }
    case_id(field, value).map(Some)
}

/// A local date in ISO 8601 form (YYYY-MM-DD).
pub(crate) fn date(field: &str, value: &str) -> Result<chrono::NaiveDate, BadField> {
    chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| BadField::new(field, "must be a date in the form YYYY-MM-DD"))
}

/// The person in the calling agency who acts.
pub(crate) fn actor_id(field: &str, value: &str) -> Result<ActorId, BadField> {
    ActorId::parse(value).map_err(|e| BadField::from_invalid(field, e))
}

/// A count of days that must lie in `1..=max`.
pub(crate) fn days(field: &str, value: u32, max: u32) -> Result<u32, BadField> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(BadField::new(field, format!("must be 1 to {max} days")))
    }
}

/// The fields every command request carries, so that one code path checks
/// them and hands them to the engine.
pub(crate) trait CommandRequest: prost::Message {
    /// The name of the case id field: `dispute_id` or `petition_id`.
    const CASE_ID_FIELD: &'static str;

    /// The caller-chosen `request_id`.
    fn request_id(&self) -> &str;

    /// The `actor_id`.
    fn actor_id(&self) -> &str;

    /// The case id; may be empty in a command that creates the case.
    fn case_id(&self) -> &str;

    /// The `expected_version`, in commands that have one.
    fn expected_version(&self) -> Option<u64>;
}

/// Whether a command may create its case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// It may: an empty case id asks the server to choose one.
    New,
    /// It acts on an existing case, whose id is required.
    Existing,
}

/// A command request parsed into the application's envelope: what
/// `TryFrom<&pb::…Request>` makes of a request (implemented for every
/// command request by `services::command_service!`).
#[derive(Debug)]
pub(crate) struct Parsed<A>(pub(crate) Envelope<A>);

/// Parses the fields every command carries (`request_id`, `actor_id`, the
/// case id and `expected_version`), then the action with `action`, each
/// field once.
pub(crate) fn envelope<R: CommandRequest, A>(
    r: &R,
    rpc: &'static str,
    case: Case,
    action: fn(&R) -> Result<A, BadField>,
) -> Result<Envelope<A>, AppError> {
    let request_id = RequestId::parse("request_id", r.request_id())?;
    let actor = actor_id("actor_id", r.actor_id())?;
    let expected_version = r.expected_version();
    let case = match case {
        Case::New => CaseRef::New {
            id: optional_case_id(R::CASE_ID_FIELD, r.case_id())?,
            expected_version,
        },
        Case::Existing => CaseRef::Existing {
            id: case_id(R::CASE_ID_FIELD, r.case_id())?,
            expected_version,
        },
    };
    Ok(Envelope {
        rpc,
        request_id,
        actor,
        case,
        action: action(r)?,
        fingerprint: fingerprint(rpc, &r.encode_to_vec()),
    })
}

/// A command's outcome as the API answers it.
pub(crate) fn outcome_to_pb(outcome: mediation_app::Outcome) -> pb::CommandOutcome {
    pb::CommandOutcome {
        case_id: outcome.case_id,
        version: outcome.version,
        position: outcome.position,
        replayed: outcome.replayed,
    }
}

/// Implements [`CommandRequest`] for generated request messages whose case
/// id field is `$case_id`. With `unversioned`, for requests that have no
/// `expected_version`.
macro_rules! command_requests {
    ($case_id:ident: $($request:ident),+ $(,)?) => {
        $(command_requests!(@impl $case_id, $request, |r| r.expected_version);)+
    };
    (unversioned $case_id:ident: $($request:ident),+ $(,)?) => {
        $(command_requests!(@impl $case_id, $request, |_r| None);)+
    };
    (@impl $case_id:ident, $request:ident, |$r:ident| $version:expr) => {
        impl $crate::convert::common::CommandRequest for ::mediation_proto::v1::$request {
            const CASE_ID_FIELD: &'static str = stringify!($case_id);

            fn request_id(&self) -> &str {
                &self.request_id
            }

            fn actor_id(&self) -> &str {
                &self.actor_id
            }

            fn case_id(&self) -> &str {
                &self.$case_id
            }

            fn expected_version(&self) -> Option<u64> {
                let $r = self;
                $version
            }
        }
    };
}
pub(crate) use command_requests;

/// A domain enum and the generated protobuf enum that carries it.
pub(crate) trait ProtoEnum: Copy + 'static {
    /// The generated enum.
    type Proto: Copy + TryFrom<i32> + Into<i32>;

    /// The domain values the protobuf enum can carry, in its order.
    const SENT: &'static [Self];

    /// The domain value of `proto`; `None` for the `*_UNSPECIFIED` value.
    fn from_proto(proto: Self::Proto) -> Option<Self>;

    /// The protobuf value; `*_UNSPECIFIED` for a domain value that the
    /// `.proto` has no name for.
    fn to_proto(self) -> Self::Proto;

    /// The `.proto` name of the value, e.g. `LEVEL_VILLAGE`.
    fn proto_name(self) -> &'static str;
}

/// Implements [`ProtoEnum`] where the generated enum's variants have the
/// domain's names. The matches are exhaustive both ways, so a value added on
/// either side fails to compile until it is mapped here; `unspecified` lists
/// the domain values the `.proto` lacks.
macro_rules! proto_enum {
    (
        $domain:ident => $proto:ident { $($variant:ident),+ $(,)? }
        $(unspecified { $($unsent:ident),+ $(,)? })?
    ) => {
        impl ProtoEnum for $domain {
            type Proto = pb::$proto;

            const SENT: &'static [Self] = &[$(Self::$variant),+];

            fn from_proto(proto: pb::$proto) -> Option<Self> {
                match proto {
                    pb::$proto::Unspecified => None,
                    $(pb::$proto::$variant => Some(Self::$variant),)+
                }
            }

            fn to_proto(self) -> pb::$proto {
                match self {
                    $(Self::$variant => pb::$proto::$variant,)+
                    $($(Self::$unsent => pb::$proto::Unspecified,)+)?
                }
            }

            fn proto_name(self) -> &'static str {
                self.to_proto().as_str_name()
            }
        }
    };
}

// A grid reports disputes but never holds a case: no level in a response
// is ever Grid, and no request may ask for it.
proto_enum!(Level => Level { Village, Town, District } unspecified { Grid });
proto_enum!(Risk => Risk { Green, Yellow, Red });
// The levels a petition may be taken to; as for `Level`, no grid.
proto_enum!(PetitionLevel => PetitionLevel {
    Village, Town, District, City, Province, National
} unspecified { Grid });
proto_enum!(LegalChannel => LegalChannel {
    Litigation, Arbitration, AdministrativeReview, Procuratorate, Discipline
});
proto_enum!(OpinionOutcome => OpinionOutcome { Support, Explain, NotSupport });
proto_enum!(MatterType => MatterType { Suggestion, Accusation, Appeal });
proto_enum!(ReviewDecision => ReviewDecision { Uphold, Amend, Revoke, OrderRedo });
// A dispute a client can see has at least been reported.
proto_enum!(DisputeStatus => DisputeStatus {
    Reported, Registered, Dispatched, Mediating, Agreed, Terminated, Referred, Reviewed, Closed
} unspecified { New });
proto_enum!(DisputeCategory => DisputeCategory {
    Neighbourhood, Family, Land, Labour, Contract, Property, Injury, Demolition, Medical, Other
});
proto_enum!(MediationKind => MediationKind { Peoples, Administrative, Judicial, Arbitration });
proto_enum!(PartyRole => PartyRole { Applicant, Respondent });
proto_enum!(AgreementForm => AgreementForm { Written, Oral });
proto_enum!(TerminationReason => TerminationReason { NoAgreement, PartyWithdrew, Other });
proto_enum!(EscalationReason => EscalationReason {
    TimeExpired, MediationFailed, RedRisk, CrossJurisdiction
});
proto_enum!(Performance => Performance { Performed, PartlyPerformed, NotPerformed });
proto_enum!(Satisfaction => Satisfaction { Satisfied, BasicallySatisfied, Dissatisfied });
proto_enum!(Outcome => DisputeOutcome { Agreement, Terminated, Referred });
proto_enum!(ConfirmationStep => JudicialConfirmationStep {
    AwaitingAcceptance, NotAccepted, AwaitingRuling, Ruled,
});
// A petition a client can see has at least been received.
proto_enum!(PetitionStatus => PetitionStatus {
    Received, Routed, Diverted, NotAccepted, Accepted, Answered, UnderReview, Reviewed,
    UnderReReview, Final
} unspecified { New });
proto_enum!(PetitionChannel => PetitionChannel { Online, Letter, Phone, Fax, Visit });
proto_enum!(FinalBasis => FinalBasis { ReReviewed, ReviewWindowLapsed, ReReviewWindowLapsed });
proto_enum!(Reply => Reply { Opinion, ReviewOpinion, ReReviewOpinion });
proto_enum!(DeliveryMethod => DeliveryMethod { InPerson, Post, Electronic });

/// The accepted names of `E`, for messages.
fn expected<E: ProtoEnum>() -> String {
    E::SENT
        .iter()
        .map(|v| v.proto_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An enum field that must be set.
pub(crate) fn required_enum<E: ProtoEnum>(field: &str, raw: i32) -> Result<E, BadField> {
    optional_enum(field, raw)?
        .ok_or_else(|| BadField::new(field, format!("must be set to one of {}", expected::<E>())))
}

/// An enum field where `*_UNSPECIFIED` means "not given" (in a filter,
/// "any"). A number the `.proto` does not define is refused rather than
/// read as unset: it comes from a client built on a newer `.proto`, whose
/// intent this server cannot know.
pub(crate) fn optional_enum<E: ProtoEnum>(field: &str, raw: i32) -> Result<Option<E>, BadField> {
    let proto = E::Proto::try_from(raw).map_err(|_| {
        BadField::new(
            field,
            format!("unknown value {raw}; expected one of {}", expected::<E>()),
        )
    })?;
    Ok(E::from_proto(proto))
}

/// A domain enum as the number a response carries.
pub(crate) fn enum_to_pb<E: ProtoEnum>(value: E) -> i32 {
    value.to_proto().into()
}

/// An optional domain enum as a number; `*_UNSPECIFIED` (0) when unset.
pub(crate) fn optional_enum_to_pb<E: ProtoEnum>(value: Option<E>) -> i32 {
    value.map_or(0, enum_to_pb)
}

/// An instant as a protobuf timestamp.
pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    // chrono counts a leap second as a second billion nanoseconds; a
    // Timestamp's nanos must stay below one billion.
    let nanos = at.timestamp_subsec_nanos().min(999_999_999);
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(nanos).unwrap_or(999_999_999),
    }
}

/// The name a stage has in storage and on the wire (`village_handling`):
/// the serde name, so that the two cannot drift apart.
pub(crate) fn stage_name(stage: Stage) -> String {
    match serde_json::to_value(stage) {
        Ok(serde_json::Value::String(name)) => name,
        // A fieldless enum always serialises to its name.
        _ => String::new(),
    }
}

/// A deadline as a response carries it.
pub(crate) fn deadline_to_pb(deadline: &Deadline) -> pb::Deadline {
    pb::Deadline {
        stage: stage_name(deadline.stage),
        due_time: Some(timestamp(deadline.due)),
        last_day: deadline.last_day.format("%Y-%m-%d").to_string(),
        provisional: deadline.provisional,
    }
}

/// An optional value as a proto3 string, empty when unset.
pub(crate) fn string_or_empty(value: Option<&impl fmt::Display>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use tonic::Code;

    use super::*;

    fn message(bad: BadField) -> String {
        let status = Status::from(bad);
        assert_eq!(status.code(), Code::InvalidArgument);
        status.message().to_owned()
    }

    #[test]
    fn a_bad_field_becomes_invalid_argument_naming_the_field() {
        let bad = name("parties[1].name", "  ").unwrap_err();
        assert_eq!(
            message(bad.clone()),
            "invalid parties[1].name: must not be empty"
        );
        // ...in the message and in a google.rpc.BadRequest.
        use tonic_types::StatusExt as _;
        let details = Status::from(bad).get_details_bad_request().unwrap();
        assert_eq!(details.field_violations.len(), 1);
        assert_eq!(details.field_violations[0].field, "parties[1].name");
        assert_eq!(details.field_violations[0].description, "must not be empty");
    }

    #[test]
    fn text_and_names_keep_the_domain_reason_under_the_request_field() {
        assert_eq!(text("summary", " facts ").unwrap().as_str(), "facts");
        let long = "x".repeat(Text::MAX_CHARS + 1);
        assert_eq!(
            message(text("summary", &long).unwrap_err()),
            "invalid summary: longer than 10000 characters"
        );
        assert_eq!(
            message(name("court", "a\nb").unwrap_err()),
            "invalid court: contains control characters"
        );
    }

    #[test]
    fn empty_or_blank_optional_strings_are_unset() {
        assert_eq!(optional_text("note", "").unwrap(), None);
        assert_eq!(optional_text("note", " \n ").unwrap(), None);
        assert_eq!(optional_name("grid", "").unwrap(), None);
        assert_eq!(optional_division_code("division_code", "").unwrap(), None);
        assert_eq!(optional_case_id("repeat_of", "").unwrap(), None);
        assert!(optional_text("note", "a\u{7}").is_err());
        assert_eq!(
            optional_name("grid", "Grid 3").unwrap().unwrap().as_str(),
            "Grid 3"
        );
    }

    #[test]
    fn division_codes_are_twelve_digits_without_echoing_long_input() {
        assert_eq!(
            division_code("division_code", "990101001201")
                .unwrap()
                .as_str(),
            "990101001201"
        );
        assert_eq!(
            message(division_code("division_code", &"9".repeat(5000)).unwrap_err()),
            "invalid division_code: must be a 12-digit division code"
        );
        let province = message(division_code("division_code", "990000000000").unwrap_err());
        assert!(
            province.starts_with("invalid division_code: "),
            "{province}"
        );
        assert!(province.contains("province"), "{province}");
    }

    #[test]
    fn case_ids_follow_the_domain_rules() {
        assert!(case_id("dispute_id", "D-2026_001").is_ok());
        assert_eq!(
            message(case_id("dispute_id", "").unwrap_err()),
            "invalid dispute_id: must be 1 to 64 characters"
        );
        assert!(
            message(case_id("petition_id", "a b").unwrap_err())
                .starts_with("invalid petition_id: ")
        );
    }

    #[test]
    fn actor_ids_must_parse() {
        assert_eq!(actor_id("actor_id", "clerk-7").unwrap().as_str(), "clerk-7");
        assert_eq!(
            message(actor_id("actor_id", " ").unwrap_err()),
            "invalid actor_id: must not be empty"
        );
    }

    #[test]
    fn required_enums_must_be_set_to_a_known_value() {
        let level: Level = required_enum("level", pb::Level::Town.into()).unwrap();
        assert_eq!(level, Level::Town);
        assert_eq!(
            message(required_enum::<Level>("level", 0).unwrap_err()),
            "invalid level: must be set to one of LEVEL_VILLAGE, LEVEL_TOWN, LEVEL_DISTRICT"
        );
        assert_eq!(
            message(required_enum::<Risk>("risk", 42).unwrap_err()),
            "invalid risk: unknown value 42; expected one of RISK_GREEN, RISK_YELLOW, RISK_RED"
        );
    }

    #[test]
    fn optional_enums_read_unspecified_as_unset_but_refuse_unknown_numbers() {
        assert_eq!(optional_enum::<Risk>("risk", 0).unwrap(), None);
        assert_eq!(optional_enum::<Risk>("risk", 3).unwrap(), Some(Risk::Red));
        assert!(
            message(optional_enum::<Risk>("risk", -1).unwrap_err())
                .starts_with("invalid risk: unknown value -1")
        );
    }

    /// Every domain value the `.proto` can carry survives the round trip,
    /// and every number the `.proto` defines means a domain value.
    fn round_trips<E: ProtoEnum + PartialEq + fmt::Debug>() {
        for &value in E::SENT {
            assert_ne!(enum_to_pb(value), 0, "{value:?}");
            assert_eq!(
                optional_enum::<E>("f", enum_to_pb(value)).unwrap(),
                Some(value)
            );
        }
        let defined = (1..).take_while(|n| E::Proto::try_from(*n).is_ok()).count();
        assert_eq!(defined, E::SENT.len());
    }

    #[test]
    fn every_enum_maps_both_ways() {
        round_trips::<Level>();
        round_trips::<Risk>();
        round_trips::<LegalChannel>();
        round_trips::<OpinionOutcome>();
        round_trips::<DisputeStatus>();
        round_trips::<DisputeCategory>();
        round_trips::<MediationKind>();
        round_trips::<PartyRole>();
        round_trips::<AgreementForm>();
        round_trips::<TerminationReason>();
        round_trips::<EscalationReason>();
        round_trips::<Performance>();
        round_trips::<Satisfaction>();
        round_trips::<Outcome>();
        round_trips::<PetitionStatus>();
        round_trips::<PetitionChannel>();
        round_trips::<FinalBasis>();
    }

    #[test]
    fn domain_values_without_a_proto_name_go_out_unspecified() {
        assert_eq!(enum_to_pb(Level::Grid), 0);
        assert_eq!(enum_to_pb(DisputeStatus::New), 0);
        assert_eq!(enum_to_pb(PetitionStatus::New), 0);
        assert_eq!(optional_enum_to_pb::<Risk>(None), 0);
        assert_eq!(
            enum_to_pb(PetitionStatus::UnderReReview),
            i32::from(pb::PetitionStatus::UnderReReview)
        );
    }

    #[test]
    fn deadlines_carry_the_stage_name_instant_and_local_day() {
        let due = Utc.with_ymd_and_hms(2026, 3, 10, 16, 0, 0).unwrap();
        let deadline = Deadline {
            stage: Stage::VillageHandling,
            due,
            last_day: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
            provisional: true,
        };
        let pb = deadline_to_pb(&deadline);
        assert_eq!(pb.stage, "village_handling");
        assert_eq!(pb.last_day, "2026-03-10");
        assert!(pb.provisional);
        assert_eq!(
            pb.due_time,
            Some(prost_types::Timestamp {
                seconds: due.timestamp(),
                nanos: 0
            })
        );
        assert_eq!(stage_name(Stage::ReReviewRequest), "re_review_request");
    }

    /// The envelope's error, as the client reads it.
    fn refused(e: AppError) -> String {
        crate::error::status(e).message().to_owned()
    }

    fn unit(_: &impl CommandRequest) -> Result<(), BadField> {
        Ok(())
    }

    #[test]
    fn envelopes_parse_request_actor_and_case_ids_once() {
        let good = pb::HoldSessionRequest {
            request_id: "r-1".into(),
            dispute_id: "D-1".into(),
            expected_version: Some(3),
            actor_id: "mediator-1".into(),
            summary: "first session".into(),
        };
        let parsed = envelope(&good, "HoldSession", Case::Existing, unit).unwrap();
        assert_eq!(parsed.request_id.as_str(), "r-1");
        assert_eq!(parsed.actor.as_str(), "mediator-1");
        assert_eq!(
            parsed.case,
            CaseRef::Existing {
                id: CaseId::parse("D-1").unwrap(),
                expected_version: Some(3)
            }
        );
        assert_eq!(
            parsed.fingerprint,
            fingerprint("HoldSession", &prost::Message::encode_to_vec(&good))
        );

        let no_id = pb::HoldSessionRequest {
            dispute_id: String::new(),
            ..good.clone()
        };
        let e = envelope(&no_id, "HoldSession", Case::Existing, unit).unwrap_err();
        assert!(refused(e).starts_with("invalid dispute_id"));
        let no_actor = pb::HoldSessionRequest {
            actor_id: String::new(),
            ..good.clone()
        };
        let e = envelope(&no_actor, "HoldSession", Case::Existing, unit).unwrap_err();
        assert!(refused(e).starts_with("invalid actor_id"));
        for (request_id, why) in [
            (
                "",
                "invalid request_id: must not be empty: choose a unique id",
            ),
            (
                &"r".repeat(129),
                "invalid request_id: longer than 128 characters",
            ),
            ("r\u{0}1", "invalid request_id: contains control characters"),
        ] {
            let bad = pb::HoldSessionRequest {
                request_id: request_id.to_owned(),
                ..good.clone()
            };
            let e = envelope(&bad, "HoldSession", Case::Existing, unit).unwrap_err();
            assert!(refused(e).starts_with(why));
        }

        // A command that creates the case may leave the id to the server.
        let report = pb::ReceivePetitionRequest {
            request_id: "r-2".into(),
            actor_id: "clerk".into(),
            ..Default::default()
        };
        let parsed = envelope(&report, "ReceivePetition", Case::New, unit).unwrap();
        assert_eq!(
            parsed.case,
            CaseRef::New {
                id: None,
                expected_version: None
            }
        );
        let bad_id = pb::ReceivePetitionRequest {
            petition_id: "no spaces".into(),
            ..report
        };
        let e = envelope(&bad_id, "ReceivePetition", Case::New, unit).unwrap_err();
        assert!(refused(e).starts_with("invalid petition_id"));
    }
}
