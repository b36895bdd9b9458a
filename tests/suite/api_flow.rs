//! The gRPC API end to end, as a partner's client sees it: every command of
//! both case kinds, queries, idempotent retries, optimistic concurrency, and
//! the event log read in pages and followed live.

use std::collections::BTreeSet;

use chrono::Duration;
use mediation_proto::v1 as pb;
use mediation_proto::v1::sla_service_client::SlaServiceClient;
use mediation_tests::server::{Bearer, DISTRICT_SUPERVISOR, TestServer};
use mediation_tests::{Kind, TestDb};
use sqlx::Connection as _;
use tonic::Code;

use crate::details::{assert_bad_field, error_info};

on_both_backends!(
    a_dispute_goes_through_every_command,
    a_dispute_moves_up_and_down_the_ladder,
    a_petition_goes_through_every_command,
    petitions_can_end_at_triage_or_by_lapse,
    a_retry_returns_the_first_outcome_and_writes_nothing,
    concurrent_retries_of_a_create_make_one_case,
    expected_version_guards_against_lost_updates,
    lists_filter_and_page_through_cases,
    events_page_through_the_log_with_filters,
    a_read_after_the_head_answers_the_head_and_misses_nothing,
    read_events_waits_for_min_position_but_not_for_a_position_never_written,
    a_subscriber_that_reconnects_misses_nothing_and_sees_nothing_twice,
);

const VILLAGE: &str = "990101101201";
const TOWN: &str = "990101101000";
const OTHER_VILLAGE: &str = "990101102201";

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn parties() -> Vec<pb::Party> {
    vec![
        pb::Party {
            role: pb::PartyRole::Applicant.into(),
            name: "Zhang San".into(),
        },
        pb::Party {
            role: pb::PartyRole::Respondent.into(),
            name: "Li Si".into(),
        },
    ]
}

fn register(division: &str, level: pb::Level) -> pb::RegisterDisputeRequest {
    pb::RegisterDisputeRequest {
        request_id: rid(),
        actor_id: "clerk-1".into(),
        division_code: division.into(),
        level: level.into(),
        category: pb::DisputeCategory::Neighbourhood.into(),
        risk: pb::Risk::Green.into(),
        summary: "A wall between two yards".into(),
        parties: parties(),
        ..Default::default()
    }
}

fn body() -> pb::MediationBody {
    pb::MediationBody {
        body_id: "committee-101201".into(),
        name: "Village Mediation Committee".into(),
        kind: pb::MediationKind::Peoples.into(),
    }
}

/// Unwraps a command's response into its outcome, checking its shape.
macro_rules! outcome {
    ($call:expr) => {{
        let outcome = $call.await.unwrap().into_inner().outcome.unwrap();
        assert!(outcome.version > 0 && outcome.position > 0, "{outcome:?}");
        outcome
    }};
}

async fn a_dispute_goes_through_every_command(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);

    let reported = outcome!(disputes.report_dispute(pb::ReportDisputeRequest {
        request_id: rid(),
        dispute_id: "d-full".into(),
        actor_id: "grid-7".into(),
        division_code: VILLAGE.into(),
        grid: "Grid 3".into(),
        summary: "Neighbours quarrel over a wall".into(),
    }));
    assert_eq!(reported.case_id, "d-full");
    assert_eq!(reported.version, 1);
    assert!(!reported.replayed);

    let registered = outcome!(disputes.register_dispute(pb::RegisterDisputeRequest {
        dispute_id: "d-full".into(),
        expected_version: Some(1),
        ..register(VILLAGE, pb::Level::Village)
    }));
    assert!(registered.position > reported.position);
    let id = || "d-full".to_owned();

    outcome!(disputes.dispatch_dispute(pb::DispatchDisputeRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "clerk-1".into(),
        body: Some(body()),
        mediator: "Mediator Wu".into(),
        ..Default::default()
    }));
    for party in [pb::PartyRole::Applicant, pb::PartyRole::Respondent] {
        outcome!(disputes.record_consent(pb::RecordConsentRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "mediator-wu".into(),
            party: party.into(),
            consents: true,
            ..Default::default()
        }));
    }
    outcome!(disputes.hold_session(pb::HoldSessionRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "mediator-wu".into(),
        summary: "Both sides heard".into(),
        ..Default::default()
    }));
    outcome!(disputes.reach_agreement(pb::ReachAgreementRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "mediator-wu".into(),
        form: pb::AgreementForm::Written.into(),
        terms: "The wall moves 30 cm east".into(),
        ..Default::default()
    }));
    outcome!(
        disputes.request_judicial_confirmation(pb::RequestJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "mediator-wu".into(),
            court: "District People's Court".into(),
            ..Default::default()
        })
    );
    outcome!(
        disputes.accept_judicial_confirmation(pb::AcceptJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "mediator-wu".into(),
            accepted: true,
            ..Default::default()
        })
    );
    outcome!(
        disputes.rule_judicial_confirmation(pb::RuleJudicialConfirmationRequest {
            request_id: rid(),
            dispute_id: id(),
            actor_id: "mediator-wu".into(),
            confirmed: true,
            note: "Confirmed".into(),
            ..Default::default()
        })
    );
    outcome!(disputes.record_follow_up(pb::RecordFollowUpRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "mediator-wu".into(),
        performance: pb::Performance::Performed.into(),
        note: "The wall has moved".into(),
        ..Default::default()
    }));
    outcome!(disputes.review_dispute(pb::ReviewDisputeRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "supervisor-1".into(),
        approved: true,
        ..Default::default()
    }));
    outcome!(disputes.close_dispute(pb::CloseDisputeRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "supervisor-1".into(),
        ..Default::default()
    }));
    let mut last = outcome!(disputes.evaluate_dispute(pb::EvaluateDisputeRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "clerk-1".into(),
        satisfaction: pb::Satisfaction::Satisfied.into(),
        ..Default::default()
    }));

    let got = disputes
        .get_dispute(pb::GetDisputeRequest { dispute_id: id() })
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!(got.status(), pb::DisputeStatus::Closed);
    assert_eq!(got.version, last.version);
    assert_eq!(got.division_code, VILLAGE);
    assert_eq!(got.level(), pb::Level::Village);
    assert_eq!(got.outcome(), pb::DisputeOutcome::Agreement);
    assert_eq!(got.satisfaction(), pb::Satisfaction::Satisfied);
    assert_eq!(got.performance(), pb::Performance::Performed);
    assert_eq!(got.parties.len(), 2);
    assert!(!got.parties_withheld);
    assert_eq!(got.body.unwrap().name, "Village Mediation Committee");
    assert!(got.judicial_confirmation.unwrap().confirmed);
    assert!(got.handling_due.is_some());

    last = outcome!(disputes.reopen_dispute(pb::ReopenDisputeRequest {
        request_id: rid(),
        dispute_id: id(),
        actor_id: "supervisor-1".into(),
        reason: "The wall moved back".into(),
        ..Default::default()
    }));
    let listed = disputes
        .list_disputes(pb::ListDisputesRequest {
            min_position: last.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.disputes.len(), 1);
    assert_eq!(listed.disputes[0].status(), pb::DisputeStatus::Registered);
    assert_eq!(listed.disputes[0].version, last.version);
    server.stop().await;
}

async fn a_dispute_moves_up_and_down_the_ladder(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let id = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village))).case_id;
    outcome!(disputes.dispatch_dispute(pb::DispatchDisputeRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "clerk-1".into(),
        body: Some(body()),
        ..Default::default()
    }));
    outcome!(disputes.terminate_mediation(pb::TerminateMediationRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "mediator-wu".into(),
        reason: pb::TerminationReason::NoAgreement.into(),
        note: "No common ground".into(),
        legal_routes_explained: true,
        ..Default::default()
    }));
    outcome!(disputes.escalate_dispute(pb::EscalateDisputeRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "mediator-wu".into(),
        reason: pb::EscalationReason::MediationFailed.into(),
        ..Default::default()
    }));
    let get = |d: &mut mediation_proto::v1::dispute_service_client::DisputeServiceClient<_>| {
        let mut d = d.clone();
        let id = id.clone();
        async move {
            d.get_dispute(pb::GetDisputeRequest { dispute_id: id })
                .await
                .unwrap()
                .into_inner()
                .dispute
                .unwrap()
        }
    };
    let at_town = get(&mut disputes).await;
    assert_eq!(
        (at_town.division_code.as_str(), at_town.level()),
        (TOWN, pb::Level::Town)
    );
    outcome!(disputes.send_down_dispute(pb::SendDownDisputeRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "supervisor-1".into(),
        division_code: VILLAGE.into(),
        ..Default::default()
    }));
    assert_eq!(get(&mut disputes).await.division_code, VILLAGE);
    outcome!(disputes.take_over_dispute(pb::TakeOverDisputeRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "supervisor-1".into(),
        division_code: "990101000000".into(),
        ..Default::default()
    }));
    assert_eq!(get(&mut disputes).await.level(), pb::Level::District);
    outcome!(disputes.refer_dispute(pb::ReferDisputeRequest {
        request_id: rid(),
        dispute_id: id.clone(),
        actor_id: "supervisor-1".into(),
        channel: pb::LegalChannel::Litigation.into(),
        note: "Parties told how to sue".into(),
        ..Default::default()
    }));
    let referred = get(&mut disputes).await;
    assert_eq!(referred.status(), pb::DisputeStatus::Referred);
    assert_eq!(referred.legal_channel(), pb::LegalChannel::Litigation);

    // Every move is on the log, each event tagged with the division holding
    // the case after it; the moves also name the division they left. (On
    // PostgreSQL the log is read below the oldest open transaction on the
    // server: wait until the case's events have all settled.)
    let written = db.store.case_events("Dispute", &id).await.unwrap().len();
    mediation_tests::read_all(&db.store, written).await;
    let events = server
        .events(&DISTRICT_SUPERVISOR)
        .read_events(pb::ReadEventsRequest {
            case_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let divisions: Vec<&str> = events.iter().map(|e| e.division_code.as_str()).collect();
    assert!(
        divisions.contains(&TOWN) && divisions.contains(&"990101000000"),
        "{divisions:?}"
    );
    // The village filter finds the escalation that took the case away.
    let village_view = server
        .events(&DISTRICT_SUPERVISOR)
        .read_events(pb::ReadEventsRequest {
            division_code: VILLAGE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        village_view
            .iter()
            .any(|e| e.event_type == "DisputeEscalated")
    );
    server.stop().await;
}

fn receive(division: &str) -> pb::ReceivePetitionRequest {
    pb::ReceivePetitionRequest {
        request_id: rid(),
        actor_id: "office-1".into(),
        channel: pb::PetitionChannel::Letter.into(),
        petitioner: Some(pb::Petitioner {
            name: "Chen Jing".into(),
            contact: "13800000000".into(),
        }),
        complained_unit: "County Land Bureau".into(),
        facts: "Compensation for requisitioned land was never paid".into(),
        division_code: division.into(),
        competent_level: pb::Level::Town.into(),
        ..Default::default()
    }
}

async fn a_petition_goes_through_every_command(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut petitions = server.petitions(&DISTRICT_SUPERVISOR);
    let id = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    let p = || id.clone();
    outcome!(petitions.forward_petition(pb::ForwardPetitionRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "office-1".into(),
        to_unit: "Town Land Office".into(),
        ..Default::default()
    }));
    outcome!(petitions.object_to_petition(pb::ObjectToPetitionRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "land-office".into(),
        reason: "Requisition was decided by the county".into(),
        ..Default::default()
    }));
    outcome!(petitions.assign_petition(pb::AssignPetitionRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "office-1".into(),
        to_unit: "County Land Bureau".into(),
        report_within_days: 30,
        ..Default::default()
    }));
    outcome!(petitions.accept_petition(pb::AcceptPetitionRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "bureau-1".into(),
        ..Default::default()
    }));
    outcome!(
        petitions.extend_petition_handling(pb::ExtendPetitionHandlingRequest {
            request_id: rid(),
            petition_id: p(),
            actor_id: "bureau-1".into(),
            days: 30,
            reason: "Records are held by the province".into(),
            approved_by: "Bureau Director".into(),
            ..Default::default()
        })
    );
    outcome!(petitions.issue_opinion(pb::IssueOpinionRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "bureau-1".into(),
        outcome: pb::OpinionOutcome::NotSupport.into(),
        summary: "Compensation was paid in 2019".into(),
        ..Default::default()
    }));
    // The review window runs from the day the reply reached the petitioner
    // (Art 35).
    outcome!(
        petitions.record_petition_delivery(pb::RecordPetitionDeliveryRequest {
            request_id: rid(),
            petition_id: p(),
            actor_id: "bureau-1".into(),
            reply: pb::Reply::Opinion.into(),
            delivered_on: today(&server),
            method: pb::DeliveryMethod::Post.into(),
            ..Default::default()
        })
    );
    outcome!(petitions.request_review(pb::RequestReviewRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "office-1".into(),
        reason: "No payment was received".into(),
        ..Default::default()
    }));
    outcome!(
        petitions.issue_review_opinion(pb::IssueReviewOpinionRequest {
            request_id: rid(),
            petition_id: p(),
            actor_id: "county-1".into(),
            outcome: pb::OpinionOutcome::Explain.into(),
            summary: "Payment went to the collective".into(),
            ..Default::default()
        })
    );
    outcome!(
        petitions.record_petition_delivery(pb::RecordPetitionDeliveryRequest {
            request_id: rid(),
            petition_id: p(),
            actor_id: "county-1".into(),
            reply: pb::Reply::ReviewOpinion.into(),
            delivered_on: today(&server),
            method: pb::DeliveryMethod::InPerson.into(),
            ..Default::default()
        })
    );
    outcome!(petitions.request_re_review(pb::RequestReReviewRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "office-1".into(),
        reason: "The collective kept it".into(),
        ..Default::default()
    }));
    // A hearing pauses the re-review's clock (Art 36).
    outcome!(petitions.record_hearing(pb::RecordHearingRequest {
        request_id: rid(),
        petition_id: p(),
        actor_id: "city-1".into(),
        days: 3,
        ..Default::default()
    }));
    let last = outcome!(
        petitions.issue_re_review_opinion(pb::IssueReReviewOpinionRequest {
            request_id: rid(),
            petition_id: p(),
            actor_id: "city-1".into(),
            outcome: pb::OpinionOutcome::Support.into(),
            summary: "The collective pays the petitioner".into(),
            ..Default::default()
        })
    );
    let got = petitions
        .get_petition(pb::GetPetitionRequest { petition_id: p() })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    assert_eq!(got.status(), pb::PetitionStatus::Final);
    assert_eq!(got.version, last.version);
    assert_eq!(got.final_basis(), pb::FinalBasis::ReReviewed);
    assert_eq!(got.re_review_outcome(), pb::OpinionOutcome::Support);
    assert!(got.extended);
    assert_eq!(got.petitioner.unwrap().name, "Chen Jing");
    assert!(got.final_time.is_some());
    let delivered: Vec<pb::Reply> = got.deliveries.iter().map(|d| d.reply()).collect();
    assert_eq!(delivered, [pb::Reply::Opinion, pb::Reply::ReviewOpinion]);
    assert_eq!(got.deliveries[0].method(), pb::DeliveryMethod::Post);
    assert_eq!(got.deliveries[0].delivered_on, today(&server));

    // A group visit of thirty, five of them representatives (Art 20).
    let visit = outcome!(petitions.receive_petition(pb::ReceivePetitionRequest {
        channel: pb::PetitionChannel::Visit.into(),
        visited_level: pb::Level::Town.into(),
        representatives: 5,
        ..receive(TOWN)
    }))
    .case_id;
    outcome!(
        petitions.record_group_headcount(pb::RecordGroupHeadcountRequest {
            request_id: rid(),
            petition_id: visit.clone(),
            actor_id: "office-1".into(),
            headcount: 30,
            ..Default::default()
        })
    );
    let got = petitions
        .get_petition(pb::GetPetitionRequest { petition_id: visit })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    assert_eq!((got.representatives, got.headcount), (5, 30));

    // A district matter taken to the province (赴省) skips the city: a
    // skipped-level visit, recorded and received (Art 20).
    let province = outcome!(petitions.receive_petition(pb::ReceivePetitionRequest {
        channel: pb::PetitionChannel::Visit.into(),
        competent_level: pb::Level::District.into(),
        visit_level: pb::PetitionLevel::Province.into(),
        representatives: 1,
        ..receive("990101000000")
    }))
    .case_id;
    let got = petitions
        .get_petition(pb::GetPetitionRequest {
            petition_id: province,
        })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    assert!(got.skipped_level);
    assert_eq!(got.visit_level(), pb::PetitionLevel::Province);
    assert_eq!(got.visited_level(), pb::Level::Unspecified);
    assert_eq!(got.status(), pb::PetitionStatus::Received);

    // Once the petitioner history has the final petition, a new receipt
    // of the same facts from the same petitioner names it as a suspected
    // repeat, for the registrar to judge.
    let mut sla =
        SlaServiceClient::with_interceptor(server.channel(), Bearer::of(&DISTRICT_SUPERVISOR));
    sla.list_repeat_petitions(pb::ListRepeatPetitionsRequest {
        window_days: 30,
        min_position: last.position,
        ..Default::default()
    })
    .await
    .unwrap();
    let suspected = petitions
        .receive_petition(receive(TOWN))
        .await
        .unwrap()
        .into_inner();
    assert!(
        suspected.suspected_repeat_of.contains(&p()),
        "{:?}",
        suspected.suspected_repeat_of
    );
    let suspected = suspected.outcome.unwrap().case_id;
    assert!(!suspected.is_empty());
    // Named by the registrar, a repeat of the final petition is received
    // and not accepted (不予受理, Art 37): recorded, not refused, so that it
    // appears in the figures.
    let repeat = petitions
        .receive_petition(pb::ReceivePetitionRequest {
            repeat_of: p(),
            ..receive(TOWN)
        })
        .await
        .unwrap()
        .into_inner();
    let repeat_outcome = repeat.outcome.unwrap();
    assert_eq!(repeat_outcome.version, 2, "received, then not accepted");
    assert!(repeat.suspected_repeat_of.contains(&p()));
    assert!(!repeat.suspected_repeat_of.contains(&repeat_outcome.case_id));
    let got = petitions
        .get_petition(pb::GetPetitionRequest {
            petition_id: repeat_outcome.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    assert_eq!(got.status(), pb::PetitionStatus::NotAccepted);
    assert_eq!(got.not_accepted_as_repeat_of, p());
    assert_eq!(got.repeat_of, p());
    // It is in the list of repeats, paired with the final petition (which
    // of the two counts as earlier follows the case ids here: the test's
    // clock received both at the same instant).
    let repeats = sla
        .list_repeat_petitions(pb::ListRepeatPetitionsRequest {
            window_days: 3650,
            min_position: repeat_outcome.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .repeats;
    let pair = [p(), repeat_outcome.case_id.clone()];
    assert!(
        repeats.iter().any(|r| pair.contains(&r.earlier_petition_id)
            && pair.contains(&r.later_petition_id)
            && r.earlier_petition_id != r.later_petition_id),
        "{repeats:?}"
    );
    // A registrar who finds the repeat after receipt refuses it naming the
    // final petition; naming an open one is refused.
    let refused = outcome!(petitions.reject_petition(pb::RejectPetitionRequest {
        request_id: rid(),
        petition_id: suspected.clone(),
        actor_id: "office-1".into(),
        reason: "Settled in the final petition".into(),
        repeat_of: p(),
        ..Default::default()
    }));
    assert!(refused.version >= 2);
    let open = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    let other = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    let not_final = petitions
        .reject_petition(pb::RejectPetitionRequest {
            request_id: rid(),
            petition_id: other,
            actor_id: "office-1".into(),
            reason: "Same as an open one".into(),
            repeat_of: open,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(not_final.code(), Code::FailedPrecondition, "{not_final:?}");
    error_info(&not_final, "REPEAT_NOT_FINAL");
    server.stop().await;
}

async fn petitions_can_end_at_triage_or_by_lapse(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut petitions = server.petitions(&DISTRICT_SUPERVISOR);
    let diverted = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    outcome!(petitions.divert_petition(pb::DivertPetitionRequest {
        request_id: rid(),
        petition_id: diverted.clone(),
        actor_id: "office-1".into(),
        channel: pb::LegalChannel::Litigation.into(),
        note: "A contract matter for the court".into(),
        ..Default::default()
    }));
    let rejected = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    outcome!(petitions.reject_petition(pb::RejectPetitionRequest {
        request_id: rid(),
        petition_id: rejected.clone(),
        actor_id: "office-1".into(),
        reason: "Already decided by a court".into(),
        ..Default::default()
    }));
    let lapsed = outcome!(petitions.receive_petition(receive(TOWN))).case_id;
    outcome!(petitions.forward_petition(pb::ForwardPetitionRequest {
        request_id: rid(),
        petition_id: lapsed.clone(),
        actor_id: "office-1".into(),
        to_unit: "Town Land Office".into(),
        ..Default::default()
    }));
    outcome!(petitions.accept_petition(pb::AcceptPetitionRequest {
        request_id: rid(),
        petition_id: lapsed.clone(),
        actor_id: "land-office".into(),
        ..Default::default()
    }));
    outcome!(petitions.issue_opinion(pb::IssueOpinionRequest {
        request_id: rid(),
        petition_id: lapsed.clone(),
        actor_id: "land-office".into(),
        outcome: pb::OpinionOutcome::Support.into(),
        summary: "Paid in full".into(),
        ..Default::default()
    }));
    // Not yet: the review window has not started, since the opinion has
    // not reached the petitioner.
    let undelivered = petitions
        .finalise_petition(pb::FinalisePetitionRequest {
            request_id: rid(),
            petition_id: lapsed.clone(),
            actor_id: "office-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        undelivered.code(),
        Code::FailedPrecondition,
        "{undelivered:?}"
    );
    outcome!(
        petitions.record_petition_delivery(pb::RecordPetitionDeliveryRequest {
            request_id: rid(),
            petition_id: lapsed.clone(),
            actor_id: "land-office".into(),
            reply: pb::Reply::Opinion.into(),
            delivered_on: today(&server),
            method: pb::DeliveryMethod::Electronic.into(),
            ..Default::default()
        })
    );
    // Too early: the review window is still open.
    let early = petitions
        .finalise_petition(pb::FinalisePetitionRequest {
            request_id: rid(),
            petition_id: lapsed.clone(),
            actor_id: "office-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    let metadata = error_info(&early, "WINDOW_STILL_OPEN");
    assert_eq!(
        metadata.get("stage").map(String::as_str),
        Some("review_request"),
        "{metadata:?}"
    );
    assert!(metadata.contains_key("due_time"), "{metadata:?}");
    server.clock.advance(Duration::days(40));
    let last = outcome!(petitions.finalise_petition(pb::FinalisePetitionRequest {
        request_id: rid(),
        petition_id: lapsed.clone(),
        actor_id: "office-1".into(),
        ..Default::default()
    }));

    let statuses = petitions
        .list_petitions(pb::ListPetitionsRequest {
            min_position: last.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .petitions
        .into_iter()
        .map(|p| (p.petition_id.clone(), p.status()))
        .collect::<Vec<_>>();
    assert!(statuses.contains(&(diverted, pb::PetitionStatus::Diverted)));
    assert!(statuses.contains(&(rejected, pb::PetitionStatus::NotAccepted)));
    assert!(statuses.contains(&(lapsed, pb::PetitionStatus::Final)));
    server.stop().await;
}

async fn a_retry_returns_the_first_outcome_and_writes_nothing(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let request = register(VILLAGE, pb::Level::Village);
    let first = outcome!(disputes.register_dispute(request.clone()));
    let again = outcome!(disputes.register_dispute(request.clone()));
    assert!(again.replayed);
    assert_eq!(
        (&again.case_id, again.version, again.position),
        (&first.case_id, first.version, first.position)
    );
    // Only one case was created.
    let head = mediation_tests::read_all(&db.store, 1).await;
    assert_eq!(head.len(), 1);

    // A command on an existing case, retried after the case moved on,
    // still answers with its own outcome.
    let dispatch = pb::DispatchDisputeRequest {
        request_id: rid(),
        dispute_id: first.case_id.clone(),
        actor_id: "clerk-1".into(),
        body: Some(body()),
        ..Default::default()
    };
    let dispatched = outcome!(disputes.dispatch_dispute(dispatch.clone()));
    outcome!(disputes.record_consent(pb::RecordConsentRequest {
        request_id: rid(),
        dispute_id: first.case_id.clone(),
        actor_id: "mediator".into(),
        party: pb::PartyRole::Applicant.into(),
        consents: true,
        ..Default::default()
    }));
    let retried = outcome!(disputes.dispatch_dispute(dispatch.clone()));
    assert!(retried.replayed);
    assert_eq!(retried.version, dispatched.version);

    // The same id with another request is refused.
    let reused = disputes
        .dispatch_dispute(pb::DispatchDisputeRequest {
            mediator: "Someone Else".into(),
            ..dispatch
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    assert!(
        reused.message().contains("request_id"),
        "{}",
        reused.message()
    );
    server.stop().await;
}

async fn concurrent_retries_of_a_create_make_one_case(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let disputes = server.disputes(&DISTRICT_SUPERVISOR);
    // Eight copies of the same request, sent at once, with no dispute id:
    // each execution picks its own id, yet only one may commit.
    let request = register(VILLAGE, pb::Level::Village);
    let calls = (0..8).map(|_| {
        let mut client = disputes.clone();
        let request = request.clone();
        tokio::spawn(async move { client.register_dispute(request).await })
    });
    let mut ids = BTreeSet::new();
    for call in calls {
        let outcome = call.await.unwrap().unwrap().into_inner().outcome.unwrap();
        ids.insert(outcome.case_id);
    }
    assert_eq!(ids.len(), 1, "every retry names the same case: {ids:?}");
    let events = mediation_tests::read_all(&db.store, 1).await;
    assert_eq!(events.len(), 1, "one registration was written");
    server.stop().await;
}

async fn expected_version_guards_against_lost_updates(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let registered = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
    let stale = disputes
        .dispatch_dispute(pb::DispatchDisputeRequest {
            request_id: rid(),
            dispute_id: registered.case_id.clone(),
            expected_version: Some(registered.version + 1),
            actor_id: "clerk-1".into(),
            body: Some(body()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    assert_eq!(
        stale.metadata().get("mediation-current-version").unwrap(),
        &registered.version.to_string()
    );
    let fresh = outcome!(disputes.dispatch_dispute(pb::DispatchDisputeRequest {
        request_id: rid(),
        dispute_id: registered.case_id.clone(),
        expected_version: Some(registered.version),
        actor_id: "clerk-1".into(),
        body: Some(body()),
        ..Default::default()
    }));
    assert_eq!(fresh.version, registered.version + 1);
    server.stop().await;
}

async fn lists_filter_and_page_through_cases(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let mut last = 0;
    for i in 0..5 {
        let request = pb::RegisterDisputeRequest {
            dispute_id: format!("case-{i}"),
            risk: if i % 2 == 0 {
                pb::Risk::Red
            } else {
                pb::Risk::Green
            }
            .into(),
            ..register(
                if i < 4 { VILLAGE } else { OTHER_VILLAGE },
                pb::Level::Village,
            )
        };
        last = outcome!(disputes.register_dispute(request)).position;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = disputes
            .list_disputes(pb::ListDisputesRequest {
                division_code: TOWN.into(),
                page_size: 2,
                page_token: token.clone(),
                min_position: last,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.disputes.len() <= 2);
        seen.extend(page.disputes.into_iter().map(|d| d.dispute_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["case-0", "case-1", "case-2", "case-3"]);

    let red = disputes
        .list_disputes(pb::ListDisputesRequest {
            risk: pb::Risk::Red.into(),
            status: pb::DisputeStatus::Registered.into(),
            level: pb::Level::Village.into(),
            category: pb::DisputeCategory::Neighbourhood.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .disputes;
    let red: Vec<_> = red.iter().map(|d| d.dispute_id.as_str()).collect();
    assert_eq!(red, ["case-0", "case-2", "case-4"]);

    // A token is bound to its filters.
    let first = disputes
        .list_disputes(pb::ListDisputesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mismatch = disputes
        .list_disputes(pb::ListDisputesRequest {
            page_size: 1,
            page_token: first.next_page_token,
            risk: pb::Risk::Red.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), Code::InvalidArgument);
    server.stop().await;
}

async fn events_page_through_the_log_with_filters(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let mut petitions = server.petitions(&DISTRICT_SUPERVISOR);
    for _ in 0..3 {
        outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
        outcome!(petitions.receive_petition(receive(TOWN)));
    }
    // On PostgreSQL the log is read only below the oldest open transaction
    // (of any database on the server); wait until all six have settled.
    mediation_tests::read_all(&db.store, 6).await;
    let mut events = server.events(&DISTRICT_SUPERVISOR);
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = events
            .read_events(pb::ReadEventsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));

    let only_petitions = events
        .read_events(pb::ReadEventsRequest {
            aggregate_type: pb::AggregateType::Petition.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_petitions.events.len(), 3);
    assert!(
        only_petitions
            .events
            .iter()
            .all(|e| e.aggregate_type() == pb::AggregateType::Petition)
    );
    assert_eq!(only_petitions.last_position, all.last().unwrap().position);

    // Resuming after the last position returns nothing new.
    let after = events
        .read_events(pb::ReadEventsRequest {
            after_position: only_petitions.last_position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after.events.is_empty());
    server.stop().await;
}

/// A read after a position beyond the log's head reads nothing and answers
/// the head, not the position asked for: a client that resumes after the
/// `last_position` it was given then gets the events written since, which
/// would have been skipped had the server echoed the position.
async fn a_read_after_the_head_answers_the_head_and_misses_nothing(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let mut events = server.events(&DISTRICT_SUPERVISOR);
    let first = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
    let page = events
        .read_events(pb::ReadEventsRequest {
            min_position: first.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.last_position, first.position);

    // Far beyond the head (and beyond the next command's position on
    // either backend), with and without a filter.
    let beyond = first.position + (1 << 40);
    for aggregate_type in [pb::AggregateType::Unspecified, pb::AggregateType::Petition] {
        let page = events
            .read_events(pb::ReadEventsRequest {
                after_position: beyond,
                aggregate_type: aggregate_type.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.is_empty(), "{page:?}");
        assert!(page.next_page_token.is_empty(), "{page:?}");
        assert_eq!(
            page.last_position, first.position,
            "the head, not the position asked for ({aggregate_type:?})"
        );
    }

    // Resuming there finds the next event.
    let second = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
    assert!(second.position < beyond);
    let page = events
        .read_events(pb::ReadEventsRequest {
            after_position: first.position,
            min_position: second.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let positions: Vec<u64> = page.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, [second.position]);
    assert_eq!(page.last_position, second.position);

    // A subscription still starts after the position it names, however
    // far beyond the head that lies.
    let mut stream = events
        .subscribe_events(pb::SubscribeEventsRequest {
            after_position: second.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let third = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
    let next = stream.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(next.position, third.position);
    drop(stream);
    server.stop().await;
}

/// `min_position` on `ReadEvents` waits until the log can be read up to a
/// command's position, which on PostgreSQL may trail the acknowledgement
/// while an older transaction is open; a position that no committed event
/// has reached is OUT_OF_RANGE at once, on `ReadEvents` and on the lists.
async fn read_events_waits_for_min_position_but_not_for_a_position_never_written(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let mut petitions = server.petitions(&DISTRICT_SUPERVISOR);
    let mut events = server.events(&DISTRICT_SUPERVISOR);
    let first = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));

    // Never written: refused at once, not after the five-second wait.
    let unwritten = first.position + (1 << 40);
    let started = std::time::Instant::now();
    let refusals = [
        events
            .read_events(pb::ReadEventsRequest {
                min_position: unwritten,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .unwrap_err(),
        disputes
            .list_disputes(pb::ListDisputesRequest {
                min_position: unwritten,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .unwrap_err(),
        petitions
            .list_petitions(pb::ListPetitionsRequest {
                min_position: unwritten,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "answered without waiting: {:?}",
        started.elapsed()
    );
    for status in &refusals {
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(
            status.message().contains("does not exist yet"),
            "{status:?}"
        );
        assert_bad_field(status, "min_position");
        let metadata = error_info(status, "POSITION_NOT_WRITTEN");
        assert_eq!(
            metadata.get("min_position"),
            Some(&unwritten.to_string()),
            "{metadata:?}"
        );
    }

    // The very position of the last command is there to be read.
    let page = events
        .read_events(pb::ReadEventsRequest {
            min_position: first.position,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 1);

    if db.kind != Kind::Postgres {
        server.stop().await;
        return;
    }
    // An open transaction that holds a transaction id keeps every reader
    // below it: a command acknowledged meanwhile is committed but cannot be
    // read yet. Its position must be waited for, not refused.
    let mut open = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut open)
        .await
        .unwrap();
    let held = outcome!(disputes.register_dispute(register(VILLAGE, pb::Level::Village)));
    assert!(db.store.log_head().await.unwrap() < held.position);
    assert!(db.store.committed_head().await.unwrap() >= held.position);
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query("ROLLBACK").execute(&mut open).await.unwrap();
    };
    let read = events.read_events(pb::ReadEventsRequest {
        after_position: first.position,
        min_position: held.position,
        ..Default::default()
    });
    let mut lists = disputes.clone();
    let list = lists.list_disputes(pb::ListDisputesRequest {
        min_position: held.position,
        ..Default::default()
    });
    let ((), read, list) = tokio::join!(release, read, list);
    let page = read.unwrap().into_inner();
    let positions: Vec<u64> = page.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, [held.position]);
    let listed = list.unwrap().into_inner().disputes;
    assert!(
        listed.iter().any(|d| d.dispute_id == held.case_id),
        "{listed:?}"
    );
    open.close().await.unwrap();
    server.stop().await;
}

async fn a_subscriber_that_reconnects_misses_nothing_and_sees_nothing_twice(db: &TestDb) {
    let server = TestServer::start(db, false).await;
    let disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = disputes.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let id = client
                        .register_dispute(register(VILLAGE, pb::Level::Village))
                        .await
                        .unwrap()
                        .into_inner()
                        .outcome
                        .unwrap()
                        .case_id;
                    client
                        .dispatch_dispute(pb::DispatchDisputeRequest {
                            request_id: rid(),
                            dispute_id: id,
                            actor_id: "clerk".into(),
                            body: Some(body()),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    const TOTAL: usize = 4 * 15 * 2;

    // Follow the log in several connections, each dropped after a few
    // events, resuming after the last position received.
    let mut received: Vec<pb::Event> = Vec::new();
    let mut events = server.events(&DISTRICT_SUPERVISOR);
    while received.len() < TOTAL {
        let after = received.last().map_or(0, |e| e.position);
        let mut stream = events
            .subscribe_events(pb::SubscribeEventsRequest {
                after_position: after,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for _ in 0..7 {
            match stream.message().await.unwrap() {
                Some(message) => received.push(message.event.unwrap()),
                None => break,
            }
            if received.len() == TOTAL {
                break;
            }
        }
        drop(stream);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let positions: Vec<u64> = received.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
    let ids: BTreeSet<&str> = received.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), TOTAL);
    // Exactly the log as a reader sees it once everything is settled.
    let log = mediation_tests::read_all(&db.store, TOTAL).await;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions
    );
    server.stop().await;
}

/// The server's local day (Beijing time) in ISO 8601 form.
fn today(server: &TestServer) -> String {
    use mediation_domain::services::Clock as _;
    (server.clock.now() + Duration::hours(8))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}
