//! Extensions over gRPC, as a mediation centre's desk and its dashboard see
//! them, on the real server and each backend: the parties' agreement moves
//! the mediation's SLA clock (its start stays), and judicial confirmation
//! runs its two steps, the court's acceptance within 3 days and its ruling
//! within 15 days of it, extended once by 10 (法释〔2011〕5号 Art 4–5).

use chrono::{DateTime, Duration, TimeZone, Utc};
use mediation_proto::v1 as pb;
use mediation_proto::v1::sla_service_client::SlaServiceClient;
use mediation_tests::TestDb;
use mediation_tests::server::{Bearer, DISTRICT_SUPERVISOR, TestServer, start_time};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::details::{assert_bad_field, error_info};

on_both_backends!(
    the_parties_extend_mediation_and_its_clock_follows,
    judicial_confirmation_is_requested_accepted_extended_and_ruled,
);

/// A village of town 101.
const VILLAGE: &str = "990101101201";

type Disputes = mediation_proto::v1::dispute_service_client::DisputeServiceClient<
    InterceptedService<Channel, Bearer>,
>;

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The end of a local (Beijing) day: midnight after it, in UTC.
fn end_of(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 16, 0, 0).unwrap()
}

/// Unwraps a command's response into its outcome's position.
macro_rules! position {
    ($call:expr) => {{
        let outcome = $call.await.unwrap().into_inner().outcome.unwrap();
        assert!(outcome.position > 0, "{outcome:?}");
        outcome.position
    }};
}

/// Dispute `id` registered at the village, dispatched and consented to on
/// the first day: in mediation, its 30 days ending with 1 April.
async fn in_mediation(disputes: &mut Disputes, id: &str) {
    position!(disputes.register_dispute(pb::RegisterDisputeRequest {
        request_id: rid(),
        dispute_id: id.into(),
        actor_id: "clerk-1".into(),
        division_code: VILLAGE.into(),
        level: pb::Level::Village.into(),
        category: pb::DisputeCategory::Neighbourhood.into(),
        risk: pb::Risk::Green.into(),
        summary: "A drain between two yards".into(),
        parties: vec![
            pb::Party {
                role: pb::PartyRole::Applicant.into(),
                name: "Zhang San".into(),
            },
            pb::Party {
                role: pb::PartyRole::Respondent.into(),
                name: "Li Si".into(),
            },
        ],
        ..Default::default()
    }));
    position!(disputes.dispatch_dispute(pb::DispatchDisputeRequest {
        request_id: rid(),
        dispute_id: id.into(),
        actor_id: "clerk-1".into(),
        body: Some(pb::MediationBody {
            body_id: "committee-101201".into(),
            name: "Mediation Committee 101201".into(),
            kind: pb::MediationKind::Peoples.into(),
        }),
        mediator: "Mediator Wu".into(),
        ..Default::default()
    }));
    for party in [pb::PartyRole::Applicant, pb::PartyRole::Respondent] {
        position!(disputes.record_consent(pb::RecordConsentRequest {
            request_id: rid(),
            dispute_id: id.into(),
            actor_id: "mediator-wu".into(),
            party: party.into(),
            consents: true,
            ..Default::default()
        }));
    }
}

async fn get(disputes: &mut Disputes, id: &str) -> pb::Dispute {
    disputes
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap()
}

/// The clock of `case` and `stage` as ListClocks shows it once the read
/// model has passed `position`.
async fn clock(server: &TestServer, position: u64, case: &str, stage: &str) -> pb::Clock {
    let mut sla =
        SlaServiceClient::with_interceptor(server.channel(), Bearer::of(&DISTRICT_SUPERVISOR));
    let clocks = sla
        .list_clocks(pb::ListClocksRequest {
            min_position: position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .clocks;
    clocks
        .into_iter()
        .find(|c| c.case_id == case && c.stage == stage)
        .unwrap_or_else(|| panic!("no {stage} clock of {case}"))
}

fn extend_mediation(id: &str, days: u32) -> pb::ExtendMediationRequest {
    pb::ExtendMediationRequest {
        request_id: rid(),
        dispute_id: id.into(),
        actor_id: "mediator-wu".into(),
        days,
        reason: "Both parties signed for time to measure the drain.".into(),
        ..Default::default()
    }
}

async fn the_parties_extend_mediation_and_its_clock_follows(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    in_mediation(&mut disputes, "M").await;
    in_mediation(&mut disputes, "N").await;
    let before = get(&mut disputes, "M").await;
    let first_due = before.mediation_due.clone().unwrap();
    assert_eq!(first_due.last_day, "2026-04-01");

    // Day 10: the parties agree to 20 more days, counted on from 1 April.
    server.clock.advance(Duration::days(10));
    let at = position!(disputes.extend_mediation(extend_mediation("M", 20)));
    let after = get(&mut disputes, "M").await;
    let new_due = after.mediation_due.clone().unwrap();
    assert_eq!(new_due.stage, "mediation");
    assert_eq!(new_due.last_day, "2026-04-21");
    assert_eq!(after.mediation_extension_count, 1);
    assert_eq!(after.status(), pb::DisputeStatus::Mediating);

    // The dashboard's clock has the new due time and its old start.
    let mediation = clock(&server, at, "M", "mediation").await;
    assert_eq!(
        mediation.due_time.unwrap().seconds,
        end_of(2026, 4, 21).timestamp()
    );
    assert_eq!(
        mediation.start_time.unwrap().seconds,
        start_time().timestamp()
    );
    assert_eq!(mediation.status(), pb::ClockStatus::Running);
    assert_eq!(mediation.person, "Mediator Wu");
    // The village's own handling period is not the parties' to extend.
    let handling = clock(&server, at, "M", "village_handling").await;
    assert_eq!(
        handling.due_time.unwrap().seconds,
        end_of(2026, 4, 1).timestamp()
    );

    // The shipped policy allows one extension, of at most 30 days.
    let again = disputes
        .extend_mediation(extend_mediation("M", 5))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let info = error_info(&again, "EXTENSIONS_USED_UP");
    assert_eq!(info["stage"], "mediation");
    assert_eq!(info["max_extensions"], "1");

    let too_long = disputes
        .extend_mediation(extend_mediation("N", 31))
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument, "{too_long:?}");
    assert_bad_field(&too_long, "days");
    assert_eq!(
        error_info(&too_long, "EXTENSION_TOO_LONG")["max_days"],
        "30"
    );

    // Past N's due time (the end of 1 April) the extension comes too late.
    server.clock.advance(Duration::days(25));
    let late = disputes
        .extend_mediation(extend_mediation("N", 20))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    let info = error_info(&late, "EXTENSION_TOO_LATE");
    assert_eq!(info["due_time"], "2026-04-01T16:00:00Z");
    assert_eq!(
        get(&mut disputes, "N")
            .await
            .mediation_due
            .unwrap()
            .last_day,
        "2026-04-01"
    );
    server.stop().await;
}

async fn judicial_confirmation_is_requested_accepted_extended_and_ruled(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    in_mediation(&mut disputes, "J").await;
    position!(disputes.reach_agreement(pb::ReachAgreementRequest {
        request_id: rid(),
        dispute_id: "J".into(),
        actor_id: "mediator-wu".into(),
        form: pb::AgreementForm::Written.into(),
        terms: "The drain is moved; costs are shared.".into(),
        ..Default::default()
    }));

    // Day 1 (Tuesday 3 March): the parties apply; the court has 3 days,
    // to the end of Friday 6 March, to accept.
    server.clock.advance(Duration::days(1));
    let requested = position!(disputes.request_judicial_confirmation(
        pb::RequestJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            court: "District People's Court".into(),
            ..Default::default()
        }
    ));
    let confirmation = get(&mut disputes, "J").await.judicial_confirmation.unwrap();
    assert_eq!(
        confirmation.step(),
        pb::JudicialConfirmationStep::AwaitingAcceptance
    );
    assert_eq!(confirmation.acceptance_due.unwrap().last_day, "2026-03-06");
    assert!(confirmation.ruling_due.is_none());
    let acceptance = clock(&server, requested, "J", "judicial_confirmation_acceptance").await;
    assert_eq!(acceptance.status(), pb::ClockStatus::Running);
    assert_eq!(acceptance.body, "District People's Court");

    // Out of order: no ruling and no extension before the acceptance.
    let early = disputes
        .rule_judicial_confirmation(pb::RuleJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            confirmed: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    error_info(&early, "CONFIRMATION_NOT_ACCEPTED");

    // Day 2 (Wednesday 4 March): accepted; the ruling is due in 15 days,
    // by the end of Thursday 19 March.
    server.clock.advance(Duration::days(1));
    let accepted = position!(disputes.accept_judicial_confirmation(
        pb::AcceptJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            accepted: true,
            ..Default::default()
        }
    ));
    let acceptance = clock(&server, accepted, "J", "judicial_confirmation_acceptance").await;
    assert_eq!(acceptance.status(), pb::ClockStatus::Met);
    let ruling = clock(&server, accepted, "J", "judicial_confirmation_ruling").await;
    assert_eq!(ruling.status(), pb::ClockStatus::Running);
    assert_eq!(
        ruling.due_time.unwrap().seconds,
        end_of(2026, 3, 19).timestamp()
    );

    // Day 10: the court extends by 10 days from the 19th. The 29th is a
    // Sunday, so the period ends on Monday 30 March.
    server.clock.advance(Duration::days(8));
    let extended = position!(disputes.extend_judicial_confirmation(
        pb::ExtendJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            days: 10,
            reason: "The court's president approved more time.".into(),
            ..Default::default()
        }
    ));
    let ruling = clock(&server, extended, "J", "judicial_confirmation_ruling").await;
    assert_eq!(
        ruling.due_time.unwrap().seconds,
        end_of(2026, 3, 30).timestamp()
    );
    assert_eq!(ruling.status(), pb::ClockStatus::Running);
    let confirmation = get(&mut disputes, "J").await.judicial_confirmation.unwrap();
    assert_eq!(confirmation.ruling_extension_count, 1);
    assert_eq!(confirmation.ruling_due.unwrap().last_day, "2026-03-30");
    let twice = disputes
        .extend_judicial_confirmation(pb::ExtendJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            days: 5,
            reason: "Again.".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    assert_eq!(
        error_info(&twice, "EXTENSIONS_USED_UP")["stage"],
        "judicial_confirmation_ruling"
    );

    // Day 22 (24 March): the ruling, inside the extended period.
    server.clock.advance(Duration::days(12));
    let ruled = position!(disputes.rule_judicial_confirmation(
        pb::RuleJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: "J".into(),
            actor_id: "mediator-wu".into(),
            confirmed: true,
            note: "Lawful and voluntary.".into(),
            ..Default::default()
        }
    ));
    let ruling = clock(&server, ruled, "J", "judicial_confirmation_ruling").await;
    assert_eq!(ruling.status(), pb::ClockStatus::Met);
    assert!(ruling.stop_time.is_some());
    let confirmation = get(&mut disputes, "J").await.judicial_confirmation.unwrap();
    assert_eq!(confirmation.step(), pb::JudicialConfirmationStep::Ruled);
    assert!(confirmation.ruled && confirmation.confirmed);
    server.stop().await;
}
