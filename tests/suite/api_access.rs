//! Who may do what, end to end: authentication, the authorisation matrix of
//! roles × RPCs × scope, cases outside a caller's scope that read as if they
//! did not exist, the confidentiality of petitioners and parties, and the
//! status (code and message) of each kind of bad request.
//!
//! Every test talks gRPC to the real server with the five test agencies of
//! `mediation_tests::server`. Lists are read with `min_position`, and the
//! log until it has reached a known position, so that nothing depends on
//! timing.

use std::collections::BTreeSet;

use mediation_app::access::required_roles;
use mediation_domain::values::DivisionCode;
use mediation_proto::v1 as pb;
use mediation_proto::v1::dispute_service_client::DisputeServiceClient;
use mediation_proto::v1::event_service_client::EventServiceClient;
use mediation_proto::v1::petition_service_client::PetitionServiceClient;
use mediation_tests::TestDb;
use mediation_tests::server::{
    AGENCIES, ANALYST, Agency, Bearer, DISTRICT_SUPERVISOR, PARTNER, TOWN_101, TOWN_102, TestServer,
};

use crate::details::{assert_bad_field, error_info};
use prost::Message as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

on_both_backends!(
    calls_without_a_valid_token_are_unauthenticated_but_health_and_reflection_are_open,
    the_authorisation_matrix_follows_roles_and_scope,
    a_case_outside_the_scope_reads_as_if_it_did_not_exist,
    petitioners_and_parties_are_withheld_from_those_who_may_not_see_them,
    the_unit_an_accusation_is_about_sees_nothing_of_it,
    bad_requests_get_the_status_that_names_the_problem,
    registering_a_reported_dispute_honours_expected_version,
    a_take_over_must_name_a_division_in_the_callers_scope,
);

type Disputes = DisputeServiceClient<InterceptedService<Channel, Bearer>>;
type Petitions = PetitionServiceClient<InterceptedService<Channel, Bearer>>;
type Events = EventServiceClient<InterceptedService<Channel, Bearer>>;

/// The example district.
const DISTRICT: &str = "990101000000";
/// Town 101 (Qingshan Town), TOWN_101's and PARTNER's scope.
const TOWN_101_CODE: &str = "990101101000";
/// Town 102 (Baisha Town), TOWN_102's scope.
const TOWN_102_CODE: &str = "990101102000";
/// Shangping Village, in town 101.
const VILLAGE_101: &str = "990101101201";
/// Xiaping Village, also in town 101.
const VILLAGE_101_B: &str = "990101101202";
/// Shatou Village, in town 102.
const VILLAGE_102: &str = "990101102201";
/// Dukou Village, also in town 102.
const VILLAGE_102_B: &str = "990101102202";

/// The parties of every dispute these tests register, and the petitioners
/// of their petitions: distinctive, so that a search of everything a
/// withheld role receives cannot match anything else.
const APPLICANT: &str = "Chen Meilan";
const RESPONDENT: &str = "Zhou Guoqiang";
const PETITIONER: &str = "Wang Xiuying";
const PETITIONER_CONTACT: &str = "13912345678";
const OTHER_PETITIONER: &str = "Li Guifen";
const OTHER_CONTACT: &str = "13800001111";

const ACTOR: &str = "officer-1";

/// Words of the database and of Rust panics that no client may ever read.
const INTERNALS: &[&str] = &["sqlx", "SQL", "syntax", "constraint", "panicked"];

// The specification the matrix holds the server to: which roles may call
// each RPC. It is written out here rather than read from auth.rs so that a
// change there shows up as a failing test; `the_role_table_is_complete`
// checks that the two agree and that every RPC of the `.proto` is listed.
const READERS: &[&str] = &["registrar", "mediator", "supervisor", "analyst", "partner"];
const INTAKE: &[&str] = &["registrar", "mediator", "supervisor"];
const REGISTRARS: &[&str] = &["registrar", "supervisor"];
const MEDIATORS: &[&str] = &["mediator", "supervisor"];
const SUPERVISORS: &[&str] = &["supervisor"];

const RULES: &[(&str, &[&str])] = &[
    ("GetDispute", READERS),
    ("ListDisputes", READERS),
    ("GetPetition", READERS),
    ("ListPetitions", READERS),
    ("ReadEvents", READERS),
    ("SubscribeEvents", READERS),
    ("GetDisputeAsOf", READERS),
    ("GetPetitionAsOf", READERS),
    ("GetCaseHistory", READERS),
    ("ListClocks", READERS),
    ("ListBreachesByBody", READERS),
    ("GetResolutionStats", READERS),
    ("GetPetitionStats", READERS),
    ("ListCaseload", READERS),
    ("ListRepeatPetitions", READERS),
    ("ListSkippedLevelVisits", READERS),
    ("ListProjections", READERS),
    ("GetCaseAccountability", READERS),
    ("ReportDispute", INTAKE),
    ("RegisterDispute", REGISTRARS),
    ("DispatchDispute", REGISTRARS),
    ("EvaluateDispute", REGISTRARS),
    ("RecordConsent", MEDIATORS),
    ("HoldSession", MEDIATORS),
    ("ReachAgreement", MEDIATORS),
    ("ExtendMediation", MEDIATORS),
    ("TerminateMediation", MEDIATORS),
    ("EscalateDispute", MEDIATORS),
    ("ReferDispute", MEDIATORS),
    ("RequestJudicialConfirmation", MEDIATORS),
    ("AcceptJudicialConfirmation", MEDIATORS),
    ("ExtendJudicialConfirmation", MEDIATORS),
    ("RuleJudicialConfirmation", MEDIATORS),
    ("RecordFollowUp", MEDIATORS),
    ("TakeOverDispute", SUPERVISORS),
    ("SendDownDispute", SUPERVISORS),
    ("ReviewDispute", SUPERVISORS),
    ("CloseDispute", SUPERVISORS),
    ("ReopenDispute", SUPERVISORS),
    ("AssignDisputeOfficial", REGISTRARS),
    ("AssignPetitionOfficial", REGISTRARS),
    ("ReceivePetition", REGISTRARS),
    ("ForwardPetition", REGISTRARS),
    ("AssignPetition", REGISTRARS),
    ("DivertPetition", REGISTRARS),
    ("RejectPetition", REGISTRARS),
    ("RequestReview", REGISTRARS),
    ("RequestReReview", REGISTRARS),
    ("FinalisePetition", REGISTRARS),
    ("RecordGroupHeadcount", REGISTRARS),
    ("EvaluatePetition", REGISTRARS),
    ("ObjectToPetition", MEDIATORS),
    ("AcceptPetition", MEDIATORS),
    ("IssueOpinion", MEDIATORS),
    ("RecordHearing", MEDIATORS),
    ("RecordPetitionDelivery", MEDIATORS),
    ("ExtendPetitionHandling", SUPERVISORS),
    ("IssueReviewOpinion", SUPERVISORS),
    ("IssueReReviewOpinion", SUPERVISORS),
    ("ForgetPerson", SUPERVISORS),
];

/// Every DisputeService command on an existing dispute: what
/// [`dispute_command`] sends.
const DISPUTE_COMMANDS: &[&str] = &[
    "DispatchDispute",
    "RecordConsent",
    "HoldSession",
    "ReachAgreement",
    "ExtendMediation",
    "TerminateMediation",
    "EscalateDispute",
    "TakeOverDispute",
    "SendDownDispute",
    "ReferDispute",
    "RequestJudicialConfirmation",
    "AcceptJudicialConfirmation",
    "ExtendJudicialConfirmation",
    "RuleJudicialConfirmation",
    "RecordFollowUp",
    "ReviewDispute",
    "CloseDispute",
    "EvaluateDispute",
    "ReopenDispute",
    "AssignDisputeOfficial",
];

/// Every PetitionService command on an existing petition: what
/// [`petition_command`] sends.
const PETITION_COMMANDS: &[&str] = &[
    "ForwardPetition",
    "AssignPetition",
    "DivertPetition",
    "RejectPetition",
    "ObjectToPetition",
    "AcceptPetition",
    "ExtendPetitionHandling",
    "IssueOpinion",
    "RequestReview",
    "RecordHearing",
    "IssueReviewOpinion",
    "RequestReReview",
    "IssueReReviewOpinion",
    "RecordPetitionDelivery",
    "RecordGroupHeadcount",
    "EvaluatePetition",
    "FinalisePetition",
    "AssignPetitionOfficial",
];

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A fresh request id, labelled for the server log.
fn rid(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

fn parties() -> Vec<pb::Party> {
    vec![
        pb::Party {
            role: pb::PartyRole::Applicant.into(),
            name: APPLICANT.into(),
        },
        pb::Party {
            role: pb::PartyRole::Respondent.into(),
            name: RESPONDENT.into(),
        },
    ]
}

fn report_request(village: &str, dispute_id: &str) -> pb::ReportDisputeRequest {
    pb::ReportDisputeRequest {
        request_id: rid("report"),
        dispute_id: dispute_id.into(),
        actor_id: ACTOR.into(),
        division_code: village.into(),
        grid: "Grid 3".into(),
        summary: "A boundary wall was built a metre into the neighbour's yard.".into(),
    }
}

fn register_request(village: &str, dispute_id: &str) -> pb::RegisterDisputeRequest {
    pb::RegisterDisputeRequest {
        request_id: rid("register"),
        dispute_id: dispute_id.into(),
        expected_version: None,
        actor_id: ACTOR.into(),
        division_code: village.into(),
        level: pb::Level::Village.into(),
        category: pb::DisputeCategory::Neighbourhood.into(),
        risk: pb::Risk::Yellow.into(),
        summary: "A boundary wall was built a metre into the neighbour's yard.".into(),
        parties: parties(),
    }
}

fn receive_request(
    village: &str,
    petition_id: &str,
    complained_unit: &str,
    petitioner: (&str, &str),
) -> pb::ReceivePetitionRequest {
    pb::ReceivePetitionRequest {
        request_id: rid("receive"),
        petition_id: petition_id.into(),
        actor_id: ACTOR.into(),
        channel: pb::PetitionChannel::Letter.into(),
        petitioner: Some(pb::Petitioner {
            name: petitioner.0.into(),
            contact: petitioner.1.into(),
        }),
        complained_unit: complained_unit.into(),
        facts: "The road through the village has not been repaired since the floods.".into(),
        division_code: village.into(),
        competent_level: pb::Level::Village.into(),
        visited_level: pb::Level::Unspecified.into(),
        representatives: 0,
        repeat_of: String::new(),
        ..Default::default()
    }
}

async fn register(client: &mut Disputes, village: &str, dispute_id: &str) -> pb::CommandOutcome {
    client
        .register_dispute(register_request(village, dispute_id))
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

async fn receive(
    client: &mut Petitions,
    village: &str,
    petition_id: &str,
    complained_unit: &str,
    petitioner: (&str, &str),
) -> pb::CommandOutcome {
    client
        .receive_petition(receive_request(
            village,
            petition_id,
            complained_unit,
            petitioner,
        ))
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

/// Sends `rpc`, one of [`DISPUTE_COMMANDS`], on dispute `id`, with a fresh
/// request id and otherwise well-formed fields, so that only the caller,
/// the case and its state decide the answer. `home` is the village the case
/// is in: a take-over names its town and a send-down another village of
/// that town, so that the division a command moves the case to lies in the
/// same scope as the case.
async fn dispute_command(
    client: &mut Disputes,
    rpc: &str,
    id: &str,
    home: &str,
    expected_version: Option<u64>,
) -> Result<pb::CommandOutcome, Status> {
    let request_id = rid(rpc);
    let dispute_id = id.to_owned();
    let actor_id = ACTOR.to_owned();
    macro_rules! send {
        ($method:ident, $request:ident { $($field:ident: $value:expr),* $(,)? }) => {
            client
                .$method(pb::$request {
                    request_id,
                    dispute_id,
                    expected_version,
                    actor_id,
                    $($field: $value,)*
                })
                .await
                .map(|r| r.into_inner().outcome.expect("a command answers with its outcome"))
        };
    }
    match rpc {
        "DispatchDispute" => send!(
            dispatch_dispute,
            DispatchDisputeRequest {
                body: Some(pb::MediationBody {
                    body_id: "shangping-committee".into(),
                    name: "Shangping Mediation Committee".into(),
                    kind: pb::MediationKind::Peoples.into(),
                }),
                mediator: "Zhao Liu".into(),
            }
        ),
        "RecordConsent" => send!(
            record_consent,
            RecordConsentRequest {
                party: pb::PartyRole::Applicant.into(),
                consents: true,
                reason: String::new(),
            }
        ),
        "HoldSession" => send!(
            hold_session,
            HoldSessionRequest {
                summary: "Both sides were heard.".into(),
            }
        ),
        "ReachAgreement" => send!(
            reach_agreement,
            ReachAgreementRequest {
                form: pb::AgreementForm::Written.into(),
                terms: "The wall moves back one metre.".into(),
            }
        ),
        "ExtendMediation" => send!(
            extend_mediation,
            ExtendMediationRequest {
                days: 10,
                reason: "Both parties asked for more time.".into(),
            }
        ),
        "TerminateMediation" => send!(
            terminate_mediation,
            TerminateMediationRequest {
                reason: pb::TerminationReason::NoAgreement.into(),
                note: "No common ground.".into(),
                legal_routes_explained: true,
            }
        ),
        "EscalateDispute" => send!(
            escalate_dispute,
            EscalateDisputeRequest {
                reason: pb::EscalationReason::MediationFailed.into(),
            }
        ),
        "TakeOverDispute" => send!(
            take_over_dispute,
            TakeOverDisputeRequest {
                division_code: town_of(home),
            }
        ),
        "SendDownDispute" => send!(
            send_down_dispute,
            SendDownDisputeRequest {
                division_code: neighbour_of(home).into(),
            }
        ),
        "ReferDispute" => send!(
            refer_dispute,
            ReferDisputeRequest {
                channel: pb::LegalChannel::Litigation.into(),
                note: "The parties were told how to sue.".into(),
            }
        ),
        "RequestJudicialConfirmation" => send!(
            request_judicial_confirmation,
            RequestJudicialConfirmationRequest {
                court: "District People's Court".into(),
            }
        ),
        "AcceptJudicialConfirmation" => send!(
            accept_judicial_confirmation,
            AcceptJudicialConfirmationRequest {
                accepted: true,
                note: String::new(),
            }
        ),
        "ExtendJudicialConfirmation" => send!(
            extend_judicial_confirmation,
            ExtendJudicialConfirmationRequest {
                days: 10,
                reason: "The court's president approved more time.".into(),
            }
        ),
        "RuleJudicialConfirmation" => send!(
            rule_judicial_confirmation,
            RuleJudicialConfirmationRequest {
                confirmed: true,
                note: String::new(),
            }
        ),
        "RecordFollowUp" => send!(
            record_follow_up,
            RecordFollowUpRequest {
                performance: pb::Performance::Performed.into(),
                note: "The wall was moved.".into(),
            }
        ),
        "ReviewDispute" => send!(
            review_dispute,
            ReviewDisputeRequest {
                approved: true,
                note: String::new(),
            }
        ),
        "CloseDispute" => send!(close_dispute, CloseDisputeRequest {}),
        "EvaluateDispute" => send!(
            evaluate_dispute,
            EvaluateDisputeRequest {
                satisfaction: pb::Satisfaction::Satisfied.into(),
                note: String::new(),
            }
        ),
        "ReopenDispute" => send!(
            reopen_dispute,
            ReopenDisputeRequest {
                reason: "The wall was rebuilt where it stood.".into(),
            }
        ),
        "AssignDisputeOfficial" => send!(
            assign_dispute_official,
            AssignDisputeOfficialRequest {
                official: "Deputy Town Head Liu".into(),
            }
        ),
        other => panic!("{other} is not a command on an existing dispute"),
    }
}

/// The town a village lies in.
fn town_of(village: &str) -> String {
    format!("{}000", &village[..9])
}

/// Another village of the same town.
fn neighbour_of(village: &str) -> &'static str {
    match village {
        VILLAGE_101 => VILLAGE_101_B,
        VILLAGE_101_B => VILLAGE_101,
        VILLAGE_102 => VILLAGE_102_B,
        other => panic!("no neighbour for {other} in this suite"),
    }
}

/// Sends `rpc`, one of [`PETITION_COMMANDS`], on petition `id`, like
/// [`dispute_command`].
async fn petition_command(
    client: &mut Petitions,
    rpc: &str,
    id: &str,
    expected_version: Option<u64>,
) -> Result<pb::CommandOutcome, Status> {
    let request_id = rid(rpc);
    let petition_id = id.to_owned();
    let actor_id = ACTOR.to_owned();
    macro_rules! send {
        ($method:ident, $request:ident { $($field:ident: $value:expr),* $(,)? }) => {
            client
                .$method(pb::$request {
                    request_id,
                    petition_id,
                    expected_version,
                    actor_id,
                    $($field: $value,)*
                })
                .await
                .map(|r| r.into_inner().outcome.expect("a command answers with its outcome"))
        };
    }
    match rpc {
        "ForwardPetition" => send!(
            forward_petition,
            ForwardPetitionRequest {
                to_unit: "Town 101 Water Office".into(),
            }
        ),
        "AssignPetition" => send!(
            assign_petition,
            AssignPetitionRequest {
                to_unit: "Town 101 Water Office".into(),
                report_within_days: 15,
            }
        ),
        "DivertPetition" => send!(
            divert_petition,
            DivertPetitionRequest {
                channel: pb::LegalChannel::AdministrativeReview.into(),
                note: "This is a matter for administrative review.".into(),
            }
        ),
        "RejectPetition" => send!(
            reject_petition,
            RejectPetitionRequest {
                reason: "Outside the remit of petition work.".into(),
                repeat_of: String::new(),
            }
        ),
        "ObjectToPetition" => send!(
            object_to_petition,
            ObjectToPetitionRequest {
                reason: "The road belongs to the county.".into(),
            }
        ),
        "AcceptPetition" => send!(accept_petition, AcceptPetitionRequest {}),
        "ExtendPetitionHandling" => send!(
            extend_petition_handling,
            ExtendPetitionHandlingRequest {
                days: 30,
                reason: "The repairs need a survey.".into(),
                approved_by: "Director Sun".into(),
            }
        ),
        "IssueOpinion" => send!(
            issue_opinion,
            IssueOpinionRequest {
                outcome: pb::OpinionOutcome::Support.into(),
                summary: "The road will be repaired by June.".into(),
            }
        ),
        "RequestReview" => send!(
            request_review,
            RequestReviewRequest {
                reason: "June is too late.".into(),
            }
        ),
        "RecordHearing" => send!(record_hearing, RecordHearingRequest { days: 3 }),
        "RecordPetitionDelivery" => send!(
            record_petition_delivery,
            RecordPetitionDeliveryRequest {
                reply: pb::Reply::Opinion.into(),
                delivered_on: "2026-03-02".into(),
                method: pb::DeliveryMethod::Post.into(),
            }
        ),
        "RecordGroupHeadcount" => send!(
            record_group_headcount,
            RecordGroupHeadcountRequest { headcount: 12 }
        ),
        "AssignPetitionOfficial" => send!(
            assign_petition_official,
            AssignPetitionOfficialRequest {
                official: "Deputy Town Head Liu".into(),
            }
        ),
        "EvaluatePetition" => send!(
            evaluate_petition,
            EvaluatePetitionRequest {
                satisfaction: pb::Satisfaction::Satisfied.into(),
                note: "Content with the answer.".into(),
            }
        ),
        "IssueReviewOpinion" => send!(
            issue_review_opinion,
            IssueReviewOpinionRequest {
                outcome: pb::OpinionOutcome::Support.into(),
                summary: "The opinion stands.".into(),
                decision: pb::ReviewDecision::Uphold.into(),
            }
        ),
        "RequestReReview" => send!(
            request_re_review,
            RequestReReviewRequest {
                reason: "Still too late.".into(),
            }
        ),
        "IssueReReviewOpinion" => send!(
            issue_re_review_opinion,
            IssueReReviewOpinionRequest {
                outcome: pb::OpinionOutcome::Support.into(),
                summary: "The opinion stands; this is final.".into(),
                decision: pb::ReviewDecision::Uphold.into(),
            }
        ),
        "FinalisePetition" => send!(finalise_petition, FinalisePetitionRequest {}),
        other => panic!("{other} is not a command on an existing petition"),
    }
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

async fn get_dispute(client: &mut Disputes, id: &str) -> Result<pb::Dispute, Status> {
    client
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().dispute.expect("a dispute"))
}

async fn get_petition(client: &mut Petitions, id: &str) -> Result<pb::Petition, Status> {
    client
        .get_petition(pb::GetPetitionRequest {
            petition_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().petition.expect("a petition"))
}

/// Every dispute the caller may list, once the list reflects `position`.
async fn list_disputes(client: &mut Disputes, position: u64) -> Vec<pb::Dispute> {
    client
        .list_disputes(pb::ListDisputesRequest {
            min_position: position,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .disputes
}

/// Every petition the caller may list, once the list reflects `position`.
async fn list_petitions(client: &mut Petitions, position: u64) -> Vec<pb::Petition> {
    client
        .list_petitions(pb::ListPetitionsRequest {
            min_position: position,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .petitions
}

/// Reads the log with `request`'s filters from its `after_position` until
/// the reads have reached `through`. The log's head settles a moment after
/// a commit on PostgreSQL, so this reads again rather than once; it never
/// waits on a clock.
async fn read_events(
    client: &mut Events,
    request: pb::ReadEventsRequest,
    through: u64,
) -> Vec<pb::Event> {
    let mut events = Vec::new();
    let mut after = request.after_position;
    loop {
        let page = client
            .read_events(pb::ReadEventsRequest {
                after_position: after,
                page_size: 1000,
                ..request.clone()
            })
            .await
            .unwrap()
            .into_inner();
        events.extend(page.events);
        after = page.last_position;
        if after >= through {
            return events;
        }
        tokio::task::yield_now().await;
    }
}

/// The whole log as `client` may see it, through position `through`.
async fn read_all_events(client: &mut Events, through: u64) -> Vec<pb::Event> {
    read_events(client, pb::ReadEventsRequest::default(), through).await
}

/// Follows the log from the start until the event at `through` arrives,
/// which must be one the caller may see.
async fn subscribe_through(client: &mut Events, through: u64) -> Vec<pb::Event> {
    let mut stream = client
        .subscribe_events(pb::SubscribeEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut events: Vec<pb::Event> = Vec::new();
    while events.last().is_none_or(|e| e.position < through) {
        let message = stream
            .message()
            .await
            .unwrap()
            .expect("the stream stays open while the server runs");
        events.push(message.event.expect("every message carries an event"));
    }
    events
}

fn case_ids(events: &[pb::Event]) -> BTreeSet<String> {
    events.iter().map(|e| e.case_id.clone()).collect()
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// Fails if a status carries database or panic text.
#[track_caller]
fn assert_clean(status: &Status) {
    for word in INTERNALS {
        assert!(
            !status.message().contains(word),
            "the message leaks internals ({word:?}): {:?}",
            status.message()
        );
    }
}

/// The status of a call that must fail with `code`, with a message that
/// mentions each of `needles` and no internals.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needles: &[&str]) -> Status {
    let status = match result {
        Ok(answer) => panic!("expected {code:?}, got {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "the message does not mention {needle:?}: {:?}",
            status.message()
        );
    }
    assert_clean(&status);
    status
}

/// Whether `agency` holds one of the roles that may call `rpc`.
fn holds(agency: &Agency, rpc: &str) -> bool {
    let (_, roles) = RULES
        .iter()
        .find(|(name, _)| *name == rpc)
        .unwrap_or_else(|| panic!("{rpc} is not in the role table"));
    agency.roles.iter().any(|r| roles.contains(r))
}

/// Whether `division` lies in `agency`'s scope.
fn covers(agency: &Agency, division: &str) -> bool {
    DivisionCode::parse(division)
        .unwrap()
        .is_within(&DivisionCode::parse(agency.scope).unwrap())
}

/// What a call must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Success.
    Ok,
    /// PERMISSION_DENIED, naming the RPC and the roles it needs.
    RoleDenied,
    /// PERMISSION_DENIED, because the division named lies outside the scope.
    ScopeDenied,
    /// NOT_FOUND: the case is outside the scope.
    NotFound,
    /// ABORTED: the caller may act, but the expected version is wrong.
    Aborted,
}

/// Why `result` does not match `expected`, if it does not.
fn mismatch<T: std::fmt::Debug>(
    rpc: &str,
    result: &Result<T, Status>,
    expected: Expect,
) -> Option<String> {
    let fits = match (expected, result) {
        (Expect::Ok, Ok(_)) => true,
        (Expect::RoleDenied, Err(s)) => {
            s.code() == Code::PermissionDenied
                && s.message().contains(rpc)
                && s.message().contains("needs one of the roles")
        }
        (Expect::ScopeDenied, Err(s)) => {
            s.code() == Code::PermissionDenied && s.message().contains("outside the jurisdiction")
        }
        (Expect::NotFound, Err(s)) => s.code() == Code::NotFound,
        (Expect::Aborted, Err(s)) => s.code() == Code::Aborted,
        _ => false,
    };
    let clean = match result {
        Err(s) => INTERNALS.iter().all(|w| !s.message().contains(w)),
        Ok(_) => true,
    };
    let answer = match result {
        Ok(ok) => format!("OK {ok:?}"),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    };
    (!fits || !clean).then(|| format!("expected {expected:?}, got {answer}"))
}

/// `status` with `id` written as `<id>`: what two refusals must share so
/// that one does not tell a hidden case from a missing one.
fn shape(status: &Status, id: &str) -> (Code, String) {
    (status.code(), status.message().replace(id, "<id>"))
}

/// Checks that a refusal concerning the hidden case `hidden` is the same,
/// code and message, as the one concerning the case `unknown` that does
/// not exist, and that neither carries the case's version.
#[track_caller]
fn assert_same_absence(
    what: &str,
    hidden: &Status,
    hidden_id: &str,
    unknown: &Status,
    unknown_id: &str,
) {
    assert_eq!(
        shape(hidden, hidden_id),
        shape(unknown, unknown_id),
        "{what}: a case outside the scope answers differently from one that does not exist"
    );
    for status in [hidden, unknown] {
        assert!(
            status
                .metadata()
                .get(mediation_api::error::CURRENT_VERSION_TRAILER)
                .is_none(),
            "{what}: a refusal for a case the caller may not see carries its version: {status:?}"
        );
        assert_clean(status);
    }
}

// ---------------------------------------------------------------------------
// 1. Authentication
// ---------------------------------------------------------------------------

async fn calls_without_a_valid_token_are_unauthenticated_but_health_and_reflection_are_open(
    db: &TestDb,
) {
    let server = TestServer::start(db, true).await;
    let created = register(&mut server.disputes(&TOWN_101), VILLAGE_101, "D-auth").await;
    assert_eq!(created.case_id, "D-auth");

    for (bearer, needle) in [
        (Bearer::none(), "missing credentials"),
        (Bearer::wrong(), "unknown or revoked token"),
    ] {
        let mut disputes = DisputeServiceClient::with_interceptor(server.channel(), bearer.clone());
        let status = refused(
            get_dispute(&mut disputes, "D-auth").await,
            Code::Unauthenticated,
            &[needle],
        );
        // Nothing about the case comes back with the refusal.
        assert!(!status.message().contains("D-auth"), "{status:?}");
        refused(
            disputes
                .report_dispute(report_request(VILLAGE_101, ""))
                .await,
            Code::Unauthenticated,
            &[needle],
        );
        refused(
            disputes
                .list_disputes(pb::ListDisputesRequest::default())
                .await,
            Code::Unauthenticated,
            &[needle],
        );

        let mut petitions =
            PetitionServiceClient::with_interceptor(server.channel(), bearer.clone());
        refused(
            petitions
                .receive_petition(receive_request(
                    VILLAGE_101,
                    "",
                    "Shangping Village Committee",
                    (PETITIONER, PETITIONER_CONTACT),
                ))
                .await,
            Code::Unauthenticated,
            &[needle],
        );

        let mut events = EventServiceClient::with_interceptor(server.channel(), bearer.clone());
        refused(
            events.read_events(pb::ReadEventsRequest::default()).await,
            Code::Unauthenticated,
            &[needle],
        );
        refused(
            events
                .subscribe_events(pb::SubscribeEventsRequest::default())
                .await,
            Code::Unauthenticated,
            &[needle],
        );
    }
    // The unauthenticated report wrote nothing: the log holds the one
    // registration.
    let log = read_all_events(&mut server.events(&DISTRICT_SUPERVISOR), created.position).await;
    assert_eq!(case_ids(&log), BTreeSet::from(["D-auth".to_owned()]));

    // Health answers without a token, for load balancers.
    let mut health = HealthClient::new(server.channel());
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);

    // Reflection answers without a token, for grpcurl and the like, and
    // describes the mediation services.
    let mut reflection = ServerReflectionClient::new(server.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    let names: BTreeSet<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in [
        "mediation.v1.DisputeService",
        "mediation.v1.PetitionService",
        "mediation.v1.EventService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(service), "{service} missing from {names:?}");
    }
    drop(replies);

    server.stop().await;
}

// ---------------------------------------------------------------------------
// 2. The authorisation matrix
// ---------------------------------------------------------------------------

/// The role table above is auth.rs's, and lists every RPC of the `.proto`;
/// the command lists name every command of each service.
fn the_role_table_is_complete() {
    for (rpc, roles) in RULES {
        let server: BTreeSet<String> = required_roles(rpc)
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        let ours: BTreeSet<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        assert_eq!(server, ours, "the roles that may call {rpc}");
    }
    let files =
        prost_types::FileDescriptorSet::decode(mediation_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = BTreeSet::new();
    for file in files.file.iter().filter(|f| f.package() == "mediation.v1") {
        for service in &file.service {
            for method in &service.method {
                methods.insert((service.name().to_owned(), method.name().to_owned()));
            }
        }
    }
    let listed: BTreeSet<&str> = RULES.iter().map(|(rpc, _)| *rpc).collect();
    let in_proto: BTreeSet<&str> = methods.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(
        listed, in_proto,
        "the role table lists exactly the RPCs of the .proto"
    );
    let of = |service: &str| -> BTreeSet<&str> {
        methods
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, m)| m.as_str())
            .collect()
    };
    let mut disputes: BTreeSet<&str> = DISPUTE_COMMANDS.iter().copied().collect();
    disputes.extend([
        "ReportDispute",
        "RegisterDispute",
        "GetDispute",
        "GetDisputeAsOf",
        "ListDisputes",
    ]);
    assert_eq!(disputes, of("DisputeService"));
    let mut petitions: BTreeSet<&str> = PETITION_COMMANDS.iter().copied().collect();
    petitions.extend([
        "ReceivePetition",
        "GetPetition",
        "GetPetitionAsOf",
        "ListPetitions",
    ]);
    assert_eq!(petitions, of("PetitionService"));
}

/// Every agency × every RPC × a case in town 101 and one in town 102: a
/// caller without the role is PERMISSION_DENIED whatever the case; a caller
/// with the role gets PERMISSION_DENIED for a new case outside its scope
/// and NOT_FOUND for an existing one; inside its scope it gets through.
///
/// Commands on existing cases carry a wrong `expected_version`, which the
/// server checks after the role and the scope: a caller that gets through
/// is answered ABORTED and nothing is written, so the matrix does not
/// depend on the order in which it runs.
async fn the_authorisation_matrix_follows_roles_and_scope(db: &TestDb) {
    the_role_table_is_complete();
    let server = TestServer::start(db, true).await;
    let mut wrong: Vec<String> = Vec::new();
    let mut calls = 0;

    // Intake: every agency reports and registers in a village of each town.
    for agency in AGENCIES {
        let mut client = server.disputes(agency);
        for village in [VILLAGE_101, VILLAGE_102] {
            for rpc in ["ReportDispute", "RegisterDispute"] {
                let result = if rpc == "ReportDispute" {
                    client
                        .report_dispute(report_request(village, ""))
                        .await
                        .map(|r| r.into_inner().outcome)
                } else {
                    client
                        .register_dispute(register_request(village, ""))
                        .await
                        .map(|r| r.into_inner().outcome)
                };
                let expected = if !holds(agency, rpc) {
                    Expect::RoleDenied
                } else if !covers(agency, village) {
                    Expect::ScopeDenied
                } else {
                    Expect::Ok
                };
                calls += 1;
                if let Some(why) = mismatch(rpc, &result, expected) {
                    wrong.push(format!("{} {rpc} in {village}: {why}", agency.id));
                }
            }
        }
        let mut petitions = server.petitions(agency);
        for village in [VILLAGE_101, VILLAGE_102] {
            let rpc = "ReceivePetition";
            let result = petitions
                .receive_petition(receive_request(
                    village,
                    "",
                    "Shangping Village Committee",
                    (PETITIONER, PETITIONER_CONTACT),
                ))
                .await
                .map(|r| r.into_inner().outcome);
            let expected = if !holds(agency, rpc) {
                Expect::RoleDenied
            } else if !covers(agency, village) {
                Expect::ScopeDenied
            } else {
                Expect::Ok
            };
            calls += 1;
            if let Some(why) = mismatch(rpc, &result, expected) {
                wrong.push(format!("{} {rpc} in {village}: {why}", agency.id));
            }
        }
    }

    // One case of each kind in each town, at version 1.
    let mut supervisor = server.disputes(&DISTRICT_SUPERVISOR);
    let mut supervisor_petitions = server.petitions(&DISTRICT_SUPERVISOR);
    let cases = [
        ("D-101", "P-101", VILLAGE_101),
        ("D-102", "P-102", VILLAGE_102),
    ];
    let mut last = 0;
    for (dispute, petition, village) in cases {
        assert_eq!(register(&mut supervisor, village, dispute).await.version, 1);
        let outcome = receive(
            &mut supervisor_petitions,
            village,
            petition,
            "Shangping Village Committee",
            (PETITIONER, PETITIONER_CONTACT),
        )
        .await;
        assert_eq!(outcome.version, 1);
        last = outcome.position;
    }

    // Commands on existing cases.
    for agency in AGENCIES {
        let mut disputes = server.disputes(agency);
        let mut petitions = server.petitions(agency);
        for (dispute, petition, village) in cases {
            let expected = |rpc: &str| {
                if !holds(agency, rpc) {
                    Expect::RoleDenied
                } else if !covers(agency, village) {
                    Expect::NotFound
                } else {
                    Expect::Aborted
                }
            };
            for rpc in DISPUTE_COMMANDS {
                let result = dispute_command(&mut disputes, rpc, dispute, village, Some(99)).await;
                calls += 1;
                if let Some(why) = mismatch(rpc, &result, expected(rpc)) {
                    wrong.push(format!("{} {rpc} on {dispute}: {why}", agency.id));
                }
            }
            for rpc in PETITION_COMMANDS {
                let result = petition_command(&mut petitions, rpc, petition, Some(99)).await;
                calls += 1;
                if let Some(why) = mismatch(rpc, &result, expected(rpc)) {
                    wrong.push(format!("{} {rpc} on {petition}: {why}", agency.id));
                }
            }
        }
    }

    // Reads: every role may read, within its scope.
    for agency in AGENCIES {
        let mut disputes = server.disputes(agency);
        let mut petitions = server.petitions(agency);
        let listed: BTreeSet<String> = list_disputes(&mut disputes, last)
            .await
            .into_iter()
            .map(|d| d.dispute_id)
            .collect();
        let listed_petitions: BTreeSet<String> = list_petitions(&mut petitions, last)
            .await
            .into_iter()
            .map(|p| p.petition_id)
            .collect();
        let seen = case_ids(&read_all_events(&mut server.events(agency), last).await);
        for (dispute, petition, village) in cases {
            let expected = if covers(agency, village) {
                Expect::Ok
            } else {
                Expect::NotFound
            };
            let visible = expected == Expect::Ok;
            calls += 4;
            if let Some(why) = mismatch(
                "GetDispute",
                &get_dispute(&mut disputes, dispute).await,
                expected,
            ) {
                wrong.push(format!("{} GetDispute {dispute}: {why}", agency.id));
            }
            if let Some(why) = mismatch(
                "GetPetition",
                &get_petition(&mut petitions, petition).await,
                expected,
            ) {
                wrong.push(format!("{} GetPetition {petition}: {why}", agency.id));
            }
            if listed.contains(dispute) != visible {
                wrong.push(format!(
                    "{} ListDisputes: {dispute} listed {}, should be {visible}",
                    agency.id, !visible
                ));
            }
            if listed_petitions.contains(petition) != visible {
                wrong.push(format!(
                    "{} ListPetitions: {petition} listed {}, should be {visible}",
                    agency.id, !visible
                ));
            }
            for case in [dispute, petition] {
                if seen.contains(case) != visible {
                    wrong.push(format!(
                        "{} ReadEvents: events of {case} seen {}, should be {visible}",
                        agency.id, !visible
                    ));
                }
            }
        }
    }

    // The same, spelled out for the cases the brief of this suite names.
    let mut town_101 = server.disputes(&TOWN_101);
    refused(
        dispute_command(&mut town_101, "ReviewDispute", "D-101", VILLAGE_101, None).await,
        Code::PermissionDenied,
        &[
            "ReviewDispute needs one of the roles [supervisor]",
            "town-101",
        ],
    );
    for agency in [ANALYST, PARTNER] {
        let mut client = server.disputes(&agency);
        refused(
            dispute_command(&mut client, "HoldSession", "D-101", VILLAGE_101, None).await,
            Code::PermissionDenied,
            &["HoldSession needs one of the roles", "mediator", agency.id],
        );
        let dispute = get_dispute(&mut client, "D-101").await.unwrap();
        assert_eq!(dispute.dispute_id, "D-101");
    }

    // Nothing the refused or aborted calls sent was written: the two cases
    // are still at version 1.
    for (dispute, petition, _) in cases {
        assert_eq!(
            get_dispute(&mut supervisor, dispute).await.unwrap().version,
            1
        );
        assert_eq!(
            get_petition(&mut supervisor_petitions, petition)
                .await
                .unwrap()
                .version,
            1
        );
    }

    assert!(
        wrong.is_empty(),
        "{} of {calls} calls answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// 2b. Cases outside the scope do not exist
// ---------------------------------------------------------------------------

/// A dispute and a petition in town 102 are, for TOWN_101, exactly like
/// cases that do not exist: on Get, on every command (with and without an
/// expected version, which must not reveal the version either), in lists
/// and in the log. The district supervisor sees both towns.
async fn a_case_outside_the_scope_reads_as_if_it_did_not_exist(db: &TestDb) {
    const UNKNOWN: &str = "D-never-registered";
    const UNKNOWN_PETITION: &str = "P-never-received";
    let server = TestServer::start(db, true).await;
    let mut town_101 = server.disputes(&TOWN_101);
    let mut town_102 = server.disputes(&TOWN_102);
    let own = register(&mut town_101, VILLAGE_101, "D-own-101").await;
    let hidden = register(&mut town_102, VILLAGE_102, "D-hidden-102").await;
    let own_petition = receive(
        &mut server.petitions(&TOWN_101),
        VILLAGE_101,
        "P-own-101",
        "Shangping Village Committee",
        (OTHER_PETITIONER, OTHER_CONTACT),
    )
    .await;
    let hidden_petition = receive(
        &mut server.petitions(&TOWN_102),
        VILLAGE_102,
        "P-hidden-102",
        "Shatou Village Committee",
        (PETITIONER, PETITIONER_CONTACT),
    )
    .await;
    let last = [&own, &hidden, &own_petition, &hidden_petition]
        .iter()
        .map(|o| o.position)
        .max()
        .unwrap();

    // Get.
    let a = get_dispute(&mut town_101, "D-hidden-102")
        .await
        .unwrap_err();
    let b = get_dispute(&mut town_101, UNKNOWN).await.unwrap_err();
    assert_eq!(a.code(), Code::NotFound, "{a:?}");
    assert!(a.message().contains("D-hidden-102"), "{a:?}");
    assert_same_absence("GetDispute", &a, "D-hidden-102", &b, UNKNOWN);
    let mut petitions_101 = server.petitions(&TOWN_101);
    let a = get_petition(&mut petitions_101, "P-hidden-102")
        .await
        .unwrap_err();
    let b = get_petition(&mut petitions_101, UNKNOWN_PETITION)
        .await
        .unwrap_err();
    assert_eq!(a.code(), Code::NotFound, "{a:?}");
    assert_same_absence("GetPetition", &a, "P-hidden-102", &b, UNKNOWN_PETITION);

    // Every command, by an agency of the other town: the one with every
    // role (TOWN_102 on town 101's dispute), where each command must be
    // NOT_FOUND, and the one without supervision (TOWN_101 on town 102's),
    // where a command it may not call is refused for the role alike. A
    // take-over or send-down is sent both into the case's town (outside the
    // caller's scope, which the server checks first) and into the caller's
    // own town.
    let pairs: [(&Agency, &str, [&str; 2]); 2] = [
        (&TOWN_102, "D-own-101", [VILLAGE_101, VILLAGE_102]),
        (&TOWN_101, "D-hidden-102", [VILLAGE_102, VILLAGE_101]),
    ];
    for (agency, hidden_id, homes) in pairs {
        let mut client = server.disputes(agency);
        for rpc in DISPUTE_COMMANDS {
            // Version 1 is the hidden case's real version; 42 is not.
            for (home, version) in homes
                .into_iter()
                .flat_map(|h| [None, Some(1), Some(42)].map(|v| (h, v)))
            {
                let what = format!(
                    "{} {rpc} (towards {home}, expected_version {version:?})",
                    agency.id
                );
                let a = dispute_command(&mut client, rpc, hidden_id, home, version)
                    .await
                    .unwrap_err();
                let b = dispute_command(&mut client, rpc, UNKNOWN, home, version)
                    .await
                    .unwrap_err();
                let code = if holds(agency, rpc) {
                    Code::NotFound
                } else {
                    Code::PermissionDenied
                };
                assert_eq!(a.code(), code, "{what}: {a:?}");
                assert_same_absence(&what, &a, hidden_id, &b, UNKNOWN);
            }
        }
    }
    let pairs: [(&Agency, &str); 2] = [(&TOWN_102, "P-own-101"), (&TOWN_101, "P-hidden-102")];
    for (agency, hidden_id) in pairs {
        let mut client = server.petitions(agency);
        for rpc in PETITION_COMMANDS {
            for version in [None, Some(1), Some(42)] {
                let what = format!("{} {rpc} (expected_version {version:?})", agency.id);
                let a = petition_command(&mut client, rpc, hidden_id, version)
                    .await
                    .unwrap_err();
                let b = petition_command(&mut client, rpc, UNKNOWN_PETITION, version)
                    .await
                    .unwrap_err();
                let code = if holds(agency, rpc) {
                    Code::NotFound
                } else {
                    Code::PermissionDenied
                };
                assert_eq!(a.code(), code, "{what}: {a:?}");
                assert_same_absence(&what, &a, hidden_id, &b, UNKNOWN_PETITION);
            }
        }
    }

    // A create naming the other town's case, in the caller's own town,
    // neither takes it over nor says anything about it.
    let not_found = get_dispute(&mut town_101, "D-hidden-102")
        .await
        .unwrap_err();
    let status = town_101
        .register_dispute(register_request(VILLAGE_101, "D-hidden-102"))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (not_found.code(), not_found.message()),
        "RegisterDispute"
    );
    let status = town_101
        .report_dispute(report_request(VILLAGE_101, "D-hidden-102"))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (not_found.code(), not_found.message()),
        "ReportDispute"
    );
    let status = petitions_101
        .receive_petition(receive_request(
            VILLAGE_101,
            "P-hidden-102",
            "Shangping Village Committee",
            (OTHER_PETITIONER, OTHER_CONTACT),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "ReceivePetition: {status:?}");

    // None of that touched the hidden cases.
    let mut supervisor = server.disputes(&DISTRICT_SUPERVISOR);
    let hidden_now = get_dispute(&mut supervisor, "D-hidden-102").await.unwrap();
    assert_eq!(hidden_now.version, 1);
    assert_eq!(hidden_now.division_code, VILLAGE_102);
    assert_eq!(hidden_now.status(), pb::DisputeStatus::Registered);
    let mut supervisor_petitions = server.petitions(&DISTRICT_SUPERVISOR);
    assert_eq!(
        get_petition(&mut supervisor_petitions, "P-hidden-102")
            .await
            .unwrap()
            .version,
        1
    );

    // Lists: TOWN_101 sees its own cases only, even when it asks for the
    // other town; the district supervisor sees both.
    let ids = |disputes: Vec<pb::Dispute>| -> BTreeSet<String> {
        disputes.into_iter().map(|d| d.dispute_id).collect()
    };
    assert_eq!(
        ids(list_disputes(&mut town_101, last).await),
        BTreeSet::from(["D-own-101".to_owned()])
    );
    let other_town = town_101
        .list_disputes(pb::ListDisputesRequest {
            division_code: TOWN_102_CODE.into(),
            min_position: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other_town.disputes.is_empty(), "{other_town:?}");
    assert_eq!(
        ids(list_disputes(&mut supervisor, last).await),
        BTreeSet::from(["D-hidden-102".to_owned(), "D-own-101".to_owned()])
    );
    let petition_ids: BTreeSet<String> = list_petitions(&mut petitions_101, last)
        .await
        .into_iter()
        .map(|p| p.petition_id)
        .collect();
    assert_eq!(petition_ids, BTreeSet::from(["P-own-101".to_owned()]));
    let petition_ids: BTreeSet<String> = list_petitions(&mut supervisor_petitions, last)
        .await
        .into_iter()
        .map(|p| p.petition_id)
        .collect();
    assert_eq!(
        petition_ids,
        BTreeSet::from(["P-hidden-102".to_owned(), "P-own-101".to_owned()])
    );

    // The log: TOWN_101 reads none of the other town's events, however it
    // asks; the district supervisor reads all of them.
    let mut events_101 = server.events(&TOWN_101);
    let seen = read_all_events(&mut events_101, last).await;
    assert_eq!(
        case_ids(&seen),
        BTreeSet::from(["D-own-101".to_owned(), "P-own-101".to_owned()])
    );
    for filter in [
        pb::ReadEventsRequest {
            case_id: "D-hidden-102".into(),
            ..Default::default()
        },
        pb::ReadEventsRequest {
            division_code: TOWN_102_CODE.into(),
            ..Default::default()
        },
    ] {
        let events = read_events(&mut events_101, filter.clone(), last).await;
        assert!(events.is_empty(), "{filter:?} gave TOWN_101 {events:?}");
    }
    let own_only = read_events(
        &mut events_101,
        pb::ReadEventsRequest {
            division_code: TOWN_101_CODE.into(),
            ..Default::default()
        },
        last,
    )
    .await;
    assert_eq!(case_ids(&own_only), case_ids(&seen));
    let all = read_all_events(&mut server.events(&DISTRICT_SUPERVISOR), last).await;
    assert_eq!(
        case_ids(&all),
        BTreeSet::from([
            "D-hidden-102".to_owned(),
            "D-own-101".to_owned(),
            "P-hidden-102".to_owned(),
            "P-own-101".to_owned()
        ])
    );

    server.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Confidentiality
// ---------------------------------------------------------------------------

/// The names none of `texts` may contain.
#[track_caller]
fn assert_none_named(who: &str, what: &str, text: &str, names: &[&str]) {
    for name in names {
        assert!(
            !text.contains(name),
            "{who} was given {name:?} in {what}: {text}"
        );
    }
}

/// The unit a petition complains about never learns who complained; roles
/// without a need to know (analyst, partner) never see a petitioner or a
/// party, in any read, list, page of the log or live stream.
async fn petitioners_and_parties_are_withheld_from_those_who_may_not_see_them(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut petitions_101 = server.petitions(&TOWN_101);
    // A complaint about TOWN_101 itself, and one about someone else.
    let complaint = receive(
        &mut petitions_101,
        VILLAGE_101,
        "P-about-town-101",
        TOWN_101.name,
        (PETITIONER, PETITIONER_CONTACT),
    )
    .await;
    let other = receive(
        &mut petitions_101,
        VILLAGE_101_B,
        "P-about-committee",
        "Xiaping Village Committee",
        (OTHER_PETITIONER, OTHER_CONTACT),
    )
    .await;
    let dispute = register(&mut server.disputes(&TOWN_101), VILLAGE_101, "D-parties").await;
    let last = [&complaint, &other, &dispute]
        .iter()
        .map(|o| o.position)
        .max()
        .unwrap();
    let complainant = [PETITIONER, PETITIONER_CONTACT];

    // TOWN_101, the unit complained about.
    let p = get_petition(&mut petitions_101, "P-about-town-101")
        .await
        .unwrap();
    assert!(p.petitioner.is_none(), "{p:?}");
    assert!(p.petitioner_withheld);
    assert_eq!(p.complained_unit, TOWN_101.name);
    assert_none_named("TOWN_101", "GetPetition", &format!("{p:?}"), &complainant);
    // The other petition's petitioner it does see: the rule is about the
    // unit complained about, not about TOWN_101.
    let p = get_petition(&mut petitions_101, "P-about-committee")
        .await
        .unwrap();
    assert_eq!(p.petitioner.as_ref().unwrap().name, OTHER_PETITIONER);
    assert!(!p.petitioner_withheld);
    let listed = list_petitions(&mut petitions_101, last).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for p in &listed {
        let about_itself = p.petition_id == "P-about-town-101";
        assert_eq!(p.petitioner_withheld, about_itself, "{p:?}");
        assert_eq!(p.petitioner.is_none(), about_itself, "{p:?}");
    }
    assert_none_named(
        "TOWN_101",
        "ListPetitions",
        &format!("{listed:?}"),
        &complainant,
    );
    let log = read_all_events(&mut server.events(&TOWN_101), last).await;
    let received = log
        .iter()
        .find(|e| e.case_id == "P-about-town-101")
        .expect("TOWN_101 reads the events of the petition it received");
    assert!(received.payload_json.contains("[withheld]"), "{received:?}");
    for event in &log {
        assert_none_named("TOWN_101", "ReadEvents", &event.payload_json, &complainant);
    }
    assert!(
        log.iter()
            .any(|e| e.payload_json.contains(OTHER_PETITIONER)),
        "TOWN_101 sees the petitioner of a complaint about someone else"
    );
    // Registrars and mediators see the parties.
    let d = get_dispute(&mut server.disputes(&TOWN_101), "D-parties")
        .await
        .unwrap();
    assert!(!d.parties_withheld);
    assert_eq!(
        d.parties
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        [APPLICANT, RESPONDENT]
    );

    // The district supervisor sees everyone.
    let mut supervisor = server.petitions(&DISTRICT_SUPERVISOR);
    let p = get_petition(&mut supervisor, "P-about-town-101")
        .await
        .unwrap();
    assert!(!p.petitioner_withheld);
    let petitioner = p.petitioner.unwrap();
    assert_eq!(petitioner.name, PETITIONER);
    assert_eq!(petitioner.contact, PETITIONER_CONTACT);
    let log = read_all_events(&mut server.events(&DISTRICT_SUPERVISOR), last).await;
    let all: String = log.iter().map(|e| e.payload_json.as_str()).collect();
    for name in [PETITIONER, OTHER_PETITIONER, APPLICANT, RESPONDENT] {
        assert!(all.contains(name), "the supervisor's log lacks {name}");
    }

    // The analyst and the partner see neither petitioners nor parties,
    // anywhere.
    let names = [
        PETITIONER,
        PETITIONER_CONTACT,
        OTHER_PETITIONER,
        OTHER_CONTACT,
        APPLICANT,
        RESPONDENT,
    ];
    for agency in [ANALYST, PARTNER] {
        let who = agency.id;
        let mut petitions = server.petitions(&agency);
        let mut disputes = server.disputes(&agency);
        let mut events = server.events(&agency);
        for id in ["P-about-town-101", "P-about-committee"] {
            let p = get_petition(&mut petitions, id).await.unwrap();
            assert!(
                p.petitioner.is_none() && p.petitioner_withheld,
                "{who}: {p:?}"
            );
            assert_none_named(who, "GetPetition", &format!("{p:?}"), &names);
        }
        let listed = list_petitions(&mut petitions, last).await;
        assert_eq!(listed.len(), 2, "{who}: {listed:?}");
        assert!(
            listed
                .iter()
                .all(|p| p.petitioner.is_none() && p.petitioner_withheld),
            "{who}: {listed:?}"
        );
        assert_none_named(who, "ListPetitions", &format!("{listed:?}"), &names);

        let d = get_dispute(&mut disputes, "D-parties").await.unwrap();
        assert!(d.parties.is_empty() && d.parties_withheld, "{who}: {d:?}");
        assert_eq!(
            d.summary,
            "A boundary wall was built a metre into the neighbour's yard."
        );
        assert_none_named(who, "GetDispute", &format!("{d:?}"), &names);
        let listed = list_disputes(&mut disputes, last).await;
        assert_eq!(listed.len(), 1, "{who}: {listed:?}");
        assert!(listed[0].parties.is_empty() && listed[0].parties_withheld);
        assert_none_named(who, "ListDisputes", &format!("{listed:?}"), &names);

        let log = read_all_events(&mut events, last).await;
        assert_eq!(
            case_ids(&log),
            BTreeSet::from([
                "D-parties".to_owned(),
                "P-about-committee".to_owned(),
                "P-about-town-101".to_owned()
            ]),
            "{who}"
        );
        assert_none_named(who, "ReadEvents", &format!("{log:?}"), &names);
        let registered = log
            .iter()
            .find(|e| e.case_id == "D-parties")
            .expect("the registration");
        assert!(
            registered.payload_json.contains("[withheld]"),
            "{registered:?}"
        );
        let live = subscribe_through(&mut events, last).await;
        assert_eq!(case_ids(&live), case_ids(&log), "{who}");
        assert_none_named(who, "SubscribeEvents", &format!("{live:?}"), &names);
    }

    server.stop().await;
}

/// An accusation (检举控告类) names the unit it accuses by id, an agency's or
/// its division's, however the unit's name is spelled; that unit reads the
/// petition's existence and status but neither the petitioner nor any of
/// its text (facts, notes, reasons) in Get, List, the log or the live
/// stream (信访工作条例 Art 30). In an appeal about the same unit, the unit
/// sees whom it must answer.
async fn the_unit_an_accusation_is_about_sees_nothing_of_it(db: &TestDb) {
    const FACTS: &str = "The deputy head took 30,000 yuan from the road fund.";
    const NOTE: &str = "Handed to the district discipline commission.";
    const APPEAL: &str = "The town refused to repair the road it dug up.";
    let server = TestServer::start(db, true).await;
    let mut office = server.petitions(&DISTRICT_SUPERVISOR);
    let accusation = |id: &str, unit_id: &str, spelled: &str| pb::ReceivePetitionRequest {
        matter_type: pb::MatterType::Accusation.into(),
        complained_unit_id: unit_id.into(),
        facts: FACTS.into(),
        ..receive_request(VILLAGE_101, id, spelled, (PETITIONER, PETITIONER_CONTACT))
    };
    // By the agency's id and by its division's code, each spelled in a
    // way the agencies file does not know.
    for (id, unit, spelled) in [
        ("P-accuse-agency", "town-101", "青山镇政府"),
        ("P-accuse-division", TOWN_101_CODE, "青山镇人民政府"),
    ] {
        office
            .receive_petition(accusation(id, unit, spelled))
            .await
            .unwrap();
    }
    let diverted = office
        .divert_petition(pb::DivertPetitionRequest {
            request_id: rid("divert"),
            petition_id: "P-accuse-agency".into(),
            actor_id: ACTOR.into(),
            channel: pb::LegalChannel::Discipline.into(),
            note: NOTE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let appeal = office
        .receive_petition(pb::ReceivePetitionRequest {
            matter_type: pb::MatterType::Appeal.into(),
            complained_unit_id: "town-101".into(),
            facts: APPEAL.into(),
            ..receive_request(
                VILLAGE_101,
                "P-appeal",
                "Qingshan Town",
                (OTHER_PETITIONER, OTHER_CONTACT),
            )
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let last = diverted.position.max(appeal.position);
    let secrets = [PETITIONER, PETITIONER_CONTACT, FACTS, NOTE];

    // The unit accused: the cases are there, their content is not.
    let mut town = server.petitions(&TOWN_101);
    for id in ["P-accuse-agency", "P-accuse-division"] {
        let p = get_petition(&mut town, id).await.unwrap();
        assert!(p.petitioner.is_none() && p.petitioner_withheld, "{p:?}");
        assert!(p.facts.is_empty() && p.content_withheld, "{p:?}");
        assert_eq!(p.matter_type(), pb::MatterType::Accusation);
        assert_none_named("TOWN_101", "GetPetition", &format!("{p:?}"), &secrets);
    }
    let p = get_petition(&mut town, "P-accuse-agency").await.unwrap();
    assert_eq!(p.complained_unit_id, "town-101");
    assert_eq!(p.status(), pb::PetitionStatus::Diverted);
    let listed = list_petitions(&mut town, last).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_none_named(
        "TOWN_101",
        "ListPetitions",
        &format!("{listed:?}"),
        &secrets,
    );
    let mut events = server.events(&TOWN_101);
    let log = read_all_events(&mut events, last).await;
    let live = subscribe_through(&mut events, last).await;
    for (what, seen) in [("ReadEvents", &log), ("SubscribeEvents", &live)] {
        let accused: Vec<_> = seen
            .iter()
            .filter(|e| e.case_id.starts_with("P-accuse"))
            .collect();
        // Two receipts and the diversion, each with its text withheld.
        assert_eq!(accused.len(), 3, "{what}: {accused:?}");
        for event in accused {
            assert!(event.payload_json.contains("[withheld]"), "{event:?}");
            assert_none_named("TOWN_101", what, &event.payload_json, &secrets);
        }
    }

    // The appeal: the unit that must answer sees whom, and what.
    let p = get_petition(&mut town, "P-appeal").await.unwrap();
    assert_eq!(p.petitioner.as_ref().unwrap().name, OTHER_PETITIONER);
    assert_eq!(p.facts, APPEAL);
    assert!(!p.petitioner_withheld && !p.content_withheld, "{p:?}");
    assert!(
        log.iter()
            .any(|e| e.case_id == "P-appeal" && e.payload_json.contains(OTHER_PETITIONER))
    );

    // The petition office sees it all.
    let p = get_petition(&mut office, "P-accuse-division")
        .await
        .unwrap();
    assert_eq!(p.petitioner.unwrap().name, PETITIONER);
    assert_eq!(p.facts, FACTS);
    assert!(!p.content_withheld);
    let all: String = read_all_events(&mut server.events(&DISTRICT_SUPERVISOR), last)
        .await
        .iter()
        .map(|e| e.payload_json.clone())
        .collect();
    for secret in secrets {
        assert!(all.contains(secret), "the office's log lacks {secret}");
    }

    // A unit the configuration does not know is refused, not ignored.
    for unknown in ["town-999", "990101109000"] {
        let status = refused(
            office
                .receive_petition(accusation("P-unknown", unknown, "Nowhere"))
                .await,
            Code::InvalidArgument,
            &[unknown],
        );
        assert_bad_field(&status, "complained_unit_id");
    }

    server.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Error statuses
// ---------------------------------------------------------------------------

/// Each kind of bad request gets its own status, with a message that names
/// what is wrong and never the database's or a panic's words, and the
/// standard machine-readable details: a `BadRequest` naming the field, an
/// `ErrorInfo` with a stable reason.
async fn bad_requests_get_the_status_that_names_the_problem(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut disputes = server.disputes(&TOWN_101);
    let first = register_request(VILLAGE_101, "D-errors");
    let created = disputes
        .register_dispute(first.clone())
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert_eq!((created.version, created.replayed), (1, false));

    // INVALID_ARGUMENT, naming the field.
    let bad = |edit: fn(&mut pb::RegisterDisputeRequest)| {
        let mut r = register_request(VILLAGE_101, "");
        edit(&mut r);
        r
    };
    let cases: [(&str, pb::RegisterDisputeRequest, &[&str]); 6] = [
        (
            "missing request_id",
            bad(|r| r.request_id = String::new()),
            &["request_id"],
        ),
        (
            "bad division_code",
            bad(|r| r.division_code = "99010110120x".into()),
            &["division_code", "12-digit"],
        ),
        (
            "LEVEL_UNSPECIFIED",
            bad(|r| r.level = pb::Level::Unspecified.into()),
            &["level", "LEVEL_VILLAGE"],
        ),
        (
            "a 10,001-character summary",
            bad(|r| r.summary = "x".repeat(10_001)),
            &["summary", "10000"],
        ),
        (
            "unknown enum value 99",
            bad(|r| r.category = 99),
            &["category", "99"],
        ),
        (
            "a party without a name",
            bad(|r| r.parties[1].name = String::new()),
            &["parties[1].name"],
        ),
    ];
    for (what, request, needles) in cases {
        let status = refused(
            disputes.register_dispute(request).await,
            Code::InvalidArgument,
            needles,
        );
        assert!(status.message().len() < 500, "{what}: {status:?}");
        // The first needle is the field, as the `.proto` spells it.
        assert_bad_field(&status, needles[0]);
    }
    // The domain's refusals of a field's value name the field too.
    let town_level = pb::RegisterDisputeRequest {
        level: pb::Level::Town.into(),
        ..register_request(VILLAGE_101, "")
    };
    let status = refused(
        disputes.register_dispute(town_level).await,
        Code::InvalidArgument,
        &["level"],
    );
    assert_bad_field(&status, "level");
    let status = refused(
        disputes
            .list_disputes(pb::ListDisputesRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_size"],
    );
    assert_bad_field(&status, "page_size");
    let status = refused(
        disputes
            .list_disputes(pb::ListDisputesRequest {
                page_token: "not-a-page-token".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_token"],
    );
    assert_bad_field(&status, "page_token");
    // A token from another query is garbled as far as this one goes.
    let mut petitions = server.petitions(&TOWN_101);
    let mut events = server.events(&TOWN_101);
    let status = refused(
        petitions
            .list_petitions(pb::ListPetitionsRequest {
                page_token: "zz".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_token"],
    );
    assert_bad_field(&status, "page_token");
    let status = refused(
        events
            .read_events(pb::ReadEventsRequest {
                page_size: -5,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_size"],
    );
    assert_bad_field(&status, "page_size");
    let status = refused(
        events
            .read_events(pb::ReadEventsRequest {
                page_token: "%%garbled%%".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_token"],
    );
    assert_bad_field(&status, "page_token");
    let status = refused(
        events
            .read_events(pb::ReadEventsRequest {
                aggregate_type: 99,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["aggregate_type", "99"],
    );
    assert_bad_field(&status, "aggregate_type");
    let status = refused(
        events
            .read_events(pb::ReadEventsRequest {
                case_id: "no spaces please".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["case_id"],
    );
    assert_bad_field(&status, "case_id");
    let status = refused(
        get_dispute(&mut disputes, "not an id").await,
        Code::InvalidArgument,
        &["dispute_id"],
    );
    assert_bad_field(&status, "dispute_id");
    let mut sla = mediation_proto::v1::sla_service_client::SlaServiceClient::with_interceptor(
        server.channel(),
        Bearer::of(&TOWN_101),
    );
    let status = refused(
        sla.get_resolution_stats(pb::GetResolutionStatsRequest {
            from_month: "2026-13".into(),
            to_month: "2026-12".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["from_month"],
    );
    assert_bad_field(&status, "from_month");

    // FAILED_PRECONDITION: no session before dispatch and consent. The
    // reason is stable, and the metadata say the status that forbids it.
    let status = refused(
        dispute_command(&mut disputes, "HoldSession", "D-errors", VILLAGE_101, None).await,
        Code::FailedPrecondition,
        &["session", "registered"],
    );
    let metadata = error_info(&status, "NOT_ALLOWED");
    assert_eq!(
        metadata.get("status").map(String::as_str),
        Some("DISPUTE_STATUS_REGISTERED"),
        "{metadata:?}"
    );
    assert_eq!(
        metadata.get("case_id").map(String::as_str),
        Some("D-errors")
    );

    // NOT_FOUND, naming the case.
    refused(
        get_dispute(&mut disputes, "D-no-such").await,
        Code::NotFound,
        &["D-no-such"],
    );
    refused(
        dispute_command(&mut disputes, "HoldSession", "D-no-such", VILLAGE_101, None).await,
        Code::NotFound,
        &["D-no-such"],
    );

    // ALREADY_EXISTS: the same dispute_id registered again under a new
    // request_id...
    refused(
        disputes
            .register_dispute(register_request(VILLAGE_101, "D-errors"))
            .await,
        Code::AlreadyExists,
        &["D-errors", "already exists"],
    );
    // ...and a request_id used again for a different request.
    let reused = pb::RegisterDisputeRequest {
        dispute_id: "D-errors-2".into(),
        ..first.clone()
    };
    refused(
        disputes.register_dispute(reused).await,
        Code::AlreadyExists,
        &["request_id"],
    );
    // The very same request again is a retry, not an error.
    let retry = disputes
        .register_dispute(first)
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.case_id.as_str(), retry.version), ("D-errors", 1));

    // ABORTED with the current version in a trailer, so that the caller
    // can decide without reading the case again.
    let status = refused(
        dispute_command(
            &mut disputes,
            "DispatchDispute",
            "D-errors",
            VILLAGE_101,
            Some(5),
        )
        .await,
        Code::Aborted,
        &["version 1", "5"],
    );
    let current = status
        .metadata()
        .get(mediation_api::error::CURRENT_VERSION_TRAILER)
        .expect("the current version comes with ABORTED");
    assert_eq!(current.to_str().unwrap(), "1");
    // ...and in the standard details.
    let metadata = error_info(&status, "VERSION_MISMATCH");
    assert_eq!(
        metadata.get("current_version").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        metadata.get("expected_version").map(String::as_str),
        Some("5")
    );
    let dispatched = dispute_command(
        &mut disputes,
        "DispatchDispute",
        "D-errors",
        VILLAGE_101,
        Some(1),
    )
    .await
    .unwrap();
    assert_eq!(dispatched.version, 2);

    // A request over 1 MiB is refused before it is decoded, and the server
    // goes on answering.
    let mut huge = report_request(VILLAGE_101, "D-huge");
    huge.summary = "x".repeat(1024 * 1024 + 1);
    let status = disputes.report_dispute(huge).await.unwrap_err();
    // gRPC specifies RESOURCE_EXHAUSTED (tonic alone would say OUT_OF_RANGE).
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_clean(&status);
    let still = get_dispute(&mut disputes, "D-errors").await.unwrap();
    assert_eq!(still.version, 2);
    refused(
        get_dispute(&mut disputes, "D-huge").await,
        Code::NotFound,
        &["D-huge"],
    );

    server.stop().await;
}

// ---------------------------------------------------------------------------
// 5. Two promises that the first version of the services did not keep
// ---------------------------------------------------------------------------

/// `RegisterDisputeRequest.expected_version` is documented as "When
/// registering a reported dispute: the version it must still be at": a
/// stale registration is ABORTED with the current version, and writes
/// nothing.
async fn registering_a_reported_dispute_honours_expected_version(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut disputes = server.disputes(&TOWN_101);
    let reported = disputes
        .report_dispute(report_request(VILLAGE_101, "D-reported"))
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert_eq!(reported.version, 1);

    let stale = pb::RegisterDisputeRequest {
        expected_version: Some(7),
        ..register_request(VILLAGE_101, "D-reported")
    };
    let result = disputes.register_dispute(stale).await;
    let status = refused(result, Code::Aborted, &["version 1"]);
    let current = status
        .metadata()
        .get(mediation_api::error::CURRENT_VERSION_TRAILER)
        .expect("the current version comes with ABORTED");
    assert_eq!(current.to_str().unwrap(), "1");
    let d = get_dispute(&mut disputes, "D-reported").await.unwrap();
    assert_eq!(
        d.status(),
        pb::DisputeStatus::Reported,
        "nothing was written"
    );

    server.stop().await;
}

/// A command that puts a case in a division must name one in the caller's
/// scope, as a create must: TOWN_102 may take its case over into its own
/// town but not hand it to the district, and may send it down only inside
/// its town. (Escalation, by contrast, hands the case to the level above.)
async fn a_take_over_must_name_a_division_in_the_callers_scope(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut town_102 = server.disputes(&TOWN_102);
    register(&mut town_102, VILLAGE_102, "D-take-over").await;

    // Taking it over into its own town is what TOWN_102 may do...
    let own_town = pb::TakeOverDisputeRequest {
        request_id: rid("take-over"),
        dispute_id: "D-take-over".into(),
        expected_version: Some(1),
        actor_id: ACTOR.into(),
        division_code: TOWN_102_CODE.into(),
    };
    let outcome = town_102
        .take_over_dispute(own_town)
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert_eq!(outcome.version, 2);

    // ...but the district is not its to take the case into.
    let district = pb::TakeOverDisputeRequest {
        request_id: rid("take-over"),
        dispute_id: "D-take-over".into(),
        expected_version: Some(2),
        actor_id: ACTOR.into(),
        division_code: DISTRICT.into(),
    };
    let result = town_102.take_over_dispute(district).await;
    refused(result, Code::PermissionDenied, &[DISTRICT]);
    let d = get_dispute(&mut server.disputes(&DISTRICT_SUPERVISOR), "D-take-over")
        .await
        .unwrap();
    assert_eq!(
        d.division_code, TOWN_102_CODE,
        "the case stayed in town 102"
    );
    assert_eq!(d.version, 2);

    // Sending it down: not into another town's village...
    let send_down = |village: &str, version| pb::SendDownDisputeRequest {
        request_id: rid("send-down"),
        dispute_id: "D-take-over".into(),
        expected_version: Some(version),
        actor_id: ACTOR.into(),
        division_code: village.into(),
    };
    let result = town_102.send_down_dispute(send_down(VILLAGE_101, 2)).await;
    refused(
        result,
        Code::PermissionDenied,
        &[VILLAGE_101, "outside the jurisdiction"],
    );
    // ...but into one of its own.
    let outcome = town_102
        .send_down_dispute(send_down(VILLAGE_102_B, 2))
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert_eq!(outcome.version, 3);
    let d = get_dispute(&mut town_102, "D-take-over").await.unwrap();
    assert_eq!(d.division_code, VILLAGE_102_B);

    // The district supervisor covers both towns and may take the case
    // into the district.
    let mut supervisor = server.disputes(&DISTRICT_SUPERVISOR);
    let outcome = supervisor
        .take_over_dispute(pb::TakeOverDisputeRequest {
            request_id: rid("take-over"),
            dispute_id: "D-take-over".into(),
            expected_version: Some(3),
            actor_id: ACTOR.into(),
            division_code: DISTRICT.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert_eq!(outcome.version, 4);

    server.stop().await;
}
