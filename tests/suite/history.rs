//! Analysts' view of the past: a case as it stood at a chosen moment,
//! folded from the stored history.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mediation_domain::dispute::{
    Dispute, DisputeAction, DisputeCommand, DisputeStatus, MediationBody, Party, PartyRole,
};
use mediation_domain::services::{ManualClock, Services};
use mediation_domain::values::{
    Actor, AgencyId, DisputeCategory, DivisionCode, Level, MediationKind, Name, Risk, Text,
};
use mediation_projections::history::case_as_of;
use mediation_proto::v1 as pb;
use mediation_store::Cases;
use mediation_tests::TestDb;
use mediation_tests::server::{ANALYST, DISTRICT_SUPERVISOR, TOWN_102, TestServer, start_time};
use tonic::Code;

on_both_backends!(
    a_case_as_it_stood_on_any_date,
    a_case_as_it_stood_and_its_timeline_are_served_over_grpc,
);

fn command(action: DisputeAction) -> DisputeCommand {
    DisputeCommand {
        by: Actor::parse("grid-worker-7", "990101001001").unwrap(),
        action,
    }
}

async fn a_case_as_it_stood_on_any_date(db: &TestDb) {
    let t0: DateTime<Utc> = "2026-03-02T02:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let cases = Cases::<Dispute>::new(
        &db.store,
        Services::shipped_defaults(Arc::new(clock.clone())),
    );
    let village = DivisionCode::parse("990101001001").unwrap();
    let id = "D-history-1";

    let steps = [
        DisputeAction::Report {
            division: village.clone(),
            grid: Some(Name::parse("Grid 3").unwrap()),
            summary: Text::parse("Water runs from one yard into the next").unwrap(),
        },
        DisputeAction::Register {
            division: village.clone(),
            level: Level::Village,
            category: DisputeCategory::Neighbourhood,
            risk: Risk::Green,
            summary: Text::parse("Drainage between two yards").unwrap(),
            parties: vec![
                Party {
                    role: PartyRole::Applicant,
                    name: Name::parse("Li Hua").unwrap(),
                },
                Party {
                    role: PartyRole::Respondent,
                    name: Name::parse("Zhang Wei").unwrap(),
                },
            ],
        },
        DisputeAction::Dispatch {
            body: MediationBody {
                id: AgencyId::parse("990101001001-pmc").unwrap(),
                name: Name::parse("Hubin People's Mediation Committee").unwrap(),
                kind: MediationKind::Peoples,
            },
            mediator: None,
        },
    ];
    for (day, action) in steps.into_iter().enumerate() {
        clock.set(t0 + Duration::days(day as i64));
        cases
            .execute(id, command(action), HashMap::new())
            .await
            .unwrap();
    }

    let before = case_as_of::<Dispute>(&db.store, id, t0 - Duration::hours(1))
        .await
        .unwrap();
    assert!(before.is_none(), "the case did not exist yet");

    let day_two = case_as_of::<Dispute>(&db.store, id, t0 + Duration::days(1) + Duration::hours(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day_two.version, 2);
    assert_eq!(day_two.case.status(), DisputeStatus::Registered);
    assert_eq!(day_two.last_change, t0 + Duration::days(1));

    let exactly_then = case_as_of::<Dispute>(&db.store, id, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exactly_then.case.status(), DisputeStatus::Reported);

    let now = case_as_of::<Dispute>(&db.store, id, t0 + Duration::days(30))
        .await
        .unwrap()
        .unwrap();
    let (current, version) = cases.load(id).await.unwrap().unwrap();
    assert_eq!((now.case, now.version), (current, version));
}

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Over gRPC, a dispute as it stood at a time and at a log position, a
/// petition as it stood, and a case's timeline with who acted, when, and
/// the deadlines each step set; identities withheld and scope kept as in
/// every other read.
async fn a_case_as_it_stood_and_its_timeline_are_served_over_grpc(db: &TestDb) {
    let server = TestServer::start(db, true).await;
    let mut disputes = server.disputes(&DISTRICT_SUPERVISOR);
    let village = "990101101201";
    let registered = disputes
        .register_dispute(pb::RegisterDisputeRequest {
            request_id: rid(),
            dispute_id: "D-past".into(),
            actor_id: "clerk-1".into(),
            division_code: village.into(),
            level: pb::Level::Village.into(),
            category: pb::DisputeCategory::Neighbourhood.into(),
            risk: pb::Risk::Green.into(),
            summary: "A wall between two yards".into(),
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
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    server.clock.advance(Duration::days(3));
    let escalated = disputes
        .escalate_dispute(pb::EscalateDisputeRequest {
            request_id: rid(),
            dispute_id: "D-past".into(),
            actor_id: "mediator-1".into(),
            reason: pb::EscalationReason::CrossJurisdiction.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();

    let as_of = |point| pb::GetDisputeAsOfRequest {
        dispute_id: "D-past".into(),
        point: Some(point),
    };
    use pb::get_dispute_as_of_request::Point;
    // By time: a day after registration it was still at the village.
    let day_one = start_time() + Duration::days(1);
    let then = disputes
        .get_dispute_as_of(as_of(Point::AsOfTime(prost_types::Timestamp {
            seconds: day_one.timestamp(),
            nanos: 0,
        })))
        .await
        .unwrap()
        .into_inner();
    let dispute = then.dispute.unwrap();
    assert_eq!(dispute.version, 1);
    assert_eq!(dispute.level(), pb::Level::Village);
    assert_eq!(dispute.division_code, village);
    assert_eq!(
        then.last_change_time.unwrap().seconds,
        start_time().timestamp()
    );
    // By position: the registration's position shows the same; the
    // escalation's, the town.
    let at_registration = disputes
        .get_dispute_as_of(as_of(Point::AsOfPosition(registered.position)))
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!(at_registration.version, 1);
    let now = disputes
        .get_dispute_as_of(as_of(Point::AsOfPosition(escalated.position)))
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(now.level(), pb::Level::Town);
    // Before the case existed it is not found; without a point the request
    // is refused, naming it.
    let before = start_time() - Duration::days(1);
    let status = disputes
        .get_dispute_as_of(as_of(Point::AsOfTime(prost_types::Timestamp {
            seconds: before.timestamp(),
            nanos: 0,
        })))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = disputes
        .get_dispute_as_of(pb::GetDisputeAsOfRequest {
            dispute_id: "D-past".into(),
            point: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("as_of_time"), "{status:?}");
    // The analyst sees the past without the parties' names; town 102
    // never held the case and finds nothing.
    let past = server
        .disputes(&ANALYST)
        .get_dispute_as_of(as_of(Point::AsOfPosition(registered.position)))
        .await
        .unwrap()
        .into_inner()
        .dispute
        .unwrap();
    assert!(past.parties.is_empty() && past.parties_withheld, "{past:?}");
    let status = server
        .disputes(&TOWN_102)
        .get_dispute_as_of(as_of(Point::AsOfPosition(escalated.position)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // The timeline: each step with who and when, and the deadlines it set.
    let mut events = server.events(&DISTRICT_SUPERVISOR);
    let timeline = events
        .get_case_history(pb::GetCaseHistoryRequest {
            aggregate_type: pb::AggregateType::Dispute.into(),
            case_id: "D-past".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let steps: Vec<_> = timeline
        .iter()
        .map(|e| {
            let event = e.event.as_ref().unwrap();
            (
                event.event_type.as_str(),
                e.actor_id.as_str(),
                e.deadlines
                    .iter()
                    .map(|d| d.stage.as_str())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("DisputeRegistered", "clerk-1", vec!["village_handling"]),
            ("DisputeEscalated", "mediator-1", vec!["town_handling"]),
        ]
    );
    assert_eq!(timeline[0].agency_id, DISTRICT_SUPERVISOR.id);
    assert_eq!(
        timeline[1].occur_time.as_ref().unwrap().seconds,
        (start_time() + Duration::days(3)).timestamp()
    );
    let analyst = server
        .events(&ANALYST)
        .get_case_history(pb::GetCaseHistoryRequest {
            aggregate_type: pb::AggregateType::Dispute.into(),
            case_id: "D-past".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(analyst.len(), 2);
    let registration = &analyst[0].event.as_ref().unwrap().payload_json;
    assert!(
        !registration.contains("Zhang San") && registration.contains("[withheld]"),
        "{registration}"
    );
    let status = server
        .events(&TOWN_102)
        .get_case_history(pb::GetCaseHistoryRequest {
            aggregate_type: pb::AggregateType::Dispute.into(),
            case_id: "D-past".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // A petition as it stood, its petitioner shown as in GetPetition.
    let mut petitions = server.petitions(&DISTRICT_SUPERVISOR);
    let received = petitions
        .receive_petition(pb::ReceivePetitionRequest {
            request_id: rid(),
            petition_id: "P-past".into(),
            actor_id: "clerk-1".into(),
            channel: pb::PetitionChannel::Letter.into(),
            petitioner: Some(pb::Petitioner {
                name: "Wang Wu".into(),
                contact: String::new(),
            }),
            facts: "The road was never repaired".into(),
            division_code: "990101101000".into(),
            competent_level: pb::Level::Town.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    let petition = petitions
        .get_petition_as_of(pb::GetPetitionAsOfRequest {
            petition_id: "P-past".into(),
            point: Some(pb::get_petition_as_of_request::Point::AsOfPosition(
                received.position,
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .petition
        .unwrap();
    assert_eq!(petition.status(), pb::PetitionStatus::Received);
    assert_eq!(petition.petitioner.unwrap().name, "Wang Wu");
    assert_eq!(petition.triage_due.unwrap().stage, "petition_triage");

    server.stop().await;
}
